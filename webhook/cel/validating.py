"""ValidatingAdmissionPolicy evaluation with the API server's semantics and texts.

Follows ``pkg/admission/plugin/policy/validating`` (``dispatcher.go``, ``validator.go``) as recorded
in docs/reference/cel-admission-facts.md:

* per matching (policy, binding) and per param: matchConditions (any ``false`` skips; errors follow
  failurePolicy), then every validation, then the messageExpressions, then auditAnnotations;
* a ``false`` validation is a Deny decision whatever the failurePolicy; an evaluation error is a
  Deny under ``Fail`` and nothing under ``Ignore``; the binding's ``validationActions`` say what a
  Deny decision becomes (the denial, a warning, an audit annotation);
* configuration errors (params not found with ``Deny``, a namespaced paramRef on a cluster-scoped
  object) deny under ``Fail`` whatever the actions;
* the first denial decides the answer (message, reason, HTTP code); all warnings and audit
  annotations are kept. The API server's order of policies comes from a Go map; ours is by policy
  name, then binding name, so answers are reproducible.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import orjson

from webhook.cel import batch, documents, k8s_authz, matching, pairing, params, runtime
from webhook.cel import reads as reads_module
from webhook.policy import model

FAILURE_ANNOTATION = "validation.policy.admission.k8s.io/validation_failure"
MAX_MESSAGE_BYTES = 5 * 1024
MAX_AUDIT_VALUE_BYTES = 10 * 1024
REASON_CODES = {"Forbidden": 403, "Unauthorized": 401, "RequestEntityTooLarge": 413, "Invalid": 422}


@dataclasses.dataclass(frozen=True, slots=True)
class Denial:
    """An admission policy's refusal of a request (validating or mutating): the answer's message,
    reason and code, and which policy and binding decided."""

    message: str
    reason: str
    code: int
    policy: str
    binding: str
    causes: tuple[str, ...] = ()
    """Mutating policies: every policy error of the request (``status.details.causes``), the first
    one included. Validating policies answer with the first denial only."""


@dataclasses.dataclass(slots=True)
class Verdict:
    """What the validating policies decided for one request."""

    denial: Denial | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)
    audit: dict[str, str] = dataclasses.field(default_factory=dict)
    """Audit annotations with the API server's keys (``validation.policy.admission.k8s.io/...``,
    ``<policy>/<key>``)."""
    decided: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    """(policy, binding) pairs that denied, warned or audited, for logs and metrics."""


class _Decision:
    """A Deny decision of one validation (or of a condition, an audit annotation, a configuration).

    A failed validation's message is computed when first read: only the first denial of a review,
    its warnings and its first audit failure are ever shown (``dispatcher.go`` answers with
    ``deniedDecisions[0]``), so a Pod failing five Deny policies evaluates one messageExpression,
    not five. Each would give the same text whenever asked: CEL has no side effects."""

    __slots__ = ("_evaluation", "_message", "_validation", "deny", "index", "reason")

    def __init__(
        self, deny: bool, message: str | None, reason: str = "", index: int = 0, *,
        validation: documents.Validation | None = None, evaluation: _Evaluation | None = None,
    ) -> None:
        self.deny, self.reason, self.index = deny, reason, index
        self._message, self._validation, self._evaluation = message, validation, evaluation

    @property
    def message(self) -> str:
        if self._message is None:
            assert self._validation is not None and self._evaluation is not None  # noqa: S101 - set together
            self._message = _message(self._validation, self._evaluation)
        return self._message


_Prepared = tuple[documents.ValidatingPolicy, documents.Binding, bool,
                  tuple[documents.ValidatingPolicy, documents.Binding, Sequence[Any]] | None]
"""A candidate pair, whether it has selectors to check, and its entry of the selected when it
has no params."""


class _Selection(NamedTuple):
    """The pairs a review selects, when the request alone decides it (no selectors, no params)."""

    selected: tuple[tuple[documents.ValidatingPolicy, documents.Binding, Sequence[Any]], ...]
    """(policy, binding, its params: :data:`webhook.cel.params.NO_PARAMS`), in evaluation order."""
    sharing: tuple[documents.ValidatingPolicy, ...]
    """Those of the policies that share one activation (no composited variables)."""


_SHARED_DECLARATIONS = runtime.Declarations()
"""What a policy without ``paramKind`` is compiled with: the only policies whose expressions are
batched (a param differs per binding)."""


@dataclasses.dataclass(frozen=True)
class PolicySet(pairing.Pairing[documents.ValidatingPolicy, documents.Binding]):
    """The validating policies of a policy set with their bindings and param objects."""

    batched: bool = True
    """Whether the expressions of the policies sharing an activation run as batches
    (:mod:`webhook.cel.batch`); False runs each alone (the reference the tests compare with)."""
    batches: batch.Batches = dataclasses.field(
        default_factory=lambda: batch.Batches(_SHARED_DECLARATIONS), init=False, repr=False, compare=False)
    message_batches: batch.Batches = dataclasses.field(
        default_factory=lambda: batch.Batches(dataclasses.replace(_SHARED_DECLARATIONS, authorizer=False)),
        init=False, repr=False, compare=False)
    asks_authorizer: bool = dataclasses.field(init=False, repr=False, compare=False)
    """Whether any expression mentions ``authorizer``; when none does, reviews skip binding the
    requester's authorizer into the activation (two values and a function a review)."""
    warned: frozenset[str] = dataclasses.field(init=False, repr=False, compare=False)
    """Policies with a Warn binding: every failure's message is shown (in a warning)."""
    reads: reads_module.Reads = dataclasses.field(init=False, repr=False, compare=False)
    """What the expressions together can read of the per-review variables: a review converts only
    that into CEL values (:mod:`webhook.cel.reads`)."""
    _prepared: dict[int, tuple[Any, list[_Prepared], _Selection | None]] = dataclasses.field(
        init=False, repr=False, compare=False)
    """:meth:`prepared`'s lists, by the identity of the candidates' tuple (kept with it)."""
    projectors: dict[str, reads_module.Projector] = dataclasses.field(init=False, repr=False, compare=False)
    """:func:`~webhook.cel.reads.project` with :attr:`reads` fixed, per variable."""
    request_of: Callable[[model.ReviewContext], dict[str, Any]] = dataclasses.field(
        init=False, repr=False, compare=False)
    """A review's ``request`` variable, projected: built from the review's fields directly when
    the expressions read only fields that are plain values of the review (``request.operation``),
    which spares building the whole variable to keep one key of it."""
    projected: bool = True
    """Whether reviews hand the expressions only what they read; False hands them the variables
    whole (the reference the tests compare with)."""

    def prepared(self, ctx: model.ReviewContext) -> tuple[list[_Prepared], _Selection | None]:
        """:meth:`candidates` with what selecting each pair takes worked out once per list: whether
        it has selectors to check, and its entry when it has no params. And, when no pair has
        selectors or params (so every candidate is selected, whatever the objects), the selection
        itself: the entries, and the policies among them sharing one activation."""
        candidates = self.candidates(ctx)
        found = self._prepared.get(id(candidates))
        if found is None or found[0] is not candidates:
            entries = [(policy, binding,
                        not policy.match_constraints.any_object
                        or (binding.match_resources is not None and not binding.match_resources.any_object),
                        (policy, binding, params.NO_PARAMS) if policy.param_kind is None else None)
                       for policy, binding in candidates]
            settled: _Selection | None = None
            if not any(selects or entry is None for _, _, selects, entry in entries):
                settled = _Selection(tuple(entry for _, _, _, entry in entries if entry is not None),
                                     tuple(policy for policy, _, _, _ in entries if policy.shares_activation))
            if len(self._prepared) >= pairing.CACHE_LIMIT:
                self._prepared.clear()
            found = self._prepared[id(candidates)] = (candidates, entries, settled)
        return found[1], found[2]

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "_prepared", {})
        programs = [named.program for policy in self.policies
                    for named in (*policy.match_conditions, *policy.variables, *policy.audit_annotations)]
        programs += [validation.program for policy in self.policies for validation in policy.validations]
        object.__setattr__(self, "asks_authorizer", any(program.asks_authorizer for program in programs))
        object.__setattr__(self, "warned", frozenset(
            policy.name for policy, binding in self.pairs if "Warn" in binding.validation_actions))
        programs += [validation.message_program for policy in self.policies for validation in policy.validations
                     if validation.message_program is not None]
        found = reads_module.union(program.reads for program in programs) if self.projected else reads_module.EVERYTHING
        object.__setattr__(self, "reads", found)
        object.__setattr__(self, "projectors", {root: reads_module.projector(found.get(root, {}))
                                                for root in reads_module.ROOTS})
        object.__setattr__(self, "request_of", _request_builder(found.get("request", {}), self.projectors["request"]))


