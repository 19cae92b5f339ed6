"""Golden replay: recorded reviews beside their expected answers, the helper itself, and the
third-party corpus replayed through both chains."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

from tests import conftest
from webhook import catalog, cli, engine, golden, offline, review
from webhook.policy import files

REPO = Path(__file__).resolve().parents[1]
CASES = Path(__file__).parent / "golden" / "reviews"
REVIEWS = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "reviews"


@pytest.fixture(scope="module")
def policies() -> engine.PolicySet:
    try:
        return catalog.load([REPO / "policies"])
    except ImportError as exc:  # the built-in policy modules are still being written
        pytest.skip(f"the built-in catalog does not import yet: {exc}")


@golden.parametrize(CASES)
def test_recorded_review_gets_its_expected_answer(case: golden.Case, policies: engine.PolicySet) -> None:
    golden.check(case, policy_set=policies)


def test_the_cases_cover_every_kind_operation_and_version_the_policies_handle() -> None:
    seen: dict[str, set[Any]] = {"kind": set(), "operation": set(), "version": set(), "user": set()}
    dry_run = recordings = 0
    for case in golden.cases(CASES):
        document = json.loads(case.review.read_text())
        if document["kind"] == "RecordedReview":
            recordings += 1
            document = document["request"]
        request = document["request"]
        seen["kind"].add(request["kind"]["kind"])
        seen["operation"].add(request["operation"])
        seen["version"].add(document["apiVersion"])
        seen["user"].add(request["userInfo"]["username"].startswith("system:serviceaccount:"))
        dry_run += bool(request.get("dryRun"))
        if request["operation"] == "UPDATE":
            assert request["oldObject"] is not None, case.name
        if request["operation"] == "DELETE":
            assert request["object"] is None and request["oldObject"] is not None, case.name
    assert seen["kind"] >= {
        "Pod", "Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet", "ClusterRole", "Role",
        "RoleBinding", "ClusterRoleBinding", "PersistentVolumeClaim", "PersistentVolume", "StorageClass",
    }
    assert seen["operation"] == {"CREATE", "UPDATE", "DELETE", "CONNECT"}
    assert seen["version"] == {review.V1, review.V1BETA1}
    assert seen["user"] == {True, False}
    assert dry_run >= 3 and recordings >= 2


# --- the helper, on a small catalog of its own -----------------------------------------------

POLICY = "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\ndemoPods: {}\ndemoLabels:\n  labels: {team: core}\n"


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> engine.PolicySet:
    monkeypatch.delenv("UPDATE_GOLDEN", raising=False)  # these tests pin the helper's own behaviour
    (tmp_path / "policy.yaml").write_text(POLICY)
    catalog = conftest.make_catalog()
    return engine.PolicySet(files.load([tmp_path / "policy.yaml"], catalog=catalog), catalog=catalog)


def one_case(tmp_path: Path, obj: dict[str, Any], **kwargs: Any) -> golden.Case:
    folder = tmp_path / "cases"
    folder.mkdir(exist_ok=True)
    (folder / "pod.json").write_text(json.dumps(conftest.admission_review(obj, uid="g1", **kwargs)))
    (case,) = golden.cases(folder)
    return case


def test_update_writes_the_expected_file_and_a_normal_run_then_passes(tmp_path: Path, demo: engine.PolicySet) -> None:
    case = one_case(tmp_path, conftest.pod())
    assert (case.name, case.expected.name) == ("pod", "pod.expected.json")
    golden.check(case, policy_set=demo, update=True)
    assert json.loads(case.expected.read_text()) == {
        "endpoint": "mutate, then validate",
        "allowed": True,
        "warnings": [],
        "patch": [{"op": "add", "path": "/metadata/labels", "value": {"team": "core"}}],
    }
    golden.check(case, policy_set=demo)


def test_a_missing_expected_file_fails_saying_how_to_create_it(tmp_path: Path, demo: engine.PolicySet) -> None:
    case = one_case(tmp_path, conftest.pod())
    with pytest.raises(pytest.fail.Exception, match=r"pod.expected.json is missing; run the tests with UPDATE_GOLDEN=1"):
        golden.check(case, policy_set=demo)


def test_a_changed_answer_fails_with_a_readable_diff(tmp_path: Path, demo: engine.PolicySet) -> None:
    case = one_case(tmp_path, conftest.pod())
    golden.check(case, policy_set=demo, update=True)
    privileged = conftest.pod(containers=[{"name": "app", "image": "x", "securityContext": {"privileged": True}}])
    case.review.write_text(json.dumps(conftest.admission_review(privileged, uid="g1")))
    with pytest.raises(pytest.fail.Exception) as failure:
        golden.check(case, policy_set=demo)
    text = str(failure.value)
    assert text.startswith("pod: the answer differs from pod.expected.json (if the change is intended, rerun "
                           "with UPDATE_GOLDEN=1 and review the diff):\n")
    assert '-  "allowed": true,\n+  "allowed": false,\n+  "status": {\n+    "code": 403,' in text
    assert ('+    "message": "demo-pods.privileged: privileged (container \\"app\\" must not set '
            'securityContext.privileged=true)"') in text
    assert '-  "patch": [\n' in text and '+  "patch": []' in text


def test_update_golden_environment_variable_rewrites(
    tmp_path: Path, demo: engine.PolicySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = one_case(tmp_path, conftest.pod())
    case.expected.write_text("stale\n")
    monkeypatch.setenv("UPDATE_GOLDEN", "1")
    golden.check(case, policy_set=demo)
    monkeypatch.delenv("UPDATE_GOLDEN")
    golden.check(case, policy_set=demo)
    assert json.loads(case.expected.read_text())["allowed"] is True


def test_a_recording_is_replayed_on_its_endpoint_and_object_mode_keeps_the_result(
    tmp_path: Path, demo: engine.PolicySet
) -> None:
    folder = tmp_path / "cases"
    folder.mkdir()
    request = conftest.admission_review(conftest.pod(), uid="r1")
    (folder / "rec.json").write_text(json.dumps({
        "apiVersion": "admission.dev/v1alpha1", "kind": "RecordedReview", "path": "/validate/demo-pods",
        "request": request, "response": review.allowed("r1")}))
    (case,) = golden.cases(folder)
    assert golden.answer(case, policy_set=demo) == {
        "endpoint": "/validate/demo-pods", "allowed": True, "warnings": [], "patch": []}
    (folder / "rec.json").write_text(json.dumps(request))
    mutated = copy.deepcopy(request["request"]["object"])
    mutated["metadata"]["labels"] = {"team": "core"}
    assert golden.answer(case, policy_set=demo, result="object")["object"] == mutated


def test_a_case_file_must_hold_exactly_one_review(tmp_path: Path, demo: engine.PolicySet) -> None:
    folder = tmp_path / "cases"
    folder.mkdir()
    pod_spec = "spec: {containers: [{name: app, image: nginx}]}\n"
    (folder / "two.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n" + pod_spec + "---\n"
                                     "apiVersion: v1\nkind: Pod\nmetadata: {name: b}\n" + pod_spec)
    (case,) = golden.cases(folder)
    with pytest.raises(pytest.fail.Exception, match=r"two: a golden case holds exactly one review, .* holds 2"):
        golden.check(case, policy_set=demo)


# --- the third-party corpus --------------------------------------------------------------------


# Reviews an API server would never send: gatekeeper-library's partial reviews (no uid, kind or
# userInfo) and one Kubewarden request without an operation. They must give a clear error.
PARTIAL = {
    "62-kubewarden-safe-annotations-policy--letsencrypt-production": "request.operation: Field required",
    "68-gklib-host-namespaces--update": "request.uid: Field required; request.kind: Field required",
    "69-gklib-privileged-containers--update": "request.uid: Field required; request.kind: Field required",
    "70-gklib-capabilities--update": "request.uid: Field required; request.kind: Field required",
    "71-gklib-host-probes-lifecycle--update": "request.uid: Field required; request.kind: Field required",
}


def corpus() -> list[Path]:
    return sorted(p for p in REVIEWS.glob("*.json") if p.name != "index.json") if REVIEWS.is_dir() else []


@pytest.mark.parametrize("path", corpus() or [None], ids=lambda p: p.stem[:40] if p else "absent")
def test_third_party_reviews_neither_crash_the_chains_nor_produce_a_patch_that_does_not_apply(
    path: Path | None, policies: engine.PolicySet
) -> None:
    if path is None:
        conftest.shared("reviews")  # skips: ../shared/conformance is absent
        return
    inputs, problems = offline.read([str(path)])
    assert problems == []
    (item,) = inputs
    if path.stem in PARTIAL:
        with pytest.raises(offline.InputError) as error:
            offline.evaluate(item, policies)
        assert str(error.value) == f"{path}: not a valid AdmissionReview: {PARTIAL[path.stem]}"
        return
    parsed = review.parse(item.document)
    for chain in ("mutating", "validating"):
        outcome = engine.evaluate(policies, parsed.object, parsed.context, chain=chain)
        assert outcome.failed_policies == [], f"{chain} chain: {outcome.warnings or outcome.message}"
        if outcome.patch:
            patched = jsonpatch.apply_patch(copy.deepcopy(parsed.object), outcome.patch)
            again = engine.evaluate(policies, patched, parsed.context, chain="mutating")
            assert again.patch == [], "mutations are idempotent: a reinvocation changes nothing"
    result = offline.evaluate(item, policies)
    assert result.outcome.failed_policies == []
    assert result.answer["response"]["uid"] == parsed.uid
    assert result.answer["apiVersion"] == item.document["apiVersion"]
    if result.outcome.patch:
        assert jsonpatch.apply_patch(copy.deepcopy(parsed.object), result.outcome.patch) == result.mutated


def test_review_exits_2_on_a_partial_third_party_review(
    policies: engine.PolicySet, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = conftest.shared("reviews")
    partial = folder / "68-gklib-host-namespaces--update.json"
    good = folder / "35-kubewarden-pod-privileged-policy--no_privileged_containers.json"
    assert cli.main(["review", "--policies", str(REPO / "policies"), str(partial), str(good)]) == 2
    captured = capsys.readouterr()
    assert captured.err == (f"error: {partial}: not a valid AdmissionReview: request.uid: Field required; "
                            "request.kind: Field required\n")
    # The other review is still reviewed (what the shipped policies answer for it is theirs to say).
    assert captured.out.splitlines()[-1].startswith("1 reviewed: ")
    assert captured.out.endswith(", 1 unusable input(s)\n")
