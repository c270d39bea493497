"""Address analysis: the verdicts a learner compares with the article's two clusters."""
from __future__ import annotations

import ipaddress

import pytest

from k8snb import cidr
from k8snb.errors import InvalidInput


def test_article_samples_are_classified_like_the_article():
    verdicts = cidr.article_verdicts().set_index("cluster")["model"].to_dict()
    assert verdicts == {"EKS (AWS VPC CNI)": "flat", "native (kubespray)": "separate"}


def test_article_samples_carry_the_article_addresses():
    samples = cidr.article_samples().set_index("cluster")
    assert samples.loc["EKS (AWS VPC CNI)", ["pod_ip", "node_ip"]].tolist() == ["10.110.23.249", "10.110.24.222"]
    assert samples.loc["native (kubespray)", ["pod_ip", "node_ip"]].tolist() == ["10.233.104.127", "192.168.1.101"]


def test_eks_reason_quotes_the_numbers():
    verdict = cidr.classify(["10.110.24.222"], ["10.110.23.249"])
    assert (verdict.pods_in_node_network, verdict.pods_considered) == (1, 1)
    assert "1 of 1" in verdict.reason and "10.110.0.0/16" in verdict.reason
    assert verdict.label.startswith("pods on the node subnet")


@pytest.mark.parametrize(
    ("nodes", "pods", "pod_cidrs", "node_subnet", "expected"),
    [
        pytest.param(["172.18.0.2", "172.18.0.3", "172.18.0.4"], ["10.244.0.5", "10.244.1.2", "10.244.2.3"],
                     ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"], None, "separate", id="kind"),
        pytest.param(["192.168.49.2"], ["10.244.0.3", "10.244.0.4"], ["10.244.0.0/24"], None, "separate",
                     id="minikube"),
        pytest.param(["192.168.1.10"], ["10.42.0.7", "10.42.0.9"], ["10.42.0.0/24"], None, "separate", id="k3s"),
        pytest.param(["10.89.0.2", "10.89.0.3", "10.89.0.4"], ["10.89.1.2", "10.89.1.3", "10.89.2.2"],
                     ["10.89.1.0/24", "10.89.2.0/24"], "10.89.0.0/16", "flat", id="flat-lab"),
        # The k8snb lab's two network models, told apart from node and pod IPs alone.
        pytest.param(["172.29.0.2", "172.29.0.3", "172.29.0.4"], ["10.244.1.2", "10.244.2.3"],
                     ["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"], None, "separate", id="k8snb-routed"),
        pytest.param(["172.29.0.2", "172.29.0.3", "172.29.0.4"], ["172.29.129.2", "172.29.130.3"],
                     ["172.29.128.0/24", "172.29.129.0/24", "172.29.130.0/24"], None, "flat", id="k8snb-flat"),
    ],
)
def test_common_clusters(nodes, pods, pod_cidrs, node_subnet, expected):
    assert cidr.classify(nodes, pods, pod_cidrs, node_subnet).model == expected


def test_half_and_half_is_mixed():
    verdict = cidr.classify(["10.0.0.5"], ["10.0.3.1", "10.0.3.2", "100.64.0.1", "100.64.0.2"])
    assert verdict.model == "mixed"
    assert verdict.pods_in_node_network == 2


def test_without_pod_ips_the_pod_cidrs_decide():
    assert cidr.classify(["172.18.0.2"], [], ["10.244.0.0/24"]).model == "separate"
    assert cidr.classify(["10.89.0.2"], [], ["10.89.1.0/24"], "10.89.0.0/16").model == "flat"
    unknown = cidr.classify(["172.18.0.2"], [])
    assert unknown.model == "unknown" and unknown.label.startswith("unknown")
    assert cidr.classify([], ["10.244.0.5"]).model == "unknown"


def test_the_verdict_names_its_evidence():
    assert cidr.classify(["172.18.0.2"], ["10.244.0.5", "10.244.1.5"]).evidence == (
        "the IPs of 2 pods not on the host network")
    assert cidr.classify(["172.18.0.2"], ["10.244.0.5"]).evidence == "the IPs of 1 pod not on the host network"
    assert cidr.classify(["172.18.0.2"], [], ["10.244.0.0/24"]).evidence == "the nodes' podCIDRs (no pod IPs yet)"


def test_an_inferred_node_network_is_a_guess_and_says_so():
    guessed = cidr.classify(["10.0.1.5"], ["10.0.200.7"])
    assert guessed.model == "flat" and guessed.guessing
    assert guessed.node_network_source.startswith("inferred from the node IPs (a guess")
    assert "is a guess" in guessed.reason and "node_subnet=" in guessed.reason
    # Told the real subnet, a /24, the same pod is on a range of its own (EKS custom networking style).
    given = cidr.classify(["10.0.1.5"], ["10.0.200.7"], node_subnet="10.0.1.0/24")
    assert (given.model, given.guessing, given.node_network_source) == ("separate", False, cidr.NODE_NETWORK_GIVEN)
    assert "guess" not in given.reason


@pytest.mark.parametrize(("subnet", "words"), [
    ("10.0.0.5", "prefix length"),          # a bare address
    ("10.0.0.0/33", "not a CIDR range"),
    ("not-a-subnet/16", "not a CIDR range"),
    (16, "prefix length"),
    ("192.168.0.0/16", "none of the node IPs"),  # beside the nodes: a typo, not a verdict
])
def test_a_bad_node_subnet_is_refused_in_one_line(subnet, words):
    with pytest.raises(InvalidInput, match=words):
        cidr.classify(["10.0.1.5"], ["10.0.200.7"], node_subnet=subnet)


def test_labels_use_the_learners_words_and_keep_the_keys():
    assert cidr.MODEL_LABELS["flat"].startswith("pods on the node subnet")
    assert cidr.MODEL_LABELS["separate"].startswith("pods on their own range")
    assert set(cidr.MODEL_LABELS) == {"flat", "separate", "mixed", "unknown"}


def test_side_by_side_shows_the_words_and_names_the_closest_sample():
    mine = cidr.classify(["172.29.0.2"], ["10.244.1.2"], ["10.244.1.0/24"])
    table = cidr.models_side_by_side(mine)
    assert table["cluster"].tolist() == ["EKS (AWS VPC CNI)", "native (kubespray)", "your cluster"]
    assert table["verdict"].iloc[2] == mine.label and table.attrs["closest"] == "native (kubespray)"


def test_the_other_family_of_a_dual_stack_pod_is_ignored():
    verdict = cidr.classify(["172.18.0.2"], ["10.244.0.5", "fd00:10:244::5"])
    assert (verdict.model, verdict.pods_considered) == ("separate", 1)


def test_node_network_is_never_narrower_than_a_slash_16():
    assert cidr.node_network(["172.18.0.2", "172.18.0.3"]) == ipaddress.ip_network("172.18.0.0/16")
    assert cidr.node_network(["10.0.1.5", "10.1.200.3"]) == ipaddress.ip_network("10.0.0.0/15")
    assert cidr.node_network(["fd00::2"]).prefixlen == cidr.IPV6_NODE_NETWORK_PREFIX
    assert cidr.node_network([]) is None


def test_pod_range_spans_every_pod_cidr():
    assert cidr.pod_range(["10.244.0.0/24", "10.244.1.0/24", "10.244.2.0/24"]) == ipaddress.ip_network("10.244.0.0/22")
    assert cidr.pod_range(["10.233.64.0/24"]) == ipaddress.ip_network("10.233.64.0/24")
    assert cidr.pod_range([]) is None


def test_bad_addresses_are_refused_with_the_value():
    with pytest.raises(InvalidInput, match="10.0.0.300"):
        cidr.classify(["10.0.0.300"], [])


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["coredns", "kube-proxy", "aws-node"], "AWS VPC CNI"),
        (["kube-proxy", "calico-node"], "Calico"),
        (["kube-flannel-ds", "kube-proxy"], "Flannel"),
        (["kube-flannel"], "Flannel"),
        (["cilium", "cilium-envoy"], "Cilium"),
        (["kindnet", "kube-proxy"], "kindnet"),
        (["weave-net"], "Weave Net"),
        (["kube-router"], "kube-router"),
        (["antrea-agent"], "Antrea"),
        (["canal"], "Canal"),
        (["ovnkube-node"], "OVN-Kubernetes"),
        (["kube-proxy"], cidr.UNKNOWN_CNI),
    ],
)
def test_guess_cni(names, expected):
    assert cidr.guess_cni(names) == expected


