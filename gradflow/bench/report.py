"""The CPU-vs-GPU report: run every workload's contenders, print a table, save JSON and a chart.

How timings are taken (see `timing.py` and `_worker.py` for why):
- gradflow and the hand-written baseline run in this process, in interleaved rounds, on every
  device present; PyTorch runs in a worker process, in blocks between theirs, after a pause
  that lets the other library's spinning threads go idle.
- Each contender's figure is its best round (seconds per iteration); medians are in the JSON.
- A GPU contender synchronises the device inside each timed call.
"""
from __future__ import annotations

import datetime
import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import gradflow as gf
from .machine import machine_info
from .memory import training_peak
from .timing import Timing, compare, merge
from .workloads import MODES, Unavailable, Workload, torch_or_none, workloads

__all__ = ["run", "Row", "format_table", "targets", "save_json", "save_chart", "chart_figure",
           "default_out_dir", "LOCAL_IMPLS", "IMPL_NAMES"]

LOCAL_IMPLS = ("gradflow", "hand")  # run in this process; "torch" runs in the worker


@dataclass
class Row:
    """The timings of one workload: contender key ('impl/device') -> Timing, and the reasons
    for the contenders that could not run."""

    workload: Workload
    timings: dict[str, Timing] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def best(self, impl: str, device: str) -> float | None:
        """Best seconds per iteration of `impl` on `device`, or None when it did not run."""
        t = self.timings.get(f"{impl}/{device}")
        return None if t is None else t.best

    def ratio(self, impl: str, other: str, device: str) -> float | None:
        """best(impl) / best(other) on `device`, or None when either is missing."""
        a, b = self.best(impl, device), self.best(other, device)
        return None if a is None or b is None else a / b

    def as_dict(self, devices) -> dict:
        """A JSON-ready dict: timings, ratios, GPU speedups and the missing contenders."""
        w = self.workload
        ratios, speedups = {}, {}
        for d in devices:
            for other in ("hand", "torch"):
                r = self.ratio("gradflow", other, d)
                if r is not None:
                    ratios[f"gradflow/{other} ({d})"] = r
            if d != "cpu":
                for impl in ("gradflow", "hand", "torch"):
                    cpu = self.best(impl, "cpu")
                    gpu = self.best(impl, d)
                    if cpu is not None and gpu is not None:
                        speedups[f"{impl} ({d} vs cpu)"] = cpu / gpu
        return {"workload": w.key, "title": w.title, "size": w.size, "group": w.group,
                "ops_per_iteration": w.ops,
                "timings": {k: t.as_dict() for k, t in self.timings.items()},
                "ratios": ratios, "gpu_speedup": speedups, "missing": self.missing}


