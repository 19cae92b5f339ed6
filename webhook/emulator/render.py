"""Printing an admission :class:`~webhook.emulator.dispatcher.Result`: text for people, JSON for scripts.

The text form leads with the outcome and the exact error a client would see (``kubectl`` prints it
after ``Error from server``), then each webhook with its outcome and latency, the warnings
(``kubectl`` prints each as ``Warning: ...``), the audit annotations, and the object's changes as
a diff. The JSON form has a fixed shape: ``admitted``, ``error``, ``warnings``, ``object``,
``webhooks`` (``name``, ``outcome``, ``latency_ms``).
"""

from __future__ import annotations

import difflib
import json
from typing import Any

import yaml

from webhook.emulator import dispatcher


def to_json(result: dispatcher.Result) -> dict[str, Any]:
    return {
        "admitted": result.admitted,
        "error": result.status.message if result.status else None,
        "warnings": list(result.warnings),
        "object": result.object if result.admitted else None,
        "webhooks": [
            {"name": w.name, "outcome": w.outcome, "latency_ms": w.latency_ms} for w in result.webhooks
        ],
    }


def json_text(result: dispatcher.Result) -> str:
    return json.dumps(to_json(result), indent=2, sort_keys=False)


def _yaml(obj: dict[str, Any] | None) -> list[str]:
    return [] if obj is None else yaml.safe_dump(obj, sort_keys=False, default_flow_style=False).splitlines()


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    return list(difflib.unified_diff(_yaml(before), _yaml(after), "before", "after", lineterm="", n=2))


def text(result: dispatcher.Result) -> str:
    lines: list[str] = []
    if result.admitted:
        lines.append("ADMITTED")
    else:
        assert result.status is not None
        lines.append(
            "REJECTED (HTTP "
            f"{result.status.code}{' ' + result.status.reason if result.status.reason else ''})"
        )
        lines.append(f"error: {result.status.message}")
    if result.webhooks:
        lines.append("")
        lines.append("webhooks:")
        width = max(len(w.name) for w in result.webhooks) + (
            10 if any(w.round for w in result.webhooks) else 0
        )
        for w in result.webhooks:
            name = w.name + (" (round 1)" if w.round else "")
            latency = f"{w.latency_ms:8.1f} ms" if w.outcome != "skipped" else f"{'-':>8}   "
            line = f"  {w.phase:<10}  {name:<{width}}  {w.outcome:<13} {latency}"
            shown_above = result.status is not None and result.status.message.endswith(w.detail)
            if w.detail and w.outcome not in ("allowed", "patched") and not shown_above:
                line += f"  {w.detail}"
            lines.append(line.rstrip())
    if result.warnings:
        lines.append("")
        lines.extend(f"Warning: {w}" for w in result.warnings)
    if result.audit_annotations:
        lines.append("")
        lines.append("audit annotations:")
        lines.extend(f"  {k}: {v}" for k, v in result.audit_annotations.items())
    if result.admitted and result.object is not None and result.object != result.original:
        lines.append("")
        lines.append("changes to the object:")
        lines.extend("  " + line for line in diff(result.original, result.object))
    elif result.admitted and result.original is not None:
        lines.append("")
        lines.append("the object is admitted unchanged")
    for note in result.notes:
        lines.append(f"note: {note}")
    return "\n".join(lines)
