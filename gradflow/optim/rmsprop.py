"""RMSprop: gradients divided by a running RMS, optionally centered and with momentum."""
from __future__ import annotations

from .optimizer import Optimizer, check_bool, check_number

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e), PyTorch's formulation.

    For each parameter p with gradient g:

        g   = g + weight_decay * p                        (g negated first when maximize)
        s   = alpha * s + (1 - alpha) * g^2               ("square_avg")
        a   = alpha * a + (1 - alpha) * g                 (centered only, "grad_avg")
        den = sqrt(s - a^2) + eps  if centered,  else sqrt(s) + eps
        buf = momentum * buf + g / den;  p = p - lr * buf (momentum > 0, "momentum_buffer")
        p   = p - lr * g / den                            (momentum = 0)

    Args:
        params: parameters or parameter groups (see Optimizer).
        lr: learning rate (default 1e-2).
        alpha: smoothing constant in [0, 1] (default 0.99).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: normalise by the estimated variance instead of the raw second moment.
        maximize: ascend instead of descend.

    Example:
        >>> opt = gf.optim.RMSprop(model.parameters(), lr=1e-3, momentum=0.9)
    """

    _array_state = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        check_number("RMSprop", "learning rate (lr)", group["lr"])
        check_number("RMSprop", "alpha", group["alpha"], 0.0, 1.0, hi_open=False)
        check_number("RMSprop", "epsilon (eps)", group["eps"])
        check_number("RMSprop", "weight_decay", group["weight_decay"])
        check_number("RMSprop", "momentum", group["momentum"])
        check_bool("RMSprop", "centered", group["centered"])
        check_bool("RMSprop", "maximize", group["maximize"])

    def _update(self, p, grad, state, group) -> None:
        if "step" not in state:
            state["step"] = 0
            state["square_avg"] = self._zeros_like(p)
        state["step"] += 1
        ga = buf = None
        if group["centered"]:
            if "grad_avg" not in state:
                state["grad_avg"] = self._zeros_like(p)
            ga = state["grad_avg"].data
        if group["momentum"] > 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = self._zeros_like(p)
            buf = state["momentum_buffer"].data
        p.device.backend.rmsprop_update(
            p.data, grad, state["square_avg"].data, ga, buf, lr=group["lr"],
            alpha=group["alpha"], eps=group["eps"], weight_decay=group["weight_decay"],
            momentum=group["momentum"], maximize=group["maximize"])
