"""Optimizers against their update equations computed by hand in NumPy, plus groups, validation,
in-place updates and state_dict round trips."""
import importlib.util
import os
import pickle
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

import gradflow as gf
import gradflow.nn as nn
import gradflow.optim as optim
from gradflow.autograd import BackwardError
from gradflow.backend import fused_numpy

SHAPES = [(3, 4), (5,)]
STEPS = 5


# --- reference equations, by hand, in float64 NumPy ---------------------------------------------
def ref_sgd(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
            maximize=False):
    buf = None
    out = []
    for g in grads:
        g = -g if maximize else g
        d = g + weight_decay * p
        if momentum:
            buf = d.copy() if buf is None else momentum * buf + (1 - dampening) * d
            d = d + momentum * buf if nesterov else buf
        p = p - lr * d
        out.append(p)
    return out


def ref_adam(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
             decoupled=False, maximize=False):
    b1, b2 = betas
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    vmax = np.zeros_like(p)
    out = []
    for t, g in enumerate(grads, start=1):
        g = -g if maximize else g
        if decoupled:
            p = p * (1 - lr * weight_decay)
        else:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        vmax = np.maximum(vmax, v)
        vv = vmax if amsgrad else v
        p = p - lr / (1 - b1 ** t) * m / (np.sqrt(vv) / np.sqrt(1 - b2 ** t) + eps)
        out.append(p)
    return out


def ref_rmsprop(p, grads, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                centered=False, maximize=False):
    s = np.zeros_like(p)
    a = np.zeros_like(p)
    buf = np.zeros_like(p)
    out = []
    for g in grads:
        g = -g if maximize else g
        g = g + weight_decay * p
        s = alpha * s + (1 - alpha) * g * g
        if centered:
            a = alpha * a + (1 - alpha) * g
            den = np.sqrt(s - a * a) + eps
        else:
            den = np.sqrt(s) + eps
        if momentum:
            buf = momentum * buf + g / den
            p = p - lr * buf
        else:
            p = p - lr * g / den
        out.append(p)
    return out


CONFIGS = [
    ("SGD plain", optim.SGD, ref_sgd, dict(lr=0.1)),
    ("SGD momentum", optim.SGD, ref_sgd, dict(lr=0.1, momentum=0.9)),
    ("SGD dampening", optim.SGD, ref_sgd, dict(lr=0.1, momentum=0.8, dampening=0.3)),
    ("SGD nesterov", optim.SGD, ref_sgd, dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD weight_decay", optim.SGD, ref_sgd, dict(lr=0.1, momentum=0.5, weight_decay=0.1)),
    ("SGD maximize", optim.SGD, ref_sgd, dict(lr=0.1, maximize=True, weight_decay=0.01)),
    ("Adam", optim.Adam, ref_adam, dict(lr=1e-2)),
    ("Adam betas", optim.Adam, ref_adam, dict(lr=3e-2, betas=(0.5, 0.8), eps=1e-3)),
    ("Adam weight_decay", optim.Adam, ref_adam, dict(lr=1e-2, weight_decay=0.1)),
    ("Adam amsgrad", optim.Adam, ref_adam, dict(lr=1e-2, amsgrad=True)),
    ("Adam maximize", optim.Adam, ref_adam, dict(lr=1e-2, maximize=True)),
    ("AdamW", optim.AdamW, lambda p, g, **kw: ref_adam(p, g, decoupled=True, **kw),
     dict(lr=1e-2, weight_decay=0.1)),
    ("AdamW amsgrad", optim.AdamW, lambda p, g, **kw: ref_adam(p, g, decoupled=True, **kw),
     dict(lr=1e-2, weight_decay=0.05, amsgrad=True)),
    ("RMSprop", optim.RMSprop, ref_rmsprop, dict(lr=1e-2)),
    ("RMSprop centered", optim.RMSprop, ref_rmsprop, dict(lr=1e-2, centered=True)),
    ("RMSprop momentum", optim.RMSprop, ref_rmsprop,
     dict(lr=1e-2, momentum=0.9, weight_decay=0.1, alpha=0.9)),
    ("RMSprop centered momentum", optim.RMSprop, ref_rmsprop,
     dict(lr=1e-2, momentum=0.5, centered=True, maximize=True)),
]


def _run(cls, kwargs, device, dtype, seed=0):
    """STEPS steps of `cls` on two parameters with fixed random gradients; returns everything."""
    rng = np.random.default_rng(seed)
    inits = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) for s in SHAPES] for _ in range(STEPS)]
    params = [nn.Parameter(gf.tensor(a, dtype=dtype, device=device)) for a in inits]
    opt = cls(params, **kwargs)
    history = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = gf.tensor(g, dtype=dtype, device=device)
        opt.step()
        history.append([p.numpy().astype(np.float64) for p in params])
    return inits, grads, history, opt, params


