"""Helpers shared by the op families: constants, broadcasting reduction, axis normalisation."""
from __future__ import annotations

from ..tensor import Tensor

_make = Tensor._make


def const(array, device) -> Tensor:
    """Wrap an array as a Tensor that is not part of any graph (masks, signs, zeros).

    NumPy gives scalars, not arrays, for functions of 0-d arrays (np.sign(0-d) is a np.float64):
    those are turned back into 0-d arrays, so every Tensor holds an array.
    """
    if array.__class__ is not device.backend.ndarray:
        array = device.backend.asarray(array, index=device.index)
    return _make(array, device, False, None)


def requires(x) -> bool:
    """True when `x` is a Tensor that needs a gradient (Python scalars never do)."""
    return isinstance(x, Tensor) and x._rg  # the slot: the property costs a call per input


def unbroadcast(g: Tensor, shape: tuple, dtype=None) -> Tensor:
    """Sum `g` back to `shape`, undoing NumPy broadcasting: the gradient of a broadcast input.

    Sums the leading axes broadcasting added, then (keeping dims) the axes that were 1. With
    `dtype`, the gradient is also cast back to the input's dtype: NumPy promotes mixed inputs
    (float32 * float64, float32 * int64 -> float64), and each input's gradient must come back
    in that input's own dtype.
    """
    # Reads the array's own shape and dtype: this runs for every input of every binary op.
    d = g.data
    if d.shape != shape:
        from .shape import sum_to
        g = sum_to(g, shape)
        d = g.data
    if dtype is not None and d.dtype != dtype:
        from .elementwise import astype
        g = astype(g, dtype)
    return g


def value(x):
    """The array of a Tensor, or a Python scalar as it is (operands of an array-level rule)."""
    return x.data if isinstance(x, Tensor) else x


def sum_to_array(x, shape: tuple):
    """`sum_to` on a raw array: sum the leading extra axes, then keepdims-sum the size-1 axes."""
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1)
    y = x.sum(axis=axes, keepdims=True) if axes else x
    return y.reshape(shape) if lead else y


# Below this many elements, `expand_array` fills a new array: NumPy's broadcast_to costs a few
# microseconds of Python, more than writing a few thousand numbers.
_FILL_BELOW = 1 << 14


def expand_array(xp, g, shape: tuple):
    """`g` (shaped to broadcast) expanded to `shape`: the gradient of a reduction, on arrays.

    Small results are filled into a new array; large ones are a read-only broadcast view, so
    that nothing the size of the input is written.
    """
    size = 1
    for n in shape:
        size *= n
    if size < _FILL_BELOW:
        out = xp.empty(shape, dtype=g.dtype)
        out[...] = g
        return out
    return xp.broadcast_to(g, shape)


def unbroadcast_array(g, x: Tensor):
    """`unbroadcast(g, x.shape, x.dtype)` on a raw array `g`: for `backward_arrays` rules."""
    d = x.data
    if g.shape != d.shape:
        g = sum_to_array(g, d.shape)
    if g.dtype != d.dtype:
        g = g.astype(d.dtype)
    return g


def one_axis(axis, ndim: int, op: str) -> int:
    """Return one axis as a non-negative int, or raise naming it (a tuple is refused, not cut
    to its first entry)."""
    if isinstance(axis, (tuple, list)) or axis is None:
        raise TypeError(f"{op}: axis must be one int, got {axis!r}")
    return normalize_axis(axis, ndim, op)[0]


def normalize_axis(axis, ndim: int, op: str):
    """Return axis as a sorted tuple of non-negative ints (None: all axes), or raise naming it."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    elif hasattr(axis, "__index__") and not isinstance(axis, bool):
        axes = (axis,)
    else:
        raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
    out = []
    for a in axes:
        if not hasattr(a, "__index__") or isinstance(a, bool):
            raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
        a = a.__index__()  # NumPy integers are ints here too
        # A 0-d tensor accepts axis 0 and -1, as in PyTorch (NumPy accepts none).
        if not (-ndim <= a < ndim or (ndim == 0 and a in (0, -1))):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dims")
        out.append(a % ndim if ndim else 0)
    if ndim == 0:
        return ()
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def keepdims_shape(shape: tuple, axes: tuple) -> tuple:
    """`shape` with the reduced `axes` set to 1 (what keepdims=True gives)."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))
