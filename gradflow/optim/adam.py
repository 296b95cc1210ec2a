"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""
from __future__ import annotations

from .optimizer import Optimizer, check_bool, check_number

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), PyTorch's formulation, updated by one fused pass per parameter.

    For each parameter p with gradient g, at step t = 1, 2, ...:

        g    = g + weight_decay * p                       (L2; g negated first when maximize)
        m    = beta1 * m + (1 - beta1) * g                (first moment, "exp_avg")
        v    = beta2 * v + (1 - beta2) * g^2              (second moment, "exp_avg_sq")
        vmax = max(vmax, v)  and use vmax for v           (amsgrad only)
        p    = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    The update is fused: on the CPU a handful of in-place NumPy passes through one reused
    scratch buffer (no allocation per step), on CUDA one ElementwiseKernel per parameter.

    Args:
        params: parameters or parameter groups (see Optimizer).
        lr: learning rate (default 1e-3).
        betas: (beta1, beta2), each in [0, 1) (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0; see AdamW for decoupled).
        amsgrad: use the running maximum of v (Reddi et al., 2018).
        maximize: ascend instead of descend.

    Example:
        >>> opt = gf.optim.Adam(model.parameters(), lr=1e-3)
        >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    _array_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        name = type(self).__name__
        check_number(name, "learning rate (lr)", group["lr"])
        check_number(name, "epsilon (eps)", group["eps"])
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{name}: betas must be a pair (beta1, beta2), got {betas!r}")
        check_number(name, "beta parameter at index 0", betas[0], 0.0, 1.0)
        check_number(name, "beta parameter at index 1", betas[1], 0.0, 1.0)
        group["betas"] = (float(betas[0]), float(betas[1]))
        check_number(name, "weight_decay", group["weight_decay"])
        check_bool(name, "amsgrad", group["amsgrad"])
        check_bool(name, "maximize", group["maximize"])

    def _update(self, p, grad, state, group) -> None:
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = self._zeros_like(p)
            state["exp_avg_sq"] = self._zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = self._zeros_like(p)
        state["step"] += 1
        vmax = state.get("max_exp_avg_sq") if group["amsgrad"] else None
        if group["amsgrad"] and vmax is None:  # amsgrad switched on mid-run
            vmax = state["max_exp_avg_sq"] = self._zeros_like(p)
        beta1, beta2 = group["betas"]
        p.device.backend.adam_update(
            p.data, grad, state["exp_avg"].data, state["exp_avg_sq"].data,
            None if vmax is None else vmax.data, step=state["step"], lr=group["lr"],
            beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
            decoupled=self._decoupled, maximize=group["maximize"])


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, PyTorch's form.

    At each step, before the Adam update (which then sees the plain gradient):

        p = p * (1 - lr * weight_decay)

    followed by Adam's equations without the L2 term (see Adam).

    Args:
        params, lr, betas, eps, amsgrad, maximize: as for Adam.
        weight_decay: decoupled decay coefficient (default 1e-2, as in PyTorch).

    Example:
        >>> opt = gf.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    """

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)
