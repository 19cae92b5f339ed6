"""The benchmark's load at a fixed rate arrives as a Poisson stream, not in bursts.

Latency "at half of saturation" means nothing if the load generator sends its requests in
lockstep: wrk starts its connections together and its timers fire on whole milliseconds, so equal
pauses keep every connection in step and the server sees bursts of ``C`` requests at once. These
tests run both drivers against a local server that notes when each request arrives, and hold the
arrivals to what a Poisson stream at the asked rate looks like: the right mean rate, and gaps
spread like an exponential distribution. About 1 - exp(-0.1) = 9.5% of a Poisson stream's gaps are
under a tenth of the mean gap; wrk's whole-millisecond timers clump some more (19% measured at 400
req/s), where lockstep puts 65% of the requests that close to another.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bench import load, wrk

ROOT = Path(__file__).resolve().parents[1]
RATE = 400.0
SECONDS = 3.0


class Recorder:
    """A plain-HTTP aiohttp server in a thread: answers ``{}`` and keeps each arrival's time."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        self.arrivals.append(time.perf_counter())
        await request.read()
        return web.Response(body=b"{}", content_type="application/json")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> Recorder:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    with Recorder() as server:
        yield server


def gaps_of(arrivals: list[float]) -> list[float]:
    ordered = sorted(arrivals)
    return [b - a for a, b in zip(ordered, ordered[1:], strict=False)]


def assert_poisson(arrivals: list[float], rate: float) -> None:
    gaps = gaps_of(arrivals)
    assert len(gaps) > 0.6 * rate * SECONDS, f"only {len(arrivals)} requests arrived"
    mean = statistics.fmean(gaps)
    # The rate reached is a little under the one asked for (each pause follows an answer).
    assert 0.6 / rate < mean < 1.3 / rate, f"mean gap {mean * 1e3:.2f} ms at {rate} req/s"
    tiny = sum(gap < mean / 10 for gap in gaps) / len(gaps)
    assert tiny < 0.32, f"{tiny:.0%} of the requests came within a tenth of the mean gap of another: bursts"
    # An exponential's standard deviation equals its mean; evenly spaced arrivals have none.
    spread = statistics.pstdev(gaps) / mean
    assert 0.6 < spread < 1.6, f"gaps' coefficient of variation {spread:.2f}"


needs_wrk = pytest.mark.skipif(not wrk.available(), reason="wrk is not installed")


@needs_wrk
def test_wrk_at_a_rate_sends_a_poisson_stream(recorder: Recorder, tmp_path: Path) -> None:
    result = wrk.run(f"http://127.0.0.1:{recorder.port}", [("/validate", b"{}")], duration=SECONDS,
                     connections=4, rate=RATE, workdir=tmp_path, cpu=None)
    assert result["failed"] == 0
    assert_poisson(recorder.arrivals, RATE)


@needs_wrk
def test_wrk_steady_pacing_is_the_lockstep_the_default_avoids(recorder: Recorder, tmp_path: Path) -> None:
    """The comparison the default rests on: equal pauses make the connections arrive together."""
    wrk.run(f"http://127.0.0.1:{recorder.port}", [("/validate", b"{}")], duration=SECONDS,
            connections=4, rate=RATE, workdir=tmp_path, cpu=None, pacing="steady")
    gaps = gaps_of(recorder.arrivals)
    tiny = sum(gap < statistics.fmean(gaps) / 10 for gap in gaps) / len(gaps)
    assert tiny > 0.45


def test_wrk_script_rejects_an_unknown_pacing() -> None:
    with pytest.raises(ValueError, match="pacing must be one of"):
        wrk.script([("/validate", b"{}")], delay_ms=10.0, pacing="bursty")


def test_python_loader_at_a_rate_sends_a_poisson_stream(recorder: Recorder) -> None:
    command = [sys.executable, "-m", "bench.load", f"http://127.0.0.1:{recorder.port}", "--duration", str(SECONDS),
               "--connections", "8", "--rate", str(RATE)]
    done = subprocess.run(command, cwd=ROOT, input='[["/validate", "{}"]]', capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.startswith(wrk.MARK), done.stderr
    assert_poisson(recorder.arrivals, RATE)


def test_percentile_of_nothing_is_zero() -> None:
    assert load.percentile([], 0.99) == 0.0
    assert load.percentile([1.0, 2.0, 3.0], 0.5) == 2.0
