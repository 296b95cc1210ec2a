"""gf.save / gf.load: bit-exact round trips, atomic writes, and clear errors for bad files."""
import hashlib
import json
import math
import os
import pickle
import struct

import numpy as np
import pytest

import gradflow as gf
from gradflow import nn, optim, serialization as S


def _bits(t):
    a = t.numpy() if isinstance(t, gf.Tensor) else np.asarray(t)
    return a.dtype.str, a.shape, a.tobytes()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "int32", "int64",
                                   "uint8", "bool"])  # gradflow has no complex tensors
def test_tensor_round_trip_is_bit_exact(tmp_path, device, dtype):
    rng = np.random.default_rng(1)
    arr = (rng.standard_normal((4, 5)) * 1e3).astype(dtype)
    if arr.dtype.kind == "f":
        arr[0, :4] = [np.nan, np.inf, -np.inf, -0.0]
    t = gf.tensor(arr, device=device)
    back = gf.load(gf.save(t, tmp_path / "t.gf"))
    assert isinstance(back, gf.Tensor) and back.device is device
    assert _bits(back) == _bits(t)


def test_shapes_grad_flags_and_non_contiguous_tensors(tmp_path):
    base = gf.randn(3, 4)
    obj = {"scalar": gf.tensor(2.5), "empty": gf.zeros(0, 3), "T": base.T,
           "leaf": gf.ones(2, requires_grad=True)}
    back = gf.load(gf.save(obj, tmp_path / "c.gf"))
    for k in obj:
        assert _bits(back[k]) == _bits(obj[k]), k
    assert back["leaf"].requires_grad and not back["T"].requires_grad
    assert back["T"].numpy().flags.c_contiguous


def test_python_values_and_containers_round_trip_exactly(tmp_path):
    obj = {
        "floats": [0.1, 1e-300, -0.0, 1 / 3, float("inf")],
        "ints": (0, -1, 2 ** 100, True, False),
        "none": None, "text": "ünïcode\n\"quoted\"",
        3: "int key", (1, "a"): "tuple key",
        "nested": [{"a": [(), []]}],
        "np": (np.float32(0.1), np.int64(7), np.arange(3, dtype=np.int16)),
        "device": gf.device("cpu"), "dtype": gf.float16,
    }
    back = gf.load(gf.save(obj, tmp_path / "p.gf"))
    assert list(back) == list(obj)  # key order kept
    assert back["floats"][:4] == obj["floats"][:4] and math.copysign(1, back["floats"][2]) == -1
    assert back["ints"] == obj["ints"] and type(back["ints"][3]) is bool
    assert back[3] == "int key" and back[(1, "a")] == "tuple key"
    assert back["nested"] == [{"a": [(), []]}] and isinstance(back["nested"][0]["a"][0], tuple)
    assert back["text"] == obj["text"] and back["none"] is None
    f32, i64, arr = back["np"]
    assert type(f32) is np.float32 and f32 == np.float32(0.1) and type(i64) is np.int64
    assert isinstance(arr, np.ndarray) and arr.dtype == np.int16 and arr.tolist() == [0, 1, 2]
    assert back["device"] is gf.device("cpu") and back["dtype"] == np.float16
    assert math.isnan(gf.load(gf.save(float("nan"), tmp_path / "n.gf")))


def test_shared_tensor_loads_as_one_object(tmp_path):
    w = gf.randn(2, 2)
    back = gf.load(gf.save({"enc": w, "dec": w, "other": gf.randn(2, 2)}, tmp_path / "s.gf"))
    assert back["enc"] is back["dec"] and back["enc"] is not back["other"]


def test_module_and_optimizer_state_round_trip_bit_exact(tmp_path, device):
    gf.manual_seed(0)
    model = nn.MLP([6, 8, 3]).to(device)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    x, y = gf.randn(5, 6, device=device), gf.randint(0, 3, (5,), device=device)
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    gf.save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "m.gf")
    ckpt = gf.load(tmp_path / "m.gf")

    model2 = nn.MLP([6, 8, 3]).to(device)
    model2.load_state_dict(ckpt["model"])
    opt2 = optim.Adam(model2.parameters(), lr=1e-2)
    opt2.load_state_dict(ckpt["opt"])
    for (k, a), (k2, b) in zip(model.state_dict().items(), model2.state_dict().items()):
        assert k == k2 and _bits(a) == _bits(b)
    opt.zero_grad()  # and the next step is identical too
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    opt2.zero_grad()
    nn.functional.cross_entropy(model2(x), y).backward()
    opt2.step()
    for a, b in zip(model.parameters(), model2.parameters()):
        assert _bits(a) == _bits(b)


