"""Elementwise ops: arithmetic, the usual functions and activations, comparisons, where.

Binary ops accept a Tensor or a Python scalar on either side; a broadcast input gets its gradient
summed back to its own shape by `unbroadcast`.
"""
from __future__ import annotations

import builtins
import math

from .. import backend as B
from ..autograd import Function
from ..tensor import Tensor
from ._util import const, requires, unbroadcast, unbroadcast_array, value


def _shape(x):
    return x.shape if isinstance(x, Tensor) else ()


# --- arithmetic ----------------------------------------------------------------------------------
class Add(Function):
    """d(a + b) = da + db"""
    saves_inputs = False

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        a, b = self.inputs
        return (unbroadcast(gy, a.shape, a.dtype) if requires(a) else None,
                unbroadcast(gy, b.shape, b.dtype) if requires(b) else None)

    def backward_arrays(self, gy):
        a, b = self.inputs
        return (unbroadcast_array(gy, a) if requires(a) else None,
                unbroadcast_array(gy, b) if requires(b) else None)


class Sub(Function):
    """d(a - b) = da - db"""
    saves_inputs = False

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        a, b = self.inputs
        return (unbroadcast(gy, a.shape, a.dtype) if requires(a) else None,
                unbroadcast(-gy, b.shape, b.dtype) if requires(b) else None)

    def backward_arrays(self, gy):
        a, b = self.inputs
        return (unbroadcast_array(gy, a) if requires(a) else None,
                unbroadcast_array(-gy, b) if requires(b) else None)


class Mul(Function):
    """d(a * b) = b da + a db"""

    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        return (unbroadcast(gy * b, a.shape, a.dtype) if requires(a) else None,
                unbroadcast(gy * a, b.shape, b.dtype) if requires(b) else None)

    def backward_arrays(self, gy):
        a, b = self.inputs
        return (unbroadcast_array(gy * value(b), a) if requires(a) else None,
                unbroadcast_array(gy * value(a), b) if requires(b) else None)


class Div(Function):
    """d(a / b) = da / b - a db / b^2"""

    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if requires(a):
            ga = unbroadcast(gy / b, a.shape, a.dtype)
        if requires(b):
            gb = unbroadcast(-gy * a / (b * b), b.shape, b.dtype)
        return ga, gb

    def backward_arrays(self, gy):
        a, b = self.inputs
        av, bv = value(a), value(b)
        ga = gb = None
        if requires(a):
            ga = unbroadcast_array(gy / bv, a)
        if requires(b):
            gb = unbroadcast_array(-gy * av / (bv * bv), b)
        return ga, gb


class Pow(Function):
    """d(a ** b) = b a^(b-1) da + a^b log(a) db"""

    def forward(self, a, b):
        return a ** b

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if requires(a):
            ga = unbroadcast(gy * b * a ** (b - 1), a.shape, a.dtype)
        if requires(b):
            # A scalar base follows the tensor rule: log 0 = -inf, log of a negative is nan.
            log_a = log(a) if isinstance(a, Tensor) else (
                math.log(a) if a > 0 else (-math.inf if a == 0 else math.nan))
            gb = unbroadcast(gy * (a ** b) * log_a, b.shape, b.dtype)
        return ga, gb


class Neg(Function):
    """d(-x) = -dx"""
    saves_inputs = False

    def forward(self, x):
        return -x

    def backward(self, gy):
        return (-gy,)

    def backward_arrays(self, gy):
        return (-gy,)


def add(a, b) -> Tensor:
    """a + b, elementwise, with NumPy broadcasting.

    Either side may be a Python number (`gf.add(x, 1.0)` and `gf.add(1.0, x)` both work); the
    operator form `a + b` calls this function. A broadcast input's gradient is summed back to
    its own shape.

    Args:
        a, b: Tensors or Python numbers (at least one a Tensor).

    Returns:
        A Tensor of the broadcast shape. Python numbers keep a tensor's dtype (float32 stays
        float32); two tensors of different dtypes promote as in NumPy, and each input's gradient
        comes back in that input's own dtype.

    Example:
        >>> x = gf.tensor([[1., 2.], [3., 4.]], requires_grad=True)
        >>> y = gf.add(x, gf.tensor([10., 20.]))        # shape (2, 2)
    """
    return Add()(a, b)


