"""MutatingAdmissionPolicy: validation on create, JSONPatch and ApplyConfiguration mutations,
failurePolicy, matchConditions, params and reinvocation, with the API server's texts (from
pkg/admission/plugin/policy/mutating, evanphx/json-patch v4 and structured-merge-diff; see section 9
of docs/reference/cel-admission-facts.md)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from webhook import patch
from webhook.cel import loading, mutating, rewrite
from webhook.policy import files, model

EXAMPLES = Path(__file__).resolve().parents[1] / "policies" / "examples" / "cel" / "mutating"

POD: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "env": [{"name": "MODE", "value": "prod"}]}]},
}
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
}


def documents(text: str) -> list[files.Document]:
    return [files.Document(f"p.yaml (document {i + 1}):1", d) for i, d in enumerate(yaml.safe_load_all(text)) if d]


def load(text: str) -> mutating.PolicySet:
    problems: list[str] = []
    loaded = loading.load(documents(text), problems)
    assert problems == []
    return loaded.mutating


def refused(text: str) -> list[str]:
    problems: list[str] = []
    loading.load(documents(text), problems)
    return problems


def policy(
    mutations: str, *, name: str = "p", spec: str = "", kind: str = "pods", group: str = '""',
    reinvocation: str = "Never", version: str = "v1beta1",
) -> str:
    return f"""
apiVersion: admissionregistration.k8s.io/{version}
kind: MutatingAdmissionPolicy
metadata: {{name: {name}}}
spec:
  matchConstraints:
    resourceRules:
    - {{apiGroups: [{group}], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [{kind}]}}
  reinvocationPolicy: {reinvocation}
{spec}  mutations:
{mutations}
---
apiVersion: admissionregistration.k8s.io/{version}
kind: MutatingAdmissionPolicyBinding
metadata: {{name: {name}-binding}}
spec:
  policyName: {name}
"""


def json_patch(expression: str) -> str:
    return f"  - patchType: JSONPatch\n    jsonPatch:\n      expression: {json.dumps(expression)}"


def apply_configuration(expression: str) -> str:
    return f"  - patchType: ApplyConfiguration\n    applyConfiguration:\n      expression: {json.dumps(expression)}"


def ctx(obj: dict[str, Any] | None = None, **fields: Any) -> model.ReviewContext:
    obj = obj or POD
    group, _, version = obj["apiVersion"].rpartition("/")
    values: dict[str, Any] = {"operation": "CREATE", "kind": obj["kind"], "group": group, "version": version,
                              "resource": obj["kind"].lower() + "s", "namespace": "shop", "name": "web",
                              "username": "alice", "namespace_labels": {}}
    values.update(fields)
    return model.ReviewContext(**values)


def mutate(policy_set: mutating.PolicySet, obj: dict[str, Any] | None = None) -> mutating.Result:
    obj = copy.deepcopy(obj or POD)
    untouched = copy.deepcopy(obj)
    result = mutating.apply(policy_set, obj, ctx(obj))
    assert obj == untouched  # the object passed in is never modified
    return result


def ops(policy_set: mutating.PolicySet, obj: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The JSON patch the engine would send: the original diffed against the mutated copy."""
    obj = obj or POD
    result = mutate(policy_set, obj)
    assert result.denial is None
    return patch.diff(obj, result.object) if result.object is not None else []


def denial(policy_set: mutating.PolicySet, obj: dict[str, Any] | None = None) -> str:
    result = mutate(policy_set, obj)
    assert result.denial is not None
    assert result.object is None
    return result.denial.message


# --- validation on create --------------------------------------------------------------------------

