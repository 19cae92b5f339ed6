"""``audit --from FILE|DIR|-``: objects from ``kubectl get ... -o yaml|json`` dumps, streamed.

A dump of a large cluster is hundreds of megabytes; loading it whole (``yaml.safe_load``) would hold
every object at once, several times its size in Python objects. So the input is read incrementally:

* **YAML** through libyaml's event parser, which reads the file in chunks: the events of the
  top-level mapping are walked by hand, and when its ``items`` sequence starts, each item is built
  from its own events and handed on before the next one is read. Items are built directly from the
  events (no node graph, no constructor classes), resolving plain scalars with PyYAML's own YAML 1.1
  rules minus timestamps, as :mod:`webhook.offline` reads files (``2024-01-01T00:00:00Z`` stays the
  string the API server sent). Anchors, aliases and ``<<`` merge keys work.
* **JSON** (a ``.json`` file, or input whose first character is ``{`` or ``[``) through the standard
  library's ``raw_decode`` on a sliding 1 MiB window: the top-level object's keys are read one by
  one and the ``items`` array element by element. JSON is valid YAML, but this is about 20 times
  faster than parsing it as YAML.

An object without ``metadata.namespace`` is cluster-scoped (``kubectl get`` writes the namespace of
every namespaced object), except a namespaced built-in kind, which a hand-written manifest leaves
in ``default``. A document with a top-level ``items`` array is read as a List (``kind: List`` or ``PodList``; items
without ``apiVersion``/``kind``, as the raw API returns them, get the List's). Several documents per
file (``---``, or JSON values one after another) are fine.

Two passes, so memory stays bounded whatever the order of the dump: the first reads every input
once, keeps the Namespaces (their labels and object, for scopes and CEL's ``namespaceObject``, known
before any object is evaluated, as in a cluster) and writes each object as one JSON line to a
temporary file per evaluation rank (owners before what they own, see
:data:`webhook.audit.model.RANKS`); the second reads those files back in rank order, one line at a
time. Standard input is read once like any file. The temporary files hold the dump in compact JSON
and are deleted when the source is closed.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson
import yaml
from yaml import events

from webhook import offline, shapes
from webhook.audit import model, selectors
from webhook.emulator import attributes

CHUNK = 1 << 20
MAX_OBJECT_CHARS = 64 << 20
"""A JSON value still incomplete after this many characters is taken as invalid, not read on
(the API server refuses objects over 3 MiB; this only bounds memory on a broken file)."""

_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_RESOLVERS = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_STR, _NULL, _BOOL = "tag:yaml.org,2002:str", "tag:yaml.org,2002:null", "tag:yaml.org,2002:bool"
_INT, _FLOAT, _MERGE = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:merge"
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _MergeKey:
    """The ``<<`` key of a YAML merge."""


MERGE = _MergeKey()


# --- YAML ----------------------------------------------------------------------------------------


def _scalar(event: Any) -> Any:
    value: str = event.value
    tag = event.tag
    if tag is None or tag == "!":
        if event.style or not event.implicit[0]:
            return value  # quoted, or a block scalar: a string
        for candidate, regexp in _RESOLVERS.get(value[:1], ()):
            if regexp.match(value):
                tag = candidate
                break
        else:
            return value
    if tag == _STR:
        return value
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return _CONSTRUCTOR.bool_values[value.lower()]
    if tag == _MERGE:
        return MERGE
    node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark)
    if tag == _INT:
        return _CONSTRUCTOR.construct_yaml_int(node)
    if tag == _FLOAT:
        return _CONSTRUCTOR.construct_yaml_float(node)
    try:
        return _CONSTRUCTOR.construct_object(node)
    except yaml.constructor.ConstructorError as exc:
        raise yaml.MarkedYAMLError(problem=str(exc.problem), problem_mark=event.start_mark) from None


def _key(value: Any, event: Any) -> Any:
    """Keys as JSON holds them: strings (``1`` -> ``"1"``, ``true`` -> ``"true"``), as
    :mod:`webhook.offline` converts them (``orjson.OPT_NON_STR_KEYS``)."""
    if isinstance(value, str) or value is MERGE:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return str(value)
    raise yaml.MarkedYAMLError(problem="a mapping key must be a scalar", problem_mark=event.start_mark)


class _Builder:
    """Builds one value from its events; anchors live as long as their document."""

    def __init__(self, stream: Iterator[events.Event]) -> None:
        self.stream = stream
        self.anchors: dict[str, Any] = {}

    def value(self, first: Any) -> Any:
        kind = type(first)
        if kind is events.ScalarEvent:
            found = _scalar(first)
            self._anchor(first, found)
            return found
        if kind is events.AliasEvent:
            return self._alias(first)
        if kind is not events.MappingStartEvent and kind is not events.SequenceStartEvent:
            raise yaml.MarkedYAMLError(problem=f"unexpected {kind.__name__}", problem_mark=first.start_mark)
        root: Any = {} if kind is events.MappingStartEvent else []
        self._anchor(first, root)
        # Each open container with its pending key (``_NO_KEY`` until the key is read) and merges.
        stack: list[tuple[Any, list[Any]]] = [(root, [_NO_KEY, []])]
        while True:
            event: Any = next(self.stream)
            kind = type(event)
            if kind is events.MappingEndEvent or kind is events.SequenceEndEvent:
                done, (_, merges) = stack.pop()
                for source in merges:
                    for key, item in source.items():
                        done.setdefault(key, item)
                if not stack:
                    return done
                self._put(stack[-1], done, event)
                continue
            if kind is events.ScalarEvent:
                found = _scalar(event)
                self._anchor(event, found)
            elif kind is events.AliasEvent:
                found = self._alias(event)
            elif kind is events.MappingStartEvent or kind is events.SequenceStartEvent:
                found = {} if kind is events.MappingStartEvent else []
                self._anchor(event, found)
                stack.append((found, [_NO_KEY, []]))
                continue
            else:
                raise yaml.MarkedYAMLError(problem=f"unexpected {kind.__name__}", problem_mark=event.start_mark)
            self._put(stack[-1], found, event)

    @staticmethod
    def _put(top: tuple[Any, list[Any]], value: Any, event: Any) -> None:
        container, state = top
        if type(container) is list:
            container.append(value)
            return
        if state[0] is _NO_KEY:
            state[0] = _key(value, event)
            return
        key, state[0] = state[0], _NO_KEY
        if key is MERGE:
            sources = value if isinstance(value, list) else [value]
            if not all(isinstance(s, dict) for s in sources):
                raise yaml.MarkedYAMLError(problem="a merge key (<<) needs a mapping or a list of mappings",
                                           problem_mark=event.start_mark)
            state[1].extend(sources)
        else:
            container[key] = value

    def _anchor(self, event: Any, value: Any) -> None:
        if event.anchor is not None:
            self.anchors[event.anchor] = value

    def _alias(self, event: Any) -> Any:
        try:
            return self.anchors[event.anchor]
        except KeyError:
            raise yaml.MarkedYAMLError(problem=f"found undefined alias {event.anchor!r}",
                                       problem_mark=event.start_mark) from None


_NO_KEY = object()


def _is_list(header: dict[str, Any]) -> bool:
    kind = header.get("kind")
    return kind is None or (isinstance(kind, str) and kind.endswith("List"))


def yaml_values(stream: IO[bytes], name: str) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """``(where, value, list header)`` for each List item or document of a YAML stream."""
    loader = _Loader(stream)
    # The loader's own get_event, called until it returns None: yaml.parse() wraps the same calls
    # in a Python generator that costs a fifth of the time.
    parsed: Iterator[events.Event] = iter(loader.get_event, None)
    builder = _Builder(parsed)
    document = 0
    try:
        for event in parsed:
            if type(event) is not events.DocumentStartEvent:
                continue
            document += 1
            builder.anchors = {}
            root = next(parsed)
            where = f"{name} (document {document})"
            if type(root) is not events.MappingStartEvent:
                found = builder.value(root)
                if found is not None:
                    yield where, found, {}
                continue
            header: dict[str, Any] = {}
            streamed = False
            while True:
                event = next(parsed)
                if type(event) is events.MappingEndEvent:
                    break
                key = _key(builder.value(event), event)
                start = next(parsed)
                if key == "items" and type(start) is events.SequenceStartEvent and _is_list(header):
                    streamed = True
                    index = 0
                    while type(event := next(parsed)) is not events.SequenceEndEvent:
                        yield f"{where} items[{index}]", builder.value(event), header
                        index += 1
                elif key is MERGE:
                    merged = builder.value(start)
                    for source in merged if isinstance(merged, list) else [merged]:
                        if isinstance(source, dict):
                            for k, v in source.items():
                                header.setdefault(k, v)
                else:
                    header[key] = builder.value(start)
            if not streamed:
                yield where, header, {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f"{name}:{mark.line + 1}" if mark is not None else name
        raise model.Problem(f"{at}: invalid YAML: {exc.problem or exc}; the rest of the file is skipped") from None
    except yaml.YAMLError as exc:
        raise model.Problem(f"{name}: invalid YAML: {exc}; the rest of the file is skipped") from None
    except StopIteration:
        raise model.Problem(f"{name}: invalid YAML: the input ends inside a document") from None
    finally:
        loader.dispose()


# --- JSON ----------------------------------------------------------------------------------------


class _JsonReader:
    """JSON values from a text stream through a sliding window: never more than one value (and
    one chunk) in memory."""

    def __init__(self, stream: IO[str], name: str) -> None:
        self.stream = stream
        self.name = name
        self.buffer = ""
        self.pos = 0
        self.eof = False

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buffer = self.buffer[self.pos:] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-blank character ("" at the end), not consumed."""
        while True:
            match = _WS.match(self.buffer, self.pos)
            assert match is not None
            self.pos = match.end()
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self._more():
                return ""

    def expect(self, chars: str, what: str) -> str:
        found = self.peek()
        if not found or found not in chars:
            seen = repr(found) if found else "the end of the input"
            raise model.Problem(f"{self.name}: invalid JSON: expected {what}, found {seen}; "
                                "the rest of the file is skipped")
        self.pos += 1
        return found

    def value(self) -> Any:
        self.peek()
        while True:
            try:
                found, end = _DECODER.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as exc:
                if len(self.buffer) - self.pos > MAX_OBJECT_CHARS or not self._more():
                    raise model.Problem(f"{self.name}: invalid JSON: {exc.msg}; the rest of the file is "
                                        "skipped") from None
                continue
            # A number or literal cut by the window's end may go on in the next chunk.
            if end == len(self.buffer) and self._more():
                continue
            self.pos = end
            return found


