"""Runs the mutating and validating chains over one request: pure, synchronous, no I/O.

The server, the offline ``review`` CLI and the tests all call :func:`evaluate`, so what a user
tries offline is exactly what the server answers.

A compiled :class:`PolicySet` holds, for each (chain, group, kind, operation), the tuple of policy
*instances* (a registered policy with its resolved mode, params and failure mode), computed once per
key and cached: the request path does no policy lookup work beyond one dict access.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import orjson

from webhook import errors, patch, plan, review
from webhook.plan import Instance as Instance  # re-exported: the unit a plan is compiled from
from webhook.policy import files, model, registry, scope, workloads
from webhook.policy import settings as policy_settings

if TYPE_CHECKING:  # imported when a policy set holds admission policies (see PolicySet)
    from webhook.cel import mutating as cel_mutating
    from webhook.cel import validating as cel_validating




def _reads_object(group_settings: policy_settings.GroupSettings, extra: policy_settings.Exemptions | None) -> bool:
    exemptions = [group_settings.exemptions] + ([extra] if extra is not None else [])
    return (
        group_settings.scope.objectSelector is not None
        or any(e.objectLabels or e.annotations or e.runtimeClassNames for e in exemptions)
        or (isinstance(group_settings, policy_settings.MutatingGroupSettings) and bool(group_settings.optOutAnnotation))
    )


def _may_write(policy: registry.Policy, reads: Callable[[str], bool]) -> bool:
    """Whether ``policy``, a mutation, may write a path ``reads`` picks out of its write set (paths
    relative to the pod for a pod-spec mutation). A mutation of the whole object, or one without a
    declared write set, may write anything."""
    if not policy.pod_spec or policy.writes is None:
        return True
    return any(reads(path) for path in policy.writes)


CEL_GROUP = "cel"
"""The group of ValidatingAdmissionPolicies (``/validate/cel``)."""


class PolicySet:
    """An immutable, compiled policy configuration; the server swaps whole sets on reload."""

    def __init__(
        self, config: files.PolicyConfig, *, catalog: registry.Registry = registry.REGISTRY, planned: bool = True,
        kubernetes_minor: int | None = None,
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.kubernetes_minor = kubernetes_minor
        """The API server version (1.N) whose checks admission policies' expressions pass at load
        (:func:`webhook.cel.loading.load`); ``None``: the newest libraries there are."""
        self.planned = planned
        """Run the compiled plans (:mod:`webhook.plan`); ``False`` runs every instance one by one,
        the reference the plans are tested against."""
        instances: list[Instance] = []
        gates: dict[tuple[int, int], int] = {}
        calls: dict[tuple[str, Any], int] = {}
        for group in sorted(catalog.groups.values(), key=lambda g: (g.order, g.name)):
            group_settings = config.groups.get(group.name)
            if group_settings is None:
                continue
            for mode, params in group.modes(group_settings):
                for policy in catalog.in_group(group.name):
                    override = group_settings.policies.get(policy.id)
                    resolved = mode
                    if override is not None and override.mode is not None:
                        if override.mode == "off":
                            continue
                        # The override replaces the group's primary mode; extra warn/audit passes
                        # (Pod Security's stricter levels) keep their own mode.
                        if mode == group_settings.mode:
                            resolved = override.mode
                    if resolved == "off":
                        continue
                    if policy.active is not None and not policy.active(params):
                        continue
                    extra = override.exemptions if override is not None else None
                    gate = gates.setdefault((id(group_settings), id(extra)), len(gates))
                    exemptions = (group_settings.exemptions,) + ((extra,) if extra is not None else ())
                    reads_object = _reads_object(group_settings, extra)
                    result_key = policy.result_key(params) if policy.result_key else plan.params_key(params)
                    call = calls.setdefault((policy.id, result_key), len(calls))
                    instances.append(
                        Instance(
                            policy=policy,
                            group=group,
                            mode=resolved,
                            workload_mode=group_settings.workloadMode,
                            params=params,
                            settings=group_settings,
                            failure_mode=(override.failureMode if override and override.failureMode else None)
                            or group_settings.failureMode,
                            exemptions=exemptions,
                            gate=gate,
                            reads_object=reads_object,
                            call=call,
                            reads_runtime_class=any(e.runtimeClassNames for e in exemptions),
                            writes_metadata=_may_write(policy, lambda path: path.startswith("metadata")),
                            writes_spec=_may_write(policy, lambda path: path in ("spec", "spec.runtimeClassName")),
                        )
                    )
        self.instances: tuple[Instance, ...] = tuple(instances)
        self.kinds: frozenset[str] = frozenset(k for i in instances for k in i.policy.kinds)
        self.cel: cel_validating.PolicySet = cast("cel_validating.PolicySet", _NO_ADMISSION_POLICIES)
        """ValidatingAdmissionPolicies with their bindings and params: the validating ``cel`` group."""
        self.cel_mutating: cel_mutating.PolicySet = cast("cel_mutating.PolicySet", _NO_ADMISSION_POLICIES)
        """MutatingAdmissionPolicies with their bindings and params: the mutating ``cel`` group."""
        if config.documents:
            # The CEL runtime only when the files hold documents besides PolicyConfigs: a set
            # without admission policies never needs it (10 MB a worker).
            from webhook.cel import loading as cel_loading

            problems: list[str] = []
            loaded = cel_loading.load(config.documents, problems, kubernetes_minor=kubernetes_minor)
            self.cel, self.cel_mutating = loaded.validating, loaded.mutating
            if problems:
                raise errors.PolicyConfigError("\n".join(problems))
        self._index: dict[tuple[str, str, str, str], tuple[Instance, ...]] = {}
        self._plans: dict[tuple[str, str, str], plan.Validation | None] = {}
        self._copies: dict[tuple[str, str, str], CopyTree | None] = {}

    @classmethod
    def empty(cls) -> PolicySet:
        return cls(files.PolicyConfig(groups={}))

    def groups(self, chain: model.Chain) -> list[str]:
        """Names of the groups of ``chain`` (each served on ``/mutate/<group>`` or ``/validate/<group>``).

        ``cel`` comes first when the files hold admission policies of the chain: the API server runs
        its admission policy plugins before the webhooks of the same kind."""
        built_in = [
            g.name
            for g in sorted(self.catalog.groups.values(), key=lambda g: (g.order, g.name))
            if g.chain == chain
        ]
        cel = self.cel if chain == "validating" else self.cel_mutating
        return ([CEL_GROUP] if not cel.empty else []) + built_in

    def select(
        self, chain: model.Chain, group: str | None, kind: str, operation: str
    ) -> tuple[Instance, ...]:
        key = (chain, group or "", kind, operation)
        found = self._index.get(key)
        if found is None:
            found = tuple(
                i
                for i in self.instances
                if i.policy.chain == chain
                and (group is None or i.group.name == group)
                and kind in i.policy.kinds
                and operation in i.policy.operations
            )
            if kind in self.kinds:  # bounded: never cache attacker-chosen kinds
                self._index[key] = found
        return found

    def validation(self, group: str | None, kind: str, operation: str) -> plan.Validation | None:
        """The compiled validating plan for ``group`` (``None``: the whole chain) on ``kind`` and
        ``operation``; ``None`` when no check applies. Compiled on first use."""
        key = (group or "", kind, operation)
        try:
            return self._plans[key]
        except KeyError:
            pass
        compiled = plan.compile_validation(self.select("validating", group, kind, operation), kind=kind)
        if kind in self.kinds:  # bounded, as in select
            self._plans[key] = compiled
        return compiled

    def copy_tree(self, group: str | None, kind: str, operation: str) -> CopyTree | None:
        """What a mutating pass over ``kind`` copies of the object (:func:`copy_along`): the pod's
        ``spec`` and ``metadata`` and every path its mutations write (:attr:`registry.Policy.writes`),
        from the root; ``None`` copies the whole object (a mutation without a declared write set,
        a kind without a pod, or ``planned=False``, the reference this is tested against)."""
        key = (group or "", kind, operation)
        try:
            return self._copies[key]
        except KeyError:
            pass
        holder = workloads.TEMPLATE_HOLDERS.get(kind)
        instances = self.select("mutating", group, kind, operation)
        tree: CopyTree | None = None
        if self.planned and holder is not None and all(i.policy.writes is not None for i in instances):
            tree = {}
            node = tree
            for part in holder:
                node = node.setdefault(part, {})
            for path in ("spec", "metadata", *(p for i in instances for p in i.policy.writes or ())):
                below = node
                for part in path.replace("[*]", ".*").split("."):
                    below = below.setdefault(part, {})
        if kind in self.kinds:  # bounded, as in select
            self._copies[key] = tree
        return tree


CopyTree = dict[str, "CopyTree"]
"""Keys (``*``: every item of a list) down to the maps and lists a mutating pass may change."""


def copy_along(value: Any, tree: CopyTree) -> Any:
    """``value`` with the maps and lists on ``tree``'s paths copied and everything else shared: what
    the mutations never change stays the object as sent, so copying costs what they write, not the
    object's size, and the diff passes over shared parts by identity (``is``)."""
    if isinstance(value, dict):
        out = dict(value)
        for key, below in tree.items():
            child = out.get(key)
            if isinstance(child, (dict, list)):
                out[key] = copy_along(child, below)
        return out
    if isinstance(value, list):
        items = tree.get("*")
        if items is None:
            return list(value)
        return [copy_along(item, items) if isinstance(item, (dict, list)) else item for item in value]
    return value


