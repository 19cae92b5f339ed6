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
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from webhook import compiled
from webhook.policy import model, settings, workloads

CheckFn = Callable[[Any, model.ReviewContext, Any], list[model.Violation]]
MutateFn = Callable[[Any, model.ReviewContext, Any], None]
ModesFn = Callable[[Any], Sequence[tuple[model.Mode, Any]]]
"""From a group's settings, the (mode, params) pairs to evaluate: Pod Security yields enforce at one
level and warn/audit at another; most groups yield ``[(settings.mode, settings)]``."""


class Finding(NamedTuple):
    """The violations one policy found, for rendering. A named tuple: a review makes one per
    policy and mode that found something, and a frozen dataclass costs four times as much to build."""

    policy: Policy
    violations: tuple[model.Violation, ...]


RenderFn = Callable[[Sequence[Finding], model.Mode, Any], str]
"""Turns a group's findings at one mode into one message (Pod Security: ``violates PodSecurity ...``)."""


BatchFn = Callable[[Any, model.ReviewContext], Mapping[int, Sequence[model.Violation]]]
"""A group's checks compiled together: ``run(target, ctx)`` gives, by the index of each entry the
plan was compiled from whose check finds something, what that check would return on its own
(entries it leaves out find nothing)."""
PlanFn = Callable[[Sequence[tuple["Policy", Any]]], BatchFn]
"""Compiles ``(policy, params)`` entries of one group (pod-spec checks) into a :data:`BatchFn`
that evaluates them all in one pass over the pod (see :attr:`Group.plan`)."""


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
    plan: PlanFn | None = None
    """Optional: evaluate the group's pod-spec checks together (Pod Security walks a pod once for
    all its checks at every level). The checks stay the source of truth: the engine's plain path
    calls them one by one, and ``tests/test_plan.py`` requires the same answers from both."""
    render_mode: Callable[[model.Mode], Any] | None = None
    """What of the mode :attr:`render` depends on (Pod Security: enforce or not), so one review
    words equal findings once for its warn and audit passes. ``None``: the mode itself."""


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
    writes: tuple[str, ...] | None = None
    """A pod-spec mutation's write set: the maps and lists under the pod (``metadata.labels``,
    ``spec.containers[*].resources.requests``) it changes in place, by setting a key, updating or
    appending; what it replaces it only assigns into one of these (or into ``spec``/``metadata``,
    always included). The engine copies only what a pass's mutations write and shares the rest
    with the object as sent (:meth:`webhook.engine.PolicySet.copy_tree`); ``None`` (not declared) copies the
    whole object."""


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


REGISTRY: Registry = Registry()
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
    plan: PlanFn | None = None,
    render_mode: Callable[[model.Mode], Any] | None = None,
    registry: Registry = REGISTRY,
) -> Group:
    """Register a policy group (one section of the policy files, one webhook path)."""
    return registry.add_group(
        Group(
            name, key, chain, settings_model, order=order, modes=modes, render=render, description=description,
            plan=plan, render_mode=render_mode,
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
    writes: tuple[str, ...] | None = None,
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
                description=_first_line(fn.__doc__),
                active=active,
                result_key=result_key,
                writes=writes,
            )
        )
        return fn

    return decorate


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().split("\n")[0]


def describe(policy: Policy) -> str:
    """The policy's one-line description: its check's docstring. The image runs Python with
    ``-OO`` (2 MB less per worker), which drops docstrings, and a check compiled by mypyc (see
    :mod:`webhook.compiled`) has none, so then the first line is read from the check's source,
    which only the ``policies`` command asks for."""
    if policy.description:
        return policy.description
    import ast  # noqa: PLC0415 - only for the policies command under -OO or compiled
    import inspect  # noqa: PLC0415

    fn = inspect.unwrap(policy.fn)
    try:
        node = ast.parse(textwrap.dedent(inspect.getsource(fn))).body[0]
    except (OSError, TypeError, SyntaxError, IndexError):
        node = _defined_in_module_source(fn)
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return ""
    return _first_line(ast.get_docstring(node))


def _defined_in_module_source(fn: Any) -> Any:
    """The top-level definition of ``fn`` in the ``.py`` source of its module: a compiled
    function has no code object for :mod:`inspect`, and its module's file is the extension."""
    import ast  # noqa: PLC0415

    module = sys.modules.get(getattr(fn, "__module__", ""))
    try:
        tree = ast.parse(compiled.source_file(str(getattr(module, "__file__", "") or "")).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None
    name = getattr(fn, "__name__", None)
    return next((node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.name == name), None)


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
    writes: tuple[str, ...] | None = None,
) -> Callable[[MutateFn], MutateFn]:
    """Register a mutation ``fn(target, ctx, params) -> None`` that edits ``target`` in place.

    It must be idempotent (running it on its own output changes nothing: the API server may
    reinvoke the webhook), and must raise :class:`~webhook.errors.MutationRejected` *before*
    editing when it refuses an object. A pod-spec mutation edits its target in place
    (``target.spec`` and the dicts under it, ``target.metadata_for_write()`` for metadata) and never
    puts a new ``spec`` or ``metadata`` dict into the object: the engine hands the same target to
    every mutation of a pass. ``writes`` (pod-spec mutations): see :attr:`Policy.writes`.
    """
    if writes is not None and not pod_spec:
        raise ValueError(f"policy {policy_id!r}: writes are paths under the pod; an object mutation has none")
    return _register(
        "mutating",
        policy_id,
        group=group,
        kinds=kinds,
        pod_spec=pod_spec,
        operations=operations,
        order=order,
        registry=registry,
        writes=writes,
    )
