"""The IDX file format of MNIST-style data sets: a checked reader and an atomic writer.

An IDX file is a big-endian header followed by the raw values:
    bytes 0-1   zero
    byte  2     type code: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
                0x0E float64
    byte  3     number of dimensions, d
    4 * d       each dimension as a big-endian uint32
    ...         prod(dims) values, big-endian
The 4-byte magic number therefore encodes type and rank: MNIST images are 2051 (0x00000803, uint8,
3 dims) and labels 2049 (0x00000801, uint8, 1 dim). Files may be gzip-compressed (`.gz`).
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

from ..backend import host_numpy
from ._atomic import atomic_write

__all__ = ["IDXError", "read_idx", "write_idx", "IMAGES_MAGIC", "LABELS_MAGIC"]

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

# type code -> big-endian dtype string of the values
_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """An IDX file is truncated, corrupt, or not the kind of IDX file that was expected."""


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    # Decide by content, not by name: a renamed or mislabelled file is still read correctly.
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError:
        raise IDXError(f"{path}: truncated gzip stream (the file ends before the compressed data "
                       f"does; {len(raw)} bytes on disk): download or copy it again") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise IDXError(f"{path}: corrupt gzip data ({exc}): download or copy it again") from None


def read_idx(path: str | os.PathLike, expected_magic: int | None = None):
    """Read an IDX file (raw or gzip-compressed) into a NumPy array on the host.

    The header is checked against the file: the two leading zero bytes, a known type code, the
    magic number when `expected_magic` is given, and the size implied by the dimensions, which
    must equal the number of bytes that follow the header exactly.

    Args:
        path: the file; gzip compression is detected from its first bytes, not its name.
        expected_magic: e.g. `IMAGES_MAGIC` (2051) or `LABELS_MAGIC` (2049); None accepts any
            valid IDX file.

    Returns:
        A native-endian NumPy array with the header's dimensions and dtype (uint8 for MNIST).

    Raises:
        FileNotFoundError: there is no such file.
        IDXError: the file is truncated, corrupt, or has another magic number; the message names
            the file and what is wrong.

    Example:
        >>> images = read_idx("train-images-idx3-ubyte.gz", expected_magic=IMAGES_MAGIC)
        >>> images.shape, images.dtype
        ((60000, 28, 28), dtype('uint8'))
    """
    np = host_numpy()
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise IDXError(f"{path}: {len(data)} bytes is too short for an IDX header "
                       "(the file is empty or truncated)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    magic = struct.unpack(">I", data[:4])[0]
    if zero != 0 or code not in _TYPES or ndim == 0:
        raise IDXError(f"{path}: not an IDX file (magic number {magic:#010x} = {magic}; an IDX "
                       "file starts with two zero bytes, a type code and a number of dimensions)")
    if expected_magic is not None and magic != expected_magic:
        raise IDXError(f"{path}: magic number {magic} where {expected_magic} was expected "
                       f"({_describe(expected_magic)}); is it the right file?")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXError(f"{path}: truncated header: {ndim} dimensions need {header} bytes, the "
                       f"file has {len(data)}")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_TYPES[code])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        what = "truncated" if found < expected else "has trailing bytes"
        raise IDXError(f"{path}: {what}: the header says {' x '.join(map(str, dims))} values of "
                       f"{dtype.itemsize} byte(s) = {expected} bytes of data, the file holds "
                       f"{found}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    # frombuffer gives a read-only view of an immutable bytes object; return an owned array.
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _describe(magic: int) -> str:
    if magic == IMAGES_MAGIC:
        return "MNIST-style images: uint8, 3 dimensions"
    if magic == LABELS_MAGIC:
        return "MNIST-style labels: uint8, 1 dimension"
    return f"type code {(magic >> 8) & 0xFF:#04x}, {magic & 0xFF} dimension(s)"


def write_idx(path: str | os.PathLike, array, compress: bool | None = None) -> Path:
    """Write a NumPy array as an IDX file, atomically (temporary name, then rename).

    Args:
        path: destination; compressed with gzip when `compress` is True, or when it is None and
            the name ends in `.gz`.
        array: uint8, int8, int16, int32, float32 or float64 values, at least one dimension.
        compress: force gzip on or off.

    Returns:
        The path written.

    Example:
        >>> write_idx("labels-idx1-ubyte.gz", np.array([3, 1, 4], dtype=np.uint8))
    """
    np = host_numpy()
    path = Path(path)
    arr = np.asarray(array)
    key = arr.dtype.str[1:]
    if key not in _CODES or arr.ndim == 0:
        raise ValueError(f"write_idx: cannot store dtype {arr.dtype} with {arr.ndim} dimension(s) "
                         f"in IDX (types: {', '.join(sorted(_CODES))}; at least one dimension)")
    header = struct.pack(">HBB", 0, _CODES[key], arr.ndim)
    header += struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + arr.astype(arr.dtype.newbyteorder(">"), copy=False).tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        payload = gzip.compress(payload, mtime=0)
    with atomic_write(path) as f:
        f.write(payload)
    return path
