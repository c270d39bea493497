"""The lab's one polling helper: ask again until a condition holds or a deadline passes.

Every wait of the lab (a component serving its health URL, a socket appearing, nodes Ready, CoreDNS
answering, processes gone) goes through `until`, so every wait has an upper bound and ends with a
message naming what did not happen. A condition that can tell the wait is hopeless (the component
it waits for exited) raises LabError itself, at once, instead of running out the clock.
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

from ..errors import LabError

T = TypeVar("T")


def until(condition: Callable[[], T], timeout: float, interval: float,
          failure: Callable[[], str] | None = None) -> T:
    """Call `condition` every `interval` seconds until it returns something truthy; return that.

    At `timeout` seconds, raise LabError(failure()): the message is made then, so that it can
    quote the latest log lines. Without `failure` the wait is best effort (a process's grace
    period before SIGKILL) and the last falsy result is returned instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result or time.monotonic() >= deadline:
            break
        time.sleep(interval)
    if not result and failure is not None:
        raise LabError(failure())
    return result
