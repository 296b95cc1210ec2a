"""Shape ops: reshape, transpose, broadcast_to and its inverse sum_to, squeeze, concatenate, split.

None of these computes anything: their gradients only move values back to where they came from.
"""
from __future__ import annotations

import builtins

from ..autograd import Function
from ..tensor import Tensor
from ._util import normalize_axis, one_axis, sum_to_array
from .elementwise import self_xp as _self_xp


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

    def backward_arrays(self, gy):
        return (gy.reshape(self.in_shape),)


class Transpose(Function):
    """d transpose(x, axes) = transpose(dy, inverse(axes))"""
    saves_inputs = False

    def __init__(self, axes) -> None:
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        return (Transpose(self._inverse())(gy),)

    def backward_arrays(self, gy):
        return (gy.transpose(self._inverse()),)

    def _inverse(self):
        inv = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inv[a] = i
        return tuple(inv)


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

    def backward_arrays(self, gy):
        return (sum_to_array(gy, self.in_shape),)


class SumTo(Function):
    """d sum_to(x, shape) = broadcast_to(dy, x.shape)"""
    saves_inputs = False

    def __init__(self, shape) -> None:
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return sum_to_array(x, self.shape)

    def backward(self, gy):
        return (broadcast_to(gy, self.in_shape),)

    def backward_arrays(self, gy):
        return (_self_xp(gy).broadcast_to(gy, self.in_shape),)


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
            if x.requires_grad:
                g = gy[lead + (slice(start, start + n),)]
                if g.dtype != x.dtype:  # mixed dtypes were promoted: cast back per input
                    from .elementwise import astype
                    g = astype(g, x.dtype)
                out.append(g)
            else:
                out.append(None)
            start += n
        return tuple(out)


def _xp_of(a):
    return _self_xp(a)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"shape entries must be ints, got {shape!r}")
    return tuple(shape)


def reshape(x, *shape) -> Tensor:
    """x with a new shape holding the same elements in the same (C) order.

    Args:
        x: a Tensor.
        *shape: the new shape, as ints or one tuple; one entry may be -1 (inferred).

    Returns:
        A Tensor of the new shape (x itself when the shape does not change).

    Raises:
        ValueError: the sizes differ, or -1 appears twice or cannot be inferred; the message
            names both shapes.

    Example:
        >>> gf.arange(6).reshape(2, 3)            # or x.reshape((2, -1))
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
    """x with its axes permuted; with no axes given, reversed (a matrix transposed).

    Args:
        x: a Tensor.
        *axes: a permutation of range(x.ndim), as ints or one tuple (negative axes allowed).

    Returns:
        A Tensor with shape x.shape permuted (x itself for the identity permutation).

    Raises:
        ValueError: axes is not a permutation of x's axes.

    Note: NumPy's meaning, not PyTorch's: the axes are the whole new order, so on a matrix
    x.transpose(0, 1) is x itself. To exchange two axes (torch.transpose(x, 0, 1)), use
    gf.swapaxes(x, 0, 1).

    Example:
        >>> gf.zeros(2, 3, 4).transpose(2, 0, 1).shape    # (4, 2, 3); x.T reverses all axes
    """
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
    """x with its axes reordered: PyTorch's name for `transpose` with explicit axes.

    Args:
        x: a Tensor.
        *axes: a permutation of range(x.ndim).

    Returns:
        A Tensor with shape x.shape permuted.

    Example:
        >>> gf.zeros(2, 3, 4).permute(0, 2, 1).shape      # (2, 4, 3)
    """
    return transpose(x, *axes)


def swapaxes(x, axis1: int, axis2: int) -> Tensor:
    """x with two axes exchanged.

    Args:
        x: a Tensor.
        axis1, axis2: the axes to exchange (negative counts from the end).

    Returns:
        A Tensor.

    Raises:
        ValueError: an axis is out of range.

    Example:
        >>> gf.zeros(5, 2, 3).swapaxes(-1, -2).shape      # (5, 3, 2): a batch of transposes
    """
    nd = x.ndim
    for a in (axis1, axis2):
        if not -nd <= a < nd:
            raise ValueError(f"swapaxes: axis {a} is out of range for shape {x.shape}")
    axes = list(range(nd))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, tuple(axes))


def broadcast_to(x, shape) -> Tensor:
    """x repeated along new leading axes and along its size-1 axes to `shape`.

    NumPy's broadcasting rules; the gradient sums the copies back (`sum_to`).

    Args:
        x: a Tensor.
        shape: the target shape.

    Returns:
        A Tensor of `shape` (x itself when the shape does not change). Its array is a read-only
        view: write to it only after a copy.

    Raises:
        ValueError: x's shape does not broadcast to `shape` (both are named).

    Example:
        >>> gf.tensor([1., 2.]).broadcast_to((3, 2))      # three rows [1., 2.]
    """
    shape = tuple(shape)
    if shape == x.shape:
        return x
    ok = len(shape) >= x.ndim and builtins.all(
        s == n or s == 1 for s, n in zip(x.shape[::-1], shape[::-1]))
    if not ok:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return BroadcastTo(shape)(x)


def sum_to(x, shape) -> Tensor:
    """x summed down to `shape`: the inverse of `broadcast_to`, the gradient of a broadcast.

    Sums the leading axes x has beyond `shape`, then (keeping dims) the axes where `shape` has 1.

    Args:
        x: a Tensor.
        shape: a shape that broadcasts to x.shape.

    Returns:
        A Tensor of `shape`.

    Raises:
        ValueError: `shape` does not broadcast to x.shape.

    Example:
        >>> gf.sum_to(gf.ones(3, 2), (1, 2))             # tensor([[3., 3.]])
    """
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
    """x without axes of size 1 (all of them, or those in `axis`).

    Args:
        x: a Tensor.
        axis: None (every size-1 axis), an int or a tuple of ints.

    Returns:
        A Tensor with the same elements.

    Raises:
        ValueError: a named axis does not have size 1, or is out of range.

    Example:
        >>> gf.zeros(1, 3, 1).squeeze().shape             # (3,)
    """
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
    """x with a new axis of size 1 inserted at position `axis`.

    Args:
        x: a Tensor.
        axis: the position of the new axis in the result (-1 appends it).

    Returns:
        A Tensor with one more dimension.

    Raises:
        ValueError: axis is out of range for a result with x.ndim + 1 dims.

    Example:
        >>> gf.zeros(3).unsqueeze(0).shape                # (1, 3)
    """
    nd = x.ndim + 1
    if not -nd <= axis < nd:
        raise ValueError(f"unsqueeze: axis {axis} is out of range for a result with {nd} dims")
    axis %= nd
    shape = list(x.shape)
    shape.insert(axis, 1)
    return reshape(x, tuple(shape))


def flatten(x, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """x with axes start_axis..end_axis (inclusive) merged into one.

    Args:
        x: a Tensor (a 0-d one becomes shape (1,)).
        start_axis: the first axis to merge (default 0).
        end_axis: the last axis to merge (default -1, the last).

    Returns:
        A Tensor.

    Raises:
        ValueError: start_axis comes after end_axis.

    Example:
        >>> gf.zeros(8, 1, 28, 28).flatten(1).shape       # (8, 784)
    """
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
    """The tensors joined along an existing axis; every other dim must match.

    Args:
        tensors: a sequence of Tensors with the same number of dims (on one device).
        axis: the axis to join along (default 0).

    Returns:
        A Tensor; its gradient is split back into the matching slices.

    Raises:
        ValueError: no tensors, 0-d tensors, or shapes that differ off `axis` (all are named).

    Example:
        >>> gf.concatenate([gf.zeros(2, 3), gf.ones(1, 3)]).shape   # (3, 3)
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError("concatenate: 0-d tensors cannot be concatenated (use stack)")
    ax = one_axis(axis, first.ndim, "concatenate")
    for t in tensors[1:]:
        if t.ndim != first.ndim or t.shape[:ax] + t.shape[ax + 1:] != \
                first.shape[:ax] + first.shape[ax + 1:]:
            raise ValueError("concatenate: shapes " + ", ".join(str(u.shape) for u in tensors) +
                             f" differ off axis {axis}")
    return Concatenate(ax)(*tensors)


