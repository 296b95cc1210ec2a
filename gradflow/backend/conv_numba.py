"""The two scatter-adds of gradflow.ops.conv compiled by Numba: col2im and max pooling's gradient.

These are accelerations. The reference, which both are tested against
(tests/ops/test_conv_kernels.py), is the NumPy code of `gradflow.ops.conv`: a loop over the
kernel's taps, each tap one strided `+=` over the whole batch, one pass over memory per tap on
one core. These loops add each value once, on every core (Numba's prange), and write the
layout the next step wants (col2im writes NCHW directly instead of adding in (C, N, H, W) and
then transposing). On the 2-core development VM: col2im of the MNIST CNN's second convolution
11.7 -> 3.1 ms, the max-pool gradient 6.4 -> 1.4 ms, the whole training step about 7% faster
(README's performance section). The copies (im2col) and the max-pool's forward gained nothing
compiled (NumPy's strided copies and ufuncs are as fast), so they stay NumPy's.

Imported at the first convolution when Numba is the CPU's fused implementation
(`fused_cpu_impl`, GRADFLOW_FUSED_CPU); without Numba, the NumPy code runs, with the same
results.
"""
from __future__ import annotations

import warnings

import numba
from numba import prange

__all__ = ["col2im", "max_pool_grad"]


def _compile(fn):
    # As fused_numba: cached on disk when the folder is writable, else compiled in memory.
    opts = dict(nogil=True, parallel=True, error_model="numpy")
    try:
        return numba.njit(cache=True, **opts)(fn)
    except RuntimeError as exc:
        warnings.warn(f"gradflow: Numba cannot cache its kernels ({exc}); compiling them in "
                      "memory", RuntimeWarning, stacklevel=2)
        return numba.njit(cache=False, **opts)(fn)


def _col2im(col, gx, sh, sw, dh, dw, top, left):
    c_, kh_, kw_, n_, oh_, ow_ = col.shape
    h_, w_ = gx.shape[2], gx.shape[3]
    for c in prange(c_):  # one channel per task: no two tasks add to the same pixel
        for n in range(n_):
            for i in range(kh_):
                for p in range(oh_):
                    r = p * sh + i * dh - top
                    if 0 <= r < h_:
                        for j in range(kw_):
                            for q in range(ow_):
                                s = q * sw + j * dw - left
                                if 0 <= s < w_:
                                    gx[n, c, r, s] += col[c, i, j, n, p, q]


def _max_pool_grad(gy, index, gx, kw_, sh, sw, dh, dw, top, left):
    n_, c_, oh_, ow_ = gy.shape
    h_, w_ = gx.shape[2], gx.shape[3]
    for t in prange(n_ * c_):  # one image plane per task: no two tasks add to the same pixel
        n, c = t // c_, t % c_
        for p in range(oh_):
            for q in range(ow_):
                k = index[n, c, p, q]
                r, s = p * sh + k // kw_ * dh - top, q * sw + k % kw_ * dw - left
                if 0 <= r < h_ and 0 <= s < w_:
                    gx[n, c, r, s] += gy[n, c, p, q]


col2im = _compile(_col2im)
max_pool_grad = _compile(_max_pool_grad)
