"""The offline ``review`` command: inputs, chain order, output, exit codes, and the shipped examples."""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import conftest
from webhook import cli, engine, golden, offline, review
from webhook.policy import files, model, registry, settings

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "policies" / "examples"
EXPECTED_OUTPUT = Path(__file__).parent / "golden" / "examples"
POLICY = """apiVersion: admission.dev/v1alpha1
kind: PolicyConfig
demoPods: {}
demoRoles: {}
demoLabels:
  labels: {team: core}
"""
PRIVILEGED_POD = """apiVersion: v1
kind: Pod
metadata: {name: root}
spec:
  containers:
    - {name: app, image: nginx, securityContext: {privileged: true}}
"""
PLAIN_POD = """apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, creationTimestamp: 2025-01-01T00:00:00Z}
spec:
  containers:
    - {name: app, image: nginx}
"""


@pytest.fixture
def demo(tmp_path: Path) -> engine.PolicySet:
    (tmp_path / "policy.yaml").write_text(POLICY)
    catalog = conftest.make_catalog()
    return engine.PolicySet(files.load([tmp_path / "policy.yaml"], catalog=catalog), catalog=catalog)


def run(paths: list[str], policy_set: engine.PolicySet, **kwargs: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = offline.run(paths, policy_set=policy_set, stdout=out, stderr=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_text_output_shows_verdict_message_and_the_mutation_as_a_diff(tmp_path: Path, demo: engine.PolicySet) -> None:
    denied = write(tmp_path, "root.yaml", PRIVILEGED_POD)
    allowed = write(tmp_path, "web.yaml", PLAIN_POD)
    code, out, err = run([denied, allowed], demo)
    assert (code, err) == (1, "")
    assert out == (
        f"{denied}: CREATE Pod default/root by developer\n"
        "  verdict:  denied (403 Forbidden, validating chain)\n"
        '  message:  demo-pods.privileged: privileged (container "app" must not set securityContext.privileged=true)\n'
        "  warnings: none\n"
        "  mutation: 1 patch operation(s) (not applied: the request is denied)\n"
        "    --- submitted\n"
        "    +++ mutated\n"
        "    @@ -3,6 +3,8 @@\n"
        "     metadata:\n"
        "       name: root\n"
        "       namespace: default\n"
        "    +  labels:\n"
        "    +    team: core\n"
        "     spec:\n"
        "       containers:\n"
        "       - name: app\n"
        "\n"
        f"{allowed}: CREATE Pod shop/web by developer\n"
        "  verdict:  allowed\n"
        "  warnings: none\n"
        "  mutation: 1 patch operation(s)\n"
        "    --- submitted\n"
        "    +++ mutated\n"
        "    @@ -4,6 +4,8 @@\n"
        "       name: web\n"
        "       namespace: shop\n"
        "       creationTimestamp: '2025-01-01T00:00:00Z'\n"
        "    +  labels:\n"
        "    +    team: core\n"
        "     spec:\n"
        "       containers:\n"
        "       - name: app\n"
        "\n"
        "2 reviewed: 1 allowed, 1 denied, 0 with warnings\n"
    )


def test_json_output_traces_each_answer_to_its_source(tmp_path: Path, demo: engine.PolicySet) -> None:
    path = write(tmp_path, "both.yaml", PRIVILEGED_POD + "---\n" + PLAIN_POD)
    code, out, _ = run([path], demo, output="json")
    assert code == 1
    entries = json.loads(out)
    uid0, uid1 = (offline.read([path])[0][i].document["request"]["uid"] for i in (0, 1))
    assert {k: v for k, v in entries[0].items() if k != "answer"} == {
        "source": {"file": path, "document": 1, "item": None}, "kind": "Pod", "namespace": "default",
        "name": "root", "operation": "CREATE", "verdict": "denied", "warnings": 0, "changed": None, "changes": [],
        "podsDenied": None}
    assert entries[0]["answer"] == review.denied(
        uid0, 'demo-pods.privileged: privileged (container "app" must not set securityContext.privileged=true)')
    assert entries[1]["source"] == {"file": path, "document": 2, "item": None}
    answer = entries[1]["answer"]
    assert answer["response"]["uid"] == uid1 and answer["response"]["allowed"] is True
    assert json.loads(base64.b64decode(answer["response"]["patch"])) == [
        {"op": "add", "path": "/metadata/labels", "value": {"team": "core"}}]
    # The uid of a wrapped manifest is derived from its source: the same on every run.
    assert json.loads(run([path], demo, output="json")[1]) == entries


def test_only_runs_one_chain_on_the_object_as_given(tmp_path: Path, demo: engine.PolicySet) -> None:
    path = write(tmp_path, "root.yaml", PRIVILEGED_POD)
    code, out, _ = run([path], demo, only="mutate", output="json")
    assert code == 0 and json.loads(out)[0]["answer"]["response"]["patchType"] == "JSONPatch"
    code, out, _ = run([path], demo, only="validate")
    assert code == 1 and "mutation:" not in out and "verdict:  denied (403 Forbidden, validating chain)" in out


def test_the_validating_chain_judges_the_mutated_object(tmp_path: Path) -> None:
    """As the API server calls webhooks: mutations first, validation of their result."""
    cat = registry.Registry()
    registry.group("owners", key="owners", chain="validating", settings_model=settings.GroupSettings, registry=cat)
    registry.group("owner-label", key="ownerLabel", chain="mutating", settings_model=settings.MutatingGroupSettings,
                   registry=cat)

    @registry.check("owners.required", group="owners", pod_spec=True, registry=cat)
    def required(pod: model.PodTarget, ctx: model.ReviewContext, params: Any) -> list[model.Violation]:
        return [] if "owner" in pod.labels else [model.Violation("no owner", 'label "owner" is required')]

    @registry.mutation("owner-label.add", group="owner-label", pod_spec=True, registry=cat)
    def add(pod: model.PodTarget, ctx: model.ReviewContext, params: Any) -> None:
        pod.metadata_for_write().setdefault("labels", {}).setdefault("owner", "platform")

    (tmp_path / "p.yaml").write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\nowners: {}\n"
                                     "ownerLabel: {}\n")
    policy_set = engine.PolicySet(files.load([tmp_path / "p.yaml"], catalog=cat), catalog=cat)
    path = write(tmp_path, "web.yaml", PLAIN_POD)
    assert run([path], policy_set)[0] == 0
    code, out, _ = run([path], policy_set, only="validate")
    assert code == 1 and 'message:  owners.required: no owner (label "owner" is required)' in out


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        (offline.Shape(), {"operation": "CREATE", "namespace": "default", "object": True, "oldObject": False,
                           "userInfo": {"username": "developer", "groups": ["system:authenticated"]}}),
        (offline.Shape(operation="UPDATE", namespace="team-a", username="system:serviceaccount:ci:deployer",
                       groups=("system:serviceaccounts", "system:authenticated"), dry_run=True),
         {"operation": "UPDATE", "namespace": "team-a", "object": True, "oldObject": True, "dryRun": True,
          "userInfo": {"username": "system:serviceaccount:ci:deployer",
                       "groups": ["system:serviceaccounts", "system:authenticated"]}}),
        (offline.Shape(operation="DELETE"), {"operation": "DELETE", "object": False, "oldObject": True}),
    ],
)
def test_a_manifest_is_wrapped_as_the_api_server_would_send_it(shape: offline.Shape, expected: dict[str, Any]) -> None:
    template = {"spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"template": template}}
    (item,) = offline.classify(manifest, source="d.yaml", shape=shape)
    request = item.document["request"]
    assert item.document["apiVersion"] == review.V1
    assert request["kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert request["resource"] == {"group": "apps", "version": "v1", "resource": "deployments"}
    assert request["name"] == "web"
    for key, value in expected.items():
        if key in ("object", "oldObject"):
            assert (request[key] is not None) is value, key
        else:
            assert request[key] == value, key
    wrapped = request["object"] or request["oldObject"]
    assert wrapped["metadata"]["namespace"] == expected.get("namespace", "default")  # filled in as the API server does
    assert "namespace" not in manifest["metadata"]  # the input itself is untouched


def test_cluster_scoped_manifests_get_no_namespace_and_a_manifest_namespace_wins() -> None:
    (role,) = offline.classify({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                "metadata": {"name": "r"}}, source="r", shape=offline.Shape(namespace="x"))
    assert "namespace" not in role.document["request"] and "namespace" not in role.document["request"]["object"]["metadata"]
    (pod,) = offline.classify({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "mine"},
                               "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}},
                              source="p", shape=offline.Shape(namespace="x"))
    assert pod.document["request"]["namespace"] == "mine"


def test_lists_documents_bare_requests_and_recordings_are_all_inputs(tmp_path: Path, demo: engine.PolicySet) -> None:
    items = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
         "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}}]}
    bare = conftest.admission_review(conftest.pod("bare"), uid="bare-uid")["request"]
    recorded = {"apiVersion": "admission.dev/v1alpha1", "kind": "RecordedReview", "path": "/validate",
                "request": conftest.admission_review(conftest.pod("rec"), uid="rec-uid"),
                "response": review.allowed("rec-uid")}
    folder = tmp_path / "inputs"
    folder.mkdir()
    paths = [write(folder, "list.json", json.dumps(items)), write(folder, "bare.json", json.dumps(bare)),
             write(folder, "rec.json", json.dumps(recorded))]
    inputs, problems = offline.read(paths)
    assert problems == []
    assert [i.source for i in inputs] == [f"{paths[0]} items[0]", f"{paths[0]} items[1]", paths[1], paths[2]]
    assert inputs[2].document["request"]["uid"] == "bare-uid"
    assert (inputs[3].path, inputs[3].recorded) == ("/validate", review.allowed("rec-uid"))
    code, out, _ = run([str(folder)], demo)  # a directory: its JSON and YAML files, in name order
    assert code == 0 and out.endswith("4 reviewed: 4 allowed, 0 denied, 0 with warnings, 0 changed from their recording\n")


def test_stdin_is_read_for_dash(monkeypatch: pytest.MonkeyPatch, demo: engine.PolicySet) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(PLAIN_POD))
    code, out, _ = run(["-"], demo)
    assert code == 0 and out.startswith("<stdin>: CREATE Pod shop/web by developer\n")


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("bad.yaml", "kind: Pod\nmetadata: {name: [\n", "bad.yaml:3: invalid YAML: expected the node content, but found '<stream end>'"),
        ("bad.json", '{"kind": ', "bad.json: invalid JSON: "),
        ("empty.yaml", "# nothing\n", "empty.yaml: no documents (the file is empty)"),
        ("scalar.yaml", "just text\n", "scalar.yaml: expected a mapping (an AdmissionReview, a recording or a manifest), got str"),
        ("nokind.yaml", "apiVersion: v1\nmetadata: {name: x}\n", "nokind.yaml: kind: required (e.g. Pod)"),
        ("response.json", json.dumps(review.allowed("u")),
         "response.json: an AdmissionReview response, not a request: nothing to review"),
        ("nouid.json", json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview",
                                   "request": {"operation": "UPDATE", "object": {"kind": "Pod"}}}),
         "nouid.json: not a valid AdmissionReview: request.uid: Field required; request.kind: Field required"),
        ("op.json", json.dumps(conftest.admission_review(conftest.pod(), operation="PATCH")),
         "op.json: not a valid AdmissionReview: request.operation: Input should be 'CREATE', 'UPDATE', 'DELETE' or 'CONNECT'"),
    ],
)
def test_bad_input_exits_2_naming_the_file_and_the_problem(
    tmp_path: Path, demo: engine.PolicySet, name: str, text: str, problem: str
) -> None:
    bad = write(tmp_path, name, text)
    good = write(tmp_path, "good.yaml", PLAIN_POD)
    code, out, err = run([bad, good], demo)
    assert code == 2
    assert err.startswith(f"error: {tmp_path}/{problem}") and err.count("\n") == 1
    assert out.endswith("1 reviewed: 1 allowed, 0 denied, 0 with warnings, 1 unusable input(s)\n")  # the rest is still reviewed


