"""gradflow.nn.Module, Parameter and the layers: registration, traversal, modes, devices, saving."""
import pickle

import numpy as np
import pytest

import gradflow as gf
import gradflow.nn as nn
from gradflow.autograd import BackwardError


class Net(nn.Module):
    def __init__(self, device=None):
        super().__init__()
        self.fc1 = nn.Linear(4, 8, device=device)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(8, 3, device=device)
        self.scale = nn.Parameter(gf.ones(3, device=device))
        self.register_buffer("steps", gf.zeros(1, device=device))
        self.register_buffer("cache", gf.zeros(2, device=device), persistent=False)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x))) * self.scale


# --- Parameter ----------------------------------------------------------------------------------
def test_parameter_is_a_tensor_that_requires_grad_and_shares_data():
    t = gf.zeros(2, 3)
    p = nn.Parameter(t)
    assert isinstance(p, gf.Tensor) and p.requires_grad and p.is_leaf
    assert p.data is t.data
    assert not nn.Parameter(t, requires_grad=False).requires_grad
    assert repr(p).startswith("Parameter containing:\ntensor(")
    q = pickle.loads(pickle.dumps(p))
    assert isinstance(q, nn.Parameter) and q.requires_grad
    np.testing.assert_array_equal(q.numpy(), p.numpy())
    with pytest.raises(TypeError, match="floating-point"):
        nn.Parameter(gf.tensor([1, 2]))


