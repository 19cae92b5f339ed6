"""A plain manifest is judged as the API server passes it to admission: defaulted, procMount reset."""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

import pytest

from webhook import apiserver_prep, catalog, cli, config, engine, offline, review, shapes

POD: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                       "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}


def pod(**spec: Any) -> dict[str, Any]:
    obj = copy.deepcopy(POD)
    obj["spec"].update(spec)
    return obj


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "app", "image": "nginx:1.27", **fields}


def prepared_container(obj: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    found: dict[str, Any] = apiserver_prep.prepare(obj, source="t", **kwargs)["spec"]["containers"][0]
    return found


@pytest.fixture(scope="module")
def shipped() -> engine.PolicySet:
    return catalog.load([config.DEFAULT_POLICIES])


# --- defaulting, one row per field ---------------------------------------------------------------


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("registry:5000/team/app", "Always"),
    ("nginx:1.27", "IfNotPresent"),
    ("registry:5000/team/app:v2", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
    ("nginx:latest@sha256:" + "a" * 64, "Always"),
])
def test_image_pull_policy_is_always_for_latest_or_untagged_images_else_if_not_present(image: str, policy: str) -> None:
    assert prepared_container(pod(containers=[container(image=image)]))["imagePullPolicy"] == policy


@pytest.mark.parametrize(("given", "field", "expected"), [
    ({}, "terminationMessagePath", "/dev/termination-log"),
    ({}, "terminationMessagePolicy", "File"),
    ({"ports": [{"containerPort": 80}]}, "ports", [{"containerPort": 80, "protocol": "TCP"}]),
    ({"ports": [{"containerPort": 53, "protocol": "UDP"}]}, "ports", [{"containerPort": 53, "protocol": "UDP"}]),
    ({"resources": {"limits": {"cpu": "1"}}}, "resources", {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}),
    ({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m"}}}, "resources",
     {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "100m", "memory": "1Gi"}}),
    ({"livenessProbe": {"httpGet": {"port": 80}}}, "livenessProbe",
     {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10,
      "successThreshold": 1, "failureThreshold": 3}),
    ({"imagePullPolicy": "Never"}, "imagePullPolicy", "Never"),
    ({"terminationMessagePolicy": "FallbackToLogsOnError"}, "terminationMessagePolicy", "FallbackToLogsOnError"),
])
def test_a_container_field_left_unset_gets_the_api_server_default(given: dict[str, Any], field: str,
                                                                  expected: Any) -> None:
    assert prepared_container(pod(containers=[container(**given)]))[field] == expected


@pytest.mark.parametrize(("given", "field", "expected"), [
    ({}, "restartPolicy", "Always"),
    ({"restartPolicy": "Never"}, "restartPolicy", "Never"),
    ({}, "dnsPolicy", "ClusterFirst"),
    ({}, "schedulerName", "default-scheduler"),
    ({}, "securityContext", {}),
    ({"securityContext": {"runAsUser": 1000}}, "securityContext", {"runAsUser": 1000}),
    ({}, "terminationGracePeriodSeconds", 30),
    ({"terminationGracePeriodSeconds": 5}, "terminationGracePeriodSeconds", 5),
    ({}, "enableServiceLinks", True),
    ({"enableServiceLinks": False}, "enableServiceLinks", False),
])
def test_a_pod_spec_field_left_unset_gets_the_api_server_default(given: dict[str, Any], field: str,
                                                                 expected: Any) -> None:
    assert apiserver_prep.prepare(pod(**given), source="t")["spec"][field] == expected


def test_with_the_host_network_a_container_port_is_a_host_port() -> None:
    obj = pod(hostNetwork=True, containers=[container(ports=[{"containerPort": 8080}])])
    assert prepared_container(obj)["ports"] == [{"containerPort": 8080, "protocol": "TCP", "hostPort": 8080}]


def test_templates_get_the_pod_spec_defaults_but_not_the_pod_only_ones() -> None:
    limits = {"resources": {"limits": {"cpu": "1"}}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                  "spec": {"template": {"spec": {"containers": [container(image="nginx", **limits)]}}}}
    spec = apiserver_prep.prepare(deployment, source="t")["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Always" and spec["dnsPolicy"] == "ClusterFirst"
    assert spec["containers"][0]["imagePullPolicy"] == "Always"
    assert "enableServiceLinks" not in spec  # SetDefaults_Pod: Pods only
    assert spec["containers"][0]["resources"] == {"limits": {"cpu": "1"}}


def test_a_job_template_keeps_its_restart_policy_as_written() -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
           "spec": {"template": {"spec": {"containers": [container()]}}}}
    spec = apiserver_prep.prepare(job, source="t")["spec"]["template"]["spec"]
    assert "restartPolicy" not in spec and spec["schedulerName"] == "default-scheduler"


