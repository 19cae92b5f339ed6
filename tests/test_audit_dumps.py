"""Dumps as ``kubectl get -o yaml|json`` writes them, generated; and the streaming readers that read them.

:func:`cluster` builds a small but realistic cluster: Namespaces with the labels the API server and
Pod Security set, Deployments with their ReplicaSets and Pods (as the controllers and the API server
leave them: owner references, a node, the service-account token volume, default tolerations,
status), a StatefulSet, a privileged node agent DaemonSet, a CronJob with its Job and Pod, claims,
volumes, RBAC. The other audit tests, and docs/audit.md, read it.

The readers are checked against :mod:`webhook.offline` (which loads whole files): the same values,
whatever the chunking, for YAML and JSON, Lists and multi-document streams.
"""

from __future__ import annotations

import copy
import io
import json
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from webhook import offline
from webhook.audit import dump, model

CREATED = "2026-11-02T09:14:07Z"


def uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "audit-test/" + "/".join(parts)))


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "uid": uid("ns", name), "resourceVersion": "101", "creationTimestamp": CREATED,
                     "labels": {"kubernetes.io/metadata.name": name, **labels}},
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
    }


def container(name: str, image: str, *, secure: bool = True, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
        "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    }
    if secure:
        found["securityContext"] = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                                    "seccompProfile": {"type": "RuntimeDefault"}}
    found.update(extra)
    return found


def pod_spec(*containers: dict[str, Any], account: str = "app", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": list(containers), "serviceAccountName": account, "automountServiceAccountToken": False,
        "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
        "terminationGracePeriodSeconds": 30, "securityContext": {"runAsNonRoot": True},
    }
    spec.update(extra)
    return spec


def owner(kind: str, name: str, api_version: str = "apps/v1", *, namespace_: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid(kind, namespace_, name),
            "controller": True, "blockOwnerDeletion": True}


