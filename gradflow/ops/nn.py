"""Fused neural-network ops: linear, dropout and the losses whose stability or speed need a rule.

Composites (mse_loss, nll_loss, layer_norm) live in `gradflow.nn.functional`, built from the
primitive ops; the ops here are fused because a composite would be slower (linear: one matmul
and an in-place bias add instead of three recorded ops) or would lose precision (cross-entropy
from logits of magnitude 1e4, BCE from logits far from 0).
"""
from __future__ import annotations

from .. import backend as B
from ..autograd import Function
from ..tensor import Tensor
from ._util import const
from .elementwise import sigmoid
from .linalg import matmul
from .reduce import softmax
from .shape import reshape, transpose

__all__ = [
    "linear", "cross_entropy", "binary_cross_entropy_with_logits", "dropout",
    "Linear", "CrossEntropy", "CrossEntropyGrad", "BinaryCrossEntropyWithLogits", "Dropout",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str, op: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


# --- linear -------------------------------------------------------------------------------------
class Linear(Function):
    """d (x W^T + b) = dy W for x, dy^T x for W, sum(dy) over the batch axes for b"""

    def forward(self, x, w, b):
        y = x @ w.T  # w.T is a view: BLAS reads it transposed, nothing is copied
        if b is not None:
            y += b  # y is fresh: adding in place saves a temporary the size of the output
        return y

    def backward(self, gy):
        x, w, b = self.inputs
        gx = matmul(gy, w) if x.requires_grad else None
        gw = gb = None
        if x.ndim == 2:
            if w.requires_grad:
                gw = matmul(transpose(gy), x)
            if b is not None and b.requires_grad:
                gb = gy.sum(axis=0)
        else:  # (..., in): fold the batch axes into one
            g2 = reshape(gy, (-1, gy.shape[-1]))
            if w.requires_grad:
                gw = matmul(transpose(g2), reshape(x, (-1, x.shape[-1])))
            if b is not None and b.requires_grad:
                gb = g2.sum(axis=0)
        return gx, gw, gb

    def backward_arrays(self, gy):
        # The same rule on raw arrays: a plain backward records nothing, so three BLAS calls
        # and a sum are all it costs.
        x, w, b = self.inputs
        xd = x.data
        gx = gy @ w.data if x.requires_grad else None
        gw = gb = None
        g2 = gy if gy.ndim == 2 else gy.reshape(-1, gy.shape[-1])
        if w.requires_grad:
            gw = g2.T @ (xd if xd.ndim == 2 else xd.reshape(-1, xd.shape[-1]))
        if b is not None and b.requires_grad:
            gb = g2.sum(axis=0)
        return gx, gw, gb


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x @ weight.T + bias, as one fused op (PyTorch's F.linear).

    Args:
        x: input of shape (..., in_features).
        weight: (out_features, in_features).
        bias: (out_features,) or None.

    Returns:
        A Tensor of shape (..., out_features).

    Example:
        >>> y = gf.nn.functional.linear(gf.randn(8, 3), gf.randn(5, 3), gf.zeros(5))  # (8, 5)
    """
    if not isinstance(x, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"linear: x and weight must be Tensors, got {type(x).__name__} and "
                        f"{type(weight).__name__}")
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not fit a weight of shape "
                         f"{weight.shape} (expected input (..., {weight.shape[-1]}) and "
                         "weight (out_features, in_features))")
    if bias is not None and (not isinstance(bias, Tensor) or bias.shape != weight.shape[:1]):
        raise ValueError(f"linear: bias of shape {getattr(bias, 'shape', bias)} does not fit a "
                         f"weight of shape {weight.shape} (expected ({weight.shape[0]},))")
    return Linear()(x, weight, bias)


# --- cross-entropy ------------------------------------------------------------------------------
def _row_weight(gy, reduction, n):
    # The factor each row's gradient carries: d loss / d loss_i.
    if reduction == "mean":
        return gy * (1.0 / max(n, 1))
    if reduction == "sum":
        return gy
    return reshape(gy, (n, 1))


class CrossEntropy(Function):
    """d cross_entropy(x, t) = (softmax(x) - q) w, with q the (smoothed) one-hot target and w
    the row's weight (1/N for mean)

    Forward shifts each row by its max, so logits of magnitude 1e4 give exact, finite losses.
    The softmax computed on the way is saved; backward turns it into the gradient in one pass.
    """

    def __init__(self, target, bad, reduction: str, smoothing: float) -> None:
        self.target, self.bad = target, bad
        self.reduction, self.smoothing = reduction, smoothing

    def forward(self, x):
        xp = B.device_of(x).xp
        z = x - x.max(axis=1, keepdims=True)
        e = xp.exp(z)
        s = e.sum(axis=1, keepdims=True)
        e /= s
        poison = nan_rows(xp, self.bad, e.dtype)  # a bad label's row: nan loss and gradient
        e += poison[:, None]
        self.p = e  # softmax(x): the whole first-order gradient, minus the target
        log_s = xp.log(s[:, 0]) + poison
        picked = xp.take_along_axis(z, self.target[:, None], axis=1)[:, 0]
        loss = log_s - picked  # -log softmax(x)[t]
        if self.smoothing:
            # -mean_c log softmax(x)_c = log s - mean_c z
            eps = self.smoothing
            loss = (1.0 - eps) * loss + eps * (log_s - z.mean(axis=1))
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss

    def backward(self, gy):
        (x,) = self.inputs
        return (CrossEntropyGrad(self.p, self.target, self.reduction, self.smoothing)(x, gy),)

    def backward_arrays(self, gy):
        return (_ce_grad(B.device_of(gy).xp, self.p.copy(), self.target, self.reduction,
                         self.smoothing, gy),)


def _ce_grad(xp, g, target, reduction, smoothing, gy):
    """(softmax - q) * row weight, computed in place in `g` (a fresh copy of the softmax)."""
    n, c = g.shape
    g[xp.arange(n), target] -= 1.0 - smoothing
    if smoothing:
        g -= smoothing / c
    if reduction == "mean":
        g *= gy * (1.0 / max(n, 1))
    elif reduction == "sum":
        g *= gy
    else:
        g *= gy[:, None]
    return g


def _soft_target(xp, target, n, c, smoothing, dtype):
    q = xp.full((n, c), smoothing / c, dtype=dtype)
    q[xp.arange(n), target] = 1.0 - smoothing + smoothing / c
    return q


class CrossEntropyGrad(Function):
    """The gradient of cross_entropy, gx = (softmax(x) - q) w(gy), as an op of (x, gy).

    d gx = w softmax'(x)^T dx for x (softmax's Jacobian is symmetric: s * (u - sum(u s))), and
    sum_c (softmax(x) - q) for gy: written in gradflow ops, so third derivatives work too.
    `p` is softmax(x) when the caller already has it (CrossEntropy saved it), else None.
    """

    def __init__(self, p, target, reduction: str, smoothing: float) -> None:
        self.p, self.target, self.reduction, self.smoothing = p, target, reduction, smoothing

    def forward(self, x, gy):
        xp = B.device_of(x).xp
        if self.p is None:
            z = xp.exp(x - x.max(axis=1, keepdims=True))
            g = z / z.sum(axis=1, keepdims=True)
        else:
            g = self.p.copy()  # p stays intact: retain_graph may run this backward again
        return _ce_grad(xp, g, self.target, self.reduction, self.smoothing, gy)

    def backward(self, ggx):
        x, gy = self.inputs
        n, c = x.shape
        s = softmax(x, axis=1)
        gx = ggy = None
        if x.requires_grad:
            u = ggx * _row_weight(gy, self.reduction, n)
            gx = s * (u - (u * s).sum(axis=1, keepdims=True))
        if isinstance(gy, Tensor) and gy.requires_grad:
            q = const(_soft_target(x.device.xp, self.target, n, c, self.smoothing, x.dtype),
                      x.device)
            r = ((s - q) * ggx).sum(axis=1)
            if self.reduction == "mean":
                ggy = r.sum() * (1.0 / max(n, 1))
            elif self.reduction == "sum":
                ggy = r.sum()
            else:
                ggy = r
        return gx, ggy


def _labels(logits: Tensor, target, op: str):
    """Validate integer class labels for (N, C) logits.

    A label outside [0, C) raises a ValueError naming it wherever reading the labels is free:
    labels given as a list or a NumPy array are checked on the host before they move, and labels
    on the CPU are checked where they are. Labels already on a GPU are checked there without a
    sync (see `gradflow.backend.debug`): debug mode raises; otherwise their rows' losses and
    gradients are nan, never a silently wrong number.

    Returns:
        (t, bad): the labels as an int64 array on the logits' device, with the out-of-range ones
        replaced by 0 (so gathers stay in bounds), and the bool mask of those rows.
    """
    if logits.ndim != 2:
        raise ValueError(f"{op}: input must have shape (N, C) (a batch of class scores), got "
                         f"shape {logits.shape}")
    n, c = logits.shape
    dev = logits.device
    if not isinstance(target, Tensor):  # checked where it is (the host, for lists), then moved
        target = Tensor(target, device=B.device_of(target) if B.is_array(target) else "cpu")
    elif target.device is not dev:
        raise B.DeviceError(f"{op}: input is on {dev} but target is on {target.device}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class labels (int64), got dtype "
                        f"{target.dtype}")
    if target.shape != (n,):
        raise ValueError(f"{op}: target of shape {target.shape} does not fit input of shape "
                         f"{logits.shape}: expected one label per row, shape ({n},)")
    home = target.device
    with home.backend.use(home.index):
        t = target.data
        bad = (t < 0) | (t >= c)
        home.backend.check(bad.any(), lambda: _bad_labels(op, t, bad, home, logits.shape))
    if home is not dev:  # host labels, checked there, go where the logits are
        t = target.to(dev).data
        bad = dev.backend.asarray(home.backend.to_host(bad), index=dev.index)
    with dev.backend.use(dev.index):
        return dev.xp.where(bad, 0, t).astype(dev.xp.int64, copy=False), bad


def _bad_labels(op, t, bad, dev, shape):
    values = sorted(set(dev.backend.to_host(t[bad]).tolist()))
    shown = ", ".join(str(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")
    return ValueError(f"{op}: target holds label(s) {shown} outside [0, {shape[1] - 1}] for "
                      f"input with {shape[1]} classes (shape {shape})")


def nan_rows(xp, bad, dtype):
    """nan where `bad` (rows whose label is out of range), else 0: added to a row's values, it
    makes them nan, so an unchecked bad label shows as a nan loss instead of a wrong number."""
    return xp.where(bad, xp.nan, 0.0).astype(dtype, copy=False)


def cross_entropy(input: Tensor, target, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy between logits and integer class labels: -log softmax(input)[target].

    Stable for logits of any magnitude (each row is shifted by its max), fused into one op with
    one-pass gradient softmax(input) - one_hot(target). Matches torch.nn.functional.cross_entropy.

    Args:
        input: logits of shape (N, C), floating point.
        target: int labels of shape (N,) with values in [0, C) (a Tensor, array or list).
        reduction: 'mean' (default), 'sum' or 'none' (one loss per row).
        label_smoothing: eps in [0, 1]: the target becomes (1 - eps) one_hot + eps / C.

    Returns:
        A 0-d Tensor, or shape (N,) for reduction='none'.

    Raises:
        ValueError: target of the wrong shape, or a label outside [0, C) (the labels are named).
        TypeError: target not of an integer dtype.

    Example:
        >>> logits = gf.randn(4, 10, requires_grad=True)
        >>> loss = gf.nn.functional.cross_entropy(logits, gf.tensor([3, 1, 0, 9]))
        >>> loss.backward()
    """
    if not isinstance(input, Tensor):
        raise TypeError(f"cross_entropy: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f":
        raise TypeError(f"cross_entropy: input must hold floating-point logits, got dtype "
                        f"{input.dtype}")
    _check_reduction(reduction, "cross_entropy")
    smoothing = float(label_smoothing)
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got "
                         f"{label_smoothing!r}")
    t, bad = _labels(input, target, "cross_entropy")
    return CrossEntropy(t, bad, reduction, smoothing)(input)


# --- binary cross-entropy -----------------------------------------------------------------------
class BinaryCrossEntropyWithLogits(Function):
    """d bce(x, y) = (sigmoid(x) - y) dx - x dy, elementwise

    Forward uses max(x, 0) - x y + log1p(exp(-|x|)), exact and finite for any x.
    """

    def forward(self, x, y):
        xp = B.device_of(x).xp
        out = xp.maximum(x, 0)
        out -= x * y
        out += xp.log1p(xp.exp(-xp.abs(x)))
        return out

    def backward(self, gy):
        x, y = self.inputs
        gx = gy * (sigmoid(x) - y) if x.requires_grad else None
        g_target = -gy * x if isinstance(y, Tensor) and y.requires_grad else None
        return gx, g_target

    def backward_arrays(self, gy):
        x, y = self.inputs
        xd = x.data
        gx = g_target = None
        if x.requires_grad:
            gx = B.device_of(xd).xp.tanh(xd * 0.5)  # sigmoid(x) = tanh(x/2)/2 + 1/2, no overflow
            gx *= 0.5
            gx += 0.5
            gx -= y.data
            gx *= gy
        if isinstance(y, Tensor) and y.requires_grad:
            g_target = -gy * xd
        return gx, g_target


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,
                                     reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of targets in [0, 1] against logits: sigmoid and BCE fused stably.

    loss = -(y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))), computed as
    max(x, 0) - x y + log(1 + exp(-|x|)), so logits of magnitude 1e4 give finite results.

    Args:
        input: logits, any shape, floating point.
        target: same shape and dtype as input, values in [0, 1] (probabilities or 0/1 labels).
        reduction: 'mean' (default), 'sum' or 'none'.

    Returns:
        A 0-d Tensor, or input's shape for reduction='none'.

    Example:
        >>> x = gf.randn(8, requires_grad=True)
        >>> loss = gf.nn.functional.binary_cross_entropy_with_logits(x, (gf.rand(8) > 0.5).float())
    """
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    if not isinstance(input, Tensor) or not isinstance(target, Tensor):
        raise TypeError("binary_cross_entropy_with_logits: input and target must be Tensors, got "
                        f"{type(input).__name__} and {type(target).__name__}")
    if input.shape != target.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: target of shape {target.shape} "
                         f"differs from input of shape {input.shape}")
    if input.dtype.kind != "f" or target.dtype != input.dtype:
        raise TypeError(f"binary_cross_entropy_with_logits: input and target need the same "
                        f"floating-point dtype, got {input.dtype} and {target.dtype}")
    loss = BinaryCrossEntropyWithLogits()(input, target)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


# --- dropout ------------------------------------------------------------------------------------
class Dropout(Function):
    """d dropout(x) = mask dx, with mask = keep / (1 - p): the same scaled mask as forward"""
    saves_inputs = False

    def __init__(self, mask) -> None:
        self.mask = mask

    def forward(self, x):
        return x * self.mask

    def backward(self, gy):
        return (gy * const(self.mask, gy.device),)

    def backward_arrays(self, gy):
        return (gy * self.mask,)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (inverted dropout).

    The mask is drawn from the device's seeded generator (`gf.manual_seed`), so runs repeat.
    With training=False or p=0 it returns x itself.

    Args:
        x: a floating-point Tensor.
        p: drop probability in [0, 1).
        training: apply dropout (True) or pass x through (False).

    Example:
        >>> y = gf.nn.functional.dropout(gf.ones(4, 4), p=0.5)  # entries are 0 or 2
    """
    p = float(p)
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout: p must be in [0, 1), got {p!r}")
    if not training or p == 0.0:
        return x
    dev = x.device
    draw_dtype = x.dtype if x.dtype in (B.float32, B.float64) else B.float32
    with dev.backend.use(dev.index):  # the mask lives on x's own GPU
        keep = dev.backend.rng(dev.index).random(x.shape, dtype=draw_dtype) >= p
        mask = keep.astype(x.dtype)
        mask *= 1.0 / (1.0 - p)
    return Dropout(mask)(x)
