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
from ._util import const, requires, unbroadcast


def _shape(x):
    return x.shape if isinstance(x, Tensor) else ()


# --- arithmetic ---------------------------------------------------------------------------------
class Add(Function):
    """d(a + b) = da + db"""
    saves_inputs = False

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        a, b = self.inputs
        return (unbroadcast(gy, a.shape) if requires(a) else None,
                unbroadcast(gy, b.shape) if requires(b) else None)


class Sub(Function):
    """d(a - b) = da - db"""
    saves_inputs = False

    def forward(self, a, b):
        return a - b

    def backward(self, gy):
        a, b = self.inputs
        return (unbroadcast(gy, a.shape) if requires(a) else None,
                unbroadcast(-gy, b.shape) if requires(b) else None)


class Mul(Function):
    """d(a * b) = b da + a db"""

    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        return (unbroadcast(gy * b, a.shape) if requires(a) else None,
                unbroadcast(gy * a, b.shape) if requires(b) else None)


class Div(Function):
    """d(a / b) = da / b - a db / b^2"""

    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if requires(a):
            ga = unbroadcast(gy / b, a.shape)
        if requires(b):
            gb = unbroadcast(-gy * a / (b * b), b.shape)
        return ga, gb


class Pow(Function):
    """d(a ** b) = b a^(b-1) da + a^b log(a) db"""

    def forward(self, a, b):
        return a ** b

    def backward(self, gy):
        a, b = self.inputs
        ga = gb = None
        if requires(a):
            ga = unbroadcast(gy * b * a ** (b - 1), a.shape)
        if requires(b):
            log_a = log(a) if isinstance(a, Tensor) else math.log(a)
            gb = unbroadcast(gy * (a ** b) * log_a, b.shape)
        return ga, gb


class Neg(Function):
    """d(-x) = -dx"""
    saves_inputs = False

    def forward(self, x):
        return -x

    def backward(self, gy):
        return (-gy,)


def add(a, b) -> Tensor:
    """a + b, elementwise with broadcasting. Example: `gf.add(x, 1.0)`."""
    return Add()(a, b)


def sub(a, b) -> Tensor:
    """a - b, elementwise with broadcasting."""
    return Sub()(a, b)


def mul(a, b) -> Tensor:
    """a * b, elementwise with broadcasting."""
    return Mul()(a, b)


def div(a, b) -> Tensor:
    """a / b, elementwise with broadcasting."""
    return Div()(a, b)


def pow(a, b) -> Tensor:
    """a ** b, elementwise with broadcasting; d/db needs a > 0."""
    return Pow()(a, b)


def neg(x) -> Tensor:
    """-x."""
    return Neg()(x)


# --- unary functions ------------------------------------------------------------------------------
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


class Log(Function):
    """d log(x) = dx / x"""

    def forward(self, x):
        return self_xp(x).log(x)

    def backward(self, gy):
        return (gy / self.inputs[0],)


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


class Sigmoid(Function):
    """d sigmoid(x) = y (1 - y) dx"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        # 0.5 tanh(x/2) + 0.5 equals 1/(1+exp(-x)) and never overflows for large |x|.
        xp = self_xp(x)
        return xp.tanh(x * 0.5) * 0.5 + 0.5

    def backward(self, gy):
        y = self.saved_output()
        return (gy * y * (1.0 - y),)


class Relu(Function):
    """d relu(x) = [x > 0] dx (0 at the kink x = 0)"""
    saves_inputs = False
    saves_output = True

    def forward(self, x):
        return self_xp(x).maximum(x, 0)

    def backward(self, gy):
        y = self.saved_output()
        return (gy * const((y.data > 0).astype(y.dtype), y.device),)


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
    return B.device_of(a).xp if not isinstance(a, _np_ndarray) else _np


_np = B.host_numpy()
_np_ndarray = _np.ndarray


def abs(x) -> Tensor:
    """|x|; the gradient at 0 is 0."""
    return Abs()(x)


def exp(x) -> Tensor:
    """e ** x.  Example: `gf.exp(gf.zeros(3))` is ones."""
    return Exp()(x)


def log(x) -> Tensor:
    """Natural logarithm."""
    return Log()(x)


def sqrt(x) -> Tensor:
    """Square root."""
    return Sqrt()(x)


def sin(x) -> Tensor:
    """Sine."""
    return Sin()(x)


def cos(x) -> Tensor:
    """Cosine."""
    return Cos()(x)


def tanh(x) -> Tensor:
    """Hyperbolic tangent."""
    return Tanh()(x)


def sigmoid(x) -> Tensor:
    """1 / (1 + exp(-x)), computed without overflow for large |x|."""
    return Sigmoid()(x)


def relu(x) -> Tensor:
    """max(x, 0); the gradient at 0 is 0."""
    return Relu()(x)


def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, else negative_slope * x."""
    return LeakyRelu(float(negative_slope))(x)


