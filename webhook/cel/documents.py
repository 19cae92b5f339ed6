"""ValidatingAdmissionPolicy and its bindings, read from policy files and validated as the API server
validates them on create (``pkg/apis/admissionregistration/validation``), then compiled.

A document the API server would refuse is refused here with its words: ``<path>: <detail>`` field
errors (``spec.validations[0].reason: Unsupported value: "Bad": supported values: "Forbidden",
"Invalid", "RequestEntityTooLarge"``), gathered under ``ValidatingAdmissionPolicy.admissionregistration.k8s.io
"name" is invalid: ...``. Defaults are those the API server applies before validating
(``failurePolicy: Fail``, ``matchPolicy: Equivalent``, empty selectors, rule ``scope: "*"``).

Objects stay dicts (the policy documents are small and read once); what evaluation needs is kept in
frozen dataclasses with the compiled programs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from webhook.cel import runtime
from webhook.policy import scope

GROUP = "admissionregistration.k8s.io"
VALIDATING_VERSIONS = ("admissionregistration.k8s.io/v1", "admissionregistration.k8s.io/v1beta1")
POLICY = "ValidatingAdmissionPolicy"
BINDING = "ValidatingAdmissionPolicyBinding"
MUTATING_KINDS = ("MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding")
KINDS = (POLICY, BINDING)

REASONS = ("Forbidden", "Invalid", "RequestEntityTooLarge")
ACTIONS = ("Audit", "Deny", "Warn")
OPERATIONS = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
MAX_MATCH_CONDITIONS = 64
MAX_AUDIT_ANNOTATIONS = 20
MAX_EXPRESSION_BYTES = 5 * 1024
_IDENTIFIER = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
_RESERVED = frozenset({
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function", "if", "import",
    "let", "loop", "package", "namespace", "return", "var", "void", "while",
})
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


# --- field errors, worded as k8s.io/apimachinery/pkg/util/validation/field ---------------------


def _go_value(value: Any) -> str:
    """How ``field.Invalid`` prints a value: ``%q`` for strings, ``%v`` for numbers and booleans."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def required(path: str, detail: str = "") -> str:
    return f"{path}: Required value" + (f": {detail}" if detail else "")


def invalid(path: str, value: Any, detail: str) -> str:
    shown = value if isinstance(value, str) and value.startswith("[]admissionregistration.") else _go_value(value)
    return f"{path}: Invalid value: {shown}: {detail}"


def unsupported(path: str, value: Any, supported: Sequence[str]) -> str:
    listed = ", ".join(f'"{s}"' for s in sorted(supported))
    return f"{path}: Unsupported value: {_go_value(value)}: supported values: {listed}"


def duplicate(path: str, value: Any) -> str:
    return f"{path}: Duplicate value: {_go_value(value)}"


def forbidden(path: str, detail: str) -> str:
    return f"{path}: Forbidden: {detail}"


# --- what evaluation needs ------------------------------------------------------------------------


Requirement = scope.Requirement


