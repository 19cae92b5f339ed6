"""Which webhooks a request calls: rules, scope, subresources, selectors, matchConditions (table tests)."""

from __future__ import annotations

from typing import Any

import pytest

from tests import emulator_support as es
from webhook.emulator import attributes, config, matching

POD = es.pod(labels={"app": "web", "tier": "front"})
NAMESPACE = {
    "apiVersion": "v1",
    "kind": "Namespace",
    "metadata": {"name": "team-a", "labels": {"env": "prod"}},
}
ROLE = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "viewer"}}
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "default"}}


def hook(**fields: Any) -> config.Hook:
    loaded = es.load(
        es.configuration("ValidatingWebhookConfiguration", "c", [es.webhook("check.example.com", **fields)])
    )
    return loaded.validating[0]


def rule(
    ops: list[str], groups: list[str], versions: list[str], resources: list[str], scope: str | None = None
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "operations": ops,
        "apiGroups": groups,
        "apiVersions": versions,
        "resources": resources,
    }
    if scope:
        data["scope"] = scope
    return data


def request(obj: dict[str, Any], **kwargs: Any) -> attributes.Attributes:
    return attributes.from_object(obj, source="test", **kwargs)


RULE_CASES = [
    # (description, rule, object, request kwargs, called)
    ("exact pods CREATE", rule(["CREATE"], [""], ["v1"], ["pods"]), POD, {}, True),
    ("operation not listed", rule(["UPDATE"], [""], ["v1"], ["pods"]), POD, {}, False),
    ("operation *", rule(["*"], [""], ["v1"], ["pods"]), POD, {"operation": "DELETE"}, True),
    ("group mismatch", rule(["*"], ["apps"], ["v1"], ["pods"]), POD, {}, False),
    ("group and version *", rule(["*"], ["*"], ["*"], ["deployments"]), DEPLOY, {}, True),
    ("version mismatch", rule(["*"], ["apps"], ["v1beta1"], ["deployments"]), DEPLOY, {}, False),
    (
        "resource * skips subresources",
        rule(["*"], [""], ["v1"], ["*"]),
        POD,
        {"subresource": "status"},
        False,
    ),
    ("*/* matches subresources", rule(["*"], [""], ["v1"], ["*/*"]), POD, {"subresource": "status"}, True),
    (
        "pods does not match pods/exec",
        rule(["*"], [""], ["v1"], ["pods"]),
        POD,
        {"subresource": "exec"},
        False,
    ),
    (
        "pods/exec matches pods/exec",
        rule(["CONNECT"], [""], ["v1"], ["pods/exec"]),
        POD,
        {"subresource": "exec", "operation": "CONNECT"},
        True,
    ),
    (
        "pods/* matches pods/status",
        rule(["*"], [""], ["v1"], ["pods/*"]),
        POD,
        {"subresource": "status"},
        True,
    ),
    (
        "*/status matches pods/status",
        rule(["*"], [""], ["v1"], ["*/status"]),
        POD,
        {"subresource": "status"},
        True,
    ),
    ("*/status does not match pods", rule(["*"], [""], ["v1"], ["*/status"]), POD, {}, False),
    ("scope Namespaced matches a pod", rule(["*"], [""], ["v1"], ["pods"], "Namespaced"), POD, {}, True),
    ("scope Cluster skips a pod", rule(["*"], [""], ["v1"], ["pods"], "Cluster"), POD, {}, False),
    (
        "scope Cluster matches a ClusterRole",
        rule(["*"], ["*"], ["*"], ["clusterroles"], "Cluster"),
        ROLE,
        {},
        True,
    ),
    ("scope Namespaced skips a ClusterRole", rule(["*"], ["*"], ["*"], ["*"], "Namespaced"), ROLE, {}, False),
    (
        "a Namespace is cluster-scoped",
        rule(["*"], [""], ["v1"], ["namespaces"], "Cluster"),
        NAMESPACE,
        {},
        True,
    ),
    (
        "a Namespace is not Namespaced",
        rule(["*"], [""], ["v1"], ["namespaces"], "Namespaced"),
        NAMESPACE,
        {},
        False,
    ),
    ("scope * matches both", rule(["*"], ["*"], ["*"], ["*"], "*"), ROLE, {}, True),
]


@pytest.mark.parametrize(
    ("description", "rule_", "obj", "kwargs", "called"), RULE_CASES, ids=[c[0] for c in RULE_CASES]
)
def test_rules(
    description: str, rule_: dict[str, Any], obj: dict[str, Any], kwargs: dict[str, Any], called: bool
) -> None:
    decision = matching.should_call(hook(rules=[rule_]), request(obj, **kwargs))
    assert decision.call is called, decision.reason