cat = concatenate


def stack(tensors, axis: int = 0) -> Tensor:
    """Same-shaped tensors joined along a new axis.

    Args:
        tensors: a sequence of Tensors of one shape.
        axis: where the new axis goes in the result (default 0).

    Returns:
        A Tensor with one more dimension.

    Raises:
        ValueError: no tensors, or different shapes (all are named).

    Example:
        >>> gf.stack([gf.zeros(3), gf.ones(3)], axis=1).shape      # (3, 2)
    """
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError("stack: all tensors need the same shape, got " +
                         ", ".join(str(t.shape) for t in tensors))
    return concatenate([unsqueeze(t, axis) for t in tensors], axis)


def split(x, sections, axis: int = 0) -> list:
    """x cut along `axis` into pieces, like numpy.split (not torch.split).

    Args:
        x: a Tensor.
        sections: an int (that many equal pieces; it must divide the axis), or a list of indices
            at which to cut.
        axis: the axis to cut (default 0).

    Returns:
        A list of Tensors (views of x by slicing: each one's gradient flows back into its part).

    Raises:
        ValueError: an int `sections` does not divide the axis.

    Example:
        >>> a, b = gf.split(gf.arange(6), 2)              # [0, 1, 2] and [3, 4, 5]
        >>> parts = gf.split(gf.arange(6), [1, 4])        # [0], [1, 2, 3], [4, 5]
    """
    ax = one_axis(axis, x.ndim, "split")
    n = x.shape[ax]
    if hasattr(sections, "__index__") and not isinstance(sections, bool):  # NumPy ints too
        sections = sections.__index__()
        if sections <= 0 or n % sections:
            raise ValueError(f"split: axis {axis} of size {n} (shape {x.shape}) does not divide "
                             f"into {sections} equal sections")
        step = n // sections
        bounds = [i * step for i in range(sections + 1)]
    else:
        bounds = [0] + [builtins.min(builtins.max(int(i), 0), n) for i in sections] + [n]
    lead = (slice(None),) * ax
    return [x[lead + (slice(a, builtins.max(a, b)),)] for a, b in zip(bounds[:-1], bounds[1:])]
