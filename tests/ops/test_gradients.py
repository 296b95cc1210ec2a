"""Every differentiable op, gradchecked and gradgradchecked in float64 on every backend.

Shapes (0-d, size-1 and empty dims, broadcasting pairs) and op arguments (axes, keys) are drawn
by hypothesis from the strategies in `_gradcases.CASES`; inputs stay away from kinks and poles.
"""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gradflow as gf

from _gradcases import CASES, COMPOSITES, inputs_for

# gradgradcheck differentiates every element twice: a bounded number of examples per op keeps
# the whole sweep to a few seconds per op.
EXAMPLES = settings.default.max_examples


@pytest.mark.parametrize("name", sorted(CASES) + [f"composite:{n}" for n in sorted(COMPOSITES)])
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_gradcheck(device, name, data):
    case = COMPOSITES[name.split(":")[1]] if name.startswith("composite:") else CASES[name]
    shapes, kw = data.draw(case.draw, label="shapes, kwargs")
    seed = data.draw(st.integers(0, 2**31), label="seed")
    inputs = inputs_for(case, shapes, seed, device)

    def fn(*xs):
        return case.fn(*xs, **kw)

    out = fn(*inputs)
    assert out.dtype == gf.float64 and out.device is device
    assert isinstance(out.data, device.backend.ndarray)  # 0-d results stay arrays
    assert gf.gradcheck(fn, inputs, **case.check)
    if case.gradgrad:
        assert gf.gradgradcheck(fn, inputs, **case.check)
