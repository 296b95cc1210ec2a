"""Downloading a data file: mirror after mirror, checksum-verified, never leaving a partial file."""
from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

from ..data._atomic import atomic_write

__all__ = ["DownloadError", "ChecksumError", "download"]

_CHUNK = 1 << 20
_USER_AGENT = "gradflow-datasets/1 (+python urllib)"


class DownloadError(RuntimeError):
    """No mirror produced a verified copy of a file; `errors` lists what each one did."""

    def __init__(self, message: str, errors: list[str]) -> None:
        super().__init__(message)
        self.errors = errors


class ChecksumError(ValueError):
    """A downloaded file does not have the published size or SHA-256 digest."""


def _fetch(url: str, out, sha256: str, size: int | None, timeout: float, announce) -> None:
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    digest, got = hashlib.sha256(), 0
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        announced = resp.headers.get("Content-Length")
        if announce is not None:  # only once a server answers: offline, nothing is printed
            announce()
        while True:
            chunk = resp.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            out.write(chunk)
            got += len(chunk)
    if announced is not None and announced.isdigit() and got != int(announced):
        raise ChecksumError(f"interrupted: received {got} of {announced} bytes")
    if size is not None and got != size:
        raise ChecksumError(f"wrong size: {got} bytes, the published file has {size} (an HTML "
                            "error page or a different file?)")
    if digest.hexdigest() != sha256.lower():
        raise ChecksumError(f"SHA-256 mismatch: got {digest.hexdigest()}, expected {sha256}")


def download(urls: Sequence[str], dest: str | os.PathLike, sha256: str, size: int | None = None,
             timeout: float = 60.0, quiet: bool = False) -> Path:
    """Download one file to `dest`, trying each URL in turn until a copy verifies.

    Each attempt streams into a temporary file beside `dest`; only a copy with the expected
    size and SHA-256 digest is renamed to `dest`. A failed, corrupt or interrupted attempt
    (Ctrl-C included) removes its temporary file, so `dest` is never a partial or unverified
    file.

    Args:
        urls: the file's address on each mirror, in order of preference.
        dest: where to put it; its directory must exist.
        sha256: the published SHA-256 digest (hex).
        size: the published size in bytes, when known.
        timeout: seconds to wait for a server before giving up on that mirror.
        quiet: do not print the one-line notice (on stderr) when a server starts sending.

    Returns:
        `dest`, holding the verified file.

    Raises:
        DownloadError: every mirror failed; the message lists each URL and its error.

    Example:
        >>> download(["https://example.org/mnist/t10k-labels-idx1-ubyte.gz"],
        ...          "t10k-labels-idx1-ubyte.gz", sha256="f7ae60f9...", size=4542)
    """
    dest = Path(dest)
    if not dest.parent.is_dir():
        raise FileNotFoundError(f"cannot download to {dest}: directory {dest.parent} does not "
                                "exist")
    errors: list[str] = []
    for url in urls:
        try:
            with atomic_write(dest) as f:
                _fetch(url, f, sha256, size, timeout, None if quiet else
                       lambda: print(f"Downloading {url} -> {dest}", file=sys.stderr, flush=True))
            return dest
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) and not \
                isinstance(exc, urllib.error.HTTPError) else exc
            errors.append(f"{url}: {reason}")
    raise DownloadError(f"could not download {dest.name}:\n  " + "\n  ".join(errors), errors)
