"""Lesson 3 (MiniFlow): define the graph first, then propagate values through it.

1. Define: Input nodes X, y, W1, b1, W2, b2 and the network
       l1 = Linear(X, W1, b1);  s1 = Sigmoid(l1);  l2 = Linear(s1, W2, b2);  cost = MSE(y, l2)
   Nothing is computed yet: the nodes only know their neighbours.
2. Order: `topological_sort` runs Kahn's algorithm, printed step by step: take a node whose
   inbound nodes are all done, then release the nodes that were waiting only for it.
3. Propagate: the forward pass visits the nodes in that order, the backward pass in reverse;
   then one SGD update, and the cost on the same batch drops.
4. gradflow does the same thing on its own tape: the same network written with plain tensors
   records its ops as they run, and `gf.graph.topological_order(loss)` returns them in the order
   the engine walks (reversed) for backward. Both give the same cost and gradients.
5. Train a regression on scikit-learn's diabetes data (442 patients, 10 features; it ships
   inside scikit-learn; generated data when scikit-learn is absent) with MiniFlow's loop:
   mini-batches of 11 drawn with replacement, sgd_update with learning rate 0.01. The cost on the
   whole data set falls by far more than half.

Run:
    python examples/miniflow_graph.py                    # writes runs/miniflow_graph/
    python examples/miniflow_graph.py --fast --out /tmp/lesson3
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

from gradflow.compat import miniflow as mf  # noqa: E402


# --- data -----------------------------------------------------------------------------------------
def load_data(source: str, seed: int = 0) -> tuple:
    """(X standardised, y, description). source: 'diabetes', 'synthetic' or 'auto'."""
    if source in ("auto", "diabetes"):
        try:
            from sklearn.datasets import load_diabetes
        except ImportError:
            if source == "diabetes":
                raise SystemExit("--data diabetes needs scikit-learn: pip install scikit-learn")
            print("  scikit-learn is not installed: using generated data instead")
        else:
            X, y = load_diabetes(return_X_y=True)
            X = (X - X.mean(axis=0)) / X.std(axis=0)
            return X, y, "scikit-learn's diabetes data (442 patients, 10 features)"
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((442, 10))
    w = rng.standard_normal(10)
    # A target of the diabetes data's size (mean ~150, spread ~75), partly non-linear.
    y = 150 + 40 * np.tanh(X @ w / 2) + 20 * X[:, 0] * X[:, 1] + rng.normal(scale=20, size=442)
    return X, y, "generated data (442 rows, 10 features; scikit-learn not used)"


# --- 1. define ------------------------------------------------------------------------------------
def define_network() -> dict:
    """MiniFlow's two-layer network: nodes connected, no values yet."""
    X, y = mf.Input(name="X"), mf.Input(name="y")
    W1, b1 = mf.Input(name="W1"), mf.Input(name="b1")
    W2, b2 = mf.Input(name="W2"), mf.Input(name="b2")
    l1 = mf.Linear(X, W1, b1, name="l1")
    s1 = mf.Sigmoid(l1, name="s1")
    l2 = mf.Linear(s1, W2, b2, name="l2")
    cost = mf.MSE(y, l2, name="cost")
    return {"X": X, "y": y, "W1": W1, "b1": b1, "W2": W2, "b2": b2, "l1": l1, "s1": s1,
            "l2": l2, "cost": cost}


def init_params(n_features: int, n_hidden: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"W1": rng.standard_normal((n_features, n_hidden)), "b1": np.zeros(n_hidden),
            "W2": rng.standard_normal((n_hidden, 1)), "b2": np.zeros(1)}


def host(array):
    """A node's array (NumPy, or CuPy on a GPU) as a NumPy array."""
    return gf.as_tensor(array).numpy()


def _names(nodes) -> str:
    return ", ".join(repr(n) for n in nodes) or "-"