def evaluate(
    policy_set: PolicySet,
    obj: Any,
    ctx: model.ReviewContext,
    *,
    chain: model.Chain,
    group: str | None = None,
) -> review.Outcome:
    """Run one chain (optionally one group of it) over ``obj``; never raises for a policy's fault.

    Raises :class:`~webhook.errors.BadReview` when the object is nested too deeply for the
    engine's own walks (the JSON patch diff recurses once per level). The server refuses such
    bodies before parsing them (:class:`review.Limits`); this keeps the offline ``review`` command,
    which has no such limit, from failing with a bare ``RecursionError``.
    """
    try:
        if chain == "mutating":
            return _mutate(policy_set, obj, ctx, group)
        return _validate(policy_set, obj, ctx, group)
    except RecursionError:
        # A policy's own RecursionError is caught per policy (its failureMode decides); this one
        # comes from the engine's copy or diff of the object.
        raise errors.BadReview(
            "request.object: nested too deeply to evaluate (beyond Python's recursion limit); "
            "Kubernetes objects are rarely deeper than 30 levels"
        ) from None


def _skip_subresource(ctx: model.ReviewContext) -> bool:
    # Like Pod Security admission: subresource writes (status, binding, exec, ...) do not change
    # what the policies look at; ``pods/ephemeralcontainers`` does, and is evaluated as an update.
    return bool(ctx.sub_resource) and ctx.sub_resource != "ephemeralcontainers"


