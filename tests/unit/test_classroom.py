"""The classroom's pure parts: learners' names and namespaces, the objects `up` creates, capacity."""
from __future__ import annotations

import pytest

from k8snb import classroom, learner
from k8snb.errors import InvalidInput
from k8snb.manifests import CLASSROOM, KINDS, PART_OF
from k8snb.wait import replica_failure


def test_a_learner_alone_works_in_default_and_nginx():
    assert learner.namespaces({}) == ("default", "nginx")
    assert learner.namespaces({"K8SNB_NAMESPACE": "k8snb-ana", "K8SNB_SECOND_NAMESPACE": "k8snb-ana-nginx"}) == \
        ("k8snb-ana", "k8snb-ana-nginx")


@pytest.mark.parametrize("env", [{"K8SNB_NAMESPACE": "Bad_Name"}, {"K8SNB_NAMESPACE": "x", "K8SNB_SECOND_NAMESPACE": "x"}])
def test_bad_learner_namespaces_are_refused(env):
    with pytest.raises(InvalidInput):
        learner.namespaces(env)


def test_numbered_and_named_learners(tmp_path):
    assert [x.name for x in classroom.learners(count=3)] == ["learner-01", "learner-02", "learner-03"]
    assert classroom.learners(count=100)[-1].name == "learner-100"
    names = tmp_path / "class.txt"
    names.write_text("# class 2B\nana\n\nbo\n")
    group = classroom.learners(classroom.names_from_file(names))
    assert [(x.namespace, x.second_namespace) for x in group] == [("k8snb-ana", "k8snb-ana-nginx"),
                                                                  ("k8snb-bo", "k8snb-bo-nginx")]
    assert group[0].environment() == {"K8SNB_NAMESPACE": "k8snb-ana", "K8SNB_SECOND_NAMESPACE": "k8snb-ana-nginx"}


@pytest.mark.parametrize("names", [["ana", "ana"], ["Ana"], ["x" * (classroom.MAX_NAME + 1)], [],
                                   ["ana", "ana-nginx"], ["hub"], ["shared"]])
def test_bad_learner_lists_are_refused(names):
    with pytest.raises(InvalidInput):
        classroom.learners(names, count=None)


def test_every_object_of_a_learner_is_labelled_and_kept_to_their_namespaces():
    ana = classroom.Learner("ana")
    objs = classroom.learner_objects(ana)
    kinds = [o["kind"] for o in objs]
    assert kinds.count("Namespace") == 2 and kinds.count("ResourceQuota") == 4 and kinds.count("NetworkPolicy") == 3
    assert all(o["kind"] in KINDS for o in objs)
    for o in objs:
        labels = o["metadata"]["labels"]
        assert labels[PART_OF] == "k8snb" and labels[CLASSROOM] == "ana"
        assert o["metadata"].get("namespace", ana.namespace) in ana.namespaces
    own = [o for o in objs if o["metadata"]["name"] == "k8snb-own-namespaces"]
    assert [o["metadata"]["namespace"] for o in own] == list(ana.namespaces)
    # Matched by the namespaces' names, which nobody can put on another namespace (a label can be).
    by_name = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(ana.namespaces)}
    assert all(o["spec"]["podSelector"] == {} and o["spec"]["ingress"] ==
               [{"from": [{"namespaceSelector": {"matchExpressions": [by_name]}}]}] for o in own)
    quotas = {(o["metadata"]["namespace"], o["metadata"]["name"]): o["spec"] for o in objs if o["kind"] == "ResourceQuota"}
    main, second = quotas[(ana.namespace, "k8snb-learner")]["hard"], quotas[(ana.second_namespace, "k8snb-learner")]["hard"]
    assert int(main["pods"]) < 50  # scaling to 50 is stopped
    for hard in (main, second):  # every countable kind has a ceiling
        assert {"services", "configmaps", "requests.ephemeral-storage", "limits.ephemeral-storage",
                "services.loadbalancers", "services.nodeports"} <= set(hard)
    assert second["services.loadbalancers"] == second["services.nodeports"] == "0"  # one cloud LB per learner
    assert int(second["pods"]) < int(main["pods"])
    for ns in ana.namespaces:  # no pod of a learner's may take a critical priority and preempt others
        critical = quotas[(ns, "k8snb-no-critical-priority")]
        assert critical["hard"] == {"pods": "0"}
        assert critical["scopeSelector"]["matchExpressions"][0]["values"] == list(classroom.CRITICAL_PRIORITIES)
    limits = next(o for o in objs if o["kind"] == "LimitRange")["spec"]["limits"][0]
    assert set(limits["max"]) == {"cpu", "memory", "ephemeral-storage"}
    main_ns = next(o for o in objs if o["kind"] == "Namespace" and o["metadata"]["name"] == ana.namespace)
    assert main_ns["metadata"]["labels"][classroom.HUB_API_ACCESS_LABEL] == "true"
    binding = next(o for o in objs if o["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == classroom.READ_ROLE
    assert classroom.read_role()["rules"][0]["resources"] == ["nodes"]  # no namespaces, no DaemonSets


def test_only_the_hubs_proxy_reaches_a_learners_jupyterlab():
    """Port 8888 is admitted from the chart's proxy and hub pods in the hub's namespace (where no
    learner can make a pod), plus the lab's host address; never from anywhere else."""
    ana = classroom.Learner("ana")
    chart = classroom.server_policy(ana, classroom.HubSource())
    assert chart["metadata"]["namespace"] == ana.namespace
    assert chart["spec"]["podSelector"] == {"matchLabels": classroom.SERVER_POD_LABELS}
    (rule,) = chart["spec"]["ingress"]
    assert rule["ports"] == [{"port": 8888, "protocol": "TCP"}]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "k8snb-hub"}},
                             "podSelector": {"matchLabels": {"hub.jupyter.org/network-access-singleuser": "true"}}}]
    lab = classroom.server_policy(ana, classroom.HubSource(address="172.29.0.1"))
    assert lab["spec"]["ingress"][0]["from"][1:] == [{"ipBlock": {"cidr": "172.29.0.1/32"}}]
    every_source = [s for o in classroom.learner_objects(ana) if o["kind"] == "NetworkPolicy"
                    for r in o["spec"]["ingress"] for s in r["from"]]
    assert not [s for s in every_source if "ipBlock" in s]  # no address range unless the lab's host


