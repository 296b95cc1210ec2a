"""Elementwise ops: arithmetic, the usual functions and activations, selections, dtype and device.

Binary ops accept a Tensor or a Python number on either side; a broadcast input gets its gradient
summed back to its own shape by `unbroadcast`. Each op's `backward` is its one gradient rule: it
runs on raw arrays in a plain backward and on Tensors (recorded) under create_graph.
"""
from __future__ import annotations

import builtins
import math

from .. import backend as B
from ..autograd import Function
from ..tensor import Tensor
from ._util import doc
from .compare import sign
from .shape import sum_to

xp_of = B.xp_of


def unbroadcast(g, x):
    """`g` summed back to `x`'s shape and cast to `x`'s dtype: the gradient of a broadcast input.

    Sums the leading axes broadcasting added, then (keeping dims) the axes that were 1 (see
    `sum_to`). The cast matters where NumPy promoted mixed inputs (float32 * float64 -> float64):
    each input's gradient comes back in that input's own dtype. `g` and `x` are both raw arrays
    (a plain backward) or both Tensors (create_graph), and so is the result.

    Example:
        >>> unbroadcast(gf.ones(3, 4), gf.zeros(1, 4))           # tensor([[3., 3., 3., 3.]])
    """
    if g.shape != x.shape:
        g = sum_to(g, x.shape)
    if g.dtype != x.dtype:
        g = astype(g, x.dtype)
    return g


# --- arithmetic ----------------------------------------------------------------------------------
class Add(Function):
    """d(a + b) = da + db"""
    saves_inputs = False

    def forward(self, a, b):
        return a + b

    def backward(self, gy, y, a, b):
        need_a, need_b = self.needs_input_grad
        return (unbroadcast(gy, a) if need_a else None,
                unbroadcast(gy, b) if need_b else None)


class Sub(Function):
    """d(a - b) = da - db"""
    saves_inputs = False

    def forward(self, a, b):
        return a - b

    def backward(self, gy, y, a, b):
        need_a, need_b = self.needs_input_grad
        return (unbroadcast(gy, a) if need_a else None,
                unbroadcast(-gy, b) if need_b else None)


class Mul(Function):
    """d(a * b) = b da + a db"""

    def forward(self, a, b):
        return a * b

    def backward(self, gy, y, a, b):
        need_a, need_b = self.needs_input_grad
        return (unbroadcast(gy * b, a) if need_a else None,
                unbroadcast(gy * a, b) if need_b else None)


class Div(Function):
    """d(a / b) = da / b - a db / b^2"""

    def forward(self, a, b):
        with B.quiet_fp():  # x / 0 = inf (0 / 0 = nan) is the result, not a warning
            return a / b

    def backward(self, gy, y, a, b):
        need_a, need_b = self.needs_input_grad
        return (unbroadcast(gy / b, a) if need_a else None,
                unbroadcast(-gy * a / (b * b), b) if need_b else None)


class Pow(Function):
    """d(a ** b) = b a^(b-1) da + a^b log(a) db"""

    def forward(self, a, b):
        with B.quiet_fp():  # 0 ** -1 = inf, (-1) ** 0.5 = nan: results, not warnings
            return a ** b

    def backward(self, gy, y, a, b):
        need_a, need_b = self.needs_input_grad
        return (unbroadcast(gy * b * a ** (b - 1), a) if need_a else None,
                unbroadcast(gy * a ** b * _log_base(a), b) if need_b else None)


def _log_base(a):
    # A Python-number base follows the tensor rule without NumPy's warnings: log 0 = -inf, and
    # the log of a negative number is nan.
    if isinstance(a, (int, float)):
        return math.log(a) if a > 0 else (-math.inf if a == 0 else math.nan)
    return log(a)


class Neg(Function):
    """d(-x) = -dx"""
    saves_inputs = False

    def forward(self, x):
        return -x

    def backward(self, gy, y, x):
        return -gy


