"""The compiled CPU loops of conv2d and max pooling (gradflow/backend/conv_numba.py) against the
NumPy reference in gradflow/ops/conv.py: the same values and gradients, over a sweep of
geometries, with ties, nans and padding; and the reference path's own gradchecks."""
import numpy as np
import pytest

import gradflow as gf
from gradflow.backend import fused_numpy, numpy_backend

pytest.importorskip("numba", reason="the compiled loops need Numba (the `fast` extra)")
F = gf.nn.functional

# (input shape, weight shape, stride, padding, dilation, groups)
CONVS = [
    ((2, 3, 9, 8), (4, 3, 3, 3), 1, 0, 1, 1),
    ((2, 4, 8, 9), (6, 2, 3, 2), (2, 1), (1, 2), (1, 2), 2),
    ((1, 4, 6, 6), (4, 1, 3, 3), 2, 1, 1, 4),
    ((3, 1, 5, 7), (2, 1, 1, 1), 1, 0, 1, 1),
    ((2, 2, 4, 4), (3, 2, 4, 4), 1, 0, 1, 1),
]
POOLS = [(2, None, 0, 1), (3, 2, 1, 1), ((2, 3), (1, 2), (1, 1), 1), (3, 1, 1, 2), (1, 1, 0, 1)]


@pytest.fixture
def reference(monkeypatch):
    """Run the body of the test on the NumPy reference instead of the compiled loops."""
    def use_reference():
        monkeypatch.setattr(numpy_backend, "conv_kernels", lambda: None)
    return use_reference


def _run(fn, arrays):
    leaves = [gf.tensor(a, requires_grad=True) for a in arrays]
    y = fn(*leaves)
    gy = np.random.default_rng(1).standard_normal(y.shape).astype(y.dtype)
    y.backward(gf.tensor(gy))
    return [y.numpy()] + [t.grad.numpy() for t in leaves]


def test_the_compiled_loops_are_the_ones_used():
    assert fused_numpy.conv_kernels() is not None or fused_numpy.fused_cpu_impl() == "numpy"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CONVS)
def test_conv2d_compiled_equals_reference(reference, dtype, xs, ws, stride, padding, dilation,
                                          groups):
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(dtype) for s in (xs, ws, ws[:1])]

    def fn(x, w, b):
        return F.conv2d(x, w, b, stride, padding, dilation, groups)
    fast = _run(fn, arrays)
    reference()
    slow = _run(fn, arrays)
    for a, b in zip(fast, slow):
        np.testing.assert_array_equal(a, b)  # the same sums in the same order


@pytest.mark.parametrize("kernel, stride, padding, dilation", POOLS)
def test_max_pool_compiled_equals_reference(reference, kernel, stride, padding, dilation):
    rng = np.random.default_rng(2)
    x = rng.integers(-3, 3, (2, 3, 7, 8)).astype(np.float32)  # many ties
    x[0, 0, 0, :3] = np.nan
    x[1, 2, 3, 3] = np.nan

    def fn(t):
        return F.max_pool2d(t, kernel, stride, padding, dilation)
    fast = _run(fn, [x])
    reference()
    slow = _run(fn, [x])
    np.testing.assert_array_equal(fast[0], slow[0])  # nans in the same places, too
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-6, atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CONVS[:3])
def test_the_reference_path_gradchecks(reference, xs, ws, stride, padding, dilation, groups):
    reference()
    rng = np.random.default_rng(3)
    x, w = (gf.tensor(rng.standard_normal(s), requires_grad=True) for s in (xs, ws))
    gf.gradgradcheck(lambda x, w: F.conv2d(x, w, None, stride, padding, dilation, groups), (x, w))
    p = gf.tensor(rng.permutation(np.prod(xs)).reshape(xs) * 0.1, requires_grad=True)
    gf.gradcheck(lambda t: F.max_pool2d(t, 2, 1, 1), (p,))
