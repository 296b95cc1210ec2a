"""Tensor: an array on a device, plus what autograd needs (requires_grad, grad, grad_fn)."""
from __future__ import annotations

import itertools

from . import backend as B
from .autograd import backward as _backward, no_grad, is_grad_enabled

__all__ = ["Tensor"]

_PY_SCALARS = (int, float, bool)
_hook_ids = itertools.count()


class _HookHandle:
    """Returned by `register_hook`; `remove()` unregisters the hook."""

    __slots__ = ("_tensor", "_id")

    def __init__(self, tensor, hid):
        self._tensor, self._id = tensor, hid

    def remove(self) -> None:
        """Unregister the hook (a no-op when already removed)."""
        hooks = self._tensor._hooks
        if hooks:
            hooks.pop(self._id, None)


class Tensor:
    """An n-dimensional array on a device that can record the ops applied to it.

    Make one with `gf.tensor`, `gf.zeros`, `gf.randn`, ... . Arithmetic, indexing and the methods
    below record themselves on the tape when an input has `requires_grad=True`; then
    `loss.backward()` fills `.grad` of every leaf that led to `loss`.

    Attributes:
        data: the underlying NumPy or CuPy array (mutating it bypasses autograd's checks).
        device: the `Device` the array lives on.
        requires_grad: whether gradients flow to this tensor.
        grad: the accumulated gradient (a Tensor) after backward, else None.
        grad_fn: the `Function` that produced this tensor (None for leaves).
    """

    # _rg holds requires_grad (the property checks what is assigned; the tape reads _rg). _vc
    # is the version counter, a one-element list shared by every tensor that views the same
    # array (views made by ops, detach()), so an in-place change through any of them is seen
    # by every graph that saved one of them.
    __slots__ = ("data", "device", "_rg", "grad", "grad_fn", "_vc", "_hooks",
                 "_retains_grad", "name", "__weakref__")
    # NumPy defers binary operators to us (ndarray + Tensor reaches Tensor.__radd__).
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data, dtype=None, device=None, requires_grad: bool = False) -> None:
        dev = B.get_device(device) if device is not None else None
        if isinstance(data, Tensor):
            arr, src = data.data, data.device
        elif B.is_array(data):
            arr, src = data, B.device_of(data)
        else:
            arr, src = None, None
        if arr is None:
            dev = dev or B.default_device()
            arr = B.host_numpy().asarray(data)
            if dtype is None:
                kind = arr.dtype.kind
                if kind == "f":
                    dtype = B.float32
                elif kind in "iu":
                    dtype = B.int64
                elif kind == "b":
                    dtype = B.bool_
                else:
                    raise TypeError(f"cannot make a tensor from {type(data).__name__} with "
                                    f"dtype {arr.dtype}: only numbers and booleans")
            arr = dev.backend.asarray(arr, dtype=dtype, index=dev.index)
        else:
            # A Tensor or a CuPy array stays where it is; host data, NumPy arrays included, goes
            # to the default device (PyTorch's rule), so the same code runs on CPU or CUDA.
            if dev is None:
                host_array = src.type == "cpu" and not isinstance(data, Tensor)
                dev = B.default_device() if host_array else src
            if dev is not src:
                arr = dev.backend.asarray(src.backend.to_host(arr), index=dev.index)
            with dev.backend.use(dev.index):
                if dtype is not None and arr.dtype != dtype:
                    arr = arr.astype(dtype)
                else:
                    arr = arr.copy()  # gf.tensor copies, like torch.tensor
        self.data = arr
        self.device = dev
        self._rg = False
        self.grad = None
        self.grad_fn = None
        self._vc = [0]
        self._hooks = None
        self._retains_grad = False
        self.name = None
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _make(data, device, requires_grad, grad_fn):
        # The hot path: every op output is built here, without __init__'s conversions.
        t = _new(Tensor)
        t.data = data
        t.device = device
        t._rg = requires_grad
        t.grad = None
        t.grad_fn = grad_fn
        t._vc = [0]
        t._hooks = None
        t._retains_grad = False
        t.name = None
        return t

    # --- properties -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        """The shape, a tuple of ints."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of dimensions."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """The number of elements."""
        return self.data.size

    @property
    def dtype(self):
        """The element type (gf.float32, gf.float64, gf.int64, gf.bool_, ...)."""
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        """True for tensors not made by a recorded op (their .grad is filled by backward)."""
        return self.grad_fn is None

    @property
    def T(self) -> "Tensor":
        """The tensor with its axes reversed (a matrix transposed)."""
        return transpose(self)

    @property
    def mT(self) -> "Tensor":
        """The last two axes swapped (a batch of matrices transposed)."""
        return swapaxes(self, -1, -2)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    __hash__ = object.__hash__

    # --- autograd -----------------------------------------------------------------------------
    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Set requires_grad in place (leaves only; floating-point dtypes only); returns self."""
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.dtype}: "
                "integer and bool tensors hold labels, indices and masks"
            )
        if not requires_grad and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use .detach()")
        self._rg = bool(requires_grad)
        return self

    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow to this tensor; assigning it checks as requires_grad_ does."""
        return self._rg

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    @property
    def _version(self) -> int:
        # How many times the array was changed in place, through this tensor or a view of it.
        return self._vc[0]

    @_version.setter
    def _version(self, value: int) -> None:
        self._vc[0] = value

    def backward(self, gradient=None, retain_graph: bool = False,
                 create_graph: bool = False) -> None:
        """Compute d self / d leaf for every leaf that led here and add it to the leaf's .grad.

        Args:
            gradient: d loss / d self; may be omitted for a one-element tensor (taken as 1).
            retain_graph: keep the saved values so backward can run through this graph again.
            create_graph: record the backward pass, so the gradients can be differentiated.

        Example:
            >>> x = gf.tensor([1.0, 2.0], requires_grad=True)
            >>> (x * x).sum().backward()
            >>> x.grad                                    # 2x
        """
        _backward(self, gradient, retain_graph, create_graph)

    def retain_grad(self) -> "Tensor":
        """Keep .grad on this non-leaf tensor after backward (leaves always keep theirs)."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad")
        if self.grad_fn is not None:
            self._retains_grad = True
        return self

    def register_hook(self, hook) -> _HookHandle:
        """Call `hook(grad)` when this tensor's gradient is computed; a non-None return
        replaces the gradient. Returns a handle whose `remove()` unregisters it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook on a tensor that does not require grad")
        if self._hooks is None:
            self._hooks = {}
        hid = next(_hook_ids)
        self._hooks[hid] = hook
        return _HookHandle(self, hid)

    def detach(self) -> "Tensor":
        """A tensor sharing this one's array, cut from the graph (requires_grad False).

        An in-place change of either is a change of both: a graph that saved one refuses to
        backward after the other was modified.
        """
        t = Tensor._make(self.data, self.device, False, None)
        t._vc = self._vc
        return t

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (.grad = None)."""
        self.grad = None

    # --- moving and converting ----------------------------------------------------------------
    def to(self, device=None, dtype=None) -> "Tensor":
        """This tensor on `device` and/or with `dtype`; itself when nothing changes.

        The move is recorded, so gradients flow back to the original device.
        """
        dev = B.get_device(device) if device is not None else self.device
        out = self
        if dev is not self.device:
            out = ToDevice(dev)(out)
        if dtype is not None and B.dtype(dtype) != out.dtype:
            out = astype(out, dtype)
        return out

    def cpu(self) -> "Tensor":
        """This tensor on the CPU."""
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        """This tensor on CUDA device `index`."""
        return self.to(f"cuda:{index}")

    def astype(self, dtype) -> "Tensor":
        """A copy with another dtype (differentiable between floating-point dtypes)."""
        return astype(self, dtype)

    def float(self) -> "Tensor":
        """As float32."""
        return astype(self, B.float32)

    def double(self) -> "Tensor":
        """As float64."""
        return astype(self, B.float64)

    def long(self) -> "Tensor":
        """As int64 (not differentiable)."""
        return astype(self, B.int64)

    def numpy(self):
        """The values as a NumPy array (a copy from the GPU; the array itself on the CPU)."""
        return self.device.backend.to_host(self.data)

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        """The values as (nested) Python lists."""
        return self.numpy().tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous: "
                             "use .any() or .all()")
        return bool(self.data.item())

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        return arr if dtype is None else arr.astype(dtype)

    def __repr__(self) -> str:
        # "tensor(" is one longer than "array(": indent continuation rows one more to align.
        body = repr(self.numpy()).replace("array(", "tensor(", 1).replace("\n", "\n ")
        body = body[:-1] if body.endswith(")") else body
        extra = [] if "dtype=" in body else [f"dtype={self.dtype}"]
        if self.device.type != "cpu":
            extra.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extra.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self.requires_grad:
            extra.append("requires_grad=True")
        return body + "".join(", " + e for e in extra) + ")"

    # --- operators: one-line calls into ops -----------------------------------------------------
    def __add__(self, other): return Add()(self, other)
    def __radd__(self, other): return Add()(other, self)
    def __sub__(self, other): return Sub()(self, other)
    def __rsub__(self, other): return Sub()(other, self)
    def __mul__(self, other): return Mul()(self, other)
    def __rmul__(self, other): return Mul()(other, self)
    def __truediv__(self, other): return Div()(self, other)
    def __rtruediv__(self, other): return Div()(other, self)
    def __pow__(self, other): return Pow()(self, other)
    def __rpow__(self, other): return Pow()(other, self)
    def __matmul__(self, other): return matmul(self, other)
    def __rmatmul__(self, other): return matmul(other, self)
    def __neg__(self): return Neg()(self)
    def __pos__(self): return self
    def __abs__(self): return Abs()(self)
    def __getitem__(self, key): return getitem(self, key)
    def __eq__(self, other): return Equal()(self, other)
    def __ne__(self, other): return NotEqual()(self, other)
    def __lt__(self, other): return Less()(self, other)
    def __le__(self, other): return LessEqual()(self, other)
    def __gt__(self, other): return Greater()(self, other)
    def __ge__(self, other): return GreaterEqual()(self, other)
    def __invert__(self): return logical_not(self)
    def __and__(self, other): return logical_and(self, other)
    def __or__(self, other): return logical_or(self, other)

    # In place: when nothing is recorded, a true update of the array that bumps the version, so
    # a graph that saved the old values refuses to backward. When the op is recorded (the tensor
    # is part of a graph), `x += y` computes out of place and rebinds x: other references keep
    # the old tensor, and every recorded edge stays exact.
    def __iadd__(self, other): return self._inplace(Add, other)
    def __isub__(self, other): return self._inplace(Sub, other)
    def __imul__(self, other): return self._inplace(Mul, other)
    def __itruediv__(self, other): return self._inplace(Div, other)

    def _inplace(self, op, other):
        recording = is_grad_enabled() and (
            self.requires_grad or (isinstance(other, Tensor) and other.requires_grad))
        if recording:
            if self.grad_fn is None and self.requires_grad:
                raise RuntimeError(
                    f"in-place {op.__name__} on a leaf tensor that requires grad (shape "
                    f"{self.shape}) would lose its gradient; do it under gf.no_grad() (as "
                    "optimizers do) or out of place (x = x + y)")
            return op()(self, other)
        result = op()(self, other)
        if result.shape != self.shape:
            raise ValueError(f"in-place {op.__name__}: result shape {result.shape} does not fit "
                             f"the tensor's shape {self.shape}")
        if result.dtype != self.dtype:
            raise TypeError(f"in-place {op.__name__}: result dtype {result.dtype} cannot be "
                            f"stored in a tensor of dtype {self.dtype}")
        _check_writable(self, op.__name__)
        with self.device.backend.use(self.device.index):
            self.data[...] = result.data
        self._version += 1
        return self

    # --- methods: one-line calls into ops -------------------------------------------------------
    def sum(self, axis=None, keepdims=False): return sum(self, axis, keepdims)
    def mean(self, axis=None, keepdims=False): return mean(self, axis, keepdims)
    def var(self, axis=None, keepdims=False, ddof=0): return var(self, axis, keepdims, ddof)
    def std(self, axis=None, keepdims=False, ddof=0): return std(self, axis, keepdims, ddof)
    def max(self, axis=None, keepdims=False): return max(self, axis, keepdims)
    def min(self, axis=None, keepdims=False): return min(self, axis, keepdims)
    def argmax(self, axis=None, keepdims=False): return argmax(self, axis, keepdims)
    def argmin(self, axis=None, keepdims=False): return argmin(self, axis, keepdims)
    def all(self, axis=None, keepdims=False): return all(self, axis, keepdims)
    def any(self, axis=None, keepdims=False): return any(self, axis, keepdims)
    def logsumexp(self, axis=None, keepdims=False): return logsumexp(self, axis, keepdims)
    def softmax(self, axis=-1): return softmax(self, axis)
    def log_softmax(self, axis=-1): return log_softmax(self, axis)
    def exp(self): return exp(self)
    def log(self): return log(self)
    def sqrt(self): return sqrt(self)
    def sin(self): return sin(self)
    def cos(self): return cos(self)
    def tanh(self): return tanh(self)
    def sigmoid(self): return sigmoid(self)
    def relu(self): return relu(self)
    def abs(self): return abs(self)
    def clip(self, min=None, max=None): return clip(self, min, max)
    def reshape(self, *shape): return reshape(self, *shape)
    def view(self, *shape): return reshape(self, *shape)
    def transpose(self, *axes): return transpose(self, *axes)
    def permute(self, *axes): return permute(self, *axes)
    def swapaxes(self, axis1, axis2): return swapaxes(self, axis1, axis2)
    def broadcast_to(self, shape): return broadcast_to(self, shape)
    def expand(self, *shape): return broadcast_to(self, _shape_arg(shape))
    def squeeze(self, axis=None): return squeeze(self, axis)
    def unsqueeze(self, axis): return unsqueeze(self, axis)
    def flatten(self, start_axis=0, end_axis=-1): return flatten(self, start_axis, end_axis)
    def split(self, sections, axis=0): return split(self, sections, axis)
    def matmul(self, other): return matmul(self, other)
    def add(self, other): return add(self, other)
    def sub(self, other): return sub(self, other)
    def mul(self, other): return mul(self, other)
    def div(self, other): return div(self, other)
    def pow(self, exponent): return pow(self, exponent)
    def neg(self): return neg(self)
    def maximum(self, other): return maximum(self, other)
    def minimum(self, other): return minimum(self, other)
    def leaky_relu(self, negative_slope=0.01): return leaky_relu(self, negative_slope)
    def gelu(self): return gelu(self)


# Each one-line method above is its gf.* function with the tensor as first argument: it gets
# that function's docstring, so help(x.sum) and help(gf.sum) say the same.
_METHOD_FUNCTIONS = {"view": "reshape", "expand": "broadcast_to"}


def _document_methods():
    functions = globals()  # the ops imported below, by their gf.* names
    for name, fn in list(vars(Tensor).items()):
        if name.startswith("_") or not callable(fn) or fn.__doc__:
            continue
        target = functions.get(_METHOD_FUNCTIONS.get(name, name))
        if target is not None and target.__doc__:
            fn.__doc__ = (f"x.{name}(...) is gf.{target.__name__}(x, ...).\n\n"
                          + target.__doc__)


def _check_writable(t, what):
    # A broadcast view (expand, broadcast_to) repeats one element along a stride-0 axis: writing
    # into it would write each element several times, and on CuPy, which has no read-only flag,
    # it would go through silently. Refused on every backend, before NumPy's own error.
    d = t.data
    if 0 in d.strides and [n for st, n in zip(d.strides, d.shape) if st == 0 and n > 1]:
        raise ValueError(
            f"in-place {what} into a broadcast view (shape {t.shape}, strides {d.strides}): "
            "its elements share memory along the stride-0 axes; compute out of place instead "
            "(y = x + other)")


def _shape_arg(shape):
    return tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape


_new = object.__new__

# Late imports: the ops need Tensor, and Tensor's methods call the ops at run time.
from .ops.elementwise import (  # noqa: E402
    Add, Sub, Mul, Div, Pow, Neg, Abs, Equal, NotEqual, Less, LessEqual, Greater, GreaterEqual,
    exp, log, sqrt, sin, cos, tanh, sigmoid, relu, abs, clip, astype, logical_not, logical_and,
    logical_or, ToDevice, add, sub, mul, div, pow, neg, maximum, minimum, leaky_relu, gelu,
)
from .ops.reduce import (  # noqa: E402
    sum, mean, var, std, max, min, argmax, argmin, all, any, logsumexp, softmax, log_softmax,
)
from .ops.shape import (  # noqa: E402
    reshape, transpose, permute, swapaxes, broadcast_to, squeeze, unsqueeze, flatten, split,
)
from .ops.indexing import getitem  # noqa: E402
from .ops.linalg import matmul  # noqa: E402

_document_methods()
