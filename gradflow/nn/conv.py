"""Convolution and pooling layers over NCHW images: Conv2d, MaxPool2d, AvgPool2d."""
from __future__ import annotations

import math

from ..ops.conv import _pair, avg_pool2d, conv2d, max_pool2d
from ..tensor import Tensor
from . import init
from .layers import _empty
from .module import Module

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d"]


class Conv2d(Module):
    """2-D convolution of NCHW images with learned filters (PyTorch's nn.Conv2d).

    weight has shape (out_channels, in_channels // groups, kH, kW). As in PyTorch, the weight
    starts as kaiming_uniform_ with a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with
    fan_in = in_channels // groups * kH * kW, and the bias as U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    Args:
        in_channels, out_channels: channels of the input and the output; both divisible by
            groups.
        kernel_size: an int or a (height, width) pair.
        stride, padding, dilation, groups: as for `gradflow.nn.functional.conv2d` (padding may
            be 'valid' or 'same').
        bias: learn an additive bias per output channel (default True).
        device, dtype: where and in what dtype the parameters are made (default: the default
            device, float32).

    Shape:
        input (N, in_channels, H, W) -> output (N, out_channels, OH, OW).

    Example:
        >>> conv = gf.nn.Conv2d(1, 32, 3)
        >>> conv(gf.randn(64, 1, 28, 28)).shape
        (64, 32, 26, 26)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, device=None,
                 dtype=None) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("groups", groups)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Conv2d: {name} must be a positive int, got {v!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = _pair(stride, "stride", "Conv2d", 1)
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding",
                                                                       "Conv2d", 0)
        self.dilation = _pair(dilation, "dilation", "Conv2d", 1)
        self.weight = _empty((out_channels, in_channels // groups) + self.kernel_size, device,
                             dtype)
        if bias:
            self.bias = _empty((out_channels,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw weight and bias with PyTorch's default initialisation."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight[0].size
            init.uniform_(self.bias, -1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))

    def forward(self, x: Tensor) -> Tensor:
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        for name, default in (("padding", (0, 0)), ("dilation", (1, 1)), ("groups", 1)):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)}"
        return text + ("" if self.bias is not None else ", bias=False")


class MaxPool2d(Module):
    """The maximum of each window (PyTorch's nn.MaxPool2d); see
    `gradflow.nn.functional.max_pool2d`. The gradient goes to each window's first maximum.

    Args:
        kernel_size, stride (default kernel_size), padding, dilation, ceil_mode (False only).

    Example:
        >>> gf.nn.MaxPool2d(2)(gf.randn(64, 32, 24, 24)).shape
        (64, 32, 12, 12)
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                          self.ceil_mode)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """The mean of each window (PyTorch's nn.AvgPool2d); see
    `gradflow.nn.functional.avg_pool2d`.

    Args:
        kernel_size, stride (default kernel_size), padding, ceil_mode (False only),
        count_include_pad (default True: padding counts in the divisor), divisor_override.

    Example:
        >>> gf.nn.AvgPool2d(2)(gf.randn(64, 32, 24, 24)).shape
        (64, 32, 12, 12)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride or kernel_size, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
