"""The lab's binaries: take them from the cache, download them, or build them from source.

Order of preference, each step only when the previous one has nothing:
1. the cache, `~/.cache/k8snb/<k8s-version>/bin/`, every file checked against its SHA256SUMS;
2. a download with sha256 check: the official release assets, by the names and URLs upstream
   publishes (hosts overridable with `K8SNB_RELEASE_BASE` and `K8SNB_GITHUB_BASE`), checked against
   the published checksums, or against `recipes/release-sums.txt` where upstream publishes none
   (kwok); or `K8SNB_DOWNLOAD_BASE`, a flat mirror serving `<name>` and `<name>.sha256`;
3. a build from source with `recipes/build.sh` through the Go module proxy.
A machine without internet (this project's CI) fails step 2 within seconds and builds.
"""
from __future__ import annotations

import collections
import hashlib
import io
import os
import re
import shutil
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import LabError
from .plan import cache_dir
from .secure import checked_dir

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
KWOK = ("kwok",)
NODE = ("kubelet", "kube-proxy")
#: Components built from source only (no official download of them here), and the binaries each
#: build produces: containerd's daemon, runc shim and ctr, and the cluster DNS image's CoreDNS; for
#: kind, runc, a Docker engine, kind itself, crictl and the CNI reference plugins its nodes carry.
SOURCE_ONLY = {"containerd": ("containerd", "containerd-shim-runc-v2", "ctr"), "coredns": ("coredns",),
               "runc": ("runc",), "dockerd": ("dockerd", "docker-proxy"), "kind": ("kind",),
               "crictl": ("crictl",),
               "cni-plugins": ("cni-host-local", "cni-loopback", "cni-ptp", "cni-portmap")}
REAL_NODES = NODE + ("containerd", "coredns")
#: What `k8snb kind up` needs: the engine and kind, and what goes into kind's node image.
KIND = ("kubeadm", "kubelet", "kubectl", "containerd", "runc", "dockerd", "kind", "crictl", "cni-plugins",
        "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy", "etcd", "coredns")
#: Seconds to wait for a download server before falling back to building: long enough for a slow
#: link to answer, short enough that an offline machine moves on at once.
PROBE_TIMEOUT = 5.0
_VERSION = re.compile(r"^v1\.\d+\.\d+$")


def recipes_dir() -> Path:
    """The build recipes and pinned versions shipped inside the package (`k8snb/lab/recipes/`), so
    that a wheel installed anywhere builds and starts the lab without a checkout."""
    return Path(str(resources.files("k8snb.lab") / "recipes"))


def pinned_versions() -> dict[str, str]:
    """`recipes/versions.env` as a dict (K8S_VERSION, ETCD_VERSION, KWOK_VERSION ...)."""
    path = recipes_dir() / "versions.env"
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


@dataclass(frozen=True)
class Binaries:
    version: str
    directory: Path

    def __getitem__(self, name: str) -> str:
        return str(self.directory / name)


def bin_dir(version: str) -> Path:
    return cache_dir() / version / "bin"


def _sums(directory: Path) -> dict[str, str]:
    path = directory / "SHA256SUMS"
    if not path.exists():
        return {}
    return {name: digest for digest, name in (line.split(None, 1) for line in path.read_text().splitlines() if line.strip())}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _record(directory: Path, name: str, digest: str) -> None:
    sums = _sums(directory)
    sums[name] = digest
    (directory / "SHA256SUMS").write_text("".join(f"{d}  {n}\n" for n, d in sorted(sums.items())))


def _same_plugins(directory: Path, name: str) -> bool:
    """CoreDNS is built with the plugins versions.env lists (build.sh writes them beside it): a
    binary built with another list is stale, though its checksum is fine."""
    if name != "coredns":
        return True
    stamp = directory / "coredns.plugins"
    return stamp.exists() and stamp.read_text().strip() == pinned_versions()["COREDNS_PLUGINS"]


def check_cached(version: str, names: tuple[str, ...]) -> list[str]:
    """Names missing from the cache; raise LabError for a cached binary that fails its checksum."""
    directory = bin_dir(version)
    sums = _sums(directory)
    missing = []
    for name in names:
        path = directory / name
        if not path.exists() or name not in sums or not _same_plugins(directory, name):
            missing.append(name)
        elif _sha256(path) != sums[name]:
            raise LabError(
                f"the cached {name} at {path} fails its sha256 check (truncated or corrupted); "
                "run `k8snb lab up --rebuild` to fetch or build it again"
            )
    return missing


#: Upstream hosts, each overridable so that a test can serve the same layout on loopback.
RELEASE_BASE = "https://dl.k8s.io/release"   # K8SNB_RELEASE_BASE
GITHUB_BASE = "https://github.com"           # K8SNB_GITHUB_BASE
#: Tries per URL when the server is reachable but the transfer breaks (a 404 is not retried).
TRIES = 3


