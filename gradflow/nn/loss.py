"""Loss modules: CrossEntropyLoss, NLLLoss, MSELoss, BCEWithLogitsLoss (wrapping functional)."""
from __future__ import annotations

from ..ops.nn import _check_reduction
from ..tensor import Tensor
from . import functional as F
from .module import Module

__all__ = ["CrossEntropyLoss", "NLLLoss", "MSELoss", "BCEWithLogitsLoss"]


class _Loss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction, type(self).__name__)

    def extra_repr(self) -> str:
        return f"reduction='{self.reduction}'"


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits (N, C) against int labels (N,); see `functional.cross_entropy`.

    Args:
        reduction: 'mean' (default), 'sum' or 'none'.
        label_smoothing: eps in [0, 1]: targets become (1 - eps) one_hot + eps / C.

    Example:
        >>> loss_fn = gf.nn.CrossEntropyLoss()
        >>> loss = loss_fn(gf.randn(4, 10, requires_grad=True), gf.tensor([1, 0, 9, 3]))
    """

    def __init__(self, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(reduction)
        if not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got "
                             f"{label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, input: Tensor, target) -> Tensor:
        return F.cross_entropy(input, target, self.reduction, self.label_smoothing)

    def extra_repr(self) -> str:
        return super().extra_repr() + (f", label_smoothing={self.label_smoothing}"
                                       if self.label_smoothing else "")


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (N, C) at int labels (N,).

    Example:
        >>> logp = gf.log_softmax(gf.randn(4, 3), axis=1)
        >>> loss = gf.nn.NLLLoss()(logp, gf.tensor([0, 2, 1, 1]))
    """

    def forward(self, input: Tensor, target) -> Tensor:
        return F.nll_loss(input, target, self.reduction)


class MSELoss(_Loss):
    """Mean squared error between same-shaped input and target.

    Example:
        >>> loss = gf.nn.MSELoss()(gf.zeros(3), gf.ones(3))     # 1.0
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of logits against targets in [0, 1], fused and stable.

    Example:
        >>> loss = gf.nn.BCEWithLogitsLoss()(gf.randn(8), gf.ones(8))
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(input, target, self.reduction)
