"""Building the webhook configurations, ``register --dry-run``, and create/update/delete via a fake API."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from webhook import cli, errors, registration
from webhook.policy import registry, settings

SERVICE = registration.Target(service=("admission-webhook", "admission-webhook"))
CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
FINAL_GROUPS = {
    "MutatingWebhookConfiguration": ["sidecars", "defaults", "downward-api"],
    "ValidatingWebhookConfiguration": ["pod-security", "security-context", "rbac", "storage"],
}


def noop(target: Any, ctx: Any, params: Any) -> Any:
    return []


@pytest.fixture
def catalog() -> registry.Registry:
    """A small catalogue: a pod check group, an RBAC group, two mutating groups, an empty group."""
    r = registry.Registry()
    registry.group("pods", key="pods", chain="validating", settings_model=settings.GroupSettings, registry=r)
    registry.group(
        "roles", key="roles", chain="validating", settings_model=settings.GroupSettings, order=5, registry=r
    )
    registry.group(
        "empty", key="empty", chain="validating", settings_model=settings.GroupSettings, registry=r
    )
    registry.group(
        "late",
        key="late",
        chain="mutating",
        settings_model=settings.MutatingGroupSettings,
        order=50,
        registry=r,
    )
    registry.group(
        "early",
        key="early",
        chain="mutating",
        settings_model=settings.MutatingGroupSettings,
        order=10,
        registry=r,
    )
    registry.check("pods.one", group="pods", pod_spec=True, registry=r)(noop)
    registry.check("roles.wild", group="roles", kinds=["Role", "ClusterRole"], registry=r)(noop)
    registry.check(
        "roles.bind", group="roles", kinds=["ClusterRoleBinding"], operations=["CREATE", "DELETE"], registry=r
    )(noop)
    registry.mutation("late.env", group="late", kinds=["Pod"], operations=["CREATE"], registry=r)(noop)
    registry.mutation(
        "early.pvc", group="early", kinds=["PersistentVolumeClaim", "StorageClass"], registry=r
    )(noop)
    return r


SELECTOR = {
    "matchExpressions": [
        {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": ["admission-webhook", "kube-node-lease", "kube-system"],
        }
    ]
}


def test_each_group_becomes_one_webhook_with_its_own_path_rules_and_failure_policy(
    catalog: registry.Registry,
) -> None:
    mutating, validating = registration.configurations(catalog, target=SERVICE, ca_bundle=CA)
    assert [w["name"] for w in mutating["webhooks"]] == ["early.admission.dev", "late.admission.dev"]
    assert [w["name"] for w in validating["webhooks"]] == ["roles.admission.dev", "pods.admission.dev"]
    ca = base64.b64encode(CA).decode()
    assert validating["webhooks"][0] == {
        "name": "roles.admission.dev",
        "admissionReviewVersions": ["v1"],
        "clientConfig": {
            "service": {
                "namespace": "admission-webhook",
                "name": "admission-webhook",
                "path": "/validate/roles",
                "port": 443,
            },
            "caBundle": ca,
        },
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "namespaceSelector": SELECTOR,
        "objectSelector": {},
        # Each resource gets exactly the operations its policies need: DELETE only for bindings.
        "rules": [
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "DELETE"],
                "resources": ["clusterrolebindings"],
                "scope": "*",
            },
            {
                "apiGroups": ["rbac.authorization.k8s.io"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["clusterroles", "roles"],
                "scope": "*",
            },
        ],
        "matchConditions": [registration.CONTROL_PLANE_CONDITION],
        "sideEffects": "None",
        "timeoutSeconds": 5,
    }
    assert mutating["webhooks"][0] == {
        "name": "early.admission.dev",
        "admissionReviewVersions": ["v1"],
        "clientConfig": {
            "service": {
                "namespace": "admission-webhook",
                "name": "admission-webhook",
                "path": "/mutate/early",
                "port": 443,
            },
            "caBundle": ca,
        },
        "failurePolicy": "Ignore",
        "matchPolicy": "Equivalent",
        "namespaceSelector": SELECTOR,
        "objectSelector": {},
        "rules": [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["persistentvolumeclaims"],
                "scope": "*",
            },
            {
                "apiGroups": ["storage.k8s.io"],
                "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["storageclasses"],
                "scope": "*",
            },
        ],
        "matchConditions": [registration.CONTROL_PLANE_CONDITION],
        "sideEffects": "None",
        "timeoutSeconds": 3,
        "reinvocationPolicy": "IfNeeded",
    }
    assert (
        mutating["metadata"]
        == validating["metadata"]
        == {
            "name": "admission-webhook",
            "labels": {
                "app.kubernetes.io/name": "admission-webhook",
                "app.kubernetes.io/part-of": "admission-webhook",
            },
        }
    )


def test_pod_checks_cover_every_pod_carrying_kind_and_the_ephemeral_containers_subresource(
    catalog: registry.Registry,
) -> None:
    _, validating = registration.configurations(catalog, target=SERVICE, ca_bundle=None)
    pods = validating["webhooks"][1]
    assert pods["rules"] == [
        {
            "apiGroups": [""],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["pods", "pods/ephemeralcontainers", "podtemplates", "replicationcontrollers"],
            "scope": "*",
        },
        {
            "apiGroups": ["apps"],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["daemonsets", "deployments", "replicasets", "statefulsets"],
            "scope": "*",
        },
        {
            "apiGroups": ["batch"],
            "apiVersions": ["v1"],
            "operations": ["CREATE", "UPDATE"],
            "resources": ["cronjobs", "jobs"],
            "scope": "*",
        },
    ]
    assert "caBundle" not in pods["clientConfig"]
    # A mutating Pod group does not ask for the subresource: mutations apply on CREATE only.
    mutating, _ = registration.configurations(catalog, target=SERVICE, ca_bundle=None)
    assert mutating["webhooks"][1]["rules"][0]["resources"] == ["pods"]


def test_options_change_failure_policies_timeouts_advisory_groups_and_the_excluded_namespace(
    catalog: registry.Registry,
) -> None:
    options = registration.Options(
        namespace="hooks",
        failure_policy_enforcing="Ignore",
        failure_policy_advisory="Fail",
        timeout_enforcing=10,
        timeout_advisory=30,
        advisory_groups=frozenset({"pods"}),
    )
    mutating, validating = registration.configurations(
        catalog, target=SERVICE, ca_bundle=None, options=options
    )
    summary = [
        (w["name"], w["failurePolicy"], w["timeoutSeconds"])
        for w in mutating["webhooks"] + validating["webhooks"]
    ]
    assert summary == [
        ("early.admission.dev", "Fail", 30),
        ("late.admission.dev", "Fail", 30),
        ("roles.admission.dev", "Ignore", 10),
        ("pods.admission.dev", "Fail", 30),
    ]
    assert validating["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == [
        "hooks",
        "kube-node-lease",
        "kube-system",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timeout_enforcing": 31}, "timeoutSeconds must be between 1 and 30, got 31"),
        ({"timeout_advisory": 0}, "timeoutSeconds must be between 1 and 30, got 0"),
    ],
)
def test_timeouts_beyond_what_the_api_server_accepts_are_refused(
    kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(errors.WebhookError, match=message):
        registration.Options(**kwargs)  # type: ignore[arg-type]


def test_an_unknown_advisory_group_is_refused(catalog: registry.Registry) -> None:
    with pytest.raises(errors.WebhookError, match="--advisory-group: no validating group named early, nope"):
        registration.configurations(
            catalog,
            target=SERVICE,
            ca_bundle=None,
            options=registration.Options(advisory_groups=frozenset({"nope", "early"})),
        )


def test_a_kind_without_a_resource_mapping_names_the_policy(catalog: registry.Registry) -> None:
    registry.check("roles.odd", group="roles", kinds=["Widget"], registry=catalog)(noop)
    with pytest.raises(errors.WebhookError, match="policy 'roles.odd' applies to kind 'Widget'"):
        registration.configurations(catalog, target=SERVICE, ca_bundle=None)


def test_a_url_target_puts_the_group_path_after_the_base_url(catalog: registry.Registry) -> None:
    target = registration.Target(url="https://192.168.49.1:8443/")
    mutating, validating = registration.configurations(catalog, target=target, ca_bundle=CA)
    assert validating["webhooks"][0]["clientConfig"] == {
        "url": "https://192.168.49.1:8443/validate/roles",
        "caBundle": base64.b64encode(CA).decode(),
    }
    assert mutating["webhooks"][1]["clientConfig"]["url"] == "https://192.168.49.1:8443/mutate/late"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "give exactly one of --service ns/name or --url https://..."),
        ({"url": "http://example.com"}, "must be https://host"),
        ({"url": "https://example.com/?x=1"}, "no user info, query or fragment allowed"),
        ({"url": "https://u:p@example.com"}, "no user info, query or fragment allowed"),
    ],
)
def test_targets_the_api_server_would_refuse_are_refused_here(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(errors.WebhookError, match=message.replace("?", r"\?").replace(".", r"\.")):
        registration.Target(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["admission-webhook", "/name", "ns/", "a/b/c"])
def test_a_service_must_be_namespace_slash_name(value: str) -> None:
    with pytest.raises(errors.WebhookError, match=f"--service '{value}': expected namespace/name"):
        registration.parse_service(value)


def test_dry_run_prints_both_configurations_for_every_built_in_group(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "ca.crt").write_bytes(CA)
    assert cli.main(["register", "--dry-run", "--ca-bundle", str(tmp_path / "ca.crt")]) == 0
    documents = list(yaml.safe_load_all(capsys.readouterr().out))
    assert {d["kind"]: [w["name"] for w in d["webhooks"]] for d in documents} == {
        kind: [f"{group}.admission.dev" for group in groups] for kind, groups in FINAL_GROUPS.items()
    }
    for document in documents:
        for hook in document["webhooks"]:
            group = hook["name"].removesuffix(".admission.dev")
            prefix = "/mutate" if document["kind"].startswith("Mutating") else "/validate"
            assert hook["clientConfig"]["service"]["path"] == f"{prefix}/{group}"
            assert hook["clientConfig"]["caBundle"] == base64.b64encode(CA).decode()
            assert hook["sideEffects"] == "None" and hook["admissionReviewVersions"] == ["v1"]
            assert hook["failurePolicy"] == ("Ignore" if prefix == "/mutate" else "Fail")


def test_dry_run_without_a_ca_bundle_file_says_how_to_make_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "ca.crt"
    assert cli.main(["register", "--dry-run", "--ca-bundle", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"error: {missing}: cannot read the CA bundle (No such file or directory); create it with "
        "`python -m webhook certs ...` or pass --ca-bundle\n"
    )


def test_dry_run_flags_reach_the_configurations(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "register",
        "--dry-run",
        "--ca-bundle",
        "",
        "--url",
        "https://10.0.0.1:8443",
        "--failure-policy-enforcing",
        "Ignore",
        "--timeout-seconds",
        "7",
        "--namespace",
        "hooks",
        "--advisory-group",
        "rbac",
    ]
    assert cli.main(argv) == 0
    hooks = [w for d in yaml.safe_load_all(capsys.readouterr().out) for w in d["webhooks"]]
    assert {(w["failurePolicy"], w["timeoutSeconds"]) for w in hooks} == {("Ignore", 7)}
    assert hooks[0]["clientConfig"] == {"url": "https://10.0.0.1:8443/mutate/sidecars"}
    assert all("hooks" in w["namespaceSelector"]["matchExpressions"][0]["values"] for w in hooks)


def test_admission_policies_get_the_cel_webhook_first_with_their_resources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "vap.yaml").write_text("""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: replicas}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments],
       resourceNames: [web]}
    - {apiGroups: [apps], apiVersions: [v1], operations: [UPDATE], resources: [deployments/scale]}
  validations: [{expression: "true"}]
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: labels}
spec:
  failurePolicy: Ignore
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
  validations: [{expression: "true"}]
