"""Convolution and pooling over NCHW images: conv2d with its two gradient ops, pad, and pooling.

Everything here reads the (padded) input through its kernel taps. Tap (i, j) of an output pixel
(p, q) is input pixel (p*stride + i*dilation, q*stride + j*dilation), so one strided slice of
the padded input holds tap (i, j) of every output pixel at once. conv2d copies the taps into one
matrix (im2col) and contracts it with the weights by a batched matrix product, which BLAS (or
cuBLAS) runs; the input gradient adds the taps back where they came from (col2im). Both are a
loop over the kernel's taps, the same code on NumPy and CuPy.

conv2d's gradients are themselves ops (PyTorch's conv2d_input and conv2d_weight, Chainer's
Deconvolution2D and Convolution2DGradW), each with a rule, so gradients of gradients work.
"""
from __future__ import annotations

from dataclasses import dataclass

from .. import backend as B
from ..autograd import Function
from ..tensor import Tensor
from ._util import same_dtype

__all__ = [
    "conv2d", "pad", "max_pool2d", "avg_pool2d", "Window",
    "Conv2d", "Conv2dGradInput", "Conv2dGradWeight", "Pad", "MaxPool2d", "MaxPool2dGrad",
]


# --- geometry -----------------------------------------------------------------------------------
def _pair(value, name: str, op: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints as a pair, each at least `minimum`, or an error naming it."""
    pair = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    if len(pair) != 2 or not all(hasattr(v, "__index__") and not isinstance(v, bool)
                                 for v in pair):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    pair = tuple(v.__index__() for v in pair)
    if min(pair) < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return pair


@dataclass(frozen=True)
class Window:
    """Where a kernel reads its input: kernel size, stride, padding per side, dilation.

    Attributes:
        kernel, stride, dilation: (height, width) pairs.
        padding: ((top, bottom), (left, right)).

    Example:
        >>> w = Window.make((3, 3), stride=1, padding=1, dilation=1, input_hw=(28, 28), op="conv2d")
        >>> w.output_hw((28, 28))
        (28, 28)
    """

    kernel: tuple
    stride: tuple
    padding: tuple
    dilation: tuple

    @classmethod
    def make(cls, kernel, stride, padding, dilation, input_hw, op: str) -> "Window":
        """Validate the arguments as PyTorch takes them (ints or pairs; padding also 'valid' or
        'same') against an input of size `input_hw`, and return the Window."""
        kernel = _pair(kernel, "kernel_size", op, 1)
        stride = _pair(stride, "stride", op, 1)
        dilation = _pair(dilation, "dilation", op, 1)
        if isinstance(padding, str):
            padding = _named_padding(padding, kernel, stride, dilation, op)
        else:
            padding = tuple((p, p) for p in _pair(padding, "padding", op, 0))
        window = cls(kernel, stride, padding, dilation)
        window.check_fits(input_hw, op)
        return window

    def extent(self) -> tuple:
        """The kernel's reach in input pixels: dilation * (kernel - 1) + 1 per axis."""
        return tuple(d * (k - 1) + 1 for k, d in zip(self.kernel, self.dilation))

    def padded_hw(self, input_hw) -> tuple:
        """The input's (height, width) with the padding added."""
        return tuple(n + before + after for n, (before, after) in zip(input_hw, self.padding))

    def check_fits(self, input_hw, op: str) -> None:
        """Raise ValueError, naming the sizes, when the kernel is larger than the padded input."""
        padded, extent = self.padded_hw(input_hw), self.extent()
        if any(p < e for p, e in zip(padded, extent)):
            raise ValueError(
                f"{op}: kernel {_hw(self.kernel)} (dilation {_hw(self.dilation)}, reaching "
                f"{_hw(extent)} pixels) is larger than the padded input {_hw(padded)} (input "
                f"{_hw(input_hw)}, padding {self.padding})")

    def output_hw(self, input_hw) -> tuple:
        """(out_height, out_width) = (padded - extent) // stride + 1 per axis."""
        return tuple((p - e) // s + 1 for p, e, s in
                     zip(self.padded_hw(input_hw), self.extent(), self.stride))

    def taps(self, output_hw):
        """For each kernel tap (i, j): (i, j, the index of that tap's slice of the padded input)."""
        (sh, sw), (dh, dw), (oh, ow) = self.stride, self.dilation, output_hw
        for i in range(self.kernel[0]):
            for j in range(self.kernel[1]):
                yield i, j, (Ellipsis, slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
                             slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))

    def pad(self, x, value=0.0):
        """x (..., H, W) with the padding added, filled with `value` (x itself without padding)."""
        return pad_array(x, ((0, 0),) * (x.ndim - 2) + self.padding, value)

    def crop(self, x_padded):
        """The inverse of `pad`: the unpadded part of x_padded, contiguous."""
        return pad_array(x_padded, ((0, 0),) * (x_padded.ndim - 2)
                         + tuple((-a, -b) for a, b in self.padding))


