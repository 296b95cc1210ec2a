"""gradflow.nn.functional and the fused ops of gradflow.ops.nn: values against NumPy references,
gradients (gradcheck / gradgradcheck in float64), stability and bad input.

GRADCHECK_CASES maps the class name of every differentiable Function defined in gradflow/ops/nn.py
to a check `case(device)` that raises on a wrong gradient; the registry test uses its keys.
"""
import math

import numpy as np
import pytest

import gradflow as gf
import gradflow.nn.functional as F
from gradflow.ops.nn import (
    BinaryCrossEntropyWithLogits, CrossEntropy, Dropout, Linear,
)


def _t(a, device, requires_grad=False, dtype=None):
    return gf.tensor(np.asarray(a), dtype=dtype, device=device, requires_grad=requires_grad)


def _rng(seed=0):
    return np.random.default_rng(seed)


# --- gradient cases -----------------------------------------------------------------------------
def _case_linear(device):
    r = _rng(1)
    x = _t(r.standard_normal((4, 3)), device, True)
    w = _t(r.standard_normal((5, 3)), device, True)
    b = _t(r.standard_normal(5), device, True)
    gf.gradcheck(lambda x, w, b: F.linear(x, w, b), (x, w, b))
    gf.gradgradcheck(lambda x, w, b: F.linear(x, w, b), (x, w, b))
    gf.gradcheck(lambda x, w: F.linear(x, w), (x, w))  # no bias
    x3 = _t(r.standard_normal((2, 3, 3)), device, True)  # batch axes folded in backward
    gf.gradcheck(lambda x, w, b: F.linear(x, w, b), (x3, w, b))


def _case_cross_entropy(device):
    r = _rng(2)
    x = _t(r.standard_normal((5, 4)) * 2, device, True)
    labels = _t([0, 3, 1, 3, 2], device)
    for reduction in ("mean", "sum", "none"):
        for smoothing in (0.0, 0.2):
            gf.gradcheck(lambda x: F.cross_entropy(x, labels, reduction, smoothing), x)


def _case_cross_entropy_second_order(device):
    # gradgradcheck differentiates CrossEntropy's rule, recorded under create_graph.
    r = _rng(3)
    x = _t(r.standard_normal((4, 3)), device, True)
    labels = _t([2, 0, 1, 2], device)
    for reduction in ("mean", "sum", "none"):
        for smoothing in (0.0, 0.3):
            gf.gradgradcheck(lambda x: F.cross_entropy(x, labels, reduction, smoothing), x)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_fused_rule_agrees_with_its_generic_rule(device, reduction, smoothing):
    # A plain backward takes the hand-fused rule (on arrays); create_graph takes the generic
    # one (recorded). Both from one forward, with an out-of-range label's nan row checked too.
    r = _rng(7)
    x = _t(r.standard_normal((6, 5)) * 3, device, True)
    labels = _t([0, 4, 1, 3, 2, 4], device)
    gy = _t(r.standard_normal(6) if reduction == "none" else 1.7, device)
    fused = gf.grad(F.cross_entropy(x, labels, reduction, smoothing), x, gy)[0]
    generic = gf.grad(F.cross_entropy(x, labels, reduction, smoothing), x, gy,
                      create_graph=True)[0]
    assert fused.grad_fn is None and generic.grad_fn is not None
    np.testing.assert_allclose(fused.numpy(), generic.numpy(), rtol=1e-12, atol=1e-15)
    fn = F.cross_entropy(x, labels, reduction, smoothing).grad_fn
    fn.poison[1] = np.nan  # as an out-of-range label on a GPU outside debug mode leaves it
    g_fused = fn.fused_backward(gy.data, None, x.data)
    g_generic = fn.backward(gy.data, None, x.data)
    for g in (g_fused, g_generic):
        g = x.device.backend.to_host(g)
        assert np.isnan(g[1]).all() and np.isfinite(np.delete(g, 1, axis=0)).all()


def test_at_most_three_ops_have_a_hand_fused_second_rule():
    from gradflow.autograd import Function
    import gradflow.ops  # noqa: F401
    fused = sorted(name for name, cls in Function.registry.items()
                   if cls.fused_backward is not None and cls.__module__.startswith("gradflow."))
    assert fused == ["CrossEntropy"], fused  # a new one needs an agreement test like the above


def _case_bce(device):
    r = _rng(4)
    x = _t(r.standard_normal((3, 4)) * 3, device, True)
    y = _t(r.uniform(0, 1, (3, 4)), device, True)  # soft targets: the target is differentiable
    for reduction in ("mean", "sum", "none"):
        gf.gradcheck(lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction), (x, y))
    gf.gradgradcheck(lambda x, y: F.binary_cross_entropy_with_logits(x, y), (x, y))


