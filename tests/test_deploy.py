"""Every kustomize overlay under deploy/, rendered offline with `kubectl kustomize`, checked object by object.

The overlays that use ``components/static-certs`` need certificate files: a copy of deploy/ gets
fresh ones from :func:`webhook.certs.ensure`, so nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook import catalog, certs, config, engine, registration, server
from webhook.commands import register as register_command
from webhook.policy import files

REPO = Path(__file__).resolve().parents[1]
OVERLAYS = ("static-certs", "failure-fail", "failure-ignore", "cert-manager")
NAMESPACE = "admission-webhook"
COMMON_KINDS = Counter(
    {
        "Namespace": 1,
        "ServiceAccount": 1,
        "ClusterRole": 1,
        "ClusterRoleBinding": 1,
        "ConfigMap": 1,
        "Service": 1,
        "Deployment": 1,
        "PodDisruptionBudget": 1,
        "NetworkPolicy": 1,
        "MutatingWebhookConfiguration": 1,
        "ValidatingWebhookConfiguration": 1,
    }
)
EXPECTED_KINDS = {
    "base": COMMON_KINDS,
    "static-certs": COMMON_KINDS + Counter({"Secret": 1}),
    "failure-fail": COMMON_KINDS + Counter({"Secret": 1}),
    "failure-ignore": COMMON_KINDS + Counter({"Secret": 1}),
    "cert-manager": COMMON_KINDS + Counter({"Issuer": 2, "Certificate": 2}),
}
REGENERATE = "python -m webhook register --dry-run --ca-bundle '' > deploy/base/webhook-configurations.yaml"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    root = tmp_path_factory.mktemp("deploy") / "deploy"
    shutil.copytree(REPO / "deploy", root)
    certs.ensure(root / "components" / "static-certs" / "certs", service=NAMESPACE, namespace=NAMESPACE)
    return root


@pytest.fixture(scope="module")
def rendered(workdir: Path) -> dict[str, list[dict[str, Any]]]:
    result = {}
    for name in ("base", *OVERLAYS):
        path = workdir / "base" if name == "base" else workdir / "overlays" / name
        done = subprocess.run(
            ["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, f"kubectl kustomize {name} failed: {done.stderr}"
        result[name] = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    return result


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def webhooks(objects: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (o["kind"], hook)
        for o in objects
        if o["kind"].endswith("WebhookConfiguration")
        for hook in o["webhooks"]
    ]


def dry_run(*argv: str) -> list[dict[str, Any]]:
    """``register --dry-run`` through its real argument parser, parsed back from YAML."""
    parser = argparse.ArgumentParser()
    register_command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["register", "--dry-run", *argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.func(args) == 0
    return list(yaml.safe_load_all(out.getvalue()))


def configurations(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The webhook configurations, with caBundle line breaks removed: kustomize wraps the base64 of
    Secret data, and the API server's base64 decoding (Go's ``encoding/base64``) ignores them."""
    found = [o for o in objects if o["kind"].endswith("WebhookConfiguration")]
    for _, hook in webhooks(found):
        if "caBundle" in hook["clientConfig"]:
            hook["clientConfig"]["caBundle"] = hook["clientConfig"]["caBundle"].replace("\n", "")
    return found