@pytest.mark.parametrize("name, cls, ref, kwargs", CONFIGS, ids=[c[0] for c in CONFIGS])
@pytest.mark.parametrize("dtype", [gf.float64, gf.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("fused", [None, False], ids=["fused", "reference"])
def test_steps_match_the_reference_equations(name, cls, ref, kwargs, dtype, fused, device):
    inits, grads, history, _, _ = _run(cls, {**kwargs, "fused": fused}, device, dtype)
    rtol, atol = (1e-10, 1e-12) if dtype == gf.float64 else (2e-5, 2e-6)
    for i, p0 in enumerate(inits):
        expected = ref(p0, [g[i] for g in grads], **kwargs)
        for step in range(STEPS):
            np.testing.assert_allclose(history[step][i], expected[step], rtol=rtol, atol=atol,
                                       err_msg=f"{name}, parameter {i}, step {step + 1}")


def test_unknown_cpu_implementation_is_refused():
    previous = fused_numpy.fused_cpu_impl()
    for name in ("fast", "numexpr"):  # numexpr's update was removed: slower than NumPy's
        with pytest.raises(ValueError, match=f"must be 'numpy' or 'numba', got '{name}'"):
            fused_numpy.fused_cpu_impl(name)
    assert fused_numpy.fused_cpu_impl() == previous  # a refused choice changes nothing


@pytest.mark.parametrize("cls, kwargs", [
    (optim.Adam, dict(lr=1e-2)), (optim.Adam, dict(lr=1e-2, weight_decay=0.1, maximize=True)),
    (optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
], ids=["Adam", "Adam weight_decay maximize", "AdamW"])
@pytest.mark.parametrize("dtype", [gf.float64, gf.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("shape", [(3, 4), (700, 1000)], ids=["small", "blocked-threaded"])
def test_numba_implementation_gives_the_numpy_bits(cls, kwargs, dtype, shape):
    pytest.importorskip("numba")
    rng = np.random.default_rng(4)
    init = rng.standard_normal(shape)
    grads = [rng.standard_normal(shape) for _ in range(4)]
    previous = fused_numpy.fused_cpu_impl()
    got = {}
    try:
        for impl in ("numpy", "numba"):
            fused_numpy.fused_cpu_impl(impl)
            p = nn.Parameter(gf.tensor(init, dtype=dtype, device="cpu"))
            opt = cls([p], **kwargs)
            for g in grads:
                p.grad = gf.tensor(g, dtype=dtype, device="cpu")
                opt.step()
            state = opt.state_dict()["state"][0]
            got[impl] = [p.numpy(), state["exp_avg"].numpy(), state["exp_avg_sq"].numpy()]
    finally:
        fused_numpy.fused_cpu_impl(previous)
    for name, a, b in zip(["param", "exp_avg", "exp_avg_sq"], got["numpy"], got["numba"]):
        assert a.tobytes() == b.tobytes(), f"{cls.__name__} {kwargs}: {name} differs"


def test_numba_is_the_default_where_installed():
    code = "from gradflow.backend import fused_numpy as f; print(f.fused_cpu_impl())"
    env = {k: v for k, v in os.environ.items() if k != "GRADFLOW_FUSED_CPU"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ("numba" if importlib.util.find_spec("numba") else "numpy")
    env["GRADFLOW_FUSED_CPU"] = "numba-please"
    err = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True).stderr
    assert "must be 'numpy' or 'numba', got 'numba-please'" in err


# --- updates in place -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls, kwargs", [
    (optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, {}), (optim.AdamW, {}),
    (optim.RMSprop, dict(momentum=0.9, centered=True)),
])
def test_updates_are_in_place_and_bump_versions(cls, kwargs, device):
    p = nn.Parameter(gf.randn(4, 3, device=device))
    opt = cls([p], **kwargs)
    arr = p.data
    y = (p * p).sum()  # a graph that saved p before the step
    p.grad = gf.ones(4, 3, device=device)
    v0 = p._version
    opt.step()
    state_arrays = {k: v.data for k, v in opt.state[p].items() if isinstance(v, gf.Tensor)}
    p.grad = gf.ones(4, 3, device=device)
    opt.step()
    assert p.data is arr and p._version == v0 + 2
    assert all(opt.state[p][k].data is a for k, a in state_arrays.items())
    with pytest.raises(BackwardError, match="modified in place"):
        y.backward()


@pytest.mark.parametrize("cls", [optim.Adam, optim.SGD, optim.RMSprop])
def test_a_cpu_step_allocates_no_parameter_sized_arrays(cls):
    p = nn.Parameter(gf.randn(1000, 1000, device="cpu"))  # tracemalloc sees host memory only
    opt = cls([p], lr=1e-3, momentum=0.9) if cls is not optim.Adam else cls([p])
    p.grad = gf.randn(1000, 1000, device="cpu")
    opt.step()  # the first step creates the state and the scratch buffer
    tracemalloc.start()
    try:
        opt.step()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < p.data.nbytes // 10, f"a step allocated {peak} bytes"


def test_parameters_without_gradients_are_skipped():
    a, b = nn.Parameter(gf.ones(2)), nn.Parameter(gf.ones(2))
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = gf.ones(2)
    opt.step()
    assert b not in opt.state and (b.numpy() == 1).all() and (a.numpy() < 1).all()


def test_zero_grad_and_closure():
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x = gf.randn(4, 3)

    def closure():
        opt.zero_grad()
        loss = (model(x) ** 2).mean()
        loss.backward()
        return loss

    first = opt.step(closure).item()
    second = opt.step(closure).item()
    assert second < first
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model(x).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert all((p.grad.numpy() == 0).all() for p in model.parameters())


def test_gradient_of_the_wrong_shape_is_named():
    p = nn.Parameter(gf.zeros(3))
    opt = optim.SGD([p], lr=0.1)
    p.grad = gf.zeros(4)
    with pytest.raises(ValueError, match=r"shape \(3,\).*shape \(4,\)"):
        opt.step()


# --- parameter groups -----------------------------------------------------------------------------
def test_param_groups_have_their_own_lr(device):
    model = nn.Sequential(nn.Linear(2, 2, device=device), nn.Linear(2, 2, device=device))
    opt = optim.SGD([{"params": model[0].parameters(), "lr": 1.0},
                     {"params": model[1].parameters()}], lr=0.1, momentum=0.0)
    assert [g["lr"] for g in opt.param_groups] == [1.0, 0.1]
    before = [p.numpy().copy() for p in model.parameters()]
    for p in model.parameters():
        p.grad = gf.ones_like(p)
    opt.step()
    after = [p.numpy() for p in model.parameters()]
    np.testing.assert_allclose(after[0], before[0] - 1.0, rtol=1e-6)
    np.testing.assert_allclose(after[2], before[2] - 0.1, rtol=1e-6)
    extra = nn.Parameter(gf.zeros(2, device=device))
    opt.add_param_group({"params": [extra], "lr": 0.5})
    assert opt.param_groups[-1]["momentum"] == 0.0 and opt.param_groups[-1]["lr"] == 0.5
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [extra]})


# --- validation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("make, match", [
    (lambda ps: optim.SGD(ps, lr=-0.1), r"learning rate \(lr\) value -0.1"),
    (lambda ps: optim.SGD(ps), "required optimization parameter 'lr'"),
    (lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.5), "momentum value -0.5"),
    (lambda ps: optim.SGD(ps, lr=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
    (lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1), "weight_decay value -1"),
    (lambda ps: optim.Adam(ps, betas=(1.0, 0.999)), "beta parameter at index 0 value 1.0"),
    (lambda ps: optim.Adam(ps, betas=(0.9, -0.1)), "beta parameter at index 1 value -0.1"),
    (lambda ps: optim.Adam(ps, betas=0.9), r"betas must be a pair"),
    (lambda ps: optim.Adam(ps, eps=-1e-8), r"epsilon \(eps\) value -1e-08"),
    (lambda ps: optim.AdamW(ps, lr=float("nan")), r"invalid learning rate \(lr\) nan"),
    (lambda ps: optim.RMSprop(ps, alpha=1.5), "alpha value 1.5"),
    (lambda ps: optim.RMSprop(ps, momentum=-0.1), "momentum value -0.1"),
    (lambda ps: optim.Adam([{"params": ps, "lr": -1.0}]), r"learning rate \(lr\) value -1.0"),
])
def test_bad_hyperparameters_are_named(make, match):
    with pytest.raises(ValueError, match=match):
        make([nn.Parameter(gf.zeros(2))])


