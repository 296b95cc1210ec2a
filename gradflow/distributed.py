"""Several processes, one model: the process group and its collectives, on MPI and NCCL.

Data-parallel training runs one process per CPU socket, GPU or machine. `mpiexec -n 4 python
train.py` (or Slurm's `srun`) starts them; each calls `init_process_group()`, learns its rank
(0 to world size - 1) from MPI, trains on its own share of the data, and the collectives below
keep the copies of the model alike: `all_reduce` sums (or averages, ...) a tensor over all ranks
in place, `broadcast` copies rank `src`'s tensor to every rank. `nn.parallel.DistributedDataParallel`
is built on them.

Backends, as ChainerMN's communicators and PyTorch's names have them:
    "mpi"   CPU tensors, reduced by MPI through mpi4py.
    "nccl"  CUDA tensors, reduced by NCCL on the GPUs (`cupy.cuda.nccl`). MPI still launches
            the processes, carries NCCL's unique id from rank 0 to the others, and serves
            `barrier` and the checks below.

Two guards keep a mistake from hanging every rank:
    * Before each collective one small allreduce on the host checks that every rank called the
      same collective on tensors of the same shape and dtype. When they differ, every rank
      raises a DistributedError that lists what each rank called.
    * A watchdog thread ends a collective that waits longer than the timeout, and an uncaught
      exception on any rank aborts all of them (as `python -m mpi4py` does): a rank that died
      or stopped early cannot leave the others waiting forever.

Example (run with `mpiexec -n 2 python this.py`):
    >>> import gradflow as gf
    >>> import gradflow.distributed as dist
    >>> dist.init_process_group()                       # "mpi": the default device is the CPU
    >>> t = gf.tensor([float(dist.get_rank())])
    >>> dist.all_reduce(t)                              # tensor([1.]) on both ranks: 0 + 1
    >>> dist.destroy_process_group()
"""
from __future__ import annotations

import array
import contextlib
import datetime
import numbers
import os
import stat
import sys
import threading
import time
import zlib

from . import backend as B
from .tensor import Tensor

try:  # only the package: MPI itself starts in init_process_group, not on import
    import mpi4py  # noqa: F401
except ImportError as _exc:
    raise ImportError(
        f"gradflow.distributed needs mpi4py and an MPI library ({_exc}); install them with the "
        "project's extra: `pip install -e '.[dist]'` in a checkout, or "
        "`pip install 'gradflow-autograd[dist]'` (mpi4py and MPICH, as wheels)"
    ) from None

__all__ = [
    "DistributedError", "ReduceOp", "init_process_group", "is_initialized", "get_rank",
    "get_world_size", "get_node_local_rank", "get_backend", "all_reduce", "broadcast",
    "broadcast_object_list", "barrier", "destroy_process_group",
]

DEFAULT_TIMEOUT = datetime.timedelta(minutes=30)  # PyTorch's default_pg_timeout
# What both backends reduce: NCCL's types (MPI has no sum of bools, no max of complex numbers).
_DTYPES = ("float16", "float32", "float64", "int8", "uint8", "int32", "uint32", "int64",
           "uint64")


class DistributedError(RuntimeError):
    """A collective cannot run: no process group, ranks that disagree, a timeout."""


class ReduceOp:
    """The reductions of `all_reduce`, by PyTorch's names; the strings ("sum") work as well."""
    SUM = "sum"
    PRODUCT = "product"
    MIN = "min"
    MAX = "max"
    AVG = "avg"


_OPS = ("sum", "product", "min", "max", "avg")
_group = None