def _hw(pair) -> str:
    return f"{pair[0]}x{pair[1]}"


def _named_padding(name, kernel, stride, dilation, op):
    if name == "valid":
        return ((0, 0), (0, 0))
    if name != "same":
        raise ValueError(f"{op}: padding must be 'valid', 'same', an int or a pair, got {name!r}")
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' needs stride 1, got stride {stride}")
    # As PyTorch: the total is split evenly, an odd pixel going to the bottom and right.
    totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return tuple((t // 2, t - t // 2) for t in totals)


def pad_array(x, widths, value=0.0):
    """x padded by widths[axis] = (before, after) per axis; a negative width crops instead.

    Args:
        x: a NumPy or CuPy array.
        widths: one (before, after) pair of ints per axis of x.
        value: the fill of the padding.

    Returns:
        A new array (x itself when every width is 0).

    Example:
        >>> pad_array(np.ones((2, 2)), ((1, 0), (0, -1))).shape
        (3, 1)
    """
    if not any(a or b for a, b in widths):
        return x
    keep = tuple(slice(max(-a, 0), n - max(-b, 0)) for n, (a, b) in zip(x.shape, widths))
    x = x[keep]
    if all(a <= 0 and b <= 0 for a, b in widths):
        return B.xp_of(x).ascontiguousarray(x)
    shape = tuple(n + max(a, 0) + max(b, 0) for n, (a, b) in zip(x.shape, widths))
    out = B.xp_of(x).full(shape, value, dtype=x.dtype)
    out[tuple(slice(max(a, 0), max(a, 0) + n) for n, (a, _) in zip(x.shape, widths))] = x
    return out


def im2col(x_padded, window: Window, output_hw):
    """The taps of every output pixel, copied side by side.

    The batch runs along the last axes, so that one matrix product per group contracts all
    the images at once (a few large products are much faster than many small ones).

    Args:
        x_padded: (N, C, H, W) array, padded already (`window.pad`).
        window: the kernel's geometry.
        output_hw: (OH, OW), `window.output_hw` of the unpadded input.

    Returns:
        A new (C, KH, KW, N, OH, OW) array: col[c, i, j, n, p, q] is the pixel tap (i, j) of
        output pixel (p, q) reads.

    Example:
        >>> w = Window.make(3, 1, 0, 1, (5, 5), "conv2d")
        >>> im2col(np.ones((2, 4, 5, 5)), w, (3, 3)).shape
        (4, 3, 3, 2, 3, 3)
    """
    n, c = x_padded.shape[:2]
    shape = (c,) + window.kernel + (n,) + tuple(output_hw)
    col = B.xp_of(x_padded).empty(shape, x_padded.dtype)
    for i, j, at in window.taps(output_hw):
        col[:, i, j] = x_padded[at].swapaxes(0, 1)
    return col


def col2im(col, window: Window, input_hw):
    """The adjoint of `im2col`: each tap added back where it was read from, padding cut off.

    Args:
        col: (C, KH, KW, N, OH, OW), one value per tap of each output pixel.
        window: the kernel's geometry.
        input_hw: the unpadded input's (H, W).

    Returns:
        A new (N, C, H, W) array: each input pixel's sum over the taps that read it.

    Example:
        >>> w = Window.make(3, 1, 0, 1, (5, 5), "conv2d")
        >>> col2im(np.ones((4, 3, 3, 2, 3, 3)), w, (5, 5))[0, 0, 2, 2]  # read by all 9 taps
        9.0
    """
    c, n, xp = col.shape[0], col.shape[3], B.xp_of(col)
    fast = _compiled(col)
    if fast is not None:  # the same sums, in the same order, written as NCHW
        gx = xp.zeros((n, c) + tuple(input_hw), col.dtype)
        fast.col2im(col, gx, *window.stride, *window.dilation, window.padding[0][0],
                    window.padding[1][0])
        return gx
    gx = xp.zeros((c, n) + window.padded_hw(input_hw), col.dtype)
    for i, j, at in window.taps(col.shape[4:]):
        gx[at] += col[:, i, j]
    (top, _), (left, _) = window.padding
    return xp.ascontiguousarray(
        gx[:, :, top:top + input_hw[0], left:left + input_hw[1]].swapaxes(0, 1))


def _compiled(array):
    """The backend's compiled loops for these ops (Numba's, on the CPU), or None: then the xp
    code beside each call runs, the reference the loops are tested against."""
    return B.device_of(array).backend.conv_kernels()


def _columns(gy, groups):
    """gy (N, OC, OH, OW) as (G, OC/G, N*OH*OW), the layout of the im2col products."""
    return gy.swapaxes(0, 1).reshape(groups, gy.shape[1] // groups, -1)


# --- conv2d -------------------------------------------------------------------------------------
class Conv2d(Function):
    """d conv2d(x, w) = conv2d_input(gy, w) for x, conv2d_weight(x, gy) for w, sum(gy) for b

    Forward keeps the im2col matrix of x: the weight gradient is the same contraction with gy.
    """

    def forward(self, x, w, b):
        n, oc, g = x.shape[0], w.shape[0], self.groups
        out_hw = self.window.output_hw(x.shape[2:])
        col = im2col(self.window.pad(x), self.window, out_hw)
        self.col = col.reshape(g, -1, n * out_hw[0] * out_hw[1])  # (G, K, N*OH*OW)
        # (G, OC/G, K) @ (G, K, N*OH*OW): one matrix product per group, K = C/G * KH * KW
        y = (w.reshape(g, oc // g, -1) @ self.col).reshape((oc, n) + out_hw).swapaxes(0, 1)
        y = B.xp_of(y).ascontiguousarray(y)
        if b is not None:
            y += b.reshape(oc, 1, 1)  # y is fresh: in place saves a temporary
        return y

    def backward(self, gy, y, x, w, b):
        need_x, need_w, need_b = self.needs_input_grad
        args = dict(window=self.window, groups=self.groups)
        return (Conv2dGradInput(input_hw=x.shape[2:], **args)(gy, w) if need_x else None,
                Conv2dGradWeight(kernel=w.shape[2:], col=self.col, **args)(x, gy)
                if need_w else None,
                gy.sum(axis=(0, 2, 3)) if need_b else None)


class Conv2dGradInput(Function):
    """The gradient of conv2d for its input (a transposed convolution), linear in gy and w:
    d gx = conv2d(ggx, w) for gy, conv2d_weight(ggx, gy) for w"""

    def forward(self, gy, w):
        (n, oc, oh, ow), (_, cg, kh, kw), g = gy.shape, w.shape, self.groups
        # (G, K, OC/G) @ (G, OC/G, N*OH*OW): each output pixel's gradient, spread over the taps
        # that made it
        gcol = w.reshape(g, oc // g, -1).swapaxes(1, 2) @ _columns(gy, g)
        return col2im(gcol.reshape(g * cg, kh, kw, n, oh, ow), self.window, self.input_hw)

    def backward(self, ggx, y, gy, w):
        need_gy, need_w = self.needs_input_grad
        args = dict(window=self.window, groups=self.groups)
        return (Conv2d(**args)(ggx, w, None) if need_gy else None,
                Conv2dGradWeight(kernel=w.shape[2:], **args)(ggx, gy) if need_w else None)


class Conv2dGradWeight(Function):
    """The gradient of conv2d for its weight, linear in x and gy:
    d gw = conv2d_input(gy, ggw) for x, conv2d(x, ggw) for gy"""

    col = None  # x's im2col matrix when Conv2d's forward has it already

    def forward(self, x, gy):
        oc, g, col = gy.shape[1], self.groups, self.col
        if col is None:
            col = im2col(self.window.pad(x), self.window, gy.shape[2:])
            col = col.reshape(g, -1, gy[:, 0].size)  # (G, K, N*OH*OW)
        # (G, OC/G, N*OH*OW) @ (G, N*OH*OW, K): summed over the images and output pixels
        gw = _columns(gy, g) @ col.swapaxes(1, 2)
        return gw.reshape((oc, x.shape[1] // g) + tuple(self.kernel))

    def backward(self, ggw, y, x, gy):
        need_x, need_gy = self.needs_input_grad
        args = dict(window=self.window, groups=self.groups)
        return (Conv2dGradInput(input_hw=x.shape[2:], **args)(gy, ggw) if need_x else None,
                Conv2d(**args)(x, ggw, None) if need_gy else None)


def _batched(x, op: str):
    """x as (N, C, H, W), and whether it was unbatched (C, H, W), as PyTorch accepts."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim == 3:
        return x.reshape((1,) + x.shape), True
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W) or a 3-D one (C, H, W), got "
                         f"shape {x.shape}")
    return x, False


def _check_conv_args(x, weight, bias, groups):
    if not isinstance(weight, Tensor) or weight.ndim != 4:
        raise ValueError(f"conv2d: weight must be a 4-D Tensor (out_channels, in_channels/groups,"
                         f" kH, kW), got {getattr(weight, 'shape', type(weight).__name__)}")
    if not hasattr(groups, "__index__") or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    oc, cg = weight.shape[:2]
    if oc % groups:
        raise ValueError(f"conv2d: groups={groups} does not divide the weight's {oc} output "
                         f"channels (weight {weight.shape})")
    if x.shape[1] != cg * groups:
        raise ValueError(f"conv2d: given groups={groups} and weight {weight.shape}, expected "
                         f"input {x.shape} to have {cg * groups} channels, but got {x.shape[1]}")
    if bias is not None and (not isinstance(bias, Tensor) or bias.shape != (oc,)):
        raise ValueError(f"conv2d: bias must be a Tensor of shape ({oc},) for weight "
                         f"{weight.shape}, got {getattr(bias, 'shape', bias)}")
    same_dtype("conv2d", ("input", "weight", "bias"), x, weight, bias)


def conv2d(input: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as in every deep-learning library) of NCHW images.

    out[n, o] = bias[o] + sum over the input channels c of group(o) and taps (i, j) of
    weight[o, c, i, j] * x_padded[n, c, p*stride + i*dilation, q*stride + j*dilation].

    Args:
        input: (N, C, H, W), or (C, H, W) for one image.
        weight: (out_channels, C / groups, kH, kW).
        bias: (out_channels,) or None.
        stride, dilation: an int or a (height, width) pair, >= 1.
        padding: an int or a pair of zeros added on both sides, or 'valid' (none) or 'same'
            (output as large as the input; stride 1).
        groups: split the channels into this many groups, each convolved with its own filters;
            groups = C with out_channels = k*C is a depthwise convolution.

    Returns:
        A Tensor (N, out_channels, OH, OW), OH = (H + 2 padding - dilation (kH - 1) - 1) //
        stride + 1 (likewise OW); (out_channels, OH, OW) for a 3-D input.

    Raises:
        ValueError: a wrong channel count, groups that do not divide the channels, a kernel
            larger than the padded input, a non-4-D input, a stride or dilation below 1.
        TypeError: input, weight and bias of different dtypes.

    Example:
        >>> x, w = gf.randn(8, 3, 28, 28), gf.randn(16, 3, 3, 3)
        >>> gf.nn.functional.conv2d(x, w, padding=1).shape
        (8, 16, 28, 28)
    """
    x, unbatched = _batched(input, "conv2d")
    _check_conv_args(x, weight, bias, groups)
    window = Window.make(weight.shape[2:], stride, padding, dilation, x.shape[2:], "conv2d")
    y = Conv2d(window=window, groups=groups.__index__())(x, weight, bias)
    return y.reshape(y.shape[1:]) if unbatched else y


# --- pad ----------------------------------------------------------------------------------------
class Pad(Function):
    """d pad(x, widths) = pad(gy, -widths): the padding cut off (a negative width crops)"""
    saves_inputs = False

    def forward(self, x):
        return pad_array(x, self.widths, self.value)

    def backward(self, gy, y, x):
        return Pad(widths=tuple((-a, -b) for a, b in self.widths), value=0.0)(gy)


def pad(input: Tensor, pad, mode: str = "constant", value: float | None = None) -> Tensor:
    """Pad the last dims with a constant, as PyTorch's F.pad: `pad` lists (before, after)
    widths from the LAST dim backwards; a negative width crops.

    Args:
        input: a Tensor.
        pad: (left, right), or (left, right, top, bottom), ...: an even number of ints, at most
            two per dim.
        mode: 'constant' (the only mode gradflow has).
        value: the fill (default 0).

    Returns:
        The padded Tensor.

    Example:
        >>> gf.nn.functional.pad(gf.ones(2, 3), (1, 1, 0, 2)).shape
        (4, 5)
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"pad: input must be a Tensor, got {type(input).__name__}")
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not implemented; gradflow has "
                                  "'constant' only")
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) > 2 * input.ndim or not all(
            hasattr(p, "__index__") and not isinstance(p, bool) for p in pad):
        raise ValueError(f"pad: expected an even number of ints, at most {2 * input.ndim} for "
                         f"an input of shape {input.shape}, got {pad!r}")
    pairs = [(pad[k].__index__(), pad[k + 1].__index__()) for k in range(0, len(pad), 2)]
    widths = ((0, 0),) * (input.ndim - len(pairs)) + tuple(reversed(pairs))
    if any(n + a + b < 0 for n, (a, b) in zip(input.shape, widths)):
        raise ValueError(f"pad: widths {pad!r} crop more than the input {input.shape} has")
    return Pad(widths=widths, value=0.0 if value is None else float(value))(input)


# --- pooling ------------------------------------------------------------------------------------
class MaxPool2d(Function):
    """d max over a window = gy at the window's first maximum, 0 at its other pixels

    With `index` given (each window's chosen tap, as its forward found it) it picks those
    pixels instead of finding the maxima: the rule of MaxPool2dGrad, linear in its input.
    """
    saves_inputs = False
    index = None

    def forward(self, x):
        xp, taps = B.xp_of(x), list(self.window.taps(self.window.output_hw(x.shape[2:])))
        if self.index is not None:
            x_padded, y = self.window.pad(x), None
            for k, (_, _, at) in enumerate(taps):
                y = x_padded[at] if y is None else xp.where(self.index == k, x_padded[at], y)
            return y
        x_padded = self.window.pad(x, value=-float("inf"))
        y = x_padded[taps[0][2]].copy()
        for _, _, at in taps[1:]:
            xp.maximum(y, x_padded[at], out=y)  # a nan propagates, as in PyTorch
        # Each window's first maximum (PyTorch's choice at a tie), as the number of taps before
        # it: the count of leading taps that differ from the maximum (all but the last, so a
        # nan window points at its last tap).
        self.index = xp.zeros(y.shape, xp.min_scalar_type(len(taps)))
        before = xp.ones(y.shape, bool)
        for _, _, at in taps[:-1]:
            before &= x_padded[at] != y
            self.index += before
        return y

    def backward(self, gy, y, x):
        return MaxPool2dGrad(window=self.window, index=self.index, input_hw=x.shape[2:])(gy)


class MaxPool2dGrad(Function):
    """Each window's gradient sent to its chosen pixel (linear): d gx = ggx at those pixels"""
    saves_inputs = False

    def forward(self, gy):
        xp, (top, _), (left, _) = B.xp_of(gy), *self.window.padding
        fast = _compiled(gy)
        if fast is not None:
            gx = xp.zeros(gy.shape[:2] + tuple(self.input_hw), gy.dtype)
            fast.max_pool_grad(gy, self.index, gx, self.window.kernel[1], *self.window.stride,
                               *self.window.dilation, top, left)
            return gx
        gx = xp.zeros(gy.shape[:2] + self.window.padded_hw(self.input_hw), gy.dtype)
        for k, (_, _, at) in enumerate(self.window.taps(gy.shape[2:])):
            gx[at] += gy * (self.index == k)
        return self.window.crop(gx)

    def backward(self, ggx, y, gy):
        return MaxPool2d(window=self.window, index=self.index)(ggx)


def _pool_window(x, kernel_size, stride, padding, dilation, ceil_mode, op):
    if ceil_mode:
        raise NotImplementedError(f"{op}: ceil_mode=True is not implemented")
    stride = kernel_size if stride is None or stride == () or stride == [] else stride
    window = Window.make(kernel_size, stride, padding, dilation, x.shape[2:], op)
    half = [e // 2 for e in window.extent()]
    if any(p > h for (p, _), h in zip(window.padding, half)):
        raise ValueError(f"{op}: padding {padding!r} must be at most half the kernel's reach "
                         f"{_hw(window.extent())}")
    return window


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False) -> Tensor:
    """The maximum of each kernel_size window of NCHW images.

    The gradient of a window goes to its first maximum (in row-major order inside the window),
    as in PyTorch; the padding is -inf, so it is never a maximum.

    Args:
        input: (N, C, H, W) or (C, H, W).
        kernel_size: an int or a pair.
        stride: an int or a pair; None (the default) means kernel_size.
        padding: added on both sides, at most half the kernel size.
        dilation: the spacing of a window's pixels.
        ceil_mode: False only (windows that would hang over the end are dropped).

    Returns:
        (N, C, OH, OW), sizes as for conv2d.

    Example:
        >>> gf.nn.functional.max_pool2d(gf.randn(8, 16, 24, 24), 2).shape
        (8, 16, 12, 12)
    """
    x, unbatched = _batched(input, "max_pool2d")
    window = _pool_window(x, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d")
    y = MaxPool2d(window=window)(x)
    return y.reshape(y.shape[1:]) if unbatched else y


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: int | None = None) -> Tensor:
    """The mean of each kernel_size window of NCHW images.

    A composite of pad, strided slicing and adds (no rule of its own): one slice per kernel
    tap, summed and divided.

    Args:
        input: (N, C, H, W) or (C, H, W).
        kernel_size: an int or a pair.
        stride: an int or a pair; None (the default) means kernel_size.
        padding: zeros added on both sides, at most half the kernel size.
        ceil_mode: False only.
        count_include_pad: divide by the whole window (True, PyTorch's default) or by the
            input pixels in it.
        divisor_override: divide by this instead.

    Returns:
        (N, C, OH, OW).

    Example:
        >>> gf.nn.functional.avg_pool2d(gf.randn(8, 16, 24, 24), 2).shape
        (8, 16, 12, 12)
    """
    x, unbatched = _batched(input, "avg_pool2d")
    window = _pool_window(x, kernel_size, stride, padding, 1, ceil_mode, "avg_pool2d")
    out_hw = window.output_hw(x.shape[2:])
    x_padded = Pad(widths=((0, 0), (0, 0)) + window.padding, value=0.0)(x)
    total = None
    for _, _, at in window.taps(out_hw):
        total = x_padded[at] if total is None else total + x_padded[at]
    y = total / _avg_divisor(x, window, out_hw, count_include_pad, divisor_override)
    return y.reshape(y.shape[1:]) if unbatched else y


def _avg_divisor(x, window, out_hw, count_include_pad, divisor_override):
    if divisor_override is not None:
        if divisor_override == 0:
            raise ValueError("avg_pool2d: divisor_override must not be 0")
        return float(divisor_override)
    if count_include_pad or not any(a or b for a, b in window.padding):
        return float(window.kernel[0] * window.kernel[1])
    with x.device.backend.use(x.device.index):  # on x's own GPU, whichever is current
        ones = window.pad(x.device.xp.ones((1, 1) + x.shape[2:], x.dtype))
        counts = sum(ones[at] for _, _, at in window.taps(out_hw))  # input pixels per window
    return Tensor._make(counts, x.device)