_ARITHMETIC = """a {sym} b, elementwise, with NumPy broadcasting (the `{sym}` operator calls this).

    Either side may be a Python number ({numbers} both work);
    a broadcast input's gradient is summed back to its own shape.

    Args:
        a, b: Tensors or Python numbers (at least one a Tensor).

    Returns:
        A Tensor of the broadcast shape. Python numbers keep a tensor's dtype (float32 stays
        float32); two tensors of different dtypes promote as in NumPy, and each input's gradient
        comes back in that input's own dtype.

    Example:
        >>> x = gf.tensor([[1., 2.], [3., 4.]], requires_grad=True)
        >>> y = gf.{op}(x, gf.tensor([10., 20.]))        # shape (2, 2)
    """


@doc(_ARITHMETIC, op="add", sym="+", numbers="`gf.add(x, 1.0)` and `gf.add(1.0, x)`")
def add(a, b) -> Tensor:
    return Add()(a, b)


@doc(_ARITHMETIC, op="sub", sym="-", numbers="`x - 1` and `1 - x`")
def sub(a, b) -> Tensor:
    return Sub()(a, b)


@doc(_ARITHMETIC, op="mul", sym="*", numbers="`x * 2` and `2 * x`")
def mul(a, b) -> Tensor:
    return Mul()(a, b)


@doc(_ARITHMETIC, op="div", sym="/", numbers="`x / 2` and `1 / x`")
def div(a, b) -> Tensor:
    return Div()(a, b)


def pow(a, b) -> Tensor:
    """a ** b, elementwise, with NumPy broadcasting; either side may be a Python number (`2 ** x`).

    The gradient with respect to the exponent is a ** b * log(a): it is only real for a > 0
    (log 0 = -inf, a negative base gives nan), as in PyTorch.

    Args:
        a, b: the base and the exponent, Tensors or Python numbers.

    Returns:
        A Tensor of the broadcast shape.

    Example:
        >>> x = gf.tensor([1., 2., 3.], requires_grad=True)
        >>> (x ** 2).sum().backward()          # x.grad is 2x = [2., 4., 6.]
    """
    return Pow()(a, b)


# Shared by the one-Tensor functions; x, args ("\n" and an Args entry) and values add detail.
_UNARY = """{summary}

    Args:
        x: a Tensor{x}.{args}

    Returns:
        A Tensor of x's shape and dtype{values}.

    Example:
        >>> {example}
    """


def _unary(summary, example, x="", args="", values=""):
    return doc(_UNARY, summary=summary, example=example, x=x, args=args, values=values)


@_unary("-x, elementwise (the unary minus operator).",
        "gf.neg(gf.tensor([1., -2.]))             # tensor([-1., 2.])")
def neg(x) -> Tensor:
    return Neg()(x)


# --- unary functions -----------------------------------------------------------------------------
class Abs(Function):
    """d|x| = sign(x) dx (0 at the kink x = 0)"""

    def forward(self, x):
        return builtins.abs(x)

    def backward(self, gy, y, x):
        return gy * sign(x)


class Exp(Function):
    """d exp(x) = exp(x) dx = y dx"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        with B.quiet_fp():  # exp(1000) = inf is the result, not a warning
            return xp_of(x).exp(x)

    def backward(self, gy, y, x):
        return gy * y


class Log(Function):
    """d log(x) = dx / x"""

    def forward(self, x):
        with B.quiet_fp():  # log 0 = -inf, log(-1) = nan: the results, not warnings
            return xp_of(x).log(x)

    def backward(self, gy, y, x):
        return gy / x


class Sqrt(Function):
    """d sqrt(x) = dx / (2 sqrt(x)) = dx / (2y)"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        with B.quiet_fp():  # sqrt(-1) = nan is the result, not a warning
            return xp_of(x).sqrt(x)

    def backward(self, gy, y, x):
        return gy / (2.0 * y)


class Sin(Function):
    """d sin(x) = cos(x) dx"""

    def forward(self, x):
        return xp_of(x).sin(x)

    def backward(self, gy, y, x):
        return gy * cos(x)


class Cos(Function):
    """d cos(x) = -sin(x) dx"""

    def forward(self, x):
        return xp_of(x).cos(x)

    def backward(self, gy, y, x):
        return -gy * sin(x)


