"""Reductions over axes (sum, mean, var, std, max, min, logsumexp) and the softmax family.

`axis` is an int, a tuple of ints or None (all axes), with NumPy's `keepdims`.
"""
from __future__ import annotations

import builtins

from .. import backend as B
from ..autograd import Function
from ..tensor import Tensor
from ._util import doc, keepdims_shape, normalize_axis, one_axis
from .compare import isfinite
from .elementwise import astype, exp, where
from .shape import BroadcastTo


def _expand(gy, x, axes, keepdims):
    # The gradient of a reduction: gy with the reduced axes put back (as size 1), broadcast to x.
    if not keepdims:
        gy = gy.reshape(keepdims_shape(x.shape, axes))
    return BroadcastTo(shape=x.shape)(gy)  # the op itself: these shapes need no checking


class Sum(Function):
    """d sum(x) = broadcast(dy): every element contributes with weight 1"""
    saves_inputs = False

    def forward(self, x):
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy, y, x):
        return _expand(gy, x, self.axes, self.keepdims)


class Mean(Function):
    """d mean(x) = broadcast(dy) / n"""
    saves_inputs = False

    def forward(self, x):
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy, y, x):
        n = 1
        for a in self.axes:
            n *= x.shape[a]
        return _expand(gy * (1.0 / builtins.max(n, 1)), x, self.axes, self.keepdims)


class Max(Function):
    """d max(x) goes to the positions equal to the max; ties share it evenly"""
    saves_output = True
    larger = True

    def forward(self, x):
        if x.size == 0 and (not self.axes or builtins.any(x.shape[a] == 0 for a in self.axes)):
            raise ValueError(f"{'max' if self.larger else 'min'} over an empty axis (shape "
                             f"{x.shape}, axis {self.axes}) has no value")
        if self.larger:
            return x.max(axis=self.axes, keepdims=self.keepdims)
        return x.min(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy, y, x):
        hit = astype(x == y.reshape(keepdims_shape(x.shape, self.axes)), x.dtype)
        share = hit / hit.sum(axis=self.axes, keepdims=True)
        return _expand(gy, x, self.axes, self.keepdims) * share


class Min(Max):
    """d min(x) goes to the positions equal to the min; ties share it evenly"""
    larger = False


def _shift(x, axes):
    # The max over `axes` (keepdims), subtracted before exp so that nothing overflows. An empty
    # tensor has no max, and any shift is exact there: zeros keep sum(exp) = 0, logsumexp -inf.
    if x.size == 0:
        return B.xp_of(x).zeros(keepdims_shape(x.shape, axes), dtype=x.dtype)
    return x.max(axis=axes if x.ndim else None, keepdims=True)


class LogSumExp(Function):
    """d logsumexp(x) = softmax(x) dx = exp(x - y) dx"""
    saves_output = True

    def forward(self, x):
        xp = B.xp_of(x)
        m = _shift(x, self.axes)
        # A slice of all -inf would give -inf - -inf = nan; shifting by 0 there keeps -inf.
        m = xp.where(xp.isfinite(m), m, 0)
        with B.quiet_fp():  # an all -inf slice gives log 0 = -inf: the result, not a warning
            y = xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True)) + m
        return y if self.keepdims else xp.squeeze(y, axis=self.axes)

    def backward(self, gy, y, x):
        yk = y.reshape(keepdims_shape(x.shape, self.axes))
        # A slice of all -inf has y = -inf and exp(-inf - -inf) = nan: shift it by 0 instead,
        # so it gets gradient 0 (it has no finite element to pass it to).
        yk = where(isfinite(yk), yk, 0.0)
        return _expand(gy, x, self.axes, self.keepdims) * exp(x - yk)


class Softmax(Function):
    """d softmax(x) = y * (dx - sum(y * dx))"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        with B.quiet_fp():  # an all -inf slice gives nan (-inf - -inf): the result, no warning
            e = B.xp_of(x).exp(x - _shift(x, self.axes))
            e /= e.sum(axis=self.axes, keepdims=True)
        return e

    def backward(self, gy, y, x):
        return y * (gy - (gy * y).sum(axis=self.axes, keepdims=True))


class LogSoftmax(Function):
    """d log_softmax(x) = dx - softmax(x) sum(dx), with softmax(x) = exp(y)"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        with B.quiet_fp():  # an all -inf slice gives nan (-inf - -inf): the result, no warning
            z = x - _shift(x, self.axes)
            return z - B.xp_of(x).log(B.xp_of(x).exp(z).sum(axis=self.axes, keepdims=True))

    def backward(self, gy, y, x):
        return gy - exp(y) * gy.sum(axis=self.axes, keepdims=True)