def _case_dropout(device):
    r = _rng(5)
    x = _t(r.standard_normal((4, 5)), device, True)
    mask = x.device.backend.asarray((r.uniform(size=(4, 5)) > 0.3) / 0.7)
    gf.gradcheck(lambda x: Dropout(mask=mask)(x), x)  # a fixed mask: finite differences need one
    gf.gradgradcheck(lambda x: Dropout(mask=mask)(x) * x, x)


GRADCHECK_CASES = {
    "Linear": _case_linear,
    "CrossEntropy": _case_cross_entropy,
    "CrossEntropy, second order": _case_cross_entropy_second_order,
    "BinaryCrossEntropyWithLogits": _case_bce,
    "Dropout": _case_dropout,
}


@pytest.mark.parametrize("name", sorted(GRADCHECK_CASES))
def test_gradcheck_cases(name, device):
    GRADCHECK_CASES[name](device)


def test_cases_cover_every_function_of_ops_nn():
    import gradflow.ops.nn as mod
    from gradflow.autograd import Function
    defined = {name for name, cls in vars(mod).items()
               if isinstance(cls, type) and issubclass(cls, Function) and cls.__module__ ==
               mod.__name__ and getattr(cls, "differentiable", True)}
    assert defined == {name.split(",")[0] for name in GRADCHECK_CASES}
    assert {c.__name__ for c in (Linear, CrossEntropy,
                                 BinaryCrossEntropyWithLogits, Dropout)} == defined


# --- cross_entropy ------------------------------------------------------------------------------
def _ce_reference(x, t, reduction="mean", smoothing=0.0):
    x = x.astype(np.float64)
    z = x - x.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    n, c = x.shape
    q = np.full((n, c), smoothing / c)
    q[np.arange(n), t] += 1.0 - smoothing
    loss = -(q * logp).sum(axis=1)
    grad_rows = np.exp(logp) - q
    if reduction == "mean":
        return loss.mean(), grad_rows / n
    if reduction == "sum":
        return loss.sum(), grad_rows
    return loss, grad_rows


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_matches_numpy(device, reduction, smoothing):
    r = _rng(10)
    xn = r.standard_normal((16, 10)).astype(np.float32) * 3
    tn = r.integers(0, 10, 16)
    x = _t(xn, device, True)
    loss = F.cross_entropy(x, _t(tn, device), reduction=reduction, label_smoothing=smoothing)
    ref, gref = _ce_reference(xn, tn, reduction, smoothing)
    np.testing.assert_allclose(loss.numpy(), ref, rtol=2e-6, atol=1e-6)
    assert loss.dtype == gf.float32
    if reduction == "none":
        loss.backward(gf.ones_like(loss))
    else:
        loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), gref, rtol=1e-5, atol=1e-7)


def test_cross_entropy_matches_torch_when_installed():
    torch = pytest.importorskip("torch")
    r = _rng(11)
    xn = r.standard_normal((8, 5))
    tn = r.integers(0, 5, 8)
    x = gf.tensor(xn, requires_grad=True)
    loss = F.cross_entropy(x, gf.tensor(tn), label_smoothing=0.15)
    loss.backward()
    tx = torch.tensor(xn, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tx, torch.tensor(tn), label_smoothing=0.15)
    tl.backward()
    np.testing.assert_allclose(loss.item(), tl.item(), rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("dtype", [gf.float32, gf.float64])
def test_cross_entropy_is_stable_for_huge_logits(device, dtype):
    xn = np.array([[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4], [5e3, -5e3, 0.0]])
    x = _t(xn, device, True, dtype=dtype)
    t = _t([0, 2, 1], device)
    loss = F.cross_entropy(x, t, reduction="none")
    # Exact values: row 0 picks its max (0); row 1 ties two maxima (log 2); row 2 is 1e4 below.
    np.testing.assert_allclose(loss.numpy(), [0.0, math.log(2.0), 1e4], rtol=1e-6)
    loss.sum().backward()
    g = x.grad.numpy()
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, [[0, 0, 0], [0, 0.5, -0.5], [1, -1, 0]], atol=1e-6)
    smoothed = F.cross_entropy(x, t, label_smoothing=0.1)
    assert np.isfinite(smoothed.item())


@pytest.fixture
def debug_mode():
    """Debug mode on for one test: labels on a GPU are checked there (a sync), as on the CPU."""
    gf.set_debug(True)
    yield
    gf.set_debug(False)


