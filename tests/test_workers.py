"""``serve --workers 2``: two processes share the port, a dead worker is replaced, SIGTERM ends all;
to the outside they are one server: one set of metrics, start-up lines once, whole log lines."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests import serve_support
from webhook import config, errors, logs, runner


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serve_support.make_certs(tmp_path_factory.mktemp("workers-certs"))


def _started(log: Path) -> list[dict[str, Any]]:
    return [e for e in serve_support.events(log) if e["event"] == "worker_started"]


async def _wait_for(predicate: Any, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _answered(base: str, cert_dir: Path, count: int) -> list[int]:
    """Statuses of ``count`` reviews, each on a new connection (the kernel picks a worker per connection)."""
    statuses = []
    for n in range(count):
        connector = aiohttp.TCPConnector(ssl=serve_support.client_context(cert_dir), force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            status, body = await serve_support.post(session, f"{base}/validate", serve_support.review_body(uid=f"w{n}"))
            statuses.append(status if body["response"]["uid"] == f"w{n}" else -1)
    return statuses


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        # A zombie still answers kill(0); its state in /proc says it is gone.
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (FileNotFoundError, ProcessLookupError):  # reaped in between
        return False
    return state != "Z"


def _listening_pids(port: int, candidates: set[int]) -> set[int]:
    """Which of ``candidates`` hold a socket listening on ``port`` (read from /proc, not the logs)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
            inodes.add(f"socket:[{fields[9]}]")
    holders = set()
    for pid in candidates:
        try:
            links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
        except (FileNotFoundError, ProcessLookupError):
            continue
        if links & inodes:
            holders.add(pid)
    return holders


async def test_workers_share_the_port_are_restarted_and_stop_on_sigterm(cert_dir: Path, tmp_path: Path) -> None:
    port = serve_support.free_port()
    base = f"https://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    process = serve_support.start(cert_dir, port, "--workers", "2", "--drain-seconds", "0.5", log=log)
    with serve_support.reaped(process):
        await asyncio.to_thread(serve_support.wait_ready, base, cert_dir, process)
        first = {e["slot"]: e["pid"] for e in _started(log)}
        assert sorted(first) == [0, 1]
        assert process.pid not in first.values()
        # Each worker holds its own listening socket on the one port (SO_REUSEPORT).
        await _wait_for(lambda: _listening_pids(port, set(first.values())) == set(first.values()))

        # Kill one: once its socket is gone the kernel sends every new connection to the other.
        # (Connections already queued on the dying worker's socket are reset: the API server
        # applies the failurePolicy to those few, as for any crash.)
        os.kill(first[0], signal.SIGKILL)
        await _wait_for(lambda: not _alive(first[0]) and _listening_pids(port, {first[0]}) == set())
        assert await _answered(base, cert_dir, 10) == [200] * 10

        # The supervisor starts a replacement in the same slot, listening on the same port.
        await _wait_for(lambda: len(_started(log)) == 3)
        replacement = _started(log)[-1]
        assert replacement["slot"] == 0
        assert replacement["pid"] != first[0]
        died = [e for e in serve_support.events(log) if e["event"] == "worker_died"]
        assert [(e["slot"], e["pid"], e["exitcode"]) for e in died] == [(0, first[0], -signal.SIGKILL)]
        both = {replacement["pid"], first[1]}
        await _wait_for(lambda: _listening_pids(port, both) == both)
        assert await _answered(base, cert_dir, 10) == [200] * 10

        os.kill(process.pid, signal.SIGTERM)
        exit_code = await asyncio.to_thread(process.wait, 20)
    assert exit_code == 0
    assert not _alive(replacement["pid"])
    assert not _alive(first[1])
    stopped = [e for e in serve_support.events(log) if e["event"] == "stopped" and "exit_codes" in e]
    assert stopped[-1]["exit_codes"] == [0, 0]


def test_workers_need_a_fixed_port(cert_dir: Path) -> None:
    settings = config.ServeSettings(port=0, workers=2, cert=cert_dir / "tls.crt", key=cert_dir / "tls.key")
    with pytest.raises(errors.WebhookError, match="--workers needs a fixed --port"):
        runner.Supervisor(settings)


async def test_a_port_another_program_holds_stops_the_supervisor_before_forking(cert_dir: Path, tmp_path: Path) -> None:
    port = serve_support.free_port()
    log = tmp_path / "serve.log"
    with socket.socket() as squatter:  # a listener without SO_REUSEPORT: no worker can share it
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        process = serve_support.start(cert_dir, port, "--workers", "2", log=log)
        with serve_support.reaped(process):
            exit_code = await asyncio.to_thread(process.wait, 20)
    assert exit_code == 1
    assert log.read_text().splitlines()[-1] == (
        f"error: --port {port}: 127.0.0.1:{port} is already in use; stop the other server or pick another --port")
    assert not [e for e in serve_support.events(log) if e["event"] == "worker_started"]


