"""The MutatingAdmissionPolicy patch types as plain CEL, for a runtime that has no such types.

The API server compiles ``mutations[].jsonPatch.expression`` and ``applyConfiguration.expression``
with two object types (``pkg/cel/mutation``): ``JSONPatch{op: ..., path: ..., value: ...}`` and
``Object{spec: Object.spec{...}}``, whose type names follow the field path from the root. It also
adds ``jsonpatch.escapeKey(s)``. cel-cpp knows none of them, so before compiling, the source is
rewritten:

* a typed literal ``Object.spec.template{`` or ``JSONPatch{`` becomes a map literal ``{``, and its
  field initializers ``name:`` (``?name:``, a backquoted ```name```) become ``'name':``; values are
  untouched, nested literals are rewritten the same way;
* ``jsonpatch.escapeKey(s)`` becomes ``(s).replace('~', '~0').replace('/', '~1')``, the same
  single-pass RFC 6901 escape (``~`` is escaped before the ``~1`` that ``/`` turns into).

Field access (``p.op``), ``has(p.value)`` and ``==`` work on the maps as on the API server's objects.
The tokenizer skips string literals (quoted, triple-quoted, raw, bytes) and ``//`` comments, so a
``'JSONPatch{'`` inside a string stays a string.

What the rewrite also records, because the maps no longer carry type names:

* the name of every ``Object`` literal against the field path from its root literal
  (``Object.specx`` where ``Object.spec`` belongs): the API server finds these at evaluation
  (``CheckTypeNamesMatchFieldPathNames``) and fails the mutation with ``type mismatch: ...``;
* whether the source holds a root ``Object`` / a ``JSONPatch`` literal and whether the whole
  expression is one typed literal, for the create-time return type checks (``must evaluate to
  Object but got Object.spec``).

Compile errors point at the user's source: :meth:`Rewritten.restore` maps ``<input>:line:col`` and
the quoted source line of cel-cpp's messages back through the rewrite.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

OBJECT = "Object"
JSONPATCH = "JSONPatch"
_ESCAPE_SUFFIX = ".replace('~', '~0').replace('/', '~1')"

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>//[^\n]*)
  | (?P<string>(?:[rR][bB]?|[bB][rR]?)?(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"
                                          |'(?:\\.|[^\\'\n])*'|"(?:\\.|[^\\"\n])*"))
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[uU]?)
  | (?P<ident>[_a-zA-Z][_a-zA-Z0-9]*)
  | (?P<backquoted>`[^`\n]*`)
  | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_RAW_STRING = re.compile(r"(?:[rR][bB]?|[bB][rR])(?:'''.*?'''|\"\"\".*?\"\"\"|'[^'\n]*'|\"[^\"\n]*\")", re.DOTALL)
_VALUE_END = frozenset({"ident", "number", "string", "backquoted"})


class SyntaxProblem(Exception):
    """A typed literal the API server's parser refuses; the message is a cel-go style issue
    (``ERROR: <input>:1:8: Syntax error: ...``) on the user's source."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    start: int


def _tokens(source: str) -> list[_Token]:
    found: list[_Token] = []
    position = 0
    while position < len(source):
        # Raw strings first: the general pattern would treat a backslash before the quote as an escape.
        raw = _RAW_STRING.match(source, position)
        if raw is not None and (position == 0 or not (source[position - 1].isalnum() or source[position - 1] == "_")):
            found.append(_Token("string", raw.group(0), position))
            position = raw.end()
            continue
        match = _TOKEN.match(source, position)
        assert match is not None and match.lastgroup is not None  # (?P<punct>.) matches any character
        if match.lastgroup not in ("space", "comment"):
            found.append(_Token(match.lastgroup, match.group(0), position))
        position = match.end()
    return found


@dataclasses.dataclass(slots=True)
class _Frame:
    """An open bracket; a typed literal knows its name, its path from the root and its field."""

    closer: str
    literal: str | None = None
    path: str | None = None
    """The type name the API server expects here (the root's own name, then ``<parent>.<field>``)."""
    field: str | None = None
    expecting_field: bool = False
    escape: bool = False
    outermost: bool = False
    """A typed literal with nothing but parentheses around it (it may be the whole expression)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Rewritten:
    source: str
    text: str
    """What cel-cpp compiles."""
    origins: tuple[int, ...]
    """For each character of ``text`` (and one past its end), the index in ``source`` it comes from."""
    mismatches: tuple[str, ...] = ()
    """The API server's ``CheckTypeNamesMatchFieldPathNames`` errors, in source order."""
    has_object: bool = False
    """Some root literal is named ``Object`` (an ApplyConfiguration result can be one)."""
    has_jsonpatch: bool = False
    whole: str | None = None
    """The type name when the whole expression is one typed literal."""

    def restore(self, message: str) -> str:
        """A cel-cpp compile message with positions and quoted lines of ``source``, not ``text``."""
        if self.text == self.source:
            return message
        return _ISSUE.sub(self._issue, message)

    def _issue(self, match: re.Match[str]) -> str:
        line, column = int(match.group("line")), int(match.group("col"))
        offset = _offset(self.text, line, column)
        origin = self.origins[min(max(offset, 0), len(self.origins) - 1)]
        line, column = _line_column(self.source, origin)
        quoted = self.source.split("\n")[line - 1]
        return (f"{match.group('level')}: <input>:{line}:{column}: {match.group('message')}\n"
                f" | {quoted}\n | {_caret(quoted, column)}")


