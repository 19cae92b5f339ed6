"""Driving a server with ``wrk`` (Debian package ``wrk``): C code, so the load generator is not the
bottleneck on a small machine. A generated Lua script cycles through the reviews and prints the
figures as one JSON line from ``done()``.

wrk 4 is closed-loop: each connection sends its next request when the previous answer arrives.
A fixed rate is approximated with ``delay()``: each of ``C`` connections pauses a mean of
``C / rate`` seconds between requests, so the rate reached is a little under the target (by the
latency); the rate actually reached is what gets reported.

How the pauses are drawn decides what "latency at a rate" means. Equal pauses (``steady``) keep
the connections in step: wrk starts them together and its timers fire on whole milliseconds, so
the requests arrive in bursts of up to ``C`` at once and the last of each burst waits for all the
others. That measures the burst, not the rate: the bare handler showed a p50 of 1.4 ms at 40% of
its capacity that way. Exponential pauses (``poisson``, the default) make each connection a
Poisson source, and so the sum of them one too: requests arrive independently at the mean rate,
the textbook model of many clients (and the harder one for a server than evenly spaced arrivals).
The pauses are whole milliseconds (wrk's unit), rounded up or down at random so that their mean
stays exact, from a fixed seed so that runs draw the same sequence.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

MARK = "BENCH_JSON "

_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%s{"requests":%d,"duration_s":%.6f,"errors":%d,"status_errors":%d,' ..
    '"latency_ms":{"p50":%.4f,"p90":%.4f,"p99":%.4f,"max":%.4f,"mean":%.4f}}\n',
    "BENCH_JSON ", summary.requests, summary.duration / 1e6,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


PACINGS = ("poisson", "steady")


def script(requests: list[tuple[str, bytes]], *, delay_ms: float | None, pacing: str = "poisson") -> str:
    """Lua: pre-formatted requests (``(path, body)``) sent round-robin by every connection, with a
    mean pause of ``delay_ms`` before each one, drawn as ``pacing`` says."""
    if pacing not in PACINGS:
        raise ValueError(f"pacing must be one of {PACINGS}, not {pacing!r}")
    lines = ["local reqs = {}", "local n = 0", "init = function(args)", "  math.randomseed(19)"]
    for path, body in requests:
        text = body.decode()
        assert "]==]" not in text
        lines.append(
            f'  table.insert(reqs, wrk.format("POST", "{path}", '
            f'{{["Content-Type"] = "application/json"}}, [==[{text}]==]))'
        )
    lines += ["end", "request = function()", "  n = n % #reqs + 1", "  return reqs[n]", "end"]
    if delay_ms is not None and pacing == "steady":
        lines += ["delay = function()", f"  return {round(delay_ms)}", "end"]
    elif delay_ms is not None:
        lines += ["delay = function()",
                  f"  local pause = -{delay_ms!r} * math.log(1 - math.random())",
                  "  return math.floor(pause + math.random())",
                  "end"]
    return "\n".join(lines) + _DONE


def run(
    url: str,
    requests: list[tuple[str, bytes]],
    *,
    duration: float,
    connections: int,
    rate: float | None,
    workdir: Path,
    cpu: int | None,
    pacing: str = "poisson",
) -> dict[str, Any]:
    """Run wrk once; ``rate`` None means as fast as the server answers (saturation)."""
    delay_ms = None
    if rate is not None:
        delay_ms = connections * 1000 / rate
    lua = workdir / f"load-{connections}-{rate}-{pacing}.lua"
    lua.write_text(script(requests, delay_ms=delay_ms, pacing=pacing))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "5s",
               "-s", str(lua), url]
    if cpu is not None and shutil.which("taskset"):
        command = ["taskset", "-c", str(cpu), *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30, check=False)
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            result: dict[str, Any] = json.loads(line[len(MARK):])
            result["rate"] = result["requests"] / result["duration_s"]
            result["failed"] = result.pop("errors") + result.pop("status_errors")
            return result
    raise RuntimeError(f"wrk printed no result (exit {done.returncode}): {done.stdout}\n{done.stderr}")
