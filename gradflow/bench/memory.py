"""Peak memory of a short training run: tracemalloc on the CPU, the CuPy memory pool on a GPU.

On the CPU, NumPy reports every array it allocates to Python's tracemalloc, so the traced peak
between start and stop is the most memory the run held at once: parameters, gradients,
optimizer state, activations and temporaries (and the Python objects around them).

On a GPU, CuPy keeps freed blocks in its pool for reuse instead of returning them to the driver,
so once the pool's free blocks are handed back, the bytes the pool holds after the run bound the
run's peak from above. But the pool also holds whatever was alive before the run (the random
generator's state, arrays of earlier runs or tests), so the figure is the increase over a
baseline read just before building: the pool's total after the run minus the bytes in use
before it. That is exact when the pool held no free blocks at the baseline, which is what
emptying it first ensures (up to fragments of blocks still partly in use).

Both measure after one step of a throwaway copy, so one-time costs (imports, compiled kernels)
are left out.
"""
from __future__ import annotations

import gc
import tracemalloc

from .workloads import Unavailable, Workload

__all__ = ["training_peak", "GPU_METHOD"]

GPU_METHOD = "cupy memory pool, over baseline"


def training_peak(workload: Workload, impl: str, device, steps: int = 3) -> dict:
    """Peak bytes of building `workload`'s `impl` contender and running it `steps` times.

    Args:
        workload: a training workload (an MLP step); anything with `build(impl, device)`
            returning a callable that runs one step.
        impl: 'gradflow' or 'hand' (PyTorch's allocator is invisible to both methods).
        device: a gradflow Device (its `type`, `index`, `backend` and `synchronize()` are used).
        steps: timed-callable calls to run after building.

    Returns:
        On the CPU, {"method": "tracemalloc", "peak_bytes": n}. On a GPU,
        {"method": GPU_METHOD, "peak_bytes": n, "baseline_bytes": b, "held_bytes": h}: `n` is
        the pool's total after the run minus `b`, the bytes in use just before building (never
        below 0), and `h` what the run still holds at its end (parameters, gradients, optimizer
        state) over the same baseline.

    Raises:
        Unavailable: the contender cannot run here.

    Example:
        >>> import gradflow as gf
        >>> from gradflow.bench.workloads import workloads
        >>> w = next(w for w in workloads("tiny") if w.key == "mlp_step")
        >>> training_peak(w, "gradflow", gf.device("cpu"))["method"]
        'tracemalloc'
    """
    if impl == "torch":
        raise Unavailable("PyTorch's allocator is not seen by tracemalloc or CuPy's pool")
    # One step on a throwaway copy first: what a process pays once (imports, the compiled
    # optimizer kernel, BLAS buffers, the GPU's random generator) is not memory the training
    # run holds.
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
    # Free blocks at the baseline would be reused by the run without growing the pool, and
    # counted as the run's own: hand them back to the driver before reading it.
    backend.free_memory_pool(index)
    baseline = backend.memory_pool_bytes(index)[0]
    run = workload.build(impl, device)
    for _ in range(steps):
        run()
    device.synchronize()
    used, total = backend.memory_pool_bytes(index)
    del run
    gc.collect()
    backend.free_memory_pool(index)
    return {"method": GPU_METHOD, "peak_bytes": max(0, int(total) - int(baseline)),
            "baseline_bytes": int(baseline), "held_bytes": max(0, int(used) - int(baseline))}
