"""What an expression can read of ``object``, ``oldObject``, ``request`` and ``namespaceObject``,
and those values cut down to it before cel-cpp converts them.

Why: cel-expr-python converts a whole variable into CEL values the first time an expression
touches it, about 0.24 µs a map entry. A Pod has 120 or more entries, and its request variable
another 25, while the Pod Security rules written as admission policies read a third of them (each
container's name, image, security context, ports and probes; not its env, mounts or resources,
nor the Pod's tolerations or owner references). A policy that checks labels reads only
``metadata.labels``. So a policy set knows at load, from the checked syntax trees of all its
expressions, which parts of each variable any of them can reach, and a review converts only those.

The reads of an expression are a tree of field names (:data:`Tree`). A path ends (the whole value
below it is kept) wherever the expression does anything with a value other than select a field
of it by a name known at compile time: ``size(object.spec)``, ``object.metadata.labels[k]`` with a
computed key, ``string(object)``, passing it to a function or comparing it. Only these extend a
path:

* a field selection ``a.f``, ``has(a.f)``, ``a.?f``, and an index by a string literal
  ``a['f']``, ``a[?'f']``, or by a comprehension variable whose range is a literal list of
  strings (``['containers', 'initContainers'].exists(f, object.spec[?f] ...)``: each of them);
* ``'f' in a`` with ``'f'`` known as above: whether the key is there, as ``has(a.f)`` (on a list,
  a membership test, the list is kept whole: see :func:`project`);
* ``.orValue(d)`` and ``.value()`` of an optional path (the value is that part, or ``d``);
* the elements of a list: a comprehension's variable over a path (``object.spec.containers.all(c,
  c.name != '')`` reads ``name`` of every container; :data:`EACH`), an index by an integer.

A projection (:func:`project`) keeps exactly the parts a path reaches, so every expression of the
set sees the same values there as on the whole object, absent keys included, and so gives the same
results and the same errors. Where the shape differs from what the tree expects (a list where a
field is selected, a map where elements are taken), the value is kept whole: the expression then
fails or succeeds on it exactly as on the unprojected object. Anything this module does not
understand in a syntax tree reads the variable whole.

The syntax tree comes from cel-cpp as a serialized ``cel.expr.CheckedExpr``; the few message
fields used here are read straight off the protobuf wire format (no generated classes are
shipped for them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

ROOTS = ("object", "oldObject", "request", "namespaceObject")
"""The variables a review converts per request, the ones worth projecting."""

EACH = "[*]"
"""The key standing for every element of a list in a :data:`Tree`. A real map key ``[*]`` only
makes :func:`project` keep more of that map than is read (it keeps every key of a map whose tree
holds this one)."""

Tree = dict[str, "Tree"] | None
"""The parts of a value that are read: ``None`` the whole value, else the read keys (or
:data:`EACH`) with what is read below each."""

WHOLE: Tree = None

Reads = dict[str, Tree]
"""For each of :data:`ROOTS`, what is read of it (a root missing from the mapping is not read)."""

EVERYTHING: Reads = {root: WHOLE for root in ROOTS}
"""What a tree this module cannot read may reach."""


def merge(first: Tree, second: Tree) -> Tree:
    """The parts read by either."""
    if first is None or second is None:
        return None
    merged = dict(first)
    for key, below in second.items():
        merged[key] = merge(merged[key], below) if key in merged else below
    return merged


def union(all_reads: Iterable[Reads]) -> Reads:
    """The parts read by any, in the form :func:`project` takes."""
    found: Reads = {}
    for reads in all_reads:
        for root, tree in reads.items():
            found[root] = merge(found[root], tree) if root in found else tree
    return {root: _settled(tree) for root, tree in found.items()}


def _settled(tree: Tree) -> Tree:
    """``tree`` with what is read of every element (:data:`EACH`) also read of each named key,
    so that :func:`project` can take a key's tree as it finds it."""
    if tree is None:
        return None
    each = tree.get(EACH, {})
    return {key: _settled(below if key == EACH else merge(below, each)) for key, below in tree.items()}