def namespace_object(ctx: model.ReviewContext) -> dict[str, Any] | None:
    """``namespaceObject``: null for cluster-scoped requests and for Namespace objects themselves;
    otherwise the namespace as far as we know it (its name and, when known, its labels)."""
    if not ctx.namespace or ctx.resource == "namespaces":
        return None
    if ctx.namespace_object is not None:
        return _namespace_fields(ctx.namespace_object)
    metadata: dict[str, Any] = {"name": ctx.namespace}
    if ctx.namespace_labels is not None:
        metadata["labels"] = dict(ctx.namespace_labels)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


_NAMESPACE_METADATA = ("name", "generateName", "namespace", "uid", "resourceVersion", "generation",
                       "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
                       "annotations", "finalizers")


def _namespace_fields(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """What the API server exposes of a Namespace as ``namespaceObject`` (``CreateNamespaceObject``):
    these metadata fields, spec and status; nothing else (no managedFields, ownerReferences)."""
    metadata = namespace.get("metadata")
    found: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {k: v for k, v in (metadata or {}).items() if k in _NAMESPACE_METADATA}
                             if isinstance(metadata, dict) else {}}
    for field in ("spec", "status"):
        if isinstance(namespace.get(field), dict):
            found[field] = namespace[field]
    return found


def request_variable(ctx: model.ReviewContext) -> dict[str, Any]:
    """``request``: the AdmissionRequest fields policies may read (no uid, object or oldObject)."""
    raw: Mapping[str, Any] = ctx.request if ctx.request is not None else {}
    kind = {"group": ctx.group, "version": ctx.version, "kind": ctx.kind}
    resource = {"group": ctx.group, "version": ctx.version, "resource": ctx.resource}
    found_user = raw.get("userInfo")
    user: Mapping[str, Any] = found_user if isinstance(found_user, dict) else {}
    found: dict[str, Any] = {
        "kind": kind,
        "resource": resource,
        "subResource": ctx.sub_resource,
        "requestKind": raw.get("requestKind") or kind,
        "requestResource": raw.get("requestResource") or resource,
        "requestSubResource": raw.get("requestSubResource", ctx.sub_resource),
        "name": ctx.name,
        "namespace": ctx.namespace,
        "operation": ctx.operation,
        "userInfo": {
            "username": ctx.username,
            "uid": str(user.get("uid", "")),
            "groups": list(ctx.user_groups),
            "extra": user.get("extra") if isinstance(user.get("extra"), dict) else {},
        },
        "dryRun": ctx.dry_run,
        "options": raw.get("options"),
    }
    return found


