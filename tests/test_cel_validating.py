"""ValidatingAdmissionPolicy: verdicts, codes, messages, warnings and audit annotations as the API
server gives them (expected texts from pkg/admission/plugin/policy/validating and its tests; see
docs/reference/cel-admission-facts.md)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from webhook.cel import loading, validating
from webhook.policy import files, model

DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment",
              "metadata": {"name": "nginx", "namespace": "default", "labels": {"app": "nginx"}},
              "spec": {"replicas": 7, "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}}


def policy_set(text: str) -> validating.PolicySet:
    problems: list[str] = []
    docs = [files.Document(f"p.yaml (document {i + 1}):1", d) for i, d in enumerate(yaml.safe_load_all(text)) if d]
    loaded = loading.load(docs, problems).validating
    assert problems == []
    return loaded


def refused(text: str) -> list[str]:
    problems: list[str] = []
    docs = [files.Document(f"p.yaml (document {i + 1}):1", d) for i, d in enumerate(yaml.safe_load_all(text)) if d]
    loading.load(docs, problems)
    return problems


def ctx(obj: dict[str, Any] | None = None, **fields: Any) -> model.ReviewContext:
    base: dict[str, Any] = {"operation": "CREATE", "kind": "Deployment", "group": "apps", "version": "v1",
                            "resource": "deployments", "namespace": "default", "name": "nginx", "username": "alice"}
    base.update(fields)
    return model.ReviewContext(**base)


def policy(name: str = "demo-policy.example.com", *, validations: str = "", spec: str = "") -> str:
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}}
{spec}  validations:
{validations or "  - expression: object.spec.replicas <= 5"}
"""


def binding(name: str = "demo-binding-test.example.com", policy_name: str = "demo-policy.example.com", *,
            actions: str = "[Deny]", extra: str = "") -> str:
    return f"""
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: {name}}}
spec:
  policyName: {policy_name}
  validationActions: {actions}
{extra}"""


def test_failed_expression_is_the_message_without_message_or_message_expression() -> None:
    # The API server's own example: deployments.apps "nginx" is forbidden: <this message>
    verdict = validating.evaluate(policy_set(policy() + binding()), DEPLOYMENT, ctx())
    assert verdict.denial == validating.Denial(
        "ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied "
        "request: failed expression: object.spec.replicas <= 5",
        "Invalid", 422, "demo-policy.example.com", "demo-binding-test.example.com",
    )


def test_allowed_when_every_validation_holds() -> None:
    small = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 3}}
    verdict = validating.evaluate(policy_set(policy() + binding()), small, ctx())
    assert verdict == validating.Verdict()


@pytest.mark.parametrize(("reason", "code"), [("Forbidden", 403), ("Invalid", 422), ("RequestEntityTooLarge", 413)])
def test_reason_gives_the_http_code(reason: str, code: int) -> None:
    validations = f"  - {{expression: 'object.spec.replicas <= 5', message: too many, reason: {reason}}}"
    denial = validating.evaluate(policy_set(policy(validations=validations) + binding()), DEPLOYMENT, ctx()).denial
    assert denial is not None and (denial.reason, denial.code) == (reason, code)
    assert denial.message.endswith("denied request: too many")


LONG_MESSAGE = "+".join(["'" + "x" * 1024 + "'"] * 5) + " + 'x'"  # 5121 bytes


@pytest.mark.parametrize(
    ("message_expression", "expected"),
    [
        ("'replicas ' + string(object.spec.replicas) + ' > 5'", "replicas 7 > 5"),
        ("'   '", "static message"),  # blank after trimming: falls back to message
        ("'two\\nlines'", "static message"),  # line breaks are refused
        (LONG_MESSAGE, "static message"),  # over 5120 bytes
        ("string(object.spec.missing)", "static message"),  # an error falls back too
    ],
)
def test_message_expression_and_its_fallbacks(message_expression: str, expected: str) -> None:
    validations = (f"  - expression: object.spec.replicas <= 5\n    message: static message\n"
                   f"    messageExpression: {json.dumps(message_expression)}")
    denial = validating.evaluate(policy_set(policy(validations=validations) + binding()), DEPLOYMENT, ctx()).denial
    assert denial is not None
    assert denial.message.endswith(f"denied request: {expected}")


