"""Shape ops: reshape, transpose, broadcast and its inverse sum_to, squeeze, concatenate, stack, split.

None of these computes anything: their gradients only move values back to where they came from.
"""
from __future__ import annotations

import builtins

from ..autograd import Function
from ..tensor import Tensor
from ._util import normalize_axis


class Reshape(Function):
    """d reshape(x) = reshape(dy, x.shape)"""
    saves_inputs = False

    def __init__(self, shape) -> None:
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return (reshape(gy, self.in_shape),)


class Transpose(Function):
    """d transpose(x, axes) = transpose(dy, inverse(axes))"""
    saves_inputs = False

    def __init__(self, axes) -> None:
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        inv = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inv[a] = i
        return (Transpose(tuple(inv))(gy),)


class BroadcastTo(Function):
    """d broadcast_to(x) = sum_to(dy, x.shape): copies of x add their gradients"""
    saves_inputs = False

    def __init__(self, shape) -> None:
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return _xp_of(x).broadcast_to(x, self.shape)

    def backward(self, gy):
        return (sum_to(gy, self.in_shape),)


class SumTo(Function):
    """d sum_to(x, shape) = broadcast_to(dy, x.shape)"""
    saves_inputs = False

    def __init__(self, shape) -> None:
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        lead = x.ndim - len(self.shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(self.shape) if n == 1 and x.shape[lead + i] != 1)
        y = x.sum(axis=axes, keepdims=True) if axes else x
        return y.reshape(self.shape) if lead else y

    def backward(self, gy):
        return (broadcast_to(gy, self.in_shape),)


class Concatenate(Function):
    """d concatenate(xs) = the matching slices of dy"""
    saves_inputs = False

    def __init__(self, axis) -> None:
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        return _xp_of(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy):
        out, start = [], 0
        lead = (slice(None),) * self.axis
        for x, n in zip(self.inputs, self.sizes):
            out.append(gy[lead + (slice(start, start + n),)] if x.requires_grad else None)
            start += n
        return tuple(out)


def _xp_of(a):
    from .elementwise import self_xp
    return self_xp(a)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"shape entries must be ints, got {shape!r}")
    return tuple(shape)


def reshape(x, *shape) -> Tensor:
    """x with a new shape of the same size; one entry may be -1 (inferred).

    Example: `gf.arange(6).reshape(2, 3)` or `x.reshape((2, -1))`.
    """
    shape = _shape_arg(shape)
    if shape == x.shape:
        return x
    size = x.size
    known = 1
    for n in shape:
        if n != -1:
            known *= n
    if shape.count(-1) > 1 or (known != size and -1 not in shape) or \
            (-1 in shape and (known == 0 or size % known)):
        raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                         f"({size} elements) into shape {shape}")
    return Reshape(shape)(x)


def transpose(x, *axes) -> Tensor:
    """Permute the axes (reversed when none are given). Example: `x.transpose(1, 0)`."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    if not axes:
        axes = tuple(range(x.ndim))[::-1]
    norm = tuple(a % x.ndim if isinstance(a, int) and -x.ndim <= a < x.ndim else None
                 for a in axes)
    if len(norm) != x.ndim or None in norm or sorted(norm) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes "
                         f"of a tensor of shape {x.shape}")
    if norm == tuple(range(x.ndim)):
        return x
    return Transpose(norm)(x)


def permute(x, *axes) -> Tensor:
    """Reorder the axes (PyTorch's name for transpose with explicit axes)."""
    return transpose(x, *axes)


def swapaxes(x, axis1: int, axis2: int) -> Tensor:
    """Exchange two axes. Example: `x.swapaxes(-1, -2)` transposes a batch of matrices."""
    nd = x.ndim
    for a in (axis1, axis2):
        if not -nd <= a < nd:
            raise ValueError(f"swapaxes: axis {a} is out of range for shape {x.shape}")
    axes = list(range(nd))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, tuple(axes))