def test_the_hub_may_spawn_in_learners_namespaces_and_nowhere_else():
    """KubeSpawner with user namespaces: cluster-wide only reads of pods and events and namespace
    creation; pod creation and deletion through a RoleBinding in each learner's main namespace."""
    watch, binding, spawner = classroom.hub_roles()
    cluster_verbs = {(r, v) for rule in watch["rules"] for r in rule["resources"] for v in rule["verbs"]}
    assert cluster_verbs == {("pods", "get"), ("pods", "list"), ("pods", "watch"), ("events", "get"),
                             ("events", "list"), ("events", "watch"), ("namespaces", "create")}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hub", "namespace": "k8snb-hub"}]
    assert binding["roleRef"]["name"] == watch["metadata"]["name"]
    assert spawner["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "create", "delete"]}]
    ana = classroom.Learner("ana")
    (rb,) = [o for o in classroom.learner_objects(ana) if o["metadata"]["name"] == classroom.SPAWNER_ROLE]
    assert rb["metadata"]["namespace"] == ana.namespace and rb["subjects"] == binding["subjects"]


def test_the_classroom_role_is_the_learner_role_under_its_own_name():
    role = classroom.learner_role()
    assert role["metadata"]["name"] == classroom.LEARNER_ROLE != "k8snb-learner"
    assert {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]} in role["rules"]


def test_capacity_is_whichever_runs_out_first():
    # 4 cores and 16 GiB, 25% reserved: 3000m / 100m = 30 by CPU, 12288 MiB / 1024 MiB = 12 by memory.
    assert classroom.capacity(100, 1024, 4, 16) == 12
    assert classroom.capacity(1000, 10, 4, 16) == 3


def test_a_quota_refusal_is_read_from_the_deployment():
    deploy = {"status": {"conditions": [{"type": "Available", "status": "True"},
                                        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                         "message": 'pods "x" is forbidden: exceeded quota: k8snb-learner'}]}}
    assert replica_failure(deploy).startswith("FailedCreate: pods \"x\" is forbidden: exceeded quota")
    assert replica_failure({"status": {}}) == ""


class _Config(dict):
    """What a jupyterhub_config.py sets: c.Class.trait = value, recorded as {'Class': {'trait': value}}."""

    def __getattr__(self, name):
        return self.setdefault(name, _Section())


class _Section(dict):
    def __setattr__(self, name, value):
        self[name] = value


