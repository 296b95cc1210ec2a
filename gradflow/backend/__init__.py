"""Devices and the array backends behind them: the one place that knows NumPy and CuPy exist.

A `Device` names where arrays live (`cpu`, `cuda`, `cuda:N`) and carries the backend that computes
there: `device.xp` is the array module (numpy or cupy) and `device.backend` holds the few pieces
that differ between them (scatter-add, host copies, synchronisation, the random generator).
Devices are interned, so `a.device is b.device` is the cheap test the hot path uses.
"""
from __future__ import annotations

import os
import sys

from . import debug, numpy_backend

__all__ = [
    "Device", "DeviceError", "device", "get_device", "default_device", "set_default_device",
    "device_of", "is_array", "xp_of", "move", "broadcast_to", "dtype", "quiet_fp", "float16", "float32", "float64", "int8", "int16", "int32",
    "int64", "uint8", "bool_", "cuda_available", "cuda_device_count", "manual_seed",
    "set_debug", "is_debug",
]

set_debug = debug.set_debug
is_debug = debug.is_debug



def dtype(d):
    """`d` as the dtype of a gradflow tensor: bool, a signed or unsigned integer, or a float.

    gradflow has no complex, string or object tensors (its gradient rules and gradcheck are
    for real numbers), so those are refused here, where every dtype argument passes.

    Args:
        d: a dtype, its name ("float32") or a NumPy type; gf.float32 and friends are dtypes.

    Returns:
        The NumPy dtype object (CuPy uses the same ones).

    Raises:
        TypeError: `d` is not a dtype, or one gradflow has no tensors of.

    Example:
        >>> gf.dtype("float64")                 # dtype('float64')
    """
    if d is None:  # NumPy reads None as float64: a silent default no caller means
        raise TypeError("dtype: got None; pass a dtype such as gf.float32")
    try:
        dt = numpy_backend.np.dtype(d)
    except TypeError as exc:
        raise TypeError(f"dtype: {d!r} is not a dtype ({exc})") from None
    if dt.kind not in "biuf" or dt.itemsize > 8:
        raise TypeError(f"gradflow tensors hold bool, integers and float16/32/64, not {dt}: "
                        "gradflow has no complex, string or object tensors")
    return dt


def quiet_fp():
    """A context in which NumPy does not warn about a result that is inf or nan.

    Where inf or nan is the documented result (log 0 = -inf, x / 0, sqrt(-1) = nan, exp(1000) =
    inf) NumPy would print a RuntimeWarning pointing into gradflow's source; PyTorch says nothing,
    and neither does CuPy. Used by the ops whose results can be such values and around the
    backward pass, never process-wide. Anomaly mode (`gf.autograd.detect_anomaly`) is the tool
    that finds where a nan came from.

    Example:
        >>> with B.quiet_fp():
        ...     y = xp.log(x)
    """
    return numpy_backend.np.errstate(divide="ignore", invalid="ignore", over="ignore")


float16 = dtype("float16")
float32 = dtype("float32")
float64 = dtype("float64")
int8 = dtype("int8")
int16 = dtype("int16")
int32 = dtype("int32")
int64 = dtype("int64")
uint8 = dtype("uint8")
bool_ = dtype("bool")

CUDA_INSTALL_HINT = (
    "install CuPy for your CUDA version with the project's extra, e.g. "
    "`pip install -e '.[cuda12]'` (CUDA 12.x) or `pip install -e '.[cuda13]'` (CUDA 13.x)"
)


class DeviceError(RuntimeError):
    """A device was asked for that cannot be used, or tensors from two devices were mixed."""


class Device:
    """Where arrays live and which backend computes on them; get one with `gradflow.device()`."""

    __slots__ = ("type", "index", "backend", "xp", "_name")

    def __init__(self, type_: str, index: int, backend) -> None:
        self.type = type_
        self.index = index
        self.backend = backend
        self.xp = backend.xp
        self._name = "cpu" if type_ == "cpu" else f"cuda:{index}"

    def __repr__(self) -> str:
        return f"device('{self._name}')"

    def __str__(self) -> str:
        return self._name

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = get_device(other)
            except (ValueError, DeviceError):
                return False
        return self is other

    def __hash__(self) -> int:
        return hash(self._name)

    def __reduce__(self):
        # Pickling stores the name, so a checkpoint does not drag a backend module along.
        return (get_device, (self._name,))

    def synchronize(self) -> None:
        """Block until all queued work on this device has finished (a no-op on the CPU)."""
        self.backend.synchronize(self.index)