def applies(inst: Instance, ctx: model.ReviewContext, obj: Any, pod: model.PodTarget | None) -> bool:
    """Scope and exemptions, cheapest first: the request, then the object, then the access review.
    Public: the audit asks it of every policy, as the server does per review."""
    return (
        _request_applies(inst, ctx)
        and (not inst.reads_object or _object_applies(inst, obj, pod))
        and _review_applies(inst, ctx)
    )


def _review_applies(inst: Instance, ctx: model.ReviewContext) -> bool:
    return not any(e.accessReview is not None and scope.exempt_by_access_review(e, ctx) for e in inst.exemptions)


def _request_applies(inst: Instance, ctx: model.ReviewContext) -> bool:
    """Scope and exemptions as far as the request alone decides them (shared by the gate)."""
    if not scope.request_in_scope(inst.settings.scope, ctx):
        return False
    return not any(scope.exempt_request(e, ctx) for e in inst.exemptions)


def _object_applies(inst: Instance, obj: Any, pod: model.PodTarget | None) -> bool:
    """The parts that read the object: object selector, object exemptions, the opt-out annotation."""
    if not scope.object_in_scope(inst.settings.scope, obj):
        return False
    if any(scope.exempt_object(e, obj, pod) for e in inst.exemptions):
        return False
    settings = inst.settings
    return not (
        isinstance(settings, policy_settings.MutatingGroupSettings)
        and scope.opted_out(settings.optOutAnnotation, obj, pod)
    )


