"""The lab's download path, against a mirror served on loopback from the binaries built here."""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from k8snb.errors import LabError
from k8snb.lab import binaries

NAMES = ("kubectl", "kwok")


@pytest.fixture
def mirror(tmp_path):
    """A loopback HTTP server publishing <name> and <name>.sha256 for NAMES."""
    version = binaries.pinned_versions()["K8S_VERSION"]
    missing = binaries.check_cached(version, NAMES)
    if missing:
        pytest.skip(f"build the lab first: {missing} not cached")
    root = tmp_path / "mirror"
    root.mkdir()
    for name in NAMES:
        src = binaries.bin_dir(version) / name
        (root / name).symlink_to(src)
        (root / f"{name}.sha256").write_text(hashlib.sha256(src.read_bytes()).hexdigest() + "\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_from_mirror_checks_sha256(mirror, tmp_path, monkeypatch):
    root, url = mirror
    monkeypatch.setenv("K8SNB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("K8SNB_DOWNLOAD_BASE", url)
    got = binaries.ensure(NAMES, log=lambda m: None)
    for name in NAMES:
        assert Path(got[name]).read_bytes() == (root / name).read_bytes()
    assert binaries.check_cached(got.version, NAMES) == []


def test_download_with_wrong_checksum_is_refused(mirror, tmp_path, monkeypatch):
    root, url = mirror
    (root / "kubectl.sha256").write_text("0" * 64 + "\n")
    monkeypatch.setenv("K8SNB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("K8SNB_DOWNLOAD_BASE", url)
    with pytest.raises(LabError, match="refusing to use it"):
        binaries.ensure(("kubectl",), log=lambda m: None)
    assert not (tmp_path / "cache" / binaries.pinned_versions()["K8S_VERSION"] / "bin" / "kubectl").exists()
