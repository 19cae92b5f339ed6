"""Soak (``make soak``, minutes): mixed load on a real ``python -m webhook serve`` while the policy
files are rewritten and the serving certificate is rotated underneath it. No request may fail and
resident memory must stay flat once warmed up.

``SOAK_SECONDS`` sets the length (default 180).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from bench import reviews
from tests import serve_support
from webhook import certs

SECONDS = float(os.environ.get("SOAK_SECONDS", "180"))
CLIENTS = 8
RELOAD_EVERY = 15.0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _rotate_certificate(cert_dir: Path) -> None:
    """A new serving certificate from the same CA, written the way ``webhook certs`` writes it."""
    (cert_dir / "tls.crt").unlink()
    (cert_dir / "tls.key").unlink()
    certs.ensure(cert_dir, service="webhook", namespace="test", hosts=["localhost"], ips=["127.0.0.1"])


@pytest.mark.slow
async def test_soak_with_reloads_and_rotation_fails_nothing_and_keeps_memory_flat(tmp_path: Path) -> None:
    cert_dir = serve_support.make_certs(tmp_path / "certs")
    policies = tmp_path / "policies"
    shutil.copytree(serve_support.POLICIES, policies)
    defaults = policies / "50-defaults.yaml"
    original_defaults = defaults.read_text()
    port = serve_support.free_port()
    base = f"https://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    process = serve_support.start(cert_dir, port, "--policies", str(policies), "--reload-interval", "0.5",
                                  "--drain-seconds", "0", log=log)
    requests = reviews.requests()
    outcomes: dict[str, int] = {}
    failures: list[str] = []
    samples: list[tuple[float, float]] = []
    serials: set[str] = set()
    with serve_support.reaped(process):
        await asyncio.to_thread(serve_support.wait_ready, base, cert_dir, process)
        start = time.monotonic()
        end = start + SECONDS

        async def client(index: int) -> None:
            # A fresh session now and then: new connections see the rotated certificate.
            n = index
            while time.monotonic() < end:
                connector = aiohttp.TCPConnector(ssl=serve_support.client_context(cert_dir))
                async with aiohttp.ClientSession(connector=connector) as session:
                    for _ in range(200):
                        if time.monotonic() >= end:
                            break
                        label, path, body = requests[n % len(requests)]
                        n += 1
                        try:
                            status, answer = await serve_support.post(session, base + path, body)
                        except (aiohttp.ClientError, OSError) as exc:
                            failures.append(f"{label}: {type(exc).__name__}: {exc}")
                            continue
                        if status != 200 or answer["response"]["uid"] != orjson.loads(body)["request"]["uid"]:
                            failures.append(f"{label}: {status} {answer}")
                        outcomes[label] = outcomes.get(label, 0) + 1

        async def churn() -> None:
            flip = False
            next_reload = start + RELOAD_EVERY
            rotated = False
            while time.monotonic() < end:
                samples.append((time.monotonic() - start, _rss_mb(process.pid)))
                now = time.monotonic()
                if now >= next_reload:
                    flip = not flip
                    defaults.write_text(original_defaults.replace(
                        "labels: {}", "labels: {soak: run}" if flip else "labels: {}"))
                    next_reload = now + RELOAD_EVERY
                if not rotated and now >= start + SECONDS / 2:
                    _rotate_certificate(cert_dir)
                    rotated = True
                await asyncio.sleep(1.0)

        await asyncio.gather(churn(), *(client(i) for i in range(CLIENTS)))
        events = serve_support.events(log)
        serials = {e["serial"] for e in events if e["event"] == "certificate_reloaded" and "serial" in e}
    assert failures == []
    assert sum(outcomes.values()) > SECONDS * 50
    reloads = [e for e in events if e["event"] == "policy_reloaded"]
    assert len(reloads) >= int(SECONDS / RELOAD_EVERY) - 1
    assert len(serials) == 1, "the certificate was rotated once and picked up"
    # Flat memory: after the first fifth (imports, caches, allocator arenas warmed up), RSS may
    # wander by allocator noise but not grow with the number of requests served.
    warm = [rss for at, rss in samples if at >= SECONDS / 5]
    assert max(warm) - warm[0] < 15, f"RSS grew from {warm[0]:.1f} to {max(warm):.1f} MB"
