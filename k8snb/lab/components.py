"""The control plane's components, one function each: its command line, as data (as kwokctl's
components/), and for etcd and kube-apiserver the check that it serves.

The flags are the lab's security posture, kubeadm's defaults as the floor: etcd on loopback over TLS
answering only its own CA's clients; kube-apiserver on one address, no anonymous requests, RBAC and
NodeRestriction; the controller-manager allocating a /24 per node from the pod range.
"""
from __future__ import annotations

from . import api
from .constants import CLUSTER_DOMAIN
from .kubeconfig import user_path
from .plan import NODE_CIDR_MASK, NODE_PORT_RANGE
from .steps import Context

#: Upper bounds for a component to serve; generous for a loaded 2-core machine. Each wait ends with
#: a message naming the component and the tail of its log.
ETCD_TIMEOUT = 30.0
API_TIMEOUT = 90.0


def etcd(ctx: Context) -> list[str]:
    """etcd: TLS on loopback only, and only clients with a certificate from etcd's own CA."""
    certs, port = ctx.certs, ctx.plan.etcd_port
    peer = f"https://127.0.0.1:{port + 1}"
    return [
        ctx.b["etcd"], "--name=k8snb-lab", f"--data-dir={ctx.state / 'etcd'}",
        f"--listen-client-urls=https://127.0.0.1:{port}", f"--advertise-client-urls=https://127.0.0.1:{port}",
        f"--cert-file={certs['etcd-server'].cert}", f"--key-file={certs['etcd-server'].key}",
        "--client-cert-auth=true", f"--trusted-ca-file={certs['etcd-ca'].cert}",
        f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=k8snb-lab={peer}",
        f"--peer-cert-file={certs['etcd-peer'].cert}", f"--peer-key-file={certs['etcd-peer'].key}",
        "--peer-client-cert-auth=true", f"--peer-trusted-ca-file={certs['etcd-ca'].cert}",
        "--listen-metrics-urls=", "--log-level=warn", "--unsafe-no-fsync=true",
    ]


def etcd_serving(ctx: Context) -> None:
    """Until etcd's /health answers, asked as the API server (the only client etcd accepts)."""
    api.wait_serving(f"https://127.0.0.1:{ctx.plan.etcd_port}/health",
                     api.tls(ctx.state, "etcd-ca", "apiserver-etcd-client"), ETCD_TIMEOUT, ctx.state, "etcd")


def kube_apiserver(ctx: Context, node_flags: list[str]) -> list[str]:
    """kube-apiserver; `node_flags` are the node backend's (which address it advertises)."""
    certs, plan = ctx.certs, ctx.plan
    return [
        ctx.b["kube-apiserver"],
        f"--etcd-servers=https://127.0.0.1:{plan.etcd_port}",
        f"--etcd-cafile={certs['etcd-ca'].cert}",
        f"--etcd-certfile={certs['apiserver-etcd-client'].cert}",
        f"--etcd-keyfile={certs['apiserver-etcd-client'].key}",
        # One address, the lab's own (loopback, or the lab bridge for real nodes): never every
        # address of the machine. No anonymous requests; kubelets may only touch their own Node.
        # No Service may claim an externalIP (CVE-2020-8554: any address's traffic, another
        # learner's or the hub's, would be drawn to whoever creates Services).
        f"--bind-address={plan.api_bind}",
        "--anonymous-auth=false",
        "--enable-admission-plugins=NodeRestriction,DenyServiceExternalIPs",
        f"--secure-port={plan.api_port}",
        f"--tls-cert-file={certs['apiserver'].cert}", f"--tls-private-key-file={certs['apiserver'].key}",
        f"--client-ca-file={certs['ca'].cert}",
        f"--kubelet-client-certificate={certs['apiserver-kubelet-client'].cert}",
        f"--kubelet-client-key={certs['apiserver-kubelet-client'].key}",
        f"--kubelet-certificate-authority={certs['ca'].cert}",
        f"--service-account-key-file={certs['sa'].cert}",
        f"--service-account-signing-key-file={certs['sa'].key}",
        f"--service-account-issuer=https://kubernetes.default.svc.{CLUSTER_DOMAIN}",
        "--authorization-mode=Node,RBAC",
        f"--service-cluster-ip-range={plan.service_cidr}",
        f"--service-node-port-range={NODE_PORT_RANGE}",
        "--allow-privileged=true",
        "--profiling=false",
        *node_flags,
    ]


def kube_apiserver_serving(ctx: Context) -> None:
    """Until /readyz answers 200 to the lab's admin, on the address the host's clients use."""
    api.wait_serving(f"https://{ctx.plan.api_host}:{ctx.plan.api_port}/readyz", api.tls(ctx.state),
                     API_TIMEOUT, ctx.state, "kube-apiserver")


def kube_controller_manager(ctx: Context) -> list[str]:
    """kube-controller-manager: a /24 per node from the pod range, the cluster's signer."""
    kubeconfig, certs, plan = user_path(ctx.state, "controller-manager"), ctx.certs, ctx.plan
    return [
        ctx.b["kube-controller-manager"],
        f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--allocate-node-cidrs=true", f"--cluster-cidr={plan.pod_cidr}",
        f"--node-cidr-mask-size={NODE_CIDR_MASK}", f"--service-cluster-ip-range={plan.service_cidr}",
        "--use-service-account-credentials=true", f"--root-ca-file={certs['ca'].cert}",
        f"--service-account-private-key-file={certs['sa'].key}",
        f"--cluster-signing-cert-file={certs['ca'].cert}", f"--cluster-signing-key-file={certs['ca'].key}",
        "--leader-elect=false", "--secure-port=0", "--controllers=*,bootstrapsigner,tokencleaner",
    ]


def kube_scheduler(ctx: Context) -> list[str]:
    """kube-scheduler, with its own identity (system:kube-scheduler)."""
    kubeconfig = user_path(ctx.state, "scheduler")
    return [
        ctx.b["kube-scheduler"], f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false", "--secure-port=0",
    ]
