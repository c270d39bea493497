"""The real nodes' container images, built locally without Docker and served by a local registry.

The article's manifests name `nginxdemos/hello`, `nicolaka/netshoot` (Docker Hub) and the cluster
needs `registry.k8s.io/pause` and CoreDNS. Nothing may come from a container registry, so each image
is rebuilt from Debian packages (debootstrap, then apt inside the chroot) or from a binary built
through the Go module proxy, written as a single uncompressed OCI layer, and pushed to a
`docker-registry` that every node's containerd uses as its mirror for docker.io and registry.k8s.io.
The manifests therefore apply unchanged. Built images are cached under ~/.cache/k8snb/images keyed
by a hash of their recipe, and the registry's storage persists, so a warm `up` only re-checks blobs.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
import socket
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LabError
from .binaries import Binaries, recipes_dir
from .plan import cache_dir
from .secure import write_private

REGISTRY_PORT = 5000
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


@dataclass(frozen=True)
class Recipe:
    """One image: where it is pushed, and what goes into its single layer."""

    repository: str  # path in the local registry, e.g. nginxdemos/hello
    tag: str
    packages: tuple[str, ...] = ()  # Debian packages on top of a minbase root (none: scratch image)
    files: dict[str, str] = field(default_factory=dict)  # recipes/images/<src> -> path in the image
    remove: tuple[str, ...] = ()  # paths the packages install that the recipe replaces
    binary: str = ""  # a lab binary (coredns, pause) copied to <binary_dir>/<name>
    binary_dir: str = "/"  # kubeadm's static pods run the control plane by name: /usr/local/bin
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    exposed: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


def _packages(name: str) -> tuple[str, ...]:
    lines = (recipes_dir() / "images" / name / "packages.txt").read_text().splitlines()
    return tuple(p.strip() for p in lines if p.strip() and not p.startswith("#"))


def recipes(coredns_version: str) -> list[Recipe]:
    """Every image the real lab needs; the names are the ones pods and containerd ask for."""
    return [
        Recipe("pause", PAUSE_IMAGE.rsplit(":", 1)[1], binary="pause", entrypoint=("/pause",)),
        Recipe("coredns/coredns", coredns_version, binary="coredns", entrypoint=("/coredns",),
               exposed=("53/udp", "53/tcp", "9153/tcp")),
        Recipe("nginxdemos/hello", "latest", packages=_packages("hello"),
               files={"hello/hello.conf": "/etc/nginx/conf.d/hello.conf",
                      "hello/index.html": "/usr/share/nginx/hello/index.html",
                      "hello/plain.txt": "/usr/share/nginx/hello/plain.txt"},
               remove=("/etc/nginx/sites-enabled/default",),  # Debian's default server; ours replaces it
               entrypoint=("nginx", "-g", "daemon off;"), exposed=("80/tcp",)),
        Recipe("nicolaka/netshoot", "latest", packages=_packages("netshoot"), cmd=("bash",)),
    ]


def kind_recipes(versions: dict[str, str]) -> list[Recipe]:
    """The images kubeadm runs on kind's nodes besides the lab's own (pause, CoreDNS): the control
    plane, kube-proxy and etcd, under the names and tags `kubeadm config images list` gives (etcd:
    `<version>-0`), each the lab's binary at the path kubeadm's manifests call it by."""
    bin_dir = "/usr/local/bin"
    control = [Recipe(name, versions["K8S_VERSION"], binary=name, binary_dir=bin_dir,
                      entrypoint=(f"{bin_dir}/{name}",))
               for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")]
    return control + [
        Recipe("kube-proxy", versions["K8S_VERSION"], packages=_packages("kube-proxy"), binary="kube-proxy",
               binary_dir=bin_dir, entrypoint=(f"{bin_dir}/kube-proxy",)),
        Recipe("etcd", versions["ETCD_VERSION"].removeprefix("v") + "-0", binary="etcd", binary_dir=bin_dir,
               entrypoint=(f"{bin_dir}/etcd",)),
    ]


def coredns_image(coredns_version: str) -> str:
    return f"registry.k8s.io/coredns/coredns:{coredns_version}"


def _debian_source() -> tuple[str, str]:
    """The Debian mirror and release apt already uses, so images come from the same archive."""
    mirror = os.environ.get("K8SNB_DEBIAN_MIRROR", "")
    if not mirror:
        for path in [Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list")]:
            if not path.exists():
                continue
            for line in path.read_text().splitlines():
                words = line.split()
                if words[:1] == ["URIs:"] and "security" not in words[1]:
                    mirror = words[1]
                elif words[:1] == ["deb"] and "security" not in line and len(words) > 2:
                    mirror = words[1]
                if mirror:
                    break
            if mirror:
                break
    release = {k: v.strip('"') for k, v in (line.split("=", 1) for line in
               Path("/etc/os-release").read_text().splitlines() if "=" in line)}
    return mirror or "http://deb.debian.org/debian", release.get("VERSION_CODENAME", "bookworm")


def _hash(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-12:])
        raise LabError(f"{what} failed (exit {proc.returncode}): {' '.join(argv[:4])} ...\n{tail}")


def _base_rootfs(log) -> Path:
    """A debootstrap minbase root, built once per mirror and release (about a minute)."""
    mirror, suite = _debian_source()
    target = cache_dir() / "images" / f"base-{suite}-{_hash(mirror, suite, 'minbase')}"
    if (target / ".complete").exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    log(f"k8snb lab: building the images' Debian {suite} base with debootstrap from {mirror} (first time only)")
    _run(["debootstrap", "--variant=minbase", suite, str(target), mirror], "debootstrap")
    (target / ".complete").write_text(f"{mirror} {suite}\n")
    return target


def _chroot_install(root: Path, packages: tuple[str, ...]) -> None:
    """apt-get inside the image root, with /proc mounted and no service started."""
    shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
    policy = root / "usr" / "sbin" / "policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    _run(["mount", "-t", "proc", "proc", str(root / "proc")], "mounting /proc in the image root")
    try:
        env = ["env", "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C"]
        _run(["chroot", str(root), *env, "apt-get", "update", "-qq"], "apt-get update in the image root")
        _run(["chroot", str(root), *env, "apt-get", "install", "-y", "-qq", "--no-install-recommends",
              *packages], f"apt-get install {' '.join(packages)}")
        _run(["chroot", str(root), "apt-get", "clean"], "apt-get clean")
    finally:
        subprocess.run(["umount", str(root / "proc")], check=False)
    policy.unlink()
    shutil.rmtree(root / "var" / "lib" / "apt" / "lists", ignore_errors=True)
    (root / "etc" / "resolv.conf").write_text("")


def _digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True)
class BuiltImage:
    recipe: Recipe
    directory: Path  # holds layer.tar, config.json, manifest.json

    def blobs(self) -> list[Path]:
        return [self.directory / "layer.tar", self.directory / "config.json"]


def _recipe_hash(r: Recipe, b: Binaries | None) -> str:
    parts: list[bytes | str] = [json.dumps([r.repository, r.tag, r.packages, sorted(r.files.items()),
                                            r.remove, r.binary, r.entrypoint, r.cmd, r.exposed]
                                           + ([r.binary_dir] if r.binary_dir != "/" else []))]
    parts += [(recipes_dir() / "images" / src).read_bytes() for src in sorted(r.files)]
    if r.packages:
        parts += list(_debian_source())
    if r.binary == "pause":
        parts.append((recipes_dir() / "images" / "pause" / "main.go").read_bytes())
    elif r.binary:
        assert b is not None, r.ref
        parts.append(_digest_file(Path(b[r.binary])))
    return _hash(*parts)


def _build_pause(dest: Path) -> None:
    src = recipes_dir() / "images" / "pause" / "main.go"
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="", GO111MODULE="off")
    proc = subprocess.run(["go", "build", "-trimpath", "-ldflags=-s -w", "-o", str(dest), str(src)],
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"building the pause binary failed: {proc.stderr.strip()[-600:]}")


def build(r: Recipe, b: Binaries | None, log) -> BuiltImage:
    """The image's layer, config and manifest, from the cache or built now."""
    prefix = f"{r.repository.replace('/', '_')}-{r.tag}-"
    out = cache_dir() / "images" / f"{prefix}{_recipe_hash(r, b)}"
    if (out / "manifest.json").exists():
        return BuiltImage(r, out)
    for stale in out.parent.glob(f"{prefix}*"):  # earlier recipes of this image
        shutil.rmtree(stale, ignore_errors=True)
    started = time.monotonic()
    log(f"k8snb lab: building image {r.ref} ...")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as tmp:
        root = Path(tmp) / "rootfs"
        if r.packages:
            _run(["cp", "-a", str(_base_rootfs(log)), str(root)], "copying the base root")
            (root / ".complete").unlink()
            _chroot_install(root, r.packages)
        else:
            root.mkdir()
        for src, dest in r.files.items():
            target = root / dest.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(recipes_dir() / "images" / src, target)
        for path in r.remove:
            (root / path.lstrip("/")).unlink()  # a symlink to an absolute path: do not follow it
        if r.binary == "pause":
            _build_pause(root / "pause")
        elif r.binary:
            assert b is not None, r.ref
            target = root / r.binary_dir.lstrip("/") / r.binary
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(b[r.binary], target)
        package(root, out, r)
    log(f"k8snb lab: built image {r.ref} in {time.monotonic() - started:.0f} s")
    return BuiltImage(r, out)


