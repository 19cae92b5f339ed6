"""The catalog of policy groups, checks and mutations, filled at import time by decorators.

Modelled on Pod Security admission's check registry: every unit is a small function registered
with an id, a group, the kinds it applies to and the operations it cares about; the catalog is
validated as it is filled (unique ids, known groups) so a mistake fails at import, not at review.

A *check* (validating) is ``fn(target, ctx, params) -> list[Violation]``; a *mutation* is
``fn(target, ctx, params) -> None`` and changes ``target`` in place (the engine hands it one deep
copy of the object and diffs afterwards). For ``pod_spec=True`` units the target is a
:class:`~webhook.policy.model.PodTarget` and the unit runs on Pods *and* on the pod templates of
workloads; otherwise the target is the object dict. ``params`` is what the group's ``modes``
function yields (by default the group's settings model).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from webhook.policy import model, settings, workloads

CheckFn = Callable[[Any, model.ReviewContext, Any], list[model.Violation]]
MutateFn = Callable[[Any, model.ReviewContext, Any], None]
ModesFn = Callable[[Any], Sequence[tuple[model.Mode, Any]]]
"""From a group's settings, the (mode, params) pairs to evaluate: Pod Security yields enforce at one
level and warn/audit at another; most groups yield ``[(settings.mode, settings)]``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Finding:
    """The violations one policy found, for rendering."""

    policy: Policy
    violations: tuple[model.Violation, ...]


RenderFn = Callable[[Sequence[Finding], model.Mode, Any], str]
"""Turns a group's findings at one mode into one message (Pod Security: ``violates PodSecurity ...``)."""


def render_default(findings: Sequence[Finding], mode: model.Mode, params: Any) -> str:
    """``<policy id>: reason (detail), reason (detail)`` per policy, joined with ``; ``."""
    return "; ".join(
        f"{finding.policy.id}: " + ", ".join(v.text() for v in finding.violations) for finding in findings
    )


def modes_default(group_settings: Any) -> Sequence[tuple[model.Mode, Any]]:
    return [(group_settings.mode, group_settings)]


@dataclasses.dataclass(frozen=True, slots=True)
class Group:
    name: str
    """URL segment and id (``pod-security``): served at ``/validate/pod-security``."""
    key: str
    """Section key in policy files (``podSecurity``)."""
    chain: model.Chain
    settings: type[settings.GroupSettings]
    order: int = 100
    """Mutating groups run in ascending order (sidecars before defaults before Downward API env, so
    injected sidecars get defaults and env too); validating groups are ordered for stable output."""
    modes: ModesFn = modes_default
    render: RenderFn = render_default
    description: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    id: str
    group: str
    chain: model.Chain
    fn: Callable[..., Any]
    kinds: frozenset[str]
    pod_spec: bool
    operations: frozenset[str]
    order: int
    description: str
    active: Callable[[Any], bool] | None = None
    """Whether the policy does anything for given params (Pod Security: is this check in force at
    this level and version?). Inactive instances are dropped when a policy set is compiled, so the
    request path never calls them."""
    result_key: Callable[[Any], Any] | None = None
    """A hashable key equal for params that give the same result (Pod Security: the check revision
    in force, the same at ``baseline:latest`` and ``restricted:latest`` for the baseline checks), so
    a review runs the check once for all of them. ``None``: params that compare equal."""


class Registry:
    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self.policies: dict[str, Policy] = {}

    def add_group(self, group: Group) -> Group:
        if group.name in self.groups:
            raise ValueError(f"policy group {group.name!r} registered twice")
        if any(g.key == group.key for g in self.groups.values()):
            raise ValueError(f"policy section key {group.key!r} registered twice")
        self.groups[group.name] = group
        return group

    def add_policy(self, policy: Policy) -> None:
        if policy.id in self.policies:
            raise ValueError(f"policy id {policy.id!r} registered twice")
        group = self.groups.get(policy.group)
        if group is None:
            raise ValueError(f"policy {policy.id!r} names unknown group {policy.group!r}")
        if group.chain != policy.chain:
            raise ValueError(
                f"policy {policy.id!r} is {policy.chain} but group {group.name!r} is {group.chain}"
            )
        unknown_ops = policy.operations - model.OPERATIONS
        if unknown_ops:
            raise ValueError(f"policy {policy.id!r}: unknown operations {sorted(unknown_ops)}")
        self.policies[policy.id] = policy

    def in_group(self, group: str) -> list[Policy]:
        return sorted((p for p in self.policies.values() if p.group == group), key=lambda p: (p.order, p.id))

    def by_section_key(self) -> dict[str, Group]:
        return {g.key: g for g in self.groups.values()}