def project(value: Any, tree: Tree) -> Any:
    """``value`` with only the parts ``tree`` (from :func:`union`) reads; shared with ``value``
    below the paths' ends."""
    if tree is None:
        return value
    if isinstance(value, dict):
        if EACH in tree:
            # Iterated, or indexed by a key known only at evaluation: every key stays.
            each = tree[EACH]
            if each is None:
                return value
            return {key: project(item, tree.get(key, each)) for key, item in value.items()}
        found = {}
        for key, below in tree.items():
            if key in value:
                found[key] = project(value[key], below) if below is not None else value[key]
        return found
    if isinstance(value, list):
        if len(tree) != 1 or EACH not in tree:
            return value  # a field of a list: an error, the same on the whole list
        below = tree[EACH]
        return value if below is None else [project(item, below) for item in value]
    return value


Projector = Callable[[Any], Any]


def projector(tree: Tree) -> Projector:
    """:func:`project` with ``tree`` fixed, as straight-line Python made once per policy set: a
    function per node of the tree, each key looked up by name instead of a loop over the tree
    and a call per key (half the cost of :func:`project` on the typical Pod, which runs for
    every review). Gives exactly what :func:`project` gives (a differential test holds it)."""
    if tree is None:
        return _same
    lines: list[str] = []
    names: dict[str, Any] = {"_MISSING": _MISSING, "_same": _same}
    top = _emit(tree, lines, names)
    exec("\n".join(lines), names)  # noqa: S102 - our own text; keys appear only as repr() literals
    found: Projector = names[top]
    return found


def _same(value: Any) -> Any:
    return value


_MISSING = object()


def _emit(tree: Mapping[str, Tree], lines: list[str], names: dict[str, Any]) -> str:
    """Define the function projecting with ``tree`` (not ``None``), children first; return its
    name. Mirrors :func:`project` branch for branch."""
    name = f"_p{names.setdefault('_count', 0)}"
    names["_count"] += 1
    each = tree.get(EACH, _MISSING)
    each_name = _emit(each, lines, names) if isinstance(each, dict) else "_same"
    children = {key: (_emit(below, lines, names) if below is not None else "_same")
                for key, below in tree.items() if key != EACH}
    body = [f"def {name}(v):", "    if isinstance(v, dict):"]
    if each is None:
        body.append("        return v")
    elif each is not _MISSING:
        # Every key stays: those the tree names with their own tree, the others with EACH's.
        table = "{" + ", ".join(f"{key!r}: {child}" for key, child in children.items()) + "}"
        lines.append(f"{name}_keys = {table}")
        body.append(f"        return {{k: {name}_keys.get(k, {each_name})(x) for k, x in v.items()}}")
    else:
        body.append("        r = {}")
        for key, child in children.items():
            body += [f"        x = v.get({key!r}, _MISSING)", "        if x is not _MISSING:",
                     f"            r[{key!r}] = {'x' if child == '_same' else f'{child}(x)'}"]
        body.append("        return r")
    if len(tree) == 1 and each is not _MISSING and each is not None:
        body += ["    if isinstance(v, list):", f"        return [{each_name}(x) for x in v]"]
    body.append("    return v")
    lines += body
    return name


# --- the protobuf wire format, as much as a checked expression needs -------------------------------

class _Unreadable(Exception):
    """A syntax tree this module does not understand: the variables are read whole."""


def _fields(data: bytes) -> dict[int, list[Any]]:
    """A message's fields by number: varints as ints, length-delimited fields as bytes."""
    found: dict[int, list[Any]] = {}
    index, end = 0, len(data)
    while index < end:
        key, index = _varint(data, index)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, index = _varint(data, index)
        elif wire == 2:
            size, index = _varint(data, index)
            value, index = data[index:index + size], index + size
        elif wire == 1:
            value, index = data[index:index + 8], index + 8
        elif wire == 5:
            value, index = data[index:index + 4], index + 4
        else:
            raise _Unreadable(f"wire type {wire}")
        if index > end:
            raise _Unreadable("truncated")
        found.setdefault(number, []).append(value)
    return found