def json_values(stream: IO[str], name: str) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """``(where, value, list header)`` for each List item or top-level value of a JSON stream."""
    reader = _JsonReader(stream, name)
    document = 0
    while (first := reader.peek()) != "":
        document += 1
        where = f"{name} (document {document})"
        if first == "[":
            reader.pos += 1
            yield from _json_items(reader, where, {})
            continue
        if first != "{":
            yield where, reader.value(), {}
            continue
        reader.pos += 1
        header: dict[str, Any] = {}
        streamed = False
        if reader.peek() == "}":
            reader.pos += 1
        else:
            while True:
                if reader.peek() != '"':
                    reader.expect('"', "a key")
                key = reader.value()
                reader.expect(":", "':'")
                if key == "items" and reader.peek() == "[" and _is_list(header):
                    reader.pos += 1
                    streamed = True
                    yield from _json_items(reader, where, header)
                else:
                    header[key] = reader.value()
                if reader.expect(",}", "',' or '}'") == "}":
                    break
        if not streamed:
            yield where, header, {}


def _json_items(reader: _JsonReader, where: str, header: dict[str, Any]) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    if reader.peek() == "]":
        reader.pos += 1
        return
    index = 0
    while True:
        yield f"{where} items[{index}]", reader.value(), header
        index += 1
        if reader.expect(",]", "',' or ']'") == "]":
            return


