"""Batched CEL evaluation (webhook.cel.batch) gives exactly the verdicts of one call per expression.

The reference is the same policy set with ``batched=False``; both run over the Pod Security set as
admission policies (every namespace level, CREATE and UPDATE), over the upstream fixtures when
``../shared`` is there, and over generated Pods of every odd shape (whose errors make batches fail and
fall back). The targeted tests pin what the module docstring promises: one call for a whole batch, an
erroring member reported alone with its own text, the authorizer never asked speculatively.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import conftest, test_plan
from tests import test_cel_examples as examples
from webhook.cel import batch, rewrite, runtime, validating
from webhook.policy import model

PSS = examples.PSS
PSS_WARN = examples.PSS_WARN
LEVELS: list[dict[str, str] | None] = [
    None, {}, {examples.ENFORCE: "baseline"}, {examples.ENFORCE: "restricted"}, {examples.ENFORCE: "privileged"},
]


def unbatched(policy_set: validating.PolicySet) -> validating.PolicySet:
    return dataclasses.replace(policy_set, batched=False)


PSS_ALONE = unbatched(PSS)
PSS_WARN_ALONE = unbatched(PSS_WARN)


def assert_same(obj: Any, ctx: model.ReviewContext) -> None:
    for batched, alone in ((PSS, PSS_ALONE), (PSS_WARN, PSS_WARN_ALONE)):
        assert validating.evaluate(batched, obj, ctx) == validating.evaluate(alone, obj, ctx)


def contexts(obj: Any, old: Any = None) -> list[model.ReviewContext]:
    found = [examples.pod_context(obj if isinstance(obj, dict) else {}, labels=labels) for labels in LEVELS]
    if old is not None:
        found += [examples.pod_context(obj if isinstance(obj, dict) else {}, labels=labels, operation="UPDATE",
                                       old_object=old) for labels in LEVELS]
    return found


@pytest.mark.parametrize("name", sorted(p.name for p in examples.MANIFESTS.glob("pod-*.yaml")))
def test_example_pods_in_every_namespace_level(name: str) -> None:
    pod = examples.manifest(name)
    other = examples.manifest("pod-restricted.yaml")
    for ctx in contexts(pod, old=other):
        assert_same(pod, ctx)


def upstream_pods() -> list[Any]:
    """The Pods of the upstream Pod Security fixtures (the test skips without ``../shared``)."""
    if not examples.FIXTURES:
        pytest.skip(f"conformance corpus not found at {examples.PSA}")
    return [yaml.safe_load((examples.PSA / entry["file"]).read_text()) for entry in examples.FIXTURES]


def test_upstream_fixtures() -> None:
    for pod in upstream_pods():
        for ctx in contexts(pod):
            assert_same(pod, ctx)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(test_plan.POD, st.one_of(st.none(), test_plan.POD))
def test_generated_pods(pod: dict[str, Any], old: dict[str, Any] | None) -> None:
    for ctx in contexts(pod, old=old):
        assert_same(pod, ctx)


# --- what batching does -----------------------------------------------------------------------------


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    evaluate = runtime.evaluate

    def counted(program: runtime.Program, bound: Any) -> runtime.Result:
        calls.append(program.source)
        return evaluate(program, bound)

    monkeypatch.setattr(runtime, "evaluate", counted)
    return calls


def test_a_compliant_pod_takes_two_calls_for_the_whole_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Conditions in one call, validations in another, from the third review of the kind on;
    unbatched, one call per distinct expression."""
    pod = examples.manifest("pod-restricted.yaml")
    ctx = examples.pod_context(pod, labels={examples.ENFORCE: "restricted"})
    policy_set = dataclasses.replace(PSS)  # fresh batches
    calls = _counting(monkeypatch)
    assert validating.evaluate(policy_set, pod, ctx).denial is None  # first sighting: runs unbatched
    alone = len(calls)
    assert alone == len(set(calls)) > 19
    calls.clear()
    # Second review: the conditions' batch is compiled and runs; the validations' list is seen for
    # the first time (it depends on the conditions' results, unknown before).
    assert validating.evaluate(policy_set, pod, ctx).denial is None
    assert 2 < len(calls) < alone
    calls.clear()
    assert validating.evaluate(policy_set, pod, ctx).denial is None
    assert len(calls) == 2
    calls.clear()
    assert validating.evaluate(PSS_ALONE, pod, ctx).denial is None
    assert len(calls) == alone


