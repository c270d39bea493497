"""Figure: a class of 100 on one cluster. On a private lab with simulated nodes (kwok), time
`classroom up` for 100 learners, the article's objects in every learner's namespaces, and the
course's table calls made with one learner's own credentials while all 100 exist, against the same
calls when that learner is alone on the cluster; then `classroom down`.

Run alone: `python bench/classroom.py [learners]`. It starts and stops its own lab (own state
directory and ports), so it never touches the course's lab.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from private_lab import private_lab

LEARNERS = 100
PORT, ETCD_PORT = 7043, 12979
REPEATS = 5


def _tables(cluster, learner) -> dict[str, float]:
    """Median seconds of each of the course's table calls, made as `learner` (pods and Services of
    their namespaces, nginx-svc's endpoints, the nodes), and of one round of all of them."""
    import k8snb

    calls = {"pods": lambda: [k8snb.pods(cluster, ns) for ns in learner.namespaces],
             "services": lambda: [k8snb.services(cluster, ns) for ns in learner.namespaces],
             "endpoints": lambda: k8snb.endpoints(cluster, "nginx-svc", learner.namespace),
             "nodes": lambda: k8snb.nodes(cluster)}
    medians = {}
    for name, call in calls.items():
        times = []
        for _ in range(REPEATS):
            t = time.perf_counter()
            call()
            times.append(time.perf_counter() - t)
        medians[name] = statistics.median(times)
    medians["round"] = sum(medians.values())
    return medians


def _settle(cluster, pods: int, timeout: float = 300.0) -> None:
    """Until `pods` of the course's pods run (nginx-hello, netshoot and nginx per learner)."""
    from k8snb.manifests import SELECTOR

    deadline = time.monotonic() + timeout
    while sum(p.get("status", {}).get("phase") == "Running"
              for p in cluster.api.list("/api/v1/pods", labelSelector=SELECTOR)) < pods:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {pods} course pods running after {timeout:.0f} s")
        time.sleep(2)
    time.sleep(5)


def main(learners: int = LEARNERS) -> list[dict]:
    import k8snb
    from k8snb import classroom

    with private_lab(PORT, ETCD_PORT, "k8snb-bench-classroom-") as lab:
        teacher = k8snb.connect(quiet=True, kubeconfig=lab.kubeconfig)
        group = classroom.learners(count=learners)
        first = group[0]

        def article(learner) -> None:
            k8snb.article(teacher, namespace=learner.namespace, nginx_namespace=learner.second_namespace)

        classroom.up(teacher, [first])
        article(first)
        files = classroom.write_kubeconfigs(teacher, [first], lab.state / "kubeconfigs", seconds=3600)
        mine = k8snb.connect(quiet=True, kubeconfig=files["kubeconfig"][0])
        alone = _tables(mine, first)
        t = time.perf_counter()
        classroom.up(teacher, group)
        up_s = time.perf_counter() - t
        t = time.perf_counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(article, group[1:]))
        article_s = time.perf_counter() - t
        _settle(teacher, 3 * learners)  # measure the API, not the controllers still creating pods
        crowded = _tables(mine, first)
        t = time.perf_counter()
        classroom.down(teacher, timeout=600)
        down_s = time.perf_counter() - t
    return [
        {"figure": f"classroom up, {learners} learners (2 namespaces, account, bindings, quota, limits, policy each; "
                   "simulated lab)", "ours_s": round(up_s, 2), "target": "< 60", "met": up_s < 60,
         "note": f"then the article's objects in all {learners} learners' namespaces: {article_s:.1f} s; "
                 f"classroom down (namespaces gone): {down_s:.1f} s"},
        {"figure": f"course's table calls as one learner, {learners} learners on the cluster",
         "ours_s": round(crowded["round"], 3), "alternative": "the same calls, the learner alone",
         "alt_s": round(alone["round"], 3), "ratio": round(crowded["round"] / alone["round"], 2),
         "target": "< 1 s per round", "met": crowded["round"] < 1,
         "note": "medians of 5, ms alone -> crowded: " + ", ".join(
             f"{k} {alone[k] * 1000:.0f} -> {crowded[k] * 1000:.0f}" for k in ("pods", "services", "endpoints", "nodes"))
                 + " (pods joins the nodes list; steps of about 100 ms land on different calls from run to run)"},
    ]


if __name__ == "__main__":
    for row in main(*[int(a) for a in sys.argv[1:2]]):
        print(json.dumps(row))
