"""Tensor: attributes, conversions to NumPy and Python, moves, repr."""
import numpy as np
import pytest

import gradflow as gf


def test_attributes(device):
    x = gf.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], device=device, requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and len(x) == 2
    assert x.dtype == gf.float32 and x.device is device
    assert x.requires_grad and x.grad is None and x.is_leaf and x.grad_fn is None
    y = x.sum()
    assert y.shape == () and y.ndim == 0 and y.size == 1
    assert not y.is_leaf and y.grad_fn is not None


def test_numpy_item_tolist_and_python_conversions(device):
    x = gf.tensor([[1.5, 2.5]], device=device)
    a = x.numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    np.testing.assert_array_equal(a, [[1.5, 2.5]])
    assert x.tolist() == [[1.5, 2.5]]
    assert gf.tensor([1, 2], device=device).tolist() == [1, 2]
    assert x[0, 1].item() == 2.5 and isinstance(x[0, 1].item(), float)
    assert isinstance(gf.tensor(3, device=device).item(), int)
    assert float(x[0, 0]) == 1.5 and int(x[0, 1]) == 2
    assert bool(gf.tensor([True], device=device)) is True
    np.testing.assert_array_equal(np.asarray(x), [[1.5, 2.5]])
    assert np.asarray(x, dtype=np.float64).dtype == np.float64
    with pytest.raises(ValueError, match=r"one element.*shape \(1, 2\)"):
        x.item()
    with pytest.raises(ValueError, match=r"shape \(1, 2\) is ambiguous"):
        bool(x)
    with pytest.raises(TypeError, match="0-d"):
        iter(gf.tensor(1.0, device=device))


def test_numpy_on_the_cpu_shares_memory():
    x = gf.tensor([1.0, 2.0], device="cpu")  # about the CPU: pinned whatever GRADFLOW_DEVICE is
    assert np.shares_memory(x.numpy(), x.data)


def test_to_cpu_and_dtype_moves(device):
    x = gf.tensor([1.0, 2.0], device=device, requires_grad=True)
    assert x.to(device) is x and x.to() is x
    assert x.to(str(device)) is x
    y = x.to(dtype=gf.float64)
    assert y.dtype == gf.float64 and y.requires_grad
    c = x.cpu()
    assert c.device is gf.device("cpu")
    np.testing.assert_array_equal(c.numpy(), [1.0, 2.0])
    (c * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])
    assert x.grad.device is device


def test_cuda_without_a_gpu_raises_device_error():
    if gf.cuda_available():
        pytest.skip("a GPU is present")
    with pytest.raises(gf.DeviceError, match=r"cuda12.*cuda13|cuda13.*cuda12|no CUDA GPU"):
        gf.tensor([1.0]).cuda()


def test_repr_shows_values_dtype_device_and_grad_fn(device):
    x = gf.tensor([[1.0, 2.0], [3.0, 4.0]], device=device, requires_grad=True)
    r = repr(x)
    assert r.startswith("tensor([[1., 2.],\n        [3., 4.]]") and "dtype=float32" in r
    assert "requires_grad=True" in r
    assert "grad_fn=<Mul>" in repr(x * 2) and "requires_grad" not in repr(x * 2)
    assert repr(gf.tensor([1, 2], device=device)).startswith("tensor([1, 2], dtype=int64")
    assert "dtype=float64" in repr(gf.tensor([1.0], dtype=gf.float64, device=device))
    assert "dtype=bool" in repr(gf.tensor([True], device=device))
    assert repr(gf.tensor(2.5, device=device)).startswith("tensor(2.5, dtype=float32")
    if device.type == "cpu":
        assert "device" not in r
    else:
        assert f"device='{device}'" in r
    assert str(x) == repr(x)


def test_repr_names_a_non_cpu_device():
    fake = gf.Device("cuda", 7, gf.backend.numpy_backend)  # NumPy computing as "cuda:7"
    r = repr(gf.tensor([1.0]).to(fake))
    assert "device='cuda:7'" in r and "grad_fn" not in r


def test_tensor_from_a_tensor_or_array_copies(device):
    x = gf.tensor([1.0, 2.0], device=device)
    y = gf.tensor(x)
    assert y.data is not x.data and y.device is device
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    a = np.array([1.0, 2.0])
    t = gf.tensor(a)
    a[0] = 9.0
    assert t.tolist() == [1.0, 2.0] and t.dtype == gf.float64  # an array keeps its dtype
    s = gf.as_tensor(a)  # as_tensor shares an array that needs no conversion
    a[1] = 7.0
    assert s.tolist() == [9.0, 7.0]
    assert gf.as_tensor(x) is x
    assert gf.as_tensor([1.0]).dtype == gf.float32
    assert gf.as_tensor(a, dtype=gf.float32).dtype == gf.float32


def test_hashable_and_usable_as_dict_keys(device):
    a, b = gf.zeros(2, device=device), gf.zeros(2, device=device)
    d = {a: 1, b: 2}
    assert d[a] == 1 and d[b] == 2


def test_float32_stays_float32_next_to_numpy_scalars_and_integer_tensors(device):
    host = gf.backend.host_numpy()
    w = gf.ones(3, device=device, requires_grad=True)
    labels = gf.arange(3, device=device)
    for y in (w * host.float64(0.5), host.sqrt(2.0) - w, w / host.array(2.0), w * labels,
              labels + w, gf.maximum(w, labels)):
        assert y.dtype == gf.float32, y
    (w * labels).sum().backward()
    assert w.grad.dtype == gf.float32 and w.grad.tolist() == [0.0, 1.0, 2.0]
    assert (labels + labels).dtype == gf.int64  # integers stay integers
    assert (w.astype(gf.float64) * w).dtype == gf.float64  # float64 wins over float32
    assert (w > host.float64(0.5)).dtype == gf.bool


def test_a_broadcast_error_names_the_op_and_the_shapes(device):
    with pytest.raises(ValueError, match=r"Add: operands could not be broadcast together with "
                                         r"shapes \(2, ?3\) \(4,\)"):
        gf.ones(2, 3, device=device) + gf.ones(4, device=device)
    with pytest.raises(ValueError, match=r"Mul: .*\(2, ?3\) \(4,\)"):
        gf.ones(2, 3, device=device) * gf.ones(4, device=device)
