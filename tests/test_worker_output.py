"""What ``serve --workers N`` puts out, piece by piece: metrics kept in files every worker can sum,
log lines written whole, start-up lines left to slot 0. (tests/test_workers.py runs the real thing.)"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import prometheus_client as prom
import pytest
import structlog

from tests import conftest
from webhook import logs, metrics

# --- metrics --------------------------------------------------------------------------------------


def _worker(directory: Path, code: str) -> str:
    """Run ``code`` in a new process switched to ``directory`` as a worker is, with ``stats`` built;
    returns what it printed. The process has exited (its pid is dead) when this returns."""
    script = "from pathlib import Path\nfrom webhook import metrics\n"
    script += f"metrics.share(Path({str(directory)!r}))\nstats = metrics.Metrics()\n" + textwrap.dedent(code)
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=conftest.REPO, capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout


def _samples(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and line[0] != "#"}


def _read(directory: Path) -> dict[str, float]:
    """What a scrape of any worker shows, read here without switching this process."""
    registry = prom.CollectorRegistry()
    registry.register(metrics.WorkerFiles(str(directory)))
    return _samples(prom.generate_latest(registry).decode())


ALLOWED = 'admission_requests_total{decision="allowed",kind="Pod",operation="CREATE",path="/validate"}'


def test_a_scrape_of_any_worker_sums_every_worker(tmp_path: Path) -> None:
    first = _worker(tmp_path, """
        stats.requests.labels("/validate", "Pod", "CREATE", "allowed").inc()
        stats.in_flight.inc()
        stats.policy_config_valid.set(1)
        stats.cert_expiry.set(7200)
        import os; print(os.getpid())
    """)
    second = _worker(tmp_path, """
        stats.requests.labels("/validate", "Pod", "CREATE", "allowed").inc(2)
        stats.in_flight.inc(2)
        stats.policy_config_valid.set(0)
        stats.cert_expiry.set(3600)
        import os; print(os.getpid())
    """)
    (tmp_path / "counter_4194305.db").touch()  # a worker starting this instant: its file not sized yet
    scraped = _samples(_worker(tmp_path, "print(stats.render().decode())"))
    assert scraped[ALLOWED] == 3
    assert scraped["admission_requests_in_flight"] == 3  # livesum
    # The files' state as last read by a live worker; the reader's own, never set, gauges count for nothing.
    assert scraped["admission_policy_config_valid"] == 0
    assert scraped["admission_certificate_expiry_seconds"] == 3600
    assert not [name for name in scraped if "pid=" in name]  # one series per metric, not one per worker

    # The supervisor marks exited workers dead: their counts stay, their live gauges go.
    for pid in (first, second):
        metrics.mark_dead(int(pid), tmp_path)
    after = _read(tmp_path)
    assert after[ALLOWED] == 3
    assert after["admission_requests_in_flight"] == 0  # only the reader's, never marked dead, is left
    assert "admission_policy_config_valid" not in after  # ...and it never read the files


def test_one_process_keeps_a_registry_per_app() -> None:
    assert metrics.shared_directory() is None
    one, other = metrics.Metrics(), metrics.Metrics()
    one.requests.labels("/validate", "Pod", "CREATE", "allowed").inc()
    assert _samples(one.render().decode())[ALLOWED] == 1
    assert ALLOWED not in _samples(other.render().decode())


def test_a_single_process_counts_reviews_as_observing_each_would() -> None:
    """Counted in plain numbers and handed over at each scrape, the reviews give a scrape exactly
    what observing each review gives: every counter, every bucket (a latency equal to a bound in
    that bound's bucket, a longer one in +Inf), the sum to the last bit, the reviews in flight;
    over several scrapes."""
    deferred, direct = metrics.Metrics(), metrics.Metrics()
    assert deferred.deferred
    direct.deferred = False
    rng = random.Random(15)
    latencies = [1e-9, 0.0005, 0.0005000001, 0.001, 0.0123, 0.3, 2.5, 30.0, 31.0, 1e-4]
    latencies += [rng.expovariate(200.0) for _ in range(400)] + [rng.uniform(0, 40) for _ in range(40)]
    kinds = ("Pod", "Deployment", "other")
    scraped: list[dict[str, float]] = []
    for index, seconds in enumerate(latencies):
        for stats in (deferred, direct):
            stats.review_started()
            stats.answered(("/validate", "/mutate", "/validate/cel")[index % 3], kinds[index % 2 + index % 3 // 2],
                           ("CREATE", "UPDATE")[index % 2], ("allowed", "denied", "patched")[index % 3], seconds)
            if index % 4:
                stats.review_ended()
        if index in (0, 99, 300, len(latencies) - 1):
            scraped.append(_reviews(deferred))
            assert scraped[-1] == _reviews(direct)
    assert len({len(found) for found in scraped[1:]}) == 1 and len(scraped[-1]) > 50
    in_flight = sum(1 for index in range(len(latencies)) if not index % 4)
    assert scraped[-1]["admission_requests_in_flight"] == in_flight
    assert scraped[-1]['admission_request_duration_seconds_bucket{le="+Inf",path="/validate"}'] == len(latencies[::3])
    assert scraped[-1]['admission_request_duration_seconds_sum{path="/validate"}'] == sum(latencies[::3])


def _reviews(stats: metrics.Metrics) -> dict[str, float]:
    """The review metrics of a scrape (not the creation times, which differ between registries)."""
    return {name: value for name, value in _samples(stats.render().decode()).items()
            if name.startswith("admission_request") and "_created" not in name}


# --- log lines ------------------------------------------------------------------------------------


class _Stream:
    """A stand-in for a text stream: records ``write`` calls; ``fileno`` is the write end of a pipe."""

    encoding = "utf-8"

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self.fd


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read, write = os.pipe()
    yield read, write
    os.close(read)
    os.close(write)


@pytest.fixture
def json_logs() -> Iterator[None]:
    saved = structlog.get_config()
    logs.configure(log_format="json")
    yield
    structlog.configure(**saved)


@pytest.mark.usefixtures("json_logs")
@pytest.mark.parametrize(("accepted", "writes_per_line"), [(1 << 16, 1), (64, None)])
def test_a_line_reaches_the_real_stderr_in_one_write(
    monkeypatch: pytest.MonkeyPatch, pipe: tuple[int, int], accepted: int, writes_per_line: int | None
) -> None:
    """One ``write(2)`` per line, newline included; if the kernel takes only part of a line (a
    full pipe), the rest follows before any other line of this process."""
    real = _Stream(pipe[1])
    monkeypatch.setattr(sys, "__stderr__", real)
    monkeypatch.setattr(sys, "stderr", real)
    calls: list[bytes] = []  # what each write(2) wrote
    os_write = os.write

    def write(fd: int, data: Any) -> int:
        calls.append(bytes(data)[:accepted])  # the kernel takes at most ``accepted`` bytes
        return os_write(fd, calls[-1])

    monkeypatch.setattr(os, "write", write)
    logs.get("test").info("first", n=1)
    logs.get("test").info("second", n=2)
    monkeypatch.undo()

    written = os.read(pipe[0], 1 << 16)
    assert [json.loads(line)["event"] for line in written.splitlines()] == ["first", "second"]
    assert b"".join(calls) == written and written.endswith(b"\n")
    assert real.writes == []  # the stream itself is bypassed
    if writes_per_line == 1:
        assert [call.count(b"\n") for call in calls] == [1, 1] and all(call.endswith(b"\n") for call in calls)
    else:
        assert len(calls) > 2  # partial writes, resumed


@pytest.mark.usefixtures("json_logs")
def test_a_replaced_stderr_gets_the_whole_line_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    capture = _Stream(-1)
    monkeypatch.setattr(sys, "stderr", capture)
    logs.get("test").info("happened", n=1)
    monkeypatch.undo()
    assert len(capture.writes) == 1
    assert capture.writes[0].endswith("\n") and json.loads(capture.writes[0])["event"] == "happened"


@pytest.mark.usefixtures("json_logs")
def test_workers_other_than_slot_0_drop_the_start_up_lines(capsys: pytest.CaptureFixture[str]) -> None:
    logs.drop_startup_events()
    logs.drop_startup_events()  # idempotent
    log = logs.get("test")
    for event in ("serving", "no_cluster", "namespace_cache_started", "review", "draining"):
        log.info(event)
    assert [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()] == ["review", "draining"]