def _official_urls(name: str, v: dict[str, str]) -> tuple[str, str | None]:
    """(asset URL, checksum URL) exactly as upstream publishes them; None: the sha256 is pinned in
    `recipes/release-sums.txt` because upstream publishes no checksum (kwok)."""
    k8s, arch = v["K8S_VERSION"], "amd64"
    base = os.environ.get("K8SNB_RELEASE_BASE", RELEASE_BASE).rstrip("/")
    github = os.environ.get("K8SNB_GITHUB_BASE", GITHUB_BASE).rstrip("/")
    if name == "etcd":
        e = v["ETCD_VERSION"]
        url = f"{github}/etcd-io/etcd/releases/download/{e}/etcd-{e}-linux-{arch}.tar.gz"
        return url, url.rsplit("/", 1)[0] + "/SHA256SUMS"
    if name == "kwok":
        return f"{github}/kubernetes-sigs/kwok/releases/download/{v['KWOK_VERSION']}/kwok-linux-{arch}", None
    url = f"{base}/{k8s}/bin/linux/{arch}/{name}"
    return url, url + ".sha256"


def pinned_sums_file() -> Path:
    """The sha256 of release assets whose upstream publishes none. `K8SNB_PINNED_SUMS` names another
    file: only the tests use it, to serve a kwok built here under the official asset name."""
    override = os.environ.get("K8SNB_PINNED_SUMS")
    return Path(override) if override else recipes_dir() / "release-sums.txt"


def pinned_digest(url: str) -> str:
    """The pinned sha256 of an official asset, looked up by its path below the host
    (`kubernetes-sigs/kwok/releases/download/v0.8.0/kwok-linux-amd64`)."""
    key = url.split("://", 1)[-1].split("/", 1)[-1]
    path = pinned_sums_file()
    for line in path.read_text().splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) == 2 and (key == parts[1] or key.endswith("/" + parts[1])) and re.fullmatch(r"[0-9a-f]{64}", parts[0]):
            return parts[0]
    raise LabError(f"no pinned sha256 for {key} in {path} (its upstream publishes no checksum): "
                   "add the digest of the official asset there")


