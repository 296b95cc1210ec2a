"""Fused optimizer updates on the CPU: each parameter updated in place, no temporaries.

These are accelerations: the equations, and the reference each update is tested against, are
the optimizers' own `_update` methods in plain `xp` code (gradflow.optim.{SGD, Adam, AdamW,
RMSprop}; `fused=False` runs those instead). Results agree with the reference to float rounding.

Each update reads the gradient and writes the parameter and its state in place, through one
scratch buffer per dtype that is reused across parameters and steps: a step allocates nothing,
so it neither page-faults nor churns the allocator, and every pass is a single NumPy ufunc call
with `out=`. Two implementations of Adam/AdamW (SGD and RMSprop always use the first):

- "numpy": about a dozen in-place ufunc passes per parameter; a large parameter (over 256K
  elements) is cut into blocks that stay in cache through all the passes, shared between up
  to 4 threads (see `_blocked`), bit for bit the same result.
- "numba" (the default when Numba is installed): one compiled pass per parameter
  (`fused_numba`), blocked and threaded the same way, bit for bit the same result as "numpy"
  and 3 to 5x faster on large parameters (1.3 ms against 3.8 ms for the MNIST MLP's
  update alone on the slower of the development VMs).

GRADFLOW_FUSED_CPU (numpy or numba) or `fused_cpu_impl()` choose; AMSGrad and arrays that are
not C-contiguous always take the NumPy path.

Numba is imported at the first update that uses it. Where it was only the default (installed,
not asked for) and that import fails for any reason (typically a Numba built for another NumPy
version), the updates fall back to the NumPy passes with one RuntimeWarning naming the error;
GRADFLOW_FUSED_CPU=numpy avoids the import and the warning. Where "numba" was asked for by name,
the failure is an ImportError instead: a silent switch would hide a 3 to 5x slowdown.
"""
from __future__ import annotations

import importlib.util
import math
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["adam_update", "sgd_update", "rmsprop_update", "fused_cpu_impl", "conv_kernels"]

_IMPLS = ("numpy", "numba")
_IMPL = "numpy"
_nb = None  # fused_numba, imported at the first update that uses it (Numba is slow to import)
# Who chose "numba": None when it is only the default (an import failure then falls back to
# "numpy" with a warning), else "GRADFLOW_FUSED_CPU=numba" or "fused_cpu_impl('numba')" (an
# import failure is then an error: the user asked for it).
_numba_asked_by: str | None = None
_FAST_EXTRA = "pip install 'gradflow-autograd[fast]'"


def fused_cpu_impl(name: str | None = None) -> str:
    """Return (and with `name`, set) the CPU implementation: 'numpy' or 'numba'.

    The environment variable GRADFLOW_FUSED_CPU sets the initial choice; without it, 'numba'
    where Numba is installed (the `fast` extra), else 'numpy'. A default 'numba' whose import
    fails at the first update falls back to 'numpy' with a warning (this then returns
    'numpy'); 'numba' set here is imported at once and never falls back.

    Raises:
        ValueError: an unknown name.
        ImportError: 'numba' chosen without Numba installed, or installed but failing to
            import (the message names the error).
    """
    return _choose(name, "fused_cpu_impl")


def _choose(name: str | None, source: str | None) -> str:
    # source: "fused_cpu_impl" (a call: imports at once), "GRADFLOW_FUSED_CPU" (at import
    # time: Numba is imported later, at the first update) or None (the default choice).
    global _IMPL, _numba_asked_by
    if name is not None:
        name = str(name).strip().lower()
        if name not in _IMPLS:
            raise ValueError(f"fused CPU implementation must be 'numpy' or 'numba', got "
                             f"{name!r} (from fused_cpu_impl or GRADFLOW_FUSED_CPU)")
        if name == "numba" and not _numba_installed():
            raise ImportError("the 'numba' fused CPU implementation needs Numba, which is not "
                              f"installed: {_FAST_EXTRA} (or pip install numba), or unset "
                              "GRADFLOW_FUSED_CPU")
        previous = (_IMPL, _numba_asked_by)
        _IMPL = name
        _numba_asked_by = None
        if name == "numba" and source is not None:
            _numba_asked_by = ("fused_cpu_impl('numba')" if source == "fused_cpu_impl"
                               else "GRADFLOW_FUSED_CPU=numba")
            if source == "fused_cpu_impl":
                try:
                    _numba()
                except ImportError:
                    _IMPL, _numba_asked_by = previous  # a failed choice changes nothing
                    raise
    return _IMPL


def _numba_installed() -> bool:
    """Whether a `numba` package is on the path (found, not imported: that is slow)."""
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # a half-imported `numba` left in sys.modules
        return False


