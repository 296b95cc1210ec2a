"""Peak memory of a short training run: tracemalloc on the CPU, the CuPy memory pool on a GPU.

On the CPU, NumPy reports every array it allocates to Python's tracemalloc, so the traced peak
between start and stop is the most memory the run held at once: parameters, gradients,
optimizer state, activations and temporaries (and the Python objects around them). On a GPU,
CuPy keeps freed blocks in its pool for reuse instead of returning them to the driver, so after
emptying the pool first, the bytes it holds once the run ends are the run's peak. Both
measure after one step of a throwaway copy, so one-time costs (imports, compiled kernels) are
left out.
"""
from __future__ import annotations

import gc
import tracemalloc

from .workloads import Unavailable, Workload

__all__ = ["training_peak"]


def training_peak(workload: Workload, impl: str, device, steps: int = 3) -> dict:
    """Peak bytes of building `workload`'s `impl` contender and running it `steps` times.

    Args:
        workload: a training workload (an MLP step).
        impl: 'gradflow' or 'hand' (PyTorch's allocator is invisible to both methods).
        device: a gradflow Device.
        steps: timed-callable calls to run after building.

    Returns:
        {"method": "tracemalloc", "peak_bytes": n} on the CPU, or
        {"method": "cupy memory pool", "peak_bytes": n} on a GPU.

    Raises:
        Unavailable: the contender cannot run here.
    """
    if impl == "torch":
        raise Unavailable("PyTorch's allocator is not seen by tracemalloc or CuPy's pool")
    # One step on a throwaway copy first: what a process pays once (imports, the compiled
    # optimizer kernel, BLAS buffers) is not memory the training run holds.
    warm = workload.build(impl, device)
    warm()
    del warm
    gc.collect()
    if device.type == "cpu":
        tracemalloc.start()
        try:
            run = workload.build(impl, device)
            for _ in range(steps):
                run()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        return {"method": "tracemalloc", "peak_bytes": int(peak)}
    backend, index = device.backend, device.index
    device.synchronize()
    backend.free_memory_pool(index)
    run = workload.build(impl, device)
    for _ in range(steps):
        run()
    device.synchronize()
    peak = backend.memory_pool_bytes(index)[1]
    del run
    gc.collect()
    backend.free_memory_pool(index)
    return {"method": "cupy memory pool", "peak_bytes": int(peak)}
