"""gradflow.compat.micrograd: micrograd's Value and nn, on gradflow's tape."""
import math
import random

import numpy as np
import pytest

import gradflow as gf
from gradflow.compat.micrograd import MLP, Layer, Module, Neuron, Value
from gradflow.compat.micrograd import engine, nn


def readme(make):
    """micrograd's README example, written as there (no in-place ops on Values)."""
    a = make(-4.0)
    b = make(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    return a, b, g


def test_readme_numbers(device):
    a, b, g = readme(lambda v: Value(v, device=device))
    assert f"{g.data:.4f}" == "24.7041"
    g.backward()
    assert f"{a.grad:.4f}" == "138.8338"
    assert f"{b.grad:.4f}" == "645.5773"
    assert isinstance(g.data, float) and isinstance(a.grad, float)
    assert g.tensor.device is gf.device(device)


def every_op(make):
    x, y = make(0.7), make(-1.3)
    z = (x * y + 2.0 - x / y + 3 / x - 1 - y) ** 2
    w = z.tanh() + (x - y).relu() + (-x).relu() + (y * 0.5).exp() + 2 * x
    return x, y, w


def test_same_values_and_gradients_as_plain_gradflow(device):
    vx, vy, vw = every_op(lambda v: Value(v, device=device))
    vw.backward()
    tx, ty, tw = every_op(lambda v: gf.tensor(v, dtype=gf.float64, device=device,
                                              requires_grad=True))
    tw.backward()
    assert vw.data == pytest.approx(tw.item(), rel=1e-14)
    assert vx.grad == pytest.approx(tx.grad.item(), rel=1e-14)
    assert vy.grad == pytest.approx(ty.grad.item(), rel=1e-14)


def test_same_as_torch_on_micrograd_sanity_checks():
    torch = pytest.importorskip("torch")
    # micrograd's own test_sanity_check and test_more_ops, compared with PyTorch.
    x = Value(-4.0)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    xt = torch.tensor([-4.0], dtype=torch.float64, requires_grad=True)
    zt = 2 * xt + 2 + xt
    qt = zt.relu() + zt * xt
    ht = (zt * zt).relu()
    yt = ht + qt + qt * xt
    yt.backward()
    assert y.data == pytest.approx(yt.item(), abs=1e-12)
    assert x.grad == pytest.approx(xt.grad.item(), abs=1e-12)

    a, b, g = readme(Value)
    g.backward()
    a_t, b_t, g_t = readme(lambda v: torch.tensor([v], dtype=torch.float64, requires_grad=True))
    g_t.backward()
    assert g.data == pytest.approx(g_t.item(), abs=1e-6)
    assert a.grad == pytest.approx(a_t.grad.item(), abs=1e-6)
    assert b.grad == pytest.approx(b_t.grad.item(), abs=1e-6)


def test_graph_structure_as_micrograd():
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    c = a * b
    d = c + 1.0
    assert c._op == "*" and c._prev == {a, b}
    assert d._op == "+" and c in d._prev and len(d._prev) == 2
    assert (a ** 2)._op == "**2" and a.relu()._op == "ReLU"
    assert a.tanh()._op == "tanh" and a.exp()._op == "exp"
    n = -a                                       # micrograd: a * -1
    assert n._op == "*" and n.data == -2.0
    assert (a / b)._op == "*"                    # a * b**-1
    assert a.label == "a"
    assert repr(a) == "Value(data=2.0, grad=0.0)"


def test_tanh_and_exp_gradients():
    x = Value(0.8814)
    o = x.tanh()
    o.backward()
    assert o.data == pytest.approx(math.tanh(0.8814))
    assert x.grad == pytest.approx(1 - math.tanh(0.8814) ** 2)
    y = Value(1.5)
    e = y.exp()
    e.backward()
    assert y.grad == pytest.approx(math.exp(1.5))


def test_backward_twice_accumulates_and_root_grad_is_one():
    x = Value(3.0)
    y = x * x
    y.backward()
    y.backward()
    assert x.grad == 12.0                         # 6 + 6, as micrograd
    assert y.grad == 1.0


def test_zero_grad_and_update_loop():
    random.seed(0)
    n = Neuron(3, nonlin=False)
    xs = [1.0, -2.0, 0.5]
    out = n(xs)
    out.backward()
    assert any(p.grad != 0 for p in n.parameters())
    n.zero_grad()
    assert all(p.grad == 0.0 for p in n.parameters())
    before = n.w[0].data
    n.w[0].grad = 2.0
    n.w[0].data -= 0.1 * n.w[0].grad
    assert n.w[0].data == pytest.approx(before - 0.2)


def test_setting_data_invalidates_old_graph():
    w = Value(2.0)
    y = w * 3.0
    y.backward()
    w.data = 5.0
    with pytest.raises(gf.BackwardError, match="modified in place"):
        y.backward()
    z = w * 3.0                                  # a fresh graph sees the new value
    z.backward()
    assert z.data == 15.0


def test_bad_power_and_bad_data():
    with pytest.raises(TypeError, match="int and float powers"):
        Value(2.0) ** Value(3.0)
    with pytest.raises(ValueError, match="one number"):
        Value([1.0, 2.0])


def test_numpy_scalars_defer_to_value():
    v = Value(2.0)
    out = np.float64(3.0) * v
    assert isinstance(out, Value) and out.data == 6.0
    out2 = -np.int64(1) * v + np.float64(1.0)
    assert isinstance(out2, Value) and out2.data == -1.0


def test_deep_expression_beyond_recursion_limit():
    x = Value(1.0)
    y = x
    for _ in range(3000):                         # micrograd's recursive sort fails here
        y = y + 0.001
    y.backward()
    assert x.grad == 1.0 and y.data == pytest.approx(4.0)


def test_nn_api_and_initialisation():
    random.seed(1337)
    model = MLP(2, [16, 16, 1])
    assert len(model.parameters()) == 2 * 16 + 16 + 16 * 16 + 16 + 16 + 1
    assert repr(model.layers[0].neurons[0]) == "ReLUNeuron(2)"
    assert repr(model.layers[-1]).startswith("Layer of [LinearNeuron(16)")
    assert str(model).startswith("MLP of [Layer of [ReLUNeuron(2)")
    ws = [p.data for layer in model.layers for n in layer.neurons for p in n.w]
    bs = [n.b.data for layer in model.layers for n in layer.neurons]
    assert all(-1 <= w <= 1 for w in ws) and all(b == 0.0 for b in bs)
    random.seed(1337)
    again = MLP(2, [16, 16, 1])
    assert [p.data for p in again.parameters()] == [p.data for p in model.parameters()]
    out = model([0.5, -1.0])
    assert isinstance(out, Value)
    assert isinstance(Layer(2, 3)([1.0, 2.0]), list)
    assert Module().parameters() == []
    with pytest.raises(ValueError, match="3 inputs called on 2"):
        Neuron(3)([1.0, 2.0])
    assert engine.Value is Value and nn.MLP is MLP


def test_mlp_matches_plain_gradflow_mlp(device):
    random.seed(3)
    model = MLP(3, [4, 2, 1], device=device)
    X = [[0.5, -1.0, 2.0], [1.5, 0.2, -0.3]]
    ys = [1.0, -1.0]
    scores = [model(x) for x in X]
    loss = sum((1 + -y * s).relu() for y, s in zip(ys, scores)) * 0.5
    loss = loss + 1e-4 * sum(p * p for p in model.parameters())
    loss.backward()
    # The same network as matrices.
    Ws, bs = [], []
    for layer in model.layers:
        W = [[n.w[i].data for n in layer.neurons] for i in range(len(layer.neurons[0].w))]
        Ws.append(gf.tensor(W, dtype=gf.float64, device=device, requires_grad=True))
        bs.append(gf.tensor([n.b.data for n in layer.neurons], dtype=gf.float64,
                            device=device, requires_grad=True))
    h = gf.tensor(X, dtype=gf.float64, device=device)
    for i, (W, b) in enumerate(zip(Ws, bs)):
        h = h @ W + b
        if i < len(Ws) - 1:
            h = h.relu()
    yt = gf.tensor(ys, dtype=gf.float64, device=device)
    t_loss = (1 - yt * h.reshape(-1)).relu().mean() + 1e-4 * sum(
        (p * p).sum() for p in Ws + bs)
    t_loss.backward()
    assert loss.data == pytest.approx(t_loss.item(), rel=1e-12)
    for layer, W, b in zip(model.layers, Ws, bs):
        gW = np.array([[n.w[i].grad for n in layer.neurons]
                       for i in range(len(layer.neurons[0].w))])
        np.testing.assert_allclose(gW, W.grad.numpy(), rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose([n.b.grad for n in layer.neurons], b.grad.numpy(),
                                   rtol=1e-10, atol=1e-14)
