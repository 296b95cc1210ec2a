"""Devices and backends: naming, interning, the default device, CUDA errors, mixed devices,
moves between devices, and the backend interface."""
import ast
import os
import pathlib
import pickle
import subprocess
import sys
import types

import numpy as np
import pytest

import gradflow as gf
import gradflow.backend as B
from gradflow.backend import numpy_backend

ROOT = pathlib.Path(__file__).resolve().parents[1]
FAKE = B.Device("cuda", 7, numpy_backend)  # a second device without a GPU: NumPy as "cuda:7"
NO_GPU = not gf.cuda_available()


def test_cpu_device_is_interned_and_named():
    cpu = gf.device("cpu")
    assert cpu is gf.device("cpu") is gf.device(" CPU ") is gf.get_device(cpu)
    assert cpu.type == "cpu" and cpu.index == 0 and cpu.xp is np
    assert cpu.backend is numpy_backend
    assert str(cpu) == "cpu" and repr(cpu) == "device('cpu')"
    assert cpu == "cpu" and cpu != "cuda:3" and cpu != FAKE
    assert hash(cpu) == hash("cpu")
    assert pickle.loads(pickle.dumps(cpu)) is cpu
    assert gf.tensor([1.0], device="cpu").device is gf.tensor([2.0], device=cpu).device


@pytest.mark.parametrize("spec,parsed", [("cpu", ("cpu", 0)), ("cuda", ("cuda", 0)),
                                         ("cuda:0", ("cuda", 0)), ("cuda:3", ("cuda", 3)),
                                         ("CUDA:12", ("cuda", 12)), (" cuda:1 ", ("cuda", 1))])
def test_device_names_parse(spec, parsed):
    assert B._parse(spec) == parsed


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cuda:-1", "cuda:x", "cuda0", "", "cpu:0"])
def test_bad_device_names_raise_value_error_naming_them(spec):
    with pytest.raises(ValueError, match=f"unknown device {spec!r}"):
        gf.device(spec)


def test_a_device_must_be_a_string_or_device():
    with pytest.raises(TypeError, match="int"):
        gf.device(0)


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present: CUDA devices work here")
def test_cuda_without_cupy_or_gpu_raises_naming_cause_and_fix():
    for spec in ("cuda", "cuda:0", "cuda:2"):
        with pytest.raises(gf.DeviceError) as info:
            gf.device(spec)
        msg = str(info.value)
        assert "CuPy" in msg and "GRADFLOW_DEVICE=cpu" in msg
        if "not installed" in msg or "failed to load" in msg:
            assert "cuda12" in msg and "cuda13" in msg  # the pip extras to install
    with pytest.raises(gf.DeviceError):
        gf.zeros(2, device="cuda")
    assert gf.cuda_device_count() == 0 and gf.cuda_available() is False


def _fake_cupy_backend(count):
    return types.SimpleNamespace(device_count=lambda: count, manual_seed=lambda s: None)


def test_cupy_present_but_no_gpu_names_the_cause_and_the_extras(monkeypatch):
    monkeypatch.setattr(B, "_load_cupy_backend", lambda: _fake_cupy_backend(0))
    with pytest.raises(gf.DeviceError, match=r"'cuda:5'.*sees no CUDA GPU.*cuda12.*cuda13"):
        B._cuda_backend_for("cuda:5", 5)
    assert gf.cuda_device_count() == 0


def test_a_gpu_index_beyond_the_visible_ones_is_named(monkeypatch):
    monkeypatch.setattr(B, "_load_cupy_backend", lambda: _fake_cupy_backend(2))
    with pytest.raises(gf.DeviceError, match=r"'cuda:4'.*only 2 CUDA GPU\(s\).*cuda:0 to cuda:1"):
        B._cuda_backend_for("cuda:4", 4)
    assert gf.cuda_device_count() == 2


def test_a_broken_cupy_install_is_reported_not_crashed_on(monkeypatch):
    def broken():
        raise RuntimeError("libcudart.so.12: cannot open shared object file")
    monkeypatch.setattr(B, "_load_cupy_backend", broken)
    assert gf.cuda_device_count() == 0 and not gf.cuda_available()
    with pytest.raises(gf.DeviceError, match=r"failed to load.*libcudart.*cuda12"):
        B._cuda_backend_for("cuda:0", 0)

    def missing():
        raise ImportError("No module named 'cupy'")
    monkeypatch.setattr(B, "_load_cupy_backend", missing)
    with pytest.raises(gf.DeviceError, match=r"not installed.*pip install -e '\.\[cuda12\]'"):
        B._cuda_backend_for("cuda:0", 0)