def sub(a, b) -> Tensor:
    """a - b, elementwise, with NumPy broadcasting.

    Either side may be a Python number (`x - 1` and `1 - x` both work); the
    operator form `a - b` calls this function. A broadcast input's gradient is summed back to
    its own shape.

    Args:
        a, b: Tensors or Python numbers (at least one a Tensor).

    Returns:
        A Tensor of the broadcast shape. Python numbers keep a tensor's dtype (float32 stays
        float32); two tensors of different dtypes promote as in NumPy, and each input's gradient
        comes back in that input's own dtype.

    Example:
        >>> x = gf.tensor([[1., 2.], [3., 4.]], requires_grad=True)
        >>> y = gf.sub(x, gf.tensor([10., 20.]))        # shape (2, 2)
    """
    return Sub()(a, b)


def mul(a, b) -> Tensor:
    """a * b, elementwise, with NumPy broadcasting.

    Either side may be a Python number (`x * 2` and `2 * x` both work); the
    operator form `a * b` calls this function. A broadcast input's gradient is summed back to
    its own shape.

    Args:
        a, b: Tensors or Python numbers (at least one a Tensor).

    Returns:
        A Tensor of the broadcast shape. Python numbers keep a tensor's dtype (float32 stays
        float32); two tensors of different dtypes promote as in NumPy, and each input's gradient
        comes back in that input's own dtype.

    Example:
        >>> x = gf.tensor([[1., 2.], [3., 4.]], requires_grad=True)
        >>> y = gf.mul(x, gf.tensor([10., 20.]))        # shape (2, 2)
    """
    return Mul()(a, b)


def div(a, b) -> Tensor:
    """a / b, elementwise, with NumPy broadcasting.

    Either side may be a Python number (`x / 2` and `1 / x` both work); the
    operator form `a / b` calls this function. A broadcast input's gradient is summed back to
    its own shape.

    Args:
        a, b: Tensors or Python numbers (at least one a Tensor).

    Returns:
        A Tensor of the broadcast shape. Python numbers keep a tensor's dtype (float32 stays
        float32); two tensors of different dtypes promote as in NumPy, and each input's gradient
        comes back in that input's own dtype.

    Example:
        >>> x = gf.tensor([[1., 2.], [3., 4.]], requires_grad=True)
        >>> y = gf.div(x, gf.tensor([10., 20.]))        # shape (2, 2)
    """
    return Div()(a, b)


def pow(a, b) -> Tensor:
    """a ** b, elementwise, with NumPy broadcasting.

    Either side may be a Python number (`x ** 2`, `2 ** x`). The gradient with respect to the
    exponent is a ** b * log(a): it is only real for a > 0 (log 0 = -inf, a negative base gives
    nan), as in PyTorch.

    Args:
        a: the base, a Tensor or a Python number.
        b: the exponent, a Tensor or a Python number.

    Returns:
        A Tensor of the broadcast shape.

    Example:
        >>> x = gf.tensor([1., 2., 3.], requires_grad=True)
        >>> (x ** 2).sum().backward()          # x.grad is 2x = [2., 4., 6.]
    """
    return Pow()(a, b)


def neg(x) -> Tensor:
    """-x, elementwise (the unary minus operator).

    Args:
        x: a Tensor.

    Returns:
        A Tensor of x's shape and dtype.

    Example:
        >>> gf.neg(gf.tensor([1., -2.]))         # tensor([-1., 2.])
    """
    return Neg()(x)


# --- unary functions -----------------------------------------------------------------------------
class Abs(Function):
    """d|x| = sign(x) dx (0 at the kink x = 0)"""

    def forward(self, x):
        return builtins.abs(x)

    def backward(self, gy):
        (x,) = self.inputs
        return (gy * const(x.device.xp.sign(x.data), x.device),)


class Exp(Function):
    """d exp(x) = exp(x) dx = y dx"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return self_xp(x).exp(x)

    def backward(self, gy):
        return (gy * self.saved_output(),)

    def backward_arrays(self, gy):
        return (gy * self._y,)


class Log(Function):
    """d log(x) = dx / x"""

    def forward(self, x):
        return self_xp(x).log(x)

    def backward(self, gy):
        return (gy / self.inputs[0],)

    def backward_arrays(self, gy):
        return (gy / self.inputs[0].data,)


class Sqrt(Function):
    """d sqrt(x) = dx / (2 sqrt(x)) = dx / (2y)"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return self_xp(x).sqrt(x)

    def backward(self, gy):
        return (gy / (2.0 * self.saved_output()),)


