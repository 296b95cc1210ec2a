"""Weight initialisation, in place, drawing from gradflow's seeded generator on the tensor's device.

Same formulas and names as torch.nn.init; `gf.manual_seed(s)` before building a model gives the
same weights every time (on a given device).
"""
from __future__ import annotations

import math

from .. import backend as B
from ..tensor import Tensor

__all__ = [
    "calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_", "xavier_uniform_",
    "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
]


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for an activation (PyTorch's values).

    linear, identity, sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 + slope^2))
    with slope `param` (default 0.01); selu: 3/4.

    Example:
        >>> gf.nn.init.calculate_gain("relu")
        1.4142135623730951
    """
    if nonlinearity in ("linear", "identity", "sigmoid", "conv1d", "conv2d", "conv3d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise ValueError(f"calculate_gain: negative slope {slope!r} is not a number")
        return math.sqrt(2.0 / (1.0 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r} (expected "
                     "linear, sigmoid, tanh, relu, leaky_relu or selu)")


def _fans(t: Tensor) -> tuple[int, int]:
    if t.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dims, got shape "
                         f"{t.shape}")
    receptive = 1
    for n in t.shape[2:]:
        receptive *= n
    return t.shape[1] * receptive, t.shape[0] * receptive


def _check(t, name):
    if not isinstance(t, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(t).__name__}")
    if t.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {t.dtype}")


def _draw_dtype(t):
    # The generators draw float32 or float64; other float dtypes are cast after drawing.
    return t.dtype if t.dtype in (B.float32, B.float64) else B.float32


def _write(t, arr):
    with t.device.backend.use(t.device.index):  # the copy runs on the tensor's own GPU
        t.data[...] = arr
    t._version += 1
    return t


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    """Fill `tensor` in place with draws from U(a, b); returns it."""
    _check(tensor, "uniform_")
    if not a <= b:
        raise ValueError(f"uniform_: need a <= b, got a={a}, b={b}")
    dev = tensor.device
    with dev.backend.use(dev.index):  # draw and scale on the tensor's own GPU, not the current
        u = dev.backend.rng(dev.index).random(tensor.shape, dtype=_draw_dtype(tensor))
        u *= b - a
        u += a
    return _write(tensor, u)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    """Fill `tensor` in place with draws from N(mean, std^2); returns it."""
    _check(tensor, "normal_")
    if std < 0:
        raise ValueError(f"normal_: std must be >= 0, got {std}")
    dev = tensor.device
    with dev.backend.use(dev.index):
        z = dev.backend.rng(dev.index).standard_normal(tensor.shape, dtype=_draw_dtype(tensor))
        z *= std
        z += mean
    return _write(tensor, z)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fill `tensor` in place with `val`; returns it."""
    _check(tensor, "constant_")
    return _write(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    """Fill `tensor` with zeros in place; returns it."""
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill `tensor` with ones in place; returns it."""
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)); returns the tensor.

    Example:
        >>> w = gf.nn.init.xavier_uniform_(gf.zeros(3, 5), gain=gf.nn.init.calculate_gain("tanh"))
    """
    fan_in, fan_out = _fans(tensor)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -a, a)


def xavier_normal_(tensor: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot normal: N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)); returns the tensor."""
    fan_in, fan_out = _fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def _kaiming_std(tensor, a, mode, nonlinearity):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _fans(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    if fan == 0:
        raise ValueError(f"kaiming init of a tensor of shape {tensor.shape}: its {mode} is 0")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu") -> Tensor:
    """He uniform: U(-bound, bound), bound = gain * sqrt(3 / fan); returns the tensor.

    Args:
        tensor: at least 2-D, e.g. a Linear weight (out_features, in_features).
        a: the negative slope of the leaky_relu that follows (nonlinearity='leaky_relu').
        mode: 'fan_in' (keeps the forward variance) or 'fan_out' (the backward one).
        nonlinearity: 'relu' or 'leaky_relu' (PyTorch's default).

    Example:
        >>> w = gf.nn.Parameter(gf.zeros(100, 50))
        >>> _ = gf.nn.init.kaiming_uniform_(w, nonlinearity="relu")
    """
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu") -> Tensor:
    """He normal: N(0, std^2), std = gain / sqrt(fan); arguments as in `kaiming_uniform_`."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))