def package(root: Path, out: Path, r: Recipe, env: tuple[str, ...] = (PATH_ENV,), user: str = "",
            workdir: str = "") -> None:
    """Write `root` as the image's single layer, its config and its manifest into `out` (the
    manifest last: its presence marks a complete image)."""
    # /dev, /proc and /sys are provided by the runtime; their debootstrap contents are not image data.
    _run(["tar", "-C", str(root), "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*",
          "--exclude=./sys/*", "-cf", str(out / "layer.tar"), "."], "writing the image layer")
    layer = _digest_file(out / "layer.tar")
    config = {"architecture": "amd64", "os": "linux",
              "config": {"Env": list(env), **({"Entrypoint": list(r.entrypoint)} if r.entrypoint else {}),
                         **({"Cmd": list(r.cmd)} if r.cmd else {}),
                         **({"User": user} if user else {}), **({"WorkingDir": workdir} if workdir else {}),
                         **({"ExposedPorts": {p: {} for p in r.exposed}} if r.exposed else {})},
              "rootfs": {"type": "layers", "diff_ids": [layer]},
              "history": [{"created_by": f"k8snb lab image recipe {r.ref}"}]}
    (out / "config.json").write_text(json.dumps(config))
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": CONFIG_TYPE, "digest": _digest_file(out / "config.json"),
                           "size": (out / "config.json").stat().st_size},
                "layers": [{"mediaType": LAYER_TYPE, "digest": layer, "size": (out / "layer.tar").stat().st_size}]}
    (out / "manifest.json.tmp").write_text(json.dumps(manifest))
    (out / "manifest.json.tmp").replace(out / "manifest.json")


