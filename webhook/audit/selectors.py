"""``--selector``: label selectors in kubectl's syntax, parsed once and matched like the API server.

``app=web,tier!=db,env in (prod,staging),!legacy,release`` — the grammar of
``k8s.io/apimachinery/pkg/labels.Parse``: ``=``/``==``, ``!=``, ``in``, ``notin``, ``key`` (exists)
and ``!key`` (does not exist), comma-separated, all must hold. A live scan passes the text to the
API server as ``labelSelector``; parsing it here first means a typo fails the same way, at once,
with or without a cluster. ``!=`` and ``notin`` match objects without the label, as upstream does.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from webhook.audit import model
from webhook.policy import scope

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)\s*$")
_EQUALITY = re.compile(rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|=|!=)\s*(?P<value>{_VALUE})\s*$")
_EXISTS = re.compile(rf"^\s*(?P<not>!)?\s*(?P<key>{_KEY})\s*$")


Requirement = scope.Requirement


@dataclasses.dataclass(frozen=True, slots=True)
class Selector:
    text: str
    requirements: tuple[Requirement, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return scope.requirements_hold({}, self.requirements, labels)


def _terms(text: str) -> list[str]:
    """Split on commas outside parentheses (``env in (a,b),app=x`` is two terms)."""
    terms, depth, start = [], 0, 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            terms.append(text[start:index])
            start = index + 1
    terms.append(text[start:])
    return terms


def parse(text: str) -> Selector:
    """The selector ``text``; raises :class:`model.AuditError` naming the term that is wrong."""
    requirements: list[Requirement] = []
    if not text.strip():
        return Selector(text, ())
    for term in _terms(text):
        if (found := _SET.match(term)) is not None:
            values = tuple(v.strip() for v in found["values"].split(",") if v.strip())
            if not values:
                raise model.AuditError(f"--selector {text!r}: {term.strip()!r} needs at least one value")
            operator = "In" if found["op"] == "in" else "NotIn"
            requirements.append(Requirement(found["key"], operator, values))
        elif (found := _EQUALITY.match(term)) is not None:
            operator = "NotIn" if found["op"] == "!=" else "In"
            requirements.append(Requirement(found["key"], operator, (found["value"],)))
        elif (found := _EXISTS.match(term)) is not None:
            requirements.append(Requirement(found["key"], "DoesNotExist" if found["not"] else "Exists"))
        else:
            raise model.AuditError(
                f"--selector {text!r}: cannot parse {term.strip()!r}; use key=value, key!=value, "
                "key in (a,b), key notin (a,b), key or !key, separated by commas"
            )
    return Selector(text, tuple(requirements))
