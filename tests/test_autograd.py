"""The tape: backward order, accumulation, errors, retain_graph, no_grad, gf.grad and higher
order, hooks, retain_grad, detach, and in-place changes to saved tensors."""
import gc

import numpy as np
import pytest

import gradflow as gf
from gradflow import BackwardError


def f64(values, device, requires_grad=True):
    return gf.tensor(values, dtype=gf.float64, device=device, requires_grad=requires_grad)


def test_the_readme_example(device):
    x = gf.tensor([[1.0, 2.0], [3.0, 4.0]], device=device, requires_grad=True)
    y = (x * x + 1).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[2, 4], [6, 8]])
    assert y.item() == 34.0 and x.grad.dtype == gf.float32


def test_fan_out_adds_the_gradients_of_every_path(device):
    x = f64([2.0, 3.0], device)
    a = x * 3          # used twice below
    y = (a * a + a + x).sum()
    y.backward()
    # y = 9x^2 + 3x + x: dy/dx = 18x + 4
    np.testing.assert_allclose(x.grad.numpy(), [40.0, 58.0])


def test_a_diamond_graph_is_visited_in_topological_order(device):
    x = f64(1.5, device)
    calls = []
    b = x * 2
    c = gf.exp(b)
    d = gf.sin(b)
    b.register_hook(lambda g: calls.append("b"))
    c.register_hook(lambda g: calls.append("c"))
    d.register_hook(lambda g: calls.append("d"))
    (c * d).backward()
    assert calls.count("b") == 1 and calls[-1] == "b"  # b once, after both consumers
    xv = 1.5
    expected = 2 * np.exp(2 * xv) * np.sin(2 * xv) + 2 * np.exp(2 * xv) * np.cos(2 * xv)
    assert x.grad.item() == pytest.approx(expected)


def test_a_chain_of_100000_ops_backpropagates_without_recursion():
    x = gf.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward(retain_graph=True)  # the graph stays whole ...
    assert x.grad.item() == 1.0
    del y  # ... and dropping it must not recurse either


def test_leaf_gradients_accumulate_until_zeroed(device):
    x = f64([1.0, 2.0], device)
    for k in range(1, 4):
        (x * x).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), k * np.array([2.0, 4.0]))
    x.zero_grad()
    assert x.grad is None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_leaf_grads_are_arrays_of_their_own(device):
    a, b = f64([1.0, 2.0], device), f64([3.0, 4.0], device)
    (a + b).sum().backward()  # both receive the same upstream gradient
    assert a.grad is not b.grad
    with gf.no_grad():
        a.grad *= 10  # an in-place change of one .grad (clipping, weight decay) ...
    np.testing.assert_array_equal(b.grad.numpy(), [1, 1])  # ... does not reach the other
    c = f64([1.0, 2.0], device)
    g = gf.tensor([5.0, 6.0], dtype=gf.float64, device=device)
    c.backward(g)
    assert c.grad is not g
    with gf.no_grad():
        c.grad += 1
    np.testing.assert_array_equal(g.numpy(), [5, 6])


def test_backward_from_a_non_scalar_needs_a_gradient(device):
    x = f64([1.0, 2.0], device)
    y = x * 2
    with pytest.raises(BackwardError, match=r"non-scalar tensor \(shape \(2,\)\).*explicit"):
        y.backward()
    y.backward(gf.tensor([1.0, 10.0], dtype=gf.float64, device=device))
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 20.0])
    with pytest.raises(BackwardError, match=r"shape \(3,\) given for a tensor of shape \(2,\)"):
        (x * 2).backward(gf.ones(3, dtype=gf.float64, device=device))
    with pytest.raises(BackwardError, match="dtype float32 given for a tensor of dtype float64"):
        (x * 2).backward(gf.ones(2, device=device))
    (x * 2)[0:1].backward()  # a one-element tensor needs none
    (x * 2).backward([1.0, 1.0])  # a list is taken as the gradient