class _TorchWorker:
    """The worker process (`python -m gradflow.bench._worker`), started on first use."""

    def __init__(self) -> None:
        self.proc = None

    def request(self, req: dict) -> dict:
        if self.proc is None:
            env = dict(os.environ)
            root = str(Path(gf.__file__).resolve().parents[1])
            env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
            # PyTorch as it runs on its own: the worker never calls gradflow.tune_host_malloc,
            # and "system" (overriding a GRADFLOW_MALLOC=tuned meant for this process) keeps
            # its import of gradflow from raising malloc's thresholds for PyTorch too.
            env["GRADFLOW_MALLOC"] = "system"
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gradflow.bench._worker"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, env=env)
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            self.proc = None
            raise RuntimeError(f"the benchmark worker process exited (status {code}) while "
                               f"running {req.get('group')} / {req.get('impl')}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
            self.proc = None


def _present_devices() -> list:
    devs = [gf.device("cpu")]
    if gf.cuda_available():
        devs.append(gf.device("cuda"))
    return devs


def run(mode: str = "quick", devices=None, impls=("gradflow", "hand", "torch"),
        only=None, rounds: int | None = None, round_s: float | None = None,
        blocks: int | None = None, settle_s: float | None = None,
        memory: bool = True, tune_malloc: bool = True,
        log: Callable[[str], None] = print) -> dict:
    """Run the benchmark workloads of `mode` and return the results as a JSON-ready dict.

    Args:
        mode: 'tiny' (seconds, for tests), 'quick' (a few minutes) or 'full' (the issue's sizes).
        devices: device names or Devices to measure (default: cpu, and cuda when present).
        impls: contenders: any of 'gradflow', 'hand' (hand-written NumPy/CuPy), 'torch'.
        only: workload keys to run ('chain', 'reductions', 'matmul', 'mlp_step',
            'mnist_epoch', 'cnn_step', 'conv2d'); default all.
        rounds, round_s: timing rounds per contender and seconds per round (mode defaults).
        blocks: how many times the local and PyTorch blocks alternate (rounds are split
            between them).
        settle_s: pause between a block of one library and the next.
        memory: also measure the peak memory of a short training run.
        tune_malloc: first call `gradflow.tune_host_malloc()` for this process, as a training
            script does (see gradflow.backend.host_malloc; GRADFLOW_MALLOC=system still
            refuses it). The JSON's machine["host_malloc"] says what was done. This changes
            glibc's malloc thresholds for the rest of the calling process.
        log: where progress lines go.

    Returns:
        A dict with "mode", "created", "machine", "rows" (one per workload), "memory",
        "targets" and "unmeasured" (what could not run, and why).
    """
    cfg = MODES[mode] if mode in MODES else None
    if cfg is None:
        raise ValueError(f"unknown benchmark mode {mode!r}: expected one of {sorted(MODES)}")
    bad = set(impls) - {"gradflow", "hand", "torch"}
    if bad:
        raise ValueError(f"unknown contenders {sorted(bad)}: expected gradflow, hand, torch")
    devs = _present_devices() if devices is None else [gf.device(d) for d in devices]
    if tune_malloc:
        # gradflow's figures with the opt-in its training scripts make: freed buffers stay in
        # the process instead of being faulted in again each iteration.
        gf.tune_host_malloc()
    rounds = rounds or cfg["rounds"]
    round_s = round_s or cfg["round_s"]
    blocks = blocks or (1 if mode == "tiny" else 2)
    settle_s = (0.0 if mode == "tiny" else 0.5) if settle_s is None else settle_s
    per_block = max(1, math.ceil(rounds / blocks))
    unmeasured = []
    if not any(d.type == "cuda" for d in devs):
        reason = ("no CUDA device here (CuPy missing or no GPU visible): every GPU figure is "
                  "unmeasured" if not gf.cuda_available() else "cuda not selected")
        unmeasured.append(f"cuda: {reason}")
    want_torch = "torch" in impls
    if want_torch and torch_or_none() is None:
        unmeasured.append("torch: PyTorch is not installed; its columns are empty")
        want_torch = False
    worker = _TorchWorker() if want_torch else None
    load_before = _loadavg()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if load_before is not None and load_before[0] > 0.5 * (cores or 1):
        log(f"  note: the machine is busy (load average {load_before[0]:.1f} on {cores} cores): "
            "timings will be noisy and slower than on an idle machine")
    rows = []
    try:
        for w in workloads(mode):
            if only and w.key not in only:
                continue
            log(f"  {w.group} ...")
            rows.append(_run_row(w, mode, devs, impls, worker, per_block, blocks, round_s,
                                 settle_s))
            gc.collect()
        torch_machine = None
        if worker is not None:
            try:
                torch_machine = worker.request({"machine": True}).get("machine")
            except RuntimeError:
                pass  # the rows already say what failed
    finally:
        if worker is not None:
            worker.close()
    mem = _memory(mode, devs, impls, log) if memory and (not only or "mlp_step" in only) \
        else {}
    names = [str(d) for d in devs]
    info = machine_info(devs)
    if torch_machine is not None:
        info["torch_threads"] = torch_machine.get("torch_threads")
        info["blas_torch_process"] = torch_machine.get("blas")
        info["host_malloc_torch_process"] = torch_machine.get("host_malloc")
    info["load_average"] = {"before": load_before, "after": _loadavg()}
    result = {
        "schema": 1, "mode": mode, "created": datetime.datetime.now().astimezone().isoformat(
            timespec="seconds"),
        "command": " ".join([Path(sys.executable).name] + sys.argv) if sys.argv else None,
        "devices": names, "machine": info,
        "timing": {"rounds": per_block * blocks, "round_s": round_s, "blocks": blocks,
                   "settle_s": settle_s, "statistic": "best round (min); median kept too"},
        "rows": [r.as_dict(names) for r in rows], "memory": mem, "unmeasured": unmeasured,
    }
    result["targets"] = targets(result)
    return result


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):  # not on every platform
        return None


