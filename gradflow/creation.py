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


def array_from_data(data, dtype=None, device=None):
    """`data` as a new array and its Device, by `tensor`'s rules (which `Tensor(data)` follows).

    Args:
        data, dtype, device: as for `tensor`.

    Returns:
        (array, Device): a copy of the data, on the device, with the dtype.

    Example:
        >>> array_from_data([1.0, 2.0])                   # (array([1., 2.], dtype=float32), cpu)
    """
    dev = B.get_device(device) if device is not None else None
    if isinstance(data, Tensor) or B.is_array(data):
        # A Tensor or a CuPy array stays where it is; host data, NumPy arrays included, goes to
        # the default device (PyTorch's rule), so the same code runs on CPU or CUDA.
        arr, src = (data.data, data.device) if isinstance(data, Tensor) else \
            (data, B.device_of(data))
        if dev is None:
            host_array = src.type == "cpu" and not isinstance(data, Tensor)
            dev = B.default_device() if host_array else src
        arr = B.move(arr, dev, src)
        dtype = B.dtype(arr.dtype if dtype is None else dtype)  # refuses complex and objects
        with dev.backend.use(dev.index):
            if arr.dtype != dtype:
                return arr.astype(dtype), dev
            return arr.copy(), dev  # gf.tensor copies, like torch.tensor
    dev = dev or B.default_device()
    try:
        arr = B.host_numpy().asarray(data)
    except ValueError as exc:  # ragged nested lists: NumPy's message names no data
        raise ValueError(f"cannot make a tensor from {type(data).__name__}: the nested lists "
                         f"have different lengths ({exc})") from None
    if dtype is not None:
        dtype = B.dtype(dtype)
    else:
        kinds = {"f": B.float32, "i": B.int64, "u": B.int64, "b": B.bool_}
        if arr.dtype.kind not in kinds:
            raise TypeError(f"cannot make a tensor from {type(data).__name__} with dtype "
                            f"{arr.dtype}: only numbers and booleans")
        dtype = kinds[arr.dtype.kind]
    return dev.backend.asarray(arr, dtype=dtype, index=dev.index), dev


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of `data`.

    Python floats become float32 (the default float dtype), ints int64 and bools bool; a NumPy or
    CuPy array keeps its dtype (float64 stays float64) unless `dtype` says otherwise. Without
    `device`, a Tensor or a CuPy array keeps its device, and host data (numbers, lists, NumPy
    arrays) goes to the default device, as in PyTorch.

    Args:
        data: a number, nested lists, a NumPy/CuPy array or a Tensor.
        dtype: the element type (default float32; gf.float64, gf.int64, gf.bool_, ...).
        device: 'cpu', 'cuda', 'cuda:N' or a Device (default: a Tensor's or CuPy array's own
            device, else GRADFLOW_DEVICE, else cpu).
        requires_grad: record ops on the result for autograd (floating-point dtypes only).

    Returns:
        A leaf Tensor.

    Raises:
        TypeError: data is not numeric (strings, objects), or requires_grad=True for an integer
            or bool dtype.
        DeviceError: the device cannot be used (CUDA without CuPy or a GPU).

    Example:
        >>> x = gf.tensor([[1., 2.], [3., 4.]], requires_grad=True)
        >>> gf.tensor([1, 2]).dtype                          # int64
    """
    return Tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like `tensor`, but data already on the right device with the right dtype is shared.

    An array or Tensor that needs no conversion is used as is (no copy: writes to one show in the
    other); anything else is copied as by `tensor`.

    Args:
        data: a number, nested lists, a NumPy/CuPy array or a Tensor.
        dtype: the element type (default: data's own, floats as float32 for Python data).
        device: the device (default: data's own, else the default device).

    Returns:
        A Tensor.

    Example:
        >>> a = numpy.zeros(3); t = gf.as_tensor(a); a[0] = 1.0   # t sees the change
    """
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
    if isinstance(fill, (str, bytes)) or not isinstance(fill, (int, float)) and \
            not hasattr(fill, "__float__"):
        raise TypeError(f"{name}: the fill value must be a number, got {fill!r:.60}")
    dt = _float_dtype(dtype)
    with dev.backend.use(dev.index):  # allocate on the tensor's own GPU, not the current one
        arr = dev.xp.full(shape, fill, dtype=dt)
    return _finish(arr, dev, requires_grad)