def _validate(policy_set: PolicySet, obj: Any, ctx: model.ReviewContext, group: str | None) -> review.Outcome:
    outcome = review.Outcome()
    if group in (None, CEL_GROUP) and not policy_set.cel.empty:
        _run_cel(policy_set.cel, obj, ctx, outcome)
        if not outcome.allowed or group == CEL_GROUP:
            return outcome
    if _skip_subresource(ctx):
        return outcome
    # DELETE carries the object being deleted in oldObject; policies that care about deletes see it.
    target_obj = ctx.old_object if ctx.operation == "DELETE" else obj
    if not isinstance(target_obj, dict):
        return outcome
    if policy_set.planned:
        compiled = policy_set.validation(group, ctx.kind, ctx.operation)
        if compiled is None:
            return outcome
        hits = _collect(compiled, target_obj, ctx)
        if hits is not None:
            _conclude(compiled, hits, outcome)
            return outcome
        # A check raised: the plain path below decides, instance by instance, per failureMode.
    instances = policy_set.select("validating", group, ctx.kind, ctx.operation)
    if not instances:
        return outcome
    pod = workloads.pod_target(target_obj, ctx.kind)
    is_workload = ctx.kind != "Pod"
    buckets: dict[tuple[str, str, int], tuple[Instance, model.Mode, list[registry.Finding]]] = {}
    gates: dict[int, bool] = {}
    results: dict[int, list[model.Violation]] = {}
    for inst in instances:
        if inst.policy.pod_spec and pod is None:
            continue
        open_gate = gates.get(inst.gate)
        if open_gate is None:
            open_gate = gates[inst.gate] = applies(inst, ctx, target_obj, pod)
        if not open_gate:
            continue
        mode = inst.mode
        if mode == "enforce" and is_workload and inst.policy.pod_spec and inst.workload_mode:
            mode = inst.workload_mode
        if mode == "off":
            continue
        violations = results.get(inst.call)
        if violations is None:
            try:
                violations = inst.policy.fn(pod if inst.policy.pod_spec else target_obj, ctx, inst.params)
            except Exception as exc:  # noqa: BLE001 - a policy bug must become an answer, not a 500
                _policy_failed(outcome, inst, exc)
                continue
            results[inst.call] = violations
        if violations:
            key = (inst.group.name, mode, id(inst.params))
            bucket = buckets.setdefault(key, (inst, mode, []))
            bucket[2].append(registry.Finding(inst.policy, tuple(violations)))
    denials: list[str] = []
    for inst, mode, findings in buckets.values():
        _route(outcome, denials, inst, mode, inst.group.render(findings, mode, inst.params))
    if denials:
        _deny(outcome, "; ".join(denials))
    return outcome


Hit = tuple[int, int, registry.Finding]
"""A finding of one step: (step order, bucket, finding)."""


def _collect(compiled: plan.Validation, obj: dict[str, Any], ctx: model.ReviewContext) -> list[Hit] | None:
    """What every step of ``compiled`` finds in ``obj``; ``None`` when a check raised (the plain
    path then runs, so a failing check is answered exactly as it always was)."""
    hits: list[Hit] = []
    gates: dict[int, bool] = {}
    pod = workloads.pod_target(obj, ctx.kind)
    try:
        if pod is not None:
            for batch in compiled.batches:
                inst = batch.gate
                open_gate = gates.get(inst.gate)
                if open_gate is None:
                    open_gate = gates[inst.gate] = applies(inst, ctx, obj, pod)
                if not open_gate:
                    continue
                for index, batch_found in batch.run(pod, ctx).items():
                    found = tuple(batch_found)
                    for step in batch.entries[index]:
                        hits.append((step.order, step.bucket, registry.Finding(step.inst.policy, found)))
        if compiled.singles:
            results: list[list[model.Violation] | None] = [None] * compiled.calls
            for step in compiled.singles:
                inst = step.inst
                if inst.policy.pod_spec and pod is None:
                    continue
                open_gate = gates.get(inst.gate)
                if open_gate is None:
                    open_gate = gates[inst.gate] = applies(inst, ctx, obj, pod)
                if not open_gate:
                    continue
                violations = results[step.call]
                if violations is None:
                    target = pod if inst.policy.pod_spec else obj
                    violations = results[step.call] = inst.policy.fn(target, ctx, inst.params)
                if violations:
                    hits.append((step.order, step.bucket, registry.Finding(inst.policy, tuple(violations))))
    except Exception:  # noqa: BLE001 - the plain path answers it
        return None
    return hits


