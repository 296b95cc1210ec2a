"""micrograd's neural-network module (Module, Neuron, Layer, MLP) over gradflow-backed Values.

Same classes, arguments and initialisation as micrograd's `nn.py`: weights drawn with Python's
`random.uniform(-1, 1)` and biases 0, so `random.seed(s)` gives the same network as micrograd.
Differences: every class takes an optional keyword `device=` (and `dtype=`) for its Values, and
`Layer`/`MLP` pass them on.

Example:
    >>> import random
    >>> from gradflow.compat.micrograd.nn import MLP
    >>> random.seed(1337)
    >>> model = MLP(2, [16, 16, 1])
    >>> score = model([0.5, -1.0])          # a Value
    >>> len(model.parameters())
    337
"""
from __future__ import annotations

import random

from .engine import Value

__all__ = ["Module", "Neuron", "Layer", "MLP"]


class Module:
    """Base class: `parameters()` lists the Values to train, `zero_grad()` resets their grads."""

    def zero_grad(self) -> None:
        """Set the gradient of every parameter to 0."""
        for p in self.parameters():
            p.grad = 0

    def parameters(self) -> list:
        """The trainable Values (none for the base class)."""
        return []


class Neuron(Module):
    """sum(w_i * x_i) + b, followed by ReLU unless `nonlin=False`.

    Args:
        nin: number of inputs.
        nonlin: apply ReLU to the output.
        device, dtype: where and how the weights are stored (gradflow's default device, float64).
    """

    def __init__(self, nin: int, nonlin: bool = True, *, device=None, dtype=None) -> None:
        self.w = [Value(random.uniform(-1, 1), device=device, dtype=dtype) for _ in range(nin)]
        self.b = Value(0, device=device, dtype=dtype)
        self.nonlin = nonlin

    def __call__(self, x):
        if len(x) != len(self.w):
            raise ValueError(f"Neuron with {len(self.w)} inputs called on {len(x)} values")
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act.relu() if self.nonlin else act

    def parameters(self) -> list:
        return self.w + [self.b]

    def __repr__(self) -> str:
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):
    """`nout` neurons reading the same `nin` inputs; keyword arguments go to each Neuron.

    Calling it returns a list of Values, or a single Value when `nout == 1`.
    """

    def __init__(self, nin: int, nout: int, **kwargs) -> None:
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x):
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list:
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """A stack of Layers of sizes `nouts`; ReLU after every layer but the last.

    Args:
        nin: number of inputs.
        nouts: the width of each layer, e.g. [16, 16, 1].
        device, dtype: passed to every Neuron.
    """

    def __init__(self, nin: int, nouts: list, **kwargs) -> None:
        sz = [nin] + list(nouts)
        self.layers = [Layer(sz[i], sz[i + 1], nonlin=i != len(nouts) - 1, **kwargs)
                       for i in range(len(nouts))]

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> list:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
