"""One dtype rule everywhere: PyTorch's type promotion for elementwise ops, one dtype where
parameters meet data, and no complex tensors (README: "Dtypes")."""
import numpy as np
import pytest

import gradflow as gf

host = gf.backend.host_numpy()


def t(values, device, dtype):
    return gf.tensor(values, dtype=dtype, device=device)


# (left, right, the result's dtype): left and right are built on the device by `_operand`.
PROMOTION = [
    (("t", "float32"), ("t", "float64"), "float64"),    # two tensors with dims: the wider float
    (("t", "float32"), ("t", "int64"), "float32"),      # a float with an integer: the float
    (("t", "float16"), ("t", "int64"), "float16"),
    (("t", "float32"), ("t", "bool"), "float32"),
    (("t", "int32"), ("t", "int64"), "int64"),
    (("t", "bool"), ("t", "int32"), "int32"),
    (("t", "float32"), ("0d", "float64"), "float32"),   # a 0-d tensor of the same kind yields
    (("t", "int32"), ("0d", "int64"), "int32"),
    (("t", "int64"), ("0d", "float64"), "float64"),     # ... but not across kinds
    (("t", "float32"), ("n", "float64"), "float64"),    # a NumPy array is a tensor of its dtype
    (("t", "float32"), ("n", "int64"), "float32"),      # (NumPy alone: float64)
    (("t", "float32"), ("s", "float64"), "float32"),    # a NumPy scalar is a Python number
    (("t", "int64"), 1.5, "float32"),                   # an int tensor and a float: float32
    (("t", "bool"), 1.5, "float32"),
    (("t", "int32"), 2, "int32"),
    (("t", "bool"), 2, "int64"),
    (("t", "float16"), 2.5, "float16"),
]


def _make(spec, device):
    if not isinstance(spec, tuple):
        return spec
    kind, dtype = spec
    if kind == "t":
        return t([1, 2], device, dtype)
    if kind == "0d":
        return t(3, device, dtype)
    if kind == "s":
        return host.dtype(dtype).type(3)
    if device.type != "cpu":
        pytest.skip("a NumPy array meets only CPU tensors")
    return host.array([1, 2], dtype=dtype)


@pytest.mark.parametrize("left, right, expected", PROMOTION)
def test_elementwise_ops_promote_as_pytorch_does(device, left, right, expected):
    a, b = _make(left, device), _make(right, device)
    for op in (lambda p, q: p + q, lambda p, q: q * p, gf.maximum, lambda p, q: p > q):
        y = op(a, b)
        assert y.dtype == (gf.bool_ if y.dtype == gf.bool_ else gf.dtype(expected)), (op, y.dtype)


def test_mixed_floats_give_each_input_its_gradient_in_its_own_dtype(device):
    a = gf.tensor([1.0, 2.0], device=device, requires_grad=True)
    b = gf.tensor([3.0, 4.0], dtype=gf.float64, device=device, requires_grad=True)
    (a * b * 2.5).sum().backward()
    assert a.grad.dtype == gf.float32 and b.grad.dtype == gf.float64
    np.testing.assert_allclose(a.grad.numpy(), [7.5, 10.0])


def test_an_int_tensor_times_a_float_is_float32_and_differentiable_from_there(device):
    y = gf.arange(3, device=device) * 0.5
    assert y.dtype == gf.float32 and y.tolist() == [0.0, 0.5, 1.0]


@pytest.mark.parametrize("data_dtype", [gf.float64, gf.int64, gf.float16])
def test_a_float32_layer_refuses_other_data_in_the_forward_pass(device, data_dtype):
    # The bug: float64 data ran forward, then backward blamed Linear's gradient rule.
    layer = gf.nn.Linear(3, 2, device=device)
    x = gf.ones(4, 3, dtype=data_dtype, device=device)
    with pytest.raises(TypeError, match=rf"linear: input, weight, bias must share one dtype, got "
                                        rf"input {data_dtype}, weight float32, bias float32"):
        layer(x)
    assert layer(x.float()).dtype == gf.float32  # the fix the message names
    assert layer.to(dtype=gf.float64)(x.double()).dtype == gf.float64


