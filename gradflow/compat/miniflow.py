"""MiniFlow (Udacity's teaching library) on gradflow: define a graph of nodes, then run it.

MiniFlow's program shape is kept: nodes are connected first (`Linear(X, W, b)` only records the
edges), `topological_sort(feed_dict)` orders them with Kahn's algorithm and loads the Inputs,
`forward_and_backward(graph)` calls every node's `forward` in that order and every `backward` in
reverse, and `sgd_update` moves the trainables along `-gradient`. Each node's `value` is an
array and its `gradients` maps each inbound node (and an Input itself) to d cost / d that node.

What runs underneath is gradflow: a node's `forward` computes its value with gradflow ops on
fresh leaf tensors made from its inbound nodes' values, and its `backward` asks gradflow's tape
(`gradflow.grad`) for the vector-Jacobian product with the gradient sent back by its outbound
nodes, so no derivative is written by hand here. The arrays are the device's (NumPy on the CPU,
CuPy on CUDA: `configure(device="cuda")`).

Where this differs from MiniFlow, and why:

- `topological_sort` takes nodes from a first-in-first-out queue instead of popping a `set`, so
  the order is the same on every run (MiniFlow's varies from run to run among ready nodes).
- Values are converted to the configured dtype (float64 by default, NumPy's) and device when an
  Input runs forward; on the CPU a float64 NumPy array is used as is, so, as in MiniFlow,
  `sgd_update` changes the very arrays given in `feed_dict`.
- A gradient has the shape of the node it belongs to. MiniFlow's MSE returns the gradient for a
  1-D `y` as a column (m, 1); here it is (m,), like `y`.
- Sigmoid is computed as 0.5 tanh(x/2) + 0.5, equal to 1 / (1 + exp(-x)) up to rounding, without
  overflow warnings for large negative x.
- An inbound node used twice by one node (`Add(x, x)`) gets the sum of both gradients; MiniFlow
  keeps only one of them.
- Every node class takes an optional keyword `name=` used when printing the graph.
- `backward` may be called again without a new `forward`, as in MiniFlow: each node keeps its
  small local graph until the next `forward`.

Example:
    >>> from gradflow.compat.miniflow import *
    >>> X, W, b = Input(), Input(), Input()
    >>> f = Linear(X, W, b)
    >>> g = Sigmoid(f)
    >>> graph = topological_sort({X: [[-1., -2.], [-1, -2]], W: [[2., -3], [2., -3]],
    ...                           b: [-3., -5]})
    >>> forward_pass(g, graph)               # array([[1.23e-04, 9.82e-01], ...])
"""
from __future__ import annotations

from collections import deque

import gradflow as gf
from gradflow.graph import KahnStep
from gradflow.tensor import Tensor

__all__ = [
    "Node", "Input", "Add", "Mul", "Linear", "Sigmoid", "MSE", "TapeNode", "topological_sort",
    "forward_pass", "forward_and_backward", "sgd_update", "configure",
]

_settings = {"device": None, "dtype": gf.float64}


def configure(device=None, dtype=None) -> None:
    """Choose the device ('cpu', 'cuda', ...) and floating-point dtype of every node's value.

    Args:
        device: a device spec; None keeps the current one (at first gradflow's default device).
        dtype: a floating-point dtype; None keeps the current one (at first float64).
    """
    if device is not None:
        _settings["device"] = gf.device(device)
    if dtype is not None:
        dt = gf.dtype(dtype)
        if dt.kind != "f":
            raise TypeError(f"miniflow.configure: dtype must be floating point, got {dt}")
        _settings["dtype"] = dt


def _device():
    return _settings["device"] or gf.default_device()


def _as_array(value, who: str):
    """`value` as an array of the configured dtype on the configured device."""
    if value is None:
        raise ValueError(f"{who} has no value: give it one in feed_dict (or set .value) before "
                         "running the graph")
    dev, dt = _device(), _settings["dtype"]
    if isinstance(value, Tensor):
        value = value.detach()
        return value.to(dev, dt).data
    return gf.as_tensor(value, dtype=dt, device=dev).data


class Node:
    """A vertex of the graph: remembers its inbound and outbound nodes, holds `value` and
    `gradients`.

    Subclasses implement `forward()` (set `self.value` from the inbound nodes' values) and
    `backward()` (set `self.gradients[n]` for each inbound node n from the outbound nodes'
    `gradients[self]`). Built-in nodes derive from `TapeNode`, which does both with gradflow.

    Args:
        inbound_nodes: the nodes whose values this node reads.
        name: an optional name for printing.
    """

    def __init__(self, inbound_nodes=(), name: str | None = None) -> None:
        self.inbound_nodes = list(inbound_nodes)
        for n in self.inbound_nodes:
            if not isinstance(n, Node):
                raise TypeError(f"{type(self).__name__}: inbound nodes must be Nodes, got "
                                f"{type(n).__name__}")
        self.outbound_nodes: list = []
        self.value = None
        self.gradients: dict = {}
        self.name = name
        for n in self.inbound_nodes:
            n.outbound_nodes.append(self)

    def forward(self) -> None:
        """Compute `self.value` from the inbound nodes' values."""
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self) -> None:
        """Fill `self.gradients` from the outbound nodes' gradients."""
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})" if self.name else type(self).__name__


