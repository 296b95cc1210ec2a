"""SGD: stochastic gradient descent with momentum, Nesterov momentum and weight decay."""
from __future__ import annotations

from .optimizer import Optimizer, check_bool, check_fused, check_number, required

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, PyTorch's formulation (momentum buffer without lr inside).

    For each parameter p with gradient g, at step t:

        g   = -g                                         (maximize only)
        d   = g + weight_decay * p
        buf = d                                          at the first step (t = 1)
        buf = momentum * buf + (1 - dampening) * d       afterwards
        d   = d + momentum * buf    if nesterov,  else d = buf        (when momentum > 0)
        p   = p - lr * d

    This is PyTorch's convention: the learning rate multiplies the buffer, it is not folded
    into it (Sutskever et al. fold it in), so changing lr mid-run takes effect at once.

    These lines are the reference: `_update` computes them as written, with the array module
    `xp`, in place. By default a fused kernel does the same step (in-place NumPy passes through
    a reused scratch buffer on the CPU, one ElementwiseKernel on CUDA), agreeing with the
    reference to float rounding; `fused=False` runs the reference instead.

    Args:
        params: parameters or parameter groups (see Optimizer).
        lr: learning rate (required, > 0 meaningful; 0 allowed).
        momentum: momentum factor in [0, 1) (default 0).
        dampening: dampening of the momentum term, in [0, 1] (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        nesterov: Nesterov momentum (needs momentum > 0 and dampening = 0).
        maximize: ascend instead of descend.
        fused: None (default): the fused kernel of the parameter's backend (every built-in
            backend has one); False: the reference `_update`; True: the fused kernel, an error
            where the backend has none.

    Example:
        >>> opt = gf.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    _array_state = ("momentum_buffer",)
    _fused_kernel = "sgd_update"

    def __init__(self, params, lr: float = required, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 *, maximize: bool = False, fused: bool | None = None) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        fused=fused)
        super().__init__(params, defaults)

    def _validate(self, group: dict) -> None:
        check_number("SGD", "learning rate (lr)", group["lr"])
        check_number("SGD", "momentum", group["momentum"], 0.0, 1.0)
        check_number("SGD", "dampening", group["dampening"], 0.0, 1.0, hi_open=False)
        check_number("SGD", "weight_decay", group["weight_decay"])
        check_bool("SGD", "nesterov", group["nesterov"])
        check_bool("SGD", "maximize", group["maximize"])
        check_fused("SGD", group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def _state(self, p, state: dict, group: dict):
        """The momentum buffer (None without momentum) and whether it was just made (t = 1)."""
        if not group["momentum"]:
            return None, False
        first = "momentum_buffer" not in state
        if first:
            state["momentum_buffer"] = self._zeros_like(p)
        return state["momentum_buffer"].data, first

    def _update(self, p, grad, state, group) -> None:
        # The reference: the docstring's equations, on p's arrays, in place.
        buf, first = self._state(p, state, group)
        x = p.data
        lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
        d = -grad if group["maximize"] else grad
        if weight_decay:
            d = d + weight_decay * x
        if buf is not None:
            if first:
                buf[...] = d
            else:
                buf[...] = momentum * buf + (1 - group["dampening"]) * d
            d = d + momentum * buf if group["nesterov"] else buf
        x -= lr * d

    def _fused_update(self, p, grad, state, group) -> None:
        buf, first = self._state(p, state, group)
        p.device.backend.sgd_update(
            p.data, grad, buf, first=first, lr=group["lr"], momentum=group["momentum"],
            dampening=group["dampening"], nesterov=group["nesterov"],
            weight_decay=group["weight_decay"], maximize=group["maximize"])
