"""`python -m gradflow.bench.distributed`: what data parallelism costs and buys on this machine.

It launches `mpiexec -n N python -m gradflow.bench.distributed --worker` for each setting and
prints one table. Each worker measures, on its ranks:
  * the allreduce of the MNIST MLP's 1,796,010 float32 gradients as DistributedDataParallel does
    it (one flat buffer), against its baseline in the same run: one allreduce per parameter;
  * the MLP's training step (global batch 100, split across the ranks) with DDP, against the
    same step on the rank's share alone, without communication (the compute part).
The settings compare one rank using every core (its BLAS threads) with N ranks of one thread
each, so that both use the same cores. Needs the `dist` extra (mpi4py and an mpiexec).

    python -m gradflow.bench.distributed                      # 1 and 2 ranks, printed only
    python -m gradflow.bench.distributed --ranks 1,2,4 --out bench-results --name cpu-distributed
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MLP = [784, 1000, 1000, 10]
GLOBAL_BATCH = 100


def _median_ms(fn, reps: int, before=None) -> float:
    times = []
    for _ in range(reps):
        if before is not None:
            before()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def worker(steps: int, out: Path) -> None:
    """One rank's measurements; rank 0 writes them to `out` as JSON."""
    import gradflow as gf
    import gradflow.distributed as dist
    from gradflow.nn.parallel import DistributedDataParallel

    dist.init_process_group()
    rank, size = dist.get_rank(), dist.get_world_size()
    device = gf.default_device()
    gf.manual_seed(0)
    model = gf.nn.MLP(MLP)
    grads = [gf.randn(*p.shape) for p in model.parameters()]
    flat = gf.randn(sum(g.size for g in grads))
    reps = max(steps // 2, 5)
    flat_ms = _median_ms(lambda: dist.all_reduce(flat), reps, dist.barrier)
    per_param_ms = _median_ms(lambda: [dist.all_reduce(g) for g in grads], reps, dist.barrier)

    share = GLOBAL_BATCH // size
    x, y = gf.randn(share, MLP[0]), gf.randint(0, MLP[-1], (share,))
    ddp = DistributedDataParallel(model)
    alone = gf.nn.MLP(MLP)

    def step(net, opt):
        opt.zero_grad()
        gf.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        device.synchronize()

    opts = {"ddp": gf.optim.Adam(ddp.parameters()), "alone": gf.optim.Adam(alone.parameters())}
    for _ in range(3):  # warm-up: first-touch page faults, BLAS thread start
        step(ddp, opts["ddp"])
        step(alone, opts["alone"])
    times = {"ddp": [], "alone": []}
    for _ in range(steps):  # alternating, so that both see the same machine
        for name, net in (("ddp", ddp), ("alone", alone)):
            t0 = time.perf_counter()
            step(net, opts[name])
            times[name].append(time.perf_counter() - t0)
    ddp_ms, alone_ms = (1e3 * statistics.median(times[k]) for k in ("ddp", "alone"))
    result = {"ranks": size, "backend": dist.get_backend(), "device": str(device),
              "values": flat.size, "allreduce_flat_ms": flat_ms,
              "allreduce_per_parameter_ms": per_param_ms, "parameters": len(grads),
              "share": share, "ddp_step_ms": ddp_ms, "compute_step_ms": alone_ms,
              "threads": os.environ.get("OMP_NUM_THREADS", "default")}
    if rank == 0:
        out.write_text(json.dumps(result))
    dist.destroy_process_group()


def _mpiexec() -> str:
    here = Path(sys.executable).parent / "mpiexec"
    found = str(here) if here.exists() else shutil.which("mpiexec")
    if found is None:
        raise SystemExit("error: no mpiexec: install the dist extra (pip install -e '.[dist]')")
    return found


def _launch(ranks: int, threads: str | None, steps: int) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if threads is None:
            env.pop(var, None)
        else:
            env[var] = threads
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [_mpiexec(), "-n", str(ranks), sys.executable, "-m", "gradflow.bench.distributed",
               "--worker", "--steps", str(steps), "--result", str(out)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not out.exists():
            raise SystemExit(f"error: {' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
        return json.loads(out.read_text())


def format_table(rows: list[dict]) -> str:
    """The measurements as a table: one line per setting, the ratios against their baselines."""
    base = rows[0]["ddp_step_ms"]
    lines = [f"{'ranks':>5} {'threads':>8} {'allreduce flat':>15} {'per parameter':>14} "
             f"{'step (DDP)':>11} {'step alone':>11} {'comm.':>6} {'samples/s':>10} "
             f"{'speed-up':>9}"]
    for r in rows:
        comm = r["ddp_step_ms"] - r["compute_step_ms"]
        lines.append(
            f"{r['ranks']:>5} {r['threads']:>8} {r['allreduce_flat_ms']:>12.2f} ms "
            f"{r['allreduce_per_parameter_ms']:>11.2f} ms {r['ddp_step_ms']:>8.1f} ms "
            f"{r['compute_step_ms']:>8.1f} ms {100 * comm / r['ddp_step_ms']:>5.0f}% "
            f"{1e3 * GLOBAL_BATCH / r['ddp_step_ms']:>10,.0f} {base / r['ddp_step_ms']:>8.2f}x")
    return "\n".join(lines)


def main(argv=None) -> int:
    """Run the settings, print the table, and write JSON when --out is given."""
    ap = argparse.ArgumentParser(prog="python -m gradflow.bench.distributed",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", default="1,2", help="rank counts to compare (default: 1,2)")
    ap.add_argument("--steps", type=int, default=40, help="timed steps per setting (default 40)")
    ap.add_argument("--out", type=Path, help="directory for NAME.json (default: print only; "
                    "--out benchmarks/results updates the committed results)")
    ap.add_argument("--name", default="distributed", help="file name stem (default: distributed)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args.steps, args.result)
        return 0
    counts = [int(n) for n in args.ranks.split(",")]
    # One rank with every core's BLAS threads is the baseline; then one thread per rank.
    settings = ([(1, None)] if 1 in counts else []) + [(n, "1") for n in counts]
    rows = []
    for ranks, threads in settings:
        print(f"measuring {ranks} rank(s), {threads or 'default'} thread(s) each ...", flush=True)
        rows.append(_launch(ranks, threads, args.steps))
    print(f"\nMNIST MLP {'-'.join(map(str, MLP))}, {rows[0]['values']:,} gradients, global "
          f"batch {GLOBAL_BATCH}, backend {rows[0]['backend']}, device {rows[0]['device']}:")
    print(format_table(rows))
    # Only where the user names: the default writes nothing, so a run never touches the
    # committed benchmarks/results/ (pass --out benchmarks/results to update them on purpose).
    if args.out is None:
        print("(not saved: --out DIR writes DIR/NAME.json)")
        return 0
    from .machine import machine_info
    from .report import save_json  # a unique temporary name, then a rename
    path = save_json({"machine": machine_info(), "settings": rows}, args.out / f"{args.name}.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