class Sin(Function):
    """d sin(x) = cos(x) dx"""

    def forward(self, x):
        return self_xp(x).sin(x)

    def backward(self, gy):
        return (gy * cos(self.inputs[0]),)


class Cos(Function):
    """d cos(x) = -sin(x) dx"""

    def forward(self, x):
        return self_xp(x).cos(x)

    def backward(self, gy):
        return (-gy * sin(self.inputs[0]),)


class Tanh(Function):
    """d tanh(x) = (1 - y^2) dx"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return self_xp(x).tanh(x)

    def backward(self, gy):
        y = self.saved_output()
        return (gy * (1.0 - y * y),)

    def backward_arrays(self, gy):
        # 1 - y^2 built in place in one fresh array: on large tensors each temporary is a pass
        # over memory (a NumPy scalar, for 0-d y, is simply rebound).
        y = self._y
        g = y * y
        g *= -1.0
        g += 1.0
        g *= gy
        return (g,)


class Sigmoid(Function):
    """d sigmoid(x) = y (1 - y) dx"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        # 0.5 tanh(x/2) + 0.5 equals 1/(1+exp(-x)) and never overflows for large |x|.
        xp = self_xp(x)
        y = xp.tanh(x * 0.5)
        y *= 0.5  # in place on the fresh array: no temporaries on large tensors
        y += 0.5
        return y

    def backward(self, gy):
        y = self.saved_output()
        return (gy * y * (1.0 - y),)

    def backward_arrays(self, gy):
        y = self._y
        g = y - 1.0  # y (1 - y) gy, built in place: -(y - 1) y gy
        g *= y
        g *= gy
        g *= -1.0
        return (g,)


