"""Hand-written baselines: the same computations with no autograd, on raw NumPy or CuPy arrays.

These are the floor a NumPy/CuPy-backed library can reach: every gradient is written out by
hand, every buffer is used the way a careful person would use it. `HandMLP`, `HandCNN` and
`HandConv2d` take their array module from a gradflow device (`device.xp`), so one class is the
NumPy baseline on the CPU and the CuPy baseline on a GPU. Nothing here imports gradflow: a
baseline shares no code with what it measures.
"""
from __future__ import annotations

import math

__all__ = ["HandAdam", "HandMLP", "HandCNN", "HandConv2d", "im2col", "col2im",
           "softmax_cross_entropy", "hand_chain", "hand_reductions", "CHAIN_OPS"]

# The elementwise chain (see `gradflow.bench.workloads.chain`) has this many ops, the final sum
# included: per-op figures divide by it.
CHAIN_OPS = 9


def softmax_cross_entropy(xp, z, target):
    """The mean cross-entropy of logits z (n, classes) against integer labels, and its gradient
    (softmax(z) - onehot(target)) / n, in closed form. Returns (loss, dz)."""
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
    return loss, p


class HandAdam:
    """Adam over a list of arrays, written by hand, following PyTorch's default (single-tensor)
    implementation: per parameter,

        m = b1 m + (1 - b1) g            v = b2 v + (1 - b2) g^2
        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

    as separate in-place array operations, the way one writes it by hand in plain NumPy, into
    two scratch buffers allocated once.

    Args:
        params: the arrays to update in place.
        xp: the array module (numpy or cupy) they belong to.
        lr, betas, eps: Adam's hyperparameters (PyTorch's defaults except lr).
    """

    def __init__(self, params, xp, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        self.xp = xp
        self.params = list(params)
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.m = [xp.zeros_like(p) for p in self.params]
        self.v = [xp.zeros_like(p) for p in self.params]
        self.t = 0
        self._scratch = None

    def step(self, grads) -> None:
        """One update of every parameter with `grads` (arrays of the parameters' shapes)."""
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


class HandMLP:
    """A ReLU MLP with softmax cross-entropy and Adam, written by hand: forward, backward, update.

    The layers compute y = x @ W.T + b (PyTorch's and gradflow's layout), ReLU between them and
    none after the last; the loss is the mean cross-entropy of the logits. Adam follows PyTorch's
    default (single-tensor) implementation, written out by hand (see `HandAdam`).

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
        self.optimizer = HandAdam(self.params, xp, lr, betas, eps)

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
        loss, g = softmax_cross_entropy(xp, z, target)
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
        self.optimizer.step(grads)

    def step(self, x, target):
        """Forward, backward and one Adam update on the batch (x, target); returns the loss."""
        loss, grads = self.forward_backward(x, target)
        self.adam(grads)
        return loss


# --- convolutions by im2col -------------------------------------------------------------------
# The hand-written convolutions keep images channel-major, (C, N, H, W): the im2col matrix of a
# layer is then (C*kh*kw, N*OH*OW), one row per kernel tap, and a single GEMM with the batch
# folded into its columns, W (O, C*kh*kw) @ col, gives the output already in (O, N, OH, OW)
# order for the next layer. Stride 1 and no dilation: what the workloads use.
def im2col(x, kh: int, kw: int, out):
    """Copy the kh*kw kernel taps of x (C, N, H, W), already padded (any strides), into `out`,
    a contiguous (C*kh*kw, N*OH*OW) array with OH = H - kh + 1, OW = W - kw + 1: row
    (c, i, j) holds x[c, n, i + y, j + x] for every (n, y, x). One strided copy per tap.
    Returns out."""
    c, n, h, w = x.shape
    oh, ow = h - kh + 1, w - kw + 1
    col = out.reshape(c, kh, kw, n, oh, ow)
    for i in range(kh):
        for j in range(kw):
            col[:, i, j] = x[:, :, i:i + oh, j:j + ow]
    return out


def col2im(gcol, kh: int, kw: int, out):
    """The adjoint of `im2col`: add each tap's row of gcol (C*kh*kw, N*OH*OW) back where
    im2col took it from, into `out` (C, N, H, W), which the caller has zeroed. One strided add
    per tap. Returns out."""
    c, n, h, w = out.shape
    oh, ow = h - kh + 1, w - kw + 1
    col = gcol.reshape(c, kh, kw, n, oh, ow)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i:i + oh, j:j + ow] += col[:, i, j]
    return out


class _Buffers:
    """Scratch arrays by name, allocated on first use and reused by every later step (im2col
    matrices of tens or hundreds of megabytes would otherwise be faulted in again each time)."""

    def __init__(self, xp):
        self.xp = xp
        self._bufs = {}

    def __call__(self, name, shape, dtype, zero: bool = False):
        b = self._bufs.get(name)
        if b is None or b.shape != tuple(shape) or b.dtype != dtype:
            b = self._bufs[name] = self.xp.empty(shape, dtype)
        if zero:
            b.fill(0)
        return b


class HandConv2d:
    """conv2d forward and backward of NCHW images by im2col, written by hand (stride 1).

    One call computes y = conv2d(x, w, b, padding) and, given gy = d loss / d y, the gradients
    of x, w and b: the input is padded into (C, N, H, W) order, its kernel taps copied into one
    im2col matrix, and each of y, gw and the columns' gradient is ONE GEMM over the whole batch;
    gx comes back from the columns by col2im (strided adds). The im2col matrix, the padded input
    and the gradients' scratch are allocated once and reused.

    Args:
        xp: the array module (numpy or cupy) of the arrays.
        padding: zeros added on each side of both spatial dims.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal((2, 3, 8, 8), dtype=np.float32)
        >>> w = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
        >>> y, gx, gw, gb = HandConv2d(np, padding=1)(x, w, np.zeros(4, np.float32),
        ...                                           np.ones((2, 4, 8, 8), np.float32))
        >>> y.shape, gx.shape, gw.shape
        ((2, 4, 8, 8), (2, 3, 8, 8), (4, 3, 3, 3))
    """

    def __init__(self, xp, padding: int = 0):
        self.xp = xp
        self.padding = int(padding)
        self._buf = _Buffers(xp)

    def __call__(self, x, w, b, gy):
        """Return (y, gx, gw, gb), all fresh arrays, y and gx in NCHW order."""
        xp, p, buf = self.xp, self.padding, self._buf
        n, c, h, wd = x.shape
        o, cw, kh, kw = w.shape
        if cw != c:
            raise ValueError(f"HandConv2d: weight {w.shape} does not fit input {x.shape}")
        hp, wp = h + 2 * p, wd + 2 * p
        oh, ow = hp - kh + 1, wp - kw + 1
        if p:
            xpad = buf("xpad", (c, n, hp, wp), x.dtype)
            xpad[:, :, :p] = 0  # the borders; the inside is overwritten next
            xpad[:, :, p + h:] = 0
            xpad[:, :, p:p + h, :p] = 0
            xpad[:, :, p:p + h, p + wd:] = 0
            xpad[:, :, p:p + h, p:p + wd] = x.transpose(1, 0, 2, 3)
        else:
            xpad = x.transpose(1, 0, 2, 3)  # a view: the taps copy from it directly
        col = im2col(xpad, kh, kw, buf("col", (c * kh * kw, n * oh * ow), x.dtype))
        wm = w.reshape(o, -1)
        y = wm @ col                                     # (O, N*OH*OW): the forward GEMM
        y += b[:, None]
        y = xp.ascontiguousarray(y.reshape(o, n, oh, ow).transpose(1, 0, 2, 3))
        gyc = buf("gy", (o, n, oh, ow), gy.dtype)
        gyc[...] = gy.transpose(1, 0, 2, 3)              # gy in (O, N, OH, OW) order
        gyc = gyc.reshape(o, -1)
        gw = (gyc @ col.T).reshape(w.shape)              # the weight's GEMM
        gb = gyc.sum(axis=1)
        gcol = xp.matmul(wm.T, gyc, out=buf("gcol", col.shape, col.dtype))  # the columns'
        gxpad = col2im(gcol, kh, kw, buf("gxpad", (c, n, hp, wp), x.dtype, zero=True))
        gx = xp.ascontiguousarray(gxpad[:, :, p:p + h, p:p + wd].transpose(1, 0, 2, 3))
        return y, gx, gw, gb


class HandCNN:
    """PyTorch's MNIST example CNN with softmax cross-entropy and Adam, written by hand.

    conv(w1) -> ReLU -> conv(w2) -> ReLU -> 2x2 max-pool -> dropout(p1) -> flatten -> linear(w3)
    -> ReLU -> dropout(p2) -> linear(w4) -> mean cross-entropy; convolutions with stride 1 and
    no padding, every layer with a bias. With the example's shapes (w1 (32, 1, 3, 3), w2
    (64, 32, 3, 3), w3 (128, 9216), w4 (10, 128)) it takes 28x28 images. Each convolution is an
    im2col copy of its kernel taps and ONE GEMM over the whole batch (images are kept in
    (C, N, H, W) order between the layers, so no transposes between the GEMMs); conv2's input
    gradient goes back by col2im (strided adds), conv1's is not needed. The max-pool's gradient
    goes to each window's first maximum (row-major order, as PyTorch and gradflow), and the
    ReLU before it is applied at the pooled size. Dropout masks are 0 or 1/(1-p) (inverted
    dropout), drawn from `rng`. Adam as `HandAdam`. The im2col matrices and the gradient
    scratch are allocated once and reused.

    Args:
        params: the arrays [w1, b1, w2, b2, w3, b3, w4, b4], weights in PyTorch's layouts; they
            are updated in place (pass copies to keep the originals).
        xp: the array module (numpy or cupy) the arrays belong to.
        lr, betas, eps: Adam's hyperparameters.
        dropout: the two drop probabilities (p1 after the pool, p2 after fc1).
        rng: a generator of xp (with .random(shape, dtype)) for the masks; default
            xp.random.default_rng(0).

    Attributes:
        training: draw dropout masks (True, the default) or skip dropout (False).
    """

    def __init__(self, params, xp, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 dropout=(0.25, 0.5), rng=None):
        if len(params) != 8:
            raise ValueError(f"HandCNN: params must be [w1, b1, w2, b2, w3, b3, w4, b4], got "
                             f"{len(params)} arrays")
        self.xp = xp
        self.params = list(params)
        self.dropout = tuple(float(p) for p in dropout)
        self.rng = xp.random.default_rng(0) if rng is None else rng
        self.training = True
        self.optimizer = HandAdam(self.params, xp, lr, betas, eps)
        self._buf = _Buffers(xp)

    def _mask(self, shape, p, dtype):
        mask = (self.rng.random(shape, dtype=dtype) >= p).astype(dtype)
        mask *= 1.0 / (1.0 - p)
        return mask

    def forward_backward(self, x, target, masks=None):
        """Return (loss, grads) on the batch x (N, C, H, W), target (N,) of class indices.

        masks: None to draw dropout masks (when training; none otherwise), or the pair of
        multipliers (m1, m2) to use: m1 of the pooled maps' size, (N, C2, PH, PW) or
        (N, C2*PH*PW), m2 (N, fc1 width); either may be None for no dropout there.
        """
        xp, buf = self.xp, self._buf
        w1, b1, w2, b2, w3, b3, w4, b4 = self.params
        n, c0, h, wd = x.shape
        o1, _, k1h, k1w = w1.shape
        o2, _, k2h, k2w = w2.shape
        h1h, h1w = h - k1h + 1, wd - k1w + 1
        h2h, h2w = h1h - k2h + 1, h1w - k2w + 1
        ph, pw = h2h // 2, h2w // 2
        dt = x.dtype

        # conv1 + ReLU: (O1, N, H1, W1)
        col1 = im2col(x.transpose(1, 0, 2, 3), k1h, k1w,
                      buf("col1", (c0 * k1h * k1w, n * h1h * h1w), dt))
        w1m = w1.reshape(o1, -1)
        h1 = w1m @ col1
        h1 += b1[:, None]
        xp.maximum(h1, 0, out=h1)
        h1 = h1.reshape(o1, n, h1h, h1w)
        # conv2 + ReLU: (O2, N, H2, W2)
        col2 = im2col(h1, k2h, k2w, buf("col2", (o1 * k2h * k2w, n * h2h * h2w), dt))
        w2m = w2.reshape(o2, -1)
        h2 = w2m @ col2
        h2 += b2[:, None]
        xp.maximum(h2, 0, out=h2)
        h2 = h2.reshape(o2, n, h2h, h2w)
        # 2x2 max-pool: the maximum of the window's four taps
        taps = [h2[:, :, i:2 * ph:2, j:2 * pw:2] for i in (0, 1) for j in (0, 1)]
        pooled = xp.maximum(taps[0], taps[1])
        xp.maximum(pooled, taps[2], out=pooled)
        xp.maximum(pooled, taps[3], out=pooled)
        # flatten in PyTorch's (C, H, W) order per image, then dropout
        flat = pooled.transpose(1, 0, 2, 3).reshape(n, -1)
        if masks is None:
            p1, p2 = self.dropout
            m1 = self._mask(flat.shape, p1, dt) if self.training and p1 else None
            m2 = self._mask((n, w3.shape[0]), p2, dt) if self.training and p2 else None
        else:
            m1, m2 = masks
            m1 = None if m1 is None else m1.reshape(flat.shape)
        d1 = flat * m1 if m1 is not None else flat
        # fc1 + ReLU, dropout, fc2
        h3 = d1 @ w3.T
        h3 += b3
        xp.maximum(h3, 0, out=h3)
        d2 = h3 * m2 if m2 is not None else h3
        z = d2 @ w4.T
        z += b4
        loss, g = softmax_cross_entropy(xp, z, target)

        # backward through the fully connected layers
        gw4, gb4 = g.T @ d2, g.sum(axis=0)
        g = g @ w4
        if m2 is not None:
            g *= m2
        g *= h3 > 0
        gw3, gb3 = g.T @ d1, g.sum(axis=0)
        g = g @ w3
        if m1 is not None:
            g *= m1
        # to the pooled maps in (C, N, PH, PW) order, times conv2's ReLU gradient at each
        # window's maximum (the only element of the window that gets any gradient)
        gp = g.reshape(n, o2, ph, pw).transpose(1, 0, 2, 3) * (pooled > 0)
        # the max-pool: each window's gradient to its first maximum
        gh2 = buf("gh2", h2.shape, dt, zero=bool(h2h % 2 or h2w % 2))
        free = None
        for k, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            hit = taps[k] == pooled
            if free is not None:
                hit &= free
            xp.multiply(gp, hit, out=gh2[:, :, i:2 * ph:2, j:2 * pw:2])
            if k < 3:
                free = ~hit if free is None else xp.logical_and(free, ~hit, out=free)
        # conv2: weight and bias by one GEMM and a sum, the input by one GEMM and col2im
        gy2 = gh2.reshape(o2, -1)
        gw2, gb2 = (gy2 @ col2.T).reshape(w2.shape), gy2.sum(axis=1)
        gcol2 = xp.matmul(w2m.T, gy2, out=buf("gcol2", col2.shape, dt))
        gh1 = col2im(gcol2, k2h, k2w, buf("gh1", h1.shape, dt, zero=True))
        gh1 *= h1 > 0
        # conv1: weight and bias only (the images need no gradient)
        gy1 = gh1.reshape(o1, -1)
        gw1, gb1 = (gy1 @ col1.T).reshape(w1.shape), gy1.sum(axis=1)
        return loss, [gw1, gb1, gw2, gb2, gw3, gb3, gw4, gb4]

    def adam(self, grads) -> None:
        """One Adam update of every parameter, in place."""
        self.optimizer.step(grads)

    def step(self, x, target, masks=None):
        """Forward, backward and one Adam update on the batch (x, target); returns the loss."""
        loss, grads = self.forward_backward(x, target, masks)
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
