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
from . import course, exercises, lab
from .affinity import affinity_compare
from .course import (CLIENT_VARIABLE, apply_client, ask, client_env, client_objects, course_objects, course_plan,
                     ensure_article, ip_path, keepalive, traffic_mode, traffic_statement)
from .dataplane import conntrack_entry, kube_proxy_chain
from .dns import (apply_headless, env_sentence, forms_summary, headless_vs_clusterip, name_forms, resolv_conf,
                  service_env)
from .servicetypes import (NODE_PORT_RANGE, client_address_by_policy, external_ip, load_balancer_decision, node_port,
                           node_port_reach, service_types)
from .cidr import (aws_max_pods, aws_max_pods_table, article_samples, article_verdicts, classify, eni_limits, max_nodes,
                   models_side_by_side, node_vpc_addresses, usable_pod_ips, vpc_capacity)
from .cluster import Cluster, connect
from .errors import (Conflict, ExecFailed, Expired, Forbidden, InvalidInput, K8snbError, LabError, NotFound,
                     NotReachable, NotReadyInTime, SampleIncomplete)
from .learner import NAMESPACE, OTHER_SERVICE, SECOND_NAMESPACE
from .manifests import PART_OF, apply, article, cleanup, load, scale
from .network import address_plan, cni_plugin, configured_pod_range, lab_network, network_model, service_range
from .podnet import pod_to_pod
from .wire import on_the_wire
from .ladder import debug_ladder
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
    "exercises", "CLIENT_VARIABLE", "apply_client", "ask", "client_env", "client_objects", "course_objects",
    "course_plan", "ensure_article", "ip_path", "keepalive", "traffic_mode", "traffic_statement",
    "conntrack_entry", "kube_proxy_chain", "apply_headless", "env_sentence", "forms_summary",
    "headless_vs_clusterip", "name_forms", "resolv_conf", "service_env", "NODE_PORT_RANGE", "external_ip",
    "load_balancer_decision", "node_port", "node_port_reach", "service_types", "eni_limits", "max_nodes",
    "models_side_by_side", "lab_network", "affinity_compare", "client_address_by_policy",
    "pod_to_pod", "on_the_wire", "debug_ladder", "configured_pod_range", "node_vpc_addresses", "NAMESPACE", "SECOND_NAMESPACE", "OTHER_SERVICE",
]
