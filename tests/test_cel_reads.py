"""What an expression reads of the per-review variables (webhook.cel.reads), and that handing the
expressions only that changes no answer.

Three layers: the reads worked out from checked syntax trees (exact trees for the shapes the module
docstring names), the projection of values onto them (shape mismatches keep the value whole), and
differential runs: generated expressions over generated objects give the same result or the same
error text on the projected value as on the whole one, and the example policy sets give the same
verdicts projected as whole over the example manifests, the upstream fixtures and generated Pods.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import test_cel_batch, test_plan
from tests import test_cel_examples as examples
from webhook.cel import loading, mutating, reads, runtime, validating
from webhook.policy import files

DECLARED = runtime.Declarations()
EACH = reads.EACH


def reads_of(source: str) -> reads.Reads:
    return runtime.compile(source, declared=DECLARED, returns=None).reads


@pytest.mark.parametrize(("source", "expected"), [
    # a select chain reads the value at its end
    ("object.metadata.name == 'x'", {"object": {"metadata": {"name": None}}}),
    ("object.?metadata.?labels[?'app'].orValue('') == 'x'", {"object": {"metadata": {"labels": {"app": None}}}}),
    ("object.metadata.labels['app'] == 'x'", {"object": {"metadata": {"labels": {"app": None}}}}),
    # has() and comparing with null ask only whether something is there
    ("has(object.spec)", {"object": {"spec": {}}}),
    ("oldObject == null", {"oldObject": {}}),
    ("null != object.spec", {"object": {"spec": {}}}),
    # size() of a list needs its elements to be there, not what they hold
    ("object.spec.containers.size() > 1", {"object": {"spec": {"containers": {EACH: {}}}}}),
    ("size(object.metadata.labels) > 1", {"object": {"metadata": {"labels": {EACH: {}}}}}),
    # a comprehension's variable is an element of its range
    ("object.spec.containers.all(c, c.name != '')", {"object": {"spec": {"containers": {EACH: {"name": None}}}}}),
    ("object.spec.containers[0].image == 'x'", {"object": {"spec": {"containers": {EACH: {"image": None}}}}}),
    # a filter's result holds elements of its range; a map's does not
    ("object.spec.containers.filter(c, c.x == 1).map(c, c.name).join(',') == ''",
     {"object": {"spec": {"containers": {EACH: {"x": None, "name": None}}}}}),
    ("[object.spec.volumes.filter(v, has(v.hostPath))].map(bad, bad.map(v, v.name))[0].size() > 0",
     {"object": {"spec": {"volumes": {EACH: {"hostPath": {}, "name": {}}}}}}),
    ("object.spec.containers.filter(c, c.x == 1) == []", {"object": {"spec": {"containers": {EACH: None}}}}),
    # lists joined, and a choice between two parts
    ("(object.spec.?a.orValue([]) + object.spec.?b.orValue([])).exists(c, c.n == 1)",
     {"object": {"spec": {"a": {EACH: {"n": None}}, "b": {EACH: {"n": None}}}}}),
    ("(request.operation == 'CREATE' ? object.spec : oldObject.spec).x == 1",
     {"request": {"operation": None}, "object": {"spec": {"x": None}}, "oldObject": {"spec": {"x": None}}}),
    # an index by a variable over literal strings is each of them; by anything else, any key
    ("['containers', 'initContainers'].exists(f, object.spec[?f].orValue([]).exists(c, c.image == ''))",
     {"object": {"spec": {"containers": {EACH: {"image": None}}, "initContainers": {EACH: {"image": None}}}}}),
    ("object.metadata.labels[object.metadata.name] == 'x'",
     {"object": {"metadata": {"name": None, "labels": {EACH: None}}}}),
    # anything else with a value reads it whole
    ("object == oldObject", {"object": None, "oldObject": None}),
    ("string(object.spec.replicas) == '1'", {"object": {"spec": {"replicas": None}}}),
    ("'app' in object.metadata.labels", {"object": {"metadata": {"labels": {"app": {}}}}}),
    ("['a', 'b'].exists(k, k in object.data)", {"object": {"data": {"a": {}, "b": {}}}}),
    ("object.data.exists(k, k in object.spec)", {"object": {"data": {EACH: None}, "spec": None}}),
    ("object.metadata.labels.exists(k, k.startsWith('a'))", {"object": {"metadata": {"labels": {EACH: None}}}}),
    # a name bound by a comprehension is not the variable it shadows
    ("[1].exists(object, object > 0)", {}),
    ("[object.spec].all(s, s.x == 1)", {"object": {"spec": {"x": None}}}),
])
def test_reads_of_an_expression(source: str, expected: reads.Reads) -> None:
    assert reads_of(source) == expected


def test_a_tree_that_cannot_be_read_reads_everything() -> None:
    assert reads.of_checked(b"\x0a\x05oops") == reads.EVERYTHING
    assert reads.of_checked(b"") == reads.EVERYTHING


def test_the_union_reads_what_any_expression_reads() -> None:
    union = reads.union([reads_of("object.spec.containers.all(c, c.name != '')"),
                         reads_of("object.spec.containers[0].image == ''"), reads_of("request.operation == ''")])
    assert union == {"object": {"spec": {"containers": {EACH: {"name": None, "image": None}}}},
                     "request": {"operation": None}}
    # what every element of a map gives is read of its named keys too
    assert reads.union([{"object": {"m": {EACH: {"a": None}, "k": {"b": None}}}}]) == {
        "object": {"m": {EACH: {"a": None}, "k": {"a": None, "b": None}}}}


@pytest.mark.parametrize(("value", "tree", "expected"), [
    ({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None}}, {"b": {"c": 2}}),
    ({"a": 1}, {"x": None}, {}),  # absent stays absent
    ([{"a": 1, "b": 2}, {"b": 3}], {EACH: {"a": None}}, [{"a": 1}, {}]),
    ({"k": {"a": 1, "b": 2}, "j": {"a": 3}}, {EACH: {"a": None}}, {"k": {"a": 1}, "j": {"a": 3}}),
    ({"k": {"a": 1}}, {EACH: None}, {"k": {"a": 1}}),
    # shapes the tree does not expect are kept whole
    ([1, 2], {"a": None}, [1, 2]),
    ("text", {"a": None}, "text"),
    (None, {"a": None}, None),
    ([{"a": 1}], {EACH: {"a": None}, "b": None}, [{"a": 1}]),
])
def test_project(value: Any, tree: reads.Tree, expected: Any) -> None:
    assert reads.project(value, tree) == expected


# --- generated expressions over generated objects --------------------------------------------------

KEYS = ("a", "b", "name", "spec")
SCALARS = st.sampled_from([None, True, 0, 1, -1, "", "x", "a", 1.5])
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)), max_leaves=12)
OBJECTS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4)


def _accessor() -> st.SearchStrategy[str]:
    key = st.sampled_from(KEYS)
    return st.one_of(key.map(lambda k: f".{k}"), key.map(lambda k: f".?{k}"), key.map(lambda k: f"['{k}']"),
                     key.map(lambda k: f"[?'{k}']"), st.sampled_from(["[0]", "[?0]", "[1]"]))


def _part(variable: str) -> st.SearchStrategy[str]:
    def unwrap(source: str) -> str:
        # an optional anywhere in the chain makes the whole chain optional
        return f"({source}).orValue(null)" if "?" in source else source
    return st.lists(_accessor(), max_size=3).map(lambda accessors: unwrap(variable + "".join(accessors)))


ROOT = st.sampled_from(["object", "oldObject"])


@st.composite
def _expression(draw: st.DrawFn, depth: int = 2) -> str:
    part = draw(ROOT.flatmap(_part))
    if depth == 0:
        return part
    inner = draw(_expression(depth - 1))
    on_x = draw(st.sampled_from(KEYS))
    choices = [
        part,
        f"has({part}.{on_x})" if not part.endswith(")") else f"{part} == null",
        f"{part} == null", f"{part} != null", f"size({part})", f"string({part})",
        f"{part}.exists(x, x.{on_x} == 1)", f"{part}.all(x, x.?{on_x}.orValue(0) == 1)",
        f"{part}.filter(x, x.{on_x} != '').map(x, x.name)",
        f"[{part}.filter(x, has(x.{on_x}))].map(bad, bad.map(x, x.{on_x}))",
        f"{part}.map(x, x.{on_x}).size()", f"{part}.exists(k, v, v == 1)",
        f"{part}.all(k, v, string(k).size() > 0)", f"{part}.exists(x, true)", f"{part}.map(x, 1)",
        f"{part}.transformList(i, v, i)", f"{part}.existsOne(x, x == 1)",
        f"({part} + {inner})", f"(size({inner}) > 0 ? {part} : {inner})", f"[{part}, {inner}]",
        f"{part}[{inner}]", f"['a', 'b'].exists(f, {part}[?f].orValue(0) == 1)",
        f"{part} == {inner}", f"'a' in {part}", f"{part}.exists(k, k == 'a')",
        f"['a', 'spec'].exists(f, f in {part} && {part}[f] != 1)",
    ]
    return draw(st.sampled_from(choices))


def _result(program: runtime.Program, values: dict[str, Any]) -> runtime.Result:
    return runtime.evaluate(program, runtime.activation(values, declared=DECLARED))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_expression(), OBJECTS, st.one_of(st.none(), OBJECTS))
def test_generated_expressions_give_the_same_on_what_they_read(source: str, obj: Any, old: Any) -> None:
    try:
        program = runtime.compile(source, declared=DECLARED, returns=None)
    except runtime.CompileError:
        return  # a shape the checker refuses: nothing to evaluate
    whole = {"object": obj, "oldObject": old, "request": {}, "namespaceObject": None, "variables": {}}
    union = reads.union([program.reads])
    projected = dict(whole, **{root: reads.project(whole[root], union.get(root, {})) for root in reads.ROOTS})
    assert _result(program, projected) == _result(program, whole), (source, union)
    for root in reads.ROOTS:
        assert reads.projector(union.get(root, {}))(whole[root]) == projected[root], (source, root)


TREES = st.recursive(st.just(None) | st.just({}), lambda inner: st.dictionaries(
    st.sampled_from([*KEYS, reads.EACH, "[]", "x'y"]), inner, max_size=4), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(TREES, VALUES)
def test_the_compiled_projection_is_project(tree: reads.Tree, value: Any) -> None:
    """What a policy set runs per review (straight-line code made from the tree) gives exactly
    what the reference walk gives, on any tree and any value, shapes the tree does not expect
    included."""
    settled = reads._settled(tree)
    assert reads.projector(settled)(value) == reads.project(value, settled)


LABELLED = {"metadata": {"labels": {"app": "web", "team": "x"}},
            "spec": {"containers": [{"name": f"c{i}"} for i in range(4)]}}
BRACKETS = {"m": {"[]": [{"x": 1}], "k": 2, "[*]": {"y": 1}}}


@pytest.mark.parametrize(("sources", "obj"), [
    # A comprehension needs its range as it is even when the body reads no element (found in review:
    # the labels projected away turned a denial into an allow).
    (["object.metadata.labels.all(k, v, k.startsWith('app'))"], LABELLED),
    (["object.metadata.labels['app'] == 'web'", "object.metadata.labels.all(k, v, k.startsWith('app'))"], LABELLED),
    (["object.spec.containers.all(i, c, i < 3)"], LABELLED),
    (["object.spec.containers.exists(c, request.operation == 'CREATE')"], LABELLED),
    (["object.spec.containers.map(c, 1).size()"], LABELLED),
    (["object.spec.containers.map(c, c.image).all(x, true)"], LABELLED),
    # Keys that look like the markers of a tree are plain keys.
    (["object.m['[]'][0].x == 1"], BRACKETS),
    (["object.m[?'[]'].orValue([]).size()"], BRACKETS),
    (["size(object.m['[]']) == 1", "object.m['[*]'].y == 1"], BRACKETS),
    # ``'k' in x`` reads a key of a map, but of a list it is a membership test needing every element.
    (["'[*]' in object.m", "'k' in object.m", "object.m.exists(k, k == '[]')"], BRACKETS),
    (["'a' in object.items", "object.items.all(i, i != 'c')"], {"items": ["a", "b"]}),
    (["['x', 'y'].exists(f, f in object.items)", "object.items.all(i, has(i.x))"], {"items": [{"x": 1}, "y"]}),
    (["['x', 'y'].all(f, f in object.m)"], {"m": {"x": [1], "z": 2}}),
])
def test_sets_of_expressions_give_the_same_on_what_they_read_together(sources: list[str], obj: Any) -> None:
    programs = [runtime.compile(source, declared=DECLARED, returns=None) for source in sources]
    union = reads.union(program.reads for program in programs)
    whole = {"object": obj, "oldObject": None, "request": {"operation": "CREATE"}, "namespaceObject": None,
             "variables": {}}
    projected = dict(whole, **{root: reads.project(whole[root], union.get(root, {})) for root in reads.ROOTS})
    for program in programs:
        assert _result(program, projected) == _result(program, whole), program.source


# --- policy sets -----------------------------------------------------------------------------------

def whole(policy_set: validating.PolicySet) -> validating.PolicySet:
    return dataclasses.replace(policy_set, projected=False, batched=False)


PSS_WHOLE = whole(examples.PSS)
PSS_WARN_WHOLE = whole(examples.PSS_WARN)


def test_the_pod_security_set_reads_a_part_of_the_typical_pod() -> None:
    """What the projection is for: the Pod Security policies read the containers' names, images,
    security contexts, ports and probes, not their env, mounts or resources, nor the tolerations."""
    tree: Any = examples.PSS.reads["object"]
    container = tree["spec"]["containers"][EACH]
    assert {"name", "image", "securityContext", "ports"} <= set(container)
    assert not {"env", "volumeMounts", "resources"} & set(container)
    assert "tolerations" not in tree["spec"]
    assert examples.PSS.reads["request"] == {"operation": None}


def assert_same(obj: Any, ctx: Any) -> None:
    for projected, reference in ((examples.PSS, PSS_WHOLE), (examples.PSS_WARN, PSS_WARN_WHOLE)):
        assert validating.evaluate(projected, obj, ctx) == validating.evaluate(reference, obj, ctx)


@pytest.mark.parametrize("name", sorted(p.name for p in examples.MANIFESTS.glob("pod-*.yaml")))
def test_example_pods_in_every_namespace_level(name: str) -> None:
    pod = examples.manifest(name)
    for ctx in test_cel_batch.contexts(pod, old=examples.manifest("pod-restricted.yaml")):
        assert_same(pod, ctx)


def test_upstream_fixtures() -> None:
    for pod in test_cel_batch.upstream_pods():
        for ctx in test_cel_batch.contexts(pod):
            assert_same(pod, ctx)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(test_plan.POD, st.one_of(st.none(), test_plan.POD))
def test_generated_pods(pod: dict[str, Any], old: dict[str, Any] | None) -> None:
    for ctx in test_cel_batch.contexts(pod, old=old):
        assert_same(pod, ctx)


RESOURCES = {"Pod": ("", "v1", "pods"), "Deployment": ("apps", "v1", "deployments"),
             "CronJob": ("batch", "v1", "cronjobs")}
VALIDATING_DIRS = [d for d in examples.EXAMPLE_DIRS if "mutating" not in d.parts and d != examples.POD_SECURITY]


def contexts_for(obj: dict[str, Any]) -> list[Any]:
    group, version, resource = RESOURCES[obj["kind"]]
    found = []
    for labels in test_cel_batch.LEVELS:
        for operation, old in (("CREATE", None), ("UPDATE", obj), ("DELETE", None)):
            found.append(examples.pod_context(obj, labels=labels, group=group, version=version, resource=resource,
                                              operation=operation, old_object=old))
    return found


@pytest.mark.parametrize("folder", VALIDATING_DIRS, ids=lambda d: str(d.relative_to(examples.EXAMPLES)))
def test_every_example_set_over_every_example_manifest(folder: Any) -> None:
    policy_set = examples.load_documents(examples.documents_of(*sorted(folder.glob("*.yaml"))))
    reference = whole(policy_set)
    assert policy_set.reads != reads.EVERYTHING
    for path in sorted(examples.MANIFESTS.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            for ctx in contexts_for(obj):
                assert validating.evaluate(policy_set, obj, ctx) == validating.evaluate(reference, obj, ctx), path


MUTATING_DIRS = [d for d in examples.EXAMPLE_DIRS if "mutating" in d.parts]


def _mutating(folder: Any) -> mutating.PolicySet:
    problems: list[str] = []
    documents = examples.documents_of(*sorted(folder.glob("*.yaml")))
    found = loading.load([files.Document(f"test (document {i + 1})", d) for i, d in enumerate(documents)],
                         problems).mutating
    assert problems == []
    return found


MUTATING_SETS = {folder: _mutating(folder) for folder in MUTATING_DIRS}


@pytest.mark.parametrize("folder", MUTATING_DIRS, ids=lambda d: str(d.relative_to(examples.EXAMPLES)))
def test_every_mutating_example_over_every_example_manifest(folder: Any) -> None:
    policy_set = MUTATING_SETS[folder]
    assert policy_set.reads != reads.EVERYTHING
    reference = dataclasses.replace(policy_set, projected=False)
    for path in sorted(examples.MANIFESTS.glob("*.yaml")):
        for obj in yaml.safe_load_all(path.read_text()):
            for ctx in contexts_for(obj):
                assert mutating.apply(policy_set, obj, ctx) == mutating.apply(reference, obj, ctx), path


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(test_plan.POD)
def test_mutating_examples_over_generated_pods(pod: dict[str, Any]) -> None:
    for folder, policy_set in MUTATING_SETS.items():
        reference = dataclasses.replace(policy_set, projected=False)
        for ctx in contexts_for(dict(pod, kind="Pod")):
            assert mutating.apply(policy_set, pod, ctx) == mutating.apply(reference, pod, ctx), folder


# --- the request variable ----------------------------------------------------------------------------

REQUEST_CONTEXTS = [
    examples.pod_context({}),
    examples.pod_context({}, operation="UPDATE", dry_run=True, name="web-1", namespace="team-a"),
    examples.pod_context({}, resource="deployments", sub_resource="scale", group="apps", namespace=""),
]


@pytest.mark.parametrize("tree", [
    {"operation": None},  # the Pod Security set's
    {"operation": None, "name": None, "namespace": None, "subResource": None, "dryRun": None},
    {},  # read by no expression
    None,  # read whole
    {"userInfo": {"username": None}, "operation": None},  # a field that is not a plain value
    {"operation": {}},  # read only whether it is there
    {"kind": {"kind": None}},
])
@pytest.mark.parametrize("ctx", REQUEST_CONTEXTS, ids=["create", "update-dry-run", "scale"])
def test_the_request_variable_is_the_projected_whole(tree: reads.Tree, ctx: Any) -> None:
    """``request`` built straight from the review's fields (when only those are read) is exactly the
    whole variable projected: keys, values and types."""
    projector = reads.projector(reads._settled(tree))
    built = validating._request_builder(reads._settled(tree), projector)(ctx)
    expected = projector(validating.request_variable(ctx))
    assert built == expected
    assert [type(value) for value in built.values()] == [type(value) for value in expected.values()]
    assert list(built) == list(expected)


def test_the_pod_security_set_builds_only_the_operation() -> None:
    ctx = examples.pod_context({}, operation="DELETE")
    assert examples.PSS.request_of(ctx) == {"operation": "DELETE"}
    assert PSS_WHOLE.request_of(ctx) == validating.request_variable(ctx)
