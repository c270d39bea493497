"""Bring-up as an ordered list of named steps, each with its undo (as kind's create actions).

`up` runs the steps in order and logs each name. `down` runs every undo, last step first, whether or
not its step ran, finished or was killed half-way (Ctrl-C, SIGTERM, kill -9): each undo removes
whatever of its step's work exists and returns quietly when there is none. That is what lets `down`
clean up after an interrupted `up` at any point, knowing nothing but the plan saved by the first step.
"""
from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import processes
from .binaries import Binaries
from .pki import Pair
from .plan import LabPlan


@dataclass
class Context:
    """What the steps share: the plan and state directory, and what earlier steps produced.
    `down` has only the plan and the state directory; undos need nothing else."""

    plan: LabPlan
    state: Path
    log: Callable[[str], None]
    binaries: Binaries | None = None
    certs: dict[str, Pair] = field(default_factory=dict)

    @property
    def b(self) -> Binaries:
        """The binaries, which every `do` has (`up` provisions them before the first step)."""
        assert self.binaries is not None, "a step ran without binaries"
        return self.binaries


def nothing(ctx: Context) -> bool:
    """The undo of a step whose work goes with another step's undo (an object in etcd's data,
    a route on the lab bridge)."""
    return False


@dataclass(frozen=True)
class Step:
    """One named stage of `up`. `undo` returns True when it found something to stop or remove."""

    name: str
    do: Callable[[Context], None]
    undo: Callable[[Context], bool] = nothing


def run(steps: Sequence[Step], ctx: Context) -> None:
    """Do the steps in order, logging each name. An error or interrupt propagates as it is: the
    caller then undoes them all (`down`)."""
    for i, step in enumerate(steps, 1):
        ctx.log(f"k8snb lab: [{i}/{len(steps)}] {step.name}")
        step.do(ctx)


def undo(steps: Sequence[Step], ctx: Context) -> bool:
    """Undo every step, last first; True if any undo found something. An undo that fails does not
    stop the ones after it (a later one may be what frees the host); the first error is raised
    once all of them ran."""
    found = False
    failed: Exception | None = None
    for step in reversed(steps):
        try:
            found |= step.undo(ctx)
        except Exception as exc:  # raised below, once the other undos ran
            ctx.log(f"k8snb lab: could not undo {step.name}: {exc}")
            failed = failed or exc
    if failed is not None:
        raise failed
    return found


def remove(state: Path, *children: str) -> bool:
    """Remove files or directories under `state` (no symlink followed); True if any existed."""
    found = False
    for child in children:
        path = state / child
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
            found = True
        elif path.exists() or path.is_symlink():
            path.unlink()
            found = True
    return found


def process_step(name: str, argv: Callable[[Context], list[str]],
                 ready: Callable[[Context], None] | None = None, data: tuple[str, ...] = ()) -> Step:
    """A step that starts one lab process, recorded by PID, and waits until it serves when later
    steps need it to (`ready`). Its undo stops that process and removes its `data` directories."""

    def do(ctx: Context) -> None:
        processes.start(ctx.state, name, argv(ctx))
        if ready is not None:
            ready(ctx)

    def stop(ctx: Context) -> bool:
        stopped = processes.stop(ctx.state, name)
        remove(ctx.state, *data)
        return stopped

    return Step(name, do, stop)