def _conclude(compiled: plan.Validation, hits: list[Hit], outcome: review.Outcome) -> None:
    """The findings as the plain path words them: one message per bucket, buckets in the order of
    their first finding, findings in instance order; enforce denies, warn warns, audit annotates."""
    if not hits:
        return
    hits.sort(key=_first)
    by_bucket: dict[int, list[registry.Finding]] = {}
    for _order, index, finding in hits:
        found = by_bucket.get(index)
        if found is None:
            by_bucket[index] = [finding]
        else:
            found.append(finding)
    denials: list[str] = []
    worded: dict[Any, str] = {}
    for index, findings in by_bucket.items():
        bucket = compiled.buckets[index]
        inst, mode = bucket.inst, bucket.mode
        key = (bucket.render_key, tuple((f.policy.id, id(f.violations)) for f in findings))
        message = worded.get(key)
        if message is None:
            message = worded[key] = inst.group.render(findings, mode, inst.params)
        _route(outcome, denials, inst, mode, message)
    if denials:
        _deny(outcome, "; ".join(denials))


def _route(outcome: review.Outcome, denials: list[str], inst: Instance, mode: str, message: str) -> None:
    """Where a group's message goes, by its mode: enforce denies (``denials`` are joined by the
    caller), warn warns, audit is appended to the group's ``<group>-violations`` annotation."""
    if mode == "enforce":
        denials.append(message)
    elif mode == "warn":
        outcome.warnings.append(message)
    elif mode == "audit":
        audit_key = f"{inst.group.name}-violations"
        previous = outcome.audit.get(audit_key)
        outcome.audit[audit_key] = f"{previous}; {message}" if previous else message


def _first(hit: Hit) -> int:
    return hit[0]


class _NoAdmissionPolicies:
    """What ``PolicySet.cel`` and ``cel_mutating`` hold for files without admission policies: the
    empty sets, as far as anything outside the CEL package reads them."""

    policies: tuple[Any, ...] = ()
    bindings: tuple[Any, ...] = ()
    pairs: tuple[Any, ...] = ()
    empty = True

    def candidates(self, ctx: model.ReviewContext) -> tuple[Any, ...]:
        return ()


_NO_ADMISSION_POLICIES = _NoAdmissionPolicies()


def _run_cel(cel: cel_validating.PolicySet, obj: Any, ctx: model.ReviewContext, outcome: review.Outcome) -> None:
    from webhook.cel import validating as cel_validating  # noqa: PLC0415 - only with admission policies

    """ValidatingAdmissionPolicies: the first denial is the answer (with its reason and code), every
    warning and audit annotation is kept. Audit keys are made valid for a webhook answer, where the
    API server prefixes them with the webhook's name: ``validation_failure`` and ``<policy>.<key>``."""
    try:
        verdict = cel_validating.evaluate(cel, obj, ctx)
    except Exception as exc:  # noqa: BLE001 - a bug here must become an answer, not a 500
        outcome.failed_policies.append(CEL_GROUP)
        _deny(outcome, f"internal error while evaluating admission policies: {type(exc).__name__}: {exc}")
        return
    outcome.warnings.extend(verdict.warnings)
    for key, value in verdict.audit.items():
        prefix, _, name = key.rpartition("/")
        webhook_key = name if prefix == cel_validating.FAILURE_ANNOTATION.rpartition("/")[0] else f"{prefix}.{name}"
        outcome.audit[webhook_key] = value
    outcome.decided_by.extend(f"{policy}/{binding}" for policy, binding in verdict.decided)
    if verdict.denial is not None:
        outcome.allowed = False
        outcome.message = verdict.denial.message
        outcome.code = verdict.denial.code
        outcome.reason = verdict.denial.reason


