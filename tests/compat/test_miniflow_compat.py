"""gradflow.compat.miniflow: MiniFlow's nodes and loop, on gradflow's tape."""
import numpy as np
import pytest

import gradflow as gf
from gradflow.compat import miniflow as mf
from gradflow.compat.miniflow import (MSE, Add, Input, Linear, Mul, Node, Sigmoid, TapeNode,
                                      forward_and_backward, forward_pass, sgd_update,
                                      topological_sort)


@pytest.fixture(autouse=True)
def _restore_settings():
    # MiniFlow's lessons feed NumPy arrays and compare node values with NumPy's: they run on
    # the CPU whatever GRADFLOW_DEVICE is; a test about another device configures it.
    saved = dict(mf._settings)
    mf.configure(device="cpu")
    yield
    mf._settings.update(saved)


def host(a):
    return gf.as_tensor(a).numpy()


# --- MiniFlow's lesson exercises, with the outputs the lessons print -----------------------------
def test_lesson_add_and_mul():
    x, y, z = Input(), Input(), Input()
    f = Add(x, y, z)
    assert float(forward_pass(f, topological_sort({x: 4, y: 5, z: 10}))) == 19.0
    u, v = Input(), Input()
    g = Mul(u, v)
    assert float(forward_pass(g, topological_sort({u: 4, v: 5}))) == 20.0


def test_lesson_linear_with_lists():
    inputs, weights, bias = [Input(), Input(), Input()], [Input(), Input(), Input()], Input()
    f = Linear(inputs, weights, bias)
    feed = {inputs[0]: 6, weights[0]: 0.5, inputs[1]: 14, weights[1]: 0.25,
            inputs[2]: 3, weights[2]: 1.4, bias: 2}
    assert float(forward_pass(f, topological_sort(feed))) == pytest.approx(12.7)
    with pytest.raises(ValueError, match="same length"):
        Linear(inputs, weights[:2], bias)


def test_lesson_linear_matrix_and_sigmoid():
    X, W, b = Input(), Input(), Input()
    f = Linear(X, W, b)
    g = Sigmoid(f)
    graph = topological_sort({X: np.array([[-1., -2.], [-1, -2]]),
                              W: np.array([[2., -3], [2., -3]]), b: np.array([-3., -5])})
    np.testing.assert_allclose(forward_pass(f, graph), [[-9., 4.], [-9., 4.]])
    np.testing.assert_allclose(forward_pass(g, graph),
                               [[1.23394576e-04, 9.82013790e-01]] * 2, rtol=1e-8)
    assert forward_pass(graph) is g.value      # the one-list form


def test_lesson_mse():
    y, a = Input(), Input()
    cost = MSE(y, a)
    graph = topological_sort({y: np.array([1, 2, 3]), a: np.array([4.5, 5, 10])})
    forward_pass(cost, graph)
    assert float(cost.value) == pytest.approx(23.4166666667)
    assert cost.m == 3 and cost.diff.shape == (3, 1)


def test_lesson_backprop_gradients():
    X, W, b, y = Input(), Input(), Input(), Input()
    cost = MSE(y, Sigmoid(Linear(X, W, b)))
    feed = {X: np.array([[-1., -2.], [-1, -2]]), W: np.array([[2.], [3.]]),
            b: np.array([-3.]), y: np.array([1, 2])}
    forward_and_backward(topological_sort(feed))
    assert float(cost.value) > 0
    np.testing.assert_allclose(X.gradients[X], [[-3.34017280e-05, -5.01025919e-05],
                                                [-6.68040138e-05, -1.00206021e-04]], rtol=1e-7)
    np.testing.assert_allclose(y.gradients[y], [0.9999833, 1.9999833], rtol=1e-7)
    np.testing.assert_allclose(W.gradients[W], [[5.01028709e-05], [1.00205742e-04]], rtol=1e-7)
    np.testing.assert_allclose(b.gradients[b], [-5.01028709e-05], rtol=1e-7)
    assert y.gradients[y].shape == (2,)        # the node's shape (MiniFlow: (2, 1))