def registry_config(state: Path, listen: Path | str, read_only: bool) -> Path:
    """docker-registry's config, storage in the cache (pushes survive the lab). `listen` is a Unix
    socket path (the push side) or 'address:port' (the pull side, read-only, on the lab bridge)."""
    storage = cache_dir() / "registry"
    storage.mkdir(parents=True, exist_ok=True)
    http_cfg = {"net": "unix", "addr": str(listen)} if isinstance(listen, Path) else {"addr": listen}
    cfg = {"version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": True}},
           "storage": {"filesystem": {"rootdirectory": str(storage)},
                       "maintenance": {"readonly": {"enabled": read_only},
                                       "uploadpurging": {"enabled": False}}},
           "http": http_cfg}
    path = state / ("registry.yml" if read_only else "registry-push.yml")
    write_private(path, json.dumps(cfg))
    return path


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over the push registry's Unix socket."""

    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def _connection(where: Path | str, timeout: float = 60) -> http.client.HTTPConnection:
    if isinstance(where, Path):
        return _UnixConnection(where, timeout)
    return http.client.HTTPConnection(where, REGISTRY_PORT, timeout=timeout)


def _request(where: Path | str, method: str, path: str, body: Path | bytes | None = None,
             headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = _connection(where)
    hdrs = dict(headers or {})
    if isinstance(body, Path):
        hdrs["Content-Length"] = str(body.stat().st_size)
        with body.open("rb") as f:
            conn.request(method, path, body=f, headers=hdrs)
            resp = conn.getresponse()
    else:
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def wait_registry(where: Path | str, timeout: float = 20.0) -> None:
    """Until the registry at `where` (a Unix socket, or a host on REGISTRY_PORT) answers /v2/."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _request(where, "GET", "/v2/").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise LabError(f"the lab registry on {where}{'' if isinstance(where, Path) else f':{REGISTRY_PORT}'} "
                   f"did not answer within {timeout:.0f} s")


def push(image: BuiltImage, where: Path | str) -> None:
    """Upload blobs the registry lacks, then the manifest under the recipe's tag."""
    name = image.recipe.repository
    manifest = (image.directory / "manifest.json").read_bytes()
    for blob in image.blobs():
        digest = _digest_file(blob)
        if _request(where, "HEAD", f"/v2/{name}/blobs/{digest}").status == 200:
            continue
        start = _request(where, "POST", f"/v2/{name}/blobs/uploads/")
        location = start.getheader("Location") or ""
        if start.status != 202 or not location:
            raise LabError(f"registry refused an upload for {name}: HTTP {start.status}")
        parts = urllib.parse.urlsplit(location)
        upload = parts.path + (f"?{parts.query}&" if parts.query else "?")
        done = _request(where, "PUT", f"{upload}digest={digest}", body=blob,
                        headers={"Content-Type": "application/octet-stream"})
        if done.status != 201:
            raise LabError(f"registry refused blob {digest} of {name}: HTTP {done.status}")
    put = _request(where, "PUT", f"/v2/{name}/manifests/{image.recipe.tag}", body=manifest,
                   headers={"Content-Type": MANIFEST_TYPE})
    if put.status != 201:
        raise LabError(f"registry refused the manifest of {image.recipe.ref}: HTTP {put.status}")


def build_packaged(coredns_version: str, log) -> list[BuiltImage]:
    """The images made of Debian packages alone (no lab binary in them): built while Go compiles."""
    return [build(r, None, log) for r in recipes(coredns_version) if r.packages and not r.binary]


def build_all(b: Binaries, coredns_version: str, log, extra: list[Recipe] | None = None) -> list[BuiltImage]:
    return [build(r, b, log) for r in recipes(coredns_version) + (extra or [])]