_PLAIN_REQUEST_FIELDS: Mapping[str, Callable[[model.ReviewContext], Any]] = MappingProxyType({
    "operation": operator.attrgetter("operation"),
    "name": operator.attrgetter("name"),
    "namespace": operator.attrgetter("namespace"),
    "subResource": operator.attrgetter("sub_resource"),
    "dryRun": operator.attrgetter("dry_run"),
})
"""Fields of :func:`request_variable` that are a review's plain values, always present."""


def _request_builder(
    tree: reads_module.Tree, project: reads_module.Projector,
) -> Callable[[model.ReviewContext], dict[str, Any]]:
    """What :attr:`PolicySet.request_of` does for expressions reading ``tree`` of ``request``:
    the same as projecting :func:`request_variable` (a test holds it), built directly when every
    key read is one of :data:`_PLAIN_REQUEST_FIELDS` and read whole."""
    if tree is not None and all(key in _PLAIN_REQUEST_FIELDS and below is None for key, below in tree.items()):
        fields = tuple((key, _PLAIN_REQUEST_FIELDS[key]) for key in tree)
        if len(fields) == 1:
            (key, field), = fields
            return lambda ctx: {key: field(ctx)}
        return lambda ctx: {key: field(ctx) for key, field in fields}
    return lambda ctx: project(request_variable(ctx))


