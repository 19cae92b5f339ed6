"""Which resources an audit lists: every kind a loaded validating policy checks on CREATE.

Built-in policies name kinds (a pod-spec check names every kind with a pod template), mapped to
resources by :data:`webhook.registration.RESOURCES`, the table ``register`` builds webhook rules
from. ValidatingAdmissionPolicies name resources in ``matchConstraints.resourceRules``; a rule with
a wildcard group, version or resource is resolved against the cluster's discovery by
:mod:`webhook.audit.live` (a dump needs no resolving: every object in it is evaluated).

A policy without a binding never runs, so its rules add nothing. Subresource rules
(``pods/status``) add nothing either: an audit creates objects, not subresources.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from webhook import engine, registration
from webhook.audit import model
from webhook.emulator import attributes

BY_RESOURCE: dict[tuple[str, str], tuple[str, str]] = {
    (group, resource): (version, kind) for kind, (group, version, resource) in registration.RESOURCES.items()
}


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """One resource to list: ``GET /apis/<group>/<version>/<resource>`` (``/api/v1/...`` for core)."""

    group: str
    version: str
    resource: str
    kind: str = ""
    """Known for built-in resources; filled from discovery (or the List's kind) for the others."""
    namespaced: bool | None = None
    """``None`` until discovery says (built-in resources are known)."""
    wanted_by: tuple[str, ...] = ()
    """The policies (groups, admission policies) that check it, for messages."""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def rank(self) -> int:
        return model.rank(self.kind)

    def describe(self) -> str:
        """``Pod (v1 pods)`` or ``Widget (example.com/v1 widgets)``: how problems name it."""
        what = f"{self.api_version} {self.resource}"
        return f"{self.kind} ({what})" if self.kind else what


@dataclasses.dataclass(frozen=True, slots=True)
class Wildcard:
    """A resource rule with ``*`` in it, for discovery to expand."""

    groups: tuple[str, ...]
    versions: tuple[str, ...]
    resources: tuple[str, ...]
    policy: str


def _creates(operations: Iterable[str]) -> bool:
    return any(op in ("CREATE", "*") for op in operations)


def of(policy_sets: Sequence[engine.PolicySet]) -> tuple[list[Target], list[Wildcard]]:
    """The resources the validating policies of ``policy_sets`` check on CREATE, in evaluation
    order (owners before what they own), and the wildcard rules left for discovery."""
    wanted: dict[tuple[str, str], tuple[str, str, list[str]]] = {}  # (group, resource) -> version, kind, by
    wildcards: list[Wildcard] = []

    def want(group: str, version: str, resource: str, kind: str, by: str) -> None:
        entry = wanted.setdefault((group, resource), (version, kind, []))
        if by not in entry[2]:
            entry[2].append(by)

    for policy_set in policy_sets:
        for instance in policy_set.instances:
            policy = instance.policy
            if policy.chain != "validating" or "CREATE" not in policy.operations:
                continue
            for kind in sorted(policy.kinds):
                group, version, resource = registration.RESOURCES[kind]
                want(group, version, resource, kind, instance.group.name)
        bound = {policy.name for policy, _ in policy_set.cel.pairs}
        for admission in policy_set.cel.policies:
            if admission.name not in bound:
                continue
            for rule in admission.match_constraints.resource_rules:
                if not _creates(rule.operations):
                    continue
                resources = [r.partition("/") for r in rule.resources]
                main = tuple(sorted({r for r, _, sub in resources if sub in ("", "*")}))
                if not main:
                    continue
                if "*" in rule.api_groups or "*" in rule.api_versions or "*" in main:
                    wildcards.append(Wildcard(rule.api_groups, rule.api_versions, main, admission.name))
                    continue
                for group in rule.api_groups:
                    for version in rule.api_versions:
                        for resource in main:
                            known = BY_RESOURCE.get((group, resource))
                            kind = known[1] if known is not None and known[0] == version else ""
                            want(group, version, resource, kind, admission.name)
    found = [
        Target(group, version, resource, kind, _namespaced(kind), tuple(by))
        for (group, resource), (version, kind, by) in wanted.items()
    ]
    found.sort(key=lambda t: (t.rank, t.group, t.resource))
    return found, wildcards


def _namespaced(kind: str) -> bool | None:
    if not kind:
        return None
    return kind not in attributes.CLUSTER_SCOPED