def _run_row(w, mode, devs, impls, worker, per_block, blocks, round_s, settle_s) -> Row:
    row = Row(w)
    local = {}
    for dev in devs:
        for impl in LOCAL_IMPLS:
            if impl not in impls:
                continue
            key = f"{impl}/{dev}"
            try:
                local[key] = w.build(impl, dev)
            except Unavailable as exc:
                row.missing[key] = str(exc)
    remote = [str(d) for d in devs] if worker is not None else []
    parts: dict[str, list[Timing]] = {}
    numbers: dict[str, int] = {}
    warm = 3 if any(d.type == "cuda" for d in devs) else 1  # CuPy compiles kernels on first use
    for _ in range(blocks):
        if local:
            for k, t in compare(local, per_block, round_s, warm, numbers).items():
                parts.setdefault(k, []).append(t)
        for d in list(remote):
            time.sleep(settle_s)
            key = f"torch/{d}"
            try:
                reply = worker.request({"mode": mode, "group": w.group, "impl": "torch",
                                        "device": d, "rounds": per_block, "round_s": round_s,
                                        "warmup": warm})
            except RuntimeError as exc:  # the worker died (out of memory, a crash in torch)
                reply = {"error": str(exc)}
            if "timing" in reply:
                parts.setdefault(key, []).append(Timing.from_dict(reply["timing"]))
            else:
                row.missing[key] = reply.get("unavailable") or reply.get("error", "failed")
                remote.remove(d)
        if remote:
            time.sleep(settle_s)
    row.timings = {k: merge(v) for k, v in parts.items()}
    return row


def _memory(mode, devs, impls, log) -> dict:
    mlp = [w for w in workloads(mode) if w.key == "mlp_step"]
    if not mlp:
        return {}
    # The batch the targets are set at (100) when the mode has it.
    w = next((m for m in mlp if m.size == "batch 100"), mlp[0])
    out = {"workload": w.group, "steps": 3, "peaks": {}, "missing": {}}
    log(f"  peak memory: {w.group}, build and 3 steps ...")
    for dev in devs:
        for impl in ("gradflow", "hand", "torch"):
            if impl not in impls:
                continue
            key = f"{impl}/{dev}"
            try:
                out["peaks"][key] = training_peak(w, impl, dev)
            except Unavailable as exc:
                out["missing"][key] = str(exc)
            gc.collect()
    return out


