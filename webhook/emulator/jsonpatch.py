"""JSON patch as the API server applies a mutating webhook's answer (gopkg.in/evanphx/json-patch.v4).

Not RFC 6902 to the letter: the API server uses evanphx/json-patch v4, whose behaviour differs in
ways a webhook author can trip over, and whose error texts end up in the client's error. Both are
kept here: ``replace`` of a missing *key* in an existing object succeeds (it only fails when the
parent is missing); ``null`` members count as missing; negative array indices count from the end;
``test`` only compares the keys of the document's value. Errors read exactly like the Go ones
(``add operation does not apply: doc is missing path: "/x/y": missing value``).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from webhook import jsonpointer
from webhook.emulator import texts

MISSING = jsonpointer.MISSING
INVALID_INDEX = jsonpointer.INVALID_INDEX
TEST_FAILED = "test failed"
PatchError = jsonpointer.PatchError
"""A patch that does not decode or does not apply; ``str()`` is the Go error text."""


def decode(raw: bytes) -> list[dict[str, Any] | None]:
    """``jsonpatch.DecodePatch``: a JSON array of operation objects (``null`` ones are kept)."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PatchError(texts.go_json_syntax_error(exc)) from None
    except UnicodeDecodeError:
        raise PatchError("invalid character looking for beginning of value") from None
    if value is None:
        return []
    if not isinstance(value, list):
        raise PatchError(
            f"json: cannot unmarshal {texts.go_json_kind(value)} into Go value of type jsonpatch.Patch"
        )
    for op in value:
        if op is not None and not isinstance(op, dict):
            raise PatchError(
                f"json: cannot unmarshal {texts.go_json_kind(op)} into Go value of type jsonpatch.Operation"
            )
    return value


def apply(ops: list[dict[str, Any] | None], document: dict[str, Any]) -> dict[str, Any]:
    """Apply ``ops`` in order to a copy of ``document``; the first failing op raises :class:`PatchError`."""
    doc: dict[str, Any] = copy.deepcopy(document)
    for op in ops:
        op = op or {}
        kind = op.get("op") if isinstance(op.get("op"), str) else "unknown"
        handler = _HANDLERS.get(str(kind))
        if handler is None:
            raise PatchError(f"Unexpected kind: {kind}")
        handler(doc, op)
    return doc


def _path(op: dict[str, Any], field: str = "path") -> str:
    if field not in op or op[field] is None:
        what = "operation missing path field" if field == "path" else "operation, missing from field"
        raise PatchError(f"{what}: {MISSING}")
    value = op[field]
    if not isinstance(value, str):
        raise PatchError(f"json: cannot unmarshal {texts.go_json_kind(value)} into Go value of type string")
    return value


def _op_add(doc: Any, op: dict[str, Any]) -> None:
    try:
        path = _path(op)
    except PatchError:
        raise PatchError(f"add operation failed to decode path: {MISSING}") from None
    found = jsonpointer.find(doc, path)
    if found is None:
        raise PatchError(f'add operation does not apply: doc is missing path: "{path}": {MISSING}')
    try:
        jsonpointer.add(*found, op.get("value"))
    except PatchError as exc:
        raise PatchError(f"error in add for path: '{path}': {exc}") from None


def _op_remove(doc: Any, op: dict[str, Any]) -> None:
    try:
        path = _path(op)
    except PatchError:
        raise PatchError(f"remove operation failed to decode path: {MISSING}") from None
    found = jsonpointer.find(doc, path)
    if found is None:
        raise PatchError(f'remove operation does not apply: doc is missing path: "{path}": {MISSING}')
    try:
        jsonpointer.remove(*found)
    except PatchError as exc:
        raise PatchError(f"error in remove for path: '{path}': {exc}") from None


