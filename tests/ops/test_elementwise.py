"""Elementwise ops: values against NumPy, operators, Python numbers, comparisons, dtype rules,
kinks and ties, and the errors for bad input."""
import math
import warnings

import numpy as np
import pytest

import gradflow as gf


def t(values, device, dtype=gf.float32, requires_grad=False):
    return gf.tensor(values, dtype=dtype, device=device, requires_grad=requires_grad)


def grad_of(fn, x):
    """d sum(fn(x)) / dx, via backward."""
    x = x.detach().requires_grad_() if x.grad_fn is not None else x
    fn(x).sum().backward()
    return x.grad.numpy()


UNARY = {
    "exp": (gf.exp, np.exp), "log": (gf.log, np.log), "sqrt": (gf.sqrt, np.sqrt),
    "sin": (gf.sin, np.sin), "cos": (gf.cos, np.cos), "tanh": (gf.tanh, np.tanh),
    "abs": (gf.abs, np.abs), "neg": (gf.neg, np.negative),
    "relu": (gf.relu, lambda a: np.maximum(a, 0)),
    "sigmoid": (gf.sigmoid, lambda a: 1 / (1 + np.exp(-a))),
    "leaky_relu": (gf.leaky_relu, lambda a: np.where(a > 0, a, 0.01 * a)),
    "gelu": (gf.gelu, lambda a: 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi)
                                                       * (a + 0.044715 * a ** 3)))),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@pytest.mark.parametrize("dtype", [gf.float32, gf.float64])
def test_unary_values_and_dtype(device, name, dtype):
    fn, ref = UNARY[name]
    a = np.array([[0.3, 1.7, 2.5], [0.9, 1.1, 3.0]])
    if name not in ("log", "sqrt"):
        a = a * np.array([1, -1, 1])
    y = fn(t(a, device, dtype))
    assert y.dtype == dtype and y.shape == a.shape and y.device is device
    np.testing.assert_allclose(y.numpy(), ref(a), rtol=1e-6 if dtype == gf.float32 else 1e-12)


def test_method_and_function_forms_agree(device):
    x = t([[-1.5, 0.5], [2.0, -0.25]], device)
    for name in ("exp", "tanh", "sigmoid", "relu", "abs", "sin", "cos"):
        np.testing.assert_array_equal(getattr(x, name)().numpy(), getattr(gf, name)(x).numpy())
    np.testing.assert_array_equal(abs(x).numpy(), gf.abs(x).numpy())
    np.testing.assert_array_equal((-x).numpy(), gf.neg(x).numpy())
    assert (+x) is x


def test_operators_with_python_numbers_on_either_side(device):
    a = np.array([0.5, 1.5, 2.5])
    x = t(a, device)
    cases = [(x + 2, a + 2), (2 + x, 2 + a), (x - 2, a - 2), (2 - x, 2 - a), (x * 3, a * 3),
             (3 * x, 3 * a), (x / 4, a / 4), (4 / x, 4 / a), (x ** 2, a ** 2), (2 ** x, 2 ** a),
             (x ** 0.5, a ** 0.5), (gf.add(1.0, x), 1 + a), (gf.sub(1.0, x), 1 - a),
             (gf.mul(x, 2), 2 * a), (gf.div(1.0, x), 1 / a), (gf.pow(x, 3), a ** 3)]
    for y, ref in cases:
        assert isinstance(y, gf.Tensor) and y.dtype == gf.float32
        np.testing.assert_allclose(y.numpy(), ref, rtol=1e-6)


def test_numpy_array_on_the_left_reaches_the_tensor_operator():
    # NumPy arrays are operands of CPU tensors only: pinned whatever GRADFLOW_DEVICE is.
    x = gf.tensor([1.0, 2.0], device="cpu", requires_grad=True)
    a = np.array([10.0, 20.0], dtype=np.float32)
    for y, ref in [(a + x, [11, 22]), (a - x, [9, 18]), (a * x, [10, 40]), (a / x, [10, 10])]:
        assert isinstance(y, gf.Tensor), type(y)
        np.testing.assert_allclose(y.numpy(), ref)
    (a * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), a)


def test_scalar_gradients(device):
    x = t([0.5, 2.0], device, gf.float64, requires_grad=True)
    np.testing.assert_allclose(grad_of(lambda v: 3 - v, x), [-1, -1])
    x.grad = None
    np.testing.assert_allclose(grad_of(lambda v: 2 / v, x), -2 / np.array([0.5, 2.0]) ** 2)
    x.grad = None
    np.testing.assert_allclose(grad_of(lambda v: 2 ** v, x), 2 ** np.array([0.5, 2]) * math.log(2))
    x.grad = None
    np.testing.assert_allclose(grad_of(lambda v: v ** 3, x), 3 * np.array([0.5, 2.0]) ** 2)