def _typical_pod_settled(batched: validating.PolicySet, alone: validating.PolicySet) -> tuple[
        validating.PolicySet, Any, model.ReviewContext, validating.Verdict]:
    """The benchmark's Pod in a restricted namespace (it fails four restricted checks) on a fresh
    copy of ``batched``, reviewed until its batches are compiled; the verdict is ``alone``'s."""
    from bench import reviews
    from webhook import review

    parsed = review.parse(reviews.bodies()["pod"])
    ctx = examples.pod_context(parsed.object, labels={examples.ENFORCE: "restricted"})
    policy_set = dataclasses.replace(batched)
    for _ in range(3):
        verdict = validating.evaluate(policy_set, parsed.object, ctx)
    assert verdict == validating.evaluate(alone, parsed.object, ctx)
    return policy_set, parsed.object, ctx, verdict


def test_the_failing_policies_messages_take_one_more_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """With Warn bindings every failure's messageExpression runs, as a third batch, and the
    warnings are those of one call each."""
    policy_set, pod, ctx, verdict = _typical_pod_settled(PSS_WARN, PSS_WARN_ALONE)
    assert len(verdict.warnings) == 4
    calls = _counting(monkeypatch)
    validating.evaluate(policy_set, pod, ctx)
    assert len(calls) == 3


def test_a_denied_pod_computes_only_the_message_of_the_denial(monkeypatch: pytest.MonkeyPatch) -> None:
    """With Deny bindings only the first denial is the answer (``deniedDecisions[0]``): of the four
    failing checks' messageExpressions, only the first one's runs, and the answer is the one every
    expression run alone gives."""
    policy_set, pod, ctx, verdict = _typical_pod_settled(PSS, PSS_ALONE)
    assert verdict.denial is not None and len(verdict.decided) == 4
    assert verdict.denial.message == (
        "ValidatingAdmissionPolicy 'pss-restricted-capabilities' with binding 'pss-restricted-capabilities' denied "
        'request: unrestricted capabilities (containers "checkout", "metrics" must set '
        'securityContext.capabilities.drop=["ALL"])')
    messages = {validation.message_program.source for policy in policy_set.policies
                for validation in policy.validations if validation.message_program is not None}
    calls = _counting(monkeypatch)
    validating.evaluate(policy_set, pod, ctx)
    assert len(calls) == 3  # conditions, validations, one message
    assert len([source for source in calls if source in messages]) == 1


