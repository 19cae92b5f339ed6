"""What an audit prints: a summary table, one line per violation (``-o wide``), or JSON.

Every output is a *sink*: it is handed each entry as the scan produces it and keeps only counters
(or writes at once), so output costs no memory per object. Entries folded into their owner count
for the owner and are not printed again.

The summary has one row per policy (objects it checked, skipped, found violating, the strongest
mode per object, the namespaces with the most violating objects) and one indented row per rule that
found something. With ``--what-if`` the table counts changes instead: objects that gain a violation
(new) or lose one (fixed), per policy and rule.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, TextIO

import orjson

from webhook.audit import model, whatif
from webhook.policy import model as policy_model

TOP_NAMESPACES = 3
_MODE_ORDER = {"enforce": 3, "warn": 2, "audit": 1}


class Sink(Protocol):
    def add(self, entry: model.Entry) -> None: ...


@dataclasses.dataclass(slots=True)
class Row:
    """Counters of one policy, or one rule of a policy."""

    checked: int = 0
    skipped: int = 0
    violating: int = 0
    errors: int = 0
    modes: Counter[str] = dataclasses.field(default_factory=Counter)
    namespaces: Counter[str] = dataclasses.field(default_factory=Counter)

    def top_namespaces(self) -> list[tuple[str, int]]:
        """The namespaces with the most, ties by name (not by the order objects came in)."""
        return sorted(self.namespaces.items(), key=lambda item: (-item[1], item[0]))[:TOP_NAMESPACES]

    def top(self) -> str:
        return ", ".join(f"{ns or '(cluster)'} {n:,}" for ns, n in self.top_namespaces())


def _strongest(results: Iterable[model.Result]) -> policy_model.Mode | None:
    strongest: policy_model.Mode | None = None
    for result in results:
        mode = result.mode
        if result.violation and mode is not None and (strongest is None or _MODE_ORDER[mode] > _MODE_ORDER[strongest]):
            strongest = mode
    return strongest


class Summary:
    """Counts per policy and rule; decides the exit code (:meth:`found`)."""

    def __init__(self) -> None:
        self.policies: dict[str, Row] = {}
        self.rules: dict[tuple[str, str], Row] = {}
        self.reported = 0
        self.folded = 0
        self.differing = 0
        self.objects_by_mode: Counter[str] = Counter()

    def add(self, entry: model.Entry) -> None:
        if entry.owner is not None:
            self.folded += 1
            return
        self.reported += 1
        if entry.differs_from is not None:
            self.differing += 1
        namespace = entry.ref.namespace
        by_policy: dict[str, list[model.Result]] = {}
        for result in entry.results:
            by_policy.setdefault(result.policy, []).append(result)
        strongest_overall: policy_model.Mode | None = None
        for policy, results in by_policy.items():
            row = self.policies.setdefault(policy, Row())
            if all(r.result == "skip" for r in results):
                row.skipped += 1
                continue
            row.checked += 1
            if any(r.result == "error" for r in results):
                row.errors += 1
            mode = _strongest(results)
            if mode is not None:
                row.violating += 1
                row.modes[mode] += 1
                row.namespaces[namespace] += 1
                if strongest_overall is None or _MODE_ORDER[mode] > _MODE_ORDER[strongest_overall]:
                    strongest_overall = mode
            for result in results:
                if result.violation or result.result == "error":
                    rule = self.rules.setdefault((policy, result.rule), Row())
                    rule.violating += 1
                    if result.result == "error":
                        rule.errors += 1
                    if result.mode:
                        rule.modes[result.mode] += 1
                    rule.namespaces[namespace] += 1
        if strongest_overall is not None:
            self.objects_by_mode[strongest_overall] += 1

    def found(self, modes: Iterable[str]) -> bool:
        """Whether any reported object breaks a rule in one of ``modes``."""
        return any(self.objects_by_mode[m] for m in modes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reported": self.reported,
            "folded": self.folded,
            "objectsByMode": {m: self.objects_by_mode[m] for m in ("enforce", "warn", "audit")},
            "policies": [
                {"policy": policy, "checked": row.checked, "skipped": row.skipped, "violating": row.violating,
                 "errors": row.errors, "modes": dict(row.modes), "topNamespaces": dict(row.top_namespaces()),
                 "rules": [{"rule": rule, "violating": r.violating, "errors": r.errors, "modes": dict(r.modes),
                            "topNamespaces": dict(r.top_namespaces())}
                           for (p, rule), r in sorted(self.rules.items()) if p == policy]}
                for policy, row in sorted(self.policies.items())
            ],
        }

    def table(self) -> list[str]:
        header = ("POLICY / RULE", "CHECKED", "SKIPPED", "VIOLATING", "ENFORCE", "WARN", "AUDIT", "TOP NAMESPACES")
        rows: list[tuple[str, ...]] = []
        for policy, row in sorted(self.policies.items()):
            rows.append((policy, f"{row.checked:,}", f"{row.skipped:,}", f"{row.violating:,}",
                         *(f"{row.modes[m]:,}" for m in ("enforce", "warn", "audit")), row.top()))
            for (owner, rule), found in sorted(self.rules.items()):
                if owner != policy or not rule:
                    continue
                label = f"  {rule}" + (f" ({found.errors:,} errors)" if found.errors else "")
                rows.append((label, "", "", f"{found.violating:,}",
                             *(f"{found.modes[m]:,}" for m in ("enforce", "warn", "audit")), found.top()))
        return _columns(header, rows, right=range(1, 7))


def _columns(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Iterable[int]) -> list[str]:
    aligned = set(right)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if i in aligned else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "  ".join(parts).rstrip()

    return [line(header), *(line(r) for r in rows)]


def totals_lines(summary: Summary, *, listed: int, uncovered: Counter[str], unknown_namespaces: int) -> list[str]:
    """The lines under the table: what was read, folded, left out, and what it means."""
    lines = [f"{listed:,} objects evaluated: {summary.reported:,} reported"
             + (f", {summary.folded:,} folded into their owners (same findings as the owner's Pods)"
                if summary.folded else "")
             + (f", {summary.differing:,} reported apart from an owner they differ from" if summary.differing else "")
             + "."]
    if uncovered:
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in uncovered.most_common(6))
        lines.append(f"{sum(uncovered.values()):,} objects of kinds no loaded policy checks on create: {kinds}.")
    by_mode = summary.objects_by_mode
    lines.append(f"{by_mode['enforce']:,} objects would be denied if created now (enforce), "
                 f"{by_mode['warn']:,} would get warnings, {by_mode['audit']:,} audit annotations only.")
    if unknown_namespaces:
        lines.append(f"Labels of {unknown_namespaces:,} namespaces are unknown (no Namespace object was read): "
                     "namespaceSelector scopes do not match objects there; include `kubectl get namespaces`.")
    return lines


class Wide:
    """``-o wide``: one line per violation (and per error), written as found."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.lines = 0

    def add(self, entry: model.Entry) -> None:
        if entry.owner is not None:
            return
        differs = f" (differs from {entry.differs_from.text()})" if entry.differs_from else ""
        for result in entry.results:
            if result.violation or result.result == "error":
                outcome = f"{result.result} ({result.mode})" if result.mode else result.result
                name = f"{result.policy}/{result.rule}" if result.rule else result.policy
                self.stream.write(f"{entry.ref.text()}{differs}  {name}  {outcome}  {result.message}\n")
                self.lines += 1


