"""NCCL collectives on CuPy arrays: the GPU half of `gradflow.distributed`.

NCCL moves the data between GPUs (over NVLink, PCIe or the network) without a copy to the host.
Its communicator is made from a unique id that one rank draws and the others receive: here over
MPI, as ChainerMN's `pure_nccl` communicator does (`gradflow.distributed` does that part).
Each call is queued on the current CUDA stream, like a kernel: the host does not wait for it.

libnccl itself comes from NVIDIA's `nvidia-nccl-cu12` / `nvidia-nccl-cu13` wheels (the project's
`dist-cuda12` / `dist-cuda13` extras), which CuPy finds by itself.
"""
import cupy
from cupy.cuda import nccl

if not nccl.available:  # CuPy imports without libnccl (and warns); its names are missing then
    raise ImportError("CuPy found no libnccl")

# The dtypes NCCL reduces; a bool or complex array has no NCCL type.
_DTYPES = {
    "float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64,
    "int8": nccl.NCCL_INT8, "uint8": nccl.NCCL_UINT8, "int32": nccl.NCCL_INT32,
    "uint32": nccl.NCCL_UINT32, "int64": nccl.NCCL_INT64, "uint64": nccl.NCCL_UINT64,
}
_OPS = {"sum": nccl.NCCL_SUM, "product": nccl.NCCL_PROD, "min": nccl.NCCL_MIN,
        "max": nccl.NCCL_MAX}


def unique_id() -> bytes:
    """A new NCCL unique id (128 bytes): drawn by rank 0, sent to every rank to join it."""
    return nccl.get_unique_id()


class Communicator:
    """One rank's NCCL communicator, on GPU `index`.

    Args:
        world_size: the number of ranks (one GPU each).
        uid: the unique id from `unique_id()` on rank 0, the same on every rank.
        rank: this process's rank, 0 <= rank < world_size.
        index: the GPU this rank uses.

    Example:
        >>> comm = Communicator(2, uid, rank, index=rank)
        >>> comm.all_reduce(cupy.ones(4, cupy.float32), "sum")    # in place
    """

    def __init__(self, world_size: int, uid: bytes, rank: int, index: int) -> None:
        self.index = index
        with cupy.cuda.Device(index):  # ncclCommInitRank binds the communicator to this GPU
            self._comm = nccl.NcclCommunicator(world_size, uid, rank)

    def all_reduce(self, array, op: str) -> None:
        """Reduce the C-contiguous `array` over all ranks with `op`, in place, on the current
        stream."""
        with cupy.cuda.Device(self.index):
            stream = cupy.cuda.get_current_stream().ptr
            self._comm.allReduce(array.data.ptr, array.data.ptr, array.size,
                                 _DTYPES[array.dtype.name], _OPS[op], stream)

    def broadcast(self, array, root: int) -> None:
        """Overwrite the C-contiguous `array` with rank `root`'s, on the current stream."""
        with cupy.cuda.Device(self.index):
            stream = cupy.cuda.get_current_stream().ptr
            self._comm.bcast(array.data.ptr, array.size, _DTYPES[array.dtype.name], root, stream)

    def destroy(self) -> None:
        """Free the communicator (after the queued collectives have finished)."""
        with cupy.cuda.Device(self.index):
            cupy.cuda.get_current_stream().synchronize()
        self._comm.destroy()