def _varint(data: bytes, index: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if index >= len(data):
            raise _Unreadable("truncated varint")
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index
        shift += 7


def _one(fields: Mapping[int, list[Any]], number: int) -> Any:
    values = fields.get(number)
    return values[-1] if values else None


def _text(fields: Mapping[int, list[Any]], number: int) -> str:
    value = _one(fields, number)
    return bytes(value).decode() if value is not None else ""


# cel.expr.Expr's kinds, by field number
_CONST, _IDENT, _SELECT, _CALL, _LIST, _STRUCT, _COMPREHENSION = 3, 4, 5, 6, 7, 8, 9
_STRING_CONST, _INT_CONST, _UINT_CONST = 6, 3, 4

_INDEX_FUNCTIONS = frozenset({"_[_]", "_[?_]"})
_OPTIONAL_SELECT = "_?._"
_UNWRAP_FUNCTIONS = frozenset({"orValue", "value"})
_ADD = "_+_"
_SIZE = "size"
_CONDITIONAL = "_?_:_"
_EQUALITY = frozenset({"_==_", "_!=_"})
_IN = "@in"
_NULL_CONST = 1


class _Wrap:
    """In a path: a list whose elements are the value before it (``[c]``, ``[object.spec.containers]``);
    an element of it (:data:`EACH`) is that value again. Not a string, so that no key of a real
    map can be taken for it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "[]"


_WRAP = _Wrap()

_Path = tuple[str, tuple[Any, ...]]
"""A value known to be a part of a root variable: the root's name and the keys down to it (field
names, :data:`EACH`, :data:`_WRAP`)."""


def _step(path: _Path, key: Any) -> _Path:
    root, keys = path
    if key == EACH and keys and keys[-1] is _WRAP:
        return root, keys[:-1]
    return root, (*keys, key)


class _Names:
    """A comprehension variable ranging over literal strings (``f`` in ``['a', 'b'].exists(f, ...)``)."""

    __slots__ = ("names",)

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names


_Bound = tuple[_Path, ...] | _Names | None
"""What a name stands for in a scope: one of some parts of the roots (the elements of
``object.spec[?f]`` for each ``f``), literal strings, or something else."""

_SETTLE_ROUNDS = 4
"""Rounds of a comprehension's step to find what its accumulator may hold (a filter settles in two)."""


