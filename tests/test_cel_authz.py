"""The authorizer library (``library.Authz``, ``library.AuthzSelectors``): what compiles, what a
check asks and which decision comes back, through whole ValidatingAdmissionPolicies and
MutatingAdmissionPolicies (expected attributes and texts from k8s.io/apiserver's authz.go and the
authorizer cases of admission/plugin/cel/filter_test.go)."""

from __future__ import annotations

import json
import weakref
from typing import Any

import pytest
import yaml

from webhook.cel import k8s_authz, loading, mutating, runtime, validating
from webhook.policy import files, model

DECLARED = runtime.Declarations()
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {"replicas": 12, "template": {"spec": {"containers": [{"name": "web", "image": "nginx"}]}}},
}
SCALE_CHECK = ("authorizer.group('apps').resource('deployments').subresource('scale')"
               ".namespace(object.metadata.namespace).name(object.metadata.name).check('update').allowed()")
SCALE_RULE = f"object.spec.replicas <= 10 || {SCALE_CHECK}"


class RichAuthorizer:
    """Has ``authorize(attributes)``: answers by user, verb and resource/subresource (or path)."""

    def __init__(self, allow: dict[str, set[str]], *, decision: k8s_authz.Decision | None = None) -> None:
        self.allow = allow  # user -> {"verb resource[/subresource]" | "verb /path"}
        self.decision = decision
        self.asked: list[k8s_authz.Attributes] = []

    def allowed(self, **_: Any) -> bool | None:  # the model.Authorizer protocol; never used when authorize exists
        raise AssertionError("the richer protocol must be preferred")

    def authorize(self, attributes: k8s_authz.Attributes) -> k8s_authz.Decision | None:
        self.asked.append(attributes)
        if self.decision is not None:
            return self.decision
        if attributes.user not in self.allow:
            return None  # not cached yet
        what = attributes.path if not attributes.resource_request else "/".join(
            part for part in (attributes.resource, attributes.subresource) if part)
        if f"{attributes.verb} {what}" in self.allow[attributes.user]:
            return k8s_authz.Decision(True, "RBAC: allowed by a test rule")
        return k8s_authz.Decision(False, "no rule")


class LegacyAuthorizer:
    """Only the ``model.Authorizer`` protocol (what ``webhook.cluster.AccessReviewCache`` has today)."""

    def __init__(self, allow: dict[str, set[str]]) -> None:
        self.allow = allow  # user -> {"verb group/resource"}
        self.asked: list[dict[str, Any]] = []

    def allowed(self, *, user: str, groups: tuple[str, ...], verb: str, group: str, resource: str, name: str,
                namespace: str) -> bool | None:
        self.asked.append({"user": user, "groups": groups, "verb": verb, "group": group, "resource": resource,
                           "name": name, "namespace": namespace})
        if user not in self.allow:
            return None
        return f"{verb} {group}/{resource}" in self.allow[user]


class BrokenAuthorizer:
    def allowed(self, **_: Any) -> bool | None:
        raise RuntimeError("connection reset by peer")

    def authorize(self, attributes: k8s_authz.Attributes) -> k8s_authz.Decision | None:
        raise RuntimeError("connection reset by peer")


def review(username: str = "alice", authorizer: Any = None, **fields: Any) -> model.ReviewContext:
    base: dict[str, Any] = {"operation": "UPDATE", "kind": "Deployment", "group": "apps", "version": "v1",
                            "resource": "deployments", "namespace": "shop", "name": "web", "username": username,
                            "user_groups": ("system:authenticated",), "authorizer": authorizer}
    base.update(fields)
    return model.ReviewContext(**base)


def documents(text: str) -> list[files.Document]:
    return [files.Document(f"p.yaml (document {i + 1}):1", d) for i, d in enumerate(yaml.safe_load_all(text)) if d]


def vap(validations: list[dict[str, Any]], *, failure_policy: str = "Fail", name: str = "scale-guard",
        extra: dict[str, Any] | None = None) -> str:
    spec: dict[str, Any] = {
        "failurePolicy": failure_policy,
        "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]}]},
        "validations": validations,
        **(extra or {}),
    }
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
              "metadata": {"name": name}, "spec": spec}
    binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
               "metadata": {"name": f"{name}-binding"},
               "spec": {"policyName": name, "validationActions": ["Deny"]}}
    return yaml.safe_dump_all([policy, binding])


