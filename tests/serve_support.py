"""Helpers for tests that run the real server over TLS: certificates, ports, a server in this loop
(:func:`serving`) or in a subprocess (:func:`start`), and an HTTPS client trusting the test CA."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tests import conftest
from webhook import certs, config, deadlines, runner

POLICIES = conftest.REPO / "policies"


def make_certs(out: Path) -> Path:
    certs.ensure(out, service="webhook", namespace="test", hosts=["localhost"], ips=["127.0.0.1"])
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def client_context(cert_dir: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert_dir / "ca.crt"))


def settings(cert_dir: Path, **overrides: Any) -> config.ServeSettings:
    overrides.setdefault("drain_seconds", 0)
    return config.ServeSettings(
        port=overrides.pop("port", None) or free_port(), cert=cert_dir / "tls.crt", key=cert_dir / "tls.key",
        policies=(POLICIES,), **overrides,
    )


@contextlib.asynccontextmanager
async def serving(
    serve_settings: config.ServeSettings, *, timeouts: deadlines.Timeouts | None = None
) -> AsyncIterator[str]:
    """Run :func:`webhook.runner.serve` in this loop; yields the base URL; stops (and drains) on exit."""
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(runner.serve(serve_settings, ready=ready, stop=stop, timeouts=timeouts))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # raises what serve raised
    try:
        yield f"https://127.0.0.1:{serve_settings.port}"
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def review_body(name: str = "web", **kwargs: Any) -> bytes:
    return orjson.dumps(conftest.admission_review(conftest.pod(name), **kwargs))


# --- subprocesses ---------------------------------------------------------------------------------


def start(
    cert_dir: Path, port: int, *args: str, log: Path, policies: Path = POLICIES, python_flags: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """``python -m webhook serve`` on ``port`` with the default policies (or ``policies``); logs (JSON)
    to ``log``. ``python_flags`` go to the interpreter (the image runs it with ``-OO``)."""
    command = [
        sys.executable, *python_flags, "-m", "webhook", "serve", "--port", str(port), "--cert", str(cert_dir / "tls.crt"),
        "--key", str(cert_dir / "tls.key"), "--policies", str(policies), "--log-format", "json", *args,
    ]
    # Append mode: the supervisor and its workers share this file, and only O_APPEND makes each
    # process's line land at the end instead of over another's.
    with log.open("ab") as sink:
        return subprocess.Popen(command, cwd=conftest.REPO, stdout=sink, stderr=sink)


def wait_ready(base: str, cert_dir: Path, process: subprocess.Popen[bytes], *, timeout: float = 20.0) -> None:
    import urllib.request

    context = client_context(cert_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode} before it was ready")
        with contextlib.suppress(OSError), urllib.request.urlopen(
            f"{base}/readyz", context=context, timeout=1
        ) as response:
            if response.status == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"{base}/readyz not ready within {timeout}s")


def events(log: Path) -> list[dict[str, Any]]:
    """The JSON log lines written so far (partial last lines skipped)."""
    found = []
    for line in log.read_bytes().splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):
            found.append(orjson.loads(line))
    return found


@contextlib.contextmanager
def reaped(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Never leave a server behind, whatever the test did."""
    try:
        yield process
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
        return response.status, orjson.loads(await response.read())
