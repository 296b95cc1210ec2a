"""Reductions over axes (sum, mean, var, std, max, min, logsumexp) and the softmax family.

`axis` is an int, a tuple of ints or None (all axes), with NumPy's `keepdims`.
"""
from __future__ import annotations

import builtins

from ..autograd import Function
from ..tensor import Tensor
from ._util import const, keepdims_shape, normalize_axis
from .elementwise import exp, self_xp
from .shape import broadcast_to, reshape


def _expand(gy, x_shape, axes, keepdims):
    # Put the reduced axes back as size 1, then broadcast: the gradient of a reduction.
    if not keepdims:
        gy = reshape(gy, keepdims_shape(x_shape, axes))
    return gy


class Sum(Function):
    """d sum(x) = broadcast(dy): every element contributes with weight 1"""
    saves_inputs = False

    def __init__(self, axes, keepdims) -> None:
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.shape = x.shape
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        return (broadcast_to(_expand(gy, self.shape, self.axes, self.keepdims), self.shape),)


class Mean(Function):
    """d mean(x) = broadcast(dy) / n"""
    saves_inputs = False

    def __init__(self, axes, keepdims) -> None:
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        self.shape = x.shape
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        n = 1
        for a in self.axes:
            n *= self.shape[a]
        g = _expand(gy, self.shape, self.axes, self.keepdims) * (1.0 / builtins.max(n, 1))
        return (broadcast_to(g, self.shape),)


class Max(Function):
    """d max(x) goes to the positions equal to the max; ties share it evenly"""
    saves_output = True

    def __init__(self, axes, keepdims, larger=True) -> None:
        self.axes, self.keepdims, self.larger = axes, keepdims, larger

    def forward(self, x):
        if x.size == 0:
            raise ValueError(f"{'max' if self.larger else 'min'} of an empty tensor "
                             f"(shape {x.shape}) has no value")
        if self.larger:
            return x.max(axis=self.axes, keepdims=self.keepdims)
        return x.min(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        (x,) = self.inputs
        y = self.saved_output()
        kshape = keepdims_shape(x.shape, self.axes)
        hit = x.data == y.data.reshape(kshape)
        share = hit / hit.sum(axis=self.axes, keepdims=True)
        g = _expand(gy, x.shape, self.axes, self.keepdims)
        return (g * const(share.astype(x.dtype), x.device),)


class Min(Max):
    """d min(x) goes to the positions equal to the min; ties share it evenly"""

    def __init__(self, axes, keepdims) -> None:
        super().__init__(axes, keepdims, larger=False)


class LogSumExp(Function):
    """d logsumexp(x) = softmax(x) dx = exp(x - y) dx"""
    saves_output = True

    def __init__(self, axes, keepdims) -> None:
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        xp = self_xp(x)
        m = x.max(axis=self.axes, keepdims=True)
        # A slice of all -inf would give -inf - -inf = nan; shifting by 0 there keeps -inf.
        m = xp.where(xp.isfinite(m), m, 0)
        y = xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True)) + m
        return y if self.keepdims else xp.squeeze(y, axis=self.axes)

    def backward(self, gy):
        (x,) = self.inputs
        y = self.saved_output()
        yk = _expand(y, x.shape, self.axes, self.keepdims)
        gk = _expand(gy, x.shape, self.axes, self.keepdims)
        return (gk * exp(x - yk),)


class Softmax(Function):
    """d softmax(x) = y * (dx - sum(y * dx))"""
    saves_inputs = False
    saves_output = True

    def __init__(self, axis) -> None:
        self.axis = axis

    def forward(self, x):
        xp = self_xp(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        return e / e.sum(axis=self.axis, keepdims=True)

    def backward(self, gy):
        y = self.saved_output()
        return (y * (gy - (gy * y).sum(axis=self.axis, keepdims=True)),)


class LogSoftmax(Function):
    """d log_softmax(x) = dx - softmax(x) sum(dx), with softmax(x) = exp(y)"""
    saves_inputs = False
    saves_output = True

    def __init__(self, axis) -> None:
        self.axis = axis

    def forward(self, x):
        xp = self_xp(x)
        z = x - x.max(axis=self.axis, keepdims=True)
        return z - xp.log(xp.exp(z).sum(axis=self.axis, keepdims=True))

    def backward(self, gy):
        y = self.saved_output()
        return (gy - exp(y) * gy.sum(axis=self.axis, keepdims=True),)


def _reduce(cls, name, x, axis, keepdims):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} expects a Tensor, got {type(x).__name__}")
    return cls(normalize_axis(axis, x.ndim, name), bool(keepdims))(x)


