"""``audit --from``: a generated dump, end to end through the command, every output and exit code.

The dump (:func:`tests.test_audit_dumps.cluster`) holds two shops whose ``api`` Deployments comply
with baseline, ``web`` Deployments that only restricted would refuse (one of their Pods carries a
privileged debug sidecar), a CronJob running as root, a privileged host-network node agent, a
hostPath PersistentVolume and a wildcard ClusterRole. What the default policies say about each is
what the webhook would answer for its creation today.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import test_audit_dumps as dumps
from webhook import catalog, cli, config, engine, offline, review
from webhook.audit import evaluate, model, reports

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dump_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dumps.write_yaml(tmp_path_factory.mktemp("audit") / "cluster.yaml", dumps.cluster())


def audit(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["audit", "--no-progress", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def wide_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "  " in line and not line[0].isdigit()]


def test_the_summary_counts_each_policy_and_rule_with_its_top_namespaces(
    capsys: pytest.CaptureFixture[str], dump_file: Path
) -> None:
    code, out, err = audit(capsys, "--from", str(dump_file))
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert lines[0].split() == ["POLICY", "/", "RULE", "CHECKED", "SKIPPED", "VIOLATING", "ENFORCE", "WARN", "AUDIT",
                                "TOP", "NAMESPACES"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line and not line.startswith(" ")
            and not line[0].isdigit()}
    # Pod security: the two differing web Pods and the node agent would be denied; the web
    # Deployments and the CronJob only break restricted (warnings).
    assert rows["pod-security"][1:6] == ["9", "0", "6", "3", "3"]
    assert "privileged                                           3        3" in out
    assert rows["rbac"][1:6] == ["4", "0", "1", "1", "0"]
    assert rows["storage"][3:5] == ["1", "1"]
    assert "41 objects evaluated: 16 reported, 19 folded into their owners" in out
    assert "6 objects of kinds no loaded policy checks on create: Namespace 4, ConfigMap 2." in out
    assert "5 objects would be denied if created now (enforce), 3 would get warnings" in out


def test_pods_that_break_what_their_template_breaks_are_folded_into_the_owner(
    capsys: pytest.CaptureFixture[str], dump_file: Path
) -> None:
    code, out, _ = audit(capsys, "--from", str(dump_file), "-o", "wide")
    reported = {line.split("  ")[0] for line in wide_lines(out)}
    pods = sorted(r for r in reported if r.startswith("Pod "))
    # Only the Pod with the privileged sidecar, in each shop, differs from what its Deployment makes.
    assert pods == [
        "Pod shop-1/web-5c4b8d9f7-00000 (differs from Deployment shop-1/web)",
        "Pod shop-2/web-5c4b8d9f7-00000 (differs from Deployment shop-2/web)",
    ]
    assert not any(r.startswith(("ReplicaSet ", "Job ")) for r in reported)

    code, out, _ = audit(capsys, "--from", str(dump_file), "-o", "wide", "--all-pods")
    reported = {line.split("  ")[0].split(" (")[0] for line in wide_lines(out)}
    assert {r for r in reported if r.startswith("Pod ")} == {
        *(f"Pod shop-{s}/web-5c4b8d9f7-0000{i}" for s in (1, 2) for i in range(3)),
        "Pod batch/nightly-29012345-q8w7e", *(f"Pod monitoring/node-agent-{n}x7q" for n in range(3)),
    }
    assert "ReplicaSet shop-1/web-5c4b8d9f7" in reported and "Job batch/nightly-29012345" in reported


def test_a_workload_whose_pods_would_be_denied_is_reported_as_failing(
    capsys: pytest.CaptureFixture[str], dump_file: Path
) -> None:
    """``workloadMode: off``: creating the DaemonSet only warns, but every Pod it makes is denied."""
    _, out, _ = audit(capsys, "--from", str(dump_file), "-o", "wide")
    agent = [line for line in wide_lines(out) if line.startswith("DaemonSet monitoring/node-agent")]
    assert ("DaemonSet monitoring/node-agent  pod-security/privileged  fail (enforce)  its Pods: violates "
            'PodSecurity "baseline:latest": privileged (container "agent" must not set securityContext.privileged=true)'
            ) in agent
    assert any("pod-security/hostNamespaces  fail (enforce)  its Pods:" in line for line in agent)


@pytest.mark.parametrize(
    ("fail_on", "expected"),
    [("enforce", 1), ("none", 0), ("warn", 1), ("audit", 0), ("warn,audit", 1)],
)
def test_fail_on_chooses_which_modes_make_the_exit_code_1(
    capsys: pytest.CaptureFixture[str], dump_file: Path, fail_on: str, expected: int
) -> None:
    assert audit(capsys, "--from", str(dump_file), "--fail-on", fail_on)[0] == expected


def test_a_compliant_dump_exits_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    objects = [o for o in dumps.cluster(shops=1) if o["metadata"]["name"].startswith("api")
               or o["kind"] == "Namespace"]
    path = dumps.write_json(tmp_path / "clean.json", objects)
    code, out, _ = audit(capsys, "--from", str(path))
    assert code == 0
    assert "0 objects would be denied if created now (enforce), 0 would get warnings" in out


def test_every_verdict_matches_the_webhooks_own_answer_for_the_same_create(dump_file: Path) -> None:
    """Parity: an object has a ``fail`` result of its own exactly when the server denies its creation."""
    policy_set = catalog.load([config.DEFAULT_POLICIES])
    evaluator = evaluate.Evaluator(policy_set)
    from webhook.audit import dump

    with dump.Source([str(dump_file)]) as source:
        source.prepare()
        for item in source.items():
            results, _ = evaluator.evaluate(item, source.namespaces.get(item.object["metadata"].get("namespace", "")))
            parsed = review.parse(offline.wrap(evaluate.as_created(item.object), source="parity"))
            ns = source.namespaces.get(parsed.context.namespace)
            if ns is not None:
                parsed.context.namespace_labels = ns.labels
            outcome = engine.evaluate(policy_set, parsed.object, parsed.context, chain="validating")
            denied = any(r.result == "fail" and r.subject == "object" for r in results)
            assert denied == (not outcome.allowed), (item.object["kind"], item.object["metadata"]["name"])


def test_namespace_labels_come_from_the_namespaces_in_the_dump(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dump_file: Path
) -> None:
    """A scope by namespace label: with the Namespaces in the dump, only the shops are checked;
    without them the labels are unknown, nothing matches, and the summary says why."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "ps.yaml").write_text(
        "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\npodSecurity:\n  mode: enforce\n  level: baseline\n"
        "  scope:\n    namespaceSelector:\n      matchLabels: {team: shop}\n")
    code, out, _ = audit(capsys, "--from", str(dump_file), "--policies", str(policies), "-o", "json")
    found = json.loads(out)
    assert {o["namespace"] for o in found["objects"]} == {"shop-1", "shop-2"}
    (row,) = found["summary"]["policies"]
    assert (row["policy"], row["checked"], row["violating"]) == ("pod-security", 6, 2)

    without = dumps.write_yaml(tmp_path / "no-ns.yaml", [o for o in dumps.cluster() if o["kind"] != "Namespace"])
    code, out, _ = audit(capsys, "--from", str(without), "--policies", str(policies))
    assert code == 0
    assert "Labels of 4 namespaces are unknown (no Namespace object was read)" in out