class _Walker:
    def __init__(self) -> None:
        self.reads: Reads = {}

    def read(self, path: _Path, tree: Tree = WHOLE) -> None:
        """``tree`` of the value at ``path`` is read (by default the whole value)."""
        root, keys = path
        while _WRAP in keys:
            if keys[-1] is _WRAP and tree is not None and set(tree) <= {EACH}:
                keys, tree = keys[:-1], tree.get(EACH, {})  # the elements of [x] (or [x] is there): x
            else:
                keys, tree = keys[:keys.index(_WRAP)], WHOLE  # anything else of [x]: x whole
        for key in reversed(keys):
            tree = {key: tree}
        self.reads[root] = merge(self.reads[root], tree) if root in self.reads else tree

    def walk(self, expr: bytes, scope: Mapping[str, _Bound]) -> None:
        """Record the reads of ``expr``: every path that ends in it is read whole."""
        for path in self.paths(expr, scope):
            self.read(path)

    def paths(self, expr: bytes, scope: Mapping[str, _Bound]) -> list[_Path]:
        """The paths ``expr``'s value may be (empty: not a part of a root), after recording the
        reads of its subexpressions that are not extended into it."""
        fields = _fields(expr)
        if _IDENT in fields:
            name = _text(_fields(_one(fields, _IDENT)), 1)
            bound = scope.get(name, ((name, ()),) if name in ROOTS else None)
            return list(bound) if isinstance(bound, tuple) else []
        if _SELECT in fields:
            select = _fields(_one(fields, _SELECT))
            paths = self._extend(_one(select, 1), (_text(select, 2),), scope)
            if _one(select, 3):  # has(a.f): whether the field is there, not what it holds
                for path in paths:
                    self.read(path, {})
                return []
            return paths
        if _CALL in fields:
            return self._call(_fields(_one(fields, _CALL)), scope)
        if _COMPREHENSION in fields:
            return self._comprehension(_fields(_one(fields, _COMPREHENSION)), scope)
        if _LIST in fields:
            listed = _fields(_one(fields, _LIST))
            found: list[_Path] = []
            for element in listed.get(1, []):
                if listed.get(2):  # optional elements ``[?x]``: read whole
                    self.walk(element, scope)
                else:
                    found += [_step(path, _WRAP) for path in self.paths(element, scope)]
            return _distinct(found)
        if _STRUCT in fields:
            for entry in _fields(_one(fields, _STRUCT)).get(2, []):
                parts = _fields(entry)
                for number in (3, 4):  # map key, value
                    if number in parts:
                        self.walk(_one(parts, number), scope)
            return []
        if _CONST in fields:
            return []
        raise _Unreadable("unknown expression kind")

    def _extend(self, operand: bytes, keys: tuple[str, ...], scope: Mapping[str, _Bound]) -> list[_Path]:
        return _distinct([_step(path, key) for path in self.paths(operand, scope) for key in keys])

    def _call(self, call: Mapping[int, list[Any]], scope: Mapping[str, _Bound]) -> list[_Path]:
        function = _text(call, 2)
        target = _one(call, 1)
        args = call.get(3, [])
        if target is None and len(args) == 2:
            if function == _OPTIONAL_SELECT:
                key = _string_constant(args[1])
                if key is not None:
                    return self._extend(args[0], (key,), scope)
            elif function in _INDEX_FUNCTIONS:
                return self._extend(args[0], self._index_keys(args[1], scope), scope)
            elif function == _ADD:
                # Lists joined: the elements are those of either (strings or numbers added are
                # read whole wherever the sum is used).
                return _distinct(self.paths(args[0], scope) + self.paths(args[1], scope))
            elif function == _IN and (keys := self._literal_keys(args[0], scope)) and EACH not in keys:
                # ``'f' in m``: whether a map has the key, as ``has(m.f)``. On a list it is a
                # membership test, which needs the whole list: the tree then has a key where a
                # list has elements, and project keeps the list whole (never EACH, which would
                # read the elements instead).
                for path in self.paths(args[1], scope):
                    for key in keys:
                        self.read(_step(path, key), {})
                return []
            elif function in _EQUALITY and (_is_null(args[0]) or _is_null(args[1])):
                # ``x == null`` asks whether there is a value, not what it holds.
                for path in self.paths(args[1] if _is_null(args[0]) else args[0], scope):
                    self.read(path, {})
                return []
        if function == _CONDITIONAL and target is None and len(args) == 3:
            self.walk(args[0], scope)
            return _distinct(self.paths(args[1], scope) + self.paths(args[2], scope))
        if function == _SIZE and len(args) + (target is not None) == 1:
            # How many: a list's elements need only be there (a map's keys or a string's
            # characters are counted on the whole value, see project).
            for path in self.paths(target if target is not None else args[0], scope):
                self.read(path, {EACH: {}})
            return []
        if function in _UNWRAP_FUNCTIONS and target is not None:
            for arg in args:
                self.walk(arg, scope)
            return self.paths(target, scope)
        if target is not None:
            self.walk(target, scope)
        for arg in args:
            self.walk(arg, scope)
        return []

    def _literal_keys(self, key: bytes, scope: Mapping[str, _Bound]) -> tuple[str, ...] | None:
        """The strings ``key`` can be when known at load: a string literal, the strings a
        comprehension variable ranges over; else ``None``."""
        constant = _string_constant(key)
        if constant is not None:
            return (constant,)
        fields = _fields(key)
        if _IDENT in fields:
            bound = scope.get(_text(_fields(_one(fields, _IDENT)), 1))
            if isinstance(bound, _Names):
                return bound.names
        return None

    def _index_keys(self, index: bytes, scope: Mapping[str, _Bound]) -> tuple[str, ...]:
        """The keys an index expression can be (:meth:`_literal_keys`); otherwise :data:`EACH`
        (any element of a list; a map indexed by a key not known at load is kept whole by
        :func:`project`)."""
        found = self._literal_keys(index, scope)
        if found is not None:
            return found
        self.walk(index, scope)
        return (EACH,)

    def _comprehension(self, comprehension: Mapping[int, list[Any]], scope: Mapping[str, _Bound]) -> list[_Path]:
        """The paths of its result. The variables are bound to what they range over (the
        elements of a path, literal strings), and the accumulator to whatever its initial value
        and steps may hold, so ``object.spec.containers.filter(c, ...)`` is a list of containers
        (of which a later ``.map(c, c.name)`` reads the names) and ``cel.bind(s, object.spec,
        ...)`` is ``object.spec``."""
        first, second = _text(comprehension, 1), _text(comprehension, 8)
        accumulator = _text(comprehension, 3)
        iter_range, init = _one(comprehension, 2), _one(comprehension, 4)
        condition, step, result = (_one(comprehension, number) for number in (5, 6, 7))
        if iter_range is None or init is None or condition is None or step is None or result is None:
            raise _Unreadable("incomplete comprehension")
        ranged = self.paths(iter_range, scope)
        for path in ranged:
            # Iterating needs the range as it is: its type, every list element, every map key
            # (even when the body reads none of them: ``.all(k, v, k.startsWith('a'))``).
            self.read(path, {EACH: {}})
        names = _literal_strings(iter_range)
        element: _Bound = (tuple(_step(path, EACH) for path in ranged) if ranged
                           else _Names(names) if names is not None else None)
        inner = dict(scope)
        if second:
            inner[first], inner[second] = None, element  # the index or key, the element or value
        else:
            inner[first] = element
        held = self.paths(init, scope)
        for _ in range(_SETTLE_ROUNDS):
            inner[accumulator] = tuple(held) or None
            self.walk(condition, inner)
            grown = _distinct(held + self.paths(step, inner))
            if len(grown) == len(held):
                break
            held = grown
        else:
            for path in grown:  # no settled answer: what it may hold is read whole
                self.read(path)
            held = []
        inner[accumulator] = tuple(held) or None
        return self.paths(result, inner)


