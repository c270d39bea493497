"""The lab's download path against loopback mirrors: a flat one (<name> and <name>.sha256, from the
binaries built here) and one laid out like the upstream release pages (small stand-in files)."""
from __future__ import annotations

import functools
import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from k8snb.errors import LabError
from k8snb.lab import binaries

NAMES = ("kubectl", "kwok")
V = binaries.pinned_versions()
K8S, ETCD, KWOK = V["K8S_VERSION"], V["ETCD_VERSION"], V["KWOK_VERSION"]


def _serve(root: Path):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def mirror(tmp_path):
    """A loopback HTTP server publishing <name> and <name>.sha256 for NAMES (stand-in executables:
    what is checked is the download and its digest, not the program)."""
    root = tmp_path / "mirror"
    root.mkdir()
    for name in NAMES:
        data = f"#!/bin/sh\necho {name}\n".encode()
        (root / name).write_bytes(data)
        (root / f"{name}.sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")
    server = _serve(root)
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


# --- the official release layout ------------------------------------------------------------------
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def release(tmp_path, monkeypatch):
    """Stand-in release assets at the upstream paths, nothing else: dl.k8s.io's <name> + <name>.sha256,
    etcd's tarball + SHA256SUMS, kwok's bare binary (its digest in a test pinned-sums file)."""
    root = tmp_path / "upstream"
    content = {name: f"#!/bin/sh\necho {name}\n".encode() for name in binaries.CONTROL_PLANE + binaries.KWOK}
    k8s_dir = root / "release" / K8S / "bin" / "linux" / "amd64"
    k8s_dir.mkdir(parents=True)
    for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"):
        (k8s_dir / name).write_bytes(content[name])
        (k8s_dir / f"{name}.sha256").write_text(_sha(content[name]))  # dl.k8s.io: the bare digest
    etcd_dir = root / "etcd-io" / "etcd" / "releases" / "download" / ETCD
    etcd_dir.mkdir(parents=True)
    tarball = f"etcd-{ETCD}-linux-amd64.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for member, data in ((f"etcd-{ETCD}-linux-amd64/README.md", b"etcd\n"),
                             (f"etcd-{ETCD}-linux-amd64/etcd", content["etcd"])):
            info = tarfile.TarInfo(member)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    (etcd_dir / tarball).write_bytes(buf.getvalue())
    (etcd_dir / "SHA256SUMS").write_text(
        f"{_sha(b'other')}  etcd-{ETCD}-linux-arm64.tar.gz\n{_sha(buf.getvalue())}  {tarball}\n")
    kwok_dir = root / "kubernetes-sigs" / "kwok" / "releases" / "download" / KWOK
    kwok_dir.mkdir(parents=True)
    (kwok_dir / "kwok-linux-amd64").write_bytes(content["kwok"])
    pins = tmp_path / "pins.txt"
    pins.write_text(f"# test pins\n{_sha(content['kwok'])}  kubernetes-sigs/kwok/releases/download/{KWOK}/kwok-linux-amd64\n")
    server = _serve(root)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.delenv("K8SNB_DOWNLOAD_BASE", raising=False)
    monkeypatch.setenv("K8SNB_RELEASE_BASE", f"{base}/release")
    monkeypatch.setenv("K8SNB_GITHUB_BASE", base)
    monkeypatch.setenv("K8SNB_PINNED_SUMS", str(pins))
    monkeypatch.setenv("K8SNB_CACHE", str(tmp_path / "cache"))
    yield root, content, pins
    server.shutdown()
    server.server_close()


def test_official_urls_are_upstreams_own():
    v = binaries.pinned_versions()
    assert binaries._official_urls("kube-apiserver", v) == (
        f"https://dl.k8s.io/release/{K8S}/bin/linux/amd64/kube-apiserver",
        f"https://dl.k8s.io/release/{K8S}/bin/linux/amd64/kube-apiserver.sha256")
    assert binaries._official_urls("etcd", v) == (
        f"https://github.com/etcd-io/etcd/releases/download/{ETCD}/etcd-{ETCD}-linux-amd64.tar.gz",
        f"https://github.com/etcd-io/etcd/releases/download/{ETCD}/SHA256SUMS")
    # kwok publishes no checksum file: its digest is pinned in the repository.
    assert binaries._official_urls("kwok", v) == (
        f"https://github.com/kubernetes-sigs/kwok/releases/download/{KWOK}/kwok-linux-amd64", None)


def test_the_pinned_kwok_has_a_digest_in_the_shipped_file(monkeypatch):
    monkeypatch.delenv("K8SNB_PINNED_SUMS", raising=False)
    url, _ = binaries._official_urls("kwok", binaries.pinned_versions())
    assert len(binaries.pinned_digest(url)) == 64


def test_fetch_release_from_the_upstream_layout(release):
    root, content, _ = release
    logs: list[str] = []
    got = binaries.fetch_release(binaries.CONTROL_PLANE + binaries.KWOK, log=logs.append)
    for name, data in content.items():
        assert Path(got[name]).read_bytes() == data, name
    assert binaries.check_cached(got.version, tuple(content)) == []
    assert sum("sha256 ok" in line for line in logs) == len(content)


def test_kwok_with_another_digest_than_the_pin_is_refused(release, tmp_path):
    root, content, pins = release
    pins.write_text(f"{'1' * 64}  kubernetes-sigs/kwok/releases/download/{KWOK}/kwok-linux-amd64\n")
    with pytest.raises(LabError, match="kwok .* has sha256 .* expected 1111.*refusing to use it"):
        binaries.fetch_release(binaries.KWOK, log=lambda m: None)
    assert not (tmp_path / "cache" / K8S / "bin" / "kwok").exists()


def test_kwok_without_a_pin_is_refused_with_one_line(release):
    root, content, pins = release
    pins.write_text("# nothing pinned\n")
    with pytest.raises(LabError, match=r"no pinned sha256 for kubernetes-sigs/kwok/.*kwok-linux-amd64") as exc:
        binaries.fetch_release(binaries.KWOK, log=lambda m: None)
    assert "\n" not in str(exc.value)


def test_a_missing_required_asset_fails_with_one_line_and_no_build(release, monkeypatch):
    root, content, _ = release
    (root / "release" / K8S / "bin" / "linux" / "amd64" / "kube-scheduler").unlink()
    monkeypatch.setattr(binaries, "build", lambda *a, **k: pytest.fail("fetch_release must never build"))
    logs: list[str] = []
    with pytest.raises(LabError, match="could not download kube-scheduler") as exc:
        binaries.fetch_release(("kubectl", "kube-scheduler"), log=logs.append)
    assert "\n" not in str(exc.value)
    assert any("kube-scheduler: HTTP 404" in line for line in logs)


def test_etcd_sums_are_matched_on_the_exact_file_name():
    text = (f"{'a' * 64}  etcd-{ETCD}-linux-amd64.tar.gz.sig\n{'b' * 64}  etcd-{ETCD}-linux-amd64.tar.gz\n"
            f"{'c' * 64}  etcd-{ETCD}-darwin-amd64.zip\n")
    assert binaries._expected_digest(text, f"etcd-{ETCD}-linux-amd64.tar.gz") == "b" * 64
    assert binaries._expected_digest("D" * 64 + "\n", "kubectl") == "d" * 64
    with pytest.raises(LabError):
        binaries._expected_digest(text, "kind-linux-amd64")
