"""Lesson 1: the derivative as sensitivity, and the chain rule node by node.

Part 1. For f(x) = 3x^2 - 4x + 5, the slope (f(x + h) - f(x)) / h with a small nudge h = 0.001
is compared with the exact derivative gradflow computes, f'(x) = 6x - 4, over x in [-5, 5]; the
two curves are plotted to PNG. The forward difference is off by 3h = 0.003 (the x^2 term's
curvature), far inside the 1e-2 the lesson promises.

Part 2. The chain rule on two small expressions (the ones micrograd's lecture builds by hand):

    e = a * b;  d = e + c;  L = d * f
    o = tanh(x1*w1 + x2*w2 + b)          (a neuron)

Every node's value and gradient dOutput/dNode is printed, and each gradient is checked against
a nudge of that node: recompute the output with the node moved by +-h (everything downstream
recomputed, everything upstream unchanged) and take the central difference. A picture of each
graph is saved.

Run:
    python examples/derivatives.py              # writes runs/derivatives/
    python examples/derivatives.py --fast --out /tmp/lesson1
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

try:
    import gradflow as gf
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import gradflow as gf

H_SLOPE = 0.001         # the lesson's nudge for the slope curve
H_CHECK = 1e-6          # central-difference nudge for checking node gradients (float64)
SLOPE_TOL = 1e-2
CHECK_ATOL, CHECK_RTOL = 1e-6, 1e-6


def f(x):
    """3x^2 - 4x + 5; works on NumPy arrays and gradflow tensors alike."""
    return 3 * x ** 2 - 4 * x + 5


def slopes(n_points: int, device) -> tuple:
    """x grid, finite-difference slopes and gradflow's exact derivatives of f."""
    xs = np.linspace(-5.0, 5.0, n_points)
    x = gf.tensor(xs, dtype=gf.float64, device=device, requires_grad=True)
    # Each f(x_i) depends on x_i alone, so d(sum_i f(x_i))/dx_i = f'(x_i): one backward gives
    # the derivative at every grid point.
    f(x).sum().backward()
    exact = x.grad.numpy()
    finite = (f(xs + H_SLOPE) - f(xs)) / H_SLOPE
    return xs, finite, exact


# --- part 2: expressions written once, evaluated with or without a nudge -----------------------
class Nodes:
    """Builds an expression's nodes by name, optionally nudging one of them by `h`.

    Calling `node(name)` makes a leaf from `values`; `node(name, tensor)` names an intermediate.
    When `name == nudge`, the node is replaced by node + h, so everything computed from it sees
    the nudged value: that is what d output / d node measures.
    """

    def __init__(self, values: dict, device, nudge: str | None = None, h: float = 0.0):
        self.values, self.device, self.nudge, self.h = values, device, nudge, h
        self.nodes: dict = {}

    def __call__(self, name: str, t=None):
        if t is None:
            t = gf.tensor(self.values[name], dtype=gf.float64, device=self.device,
                          requires_grad=gf.is_grad_enabled())
        elif t.requires_grad:
            t.retain_grad()  # keep intermediate gradients so they can be printed
        if name == self.nudge:
            t = t + self.h
        t.name = name
        self.nodes[name] = t
        return t


def chain_expression(node):
    """e = a*b; d = e + c; L = d*f."""
    a, b, c, f_ = node("a"), node("b"), node("c"), node("f")
    e = node("e", a * b)
    d = node("d", e + c)
    return node("L", d * f_)


def neuron_expression(node):
    """o = tanh(x1*w1 + x2*w2 + b)."""
    x1, x2, w1, w2, b = node("x1"), node("x2"), node("w1"), node("w2"), node("b")
    x1w1 = node("x1w1", x1 * w1)
    x2w2 = node("x2w2", x2 * w2)
    s = node("x1w1+x2w2", x1w1 + x2w2)
    n = node("n", s + b)
    return node("o", n.tanh())


EXPRESSIONS = {
    "chain_rule": (chain_expression, {"a": 2.0, "b": -3.0, "c": 10.0, "f": -2.0}),
    "neuron": (neuron_expression, {"x1": 2.0, "x2": 0.0, "w1": -3.0, "w2": 1.0,
                                   "b": 6.8813735870195432}),
}


def check_expression(build, values: dict, device) -> tuple:
    """Backward once, then nudge every node; returns (rows, output tensor with its graph)."""
    nodes = Nodes(values, device)
    out = build(nodes)
    out.backward(retain_graph=True)  # keep the graph: it is drawn afterwards
    rows = []
    for name, t in nodes.nodes.items():
        grad = 1.0 if t is out else t.grad.item()
        with gf.no_grad():
            up = build(Nodes(values, device, nudge=name, h=H_CHECK)).item()
            down = build(Nodes(values, device, nudge=name, h=-H_CHECK)).item()
        nudge = (up - down) / (2 * H_CHECK)
        ok = abs(grad - nudge) <= CHECK_ATOL + CHECK_RTOL * abs(nudge)
        rows.append({"node": name, "value": t.item(), "grad": grad, "nudge": nudge, "ok": ok})
    return rows, out


