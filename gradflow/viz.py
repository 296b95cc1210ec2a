"""Pictures of the recorded graph: Graphviz DOT text, and SVG/PNG files drawn by Graphviz's `dot`.

Each recorded op is a box with its name and output shape; each leaf tensor is an ellipse with its
name and, when it is small, its values and gradient; Python numbers mixed into the computation
are plain text. Arrows run forward, from inputs to the op that reads them, so the picture reads
like the code; backward walks them the other way.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .graph import topological_order
from .tensor import Tensor

__all__ = ["to_dot", "render", "FallbackRenderer", "GraphvizNotFoundError",
           "GRAPHVIZ_INSTALL_HINT"]

GRAPHVIZ_INSTALL_HINT = (
    "install Graphviz, which provides the `dot` program: `apt-get install graphviz` (Debian, "
    "Ubuntu), `brew install graphviz` (macOS), `conda install graphviz`, or see "
    "https://graphviz.org/download/; gradflow.viz.to_dot(tensor) gives the DOT text without it"
)

_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
_TEXT_SUFFIXES = (".dot", ".gv")


class GraphvizNotFoundError(RuntimeError):
    """`render` needs Graphviz's `dot` program and it is not on the PATH."""


def _escape(text: str) -> str:
    # DOT string rules: backslash and quote are escaped; \n is Graphviz's centred line break.
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _fmt_number(v) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _fmt_array(a) -> str:
    """A small NumPy or CuPy array as short text: a number for 0-d, else [a, b, ...]."""
    if a.ndim == 0:
        return _fmt_number(a.item())
    return "[" + ", ".join(_fmt_number(v) for v in a.ravel().tolist()) + "]"


def _fmt_values(t: Tensor, max_values: int):
    """The values of a small tensor as short text, or None when it has too many."""
    return None if t.size > max_values else _fmt_array(t.numpy())


def _fmt_const(x, max_values: int) -> str:
    """A constant input (a Python number or a raw array) as short text: small arrays by their
    values, larger ones by their shape."""
    if getattr(x, "shape", None) is None:
        return _fmt_number(x)
    return f"array {_shape_text(x.shape)}" if x.size > max_values else _fmt_array(x)


def _shape_text(shape) -> str:
    return "()" if shape == () else "(" + ", ".join(str(n) for n in shape) + ")"


def _value_lines(t: Tensor, max_values: int) -> list:
    lines = []
    data = _fmt_values(t, max_values)
    if data is not None:
        lines.append(f"data {data}")
    g = t.grad
    if isinstance(g, Tensor):
        gtext = _fmt_values(g, max_values)
        if gtext is not None:
            lines.append(f"grad {gtext}")
    return lines


