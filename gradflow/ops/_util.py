"""Helpers shared by the op families: constants, broadcasting reduction, axis normalisation."""
from __future__ import annotations

from ..tensor import Tensor

_make = Tensor._make


def const(array, device) -> Tensor:
    """Wrap an array as a Tensor that is not part of any graph (masks, signs, zeros)."""
    return _make(array, device, False, None)


def requires(x) -> bool:
    """True when `x` is a Tensor that needs a gradient (Python scalars never do)."""
    return isinstance(x, Tensor) and x.requires_grad


def unbroadcast(g: Tensor, shape: tuple) -> Tensor:
    """Sum `g` back to `shape`, undoing NumPy broadcasting: the gradient of a broadcast input.

    Sums the leading axes broadcasting added, then (keeping dims) the axes that were 1.
    """
    if g.shape == shape:
        return g
    from .shape import sum_to
    return sum_to(g, shape)


def normalize_axis(axis, ndim: int, op: str):
    """Return axis as a sorted tuple of non-negative ints (None: all axes), or raise naming it."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool):
            raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
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