# --- inputs --------------------------------------------------------------------------------------


def _visible(path: Path, root: Path) -> bool:
    return (path.is_file() and path.suffix.lower() in offline.SUFFIXES
            and not any(part.startswith(".") for part in path.relative_to(root).parts))


def files(paths: Sequence[str]) -> Iterator[tuple[str, Path | None]]:
    """``(name, path)`` per input file (a directory: its visible .json/.yaml/.yml files, recursively,
    in name order); ``path`` is ``None`` for standard input."""
    for given in paths:
        if given == "-":
            yield "<stdin>", None
            continue
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if _visible(p, path))
            if not found:
                raise model.Problem(f"{given}: the directory holds no .json, .yaml or .yml file")
            for file in found:
                yield str(file), file
        else:
            yield given, path


def values(name: str, path: Path | None) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    """The values of one input, JSON or YAML by extension (standard input: by its first character)."""
    try:
        binary: IO[bytes] = sys.stdin.buffer if path is None else path.open("rb")
    except FileNotFoundError:
        raise model.Problem(f"{name}: no such file or directory") from None
    except OSError as exc:
        raise model.Problem(f"{name}: cannot read: {exc.strerror or exc}") from None
    try:
        is_json = path is not None and path.suffix.lower() == ".json"
        if path is None:
            head = binary.peek(64)[:64] if hasattr(binary, "peek") else b""
            is_json = head.lstrip()[:1] in (b"{", b"[")
        if is_json:
            text = io.TextIOWrapper(binary, encoding="utf-8", errors="strict")
            try:
                yield from json_values(text, name)
            except UnicodeDecodeError:
                raise model.Problem(f"{name}: not UTF-8 text") from None
            finally:
                text.detach()
        else:
            yield from yaml_values(binary, name)
    finally:
        if path is not None:
            binary.close()