def test_guess_cni_does_not_depend_on_listing_order():
    assert cidr.guess_cni(["calico-node", "aws-node"]) == cidr.guess_cni(["aws-node", "calico-node"]) == "AWS VPC CNI"


def test_capacity_numbers():
    assert cidr.addresses("10.0.0.0/20") == 4096
    assert cidr.usable_pod_ips("10.244.1.0/24") == 253
    assert cidr.usable_pod_ips("10.244.1.0/32") == 0


def test_aws_max_pods_matches_the_published_values():
    table = cidr.aws_max_pods_table().set_index("instance_type")["max_pods"].to_dict()
    assert table == {"t3.medium": 17, "t3.large": 35, "m5.large": 29, "m5.xlarge": 58,
                     "c5.xlarge": 58, "m5.4xlarge": 234}
    with pytest.raises(InvalidInput):
        cidr.aws_max_pods(0, 10)


def test_a_full_node_holds_every_address_of_every_eni():
    # m5.large: 3 ENIs x 10 addresses = 30 held, for 29 max pods (two of them on the node's address).
    assert cidr.node_vpc_addresses(3, 10) == 30
    assert cidr.node_vpc_addresses(4, 15) == 60 > cidr.aws_max_pods(4, 15) + 1
    with pytest.raises(InvalidInput):
        cidr.node_vpc_addresses(3, 0)