def test_a_missing_file_exits_2(tmp_path: Path, demo: engine.PolicySet) -> None:
    code, _, err = run([str(tmp_path / "nope.yaml")], demo)
    assert (code, err) == (2, f"error: {tmp_path}/nope.yaml: no such file or directory\n")


@pytest.fixture(scope="module")
def real_catalog() -> None:
    try:
        import webhook.catalog  # noqa: F401
    except ImportError as exc:  # the built-in policy modules are still being written
        pytest.skip(f"the built-in catalog does not import yet: {exc}")


def test_the_command_exits_2_on_broken_policy_files(
    tmp_path: Path, real_catalog: None, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.yaml").write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\nnoSuchGroup: {}\n")
    assert cli.main(["review", "--policies", str(tmp_path / "p.yaml"), write(tmp_path, "x.yaml", PLAIN_POD)]) == 2
    assert capsys.readouterr().err.startswith(f"error: policy files: {tmp_path}/p.yaml:3: unknown section 'noSuchGroup'")


# The verdict the shipped policies give each example (the README's table) is pinned by
# policies/tests/examples-test.yaml; here, the output is pinned by the golden files.
EXAMPLE_FILES = (
    "compliant-deployment.yaml",
    "pod-with-sidecar.yaml",
    "privileged-pod.yaml",
    "pvc-without-class.yaml",
    "recorded-pod-delete.json",
    "secret.yaml",
    "team-rbac.yaml",
    "update-deployment-review.json",
    "wildcard-clusterrole.yaml",
)