# --- targets --------------------------------------------------------------------------------------
def targets(result: dict) -> list[dict]:
    """The issue's performance targets, evaluated on `result` (never asserted anywhere).

    Each entry: {"target", "value", "limit", "status"} with status 'met', 'missed' or
    'unmeasured' (and a "why" for the last).
    """
    rows = result["rows"]
    out = []

    def find(key, size):
        return next((r for r in rows if r["workload"] == key and r["size"] == size), None)

    def best(row, k):
        t = row["timings"].get(k) if row else None
        return None if t is None else t["best_s"]

    def add(name, value, limit, le=True, why=None):
        if value is None:
            out.append({"target": name, "value": None, "limit": limit, "status": "unmeasured",
                        "why": why or "a contender did not run in this mode"})
        else:
            ok = value <= limit if le else value >= limit
            out.append({"target": name, "value": value, "limit": limit,
                        "status": "met" if ok else "missed"})

    def ratio(row, a, b):
        x, y = best(row, a), best(row, b)
        return None if x is None or y is None else x / y

    step = find("mlp_step", "batch 100")
    add("CPU MLP step, batch 100: gradflow / hand-written NumPy <= 1.05",
        ratio(step, "gradflow/cpu", "hand/cpu"), 1.05)
    add("CPU MLP step, batch 100: gradflow / PyTorch (default Adam) <= 0.8",
        ratio(step, "gradflow/cpu", "torch/cpu"), 0.8)
    chain = find("chain", "32x32")
    add("CPU elementwise chain 32x32: gradflow per op / PyTorch per op <= 0.8",
        ratio(chain, "gradflow/cpu", "torch/cpu"), 0.8)
    for r in rows:
        if r["workload"] == "matmul" and int(r["size"].split("x")[0]) >= 1024:
            add(f"CPU matmul fwd+bwd {r['size']}: gradflow / NumPy's own matmuls <= 1.05",
                ratio(r, "gradflow/cpu", "hand/cpu"), 1.05)
    cnn = find("cnn_step", "batch 64")
    add("CPU MNIST CNN step, batch 64: gradflow / PyTorch <= 1.5",
        ratio(cnn, "gradflow/cpu", "torch/cpu"), 1.5)
    add("CPU MNIST CNN step, batch 64: gradflow / hand-written NumPy im2col <= 1.05",
        ratio(cnn, "gradflow/cpu", "hand/cpu"), 1.05)
    gpu = next((d for d in result["devices"] if d != "cpu"), None)
    no_gpu = "no GPU measured in this run"
    mm = find("matmul", "4096x4096")
    add("GPU matmul fwd+bwd 4096x4096: speedup over the CPU >= 10",
        ratio(mm, "gradflow/cpu", f"gradflow/{gpu}") if gpu else None, 10.0, le=False,
        why=no_gpu if not gpu else "the 4096 matmul runs in full mode only")
    ep = next((r for r in rows if r["workload"] == "mnist_epoch"), None)
    add("GPU MNIST epoch: speedup over the CPU > 1",
        ratio(ep, "gradflow/cpu", f"gradflow/{gpu}") if gpu else None, 1.0, le=False,
        why=no_gpu)
    return out


# --- output ---------------------------------------------------------------------------------------
WIDTH = 100  # the printed report fits a 100-column terminal


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "-"
    s = float(f"{s:.3g}")  # round first, so that 999.7 us reads 1 ms, not "1e+03 us"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if s >= scale or unit == "ns":
            v = s / scale
            return f"{v:.3g} {unit}" if v < 1000 else f"{v:.0f} {unit}"
    return "-"


def _fmt_r(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


def _wrap(text: str, indent: str = "", hang: int = 4) -> list[str]:
    """`text` as lines of at most WIDTH columns, continuation lines indented `hang` more."""
    return textwrap.wrap(text, WIDTH, initial_indent=indent, break_on_hyphens=False,
                         subsequent_indent=indent + " " * hang, break_long_words=False) or [""]


def _grid(head: tuple, groups: list) -> list[str]:
    """A text table whose rows come in groups under a title line (the workload): the first
    column holds each row's size indented under it, so titles and sizes need no column each.

    Args:
        head: the column headers.
        groups: (title, rows) pairs; each row a tuple of cells, one per header.

    Returns:
        The lines: header, rule, then each title followed by its rows.
    """
    rows = [("  " + str(r[0]),) + tuple(str(c) for c in r[1:]) for _, rs in groups for r in rs]
    widths = [max(len(x[i]) for x in [head] + rows) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i < 2 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*head).rstrip(), fmt.format(*("-" * w for w in widths))]
    i = 0
    for title, rs in groups:
        lines.append(title)
        for _ in rs:
            lines.append(fmt.format(*rows[i]).rstrip())
            i += 1
    return lines


