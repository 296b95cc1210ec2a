"""The CUDA backend: CuPy arrays, cupyx.scatter_add, one seeded generator per GPU."""
import cupy
import cupyx

from . import debug

xp = cupy
ndarray = cupy.ndarray
name = "cupy"
synchronous = False  # reading a value back waits for the GPU (a sync)

_rngs: dict = {}
_seed = None


def device_count() -> int:
    """Number of CUDA GPUs CuPy can see (0 when the runtime or driver is missing)."""
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # CUDARuntimeError without a driver; other errors for missing libraries
        return 0


def rng(index: int = 0):
    """The random generator of GPU `index` (seeded by `manual_seed`)."""
    g = _rngs.get(index)
    if g is None:
        with cupy.cuda.Device(index):
            g = cupy.random.default_rng(_seed)
        _rngs[index] = g
    return g


def randperm(n: int, index: int = 0):
    """A random permutation of 0..n-1 (int64) on GPU `index`.

    Sorting uniform draws: CuPy's Generator has no `permutation` in every release.
    """
    with cupy.cuda.Device(index):
        return cupy.argsort(rng(index).random(n)).astype(cupy.int64, copy=False)


def broadcast_to(a, shape):
    """cupy.broadcast_to(a, shape): a view of `a` repeated along the broadcast axes."""
    return cupy.broadcast_to(a, shape)


def use(index: int = 0):
    """A context manager making GPU `index` current, so new arrays are allocated there."""
    return cupy.cuda.Device(index)


def manual_seed(seed: int) -> None:
    """Re-seed every GPU's generator (each GPU gets the same seed, like torch.manual_seed)."""
    global _seed
    _seed = seed
    _rngs.clear()


def asarray(data, dtype=None, index: int = 0):
    """Return `data` as a CuPy array on GPU `index`, copying from the host when needed."""
    with cupy.cuda.Device(index):
        return cupy.asarray(data, dtype=dtype)


def to_host(a):
    """Copy a CuPy array to a NumPy array on the host."""
    return cupy.asnumpy(a)


def scatter_add(target, index, values) -> None:
    """target[index] += values, accumulating repeated indices (cupyx.scatter_add)."""
    cupyx.scatter_add(target, index, values)


def synchronize(index: int = 0) -> None:
    """Wait for all work queued on GPU `index`."""
    cupy.cuda.Device(index).synchronize()


def check(failed, make_error) -> None:
    """Raise `make_error()` when the 0-d bool `failed` is true, in debug mode only: reading a
    GPU value waits for the GPU, so by default it stays unread (see `debug`)."""
    if debug.is_debug() and bool(failed):
        raise make_error()


def device_name(index: int = 0) -> str:
    """The GPU's product name."""
    props = cupy.cuda.runtime.getDeviceProperties(index)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def memory_pool_bytes(index: int = 0) -> tuple[int, int]:
    """(used, total) bytes of CuPy's default memory pool on GPU `index`.

    The pool keeps freed blocks for reuse, so after `free_memory_pool` and a run, `total` is the
    most the run held at once (its peak).
    """
    with cupy.cuda.Device(index):  # the pool reports on the current device
        pool = cupy.get_default_memory_pool()
        return pool.used_bytes(), pool.total_bytes()


def free_memory_pool(index: int = 0) -> None:
    """Give the unused blocks of CuPy's default memory pool on GPU `index` back to the driver."""
    with cupy.cuda.Device(index):
        cupy.get_default_memory_pool().free_all_blocks()


def conv_kernels():
    """None: on a GPU gradflow.ops.conv runs its CuPy code (each tap's slice of the whole batch
    is one kernel launch, and cuBLAS does the products)."""
    return None


from .fused_cupy import adam_update, sgd_update, rmsprop_update  # noqa: E402,F401  (optimizers)
