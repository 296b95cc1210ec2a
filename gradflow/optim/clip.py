"""Gradient clipping: clip_grad_norm_ (by the global norm) and clip_grad_value_."""
from __future__ import annotations

import math

from ..autograd import no_grad
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters, name):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    params = list(parameters)
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{name}: parameter {i} is a {type(p).__name__}, not a Tensor")
    return [p for p in params if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients in place so that their global norm is at most `max_norm`.

    The norm is taken over all gradients together, as if concatenated into one vector:
    total = (sum_i ||g_i||_p^p)^(1/p) (max |g| for p = inf). When total > max_norm every
    gradient is multiplied by max_norm / (total + 1e-6), as in PyTorch; otherwise nothing
    changes.

    Args:
        parameters: a Tensor or an iterable of Tensors (those without .grad are skipped).
        max_norm: the largest allowed norm (> 0).
        norm_type: p of the p-norm (default 2; float('inf') for the max norm).
        error_if_nonfinite: raise when the total norm is nan or inf (else the gradients are
            scaled by nan, like PyTorch's default). On a GPU this check reads the norm back,
            which waits for the GPU; without it, clipping never does.

    Returns:
        The total norm of the gradients before clipping, a 0-d Tensor.

    Example:
        >>> loss.backward()
        >>> total = gf.optim.clip_grad_norm_(model.parameters(), max_norm=1.0)
        >>> opt.step()
    """
    max_norm = float(max_norm)
    norm_type = float(norm_type)
    if not max_norm > 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be > 0, got {max_norm}")
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 (or inf), got {norm_type}")
    params = _grads(parameters, "clip_grad_norm_")
    if not params:
        from ..creation import tensor
        return tensor(0.0)
    dev = params[0].device
    for p in params:
        if p.grad.device is not dev:
            raise ValueError(f"clip_grad_norm_: gradients on {dev} and {p.grad.device}; keep "
                             "the model on one device")
    grads = [p.grad.data for p in params]
    with no_grad(), dev.backend.use(dev.index):
        total = _total_norm(dev.xp, grads, norm_type)
        # Nothing here is read back on the host (that would wait for a GPU): the coefficient
        # stays an array, and gradients under the limit are multiplied by exactly 1.
        if error_if_nonfinite and not bool(dev.xp.isfinite(total)):
            raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the "
                               f"gradients is {float(total)}; pass error_if_nonfinite=False to "
                               "scale anyway")
        coef = dev.xp.minimum(max_norm / (total + 1e-6), 1.0)
        for p, g in zip(params, grads):
            g *= coef.astype(g.dtype)
            p.grad._version += 1
        total = dev.backend.asarray(total, dtype=grads[0].dtype, index=dev.index)
    return Tensor._make(total, dev, False, None)


def _total_norm(xp, grads, norm_type):
    # The norm of all gradients as one vector, a 0-d float64 array on their device.
    if math.isinf(norm_type):
        parts = [xp.abs(g).max() for g in grads if g.size] or [xp.zeros(())]
        return xp.stack(parts).astype(xp.float64).max()
    if norm_type == 2.0:
        parts = [xp.dot(g.reshape(-1), g.reshape(-1)) for g in grads]  # one BLAS pass each
    else:
        parts = [(xp.abs(g) ** norm_type).sum() for g in grads]
    return xp.stack(parts).astype(xp.float64).sum() ** (1.0 / norm_type)


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value], in place.

    Example:
        >>> gf.optim.clip_grad_value_(model.parameters(), 0.5)
    """
    clip_value = float(clip_value)
    if not clip_value > 0:
        raise ValueError(f"clip_grad_value_: clip_value must be > 0, got {clip_value}")
    with no_grad():
        for p in _grads(parameters, "clip_grad_value_"):
            dev = p.grad.device
            with dev.backend.use(dev.index):
                dev.xp.clip(p.grad.data, -clip_value, clip_value, out=p.grad.data)
            p.grad._version += 1
