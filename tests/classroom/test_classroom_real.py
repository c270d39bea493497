"""A class on one shared cluster: `k8snb classroom up` for six learners, JupyterHub spawning their
JupyterLab servers as pods, notebook 03 run in all six at once with their own accounts and namespaces,
each learner's traffic reaching only their own replicas; isolation between learners object by
object; the quota; `classroom down` leaving nothing.

Run: `KUBECONFIG=$(k8snb lab kubeconfig) pytest tests/e2e/test_classroom_real.py`. On simulated
nodes the RBAC, quota and down tests run; the notebook run and the policy probe need real nodes.
"""
from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import time
from pathlib import Path

import labtools
import nbformat
import pytest

import k8snb
from k8snb import classroom
from k8snb.manifests import CLASSROOM


pytestmark = pytest.mark.cluster

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "03_services_discovery_and_load_balancing.ipynb"
LEARNERS = 6
#: The hub's and proxy's processes, left running by the hub test for `classroom down` to stop.
RUNNING: list = []
POD_NAME = re.compile(r"\bnginx-hello-[a-z0-9]{6,10}-[a-z0-9]{5}\b")


@pytest.fixture(scope="module")
def teacher():
    try:
        return k8snb.connect(quiet=True)
    except k8snb.K8snbError as exc:
        pytest.skip(f"no cluster: {exc}")


@pytest.fixture(scope="module")
def room(teacher, tmp_path_factory):
    """Six learners and their kubeconfigs; `classroom down` afterwards, whatever happened."""
    group = classroom.learners(count=LEARNERS)
    out = tmp_path_factory.mktemp("kubeconfigs")
    try:
        classroom.up(teacher, group)
        files = classroom.write_kubeconfigs(teacher, group, out, seconds=3600)
        yield group, dict(zip(files["learner"], files["kubeconfig"]))
    finally:
        if teacher.is_lab and RUNNING:  # the hub test's hub, when the down test did not run
            from k8snb.lab import hub as labhub

            labhub.stop()
        classroom.down(teacher)


def test_up_made_every_learner_their_objects(teacher, room):
    group, files = room
    for learner in group:
        for ns in learner.namespaces:
            got = teacher.api.get(f"/api/v1/namespaces/{ns}")
            assert got["metadata"]["labels"][CLASSROOM] == learner.name
            assert got["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
            for path in ("/api/v1/namespaces/{ns}/resourcequotas/k8snb-learner",
                         "/api/v1/namespaces/{ns}/limitranges/k8snb-learner",
                         "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/k8snb-own-namespaces",
                         "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings/" + classroom.LEARNER_ROLE):
                assert teacher.api.exists(path.format(ns=ns)), path.format(ns=ns)
        assert teacher.api.exists(f"/api/v1/namespaces/{learner.namespace}/serviceaccounts/{classroom.LEARNER_ACCOUNT}")
        server = teacher.api.get(f"/apis/networking.k8s.io/v1/namespaces/{learner.namespace}/networkpolicies/"
                                 "k8snb-hub-to-server")
        assert server == {**server, "spec": classroom.server_policy(learner, classroom.hub_source(teacher))["spec"]}
        assert teacher.api.exists(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{learner.namespace}/rolebindings/"
                                  f"{classroom.SPAWNER_ROLE}")  # the hub spawns here, and only here
        assert not teacher.api.exists(f"/apis/rbac.authorization.k8s.io/v1/namespaces/{learner.second_namespace}/"
                                      f"rolebindings/{classroom.SPAWNER_ROLE}")
        assert os.stat(files[learner.name]).st_mode & 0o077 == 0  # a token: readable by the teacher only
    # Running up again converges; the status lists all six with their policies.
    classroom.up(teacher, group)
    table = classroom.status(teacher)
    assert sorted(table["learner"]) == [x.name for x in group]
    assert (table["network_policies"] == 2).all()
    assert (table["pods_quota"] == classroom.Quota().pods + classroom.SECOND_QUOTA.pods).all()
    for _, plural, kind in classroom.CLUSTER_WIDE[:2]:  # the externalIPs policy and its binding
        assert teacher.api.exists(f"/apis/admissionregistration.k8s.io/v1/{plural}/{classroom.EXTERNAL_IPS_POLICY}")


def test_a_learners_service_may_not_claim_an_external_ip(teacher, room):
    """CVE-2020-8554: a Service with `externalIPs: [172.29.0.1]` on the hub's port would draw the
    other learners' servers' calls to the hub, tokens included. Refused: on the lab by its API
    server's DenyServiceExternalIPs, on any cluster by the policy `classroom up` applies."""
    group, files = room
    a = group[0]
    mine = k8snb.connect(quiet=True, kubeconfig=files[a.name])
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "grab", "namespace": a.namespace},
               "spec": {"selector": {"app": "grab"}, "ports": [{"port": 18081}], "externalIPs": ["172.29.0.1"]}}
    with pytest.raises(k8snb.K8snbError, match="(?i)external ?ips") as refused:
        mine.api.request("POST", f"/api/v1/namespaces/{a.namespace}/services", body=service,
                         params={"dryRun": "All"})
    assert getattr(refused.value, "status", None) in (403, 422), refused.value
    # The policy itself, whatever the API server's own plugins: the teacher's dry run in a classroom
    # namespace meets it too (on the lab, the plugin may answer first).
    with pytest.raises(k8snb.K8snbError, match="(?i)external ?ips"):
        teacher.api.request("POST", f"/api/v1/namespaces/{a.namespace}/services", body=service,
                            params={"dryRun": "All"})


