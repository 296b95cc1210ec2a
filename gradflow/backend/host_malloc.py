"""Host memory: let freed NumPy buffers be reused instead of handed back to the kernel.

Why this exists. A training step or a chain of ops allocates many temporaries of a few
megabytes each (activations, gradients) and frees them all at the end of the backward pass.
With glibc's default settings, freeing more than about twice the largest recent buffer at the
top of the heap gives that memory back to the kernel (`trim`), and the next step takes it again,
page by page: each new 4 KiB page is a page fault the kernel must zero. On the 2-core VMs this
project is measured on, a chain of elementwise ops on 1024x1024 tensors spent 20 of its 45 ms
per iteration in those faults, and so did the reductions (see README, Performance).

What it does. On Linux with glibc, `tune()` raises two of malloc's thresholds, once, when
gradflow's CPU backend is imported:

- `M_MMAP_THRESHOLD` = 32 MiB (glibc's largest): buffers below it come from the heap, which
  keeps its pages, rather than from their own mapping, which is unmapped on free;
- `M_TRIM_THRESHOLD` = 1 GiB: the heap keeps up to that much freed memory for reuse.

The cost is the usual one of a caching allocator (PyTorch's CUDA allocator, CuPy's memory pool):
after a peak, the process keeps its freed memory (up to 1 GiB of it) for the next step instead
of returning it. Buffers of 32 MiB and more are mapped and unmapped as before.

It changes nothing when `GRADFLOW_MALLOC=system` is set, when any of glibc's own malloc
environment variables (`MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TOP_PAD_`,
`MALLOC_MMAP_MAX_`, or `glibc.malloc.*` in `GLIBC_TUNABLES`) is set (the user's choice wins), and
off glibc (macOS, Windows, musl), where there is nothing to tune this way.
"""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["tune", "settings", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

# mallopt parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # bytes; glibc refuses more than HEAP_MAX_SIZE / 2 = 32 MiB on 64-bit
TRIM_THRESHOLD = 1 << 30   # bytes

_USER_VARS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_",
              "MALLOC_MMAP_MAX_")

_settings: dict | None = None


def _skip_reason(environ) -> str | None:
    if environ.get("GRADFLOW_MALLOC", "").strip().lower() == "system":
        return "GRADFLOW_MALLOC=system"
    for var in _USER_VARS:
        if var in environ:
            return f"{var} is set"
    if "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        return "GLIBC_TUNABLES sets glibc.malloc"
    if not sys.platform.startswith("linux"):
        return f"not Linux ({sys.platform})"
    return None


def _glibc_mallopt():
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # only glibc has it: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt


def tune(environ=None) -> dict:
    """Raise glibc's mmap and trim thresholds for this process (once; later calls only report).

    Args:
        environ: the environment to read the opt-outs from (default: `os.environ`).

    Returns:
        What was done: {"applied": True, "mmap_threshold": bytes, "trim_threshold": bytes}, or
        {"applied": False, "why": reason} when it left malloc alone.
    """
    global _settings
    if _settings is not None:
        return dict(_settings)
    why = _skip_reason(os.environ if environ is None else environ)
    mallopt = None if why else _glibc_mallopt()
    if why is None and mallopt is None:
        why = "no glibc mallopt in this process"
    if why is None:
        # mallopt returns 1 on success; a refused value leaves that threshold as it was.
        ok_mmap = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok_trim = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
        if ok_mmap or ok_trim:
            _settings = {"applied": True,
                         "mmap_threshold": MMAP_THRESHOLD if ok_mmap else None,
                         "trim_threshold": TRIM_THRESHOLD if ok_trim else None}
            return dict(_settings)
        why = "glibc refused both values"
    _settings = {"applied": False, "why": why}
    return dict(_settings)


def settings() -> dict:
    """What `tune` did in this process (see its return value); tunes first if it has not run."""
    return tune()
