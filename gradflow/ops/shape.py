"""Shape ops: reshape, transpose, broadcast_to and its inverse sum_to, squeeze, concatenate, split.

None of these computes anything: their gradients only move values back to where they came from.
"""
from __future__ import annotations

import builtins

from ..autograd import Function
from ..tensor import Tensor
from .. import backend as B
from ._util import doc, normalize_axis, one_axis


class Reshape(Function):
    """d reshape(x) = reshape(dy, x.shape)"""
    saves_inputs = False

    def forward(self, x):
        return x.reshape(self.shape)

    def backward(self, gy, y, x):
        return gy.reshape(x.shape)


class Transpose(Function):
    """d transpose(x, axes) = transpose(dy, inverse(axes))"""
    saves_inputs = False

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy, y, x):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return gy.transpose(tuple(inverse))


class BroadcastTo(Function):
    """d broadcast_to(x) = sum_to(dy, x.shape): copies of x add their gradients"""
    saves_inputs = False

    def forward(self, x):
        return B.broadcast_to(x, self.shape)

    def backward(self, gy, y, x):
        return sum_to(gy, x.shape)


class SumTo(Function):
    """d sum_to(x, shape) = broadcast_to(dy, x.shape)"""
    saves_inputs = False

    def forward(self, x):
        lead = x.ndim - len(self.shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(self.shape) if n == 1 and x.shape[lead + i] != 1)
        y = x.sum(axis=axes, keepdims=True) if axes else x
        return y.reshape(self.shape) if lead else y

    def backward(self, gy, y, x):
        return broadcast_to(gy, x.shape)


class Concatenate(Function):
    """d concatenate(xs) = the matching slices of dy"""
    saves_inputs = False

    def forward(self, *xs):
        return B.xp_of(xs[0]).concatenate(xs, axis=self.axis)

    def backward(self, gy, y, *xs):
        grads, start = [], 0
        lead = (slice(None),) * self.axis
        for x, needed in zip(xs, self.needs_input_grad):
            n = x.shape[self.axis]
            g = gy[lead + (slice(start, start + n),)]
            grads.append(g.astype(x.dtype) if needed and g.dtype != x.dtype else g)
            start += n
        return tuple(grads)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for n in shape:
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"shape entries must be ints, got {shape!r}")
    return tuple(shape)


# Shared by the shape functions of one Tensor x.
_SHAPE = """{summary}

    Args:
        x: a Tensor.
        {args}

    Returns:
        {returns}

    Raises:
        ValueError: {raises}

    Example:
        >>> {example}
    """


def _shape_doc(summary, args, returns, raises, example):
    return doc(_SHAPE, summary=summary, args=args, returns=returns, raises=raises, example=example)


@_shape_doc("x with a new shape holding the same elements in the same (C) order.",
            "*shape: the new shape, as ints or one tuple; one entry may be -1 (inferred).",
            "A Tensor of the new shape (x itself when the shape does not change).",
            "the sizes differ, or -1 appears twice or cannot be inferred (names both shapes).",
            "gf.arange(6).reshape(2, 3)            # or x.reshape((2, -1))")
def reshape(x, *shape) -> Tensor:
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
    return Reshape(shape=shape)(x)


@_shape_doc("x with its axes permuted; with no axes given, reversed (a matrix transposed).\n\n"
            "NumPy's meaning, not PyTorch's: the axes are the whole new order, so on a matrix\n"
            "x.transpose(0, 1) is x itself. To exchange two axes (torch.transpose(x, 0, 1)), use\n"
            "gf.swapaxes(x, 0, 1).",
            "*axes: a permutation of range(x.ndim), as ints or one tuple (negative axes allowed).",
            "A Tensor with shape x.shape permuted (x itself for the identity permutation).",
            "axes is not a permutation of x's axes.",
            "gf.zeros(2, 3, 4).transpose(2, 0, 1).shape    # (4, 2, 3); x.T reverses all axes")
def transpose(x, *axes) -> Tensor:
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
    return Transpose(axes=norm)(x)


@_shape_doc("x with its axes reordered: PyTorch's name for `transpose` with explicit axes.",
            "*axes: a permutation of range(x.ndim).", "A Tensor with shape x.shape permuted.",
            "axes is not a permutation of x's axes.",
            "gf.zeros(2, 3, 4).permute(0, 2, 1).shape      # (2, 4, 3)")
def permute(x, *axes) -> Tensor:
    return transpose(x, *axes)


@_shape_doc("x with two axes exchanged.",
            "axis1, axis2: the axes to exchange (negative counts from the end).", "A Tensor.",
            "an axis is out of range.",
            "gf.zeros(5, 2, 3).swapaxes(-1, -2).shape      # (5, 3, 2): a batch of transposes")
