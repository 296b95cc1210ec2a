"""gf.viz: DOT text of the recorded graph, and files drawn by Graphviz's `dot`."""
import os
import re
import shutil
import stat

import pytest

import gradflow as gf
from gradflow.graph import GraphFreedError

HAVE_DOT = shutil.which("dot") is not None
needs_dot = pytest.mark.skipif(not HAVE_DOT, reason="Graphviz's `dot` is not installed "
                               "(apt-get install graphviz)")


def boxes(dot: str) -> list:
    """The labels of the op boxes in a DOT text."""
    return re.findall(r'op\d+ \[shape=box[^\]]*label="([^"]*)"', dot)


def small_net(device):
    X = gf.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=gf.float64, device=device)
    W = gf.tensor([[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]], dtype=gf.float64, device=device,
                  requires_grad=True)
    b = gf.tensor([0.5, -0.5, 0.0], dtype=gf.float64, device=device, requires_grad=True)
    X.name, W.name, b.name = "X", "W", "b"
    h = (X @ W + b).relu()
    z = h.reshape(9)[2:7].exp() / 2.0
    loss = (z - 1.0).tanh().sum() + (W * W).mean()
    return loss, X, W, b


def test_dot_names_every_op(device):
    loss, *_ = small_net(device)
    dot = gf.viz.to_dot(loss)
    order = gf.graph.topological_order(loss)
    labels = boxes(dot)
    assert len(labels) == len(order)           # one box per recorded op
    for fn, label in zip(order, labels):
        assert label.split("\\n")[0].endswith(fn.name)
    for name in ("MatMul", "Add", "Relu", "Reshape", "GetItem", "Exp", "Div", "Sub", "Tanh",
                 "Sum", "Mul", "Mean"):
        assert name in {fn.name for fn in order}
        assert f'"{name}\\n' in dot or f"= {name}\\n" in dot


def test_boxes_show_output_shapes_and_root_is_marked(device):
    loss, *_ = small_net(device)
    dot = gf.viz.to_dot(loss)
    assert 'label="MatMul\\n(3, 3)"' in dot
    assert 'label="GetItem\\n(5)"' in dot
    root = [line for line in dot.splitlines() if "peripheries=2" in line]
    assert len(root) == 1 and "Add\\n()" in root[0]


def test_leaves_show_names_data_and_gradients_when_small(device):
    a = gf.tensor(2.0, dtype=gf.float64, device=device, requires_grad=True)
    big = gf.ones(10, dtype=gf.float64, device=device, requires_grad=True)
    a.name, big.name = "a", "big"
    y = a * 3.0 + big.sum()
    y.backward(retain_graph=True)
    dot = gf.viz.to_dot(y)
    assert 'label="a\\n()\\ndata 2\\ngrad 3"' in dot
    big_line = next(line for line in dot.splitlines() if 'label="big' in line)
    assert "(10)" in big_line and "data" not in big_line and "grad" not in big_line
    assert 'label="3"' in dot                  # the Python number, as plain text
    assert gf.viz.to_dot(y, max_values=10).count("data [1, 1, 1") == 1


def test_data_leaves_are_dashed_and_arguments_numbered(device):
    x = gf.tensor([1.0, 2.0], device=device)
    w = gf.tensor([3.0, 4.0], device=device, requires_grad=True)
    y = (x - w).sum()
    dot = gf.viz.to_dot(y)
    leaf_lines = [line for line in dot.splitlines() if "shape=ellipse" in line]
    assert sum("style=dashed" in line for line in leaf_lines) == 1
    assert sum("style=solid" in line for line in leaf_lines) == 1
    assert re.search(r'leaf\d+ -> op\d+ \[label="0"\]', dot)
    assert re.search(r'leaf\d+ -> op\d+ \[label="1"\]', dot)


def test_names_are_escaped(device):
    a = gf.tensor(1.0, device=device, requires_grad=True)
    a.name = 'say "hi"\\now'
    dot = gf.viz.to_dot(a * 2)
    assert 'say \\"hi\\"\\\\now' in dot


def test_a_leaf_alone_and_bad_arguments(device):
    a = gf.tensor(1.0, device=device, requires_grad=True)
    a.name = "lonely"
    dot = gf.viz.to_dot(a)
    assert "lonely" in dot and "shape=box" not in dot
    with pytest.raises(TypeError, match="Tensor"):
        gf.viz.to_dot(3.0)
    with pytest.raises(ValueError, match="rankdir"):
        gf.viz.to_dot(a, rankdir="sideways")


def test_freed_graph_says_retain_graph(device):
    a = gf.tensor(1.0, device=device, requires_grad=True)
    y = (a * 2).exp()
    y.backward()
    with pytest.raises(GraphFreedError, match="retain_graph=True"):
        gf.viz.to_dot(y)