def _reduce(cls, name, x, axis, keepdims):
    if not isinstance(x, Tensor) and not hasattr(x, "dtype"):  # arrays: a rule on raw arrays
        raise TypeError(f"{name} expects a Tensor, got {type(x).__name__}")
    return cls(axes=normalize_axis(axis, x.ndim, name), keepdims=bool(keepdims))(x)


# Shared by the reductions; ddof ("\n" and an Args entry) and raises are optional.
_REDUCTION = """{summary}

    Args:
        x: a Tensor.
        axis: an int, a tuple of ints, or None (all axes); negative axes count from the end.
        keepdims: keep the reduced axes as size 1, so the result broadcasts against x.{ddof}

    Returns:
        {returns}

    {raises}

    Example:
        >>> {example}
    """


def _reduction(summary, example, returns="A Tensor of x's dtype.", ddof="", raises=""):
    return doc(_REDUCTION, summary=summary, example=example, returns=returns, ddof=ddof,
               raises=raises)


@_reduction("The sum over `axis`.",
            "x = gf.tensor([[1., 2.], [3., 4.]])\n"
            ">>> x.sum(axis=0)                         # tensor([4., 6.])\n"
            ">>> x.sum(axis=(0, 1), keepdims=True)     # tensor([[10.]])",
            "A Tensor; a 0-d Tensor when every axis is reduced (use .item() for the number).")
def sum(x, axis=None, keepdims=False) -> Tensor:
    return _reduce(Sum, "sum", x, axis, keepdims)


@_reduction("The arithmetic mean over `axis` (nan over an empty axis, as in NumPy).",
            "gf.tensor([[1., 2.], [3., 4.]]).mean(axis=1)   # tensor([1.5, 3.5])")
def mean(x, axis=None, keepdims=False) -> Tensor:
    return _reduce(Mean, "mean", x, axis, keepdims)


@_reduction("The variance over `axis`: sum((x - mean(x))**2) / (n - ddof).\n\n"
            "ddof=0 (NumPy's default) is the population variance; ddof=1 is PyTorch's unbiased\n"
            "default.",
            "gf.tensor([1., 2., 3., 4.]).var()          # tensor(1.25)",
            ddof="\nddof: delta degrees of freedom.",
            raises="Raises:\n    ValueError: n - ddof <= 0 (no degrees of freedom left).")
def var(x, axis=None, keepdims=False, ddof=0) -> Tensor:
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


@_reduction("The standard deviation over `axis`: sqrt(var(x, axis, keepdims, ddof)).\n\n"
            "Its gradient is infinite where the variance is 0 (all values equal).",
            "gf.tensor([1., 3.]).std()                  # tensor(1.)",
            ddof="\nddof: delta degrees of freedom (see `var`).")
def std(x, axis=None, keepdims=False, ddof=0) -> Tensor:
    from .elementwise import sqrt
    return sqrt(var(x, axis, keepdims, ddof))


@_reduction("The largest value over `axis`.\n\n"
            "Ties: the gradient is split evenly among all positions equal to the maximum (two\n"
            "maxima get half each), so it still sums to the upstream gradient; PyTorch's full\n"
            "reduction does the same.",
            "x = gf.tensor([1., 3., 3.], requires_grad=True)\n"
            ">>> x.max().backward()                         # x.grad is [0., 0.5, 0.5]",
            raises="Raises:\n    ValueError: a reduced axis is empty.")
def max(x, axis=None, keepdims=False) -> Tensor:
    return _reduce(Max, "max", x, axis, keepdims)


@_reduction("The smallest value over `axis`.\n\n"
            "Ties: the gradient is split evenly among all positions equal to the minimum.",
            "gf.tensor([[1., 5.], [0., 2.]]).min(axis=1)   # tensor([1., 0.])",
            raises="Raises:\n    ValueError: a reduced axis is empty.")
def min(x, axis=None, keepdims=False) -> Tensor:
    return _reduce(Min, "min", x, axis, keepdims)


@_reduction("log(sum(exp(x))) over `axis`, shifted by the max so that nothing overflows.\n\n"
            "Exact for float32 values of magnitude 1e4 (where exp alone overflows); an all -inf\n"
            "slice gives -inf, and an empty one -inf too. The gradient is softmax(x).",
            "gf.tensor([1e4, 1e4]).logsumexp()          # tensor(10000.69), no overflow")
