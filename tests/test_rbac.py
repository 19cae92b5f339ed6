"""RBAC rules: every rule allows the harmless and names the role, the rule index and what is allowed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import conftest
from webhook import engine, review
from webhook.policy import files, model, registry
from webhook.validators import rbac

REPO = Path(__file__).resolve().parents[1]
SETTINGS = rbac.RbacSettings()
POLICIES = registry.REGISTRY.in_group("rbac")


def role(*rules: Any, kind: str = "ClusterRole", name: str = "ops", **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if kind == "Role":
        meta["namespace"] = "team"
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            "rules": list(rules),
            **extra}


def binding(*subjects: dict[str, Any], kind: str = "ClusterRoleBinding", role_name: str = "cluster-admin",
            role_kind: str = "ClusterRole") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "grant"}
    if kind == "RoleBinding":
        meta["namespace"] = "team"
    return {"kind": kind, "metadata": meta, "subjects": list(subjects),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role_name}}


def run(fn: registry.CheckFn, obj: dict[str, Any], *, settings: rbac.RbacSettings = SETTINGS,
        **ctx_fields: Any) -> list[tuple[str, str, str]]:
    ctx_fields.setdefault("username", "alice")
    ctx_fields.setdefault("namespace", (obj.get("metadata") or {}).get("namespace", ""))
    ctx = model.ReviewContext(kind=obj["kind"], **ctx_fields)
    return [(v.reason, v.detail, v.path) for v in fn(obj, ctx, settings)]


def test_each_rule_is_its_own_policy_for_the_rbac_kinds() -> None:
    assert {p.id: sorted(p.kinds) for p in POLICIES} == {
        "rbac.wildcards": ["ClusterRole", "Role"],
        "rbac.dangerousVerbs": ["ClusterRole", "Role"],
        "rbac.clusterSecretsRead": ["ClusterRole"],
        "rbac.execAttach": ["ClusterRole", "Role"],
        "rbac.highPrivilegeBindings": ["ClusterRoleBinding", "RoleBinding"],
    }


READ_PODS = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
ANYTHING = {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}

CASES: list[tuple[str, registry.CheckFn, dict[str, Any], list[tuple[str, str, str]]]] = [
    ("plain role", rbac.wildcards, role(READ_PODS), []),
    ("wildcards everywhere", rbac.wildcards, role(READ_PODS, ANYTHING), [
        ("wildcard in RBAC rule",
         'ClusterRole "ops" has "*" in rules[1].apiGroups, which also grants everything added later; list '
         'the apiGroups explicitly (requester "alice" may not create wildcards)', "rules[1].apiGroups"),
        ("wildcard in RBAC rule",
         'ClusterRole "ops" has "*" in rules[1].resources, which also grants everything added later; list '
         'the resources explicitly (requester "alice" may not create wildcards)', "rules[1].resources"),
        ("wildcard in RBAC rule",
         'ClusterRole "ops" has "*" in rules[1].verbs, which also grants everything added later; list the '
         'verbs explicitly (requester "alice" may not create wildcards)', "rules[1].verbs"),
    ]),
    ("subresource wildcard in a Role", rbac.wildcards,
     role({"apiGroups": [""], "resources": ["*/scale"], "verbs": ["update"]}, kind="Role"), [
         ("wildcard in RBAC rule",
          'Role "ops" in namespace "team" has "*/scale" in rules[0].resources, which also grants everything '
          'added later; list the resources explicitly (requester "alice" may not create wildcards)',
          "rules[0].resources"),
     ]),
    ("escalation verbs", rbac.dangerous_verbs,
     role({"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
           "verbs": ["bind", "escalate"]}),
     [("dangerous RBAC verb",
       'ClusterRole "ops" grants "bind", "escalate" on "clusterroles" in rules[0].verbs; "escalate", '
       '"bind", "impersonate" let the holder gain permissions it does not have', "rules[0].verbs")]),
    ("impersonate", rbac.dangerous_verbs,
     role({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}, kind="Role"),
     [("dangerous RBAC verb",
       'Role "ops" in namespace "team" grants "impersonate" on "serviceaccounts" in rules[0].verbs; '
       '"escalate", "bind", "impersonate" let the holder gain permissions it does not '
       "have", "rules[0].verbs")]),
    ("wildcard verb is rbac.wildcards' finding", rbac.dangerous_verbs,
     role({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]}), []),
    ("cluster-wide secrets", rbac.cluster_secrets_read,
     role(READ_PODS, {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["list", "get"]}),
     [("cluster-wide secrets read",
       'ClusterRole "ops" grants "get", "list" on secrets in rules[1]; bound by a ClusterRoleBinding it '
       "reads the secrets of every namespace (use a Role per namespace)", "rules[1]")]),
    ("secrets through wildcards", rbac.cluster_secrets_read,
     role({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}),
     [("cluster-wide secrets read",
       'ClusterRole "ops" grants "get", "list", "watch" on secrets in rules[0]; bound by a '
       "ClusterRoleBinding it reads the secrets of every namespace (use a Role per "
       "namespace)", "rules[0]")]),
    ("secrets of another API group are not core secrets", rbac.cluster_secrets_read,
     role({"apiGroups": ["example.com"], "resources": ["secrets"], "verbs": ["get"]}), []),
    ("writing secrets is not reading them", rbac.cluster_secrets_read,
     role({"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}), []),
    ("exec and attach", rbac.exec_attach,
     role({"apiGroups": [""], "resources": ["pods/exec", "pods/attach", "pods/log"],
           "verbs": ["create", "get"]},
          kind="Role"),
     [("exec/attach into pods",
       'Role "ops" in namespace "team" grants "create" on "pods/exec"; "create" on "pods/attach" in '
       "rules[0]; the holder runs commands inside containers with their service account and mounted "
       "secrets", "rules[0]")]),
    ("exec through a subresource wildcard", rbac.exec_attach,
     role({"apiGroups": [""], "resources": ["*/exec"], "verbs": ["*"]}),
     [("exec/attach into pods",
       'ClusterRole "ops" grants "create" on "pods/exec" in rules[0]; the holder runs commands inside '
       "containers with their service account and mounted secrets", "rules[0]")]),
    ("get on exec is not create", rbac.exec_attach,
     role({"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]}), []),
    ("cluster-admin to a service account", rbac.high_privilege_bindings,
     binding({"kind": "ServiceAccount", "name": "deployer", "namespace": "ci"}),
     [("high-privilege binding",
       'ClusterRoleBinding "grant" binds ClusterRole "cluster-admin" to ServiceAccount "ci/deployer" in '
       "subjects[0]; a ClusterRoleBinding grants it in every namespace (the subject's namespace does not "
       'limit its scope); roles "cluster-admin" may not be bound to service accounts or broad '
       "groups", "subjects[0]")]),
    ("cluster-admin to everyone in a namespace", rbac.high_privilege_bindings,
     binding({"kind": "User", "name": "bob"}, {"kind": "Group", "name": "system:authenticated"},
             {"kind": "ServiceAccount", "name": "app"}, kind="RoleBinding"),
     [("high-privilege binding",
       'RoleBinding "grant" in namespace "team" binds ClusterRole "cluster-admin" to Group '
       '"system:authenticated" in subjects[1]; roles "cluster-admin" may not be bound to service accounts '
       "or broad groups", "subjects[1]"),
      ("high-privilege binding",
       'RoleBinding "grant" in namespace "team" binds ClusterRole "cluster-admin" to ServiceAccount '
       '"team/app" in subjects[2]; roles "cluster-admin" may not be bound to service accounts or broad '
       "groups",
       "subjects[2]")]),
    ("anonymous user", rbac.high_privilege_bindings, binding({"kind": "User", "name": "system:anonymous"}),
     [("high-privilege binding",
       'ClusterRoleBinding "grant" binds ClusterRole "cluster-admin" to User "system:anonymous" in '
       "subjects[0]; a ClusterRoleBinding grants it in every namespace (the subject's namespace does not "
       'limit its scope); roles "cluster-admin" may not be bound to service accounts or broad '
       "groups", "subjects[0]")]),
    ("cluster-admin to a named user", rbac.high_privilege_bindings,
     binding({"kind": "User", "name": "bob"}), []),
    ("view to a service account", rbac.high_privilege_bindings,
     binding({"kind": "ServiceAccount", "name": "x", "namespace": "y"}, role_name="view"), []),
    ("a Role named cluster-admin is just a Role", rbac.high_privilege_bindings,
     binding({"kind": "ServiceAccount", "name": "x"}, kind="RoleBinding", role_kind="Role"), []),
]


@pytest.mark.parametrize(("name", "fn", "obj", "expected"), CASES, ids=[c[0] for c in CASES])
def test_rule(
    name: str, fn: registry.CheckFn, obj: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    assert run(fn, obj) == expected



@pytest.mark.parametrize(
    ("username", "groups", "allowed"),
    [
        ("platform-bot", (), True),
        ("carol", ("platform-admins",), True),
        ("system:serviceaccount:gitops:argocd-server", (), True),
        ("system:serviceaccount:gitops2:argocd-server", (), False),
        ("alice", ("dev",), False),
    ],
)
def test_wildcards_are_allowed_for_listed_requesters(
    username: str, groups: tuple[str, ...], allowed: bool
) -> None:
    settings = rbac.RbacSettings.model_validate({"wildcards": {
        "allowedUsers": ["platform-bot"], "allowedGroups": ["platform-*"],
        "allowedServiceAccounts": ["gitops/*"]}})
    found = run(rbac.wildcards, role(ANYTHING), settings=settings, username=username, user_groups=groups)
    assert (found == []) is allowed


def test_binding_settings() -> None:
    settings = rbac.RbacSettings.model_validate({"highPrivilegeBindings": {
        "roles": ["cluster-admin", "admin"], "allowedServiceAccounts": ["gitops/*"]}})
    assert run(rbac.high_privilege_bindings,
               binding({"kind": "ServiceAccount", "name": "argocd", "namespace": "gitops"}),
               settings=settings) == []
    broad = binding({"kind": "Group", "name": "system:serviceaccounts:team"}, kind="RoleBinding",
                    role_name="admin")
    found = run(rbac.high_privilege_bindings, broad, settings=settings)
    assert found == [(
        "high-privilege binding",
        'RoleBinding "grant" in namespace "team" binds ClusterRole "admin" to Group '
        '"system:serviceaccounts:team" in subjects[0]; roles "cluster-admin", "admin" may not be bound to '
        "service accounts or broad groups",
        "subjects[0]",
    )]


def test_exec_verbs_are_configurable_for_clusters_before_1_35() -> None:
    settings = rbac.RbacSettings.model_validate({"execAttach": {"verbs": ["create", "get"]}})
    found = run(rbac.exec_attach, role({"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get"]}),
                settings=settings)
    assert [reason for reason, _, _ in found] == ["exec/attach into pods"]


def test_an_update_reports_only_new_findings() -> None:
    old = role({"apiGroups": [""], "resources": ["*"], "verbs": ["get"]})
    relabelled = copy.deepcopy(old)
    relabelled["metadata"]["labels"] = {"team": "ops"}
    assert run(rbac.wildcards, relabelled, operation="UPDATE", old_object=old) == []
    widened = copy.deepcopy(old)
    widened["rules"][0]["verbs"] = ["*"]
    assert [path for _, _, path in run(rbac.wildcards, widened, operation="UPDATE", old_object=old)] == [
        "rules[0].verbs"]


def test_aggregated_cluster_roles_are_judged_on_the_rules_as_submitted() -> None:
    selectors = {"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]}
    aggregated = role(kind="ClusterRole", aggregationRule=selectors)
    aggregated["rules"] = None
    assert all(run(p.fn, aggregated) == [] for p in POLICIES if "ClusterRole" in p.kinds)


@pytest.mark.parametrize(
    "obj",
    [
        {"kind": "ClusterRole", "rules": "everything"},
        {"kind": "ClusterRole", "metadata": None, "rules": [None, 1, {"verbs": "*", "resources": None}]},
        {"kind": "Role", "rules": [{"apiGroups": [None], "resources": [["*"]], "verbs": [{"*": 1}]}]},
        {"kind": "ClusterRoleBinding", "roleRef": "cluster-admin", "subjects": [{"kind": "Group"}]},
        {"kind": "RoleBinding", "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
         "subjects": [None, {"kind": "ServiceAccount", "name": 5}, {"kind": "Group", "name": ["x"]}]},
        {"kind": "ClusterRoleBinding", "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
         "subjects": "all"},
    ],
)
def test_malformed_objects_never_crash_any_rule(obj: dict[str, Any]) -> None:
    for policy in POLICIES:
        run(policy.fn, obj)


def test_gatekeeper_samples_of_aggregated_edit_roles_warn_but_are_not_wildcards() -> None:
    folder = conftest.shared("manifests") / "gatekeeper-library"
    edit = yaml.safe_load((folder / "block-endpoint-edit-default-role__example_allowed.yaml").read_text())
    assert run(rbac.wildcards, edit) == []
    assert [path for _, _, path in run(rbac.dangerous_verbs, edit)] == ["rules[1].verbs"]  # impersonate
    assert [path for _, _, path in run(rbac.cluster_secrets_read, edit)] == ["rules[0]"]
    assert [path for _, _, path in run(rbac.exec_attach, edit)] == ["rules[2]"]


def test_default_policy_file_validates_and_names_real_policies() -> None:
    # Which modes the shipped file sets is a choice users change: policies/tests/rbac-test.yaml pins it.
    document = yaml.safe_load((REPO / "policies" / "30-rbac.yaml").read_text())
    section = {k: v for k, v in document.items() if k not in ("apiVersion", "kind")}
    assert list(section) == ["rbac"]
    settings = rbac.RbacSettings.model_validate(section["rbac"])
    assert set(settings.policies) <= {p.id for p in POLICIES}


# What these end-to-end tests rely on, so they do not move when policies/30-rbac.yaml is edited.
POLICY = """apiVersion: admission.dev/v1alpha1
kind: PolicyConfig
rbac:
  mode: warn
  exemptions:
    users: [system:apiserver]
    groups: [system:masters]
  policies:
    rbac.wildcards: {mode: enforce}
    rbac.highPrivilegeBindings: {mode: enforce}