class Input(Node):
    """A value fed from outside: data, targets, or a trainable parameter (see `sgd_update`).

    Its gradient `gradients[self]` is the sum of what its outbound nodes send back.
    """

    def __init__(self, name: str | None = None) -> None:
        Node.__init__(self, name=name)

    def forward(self, value=None) -> None:
        """Keep (or set) the value, as an array on the configured device."""
        if value is not None:
            self.value = value
        self.value = _as_array(self.value, repr(self))

    def backward(self) -> None:
        """d cost / d self: the sum of the gradients the outbound nodes computed for it."""
        g = 0
        for n in dict.fromkeys(self.outbound_nodes):  # a node reading self twice sent the sum
            g = g + n.gradients[self]
        self.gradients = {self: g}


class TapeNode(Node):
    """A node whose `forward` is written in gradflow ops; `backward` comes from gradflow's tape.

    Subclasses implement `compute(*inputs)`, taking one Tensor per inbound node and returning a
    Tensor. Write a new MiniFlow node this way and its gradient needs no code:

        >>> class Square(TapeNode):
        ...     def __init__(self, x, name=None):
        ...         TapeNode.__init__(self, [x], name=name)
        ...     def compute(self, x):
        ...         return x * x
    """

    def compute(self, *inputs: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__}.compute")

    def forward(self) -> None:
        """value = compute(inbound values), recorded on a small graph of this node's own."""
        # Fresh leaves cut the tape at this node's inputs: backward then does only this node's
        # share of the chain rule and hands the rest on through `gradients`, as MiniFlow does.
        self._inputs = [gf.as_tensor(_as_array(n.value, repr(n)), device=_device())
                        .detach().requires_grad_(True) for n in self.inbound_nodes]
        with gf.enable_grad():
            self.output = self.compute(*self._inputs)
        self.value = self.output.data

    def backward(self) -> None:
        """gradients[n] = (sum of the outbound gradients) times d value / d n, for each n."""
        if getattr(self, "output", None) is None:
            raise RuntimeError(f"{self!r}.backward() called before forward()")
        out = self.output
        if self.outbound_nodes:
            g = 0
            for n in dict.fromkeys(self.outbound_nodes):
                g = g + n.gradients[self]
            gy = gf.as_tensor(_as_array(g, f"the gradient sent to {self!r}"), device=out.device)
            if gy.shape != out.shape:
                raise ValueError(f"{self!r}: the outbound nodes sent a gradient of shape "
                                 f"{gy.shape} for a value of shape {out.shape}")
        else:
            gy = gf.ones_like(out)  # the cost: d cost / d cost = 1
        grads = gf.grad(out, self._inputs, grad_outputs=gy, retain_graph=True,
                        allow_unused=True)
        self.gradients = {}
        for n, x, g in zip(self.inbound_nodes, self._inputs, grads):
            arr = g.data if g is not None else x.device.xp.zeros_like(x.data)
            self.gradients[n] = arr if n not in self.gradients else self.gradients[n] + arr


class Add(TapeNode):
    """The sum of its inbound nodes' values (MiniFlow's first lesson)."""

    def __init__(self, *inputs, name: str | None = None) -> None:
        TapeNode.__init__(self, inputs, name=name)

    def compute(self, *xs):
        total = xs[0]
        for x in xs[1:]:
            total = total + x
        return total


class Mul(TapeNode):
    """The product of its inbound nodes' values."""

    def __init__(self, *inputs, name: str | None = None) -> None:
        TapeNode.__init__(self, inputs, name=name)

    def compute(self, *xs):
        total = xs[0]
        for x in xs[1:]:
            total = total * x
        return total


class Linear(TapeNode):
    """X @ W + b, for X of shape (m, n), W (n, k), b (k,).

    MiniFlow's earlier form, `Linear(inputs, weights, bias)` with lists of scalar nodes, computing
    sum(x_i * w_i) + b, is accepted too.
    """

    def __init__(self, X, W, b, name: str | None = None) -> None:
        self._lists = isinstance(X, (list, tuple))
        if self._lists:
            if not isinstance(W, (list, tuple)) or len(X) != len(W):
                raise ValueError("Linear(inputs, weights, bias): inputs and weights must be "
                                 f"lists of the same length, got {len(X)} inputs and "
                                 f"{len(W) if isinstance(W, (list, tuple)) else W!r}")
            self._n = len(X)
            TapeNode.__init__(self, list(X) + list(W) + [b], name=name)
        else:
            TapeNode.__init__(self, [X, W, b], name=name)

    def compute(self, *xs):
        if self._lists:
            n = self._n
            total = xs[-1]
            for x, w in zip(xs[:n], xs[n:2 * n]):
                total = total + x * w
            return total
        X, W, b = xs
        if X.ndim != 2 or W.ndim != 2 or X.shape[1] != W.shape[0]:
            raise ValueError(f"{self!r}: X @ W needs X of shape (m, n) and W of shape (n, k), "
                             f"got X {X.shape} and W {W.shape}")
        return X @ W + b