def test_warn_and_audit_actions() -> None:
    verdict = validating.evaluate(policy_set(policy() + binding(actions="[Warn, Audit]")), DEPLOYMENT, ctx())
    assert verdict.denial is None
    assert verdict.warnings == [
        "Validation failed for ValidatingAdmissionPolicy 'demo-policy.example.com' with binding "
        "'demo-binding-test.example.com': failed expression: object.spec.replicas <= 5"
    ]
    assert verdict.audit == {
        "validation.policy.admission.k8s.io/validation_failure":
            '[{"message":"failed expression: object.spec.replicas \\u003c= 5","policy":"demo-policy.example.com",'
            '"binding":"demo-binding-test.example.com","expressionIndex":0,"validationActions":["Warn","Audit"]}]'
    }
    assert json.loads(verdict.audit["validation.policy.admission.k8s.io/validation_failure"])[0]["message"] == (
        "failed expression: object.spec.replicas <= 5")


def test_runtime_error_denies_under_fail_and_is_ignored_under_ignore() -> None:
    validations = "  - expression: object.spec.paused == true"
    denial = validating.evaluate(policy_set(policy(validations=validations) + binding()), DEPLOYMENT, ctx()).denial
    assert denial is not None and denial.message == (
        "ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied "
        "request: expression 'object.spec.paused == true' resulted in error: no such key: paused")
    assert (denial.reason, denial.code) == ("Invalid", 422)
    ignoring = policy(validations=validations).replace("failurePolicy: Fail", "failurePolicy: Ignore")
    assert validating.evaluate(policy_set(ignoring + binding()), DEPLOYMENT, ctx()) == validating.Verdict()


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("1 / (object.spec.replicas - 7) == 1", "division by zero"),
        ("1 % (object.spec.replicas - 7) == 1", "modulus by zero"),
        ("object.spec.replicas + 9223372036854775807 > 0", "integer overflow"),
        ("object.spec.template.spec.containers[3].name == 'x'", "index out of bounds: 3"),
    ],
)
def test_runtime_errors_use_cel_go_wording(expression: str, error: str) -> None:
    validations = f"  - expression: \"{expression}\""
    denial = validating.evaluate(policy_set(policy(validations=validations) + binding()), DEPLOYMENT, ctx()).denial
    assert denial is not None
    assert denial.message.endswith(f"denied request: expression '{expression}' resulted in error: {error}")


def test_variables_are_lazy_and_their_errors_are_composited() -> None:
    spec = ("  variables:\n  - {name: broken, expression: object.spec.nothere}\n"
            "  - {name: unused, expression: object.spec.alsomissing}\n"
            "  - {name: replicas, expression: object.spec.replicas}\n")
    validations = "  - expression: variables.replicas <= 10\n  - expression: variables.broken == 1"
    denial = validating.evaluate(policy_set(policy(validations=validations, spec=spec) + binding()), DEPLOYMENT,
                                 ctx()).denial
    assert denial is not None and denial.message.endswith(
        "denied request: expression 'variables.broken == 1' resulted in error: "
        'composited variable "broken" fails to evaluate: no such key: nothere')


def configmap_policy(action: str = "Deny", *, selector: bool = False) -> str:
    ref = ("    selector: {matchLabels: {tier: limits}}" if selector else "    name: replica-limits")
    return f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: replica-limit}}
spec:
  paramKind: {{apiVersion: v1, kind: ConfigMap}}
  matchConstraints:
    resourceRules:
    - {{apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}}
  validations:
  - expression: object.spec.replicas <= int(params.data.maxReplicas)
    messageExpression: "'replicas must be at most ' + params.data.maxReplicas"
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {{name: replica-limit-binding}}
spec:
  policyName: replica-limit
  validationActions: [Deny]
  paramRef:
{ref}
    parameterNotFoundAction: {action}
"""


LIMITS = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: replica-limits, namespace: default, labels: {tier: limits}}
data: {maxReplicas: "5"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: replica-limits-b, namespace: default, labels: {tier: limits}}
data: {maxReplicas: "8"}
"""


def test_params_by_name_in_the_request_namespace() -> None:
    denial = validating.evaluate(policy_set(configmap_policy() + LIMITS), DEPLOYMENT, ctx()).denial
    assert denial == validating.Denial(
        "ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-binding' denied request: "
        "replicas must be at most 5", "Forbidden", 403, "replica-limit", "replica-limit-binding")


