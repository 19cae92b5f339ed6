"""The request predicates shared by the webhook emulator and admission policies
(``webhook.policy.predicates``): the cases of ``pkg/admission/plugin/webhook/predicates/rules``'
tests on resources, subresources and scope (expected values read from ``rules.go``: a rule's
subresource ``*`` also matches a request without one), asked through both callers, which must agree."""

from __future__ import annotations

import pytest

from webhook.cel import documents
from webhook.cel import matching as cel_matching
from webhook.emulator import attributes, config
from webhook.emulator import matching as emulator_matching
from webhook.policy import model, predicates

RESOURCES = [
    # (rule resources, resource, subresource, matches)
    (("pods",), "pods", "", True),
    (("pods",), "pods", "status", False),
    (("pods/status",), "pods", "status", True),
    (("pods/*",), "pods", "status", True),
    (("pods/*",), "pods", "", True),  # upstream: sub == "*" matches the empty subresource too
    (("*",), "pods", "", True),
    (("*",), "pods", "status", False),
    (("*/status",), "pods", "status", True),
    (("*/status",), "pods", "log", False),
    (("*/*",), "pods", "log", True),
    (("*/*",), "pods", "", True),
    (("deployments", "pods/status"), "pods", "status", True),
]

SCOPES = [
    # (rule scope, resource, namespace, matches)
    ("*", "pods", "shop", True),
    ("Namespaced", "pods", "shop", True),
    ("Namespaced", "nodes", "", False),
    ("Namespaced", "namespaces", "shop", False),  # a namespace is cluster-scoped, whatever its namespace field
    ("Cluster", "namespaces", "shop", True),
    ("Cluster", "nodes", "", True),
    ("Cluster", "pods", "shop", False),
]


def _both(resources: tuple[str, ...], scope: str, *, resource: str, subresource: str, namespace: str) -> set[bool]:
    cel_rule = documents.Rule(operations=("CREATE",), api_groups=("",), api_versions=("v1",), resources=resources,
                              scope=scope)
    ctx = model.ReviewContext(operation="CREATE", kind="X", group="", version="v1", resource=resource,
                              sub_resource=subresource, namespace=namespace, name="x", uid="u")
    hook_rule = config.Rule(operations=("CREATE",), api_groups=("",), api_versions=("v1",), resources=resources,
                            scope=scope)  # type: ignore[arg-type]
    attrs = attributes.Attributes(operation="CREATE", api_version="v1", kind="X", resource=resource,
                                  subresource=subresource, namespace=namespace, name="x", object={}, old_object=None)
    return {cel_matching.rule_matches(cel_rule, ctx), emulator_matching.rule_matches(hook_rule, attrs)}


@pytest.mark.parametrize(("resources", "resource", "subresource", "matches"), RESOURCES)
def test_resources_and_subresources(resources: tuple[str, ...], resource: str, subresource: str, matches: bool) -> None:
    assert _both(resources, "*", resource=resource, subresource=subresource, namespace="shop") == {matches}


@pytest.mark.parametrize(("scope", "resource", "namespace", "matches"), SCOPES)
def test_scope(scope: str, resource: str, namespace: str, matches: bool) -> None:
    assert _both(("*",), scope, resource=resource, subresource="", namespace=namespace) == {matches}


def test_resource_names_narrow_a_policy_rule() -> None:
    rule = documents.Rule(operations=("*",), api_groups=("*",), api_versions=("*",), resources=("configmaps",),
                          resource_names=("allowed",))
    for name, expected in (("allowed", True), ("other", False)):
        assert predicates.rule_matches(rule, operation="UPDATE", group="", version="v1", resource="configmaps",
                                       subresource="", namespace="shop", name=name,
                                       resource_names=rule.resource_names) is expected


def test_namespace_labels_of_a_namespace_request() -> None:
    new = {"metadata": {"labels": {"env": "prod"}}}
    old = {"metadata": {"labels": {"env": "dev"}}}
    assert predicates.namespace_labels("namespaces", "", "UPDATE", new, old, None) == {"env": "prod"}
    assert predicates.namespace_labels("namespaces", "", "DELETE", None, old, None) == {"env": "dev"}
    # A subresource (namespaces/finalize) and any namespaced object: the namespace as stored.
    assert predicates.namespace_labels("namespaces", "finalize", "UPDATE", new, old, {"env": "x"}) == {"env": "x"}
    assert predicates.namespace_labels("pods", "", "CREATE", new, None, None) is None