def test_every_example_is_listed() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.suffix in offline.SUFFIXES) == sorted(EXAMPLE_FILES)


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_review_prints_the_documented_output_for_each_example(
    name: str, real_catalog: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    code = cli.main(["review", f"policies/examples/{name}"])
    captured = capsys.readouterr()
    assert captured.err == ""
    assert code == (1 if "\n  verdict:  denied" in captured.out else 0)  # exit 1 when a review is denied
    golden.check_text(captured.out, EXPECTED_OUTPUT / f"{Path(name).stem}.txt", name=name)


def test_wildcard_example_is_allowed_for_an_exempt_group(
    real_catalog: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    assert cli.main(["review", "--user", "admin", "--group", "system:masters",
                     "policies/examples/wildcard-clusterrole.yaml"]) == 0
    assert "CREATE ClusterRole everything by admin\n  verdict:  allowed\n" in capsys.readouterr().out


def test_a_patch_that_does_not_apply_fails_the_review_as_the_api_server_would(
    tmp_path: Path, demo: engine.PolicySet, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = engine.evaluate

    def broken(policy_set: engine.PolicySet, obj: Any, ctx: model.ReviewContext, *, chain: Any,
               group: str | None = None) -> review.Outcome:
        if chain == "mutating":
            return review.Outcome(patch=[{"op": "replace", "path": "/nope/x", "value": 1}])
        return real(policy_set, obj, ctx, chain=chain, group=group)

    monkeypatch.setattr(engine, "evaluate", broken)
    code, out, _ = run([write(tmp_path, "web.yaml", PLAIN_POD)], demo, output="json")
    assert code == 1
    assert json.loads(out)[0]["answer"]["response"]["status"] == {
        "status": "Failure", "code": 500, "reason": "InternalError",
        "message": "the mutating chain's patch does not apply: "
                   "replace operation does not apply: doc is missing path: /nope/x: missing value",
    }
