"""The optimizer's state follows its parameters: after `Module.to` (a new device or dtype) the
next step moves the state there, once, and updates with the parameter's device current."""
import contextlib

import numpy as np
import pytest

import gradflow as gf
import gradflow.nn as nn
import gradflow.optim as optim
from gradflow.backend import Device, fused_numpy

CONFIGS = [
    (optim.Adam, dict(lr=1e-2)),
    (optim.AdamW, dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (optim.RMSprop, dict(lr=1e-2, centered=True, momentum=0.5)),
]
IDS = ["Adam", "AdamW amsgrad", "SGD nesterov", "RMSprop centered momentum"]
SHAPES = [(4, 3), (3,)]


def _grads(seed, steps):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]


def _params(dtype, device):
    rng = np.random.default_rng(0)
    return [nn.Parameter(gf.tensor(rng.standard_normal(s), dtype=dtype, device=device))
            for s in SHAPES]


def _step(opt, params, grads):
    for p, g in zip(params, grads):
        p.grad = gf.Tensor._make(p.device.backend.asarray(g, dtype=p.dtype, index=p.device.index),
                                 p.device, False, None)
    opt.step()


def _bits(t):
    return t.dtype.str, t.numpy().tobytes()


class _Model(nn.Module):
    def __init__(self, params):
        super().__init__()
        self.w, self.b = params


@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=IDS)
def test_state_follows_a_dtype_change_of_the_model(cls, kwargs, device):
    model = _Model(_params(gf.float32, device))
    opt = cls(model.parameters(), **kwargs)
    before, after = _grads(1, 2), _grads(2, 2)
    for g in before:
        _step(opt, list(model.parameters()), g)
    saved = opt.state_dict()  # (shares the float32 state arrays: load_state_dict copies)

    model.to(dtype=gf.float64)
    # The reference: a fresh float64 optimizer over the same values, its state cast on load.
    ref_params = [nn.Parameter(gf.tensor(p.numpy(), device=device)) for p in model.parameters()]
    ref_opt = cls(ref_params, **kwargs)
    ref_opt.load_state_dict(saved)
    for g in after:
        _step(opt, list(model.parameters()), g)
        _step(ref_opt, ref_params, g)
        for p, r in zip(model.parameters(), ref_params):
            assert _bits(p) == _bits(r)
    for p, r in zip(model.parameters(), ref_params):
        state, ref_state = opt.state[p], ref_opt.state[r]
        assert sorted(state) == sorted(ref_state)
        for k, v in state.items():
            if isinstance(v, gf.Tensor):
                assert v.dtype == gf.float64 and v.device is device, k
                assert _bits(v) == _bits(ref_state[k]), k
            else:
                assert v == ref_state[k], k


class _FakeGPU:
    """A stand-in for a GPU's backend, for a Device of its own: NumPy arrays underneath, but it
    records what is copied onto and off it, and which of its devices is current (`use`) when
    an optimizer update runs."""

    xp = np
    name = "fake-gpu"

    def __init__(self):
        self.current = None   # the index made current by `use`, None outside it
        self.placed = []      # the `index` of every host-to-device copy
        self.fetched = 0      # device-to-host copies
        self.updates = []     # (update, current index when it ran)

    @contextlib.contextmanager
    def use(self, index=0):
        previous, self.current = self.current, index
        try:
            yield
        finally:
            self.current = previous

    def asarray(self, data, dtype=None, index=0):
        self.placed.append(index)
        return np.array(data, dtype=dtype)  # a copy, as a host-to-device copy is

    def to_host(self, a):
        self.fetched += 1
        return a.copy()

    def _recorded(name):
        def update(self, *args, **kwargs):
            self.updates.append((name, self.current))
            getattr(fused_numpy, name)(*args, **kwargs)
        return update

    adam_update = _recorded("adam_update")
    sgd_update = _recorded("sgd_update")
    rmsprop_update = _recorded("rmsprop_update")
    del _recorded


def _put(params, dev):
    # What Module.to does to a Parameter (its array replaced, the object kept), for a device
    # that Module.to cannot reach: the stand-in's arrays are NumPy arrays underneath.
    for p in params:
        p.data = dev.backend.asarray(p.numpy(), index=dev.index)
        p.device = dev
        p.grad = None


@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=IDS)
def test_state_follows_the_model_to_another_device_and_back(cls, kwargs):
    cpu = gf.device("cpu")
    fake = Device("cuda", 1, _FakeGPU())  # "cuda:1": the update must not run on GPU 0
    model = _Model(_params(gf.float32, cpu))
    params = list(model.parameters())
    opt = cls(params, **kwargs)
    ref_params = _params(gf.float32, cpu)  # the same run, all on the CPU
    ref_opt = cls(ref_params, **kwargs)
    grads = _grads(3, 6)

    def step_both(g):
        _step(opt, params, g)
        _step(ref_opt, ref_params, g)
        for p, r in zip(params, ref_params):
            assert _bits(p) == _bits(r)

    for g in grads[:2]:
        step_both(g)
    n_state = sum(isinstance(v, gf.Tensor) for s in opt.state.values() for v in s.values())

    _put(params, fake)  # CPU -> cuda:1
    placed = len(fake.backend.placed)
    for g in grads[2:4]:
        step_both(g)
    for p in params:
        for k, v in opt.state[p].items():
            if isinstance(v, gf.Tensor):
                assert v.device is fake, k
    # Each state tensor was copied over once (in the first step), onto cuda:1, as were the
    # gradients of the two steps ...
    copies = fake.backend.placed[placed:]
    assert copies == [1] * (n_state + 2 * len(params))
    # ... and every update ran with cuda:1 current.
    assert len(fake.backend.updates) == 2 * len(params)
    assert {current for _, current in fake.backend.updates} == {1}

    model.to("cpu")  # cuda:1 -> CPU, through Module.to itself
    fetched = fake.backend.fetched
    for g in grads[4:]:
        step_both(g)
    assert fake.backend.fetched - fetched == n_state  # the state fetched once, in one step
    for p in params:
        assert p.device is cpu
        for k, v in opt.state[p].items():
            if isinstance(v, gf.Tensor):
                assert v.device is cpu and isinstance(v.data, np.ndarray), k
    assert len(fake.backend.updates) == 2 * len(params)  # no update ran on the stand-in since