def load(text: str) -> loading.Loaded:
    problems: list[str] = []
    loaded = loading.load(documents(text), problems)
    assert problems == []
    return loaded


def refused(text: str) -> list[str]:
    problems: list[str] = []
    loading.load(documents(text), problems)
    return problems


def evaluate(expression: str, ctx: model.ReviewContext, *, returns: tuple[str, ...] | None = None) -> runtime.Result:
    program = runtime.compile(expression, declared=DECLARED, returns=returns)
    binding = k8s_authz.Binding.for_review(ctx)
    return runtime.evaluate(program, runtime.activation({"object": DEPLOYMENT, "authorizer": binding},
                                                        declared=DECLARED))


# -- Compiling -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "output"),
    [
        # authz.go's documentation
        ("authorizer.path('/healthz')", "kubernetes.authorization.PathCheck"),
        ("authorizer.group('apps')", "kubernetes.authorization.GroupCheck"),
        ("authorizer.serviceAccount('default', 'myserviceaccount')", "kubernetes.authorization.Authorizer"),
        ("authorizer.group('apps').resource('deployments')", "kubernetes.authorization.ResourceCheck"),
        ("authorizer.group('').resource('pods').subresource('status')", "kubernetes.authorization.ResourceCheck"),
        ("authorizer.group('example.com').resource('widgets').subresource('')",
         "kubernetes.authorization.ResourceCheck"),
        ("authorizer.group('apps').resource('deployments').namespace('test').name('backend')",
         "kubernetes.authorization.ResourceCheck"),
        ("authorizer.group('').resource('pods').namespace('default').check('create')",
         "kubernetes.authorization.Decision"),
        ("authorizer.group('').resource('pods').namespace('default').check('create').allowed()", "BOOL"),
        ("authorizer.path('/healthz').check('get').allowed()", "BOOL"),
        ("authorizer.path('/healthz').check('GET').reason()", "STRING"),
        ("authorizer.group('').resource('pods').namespace('default').check('create').errored()", "BOOL"),
        ("authorizer.group('').resource('pods').namespace('default').check('create').error()", "STRING"),
        ("authorizer.group('').resource('pods').fieldSelector('spec.nodeName=mynode').check('list').allowed()",
         "BOOL"),
        ("authorizer.group('').resource('pods').labelSelector('app=example').check('list').allowed()", "BOOL"),
        # filter_test.go and the secondary-authorization integration test
        ("authorizer.requestResource.check('custom-verb').allowed()", "BOOL"),
        ("authorizer.serviceAccount('default', 'test-serviceaccount').group('').resource('endpoints')"
         ".namespace('default').name('endpoints1').check('custom-verb').allowed()", "BOOL"),
        ("authorizer.group('apps').resource('deployments').subresource('status').namespace('default')"
         ".namespace('default').name('charmander').check('create').allowed()", "BOOL"),
        ("authorizer.requestResource.check('delete').reason()", "STRING"),
        ("authorizer.serviceAccount('ns', 'sa').group('').resource('pods').check('create').allowed()", "BOOL"),
        (SCALE_RULE, "BOOL"),
    ],
)
def test_upstream_expressions_compile_with_upstream_types(expression: str, output: str) -> None:
    assert runtime.compile(expression, declared=DECLARED, returns=None).output == output


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("authorizer.requestResource.check(1)",
         "found no matching overload for 'check' applied to 'kubernetes.authorization.ResourceCheck.(int)'"),
        ("authorizer.group('').check('get')",
         "found no matching overload for 'check' applied to 'kubernetes.authorization.GroupCheck.(string)'"),
        ("authorizer.check('get')",
         "found no matching overload for 'check' applied to 'kubernetes.authorization.Authorizer.(string)'"),
        ("authorizer.path('/x').namespace('a')",
         "found no matching overload for 'namespace' applied to 'kubernetes.authorization.PathCheck.(string)'"),
    ],
)
def test_misuse_fails_to_compile_as_in_cel_go(expression: str, error: str) -> None:
    with pytest.raises(runtime.CompileError, match=r"^compilation failed: ERROR: <input>:1:\d+: ") as raised:
        runtime.compile(expression, declared=DECLARED, returns=None)
    assert error in str(raised.value)