def test_state_dict_of_another_architecture_is_refused(tmp_path):
    gf.save(nn.MLP([6, 8, 3]).state_dict(), tmp_path / "m.gf")
    other = nn.MLP([6, 9, 3])
    before = [p.numpy().copy() for p in other.parameters()]
    with pytest.raises(Exception, match=r"shape|\(8, 6\)|\(9, 6\)"):
        other.load_state_dict(gf.load(tmp_path / "m.gf"))
    for p, b in zip(other.parameters(), before):  # nothing half-loaded
        np.testing.assert_array_equal(p.numpy(), b)


def test_load_to_another_device(tmp_path, device):
    path = gf.save({"w": gf.randn(3, device=device)}, tmp_path / "d.gf")
    assert gf.load(path, device="cpu")["w"].device is gf.device("cpu")
    assert gf.load(path, device=device)["w"].device is device


class _OnFakeGPU:
    """An array 'on' the stand-in GPU: deliberately not a NumPy array, as a CuPy one is not."""

    def __init__(self, host):
        self.host = host


class _FakeGPUBackend:
    """A stand-in for a GPU's backend that records every array placed on it."""

    xp = np

    def __init__(self):
        self.placed = []

    def asarray(self, data, dtype=None, index=0):
        self.placed.append((np.asarray(data, dtype=dtype).copy(), index))
        return _OnFakeGPU(np.asarray(data, dtype=dtype))


def test_numpy_scalars_load_on_the_host_whatever_the_device(tmp_path):
    # A saved np.float32 / np.int64 (a step count, a hyperparameter) is host data: loading with
    # device= must give the NumPy scalar back, never a 0-d device array. The stand-in device
    # records what is placed on it: the tensor and the array go there, the scalars never do.
    backend = _FakeGPUBackend()
    fake = gf.backend.Device("cuda", 1, backend)
    obj = {"w": gf.tensor([1.0, 2.0], device="cpu"), "a": np.arange(3, dtype=np.int16),
           "lr": np.float32(0.1), "step": np.int64(7), "flag": np.bool_(True)}
    back = gf.load(gf.save(obj, tmp_path / "s.gf"), device=fake)
    assert type(back["lr"]) is np.float32 and back["lr"] == np.float32(0.1)
    assert type(back["step"]) is np.int64 and back["step"] == 7
    assert type(back["flag"]) is np.bool_ and back["flag"]
    assert back["w"].device is fake and isinstance(back["a"], _OnFakeGPU)
    placed = sorted((a.dtype.str, a.tolist(), index) for a, index in backend.placed)
    assert placed == [("<f4", [1.0, 2.0], 1), ("<i2", [0, 1, 2], 1)]


def test_numpy_scalars_load_as_numpy_scalars_on_every_device(tmp_path, device):
    path = gf.save({"step": np.int64(3), "eps": np.float32(1e-8), "t": gf.ones(2, device=device)},
                   tmp_path / "s.gf")
    for target in (None, "cpu", device):
        back = gf.load(path, device=target)
        assert type(back["step"]) is np.int64 and back["step"] == 3, target
        assert type(back["eps"]) is np.float32 and back["eps"] == np.float32(1e-8), target
        assert back["t"].device is (device if target is None else gf.device(target)), target


# --- the file format and its errors --------------------------------------------------------------
def _rewrite(path, edit_manifest=None, version=None):
    """Re-pack a checkpoint with an edited manifest or version and a valid digest."""
    raw = path.read_bytes()
    start = len(S.MAGIC) + 12
    ver, mlen = struct.unpack_from("<IQ", raw, len(S.MAGIC))
    manifest = json.loads(raw[start:start + mlen])
    data_start = start + mlen + (-(start + mlen) % 64)
    data = raw[data_start:-32]
    if edit_manifest:
        edit_manifest(manifest)
    m = json.dumps(manifest).encode()
    head = S.MAGIC + struct.pack("<IQ", version or ver, len(m)) + m
    head += b"\0" * (-len(head) % 64)
    body = head + data
    path.write_bytes(body + hashlib.sha256(body).digest())