def test_cross_entropy_rejects_bad_labels(device, debug_mode):
    x = gf.randn(3, 4, device=device)
    with pytest.raises(ValueError, match=r"label\(s\) -1, 4 outside \[0, 3\]"):
        F.cross_entropy(x, _t([0, 4, -1], device))
    with pytest.raises(ValueError, match=r"shape \(2,\).*shape \(3, 4\).*\(3,\)"):
        F.cross_entropy(x, _t([0, 1], device))
    with pytest.raises(ValueError, match=r"shape \(3, 1\)"):
        F.cross_entropy(x, _t([[0], [1], [2]], device))
    with pytest.raises(TypeError, match="integer class labels.*float32"):
        F.cross_entropy(x, gf.zeros(3, device=device))
    with pytest.raises(ValueError, match=r"shape \(N, C\).*\(4,\)"):
        F.cross_entropy(gf.randn(4, device=device), _t([1], device))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(x, _t([0, 1, 2], device), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing.*1.5"):
        F.cross_entropy(x, _t([0, 1, 2], device), label_smoothing=1.5)


def test_cross_entropy_accepts_label_lists_and_int32():
    x = gf.randn(3, 4)
    a = F.cross_entropy(x, [0, 1, 3]).item()
    # An array keeps its own device (the CPU): the labels go where x is, as a list's do.
    b = F.cross_entropy(x, gf.tensor(np.array([0, 1, 3], dtype=np.int32), device=x.device)).item()
    assert a == b


def test_cross_entropy_backward_twice_with_retain_graph():
    x = gf.randn(4, 3, requires_grad=True)
    loss = F.cross_entropy(x, [0, 1, 2, 0])
    loss.backward(retain_graph=True)
    g1 = x.grad.numpy().copy()
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * g1, rtol=1e-6)


# --- other losses -------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_equals_cross_entropy(device, reduction):
    r = _rng(12)
    xn = r.standard_normal((6, 4))
    t = _t(r.integers(0, 4, 6), device)
    x1 = _t(xn, device, True)
    x2 = _t(xn, device, True)
    a = F.nll_loss(gf.log_softmax(x1, axis=1), t, reduction)
    b = F.cross_entropy(x2, t, reduction)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    a.sum().backward()
    b.sum().backward()
    np.testing.assert_allclose(x1.grad.numpy(), x2.grad.numpy(), rtol=1e-10, atol=1e-14)
    gf.set_debug(True)  # labels on a GPU are only read back in debug mode
    try:
        with pytest.raises(ValueError, match=r"label\(s\) 7"):
            F.nll_loss(x1, _t([7, 0, 0, 0, 0, 0], device))
    finally:
        gf.set_debug(False)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(device, reduction):
    r = _rng(13)
    a, b = r.standard_normal((3, 4)), r.standard_normal((3, 4))
    x = _t(a, device, True)
    loss = F.mse_loss(x, _t(b, device), reduction)
    ref = {"mean": ((a - b) ** 2).mean(), "sum": ((a - b) ** 2).sum(), "none": (a - b) ** 2}
    np.testing.assert_allclose(loss.numpy(), ref[reduction], rtol=1e-12)
    gf.gradcheck(lambda x: F.mse_loss(x, _t(b, device), reduction), x)
    with pytest.raises(ValueError, match=r"\(4,\).*\(3, 4\)"):
        F.mse_loss(x, _t(b[0], device))