def logsumexp(x, axis=None, keepdims=False) -> Tensor:
    return _reduce(LogSumExp, "logsumexp", x, axis, keepdims)


_SOFTMAX = """{summary}

    Args:
        x: a Tensor.
        axis: the axis to normalise over (default the last); a tuple of ints normalises over
            those axes together, None over all of them.

    Returns:
        A Tensor of x's shape{returns}.

    Example:
        >>> {example}
    """


@doc(_SOFTMAX, returns=" whose slices along `axis` sum to 1",
     summary="exp(x) / sum(exp(x)) along `axis`, shifted by the max so that nothing overflows.",
     example="gf.softmax(gf.tensor([[0., 0.], [1e4, 0.]]))   # [[0.5, 0.5], [1., 0.]]")
def softmax(x, axis=-1) -> Tensor:
    if not isinstance(x, Tensor) and not hasattr(x, "dtype"):  # arrays: a rule on raw arrays
        raise TypeError(f"softmax expects a Tensor, got {type(x).__name__}")
    return Softmax(axes=normalize_axis(axis, x.ndim, "softmax"))(x)


@doc(_SOFTMAX, summary="x - logsumexp(x) along `axis`: log-probabilities, stable for any "
     "logits.\n\n"
     "Computed as z - log(sum(exp(z))) with z = x - max(x), so it is exact for float32 logits\n"
     "of magnitude 1e4 (no overflow, no NaN, no log(0) for tiny probabilities).",
     returns="", example="gf.log_softmax(gf.tensor([1e4, 0.]))       # tensor([0., -10000.])")
def log_softmax(x, axis=-1) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"log_softmax expects a Tensor, got {type(x).__name__}")
    return LogSoftmax(axes=normalize_axis(axis, x.ndim, "log_softmax"))(x)


# --- not differentiable --------------------------------------------------------------------------
class ArgMax(Function):
    """argmax over one axis or all (int64; not differentiable)"""
    differentiable = False
    saves_inputs = False
    method = "argmax"

    def forward(self, x):
        r = getattr(x, self.method)(axis=self.axis)
        if self.keepdims:
            r = r.reshape(keepdims_shape(x.shape, (self.axis,) if self.axis is not None
                                         else tuple(range(x.ndim))))
        return r

    def backward(self, gy, y, x):
        raise RuntimeError(f"{self.method} is not differentiable")


class ArgMin(ArgMax):
    """argmin over one axis or all (int64; not differentiable)"""
    method = "argmin"


_ARG = """The index of the {larger} value (the first one on ties); int64, not differentiable.

    Args:
        x: a Tensor.
        axis: one int, or None for the index into the flattened tensor.
        keepdims: keep the reduced axis as size 1.

    Returns:
        An int64 Tensor.

    Example:
        >>> {example}
    """


@doc(_ARG, larger="largest",
     example="gf.tensor([[1., 9.], [7., 2.]]).argmax(axis=1)   # tensor([1, 0])")
def argmax(x, axis=None, keepdims=False) -> Tensor:
    if axis is not None:
        axis = one_axis(axis, x.ndim, "argmax")
    return ArgMax(axis=axis, keepdims=keepdims)(x)


@doc(_ARG, larger="smallest", example="gf.tensor([3., 1., 2.]).argmin()           # tensor(1)")
def argmin(x, axis=None, keepdims=False) -> Tensor:
    if axis is not None:
        axis = one_axis(axis, x.ndim, "argmin")
    return ArgMin(axis=axis, keepdims=keepdims)(x)


@_reduction("True where every element over `axis` is nonzero; bool, not differentiable.",
            "(gf.tensor([1., 2.]) > 0).all()            # tensor(True)", "A bool Tensor.")
def all(x, axis=None, keepdims=False) -> Tensor:
    return _logical_reduce("all", x, axis, keepdims)


@_reduction("True where some element over `axis` is nonzero; bool, not differentiable.",
            "(gf.tensor([1., -2.]) < 0).any()           # tensor(True)", "A bool Tensor.")
def any(x, axis=None, keepdims=False) -> Tensor:
    return _logical_reduce("any", x, axis, keepdims)


def _logical_reduce(method, x, axis, keepdims):
    axes = normalize_axis(axis, x.ndim, method)
    dev = x.device
    with dev.backend.use(dev.index):
        return Tensor._make(B.xp_of(x.data).asarray(getattr(x.data, method)(
            axis=axes, keepdims=keepdims)), dev)
