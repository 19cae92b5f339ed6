"""Hostile policy files are refused in milliseconds, naming file, line and the bound they pass:
by the loader, by the ``review`` command at startup, and by the server's reload loop, which lives on."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests import conftest
from webhook import appstate, cli, config, errors, server
from webhook.policy import files, yamlsafe

ClientFactory = Any
HEADER = "apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\n"
# 600 nested flow lists on line 4: PyYAML's recursive composer used to raise RecursionError.
DEEP = HEADER + "demoPods:\n  allowedImages: " + "[" * 600 + "]" * 600 + "\n"
# Billion laughs: nine levels of nine aliases, 9**9 leaves from about 400 bytes; *d on line 7
# (the fifth level) is the first alias to pass the budget.
BOMB = HEADER + "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)
MANIFEST = conftest.REPO / "policies" / "examples" / "privileged-pod.yaml"


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def refusal(path: Path) -> tuple[str, float]:
    """The loader's message for ``path`` (it must refuse it) and how long refusing took."""
    start = time.perf_counter()
    with pytest.raises(errors.PolicyConfigError) as caught:
        files.load([path], catalog=conftest.make_catalog())
    return str(caught.value), time.perf_counter() - start


def test_deep_nesting_is_refused_in_milliseconds_at_its_line_naming_the_depth_limit(tmp_path: Path) -> None:
    message, seconds = refusal(write(tmp_path, "a.yaml", DEEP))
    assert seconds < 0.1
    assert message.startswith(f"{tmp_path / 'a.yaml'}:4: refused: mappings and lists nest deeper than 64 levels")


def test_an_alias_bomb_is_refused_in_milliseconds_naming_the_alias_budget(tmp_path: Path) -> None:
    message, seconds = refusal(write(tmp_path, "a.yaml", BOMB))
    assert seconds < 0.1
    assert message.startswith(
        f"{tmp_path / 'a.yaml'}:7: refused: aliases in this file expand to more than 10000 nodes (the alias budget; "
        "*d passed it)"
    )


def test_the_alias_budget_is_per_file_so_many_small_documents_cannot_multiply_it(tmp_path: Path) -> None:
    # Each document alone expands to about 3,000 nodes: within budget, but not four of them.
    small_bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [" + ", ".join(["*a"] * 30) + "]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    text = "---\n".join([small_bomb] * 4)
    message, _ = refusal(write(tmp_path, "a.yaml", text))
    assert ": refused: aliases in this file expand to more than 10000 nodes" in message


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    message, _ = refusal(write(tmp_path, "a.yaml", HEADER + "demoPods:\n  allowedImages: &loop [a, *loop]\n"))
    assert f"{tmp_path / 'a.yaml'}:4: refused: alias *loop refers to a mapping or list that contains it" in message


def test_a_file_over_one_mebibyte_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    comment = "# " + "x" * 1021 + "\n"  # 1 KiB a line: the 1,048,577th byte is on line 1027
    path = write(tmp_path, "a.yaml", HEADER + "demoPods: {}\n" + comment * 4096)
    message, seconds = refusal(path)
    assert seconds < 0.1
    assert message.startswith(
        f"{path}:1027: refused: file is larger than 1 MiB (1048576 bytes), the limit for one policy file"
    )


def test_a_file_of_exactly_one_mebibyte_still_loads(tmp_path: Path) -> None:
    head = HEADER + "demoPods: {}\n"
    path = write(tmp_path, "a.yaml", head + "#" * (yamlsafe.MAX_FILE_BYTES - len(head) - 1) + "\n")
    assert path.stat().st_size == yamlsafe.MAX_FILE_BYTES
    assert files.load([path], catalog=conftest.make_catalog()).groups["demo-pods"].mode == "enforce"


def test_ordinary_anchors_aliases_and_merges_still_load(tmp_path: Path) -> None:
    write(
        tmp_path,
        "a.yaml",
        HEADER
        + "demoLabels:\n  labels: &team {team: core}\n"
        + "demoPods: &strict\n  mode: enforce\n  scope:\n    namespaceSelector:\n      matchLabels: *team\n"
        + "  exemptions:\n    users: &admins [alice, bob]\n"
        + "demoRoles:\n  <<: *strict\n  mode: warn\n  exemptions:\n    users: *admins\n",
    )
    config = files.load([tmp_path], catalog=conftest.make_catalog())
    pods, roles = config.groups["demo-pods"], config.groups["demo-roles"]
    assert config.groups["demo-labels"].labels == {"team": "core"}
    assert pods.scope.namespaceSelector is not None and pods.scope.namespaceSelector.matchLabels == {"team": "core"}
    assert roles.mode == "warn" and roles.exemptions.users == ("alice", "bob")
    assert roles.scope.namespaceSelector == pods.scope.namespaceSelector  # from the merge