def test_bce_with_logits_matches_reference_and_is_stable(device):
    r = _rng(14)
    xn = r.standard_normal((5, 3)) * 4
    yn = (r.uniform(size=(5, 3)) > 0.5).astype(np.float64)
    loss = F.binary_cross_entropy_with_logits(_t(xn, device), _t(yn, device), "none")
    s = 1 / (1 + np.exp(-xn))
    np.testing.assert_allclose(loss.numpy(), -(yn * np.log(s) + (1 - yn) * np.log(1 - s)),
                               rtol=1e-10)
    big = _t([[1e4, -1e4, 1e4]], device, True, dtype=gf.float32)
    out = F.binary_cross_entropy_with_logits(big, _t([[1.0, 0.0, 0.0]], device,
                                                     dtype=gf.float32), "none")
    np.testing.assert_allclose(out.numpy(), [[0.0, 0.0, 1e4]], rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(big.grad.numpy(), [[0.0, 0.0, 1.0]], atol=1e-6)
    with pytest.raises(ValueError, match=r"\(3,\).*\(5, 3\)"):
        F.binary_cross_entropy_with_logits(_t(xn, device), _t(yn[0], device))


def test_loss_modules_wrap_functional(device):
    x = gf.randn(4, 3, device=device, requires_grad=True)
    t = _t([0, 1, 2, 1], device)
    assert gf.nn.CrossEntropyLoss(label_smoothing=0.1)(x, t).item() == \
        F.cross_entropy(x, t, label_smoothing=0.1).item()
    assert gf.nn.CrossEntropyLoss(reduction="none")(x, t).shape == (4,)
    assert gf.nn.NLLLoss()(x, t).item() == F.nll_loss(x, t).item()
    assert gf.nn.MSELoss(reduction="sum")(x, x * 2).item() == pytest.approx(
        float((x.numpy() ** 2).sum()), rel=1e-6)
    y = gf.ones(4, 3, device=device)
    assert gf.nn.BCEWithLogitsLoss()(x, y).item() == \
        F.binary_cross_entropy_with_logits(x, y).item()
    with pytest.raises(ValueError, match="reduction must be"):
        gf.nn.MSELoss(reduction="avg")


# --- linear, dropout ----------------------------------------------------------------------------
def test_linear_matches_numpy(device):
    r = _rng(15)
    xn, wn, bn = r.standard_normal((7, 3)), r.standard_normal((5, 3)), r.standard_normal(5)
    y = F.linear(_t(xn, device), _t(wn, device), _t(bn, device))
    np.testing.assert_allclose(y.numpy(), xn @ wn.T + bn, rtol=1e-12)
    y3 = F.linear(_t(xn.reshape(7, 1, 3), device), _t(wn, device))
    np.testing.assert_allclose(y3.numpy(), (xn @ wn.T).reshape(7, 1, 5), rtol=1e-12)
    with pytest.raises(ValueError, match=r"input of shape \(7, 3\).*weight of shape \(3, 5\)"):
        F.linear(_t(xn, device), _t(wn.T, device))
    with pytest.raises(ValueError, match=r"bias of shape \(4,\)"):
        F.linear(_t(xn, device), _t(wn, device), _t(bn[:4], device))


def test_linear_skips_gradients_nobody_needs():
    x = gf.randn(4, 3)  # the input batch: no gradient wanted
    w = gf.randn(2, 3, requires_grad=True)
    F.linear(x, w).sum().backward()
    assert x.grad is None and w.grad.shape == (2, 3)


def test_dropout_is_seeded_scaled_and_off_in_eval(device):
    x = gf.ones(200, 50, device=device)
    gf.manual_seed(3)
    a = F.dropout(x, 0.3).numpy()
    gf.manual_seed(3)
    b = F.dropout(x, 0.3).numpy()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.unique(a), [0.0, 1 / 0.7], rtol=1e-6)
    assert abs((a == 0).mean() - 0.3) < 0.02
    assert F.dropout(x, 0.3, training=False) is x
    assert F.dropout(x, 0.0) is x
    with pytest.raises(ValueError, match="p must be in"):
        F.dropout(x, 1.0)
    xr = gf.ones(10, 10, device=device, requires_grad=True)
    y = F.dropout(xr, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(xr.grad.numpy(), y.numpy())  # the gradient is the mask


# --- layer_norm, batch_norm ---------------------------------------------------------------------
def test_layer_norm_matches_numpy_and_gradchecks(device):
    r = _rng(16)
    xn = r.standard_normal((4, 6))
    w, b = r.standard_normal(6), r.standard_normal(6)
    y = F.layer_norm(_t(xn, device), 6, _t(w, device), _t(b, device))
    ref = (xn - xn.mean(1, keepdims=True)) / np.sqrt(xn.var(1, keepdims=True) + 1e-5) * w + b
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-10)
    x = _t(xn, device, True)
    gf.gradcheck(lambda x, w, b: F.layer_norm(x, (6,), w, b),
                 (x, _t(w, device, True), _t(b, device, True)))
    with pytest.raises(ValueError, match=r"normalized_shape \(5,\).*\(4, 6\)"):
        F.layer_norm(x, 5)


def test_batch_norm_functional_training_and_eval(device):
    r = _rng(17)
    xn = r.standard_normal((8, 3)) * 2 + 1
    rm, rv = _t(np.zeros(3), device), _t(np.ones(3), device)
    y = F.batch_norm(_t(xn, device), rm, rv, training=True, momentum=0.1)
    np.testing.assert_allclose(y.numpy(), (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5),
                               rtol=1e-10)
    np.testing.assert_allclose(rm.numpy(), 0.1 * xn.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.9 + 0.1 * xn.var(0, ddof=1), rtol=1e-12)
    y = F.batch_norm(_t(xn, device), rm, rv, training=False)
    np.testing.assert_allclose(y.numpy(), (xn - rm.numpy()) / np.sqrt(rv.numpy() + 1e-5),
                               rtol=1e-10)
    with pytest.raises(ValueError, match=r"more than one value per channel.*\(1, 3\)"):
        F.batch_norm(_t(xn[:1], device), None, None, training=True)
