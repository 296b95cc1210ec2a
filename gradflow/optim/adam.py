"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay."""
from __future__ import annotations

import math

from .optimizer import Optimizer, check_bool, check_fused, check_number

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), PyTorch's formulation.

    For each parameter p with gradient g, at step t = 1, 2, ...:

        g    = -g                                         (maximize only)
        g    = g + weight_decay * p                       (L2)
        m    = beta1 * m + (1 - beta1) * g                (first moment, "exp_avg")
        v    = beta2 * v + (1 - beta2) * g^2              (second moment, "exp_avg_sq")
        vmax = max(vmax, v)  and use vmax for v           (amsgrad only, "max_exp_avg_sq")
        p    = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    These lines are the reference: `_update` computes them as written, with the array module
    `xp`, in place. By default a fused kernel does the same step in one pass per parameter
    (Numba, or in-place NumPy passes through a reused scratch buffer, on the CPU; one
    ElementwiseKernel on CUDA), agreeing with the reference to float rounding; `fused=False`
    runs the reference instead.

    Args:
        params: parameters or parameter groups (see Optimizer).
        lr: learning rate (default 1e-3).
        betas: (beta1, beta2), each in [0, 1) (default (0.9, 0.999)).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty added to the gradient (default 0; see AdamW for decoupled).
        amsgrad: use the running maximum of v (Reddi et al., 2018).
        maximize: ascend instead of descend.
        fused: None (default): the fused kernel of the parameter's backend (every built-in
            backend has one); False: the reference `_update`; True: the fused kernel, an error
            where the backend has none.

    Example:
        >>> opt = gf.optim.Adam(model.parameters(), lr=1e-3)
        >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    _array_state = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _fused_kernel = "adam_update"
    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False, fused: bool | None = None) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, fused=fused)
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
        check_fused(name, group)

    def _state(self, p, state: dict, group: dict):
        """Count the step and return the moment arrays (m, v, vmax or None), made at first use."""
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = self._zeros_like(p)
            state["exp_avg_sq"] = self._zeros_like(p)
        if group["amsgrad"] and "max_exp_avg_sq" not in state:  # also when switched on mid-run
            state["max_exp_avg_sq"] = self._zeros_like(p)
        state["step"] += 1
        vmax = state["max_exp_avg_sq"].data if group["amsgrad"] else None
        return state["exp_avg"].data, state["exp_avg_sq"].data, vmax

    def _update(self, p, grad, state, group) -> None:
        # The reference: the docstring's equations, on p's arrays, in place.
        m, v, vmax = self._state(p, state, group)
        xp, x, t = p.device.xp, p.data, state["step"]
        lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
        beta1, beta2 = group["betas"]
        g = -grad if group["maximize"] else grad
        if self._decoupled:
            x *= 1 - lr * weight_decay
        elif weight_decay:
            g = g + weight_decay * x
        m[...] = beta1 * m + (1 - beta1) * g
        v[...] = beta2 * v + (1 - beta2) * g ** 2
        if vmax is not None:
            vmax[...] = xp.maximum(vmax, v)
            v = vmax
        x -= lr / (1 - beta1 ** t) * m / (xp.sqrt(v) / math.sqrt(1 - beta2 ** t) + eps)

    def _fused_update(self, p, grad, state, group) -> None:
        m, v, vmax = self._state(p, state, group)
        beta1, beta2 = group["betas"]
        p.device.backend.adam_update(
            p.data, grad, m, v, vmax, step=state["step"], lr=group["lr"], beta1=beta1,
            beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
            decoupled=self._decoupled, maximize=group["maximize"])


class AdamW(Adam):
    r"""AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, PyTorch's form.

    At each step, before the Adam update (which then sees the plain gradient, negated when
    maximize):

        p = p * (1 - lr * weight_decay)

    followed by Adam's equations without the L2 term (see Adam). As for Adam, these lines are
    the reference (`_update`) and the default fused kernel is the acceleration; `fused=False`
    runs the reference.

    Args:
        params, lr, betas, eps, amsgrad, maximize, fused: as for Adam.
        weight_decay: decoupled decay coefficient (default 1e-2, as in PyTorch).

    Example:
        >>> opt = gf.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    """

    _decoupled = True

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False, fused: bool | None = None) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize, fused=fused)
