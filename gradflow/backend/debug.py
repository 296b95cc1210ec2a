"""Debug mode: the checks that would make a GPU wait are made only when asked for.

Some checks need a value back on the host: "is any label out of range?" is a one-element answer
computed on the device. On the CPU reading it costs nothing, so the CPU backend always checks.
On a GPU, reading it makes the host wait until every queued kernel has run (a sync), which on the
training path costs more than the step it guards. So by default the CUDA backend leaves such
values unread (the op makes the affected results nan instead, so nothing is silently wrong), and
debug mode reads and raises, naming the bad values, as the CPU does.

Debug mode is on when GRADFLOW_DEBUG=1 is set, or after `gradflow.set_debug(True)` (Chainer's
names). It only adds checks: results do not change.
"""
from __future__ import annotations

import os

__all__ = ["set_debug", "is_debug"]

_enabled = os.environ.get("GRADFLOW_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def set_debug(enabled: bool) -> None:
    """Turn debug mode on or off: checks that need a GPU value on the host are made (and sync).

    Args:
        enabled: True to check (and wait for the GPU where a check needs it), False not to.

    Example:
        >>> gf.set_debug(True)     # a bad label on CUDA raises here, as on the CPU
    """
    global _enabled
    if not isinstance(enabled, bool):
        raise TypeError(f"set_debug: expected True or False, got {enabled!r}")
    _enabled = enabled


def is_debug() -> bool:
    """True when debug mode is on (GRADFLOW_DEBUG=1 or `set_debug(True)`).

    Example:
        >>> gf.is_debug()          # False unless GRADFLOW_DEBUG=1
    """
    return _enabled
