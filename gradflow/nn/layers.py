"""Layers and containers: Linear, Sequential, ModuleList, MLP, Flatten, Dropout."""
from __future__ import annotations

import math
from collections import OrderedDict

from .. import backend as B
from ..ops.nn import dropout, linear
from ..ops.shape import flatten
from ..tensor import Tensor
from . import activations, init
from .module import Module, Parameter

__all__ = ["Linear", "Sequential", "ModuleList", "MLP", "Flatten", "Dropout"]


def _empty(shape, device, dtype):
    dev = B.get_device(device)
    dt = B.float32 if dtype is None else B.dtype(dtype)
    if dt.kind != "f":
        raise TypeError(f"layer parameters must be floating point, got dtype {dt}")
    return Parameter(dev.backend.asarray(B.host_numpy().zeros(shape, dtype=dt), index=dev.index))


class Linear(Module):
    """y = x @ weight.T + bias, the fully connected layer (PyTorch's nn.Linear).

    weight has shape (out_features, in_features) and, like PyTorch, both weight and bias start
    as U(-1/sqrt(in_features), 1/sqrt(in_features)) (kaiming_uniform_ with a = sqrt(5)), drawn
    from the device's seeded generator.

    Args:
        in_features: size of each input row.
        out_features: size of each output row.
        bias: learn an additive bias (default True).
        device: where the parameters live (default: the default device).
        dtype: parameter dtype (default float32).

    Shape:
        input (..., in_features) -> output (..., out_features).

    Example:
        >>> layer = gf.nn.Linear(784, 1000)
        >>> layer(gf.randn(100, 784)).shape
        (100, 1000)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"Linear: {name} must be a non-negative int, got {v!r}")
        self.in_features = in_features
        self.out_features = out_features
        self.weight = _empty((out_features, in_features), device, dtype)
        if bias:
            self.bias = _empty((out_features,), device, dtype)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-draw weight and bias with PyTorch's default initialisation."""
        if self.weight.size == 0:
            return  # nothing to draw (and no fan to scale by)
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Sequential(Module):
    """Modules applied one after the other; children are named '0', '1', ... (or by an
    OrderedDict's keys).

    Example:
        >>> model = gf.nn.Sequential(gf.nn.Linear(4, 8), gf.nn.ReLU(), gf.nn.Linear(8, 2))
        >>> model[0].out_features
        8
    """

    def __init__(self, *modules) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                if not isinstance(m, Module):
                    raise TypeError(f"Sequential: argument {i} is a {type(m).__name__}, not a "
                                    "Module")
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx):
        mods = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(mods[idx]))
        if not -len(mods) <= idx < len(mods):
            raise IndexError(f"index {idx} is out of range for a Sequential of {len(mods)} "
                             "modules")
        return mods[idx][1]

    def append(self, module: Module) -> "Sequential":
        """Add `module` at the end; returns self."""
        self.add_module(str(len(self._modules)), module)
        return self


class ModuleList(Module):
    """A list of modules, registered so their parameters are found (no forward of its own).

    Example:
        >>> blocks = gf.nn.ModuleList([gf.nn.Linear(4, 4) for _ in range(3)])
        >>> len(list(blocks.parameters()))
        6
    """

    def __init__(self, modules=()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> "ModuleList":
        """Add `module` at the end; returns self."""
        self.add_module(str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, idx: int) -> Module:
        mods = list(self._modules.values())
        return mods[idx]


_ACTIVATIONS = {
    "relu": activations.ReLU, "tanh": activations.Tanh, "sigmoid": activations.Sigmoid,
    "gelu": activations.GELU, "leaky_relu": activations.LeakyReLU,
    "identity": activations.Identity,
}


def _activation_factory(activation):
    if isinstance(activation, str):
        key = activation.lower()
        if key not in _ACTIVATIONS:
            raise ValueError(f"MLP: unknown activation {activation!r}; expected one of "
                             f"{', '.join(sorted(_ACTIVATIONS))}, a Module class or a factory")
        return _ACTIVATIONS[key]
    if callable(activation):
        return activation
    raise TypeError(f"MLP: activation must be a name, a Module class or a factory, got "
                    f"{type(activation).__name__}")


def _clone(module):
    import copy
    return copy.deepcopy(module)


class MLP(Sequential):
    """A multilayer perceptron: Linear layers of the given sizes with an activation (and
    optional dropout) between them, none after the last.

    Args:
        sizes: layer widths from input to output, e.g. [784, 1000, 1000, 10].
        activation: 'relu' (default), 'tanh', 'sigmoid', 'gelu', 'leaky_relu', a Module class
            such as gf.nn.Tanh, or a zero-argument factory returning a Module.
        dropout: drop probability after each hidden activation (0 disables it).
        bias: give the Linear layers a bias (default True).
        device, dtype: where and in what dtype the parameters are made.

    Example:
        >>> model = gf.nn.MLP([784, 1000, 1000, 10])       # the classic Chainer MNIST model
        >>> model(gf.randn(100, 784)).shape
        (100, 10)
    """

    def __init__(self, sizes, activation="relu", dropout: float = 0.0, bias: bool = True,
                 device=None, dtype=None) -> None:
        sizes = list(sizes)
        if len(sizes) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                                     for n in sizes):
            raise ValueError(f"MLP: sizes must list at least two positive ints (input and "
                             f"output widths), got {sizes!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"MLP: dropout must be in [0, 1), got {dropout!r}")
        if isinstance(activation, Module):
            # Each layer gets its own copy, so the printed tree and train()/eval() stay simple.
            def make_act(proto=activation):
                return _clone(proto)
        else:
            make_act = _activation_factory(activation)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(n_in, n_out, bias=bias, device=device, dtype=dtype))
            if i < len(sizes) - 2:
                act = make_act()
                if not isinstance(act, Module):
                    raise TypeError(f"MLP: the activation factory returned a "
                                    f"{type(act).__name__}, not a Module")
                layers.append(act)
                if dropout:
                    layers.append(Dropout(dropout))
        super().__init__(*layers)
        self.sizes = sizes


class Flatten(Module):
    """Merge dims start_dim..end_dim into one: (N, 1, 28, 28) -> (N, 784) by default.

    Example:
        >>> gf.nn.Flatten()(gf.zeros(2, 1, 28, 28)).shape
        (2, 784)
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return flatten(x, self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Zero each element with probability p in training mode (scaling the rest by 1/(1-p));
    the identity in eval mode. The mask comes from the device's seeded generator.

    Example:
        >>> drop = gf.nn.Dropout(0.5)
        >>> y = drop(gf.ones(3, 3))          # zeros and twos
        >>> drop.eval()(gf.ones(3, 3))        # ones
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p!r}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
