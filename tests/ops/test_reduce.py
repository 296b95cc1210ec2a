"""Reductions over axis (int, tuple, None) with keepdims, ties, and the stable softmax family."""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradflow as gf

from _gradcases import make_input, reduction

REDUCTIONS = {
    "sum": (gf.sum, np.sum),
    "mean": (gf.mean, np.mean),
    "max": (gf.max, np.max),
    "min": (gf.min, np.min),
    "var": (gf.var, np.var),
    "std": (gf.std, np.std),
    "logsumexp": (gf.logsumexp,
                  lambda a, axis, keepdims: np.log(np.sum(np.exp(a), axis=axis,
                                                          keepdims=keepdims))),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@settings(max_examples=15)
@given(data=st.data())
def test_values_match_numpy_for_every_axis_form(device, name, data):
    fn, ref = REDUCTIONS[name]
    (shape,), kw = data.draw(reduction(min_side=1))
    a = make_input("distinct", shape, np.random.default_rng(0))
    y = fn(gf.tensor(a, dtype=gf.float64, device=device), **kw)
    expected = ref(a, axis=kw["axis"], keepdims=kw["keepdims"])
    assert y.shape == np.shape(expected)
    assert isinstance(y.data, device.backend.ndarray)  # 0-d results stay arrays
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "var", "std", "logsumexp"])
def test_methods_match_functions(device, name):
    x = gf.tensor([[1.0, 5.0, 2.0], [7.0, 3.0, 4.0]], device=device)
    for kw in ({}, {"axis": 0}, {"axis": -1, "keepdims": True}, {"axis": (0, 1)}):
        np.testing.assert_array_equal(getattr(x, name)(**kw).numpy(),
                                      getattr(gf, name)(x, **kw).numpy())


@pytest.mark.parametrize("name", ["var", "std"])
@pytest.mark.parametrize("axis", [None, 0, 1, (0, 1)])
def test_var_std_gradients_and_ddof(device, name, axis):
    fn, ref = REDUCTIONS[name]
    a = np.random.default_rng(3).standard_normal((3, 4))
    x = gf.tensor(a, dtype=gf.float64, device=device, requires_grad=True)
    for ddof in (0, 1):
        np.testing.assert_allclose(fn(x, axis=axis, ddof=ddof).numpy(),
                                   ref(a, axis=axis, ddof=ddof), rtol=1e-12)
        assert gf.gradcheck(lambda v: fn(v, axis=axis, keepdims=True, ddof=ddof), x)
        assert gf.gradgradcheck(lambda v: fn(v, axis=axis, ddof=ddof), x)


def test_axis_errors_name_the_axis_and_the_dims(device):
    x = gf.zeros(2, 3, device=device)
    with pytest.raises(ValueError, match=r"axis 2 is out of range for a tensor with 2 dims"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match=r"axis -3"):
        x.mean(axis=(0, -3))
    with pytest.raises(ValueError, match="repeated axis"):
        x.max(axis=(1, -1))
    with pytest.raises(TypeError, match="axis must be an int"):
        x.sum(axis=1.0)
    with pytest.raises(TypeError, match="axis must be an int"):
        x.sum(axis="0")
    with pytest.raises(ValueError, match="ddof=1"):
        gf.var(gf.zeros(1, device=device), ddof=1)
    np.testing.assert_array_equal(x.sum(axis=np.int64(1)).numpy(), [0, 0])  # NumPy ints work


def test_zero_dim_and_empty_reductions(device):
    s = gf.tensor(3.0, device=device, requires_grad=True)
    for fn in (gf.sum, gf.mean, gf.max, gf.min, gf.logsumexp):
        y = fn(s)
        assert y.shape == () and y.item() == pytest.approx(3.0)
        y.backward()
        assert s.grad.item() == pytest.approx(1.0)
        s.grad = None
    assert s.sum(axis=0).shape == () and s.sum(axis=-1, keepdims=True).shape == ()
    e = gf.zeros(0, 3, device=device, requires_grad=True)
    np.testing.assert_array_equal(e.sum(axis=0).numpy(), [0, 0, 0])
    assert e.max(axis=1).shape == (0,)  # the reduced axis is not empty: fine
    e.sum().backward()
    assert e.grad.shape == (0, 3)
    with pytest.raises(ValueError, match=r"empty axis \(shape \(0, 3\)"):
        e.max(axis=0)
    with pytest.raises(ValueError, match="empty axis"):
        gf.min(e)


# --- max/min ties --------------------------------------------------------------------------------
def test_max_min_ties_split_the_gradient_evenly(device):
    x = gf.tensor([1.0, 3.0, 3.0, 2.0], device=device, requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 0.5, 0.5, 0])
    x.grad = None
    y = gf.tensor([[2.0, 2.0, 2.0, 1.0], [0.0, 5.0, 1.0, 5.0]], device=device,
                  requires_grad=True)
    y.max(axis=1).backward(gf.tensor([3.0, 1.0], device=device))
    np.testing.assert_allclose(y.grad.numpy(), [[1, 1, 1, 0], [0, 0.5, 0, 0.5]])
    z = gf.tensor([[4.0, 1.0], [1.0, 1.0]], device=device, requires_grad=True)
    z.min().backward()
    np.testing.assert_allclose(z.grad.numpy(), [[0, 1 / 3], [1 / 3, 1 / 3]])
    for fn in (gf.max, gf.min):
        assert "split evenly" in fn.__doc__  # the tie rule is documented


