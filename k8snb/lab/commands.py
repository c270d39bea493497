"""The lab's one helper for short-lived commands: ip, iptables, sysctl, umount, nsenter, kubectl,
the host-setup recipe. (Long-running ones, with pidfiles and logs, are `processes`.)

Always an argv list, never a shell. A failure raises LabError in the same form everywhere: what was
run, its exit status and the last lines it printed, so that one line tells a learner which command
of the lab failed and why.
"""
from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from ..errors import LabError
from .binaries import Binaries

#: Lines of a failed command's output quoted in the error.
TAIL = 10


def run(argv: Sequence[str], what: str | None = None, *, check: bool = True, stdin: str | None = None,
        env: dict[str, str] | None = None, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run `argv` to completion, capturing its output. With `check`, a non-zero exit raises
    LabError naming `what` (default: the command line) and quoting stderr, or stdout when the
    command wrote its complaint there. With `timeout`, a command still running then is killed and
    LabError says so (whatever `check` says: a command that hangs has no result to return)."""
    try:
        proc = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise LabError(f"{what or '`' + ' '.join(argv) + '`'} did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-TAIL:]
        raise LabError(f"{what or '`' + ' '.join(argv) + '`'} failed (exit {proc.returncode})"
                       + (":\n" + "\n".join(said) if len(said) > 1 else f": {said[0]}" if said else ""))
    return proc


def kubectl(b: Binaries, state: Path, *args: str, stdin: str | None = None) -> str:
    """kubectl as the lab's admin (its own kubeconfig, whatever KUBECONFIG says); its output."""
    from .kubeconfig import user_path  # here: kubeconfig runs kubectl through `run` to merge

    return run([b["kubectl"], f"--kubeconfig={user_path(state)}", *args], f"kubectl {' '.join(args[:3])}",
               stdin=stdin).stdout