def _distinct(paths: list[_Path]) -> list[_Path]:
    return list(dict.fromkeys(paths)) if len(paths) > 1 else paths


def _string_constant(expr: bytes) -> str | None:
    fields = _fields(expr)
    if _CONST not in fields:
        return None
    constant = _fields(_one(fields, _CONST))
    return _text(constant, _STRING_CONST) if _STRING_CONST in constant else None


def _is_null(expr: bytes) -> bool:
    fields = _fields(expr)
    return _CONST in fields and _NULL_CONST in _fields(_one(fields, _CONST))


def _literal_strings(expr: bytes) -> tuple[str, ...] | None:
    """The elements of a list literal of string literals, else ``None``."""
    fields = _fields(expr)
    if _LIST not in fields:
        return None
    listed = _fields(_one(fields, _LIST))
    if listed.get(2):
        return None  # optional elements
    names = [_string_constant(element) for element in listed.get(1, [])]
    return tuple(name for name in names if name is not None) if None not in names else None


def of_checked(serialized: bytes) -> Reads:
    """What the expression of a serialized ``google.protobuf.Any`` holding a ``cel.expr.CheckedExpr``
    (cel-expr-python's ``Expression.serialize()``) reads of the :data:`ROOTS`."""
    try:
        checked = _fields(bytes(_one(_fields(serialized), 2)))
        walker = _Walker()
        walker.walk(_one(checked, 4), {})
    except (_Unreadable, TypeError, IndexError, UnicodeDecodeError, RecursionError):
        return dict(EVERYTHING)
    return walker.reads
