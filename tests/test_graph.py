"""gf.graph: the recorded graph in forward (topological) order, by Kahn's algorithm."""
import pytest
from hypothesis import given, strategies as st

import gradflow as gf
from gradflow.graph import GraphFreedError


def scalar(v, device, name=None, requires_grad=True):
    t = gf.tensor(v, dtype=gf.float64, device=device, requires_grad=requires_grad)
    t.name = name
    return t


def assert_topological(tensor, order):
    """Every recorded function comes after the functions that made its inputs."""
    pos = {fn: i for i, fn in enumerate(order)}
    assert len(pos) == len(order), "a function is listed twice"
    for fn in order:
        for prev in gf.graph.producers(fn):
            assert pos[prev] < pos[fn], f"{prev.name} listed after its consumer {fn.name}"
    assert order[-1] is tensor.grad_fn


def test_chain_rule_expression_in_reading_order(device):
    a, b, c, f = (scalar(v, device, n) for v, n in [(2., "a"), (-3., "b"), (10., "c"),
                                                     (-2., "f")])
    e = a * b
    d = e + c
    L = d * f
    order = gf.graph.topological_order(L)
    assert [fn.name for fn in order] == ["Mul", "Add", "Mul"]
    assert order[0] is e.grad_fn and order[1] is d.grad_fn and order[2] is L.grad_fn


def test_independent_branches_follow_left_to_right_reading(device):
    x1, w1, x2, w2 = (scalar(v, device) for v in (2., -3., 0., 1.))
    p, q = x2 * w2, x1 * w1          # computed in the other order ...
    o = (q + p).tanh()               # ... but read left to right: q first
    order = gf.graph.topological_order(o)
    assert [fn.name for fn in order] == ["Mul", "Mul", "Add", "Tanh"]
    assert order[0] is q.grad_fn and order[1] is p.grad_fn


def test_fan_out_and_diamond(device):
    x = scalar(1.5, device)
    h = x.exp()
    y = h * h + h.sin()              # h feeds three edges (two into Mul)
    order = gf.graph.topological_order(y)
    assert_topological(y, order)
    assert sum(fn is h.grad_fn for fn in order) == 1
    assert gf.graph.producers(y.grad_fn.inputs[0].grad_fn) == [h.grad_fn, h.grad_fn]


def test_leaf_and_untracked_tensors_have_no_ops(device):
    x = scalar(1.0, device)
    assert gf.graph.topological_order(x) == []
    assert gf.graph.kahn_steps(x) == []
    data = gf.tensor([1.0, 2.0], device=device)
    assert gf.graph.topological_order(data * 2) == []
    with pytest.raises(TypeError, match="Tensor"):
        gf.graph.topological_order([1.0])


def test_kahn_steps_report_released_and_waiting(device):
    x1, w1, x2, w2 = (scalar(v, device) for v in (2., -3., 0., 1.))
    m1, m2 = x1 * w1, x2 * w2
    s = m1 + m2
    o = s.tanh()
    steps = gf.graph.kahn_steps(o)
    assert [k.index for k in steps] == [1, 2, 3, 4]
    assert [k.node for k in steps] == [m1.grad_fn, m2.grad_fn, s.grad_fn, o.grad_fn]
    assert steps[0].released == () and steps[0].waiting == (m2.grad_fn,)
    assert steps[1].released == (s.grad_fn,) and steps[1].waiting == (s.grad_fn,)
    assert steps[2].released == (o.grad_fn,)
    assert steps[3].released == () and steps[3].waiting == ()


def test_deep_chain_is_iterative(device):
    x = scalar(1.0, device)
    y = x
    n = 100_000
    for _ in range(n):
        y = y + 1.0
    order = gf.graph.topological_order(y)
    assert len(order) == n and order[-1] is y.grad_fn and order[0].inputs[0] is x


def test_freed_graph_is_named(device):
    x = scalar(2.0, device)
    y = (x * 3).tanh()
    y.backward()
    with pytest.raises(GraphFreedError, match="retain_graph=True"):
        gf.graph.topological_order(y)
    z = (x * 3).tanh()
    z.backward(retain_graph=True)
    assert [fn.name for fn in gf.graph.topological_order(z)] == ["Mul", "Tanh"]


def test_leaves_in_first_use_order_including_data(device):
    w = scalar([1.0, 2.0], device, "w")
    b = scalar(0.5, device, "b")
    X = gf.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=gf.float64, device=device)
    loss = ((X @ w + b) * 2.0).sum() + w.sum()
    leaves = gf.graph.leaves(loss)
    assert len(leaves) == 3
    assert leaves[0] is X and leaves[1] is w and leaves[2] is b
    assert gf.graph.leaves(w)[0] is w


def test_label_uses_output_name(device):
    a = scalar(1.0, device)
    e = a * 2
    assert gf.graph.label(e.grad_fn) == "Mul"
    e.name = "e"
    assert gf.graph.label(e.grad_fn) == "e = Mul"


def test_order_is_the_reverse_of_the_engines_walk(device):
    # Hooks fire when the engine reaches a tensor: that is reverse topological order.
    x = scalar(0.3, device)
    a = x.exp()
    b = a * x
    c = b.sin() + a
    seen = []
    for t in (a, b, c):
        t.register_hook(lambda g, t=t: seen.append(t.grad_fn))
    c.backward(retain_graph=True)
    order = gf.graph.topological_order(c)
    pos = {fn: i for i, fn in enumerate(order)}
    assert [pos[fn] for fn in seen] == sorted((pos[fn] for fn in seen), reverse=True)


OPS = ["add", "mul", "sub", "tanh", "exp_small", "square"]


@given(st.lists(st.tuples(st.sampled_from(OPS), st.integers(0, 100), st.integers(0, 100)),
                min_size=1, max_size=30))
def test_random_graphs_are_ordered_and_complete(program):
    xs = [gf.tensor(0.1 * (i + 1), dtype=gf.float64, requires_grad=True) for i in range(3)]
    values = list(xs)
    for op, i, j in program:
        a, b = values[i % len(values)], values[j % len(values)]
        out = {"add": lambda: a + b, "mul": lambda: a * b, "sub": lambda: a - b,
               "tanh": lambda: a.tanh(), "exp_small": lambda: (a * 0.01).exp(),
               "square": lambda: a * a}[op]()
        values.append(out)
    y = values[-1]
    order = gf.graph.topological_order(y)
    assert_topological(y, order)
    # Complete: every function reachable from y is listed.
    reachable, stack = set(), [y.grad_fn]
    while stack:
        fn = stack.pop()
        if fn not in reachable:
            reachable.add(fn)
            stack.extend(gf.graph.producers(fn))
    assert set(order) == reachable