def test_a_learners_pod_may_not_take_a_critical_priority(teacher, room):
    """A pod at system-node-critical would preempt other learners' servers: the classroom's quota
    for those priority classes is zero pods."""
    group, _ = room
    ns = group[0].namespace
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "preempt", "namespace": ns},
           "spec": {"priorityClassName": "system-node-critical",
                    "containers": [{"name": "c", "image": "nicolaka/netshoot", "args": ["sleep", "1"]}]}}
    with pytest.raises(k8snb.K8snbError, match="(?i)quota|forbidden") as refused:
        teacher.api.request("POST", f"/api/v1/namespaces/{ns}/pods", body=pod, params={"dryRun": "All"})
    assert getattr(refused.value, "status", None) == 403, refused.value


def test_up_refuses_a_namespace_it_did_not_make(teacher, room):
    intruder = classroom.Learner("intruder")
    teacher.api.request("POST", "/api/v1/namespaces", body={"metadata": {"name": intruder.namespace}}, ok=(409,))
    try:
        with pytest.raises(k8snb.Conflict, match=f"namespace {intruder.namespace} already exists"):
            classroom.up(teacher, [intruder])
        labels = teacher.api.get(f"/api/v1/namespaces/{intruder.namespace}")["metadata"].get("labels", {})
        assert CLASSROOM not in labels
    finally:
        teacher.api.delete(f"/api/v1/namespaces/{intruder.namespace}")


def _objects(teacher, learner) -> dict[str, str]:
    """URL -> uid of the course's Deployments and Services in a learner's namespaces."""
    found = {}
    for prefix, plural in (("/apis/apps/v1", "deployments"), ("/api/v1", "services")):
        for ns in learner.namespaces:
            for obj in teacher.api.list(f"{prefix}/namespaces/{ns}/{plural}", labelSelector=k8snb.manifests.SELECTOR):
                found[f"{prefix}/namespaces/{ns}/{plural}/{obj['metadata']['name']}"] = obj["metadata"]["uid"]
    return found


def test_a_learner_cannot_read_or_break_another_learners_work(teacher, room):
    group, files = room
    a, b = group[0], group[1]
    k8snb.article(teacher, namespace=b.namespace, nginx_namespace=b.second_namespace)
    theirs = _objects(teacher, b)
    assert len(theirs) >= 4
    mine = k8snb.connect(quiet=True, kubeconfig=files[a.name])
    for path in (f"/api/v1/namespaces/{b.namespace}/pods", f"/api/v1/namespaces/{b.namespace}/services",
                 f"/api/v1/namespaces/{b.second_namespace}/configmaps", "/api/v1/pods", "/api/v1/namespaces"):
        with pytest.raises(k8snb.Forbidden, match="forbidden: .*Ask the cluster's admin"):
            mine.api.list(path)
    with pytest.raises(k8snb.Forbidden):
        mine.api.get(f"/api/v1/namespaces/{b.namespace}/services/nginx-svc")
    with pytest.raises(k8snb.Forbidden):
        mine.api.delete(f"/apis/apps/v1/namespaces/{b.namespace}/deployments/nginx-hello")
    with pytest.raises(k8snb.Forbidden):
        k8snb.scale(mine, "nginx-hello", 3, namespace=b.namespace)
    # A's own cleanup, and a cleanup aimed at B's namespaces, leave B's objects as they were.
    k8snb.article(mine, namespace=a.namespace, nginx_namespace=a.second_namespace)
    mine_removed = k8snb.cleanup(mine, namespaces=a.namespaces)
    assert set(mine_removed["namespace"]) <= set(a.namespaces)
    k8snb.cleanup(mine, namespaces=b.namespaces, wait=False)
    for path, uid in theirs.items():
        got = teacher.api.exists(path)
        assert got and got["metadata"]["uid"] == uid, f"{path} of {b.name} was touched"
    # The learner's namespaces themselves stay (the teacher's), emptied of the course's objects.
    for ns in a.namespaces:
        assert teacher.api.exists(f"/api/v1/namespaces/{ns}")
    k8snb.cleanup(teacher, namespaces=b.namespaces)