def _numba():
    """The compiled kernels (fused_numba), imported on first use; None when Numba fails to
    import and was only the default: the caller then runs the NumPy passes."""
    global _nb, _IMPL
    if _nb is None:
        try:
            from . import fused_numba
        except Exception as exc:  # ImportError, or whatever a broken install raises
            cause = f"{type(exc).__name__}: {exc}"
            if _numba_asked_by is not None:
                raise ImportError(
                    f"{_numba_asked_by} asked for the Numba CPU update, but Numba failed to "
                    f"import ({cause}); install a working one with {_FAST_EXTRA}, or choose "
                    "GRADFLOW_FUSED_CPU=numpy") from exc
            _IMPL = "numpy"  # from now on: the NumPy passes, and no second warning
            warnings.warn(
                f"gradflow: Numba is installed but failed to import ({cause}); the CPU "
                "optimizer updates use the NumPy passes instead (the same results, slower). "
                f"Repair it with {_FAST_EXTRA}, or set GRADFLOW_FUSED_CPU=numpy to silence "
                "this warning", RuntimeWarning, stacklevel=5)
            return None
        _nb = fused_numba
    return _nb


def conv_kernels():
    """The compiled convolution and pooling loops (`conv_numba`) where Numba is the CPU's
    fused implementation, else None: gradflow.ops.conv then runs its NumPy code.

    Example:
        >>> conv_kernels() is None or hasattr(conv_kernels(), "im2col")
        True
    """
    if _IMPL != "numba" or _numba() is None:
        return None
    from . import conv_numba  # imported with Numba itself: the same install
    return conv_numba


_env_impl = os.environ.get("GRADFLOW_FUSED_CPU", "").strip()
if _env_impl:
    _choose(_env_impl, "GRADFLOW_FUSED_CPU")
elif _numba_installed():
    _choose("numba", None)  # the default: falls back to "numpy" if the import fails


_scratch: dict = {}


def _buf(like, slot: int = 0):
    """A scratch array shaped like `like`, reused across calls (grown when too small)."""
    key = (like.dtype.str, slot)
    flat = _scratch.get(key)
    n = like.size
    if flat is None or flat.size < n:
        flat = np.empty(max(n, 1), dtype=like.dtype)
        _scratch[key] = flat
    return flat[:n].reshape(like.shape)


def _effective_grad(p, g, weight_decay, maximize):
    """grad, negated for maximize and with weight_decay * p added (L2), in scratch slot 1."""
    if not maximize and not weight_decay:
        return g
    t = _buf(p, 1)
    if maximize:
        np.negative(g, out=t)
    else:
        np.copyto(t, g)
    if weight_decay:
        np.multiply(p, weight_decay, out=_buf(p, 2))
        t += _buf(p, 2)
    return t


def adam_update(p, g, m, v, vmax, *, step: int, lr: float, beta1: float, beta2: float,
                eps: float, weight_decay: float, decoupled: bool, maximize: bool) -> None:
    """One Adam/AdamW step on arrays, in place: p, m, v (and vmax for AMSGrad, else None).

    m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  vmax = max(vmax, v)
    p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    decoupled (AdamW): p = p (1 - lr wd) first, and g is not changed by weight decay.
    """
    if decoupled and weight_decay:
        p *= 1.0 - lr * weight_decay
        weight_decay = 0.0
    g = _effective_grad(p, g, weight_decay, maximize)
    bc1 = 1.0 - beta1 ** step
    bc2_sqrt = math.sqrt(1.0 - beta2 ** step)
    # lr/bc1 * m / (sqrt(v)/bc2_sqrt + eps) == (lr bc2_sqrt / bc1) * m / (sqrt(v) + eps bc2_sqrt)
    step_size = lr * bc2_sqrt / bc1
    eps_hat = eps * bc2_sqrt
    if (_IMPL == "numba" and vmax is None and g.dtype == p.dtype
            and p.flags.c_contiguous and g.flags.c_contiguous and m.flags.c_contiguous
            and v.flags.c_contiguous):
        # The scalars in the arrays' dtype, as NumPy casts them in the passes below: the same
        # operations on the same values give the same bits.
        nb = _numba()
        if nb is not None:  # None: Numba failed to import, warned; the NumPy passes below
            dt = p.dtype.type
            args = (dt(beta1), dt(beta2), dt(1.0 - beta1), dt(1.0 - beta2), dt(-step_size),
                    dt(eps_hat))
            kernel = nb.adam_pass
            if not _blocked(_adam_block, (p, g, m, v), (kernel, *args)):
                kernel(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), *args)
            return
    args = (beta1, beta2, step_size, eps_hat)
    if not _blocked(_adam_passes, (p, g, m, v, vmax), args):
        _adam_passes(p, g, m, v, vmax, _buf(p), *args)


def _adam_block(p, g, m, v, t, kernel, *args):
    # One block of the compiled update (`_blocked` hands every pass a scratch block: unused).
    kernel(p, g, m, v, *args)


def _adam_passes(p, g, m, v, vmax, t, beta1, beta2, step_size, eps_hat):
    # The NumPy update: twelve in-place passes through the scratch array t.
    m *= beta1
    np.multiply(g, 1.0 - beta1, out=t)
    m += t
    v *= beta2
    np.multiply(g, g, out=t)
    t *= 1.0 - beta2
    v += t
    if vmax is not None:
        np.maximum(vmax, v, out=vmax)
        v = vmax
    np.sqrt(v, out=t)
    t += eps_hat
    np.divide(m, t, out=t)
    t *= -step_size
    p += t


