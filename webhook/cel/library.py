"""The Kubernetes CEL libraries (``k8s.io/apiserver/pkg/cel/library``) on top of cel-cpp's own.

cel-cpp brings the cel-go extension libraries the API server enables (strings, lists, sets,
optional types, two-variable comprehensions, ...). This module adds the Kubernetes ones that need no
opaque value types:

* lists (``library.Lists``): ``isSorted()``, ``sum()``, ``min()``, ``max()``, ``indexOf(x)``,
  ``lastIndexOf(x)``;
* regex (``library.Regex``): ``find(re)``, ``findAll(re)``, ``findAll(re, n)``;
* JSON patch (mutations only, ``library.JSONPatch``): ``jsonpatch.escapeKey(s)``.

``quantity()``, ``url()``, ``ip()``/``cidr()``, ``semver()``, ``format.*`` and ``authorizer`` need
opaque types, which cel-expr-python 0.1 cannot return from Python; an expression using them fails to
compile here with cel-go's ``undeclared reference`` wording, so such a policy is refused at load
with a message naming the expression (the README lists them).

An implementation raises :class:`ValueError` with cel-go's text; cel-cpp turns the exception into
an error value, which :func:`webhook.cel.runtime.error_text` passes on unchanged.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from cel_expr_python import cel


def _comparable(items: list[Any], function: str) -> None:
    kinds = {type(item) for item in items}
    if len(kinds) > 1 and not kinds <= {int, float}:
        raise ValueError(f"no such overload: {function}")


def _is_sorted(items: list[Any]) -> bool:
    _comparable(items, "isSorted")
    return all(items[i] <= items[i + 1] for i in range(len(items) - 1))


def _sum(items: list[Any]) -> Any:
    _comparable(items, "sum")
    if not items:
        return 0
    total = items[0]
    for item in items[1:]:
        total = total + item
    if isinstance(total, int) and not -(2**63) <= total < 2**63:
        raise ValueError("integer overflow")
    return total


def _extreme(items: list[Any], *, pick: Any, name: str) -> Any:
    if not items:
        raise ValueError(f"{name} called on empty list")
    _comparable(items, name)
    return pick(items)


def _index_of(items: list[Any], value: Any) -> int:
    for index, item in enumerate(items):
        if type(item) is type(value) and item == value:
            return index
    return -1


def _last_index_of(items: list[Any], value: Any) -> int:
    for index in range(len(items) - 1, -1, -1):
        if type(items[index]) is type(value) and items[index] == value:
            return index
    return -1


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"error parsing regexp: {exc}") from None


def _find(text: str, pattern: str) -> str:
    match = _regex(pattern).search(text)
    return match.group(0) if match else ""


def _find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    found = [m.group(0) for m in _regex(pattern).finditer(text)]
    return found if limit < 0 else found[:limit]


def _escape_key(key: str) -> str:
    """RFC 6901: ``~`` first, then ``/``, in one pass (``k8s.io/my~label`` -> ``k8s.io~1my~0label``)."""
    return key.replace("~", "~0").replace("/", "~1")


def _overload(signature: str, returns: Any, impl: Any) -> Any:
    return cel.Overload(signature=signature, return_type=returns, impl=impl)


def extensions(*, patch_types: bool = False) -> list[Any]:
    """The Kubernetes functions as one cel-cpp extension (declarations and implementations)."""
    declarations = [
        cel.FunctionDecl("isSorted", [_overload("list<dyn>.isSorted()", cel.Type.BOOL, _is_sorted)]),
        cel.FunctionDecl("sum", [_overload("list<dyn>.sum()", cel.Type.DYN, _sum)]),
        cel.FunctionDecl("min", [_overload("list<dyn>.min()", cel.Type.DYN,
                                           functools.partial(_extreme, pick=min, name="min"))]),
        cel.FunctionDecl("max", [_overload("list<dyn>.max()", cel.Type.DYN,
                                           functools.partial(_extreme, pick=max, name="max"))]),
        cel.FunctionDecl("indexOf", [_overload("list<dyn>.indexOf(dyn)", cel.Type.INT, _index_of)]),
        cel.FunctionDecl("lastIndexOf", [_overload("list<dyn>.lastIndexOf(dyn)", cel.Type.INT, _last_index_of)]),
        cel.FunctionDecl("find", [_overload("string.find(string)", cel.Type.STRING, _find)]),
        cel.FunctionDecl("findAll", [
            _overload("string.findAll(string)", cel.Type("list<string>"), _find_all),
            _overload("string.findAll(string, int)", cel.Type("list<string>"), _find_all),
        ]),
    ]
    if patch_types:
        declarations.append(
            cel.FunctionDecl("jsonpatch.escapeKey", [_overload("jsonpatch.escapeKey(string)", cel.Type.STRING,
                                                               _escape_key)])
        )
    return [cel.CelExtension("kubernetes", declarations)]
