"""Start and stop the lab's processes by PID, never by name.

Each process gets a pidfile and a log in the lab's state directory. A process is identified by its
PID, its start time (field 22 of /proc/<pid>/stat, in clock ticks since boot) and the binary it
runs (/proc/<pid>/exe); all three are checked again before every signal, so a recycled PID or
somebody else's process of the same name is never touched.
"""
from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import LabError
from . import wait
from .constants import NETNS_DIR
from .secure import checked_dir, read_private, write_private

#: Seconds a process gets to exit after SIGTERM before SIGKILL.
STOP_GRACE = 10.0
#: Seconds a process started through nsenter gets to exec the component (milliseconds, normally).
EXEC_TIMEOUT = 10.0


@dataclass(frozen=True)
class Proc:
    name: str
    pid: int
    exe: str
    running: bool
    started: int = 0  # start time in clock ticks since boot, as /proc/<pid>/stat says


def start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot), or None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])


def _pidfile(state: Path, name: str) -> Path:
    return state / "run" / f"{name}.pid"


def start(state: Path, name: str, argv: list[str], env: dict[str, str] | None = None,
          netns: str | None = None) -> int:
    """Start `argv` detached (own session), logging to state/logs/<name>.log; return its PID."""
    checked_dir(state / "run")
    checked_dir(state / "logs")
    log = os.fdopen(os.open(state / "logs" / f"{name}.log",
                            os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600), "ab")
    exe = argv[0]
    if netns:
        # Only the network namespace: `ip netns exec` would also give each process a private mount
        # namespace, and containerd would then not see the volumes kubelet mounts for its pods.
        argv = ["nsenter", f"--net={NETNS_DIR / netns}", "--", *argv]
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})}, start_new_session=True, close_fds=True)
    log.close()
    # nsenter execs the target, so the PID is the component itself (its start time does not change);
    # until it has, /proc/<pid>/exe is nsenter's, and a check right after start would take the
    # component for gone. Returned once the exec happened (or the process ended).
    target = os.path.realpath(shutil.which(exe) or exe)
    wait.until(lambda: proc.poll() is not None or
               (os.path.realpath(_exe(proc.pid) or "").removesuffix(" (deleted)") == target),
               EXEC_TIMEOUT, 0.01)
    write_private(_pidfile(state, name), f"{proc.pid} {start_time(proc.pid) or 0} {exe}\n")
    return proc.pid


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None


def read(state: Path, name: str) -> Proc | None:
    """The process recorded under `name`, and whether that PID is still the process we started
    (same start time, same binary). LabError in one line for an empty or corrupt pidfile."""
    path = _pidfile(state, name)
    if not path.exists():
        return None
    try:
        fields = read_private(path).split(None, 2)
        if len(fields) == 2:  # written by an older k8snb: "pid exe", no start time
            pid, exe = int(fields[0]), fields[1].strip()
            started = start_time(pid) or 0
        else:
            pid, started, exe = int(fields[0]), int(fields[1]), fields[2].strip()
    except (ValueError, IndexError):
        raise LabError(f"the pidfile {path} is empty or corrupt; `k8snb lab down` removes the lab "
                       "without it") from None
    return Proc(name, pid, exe, _same(pid, started, exe), started)


def _same(pid: int, started: int, exe: str) -> bool:
    actual = _exe(pid)
    return (actual is not None and start_time(pid) == started
            and os.path.realpath(actual).removesuffix(" (deleted)") == os.path.realpath(exe))


def recorded(state: Path) -> list[Proc]:
    run = state / "run"
    if not run.exists():
        return []
    return [p for p in (read(state, f.stem) for f in sorted(run.glob("*.pid"))) if p]


def strays(state: Path, programs: tuple[Path, ...]) -> list[Proc]:
    """Processes the lab started but has no (readable) pidfile for: a start killed between spawning
    a process and recording it, or a corrupt pidfile. Found only among `programs` (the lab's own
    binaries), and only when their command line names this state directory: call it once every
    recorded process was stopped."""
    marker = str(state) + "/"
    roots = tuple(str(p) for p in programs)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        exe = _exe(pid)
        if exe is None or not os.path.realpath(exe).removesuffix(" (deleted)").startswith(roots):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        started = start_time(pid)
        if marker in cmdline and started is not None:
            found.append(Proc(Path(exe).name, pid, os.path.realpath(exe).removesuffix(" (deleted)"), True, started))
    return found


def stop_proc(proc: Proc) -> None:
    """SIGTERM, then SIGKILL after STOP_GRACE; each signal only if the PID is still `proc`."""
    _signal(proc, signal.SIGTERM)
    if not wait.until(lambda: not _alive(proc), STOP_GRACE, 0.1):
        _signal(proc, signal.SIGKILL)
        wait.until(lambda: not _alive(proc), math.inf, 0.05)  # SIGKILL cannot be refused


def forget_corrupt(state: Path) -> list[str]:
    """Remove pidfiles that cannot be read (their process cannot be identified, so it is not
    signalled); return their names, for `down` to report."""
    names = []
    for f in sorted((state / "run").glob("*.pid")) if (state / "run").exists() else []:
        try:
            read(state, f.stem)
        except LabError:
            f.unlink()
            names.append(f.stem)
    return names


def stop(state: Path, name: str) -> bool:
    """SIGTERM, then SIGKILL after STOP_GRACE, the process we recorded; True if it was running."""
    proc = read(state, name)
    if proc is None:
        return False
    if proc.running:
        stop_proc(proc)
    _pidfile(state, name).unlink(missing_ok=True)
    return proc.running


def _signal(proc: Proc, sig: int) -> None:
    """Signal `proc` only if its PID still is that process (checked just before, every time)."""
    if _same(proc.pid, proc.started, proc.exe):
        try:
            os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass


def _alive(proc: Proc) -> bool:
    try:
        os.waitpid(proc.pid, os.WNOHANG)
    except ChildProcessError:
        pass
    return _same(proc.pid, proc.started, proc.exe)


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


def check_running(state: Path, name: str, lines: int = 8) -> None:
    """Raise LabError quoting its log when the process recorded as `name` has exited: a wait for
    it to serve then ends at once rather than at its deadline."""
    proc = read(state, name)
    if proc is not None and not proc.running:
        raise LabError(f"{name} exited during start-up; last log lines:\n{log_tail(state, name, lines)}")


def log_tail(state: Path, name: str, lines: int = 8) -> str:
    path = state / "logs" / f"{name}.log"
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
