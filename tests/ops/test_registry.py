"""Every differentiable Function in gradflow has a gradient test case, and nothing else does."""
import importlib
import inspect
import pkgutil

import gradflow as gf
from gradflow.autograd import Function

from _gradcases import CASES


def _import_all_gradflow_modules():
    # Functions register themselves when their module is imported: import every module so a
    # new op cannot hide from this test by not being imported by gradflow/__init__.
    for info in pkgutil.walk_packages(gf.__path__, prefix="gradflow."):
        if info.name.startswith("gradflow.backend.cupy"):
            continue  # needs CuPy; defines no Function
        try:
            importlib.import_module(info.name)
        except ImportError:
            pass  # an optional dependency (matplotlib, ...) that is not installed


def _differentiable_functions():
    _import_all_gradflow_modules()
    return {name: cls for name, cls in Function.registry.items()
            if cls.__module__.startswith("gradflow.")
            and getattr(cls, "differentiable", True)}


def test_every_differentiable_function_has_a_gradient_case():
    missing = sorted(set(_differentiable_functions()) - set(CASES))
    assert not missing, (
        f"differentiable Functions without a gradient test case: {missing}; add a Case for "
        "each to CASES in tests/ops/_gradcases.py (or set differentiable = False on the class)"
    )


def test_no_case_names_an_unknown_function():
    known = _differentiable_functions()
    stale = sorted(set(CASES) - set(known))
    assert not stale, f"cases for Functions that do not exist (or are not differentiable): {stale}"


def test_the_registry_sees_subclasses_and_non_differentiable_markers():
    class _Probe(Function):  # defined here, so outside gradflow: the tests above ignore it
        def forward(self, x):
            return x

    assert Function.registry["_Probe"] is _Probe
    assert Function.registry["Equal"].differentiable is False
    assert Function.registry["ArgMax"].differentiable is False
    assert getattr(Function.registry["Mul"], "differentiable", True) is True


def _public_objects(module):
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj) or inspect.isclass(obj):
            yield name, obj


def _op_and_creation_modules():
    import gradflow.creation
    import gradflow.ops
    mods = [gradflow.creation, gradflow.testing]
    for info in pkgutil.iter_modules(gradflow.ops.__path__, prefix="gradflow.ops."):
        mods.append(importlib.import_module(info.name))
    return mods


def test_every_public_function_and_class_has_a_docstring():
    missing = [f"{m.__name__}.{name}" for m in _op_and_creation_modules()
               for name, obj in _public_objects(m) if not (obj.__doc__ or "").strip()]
    assert not missing, f"public functions/classes without a docstring: {missing}"


def test_every_public_tensor_method_has_a_docstring():
    missing = [name for name, obj in vars(gf.Tensor).items()
               if not name.startswith("_") and callable(obj) and not (obj.__doc__ or "").strip()]
    assert not missing, f"Tensor methods without a docstring: {missing}"
    assert "Ties" in gf.Tensor.max.__doc__  # the function's contract, on the method too


def test_the_user_facing_functions_document_args_returns_and_an_example():
    # Everything gf.* takes from ops/creation/testing carries the full PyTorch-style docstring.
    import gradflow.creation
    import gradflow.ops
    lacking = []
    for m in _op_and_creation_modules():
        for name, obj in _public_objects(m):
            if not inspect.isfunction(obj) or getattr(gf, name, None) is not obj:
                continue
            doc = obj.__doc__ or ""
            parts = ["Example"] + (["Args:"] if inspect.signature(obj).parameters else [])
            if obj is not gf.manual_seed:
                parts.append("Returns:")
            missing = [p for p in parts if p not in doc]
            if missing:
                lacking.append(f"{m.__name__}.{name} lacks {missing}")
    assert not lacking, "\n".join(lacking)
