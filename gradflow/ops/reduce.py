"""Reductions over axes (sum, mean, var, std, max, min, logsumexp) and the softmax family.

`axis` is an int, a tuple of ints or None (all axes), with NumPy's `keepdims`.
"""
from __future__ import annotations

import builtins

from ..autograd import Function
from ..tensor import Tensor
from ._util import const, expand_array, keepdims_shape, normalize_axis, one_axis
from .elementwise import exp, self_xp, where
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
        if len(self.axes) == len(self.shape):  # a full sum: gy broadcasts as it is, no reshape
            return (broadcast_to(gy, self.shape),)
        return (broadcast_to(_expand(gy, self.shape, self.axes, self.keepdims), self.shape),)

    def backward_arrays(self, gy):
        if len(self.axes) != len(self.shape) and not self.keepdims:
            gy = gy.reshape(keepdims_shape(self.shape, self.axes))
        return (expand_array(self_xp(gy), gy, self.shape),)


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

    def backward_arrays(self, gy):
        n = 1
        for a in self.axes:
            n *= self.shape[a]
        xp = self_xp(gy)  # before the product: a 0-d array times a number is a NumPy scalar
        if not self.keepdims:
            gy = gy.reshape(keepdims_shape(self.shape, self.axes))
        return (expand_array(xp, xp.multiply(gy, 1.0 / builtins.max(n, 1)), self.shape),)


class Max(Function):
    """d max(x) goes to the positions equal to the max; ties share it evenly"""
    saves_output = True

    def __init__(self, axes, keepdims, larger=True) -> None:
        self.axes, self.keepdims, self.larger = axes, keepdims, larger

    def forward(self, x):
        if x.size == 0 and (not self.axes or builtins.any(x.shape[a] == 0 for a in self.axes)):
            raise ValueError(f"{'max' if self.larger else 'min'} over an empty axis (shape "
                             f"{x.shape}, axis {self.axes}) has no value")
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


def _shift(xp, x, axes):
    # The max over `axes` (keepdims), subtracted before exp so that nothing overflows. An empty
    # tensor has no max, and any shift is exact there: zeros keep sum(exp) = 0, logsumexp -inf.
    if x.size == 0:
        return xp.zeros(keepdims_shape(x.shape, axes), dtype=x.dtype)
    return x.max(axis=axes if x.ndim else None, keepdims=True)


class LogSumExp(Function):
    """d logsumexp(x) = softmax(x) dx = exp(x - y) dx"""
    saves_output = True

    def __init__(self, axes, keepdims) -> None:
        self.axes, self.keepdims = axes, keepdims

    def forward(self, x):
        xp = self_xp(x)
        m = _shift(xp, x, self.axes)
        # A slice of all -inf would give -inf - -inf = nan; shifting by 0 there keeps -inf.
        m = xp.where(xp.isfinite(m), m, 0)
        y = xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True)) + m
        return y if self.keepdims else xp.squeeze(y, axis=self.axes)

    def backward(self, gy):
        (x,) = self.inputs
        y = self.saved_output()
        yk = _expand(y, x.shape, self.axes, self.keepdims)
        # A slice of all -inf has y = -inf and exp(-inf - -inf) = nan: shift it by 0 instead,
        # so it gets gradient 0 (it has no finite element to pass it to).
        yk = where(const(y.device.xp.isfinite(yk.data), y.device), yk, 0.0)
        gk = _expand(gy, x.shape, self.axes, self.keepdims)
        return (gk * exp(x - yk),)


class Softmax(Function):
    """d softmax(x) = y * (dx - sum(y * dx))"""
    saves_inputs = False
    saves_output = True

    def __init__(self, axes) -> None:
        self.axes = axes

    def forward(self, x):
        xp = self_xp(x)
        e = xp.exp(x - _shift(xp, x, self.axes))
        return e / e.sum(axis=self.axes, keepdims=True)

    def backward(self, gy):
        y = self.saved_output()
        return (y * (gy - (gy * y).sum(axis=self.axes, keepdims=True)),)


class LogSoftmax(Function):
    """d log_softmax(x) = dx - softmax(x) sum(dx), with softmax(x) = exp(y)"""
    saves_inputs = False
    saves_output = True

    def __init__(self, axes) -> None:
        self.axes = axes

    def forward(self, x):
        xp = self_xp(x)
        z = x - _shift(xp, x, self.axes)
        return z - xp.log(xp.exp(z).sum(axis=self.axes, keepdims=True))

    def backward(self, gy):
        y = self.saved_output()
        return (gy - exp(y) * gy.sum(axis=self.axes, keepdims=True),)