def _cells(result: dict):
    """(row, device, best seconds per contender) for every workload and device that ran."""
    for r in result["rows"]:
        for d in result["devices"]:
            t = r["timings"]
            best = {impl: (t[f"{impl}/{d}"]["best_s"] if f"{impl}/{d}" in t else None)
                    for impl in ("gradflow", "hand", "torch")}
            if any(v is not None for v in best.values()):
                yield r, d, best


def _grouped(items) -> list:
    """(title, rows) pairs from (title, row) items, keeping their order."""
    groups: list = []
    for title, row in items:
        if not groups or groups[-1][0] != title:
            groups.append((title, []))
        groups[-1][1].append(row)
    return groups


def _times_table(result: dict) -> list[str]:
    head = ("workload, size", "device", "gradflow", "hand-written", "gf/hand", "PyTorch",
            "gf/torch")
    items = [(r["title"], (r["size"], d, _fmt_s(b["gradflow"]), _fmt_s(b["hand"]),
                           _fmt_r(_ratio(b["gradflow"], b["hand"])), _fmt_s(b["torch"]),
                           _fmt_r(_ratio(b["gradflow"], b["torch"]))))
             for r, d, b in _cells(result)]
    intro = ("time per iteration, best round; gf/x: gradflow's time over x's (below 1: gradflow "
             "is faster)")
    return _wrap(intro) + _grid(head, _grouped(items))


def _per_op_table(result: dict) -> list[str]:
    """Time per op where a workload counts its ops, and the GPU's speedup: the rows that have
    either (none on a CPU-only run without op counts)."""
    head = ("workload, size", "device", "ops", "gf per op", "torch per op", "GPU speedup")
    items = []
    for r, d, b in _cells(result):
        ops = r["ops_per_iteration"]
        if not ops and d == "cpu":
            continue
        g, p = b["gradflow"], b["torch"]
        cpu = r["timings"].get("gradflow/cpu", {}).get("best_s")
        speed = "-" if d == "cpu" or _ratio(cpu, g) is None else _fmt_r(cpu / g) + "x"
        items.append((r["title"], (r["size"], d, ops or "-",
                                   _fmt_s(g / ops) if ops and g is not None else "-",
                                   _fmt_s(p / ops) if ops and p is not None else "-", speed)))
    if not items:
        return []
    intro = "per op: time per iteration / ops; GPU speedup: gradflow's CPU time over its GPU time"
    return [""] + _wrap(intro) + _grid(head, _grouped(items))


def _memory_lines(mem: dict) -> list[str]:
    if not mem.get("peaks"):
        return []
    out = ["", f"peak memory, {mem['workload']} (build + {mem['steps']} steps):"]
    for k, v in mem["peaks"].items():
        out.append(f"  {k:18s} {v['peak_bytes'] / 2**20:8.1f} MiB  ({v['method']})")
    for k, why in mem.get("missing", {}).items():
        out += _wrap(f"{k:18s} {'-':>8s}      ({why})", "  ", 33)
    return out


def _target_lines(result: dict) -> list[str]:
    out = ["", "targets (measured, not asserted):"]
    for t in result["targets"]:
        v = "-" if t["value"] is None else f"{t['value']:.3f}"
        extra = f" ({t['why']})" if t["status"] == "unmeasured" else ""
        out += _wrap(f"[{t['status']:>10s}] {t['target']}: {v}{extra}", "  ", 13)
    for u in result["unmeasured"]:
        out += _wrap(f"note: {u}", "  ", 6)
    missing = sorted({f"{k}: {why}" for r in result["rows"] for k, why in r["missing"].items()
                      if not k.startswith("hand/") or "has no hand" not in why})
    for m in missing:
        out += _wrap(f"skipped {m}", "  ", 8)
    return out


