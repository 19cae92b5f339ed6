"""``python -m bench.instructions`` (``make bench-instructions``): instructions per request, counted.

The CPU ratios of ``make bench`` move with this shared machine by 10-20% from one run to the next,
more than most changes to the request path are worth. Instructions do not: each server runs under
valgrind's callgrind twice, once answering nothing but its readiness checks and once answering
``--requests`` reviews over one keep-alive TLS connection, and the difference over the number of
reviews is what one review costs, start-up and shutdown cancelled out. The bare handler
(``bench.bare``) is counted the same way, so the ratios are the same-core shares the issue asks
for, counted instead of timed.

What a count leaves out: the kernel's share (socket and log writes, about a seventh of the
webhook's CPU time here), and the price of each instruction, which cache misses raise more for a
larger working set (measured: the webhook's user time per request is about 30% above what its
instruction count predicts from the bare handler's). So the CPU ratios stay the targets' measure;
this is the steady A/B figure for a change. Needs ``valgrind``; takes a few minutes (two counted
runs at a time, one per CPU).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import reviews
from bench.__main__ import (
    OUT,
    ROOT,
    _insecure,
    bare_command,
    free_port,
    interpreter,
    server_tls,
    wait_ready,
    webhook_command,
)

ENDPOINTS = (reviews.POD_SECURITY_PATH, "/validate", "/mutate")


def counted(command: list[str], *, ready_url: str | None, url: str, body: bytes, requests: int, work: Path,
            name: str) -> int:
    """Instructions ``command`` executed in all, under callgrind, having answered ``requests``
    POSTs of ``body`` to ``url`` over one connection, then stopped by SIGTERM. Ready when
    ``ready_url`` answers 200, or without one (the bare handler) when its log says ``ready``."""
    out = work / f"{name}.callgrind"
    log = work / f"{name}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
            cwd=ROOT, stdout=sink, stderr=sink, env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    try:
        if ready_url is not None:
            wait_ready(ready_url, process, timeout=300)
        else:
            _wait_for_line(log, b"ready", process)
        if requests:
            _send(url, body, requests)
    finally:
        process.terminate()
        process.wait(timeout=120)
    found = re.search(r"Collected : (\d+)", log.read_text(errors="replace"))
    if found is None:
        raise RuntimeError(f"callgrind reported no total for {name}; see {log}")
    return int(found.group(1))


def _wait_for_line(log: Path, line: bytes, process: subprocess.Popen[bytes], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if line in log.read_bytes().splitlines():
            return
        if process.poll() is not None:
            raise RuntimeError(f"{log.name}: exited with {process.returncode} before saying {line.decode()}")
        time.sleep(0.2)
    raise RuntimeError(f"{log.name}: no {line.decode()!r} within {timeout}s")


def _send(url: str, body: bytes, requests: int) -> None:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    connection = http.client.HTTPSConnection(parts.hostname or "127.0.0.1", parts.port, context=_insecure(),
                                             timeout=120)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    for _ in range(requests):
        connection.request("POST", target, body=body, headers={"Content-Type": "application/json"})
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise RuntimeError(f"{url} answered {answer.status}")
    connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500, help="reviews per counted run (default 500)")
    parser.add_argument("--out", type=Path, default=OUT, help="where instructions.json/.md go")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: nothing to count", file=sys.stderr)
        return 2
    python, serving = interpreter()
    body = reviews.bodies()["pod"]
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="webhook-instructions-") as tmp:
        work = Path(tmp)
        tls = server_tls(work)
        runs: dict[str, tuple[list[str], str | None, str, int]] = {}
        for name in ("bare", *ENDPOINTS):
            for requests in (0, args.requests):
                port = free_port()  # one per run: two run at a time
                base = f"https://127.0.0.1:{port}"
                if name == "bare":
                    command = bare_command(python, port, tls)
                    ready, url = None, f"{base}/validate?timeout=10s"
                else:
                    # No policy reload while counted (the first would fall in the review run only).
                    command = [*webhook_command(python, port, tls, ROOT / "policies"), "--reload-interval", "3600"]
                    ready, url = f"{base}/readyz", f"{base}{name}?timeout=10s"
                runs[f"{name}:{requests}"] = (command, ready, url, requests)
        print(f"counting {len(runs)} runs under callgrind, two at a time ...", flush=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            futures = {
                key: pool.submit(counted, command, ready_url=ready, url=url, body=body, requests=requests,
                                 work=work, name=key.replace("/", "_").replace(":", "-"))
                for key, (command, ready, url, requests) in runs.items()
            }
            totals = {key: future.result() for key, future in futures.items()}
    per_request = {name: round((totals[f"{name}:{args.requests}"] - totals[f"{name}:0"]) / args.requests)
                   for name in ("bare", *ENDPOINTS)}
    results: dict[str, Any] = {
        "when": started_at, "servers_run_by": serving, "requests": args.requests,
        "instructions_per_request": per_request,
        "share_of_bare": {name: round(per_request["bare"] / per_request[name], 3) for name in ENDPOINTS},
    }
    (args.out / "instructions.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# Instructions per request ({started_at})", "",
             f"callgrind, {args.requests} Pod reviews over one keep-alive TLS connection, start-up "
             f"and shutdown subtracted; servers run by {serving}.", "",
             "| server | instructions per request | share of the bare handler |", "|---|---|---|",
             f"| bare aiohttp handler | {per_request['bare']:,} | 1.00 |"]
    lines += [f"| webhook `{name}` | {per_request[name]:,} | {results['share_of_bare'][name]:.3f} |"
              for name in ENDPOINTS]
    (args.out / "instructions.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
