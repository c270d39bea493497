"""kind's node image, built offline from Debian packages, kind's own recipe files and the lab's binaries.

kind publishes its node images on a container registry, which this project may not use. kind's Go
module carries the recipe of its base image (`images/base/`: a Dockerfile, the entrypoint and the
systemd units); this module follows it: a Debian root with the Dockerfile's packages, kind's
files, then what `kind build node-image` adds (kubeadm, kubelet, kubectl, /kind/version), imported
into Docker as one image. Differences from kind's, each for a reason given where it is made:
- the images kubeadm needs are not preloaded: every node pulls them from the lab's registry
  (k8snb.lab.kind serves it on kind's network), which also serves the course's `:latest` images;
- containerd's config is ours (containerd 2.x format, that registry as the only mirror);
- the default CNI kind applies is ours (recipes/kind/default-cni.yaml), not kindnet's image;
- units do not ask for limits or OOM scores only CAP_SYS_RESOURCE grants (some hosts lack it).
The image is rebuilt only when one of its inputs changes (a hash of them is its label).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import LabError
from . import commands, images
from .binaries import Binaries, pinned_versions, recipes_dir
from .dockerd import Engine, docker_cli
from .plan import cache_dir

REPOSITORY = "k8snb.local/kind-node"
LABEL = "org.k8snb.recipe"
#: kind's base image Dockerfile's package list, less what only rootless or storage tests use
#: (fuse-overlayfs, nfs-common, open-iscsi, e2fsprogs).
PACKAGES = ("systemd", "conntrack", "iptables", "nftables", "iproute2", "ethtool", "util-linux", "mount",
            "kmod", "libseccomp2", "pigz", "bash", "ca-certificates", "curl", "jq", "procps")
#: Where each lab binary goes in the node: kind's Dockerfile and node-image builder put them there.
PLACES = {"containerd": "usr/local/bin", "containerd-shim-runc-v2": "usr/local/bin", "ctr": "usr/local/bin",
          "crictl": "usr/local/bin", "runc": "usr/local/sbin", "kubeadm": "usr/bin", "kubelet": "usr/bin",
          "kubectl": "usr/bin", "cni-host-local": "opt/cni/bin", "cni-loopback": "opt/cni/bin",
          "cni-ptp": "opt/cni/bin", "cni-portmap": "opt/cni/bin"}
#: Unit settings systemd cannot apply without CAP_SYS_RESOURCE (raise a hard limit, lower an OOM
#: score): kind's containerd.service asks for them, and the unit would fail to start on such a host.
UNSAFE_UNIT_KEYS = ("OOMScoreAdjust=", "LimitNPROC=", "LimitCORE=", "LimitNOFILE=")


def kind_files() -> Path:
    """kind's `images/base/files` from its Go module, at the pinned version (the module proxy serves it)."""
    version = pinned_versions()["KIND_VERSION"]
    # `go mod download` outside any module needs no go.mod; the module proxy serves kind's module.
    proc = commands.run(["go", "mod", "download", "-json", f"sigs.k8s.io/kind@{version}"],
                        f"getting kind {version}'s module (its node image recipe)", timeout=300,
                        env={**os.environ, "GOFLAGS": "-mod=mod", "GO111MODULE": "on"})
    return Path(json.loads(proc.stdout)["Dir"]) / "images" / "base" / "files"


def _cri_base_spec(b: Binaries) -> str:
    """containerd's default OCI spec with kind's two changes (images/base/Dockerfile): its product
    files hook, and no rlimits (a pod must not ask for more than the node got)."""
    spec = json.loads(commands.run([b["ctr"], "oci", "spec"]).stdout)
    spec.setdefault("hooks", {}).setdefault("createContainer", []).append({"path": "/kind/bin/mount-product-files.sh"})
    spec["process"].pop("rlimits", None)
    return json.dumps(spec, indent=2)


def _inputs(b: Binaries, files: Path) -> str:
    parts: list[bytes | str] = [json.dumps([PACKAGES, sorted(PLACES.items()), UNSAFE_UNIT_KEYS, b.version])]
    parts += list(images._debian_source())
    for path in sorted(p for p in files.rglob("*") if p.is_file()):
        parts += [str(path.relative_to(files)), path.read_bytes()]
    parts += [(recipes_dir() / "kind" / name).read_bytes()
              for name in ("containerd.toml", "default-cni.yaml", "default-storage.yaml")]
    parts += [images._digest_file(Path(b[name])) for name in sorted(PLACES)]
    parts.append(Path(__file__).read_bytes())  # this recipe itself
    return images._hash(*parts)


def _label(engine: Engine, ref: str) -> str | None:
    proc = commands.run([docker_cli(), "image", "inspect", "--format", f'{{{{ index .Config.Labels "{LABEL}" }}}}', ref],
                        check=False, env=engine.env(), timeout=60)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _copy_tree(src: Path, dest: Path, mode: int) -> None:
    for path in src.rglob("*"):
        target = dest / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            target.chmod(mode)


