"""Each optimizer's fused update (NumPy passes, Numba, CUDA kernel) against its reference
`_update` (plain `xp` code, `fused=False`), on every option, several steps, float32 and float64;
and that `fused` chooses what it says it does."""
import itertools

import numpy as np
import pytest

import gradflow as gf
import gradflow.nn as nn
import gradflow.optim as optim
from gradflow.backend import fused_numpy, numpy_backend

SHAPES = [(3, 4), (7,), (520, 512)]  # the last is cut into blocks shared between threads
STEPS = 4


def _configs():
    out = []
    for wd, maximize in itertools.product([0.0, 0.1], [False, True]):
        tail = dict(weight_decay=wd, maximize=maximize)
        for momentum, dampening, nesterov in [(0.0, 0.0, False), (0.9, 0.0, False),
                                              (0.9, 0.0, True), (0.8, 0.3, False)]:
            out.append((optim.SGD, dict(lr=0.05, momentum=momentum, dampening=dampening,
                                        nesterov=nesterov, **tail)))
        for cls, amsgrad in itertools.product([optim.Adam, optim.AdamW], [False, True]):
            out.append((cls, dict(lr=1e-2, betas=(0.8, 0.9), amsgrad=amsgrad, **tail)))
        for centered, momentum in itertools.product([False, True], [0.0, 0.9]):
            out.append((optim.RMSprop, dict(lr=1e-2, alpha=0.9, centered=centered,
                                            momentum=momentum, **tail)))
    return out


CONFIGS = _configs()
IDS = [f"{cls.__name__}-" + "-".join(f"{k}={v}" for k, v in kw.items() if k != "lr")
       for cls, kw in CONFIGS]


@pytest.fixture(params=["numpy", "numba", "cuda"])
def fused_path(request):
    """The fused implementation under test, and the device it runs on."""
    if request.param == "cuda":
        if not gf.cuda_available():
            pytest.skip("no CUDA device: CuPy is not installed or sees no GPU")
        yield gf.device("cuda")
        return
    if request.param == "numba":
        pytest.importorskip("numba")
    previous = fused_numpy.fused_cpu_impl()
    fused_numpy.fused_cpu_impl(request.param)
    try:
        yield gf.device("cpu")
    finally:
        fused_numpy.fused_cpu_impl(previous)


def _steps(cls, kwargs, fused, device, dtype):
    """STEPS steps on fixed random parameters and gradients; the parameters and state after
    each step, as float64 host arrays."""
    rng = np.random.default_rng(3)
    params = [nn.Parameter(gf.tensor(rng.standard_normal(s), dtype=dtype, device=device))
              for s in SHAPES]
    opt = cls(params, fused=fused, **kwargs)
    history = []
    for _ in range(STEPS):
        for p in params:
            p.grad = gf.tensor(rng.standard_normal(p.shape), dtype=dtype, device=device)
        opt.step()
        arrays = {f"param {i}": p.numpy() for i, p in enumerate(params)}
        for i, s in opt.state_dict()["state"].items():
            arrays.update({f"{k} {i}": v.numpy() for k, v in s.items() if isinstance(v, gf.Tensor)})
        history.append({k: a.astype(np.float64) for k, a in arrays.items()})
    return history