def test_exemptions_honour_the_requester(capsys: pytest.CaptureFixture[str], tmp_path: Path, dump_file: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "ps.yaml").write_text(
        "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\npodSecurity:\n  mode: enforce\n  level: baseline\n"
        "  exemptions:\n    users: [ci-bot]\n")
    assert audit(capsys, "--from", str(dump_file), "--policies", str(policies))[0] == 1
    code, out, _ = audit(capsys, "--from", str(dump_file), "--policies", str(policies), "--user", "ci-bot")
    assert code == 0
    # Nothing checked, every object skipped; exempt, the sidecar Pods no longer differ from their owners.
    assert out.splitlines()[1].split()[:5] == ["pod-security", "0", "7", "0", "0"]


def test_namespace_and_selector_narrow_the_scan(
    capsys: pytest.CaptureFixture[str], dump_file: Path
) -> None:
    _, out, _ = audit(capsys, "--from", str(dump_file), "-n", "monitoring", "-o", "json")
    found = json.loads(out)
    assert {o["namespace"] for o in found["objects"]} == {"monitoring"}
    _, out, _ = audit(capsys, "--from", str(dump_file), "-l", "app.kubernetes.io/name in (web),team!=nobody",
                      "-o", "json", "--all-pods")
    names = {(o["kind"], o["namespace"], o["name"]) for o in json.loads(out)["objects"]}
    assert ("Deployment", "shop-1", "web") in names
    assert all(name.startswith("web") for _, _, name in names)
    code, _, err = audit(capsys, "--from", str(dump_file), "-l", "app=(")
    assert code == 2 and err.startswith("error: --selector 'app=(': cannot parse")


