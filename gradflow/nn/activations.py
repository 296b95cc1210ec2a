"""Activation modules: thin Module wrappers around the elementwise and softmax ops."""
from __future__ import annotations

from ..ops.elementwise import gelu, leaky_relu, relu, sigmoid, tanh
from ..ops.reduce import log_softmax, softmax
from ..tensor import Tensor
from .module import Module

__all__ = ["ReLU", "Tanh", "Sigmoid", "GELU", "LeakyReLU", "Softmax", "LogSoftmax", "Identity"]


class ReLU(Module):
    """max(x, 0), elementwise.

    Args:
        inplace: accepted for PyTorch compatibility and ignored: gradflow always computes out
            of place, which is never wrong and here no slower.

    Example:
        >>> gf.nn.ReLU()(gf.tensor([-1.0, 2.0]))      # [0., 2.]
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return relu(x)


class Tanh(Module):
    """tanh(x), elementwise."""

    def forward(self, x: Tensor) -> Tensor:
        return tanh(x)


class Sigmoid(Module):
    """1 / (1 + exp(-x)), elementwise, without overflow for large |x|."""

    def forward(self, x: Tensor) -> Tensor:
        return sigmoid(x)


class GELU(Module):
    """GELU in its tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    Args:
        approximate: only 'tanh' (PyTorch's GELU(approximate='tanh')); the exact erf form is not
            offered because NumPy has no erf. The two differ by less than 1e-3.
    """

    def __init__(self, approximate: str = "tanh") -> None:
        super().__init__()
        if approximate != "tanh":
            raise ValueError(f"GELU: approximate={approximate!r} is not supported; gradflow "
                             "computes GELU's tanh form (approximate='tanh'), as NumPy has no erf")
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        return gelu(x)

    def extra_repr(self) -> str:
        return f"approximate='{self.approximate}'"


class LeakyReLU(Module):
    """x where x > 0, else negative_slope * x.

    Args:
        negative_slope: the slope left of 0 (default 0.01).
        inplace: accepted for PyTorch compatibility and ignored.
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = float(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Softmax(Module):
    """softmax along `dim` (default -1)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log_softmax along `dim` (default -1), stable for large logits."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return log_softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Identity(Module):
    """Returns its input unchanged (a placeholder layer)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, x: Tensor) -> Tensor:
        return x