def test_batches_stay_within_their_source_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the budget, lists not compiled yet run unbatched, with the same verdicts."""
    monkeypatch.setattr(batch, "SOURCE_BUDGET", 3000)  # room for the conditions (~1,200), not the validations
    pod = examples.manifest("pod-privileged.yaml")
    ctx = examples.pod_context(pod)
    policy_set = dataclasses.replace(PSS)
    for _ in range(3):
        assert validating.evaluate(policy_set, pod, ctx) == validating.evaluate(PSS_ALONE, pod, ctx)
    assert 0 <= policy_set.batches.budget < 3000  # the conditions' batch was compiled
    calls = _counting(monkeypatch)
    validating.evaluate(policy_set, pod, ctx)
    batched = len(calls)
    calls.clear()
    validating.evaluate(PSS_ALONE, pod, ctx)
    assert 2 < batched < len(calls)  # the conditions in one call, the validations one by one


def _policies(*validations: str, condition: str = "true") -> validating.PolicySet:
    documents: list[dict[str, Any]] = []
    for index, expression in enumerate(validations):
        name = f"p{index}"
        documents.append({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                             "operations": ["CREATE"], "resources": ["pods"]}]},
                     "matchConditions": [{"name": "c", "expression": condition}],
                     "validations": [{"expression": expression}]},
        })
        documents.append({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {"policyName": name, "validationActions": ["Warn"]},
        })
    return examples.load_documents(documents)


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]}}


def test_a_failing_member_reports_its_own_error_and_the_others_their_own_results() -> None:
    policy_set = _policies("object.spec.containers.size() == 1", "object.spec.nodeName == 'x'",
                           "object.metadata.name == 'q'", "1 / object.spec.containers.size() - 1 == 1")
    verdict = validating.evaluate(policy_set, POD, examples.pod_context(POD))
    assert verdict == validating.evaluate(unbatched(policy_set), POD, examples.pod_context(POD))
    assert verdict.warnings == [
        "Validation failed for ValidatingAdmissionPolicy 'p1' with binding 'p1': "
        "expression 'object.spec.nodeName == 'x'' resulted in error: no such key: nodeName",
        "Validation failed for ValidatingAdmissionPolicy 'p2' with binding 'p2': "
        "failed expression: object.metadata.name == 'q'",
        "Validation failed for ValidatingAdmissionPolicy 'p3' with binding 'p3': "
        "failed expression: 1 / object.spec.containers.size() - 1 == 1",
    ]


def test_a_policy_its_conditions_opt_out_of_is_not_evaluated(monkeypatch: pytest.MonkeyPatch) -> None:
    policy_set = _policies("object.spec.nodeName == 'x'", "object.spec.hostname == 'y'", condition="false")
    calls = _counting(monkeypatch)
    assert validating.evaluate(policy_set, POD, examples.pod_context(POD)).warnings == []
    assert calls == ["false"]


def test_an_expression_asking_the_authorizer_runs_only_where_the_api_server_runs_it() -> None:
    check = "authorizer.group('').resource('nodes').check('get').allowed()"
    opted_out = _policies("true", "false", check, condition=f"object.metadata.name == 'other' && {check}")
    running = _policies("true", "object.spec.nodeName == 'x'", check, f"!{check}")
    for chosen in (opted_out, unbatched(opted_out)):
        authorizer = conftest.CountingAuthorizer(answer=True)
        assert validating.evaluate(chosen, POD, examples.pod_context(POD, authorizer=authorizer)).warnings == []
        assert authorizer.asked == 0  # the conditions are false before the check
    for chosen in (running, unbatched(running)):
        authorizer = conftest.CountingAuthorizer(answer=True)
        verdict = validating.evaluate(chosen, POD, examples.pod_context(POD, authorizer=authorizer))
        assert [w.split(": ", 1)[1] for w in verdict.warnings] == [
            "expression 'object.spec.nodeName == 'x'' resulted in error: no such key: nodeName",
            f"failed expression: !{check}",
        ]
        assert authorizer.asked == 1  # the review keeps its answer for the second policy


def test_verdicts_carry_the_same_audit_annotations() -> None:
    pod = examples.manifest("pod-privileged.yaml")
    audited = dataclasses.replace(PSS, bindings=tuple(
        dataclasses.replace(binding, validation_actions=("Audit", "Warn")) for binding in PSS.bindings))
    ctx = examples.pod_context(pod)
    verdict = validating.evaluate(audited, pod, ctx)
    assert verdict == validating.evaluate(unbatched(audited), pod, ctx)
    failures = json.loads(verdict.audit[validating.FAILURE_ANNOTATION])
    assert failures[0]["policy"] == "pss-baseline-host-namespaces"


def test_a_set_that_never_mentions_the_authorizer_does_not_bind_one_per_review() -> None:
    assert not PSS.asks_authorizer
    assert _policies("true", "authorizer.group('').resource('nodes').check('get').allowed()").asks_authorizer
    assert _policies("true", condition="has(authorizer.requestResource.name)").asks_authorizer
    assert not _policies("has(object.metadata.authorizer)", "'authorizer' != ''").asks_authorizer


# --- subexpressions repeated across a batch ----------------------------------------------------------

JOINED = "(object.spec.?initContainers.orValue([]) + object.spec.?containers.orValue([]))"


def test_a_repeated_group_is_computed_once_for_the_batch() -> None:
    bindings, members = rewrite.hoist_common([
        f"!{JOINED}.exists(c, c.x)",
        f"{JOINED}.all(c, c.y) && size(object.spec) > 0",
        f"[1].all(object, {JOINED}.size() > 0)",  # binds ``object``: left as written
        "has(object.spec) && size(object.spec.containers) > 0",  # call arguments are not groups
        "(c.name + object.metadata.name) == '' || (c.name + object.metadata.name) == 'x'",  # c is free
    ], batch.HOIST_ROOTS)
    assert bindings == [("hoisted0", JOINED)]
    assert members == [
        "! hoisted0 .exists(c, c.x)",
        " hoisted0 .all(c, c.y) && size(object.spec) > 0",
        f"[1].all(object, {JOINED}.size() > 0)",
        "has(object.spec) && size(object.spec.containers) > 0",
        "(c.name + object.metadata.name) == '' || (c.name + object.metadata.name) == 'x'",
    ]
    # A name already in use is not taken.
    assert rewrite.hoist_common([f"{JOINED}.size() == hoisted0", f"{JOINED}.size() > 0"],
                                batch.HOIST_ROOTS)[0] == [("hoisted0_", JOINED)]


def test_the_pod_security_set_computes_the_joined_container_lists_once() -> None:
    sources = [validation.program.source for policy in PSS.policies for validation in policy.validations]
    bindings, members = rewrite.hoist_common(sources, batch.HOIST_ROOTS)
    assert [text.count("orValue([])") for _, text in bindings] == [3]
    assert sum("hoisted0" in member for member in members) == 15


def test_a_failing_group_falls_back_to_each_member_alone() -> None:
    """``true || <error>`` is true in CEL: computed once up front, the group's error fails the whole
    batch, and each member then gives what it gives alone."""
    group = "(object.spec.containers.size() + object.metadata.name.size() + object.spec.replicas)"
    policy_set = _policies(f"true || {group} > 0", f"{group} > 0", f"false || {group} > 1")
    for _ in range(3):
        verdict = validating.evaluate(policy_set, POD, examples.pod_context(POD))
        assert verdict == validating.evaluate(unbatched(policy_set), POD, examples.pod_context(POD))
    assert verdict.warnings == [
        f"Validation failed for ValidatingAdmissionPolicy 'p1' with binding 'p1': expression '{group} > 0' "
        "resulted in error: no such key: replicas",
        f"Validation failed for ValidatingAdmissionPolicy 'p2' with binding 'p2': expression 'false || {group} > 1' "
        "resulted in error: no such key: replicas",
    ]


@pytest.mark.parametrize("sources", [
    # found in review: each made the whole batch fail to compile, so the list ran unbatched for good
    ["(object.metadata.name + object.metadata.name)in ['a']", "(object.metadata.name + object.metadata.name).size() > 0"],
    ["has(((object.spec.foo.bar.baz)))", "has(((object.spec.foo.bar.baz)))  || true"],
])
def test_a_hoisted_batch_compiles_where_the_plain_one_does(sources: list[str]) -> None:
    runtime.compile(batch.combined_source(sources), declared=runtime.Declarations(), returns=None)


def test_a_group_some_members_guard_stops_being_hoisted_after_it_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Alone, each member is false on a Pod without spec.foo; hoisted, the group fails up front and
    every member runs alone. After the first such failure the list runs as written: one call."""
    guarded = "has(object.spec.foo) && (object.spec.foo.bar + object.spec.foo.baz) > 1"
    policy_set = _policies(guarded, guarded.replace("> 1", "< 0"), "object.metadata.name == 'p'")
    ctx = examples.pod_context(POD)
    for _ in range(3):
        assert validating.evaluate(policy_set, POD, ctx) == validating.evaluate(unbatched(policy_set), POD, ctx)
    calls = _counting(monkeypatch)
    validating.evaluate(policy_set, POD, ctx)
    assert len(calls) == 2  # the conditions' batch and the validations' batch, unhoisted