def result_dict(result: model.Result) -> dict[str, Any]:
    found: dict[str, Any] = {"policy": result.policy, "rule": result.rule, "result": result.result}
    if result.mode:
        found["mode"] = result.mode
    if result.message:
        found["message"] = result.message
    if result.subject != "object":
        found["subject"] = result.subject
    return found


class Json:
    """``-o json``: one JSON document, written as the scan goes: ``objects`` holds every reported
    object with a violation or an error (passes and skips are only counted), then ``summary`` and
    ``problems`` close it."""

    def __init__(self, stream: TextIO, *, what_if: bool = False) -> None:
        self.stream = stream
        self.what_if = what_if
        self.count = 0
        stream.write('{"apiVersion": "admission.dev/v1alpha1", "kind": "AuditResult", "objects": [')

    def add(self, entry: model.Entry) -> None:
        if entry.owner is not None:
            return
        found: dict[str, Any] = {**entry.ref.to_dict()}
        if self.what_if:
            new, fixed = whatif.changes(entry.baseline or (), entry.results)
            if not new and not fixed:
                return
            found["new"] = [result_dict(r) for r in new]
            found["fixed"] = [result_dict(r) for r in fixed]
        else:
            shown = [r for r in entry.results if r.violation or r.result == "error"]
            if not shown:
                return
            found["results"] = [result_dict(r) for r in shown]
        if entry.differs_from is not None:
            found["differsFrom"] = entry.differs_from.to_dict()
        self.stream.write(("\n  " if not self.count else ",\n  ") + orjson.dumps(found).decode())
        self.count += 1

    def close(self, summary: dict[str, Any], problems: Sequence[str]) -> None:
        tail = orjson.dumps({"summary": summary, "problems": list(problems)}, option=orjson.OPT_INDENT_2).decode()
        self.stream.write(("\n" if self.count else "") + "],\n" + tail[tail.index("\n") + 1:] + "\n")