# --- the process group ---------------------------------------------------------------------------
def init_process_group(backend: str | None = None, timeout=DEFAULT_TIMEOUT,
                       device_id=None) -> None:
    """Join the processes started by `mpiexec`/`mpirun`/`srun` into one group (collective).

    Run without a launcher, the process is a group of one, and everything below still works.

    Args:
        backend: "mpi" (CPU tensors) or "nccl" (CUDA tensors). None: "nccl" when the default
            device (GRADFLOW_DEVICE) is a GPU, else "mpi".
        timeout: how long a collective may wait for the other ranks before all are aborted with
            a message: a `datetime.timedelta` or seconds, None for no limit (default 30 minutes).
        device_id: "nccl" only: this rank's GPU (an index or "cuda:N"). Default: the rank with
            node-local rank r takes GPU r (modulo the GPUs it sees, so that ranks each shown one
            GPU by CUDA_VISIBLE_DEVICES take that one). It becomes the default device.

    Raises:
        DistributedError: already initialized; an unknown backend; "nccl" without a GPU as the
            default device or device_id.

    Example:
        >>> dist.init_process_group()
        >>> dist.get_rank(), dist.get_world_size()          # (0, 2) and (1, 2) under mpiexec -n 2
    """
    global _group
    if _group is not None:
        raise DistributedError(f"init_process_group: already initialized (backend "
                               f"'{_group.backend}'); call destroy_process_group() first")
    backend = _pick_backend(backend)
    seconds = _seconds(timeout)
    if device_id is not None and backend != "nccl":
        raise DistributedError(f"init_process_group: device_id={device_id!r} is for the 'nccl' "
                               "backend; 'mpi' reduces CPU tensors")
    MPI = _start_mpi()
    _group = _NCCLGroup(MPI, seconds, device_id) if backend == "nccl" else _MPIGroup(MPI, seconds)


def _pick_backend(backend):
    if backend is None:
        return "nccl" if B.default_device().type == "cuda" else "mpi"
    if backend not in ("mpi", "nccl"):
        raise DistributedError(f"init_process_group: unknown backend {backend!r}; gradflow has "
                               "'mpi' (CPU tensors) and 'nccl' (CUDA tensors)")
    return backend


def _seconds(timeout):
    if timeout is None:
        return None
    seconds = timeout.total_seconds() if isinstance(timeout, datetime.timedelta) else timeout
    if isinstance(seconds, bool) or not isinstance(seconds, numbers.Real) or not seconds > 0:
        raise ValueError(f"init_process_group: timeout must be a positive timedelta or number of "
                         f"seconds, or None, got {timeout!r}")
    return float(seconds)


def _start_mpi():
    try:
        from mpi4py import MPI  # MPI_Init runs here (MPI_THREAD_MULTIPLE: the watchdog aborts)
    except Exception as exc:  # mpi4py without a loadable MPI library
        raise DistributedError(
            f"init_process_group: mpi4py could not start MPI ({type(exc).__name__}: {exc}); "
            "install an MPI with the project's extra: `pip install -e '.[dist]'`") from None
    return MPI


