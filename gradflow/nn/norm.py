"""Normalisation layers: LayerNorm, BatchNorm1d and BatchNorm2d (with running statistics)."""
from __future__ import annotations

from .. import backend as B
from ..ops._util import doc
from ..tensor import Tensor
from . import functional as F
from . import init
from .module import Module, Parameter

__all__ = ["LayerNorm", "BatchNorm1d", "BatchNorm2d"]


def _param(shape, fill, device, dtype):
    dev = B.get_device(device)
    dt = B.float32 if dtype is None else B.dtype(dtype)
    return Parameter(dev.backend.asarray(B.host_numpy().full(shape, fill, dtype=dt),
                                         index=dev.index))


def _buffer(shape, fill, device, dtype):
    dev = B.get_device(device)
    arr = dev.backend.asarray(B.host_numpy().full(shape, fill, dtype=dtype), index=dev.index)
    return Tensor._make(arr, dev, False, None)


class LayerNorm(Module):
    """Normalise each sample over its last dims: (x - mean) / sqrt(var + eps) * weight + bias.

    Args:
        normalized_shape: the trailing shape to normalise over (an int or tuple).
        eps: added to the variance for stability.
        elementwise_affine: learn weight (ones) and bias (zeros) of normalized_shape.
        device, dtype: where and in what dtype the parameters are made.

    Example:
        >>> ln = gf.nn.LayerNorm(16)
        >>> ln(gf.randn(8, 16)).shape
        (8, 16)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        shape = ((normalized_shape,) if isinstance(normalized_shape, int)
                 else tuple(normalized_shape))
        if not shape or not all(isinstance(n, int) and n > 0 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be positive ints, got "
                             f"{normalized_shape!r}")
        self.normalized_shape = shape
        self.eps = float(eps)
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = _param(shape, 1.0, device, dtype)
            self.bias = _param(shape, 0.0, device, dtype)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def reset_parameters(self) -> None:
        """weight to ones, bias to zeros."""
        if self.elementwise_affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class _BatchNorm(Module):
    """Batch normalisation per channel C, shared by BatchNorm1d and BatchNorm2d.

    A subclass names the input ranks it accepts (_ndims), its expected shapes with {c} for C
    (_shapes); messages name the class. The statistics are F.batch_norm's.
    """

    _ndims: tuple = ()
    _shapes: str = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, got "
                             f"{num_features!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1] or None, got "
                             f"{momentum!r}")
        self.num_features = num_features
        self.eps = float(eps)
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        dt = B.float32 if dtype is None else B.dtype(dtype)
        if affine:
            self.weight = _param((num_features,), 1.0, device, dt)
            self.bias = _param((num_features,), 0.0, device, dt)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", _buffer((num_features,), 0.0, device, dt))
            self.register_buffer("running_var", _buffer((num_features,), 1.0, device, dt))
            self.register_buffer("num_batches_tracked", _buffer((), 0, device, B.int64))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean to 0, running variance to 1, batch count to 0."""
        if self.track_running_stats:
            dev = self.running_mean.device
            with dev.backend.use(dev.index):
                self.running_mean.data[...] = 0
                self.running_var.data[...] = 1
                self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        """Running statistics reset; weight to ones, bias to zeros (as PyTorch's)."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input of shape "
                             f"{self._shapes.format(c=self.num_features)}, got {x.shape}")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            count = self.num_batches_tracked
            with count.device.backend.use(count.device.index):
                count.data[...] += 1
                if self.momentum is None:  # cumulative moving average, 1/k on the device
                    momentum = 1.0 / count.data
        use_running = not self.training and self.track_running_stats
        return F.batch_norm(x, self.running_mean if self.track_running_stats else None,
                            self.running_var if self.track_running_stats else None,
                            self.weight, self.bias, training=not use_running,
                            momentum=momentum, eps=self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


_BATCH_NORM_DOC = """Batch normalisation of {inputs} inputs, per channel C{over}.

    Training mode normalises with the batch's statistics and updates the running ones
    (running = (1 - momentum) running + momentum batch, the variance unbiased); eval mode
    normalises with the running statistics. Same semantics and defaults as PyTorch.

    Args:
        num_features: C.
        eps: added to the variance.
        momentum: weight of the new batch in the running statistics; None keeps a cumulative
            average over all batches seen.
        affine: learn weight (ones) and bias (zeros).
        track_running_stats: keep running_mean, running_var and num_batches_tracked buffers
            (False: always use batch statistics).
        device, dtype: where and in what dtype parameters and buffers are made.

    Example:
        {example}
    """


@doc(_BATCH_NORM_DOC, inputs="(N, C) or (N, C, L)", over="",
     example=">>> bn = gf.nn.BatchNorm1d(4)\n"
             ">>> y = bn(gf.randn(32, 4))       # training: batch statistics\n"
             ">>> y = bn.eval()(gf.randn(2, 4))  # eval: running statistics")
class BatchNorm1d(_BatchNorm):
    _ndims = (2, 3)
    _shapes = "(N, {c}) or (N, {c}, L)"


@doc(_BATCH_NORM_DOC, inputs="(N, C, H, W)", over=" over N, H and W",
     example=">>> bn = gf.nn.BatchNorm2d(3)\n"
             ">>> y = bn(gf.randn(8, 3, 32, 32))          # training: batch statistics\n"
             ">>> y = bn.eval()(gf.randn(1, 3, 32, 32))  # eval: running statistics")
class BatchNorm2d(_BatchNorm):
    _ndims = (4,)
    _shapes = "(N, {c}, H, W)"
