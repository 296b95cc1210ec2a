"""Host memory: an opt-in that lets freed NumPy buffers be reused instead of handed back to the OS.

Why this exists. A training step or a chain of ops allocates many temporaries of a few
megabytes each (activations, gradients) and frees them all at the end of the backward pass.
With glibc's default settings, freeing more than about twice the largest recent buffer at the
top of the heap gives that memory back to the kernel (`trim`), and the next step takes it again,
page by page: each new 4 KiB page is a page fault the kernel must zero. On the 2-core VMs this
project is measured on, a chain of elementwise ops on 1024x1024 tensors spent 20 of its 45 ms
per iteration in those faults, and so did the reductions (see README, Performance).

What it does. On Linux with glibc, `tune()` raises two of malloc's thresholds for the whole
process, once:

- `M_MMAP_THRESHOLD` = 32 MiB (glibc's largest): buffers below it come from the heap, which
  keeps its pages, rather than from their own mapping, which is unmapped on free;
- `M_TRIM_THRESHOLD` = 1 GiB: the heap keeps up to that much freed memory for reuse.

The cost is the usual one of a caching allocator (PyTorch's CUDA allocator, CuPy's memory pool):
after a peak, the process keeps its freed memory (up to 1 GiB of it) for the next step instead
of returning it. Buffers of 32 MiB and more are mapped and unmapped as before.

It is an opt-in, never a side effect of importing gradflow: the thresholds belong to the whole
process (every library in it allocates through them), so only the program's author should
change them. Two ways to ask:

- call `gradflow.tune_host_malloc()` (this module's `tune`), e.g. at the start of a training
  script's main();
- set `GRADFLOW_MALLOC=tuned` in the environment: gradflow's CPU backend then calls `tune()`
  when it is imported.

Unset (the default), gradflow leaves malloc alone. `tune()` still changes nothing when
`GRADFLOW_MALLOC=system` is set, when any of glibc's own malloc environment variables
(`MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TOP_PAD_`, `MALLOC_MMAP_MAX_`, or
`glibc.malloc.*` in `GLIBC_TUNABLES`) is set (the user's choice wins), and off glibc (macOS,
Windows, musl), where there is nothing to tune this way.

    >>> import gradflow as gf
    >>> gf.tune_host_malloc()        # {'applied': True, 'mmap_threshold': ..., ...} on glibc
"""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["tune", "settings", "requested", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

# mallopt parameter numbers, from glibc's <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # bytes; glibc refuses more than HEAP_MAX_SIZE / 2 = 32 MiB on 64-bit
TRIM_THRESHOLD = 1 << 30   # bytes

_USER_VARS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_",
              "MALLOC_MMAP_MAX_")

_MODES = ("tuned", "system")
_NOT_ASKED = ("not requested: call gradflow.tune_host_malloc() or set GRADFLOW_MALLOC=tuned "
              "to tune")

_settings: dict | None = None


def _mode(environ) -> str | None:
    """GRADFLOW_MALLOC's value: 'tuned', 'system' or None (unset or empty)."""
    value = environ.get("GRADFLOW_MALLOC", "").strip().lower()
    if not value:
        return None
    if value not in _MODES:
        raise ValueError(f"GRADFLOW_MALLOC must be 'tuned' (raise glibc's malloc thresholds, see "
                         f"gradflow.backend.host_malloc), 'system' (leave them) or unset, got "
                         f"{environ.get('GRADFLOW_MALLOC')!r}")
    return value


def requested(environ=None) -> bool:
    """True when the environment asks for the tuning at import (GRADFLOW_MALLOC=tuned).

    Raises:
        ValueError: GRADFLOW_MALLOC is set to something else than 'tuned' or 'system'.
    """
    return _mode(os.environ if environ is None else environ) == "tuned"


def _skip_reason(environ) -> str | None:
    if _mode(environ) == "system":
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
    """Raise glibc's mmap and trim thresholds for this whole process: an explicit opt-in.

    Freed buffers under 32 MiB then stay in the process for the next training step instead of
    being returned to the kernel and faulted in again (see the module docstring). Runs once;
    later calls only report what the first one did. Exported as `gradflow.tune_host_malloc`.

    Args:
        environ: the environment to read the opt-outs from (default: `os.environ`).

    Returns:
        What was done: {"applied": True, "mmap_threshold": bytes, "trim_threshold": bytes}, or
        {"applied": False, "why": reason} when it left malloc alone (GRADFLOW_MALLOC=system,
        one of glibc's MALLOC_* variables set, or not glibc).

    Raises:
        ValueError: GRADFLOW_MALLOC is set to something else than 'tuned' or 'system'.

    Example:
        >>> gf.tune_host_malloc()["applied"]      # True on Linux with glibc
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
    """What `tune` did in this process (see its return value); changes nothing itself.

    Before any call to `tune` (the default: nothing asked for it): {"applied": False,
    "why": "not requested: ..."}.
    """
    if _settings is None:
        return {"applied": False, "why": _NOT_ASKED}
    return dict(_settings)