# --- 4. the same network on gradflow's own tape --------------------------------------------------
def plain_gradflow(X_, y_, params: dict, device):
    """The network written with plain tensors; returns (loss, parameter tensors)."""
    t = {k: gf.tensor(v, dtype=gf.float64, device=device, requires_grad=True)
         for k, v in params.items()}
    X = gf.tensor(X_, dtype=gf.float64, device=device)
    y = gf.tensor(y_, dtype=gf.float64, device=device)
    for k, v in [*t.items(), ("X", X), ("y", y)]:
        v.name = k
    l1 = X @ t["W1"] + t["b1"]
    s1 = gf.sigmoid(l1)
    l2 = s1 @ t["W2"] + t["b2"]
    y_col = y.reshape(-1, 1)  # y needs no gradient: this reshape is not recorded, a new leaf
    y_col.name = "y"
    diff = y_col - l2.reshape(-1, 1)
    loss = (diff * diff).mean()
    # Named like the MiniFlow nodes they play, so printed steps and pictures can be compared.
    l1.name, s1.name, l2.name, loss.name = "l1", "s1", "l2", "cost"
    return loss, t


# --- files ----------------------------------------------------------------------------------------
def save_png(fig, path: Path) -> Path:
    """Save a matplotlib figure under a temporary name, then rename (never a half-written PNG)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def plot_losses(batch_losses, full_losses, steps_per_epoch, out_dir: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(np.arange(1, len(batch_losses) + 1), batch_losses, color="tab:blue", alpha=0.35,
            lw=1, label="mini-batch cost")
    epochs = np.arange(len(full_losses)) * steps_per_epoch
    ax.plot(epochs, full_losses, "o-", color="tab:red", label="cost on all data (after epoch)")
    ax.set(xlabel="SGD step", ylabel="MSE", yscale="log",
           title="MiniFlow on gradflow: the cost falls")
    ax.legend()
    path = save_png(fig, out_dir / "loss.png")
    plt.close(fig)
    return path


def main(argv=None) -> dict:
    """Run the lesson; returns its numbers (used by the tests)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fast", action="store_true", help="3 epochs instead of 10 (for tests)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs")
    parser.add_argument("--data", choices=("auto", "diabetes", "synthetic"), default="auto",
                        help="diabetes (scikit-learn), synthetic, or auto (diabetes if possible)")
    parser.add_argument("--lr", type=float, default=1e-2, help="SGD learning rate (0.01)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/miniflow_graph"),
                        help="folder for the plot and graph picture")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: gradflow's)")
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (3 if args.fast else 10)
    if epochs < 1:
        parser.error(f"--epochs must be at least 1, got {epochs}")
    try:
        device = gf.device(args.device)
    except (gf.DeviceError, ValueError) as exc:  # no CuPy or GPU, or not a device name
        parser.error(f"--device {args.device}: {exc}")
    mf.configure(device=device, dtype=gf.float64)
    args.out.mkdir(parents=True, exist_ok=True)
    files = []
    # Without Graphviz: DOT text instead of a PNG, and one notice for the run, not per graph.
    pictures = gf.viz.FallbackRenderer(say=lambda notice: print(f"  ({notice})"))

    X_, y_, about = load_data(args.data, args.seed)
    params = init_params(X_.shape[1], 10, args.seed)
    batch = 11

    print("1. Define the graph (no values yet)")
    net = define_network()
    inbound = {name: _names(net[name].inbound_nodes) for name in ("l1", "s1", "l2", "cost")}
    width = max(len(text) for text in inbound.values())
    for name, text in inbound.items():
        print(f"  {net[name]!r:<13} <- {text:<{width}}  value: {net[name].value}")

    print("\n2. Order it: Kahn's algorithm in topological_sort(feed_dict)")
    feed = {net["X"]: X_[:batch], net["y"]: y_[:batch], **{net[k]: params[k].copy()
                                                           for k in params}}

    def show(step):
        print(f"  step {step.index:2d}: take {step.node!r:<13} "
              f"released: {_names(step.released):<14} waiting: {_names(step.waiting)}")

    graph = mf.topological_sort(feed, on_step=show)
    print("  order: " + " -> ".join(repr(n) for n in graph))

    print("\n3. Propagate values: forward in that order, backward in reverse, one SGD step")
    for n in graph:
        n.forward()
        shape = tuple(np.shape(n.value))
        print(f"  forward  {n!r:<13} value shape {shape}"
              + (f" = {float(n.value):.2f}" if shape == () else ""))
    for n in graph[::-1]:
        n.backward()
        if isinstance(n, mf.Input):
            g = n.gradients[n]
            print(f"  backward {n!r:<13} |d cost / d {n.name}| = "
                  f"{float(np.linalg.norm(host(g))):.3f}")
        else:
            print(f"  backward {n!r:<13} sends gradients to {_names(n.inbound_nodes)}")
    cost_before = float(net["cost"].value)
    trainables = [net[k] for k in ("W1", "b1", "W2", "b2")]
    mf.sgd_update(trainables, learning_rate=args.lr)
    cost_after = float(mf.forward_pass(net["cost"], graph))
    print(f"  cost on this batch: {cost_before:.2f} before the SGD step, {cost_after:.2f} after")

    print("\n4. gradflow's own tape: the same network with plain tensors")
    loss, t = plain_gradflow(X_[:batch], y_[:batch], params, device)
    for step in gf.graph.kahn_steps(loss):
        print(f"  step {step.index}: take {gf.graph.label(step.node):<13} released: "
              f"{', '.join(gf.graph.label(f) for f in step.released) or '-'}")
    order = [fn.name for fn in gf.graph.topological_order(loss)]
    print("  gf.graph.topological_order(loss): " + " -> ".join(order))
    print("  (backward walks this list from the end: " + " -> ".join(order[::-1]) + ")")
    loss.backward(retain_graph=True)
    # Compare with MiniFlow's first pass, made from the same parameters before its SGD step.
    check = define_network()
    g2 = mf.topological_sort({check["X"]: X_[:batch], check["y"]: y_[:batch],
                              **{check[k]: params[k].copy() for k in params}})
    mf.forward_and_backward(g2)
    cost_diff = abs(float(check["cost"].value) - loss.item())
    grad_diff = max(float(np.abs(host(check[k].gradients[check[k]])
                                 - t[k].grad.numpy()).max()) for k in params)
    print(f"  MiniFlow nodes vs plain gradflow: |cost difference| = {cost_diff:.2e}, "
          f"max |gradient difference| = {grad_diff:.2e}")
    files.append(pictures.render(loss, args.out / "graph.png",
                                 title="the MiniFlow network on gradflow's tape"))

    print(f"\n5. Train on {about}: {epochs} epochs, batches of {batch}, learning rate {args.lr}")
    net = define_network()
    feed = {net["X"]: X_, net["y"]: y_, **{net[k]: params[k].copy() for k in params}}
    graph = mf.topological_sort(feed)
    trainables = [net[k] for k in ("W1", "b1", "W2", "b2")]

    def full_cost() -> float:
        net["X"].value, net["y"].value = X_, y_
        return float(mf.forward_pass(net["cost"], graph))

    rng = np.random.default_rng(args.seed)
    m = X_.shape[0]
    steps_per_epoch = m // batch
    full_losses = [full_cost()]
    batch_losses = []
    print(f"  before training: cost on all data {full_losses[0]:.1f}")
    for epoch in range(1, epochs + 1):
        total = 0.0
        for _ in range(steps_per_epoch):
            idx = rng.integers(0, m, size=batch)  # resample with replacement, as MiniFlow did
            net["X"].value, net["y"].value = X_[idx], y_[idx]
            mf.forward_and_backward(graph)
            mf.sgd_update(trainables, learning_rate=args.lr)
            batch_losses.append(float(graph[-1].value))
            total += batch_losses[-1]
        full_losses.append(full_cost())
        print(f"  Epoch: {epoch}, Loss: {total / steps_per_epoch:.3f}   "
              f"(cost on all data {full_losses[-1]:.1f})")
    ratio = full_losses[-1] / full_losses[0]
    verdict = "fell by at least half" if ratio <= 0.5 else "did NOT fall by half"
    baseline = float(np.var(y_))  # the cost of always predicting the mean target
    print(f"  cost on all data: {full_losses[0]:.1f} -> {full_losses[-1]:.1f} "
          f"({ratio:.3f} of the start): {verdict}; always predicting the mean would cost "
          f"{baseline:.1f}")
    files.append(plot_losses(batch_losses, full_losses, steps_per_epoch, args.out))
    print("\nwrote " + ", ".join(str(p) for p in files))
    return {"order": [repr(n) for n in graph], "gradflow_order": order,
            "cost_before_step": cost_before, "cost_after_step": cost_after,
            "compat_cost_diff": cost_diff, "compat_grad_diff": grad_diff,
            "full_losses": full_losses, "batch_losses": batch_losses, "ratio": ratio,
            "baseline": baseline,
            "data": about, "files": files}


if __name__ == "__main__":
    sys.exit(0 if main()["ratio"] <= 0.5 else 1)