def swapaxes(x, axis1: int, axis2: int) -> Tensor:
    nd = x.ndim
    for a in (axis1, axis2):
        if not -nd <= a < nd:
            raise ValueError(f"swapaxes: axis {a} is out of range for shape {x.shape}")
    axes = list(range(nd))
    axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
    return transpose(x, tuple(axes))


@_shape_doc("x repeated along new leading axes and its size-1 axes to `shape`, by NumPy's rules.",
            "shape: the target shape.",
            "A Tensor of `shape` (x itself when the shape does not change), a read-only view:\n"
            "write to it only after a copy. Its gradient sums the copies back (`sum_to`).",
            "x's shape does not broadcast to `shape` (both are named).",
            "gf.tensor([1., 2.]).broadcast_to((3, 2))      # three rows [1., 2.]")
def broadcast_to(x, shape) -> Tensor:
    shape = tuple(shape)
    if shape == x.shape:
        return x
    ok = len(shape) >= x.ndim and builtins.all(
        s == n or s == 1 for s, n in zip(x.shape[::-1], shape[::-1]))
    if not ok:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    return BroadcastTo(shape=shape)(x)


@_shape_doc("x summed to `shape`: the inverse of `broadcast_to`, the gradient of a broadcast.\n\n"
            "Sums the leading axes x has beyond `shape`, then (keeping dims) the axes where\n"
            "`shape` has 1.",
            "shape: a shape that broadcasts to x.shape.", "A Tensor of `shape`.",
            "`shape` does not broadcast to x.shape.",
            "gf.sum_to(gf.ones(3, 2), (1, 2))             # tensor([[3., 3.]])")
def sum_to(x, shape) -> Tensor:
    shape = tuple(shape)
    if shape == x.shape:
        return x
    lead = x.ndim - len(shape)
    ok = lead >= 0 and builtins.all(
        s == n or s == 1 for s, n in zip(shape, x.shape[lead:]))
    if not ok:
        raise ValueError(f"sum_to: cannot sum shape {x.shape} down to {shape}")
    return SumTo(shape=shape)(x)


@_shape_doc("x without axes of size 1 (all of them, or those in `axis`).",
            "axis: None (every size-1 axis), an int or a tuple of ints.",
            "A Tensor with the same elements.",
            "a named axis does not have size 1, or is out of range.",
            "gf.zeros(1, 3, 1).squeeze().shape             # (3,)")
def squeeze(x, axis=None) -> Tensor:
    if axis is None:
        axes = tuple(i for i, n in enumerate(x.shape) if n == 1)
    else:
        axes = normalize_axis(axis, x.ndim, "squeeze")
        for a in axes:
            if x.shape[a] != 1:
                raise ValueError(f"squeeze: axis {a} of shape {x.shape} has size "
                                 f"{x.shape[a]}, not 1")
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if i not in axes))


@_shape_doc("x with a new axis of size 1 inserted at position `axis`.",
            "axis: the position of the new axis in the result (-1 appends it).",
            "A Tensor with one more dimension.",
            "axis is out of range for a result with x.ndim + 1 dims.",
            "gf.zeros(3).unsqueeze(0).shape                # (1, 3)")
def unsqueeze(x, axis: int) -> Tensor:
    nd = x.ndim + 1
    if not -nd <= axis < nd:
        raise ValueError(f"unsqueeze: axis {axis} is out of range for a result with {nd} dims")
    axis %= nd
    shape = list(x.shape)
    shape.insert(axis, 1)
    return reshape(x, tuple(shape))


@_shape_doc("x with axes start_axis..end_axis (inclusive) merged into one.",
            "start_axis, end_axis: the first and last axis to merge (default 0 and -1, the last).",
            "A Tensor (shape (1,) for a 0-d x).", "start_axis comes after end_axis.",
            "gf.zeros(8, 1, 28, 28).flatten(1).shape       # (8, 784)")
def flatten(x, start_axis: int = 0, end_axis: int = -1) -> Tensor:
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
    return Concatenate(axis=ax)(*tensors)


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


@_shape_doc("x cut along `axis` into pieces, like numpy.split (not torch.split).",
            "sections: an int n (n equal pieces; n must divide the axis) or indices to cut at.\n"
            "axis: the axis to cut (default 0).",
            "A list of Tensors (slices of x: each one's gradient flows back into its part).",
            "an int `sections` does not divide the axis.",
            "a, b = gf.split(gf.arange(6), 2)              # [0, 1, 2] and [3, 4, 5]\n"
            ">>> parts = gf.split(gf.arange(6), [1, 4])        # [0], [1, 2, 3], [4, 5]")
def split(x, sections, axis: int = 0) -> list:
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