def test_a_seed_set_before_cupy_loads_reaches_it(monkeypatch):
    seeds = []
    fake = types.ModuleType("gradflow.backend.cupy_backend")
    fake.manual_seed = seeds.append
    monkeypatch.setitem(sys.modules, "gradflow.backend.cupy_backend", fake)
    monkeypatch.setattr(B, "_cupy_backend", None)
    if hasattr(B, "cupy_backend"):
        monkeypatch.delattr(B, "cupy_backend")
    gf.manual_seed(1234)
    assert B._load_cupy_backend() is fake
    assert seeds == [1234]  # seeded on load, although manual_seed ran before
    gf.manual_seed(7)
    assert seeds == [1234, 7]


# --- the default device --------------------------------------------------------------------------
def _run(code, **env):
    e = {k: v for k, v in os.environ.items() if k != "GRADFLOW_DEVICE"}
    e.update(env)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                          cwd=ROOT, timeout=120)


def test_gradflow_device_sets_the_default_device_in_a_fresh_process():
    code = ("import gradflow as gf; print(gf.default_device(), gf.zeros(1).device);"
            "import os; os.environ['GRADFLOW_DEVICE'] = 'cuda'; print(gf.zeros(1).device)")
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["cpu", "cpu", "cpu"]  # unset: cpu, read once
    r = _run("import gradflow as gf; print(gf.zeros(1).device)", GRADFLOW_DEVICE=" cpu ")
    assert r.returncode == 0 and r.stdout.strip() == "cpu", r.stderr
    if NO_GPU:
        r = _run("import gradflow as gf; print('imported'); gf.zeros(1)", GRADFLOW_DEVICE="cuda")
        assert r.stdout.strip() == "imported"  # importing works; the first tensor fails ...
        assert r.returncode != 0  # ... loudly: no silent fallback to the CPU
        assert "DeviceError" in r.stderr and "cuda:0" in r.stderr and "CuPy" in r.stderr
    else:
        r = _run("import gradflow as gf; print(gf.zeros(1).device)", GRADFLOW_DEVICE="cuda")
        assert r.returncode == 0 and r.stdout.strip() == "cuda:0", r.stderr


def test_a_bad_gradflow_device_names_the_value(monkeypatch):
    monkeypatch.setattr(B, "_default", None)
    monkeypatch.setenv("GRADFLOW_DEVICE", "tpu:0")
    with pytest.raises(ValueError, match=r"GRADFLOW_DEVICE='tpu:0' is not a device"):
        B.default_device()
    monkeypatch.setattr(B, "_default", None)
    monkeypatch.delenv("GRADFLOW_DEVICE")
    assert B.default_device() is gf.device("cpu")


def test_set_default_device(monkeypatch):
    monkeypatch.setattr(B, "_default", None)
    assert gf.set_default_device("cpu") is gf.device("cpu")
    assert gf.default_device() is gf.device("cpu") and gf.zeros(1).device is gf.device("cpu")
    with pytest.raises(ValueError):
        gf.set_default_device("gpu")


# --- two devices ---------------------------------------------------------------------------------
def test_an_op_mixing_two_devices_names_both():
    # The CPU against FAKE: pinned, so the messages name "cpu" whatever GRADFLOW_DEVICE is.
    a = gf.tensor([1.0, 2.0], device="cpu")
    b = gf.tensor([3.0, 4.0], device="cpu").to(FAKE)
    assert b.device is FAKE and str(b.device) == "cuda:7"
    for op in (lambda: a + b, lambda: b * a, lambda: gf.maximum(a, b),
               lambda: gf.concatenate([a, b]), lambda: a.reshape(1, 2) @ b.reshape(2, 1)):
        with pytest.raises(gf.DeviceError, match=r"cpu \(shape .*\).*cuda:7|cuda:7.*cpu"):
            op()
    with pytest.raises(gf.DeviceError, match=r"cond is on cpu but an input is on cuda:7"):
        gf.where(a > 0, b, 0.0)
    with pytest.raises(gf.BackwardError, match=r"gradient on cuda:7 given for a tensor on cpu"):
        (a * gf.tensor(1.0, device="cpu", requires_grad=True)).backward(
            gf.ones(2, device="cpu").to(FAKE))