def gelu(x) -> Tensor:
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    The tanh form (PyTorch's approximate='tanh') needs no erf, which NumPy lacks.
    """
    return Gelu()(x)


# --- two-input selections --------------------------------------------------------------------------
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
    ga = unbroadcast(gy * wa, a.shape) if requires(a) else None
    gb = unbroadcast(gy * (1.0 - wa), b.shape) if requires(b) else None
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
        ga = unbroadcast(where(c, gy, 0.0), a.shape) if requires(a) else None
        gb = unbroadcast(where(c, 0.0, gy), b.shape) if requires(b) else None
        return ga, gb


def maximum(a, b) -> Tensor:
    """Elementwise larger of a and b (broadcasting); ties split the gradient evenly."""
    return Maximum()(a, b)


def minimum(a, b) -> Tensor:
    """Elementwise smaller of a and b (broadcasting); ties split the gradient evenly."""
    return Minimum()(a, b)


def clip(x, min=None, max=None) -> Tensor:
    """Limit x to [min, max] (either may be None); the gradient passes where min <= x <= max."""
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    return Clip(min, max)(x)


def where(cond, a, b) -> Tensor:
    """Elementwise `a` where `cond` is true, else `b` (broadcasting all three).

    Args:
        cond: a bool Tensor (e.g. `x > 0`) or bool array; never differentiated.
        a, b: Tensors or Python scalars.
    """
    if isinstance(cond, Tensor):
        if cond.dtype != B.bool_:
            raise TypeError(f"where: cond must be a bool tensor, got dtype {cond.dtype}")
        for t in (a, b):
            if isinstance(t, Tensor) and t.device is not cond.device:
                raise B.DeviceError(f"where: cond is on {cond.device} but an input is on "
                                    f"{t.device}")
        cond = cond.data
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        raise TypeError("where: at least one of a and b must be a Tensor")
    return Where(cond)(a, b)


# --- comparisons and logic (never differentiable) ----------------------------------------------------
class _Compare(Function):
    differentiable = False
    saves_inputs = False

    def backward(self, gy):
        raise RuntimeError(f"{self.name} is not differentiable")


class Equal(_Compare):
    def forward(self, a, b): return a == b


class NotEqual(_Compare):
    def forward(self, a, b): return a != b


class Less(_Compare):
    def forward(self, a, b): return a < b


class LessEqual(_Compare):
    def forward(self, a, b): return a <= b


class Greater(_Compare):
    def forward(self, a, b): return a > b


class GreaterEqual(_Compare):
    def forward(self, a, b): return a >= b


class LogicalAnd(_Compare):
    def forward(self, a, b): return self_xp(a).logical_and(a, b)


class LogicalOr(_Compare):
    def forward(self, a, b): return self_xp(a).logical_or(a, b)


class LogicalNot(_Compare):
    def forward(self, a): return self_xp(a).logical_not(a)


class Sign(_Compare):
    def forward(self, a): return self_xp(a).sign(a)


def logical_and(a, b) -> Tensor:
    """Elementwise a AND b (bool result)."""
    return LogicalAnd()(a, b)


def logical_or(a, b) -> Tensor:
    """Elementwise a OR b (bool result)."""
    return LogicalOr()(a, b)


def logical_not(a) -> Tensor:
    """Elementwise NOT a (bool result)."""
    return LogicalNot()(a)


def sign(x) -> Tensor:
    """-1, 0 or 1 by the sign of x (not differentiable)."""
    return Sign()(x)


# --- dtype and device moves ------------------------------------------------------------------------------
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
    """x converted to `dtype` (a copy); differentiable between floating-point dtypes."""
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
