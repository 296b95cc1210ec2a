"""Atomic file writes: a temporary file beside the target, renamed over it only when complete."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

__all__ = ["atomic_write"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a binary file that replaces `path` only if the `with` block finishes without error.

    The data goes to a hidden temporary file in the same directory (so the final rename stays on
    one file system and is atomic); on success it is flushed to disk and renamed over `path`. On
    any exception, an interrupt included, the temporary file is removed and `path` is untouched:
    a reader never sees a half-written file.

    Example:
        >>> with atomic_write("out.bin") as f:
        ...     f.write(b"all or nothing")
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: directory {path.parent} does not exist")
    if path.is_dir():  # checked first: the rename would fail only after all was written
        raise IsADirectoryError(f"cannot write {path}: it is a directory; give a file name")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600: give it open()'s mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    # The process's umask (reading it means setting it: put it straight back).
    mask = os.umask(0)
    os.umask(mask)
    return mask