def test_the_quota_stops_a_learner_who_scales_to_50(teacher, room):
    group, files = room
    a = group[2]
    mine = k8snb.connect(quiet=True, kubeconfig=files[a.name])
    k8snb.article(mine, namespace=a.namespace, nginx_namespace=a.second_namespace)
    # Notebook 03's slider maximum fits (the quota leaves room for the JupyterLab server beside it).
    from k8snb.widgets import MAX_REPLICAS

    k8snb.scale(mine, "nginx-hello", MAX_REPLICAS, namespace=a.namespace)
    assert len(k8snb.wait_deployment(mine, "nginx-hello", a.namespace, timeout=180, progress=False)) == MAX_REPLICAS
    k8snb.scale(mine, "nginx-hello", 50, namespace=a.namespace)
    with pytest.raises(k8snb.NotReadyInTime, match="refuses to create more: .*exceeded quota"):
        k8snb.wait_deployment(mine, "nginx-hello", a.namespace, timeout=120, progress=False)
    pods = mine.api.list(f"/api/v1/namespaces/{a.namespace}/pods")
    assert len(pods) <= classroom.Quota().pods
    k8snb.cleanup(mine, namespaces=a.namespaces)


def _watch(teacher, namespaces, seen: dict, peaks: dict, stop: threading.Event) -> None:
    """Every pod name that appears in each namespace while the notebooks run, and each namespace's
    peak pods, CPU and memory from the kubelets (classroom.footprint) every few seconds."""
    last = 0.0
    while not stop.is_set():
        for ns in namespaces:
            for pod in teacher.api.list(f"/api/v1/namespaces/{ns}/pods"):
                seen.setdefault(ns, set()).add(pod["metadata"]["name"])
        if time.monotonic() - last > 5:
            last = time.monotonic()
            for row in classroom.footprint(teacher, namespaces).to_dict("records"):
                peak = peaks.setdefault(row["namespace"], {"pods": 0, "cpu_millicores": 0.0, "memory_mib": 0.0})
                for key in peak:
                    peak[key] = max(peak[key], row[key])
        time.sleep(1.0)


def _spread_pods(nb) -> set[str]:
    """The replicas named in the outputs of the cells that send traffic through nginx-svc."""
    names = set()
    for cell in nb.cells:
        if cell.source.strip() == "summary" or "k8snb.sweep(" in cell.source:
            for out in cell.get("outputs", []):
                text = out.get("text", "") + "".join(str(v) for k, v in out.get("data", {}).items()
                                                     if k.startswith("text/"))
                names |= set(POD_NAME.findall(text))
    return names


