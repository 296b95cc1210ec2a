"""The one dtype rule of gradflow's ops: PyTorch's type promotion, and what meets a tensor.

Elementwise ops with two inputs (+, -, *, /, **, comparisons, maximum, where) pick the result's
dtype as PyTorch does, which differs from NumPy's in a few places:

    float32 tensor + float64 tensor          float64  (the wider float, as NumPy)
    float32 tensor + int64 tensor or array   float32  (a float wins over integers; NumPy: float64)
    int64 tensor * 0.5                       float32  (the default float; NumPy: float64)
    float32 tensor + 0-d float64 tensor      float32  (a 0-d tensor yields within its kind)
    float32 tensor * np.float64(2.0)         float32  (a NumPy scalar is a Python number)
    float16 tensor + 2.5                     float16  (Python numbers never widen a tensor)

A NumPy (or CuPy) array with dims counts as a tensor of its dtype on its device; a list, a string
or a complex number is refused (gradflow has no complex tensors: `gf.dtype` refuses those dtypes
everywhere). Where parameters meet data (matmul, linear, conv2d, the norms, the losses) nothing is
promoted: one dtype is required, as in PyTorch (`ops._util.same_dtype`). The gradient of each
input comes back in that input's own dtype (`ops.elementwise.unbroadcast`).
"""
from __future__ import annotations

from . import backend as B
from .autograd import _NUMBERS
from .tensor import Tensor


def promote(a, b):
    """(a, b) by PyTorch's type promotion where NumPy's rule differs; None where they agree.

    `Function.__call__` calls this for two inputs of different dtypes, or with an operand that
    is not a Tensor or a Python number, or with an integer tensor: rarely on a training path.

    Other operands become numbers or Tensors first (`_operand`). Then: a Python float with an
    integer or bool tensor gives the default float32 (NumPy: float64); a float tensor with an
    integer or bool one keeps the float dtype (NumPy: float32 with int64 is float64); and a 0-d
    tensor takes the dtype of a tensor with dims of its kind (float32 + a 0-d float64 stays
    float32). The cast happens before the op sees its inputs, so the op's rule and its saved
    inputs agree on one dtype. Everything else follows NumPy (float32 + float64 is float64).
    """
    a2, b2 = _operand(a, b), _operand(b, a)
    if isinstance(a2, Tensor) and isinstance(b2, Tensor):
        da, db = a2.data.dtype, b2.data.dtype
        if da is not db and da.kind == db.kind and (a2.ndim == 0) != (b2.ndim == 0):
            a2, b2 = (_cast(a2, db), b2) if a2.ndim == 0 else (a2, _cast(b2, da))
        elif da.kind == "f" and db.kind in "iub":
            b2 = _cast(b2, da)
        elif db.kind == "f" and da.kind in "iub":
            a2 = _cast(a2, db)
    elif a2.__class__ is float and b2.data.dtype.kind in "iub":
        b2 = _cast(b2, B.float32)
    elif b2.__class__ is float and a2.data.dtype.kind in "iub":
        a2 = _cast(a2, B.float32)
    return None if a2 is a and b2 is b else (a2, b2)


def _cast(t, dtype):
    return Tensor._make(t.data.astype(dtype), t.device)


def _operand(v, other):
    """A binary op's operand as a Tensor or a Python number, or a TypeError naming it.

    A NumPy scalar or 0-d array is a Python number (a "weak" scalar); an array with dims on the
    other operand's device is a tensor of its own dtype; complex numbers, lists and the rest are
    refused rather than given NumPy's meaning.
    """
    if isinstance(v, Tensor) or v.__class__ in _NUMBERS:
        return v
    if B.is_array(v) or hasattr(v, "item"):
        if getattr(v, "ndim", None) == 0:
            return _operand(v.item(), other)
        if B.is_array(v):
            src, dev = B.device_of(v), other.device
            if src is not dev:
                raise B.DeviceError(f"an array on {src} (shape {v.shape}) met a tensor on {dev}"
                                    f"; make it a tensor there: gf.tensor(array, device='{dev}')")
            B.dtype(v.dtype)  # refuses complex and object arrays
            return Tensor._make(v, dev)
    if isinstance(v, complex):
        raise TypeError(f"gradflow has no complex tensors: cannot combine {v!r} with a tensor")
    raise TypeError(f"cannot combine a tensor with a {type(v).__name__} ({v!r:.60}); make it "
                    "a tensor first: gf.tensor(value)")