_devices: dict[str, Device] = {}
_cupy_backend = None


_seed: int | None = None  # the last manual_seed, applied to a backend loaded after it


def _load_cupy_backend():
    global _cupy_backend
    if _cupy_backend is None:
        from . import cupy_backend  # imported lazily: CuPy is optional and slow to import
        if _seed is not None:
            cupy_backend.manual_seed(_seed)  # gf.manual_seed may have run before CuPy loaded
        _cupy_backend = cupy_backend
    return _cupy_backend


def cuda_available() -> bool:
    """True when CuPy is installed and at least one CUDA GPU is visible."""
    return cuda_device_count() > 0


def cuda_device_count() -> int:
    """Number of visible CUDA GPUs (0 when CuPy is not installed or no GPU is visible)."""
    try:
        cb = _load_cupy_backend()
    except Exception:  # not installed, or a broken install (missing CUDA libraries)
        return 0
    return cb.device_count()


def _parse(spec: str) -> tuple[str, int]:
    s = spec.strip().lower()
    if s == "cpu":
        return "cpu", 0
    if s == "cuda":
        return "cuda", 0
    if s.startswith("cuda:"):
        idx = s[5:]
        if idx.isdigit():
            return "cuda", int(idx)
    raise ValueError(f"unknown device {spec!r}: expected 'cpu', 'cuda' or 'cuda:N'")


def get_device(spec=None) -> Device:
    """Return the `Device` for `spec` ('cpu', 'cuda', 'cuda:N', a Device, or None for the default).

    Raises:
        ValueError: the spec is not a device name.
        DeviceError: CUDA was asked for but CuPy is missing or no such GPU is visible.
    """
    if spec is None:
        return default_device()
    if isinstance(spec, Device):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"device must be a str or Device, got {type(spec).__name__}: {spec!r}")
    dev = _devices.get(spec)
    if dev is not None:
        return dev
    type_, index = _parse(spec)
    name = "cpu" if type_ == "cpu" else f"cuda:{index}"
    dev = _devices.get(name)
    if dev is None:
        if type_ == "cpu":
            dev = Device("cpu", 0, numpy_backend)
        else:
            dev = Device("cuda", index, _cuda_backend_for(name, index))
        _devices[name] = dev
    _devices[spec] = dev
    return dev


def _cuda_backend_for(name: str, index: int):
    try:
        cb = _load_cupy_backend()
    except ImportError as exc:
        raise DeviceError(
            f"device '{name}' needs CuPy, which is not installed ({exc}); {CUDA_INSTALL_HINT}, "
            "or use GRADFLOW_DEVICE=cpu"
        ) from None
    except Exception as exc:  # CuPy is there but cannot load (e.g. CUDA libraries missing)
        raise DeviceError(
            f"device '{name}' needs CuPy, which failed to load ({type(exc).__name__}: {exc}); "
            f"{CUDA_INSTALL_HINT}, or use GRADFLOW_DEVICE=cpu"
        ) from None
    count = cb.device_count()
    if count == 0:
        raise DeviceError(
            f"device '{name}' asked for, but CuPy sees no CUDA GPU (no NVIDIA driver, a CuPy "
            "wheel for another CUDA version, or CUDA_VISIBLE_DEVICES hides them); on a GPU "
            f"machine {CUDA_INSTALL_HINT}; on this machine use GRADFLOW_DEVICE=cpu"
        )
    if index >= count:
        raise DeviceError(f"device '{name}' asked for, but only {count} CUDA GPU(s) are visible "
                          f"(cuda:0 to cuda:{count - 1})")
    return cb


device = get_device

_default: Device | None = None


def loadable_device(name: str) -> Device:
    """The device named `name` when it can be used here, else the CPU: where an unpickled
    tensor or parameter goes (a GPU checkpoint loads on a CPU-only machine).

    Example:
        >>> loadable_device("cuda:0")          # device('cpu') on a machine without CuPy
    """
    try:
        return get_device(name)
    except (DeviceError, ValueError):
        return get_device("cpu")


def default_device() -> Device:
    """The device new tensors go to: `set_default_device`, else GRADFLOW_DEVICE, else cpu."""
    global _default
    if _default is None:
        spec = os.environ.get("GRADFLOW_DEVICE", "").strip() or "cpu"
        try:
            _default = get_device(spec)
        except ValueError:
            raise ValueError(
                f"GRADFLOW_DEVICE={spec!r} is not a device: expected 'cpu', 'cuda' or 'cuda:N'"
            ) from None
    return _default


