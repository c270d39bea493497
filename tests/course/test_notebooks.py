"""Every course notebook runs top to bottom on the current cluster (KUBECONFIG or the lab): the
outputs checked are those of the session's handout build (tests/conftest.py `executed`), which
executes each notebook once per suite for these tests and the browser tests alike.

Run: `KUBECONFIG=$(k8snb lab kubeconfig) pytest tests/course/test_notebooks.py -s`.
On a cluster whose pods cannot carry traffic (the lab's kwok nodes) the notebooks run in modeled
mode and must say so; on real nodes they measure and must say that instead.
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

import k8snb
from k8snb import handouts

pytestmark = pytest.mark.cluster

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
CDN = re.compile(r"""(src|href)=["']https?://""")


def _text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.extend(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


def test_there_are_five_notebooks():
    assert [p.name[:3] for p in NOTEBOOKS] == ["00_", "01_", "02_", "03_", "04_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, cluster, executed):
    """The notebook as the session's handout build executed it (conftest.executed: once per suite)."""
    nb = nbformat.read(executed[0] / path.name, as_version=4)
    errors = [out for cell in nb.cells for out in cell.get("outputs", []) if out.get("output_type") == "error"]
    assert not errors, errors[0].get("ename", "") + ": " + errors[0].get("evalue", "")
    text = _text(nb)
    expected = "measured" if k8snb.can_carry_traffic(cluster) else "modeled"
    assert expected in text.lower(), f"{path.name} never says its traffic results are {expected}"
    assert "Traceback" not in text
    if path.name.startswith("02_") and cluster.is_lab:
        # The lab knows its node subnet: no /16 guessed around three nodes of a /24.
        from k8snb.lab import status

        plan = status().plan or {}
        assert f"node network {plan['node_subnet']}: the lab's plan" in text, "02 guessed the lab's node network"
        assert k8snb.network.LAB_CNI[plan["network"]] in text, "02 did not name the lab's CNI"
    if path.name.startswith("02_") and expected == "measured":
        # The request's first packet, captured on the server's node: both pod IPs on every hop.
        wire = re.search(r"Measured on \S+ with tcpdump: the request's SYN went in on (\S+)[^\n]*"
                         r"unchanged on every hop: no NAT between the pods", text)
        assert wire, "notebook 02 did not capture the packet between the pods"
    if path.name.startswith("03_") and expected == "measured":
        # The pod's resolv.conf, read in netshoot, names kube-dns's ClusterIP; the headless answer is the pods.
        conf = re.search(r"nameserver (\S+) is the kube-dns Service's ClusterIP (\S+);.*\(measured\)\.", text)
        assert conf and conf.group(1) == conf.group(2), conf and conf.group(0)
        assert re.search(r"DNS lists \d+ address\(es\), the same as its EndpointSlices' ready pods", text)
        # Session affinity: one pod for one client, several again once it is back to None.
        sticky = re.search(r"With sessionAffinity ClientIP, \d+ new connections from one client reached (\d+) of "
                           r"(\d+) pods; back at None, \d+ reached (\d+) \(measured\)", text)
        assert sticky and sticky.group(1) == "1" and int(sticky.group(3)) >= 2, sticky and sticky.group(0)
        # The explorer's first result, as the handout shows it: the slider's 3 replicas after the
        # sweep's 5, not 5 bars of which 2 empty (pods still terminating were once counted).
        states = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
        lines = [m["state"].get("value", "") for m in states.values() if m.get("model_name") == "HTMLModel"]
        explorer = [x for x in lines if re.match(r"\d+ requests over \d+ replicas", x)]
        assert explorer, "the replica explorer left no result line"
        got = re.match(r"(\d+) requests over (\d+) replicas \(measured\); chi-square p = (\S+)", explorer[0])
        assert got and got.group(2) == "3" and float(got.group(3)) > 1e-4, explorer[0]
        # Graceful shutdown, measured: with a preStop delay every request sent while a pod is
        # replaced is answered (the deleted pod keeps serving until every node dropped it).
        grace = re.search(r"answered with the article's manifest, (\d+)% with a\s+(\d+) s preStop delay \(measured\)",
                          text)
        assert grace and grace.group(1) == "100", grace and grace.group(0)
        # The debugging ladder stops where each exercise is broken: the selector, then the request.
        assert "nginx-typo: the first rung that fails is '2. the selector matches ready pods'" in text
        assert "nginx-wrongport: the first rung that fails is '5. a request answers'" in text
        # The broken Services show their symptom, and the unedited fixes are still 'Not yet'.
        assert text.count("Not yet:") >= 4, "the unedited exercises must say Not yet"
    if path.name.startswith("04_") and expected == "measured":
        # The handout says "every node will now answer": the measured line must agree.
        answered = re.search(r"(\d+) of (\d+) answered \(measured\)", text)
        assert answered and answered.group(1) == answered.group(2), answered and answered.group(0)
        # kube-proxy's chain is read on a node (the course's node pod), not computed.
        chain = re.search(r"kube-proxy's chain for \d+ endpoints \((\w+)\)", text)
        assert chain and chain.group(1) == "measured", chain and chain.group(0)
        # The counters under the shares count enough connections to show them: every one of the
        # connections sent took exactly one rule, and each rule took some.
        counted = re.search(r"connections\s+([\d, ]+) \(of (\d+) new connections sent just before", text)
        assert counted, "the chain's counters do not say how many connections they count"
        counts = [int(x) for x in counted.group(1).split(",")]
        assert sum(counts) == int(counted.group(2)) and min(counts) > 0, counted.group(0)
        # NodePort and the client's address, as the prose says: SNAT under Cluster on every node;
        # under Local the replica's node keeps the address and the others do not answer.
        policy = re.search(r"Cluster: (\d+) of (\d+) nodes answered and the pod saw your address on (\d+) of them.*"
                           r"Local: (\d+) of the (\d+) node\(s\) with a replica answered, with your address kept on "
                           r"(\d+); (\d+) of the (\d+) node\(s\) without a replica answered", text)
        assert policy, "the NodePort source-address summary is missing"
        c_ok, c_all, c_kept, l_ok, l_with, l_kept, l_bad, l_without = map(int, policy.groups())
        assert c_ok == c_all and c_kept == 0 and l_ok == l_with == l_kept == 1 and l_bad == 0 and l_without >= 1, \
            policy.group(0)
        assert "the API server refused nodePort 8080" in text


@pytest.mark.check  # two more executions of notebook 01: CI's tier
def test_notebooks_converge_when_run_twice(cluster):
    """Re-running a notebook over what an earlier run left (no cleanup in between) converges: the
    second run, which finds every object in place, still says what the first one said."""
    path = next(p for p in NOTEBOOKS if p.name.startswith("01_"))
    expected = "measured" if k8snb.can_carry_traffic(cluster) else "modeled"
    for _ in range(2):
        nb = nbformat.read(path, as_version=4)
        nb.cells = [c for c in nb.cells if "k8snb.cleanup" not in c.source]
        handouts.run_notebook(nb, path)
    k8snb.cleanup(cluster)
    text = _text(nb)
    assert "Traceback" not in text and expected in text.lower(), text[-2000:]
    # Notebook 01's client, which asks a Service name, answered before and after its pod was replaced.
    asked = re.search(r"Answered before: (\S+), after: (\S+) \(", text)
    assert asked and asked.group(1) == asked.group(2) == "True", asked and asked.group(0)


def test_handout_is_offline(executed, cluster):
    """A handout loads nothing from the network: scripts are local, MathJax is left out."""
    out, index, _ = executed
    page = (out / f"{NOTEBOOKS[0].stem}.html").read_text()
    assert index.exists() and NOTEBOOKS[0].stem in index.read_text()
    assert "JenniferSoft" in index.read_text() and "2024" in index.read_text()  # the article, named
    assert not CDN.findall(page), CDN.findall(page)[:3]
    assert (out / handouts.STATIC / "require.js").exists()
    assert cluster.context in page and cluster.version in page