def test_backward_on_a_tensor_without_grad_raises(device):
    x = gf.tensor([1.0], device=device)
    with pytest.raises(BackwardError, match="does not require grad"):
        (x * 2).sum().backward()
    with gf.no_grad():
        y = (f64([1.0], device) * 2).sum()
    with pytest.raises(BackwardError, match="no_grad"):
        y.backward()


def test_second_backward_through_a_freed_graph_is_a_clear_error(device):
    x = f64([1.0, 2.0], device)
    y = (gf.exp(x) * x).sum()
    y.backward()
    with pytest.raises(BackwardError, match=r"second time.*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward(device):
    x = f64([1.0, 2.0], device)
    y = (gf.exp(x) * x).sum()
    y.backward(retain_graph=True)
    first = x.grad.numpy().copy()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * first)
    with pytest.raises(BackwardError, match="second time"):
        y.backward()


def test_saved_arrays_are_freed_after_backward(device):
    x = f64([1.0, 2.0], device)
    h = gf.exp(x)
    y = (h * x).sum()
    fn = h.grad_fn
    assert fn.inputs is not None and fn.saved_y is not None
    y.backward()
    assert fn.inputs is None and fn.saved_y is None and not fn.__dict__


def test_no_grad_context_manager_and_decorator(device):
    x = f64([1.0], device)
    assert gf.is_grad_enabled()
    with gf.no_grad():
        assert not gf.is_grad_enabled()
        y = x * 2
        with gf.enable_grad():
            z = x * 3
        with gf.no_grad():  # nesting restores the outer state
            pass
        assert not gf.is_grad_enabled()
    assert gf.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad

    @gf.no_grad()
    def infer(t):
        assert not gf.is_grad_enabled()
        return t * 2

    assert not infer(x).requires_grad and gf.is_grad_enabled()
    with gf.set_grad_enabled(False):
        assert not (x * 2).requires_grad
    try:
        with gf.no_grad():
            raise KeyError
    except KeyError:
        pass
    assert gf.is_grad_enabled()  # restored on exceptions too


# --- gf.grad and higher order --------------------------------------------------------------------
def test_grad_returns_gradients_without_touching_dot_grad(device):
    x, w = f64([1.0, 2.0], device), f64([3.0, 4.0], device)
    y = (x * w).sum()
    gx, gw = gf.grad(y, [x, w])
    np.testing.assert_allclose(gx.numpy(), [3, 4])
    np.testing.assert_allclose(gw.numpy(), [1, 2])
    assert x.grad is None and w.grad is None
    (g,) = gf.grad([x.sum(), (x * x).sum()], x)  # several outputs: their gradients add
    np.testing.assert_allclose(g.numpy(), [3, 5])


def test_grad_by_an_intermediate_and_unused_inputs(device):
    x = f64([1.0, 2.0], device)
    h = x * 3
    y = (h * h).sum()
    (gh,) = gf.grad(y, h, retain_graph=True)
    np.testing.assert_allclose(gh.numpy(), 2 * np.array([3.0, 6.0]))
    u = f64([0.0], device)
    with pytest.raises(BackwardError, match=r"input 1 \(shape \(1,\)\) was not used"):
        gf.grad(y, [x, u], retain_graph=True)
    gx, gu = gf.grad(y, [x, u], allow_unused=True)
    assert gu is None
    np.testing.assert_allclose(gx.numpy(), 18 * np.array([1.0, 2.0]))
    with pytest.raises(BackwardError, match="does not require grad"):
        gf.grad((x * 2).sum(), gf.zeros(2, device=device))


def test_grad_with_grad_outputs(device):
    x = f64([1.0, 2.0], device)
    (g,) = gf.grad(x * x, x, grad_outputs=f64([1.0, 10.0], device, False))
    np.testing.assert_allclose(g.numpy(), [2.0, 40.0])
    with pytest.raises(ValueError, match="2 grad_outputs for 1 outputs"):
        gf.grad(x * x, x, grad_outputs=[None, None])


