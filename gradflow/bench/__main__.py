"""`python -m gradflow.bench`: run the benchmark report, print the table, save JSON and PNG."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .report import default_out_dir, format_table, run, save_chart, save_json
from .workloads import MODES


def main(argv=None) -> int:
    """Parse the command line, run the report and write its files; returns the exit status."""
    ap = argparse.ArgumentParser(
        prog="python -m gradflow.bench",
        description="Time gradflow against hand-written NumPy/CuPy and PyTorch on every device "
                    "present; print a table and save JSON and a PNG chart.")
    ap.add_argument("--mode", choices=sorted(MODES), default="quick",
                    help="problem sizes and effort: tiny (seconds), quick (default, minutes), "
                         "full (the 4096 sizes and batch 32/100/1024)")
    ap.add_argument("--device", action="append", metavar="DEV",
                    help="a device to measure (repeatable; default: cpu, and cuda if present)")
    ap.add_argument("--only", action="append", metavar="KEY",
                    choices=["chain", "reductions", "matmul", "mlp_step", "mnist_epoch",
                             "cnn_step", "conv2d"],
                    help="run only this workload family (repeatable)")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    ap.add_argument("--no-hand", action="store_true", help="leave the hand-written baseline out")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory run")
    ap.add_argument("--rounds", type=int, help="timing rounds per contender")
    ap.add_argument("--round-seconds", type=float, help="seconds per timing round")
    ap.add_argument("--out", metavar="DIR", type=Path,
                    help="where to write the JSON and PNG (default: ./bench-results, which git "
                         "ignores; the committed results are updated only with "
                         "--out benchmarks/results)")
    ap.add_argument("--name", help="file name stem (default: <devices>-<mode>)")
    ap.add_argument("--no-chart", action="store_true", help="do not draw the PNG chart")
    args = ap.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    if args.round_seconds is not None and not args.round_seconds > 0:
        ap.error(f"--round-seconds must be positive, got {args.round_seconds}")

    impls = [i for i, off in (("gradflow", False), ("hand", args.no_hand),
                              ("torch", args.no_torch)) if not off]
    # Never the tracked benchmarks/results/ unless named: a casual run must not overwrite them.
    out = default_out_dir() if args.out is None else args.out
    t0 = time.perf_counter()
    print(f"gradflow benchmark, {args.mode} mode; results go to {out}", flush=True)
    result = run(args.mode, devices=args.device, impls=impls, only=args.only,
                 rounds=args.rounds, round_s=args.round_seconds, memory=not args.no_memory,
                 log=lambda s: print(s, flush=True))
    print()
    print(format_table(result))
    stem = args.name or f"{'-'.join(d.split(':')[0] for d in result['devices'])}-{args.mode}"
    path = save_json(result, out / f"{stem}.json")
    print(f"\nwrote {path}")
    if not args.no_chart:
        try:
            print(f"wrote {save_chart(result, out / f'{stem}.png')}")
        except ImportError as exc:
            print(f"no chart: matplotlib is missing ({exc}); pip install matplotlib",
                  file=sys.stderr)
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
