"""The recorded graph behind a tensor, in forward (topological) order: what the engine walks.

`loss.backward()` visits the recorded Functions in reverse topological order. This module
exposes that order, forward, so a learner can print it, draw it (`gradflow.viz`) and compare it
with MiniFlow's `topological_sort`. It uses Kahn's algorithm, the one the engine and MiniFlow use:
count each function's recorded inputs, start with the functions that only read leaves, and
release a function once every function feeding it has been taken. All walks are iterative, so a
chain of 100,000 ops works.
"""
from __future__ import annotations

import heapq
from typing import NamedTuple

from .autograd import Function
from .tensor import Tensor

__all__ = ["topological_order", "kahn_steps", "KahnStep", "leaves", "producers", "label",
           "GraphFreedError"]


class GraphFreedError(RuntimeError):
    """The graph was released by a backward pass, so its structure can no longer be read."""


class KahnStep(NamedTuple):
    """One step of Kahn's algorithm, as `kahn_steps` reports it.

    Attributes:
        index: 1 for the first function taken, 2 for the next, ...
        node: the Function taken at this step (all of its recorded inputs are computed).
        released: the functions whose last missing input was `node`: they became ready now.
        waiting: the ready functions not yet taken after this step, in the order they will be.
    """

    index: int
    node: Function
    released: tuple
    waiting: tuple


def _freed(fn: Function) -> GraphFreedError:
    return GraphFreedError(
        f"the graph through {fn.name} was freed by backward(), so it can no longer be walked; "
        "call backward(retain_graph=True) to keep it, or read the graph before backward"
    )


def producers(fn: Function) -> list:
    """The recorded Functions that made `fn`'s tensor inputs, one per edge, in argument order.

    An input used twice (x * x) appears twice: the engine sends a gradient along each edge.

    Args:
        fn: a recorded Function (a tensor's `grad_fn`).

    Returns:
        A list of Functions (leaves and constants are not listed).

    Example:
        >>> y = (x * 2).exp()
        >>> gf.graph.producers(y.grad_fn)            # [the Mul]
    """
    if fn.inputs is None:
        raise _freed(fn)
    return [x.grad_fn for x in fn.inputs
            if isinstance(x, Tensor) and x.requires_grad and x.grad_fn is not None]


def _reading_order(root: Function) -> dict:
    """Rank every function reachable from `root` by an iterative post-order walk.

    The rank breaks ties among ready functions: inputs are visited left to right, so an
    expression is reported in the order one reads it (a*b before c*d in a*b + c*d).
    """
    rank: dict = {}
    seen = {root}
    stack = [(root, iter(producers(root)))]
    while stack:
        fn, it = stack[-1]
        for prev in it:
            if prev not in seen:
                seen.add(prev)
                stack.append((prev, iter(producers(prev))))
                break
        else:
            stack.pop()
            rank[fn] = len(rank)
    return rank


def kahn_steps(tensor: Tensor) -> list:
    """Kahn's algorithm on the graph that made `tensor`, one `KahnStep` per recorded Function.

    Each function's in-degree is the number of its inputs made by other recorded functions.
    Functions with in-degree 0 (they only read leaves and constants) start ready; taking one
    lowers the in-degree of every function that reads it, and those reaching 0 become ready.
    Among ready functions the one met first when reading the expression left to right goes first.

    Args:
        tensor: the output of a recorded computation (for example a loss).

    Returns:
        A list of KahnStep, in forward order; empty when `tensor` was not made by a recorded op.

    Raises:
        GraphFreedError: backward() already released the graph (use retain_graph=True).

    Example:
        >>> for step in gf.graph.kahn_steps(loss):
        ...     print(step.index, step.node.name, [f.name for f in step.released])
    """
    return _kahn(tensor, trace=True)


def _kahn(tensor, trace: bool) -> list:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"expected a Tensor, got {type(tensor).__name__}")
    root = tensor.grad_fn
    if root is None:
        return []
    rank = _reading_order(root)
    indegree = {fn: 0 for fn in rank}
    consumers: dict = {fn: [] for fn in rank}
    for fn in rank:
        for prev in producers(fn):
            indegree[fn] += 1
            consumers[prev].append(fn)
    ready = [(rank[fn], fn) for fn, n in indegree.items() if n == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        _, fn = heapq.heappop(ready)
        released = []
        for nxt in consumers[fn]:
            indegree[nxt] -= 1
            if indegree[nxt] == 0:
                released.append(nxt)
                heapq.heappush(ready, (rank[nxt], nxt))
        if trace:
            # Sorting the waiting list costs time on wide graphs: only the teaching view pays it.
            out.append(KahnStep(len(out) + 1, fn, tuple(released),
                                tuple(f for _, f in sorted(ready, key=lambda r: r[0]))))
        else:
            out.append(fn)
    return out


def topological_order(tensor: Tensor) -> list:
    """The recorded Functions that made `tensor`, in forward order (each after its inputs).

    This is the order the forward pass ran in (up to ties between independent branches);
    backward visits the same functions in the reverse order. Computed with Kahn's algorithm,
    iteratively, so very deep graphs work.

    Args:
        tensor: the output of a recorded computation.

    Returns:
        A list of Functions; the last one is `tensor.grad_fn`. Empty for a leaf.

    Raises:
        GraphFreedError: backward() already released the graph (use retain_graph=True).

    Example:
        >>> a = gf.tensor(2.0, requires_grad=True)
        >>> y = (a * 3).tanh()
        >>> [fn.name for fn in gf.graph.topological_order(y)]
        ['Mul', 'Tanh']
    """
    return _kahn(tensor, trace=False)


def leaves(tensor: Tensor) -> list:
    """The leaf tensors (inputs not made by a recorded op) the graph of `tensor` reads.

    Listed once each, in the order the forward computation first reads them. Leaves that do not
    require a gradient (data, targets) are included; Python numbers are not.

    Example:
        >>> [t.name for t in gf.graph.leaves(loss)]
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"leaves needs a Tensor, got {type(tensor).__name__}")
    if tensor.grad_fn is None:
        return [tensor]
    seen: set = set()
    out = []
    for fn in topological_order(tensor):
        for x in fn.inputs:
            if isinstance(x, Tensor) and x.grad_fn is None and id(x) not in seen:
                seen.add(id(x))
                out.append(x)
    return out


def label(fn: Function) -> str:
    """A short readable name for a recorded Function: 'Mul', or 'e = Mul' when its output is named.

    Example:
        >>> e = a * b; e.name = "e"
        >>> gf.graph.label(e.grad_fn)
        'e = Mul'
    """
    out = fn.output
    name = getattr(out, "name", None) if out is not None else None
    return f"{name} = {fn.name}" if name else fn.name
