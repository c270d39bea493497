"""Wait for a cluster that is still starting, with a progress bar and a bounded time.

On Binder, `binder/start` launches the cluster in the background (the lab with simulated nodes on
mybinder.org, kind where Docker answers) so that JupyterLab opens at once; it exports KUBECONFIG to
where the kubeconfig will be and K8SNB_LAB_LOG to the start log, whose last line is
`k8snb-lab-exit <status>`. Notebook 00 calls `wait_for_cluster()` before `connect()`. Without a
start log (a learner's own cluster, `make jupyter`) there is nothing to wait for and it returns at
once.
"""
from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from .errors import LabError, NotReadyInTime

LOG_ENV = "K8SNB_LAB_LOG"
EXIT_MARK = "k8snb-lab-exit"
#: The lab with simulated nodes is Ready in about 15 s on one free core; a cold machine, a loaded
#: one or kind take longer. Past this bound the learner gets a message instead of a spinner.
READY_TIMEOUT = 300.0
#: A start log that does not appear within this many seconds means nothing was started.
LOG_GRACE = 15.0
STAGES = ("cluster start launched", "kubeconfig written", "API server listening", "cluster Ready")
_EXIT = re.compile(rf"^{EXIT_MARK} (\d+)\s*$")


@dataclass(frozen=True)
class StartLog:
    """What the start log says so far."""

    exists: bool
    exit_status: int | None
    lines: list[str]

    @property
    def summary(self) -> str:
        """The last line that says something (the lab's own error or Ready line)."""
        for line in reversed(self.lines):
            if line.strip() and not _EXIT.match(line) and not line.startswith("Traceback"):
                return line.strip()
        return "(empty)"


def read_start_log(path: str | os.PathLike) -> StartLog:
    p = Path(path)
    if not p.exists():
        return StartLog(False, None, [])
    lines = p.read_text(errors="replace").splitlines()
    status = None
    for line in lines:
        m = _EXIT.match(line)
        if m:
            status = int(m.group(1))
    return StartLog(True, status, lines)


def _server_address(kubeconfig: str) -> tuple[str, int] | None:
    """(host, port) of the first cluster in a kubeconfig file; None while it is absent or partial."""
    import yaml

    try:
        doc = yaml.safe_load(Path(kubeconfig).read_text()) or {}
        server = urlparse(doc["clusters"][0]["cluster"]["server"])
    except (OSError, yaml.YAMLError, KeyError, IndexError, TypeError):
        return None
    if not server.hostname:
        return None
    return server.hostname, server.port or (443 if server.scheme == "https" else 80)


def _listening(address: tuple[str, int] | None) -> bool:
    if address is None:
        return False
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def _stage(log: StartLog, kubeconfig: str | None) -> int:
    """How many of STAGES are done."""
    if not log.exists:
        return 0
    if log.exit_status == 0:
        return 4
    if not kubeconfig or not os.path.exists(kubeconfig):
        return 1
    return 3 if _listening(_server_address(kubeconfig)) else 2


def wait_for_cluster(timeout: float = READY_TIMEOUT, log: str | None = None, kubeconfig: str | None = None,
                     poll: float = 0.5, progress: bool = True) -> str:
    """Wait until the cluster that `binder/start` launched is Ready; return (and print) which one.

    `log` defaults to $K8SNB_LAB_LOG and `kubeconfig` to the first path in $KUBECONFIG. Without a
    start log, returns "" at once. Raises LabError (the start failed: its last line and the log's
    path) or NotReadyInTime (not Ready within `timeout` seconds, naming the log).
    """
    log = log or os.environ.get(LOG_ENV)
    if not log:
        return ""
    if kubeconfig is None:
        kubeconfig = next((p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p), None)
    started = time.monotonic()
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(STAGES), desc="waiting for the cluster", bar_format="{desc}: {bar} {n}/{total} "
                   "[{elapsed}] {postfix}")
    done = 0
    try:
        while True:
            state = read_start_log(log)
            if state.exit_status not in (None, 0):
                raise LabError(f"the cluster did not start (exit {state.exit_status}): {state.summary} "
                               f"-- the whole log is in {log}")
            now = _stage(state, kubeconfig)
            if bar is not None and now != done:
                bar.update(now - done)
                bar.set_postfix_str(STAGES[now - 1] if now else "")
            done = now
            elapsed = time.monotonic() - started
            if done == len(STAGES):
                break
            if not state.exists and elapsed > LOG_GRACE:
                raise LabError(f"no start log at {log} after {LOG_GRACE:.0f} s: nothing is starting a cluster "
                               "(binder/start launches it); start the lab with `k8snb lab up`")
            if elapsed > timeout:
                raise NotReadyInTime(f"the cluster was not Ready within {timeout:.0f} s (last step done: "
                                     f"{STAGES[done - 1] if done else 'none'}; last log line: {state.summary}); "
                                     f"the whole log is in {log}")
            time.sleep(poll)
    finally:
        if bar is not None:
            bar.close()
    message = _describe(state, log, time.monotonic() - started)
    print(message)
    return message


def _describe(state: StartLog, log: str, waited: float) -> str:
    first = state.lines[0] if state.lines else ""
    ready = next((line for line in reversed(state.lines) if "Ready" in line or "already running" in line), "")
    if "kind cluster" in first:
        what = "a kind cluster: its nodes are real containers, so pods carry traffic and results are MEASURED"
    elif "simulated" in first or "kwok" in ready:
        what = ("the course's lab with simulated nodes (no Docker here, so no kind): the API server, scheduler "
                "and controllers are real, pods get real IPs, but no packet flows, so traffic results are "
                "MODELED, and every table and plot says so")
    else:
        what = "the cluster started in the background"
    return (f"k8snb: Ready after waiting {waited:.0f} s: {what}."
            + (f"\n  {ready.strip()}" if ready else "") + f"\n  start log: {log}")
