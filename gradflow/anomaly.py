"""Anomaly mode: which op made the first nan or inf, and where your code called it.

When a loss turns into nan, the question is which op produced the first one, forward or
backward, and which line of the model created that op. Inside `detect_anomaly()` (or with
GRADFLOW_ANOMALY=1 set) gradflow answers it:

* every op records where it was called from: the frames of the calling code, as
  (file, line, function) tuples, formatted only when an error needs them;
* an op whose output holds a nan or an inf raises AnomalyError naming the op, the output's
  shape and your source line;
* a gradient rule that returns a nan raises AnomalyError naming the op whose rule made it and
  the file and line where that op was created, with the traceback of that forward call (PyTorch
  prints that traceback as a warning; here it is in the error itself);
* any other error of the backward pass (a tensor modified in place, a wrong gradient) gets the
  same traceback of the op it happened in.

On the CPU each check reads its answer at once, which costs nothing extra. On a GPU reading an
answer waits for the GPU (a sync), so each check leaves a one-element flag on the device and all
flags are read together once, at the end of each backward pass (and on leaving the context, or
after 4096 unread ones): the error then names the first op, in the order they ran, that made a
nan or inf.
`detect_anomaly(sync=True)` reads every flag at once instead, to stop at the op itself.

Outside anomaly mode nothing is recorded or checked: the op path tests one global for None.

Example:
    >>> with gf.autograd.detect_anomaly():
    ...     loss = model(x).log().mean()    # AnomalyError here if log gets a negative value
    ...     loss.backward()                 # or here, naming the op whose gradient was nan
"""
from __future__ import annotations

import contextlib
import linecache
import os
import sys

from . import autograd
from . import backend as B