def test_message_expression_does_not_see_the_authorizer() -> None:
    message = "authorizer.requestResource.check('get').allowed() ? 'ok' : 'denied'"
    assert refused(vap([{"expression": "true", "messageExpression": message}])) == [
        'p.yaml (document 1):1: ValidatingAdmissionPolicy.admissionregistration.k8s.io "scale-guard" is invalid: '
        f'spec.validations[0].messageExpression: Invalid value: "{message}": compilation failed: '
        f"ERROR: <input>:1:1: undeclared reference to 'authorizer' (in container '')\n | {message}\n | ^"
    ]


def test_audit_annotations_variables_and_match_conditions_see_the_authorizer() -> None:
    extra = {
        "matchConditions": [{"name": "may-get", "expression": "authorizer.requestResource.check('get').allowed()"}],
        "variables": [{"name": "scaler", "expression": SCALE_CHECK}],
        "auditAnnotations": [{"key": "scaler",
                              "valueExpression": "variables.scaler ? 'may scale' : 'may not scale'"}],
    }
    assert load(vap([{"expression": "variables.scaler == true"}], extra=extra)).validating.policies


# -- The builders: upstream's checks and texts ----------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("authorizer.path('')", "path must not be empty"),
        ("authorizer.path('  ')", "path must not be empty"),
        ("authorizer.group('apps').resource('')", "resource must not be empty"),
        ("authorizer.group('apps').resource('  ')", "resource must not be empty"),
        ("authorizer.serviceAccount('not@a#valid!namespace', 'validname')", "Invalid service account namespace"),
        ("authorizer.serviceAccount('valid.example.com', 'invalid@*name')", "Invalid service account name"),
        ("authorizer.serviceAccount('valid.example.com', 'name')", "Invalid service account namespace"),  # a label
        ("authorizer.serviceAccount('Bad', 'Bad')", "Invalid service account name"),  # the name is checked first
    ],
)
def test_builder_errors_are_upstreams(expression: str, error: str) -> None:
    assert evaluate(expression, review(authorizer=RichAuthorizer({}))) == runtime.Result(error=error)


def test_a_check_asks_what_upstreams_attributes_record_holds() -> None:
    # filter_test.go "test authorizer allow resource check with all fields", with the requester's
    # uid and extra from the request's userInfo.
    fake = RichAuthorizer({"alice": {"create deployments/status"}})
    ctx = review(authorizer=fake,
                 request={"userInfo": {"username": "alice", "uid": "1234", "extra": {"scopes": ["a", "b"]}}})
    expression = ("authorizer.group('apps').resource('deployments').subresource('status').namespace('test')"
                  ".name('backend').check('create')")
    assert evaluate(expression + ".allowed()", ctx) == runtime.Result(value=True)
    assert evaluate(expression + ".reason()", ctx) == runtime.Result(value="RBAC: allowed by a test rule")
    assert fake.asked[0] == k8s_authz.Attributes(
        user="alice", groups=("system:authenticated",), verb="create", uid="1234", extra=(("scopes", ("a", "b")),),
        resource_request=True, group="apps", version="*", resource="deployments", subresource="status",
        namespace="test", name="backend")
    wrong = "authorizer.group('apps').resource('deployments-xxxx').subresource('status').check('create').allowed()"
    assert evaluate(wrong, ctx) == runtime.Result(value=False)


def test_empty_subresource_and_name_are_unset() -> None:
    fake = RichAuthorizer({"alice": {"list pods"}})
    expression = "authorizer.group('').resource('pods').subresource('').name('').check('list').allowed()"
    assert evaluate(expression, review(authorizer=fake)) == runtime.Result(value=True)
    assert (fake.asked[0].subresource, fake.asked[0].name, fake.asked[0].namespace) == ("", "", "")


def test_path_checks_are_non_resource_requests() -> None:
    fake = RichAuthorizer({"alice": {"get /healthz"}})
    assert evaluate("authorizer.path('/healthz').check('get').allowed()", review(authorizer=fake)) == \
        runtime.Result(value=True)
    assert evaluate("authorizer.path('/healthz').check('post').allowed()", review(authorizer=fake)) == \
        runtime.Result(value=False)
    asked = fake.asked[0]
    assert (asked.resource_request, asked.path, asked.verb, asked.resource, asked.version) == \
        (False, "/healthz", "get", "", "")