def _object_problem(where: str, value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"{where}: expected a Kubernetes object (a mapping), got {type(value).__name__}"
    metadata = value.get("metadata")
    if not value.get("apiVersion") or not value.get("kind"):
        return f"{where}: expected a Kubernetes object: apiVersion and kind are required"
    if not isinstance(metadata, dict) or not (metadata.get("name") or metadata.get("generateName")):
        return f"{where}: expected a Kubernetes object: metadata.name is required"
    return None


class Source:
    """A dump as an audit source: :meth:`prepare` reads it (the first pass), :meth:`items` yields
    its objects in evaluation order (the second)."""

    def __init__(
        self,
        paths: Sequence[str],
        *,
        namespace: str | None = None,
        selector: selectors.Selector | None = None,
        spool_dir: str | None = None,
    ) -> None:
        self.paths = list(paths)
        self.namespace = namespace
        self.selector = selector
        self.spool_dir = spool_dir
        self.namespaces: dict[str, model.Namespace] = {}
        self.problems: list[str] = []
        self.total: int | None = None
        self.filtered = 0
        """Objects left out by --namespace or --selector."""
        self._spools: list[IO[bytes]] = []

    def prepare(self, on_object: Callable[[], None] | None = None) -> None:
        # Closed by close(), after the second pass has read them.
        spools: list[IO[bytes]] = [
            tempfile.TemporaryFile(dir=self.spool_dir)  # noqa: SIM115
            for _ in range(max(model.RANKS.values()) + 1)
        ]
        self._spools = spools
        total = 0
        try:
            for name, path in files(self.paths):
                try:
                    for where, value, header in values(name, path):
                        if isinstance(value, dict) and header:
                            _typed(value, header)
                        problem = _object_problem(where, value)
                        if problem is not None:
                            self.problems.append(problem)
                            continue
                        if value.get("kind") == "Namespace" and value.get("apiVersion") == "v1":
                            found = model.Namespace.of(value)
                            self.namespaces[found.name] = found
                        _default_namespace(value)
                        if not self._wanted(value):
                            self.filtered += 1
                            continue
                        try:
                            line = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
                        except (TypeError, orjson.JSONEncodeError) as exc:
                            self.problems.append(f"{where}: holds a value JSON cannot represent: {exc}")
                            continue
                        spools[model.rank(str(value["kind"]))].write(line + b"\n")
                        total += 1
                        if on_object is not None:
                            on_object()
                except model.Problem as exc:
                    self.problems.append(str(exc))
        except model.Problem as exc:
            self.problems.append(str(exc))
        self.total = total

    def _wanted(self, obj: dict[str, Any]) -> bool:
        metadata = obj["metadata"]
        if self.namespace is not None and metadata.get("namespace") != self.namespace:
            return False
        if self.selector is not None:
            labels = metadata.get("labels")
            return self.selector.matches(labels if isinstance(labels, dict) else {})
        return True

    def items(self) -> Iterator[model.Item]:
        for spool in self._spools:
            spool.seek(0)
            for line in spool:
                yield model.Item(orjson.loads(line))

    def close(self) -> None:
        for spool in self._spools:
            spool.close()
        self._spools = []

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_NAMESPACED = (
    frozenset(k for kinds in shapes.BUILT_IN_KINDS.values() for k in kinds) - attributes.CLUSTER_SCOPED - {"List"}
)


def _default_namespace(obj: dict[str, Any]) -> None:
    """A namespaced built-in kind written without a namespace (a hand-written manifest) is in
    ``default``, as ``kubectl create`` would put it; ``kubectl get`` always writes the namespace, so
    an object of another kind without one is cluster-scoped."""
    metadata = obj["metadata"]
    if not metadata.get("namespace") and obj.get("kind") in _NAMESPACED:
        metadata["namespace"] = "default"


def _typed(item: dict[str, Any], header: dict[str, Any]) -> None:
    """Items of a typed List (``kind: PodList``, as the raw API returns them) carry no kind."""
    kind = header.get("kind")
    if not isinstance(kind, str) or not kind.endswith("List") or kind == "List":
        return  # a plain List (or its kind not read yet): items name their own kind
    if not item.get("kind"):
        item["kind"] = kind[: -len("List")]
    if not item.get("apiVersion") and isinstance(header.get("apiVersion"), str):
        item["apiVersion"] = header["apiVersion"]