class Relu(Function):
    """d relu(x) = [x > 0] dx (0 at the kink x = 0)"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return self_xp(x).maximum(x, 0)

    def backward(self, gy):
        y = self.saved_output()
        return (gy * const((y.data > 0).astype(y.dtype), y.device),)

    def backward_arrays(self, gy):
        y = self._y
        g = (y > 0).astype(y.dtype)
        g *= gy
        return (g,)


class LeakyRelu(Function):
    """d leaky_relu(x) = (1 if x > 0 else slope) dx"""

    def __init__(self, slope: float) -> None:
        self.slope = slope

    def forward(self, x):
        return self_xp(x).where(x > 0, x, x * self.slope)

    def backward(self, gy):
        (x,) = self.inputs
        xp = x.device.xp
        return (gy * const(xp.where(x.data > 0, 1.0, self.slope).astype(x.dtype), x.device),)


_GELU_K = math.sqrt(2.0 / math.pi)
_GELU_C = 0.044715


class Gelu(Function):
    """d gelu(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3c x^2), t = tanh(k (x + c x^3))"""

    def forward(self, x):
        xp = self_xp(x)
        return 0.5 * x * (1.0 + xp.tanh(_GELU_K * (x + _GELU_C * x * x * x)))

    def backward(self, gy):
        (x,) = self.inputs
        x2 = x * x
        t = tanh(_GELU_K * (x + _GELU_C * x2 * x))
        dydx = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * (_GELU_K * (1.0 + 3.0 * _GELU_C * x2))
        return (gy * dydx,)


def self_xp(a):
    # The array module that owns `a`: NumPy unless `a` is a CuPy array.
    """The array module (numpy or cupy) that owns array `a`; for forward code that got
    raw arrays and must call module functions on them.
    """
    return B.device_of(a).xp if not isinstance(a, _np_ndarray) else _np


_np = B.host_numpy()
_np_ndarray = _np.ndarray


def abs(x) -> Tensor:
    """|x|, elementwise. The gradient is sign(x); at the kink x = 0 it is 0.

    Args:
        x: a Tensor.

    Returns:
        A Tensor of x's shape and dtype.

    Example:
        >>> gf.abs(gf.tensor([-1.5, 2.0]))        # tensor([1.5, 2.])
    """
    return Abs()(x)


def exp(x) -> Tensor:
    """e ** x, elementwise; its gradient reuses the output (d exp(x) = exp(x) dx).

    Args:
        x: a Tensor.

    Returns:
        A Tensor of x's shape and dtype.

    Example:
        >>> gf.exp(gf.zeros(3))                   # tensor([1., 1., 1.])
    """
    return Exp()(x)


def log(x) -> Tensor:
    """The natural logarithm, elementwise (nan below 0, -inf at 0, as in NumPy).

    Args:
        x: a Tensor, positive where the result should be finite.

    Returns:
        A Tensor of x's shape and dtype.

    Example:
        >>> gf.log(gf.tensor([1.0, 2.718281828]))  # tensor([0., 1.])
    """
    return Log()(x)


def sqrt(x) -> Tensor:
    """The square root, elementwise; the gradient 1 / (2 sqrt(x)) is infinite at 0.

    Args:
        x: a Tensor, non-negative where the result should be real.

    Returns:
        A Tensor of x's shape and dtype.

    Example:
        >>> gf.sqrt(gf.tensor([4.0, 9.0]))        # tensor([2., 3.])
    """
    return Sqrt()(x)


def sin(x) -> Tensor:
    """The sine (radians), elementwise.

    Args:
        x: a Tensor.

    Returns:
        A Tensor of x's shape and dtype.

    Example:
        >>> gf.sin(gf.tensor([0.0]))              # tensor([0.])
    """
    return Sin()(x)


def cos(x) -> Tensor:
    """The cosine (radians), elementwise.

    Args:
        x: a Tensor.

    Returns:
        A Tensor of x's shape and dtype.

    Example:
        >>> gf.cos(gf.tensor([0.0]))              # tensor([1.])
    """
    return Cos()(x)


def tanh(x) -> Tensor:
    """The hyperbolic tangent, elementwise; d tanh(x) = 1 - tanh(x)**2.

    Args:
        x: a Tensor.

    Returns:
        A Tensor of x's shape and dtype, in (-1, 1).

    Example:
        >>> gf.tanh(gf.tensor([0.0, 100.0]))      # tensor([0., 1.])
    """
    return Tanh()(x)


def sigmoid(x) -> Tensor:
    """1 / (1 + exp(-x)), elementwise, computed as 0.5 tanh(x / 2) + 0.5 so that no
    exp overflows for large |x|.

    Args:
        x: a Tensor.

    Returns:
        A Tensor of x's shape and dtype, in [0, 1].

    Example:
        >>> gf.sigmoid(gf.tensor([-1e4, 0.0, 1e4]))  # tensor([0., 0.5, 1.]), no warning
    """
    return Sigmoid()(x)


def relu(x) -> Tensor:
    """max(x, 0), elementwise. The gradient is 1 where x > 0 and 0 elsewhere (0 at x = 0).

    Args:
        x: a Tensor.

    Returns:
        A Tensor of x's shape and dtype.

    Example:
        >>> gf.relu(gf.tensor([-1.0, 2.0]))       # tensor([0., 2.])
    """
    return Relu()(x)


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x (the gradient at 0 is negative_slope).

    Args:
        x: a Tensor.
        negative_slope: the slope for x <= 0 (default 0.01, as in PyTorch).

    Returns:
        A Tensor of x's shape and dtype.

    Example:
        >>> gf.leaky_relu(gf.tensor([-2.0, 3.0]), 0.1)   # tensor([-0.2, 3.])
    """
    return LeakyRelu(float(negative_slope))(x)


def gelu(x) -> Tensor:
    """GELU with the tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    This is PyTorch's `gelu(x, approximate='tanh')`; the tanh form needs no erf, which NumPy
    lacks.

    Args:
        x: a Tensor.

    Returns:
        A Tensor of x's shape and dtype.

    Example:
        >>> gf.gelu(gf.tensor([0.0, 1.0]))        # tensor([0., 0.8412])
    """
    return Gelu()(x)


# --- two-input selections ------------------------------------------------------------------------
class Maximum(Function):
    """d max(a, b) goes to the larger input; on ties each input gets half."""

    def forward(self, a, b):
        return self_xp(a if not isinstance(a, _PY) else b).maximum(a, b)

    def backward(self, gy):
        return _select_grads(self.inputs, gy, larger=True)


class Minimum(Function):
    """d min(a, b) goes to the smaller input; on ties each input gets half."""

    def forward(self, a, b):
        return self_xp(a if not isinstance(a, _PY) else b).minimum(a, b)

    def backward(self, gy):
        return _select_grads(self.inputs, gy, larger=False)


_PY = (int, float, bool)