def zeros(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with 0.

    Args:
        *shape: the shape, as ints or one tuple/list.
        dtype: the element type (default float32; gf.float64, gf.int64, gf.bool_, ...).
        device: 'cpu', 'cuda', 'cuda:N' or a Device (default: GRADFLOW_DEVICE, else cpu).
        requires_grad: record ops on the result for autograd (floating-point dtypes only).

    Returns:
        A leaf Tensor.

    Raises:
        ValueError: a shape entry is not a non-negative int.

    Example:
        >>> gf.zeros(2, 3)                      # or gf.zeros((2, 3), dtype=gf.float64)
    """
    return _filled(0, shape, dtype, device, requires_grad, "zeros")


def ones(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with 1.

    Args:
        *shape: the shape, as ints or one tuple/list.
        dtype: the element type (default float32; gf.float64, gf.int64, gf.bool_, ...).
        device: 'cpu', 'cuda', 'cuda:N' or a Device (default: GRADFLOW_DEVICE, else cpu).
        requires_grad: record ops on the result for autograd (floating-point dtypes only).

    Returns:
        A leaf Tensor.

    Example:
        >>> gf.ones(3, dtype=gf.int64)          # tensor([1, 1, 1])
    """
    return _filled(1, shape, dtype, device, requires_grad, "ones")


def full(shape, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of `shape` filled with `fill_value` (float32 unless `dtype` says otherwise).

    Args:
        shape: an int or a tuple of ints.
        fill_value: the value.
        dtype: the element type (default float32; gf.float64, gf.int64, gf.bool_, ...).
        device: 'cpu', 'cuda', 'cuda:N' or a Device (default: GRADFLOW_DEVICE, else cpu).
        requires_grad: record ops on the result for autograd (floating-point dtypes only).

    Returns:
        A leaf Tensor.

    Example:
        >>> gf.full((2, 2), 0.5)
    """
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return _filled(fill_value, shape, dtype, device, requires_grad, "full")


def arange(start, stop=None, step=1, dtype=None, device=None) -> Tensor:
    """Evenly spaced values in [start, stop) with `step`, like numpy.arange.

    Args:
        start: the first value (the stop when `stop` is omitted: arange(n) is 0..n-1).
        stop: the end, excluded.
        step: the spacing (default 1).
        dtype: default int64 when start, stop and step are all ints, else float32.
        device: the device (default: the default device).

    Returns:
        A 1-D leaf Tensor.

    Raises:
        ValueError: step is 0, or a value is nan or infinite (all three are named).
        TypeError: a value is not a number.

    Example:
        >>> gf.arange(4)                        # tensor([0, 1, 2, 3])
        >>> gf.arange(0, 1, 0.25)               # tensor([0., 0.25, 0.5, 0.75])
    """
    if stop is None:
        start, stop = 0, start
    _check_range(start, stop, step)
    dev = B.get_device(device)
    if dtype is None:
        ints = all(hasattr(v, "__index__") for v in (start, stop, step))
        dtype = B.int64 if ints else B.float32
    with dev.backend.use(dev.index):
        arr = dev.xp.arange(start, stop, step, dtype=B.dtype(dtype))
    return _make(arr, dev, False, None)


def _check_range(start, stop, step):
    # NumPy would raise ZeroDivisionError or "cannot compute length" here, naming nothing.
    values = {"start": start, "stop": stop, "step": step}
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__index__"):
            raise TypeError(f"arange: {name} must be a number, got {v!r}")
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"arange: {name} must be finite, got {v!r} "
                             f"(start={start!r}, stop={stop!r}, step={step!r})")
    if step == 0:
        raise ValueError(f"arange: step must not be 0 (start={start!r}, stop={stop!r})")


def eye(n: int, m: int | None = None, dtype=None, device=None,
        requires_grad: bool = False) -> Tensor:
    """An n x m matrix with ones on the diagonal and zeros elsewhere.

    Args:
        n: the number of rows.
        m: the number of columns (default n).
        dtype: the element type (default float32; gf.float64, gf.int64, gf.bool_, ...).
        device: 'cpu', 'cuda', 'cuda:N' or a Device (default: GRADFLOW_DEVICE, else cpu).
        requires_grad: record ops on the result for autograd (floating-point dtypes only).

    Returns:
        A 2-D leaf Tensor.

    Example:
        >>> gf.eye(2)                           # tensor([[1., 0.], [0., 1.]])
    """
    dev = B.get_device(device)
    _size((n,) if m is None else (n, m), "eye")
    with dev.backend.use(dev.index):
        arr = dev.xp.eye(n, m, dtype=_float_dtype(dtype))
    return _finish(arr, dev, requires_grad)


def _like(x, dtype, device):
    return (x.dtype if dtype is None else dtype), (x.device if device is None else device)


def zeros_like(x, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Zeros with x's shape, dtype and device (each can be overridden).

    Args:
        x: the Tensor whose shape, dtype and device are copied.
        dtype, device: override x's dtype / device.
        requires_grad: record ops on the result for autograd (floating-point dtypes only).

    Returns:
        A leaf Tensor.

    Example:
        >>> gf.zeros_like(gf.arange(3))         # tensor([0, 0, 0]) (int64, like its model)
    """
    dt, dev = _like(x, dtype, device)
    return zeros(x.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def ones_like(x, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Ones with x's shape, dtype and device (each can be overridden).

    Args:
        x: the Tensor whose shape, dtype and device are copied.
        dtype, device: override x's dtype / device.
        requires_grad: record ops on the result for autograd (floating-point dtypes only).

    Returns:
        A leaf Tensor.

    Example:
        >>> y.backward(gf.ones_like(y))         # the all-ones upstream gradient
    """
    dt, dev = _like(x, dtype, device)
    return ones(x.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def full_like(x, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """`fill_value` everywhere, with x's shape, dtype and device.

    Args:
        x: the Tensor whose shape, dtype and device are copied.
        dtype, device: override x's dtype / device.
        requires_grad: record ops on the result for autograd (floating-point dtypes only).
        fill_value: the value.

    Returns:
        A leaf Tensor.

    Example:
        >>> gf.full_like(gf.zeros(2), 7.0)      # tensor([7., 7.])
    """
    dt, dev = _like(x, dtype, device)
    return full(x.shape, fill_value, dtype=dt, device=dev, requires_grad=requires_grad)


def rand(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform draws in [0, 1) from the device's seeded generator (see `manual_seed`).

    Args:
        *shape: the shape, as ints or one tuple/list.
        dtype: the element type (float32 by default, or float64).
        device: 'cpu', 'cuda', 'cuda:N' or a Device (default: GRADFLOW_DEVICE, else cpu).
        requires_grad: record ops on the result for autograd (floating-point dtypes only).

    Returns:
        A leaf Tensor.

    Example:
        >>> gf.manual_seed(0); a = gf.rand(3); gf.manual_seed(0); b = gf.rand(3)   # a == b
    """
    dev = B.get_device(device)
    shape = _size(shape, "rand")
    with dev.backend.use(dev.index):
        arr = dev.backend.rng(dev.index).random(shape, dtype=_float_dtype(dtype))
    return _finish(arr, dev, requires_grad)


def randn(*shape, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal draws from the device's seeded generator (see `manual_seed`).

    Args:
        *shape: the shape, as ints or one tuple/list.
        dtype: the element type (float32 by default, or float64).
        device: 'cpu', 'cuda', 'cuda:N' or a Device (default: GRADFLOW_DEVICE, else cpu).
        requires_grad: record ops on the result for autograd (floating-point dtypes only).

    Returns:
        A leaf Tensor.

    Example:
        >>> w = gf.randn(784, 10, requires_grad=True)
    """
    dev = B.get_device(device)
    shape = _size(shape, "randn")
    with dev.backend.use(dev.index):
        arr = dev.backend.rng(dev.index).standard_normal(shape, dtype=_float_dtype(dtype))
    return _finish(arr, dev, requires_grad)


def randint(low: int, high: int, shape, device=None) -> Tensor:
    """Integers drawn uniformly from [low, high), int64, from the device's generator.

    Args:
        low: the smallest value.
        high: one past the largest value.
        shape: an int or a tuple of ints.
        device: the device (default: the default device).

    Returns:
        An int64 leaf Tensor.

    Raises:
        ValueError: high <= low.

    Example:
        >>> labels = gf.randint(0, 10, (32,))
    """
    dev = B.get_device(device)
    shape = _size((shape,) if isinstance(shape, int) else tuple(shape), "randint")
    if not (hasattr(low, "__index__") and hasattr(high, "__index__")) or high <= low:
        raise ValueError(f"randint: needs ints low < high, got low={low!r}, high={high!r}")
    with dev.backend.use(dev.index):
        arr = dev.backend.rng(dev.index).integers(low, high, size=shape, dtype=B.int64)
    return _make(arr, dev, False, None)


def randperm(n: int, device=None) -> Tensor:
    """A random permutation of 0..n-1 (int64), from the device's generator.

    Args:
        n: the number of elements.
        device: the device (default: the default device).

    Returns:
        An int64 leaf Tensor of shape (n,).

    Example:
        >>> order = gf.randperm(5)              # e.g. tensor([3, 0, 4, 1, 2])
    """
    dev = B.get_device(device)
    arr = dev.backend.randperm(n, dev.index)
    return _make(arr, dev, False, None)


def rand_like(x, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform [0, 1) draws with x's shape, dtype and device.

    Args:
        x: the Tensor whose shape, dtype and device are copied.
        dtype, device: override x's dtype / device.
        requires_grad: record ops on the result for autograd (floating-point dtypes only).

    Returns:
        A leaf Tensor.

    Example:
        >>> noise = gf.rand_like(x)
    """
    dt, dev = _like(x, dtype, device)
    return rand(x.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def randn_like(x, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal draws with x's shape, dtype and device.

    Args:
        x: the Tensor whose shape, dtype and device are copied.
        dtype, device: override x's dtype / device.
        requires_grad: record ops on the result for autograd (floating-point dtypes only).

    Returns:
        A leaf Tensor.

    Example:
        >>> noise = gf.randn_like(x)
    """
    dt, dev = _like(x, dtype, device)
    return randn(x.shape, dtype=dt, device=dev, requires_grad=requires_grad)


def manual_seed(seed: int) -> None:
    """Make random draws reproducible: re-seed the generator of the CPU and of every GPU.

    Every device's generator restarts from `seed` (each GPU gets the same seed, like
    torch.manual_seed); a GPU first used after this call is seeded with it too. Draws on the CPU
    and on a GPU are not the same numbers: each backend has its own generator.

    Args:
        seed: an int.

    Example:
        >>> gf.manual_seed(0); a = gf.randn(3)
        >>> gf.manual_seed(0); b = gf.randn(3)  # b equals a
    """
    B.manual_seed(seed)