def set_default_device(spec) -> Device:
    """Make `spec` the default device for new tensors; returns the Device."""
    global _default
    _default = get_device(spec)
    return _default


_np_ndarray = numpy_backend.np.ndarray
_cupy_failed = False  # CuPy is imported but gradflow's CuPy backend could not load


def _cupy_if_imported():
    # An array can be CuPy's before gradflow has loaded its CuPy backend (the user made it with
    # cupy directly): once `cupy` is imported, load the backend, so its arrays are recognised
    # instead of falling through to NumPy's implicit (and refused) conversion.
    global _cupy_failed
    if _cupy_backend is not None:
        return _cupy_backend
    if _cupy_failed or "cupy" not in sys.modules:
        return None
    try:
        return _load_cupy_backend()
    except Exception:  # a broken install: its arrays cannot be ours either
        _cupy_failed = True
        return None


def is_array(obj) -> bool:
    """True when obj is a NumPy or CuPy ndarray.

    Example:
        >>> is_array(numpy.zeros(2)), is_array([0.0, 0.0])    # (True, False)
    """
    cb = _cupy_if_imported()
    if cb is not None and isinstance(obj, cb.ndarray):
        return True
    return isinstance(obj, _np_ndarray)


def device_of(array) -> Device:
    """The Device an ndarray lives on.

    Raises:
        TypeError: `array` is neither a NumPy nor a CuPy array.

    Example:
        >>> device_of(numpy.zeros(2))                             # device('cpu')
    """
    cb = _cupy_if_imported()
    if cb is not None and isinstance(array, cb.ndarray):
        return get_device(f"cuda:{array.device.id}")
    if isinstance(array, _np_ndarray):
        return get_device("cpu")
    raise TypeError(f"not a NumPy or CuPy array: {type(array).__name__}")


def xp_of(array):
    """The array module that computes on `array`: cupy for a CuPy array, else numpy.

    Ops call it in `forward`, which gets raw arrays (or Python numbers), so that one forward
    serves both backends.

    Example:
        >>> xp_of(numpy.zeros(2)).exp                             # numpy.exp
    """
    if array.__class__ is _np_ndarray:  # the common case first: one identity test
        return numpy_backend.np
    cb = _cupy_if_imported()
    if cb is not None and isinstance(array, cb.ndarray):
        return cb.xp
    return numpy_backend.np


def broadcast_to(array, shape):
    """A read-only view of `array` repeated along new leading and size-1 axes to `shape`:
    `xp.broadcast_to`, by the array's own backend (the CPU's builds it faster).

    Example:
        >>> broadcast_to(numpy.zeros((1, 3)), (2, 3)).strides    # (0, 8)
    """
    if array.__class__ is _np_ndarray:
        return numpy_backend.broadcast_to(array, tuple(shape))
    return xp_of(array).broadcast_to(array, shape)


def move(array, device: Device, source: Device | None = None):
    """`array` on `device`: itself when it is already there, else a copy (through the host
    between two devices, which CuPy's peer copies would need their own setup for).

    Args:
        array: a NumPy or CuPy array.
        device: where it should be.
        source: where it is, when the caller knows (a Tensor's device); else looked up.

    Example:
        >>> move(numpy.zeros(2), get_device("cpu"))               # the same array
    """
    src = device_of(array) if source is None else source
    if src is device:
        return array
    return device.backend.asarray(src.backend.to_host(array), index=device.index)


def manual_seed(seed: int) -> None:
    """Seed the random generators of the CPU and of every CUDA device, also of those first
    used (and of CuPy first loaded) after this call."""
    global _seed
    if not hasattr(seed, "__index__") or isinstance(seed, bool):
        raise TypeError(f"manual_seed: the seed must be an int, got {seed!r}")
    # Any int, negative ones included (as in PyTorch): taken modulo 2**64.
    seed = seed.__index__() & 0xFFFF_FFFF_FFFF_FFFF
    _seed = seed
    numpy_backend.manual_seed(seed)
    if _cupy_backend is not None:
        _cupy_backend.manual_seed(seed)


def host_numpy():
    """The NumPy module, for code that must hand arrays to host-only libraries (file I/O)."""
    return numpy_backend.np