def test_params_by_selector_evaluate_each_match() -> None:
    verdict = validating.evaluate(policy_set(configmap_policy(selector=True) + LIMITS), DEPLOYMENT, ctx())
    assert verdict.denial is not None and verdict.denial.message.endswith("replicas must be at most 5")
    nine = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 6}}
    assert validating.evaluate(policy_set(configmap_policy(selector=True) + LIMITS), nine, ctx()).denial is not None


def test_params_not_found() -> None:
    other = ctx(namespace="other")
    denial = validating.evaluate(policy_set(configmap_policy() + LIMITS), DEPLOYMENT, other).denial
    assert denial is not None and denial.message == (
        "ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-binding' denied request: "
        "failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction")
    allowing = policy_set(configmap_policy("Allow") + LIMITS)
    assert validating.evaluate(allowing, DEPLOYMENT, other) == validating.Verdict()


def test_match_conditions_skip_or_fail() -> None:
    skip = "  matchConditions:\n  - {name: not-nginx, expression: \"object.metadata.name != 'nginx'\"}\n"
    assert validating.evaluate(policy_set(policy(spec=skip) + binding()), DEPLOYMENT, ctx()) == validating.Verdict()
    broken = "  matchConditions:\n  - {name: broken, expression: \"object.metadata.nope == 'x'\"}\n"
    denial = validating.evaluate(policy_set(policy(spec=broken) + binding()), DEPLOYMENT, ctx()).denial
    assert denial is not None and denial.message.endswith(
        "denied request: expression 'object.metadata.nope == 'x'' resulted in error: no such key: nope")


def test_audit_annotations_are_keyed_by_policy_name() -> None:
    spec = "  auditAnnotations:\n  - {key: high-replicas, valueExpression: \"'replicas: ' + string(object.spec.replicas)\"}\n"
    verdict = validating.evaluate(policy_set(policy(spec=spec) + binding(actions="[Audit]")), DEPLOYMENT, ctx())
    assert verdict.audit["demo-policy.example.com/high-replicas"] == "replicas: 7"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"namespace": "kube-system"}, False),  # namespaceSelector below
        ({"operation": "DELETE"}, False),  # not in the rule's operations
        ({"sub_resource": "status"}, False),  # "deployments" does not match deployments/status
        ({}, True),
    ],
)
def test_matching(change: dict[str, Any], expected: bool) -> None:
    spec_binding = ("  matchResources:\n    namespaceSelector:\n      matchExpressions:\n"
                    "      - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}\n")
    loaded = policy_set(policy() + binding(extra=spec_binding))
    request = ctx(**change)
    request.namespace_labels = {"kubernetes.io/metadata.name": request.namespace}
    verdict = validating.evaluate(loaded, DEPLOYMENT, request)
    assert (verdict.denial is not None) is expected


def test_requests_for_policies_themselves_are_exempt() -> None:
    loaded = policy_set(policy().replace("[apps]", "['*']").replace("[deployments]", "['*']") + binding())
    request = ctx(group="admissionregistration.k8s.io", resource="validatingadmissionpolicies", namespace="")
    assert validating.evaluate(loaded, {"spec": {}}, request) == validating.Verdict()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (policy(validations="  - {expression: 'true', reason: Bad}") + binding(),
         'p.yaml (document 1):1: ValidatingAdmissionPolicy.admissionregistration.k8s.io "demo-policy.example.com" '
         'is invalid: spec.validations[0].reason: Unsupported value: "Bad": supported values: "Forbidden", '
         '"Invalid", "RequestEntityTooLarge"'),
        (policy() + binding(actions="[Deny, Warn]"),
         'p.yaml (document 2):1: ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io '
         '"demo-binding-test.example.com" is invalid: spec.validationActions: Invalid value: '
         '[]admissionregistration.ValidationAction{"Deny", "Warn"}: must not contain both Deny and Warn '
         '(repeating the same validation failure information in the API response and headers serves no purpose)'),
        (policy(validations="  - expression: object.spec.paused") + binding(),
         'p.yaml (document 1):1: ValidatingAdmissionPolicy.admissionregistration.k8s.io "demo-policy.example.com" '
         'is invalid: spec.validations[0].expression: Invalid value: "object.spec.paused": must evaluate to bool '
         'but got dyn'),
        (policy(validations="  - expression: \"'a' + 1 == 'b'\"") + binding(),
         'p.yaml (document 1):1: ValidatingAdmissionPolicy.admissionregistration.k8s.io "demo-policy.example.com" '
         "is invalid: spec.validations[0].expression: Invalid value: \"'a' + 1 == 'b'\": compilation failed: "
         "ERROR: <input>:1:5: found no matching overload for '_+_' applied to '(string, int)'\n"
         " | 'a' + 1 == 'b'\n | ....^"),
        (policy(validations="  - expression: params.max > 1") + binding(),
         'p.yaml (document 1):1: ValidatingAdmissionPolicy.admissionregistration.k8s.io "demo-policy.example.com" '
         'is invalid: spec.validations[0].expression: Invalid value: "params.max > 1": compilation failed: '
         "ERROR: <input>:1:1: undeclared reference to 'params' (in container '')\n | params.max > 1\n | ^"),
        (binding(extra="  paramRef: {name: a, selector: {}, parameterNotFoundAction: Deny}\n").lstrip("-\n"),
         'p.yaml (document 1):1: ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io '
         '"demo-binding-test.example.com" is invalid: [spec.paramRef.name: Forbidden: name and selector are '
         'mutually exclusive, spec.paramRef.selector: Forbidden: name and selector are mutually exclusive]'),
    ],
)
def test_documents_the_api_server_would_refuse_are_refused_with_its_words(text: str, error: str) -> None:
    assert refused(text) == [error]


