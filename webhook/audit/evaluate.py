"""One object in, its results out: the validating chain as the server runs it, one finding per rule.

Each object becomes the CREATE AdmissionReview the API server would send for it today
(:func:`webhook.offline.wrap`, parsed by :func:`webhook.review.parse`, the requester given by
``--user``/``--group``), with its namespace's labels and object. What the server returns as one
answer, the audit keeps apart, because a report has one result per policy and rule:

* built-in groups: the same instances, gates and modes as :func:`webhook.engine.evaluate` (a gate is
  decided by the engine's own function, so scopes and exemptions are the server's); a check that
  breaks in several modes (Pod Security's baseline checks at enforce, warn and audit) is reported
  once, at the strongest, with the message the server would render for that mode;
* ValidatingAdmissionPolicies: each (policy, binding) is evaluated on its own by
  :func:`webhook.cel.validating.evaluate`, so every binding's decision is seen. The server stops at
  the first denial; an audit wants all of them, so one run shows everything there is to fix.

An object as listed is not quite what a create would carry: ``status``, ``resourceVersion``,
``generation`` and ``managedFields`` are dropped, as the API server resets or refuses them on create.

A workload is evaluated twice: as itself, and its pod template as the Pod it would create now
(``subject: pods``). Both are reported on the workload, the stronger result kept per rule, so a
Deployment whose Pods the default policies would refuse says ``fail`` although the Deployment
itself is only warned about (``workloadMode``). The Pod view is also the object's *signature*:
:mod:`webhook.audit.owners` folds a Pod into its owner when both break exactly the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from webhook import engine, errors, offline, review
from webhook.audit import model
from webhook.cel import matching
from webhook.cel import validating as cel_validating
from webhook.policy import model as policy_model
from webhook.policy import registry, workloads

Signature = frozenset[tuple[Any, ...]]
_Step = tuple[engine.Instance, str, str, bool, int, int, policy_model.Mode, int]
"""(instance, group, rule, pod_spec, gate, call, mode, mode rank): one instance, prepared per kind."""

_DROPPED_METADATA = frozenset({"resourceVersion", "generation", "managedFields"})
_CEL_CATEGORY = "ValidatingAdmissionPolicy"
_MODE_RANK = {"enforce": 3, "warn": 2, "audit": 1}


def as_created(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj`` as a create would carry it (shallow: :func:`offline.wrap` copies it deeply)."""
    found = {k: v for k, v in obj.items() if k != "status"}
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        found["metadata"] = {k: v for k, v in metadata.items() if k not in _DROPPED_METADATA}
    return found