def format_table(result: dict) -> str:
    """The results as plain text of at most 100 columns: a table of times and gradflow's
    ratios, one of times per op and GPU speedups, the peak memory and the targets.

    Args:
        result: what `run` returns (or its JSON, loaded).

    Returns:
        The report as one string of lines.

    Example:
        >>> print(format_table(json.load(open("bench-results/cpu-quick.json"))))
    """
    out = _times_table(result) + _per_op_table(result)
    out += _memory_lines(result.get("memory") or {}) + _target_lines(result)
    return "\n".join(out)


def default_out_dir() -> Path:
    """Where `python -m gradflow.bench` writes when not told: bench-results/ in the current
    directory, which git ignores, so that a run never overwrites the committed results in
    benchmarks/results/ (pass `--out benchmarks/results` to update those on purpose).

    Returns:
        The absolute path of ./bench-results.
    """
    return Path.cwd() / "bench-results"


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; results are for sharing
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_json(result: dict, path) -> Path:
    """Write `result` as indented JSON to `path` (through a temporary file and a rename)."""
    path = Path(path)

    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    _atomic_write(path, write)
    return path


def save_chart(result: dict, path) -> Path:
    """Draw the results to a PNG at `path` (see `chart_figure`), through a temporary file.

    Args:
        result: what `run` returns (or its JSON, loaded).
        path: the PNG to write; its folder is created.

    Returns:
        `path`, as a Path.

    Raises:
        ImportError: matplotlib is not installed (pip install matplotlib).

    Example:
        >>> save_chart(json.load(open("bench-results/cpu-quick.json")), "/tmp/cpu-quick.png")
    """
    fig = chart_figure(result)
    path = Path(path)
    _atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    return path


IMPL_NAMES = {"gradflow": "gradflow", "hand": "hand-written", "torch": "PyTorch"}
# One colour per contender in both panels: a ratio bar has the colour of its baseline.
_COLORS = {"gradflow": "tab:blue", "hand": "tab:orange", "torch": "tab:green"}


def _style(impl: str, device: str) -> dict:
    # GPU bars are hatched, so that cpu and cuda of one contender tell apart in one colour.
    return {"color": _COLORS[impl], "hatch": None if device == "cpu" else "//",
            "edgecolor": "white", "linewidth": 0.5}