def test_service_account_checks_ask_for_that_service_account() -> None:
    fake = RichAuthorizer({"system:serviceaccount:default:test-serviceaccount": {"custom-verb endpoints"}})
    expression = ("authorizer.serviceAccount('default', 'test-serviceaccount').group('').resource('endpoints')"
                  ".namespace('default').name('endpoints1').check('custom-verb').allowed()")
    assert evaluate(expression, review(authorizer=fake)) == runtime.Result(value=True)
    assert fake.asked[0] == k8s_authz.Attributes(
        user="system:serviceaccount:default:test-serviceaccount",
        groups=("system:serviceaccounts", "system:serviceaccounts:default"), verb="custom-verb",
        group="", resource="endpoints", namespace="default", name="endpoints1")


def test_request_resource_is_the_original_resource_of_the_request() -> None:
    fake = RichAuthorizer({"alice": {"custom-verb deployments/status"}})
    # Matched through an equivalent resource: request.resource is extensions, requestResource is apps.
    ctx = review(authorizer=fake, group="extensions", sub_resource="",
                 request={"requestResource": {"group": "apps", "version": "v1", "resource": "deployments"},
                          "requestSubResource": "status"})
    assert evaluate("authorizer.requestResource.check('custom-verb').allowed()", ctx) == runtime.Result(value=True)
    asked = fake.asked[0]
    assert (asked.group, asked.resource, asked.subresource, asked.namespace, asked.name, asked.version) == \
        ("apps", "deployments", "status", "shop", "web", "*")
    assert evaluate("authorizer.requestResource.resource", review()) == runtime.Result(value="deployments")


def test_selectors_are_passed_as_written() -> None:
    fake = RichAuthorizer({"alice": {"list pods"}})
    expression = ("authorizer.group('').resource('pods').fieldSelector('spec.nodeName=mynode')"
                  ".labelSelector('app=example').check('list').allowed()")
    assert evaluate(expression, review(authorizer=fake)) == runtime.Result(value=True)
    assert (fake.asked[0].field_selector, fake.asked[0].label_selector) == ("spec.nodeName=mynode", "app=example")


def test_an_authorizer_error_is_a_decision_not_an_evaluation_error() -> None:
    # filter_test.go "test authorizer error": errored() true, error() the text, allowed() false.
    fake = RichAuthorizer({}, decision=k8s_authz.Decision(False, "fake reason", "fake authz error"))
    check = "authorizer.group('').resource('endpoints').check('create')"
    ctx = review(authorizer=fake)
    assert evaluate(f"{check}.errored()", ctx) == runtime.Result(value=True)
    assert evaluate(f"{check}.error() == 'fake authz error'", ctx) == runtime.Result(value=True)
    assert evaluate(f"{check}.allowed()", ctx) == runtime.Result(value=False)
    assert evaluate(f"{check}.reason() == 'fake reason'", ctx) == runtime.Result(value=True)
    denied = review(authorizer=RichAuthorizer({"alice": set()}))
    assert evaluate(f"{check}.errored()", denied) == runtime.Result(value=False)
    assert evaluate(f"{check}.error()", denied) == runtime.Result(value="")


def test_checks_through_composited_values() -> None:
    fake = RichAuthorizer({"alice": {"get deployments"}})
    extra = {"variables": [{"name": "deployments", "expression": "authorizer.group('apps').resource('deployments')"},
                           {"name": "decision", "expression": "variables.deployments.check('get')"}]}
    loaded = load(vap([{"expression": "variables.decision.allowed()"},
                       {"expression": "variables.deployments.namespace('shop').check('get').allowed()"}], extra=extra))
    assert validating.evaluate(loaded.validating, DEPLOYMENT, review(authorizer=fake)).denial is None


# -- Through whole policies: the scale guard --------------------------------------------------------------


def guard(failure_policy: str = "Fail") -> validating.PolicySet:
    return load(vap([{"expression": SCALE_RULE, "message": "only scalers may set more than 10 replicas"}],
                    failure_policy=failure_policy)).validating


def denial_text(message: str) -> str:
    return f"ValidatingAdmissionPolicy 'scale-guard' with binding 'scale-guard-binding' denied request: {message}"


