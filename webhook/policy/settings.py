"""Pydantic models shared by every policy group's section in the policy files.

A group's section (``podSecurity:``, ``rbac:``, ``sidecars:``, ...) is a subclass of
:class:`GroupSettings`: the common knobs (mode, failure mode, scope, exemptions, per-policy
overrides) plus the group's own settings. Models are strict and frozen (``extra="forbid"``) so a
typo in a policy file is an error that names the key, never a silently ignored setting.
"""

from __future__ import annotations

from typing import Annotated, Literal

import pydantic

from webhook.policy import model


class StrictModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _yaml_off(value: object) -> object:
    """YAML 1.1 (PyYAML) reads an unquoted ``off`` as ``False``; ``mode: off`` must still mean off."""
    return "off" if value is False else value


ModeSetting = Annotated[model.Mode, pydantic.BeforeValidator(_yaml_off)]


class LabelRequirement(StrictModel):
    """One ``matchExpressions`` entry, as in a Kubernetes ``LabelSelector``."""

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = ()

    @pydantic.model_validator(mode="after")
    def _values_fit_operator(self) -> LabelRequirement:
        # Same rule as the API server's LabelSelector validation.
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self


class LabelSelector(StrictModel):
    """A Kubernetes ``LabelSelector``: every ``matchLabels`` pair and every expression must hold."""

    matchLabels: dict[str, str] = {}
    matchExpressions: tuple[LabelRequirement, ...] = ()


class Scope(StrictModel):
    """Where a group or policy applies. Every field that is set must match (AND); empty = everywhere."""

    namespaces: tuple[str, ...] = ()
    """Namespace names or glob patterns (``team-*``) the policy applies to; empty means all."""
    excludeNamespaces: tuple[str, ...] = ()
    """Namespace names or globs the policy never applies to (kube-system, the webhook's own)."""
    namespaceSelector: LabelSelector | None = None
    """Labels of the request's namespace; needs the namespace cache (a cluster), else never matches."""
    objectSelector: LabelSelector | None = None
    """Labels of the object (of ``oldObject`` on DELETE), like a webhook's ``objectSelector``."""


class AccessReviewExemption(StrictModel):
    """Exempt requesters the cluster's RBAC allows to ``use`` a named exemption.

    The webhook asks with a SubjectAccessReview, but never on the request path: answers come from
    a short-lived cache filled in the background. Until an answer is cached (the first review of a
    user), or when there is no cluster, ``whenUnknown`` decides.
    Grant it with RBAC: ``verbs: [use], apiGroups: [admission.dev], resources: [exemptions],
    resourceNames: [privileged-pods]``.
    """

    name: str = pydantic.Field(min_length=1)
    verb: str = "use"
    group: str = "admission.dev"
    resource: str = "exemptions"
    whenUnknown: Literal["exempt", "enforce"] = "enforce"


class Exemptions(StrictModel):
    """Who or what is exempt. *Any* field that matches exempts the request (as Pod Security admission's
    exemptions: usernames, runtimeClassNames, namespaces)."""

    namespaces: tuple[str, ...] = ()
    namespaceSelector: LabelSelector | None = None
    """Namespaces whose labels match are exempt (needs the namespace cache; without a cluster the
    labels are unknown and this never exempts)."""
    users: tuple[str, ...] = ()
    """``request.userInfo.username`` values or globs."""
    groups: tuple[str, ...] = ()
    """``request.userInfo.groups`` entries or globs."""
    serviceAccounts: tuple[str, ...] = ()
    """``namespace/name`` of requesting service accounts, globs allowed (``ci/*``)."""
    objectLabels: dict[str, str] = {}
    """A label on the object with this value exempts it."""
    annotations: dict[str, str] = {}
    """An annotation on the object (or its pod template) with this value exempts it."""
    runtimeClassNames: tuple[str, ...] = ()
    """Pods (and templates) with one of these ``runtimeClassName``s are exempt."""
    accessReview: AccessReviewExemption | None = None
    """Requesters RBAC allows to ``use`` this named exemption (SubjectAccessReview, cached)."""


class PolicyOverride(StrictModel):
    """Settings for one policy id inside a group; unset fields inherit the group's."""

    mode: ModeSetting | None = None
    failureMode: model.FailureMode | None = None
    exemptions: Exemptions | None = None


class GroupSettings(StrictModel):
    """The knobs every group has. Subclasses add the group's own settings."""

    mode: ModeSetting = "enforce"
    failureMode: model.FailureMode = "deny"
    """What happens when a policy of the group raises: deny naming the policy, or allow with a warning."""
    scope: Scope = Scope()
    exemptions: Exemptions = Exemptions()
    policies: dict[str, PolicyOverride] = {}
    """Per-policy overrides keyed by policy id (``rbac.wildcards: {mode: warn}``)."""
    workloadMode: ModeSetting | None = None
    """Mode used instead of ``enforce`` when the object is a workload (Deployment, CronJob, ...), not a
    Pod. Pod Security admission enforces on Pods only and *warns* on workload templates; a group
    that wants the same sets ``warn`` here. ``None`` keeps ``mode``."""


class MutatingGroupSettings(GroupSettings):
    """Mutating groups: ``enforce`` applies the change, ``warn``/``audit`` only report what would
    change, ``off`` skips. ``failureMode`` defaults to ``allow``: a broken default must not block Pods."""

    failureMode: model.FailureMode = "allow"
    optOutAnnotation: str | None = None
    """An annotation on the object or its pod template; the value ``"false"`` (or ``"disabled"``)
    skips the whole group for that object, as ``sidecar.istio.io/inject: "false"`` does."""
