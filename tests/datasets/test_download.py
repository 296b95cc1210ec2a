"""Downloads against a local HTTP server on 127.0.0.1: good, corrupt, interrupted, next mirror."""
import hashlib
import http.server
import os
import threading

import numpy as np
import pytest

from gradflow.data import write_idx
from gradflow.datasets import MNIST, DatasetNotFoundError, DownloadError, download
from gradflow.datasets import _download


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves `files` at /good/NAME, a damaged copy at /corrupt/NAME, half of it at
    /cut/NAME (announcing the full length, then closing), and 404 elsewhere."""

    files: dict = {}
    log: list = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.log.append(self.path)
        kind, _, name = self.path.strip("/").partition("/")
        body = self.files.get(name)
        if body is None or kind not in ("good", "corrupt", "cut"):
            self.send_error(404, "File not found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if kind == "good":
            self.wfile.write(body)
        elif kind == "corrupt":
            self.wfile.write(bytes([body[0] ^ 0xFF]) + body[1:])
        else:
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files, _Handler.log = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _Handler
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _payload(n=3000):
    return np.random.default_rng(0).integers(0, 256, n, dtype=np.uint8).tobytes()


def _sha(b):
    return hashlib.sha256(b).hexdigest()


def test_good_download(tmp_path, server, capsys):
    url, handler = server
    body = _payload()
    handler.files["f.gz"] = body
    out = download([f"{url}/good/f.gz"], tmp_path / "f.gz", _sha(body), len(body))
    assert out.read_bytes() == body
    assert os.listdir(tmp_path) == ["f.gz"]
    assert "Downloading" in capsys.readouterr().err


@pytest.mark.parametrize("kind,reason", [("corrupt", "SHA-256 mismatch"),
                                         ("cut", "interrupted|IncompleteRead|received")])
def test_bad_download_leaves_nothing(tmp_path, server, kind, reason):
    url, handler = server
    body = _payload()
    handler.files["f.gz"] = body
    with pytest.raises(DownloadError, match=reason) as info:
        download([f"{url}/{kind}/f.gz"], tmp_path / "f.gz", _sha(body), quiet=True)
    assert f"{url}/{kind}/f.gz" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_size_is_checked_before_the_digest(tmp_path, server):
    url, handler = server
    handler.files["page"] = b"<html>403 Forbidden</html>"
    with pytest.raises(DownloadError, match="wrong size: 26 bytes, the published file has 4542"):
        download([f"{url}/good/page"], tmp_path / "page", "0" * 64, size=4542, quiet=True)
    assert os.listdir(tmp_path) == []


def test_next_mirror_is_tried(tmp_path, server):
    url, handler = server
    body = _payload()
    handler.files["f.gz"] = body
    mirrors = [f"{url}/missing/f.gz", f"{url}/corrupt/f.gz", f"{url}/cut/f.gz",
               f"{url}/good/f.gz"]
    download(mirrors, tmp_path / "f.gz", _sha(body), quiet=True)
    assert (tmp_path / "f.gz").read_bytes() == body
    assert handler.log == ["/missing/f.gz", "/corrupt/f.gz", "/cut/f.gz", "/good/f.gz"]
    assert os.listdir(tmp_path) == ["f.gz"]


def test_interrupt_during_download_leaves_no_file(tmp_path, monkeypatch):
    def fetch(url, out, sha256, size, timeout, announce):
        out.write(b"half a file")
        raise KeyboardInterrupt
    monkeypatch.setattr(_download, "_fetch", fetch)
    with pytest.raises(KeyboardInterrupt):
        download(["http://127.0.0.1:9/x"], tmp_path / "x.gz", "0" * 64, quiet=True)
    assert os.listdir(tmp_path) == []


def test_unreachable_mirrors_are_all_reported(tmp_path):
    # Port 9 (discard) on the loopback address: connection refused at once.
    with pytest.raises(DownloadError) as info:
        download(["http://127.0.0.1:9/a.gz", "http://127.0.0.1:9/b.gz"], tmp_path / "a.gz",
                 "0" * 64, timeout=5, quiet=True)
    assert len(info.value.errors) == 2 and "127.0.0.1:9/b.gz" in str(info.value)


# --- a data set downloaded end to end ---------------------------------------------------------
def _tiny_mnist_files(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(1)
    write_idx(src / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (7, 28, 28), np.uint8))
    write_idx(src / "t10k-labels-idx1-ubyte.gz", (np.arange(7) % 10).astype(np.uint8))
    return {p.name: p.read_bytes() for p in src.iterdir()}


def _tiny_class(files):
    class TinyMNIST(MNIST):
        checksums = {**MNIST.checksums, **{n: (_sha(b), len(b)) for n, b in files.items()}}
    return TinyMNIST


def test_dataset_downloads_once_then_reads_from_disk(tmp_path, server, monkeypatch):
    url, handler = server
    files = _tiny_mnist_files(tmp_path)
    handler.files.update(files)
    Tiny = _tiny_class(files)
    root = tmp_path / "root"
    ds = Tiny(root=root, train=False, mirrors=[f"{url}/missing/", f"{url}/good/"])
    assert len(ds) == 7 and ds.labels.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert sorted(os.listdir(root / "mnist")) == sorted(files)
    n = len(handler.log)
    Tiny(root=root, train=False, mirrors=[f"{url}/good/"])
    assert len(handler.log) == n  # found on disk: no second download


def test_failed_dataset_download_leaves_nothing_behind(tmp_path, server, capsys):
    url, handler = server
    files = _tiny_mnist_files(tmp_path)
    handler.files.update(files)
    root = tmp_path / "new" / "root"
    with pytest.raises(DatasetNotFoundError) as info:
        _tiny_class(files)(root=root, train=False, mirrors=[f"{url}/corrupt/"])
    msg = str(info.value)
    assert "could not be downloaded" in msg and "SHA-256 mismatch" in msg
    assert f"Put these files (raw or .gz) in {root / 'mnist'}" in msg
    assert not (tmp_path / "new").exists()  # the directories it made are removed again
