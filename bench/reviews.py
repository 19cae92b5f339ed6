"""The reviews the benchmark sends: what the API server posts for a typical Deployment rollout.

The Pod is what a ReplicaSet controller creates, as it looks when it reaches the webhooks: the
ServiceAccount admission plugin has already added the ``kube-api-access`` projected volume and
its mounts, DefaultTolerationSeconds the two ``not-ready``/``unreachable`` tolerations, and the
API server its defaults (dnsPolicy, schedulerName, terminationMessagePath...). With two
containers, a probe, env and resources the whole AdmissionReview is 2.5-3 KB, like real ones.
"""

from __future__ import annotations

import copy
import random
import uuid
from typing import Any

import orjson

NAMESPACE = "shop"


def _container(name: str, image: str, port: int, *, main: bool) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "volumeMounts": [
            {"name": "kube-api-access-7xk2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
             "readOnly": True},
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "imagePullPolicy": "IfNotPresent",
    }
    if main:
        container["ports"] = [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        container["env"] = [{"name": "DB_HOST", "value": "postgres.shop.svc.cluster.local"}]
        container["volumeMounts"].insert(0, {"name": "config", "mountPath": "/etc/app", "readOnly": True})
        container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": port, "scheme": "HTTP"},
                                       "periodSeconds": 5, "timeoutSeconds": 1, "successThreshold": 1,
                                       "failureThreshold": 3}
    return container


def pod_template_spec() -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "checkout", "tier": "backend", "pod-template-hash": "7d9f8c6b5"}},
        "spec": {
            "containers": [
                _container("checkout", "registry.example.com/shop/checkout:2.14.1", 8080, main=True),
                _container("metrics", "registry.example.com/shop/exporter:0.9.3", 9100, main=False),
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "checkout-config", "defaultMode": 420}},
                {"name": "kube-api-access-7xk2p", "projected": {"defaultMode": 420, "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {"configMap": {"name": "kube-root-ca.crt",
                                   "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                        "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
                ]}},
            ],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "checkout",
            "serviceAccount": "checkout",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                 "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
                 "tolerationSeconds": 300},
            ],
            "priority": 0,
            "enableServiceLinks": True,
            "preemptionPolicy": "PreemptLowerPriority",
        },
    }


def pod() -> dict[str, Any]:
    template = pod_template_spec()
    metadata = {
        "generateName": "checkout-7d9f8c6b5-",
        "namespace": NAMESPACE,
        **template["metadata"],
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-7d9f8c6b5",
                             "uid": "6f1c2a0e-8d4b-4c1e-9a57-2b1f0c3d4e5f",
                             "controller": True,
                             "blockOwnerDeletion": True}],
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}


def deployment() -> dict[str, Any]:
    template = pod_template_spec()
    del template["metadata"]["labels"]["pod-template-hash"]
    template["spec"].pop("serviceAccount")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "checkout", "namespace": NAMESPACE, "labels": {"app": "checkout"},
                     "annotations": {"deployment.kubernetes.io/revision": "14"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "checkout", "tier": "backend"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "template": template,
        },
    }


def review(obj: dict[str, Any], *, uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002") -> dict[str, Any]:
    """The AdmissionReview the API server sends for a CREATE of ``obj`` by a controller."""
    is_pod = obj["kind"] == "Pod"
    group, resource = ("", "pods") if is_pod else ("apps", "deployments")
    gvk = {"group": group, "version": "v1", "kind": obj["kind"]}
    user = ("system:serviceaccount:kube-system:replicaset-controller" if is_pod
            else "system:serviceaccount:ci:deployer")
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": gvk,
            "resource": {"group": group, "version": "v1", "resource": resource},
            "requestKind": gvk,
            "requestResource": {"group": group, "version": "v1", "resource": resource},
            "name": obj["metadata"].get("name", ""),
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "userInfo": {"username": user, "uid": "3b1f4c8e-2d6a-4f0b-8e1c-5a7d9c2b4e6f",
                         "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system",
                                    "system:authenticated"]},
            "object": copy.deepcopy(obj),
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