def test_list_valued_variables_feed_later_expressions() -> None:
    spec = "  variables:\n  - {name: containers, expression: object.spec.template.spec.containers}\n"
    validations = "  - expression: \"variables.containers.all(c, c.image.startsWith('registry.example.com/'))\""
    denial = validating.evaluate(policy_set(policy(validations=validations, spec=spec) + binding()), DEPLOYMENT,
                                 ctx()).denial
    assert denial is not None and denial.message.endswith(
        "denied request: failed expression: variables.containers.all(c, c.image.startsWith('registry.example.com/'))")


OPTIONAL_VARIABLES = (
    "  variables:\n"
    "  - {name: replicas, expression: \"object.spec.?replicas\"}\n"
    "  - {name: paused, expression: \"object.spec.?paused\"}\n"
    "  - {name: budget, expression: \"variables.replicas.orValue(1) * 2\"}\n"
    "  - {name: halved, expression: \"variables.replicas.optMap(r, r / 0)\"}\n"
)


@pytest.mark.parametrize(("validation", "replicas", "expected"), [
    # the Deployment sets replicas (7) and not paused
    ("variables.replicas.orValue(1) <= 5", 7, "failed expression: variables.replicas.orValue(1) <= 5"),
    ("variables.replicas.orValue(1) <= 5", None, None),
    ("variables.replicas.hasValue() && !variables.paused.hasValue()", 7, None),
    ("variables.replicas.value() == 7 && variables.paused == optional.none()", 7, None),
    ("variables.budget < 10", 7, "failed expression: variables.budget < 10"),
    ("variables.budget == 2", None, None),
    # a variable whose value is an optional fails as any other, where it is used
    ("!variables.replicas.hasValue() || variables.halved.hasValue()", 7,
     "expression '!variables.replicas.hasValue() || variables.halved.hasValue()' resulted in error: composited "
     'variable "halved" fails to evaluate: division by zero'),
    ("!variables.replicas.hasValue() || variables.halved.hasValue()", None, None),
    # variables.?name: the variable's value wrapped once more (found in review: never evaluated)
    ("variables.?replicas.hasValue() && variables.?replicas.value().hasValue()", 7, None),
    ("variables.?replicas.value().orValue(0) == 7", 7, None),
    ("variables.?budget.orValue(0) == 2", None, None),
])
def test_optional_valued_variables_hold_their_optionals(validation: str, replicas: int | None,
                                                         expected: str | None) -> None:
    """As the API server: ``object.spec.?replicas`` is an ``optional_type(dyn)`` variable, unwrapped
    where it is used, absent fields give ``optional.none()``."""
    deployment = copy.deepcopy(DEPLOYMENT)
    if replicas is None:
        deployment["spec"].pop("replicas")
    else:
        assert deployment["spec"]["replicas"] == replicas
    denial = validating.evaluate(policy_set(policy(validations=f'  - expression: "{validation}"',
                                                   spec=OPTIONAL_VARIABLES) + binding()), deployment, ctx()).denial
    if expected is None:
        assert denial is None
    else:
        assert denial is not None and denial.message == (
            "ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' "
            f"denied request: {expected}")