# --- registration and traversal -----------------------------------------------------------------
def test_registration_order_and_recursive_names(device):
    net = Net(device)
    names = [n for n, _ in net.named_parameters()]
    assert names == ["scale", "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in net.named_children()] == ["fc1", "act", "fc2"]
    assert [type(m).__name__ for m in net.modules()] == ["Net", "Linear", "ReLU", "Linear"]
    assert [n for n, _ in net.named_buffers()] == ["steps", "cache"]
    assert list(net.state_dict()) == ["scale", "steps", "fc1.weight", "fc1.bias", "fc2.weight",
                                      "fc2.bias"]
    assert net.num_parameters() == 4 * 8 + 8 + 8 * 3 + 3 + 3
    assert all(t.device is device for t in net.state_dict().values())


def test_shared_parameters_are_listed_once():
    a = nn.Linear(3, 3)
    model = nn.Sequential(a, nn.ReLU(), a)
    assert len(list(model.parameters())) == 2
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias"]


def test_reassignment_and_deletion_keep_the_registries_consistent():
    net = Net()
    net.fc1 = nn.Linear(4, 8)  # replaced in place: the order stays
    assert [n for n, _ in net.named_children()] == ["fc1", "act", "fc2"]
    net.fc2 = None
    assert [n for n, _ in net.named_children()] == ["fc1", "act"]
    del net.act
    assert not hasattr(net, "act")
    with pytest.raises(TypeError, match="cannot assign Tensor to parameter 'scale'"):
        net.scale = gf.ones(3)
    net.plain = 5  # ordinary attributes are untouched
    assert net.plain == 5 and "plain" not in dict(net.named_parameters())
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        net.nope


def test_assigning_before_super_init_is_explained():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(gf.zeros(1))

    with pytest.raises(AttributeError, match="super\\(\\).__init__\\(\\)"):
        Bad()


def test_train_eval_reach_every_submodule():
    model = nn.MLP([4, 8, 8, 2], dropout=0.5)
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_zero_grad_sets_none_or_zeros(device):
    net = Net(device)
    net(gf.randn(5, 4, device=device)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(float(abs(p.grad).sum().item()) == 0.0 for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_to_keeps_parameter_objects_and_casts(device):
    net = Net()
    params = list(net.parameters())
    net(gf.randn(2, 4)).sum().backward()
    assert net.to(device) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.device is device and p.grad.device is device for p in net.parameters())
    assert net.steps.device is device
    net.double()
    assert all(p.dtype == gf.float64 for p in net.parameters())
    assert net(gf.randn(2, 4, dtype=gf.float64, device=device)).dtype == gf.float64
    with pytest.raises(TypeError, match="floating point.*int64"):
        net.to(dtype=gf.int64)


def test_repr_shows_structure_and_parameter_counts():
    model = nn.MLP([784, 1000, 1000, 10])
    text = repr(model)
    assert text.splitlines()[0] == "MLP(  # 1,796,010 parameters"
    assert "(0): Linear(in_features=784, out_features=1000, bias=True)  # 785,000 parameters" \
        in text
    assert "(1): ReLU()" in text and text.endswith(")")
    assert repr(nn.ReLU()) == "ReLU()"


def test_apply_and_requires_grad_():
    model = nn.MLP([3, 4, 2])
    seen = []
    model.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "MLP" and seen.count("Linear") == 2
    model.requires_grad_(False)
    assert not any(p.requires_grad for p in model.parameters())


# --- state_dict ---------------------------------------------------------------------------------
def test_state_dict_round_trip_is_bit_exact(device):
    gf.manual_seed(1)
    a = Net(device)
    a.steps.data[...] = 7
    gf.manual_seed(2)
    b = Net(device)
    blob = pickle.dumps({k: v.numpy() for k, v in a.state_dict().items()})
    result = b.load_state_dict(pickle.loads(blob))
    assert result.missing_keys == [] and result.unexpected_keys == []
    for (k, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert va.numpy().tobytes() == vb.numpy().tobytes(), k
    x = gf.randn(3, 4, device=device)
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert "cache" not in a.state_dict()  # non-persistent buffers are not saved


def test_load_state_dict_copies_in_place_and_bumps_versions():
    net = Net()
    w = net.fc1.weight
    arr = w.data
    y = (net.fc1(gf.randn(2, 4)) ** 2).sum()
    net.load_state_dict(Net().state_dict())
    assert net.fc1.weight is w and w.data is arr
    with pytest.raises(BackwardError, match="modified in place"):
        y.backward()


def test_load_state_dict_names_missing_unexpected_and_misshaped_keys():
    net = Net()
    sd = net.state_dict()
    before = {k: v.numpy().copy() for k, v in sd.items()}
    bad = dict(sd)
    del bad["fc2.bias"]
    bad["fc3.weight"] = gf.zeros(2, 2)
    bad["fc1.weight"] = gf.zeros(8, 5)
    with pytest.raises(nn.StateDictError) as err:
        net.load_state_dict(bad)
    msg = str(err.value)
    assert "missing key(s): 'fc2.bias'" in msg
    assert "unexpected key(s): 'fc3.weight'" in msg
    assert "'fc1.weight' has shape (8, 5) in the state_dict but (8, 4) in the model" in msg
    for k, v in net.state_dict().items():  # nothing half-loaded
        np.testing.assert_array_equal(v.numpy(), before[k])


def test_state_dict_from_another_architecture_is_refused():
    small = nn.MLP([784, 100, 10])
    with pytest.raises(nn.StateDictError) as err:
        nn.MLP([784, 1000, 1000, 10]).load_state_dict(small.state_dict())
    msg = str(err.value)
    assert "missing key(s): '4.weight', '4.bias'" in msg
    assert "'0.weight' has shape (100, 784) in the state_dict but (1000, 784)" in msg
    assert "'2.weight' has shape (10, 100) in the state_dict but (1000, 1000)" in msg


def test_load_state_dict_non_strict_reports_and_loads_the_rest():
    net = Net()
    src = Net()
    sd = src.state_dict()
    del sd["fc2.bias"]
    sd["extra"] = gf.zeros(1)
    missing, unexpected = net.load_state_dict(sd, strict=False)
    assert missing == ["fc2.bias"] and unexpected == ["extra"]
    np.testing.assert_array_equal(net.fc1.weight.numpy(), src.fc1.weight.numpy())
    with pytest.raises(TypeError, match="mapping"):
        net.load_state_dict([1, 2])


# --- layers -------------------------------------------------------------------------------------
def test_linear_layout_init_and_seeding(device):
    gf.manual_seed(0)
    layer = nn.Linear(784, 1000, device=device)
    assert layer.weight.shape == (1000, 784) and layer.bias.shape == (1000,)
    bound = 1 / np.sqrt(784)
    w = layer.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.01 * bound  # U(-b, b) has std b / sqrt(3)
    assert np.abs(layer.bias.numpy()).max() <= bound
    gf.manual_seed(0)
    again = nn.Linear(784, 1000, device=device)
    np.testing.assert_array_equal(again.weight.numpy(), w)
    x = gf.randn(5, 784, device=device)
    np.testing.assert_allclose(layer(x).numpy(), x.numpy() @ w.T + layer.bias.numpy(),
                               rtol=1e-4, atol=1e-5)
    assert repr(layer).startswith("Linear(in_features=784, out_features=1000, bias=True)")
    assert nn.Linear(3, 2, bias=False).bias is None
    with pytest.raises(ValueError, match="in_features.*-1"):
        nn.Linear(-1, 3)


def test_linear_module_gradcheck(device):
    layer = nn.Linear(3, 2, device=device).double()
    x = gf.randn(4, 3, dtype=gf.float64, device=device, requires_grad=True)
    gf.gradcheck(lambda x, w, b: nn.functional.linear(x, w, b), (x, layer.weight, layer.bias))
    layer(x).sum().backward()
    np.testing.assert_allclose(layer.bias.grad.numpy(), [4.0, 4.0])


def test_mlp_structure_activations_and_dropout():
    model = nn.MLP([784, 1000, 1000, 10])
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [(m.in_features, m.out_features) for m in model if isinstance(m, nn.Linear)] == \
        [(784, 1000), (1000, 1000), (1000, 10)]
    assert model(gf.randn(2, 784)).shape == (2, 10)
    drop = nn.MLP([4, 5, 3], activation="tanh", dropout=0.2)
    assert [type(m).__name__ for m in drop] == ["Linear", "Tanh", "Dropout", "Linear"]
    assert [type(m).__name__ for m in nn.MLP([4, 5, 5, 3], activation=nn.GELU)] == \
        ["Linear", "GELU", "Linear", "GELU", "Linear"]
    shared = nn.LeakyReLU(0.2)
    acts = [m for m in nn.MLP([4, 5, 5, 3], activation=shared) if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 2 and acts[0] is not acts[1] and acts[0].negative_slope == 0.2
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        nn.MLP([4, 3], activation="swish")
    with pytest.raises(ValueError, match="sizes"):
        nn.MLP([4])
    with pytest.raises(ValueError, match="dropout"):
        nn.MLP([4, 3, 2], dropout=1.5)


def test_sequential_indexing_and_flatten():
    seq = nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.Sigmoid())
    assert len(seq) == 3 and isinstance(seq[1], nn.Linear) and isinstance(seq[-1], nn.Sigmoid)
    assert isinstance(seq[1:], nn.Sequential) and len(seq[1:]) == 2
    assert seq(gf.randn(5, 2, 2)).shape == (5, 2)
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    with pytest.raises(TypeError, match="argument 0 is a int"):
        nn.Sequential(3)
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(list(ml.parameters())) == 6 and len(ml) == 3


def test_dropout_module_train_and_eval(device):
    drop = nn.Dropout(0.5)
    x = gf.ones(100, 100, device=device)
    y = drop(x).numpy()
    assert 0.4 < (y == 0).mean() < 0.6
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout(1.0)


@pytest.mark.parametrize("act, ref", [
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.Tanh(), np.tanh),
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.LeakyReLU(0.1), lambda x: np.where(x > 0, x, 0.1 * x)),
    (nn.GELU(), lambda x: 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    (nn.Identity(), lambda x: x),
])
def test_activation_modules(act, ref, device):
    xn = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(act(gf.tensor(xn, device=device)).numpy(), ref(xn), rtol=1e-12)


def test_gelu_exact_form_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="erf"):
        nn.GELU(approximate="none")
