"""Comparisons and logic: bool results that are never differentiated, and sign and isfinite.

Their outputs are never part of a graph (an integer or bool result is never recorded), so they
have no gradient rule; gradient rules use them for masks (`x > 0`, `sign(x)`).
"""
from __future__ import annotations

from .. import backend as B
from ..autograd import Function
from ..tensor import Tensor
from ._util import doc

xp_of = B.xp_of


class _NotDifferentiable(Function):
    differentiable = False
    saves_inputs = False

    def backward(self, gy, y, *xs):
        raise RuntimeError(f"{self.name} is not differentiable")


class Equal(_NotDifferentiable):
    """a == b (bool; not differentiable)"""
    def forward(self, a, b): return a == b


class NotEqual(_NotDifferentiable):
    """a != b (bool; not differentiable)"""
    def forward(self, a, b): return a != b


class Less(_NotDifferentiable):
    """a < b (bool; not differentiable)"""
    def forward(self, a, b): return a < b


class LessEqual(_NotDifferentiable):
    """a <= b (bool; not differentiable)"""
    def forward(self, a, b): return a <= b


class Greater(_NotDifferentiable):
    """a > b (bool; not differentiable)"""
    def forward(self, a, b): return a > b


class GreaterEqual(_NotDifferentiable):
    """a >= b (bool; not differentiable)"""
    def forward(self, a, b): return a >= b


class LogicalAnd(_NotDifferentiable):
    """a AND b (bool; not differentiable)"""
    def forward(self, a, b): return xp_of(a).logical_and(a, b)


class LogicalOr(_NotDifferentiable):
    """a OR b (bool; not differentiable)"""
    def forward(self, a, b): return xp_of(a).logical_or(a, b)


class LogicalNot(_NotDifferentiable):
    """NOT a (bool; not differentiable)"""
    def forward(self, a): return xp_of(a).logical_not(a)


class Sign(_NotDifferentiable):
    """sign(x) in x's dtype (not differentiable; `sign` detaches its input)"""
    def forward(self, a): return xp_of(a).sign(a)


class IsFinite(_NotDifferentiable):
    """isfinite(x) (bool; not differentiable)"""
    def forward(self, a): return xp_of(a).isfinite(a)


_BOOL = """{summary}: a bool Tensor, never differentiable.

    Args:
        {args}

    Returns:
        A bool Tensor of {shape}.

    Example:
        >>> {example}
    """


@doc(_BOOL, summary="Elementwise a AND b (also `a & b`)", shape="the broadcast shape",
     args="a, b: bool Tensors (or values NumPy treats as truth values), broadcasting.",
     example="x = gf.tensor([1., 2., 3.])\n>>> (x > 1) & (x < 3)   # tensor([False, True, False])")
def logical_and(a, b) -> Tensor:
    return LogicalAnd()(a, b)


@doc(_BOOL, summary="Elementwise a OR b (also `a | b`)", shape="the broadcast shape",
     args="a, b: bool Tensors, broadcasting.",
     example="x = gf.tensor([1., 2., 3.])\n>>> (x < 2) | (x > 2)   # tensor([True, False, True])")
def logical_or(a, b) -> Tensor:
    return LogicalOr()(a, b)


@doc(_BOOL, summary="Elementwise NOT a (also `~a`)", args="a: a bool Tensor.", shape="a's shape",
     example="~(gf.tensor([1., -1.]) > 0)           # tensor([False, True])")
def logical_not(a) -> Tensor:
    return LogicalNot()(a)


def sign(x) -> Tensor:
    """-1, 0 or 1 by the sign of x, in x's dtype; not differentiable.

    Args:
        x: a Tensor.

    Returns:
        A Tensor of x's shape and dtype, never part of a graph (requires_grad is False), so a
        gradient that would be zero almost everywhere is not pretended.

    Raises:
        TypeError: x is not a Tensor.

    Example:
        >>> gf.sign(gf.tensor([-2.0, 0.0, 3.0]))     # tensor([-1., 0., 1.])
    """
    if isinstance(x, Tensor):
        return Sign()(x.detach())
    if hasattr(x, "dtype"):  # a gradient rule on raw arrays
        return Sign()(x)
    raise TypeError(f"sign expects a Tensor, got {type(x).__name__}")


@doc(_BOOL, summary="True where x is neither inf nor nan", args="x: a Tensor.", shape="x's shape",
     example='gf.isfinite(gf.tensor([1.0, float("inf")]))   # tensor([True, False])')
def isfinite(x) -> Tensor:
    return IsFinite()(x)