def _without_unsafe_keys(unit: Path) -> None:
    lines = unit.read_text().splitlines()
    unit.write_text("\n".join(line for line in lines if not line.startswith(UNSAFE_UNIT_KEYS)) + "\n")


def _rootfs(root: Path, b: Binaries, files: Path, log) -> None:
    """The node's root: the steps of kind's base Dockerfile, then its node-image builder's."""
    images._run(["cp", "-a", str(images._base_rootfs(log)), str(root)], "copying the Debian base root")
    (root / ".complete").unlink()
    log(f"k8snb kind: installing the node's Debian packages ({len(PACKAGES)})")
    images._chroot_install(root, PACKAGES)
    # COPY files/usr/local/bin/* (0755), files/kind/ (0644, bin 0755), files/etc/... (0644)
    _copy_tree(files / "usr" / "local" / "bin", root / "usr" / "local" / "bin", 0o755)
    _copy_tree(files / "kind", root / "kind", 0o644)
    _copy_tree(files / "kind" / "bin", root / "kind" / "bin", 0o755)
    _copy_tree(files / "etc", root / "etc", 0o644)
    (root / "kind").chmod(0o755)
    (root / "kind" / "bin").chmod(0o755)
    _without_unsafe_keys(root / "etc" / "systemd" / "system" / "containerd.service")
    # RUN: the Dockerfile's systemd clean-up, so that only kind's services start in a node.
    lib = root / "lib" / "systemd" / "system"
    (lib / "sysinit.target.wants" / "systemd-tmpfiles-setup.service").unlink(missing_ok=True)
    for wants in ["multi-user.target.wants", "local-fs.target.wants", "basic.target.wants"]:
        for link in (lib / wants).glob("*"):
            link.unlink()
    for pattern in ["*udev*", "*initctl*"]:
        for link in (lib / "sockets.target.wants").glob(pattern):
            link.unlink()
    for link in (root / "etc" / "systemd" / "system").glob("*.wants/*"):
        link.unlink()
    with (root / "etc" / "systemd" / "journald.conf").open("a") as f:
        f.write("ReadKMsg=no\n")
    (root / "sbin" / "init").unlink(missing_ok=True)
    (root / "sbin" / "init").symlink_to("/usr/lib/systemd/systemd")
    for argv in (["systemctl", "enable", "kubelet.service", "containerd.service", "undo-mount-hacks.service"],
                 ["systemctl", "mask", "systemd-binfmt.service"]):
        images._run(["chroot", str(root), *argv], " ".join(argv))
    (root / "etc" / "kubernetes" / "manifests").mkdir(parents=True, exist_ok=True)
    # The binaries (kind's build stages and node-image builder), then containerd's config.
    for name, place in PLACES.items():
        target = root / place / name.removeprefix("cni-")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(b[name], target)
        target.chmod(0o755)
    (root / "etc" / "containerd" / "cri-base.json").write_text(_cri_base_spec(b))
    shutil.copyfile(recipes_dir() / "kind" / "containerd.toml", root / "etc" / "containerd" / "config.toml")
    (root / "kind" / "version").write_text(b.version)
    # kind applies these two manifests when it creates a cluster; its own need images from registries.
    # default-cni.yaml: the pod network (a DaemonSet doing what kindnet does, with the reference
    # plugins); default-storage.yaml: a default StorageClass that says there is no provisioner.
    (root / "kind" / "manifests").mkdir(exist_ok=True)
    for name in ("default-cni.yaml", "default-storage.yaml"):
        shutil.copyfile(recipes_dir() / "kind" / name, root / "kind" / "manifests" / name)


def ensure(b: Binaries, engine: Engine, log=print) -> str:
    """The node image's reference, built and imported into the engine unless it is there already."""
    ref = f"{REPOSITORY}:{b.version}"
    files = kind_files()
    digest = _inputs(b, files)
    if _label(engine, ref) == digest:
        return ref
    started = time.monotonic()
    log(f"k8snb kind: building the node image {ref} (Debian packages, kind's recipe files, the lab's binaries)")
    work = cache_dir() / "images"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work, prefix=".kind-node-") as tmp:
        root = Path(tmp) / "rootfs"
        _rootfs(root, b, files, log)
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*",
                                "--exclude=./sys/*", "-c", "."], stdout=subprocess.PIPE)
        changes = ['ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]', "ENV container=docker",
                   "STOPSIGNAL SIGRTMIN+3", f"LABEL {LABEL}={digest}"]
        argv = [docker_cli(), "import", *[a for c in changes for a in ("--change", c)], "-", ref]
        imported = subprocess.run(argv, stdin=tar.stdout, env=engine.env(), capture_output=True, text=True)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0 or imported.returncode != 0:
            raise LabError(f"importing the kind node image {ref} failed: {imported.stderr.strip()[-400:]}")
    log(f"k8snb kind: node image {ref} built in {time.monotonic() - started:.0f} s")
    return ref