def test_vpc_capacity_counts_full_nodes_and_the_reserved_addresses():
    ok = cidr.vpc_capacity("10.110.0.0/20", nodes=10, enis=3, ipv4_per_eni=10)
    assert (ok.usable, ok.addresses_per_node, ok.used, ok.fits) == (4091, 30, 300, True)
    assert (ok.max_pods_per_node, ok.max_nodes) == (29, 4091 // 30)
    assert ok.summary.startswith("/20 = 4096 addresses, 4091 after the 5 AWS reserves; a full node "
                                 "(3 ENIs x 10 addresses, all attached) holds 30: 10 nodes use 300 (7%), fits")
    # A /24 keeps 251 addresses: 8 full m5.large nodes take 240 of them, 9 would take 270.
    assert cidr.vpc_capacity("10.110.0.0/24", nodes=8, enis=3, ipv4_per_eni=10).fits
    too_small = cidr.vpc_capacity("10.110.0.0/24", nodes=9, enis=3, ipv4_per_eni=10)
    assert not too_small.fits and "does not fit" in too_small.summary and too_small.max_nodes == 8


@pytest.mark.parametrize("bad", ["10.0.0.0/8", "10.0.0.0/29", "fd00::/56", "ten"])
def test_vpc_capacity_refuses_a_range_aws_would_not_allow(bad):
    with pytest.raises(InvalidInput):
        cidr.vpc_capacity(bad, nodes=1, enis=3, ipv4_per_eni=10)


def test_max_nodes_counts_full_nodes():
    assert cidr.max_nodes("10.0.0.0/20", 3, 10) == (4096 - 5) // 30
    assert cidr.max_nodes("10.0.0.0/20", *cidr.eni_limits("m5.4xlarge")) == (4096 - 5) // 240


def test_contains_is_unknown_when_a_side_is_missing():
    assert cidr.contains("10.244.0.0/16", "10.244.3.4") is True
    assert cidr.contains("10.244.0.0/16", "192.168.1.101") is False
    assert cidr.contains(None, "10.244.3.4") is None
    assert cidr.contains("10.244.0.0/16", None) is None