def _reduce(cls, name, x, axis, keepdims):
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} expects a Tensor, got {type(x).__name__}")
    return cls(normalize_axis(axis, x.ndim, name), bool(keepdims))(x)


def sum(x, axis=None, keepdims=False) -> Tensor:
    """The sum over `axis`.

    Args:
        x: a Tensor.
        axis: an int, a tuple of ints, or None (all axes); negative axes count from the end.
        keepdims: keep the reduced axes as size 1, so the result broadcasts against x.

    Returns:
        A Tensor; a 0-d Tensor when every axis is reduced (use .item() for the number).

    Example:
        >>> x = gf.tensor([[1., 2.], [3., 4.]])
        >>> x.sum(axis=0)                         # tensor([4., 6.])
        >>> x.sum(axis=(0, 1), keepdims=True)     # tensor([[10.]])
    """
    return _reduce(Sum, "sum", x, axis, keepdims)


def mean(x, axis=None, keepdims=False) -> Tensor:
    """The arithmetic mean over `axis` (nan over an empty axis, as in NumPy).

    Args:
        x: a Tensor.
        axis: an int, a tuple of ints, or None (all axes); negative axes count from the end.
        keepdims: keep the reduced axes as size 1, so the result broadcasts against x.

    Returns:
        A Tensor of x's dtype.

    Example:
        >>> gf.tensor([[1., 2.], [3., 4.]]).mean(axis=1)   # tensor([1.5, 3.5])
    """
    return _reduce(Mean, "mean", x, axis, keepdims)


def var(x, axis=None, keepdims=False, ddof=0) -> Tensor:
    """The variance over `axis`: sum((x - mean(x))**2) / (n - ddof).

    ddof=0 (NumPy's default) is the population variance; ddof=1 is PyTorch's unbiased default.

    Args:
        x: a Tensor.
        axis: an int, a tuple of ints, or None (all axes); negative axes count from the end.
        keepdims: keep the reduced axes as size 1, so the result broadcasts against x.
        ddof: delta degrees of freedom.

    Returns:
        A Tensor of x's dtype.

    Raises:
        ValueError: n - ddof <= 0 (no degrees of freedom left).

    Example:
        >>> gf.tensor([1., 2., 3., 4.]).var()          # tensor(1.25)
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"var expects a Tensor, got {type(x).__name__}")
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
    """The standard deviation over `axis`: sqrt(var(x, axis, keepdims, ddof)).

    Its gradient is infinite where the variance is 0 (all values equal).

    Args:
        x: a Tensor.
        axis: an int, a tuple of ints, or None (all axes); negative axes count from the end.
        keepdims: keep the reduced axes as size 1, so the result broadcasts against x.
        ddof: delta degrees of freedom (see `var`).

    Returns:
        A Tensor of x's dtype.

    Example:
        >>> gf.tensor([1., 3.]).std()                  # tensor(1.)
    """
    from .elementwise import sqrt
    return sqrt(var(x, axis, keepdims, ddof))


def max(x, axis=None, keepdims=False) -> Tensor:
    """The largest value over `axis`.

    Ties: the gradient is split evenly among all positions equal to the maximum (two maxima get
    half each), so it still sums to the upstream gradient; PyTorch's full reduction does the same.

    Args:
        x: a Tensor.
        axis: an int, a tuple of ints, or None (all axes); negative axes count from the end.
        keepdims: keep the reduced axes as size 1, so the result broadcasts against x.

    Returns:
        A Tensor of x's dtype.

    Raises:
        ValueError: a reduced axis is empty.

    Example:
        >>> x = gf.tensor([1., 3., 3.], requires_grad=True)
        >>> x.max().backward()                         # x.grad is [0., 0.5, 0.5]
    """
    return _reduce(Max, "max", x, axis, keepdims)


def min(x, axis=None, keepdims=False) -> Tensor:
    """The smallest value over `axis`.

    Ties: the gradient is split evenly among all positions equal to the minimum.

    Args:
        x: a Tensor.
        axis: an int, a tuple of ints, or None (all axes); negative axes count from the end.
        keepdims: keep the reduced axes as size 1, so the result broadcasts against x.

    Returns:
        A Tensor of x's dtype.

    Raises:
        ValueError: a reduced axis is empty.

    Example:
        >>> gf.tensor([[1., 5.], [0., 2.]]).min(axis=1)   # tensor([1., 0.])
    """
    return _reduce(Min, "min", x, axis, keepdims)


def logsumexp(x, axis=None, keepdims=False) -> Tensor:
    """log(sum(exp(x))) over `axis`, shifted by the max so that nothing overflows.

    Exact for float32 values of magnitude 1e4 (where exp alone overflows); an all -inf slice gives
    -inf, and an empty one -inf too. The gradient is softmax(x).

    Args:
        x: a Tensor.
        axis: an int, a tuple of ints, or None (all axes); negative axes count from the end.
        keepdims: keep the reduced axes as size 1, so the result broadcasts against x.

    Returns:
        A Tensor of x's dtype.

    Example:
        >>> gf.tensor([1e4, 1e4]).logsumexp()          # tensor(10000.69), no overflow
    """
    return _reduce(LogSumExp, "logsumexp", x, axis, keepdims)


def softmax(x, axis=-1) -> Tensor:
    """exp(x) / sum(exp(x)) along `axis`, shifted by the max so that nothing overflows.

    Args:
        x: a Tensor.
        axis: the axis to normalise over (default the last); a tuple of ints normalises over
            those axes together, None over all of them.

    Returns:
        A Tensor of x's shape whose slices along `axis` sum to 1.

    Example:
        >>> gf.softmax(gf.tensor([[0., 0.], [1e4, 0.]]))   # [[0.5, 0.5], [1., 0.]]
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"softmax expects a Tensor, got {type(x).__name__}")
    return Softmax(normalize_axis(axis, x.ndim, "softmax"))(x)