def test_file_starts_with_magic_and_version(tmp_path):
    raw = gf.save([1], tmp_path / "v.gf").read_bytes()
    assert raw.startswith(S.MAGIC)
    assert struct.unpack_from("<I", raw, len(S.MAGIC))[0] == S.FORMAT_VERSION == 1


@pytest.mark.parametrize("content,hint", [
    (b"", "not a gradflow checkpoint"),
    (b"hello, world\n", "not a gradflow checkpoint"),
    (b"PK\x03\x04rest-of-a-zip", "ZIP archive"),
    (pickle.dumps({"w": 1}), "pickle"),
])
def test_not_a_checkpoint_names_the_file(tmp_path, content, hint):
    path = tmp_path / "model.bin"
    path.write_bytes(content)
    with pytest.raises(S.CheckpointError, match=hint) as info:
        gf.load(path)
    assert str(path) in str(info.value)


def test_truncated_checkpoint_is_detected_at_every_cut(tmp_path):
    path = gf.save({"w": gf.randn(50, 50), "step": 3}, tmp_path / "t.gf")
    raw = path.read_bytes()
    for cut in [3, len(S.MAGIC) + 5, 40, len(raw) // 2, len(raw) - 33, len(raw) - 1]:
        path.write_bytes(raw[:cut])
        with pytest.raises(S.CheckpointError, match="truncated") as info:
            gf.load(path)
        assert str(path) in str(info.value)


def test_corrupt_checkpoint_fails_its_checksum(tmp_path):
    path = gf.save({"w": gf.randn(50, 50)}, tmp_path / "c.gf")
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(S.CheckpointError, match="checksum does not match"):
        gf.load(path)
    path.write_bytes(bytes(raw) + b"x")
    with pytest.raises(S.CheckpointError, match="unexpected bytes after the end"):
        gf.load(path)


def test_newer_format_version_is_refused(tmp_path):
    path = gf.save([1, 2], tmp_path / "n.gf")
    _rewrite(path, version=2)
    with pytest.raises(S.CheckpointError, match="format version 2, newer"):
        gf.load(path)


def test_unavailable_device_says_how_to_load(tmp_path):
    path = gf.save({"w": gf.randn(3)}, tmp_path / "g.gf")

    def to_gpu(m):
        m["arrays"][0]["device"] = "cuda:7"
    _rewrite(path, to_gpu)
    if gf.cuda_device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    with pytest.raises(gf.DeviceError, match=r"saved on cuda:7.*device='cpu'") as info:
        gf.load(path)
    assert str(path) in str(info.value)
    assert gf.load(path, device="cpu")["w"].shape == (3,)


def test_object_dtype_in_manifest_is_refused(tmp_path):
    path = gf.save({"w": gf.randn(3)}, tmp_path / "o.gf")

    def to_object(m):
        m["arrays"][0]["dtype"] = "|O"
    _rewrite(path, to_object)
    with pytest.raises(S.CheckpointError, match="dtype object"):
        gf.load(path)


def test_unsaveable_object_is_named_and_nothing_is_written(tmp_path):
    with pytest.raises(TypeError, match=r"obj\['opt'\]\['state'\]\[0\]: cannot save an object "
                                        r"of type set"):
        gf.save({"opt": {"state": [{1, 2}]}}, tmp_path / "x.gf")
    cyclic = []
    cyclic.append(cyclic)
    with pytest.raises(TypeError, match="contains itself"):
        gf.save(cyclic, tmp_path / "y.gf")
    assert os.listdir(tmp_path) == []


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = gf.save({"w": gf.ones(10)}, tmp_path / "ckpt.gf")
    before = path.read_bytes()
    calls = []

    def flaky(obj):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of writing the arrays
        return memoryview(obj)
    monkeypatch.setattr(S, "memoryview", flaky, raising=False)
    with pytest.raises(KeyboardInterrupt):
        gf.save({"a": gf.zeros(10), "b": gf.zeros(10)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.gf"]


def test_missing_directory_and_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gf.save([1], tmp_path / "no" / "such" / "dir" / "c.gf")
    with pytest.raises(FileNotFoundError):
        gf.load(tmp_path / "absent.gf")


def test_saved_files_get_the_usual_permissions(tmp_path):
    # Written through a temporary file (mkstemp makes it 0600) but readable like open()'s.
    mask = os.umask(0o022)
    try:
        path = gf.save({"x": gf.ones(2)}, tmp_path / "ckpt.gf")
    finally:
        os.umask(mask)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o644)
