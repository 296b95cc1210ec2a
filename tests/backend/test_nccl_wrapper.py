"""gradflow.backend.nccl without a GPU: the calls it makes into CuPy's NCCL binding.

NCCL needs GPUs to run, so no collective runs here. What can be checked: the arguments each
wrapper passes (pointers, a count of elements rather than bytes, NCCL's dtype and op codes, the
current stream), against a stand-in `cupy.cuda.nccl`; and, where CuPy finds libnccl (the
`nvidia-nccl-cu12` wheel), that CuPy's real signatures take them in that order.
"""
import importlib
import inspect
import re
import sys
import types

import pytest


class _Recorder:
    calls = []

    def __init__(self, *args):
        _Recorder.calls.append(("init",) + args)

    def allReduce(self, *args):
        _Recorder.calls.append(("allReduce",) + args)

    def bcast(self, *args):
        _Recorder.calls.append(("bcast",) + args)

    def destroy(self):
        _Recorder.calls.append(("destroy",))


def _fake_cupy(available=True):
    nccl = types.SimpleNamespace(available=available, NcclCommunicator=_Recorder,
                                 get_unique_id=lambda: b"u" * 128)
    for i, name in enumerate(["FLOAT16", "FLOAT32", "FLOAT64", "INT8", "UINT8", "INT32",
                              "UINT32", "INT64", "UINT64", "SUM", "PROD", "MIN", "MAX"]):
        setattr(nccl, f"NCCL_{name}", 100 + i)
    stream = types.SimpleNamespace(ptr=777, synchronize=lambda: None)
    cuda = types.SimpleNamespace(nccl=nccl, Device=lambda i: _NullContext(),
                                 get_current_stream=lambda: stream)
    return types.SimpleNamespace(cuda=cuda), nccl


class _NullContext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _import_with(monkeypatch, available=True):
    cupy, nccl = _fake_cupy(available)
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy.cuda", cupy.cuda)
    monkeypatch.setitem(sys.modules, "cupy.cuda.nccl", nccl)
    monkeypatch.delitem(sys.modules, "gradflow.backend.nccl", raising=False)
    import gradflow.backend
    # Recorded before the import sets it, so that the stand-in is gone after the test.
    monkeypatch.setattr(gradflow.backend, "nccl", None, raising=False)
    mod = importlib.import_module("gradflow.backend.nccl")
    return mod, nccl


class _Array:
    def __init__(self, dtype, size):
        self.dtype, self.size = types.SimpleNamespace(name=dtype), size
        self.data = types.SimpleNamespace(ptr=4096)


def test_the_wrappers_pass_pointers_counts_codes_and_the_stream(monkeypatch):
    mod, nccl = _import_with(monkeypatch)
    _Recorder.calls.clear()
    comm = mod.Communicator(2, b"u" * 128, 1, index=1)
    comm.all_reduce(_Array("float32", 10), "max")
    comm.broadcast(_Array("int64", 3), root=0)
    comm.destroy()
    assert _Recorder.calls == [
        ("init", 2, b"u" * 128, 1),
        ("allReduce", 4096, 4096, 10, nccl.NCCL_FLOAT32, nccl.NCCL_MAX, 777),  # in place
        ("bcast", 4096, 3, nccl.NCCL_INT64, 0, 777),
        ("destroy",),
    ]
    assert mod.unique_id() == b"u" * 128


def test_the_collectives_dtypes_are_nccls(monkeypatch):
    mod, _ = _import_with(monkeypatch)
    mpi4py = pytest.importorskip("mpi4py")  # noqa: F841
    import gradflow.distributed as dist
    assert set(dist._DTYPES) == set(mod._DTYPES)  # what distributed accepts, NCCL can reduce
    assert set(dist._OPS) - {"avg"} == set(mod._OPS)


def test_without_libnccl_the_import_fails(monkeypatch):
    with pytest.raises(ImportError, match="libnccl"):
        _import_with(monkeypatch, available=False)


def test_cupys_real_signatures_take_the_arguments_in_this_order():
    nccl = pytest.importorskip("cupy.cuda.nccl", reason="CuPy is not installed")
    if not getattr(nccl, "available", False):
        pytest.skip("CuPy found no libnccl (pip install nvidia-nccl-cu12 to run this check)")
    sig = {name: re.findall(r"\w+ (\w+)[,)]", getattr(nccl.NcclCommunicator, name).__doc__
                            .splitlines()[0]) for name in ("allReduce", "bcast")}
    assert sig["allReduce"] == ["sendbuf", "recvbuf", "count", "datatype", "op", "stream"]
    assert sig["bcast"] == ["buff", "count", "datatype", "root", "stream"]
    assert len(nccl.get_unique_id()) == 128  # drawn without a GPU
    assert inspect.isclass(nccl.NcclCommunicator)