def test_scale_guard_allows_users_who_may_update_the_scale_subresource() -> None:
    fake = RichAuthorizer({"alice": {"update deployments/scale"}, "bob": {"update deployments"}})
    assert validating.evaluate(guard(), DEPLOYMENT, review("alice", fake)) == validating.Verdict()
    verdict = validating.evaluate(guard(), DEPLOYMENT, review("bob", fake))
    assert verdict.denial == validating.Denial(denial_text("only scalers may set more than 10 replicas"), "Invalid",
                                               422, "scale-guard", "scale-guard-binding")
    assert [(a.user, a.verb, a.group, a.resource, a.subresource, a.namespace, a.name) for a in fake.asked] == [
        ("alice", "update", "apps", "deployments", "scale", "shop", "web"),
        ("bob", "update", "apps", "deployments", "scale", "shop", "web")]


def test_scale_guard_does_not_ask_when_the_replicas_are_few() -> None:
    fake = RichAuthorizer({"alice": set()})
    small = {**DEPLOYMENT, "spec": {**DEPLOYMENT["spec"], "replicas": 3}}
    assert validating.evaluate(guard(), small, review("alice", fake)) == validating.Verdict()
    assert validating.evaluate(guard(), small, review("alice", None)) == validating.Verdict()
    assert fake.asked == []


@pytest.mark.parametrize(
    ("authorizer", "error"),
    [
        (None, k8s_authz.NO_CLUSTER),
        (RichAuthorizer({}), k8s_authz.NOT_KNOWN_YET),  # the cache does not know alice's answer yet
        (LegacyAuthorizer({"alice": {"update apps/deployments"}}),
         "authorizer: this webhook's SubjectAccessReview cache cannot ask about a subresource ('scale'); it asks "
         "only by verb, group, resource, namespace and name"),
        (BrokenAuthorizer(), "authorizer: connection reset by peer"),
    ],
)
def test_without_an_answer_the_failure_policy_decides(authorizer: Any, error: str) -> None:
    assert error.startswith("authorizer: ")
    verdict = validating.evaluate(guard("Fail"), DEPLOYMENT, review("alice", authorizer))
    assert verdict.denial == validating.Denial(
        denial_text(f"expression '{SCALE_RULE}' resulted in error: {error}"), "Invalid", 422, "scale-guard",
        "scale-guard-binding")
    assert validating.evaluate(guard("Ignore"), DEPLOYMENT, review("alice", authorizer)) == validating.Verdict()


def test_no_cluster_message_is_the_documented_one() -> None:
    assert k8s_authz.NO_CLUSTER == "authorizer: no cluster connection to ask (SubjectAccessReview)"


def test_the_legacy_authorizer_answers_plain_resource_checks() -> None:
    legacy = LegacyAuthorizer({"alice": {"update apps/deployments"}, "system:serviceaccount:ns:sa": {"create /pods"}})
    rule = ("object.spec.replicas <= 10 || authorizer.group('apps').resource('deployments')"
            ".namespace(object.metadata.namespace).check('update').allowed()")
    policies = load(vap([{"expression": rule}])).validating
    assert validating.evaluate(policies, DEPLOYMENT, review("alice", legacy)).denial is None
    assert validating.evaluate(policies, DEPLOYMENT, review("bob", legacy)).denial is not None  # bob: not known yet
    assert legacy.asked[0] == {"user": "alice", "groups": ("system:authenticated",), "verb": "update",
                               "group": "apps", "resource": "deployments", "name": "", "namespace": "shop"}
    expression = "authorizer.serviceAccount('ns', 'sa').group('').resource('pods').check('create').allowed()"
    assert evaluate(expression, review("alice", legacy)) == runtime.Result(value=True)
    assert legacy.asked[-1] == {"user": "system:serviceaccount:ns:sa",
                                "groups": ("system:serviceaccounts", "system:serviceaccounts:ns"), "verb": "create",
                                "group": "", "resource": "pods", "name": "", "namespace": ""}
    assert evaluate("authorizer.requestResource.check('delete').reason()", review("alice", legacy)) == \
        runtime.Result(value="")
    for expression, what in [("authorizer.path('/healthz').check('get').allowed()", "a non-resource path ('/healthz')"),
                             ("authorizer.group('').resource('pods').fieldSelector('a=b').check('list').allowed()",
                              "a field selector"),
                             ("authorizer.group('').resource('pods').labelSelector('a=b').check('list').allowed()",
                              "a label selector")]:
        assert evaluate(expression, review("alice", legacy)).error == (
            f"authorizer: this webhook's SubjectAccessReview cache cannot ask about {what}; it asks only by verb, "
            "group, resource, namespace and name")


