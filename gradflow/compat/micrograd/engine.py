"""micrograd's `Value`, recorded on gradflow's tape: each Value holds a 0-d gradflow Tensor.

Where this differs from micrograd (https://github.com/karpathy/micrograd), and why:

- `data` and `grad` are read from the Tensor (`value.tensor`), so they can live on a GPU; reading
  them returns Python floats as in micrograd. Setting `data` writes into the array and marks the
  Tensor as modified, so an old graph that saved the previous value refuses to run backward
  again instead of silently using the new one.
- `backward()` is gradflow's iterative engine, not micrograd's recursive topological sort, so
  very deep expressions (a chain of 100,000 ops) work instead of hitting Python's recursion
  limit. As in micrograd, calling it again on the same graph adds to every `grad`; to allow that
  the graph is kept (gradflow's `retain_graph=True`) for as long as the Values are referenced.
- `a ** b` with a Value exponent raises TypeError (micrograd's `assert` disappears under
  `python -O`); as in micrograd, only int and float exponents are supported.
- Values are float64 (like Python floats) on gradflow's default device; pass `device=` or
  `dtype=` to choose. Values on different devices cannot be mixed (DeviceError).
- Nodes have no `_backward` closure: the local derivative of each op is the backward of the
  gradflow Function that computed it (`value.tensor.grad_fn`). `_prev`, `_op` and `label` are
  kept, so micrograd's graph-drawing code (`draw_dot`) works unchanged.

Example:
    >>> from gradflow.compat.micrograd.engine import Value
    >>> a, b = Value(-4.0), Value(2.0)
    >>> c = (a * b + b ** 3).relu()
    >>> c.backward()
    >>> a.grad, b.grad                       # (2.0, 8.0)
"""
from __future__ import annotations

import gradflow as gf
from gradflow.tensor import Tensor

__all__ = ["Value"]


class Value:
    """A scalar that remembers how it was computed, as in micrograd, backed by a 0-d Tensor.

    Args:
        data: a number (or a one-element Tensor/array).
        _children: the Values this one was computed from (set by the operators).
        _op: the operator's symbol, for drawing ('+', '*', 'ReLU', ...).
        label: an optional name, for drawing.
        device: where the Tensor lives (default: gradflow's default device).
        dtype: a floating-point dtype (default float64, like Python floats).

    Attributes:
        data: the value, a Python float (settable).
        grad: d(output of the last backward)/d(this value), a Python float (settable).
        tensor: the gradflow Tensor behind this Value.

    Example:
        >>> x = Value(2.0, label="x")
        >>> y = (x * x + 1).tanh()
        >>> y.backward(); round(x.grad, 6)
    """

    # NumPy scalars (np.int64(1) * value) defer to our reflected operators instead of trying
    # to build an object array.
    __array_ufunc__ = None

    def __init__(self, data, _children=(), _op: str = "", label: str = "", *, device=None,
                 dtype=None) -> None:
        dtype = gf.float64 if dtype is None else gf.dtype(dtype)
        if isinstance(data, Value):
            data = data.tensor.detach()
        t = gf.tensor(data, dtype=dtype, device=device)
        if t.size != 1:
            raise ValueError(f"Value holds one number, got data of shape {t.shape}")
        self.tensor = t.reshape(()) if t.ndim else t
        self.tensor.requires_grad_(True)
        self._prev = set(_children)
        self._op = _op
        self.label = label

    @classmethod
    def _wrap(cls, t: Tensor, children, op: str) -> "Value":
        """A Value around the output of a recorded op; its gradient is kept like micrograd's."""
        v = cls.__new__(cls)
        t.retain_grad()
        v.tensor = t
        v._prev = set(children)
        v._op = op
        v.label = ""
        return v

    def _other(self, other) -> "Value":
        if isinstance(other, Value):
            return other
        return Value(other, device=self.tensor.device, dtype=self.tensor.dtype)

    # --- the numbers ------------------------------------------------------------------------
    @property
    def data(self) -> float:
        """The value as a Python float."""
        return self.tensor.item()

    @data.setter
    def data(self, value) -> None:
        t = self.tensor
        t.data[...] = value.tensor.item() if isinstance(value, Value) else value
        # The array changed under the tape: a graph that saved the old value must not reuse it.
        t._version += 1

    @property
    def grad(self) -> float:
        """d(output)/d(this value) after backward, as a Python float (0.0 before)."""
        g = self.tensor.grad
        return 0.0 if g is None else g.item()

    @grad.setter
    def grad(self, value) -> None:
        t = self.tensor
        t.grad = None if value == 0 else gf.full((), float(value), dtype=t.dtype, device=t.device)

    @property
    def device(self):
        """The device the value lives on."""
        return self.tensor.device

    # --- operators, composed exactly as micrograd composes them ------------------------------
    def __add__(self, other) -> "Value":
        other = self._other(other)
        return Value._wrap(self.tensor + other.tensor, (self, other), "+")

    def __mul__(self, other) -> "Value":
        other = self._other(other)
        return Value._wrap(self.tensor * other.tensor, (self, other), "*")

    def __pow__(self, other) -> "Value":
        if isinstance(other, bool) or not isinstance(other, (int, float)):
            raise TypeError(f"Value ** {type(other).__name__}: only int and float powers are "
                            "supported, as in micrograd (use exp and log for other powers)")
        return Value._wrap(self.tensor ** other, (self,), f"**{other}")

    def relu(self) -> "Value":
        """max(0, x); its derivative is taken as 0 at x = 0."""
        return Value._wrap(gf.relu(self.tensor), (self,), "ReLU")

    def tanh(self) -> "Value":
        """tanh(x)."""
        return Value._wrap(gf.tanh(self.tensor), (self,), "tanh")

    def exp(self) -> "Value":
        """e ** x."""
        return Value._wrap(gf.exp(self.tensor), (self,), "exp")

    def backward(self) -> None:
        """Fill `grad` of every Value this one was computed from with d(self)/d(that value).

        As in micrograd, this value's own grad becomes 1 and the others accumulate (+=) across
        calls: use `zero_grad()` (or set `.grad = 0`) between steps.
        """
        self.tensor.grad = None
        self.tensor.backward(retain_graph=True)

    def __neg__(self) -> "Value":
        return self * -1

    def __radd__(self, other) -> "Value":
        return self + other

    def __sub__(self, other) -> "Value":
        return self + (-other)

    def __rsub__(self, other) -> "Value":
        return other + (-self)

    def __rmul__(self, other) -> "Value":
        return self * other

    def __truediv__(self, other) -> "Value":
        return self * other ** -1

    def __rtruediv__(self, other) -> "Value":
        return other * self ** -1

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"
