"""gradflow.nn.functional: the stateless forms of layers and losses (PyTorch's F).

Fused ops come from `gradflow.ops.nn`; the rest are compositions of differentiable primitives,
so their gradients (of any order) come from the primitives' rules.
"""
from __future__ import annotations

from ..autograd import no_grad
from ..ops.conv import avg_pool2d, conv2d, max_pool2d, pad
from ..ops.elementwise import gelu, leaky_relu, relu, sigmoid, sqrt, tanh
from ..ops.indexing import GetItem
from ..ops.nn import (
    _check_reduction, _labels, binary_cross_entropy_with_logits, cross_entropy, dropout, linear,
    nan_rows, reduce_loss,
)
from ..ops._util import same_dtype
from ..ops.reduce import log_softmax as _log_softmax, softmax as _softmax
from ..tensor import Tensor

__all__ = [
    "linear", "relu", "leaky_relu", "gelu", "tanh", "sigmoid", "softmax", "log_softmax",
    "dropout", "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits",
    "layer_norm", "batch_norm", "conv2d", "max_pool2d", "avg_pool2d", "pad",
]


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along `dim` (PyTorch's argument name; gf.softmax calls it axis)."""
    return _softmax(x, dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """x - logsumexp(x) along `dim`, stable for large logits (gf.log_softmax calls it axis)."""
    return _log_softmax(x, dim)


def nll_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood: -input[i, target[i]], for log-probabilities (N, C).

    `nll_loss(log_softmax(x), t)` equals `cross_entropy(x, t)`; prefer the latter (one fused
    op). Labels are validated like cross_entropy's.

    Args:
        input: log-probabilities of shape (N, C).
        target: int labels of shape (N,) in [0, C).
        reduction: 'mean' (default), 'sum' or 'none'.

    Example:
        >>> logp = gf.log_softmax(gf.randn(4, 3, requires_grad=True), axis=1)
        >>> loss = gf.nn.functional.nll_loss(logp, gf.tensor([0, 2, 1, 1]))
    """
    _check_reduction(reduction, "nll_loss")
    if not isinstance(input, Tensor):
        raise TypeError(f"nll_loss: input must be a Tensor, got {type(input).__name__}")
    t, bad = _labels(input, target, "nll_loss")
    dev = input.device
    with dev.backend.use(dev.index):
        rows = dev.xp.arange(input.shape[0])
        poison = Tensor._make(nan_rows(dev.xp, bad, input.dtype), dev)
    # GetItem itself, not getitem: the labels are validated above, and getitem's bounds check
    # would read them back from a GPU.
    picked = GetItem(key=(rows, t), advanced=True)(input)
    return reduce_loss(poison - picked, reduction)


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Mean squared error: mean((input - target)^2) (or sum, or elementwise).

    Args:
        input, target: Tensors of the same shape (no silent broadcasting).
        reduction: 'mean' (default), 'sum' or 'none'.

    Example:
        >>> gf.nn.functional.mse_loss(gf.tensor([1.0, 2.0]), gf.tensor([1.0, 4.0]))  # 2.0
    """
    _check_reduction(reduction, "mse_loss")
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError(f"mse_loss: input and target must be Tensors, got "
                        f"{type(input).__name__} and {type(target).__name__}")
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: target of shape {target.shape} differs from input of shape "
                         f"{input.shape}; broadcasting here is almost always a bug")
    same_dtype("mse_loss", ("input", "target"), input, target)
    d = input - target
    return reduce_loss(d * d, reduction)


def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalise over the last len(normalized_shape) dims: (x - mean) / sqrt(var + eps) * w + b.

    The variance is the biased one (divided by n), as in PyTorch.

    Example:
        >>> y = gf.nn.functional.layer_norm(gf.randn(8, 16), (16,))
    """
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if k == 0 or x.shape[x.ndim - k:] != shape:
        raise ValueError(f"layer_norm: normalized_shape {shape} does not match the last dims of "
                         f"input shape {x.shape}")
    same_dtype("layer_norm", ("input", "weight", "bias"), x, weight, bias)
    axes = tuple(range(x.ndim - k, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=axes, keepdims=True)
    y = xc / sqrt(var + eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def batch_norm(x: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalisation per channel (dim 1) over all other dims, for input (N, C, *).

    (N, C), (N, C, L) and (N, C, H, W) are BatchNorm1d's and BatchNorm2d's inputs. In training
    (or without running statistics) the batch's mean and biased variance normalise; the running
    statistics, when given, are updated in place with the unbiased variance:
    running = (1 - momentum) running + momentum batch (the modules pass momentum = 1/k at the
    k-th batch for their cumulative-average mode, as a 0-d array on x's device, so that the
    batch count is never read back from a GPU). In eval they normalise instead.

    Args:
        x: input of shape (N, C, *).
        running_mean, running_var: (C,) buffers, or None to always use batch statistics.
        weight, bias: (C,) affine parameters, or None.
        training: normalise with the batch statistics and update the running ones.
        momentum: weight of the new batch in the running statistics.
        eps: added to the variance.

    Returns:
        A Tensor of x's shape.

    Example:
        >>> y = gf.nn.functional.batch_norm(gf.randn(32, 4), None, None, training=True)
        >>> y = gf.nn.functional.batch_norm(gf.randn(8, 3, 5, 5), None, None, training=True)
    """
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected input of shape (N, C, *), got {x.shape}")
    same_dtype("batch_norm", ("input", "weight", "bias", "running_mean", "running_var"), x,
               weight, bias, running_mean, running_var)
    c = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    bshape = (1, c) + (1,) * (x.ndim - 2)
    if training or running_mean is None or running_var is None:
        n = x.size // max(c, 1)
        if n <= 1:
            raise ValueError(f"batch_norm: training needs more than one value per channel, got "
                             f"input of shape {x.shape}")
        mu = x.mean(axis=axes, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(axis=axes, keepdims=True)
        if training and running_mean is not None and running_var is not None:
            dev = x.device
            with no_grad(), dev.backend.use(dev.index):
                # A 0-d array momentum stays an array: reading it would wait for the GPU.
                m = momentum if hasattr(momentum, "ndim") else float(momentum)
                unbiased = var.data.reshape(c) * (n / (n - 1))
                rm, rv = running_mean.data, running_var.data
                rm *= 1.0 - m
                rm += m * mu.data.reshape(c).astype(rm.dtype)
                rv *= 1.0 - m
                rv += m * unbiased.astype(rv.dtype)
                running_mean._version += 1
                running_var._version += 1
        y = xc / sqrt(var + eps)
    else:
        rm = Tensor._make(running_mean.data.reshape(bshape), x.device, False, None)
        rv = Tensor._make(running_var.data.reshape(bshape), x.device, False, None)
        y = (x - rm) / sqrt(rv + eps)
    if weight is not None:
        y = y * weight.reshape(bshape)
    if bias is not None:
        y = y + bias.reshape(bshape)
    return y