def test_argmax_argmin_all_any_are_not_differentiable(device):
    x = gf.tensor([[1.0, 9.0, 9.0], [7.0, 2.0, 0.0]], device=device, requires_grad=True)
    am = x.argmax(axis=1)
    assert am.dtype == gf.int64 and not am.requires_grad
    np.testing.assert_array_equal(am.numpy(), [1, 0])  # first index on ties
    assert x.argmax().item() == 1 and x.argmin().item() == 5
    np.testing.assert_array_equal(x.argmin(axis=0, keepdims=True).numpy(), [[0, 1, 1]])
    assert x.argmax(keepdims=True).shape == (1, 1)
    ok = (x > 0).all(axis=1)
    assert ok.dtype == gf.bool_ and not ok.requires_grad
    np.testing.assert_array_equal(ok.numpy(), [True, False])
    assert (x > 8).any().item() is True and (x > 9).any().item() is False
    assert isinstance((x > 0).all().data, device.backend.ndarray)


# --- the softmax family at large logits ----------------------------------------------------------
def _ref_log_softmax(a, axis):
    a = a.astype(np.float64)
    m = a.max(axis=axis, keepdims=True)
    return a - m - np.log(np.exp(a - m).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_family_is_exact_for_float32_logits_of_magnitude_1e4(device, axis):
    a = np.array([[1e4, 0.0, -1e4], [-1e4, -1e4, -1e4], [1e4, 1e4 - 1, -3.0]], dtype=np.float32)
    x = gf.tensor(a, device=device, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / invalid-value warnings either
        ls = gf.log_softmax(x, axis=axis)
        sm = gf.softmax(x, axis=axis)
        lse = gf.logsumexp(x, axis=axis)
        (ls.sum() + sm.sum() + lse.sum()).backward()
    assert ls.dtype == sm.dtype == lse.dtype == gf.float32
    for out in (ls, sm, lse, x.grad):
        assert np.isfinite(out.numpy()).all()
    ref = _ref_log_softmax(a, axis)
    np.testing.assert_allclose(ls.numpy(), ref, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(sm.numpy(), np.exp(ref), rtol=1e-6, atol=1e-30)
    m = a.astype(np.float64).max(axis=axis)
    ref_lse = m + np.log(np.exp(a - np.expand_dims(m, axis)).sum(axis=axis))
    np.testing.assert_allclose(lse.numpy(), ref_lse, rtol=1e-7)
    np.testing.assert_allclose(sm.numpy().sum(axis=axis), 1.0, rtol=1e-6)


def test_log_softmax_exact_values(device):
    x = gf.tensor([1e4, 0.0], device=device)
    np.testing.assert_array_equal(gf.log_softmax(x).numpy(), [0.0, -1e4])
    np.testing.assert_array_equal(gf.softmax(x).numpy(), [1.0, 0.0])
    assert gf.logsumexp(gf.tensor([1e4, 1e4], device=device)).item() == pytest.approx(
        1e4 + np.log(2), rel=1e-7)
    assert gf.logsumexp(gf.tensor([-1e4, -1e4], device=device)).item() == pytest.approx(
        -1e4 + np.log(2), rel=1e-7)


def test_logsumexp_with_minus_infinity(device):
    x = gf.tensor([[-np.inf, 0.0], [-np.inf, -np.inf]], device=device, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        y = x.logsumexp(axis=1)
    np.testing.assert_array_equal(y.numpy(), [0.0, -np.inf])
    y[0].backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0, 1], [0, 0]])


def test_softmax_gradient_of_a_weighted_sum(device):
    a = np.random.default_rng(5).standard_normal((2, 5))
    x = gf.tensor(a, dtype=gf.float64, device=device, requires_grad=True)
    w = np.arange(5.0)
    (gf.softmax(x) * gf.tensor(w, dtype=gf.float64, device=device)).sum().backward()
    p = np.exp(a) / np.exp(a).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(x.grad.numpy(), p * (w - (p * w).sum(axis=1, keepdims=True)),
                               rtol=1e-12)
    np.testing.assert_allclose(gf.log_softmax(x, axis=0).numpy(), _ref_log_softmax(a, 0),
                               rtol=1e-12)


def test_softmax_over_several_axes_or_all(device):
    a = np.random.default_rng(3).standard_normal((2, 3, 4))
    x = gf.tensor(a, dtype=gf.float64, device=device)
    e = np.exp(a - a.max())
    np.testing.assert_allclose(gf.softmax(x, axis=None).numpy(), e / e.sum(), rtol=1e-12)
    np.testing.assert_allclose(gf.log_softmax(x, axis=None).numpy(), np.log(e / e.sum()),
                               rtol=1e-12)
    both = e / e.sum(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(gf.softmax(x, axis=(0, 2)).numpy(), both, rtol=1e-12)
    np.testing.assert_allclose(gf.softmax(x, axis=(0, -1)).numpy(), both, rtol=1e-12)
    np.testing.assert_allclose(gf.softmax(x, axis=(0, 2)).sum(axis=(0, 2)).numpy(),
                               np.ones(3), rtol=1e-12)
    with pytest.raises(ValueError, match="softmax: axis 3 is out of range"):
        gf.softmax(x, axis=(0, 3))