def _select_grads(inputs, gy, larger):
    a, b = inputs
    ad = a.data if isinstance(a, Tensor) else a
    bd = b.data if isinstance(b, Tensor) else b
    wins = (ad > bd) if larger else (ad < bd)
    share = wins * 1.0 + (ad == bd) * 0.5
    share = share.astype(gy.dtype)
    wa = const(share, gy.device)
    ga = unbroadcast(gy * wa, a.shape, a.dtype) if requires(a) else None
    gb = unbroadcast(gy * (1.0 - wa), b.shape, b.dtype) if requires(b) else None
    return ga, gb


class Clip(Function):
    """d clip(x, lo, hi) = [lo <= x <= hi] dx"""

    def __init__(self, lo, hi) -> None:
        self.lo, self.hi = lo, hi

    def forward(self, x):
        return self_xp(x).clip(x, self.lo, self.hi)

    def backward(self, gy):
        (x,) = self.inputs
        inside = x.device.xp.ones(x.shape, dtype=bool)
        if self.lo is not None:
            inside &= x.data >= self.lo
        if self.hi is not None:
            inside &= x.data <= self.hi
        return (gy * const(inside.astype(x.dtype), x.device),)


class Where(Function):
    """d where(c, a, b) = where(c, da, db)"""
    saves_inputs = False

    def __init__(self, cond) -> None:
        self.cond = cond

    def forward(self, a, b):
        xp = self_xp(self.cond)
        return xp.where(self.cond, a, b)

    def backward(self, gy):
        a, b = self.inputs
        c = const(self.cond, gy.device)
        ga = unbroadcast(where(c, gy, 0.0), a.shape, a.dtype) if requires(a) else None
        gb = unbroadcast(where(c, 0.0, gy), b.shape, b.dtype) if requires(b) else None
        return ga, gb


def maximum(a, b) -> Tensor:
    """The elementwise larger of a and b, with NumPy broadcasting.

    The gradient goes to the larger input; where a == b (a tie) each input gets half of it,
    so the two halves still add up to the whole.

    Args:
        a, b: Tensors or Python numbers (at least one a Tensor).

    Returns:
        A Tensor of the broadcast shape.

    Example:
        >>> gf.maximum(gf.tensor([1., 5.]), 3.0)   # tensor([3., 5.])
    """
    return Maximum()(a, b)


def minimum(a, b) -> Tensor:
    """The elementwise smaller of a and b, with NumPy broadcasting.

    The gradient goes to the smaller input; on ties each input gets half of it.

    Args:
        a, b: Tensors or Python numbers (at least one a Tensor).

    Returns:
        A Tensor of the broadcast shape.

    Example:
        >>> gf.minimum(gf.tensor([1., 5.]), 3.0)   # tensor([1., 3.])
    """
    return Minimum()(a, b)


def clip(x, min=None, max=None) -> Tensor:
    """x limited to [min, max], elementwise.

    The gradient passes (is 1) where min <= x <= max, bounds included, and is 0 outside.

    Args:
        x: a Tensor.
        min: the lower bound, a number or None (no lower bound).
        max: the upper bound, a number or None (no upper bound).

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
    return Clip(_bound(min, "min"), _bound(max, "max"))(x)


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
        cond: a bool Tensor (e.g. `x > 0`), or a bool array or nested lists; never
            differentiated.
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
    return Where(cond)(a, b)


# --- comparisons and logic (never differentiable) ------------------------------------------------
class _Compare(Function):
    differentiable = False
    saves_inputs = False

    def backward(self, gy):
        raise RuntimeError(f"{self.name} is not differentiable")


class Equal(_Compare):
    """a == b (bool; not differentiable)"""
    def forward(self, a, b): return a == b


class NotEqual(_Compare):
    """a != b (bool; not differentiable)"""
    def forward(self, a, b): return a != b


class Less(_Compare):
    """a < b (bool; not differentiable)"""
    def forward(self, a, b): return a < b


class LessEqual(_Compare):
    """a <= b (bool; not differentiable)"""
    def forward(self, a, b): return a <= b


class Greater(_Compare):
    """a > b (bool; not differentiable)"""
    def forward(self, a, b): return a > b


class GreaterEqual(_Compare):
    """a >= b (bool; not differentiable)"""
    def forward(self, a, b): return a >= b


class LogicalAnd(_Compare):
    """a AND b (bool; not differentiable)"""
    def forward(self, a, b): return self_xp(a).logical_and(a, b)


class LogicalOr(_Compare):
    """a OR b (bool; not differentiable)"""
    def forward(self, a, b): return self_xp(a).logical_or(a, b)


class LogicalNot(_Compare):
    """NOT a (bool; not differentiable)"""
    def forward(self, a): return self_xp(a).logical_not(a)


class Sign(_Compare):
    """sign(x) in x's dtype (not differentiable; `sign` detaches its input)"""
    def forward(self, a): return self_xp(a).sign(a)