def test_second_derivative_of_x_cubed_is_6x(device):
    x = f64([-1.5, 0.5, 2.0], device)
    (g,) = gf.grad((x ** 3).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    assert g.requires_grad
    (h,) = gf.grad(g.sum(), x)
    np.testing.assert_allclose(h.numpy(), 6 * x.numpy())
    # the docstring's example, scalar and through backward(create_graph=True)
    s = f64(2.0, device)
    (gs,) = gf.grad(s ** 3, s, create_graph=True)
    (hs,) = gf.grad(gs, s)
    assert gs.item() == 12.0 and hs.item() == 12.0
    (s ** 3).backward(create_graph=True)
    assert s.grad.requires_grad and s.grad.item() == 12.0
    g1 = s.grad
    s.grad = None
    g1.backward()
    assert s.grad.item() == 12.0


def test_third_derivative(device):
    x = f64(0.7, device)
    (g1,) = gf.grad(gf.sin(x), x, create_graph=True)
    (g2,) = gf.grad(g1, x, create_graph=True)
    (g3,) = gf.grad(g2, x)
    assert g3.item() == pytest.approx(-np.cos(0.7))


def _mlp_loss(params, x, y):
    w1, b1, w2, b2 = params
    h = gf.tanh(x @ w1 + b1)
    out = h @ w2 + b2
    return ((out - y) ** 2).mean()


def test_hessian_vector_product_of_an_mlp_matches_finite_differences(device):
    rng = np.random.default_rng(0)
    shapes = [(3, 5), (5,), (5, 2), (2,)]
    params = [f64(rng.standard_normal(s) * 0.5, device) for s in shapes]
    x = f64(rng.standard_normal((8, 3)), device, False)
    y = f64(rng.standard_normal((8, 2)), device, False)
    v = [rng.standard_normal(s) for s in shapes]

    grads = gf.grad(_mlp_loss(params, x, y), params, create_graph=True)
    dot = sum((g * f64(vi, device, False)).sum() for g, vi in zip(grads, v))
    hvp = gf.grad(dot, params)

    def flat_grad(ps):
        gs = gf.grad(_mlp_loss(ps, x, y), ps)
        return np.concatenate([g.numpy().ravel() for g in gs])

    eps = 1e-5
    plus = [f64(p.numpy() + eps * vi, device) for p, vi in zip(params, v)]
    minus = [f64(p.numpy() - eps * vi, device) for p, vi in zip(params, v)]
    fd = (flat_grad(plus) - flat_grad(minus)) / (2 * eps)
    np.testing.assert_allclose(np.concatenate([h.numpy().ravel() for h in hvp]), fd,
                               rtol=1e-6, atol=1e-8)
    assert np.abs(fd).max() > 1e-3  # a Hessian that is not trivially zero


def test_create_graph_keeps_the_graph_even_without_retain_graph(device):
    x = f64([0.5, 1.0], device)
    c = f64([1.0, 1.0], device, False)
    (g,) = gf.grad(x.logsumexp() * (x * 0.0 + c).sum(), x, create_graph=True,
                   retain_graph=False)
    (h,) = gf.grad(g[0], x)
    p = np.exp([0.5, 1.0]) / np.exp([0.5, 1.0]).sum()
    # f = 2 logsumexp(x): its Hessian is 2 (diag(p) - p p^T)
    np.testing.assert_allclose(h.numpy(), 2 * (np.diag(p) - np.outer(p, p))[0], rtol=1e-12)


# --- hooks, retain_grad, detach, is_leaf ---------------------------------------------------------
def test_is_leaf_and_grad_fn(device):
    x = f64([1.0], device)
    c = gf.tensor([1.0], device=device)
    y = x * 2
    assert x.is_leaf and c.is_leaf and not y.is_leaf
    assert x.grad_fn is None and y.grad_fn.name == "Mul"
    assert (c * 2).is_leaf  # no input requires grad: nothing recorded


def test_retain_grad_keeps_a_non_leaf_gradient(device):
    x = f64([1.0, 2.0], device)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.numpy(), [6.0, 12.0])
    m = x * 2
    (m * m).sum().backward()
    assert m.grad is None  # not retained: non-leaf grads are not stored
    assert x.retain_grad() is x
    with pytest.raises(RuntimeError, match="does not require grad"):
        gf.zeros(1, device=device).retain_grad()


