"""Sidecar injection: opt-in rules, exact patches, never twice, clashes refused before any change."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pydantic
import pytest

from tests import mutate_support as ms
from webhook import errors
from webhook.mutators import sidecar_template, sidecars

APP = {"name": "app", "image": "nginx:1.27"}
INJECT = {"sidecar.admission.dev/inject": "true"}

SHIPPER = {
    "container": {
        "image": "fluent-bit:3",
        "args": ["tag=${pod.namespace}/${pod.labels['app']}"],
        "volumeMounts": [{"name": "app-logs", "mountPath": "/var/log/app"}],
    },
    "volumes": [{"name": "app-logs", "emptyDir": {}}],
    "volumeMounts": [{"name": "app-logs", "mountPath": "/var/log/app"}],
}
PROXY = {
    "mode": "classic",
    "container": {
        "image": "envoy:1",
        "env": [{"name": "OWNER", "value": "${pod.annotations['team/owner']}"}],
    },
    "initContainers": [{"name": "proxy-init", "image": "envoy-init:1"}],
}
SETTINGS: dict[str, Any] = {
    "sidecars": {"log-shipper": SHIPPER, "proxy": PROXY},
    "defaultSidecars": ["log-shipper"],
}


def params(**extra: Any) -> sidecars.SidecarsSettings:
    return sidecars.SidecarsSettings.model_validate({**SETTINGS, **extra})


SHIPPER_CONTAINER = {
    "name": "log-shipper",
    "image": "fluent-bit:3",
    "args": ["tag=default/web"],
    "volumeMounts": [{"name": "app-logs", "mountPath": "/var/log/app"}],
    "restartPolicy": "Always",
}


# -- the opt-in decision ----------------------------------------------------------------------------


def test_a_pod_that_does_not_opt_in_is_left_alone() -> None:
    assert ms.run_one(sidecars.inject, ms.pod({"containers": [APP]}), params())[0] == []


def test_an_opted_in_pod_gets_the_default_sidecar_as_a_native_init_container() -> None:
    obj = ms.pod({"containers": [APP]}, labels={"app": "web"}, annotations=INJECT)
    ops, _ = ms.run_one(sidecars.inject, obj, params())
    assert ops == [
        {
            "op": "add",
            "path": "/metadata/annotations/sidecar.admission.dev~1injected",
            "value": "log-shipper",
        },
        {
            "op": "add",
            "path": "/spec/containers/0/volumeMounts",
            "value": [{"name": "app-logs", "mountPath": "/var/log/app"}],
        },
        {"op": "add", "path": "/spec/initContainers", "value": [SHIPPER_CONTAINER]},
        {"op": "add", "path": "/spec/volumes", "value": [{"name": "app-logs", "emptyDir": {}}]},
    ]


@pytest.mark.parametrize(
    ("annotations", "labels", "namespace_labels", "by_default", "injected"),
    [
        ({}, {}, {"sidecar.admission.dev/inject": "enabled"}, False, True),
        (
            {"sidecar.admission.dev/inject": "false"},
            {},
            {"sidecar.admission.dev/inject": "enabled"},
            False,
            False,
        ),
        ({}, {"sidecar.admission.dev/inject": "true"}, {}, False, True),
        ({"sidecar.admission.dev/inject": "no"}, {"sidecar.admission.dev/inject": "true"}, {}, False, False),
        ({}, {}, None, True, True),
        ({}, {"sidecar.admission.dev/inject": "disabled"}, None, True, False),
        ({}, {}, None, False, False),  # namespace labels unknown: the selector does not match
    ],
)
def test_opt_in_order_is_annotation_label_namespace_default(
    annotations: dict[str, str],
    labels: dict[str, str],
    namespace_labels: dict[str, str] | None,
    by_default: bool,
    injected: bool,
) -> None:
    obj = ms.pod({"containers": [APP]}, labels={"app": "web", **labels}, annotations=annotations)
    body = params(
        injectByDefault=by_default,
        namespaceSelector={"matchLabels": {"sidecar.admission.dev/inject": "enabled"}},
    )
    ctx = ms.context("Pod", namespace_labels=namespace_labels)
    ops, mutated = ms.run_one(sidecars.inject, obj, body, ctx=ctx)
    assert bool(ops) is injected
    assert ("log-shipper" in [c["name"] for c in mutated["spec"].get("initContainers", [])]) is injected


def test_a_misspelled_switch_is_refused_rather_than_ignored() -> None:
    obj = ms.pod({"containers": [APP]}, annotations={"sidecar.admission.dev/inject": "ture"})
    with pytest.raises(errors.MutationRejected) as caught:
        ms.run_one(sidecars.inject, obj, params())
    assert (
        str(caught.value)
        == 'annotation sidecar.admission.dev/inject has value \'ture\'; set it to "true" or "false"'
    )


# -- selection, placement, templates ---------------------------------------------------------------


def test_sidecars_selected_by_annotation_are_placed_by_mode() -> None:
    spec = {"initContainers": [{"name": "migrate", "image": "app:1"}], "containers": [APP]}
    annotations = {**INJECT, "sidecar.admission.dev/sidecars": "proxy, log-shipper", "team/owner": "ops"}
    obj = ms.deployment(spec, template_meta={"labels": {"app": "web"}, "annotations": annotations})
    ops, _ = ms.run_one(sidecars.inject, obj, params())
    proxy = {"name": "proxy", "image": "envoy:1", "env": [{"name": "OWNER", "value": "ops"}]}
    assert ops == [
        {
            "op": "add",
            "path": "/spec/template/metadata/annotations/sidecar.admission.dev~1injected",
            "value": "proxy,log-shipper",
        },
        # Native sidecars go first (they start before the app's init containers); the classic
        # sidecar's own init container goes last, its container after the app's.
        {"op": "add", "path": "/spec/template/spec/initContainers/0", "value": SHIPPER_CONTAINER},
        {
            "op": "add",
            "path": "/spec/template/spec/initContainers/-",
            "value": {"name": "proxy-init", "image": "envoy-init:1"},
        },
        {
            "op": "add",
            "path": "/spec/template/spec/containers/0/volumeMounts",
            "value": [{"name": "app-logs", "mountPath": "/var/log/app"}],
        },
        {"op": "add", "path": "/spec/template/spec/containers/-", "value": proxy},
        {"op": "add", "path": "/spec/template/spec/volumes", "value": [{"name": "app-logs", "emptyDir": {}}]},
    ]


def test_an_unknown_sidecar_name_is_refused_naming_the_defined_ones() -> None:
    obj = ms.pod({"containers": [APP]}, annotations={**INJECT, "sidecar.admission.dev/sidecars": "vault"})
    with pytest.raises(errors.MutationRejected) as caught:
        ms.run_one(sidecars.inject, obj, params())
    assert str(caught.value) == (
        "annotation sidecar.admission.dev/sidecars names unknown sidecar(s) vault; "
        "defined: log-shipper, proxy"
    )


def test_a_cronjob_template_gets_paths_into_the_job_template_and_the_workload_name() -> None:
    body = params(
        sidecars={"stamp": {"mode": "classic", "container": {"image": "x:1", "args": ["${pod.name}"]}}},
        defaultSidecars=None,
    )
    obj = ms.cronjob({"containers": [APP]}, template_meta={"annotations": INJECT})
    ops, _ = ms.run_one(sidecars.inject, obj, body)
    base = "/spec/jobTemplate/spec/template"
    assert ops == [
        {
            "op": "add",
            "path": f"{base}/metadata/annotations/sidecar.admission.dev~1injected",
            "value": "stamp",
        },
        {
            "op": "add",
            "path": f"{base}/spec/containers/-",
            "value": {"name": "stamp", "image": "x:1", "args": ["nightly"]},
        },
    ]


# -- never twice ------------------------------------------------------------------------------------


def test_a_resubmitted_injected_pod_is_a_no_op_and_missing_parts_come_back() -> None:
    obj = ms.pod({"containers": [APP]}, labels={"app": "web"}, annotations=INJECT)
    _, injected = ms.run_one(sidecars.inject, obj, params())
    assert ms.run_one(sidecars.inject, injected, params())[0] == []
    lost_volume = copy.deepcopy(injected)
    del lost_volume["spec"]["volumes"]
    ops, _ = ms.run_one(sidecars.inject, lost_volume, params())
    assert ops == [{"op": "add", "path": "/spec/volumes", "value": [{"name": "app-logs", "emptyDir": {}}]}]


def test_a_second_sidecar_selected_later_is_recorded_beside_the_first() -> None:
    obj = ms.pod({"containers": [APP]}, labels={"app": "web"}, annotations=INJECT)
    _, injected = ms.run_one(sidecars.inject, obj, params())
    injected["metadata"]["annotations"]["sidecar.admission.dev/sidecars"] = "log-shipper,proxy"
    ops, _ = ms.run_one(sidecars.inject, injected, params())
    assert ops[0] == {
        "op": "replace",
        "path": "/metadata/annotations/sidecar.admission.dev~1injected",
        "value": "log-shipper,proxy",
    }
    assert [op["path"] for op in ops[1:]] == ["/spec/containers/-", "/spec/initContainers/-"]


# -- clashes ----------------------------------------------------------------------------------------

HOW = (
    "(not recorded in annotation sidecar.admission.dev/injected); rename the pod's own container, "
    'volume or mount path, or opt the pod out with annotation sidecar.admission.dev/inject: "false"'
)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        (
            {"containers": [APP, {"name": "log-shipper", "image": "mine:1"}]},
            'the pod already has a container named "log-shipper"',
        ),
        (
            {"containers": [APP], "volumes": [{"name": "app-logs", "hostPath": {"path": "/logs"}}]},
            'the pod already has a volume named "app-logs"',
        ),
        (
            {
                "containers": [{**APP, "volumeMounts": [{"name": "data", "mountPath": "/var/log/app"}]}],
                "volumes": [{"name": "data", "emptyDir": {}}],
            },
            'container "app" already mounts volume "data" at /var/log/app',
        ),
    ],
)
def test_a_clash_with_the_users_own_names_is_refused_before_any_change(
    spec: dict[str, Any], problem: str
) -> None:
    obj = ms.pod(spec, annotations=INJECT)
    target_obj = copy.deepcopy(obj)
    with pytest.raises(errors.MutationRejected) as caught:
        sidecars.inject(ms.workloads.pod_target(target_obj, "Pod"), ms.context("Pod"), params())
    assert str(caught.value) == f"cannot inject sidecar(s) log-shipper: {problem} {HOW}"
    assert target_obj == obj


def test_the_engine_turns_a_clash_into_a_denial_and_never_mutates_running_pods(tmp_path: Path) -> None:
    ps = ms.policy_set(tmp_path, "sidecars:\n  sidecars:\n    log-shipper:\n      container: {image: fb:1}\n")
    clash = ms.pod({"containers": [{"name": "log-shipper", "image": "mine:1"}]}, annotations=INJECT)
    outcome = ms.mutate(ps, clash, ms.context("Pod"))
    assert (outcome.allowed, outcome.patch) == (False, [])
    assert outcome.message.startswith(
        "sidecars.inject: cannot inject sidecar(s) log-shipper: the pod already"
    )
    fine = ms.pod({"containers": [APP]}, annotations=INJECT)
    assert ms.mutate(ps, fine, ms.context("Pod", operation="UPDATE")).patch == []
    assert ms.mutate(ps, fine, ms.context("Pod", operation="DELETE")).patch == []
    assert len(ms.mutate(ps, fine, ms.context("Pod")).patch) == 2
    # Pod templates are mutated on UPDATE too (a `kubectl replace` of the original manifest).
    workload = ms.deployment({"containers": [APP]}, template_meta={"annotations": INJECT})
    assert len(ms.mutate(ps, workload, ms.context("Deployment", operation="UPDATE")).patch) == 2


def test_selecting_sidecars_does_not_by_itself_opt_the_pod_in() -> None:
    obj = ms.pod({"containers": [APP]}, annotations={"sidecar.admission.dev/sidecars": "proxy"})
    assert ms.run_one(sidecars.inject, obj, params())[0] == []


# -- settings and templates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"sidecars": {"a": {"container": {"image": "x", "args": ["${pod.spec}"]}}}},
            "unknown template reference '${pod.spec}' at offset 0",
        ),
        (
            {"sidecars": {"a": {"container": {"name": "b", "image": "x"}}}},
            "sidecar 'a': container name 'b' must equal the sidecar's name",
        ),
        (
            {"sidecars": {"a": {"container": {"image": "x"}}}, "defaultSidecars": ["b"]},
            "defaultSidecars names undefined sidecars: b",
        ),
        (
            {
                "sidecars": {
                    "a": {"container": {"image": "x"}, "volumes": [{"name": "v", "emptyDir": {}}]},
                    "b": {"container": {"image": "x"}, "volumes": [{"name": "v", "hostPath": {"path": "/"}}]},
                }
            },
            "volume 'v' is defined differently by sidecars 'a' and 'b'",
        ),
        (
            {
                "sidecars": {
                    "a": {"container": {"image": "x"}, "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}
                }
            },
            "needs a mountPath and the name of one of this sidecar's volumes",
        ),
        ({"sidecars": {"a": {"container": {"args": []}}}}, "container needs an image"),
        (
            {"sidecars": {"a": {"container": {"image": "x"}, "volumes": [{"name": "v-${pod.name}"}]}}},
            "volumes names must be literal",
        ),
    ],
)
def test_bad_sidecar_settings_fail_at_load_time(body: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message.replace("$", r"\$").replace("{", r"\{")):
        sidecars.SidecarsSettings.model_validate(body)


POD_VALUES = sidecar_template.PodValues(
    name="web-1", namespace="shop", labels={"app": "cart"}, annotations={"team/owner": "ops"}
)


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("${pod.name}.${pod.namespace}", "web-1.shop"),
        ("app=${pod.labels['app']}", "app=cart"),
        ('owner=${ pod.annotations["team/owner"] }', "owner=ops"),
        ("missing=${pod.labels['nope']}", "missing="),
        ("cost $5 and $${literal}", "cost $5 and ${literal}"),
        ("no references", "no references"),
    ],
)
def test_template_strings_render_only_the_fixed_references(text: str, rendered: str) -> None:
    assert sidecar_template.render({"k": [text]}, pod=POD_VALUES) == {"k": [rendered]}


@pytest.mark.parametrize(
    "text", ["${pod.spec.containers}", "${__import__('os')}", "${pod.labels[app]}", "${pod.name"]
)
def test_anything_else_is_rejected_when_compiled(text: str) -> None:
    with pytest.raises(ValueError, match="unknown template reference"):
        sidecar_template.validate({"args": [text]})