def chart_figure(result: dict):
    """The chart of `result` as a matplotlib Figure (no pyplot state, nothing shown).

    Left: seconds per iteration of every contender that ran, per workload (log scale). Right:
    gradflow's time over each baseline's on each device, as bars that start at 1 (the same
    speed) and end at the ratio, on a log scale centred on 1, so that "2x slower" and "2x
    faster" are bars of one length. Contenders and baselines that did not run have no legend
    entry.

    Args:
        result: what `run` returns (or its JSON, loaded).

    Returns:
        A matplotlib.figure.Figure with the two axes, times first.

    Raises:
        ImportError: matplotlib is not installed (pip install matplotlib).

    Example:
        >>> fig = chart_figure(json.load(open("benchmarks/results/cpu-quick.json")))
        >>> [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        ['gradflow (cpu)', 'hand-written (cpu)', 'PyTorch (cpu)']
    """
    from matplotlib.figure import Figure

    rows = result["rows"]
    n = max(len(rows), 1)
    fig = Figure(figsize=(15, 0.75 * n + 3), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": [3, 2]})
    _draw_times(ax1, rows)
    _draw_ratios(ax2, rows, result["devices"])
    ax1.set_yticks(range(len(rows)), [f"{r['title']}\n{r['size']}" for r in rows], fontsize=8)
    ax1.set_ylim(len(rows) - 0.5, -0.5)  # the first workload on top
    fig.suptitle(_chart_title(result), fontsize=10)
    return fig


def _chart_title(result: dict) -> str:
    machine = result.get("machine") or {}
    host = machine.get("host") or {}
    core = (machine.get("env") or {}).get("OPENBLAS_CORETYPE") or "unset"
    return (f"gradflow benchmark ({result.get('mode', '?')}): {host.get('cpu', '?')}, "
            f"{host.get('usable_cpus', '?')} cores, OPENBLAS_CORETYPE={core}; "
            f"devices: {', '.join(result['devices'])}")


def _draw_times(ax, rows) -> None:
    order = ["gradflow", "hand", "torch"]
    keys = sorted({k for r in rows for k in r["timings"]},
                  key=lambda k: (k.split("/")[1] != "cpu", k.split("/")[1],
                                 order.index(k.split("/")[0])))
    height = 0.8 / max(len(keys), 1)
    for j, k in enumerate(keys):
        impl, dev = k.split("/")
        pts = [(i + (j - (len(keys) - 1) / 2) * height, r["timings"][k]["best_s"])
               for i, r in enumerate(rows) if k in r["timings"]]
        ys, xs = zip(*pts)
        ax.barh(ys, xs, height=height, label=f"{IMPL_NAMES[impl]} ({dev})", **_style(impl, dev))
    ax.set_xscale("log")
    ax.set_xlabel("seconds per iteration (best round; lower is better)")
    ax.grid(axis="x", which="both", alpha=0.3)
    if keys:
        _legend_above(ax, ncol=3)


def _ratio_series(rows, devices) -> list:
    """(baseline, device, [(row index, gradflow / baseline)]) for every pair that ran."""
    out = []
    for dev in devices:
        for other in ("hand", "torch"):
            pts = [(i, r["timings"][f"gradflow/{dev}"]["best_s"]
                    / r["timings"][f"{other}/{dev}"]["best_s"])
                   for i, r in enumerate(rows)
                   if f"gradflow/{dev}" in r["timings"] and f"{other}/{dev}" in r["timings"]]
            if pts:
                out.append((other, dev, pts))
    return out


def _draw_ratios(ax, rows, devices) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    series = _ratio_series(rows, devices)
    height = 0.8 / max(len(series), 1)
    for j, (other, dev, pts) in enumerate(series):
        ys = [i + (j - (len(series) - 1) / 2) * height for i, _ in pts]
        xs = [x for _, x in pts]
        # From 1 (the same speed) to the ratio: a bar's length is how far gradflow is off.
        ax.barh(ys, [x - 1 for x in xs], left=1, height=height,
                label=f"gradflow / {IMPL_NAMES[other]} ({dev})", **_style(other, dev))
        for y, x in zip(ys, xs):
            ax.text(x * 1.03 if x >= 1 else x / 1.03, y, f"{x:.2f}", va="center",
                    ha="left" if x >= 1 else "right", fontsize=7)
    ax.axvline(1.0, color="k", lw=1)
    ax.set_xscale("log")
    ratios = [x for *_, pts in series for _, x in pts] or [1.0]
    reach = 1.35 * max(max(ratios), 1 / min(ratios), 1.1)
    ax.set_xlim(1 / reach, reach)  # centred on 1: k times slower and k times faster look alike
    ax.xaxis.set_major_locator(LogLocator(base=2))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="y", left=False, labelleft=False)
    ax.set_xlabel("gradflow's time / the baseline's (log scale; left of 1: gradflow is faster)")
    ax.grid(axis="x", which="major", alpha=0.3)
    if series:
        _legend_above(ax, ncol=2)  # its labels are longer; three columns squeeze the axes
    else:
        ax.text(0.5, 0.5, "no baseline ran beside gradflow", transform=ax.transAxes,
                ha="center", va="center")


def _legend_above(ax, ncol: int) -> None:
    # Above the axes, not inside: a legend inside covers the longest bars.
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncol=ncol, fontsize=8, frameon=False)
