"""RMSprop: gradients divided by a running RMS, optionally centered and with momentum."""
from __future__ import annotations

from .optimizer import Optimizer, check_bool, check_fused, check_number

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop (Hinton's lecture 6e), PyTorch's formulation.

    For each parameter p with gradient g:

        g   = -g                                          (maximize only)
        g   = g + weight_decay * p
        s   = alpha * s + (1 - alpha) * g^2               ("square_avg")
        a   = alpha * a + (1 - alpha) * g                 (centered only, "grad_avg")
        den = sqrt(s - a^2) + eps  if centered,  else sqrt(s) + eps
        buf = momentum * buf + g / den;  p = p - lr * buf (momentum > 0, "momentum_buffer")
        p   = p - lr * g / den                            (momentum = 0)

    These lines are the reference: `_update` computes them as written, with the array module
    `xp`, in place. By default a fused kernel does the same step (in-place NumPy passes through
    a reused scratch buffer on the CPU, one ElementwiseKernel on CUDA), agreeing with the
    reference to float rounding; `fused=False` runs the reference instead.

    Args:
        params: parameters or parameter groups (see Optimizer).
        lr: learning rate (default 1e-2).
        alpha: smoothing constant in [0, 1] (default 0.99).
        eps: added to the denominator (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: normalise by the estimated variance instead of the raw second moment.
        maximize: ascend instead of descend.
        fused: None (default): the fused kernel of the parameter's backend (every built-in
            backend has one); False: the reference `_update`; True: the fused kernel, an error
            where the backend has none.

    Example:
        >>> opt = gf.optim.RMSprop(model.parameters(), lr=1e-3, momentum=0.9)
    """

    _array_state = ("square_avg", "grad_avg", "momentum_buffer")
    _fused_kernel = "rmsprop_update"

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False, fused: bool | None = None) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                        momentum=momentum, centered=centered, maximize=maximize, fused=fused)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        check_number("RMSprop", "learning rate (lr)", group["lr"])
        check_number("RMSprop", "alpha", group["alpha"], 0.0, 1.0, hi_open=False)
        check_number("RMSprop", "epsilon (eps)", group["eps"])
        check_number("RMSprop", "weight_decay", group["weight_decay"])
        check_number("RMSprop", "momentum", group["momentum"])
        check_bool("RMSprop", "centered", group["centered"])
        check_bool("RMSprop", "maximize", group["maximize"])
        check_fused("RMSprop", group)

    def _state(self, p, state: dict, group: dict):
        """Count the step and return (s, a or None, buf or None), each made at first use."""
        if "step" not in state:
            state["step"] = 0
            state["square_avg"] = self._zeros_like(p)
        state["step"] += 1
        a = buf = None
        if group["centered"]:
            if "grad_avg" not in state:
                state["grad_avg"] = self._zeros_like(p)
            a = state["grad_avg"].data
        if group["momentum"] > 0:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = self._zeros_like(p)
            buf = state["momentum_buffer"].data
        return state["square_avg"].data, a, buf

    def _update(self, p, grad, state, group) -> None:
        # The reference: the docstring's equations, on p's arrays, in place.
        s, a, buf = self._state(p, state, group)
        xp, x = p.device.xp, p.data
        lr, alpha, eps, weight_decay = (group["lr"], group["alpha"], group["eps"],
                                        group["weight_decay"])
        g = -grad if group["maximize"] else grad
        if weight_decay:
            g = g + weight_decay * x
        s[...] = alpha * s + (1 - alpha) * g ** 2
        if a is not None:
            a[...] = alpha * a + (1 - alpha) * g
            den = xp.sqrt(s - a ** 2) + eps
        else:
            den = xp.sqrt(s) + eps
        if buf is not None:
            buf[...] = group["momentum"] * buf + g / den
            x -= lr * buf
        else:
            x -= lr * g / den

    def _fused_update(self, p, grad, state, group) -> None:
        s, a, buf = self._state(p, state, group)
        p.device.backend.rmsprop_update(
            p.data, grad, s, a, buf, lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
            weight_decay=group["weight_decay"], momentum=group["momentum"],
            maximize=group["maximize"])
