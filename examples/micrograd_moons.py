"""Lesson 2 (micrograd): scalar values with gradients, then a small MLP that separates two moons.

Part 1. 0-d gradflow tensors play the part of micrograd's `Value`: the same operations
(+ - * / **, relu, tanh, exp, backward) on micrograd's README expression give the same numbers
(g = 24.7041, dg/da = 138.8338, dg/db = 645.5773), and so does `gradflow.compat.micrograd.Value`,
micrograd's own API running on gradflow's tape. tanh written with exp, * and ** matches gf.tanh.

Part 2. micrograd's demo, on whole arrays: a 2-16-16-1 MLP (ReLU, weights uniform in [-1, 1],
biases 0) on 100 points of the two-moons data set (generated here with NumPy, labels -1/+1),
max-margin (hinge) loss mean(relu(1 - y * score)) plus L2 regularisation 1e-4 * sum(p^2), plain
SGD with a learning rate decaying from 1.0 to 0.1. It reaches 100% training accuracy; the decision
boundary is plotted to PNG. With --scalar-steps N the same network, copied into micrograd-style
Values (gradflow.compat.micrograd), trains N steps beside it and gives the same losses.

Run:
    python examples/micrograd_moons.py                  # writes runs/micrograd_moons/
    python examples/micrograd_moons.py --fast --out /tmp/lesson2
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

try:
    import gradflow as gf
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import gradflow as gf

from gradflow.compat.micrograd import MLP as ScalarMLP, Value  # noqa: E402

ALPHA = 1e-4  # L2 regularisation strength, as in micrograd's demo


# --- part 1: scalars ------------------------------------------------------------------------------
def readme_expression(make):
    """micrograd's README expression; `make` turns a number into a scalar (0-d tensor or Value)."""
    a = make(-4.0)
    b = make(2.0)
    c = a + b
    d = a * b + b ** 3
    c += c + 1          # on a recorded tensor, += builds a new node (out of place), like micrograd
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e ** 2
    g = f / 2.0
    g += 10.0 / f
    return a, b, g, {"c": c, "d": d, "e": e, "f": f}


def scalar_lesson(device) -> dict:
    def tensor(x):
        t = gf.tensor(x, dtype=gf.float64, device=device, requires_grad=True)
        return t

    a, b, g, named = readme_expression(tensor)
    g.name = "g"
    a.name, b.name = "a", "b"
    for name, t in named.items():  # micrograd's picture shows data and grad of these too
        t.name = name
        t.retain_grad()
    g.backward(retain_graph=True)  # keep the graph for its picture
    va, vb, vg, _ = readme_expression(lambda x: Value(x, device=device))
    vg.backward()
    print("  micrograd's README expression (expected g = 24.7041, dg/da = 138.8338, "
          "dg/db = 645.5773)")
    print(f"    0-d gf tensors:               g = {g.item():.4f}   dg/da = {a.grad.item():.4f}   "
          f"dg/db = {b.grad.item():.4f}")
    print(f"    gradflow.compat.micrograd:    g = {vg.data:.4f}   dg/da = {va.grad:.4f}   "
          f"dg/db = {vb.grad:.4f}")
    # tanh from exp, - and **: the same value and derivative as the tanh op.
    n = gf.tensor(0.8814, dtype=gf.float64, device=device, requires_grad=True)
    e2 = (2 * n).exp()
    o_composed = (e2 - 1) * (e2 + 1) ** -1
    (dn_composed,) = gf.grad(o_composed, [n])
    (dn_op,) = gf.grad(n.tanh(), [n])
    print(f"    tanh(0.8814) from exp, -, *, **: {o_composed.item():.6f} (d = "
          f"{dn_composed.item():.6f}); gf.tanh: {math.tanh(0.8814):.6f} (d = {dn_op.item():.6f})")
    return {"g": g.item(), "a_grad": a.grad.item(), "b_grad": b.grad.item(),
            "compat": (vg.data, va.grad, vb.grad), "graph": g,
            "tanh": (o_composed.item(), dn_composed.item(), dn_op.item())}