def test_an_optional_variable_used_as_its_value_is_refused_at_load_as_upstream_refuses_it() -> None:
    assert refused(policy(validations="  - expression: variables.paused == true", spec=OPTIONAL_VARIABLES)
                   + binding()) == _invalid(
        "variables.paused == true", "compilation failed: ERROR: <input>:1:18: found no matching overload for '_==_' "
        "applied to '(optional_type(dyn), bool)'\n | variables.paused == true\n | .................^")


def test_params_from_the_cluster_are_found_and_a_file_object_of_the_same_name_wins() -> None:
    from webhook import cluster

    live = cluster.ParamCache()
    key = ("v1", "ConfigMap")
    live.apply_event(key, "ADDED", {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "replica-limits", "namespace": "other"},
                                     "data": {"maxReplicas": "20"}})
    request = ctx(namespace="other")
    request.params = live
    loaded = policy_set(configmap_policy())  # no ConfigMap in the files
    assert validating.evaluate(loaded, DEPLOYMENT, request).denial is None  # 7 <= 20, from the cluster
    live.apply_event(key, "MODIFIED", {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "replica-limits", "namespace": "other"},
                                        "data": {"maxReplicas": "2"}})
    denial = validating.evaluate(loaded, DEPLOYMENT, request).denial
    assert denial is not None and denial.message.endswith("replicas must be at most 2")
    live.apply_event(key, "DELETED", {"metadata": {"name": "replica-limits", "namespace": "other"}})
    denial = validating.evaluate(loaded, DEPLOYMENT, request).denial
    assert denial is not None and denial.message.endswith(
        "no params found for policy binding with `Deny` parameterNotFoundAction")
    # In the namespace the files cover, the file's object replaces the cluster's of the same name.
    live.apply_event(key, "ADDED", {"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": "replica-limits", "namespace": "default"},
                                     "data": {"maxReplicas": "50"}})
    in_default = ctx()
    in_default.params = live
    denial = validating.evaluate(policy_set(configmap_policy() + LIMITS), DEPLOYMENT, in_default).denial
    assert denial is not None and denial.message.endswith("replicas must be at most 5")


def test_variables_have_their_expressions_types_as_upstream_declares_them() -> None:
    # A bool variable is a whole validation, a string variable a whole messageExpression.
    spec = ("  variables:\n  - {name: small, expression: 'object.spec.replicas <= 5'}\n"
            "  - {name: why, expression: \"'replicas ' + string(object.spec.replicas) + ' over 5'\"}\n"
            "  - {name: both, expression: 'variables.small && has(object.metadata.labels)'}\n")
    validations = "  - {expression: variables.both, messageExpression: variables.why}"
    verdict = validating.evaluate(policy_set(policy(validations=validations, spec=spec) + binding()), DEPLOYMENT,
                                  ctx())
    assert verdict.denial is not None and verdict.denial.message == (
        "ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied "
        "request: replicas 7 over 5")
    small = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 3}}
    assert validating.evaluate(policy_set(policy(validations=validations, spec=spec) + binding()), small,
                               ctx()).denial is None


def test_a_variable_used_against_its_type_is_refused_at_load_as_upstream_refuses_it() -> None:
    spec = "  variables:\n  - {name: name, expression: object.metadata.name}\n"
    assert refused(policy(validations="  - expression: variables.name", spec=spec) + binding()) == [
        'p.yaml (document 1):1: ValidatingAdmissionPolicy.admissionregistration.k8s.io "demo-policy.example.com" '
        'is invalid: spec.validations[0].expression: Invalid value: "variables.name": must evaluate to bool but '
        "got dyn"]
    spec = "  variables:\n  - {name: name, expression: string(object.metadata.name)}\n"
    problems = refused(policy(validations="  - expression: variables.name", spec=spec) + binding())
    assert problems == [
        'p.yaml (document 1):1: ValidatingAdmissionPolicy.admissionregistration.k8s.io "demo-policy.example.com" '
        'is invalid: spec.validations[0].expression: Invalid value: "variables.name": must evaluate to bool but '
        "got string"]
    problems = refused(policy(validations="  - expression: variables.name > 1", spec=spec) + binding())
    assert problems == [
        'p.yaml (document 1):1: ValidatingAdmissionPolicy.admissionregistration.k8s.io "demo-policy.example.com" '
        'is invalid: spec.validations[0].expression: Invalid value: "variables.name > 1": compilation failed: '
        "ERROR: <input>:1:16: found no matching overload for '_>_' applied to '(string, int)'\n"
        " | variables.name > 1\n | ...............^"]


