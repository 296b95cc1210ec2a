"""Per-call cost of small ops and of a small MLP step, with anomaly mode off and on.

The ops are tiny (64 floats) so that the time is gradflow's own per-op work, not the arithmetic:
the cost anomaly mode adds, or a change to `Function.__call__` adds, shows in full. Both modes
are timed in this process, alternately, and the best of `--repeat` runs is kept.

    python benchmarks/per_op_overhead.py                 # a table, anomaly off and on
    python benchmarks/per_op_overhead.py --json          # one JSON line: {mode: {case: us}}

To compare two versions of gradflow, run it in each checkout, alternately, in one session
(`git worktree add /tmp/before HEAD~1`, then `PYTHONPATH=/tmp/before python ...` and
`PYTHONPATH=. python ...`, several times each); README's anomaly table was made so.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import timeit

import gradflow as gf


def cases() -> dict:
    """{name: (callable, calls per timing)}: four small ops and one MLP training step.

    Returns:
        The cases, built on the CPU with seed 0.

    Example:
        >>> fn, number = cases()["a + b"]
    """
    gf.manual_seed(0)
    a = (gf.rand(64, device="cpu") + 0.5).requires_grad_()
    b = (gf.rand(64, device="cpu") + 0.5).requires_grad_()
    model = gf.nn.MLP([64, 64, 10]).to("cpu")
    x, t = gf.randn(32, 64, device="cpu"), gf.randint(0, 10, (32,), device="cpu")

    def step():
        gf.nn.functional.cross_entropy(model(x), t).backward()

    return {"a + b": (lambda: a + b, 20000), "a * 0.5": (lambda: a * 0.5, 20000),
            "a / b": (lambda: a / b, 20000), "log(a)": (lambda: gf.log(a), 20000),
            "MLP 64-64-10 step, batch 32": (step, 500)}


def measure(repeat: int = 5, scale: float = 1.0) -> dict:
    """Microseconds per call of each case, {"off": {...}, "on": {...}}, best of `repeat`.

    Args:
        repeat: timings per case and mode; the modes alternate within each round.
        scale: multiplies the calls per timing (0.01 for a quick check).

    Returns:
        {mode: {case: microseconds}}.

    Example:
        >>> measure(repeat=1, scale=0.01)["on"]["a + b"]
    """
    best = {"off": {}, "on": {}}
    for name, (fn, number) in cases().items():
        n = max(1, int(number * scale))
        for _ in range(repeat):
            for mode in ("off", "on"):
                ctx = gf.autograd.detect_anomaly() if mode == "on" else contextlib.nullcontext()
                with ctx:
                    us = timeit.timeit(fn, number=n) / n * 1e6
                best[mode][name] = min(us, best[mode].get(name, us))
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5, help="timings per case and mode (default 5)")
    p.add_argument("--scale", type=float, default=1.0, help="times the calls per timing")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = p.parse_args()
    if args.repeat < 1 or not args.scale > 0:
        p.error(f"--repeat must be >= 1 and --scale > 0, got {args.repeat} and {args.scale}")
    best = measure(args.repeat, args.scale)
    if args.json:
        print(json.dumps(best))
        return
    print(f"{'per call':32s} {'anomaly off':>12s} {'anomaly on':>12s} {'on / off':>9s}")
    for name, off in best["off"].items():
        on = best["on"][name]
        print(f"{name:32s} {off:9.2f} us {on:9.2f} us {on / off:8.1f}x")


if __name__ == "__main__":
    main()
