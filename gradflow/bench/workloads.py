"""The benchmark workloads, each runnable by several contenders: gradflow, hand-written, PyTorch.

A `Workload` is one problem at one size. `Workload.build(impl, device)` returns a zero-argument
callable doing one iteration (forward, backward and, for training, the update) that finishes
all its work before returning: on a GPU it synchronises the device inside the call, so a timer
around it measures the computation and not just its queueing. Contenders:

- "gradflow": the library, as a user writes it.
- "hand": the same computation without autograd, written by hand on the device's own array
  module (NumPy on the CPU, CuPy on a GPU): the floor for a NumPy/CuPy-backed library (for
  the convolutions: im2col and one GEMM per product, see `baselines.HandCNN`).
- "torch": PyTorch, when installed (and for a GPU, when built with CUDA).

Every contender of a workload starts from the same data and, for the MLP and the CNN, the same
weights.
A contender that cannot run raises `Unavailable` with the reason (the pytest suite skips with it,
the report records it).
"""
from __future__ import annotations

import importlib.util
import operator
from dataclasses import dataclass, field
from typing import Callable

import gradflow as gf
from gradflow import backend as B
from .baselines import (CHAIN_OPS, HandCNN, HandConv2d, HandMLP, hand_chain,
                        hand_reductions)

__all__ = ["Workload", "Unavailable", "MODES", "IMPLS", "workloads", "chain_expr", "MLP_SIZES",
           "CNN_SHAPES", "CONV2D_SIZE", "torch_or_none"]

IMPLS = ("gradflow", "hand", "torch")

MLP_SIZES = [784, 1000, 1000, 10]

# The CNN of `examples/train_mnist.py --model cnn`: PyTorch's MNIST example network
# (examples/mnist/main.py) without its two dropout layers, as the example trains it. Its
# parameters' shapes, in the order of model.parameters(): conv 1->32 3x3, ReLU, conv 32->64 3x3,
# ReLU, max-pool 2, flatten (64*12*12 = 9216), linear 9216->128, ReLU, linear 128->10.
CNN_SHAPES = [(32, 1, 3, 3), (32,), (64, 32, 3, 3), (64,), (128, 9216), (128,), (10, 128), (10,)]

# The conv2d workload: (batch, in channels, out channels, height = width), 3x3, padding 1.
CONV2D_SIZE = (32, 64, 64, 56)

# Problem sizes and timing effort of each mode. "tiny" exists for the test suite: every workload
# and contender runs, in a few seconds, on small problems.
MODES: dict[str, dict] = {
    "tiny": dict(chain=[32, 64], reductions=[64], matmul=[64, 128], mlp_sizes=[784, 64, 64, 10],
                 mlp_batches=[32], epoch_samples=400, cnn_batches=[4], conv2d=[(2, 8, 8, 10)],
                 rounds=2, round_s=0.005),
    "quick": dict(chain=[32, 1024], reductions=[256, 1024], matmul=[256, 1024],
                  mlp_sizes=MLP_SIZES, mlp_batches=[100], epoch_samples=None, cnn_batches=[64],
                  conv2d=[CONV2D_SIZE], rounds=7, round_s=0.1),
    "full": dict(chain=[32, 4096], reductions=[256, 4096], matmul=[256, 1024, 4096],
                 mlp_sizes=MLP_SIZES, mlp_batches=[32, 100, 1024], epoch_samples=None,
                 cnn_batches=[64], conv2d=[CONV2D_SIZE], rounds=10, round_s=0.25),
}


class Unavailable(Exception):
    """A contender cannot run here (no PyTorch, no CUDA build of it, no such baseline)."""