def template_pod(obj: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    """The Pod a workload's template makes: its template's metadata and spec, named like a Pod its
    controller creates (``generateName: <workload>-``), owned by the workload."""
    if kind == "Pod" or kind not in workloads.TEMPLATE_HOLDERS:
        return None
    target = workloads.pod_target(obj, kind)
    if target is None:
        return None
    ref = model.Ref.of(obj)
    metadata = {k: v for k, v in (target.metadata or {}).items() if k not in ("name", "namespace")}
    metadata["generateName"] = f"{ref.name}-"
    if ref.namespace:
        metadata["namespace"] = ref.namespace
    if ref.uid:
        metadata["ownerReferences"] = [{"apiVersion": ref.api_version, "kind": ref.kind, "name": ref.name,
                                        "uid": ref.uid, "controller": True, "blockOwnerDeletion": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": target.spec}


def rule_of(policy_id: str, group: str) -> str:
    """``privileged`` for ``pod-security.privileged``: the report's policy is the group already."""
    prefix = f"{group}."
    return policy_id[len(prefix):] if policy_id.startswith(prefix) else policy_id


def _category(group: registry.Group) -> str:
    """``Pod Security Standards`` from the group's description (its first clause)."""
    first = re.split(r"[:(,]", group.description, maxsplit=1)[0].strip()
    return first or group.name


def normalize(results: Iterable[model.Result]) -> tuple[model.Result, ...]:
    """One result per (policy, rule), the strongest; a policy that found something has no ``pass``
    or ``skip`` left; sorted by policy, then rule, for stable output."""
    best: dict[tuple[str, str], model.Result] = {}
    for result in results:
        key = (result.policy, result.rule)
        current = best.get(key)
        if current is None or result.strength > current.strength:
            best[key] = result
    decided = {policy for (policy, rule), r in best.items() if rule and r.result not in ("pass", "skip")}
    applied = {policy for (policy, _), r in best.items() if r.result != "skip"}
    kept = [
        r for (policy, rule), r in best.items()
        if not (not rule and policy in decided)
        and not (r.result == "skip" and policy in applied and not rule)
    ]
    return tuple(sorted(kept, key=lambda r: (r.policy, r.rule)))


class Evaluator:
    """Evaluates objects against one policy set, as created now by one requester."""

    def __init__(self, policy_set: engine.PolicySet, *, shape: offline.Shape | None = None) -> None:
        self.policy_set = policy_set
        given = shape or offline.Shape()
        self.shape = offline.Shape(operation="CREATE", username=given.username, groups=given.groups)
        cel = policy_set.cel
        # One single-binding set per (policy, binding), built once: each decision is seen on its own.
        self._single = {
            (policy.name, binding.name): cel_validating.PolicySet(
                policies=(policy,), bindings=(binding,), params=cel.params)
            for policy, binding in cel.pairs
        }
        self._categories = {g.name: _category(g) for g in policy_set.catalog.groups.values()}
        self._plans: dict[str, tuple[_Step, ...]] = {}

    def evaluate(
        self, item: model.Item, namespace: model.Namespace | None = None
    ) -> tuple[tuple[model.Result, ...], Signature]:
        """The results for ``item`` and its signature; raises :class:`model.Problem` for an object
        that cannot be made into a review (the message names it)."""
        obj = as_created(item.object)
        kind = str(obj.get("kind") or "")
        namespaced = item.namespaced
        if namespaced is None:
            metadata = obj.get("metadata")
            namespaced = isinstance(metadata, dict) and bool(metadata.get("namespace"))
        own = self._run(obj, resource=item.resource, namespaced=namespaced, namespace=namespace)
        pod = template_pod(obj, kind)
        if pod is None:
            return normalize(own), _signature(own if kind == "Pod" else ())
        pods = self._run(pod, resource="pods", namespaced=True, namespace=namespace)
        seen_by_pods = [
            r if r.result in ("pass", "skip") else
            model.Result(r.policy, r.rule, r.result, r.mode, f"its Pods: {r.message}", r.category, "pods", r.detail)
            for r in pods
        ]
        return normalize([*own, *seen_by_pods]), _signature(pods)

    # --- one review ------------------------------------------------------------------------------

    def _run(
        self, obj: dict[str, Any], *, resource: str | None, namespaced: bool, namespace: model.Namespace | None
    ) -> list[model.Result]:
        ref = model.Ref.of(obj)
        try:
            document = offline.wrap(obj, source=f"{ref.text()} {ref.uid}", shape=self.shape)
            request = document["request"]
            if resource:
                request["resource"]["resource"] = request["requestResource"]["resource"] = resource
            if not namespaced:
                # A cluster-scoped kind the emulator's table does not know (a custom resource):
                # the request carries no namespace, as the API server sends it.
                request.pop("namespace", None)
                created = request.get("object")
                if isinstance(created, dict) and isinstance(created.get("metadata"), dict):
                    created["metadata"].pop("namespace", None)
            parsed = review.parse(document)
        except errors.WebhookError as exc:
            raise model.Problem(f"{ref.text()}: cannot be reviewed: {exc}") from None
        ctx = parsed.context
        if namespace is not None:
            ctx.namespace_labels = namespace.labels
            ctx.namespace_object = namespace.object
        target = parsed.object
        if target is None:
            return []
        return [*self._cel(target, ctx), *self._built_in(target, ctx)]

    def _plan(self, kind: str) -> tuple[_Step, ...]:
        """The instances that check ``kind`` on CREATE, with what the loop needs of each worked out
        once per kind: group, rule, gate, call, and the mode after ``workloadMode``."""
        plan = self._plans.get(kind)
        if plan is None:
            is_workload = kind != "Pod"
            steps: dict[tuple[str, str, int, int], _Step] = {}
            for inst in self.policy_set.select("validating", None, kind, "CREATE"):
                mode = inst.mode
                if mode == "enforce" and is_workload and inst.policy.pod_spec and inst.workload_mode:
                    mode = inst.workload_mode
                if mode == "off":
                    continue
                group = inst.group.name
                rule = rule_of(inst.policy.id, group)
                # Only the strongest mode of a check matters, and the same call behind the same gate
                # finds the same: Pod Security's audit pass adds nothing its warn pass has not found.
                key = (group, rule, inst.call, inst.gate)
                held = steps.get(key)
                if held is None or _MODE_RANK[mode] > held[7]:
                    steps[key] = (inst, group, rule, inst.policy.pod_spec, inst.gate, inst.call, mode, _MODE_RANK[mode])
            plan = tuple(steps.values())
            if kind in self.policy_set.kinds:  # bounded: only kinds some policy names
                self._plans[kind] = plan
        return plan

    def _built_in(self, obj: dict[str, Any], ctx: policy_model.ReviewContext) -> list[model.Result]:
        """Per check: the strongest mode it breaks in, with the message the server renders for it."""
        plan = self._plan(ctx.kind)
        if not plan:
            return []
        pod = workloads.pod_target(obj, ctx.kind)
        gates: dict[int, bool] = {}
        calls: dict[int, list[policy_model.Violation]] = {}
        applied: dict[str, bool] = {}
        best: dict[tuple[str, str], tuple[int, engine.Instance, policy_model.Mode, list[policy_model.Violation]]] = {}
        found: list[model.Result] = []
        for inst, group, rule, pod_spec, gate_id, call, mode, rank in plan:
            if pod_spec and pod is None:
                continue
            gate = gates.get(gate_id)
            if gate is None:
                # The engine's own decision of scope and exemptions (its private helper: the audit
                # must gate exactly as the server does; see the report on making it public).
                gate = gates[gate_id] = engine.applies(inst, ctx, obj, pod)
            if not gate:
                if group not in applied:
                    applied[group] = False
                continue
            applied[group] = True
            violations = calls.get(call)
            if violations is None:
                try:
                    violations = inst.policy.fn(pod if pod_spec else obj, ctx, inst.params)
                except Exception as exc:  # noqa: BLE001 - a policy bug is a result, not a crash
                    found.append(model.Result(group, rule, "error", None,
                                              f'policy "{inst.policy.id}" failed to evaluate: '
                                              f"{type(exc).__name__}: {exc}", self._categories.get(group, "")))
                    continue
                calls[call] = violations
            if violations:
                held = best.get((group, rule))
                if held is None or rank > held[0]:
                    best[(group, rule)] = (rank, inst, mode, violations)
        for (group, rule), (_, inst, mode, violations) in best.items():
            message = inst.group.render([registry.Finding(inst.policy, tuple(violations))], mode, inst.params)
            detail = tuple(sorted((v.reason, v.path) for v in violations))
            found.append(model.Result(group, rule, "fail" if mode == "enforce" else "warn", mode, message,
                                      self._categories.get(group, ""), "object", detail))
        for group, did in applied.items():
            found.append(model.Result(group, "", "pass" if did else "skip", None,
                                      "" if did else "not in the policy's scope, or exempt",
                                      self._categories.get(group, "")))
        return found

    def _cel(self, obj: dict[str, Any], ctx: policy_model.ReviewContext) -> list[model.Result]:
        cel = self.policy_set.cel
        if cel.empty:
            return []
        found: list[model.Result] = []
        for policy, binding in cel.candidates(ctx):
            if not matching.selectors_match(policy.match_constraints, ctx, obj):
                continue
            if binding.match_resources is not None and not matching.selectors_match(binding.match_resources, ctx, obj):
                continue
            try:
                verdict = cel_validating.evaluate(self._single[(policy.name, binding.name)], obj, ctx)
            except Exception as exc:  # noqa: BLE001 - never raises by contract; a bug is a result
                found.append(model.Result(policy.name, binding.name, "error", None,
                                          f"{type(exc).__name__}: {exc}", _CEL_CATEGORY))
                continue
            found.append(_cel_result(policy.name, binding.name, verdict))
        return found


def _cel_result(policy: str, binding: str, verdict: cel_validating.Verdict) -> model.Result:
    """Deny -> fail (enforce), Warn -> warn, Audit -> warn (audit), nothing -> pass."""
    if verdict.denial is not None:
        return model.Result(policy, binding, "fail", "enforce", verdict.denial.message, _CEL_CATEGORY)
    if verdict.warnings:
        return model.Result(policy, binding, "warn", "warn", "; ".join(verdict.warnings), _CEL_CATEGORY)
    failure = verdict.audit.get(cel_validating.FAILURE_ANNOTATION)
    if failure is not None:
        try:
            message = str(orjson.loads(failure)[0]["message"])
        except (orjson.JSONDecodeError, LookupError, TypeError):
            message = failure
        return model.Result(policy, binding, "warn", "audit", message, _CEL_CATEGORY)
    return model.Result(policy, binding, "pass", None, "", _CEL_CATEGORY)


def _signature(results: Sequence[model.Result]) -> Signature:
    """What the Pods break: (policy, rule, result, mode, violations' reasons and paths)."""
    return frozenset(
        (r.policy, r.rule, r.result, r.mode, r.detail) for r in results if r.result not in ("pass", "skip")
    )
