"""Shared fixtures and the suite's two tiers.

Tiers, by folder (what a test needs), so that a newcomer's `make test` proves the course quickly and
CI's `make check` proves everything:
- `make test` (README's command): tests/unit (no cluster), tests/course (the course on the current
  cluster, each notebook executed once) and tests/browser (the handouts in Chromium);
- `make check` (`.ci/run`): the above, then every test marked `check`: tests/lab (the lab's own
  CLI, faults, security, network models, Docker beside it), tests/classroom, tests/packaging (the
  wheel, Binder simulated) and tests/kind, plus single tests that re-run a notebook.
A test marked `optin("VAR")` is deselected (never skipped) unless VAR is set: it needs a cluster or
a host state the suite does not make itself (kind, a lab it may stop). With `CI` set, a test that
skips is a failure: a missing prerequisite never hides.

The cluster is, in order: the one KUBECONFIG points at (if it answers), the running lab, or a lab
this session starts (simulated nodes unless K8SNB_LAB_NODES=real) and stops at the end.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import labtools
import pytest

import k8snb
from k8snb import lab
from k8snb.errors import K8snbError

TESTS = Path(__file__).resolve().parent
#: Folders of the first tier, `make test`: the course proven on one cluster.
COURSE_TIER = {"unit", "course", "browser"}
#: Folders whose every test is an opt-in: (folder, variable).
OPTIN_FOLDERS = {"kind": "K8SNB_REQUIRE_KIND"}


def pytest_configure(config):
    config.addinivalue_line("markers", "check: CI's tier (`make check`), left out of `make test`")
    config.addinivalue_line("markers", "optin(variable): runs only when the environment variable is set")
    labtools.count_notebook_runs()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark the CI tier by folder and deselect the opt-ins whose variable is unset (before `-m`)."""
    kept, dropped = [], []
    for item in items:
        folder = Path(item.path).resolve().relative_to(TESTS).parts[0]
        if folder not in COURSE_TIER:
            item.add_marker("check")
        if folder in OPTIN_FOLDERS:
            item.add_marker(pytest.mark.optin(OPTIN_FOLDERS[folder]))
        wanted = [m.args[0] for m in item.iter_markers("optin")]
        (kept if all(os.environ.get(v) for v in wanted) else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI a skip is a failure: a test that lacks its prerequisite must not pass unnoticed."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"CI is set, so this test may not skip: {reason}"


def pytest_terminal_summary(terminalreporter):
    runs = labtools.NOTEBOOK_RUNS
    line = ", ".join(f"{name} x{n}" for name, n in sorted(runs.items())) or "none"
    terminalreporter.write_line(f"notebook executions in this run: {sum(runs.values())} ({line})")


def pytest_sessionfinish(session, exitstatus):
    """`make test` promises one execution per notebook: K8SNB_MAX_NOTEBOOK_RUNS holds it to that."""
    limit = os.environ.get("K8SNB_MAX_NOTEBOOK_RUNS")
    over = {n: c for n, c in labtools.NOTEBOOK_RUNS.items() if limit and c > int(limit)}
    if over and session.exitstatus == 0:
        print(f"\nnotebooks executed more than {limit} time(s): {over}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _fail_or_skip(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI needs a cluster: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def cluster():
    """A connected k8snb.Cluster; starts the lab when nothing else is available."""
    started = False
    if not os.environ.get("KUBECONFIG") and not lab.status().running:
        if os.environ.get("K8SNB_NO_LAB"):
            _fail_or_skip("no cluster configured and K8SNB_NO_LAB is set")
        nodes = os.environ.get("K8SNB_LAB_NODES", "kwok")
        try:
            lab.up(lab.LabPlan(nodes_mode=nodes))
        except K8snbError as exc:
            _fail_or_skip(f"could not start the lab: {exc}")
        started = True
    if not os.environ.get("KUBECONFIG"):
        os.environ["KUBECONFIG"] = str(lab.kubeconfig_path())
    try:
        c = k8snb.connect(quiet=True)
    except K8snbError as exc:
        _fail_or_skip(str(exc))
    yield c
    if started:
        lab.down(quiet=True)


@pytest.fixture(scope="session")
def executed(cluster, tmp_path_factory):
    """Every notebook executed once per session, exported as a handout and kept as `<name>.ipynb`:
    (folder, index.html, the build's error or ''). The notebook tests read these outputs and the
    browser tests open these handouts, instead of each executing all five again."""
    from k8snb import handouts

    out = tmp_path_factory.mktemp("executed")
    try:
        return out, handouts.build_handouts(output=out, keep_executed=True), ""
    except K8snbError as exc:  # a failed notebook: its test reads the error from its outputs
        return out, out / "index.html", str(exc)


@pytest.fixture(scope="session")
def real_nodes(cluster) -> bool:
    return k8snb.can_carry_traffic(cluster)


@pytest.fixture
def needs_traffic(cluster, real_nodes):
    """Skip on simulated nodes, unless the run promised real nodes (then it is a failure)."""
    if not real_nodes:
        if os.environ.get("K8SNB_REQUIRE_REAL"):
            pytest.fail("K8SNB_REQUIRE_REAL is set but the cluster's pods cannot carry traffic")
        pytest.skip("the cluster's nodes are simulated (kwok): no packet can flow")


def _namespace(cluster, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    k8snb.apply(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture
def namespace(cluster):
    """A fresh namespace (labelled part-of=k8snb), deleted after the test."""
    name = _namespace(cluster, "t")
    yield name
    cluster.api.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def namespace2(cluster):
    """A second fresh namespace, for the article's `nginx` namespace in cross-namespace tests."""
    name = _namespace(cluster, "t2")
    yield name
    cluster.api.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="session")
def article_namespaces(cluster):
    """The two namespaces the article's objects live in for the whole session: set up once, where
    each test used to make its own pair (a namespace, three Deployments, two Services each time)."""
    names = _namespace(cluster, "a"), _namespace(cluster, "a2")
    yield names
    for name in names:
        cluster.api.delete(f"/api/v1/namespaces/{name}")


@pytest.fixture
def article(cluster, needs_traffic, article_namespaces):
    """The article's objects, set up as notebook 03 does and brought back to that state before
    each test (applied again, one replica, every Deployment ready, both Services answering the
    client): what one test scaled, replaced or broke does not leak into the next.
    Returns (namespace, nginx namespace)."""
    from k8snb import course

    namespace, nginx_namespace = article_namespaces
    course.ensure_article(cluster, namespace=namespace, nginx_namespace=nginx_namespace)
    return namespace, nginx_namespace
