"""``review`` as CI runs it: replay fidelity, exit codes, summary output, inputs the API server
would refuse, UPDATE with a real old object, and a reader that goes away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import conftest
from webhook import cli, review

REPO = conftest.REPO
POLICIES = str(REPO / "policies")
# The settings of the shipped files these CLI tests rely on, pinned so that editing policies/ (which
# policies/tests/ checks) does not move them.
POD_SECURITY = ["--set", "podSecurity.mode=enforce", "--set", "podSecurity.level=baseline",
                "--set", "podSecurity.version=latest", "--set", "podSecurity.warn={level: restricted}",
                "--set", "podSecurity.audit={level: restricted}",
                "--set", "podSecurity.scope.excludeNamespaces=[kube-system, kube-node-lease, admission-webhook]"]
PINNED = [*POD_SECURITY, "--set", "securityContext.mode=warn", "--set", "sidecars.mode=enforce",
          "--set", "sidecars.injectByDefault=false", "--set", "rbac.policies[rbac.wildcards].mode=enforce"]
PRIVILEGED = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root", "namespace": "shop"},
              "spec": {"containers": [{"name": "app", "image": "nginx:1.27", "securityContext": {"privileged": True}}]}}


def recording(path: str, obj: dict[str, Any], answer: dict[str, Any], uid: str = "u1") -> dict[str, Any]:
    return {"apiVersion": "admission.dev/v1alpha1", "kind": "RecordedReview", "path": path,
            "request": conftest.admission_review(obj, uid=uid, namespace="shop"), "response": answer}


def review_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["review", "--policies", POLICIES, *PINNED, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_recording_is_replayed_on_the_endpoint_that_answered_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The sidecars webhook allowed the privileged Pod without a patch: replaying it through the
    # whole validating chain would wrongly report a denial.
    path = tmp_path / "sidecars.json"
    path.write_text(json.dumps(recording("/mutate/sidecars", PRIVILEGED, review.allowed("u1"))))
    code, out, err = review_cli(capsys, str(path))
    assert (code, err) == (0, "")
    assert "verdict:  allowed" in out and "replay:   same as the recorded answer" in out
    assert out.endswith("1 reviewed: 1 allowed, 0 denied, 0 with warnings, 0 changed from their recording\n")


def test_a_changed_answer_is_shown_and_can_fail_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "ps.json"
    path.write_text(json.dumps(recording("/validate/pod-security", PRIVILEGED, review.allowed("u1"))))
    code, out, _ = review_cli(capsys, str(path))
    assert code == 1  # denied now
    assert "  replay:   CHANGED from the recorded answer\n    - verdict: recorded \"allowed\", now \"denied\"" in out
    assert out.endswith("1 reviewed: 0 allowed, 1 denied, 0 with warnings, 1 changed from their recording\n")
    # Recorded as denied with another message: still denied, so only --fail-on-change fails it.
    denied = review.denied("u1", "an older message")
    path.write_text(json.dumps(recording("/validate/pod-security", PRIVILEGED, denied)))
    code, out, _ = review_cli(capsys, "--summary", str(path))
    assert code == 1
    assert out == (f"{path}: CREATE Pod shop/root: denied (403), CHANGED\n"
                   "1 reviewed: 0 allowed, 1 denied, 0 with warnings, 1 changed from their recording\n")


def test_fail_on_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}}}}
    path = tmp_path / "web.yaml"
    path.write_text(yaml.safe_dump(deployment))
    code, out, _ = review_cli(capsys, "--summary", str(path))
    assert code == 0 and ", 1 with warnings" in out  # e.g. security-context: no readOnlyRootFilesystem
    code, _, _ = review_cli(capsys, "--summary", "--fail-on-warnings", str(path))
    assert code == 1


def test_directories_recursively_and_extensions_in_any_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "POD.YAML").write_text(yaml.safe_dump(PRIVILEGED))
    (tmp_path / "a" / ".hidden").mkdir()
    (tmp_path / "a" / ".hidden" / "x.yaml").write_text("not: [valid")
    code, _, err = review_cli(capsys, str(tmp_path / "a"))
    assert code == 2 and "directory holds no .json, .yaml or .yml file" in err
    code, out, err = review_cli(capsys, "-R", "--summary", str(tmp_path / "a"))
    assert (code, err) == (1, "")
    assert out.splitlines()[0] == f"{tmp_path / 'a' / 'b' / 'POD.YAML'}: CREATE Pod shop/root: denied (403)"


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        ({"apiVersion": "apps/v1", "kind": "Deployment2", "metadata": {"name": "x"}},
         'no matches for kind "Deployment2" in version "apps/v1"'),
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": "oops"}},
         "spec.containers: Invalid value: must be a list of containers, got str"),
        ({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"containers": [{"image": "a"}]}},
         "spec.containers[0].name: Required value"),
        ({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": 1}},
         "the pod template's spec: Required value: a Deployment needs a pod spec with containers"),
    ],
)
def test_inputs_the_api_server_would_refuse_are_input_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], manifest: dict[str, Any], problem: str
) -> None:
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text(yaml.safe_dump(manifest))
    good.write_text(yaml.safe_dump(PRIVILEGED))
    code, out, err = review_cli(capsys, "--summary", str(bad), str(good))
    assert code == 2
    assert err == f"error: {bad}: {problem}\n"
    assert out.endswith("1 reviewed: 0 allowed, 1 denied, 0 with warnings, 1 unusable input(s)\n")  # the rest still runs


def test_update_with_a_real_old_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "ops"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    new, old = tmp_path / "new.yaml", tmp_path / "old.yaml"
    new.write_text(yaml.safe_dump({**role, "metadata": {"name": "ops", "labels": {"team": "a"}}}))
    old.write_text(yaml.safe_dump(role))
    # Without --old-object the manifest is compared with itself; with it, the existing wildcard
    # role is only relabelled, which the rbac group lets through (it judges what an UPDATE changes).
    code, _, _ = review_cli(capsys, "--summary", "--operation", "UPDATE", "--old-object", str(old), str(new))
    assert code == 0
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text(yaml.safe_dump({**role, "rules": []}))
    code, out, _ = review_cli(capsys, "--summary", "--operation", "UPDATE", "--old-object", str(fresh), str(new))
    assert code == 1 and "denied (403)" in out
    assert cli.main(["review", "--policies", POLICIES, "--old-object", str(old), str(new)]) == 2
    assert capsys.readouterr().err == (
        f"error: --old-object {old}: only meaningful with --operation UPDATE or DELETE\n")


def test_a_reader_that_goes_away_ends_the_run_quietly_with_the_verdicts_exit_code(tmp_path: Path) -> None:
    paths = []
    for index in range(200):
        path = tmp_path / f"p{index:03d}.yaml"
        path.write_text(yaml.safe_dump({**PRIVILEGED, "metadata": {"name": f"p{index}", "namespace": "shop"}}))
        paths.append(str(path))
    command = [sys.executable, "-m", "webhook", "review", "--policies", POLICIES, *PINNED, *paths]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.readline()
    process.stdout.close()  # as `| head -1` does
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) == 1  # denied, not a crash
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr


def test_the_default_policies_come_with_the_package_from_any_directory(tmp_path: Path) -> None:
    pod = tmp_path / "pod.yaml"
    pod.write_text(yaml.safe_dump(PRIVILEGED))
    result = subprocess.run([sys.executable, "-m", "webhook", "review", "--summary", str(pod)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    # Found and loaded: no error, a verdict (which one is pinned by policies/tests/).
    assert (result.returncode in (0, 1), result.stderr) == (True, "")
    assert result.stdout.startswith(f"{pod}: CREATE Pod shop/root: ")


def test_a_namespace_among_the_inputs_gives_its_labels_and_namespace_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("""
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: owner-annotation}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods]}
  validations:
  - expression: "namespaceObject.metadata.annotations['example.com/owner'] == 'shop-team'"
    messageExpression: "'namespace ' + namespaceObject.metadata.name + ' has no owner'"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: owner-annotation}