__all__ = ["AnomalyError", "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_FRAMES = 12  # frames of the caller kept per op: enough to show the model and the training loop
_MAX_PENDING = 4096  # unread GPU flags kept before they are read anyway (one sync per 4096 ops)


class AnomalyError(RuntimeError):
    """An op made a nan or inf (forward), or a gradient rule made a nan, in anomaly mode."""


class _Mode:
    """The checks of one anomaly-mode scope; `autograd._anomaly` points at it while active."""

    def __init__(self, check_nan: bool, sync: bool) -> None:
        self.check_nan = check_nan
        self.sync = sync
        self.pending = []  # unread GPU flags: (finite?, Function, what was checked)

    def forward(self, fn, y, device) -> None:
        """Record where `fn` was called from; check its output `y` (an array on `device`)."""
        fn.created_at = _caller_frames()
        if self.check_nan and y.dtype.kind == "f":
            self._check(device, y, fn, f"its output of shape {tuple(y.shape)}", backward=False)

    def backward(self, fn, gxs) -> None:
        """Check the gradients `fn`'s rule returned, one per input (None where not needed)."""
        if not self.check_nan:
            return
        for i, (x, g) in enumerate(zip(fn.inputs, gxs)):
            if g is not None and isinstance(x, autograd.Tensor):
                g = g.data if isinstance(g, autograd.Tensor) else g
                what = f"the gradient of its input {i} (shape {tuple(x.shape)})"
                self._check(x.device, g, fn, what, backward=True)

    def _check(self, device, arr, fn, what, backward) -> None:
        # Forward: nan or inf is an anomaly. Backward: nan only (d sqrt x at 0 = inf is a value).
        xp = device.xp
        with device.backend.use(device.index):
            ok = xp.logical_not(xp.isnan(arr).any()) if backward else xp.isfinite(arr).all()
        if self.sync or device.backend.synchronous:
            if not bool(ok):
                raise _error(fn, what, _count(device, arr, backward), backward)
        else:
            self.pending.append((ok, fn, what, backward))
            if len(self.pending) >= _MAX_PENDING:  # forward passes with no backward (eval)
                self.flush()

    def flush(self) -> None:
        """Read the flags left on GPUs (one read per device); raise for the first bad one."""
        pending, self.pending = self.pending, []
        by_device: dict = {}
        for i, (ok, *_rest) in enumerate(pending):
            by_device.setdefault(B.device_of(ok), []).append(i)
        first = None
        for dev, positions in by_device.items():
            with dev.backend.use(dev.index):
                flags = dev.xp.stack([pending[i][0] for i in positions])
                flags = dev.backend.to_host(flags).tolist()  # the one read: waits for this GPU
            if False in flags:
                bad = positions[flags.index(False)]
                first = bad if first is None else min(first, bad)
        if first is not None:
            _, fn, what, backward = pending[first]
            raise _error(fn, what, "nan" if backward else "nan or inf", backward)


def _count(device, arr, nan_only) -> str:
    # "2 nan and 1 inf values": read only once a check failed (then waiting costs nothing).
    with device.backend.use(device.index):
        nans = int(device.xp.isnan(arr).sum())
        infs = 0 if nan_only else int(device.xp.isinf(arr).sum())
    parts = [f"{n} {word}" for n, word in ((nans, "nan"), (infs, "inf")) if n]
    return " and ".join(parts) + (" values" if nans + infs > 1 else " value")


def _caller_frames() -> tuple:
    """(file, line, function) of the calling code's frames, innermost first, gradflow's own
    left out: cheap tuples, formatted by `_format_frames` only if an error needs them."""
    frames = []
    f = sys._getframe(2)
    while f is not None and len(frames) < _FRAMES:
        code = f.f_code
        if not code.co_filename.startswith(_PACKAGE):
            frames.append((code.co_filename, f.f_lineno, code.co_name))
        f = f.f_back
    return tuple(frames)


def _format_frames(frames) -> str:
    lines = []
    for filename, lineno, name in reversed(frames):  # most recent call last, as Python prints
        lines.append(f'  File "{filename}", line {lineno}, in {name}')
        source = linecache.getline(filename, lineno).strip()
        if source:
            lines.append(f"    {source}")
    return "\n".join(lines)


def _site(fn) -> str:
    frames = getattr(fn, "created_at", ())
    if not frames:
        return "where it was created is unknown (it ran before anomaly mode was turned on)"
    filename, lineno, name = frames[0]
    source = linecache.getline(filename, lineno).strip()
    return f"{filename}:{lineno} in {name}" + (f": {source}" if source else "")


def _error(fn, what, bad, backward) -> AnomalyError:
    frames = getattr(fn, "created_at", ())
    trace = f"\nTraceback of the call that created {fn.name} (most recent call last):\n" \
        f"{_format_frames(frames)}" if frames else ""
    if backward:
        head = (f"the gradient rule of {fn.name} ({fn.name}.backward) made {bad} in {what}; "
                f"{fn.name} was created at {_site(fn)}")
    else:
        head = f"{fn.name} made {bad} in {what}, at {_site(fn)}"
    return AnomalyError(head + " (anomaly mode)" + trace)


def annotate(exc: BaseException, fn) -> None:
    """Add the traceback of `fn`'s creation to an error raised while backward ran its rule."""
    frames = getattr(fn, "created_at", ())
    if frames and hasattr(exc, "add_note") and not isinstance(exc, AnomalyError):  # Python 3.11+; older ones show the error alone
        exc.add_note(f"Anomaly mode: the op {fn.name} was created at {_site(fn)}\n"
                     f"{_format_frames(frames)}")


class detect_anomaly(contextlib.ContextDecorator):
    """Context manager and decorator: find the op that made the first nan or inf.

    Inside it every op records where it was called from; an op whose output holds a nan or inf
    raises AnomalyError naming the op, the output's shape and your line, and so does a gradient
    rule that makes a nan (naming the line where that op was created). Slow: for debugging.

    Args:
        check_nan: check values (default); False only records where ops were created, so that
            other backward errors show it.
        sync: on a GPU, read each check at once (a sync per op) instead of once per backward.

    Example:
        >>> with gf.autograd.detect_anomaly():
        ...     loss = model(x).log().mean()
        ...     loss.backward()
        >>> @gf.autograd.detect_anomaly()
        ... def train_step(x): ...
    """

    def __init__(self, check_nan: bool = True, sync: bool = False) -> None:
        self.check_nan = bool(check_nan)
        self.sync = bool(sync)
        self._outer = []

    def __enter__(self):
        self._outer.append(autograd._anomaly)
        autograd._anomaly = _Mode(self.check_nan, self.sync)
        return self

    def __exit__(self, exc_type, *exc):
        mode, autograd._anomaly = autograd._anomaly, self._outer.pop()
        if exc_type is None and mode is not None:
            mode.flush()  # what a GPU found since the last backward
        return False


def set_detect_anomaly(mode: bool, check_nan: bool = True, sync: bool = False) -> None:
    """Turn anomaly mode on or off for the rest of the run (GRADFLOW_ANOMALY=1 does this on).

    Args:
        mode: True to turn it on, False to turn it off.
        check_nan, sync: as for `detect_anomaly`.

    Example:
        >>> gf.autograd.set_detect_anomaly(True)
    """
    if not isinstance(mode, bool):
        raise TypeError(f"set_detect_anomaly: expected True or False, got {mode!r}")
    if autograd._anomaly is not None and not mode:
        autograd._anomaly.flush()
    autograd._anomaly = _Mode(bool(check_nan), bool(sync)) if mode else None


def is_anomaly_enabled() -> bool:
    """True inside `detect_anomaly()`, after `set_detect_anomaly(True)` or with
    GRADFLOW_ANOMALY=1.

    Example:
        >>> gf.autograd.is_anomaly_enabled()          # False unless asked for
    """
    return autograd._anomaly is not None


if os.environ.get("GRADFLOW_ANOMALY", "").strip().lower() in ("1", "true", "yes", "on"):
    set_detect_anomaly(True)
