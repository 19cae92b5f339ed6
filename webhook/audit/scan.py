"""One pass over a source: each object evaluated, placed (on itself or its owner), handed to the sinks.

A *source* (:class:`webhook.audit.dump.Source` or :class:`webhook.audit.live.Source`) knows the
Namespaces before the first object and yields objects owners first; the scan holds one object at a
time. With two evaluators (``--what-if``: current, then proposed) each object is evaluated by both,
and folding compares both signatures, so an owned object is folded only when it matches its owner
under either policy set.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

from webhook.audit import evaluate, model, output, owners, progress


class Source(Protocol):
    namespaces: dict[str, model.Namespace]
    problems: list[str]
    total: int | None

    def prepare(self, on_object: Callable[[], None] | None = None) -> None: ...

    def items(self) -> Iterator[model.Item]: ...

    def close(self) -> None: ...


@dataclasses.dataclass(slots=True)
class Totals:
    listed: int = 0
    uncovered: Counter[str] = dataclasses.field(default_factory=Counter)
    """Objects no loaded policy checks, by kind (a dump holds whatever was dumped)."""
    unknown_namespaces: set[str] = dataclasses.field(default_factory=set)
    problems: list[str] = dataclasses.field(default_factory=list)


def run(
    source: Source,
    evaluators: Sequence[evaluate.Evaluator],
    sinks: Sequence[output.Sink],
    *,
    fold: bool = True,
    shown: progress.Progress | None = None,
) -> Totals:
    """Evaluate every object of an already prepared ``source``; problems of single objects are
    collected (the scan goes on)."""
    totals = Totals()
    placed = owners.Owners(fold=fold)
    shown = shown or progress.Progress(None)
    shown.start("evaluating", total=source.total)
    for item in source.items():
        totals.listed += 1
        obj = item.object
        metadata = obj.get("metadata")
        namespace_name = str(metadata.get("namespace") or "") if isinstance(metadata, dict) else ""
        namespace = source.namespaces.get(namespace_name) if namespace_name else None
        if namespace_name and namespace is None:
            totals.unknown_namespaces.add(namespace_name)
        kind = str(obj.get("kind") or "")
        shown.tick(kind)
        try:
            found = [evaluator.evaluate(item, namespace) for evaluator in evaluators]
        except model.Problem as exc:
            totals.problems.append(str(exc))
            continue
        results = found[-1][0]
        baseline = found[0][0] if len(found) > 1 else None
        if not results and not baseline:
            totals.uncovered[kind] += 1
            continue
        entry = model.Entry(model.Ref.of(obj), results, baseline, signature=tuple(sig for _, sig in found))
        placed.place(obj, entry)
        for sink in sinks:
            sink.add(entry)
    shown.close()
    return totals
