"""MutatingAdmissionPolicy and its bindings, read from policy files and validated as the API server
validates them on create (``validateMutatingAdmissionPolicySpec``, ``validateMutation``,
``validateMutatingAdmissionPolicyBindingSpec`` in ``pkg/apis/admissionregistration/validation``),
then compiled once.

What a MAP shares with a ValidatingAdmissionPolicy (metadata.name, matchConstraints, paramKind,
paramRef, matchConditions, variables, selectors and rules) is validated by the helpers of
:mod:`webhook.cel.documents`, with the same texts. Specific to MAPs:

* the only default is ``failurePolicy: Fail``; ``reinvocationPolicy`` has none
  (``spec.reinvocationPolicy: Required value``, then ``Never`` or ``IfNeeded``);
* ``spec.mutations: Required value: mutations must contain at least one item``; each mutation is a
  union on ``patchType`` (``JSONPatch`` or ``ApplyConfiguration``) whose expression is compiled
  with the patch types (:mod:`webhook.cel.rewrite`) and must return ``list(JSONPatch)`` or
  ``Object``;
* a mutation cannot apply to a delete: an operation outside ``*``, ``CONNECT``, ``CREATE``,
  ``UPDATE`` in the policy's or binding's resource rules is refused (at ``...resourceRules.operations``,
  with no index, as the API server reports it).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Literal

from webhook.cel import documents, rewrite, runtime

VERSIONS = (
    "admissionregistration.k8s.io/v1alpha1",
    "admissionregistration.k8s.io/v1beta1",
    "admissionregistration.k8s.io/v1",
)
POLICY = "MutatingAdmissionPolicy"
BINDING = "MutatingAdmissionPolicyBinding"
KINDS = (POLICY, BINDING)
PATCH_TYPES = ("ApplyConfiguration", "JSONPatch")
REINVOCATION_POLICIES = ("IfNeeded", "Never")
MUTATING_OPERATIONS = ("*", "CONNECT", "CREATE", "UPDATE")

PatchType = Literal["JSONPatch", "ApplyConfiguration"]


@dataclasses.dataclass(frozen=True, slots=True)
class Mutation:
    patch_type: PatchType
    program: runtime.Program
    """Compiled from the rewritten source; ``program.source`` is the expression as written, which
    runtime errors quote (``expression '...' resulted in error: ...``)."""
    mismatches: tuple[str, ...] = ()
    """``Object`` literals whose type name is not their field path from the root: the API server
    fails the mutation at evaluation with ``type mismatch: <these, one a line>``."""


@dataclasses.dataclass(frozen=True, slots=True)
class MutatingPolicy:
    name: str
    failure_policy: str
    match_constraints: documents.MatchResources
    param_kind: documents.ParamKind | None
    match_conditions: tuple[documents.Named, ...]
    variables: tuple[documents.Named, ...]
    mutations: tuple[Mutation, ...]
    reinvocation_policy: str
    source: str
    declared: runtime.Declarations = runtime.Declarations()


@dataclasses.dataclass(frozen=True, slots=True)
class MutatingBinding:
    name: str
    policy_name: str
    param_ref: documents.ParamRef | None
    match_resources: documents.MatchResources | None
    source: str


def _mutating_operations(match: documents.MatchResources, path: str, problems: documents._Problems) -> None:
    for rule in match.resource_rules:
        for operation in rule.operations:
            if operation not in MUTATING_OPERATIONS:
                problems.add(documents.unsupported(path, operation, MUTATING_OPERATIONS))


_LIST = re.compile(r"^LIST<(?P<element>.*)>$")


def _returns(patch_type: PatchType, output: str, found: rewrite.Rewritten) -> str | None:
    """Why the result type is not the API server's ``list(JSONPatch)`` / ``Object``, or None.

    cel-cpp types the rewritten literals as maps, so a map counts as a JSONPatch (an Object) only
    when the source builds one; a ``dyn`` result (a variable, a ternary of mixed branches) is
    accepted and checked at evaluation."""
    if patch_type == "ApplyConfiguration":
        wanted = rewrite.OBJECT
        ok = output == "DYN" or (output.startswith("MAP<") and found.has_object)
        if found.whole is not None:
            ok = found.whole == rewrite.OBJECT
    else:
        wanted = f"list({rewrite.JSONPATCH})"
        element = _LIST.match(output)
        ok = output == "DYN" or (element is not None and (
            element.group("element") == "DYN" or (element.group("element").startswith("MAP<") and found.has_jsonpatch)
        ))
    if ok:
        return None
    got = found.whole if found.whole is not None else runtime.go_type(output)
    return f"must evaluate to {wanted} but got {got}"


def _mutations(
    value: Any, problems: documents._Problems, declared: runtime.Declarations, variable_types: Mapping[str, str]
) -> tuple[Mutation, ...]:
    items = documents._list(value)
    if not items:
        problems.add(documents.required("spec.mutations", "mutations must contain at least one item"))
    found: list[Mutation] = []
    for index, raw in enumerate(items):
        item, where = documents._dict(raw), f"spec.mutations[{index}]"
        patch_type = item.get("patchType")
        if not patch_type:
            problems.add(documents.required(f"{where}.patchType"))
            continue
        if patch_type not in PATCH_TYPES:
            problems.add(documents.unsupported(f"{where}.patchType", patch_type, PATCH_TYPES))
            continue
        own, other = ("jsonPatch", "applyConfiguration") if patch_type == "JSONPatch" else (
            "applyConfiguration", "jsonPatch")
        mutation = None
        if item.get(own) is None:
            problems.add(documents.required(f"{where}.{own}", f"must be specified when patchType is {patch_type}"))
        else:
            mutation = _mutation(patch_type, documents._dict(item.get(own)).get("expression"),
                                 f"{where}.{own}.expression", problems, declared, variable_types)
        if item.get(other) is not None:
            problems.add(documents.invalid(f"{where}.{other}", "{" + other + "}",
                                           f"must not be specified when patchType is {patch_type}"))
        if mutation is not None:
            found.append(mutation)
    return tuple(found)


def _mutation(
    patch_type: PatchType, source: Any, path: str, problems: documents._Problems, declared: runtime.Declarations,
    variable_types: Mapping[str, str],
) -> Mutation | None:
    text = source if isinstance(source, str) else ""
    # The API server validates the trimmed expression (columns count from its first character) and
    # runs the expression as written.
    trimmed = text.strip()
    if not trimmed:
        problems.add(documents.required(path))
        return None
    try:
        found = rewrite.rewrite(trimmed)
    except rewrite.SyntaxProblem as exc:
        problems.add(documents.invalid(path, trimmed, f"compilation failed: {exc}"))
        return None
    try:
        program = runtime.compile(found.text, declared=declared, returns=None, variable_types=variable_types)
    except runtime.CompileError as exc:
        problems.add(documents.invalid(path, trimmed, found.restore(str(exc))))
        return None
    wrong = _returns(patch_type, program.output, found)
    if wrong is not None:
        problems.add(documents.invalid(path, trimmed, wrong))
        return None
    return Mutation(patch_type, dataclasses.replace(program, source=text), found.mismatches)


def mutating_policy(document: Mapping[str, Any], *, source: str, libraries: int = runtime.NEWEST) -> MutatingPolicy:
    """A MutatingAdmissionPolicy, validated and compiled; raises :class:`documents.Refused`."""
    problems = documents._Problems()
    name = documents._name(document, problems)
    spec = documents._dict(document.get("spec"))
    failure_policy = spec.get("failurePolicy", "Fail")
    if failure_policy not in ("Fail", "Ignore"):
        problems.add(documents.unsupported("spec.failurePolicy", failure_policy, ("Fail", "Ignore")))
    param_kind = documents._param_kind(spec.get("paramKind"), problems)
    if "matchConstraints" not in spec:
        problems.add(documents.required("spec.matchConstraints"))
    constraints = documents._match_resources(spec.get("matchConstraints"), "spec.matchConstraints", problems,
                                             rules_required="matchConstraints" in spec)
    _mutating_operations(constraints, "spec.matchConstraints.resourceRules.operations", problems)
    declared = runtime.Declarations(params=spec.get("paramKind") is not None, libraries=libraries)
    conditions = documents._match_conditions(spec.get("matchConditions"), problems, declared)
    variables = documents._variables(spec.get("variables"), problems, declared)
    mutations = _mutations(spec.get("mutations"), problems, declared, documents.variable_types(variables))
    reinvocation = spec.get("reinvocationPolicy")
    if not reinvocation:
        problems.add(documents.required("spec.reinvocationPolicy"))
    elif reinvocation not in REINVOCATION_POLICIES:
        problems.add(documents.unsupported("spec.reinvocationPolicy", reinvocation, REINVOCATION_POLICIES))
    documents._refuse(POLICY, name, problems)
    return MutatingPolicy(name, str(failure_policy), constraints, param_kind, conditions, variables, mutations,
                          str(reinvocation), source, declared)


def mutating_binding(document: Mapping[str, Any], *, source: str, libraries: int = runtime.NEWEST) -> MutatingBinding:
    """A MutatingAdmissionPolicyBinding, validated; raises :class:`documents.Refused`."""
    problems = documents._Problems()
    name = documents._name(document, problems)
    spec = documents._dict(document.get("spec"))
    policy_name = spec.get("policyName")
    if not isinstance(policy_name, str) or not policy_name:
        problems.add(documents.required("spec.policyName"))
        policy_name = ""
    param_ref = documents._param_ref(spec.get("paramRef"), problems)
    match = None
    if spec.get("matchResources") is not None:
        match = documents._match_resources(spec.get("matchResources"), "spec.matchResources", problems,
                                           rules_required=False)
        _mutating_operations(match, "spec.matchResources.resourceRules.operations", problems)
    documents._refuse(BINDING, name, problems)
    return MutatingBinding(name, policy_name, param_ref, match, source)


LOADERS: dict[str, documents.Loader] = {POLICY: mutating_policy, BINDING: mutating_binding}
