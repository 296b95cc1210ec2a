#!/usr/bin/env python3
"""Train the MNIST example's MLP for N steps and check that its memory stops growing.

The model, optimizer and data are those of examples/train_mnist.py (784-1000-1000-10 with ReLU,
Adam lr 1e-3, batches of 100 from the embedded MNIST sample, reshuffled every epoch). After
chosen steps (default 10, 100 and 1000) it reads the memory the run holds:

- on a GPU, CuPy's default memory pool of that GPU: bytes in use (`used_bytes()`) and bytes held
  from the driver (`total_bytes()`), read through gradflow's CUDA backend;
- on the CPU, Python's tracemalloc (NumPy reports its arrays to it): bytes traced now and the
  peak so far, so the same code path can be run on a machine without a GPU.

A training loop holds the same things after every step (parameters, gradients, Adam's moments,
the data set), so both numbers must stay flat after the warm-up (the first reading): growth
beyond the tolerances means something is kept alive per step (a leaked graph, a cache keyed by
step). Exit status 0 when flat, 1 when grown, 2 on a usage error.

    PYTHONPATH=. python scripts/pool_after_steps.py --device cuda
    PYTHONPATH=. python scripts/pool_after_steps.py --device cpu --steps 30 --at 3,10,30
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

try:
    import gradflow as gf
except ImportError:  # run from a source checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import gradflow as gf

from gradflow import nn, optim
from gradflow.data import DataLoader
from gradflow.datasets import MNISTSample

MIB = 2 ** 20


def parse_args(argv=None) -> argparse.Namespace:
    """The command line; `--at` defaults to 10, 100 and `--steps`."""
    p = argparse.ArgumentParser(
        description="Train the MNIST MLP for --steps steps and fail if the memory it holds "
                    "grows after the first reading.")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default: cuda)")
    p.add_argument("--steps", type=int, default=1000, help="training steps (default: 1000)")
    p.add_argument("--at", default=None, metavar="N,N,...",
                   help="steps after which to read the memory; the first is the warm-up "
                        "baseline (default: 10,100,STEPS)")
    p.add_argument("--hidden", default="1000,1000",
                   help="hidden widths, as in the example (default: 1000,1000)")
    p.add_argument("--batch-size", type=int, default=100, help="default: 100")
    # Bytes in use at the same point of the loop are the same every step, up to the data
    # loader's shuffling order; bytes held may move with the pool's splitting of blocks.
    p.add_argument("--tolerance-mib", type=float, default=1.0,
                   help="allowed growth of the bytes in use after the first reading, in MiB "
                        "(default: 1)")
    p.add_argument("--total-tolerance-mib", type=float, default=16.0,
                   help="allowed growth of the bytes held (pool total; peak on the CPU) after "
                        "the first reading, in MiB (default: 16)")
    p.add_argument("--json", type=Path, default=None, help="also write the readings here")
    args = p.parse_args(argv)
    try:
        args.hidden = [int(s) for s in args.hidden.split(",") if s.strip()]
        at = args.at or f"10,100,{args.steps}"
        args.at = sorted({int(s) for s in at.split(",") if s.strip()})
    except ValueError as exc:
        p.error(f"--hidden and --at take comma-separated integers ({exc})")
    if args.steps < 1 or args.batch_size < 1 or not args.hidden or min(args.hidden) < 1:
        p.error("--steps, --batch-size and the --hidden widths must be at least 1")
    if len(args.at) < 2 or args.at[0] < 1 or args.at[-1] > args.steps:
        p.error(f"--at needs two or more steps between 1 and --steps {args.steps}, "
                f"got {args.at}")
    if not (args.tolerance_mib >= 0 and args.total_tolerance_mib >= 0):
        p.error(f"the tolerances must be >= 0, got {args.tolerance_mib} and "
                f"{args.total_tolerance_mib}")
    try:
        args.device = gf.device(args.device)
    except (ValueError, gf.DeviceError) as exc:
        p.error(f"--device: {exc}")
    return args


def memory_reading(device) -> tuple[str, int, int]:
    """What `device` holds now: (method, bytes in use, bytes held or peak).

    Args:
        device: a gradflow Device; on the CPU tracemalloc must be tracing.

    Returns:
        ("cupy memory pool", used_bytes, total_bytes) on a GPU (after a synchronize, so that
        queued frees have happened), ("tracemalloc", current, peak) on the CPU.

    Example:
        >>> tracemalloc.start()
        >>> memory_reading(gf.device("cpu"))[0]
        'tracemalloc'
    """
    if device.type == "cpu":
        current, peak = tracemalloc.get_traced_memory()
        return "tracemalloc", current, peak
    device.synchronize()
    used, total = device.backend.memory_pool_bytes(device.index)
    return "cupy memory pool", int(used), int(total)


def train_and_read(device, steps: int, at: list[int], hidden: list[int],
                   batch_size: int = 100, log=print) -> list[dict]:
    """Train the example's MLP on the MNIST sample for `steps` steps, reading memory at `at`.

    Args:
        device: where to train (a gradflow Device).
        steps: optimizer steps in all (the data loader is re-iterated, reshuffled, as needed).
        at: step numbers after which to read `memory_reading`.
        hidden: hidden layer widths (the example's are 1000, 1000).
        batch_size: samples per step.
        log: called with one line per reading.

    Returns:
        One dict per reading: step, method, used_bytes, total_bytes, seconds (since the start),
        loss (of that step).

    Example:
        >>> train_and_read(gf.device("cpu"), 3, [1, 3], [16])[-1]["step"]
        3
    """
    gf.manual_seed(0)
    F = nn.functional
    train = MNISTSample(train=True, device=device)
    loader = DataLoader(train, batch_size=batch_size, shuffle=True, device=device)
    model = nn.MLP([784, *hidden, 10], activation="relu", device=device)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    wanted = set(at)
    readings = []
    if device.type == "cpu":
        tracemalloc.start()
    t0 = time.perf_counter()
    step = 0
    try:
        while step < steps:
            for x, y in loader:
                # The example's step (examples/train_mnist.py, _train_epoch).
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                if step in wanted:
                    method, used, total = memory_reading(device)
                    r = {"step": step, "method": method, "used_bytes": used,
                         "total_bytes": total, "seconds": round(time.perf_counter() - t0, 3),
                         "loss": float(loss.item())}
                    readings.append(r)
                    names = ("used", "total") if device.type != "cpu" else ("now", "peak")
                    log(f"step {step:>6}: {method}: {names[0]} {used / MIB:9.2f} MiB, "
                        f"{names[1]} {total / MIB:9.2f} MiB  (loss {r['loss']:.4f}, "
                        f"{r['seconds']:.1f} s)")
                if step >= steps:
                    break
    finally:
        if device.type == "cpu":
            tracemalloc.stop()
    return readings


def growth(readings: list[dict]) -> tuple[int, int]:
    """(used, total) bytes grown from the first reading to the largest later one.

    Args:
        readings: as returned by `train_and_read`, the warm-up reading first.

    Returns:
        The most `used_bytes` and `total_bytes` rose above the first reading (0 when they never
        did).

    Example:
        >>> growth([{"used_bytes": 5, "total_bytes": 9}, {"used_bytes": 7, "total_bytes": 9}])
        (2, 0)
    """
    first = readings[0]
    return tuple(max(0, max(r[k] for r in readings[1:]) - first[k])
                 for k in ("used_bytes", "total_bytes"))


def main(argv=None) -> int:
    """Run the check; returns the exit status (0 flat, 1 grown)."""
    args = parse_args(argv)
    print(f"MNIST MLP {'-'.join(map(str, [784, *args.hidden, 10]))}, Adam, batch "
          f"{args.batch_size}, {args.steps} steps on {args.device}; readings after steps "
          f"{', '.join(map(str, args.at))}", flush=True)
    readings = train_and_read(args.device, args.steps, args.at, args.hidden, args.batch_size,
                              log=lambda s: print(s, flush=True))
    used, total = growth(readings)
    tol, total_tol = int(args.tolerance_mib * MIB), int(args.total_tolerance_mib * MIB)
    ok = used <= tol and total <= total_tol
    verdict = (f"{'PASS' if ok else 'FAIL'}: from step {readings[0]['step']} to step "
               f"{readings[-1]['step']} the bytes in use grew {used / MIB:.2f} MiB (tolerance "
               f"{args.tolerance_mib:g}), the bytes held {total / MIB:.2f} MiB (tolerance "
               f"{args.total_tolerance_mib:g})")
    print(verdict, flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "device": str(args.device), "steps": args.steps, "hidden": args.hidden,
            "batch_size": args.batch_size, "tolerance_bytes": tol,
            "total_tolerance_bytes": total_tol, "readings": readings,
            "growth_used_bytes": used, "growth_total_bytes": total, "passed": ok},
            indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
