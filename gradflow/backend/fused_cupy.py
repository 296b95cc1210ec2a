"""Fused optimizer updates on CUDA: one cupy.ElementwiseKernel launch per parameter.

Each kernel reads the gradient and the state once and writes the parameter and the state once,
in place: the whole step of one parameter is one pass over memory, with no temporaries. Same
signatures and equations as fused_numpy; the reference both are tested against is each
optimizer's own `_update` in gradflow.optim (plain `xp` code, run by `fused=False`).
Scalars are passed as kernel arguments typed like the parameter (T), so changing the learning
rate never recompiles; kernels are compiled once per configuration and dtype by CuPy.
"""
from __future__ import annotations

import functools
import math

import cupy

__all__ = ["adam_update", "sgd_update", "rmsprop_update"]


@functools.lru_cache(maxsize=None)
def _kernel(in_params: str, out_params: str, body: str, name: str):
    return cupy.ElementwiseKernel(in_params, out_params, body, name)


# Kernel variables have descriptive names: `i` and `_ind` are reserved by ElementwiseKernel.
_ADAM_IN = ("T grad, T gsign, T wd, T decay, T beta1, T one_minus_beta1, T beta2, "
            "T one_minus_beta2, T step_size, T eps_hat")
_ADAM_BODY = """
    T g = gsign * grad + wd * param;
    param = param * decay;
    exp_avg = beta1 * exp_avg + one_minus_beta1 * g;
    exp_avg_sq = beta2 * exp_avg_sq + one_minus_beta2 * g * g;
    {extra}
    param = param - step_size * exp_avg / (sqrt({denom}) + eps_hat);
"""


def adam_update(p, g, m, v, vmax, *, step: int, lr: float, beta1: float, beta2: float,
                eps: float, weight_decay: float, decoupled: bool, maximize: bool) -> None:
    """One Adam/AdamW step on CuPy arrays, in place, in one kernel (see fused_numpy)."""
    decay = 1.0 - lr * weight_decay if decoupled else 1.0
    wd = 0.0 if decoupled else weight_decay
    bc1 = 1.0 - beta1 ** step
    bc2_sqrt = math.sqrt(1.0 - beta2 ** step)
    args = (g, -1.0 if maximize else 1.0, wd, decay, beta1, 1.0 - beta1, beta2, 1.0 - beta2,
            lr * bc2_sqrt / bc1, eps * bc2_sqrt)
    with p.device:
        if vmax is None:
            k = _kernel(_ADAM_IN, "T param, T exp_avg, T exp_avg_sq",
                        _ADAM_BODY.format(extra="", denom="exp_avg_sq"), "gradflow_adam")
            k(*args, p, m, v)
        else:
            k = _kernel(_ADAM_IN, "T param, T exp_avg, T exp_avg_sq, T max_exp_avg_sq",
                        _ADAM_BODY.format(
                            extra="max_exp_avg_sq = max_exp_avg_sq > exp_avg_sq ? "
                                  "max_exp_avg_sq : exp_avg_sq;",
                            denom="max_exp_avg_sq"),
                        "gradflow_amsgrad")
            k(*args, p, m, v, vmax)


_SGD_PLAIN = """
    param = param - lr * (gsign * grad + wd * param);
"""
# The arithmetic branches of the `?:`s below are cast to T: CuPy's float16 has no arithmetic of
# its own (it converts to float), so on float16 one branch would be float16 and the other float,
# which C++ rejects as ambiguous (each converts to the other). On float32/64 the casts are no-ops.
_SGD_MOMENTUM = """
    T d = gsign * grad + wd * param;
    buf = first != 0 ? d : T(momentum * buf + one_minus_dampening * d);
    param = param - lr * (nesterov != 0 ? T(d + momentum * buf) : buf);
"""


def sgd_update(p, g, buf, *, first: bool, lr: float, momentum: float, dampening: float,
               nesterov: bool, weight_decay: float, maximize: bool) -> None:
    """One SGD step on CuPy arrays, in place, in one kernel (see fused_numpy)."""
    gsign = -1.0 if maximize else 1.0
    with p.device:
        if buf is None:
            k = _kernel("T grad, T gsign, T wd, T lr", "T param", _SGD_PLAIN, "gradflow_sgd")
            k(g, gsign, weight_decay, lr, p)
        else:
            k = _kernel("T grad, T gsign, T wd, T lr, T momentum, T one_minus_dampening, "
                        "T first, T nesterov", "T param, T buf", _SGD_MOMENTUM,
                        "gradflow_sgd_momentum")
            k(g, gsign, weight_decay, lr, momentum, 1.0 - dampening, 1.0 if first else 0.0,
              1.0 if nesterov else 0.0, p, buf)


_RMS_IN = "T grad, T gsign, T wd, T lr, T alpha, T one_minus_alpha, T eps, T momentum"
_RMS_HEAD = """
    T g = gsign * grad + wd * param;
    square_avg = alpha * square_avg + one_minus_alpha * g * g;
"""


def rmsprop_update(p, g, square_avg, grad_avg, buf, *, lr: float, alpha: float, eps: float,
                   weight_decay: float, momentum: float, maximize: bool) -> None:
    """One RMSprop step on CuPy arrays, in place, in one kernel (see fused_numpy)."""
    centered = grad_avg is not None
    has_buf = buf is not None
    body = _RMS_HEAD
    outs = ["T param", "T square_avg"]
    arrays = [p, square_avg]
    if centered:
        body += ("    grad_avg = alpha * grad_avg + one_minus_alpha * g;\n"
                 "    T denom = sqrt(square_avg - grad_avg * grad_avg) + eps;\n")
        outs.append("T grad_avg")
        arrays.append(grad_avg)
    else:
        body += "    T denom = sqrt(square_avg) + eps;\n"
    if has_buf:
        body += "    buf = momentum * buf + g / denom;\n    param = param - lr * buf;\n"
        outs.append("T buf")
        arrays.append(buf)
    else:
        body += "    param = param - lr * g / denom;\n"
    name = f"gradflow_rmsprop_{int(centered)}{int(has_buf)}"
    with p.device:
        k = _kernel(_RMS_IN, ", ".join(outs), body, name)
        k(g, -1.0 if maximize else 1.0, weight_decay, lr, alpha, 1.0 - alpha, eps, momentum,
          *arrays)
