"""Security-context rules: each rule allows a compliant pod and names container, field and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import conftest
from webhook import engine, review
from webhook.policy import files, model, registry, workloads
from webhook.validators import security_context as sc

REPO = Path(__file__).resolve().parents[1]

GOOD_CONTAINER: dict[str, Any] = {
    "name": "app",
    "image": "ghcr.io/acme/app:1.2",
    "securityContext": {"readOnlyRootFilesystem": True},
    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
}
GOOD_SPEC: dict[str, Any] = {
    "serviceAccountName": "web",
    "automountServiceAccountToken": False,
    "containers": [GOOD_CONTAINER],
}
SETTINGS = sc.SecurityContextSettings.model_validate({
    "allowedRegistries": ["ghcr.io/acme", "registry.example.com", "*.gcr.io", "quay.io/acme/*"],
    "runtimeClassName": {"allowed": ["gvisor", "kata-*"]},
})
POLICIES = registry.REGISTRY.in_group("security-context")
REGISTRIES = '"ghcr.io/acme", "registry.example.com", "*.gcr.io", "quay.io/acme/*"'


def pod(spec: dict[str, Any], *, name: str = "web") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "team"}, "spec": spec}


def with_container(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(GOOD_SPEC)
    spec["containers"][0].update(changes)
    return spec


def with_spec(**changes: Any) -> dict[str, Any]:
    spec = copy.deepcopy(GOOD_SPEC)
    spec.update(changes)
    return spec


def run(
    fn: registry.CheckFn,
    obj: dict[str, Any],
    *,
    settings: sc.SecurityContextSettings = SETTINGS,
    **ctx_fields: Any,
) -> list[tuple[str, str, str]]:
    kind = obj["kind"]
    target = workloads.pod_target(obj, kind)
    assert target is not None
    ctx_fields.setdefault("namespace", "team")
    ctx_fields.setdefault("username", "alice")
    ctx = model.ReviewContext(kind=kind, **ctx_fields)
    return [(v.reason, v.detail, v.path) for v in fn(target, ctx, settings)]


def test_every_rule_is_registered_as_its_own_pod_policy() -> None:
    assert [p.id for p in POLICIES] == [
        "security-context.readOnlyRootFilesystem",
        "security-context.allowedRegistries",
        "security-context.imageTag",
        "security-context.resources",
        "security-context.defaultServiceAccount",
        "security-context.automountServiceAccountToken",
        "security-context.shareProcessNamespace",
        "security-context.runtimeClassName",
        "security-context.privileged",
    ]
    assert all(p.pod_spec and p.kinds == workloads.POD_KINDS for p in POLICIES)


def test_a_compliant_pod_passes_every_rule() -> None:
    obj = pod(with_spec(runtimeClassName="gvisor"))
    for policy in POLICIES:
        assert run(policy.fn, obj) == [], policy.id


CASES: list[tuple[str, registry.CheckFn, dict[str, Any], list[tuple[str, str, str]]]] = [
    ("writable root", sc.read_only_root_filesystem, with_container(securityContext={}), [(
        "readOnlyRootFilesystem != true",
        'Pod "web" container "app" must set spec.containers[0].securityContext.readOnlyRootFilesystem=true',
        "spec.containers[0].securityContext.readOnlyRootFilesystem",
    )]),
    ("root fs in an init container, securityContext a string", sc.read_only_root_filesystem,
     with_spec(initContainers=[{"name": "init", "image": "ghcr.io/acme/init:1", "securityContext": "x"}]), [(
         "readOnlyRootFilesystem != true",
         'Pod "web" container "init" must set '
         "spec.initContainers[0].securityContext.readOnlyRootFilesystem=true",
         "spec.initContainers[0].securityContext.readOnlyRootFilesystem",
     )]),
    ("docker hub short name", sc.allowed_registries, with_container(image="nginx:1.27"), [(
        "image registry not allowed",
        'Pod "web" container "app" uses image "nginx:1.27" (docker.io/library/nginx) in '
        "spec.containers[0].image; allowed registries: " + REGISTRIES,
        "spec.containers[0].image",
    )]),
    ("registry prefix is a path prefix, not a string prefix", sc.allowed_registries,
     with_container(image="ghcr.io/acme-evil/app:1"), [(
         "image registry not allowed",
         'Pod "web" container "app" uses image "ghcr.io/acme-evil/app:1" (ghcr.io/acme-evil/app) in '
         "spec.containers[0].image; allowed registries: " + REGISTRIES,
         "spec.containers[0].image",
     )]),
    ("registry with a port", sc.allowed_registries,
     with_container(image="registry.example.com:5000/app:1"), [(
        "image registry not allowed",
        'Pod "web" container "app" uses image "registry.example.com:5000/app:1" '
        "(registry.example.com:5000/app) in spec.containers[0].image; allowed registries: " + REGISTRIES,
        "spec.containers[0].image",
    )]),
    ("allowed registry host", sc.allowed_registries, with_container(image="registry.example.com/x/y:2"), []),
    ("registry host glob", sc.allowed_registries, with_container(image="eu.gcr.io/proj/app:2"), []),
    ("repository glob", sc.allowed_registries, with_container(image="quay.io/acme/app:2"), []),
    ("repository glob is anchored", sc.allowed_registries,
     with_container(image="quay.io/other/acme/app:2"), [(
        "image registry not allowed",
        'Pod "web" container "app" uses image "quay.io/other/acme/app:2" (quay.io/other/acme/app) in '
        "spec.containers[0].image; allowed registries: " + REGISTRIES,
        "spec.containers[0].image",
    )]),
    ("latest tag", sc.image_tag, with_container(image="ghcr.io/acme/app:latest"), [(
        "image tag :latest",
        'Pod "web" container "app" uses image "ghcr.io/acme/app:latest" in spec.containers[0].image; tags '
        '"latest" are not allowed, use a specific tag or a digest',
        "spec.containers[0].image",
    )]),
    ("untagged", sc.image_tag, with_container(image="localhost:5000/app"), [(
        "image not pinned",
        'Pod "web" container "app" uses image "localhost:5000/app" without a tag (which means :latest) in '
        "spec.containers[0].image; use a specific tag or a digest",
        "spec.containers[0].image",
    )]),
    ("digest pins even latest", sc.image_tag,
     with_container(image="ghcr.io/acme/app:latest@sha256:" + "a" * 64), []),
    ("untagged digest", sc.image_tag, with_container(image="ghcr.io/acme/app@sha256:" + "a" * 64), []),
    ("missing request and limit", sc.resources,
     with_container(resources={"requests": {"memory": "64Mi"}, "limits": None}), [(
         "resources not set",
         'Pod "web" container "app" must set resources.requests.cpu, resources.limits.memory in '
         "spec.containers[0]",
         "spec.containers[0].resources",
     )]),
    ("ephemeral containers cannot have resources", sc.resources,
     with_spec(ephemeralContainers=[{"name": "debug", "image": "ghcr.io/acme/debug:1"}]), []),
    ("empty service account means default", sc.default_service_account, with_spec(serviceAccountName=""), [(
        "forbidden service account",
        'Pod "web": spec.serviceAccountName is empty (which means "default"); use a dedicated service '
        'account (not "default")',
        "spec.serviceAccountName",
    )]),
    ("explicit default", sc.default_service_account, with_spec(serviceAccountName="default"), [(
        "forbidden service account",
        'Pod "web": spec.serviceAccountName is "default"; use a dedicated service account (not "default")',
        "spec.serviceAccountName",
    )]),
    ("deprecated serviceAccount alias counts", sc.default_service_account,
     {k: v for k, v in with_spec(serviceAccount="web").items() if k != "serviceAccountName"}, []),
    ("automount unset", sc.automount_service_account_token,
     {k: v for k, v in GOOD_SPEC.items() if k != "automountServiceAccountToken"}, [(
         "automountServiceAccountToken != false",
         'Pod "web" must set spec.automountServiceAccountToken=false: it leaves it unset (the token is '
         'mounted by default) and service account "web" may not mount an API token',
         "spec.automountServiceAccountToken",
     )]),
    ("automount true", sc.automount_service_account_token, with_spec(automountServiceAccountToken=True), [(
        "automountServiceAccountToken != false",
        'Pod "web" must set spec.automountServiceAccountToken=false: it sets it to true and service account '
        '"web" may not mount an API token',
        "spec.automountServiceAccountToken",
    )]),
    ("shared process namespace", sc.share_process_namespace, with_spec(shareProcessNamespace=True), [(
        "shareProcessNamespace == true",
        'Pod "web" must not set spec.shareProcessNamespace=true: its containers would see and signal each '
        "other's processes and read their environment and filesystems through /proc",
        "spec.shareProcessNamespace",
    )]),
    ("shareProcessNamespace false", sc.share_process_namespace, with_spec(shareProcessNamespace=False), []),
    ("runtime class not allowed", sc.runtime_class_name, with_spec(runtimeClassName="runc"), [(
        "runtimeClassName not allowed",
        'Pod "web" uses runtime class "runc" in spec.runtimeClassName; allowed: "gvisor", "kata-*"',
        "spec.runtimeClassName",
    )]),
    ("runtime class glob", sc.runtime_class_name, with_spec(runtimeClassName="kata-qemu"), []),
    ("privileged container", sc.privileged,
     with_container(securityContext={"privileged": True, "readOnlyRootFilesystem": True}), [(
         "privileged",
         'Pod "web" container "app" sets spec.containers[0].securityContext.privileged=true; requester '
         '"alice" may not create privileged pods',
         "spec.containers[0].securityContext.privileged",
     )]),
    ("host namespaces", sc.privileged, with_spec(hostPID=True, hostNetwork=True), [
        ("host namespaces",
         'Pod "web" sets spec.hostNetwork=true; requester "alice" may not create privileged pods',
         "spec.hostNetwork"),
        ("host namespaces",
         'Pod "web" sets spec.hostPID=true; requester "alice" may not create privileged pods',
         "spec.hostPID"),
    ]),
]


@pytest.mark.parametrize(("name", "fn", "spec", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rule(
    name: str, fn: registry.CheckFn, spec: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    assert run(fn, pod(spec)) == expected


def test_workload_templates_are_named_by_the_workload_with_template_paths() -> None:
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
        "spec": {"template": {"spec": with_container(image="nginx")}},
    }
    assert run(sc.image_tag, deployment) == [(
        "image not pinned",
        'Deployment "api" container "app" uses image "nginx" without a tag (which means :latest) in '
        "spec.template.spec.containers[0].image; use a specific tag or a digest",
        "spec.template.spec.containers[0].image",
    )]


def test_findings_are_sorted_by_path() -> None:
    spec = with_spec(
        initContainers=[{"name": "b", "image": "x"}],
        containers=[{"name": "c", "image": "y"}, {"name": "a", "image": "z"}],
    )
    paths = [path for _, _, path in run(sc.read_only_root_filesystem, pod(spec))]
    assert paths == sorted(paths) and len(paths) == 3


@pytest.mark.parametrize(
    ("image", "normalized"),
    [
        ("nginx", ("docker.io/library/nginx", None, None)),
        ("nginx:1.27", ("docker.io/library/nginx", "1.27", None)),
        ("bitnami/redis:7", ("docker.io/bitnami/redis", "7", None)),
        ("index.docker.io/nginx", ("docker.io/library/nginx", None, None)),
        ("docker.io/nginx", ("docker.io/library/nginx", None, None)),
        ("localhost/app:1", ("localhost/app", "1", None)),
        ("localhost:5000/app", ("localhost:5000/app", None, None)),
        ("Registry/app", ("Registry/app", None, None)),  # upper case: a host, as distribution/reference
        ("quay.io/a/b/c:v1@sha256:ff", ("quay.io/a/b/c", "v1", "sha256:ff")),
    ],
)
def test_image_names_follow_docker_normalisation(
    image: str, normalized: tuple[str, str | None, str | None]
) -> None:
    assert sc.normalize_image(image) == normalized


def test_rule_settings_change_what_passes() -> None:
    settings = sc.SecurityContextSettings.model_validate({
        "readOnlyRootFilesystem": {"exemptContainers": ["istio-*"]},
        "imageTag": {"forbiddenTags": ["latest", "main"], "allowUntagged": True},
        "resources": {"requests": ["memory"], "limits": ["memory", "cpu"]},
        "defaultServiceAccount": {"forbiddenNames": ["default", "builder"]},
        "automountServiceAccountToken": {"allowedServiceAccounts": ["operator-*"]},
        "runtimeClassName": {"required": True},
    })
    sidecar = {"name": "istio-proxy", "image": "istio/proxyv2:1.22"}
    assert run(sc.read_only_root_filesystem, pod(with_spec(containers=[GOOD_CONTAINER, sidecar])),
               settings=settings) == []
    assert run(sc.image_tag, pod(with_container(image="ghcr.io/acme/app")), settings=settings) == []
    assert run(sc.image_tag, pod(with_container(image="ghcr.io/acme/app:main")), settings=settings)[0][0] == (
        "image tag :main")
    assert run(sc.resources, pod(GOOD_SPEC), settings=settings) == [(
        "resources not set",
        'Pod "web" container "app" must set resources.limits.cpu in spec.containers[0]',
        "spec.containers[0].resources",
    )]
    builder = pod(with_spec(serviceAccountName="builder"))
    assert run(sc.default_service_account, builder, settings=settings)[0][1] == (
        'Pod "web": spec.serviceAccountName is "builder"; use a dedicated service account (not "default", '
        '"builder")')
    assert run(sc.automount_service_account_token,
               pod(with_spec(serviceAccountName="operator-x", automountServiceAccountToken=True)),
               settings=settings) == []
    assert run(sc.runtime_class_name, pod(GOOD_SPEC), settings=settings) == [(
        "runtimeClassName not set",
        'Pod "web" must set spec.runtimeClassName; any runtime class is allowed',
        "spec.runtimeClassName",
    )]


PRIVILEGED = sc.SecurityContextSettings.model_validate({
    "privileged": {
        "allowedUsers": ["admin@example.com"],
        "allowedGroups": ["platform"],
        "allowedServiceAccounts": ["ci/deploy-*"],
        "namespaces": ["monitoring", "infra-*"],
    }
})
PRIVILEGED_POD = pod(with_spec(hostNetwork=True))


@pytest.mark.parametrize(
    ("username", "groups", "namespace", "kind", "expected_why"),
    [
        ("admin@example.com", (), "monitoring", "Pod", None),
        ("bob", ("platform",), "infra-logs", "Pod", None),
        ("system:serviceaccount:ci:deploy-prod", (), "monitoring", "Pod", None),
        ("bob", ("dev",), "monitoring", "Pod", 'requester "bob" may not create privileged pods'),
        ("system:serviceaccount:ci:other", (), "monitoring", "Pod",
         'requester "system:serviceaccount:ci:other" may not create privileged pods'),
        ("admin@example.com", (), "team", "Pod",
         'requester "admin@example.com" may create privileged pods only in namespaces "monitoring", '
         '"infra-*", not in "team"'),
        # A kube-system service account's bare Pod (no controller owner) is judged like anyone's.
        ("system:serviceaccount:kube-system:replicaset-controller", (), "team", "Pod",
         'requester "system:serviceaccount:kube-system:replicaset-controller" may not create privileged '
         "pods"),
        # ... and so is a Deployment it writes (nothing owns it: a person wrote its template).
        ("system:serviceaccount:kube-system:replicaset-controller", (), "team", "Deployment",
         'requester "system:serviceaccount:kube-system:replicaset-controller" may not create privileged '
         "pods"),
    ],
)
def test_privileged_pods_depend_on_who_asks_and_where(
    username: str, groups: tuple[str, ...], namespace: str, kind: str, expected_why: str | None
) -> None:
    obj = PRIVILEGED_POD if kind == "Pod" else {
        "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"template": {"spec": PRIVILEGED_POD["spec"]}}}
    found = run(sc.privileged, obj, settings=PRIVILEGED, username=username, user_groups=groups,
                namespace=namespace)
    if expected_why is None:
        assert found == []
    else:
        field = "spec.hostNetwork" if kind == "Pod" else "spec.template.spec.hostNetwork"
        assert found == [("host namespaces", f'{kind} "web" sets {field}=true; {expected_why}', field)]


def owned(kind: str, *, owner_kind: str, controller: Any = True) -> dict[str, Any]:
    """A privileged ``kind`` object with a controller ownerReference, as the controllers create them."""
    holder = {"spec": copy.deepcopy(PRIVILEGED_POD["spec"])}
    if kind != "Pod":
        holder = {"spec": {"template": holder} if kind != "CronJob" else {"jobTemplate": {"spec": {
            "template": holder}}}}
    reference = {"apiVersion": "apps/v1", "kind": owner_kind, "name": "web", "uid": "1234"}
    if controller is not None:
        reference["controller"] = controller
    return {"kind": kind, "metadata": {"name": "web", "namespace": "team", "ownerReferences": [reference]},
            **holder}


@pytest.mark.parametrize(
    ("obj", "username"),
    [
        # The deployment-controller stamps ReplicaSets out of a Deployment judged when it was written,
        (owned("ReplicaSet", owner_kind="Deployment"), "system:serviceaccount:kube-system:deployment-controller"),
        # the cronjob-controller Jobs out of a CronJob, the job-controller Pods out of a Job,
        (owned("Job", owner_kind="CronJob"), "system:serviceaccount:kube-system:cronjob-controller"),
        (owned("Pod", owner_kind="Job"), "system:serviceaccount:kube-system:job-controller"),
        (owned("Pod", owner_kind="ReplicaSet"), "system:serviceaccount:kube-system:replicaset-controller"),
        # and without --use-service-account-credentials they all run as one user.
        (owned("ReplicaSet", owner_kind="Deployment"), "system:kube-controller-manager"),
        (owned("Pod", owner_kind="StatefulSet"), "system:kube-controller-manager"),
    ],
)
def test_objects_controllers_create_from_judged_templates_are_trusted(obj: dict[str, Any], username: str) -> None:
    assert run(sc.privileged, obj, settings=PRIVILEGED, username=username) == []


def test_controllers_are_trusted_only_for_objects_they_control() -> None:
    field = "spec.template.spec.hostNetwork"

    def why(username: str, obj: dict[str, Any]) -> list[tuple[str, str, str]]:
        return run(sc.privileged, obj, settings=PRIVILEGED, username=username)

    def denied(username: str) -> list[tuple[str, str, str]]:
        return [("host namespaces", f'ReplicaSet "web" sets {field}=true; requester "{username}" may not create '
                 "privileged pods", field)]

    controller = "system:serviceaccount:kube-system:deployment-controller"
    # An owner that is not the controller (controller: false or unset) is not enough.
    for flag in (False, None, "true"):
        assert why(controller, owned("ReplicaSet", owner_kind="Deployment", controller=flag)) == denied(controller)
    # Nor is a controller owner when someone else makes the request.
    assert why("alice", owned("ReplicaSet", owner_kind="Deployment")) == denied("alice")
    assert why("system:serviceaccount:team:deployment-controller",
               owned("ReplicaSet", owner_kind="Deployment")) == denied("system:serviceaccount:team:deployment-controller")


def test_trusted_controllers_are_service_account_or_username_globs() -> None:
    settings = sc.SecurityContextSettings.model_validate({"privileged": {
        "trustedControllers": ["operators/rollout-*", "system:serviceaccount:infra:*", "controller-manager*"]}})
    replica_set = owned("ReplicaSet", owner_kind="Rollout")
    for username in ("system:serviceaccount:operators:rollout-controller",  # namespace/name glob
                     "system:serviceaccount:infra:anything",  # username glob
                     "controller-manager-2"):  # username glob
        assert run(sc.privileged, replica_set, settings=settings, username=username) == [], username
    # The defaults are no longer trusted, and a "/" entry never matches a plain username.
    for username in ("system:serviceaccount:kube-system:deployment-controller", "system:kube-controller-manager",
                     "operators/rollout-controller"):
        assert [r for r, _, _ in run(sc.privileged, replica_set, settings=settings, username=username)] == [
            "host namespaces"], username


def test_default_trusted_controllers_are_kube_system_and_the_controller_manager() -> None:
    assert sc.SecurityContextSettings().privileged.trustedControllers == (
        "kube-system/*", "system:kube-controller-manager")


def test_an_update_that_keeps_the_pod_spec_is_not_rejudged() -> None:
    old = pod(with_spec(hostNetwork=True))
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"touched": "yes"}
    assert run(sc.privileged, new, operation="UPDATE", old_object=old) == []
    new["spec"]["containers"][0]["image"] = "ghcr.io/acme/app:1.3"
    assert len(run(sc.privileged, new, operation="UPDATE", old_object=old)) == 1


MALFORMED = [
    {"containers": None},
    {"containers": "nope"},
    {"containers": [None, 5, "x", {"name": 3, "image": 7, "securityContext": [], "resources": "big"}]},
    {"containers": [{"resources": {"requests": "x", "limits": []}}], "serviceAccountName": 5,
     "runtimeClassName": ["a"], "hostNetwork": "yes", "automountServiceAccountToken": "false"},
]


@pytest.mark.parametrize("spec", MALFORMED)
def test_malformed_pods_never_crash_any_rule(spec: dict[str, Any]) -> None:
    obj = {"kind": "Pod", "metadata": "not-a-dict", "spec": spec}
    for policy in POLICIES:
        run(policy.fn, obj, settings=PRIVILEGED)


def test_default_policy_file_validates_and_names_real_policies() -> None:
    document = yaml.safe_load((REPO / "policies" / "20-security-context.yaml").read_text())
    section = {k: v for k, v in document.items() if k not in ("apiVersion", "kind")}
    assert list(section) == ["securityContext"]
    settings = sc.SecurityContextSettings.model_validate(section["securityContext"])
    # Its values (warn, privileged enforced, trusted controllers, excluded namespaces) are choices users
    # change: policies/tests/security-context-test.yaml pins them.
    assert set(settings.policies) <= set(registry.REGISTRY.policies)


# What the end-to-end test relies on, so it does not move when policies/20-security-context.yaml is edited.
POLICY = """apiVersion: admission.dev/v1alpha1
kind: PolicyConfig
securityContext:
  mode: warn
  scope: {excludeNamespaces: [kube-system]}
  policies:
    security-context.privileged: {mode: enforce}
  privileged:
    trustedControllers: ["kube-system/*"]