# --- files ----------------------------------------------------------------------------------------
def save_png(fig, path: Path) -> Path:
    """Save a matplotlib figure under a temporary name, then rename (never a half-written PNG)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def plot_slopes(xs, finite, exact, out_dir: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(xs, f(xs), color="tab:blue")
    for x0 in (-3.0, 0.0, 2.0):  # tangent lines: the slope is how steep f is right there
        s = 6 * x0 - 4
        seg = np.linspace(x0 - 1.2, x0 + 1.2, 2)
        ax1.plot(seg, f(x0) + s * (seg - x0), "--", color="tab:orange", lw=1)
        ax1.plot([x0], [f(x0)], "o", color="tab:orange", ms=4)
    ax1.set(title="f(x) = 3x² - 4x + 5, with tangents", xlabel="x", ylabel="f(x)")
    ax2.plot(xs, exact, color="tab:green", lw=3, alpha=0.6, label="gradflow: f'(x) = 6x - 4")
    step = max(1, len(xs) // 40)
    ax2.plot(xs[::step], finite[::step], "k.", ms=4, label=f"(f(x+h) - f(x)) / h, h = {H_SLOPE}")
    err = np.abs(finite - exact).max()
    ax2.set(title=f"slope: max |difference| = {err:.2g}", xlabel="x", ylabel="df/dx")
    ax2.legend(loc="upper left", fontsize=8)
    path = save_png(fig, out_dir / "slopes.png")
    plt.close(fig)
    return path


def main(argv=None) -> dict:
    """Run the lesson; returns its numbers (used by the tests)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true", help="a coarser grid (for tests)")
    parser.add_argument("--points", type=int, default=None, help="grid points in [-5, 5]")
    parser.add_argument("--out", type=Path, default=Path("runs/derivatives"),
                        help="folder for the plot and graph pictures")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: gradflow's)")
    args = parser.parse_args(argv)
    try:
        device = gf.device(args.device)
    except (gf.DeviceError, ValueError) as exc:  # no CuPy or GPU, or not a device name
        parser.error(f"--device {args.device}: {exc}")
    n_points = args.points or (101 if args.fast else 1001)
    if n_points < 2:
        parser.error(f"--points must be at least 2, got {n_points}")
    args.out.mkdir(parents=True, exist_ok=True)
    files = []

    print("Part 1: the derivative of f(x) = 3x^2 - 4x + 5 is how much f moves per unit nudge of x")
    xs, finite, exact = slopes(n_points, device)
    err = float(np.abs(finite - exact).max())
    for x0 in (-5.0, 0.0, 2.0, 5.0):
        i = int(np.argmin(np.abs(xs - x0)))
        print(f"  x = {xs[i]:+.2f}: (f(x+h) - f(x))/h = {finite[i]:+.4f}   "
              f"gradflow f'(x) = {exact[i]:+.4f}")
    verdict = "ok" if err <= SLOPE_TOL else "TOO LARGE"
    print(f"  max |finite difference - exact| over {n_points} points: {err:.3e} "
          f"(expected 3h = {3 * H_SLOPE:.3g}; limit {SLOPE_TOL}) {verdict}")
    files.append(plot_slopes(xs, finite, exact, args.out))

    print("\nPart 2: the chain rule, node by node (gradient = d output / d node)")
    checks = {}
    pictures = gf.viz.FallbackRenderer(say=lambda notice: print(f"  ({notice})"))
    for name, (build, values) in EXPRESSIONS.items():
        rows, out = check_expression(build, values, device)
        checks[name] = rows
        print(f"  {name}: {build.__doc__}")
        print(f"    {'node':<10} {'value':>11} {'gradient':>11} {'nudge slope':>12} {'|diff|':>9}")
        for r in rows:
            print(f"    {r['node']:<10} {r['value']:>11.6f} {r['grad']:>11.6f} {r['nudge']:>12.6f}"
                  f" {abs(r['grad'] - r['nudge']):>9.1e} {'ok' if r['ok'] else 'MISMATCH'}")
        files.append(pictures.render(out, args.out / f"{name}.png", title=build.__doc__))
    n_ok = sum(r["ok"] for rows in checks.values() for r in rows)
    n_all = sum(len(rows) for rows in checks.values())
    print(f"  {n_ok}/{n_all} gradients match their nudges (|diff| <= {CHECK_ATOL:g} + "
          f"{CHECK_RTOL:g}|slope|)")
    print("\nwrote " + ", ".join(str(p) for p in files))
    return {"max_slope_error": err, "slopes": (xs, finite, exact), "checks": checks,
            "files": files}


if __name__ == "__main__":
    result = main()
    all_ok = result["max_slope_error"] <= SLOPE_TOL and all(
        r["ok"] for rows in result["checks"].values() for r in rows)
    sys.exit(0 if all_ok else 1)