def test_a_bad_value_beside_a_merge_is_named_at_its_own_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "a.yaml", HEADER + "demoPods: &base\n  mode: warn\ndemoRoles:\n  <<: *base\n  mode: loud\n"
    )
    message, _ = refusal(path)
    assert f"{path}:7: demoRoles.mode: Input should be" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1" * 5000, "a.yaml:4: invalid YAML: cannot read this value as int: Exceeds the limit (4300 digits)"),
        ("2024-13-45", "a.yaml:4: invalid YAML: cannot read this value as timestamp: month must be in 1..12"),
    ],
)
def test_values_python_cannot_build_are_named_at_their_line(tmp_path: Path, value: str, expected: str) -> None:
    message, _ = refusal(write(tmp_path, "a.yaml", HEADER + f"demoPods:\n  mode: {value}\n"))
    assert expected in message


def test_any_other_failure_while_parsing_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(text: str) -> list[tuple[Any, Any]]:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(yamlsafe, "load_all", explode)
    message, _ = refusal(write(tmp_path, "a.yaml", HEADER))
    assert message == f"{tmp_path / 'a.yaml'}: cannot parse: RecursionError: maximum recursion depth exceeded"


def test_set_values_are_bounded_too(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", HEADER + "demoPods: {}\n")
    override = "demoPods.allowedImages=" + "[" * 600 + "]" * 600
    with pytest.raises(errors.PolicyConfigError, match="value is not valid YAML: mappings and lists nest deeper than 64"):
        files.load([tmp_path], overrides=[override], catalog=conftest.make_catalog())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DEEP, "a.yaml:4: refused: mappings and lists nest deeper than 64 levels"),
        (BOMB, "a.yaml:7: refused: aliases in this file expand to more than 10000 nodes"),
        (HEADER + "a: &loop [*loop]\n", "a.yaml:3: refused: alias *loop refers to a mapping or list that contains it"),
    ],
)
def test_the_pure_python_parser_keeps_the_same_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    monkeypatch.setattr(yamlsafe, "_LIBYAML", False)  # PyYAML built without libyaml
    message, seconds = refusal(write(tmp_path, "a.yaml", text))
    assert expected in message
    assert seconds < 1  # slower than libyaml (about 80 ms for DEEP), still bounded


# --- at startup: the review command ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "line", "bound"), [(DEEP, 4, "64 levels"), (BOMB, 7, "alias budget")])
def test_review_exits_2_naming_the_file_line_and_bound(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, bound: str
) -> None:
    bad = write(tmp_path / "policies", "p.yaml", text)
    assert cli.main(["review", "--policies", str(bad.parent), str(MANIFEST)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: policy files: {bad}:{line}: refused: ")
    assert bound in err


def test_python_m_webhook_review_exits_2_without_a_traceback(tmp_path: Path) -> None:
    bad = write(tmp_path / "policies", "p.yaml", DEEP)
    done = subprocess.run(
        [sys.executable, "-m", "webhook", "review", "--policies", str(bad.parent), str(MANIFEST)],
        cwd=conftest.REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode == 2
    assert f"{bad}:4: refused: mappings and lists nest deeper than 64 levels" in done.stderr
    assert "Traceback" not in done.stderr


# --- while serving: the reload loop ---------------------------------------------------------------


async def test_the_reload_loop_refuses_hostile_files_and_lives_on(aiohttp_client: ClientFactory, tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    for source in sorted((conftest.REPO / "policies").glob("*.yaml")):
        shutil.copy(source, policies)
    target = policies / "10-pod-security.yaml"
    original = target.read_text()
    app = server.build_app(config.ServeSettings(policies=(policies,), reload_interval=0.05))
    client = await aiohttp_client(app)

    async def reload_error(expected: str | None) -> str | None:
        """Poll /readyz for a second until the reload error contains ``expected`` (is null for None)."""
        for _ in range(50):
            body = await (await client.get("/readyz")).json()
            error: str | None = body["policies"]["reloadError"]
            if (error is None) if expected is None else (error is not None and expected in error):
                return error
            await asyncio.sleep(0.02)
        raise AssertionError(f"reloadError is still {error!r}")

    async def config_valid() -> str:
        text: str = await (await client.get("/metrics")).text()
        return next(line for line in text.splitlines() if line.startswith("admission_policy_config_valid "))

    assert await reload_error(None) is None

    target.write_text(HEADER + "podSecurity:\n  level: " + "[" * 600 + "]" * 600 + "\n")
    error = await reload_error(f"{target}:4: refused")
    assert error is not None and "deeper than 64 levels" in error
    assert await config_valid() == "admission_policy_config_valid 0.0"
    assert app[appstate.POLICIES].current.config.sources[0] == str(target)  # still the previous set

    # Liveness keeps answering while the bomb is read and refused in the reload thread.
    target.write_text(BOMB)
    slowest = 0.0
    for _ in range(20):
        start = time.perf_counter()
        assert (await client.get("/healthz")).status == 200
        slowest = max(slowest, time.perf_counter() - start)
        await asyncio.sleep(0.01)
    assert slowest < 0.1
    error = await reload_error(f"{target}:7: refused")
    assert error is not None and "alias budget" in error

    target.write_text(original)
    assert await reload_error(None) is None
    assert await config_valid() == "admission_policy_config_valid 1.0"