def _invalid(expression: str, detail: str, field: str = "validations[0].expression") -> list[str]:
    return ['p.yaml (document 1):1: ValidatingAdmissionPolicy.admissionregistration.k8s.io "demo-policy.example.com" '
            f'is invalid: spec.{field}: Invalid value: "{expression}": {detail}']


def test_list_map_and_quantity_variables_are_typed_as_upstream_types_them() -> None:
    # The API server declares every composited variable with its expression's type, lists and maps
    # included, so these policies are refused when created, not denied at each review.
    spec = ("  variables:\n  - {name: names, expression: 'object.spec.template.spec.containers.map(c, c.name)'}\n"
            "  - {name: teams, expression: \"['web', 'data']\"}\n"
            "  - {name: limits, expression: \"{'web': 3}\"}\n"
            "  - {name: memory, expression: \"quantity('1Gi')\"}\n"
            "  - {name: team, expression: \"'web'\"}\n"
            "  - {name: suffixed, expression: \"variables.teams.map(t, t + '-team')\"}\n")

    def problems(validation: str) -> list[str]:
        return refused(policy(validations=validation, spec=spec) + binding())

    assert problems("  - expression: variables.names") == _invalid(
        "variables.names", "must evaluate to bool but got list(dyn)")
    assert problems("  - expression: variables.names + 1 == []") == _invalid(
        "variables.names + 1 == []", "compilation failed: ERROR: <input>:1:17: found no matching overload for '_+_' "
        "applied to '(list(dyn), int)'\n | variables.names + 1 == []\n | ................^")
    assert problems("  - expression: variables.teams.exists(t, t > 1)") == _invalid(
        "variables.teams.exists(t, t > 1)", "compilation failed: ERROR: <input>:1:29: found no matching overload for "
        "'_>_' applied to '(string, int)'\n | variables.teams.exists(t, t > 1)\n | ............................^")
    assert problems("  - expression: \"variables.limits['web'] == 'three'\"") == _invalid(
        "variables.limits['web'] == 'three'", "compilation failed: ERROR: <input>:1:25: found no matching overload "
        "for '_==_' applied to '(int, string)'\n | variables.limits['web'] == 'three'\n"
        " | ........................^")
    assert problems("  - expression: variables.memory > 1") == _invalid(
        "variables.memory > 1", "compilation failed: ERROR: <input>:1:18: found no matching overload for '_>_' "
        "applied to '(kubernetes.Quantity, int)'\n | variables.memory > 1\n | .................^")
    assert problems("  - expression: variables.team.name == 'x'") == _invalid(
        "variables.team.name == 'x'", "compilation failed: ERROR: <input>:1:15: type 'string' does not support field "
        "selection\n | variables.team.name == 'x'\n | ..............^")
    # A variable built from another keeps the type it computes: list(string), not list(dyn).
    assert problems("  - expression: variables.suffixed") == _invalid(
        "variables.suffixed", "must evaluate to bool but got list(string)")
    assert problems("  - {expression: 'true', messageExpression: variables.teams}") == _invalid(
        "variables.teams", "must evaluate to string but got list(string)", "validations[0].messageExpression")