def test_gradients_travel_back_to_the_device_of_the_input():
    x = gf.tensor([1.0, 2.0], device="cpu", requires_grad=True)  # CPU -> FAKE and back
    y = x.to(FAKE)
    assert y.device is FAKE and y.grad_fn.name == "ToDevice"
    (y * y).sum().backward()
    assert x.grad.device is gf.device("cpu")
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])
    w = gf.tensor(np.random.default_rng(0).standard_normal(3), device="cpu", requires_grad=True)
    assert gf.gradcheck(lambda t: (t.to(FAKE) ** 2).to("cpu"), w)
    assert gf.gradgradcheck(lambda t: (t.to(FAKE) ** 2).to("cpu"), w)
    assert not gf.tensor([1.0], device="cpu").to(FAKE).requires_grad


# --- the backend interface -----------------------------------------------------------------------
INTERFACE = {"xp", "ndarray", "name", "rng", "manual_seed", "asarray", "to_host", "scatter_add",
             "synchronize", "randperm", "use", "device_name", "memory_pool_bytes"}


def _top_level_names(path):
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_both_backends_provide_the_same_interface():
    backend_dir = ROOT / "gradflow" / "backend"
    for name in ("numpy_backend.py", "cupy_backend.py"):
        missing = INTERFACE - _top_level_names(backend_dir / name)
        assert not missing, f"{name} lacks {sorted(missing)}"
    assert INTERFACE <= set(dir(numpy_backend))


def test_numpy_backend_pieces():
    t = np.zeros(3)
    numpy_backend.scatter_add(t, np.array([0, 0, 2]), np.array([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(t, [3.0, 0.0, 3.0])  # repeats accumulate
    a = np.ones(2)
    assert numpy_backend.to_host(a) is a and numpy_backend.asarray(a) is a
    assert numpy_backend.asarray([1, 2], dtype=np.float32).dtype == np.float32
    numpy_backend.synchronize()
    gf.device("cpu").synchronize()
    with numpy_backend.use(0):
        pass
    assert numpy_backend.memory_pool_bytes() == (0, 0)
    assert isinstance(numpy_backend.device_name(), str)
    assert sorted(numpy_backend.randperm(5).tolist()) == [0, 1, 2, 3, 4]


def test_only_the_backend_imports_numpy_or_cupy():
    offenders = []
    for path in (ROOT / "gradflow").rglob("*.py"):
        if "backend" in path.relative_to(ROOT / "gradflow").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                mods = [node.module or ""]
            if any(m.split(".")[0] in ("numpy", "cupy", "cupyx") for m in mods):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"numpy/cupy imported outside gradflow/backend: {offenders}"


def test_dtypes_are_exported():
    assert gf.float32 == np.float32 and gf.float64 == np.float64 and gf.int64 == np.int64
    assert gf.bool is gf.bool_ and gf.bool_ == np.bool_
    assert gf.dtype("float32") is gf.float32 or gf.dtype("float32") == gf.float32


@pytest.mark.parametrize("a_shape, shape", [
    ((1, 1), (32, 32)), ((3, 1), (3, 4)), ((4,), (2, 3, 4)), ((), (2, 2)), ((1, 4), (0, 4)),
    ((2, 1), (2, 5)), ((2, 3), (2, 3))])
def test_the_cpu_broadcast_view_is_numpys(a_shape, shape):
    from gradflow.backend import numpy_backend
    np_ = numpy_backend.np
    a = np_.arange(float(np_.prod(a_shape, dtype=int))).reshape(a_shape)
    for arr in (a, np_.asfortranarray(a)):  # a non-C-contiguous one takes NumPy's own path
        got, want = numpy_backend.broadcast_to(arr, shape), np_.broadcast_to(arr, shape)
        assert got.shape == want.shape and got.strides == want.strides
        assert (got == want).all() and not got.flags.writeable
        assert np_.shares_memory(got, arr) or got.size == 0
    with pytest.raises(ValueError, match="broadcast"):
        numpy_backend.broadcast_to(np_.ones(3), (2, 4))