def test_what_if_shows_the_violations_a_proposed_setting_adds(
    capsys: pytest.CaptureFixture[str], dump_file: Path
) -> None:
    code, out, _ = audit(capsys, "--from", str(dump_file), "--what-if", "--set", "podSecurity.level=restricted")
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["POLICY", "/", "RULE", "NEW", "ENFORCE", "WARN", "AUDIT", "FIXED", "TOP",
                                "NAMESPACES", "(NEW)"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.startswith("pod-security/")}
    # The web Pods' restricted violations become denials (their Deployments already get warnings).
    assert rows["pod-security/allowPrivilegeEscalation"][1:6] == ["6", "6", "0", "0", "0"]
    assert "6 objects gain violations (6 would be denied if created now), 1 lose some." in out

    _, out, _ = audit(capsys, "--from", str(dump_file), "--what-if", "--set", "podSecurity.level=restricted",
                      "-o", "wide")
    assert any(line.startswith("+ Deployment shop-1/web  pod-security/allowPrivilegeEscalation  fail (enforce)  "
                               'its Pods: violates PodSecurity "restricted:latest"') for line in out.splitlines())
    # Restricted's volume check replaces baseline's hostPath check: one fixed, one new, same DaemonSet.
    assert "- DaemonSet monitoring/node-agent  pod-security/hostPathVolumes  fail (enforce)" in out
    assert "+ DaemonSet monitoring/node-agent  pod-security/restrictedVolumes  fail (enforce)" in out


def test_what_if_shows_what_a_relaxed_policy_set_fixes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dump_file: Path
) -> None:
    relaxed = tmp_path / "relaxed"
    relaxed.mkdir()
    for path in sorted((REPO / "policies").glob("*.yaml")):
        (relaxed / path.name).write_text(path.read_text())
    code, out, _ = audit(capsys, "--from", str(dump_file), "--what-if", "--policies", str(relaxed),
                         "--set", "rbac.policies[rbac.wildcards].mode=warn", "-o", "json")
    assert code == 0  # nothing new
    found = json.loads(out)
    what_if = found["summary"]["whatIf"]
    assert what_if["objectsWithFixed"] == 1 and what_if["objectsWithNew"] == {}
    assert [(r["policy"], r["rule"], r["modes"]) for r in what_if["fixed"]] == [("rbac", "wildcards", {"enforce": 1})]
    (role,) = found["objects"]
    assert (role["kind"], role["name"], role["new"]) == ("ClusterRole", "ops-everything", [])


def policy_reports(out: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(out) if doc]


RESULT_FIELDS = {"source", "policy", "rule", "category", "severity", "timestamp", "result", "scored", "resources",
                 "message", "properties"}