def test_one_review_asks_each_question_once() -> None:
    fake = RichAuthorizer({"alice": {"update deployments/scale"}})
    text = vap([{"expression": SCALE_RULE}], name="first") + "---\n" + vap([{"expression": SCALE_RULE}], name="second")
    policies = load(text).validating
    assert validating.evaluate(policies, DEPLOYMENT, review("alice", fake)).denial is None
    assert len(fake.asked) == 1


def test_audit_annotation_reads_a_decision() -> None:
    fake = RichAuthorizer({"alice": {"update deployments/scale"}})
    extra = {"auditAnnotations": [{"key": "scaler", "valueExpression": f"{SCALE_CHECK} ? 'yes' : 'no'"}]}
    verdict = validating.evaluate(load(vap([{"expression": "true"}], extra=extra)).validating, DEPLOYMENT,
                                  review("alice", fake))
    assert verdict.audit == {"scale-guard/scaler": "yes"}


def test_a_review_binding_is_freed_with_the_review() -> None:
    # check lives in a cel-cpp object the garbage collector cannot see through: it must not hold the review.
    binding = k8s_authz.Binding.for_review(review(authorizer=RichAuthorizer({"alice": {"get deployments"}})))
    bound = runtime.activation({"authorizer": binding}, declared=DECLARED)
    program = runtime.compile("authorizer.requestResource.check('get').allowed()", declared=DECLARED)
    assert runtime.evaluate(program, bound) == runtime.Result(value=True)
    alive = weakref.ref(binding)
    del binding
    assert alive() is None  # freed by reference counting, no collection needed
    assert runtime.evaluate(program, bound).error == "authorizer: the review this check belongs to is over"


def test_an_activation_without_a_binding_has_no_authorizer() -> None:
    program = runtime.compile("authorizer.requestResource.check('get').allowed()", declared=DECLARED)
    assert runtime.evaluate(program, runtime.activation({"authorizer": None}, declared=DECLARED)) == \
        runtime.Result(error=k8s_authz.NO_CLUSTER)


# -- MutatingAdmissionPolicy ----------------------------------------------------------------------------


def map_text(failure_policy: str) -> str:
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1beta1", "kind": "MutatingAdmissionPolicy",
        "metadata": {"name": "label-scalers"},
        "spec": {
            "failurePolicy": failure_policy,
            "matchConstraints": {"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"],
                                                    "operations": ["CREATE", "UPDATE"],
                                                    "resources": ["deployments"]}]},
            "matchConditions": [{"name": "scaler", "expression": SCALE_CHECK}],
            "reinvocationPolicy": "Never",
            "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": json.dumps(
                "[JSONPatch{op: 'add', path: '/metadata/labels', value: {'scaler': 'yes'}}]")[1:-1]}}],
        },
    }
    binding = {"apiVersion": "admissionregistration.k8s.io/v1beta1", "kind": "MutatingAdmissionPolicyBinding",
               "metadata": {"name": "label-scalers-binding"}, "spec": {"policyName": "label-scalers"}}
    return yaml.safe_dump_all([policy, binding])


def test_mutating_policies_ask_the_same_authorizer() -> None:
    policies = load(map_text("Fail")).mutating
    fake = RichAuthorizer({"alice": {"update deployments/scale"}, "bob": set()})
    result = mutating.apply(policies, DEPLOYMENT, review("alice", fake))
    assert result.denial is None and result.object is not None
    assert result.object["metadata"]["labels"] == {"scaler": "yes"}
    assert mutating.apply(policies, DEPLOYMENT, review("bob", fake)).object is None
    failed = mutating.apply(policies, DEPLOYMENT, review("alice", None))
    assert failed.denial is not None and failed.denial.message.endswith(
        f"expression '{SCALE_CHECK}' resulted in error: {k8s_authz.NO_CLUSTER}")
    ignored = mutating.apply(load(map_text("Ignore")).mutating, DEPLOYMENT, review("alice", None))
    assert ignored.denial is None and ignored.object is None