async def test_a_bad_certificate_is_reported_once_before_forking(cert_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.crt"
    broken.write_text("not a certificate\n")
    log = tmp_path / "serve.log"
    process = serve_support.start(cert_dir, serve_support.free_port(), "--workers", "2", "--cert", str(broken), log=log)
    with serve_support.reaped(process):
        exit_code = await asyncio.to_thread(process.wait, 20)
    assert exit_code == 2
    assert log.read_text().startswith(f"error: {broken}: ")
    assert not [e for e in serve_support.events(log) if e["event"] == "worker_started"]


# --- one server to the outside: metrics, start-up lines, whole log lines --------------------------


def _requests_total(text: str) -> float:
    """The sum of every ``admission_requests_total`` series in a scrape."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("admission_requests_total{"))


async def _scrape(base: str, cert_dir: Path) -> str:
    """``/metrics`` on a new connection, so each scrape may reach either worker, as Prometheus's would."""
    connector = aiohttp.TCPConnector(ssl=serve_support.client_context(cert_dir), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session, session.get(f"{base}/metrics") as response:
        assert response.status == 200
        return await response.text()


@pytest.fixture
def no_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The server started by the test finds no cluster credentials, whatever this machine has."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))


@pytest.mark.usefixtures("no_cluster")
async def test_workers_report_one_set_of_metrics_and_start_up_lines_once(cert_dir: Path, tmp_path: Path) -> None:
    port = serve_support.free_port()
    base = f"https://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    process = serve_support.start(cert_dir, port, "--workers", "2", "--drain-seconds", "0", log=log)
    with serve_support.reaped(process):
        await asyncio.to_thread(serve_support.wait_ready, base, cert_dir, process)
        # Ten scrapes between rounds of reviews: each on a new connection, so the kernel spreads
        # both over the two workers, and every scrape must count the reviews of both.
        sent, totals = 0, []
        for _ in range(10):
            assert await _answered(base, cert_dir, 3) == [200] * 3
            sent += 3
            totals.append(_requests_total(await _scrape(base, cert_dir)))
        assert totals == sorted(totals), f"a counter went backwards: {totals}"
        assert totals[-1] == sent

        # A dead worker's reviews still count; its in-flight gauge is gone with it.
        workers = {e["slot"]: e["pid"] for e in _started(log)}
        os.kill(workers[1], signal.SIGKILL)
        await _wait_for(lambda: len(_started(log)) == 3)
        both = {workers[0], _started(log)[-1]["pid"]}
        await _wait_for(lambda: _listening_pids(port, both) == both)
        assert await _answered(base, cert_dir, 4) == [200] * 4
        text = await _scrape(base, cert_dir)
        assert _requests_total(text) == sent + 4
        assert "admission_requests_in_flight 0.0" in text.splitlines()
        assert "admission_policy_config_valid 1.0" in text.splitlines()

        os.kill(process.pid, signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0
    # The lines every worker would log alike came once, from slot 0 (the replacement in slot 1 too
    # kept quiet); the lines about each process's own life came from each.
    events = serve_support.events(log)
    started = [e for e in events if e["event"] in logs.STARTUP_EVENTS]
    assert sorted(e["event"] for e in started) == ["no_cluster", "serving"]
    assert next(e["pid"] for e in started if e["event"] == "serving") == workers[0]
    assert len([e for e in events if e["event"] == "stopped" and "pid" in e]) == 2
    # The workers' metric files went with the supervisor.
    assert not list(Path(tempfile.gettempdir()).glob(f"webhook-metrics-{process.pid}-*"))


async def test_busy_workers_never_splice_their_log_lines(
    cert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As in the image: unbuffered, so every write() of the logger reaches the shared file at once.
    # (While a line was written as text then newline, this failed in 5 runs out of 5 on 2 CPUs.)
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    port = serve_support.free_port()
    base = f"https://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    process = serve_support.start(cert_dir, port, "--workers", "2", "--drain-seconds", "0", log=log)
    reviews, connections = 4000, 32
    with serve_support.reaped(process):
        await asyncio.to_thread(serve_support.wait_ready, base, cert_dir, process)
        # Many keep-alive connections at once: the kernel spreads them over both workers, which
        # then log their review lines at the same moments.
        connector = aiohttp.TCPConnector(ssl=serve_support.client_context(cert_dir), limit=connections)
        body = serve_support.review_body()
        async with aiohttp.ClientSession(connector=connector) as session:
            results = await asyncio.gather(
                *(serve_support.post(session, f"{base}/validate", body) for _ in range(reviews))
            )
        assert [status for status, _ in results] == [200] * reviews
        os.kill(process.pid, signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 20) == 0
    lines = log.read_bytes().split(b"\n")
    assert lines[-1] == b""  # the file ends with a complete line
    parsed = []
    for number, line in enumerate(lines[:-1], 1):
        try:
            parsed.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            pytest.fail(f"line {number} of {len(lines) - 1} is not one JSON object: {line[:300]!r}")
    assert sum(e["event"] == "review" for e in parsed) == reviews


def test_a_run_gets_a_fresh_metrics_directory_and_clears_what_a_killed_run_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"webhook-metrics-{os.getpid()}-killed"  # same pid: in a container, pid 1 again
    stale.mkdir()
    (stale / "counter_7.db").write_bytes(b"old counts")
    other = tmp_path / f"webhook-metrics-{os.getpid() + 1}-alive"  # another supervisor's (outside a container)
    other.mkdir()
    fresh = runner._metrics_directory()
    assert fresh.parent == tmp_path and list(fresh.iterdir()) == []
    assert fresh.stat().st_mode & 0o777 == 0o700
    assert not stale.exists()
    assert other.exists()


async def test_a_worker_that_cannot_start_says_why(cert_dir: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    log = tmp_path / "serve.log"
    process = serve_support.start(cert_dir, serve_support.free_port(), "--workers", "2",
                                  "--record", str(blocked / "rec"), log=log)
    with serve_support.reaped(process):
        exit_code = await asyncio.to_thread(process.wait, 30)
    assert exit_code == 1
    (failed,) = [e for e in serve_support.events(log) if e["event"] == "worker_failed_to_start"]
    assert failed["reason"].startswith(f"WebhookError: --record {blocked / 'rec'}: cannot use the directory")