def test_policyreports_one_per_namespace_plus_a_cluster_report(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, dump_file: Path
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1793000000")
    code, out, err = audit(capsys, "--from", str(dump_file), "-o", "policyreport")
    assert code == 1 and "41 objects evaluated" in err
    found = policy_reports(out)
    assert [(r["kind"], r["metadata"].get("namespace")) for r in found] == [
        ("PolicyReport", "batch"), ("PolicyReport", "monitoring"), ("PolicyReport", "shop-1"),
        ("PolicyReport", "shop-2"), ("ClusterPolicyReport", None)]
    for report in found:
        assert report["apiVersion"] == "wgpolicyk8s.io/v1alpha2"
        assert report["metadata"]["name"] == "admission-webhook-audit"
        assert report["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "admission-webhook-audit"
        assert report["summary"] == reports.summary(report["results"])
        for result in report["results"]:
            assert set(result) <= RESULT_FIELDS
            assert result["source"] == "admission-webhook"
            assert result["result"] in ("pass", "fail", "warn", "error", "skip")
            assert result.get("severity", "high") in ("high", "medium", "low")
            assert result["timestamp"] == {"seconds": 1793000000, "nanos": 0}
            assert all(isinstance(v, str) for v in result.get("properties", {}).values())
            (resource,) = result["resources"]
            assert set(resource) == ({"apiVersion", "kind", "name", "uid"}
                                     | ({"namespace"} if report["kind"] == "PolicyReport" else set()))
    monitoring = found[1]
    assert {"source": "admission-webhook", "policy": "pod-security", "rule": "privileged",
            "category": "Pod Security Standards", "severity": "high",
            "timestamp": {"seconds": 1793000000, "nanos": 0}, "result": "fail", "scored": True,
            "resources": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "namespace": "monitoring",
                           "name": "node-agent", "uid": dumps.uid("DaemonSet", "monitoring", "node-agent")}],
            "message": 'its Pods: violates PodSecurity "baseline:latest": privileged (container "agent" must not set '
                       "securityContext.privileged=true)",
            "properties": {"mode": "enforce", "subject": "pods"}} in monitoring["results"]
    cluster_kinds = {r["resources"][0]["kind"] for r in found[-1]["results"]}
    assert cluster_kinds == {"ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
    passes = [r for r in found[2]["results"] if r["result"] == "pass"]
    assert {(r["resources"][0]["name"], r["policy"]) for r in passes} >= {("api", "pod-security"), ("data", "storage")}


def test_openreports_reports_name_their_source_at_the_top(
    capsys: pytest.CaptureFixture[str], dump_file: Path
) -> None:
    _, out, _ = audit(capsys, "--from", str(dump_file), "-o", "policyreport", "--report-api", "openreports")
    found = policy_reports(out)
    assert {(r["apiVersion"], r["kind"]) for r in found} == {("openreports.io/v1alpha1", "Report"),
                                                             ("openreports.io/v1alpha1", "ClusterReport")}
    assert all(r["source"] == "admission-webhook" for r in found)


def test_a_large_namespace_report_is_split_in_numbered_parts(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, dump_file: Path
) -> None:
    monkeypatch.setattr(reports, "MAX_RESULTS", 5)
    _, out, _ = audit(capsys, "--from", str(dump_file), "-o", "policyreport", "-n", "shop-1")
    found = policy_reports(out)
    assert [r["metadata"]["name"] for r in found][:3] == ["admission-webhook-audit", "admission-webhook-audit-2",
                                                          "admission-webhook-audit-3"]
    assert all(len(r["results"]) <= 5 for r in found)


def test_json_is_one_document_with_the_violating_objects_summary_and_problems(
    capsys: pytest.CaptureFixture[str], dump_file: Path
) -> None:
    _, out, _ = audit(capsys, "--from", str(dump_file), "-o", "json")
    found = json.loads(out)
    assert found["kind"] == "AuditResult" and found["problems"] == []
    assert found["summary"]["folded"] == 19 and found["summary"]["evaluated"] == 41
    pv = next(o for o in found["objects"] if o["kind"] == "PersistentVolume")
    assert pv["results"] == [{"policy": "storage", "rule": "pvHostPath", "result": "fail", "mode": "enforce",
                              "message": pv["results"][0]["message"]}]
    assert "namespace" not in pv


def test_admission_policies_are_reported_per_policy_and_binding(
    capsys: pytest.CaptureFixture[str], dump_file: Path
) -> None:
    cel = REPO / "policies" / "examples" / "cel" / "required-labels"
    _, out, _ = audit(capsys, "--from", str(dump_file), "--policies", str(cel), "-o", "json", "--all-pods")
    found = json.loads(out)
    (row,) = found["summary"]["policies"]
    assert row["policy"] == "required-labels"
    labelled = {(o["kind"], o["name"]) for o in found["objects"]}
    # The generated Deployments are labelled, their running Pods too; the DaemonSet's are not.
    assert ("DaemonSet", "node-agent") in labelled and ("Deployment", "api") not in labelled
    result = next(o for o in found["objects"] if o["name"] == "node-agent")["results"][0]
    assert (result["rule"], result["result"], result["mode"]) == ("required-labels", "fail", "enforce")
    assert result["message"].startswith("ValidatingAdmissionPolicy 'required-labels' with binding 'required-labels' "
                                        "denied request: DaemonSet node-agent is missing required labels")


def test_unusable_inputs_are_one_line_each_and_the_rest_is_still_audited(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dump_file: Path
) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nitems:\n- kind: Pod\n  metadata: {name: a}\n" + "- {a: 1}\n" * 200
                      + "- [1, 2\n")
    code, out, err = audit(capsys, "--from", str(dump_file), "--from", str(broken), "--from",
                           str(tmp_path / "missing.yaml"))
    assert code == 2
    assert err.splitlines() == [
        f"error: {broken} (document 1) items[0]: expected a Kubernetes object: apiVersion and kind are required",
        *(f"error: {broken} (document 1) items[{i}]: expected a Kubernetes object: apiVersion and kind are required"
          for i in range(1, 201)),
        f"error: {broken}:206: invalid YAML: did not find expected ',' or ']'; the rest of the file is skipped",
        f"error: {tmp_path / 'missing.yaml'}: no such file or directory",
        "audit: partial: 203 problem(s) above; what could be read was evaluated",
    ]
    assert "41 objects evaluated" in out