@dataclasses.dataclass(frozen=True, slots=True)
class Selector:
    """A ``metav1.LabelSelector``; empty matches everything."""

    match_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    match_expressions: tuple[Requirement, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions


@dataclasses.dataclass(frozen=True, slots=True)
class Rule:
    """One ``NamedRuleWithOperations``."""

    operations: tuple[str, ...]
    api_groups: tuple[str, ...]
    api_versions: tuple[str, ...]
    resources: tuple[str, ...]
    scope: str = "*"
    resource_names: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class MatchResources:
    namespace_selector: Selector = Selector()
    object_selector: Selector = Selector()
    resource_rules: tuple[Rule, ...] = ()
    exclude_resource_rules: tuple[Rule, ...] = ()
    match_policy: str = "Equivalent"
    any_object: bool = dataclasses.field(init=False, compare=False)
    """Both selectors empty: the selectors let every request through (most policies and
    bindings), which is asked for every policy of every review."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "any_object", self.namespace_selector.empty and self.object_selector.empty)


@dataclasses.dataclass(frozen=True, slots=True)
class Named:
    """A named program: a match condition, a variable, an audit annotation (its key)."""

    name: str
    program: runtime.Program


@dataclasses.dataclass(frozen=True, slots=True)
class Validation:
    program: runtime.Program
    message: str = ""
    message_program: runtime.Program | None = None
    reason: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class ParamKind:
    api_version: str
    kind: str


@dataclasses.dataclass(frozen=True, slots=True)
class ValidatingPolicy:
    name: str
    failure_policy: str
    match_constraints: MatchResources
    param_kind: ParamKind | None
    match_conditions: tuple[Named, ...]
    variables: tuple[Named, ...]
    validations: tuple[Validation, ...]
    audit_annotations: tuple[Named, ...]
    source: str
    declared: runtime.Declarations = runtime.Declarations()
    """The variables its expressions may use (``params`` only with a paramKind)."""
    needed: frozenset[str] = frozenset()
    """Composited variables some expression refers to, with those they refer to: only these are
    evaluated (the API server's variables are lazy)."""

    shares_activation: bool = dataclasses.field(init=False, repr=False, compare=False)
    """Whether its expressions see only what every such policy of a review sees (no params, no
    composited variables): they share one activation, and :mod:`webhook.cel.batch` may run
    them together with the other such policies' expressions."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "shares_activation", self.param_kind is None and not self.needed)


@dataclasses.dataclass(frozen=True, slots=True)
class ParamRef:
    name: str | None
    namespace: str | None
    selector: Selector | None
    not_found_action: str


@dataclasses.dataclass(frozen=True, slots=True)
class Binding:
    name: str
    policy_name: str
    param_ref: ParamRef | None
    match_resources: MatchResources | None
    validation_actions: tuple[str, ...]
    source: str


# --- reading ---------------------------------------------------------------------------------------


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in _list(value))


class _Problems:
    """Field errors of one document, in the API server's order of discovery."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, error: str) -> None:
        self.items.append(error)


def _selector(value: Any, path: str, problems: _Problems) -> Selector:
    data = _dict(value)
    labels = {str(k): str(v) for k, v in _dict(data.get("matchLabels")).items()}
    expressions = []
    for index, expression in enumerate(_list(data.get("matchExpressions"))):
        item = _dict(expression)
        operator = item.get("operator")
        where = f"{path}.matchExpressions[{index}]"
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            problems.add(unsupported(f"{where}.operator", operator, ("DoesNotExist", "Exists", "In", "NotIn")))
            continue
        values = _strings(item.get("values"))
        if operator in ("In", "NotIn") and not values:
            problems.add(required(f"{where}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        if operator in ("Exists", "DoesNotExist") and values:
            problems.add(forbidden(f"{where}.values", "may not be specified when `operator` is 'Exists' or "
                                                      "'DoesNotExist'"))
        expressions.append(Requirement(str(item.get("key", "")), operator, values))
    return Selector(labels, tuple(expressions))


def _rules(value: Any, path: str, problems: _Problems) -> tuple[Rule, ...]:
    found = []
    for index, raw in enumerate(_list(value)):
        item, where = _dict(raw), f"{path}[{index}]"
        operations = _strings(item.get("operations"))
        if not operations:
            problems.add(required(f"{where}.operations"))
        elif "*" in operations and len(operations) > 1:
            problems.add(invalid(f"{where}.operations", list(operations),
                                 "if '*' is present, must not specify other operations"))
        for op_index, operation in enumerate(operations):
            if operation not in OPERATIONS:
                problems.add(unsupported(f"{where}.operations[{op_index}]", operation, OPERATIONS))
        groups, versions = _strings(item.get("apiGroups")), _strings(item.get("apiVersions"))
        resources = _strings(item.get("resources"))
        for field, values, what in (("apiGroups", groups, "API groups"), ("apiVersions", versions, "API versions")):
            if not values:
                problems.add(required(f"{where}.{field}"))
            elif "*" in values and len(values) > 1:
                problems.add(invalid(f"{where}.{field}", list(values),
                                     f"if '*' is present, must not specify other {what}"))
        if not resources:
            problems.add(required(f"{where}.resources"))
        scope = item.get("scope", "*")
        if scope not in ("*", "Cluster", "Namespaced"):
            problems.add(unsupported(f"{where}.scope", scope, ("*", "Cluster", "Namespaced")))
        found.append(Rule(operations, groups, versions, resources, str(scope), _strings(item.get("resourceNames"))))
    return tuple(found)


def _match_resources(value: Any, path: str, problems: _Problems, *, rules_required: bool) -> MatchResources:
    data = _dict(value)
    policy = data.get("matchPolicy", "Equivalent")
    if policy not in ("Equivalent", "Exact"):
        problems.add(unsupported(f"{path}.matchPolicy", policy, ("Equivalent", "Exact")))
    rules = _rules(data.get("resourceRules"), f"{path}.resourceRules", problems)
    if rules_required and not rules:
        problems.add(required(f"{path}.resourceRules"))
    return MatchResources(
        namespace_selector=_selector(data.get("namespaceSelector"), f"{path}.namespaceSelector", problems),
        object_selector=_selector(data.get("objectSelector"), f"{path}.objectSelector", problems),
        resource_rules=rules,
        exclude_resource_rules=_rules(data.get("excludeResourceRules"), f"{path}.excludeResourceRules", problems),
        match_policy=str(policy),
    )


def _compile(
    source: Any, path: str, problems: _Problems, *, declared: runtime.Declarations,
    returns: tuple[str, ...] | None, what: str = "expression", variable_types: Mapping[str, str] | None = None,
    variable: bool = False,
) -> runtime.Program | None:
    text = source if isinstance(source, str) else ""
    if not text.strip():
        problems.add(required(path, f"{what} is not specified"))
        return None
    try:
        return runtime.compile(text, declared=declared, returns=returns, variable_types=variable_types,
                               variable=variable)
    except runtime.CompileError as exc:
        problems.add(invalid(path, text, str(exc)))
        return None


def _variables(value: Any, problems: _Problems, declared: runtime.Declarations) -> tuple[Named, ...]:
    found: list[Named] = []
    known: set[str] = set()
    for index, raw in enumerate(_list(value)):
        item, where = _dict(raw), f"spec.variables[{index}]"
        name = item.get("name")
        if not isinstance(name, str) or not name:
            problems.add(required(f"{where}.name", "name is not specified"))
        elif not _IDENTIFIER.match(name) or name in _RESERVED:
            problems.add(invalid(f"{where}.name", name, "name is not a valid CEL identifier"))
        program = _compile(item.get("expression"), f"{where}.expression", problems, declared=declared, returns=None,
                           variable_types=variable_types(found), variable=True)
        if program is not None and isinstance(name, str):
            later = sorted(program.variables - known)
            if later:
                # Variables are compiled in order: one may only use those declared before it.
                problems.add(invalid(f"{where}.expression", program.source,
                                     f"compilation failed: variable {later[0]!r} is not declared before it"))
            else:
                found.append(Named(name, program))
        if isinstance(name, str):
            known.add(name)
    return tuple(found)


def variable_types(variables: Sequence[Named]) -> dict[str, str]:
    """The checked type of each composited variable, for the expressions that use them (the API
    server declares every variable with its expression's type)."""
    return {variable.name: variable.program.output for variable in variables}


def _match_conditions(value: Any, problems: _Problems, declared: runtime.Declarations) -> tuple[Named, ...]:
    items = _list(value)
    if len(items) > MAX_MATCH_CONDITIONS:
        problems.add(f"spec.matchConditions: Too many: {len(items)}: must have at most {MAX_MATCH_CONDITIONS} items")
    found, seen = [], set()
    for index, raw in enumerate(items):
        item, where = _dict(raw), f"spec.matchConditions[{index}]"
        name = item.get("name")
        if not isinstance(name, str) or not name:
            problems.add(required(f"{where}.name"))
        elif not _qualified_name(name):
            problems.add(invalid(f"{where}.name", name, "name part must consist of alphanumeric characters, '-', "
                                 "'_' or '.', and must start and end with an alphanumeric character (e.g. "
                                 "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                                 "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"))
        elif name in seen:
            problems.add(duplicate(f"{where}.name", name))
        else:
            seen.add(name)
        text = item.get("expression")
        if not isinstance(text, str) or not text.strip():
            problems.add(required(f"{where}.expression"))
            continue
        # Checked as the API server checks them, without variable composition: no ``variables``.
        without_variables = dataclasses.replace(declared, variables=False)
        program = _compile(text, f"{where}.expression", problems, declared=without_variables, returns=("BOOL",))
        if program is not None and isinstance(name, str):
            found.append(Named(name, program))
    return tuple(found)


def _qualified_name(name: str) -> bool:
    prefix, _, part = name.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(part) <= 63 and _QUALIFIED_NAME.match(part) is not None


def _validations(
    value: Any, problems: _Problems, declared: runtime.Declarations, types: Mapping[str, str]
) -> tuple[Validation, ...]:
    found = []
    messages = dataclasses.replace(declared, authorizer=False)
    for index, raw in enumerate(_list(value)):
        item, where = _dict(raw), f"spec.validations[{index}]"
        program = _compile(item.get("expression"), f"{where}.expression", problems, declared=declared,
                           returns=("BOOL",), variable_types=types)
        message = item.get("message")
        if isinstance(message, str):
            trimmed = message.strip()
            if not trimmed:
                problems.add(invalid(f"{where}.message", message, "message must be non-empty if specified"))
            elif re.search(r"[\n\r]+", trimmed):
                problems.add(invalid(f"{where}.message", message, "message must not contain line breaks"))
        message_program = None
        if "messageExpression" in item:
            text = item.get("messageExpression")
            if not isinstance(text, str) or not text.strip():
                problems.add(invalid(f"{where}.messageExpression", text if isinstance(text, str) else "",
                                     "must be non-empty if specified"))
            else:
                checked = _compile(text, f"{where}.messageExpression", problems, declared=messages,
                                   returns=("STRING",), variable_types=types)
                # Checked without ``authorizer`` (the API server declares none for messages), run in
                # the expressions' own environment so a review converts its object only once.
                if checked is not None:
                    message_program = runtime.compile(text, declared=declared, returns=("STRING",),
                                                      variable_types=types)
        reason = item.get("reason")
        if reason is not None and reason not in REASONS:
            problems.add(unsupported(f"{where}.reason", reason, REASONS))
        if program is not None:
            found.append(Validation(program, message.strip() if isinstance(message, str) else "", message_program,
                                    reason if isinstance(reason, str) else ""))
    return tuple(found)


def _audit_annotations(
    value: Any, name: str, problems: _Problems, declared: runtime.Declarations, types: Mapping[str, str]
) -> tuple[Named, ...]:
    items = _list(value)
    if len(items) > MAX_AUDIT_ANNOTATIONS:
        problems.add(invalid("spec.auditAnnotations", len(items),
                             f"must not have more than {MAX_AUDIT_ANNOTATIONS} auditAnnotations"))
    found, seen = [], set()
    for index, raw in enumerate(items):
        item, where = _dict(raw), f"spec.auditAnnotations[{index}]"
        key = item.get("key")
        if not isinstance(key, str) or not key:
            problems.add(required(f"{where}.key"))
            continue
        if key in seen:
            problems.add(duplicate(f"{where}.key", key))
        seen.add(key)
        if not name:
            problems.add(invalid(f"{where}.key", key, "requires metadata.name be non-empty"))
        elif not _qualified_name(f"{name}/{key}"):
            problems.add(invalid(f"{where}.key", key, f"the qualified name {name}/{key} is not valid"))
        text = item.get("valueExpression")
        if isinstance(text, str) and len(text.strip().encode()) > MAX_EXPRESSION_BYTES:
            problems.add(required(f"{where}.valueExpression",
                                  f"must not exceed {MAX_EXPRESSION_BYTES} bytes in length"))
            continue
        program = _compile(text, f"{where}.valueExpression", problems, declared=declared,
                           returns=("STRING", "NULL_TYPE", "NULL"), what="valueExpression", variable_types=types)
        if program is not None:
            found.append(Named(key, program))
    return tuple(found)


def _param_kind(value: Any, problems: _Problems) -> ParamKind | None:
    if value is None:
        return None
    data = _dict(value)
    api_version, kind = data.get("apiVersion"), data.get("kind")
    if not isinstance(api_version, str) or not api_version:
        problems.add(required("spec.paramKind.apiVersion"))
    elif api_version.count("/") > 1:
        problems.add(invalid("spec.paramKind.apiVersion", api_version,
                             f"unexpected GroupVersion string: {api_version}"))
    elif not api_version.rpartition("/")[2]:
        problems.add(invalid("spec.paramKind.apiVersion", api_version, "version must be specified"))
    if not isinstance(kind, str) or not kind:
        problems.add(required("spec.paramKind.kind"))
    if isinstance(api_version, str) and isinstance(kind, str) and api_version and kind:
        return ParamKind(api_version, kind)
    return None


def _name(document: Mapping[str, Any], problems: _Problems) -> str:
    name = _dict(document.get("metadata")).get("name")
    if not isinstance(name, str) or not name:
        problems.add(required("metadata.name", "name or generateName is required"))
        return ""
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        problems.add(invalid("metadata.name", name, "a lowercase RFC 1123 subdomain must consist of lower case "
                             "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                             "character (e.g. 'example.com', regex used for validation is "
                             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"))
    return name


class Refused(Exception):
    """A policy document the API server would refuse; the message is its whole-object error."""


def _refuse(kind: str, name: str, problems: _Problems) -> None:
    if problems.items:
        listed = problems.items[0] if len(problems.items) == 1 else "[" + ", ".join(problems.items) + "]"
        raise Refused(f'{kind}.{GROUP} "{name}" is invalid: {listed}')


def validating_policy(document: Mapping[str, Any], *, source: str, libraries: int = runtime.NEWEST) -> ValidatingPolicy:
    """A ValidatingAdmissionPolicy, validated and compiled; raises :class:`Refused`."""
    problems = _Problems()
    name = _name(document, problems)
    spec = _dict(document.get("spec"))
    failure_policy = spec.get("failurePolicy", "Fail")
    if failure_policy not in ("Fail", "Ignore"):
        problems.add(unsupported("spec.failurePolicy", failure_policy, ("Fail", "Ignore")))
    if "matchConstraints" not in spec:
        problems.add(required("spec.matchConstraints"))
    constraints = _match_resources(spec.get("matchConstraints"), "spec.matchConstraints", problems,
                                   rules_required="matchConstraints" in spec)
    param_kind = _param_kind(spec.get("paramKind"), problems)
    declared = runtime.Declarations(params=spec.get("paramKind") is not None, libraries=libraries)
    conditions = _match_conditions(spec.get("matchConditions"), problems, declared)
    variables = _variables(spec.get("variables"), problems, declared)
    types = variable_types(variables)
    validations = _validations(spec.get("validations"), problems, declared, types)
    annotations = _audit_annotations(spec.get("auditAnnotations"), name, problems, declared, types)
    if not _list(spec.get("validations")) and not _list(spec.get("auditAnnotations")):
        detail = "validations or auditAnnotations must contain at least one item"
        problems.add(required("spec.validations", detail))
        problems.add(required("spec.auditAnnotations", detail))
    _refuse(POLICY, name, problems)
    return ValidatingPolicy(name, str(failure_policy), constraints, param_kind, conditions, variables, validations,
                            annotations, source, declared, _needed(conditions, variables, validations, annotations))


def _needed(
    conditions: Sequence[Named], variables: Sequence[Named], validations: Sequence[Validation],
    annotations: Sequence[Named],
) -> frozenset[str]:
    programs = [c.program for c in conditions] + [a.program for a in annotations]
    for validation in validations:
        programs.append(validation.program)
        if validation.message_program is not None:
            programs.append(validation.message_program)
    needed: set[str] = set()
    for program in programs:
        needed |= program.variables
    for variable in reversed(variables):  # a variable may only use those declared before it
        if variable.name in needed:
            needed |= variable.program.variables
    return frozenset(needed)


def _param_ref(value: Any, problems: _Problems) -> ParamRef | None:
    if value is None:
        return None
    data = _dict(value)
    name, selector = data.get("name"), data.get("selector")
    if name is not None and selector is not None:
        problems.add(forbidden("spec.paramRef.name", "name and selector are mutually exclusive"))
        problems.add(forbidden("spec.paramRef.selector", "name and selector are mutually exclusive"))
    if name is None and selector is None:
        problems.add(required("spec.paramRef", "one of name or selector must be specified"))
    if isinstance(name, str) and ("/" in name or name in (".", "..") or "%" in name):
        problems.add(invalid("spec.paramRef.name", name, "may not contain '/'"))
    action = data.get("parameterNotFoundAction")
    if not action:
        problems.add(required("spec.paramRef.parameterNotFoundAction"))
    elif action not in ("Allow", "Deny"):
        problems.add(unsupported("spec.paramRef.parameterNotFoundAction", action, ("Allow", "Deny")))
    namespace = data.get("namespace")
    return ParamRef(
        name if isinstance(name, str) else None,
        namespace if isinstance(namespace, str) and namespace else None,
        _selector(selector, "spec.paramRef.selector", problems) if selector is not None else None,
        str(action or "Deny"),
    )


def validating_binding(document: Mapping[str, Any], *, source: str, libraries: int = runtime.NEWEST) -> Binding:
    """A ValidatingAdmissionPolicyBinding, validated; raises :class:`Refused`."""
    problems = _Problems()
    name = _name(document, problems)
    spec = _dict(document.get("spec"))
    policy_name = spec.get("policyName")
    if not isinstance(policy_name, str) or not policy_name:
        problems.add(required("spec.policyName"))
        policy_name = ""
    actions = _strings(spec.get("validationActions"))
    if not actions:
        problems.add(required("spec.validationActions", "at least one validation action is required"))
    seen: set[str] = set()
    for index, action in enumerate(actions):
        if action not in ACTIONS:
            problems.add(unsupported(f"spec.validationActions[{index}]", action, ACTIONS))
        elif action in seen:
            problems.add(duplicate(f"spec.validationActions[{index}]", action))
        seen.add(action)
    if "Deny" in seen and "Warn" in seen:
        shown = "[]admissionregistration.ValidationAction{" + ", ".join(f'"{a}"' for a in actions) + "}"
        problems.add(invalid("spec.validationActions", shown, "must not contain both Deny and Warn (repeating the "
                             "same validation failure information in the API response and headers serves no purpose)"))
    param_ref = _param_ref(spec.get("paramRef"), problems)
    match = (_match_resources(spec.get("matchResources"), "spec.matchResources", problems, rules_required=False)
             if spec.get("matchResources") is not None else None)
    _refuse(BINDING, name, problems)
    return Binding(name, policy_name, param_ref, match, actions, source)


Loader = Callable[..., Any]
LOADERS: dict[str, Loader] = {POLICY: validating_policy, BINDING: validating_binding}