def test_bad_parameter_lists():
    p = nn.Parameter(gf.zeros(2))
    with pytest.raises(TypeError, match="not a set"):
        optim.SGD({p}, lr=0.1)
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError, match="appears twice"):
        optim.Adam([p, p])
    with pytest.raises(TypeError, match="parameter 0 of the group is a int"):
        optim.Adam([3])
    with pytest.raises(ValueError, match="non-leaf"):
        optim.Adam([p * 2])
    with pytest.raises(TypeError, match="amsgrad must be True or False"):
        optim.Adam([p], amsgrad="yes")


# --- state_dict -----------------------------------------------------------------------------------
def _train(model, opt, steps, seed):
    rng = np.random.default_rng(seed)
    losses = []
    dev = next(model.parameters()).device
    for _ in range(steps):
        x = gf.tensor(rng.standard_normal((8, 6)).astype(np.float32), device=dev)
        y = gf.tensor(rng.integers(0, 3, 8), device=dev)
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _host(sd):
    # What a checkpoint keeps: host arrays and plain Python values.
    return {"state": {i: {k: (v.numpy() if isinstance(v, gf.Tensor) else v)
                          for k, v in s.items()} for i, s in sd["state"].items()},
            "param_groups": sd["param_groups"]}


@pytest.mark.parametrize("cls, kwargs", [
    (optim.Adam, dict(lr=1e-2, amsgrad=True)), (optim.AdamW, dict(lr=1e-2)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (optim.RMSprop, dict(lr=1e-3, centered=True, momentum=0.5)),
])
def test_resuming_from_a_state_dict_continues_exactly(cls, kwargs, device):
    gf.manual_seed(0)
    model = nn.MLP([6, 16, 3], device=device)
    opt = cls(model.parameters(), **kwargs)
    _train(model, opt, 3, seed=1)
    blob = pickle.dumps({"model": {k: v.numpy() for k, v in model.state_dict().items()},
                         "optim": _host(opt.state_dict())})
    uninterrupted = _train(model, opt, 3, seed=2)

    gf.manual_seed(123)  # a different initialisation, overwritten by the checkpoint
    resumed_model = nn.MLP([6, 16, 3], device=device)
    resumed_opt = cls(resumed_model.parameters(), lr=0.5)  # hyperparameters come from the state
    ckpt = pickle.loads(blob)
    resumed_model.load_state_dict(ckpt["model"])
    resumed_opt.load_state_dict(ckpt["optim"])
    assert resumed_opt.param_groups[0]["lr"] == kwargs["lr"]
    resumed = _train(resumed_model, resumed_opt, 3, seed=2)
    assert resumed == uninterrupted  # the same losses, bit for bit
    for a, b in zip(model.parameters(), resumed_model.parameters()):
        assert a.numpy().tobytes() == b.numpy().tobytes()
    sa, sb = opt.state_dict()["state"], resumed_opt.state_dict()["state"]
    for i in sa:
        for k in sa[i]:
            va, vb = sa[i][k], sb[i][k]
            assert (va.numpy().tobytes() == vb.numpy().tobytes()) if isinstance(va, gf.Tensor) \
                else va == vb


def test_state_dict_layout_matches_pytorch():
    model = nn.Linear(2, 2)
    opt = optim.Adam(model.parameters(), lr=0.01)
    model(gf.randn(3, 2)).sum().backward()
    opt.step()
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert sd["param_groups"][0]["params"] == [0, 1]
    assert sd["param_groups"][0]["lr"] == 0.01 and sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert sorted(sd["state"][0]) == ["exp_avg", "exp_avg_sq", "step"]
    assert sd["state"][0]["step"] == 1


def test_load_state_dict_refuses_other_shapes_kinds_and_layouts():
    model = nn.MLP([4, 8, 2])
    opt = optim.Adam(model.parameters())
    model(gf.randn(3, 4)).sum().backward()
    opt.step()
    sd = opt.state_dict()

    other = nn.MLP([4, 16, 2])
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 0 has shape \(8, 4\), the "
                                         r"parameter \(16, 4\)"):
        optim.Adam(other.parameters()).load_state_dict(sd)
    deeper = nn.MLP([4, 8, 8, 2])
    with pytest.raises(ValueError, match="group 0 has 4 parameter.*6 here"):
        optim.Adam(deeper.parameters()).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"\['exp_avg', 'exp_avg_sq'\].*another optimizer"):
        optim.SGD(model.parameters(), lr=0.1, momentum=0.9).load_state_dict(sd)
    with pytest.raises(ValueError, match="'state' and 'param_groups'"):
        opt.load_state_dict({"weights": 1})
    two_groups = optim.Adam([{"params": list(model.parameters())[:2]},
                             {"params": list(model.parameters())[2:]}])
    with pytest.raises(ValueError, match="1 parameter group.*this optimizer 2"):
        two_groups.load_state_dict(sd)
    fresh = optim.Adam(model.parameters())
    bad = _host(sd)
    bad["state"][0]["step"] = -3
    with pytest.raises(ValueError, match="'step' of parameter 0 .*-3"):
        fresh.load_state_dict(bad)
    assert fresh.state == {}  # a failed load changes nothing


def test_loaded_state_is_a_copy():
    p = nn.Parameter(gf.ones(3))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = gf.ones(3)
    opt.step()
    sd = _host(opt.state_dict())
    saved = sd["state"][0]["momentum_buffer"].copy()
    opt2 = optim.SGD([p], lr=0.1, momentum=0.9)
    opt2.load_state_dict(sd)
    p.grad = gf.ones(3)
    opt2.step()
    np.testing.assert_array_equal(sd["state"][0]["momentum_buffer"], saved)


def test_repr_lists_groups():
    text = repr(optim.SGD(nn.Linear(2, 3).parameters(), lr=0.1))
    assert text.startswith("SGD (\nParameter Group 0  # 2 tensors, 9 values")
    assert "    lr: 0.1" in text
