"""Helpers shared by the op families: axis normalisation and shared docstrings."""
from __future__ import annotations

import re


def doc(template: str, **fields):
    """Decorator: the function's docstring is `template` with its {fields} filled in, so
    docstrings that differ in a few words are written once (help() shows the whole text).

    A field's continuation lines are indented like its placeholder's line (on the first line,
    like the body); an empty field that leaves two blank lines in a row leaves one.
    """
    def indent(line):
        return line[:len(line) - len(line.lstrip())]

    body = min((indent(ln) for ln in template.split("\n")[1:] if ln.strip()), key=len, default="")

    def fill(m):
        start = template.rfind("\n", 0, m.start()) + 1
        return str(fields[m.group(1)]).replace("\n", "\n" + (indent(template[start:]) if start
                                                             else body))

    text = re.sub(r"\n[ ]*\n(?:[ ]*\n)+", "\n\n", re.sub(r"\{(\w+)\}", fill, template))

    def set_doc(fn):
        fn.__doc__ = text
        return fn
    return set_doc


def same_dtype(op: str, names: tuple, *tensors) -> None:
    """Raise TypeError unless `tensors` (None skipped) share one dtype, naming each by `names`.

    Where parameters meet data (matmul, linear, conv2d, the norms, the losses) a mix is refused,
    as PyTorch does, rather than promoted: a float32 layer fed float64 data would otherwise
    compute in float64 and fail later, in its backward.

    Example:
        >>> same_dtype("linear", ("input", "weight", "bias"), x, w, None)
    """
    first = tensors[0].dtype
    for t in tensors:  # a loop, not all(...): this runs on every linear and matmul
        if t is not None and t.dtype != first:
            break
    else:
        return
    named = [(n, t.dtype) for n, t in zip(names, tensors) if t is not None]
    raise TypeError(f"{op}: {', '.join(n for n, _ in named)} must share one dtype, got "
                    f"{', '.join(f'{n} {dt}' for n, dt in named)}; convert the data (x.float(), "
                    "x.to(dtype=gf.float32)) or the model (model.to(dtype=gf.float64))")


def one_axis(axis, ndim: int, op: str) -> int:
    """Return one axis as a non-negative int, or raise naming it (a tuple is refused, not cut
    to its first entry)."""
    if isinstance(axis, (tuple, list)) or axis is None:
        raise TypeError(f"{op}: axis must be one int, got {axis!r}")
    return normalize_axis(axis, ndim, op)[0]


def normalize_axis(axis, ndim: int, op: str):
    """Return axis as a sorted tuple of non-negative ints (None: all axes), or raise naming it."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = tuple(axis)
    elif hasattr(axis, "__index__") and not isinstance(axis, bool):
        axes = (axis,)
    else:
        raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
    out = []
    for a in axes:
        if not hasattr(a, "__index__") or isinstance(a, bool):
            raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
        a = a.__index__()  # NumPy integers are ints here too
        # A 0-d tensor accepts axis 0 and -1, as in PyTorch (NumPy accepts none).
        if not (-ndim <= a < ndim or (ndim == 0 and a in (0, -1))):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dims")
        out.append(a % ndim if ndim else 0)
    if ndim == 0:
        return ()
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def keepdims_shape(shape: tuple, axes: tuple) -> tuple:
    """`shape` with the reduced `axes` set to 1 (what keepdims=True gives)."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))