INVALID = 'MutatingAdmissionPolicy.admissionregistration.k8s.io "p" is invalid: '


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (policy(json_patch("[]"), reinvocation='""'), "spec.reinvocationPolicy: Required value"),
        (policy(json_patch("[]"), reinvocation="Always"),
         'spec.reinvocationPolicy: Unsupported value: "Always": supported values: "IfNeeded", "Never"'),
        (policy("    []"), "spec.mutations: Required value: mutations must contain at least one item"),
        (policy("  - jsonPatch: {expression: '[]'}"), "spec.mutations[0].patchType: Required value"),
        (policy("  - {patchType: Merge, jsonPatch: {expression: '[]'}}"),
         'spec.mutations[0].patchType: Unsupported value: "Merge": supported values: "ApplyConfiguration", '
         '"JSONPatch"'),
        (policy("  - {patchType: JSONPatch, jsonPatch: {expression: '  '}}"),
         "spec.mutations[0].jsonPatch.expression: Required value"),
        (policy(apply_configuration("'x'")),
         'spec.mutations[0].applyConfiguration.expression: Invalid value: "\'x\'": must evaluate to Object but got '
         "string"),
        (policy(apply_configuration("Object.spec{replicas: 1}")),
         'spec.mutations[0].applyConfiguration.expression: Invalid value: "Object.spec{replicas: 1}": must evaluate '
         "to Object but got Object.spec"),
        (policy(json_patch("[{'op': 'remove', 'path': '/x'}]")),
         "spec.mutations[0].jsonPatch.expression: Invalid value: \"[{'op': 'remove', 'path': '/x'}]\": must "
         "evaluate to list(JSONPatch) but got list(map(string, string))"),
        (policy(json_patch("JSONPatch{op: 'remove', path: '/x'}")),
         "spec.mutations[0].jsonPatch.expression: Invalid value: \"JSONPatch{op: 'remove', path: '/x'}\": must "
         "evaluate to list(JSONPatch) but got JSONPatch"),
        (policy(json_patch("[]"), spec="  variables:\n  - {name: v, expression: 'Object{}'}\n"),
         "spec.variables[0].expression: Invalid value: \"Object{}\": compilation failed: ERROR: <input>:1:1: "
         "undeclared reference to 'Object' (in container '')\n | Object{}\n | ^"),
    ],
)
def test_the_api_servers_field_errors(text: str, error: str) -> None:
    assert refused(text) == [f"p.yaml (document 1):1: {INVALID}{error}"]


def test_a_mutation_is_a_union_on_patch_type() -> None:
    assert refused(policy("  - {patchType: JSONPatch, applyConfiguration: {expression: 'Object{}'}}")) == [
        f"p.yaml (document 1):1: {INVALID}[spec.mutations[0].jsonPatch: Required value: must be specified when "
        'patchType is JSONPatch, spec.mutations[0].applyConfiguration: Invalid value: "{applyConfiguration}": must '
        "not be specified when patchType is JSONPatch]"
    ]


def test_a_mutation_cannot_apply_to_deletes() -> None:
    text = policy(json_patch("[]")).replace("operations: [CREATE, UPDATE]", "operations: [CREATE, DELETE]")
    assert refused(text) == [
        f"p.yaml (document 1):1: {INVALID}spec.matchConstraints.resourceRules.operations: Unsupported value: "
        '"DELETE": supported values: "*", "CONNECT", "CREATE", "UPDATE"'
    ]


def test_binding_errors() -> None:
    text = """
apiVersion: admissionregistration.k8s.io/v1alpha1
kind: MutatingAdmissionPolicyBinding
metadata: {name: b}
spec:
  matchResources:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [DELETE], resources: [pods]}
"""
    assert refused(text) == [
        'p.yaml (document 1):1: MutatingAdmissionPolicyBinding.admissionregistration.k8s.io "b" is invalid: '
        '[spec.policyName: Required value, spec.matchResources.resourceRules.operations: Unsupported value: '
        '"DELETE": supported values: "*", "CONNECT", "CREATE", "UPDATE"]'
    ]


def test_compile_errors_point_at_the_expression_as_written() -> None:
    # The rewrite quotes field names (two characters each); the column is still the user's.
    expression = "Object{spec: Object.spec{replicas: x}}"
    assert refused(policy(apply_configuration(expression))) == [
        f'p.yaml (document 1):1: {INVALID}spec.mutations[0].applyConfiguration.expression: Invalid value: '
        f'"{expression}": compilation failed: ERROR: <input>:1:36: undeclared reference to \'x\' (in container '
        f"'')\n | {expression}\n | {'.' * 35}^"
    ]


