"""`lab up` as named steps, `lab down` as their undos: the order a learner sees in `up`'s output, and
the contract `down` relies on after an interrupted `up` (every undo runs, whatever failed before it)."""
from __future__ import annotations

import pytest

from k8snb.errors import LabError
from k8snb.lab import steps
from k8snb.lab.control import lab_steps
from k8snb.lab.nodes import backend
from k8snb.lab.plan import LabPlan


def test_up_saves_the_plan_first_and_starts_the_control_plane_before_the_nodes():
    for mode in ("kwok", "real"):
        names = [s.name for s in lab_steps(backend(mode))]
        assert names[0] == "plan saved"
        control_plane = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
        start = names.index("etcd")
        assert names[start:start + 4] == control_plane
        assert names.index("nodes Ready") > start + 3


def test_every_undo_runs_last_first_and_the_first_failure_is_raised(tmp_path):
    undone, lines = [], []

    def undo(name: str, fails: bool = False):
        def run(ctx: steps.Context) -> bool:
            undone.append(name)
            if fails:
                raise LabError(f"{name} would not go")
            return True
        return run

    plan = [steps.Step("a", lambda ctx: None, undo("a")), steps.Step("b", lambda ctx: None, undo("b", fails=True)),
            steps.Step("c", lambda ctx: None, undo("c", fails=True))]
    with pytest.raises(LabError, match="c would not go"):
        steps.undo(plan, steps.Context(LabPlan(), tmp_path, lines.append))
    assert undone == ["c", "b", "a"]
    assert lines == ["k8snb lab: could not undo c: c would not go", "k8snb lab: could not undo b: b would not go"]


def test_down_where_nothing_ran_finds_nothing(tmp_path):
    ctx = steps.Context(LabPlan(), tmp_path, print)
    assert steps.undo(lab_steps(backend("kwok")), ctx) is False
    assert list(tmp_path.iterdir()) == []