def _error_message(program: runtime.Program, error: str) -> str:
    return f"expression '{program.source}' resulted in error: {error}"


class _Shared(NamedTuple):
    """What the policies of a review without composited variables share (per param)."""

    values: dict[str, Any]
    bound: Any
    """The cel-expr-python activation: the object is converted once, on first use."""
    memo: dict[str, runtime.Result]
    """Results of conditions and validations, by source."""
    messages: dict[str, runtime.Result]
    """Results of messageExpressions already computed by a batch, by source."""


_NO_PARAM_KEY = (False, id(None))
"""The shared key of the policies without ``paramKind``."""

_NO_OUTCOME = batch.Outcome(frozenset(), MappingProxyType({}))
"""Nothing settled by batches (none ran): every policy is evaluated in full."""


_NO_FAILURES: Mapping[str, str] = MappingProxyType({})


class _Evaluation:
    """One (policy, binding, param): the activation and the variables, computed once."""

    __slots__ = ("bound", "declared", "failed", "memo", "messages", "policy", "values")

    def __init__(
        self, policy: documents.ValidatingPolicy, base: Mapping[str, Any], param: Any,
        shared: dict[tuple[bool, int], _Shared],
    ) -> None:
        self.policy = policy
        self.declared, needed = policy.declared, policy.needed
        self.failed: Mapping[str, str] = _NO_FAILURES
        """Composited variables that failed, with their errors."""
        self.memo: dict[str, runtime.Result] | None = None
        self.messages: dict[str, runtime.Result]
        """messageExpression results already computed (by a batch), by source."""
        self.values: dict[str, Any]
        self.bound: Any
        if not needed:
            # No composited variables: every such policy of the review (with the same param) sees
            # the same values, so they share one activation (cel-cpp converts the object once) and
            # one memo of results (a namespace opt-out written the same in ten policies runs once).
            key = (policy.param_kind is not None, id(param))
            found = shared.get(key)
            if found is None:
                common: dict[str, Any] = dict(base)
                if policy.param_kind is not None:
                    common["params"] = param
                common["variables"] = {}
                found = shared[key] = _Shared(common, runtime.activation(
                    common, declared=self.declared, authorizer="authorizer" in base), {}, {})
            self.values, self.bound, self.memo, self.messages = found
            return
        self.messages = {}
        failed: dict[str, str] = {}
        self.failed = failed
        values: dict[str, Any] = dict(base)
        if policy.param_kind is not None:
            values["params"] = param
        variables: dict[str, Any] = {}
        for variable in policy.variables:
            if variable.name not in needed:
                continue  # never referenced: never evaluated, never fails (as the API server's lazy map)
            values["variables"] = variables
            result = runtime.evaluate(variable.program, runtime.activation(
                values, declared=self.declared, authorizer="authorizer" in base))
            error = self._explain(variable.program, result.error) if result.error else None
            if error is not None:
                failed[variable.name] = f'composited variable "{variable.name}" fails to evaluate: {error}'
            else:
                variables[variable.name] = result.value
        values["variables"] = variables
        self.values = values
        self.bound = runtime.activation(values, declared=self.declared, authorizer="authorizer" in base)

    def _explain(self, program: runtime.Program, error: str) -> str:
        """A missing key that is a failed variable the expression uses is that variable's error."""
        if error.startswith("no such key: "):
            name = error[len("no such key: "):]
            if name in self.failed and name in program.variables:
                return self.failed[name]
        return error

    def run_message(self, program: runtime.Program) -> runtime.Result:
        found = self.messages.get(program.source)
        return found if found is not None else self._run(program)

    def run(self, program: runtime.Program) -> runtime.Result:
        if self.memo is not None:
            found = self.memo.get(program.source)
            if found is None:
                found = self.memo[program.source] = self._run(program)
            return found
        return self._run(program)

    def _run(self, program: runtime.Program) -> runtime.Result:
        result = runtime.evaluate(program, self.bound)
        if result.error is not None:
            return runtime.Result(error=self._explain(program, result.error))
        return result