@pytest.mark.parametrize("cls, kwargs", CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", [gf.float32, gf.float64], ids=["float32", "float64"])
def test_fused_update_matches_the_reference(cls, kwargs, dtype, fused_path):
    fused = _steps(cls, kwargs, None, fused_path, dtype)
    reference = _steps(cls, kwargs, False, fused_path, dtype)
    rtol = 1e-6 if dtype == gf.float32 else 1e-12
    for step, (got, want) in enumerate(zip(fused, reference), start=1):
        assert got.keys() == want.keys()
        for name, a in want.items():
            # Relative to the array's scale: a moment can cancel to near zero in one element.
            np.testing.assert_allclose(got[name], a, rtol=rtol,
                                       atol=rtol * float(np.abs(a).max()),
                                       err_msg=f"{name}, step {step}")


# --- what `fused` chooses -------------------------------------------------------------------------
OPTIMIZERS = [(optim.SGD, dict(lr=0.1, momentum=0.9), "sgd_update"),
              (optim.Adam, {}, "adam_update"), (optim.AdamW, {}, "adam_update"),
              (optim.RMSprop, dict(centered=True, momentum=0.5), "rmsprop_update")]
OPT_IDS = [c[0].__name__ for c in OPTIMIZERS]


def _one_step(cls, kwargs, **extra):
    p = nn.Parameter(gf.tensor([1.0, -2.0, 3.0], device="cpu"))
    opt = cls([p], **kwargs, **extra)
    p.grad = gf.tensor([0.5, 0.25, -1.0], device="cpu")
    opt.step()
    return p.numpy()


def _refuse(*args, **kwargs):
    raise AssertionError("the fused kernel ran")


@pytest.mark.parametrize("cls, kwargs, kernel", OPTIMIZERS, ids=OPT_IDS)
def test_fused_false_runs_the_reference_not_the_kernel(cls, kwargs, kernel, monkeypatch):
    expected = _one_step(cls, kwargs)
    monkeypatch.setattr(numpy_backend, kernel, _refuse)
    with pytest.raises(AssertionError, match="the fused kernel ran"):
        _one_step(cls, kwargs)  # the default takes the kernel...
    with pytest.raises(AssertionError, match="the fused kernel ran"):
        _one_step(cls, kwargs, fused=True)
    got = _one_step(cls, kwargs, fused=False)  # ...fused=False never touches it
    np.testing.assert_allclose(got, expected, rtol=1e-6)


@pytest.mark.parametrize("cls, kwargs, kernel", OPTIMIZERS, ids=OPT_IDS)
def test_the_default_and_fused_true_run_the_kernel_not_the_reference(cls, kwargs, kernel,
                                                                     monkeypatch):
    expected = _one_step(cls, kwargs, fused=False)
    monkeypatch.setattr(cls, "_update", _refuse)
    np.testing.assert_allclose(_one_step(cls, kwargs), expected, rtol=1e-6)
    np.testing.assert_allclose(_one_step(cls, kwargs, fused=True), expected, rtol=1e-6)


@pytest.mark.parametrize("cls, kwargs, kernel", OPTIMIZERS, ids=OPT_IDS)
def test_a_backend_without_the_kernel(cls, kwargs, kernel, monkeypatch):
    expected = _one_step(cls, kwargs, fused=False)
    monkeypatch.delattr(numpy_backend, kernel)
    np.testing.assert_allclose(_one_step(cls, kwargs), expected)  # None: the reference
    with pytest.raises(RuntimeError, match=f"fused=True, but the backend of cpu has no fused "
                                           f"{kernel}; use fused=None or False"):
        _one_step(cls, kwargs, fused=True)


@pytest.mark.parametrize("cls, kwargs, kernel", OPTIMIZERS, ids=OPT_IDS)
@pytest.mark.parametrize("bad", ["yes", 1, 0, "False", np.bool_(True)])
def test_a_bad_fused_value_is_refused_at_construction(cls, kwargs, kernel, bad):
    p = nn.Parameter(gf.zeros(2))
    with pytest.raises(TypeError, match=rf"{cls.__name__}: fused must be None .*, True .* or "
                                        rf"False .*, got {bad!r}"):
        cls([p], fused=bad, **kwargs)
    with pytest.raises(TypeError, match="fused must be None"):
        cls([{"params": [p], "fused": bad}], **kwargs)


@pytest.mark.parametrize("cls, kwargs, kernel", OPTIMIZERS, ids=OPT_IDS)
def test_fused_is_a_group_setting_saved_with_the_state(cls, kwargs, kernel, monkeypatch):
    a, b = nn.Parameter(gf.ones(3, device="cpu")), nn.Parameter(gf.ones(3, device="cpu"))
    opt = cls([{"params": [a], "fused": False}, {"params": [b]}], **kwargs)
    assert opt.defaults["fused"] is None
    assert [g["fused"] for g in opt.param_groups] == [False, None]
    monkeypatch.setattr(numpy_backend, kernel, _refuse)
    a.grad = gf.ones(3, device="cpu")
    opt.step()  # only `a` has a gradient: its group runs the reference
    sd = opt.state_dict()
    assert [g["fused"] for g in sd["param_groups"]] == [False, None]

    fresh = cls([{"params": [nn.Parameter(gf.ones(3, device="cpu"))]},
                 {"params": [nn.Parameter(gf.ones(3, device="cpu"))]}], **kwargs)
    fresh.load_state_dict(sd)
    assert [g["fused"] for g in fresh.param_groups] == [False, None]
    for g in sd["param_groups"]:  # a state saved before `fused` existed
        del g["fused"]
    fresh.load_state_dict(sd)
    assert [g["fused"] for g in fresh.param_groups] == [None, None]
    sd["param_groups"][0]["fused"] = "sometimes"
    with pytest.raises(TypeError, match="fused must be None"):
        fresh.load_state_dict(sd)
    assert [g["fused"] for g in fresh.param_groups] == [None, None]  # a failed load changes nothing


@pytest.mark.parametrize("cls, kwargs, kernel", OPTIMIZERS, ids=OPT_IDS)
def test_switching_fused_mid_run_continues_from_the_same_state(cls, kwargs, kernel):
    # Both paths keep the same state entries: a run can change paths (a resumed checkpoint).
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(6) for _ in range(4)]
    results = []
    for switch in (False, True):
        p = nn.Parameter(gf.tensor(np.linspace(-1.0, 1.0, 6), device="cpu"))
        opt = cls([p], **kwargs)
        for i, g in enumerate(grads):
            opt.param_groups[0]["fused"] = False if (switch and i % 2) else None
            p.grad = gf.tensor(g, dtype=p.dtype, device="cpu")
            opt.step()
        results.append(p.numpy())
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6)