def sum(x, axis=None, keepdims=False) -> Tensor:
    """Sum over `axis` (int, tuple or None for all). Example: `x.sum(axis=0)`."""
    return _reduce(Sum, "sum", x, axis, keepdims)


def mean(x, axis=None, keepdims=False) -> Tensor:
    """Arithmetic mean over `axis` (int, tuple or None for all)."""
    return _reduce(Mean, "mean", x, axis, keepdims)


def var(x, axis=None, keepdims=False, ddof=0) -> Tensor:
    """Variance over `axis`: mean((x - mean(x))**2) * n / (n - ddof).

    ddof=0 (NumPy's default) is the population variance; ddof=1 is PyTorch's unbiased default.
    """
    axes = normalize_axis(axis, x.ndim, "var")
    n = 1
    for a in axes:
        n *= x.shape[a]
    if n - ddof <= 0:
        raise ValueError(f"var: {n} element(s) over axis {axis!r} of shape {x.shape} with "
                         f"ddof={ddof} leave no degrees of freedom")
    d = x - mean(x, axes, keepdims=True)
    return sum(d * d, axes, keepdims) * (1.0 / (n - ddof))


def std(x, axis=None, keepdims=False, ddof=0) -> Tensor:
    """Standard deviation over `axis`: sqrt(var(x, axis, keepdims, ddof))."""
    from .elementwise import sqrt
    return sqrt(var(x, axis, keepdims, ddof))


def max(x, axis=None, keepdims=False) -> Tensor:
    """Largest value over `axis`. Ties: the gradient is split evenly among the maxima."""
    return _reduce(Max, "max", x, axis, keepdims)


def min(x, axis=None, keepdims=False) -> Tensor:
    """Smallest value over `axis`. Ties: the gradient is split evenly among the minima."""
    return _reduce(Min, "min", x, axis, keepdims)


def logsumexp(x, axis=None, keepdims=False) -> Tensor:
    """log(sum(exp(x))) over `axis`, computed without overflow (shifted by the max)."""
    return _reduce(LogSumExp, "logsumexp", x, axis, keepdims)


def _single_axis(x, axis, name):
    return normalize_axis(axis, x.ndim, name)[0] if x.ndim else 0


def softmax(x, axis=-1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, shifted by the max so large logits do not overflow."""
    return Softmax(_single_axis(x, axis, "softmax"))(x)


def log_softmax(x, axis=-1) -> Tensor:
    """x - logsumexp(x) along `axis`: exact for logits of magnitude 1e4 in float32."""
    return LogSoftmax(_single_axis(x, axis, "log_softmax"))(x)


# --- not differentiable ---------------------------------------------------------------------------------
class _ArgReduce(Function):
    differentiable = False
    saves_inputs = False

    def __init__(self, method, axis, keepdims) -> None:
        self.method, self.axis, self.keepdims = method, axis, keepdims

    def forward(self, x):
        r = getattr(x, self.method)(axis=self.axis)
        if self.keepdims:
            xp = self_xp(x)
            r = xp.expand_dims(r, self.axis) if self.axis is not None else r.reshape(
                (1,) * x.ndim)
        return r

    def backward(self, gy):
        raise RuntimeError(f"{self.method} is not differentiable")


class ArgMax(_ArgReduce):
    pass


def argmax(x, axis=None, keepdims=False) -> Tensor:
    """Index of the largest value (flat index when axis is None); int64, not differentiable."""
    if axis is not None:
        axis = normalize_axis(axis, x.ndim, "argmax")[0]
    return ArgMax("argmax", axis, keepdims)(x)


def argmin(x, axis=None, keepdims=False) -> Tensor:
    """Index of the smallest value (flat index when axis is None); int64, not differentiable."""
    if axis is not None:
        axis = normalize_axis(axis, x.ndim, "argmin")[0]
    return ArgMax("argmin", axis, keepdims)(x)


def all(x, axis=None, keepdims=False) -> Tensor:
    """True where every element over `axis` is true (bool, not differentiable)."""
    return _logical_reduce("all", x, axis, keepdims)


def any(x, axis=None, keepdims=False) -> Tensor:
    """True where some element over `axis` is true (bool, not differentiable)."""
    return _logical_reduce("any", x, axis, keepdims)


def _logical_reduce(method, x, axis, keepdims):
    axes = normalize_axis(axis, x.ndim, method)
    r = getattr(x.data, method)(axis=axes, keepdims=keepdims)
    if r.__class__ is not x.device.backend.ndarray:
        r = x.device.backend.asarray(r)
    return const(r, x.device)