spec: {policyName: owner-annotation, validationActions: [Deny]}
""")
    pod = yaml.safe_dump({**PRIVILEGED, "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}})
    owned = {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": "shop", "annotations": {"example.com/owner": "shop-team"}}}
    inputs = tmp_path / "in.yaml"
    inputs.write_text(yaml.safe_dump(owned) + "---\n" + pod)
    code, out, _ = review_cli_with(capsys, policy, "--summary", str(inputs))
    assert code == 0, out
    # Without the Namespace document, namespaceObject holds only the name: the policy denies.
    alone = tmp_path / "pod.yaml"
    alone.write_text(pod)
    code, out, _ = review_cli_with(capsys, policy, str(alone))
    assert code == 1 and "resulted in error: no such key: annotations" in out


def review_cli_with(capsys: pytest.CaptureFixture[str], policies: Path, *args: str) -> tuple[int, str, str]:
    code = cli.main(["review", "--policies", str(policies), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_workload_whose_pods_would_be_denied_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
                  "spec": {"selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"hostNetwork": True,
                                                 "containers": [{"name": "app", "image": "nginx:1.27"}]}}}}
    path = tmp_path / "web.yaml"
    path.write_text(yaml.safe_dump(deployment))
    pod_security = str(REPO / "policies" / "10-pod-security.yaml")
    code = cli.main(["review", "--policies", pod_security, *POD_SECURITY, str(path)])
    out = capsys.readouterr().out
    assert code == 0  # the Deployment itself is admitted with Pod Security's warning, as upstream
    assert ('  pods:     Pods created from it will be denied: violates PodSecurity "baseline:latest": '
            "host namespaces (hostNetwork=true)\n") in out
    assert cli.main(["review", "--policies", pod_security, *POD_SECURITY, "-o", "json", str(path)]) == 0
    entry = json.loads(capsys.readouterr().out)[0]
    assert entry["podsDenied"] == 'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)'


def test_explain_says_why_each_policy_ran_or_not(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pod = tmp_path / "pod.yaml"
    pod.write_text(yaml.safe_dump({**PRIVILEGED, "metadata": {"name": "root", "namespace": "kube-system"}}))
    code, out, _ = review_cli(capsys, "--explain", str(pod))
    assert code == 0  # allowed: but why?
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("    ") and len(line.split()) > 2}
    assert lines["pod-security.privileged"].split(None, 3)[2:] == [
        "[enforce+warn+audit]", "out of scope: namespace 'kube-system' is in scope.excludeNamespaces"]
    assert lines["rbac.wildcards"].endswith("not for kind Pod")
    pod.write_text(yaml.safe_dump(PRIVILEGED))
    code, out, _ = review_cli(capsys, "--explain", str(pod))
    assert code == 1
    assert "    ran     pod-security.privileged" in out and "found: privileged" in out


def test_manifests_output_is_the_mutated_objects_for_kubectl_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sidecar = REPO / "policies" / "examples" / "pod-with-sidecar.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(PRIVILEGED))
    code, out, err = review_cli(capsys, "-o", "manifests", str(sidecar), str(bad))
    assert code == 1
    (pod,) = [d for d in yaml.safe_load_all(out) if d]
    names = [c["name"] for c in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]]
    assert "log-shipper" in names  # the injected sidecar is in the printed object
    assert pod["metadata"]["annotations"]["sidecar.admission.dev/injected"] == "log-shipper"
    assert err.startswith(f"denied: {bad}: ")


@pytest.mark.parametrize(("flag", "env", "colored"), [
    ("always", {}, True), ("never", {}, False), ("auto", {}, False), ("always", {"NO_COLOR": "1"}, True)])
def test_colour_only_when_asked_or_on_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, flag: str,
    env: dict[str, str], colored: bool,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    pod = tmp_path / "pod.yaml"
    pod.write_text(yaml.safe_dump(PRIVILEGED))
    _, out, _ = review_cli(capsys, "--summary", "--color", flag, str(pod))
    assert ("\033[31m" in out) is colored  # captured output is not a terminal: auto means no colour


def test_at_a_terminal_review_says_once_which_groups_it_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pod = tmp_path / "pod.yaml"
    pod.write_text(yaml.safe_dump(PRIVILEGED))
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    cli.main(["review", "--policies", str(REPO / "policies" / "10-pod-security.yaml"), "--policies",
              str(REPO / "policies" / "examples" / "cel" / "replica-limit"), "--summary", str(pod)])
    assert capsys.readouterr().err == (
        "policies: pod-security (enforce); off: defaults, downward-api, sidecars, rbac, security-context, "
        "storage; 1 admission policy\n")