def _match_conditions(evaluation: _Evaluation, failure_policy: str) -> tuple[bool, _Decision | None]:
    """Whether the conditions let the policy run, and the Deny decision when deciding failed."""
    errors: list[str] = []
    for condition in evaluation.policy.match_conditions:
        result = evaluation.run(condition.program)
        if result.error is not None:
            message = _error_message(condition.program, result.error)
            if message not in errors:
                errors.append(message)
        elif result.value is False:
            return False, None
    if errors:
        if failure_policy == "Ignore":
            return False, None
        text = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        return False, _Decision(deny=True, message=text)
    return True, None


def _message(validation: documents.Validation, evaluation: _Evaluation) -> str:
    """messageExpression if it gives a usable string, else message, else ``failed expression: ...``."""
    if validation.message_program is not None:
        result = evaluation.run_message(validation.message_program)
        if result.error is None and isinstance(result.value, str):
            text = result.value.strip()
            if text and len(text.encode()) <= MAX_MESSAGE_BYTES and "\n" not in text:
                return text
    if validation.message:
        return validation.message
    return f"failed expression: {validation.program.source.strip()}"


def _validate(evaluation: _Evaluation, failure_policy: str) -> list[_Decision]:
    proceed, failed = _match_conditions(evaluation, failure_policy)
    if not proceed:
        return [failed] if failed is not None else []
    decisions: list[_Decision] = []
    for index, validation in enumerate(evaluation.policy.validations):
        result = evaluation.run(validation.program)
        if result.error is not None:
            if failure_policy != "Ignore":
                decisions.append(_Decision(True, _error_message(validation.program, result.error), "", index))
        elif result.value is not True:
            decisions.append(_failed(validation, index, evaluation))
    return decisions


def _failed(validation: documents.Validation, index: int, evaluation: _Evaluation) -> _Decision:
    """The Deny decision of a validation that gave false (whatever the failurePolicy); its
    message is computed when read."""
    return _Decision(True, None, validation.reason or "Invalid", index,
                     validation=validation, evaluation=evaluation)


def _audit_values(evaluation: _Evaluation, failure_policy: str) -> tuple[list[tuple[str, str]], list[_Decision]]:
    values: list[tuple[str, str]] = []
    denials: list[_Decision] = []
    for annotation in evaluation.policy.audit_annotations:
        result = evaluation.run(annotation.program)
        if result.error is not None:
            if failure_policy != "Ignore":
                denials.append(_Decision(True, _error_message(annotation.program, result.error)))
            continue
        if result.value is None:
            continue
        if not isinstance(result.value, str):
            if failure_policy != "Ignore":
                denials.append(_Decision(True, f"valueExpression '{annotation.program.source}' resulted in "
                                               f"unsupported return type: {type(result.value).__name__}. Return "
                                               "type must be either string or null."))
            continue
        text = result.value.strip()
        if text:
            values.append((annotation.name, text.encode()[:MAX_AUDIT_VALUE_BYTES].decode(errors="ignore")))
    return values, denials