ALL = [rule(["*"], ["*"], ["*"], ["*"])]
EXPR_IN = {"matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "staging"]}]}
SELECTOR_CASES = [
    ("empty namespaceSelector", {"namespaceSelector": {}}, POD, {}, True),
    (
        "namespace label matchLabels",
        {"namespaceSelector": {"matchLabels": {"env": "prod"}}},
        POD,
        {"namespace_labels": {"env": "prod"}},
        True,
    ),
    ("namespace label missing", {"namespaceSelector": {"matchLabels": {"env": "prod"}}}, POD, {}, False),
    ("In", {"namespaceSelector": EXPR_IN}, POD, {"namespace_labels": {"env": "staging"}}, True),
    ("In, other value", {"namespaceSelector": EXPR_IN}, POD, {"namespace_labels": {"env": "dev"}}, False),
    (
        "NotIn excludes kube-system by its automatic name label",
        {
            "namespaceSelector": {
                "matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}
                ]
            }
        },
        es.pod(namespace="kube-system"),
        {},
        False,
    ),
    (
        "NotIn lets other namespaces through",
        {
            "namespaceSelector": {
                "matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]}
                ]
            }
        },
        POD,
        {},
        True,
    ),
    (
        "DoesNotExist",
        {"namespaceSelector": {"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}},
        POD,
        {"namespace_labels": {"skip": "yes"}},
        False,
    ),
    (
        "a namespace matches its own new labels",
        {"namespaceSelector": {"matchLabels": {"env": "prod"}}},
        NAMESPACE,
        {"namespace_labels": {"env": "dev"}},
        True,
    ),
    (
        "cluster-scoped objects ignore namespaceSelector",
        {"namespaceSelector": {"matchLabels": {"env": "prod"}}},
        ROLE,
        {},
        True,
    ),
    (
        "objectSelector Exists",
        {"objectSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}},
        POD,
        {},
        True,
    ),
    (
        "objectSelector NotIn",
        {"objectSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}},
        POD,
        {},
        False,
    ),
    (
        "objectSelector on an object without labels",
        {"objectSelector": {"matchLabels": {"app": "web"}}},
        es.pod(),
        {},
        False,
    ),
    (
        "DELETE matches the old object",
        {"objectSelector": {"matchLabels": {"app": "web"}}},
        POD,
        {"operation": "DELETE"},
        True,
    ),
    (
        "UPDATE matches if only the old object does",
        {"objectSelector": {"matchLabels": {"app": "web"}}},
        es.pod(),
        {"operation": "UPDATE", "old_object": POD},
        True,
    ),
]


@pytest.mark.parametrize(
    ("description", "fields", "obj", "kwargs", "called"), SELECTOR_CASES, ids=[c[0] for c in SELECTOR_CASES]
)
def test_selectors(
    description: str, fields: dict[str, Any], obj: dict[str, Any], kwargs: dict[str, Any], called: bool
) -> None:
    decision = matching.should_call(hook(rules=ALL, **fields), request(obj, **kwargs))
    assert decision.call is called, decision.reason


def test_skip_reasons_say_which_predicate_excluded_the_webhook() -> None:
    selective = hook(rules=ALL, namespaceSelector={"matchLabels": {"env": "prod"}})
    assert (
        matching.should_call(selective, request(POD)).reason
        == "namespaceSelector does not match the namespace's labels"
    )
    decision = matching.should_call(hook(), request(DEPLOY))
    assert decision.reason == "no rule matches CREATE deployments (apps/v1)"


def test_webhook_configurations_are_exempt() -> None:
    obj = es.configuration("ValidatingWebhookConfiguration", "x", [])
    assert matching.exempt(request(obj))
    assert not matching.exempt(request(POD))


def conditional(expression: str, policy: str = "Fail") -> config.Hook:
    return hook(
        rules=ALL, failure_policy=policy, matchConditions=[{"name": "cond", "expression": expression}]
    )


@pytest.mark.parametrize(
    ("expression", "obj", "called"),
    [
        ("object.metadata.labels['app'] == 'web'", POD, True),
        ("object.metadata.labels['app'] == 'db'", POD, False),
        ("request.userInfo.username != 'system:admin'", POD, True),
        ("request.operation == 'CREATE' && oldObject == null", POD, True),
        ("!('kube-system' == request.namespace)", es.pod(namespace="kube-system"), False),
    ],
)
def test_match_conditions(expression: str, obj: dict[str, Any], called: bool) -> None:
    decision = matching.should_call(conditional(expression), request(obj))
    assert decision.call is called
    if not called:
        assert decision.reason == "matchCondition 'cond' is false"


def test_a_condition_error_fails_the_request_under_fail() -> None:
    decision = matching.should_call(conditional("object.metadata.labels.missing == 'x'"), request(POD))
    assert decision.call is False
    assert decision.error is not None and decision.error.code == 403
    assert decision.error.message == (
        "pods \"web\" is forbidden: expression 'object.metadata.labels.missing == 'x'' resulted in error: "
        "no such key: missing"
    )


def test_a_condition_error_skips_the_webhook_under_ignore() -> None:
    decision = matching.should_call(
        conditional("object.metadata.labels.missing == 'x'", "Ignore"), request(POD)
    )
    assert decision.call is False and decision.error is None
    assert "resulted in error: no such key: missing" in decision.reason


def test_a_false_condition_wins_over_an_error() -> None:
    fields = {
        "matchConditions": [
            {"name": "broken", "expression": "object.nope == 1"},
            {"name": "no", "expression": "false"},
        ]
    }
    decision = matching.should_call(hook(rules=ALL, **fields), request(POD))
    assert (decision.call, decision.error, decision.reason) == (False, None, "matchCondition 'no' is false")


def test_authorizer_is_reported_as_unsupported() -> None:
    decision = matching.should_call(
        conditional("authorizer.group('').resource('pods').check('get').allowed()"), request(POD)
    )
    assert decision.error is not None
    assert decision.error.message.endswith(
        "resulted in error: the emulator does not support the authorizer variable (it needs a live authorizer)"
    )