def logical_and(a, b) -> Tensor:
    """Elementwise a AND b (also `a & b`): a bool Tensor, never differentiable.

    Args:
        a, b: bool Tensors (or values NumPy treats as truth values), broadcasting.

    Returns:
        A bool Tensor of the broadcast shape.

    Example:
        >>> x = gf.tensor([1., 2., 3.])
        >>> (x > 1) & (x < 3)                     # tensor([False, True, False])
    """
    return LogicalAnd()(a, b)


def logical_or(a, b) -> Tensor:
    """Elementwise a OR b (also `a | b`): a bool Tensor, never differentiable.

    Args:
        a, b: bool Tensors, broadcasting.

    Returns:
        A bool Tensor of the broadcast shape.

    Example:
        >>> x = gf.tensor([1., 2., 3.])
        >>> (x < 2) | (x > 2)                     # tensor([True, False, True])
    """
    return LogicalOr()(a, b)


def logical_not(a) -> Tensor:
    """Elementwise NOT a (also `~a`): a bool Tensor, never differentiable.

    Args:
        a: a bool Tensor.

    Returns:
        A bool Tensor of a's shape.

    Example:
        >>> ~(gf.tensor([1., -1.]) > 0)           # tensor([False, True])
    """
    return LogicalNot()(a)


def sign(x) -> Tensor:
    """-1, 0 or 1 by the sign of x, in x's dtype.

    Not differentiable: the result is never part of a graph (requires_grad is False), so a
    gradient that would be zero almost everywhere is not pretended.

    Args:
        x: a Tensor.

    Returns:
        A Tensor of x's shape and dtype, outside the graph.

    Example:
        >>> gf.sign(gf.tensor([-2.0, 0.0, 3.0]))     # tensor([-1., 0., 1.])
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"sign expects a Tensor, got {type(x).__name__}")
    return Sign()(x.detach())


# --- dtype and device moves ----------------------------------------------------------------------
class AsType(Function):
    """d astype(x) = astype(dx, x.dtype): the gradient goes back in the input's dtype"""
    saves_inputs = False

    def __init__(self, dtype) -> None:
        self.dtype = dtype

    def forward(self, x):
        return x.astype(self.dtype)

    def backward(self, gy):
        return (astype(gy, self.inputs[0].dtype),)


def astype(x, dtype) -> Tensor:
    """x converted to `dtype` (a copy; x itself when it already has that dtype).

    Differentiable between floating-point dtypes: the gradient comes back in x's dtype.
    Converting to an integer or bool dtype gives a tensor outside the graph.

    Args:
        x: a Tensor.
        dtype: the new dtype (gf.float32, gf.float64, gf.int64, 'float32', ...).

    Returns:
        A Tensor of x's shape with the new dtype.

    Example:
        >>> gf.astype(gf.tensor([1.7, -1.7]), gf.int64)   # tensor([1, -1])
    """
    dtype = B.dtype(dtype)
    if x.dtype == dtype:
        return x
    return AsType(dtype)(x)


class ToDevice(Function):
    """d to(x, device) = to(dx, x.device): gradients travel back to where x lives"""
    saves_inputs = False

    def __init__(self, device) -> None:
        self.device = device

    def __call__(self, x):
        # The one op whose output lives on another device than its input.
        dev = self.device
        arr = dev.backend.asarray(x.device.backend.to_host(x.data), index=dev.index)
        if x.requires_grad and _grad_mode.enabled:
            import weakref
            out = Tensor._make(arr, dev, True, self)
            self.inputs = (x,)
            self._output = weakref.ref(out)
            return out
        return Tensor._make(arr, dev, False, None)

    def backward(self, gy):
        return (ToDevice(self.inputs[0].device)(gy),)


from ..autograd import _Mode as _grad_mode  # noqa: E402
