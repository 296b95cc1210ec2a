"""The CPU backend: NumPy arrays, np.add.at for scatter-add, one seeded Generator."""
import contextlib

import numpy as np

from . import host_malloc

if host_malloc.requested():  # GRADFLOW_MALLOC=tuned: the user asked; nothing changes otherwise
    host_malloc.tune()

xp = np
ndarray = np.ndarray
name = "numpy"
synchronous = True  # a value computed here can be read at once (no device to wait for)

_rng = np.random.default_rng()


def rng(index: int = 0) -> np.random.Generator:
    """The CPU's random generator (seeded by `manual_seed`)."""
    return _rng


def manual_seed(seed: int) -> None:
    """Re-seed the CPU generator so draws are reproducible."""
    global _rng
    _rng = np.random.default_rng(seed)


def randperm(n: int, index: int = 0) -> np.ndarray:
    """A random permutation of 0..n-1 (int64) from the CPU's generator."""
    return _rng.permutation(n).astype(np.int64, copy=False)


_CPU = contextlib.nullcontext()


def use(index: int = 0):
    """A context manager making device `index` current for new arrays: nothing to do on the CPU."""
    return _CPU


def asarray(data, dtype=None, index: int = 0):
    """Return `data` as a NumPy array of `dtype` (no copy when it already is one)."""
    if hasattr(data, "__cuda_array_interface__"):
        data = data.get()  # a CuPy array: bring it to the host explicitly
    return np.asarray(data, dtype=dtype)


def to_host(a) -> np.ndarray:
    """The array as a NumPy array (already on the host: returned as is)."""
    return a


def broadcast_to(a, shape):
    """np.broadcast_to(a, shape), a read-only view, built directly from strides when a is
    C-contiguous: np.broadcast_to spends about 3 us per call on argument checks and an nditer,
    more than a small op's arithmetic, and every reduction's gradient is a broadcast."""
    lead = len(shape) - a.ndim
    if lead < 0 or not a.flags.c_contiguous or 0 in shape:
        return np.broadcast_to(a, shape)
    strides = [0] * lead
    for n, m, stride in zip(a.shape, shape[lead:], a.strides):
        if n != m and n != 1:
            return np.broadcast_to(a, shape)  # NumPy's own error names the shapes
        strides.append(stride if n == m else 0)
    out = np.ndarray(shape, a.dtype, a, 0, tuple(strides))
    out.flags.writeable = False
    return out


def scatter_add(target, index, values) -> None:
    """target[index] += values, accumulating repeated indices (np.add.at)."""
    np.add.at(target, index, values)


def synchronize(index: int = 0) -> None:
    """Nothing to wait for on the CPU."""


def check(failed, make_error) -> None:
    """Raise `make_error()` when the 0-d bool `failed` is true: on the CPU reading it is free,
    so the check is always made (see `debug`)."""
    if failed:
        raise make_error()


def device_name(index: int = 0) -> str:
    """A readable name of the processor."""
    import platform
    return platform.processor() or platform.machine()


def memory_pool_bytes(index: int = 0) -> tuple[int, int]:
    """(used, total) bytes held by a device memory pool: the CPU has none."""
    return 0, 0


def free_memory_pool(index: int = 0) -> None:
    """Empty the device memory pool: the CPU has none."""


from .fused_numpy import adam_update, sgd_update, rmsprop_update  # noqa: E402,F401  (optimizers)
from .fused_numpy import conv_kernels  # noqa: E402,F401  (gradflow.ops.conv)