def broadcast_to(x, shape) -> Tensor:
    """x repeated along new or size-1 axes to `shape` (NumPy broadcasting rules)."""
    shape = tuple(shape)
    if shape == x.shape:
        return x
    ok = len(shape) >= x.ndim and builtins.all(
        s == n or s == 1 for s, n in zip(x.shape[::-1], shape[::-1]))
    if not ok:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return BroadcastTo(shape)(x)


def sum_to(x, shape) -> Tensor:
    """Sum x down to `shape`: the inverse of broadcast_to, used for gradients of broadcasts."""
    shape = tuple(shape)
    if shape == x.shape:
        return x
    lead = x.ndim - len(shape)
    ok = lead >= 0 and builtins.all(
        s == n or s == 1 for s, n in zip(shape, x.shape[lead:]))
    if not ok:
        raise ValueError(f"sum_to: cannot sum shape {x.shape} down to {shape}")
    return SumTo(shape)(x)


def squeeze(x, axis=None) -> Tensor:
    """Drop axes of size 1 (all of them, or those in `axis`)."""
    if axis is None:
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1)
    else:
        axes = normalize_axis(axis, x.ndim, "squeeze")
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} of shape {x.shape} has size "
                                 f"{x.shape[a]}, not 1")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


def unsqueeze(x, axis: int) -> Tensor:
    """Insert an axis of size 1 at position `axis` (negative counts from the end)."""
    nd = x.ndim + 1
    if not -nd <= axis < nd:
        raise ValueError(f"unsqueeze: axis {axis} is out of range for a result with {nd} dims")
    axis %= nd
    shape = list(x.shape)
    shape.insert(axis, 1)
    return reshape(x, tuple(shape))


def flatten(x, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes start_axis..end_axis (inclusive) into one. Example: (N, 1, 28, 28) -> (N, 784)
    with `x.flatten(1)`."""
    if x.ndim == 0:
        return reshape(x, (1,))
    s, e = start_axis % x.ndim, end_axis % x.ndim
    if s > e:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis} "
                         f"for shape {x.shape}")
    n = 1
    for d in x.shape[s:e + 1]:
        n *= d
    return reshape(x, x.shape[:s] + (n,) + x.shape[e + 1:])


def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; all other dims must match."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError("concatenate: 0-d tensors cannot be concatenated (use stack)")
    ax = normalize_axis(axis, first.ndim, "concatenate")[0]
    for t in tensors[1:]:
        if t.ndim != first.ndim or t.shape[:ax] + t.shape[ax + 1:] != \
                first.shape[:ax] + first.shape[ax + 1:]:
            raise ValueError("concatenate: shapes " + ", ".join(str(u.shape) for u in tensors) +
                             f" differ off axis {axis}")
    return Concatenate(ax)(*tensors)


cat = concatenate


def stack(tensors, axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError("stack: all tensors need the same shape, got " +
                         ", ".join(str(t.shape) for t in tensors))
    return concatenate([unsqueeze(t, axis) for t in tensors], axis)


def split(x, sections, axis: int = 0) -> list:
    """Split x along `axis` into `sections` equal parts (an int) or at the given indices (a list).

    Like numpy.split: `gf.split(x, 3)` or `gf.split(x, [2, 5])`.
    """
    ax = normalize_axis(axis, x.ndim, "split")[0]
    n = x.shape[ax]
    if isinstance(sections, int):
        if sections <= 0 or n % sections:
            raise ValueError(f"split: axis {axis} of size {n} (shape {x.shape}) does not divide "
                             f"into {sections} equal sections")
        step = n // sections
        bounds = [i * step for i in range(sections + 1)]
    else:
        bounds = [0] + [builtins.min(builtins.max(int(i), 0), n) for i in sections] + [n]
    lead = (slice(None),) * ax
    return [x[lead + (slice(a, builtins.max(a, b)),)] for a, b in zip(bounds[:-1], bounds[1:])]