"""


@pytest.fixture
def rbac_policies(tmp_path: Path) -> engine.PolicySet:
    (tmp_path / "rbac.yaml").write_text(POLICY)
    return engine.PolicySet(files.load([tmp_path / "rbac.yaml"]))


def evaluate(policy_set: engine.PolicySet, obj: dict[str, Any], **kwargs: Any) -> review.Outcome:
    parsed = review.parse(conftest.admission_review(obj, **kwargs))
    return engine.evaluate(policy_set, parsed.object, parsed.context, chain="validating")


def test_end_to_end_with_a_policy_file(rbac_policies: engine.PolicySet) -> None:
    policy_set = rbac_policies
    any_verb = role({"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]})
    outcome = evaluate(policy_set, any_verb, namespace="")
    assert not outcome.allowed
    assert outcome.message == (
        'rbac.wildcards: wildcard in RBAC rule (ClusterRole "ops" has "*" in rules[0].verbs, which also '
        'grants everything added later; list the verbs explicitly (requester "alice" may not create '
        "wildcards))"
    )
    # The API server reconciling bootstrap roles (system:masters) is exempt.
    assert evaluate(policy_set, role(ANYTHING, name="cluster-admin"), namespace="",
                    username="system:apiserver", groups=["system:masters"]).allowed
    # Warn-only rules let the object in with a warning.
    outcome = evaluate(policy_set, role({"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]}),
                       namespace="")
    assert outcome.allowed and outcome.warnings == [
        'rbac.execAttach: exec/attach into pods (ClusterRole "ops" grants "create" on "pods/exec" in '
        "rules[0]; the holder runs commands inside containers with their service account and mounted "
        "secrets)"
    ]
    outcome = evaluate(policy_set, binding({"kind": "Group", "name": "system:unauthenticated"}), namespace="")
    assert not outcome.allowed and "the subject's namespace does not limit its scope" in outcome.message


SA_AS_USER_MESSAGE = (
    'ClusterRoleBinding "grant" binds ClusterRole "cluster-admin" to User "system:serviceaccount:team:ci" '
    '(ServiceAccount "team/ci") in subjects[0]; a ClusterRoleBinding grants it in every namespace (the '
    "subject's namespace does not limit its scope); roles \"cluster-admin\" may not be bound to service "
    "accounts or broad groups"
)


def test_a_service_account_named_as_a_user_is_a_service_account() -> None:
    # The API server authenticates a service account token as user "system:serviceaccount:<ns>:<name>",
    # so a User subject with that name grants the role to the service account.
    as_user = binding({"kind": "User", "apiGroup": "rbac.authorization.k8s.io",
                       "name": "system:serviceaccount:team:ci"})
    assert run(rbac.high_privilege_bindings, as_user) == [
        ("high-privilege binding", SA_AS_USER_MESSAGE, "subjects[0]")]
    in_role_binding = binding({"kind": "User", "name": "system:serviceaccount:team:ci"}, kind="RoleBinding")
    assert [detail for _, detail, _ in run(rbac.high_privilege_bindings, in_role_binding)] == [
        'RoleBinding "grant" in namespace "team" binds ClusterRole "cluster-admin" to User '
        '"system:serviceaccount:team:ci" (ServiceAccount "team/ci") in subjects[0]; roles "cluster-admin" '
        "may not be bound to service accounts or broad groups"]
    # allowedServiceAccounts covers it under either spelling.
    allowed = rbac.RbacSettings.model_validate({"highPrivilegeBindings": {"allowedServiceAccounts": ["team/*"]}})
    assert run(rbac.high_privilege_bindings, as_user, settings=allowed) == []
    assert run(rbac.high_privilege_bindings, binding({"kind": "ServiceAccount", "name": "ci", "namespace": "team"}),
               settings=allowed) == []
    other = rbac.RbacSettings.model_validate({"highPrivilegeBindings": {"allowedServiceAccounts": ["gitops/*"]}})
    assert run(rbac.high_privilege_bindings, as_user, settings=other) == [
        ("high-privilege binding", SA_AS_USER_MESSAGE, "subjects[0]")]
    # A user whose name merely contains the prefix is an ordinary user.
    assert run(rbac.high_privilege_bindings, binding({"kind": "User", "name": "x-system:serviceaccount:a:b"})) == []


@pytest.mark.parametrize("group", ["system:serviceaccounts", "system:serviceaccounts:team"])
def test_service_account_groups_are_flagged_whatever_broad_groups_lists(group: str) -> None:
    # Every service account (of a namespace) is in these groups, including ones created later.
    settings = rbac.RbacSettings.model_validate({"highPrivilegeBindings": {
        "broadGroups": ["system:authenticated"], "allowedServiceAccounts": ["*/*"]}})
    found = run(rbac.high_privilege_bindings, binding({"kind": "Group", "name": group}), settings=settings)
    assert found == [(
        "high-privilege binding",
        f'ClusterRoleBinding "grant" binds ClusterRole "cluster-admin" to Group "{group}" in subjects[0]; a '
        "ClusterRoleBinding grants it in every namespace (the subject's namespace does not limit its scope); "
        'roles "cluster-admin" may not be bound to service accounts or broad groups',
        "subjects[0]")]
    # A group that only looks alike is not one of them.
    assert run(rbac.high_privilege_bindings, binding({"kind": "Group", "name": "system:serviceaccountsx"}),
               settings=settings) == []


def test_end_to_end_cluster_admin_to_a_service_account_user_is_denied(rbac_policies: engine.PolicySet) -> None:
    policy_set = rbac_policies
    outcome = evaluate(policy_set, binding({"kind": "User", "name": "system:serviceaccount:team:ci"}),
                       namespace="")
    assert not outcome.allowed
    assert outcome.message == f"rbac.highPrivilegeBindings: high-privilege binding ({SA_AS_USER_MESSAGE})"