# --- the same network through the compatibility layer and through plain gradflow ------------------
def network(seed=0, m=7, n=5, k=4):
    rng = np.random.default_rng(seed)
    return {"X": rng.standard_normal((m, n)), "y": rng.standard_normal(m) * 3 + 1,
            "W1": rng.standard_normal((n, k)), "b1": rng.standard_normal(k),
            "W2": rng.standard_normal((k, 1)), "b2": rng.standard_normal(1)}


def miniflow_run(v):
    nodes = {name: Input(name=name) for name in v}
    l1 = Linear(nodes["X"], nodes["W1"], nodes["b1"])
    l2 = Linear(Sigmoid(l1), nodes["W2"], nodes["b2"])
    cost = MSE(nodes["y"], l2)
    graph = topological_sort({nodes[k]: v[k].copy() for k in v})
    forward_and_backward(graph)
    return cost, nodes, graph


def test_same_values_and_gradients_as_plain_gradflow(device):
    mf.configure(device=device)
    v = network()
    cost, nodes, _ = miniflow_run(v)
    t = {k: gf.tensor(a, dtype=gf.float64, device=device, requires_grad=k not in ("X", "y"))
         for k, a in v.items()}
    pred = gf.sigmoid(t["X"] @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"]
    loss = ((t["y"].reshape(-1, 1) - pred) ** 2).mean()
    loss.backward()
    assert float(cost.value) == pytest.approx(loss.item(), rel=1e-14)
    for k in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(host(nodes[k].gradients[nodes[k]]), t[k].grad.numpy(),
                                   rtol=1e-12, atol=1e-15)
    if device.type == "cuda":
        assert type(cost.value).__module__.startswith("cupy")


def test_same_as_numpy_miniflow_formulas():
    v = network(seed=1)
    cost, nodes, _ = miniflow_run(v)
    # MiniFlow's hand-written rules, in NumPy.
    z1 = v["X"] @ v["W1"] + v["b1"]
    s1 = 1 / (1 + np.exp(-z1))
    a = s1 @ v["W2"] + v["b2"]
    diff = v["y"].reshape(-1, 1) - a
    m = len(v["y"])
    g_a = -2 / m * diff
    g_W2, g_b2 = s1.T @ g_a, g_a.sum(axis=0)
    g_z1 = (g_a @ v["W2"].T) * s1 * (1 - s1)
    g_W1, g_b1 = v["X"].T @ g_z1, g_z1.sum(axis=0)
    assert float(cost.value) == pytest.approx(np.mean(diff ** 2), rel=1e-12)
    for k, g in [("W1", g_W1), ("b1", g_b1), ("W2", g_W2), ("b2", g_b2)]:
        np.testing.assert_allclose(nodes[k].gradients[nodes[k]], g, rtol=1e-10, atol=1e-14)


def test_sgd_update_changes_fed_arrays_in_place_and_lowers_cost():
    v = network(seed=2)
    nodes = {name: Input(name=name) for name in v}
    cost = MSE(nodes["y"], Linear(Sigmoid(Linear(nodes["X"], nodes["W1"], nodes["b1"])),
                                  nodes["W2"], nodes["b2"]))
    feed = {nodes[k]: v[k].copy() for k in v}
    W1_array = feed[nodes["W1"]]
    graph = topological_sort(feed)
    trainables = [nodes[k] for k in ("W1", "b1", "W2", "b2")]
    forward_and_backward(graph)
    first = float(cost.value)
    before = W1_array.copy()
    sgd_update(trainables, learning_rate=0.05)
    assert nodes["W1"].value is W1_array        # as in MiniFlow: the fed array itself moves
    np.testing.assert_allclose(W1_array, before - 0.05 * nodes["W1"].gradients[nodes["W1"]])
    for _ in range(200):
        forward_and_backward(graph)
        sgd_update(trainables, learning_rate=0.05)
    assert float(forward_pass(cost, graph)) < 0.5 * first


# --- topological_sort ----------------------------------------------------------------------------
def test_topological_sort_is_kahn_and_deterministic():
    X, W, b, y = Input(name="X"), Input(name="W"), Input(name="b"), Input(name="y")
    lin = Linear(X, W, b, name="lin")
    cost = MSE(y, Sigmoid(lin, name="s"), name="cost")
    feed = {X: [[1.0]], W: [[2.0]], b: [0.5], y: [1.0]}
    steps = []
    graph = topological_sort(feed, on_step=steps.append)
    assert [repr(n) for n in graph] == ["Input(X)", "Input(W)", "Input(b)", "Input(y)",
                                        "Linear(lin)", "Sigmoid(s)", "MSE(cost)"]
    assert graph == topological_sort(feed)
    assert [s.index for s in steps] == list(range(1, 8))
    assert steps[2].node is b and steps[2].released == (lin,)
    assert steps[0].waiting == (W, b, y)
    assert X.value == [[1.0]]                  # loaded from feed_dict
    pos = {n: i for i, n in enumerate(graph)}
    assert all(pos[i] < pos[n] for n in graph for i in n.inbound_nodes)
    assert graph[-1] is cost


def test_topological_sort_errors():
    X, W, b = Input(name="X"), Input(name="W"), Input(name="b")
    Linear(X, W, b, name="lin")
    with pytest.raises(ValueError, match=r"Linear\(lin\) reads \[Input\(b\)\]"):
        topological_sort({X: [[1.0]], W: [[1.0]]})
    with pytest.raises(ValueError, match="must be Input nodes"):
        topological_sort({Sigmoid(X): 1.0})
    with pytest.raises(TypeError, match="must be Nodes"):
        Sigmoid(3.0)


def test_missing_values_and_wrong_order_are_named():
    X, W, b = Input(name="X"), Input(name="W"), Input(name="b")
    lin = Linear(X, W, b, name="lin")
    with pytest.raises(ValueError, match=r"Input\(X\) has no value"):
        X.forward()
    with pytest.raises(RuntimeError, match="before forward"):
        lin.backward()
    graph = topological_sort({X: np.ones((2, 3)), W: np.ones((2, 1)), b: np.zeros(1)})
    with pytest.raises(ValueError, match=r"got X \(2, 3\) and W \(2, 1\)"):
        forward_pass(lin, graph)
    with pytest.raises(RuntimeError, match="no gradient"):
        sgd_update([W])


# --- extensions ----------------------------------------------------------------------------------
def test_tapenode_subclass_gets_its_gradient_from_the_tape():
    class Cube(TapeNode):
        def __init__(self, x):
            TapeNode.__init__(self, [x])

        def compute(self, x):
            return x ** 3

    x = Input()
    c = Cube(x)
    total = Add(c, x)
    forward_and_backward(topological_sort({x: np.array([2.0, -1.0])}))
    np.testing.assert_allclose(total.value, [10.0, -2.0])
    np.testing.assert_allclose(x.gradients[x], [3 * 4.0 + 1, 3 * 1.0 + 1])


def test_hand_written_numpy_node_mixes_with_tape_nodes():
    class Double(Node):                        # a MiniFlow node as the lessons write them
        def __init__(self, x):
            Node.__init__(self, [x])

        def forward(self):
            self.value = 2 * self.inbound_nodes[0].value

        def backward(self):
            g = sum(n.gradients[self] for n in self.outbound_nodes)
            self.gradients = {self.inbound_nodes[0]: 2 * g}

    x = Input()
    out = Sigmoid(Double(x))
    forward_and_backward(topological_sort({x: np.array([0.0, 1.0])}))
    s = 1 / (1 + np.exp(-2 * np.array([0.0, 1.0])))
    np.testing.assert_allclose(out.value, s)
    np.testing.assert_allclose(x.gradients[x], 2 * s * (1 - s))


def test_input_used_twice_gets_both_gradients():
    x = Input()
    s = Mul(x, x)
    forward_and_backward(topological_sort({x: np.array([3.0])}))
    assert s.gradients[x].tolist() == [6.0]
    assert x.gradients[x].tolist() == [6.0]


def test_backward_again_without_forward_and_configure_checks():
    x = Input()
    s = Sigmoid(x)
    graph = topological_sort({x: np.array([0.5])})
    forward_and_backward(graph)
    first = x.gradients[x].copy()
    for n in graph[::-1]:
        n.backward()
    np.testing.assert_allclose(x.gradients[x], first)
    assert s.value.dtype == np.float64
    with pytest.raises(TypeError, match="floating point"):
        mf.configure(dtype="int64")
    mf.configure(dtype="float32")
    forward_and_backward(graph)
    assert s.value.dtype == np.float32 and x.gradients[x].dtype == np.float32
