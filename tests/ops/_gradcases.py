"""The gradient test table: one case per differentiable Function, keyed by its class name.

`test_registry.py` fails when a differentiable `Function` subclass in gradflow has no entry here,
and `test_gradients.py` gradchecks and gradgradchecks every entry in float64 over shapes drawn
by hypothesis, on every backend. Adding an op means adding a case:

    "MyOp": Case(lambda x: gf.my_op(x), unary(), ("any",)),

A case names its inputs' domains so that finite differences never straddle a kink or a pole:
    any       standard normal
    pos       uniform in [0.5, 2] (log, sqrt, a pow base)
    nonzero   |x| in [0.5, 2] with a random sign (a divisor)
    grid      k + 0.25 for integers k in [-3, 2]: at least 0.25 from 0 and from +-0.5
    half      k + 0.75: at least 0.5 from every `grid` value (maximum/minimum without ties)
    distinct  all values different, 0.37 apart (max/min reductions without ties)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import gradflow as gf
from gradflow.backend import Device, numpy_backend

from _convcases import conv_cases, conv_composites

MAX_DIMS = 3
MAX_SIDE = 3

# A second device for ToDevice without a GPU: "cuda:7" computed by NumPy. Built directly (not
# interned), so it is never confused with a real CUDA device.
FAKE_DEVICE = Device("cuda", 7, numpy_backend)


@dataclass
class Case:
    """How to gradcheck one Function.

    fn: takes the input Tensors (and the drawn keyword arguments), returns a Tensor.
    draw: a strategy giving (input shapes, keyword arguments for fn).
    domains: one domain name per input (see the module docstring).
    """

    fn: Callable
    draw: st.SearchStrategy
    domains: tuple
    check: dict = field(default_factory=dict)  # extra gradcheck arguments (eps, atol)
    gradgrad: bool = True


def make_input(domain: str, shape: tuple, rng: np.random.Generator) -> np.ndarray:
    """A float64 NumPy array of `shape` drawn from `domain`."""
    if domain == "any":
        return rng.standard_normal(shape)
    if domain == "pos":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "nonzero":
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)
    if domain == "grid":
        return rng.integers(-3, 3, shape) + 0.25
    if domain == "half":
        return rng.integers(-3, 3, shape) + 0.75
    if domain == "distinct":
        n = int(np.prod(shape, dtype=np.int64))
        return (rng.permutation(n) * 0.37 - 0.37 * n / 2).reshape(shape)
    raise ValueError(f"unknown domain {domain!r}")


# --- shape strategies ----------------------------------------------------------------------------
def unary(min_side: int = 0, min_dims: int = 0):
    """One shape, 0-d to 3-d, sides 0..3 (empty dims included unless min_side says not)."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=MAX_DIMS, min_side=min_side,
                            max_side=MAX_SIDE).map(lambda s: ((s,), {}))


def binary(num: int = 2, min_side: int = 0):
    """`num` mutually broadcastable shapes (size-1 dims, 0-d and empty dims included)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num, min_dims=0, max_dims=MAX_DIMS, min_side=min_side, max_side=MAX_SIDE
    ).map(lambda b: (tuple(b.input_shapes), {}))


@st.composite
def reduction(draw, min_side=0, keepdims=True):
    """A shape and an axis (None, an int or a tuple) with keepdims."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=MAX_DIMS, min_side=min_side,
                                  max_side=MAX_SIDE))
    nd = len(shape)
    choices = [st.none()]
    if nd:
        choices += [st.integers(-nd, nd - 1), hnp.valid_tuple_axes(nd, min_size=1)]
    axis = draw(st.one_of(*choices))
    kw = {"axis": axis}
    if keepdims:
        kw["keepdims"] = draw(st.booleans())
    return (shape,), kw


def softmax_axes(min_side=1):
    """A shape and the axes softmax normalises over: None, an int or a tuple of ints."""
    return reduction(min_side=min_side, keepdims=False)


@st.composite
def reshape_case(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=MAX_DIMS, min_side=1, max_side=MAX_SIDE))
    n = int(np.prod(shape, dtype=np.int64))
    target = draw(st.sampled_from([(n,), (1, n), (n, 1), (-1,), shape[::-1], (1,) + shape]))
    return (shape,), {"shape": target}


@st.composite
def transpose_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=MAX_DIMS, min_side=0, max_side=MAX_SIDE))
    return (shape,), {"axes": tuple(draw(st.permutations(range(len(shape)))))}


@st.composite
def _big_and_small(draw):
    # (big, small): small broadcasts to big (leading dims dropped, some dims set to 1).
    big = draw(hnp.array_shapes(min_dims=0, max_dims=MAX_DIMS, min_side=0, max_side=MAX_SIDE))
    drop = draw(st.integers(0, len(big)))
    small = tuple(1 if draw(st.booleans()) else n for n in big[drop:])
    return big, small