def evaluate(policy_set: PolicySet, obj: Any, ctx: model.ReviewContext) -> Verdict:
    """Run every binding that matches the request; never raises for a policy's fault."""
    verdict = Verdict()
    if policy_set.empty or _exempt(ctx):
        return verdict
    project = policy_set.projectors
    base = {
        "object": project["object"](obj),
        "oldObject": project["oldObject"](ctx.old_object),
        "request": policy_set.request_of(ctx),
        "namespaceObject": project["namespaceObject"](namespace_object(ctx)),
    }
    if policy_set.asks_authorizer:
        # The user's access, asked per check. A set whose expressions never mention
        # ``authorizer`` binds nothing of it (nothing could reach it).
        base["authorizer"] = k8s_authz.Binding.for_review(ctx)
    denials: list[Denial] = []
    audit_values: dict[str, list[str]] = {}
    shared: dict[tuple[bool, int], _Shared] = {}
    selected: Sequence[tuple[documents.ValidatingPolicy, documents.Binding, Sequence[Any] | str]]
    sharing: Sequence[documents.ValidatingPolicy]  # those of selected sharing one activation
    prepared, settled = policy_set.prepared(ctx)
    if settled is not None:
        selected, sharing = settled
    else:
        selected, sharing = _select(policy_set, prepared, obj, ctx)
    outcome = _NO_OUTCOME
    common: _Evaluation | None = None  # the shared activation's, once the batches ran
    if policy_set.batched and len(selected) > 1 and sharing:
        outcome, common = _batch(policy_set, sharing, base, shared)
    passing, failing = outcome
    for policy, binding, found in selected:
        if policy.name in passing:
            continue
        if common is not None and found is params.NO_PARAMS and policy.shares_activation \
                and not policy.audit_annotations:
            # Most of what is left failed a validation: its decisions come from the batches'
            # results (messages computed, on the shared activation, only if shown).
            indexes = failing.get(policy.name)
            if indexes is not None:
                verdict.decided.append((policy.name, binding.name))
                _apply_actions(verdict, denials, policy, binding,
                               [_failed(policy.validations[index], index, common) for index in indexes])
                continue
        failure_policy = policy.failure_policy
        if isinstance(found, str):
            if failure_policy != "Ignore":
                denials.append(Denial(_denied(policy, binding, f"failed to configure binding: {found}"),
                                      "Invalid", 422, policy.name, binding.name))
                verdict.decided.append((policy.name, binding.name))
            continue
        for param in found:
            evaluation = _Evaluation(policy, base, param, shared)
            decisions = _validate(evaluation, failure_policy)
            if policy.audit_annotations:
                values, audit_denials = _audit_values(evaluation, failure_policy)
                for key, value in values:
                    listed = audit_values.setdefault(f"{policy.name}/{key}", [])
                    if value not in listed:
                        listed.append(value)
                for decision in audit_denials:
                    denials.append(Denial(_denied(policy, binding, decision.message), "Invalid", 422,
                                          policy.name, binding.name))
                if audit_denials and not decisions:
                    verdict.decided.append((policy.name, binding.name))
            if decisions:
                verdict.decided.append((policy.name, binding.name))
                _apply_actions(verdict, denials, policy, binding, decisions)
    for key, listed in audit_values.items():
        verdict.audit[key] = ", ".join(listed)
    if denials:
        verdict.denial = denials[0]
    return verdict


def _select(
    policy_set: PolicySet, prepared: list[_Prepared], obj: Any, ctx: model.ReviewContext,
) -> tuple[list[tuple[documents.ValidatingPolicy, documents.Binding, Sequence[Any] | str]],
           list[documents.ValidatingPolicy]]:
    """The pairs whose selectors take the objects, each with its params (or the error finding
    them); and the policies among them sharing one activation."""
    selected: list[tuple[documents.ValidatingPolicy, documents.Binding, Sequence[Any] | str]] = []
    sharing: list[documents.ValidatingPolicy] = []
    for policy, binding, selects, entry in prepared:
        if selects and not _selected(policy, binding, ctx, obj):
            continue
        if entry is not None:
            selected.append(entry)
            if policy.shares_activation:
                sharing.append(policy)
            continue
        try:
            selected.append((policy, binding, policy_set.params.for_binding(policy.param_kind, binding.param_ref, ctx)))
        except params.ConfigurationError as exc:
            selected.append((policy, binding, str(exc)))
    return selected, sharing


def _selected(policy: documents.ValidatingPolicy, binding: documents.Binding, ctx: model.ReviewContext,
              obj: Any) -> bool:
    """The selectors of the policy's matchConstraints and of the binding's matchResources."""
    resources = binding.match_resources
    return matching.selectors_match(policy.match_constraints, ctx, obj) and (
        resources is None or matching.selectors_match(resources, ctx, obj))