def test_the_zero_to_jupyterhub_values_match_the_labs_hub(tmp_path):
    import yaml
    from importlib import resources

    from k8snb.lab import hub, singleuser

    for name in ("proxy-token", "teacher-token"):
        (tmp_path / name).write_text("secret\n")
    lab = _Config()
    exec(hub.config(tmp_path, f"{singleuser.REPOSITORY}:abc", ["ana", "bo"], "172.29.0.1"), {"c": lab})  # noqa: S102
    text = resources.files("k8snb").joinpath("manifests", "z2jh-values.yaml").read_text()
    values = yaml.safe_load(text)
    assert f"-n {classroom.HUB_NAMESPACE} " in text  # where the server policy expects the chart's proxy
    spawner, single = values["hub"]["config"]["KubeSpawner"], values["singleuser"]
    # One login per learner on both: the lab's own passwords, a site authenticator on a real cluster;
    # never one password for the whole class.
    assert lab["JupyterHub"]["authenticator_class"] == "k8snb.lab.hubauth.LearnerPasswordAuthenticator"
    assert lab["LearnerPasswordAuthenticator"]["passwords_file"] == str(tmp_path / hub.PASSWORDS)
    assert values["hub"]["config"]["JupyterHub"]["authenticator_class"] not in ("shared-password", "dummy")
    assert "SharedPasswordAuthenticator" not in values["hub"]["config"]
    # Each chart default the classroom cannot live with, set: the NET_ADMIN init container (refused
    # by Pod Security baseline), egress to the cloud metadata address (blocked by the chart's policy
    # instead), the hub's policy across namespaces, clear-text passwords.
    assert single["cloudMetadata"]["blockWithIptables"] is False
    assert single["networkPolicy"]["enabled"] is True
    assert single["networkPolicy"]["egressAllowRules"]["cloudMetadataServer"] is False
    assert values["hub"]["networkPolicy"]["interNamespaceAccessLabels"] == "accept"
    assert values["proxy"]["https"]["enabled"] is True
    assert lab["KubeSpawner"]["enable_user_namespaces"] is spawner["enable_user_namespaces"] is True
    assert lab["KubeSpawner"]["user_namespace_template"] == spawner["user_namespace_template"] == \
        classroom.NAMESPACE_PREFIX + "{username}"
    assert lab["KubeSpawner"]["service_account"] == single["serviceAccountName"] == classroom.LEARNER_ACCOUNT
    assert lab["KubeSpawner"]["environment"] == single["extraEnv"]
    assert lab["KubeSpawner"]["image"].split(":")[0] == single["image"]["name"] == singleuser.REPOSITORY
    assert lab["KubeSpawner"]["cmd"] == [single["cmd"]]
    assert (lab["KubeSpawner"]["uid"], lab["KubeSpawner"]["fs_gid"]) == (single["uid"], single["fsGid"])
    assert lab["KubeSpawner"]["default_url"] == single["defaultUrl"]
    assert lab["Authenticator"]["allowed_users"] == {"ana", "bo"}
    # Learners' namespaces as the classroom names them, and as k8snb.learner reads them.
    ana = classroom.Learner("ana")
    rendered = {k: v.replace("{username}", "ana") for k, v in single["extraEnv"].items()}
    assert rendered == ana.environment() and learner.namespaces(rendered) == ana.namespaces


def test_notebook_03s_slider_maximum_fits_the_learners_quota():
    """10 nginx-hello replicas (the slider's maximum), netshoot, notebook 01's client and a surge
    pod at the LimitRange's defaults, beside the JupyterLab server at its own limits (1 CPU, 1 GiB)."""
    from k8snb.widgets import MAX_REPLICAS

    quota = classroom.Quota()
    assert quota.pods >= MAX_REPLICAS + 4
    assert quota.fits_the_course(server_cpu=1.0, server_memory_mib=1024.0)
    assert not classroom.Quota(default_limit_cpu="500m", limits_cpu="4").fits_the_course()  # the old quota did not


def test_services_with_external_ips_are_refused_in_every_classroom_namespace():
    policy, binding = classroom.external_ips_policy()
    assert policy["kind"] == "ValidatingAdmissionPolicy" and binding["spec"]["validationActions"] == ["Deny"]
    assert policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"] == ["services"]
    assert "externalIPs" in policy["spec"]["validations"][0]["expression"]
    assert binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0]["key"] == CLASSROOM
    assert all(o["kind"] in KINDS for o in (policy, binding))
    assert {kind for _, _, kind in classroom.CLUSTER_WIDE} >= {policy["kind"], binding["kind"]}