def test_a_typed_literal_takes_field_names_only() -> None:
    assert refused(policy(apply_configuration("Object{'spec': 1}"))) == [
        f'p.yaml (document 1):1: {INVALID}spec.mutations[0].applyConfiguration.expression: Invalid value: '
        "\"Object{'spec': 1}\": compilation failed: ERROR: <input>:1:8: Syntax error: mismatched input ''spec'' "
        "expecting {'}', '?', IDENTIFIER, ESC_IDENTIFIER}\n | Object{'spec': 1}\n | .......^"
    ]


def test_versions_and_names() -> None:
    text = policy(json_patch("[]")) + "---\n" + policy(json_patch("[]")).split("---")[0]
    assert refused(text) == [
        'p.yaml (document 3):1: mutatingadmissionpolicies.admissionregistration.k8s.io "p" already exists (first '
        "defined at p.yaml (document 1):1)"
    ]
    assert refused(policy(json_patch("[]"), version="v2")) == [
        "p.yaml (document 1):1: MutatingAdmissionPolicy: apiVersion admissionregistration.k8s.io/v2 is not served; "
        "use admissionregistration.k8s.io/v1alpha1 or admissionregistration.k8s.io/v1beta1 or "
        "admissionregistration.k8s.io/v1",
        "p.yaml (document 2):1: MutatingAdmissionPolicyBinding: apiVersion admissionregistration.k8s.io/v2 is not "
        "served; use admissionregistration.k8s.io/v1alpha1 or admissionregistration.k8s.io/v1beta1 or "
        "admissionregistration.k8s.io/v1",
    ]

# --- JSONPatch ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('[JSONPatch{op: "add", path: "/metadata/labels/" + jsonpatch.escapeKey("k8s.io/my~label"), value: "x"}]',
         [{"op": "add", "path": "/metadata/labels/k8s.io~1my~0label", "value": "x"}]),
        ('[JSONPatch{op: "replace", path: "/spec/containers/0/image", value: "nginx:1.28"}]',
         [{"op": "replace", "path": "/spec/containers/0/image", "value": "nginx:1.28"}]),
        ('[JSONPatch{op: "remove", path: "/metadata/labels/app"}]',
         [{"op": "remove", "path": "/metadata/labels/app"}]),
        ('[JSONPatch{op: "test", path: "/metadata/labels/app", value: "web"}, '
         'JSONPatch{op: "add", path: "/metadata/labels/tested", value: "yes"}]',
         [{"op": "add", "path": "/metadata/labels/tested", "value": "yes"}]),
        # A failing test op: the whole patch is skipped, silently.
        ('[JSONPatch{op: "test", path: "/metadata/labels/app", value: "db"}, '
         'JSONPatch{op: "add", path: "/metadata/labels/tested", value: "yes"}]',
         []),
        ('[JSONPatch{op: "copy", from: "/metadata/labels/app", path: "/metadata/labels/copied"}]',
         [{"op": "add", "path": "/metadata/labels/copied", "value": "web"}]),
        ('[JSONPatch{op: "add", path: "/spec/containers/-", value: {"name": "b", "image": "busybox"}}]',
         [{"op": "add", "path": "/spec/containers/-", "value": {"name": "b", "image": "busybox"}}]),
        # Values go through structpb.Value: an integral double is an integer again.
        ('[JSONPatch{op: "add", path: "/spec/priority", value: 10.0}]',
         [{"op": "add", "path": "/spec/priority", "value": 10}]),
        # Ops are maps here: p.op and has(p.value) read them as on the API server's JSONPatch objects.
        ('[JSONPatch{op: "add", path: "/metadata/labels/a", value: "1"}, JSONPatch{op: "remove", '
         'path: "/metadata/labels/app"}].filter(p, has(p.value) && p.op == "add")',
         [{"op": "add", "path": "/metadata/labels/a", "value": "1"}]),
    ],
)
def test_json_patch_ops(expression: str, expected: list[dict[str, Any]]) -> None:
    assert ops(load(policy(json_patch(expression)))) == expected


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ('[JSONPatch{op: "add", path: "/metadata/annotations/a", value: "x"}]',
         'JSON Patch: add operation does not apply: doc is missing path: "/metadata/annotations/a": missing value'),
        ('[JSONPatch{op: "replace", path: "/spec/containers/-", value: {}}]',
         "JSON Patch: replace operation does not apply: doc is missing key: /spec/containers/-: missing value"),
        ('[JSONPatch{op: "remove", path: "/metadata/labels/missing"}]',
         "JSON Patch: error in remove for path: '/metadata/labels/missing': Unable to remove nonexistent key: "
         "missing: missing value"),
        ('[JSONPatch{op: "add", path: "/spec/containers/5", value: {}}]',
         "JSON Patch: error in add for path: '/spec/containers/5': Unable to access invalid index: 5: invalid "
         "index referenced"),
        ('[JSONPatch{op: "add", path: "/spec/containers/x", value: {}}]',
         "JSON Patch: error in add for path: '/spec/containers/x': value was not a proper array index: 'x': "
         'strconv.Atoi: parsing "x": invalid syntax'),
        ('[JSONPatch{op: "merge", path: "/spec"}]', "JSON Patch: Unexpected kind: merge"),
        ('[JSONPatch{op: "add", path: "/x", value: 1, extra: 2}]',
         'expression \'[JSONPatch{op: "add", path: "/x", value: 1, extra: 2}]\' resulted in error: unexpected '
         "JSONPatchType field: extra"),
    ],
)
def test_json_patch_errors_deny_with_the_api_servers_text(expression: str, error: str) -> None:
    result = mutate(load(policy(json_patch(expression))))
    assert result.denial == mutating.Denial(
        f"policy 'p' with binding 'p-binding' denied request: {error}", "Invalid", 403, "p", "p-binding",
        (f"policy 'p' with binding 'p-binding' denied request: {error}",),
    )