def test_typed_list_map_and_quantity_variables_evaluate_as_before() -> None:
    spec = ("  variables:\n  - {name: names, expression: 'object.spec.template.spec.containers.map(c, c.name)'}\n"
            "  - {name: allowed, expression: \"['web', 'sidecar']\"}\n"
            "  - {name: limits, expression: \"{'web': 3}\"}\n"
            "  - {name: most, expression: \"quantity('5')\"}\n")
    validations = ("  - expression: variables.names.all(n, n in variables.allowed)\n"
                   "    messageExpression: \"'containers ' + variables.names.filter(n, !(n in variables.allowed))"
                   ".join(', ') + ' are not allowed'\"\n"
                   "  - expression: \"quantity(string(object.spec.replicas)).isLessThan(variables.most) || "
                   "object.spec.replicas <= variables.limits['web']\"\n"
                   "    message: too many replicas\n")
    loaded = policy_set(policy(validations=validations, spec=spec) + binding())
    verdict = validating.evaluate(loaded, DEPLOYMENT, ctx())
    assert verdict.denial is not None and verdict.denial.message == (
        "ValidatingAdmissionPolicy 'demo-policy.example.com' with binding 'demo-binding-test.example.com' denied "
        "request: containers nginx are not allowed")
    web = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 3, "template": {
        **DEPLOYMENT["spec"]["template"], "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}
    assert validating.evaluate(loaded, web, ctx()).denial is None
    crowded = {**web, "spec": {**web["spec"], "replicas": 7}}
    verdict = validating.evaluate(loaded, crowded, ctx())
    assert verdict.denial is not None and verdict.denial.message.endswith("denied request: too many replicas")


def test_numbers_of_different_types_compare_as_in_the_api_server() -> None:
    # CrossTypeNumericComparisons (the base environment since 1.28): <, <=, >, >= across int, uint
    # and double compile and evaluate; == between them is still refused, as cel-go refuses it.
    spec = "  variables:\n  - {name: ratios, expression: '[0.5, 1.5]'}\n"
    validations = "  - expression: variables.ratios.all(r, r < 2) && object.spec.replicas > 6.5 && 1u <= 1.0"
    assert validating.evaluate(policy_set(policy(validations=validations, spec=spec) + binding()), DEPLOYMENT,
                               ctx()).denial is None  # replicas is 7
    assert refused(policy(validations="  - expression: 1 == 1.0") + binding()) == _invalid(
        "1 == 1.0", "compilation failed: ERROR: <input>:1:3: found no matching overload for '_==_' applied to "
        "'(int, double)'\n | 1 == 1.0\n | ..^")


def test_a_comprehension_variable_named_variables_is_not_the_composited_variables() -> None:
    spec = "  variables:\n  - {name: x, expression: \"'text'\"}\n"
    validations = "  - expression: \"[{'x': 1}].all(variables, variables.x == 1)\""
    assert validating.evaluate(policy_set(policy(validations=validations, spec=spec) + binding()), DEPLOYMENT,
                               ctx()).denial is None


def test_the_resource_as_requested_comes_from_the_review() -> None:
    request = {"requestResource": {"group": "apps", "version": "v1", "resource": "deployments"}}
    # The API server omits requestSubResource when it is empty: absent is "", whatever subResource says.
    assert ctx(request=request, sub_resource="scale").request_resource() == ("apps", "v1", "deployments", "")
    request["requestSubResource"] = "scale"
    assert ctx(request=request).request_resource() == ("apps", "v1", "deployments", "scale")
    assert ctx(request={"requestResource": {"group": "apps"}}).request_resource() is None
    assert ctx().request_resource() is None


def test_has_and_optional_selection_of_a_typed_variable_are_left_as_written() -> None:
    spec = "  variables:\n  - {name: ok, expression: 'true'}\n"
    validations = "  - expression: has(variables.ok) && variables.?ok.orValue(false) && variables.ok"
    assert validating.evaluate(policy_set(policy(validations=validations, spec=spec) + binding()), DEPLOYMENT,
                               ctx()).denial is None


# --- matchPolicy: the request as made, and with Equivalent the version it was converted to ---------

EVENT = {"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "default"},
         "note": "x", "reason": "Pulled"}


def _event_policy(match_policy: str, group: str, *, exclude: str = "") -> validating.PolicySet:
    spec = f"""  matchConstraints:
    matchPolicy: {match_policy}
    resourceRules:
    - {{apiGroups: ["{group}"], apiVersions: [v1], operations: [CREATE], resources: [events]}}
{exclude}"""
    text = f"""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {{name: events}}
spec:
{spec}  validations:
  - expression: "false"
    message: checked
""" + binding("events", "events")
    return policy_set(text)


def _converted_event(**fields: Any) -> model.ReviewContext:
    """A core/v1 Event created, sent to this webhook as events.k8s.io/v1 (the API server converted it
    because the webhook registered that version with matchPolicy Equivalent)."""
    request = {"requestKind": {"group": "", "version": "v1", "kind": "Event"},
               "requestResource": {"group": "", "version": "v1", "resource": "events"}, "requestSubResource": ""}
    values: dict[str, Any] = {"kind": "Event", "group": "events.k8s.io", "version": "v1", "resource": "events",
                              "name": "e1", "request": request}
    values.update(fields)
    return ctx(**values)


@pytest.mark.parametrize(("match_policy", "group", "checked"), [
    ("Equivalent", "events.k8s.io", True),  # matched through the equivalent the object was sent in
    ("Exact", "events.k8s.io", False),  # the request was made for core events
    ("Exact", "", True),
    ("Equivalent", "", True),
])
def test_match_policy_on_a_converted_request(match_policy: str, group: str, checked: bool) -> None:
    verdict = validating.evaluate(_event_policy(match_policy, group), EVENT, _converted_event())
    assert (verdict.denial is not None) is checked


def test_match_policy_without_conversion_matches_the_resource_as_sent() -> None:
    unconverted = ctx(kind="Event", group="events.k8s.io", version="v1", resource="events", name="e1",
                      request={"requestResource": {"group": "events.k8s.io", "version": "v1", "resource": "events"}})
    for match_policy in ("Exact", "Equivalent"):
        assert validating.evaluate(_event_policy(match_policy, "events.k8s.io"), EVENT, unconverted).denial is not None
        assert validating.evaluate(_event_policy(match_policy, ""), EVENT, unconverted).denial is None


@pytest.mark.parametrize(("match_policy", "checked"), [("Equivalent", False), ("Exact", True)])
def test_exclude_rules_follow_the_match_policy_too(match_policy: str, checked: bool) -> None:
    exclude = """    excludeResourceRules:
    - {apiGroups: [events.k8s.io], apiVersions: [v1], operations: [CREATE], resources: [events]}
"""
    verdict = validating.evaluate(_event_policy(match_policy, "", exclude=exclude), EVENT, _converted_event())
    assert (verdict.denial is not None) is checked


def test_null_results_do_not_use_up_references_to_none() -> None:
    """cel-expr-python 0.1 drops a reference to ``None`` for each null it converts; on Python 3.11
    that aborted the interpreter (``none_dealloc``) after some thousands of reviews whose audit
    annotations or variables were null. runtime.evaluate gives them back."""
    import gc
    import sys

    from webhook.cel import runtime

    declared = runtime.Declarations()
    bound = runtime.activation({"object": {"a": None, "b": [None, 1]}, "oldObject": None, "request": {},
                                "namespaceObject": None, "variables": {}}, declared=declared)
    for source in ("null", "[null, null]", "{'a': null, 'b': [null]}", "object.b", "oldObject"):
        program = runtime.compile(source, declared=declared, returns=None)
        runtime.evaluate(program, bound)
        gc.collect()
        before = sys.getrefcount(None)
        for _ in range(5000):
            runtime.evaluate(program, bound)
        gc.collect()
        assert sys.getrefcount(None) - before > -100, source  # a leak would be -5,000 per null


def test_a_list_holding_an_optional_is_an_error_not_a_crash() -> None:
    from webhook.cel import runtime

    declared = runtime.Declarations()
    program = runtime.compile("[optional.none()]", declared=declared, returns=None)
    bound = runtime.activation({"object": None, "oldObject": None, "request": {}, "namespaceObject": None,
                                "variables": {}}, declared=declared)
    assert runtime.evaluate(program, bound) == runtime.Result(error=runtime.UNSUPPORTED_RESULT)


def test_an_optional_variable_from_the_format_library_loads() -> None:
    """format.named() gives an optional: its variable is rewritten for the runtime like any other
    use of the format library (found in review: it raised out of the loader)."""
    spec = "  variables:\n  - {name: fmt, expression: \"format.named('dns1123Label')\"}\n"
    validations = "  - expression: \"variables.fmt.hasValue() && !variables.fmt.value().validate(object.metadata.name).hasValue()\""
    verdict = validating.evaluate(policy_set(policy(validations=validations, spec=spec) + binding()), DEPLOYMENT, ctx())
    assert verdict.denial is None
    bad = copy.deepcopy(DEPLOYMENT)
    bad["metadata"]["name"] = "Not_A_Label"
    denial = validating.evaluate(policy_set(policy(validations=validations, spec=spec) + binding()), bad, ctx()).denial
    assert denial is not None and denial.message.endswith("failed expression: variables.fmt.hasValue() && "
                                                          "!variables.fmt.value().validate(object.metadata.name).hasValue()")


def test_match_conditions_cannot_use_variables_as_upstream_refuses_them() -> None:
    """The API server checks matchConditions with its compiler without variable composition
    (validation.go, validateMatchConditionsExpression: the stateless compiler)."""
    spec = ("  variables:\n  - {name: r, expression: \"object.spec.replicas\"}\n"
            "  matchConditions:\n  - {name: m, expression: \"variables.r > 1\"}\n")
    assert refused(policy(validations="  - expression: \"true\"", spec=spec) + binding()) == _invalid(
        "variables.r > 1", "compilation failed: ERROR: <input>:1:1: undeclared reference to 'variables' "
        "(in container '')\n | variables.r > 1\n | ^", field="matchConditions[0].expression")