def meta(kind: str, name: str, ns: str | None, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "uid": uid(kind, ns or "", name), "resourceVersion": "4242",
                             "creationTimestamp": CREATED, "generation": 1,
                             "managedFields": [{"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                                                "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]}
    if ns:
        found["namespace"] = ns
    found.update(extra)
    return found


def running(spec: dict[str, Any], *, node: str) -> dict[str, Any]:
    """A pod spec as the API server and scheduler leave it: token volume, tolerations, node."""
    found = copy.deepcopy(spec)
    found["nodeName"] = node
    found["tolerations"] = [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
    ]
    found["enableServiceLinks"] = True
    found["priority"] = 0
    found.setdefault("volumes", []).append({"name": "kube-api-access-x7k2p", "projected": {"sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}]}})
    return found


POD_STATUS = {"phase": "Running", "qosClass": "Burstable", "podIP": "10.244.1.17", "hostIP": "172.18.0.3",
              "startTime": CREATED, "conditions": [{"type": "Ready", "status": "True"}]}


def deployment_family(ns: str, name: str, spec: dict[str, Any], *, replicas: int, hash_: str = "7d9f8c6b5",
                      pods: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """A Deployment, its ReplicaSet and ``replicas`` Pods (``pods`` replaces the specs of the first ones)."""
    labels = {"app.kubernetes.io/name": name, "team": ns}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta("Deployment", name, ns, labels=labels),
                  "spec": {"replicas": replicas, "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                           "template": {"metadata": {"labels": labels}, "spec": spec}},
                  "status": {"replicas": replicas, "readyReplicas": replicas}}
    rs_name = f"{name}-{hash_}"
    rs_labels = {**labels, "pod-template-hash": hash_}
    replica_set = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                   "metadata": meta("ReplicaSet", rs_name, ns, labels=rs_labels,
                                    ownerReferences=[owner("Deployment", name, namespace_=ns)]),
                   "spec": {"replicas": replicas, "selector": {"matchLabels": rs_labels},
                            "template": {"metadata": {"labels": rs_labels}, "spec": spec}},
                   "status": {"replicas": replicas}}
    found = [deployment, replica_set]
    for index in range(replicas):
        pod_name = f"{rs_name}-{index:05x}"
        this = (pods or [])[index] if index < len(pods or []) else spec
        found.append({"apiVersion": "v1", "kind": "Pod",
                      "metadata": meta("Pod", pod_name, ns, generateName=f"{rs_name}-", labels=rs_labels,
                                       ownerReferences=[owner("ReplicaSet", rs_name, namespace_=ns)]),
                      "spec": running(this, node=f"node-{index % 3}"), "status": POD_STATUS})
    return found


def cluster(*, shops: int = 2, replicas: int = 3) -> list[dict[str, Any]]:
    """A realistic cluster, in the order ``kubectl get ns,all,...`` would not guarantee (owned
    objects before their owners in places), so readers and owners are tested for order."""
    objects: list[dict[str, Any]] = []
    good = pod_spec(container("api", "registry.example.com/shop/api:1.4.2"))
    loose = pod_spec(container("web", "registry.example.com/shop/web:2.0.1", secure=False), account="web")
    root = pod_spec(container("worker", "registry.example.com/batch/worker:3.1.0", secure=False,
                              securityContext={"runAsUser": 0}), account="worker")
    for index in range(shops):
        ns = f"shop-{index + 1}" if shops > 1 else "shop"
        objects.append(namespace(ns, team="shop", **{"pod-security.kubernetes.io/enforce": "baseline"}))
        objects += deployment_family(ns, "api", good, replicas=replicas)
        sidecar = copy.deepcopy(loose)
        sidecar["containers"].append(container("debug", "busybox:1.36", secure=False,
                                               securityContext={"privileged": True}))
        objects += deployment_family(ns, "web", loose, replicas=replicas, hash_="5c4b8d9f7", pods=[sidecar])
        objects.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": meta("PersistentVolumeClaim", "data", ns),
                        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
                                 "resources": {"requests": {"storage": "10Gi"}}},
                        "status": {"phase": "Bound"}})
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("ConfigMap", "api", ns),
                        "data": {"LOG_LEVEL": "info"}})
        objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                        "metadata": meta("Role", "deployer", ns),
                        "rules": [{"apiGroups": ["apps"], "resources": ["deployments"],
                                   "verbs": ["get", "list", "update", "patch"]}]})
    objects.append(namespace("batch", team="data"))
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta("CronJob", "nightly", "batch"),
            "spec": {"schedule": "0 2 * * *", "jobTemplate": {"spec": {"template": {"spec": {**root,
                                                                                           "restartPolicy": "Never"}}}}}}
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": meta("Job", "nightly-29012345", "batch",
                            ownerReferences=[owner("CronJob", "nightly", "batch/v1", namespace_="batch")]),
           "spec": {"template": {"metadata": {"labels": {"job-name": "nightly-29012345"}},
                                 "spec": {**root, "restartPolicy": "Never"}}}}
    job_pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": meta("Pod", "nightly-29012345-q8w7e", "batch", labels={"job-name": "nightly-29012345"},
                                ownerReferences=[owner("Job", "nightly-29012345", "batch/v1", namespace_="batch")]),
               "spec": running({**root, "restartPolicy": "Never"}, node="node-1"),
               "status": {"phase": "Succeeded"}}
    objects += [job_pod, job, cron]  # owned first: the reader must not depend on the order
    objects.append(namespace("monitoring", **{"pod-security.kubernetes.io/enforce": "privileged"}))
    agent = pod_spec(container("agent", "registry.example.com/ops/node-agent:0.9.3", secure=False,
                               securityContext={"privileged": True}), account="node-agent",
                     hostNetwork=True, hostPID=True,
                     volumes=[{"name": "root", "hostPath": {"path": "/", "type": "Directory"}}])
    objects.append({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta("DaemonSet", "node-agent", "monitoring"),
                    "spec": {"selector": {"matchLabels": {"app": "node-agent"}},
                             "template": {"metadata": {"labels": {"app": "node-agent"}}, "spec": agent}}})
    for node in range(3):
        objects.append({"apiVersion": "v1", "kind": "Pod",
                        "metadata": meta("Pod", f"node-agent-{node}x7q", "monitoring", labels={"app": "node-agent"},
                                         ownerReferences=[owner("DaemonSet", "node-agent", namespace_="monitoring")]),
                        "spec": running(agent, node=f"node-{node}"), "status": POD_STATUS})
    objects.append({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta("StatefulSet", "db", "batch"),
                    "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                             "template": {"metadata": {"labels": {"app": "db"}},
                                          "spec": pod_spec(container("db", "registry.example.com/data/pg:16.4"),
                                                           account="db")},
                             "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                                 "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "50Gi"}}}}]}})
    objects.append({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": meta("PersistentVolume", "local-1", None),
                    "spec": {"capacity": {"storage": "100Gi"}, "accessModes": ["ReadWriteOnce"],
                             "hostPath": {"path": "/mnt/disks/1"}, "storageClassName": "manual"}})
    objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": meta("ClusterRole", "ops-everything", None),
                    "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]})
    objects.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": meta("ClusterRoleBinding", "ops-everything", None),
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ops-everything"},
                    "subjects": [{"kind": "Group", "name": "ops", "apiGroup": "rbac.authorization.k8s.io"}]})
    return objects


