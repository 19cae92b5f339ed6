"""Graceful shutdown of a real ``python -m webhook serve``: SIGTERM under load.

Kubernetes sends SIGTERM and removes the Pod from the Service's endpoints at the same time, but
the API server keeps calling it until the removal propagates. So /readyz must fail at once, every
review sent during the drain must still be answered, and the process must exit 0.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import signal
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests import serve_support

DRAIN = 2.0
CLIENTS = 4
IN_TRANSIT = 0.01
"""Seconds a request may spend between the client's send and the server's read on loopback. A
request sent within this margin of the drain's end may meet the closing listener (the race every
HTTP/1.1 server has at shutdown); those sent earlier must all be answered."""


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serve_support.make_certs(tmp_path_factory.mktemp("shutdown-certs"))


async def test_sigterm_fails_readyz_at_once_drains_without_failures_and_exits_0(
    cert_dir: Path, tmp_path: Path
) -> None:
    port = serve_support.free_port()
    base = f"https://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    process = serve_support.start(cert_dir, port, "--drain-seconds", str(DRAIN), log=log)
    with serve_support.reaped(process):
        await asyncio.to_thread(serve_support.wait_ready, base, cert_dir, process)
        sent: list[tuple[float, int | str, str]] = []  # (sent at, status or error, Connection header)
        stop_at = float("inf")

        async def client(index: int, session: aiohttp.ClientSession) -> None:
            n = 0
            while time.time() < stop_at:
                body = serve_support.review_body(uid=f"c{index}-{n}")
                started = time.time()
                try:
                    async with session.post(f"{base}/validate?timeout=10s", data=body,
                                            headers={"Content-Type": "application/json"}) as response:
                        answer = orjson.loads(await response.read())
                        ok = response.status == 200 and answer["response"]["uid"] == f"c{index}-{n}"
                        sent.append((started, response.status if ok else f"bad answer {answer}",
                                     response.headers.get("Connection", "")))
                except (aiohttp.ClientError, OSError) as exc:
                    sent.append((started, type(exc).__name__, ""))
                    await asyncio.sleep(0.01)
                n += 1

        connector = aiohttp.TCPConnector(ssl=serve_support.client_context(cert_dir), limit=CLIENTS)
        async with aiohttp.ClientSession(connector=connector) as session:
            load = [asyncio.create_task(client(i, session)) for i in range(CLIENTS)]
            await asyncio.sleep(0.5)
            os.kill(process.pid, signal.SIGTERM)
            signalled = time.time()
            drain_end = signalled + DRAIN
            stop_at = drain_end + 0.5  # keep sending a little past the drain: those may fail
            await asyncio.sleep(0.2)
            async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=serve_support.client_context(cert_dir))
            ) as probe, probe.get(f"{base}/readyz") as ready:
                readyz = ready.status, orjson.loads(await ready.read())
            await asyncio.gather(*load)
        exit_code = await asyncio.to_thread(process.wait, 15)
        exited = time.time() - signalled

    logged = {e["event"]: e for e in serve_support.events(log)}
    drain_over = datetime.datetime.fromisoformat(logged["drain_over"]["timestamp"]).timestamp()
    assert drain_over >= drain_end - 0.05
    before_drain_end = [(at, status) for at, status, _ in sent if at < drain_over - IN_TRANSIT]
    failed = [(round(at - signalled, 3), status) for at, status in before_drain_end if status != 200]
    during_drain = [s for s in sent if signalled + 0.3 < s[0] < drain_over - IN_TRANSIT]
    assert readyz[0] == 503
    assert readyz[1]["status"] == "not ready"
    assert readyz[1]["problems"] == ["draining: shutting down"]
    assert failed == []
    assert len(before_drain_end) > 50
    assert len(during_drain) > 20, "the load must keep running through the drain"
    # During the drain every answer asks the client to reconnect (through the Service, elsewhere).
    assert {connection.lower() for _, _, connection in during_drain} == {"close"}
    assert exit_code == 0
    assert DRAIN <= exited < DRAIN + 5
    names = [e["event"] for e in serve_support.events(log) if e["event"] in ("serving", "draining", "drain_over",
                                                                           "stopped")]
    assert names == ["serving", "draining", "drain_over", "stopped"]
