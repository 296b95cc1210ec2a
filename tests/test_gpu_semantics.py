"""What gradflow does on a GPU that the CPU cannot show by itself, checked on a stand-in GPU.

`_fake_gpu` imitates CuPy with a NumPy subclass (arrays tied to one of two GPUs, 0-d results,
counted reads back to the host). These tests hold gradflow to CuPy's rules on every machine:
- a training step of the MNIST MLP reads nothing back from the GPU (no host sync inside a step);
- every op runs on its tensors' own GPU, whichever GPU is current (cuda:1 works);
- CuPy arrays are recognised before gradflow has loaded its CuPy backend;
- a bad label on a GPU gives nan (no sync), and raises in debug mode;
- out-of-range integer indices and in-place writes into broadcast views raise on every device.
"""
import sys
import types

import numpy as np
import pytest

import gradflow as gf
import gradflow.nn as nn
import gradflow.nn.functional as F
from gradflow import backend as B
from gradflow.data import DataLoader, TensorDataset

import _fake_gpu


@pytest.fixture
def fake(monkeypatch):
    """Two fake GPUs as gradflow's CUDA backend; yields the counters (`reads`, `current`)."""
    state = _fake_gpu.install(monkeypatch)
    yield state
    B.set_debug(False)


def _mlp_step(dev, model_extra=None, clip=False, batch=100):
    gf.manual_seed(0)
    layers = [nn.Linear(784, 64), nn.ReLU()]
    if model_extra is not None:
        layers.append(model_extra)
    layers.append(nn.Linear(64, 10))
    model = nn.Sequential(*layers).to(dev)
    opt = gf.optim.Adam(model.parameters(), lr=1e-3)
    x = gf.randn(batch, 784, device=dev)
    y = gf.randint(0, 10, (batch,), device=dev)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        if clip:
            gf.optim.clip_grad_norm_(model.parameters(), max_norm=0.5)
        opt.step()
        return loss
    return step


@pytest.mark.parametrize("variant", ["plain", "clip_grad_norm_", "batchnorm_cumulative"])
def test_a_training_step_reads_nothing_back_from_the_gpu(fake, variant):
    dev = gf.device("cuda:0")
    extra = nn.BatchNorm1d(64, momentum=None) if variant == "batchnorm_cumulative" else None
    step = _mlp_step(dev, extra, clip=variant == "clip_grad_norm_")
    step()  # the first step makes the optimizer's state
    fake.reads = 0
    loss = step()
    assert fake.reads == 0, f"{fake.reads} value(s) read back from the GPU inside one step"
    loss.item()  # the counter sees a read when there is one
    assert fake.reads == 1


def test_the_mnist_example_model_steps_without_a_sync(fake):
    # The example's own model (nn.MLP) and loader, on the GPU: one epoch's steps read nothing.
    dev = gf.device("cuda:0")
    model = nn.MLP([784, 32, 32, 10], activation="relu", device=dev)
    opt = gf.optim.Adam(model.parameters(), lr=1e-3)
    data = TensorDataset(gf.rand(64, 784, device=dev), gf.randint(0, 10, (64,), device=dev))
    loader = DataLoader(data, batch_size=16, shuffle=True, device=dev)
    batches = iter(loader)
    fake.reads = 0
    for x, y in batches:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert fake.reads == 0


def test_every_op_runs_on_its_tensors_gpu(fake):
    # cuda:1 while cuda:0 is current: the fake raises as CuPy does if anything runs on cuda:0.
    dev = gf.device("cuda:1")
    step = _mlp_step(dev, nn.BatchNorm1d(64), clip=True, batch=8)
    for _ in range(2):
        loss = step()
    assert loss.device is dev and fake.current == 0
    x = gf.randn(3, 4, device=dev, requires_grad=True)
    y = (gf.tanh(x) * gf.sigmoid(x)).sum(axis=0) + gf.exp(x).mean()
    z = (y.softmax() + x[[0, 2]].sum() + gf.where(x > 0, x, 0.0).max()).sum()
    z.backward()
    assert x.grad.device is dev and x.grad.data.device_id == 1
    (g,) = gf.grad((x ** 3).sum(), x, create_graph=True)
    g.sum().backward()
    w = gf.zeros(4, device=dev)
    w += 1.0
    assert w.data.device_id == 1 and (x > 0).any().device is dev


def test_layers_made_on_cuda1_draw_their_weights_there(fake):
    # Found by the distributed tests: rank 1 builds its model on cuda:1 while cuda:0 is current.
    layer = nn.Linear(4, 3, device="cuda:1")
    gf.nn.init.normal_(layer.bias)
    assert layer.weight.data.device_id == layer.bias.data.device_id == 1 and fake.current == 0


