"""Downward API env and volume: exact patches, user variables kept, which containers get them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest

from tests import mutate_support as ms
from webhook import errors
from webhook.mutators import downward_api

APP = {"name": "app", "image": "nginx:1.27"}


def params(**body: Any) -> downward_api.DownwardAPISettings:
    return downward_api.DownwardAPISettings.model_validate(body)


def field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}}


def resource(name: str, container: str, res: str, **extra: str) -> dict[str, Any]:
    return {
        "name": name,
        "valueFrom": {"resourceFieldRef": {"containerName": container, "resource": res, **extra}},
    }


def default_env(container: str) -> list[dict[str, Any]]:
    return [
        field("POD_NAME", "metadata.name"),
        field("POD_NAMESPACE", "metadata.namespace"),
        field("POD_UID", "metadata.uid"),
        field("POD_IP", "status.podIP"),
        field("HOST_IP", "status.hostIP"),
        field("NODE_NAME", "spec.nodeName"),
        field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        resource("CPU_REQUEST", container, "requests.cpu"),
        resource("CPU_LIMIT", container, "limits.cpu"),
        resource("MEMORY_REQUEST", container, "requests.memory"),
        resource("MEMORY_LIMIT", container, "limits.memory"),
    ]


def test_a_container_without_env_gets_the_whole_default_set() -> None:
    ops, _ = ms.run_one(downward_api.inject_env, ms.pod({"containers": [APP]}), params())
    assert ops == [{"op": "add", "path": "/spec/containers/0/env", "value": default_env("app")}]


def test_variables_go_before_the_users_own_and_never_replace_them() -> None:
    mine = [{"name": "GREETING", "value": "hi $(POD_NAME)"}, {"name": "POD_IP", "value": "mine"}]
    obj = ms.deployment({"containers": [{**APP, "env": mine, "envFrom": [{"configMapRef": {"name": "c"}}]}]})
    body = params(fieldEnv={"POD_NAME": "metadata.name", "POD_IP": "status.podIP"}, resourceEnv={})
    ops, mutated = ms.run_one(downward_api.inject_env, obj, body)
    assert ops == [
        {
            "op": "add",
            "path": "/spec/template/spec/containers/0/env/0",
            "value": field("POD_NAME", "metadata.name"),
        }
    ]
    assert mutated["spec"]["template"]["spec"]["containers"][0]["envFrom"] == [
        {"configMapRef": {"name": "c"}}
    ]


def test_duplicate_user_names_make_the_variables_append_so_the_patch_stays_adds() -> None:
    mine = [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]
    obj = ms.pod({"containers": [{**APP, "env": mine}]})
    ops, _ = ms.run_one(
        downward_api.inject_env, obj, params(fieldEnv={"POD_NAME": "metadata.name"}, resourceEnv={})
    )
    assert ops == [
        {"op": "add", "path": "/spec/containers/0/env/-", "value": field("POD_NAME", "metadata.name")}
    ]


def test_position_last_appends() -> None:
    obj = ms.pod({"containers": [{**APP, "env": [{"name": "A", "value": "1"}]}]})
    body = params(fieldEnv={"POD_NAME": "metadata.name"}, resourceEnv={}, position="last")
    ops, _ = ms.run_one(downward_api.inject_env, obj, body)
    assert ops == [
        {"op": "add", "path": "/spec/containers/0/env/-", "value": field("POD_NAME", "metadata.name")}
    ]


SPEC = {
    "initContainers": [
        {"name": "setup", "image": "busybox:1"},
        {"name": "shipper", "image": "fb:1", "restartPolicy": "Always"},
    ],
    "containers": [APP, {"name": "cfg", "image": "x:1", "envFrom": [{"secretRef": {"name": "s"}}]}],
    "ephemeralContainers": [{"name": "debug", "image": "busybox:1"}],
}


@pytest.mark.parametrize(
    ("switches", "paths"),
    [
        ({}, ["initContainers/0", "initContainers/1", "containers/0", "containers/1"]),
        ({"initContainers": False}, ["initContainers/1", "containers/0", "containers/1"]),
        ({"nativeSidecars": False, "containers": False}, ["initContainers/0"]),
        ({"skipContainersWithEnvFrom": True}, ["initContainers/0", "initContainers/1", "containers/0"]),
    ],
)
def test_switches_choose_the_containers_and_ephemeral_ones_are_never_touched(
    switches: dict[str, bool], paths: list[str]
) -> None:
    body = params(fieldEnv={"POD_NAME": "metadata.name"}, resourceEnv={}, **switches)
    ops, _ = ms.run_one(downward_api.inject_env, ms.pod(SPEC), body)
    assert [op["path"] for op in ops] == [f"/spec/{p}/env" for p in paths]


def test_custom_variables_with_label_paths_and_divisors() -> None:
    body = params(
        fieldEnv={"APP": "metadata.labels['app']"},
        resourceEnv={"CPU_MILLIS": {"resource": "limits.cpu", "divisor": "1m"}},
    )
    ops, _ = ms.run_one(downward_api.inject_env, ms.pod({"containers": [APP]}), body)
    assert ops[0]["value"] == [
        field("APP", "metadata.labels['app']"),
        resource("CPU_MILLIS", "app", "limits.cpu", divisor="1m"),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"fieldEnv": {"X": "spec.containers"}}, "'spec.containers' is not a field the Downward API exposes"),
        (
            {"resourceEnv": {"X": {"resource": "limits.cpu", "divisor": "1Mi"}}},
            "divisor '1Mi' for limits.cpu",
        ),
        ({"resourceEnv": {"X": {"resource": "cpu"}}}, "'cpu' is not requests.<name> or limits.<name>"),
        ({"fieldEnv": {"1=X": "metadata.name"}, "resourceEnv": {}}, "'1=X' is not a valid env var name"),
        (
            {"fieldEnv": {"X": "metadata.name"}, "resourceEnv": {"X": {"resource": "limits.cpu"}}},
            "env var\\(s\\) X defined in both fieldEnv and resourceEnv",
        ),
    ],
)
def test_bad_downward_api_settings_fail_at_load_time(body: dict[str, Any], message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        params(**body)


# -- volume -----------------------------------------------------------------------------------------

VOLUME = {
    "name": "podinfo",
    "downwardAPI": {
        "items": [
            {"path": "labels", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.annotations"}},
        ]
    },
}
MOUNT = {"name": "podinfo", "mountPath": "/etc/podinfo", "readOnly": True}


def test_the_volume_is_added_and_mounted_read_only() -> None:
    obj = ms.pod(
        {
            "containers": [
                APP,
                {"name": "b", "image": "x:1", "volumeMounts": [{"name": "d", "mountPath": "/d"}]},
            ],
            "volumes": [{"name": "d", "emptyDir": {}}],
        }
    )
    ops, _ = ms.run_one(downward_api.inject_volume, obj, params(volume={}))
    assert ops == [
        {"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [MOUNT]},
        {"op": "add", "path": "/spec/containers/1/volumeMounts/-", "value": MOUNT},
        {"op": "add", "path": "/spec/volumes/-", "value": VOLUME},
    ]


def test_an_existing_downward_api_volume_defaulted_by_the_api_server_is_ours() -> None:
    defaulted = {**VOLUME, "downwardAPI": {**VOLUME["downwardAPI"], "defaultMode": 420}}
    obj = ms.pod({"containers": [APP], "volumes": [defaulted]})
    ops, _ = ms.run_one(downward_api.inject_volume, obj, params(volume={}))
    assert ops == [{"op": "add", "path": "/spec/containers/0/volumeMounts", "value": [MOUNT]}]


def test_no_volume_setting_means_no_volume() -> None:
    assert ms.run_one(downward_api.inject_volume, ms.pod({"containers": [APP]}), params())[0] == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"containers": [APP], "volumes": [{"name": "podinfo", "emptyDir": {}}]},
            'the pod already has a volume named "podinfo" that is not a downwardAPI volume; rename it, '
            "or change downwardAPI.volume.name in the policy",
        ),
        (
            {
                "containers": [{**APP, "volumeMounts": [{"name": "cfg", "mountPath": "/etc/podinfo"}]}],
                "volumes": [{"name": "cfg", "configMap": {"name": "c"}}],
            },
            'container "app" already mounts volume "cfg" at /etc/podinfo; move it, '
            "or change downwardAPI.volume.mountPath in the policy",
        ),
    ],
)
def test_volume_clashes_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(errors.MutationRejected) as caught:
        ms.run_one(downward_api.inject_volume, ms.pod(spec), params(volume={}))
    assert str(caught.value) == message


def test_injected_sidecars_get_the_env_because_the_groups_run_in_order(tmp_path: Path) -> None:
    ps = ms.policy_set(
        tmp_path,
        (
            "sidecars:\n  sidecars:\n    shipper:\n      container: {image: fb:1}\n"
            "downwardAPI:\n  fieldEnv: {POD_NAME: metadata.name}\n  resourceEnv: {}\n"
        ),
    )
    obj = ms.pod({"containers": [APP]}, annotations={"sidecar.admission.dev/inject": "true"})
    outcome = ms.mutate(ps, obj, ms.context("Pod"))
    shipper = ms.apply(obj, outcome.patch)["spec"]["initContainers"][0]
    assert shipper == {
        "name": "shipper",
        "image": "fb:1",
        "restartPolicy": "Always",
        "env": [field("POD_NAME", "metadata.name")],
    }
