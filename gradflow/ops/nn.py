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
from ._util import same_dtype
from .elementwise import sigmoid
from .reduce import Softmax

__all__ = [
    "linear", "cross_entropy", "binary_cross_entropy_with_logits", "dropout", "reduce_loss",
    "Linear", "CrossEntropy", "BinaryCrossEntropyWithLogits", "Dropout",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str, op: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def reduce_loss(loss, reduction: str):
    """Per-element losses reduced as a loss's `reduction` says: 'mean', 'sum' or 'none'.
    Every loss in gradflow ends here, on a Tensor or (inside a fused op) on its array.

    Args:
        loss: the unreduced losses, a Tensor or an array.
        reduction: 'mean', 'sum' or 'none' (the losses as they are).

    Returns:
        A 0-d result for 'mean' and 'sum', else `loss` itself.

    Example:
        >>> reduce_loss(gf.tensor([1.0, 3.0]), "mean")            # tensor(2.)
    """
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


# --- linear -------------------------------------------------------------------------------------
class Linear(Function):
    """d (x W^T + b) = dy W for x, dy^T x for W, sum(dy) over the batch axes for b"""

    def forward(self, x, w, b):
        y = x @ w.T  # w.T is a view: BLAS reads it transposed, nothing is copied
        if b is not None:
            y += b  # y is fresh: adding in place saves a temporary the size of the output
        return y

    def backward(self, gy, y, x, w, b):
        need_x, need_w, need_b = self.needs_input_grad
        # (..., in) inputs: the batch axes folded into one, for the weight and bias gradients
        g2 = gy if gy.ndim == 2 else gy.reshape((-1, gy.shape[-1]))
        x2 = x if x.ndim == 2 else x.reshape((-1, x.shape[-1]))
        return (gy @ w if need_x else None,
                g2.T @ x2 if need_w else None,
                g2.sum(axis=0) if need_b else None)


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y = x @ weight.T + bias, as one fused op (PyTorch's F.linear).

    Args:
        x: input of shape (..., in_features).
        weight: (out_features, in_features).
        bias: (out_features,) or None.

    Returns:
        A Tensor of shape (..., out_features).

    Raises:
        TypeError: x or weight is not a Tensor.
        ValueError: the shapes do not fit (all are named).
        TypeError: x, weight and bias differ in dtype (a float32 layer fed float64 data).

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
    same_dtype("linear", ("input", "weight", "bias"), x, weight, bias)
    return Linear()(x, weight, bias)


# --- cross-entropy ------------------------------------------------------------------------------
def _row_weight(gy, reduction, n):
    # d loss / d loss_i, shaped to scale each row of an (n, C) gradient: the reduction's rule.
    if reduction == "mean":
        return gy * (1.0 / max(n, 1))
    if reduction == "sum":
        return gy
    return gy.reshape((n, 1))


class CrossEntropy(Function):
    """d cross_entropy(x, t) = (softmax(x) - q) w, with q the target distribution (one-hot,
    or smoothed) and w the row's weight (1/N for mean)

    Forward shifts each row by its max, so logits of magnitude 1e4 give exact, finite losses.
    A row whose label is out of range (unchecked on a GPU outside debug mode) gets a nan loss
    and nan gradients (`nan_rows`), never a plausible wrong number.
    """

    def forward(self, x):
        xp = B.xp_of(x)
        z = x - x.max(axis=1, keepdims=True)
        e = xp.exp(z)
        s = e.sum(axis=1, keepdims=True)
        e /= s
        self.p = e  # softmax(x), for the fused rule
        self.rows = xp.arange(len(x))  # (rows, target) indexes each row's label
        self.poison = nan_rows(xp, self.bad, x.dtype)
        log_s = xp.log(s[:, 0]) + self.poison
        loss = log_s - z[self.rows, self.target]
        if self.smoothing:  # -mean_c log softmax(x)_c = log s - mean_c z
            loss = (1.0 - self.smoothing) * loss + self.smoothing * (log_s - z.mean(axis=1))
        return reduce_loss(loss, self.reduction)

    def target_distribution(self):
        """q: 1 - eps + eps/C at each row's label, eps/C elsewhere; nan in a bad label's row."""
        q = B.xp_of(self.p).full(self.p.shape, self.smoothing / self.p.shape[1], self.p.dtype)
        q[self.rows, self.target] += 1.0 - self.smoothing
        q += self.poison[:, None]
        return q

    def backward(self, gy, y, x):
        p = Softmax(axes=(1,))(x)
        return (p - self.target_distribution()) * _row_weight(gy, self.reduction, len(p))

    def fused_backward(self, gy, y, x):
        """The same rule on raw arrays, for a plain backward: (p - q) w, written in place into a
        copy of the softmax that forward saved. It saves recomputing the softmax (an exp and
        four more passes over the N x C logits) and the q array; tested against `backward`."""
        g = self.p.copy()  # p stays intact: retain_graph may run this backward again
        g[self.rows, self.target] -= 1.0 - self.smoothing
        if self.smoothing:
            g -= self.smoothing / g.shape[1]
        g += self.poison[:, None]
        g *= _row_weight(gy, self.reduction, len(g))
        return g


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
        t, bad = B.move(t, dev, home), B.move(bad, dev, home)
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
        ValueError: input not (N, C), target of the wrong shape, a label outside [0, C) (the
            labels are named), or a bad reduction or label_smoothing.
        TypeError: input not floating-point, or target not of an integer dtype.

    Example:
        >>> logits = gf.randn(4, 10, requires_grad=True)
        >>> gf.nn.functional.cross_entropy(logits, gf.tensor([3, 1, 0, 9])).backward()
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
    return CrossEntropy(target=t, bad=bad, reduction=reduction, smoothing=smoothing)(input)


# --- binary cross-entropy -----------------------------------------------------------------------
class BinaryCrossEntropyWithLogits(Function):
    """d bce(x, y) = (sigmoid(x) - y) dx - x dy, elementwise

    Forward uses max(x, 0) - x y + log1p(exp(-|x|)), exact and finite for any x.
    """

    def forward(self, x, y):
        xp = B.xp_of(x)
        out = xp.maximum(x, 0)
        out -= x * y
        out += xp.log1p(xp.exp(-xp.abs(x)))
        return out

    def backward(self, gy, out, x, y):
        need_x, need_y = self.needs_input_grad
        return (gy * (sigmoid(x) - y) if need_x else None,
                -gy * x if need_y else None)


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

    Raises:
        ValueError: target's shape differs from input's, or a bad reduction.
        TypeError: input or target is not a Tensor, or they differ from one floating-point dtype.

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
    return reduce_loss(BinaryCrossEntropyWithLogits()(input, target), reduction)


# --- dropout ------------------------------------------------------------------------------------
class Dropout(Function):
    """d dropout(x) = mask dx, with mask = keep / (1 - p): the same scaled mask as forward"""
    saves_inputs = False

    def forward(self, x):
        return x * self.mask

    def backward(self, gy, y, x):
        return gy * self.mask


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero each element with probability p and scale the rest by 1 / (1 - p) (inverted dropout).
    The mask is drawn from the device's seeded generator (`gf.manual_seed`), so runs repeat.

    Args:
        x: a floating-point Tensor.
        p: drop probability in [0, 1).
        training: apply dropout (True) or pass x through (False).

    Returns:
        A Tensor of x's shape; x itself with training=False or p=0.

    Raises:
        ValueError: p is outside [0, 1).

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
    return Dropout(mask=mask)(x)