def test_object_literals_in_json_patch_values_are_checked_against_their_field_path() -> None:
    expression = ('[JSONPatch{op: "add", path: "/spec/template", value: Object.spec.template{spec: '
                  "Object.spec.template.specx{}}}]")
    assert denial(load(policy(json_patch(expression), kind="deployments", group="apps")), DEPLOYMENT) == (
        "policy 'p' with binding 'p-binding' denied request: type mismatch: unexpected type name "
        '"Object.spec.template.specx", expected "Object.spec.template.spec", which matches field name path from '
        "root Object type"
    )


# --- ApplyConfiguration ---------------------------------------------------------------------------------


def test_apply_configuration_adds_a_label() -> None:
    expression = 'Object{metadata: Object.metadata{labels: {"team": "shop"}}}'
    assert ops(load(policy(apply_configuration(expression)))) == [
        {"op": "add", "path": "/metadata/labels/team", "value": "shop"}
    ]


def test_apply_configuration_merges_containers_by_name() -> None:
    expression = ('Object{spec: Object.spec{containers: ['
                  'Object.spec.containers{name: "proxy", image: "envoy:1.31"},'
                  'Object.spec.containers{name: "web", env: [Object.spec.containers.env{name: "DEBUG", value: "1"}]}'
                  "]}}")
    result = mutate(load(policy(apply_configuration(expression))))
    assert result.object is not None
    # SMD keeps the configuration's order around shared items: proxy comes before web as listed there.
    # web keeps its image and its own env entry; the new entry is added after it.
    assert result.object["spec"]["containers"] == [
        {"name": "proxy", "image": "envoy:1.31"},
        {"name": "web", "image": "nginx:1.27", "env": [{"name": "MODE", "value": "prod"},
                                                       {"name": "DEBUG", "value": "1"}]},
    ]
    assert result.changed == [("p", "p-binding")]