@needs_dot
@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG")])
def test_render_draws_with_graphviz(tmp_path, suffix, magic):
    loss, *_ = small_net("cpu")
    path = gf.viz.render(loss, tmp_path / f"g{suffix}", title="a small net")
    assert path == tmp_path / f"g{suffix}"
    data = path.read_bytes()
    assert data.startswith(magic)
    if suffix == ".svg":
        text = data.decode()
        for name in ("MatMul", "Relu", "GetItem", "Tanh", "a small net"):
            assert name in text
    assert [p.name for p in tmp_path.iterdir()] == [f"g{suffix}"]   # no temporary left


@needs_dot
def test_render_escaped_names_is_valid_dot(tmp_path):
    a = gf.tensor(1.0, requires_grad=True)
    a.name = 'quote " back \\ newline\nend'
    gf.viz.render(a * 2, tmp_path / "g.svg")
    assert "newline" in (tmp_path / "g.svg").read_text()


def test_render_dot_text_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(gf.viz.shutil, "which", lambda name: None)
    a = gf.tensor(1.0, requires_grad=True)
    y = a.tanh()
    path = gf.viz.render(y, tmp_path / "g.dot")
    assert path.read_text() == gf.viz.to_dot(y)


def test_render_without_graphviz_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(gf.viz.shutil, "which", lambda name: None)
    y = gf.tensor(1.0, requires_grad=True).tanh()
    with pytest.raises(gf.viz.GraphvizNotFoundError, match="apt-get install graphviz"):
        gf.viz.render(y, tmp_path / "g.svg")
    assert list(tmp_path.iterdir()) == []


def test_fallback_renderer_writes_dot_text_and_says_so_once(tmp_path, monkeypatch):
    monkeypatch.setattr(gf.viz.shutil, "which", lambda name: None)
    said = []
    pictures = gf.viz.FallbackRenderer(say=said.append)
    y = gf.tensor(1.0, requires_grad=True).tanh()
    first = pictures.render(y, tmp_path / "a.png", title="a", rankdir="TB", timeout=5)
    second = pictures.render(y * 2, tmp_path / "b.png")
    assert (first, second) == (tmp_path / "a.dot", tmp_path / "b.dot")
    assert first.read_text() == gf.viz.to_dot(y, title="a", rankdir="TB")
    assert len(said) == 1 and "apt-get install graphviz" in said[0]  # once, not per graph
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dot", "b.dot"]


@needs_dot
def test_fallback_renderer_draws_when_graphviz_is_there(tmp_path):
    said = []
    path = gf.viz.FallbackRenderer(say=said.append).render(
        gf.tensor(1.0, requires_grad=True).tanh(), str(tmp_path / "a.png"))
    assert path == tmp_path / "a.png" and path.read_bytes()[:4] == b"\x89PNG" and not said


def test_render_rejects_unknown_suffix_and_missing_folder(tmp_path):
    y = gf.tensor(1.0, requires_grad=True).tanh()
    with pytest.raises(ValueError, match=r"\.jpeg"):
        gf.viz.render(y, tmp_path / "g.jpeg")
    with pytest.raises(FileNotFoundError, match="nope"):
        gf.viz.render(y, tmp_path / "nope" / "g.svg")


def test_render_reports_dot_failure_and_leaves_no_file(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "dot"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'Error: syntax error in line 1' >&2\n: > \"$3\"\nexit 2\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(gf.viz.shutil, "which", lambda name: str(fake))
    out = tmp_path / "out"
    out.mkdir()
    (out / "g.svg").write_text("old picture")
    y = gf.tensor(1.0, requires_grad=True).tanh()
    with pytest.raises(RuntimeError, match="exit status 2.*syntax error"):
        gf.viz.render(y, out / "g.svg")
    assert sorted(os.listdir(out)) == ["g.svg"]
    assert (out / "g.svg").read_text() == "old picture"     # untouched by the failed drawing


def test_array_constants_are_shown_by_shape_or_small_values():
    # NumPy arrays mixed with CPU tensors are constant tensors (dashed leaves) of their dtype.
    a = gf.ones(3, 4, device="cpu", requires_grad=True)
    big = gf.backend.host_numpy().ones((3, 4))
    dot = gf.viz.to_dot((a * big * 2.0 + gf.backend.host_numpy().array([1.0, 2.0, 3.0, 4.0]))
                        .sum())
    assert 'style=dashed, label="leaf\\n(3, 4)"' in dot and 'label="2"' in dot
    assert 'label="leaf\\n(4)\\ndata [1, 2, 3, 4]"' in dot and "1. 1. 1." not in dot