REGISTRY = Registry()
"""The catalog the built-in validators and mutators register into (imported by ``webhook.catalog``)."""


def group(
    name: str,
    *,
    key: str,
    chain: model.Chain,
    settings_model: type[settings.GroupSettings],
    order: int = 100,
    modes: ModesFn = modes_default,
    render: RenderFn = render_default,
    description: str = "",
    registry: Registry = REGISTRY,
) -> Group:
    """Register a policy group (one section of the policy files, one webhook path)."""
    return registry.add_group(
        Group(
            name, key, chain, settings_model, order=order, modes=modes, render=render, description=description
        )
    )


def _register(
    chain: model.Chain,
    policy_id: str,
    *,
    group: str,
    kinds: Iterable[str] | None,
    pod_spec: bool,
    operations: Iterable[str],
    order: int,
    registry: Registry,
    active: Callable[[Any], bool] | None = None,
    result_key: Callable[[Any], Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    if pod_spec and kinds is not None:
        raise ValueError(f"policy {policy_id!r}: pod_spec units apply to every pod-carrying kind; omit kinds")
    if not pod_spec and not kinds:
        raise ValueError(f"policy {policy_id!r}: an object policy needs the kinds it applies to")
    resolved_kinds = workloads.POD_KINDS if pod_spec else frozenset(kinds or ())

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        registry.add_policy(
            Policy(
                id=policy_id,
                group=group,
                chain=chain,
                fn=fn,
                kinds=resolved_kinds,
                pod_spec=pod_spec,
                operations=frozenset(operations),
                order=order,
                description=(fn.__doc__ or "").strip().split("\n")[0],
                active=active,
                result_key=result_key,
            )
        )
        return fn

    return decorate


def check(
    policy_id: str,
    *,
    group: str,
    kinds: Iterable[str] | None = None,
    pod_spec: bool = False,
    operations: Iterable[str] = ("CREATE", "UPDATE"),
    order: int = 100,
    registry: Registry = REGISTRY,
    active: Callable[[Any], bool] | None = None,
    result_key: Callable[[Any], Any] | None = None,
) -> Callable[[CheckFn], CheckFn]:
    """Register a validating check ``fn(target, ctx, params) -> list[Violation]``.

    ``active(params)`` and ``result_key(params)`` (optional): see :attr:`Policy.active` and
    :attr:`Policy.result_key`.
    """
    return _register(
        "validating",
        policy_id,
        group=group,
        kinds=kinds,
        pod_spec=pod_spec,
        operations=operations,
        order=order,
        registry=registry,
        active=active,
        result_key=result_key,
    )


def mutation(
    policy_id: str,
    *,
    group: str,
    kinds: Iterable[str] | None = None,
    pod_spec: bool = False,
    operations: Iterable[str] = ("CREATE", "UPDATE"),
    order: int = 100,
    registry: Registry = REGISTRY,
) -> Callable[[MutateFn], MutateFn]:
    """Register a mutation ``fn(target, ctx, params) -> None`` that edits ``target`` in place.

    It must be idempotent (running it on its own output changes nothing: the API server may
    reinvoke the webhook), and must raise :class:`~webhook.errors.MutationRejected` *before*
    editing when it refuses an object. A pod-spec mutation edits its target in place
    (``target.spec`` and the dicts under it, ``target.metadata_for_write()`` for metadata) and never
    puts a new ``spec`` or ``metadata`` dict into the object: the engine hands the same target to
    every mutation of a pass.
    """
    return _register(
        "mutating",
        policy_id,
        group=group,
        kinds=kinds,
        pod_spec=pod_spec,
        operations=operations,
        order=order,
        registry=registry,
    )