# --- what is worked out once per outcome -------------------------------------------------------------

def test_the_policies_settled_by_the_results_are_those_results_show() -> None:
    """:meth:`Plan.outcome` keeps its answers by the results' identities: the shared ``TRUE`` and
    ``FALSE`` stand for their values, and any other result (an equal one that is not the shared
    object, an error) is "not true, not false" however often its identity comes back."""
    policies = list(PSS.policies)
    plan = dataclasses.replace(PSS).batches.plan(policies)
    first = plan.policies[0]
    validation, owner = first.validations[0].source, first.name
    index = first.checks.index(validation)
    everything_true = {program.source: runtime.TRUE for program in plan.conditions}
    everything_true.update({program.source: runtime.TRUE for p in plan.policies for program in p.validations})
    settled_all = plan.outcome(everything_true)
    assert owner in settled_all.passing and not settled_all.failing
    for _ in range(3):
        # A fresh result equal to TRUE, freed after each round (its identity may come back).
        for other in (runtime.Result(value=True), runtime.Result(error="no such key: x")):
            outcome = plan.outcome({**everything_true, validation: other})
            assert owner not in outcome.passing and owner not in outcome.failing  # evaluated in full
        outcome = plan.outcome({**everything_true, validation: runtime.FALSE})
        assert owner not in outcome.passing and outcome.failing == {owner: (index,)}
        assert plan.outcome(everything_true) == settled_all
    # A condition false settles its policy whatever the rest gives.
    condition = first.conditions[0]
    outcome = plan.outcome({**everything_true, condition: runtime.FALSE, validation: runtime.Result(value=1)})
    assert owner in outcome.passing and owner not in outcome.failing
    # A condition not true (an error) leaves it to the full evaluation, whatever its validations gave.
    outcome = plan.outcome({**everything_true, condition: runtime.Result(error="x"), validation: runtime.FALSE})
    assert owner not in outcome.passing and owner not in outcome.failing