class _MPIGroup:
    """The "mpi" backend: host arrays, reduced by MPI in place; the base of the NCCL group."""

    backend = "mpi"
    serves = "CPU tensors"

    def __init__(self, MPI, timeout) -> None:
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this machine
        self.local_rank = node.Get_rank()
        node.Free()
        self.ops = {"sum": MPI.SUM, "product": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX}
        self.watchdog = _Watchdog(timeout, self) if timeout is not None else None
        self.previous_excepthook = sys.excepthook
        if self.size > 1:
            sys.excepthook = self._abort_on_uncaught

    def takes(self, device) -> bool:
        return device.type == "cpu"

    def watch(self, what):
        return self.watchdog.watch(what) if self.watchdog is not None else contextlib.nullcontext()

    def host_all_reduce(self, array, op: str) -> None:
        self.comm.Allreduce(self.MPI.IN_PLACE, array, self.ops[op])

    def all_reduce(self, array, op: str) -> None:
        self.host_all_reduce(array, op)

    def broadcast(self, array, src: int) -> None:
        self.comm.Bcast(array, root=src)

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, message: str) -> None:
        sys.stderr.write(f"gradflow.distributed: rank {self.rank}: {message}; aborting all "
                         f"{self.size} ranks\n")
        for stream in (sys.stdout, sys.stderr):
            _wait_until_read(stream)
        self.comm.Abort(1)

    def _abort_on_uncaught(self, kind, value, tb):
        self.previous_excepthook(kind, value, tb)
        self.abort(f"uncaught {kind.__name__}, so the other ranks would wait for it forever")

    def destroy(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
        if sys.excepthook == self._abort_on_uncaught:
            sys.excepthook = self.previous_excepthook


class _NCCLGroup(_MPIGroup):
    """The "nccl" backend: CUDA arrays, reduced by NCCL on this rank's GPU; MPI for the rest."""

    backend = "nccl"

    def __init__(self, MPI, timeout, device_id=None) -> None:
        super().__init__(MPI, timeout)
        self.nccl = None
        try:
            self._start_nccl(device_id)
        except BaseException:
            self.destroy()  # no watchdog or exception hook left behind by a failed start
            raise

    def _start_nccl(self, device_id) -> None:
        try:
            from .backend import nccl
        except ImportError as exc:
            raise DistributedError(f"init_process_group('nccl'): NCCL is not usable ({exc}); "
                                   "install it with the project's extra: "
                                   "`pip install -e '.[dist-cuda12]'` (or dist-cuda13)") from None
        self.device = _nccl_device(self.local_rank, device_id)
        self.serves = f"CUDA tensors on {self.device}"
        with self.watch("init_process_group('nccl')"):
            # ChainerMN's pure_nccl way: rank 0 draws NCCL's id, MPI carries it to the others.
            uid = self.comm.bcast(nccl.unique_id() if self.rank == 0 else None, root=0)
            self.nccl = nccl.Communicator(self.size, uid, self.rank, self.device.index)

    def takes(self, device) -> bool:
        return device is self.device

    def all_reduce(self, array, op: str) -> None:
        self.nccl.all_reduce(array, op)

    def broadcast(self, array, src: int) -> None:
        self.nccl.broadcast(array, src)

    def barrier(self) -> None:
        self.device.synchronize()  # so that after it every rank's queued GPU work has finished
        self.comm.Barrier()

    def destroy(self) -> None:
        if self.nccl is not None:
            self.nccl.destroy()
        super().destroy()


def _nccl_device(local_rank: int, device_id):
    if device_id is not None:
        device = B.get_device(f"cuda:{device_id}" if isinstance(device_id, int) else device_id)
    elif B.default_device().type != "cuda":
        raise DistributedError(
            f"init_process_group('nccl'): NCCL reduces CUDA tensors, but the default device is "
            f"{B.default_device()}; set GRADFLOW_DEVICE=cuda, or use backend 'mpi' for CPU "
            "tensors")
    else:  # one GPU per rank; where each rank sees one GPU only (CUDA_VISIBLE_DEVICES), that one
        device = B.get_device(f"cuda:{local_rank % B.cuda_device_count()}")
    if device.type != "cuda":
        raise DistributedError(f"init_process_group('nccl'): device_id must name a GPU, got "
                               f"{device_id!r}")
    B.set_default_device(device)
    return device


def _wait_until_read(stream, limit: float = 2.0) -> None:
    """Flush `stream` and wait (at most `limit` s) until the launcher has read all of it.

    MPI_Abort kills every rank at once, and mpiexec stops forwarding output when it does: what
    a rank wrote just before, the traceback and the reason for the abort, could still be in
    the pipe to mpiexec and be lost (it was, now and then, in CI). Flushing is not enough;
    the bytes must have left the pipe, which FIONREAD counts.
    """
    try:
        stream.flush()
        fd = stream.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return  # a terminal or file keeps what was written
        import fcntl  # POSIX only, like mpiexec's pipes
        import termios
    except (AttributeError, OSError, ValueError, ImportError):
        return
    unread = array.array("i", [0])
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        fcntl.ioctl(fd, termios.FIONREAD, unread)
        if unread[0] == 0:
            return
        time.sleep(0.01)


class _Watchdog:
    """Aborts every rank when a collective waits longer than the timeout.

    A blocking MPI call cannot be interrupted from Python, so a thread watches the one running
    (PyTorch's NCCL watchdog does the same). It looks once a second, and costs a collective two
    attribute writes.
    """

    def __init__(self, timeout: float, group) -> None:
        self.timeout, self.group = timeout, group
        self.waiting = None  # (what, since) while a collective runs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gradflow-distributed-watchdog",
                                        daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def watch(self, what: str):
        self.waiting = (what, time.monotonic())
        try:
            yield
        finally:
            self.waiting = None

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.timeout / 4)):
            waiting = self.waiting
            if waiting is not None and time.monotonic() - waiting[1] > self.timeout:
                self.group.abort(
                    f"{waiting[0]} waited more than {self.timeout:g} s for the other ranks (the "
                    "timeout of init_process_group): one failed, stopped early, or called "
                    "another collective")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _require(what: str):
    if _group is None:
        raise DistributedError(f"{what} needs a process group: call "
                               "gradflow.distributed.init_process_group() first (under mpiexec)")
    return _group