class Sigmoid(TapeNode):
    """1 / (1 + exp(-x)), elementwise."""

    def __init__(self, node, name: str | None = None) -> None:
        TapeNode.__init__(self, [node], name=name)

    def compute(self, x):
        return gf.sigmoid(x)


class MSE(TapeNode):
    """The mean squared error mean((y - a)^2) of targets y and predictions a (as columns)."""

    def __init__(self, y, a, name: str | None = None) -> None:
        TapeNode.__init__(self, [y, a], name=name)

    def compute(self, y, a):
        if y.size != a.size:
            raise ValueError(f"{self!r}: targets y of shape {y.shape} and predictions a of "
                             f"shape {a.shape} have different numbers of elements")
        self.m = y.shape[0] if y.ndim else 1
        diff = y.reshape(-1, 1) - a.reshape(-1, 1)
        self.diff = diff.data
        return (diff * diff).mean()


def topological_sort(feed_dict: dict, on_step=None) -> list:
    """Order the graph reachable from `feed_dict`'s Inputs with Kahn's algorithm; load the Inputs.

    Args:
        feed_dict: maps each Input node to its value (an array, a list, a Tensor).
        on_step: optional callable receiving a `gradflow.graph.KahnStep` for every node taken:
            the node, the nodes it released (their last inbound node is done) and the nodes
            still waiting. The lessons print these.

    Returns:
        The nodes, each after all of its inbound nodes (a list to pass to forward_and_backward).

    Raises:
        ValueError: a node reachable from the Inputs reads a node that no Input of feed_dict
            leads to (it could never run), or a key of feed_dict is not an Input.
    """
    for n in feed_dict:
        if not isinstance(n, Input):
            raise ValueError(f"feed_dict keys must be Input nodes, got {n!r}")
    inputs = list(feed_dict)
    indegree: dict = {}
    queue = list(inputs)
    seen = set(inputs)
    while queue:  # discover every node reachable from the inputs
        n = queue.pop()
        indegree.setdefault(n, 0)
        for m in n.outbound_nodes:
            indegree[m] = indegree.get(m, 0) + 1
            if m not in seen:
                seen.add(m)
                queue.append(m)
    for m in indegree:
        missing = [i for i in m.inbound_nodes if i not in indegree]
        if missing:
            raise ValueError(f"topological_sort: {m!r} reads {missing!r}, which no Input of "
                             "feed_dict leads to; give every Input a value in feed_dict")
    ready = deque(n for n in inputs if indegree[n] == 0)
    order = []
    while ready:
        n = ready.popleft()
        if isinstance(n, Input) and n in feed_dict:
            n.value = feed_dict[n]
        order.append(n)
        released = []
        for m in n.outbound_nodes:
            indegree[m] -= 1
            if indegree[m] == 0:
                released.append(m)
                ready.append(m)
        if on_step is not None:
            on_step(KahnStep(len(order), n, tuple(released), tuple(ready)))
    if len(order) != len(indegree):
        stuck = [m for m in indegree if indegree[m] > 0]
        raise ValueError(f"topological_sort: the graph has a cycle through {stuck!r}")
    return order


def forward_pass(output_node, sorted_nodes=None):
    """Run `forward` on every node of `sorted_nodes` in order; return `output_node.value`.

    `forward_pass(graph)` (one list) runs the graph and returns its last node's value.
    """
    if sorted_nodes is None:
        sorted_nodes, output_node = output_node, output_node[-1]
    for n in sorted_nodes:
        n.forward()
    return output_node.value


def forward_and_backward(graph: list) -> None:
    """One forward pass in `graph`'s order, then one backward pass in the reverse order."""
    for n in graph:
        n.forward()
    for n in graph[::-1]:
        n.backward()


def sgd_update(trainables: list, learning_rate: float = 1e-2) -> None:
    """Stochastic gradient descent: value -= learning_rate * d cost / d value, in place.

    Args:
        trainables: the Input nodes to update (weights and biases).
        learning_rate: the step size.
    """
    for t in trainables:
        if t not in t.gradients:
            raise RuntimeError(f"sgd_update: {t!r} has no gradient; run "
                               "forward_and_backward(graph) first")
        t.value -= learning_rate * t.gradients[t]