def _deny(outcome: review.Outcome, message: str) -> None:
    outcome.allowed = False
    outcome.code = 403
    outcome.reason = "Forbidden"
    outcome.message = f"{outcome.message}; {message}" if outcome.message else message
    # A denied request carries the denial, not a pile of warnings (STYLE.md rule 6).
    outcome.warnings.clear()


def _policy_failed(outcome: review.Outcome, inst: Instance, exc: BaseException) -> None:
    outcome.failed_policies.append(inst.policy.id)
    text = f'policy "{inst.policy.id}" failed to evaluate: {type(exc).__name__}: {exc}'
    if inst.failure_mode == "deny":
        _deny(outcome, f"{text} (failureMode deny; fix the object or ask the platform team)")
    else:
        outcome.warnings.append(f"{text}; allowed because its failureMode is allow")


def _clone(obj: Any) -> Any:
    """A deep copy; orjson round-trip is several times faster than copy.deepcopy for JSON data."""
    try:
        return orjson.loads(orjson.dumps(obj))
    except (TypeError, orjson.JSONEncodeError):  # integers beyond 64 bits, nesting beyond 255 levels
        return _copy_tree(obj)


def _copy_tree(obj: Any) -> Any:
    """A deep copy of nested dicts and lists that does not recurse, so no depth can exhaust the stack.

    ``copy.deepcopy`` takes two Python frames per level and raised ``RecursionError`` from about
    490 levels; the server refuses such bodies (``review.Limits.max_depth``), but the offline
    ``review`` command hands the engine whatever a file holds. Strings, numbers, booleans and
    ``None`` are immutable and shared; anything else that is not JSON goes to ``copy.deepcopy``.
    """
    if not isinstance(obj, (dict, list)):
        return copy.deepcopy(obj)
    root = obj.copy()
    stack: list[dict[str, Any] | list[Any]] = [root]
    while stack:
        node = stack.pop()
        pairs: list[tuple[Any, Any]] = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        for key, value in pairs:
            if isinstance(value, (dict, list)):
                node[key] = child = value.copy()
                stack.append(child)
            elif not isinstance(value, (str, int, float, bool)) and value is not None:
                node[key] = copy.deepcopy(value)
    return root


def _mutate(policy_set: PolicySet, obj: Any, ctx: model.ReviewContext, group: str | None) -> review.Outcome:
    """MutatingAdmissionPolicies first (as the API server runs them before mutating webhooks),
    then the built-in groups on their result, then the IfNeeded policies again if the built-in
    groups changed the object; the answer is one patch from the object as sent."""
    outcome = review.Outcome()
    # DELETE and CONNECT are never mutated: there is no object to change (oldObject is read-only).
    if ctx.operation not in ("CREATE", "UPDATE") or not isinstance(obj, dict):
        return outcome
    maps = policy_set.cel_mutating if group in (None, CEL_GROUP) else None
    current: dict[str, Any] = obj
    first = None
    if maps is not None and not maps.empty:
        from webhook.cel import mutating as cel_mutating  # noqa: PLC0415 - only with admission policies

        first = cel_mutating.apply(maps, obj, ctx)
        if not _took_maps(first, outcome):
            return outcome
        current = first.object if first.object is not None else obj
    if group != CEL_GROUP and not _skip_subresource(ctx):
        current = _run_built_in(policy_set, current, ctx, group, outcome)
        if not outcome.allowed:
            return outcome
    if first is not None and maps is not None and first.reinvocation.needed(current):
        again = cel_mutating.apply(maps, current, ctx, reinvocation=first.reinvocation)
        if not _took_maps(again, outcome):
            return outcome
        current = again.object if again.object is not None else current
    if current is not obj:
        outcome.patch = patch.diff(obj, current)
    return outcome