@pytest.mark.parametrize("call, names", [
    (lambda a, b: a @ b, "matmul: a, b"),
    (lambda a, b: gf.nn.functional.conv2d(a.reshape(1, 1, 2, 2), b.reshape(1, 1, 2, 2)),
     "conv2d: input, weight"),
    (lambda a, b: gf.nn.functional.mse_loss(a, b), "mse_loss: input, target"),
    (lambda a, b: gf.nn.functional.layer_norm(a, (2,), weight=b[0]), "layer_norm: input, weight"),
    (lambda a, b: gf.nn.functional.batch_norm(a, None, None, weight=b[0], training=True),
     "batch_norm: input, weight"),
])
def test_where_parameters_meet_data_one_dtype_is_required(device, call, names):
    a = gf.ones(2, 2, device=device)
    b = gf.ones(2, 2, dtype=gf.float64, device=device)
    with pytest.raises(TypeError, match=f"{names}.* must share one dtype, got .*float32.*float64"):
        call(a, b)
    call(a, b.float())  # the same call with one dtype runs


def test_norm_modules_and_a_cnn_refuse_float64_data_naming_both_dtypes(device):
    for module, shape in ((gf.nn.BatchNorm1d(3), (4, 3)), (gf.nn.LayerNorm(3), (4, 3)),
                          (gf.nn.Conv2d(1, 2, 3), (1, 1, 5, 5))):
        module.to(device)
        with pytest.raises(TypeError, match="float64.*float32"):
            module(gf.ones(*shape, dtype=gf.float64, device=device))


@pytest.mark.parametrize("make", [
    lambda: gf.ones(2, dtype=host.complex64),
    lambda: gf.zeros(2, dtype="complex128"),
    lambda: gf.tensor(host.array([1j])),
    lambda: gf.tensor([1.0], dtype="complex64"),
    lambda: gf.ones(2).to(dtype="complex64"),
    lambda: gf.astype(gf.ones(2), "complex64"),
    lambda: gf.nn.Linear(2, 2, dtype="complex64"),
    lambda: gf.ones(2) + 1j,
    lambda: gf.ones(2, device="cpu") * host.array([1j, 2j]),
])
def test_complex_is_refused_everywhere_with_one_message(make):
    with pytest.raises(TypeError, match="complex"):
        make()


def test_gf_tensor_of_complex_python_data_is_refused_too():
    with pytest.raises(TypeError, match="complex128: only numbers and booleans"):
        gf.tensor([1j])


def test_operands_that_are_not_numbers_or_arrays_are_refused_by_name():
    with pytest.raises(TypeError, match="cannot combine a tensor with a list"):
        gf.ones(2) + [1.0, 2.0]
    with pytest.raises(TypeError, match="cannot combine a tensor with a str"):
        gf.ones(2) * "a"


def test_a_host_array_with_a_gpu_tensor_names_both_devices(monkeypatch):
    import _fake_gpu
    _fake_gpu.install(monkeypatch)
    x = gf.ones(2, device="cuda:0")
    with pytest.raises(gf.DeviceError, match=r"an array on cpu \(shape \(2,\)\) met a tensor on "
                                             r"cuda:0.*gf.tensor\(array, device='cuda:0'\)"):
        x + host.ones(2)
    assert (x + host.float64(2.0)).dtype == gf.float32  # a NumPy scalar is a number anywhere


def test_gf_dtype_names_what_it_refuses():
    assert gf.dtype("float64") == gf.float64 and gf.dtype(bool) == gf.bool_
    with pytest.raises(TypeError, match="got None"):
        gf.dtype(None)
    with pytest.raises(TypeError, match="'floot' is not a dtype"):
        gf.dtype("floot")
    with pytest.raises(TypeError, match="not float128|not longdouble|float16/32/64"):
        gf.dtype(host.longdouble)
