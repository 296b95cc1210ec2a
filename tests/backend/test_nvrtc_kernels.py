"""gradflow's CUDA kernels compile with NVRTC, for every configuration and dtype, without a GPU.

tests/optim/test_fused_cupy_source.py checks the kernels' math by interpreting their bodies; it
cannot see C++ errors (an ambiguous `?:` on float16, say), which would surface only on a GPU, at
the first optimizer step. Here each kernel's full CUDA source is built as CuPy builds it on a GPU
and compiled with NVIDIA's runtime compiler, NVRTC, which needs no GPU and no driver: it comes as
a PyPI wheel (the `nvrtc` extra: `pip install -e '.[nvrtc]'`).

How the source is obtained, all with CuPy's own code (CuPy 14.1 or later; checked with 14.1.1
and 14.2.0):

1. The real `gradflow.backend.fused_cupy` functions run with stand-in arrays whose
   `__cupy_override_elementwise_kernel__` hook (CuPy's dispatch hook, consulted before any
   device is touched) records the `cupy.ElementwiseKernel` and its arguments instead of
   launching it: the kernels and arguments are exactly those gradflow builds.
2. CuPy's `ElementwiseKernel._decide_params_type` types the arguments and CuPy's
   `_get_elementwise_kernel_code` writes the kernel, given the argument descriptions (`_ArgInfo`)
   CuPy would compute on a GPU for contiguous arrays under 2**31 elements: 1-d `CArray`s (CuPy
   merges contiguous dimensions), scalars typed like the arrays, a 1-d `CIndexer`.
3. CuPy's `compile_with_cache` prepends its headers and assembles the compiler options; it is
   stopped at `cupy.cuda.compiler._compile_module_with_cache`, the call that would compile and
   load the module on the current device.
4. The options that layer adds are appended as it does (`-ftz=true`, `-arch=sm_XX`,
   `--device-as-default-execution-space`; no debug, jitify or PCH options, as by default), with
   an explicit architecture, and the source is compiled with `cupy.cuda.nvrtc`. This step is the
   one copied from CuPy rather than run: that layer queries the current device for its
   architecture. It is CuPy 14.1's; earlier releases added other options there (CUDA headers
   from the wheels), hence the version floor, below which the tests skip.

The architectures: sm_90 (H100/H200) and sm_75 (T4, the oldest that CUDA 13's NVRTC accepts).
The private CuPy names used here are checked to exist; if a CuPy release renames them, the tests
fail with a message saying so rather than skipping, so the check cannot vanish unnoticed.
"""
import contextlib
import functools
import pathlib
import re

import numpy as np
import pytest

GRADFLOW = pathlib.Path(__file__).resolve().parents[2] / "gradflow"
INSTALL_HINT = "install the nvrtc extra: pip install -e '.[nvrtc]'"

DTYPES = [np.float16, np.float32, np.float64]
ARCHS = [90, 75]

# One call per kernel configuration the Python code of fused_cupy can build. Only which state
# arrays are given (None or not) selects a kernel; every other option is a kernel argument.
_ADAM = dict(step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
             decoupled=False, maximize=False)
_SGD = dict(first=False, lr=0.1, momentum=0.9, dampening=0.0, nesterov=False, weight_decay=0.0,
            maximize=False)
_RMS = dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.9, maximize=False)
CONFIGS = {  # name: (fused_cupy, array factory) -> None
    "adam": lambda fc, a: fc.adam_update(a(), a(), a(), a(), None, **_ADAM),
    "amsgrad": lambda fc, a: fc.adam_update(a(), a(), a(), a(), a(), **_ADAM),
    "sgd": lambda fc, a: fc.sgd_update(a(), a(), None, **_SGD),
    "sgd_momentum": lambda fc, a: fc.sgd_update(a(), a(), a(), **_SGD),
    "rmsprop": lambda fc, a: fc.rmsprop_update(a(), a(), a(), None, None, **_RMS),
    "rmsprop_momentum": lambda fc, a: fc.rmsprop_update(a(), a(), a(), None, a(), **_RMS),
    "rmsprop_centered": lambda fc, a: fc.rmsprop_update(a(), a(), a(), a(), None, **_RMS),
    "rmsprop_centered_momentum":
        lambda fc, a: fc.rmsprop_update(a(), a(), a(), a(), a(), **_RMS),
}

# Values of CuPy's `cdef enum _ArgKind` (cupy/_core/_kernel.pxd), not visible from Python.
_ARG_KIND_NDARRAY, _ARG_KIND_INDEXER, _ARG_KIND_SCALAR = 1, 2, 3


@functools.cache
def _cupy():
    """CuPy with a working NVRTC, or a pytest skip saying what is missing."""
    try:
        import cupy
        from cupy.cuda import nvrtc
    except ImportError as exc:
        pytest.skip(f"CuPy is not installed ({exc}); {INSTALL_HINT}")
    if tuple(int(n) for n in re.findall(r"\d+", cupy.__version__)[:2]) < (14, 1):
        pytest.skip(f"CuPy {cupy.__version__} is older than 14.1, whose compile step this test "
                    f"reproduces; {INSTALL_HINT}")
    try:
        nvrtc.getVersion()
    except Exception as exc:  # the library is loaded on first use: missing or broken
        pytest.skip(f"CuPy cannot load NVRTC ({type(exc).__name__}: {str(exc).strip()}); "
                    f"{INSTALL_HINT}")
    return cupy


class _Array:
    """Stands in for a cupy.ndarray of one dtype: records the kernel launches it takes part in."""

    device = contextlib.nullcontext()  # fused_cupy runs each launch under `with p.device:`

    def __init__(self, dtype, launches):
        self.dtype = np.dtype(dtype)
        self._launches = launches

    def __cupy_override_elementwise_kernel__(self, kernel, *args, **kwargs):
        self._launches.append((kernel, args))