def test_hooks_modify_gradients_and_can_be_removed(device):
    x = f64([1.0, 2.0], device)
    seen = []
    handle = x.register_hook(lambda g: g * 10)
    x.register_hook(lambda g: seen.append(g.numpy().copy()))
    (x * x).sum().backward()  # two paths into x: the hooks see the whole gradient once
    np.testing.assert_allclose(x.grad.numpy(), [20.0, 40.0])
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [20.0, 40.0])
    handle.remove()
    handle.remove()  # a second remove is a no-op
    x.grad = None
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    h = x * 1.0
    h.register_hook(lambda g: g * 0)  # on a non-leaf: changes what flows further back
    x.grad = None
    (h * 5).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        gf.zeros(1, device=device).register_hook(print)


def test_a_hook_on_an_intermediate_fires_after_the_tensor_is_dropped(device):
    # As in PyTorch (the hook lives on the graph's node): found when DistributedDataParallel
    # hooked a model's output that only the loss still referred to.
    x = f64([1.0, 2.0], device)
    seen = []
    h = x * 2.0
    h.register_hook(lambda g: seen.append(g.numpy().copy()))
    loss = (h * 3).sum()
    del h
    gc.collect()
    loss.backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [3.0, 3.0])


def test_hooks_run_in_gf_grad_too(device):
    x = f64([1.0, 2.0], device)
    x.register_hook(lambda g: g + 1)
    (g,) = gf.grad((x * 3).sum(), x)
    np.testing.assert_allclose(g.numpy(), [4.0, 4.0])


def test_detach_cuts_the_graph_and_shares_the_array(device):
    x = f64([1.0, 2.0], device)
    d = x.detach()
    assert not d.requires_grad and d.is_leaf and d.data is x.data
    y = (x * d).sum()  # d is a constant: dy/dx = d
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 2.0])


# --- in-place changes ----------------------------------------------------------------------------
def test_modifying_a_saved_input_makes_backward_raise_naming_the_op(device):
    a = f64([1.0, 2.0], device)
    b = f64([3.0, 4.0], device, False)
    y = a * b
    b += 1
    with pytest.raises(BackwardError, match=r"input of Mul \(shape \(2,\)\) was modified in "
                                            r"place"):
        y.sum().backward()


def test_an_optimizer_step_between_forward_and_backward_is_caught(device):
    w = f64([1.0, 2.0], device)
    x = f64([3.0, 4.0], device, False)
    loss = gf.tanh(x @ w)
    with gf.no_grad():
        w -= 0.1 * gf.ones_like(w)
    with pytest.raises(BackwardError, match="MatMul"):
        loss.backward()


def test_modifying_a_saved_output_makes_backward_raise(device):
    w = f64([1.0, 2.0], device)
    y = gf.exp(w)
    with gf.no_grad():
        y += 1
    with pytest.raises(BackwardError, match="output of Exp"):
        y.sum().backward()


def test_inplace_updates_that_backward_does_not_need_are_fine(device):
    a = f64([1.0, 2.0], device)
    b = f64([3.0, 4.0], device, False)
    y = a + b  # Add saves nothing
    b += 1
    y.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [1.0, 1.0])
    # an optimizer step after backward is the normal order
    with gf.no_grad():
        a -= 0.5 * a.grad
    np.testing.assert_allclose(a.numpy(), [0.5, 1.5])
    assert a._version == 1 and a.is_leaf and a.requires_grad


def test_inplace_on_a_leaf_that_requires_grad_raises(device):
    a = f64([1.0, 2.0], device)
    for op in ("__iadd__", "__isub__", "__imul__", "__itruediv__"):
        with pytest.raises(RuntimeError, match=r"leaf tensor that requires grad.*no_grad"):
            getattr(a, op)(1.0)
    np.testing.assert_array_equal(a.numpy(), [1.0, 2.0])


def test_inplace_on_a_non_leaf_records_out_of_place(device):
    a = f64([1.0, 2.0], device)
    h = a * 2
    alias = h
    h += 1  # recorded: h is rebound to a new tensor; the old one stays intact
    assert h is not alias and alias.numpy().tolist() == [2.0, 4.0]
    (h * h).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 4 * (2 * a.numpy() + 1))