# --- part 2: the moons ----------------------------------------------------------------------------
def make_moons(n_samples: int = 100, noise: float = 0.1, seed: int = 1337) -> tuple:
    """Two interleaving half circles (as sklearn.datasets.make_moons), labels -1 and +1."""
    rng = np.random.default_rng(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    t_out = np.linspace(0, math.pi, n_out)
    t_in = np.linspace(0, math.pi, n_in)
    X = np.concatenate([np.stack([np.cos(t_out), np.sin(t_out)], 1),
                        np.stack([1 - np.cos(t_in), 0.5 - np.sin(t_in)], 1)])
    X += rng.normal(scale=noise, size=X.shape)
    y = np.concatenate([-np.ones(n_out), np.ones(n_in)])
    perm = rng.permutation(n_samples)
    return X[perm], y[perm]


# make_moons labels its first half circle, the upper one, -1.
CLASS_NAMES = {-1: "class -1 (upper moon)", 1: "class +1 (lower moon)"}


class MLP:
    """Fully connected layers with ReLU between them, initialised as micrograd's (U(-1, 1), 0)."""

    def __init__(self, sizes: list, device) -> None:
        self.params = []
        for i, (nin, nout) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
            W = (gf.rand(nin, nout, dtype=gf.float64, device=device) * 2 - 1).requires_grad_()
            b = gf.zeros(nout, dtype=gf.float64, device=device, requires_grad=True)
            W.name, b.name = f"W{i}", f"b{i}"
            self.params += [W, b]

    def __call__(self, x):
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            W, b = self.params[2 * i], self.params[2 * i + 1]
            x = x @ W + b
            if i < n_layers - 1:
                x = x.relu()
        return x.reshape(-1)


def loss_fn(model, X, y) -> tuple:
    """micrograd's demo loss: hinge (max-margin) loss plus L2; returns (loss, accuracy, scores)."""
    scores = model(X)
    data_loss = (1 - y * scores).relu().mean()
    reg_loss = ALPHA * sum((p * p).sum() for p in model.params)
    total = data_loss + reg_loss
    total.name = "loss"
    accuracy = ((y.data > 0) == (scores.data > 0)).mean().item()
    return total, accuracy, scores


def scalar_copy(model) -> ScalarMLP:
    """The same network as micrograd-style Values, weights copied from `model`."""
    W_b = [p.numpy() for p in model.params]
    sizes = [W_b[0].shape[0]] + [w.shape[1] for w in W_b[0::2]]
    net = ScalarMLP(sizes[0], sizes[1:], device=model.params[0].device)
    for layer, W, b in zip(net.layers, W_b[0::2], W_b[1::2]):
        for j, neuron in enumerate(layer.neurons):
            for i, w in enumerate(neuron.w):
                w.data = float(W[i, j])
            neuron.b.data = float(b[j])
    return net


def scalar_loss(net, X, y) -> Value:
    """The demo's loss, written exactly as micrograd's demo writes it, on Values."""
    inputs = [list(map(Value, row)) for row in X]
    scores = list(map(net, inputs))
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = ALPHA * sum(p * p for p in net.parameters())
    return data_loss + reg_loss


def train(X_np, y_np, steps: int, scalar_steps: int, device) -> dict:
    gf.manual_seed(1337)
    model = MLP([2, 16, 16, 1], device)
    net = scalar_copy(model) if scalar_steps else None
    X = gf.tensor(X_np, dtype=gf.float64, device=device)
    y = gf.tensor(y_np, dtype=gf.float64, device=device)
    X.name, y.name = "X", "y"
    history = []
    scalar_losses = []
    for k in range(steps):
        total, acc, _ = loss_fn(model, X, y)
        if k == steps - 1:
            graph_of_loss = total
        total.backward(retain_graph=k == steps - 1)  # keep the last graph for its picture
        lr = 1.0 - 0.9 * k / steps
        with gf.no_grad():
            for p in model.params:
                p -= lr * p.grad
                p.grad = None
        history.append((k, total.item(), acc))
        line = f"    step {k:3d}  loss {total.item():.6f}  accuracy {acc * 100:5.1f}%"
        if k < scalar_steps:
            s_total = scalar_loss(net, X_np, y_np)
            net.zero_grad()
            s_total.backward()
            for p in net.parameters():
                p.data -= lr * p.grad
            scalar_losses.append(s_total.data)
            line += f"   | Values: loss {s_total.data:.6f}"
        if k % 10 == 0 or k == steps - 1 or k < scalar_steps:
            print(line)
    with gf.no_grad():
        _, final_acc, _ = loss_fn(model, X, y)
    return {"model": model, "history": history, "final_accuracy": final_acc,
            "scalar_losses": scalar_losses, "graph": graph_of_loss}


# --- files ----------------------------------------------------------------------------------------
def save_png(fig, path: Path) -> Path:
    """Save a matplotlib figure under a temporary name, then rename (never a half-written PNG)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def boundary_figure(model, X, y, history, step: float, device):
    """The lesson's figure: the decision boundary over the data, and the training curves.

    Args:
        model: the trained MLP.
        X, y: the two-moons points (n, 2) and their labels -1/+1, as NumPy arrays.
        history: (step, loss, accuracy) per SGD step.
        step: the spacing of the grid the boundary is evaluated on.
        device: where the model lives.

    Returns:
        A matplotlib Figure: axes[0] the boundary, axes[1] the loss (axes[2] its accuracy twin).
    """
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # not pyplot: no global figure state to close
    from matplotlib.lines import Line2D

    x_min, x_max = X[:, 0].min() - 1, X[:, 0].max() + 1
    y_min, y_max = X[:, 1].min() - 1, X[:, 1].max() + 1
    xx, yy = np.meshgrid(np.arange(x_min, x_max, step), np.arange(y_min, y_max, step))
    grid = gf.tensor(np.c_[xx.ravel(), yy.ravel()], dtype=gf.float64, device=device)
    with gf.no_grad():
        scores = model(grid).numpy().reshape(xx.shape)
    colors = {-1: colormaps["Spectral"](0.0), 1: colormaps["Spectral"](1.0)}
    fig = Figure(figsize=(11, 4.2))
    ax1, ax2 = fig.subplots(1, 2)
    # Each class's region in a light shade of the colour of its points.
    ax1.contourf(xx, yy, scores, levels=[-np.inf, 0, np.inf], colors=[colors[-1], colors[1]],
                 alpha=0.25)
    if scores.min() < 0 < scores.max():  # a grid on one side of 0 has no boundary to draw
        ax1.contour(xx, yy, scores, levels=[0], colors="k", linewidths=1.5)
    for label, color in colors.items():
        pts = X[y == label]
        ax1.scatter(pts[:, 0], pts[:, 1], s=30, color=color, edgecolors="k",
                    label=CLASS_NAMES[label])
    handles, _ = ax1.get_legend_handles_labels()
    boundary = Line2D([], [], color="k", lw=1.5, label="decision boundary (score 0)")
    ax1.legend(handles=handles + [boundary], loc="upper right", fontsize=8)
    ax1.set(xlim=(xx.min(), xx.max()), ylim=(yy.min(), yy.max()), xlabel="x1", ylabel="x2",
            title=f"decision boundary, training accuracy {history[-1][2] * 100:.0f}%")
    _plot_training(ax2, history)
    return fig


def _plot_training(ax, history) -> None:
    steps = [h[0] for h in history]
    ax.plot(steps, [h[1] for h in history], color="tab:blue", label="loss")
    ax.set(xlabel="SGD step", ylabel="hinge + L2 loss", yscale="log", title="training")
    twin = ax.twinx()
    twin.plot(steps, [h[2] * 100 for h in history], color="tab:green", label="accuracy")
    twin.set(ylabel="training accuracy (%)", ylim=(0, 101))
    # One legend for both curves: on the twin, which is drawn on top of the loss axes.
    twin.legend(handles=ax.get_lines() + twin.get_lines(), loc="center right", fontsize=8)


def plot_boundary(model, X, y, history, step: float, out_dir: Path, device) -> Path:
    """Write `boundary_figure` to out_dir/moons_boundary.png; returns the path."""
    return save_png(boundary_figure(model, X, y, history, step, device),
                    out_dir / "moons_boundary.png")


def main(argv=None) -> dict:
    """Run the lesson; returns its numbers (used by the tests)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true",
                        help="a coarse plot grid and no scalar run (for tests)")
    parser.add_argument("--steps", type=int, default=100, help="SGD steps (default 100)")
    parser.add_argument("--samples", type=int, default=100,
                        help="points in the two-moons data set (default 100)")
    parser.add_argument("--scalar-steps", type=int, default=None,
                        help="also train the Value (micrograd-style) copy for this many steps "
                             "(default 2, or 0 with --fast; about 2 s a step)")
    parser.add_argument("--out", type=Path, default=Path("runs/micrograd_moons"),
                        help="folder for the plots and graph pictures")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: gradflow's)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    if args.samples < 2:
        parser.error(f"--samples must be at least 2, got {args.samples}")
    scalar_steps = args.scalar_steps if args.scalar_steps is not None else (0 if args.fast else 2)
    scalar_steps = min(scalar_steps, args.steps)
    try:
        device = gf.device(args.device)
    except (gf.DeviceError, ValueError) as exc:  # no CuPy or GPU, or not a device name
        parser.error(f"--device {args.device}: {exc}")
    args.out.mkdir(parents=True, exist_ok=True)
    files = []
    # Without Graphviz: DOT text instead of PNGs, and one notice for the run, not per graph.
    pictures = gf.viz.FallbackRenderer(say=lambda notice: print(f"  ({notice})"))

    print("Part 1: 0-d tensors as micrograd's scalar values")
    scalars = scalar_lesson(device)
    files.append(pictures.render(scalars["graph"], args.out / "readme_expression.png",
                                 title="micrograd's README expression on 0-d gradflow tensors"))

    print(f"\nPart 2: a 2-16-16-1 MLP on {args.samples} points of the two moons, hinge loss + L2, "
          "SGD with decaying rate")
    X, y = make_moons(args.samples, noise=0.1)
    result = train(X, y, args.steps, scalar_steps, device)
    acc = result["final_accuracy"]
    print(f"  final training accuracy: {acc * 100:.1f}% ({round(acc * len(y))}/{len(y)} points)")
    if result["scalar_losses"]:
        tensor_losses = [h[1] for h in result["history"][:scalar_steps]]
        diff = max(abs(a - b) for a, b in zip(tensor_losses, result["scalar_losses"]))
        print(f"  micrograd-style Values vs whole arrays, first {scalar_steps} losses: "
              f"max |difference| = {diff:.2e}")
        result["scalar_max_diff"] = diff
    files.append(plot_boundary(result["model"], X, y, result["history"],
                               0.25 if args.fast else 0.02, args.out, device))
    files.append(pictures.render(result["graph"], args.out / "mlp_loss_graph.png",
                                 title="the MLP's loss: one box per recorded op", rankdir="TB"))
    print("\nwrote " + ", ".join(str(p) for p in files))
    result.update({"scalars": scalars, "files": files, "X": X, "y": y})
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["final_accuracy"] == 1.0 else 1)
