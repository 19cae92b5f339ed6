"""``serve`` failing to start says why in one line, with the exit code that tells config (2) from
runtime (1) problems; and a second Ctrl-C during the drain exits at once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests import conftest, serve_support


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serve_support.make_certs(tmp_path_factory.mktemp("startup-certs"))


def serve(cert_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "webhook", "serve", "--cert", str(cert_dir / "tls.crt"),
               "--key", str(cert_dir / "tls.key"), *args]
    return subprocess.run(command, cwd=conftest.REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_is_one_line_and_exit_1(cert_dir: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve(cert_dir, "--port", str(port), "--workers", workers)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"error: --port {port}: 127.0.0.1:{port} is already in use; stop the other server or pick another --port")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        ("WEBHOOK_SET", "podSecurity.level=restricted",
         "error: WEBHOOK_SET: cannot read its value (a JSON list, e.g. '[\"podSecurity.level=restricted\"]')"),
        ("WEBHOOK_MAX_BODY_BYTES", "12",
         "error: invalid serve settings: --max-body-bytes (or WEBHOOK_MAX_BODY_BYTES): Input should be greater "
         "than or equal to 1024"),
    ],
)
def test_a_bad_environment_value_names_the_variable_and_exits_2(
    cert_dir: Path, variable: str, value: str, line: str
) -> None:
    result = serve(cert_dir, env={variable: value})
    assert (result.returncode, result.stderr) == (2, line + "\n")


def test_a_second_signal_during_the_drain_exits_at_once(cert_dir: Path, tmp_path: Path) -> None:
    port = serve_support.free_port()
    log = tmp_path / "serve.log"
    process = serve_support.start(cert_dir, port, "--drain-seconds", "30", log=log)
    with serve_support.reaped(process):
        serve_support.wait_ready(f"https://127.0.0.1:{port}", cert_dir, process)
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        while not any(e.get("event") == "draining" for e in serve_support.events(log)):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 128 + signal.SIGINT
        assert time.monotonic() - started < 5  # not the 30 s drain
    assert any(e.get("event") == "shutdown_forced" for e in serve_support.events(log))


def test_the_serving_line_says_which_groups_are_on_and_which_are_off(cert_dir: Path, tmp_path: Path) -> None:
    # Its own policy file: which groups the shipped files turn on may change with them.
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: admission.dev/v1alpha1\nkind: PolicyConfig\n"
                      "podSecurity: {mode: enforce}\nsecurityContext: {mode: warn}\n")
    port = serve_support.free_port()
    log = tmp_path / "serve.log"
    process = serve_support.start(cert_dir, port, log=log, policies=policy)
    with serve_support.reaped(process):
        serve_support.wait_ready(f"https://127.0.0.1:{port}", cert_dir, process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    (serving,) = [e for e in serve_support.events(log) if e["event"] == "serving"]
    assert serving["groups_on"]["pod-security"] == "enforce"
    assert serving["groups_on"]["security-context"] == "warn"
    assert sorted(serving["groups_off"]) == ["defaults", "downward-api", "rbac", "sidecars", "storage"]
    assert serving["admission_policies"] == 0


def test_a_missing_certificate_names_the_file_and_the_flag(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "webhook", "serve", "--cert", str(tmp_path / "tls.crt"),
                             "--key", str(tmp_path / "tls.key")], cwd=conftest.REPO, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == (
        f"error: {tmp_path / 'tls.crt'}: cannot read certificate file: No such file or directory (the files come "
        "from --cert/--key or WEBHOOK_CERT/WEBHOOK_KEY, --client-ca or WEBHOOK_CLIENT_CA; `make certs` creates "
        "development certificates)\n")


def test_the_image_s_interpreter_flags_change_no_answer_and_no_listing(cert_dir: Path, tmp_path: Path) -> None:
    """The image runs ``python -OO`` (no docstrings: 2 MB less per worker): its answers are the
    same as without, and ``policies`` still prints every check's description, read from source."""
    import asyncio

    import aiohttp

    from bench import reviews

    requests = [(path, body) for _, path, body in reviews.requests()]

    async def answers(base: str) -> list[tuple[int, dict[str, Any]]]:
        connector = aiohttp.TCPConnector(ssl=serve_support.client_context(cert_dir))
        async with aiohttp.ClientSession(connector=connector) as session:
            return [await serve_support.post(session, base + path, body) for path, body in requests]

    found = []
    for flags in ((), ("-OO",)):
        port = serve_support.free_port()
        process = serve_support.start(cert_dir, port, log=tmp_path / f"serve{len(flags)}.log", python_flags=flags)
        with serve_support.reaped(process):
            serve_support.wait_ready(f"https://127.0.0.1:{port}", cert_dir, process)
            found.append(asyncio.run(answers(f"https://127.0.0.1:{port}")))
    assert found[0] == found[1]
    assert any(response["response"].get("patch") for _, response in found[0])  # the mutating chain ran
    assert any(response["response"].get("warnings") for _, response in found[0])  # and the validating one

    listings = [subprocess.run([sys.executable, *flags, "-m", "webhook", "policies", "--output", "json"],
                               cwd=conftest.REPO, capture_output=True, text=True, timeout=60, check=True).stdout
                for flags in ((), ("-OO",))]
    assert listings[0] == listings[1]
    assert "Containers must set securityContext.readOnlyRootFilesystem=true." in listings[1]