def test_pow_with_a_zero_or_negative_scalar_base_does_not_raise(device):
    x = t([1.0, 2.0], device, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        (0.0 ** x).sum().backward()  # d/dx 0**x = 0**x log 0: nan, as for a tensor base
        assert x.grad.shape == (2,)
        x.grad = None
        y = (-2.0) ** x  # integer exponents are real
        np.testing.assert_allclose(y.numpy(), [-2.0, 4.0])
        y.sum().backward()
        assert np.isnan(x.grad.numpy()).all()


# --- comparisons and logic -----------------------------------------------------------------------
def test_comparisons_return_bool_tensors_outside_the_graph(device):
    x = t([1.0, 2.0, 3.0], device, requires_grad=True)
    y = t([3.0, 2.0, 1.0], device)
    cases = [(x == y, [0, 1, 0]), (x != y, [1, 0, 1]), (x < y, [1, 0, 0]), (x <= y, [1, 1, 0]),
             (x > y, [0, 0, 1]), (x >= y, [0, 1, 1]), (x > 2, [0, 0, 1]), (2 < x, [0, 0, 1]),
             (x == 2.0, [0, 1, 0]), (2.0 >= x, [1, 1, 0])]
    for r, ref in cases:
        assert r.dtype == gf.bool_, r.dtype
        assert not r.requires_grad and r.grad_fn is None
        assert r.device is device
        np.testing.assert_array_equal(r.numpy(), np.array(ref, dtype=bool))


def test_logical_ops(device):
    x = t([1.0, 2.0, 3.0], device)
    np.testing.assert_array_equal(((x > 1) & (x < 3)).numpy(), [False, True, False])
    np.testing.assert_array_equal(((x < 2) | (x > 2)).numpy(), [True, False, True])
    np.testing.assert_array_equal((~(x > 1)).numpy(), [True, False, False])
    np.testing.assert_array_equal(gf.logical_and(x > 1, x < 3).numpy(), [False, True, False])
    np.testing.assert_array_equal(gf.logical_or(x < 2, x > 2).numpy(), [True, False, True])
    np.testing.assert_array_equal(gf.logical_not(x > 1).numpy(), [True, False, False])


def test_sign_is_not_differentiable(device):
    x = t([-2.0, 0.0, 3.0], device, requires_grad=True)
    s = gf.sign(x)
    assert s.dtype == gf.float32 and not s.requires_grad and s.grad_fn is None
    np.testing.assert_array_equal(s.numpy(), [-1, 0, 1])
    (s * x).sum().backward()  # sign acts as a constant: d(sign(x) x)/dx = sign(x)
    np.testing.assert_array_equal(x.grad.numpy(), [-1, 0, 1])


# --- int and bool tensors are never differentiable -----------------------------------------------
@pytest.mark.parametrize("dtype", [gf.int64, gf.int32, gf.bool_, gf.uint8])
def test_integer_and_bool_tensors_cannot_require_grad(device, dtype):
    with pytest.raises(TypeError, match=str(dtype)):
        gf.tensor([1, 0], dtype=dtype, device=device, requires_grad=True)
    with pytest.raises(TypeError, match=str(dtype)):
        gf.zeros(2, dtype=dtype, device=device).requires_grad_()
    with pytest.raises(TypeError, match=str(dtype)):
        gf.ones(2, dtype=dtype, device=device, requires_grad=True)


def test_ops_on_integer_tensors_are_not_recorded(device):
    x = t([1.0, 2.0], device, requires_grad=True)
    n = gf.tensor([3, 4], device=device)
    assert n.dtype == gf.int64
    m = n * 2 + 1
    assert m.dtype == gf.int64 and not m.requires_grad
    # a float tensor mixed with an int tensor: only the float one gets a gradient
    y = x * n
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])
    assert x.grad.dtype == gf.float32
    # a float op that yields ints/bools is cut from the graph
    assert not x.astype(gf.int64).requires_grad
    assert not (x > 1).requires_grad


def test_mixed_float_dtypes_give_each_gradient_its_own_dtype(device):
    a = t([1.0, 2.0, 3.0], device, gf.float32, requires_grad=True)
    b = t([4.0, 5.0, 6.0], device, gf.float64, requires_grad=True)
    for op in (lambda p, q: p * q, lambda p, q: p + q, lambda p, q: p / q, lambda p, q: p ** q,
               gf.maximum, lambda p, q: gf.where(p > 2, p, q),
               lambda p, q: gf.concatenate([p, q])):  # matmul refuses a mix: test_dtype_rules
        a.grad = b.grad = None
        y = op(a, b)
        assert y.dtype == gf.float64
        y.sum().backward()
        assert a.grad.dtype == gf.float32 and b.grad.dtype == gf.float64
    a.grad = None
    (a * b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [4, 5, 6])


# --- kinks and ties ------------------------------------------------------------------------------
def test_gradients_at_kinks_are_documented_values(device):
    x = t([-1.0, 0.0, 2.0], device, requires_grad=True)
    np.testing.assert_array_equal(grad_of(gf.relu, x), [0, 0, 1])  # 0 at 0
    x.grad = None
    np.testing.assert_array_equal(grad_of(gf.abs, x), [-1, 0, 1])  # 0 at 0
    x.grad = None
    np.testing.assert_allclose(grad_of(lambda v: gf.leaky_relu(v, 0.1), x), [0.1, 0.1, 1])