def test_apply_configuration_keys_ports_with_the_default_protocol() -> None:
    pod = copy.deepcopy(POD)
    pod["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "protocol": "TCP", "name": "http"}]
    expression = ("Object{spec: Object.spec{containers: [Object.spec.containers{name: 'web', ports: "
                  "[Object.spec.containers.ports{containerPort: 80, name: 'web'}]}]}}")
    assert ops(load(policy(apply_configuration(expression))), pod) == [
        {"op": "replace", "path": "/spec/containers/0/ports/0/name", "value": "web"}
    ]


@pytest.mark.parametrize(
    ("expression", "paths"),
    [
        ("Object{spec: Object.spec{selector: Object.spec.selector{matchLabels: {'app': 'db'}}}}", ".spec.selector"),
        ("Object{spec: Object.spec{template: Object.spec.template{spec: Object.spec.template.spec{containers: ["
         "Object.spec.template.spec.containers{name: 'web', args: ['--debug'], securityContext: "
         "Object.spec.template.spec.containers.securityContext{capabilities: "
         "Object.spec.template.spec.containers.securityContext.capabilities{drop: ['ALL']}}}]}}}}",
         ".spec.template.spec.containers[0].args, .spec.template.spec.containers[0].securityContext.capabilities.drop"),
        ("Object{spec: Object.spec{template: Object.spec.template{spec: Object.spec.template.spec{nodeSelector: "
         "{'disk': 'ssd'}}}}}", ".spec.template.spec.nodeSelector"),
    ],
)
def test_apply_configuration_may_not_mutate_atomic_fields(expression: str, paths: str) -> None:
    assert denial(load(policy(apply_configuration(expression), kind="deployments", group="apps")), DEPLOYMENT) == (
        "policy 'p' with binding 'p-binding' denied request: error applying patch: invalid ApplyConfiguration: may "
        f"not mutate atomic arrays, maps or structs: {paths}"
    )


def test_apply_configuration_list_items_need_their_keys() -> None:
    expression = "Object{spec: Object.spec{containers: [Object.spec.containers{image: 'busybox'}]}}"
    assert denial(load(policy(apply_configuration(expression)))) == (
        "policy 'p' with binding 'p-binding' denied request: error applying patch: failed to convert patch object to "
        'typed object: .spec.containers: element 0: associative list with keys has an element that omits key field '
        "\"name\" (and doesn't have default value)"
    )


def test_apply_configuration_type_names_follow_the_field_path() -> None:
    expression = "Object{spec: Object.specx{replicas: 3}}"
    assert denial(load(policy(apply_configuration(expression), kind="deployments", group="apps")), DEPLOYMENT) == (
        "policy 'p' with binding 'p-binding' denied request: type mismatch: unexpected type name \"Object.specx\", "
        'expected "Object.spec", which matches field name path from root Object type'
    )


# --- failurePolicy, matchConditions, params ----------------------------------------------------------------


def test_a_runtime_error_denies_under_fail_with_reason_invalid_and_code_403() -> None:
    expression = "Object{metadata: Object.metadata{labels: {'x': object.spec.missing}}}"
    result = mutate(load(policy(apply_configuration(expression))))
    assert result.denial is not None
    assert (result.denial.message, result.denial.reason, result.denial.code) == (
        f"policy 'p' with binding 'p-binding' denied request: expression '{expression}' resulted in error: no such "
        "key: missing", "Invalid", 403,
    )


def test_under_ignore_the_error_is_dropped_and_the_other_mutations_still_apply() -> None:
    mutations = "\n".join([
        apply_configuration("Object{metadata: Object.metadata{labels: {'x': object.spec.missing}}}"),
        json_patch('[JSONPatch{op: "add", path: "/metadata/labels/ok", value: "yes"}]'),
    ])
    result = mutate(load(policy(mutations, spec="  failurePolicy: Ignore\n")))
    assert result.denial is None
    assert result.object is not None and result.object["metadata"]["labels"] == {"app": "web", "ok": "yes"}
    assert result.ignored == [
        "policy 'p' with binding 'p-binding' denied request: expression 'Object{metadata: Object.metadata{labels: "
        "{'x': object.spec.missing}}}' resulted in error: no such key: missing"
    ]


def test_mutations_run_in_order_each_on_the_result_of_the_last() -> None:
    mutations = "\n".join([
        json_patch('[JSONPatch{op: "add", path: "/metadata/labels/first", value: "1"}]'),
        apply_configuration("Object{metadata: Object.metadata{labels: {'second': "
                            "string(size(object.metadata.labels))}}}"),
    ])
    assert ops(load(policy(mutations))) == [
        {"op": "add", "path": "/metadata/labels/first", "value": "1"},
        {"op": "add", "path": "/metadata/labels/second", "value": "2"},
    ]


VARIABLES = ("  variables:\n  - {name: team, expression: 'object.metadata.labels.team'}\n"
             "  - {name: unused, expression: 'object.spec.missing'}\n")


def test_mutations_see_variables_with_their_expressions_types() -> None:
    # As in a ValidatingAdmissionPolicy: the API server declares each variable with its type, so a
    # mutation using one against it is refused when the policy is created.
    spec = "  variables:\n  - {name: team, expression: \"'web'\"}\n"
    expression = "[JSONPatch{op: 'add', path: '/metadata/labels/team', value: variables.team + 1}]"
    assert refused(policy(json_patch(expression), spec=spec)) == [
        f"p.yaml (document 1):1: {INVALID}spec.mutations[0].jsonPatch.expression: Invalid value: "
        f"\"{expression}\": compilation failed: ERROR: <input>:1:76: found no matching overload for '_+_' "
        f"applied to '(string, int)'\n | {expression}\n | {'.' * 75}^"]
    good = "[JSONPatch{op: 'add', path: '/metadata/labels', value: {'team': variables.team + '-x'}}]"
    assert refused(policy(json_patch(good), spec=spec)) == []


def test_variables_are_evaluated_for_each_mutation_when_used() -> None:
    label = apply_configuration("Object{metadata: Object.metadata{labels: {'owner': variables.team}}}")
    policy_set = load(policy(label, spec=VARIABLES))
    owned = copy.deepcopy(POD)
    owned["metadata"]["labels"]["team"] = "shop"
    assert ops(policy_set, owned) == [{"op": "add", "path": "/metadata/labels/owner", "value": "shop"}]
    assert denial(policy_set) == (
        "policy 'p' with binding 'p-binding' denied request: expression 'Object{metadata: Object.metadata{labels: "
        "{'owner': variables.team}}}' resulted in error: composited variable \"team\" fails to evaluate: no such "
        "key: team"
    )


CONDITIONS = "  matchConditions:\n  - {name: has-app, expression: \"object.metadata.labels.app == 'web'\"}\n"
LABEL = json_patch('[JSONPatch{op: "add", path: "/metadata/labels/seen", value: "yes"}]')


def test_match_conditions_select_the_objects_to_mutate() -> None:
    policy_set = load(policy(LABEL, spec=CONDITIONS))
    assert ops(policy_set) == [{"op": "add", "path": "/metadata/labels/seen", "value": "yes"}]
    other = copy.deepcopy(POD)
    other["metadata"]["labels"]["app"] = "db"
    assert ops(policy_set, other) == []


@pytest.mark.parametrize(("failure_policy", "denied"), [("Fail", True), ("Ignore", False)])
def test_a_match_condition_error_follows_the_failure_policy(failure_policy: str, denied: bool) -> None:
    spec = f"  failurePolicy: {failure_policy}\n" + CONDITIONS.replace("labels.app", "labels.missing")
    result = mutate(load(policy(LABEL, spec=spec)))
    assert result.object is None
    assert (result.denial is not None) == denied
    if result.denial is not None:
        assert (result.denial.message, result.denial.reason, result.denial.code) == (
            "policy 'p' with binding 'p-binding' denied request: expression 'object.metadata.labels.missing == "
            "'web'' resulted in error: no such key: missing", "Invalid", 403,
        )


PARAMS = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: team, namespace: shop}
data: {team: storefront}
"""
WITH_PARAMS = "  paramKind: {apiVersion: v1, kind: ConfigMap}\n"
TEAM = apply_configuration("Object{metadata: Object.metadata{labels: {'team': params.data.team}}}")


def with_param_ref(text: str, action: str = "Deny") -> str:
    return text + f"  paramRef: {{name: team, parameterNotFoundAction: {action}}}\n"


def test_params_feed_the_mutation() -> None:
    policy_set = load(with_param_ref(policy(TEAM, spec=WITH_PARAMS)) + PARAMS)
    assert ops(policy_set) == [{"op": "add", "path": "/metadata/labels/team", "value": "storefront"}]


def test_missing_params_with_deny_is_a_configuration_error_reason_forbidden() -> None:
    result = mutate(load(with_param_ref(policy(TEAM, spec=WITH_PARAMS))))
    assert result.denial == mutating.Denial(
        "policy 'p' with binding 'p-binding' denied request: failed to configure binding: no params found for "
        "policy binding with `Deny` parameterNotFoundAction", "Forbidden", 403, "p", "p-binding",
        ("policy 'p' with binding 'p-binding' denied request: failed to configure binding: no params found for "
         "policy binding with `Deny` parameterNotFoundAction",),
    )
    assert mutate(load(with_param_ref(policy(TEAM, spec=WITH_PARAMS), "Allow"))) == mutating.Result()


def test_every_error_is_a_cause_and_the_first_decides() -> None:
    failing = json_patch('[JSONPatch{op: "remove", path: "/metadata/labels/missing"}]')
    policy_set = load(policy(failing, name="a") + "---" + policy(failing, name="b"))
    result = mutate(policy_set)
    assert result.denial is not None
    assert result.denial.message.startswith("policy 'a' with binding 'a-binding' denied request: JSON Patch: ")
    assert [c.split(" denied")[0] for c in result.denial.causes] == [
        "policy 'a' with binding 'a-binding'", "policy 'b' with binding 'b-binding'"
    ]


def test_admission_configuration_resources_are_exempt() -> None:
    policy_set = load(policy(LABEL, kind="'*'", group="'*'"))
    request = ctx(POD, group="admissionregistration.k8s.io", resource="mutatingadmissionpolicies")
    assert mutating.apply(policy_set, POD, request).object is None


# --- reinvocation ----------------------------------------------------------------------------------------


def example(name: str) -> mutating.PolicySet:
    path = EXAMPLES / name / f"{name}.yaml"
    return load(path.read_text())


@pytest.mark.parametrize(
    "policy_set",
    [
        example("default-team-label"),
        example("log-shipper-sidecar"),
        load(policy(apply_configuration(
            "Object{spec: Object.spec{containers: [Object.spec.containers{name: 'proxy', image: 'envoy', env: "
            "[Object.spec.containers.env{name: 'A', value: 'b'}]}]}, metadata: Object.metadata{labels: {'x': 'y'}}}"
        ))),
        load(policy(json_patch(
            "has(object.metadata.labels.seen) ? [] : [JSONPatch{op: 'add', path: '/metadata/labels/seen', value: "
            "'1'}]"))),
    ],
    ids=["default-team-label", "log-shipper-sidecar", "apply-configuration", "guarded-json-patch"],
)
def test_applying_a_policy_to_its_own_output_changes_nothing(policy_set: mutating.PolicySet) -> None:
    pod = copy.deepcopy(POD)
    pod["metadata"]["labels"] = {}
    pod["metadata"]["annotations"] = {"logging.example.com/ship": "true"}
    first = mutate(policy_set, pod)
    assert first.denial is None and first.object is not None
    again = mutate(policy_set, first.object)
    assert again.denial is None and again.object is None


def test_if_needed_policies_run_again_when_a_later_plugin_changed_the_object() -> None:
    count = apply_configuration("Object{metadata: Object.metadata{annotations: {'containers': "
                                "string(size(object.spec.containers))}}}")
    for reinvocation, rerun in (("IfNeeded", True), ("Never", False)):
        policy_set = load(policy(count, reinvocation=reinvocation))
        first = mutating.apply(policy_set, POD, ctx())
        assert first.object is not None and first.object["metadata"]["annotations"] == {"containers": "1"}
        assert not first.reinvocation.needed(first.object)  # nothing changed it since
        later = copy.deepcopy(first.object)  # a built-in mutating group adds a container
        later["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
        assert first.reinvocation.needed(later) == rerun
        second = mutating.apply(policy_set, later, ctx(), reinvocation=first.reinvocation)
        annotations = (second.object or later)["metadata"]["annotations"]
        assert annotations == {"containers": "2" if rerun else "1"}


def test_a_later_policy_changing_the_object_makes_an_earlier_if_needed_one_due() -> None:
    first_policy = policy(apply_configuration(
        "Object{metadata: Object.metadata{annotations: {'labels': string(size(object.metadata.labels))}}}"),
        name="a-count", reinvocation="IfNeeded")
    second_policy = policy(json_patch("[JSONPatch{op: 'add', path: '/metadata/labels/b', value: 'x'}]"),
                           name="b-label")
    policy_set = load(first_policy + "---" + second_policy)
    first = mutating.apply(policy_set, POD, ctx())
    assert first.object is not None and first.object["metadata"]["annotations"] == {"labels": "1"}
    assert first.changed == [("a-count", "a-count-binding"), ("b-label", "b-label-binding")]
    assert first.reinvocation.needed(first.object)
    second = mutating.apply(policy_set, first.object, ctx(), reinvocation=first.reinvocation)
    assert second.object is not None and second.object["metadata"]["annotations"] == {"labels": "2"}
    assert second.changed == [("a-count", "a-count-binding")]  # b-label (Never) is not run again


# --- the examples -----------------------------------------------------------------------------------------


def test_default_team_label_example() -> None:
    policy_set = example("default-team-label")
    unlabelled = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "debug", "namespace": "shop"},
                  "spec": {"containers": [{"name": "shell", "image": "busybox:1.36"}]}}
    assert ops(policy_set, unlabelled) == [{"op": "add", "path": "/metadata/labels", "value": {"team": "unassigned"}}]
    assert ops(policy_set) == [{"op": "add", "path": "/metadata/labels/team", "value": "unassigned"}]
    owned = copy.deepcopy(POD)
    owned["metadata"]["labels"]["team"] = "storefront"
    assert ops(policy_set, owned) == []


def test_log_shipper_sidecar_example() -> None:
    policy_set = example("log-shipper-sidecar")
    assert ops(policy_set) == []  # not annotated
    pod = copy.deepcopy(POD)
    pod["metadata"]["annotations"] = {"logging.example.com/ship": "true"}
    assert ops(policy_set, pod) == [
        {"op": "add", "path": "/spec/containers/-", "value": {
            "name": "log-shipper", "image": "registry.example.com/observability/log-shipper:2.1.0",
            "volumeMounts": [{"name": "app-logs", "mountPath": "/var/log/app", "readOnly": True}],
            "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "64Mi"}},
        }},
        {"op": "add", "path": "/spec/volumes", "value": [{"name": "app-logs", "emptyDir": {}}]},
    ]


# --- the rewrite --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "text"),
    [
        ('Object{spec: Object.spec{replicas: 3}}', "{'spec': {'replicas': 3}}"),
        ("Object{?spec: optional.none(), `my-field`: 1,}", "{?'spec': optional.none(), 'my-field': 1,}"),
        ('"JSONPatch{op: 1}" + \'Object{\' + r"Object{" + """Object{"""',
         '"JSONPatch{op: 1}" + \'Object{\' + r"Object{" + """Object{"""'),
        ("// JSONPatch{\n[JSONPatch{op: 'remove', path: '/a'}]", "// JSONPatch{\n[{'op': 'remove', 'path': '/a'}]"),
        ("jsonpatch.escapeKey(k)", "(k).replace('~', '~0').replace('/', '~1')"),
        ("x.Object{a: 1}", "x.Object{a: 1}"),
    ],
)
def test_the_rewrite_turns_typed_literals_into_maps_and_leaves_strings_alone(source: str, text: str) -> None:
    assert rewrite.rewrite(source).text == text


def test_an_optional_valued_variable_feeds_a_mutation() -> None:
    """``object.metadata.?labels[?'team']`` is an optional variable, unwrapped where it is used."""
    spec = "  variables:\n  - {name: team, expression: \"object.metadata.?labels[?'team']\"}\n"
    expression = ("Object{metadata: Object.metadata{labels: {'owner': "
                  "variables.team.hasValue() ? variables.team.value() : 'platform'}}}")
    policy_set = load(policy(apply_configuration(expression), spec=spec))
    assert ops(policy_set) == [{"op": "add", "path": "/metadata/labels/owner", "value": "platform"}]
    labelled = copy.deepcopy(POD)
    labelled["metadata"]["labels"] = {"team": "shop"}
    assert ops(policy_set, labelled) == [{"op": "add", "path": "/metadata/labels/owner", "value": "shop"}]
