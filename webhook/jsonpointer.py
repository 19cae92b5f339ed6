"""The document access of gopkg.in/evanphx/json-patch.v4, which the API server applies both a
mutating webhook's patch and a MutatingAdmissionPolicy's ``JSONPatch`` with: JSON pointer tokens,
``findObject`` and the ``get``/``set``/``add``/``remove`` of objects and arrays, with their Go
error texts (``Unable to access invalid index: 5: invalid index referenced``). The operations
built on them, and what each caller does with a failed ``test``, stay with the callers
(:mod:`webhook.emulator.jsonpatch`, :mod:`webhook.cel.mutating`).

Arrays accept negative indices counting from the end, as v4 does; ``-`` appends on ``add``.
"""

from __future__ import annotations

import re
from typing import Any

from webhook import gotext

MISSING = "missing value"
INVALID_INDEX = "invalid index referenced"

_TOKEN_ESCAPE = re.compile(r"~[01]")
_ATOI = re.compile(r"[+-]?[0-9]+")


class PatchError(Exception):
    """An operation that does not apply; ``str()`` is the Go error text."""


def decode_token(token: str) -> str:
    """``strings.NewReplacer("~1", "/", "~0", "~")``: one pass, left to right."""
    return _TOKEN_ESCAPE.sub(lambda m: "/" if m.group(0) == "~1" else "~", token)


def atoi(key: str) -> int:
    """Go's ``strconv.Atoi``, its errors included."""
    if not _ATOI.fullmatch(key):
        raise PatchError(f"strconv.Atoi: parsing {gotext.quote(key)}: invalid syntax")
    number = int(key)
    if not -(2**63) <= number < 2**63:
        raise PatchError(f"strconv.Atoi: parsing {gotext.quote(key)}: value out of range")
    return number


def _position(container: list[Any], key: str) -> int:
    """The array position ``key`` names (negative counts from the end), or the v4 error."""
    index = atoi(key)
    if index >= len(container) or index < -len(container):
        raise PatchError(f"Unable to access invalid index: {index}: {INVALID_INDEX}")
    return index


def get(container: Any, key: str) -> Any:
    """An object member (a missing key is ``None``, not an error) or an array item."""
    if isinstance(container, dict):
        return container.get(key)
    return container[_position(container, key)]


def set_existing(container: Any, key: str, value: Any) -> None:
    """``set``, for ``replace`` only: the key exists (:func:`get` succeeded)."""
    if isinstance(container, dict):
        container[key] = value
    else:
        container[_position(container, key)] = value


def add(container: Any, key: str, value: Any) -> None:
    if isinstance(container, dict):
        container[key] = value
        return
    if key == "-":
        container.append(value)
        return
    try:
        index = atoi(key)
    except PatchError as exc:
        raise PatchError(f"value was not a proper array index: '{key}': {exc}") from None
    size = len(container) + 1
    if index >= size or index < -size:
        raise PatchError(f"Unable to access invalid index: {index}: {INVALID_INDEX}")
    container.insert(index + size if index < 0 else index, value)


def remove(container: Any, key: str) -> None:
    if isinstance(container, dict):
        if key not in container:
            raise PatchError(f"Unable to remove nonexistent key: {key}: {MISSING}")
        del container[key]
        return
    del container[_position(container, key)]


def find(root: Any, path: str) -> tuple[Any, str] | None:
    """``findObject``: the container of the path's last token and that token, or ``None``. Like
    v4, the first token is not read (``a/b`` means ``/b``); a missing, null or scalar step on the
    way is ``None``."""
    split = path.split("/")
    if len(split) < 2:
        return None
    doc = root
    for part in split[1:-1]:
        try:
            found = get(doc, decode_token(part))
        except PatchError:
            return None
        if not isinstance(found, dict | list):
            return None
        doc = found
    return doc, decode_token(split[-1])