def _launch(config, dtype):
    """The (ElementwiseKernel, arguments) that fused_cupy launches for `config` on `dtype`."""
    _cupy()
    from gradflow.backend import fused_cupy

    launches = []
    CONFIGS[config](fused_cupy, lambda: _Array(dtype, launches))
    assert len(launches) == 1, f"{config}: expected one kernel launch, got {len(launches)}"
    return launches[0]


def _cuda_source(kernel, args, dtype):
    """The CUDA source and NVRTC options CuPy builds for a launch of `kernel` on `dtype` arrays.

    Options that CuPy adds at compile time (architecture and the like) are not included.
    """
    cupy = _cupy()
    compiler = cupy.cuda.compiler
    try:
        from cupy._core import _carray, _kernel, _scalar, core
        get_code = _kernel._get_elementwise_kernel_code
        make_info = _kernel._ArgInfo
        compiler._compile_module_with_cache  # the call intercepted below  # noqa: B018
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"CuPy {cupy.__version__} no longer has the internals this test uses to "
                    f"build a kernel's source ({exc}); update tests/backend/test_nvrtc_kernels.py")

    dtype = np.dtype(dtype)
    is_array = [isinstance(a, _Array) for a in args]
    in_types, _, type_map = kernel._decide_params_type(
        tuple(dtype if arr else None for arr in is_array[:kernel.nin]),
        tuple(dtype for _ in range(kernel.nout)))
    infos = [make_info(_ARG_KIND_NDARRAY, cupy.ndarray, dtype, 1, True, True) if arr else
             make_info(_ARG_KIND_SCALAR, _scalar.CScalar, np.dtype(t), 0, True, True)
             for arr, t in zip(is_array, in_types + (dtype,) * kernel.nout)]
    infos.append(make_info(_ARG_KIND_INDEXER, _carray.Indexer, None, 1, True, True))
    code = get_code(tuple(infos), type_map, kernel.params, kernel.operation, kernel.name,
                    kernel.preamble, **kernel.kwargs)
    # A wrong _ArgKind value would silently change the generated parameter list.
    assert "CIndexer<1, 1> _ind" in code, code
    assert re.search(r"CArray<\w+, 1, 1, 1> _raw_param\b", code), code

    captured = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compiler, "_compile_module_with_cache",
                   lambda source, options=(), **kw: captured.append((source, options)))
        try:
            core.compile_with_cache(code, kernel.kwargs.get("options", ()))
        except RuntimeError as exc:
            if "CUDA headers" not in str(exc):
                raise
            # cuda_fp16.h and friends come with the nvidia-cuda-runtime-cu12 wheel (or a toolkit).
            pytest.skip(f"CuPy finds no CUDA headers ({exc}); {INSTALL_HINT}")
    assert len(captured) == 1, "compile_with_cache did not reach _compile_module_with_cache"
    return captured[0]


def _nvrtc_compile(source, options, name):
    """Compile with NVRTC to a cubin, as CuPy does; returns None, or NVRTC's log on failure."""
    nvrtc = _cupy().cuda.nvrtc
    prog = nvrtc.createProgram(source, name, (), ())
    try:
        nvrtc.compileProgram(prog, options)
        assert nvrtc.getCUBIN(prog), "NVRTC returned an empty cubin"
        return None
    except nvrtc.NVRTCError as exc:
        return f"{exc}\n{nvrtc.getProgramLog(prog)}"
    finally:
        nvrtc.destroyProgram(prog)


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: f"sm_{a}")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("config", CONFIGS)
def test_kernel_compiles(config, dtype, arch):
    nvrtc = _cupy().cuda.nvrtc
    if arch not in nvrtc.getSupportedArchs():
        pytest.skip(f"NVRTC {nvrtc.getVersion()} cannot compile for sm_{arch}")
    kernel, args = _launch(config, dtype)
    source, options = _cuda_source(kernel, args, dtype)
    # What cupy.cuda.compiler adds before calling NVRTC, in its order, with an explicit arch.
    options = options + ("-ftz=true", f"-arch=sm_{arch}", "--device-as-default-execution-space")
    log = _nvrtc_compile(source, options, f"{kernel.name}.cu")
    if log is not None:
        numbered = "\n".join(f"{n:3d} {line}" for n, line in enumerate(source.splitlines(), 1))
        versions = f"CuPy {_cupy().__version__}, NVRTC {'.'.join(map(str, nvrtc.getVersion()))}"
        pytest.fail(f"NVRTC cannot compile {kernel.name} ({config}) for {np.dtype(dtype).name} "
                    f"on sm_{arch} ({versions}):\n{log}\nCUDA source:\n{numbered}",
                    pytrace=False)


def test_configs_are_distinct_kernels():
    # Each configuration above must build its own kernel, or one of them is missing.
    names = [_launch(config, np.float32)[0].name for config in CONFIGS]
    assert len(set(names)) == len(names), names


def test_no_kernels_elsewhere():
    # This file compiles the kernels of fused_cupy.py; CUDA code written elsewhere in gradflow
    # would go unchecked, so a new place must be added here.
    pattern = re.compile(r"\b(ElementwiseKernel|ReductionKernel|RawKernel|RawModule)\(|"
                         r"\bfuse\(")
    found = {p.relative_to(GRADFLOW).as_posix() for p in GRADFLOW.rglob("*.py")
             if pattern.search(p.read_text(encoding="utf-8"))}
    assert found <= {"backend/fused_cupy.py"}, f"CUDA kernels written outside fused_cupy: {found}"