@pytest.mark.parametrize("overlay", ["base", *OVERLAYS])
def test_each_overlay_renders_the_expected_kinds(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    assert Counter(o["kind"] for o in rendered[overlay]) == EXPECTED_KINDS[overlay]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_webhook_can_block_its_own_namespace_or_the_system(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    for _, hook in webhooks(rendered[overlay]):
        (expression,) = hook["namespaceSelector"]["matchExpressions"]
        assert expression["key"] == "kubernetes.io/metadata.name" and expression["operator"] == "NotIn"
        assert {"admission-webhook", "kube-system", "kube-node-lease"} <= set(expression["values"])
        assert 1 <= hook["timeoutSeconds"] <= 30
        assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]


def test_every_webhook_path_is_served_by_the_server(rendered: dict[str, list[dict[str, Any]]]) -> None:
    policy_set = engine.PolicySet(files.load([REPO / "policies"]), catalog=catalog.REGISTRY)
    app = server.build_app(config.ServeSettings(), policy_set=policy_set)
    served = {
        route.resource.canonical for route in app.router.routes() if route.method == "POST" and route.resource
    }
    for kind, hook in webhooks(rendered["static-certs"]):
        path = hook["clientConfig"]["service"]["path"]
        assert path in served
        group = hook["name"].removesuffix(f".{registration.WEBHOOK_DOMAIN}")
        assert path == f"/{'mutate' if kind.startswith('Mutating') else 'validate'}/{group}"
        assert hook["clientConfig"]["service"] == {
            "namespace": NAMESPACE,
            "name": "admission-webhook",
            "path": path,
            "port": 443,
        }


@pytest.mark.parametrize(
    ("overlay", "mutating", "validating"),
    [
        ("static-certs", "Ignore", "Fail"),
        ("cert-manager", "Ignore", "Fail"),
        ("failure-fail", "Fail", "Fail"),
        ("failure-ignore", "Ignore", "Ignore"),
    ],
)
def test_failure_policies_per_overlay(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, mutating: str, validating: str
) -> None:
    found = {(kind, hook["failurePolicy"]) for kind, hook in webhooks(rendered[overlay])}
    assert found == {
        ("MutatingWebhookConfiguration", mutating),
        ("ValidatingWebhookConfiguration", validating),
    }


def test_the_base_webhooks_are_exactly_what_register_dry_run_prints(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    assert configurations(rendered["base"]) == dry_run("--ca-bundle", ""), f"regenerate: {REGENERATE}"


@pytest.mark.parametrize(
    ("overlay", "flags"),
    [
        ("static-certs", []),
        ("failure-fail", ["--failure-policy-advisory", "Fail"]),
        ("failure-ignore", ["--failure-policy-enforcing", "Ignore"]),
    ],
)
def test_static_cert_overlays_match_register_with_the_same_ca_bundle(
    rendered: dict[str, list[dict[str, Any]]], workdir: Path, overlay: str, flags: list[str]
) -> None:
    ca = workdir / "components" / "static-certs" / "certs" / "ca.crt"
    found = configurations(rendered[overlay])
    assert found == dry_run("--ca-bundle", str(ca), *flags)
    bundles = {base64.b64decode(hook["clientConfig"]["caBundle"]) for _, hook in webhooks(found)}
    assert bundles == {ca.read_bytes()}


def test_the_static_certs_secret_holds_the_generated_files(
    rendered: dict[str, list[dict[str, Any]]], workdir: Path
) -> None:
    secret = one(rendered["static-certs"], "Secret")
    assert (secret["metadata"]["name"], secret["metadata"]["namespace"], secret["type"]) == (
        "admission-webhook-tls",
        NAMESPACE,
        "kubernetes.io/tls",
    )
    folder = workdir / "components" / "static-certs" / "certs"
    assert {key: base64.b64decode(value) for key, value in secret["data"].items()} == {
        name: (folder / name).read_bytes() for name in ("tls.crt", "tls.key", "ca.crt")
    }


def test_cert_manager_injects_the_ca_and_issues_the_secret_the_deployment_mounts(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["cert-manager"]
    for config_object in configurations(objects):
        assert config_object["metadata"]["annotations"] == {
            "cert-manager.io/inject-ca-from": "admission-webhook/admission-webhook-tls"
        }
        assert all("caBundle" not in hook["clientConfig"] for hook in config_object["webhooks"])
    serving = next(
        o for o in objects if o["kind"] == "Certificate" and o["metadata"]["name"] == "admission-webhook-tls"
    )
    assert serving["spec"]["secretName"] == "admission-webhook-tls"
    assert serving["spec"]["dnsNames"] == certs.service_dns_names("admission-webhook", namespace=NAMESPACE)
    assert serving["spec"]["usages"] == ["digital signature", "server auth"]
    assert serving["spec"]["issuerRef"] == {"kind": "Issuer", "name": "admission-webhook-ca"}
    assert configurations(objects) == [
        {**c, "metadata": {**c["metadata"], "annotations": config_object["metadata"]["annotations"]}}
        for c in dry_run("--ca-bundle", "")
    ]


def test_the_policies_configmap_is_exactly_the_repository_policies(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    configmap = one(rendered["base"], "ConfigMap")
    expected = {p.name: p.read_text() for p in sorted((REPO / "policies").glob("*.yaml"))}
    assert configmap["data"] == expected, (
        "deploy/base/policies differs from policies/: `cp policies/*.yaml deploy/base/policies/` and list "
        "new files under configMapGenerator in deploy/base/kustomization.yaml"
    )
    volumes = {
        v["name"]: v for v in one(rendered["base"], "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["policies"]["configMap"]["name"] == configmap["metadata"]["name"]
    assert configmap["metadata"]["name"].startswith("admission-webhook-policies-")


def test_the_deployment_runs_restricted_with_probes_on_the_health_paths(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    deployment = one(rendered["static-certs"], "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert spec["replicas"] == 3
    assert container["args"] == [
        "serve",
        "--host",
        "0.0.0.0",
        "--cert",
        "/certs/tls.crt",
        "--key",
        "/certs/tls.key",
        "--policies",
        "/policies",
        "--log-format",
        "json",
    ]
    assert container["ports"] == [{"name": "https", "containerPort": 8443, "protocol": "TCP"}]
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "https", "scheme": "HTTPS"}
    assert set(container["resources"]) == {"requests", "limits"}
    assert (
        set(container["resources"]["requests"]) == set(container["resources"]["limits"]) == {"cpu", "memory"}
    )
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["certs"]["secret"]["secretName"] == "admission-webhook-tls"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/certs"]["name"] == "certs" and mounts["/policies"]["name"] == "policies"
    labels = spec["template"]["metadata"]["labels"]
    pdb = one(rendered["static-certs"], "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"] == labels
    assert pdb["spec"]["maxUnavailable"] == 1


def test_service_network_policy_and_rbac_expose_and_grant_only_what_the_server_needs(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    objects = rendered["static-certs"]
    service = one(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}
    ]
    policy = one(objects, "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": 8443, "protocol": "TCP"}]}]
    assert one(objects, "ClusterRole")["rules"] == [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
    ]
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "admission-webhook", "namespace": NAMESPACE}
    ]
    account = one(objects, "ServiceAccount")
    assert (
        one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
        == account["metadata"]["name"]
    )
    namespaced = [
        o
        for o in objects
        if o["kind"]
        not in (
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "MutatingWebhookConfiguration",
            "ValidatingWebhookConfiguration",
        )
    ]
    assert {o["metadata"].get("namespace") for o in namespaced} == {NAMESPACE}