def unchanged(source: str) -> Rewritten:
    """``source`` as is: every character from its own position."""
    return Rewritten(source, source, (*range(len(source)), len(source)))


_ISSUE = re.compile(
    r"(?P<level>ERROR|WARNING): <input>:(?P<line>\d+):(?P<col>\d+): (?P<message>[^\n]*)\n \| [^\n]*\n \| [.．]*[\^＾]"
)


def _offset(text: str, line: int, column: int) -> int:
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    return starts[min(line, len(starts)) - 1] + column - 1


def _line_column(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _caret(line: str, column: int) -> str:
    """cel-cpp's pointer line: one dot per character before the column (full-width for non-ASCII)."""
    dots = "".join("．" if ord(ch) > 127 else "." for ch in line[: column - 1])
    at = line[column - 1] if column - 1 < len(line) else ""
    return dots + ("＾" if at and ord(at) > 127 else "^")


def _issue_at(source: str, offset: int, message: str) -> str:
    line, column = _line_column(source, offset)
    quoted = source.split("\n")[line - 1]
    return f"ERROR: <input>:{line}:{column}: {message}\n | {quoted}\n | {_caret(quoted, column)}"


def _type_name(tokens: list[_Token], index: int) -> tuple[str, int] | None:
    """``Object.spec.template`` or ``JSONPatch`` followed by ``{`` at ``index``: the name and the
    index of the ``{``."""
    first = tokens[index]
    if first.kind != "ident" or first.text not in (OBJECT, JSONPATCH):
        return None
    # ``x.Object{`` is a selection; only a leading dot (``.Object{``, the root container) is a name.
    if (index > 1 and tokens[index - 1].text == "." and tokens[index - 1].kind == "punct"
            and (tokens[index - 2].kind in _VALUE_END or tokens[index - 2].text in ")]}")):
        return None
    parts = [first.text]
    at = index + 1
    while (at + 1 < len(tokens) and tokens[at].text == "." and tokens[at + 1].kind == "ident"
           and first.text == OBJECT):
        parts.append(tokens[at + 1].text)
        at += 2
    if at < len(tokens) and tokens[at].text == "{" and tokens[at].kind == "punct":
        return ".".join(parts), at
    return None


def _escape_call(tokens: list[_Token], index: int) -> bool:
    """``jsonpatch.escapeKey(`` at ``index`` (not a selection on something else)."""
    if index + 3 >= len(tokens):
        return False
    head = tokens[index : index + 4]
    if [t.text for t in head] != ["jsonpatch", ".", "escapeKey", "("]:
        return False
    return index == 0 or tokens[index - 1].text != "." or tokens[index - 1].kind != "punct"


class _Writer:
    def __init__(self, source: str) -> None:
        self.source = source
        self.parts: list[str] = []
        self.origins: list[int] = []
        self.position = 0

    def copy_to(self, end: int) -> None:
        """The source as it is up to ``end``."""
        self.parts.append(self.source[self.position : end])
        self.origins.extend(range(self.position, end))
        self.position = max(self.position, end)

    def replace(self, start: int, end: int, text: str) -> None:
        """``source[start:end]`` becomes ``text``; every character of it points at ``start``."""
        self.copy_to(start)
        self.parts.append(text)
        self.origins.extend([start] * len(text))
        self.position = end

    def finish(self) -> tuple[str, tuple[int, ...]]:
        self.copy_to(len(self.source))
        return "".join(self.parts), (*self.origins, len(self.source))


def rewrite(source: str) -> Rewritten:
    """``source`` with its typed literals as map literals; raises :class:`SyntaxProblem`."""
    tokens = _tokens(source)
    if not any(t.kind == "ident" and t.text in (OBJECT, JSONPATCH, "jsonpatch") for t in tokens):
        return unchanged(source)
    writer = _Writer(source)
    stack: list[_Frame] = []
    mismatches: list[str] = []
    has_object = has_jsonpatch = False
    outermost: list[tuple[str, int, int]] = []  # typed literals inside parentheses only: name, first, last token
    index = 0
    while index < len(tokens):
        token = tokens[index]
        top = stack[-1] if stack else None
        if top is not None and top.literal is not None and top.expecting_field:
            index = _field(tokens, index, top, writer)
            continue
        named = _type_name(tokens, index)
        if named is not None:
            name, brace = named
            start = token.start
            if index > 0 and tokens[index - 1].text == "." and tokens[index - 1].kind == "punct":
                start = tokens[index - 1].start  # the leading dot of ``.Object{``
            parent = next((f for f in reversed(stack) if f.literal is not None), None)
            path = name
            if name != JSONPATCH and parent is not None and parent.literal != JSONPATCH and parent.field:
                path = f"{parent.path}.{parent.field}"
                if name != path:
                    mismatches.append(f'unexpected type name "{name}", expected "{path}", which matches field '
                                      "name path from root Object type")
            has_jsonpatch = has_jsonpatch or name == JSONPATCH
            has_object = has_object or path == OBJECT
            alone = all(f.closer == ")" and not f.escape for f in stack)
            if alone:
                outermost.append((name, index if start == token.start else index - 1, -1))
            writer.replace(start, tokens[brace].start + 1, "{")
            stack.append(_Frame("}", literal=name, path=path, expecting_field=True, outermost=alone))
            index = brace + 1
            continue
        if _escape_call(tokens, index):
            writer.replace(token.start, tokens[index + 3].start + 1, "(")
            stack.append(_Frame(")", escape=True))
            index += 4
            continue
        if token.kind == "punct" and token.text in "([{":
            stack.append(_Frame({"(": ")", "[": "]", "{": "}"}[token.text]))
        elif token.kind == "punct" and token.text in ")]}":
            if stack and stack[-1].closer == token.text:
                closed = stack.pop()
                if closed.escape:
                    writer.replace(token.start, token.start + 1, ")" + _ESCAPE_SUFFIX)
                if closed.outermost:
                    outermost[-1] = (outermost[-1][0], outermost[-1][1], index)
        elif token.kind == "punct" and token.text == "," and top is not None and top.literal is not None:
            top.expecting_field, top.field = True, None
        index += 1
    text, origins = writer.finish()
    whole = None
    if len(outermost) == 1:
        name, first, last = outermost[0]
        if last != -1 and _only_parens(tokens[:first]) and _only_parens(tokens[last + 1 :]):
            whole = name
    return Rewritten(source, text, origins, tuple(mismatches), has_object, has_jsonpatch, whole)


def _only_parens(tokens: list[_Token]) -> bool:
    return all(t.kind == "punct" and t.text in "()" for t in tokens)


def _field(tokens: list[_Token], index: int, frame: _Frame, writer: _Writer) -> int:
    """One field initializer's name (``name:``, ``?name:``, ```name`:``) at ``index``; returns
    where its value starts. A closing ``}`` right away is an empty literal or a trailing comma."""
    token = tokens[index]
    if token.text == "}" and token.kind == "punct":
        frame.expecting_field = False
        return index  # the main loop closes the frame
    at = index + 1 if token.text == "?" and token.kind == "punct" else index
    name = tokens[at] if at < len(tokens) else None
    colon = tokens[at + 1] if at + 1 < len(tokens) else None
    if name is None or name.kind not in ("ident", "backquoted") or colon is None or colon.text != ":":
        found, offset = (name.text, name.start) if name is not None else ("<EOF>", len(writer.source))
        raise SyntaxProblem(_issue_at(writer.source, offset, f"Syntax error: mismatched input '{found}' expecting "
                                                             "{'}', '?', IDENTIFIER, ESC_IDENTIFIER}"))
    field = name.text.strip("`") if name.kind == "backquoted" else name.text
    quoted = "'" + field.replace("\\", "\\\\").replace("'", "\\'") + "'"
    writer.replace(name.start, name.start + len(name.text), quoted)
    frame.field, frame.expecting_field = field, False
    return at + 2


FORMAT_NAMED = "webhookNamed"
FORMAT_VALIDATE = "webhookValidate"
_FORMAT_NAMES = {"named": FORMAT_NAMED, "validate": FORMAT_VALIDATE}


def format_calls(source: str) -> Rewritten:
    """``format.named(n)`` and ``<format>.validate(s)`` as the list forms of
    :mod:`webhook.cel.k8s_format` with ``[?0]`` after the call, which makes the optional value
    upstream returns (none for an empty list). String literals and comments are left alone;
    :func:`restore_format_names` puts the user's names back into compile messages."""
    tokens = _tokens(source)
    if not any(t.kind == "ident" and t.text in _FORMAT_NAMES for t in tokens):
        return unchanged(source)
    writer = _Writer(source)
    wrapped: list[bool] = []  # per open bracket: whether its closing ``)`` ends a rewritten call
    call_next = False
    for index, token in enumerate(tokens):
        if token.kind == "punct" and token.text in "([{":
            wrapped.append(call_next and token.text == "(")
            call_next = False
            continue
        call_next = False
        if token.kind == "punct" and token.text in ")]}":
            if wrapped and wrapped.pop():
                writer.replace(token.start, token.start + 1, ")[?0]")
            continue
        if token.kind != "ident" or token.text not in _FORMAT_NAMES or not _member_call(tokens, index):
            continue
        if token.text == "named" and not _on_format_namespace(tokens, index):
            continue
        writer.replace(token.start, token.start + len(token.text), _FORMAT_NAMES[token.text])
        call_next = True
    text, origins = writer.finish()
    return Rewritten(source, text, origins)


def _member_call(tokens: list[_Token], index: int) -> bool:
    """``.<name>(``: a call after a dot."""
    return (index > 0 and tokens[index - 1].kind == "punct" and tokens[index - 1].text == "."
            and index + 1 < len(tokens) and tokens[index + 1].text == "(")


def _on_format_namespace(tokens: list[_Token], index: int) -> bool:
    """``format.named``, with ``format`` a name of its own (not ``x.format.named``)."""
    return (index >= 2 and tokens[index - 2].kind == "ident" and tokens[index - 2].text == "format"
            and not (index >= 3 and tokens[index - 3].kind == "punct" and tokens[index - 3].text == "."))


def restore_format_names(message: str) -> str:
    """A compile message about the rewritten calls, in the names the user wrote."""
    return message.replace(f"format.{FORMAT_NAMED}", "format.named").replace(FORMAT_VALIDATE, "validate")


def variable_references(source: str, names: Mapping[str, str], selects: Mapping[str, str] | None = None) -> Rewritten:
    """``variables.<name>`` as the identifier ``names[name]``, for a check in an environment that
    declares those identifiers with the variables' own types (:func:`webhook.cel.runtime.compile`):
    the API server declares each composited variable with its expression's type, where the program
    sees ``variables`` as a map of ``dyn``. ``has(variables.x)``, a call ``variables.x(...)`` and a
    field ``.variables.x`` of something else are left as written; ``variables.?x`` becomes
    ``selects[x]`` when given (else it is left as written)."""
    selects = selects or {}
    if not names and not selects:
        return unchanged(source)
    tokens = _tokens(source)
    for index, token in enumerate(tokens[1:-1], start=1):
        # ``variables`` bound by a comprehension (``.all(variables, ...)``, ``.map(i, variables, ...)``)
        # is that value, not the composited variables: the check then declares nothing more.
        if (token.kind == "ident" and token.text == "variables" and tokens[index - 1].text in ("(", ",")
                and tokens[index + 1].text == ","):
            return unchanged(source)
    writer: _Writer | None = None
    for index, token in enumerate(tokens[:-2]):
        if token.kind != "ident" or token.text != "variables":
            continue
        dot, name = tokens[index + 1], tokens[index + 2]
        if index > 0 and tokens[index - 1].text == "." and tokens[index - 1].kind == "punct":
            continue  # a field named variables of something else
        if (dot.text == "." and name.text == "?" and index + 3 < len(tokens) and tokens[index + 3].kind == "ident"
                and tokens[index + 3].text in selects):
            writer = writer or _Writer(source)
            selected = tokens[index + 3]
            writer.replace(token.start, selected.start + len(selected.text), selects[selected.text])
            continue
        if dot.text != "." or name.kind != "ident" or name.text not in names:
            continue
        if index > 1 and tokens[index - 1].text == "(" and tokens[index - 2].text == "has":
            continue  # has() needs the field selection itself
        if index + 3 < len(tokens) and tokens[index + 3].text == "(":
            continue  # a call, not the variable
        writer = writer or _Writer(source)
        writer.replace(token.start, name.start + len(name.text), names[name.text])
    if writer is None:
        return unchanged(source)
    text, origins = writer.finish()
    return Rewritten(source, text, origins)


HOIST_LIMIT = 8
"""Common subexpressions :func:`hoist_common` binds at most."""
HOIST_MIN_TOKENS = 8
"""The shortest parenthesized group worth binding (``(a + b)`` is cheaper to recompute)."""


def hoist_common(sources: Sequence[str], roots: frozenset[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """Parenthesized subexpressions that several of ``sources`` repeat word for word, each to be
    computed once: ``(names, texts)`` pairs and the sources with each occurrence replaced by its
    name, for :mod:`webhook.cel.batch` to evaluate as ``[(group)].map(name, [...])[0]``.

    Only a group of the form ``(...)`` that is not a call's argument list, whose free identifiers
    are all among ``roots`` (the activation's variables) and of at least
    :data:`HOIST_MIN_TOKENS` tokens, is bound; a source that binds one of ``roots`` as a
    comprehension variable (``.all(object, ...)``) is left as written, so every occurrence replaced
    means in its place exactly what the bound group means outside. CEL has no side effects: the
    value is the same computed once or each time; a group that fails fails the whole batch, whose
    members then run alone."""
    token_lists = [_tokens(source) for source in sources]
    in_use = {token.text for tokens in token_lists for token in tokens if token.kind == "ident"}
    counts: dict[tuple[str, ...], int] = {}
    groups: list[list[tuple[int, int, tuple[str, ...]]]] = []
    for tokens in token_lists:
        found: list[tuple[int, int, tuple[str, ...]]] = []
        if not _binds_any(tokens, roots):
            opened: list[int] = []
            for index, token in enumerate(tokens):
                if token.kind != "punct" or token.text not in "()":
                    continue
                if token.text == "(":
                    opened.append(index)
                    continue
                if not opened:
                    break  # unbalanced: the compiler will say so
                first = opened.pop()
                if first > 0 and tokens[first - 1].kind in ("ident", "backquoted"):
                    continue  # a call's arguments, a macro's body
                if any(opener > 0 and tokens[opener - 1].text == "has" for opener in opened):
                    continue  # has() takes a field selection as written, parentheses and all
                if index - first + 1 < HOIST_MIN_TOKENS or not _only_roots_free(tokens[first:index + 1], roots):
                    continue
                key = tuple(token.text for token in tokens[first:index + 1])
                found.append((first, index, key))
                counts[key] = counts.get(key, 0) + 1
        groups.append(found)
    common = sorted((key for key, count in counts.items() if count > 1), key=len, reverse=True)[:HOIST_LIMIT]
    if not common:
        return [], list(sources)
    names: dict[tuple[str, ...], str] = {}
    texts: dict[tuple[str, ...], str] = {}
    rewritten: list[str] = []
    for source, tokens, found in zip(sources, token_lists, groups, strict=True):
        taken: list[tuple[int, int]] = []
        for key in common:
            for first, last, group in found:
                if group != key or any(first <= end and start <= last for start, end in taken):
                    continue
                taken.append((first, last))
                if key not in names:
                    names[key] = _fresh(f"hoisted{len(names)}", in_use)
                    end = tokens[last].start + len(tokens[last].text)
                    texts[key] = source[tokens[first].start:end]
        text = source
        for first, last in sorted(taken, reverse=True):
            start, end = tokens[first].start, tokens[last].start + len(tokens[last].text)
            # Spaces around the name: ``(a + b)in [...]`` must not become one identifier.
            text = text[:start] + " " + names[tuple(t.text for t in tokens[first:last + 1])] + " " + text[end:]
        rewritten.append(text)
    return [(names[key], texts[key]) for key in common if key in names], rewritten


def _binds_any(tokens: list[_Token], roots: frozenset[str]) -> bool:
    """Whether one of ``roots`` is a comprehension's variable somewhere (``.all(object, ...)``,
    ``.map(i, request, ...)``): then its name means something else there."""
    return any(
        token.kind == "ident" and token.text in roots and tokens[index - 1].text in ("(", ",")
        and tokens[index + 1].text == ","
        for index, token in enumerate(tokens[1:-1], start=1)
    )


def _only_roots_free(tokens: list[_Token], roots: frozenset[str]) -> bool:
    """Whether every identifier of a group is a field or function name or one of ``roots``."""
    for index, token in enumerate(tokens):
        if token.kind != "ident" or token.text in ("true", "false", "null"):
            continue
        before = tokens[index - 1].text if index > 0 else ""
        if before == "." or (before == "?" and index > 1 and tokens[index - 2].text == "."):
            continue  # a field or a method
        if index + 1 < len(tokens) and tokens[index + 1].text == "(":
            continue  # a global function
        if token.text not in roots:
            return False
    return True


def _fresh(name: str, in_use: set[str]) -> str:
    while name in in_use:
        name += "_"
    in_use.add(name)
    return name