# --- blocked, threaded passes for large parameters ------------------------------------------------
# A dozen passes over a million-element parameter stream it through memory a dozen times. Cut
# into blocks of _BLOCK elements, each block's passes run while it is still in cache, and the
# blocks are shared between threads (NumPy releases the GIL inside each pass), so a large
# parameter is read from memory about once per step and on every core. Each element sees the
# same operations in the same order: the results are bit for bit those of the plain passes.
_BLOCK = 1 << 17
try:
    _THREADS = max(1, min(4, len(os.sched_getaffinity(0))))
except AttributeError:  # not on every platform
    _THREADS = max(1, min(4, os.cpu_count() or 1))
_pool = None
_pool_pid = None
_local = threading.local()


def _thread_buf(dtype):
    # A block-sized scratch array of this thread's own.
    bufs = getattr(_local, "bufs", None)
    if bufs is None:
        bufs = _local.bufs = {}
    b = bufs.get(dtype.str)
    if b is None:
        b = bufs[dtype.str] = np.empty(_BLOCK, dtype=dtype)
    return b


def _blocked(passes, arrays, args) -> bool:
    """Run `passes(*blocks, scratch, *args)` over blocks of `arrays` (None entries stay None)
    on up to _THREADS threads; False (nothing done) when the arrays are small or not all
    C-contiguous of one size, for the caller to run the plain passes."""
    global _pool, _pool_pid
    first = arrays[0]
    n = first.size
    if n < 2 * _BLOCK:
        return False
    for a in arrays:
        if a is not None and (a.size != n or not a.flags.c_contiguous or a.dtype != first.dtype):
            return False
    flat = [None if a is None else a.reshape(-1) for a in arrays]
    starts = range(0, n, _BLOCK)
    threads = min(_THREADS, len(starts))

    def work(k):
        t = _thread_buf(first.dtype)
        for i in starts[k::threads]:
            j = min(i + _BLOCK, n)
            passes(*[None if a is None else a[i:j] for a in flat], t[:j - i], *args)

    if threads == 1:
        work(0)
        return True
    if _pool is None or _pool_pid != os.getpid():  # a forked child has none of the threads
        _pool = ThreadPoolExecutor(_THREADS - 1, thread_name_prefix="gradflow-fused")
        _pool_pid = os.getpid()
    futures = [_pool.submit(work, k) for k in range(1, threads)]
    work(0)
    for f in futures:
        f.result()
    return True


def sgd_update(p, g, buf, *, first: bool, lr: float, momentum: float, dampening: float,
               nesterov: bool, weight_decay: float, maximize: bool) -> None:
    """One SGD step on arrays, in place: p and the momentum buffer `buf` (None without momentum).

    d = g (+ wd p);  buf = d on the first step, else momentum buf + (1 - dampening) d
    p = p - lr (d + momentum buf) with nesterov, else p - lr buf (p - lr d without momentum).
    """
    g = _effective_grad(p, g, weight_decay, maximize)
    if buf is None:
        np.multiply(g, -lr, out=_buf(p))
        p += _buf(p)
        return
    if first:
        np.copyto(buf, g)
    else:
        buf *= momentum
        if dampening:
            np.multiply(g, 1.0 - dampening, out=_buf(p))
            buf += _buf(p)
        else:
            buf += g
    t = _buf(p)
    if nesterov:
        np.multiply(buf, momentum, out=t)
        t += g
        t *= -lr
    else:
        np.multiply(buf, -lr, out=t)
    p += t


def rmsprop_update(p, g, square_avg, grad_avg, buf, *, lr: float, alpha: float, eps: float,
                   weight_decay: float, momentum: float, maximize: bool) -> None:
    """One RMSprop step on arrays, in place (grad_avg None unless centered, buf None unless
    momentum > 0).

    s = alpha s + (1 - alpha) g^2;  centered: a = alpha a + (1 - alpha) g, denom = sqrt(s - a^2)
    + eps, else denom = sqrt(s) + eps;  momentum: buf = momentum buf + g / denom, p -= lr buf;
    else p -= lr g / denom.
    """
    g = _effective_grad(p, g, weight_decay, maximize)
    t = _buf(p)
    square_avg *= alpha
    np.multiply(g, g, out=t)
    t *= 1.0 - alpha
    square_avg += t
    if grad_avg is not None:
        grad_avg *= alpha
        np.multiply(g, 1.0 - alpha, out=t)
        grad_avg += t
        np.multiply(grad_avg, grad_avg, out=t)
        np.subtract(square_avg, t, out=t)
        np.sqrt(t, out=t)
    else:
        np.sqrt(square_avg, out=t)
    t += eps
    np.divide(g, t, out=t)
    if buf is not None:
        buf *= momentum
        buf += t
        np.multiply(buf, -lr, out=t)
    else:
        t *= -lr
    p += t
