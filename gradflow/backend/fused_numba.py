"""Adam as one compiled pass per parameter (Numba): the CPU update used when Numba is installed.

The NumPy update (`fused_numpy`) streams each parameter through a dozen ufunc passes; this loop
reads p, g, m and v once and writes p, m and v once, in SIMD registers. On the 2-core machine
gradflow is developed on, it takes the Adam step of the 1.8M-parameter MNIST MLP from about
2.4 ms to about 0.5 ms (README's performance section). Each element goes through exactly the
operations of the NumPy passes, in the same order and precision (no fused multiply-add, no
fast-math reassociation), so both implementations give the same bits: tests hold them to it.

Imported only when the first update runs (importing Numba takes a few tenths of a second), by
`fused_numpy`, which also cuts large parameters into blocks shared between threads: the kernel
releases the GIL.
"""
from __future__ import annotations

import math
import warnings

import numba

__all__ = ["adam_pass"]


def _compile(fn):
    # Cached on disk next to this file, so later processes skip the compile (about half a
    # second); where that folder is read-only Numba looks for another, and where it finds
    # none the kernel is compiled in memory once per process.
    opts = dict(nogil=True, error_model="numpy")  # "numpy": no zero-division checks, so the
    try:                                         # loop vectorises
        return numba.njit(cache=True, **opts)(fn)
    except RuntimeError as exc:
        warnings.warn(f"gradflow: Numba cannot cache its kernels ({exc}); compiling them in "
                      "memory", RuntimeWarning, stacklevel=2)
        return numba.njit(cache=False, **opts)(fn)


def _adam(p, g, m, v, beta1, beta2, c1, c2, neg_step, eps_hat):
    for i in range(p.size):
        gi = g[i]
        mi = m[i] * beta1 + gi * c1
        vi = v[i] * beta2 + gi * gi * c2
        m[i] = mi
        v[i] = vi
        p[i] += mi / (math.sqrt(vi) + eps_hat) * neg_step


adam_pass = _compile(_adam)
adam_pass.__doc__ = """One Adam step over 1-D C-contiguous arrays of one dtype, in place.

    m = beta1 m + c1 g;  v = beta2 v + c2 g^2;  p += m / (sqrt(v) + eps_hat) * neg_step
    with c1 = 1 - beta1, c2 = 1 - beta2, neg_step = -lr sqrt(1 - beta2^t) / (1 - beta1^t) and
    eps_hat = eps sqrt(1 - beta2^t), every scalar of the arrays' dtype (see fused_numpy).
    """
