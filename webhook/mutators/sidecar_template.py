"""A small, safe substitution syntax for sidecar templates: ``${pod.name}``, ``${pod.labels['app']}``.

Sidecar templates live in policy files written by cluster admins, but the values they are rendered
with (labels, annotations, names) come from whoever creates the Pod. So the syntax is deliberately
not an expression language: a reference is one of a fixed set of paths, rendered as a plain string,
and nothing is ever evaluated. Every string of a template is compiled when the policy file is
loaded, so an unknown reference (``${pod.spec}``, a typo) fails loudly at load time, never at review.

Grammar (anything else after ``${`` is an error; ``$${`` renders a literal ``${``)::

    ${pod.name}                 metadata.name, else generateName, else the workload's name
    ${pod.namespace}            metadata.namespace, else the request's namespace
    ${pod.labels['key']}        a label of the pod (template); missing renders as ""
    ${pod.annotations['key']}   an annotation of the pod (template); missing renders as ""

Keys may use single or double quotes and may contain any character but the quote itself.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

_REFERENCE = re.compile(
    r"""\$\{\s*pod\.(?:
        (?P<field>name|namespace)
      | (?P<map>labels|annotations)\[\s*(?:'(?P<sq>[^']*)'|"(?P<dq>[^"]*)")\s*\]
    )\s*\}""",
    re.VERBOSE,
)


@dataclasses.dataclass(frozen=True, slots=True)
class PodValues:
    """What a template may read about the pod it is rendered for."""

    name: str = ""
    namespace: str = ""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)


# A compiled string: literal text and (map, key) references, in order. ``map`` is "name",
# "namespace", "labels" or "annotations"; ``key`` is "" for the two plain fields.
_Part = str | tuple[str, str]


def compile_string(text: str) -> tuple[_Part, ...]:
    """Split ``text`` into literals and references; ``ValueError`` names the bad reference."""
    parts: list[_Part] = []
    literal: list[str] = []
    index = 0
    while True:
        start = text.find("$", index)
        if start < 0:
            literal.append(text[index:])
            break
        literal.append(text[index:start])
        if text.startswith("$${", start):
            literal.append("${")
            index = start + 3
            continue
        if not text.startswith("${", start):
            literal.append("$")
            index = start + 1
            continue
        match = _REFERENCE.match(text, start)
        if match is None:
            end = text.find("}", start)
            shown = text[start : end + 1] if end >= 0 else text[start:]
            raise ValueError(
                f"unknown template reference {shown!r} at offset {start}: use ${{pod.name}}, "
                "${pod.namespace}, ${pod.labels['key']} or ${pod.annotations['key']} "
                "(write $${ for a literal ${)"
            )
        if any(literal):
            parts.append("".join(literal))
        literal = []
        if match.group("field"):
            parts.append((match.group("field"), ""))
        else:
            key = match.group("sq") if match.group("sq") is not None else match.group("dq")
            parts.append((match.group("map"), key))
        index = match.end()
    if any(literal):
        parts.append("".join(literal))
    return tuple(parts)


def validate(value: Any) -> None:
    """Compile every string in ``value`` (nested dicts and lists), raising on the first bad one."""
    if isinstance(value, str):
        compile_string(value)
    elif isinstance(value, dict):
        for item in value.values():
            validate(item)
    elif isinstance(value, list | tuple):
        for item in value:
            validate(item)


def render(value: Any, *, pod: PodValues) -> Any:
    """A deep copy of ``value`` with every string rendered for ``pod``; keys are never rendered."""
    if isinstance(value, str):
        return _render_string(value, pod=pod) if "$" in value else value
    if isinstance(value, dict):
        return {key: render(item, pod=pod) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, pod=pod) for item in value]
    return value


def _render_string(text: str, *, pod: PodValues) -> str:
    out: list[str] = []
    for part in compile_string(text):
        if isinstance(part, str):
            out.append(part)
            continue
        source, key = part
        if source == "name":
            out.append(pod.name)
        elif source == "namespace":
            out.append(pod.namespace)
        else:
            values = pod.labels if source == "labels" else pod.annotations
            found = values.get(key, "")
            out.append(found if isinstance(found, str) else "")
    return "".join(out)
