"""Start and stop the lab's processes by PID, never by name.

Each process gets a pidfile and a log in the lab's state directory. Stopping checks that the PID
still runs the binary we started (its /proc/<pid>/exe) before signalling it, so a recycled PID or
somebody else's process of the same name is never touched.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabError

#: Seconds a process gets to exit after SIGTERM before SIGKILL.
STOP_GRACE = 10.0


@dataclass(frozen=True)
class Proc:
    name: str
    pid: int
    exe: str
    running: bool


def _pidfile(state: Path, name: str) -> Path:
    return state / "run" / f"{name}.pid"


def start(state: Path, name: str, argv: list[str], env: dict[str, str] | None = None,
          netns: str | None = None) -> int:
    """Start `argv` detached (own session), logging to state/logs/<name>.log; return its PID."""
    (state / "run").mkdir(parents=True, exist_ok=True)
    (state / "logs").mkdir(parents=True, exist_ok=True)
    log = open(state / "logs" / f"{name}.log", "ab")
    exe = argv[0]
    if netns:
        # Only the network namespace: `ip netns exec` would also give each process a private mount
        # namespace, and containerd would then not see the volumes kubelet mounts for its pods.
        argv = ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, start_new_session=True, close_fds=True)
    log.close()
    # nsenter execs the target, so the PID is the component itself.
    _pidfile(state, name).write_text(f"{proc.pid} {exe}\n")
    return proc.pid


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def read(state: Path, name: str) -> Proc | None:
    """The process recorded under `name`, and whether that PID still runs the same binary."""
    path = _pidfile(state, name)
    if not path.exists():
        return None
    pid_s, exe = path.read_text().split(None, 1)
    pid, exe = int(pid_s), exe.strip()
    actual = _exe(pid)
    running = actual is not None and os.path.realpath(actual).removesuffix(" (deleted)") == os.path.realpath(exe)
    return Proc(name, pid, exe, running)


def recorded(state: Path) -> list[Proc]:
    run = state / "run"
    if not run.exists():
        return []
    return [p for p in (read(state, f.stem) for f in sorted(run.glob("*.pid"))) if p]


def stop(state: Path, name: str) -> bool:
    """SIGTERM, then SIGKILL after STOP_GRACE, the process we recorded; True if it was running."""
    proc = read(state, name)
    if proc is None:
        return False
    if proc.running:
        os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline and _alive(proc):
            time.sleep(0.1)
        if _alive(proc):
            os.kill(proc.pid, signal.SIGKILL)
            while _alive(proc):
                time.sleep(0.05)
    _pidfile(state, name).unlink(missing_ok=True)
    return proc.running


def _alive(proc: Proc) -> bool:
    try:
        os.waitpid(proc.pid, os.WNOHANG)
    except ChildProcessError:
        pass
    exe = _exe(proc.pid)
    if exe is None:
        return False
    try:
        with open(f"/proc/{proc.pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port (so the lab can take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def require_ports(ports: dict[int, str], host: str = "127.0.0.1") -> None:
    """Refuse to start when a port the lab needs is taken, naming the port and the fix."""
    for port, what in ports.items():
        if not port_free(port, host):
            raise LabError(
                f"port {port} on {host} is already in use (needed for the lab's {what}); stop whatever "
                f"listens there (`ss -ltnp 'sport = :{port}'`) or pick another port with --port"
            )


def log_tail(state: Path, name: str, lines: int = 8) -> str:
    path = state / "logs" / f"{name}.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