"""


def test_end_to_end_with_a_policy_file(tmp_path: Path) -> None:
    (tmp_path / "security-context.yaml").write_text(POLICY)
    policy_set = engine.PolicySet(files.load([tmp_path / "security-context.yaml"]))
    privileged = conftest.pod(containers=[{"name": "app", "image": "nginx:latest",
                                           "securityContext": {"privileged": True}}])
    parsed = review.parse(conftest.admission_review(privileged, namespace="team"))
    outcome = engine.evaluate(policy_set, parsed.object, parsed.context, chain="validating")
    assert not outcome.allowed
    assert outcome.message == (
        'security-context.privileged: privileged (Pod "web" container "app" sets '
        'spec.containers[0].securityContext.privileged=true; requester "alice" may not create privileged '
        "pods)"
    )
    # Without the privileged container, the warn-mode rules speak as one warning.
    plain = conftest.pod(containers=[{"name": "app", "image": "nginx:latest"}])
    parsed = review.parse(conftest.admission_review(plain, namespace="team"))
    outcome = engine.evaluate(policy_set, parsed.object, parsed.context, chain="validating")
    assert outcome.allowed and len(outcome.warnings) == 1
    assert outcome.warnings[0].startswith(
        'security-context.readOnlyRootFilesystem: readOnlyRootFilesystem != true (Pod "web" container "app" '
        "must set spec.containers[0].securityContext.readOnlyRootFilesystem=true); "
        'security-context.imageTag: image tag :latest (Pod "web" container "app" uses image "nginx:latest"'
    )
    # kube-system is out of scope.
    parsed = review.parse(conftest.admission_review(privileged, namespace="kube-system"))
    assert engine.evaluate(policy_set, parsed.object, parsed.context, chain="validating").allowed

    # The ReplicaSet the deployment-controller makes from an admitted Deployment is admitted too.
    replica_set = {"apiVersion": "apps/v1", **owned("ReplicaSet", owner_kind="Deployment")}
    parsed = review.parse(conftest.admission_review(
        replica_set, namespace="team", username="system:serviceaccount:kube-system:deployment-controller"))
    outcome = engine.evaluate(policy_set, parsed.object, parsed.context, chain="validating")
    assert outcome.allowed
    parsed = review.parse(conftest.admission_review(replica_set, namespace="team"))
    outcome = engine.evaluate(policy_set, parsed.object, parsed.context, chain="validating")
    assert not outcome.allowed and outcome.message == (
        'security-context.privileged: host namespaces (ReplicaSet "web" sets spec.template.spec.hostNetwork=true; '
        'requester "alice" may not create privileged pods)'
    )