broadcast_to_case = _big_and_small().map(lambda bs: ((bs[1],), {"shape": bs[0]}))
sum_to_case = _big_and_small().map(lambda bs: ((bs[0],), {"shape": bs[1]}))


@st.composite
def concatenate_case(draw):
    base = draw(hnp.array_shapes(min_dims=1, max_dims=MAX_DIMS, min_side=1, max_side=MAX_SIDE))
    axis = draw(st.integers(-len(base), len(base) - 1))
    sizes = draw(st.lists(st.integers(0, MAX_SIDE), min_size=1, max_size=3))
    ax = axis % len(base)
    shapes = tuple(base[:ax] + (n,) + base[ax + 1:] for n in sizes)
    return shapes, {"axis": axis}


matmul_case = hnp.mutually_broadcastable_shapes(
    signature="(m?,n),(n,p?)->(m?,p?)", max_dims=2, min_side=1, max_side=MAX_SIDE
).map(lambda b: (tuple(b.input_shapes), {}))


@st.composite
def index_case(draw):
    """A shape and a key: basic (ints, slices, None, Ellipsis), a bool mask, or int arrays."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=MAX_DIMS, min_side=1, max_side=MAX_SIDE))
    kind = draw(st.sampled_from(["basic", "mask", "ints", "mixed"]))
    if kind == "basic":
        key = draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True))
    elif kind == "mask":
        key = draw(hnp.arrays(bool, shape))
    elif kind == "ints":  # repeated indices are likely with sides of 3: they must accumulate
        key = draw(hnp.integer_array_indices(
            shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=4)))
    else:  # a slice, then an integer array on the next axis
        idx = draw(hnp.arrays(np.int64, draw(st.integers(1, 4)),
                              elements=st.integers(-shape[-1], shape[-1] - 1)))
        key = (Ellipsis, idx) if draw(st.booleans()) else (slice(None),) * (len(shape) - 1) + (idx,)
    return (shape,), {"key": key}


@st.composite
def scatter_case(draw):
    """GetItemGrad: the gradient of x[key] for integer-array keys, as a Function of its own."""
    (shape,), kw = draw(index_case())
    x = np.zeros(shape)
    key = kw["key"]
    out_shape = x[key].shape
    return (out_shape,), {"key": key, "shape": shape}


def _index_gradient(g, key, shape):
    # GetItemGrad as a function of the upstream gradient g: the gradient of x[key] for x of
    # `shape`, taken with create_graph so that its own gradient (GetItem again) is checked too.
    with gf.enable_grad():
        x = gf.zeros(shape, dtype=g.dtype, device=g.device, requires_grad=True)
        y = x[key]
        (gx,) = gf.grad(y, x, grad_outputs=g, create_graph=True)
    return gx


def _where(a, b, cond):
    return gf.where(gf.tensor(cond, device=a.device), a, b)


@st.composite
def where_case(draw):
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=MAX_DIMS,
                                                    min_side=0, max_side=MAX_SIDE))
    cshape, ashape, bshape = shapes.input_shapes
    cond = draw(hnp.arrays(bool, cshape))
    return (ashape, bshape), {"cond": cond}


def _to_device_and_back(x):
    return (x.to(FAKE_DEVICE) * 2.0).to(x.device)


def _astype_round_trip(x):
    # float64 -> float32 -> float64: both are AsType; the float32 step loses digits, so this case
    # uses a larger eps (astype is linear, so the central difference is still exact).
    return (x.astype(gf.float32) * 3.0).astype(gf.float64)


# --- fused neural-network ops (gradflow/ops/nn.py) -----------------------------------------------
@st.composite
def linear_case(draw):
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=MAX_SIDE))
    n_in, n_out = draw(st.integers(1, MAX_SIDE)), draw(st.integers(1, MAX_SIDE))
    return (batch + (n_in,), (n_out, n_in), (n_out,)), {}


def _linear(x, w, b):
    from gradflow.ops.nn import linear
    return linear(x, w, b)


@st.composite
def cross_entropy_case(draw):
    n, c = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    target = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    return ((n, c),), {"target": target,
                       "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
                       "label_smoothing": draw(st.sampled_from([0.0, 0.1]))}


def _cross_entropy(x, target, reduction, label_smoothing):
    from gradflow.ops.nn import cross_entropy
    return cross_entropy(x, gf.tensor(target, device=x.device), reduction=reduction,
                         label_smoothing=label_smoothing)


def _cross_entropy_gradient(x, target, reduction, label_smoothing):
    # d cross_entropy / d logits as a function of x: CrossEntropy's rule, recorded.
    with gf.enable_grad():
        y = _cross_entropy(x, target, reduction, label_smoothing)
        (g,) = gf.grad(y, x, grad_outputs=gf.ones_like(y) * 0.7, create_graph=True)
    return g


@st.composite
def bce_case(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=MAX_DIMS, min_side=1, max_side=MAX_SIDE))
    target = draw(hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0)))
    return (shape,), {"target": target,
                      "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}


def _bce(x, target, reduction):
    from gradflow.ops.nn import binary_cross_entropy_with_logits
    return binary_cross_entropy_with_logits(
        x, gf.tensor(target, dtype=x.dtype, device=x.device), reduction=reduction)


def _dropout(x):
    # Reseeded on every call: gradcheck evaluates fn many times and needs the same mask.
    from gradflow.ops.nn import dropout
    gf.manual_seed(3)
    return dropout(x, p=0.4)


CASES: dict[str, Case] = {
    # elementwise arithmetic, broadcasting
    "Add": Case(lambda a, b: a + b, binary(), ("any", "any")),
    "Sub": Case(lambda a, b: a - b, binary(), ("any", "any")),
    "Mul": Case(lambda a, b: a * b, binary(), ("any", "any")),
    "Div": Case(lambda a, b: a / b, binary(), ("any", "nonzero")),
    "Pow": Case(lambda a, b: a ** b, binary(), ("pos", "any")),
    "Neg": Case(lambda x: -x, unary(), ("any",)),
    # unary functions
    "Abs": Case(lambda x: abs(x), unary(), ("grid",)),
    "Exp": Case(gf.exp, unary(), ("any",)),
    "Log": Case(gf.log, unary(), ("pos",)),
    "Sqrt": Case(gf.sqrt, unary(), ("pos",)),
    "Sin": Case(gf.sin, unary(), ("any",)),
    "Cos": Case(gf.cos, unary(), ("any",)),
    "Tanh": Case(gf.tanh, unary(), ("any",)),
    "Sigmoid": Case(gf.sigmoid, unary(), ("any",)),
    "Relu": Case(gf.relu, unary(), ("grid",)),
    "LeakyRelu": Case(lambda x: gf.leaky_relu(x, 0.1), unary(), ("grid",)),
    "Gelu": Case(gf.gelu, unary(), ("any",)),
    # selections
    "Maximum": Case(gf.maximum, binary(), ("grid", "half")),
    "Minimum": Case(gf.minimum, binary(), ("half", "grid")),
    "Clip": Case(lambda x: gf.clip(x, -0.5, 0.5), unary(), ("grid",)),
    "Where": Case(_where, where_case(), ("any", "any")),
    # reductions
    "Sum": Case(gf.sum, reduction(min_side=0), ("any",)),
    "Mean": Case(gf.mean, reduction(min_side=1), ("any",)),
    "Max": Case(gf.max, reduction(min_side=1), ("distinct",)),
    "Min": Case(gf.min, reduction(min_side=1), ("distinct",)),
    "LogSumExp": Case(gf.logsumexp, reduction(min_side=1), ("any",)),
    "Softmax": Case(gf.softmax, softmax_axes(), ("any",)),
    "LogSoftmax": Case(gf.log_softmax, softmax_axes(), ("any",)),
    # shape
    "Reshape": Case(lambda x, shape: gf.reshape(x, shape), reshape_case(), ("any",)),
    "Transpose": Case(lambda x, axes: gf.transpose(x, axes), transpose_case(), ("any",)),
    "BroadcastTo": Case(gf.broadcast_to, broadcast_to_case, ("any",)),
    "SumTo": Case(gf.sum_to, sum_to_case, ("any",)),
    "Concatenate": Case(lambda *xs, axis: gf.concatenate(xs, axis), concatenate_case(),
                        ("any", "any", "any")),
    "GetItem": Case(lambda x, key: x[key], index_case(), ("any",)),
    "GetItemGrad": Case(_index_gradient, scatter_case(), ("any",)),
    "MatMul": Case(gf.matmul, matmul_case, ("any", "any")),
    # dtype and device moves
    "AsType": Case(_astype_round_trip, unary(), ("any",), check={"eps": 1e-2, "atol": 1e-4}),
    "ToDevice": Case(_to_device_and_back, unary(), ("any",)),
    # fused neural-network ops
    "Linear": Case(_linear, linear_case(), ("any", "any", "any")),
    "CrossEntropy": Case(_cross_entropy, cross_entropy_case(), ("any",)),
    "BinaryCrossEntropyWithLogits": Case(_bce, bce_case(), ("any",)),
    "Dropout": Case(_dropout, unary(), ("any",)),
    # convolution and pooling (their geometry strategies are in _convcases.py)
    **conv_cases(Case),
}


# --- composites: ops built from the Functions above, checked as wholes -------------------------
# They have no gradient rule of their own, but a wrong composition (an axis off by one, a
# missing keepdims) is a wrong gradient all the same: each is swept like a Function.
@st.composite
def var_case(draw):
    """At least 2 elements in every reduced slice: std has a kink where the variance is 0."""
    (shape,), kw = draw(reduction(min_side=2).filter(lambda c: len(c[0][0]) > 0))
    return (shape,), {**kw, "ddof": draw(st.sampled_from([0, 1]))}


@st.composite
def stack_case(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=MAX_DIMS - 1, min_side=0,
                                  max_side=MAX_SIDE))
    n = draw(st.integers(1, 3))
    return (shape,) * n, {"axis": draw(st.integers(-len(shape) - 1, len(shape)))}


@st.composite
def split_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=MAX_DIMS, min_side=1, max_side=4))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    n = shape[axis]
    sections = draw(st.one_of(
        st.sampled_from([d for d in range(1, n + 1) if n % d == 0]),
        st.lists(st.integers(0, n), max_size=3).map(sorted)))
    return (shape,), {"sections": sections, "axis": axis}


def _split(x, sections, axis):
    # Every part, weighted differently, so a part routed to the wrong place shows.
    return gf.stack([p.sum() * (i + 1) for i, p in enumerate(gf.split(x, sections, axis))])


@st.composite
def swapaxes_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=MAX_DIMS, min_side=0, max_side=MAX_SIDE))
    axes = st.integers(-len(shape), len(shape) - 1)
    return (shape,), {"axis1": draw(axes), "axis2": draw(axes)}


@st.composite
def squeeze_case(draw):
    shape = tuple(draw(st.lists(st.sampled_from([1, 1, 2, 3]), max_size=MAX_DIMS)))
    ones = [i for i, n in enumerate(shape) if n == 1]
    axis = draw(st.one_of(st.none(), st.sampled_from(ones))) if ones else None
    return (shape,), {"axis": axis}


@st.composite
def unsqueeze_case(draw):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=MAX_DIMS - 1, min_side=0,
                                  max_side=MAX_SIDE))
    return (shape,), {"axis": draw(st.integers(-len(shape) - 1, len(shape)))}


@st.composite
def flatten_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=MAX_DIMS, min_side=0, max_side=MAX_SIDE))
    start = draw(st.integers(0, len(shape) - 1))
    end = draw(st.integers(start, len(shape) - 1))
    return (shape,), {"start_axis": start, "end_axis": end}


@st.composite
def layer_norm_case(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=MAX_DIMS, min_side=2, max_side=MAX_SIDE))
    k = draw(st.integers(1, len(shape)))
    return (shape, shape[-k:], shape[-k:]), {}


def _layer_norm(x, w, b):
    return gf.nn.functional.layer_norm(x, x.shape[x.ndim - w.ndim:], w, b)


def _mse(a, b, reduction):
    return gf.nn.functional.mse_loss(a, b, reduction=reduction)


COMPOSITES: dict[str, Case] = {
    "var": Case(lambda x, **kw: gf.var(x, **kw), var_case(), ("any",)),
    # cross_entropy's first derivative as a function of the logits: its rule, recorded
    "cross_entropy gradient": Case(_cross_entropy_gradient, cross_entropy_case(), ("any",)),
    "std": Case(lambda x, **kw: gf.std(x, **kw), var_case(), ("any",)),
    "stack": Case(lambda *xs, axis: gf.stack(xs, axis), stack_case(), ("any",)),
    "split": Case(_split, split_case(), ("any",)),
    "swapaxes": Case(gf.swapaxes, swapaxes_case(), ("any",)),
    "permute": Case(lambda x, axes: gf.permute(x, axes), transpose_case(), ("any",)),
    "squeeze": Case(gf.squeeze, squeeze_case(), ("any",)),
    "unsqueeze": Case(gf.unsqueeze, unsqueeze_case(), ("any",)),
    "flatten": Case(gf.flatten, flatten_case(), ("any",)),
    "layer_norm": Case(_layer_norm, layer_norm_case(), ("any", "any", "any")),
    "mse_loss": Case(_mse, binary(min_side=1).map(lambda c: ((c[0][0], c[0][0]), {})).flatmap(
        lambda c: st.sampled_from(["mean", "sum", "none"]).map(
            lambda r: (c[0], {"reduction": r}))), ("any", "any")),
    **conv_composites(Case),
}


def inputs_for(case: Case, shapes: tuple, seed: int, device) -> list:
    """The float64 input Tensors (requires_grad) for `case` at `shapes`."""
    rng = np.random.default_rng(seed)
    domains = case.domains
    if len(domains) < len(shapes):  # variadic (concatenate): repeat the last domain
        domains = domains + (domains[-1],) * (len(shapes) - len(domains))
    return [gf.tensor(make_input(d, s, rng), dtype=gf.float64, device=device,
                      requires_grad=True) for d, s in zip(domains, shapes)]