def _fetch(url: str, timeout: float) -> bytes:
    """GET with a few tries for broken transfers; HTTP errors (404 ...) are raised at once."""
    for attempt in range(1, TRIES + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (https or a local mirror)
                return resp.read()
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", exc)
            # Name resolution or a refused connection: the host is not reachable, retrying won't help.
            if attempt == TRIES or isinstance(reason, (socket.gaierror, ConnectionRefusedError)):
                raise
            time.sleep(attempt)
    raise AssertionError("unreachable")


def download(version: str, names: list[str], log=print) -> list[str]:
    """Download what it can with sha256 checks; return the names still missing.

    Official URLs (or `K8SNB_DOWNLOAD_BASE`, a flat mirror serving `<name>` and `<name>.sha256`).
    A wrong digest is never used: LabError."""
    v = pinned_versions()
    v["K8S_VERSION"] = version
    mirror = os.environ.get("K8SNB_DOWNLOAD_BASE")
    directory = bin_dir(version)
    directory.mkdir(parents=True, exist_ok=True)
    missing = []
    for i, name in enumerate(names):
        if mirror:
            url, sum_url = f"{mirror.rstrip('/')}/{name}", f"{mirror.rstrip('/')}/{name}.sha256"
        else:
            url, sum_url = _official_urls(name, v)
        try:
            want = (_expected_digest(_fetch(sum_url, PROBE_TIMEOUT).decode(), url.rsplit("/", 1)[-1])
                    if sum_url else pinned_digest(url))
            data = _fetch(url, 300 if sum_url else 30)
        except urllib.error.HTTPError as exc:
            log(f"k8snb lab: {exc.url or url}: HTTP {exc.code}; {name} not downloaded")
            missing.append(name)
            continue
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            # The server is unreachable (offline machine): no point in asking for the others.
            log(f"k8snb lab: no download possible ({getattr(exc, 'reason', exc)} for {url.split('/')[2]}); "
                f"not downloaded: {', '.join(names[i:])}")
            missing.extend(names[i:])
            break
        got = hashlib.sha256(data).hexdigest()
        if want != got:
            raise LabError(f"downloaded {name} from {url} has sha256 {got}, expected {want}: refusing to use it")
        target = directory / name
        if url.endswith(".tar.gz"):
            data = _extract(data, name, directory)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.chmod(0o755)
        tmp.replace(target)
        _record(directory, name, hashlib.sha256(data).hexdigest())
        log(f"k8snb lab: downloaded {name} ({len(data) >> 20} MiB, sha256 ok)")
    return missing


def fetch_release(names: tuple[str, ...], version: str | None = None, log=print) -> Binaries:
    """Cache `names` from the official release assets only, never building (Binder has no Go).
    LabError, one line, naming what could not be fetched."""
    version = version or pinned_versions()["K8S_VERSION"]
    missing = check_cached(version, names)
    if missing:
        missing = download(version, missing, log=log)
    if missing:
        raise LabError(f"could not download {', '.join(missing)} for Kubernetes {version} (see the lines "
                       "above); the lab cannot start without them")
    return Binaries(version, bin_dir(version))


def _expected_digest(sums_text: str, filename: str) -> str:
    """The digest for `filename` in a checksum file: a bare digest (dl.k8s.io's `<name>.sha256`) or
    `sha256sum` lines (etcd's SHA256SUMS, kind's `.sha256sum`), matched on the exact file name."""
    lines = [line.split() for line in sums_text.splitlines() if line.strip()]
    if len(lines) == 1 and len(lines[0]) == 1:
        return lines[0][0].lower()
    for parts in lines:
        if len(parts) >= 2 and parts[-1].lstrip("*").rsplit("/", 1)[-1] == filename:
            return parts[0].lower()
    raise LabError(f"no sha256 for {filename} in the published checksums")


def _extract(tarball: bytes, name: str, directory: Path) -> bytes:
    """The binary `name` from a release archive (etcd's `etcd-<v>-linux-amd64/etcd`)."""
    with tarfile.open(fileobj=io.BytesIO(tarball)) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.rsplit("/", 1)[-1] == name:
                f = tar.extractfile(member)
                assert f is not None
                return f.read()
    raise LabError(f"the release archive has no '{name}' binary")


def build(version: str, components: list[str], log=print) -> None:
    """Build `components` with recipes/build.sh, its progress lines passed on as they come (a cold
    build takes a quarter of an hour); clear errors for no Go or an unknown version."""
    if not shutil.which("go"):
        raise LabError(
            f"cannot build {', '.join(components)}: Go is not installed (Go >= 1.26 is needed to build "
            f"Kubernetes {version} from source) and no download was possible"
        )
    _check_published(version)
    script = recipes_dir() / "build.sh"
    env = dict(os.environ, K8S_VERSION=version, K8SNB_CACHE=str(cache_dir()))
    started = time.monotonic()
    tail: collections.deque[str] = collections.deque(maxlen=15)
    with subprocess.Popen(["bash", str(script), *components], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            tail.append(line)
            if line.startswith("k8snb lab build:"):
                log(line)
    if proc.returncode != 0:
        text = "\n".join(tail)
        if "unknown revision" in text or "invalid version" in text or "404" in text:
            raise LabError(f"Kubernetes {version} is not published on the Go module proxy (unknown version)")
        raise LabError(f"building {', '.join(components)} failed (exit {proc.returncode}); last lines:\n{text}")
    log(f"k8snb lab: build finished in {time.monotonic() - started:.0f} s")


def _check_published(version: str) -> None:
    """Refuse a Kubernetes version the Go module proxy does not serve, before a long build starts."""
    proxy = os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")[0]
    try:
        listed = _fetch(f"{proxy}/k8s.io/kubernetes/@v/list", PROBE_TIMEOUT).decode().split()
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise LabError(f"cannot reach the Go module proxy {proxy} to build Kubernetes {version}: "
                       f"{getattr(exc, 'reason', exc)}") from None
    if version not in listed:
        newest = sorted((v for v in listed if _VERSION.match(v)), key=lambda v: tuple(map(int, v[1:].split("."))))
        raise LabError(f"unknown Kubernetes version {version}: the Go module proxy does not serve it "
                       f"(newest served: {newest[-1] if newest else 'none'})")


def outputs(component: str) -> tuple[str, ...]:
    """The binaries a component's build produces (most produce one of their own name)."""
    return SOURCE_ONLY.get(component, (component,))


def ensure(components: tuple[str, ...], version: str | None = None, rebuild: bool = False,
           log=print) -> Binaries:
    """Make sure every binary of `components` is cached for `version` (downloaded where an official
    release exists and can be reached, else built, all missing ones in one build); return where."""
    version = version or pinned_versions()["K8S_VERSION"]
    if not _VERSION.match(version):
        raise LabError(f"unknown Kubernetes version {version!r}: expected the form v1.MINOR.PATCH, e.g. v1.37.2")
    names = tuple(o for c in components for o in outputs(c))
    # Root runs what is here: no other user may own or write the cache (see secure.checked_dir).
    checked_dir(cache_dir())
    checked_dir(bin_dir(version))
    if rebuild:
        for name in names:
            (bin_dir(version) / name).unlink(missing_ok=True)
    missing = set(check_cached(version, names))
    downloadable = [c for c in components if c not in SOURCE_ONLY and c in missing]
    if downloadable:
        missing -= set(downloadable) - set(download(version, downloadable, log=log))
    to_build = [c for c in components if set(outputs(c)) & missing]
    if to_build:
        build(version, to_build, log=log)
        still = check_cached(version, names)
        if still:
            raise LabError(f"after the build, {', '.join(still)} is still missing from {bin_dir(version)}")
    return Binaries(version, bin_dir(version))