def torch_or_none():
    """The torch module, or None when PyTorch is not installed."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch
    return torch


def _torch_device(device):
    torch = torch_or_none()
    if torch is None:
        raise Unavailable("PyTorch is not installed (pip install torch to compare with it)")
    if device.type == "cpu":
        return torch, torch.device("cpu"), (lambda: None)
    if not torch.cuda.is_available():
        raise Unavailable(f"this PyTorch ({torch.__version__}) has no CUDA support or sees no "
                          "GPU")
    tdev = torch.device("cuda", device.index)
    return torch, tdev, (lambda: torch.cuda.synchronize(tdev))


def _host_rng(seed: int):
    return B.host_numpy().random.default_rng(seed)


@dataclass
class Workload:
    """One benchmark problem at one size, with a builder per contender.

    Attributes:
        key: the family ('chain', 'reductions', 'matmul', 'mlp_step', 'mnist_epoch',
            'cnn_step', 'conv2d').
        title: a readable name of the family.
        size: the problem size, as shown in tables ('32x32', 'batch 100').
        ops: ops per iteration, for per-op figures (None where that means nothing).
        builders: impl -> function(device) -> the timed callable.
    """

    key: str
    title: str
    size: str
    ops: int | None = None
    builders: dict[str, Callable] = field(default_factory=dict)

    @property
    def group(self) -> str:
        """'title size': the pytest-benchmark group, so contenders land side by side."""
        return f"{self.title} {self.size}"

    def build(self, impl: str, device) -> Callable[[], object]:
        """The timed callable of contender `impl` on `device` (a gradflow Device or name).

        Raises:
            Unavailable: the contender cannot run here; the message says why.
            ValueError: `impl` is not one of IMPLS.
        """
        if impl not in IMPLS:
            raise ValueError(f"unknown contender {impl!r}: expected one of {IMPLS}")
        builder = self.builders.get(impl)
        if builder is None:
            raise Unavailable(f"{self.group} has no {impl} contender")
        return builder(gf.device(device))


def _forward_backward(fn, leaves, sync, grad=None):
    """The timed call of an autograd workload, the same code for gradflow and PyTorch: clear
    the leaves' gradients, y = fn(*leaves), backward (from `grad` when y is not a scalar),
    wait for the device; returns y."""
    def run():
        for t in leaves:
            t.grad = None
        y = fn(*leaves)
        if grad is None:
            y.backward()
        else:
            y.backward(grad)
        sync()
        return y
    return run


def _hand_loss(fn, dev, *host_arrays):
    """The timed call of a hand-written baseline `fn(xp, *arrays) -> (loss, *grads)`, run on
    copies of `host_arrays` on `dev`; it waits for the device and returns the loss."""
    arrays = [dev.backend.asarray(a, index=dev.index) for a in host_arrays]

    def run():
        loss = fn(dev.xp, *arrays)[0]
        dev.synchronize()
        return loss
    return run


# --- elementwise chain --------------------------------------------------------------------------
def chain_expr(x, w):
    """The elementwise chain: 8 elementwise ops and a sum, written once for gradflow and torch."""
    y = x * w
    y = y + x
    y = y.tanh()
    y = y * 0.5
    y = y - w
    y = y.exp()
    y = y / 2.0
    y = y.sigmoid()
    return y.sum()


def _chain(n: int) -> Workload:
    rng = _host_rng(n)
    xa = rng.standard_normal((n, n), dtype="float32")
    wa = rng.standard_normal((n, n), dtype="float32")

    def gradflow_(dev):
        leaves = [gf.tensor(v, device=dev, requires_grad=True) for v in (xa, wa)]
        return _forward_backward(chain_expr, leaves, dev.synchronize)

    def hand(dev):
        return _hand_loss(hand_chain, dev, xa, wa)

    def torch_(dev):
        torch, tdev, sync = _torch_device(dev)
        leaves = [torch.tensor(v, device=tdev, requires_grad=True) for v in (xa, wa)]
        return _forward_backward(chain_expr, leaves, sync)

    return Workload("chain", "elementwise chain", f"{n}x{n}", CHAIN_OPS,
                    {"gradflow": gradflow_, "hand": hand, "torch": torch_})


# --- reductions -----------------------------------------------------------------------------------
def _reductions(n: int) -> Workload:
    rng = _host_rng(n + 1)
    xa = rng.standard_normal((n, n), dtype="float32")

    def gradflow_(dev):
        def loss(x):
            return (x.sum(axis=0).sum() + x.mean(axis=1).sum() + x.max(axis=1).sum()
                    + x.logsumexp(axis=1).sum() + x.var(axis=0).sum())
        return _forward_backward(loss, [gf.tensor(xa, device=dev, requires_grad=True)],
                                 dev.synchronize)

    def hand(dev):
        return _hand_loss(hand_reductions, dev, xa)

    def torch_(dev):
        torch, tdev, sync = _torch_device(dev)

        def loss(x):  # the same reductions in PyTorch's names (amax splits ties, as gf.max)
            return (x.sum(0).sum() + x.mean(1).sum() + x.amax(1).sum()
                    + x.logsumexp(1).sum() + x.var(0, correction=0).sum())
        return _forward_backward(loss, [torch.tensor(xa, device=tdev, requires_grad=True)],
                                 sync)

    # sum, mean, max, logsumexp, var over an axis, each summed: 10 reductions and 4 additions.
    return Workload("reductions", "reductions", f"{n}x{n}", 14,
                    {"gradflow": gradflow_, "hand": hand, "torch": torch_})


# --- matmul --------------------------------------------------------------------------------------
def _matmul(n: int) -> Workload:
    rng = _host_rng(n + 2)
    aa, ba, ga = (rng.standard_normal((n, n), dtype="float32") for _ in range(3))

    def gradflow_(dev):
        leaves = [gf.tensor(v, device=dev, requires_grad=True) for v in (aa, ba)]
        return _forward_backward(operator.matmul, leaves, dev.synchronize,
                                 gf.tensor(ga, device=dev))

    def hand(dev):
        a, b, g = (dev.backend.asarray(v, index=dev.index) for v in (aa, ba, ga))

        def run():
            y = a @ b          # forward
            g @ b.T            # d/da
            a.T @ g            # d/db
            dev.synchronize()
            return y
        return run

    def torch_(dev):
        torch, tdev, sync = _torch_device(dev)
        leaves = [torch.tensor(v, device=tdev, requires_grad=True) for v in (aa, ba)]
        return _forward_backward(operator.matmul, leaves, sync, torch.tensor(ga, device=tdev))

    return Workload("matmul", "matmul fwd+bwd", f"{n}x{n}", 3,
                    {"gradflow": gradflow_, "hand": hand, "torch": torch_})


# --- MLP training --------------------------------------------------------------------------------
def initial_mlp_params(sizes, seed: int = 0):
    """Host float32 arrays [W1, b1, W2, b2, ...] for an MLP of `sizes`, drawn like nn.Linear's
    default initialisation (uniform in +-1/sqrt(fan_in)); W has shape (out, in)."""
    rng = _host_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / n_in ** 0.5
        params.append(rng.uniform(-bound, bound, (n_out, n_in)).astype("float32"))
        params.append(rng.uniform(-bound, bound, (n_out,)).astype("float32"))
    return params


def gradflow_mlp(sizes, params, dev, lr: float = 1e-3):
    """A gradflow MLP holding copies of `params`, and its Adam optimizer."""
    model = _load(gf.nn.MLP(sizes, device=dev), params, dev, "gradflow_mlp")
    return model, gf.optim.Adam(model.parameters(), lr=lr)


def _load(model, params, dev, who):
    """Copy the host arrays `params` into `model`'s parameters, in order; returns model."""
    ps = list(model.parameters())
    if len(ps) != len(params):
        raise ValueError(f"{who}: the model has {len(ps)} parameters, {len(params)} initial "
                         "values were given")
    with gf.no_grad():
        for p, v in zip(ps, params):
            if tuple(p.shape) != v.shape:
                raise ValueError(f"{who}: parameter of shape {p.shape} cannot take an "
                                 f"initial value of shape {v.shape}")
            p.data[...] = dev.backend.asarray(v, index=dev.index)
    return model