@pytest.mark.parametrize("make_alias", [
    lambda x: x.reshape(2, 2), lambda x: x[None], lambda x: x[...], lambda x: x[1:],
    lambda x: x.unsqueeze(0), lambda x: gf.split(x, 2)[0], lambda x: x.detach(),
    lambda x: x.detach().reshape(4)[::2],
], ids=["reshape", "None", "Ellipsis", "slice", "unsqueeze", "split", "detach", "chain"])
def test_modifying_a_saved_input_through_a_view_or_detach_is_caught(device, make_alias):
    w = f64([1.0, 2.0, 3.0, 4.0], device)
    x = gf.ones(4, dtype=gf.float64, device=device)
    y = (w * x).sum()
    alias = make_alias(x)
    alias *= 5  # changes x's array: Mul saved x, so its gradient would be silently wrong
    with pytest.raises(BackwardError, match=r"input of Mul \(shape \(4,\)\) was modified"):
        y.backward()


def test_a_saved_view_sees_a_change_of_its_base(device):
    w = f64([1.0, 2.0, 3.0, 4.0], device)
    v = w.reshape(2, 2)[:, 1]  # views of w, recorded
    z = (v * v).sum()  # Mul saved v
    with gf.no_grad():
        w -= 1.0  # an optimizer-style step on the base
    with pytest.raises(BackwardError, match=r"input of Mul \(shape \(2,\)\)"):
        z.backward()


def test_a_saved_output_modified_through_a_view_is_caught(device):
    w = f64([1.0, 2.0], device)
    y = gf.exp(w)
    with gf.no_grad():
        view = y[:]
        view *= 2
    with pytest.raises(BackwardError, match="output of Exp"):
        y.sum().backward()


def test_copies_do_not_share_versions(device):
    w = f64([1.0, 2.0], device)
    x = gf.ones(2, dtype=gf.float64, device=device)
    y = (w * x).sum()
    c = x * 1.0  # a new array
    c += 1
    y.backward()
    np.testing.assert_allclose(w.grad.numpy(), [1.0, 1.0])


def test_requires_grad_assignment_is_checked(device):
    t = gf.arange(3, device=device)
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients, "
                                        "got dtype int64"):
        t.requires_grad = True
    assert not t.requires_grad
    x = gf.zeros(2, device=device)
    x.requires_grad = True
    assert x.requires_grad and x.is_leaf
    with pytest.raises(RuntimeError, match="non-leaf"):
        (x * 2).requires_grad = False


def test_grad_mode_is_per_thread(device):
    import threading
    w = f64([1.0, 2.0], device)
    inside, release = threading.Event(), threading.Event()
    seen = []

    def worker():
        with gf.no_grad():
            seen.append(gf.is_grad_enabled())
            inside.set()
            release.wait(5)

    th = threading.Thread(target=worker)
    th.start()
    inside.wait(5)
    try:
        assert gf.is_grad_enabled() and (w * w).sum().requires_grad
    finally:
        release.set()
        th.join()
    assert seen == [False]


def test_no_grad_decorates_without_parentheses(device):
    x = f64([1.0], device)

    @gf.no_grad
    def infer(t):
        return t * 2

    assert not infer(x).requires_grad and gf.is_grad_enabled()
    with pytest.raises(TypeError, match="no_grad takes no arguments"):
        gf.no_grad(3)


def test_inplace_without_grad_changes_the_array_and_its_version(device):
    c = gf.tensor([1.0, 2.0], device=device)
    data = c.data
    c += 1
    c *= 2
    c -= gf.tensor([1.0, 1.0], device=device)
    c /= 2
    assert c.data is data and c._version == 4
    np.testing.assert_allclose(c.numpy(), [1.5, 2.5])
    with pytest.raises(ValueError, match=r"result shape \(2, 2\).*shape \(2,\)"):
        c += gf.zeros(2, 2, device=device)
    n = gf.tensor([1, 2], device=device)
    with pytest.raises(TypeError, match="float32.*int64"):  # int64 + 0.5 is float32 (PyTorch)
        n += 0.5
