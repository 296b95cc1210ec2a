"""gradcheck and gradgradcheck: analytical gradients against central finite differences."""
from __future__ import annotations

from . import backend as B
from .autograd import enable_grad, grad, no_grad
from .tensor import Tensor

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(AssertionError):
    """Analytical and numerical gradients disagree; the message names the worst element."""


def _as_tuple(inputs):
    return (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)


def _scalarize(out, projections):
    # Dotting every output with a fixed random tensor tests all of the Jacobian at once and
    # catches transposition bugs that an all-ones upstream gradient hides.
    total = None
    for o, p in zip(out, projections):
        term = (o * p).sum()
        total = term if total is None else total + term
    return total


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              seed: int = 0, raise_exception: bool = True) -> bool:
    """Check fn's gradients against central finite differences, (f(x+eps) - f(x-eps)) / 2eps.

    Args:
        fn: takes the input Tensors, returns a Tensor (or a tuple of Tensors).
        inputs: a Tensor or tuple of Tensors; those with requires_grad=True are checked. Use
            float64: in float32 the differences drown in rounding.
        eps, atol, rtol: step and tolerances; an element fails when
            |analytical - numerical| > atol + rtol * |numerical|.
        seed: seeds the random projection of the outputs.
        raise_exception: raise GradcheckError on failure (else return False).

    Returns:
        True when every checked element agrees.

    Example:
        >>> x = gf.randn(3, 4, dtype=gf.float64, requires_grad=True)
        >>> gf.gradcheck(lambda t: (t * t).tanh(), x)
        True
    """
    inputs = _as_tuple(inputs)
    checked = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for i in checked:
        if inputs[i].dtype != B.float64:
            raise TypeError(f"gradcheck: input {i} has dtype {inputs[i].dtype}; use float64 "
                            "(finite differences in float32 are mostly rounding error)")
    out = fn(*inputs)
    outs = _as_tuple(out)
    np = B.host_numpy()
    rng = np.random.default_rng(seed)
    projections = []
    for o in outs:
        p = rng.standard_normal(o.shape)
        projections.append(Tensor._make(o.device.backend.asarray(p, dtype=o.dtype,
                                                                 index=o.device.index),
                                        o.device, False, None))
    scalar = _scalarize(outs, projections)
    targets = [inputs[i] for i in checked]
    if scalar.requires_grad:
        analytical = grad(scalar, targets, allow_unused=True)
    else:
        analytical = [None] * len(targets)

    def f_value():
        with no_grad():
            return float(_scalarize(_as_tuple(fn(*inputs)), projections).item())

    worst = (0.0, None)
    for i, x, ga in zip(checked, targets, analytical):
        g_an = np.zeros(x.shape) if ga is None else ga.numpy().astype(np.float64)
        if g_an.shape != x.shape:
            raise GradcheckError(f"gradcheck: gradient of input {i} has shape {g_an.shape}, "
                                 f"the input {x.shape}")
        g_num = np.zeros(x.shape)
        data = x.data
        # Element by element through x's own array (a reshape of a strided array would copy,
        # and the perturbation would never reach fn).
        for pos in np.ndindex(x.shape):
            orig = data[pos].item()
            data[pos] = orig + eps
            f_plus = f_value()
            data[pos] = orig - eps
            f_minus = f_value()
            data[pos] = orig
            g_num[pos] = (f_plus - f_minus) / (2 * eps)
        err = np.abs(g_an - g_num) - (atol + rtol * np.abs(g_num))
        err = np.where(np.isfinite(err), err, np.inf)  # a nan or inf on either side fails
        if err.size and err.max() > worst[0]:
            pos = np.unravel_index(int(np.argmax(err)), x.shape)
            worst = (float(err.max()), (i, pos, g_an[pos], g_num[pos]))
    if worst[1] is not None:
        i, pos, a, n = worst[1]
        msg = (f"gradcheck failed for input {i} (shape {inputs[i].shape}) at position "
               f"{tuple(int(p) for p in pos)}: analytical {a:.8g} vs numerical {n:.8g} "
               f"(|diff| {abs(a - n):.3g} > atol {atol} + rtol {rtol} * |numerical|)")
        if raise_exception:
            raise GradcheckError(msg)
        return False
    return True


def gradgradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  seed: int = 0, raise_exception: bool = True) -> bool:
    """Check second derivatives: gradcheck of v . d(p . fn)/dx for fixed random p, v.

    The first derivative is taken with create_graph=True, so this tests that every gradient rule
    is itself differentiable and right (Hessian-vector products, gradient penalties).

    Args:
        fn, inputs, eps, atol, rtol, seed, raise_exception: as for `gradcheck`.

    Returns:
        True when every checked element agrees.

    Raises:
        GradcheckError: a second derivative disagrees (the message names the worst element).

    Example:
        >>> x = gf.randn(3, dtype=gf.float64, requires_grad=True)
        >>> gf.gradgradcheck(lambda t: (t ** 3).sum(), x)
        True
    """
    inputs = _as_tuple(inputs)
    checked = [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]
    np = B.host_numpy()
    rng = np.random.default_rng(seed + 1)
    outs = _as_tuple(fn(*inputs))

    def _rand_like(t):
        return Tensor._make(t.device.backend.asarray(rng.standard_normal(t.shape), dtype=t.dtype,
                                                     index=t.device.index), t.device, False, None)

    ps = [_rand_like(o) for o in outs]
    vs = [_rand_like(x) for x in checked]

    @enable_grad()  # gradcheck evaluates it under no_grad; the inner derivative needs the tape
    def first_derivative(*xs):
        ys = _as_tuple(fn(*xs))
        s = _scalarize(ys, ps)
        targets = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
        if not targets:
            raise ValueError("gradgradcheck: no input has requires_grad=True")
        zero = (targets[0] * 0.0).sum()  # keeps the result a graph output even when it is 0
        if not s.requires_grad:
            return zero
        gs = grad(s, targets, create_graph=True, allow_unused=True)
        total = zero
        for g, v in zip(gs, vs):
            if g is not None:
                total = total + (g * v).sum()
        return total

    return gradcheck(first_derivative, inputs, eps, atol, rtol, seed, raise_exception)