def torch_mlp(torch, sizes, params, tdev):
    """The same MLP in PyTorch (nn.Linear and nn.ReLU), holding copies of `params`."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(tdev)
    with torch.no_grad():
        for p, v in zip(model.parameters(), params):
            p.copy_(torch.from_numpy(v))
    return model


def _batches(sizes, batch: int, count: int = 8, seed: int = 0):
    # Random images with random labels, cycled: steps see different data (as in training) and
    # the loss stays in its usual range however many steps the timer runs.
    rng = _host_rng(seed + batch)
    xs = [rng.standard_normal((batch, sizes[0]), dtype="float32") for _ in range(count)]
    ts = [rng.integers(0, sizes[-1], batch).astype("int64") for _ in range(count)]
    return xs, ts


def _training_step(model, opt, loss_fn, data, sync):
    """The timed call of a training step, the same code for gradflow and PyTorch: each call
    takes the next batch of `data` (cycled), steps the optimizer and waits for the device."""
    it = [0]

    def run():
        x, t = data[it[0] % len(data)]
        it[0] += 1
        opt.zero_grad()
        loss = loss_fn(model(x), t)
        loss.backward()
        opt.step()
        sync()
        return loss
    return run


def _hand_training_step(cls, params, xs, ts, dev, **options):
    """A step of the hand-written model `cls` (HandMLP, HandCNN) on the cycled batches."""
    # Copies: the hand models update their arrays in place, and on the CPU asarray would share.
    model = cls([dev.backend.asarray(p.copy(), index=dev.index) for p in params], dev.xp,
                **options)
    data = [(dev.backend.asarray(x, index=dev.index), dev.backend.asarray(t, index=dev.index))
            for x, t in zip(xs, ts)]
    it = [0]

    def run():
        x, t = data[it[0] % len(data)]
        it[0] += 1
        loss = model.step(x, t)
        dev.synchronize()
        return loss
    return run


def _mlp_step(sizes, batch: int) -> Workload:
    params = initial_mlp_params(sizes)
    xs, ts = _batches(sizes, batch)
    name = "-".join(map(str, sizes))

    def gradflow_(dev):
        model, opt = gradflow_mlp(sizes, params, dev)
        data = [(gf.tensor(x, device=dev), gf.tensor(t, device=dev)) for x, t in zip(xs, ts)]
        return _training_step(model, opt, gf.nn.functional.cross_entropy, data,
                              dev.synchronize)

    def hand(dev):
        return _hand_training_step(HandMLP, params, xs, ts, dev)

    def torch_(dev):
        torch, tdev, sync = _torch_device(dev)
        model = torch_mlp(torch, sizes, params, tdev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # PyTorch's default Adam
        data = [(torch.from_numpy(x).to(tdev), torch.from_numpy(t).to(tdev))
                for x, t in zip(xs, ts)]
        return _training_step(model, opt, torch.nn.functional.cross_entropy, data, sync)

    return Workload("mlp_step", f"MLP {name} + Adam step", f"batch {batch}", None,
                    {"gradflow": gradflow_, "hand": hand, "torch": torch_})


def _mnist_epoch(sizes, samples: int | None, batch: int = 100) -> Workload:
    params = initial_mlp_params(sizes, seed=1)
    label = "MNIST sample" + ("" if samples is None else f" ({samples})")

    def dataset(dev):
        ds = gf.datasets.MNISTSample(train=True, device=dev)
        if samples is not None:
            ds = gf.data.TensorDataset(*(t[:samples] for t in ds.tensors))
        return ds

    # Each timed call is one epoch from the same initial weights and a fresh optimizer: the
    # weights are restored in place first (a copy of 1.8M numbers, negligible), so every epoch
    # does the same work and the loss never drifts towards underflow however many are timed.
    def gradflow_(dev):
        ds = dataset(dev)
        loader = gf.data.DataLoader(ds, batch_size=batch, shuffle=True, seed=0, device=dev)
        model, _ = gradflow_mlp(sizes, params, dev)
        start = [p.data.copy() for p in model.parameters()]
        cross_entropy = gf.nn.functional.cross_entropy

        def run():
            for p, v in zip(model.parameters(), start):
                p.data[...] = v
            opt = gf.optim.Adam(model.parameters(), lr=1e-3)
            for x, t in loader:
                opt.zero_grad()
                loss = cross_entropy(model(x), t)
                loss.backward()
                opt.step()
            dev.synchronize()
            return loss
        return run

    def hand(dev):
        xp = dev.xp
        ds = dataset(dev)
        x_all, t_all = (t.data for t in ds.tensors)
        n = x_all.shape[0]
        start = [dev.backend.asarray(p, index=dev.index) for p in params]
        rng = _host_rng(0)

        def run():
            mlp = HandMLP([p.copy() for p in start], xp)
            order = dev.backend.asarray(rng.permutation(n), index=dev.index)
            for i in range(0, n, batch):
                idx = order[i:i + batch]
                loss = mlp.step(x_all[idx], t_all[idx])
            dev.synchronize()
            return loss
        return run

    def torch_(dev):
        torch, tdev, sync = _torch_device(dev)
        ds = dataset(dev)
        x_all, t_all = (torch.from_numpy(t.numpy()).to(tdev) for t in ds.tensors)
        n = x_all.shape[0]
        model = torch_mlp(torch, sizes, params, tdev)
        start = [p.detach().clone() for p in model.parameters()]
        cross_entropy = torch.nn.functional.cross_entropy
        gen = torch.Generator().manual_seed(0)

        def run():
            with torch.no_grad():
                for p, v in zip(model.parameters(), start):
                    p.copy_(v)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            order = torch.randperm(n, generator=gen).to(tdev)
            for i in range(0, n, batch):
                idx = order[i:i + batch]
                opt.zero_grad()
                loss = cross_entropy(model(x_all[idx]), t_all[idx])
                loss.backward()
                opt.step()
            sync()
            return loss.detach()
        return run

    return Workload("mnist_epoch", "MNIST epoch", f"{label}, batch {batch}", None,
                    {"gradflow": gradflow_, "hand": hand, "torch": torch_})


# --- CNN training (PyTorch's MNIST example) ------------------------------------------------------
def initial_cnn_params(seed: int = 0, shapes=CNN_SHAPES):
    """Host float32 arrays [w1, b1, w2, b2, w3, b3, w4, b4] of the MNIST example CNN, drawn like
    PyTorch's default initialisation of nn.Conv2d and nn.Linear: uniform in +-1/sqrt(fan_in),
    fan_in = in_channels * kh * kw for a convolution, in_features for a linear layer; each
    bias with the fan_in of its weight."""
    rng = _host_rng(seed)
    params = []
    for w_shape, b_shape in zip(shapes[0::2], shapes[1::2]):
        fan_in = 1
        for d in w_shape[1:]:
            fan_in *= d
        bound = 1.0 / fan_in ** 0.5
        params.append(rng.uniform(-bound, bound, w_shape).astype("float32"))
        params.append(rng.uniform(-bound, bound, b_shape).astype("float32"))
    return params


def gradflow_cnn(params, dev, lr: float = 1e-3):
    """The MNIST example CNN in gradflow's modules, holding copies of `params`, and its Adam."""
    nn = gf.nn
    (o1, c0, k1, _), _, (o2, c1, k2, _), _, (f1, flat), _, (f2, _), _ = (p.shape for p in params)
    model = nn.Sequential(
        nn.Conv2d(c0, o1, k1, device=dev), nn.ReLU(), nn.Conv2d(c1, o2, k2, device=dev),
        nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(flat, f1, device=dev), nn.ReLU(),
        nn.Linear(f1, f2, device=dev))
    model = _load(model, params, dev, "gradflow_cnn")
    return model, gf.optim.Adam(model.parameters(), lr=lr)