def as_list(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The List ``kubectl get -o yaml`` prints (keys sorted, as kubectl does)."""
    return {"apiVersion": "v1", "items": objects, "kind": "List", "metadata": {"resourceVersion": ""}}


def write_yaml(path: Path, objects: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump(as_list(objects), sort_keys=True, width=1000))
    return path


def write_json(path: Path, objects: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(as_list(objects), indent=4, sort_keys=True))
    return path


def many_pods_yaml(path: Path, count: int, *, namespace_name: str = "bulk") -> Path:
    """``count`` Pods (and their Namespace) as one YAML List, written by substituting names into
    one rendered item: rendering 20,000 items with PyYAML would take longer than the test."""
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": meta("Pod", "NAME", namespace_name, labels={"app": "bulk"}),
           "spec": running(pod_spec(container("app", "registry.example.com/bulk/app:1.0.0"),
                                    container("proxy", "registry.example.com/edge/proxy:2.0.1")), node="node-0"),
           "status": POD_STATUS}
    item = yaml.safe_dump([pod], sort_keys=True, width=1000)
    with path.open("w") as out:
        out.write("apiVersion: v1\nitems:\n")
        out.write(yaml.safe_dump([namespace(namespace_name)], sort_keys=True, width=1000))
        for index in range(count):
            out.write(item.replace("NAME", f"bulk-{index:06d}").replace(pod["metadata"]["uid"], uid("bulk", str(index))))
        out.write("kind: List\nmetadata:\n  resourceVersion: ''\n")
    return path


# --- the readers -----------------------------------------------------------------------------------


def read_all(path: Path) -> list[Any]:
    return [value for _, value, _ in dump.values(str(path), path)]


def whole(path: Path) -> list[Any]:
    """What :mod:`webhook.offline` (which loads the whole file) makes of it: the reference."""
    found = []
    for document in offline._documents(path.name, path.read_text()):
        found.extend(document["items"] if isinstance(document, dict) and "items" in document else [document])
    return found


def roundtrip(values: list[Any]) -> list[Any]:
    return [orjson.loads(orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)) for v in values]


@pytest.mark.parametrize("writer", [write_yaml, write_json])
def test_a_generated_list_reads_item_by_item_the_same_as_a_whole_file_load(tmp_path: Path, writer: Any) -> None:
    path = writer(tmp_path / ("dump.yaml" if writer is write_yaml else "dump.json"), cluster())
    assert roundtrip(read_all(path)) == whole(path)


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_json_items_split_across_any_chunk_boundary_read_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    objects = cluster(shops=1, replicas=1)
    path = write_json(tmp_path / "dump.json", objects)
    path.write_text(path.read_text() + "\n" + json.dumps(objects[0]) + " 12345\n")
    monkeypatch.setattr(dump, "CHUNK", chunk)
    assert read_all(path) == [*objects, objects[0], 12345]


def test_yaml_scalars_resolve_as_the_offline_reader_resolves_them(tmp_path: Path) -> None:
    text = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: types
  creationTimestamp: 2024-01-01T00:00:00Z
  annotations: {quoted: "1", plain: 2, yes_: yes, nothing: ~, hex: 0x10, float: 1.5, empty: "", bare: , big: 1_000}
base: &base {x: 1, y: 2}
merged:
  <<: *base
  y: 3
block: |
  line 1
  line 2
---
- a
- 1
"""
    path = tmp_path / "types.yaml"
    path.write_text(text)
    assert roundtrip(read_all(path)) == whole(path)


def test_several_documents_and_a_typed_list_without_item_kinds(tmp_path: Path) -> None:
    """``kubectl get --raw /api/v1/pods`` lists items without apiVersion and kind."""
    path = tmp_path / "raw.json"
    path.write_text(json.dumps({"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                "items": [{"metadata": {"name": "a", "namespace": "x"}, "spec": {}}]}))
    with dump.Source([str(path)]) as source:
        source.prepare()
        (item,) = list(source.items())
    assert item.object["kind"] == "Pod" and item.object["apiVersion"] == "v1"


@pytest.mark.parametrize(
    ("text", "suffix", "expected"),
    [
        ("apiVersion: v1\nitems:\n- {a: 1\n", ".yaml", "bad.yaml:4: invalid YAML:"),
        ('{"apiVersion": "v1", "items": [{"a": 1},', ".json", "bad.json: invalid JSON:"),
        ('{"apiVersion": "v1", "items": [{"a": 1} {"b": 2}]}', ".json", "bad.json: invalid JSON: expected ',' or ']'"),
    ],
)
def test_a_broken_file_is_one_line_naming_the_file_and_the_place(
    tmp_path: Path, text: str, suffix: str, expected: str
) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(model.Problem) as caught:
        read_all(path)
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_standard_input_is_sniffed_json_or_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    objects = cluster(shops=1, replicas=1)[:3]
    for text in (json.dumps(as_list(objects)), yaml.safe_dump(as_list(objects))):
        stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(text.encode())))  # type: ignore[arg-type]
        monkeypatch.setattr("sys.stdin", stdin)
        assert [v for _, v, _ in dump.values("<stdin>", None)] == objects


def test_the_source_keeps_namespaces_and_yields_owners_before_what_they_own(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "dump.yaml", cluster(shops=1, replicas=2))
    with dump.Source([str(path)]) as source:
        source.prepare()
        kinds = [item.object["kind"] for item in source.items()]
    assert set(source.namespaces) == {"shop", "batch", "monitoring"}
    assert source.namespaces["shop"].labels["kubernetes.io/metadata.name"] == "shop"
    ranks = [model.rank(kind) for kind in kinds]
    assert ranks == sorted(ranks)
    assert kinds.index("CronJob") < kinds.index("Job") < kinds.index("Pod")


def test_the_bulk_writer_makes_a_list_the_reader_reads(tmp_path: Path) -> None:
    path = many_pods_yaml(tmp_path / "bulk.yaml", 3)
    found = read_all(path)
    assert [o["metadata"]["name"] for o in found] == ["bulk", "bulk-000000", "bulk-000001", "bulk-000002"]
    assert len({o["metadata"]["uid"] for o in found}) == 4


def test_a_hand_written_pod_without_a_namespace_is_in_default(tmp_path: Path) -> None:
    path = tmp_path / "manifests.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: a, image: b}]}\n"
                    "---\napiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    with dump.Source([str(path)]) as source:
        source.prepare()
        found = {item.object["kind"]: item.object["metadata"].get("namespace") for item in source.items()}
    assert found == {"Pod": "default", "Widget": None}