class WhatIf:
    """``--what-if`` counters: per policy and rule, objects with new and fixed violations."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.new: dict[tuple[str, str], Row] = {}
        self.fixed: dict[tuple[str, str], Row] = {}
        self.objects_new: Counter[str] = Counter()
        self.objects_fixed = 0
        self.stream = stream
        """``-o wide``: a ``+``/``-`` line per change, written as found."""

    def add(self, entry: model.Entry) -> None:
        if entry.owner is not None:
            return
        new, fixed = whatif.changes(entry.baseline or (), entry.results)
        namespace = entry.ref.namespace
        for result, table, sign in [*((r, self.new, "+") for r in new), *((r, self.fixed, "-") for r in fixed)]:
            row = table.setdefault((result.policy, result.rule), Row())
            row.violating += 1
            if result.mode:
                row.modes[result.mode] += 1
            row.namespaces[namespace] += 1
            if self.stream is not None:
                outcome = f"{result.result} ({result.mode})" if result.mode else result.result
                name = f"{result.policy}/{result.rule}" if result.rule else result.policy
                self.stream.write(f"{sign} {entry.ref.text()}  {name}  {outcome}  {result.message}\n")
        strongest = _strongest(new)
        if new:
            self.objects_new[strongest or "error"] += 1
        if fixed:
            self.objects_fixed += 1

    def found(self, modes: Iterable[str]) -> bool:
        return any(self.objects_new[m] for m in modes)

    def to_dict(self) -> dict[str, Any]:
        def rows(table: dict[tuple[str, str], Row]) -> list[dict[str, Any]]:
            return [{"policy": p, "rule": r, "objects": row.violating, "modes": dict(row.modes),
                     "topNamespaces": dict(row.top_namespaces())}
                    for (p, r), row in sorted(table.items())]

        return {"objectsWithNew": dict(self.objects_new), "objectsWithFixed": self.objects_fixed,
                "new": rows(self.new), "fixed": rows(self.fixed)}

    def table(self) -> list[str]:
        header = ("POLICY / RULE", "NEW", "ENFORCE", "WARN", "AUDIT", "FIXED", "TOP NAMESPACES (NEW)")
        rows = []
        for key in sorted(set(self.new) | set(self.fixed)):
            new, fixed = self.new.get(key, Row()), self.fixed.get(key, Row())
            label = f"{key[0]}/{key[1]}" if key[1] else key[0]
            rows.append((label, f"{new.violating:,}", *(f"{new.modes[m]:,}" for m in ("enforce", "warn", "audit")),
                         f"{fixed.violating:,}", new.top()))
        return _columns(header, rows, right=range(1, 6))

    def totals(self) -> str:
        gained = sum(self.objects_new.values())
        return (f"{gained:,} objects gain violations ({self.objects_new['enforce']:,} would be denied if created "
                f"now), {self.objects_fixed:,} lose some.")
