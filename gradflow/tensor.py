"""Tensor: an array on a device, plus what autograd needs (requires_grad, grad, grad_fn)."""
from __future__ import annotations

import itertools

from . import backend as B
from . import autograd
from .autograd import is_grad_enabled

__all__ = ["Tensor"]

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

    # _requires_grad backs the requires_grad property (which checks what is assigned; the tape
    # reads the slot). _version_counter is a one-element list shared by every tensor that views
    # the same array (views made by ops, detach()), so an in-place change through any of them
    # is seen by every graph that saved one of them.
    __slots__ = ("data", "device", "_requires_grad", "grad", "grad_fn", "_version_counter",
                 "_hooks", "_retains_grad", "name", "__weakref__")
    # NumPy defers binary operators to us (ndarray + Tensor reaches Tensor.__radd__).
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data, dtype=None, device=None, requires_grad: bool = False) -> None:
        # Tensor(data) is gf.tensor(data): a copy of data, converted by `array_from_data`.
        self._init_fields(*array_from_data(data, dtype, device))
        if requires_grad:
            self.requires_grad_(True)

    def _init_fields(self, data, device, requires_grad=False, grad_fn=None) -> None:
        # Every field of a Tensor (and of a Parameter) is set here, and only here.
        self.data = data
        self.device = device
        self._requires_grad = requires_grad
        self.grad = None
        self.grad_fn = grad_fn
        self._version_counter = [0]
        self._hooks = None
        self._retains_grad = False
        self.name = None

    def __reduce_ex__(self, protocol):
        # Pickled as its values on the host, its device's name and requires_grad: the graph that
        # made a non-leaf stays behind (it loads as a leaf, as in PyTorch), and a tensor pickled
        # on a GPU loads on a CPU-only machine (on the CPU).
        return (_rebuild_tensor, (self.device.backend.to_host(self.data), str(self.device),
                                  self._requires_grad, self.name))

    @staticmethod
    def _make(data, device, requires_grad=False, grad_fn=None):
        # The hot path: every op output is built here, without __init__'s conversions.
        t = _new(Tensor)
        t._init_fields(data, device, requires_grad, grad_fn)
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
        self._requires_grad = bool(requires_grad)
        return self

    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow to this tensor; assigning it checks as requires_grad_ does."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self.requires_grad_(value)

    @property
    def _version(self) -> int:
        # How many times the array was changed in place, through this tensor or a view of it.
        return self._version_counter[0]

    @_version.setter
    def _version(self, value: int) -> None:
        self._version_counter[0] = value

    backward = autograd.backward

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
        if not callable(hook):
            raise TypeError(f"register_hook: the hook must be callable, got {hook!r:.60}")
        if self._hooks is None:
            self._hooks = {}
        if self.grad_fn is not None:  # alive until backward reaches it (its function holds it)
            self.grad_fn.hooked_output = self
        hid = next(_hook_ids)
        self._hooks[hid] = hook
        return _HookHandle(self, hid)

    def detach(self) -> "Tensor":
        """A tensor sharing this one's array, cut from the graph (requires_grad False).

        An in-place change of either is a change of both: a graph that saved one refuses to
        backward after the other was modified.
        """
        t = Tensor._make(self.data, self.device)
        t._version_counter = self._version_counter
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
            out = to_device(out, dev)
        if dtype is not None and B.dtype(dtype) != out.dtype:
            out = astype(out, dtype)
        return out

    def cpu(self) -> "Tensor":
        """This tensor on the CPU."""
        return self.to("cpu")

    def cuda(self, index: int = 0) -> "Tensor":
        """This tensor on CUDA device `index`."""
        return self.to(f"cuda:{index}")

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

    def __float__(self) -> float: return float(self.item())
    def __int__(self) -> int: return int(self.item())

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
    def __setitem__(self, key, value): setitem(self, key, value)
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

    def expand(self, *shape):
        """x.expand(*shape) is gf.broadcast_to(x, shape), PyTorch's name (a read-only view)."""
        return broadcast_to(self, _shape_arg(shape))


def _rebuild_tensor(array, device, requires_grad, name):
    dev = B.loadable_device(device)
    t = Tensor._make(dev.backend.asarray(array, index=dev.index), dev, requires_grad)
    t.name = name
    return t


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



_new = object.__new__

# Late imports: the ops need Tensor, and Tensor's methods call the ops at run time.
from .ops.elementwise import (  # noqa: E402
    Add, Sub, Mul, Div, Pow, Neg, Abs, exp, log, sqrt, sin, cos, tanh, sigmoid, relu, abs, clip,
    astype, to_device, add, sub, mul, div, pow, neg, maximum, minimum, leaky_relu, gelu,
)
from .ops.compare import (  # noqa: E402
    Equal, NotEqual, Less, LessEqual, Greater, GreaterEqual, logical_not, logical_and, logical_or,
)
from .ops.reduce import (  # noqa: E402
    sum, mean, var, std, max, min, argmax, argmin, all, any, logsumexp, softmax, log_softmax,
)
from .ops.shape import _shape_arg  # noqa: E402  (ints or one tuple, checked)
from .ops.shape import (  # noqa: E402
    reshape, transpose, permute, swapaxes, broadcast_to, squeeze, unsqueeze, flatten, split,
)
from .ops.indexing import getitem, setitem  # noqa: E402
from .ops.linalg import matmul  # noqa: E402
from .creation import array_from_data  # noqa: E402

# Each of these methods is its gf.* function itself, the tensor being the first argument:
# x.sum(axis=1) is gf.sum(x, axis=1), and help(x.sum) is help(gf.sum).
for _function in (
        sum, mean, var, std, max, min, argmax, argmin, all, any, logsumexp, softmax, log_softmax,
        exp, log, sqrt, sin, cos, tanh, sigmoid, relu, abs, clip, reshape, transpose, permute,
        swapaxes, broadcast_to, squeeze, unsqueeze, flatten, split, matmul, add, sub, mul, div,
        pow, neg, maximum, minimum, leaky_relu, gelu, astype):
    setattr(Tensor, _function.__name__, _function)
Tensor.view = reshape