class Tanh(Function):
    """d tanh(x) = (1 - y^2) dx"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return xp_of(x).tanh(x)

    def backward(self, gy, y, x):
        return gy * (1.0 - y * y)


class Sigmoid(Function):
    """d sigmoid(x) = y (1 - y) dx"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        # 0.5 tanh(x/2) + 0.5 equals 1/(1+exp(-x)) and never overflows for large |x|.
        y = xp_of(x).tanh(x * 0.5)
        y *= 0.5  # in place on the fresh array: no temporaries on large tensors
        y += 0.5
        return y

    def backward(self, gy, y, x):
        return gy * y * (1.0 - y)


class Relu(Function):
    """d relu(x) = [x > 0] dx = [y > 0] dx (0 at the kink x = 0)"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return xp_of(x).maximum(x, 0)

    def backward(self, gy, y, x):
        return gy * (y > 0)


class LeakyRelu(Function):
    """d leaky_relu(x) = (1 if x > 0 else slope) dx"""

    def forward(self, x):
        return xp_of(x).where(x > 0, x, x * self.slope)

    def backward(self, gy, y, x):
        return where(x > 0, gy, gy * self.slope)


_GELU_K = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


class Gelu(Function):
    """d gelu(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3c x^2), t = tanh(k (x + c x^3))"""

    def forward(self, x):
        return 0.5 * x * (1.0 + xp_of(x).tanh(_GELU_K * (x + _GELU_C * x * x * x)))

    def backward(self, gy, y, x):
        x2 = x * x
        t = tanh(_GELU_K * (x + _GELU_C * x2 * x))
        return gy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * (_GELU_K * (1.0 + 3.0 * _GELU_C * x2)))


@_unary("|x|, elementwise. The gradient is sign(x); at the kink x = 0 it is 0.",
        "gf.abs(gf.tensor([-1.5, 2.0]))           # tensor([1.5, 2.])")
def abs(x) -> Tensor:
    return Abs()(x)


@_unary("e ** x, elementwise; its gradient reuses the output (d exp(x) = exp(x) dx).",
        "gf.exp(gf.zeros(3))                      # tensor([1., 1., 1.])")
def exp(x) -> Tensor:
    return Exp()(x)


@_unary("The natural logarithm, elementwise (nan below 0, -inf at 0, as in NumPy).",
        "gf.log(gf.tensor([1.0, 2.718281828]))    # tensor([0., 1.])",
        x=", positive where the result should be finite")
def log(x) -> Tensor:
    return Log()(x)


@_unary("The square root, elementwise; the gradient 1 / (2 sqrt(x)) is infinite at 0.",
        "gf.sqrt(gf.tensor([4.0, 9.0]))           # tensor([2., 3.])",
        x=", non-negative where the result should be real")
def sqrt(x) -> Tensor:
    return Sqrt()(x)


@_unary("The sine (radians), elementwise.", "gf.sin(gf.tensor([0.0]))  # tensor([0.])")
def sin(x) -> Tensor:
    return Sin()(x)


@_unary("The cosine (radians), elementwise.", "gf.cos(gf.tensor([0.0]))  # tensor([1.])")
def cos(x) -> Tensor:
    return Cos()(x)


@_unary("The hyperbolic tangent, elementwise; d tanh(x) = 1 - tanh(x)**2.",
        "gf.tanh(gf.tensor([0.0, 100.0]))         # tensor([0., 1.])", values=", in (-1, 1)")
def tanh(x) -> Tensor:
    return Tanh()(x)


@_unary("1 / (1 + exp(-x)), elementwise, computed as 0.5 tanh(x / 2) + 0.5 so that no\n"
        "exp overflows for large |x|.",
        "gf.sigmoid(gf.tensor([-1e4, 0.0, 1e4]))  # tensor([0., 0.5, 1.]), no warning",
        values=", in [0, 1]")
def sigmoid(x) -> Tensor:
    return Sigmoid()(x)


@_unary("max(x, 0), elementwise. The gradient is 1 where x > 0, 0 elsewhere (0 at x = 0).",
        "gf.relu(gf.tensor([-1.0, 2.0]))          # tensor([0., 2.])")
def relu(x) -> Tensor:
    return Relu()(x)


@_unary("x where x > 0, else negative_slope * x (the gradient at 0 is negative_slope).",
        "gf.leaky_relu(gf.tensor([-2.0, 3.0]), 0.1)   # tensor([-0.2, 3.])",
        args="\nnegative_slope: the slope for x <= 0 (default 0.01, as in PyTorch).")
def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    return LeakyRelu(slope=float(negative_slope))(x)


@_unary("GELU with the tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).\n\n"
        "This is PyTorch's `gelu(x, approximate='tanh')`; the tanh form needs no erf, which NumPy\n"
        "lacks.", "gf.gelu(gf.tensor([0.0, 1.0]))           # tensor([0., 0.8412])")
def gelu(x) -> Tensor:
    return Gelu()(x)


# --- selections ----------------------------------------------------------------------------------
class Maximum(Function):
    """d max(a, b) goes to the larger input; on ties each input gets half."""

    def forward(self, a, b):
        return xp_of(b if isinstance(a, (int, float)) else a).maximum(a, b)

    def backward(self, gy, y, a, b):
        return _share_between(self.needs_input_grad, gy, a, b, a > b)


class Minimum(Function):
    """d min(a, b) goes to the smaller input; on ties each input gets half."""

    def forward(self, a, b):
        return xp_of(b if isinstance(a, (int, float)) else a).minimum(a, b)

    def backward(self, gy, y, a, b):
        return _share_between(self.needs_input_grad, gy, a, b, a < b)


def _share_between(needs, gy, a, b, wins):
    # a's share of gy: 1 where a wins, 1/2 on a tie, 0 where b wins; b gets the rest.
    share_a = astype(wins, gy.dtype) + astype(a == b, gy.dtype) * 0.5
    return (unbroadcast(gy * share_a, a) if needs[0] else None,
            unbroadcast(gy * (1.0 - share_a), b) if needs[1] else None)


class Clip(Function):
    """d clip(x, lo, hi) = [lo <= x <= hi] dx"""

    def forward(self, x):
        return xp_of(x).clip(x, self.lo, self.hi)

    def backward(self, gy, y, x):
        inside = (x >= self.lo) if self.lo is not None else (x <= self.hi)
        if self.lo is not None and self.hi is not None:
            inside = inside & (x <= self.hi)
        return gy * inside


class Where(Function):
    """d where(c, a, b) = where(c, da, db)"""
    saves_inputs = False

    def forward(self, a, b):
        return xp_of(self.cond).where(self.cond, a, b)

    def backward(self, gy, y, a, b):
        need_a, need_b = self.needs_input_grad
        return (unbroadcast(where(self.cond, gy, 0.0), a) if need_a else None,
                unbroadcast(where(self.cond, 0.0, gy), b) if need_b else None)


_EXTREMUM = """The elementwise {larger} of a and b, with NumPy broadcasting.
    The gradient goes to the {larger} input; on a tie (a == b) each input gets half of it.

    Args:
        a, b: Tensors or Python numbers (at least one a Tensor).

    Returns:
        A Tensor of the broadcast shape.

    Example:
        >>> gf.{op}(gf.tensor([1., 5.]), 3.0)   # {result}
    """


@doc(_EXTREMUM, op="maximum", larger="larger", result="tensor([3., 5.])")
def maximum(a, b) -> Tensor:
    return Maximum()(a, b)


@doc(_EXTREMUM, op="minimum", larger="smaller", result="tensor([1., 3.])")
def minimum(a, b) -> Tensor:
    return Minimum()(a, b)


def clip(x, min=None, max=None) -> Tensor:
    """x limited to [min, max], elementwise; the gradient is 1 inside (bounds included), 0 outside.

    Args:
        x: a Tensor.
        min, max: the lower and upper bound, numbers or None (no bound on that side).

    Returns:
        A Tensor of x's shape and dtype.

    Raises:
        ValueError: both bounds are None.
        TypeError: a bound is a Tensor (use gf.maximum / gf.minimum for tensor bounds).

    Example:
        >>> gf.clip(gf.tensor([-2.0, 0.5, 3.0]), 0.0, 1.0)   # tensor([0., 0.5, 1.])
    """
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    return Clip(lo=_bound(min, "min"), hi=_bound(max, "max"))(x)


def _bound(v, name):
    # NumPy scalars (np.float64(0.5)) would promote a float32 x to float64: keep Python numbers.
    if v is None or type(v) in (int, float):
        return v
    if isinstance(v, Tensor):
        raise TypeError(f"clip: {name} must be a number, got a Tensor of shape {v.shape}; "
                        "use gf.maximum / gf.minimum for tensor bounds")
    return float(v)


def where(cond, a, b) -> Tensor:
    """Elementwise `a` where `cond` is true, else `b`, broadcasting all three.
    The gradient goes to `a` where cond is true and to `b` where it is false.

    Args:
        cond: a bool Tensor (e.g. `x > 0`), bool array or nested lists; never differentiated.
        a, b: Tensors or Python numbers (at least one a Tensor).

    Returns:
        A Tensor of the broadcast shape.

    Raises:
        TypeError: cond is not bool, or neither a nor b is a Tensor.
        DeviceError: cond and an input live on different devices.

    Example:
        >>> x = gf.tensor([-1.0, 2.0])
        >>> gf.where(x > 0, x, 0.0)               # tensor([0., 2.])
    """
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        if hasattr(cond, "dtype") and not isinstance(cond, Tensor):  # a rule on raw arrays
            return Where(cond=cond)(a, b)
        raise TypeError("where: at least one of a and b must be a Tensor")
    dev = a.device if isinstance(a, Tensor) else b.device
    if isinstance(cond, Tensor):
        for t in (a, b):
            if isinstance(t, Tensor) and t.device is not cond.device:
                raise B.DeviceError(f"where: cond is on {cond.device} but an input is on "
                                    f"{t.device}")
        cond = cond.data
    else:  # a bool array or nested lists: put it where the inputs live
        cond = dev.backend.asarray(cond, index=dev.index)
    if cond.dtype != B.bool_:
        raise TypeError(f"where: cond must be a bool tensor, got dtype {cond.dtype}")
    return Where(cond=cond)(a, b)


# --- dtype and device moves ----------------------------------------------------------------------
class AsType(Function):
    """d astype(x) = astype(dx, x.dtype): the gradient goes back in the input's dtype"""
    saves_inputs = False

    def forward(self, x):
        return x.astype(self.dtype)

    def backward(self, gy, y, x):
        return astype(gy, x.dtype)