def torch_cnn(torch, params, tdev):
    """The same CNN in PyTorch (torch.nn, as in its MNIST example), holding copies of
    `params`."""
    nn = torch.nn
    (o1, c0, k1, _), _, (o2, c1, k2, _), _, (f1, flat), _, (f2, _), _ = (p.shape for p in params)
    model = nn.Sequential(
        nn.Conv2d(c0, o1, k1), nn.ReLU(), nn.Conv2d(c1, o2, k2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(flat, f1), nn.ReLU(), nn.Linear(f1, f2)).to(tdev)
    with torch.no_grad():
        for p, v in zip(model.parameters(), params):
            p.copy_(torch.from_numpy(v))
    return model


def _image_batches(batch: int, shape=(1, 28, 28), classes: int = 10, count: int = 8,
                   seed: int = 0):
    # As _batches: random images (MNIST-sized) with random labels, cycled.
    rng = _host_rng(seed + 7 * batch)
    xs = [rng.standard_normal((batch,) + tuple(shape), dtype="float32") for _ in range(count)]
    ts = [rng.integers(0, classes, batch).astype("int64") for _ in range(count)]
    return xs, ts


def _cnn_step(batch: int) -> Workload:
    params = initial_cnn_params()
    xs, ts = _image_batches(batch)

    def gradflow_(dev):
        model, opt = gradflow_cnn(params, dev)
        data = [(gf.tensor(x, device=dev), gf.tensor(t, device=dev)) for x, t in zip(xs, ts)]
        return _training_step(model, opt, gf.nn.functional.cross_entropy, data,
                              dev.synchronize)

    def hand(dev):
        return _hand_training_step(HandCNN, params, xs, ts, dev, dropout=(0.0, 0.0))

    def torch_(dev):
        torch, tdev, sync = _torch_device(dev)
        model = torch_cnn(torch, params, tdev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # PyTorch's default Adam
        data = [(torch.from_numpy(x).to(tdev), torch.from_numpy(t).to(tdev))
                for x, t in zip(xs, ts)]
        return _training_step(model, opt, torch.nn.functional.cross_entropy, data, sync)

    return Workload("cnn_step", "MNIST CNN + Adam step", f"batch {batch}", None,
                    {"gradflow": gradflow_, "hand": hand, "torch": torch_})


# --- a convolution alone -------------------------------------------------------------------------
def _conv2d(n: int, c: int, o: int, hw: int) -> Workload:
    rng = _host_rng(n * 1000 + hw)
    bound = 1.0 / (c * 9) ** 0.5  # nn.Conv2d's default initialisation
    xa = rng.standard_normal((n, c, hw, hw), dtype="float32")
    wa = rng.uniform(-bound, bound, (o, c, 3, 3)).astype("float32")
    ba = rng.uniform(-bound, bound, (o,)).astype("float32")
    ga = rng.standard_normal((n, o, hw, hw), dtype="float32")  # the output's gradient

    def gradflow_(dev):
        conv = gf.nn.functional.conv2d
        leaves = [gf.tensor(v, device=dev, requires_grad=True) for v in (xa, wa, ba)]
        return _forward_backward(lambda x, w, b: conv(x, w, b, padding=1), leaves,
                                 dev.synchronize, gf.tensor(ga, device=dev))

    def hand(dev):
        conv = HandConv2d(dev.xp, padding=1)
        x, w, b, g = (dev.backend.asarray(v, index=dev.index) for v in (xa, wa, ba, ga))

        def run():
            y = conv(x, w, b, g)[0]
            dev.synchronize()
            return y
        return run

    def torch_(dev):
        torch, tdev, sync = _torch_device(dev)
        conv = torch.nn.functional.conv2d
        leaves = [torch.tensor(v, device=tdev, requires_grad=True) for v in (xa, wa, ba)]
        return _forward_backward(lambda x, w, b: conv(x, w, b, padding=1), leaves, sync,
                                 torch.tensor(ga, device=tdev))

    return Workload("conv2d", "conv2d 3x3 pad 1 fwd+bwd", f"batch {n}, {c}->{o}, {hw}x{hw}",
                    None, {"gradflow": gradflow_, "hand": hand, "torch": torch_})


def workloads(mode: str = "quick") -> list[Workload]:
    """Every workload of `mode` ('tiny', 'quick' or 'full'), in report order.

    Raises:
        ValueError: an unknown mode.
    """
    if mode not in MODES:
        raise ValueError(f"unknown benchmark mode {mode!r}: expected one of {sorted(MODES)}")
    m = MODES[mode]
    out = [_chain(n) for n in m["chain"]]
    out += [_reductions(n) for n in m["reductions"]]
    out += [_matmul(n) for n in m["matmul"]]
    out += [_mlp_step(m["mlp_sizes"], b) for b in m["mlp_batches"]]
    out.append(_mnist_epoch(m["mlp_sizes"], m["epoch_samples"]))
    out += [_cnn_step(b) for b in m["cnn_batches"]]
    out += [_conv2d(*size) for size in m["conv2d"]]
    return out
