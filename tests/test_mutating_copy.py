"""The mutating chain copies only what its mutations write (``engine.copy_tree``), sharing the rest
with the object as sent. That is safe only while every mutation keeps to its declared write set
(``registry.Policy.writes``): these tests run the chain both ways, the scoped copy against the
whole-object copy of ``PolicySet(planned=False)``, and require the same answer byte for byte and
the object as sent left exactly as it was, over the example, golden and recorded reviews, the
real-world manifests and hypothesis-generated Pods and workloads of every shape."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import conftest, test_plan
from webhook import catalog, engine, review
from webhook.policy import files

POLICIES = conftest.REPO / "policies"
SIDECAR_NAMESPACE = {"sidecar.admission.dev/inject": "enabled"}

VARIANTS: dict[str, list[str]] = {
    "default": [],
    # Every mutation on, each with something to write.
    "everything": [
        "defaults.labels={team: web}", "defaults.annotations={owner: platform}",
        "defaults.automountServiceAccountToken=false", "defaults.terminationGracePeriodSeconds=30",
        "defaults.tolerations=[{key: spot, operator: Exists, effect: NoSchedule}]",
        "defaults.priorityClassName=standard", "downwardAPI.policies={downward-api.volume: {mode: enforce}}",
        "sidecars.injectByDefault=true",
    ],
    # Classic sidecars, variables appended, and the defaults only reported (scratch copies).
    "classic": [
        "sidecars.sidecars.log-shipper.mode=classic", "sidecars.injectByDefault=true", "downwardAPI.position=last",
        "defaults.mode=warn", "downwardAPI.policies={downward-api.volume: {mode: enforce}}",
    ],
}


def _sets(overrides: list[str]) -> tuple[engine.PolicySet, engine.PolicySet]:
    config = files.load([POLICIES], overrides=overrides, catalog=catalog.REGISTRY)
    return (engine.PolicySet(config, catalog=catalog.REGISTRY),
            engine.PolicySet(config, catalog=catalog.REGISTRY, planned=False))


SETS = {name: _sets(overrides) for name, overrides in VARIANTS.items()}


def _answer(policy_set: engine.PolicySet, body: dict[str, Any], labels: dict[str, str] | None) -> tuple[bytes, Any]:
    """The mutating answer as bytes (or the error), and the object as it was after the chain."""
    try:
        parsed = review.parse(orjson.dumps(body))
    except Exception as exc:  # noqa: BLE001 - not a review: both ways refuse it alike
        return f"{type(exc).__name__}: {exc}".encode(), None
    parsed.context.namespace_labels = labels
    try:
        outcome = engine.evaluate(policy_set, parsed.object, parsed.context, chain="mutating")
        answer = orjson.dumps(review.respond(parsed, outcome))
    except Exception as exc:  # noqa: BLE001 - both ways must fail alike too
        answer = f"{type(exc).__name__}: {exc}".encode()
    return answer, parsed.object


def assert_same(body: dict[str, Any]) -> None:
    sent = _answer(SETS["default"][1], body, None)[1]  # the object as parsed, through the reference
    for name, (scoped, whole) in SETS.items():
        for labels in (None, SIDECAR_NAMESPACE):
            answer, after = _answer(scoped, body, labels)
            assert answer == _answer(whole, body, labels)[0], name
            assert after == sent and orjson.dumps(after) == orjson.dumps(sent), f"{name}: the object as sent changed"


def _reviews_of(obj: dict[str, Any]) -> list[dict[str, Any]]:
    kind = obj.get("kind") if isinstance(obj.get("kind"), str) else "Pod"
    found = [conftest.admission_review(obj, kind=kind)]
    if kind != "Pod":  # a template update is mutated too
        old = copy.deepcopy(obj)
        old.setdefault("metadata", {})["generation"] = 1
        template = ((old.get("spec") or {}).get("template") or {}) if isinstance(old.get("spec"), dict) else {}
        if isinstance(template, dict) and isinstance(template.get("spec"), dict):
            template["spec"]["containers"] = []
        found.append(conftest.admission_review(obj, kind=kind, operation="UPDATE", old=old))
    return found


def test_the_typical_reviews_are_patched_and_the_copy_is_scoped() -> None:
    from bench import reviews

    scoped, _ = SETS["default"]
    assert scoped.copy_tree(None, "Pod", "CREATE") is not None
    assert SETS["default"][1].copy_tree(None, "Pod", "CREATE") is None  # the reference copies everything
    for body in reviews.bodies().values():
        assert b'"patch"' in _answer(scoped, orjson.loads(body), None)[0]
        assert_same(orjson.loads(body))


def test_examples_and_golden_reviews() -> None:
    count = 0
    for folder in (POLICIES / "examples", conftest.REPO / "tests" / "golden"):
        for _name, obj in test_plan._objects(folder):
            if "request" in obj:
                assert_same(obj)
            elif isinstance(obj.get("kind"), str):
                for body in _reviews_of(obj):
                    assert_same(body)
            count += 1
    assert count > 20


def test_recorded_reviews() -> None:
    bodies = [obj for _name, obj in test_plan._objects(conftest.shared("reviews"))]
    assert bodies
    for body in bodies:
        assert_same(body)


def test_manifests() -> None:
    objects = test_plan._objects(conftest.shared("manifests"))
    assert objects
    for _name, obj in objects:
        if isinstance(obj.get("kind"), str):
            for body in _reviews_of(obj):
                assert_same(body)


OPT_IN = st.sampled_from([{}, {"sidecar.admission.dev/inject": "true"}, {"sidecar.admission.dev/inject": "false"},
                          {"sidecar.admission.dev/sidecars": "log-shipper"},
                          {"sidecar.admission.dev/injected": "log-shipper"}, {"defaults.admission.dev/mutate": "false"}])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(test_plan.POD, OPT_IN, st.sampled_from(["Pod", "Deployment", "CronJob"]))
def test_generated_pods_and_workloads(pod: dict[str, Any], opt_in: dict[str, str], kind: str) -> None:
    pod["metadata"]["annotations"] = {**pod["metadata"]["annotations"], **opt_in}
    if kind == "Pod":
        assert_same(conftest.admission_review(pod))
        return
    template = {"metadata": pod["metadata"], "spec": pod["spec"]}
    obj = conftest.deployment(template)
    if kind == "CronJob":
        obj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "default"},
               "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}
    for body in _reviews_of(obj):
        assert_same(body)


def test_a_mutation_without_a_write_set_gets_the_whole_copy() -> None:
    scoped, _ = SETS["default"]
    mutations = [i for i in scoped.instances if i.policy.chain == "mutating"]
    assert mutations and all(i.policy.writes is not None for i in mutations)  # every built-in one declares
    stripped = engine.PolicySet(scoped.config, catalog=catalog.REGISTRY)
    first = mutations[0]
    stripped.instances = tuple(
        dataclasses.replace(i, policy=dataclasses.replace(i.policy, writes=None)) if i == first else i
        for i in stripped.instances
    )
    assert stripped.copy_tree(None, "Pod", "CREATE") is None


def test_copy_along_copies_the_paths_and_shares_the_rest() -> None:
    obj = {"metadata": {"labels": {"a": "1"}, "annotations": {"b": "2"}},
           "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}, "ports": [{"p": 1}]}],
                    "volumes": [{"name": "v"}]}}
    tree: engine.CopyTree = {"metadata": {"labels": {}}, "spec": {"containers": {"*": {"resources": {}}}}}
    copied = engine.copy_along(obj, tree)
    assert copied == obj
    assert copied is not obj and copied["metadata"] is not obj["metadata"]
    assert copied["metadata"]["labels"] is not obj["metadata"]["labels"]
    assert copied["metadata"]["annotations"] is obj["metadata"]["annotations"]  # not written: shared
    container, original = copied["spec"]["containers"][0], obj["spec"]["containers"][0]
    assert container is not original and container["resources"] is not original["resources"]
    assert container["ports"] is original["ports"] and container["resources"]["requests"] is original[
        "resources"]["requests"]
    assert copied["spec"]["volumes"] is obj["spec"]["volumes"]
