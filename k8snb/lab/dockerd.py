"""The Docker engine kind runs its nodes in: the user's own when one answers, else one of ours.

kind's nodes are `--privileged` containers. Debian's docker.io (20.10) asks the kernel for every
capability it knows and fails on machines whose bounding set lacks one ("unable to apply caps"),
so the lab builds a current engine (moby v2, with runc 1.5) like its other binaries. Ours is started
only when no engine answers, with its own socket, pidfile, exec root and data root, and no default
bridge (kind makes its own network); it is stopped by PID and never touches an engine the user
runs. Its data root sits in the cache, so the node image it holds survives `kind down`.

Any Docker engine, ours included, sets the host's FORWARD policy to DROP and leaves its chains
behind when it stops: the lab's own rules accept its bridge's traffic explicitly, so both hold.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabError
from . import commands, processes
from .binaries import Binaries
from .plan import cache_dir, state_dir
from .secure import checked_dir

#: Seconds our engine gets to answer after it starts (it starts containerd first): measured 2-4 s.
START_TIMEOUT = 60.0
#: Unix socket paths are limited to 108 bytes by the kernel (104 on some systems).
MAX_SOCKET_PATH = 104
NAME = "dockerd"


@dataclass(frozen=True)
class Engine:
    """Where the docker CLI (and kind) should talk, and whether we started that engine."""

    host: str  # a DOCKER_HOST value
    ours: bool

    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": self.host}


def engine_dir() -> Path:
    """Our engine's pidfile, log, socket and exec root: beside the lab's state, not inside it."""
    return state_dir().parent / "docker"


def docker_cli() -> str:
    cli = shutil.which("docker")
    if cli is None:
        raise LabError("kind needs the docker command-line client, and none is on PATH: install Docker's CLI "
                       "(Docker's own packages, or Debian's docker.io), then run again")
    return cli


def _answers(host: str) -> bool:
    try:
        proc = commands.run([docker_cli(), "version", "--format", "{{.Server.Version}}"], check=False,
                            env={**os.environ, "DOCKER_HOST": host}, timeout=10)
    except LabError:  # no answer within 10 s
        return False
    return proc.returncode == 0


def ours_host() -> str:
    """The DOCKER_HOST of the engine k8snb starts."""
    return f"unix://{engine_dir() / 'docker.sock'}"


def _ours() -> Engine:
    return Engine(ours_host(), ours=True)


def running() -> Engine | None:
    """The engine to use: ours if it runs, else the user's (DOCKER_HOST or the default socket), or None."""
    proc = processes.read(engine_dir(), NAME) if engine_dir().exists() else None
    if proc is not None and proc.running and _answers(_ours().host):
        return _ours()
    user = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if _answers(user):
        return Engine(user, ours=False)
    return None


def ensure(b: Binaries, log=print) -> Engine:
    """An engine that answers: the one already running, else ours, started now."""
    found = running()
    if found is not None:
        if not found.ours:
            log(f"k8snb kind: using the Docker engine at {found.host} (not started by k8snb, never stopped by it)")
        return found
    d = checked_dir(engine_dir())
    sock = d / "docker.sock"
    if len(str(sock)) > MAX_SOCKET_PATH:
        raise LabError(f"the engine's socket path {sock} is longer than {MAX_SOCKET_PATH} bytes; "
                       "point K8SNB_STATE at a shorter directory")
    data = checked_dir(cache_dir() / "docker")
    argv = [b["dockerd"], "--host", f"unix://{sock}", "--data-root", str(data), "--exec-root", str(d / "exec"),
            "--pidfile", str(d / "dockerd.pid"), "--bridge", "none", "--log-level", "warn"]
    # containerd, its runc shim, runc and docker-proxy: ours first on PATH (dockerd looks them up there).
    env = {"PATH": f"{b.directory}:{os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}"}
    log(f"k8snb kind: starting a Docker engine of our own (socket {sock}, data {data})")
    processes.start(d, NAME, argv, env=env)
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(f"unix://{sock}"):
        proc = processes.read(d, NAME)
        if proc is None or not proc.running:
            raise LabError(f"our Docker engine exited while starting; its log ends:\n{processes.log_tail(d, NAME)}")
        if time.monotonic() > deadline:
            stop()
            raise LabError(f"our Docker engine did not answer on {sock} within {START_TIMEOUT:.0f} s; "
                           f"its log ends:\n{processes.log_tail(d, NAME)}")
        time.sleep(0.5)
    return _ours()


def stop() -> bool:
    """Stop our engine, if it runs (by its recorded PID); an engine the user runs is never touched."""
    d = engine_dir()
    if not d.exists():
        return False
    return processes.stop(d, NAME)
