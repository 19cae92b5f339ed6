"""RBAC rules: wildcards, privilege-escalation verbs, cluster-wide secret reads, exec/attach, and
high-privilege bindings, each its own policy id so its mode can be set on its own.

Rules are judged as the RBAC authorizer reads them (``k8s.io/kubernetes/pkg/apis/rbac/v1``
``VerbMatches``/``APIGroupMatches``/``ResourceMatches``): ``*`` matches everything and ``*/exec``
matches the ``exec`` subresource of every resource, so ``pods/exec`` is granted by ``pods/exec``,
``*/exec`` and ``*``. An aggregated ClusterRole (``aggregationRule``) is judged on the ``rules`` as
submitted: the clusterrole-aggregation-controller fills them in later, and its writes are exempt
through the group's exemptions (see policies/30-rbac.yaml), like the API server's own bootstrap
reconciliation (``system:masters``).

A service account has two spellings as a binding subject: ``kind: ServiceAccount`` and the
username the API server authenticates its tokens as, ``kind: User`` named
``system:serviceaccount:<namespace>:<name>`` (``k8s.io/apiserver/pkg/authentication/serviceaccount``).
Both grant the same account the role, so both are judged as that service account. Every service
account is also in the groups ``system:serviceaccounts`` and ``system:serviceaccounts:<namespace>``.

On UPDATE only findings the old object did not already have are reported, so relabelling or
removing a finalizer from a role that predates a policy is never blocked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import webhook.policy.settings  # noqa: F401 - mypyc: its classes derive from this module's (see setup.py)
from webhook.policy import model, registry, scope, settings
from webhook.validators import updates, wording

GROUP = "rbac"
ROLE_KINDS = ("Role", "ClusterRole")
BINDING_KINDS = ("RoleBinding", "ClusterRoleBinding")
SERVICE_ACCOUNT_USER_PREFIX = "system:serviceaccount:"
"""Usernames of service accounts: ``system:serviceaccount:<namespace>:<name>``."""
SERVICE_ACCOUNTS_GROUP = "system:serviceaccounts"
"""Every service account's group; ``system:serviceaccounts:<namespace>`` holds one namespace's."""


class Requesters(settings.StrictModel):
    """Requesters (``request.userInfo``) a rule does not apply to."""

    allowedUsers: tuple[str, ...] = ()
    allowedGroups: tuple[str, ...] = ()
    allowedServiceAccounts: tuple[str, ...] = ()
    """``namespace/name`` of requesting service accounts, globs allowed."""


class DangerousVerbs(settings.StrictModel):
    verbs: tuple[str, ...] = ("escalate", "bind", "impersonate")
    """Verbs that let the holder gain permissions it does not have: ``escalate`` (write roles
    beyond its own rights), ``bind`` (bind such roles), ``impersonate`` (act as another user)."""


class ClusterSecretsRead(settings.StrictModel):
    verbs: tuple[str, ...] = ("get", "list", "watch")
    """Verbs on ``secrets`` flagged in a ClusterRole (bound cluster-wide, they read every secret)."""


class ExecAttach(settings.StrictModel):
    resources: tuple[str, ...] = ("pods/exec", "pods/attach")
    verbs: tuple[str, ...] = ("create",)
    """The verbs that open a session. SPDY clients need ``create``; before Kubernetes 1.35 a
    WebSocket client (an HTTP GET) needed only ``get`` -- 1.35 added a ``create`` check for it too
    (``AuthorizePodWebsocketUpgradeCreatePermission``, KEP-4006). On older clusters add ``get``."""


class HighPrivilegeBindings(settings.StrictModel):
    roles: tuple[str, ...] = ("cluster-admin",)
    """ClusterRole names (globs) that may not be bound to service accounts or broad groups."""
    broadGroups: tuple[str, ...] = ("system:authenticated", "system:unauthenticated", "system:anonymous")
    """Group subjects that stand for "everyone". The service-account groups (``system:serviceaccounts``
    and ``system:serviceaccounts:<namespace>``) are always flagged, whatever this lists."""
    broadUsers: tuple[str, ...] = ("system:anonymous",)
    """User subjects that stand for everyone (the user of unauthenticated requests)."""
    allowedServiceAccounts: tuple[str, ...] = ()
    """``namespace/name`` (globs) of service accounts that may hold these roles (a GitOps agent),
    whether the subject is ``kind: ServiceAccount`` or their ``system:serviceaccount:`` username.
    It never exempts a service-account group: that holds every account, including future ones."""


class RbacSettings(settings.GroupSettings):
    """The ``rbac:`` section of policy files; one field per rule."""

    wildcards: Requesters = Requesters()
    """Who may create roles with ``*`` in verbs, resources or apiGroups."""
    dangerousVerbs: DangerousVerbs = DangerousVerbs()
    clusterSecretsRead: ClusterSecretsRead = ClusterSecretsRead()
    execAttach: ExecAttach = ExecAttach()
    highPrivilegeBindings: HighPrivilegeBindings = HighPrivilegeBindings()


registry.group(
    GROUP,
    key="rbac",
    chain="validating",
    settings_model=RbacSettings,
    order=30,
    description="RBAC roles and bindings: wildcards, escalation verbs, secrets, exec, and who may hold "
    "cluster-admin.",
)

Check = Callable[[dict[str, Any], model.ReviewContext, RbacSettings], list[model.Violation]]


def _object_check(policy_id: str, *, kinds: Iterable[str], order: int) -> Callable[[Check], Check]:
    return updates.object_check(GROUP, policy_id, kinds=kinds, order=order)


def _subject(obj: dict[str, Any], ctx: model.ReviewContext) -> str:
    """``ClusterRole "view"`` or ``RoleBinding "ci" in namespace "team"``."""
    meta = wording.as_dict(obj.get("metadata"))
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else ctx.kind
    name = meta.get("name") or ctx.name or (f"{meta['generateName']}*" if meta.get("generateName") else "")
    text = f"{kind} {wording.quote(name)}" if name else f"{kind} (unnamed)"
    if kind in ("Role", "RoleBinding"):
        namespace = model.namespace_of(obj, ctx)
        if namespace:
            text += f" in namespace {wording.quote(namespace)}"
    return text


def _rules(obj: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    rules = obj.get("rules")
    if not isinstance(rules, list):
        return []
    return [(index, rule) for index, rule in enumerate(rules) if isinstance(rule, dict)]


def _grants(rule: dict[str, Any], *, resource: str, verbs: Iterable[str]) -> list[str]:
    """The ``verbs`` a rule grants on the core-group ``resource`` (``pods/exec``), as RBAC matches."""
    groups = wording.strings(rule.get("apiGroups"))
    if "" not in groups and "*" not in groups:
        return []
    base, _, subresource = resource.partition("/")
    resources = wording.strings(rule.get("resources"))
    if not ("*" in resources or resource in resources or (subresource and f"*/{subresource}" in resources)):
        return []
    rule_verbs = wording.strings(rule.get("verbs"))
    return [verb for verb in verbs if verb in rule_verbs or "*" in rule_verbs]


def _requester_allowed(ctx: model.ReviewContext, allowed: Requesters) -> bool:
    if allowed.allowedUsers and scope.glob_match(ctx.username, allowed.allowedUsers):
        return True
    if allowed.allowedGroups and any(scope.glob_match(g, allowed.allowedGroups) for g in ctx.user_groups):
        return True
    account = ctx.service_account
    return bool(allowed.allowedServiceAccounts) and account is not None and scope.glob_match(
        account, allowed.allowedServiceAccounts
    )


@_object_check("wildcards", kinds=ROLE_KINDS, order=10)
def wildcards(obj: dict[str, Any], ctx: model.ReviewContext, params: RbacSettings) -> list[model.Violation]:
    """Roles must not use * in verbs, resources or apiGroups unless the requester is allowed to."""
    if _requester_allowed(ctx, params.wildcards):
        return []
    found = []
    requester = wording.quote(ctx.username or "(anonymous)")
    for index, rule in _rules(obj):
        for field in ("apiGroups", "resources", "verbs"):
            for entry in wording.strings(rule.get(field)):
                if entry != "*" and not (field == "resources" and entry.startswith("*/")):
                    continue
                path = f"rules[{index}].{field}"
                found.append(model.Violation(
                    "wildcard in RBAC rule",
                    f"{_subject(obj, ctx)} has {wording.quote(entry)} in {path}, which also grants everything "
                    f"added later; list the {field} explicitly "
                    f"(requester {requester} may not create wildcards)",
                    path=path, value=entry,
                ))
    return found


@_object_check("dangerousVerbs", kinds=ROLE_KINDS, order=20)
def dangerous_verbs(
    obj: dict[str, Any], ctx: model.ReviewContext, params: RbacSettings
) -> list[model.Violation]:
    """Roles should not grant escalate, bind or impersonate (a wildcard verb is rbac.wildcards' finding)."""
    dangerous = params.dangerousVerbs.verbs
    found = []
    for index, rule in _rules(obj):
        verbs = [verb for verb in wording.strings(rule.get("verbs")) if verb in dangerous]
        if not verbs:
            continue
        path = f"rules[{index}].verbs"
        resources = wording.strings(rule.get("resources"))
        on = f" on {wording.quote_all(resources)}" if resources else ""
        found.append(model.Violation(
            "dangerous RBAC verb",
            f"{_subject(obj, ctx)} grants {wording.quote_all(verbs)}{on} in {path}; {wording.quote_all(dangerous)} let "
            "the holder gain permissions it does not have",
            path=path, value=verbs,
        ))
    return found


@_object_check("clusterSecretsRead", kinds=("ClusterRole",), order=30)
def cluster_secrets_read(
    obj: dict[str, Any], ctx: model.ReviewContext, params: RbacSettings
) -> list[model.Violation]:
    """ClusterRoles should not read secrets: bound cluster-wide they read every namespace's secrets."""
    found = []
    for index, rule in _rules(obj):
        verbs = _grants(rule, resource="secrets", verbs=params.clusterSecretsRead.verbs)
        if not verbs:
            continue
        path = f"rules[{index}]"
        found.append(model.Violation(
            "cluster-wide secrets read",
            f"{_subject(obj, ctx)} grants {wording.quote_all(verbs)} on secrets in {path}; bound by a "
            "ClusterRoleBinding it reads the secrets of every namespace (use a Role per namespace)",
            path=path, value=verbs,
        ))
    return found


@_object_check("execAttach", kinds=ROLE_KINDS, order=40)
def exec_attach(obj: dict[str, Any], ctx: model.ReviewContext, params: RbacSettings) -> list[model.Violation]:
    """Roles should not grant create on pods/exec or pods/attach (commands inside running containers)."""
    rule_settings = params.execAttach
    found = []
    for index, rule in _rules(obj):
        granted = [
            (resource, verbs)
            for resource in rule_settings.resources
            if (verbs := _grants(rule, resource=resource, verbs=rule_settings.verbs))
        ]
        if not granted:
            continue
        path = f"rules[{index}]"
        what = "; ".join(f"{wording.quote_all(verbs)} on {wording.quote(resource)}" for resource, verbs in granted)
        found.append(model.Violation(
            "exec/attach into pods",
            f"{_subject(obj, ctx)} grants {what} in {path}; the holder runs commands inside containers "
            "with their service account and mounted secrets",
            path=path, value=[resource for resource, _ in granted],
        ))
    return found


@_object_check("highPrivilegeBindings", kinds=BINDING_KINDS, order=50)
def high_privilege_bindings(
    obj: dict[str, Any], ctx: model.ReviewContext, params: RbacSettings
) -> list[model.Violation]:
    """High-privilege ClusterRoles (cluster-admin) must not be bound to service accounts or broad groups."""
    rule = params.highPrivilegeBindings
    role_ref = wording.as_dict(obj.get("roleRef"))
    role = role_ref.get("name")
    # A Role named "cluster-admin" grants only its own rules, which the role checks judge.
    if role_ref.get("kind") != "ClusterRole" or not isinstance(role, str):
        return []
    if not scope.glob_match(role, rule.roles):
        return []
    subjects = obj.get("subjects")
    if not isinstance(subjects, list):
        return []
    cluster_wide = obj.get("kind", ctx.kind) == "ClusterRoleBinding"
    found = []
    for index, subject in enumerate(subjects):
        if not isinstance(subject, dict):
            continue
        shown = _broad_or_service_account(subject, obj, ctx, rule)
        if shown is None:
            continue
        path = f"subjects[{index}]"
        scope_text = (
            "; a ClusterRoleBinding grants it in every namespace (the subject's namespace does not limit "
            "its scope)" if cluster_wide else ""
        )
        found.append(model.Violation(
            "high-privilege binding",
            f"{_subject(obj, ctx)} binds ClusterRole {wording.quote(role)} to {shown} in {path}{scope_text}; "
            f"roles {wording.quote_all(rule.roles)} may not be bound to service accounts or broad groups",
            path=path, value=subject.get("name"),
        ))
    return found


def _broad_or_service_account(
    subject: dict[str, Any], binding: dict[str, Any], ctx: model.ReviewContext, rule: HighPrivilegeBindings
) -> str | None:
    """How to name ``subject`` when it is a service account or a broad group/user, else ``None``."""
    kind = subject.get("kind")
    name = subject.get("name")
    if not isinstance(name, str):
        return None
    if kind == "ServiceAccount":
        namespace = subject.get("namespace")
        if not isinstance(namespace, str) or not namespace:
            # In a RoleBinding an empty subject namespace means the binding's own namespace.
            namespace = model.namespace_of(binding, ctx) if binding.get("kind", ctx.kind) == "RoleBinding" else ""
        account = f"{namespace}/{name}"
        if rule.allowedServiceAccounts and scope.glob_match(account, rule.allowedServiceAccounts):
            return None
        return f"ServiceAccount {wording.quote(account)}"
    if kind == "User" and name.startswith(SERVICE_ACCOUNT_USER_PREFIX):
        # The username a service account's token authenticates as: the same account, another spelling.
        account = name[len(SERVICE_ACCOUNT_USER_PREFIX) :].replace(":", "/", 1)
        if rule.allowedServiceAccounts and scope.glob_match(account, rule.allowedServiceAccounts):
            return None
        return f"User {wording.quote(name)} (ServiceAccount {wording.quote(account)})"
    if kind == "Group" and (
        name == SERVICE_ACCOUNTS_GROUP
        or name.startswith(f"{SERVICE_ACCOUNTS_GROUP}:")
        or scope.glob_match(name, rule.broadGroups)
    ):
        return f"Group {wording.quote(name)}"
    if kind == "User" and scope.glob_match(name, rule.broadUsers):
        return f"User {wording.quote(name)}"
    return None