""")
    assert cli.main(["register", "--dry-run", "--ca-bundle", "", "--policies", str(tmp_path)]) == 0
    _, validating = yaml.safe_load_all(capsys.readouterr().out)
    cel = validating["webhooks"][0]
    assert cel["name"] == "cel.admission.dev"
    assert cel["clientConfig"]["service"]["path"] == "/validate/cel"
    assert (cel["failurePolicy"], cel["timeoutSeconds"]) == ("Fail", 5)  # one policy fails closed
    assert cel["rules"] == [  # resourceNames are checked by the server; duplicates merged
        {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
         "resources": ["deployments"], "scope": "*"},
        {"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["UPDATE"],
         "resources": ["deployments/scale"], "scope": "*"},
    ]
    assert [w["name"] for w in validating["webhooks"][1:]] == [
        f"{g}.admission.dev" for g in ("pod-security", "security-context", "rbac", "storage")]


class FakeAdmissionApi:
    """Stands in for ``kubernetes.client.AdmissionregistrationV1Api``: a dict of stored objects."""

    def __init__(self, *, conflicts: int = 0) -> None:
        self.stored: dict[tuple[str, str], dict[str, Any]] = {}
        self.calls: list[str] = []
        self.conflicts = conflicts
        self.version = 0
        for suffix, kind in (
            ("mutating_webhook_configuration", "Mutating"),
            ("validating_webhook_configuration", "Validating"),
        ):
            setattr(self, f"read_{suffix}", lambda name, k=kind: self._read(k, name))
            setattr(self, f"create_{suffix}", lambda body, k=kind: self._create(k, body))
            setattr(self, f"replace_{suffix}", lambda name, body, k=kind: self._replace(k, name, body))
            setattr(self, f"delete_{suffix}", lambda name, k=kind: self._delete(k, name))

    def _read(self, kind: str, name: str) -> Any:
        self.calls.append(f"read {kind}")
        if (kind, name) not in self.stored:
            raise ApiException(status=404, reason="Not Found")
        version = self.stored[(kind, name)]["metadata"]["resourceVersion"]
        return type("Obj", (), {"metadata": type("Meta", (), {"resource_version": version})()})()

    def _create(self, kind: str, body: dict[str, Any]) -> None:
        self.calls.append(f"create {kind}")
        self.version += 1
        self.stored[(kind, body["metadata"]["name"])] = {
            **body,
            "metadata": {**body["metadata"], "resourceVersion": str(self.version)},
        }

    def _replace(self, kind: str, name: str, body: dict[str, Any]) -> None:
        self.calls.append(f"replace {kind}")
        if self.conflicts:
            self.conflicts -= 1
            raise ApiException(status=409, reason="Conflict")
        assert body["metadata"]["resourceVersion"] == self.stored[(kind, name)]["metadata"]["resourceVersion"]
        self.stored[(kind, name)] = body

    def _delete(self, kind: str, name: str) -> None:
        self.calls.append(f"delete {kind}")
        if self.stored.pop((kind, name), None) is None:
            raise ApiException(status=404, reason="Not Found")


def test_apply_creates_then_replaces_and_delete_tolerates_absence(catalog: registry.Registry) -> None:
    api = FakeAdmissionApi()
    configs = registration.configurations(catalog, target=SERVICE, ca_bundle=CA)
    assert registration.apply(configs, api=api) == [
        "MutatingWebhookConfiguration/admission-webhook created",
        "ValidatingWebhookConfiguration/admission-webhook created",
    ]
    assert registration.apply(configs, api=api) == [
        "MutatingWebhookConfiguration/admission-webhook updated",
        "ValidatingWebhookConfiguration/admission-webhook updated",
    ]
    assert api.stored[("Validating", "admission-webhook")]["webhooks"] == configs[1]["webhooks"]
    assert registration.delete(api=api) == [
        "MutatingWebhookConfiguration/admission-webhook deleted",
        "ValidatingWebhookConfiguration/admission-webhook deleted",
    ]
    assert registration.delete(api=api) == [
        "MutatingWebhookConfiguration/admission-webhook absent",
        "ValidatingWebhookConfiguration/admission-webhook absent",
    ]


def test_a_conflicting_write_is_retried_after_reading_again(catalog: registry.Registry) -> None:
    api = FakeAdmissionApi()
    configs = registration.configurations(catalog, target=SERVICE, ca_bundle=CA)[:1]
    registration.apply(configs, api=api)
    api.conflicts, api.calls = 1, []
    assert registration.apply(configs, api=api) == ["MutatingWebhookConfiguration/admission-webhook updated"]
    assert api.calls == ["read Mutating", "replace Mutating", "read Mutating", "replace Mutating"]


def test_an_api_error_other_than_not_found_is_reported_as_cluster_unavailable(
    catalog: registry.Registry,
) -> None:
    class Forbidden(FakeAdmissionApi):
        def _read(self, kind: str, name: str) -> Any:
            raise ApiException(status=403, reason="Forbidden")

    configs = registration.configurations(catalog, target=SERVICE, ca_bundle=CA)
    with pytest.raises(
        errors.ClusterUnavailable,
        match="could not read MutatingWebhookConfiguration/admission-webhook: HTTP 403 Forbidden",
    ):
        registration.apply(configs, api=Forbidden())


def test_register_excludes_the_namespace_of_the_service_it_targets(capsys: Any) -> None:
    from webhook import cli

    assert cli.main(["register", "--dry-run", "--ca-bundle", "", "--service", "webhooks/admission-webhook"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    for doc in docs:
        for hook in doc["webhooks"]:
            assert hook["namespaceSelector"]["matchExpressions"][0]["values"] == [
                "kube-node-lease", "kube-system", "webhooks"]


@pytest.mark.parametrize(
    ("user", "group", "resource", "called"),
    [
        ("system:apiserver", "rbac.authorization.k8s.io", "clusterroles", False),  # bootstrap roles
        ("system:serviceaccount:kube-system:clusterrole-aggregation-controller", "rbac.authorization.k8s.io",
         "clusterroles", False),
        ("system:serviceaccount:kube-system:persistent-volume-binder", "", "persistentvolumes", False),
        ("system:kube-controller-manager", "storage.k8s.io", "storageclasses", False),
        ("alice", "rbac.authorization.k8s.io", "clusterroles", True),  # users are always checked
        ("system:serviceaccount:kube-system:replicaset-controller", "", "pods", True),  # Pods never skipped
        ("system:serviceaccount:ci:deployer", "", "persistentvolumeclaims", True),
    ],
)
def test_control_plane_writes_to_rbac_and_storage_skip_the_webhook(
    user: str, group: str, resource: str, called: bool
) -> None:
    from webhook.emulator import conditions

    variables = {"request": {"userInfo": {"username": user}, "resource": {"group": group, "resource": resource}},
                 "object": None, "oldObject": None}
    assert conditions.evaluate_one(registration.CONTROL_PLANE_CONDITION["expression"], variables) is called