def test_arguments_that_cannot_mean_anything_are_refused(capsys: pytest.CaptureFixture[str], dump_file: Path) -> None:
    for argv, message in [
        (["--apply", "-o", "wide"], "--apply writes reports; it cannot be combined with -o wide"),
        (["--apply", "--what-if"], "--apply with --what-if would publish reports of policies not in force"),
        (["--apply", "-l", "a=b"], "--apply with --selector would replace each namespace's report"),
        (["--current-policies", "x"], "--current-policies is only meaningful with --what-if"),
    ]:
        code, _, err = audit(capsys, "--from", str(dump_file), *argv)
        assert code == 2 and message in err


def test_the_evaluator_keeps_the_strongest_result_per_rule() -> None:
    results = evaluate.normalize([
        model.Result("p", "", "pass"),
        model.Result("p", "a", "warn", "audit", "a as audit"),
        model.Result("p", "a", "warn", "warn", "a as warn"),
        model.Result("p", "a", "fail", "enforce", "a denied", subject="pods"),
        model.Result("q", "", "skip"),
        model.Result("r", "", "skip"),
        model.Result("r", "", "pass"),
    ])
    assert [(r.policy, r.rule, r.result, r.message) for r in results] == [
        ("p", "a", "fail", "a denied"), ("q", "", "skip", ""), ("r", "", "pass", "")]


def documented(command: str) -> str:
    """The output docs/audit.md shows after ``$ <command>``, up to the end of its code block."""
    text = (REPO / "docs" / "audit.md").read_text()
    start = text.index(f"$ {command}\n") + len(command) + 3
    return text[start:text.index("```", start)]


@pytest.mark.parametrize("argv", [[], ["--what-if", "--set", "podSecurity.level=restricted"]])
def test_the_outputs_shown_in_the_docs_are_what_the_command_prints(
    capsys: pytest.CaptureFixture[str], dump_file: Path, argv: list[str]
) -> None:
    _, out, _ = audit(capsys, "--from", str(dump_file), *argv)
    shown = documented(" ".join(["python -m webhook audit --from cluster.yaml", *argv]))
    assert shown.split("$ echo $?")[0] == out