def to_dot(tensor: Tensor, max_values: int = 4, rankdir: str = "LR",
           title: str | None = None) -> str:
    """Graphviz DOT text of the recorded graph that made `tensor`.

    Ops are boxes labelled with the op's name (and the output's `name`, when set) and the output
    shape; leaves are ellipses labelled with their `name` (else "leaf"), shape and, when they have
    at most `max_values` elements, their data and gradient. Leaves that need no gradient (data,
    targets) are dashed. The box of `tensor` itself has a double border. When an op takes several
    inputs, each arrow carries the argument's position, since a - b is not b - a.

    Args:
        tensor: the output of a recorded computation (a leaf gives a one-node picture).
        max_values: show data and gradients of tensors with at most this many elements.
        rankdir: Graphviz layout direction, "LR" (left to right) or "TB" (top to bottom).
        title: an optional caption drawn under the graph.

    Returns:
        The DOT source as a string (feed it to `dot -Tsvg`, or use `render`).

    Raises:
        gradflow.graph.GraphFreedError: backward() already freed the graph; draw before
            backward, or pass retain_graph=True to backward to draw the gradients too.

    Example:
        >>> a = gf.tensor(2.0, requires_grad=True); a.name = "a"
        >>> y = (a * 3).tanh()
        >>> print(gf.viz.to_dot(y))          # digraph gradflow { ... "Mul" ... "Tanh" ... }
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"to_dot needs a Tensor, got {type(tensor).__name__}")
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"rankdir must be one of 'LR', 'TB', 'RL', 'BT', got {rankdir!r}")
    lines = [
        "digraph gradflow {",
        f"  rankdir={rankdir};",
        '  node [fontname="Helvetica", fontsize=10];',
        '  edge [fontname="Helvetica", fontsize=8, color="#555555"];',
    ]
    if title:
        lines.append(f'  label="{_escape(title)}"; labelloc=b; fontname="Helvetica";')
    ids: dict = {}  # id(tensor or function) -> DOT node id

    def leaf_node(t: Tensor) -> str:
        key = id(t)
        if key not in ids:
            ids[key] = f"leaf{len(ids)}"
            text = [t.name or "leaf", _shape_text(t.shape)] + _value_lines(t, max_values)
            style = "solid" if t.requires_grad else "dashed"
            lines.append(f'  {ids[key]} [shape=ellipse, style={style}, '
                         f'label="{_escape(chr(10).join(text))}"];')
        return ids[key]

    order = topological_order(tensor)
    if not order:
        leaf_node(tensor)
    n_const = 0
    for fn in order:
        out = fn.output
        node = f"op{len(ids)}"
        ids[id(fn)] = node
        head = f"{out.name} = {fn.name}" if out is not None and out.name else fn.name
        text = [head]
        if out is not None:
            text.append(_shape_text(out.shape))
            if out.name or out is tensor or out._retains_grad:
                text += _value_lines(out, max_values)
        extra = ", peripheries=2" if fn is tensor.grad_fn else ""
        lines.append(f'  {node} [shape=box, style="rounded,filled", fillcolor="#eef3fb", '
                     f'label="{_escape(chr(10).join(text))}"{extra}];')
        several = len(fn.inputs) > 1
        for pos, x in enumerate(fn.inputs):
            if isinstance(x, Tensor):
                if x.requires_grad and x.grad_fn is not None:
                    src = ids[id(x.grad_fn)]  # forward order: the producer is already drawn
                else:
                    src = leaf_node(x)
            else:
                src = f"const{n_const}"
                n_const += 1
                text = _escape(_fmt_const(x, max_values))
                lines.append(f'  {src} [shape=plaintext, label="{text}"];')
            label = f' [label="{pos}"]' if several else ""
            lines.append(f"  {src} -> {node}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(tensor: Tensor, path, max_values: int = 4, rankdir: str = "LR",
           title: str | None = None, timeout: float = 60.0) -> Path:
    """Draw the recorded graph of `tensor` to a file; the suffix picks the format.

    `.svg`, `.png` and `.pdf` are drawn by Graphviz's `dot` program; `.dot` and `.gv` get the DOT
    text itself (no Graphviz needed). The file is written under a temporary name and renamed, so
    a failed drawing never leaves a half-written picture behind.

    Args:
        tensor: the output of a recorded computation.
        path: the file to write (str or Path); its folder must exist.
        max_values, rankdir, title: as in `to_dot`.
        timeout: seconds to wait for `dot`.

    Returns:
        The path written, as a Path.

    Raises:
        GraphvizNotFoundError: the suffix needs `dot` and it is not installed (the message says
            how to install it).
        ValueError: the suffix is not one of .svg, .png, .pdf, .dot, .gv.
        RuntimeError: `dot` failed (its error output is included).

    Example:
        >>> gf.viz.render(loss, "graph.svg")         # needs `apt-get install graphviz`
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _FORMATS and suffix not in _TEXT_SUFFIXES:
        raise ValueError(f"render: cannot tell the format of {str(path)!r} from its suffix "
                         f"{suffix!r}; use one of .svg, .png, .pdf (drawn by Graphviz) or .dot")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"render: folder {str(path.parent)!r} does not exist")
    source = to_dot(tensor, max_values=max_values, rankdir=rankdir, title=title)
    if suffix in _TEXT_SUFFIXES:
        _write_atomic(path, source.encode("utf-8"))
        return path
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFoundError(f"render({str(path)!r}) needs Graphviz's `dot` program, "
                                    f"which is not on the PATH: {GRAPHVIZ_INSTALL_HINT}")
    tmp = _temp_name(path)
    try:
        proc = subprocess.run([exe, f"-T{_FORMATS[suffix]}", "-o", tmp],
                              input=source.encode("utf-8"), capture_output=True, timeout=timeout)
        if proc.returncode != 0:
            err = proc.stderr.decode("utf-8", "replace").strip()
            raise RuntimeError(f"render: `dot -T{_FORMATS[suffix]}` failed with exit status "
                               f"{proc.returncode} while drawing {str(path)!r}: {err}")
        if os.path.getsize(tmp) == 0:
            raise RuntimeError(f"render: `dot` wrote an empty file for {str(path)!r}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


class FallbackRenderer:
    """`render` for a script that draws several graphs: where Graphviz is missing it writes the
    DOT text beside the picture instead (same name, suffix .dot) and says so once, not once per
    graph.

    Args:
        say: called once with the notice (default: print).

    Example:
        >>> pictures = gf.viz.FallbackRenderer()
        >>> pictures.render(loss, "runs/loss.png")   # runs/loss.png, or runs/loss.dot and a notice
        >>> pictures.render(grad, "runs/grad.png")   # no second notice
    """

    def __init__(self, say=print) -> None:
        self.say = say
        self.told = False

    def render(self, tensor: Tensor, path, **kw) -> Path:
        """Draw like `render`; without Graphviz's `dot`, write the DOT text instead.

        Args:
            tensor: the output of a recorded computation.
            path: the picture to write (.svg, .png, .pdf).
            **kw: `render`'s max_values, rankdir, title, timeout.

        Returns:
            The path written: `path`, or `path` with suffix .dot when Graphviz is missing.
        """
        try:
            return render(tensor, path, **kw)
        except GraphvizNotFoundError:
            if not self.told:
                self.told = True
                self.say("Graphviz's `dot` is not on the PATH, so graph pictures are written "
                         f"as DOT text: {GRAPHVIZ_INSTALL_HINT}")
            kw.pop("timeout", None)  # no drawing, so nothing to wait for
            return render(tensor, Path(path).with_suffix(".dot"), **kw)


def _temp_name(path: Path) -> str:
    # Beside the target, so the final os.replace is a rename within one file system.
    return str(path.with_name(f".{path.name}.{os.getpid()}.tmp"))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = _temp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