def _hub_api(hub, method: str, path: str, token: str) -> dict | None:
    req = urllib.request.Request(hub.api + path, method=method, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        body = resp.read()
    return json.loads(body) if body else None


def _log_in(hub, name: str, password: str) -> int:
    """Log in at the hub's form as a learner would; the HTTP status of the form's answer (302: in)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect())
    page = opener.open(hub.url + "hub/login", timeout=30).read().decode()
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"username": name, "password": password, "_xsrf": xsrf}).encode()
    try:
        return opener.open(hub.url + "hub/login", data=form, timeout=30).status
    except urllib.error.HTTPError as exc:
        return exc.code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_jupyterhub_spawns_six_servers_and_each_runs_notebook_03(teacher, room, tmp_path):
    """Acceptance 1: the hub on the host spawns each learner's JupyterLab as a pod in the learner's
    namespace (KubeSpawner); notebook 03 is executed inside all six pods at once, each with the
    learner's own ServiceAccount and namespaces, and each learner's traffic reaches only their pods."""
    if not (teacher.is_lab and k8snb.can_carry_traffic(teacher)):
        pytest.skip("the classroom's hub runs on the lab with real nodes (elsewhere: Zero to JupyterHub)")
    from k8snb.lab import hub as labhub

    group, _ = room
    hub = labhub.start([x.name for x in group])
    state = labhub.state_dir()
    RUNNING.extend(labhub.processes.read(state, name) for name in ("jupyterhub", "configurable-http-proxy"))
    assert all(proc and proc.running for proc in RUNNING), RUNNING
    try:
        _hub_has_the_spawner_rights_only(labhub.hub_dir() / "kubeconfig", group)
        token = hub.token_file.read_text().strip()
        passwords = labhub.read_passwords(hub.password_file)
        assert sorted(passwords) == sorted(x.name for x in group) and len(set(passwords.values())) == len(group)
        assert os.stat(hub.password_file).st_mode & 0o077 == 0
        a, b = group[0].name, group[1].name
        assert _log_in(hub, a, passwords[a]) == 302
        assert _log_in(hub, a, passwords[b]) == 403  # B's password does not open A's server
        assert _log_in(hub, a, passwords[a] + "x") == 403
        assert _log_in(hub, "not-a-learner", passwords[a]) == 403
        for learner in group:
            _hub_api(hub, "POST", f"/users/{learner.name}/server", token)
        deadline = time.monotonic() + 300
        while not all(((_hub_api(hub, "GET", f"/users/{x.name}", token)["servers"].get("") or {}).get("ready"))
                      for x in group):
            assert time.monotonic() < deadline, "the learners' servers were not ready within 300 s"
            time.sleep(2)
        for learner in group:
            pod = teacher.api.get(f"/api/v1/namespaces/{learner.namespace}/pods/jupyter-{learner.name}")
            assert pod["spec"]["serviceAccountName"] == classroom.LEARNER_ACCOUNT
            env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}
            assert (env["K8SNB_NAMESPACE"], env["K8SNB_SECOND_NAMESPACE"]) == learner.namespaces
            assert pod["spec"]["containers"][0]["image"].endswith(hub.image)
        _run_in_every_server(teacher, group, tmp_path)
    except BaseException:
        labhub.stop()
        RUNNING.clear()
        raise
    # The hub keeps running: `classroom down` (the last test) must stop it, its proxy and the servers.


def _hub_has_the_spawner_rights_only(kubeconfig: Path, group) -> None:
    """The lab's hub talks to the cluster as the classroom's hub account, not as the lab's admin:
    pods in a learner's main namespace, nothing in anyone else's."""
    as_hub = k8snb.connect(quiet=True, kubeconfig=str(kubeconfig))
    who = as_hub.api.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body={
        "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).json()
    assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{classroom.HUB_NAMESPACE}:hub"

    def may(verb: str, resource: str, namespace: str) -> bool:
        kind, _, sub = resource.partition("/")
        review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {
            "resourceAttributes": {"namespace": namespace, "verb": verb, "resource": kind, "subresource": sub}}}
        return as_hub.api.request("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                                  body=review).json()["status"]["allowed"]

    learner = group[0]
    assert may("create", "pods", learner.namespace) and may("delete", "pods", learner.namespace)
    for namespace in (learner.second_namespace, "default", "kube-system", classroom.HUB_NAMESPACE):
        assert not may("create", "pods", namespace), namespace
    assert not may("get", "secrets", learner.namespace) and not may("create", "pods/exec", learner.namespace)
    assert not may("delete", "namespaces", learner.namespace)


#: Executes the notebook inside a learner's server pod, with the pod's own kernel, account and
#: environment, the way the handouts run notebooks (k8snb.handouts.run_notebook: the kernel on Unix
#: sockets), and copies the executed notebook out. argv: pod, namespace, out, notebook.
IN_POD = """
import sys, k8snb
pod, namespace, out, notebook = sys.argv[1:5]
cluster = k8snb.connect(quiet=True)
executed = "/tmp/executed.ipynb"
run = ("import sys, nbformat, pathlib; from k8snb import handouts; path = pathlib.Path(sys.argv[1]); "
       "nb = nbformat.read(path, as_version=4); handouts.run_notebook(nb, path, timeout=600); "
       "nbformat.write(nb, sys.argv[2])")
done = k8snb.exec_argv(cluster, pod, ["/opt/k8snb/bin/python", "-c", run, notebook, executed], namespace, timeout=1200)
if done.exit_code != 0:
    sys.exit(done.stderr[-2000:])
with open(out, "w") as f:
    f.write(k8snb.exec_argv(cluster, pod, ["cat", executed], namespace, timeout=60).stdout)
"""


def _run_in_every_server(teacher, group, out_dir: Path) -> None:
    namespaces = [ns for x in group for ns in x.namespaces]
    seen: dict[str, set[str]] = {}
    peaks: dict[str, dict] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(teacher, namespaces, seen, peaks, stop), daemon=True)
    watcher.start()
    results: dict[str, object] = {}

    def run(learner):
        # One process per learner: the client's exec (kubernetes.stream) is not thread-safe.
        out = out_dir / f"{learner.name}.ipynb"
        done = subprocess.run([sys.executable, "-c", IN_POD, f"jupyter-{learner.name}", learner.namespace, str(out),
                               f"/home/jovyan/notebooks/{NOTEBOOK.name}"], capture_output=True, text=True, timeout=1500)
        results[learner.name] = (nbformat.read(out, as_version=4) if done.returncode == 0
                                 else RuntimeError(done.stderr[-2000:]))

    threads = [threading.Thread(target=run, args=(x,)) for x in group]
    labtools.count_notebook_run(NOTEBOOK, len(group))
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    print(f"{LEARNERS} learners' servers ran notebook 03 at once in {time.monotonic() - started:.0f} s")
    for learner in group:  # what README's teacher section reports, measured here
        main, second = (peaks.get(ns, {}) for ns in learner.namespaces)
        print(f"footprint {learner.name}: peak pods {main.get('pods', 0)} + {second.get('pods', 0)}, "
              f"cpu {main.get('cpu_millicores', 0) + second.get('cpu_millicores', 0):.0f}m, "
              f"memory {main.get('memory_mib', 0) + second.get('memory_mib', 0):.0f} MiB")
    failed = {k: str(v)[-600:] for k, v in results.items() if isinstance(v, Exception)}
    assert not failed, failed
    for learner in group:
        nb = results[learner.name]
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, errors[0].get("evalue")
        text = "\n".join(out.get("text", "") for c in nb.cells for out in c.get("outputs", []))
        assert f"your namespaces: {learner.namespace} and {learner.second_namespace}" in text
        assert f"From {learner.namespace}, 'nginx.{learner.second_namespace}' -> " \
               f"nginx.{learner.second_namespace}.svc." in text
        spread = _spread_pods(nb)
        assert spread, f"{learner.name}: no replica named in the traffic cells' outputs"
        own = seen.get(learner.namespace, set())
        others = set().union(*(seen.get(x.namespace, set()) for x in group if x != learner))
        assert spread <= own, f"{learner.name}'s requests reached pods not in {learner.namespace}: {spread - own}"
        assert not spread & others, f"{learner.name}'s spread names another learner's pods: {spread & others}"
        match = re.search(r"(\d+) measured requests over (\d+) replicas", text)
        assert match and match.group(2) == "5", match and match.group(0)


def test_the_policy_is_measured_between_two_learners(teacher, room):
    if not k8snb.can_carry_traffic(teacher):
        pytest.skip("simulated nodes carry no traffic")
    group, _ = room
    a, b = group[3], group[4]
    for x in (a, b):
        k8snb.ensure_article(teacher, namespace=x.namespace, nginx_namespace=x.second_namespace)
    enforced, sentence = classroom.policy_enforced(teacher, a, b)
    print(sentence)
    # `classroom status` measures the same way between the first two learners with the article.
    assert classroom.policy_line(teacher).startswith("NetworkPolicy: " + ("enforced" if enforced else "not enforced"))
    # Neither the lab's bridge plugin nor the course's offline kind network (k8snb-routes, ptp) has
    # a policy engine: A reaches B, and the sentence says so.
    if teacher.is_lab or teacher.flavor == "kind":
        assert not enforced and "not enforced (measured)" in sentence
    for x in (a, b):
        k8snb.cleanup(teacher, namespaces=x.namespaces, wait=False)


def test_down_leaves_no_namespace_account_or_binding(teacher, room):
    from k8snb.cli import main

    assert main(["classroom", "down"]) == 0  # the teacher's command: the hub first, if it runs here
    removed = classroom.down(teacher)  # again: nothing left to remove
    assert removed.empty
    if teacher.is_lab:
        from k8snb.lab import hub as labhub

        assert labhub.running() is None
        # The hub and proxy the hub test left running are gone, by the PIDs they had.
        assert all(labhub.processes.start_time(proc.pid) != proc.started for proc in RUNNING if proc), RUNNING
        assert "k8snb-hub" not in subprocess.run(["iptables", "-S"], capture_output=True, text=True).stdout
        assert not (labhub.state_dir() / "hub").exists()
    selector = f"{k8snb.PART_OF}=k8snb,{CLASSROOM}"
    assert not teacher.api.list("/api/v1/namespaces", labelSelector=selector)
    for plural in ("clusterrolebindings", "clusterroles"):
        assert not teacher.api.list(f"/apis/rbac.authorization.k8s.io/v1/{plural}", labelSelector=selector)
    assert not teacher.api.list("/api/v1/serviceaccounts", labelSelector=selector)
    assert not teacher.api.list("/apis/rbac.authorization.k8s.io/v1/rolebindings", labelSelector=selector)
