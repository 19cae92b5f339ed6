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
