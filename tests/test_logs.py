"""The JSON log renderer: one valid JSON line per call, whatever the values, and never an exception."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from webhook import logs


class Custom:
    def __repr__(self) -> str:
        return "<Custom>"


class Described:
    def __structlog__(self) -> str:
        return "described"


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"count": 3, "ok": True, "path": "/validate"}, {"count": 3, "ok": True, "path": "/validate"}),
        ({"error": ValueError("boom")}, {"error": "ValueError('boom')"}),
        ({"value": Custom(), "other": Described()}, {"value": "<Custom>", "other": "described"}),
        ({"big": 2**70}, {"big": 2**70}),  # beyond orjson's 64 bits: the stdlib encoder writes it
        ({"file": Path("/tmp/caf\udce9").name}, {"file": "caf\udce9"}),  # lone surrogate
        ({"deep": _nested(300)}, {"deep": _nested(300)}),
    ],
)
def test_every_value_gives_one_json_line(
    capsys: pytest.CaptureFixture[str], fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    logs.configure(log_format="json")
    logs.get("test").info("happened", **fields)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["event"] == "happened" and line["level"] == "info" and "timestamp" in line
    assert {key: line[key] for key in expected} == expected


def test_a_line_nothing_can_encode_still_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(log_format="json")
    logs.get("test").info("happened", deep=_nested(5000))
    line = json.loads(capsys.readouterr().err)
    assert line["event"] == "'happened'" and line["log_error"].startswith("unencodable line: RecursionError")


@pytest.mark.parametrize(
    ("nanoseconds", "expected"),
    [
        (1_764_599_405_123_456_789, "2025-12-01T14:30:05.123456Z"),
        (1_764_599_405_000_000_999, "2025-12-01T14:30:05Z"),  # no fraction at a whole second, as isoformat
        (1_764_599_406_000_001_000, "2025-12-01T14:30:06.000001Z"),
    ],
)
def test_review_line_timestamps_read_as_structlogs_iso_stamps(
    monkeypatch: pytest.MonkeyPatch, nanoseconds: int, expected: str
) -> None:
    import datetime
    import time

    monkeypatch.setattr(time, "time_ns", lambda: nanoseconds)
    assert logs._timestamp() == expected
    seconds, rest = divmod(nanoseconds, 1_000_000_000)
    stamp = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC).replace(microsecond=rest // 1000)
    assert logs._timestamp() == stamp.isoformat().replace("+00:00", "Z")


_REVIEW_LINES = """
import structlog
from webhook import logs
logs.configure(log_format="json")
structlog.contextvars.bind_contextvars(path="/validate")
fields = {"path": "/validate", "uid": "u-1", "name": "caf\\u00e9", "warnings": 0, "message": None, "big": %s}
logs.review(dict(fields), logger=logs.get("webhook.server"))  # written directly to the descriptor
logs._direct = None
logs.review(dict(fields), logger=logs.get("webhook.server"))  # through structlog, as any other set-up
"""


@pytest.mark.parametrize("big", ["1", "2**70"])  # 2**70: beyond orjson, the stdlib encoder writes it
def test_the_direct_review_line_is_structlogs_line(big: str) -> None:
    """The review line written straight to stderr's descriptor has the keys, order and values the
    structlog chain writes (the timestamp aside), one line each, on a real stderr."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _REVIEW_LINES % big], capture_output=True, check=True)
    # (A stale checkout's "running the Python sources" notice may come first: not a log line.)
    direct, chained = (json.loads(line) for line in done.stderr.decode().splitlines() if line.startswith("{"))
    assert list(direct) == list(chained)
    assert {**direct, "timestamp": ""} == {**chained, "timestamp": ""}
    assert direct["name"] == "caf\u00e9" and direct["big"] == eval(big) and direct["event"] == "review"


def test_a_line_longer_than_a_full_pipe_takes_is_written_whole() -> None:
    """A non-blocking pipe takes part of a long line and then refuses more until it is read:
    every byte still arrives, in order."""
    import os
    import threading
    import time

    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    line = b"".join(b"%08d," % i for i in range(40_000)) + b"\n"  # 360 KB, several pipe buffers
    received = bytearray()

    def drain() -> None:
        time.sleep(0.05)  # let the writer meet a full pipe first
        while chunk := os.read(reader, 65536):
            received.extend(chunk)

    thread = threading.Thread(target=drain)
    thread.start()
    logs._write_all(writer, line)
    os.close(writer)
    thread.join(timeout=10)
    os.close(reader)
    assert bytes(received) == line


_GATHERING = """
import asyncio, os, sys
from webhook import logs
sizes = []
write = os.write
def counting(fd, data):
    if fd == 2:
        sizes.append(len(data))
    return write(fd, data)
os.write = counting
logs.configure(log_format="json")
log = logs.get("webhook.server")

async def turn():
    for index in range(50):
        logs.review({"path": "/validate", "uid": f"u-{index}", "padding": "x" * 250}, logger=log)
        if index == 20:
            log.warning("in_between")  # any other line writes the gathered ones first
    await asyncio.sleep(0)  # the loop's turn ends: the rest are written
    logs.review({"path": "/validate", "uid": "last-in-loop"}, logger=log)  # gathered, loop then stops

asyncio.run(turn())
logs.review({"path": "/validate", "uid": "no-loop"}, logger=log)  # no running loop: written at once
print(sizes)
"""


def test_review_lines_of_one_loop_turn_are_written_together_whole_and_in_order() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _GATHERING], capture_output=True, check=True)
    lines = [json.loads(line) for line in done.stderr.decode().splitlines() if line.startswith("{")]
    order = [line.get("uid", line["event"]) for line in lines]
    assert order == [f"u-{i}" for i in range(21)] + ["in_between"] + [f"u-{i}" for i in range(21, 50)] + [
        "last-in-loop", "no-loop"]
    sizes = json.loads(done.stdout)
    assert all(size <= logs.PIPE_BUF for size in sizes)
    assert len(sizes) <= 12  # 53 lines of about 330 bytes: a dozen writes at most, not 53
