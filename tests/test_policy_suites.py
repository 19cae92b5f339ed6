"""``python -m webhook test``: policy test suites, their reports (text, JSON, JUnit) and ``--update``.

The shipped policies' own suite (``policies/tests/``) runs here, so ``make test`` fails when the
policies stop answering what it pins; everything else uses suites and policy files of its own in a
temporary directory, outside the repository.
"""

from __future__ import annotations

import json
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests import conftest
from webhook import cli, suites

POLICY = """\
apiVersion: admission.dev/v1alpha1
kind: PolicyConfig
podSecurity: {mode: enforce, level: baseline, warn: {level: restricted}}
rbac:
  mode: warn
  exemptions: {groups: ["system:masters"]}
  policies: {rbac.wildcards: {mode: enforce}}
defaults:
  mode: enforce
  resources: [{namespaces: ["*"], requests: {cpu: 50m, memory: 64Mi}}]
  imagePullPolicy: {latest: null, other: null}
  securityContext: {runAsNonRoot: null, seccompProfile: null, allowPrivilegeEscalation: null, dropCapabilities: []}
"""
PODS = """\
apiVersion: v1
kind: Pod
metadata: {name: root, namespace: shop}
spec:
  containers: [{name: app, image: "nginx:1.27", securityContext: {privileged: true}}]
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers: [{name: app, image: "nginx:1.27"}]
"""
ROLE = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: everything}
rules: [{apiGroups: ["*"], resources: ["*"], verbs: ["*"]}]
"""
HEADER = """\
apiVersion: admission.dev/v1alpha1
kind: PolicyTest
policies: [policy.yaml]
resources: [resources/*.yaml]
"""
PASSING = HEADER + """\
results:
  - kind: Pod
    name: root
    verdict: denied
    policy: pod-security.privileged
    message: 'violates PodSecurity "baseline:latest": privileged'
  - kind: Pod
    name: web
    verdict: warned
    policy: [defaults.resources, pod-security]
    notPolicy: pod-security.privileged
    warnings: ['/^would violate PodSecurity "restricted:latest": /']
    patch:
      - {op: add, path: /spec/containers/0/resources, value: {requests: {cpu: 50m, memory: 64Mi}}}
  - kind: ClusterRole
    verdict: denied
    policy: rbac
  - kind: ClusterRole
    groups: ["system:masters"]
    verdict: allowed
    notPolicy: rbac.wildcards
    patch: []
"""


def project(tmp_path: Path, suite: str, name: str = "shop-test.yaml") -> Path:
    """A directory with the policy file, the resources and ``suite``; returns the suite's path."""
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "resources").mkdir(exist_ok=True)
    (tmp_path / "resources" / "pods.yaml").write_text(PODS)
    (tmp_path / "resources" / "role.yaml").write_text(ROLE)
    path = tmp_path / name
    path.write_text(suite)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = cli.main(["test", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- the shipped policies' suite ----------------------------------------------------------------------------------


def test_the_shipped_policies_answer_what_policies_tests_pins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `make test` runs this: after changing policies/, refresh the pins with
    # `python -m webhook test --update policies/tests` and read the diff.
    monkeypatch.chdir(conftest.REPO)
    code, out, err = run(capsys, "policies/tests")
    assert (code, err) == (0, ""), out
    assert "FAIL" not in out and ", 0 failed" in out.splitlines()[-1]
    assert "without expectations" not in out  # every resource there has its expectation


def test_the_shipped_suites_cover_every_group_with_an_allowed_a_refused_and_a_mutated_case() -> None:
    folder = conftest.REPO / "policies" / "tests"
    groups = ("pod-security", "security-context", "rbac", "storage", "sidecars", "defaults", "downward-api")
    for group in groups:
        loaded = suites.load(folder / f"{group}-test.yaml")
        results = loaded.suite.results
        assert any(r.verdict == "allowed" for r in results), group
        assert any(r.verdict in ("denied", "warned") for r in results), group
        assert any(r.patch is not None or r.patched_resource is not None for r in results), group


# --- passing, failing, reports ---------------------------------------------------------------------------------------


def test_a_passing_suite_prints_one_line_per_check_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = project(tmp_path, PASSING)
    code, out, err = run(capsys, str(tmp_path))
    assert (code, err) == (0, "")
    assert out == textwrap.dedent(f"""\
        PASS  {suite}:6  Pod shop/root: denied [pod-security.privileged]
        PASS  {suite}:11  Pod shop/web: warned, patched (1 op) [defaults.resources, pod-security, not pod-security.privileged]
        PASS  {suite}:19  ClusterRole everything: denied [rbac]
        PASS  {suite}:22  ClusterRole everything: allowed, not patched [not rbac.wildcards]
        4 checked in 1 suite(s): 4 passed, 0 failed
        """)


FAILING = HEADER + """\
results:
  - kind: Pod
    name: root
    verdict: allowed
  - kind: Pod
    name: web
    verdict: warned
    message: never
    warnings: 0
    policy: rbac.wildcards
    patch: []
"""


def test_failing_expectations_exit_1_with_what_differs_and_a_junit_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = project(tmp_path, FAILING)
    report = tmp_path / "report.xml"
    code, out, err = run(capsys, "--junit", str(report), str(suite))
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert lines[0] == f"FAIL  {suite}:6  Pod shop/root from {tmp_path}/resources/pods.yaml (document 1)"
    assert lines[1] == "        verdict: expected allowed, got denied (403)"
    assert lines[2].startswith('          message: violates PodSecurity "baseline:latest": privileged (container "app"')
    assert lines[3] == f"FAIL  {suite}:9  Pod shop/web from {tmp_path}/resources/pods.yaml (document 2)"
    assert "        message: expected to contain 'never', got:" in lines
    assert "          no message (the request is admitted)" in lines
    assert "        warnings: expected 0, got 1" in lines
    # What did fire: the policies behind the warnings and the patch.
    assert lines[-2] == (
        "        policy: expected rbac.wildcards to fire; fired: pod-security.allowPrivilegeEscalation, "
        "pod-security.capabilities_restricted, pod-security.runAsNonRoot, pod-security.seccompProfile_restricted, "
        "defaults.resources")
    assert "        patch: differs (- expected, + actual):" in lines
    assert "          +- op: add" in lines
    assert lines[-1] == "2 checked in 1 suite(s): 0 passed, 2 failed, 1 resource(s) without expectations"

    root = ET.parse(report).getroot()
    assert (root.tag, root.get("tests"), root.get("failures"), root.get("errors")) == ("testsuites", "2", "2", "0")
    (testsuite,) = root
    assert (testsuite.get("name"), testsuite.get("file"), testsuite.get("tests")) == ("shop", str(suite), "2")
    cases = testsuite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "Pod shop/root: allowed", "Pod shop/web: warned, not patched [rbac.wildcards]"]  # what was expected
    assert [c.get("line") for c in cases] == ["6", "9"]
    failure = cases[0].find("failure")
    assert failure is not None and failure.get("message") == "verdict: expected allowed, got denied (403)"
    assert failure.text is not None and failure.text.startswith(f"{suite}:6: Pod shop/root from ")
    failure = cases[1].find("failure")
    assert failure is not None and failure.text is not None and "patch: differs" in failure.text


def test_a_passing_junit_report_has_no_failures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project(tmp_path, PASSING)
    report = tmp_path / "out" / "report.xml"
    report.parent.mkdir()
    assert run(capsys, "--junit", str(report), str(tmp_path))[0] == 0
    root = ET.parse(report).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "0", "0")
    assert all(case.find("failure") is None for case in root.iter("testcase"))


def test_json_output_for_scripts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = project(tmp_path, FAILING)
    code, out, _ = run(capsys, "--output", "json", str(suite))
    assert code == 1
    data = json.loads(out)
    assert data["summary"] == {"suites": 1, "cases": 2, "passed": 0, "failed": 2, "unusable": 0}
    (entry,) = data["suites"]
    assert (entry["file"], entry["name"], entry["passed"], entry["problems"]) == (str(suite), "shop", False, [])
    first, second = entry["cases"]
    assert first["resource"] == {"kind": "Pod", "namespace": "shop", "name": "root",
                                 "source": f"{tmp_path}/resources/pods.yaml (document 1)"}
    assert (first["line"], first["result"], first["passed"]) == (6, 0, False)
    assert first["expected"] == {"kind": "Pod", "name": "root", "verdict": "allowed"}
    assert (first["actual"]["verdict"], first["actual"]["code"]) == ("denied", 403)
    assert first["differences"][0].startswith("verdict: expected allowed, got denied (403)")
    assert second["actual"]["patch"] == [
        {"op": "add", "path": "/spec/containers/0/resources", "value": {"requests": {"cpu": "50m", "memory": "64Mi"}}}]
    assert "defaults.resources" in second["actual"]["policies"]  # computed for a failed policy expectation


# --- --update ------------------------------------------------------------------------------------------------------


UPDATABLE = """\
# The shop's policies: what they must answer.
apiVersion: admission.dev/v1alpha1
kind: PolicyTest
policies: [policy.yaml]   # the policy file next to this suite
resources: [resources/*.yaml]
results:
  # The privileged Pod: this entry holds and is kept as written.
  - kind: Pod
    name: root
    verdict: denied
    policy: pod-security.privileged
  # Wrong, to be refreshed.
  - {kind: ClusterRole, verdict: allowed, message: nope}
  - kind: Pod
    name: web   # no expectation yet: filled in
# Kept: a comment after the results.
"""


def test_update_fills_in_and_refreshes_results_only_and_round_trips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = project(tmp_path, UPDATABLE)
    (tmp_path / "resources" / "extra.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {a: b}\n")
    code, out, err = run(capsys, "--update", str(suite))
    assert (code, err) == (0, "")
    assert out.startswith(f"--- {suite}\n+++ {suite}\n")  # the diff, before the file is written
    assert out.endswith("1 suite file(s) updated, 0 unchanged\n")
    text = suite.read_text()
    assert text == textwrap.dedent("""\
        # The shop's policies: what they must answer.
        apiVersion: admission.dev/v1alpha1
        kind: PolicyTest
        policies: [policy.yaml]   # the policy file next to this suite
        resources: [resources/*.yaml]
        results:
          # The privileged Pod: this entry holds and is kept as written.
          - kind: Pod
            name: root
            verdict: denied
            policy: pod-security.privileged
          # Wrong, to be refreshed.
          - kind: ClusterRole
            verdict: denied
            message: 'rbac.wildcards: wildcard in RBAC rule (ClusterRole "everything" has "*" in rules[0].apiGroups, which also grants everything added later; list the apiGroups explicitly (requester "developer" may not create wildcards)), wildcard in RBAC rule (ClusterRole "everything" has "*" in rules[0].resources, which also grants everything added later; list the resources explicitly (requester "developer" may not create wildcards)), wildcard in RBAC rule (ClusterRole "everything" has "*" in rules[0].verbs, which also grants everything added later; list the verbs explicitly (requester "developer" may not create wildcards))'
          - kind: Pod
            name: web
            verdict: warned
            policy: [pod-security.allowPrivilegeEscalation, pod-security.capabilities_restricted, pod-security.runAsNonRoot, pod-security.seccompProfile_restricted, defaults.resources]
            warnings: 1
            patch:
              - {op: add, path: /spec/containers/0/resources, value: {requests: {cpu: 50m, memory: 64Mi}}}
          - kind: ConfigMap
            namespace: shop
            name: settings
            verdict: allowed
        # Kept: a comment after the results.
        """)
    code, out, err = run(capsys, str(suite))
    assert (code, err) == (0, ""), out
    assert out.endswith("4 checked in 1 suite(s): 4 passed, 0 failed\n")
    assert run(capsys, "--update", str(suite))[1] == "0 suite file(s) updated, 1 unchanged\n"


def test_update_writes_a_missing_patched_resource_and_refreshes_a_stale_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = project(tmp_path, HEADER + "results:\n  - {kind: Pod, name: web, patchedResource: expected/web.yaml}\n")
    code, _, err = run(capsys, str(suite))
    assert code == 2 and err == f"error: {suite}:6: expected/web.yaml: no such file\n"
    (tmp_path / "expected").mkdir()
    assert run(capsys, "--update", str(suite))[0] == 0
    written = (tmp_path / "expected" / "web.yaml").read_text()
    assert "    resources:\n      requests:\n        cpu: 50m\n" in written
    assert run(capsys, str(suite))[0] == 0
    (tmp_path / "expected" / "web.yaml").write_text(written.replace("cpu: 50m", "cpu: 10m"))
    code, out, _ = run(capsys, str(suite))
    assert code == 1
    assert "        patchedResource: the mutated object differs from expected/web.yaml (- expected, + actual):" in out
    assert "          -        cpu: 10m" in out and "          +        cpu: 50m" in out
    assert run(capsys, "--update", str(suite))[0] == 0
    assert (tmp_path / "expected" / "web.yaml").read_text() == written
    assert run(capsys, str(suite))[0] == 0


def test_update_splits_an_entry_whose_resources_now_answer_differently(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = project(tmp_path, HEADER + "results:\n  - kind: Pod\n    verdict: allowed\n  - {kind: ClusterRole, verdict: denied}\n")
    assert run(capsys, "--update", str(suite))[0] == 0
    assert suite.read_text() == HEADER + textwrap.dedent("""\
        results:
          - kind: Pod
            namespace: shop
            name: root
            verdict: denied
          - kind: Pod
            namespace: shop
            name: web
            verdict: warned
          - {kind: ClusterRole, verdict: denied}
        """)
    assert run(capsys, str(suite))[0] == 0


def test_update_leaves_an_unusable_suite_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = HEADER + "results:\n  - {kind: Pod, name: web, verdict: allowed}\n  - {kind: Job, verdict: allowed}\n"
    suite = project(tmp_path, text)
    code, out, err = run(capsys, "--update", str(suite))
    assert (code, out) == (2, "0 suite file(s) updated, 0 unchanged, 1 unusable\n")
    assert err == f"error: {suite}:7: selects no resource of this suite (kind=Job)\n"
    assert suite.read_text() == text


# --- suites that cannot be used --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("results", "problem"),
    [
        ("  - {kind: Pod, verdict: rejected}\n",
         "6: results[0].verdict: Input should be 'allowed', 'denied' or 'warned'"),
        ("  - kind: Pod\n    nmae: web\n    verdict: allowed\n",
         "7: results[0].nmae: unknown field (check the spelling; docs/testing-policies.md lists the fields)"),
        ("  - {verdict: allowed}\n",
         "6: results[0]: select the resources this entry is about with kind, namespace, name or file"),
        ("  - {kind: Pod, warnings: [], verdict: allowed}\n",
         "6: results[0].warnings: expected a count (0, 2) or a non-empty list of substrings or /regexes/ "
         "(write 0 for no warnings)"),
        ("  - {kind: Pod, message: '/([/'}\n",
         "6: results[0].message: invalid regular expression /([/: unterminated character set at position 1"),
        ("  - {kind: Deployment, verdict: allowed}\n", "6: selects no resource of this suite (kind=Deployment)"),
        ("  - {kind: Pod, policy: pod-security.privilegd}\n",
         "6: unknown policy 'pod-security.privilegd' (did you mean 'pod-security.privileged'"),
        ("  - {kind: Pod, name: web}\n",
         "6: nothing to check: add verdict, policy, message, warnings, patch or patchedResource (or run with --update)"),
    ],
)
def test_a_broken_suite_exits_2_naming_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], results: str, problem: str
) -> None:
    suite = project(tmp_path, HEADER + "results:\n" + results)
    code, out, err = run(capsys, str(suite))
    assert code == 2
    assert err.startswith(f"error: {suite}:{problem}")
    assert "unusable suite(s)" in out


def test_the_other_suites_still_run_when_one_is_broken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project(tmp_path, PASSING)
    (tmp_path / "broken-test.yaml").write_text(HEADER.replace("resources/*.yaml", "nowhere/*.yaml"))
    (tmp_path / "invalid-test.yaml").write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyTest\nresults: [\n")
    code, out, err = run(capsys, str(tmp_path))
    assert code == 2
    assert out.endswith("4 checked in 3 suite(s): 4 passed, 0 failed, 2 unusable suite(s)\n")
    broken, invalid = err.splitlines()
    assert broken == f"error: {tmp_path}/broken-test.yaml:4: nowhere/*.yaml: the pattern matches no .yaml, .yml or .json file"
    assert invalid.startswith(f"error: {tmp_path}/invalid-test.yaml:4: invalid YAML: ")  # libyaml's words or PyYAML's


def test_broken_policy_files_make_the_suite_unusable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = project(tmp_path, PASSING)
    (tmp_path / "policy.yaml").write_text(POLICY.replace("level: baseline", "level: strict"))
    code, _, err = run(capsys, str(suite))
    assert code == 2
    assert err.startswith(f"error: {suite}:3: the policy files cannot be loaded:\n  {tmp_path}/policy.yaml:3: "
                          "podSecurity.level: Input should be 'privileged', 'baseline' or 'restricted'")


def test_no_suite_found_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, str(tmp_path))
    assert code == 2
    assert err == f"error: {tmp_path}: no suites found (files named *-test.yaml or holding kind: PolicyTest)\n"


# --- finding suites --------------------------------------------------------------------------------------------------


def test_suites_are_found_recursively_by_kind_or_name(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    suite = "apiVersion: admission.dev/v1alpha1\nkind: PolicyTest\nresources: [x.yaml]\n"
    (tmp_path / "a" / "b" / "shop-test.yaml").write_text(suite)
    (tmp_path / "a" / "suite.yml").write_text(suite)  # any name, by its kind
    (tmp_path / "a" / "typo-test.yaml").write_text(suite.replace("PolicyTest", "PolicyTests"))  # ours: an error
    (tmp_path / "a" / "kyverno-test.yaml").write_text("apiVersion: cli.kyverno.io/v1alpha1\nkind: Test\n")
    (tmp_path / "a" / "pod.yaml").write_text("apiVersion: v1\nkind: Pod\n")
    (tmp_path / ".git" / "x-test.yaml").write_text(suite)  # hidden: skipped
    found, problems = suites.discover([str(tmp_path)])
    assert problems == []
    assert found == [tmp_path / "a" / "b" / "shop-test.yaml", tmp_path / "a" / "suite.yml",
                     tmp_path / "a" / "typo-test.yaml"]
    assert suites.discover([str(tmp_path / "a" / "suite.yml"), str(tmp_path / "a")])[0][0] == tmp_path / "a" / "suite.yml"


# --- which policies fired --------------------------------------------------------------------------------------------


def test_admission_policies_fire_by_name_or_binding(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cel = conftest.REPO / "policies" / "examples" / "cel"
    suite = tmp_path / "replicas-test.yaml"
    suite.write_text(textwrap.dedent(f"""\
        apiVersion: admission.dev/v1alpha1
        kind: PolicyTest
        policies: [{cel / "replica-limit"}]
        resources: [{cel / "manifests" / "deployment-10-replicas.yaml"}, {cel / "manifests" / "deployment-3-replicas.yaml"}]
        results:
          - {{file: {cel / "manifests" / "deployment-10-replicas.yaml"}, verdict: denied,
             policy: [replica-limit, replica-limit/replica-limit, cel]}}
          - {{file: {cel / "manifests" / "deployment-3-replicas.yaml"}, verdict: allowed, notPolicy: replica-limit}}
        """))
    code, out, err = run(capsys, str(suite))
    assert (code, err) == (0, ""), out
    assert out.endswith("2 checked in 1 suite(s): 2 passed, 0 failed\n")


def test_a_request_context_per_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    suite = project(tmp_path, HEADER + textwrap.dedent("""\
        user: alice
        results:
          - {kind: ClusterRole, verdict: denied, message: 'requester "alice" may not create wildcards'}
          - {kind: ClusterRole, user: ops, groups: ["system:masters"], verdict: allowed}
          # An UPDATE that keeps the wildcard it had adds no finding.
          - {kind: ClusterRole, operation: UPDATE, oldObject: resources/role.yaml, verdict: allowed}
          - {kind: Pod, name: web, operation: DELETE, verdict: allowed, patch: []}
        """))
    code, out, err = run(capsys, str(suite))
    assert (code, err) == (0, ""), out
    bad = project(tmp_path, HEADER + "results:\n  - {kind: Pod, name: web, oldObject: resources/role.yaml, verdict: allowed}\n")
    code, _, err = run(capsys, str(bad))
    assert code == 2
    assert err == f"error: {bad}:6: oldObject is only meaningful with operation UPDATE or DELETE, not CREATE\n"
