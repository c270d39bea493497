"""The classroom's single-user image: Debian, the course's wheel and JupyterLab, built here.

What JupyterHub's KubeSpawner starts for each learner (Zero to JupyterHub's `singleuser.image`).
Built like the lab's other images (images.py: a debootstrap root, one uncompressed layer, pushed to
the lab registry), in two steps so that a change to the course does not reinstall JupyterLab:
- a dependencies root, cached under ~/.cache/k8snb/images keyed by the pinned requirements: Debian's
  python3 and a virtual environment in /opt/k8snb with JupyterLab, jupyterhub (for
  `jupyterhub-singleuser`, the same version as the hub) and the course's dependencies, at the
  versions of the environment that builds it; wheels are downloaded on the host (PyPI only);
- the image: that root plus the course's wheel and notebooks, tagged by a hash of the sources.
The learner runs as uid 1000 (jovyan) in /home/jovyan, the notebooks in /home/jovyan/notebooks.
"""
from __future__ import annotations

import hashlib
import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import LabError
from . import images
from .plan import cache_dir

REPOSITORY = "k8snb/singleuser"
VENV = "/opt/k8snb"
HOME = "/home/jovyan"
UID, GID = 1000, 100
#: Debian packages of the image: Python itself; tini reaps the kernels' children as PID 1 would.
PACKAGES = ("python3", "python3-venv", "ca-certificates", "tini")
#: What the image installs besides the course (its own dependencies come from its wheel's metadata):
#: the hub's single-user server at the hub's own version, and what executes a notebook in the pod.
EXTRA = ("jupyterhub", "nbconvert", "nbclient", "ipykernel")
ENV = (f"PATH={VENV}/bin:{images.PATH_ENV.removeprefix('PATH=')}", f"HOME={HOME}", "SHELL=/bin/bash",
       "PYTHONUNBUFFERED=1")


def source_root() -> Path:
    """The course's checkout (the image needs its notebooks, which the wheel does not carry)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "notebooks").is_dir() or not (root / "pyproject.toml").exists():
        raise LabError(f"the single-user image is built from the course's source checkout; {root} has no "
                       "notebooks/ and pyproject.toml (an installed wheel cannot build it)")
    return root


def requirements() -> list[str]:
    """The course's dependencies and EXTRA, pinned to the versions installed here (so the image runs
    what the tests ran)."""
    names = [r.split(";")[0].split("[")[0] for r in md.requires("k8snb") or [] if "extra ==" not in r]
    names = [n.split(">")[0].split("<")[0].split("=")[0].split("!")[0].strip() for n in names] + list(EXTRA)
    pins = []
    for name in sorted(set(names)):
        try:
            pins.append(f"{name}=={md.version(name)}")
        except md.PackageNotFoundError as exc:
            raise LabError(f"{name} is not installed here, so the image cannot pin it: "
                           "pip install -e '.[classroom]' first") from exc
    return pins


def _source_hash(root: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for d in ("k8snb", "notebooks") for p in (root / d).rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts)
    for path in files + [root / "pyproject.toml"]:
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _pip(argv: list[str], what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *argv], capture_output=True, text=True)
    if proc.returncode != 0:
        raise LabError(f"{what} failed: {proc.stderr.strip()[-800:]}")


def _deps_root(log) -> Path:
    """Debian + python3 + /opt/k8snb with the pinned requirements, built once per pin set."""
    pins = requirements()
    mirror, suite = images._debian_source()
    target = cache_dir() / "images" / f"singleuser-deps-{images._hash(*pins, *PACKAGES, mirror, suite)}"
    if (target / ".complete").exists():
        return target
    for stale in target.parent.glob("singleuser-deps-*"):
        shutil.rmtree(stale, ignore_errors=True)
    started = time.monotonic()
    log(f"k8snb classroom: building the single-user image's Python environment ({len(pins)} pinned packages)")
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
        root = Path(tmp) / "rootfs"
        images._run(["cp", "-a", str(images._base_rootfs(log)), str(root)], "copying the base root")
        (root / ".complete").unlink()
        images._chroot_install(root, PACKAGES)
        # pip runs inside the root: Debian's python3 there (3.11.2) may differ from the host's, and
        # only pip running on it picks the wheels and versions it can run.
        # The host's resolver and CA bundle (a package mirror or proxy may need both) for this step only.
        shutil.copy("/etc/resolv.conf", root / "etc" / "resolv.conf")
        shutil.copy(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt", root / "tmp" / "host-ca.crt")
        try:
            images._run(["chroot", str(root), "python3", "-m", "venv", VENV], "creating the image's virtual environment")
            images._run(["chroot", str(root), "env", "PIP_FIND_LINKS=", "PIP_NO_CACHE_DIR=1",
                         "PIP_CERT=/tmp/host-ca.crt", "SSL_CERT_FILE=/tmp/host-ca.crt", "REQUESTS_CA_BUNDLE=/tmp/host-ca.crt",
                         f"{VENV}/bin/pip", "install", "-q", *pins],
                        "installing JupyterLab and the course's dependencies in the image")
        finally:
            (root / "etc" / "resolv.conf").write_text("")
            (root / "tmp" / "host-ca.crt").unlink()
        home = root / HOME.lstrip("/")
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, UID, GID)
        with (root / "etc" / "passwd").open("a") as passwd:
            passwd.write(f"jovyan:x:{UID}:{GID}::{HOME}:/bin/bash\n")
        (root / ".complete").write_text("\n".join(pins) + "\n")
        os.replace(root, target)
    log(f"k8snb classroom: Python environment built in {time.monotonic() - started:.0f} s")
    return target


def build(log=print) -> images.BuiltImage:
    """The single-user image for the current sources: from the cache, or built now."""
    src = source_root()
    recipe = images.Recipe(REPOSITORY, _source_hash(src), entrypoint=("/usr/bin/tini", "-g", "--"),
                           cmd=(f"{VENV}/bin/jupyterhub-singleuser",), exposed=("8888/tcp",))
    out = cache_dir() / "images" / f"{REPOSITORY.replace('/', '_')}-{recipe.tag}"
    if (out / "manifest.json").exists():
        return images.BuiltImage(recipe, out)
    deps = _deps_root(log)
    for stale in out.parent.glob(f"{REPOSITORY.replace('/', '_')}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    started = time.monotonic()
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as tmp:
        wheel_dir = Path(tmp) / "wheel"
        _pip(["wheel", "-q", "--no-deps", "-w", str(wheel_dir), str(src)],
             "building the course's wheel")
        wheel = next(wheel_dir.glob("k8snb-*.whl"))
        root = Path(tmp) / "rootfs"
        images._run(["cp", "-a", str(deps), str(root)], "copying the image's Python environment")
        (root / ".complete").unlink()
        shutil.copy(wheel, root / "tmp" / wheel.name)
        images._run(["chroot", str(root), f"{VENV}/bin/pip", "install", "-q", "--no-index", "--no-deps",
                     f"/tmp/{wheel.name}"], "installing the course's wheel in the image")
        (root / "tmp" / wheel.name).unlink()
        notebooks = root / HOME.lstrip("/") / "notebooks"
        shutil.copytree(src / "notebooks", notebooks, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        for path in [notebooks, *notebooks.rglob("*")]:
            os.chown(path, UID, GID)
        images.package(root, out, recipe, env=ENV, user=f"{UID}:{GID}", workdir=HOME)
    log(f"k8snb classroom: built image {recipe.ref} in {time.monotonic() - started:.0f} s")
    return images.BuiltImage(recipe, out)
