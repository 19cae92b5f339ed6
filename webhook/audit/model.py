"""What an audit works with: the objects it reads, the results it finds, the problems it meets.

Plain frozen dataclasses, as in :mod:`webhook.policy.model`: one is built per object and per
finding, so they must be cheap. Objects themselves stay dicts (STYLE.md rule 2).

A *result* follows the PolicyReport vocabulary (``wgpolicyk8s.io`` / ``openreports.io``): ``policy``
is a built-in group (``pod-security``) or a ValidatingAdmissionPolicy, ``rule`` a check id
(``privileged``) or the policy's binding; ``result`` is ``fail`` for an enforce-mode violation (the
API server would refuse the object), ``warn`` for a warn- or audit-mode one, ``error`` when a policy
raised, ``pass`` when the policy applied and found nothing, ``skip`` when its scope or exemptions
left the object out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from webhook import errors
from webhook.policy import model

Outcome = Literal["pass", "fail", "warn", "error", "skip"]
Subject = Literal["object", "pods"]

STRENGTH: Mapping[tuple[Outcome, model.Mode | None], int] = {
    ("fail", "enforce"): 6,
    ("error", None): 5,
    ("warn", "warn"): 4,
    ("warn", "audit"): 3,
    ("pass", None): 2,
    ("skip", None): 1,
}
"""Which of two results for the same (policy, rule) a report keeps: the one that says more."""

VIOLATIONS: frozenset[Outcome] = frozenset({"fail", "warn"})
FAIL_ON_MODES: tuple[model.Mode, ...] = ("enforce", "warn", "audit")

OWNER_KINDS: frozenset[str] = frozenset(
    {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicationController"}
)
"""Kinds whose objects own Pods (or, for Deployment and CronJob, the ReplicaSets and Jobs that do)."""

RANKS: Mapping[str, int] = {"ReplicaSet": 1, "Job": 1, "Pod": 2}
"""The order objects are evaluated in, so an owner is always seen before what it owns: top-level
objects (rank 0), then ReplicaSets and Jobs (owned by Deployments and CronJobs), then Pods."""


def rank(kind: str) -> int:
    return RANKS.get(kind, 0)


class AuditError(errors.WebhookError):
    """The audit cannot run at all (no credentials, unusable policy files or arguments); exit 2.
    The message names what failed and what to do."""


class Problem(Exception):
    """One part of a scan failed (a list forbidden, a kind not served, a timeout, an unreadable
    file); the scan goes on without it and ends partial (exit 2). ``str()`` is the one line shown."""


@dataclasses.dataclass(frozen=True, slots=True)
class Ref:
    """The resource a result is about: a PolicyReport result's ``resources[0]``."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Ref:
        metadata = obj.get("metadata")
        meta: Mapping[str, Any] = metadata if isinstance(metadata, dict) else {}
        return cls(
            api_version=str(obj.get("apiVersion") or ""),
            kind=str(obj.get("kind") or ""),
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or meta.get("generateName") or ""),
            uid=str(meta.get("uid") or ""),
        )

    def text(self) -> str:
        """``Pod shop/web`` or ``ClusterRole admin``, as the summary and wide outputs print it."""
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def to_dict(self) -> dict[str, str]:
        """A ``corev1.ObjectReference``, with only the fields that are known."""
        found = {"apiVersion": self.api_version, "kind": self.kind, "namespace": self.namespace,
                 "name": self.name, "uid": self.uid}
        return {k: v for k, v in found.items() if v}


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    """What one policy (and rule) says about one object."""

    policy: str
    rule: str
    result: Outcome
    mode: model.Mode | None = None
    """The mode the violation was found in (enforce, warn, audit); ``None`` for pass, skip, error."""
    message: str = ""
    category: str = ""
    subject: Subject = "object"
    """``pods``: found on the Pods the object's template makes (evaluated as a Pod created now)."""
    detail: tuple[tuple[str, str], ...] = ()
    """``(reason, path)`` of each violation: what two objects are compared on when deciding whether
    a Pod is what its owner's template makes (the message may name the object; this does not)."""

    @property
    def strength(self) -> int:
        return STRENGTH.get((self.result, self.mode), 0)

    @property
    def violation(self) -> bool:
        return self.result in VIOLATIONS


@dataclasses.dataclass(frozen=True, slots=True)
class Namespace:
    """A Namespace as policies see it: labels for scopes and selectors, the object for CEL's
    ``namespaceObject``."""

    name: str
    labels: Mapping[str, str]
    object: Mapping[str, Any]

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Namespace:
        metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        assert isinstance(metadata, dict)
        labels = metadata.get("labels")
        name = str(metadata.get("name") or "")
        trimmed = {"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {k: v for k, v in metadata.items() if k != "managedFields"}}
        for field in ("spec", "status"):
            if isinstance(obj.get(field), dict):
                trimmed[field] = obj[field]
        return cls(name, {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}, trimmed)


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """One object read from a cluster or a dump, with what the reader knows about its resource."""

    object: dict[str, Any]
    resource: str | None = None
    """The plural resource it was listed as; ``None`` for a dump (derived from the kind)."""
    namespaced: bool | None = None
    """From discovery; ``None`` for a dump (an object with ``metadata.namespace`` is namespaced)."""


@dataclasses.dataclass(slots=True)
class Entry:
    """One object's results, as reported: on itself, or folded into its owner's entry."""

    ref: Ref
    results: tuple[Result, ...]
    baseline: tuple[Result, ...] | None = None
    """``--what-if``: the results under the current policies (``results`` are the proposed ones')."""
    signature: Any = None
    """What its Pods are found to break (see :mod:`webhook.audit.owners`); equal signatures fold."""
    owner: Ref | None = None
    """The entry it was folded into (``None``: reported itself)."""
    differs_from: Ref | None = None
    """The owner it was not folded into because its Pods break other rules than the template's."""

    @property
    def violations(self) -> tuple[Result, ...]:
        return tuple(r for r in self.results if r.violation)