@pytest.mark.parametrize("manifest", [
    {"apiVersion": "example.com/v1", "kind": "Deployment", "metadata": {"name": "custom"},
     "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx"}]}}}},
    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}},
])
def test_other_kinds_and_custom_resources_are_taken_as_written(manifest: dict[str, Any]) -> None:
    assert apiserver_prep.prepare(manifest, source="t") == manifest


def test_the_manifest_itself_is_not_changed_and_delete_is_not_prepared() -> None:
    obj = pod()
    apiserver_prep.prepare(obj, source="t")
    assert obj == POD
    assert apiserver_prep.prepare(obj, source="t", operation="DELETE") is obj


# --- procMount ----------------------------------------------------------------------------------

UNMASKED = pod(containers=[container(securityContext={"procMount": "Unmasked"})])


def test_before_1_33_a_set_proc_mount_is_reset_to_default() -> None:
    assert prepared_container(UNMASKED, kubernetes_version=32)["securityContext"] == {"procMount": "Default"}


def test_before_1_33_an_update_keeps_the_proc_mount_the_stored_object_already_uses() -> None:
    kept = prepared_container(UNMASKED, kubernetes_version=32, operation="UPDATE")
    assert kept["securityContext"] == {"procMount": "Unmasked"}
    reset = prepared_container(UNMASKED, kubernetes_version=32, operation="UPDATE", old=POD)
    assert reset["securityContext"] == {"procMount": "Default"}


def test_from_1_33_unmasked_without_host_users_false_is_refused_by_validation() -> None:
    with pytest.raises(shapes.Refused, match=r'spec\.containers\[0\]\.securityContext\.procMount: Invalid value: '
                                             r'"Unmasked": `hostUsers` must be false to use `Unmasked`'):
        apiserver_prep.prepare(UNMASKED, source="t", kubernetes_version=35)


def test_from_1_33_unmasked_with_host_users_false_is_kept() -> None:
    obj = copy.deepcopy(UNMASKED)
    obj["spec"]["hostUsers"] = False
    assert prepared_container(obj, kubernetes_version=33)["securityContext"] == {"procMount": "Unmasked"}


def test_the_issue_example_is_allowed_at_1_32_and_refused_at_1_35(tmp_path: Path, shipped: engine.PolicySet) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: pm}\nspec:\n  containers:\n"
                    "    - {name: app, image: nginx:1.27, securityContext: {procMount: Unmasked}}\n")
    as_written = offline.run([str(path)], policy_set=shipped, stdout=io.StringIO(), stderr=io.StringIO(),
                             shape=offline.Shape(kubernetes_version=32), only="validate")
    assert as_written == 0
    err = io.StringIO()
    assert offline.run([str(path)], policy_set=shipped, stdout=io.StringIO(), stderr=err) == 2
    assert "securityContext.procMount: Invalid value" in err.getvalue()


# --- where it applies ---------------------------------------------------------------------------


def test_a_manifest_reaches_the_chains_defaulted() -> None:
    (item,) = offline.classify(pod(), source="p.yaml")
    obj = item.document["request"]["object"]
    assert obj["spec"]["dnsPolicy"] == "ClusterFirst"
    assert obj["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_an_expected_result_read_as_written_is_not_prepared() -> None:
    (item,) = offline.classify(pod(), source="expected.yaml", shape=offline.Shape(as_written=True))
    assert item.document["request"]["object"]["spec"] == POD["spec"]


def test_a_recorded_admission_review_is_not_touched() -> None:
    recorded = {"apiVersion": review.V1, "kind": "AdmissionReview",
                "request": {"uid": "u", "operation": "CREATE", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                            "object": copy.deepcopy(UNMASKED)}}
    (item,) = offline.classify(copy.deepcopy(recorded), source="r.json")
    assert item.document == recorded


def test_the_mutating_chain_no_longer_adds_what_the_api_server_set(shipped: engine.PolicySet) -> None:
    untagged = pod(containers=[container(image="nginx")])
    (item,) = offline.classify(untagged, source="p.yaml")
    result = offline.evaluate(item, shipped, only="mutate")
    paths = [op["path"] for op in result.outcome.patch or []]
    assert not any(p.endswith("/imagePullPolicy") for p in paths)
    assert result.mutated is not None and result.mutated["spec"]["containers"][0]["imagePullPolicy"] == "Always"


@pytest.mark.parametrize(("version", "code"), [("1.32", 0), ("1.35", 2)])
def test_review_takes_the_kubernetes_version_as_1_n(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    version: str, code: int) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: pm}\nspec:\n  hostNetwork: false\n  containers:\n"
                    "    - {name: app, image: nginx:1.27, securityContext: {procMount: Unmasked}}\n")
    assert cli.main(["review", "--only", "validate", "--summary", "--kubernetes-version", version, str(path)]) == code
    capsys.readouterr()


def test_review_refuses_a_kubernetes_version_it_cannot_read(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["review", "--kubernetes-version", "35x", "-"])
    assert "expected a Kubernetes version such as 1.35" in capsys.readouterr().err