PATHS = ("/validate", "/mutate")
"""Each review is sent to both endpoints, as a cluster with one validating and one mutating
webhook configuration pointing at the server would."""


def bodies() -> dict[str, bytes]:
    """``name -> body`` for the two reviews."""
    return {"pod": orjson.dumps(review(pod())), "deployment": orjson.dumps(review(deployment()))}


def requests() -> list[tuple[str, str, bytes]]:
    """``(label, path, body)`` for every review on every endpoint: the mixed load cycles through them."""
    return [
        (f"{name}{path}", path + "?timeout=10s", body) for name, body in bodies().items() for path in PATHS
    ]


POD_SECURITY_PATH = "/validate/pod-security"
"""Pod Security alone (its three levels): the endpoint compared with the official Go webhook."""


def endpoint_requests() -> list[tuple[str, str, bytes]]:
    """``(label, path, body)`` for the Pod review on each endpoint measured against a target."""
    pod_body = bodies()["pod"]
    return [(f"pod{path}", path + "?timeout=10s", pod_body) for path in (POD_SECURITY_PATH, *PATHS)]


_IMAGES = ("registry.example.com/shop/checkout:2.14.1", "registry.example.com/shop/cart:1.3.0",
           "ghcr.io/acme/api:v5.2.7", "docker.io/library/nginx:1.27.2", "quay.io/prometheus/node-exporter:v1.8.2",
           "registry.example.com/shop/exporter:0.9.3", "cr.fluentbit.io/fluent/fluent-bit:3.1.9")
_RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
               "seccompProfile": {"type": "RuntimeDefault"}}


def distinct_pod(rng: random.Random) -> dict[str, Any]:
    """One Pod of a rollout as the API server sends it, different from every other: its own name
    suffix, pod-template hash, token volume (``kube-api-access-<random>``, as the ServiceAccount
    admission plugin names it) and uid; one to three containers from a few images; most as the
    typical Pod, some restricted-compliant, a few with a baseline violation (a hostPort)."""
    obj = pod()
    suffix = "".join(rng.choices("bcdfghjklmnpqrstvwxz2456789", k=5))
    template_hash = "".join(rng.choices("0123456789abcdef", k=9))
    app = rng.choice(("checkout", "cart", "api", "search", "billing"))
    obj["metadata"].update(generateName=f"{app}-{template_hash}-", labels={
        "app": app, "tier": rng.choice(("backend", "frontend")), "pod-template-hash": template_hash})
    owner = obj["metadata"]["ownerReferences"][0]
    owner.update(name=f"{app}-{template_hash}", uid=str(uuid.UUID(int=rng.getrandbits(128))))
    spec = obj["spec"]
    token = f"kube-api-access-{suffix}"
    spec["volumes"][1]["name"] = token
    main, side = spec["containers"]
    containers = [main, side][: rng.choice((1, 2, 2, 2))]
    if rng.random() < 0.25:
        extra = copy.deepcopy(side)
        extra["name"] = "proxy"
        containers.append(extra)
    for container in containers:
        container["image"] = rng.choice(_IMAGES)
        for mount in container["volumeMounts"]:
            if mount["name"].startswith("kube-api-access-"):
                mount["name"] = token
    main["name"] = app
    kind = rng.random()
    if kind < 0.3:
        spec["securityContext"] = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
        for container in containers:
            container["securityContext"] = copy.deepcopy(_RESTRICTED)
    elif kind < 0.4:
        main["ports"][0]["hostPort"] = 8080
    spec["containers"] = containers
    return obj


def distinct_bodies(count: int = 1000, *, seed: int = 20261121) -> list[bytes]:
    """``count`` reviews of distinct Pods (see :func:`distinct_pod`), each with its own uid: a
    decision cache could not answer any of them from another."""
    rng = random.Random(seed)
    return [orjson.dumps(review(distinct_pod(rng), uid=str(uuid.UUID(int=rng.getrandbits(128)))))
            for _ in range(count)]
