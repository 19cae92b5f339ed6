"""The CEL base environment of the API server's version: a new policy may use only the libraries of
its compatibility version (one minor below the server's own; ``environment/base.go``,
``DefaultCompatibilityVersion``), as the API server checks a ValidatingAdmissionPolicy being
created. Unset, the newest libraries there are."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook import cli, config, errors
from webhook.cel import loading, runtime
from webhook.commands import serve
from webhook.policy import files

SEMVER = "semver('1.2.3').isGreaterThan(semver('1.0.0'))"
TWO_VARIABLES = "object.spec.containers.all(i, c, i >= 0 && c.name != '')"
FORMAT = "!format.dns1123Label().validate(object.metadata.name).hasValue()"
SELECTORS = "authorizer.group('').resource('pods').fieldSelector('spec.nodeName=a').check('list').allowed() || true"
IP = "ip('10.0.0.1').family() == 4"
QUANTITY = "quantity('1Gi').isGreaterThan(quantity('1Mi'))"
LISTS = "[3, 1, 2].sort().slice(0, 1) == [1] && [[1], [2]].flatten().distinct().size() == 2"


@pytest.mark.parametrize(("kubernetes_minor", "libraries"), [(30, 29), (31, 30), (33, 32), (35, 34), (40, 34), (28, 29)])
def test_the_libraries_are_those_of_the_compatibility_version(kubernetes_minor: int, libraries: int) -> None:
    assert runtime.libraries_of(kubernetes_minor) == libraries


@pytest.mark.parametrize(("expression", "first"), [
    (LISTS, 35), (SEMVER, 34), (TWO_VARIABLES, 33), (FORMAT, 32), (SELECTORS, 32), (IP, 31), (QUANTITY, 30),
])
def test_each_library_is_there_from_the_release_after_it_shipped(expression: str, first: int) -> None:
    for minor in range(30, 37):
        problems: list[str] = []
        loading.load([files.Document("p.yaml:1", _policy(expression))], problems, kubernetes_minor=minor)
        assert (problems == []) == (minor >= first), (minor, problems)


@pytest.mark.parametrize(("expression", "error"), [
    (SEMVER, "ERROR: <input>:1:7: undeclared reference to 'semver' (in container '')\n"
             " | semver('1.2.3').isGreaterThan(semver('1.0.0'))\n | ......^\n"
             "ERROR: <input>:1:37: undeclared reference to 'semver' (in container '')\n"
             " | semver('1.2.3').isGreaterThan(semver('1.0.0'))\n | ....................................^"),
])
def test_a_library_too_new_for_the_version_is_refused_with_the_checkers_words(expression: str, error: str) -> None:
    problems: list[str] = []
    loading.load([files.Document("p.yaml:1", _policy(expression))], problems, kubernetes_minor=33)
    assert problems == [
        'p.yaml:1: ValidatingAdmissionPolicy.admissionregistration.k8s.io "p" is invalid: '
        f'spec.validations[0].expression: Invalid value: "{expression}": compilation failed: {error}']


def test_without_a_version_every_library_is_there() -> None:
    problems: list[str] = []
    loading.load([files.Document("p.yaml:1", _policy(f"{SEMVER} && {TWO_VARIABLES} && {FORMAT} && {LISTS}"))], problems)
    assert problems == []


def test_review_checks_policies_against_its_kubernetes_version(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "semver.yaml").write_text(yaml.safe_dump_all([_policy(SEMVER), _binding()]))
    pod = tmp_path / "pod.yaml"
    pod.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
                                   "spec": {"containers": [{"name": "web", "image": "nginx"}]}}))
    assert cli.main(["review", "--policies", str(policies), "--kubernetes-version", "1.34", str(pod)]) == 0
    capsys.readouterr()
    assert cli.main(["review", "--policies", str(policies), "--kubernetes-version", "1.33", str(pod)]) == 2
    assert "undeclared reference to 'semver'" in capsys.readouterr().err


def test_serve_takes_the_version_as_a_flag_or_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = serve.settings_from(cli.build_parser().parse_args(["serve", "--kubernetes-version", "1.33"]))
    assert settings.kubernetes_minor == 33
    monkeypatch.setenv("WEBHOOK_KUBERNETES_VERSION", "v1.32")
    assert serve.settings_from(cli.build_parser().parse_args(["serve"])).kubernetes_minor == 32
    assert config.ServeSettings(kubernetes_version=None).kubernetes_minor is None
    assert config.ServeSettings(kubernetes_version="v1.33.2").kubernetes_minor == 33  # as kubectl version prints it
    with pytest.raises(errors.WebhookError, match=r"--kubernetes-version \(or WEBHOOK_KUBERNETES_VERSION\)"):
        serve.settings_from(cli.build_parser().parse_args(["serve", "--kubernetes-version", "133"]))


def _policy(expression: str) -> dict[str, object]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "p"},
            "spec": {"matchConstraints": {"resourceRules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}]},
                "validations": [{"expression": expression}]}}


def _binding() -> dict[str, object]:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "p"}, "spec": {"policyName": "p", "validationActions": ["Deny"]}}


def test_issues_are_listed_by_position_as_cel_go_lists_them() -> None:
    """cel-go sorts a compilation's issues by line and column; cel-cpp reports the macro's own
    issue last."""
    problems: list[str] = []
    loading.load([files.Document("p.yaml:1", _policy(TWO_VARIABLES))], problems, kubernetes_minor=32)
    columns = [int(line.split(":")[2]) for line in problems[0].split("compilation failed: ", 1)[1].splitlines()
               if line.startswith("ERROR: ")]
    assert len(columns) > 1 and columns == sorted(columns)


def test_the_pod_security_examples_need_the_version_their_header_names() -> None:
    """Their header says "Needs Kubernetes 1.35+" (cel-go's lists library): so the versions say too."""
    from tests import test_cel_examples as examples

    documents = [files.Document(f"pss (document {i + 1})", d) for i, d in enumerate(examples.PSS_DOCUMENTS)]
    for minor, loads in ((34, False), (35, True)):
        problems: list[str] = []
        loading.load(documents, problems, kubernetes_minor=minor)
        assert (problems == []) is loads, problems[:1]