def astype(x, dtype) -> Tensor:
    """x converted to `dtype` (a copy; x itself when it already has that dtype).

    Args:
        x: a Tensor.
        dtype: the new dtype (gf.float32, gf.float64, gf.int64, 'float32', ...).

    Returns:
        A Tensor of x's shape with the new dtype: differentiable between floating-point dtypes
        (the gradient comes back in x's dtype), outside the graph for an integer or bool one.

    Example:
        >>> gf.astype(gf.tensor([1.7, -1.7]), gf.int64)   # tensor([1, -1])
    """
    dtype = B.dtype(dtype)
    if x.dtype == dtype:
        return x
    return AsType(dtype=dtype)(x)


class ToDevice(Function):
    """d to(x, device) = to(dx, x.device): gradients travel back to where x lives"""
    saves_inputs = False

    def forward(self, x):
        return B.move(x, self.device, self.source)

    def backward(self, gy, y, x):
        return ToDevice(device=self.source, source=self.device)(gy)


def to_device(x, device) -> Tensor:
    """x on `device` (a copy; x itself when it is already there), differentiably.
    `x.to(device)` calls this. The gradient travels back to x's device.

    Args:
        x: a Tensor.
        device: a Device or a name ('cpu', 'cuda', 'cuda:1').

    Returns:
        A Tensor on `device`.

    Example:
        >>> gf.to_device(gf.ones(2), "cpu").device                  # device('cpu')
    """
    device = B.get_device(device)
    return x if x.device is device else ToDevice(device=device, source=x.device)(x)