def log_softmax(x, axis=-1) -> Tensor:
    """x - logsumexp(x) along `axis`: log-probabilities, stable for any logits.

    Computed as z - log(sum(exp(z))) with z = x - max(x), so it is exact for float32 logits of
    magnitude 1e4 (no overflow, no NaN, no log(0) for tiny probabilities).

    Args:
        x: a Tensor.
        axis: the axis to normalise over (default the last); a tuple of ints normalises over
            those axes together, None over all of them.

    Returns:
        A Tensor of x's shape.

    Example:
        >>> gf.log_softmax(gf.tensor([1e4, 0.]))       # tensor([0., -10000.])
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"log_softmax expects a Tensor, got {type(x).__name__}")
    return LogSoftmax(normalize_axis(axis, x.ndim, "log_softmax"))(x)


# --- not differentiable --------------------------------------------------------------------------
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
    """argmax / argmin over one axis (int64; not differentiable)"""
    pass


def argmax(x, axis=None, keepdims=False) -> Tensor:
    """The index of the largest value (the first one on ties); int64, not differentiable.

    Args:
        x: a Tensor.
        axis: one int, or None for the index into the flattened tensor.
        keepdims: keep the reduced axis as size 1.

    Returns:
        An int64 Tensor.

    Example:
        >>> gf.tensor([[1., 9.], [7., 2.]]).argmax(axis=1)   # tensor([1, 0])
    """
    if axis is not None:
        axis = one_axis(axis, x.ndim, "argmax")
    return ArgMax("argmax", axis, keepdims)(x)


def argmin(x, axis=None, keepdims=False) -> Tensor:
    """The index of the smallest value (the first one on ties); int64, not differentiable.

    Args:
        x: a Tensor.
        axis: one int, or None for the index into the flattened tensor.
        keepdims: keep the reduced axis as size 1.

    Returns:
        An int64 Tensor.

    Example:
        >>> gf.tensor([3., 1., 2.]).argmin()           # tensor(1)
    """
    if axis is not None:
        axis = one_axis(axis, x.ndim, "argmin")
    return ArgMax("argmin", axis, keepdims)(x)


def all(x, axis=None, keepdims=False) -> Tensor:
    """True where every element over `axis` is true (nonzero); bool, not differentiable.

    Args:
        x: a Tensor.
        axis: an int, a tuple of ints, or None (all axes); negative axes count from the end.
        keepdims: keep the reduced axes as size 1, so the result broadcasts against x.

    Returns:
        A bool Tensor.

    Example:
        >>> (gf.tensor([1., 2.]) > 0).all()            # tensor(True)
    """
    return _logical_reduce("all", x, axis, keepdims)


def any(x, axis=None, keepdims=False) -> Tensor:
    """True where some element over `axis` is true (nonzero); bool, not differentiable.

    Args:
        x: a Tensor.
        axis: an int, a tuple of ints, or None (all axes); negative axes count from the end.
        keepdims: keep the reduced axes as size 1, so the result broadcasts against x.

    Returns:
        A bool Tensor.

    Example:
        >>> (gf.tensor([1., -2.]) < 0).any()           # tensor(True)
    """
    return _logical_reduce("any", x, axis, keepdims)


def _logical_reduce(method, x, axis, keepdims):
    axes = normalize_axis(axis, x.ndim, method)
    dev = x.device
    with dev.backend.use(dev.index):
        return const(getattr(x.data, method)(axis=axes, keepdims=keepdims), dev)
