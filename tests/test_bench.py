"""The benchmark report and suite, the baselines they compare with, and the hot path's fast rules.

The report and the pytest-benchmark suite run in a tiny mode here (seconds), so neither can rot;
their timings are never asserted. What is asserted: the files and fields they produce, that
every contender of a workload computes the same thing (a baseline that does less work would
make every ratio a lie), and that the array-level backward rules agree with the recorded ones.
"""
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gradflow as gf
import gradflow.bench.workloads as wl
from gradflow.backend import host_malloc
from gradflow.bench import baselines, memory, report, timing

ROOT = Path(__file__).resolve().parents[1]
HAS_TORCH = wl.torch_or_none() is not None


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# --- the report, end to end ------------------------------------------------------------------
def test_report_tiny_mode_writes_table_json_and_png(tmp_path):
    proc = subprocess.run(
        # The CPU report: on a GPU machine the default also measures cuda (cpu-cuda-tiny.json).
        [sys.executable, "-m", "gradflow.bench", "--mode", "tiny", "--out", str(tmp_path),
         "--only", "chain", "--rounds", "2", "--no-memory", "--device", "cpu"],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "elementwise chain" in proc.stdout and "targets (measured, not asserted)" in proc.stdout

    data = json.loads((tmp_path / "cpu-tiny.json").read_text())
    assert data["mode"] == "tiny" and data["devices"] == ["cpu"]
    machine = data["machine"]
    assert machine["host"]["cpu"] and machine["host"]["usable_cpus"] >= 1
    assert machine["devices"][0]["device"] == "cpu"
    assert machine["versions"]["numpy"] == np.__version__
    # Speed-relevant settings are recorded even when unset (as null), never changed.
    assert "OPENBLAS_CORETYPE" in machine["env"]
    assert machine["env"]["OPENBLAS_CORETYPE"] == os.environ.get("OPENBLAS_CORETYPE")
    assert all(p["num_threads"] >= 1 for p in machine["blas"])  # BLAS/OpenMP pools, if known
    # The report opts in to gradflow's malloc tuning for its own process, never for PyTorch's.
    if host_malloc._skip_reason(os.environ) is None and host_malloc._glibc_mallopt() is not None:
        assert machine["host_malloc"]["applied"] is True
    else:
        assert machine["host_malloc"]["applied"] is False and machine["host_malloc"]["why"]
    if HAS_TORCH:
        assert machine["host_malloc_torch_process"]["applied"] is False

    rows = {(r["workload"], r["size"]): r for r in data["rows"]}
    assert set(rows) == {("chain", "32x32"), ("chain", "64x64")}
    chain = rows[("chain", "32x32")]
    assert chain["ops_per_iteration"] == baselines.CHAIN_OPS
    for key in ("gradflow/cpu", "hand/cpu") + (("torch/cpu",) if HAS_TORCH else ()):
        t = chain["timings"][key]
        assert len(t["rounds_s"]) == 2 and 0 < t["best_s"] <= t["median_s"]
    assert "gradflow/hand (cpu)" in chain["ratios"]
    if HAS_TORCH:
        assert "gradflow/torch (cpu)" in chain["ratios"]
    else:
        assert any("torch" in u for u in data["unmeasured"])
    assert any("cuda" in u for u in data["unmeasured"]) or "cuda" in data["devices"][0]

    statuses = {t["target"]: t["status"] for t in data["targets"]}
    chain_target = next(k for k in statuses if "chain 32x32" in k)
    assert statuses[chain_target] in (("met", "missed") if HAS_TORCH else ("unmeasured",))

    png = (tmp_path / "cpu-tiny.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    # The report as printed fits 100 columns (the lines after it name files, of any length).
    printed = proc.stdout[proc.stdout.index("time per iteration"):proc.stdout.index("\nwrote ")]
    assert max(len(line) for line in printed.splitlines()) <= report.WIDTH == 100


def _snapshot(folder: Path) -> dict:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.iterdir()}


def test_a_run_without_out_writes_bench_results_not_the_committed_results(tmp_path):
    committed = ROOT / "benchmarks" / "results"
    before = _snapshot(committed)
    proc = subprocess.run(  # the quickest run there is: one workload, one round, no extras
        [sys.executable, "-m", "gradflow.bench", "--mode", "tiny", "--only", "chain",
         "--rounds", "1", "--round-seconds", "0.002", "--no-memory", "--no-torch",
         "--no-chart", "--device", "cpu"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _snapshot(committed) == before
    written = (tmp_path / "bench-results" / "cpu-tiny.json").resolve()  # as the run's cwd reads
    assert json.loads(written.read_text())["mode"] == "tiny"
    assert [p.name for p in tmp_path.iterdir()] == ["bench-results"]
    # It says where, before the run and after it.
    assert f"results go to {written.parent}" in proc.stdout
    assert f"wrote {written}" in proc.stdout
    if (ROOT / ".git").exists() and shutil.which("git"):  # and git leaves the folder alone
        ignored = subprocess.run(["git", "check-ignore", "-q", "bench-results/cpu-tiny.json"],
                                 cwd=ROOT)
        assert ignored.returncode == 0, "bench-results/ is not in .gitignore"


def test_training_peak_memory_counts_parameters_and_state():
    w = next(w for w in wl.workloads("tiny") if w.key == "mlp_step")
    n_params = sum(p.size for p in wl.initial_mlp_params(wl.MODES["tiny"]["mlp_sizes"]))
    cpu = gf.device("cpu")
    for impl in ("gradflow", "hand"):
        peak = memory.training_peak(w, impl, cpu, steps=2)
        assert peak["method"] == "tracemalloc"
        # At least parameters, gradients and Adam's two moments, in float32; far below 10x.
        assert 4 * 4 * n_params <= peak["peak_bytes"] < 40 * 4 * n_params, (impl, peak)
    with pytest.raises(wl.Unavailable, match="allocator"):
        memory.training_peak(w, "torch", cpu)


class _ScriptedPool:
    """A stand-in CUDA backend and device: `memory_pool_bytes` returns scripted (used, total)
    pairs, and every call is logged, so the GPU branch of training_peak runs on the CPU."""

    type, index = "cuda", 1

    def __init__(self, readings):
        self.readings = list(readings)
        self.log = []
        self.backend = self

    def synchronize(self, index=None):
        self.log.append("sync")

    def free_memory_pool(self, index):
        assert index == self.index
        self.log.append("free")

    def memory_pool_bytes(self, index):
        assert index == self.index
        self.log.append("read")
        return self.readings.pop(0)


class _LoggedWorkload:
    """A workload whose builds and steps only leave a mark in the pool's log."""

    def __init__(self, pool):
        self.pool = pool

    def build(self, impl, device):
        assert device is self.pool
        self.pool.log.append("build")
        return lambda: self.pool.log.append("step")


def test_training_peak_on_a_gpu_reports_the_increase_over_the_baseline():
    mib = 2 ** 20
    # 300 MiB alive before the run (the generator's state, earlier arrays, a leftover free
    # fragment of 4 MiB); after it the pool holds 372 MiB, 310 MiB of them in use.
    pool = _ScriptedPool([(300 * mib, 304 * mib), (310 * mib, 372 * mib)])
    peak = memory.training_peak(_LoggedWorkload(pool), "gradflow", pool, steps=2)
    assert peak == {"method": memory.GPU_METHOD, "peak_bytes": 72 * mib,
                    "baseline_bytes": 300 * mib, "held_bytes": 10 * mib}
    # The warm-up runs before the baseline; the pool is emptied before it is read; the
    # baseline is read before the build and the peak after the steps have finished.
    assert pool.log == ["build", "step", "sync", "free", "read", "build", "step", "step",
                        "sync", "read", "free"]
    assert not pool.readings
    # A pool that shrank below the baseline (freed by the run) reads as 0, not negative.
    pool = _ScriptedPool([(50 * mib, 50 * mib), (10 * mib, 40 * mib)])
    peak = memory.training_peak(_LoggedWorkload(pool), "hand", pool, steps=1)
    assert peak["peak_bytes"] == 0 and peak["held_bytes"] == 0
    mem = {"workload": "MLP step", "steps": 1, "peaks": {
        "gradflow/cuda:1": {"method": memory.GPU_METHOD, "peak_bytes": 72 * mib}}}
    table = report.format_table({"rows": [], "devices": [], "targets": [], "unmeasured": [],
                                 "memory": mem})
    assert "gradflow/cuda:1        72.0 MiB  (cupy memory pool, over baseline)" in table


def test_benchmark_suite_runs_once_as_tests():
    env = _env()
    env["GRADFLOW_BENCH_MODE"] = "tiny"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/", "--benchmark-disable", "-q",
         "-p", "no:cacheprovider"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def test_benchmark_suite_prints_ratios_after_timing():
    env = _env()
    env["GRADFLOW_BENCH_MODE"] = "tiny"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "benchmarks/test_elementwise.py", "--benchmark-only",
         "--benchmark-max-time=0.01", "--benchmark-min-rounds=2", "-q", "-p",
         "no:cacheprovider", "-k", "cpu and not torch"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    out = proc.stdout
    table = out[out.index("gradflow vs hand-written and PyTorch"):]
    assert re.search(r"^elementwise chain\n  32x32 +cpu +[\d.]+ us +[\d.]+ us +[\d.]+ ", table,
                     re.M)
    assert "targets (measured, not asserted):" in table
    assert out.index("gradflow vs hand") > out.index("benchmark 'elementwise chain 32x32'")


def test_worker_calibrates_each_workload_on_its_own():
    # A cached calibration of a fast workload reused for a slow one would run the slow one
    # thousands of times per round. The worker serves any contender; gradflow needs no torch.
    reqs = [{"mode": "tiny", "group": g, "impl": "gradflow", "device": "cpu", "rounds": 1,
             "round_s": rs} for g, rs in (("elementwise chain 32x32", 0.02),
                                          ("MNIST epoch MNIST sample (400), batch 100", 0.001))]
    proc = subprocess.run([sys.executable, "-m", "gradflow.bench._worker"], cwd=ROOT,
                          env=_env(), input="".join(json.dumps(r) + "\n" for r in reqs),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [("timing" in r) for r in replies] == [True, True], replies
    assert replies[0]["timing"]["number"] > 1 and replies[1]["timing"]["number"] == 1


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown benchmark mode 'huge'"):
        wl.workloads("huge")
    with pytest.raises(ValueError, match="unknown benchmark mode 'huge'"):
        report.run("huge")
    with pytest.raises(ValueError, match="unknown contenders"):
        report.run("tiny", impls=("gradflow", "jax"))
    w = wl.workloads("tiny")[0]
    with pytest.raises(ValueError, match="unknown contender 'jax'"):
        w.build("jax", "cpu")
    lone = wl.Workload("lone", "lone", "1x1", builders={"gradflow": lambda dev: (lambda: None)})
    with pytest.raises(wl.Unavailable, match="lone 1x1 has no hand contender"):
        lone.build("hand", "cpu")
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        timing.compare({"f": lambda: None}, rounds=0)


# --- timing ----------------------------------------------------------------------------------
def test_compare_interleaves_rounds_and_keeps_the_best():
    calls = []
    t = timing.compare({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                       rounds=4, round_s=0.001, warmup=1)
    assert set(t) == {"a", "b"}
    for v in t.values():
        assert len(v.rounds) == 4 and v.best == min(v.rounds) and v.number >= 1
        assert v.best <= v.median
    # Rounds alternate: after calibration the calls come in runs, a's and b's taking turns.
    tail = calls[-(t["a"].number + t["b"].number) * 4:]
    runs = [c for i, c in enumerate(tail) if i == 0 or tail[i - 1] != c]
    assert tail.count("a") == t["a"].number * 4 and len(runs) >= 3
    merged = timing.merge([t["a"], t["b"]])
    assert merged.best == min(t["a"].best, t["b"].best) and len(merged.rounds) == 8
    assert timing.Timing.from_dict(t["a"].as_dict()) == t["a"]


# --- every contender computes the same thing ------------------------------------------------------
def _host(r):
    if hasattr(r, "detach"):
        return r.detach().cpu().numpy()
    if hasattr(r, "numpy"):
        return r.numpy()
    if gf.backend.is_array(r):  # a CuPy array refuses np.asarray: its backend copies it
        return gf.backend.device_of(r).backend.to_host(r)
    return np.asarray(r)


@pytest.mark.parametrize("key", ["chain", "reductions", "matmul", "mlp_step", "conv2d"])
def test_contenders_of_a_workload_agree(device, key):
    w = next(w for w in wl.workloads("tiny") if w.key == key)
    results = {}
    for impl in wl.IMPLS:
        try:
            run = w.build(impl, device)
        except wl.Unavailable:
            continue
        # Three calls: for the MLP, three training steps from the same weights on the same
        # batches; the losses of the last one agree only if every update did.
        results[impl] = [_host(run()) for _ in range(3)]
    assert "gradflow" in results and len(results) >= 2
    ref = results["gradflow"]
    for impl, got in results.items():
        for a, b in zip(ref, got):
            np.testing.assert_allclose(b, a, rtol=2e-4, atol=1e-5, err_msg=f"{key}: {impl}")


def test_hand_mlp_matches_gradflow_parameters_after_steps():
    sizes = [20, 16, 12, 5]
    params = wl.initial_mlp_params(sizes, seed=3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((8, sizes[0]), dtype=np.float32)
    t = rng.integers(0, sizes[-1], 8)
    model, opt = wl.gradflow_mlp(sizes, params, gf.device("cpu"), lr=1e-2)
    hand = baselines.HandMLP([p.copy() for p in params], np, lr=1e-2)
    xg, tg = gf.tensor(x, device="cpu"), gf.tensor(t, device="cpu")
    for _ in range(4):
        opt.zero_grad()
        loss = gf.nn.functional.cross_entropy(model(xg), tg)
        loss.backward()
        opt.step()
        hand_loss = hand.step(x, t)
        np.testing.assert_allclose(hand_loss, loss.item(), rtol=1e-5)
    for p, q in zip(model.parameters(), hand.params):
        np.testing.assert_allclose(q, p.numpy(), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="pairs"):
        baselines.HandMLP(params[:3], np)


def test_hand_chain_matches_gradflow_gradients():
    rng = np.random.default_rng(1)
    xa, wa = (rng.standard_normal((5, 7)) for _ in range(2))
    x = gf.tensor(xa, device="cpu", requires_grad=True)  # against NumPy: on the CPU
    w = gf.tensor(wa, device="cpu", requires_grad=True)
    loss = wl.chain_expr(x, w)
    loss.backward()
    hl, gx, gw = baselines.hand_chain(np, xa, wa)
    np.testing.assert_allclose(hl, loss.item(), rtol=1e-12)
    np.testing.assert_allclose(gx, x.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(gw, w.grad.numpy(), rtol=1e-10)


def test_hand_reductions_match_gradflow_gradients():
    rng = np.random.default_rng(2)
    xa = rng.standard_normal((6, 9))
    x = gf.tensor(xa, device="cpu", requires_grad=True)  # against NumPy: on the CPU
    loss = (x.sum(axis=0).sum() + x.mean(axis=1).sum() + x.max(axis=1).sum()
            + x.logsumexp(axis=1).sum() + x.var(axis=0).sum())
    loss.backward()
    hl, gx = baselines.hand_reductions(np, xa)
    np.testing.assert_allclose(hl, loss.item(), rtol=1e-12)
    np.testing.assert_allclose(gx, x.grad.numpy(), rtol=1e-10)


# --- the CNN step and the convolution ----------------------------------------------------------
@pytest.mark.parametrize("impl", wl.IMPLS)
@pytest.mark.parametrize("key", ["cnn_step", "conv2d"])
def test_conv_workloads_build_and_run_a_step(device, key, impl):
    (w,) = [w for w in wl.workloads("tiny") if w.key == key]
    assert any(w.key == key for w in wl.workloads("quick"))  # in the report's default mode
    try:
        run = w.build(impl, device)
    except wl.Unavailable as exc:
        assert impl == "torch", exc  # gradflow and the hand baseline run everywhere
        pytest.skip(str(exc))
    out = [_host(run()) for _ in range(2)]
    assert all(np.isfinite(o).all() for o in out)
    if key == "cnn_step":  # random labels over 10 classes: near log(10)
        assert all(0 < o < 2 * math.log(10) for o in out), out
    else:
        n, c, o, hw = wl.MODES["tiny"]["conv2d"][0]
        assert out[0].shape == (n, o, hw, hw)


def _cnn_batch(n, hw, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 1, hw, hw), dtype=np.float32),
            rng.integers(0, 10, n).astype(np.int64))


# 29x29 images: conv2's output is 25x25, and the pool drops the last row and column.
@pytest.mark.parametrize("hw", [28, 29])
def test_hand_cnn_matches_gradflow(device, hw):
    params = wl.initial_cnn_params(seed=3)
    x, t = _cnn_batch(5, hw, seed=hw)
    # The workload's lr: Adam moves a weight whose gradient is ~0 by up to lr whatever its
    # sign, so float32 rounding in such a gradient shows as a difference of order lr.
    model, opt = wl.gradflow_cnn(params, device, lr=1e-3)
    as_dev = lambda a: device.backend.asarray(a, index=device.index)  # noqa: E731
    hand = baselines.HandCNN([as_dev(p.copy()) for p in params], device.xp, lr=1e-3)
    hand.training = False
    xg, tg = gf.tensor(x, device=device), gf.tensor(t, device=device)
    xd, td = as_dev(x), as_dev(t)
    # The first step: loss and every gradient, on the same weights and batch.
    loss = gf.nn.functional.cross_entropy(model(xg), tg)
    loss.backward()
    hand_loss, grads = hand.forward_backward(xd, td)
    np.testing.assert_allclose(_host(hand_loss), loss.item(), rtol=1e-5)
    for p, g in zip(model.parameters(), grads):
        assert g.shape == tuple(p.shape)
        np.testing.assert_allclose(_host(g), p.grad.numpy(), rtol=1e-4, atol=1e-6)
    # Then Adam updates: after three steps the parameters still agree.
    opt.step()
    hand.adam(grads)
    for _ in range(2):
        opt.zero_grad()
        loss = gf.nn.functional.cross_entropy(model(xg), tg)
        loss.backward()
        opt.step()
        np.testing.assert_allclose(_host(hand.step(xd, td)), loss.item(), rtol=1e-4)
    for p, q in zip(model.parameters(), hand.params):
        np.testing.assert_allclose(_host(q), p.numpy(), rtol=1e-4, atol=1e-5)


def test_hand_cnn_matches_gradflow_with_the_same_dropout_masks(device):
    F = gf.nn.functional
    params = wl.initial_cnn_params(seed=4)
    n = 6
    x, t = _cnn_batch(n, 28, seed=4)
    rng = np.random.default_rng(4)
    p1, p2 = 0.25, 0.5  # PyTorch's example's; the hand step takes any
    m1 = (rng.random((n, 64, 12, 12)) >= p1).astype(np.float32) / np.float32(1 - p1)
    m2 = (rng.random((n, 128)) >= p2).astype(np.float32) / np.float32(1 - p2)
    # gradflow: the same network written with functional ops, each dropout a given mask.
    ps = [gf.tensor(p, device=device, requires_grad=True) for p in params]
    h = F.relu(F.conv2d(gf.tensor(x, device=device), ps[0], ps[1]))
    h = F.max_pool2d(F.relu(F.conv2d(h, ps[2], ps[3])), 2) * gf.tensor(m1, device=device)
    h = F.relu(F.linear(h.reshape(n, -1), ps[4], ps[5])) * gf.tensor(m2, device=device)
    loss = F.cross_entropy(F.linear(h, ps[6], ps[7]), gf.tensor(t, device=device))
    loss.backward()
    as_dev = lambda a: device.backend.asarray(a, index=device.index)  # noqa: E731
    hand = baselines.HandCNN([as_dev(p.copy()) for p in params], device.xp)
    hand_loss, grads = hand.forward_backward(as_dev(x), as_dev(t), masks=(as_dev(m1),
                                                                           as_dev(m2)))
    np.testing.assert_allclose(_host(hand_loss), loss.item(), rtol=1e-5)
    for p, g in zip(ps, grads):
        np.testing.assert_allclose(_host(g), p.grad.numpy(), rtol=1e-4, atol=1e-6)
    # Its own masks: 0 or 1/(1-p), about a fraction p of zeros, fresh each step.
    hand.forward_backward(as_dev(x), as_dev(t))
    a = _host(hand._mask((400, 100), 0.25, np.float32))
    b = _host(hand._mask((400, 100), 0.25, np.float32))
    assert set(np.unique(a)) == {0.0, np.float32(1 / 0.75)} and not (a == b).all()
    assert abs((a == 0).mean() - 0.25) < 0.02
    with pytest.raises(ValueError, match="w1, b1"):
        baselines.HandCNN(params[:6], np)


@pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is not installed")
def test_torch_cnn_matches_gradflow():
    import torch
    params = wl.initial_cnn_params(seed=5)
    x, t = _cnn_batch(4, 28, seed=5)
    model, _ = wl.gradflow_cnn(params, gf.device("cpu"))
    model.eval()
    loss = gf.nn.functional.cross_entropy(model(gf.tensor(x, device="cpu")),
                                          gf.tensor(t, device="cpu"))
    loss.backward()
    tm = wl.torch_cnn(torch, params, torch.device("cpu")).eval()
    tl = torch.nn.functional.cross_entropy(tm(torch.from_numpy(x)), torch.from_numpy(t))
    tl.backward()
    np.testing.assert_allclose(tl.item(), loss.item(), rtol=1e-5)
    for p, q in zip(model.parameters(), tm.parameters()):
        np.testing.assert_allclose(q.grad.numpy(), p.grad.numpy(), rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("padding, shape", [(1, (3, 5, 9, 7)), (0, (2, 4, 8, 8))])
def test_hand_conv2d_matches_gradflow_gradients(device, padding, shape):
    rng = np.random.default_rng(padding)
    n, c, h, w = shape
    xa = rng.standard_normal(shape, dtype=np.float32)
    wa = rng.standard_normal((6, c, 3, 3), dtype=np.float32)
    ba = rng.standard_normal(6, dtype=np.float32)
    x, wt, b = (gf.tensor(v, device=device, requires_grad=True) for v in (xa, wa, ba))
    y = gf.nn.functional.conv2d(x, wt, b, padding=padding)
    ga = rng.standard_normal(y.shape, dtype=np.float32)
    y.backward(gf.tensor(ga, device=device))
    conv = baselines.HandConv2d(device.xp, padding=padding)
    args = [device.backend.asarray(v, index=device.index) for v in (xa, wa, ba, ga)]
    for _ in range(2):  # the second call reuses the first one's buffers
        hy, gx, gw, gb = conv(*args)
        for got, want in ((hy, y), (gx, x.grad), (gw, wt.grad), (gb, b.grad)):
            np.testing.assert_allclose(_host(got), want.numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="does not fit"):
        conv(args[0], args[1][:, :2], args[2], args[3])


# --- targets and table, on made-up results (the GPU branches run here too) ------------------------
def _fake(rows, devices=("cpu",)):
    def timings(**kw):
        return {k.replace("__", "/"): {"best_s": v, "median_s": v, "number": 1, "rounds_s": [v]}
                for k, v in kw.items()}
    out = {"mode": "full", "devices": list(devices), "memory": {}, "unmeasured": [],
           "rows": [{"workload": k, "title": k, "size": s, "ops_per_iteration": ops,
                     "timings": timings(**t), "missing": {}} for k, s, ops, t in rows]}
    out["targets"] = report.targets(out)
    return out


def test_targets_report_met_missed_and_unmeasured():
    res = _fake([
        ("mlp_step", "batch 100", None,
         dict(gradflow__cpu=9.0, hand__cpu=10.0, torch__cpu=10.0)),
        ("chain", "32x32", 9, dict(gradflow__cpu=1.0, torch__cpu=1.0)),
        ("matmul", "1024x1024", 3, dict(gradflow__cpu=1.04, hand__cpu=1.0)),
        ("cnn_step", "batch 64", None, dict(gradflow__cpu=1.2, hand__cpu=1.0, torch__cpu=1.0)),
    ])
    status = {t["target"]: t["status"] for t in res["targets"]}
    assert status["CPU MLP step, batch 100: gradflow / hand-written NumPy <= 1.05"] == "met"
    assert status["CPU MLP step, batch 100: gradflow / PyTorch (default Adam) <= 0.8"] == "missed"
    assert status["CPU elementwise chain 32x32: gradflow per op / PyTorch per op <= 0.8"] == \
        "missed"
    assert status["CPU matmul fwd+bwd 1024x1024: gradflow / NumPy's own matmuls <= 1.05"] == "met"
    assert status["CPU MNIST CNN step, batch 64: gradflow / PyTorch <= 1.5"] == "met"
    assert status["CPU MNIST CNN step, batch 64: gradflow / hand-written NumPy im2col <= 1.05"] \
        == "missed"
    gpu = [t for t in res["targets"] if t["target"].startswith("GPU")]
    assert gpu and all(t["status"] == "unmeasured" and t["value"] is None for t in gpu)


def test_table_and_targets_with_a_gpu_column():
    res = _fake([
        ("matmul", "4096x4096", 3, dict(gradflow__cpu=4.0, hand__cpu=3.9, **{
            "gradflow__cuda:0": 0.2, "hand__cuda:0": 0.19})),
        ("mnist_epoch", "sample", None, dict(gradflow__cpu=2.0, **{"gradflow__cuda:0": 0.5})),
    ], devices=("cpu", "cuda:0"))
    status = {t["target"]: (t["status"], t["value"]) for t in res["targets"]}
    assert status["GPU matmul fwd+bwd 4096x4096: speedup over the CPU >= 10"] == ("met", 20.0)
    assert status["GPU MNIST epoch: speedup over the CPU > 1"] == ("met", 4.0)
    times, per_op = report.format_table(res).split("\n\nper op")
    # Each workload's title, then a line per size and device under it.
    lines = times.splitlines()
    at = lines.index("matmul")
    assert lines[at + 1].split()[:2] == ["4096x4096", "cpu"]
    cuda = lines[at + 2]
    assert cuda.split()[:2] == ["4096x4096", "cuda:0"]
    assert "200 ms" in cuda and "190 ms" in cuda and "1.05" in cuda
    speedups = [ln for ln in per_op.splitlines() if "cuda:0" in ln]
    assert len(speedups) == 2 and speedups[0].rstrip().endswith("20.00x")
    assert "66.7 ms" in speedups[0]  # 0.2 s over the matmul's 3 ops
    assert speedups[1].rstrip().endswith("4.00x")  # the epoch: no ops, but a speedup


def _tiny_gpu_result():
    """A report with the longest labels there are (tiny mode's) on two devices, every
    contender timed."""
    rows = []
    for i, w in enumerate(wl.workloads("tiny")):
        t = {f"{impl}__{dev}": (1 + i) * scale * f for impl, f in (
            ("gradflow", 1.0), ("hand", 0.7), ("torch", 1.3)) for dev, scale in (
            ("cpu", 1.234e-3), ("cuda:0", 9.87e-5))}
        rows.append((w.key, w.size, w.ops, t))
    res = _fake(rows, devices=("cpu", "cuda:0"))
    for r, w in zip(res["rows"], wl.workloads("tiny")):
        r["title"] = w.title
    res["unmeasured"] = ["torch: PyTorch is not installed; its columns are empty"]
    res["memory"] = {"workload": "MLP 784-64-64-10 + Adam step batch 32", "steps": 3,
                     "peaks": {"gradflow/cuda:0": {"method": memory.GPU_METHOD,
                                                   "peak_bytes": 2 ** 20}},
                     "missing": {"torch/cuda:0": "PyTorch's allocator is not seen by "
                                                 "tracemalloc or CuPy's pool"}}
    return res


@pytest.mark.parametrize("name", ["tiny-gpu", "cpu-quick", "cpu-full", "cpu-cnn-quick"])
def test_the_printed_report_fits_100_columns_and_keeps_every_figure(name):
    if name == "tiny-gpu":
        res = _tiny_gpu_result()
    else:
        res = json.loads((ROOT / "benchmarks" / "results" / f"{name}.json").read_text())
    text = report.format_table(res)
    assert max(len(line) for line in text.splitlines()) <= 100, text
    for r in res["rows"]:
        assert r["title"] in text.splitlines() and f"  {r['size']} " in text
        for t in r["timings"].values():
            assert report._fmt_s(t["best_s"]) in text
    words = " ".join(text.split())  # the targets, notes and reasons wrap but stay whole
    for t in res["targets"]:
        assert t["target"] in words
    for u in res["unmeasured"]:
        assert u in words


def test_times_round_to_the_next_unit():
    assert report._fmt_s(9.996e-4) == "1 ms" and report._fmt_s(0.0123) == "12.3 ms"
    assert report._fmt_s(2.5e-9) == "2.5 ns" and report._fmt_s(None) == "-"


# --- the chart ------------------------------------------------------------------------------------
def _legend_labels(ax) -> list:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


@pytest.mark.parametrize("devices, impls", [
    (("cpu",), ("gradflow", "hand", "torch")),
    (("cpu",), ("gradflow", "hand")),          # PyTorch missing
    (("cpu",), ("gradflow", "torch")),         # no hand-written baseline
    (("cpu", "cuda:0"), ("gradflow", "hand")),
])
def test_chart_has_one_legend_entry_per_contender_and_ratio_bars_from_1(devices, impls):
    pytest.importorskip("matplotlib")
    speed = {"gradflow": 1.0, "hand": 0.5, "torch": 2.0}  # ratios 2 and 0.5: both sides of 1
    rows = [(k, s, None, {f"{i}__{d}": speed[i] * (1 + n) * (0.1 if d != "cpu" else 1)
                          for i in impls for d in devices})
            for n, (k, s) in enumerate((("chain", "32x32"), ("matmul", "1024x1024")))]
    fig = report.chart_figure(_fake(rows, devices=devices))
    times, ratios = fig.axes
    labels = _legend_labels(times)
    assert labels == [f"{report.IMPL_NAMES[i]} ({d})" for d in devices for i in impls]
    expected = [f"gradflow / {report.IMPL_NAMES[o]} ({d})" for d in devices
                for o in impls if o != "gradflow"]
    assert _legend_labels(ratios) == expected  # unique: no entry for a baseline that is missing
    bars = ratios.patches
    assert len(bars) == len(expected) * len(rows)
    for bar in bars:
        start, end = bar.get_x(), bar.get_x() + bar.get_width()
        assert start == 1.0 and end == pytest.approx(speed["gradflow"] / speed[
            "hand" if end > 1 else "torch"])  # from 1 to gradflow / baseline
    lo, hi = ratios.get_xlim()
    assert ratios.get_xscale() == "log" and lo * hi == pytest.approx(1.0)  # centred on 1


def test_chart_without_a_baseline_says_so():
    pytest.importorskip("matplotlib")
    fig = report.chart_figure(_fake([("chain", "32x32", 9, {"gradflow__cpu": 1e-3})]))
    times, ratios = fig.axes
    assert _legend_labels(times) == ["gradflow (cpu)"] and ratios.get_legend() is None
    assert "no baseline ran beside gradflow" in [t.get_text() for t in ratios.texts]


# --- the hot path: array-level rules agree with the recorded ones ---------------------------------
def _rule_cases():
    x = lambda: gf.randn(3, 4, dtype=gf.float64, requires_grad=True)  # noqa: E731
    row = lambda: gf.randn(4, dtype=gf.float64, requires_grad=True)  # noqa: E731
    pos = lambda: (gf.rand(3, 4, dtype=gf.float64) + 0.5).requires_grad_()  # noqa: E731
    return {
        "Add": lambda: (lambda a, b: a + b, [x(), row()]),
        "Sub": lambda: (lambda a, b: a - b, [row(), x()]),
        "Mul": lambda: (lambda a, b: 2.0 * a * b, [x(), row()]),
        "Div": lambda: (lambda a, b: a / b, [x(), pos()]),
        "Neg": lambda: (lambda a: -a, [x()]),
        "Exp": lambda: (lambda a: a.exp(), [x()]),
        "Log": lambda: (lambda a: a.log(), [pos()]),
        "Sqrt": lambda: (lambda a: a.sqrt(), [pos()]),
        "Tanh": lambda: (lambda a: a.tanh(), [x()]),
        "Sigmoid": lambda: (lambda a: a.sigmoid(), [x()]),
        "Relu": lambda: (lambda a: a.relu(), [x()]),
        "Sum": lambda: (lambda a: a.sum(axis=1) * 1.5, [x()]),
        "Mean": lambda: (lambda a: a.mean(axis=0, keepdims=True) * 1.5, [x()]),
        # Large: the gradient of a full reduction is a broadcast view, copied at the leaf.
        "Sum, large": lambda: (lambda a: a.sum() * 1.5, [gf.randn(200, 100, dtype=gf.float64,
                                                                  requires_grad=True)]),
        "Mean, large": lambda: (lambda a: a.mean(axis=1) * 1.5, [gf.randn(
            300, 100, dtype=gf.float64, requires_grad=True)]),
        "MatMul": lambda: (lambda a, b: a @ b, [x(), gf.randn(4, 2, dtype=gf.float64,
                                                               requires_grad=True)]),
        "Reshape": lambda: (lambda a: a.reshape(4, 3) * 1.0, [x()]),
        "Transpose": lambda: (lambda a: a.T * 1.0, [x()]),
        "BroadcastTo": lambda: (lambda a: a.broadcast_to((3, 4)) * 1.0, [row()]),
        "SumTo": lambda: (lambda a: gf.sum_to(a, (1, 4)) * 1.0, [x()]),
    }


@pytest.mark.parametrize("name", sorted(_rule_cases()))
def test_a_rule_on_arrays_agrees_with_the_same_rule_recorded(device, name):
    # One rule per op: a plain backward runs it on raw arrays, create_graph on Tensors.
    fn, inputs = _rule_cases()[name]()
    inputs = [t.to(device).detach().requires_grad_() for t in inputs]
    y = fn(*inputs)
    assert type(y.grad_fn).__name__ in (name.split(",")[0], "Mul"), y.grad_fn
    gy = gf.randn(*y.shape, dtype=y.dtype, device=device)
    # create_graph=True records the rules on Tensors, a plain gf.grad runs them on arrays.
    slow = gf.grad(fn(*inputs), inputs, gy, create_graph=True)
    fast = gf.grad(fn(*inputs), inputs, gy)
    for s, f in zip(slow, fast):
        assert not f.requires_grad and s.dtype == f.dtype and s.shape == f.shape
        np.testing.assert_allclose(f.numpy(), s.numpy(), rtol=1e-12, atol=1e-14)


def test_leaf_gradients_never_alias_each_other_or_the_callers_arrays():
    # NumPy's aliasing (shares_memory, read-only views, .base, flags): on the CPU, pinned.
    cpu = "cpu"
    a = gf.randn(3, device=cpu, requires_grad=True)
    b = gf.randn(3, device=cpu, requires_grad=True)
    (a + b).sum().backward()  # Add hands both leaves the same gradient array
    assert not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.data += 1
    assert (b.grad.numpy() == 1).all()

    x = gf.randn(4, 3, device=cpu, requires_grad=True)
    x.sum().backward()  # a read-only broadcast view: the leaf gets a writeable copy
    x.grad.data *= 2
    assert (x.grad.numpy() == 2).all()

    x = gf.randn(3, device=cpu, requires_grad=True)
    g = gf.ones(3, device=cpu)
    (x * 1.0 + 0.0).backward(g)
    x.grad.data[...] = 7
    assert (g.numpy() == 1).all()

    x = gf.randn(3, device=cpu, requires_grad=True)
    mid = x * 2.0
    mid.retain_grad()
    out = mid + 0.0
    out.backward(gf.ones(3, device=cpu))
    assert not np.shares_memory(x.grad.data, mid.grad.data)

    w = gf.randn(5, 4, device=cpu, requires_grad=True)
    (gf.randn(3, 5, device=cpu) @ w).sum().backward()  # a fresh product array is kept, not copied
    assert w.grad.data.base is None and w.grad.data.flags.writeable


def test_a_plain_backward_keeps_the_graph_checks():
    x = gf.randn(3, requires_grad=True)
    y = x.exp()
    z = y * 2.0
    with gf.no_grad():
        y += 1  # the output Exp saved for backward changes
    with pytest.raises(gf.BackwardError, match="modified in place"):
        z.sum().backward()
    x = gf.randn(3, requires_grad=True)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(gf.BackwardError, match="second time"):
        loss.backward()
    from gradflow.ops.elementwise import Add
    assert Add()(1.0, 2.0) == 3.0  # no Tensor: a rule's raw computation, nothing recorded
    x = gf.tensor([2.0], dtype=gf.float64, requires_grad=True)
    (g,) = gf.grad((x ** 3).sum(), [x], create_graph=True)
    (gg,) = gf.grad(g.sum(), [x])
    assert math.isclose(gg.item(), 12.0)


# --- the blocked, threaded CPU Adam (gradflow/backend/fused_numpy.py) -----------------------------
@pytest.mark.parametrize("amsgrad, weight_decay, decoupled, maximize", [
    (False, 0.0, False, False), (True, 0.01, False, True), (False, 0.01, True, False)])
def test_blocked_adam_is_bit_for_bit_the_plain_update(amsgrad, weight_decay, decoupled, maximize):
    from gradflow.backend import fused_numpy as fn
    n = 2 * fn._BLOCK + 12345  # several blocks and a ragged last one
    rng = np.random.default_rng(0)
    p0, g = (rng.standard_normal(n, dtype=np.float32) for _ in range(2))
    state0 = [np.abs(rng.standard_normal(n, dtype=np.float32)) for _ in range(3)]
    kw = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=weight_decay,
              decoupled=decoupled, maximize=maximize)

    def run(blocked):
        p, m, v, vmax = p0.copy(), *(s.copy() for s in state0)
        shapes = (p, g, m, v, vmax if amsgrad else None)
        saved = fn._BLOCK
        if not blocked:
            fn._BLOCK = 10 * n  # everything counts as small: the plain passes
        try:
            for step in (1, 2, 3):
                fn.adam_update(*shapes, step=step, **kw)
        finally:
            fn._BLOCK = saved
        return p, m, v, vmax

    for a, b in zip(run(True), run(False)):
        np.testing.assert_array_equal(a, b)


def test_blocked_adam_leaves_non_contiguous_arrays_to_the_plain_passes():
    from gradflow.backend import fused_numpy as fn
    n = 2 * fn._BLOCK
    rng = np.random.default_rng(1)
    base = rng.standard_normal((2, n), dtype=np.float32)
    p = base[:, ::2]  # a strided view: reshape(-1) would copy, so it must not be blocked
    expect = p.copy()
    before = p.copy()
    g = rng.standard_normal(p.shape, dtype=np.float32)
    m, v = np.zeros_like(expect), np.zeros_like(expect)
    m2, v2 = m.copy(), v.copy()
    kw = dict(step=1, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
              decoupled=False, maximize=False)
    fn.adam_update(p, g, m, v, None, **kw)
    fn.adam_update(expect, g, m2, v2, None, **kw)
    np.testing.assert_array_equal(p, expect)
    assert np.abs(p - before).min() > 0  # the view itself was updated, every element


def test_the_benchmarks_cnn_is_the_mnist_examples():
    # The bench times the model `examples/train_mnist.py --model cnn` trains: same parameters.
    spec = importlib.util.spec_from_file_location(
        "train_mnist", Path(__file__).resolve().parents[1] / "examples" / "train_mnist.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    shapes = [tuple(p.shape) for p in example.Net().parameters()]
    assert shapes == [tuple(s) for s in wl.CNN_SHAPES]
    model, _ = wl.gradflow_cnn(wl.initial_cnn_params(), gf.device("cpu"))
    x = gf.randn(2, 1, 28, 28)
    net = example.Net()
    net.load_state_dict(dict(zip(net.state_dict(), (p.data for p in model.parameters()))))
    model.eval(), net.eval()
    # the example normalises its input as PyTorch's example does; the bench times the network
    normalised = (x - example.MNIST_MEAN) / example.MNIST_STD
    np.testing.assert_allclose(net(x).numpy(), model(normalised).numpy(), rtol=1e-5, atol=1e-6)