def _op_replace(doc: Any, op: dict[str, Any]) -> None:
    try:
        path = _path(op)
    except PatchError as exc:
        raise PatchError(f"replace operation failed to decode path: {exc}") from None
    found = jsonpointer.find(doc, path)
    if found is None:
        raise PatchError(f"replace operation does not apply: doc is missing path: {path}: {MISSING}")
    container, key = found
    try:
        jsonpointer.get(container, key)
    except PatchError:
        raise PatchError(f"replace operation does not apply: doc is missing key: {path}: {MISSING}") from None
    jsonpointer.set_existing(container, key, op.get("value"))


def _op_move(doc: Any, op: dict[str, Any]) -> None:
    try:
        source = _path(op, "from")
    except PatchError as exc:
        raise PatchError(f"move operation failed to decode from: {exc}") from None
    found = jsonpointer.find(doc, source)
    if found is None:
        raise PatchError(f"move operation does not apply: doc is missing from path: {source}: {MISSING}")
    container, key = found
    try:
        value = jsonpointer.get(container, key)
        jsonpointer.remove(container, key)
    except PatchError as exc:
        raise PatchError(f"error in move for path: '{key}': {exc}") from None
    try:
        path = _path(op)
    except PatchError as exc:
        raise PatchError(f"move operation failed to decode path: {exc}") from None
    found = jsonpointer.find(doc, path)
    if found is None:
        raise PatchError(f"move operation does not apply: doc is missing destination path: {path}: {MISSING}")
    try:
        jsonpointer.add(*found, value)
    except PatchError as exc:
        raise PatchError(f"error in move for path: '{path}': {exc}") from None


def _op_copy(doc: Any, op: dict[str, Any]) -> None:
    try:
        source = _path(op, "from")
    except PatchError as exc:
        raise PatchError(f"copy operation failed to decode from: {exc}") from None
    found = jsonpointer.find(doc, source)
    if found is None:
        raise PatchError(f"copy operation does not apply: doc is missing from path: {source}: {MISSING}")
    try:
        value = jsonpointer.get(*found)
    except PatchError as exc:
        raise PatchError(f"error in copy for from: '{source}': {exc}") from None
    try:
        path = _path(op)
    except PatchError:
        raise PatchError(f"copy operation failed to decode path: {MISSING}") from None
    found = jsonpointer.find(doc, path)
    if found is None:
        raise PatchError(f"copy operation does not apply: doc is missing destination path: {path}: {MISSING}")
    try:
        jsonpointer.add(*found, copy.deepcopy(value))
    except PatchError as exc:
        raise PatchError(f"error while adding value during copy: {exc}") from None


def _op_test(doc: Any, op: dict[str, Any]) -> None:
    try:
        path = _path(op)
    except PatchError as exc:
        raise PatchError(f"test operation failed to decode path: {exc}") from None
    found = jsonpointer.find(doc, path)
    if found is None:
        raise PatchError(f"test operation does not apply: is missing path: {path}: {MISSING}")
    try:
        value = jsonpointer.get(*found)
    except PatchError as exc:
        raise PatchError(f"error in test for path: '{path}': {exc}") from None
    expected = op.get("value")
    if value is None and expected is None:
        return
    if value is None or not _loosely_equal(value, expected):
        raise PatchError(f"testing value {path} failed: {TEST_FAILED}")


def _loosely_equal(value: Any, expected: Any) -> bool:
    """``lazyNode.equal``: objects compare only the keys the document's value has."""
    if isinstance(value, dict):
        if not isinstance(expected, dict):
            return False
        return all(
            k in expected and (v is None and expected[k] is None or _loosely_equal(v, expected[k]))
            for k, v in value.items()
        )
    if isinstance(value, list):
        return (
            isinstance(expected, list)
            and len(value) == len(expected)
            and all(_loosely_equal(a, b) for a, b in zip(value, expected, strict=True))
        )
    return type(value) is type(expected) and value == expected


_HANDLERS = {
    "add": _op_add,
    "remove": _op_remove,
    "replace": _op_replace,
    "move": _op_move,
    "copy": _op_copy,
    "test": _op_test,
}