def is_initialized() -> bool:
    """True between `init_process_group()` and `destroy_process_group()`."""
    return _group is not None


def get_rank() -> int:
    """This process's rank, 0 to `get_world_size() - 1`; rank 0 usually prints and saves."""
    return _require("get_rank").rank


def get_world_size() -> int:
    """The number of processes in the group."""
    return _require("get_world_size").size


def get_node_local_rank() -> int:
    """This process's rank among those on the same machine (which GPU it takes)."""
    return _require("get_node_local_rank").local_rank


def get_backend() -> str:
    """The group's backend: "mpi" or "nccl"."""
    return _require("get_backend").backend


def destroy_process_group() -> None:
    """Leave the group: stop its watchdog, free NCCL's communicator. MPI itself stays up (it
    ends with the process), so `init_process_group` may be called again."""
    global _group
    group = _require("destroy_process_group")
    _group = None
    group.destroy()


# --- collectives ---------------------------------------------------------------------------------
def all_reduce(tensor: Tensor, op: str = ReduceOp.SUM) -> None:
    """Reduce `tensor` over all ranks, in place: afterwards every rank holds the result.

    Args:
        tensor: a Tensor of the same shape and dtype on every rank, on the CPU ("mpi") or on
            this rank's GPU ("nccl").
        op: "sum", "product", "min", "max" or "avg" (the sum divided by the world size, for
            floating tensors), or a `ReduceOp`.

    Raises:
        DistributedError: no process group, or the ranks' calls or tensors differ (every rank
            raises, naming what each called).
        TypeError / ValueError: a tensor on a device the backend does not serve, a dtype it
            cannot reduce, an unknown op.

    Example:
        >>> t = gf.tensor([1.0, 2.0])
        >>> dist.all_reduce(t, op="avg")                     # the mean over ranks, in place
    """
    group = _require("all_reduce")
    _check_tensor(tensor, "all_reduce")
    what = f"all_reduce(shape {tensor.shape}, {tensor.dtype}, op={op!r})"
    _check_same_call(group, what)
    if op not in _OPS:
        raise ValueError(f"all_reduce: unknown op {op!r}; expected one of {', '.join(_OPS)}")
    _check_takes(group, tensor, "all_reduce")
    if op == "avg" and tensor.dtype.kind != "f":
        raise TypeError(f"all_reduce: op 'avg' needs a floating tensor, got {tensor.dtype}")
    with group.watch(what), _contiguous(tensor) as array:
        group.all_reduce(array, "sum" if op == "avg" else op)
        if op == "avg":
            array /= group.size
    tensor._version += 1  # changed in place: a graph that saved it refuses a stale backward


def broadcast(tensor: Tensor, src: int = 0) -> None:
    """Overwrite `tensor` on every rank with rank `src`'s, in place.

    Args:
        tensor: a Tensor of the same shape and dtype on every rank (CPU for "mpi", this rank's
            GPU for "nccl").
        src: the rank whose values everyone gets.

    Raises:
        DistributedError / TypeError / ValueError: as `all_reduce`; a `src` out of range.

    Example:
        >>> w = gf.randn(3)                   # different on each rank
        >>> dist.broadcast(w, src=0)          # now rank 0's everywhere
    """
    group = _require("broadcast")
    _check_tensor(tensor, "broadcast")
    what = f"broadcast(shape {tensor.shape}, {tensor.dtype}, src={src!r})"
    _check_same_call(group, what)
    _check_src(group, src, "broadcast")
    _check_takes(group, tensor, "broadcast")
    with group.watch(what), _contiguous(tensor) as array:
        group.broadcast(array, src)
    tensor._version += 1


