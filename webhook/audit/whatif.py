"""``--what-if``: what a proposed policy set would change, object by object.

Both sets are evaluated on each object in the same pass (the cluster is listed once). A *new*
violation is one the proposed set finds and the current one does not, or finds at a stronger mode
(a warning that would become a denial); a *fixed* one is the reverse. Errors count as violations:
a proposed policy that raises on an object is something to know before rolling it out.
"""

from __future__ import annotations

from collections.abc import Iterable

from webhook.audit import model


def _findings(results: Iterable[model.Result]) -> dict[tuple[str, str], model.Result]:
    return {(r.policy, r.rule): r for r in results if r.violation or r.result == "error"}


def changes(
    baseline: Iterable[model.Result], proposed: Iterable[model.Result]
) -> tuple[list[model.Result], list[model.Result]]:
    """``(new, fixed)``: the proposed results that are new or stronger, the current results that
    are gone or weaker."""
    before, after = _findings(baseline), _findings(proposed)
    new = [r for key, r in after.items() if key not in before or r.strength > before[key].strength]
    fixed = [r for key, r in before.items() if key not in after or after[key].strength < r.strength]
    return new, fixed
