"""k8snb: the helper package of a hands-on Kubernetes networking course.

The notebooks call only what is listed in `__all__`; everything else is internal.

    import k8snb
    cluster = k8snb.connect()                 # the lab, or your current kubectl context
    k8snb.article(cluster)                    # the article's nginx-hello, nginx-svc, netshoot ...
    k8snb.pods(cluster)                       # pods with IPs, nodes and podCIDRs (pandas)
    frame = k8snb.sample(cluster, 500)        # 500 requests through nginx-svc, one row each
    k8snb.plot_spread(k8snb.summarize(frame)) # how they spread over the replicas
    k8snb.cleanup(cluster)                    # delete only what the course created
"""
from . import course, lab
from .cidr import (aws_max_pods, aws_max_pods_table, article_samples, article_verdicts, classify, usable_pod_ips,
                   vpc_capacity)
from .cluster import Cluster, connect
from .errors import (Conflict, ExecFailed, Expired, Forbidden, InvalidInput, K8snbError, LabError, NotFound,
                     NotReachable, NotReadyInTime, SampleIncomplete)
from .manifests import PART_OF, apply, article, cleanup, load, scale
from .network import address_plan, cni_plugin, network_model, service_range
from .plots import plot_address_space, plot_spread, plot_sweep
from .probe import can_carry_traffic, curl, exec_argv, nslookup, pod_for, resolve_modeled
from .scaling import replace_pod, scale_and_wait, sweep
from .startup import wait_for_cluster
from .tables import endpoints, nodes, pods, services
from .traffic import iptables_probabilities, modeled_sample, parse_kube_svc_chain, sample, summarize
from .wait import wait_deployment, wait_endpoints
from .widgets import replica_explorer
from .doctor import doctor

__all__ = [
    "Cluster", "Conflict", "ExecFailed", "Expired", "Forbidden", "SampleIncomplete", "InvalidInput", "K8snbError", "LabError", "NotFound",
    "NotReachable", "NotReadyInTime", "PART_OF", "address_plan", "apply", "article", "article_samples",
    "article_verdicts", "aws_max_pods", "aws_max_pods_table", "can_carry_traffic", "classify", "cleanup",
    "cni_plugin", "connect", "curl", "endpoints", "exec_argv", "lab", "load", "modeled_sample",
    "network_model", "nodes", "nslookup", "parse_kube_svc_chain", "plot_address_space", "plot_spread",
    "plot_sweep", "pod_for", "pods", "replace_pod", "resolve_modeled", "sample", "scale", "scale_and_wait",
    "service_range", "services", "summarize", "sweep", "usable_pod_ips", "vpc_capacity", "wait_deployment",
    "wait_endpoints", "wait_for_cluster", "replica_explorer", "doctor", "course", "iptables_probabilities",
]
