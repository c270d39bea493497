"""The `k8snb` command: the lab's and kind's life cycle, the course's checks, handouts and cleanup.

Every failure the package raises on purpose prints as one line `k8snb: <message>` and exits 1;
bad usage exits 2 (argparse).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys

from .errors import K8snbError


def _lab(args: argparse.Namespace) -> int:
    from . import lab
    from .lab.plan import LabPlan

    if args.action == "up":
        explicit = {k: v for k, v in vars(args).items()
                    if k in ("nodes", "network", "pod_cidr", "service_cidr", "port", "etcd_port") and v is not None}
        running = lab.status()
        if running.running and not explicit:
            # `make test` after `make lab LAB_ARGS=...`: use the lab that runs, whatever its settings.
            print("k8snb lab: already running; nothing to do")
            print("\n".join(running.lines()))
            return 0
        nodes = args.nodes or ("real" if os.geteuid() == 0 else "kwok")
        if nodes == "real" and os.geteuid() != 0:
            raise K8snbError("real nodes need root (network namespaces, containerd, iptables); "
                             "run as root, or use `k8snb lab up --nodes kwok` for simulated nodes")
        defaults = LabPlan()
        # An empty pod CIDR means the network model's own default (plan.NETWORK_DEFAULTS).
        plan = LabPlan(nodes_mode=nodes, pod_cidr=args.pod_cidr or "",
                       service_cidr=args.service_cidr or defaults.service_cidr,
                       api_port=args.port or defaults.api_port, etcd_port=args.etcd_port or defaults.etcd_port,
                       network=args.network or defaults.network)
        st = lab.up(plan, version=args.version, rebuild=args.rebuild, merge_kubeconfig=args.merge_kubeconfig)
        print("\n".join(st.lines()))
        return 0 if st.running else 1
    if args.action == "fetch":
        from .lab import binaries

        nodes = args.nodes or ("real" if os.geteuid() == 0 else "kwok")
        extra = binaries.KWOK if nodes == "kwok" else binaries.REAL_NODES
        got = binaries.ensure(binaries.CONTROL_PLANE + extra, version=args.version, rebuild=args.rebuild)
        print(f"k8snb lab: binaries for Kubernetes {got.version} ready in {got.directory}")
        return 0
    if args.action == "down":
        lab.down()
        return 0
    if args.action == "status":
        st = lab.status()
        print("\n".join(st.lines()))
        return 0 if st.running else 3
    if args.action == "kubeconfig":
        print(lab.kubeconfig_path())
        return 0
    raise AssertionError(args.action)


def _kind(args: argparse.Namespace) -> int:
    from .lab import kind

    if args.action == "up":
        if os.geteuid() != 0:
            raise K8snbError("`k8snb kind up` builds kind's node image and may start a Docker engine: run it as root")
        print("\n".join(kind.up().lines()))
        return 0
    if args.action == "down":
        kind.down()
        return 0
    if args.action == "status":
        st = kind.status()
        print("\n".join(st.lines()))
        return 0 if st.running else 3
    if args.action == "kubeconfig":
        print(kind.kubeconfig_path())
        return 0
    raise AssertionError(args.action)


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor

    report = doctor(context=args.context)
    print(report.to_string(index=False))
    return 0 if report.attrs.get("can_run") else 1


def _cleanup(args: argparse.Namespace) -> int:
    from .cluster import connect
    from .manifests import cleanup

    removed = cleanup(connect(args.context, quiet=True), namespaces=args.namespace or None)  # None: all
    print(removed.to_string(index=False) if len(removed) else "k8snb: nothing of the course to clean up")
    return 0


def _classroom(args: argparse.Namespace) -> int:
    from . import classroom
    from .cluster import connect

    cluster = connect(args.context, quiet=True)
    if args.action == "up":
        names = classroom.names_from_file(args.names) if args.names else None
        group = classroom.learners(names, args.learners)
        made = classroom.up(cluster, group)
        print(made.to_string(index=False))
        if args.hub:
            from .lab import hub

            print("\n".join(hub.start([x.name for x in group]).lines()))
        out = args.kubeconfigs or os.path.expanduser("~/.kube/k8snb-classroom")
        files = classroom.write_kubeconfigs(cluster, group, out, seconds=int(args.token_hours * 3600))
        print(f"k8snb classroom: {len(group)} learner(s) ready on {cluster.describe()}; "
              f"kubeconfigs (tokens until {files['expires'].min()}) in {out}")
        return 0
    if args.action == "down":
        from .lab import hub

        if hub.running():
            hub.stop()
            print("k8snb classroom: JupyterHub and its proxy stopped")
        removed = classroom.down(cluster)
        print(removed.to_string(index=False) if len(removed) else "k8snb classroom: nothing to remove")
        return 0
    if args.action == "status":
        from .lab import hub

        table = classroom.status(cluster)
        print(table.to_string(index=False) if len(table) else "k8snb classroom: no learners on this cluster")
        if len(table):
            print(classroom.policy_line(cluster, list(table["learner"])))
        running = hub.running()
        print("\n".join(running.lines()) if running else "JupyterHub: not running here")
        return 0 if len(table) else 3
    raise AssertionError(args.action)


def _handouts(args: argparse.Namespace) -> int:
    from .handouts import build_handouts

    index = build_handouts(output=args.output, notebooks=args.notebooks, context=args.context)
    print(f"k8snb: handouts written; open {index}")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="k8snb", description="Kubernetes networking course helpers")
    sub = p.add_subparsers(dest="command", required=True)

    lab = sub.add_parser("lab", help="the offline lab cluster built from Kubernetes' sources")
    lab.add_argument("action", choices=["up", "down", "status", "kubeconfig", "fetch"],
                     help="fetch: download or build the binaries without starting anything")
    lab.add_argument("--nodes", choices=["kwok", "real"], help="simulated (kwok) or real nodes "
                     "(default: real as root, kwok otherwise)")
    lab.add_argument("--network", choices=["routed", "flat"],
                     help="separate pod range (routed, default) or pods on the node subnet (flat, like the "
                     "AWS VPC CNI)")
    lab.add_argument("--pod-cidr", help="pod range, a /24 per node (default 10.244.0.0/16 routed, "
                     "172.29.128.0/17 flat)")
    lab.add_argument("--service-cidr", help="Service range (default 10.96.0.0/16)")
    lab.add_argument("--port", type=int, help="kube-apiserver's port on 127.0.0.1 (default 6443)")
    lab.add_argument("--etcd-port", type=int, help="etcd's client port on 127.0.0.1 (default 12379; peer: +1)")
    lab.add_argument("--version", help="Kubernetes version (default: the pin in k8snb/lab/recipes/versions.env)")
    lab.add_argument("--rebuild", action="store_true", help="fetch or build the binaries again")
    lab.add_argument("--merge-kubeconfig", action="store_true", help="also add the lab's context to ~/.kube/config")
    lab.set_defaults(func=_lab)

    kd = sub.add_parser("kind", help="a kind cluster (k8snb: 1 control plane, 2 workers), built and run offline")
    kd.add_argument("action", choices=["up", "down", "status", "kubeconfig"])
    kd.set_defaults(func=_kind)

    doc = sub.add_parser("doctor", help="can this cluster run the course? one table of checks")
    doc.add_argument("--context")
    doc.set_defaults(func=_doctor)

    clean = sub.add_parser("cleanup", help="delete what the course created (label app.kubernetes.io/part-of=k8snb)")
    clean.add_argument("--context")
    clean.add_argument("--namespace", action="append", help="limit to these namespaces (repeatable)")
    clean.set_defaults(func=_cleanup)

    cr = sub.add_parser("classroom", help="a class on one shared cluster: namespaces, accounts, quotas and "
                        "kubeconfigs per learner")
    cr.add_argument("action", choices=["up", "down", "status"])
    cr.add_argument("--learners", type=int, help="this many learners, named learner-01, learner-02 ...")
    cr.add_argument("--names", help="a file with one learner name per line (DNS-1123 labels)")
    cr.add_argument("--kubeconfigs", help="where up writes each learner's kubeconfig "
                    "(default ~/.kube/k8snb-classroom)")
    cr.add_argument("--token-hours", type=float, default=8.0, help="lifetime asked for each learner's token "
                    "(the cluster may shorten it; default 8)")
    cr.add_argument("--hub", action="store_true", help="also start JupyterHub (KubeSpawner) for them on the lab "
                    "with real nodes; on another cluster use Zero to JupyterHub (README)")
    cr.add_argument("--context")
    cr.set_defaults(func=_classroom)

    ho = sub.add_parser("handouts", help="execute the notebooks and export HTML handouts")
    ho.add_argument("--output", default="handouts")
    ho.add_argument("--context")
    ho.add_argument("notebooks", nargs="*", help="notebooks to run (default: notebooks/*.ipynb)")
    ho.set_defaults(func=_handouts)
    return p


def _interrupt(signum: int, _frame) -> None:
    """SIGTERM and SIGHUP end a command as Ctrl-C does: `lab up` then removes what it had made."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        return args.func(args)
    except K8snbError as exc:
        print(f"k8snb: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("k8snb: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
