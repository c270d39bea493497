"""Synthetic API lists for the table benchmarks: realistic pod and node JSON, no cluster needed.

Each pod carries what a real kubelet-reported pod carries (managed fields, a container spec with
env, probes and volume mounts, status conditions), so byte counts per pod are close to a real
cluster's (about 4 KiB).
"""
from __future__ import annotations

import ipaddress
import json


def node(i: int) -> dict:
    return {
        "metadata": {"name": f"node-{i:05d}", "uid": f"uid-node-{i}", "creationTimestamp": "2026-11-01T00:00:00Z",
                     "labels": {"kubernetes.io/hostname": f"node-{i:05d}", "kubernetes.io/os": "linux",
                                "node.kubernetes.io/instance-type": "m5.large", "topology.kubernetes.io/zone": "z1"}},
        "spec": {"podCIDR": f"10.{64 + i // 256}.{i % 256}.0/24", "podCIDRs": [f"10.{64 + i // 256}.{i % 256}.0/24"],
                 "providerID": f"aws:///z1/i-{i:017x}"},
        "status": {"addresses": [{"type": "InternalIP", "address": str(ipaddress.ip_address("192.168.0.10") + i)},
                                 {"type": "Hostname", "address": f"node-{i:05d}"}],
                   "conditions": [{"type": t, "status": "False" if t != "Ready" else "True",
                                   "lastHeartbeatTime": "2026-11-28T00:00:00Z", "reason": "KubeletReady",
                                   "message": "kubelet is posting ready status"}
                                  for t in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")],
                   "nodeInfo": {"kubeletVersion": "v1.37.2", "osImage": "Amazon Linux 2023", "architecture": "amd64",
                                "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://2.1.4"},
                   "capacity": {"cpu": "2", "memory": "8Gi", "pods": "29"}},
    }


def pod(i: int, nodes: int) -> dict:
    n = i % nodes
    name = f"app-{i // 1000:03d}-7d95c6dbcb-{i:06d}"
    return {
        "metadata": {"name": name, "namespace": f"ns-{i % 50:02d}", "uid": f"uid-pod-{i}",
                     "creationTimestamp": "2026-11-27T10:00:00Z", "resourceVersion": str(100000 + i),
                     "labels": {"app": f"app-{i // 1000:03d}", "pod-template-hash": "7d95c6dbcb"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "app-7d95c6dbcb",
                                          "uid": "uid-rs", "controller": True, "blockOwnerDeletion": True}],
                     "managedFields": [{"manager": "kube-controller-manager", "operation": "Update",
                                        "apiVersion": "v1", "time": "2026-11-27T10:00:00Z", "fieldsType": "FieldsV1",
                                        "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                                                     "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}}}}}}]},
        "spec": {"nodeName": f"node-{n:05d}", "serviceAccountName": "default", "restartPolicy": "Always",
                 "containers": [{"name": "app", "image": "nginxdemos/hello:latest", "ports": [{"containerPort": 80}],
                                 "env": [{"name": f"VAR_{k}", "value": f"value-{k}"} for k in range(5)],
                                 "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 10},
                                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                                 "volumeMounts": [{"name": "kube-api-access", "readOnly": True,
                                                   "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
                 "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                  "effect": "NoExecute", "tolerationSeconds": 300}]},
        "status": {"phase": "Running", "podIP": f"10.{64 + n // 256}.{n % 256}.{2 + (i // nodes) % 250}",
                   "hostIP": str(ipaddress.ip_address("192.168.0.10") + n), "qosClass": "Burstable",
                   "startTime": "2026-11-27T10:00:01Z",
                   "conditions": [{"type": t, "status": "True", "lastTransitionTime": "2026-11-27T10:00:03Z"}
                                  for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                                            "PodScheduled")],
                   "containerStatuses": [{"name": "app", "ready": True, "restartCount": i % 3, "started": True,
                                          "image": "docker.io/nginxdemos/hello:latest", "imageID": "sha256:abc",
                                          "containerID": f"containerd://{i:064x}",
                                          "state": {"running": {"startedAt": "2026-11-27T10:00:02Z"}}}]},
    }


def pod_list(n: int, nodes: int) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "1"},
                       "items": [pod(i, nodes) for i in range(n)]}).encode()


def node_list(nodes: int) -> bytes:
    return json.dumps({"apiVersion": "v1", "kind": "NodeList", "metadata": {"resourceVersion": "1"},
                       "items": [node(i) for i in range(nodes)]}).encode()