def test_maximum_minimum_split_ties_evenly(device):
    a = t([1.0, 2.0, 3.0], device, requires_grad=True)
    b = t([3.0, 2.0, 1.0], device, requires_grad=True)
    gf.maximum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [0, 0.5, 1])
    np.testing.assert_array_equal(b.grad.numpy(), [1, 0.5, 0])
    a.grad = b.grad = None
    gf.minimum(a, b).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [1, 0.5, 0])
    np.testing.assert_array_equal(b.grad.numpy(), [0, 0.5, 1])
    a.grad = None
    gf.maximum(a, 2.0).sum().backward()  # a tie with a Python number: half for the tensor
    np.testing.assert_array_equal(a.grad.numpy(), [0, 0.5, 1])
    np.testing.assert_array_equal(gf.maximum(a, 2.0).numpy(), [2, 2, 3])
    np.testing.assert_array_equal(gf.minimum(2.0, a).numpy(), [1, 2, 2])


def test_sigmoid_and_tanh_saturate_without_overflow(device):
    x = t([-1e4, -50.0, 0.0, 50.0, 1e4], device, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning fails the test
        s = gf.sigmoid(x)
        s.sum().backward()
    np.testing.assert_allclose(s.numpy(), [0, 0, 0.5, 1, 1], atol=1e-20)
    assert np.isfinite(x.grad.numpy()).all()
    np.testing.assert_allclose(x.grad.numpy()[2], 0.25)
    np.testing.assert_array_equal(gf.tanh(t([-1e4, 1e4], device)).numpy(), [-1, 1])


def test_gelu_matches_pytorch_tanh_approximation_values(device):
    # Reference values of torch.nn.functional.gelu(x, approximate='tanh') in float64.
    x = t([-3.0, -1.0, 0.0, 0.5, 2.0], device, gf.float64)
    ref = [-0.0036373920817729943, -0.15880800939172324, 0.0, 0.34571400982514394,
           1.954597694087775]
    np.testing.assert_allclose(gf.gelu(x).numpy(), ref, rtol=1e-12)


# --- clip and where ------------------------------------------------------------------------------
def test_clip(device):
    x = t([-2.0, -1.0, 0.0, 1.0, 2.0], device, requires_grad=True)
    y = gf.clip(x, -1.0, 1.0)
    np.testing.assert_array_equal(y.numpy(), [-1, -1, 0, 1, 1])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 1, 0])  # bounds included
    np.testing.assert_array_equal(x.clip(min=0.5).numpy(), [0.5, 0.5, 0.5, 1, 2])
    np.testing.assert_array_equal(x.clip(max=0.5).numpy(), [-2, -1, 0, 0.5, 0.5])
    # NumPy scalar bounds do not promote float32 to float64 (the gradient would not fit)
    z = gf.clip(x, np.float64(-1), np.float64(1))
    assert z.dtype == gf.float32
    z.sum().backward()
    with pytest.raises(ValueError, match="at least one"):
        gf.clip(x)
    with pytest.raises(TypeError, match="maximum"):
        gf.clip(x, gf.zeros(5, device=device))


def test_where(device):
    x = t([-1.0, 2.0, -3.0], device, requires_grad=True)
    y = t([10.0, 20.0, 30.0], device, requires_grad=True)
    r = gf.where(x > 0, x, y)
    np.testing.assert_array_equal(r.numpy(), [10, 2, 30])
    r.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 0])
    np.testing.assert_array_equal(y.grad.numpy(), [1, 0, 1])
    # Python numbers, a bool list and broadcasting
    np.testing.assert_array_equal(gf.where(x > 0, x, 0.0).numpy(), [0, 2, 0])
    np.testing.assert_array_equal(gf.where([True, False, True], 1.0, x).numpy(), [1, 2, 1])
    b = gf.where(t([[True], [False]], device, gf.bool_), x, y)
    assert b.shape == (2, 3)


def test_where_rejects_bad_input(device):
    x = t([1.0, 2.0], device)
    with pytest.raises(TypeError, match="float32"):
        gf.where(x, x, x)  # cond must be bool; the dtype is named
    with pytest.raises(TypeError, match="at least one"):
        gf.where(x > 0, 1.0, 2.0)


def test_astype_between_floats_is_differentiable(device):
    x = t([1.5, -2.5], device, requires_grad=True)
    y = x.astype(gf.float64)
    assert y.dtype == gf.float64 and y.requires_grad
    (y * y).sum().backward()
    assert x.grad.dtype == gf.float32
    np.testing.assert_allclose(x.grad.numpy(), [3.0, -5.0])
    assert gf.astype(x, "float32") is x
    assert x.double().dtype == gf.float64 and x.float() is x
    np.testing.assert_array_equal(x.long().numpy(), [1, -2])


def test_every_elementwise_result_keeps_arrays_for_0d(device):
    x = t(2.0, device, requires_grad=True)
    for y in (x + 1, 1 - x, x * x, gf.exp(x), gf.relu(x), gf.maximum(x, 1.0), x > 1,
              gf.where(x > 1, x, 0.0), gf.sign(x)):
        assert y.shape == ()
        assert isinstance(y.data, device.backend.ndarray), type(y.data)