def test_a_step_on_cuda1_without_the_device_guard_would_fail(fake):
    # The stand-in does catch a forgotten guard: an array of cuda:1 used while cuda:0 is current.
    a = gf.ones(2, device="cuda:1").data
    with pytest.raises(RuntimeError, match="peer access"):
        a + a


def test_cupy_arrays_are_recognised_before_the_backend_is_loaded(fake, monkeypatch):
    # The user's first CUDA use is a CuPy array made with cupy itself: gradflow has not loaded
    # its CuPy backend yet, but `cupy` is imported.
    with _fake_gpu.use(1):
        arr = _fake_gpu.xp.arange(6.0).reshape(3, 2)
        labels = _fake_gpu.xp.asarray([0, 1, 1])
    monkeypatch.setattr(B, "_cupy_backend", None)
    monkeypatch.setitem(sys.modules, "cupy", types.ModuleType("cupy"))
    monkeypatch.setattr(B, "_load_cupy_backend", lambda: _fake_gpu.install(monkeypatch) and _fake_gpu)
    t = gf.tensor(arr)
    assert t.device == "cuda:1" and t.dtype == gf.float64
    assert gf.as_tensor(arr).data is arr
    ds = TensorDataset(arr, labels)
    assert ds.tensors[0].device == "cuda:1"
    loss = F.cross_entropy(gf.tensor(arr, requires_grad=True), labels)
    assert loss.device == "cuda:1"


def test_bad_labels_on_a_gpu_give_nan_without_a_sync_and_raise_in_debug_mode(fake):
    dev = gf.device("cuda:0")
    logits = gf.randn(3, 4, device=dev, requires_grad=True)
    labels = gf.tensor([1, 12, 0], device=dev)
    fake.reads = 0
    loss = F.cross_entropy(logits, labels, reduction="none")
    assert fake.reads == 0
    out = loss.numpy()
    assert np.isnan(out[1]) and np.isfinite(out[[0, 2]]).all()
    loss.sum().backward()
    g = logits.grad.numpy()
    assert np.isnan(g[1]).all() and np.isfinite(g[[0, 2]]).all()
    nll = F.nll_loss(gf.log_softmax(logits, axis=1), labels, reduction="none").numpy()
    assert np.isnan(nll[1]) and np.isfinite(nll[[0, 2]]).all()
    gf.set_debug(True)
    with pytest.raises(ValueError, match=r"label\(s\) 12 outside \[0, 3\]"):
        F.cross_entropy(logits, labels)
    # Labels that come from the host are checked there, at no cost, in any mode.
    gf.set_debug(False)
    with pytest.raises(ValueError, match=r"label\(s\) -1 outside"):
        F.cross_entropy(logits, [1, -1, 0])


def test_bad_labels_on_the_cpu_always_raise():
    logits = gf.randn(2, 3, device="cpu")
    with pytest.raises(ValueError, match=r"label\(s\) 3 outside \[0, 2\]"):
        F.cross_entropy(logits, gf.tensor([0, 3], device="cpu"))
    with pytest.raises(ValueError, match=r"label\(s\) 5 outside"):
        F.nll_loss(logits, gf.tensor([5, 0], device="cpu"))


@pytest.mark.parametrize("where", ["cpu", "fake"])
def test_out_of_range_integer_indices_raise_on_every_device(where, request):
    if where == "fake":
        request.getfixturevalue("fake")
    dev = gf.device("cpu" if where == "cpu" else "cuda:1")
    x = gf.arange(12.0, device=dev).reshape(3, 4)
    with pytest.raises(IndexError, match=r"index 5 is out of range for axis 1 with size 4 "
                                         r"\(a tensor of shape \(3, 4\)\)"):
        x[:, [0, 5]]
    with pytest.raises(IndexError, match=r"index -4 is out of range for axis 0"):
        x[gf.tensor([0, -4], device=dev)]
    with pytest.raises(IndexError, match=r"index 4 is out of range for axis 1"):
        x[..., np.array([4])]
    assert x[[-3, 2], 1:].shape == (2, 3) and x[None, :, [3]].shape == (1, 3, 1)


@pytest.mark.parametrize("where", ["cpu", "fake"])
def test_in_place_ops_refuse_broadcast_views(where, request):
    if where == "fake":
        request.getfixturevalue("fake")
    dev = gf.device("cpu" if where == "cpu" else "cuda:1")
    base = gf.zeros(3, device=dev)
    view = base.broadcast_to((2, 3))
    with pytest.raises(ValueError, match=r"broadcast view \(shape \(2, 3\), strides \(0, "):
        view += 1.0
    assert base.tolist() == [0.0, 0.0, 0.0]


def test_debug_mode_is_off_by_default_and_validated():
    assert gf.is_debug() is False
    with pytest.raises(TypeError, match="True or False"):
        gf.set_debug("yes")