def broadcast_object_list(object_list: list, src: int = 0) -> None:
    """Replace the items of `object_list` on every rank with rank `src`'s (pickled), in place.

    For small Python values: a configuration, a checkpoint read by rank 0, a flag. Objects are
    pickled: send only what this program made (unpickling runs code named in the data).

    Args:
        object_list: a list of the same length on every rank; on `src`, the objects to send.
        src: the sending rank.

    Example:
        >>> box = [config if dist.get_rank() == 0 else None]
        >>> dist.broadcast_object_list(box)                # box[0] is rank 0's config everywhere
    """
    group = _require("broadcast_object_list")
    if not isinstance(object_list, list):
        raise TypeError(f"broadcast_object_list: expected a list, got "
                        f"{type(object_list).__name__}")
    what = f"broadcast_object_list(length {len(object_list)}, src={src!r})"
    _check_same_call(group, what)
    _check_src(group, src, "broadcast_object_list")
    with group.watch(what):
        object_list[:] = group.comm.bcast(object_list, root=src)


def barrier() -> None:
    """Wait until every rank has reached this call (with "nccl", and its GPU work has finished).

    Example:
        >>> if dist.get_rank() == 0:
        ...     prepare_files()
        >>> dist.barrier()                       # the others wait for rank 0 here
    """
    group = _require("barrier")
    _check_same_call(group, "barrier()")
    with group.watch("barrier()"):
        group.barrier()


def _check_tensor(tensor, what):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{what}: expected a gradflow Tensor, got {type(tensor).__name__}")


def _check_takes(group, tensor, what):
    if tensor.dtype.name not in _DTYPES:
        raise TypeError(f"{what}: cannot reduce or send dtype {tensor.dtype}; collectives take "
                        f"{', '.join(_DTYPES)}")
    if not group.takes(tensor.device):
        raise B.DeviceError(f"{what}: the '{group.backend}' backend serves {group.serves}, but "
                            f"the tensor (shape {tensor.shape}) is on {tensor.device}; move it "
                            "with .to(...), or init_process_group with the other backend")


def _check_src(group, src, what):
    if isinstance(src, bool) or not isinstance(src, numbers.Integral) or \
            not 0 <= src < group.size:
        raise ValueError(f"{what}: src must be a rank from 0 to {group.size - 1}, got {src!r}")


def _check_same_call(group, what: str, flags=()) -> list:
    """One small host allreduce: do all ranks run `what` (the same collective, shape, dtype)?

    Each rank contributes a checksum of `what` and its negation; the maximum of both gives the
    largest and the smallest checksum. They differ only when some rank called something else:
    then every rank sees it, so all of them raise together instead of hanging. `flags` (bools)
    ride along: the result says, for each, whether any rank set it.
    """
    code = zlib.crc32(what.encode())
    values = B.host_numpy().array([code, -code, *flags], dtype="int64")
    with group.watch(what.splitlines()[0]):
        group.host_all_reduce(values, "max")
        if values[0] == -values[1]:
            return [bool(v) for v in values[2:]]
        calls = group.comm.allgather(what)
    raise DistributedError("the ranks called different collectives, or gave them different "
                           f"tensors or models ({_listing(calls)})")


def _listing(calls: list) -> str:
    # What each rank called. A long description (a model, a line per parameter) is shown by its
    # first line and the first line where the ranks differ.
    split = [c.splitlines() for c in calls]
    lines = [[s[i] if i < len(s) else "(no more entries)" for s in split]
             for i in range(max(map(len, split)))]
    i = next(i for i, row in enumerate(lines) if len(set(row)) > 1)
    return "; ".join(f"rank {r}: {s[0]}" + (f" ... {lines[i][r]}" if i else "")
                     for r, s in enumerate(split))


def _all_reduce_array(array, op: str, what: str) -> None:
    """`all_reduce` of a raw contiguous array, for callers that checked the call themselves
    (DistributedDataParallel, with `_check_same_call`)."""
    group = _require("all_reduce")
    with group.watch(what):
        group.all_reduce(array, op)


@contextlib.contextmanager
def _contiguous(tensor):
    # MPI and NCCL read and write one contiguous block: a strided view goes through a copy.
    array = tensor.data
    dev = tensor.device
    with dev.backend.use(dev.index):
        if array.flags.c_contiguous:
            yield array
            return
        block = array.copy()
        yield block
        array[...] = block