def _took_maps(result: cel_mutating.Result, outcome: review.Outcome) -> bool:
    """Fold one pass of the mutating policies into ``outcome``; False when it denied."""
    outcome.decided_by.extend(f"{policy}/{binding}" for policy, binding in result.changed)
    if result.denial is None:
        return True
    outcome.allowed = False
    outcome.message = result.denial.message
    outcome.code = result.denial.code
    outcome.reason = result.denial.reason
    outcome.decided_by.append(f"{result.denial.policy}/{result.denial.binding}")
    return False


def _run_built_in(
    policy_set: PolicySet, obj: dict[str, Any], ctx: model.ReviewContext, group: str | None, outcome: review.Outcome
) -> dict[str, Any]:
    """The built-in mutating groups on ``obj``: a changed copy, or ``obj`` itself when nothing applies."""
    instances = policy_set.select("mutating", group, ctx.kind, ctx.operation)
    if instances and ctx.operation == "UPDATE" and _template_unchanged(obj, ctx):
        # Changing a workload's pod template starts a rollout. An update that leaves the template
        # alone (scaling, a label on the Deployment, a policy change since it was created) must
        # not restart every Pod because a default was added since.
        instances = tuple(i for i in instances if not i.policy.pod_spec)
    if not instances:
        return obj
    skipped: set[str] = set()
    tree = policy_set.copy_tree(group, ctx.kind, ctx.operation)
    while True:
        mutated: dict[str, Any] = _clone(obj) if tree is None else copy_along(obj, tree)
        restart = _run_mutations(instances, mutated, ctx, outcome, skipped)
        if not restart:
            break
    if outcome.allowed:
        _report_advisory(instances, mutated, ctx, outcome, tree)
    return mutated


def _template_unchanged(obj: dict[str, Any], ctx: model.ReviewContext) -> bool:
    if ctx.kind == "Pod" or not isinstance(ctx.old_object, dict):
        return False
    new, old = workloads.pod_target(obj, ctx.kind), workloads.pod_target(ctx.old_object, ctx.kind)
    return new is not None and old is not None and new.holder == old.holder


class _Pass:
    """One run of the mutations over one copy: the pod target and the gates decided so far.

    The pod target holds live references into ``mutated``, so it stays valid while pod-spec
    mutations edit it in place; an object-level mutation may restructure the object, so the target
    is recomputed after one. What the request alone decides of a gate is decided once per pass.
    """

    __slots__ = ("ctx", "gates", "metadata_writes", "mutated", "objects", "reviews", "spec_writes", "_pod",
                 "_pod_known")

    def __init__(self, mutated: dict[str, Any], ctx: model.ReviewContext) -> None:
        self.mutated = mutated
        self.ctx = ctx
        self.gates: dict[int, bool] = {}
        self.reviews: dict[int, bool] = {}
        self.objects: dict[int, tuple[int, int, bool]] = {}
        """Per gate: its object-reading parts' decision, with the counts of writes it was made after."""
        self.metadata_writes = 0
        """Mutations run so far that may have changed labels or annotations (:attr:`Instance.writes_metadata`)."""
        self.spec_writes = 0
        """... and the pod's ``runtimeClassName`` (:attr:`Instance.writes_spec`)."""
        self._pod: model.PodTarget | None = None
        self._pod_known = False

    def pod(self) -> model.PodTarget | None:
        if not self._pod_known:
            self._pod = workloads.pod_target(self.mutated, self.ctx.kind)
            self._pod_known = True
        return self._pod

    def wrote(self, inst: Instance) -> None:
        """``inst``'s mutation ran: what it may have changed is re-read by the gates that read it."""
        if not inst.policy.pod_spec:  # it may have restructured the object: find the pod again
            self._pod_known = False
        if inst.writes_metadata:
            self.metadata_writes += 1
        if inst.writes_spec:
            self.spec_writes += 1

    def targets(self, inst: Instance) -> tuple[bool, model.PodTarget | None]:
        """Whether ``inst`` applies to this copy, and the pod target to hand it."""
        ctx, pod = self.ctx, self.pod()
        # A running Pod's spec is immutable: pod-spec mutations apply to Pods only on CREATE;
        # pod templates of workloads are mutated on CREATE and UPDATE.
        if inst.policy.pod_spec and (pod is None or (ctx.kind == "Pod" and ctx.operation != "CREATE")):
            return False, pod
        request_gate = self.gates.get(inst.gate)
        if request_gate is None:
            request_gate = self.gates[inst.gate] = _request_applies(inst, ctx)
        if not request_gate:
            return False, pod
        if inst.reads_object and not self._object_applies(inst, pod):
            return False, pod
        reviewed = self.reviews.get(inst.gate)
        if reviewed is None:
            reviewed = self.reviews[inst.gate] = _review_applies(inst, ctx)
        return reviewed, pod

    def _object_applies(self, inst: Instance, pod: model.PodTarget | None) -> bool:
        """:func:`_object_applies`, re-decided only after a mutation that may have changed what it
        reads: the declared write sets (which the scoped copy relies on too, and tests hold every
        mutation to) say which. Equal inputs give equal decisions, so the decision is the one a
        fresh look would make."""
        spec_writes = self.spec_writes if inst.reads_runtime_class else 0
        known = self.objects.get(inst.gate)
        if known is not None and known[0] == self.metadata_writes and known[1] == spec_writes:
            return known[2]
        applies = _object_applies(inst, self.mutated, pod)
        self.objects[inst.gate] = (self.metadata_writes, spec_writes, applies)
        return applies


