"""Making tensors: from data, filled, ranges, identity, and seeded random draws."""
from __future__ import annotations

from . import backend as B
from .tensor import Tensor

_make = Tensor._make


def _finish(arr, dev, requires_grad):
    t = _make(arr, dev, False, None)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _float_dtype(dtype):
    dt = B.float32 if dtype is None else B.dtype(dtype)
    return dt


def _size(shape, name):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"{name}: shape must be non-negative ints, got {shape!r}")
    return tuple(shape)


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data` (numbers, nested lists, a NumPy/CuPy array, a Tensor).

    Python floats become float32 (the default float dtype), ints int64, bools bool; an array
    keeps its dtype. `device` defaults to GRADFLOW_DEVICE (or cpu).

    Example:
        >>> x = gf.tensor([[1., 2.], [3., 4.]], requires_grad=True)
    """
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like `tensor`, but an array already on the right device and dtype is shared, not copied."""
    if B.is_array(data):
        dev = B.get_device(device) if device is not None else B.device_of(data)
        if dev is B.device_of(data) and (dtype is None or B.dtype(dtype) == data.dtype):
            return _make(data, dev, False, None)
    if isinstance(data, Tensor) and (device is None or B.get_device(device) is data.device) \
            and (dtype is None or B.dtype(dtype) == data.dtype):
        return data
    return Tensor(data, dtype=dtype, device=device)


def _filled(fill, shape, dtype, device, requires_grad, name):
    dev = B.get_device(device)
    shape = _size(shape, name)
    dt = _float_dtype(dtype)
    return _finish(dev.xp.full(shape, fill, dtype=dt), dev, requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros. Example: `gf.zeros(2, 3)` or `gf.zeros((2, 3), dtype=gf.float64)`."""
    return _filled(0, shape, dtype, device, requires_grad, "zeros")


def ones(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    return _filled(1, shape, dtype, device, requires_grad, "ones")


def full(shape, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of `shape` filled with `fill_value` (float32 unless `dtype` says otherwise)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _filled(fill_value, shape, dtype, device, requires_grad, "full")


def arange(start, stop=None, step=1, dtype=None, device=None) -> Tensor:
    """Evenly spaced values in [start, stop); int64 for integer arguments, else float32."""
    if stop is None:
        start, stop = 0, start
    dev = B.get_device(device)
    if dtype is None:
        ints = all(isinstance(v, int) for v in (start, stop, step))
        dtype = B.int64 if ints else B.float32
    return _make(dev.xp.arange(start, stop, step, dtype=B.dtype(dtype)), dev, False, None)


def eye(n: int, m: int | None = None, dtype=None, device=None,
        requires_grad: bool = False) -> Tensor:
    """An n x m identity matrix (m defaults to n)."""
    dev = B.get_device(device)
    return _finish(dev.xp.eye(n, m, dtype=_float_dtype(dtype)), dev, requires_grad)


def _like(x, dtype, device):
    return (x.dtype if dtype is None else dtype), (x.device if device is None else device)


def zeros_like(x, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Zeros with x's shape, dtype and device (each can be overridden)."""
    dt, dev = _like(x, dtype, device)
    return zeros(x.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Ones with x's shape, dtype and device."""
    dt, dev = _like(x, dtype, device)
    return ones(x.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """`fill_value` everywhere, with x's shape, dtype and device."""
    dt, dev = _like(x, dtype, device)
    return full(x.shape, fill_value, dtype=dt, device=dev, requires_grad=requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform draws in [0, 1) from the device's seeded generator (see `gf.manual_seed`)."""
    dev = B.get_device(device)
    shape = _size(shape, "rand")
    arr = dev.backend.rng(dev.index).random(shape, dtype=_float_dtype(dtype))
    return _finish(arr, dev, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal draws from the device's seeded generator (see `gf.manual_seed`)."""
    dev = B.get_device(device)
    shape = _size(shape, "randn")
    arr = dev.backend.rng(dev.index).standard_normal(shape, dtype=_float_dtype(dtype))
    return _finish(arr, dev, requires_grad)


def randint(low: int, high: int, shape, device=None) -> Tensor:
    """Integers drawn uniformly from [low, high), int64."""
    dev = B.get_device(device)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    arr = dev.backend.rng(dev.index).integers(low, high, size=shape, dtype=B.int64)
    return _make(arr, dev, False, None)


def randperm(n: int, device=None) -> Tensor:
    """A random permutation of 0..n-1, int64."""
    dev = B.get_device(device)
    arr = dev.backend.rng(dev.index).permutation(n).astype(B.int64)
    return _make(arr, dev, False, None)


def rand_like(x, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) draws with x's shape, dtype and device."""
    dt, dev = _like(x, dtype, device)
    return rand(x.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def randn_like(x, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal draws with x's shape, dtype and device."""
    dt, dev = _like(x, dtype, device)
    return randn(x.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def manual_seed(seed: int) -> None:
    """Make random draws reproducible: re-seed the generator of the CPU and of every GPU."""
    B.manual_seed(seed)