def test_a_plan_asked_for_by_a_kept_tuple_is_the_plan_of_its_policies() -> None:
    batches = dataclasses.replace(PSS).batches
    kept = tuple(PSS.policies)
    by_tuple = batches.plan(kept)
    assert batches.plan(kept) is by_tuple
    assert batches.plan(list(kept)) is by_tuple
    assert batches.plan(tuple(reversed(kept))) is not by_tuple  # another tuple, another list of policies
    assert batches.plan(tuple(reversed(kept))).policies[0].name == kept[-1].name


def test_a_review_selects_the_pairs_worked_out_for_its_kind_of_request() -> None:
    """With no selectors and no params, the selection is the same for every review of a kind of
    request, kept with the candidates; with selectors it is made per review."""
    pod = examples.manifest("pod-restricted.yaml")
    ctx = examples.pod_context(pod, labels={examples.ENFORCE: "restricted"})
    plain = _policies("true", "object.spec.containers.size() > 0", "false")
    prepared, settled = plain.prepared(ctx)
    assert settled is not None and plain.prepared(ctx)[1] is settled
    assert [entry[:2] for entry in settled.selected] == [(policy, binding) for policy, binding, _, _ in prepared]
    assert [policy.name for policy in settled.sharing] == ["p0", "p1", "p2"]
    assert PSS.prepared(ctx)[1] is None  # the restricted bindings select namespaces
    with_selector = examples.load_documents([
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
         "metadata": {"name": "p"},
         "spec": {"matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                          "operations": ["CREATE"], "resources": ["pods"]}]},
                  "validations": [{"expression": "false"}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
         "metadata": {"name": "p"},
         "spec": {"policyName": "p", "validationActions": ["Deny"],
                  "matchResources": {"objectSelector": {"matchLabels": {"app": "web"}}}}},
    ])
    assert with_selector.prepared(ctx)[1] is None
    labelled = {**pod, "metadata": {**pod["metadata"], "labels": {"app": "web"}}}
    assert validating.evaluate(with_selector, pod, ctx).denial is None
    assert validating.evaluate(with_selector, labelled, ctx).denial is not None
