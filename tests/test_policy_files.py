"""Policy files: merging, strict validation with file/line/path errors, --set overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import conftest
from webhook import errors
from webhook.policy import files

REPO = conftest.REPO

HEADER = "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\n"


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body)
    return path


def load(tmp_path: Path, *, overrides: tuple[str, ...] = ()) -> files.PolicyConfig:
    return files.load([tmp_path], overrides=overrides, catalog=conftest.make_catalog())


def test_later_files_override_earlier_ones_key_by_key(tmp_path: Path) -> None:
    write(
        tmp_path,
        "10-base.yaml",
        "demoPods:\n  mode: enforce\n  allowedImages: [a, b]\n  exemptions:\n    users: [root]\n",
    )
    write(tmp_path, "20-team.yaml", "demoPods:\n  allowedImages: [c]\n  exemptions:\n    groups: [admins]\n")
    config = load(tmp_path)
    demo = config.groups["demo-pods"]
    assert demo.mode == "enforce"
    assert demo.allowedImages == ("c",)  # lists are replaced
    assert demo.exemptions.users == ("root",) and demo.exemptions.groups == ("admins",)  # maps merge
    assert config.sources == (str(tmp_path / "10-base.yaml"), str(tmp_path / "20-team.yaml"))


def test_groups_no_file_mentions_are_off(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "demoPods: {}\n")
    config = load(tmp_path)
    assert config.groups["demo-pods"].mode == "enforce"
    assert config.groups["demo-roles"].mode == "off"


def test_hidden_entries_of_a_configmap_mount_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "demoPods: {}\n")
    (tmp_path / "..data").mkdir()
    (tmp_path / "..data" / "b.yaml").write_text("garbage: [")
    (tmp_path / ".hidden.yaml").write_text("garbage: [")
    assert load(tmp_path).groups["demo-pods"].mode == "enforce"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "demoPods:\n  mode: block\n",
            "a.yaml:4: demoPods.mode: Input should be 'enforce', 'warn', 'audit' or 'off'",
        ),
        ("demoPods:\n  mod: warn\n", "a.yaml:4: demoPods.mod: unknown setting"),
        (
            "demoPod:\n  mode: warn\n",
            "a.yaml:3: unknown section 'demoPod' (known: demoLabels, demoPods, demoRoles)",
        ),
        (
            "demoPods:\n  scope:\n    namespaceSelector:\n      matchExpressions:\n        - {key: a, operator: In}\n",
            "a.yaml:7: demoPods.scope.namespaceSelector.matchExpressions.0: Value error, operator In needs at least one value",
        ),
        ("demoPods: [1\n", "a.yaml:4: invalid YAML"),
    ],
)
def test_bad_files_name_file_line_path_and_problem(tmp_path: Path, body: str, expected: str) -> None:
    write(tmp_path, "a.yaml", body)
    with pytest.raises(errors.PolicyConfigError) as caught:
        load(tmp_path)
    assert expected in str(caught.value)
    assert str(tmp_path / "a.yaml") in str(caught.value)


def test_wrong_api_version_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\ndemoPods: {}\n")
    with pytest.raises(
        errors.PolicyConfigError,
        match="apiVersion/kind must be admission.dev/v1alpha1/PolicyConfig, got 'v1'/'ConfigMap'",
    ):
        load(tmp_path)


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(errors.PolicyConfigError, match="no such policy file or directory"):
        files.load([tmp_path / "nope"], catalog=conftest.make_catalog())


def test_set_overrides_any_dotted_path_with_yaml_values(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "demoPods:\n  mode: enforce\n")
    config = load(
        tmp_path,
        overrides=("demoPods.mode=warn", "demoPods.allowedImages=[x, y]", "demoRoles.exemptions.users=[bob]"),
    )
    assert config.groups["demo-pods"].mode == "warn"
    assert config.groups["demo-pods"].allowedImages == ("x", "y")
    assert config.groups["demo-roles"].exemptions.users == ("bob",)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("demoPods.mode", "expected dotted.path=value"),
        ("nope.mode=warn", "unknown section 'nope'"),
        ("demoPods.mode=loud", "--set 'demoPods.mode=loud': demoPods.mode: Input should be"),
    ],
)
def test_bad_overrides_are_named(tmp_path: Path, override: str, expected: str) -> None:
    write(tmp_path, "a.yaml", "demoPods: {}\n")
    with pytest.raises(errors.PolicyConfigError, match=expected.replace("(", r"\(").replace(".", r"\.")):
        load(tmp_path, overrides=(override,))


def test_set_reaches_policy_ids_with_dots_through_brackets(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", "demoPods: {}\n")
    config = load(tmp_path, overrides=("demoPods.policies[demo-pods.privileged].mode=warn",))
    override = config.groups["demo-pods"].policies["demo-pods.privileged"]
    assert override.mode == "warn"


@pytest.mark.parametrize(
    ("path", "keys"),
    [
        ("a.b.c", ["a", "b", "c"]),
        ("a.policies[x.y].mode", ["a", "policies", "x.y", "mode"]),
        ("a.policies[x.y]", ["a", "policies", "x.y"]),
        ("a..b", ["a", "", "b"]),
        ("a.b[unclosed", []),
    ],
)
def test_override_paths_split_on_dots_outside_brackets(path: str, keys: list[str]) -> None:
    assert files._split_path(path) == keys


def test_a_misspelt_policy_id_is_an_error_with_the_closest_ids(tmp_path: Path) -> None:
    from webhook import catalog

    (tmp_path / "a.yaml").write_text(
        "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\nrbac:\n  mode: enforce\n  policies:\n"
        "    rbac.wildcard: {mode: 'off'}\n")
    with pytest.raises(errors.PolicyConfigError) as caught:
        files.load([tmp_path], catalog=catalog.REGISTRY)
    assert str(caught.value) == (
        f"{tmp_path / 'a.yaml'}:6: rbac.policies: unknown policy id 'rbac.wildcard' in group 'rbac' "
        "(did you mean 'rbac.wildcards'?)")
    with pytest.raises(errors.PolicyConfigError) as caught:
        files.load([REPO / "policies"], overrides=["rbac.policies[rbac.wildcard].mode=off"], catalog=catalog.REGISTRY)
    assert str(caught.value) == (
        "--set 'rbac.policies[rbac.wildcard].mode=off': rbac.policies: unknown policy id 'rbac.wildcard' in "
        "group 'rbac' (did you mean 'rbac.wildcards'?)")


def test_a_file_may_refer_to_what_another_file_defines(tmp_path: Path) -> None:
    from webhook import catalog

    shipped = REPO / "policies" / "60-sidecars.yaml"
    team = tmp_path / "70-team.yaml"
    team.write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\nsidecars:\n"
                    "  defaultSidecars: [log-shipper]\n")
    config = files.load([shipped, team], catalog=catalog.REGISTRY)
    assert list(config.groups["sidecars"].defaultSidecars) == ["log-shipper"]  # type: ignore[attr-defined]
    # Alone, the same file is invalid, and the error names its line.
    with pytest.raises(errors.PolicyConfigError) as caught:
        files.load([team], catalog=catalog.REGISTRY)
    assert str(caught.value) == f"{team}:3: sidecars: Value error, defaultSidecars names undefined sidecars: log-shipper"