def _run_mutations(
    instances: tuple[Instance, ...],
    mutated: dict[str, Any],
    ctx: model.ReviewContext,
    outcome: review.Outcome,
    skipped: set[str],
) -> bool:
    """Apply enforce-mode mutations in order; ``True`` means start again from a fresh copy.

    A mutation that raises unexpectedly may have left ``mutated`` half-changed; with failureMode
    ``allow`` the chain is re-run from the original without it, so the patch never carries a
    partial edit. (This path is rare; the normal path copies the object once.)
    """
    state = _Pass(mutated, ctx)
    for inst in instances:
        if inst.mode != "enforce" or inst.policy.id in skipped:
            continue
        applies, pod = state.targets(inst)
        if not applies:
            continue
        try:
            inst.policy.fn(pod if inst.policy.pod_spec else mutated, ctx, inst.params)
        except errors.MutationRejected as exc:
            _deny(outcome, f"{inst.policy.id}: {exc}")
            return False
        except Exception as exc:  # noqa: BLE001 - becomes an answer per failureMode
            _policy_failed(outcome, inst, exc)
            if not outcome.allowed:
                return False
            skipped.add(inst.policy.id)
            return True
        state.wrote(inst)
    return False


def _report_advisory(
    instances: tuple[Instance, ...], mutated: dict[str, Any], ctx: model.ReviewContext, outcome: review.Outcome,
    tree: CopyTree | None,
) -> None:
    """warn/audit-mode mutations: run on a scratch copy (copied as the pass was: ``tree``) and
    report what they would change."""
    for inst in instances:
        if inst.mode not in ("warn", "audit"):
            continue
        scratch = _clone(mutated) if tree is None else copy_along(mutated, tree)
        applies, pod = _Pass(scratch, ctx).targets(inst)
        if not applies:
            continue
        try:
            inst.policy.fn(pod if inst.policy.pod_spec else scratch, ctx, inst.params)
        except errors.MutationRejected as exc:
            text = f"{inst.policy.id}: {exc}"
        except Exception as exc:  # noqa: BLE001
            _policy_failed(outcome, inst, exc)
            continue
        else:
            ops = patch.diff(mutated, scratch)
            if not ops:
                continue
            paths = ", ".join(op["path"] for op in ops[:5]) + (", ..." if len(ops) > 5 else "")
            text = f"{inst.policy.id} would change {len(ops)} field(s): {paths}"
        if inst.mode == "warn":
            outcome.warnings.append(text)
        else:
            key = f"{inst.group.name}-changes"
            outcome.audit[key] = f"{outcome.audit[key]}; {text}" if key in outcome.audit else text
