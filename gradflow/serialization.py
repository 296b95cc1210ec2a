"""Checkpoints: `gf.save` and `gf.load`, a pickle-free file format for tensors in nested containers.

Why not pickle: unpickling runs whatever code the file names, so a checkpoint from elsewhere is a
program. This format holds data only: a JSON manifest describing the structure, then raw array
bytes, so loading a file can only ever produce dicts, lists, tuples, numbers, strings, tensors
and arrays. Why not a bare .npz: its errors are generic (a truncated file is "not a zip file"),
while a header of our own lets every failure say which file and what is wrong.

Layout (little-endian):
    MAGIC (12 bytes) | version: uint32 | manifest length: uint64 | manifest (UTF-8 JSON)
    | zero padding to a multiple of 64 | array data, each array starting on a multiple of 64
    | SHA-256 of everything before it (32 bytes)
Each array is stored as host bytes in C order, with its dtype, shape and the device it came from
recorded in the manifest; the trailing digest detects truncation and corruption.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

from . import backend as B
from .data._atomic import atomic_write
from .tensor import Tensor

__all__ = ["save", "load", "CheckpointError", "FORMAT_VERSION"]

MAGIC = b"\x89GRADFLOW\r\n\x1a"  # like PNG's: catches text-mode newline mangling and `cat`
FORMAT_VERSION = 1
_HEADER = struct.Struct("<IQ")
_ALIGN = 64
_DIGEST = 32
_KINDS = "biufc"  # bool, signed, unsigned, float, complex: dtypes with no Python objects inside


class CheckpointError(ValueError):
    """A file is not a gradflow checkpoint, or is truncated, corrupt or from a newer version."""


# --- saving ---------------------------------------------------------------------------------
class _Encoder:
    def __init__(self) -> None:
        self.arrays: list = []       # host arrays, in file order
        self.meta: list[dict] = []   # dtype, shape, device, offset, nbytes of each
        self.memo: dict[int, tuple[Any, dict]] = {}  # id -> (object kept alive, its node)
        self.np = B.host_numpy()

    def add_array(self, arr, device: B.Device) -> int:
        if arr.dtype.kind not in _KINDS:
            raise TypeError(f"cannot save an array of dtype {arr.dtype}")
        host = device.backend.to_host(arr)
        if not host.flags.c_contiguous:  # (np.ascontiguousarray would turn 0-d into 1-d)
            host = host.copy(order="C")
        self.arrays.append(host)
        self.meta.append({"dtype": host.dtype.str, "shape": list(host.shape),
                          "device": str(device), "nbytes": int(host.nbytes)})
        return len(self.arrays) - 1

    def encode(self, obj, where: str):
        if obj is None or isinstance(obj, (bool, int, str)):
            return obj
        if isinstance(obj, float):
            return obj  # json writes repr(float): the shortest string that reads back exactly
        memo = self.memo.get(id(obj))
        if memo is not None:
            if memo[1] is None:
                raise TypeError(f"{where}: the object contains itself; cannot save a cycle")
            return memo[1]  # the same tensor twice (tied weights) is stored once
        self.memo[id(obj)] = (obj, None)
        if isinstance(obj, Tensor):
            try:
                i = self.add_array(obj.data, obj.device)
            except TypeError as exc:
                raise TypeError(f"{where}: {exc}") from None
            node = {"T": i, "rg": bool(obj.requires_grad)}
        elif B.is_array(obj):
            try:
                node = {"A": self.add_array(obj, B.device_of(obj))}
            except TypeError as exc:
                raise TypeError(f"{where}: {exc}") from None
        elif isinstance(obj, self.np.generic):
            node = {"S": self.add_array(self.np.asarray(obj), B.get_device("cpu"))}
        elif isinstance(obj, dict):
            node = {"d": [[self.encode(k, f"{where} key {k!r}"),
                           self.encode(v, f"{where}[{k!r}]")] for k, v in obj.items()]}
        elif isinstance(obj, list):
            node = {"l": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        elif isinstance(obj, tuple):
            node = {"t": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        elif isinstance(obj, B.Device):
            node = {"dev": str(obj)}
        elif isinstance(obj, self.np.dtype):
            node = {"dtype": obj.str}
        else:
            raise TypeError(f"{where}: cannot save an object of type {type(obj).__name__}; "
                            "checkpoints hold tensors, arrays, numbers, strings, None, devices, "
                            "dtypes and dicts/lists/tuples of them")
        self.memo[id(obj)] = (obj, node)
        return node


def save(obj, path: str | os.PathLike) -> Path:
    """Write `obj` (tensors and arrays in dicts, lists and tuples) to `path`, atomically.

    The file appears only once complete (written under a temporary name, flushed, then renamed),
    so an interrupted save leaves any previous checkpoint intact. Tensors are stored as host
    bytes with their dtype, shape, device and requires_grad; `load` gives them back bit for bit.
    A tensor that appears twice is stored once and loads as one object.

    Args:
        obj: None, bool, int, float, str, Tensor, NumPy/CuPy array or scalar, Device, dtype, or
            a dict/list/tuple of these (dict keys too), nested freely.
        path: the file to write; its directory must exist.

    Returns:
        The path written.

    Raises:
        TypeError: something in `obj` cannot be saved; the message gives where it is, e.g.
            `obj['optimizer']['state'][0]`. Nothing is written.

    Example:
        >>> gf.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3},
        ...         "checkpoint.gf")
    """
    path = Path(path)
    enc = _Encoder()
    tree = enc.encode(obj, "obj")
    offset = 0
    for m in enc.meta:
        m["offset"] = offset
        offset += -(-m["nbytes"] // _ALIGN) * _ALIGN
    manifest = json.dumps({"format": "gradflow-checkpoint", "version": FORMAT_VERSION,
                           "arrays": enc.meta, "data_bytes": offset, "tree": tree},
                          separators=(",", ":")).encode("utf-8")
    head = MAGIC + _HEADER.pack(FORMAT_VERSION, len(manifest)) + manifest
    head += b"\0" * (-len(head) % _ALIGN)
    digest = hashlib.sha256()
    with atomic_write(path) as f:
        def put(chunk) -> None:
            digest.update(chunk)
            f.write(chunk)
        put(head)
        for host, m in zip(enc.arrays, enc.meta):
            put(memoryview(host.reshape(-1).view(B.uint8)))
            put(b"\0" * (-m["nbytes"] % _ALIGN))
        f.write(digest.digest())
    return path


# --- loading --------------------------------------------------------------------------------
def _fail(path, what: str):
    raise CheckpointError(f"{path}: {what}")


def _guess(raw: bytes) -> str:
    if raw[:2] == b"PK":
        return " (it is a ZIP archive: a NumPy .npz or a PyTorch file?)"
    if raw[:1] == b"\x80":
        return " (it looks like a Python pickle, which gradflow never loads)"
    if raw[:6] == b"\x93NUMPY":
        return " (it is a NumPy .npy file)"
    return ""


def _read_checked(path: Path) -> tuple[dict, memoryview]:
    with open(path, "rb") as f:
        raw = f.read()
    n = len(raw)
    if raw[:len(MAGIC)] != MAGIC:
        if 0 < n < len(MAGIC) and MAGIC.startswith(raw):
            _fail(path, f"truncated gradflow checkpoint ({n} bytes; not even the header)")
        _fail(path, f"not a gradflow checkpoint: it starts with {raw[:12]!r}, not the "
                    f"checkpoint magic {MAGIC!r}{_guess(raw)}")
    start = len(MAGIC) + _HEADER.size
    if n < start:
        _fail(path, f"truncated gradflow checkpoint ({n} bytes; the header needs {start})")
    version, mlen = _HEADER.unpack_from(raw, len(MAGIC))
    if version > FORMAT_VERSION:
        _fail(path, f"written in checkpoint format version {version}, newer than this gradflow "
                    f"reads ({FORMAT_VERSION}); upgrade gradflow")
    if n < start + mlen:
        _fail(path, f"truncated gradflow checkpoint ({n} bytes; its manifest alone ends at byte "
                    f"{start + mlen})")
    try:
        manifest = json.loads(raw[start:start + mlen].decode("utf-8"))
        data_bytes = int(manifest["data_bytes"])
    except (ValueError, KeyError, TypeError) as exc:
        _fail(path, f"corrupt gradflow checkpoint: unreadable manifest ({exc})")
    data_start = start + mlen + (-(start + mlen) % _ALIGN)
    expected = data_start + data_bytes + _DIGEST
    if n < expected:
        _fail(path, f"truncated gradflow checkpoint: {n} bytes, expected {expected} (the write "
                    "was interrupted or the copy is incomplete)")
    if n > expected:
        _fail(path, f"corrupt gradflow checkpoint: {n - expected} unexpected bytes after the end "
                    f"({expected} bytes)")
    if hashlib.sha256(memoryview(raw)[:-_DIGEST]).digest() != raw[-_DIGEST:]:
        _fail(path, "corrupt gradflow checkpoint: its SHA-256 checksum does not match the "
                    "contents (the file was altered or damaged)")
    return manifest, memoryview(raw)[data_start:data_start + data_bytes]


def load(path: str | os.PathLike, device=None):
    """Read a checkpoint written by `gf.save`: the same structure, tensors bit for bit.

    Nothing in the file is executed: it can only produce containers, numbers, strings, tensors
    and arrays.

    Args:
        path: the checkpoint file.
        device: put every tensor and array on this device (like torch's map_location); default:
            the device each was saved from. NumPy scalars (np.float32(0.1), np.int64(7)) are
            not arrays: they always come back as NumPy scalars, whatever `device` is.

    Returns:
        The saved object.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is not a gradflow checkpoint, is truncated or corrupt, or has a
            newer format version; the message names the file.
        DeviceError: a tensor was saved on a device that is not available here and `device`
            was not given.

    Example:
        >>> ckpt = gf.load("checkpoint.gf", device="cpu")
        >>> model.load_state_dict(ckpt["model"])
    """
    path = Path(path)
    manifest, data = _read_checked(path)
    np = B.host_numpy()
    target = B.get_device(device) if device is not None else None
    tensors: dict[int, Tensor] = {}

    def device_for(saved: str) -> B.Device:
        if target is not None:
            return target
        try:
            return B.get_device(saved)
        except B.DeviceError as exc:
            raise B.DeviceError(f"{path}: holds tensors saved on {saved}, which is not usable "
                                f"here ({exc}); pass device='cpu' to load them on the CPU") \
                from None

    def host_array(i: int):
        # Array i as a NumPy array of its own (a copy: the file's buffer is not kept alive).
        m = manifest["arrays"][i]
        dtype = np.dtype(m["dtype"])
        if dtype.kind not in _KINDS:
            _fail(path, f"corrupt gradflow checkpoint: array {i} has dtype {dtype}")
        return np.frombuffer(data, dtype=dtype, count=int(np.prod(m["shape"], dtype=np.int64)),
                             offset=m["offset"]).reshape(m["shape"]).copy()

    def array(i: int):
        # Array i on the device it belongs on: `device` if given, else the one it was saved from.
        host = host_array(i)
        dev = device_for(manifest["arrays"][i]["device"])
        return dev, dev.backend.asarray(host, index=dev.index)

    def decode(node):
        if not isinstance(node, dict):
            return node
        if "T" in node:
            i = node["T"]
            if i not in tensors:  # a tensor saved once loads as one object wherever it appears
                dev, arr = array(i)
                tensors[i] = Tensor._make(arr, dev, False, None)
                if node.get("rg"):
                    tensors[i].requires_grad_(True)
            return tensors[i]
        if "A" in node:
            return array(node["A"])[1]
        if "S" in node:
            # A NumPy scalar (a step count, a saved np.float32) is host data, not an array: it
            # comes back as the same NumPy scalar whatever `device` says, never via a device.
            return host_array(node["S"])[()]
        if "d" in node:
            return {decode(k): decode(v) for k, v in node["d"]}
        if "l" in node:
            return [decode(v) for v in node["l"]]
        if "t" in node:
            return tuple(decode(v) for v in node["t"])
        if "dev" in node:
            return B.get_device(node["dev"])
        if "dtype" in node:
            return np.dtype(node["dtype"])
        _fail(path, f"corrupt gradflow checkpoint: unknown manifest entry {sorted(node)}")

    try:
        return decode(manifest["tree"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        _fail(path, f"corrupt gradflow checkpoint: bad manifest ({type(exc).__name__}: {exc})")
