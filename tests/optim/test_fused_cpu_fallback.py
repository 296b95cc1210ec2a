"""A Numba that is installed but cannot be imported (built for another NumPy, a broken install):
the default CPU Adam update falls back to the NumPy passes with one warning; asked for by name,
it is an error naming the `fast` extra."""
import importlib.abc
import importlib.util
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import gradflow as gf
import gradflow.backend
import gradflow.nn as nn
import gradflow.optim as optim
from gradflow.backend import fused_numpy

CPU = "cpu"  # these tests are about the CPU update: every tensor is pinned there


def _adam_bits(steps=3, shape=(3, 4)):
    """Parameter and moments after `steps` Adam steps on fixed gradients, as bytes."""
    rng = np.random.default_rng(7)
    p = nn.Parameter(gf.tensor(rng.standard_normal(shape), dtype=gf.float32, device=CPU))
    opt = optim.Adam([p], lr=1e-2)
    for _ in range(steps):
        p.grad = gf.tensor(rng.standard_normal(shape), dtype=gf.float32, device=CPU)
        opt.step()
    s = opt.state[p]
    return [p.numpy().tobytes(), s["exp_avg"].numpy().tobytes(),
            s["exp_avg_sq"].numpy().tobytes()]


class _BrokenNumba(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds a `numba` whose import raises `error`, as a Numba built for another NumPy does
    (an ImportError), or a broken install can (e.g. an AttributeError from a NumPy API that
    Numba's build expects)."""

    def __init__(self, error):
        self.error = error

    def find_spec(self, name, path=None, target=None):
        if name == "numba":
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        raise self.error


@pytest.fixture
def numpy_reference():
    """The NumPy passes' result, computed before Numba is broken."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fused_numpy, "_IMPL", "numpy")
        return _adam_bits()


@pytest.fixture(params=["ImportError", "AttributeError"])
def broken_numba(request, numpy_reference, monkeypatch):
    """Numba 'installed' (the default choice made) but failing to import; restored after."""
    # Forget every trace of an earlier successful import, so the next one really runs.
    monkeypatch.setattr(fused_numpy, "_nb", None)
    monkeypatch.delitem(sys.modules, "gradflow.backend.fused_numba", raising=False)
    monkeypatch.delattr(gradflow.backend, "fused_numba", raising=False)
    monkeypatch.delitem(sys.modules, "numba", raising=False)
    error = {"ImportError": ImportError("Numba needs NumPy 2.2 or less (simulated)"),
             "AttributeError": AttributeError("module 'numpy' has no attribute 'long' "
                                              "(simulated)")}[request.param]
    monkeypatch.setattr(sys, "meta_path", [_BrokenNumba(error), *sys.meta_path])
    # The state right after `import gradflow` on a machine where find_spec sees Numba.
    monkeypatch.setattr(fused_numpy, "_IMPL", "numba")
    monkeypatch.setattr(fused_numpy, "_numba_asked_by", None)
    return request.param


def test_default_numba_that_fails_to_import_falls_back_with_one_warning(broken_numba,
                                                                       numpy_reference):
    with pytest.warns(RuntimeWarning) as record:
        got = _adam_bits()
    messages = [str(w.message) for w in record if "Numba" in str(w.message)]
    assert len(messages) == 1, messages  # one warning, not one per step or parameter
    assert broken_numba in messages[0]  # names the error
    assert "GRADFLOW_FUSED_CPU=numpy" in messages[0] and "gradflow-autograd[fast]" in messages[0]
    assert got == numpy_reference  # the NumPy passes' bits
    assert fused_numpy.fused_cpu_impl() == "numpy"  # it says what it now runs
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no further warning on later steps
        assert _adam_bits() == numpy_reference


def test_numba_asked_for_by_environment_fails_clearly(broken_numba, monkeypatch):
    monkeypatch.setattr(fused_numpy, "_numba_asked_by", "GRADFLOW_FUSED_CPU=numba")
    with pytest.raises(ImportError, match=r"GRADFLOW_FUSED_CPU=numba asked for the Numba CPU "
                                          r"update, but Numba failed to import") as info:
        _adam_bits()
    assert broken_numba in str(info.value) and "gradflow-autograd[fast]" in str(info.value)


def test_numba_asked_for_by_call_fails_at_once_and_changes_nothing(broken_numba, monkeypatch):
    monkeypatch.setattr(fused_numpy, "_IMPL", "numpy")
    with pytest.raises(ImportError, match=r"fused_cpu_impl\('numba'\) asked for.*"
                                          r"gradflow-autograd\[fast\]") as info:
        fused_numpy.fused_cpu_impl("numba")
    assert broken_numba in str(info.value)
    assert fused_numpy.fused_cpu_impl() == "numpy"


_STEP = """
import warnings
import numpy as np
import gradflow as gf
from gradflow.backend import fused_numpy
warnings.simplefilter("always")
p = gf.nn.Parameter(gf.ones(4, device="cpu"))
opt = gf.optim.Adam([p], lr=0.1)
for _ in range(2):
    p.grad = gf.tensor([1.0, -2.0, 3.0, 0.5], device="cpu")
    opt.step()
print(fused_numpy.fused_cpu_impl(), p.numpy().tobytes().hex())
"""


def test_a_broken_numba_on_the_path_at_import_time(tmp_path):
    # The whole path from `import gradflow`: find_spec sees this Numba, importing it fails.
    fake = tmp_path / "numba"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        'raise ImportError("Numba needs NumPy 2.2 or less (simulated)")\n')
    env = {k: v for k, v in os.environ.items()
           if k not in ("GRADFLOW_FUSED_CPU", "GRADFLOW_DEVICE")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), *filter(None, [env.get("PYTHONPATH")])])

    def run(**extra):
        return subprocess.run([sys.executable, "-c", _STEP], env={**env, **extra},
                              capture_output=True, text=True, timeout=120)

    broken = run()
    assert broken.returncode == 0, broken.stderr
    assert broken.stderr.count("Numba is installed but failed to import") == 1, broken.stderr
    assert "Numba needs NumPy 2.2 or less (simulated)" in broken.stderr
    reference = run(GRADFLOW_FUSED_CPU="numpy")
    assert reference.returncode == 0 and "Numba" not in reference.stderr, reference.stderr
    assert broken.stdout.split() == reference.stdout.split()  # "numpy" and the same bits
    assert broken.stdout.split()[0] == "numpy"
    asked = run(GRADFLOW_FUSED_CPU="numba")
    assert asked.returncode != 0
    assert "GRADFLOW_FUSED_CPU=numba asked for the Numba CPU update" in asked.stderr
    assert "gradflow-autograd[fast]" in asked.stderr
