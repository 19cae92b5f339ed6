"""The Dockerfile and .dockerignore, read as Docker reads them (no Docker engine runs here)."""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from pathlib import Path

import pytest

from webhook import cli

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Instruction:
    stage: int
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        value = json.loads(self.args)
        assert isinstance(value, list), f"{self.keyword} must use the exec (JSON) form"
        return value


def parse(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped; ``stage`` counts FROMs."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword.upper(), args.strip()))
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse((REPO / "Dockerfile").read_text())


def in_stage(instructions: list[Instruction], stage: int, keyword: str) -> list[Instruction]:
    return [i for i in instructions if i.stage == stage and i.keyword == keyword]


def test_two_stages_on_python_3_11_slim_the_first_building_wheels(dockerfile: list[Instruction]) -> None:
    froms = [i.args for i in dockerfile if i.keyword == "FROM"]
    assert froms == ["python:3.11-slim AS builder", "python:3.11-slim AS runtime"]
    compiler, tools, build = in_stage(dockerfile, 0, "RUN")
    assert "apt-get install -y --no-install-recommends gcc libc6-dev" in compiler.args
    assert compiler.args.endswith("rm -rf /var/lib/apt/lists/*")
    assert "mypy>=1.10" in tools.args  # mypyc
    assert "types-PyYAML" in tools.args  # without the stubs mypyc's strict check refuses webhook.policy.yamlsafe
    # The wheel of the package is the compiled one (setup.py's modules through mypyc).
    assert build.args.endswith("WEBHOOK_COMPILE=1 pip wheel --no-cache-dir --no-build-isolation --wheel-dir /wheels .")


def test_the_runtime_installs_only_the_built_wheels_without_caches_or_compilers(
    dockerfile: list[Instruction],
) -> None:
    name = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    (install,) = in_stage(dockerfile, 1, "RUN")
    assert "--mount=type=bind,from=builder,source=/wheels,target=/wheels" in install.args
    assert install.args.endswith(f"pip install --no-cache-dir --no-index --find-links=/wheels {name}")
    runtime_text = " ".join(i.args for i in dockerfile if i.stage == 1).lower()
    for forbidden in ("apt-get", "gcc", "build-essential", "apk ", "/wheels /wheels"):
        assert forbidden not in runtime_text
    assert in_stage(dockerfile, 1, "COPY") == []  # the default policies come inside the wheel
    assert [i.args for i in in_stage(dockerfile, 0, "COPY")] == [
        "pyproject.toml setup.py README.md ./", "policies ./policies", "webhook ./webhook"]
    env = " ".join(i.args for i in in_stage(dockerfile, 1, "ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env


def test_the_image_runs_as_a_numeric_non_root_user(dockerfile: list[Instruction]) -> None:
    users = in_stage(dockerfile, 1, "USER")
    assert [u.args for u in users] == ["10001:10001"]
    uid = int(users[-1].args.split(":")[0])
    assert uid != 0
    positions = [i.keyword for i in dockerfile if i.stage == 1]
    assert positions.index("USER") > max(n for n, k in enumerate(positions) if k in ("RUN", "COPY"))


def test_it_serves_on_all_interfaces_on_8443_through_the_cli(dockerfile: list[Instruction]) -> None:
    (entrypoint,) = in_stage(dockerfile, 1, "ENTRYPOINT")
    (cmd,) = in_stage(dockerfile, 1, "CMD")
    assert entrypoint.exec_form() == ["python", "-OO", "-m", "webhook"]  # see test_serve_startup for -OO
    assert cmd.exec_form() == ["serve", "--host", "0.0.0.0"]
    assert [e.args for e in in_stage(dockerfile, 1, "EXPOSE")] == ["8443"]
    args = cli.build_parser().parse_args(cmd.exec_form())
    assert (args.command, args.host) == ("serve", "0.0.0.0")
    assert not in_stage(dockerfile, 1, "HEALTHCHECK")  # the kubelet's probes do this job


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders decides."""

    def regex(pattern: str) -> re.Pattern[str]:
        out = ""
        index = 0
        while index < len(pattern):
            if pattern.startswith("**/", index):
                out, index = out + "(?:.*/)?", index + 3
            elif pattern.startswith("**", index):
                out, index = out + ".*", index + 2
            elif pattern[index] == "*":
                out, index = out + "[^/]*", index + 1
            elif pattern[index] == "?":
                out, index = out + "[^/]", index + 1
            elif pattern[index] == "[":
                end = pattern.index("]", index)
                out, index = out + pattern[index : end + 1], end + 1
            else:
                out, index = out + re.escape(pattern[index]), index + 1
        return re.compile(out + r"\Z")

    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        if any(regex(pattern.strip("/")).match(c) for c in candidates):
            result = not negate
    return result


@pytest.mark.parametrize(
    ("path", "excluded"),
    [
        (".venv/bin/python", True),
        (".git/config", True),
        ("certs/tls.key", True),
        ("certs/ca.key", True),
        ("deploy/components/static-certs/certs/tls.key", True),
        ("tests/test_certs.py", True),
        (".pytest_cache/v/cache/nodeids", True),
        ("webhook/__pycache__/cli.cpython-311.pyc", True),
        ("webhook/.mypy_cache/3.11/x.json", True),
        ("webhook/cli.py", False),
        ("webhook/policy/registry.py", False),
        ("pyproject.toml", False),
        ("setup.py", False),
        ("webhook/engine.cpython-311-x86_64-linux-gnu.so", True),  # a checkout's `make compile`
        ("11852869efad32cecc4c__mypyc.cpython-311-x86_64-linux-gnu.so", True),
        ("webhook/.compiled", True),
        ("README.md", False),
        ("policies/10-pod-security.yaml", False),
    ],
)
def test_dockerignore_sends_only_the_sources_the_build_needs(path: str, excluded: bool) -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ignored(path, patterns) is excluded


def test_everything_the_dockerfile_copies_is_in_the_build_context(dockerfile: list[Instruction]) -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for copy in (i for i in dockerfile if i.keyword == "COPY" and "--from" not in i.args):
        for source in copy.args.split()[:-1]:
            assert not ignored(source.rstrip("/"), patterns), f"COPY {source} is excluded by .dockerignore"
