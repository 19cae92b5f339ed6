"""Go's ``strconv.Quote`` (what ``%q`` prints): the one way strings are quoted in the API server's
texts we reproduce (``admission webhook "x" denied the request``, ``strconv.Atoi: parsing "x"``,
Pod Security's ``key="value"`` findings, the CEL types' parse errors).

Double quotes around the text; ``\\a \\b \\f \\n \\r \\t \\v \\" \\\\`` as Go escapes them; other
control characters and bytes that are not UTF-8 as ``\\xNN``; characters ``unicode.IsPrint``
rejects (not a letter, mark, number, punctuation or symbol, and not the ASCII space) as ``\\uNNNN``
or ``\\UNNNNNNNN``; everything else as it is. Python's ``str.isprintable`` draws the same line.
"""

from __future__ import annotations

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
            '"': '\\"', "\\": "\\\\"}


def quote(text: str | bytes) -> str:
    """``strconv.Quote(text)``; ``bytes`` that are not UTF-8 keep their bad bytes as ``\\xNN``."""
    decoded = text.decode("utf-8", errors="surrogateescape") if isinstance(text, bytes) else text
    if decoded.isprintable() and '"' not in decoded and "\\" not in decoded:
        return f'"{decoded}"'  # the common case: nothing to escape
    out = ['"']
    for char in decoded:
        code = ord(char)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF and isinstance(text, bytes):  # a byte that was not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif char.isprintable():
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)