def _batch(
    policy_set: PolicySet, policies: Sequence[documents.ValidatingPolicy], base: Mapping[str, Any],
    shared: dict[tuple[bool, int], _Shared],
) -> tuple[batch.Outcome, _Evaluation]:
    """Evaluate the match conditions, then the validations of the policies they let through, then
    the messageExpressions of the failing validations of policies with a Warn binding, of every
    selected policy on the shared activation, as three :mod:`webhook.cel.batch` calls; the
    results land in the shared memos, where each policy's own evaluation finds them. Returns what
    the results alone show (:meth:`webhook.cel.batch.Plan.outcome`): the policies that decide
    nothing and the failed validations of those that only failed validations, which need no
    evaluation of their own; and the evaluation of the shared activation. ``policies``: the
    selected policies that share an activation (no params, no composited variables)."""
    plan = policy_set.batches.plan(policies)
    common = _Evaluation(policies[0], base, None, shared)  # creates the shared activation and memos
    found = shared[_NO_PARAM_KEY]
    bound, memo = found.bound, found.memo
    if len(plan.conditions) > 1:
        policy_set.batches.run(plan.conditions, bound, memo, plan.condition_key)
    elif plan.conditions:
        # One condition all these policies share: run once here, so that their validations can
        # still be batched (they are only where every condition of their policy is known true).
        only = plan.conditions[0]
        memo[only.source] = runtime.evaluate(only, bound)
    validations, key = plan.admitted(memo)
    if len(validations) > 1:
        policy_set.batches.run(validations, bound, memo, key)
    # The messageExpressions of the failing validations whose every message is shown: those of
    # policies with a Warn binding (a Deny or Audit decision shows only the first one's, computed
    # when read). Compiled without ``authorizer``, as messageExpressions are. ``warned`` is known
    # at load: a policy whose Warn binding this request did not select has its messages computed
    # for nothing, which is cheaper than a set built per review.
    false = runtime.FALSE
    warned = policy_set.warned
    messages = batch.distinct(message for name, source, message in plan.messages
                              if name in warned and memo.get(source) is false) if warned else []
    if len(messages) > 1:
        policy_set.message_batches.run(messages, bound, found.messages)
    return plan.outcome(memo), common


def _denied(policy: documents.ValidatingPolicy, binding: documents.Binding, message: str) -> str:
    return f"ValidatingAdmissionPolicy '{policy.name}' with binding '{binding.name}' denied request: {message}"


def _apply_actions(
    verdict: Verdict, denials: list[Denial], policy: documents.ValidatingPolicy, binding: documents.Binding,
    decisions: list[_Decision],
) -> None:
    for decision in decisions:
        if not decision.deny:
            continue
        reason = decision.reason or "Invalid"
        for action in binding.validation_actions:
            if action == "Deny":
                if denials:
                    continue  # only the first denial is the answer: the others' messages are never read
                denials.append(Denial(_denied(policy, binding, decision.message), reason,
                                      REASON_CODES.get(reason, 422), policy.name, binding.name))
            elif action == "Warn":
                verdict.warnings.append(
                    f"Validation failed for ValidatingAdmissionPolicy '{policy.name}' with binding "
                    f"'{binding.name}': {decision.message}"
                )
            elif action == "Audit" and FAILURE_ANNOTATION not in verdict.audit:
                # The API server refuses to overwrite an audit annotation: the first failure stays.
                verdict.audit[FAILURE_ANNOTATION] = _failure_value(policy, binding, decision)


def _failure_value(policy: documents.ValidatingPolicy, binding: documents.Binding, decision: _Decision) -> str:
    """Go's ``encoding/json`` of one ``ValidationFailureValue`` in a list: compact, fields in
    declaration order, ``<``, ``>`` and ``&`` escaped as ``\\u003c`` etc."""
    body = orjson.dumps([{
        "message": decision.message,
        "policy": policy.name,
        "binding": binding.name,
        "expressionIndex": decision.index,
        "validationActions": list(binding.validation_actions),
    }]).decode()
    return body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _exempt(ctx: model.ReviewContext) -> bool:
    """Requests for webhook configurations and admission policies never reach policies
    (``rules.IsExemptAdmissionConfigurationResource``), so a policy cannot lock itself in."""
    return ctx.group == documents.GROUP and ctx.resource in (
        "validatingwebhookconfigurations", "mutatingwebhookconfigurations",
        "validatingadmissionpolicies", "validatingadmissionpolicybindings",
        "mutatingadmissionpolicies", "mutatingadmissionpolicybindings",
    )
