"""A stand-in for CuPy on the CPU: two fake GPUs whose arrays behave as CuPy's do where it matters.

gradflow's CUDA paths cannot run here, but three of CuPy's behaviours that break CPU-only code can
be imitated with a NumPy subclass, and checked on every machine:

- Arrays are `FakeGPUArray`, never plain NumPy arrays, and each belongs to one GPU: the one that
  was current when it was made (like CuPy's). A ufunc or array function that mixes arrays of
  another GPU than the current one raises, as CuPy does without peer access: code that forgets
  to make its tensors' GPU current fails here.
- Reductions and element reads give 0-d arrays, not NumPy scalars (CuPy's rule), so every value
  that reaches the host goes through `item`, `bool`, `float`, `int`, `tolist`, `get` or the
  backend's `to_host`.
- Each of those reads is counted in `reads`: on a real GPU each one waits for the GPU (a sync).

`install(monkeypatch)` makes it gradflow's CUDA backend for one test: `gf.device("cuda:1")` then
gives a fake GPU, and `reads` counts.
"""
from __future__ import annotations

import contextlib
import types

import numpy as np

from gradflow import backend as B
from gradflow.backend import fused_numpy, numpy_backend

DEVICE_COUNT = 2


class _State:
    current = 0  # the current fake GPU
    reads = 0    # values read back on the host since the last reset


state = _State()


class FakeGPUArray(np.ndarray):
    """A NumPy array that lives on fake GPU `device_id` and counts its reads to the host."""

    device_id = 0

    def __array_finalize__(self, obj):
        # Views and copies stay on their parent's GPU; new arrays go to the current one.
        self.device_id = getattr(obj, "device_id", state.current)

    @property
    def device(self):
        return types.SimpleNamespace(id=self.device_id)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _check_current(inputs + kwargs.get("out", ()), ufunc.__name__)
        args = [_plain(a) for a in inputs]
        if "out" in kwargs:
            outs = kwargs["out"]
            kwargs["out"] = tuple(_plain(o) for o in outs)
            getattr(ufunc, method)(*args, **kwargs)
            return outs[0] if len(outs) == 1 else outs
        return _wrap(getattr(ufunc, method)(*args, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        flat = [a for x in args for a in (x if isinstance(x, (list, tuple)) else (x,))]
        _check_current(flat + list(kwargs.values()), func.__name__)
        args = [[_plain(a) for a in x] if isinstance(x, (list, tuple)) else _plain(x)
                for x in args]
        kwargs = {k: _plain(v) for k, v in kwargs.items()}
        return _wrap(func(*args, **kwargs))

    def __getitem__(self, key):
        return _wrap(super().__getitem__(_plain_key(key)))

    def __setitem__(self, key, value):
        _check_current([self, value], "setitem")
        super().__setitem__(_plain_key(key), _plain(value))

    # --- reads back to the host: each one a sync on a real GPU -----------------------------
    def item(self, *args):
        state.reads += 1
        return self.view(np.ndarray).item(*args)

    def tolist(self):
        state.reads += 1
        return self.view(np.ndarray).tolist()

    def get(self):
        state.reads += 1
        return np.array(self.view(np.ndarray))

    def __bool__(self):
        state.reads += 1
        return bool(self.view(np.ndarray))

    def __float__(self):
        state.reads += 1
        return float(self.view(np.ndarray))

    def __int__(self):
        state.reads += 1
        return int(self.view(np.ndarray))

    def __index__(self):
        state.reads += 1
        return self.view(np.ndarray).__index__()


def _plain(a):
    return a.view(np.ndarray) if isinstance(a, FakeGPUArray) else a


def _plain_key(key):
    return tuple(_plain(k) for k in key) if isinstance(key, tuple) else _plain(key)


def _wrap(r):
    if isinstance(r, tuple):
        return tuple(_wrap(x) for x in r)
    if isinstance(r, np.ndarray) and not isinstance(r, FakeGPUArray):
        out = r.view(FakeGPUArray)
        out.device_id = state.current
        return out
    if isinstance(r, np.generic):  # CuPy gives 0-d arrays where NumPy gives scalars
        return _wrap(np.asarray(r))
    return r


def _check_current(arrays, what):
    for a in arrays:
        if isinstance(a, FakeGPUArray) and a.device_id != state.current:
            raise RuntimeError(f"fake GPU: {what} on an array of cuda:{a.device_id} while "
                               f"cuda:{state.current} is current (CuPy: peer access is "
                               "unavailable)")


class _XP:
    """The array module: NumPy, with new arrays made on the current fake GPU."""

    ndarray = FakeGPUArray

    def __getattr__(self, name):
        attr = getattr(np, name)
        if callable(attr) and not isinstance(attr, type):
            return lambda *a, **k: _wrap(attr(*a, **k))
        return attr


xp = _XP()
ndarray = FakeGPUArray
name = "fakegpu"
synchronous = False  # as CuPy: reads are counted in `reads`


@contextlib.contextmanager
def use(index: int = 0):
    """Make fake GPU `index` current (cupy.cuda.Device(index))."""
    prev, state.current = state.current, index
    try:
        yield
    finally:
        state.current = prev


def device_count() -> int:
    return DEVICE_COUNT


def asarray(data, dtype=None, index: int = 0):
    if isinstance(data, FakeGPUArray) and data.device_id == index and \
            (dtype is None or data.dtype == dtype):
        return data
    with use(index):
        return _wrap(np.array(_plain(data), dtype=dtype))


def to_host(a):
    state.reads += 1
    return np.array(_plain(a))


def rng(index: int = 0):
    return _Generator(numpy_backend.rng(index))


class _Generator:
    def __init__(self, g):
        self._g = g

    def __getattr__(self, name):
        f = getattr(self._g, name)
        return lambda *a, **k: _wrap(f(*a, **k))


def randperm(n: int, index: int = 0):
    with use(index):
        return _wrap(numpy_backend.randperm(n))


def manual_seed(seed: int) -> None:
    """Seeding is the CPU generator's (the fake draws from it)."""


def scatter_add(target, index, values) -> None:
    _check_current([target, values], "scatter_add")
    np.add.at(_plain(target), _plain_key(index), _plain(values))


def synchronize(index: int = 0) -> None:
    """Nothing to wait for."""


def check(failed, make_error) -> None:
    """CuPy's policy (see gradflow.backend.cupy_backend.check): read only in debug mode."""
    if B.is_debug() and bool(failed):
        raise make_error()


def device_name(index: int = 0) -> str:
    return f"fake GPU {index}"


def memory_pool_bytes(index: int = 0):
    return 0, 0


def free_memory_pool(index: int = 0) -> None:
    """No pool."""


def _on_host_arrays(update):
    # The CPU's update, run on views that share the fake arrays' memory.
    def run(*arrays, **kwargs):
        update(*[_plain(a) for a in arrays], **kwargs)
    return run


adam_update = _on_host_arrays(fused_numpy.adam_update)
sgd_update = _on_host_arrays(fused_numpy.sgd_update)
rmsprop_update = _on_host_arrays(fused_numpy.rmsprop_update)


def install(monkeypatch):
    """Make this module gradflow's CUDA backend for one test; returns the counters' state."""
    import sys
    B.get_device("cpu")  # interned before the copy below: the CPU stays the one Device object
    monkeypatch.setattr(B, "_cupy_backend", sys.modules[__name__])
    monkeypatch.setattr(B, "_devices", {k: v for k, v in B._devices.items() if v.type == "cpu"})
    monkeypatch.setattr(B, "_default", B._default)  # restored after the test, whatever it sets
    state.current, state.reads = 0, 0
    return state
