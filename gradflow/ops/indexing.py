"""Indexing: x[key] with ints, slices, None, Ellipsis, bool masks and integer arrays.

The gradient of x[key] scatters dy back into zeros of x's shape. Basic indexing (no index arrays)
touches each element at most once, so plain assignment does it; advanced indexing may repeat an
index, so the backend's scatter-add accumulates (np.add.at on the CPU, cupyx.scatter_add on CUDA).
"""
from __future__ import annotations

from ..autograd import Function, is_grad_enabled
from ..tensor import Tensor, _check_writable
from .. import backend as B


class GetItem(Function):
    """d x[key] = scatter dy into zeros_like(x) at key"""
    saves_inputs = False

    def forward(self, x):
        return x[self.key]

    def backward(self, gy, y, x):
        return GetItemGrad(key=self.key, advanced=self.advanced, shape=x.shape)(gy)


class GetItemGrad(Function):
    """d scatter(dy, key) = ddx[key]: the adjoint of indexing is indexing"""
    saves_inputs = False

    def forward(self, gy):
        gx = B.xp_of(gy).zeros(self.shape, dtype=gy.dtype)
        if self.advanced:  # repeated indices must add up: the backend's scatter-add
            B.device_of(gx).backend.scatter_add(gx, self.key, gy)
        else:
            gx[self.key] = gy
        return gx

    def backward(self, ggx, y, gy):
        return GetItem(key=self.key, advanced=self.advanced)(ggx)


def _convert_key(x, key):
    """Replace Tensors and lists in `key` by arrays on x's device; report advanced indexing.

    Integer index arrays are bounds-checked first (CuPy would wrap an out-of-range index where
    NumPy raises): lists and NumPy arrays on the host, before they move, at no cost; index
    Tensors where they live, which on a GPU reads one bool back (a sync).
    """
    parts = key if isinstance(key, tuple) else (key,)
    host_np = B.host_numpy()
    arrays = []
    for k in parts:
        if isinstance(k, Tensor):
            if k.device is not x.device:
                raise B.DeviceError(f"indexing a tensor on {x.device} with an index on "
                                    f"{k.device}")
            if k.dtype.kind not in "biu":
                raise IndexError(f"tensors used as indices must be integer or bool, got "
                                 f"dtype {k.dtype}")
            k = k.data
        elif isinstance(k, list) or B.is_array(k):
            k = host_np.asarray(k) if isinstance(k, list) else k
            if k.dtype.kind not in "biu":
                raise IndexError(f"arrays used as indices must be integer or bool, got "
                                 f"dtype {k.dtype}")
        arrays.append(k)
    _check_bounds(x, arrays)
    out, advanced = [], False
    for k in arrays:
        if B.is_array(k):
            k = x.device.backend.asarray(k, index=x.device.index)
            advanced = advanced or k.dtype.kind != "b"  # repeats must accumulate in backward
        out.append(k)
    return tuple(out) if isinstance(key, tuple) else out[0], advanced


def _check_bounds(x, parts):
    """Raise IndexError when an integer index array holds an entry outside its axis."""
    def width(k):  # how many of x's axes a key part consumes
        if k is None or k is Ellipsis:
            return 0
        return k.ndim if B.is_array(k) and k.dtype.kind == "b" else 1

    taken = sum(width(k) for k in parts)
    axis = 0
    for k in parts:
        if k is Ellipsis:
            axis += x.ndim - taken
            continue
        if B.is_array(k) and k.dtype.kind != "b" and k.size and axis < x.ndim:
            n = x.shape[axis]
            dev = B.device_of(k)
            with dev.backend.use(dev.index):
                bad = (k < -n) | (k >= n)
                if bad.any():
                    shown = sorted(set(dev.backend.to_host(k[bad]).tolist()))[:5]
                    raise IndexError(f"index {', '.join(map(str, shown))} is out of range for "
                                     f"axis {axis} with size {n} (a tensor of shape {x.shape})")
        axis += width(k)


def getitem(x, key) -> Tensor:
    """x[key] with NumPy's indexing rules (the `x[...]` operator calls this).

    The gradient is scattered back into zeros of x's shape; where an integer index array repeats
    an index, the gradients of the repeats add up.

    Args:
        x: a Tensor.
        key: as for a NumPy array: ints, slices, None (a new axis), Ellipsis, bool masks and
            integer index arrays (masks and index arrays as Tensors, arrays or lists).

    Returns:
        A Tensor (0-d for a single element).

    Raises:
        IndexError: the key does not fit x's shape (the key and shape are named), or an index
            tensor is not integer or bool.
        DeviceError: an index tensor lives on another device than x.

    Example:
        >>> x = gf.arange(12.0).reshape(3, 4)
        >>> x[0], x[:, 1:3], x[None, ..., -1], x[x > 5]
        >>> logits[gf.arange(n), labels]          # one entry per row: the label's score
    """
    key, advanced = _convert_key(x, key)
    try:
        return GetItem(key=key, advanced=advanced)(x)
    except IndexError as exc:
        raise IndexError(f"index {key!r} does not fit a tensor of shape {x.shape}: {exc}") \
            from None


def setitem(x, key, value) -> None:
    """x[key] = value, in place, with NumPy's rules (the `x[...] = v` statement calls this).

    The write is not recorded on the tape, so x must not require grad while grad mode is on:
    build a new tensor with `gf.where(mask, value, x)` instead, or write under `gf.no_grad()`
    (initialising a parameter). x's version goes up, so a graph that saved x refuses a backward
    through the overwritten values, as in PyTorch.

    Args:
        x: a Tensor.
        key: as for `getitem`.
        value: a number, or a Tensor or array on x's device that broadcasts to x[key]'s shape;
            it is cast to x's dtype (5.7 into an int64 tensor stores 5), as NumPy and PyTorch do.

    Raises:
        RuntimeError: x requires grad and grad mode is on.
        IndexError, ValueError: the key or the value's shape does not fit (both are named).
        DeviceError: value or an index lives on another device.

    Example:
        >>> x = gf.zeros(3)
        >>> x[0] = 5.0; x[1:] = gf.tensor([1.0, 2.0])        # tensor([5., 1., 2.])
    """
    if x.requires_grad and is_grad_enabled():
        raise RuntimeError(
            f"x[{key!r}] = ... on a tensor that requires grad (shape {x.shape}) would not be "
            "recorded; make a new tensor instead (gf.where(mask, value, x)), or write under "
            "gf.no_grad() (as when initialising a parameter)")
    key, _ = _convert_key(x, key)
    if isinstance(value, Tensor) or B.is_array(value):
        src = value.device if isinstance(value, Tensor) else B.device_of(value)
        if src is not x.device:
            raise B.DeviceError(f"x[...] = value: value on {src}, tensor on {x.device}; move it "
                                f"first: value.to('{x.device}')")
        value = value.data if isinstance(value, Tensor) else value
    _check_writable(x, "item assignment")
    with x.device.backend.use(x.device.index):
        try:
            x.data[key] = value
        except (IndexError, ValueError) as exc:
            shape = getattr(value, "shape", ())
            raise type(exc)(f"x[{key!r}] = a value of shape {shape}, for a tensor of shape "
                            f"{x.shape}: {exc}") from None
    x._version += 1
