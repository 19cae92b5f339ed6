"""Small helpers every validator uses to read untrusted shapes and to word its findings.

Quoting follows JSON (double quotes, escapes), as Pod Security admission's messages quote names;
shape helpers turn a wrong type into "unset", never into an exception (the API server rejects
such objects itself; a policy must not crash on them first).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any


def quote(value: Any) -> str:
    """``"name"``: a value as messages show it (non-strings are shown by their text)."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'  # what json.dumps gives for such text, without its cost on every finding
    return json.dumps(text, ensure_ascii=False)


def quote_all(values: Iterable[Any]) -> str:
    """``"a", "b"``."""
    return ", ".join(quote(v) for v in values)


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` when it is a mapping, else an empty one."""
    return value if isinstance(value, dict) else {}


def strings(value: Any) -> list[str]:
    """The string entries of a list field; anything else (null, a string, a dict) is empty."""
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
