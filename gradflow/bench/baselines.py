"""Hand-written baselines: the same computations with no autograd, on raw NumPy or CuPy arrays.

These are the floor a NumPy/CuPy-backed library can reach: every gradient is written out by
hand, every buffer is used the way a careful person would use it. `HandMLP` takes its array
module from a gradflow device (`device.xp`), so one class is the NumPy baseline on the CPU and
the CuPy baseline on a GPU.
"""
from __future__ import annotations

import math

__all__ = ["HandMLP", "hand_chain", "hand_reductions", "CHAIN_OPS"]

# The elementwise chain (see `gradflow.bench.workloads.chain`) has this many ops, the final sum
# included: per-op figures divide by it.
CHAIN_OPS = 9


class HandMLP:
    """A ReLU MLP with softmax cross-entropy and Adam, written by hand: forward, backward, update.

    The layers compute y = x @ W.T + b (PyTorch's and gradflow's layout), ReLU between them and
    none after the last; the loss is the mean cross-entropy of the logits. Adam follows PyTorch's
    default (single-tensor) implementation: per parameter,

        m = b1 m + (1 - b1) g            v = b2 v + (1 - b2) g^2
        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    as separate in-place array operations, the way one writes it by hand in plain NumPy, into
    two scratch buffers allocated once.

    Args:
        params: the arrays [W1, b1, W2, b2, ...], W of shape (out, in); they are updated in
            place (pass copies to keep the originals).
        xp: the array module (numpy or cupy) the arrays belong to.
        lr, betas, eps: Adam's hyperparameters (PyTorch's defaults except lr).

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> params = [rng.standard_normal((4, 3), dtype=np.float32) * 0.1,
        ...           np.zeros(4, np.float32)]
        >>> mlp = HandMLP(params, np)
        >>> loss = mlp.step(rng.standard_normal((8, 3), dtype=np.float32),
        ...                 rng.integers(0, 4, 8))
    """

    def __init__(self, params, xp, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        if len(params) % 2 or not params:
            raise ValueError(f"HandMLP: params must be pairs [W1, b1, W2, b2, ...], got "
                             f"{len(params)} arrays")
        self.xp = xp
        self.params = list(params)
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.m = [xp.zeros_like(p) for p in self.params]
        self.v = [xp.zeros_like(p) for p in self.params]
        self.t = 0
        self._scratch = None

    def forward_backward(self, x, target):
        """Return (loss, grads): the mean cross-entropy and its gradient for every parameter."""
        xp = self.xp
        ws, bs = self.params[0::2], self.params[1::2]
        hs = [x]
        h = x
        for i, (w, b) in enumerate(zip(ws, bs)):
            h = h @ w.T
            h += b
            if i < len(ws) - 1:
                xp.maximum(h, 0, out=h)
            hs.append(h)
        z = hs.pop()
        n = z.shape[0]
        rows = xp.arange(n)
        m = z.max(axis=1, keepdims=True)
        p = z - m
        xp.exp(p, out=p)
        s = p.sum(axis=1, keepdims=True)
        loss = (xp.log(s[:, 0]) + m[:, 0] - z[rows, target]).mean()
        p /= s
        p[rows, target] -= 1.0  # d loss / d z = (softmax(z) - onehot) / n
        p *= 1.0 / n
        g = p
        grads = [None] * len(self.params)
        for i in range(len(ws) - 1, -1, -1):
            h = hs[i]
            grads[2 * i] = g.T @ h
            grads[2 * i + 1] = g.sum(axis=0)
            if i > 0:
                g = g @ ws[i]
                g *= h > 0  # ReLU's gradient, from its output
        return loss, grads

    def adam(self, grads) -> None:
        """One Adam update of every parameter, in place."""
        xp = self.xp
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = self.lr / (1.0 - b1 ** self.t)
        sqrt_bc2 = math.sqrt(1.0 - b2 ** self.t)
        if self._scratch is None:
            # Two buffers the size of the largest parameter, reused by every update: fresh
            # temporaries of megabytes each step would cost page faults, not arithmetic.
            n = max(p.size for p in self.params)
            self._scratch = (xp.empty(n, self.params[0].dtype), xp.empty(n, self.params[0].dtype))
        s0, s1 = self._scratch
        # Written out rather than calling gradflow's own NumPy passes (fused_numpy): a baseline
        # shares no code with what it measures, and this one also runs on CuPy.
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            a, d = s0[:p.size].reshape(p.shape), s1[:p.size].reshape(p.shape)
            m *= b1
            xp.multiply(g, 1.0 - b1, out=a)
            m += a
            v *= b2
            xp.multiply(g, g, out=a)
            a *= 1.0 - b2
            v += a
            xp.sqrt(v, out=d)          # the denominator
            d /= sqrt_bc2
            d += self.eps
            xp.multiply(m, step_size, out=a)
            a /= d
            p -= a

    def step(self, x, target):
        """Forward, backward and one Adam update on the batch (x, target); returns the loss."""
        loss, grads = self.forward_backward(x, target)
        self.adam(grads)
        return loss


def hand_chain(xp, x, w):
    """The elementwise chain of `gradflow.bench.workloads`, forward and backward, by hand.

    Forward: y = sigmoid(exp(tanh(x * w + x) * 0.5 - w) / 2), loss = sum(y); backward gives
    d loss / d x and d loss / d w. Returns (loss, gx, gw).
    """
    a = x * w
    b = a + x
    c = xp.tanh(b)
    d = c * 0.5
    e = d - w
    f = xp.exp(e)
    g = f / 2.0
    h = xp.tanh(g * 0.5) * 0.5 + 0.5  # sigmoid, as gradflow computes it
    loss = h.sum()
    gg = h * (1.0 - h)              # d loss / d g, upstream gradient 1
    ge = gg / 2.0 * f               # through / 2 and exp
    gw = -ge                        # e = d - w
    gb = ge * 0.5 * (1.0 - c * c)   # through * 0.5 and tanh
    gx = gb + gb * w                # b = a + x, a = x * w
    gw += gb * x
    return loss, gx, gw


def hand_reductions(xp, x):
    """The reductions workload of `gradflow.bench.workloads`, forward and backward, by hand.

    loss = sum(x.sum(0)) + sum(x.mean(1)) + sum(x.max(1)) + sum(logsumexp(x, 1)) + sum(x.var(0));
    returns (loss, gx). The max sends its gradient to the first arg-max of each row, as
    gradflow's does; the variance is the population one (ddof 0).
    """
    n0, n1 = x.shape
    rows = xp.arange(n0)
    arg = x.argmax(axis=1)
    mx = x[rows, arg]
    m = mx[:, None]
    e = xp.exp(x - m)
    s = e.sum(axis=1, keepdims=True)
    lse = xp.log(s[:, 0]) + mx
    mu = x.mean(axis=0, keepdims=True)
    dev = x - mu
    var = (dev * dev).mean(axis=0)
    loss = x.sum() + (x.sum(axis=1) / n1).sum() + mx.sum() + lse.sum() + var.sum()
    e /= s                           # d logsumexp / dx = softmax
    gx = e
    gx += 1.0 + 1.0 / n1             # d sum and d mean
    gx += dev * (2.0 / n0)           # d var
    gx[rows, arg] += 1.0             # d max
    return loss, gx
