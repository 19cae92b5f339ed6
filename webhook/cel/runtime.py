"""The CEL runtime behind admission policies: compile once at load, evaluate per review.

Backed by ``cel-expr-python`` (Google's binding of cel-cpp): about 3 µs per expression once a
review's activation exists, against 100-700 µs for the pure-Python ``cel-python`` (measurements in
docs/cel-runtime.md). cel-cpp parses and type-checks the same language as the API server's cel-go,
with the same ``ERROR: <input>:line:col: ...`` compile messages; its runtime error texts differ, so
:func:`error_text` rewords the common ones into cel-go's (what ``kubectl`` shows a user), and
compile messages get cel-go's form of a member call (``applied to 'string.(int)'``).

Environment. The Kubernetes libraries (:mod:`webhook.cel.library`) include value types
(``kubernetes.Quantity``, ``net.IP``, ...) built as protobuf messages; every environment gets their
descriptor pool. Each :class:`Declarations` has two cel-cpp environments: one type-checks with every
typed overload, the other plans and evaluates the checked expression with one implementation per
runtime shape (cel-cpp cannot hold two implementations that differ only in message type). Values of
these types come out of :func:`evaluate` as protobuf messages and go back into :func:`activation`
unchanged (a composited variable holding a quantity).

Authorizer. ``authorizer`` (``kubernetes.authorization.Authorizer``) and
``authorizer.requestResource`` (``kubernetes.authorization.ResourceCheck``, a variable with a
dotted name as upstream declares it) exist unless :class:`Declarations` says otherwise (only
``messageExpression`` is checked without them). The values given to :func:`activation` carry a
:class:`webhook.cel.k8s_authz.Binding` under ``"authorizer"``: the activation gets the two values
and the review's ``check`` (late-bound: the environments are shared by every review, the user and
the authorizer are not). Without a binding every ``check`` is an evaluation error.

Limits. The API server stops an expression at a runtime cost of 1,000,000 and a binding at a total
of 10,000,000. cel-cpp has no cost tracking; it stops any evaluation after 10,000 comprehension
iterations (``all``/``exists``/``map``/``filter`` steps, nested ones counted together). That bound
is what keeps a runaway expression from stalling the server: a review whose expression hits it gets
cel-go's cost error and its binding's ``failurePolicy`` decides. A policy that the API server would
accept but that legitimately iterates more than that (a 100x100 nested loop) fails here; the README
says so.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import re
from collections.abc import Mapping
from typing import Any

from cel_expr_python import cel

from webhook.cel import k8s_authz, k8s_types, library, rewrite
from webhook.cel import reads as reads_module

COST_LIMIT_EXCEEDED = "operation cancelled: actual cost limit exceeded"
"""cel-go's text when an expression passes the per-call cost limit (``CostLimit(PerCallLimit)``)."""

_EXTENSIONS = ("strings", "optional", "sets")
"""The cel-go extension libraries the API server's base environment enables (strings v2, sets,
optional types; two-variable comprehensions since 1.32, lists v3 since 1.34: :data:`VERSIONED`), as
cel-cpp names them; not ``bindings``, ``math``, ``encoders`` or cel-go's ``regex`` (Kubernetes has
its own ``find``/``findAll``), which the API server refuses."""

VERSIONED = (("two-var-comprehensions", 32), ("lists", 34))
"""cel-cpp extensions by the base environment version that brings them: ``all(i, v, ...)``,
``transformList`` and the like; ``slice``, ``flatten``, ``distinct``, ``reverse``, ``sort``,
``sortBy``, ``first``, ``last``, ``lists.range`` (cel-go's ext.Lists v3)."""

NEWEST = library.NEWEST
"""The newest base environment this runtime provides: every library below."""

OLDEST = 29
"""The oldest base environment a policy may be checked against: 1.30's compatibility version
(ValidatingAdmissionPolicy is GA in 1.30)."""


def libraries_of(kubernetes_minor: int) -> int:
    """The base environment an API server of version 1.``kubernetes_minor`` checks new policies
    against: its compatibility version, one minor below its own
    (``environment.DefaultCompatibilityVersion``; an expression is compiled with it when a policy
    is created or the expression changed), so a library is usable in new policies one release
    after it ships (``semver()``, 1.33, from 1.34 on)."""
    return max(OLDEST, min(NEWEST, kubernetes_minor - 1))


class CompileError(Exception):
    """An expression that does not compile or has the wrong type; the message is the API server's
    field detail (``compilation failed: ERROR: <input>:1:5: ...`` or ``must evaluate to bool but
    got dyn``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Declarations:
    """Which variables an expression may use, as the API server declares them per context."""

    params: bool = False
    """``params`` exists only when the policy has a ``paramKind``."""
    authorizer: bool = True
    """``authorizer`` is declared everywhere but in ``messageExpression``."""
    patch_types: bool = False
    """``Object{...}``, ``JSONPatch{...}`` and ``jsonpatch.escapeKey`` (mutations only)."""
    libraries: int = NEWEST
    """The minor version (1.N) of the API server's base environment the expressions are checked
    against: the libraries and language options introduced up to it (:func:`libraries_of`)."""
    variables: bool = True
    """``variables`` is declared everywhere but in ``matchConditions``, which the API server checks
    with its compiler without variable composition."""


@dataclasses.dataclass(frozen=True, slots=True)
class Program:
    """One compiled expression."""

    source: str
    expression: Any
    """The cel-expr-python ``Expression``."""
    output: str
    """The checked result type as cel-cpp names it (``BOOL``, ``STRING``, ``DYN``, ``LIST<DYN>``)."""
    variables: frozenset[str]
    """Names of the composited ``variables.<name>`` the expression refers to (evaluated first)."""
    asks_authorizer: bool = False
    """Whether the expression mentions ``authorizer``: its checks ask the cluster, so it is never
    evaluated speculatively (:mod:`webhook.cel.batch`)."""
    reads: reads_module.Reads = dataclasses.field(default_factory=lambda: dict(reads_module.EVERYTHING))
    """What it can read of the per-review variables (:mod:`webhook.cel.reads`)."""


class _Environment:
    """Two cel-cpp environments behind one ``compile``/``Activation``: the checker knows every typed
    overload of the Kubernetes libraries (``isGreaterThan`` on ``kubernetes.Quantity`` and on
    ``kubernetes.Semver``), the runtime one implementation per shape cel-cpp dispatches on (it sees
    all messages as one kind and refuses two implementations of one shape). An expression is checked
    by the first and planned by the second from its serialized checked form (about 50 µs, at load)."""

    __slots__ = ("checker", "runner")

    def __init__(self, checker: Any, runner: Any) -> None:
        self.checker = checker
        self.runner = runner

    def compile(self, source: str) -> tuple[Any, bytes]:
        """The runtime's program for ``source`` and its checked syntax tree, serialized."""
        checked = self.checker.compile(source).serialize()
        return self.runner.deserialize(checked), checked

    def Activation(self, values: Mapping[str, Any], functions: list[Any] | None = None) -> Any:  # noqa: N802
        return self.runner.Activation(values, functions=functions)


_ENVIRONMENTS: dict[Declarations, _Environment] = {}


def _environment(declared: Declarations) -> _Environment:
    """The checker of ``declared`` (its base environment's version included) with the runtime of
    the newest: a program checked against an older environment uses nothing the newest lacks, so
    all versions share one runtime (and one activation per review)."""
    found = _ENVIRONMENTS.get(declared)
    if found is None:
        newest = dataclasses.replace(declared, libraries=NEWEST, variables=True)
        runner = _environment(newest).runner if declared != newest else _new_env(newest, _names(newest), runtime=True)
        found = _ENVIRONMENTS[declared] = _Environment(_new_env(declared, _names(declared), runtime=False), runner)
    return found


def _names(declared: Declarations) -> dict[str, Any]:
    """The variables of ``declared``, typed as the API server declares them (objects as ``dyn``)."""
    names: dict[str, Any] = {
        "object": cel.Type.DYN,
        "oldObject": cel.Type.DYN,
        "request": cel.Type("map<string, dyn>"),
        "namespaceObject": cel.Type.DYN,
    }
    if declared.variables:
        names["variables"] = cel.Type("map<string, dyn>")
    if declared.params:
        names["params"] = cel.Type.DYN
    if declared.authorizer:
        names["authorizer"] = k8s_types.TYPES[k8s_types.AUTHORIZER]
        # A variable with a dotted name, as upstream declares it; the checker resolves the
        # qualified name before treating ``.requestResource`` as a field selection.
        names["authorizer.requestResource"] = k8s_types.TYPES[k8s_types.RESOURCE_CHECK]
    return names


def _new_env(declared: Declarations, names: dict[str, Any], *, runtime: bool) -> Any:
    extensions = [*_EXTENSIONS, *(name for name, since in VERSIONED if declared.libraries >= since)]
    return cel.NewEnv(
        descriptor_pool=k8s_types.POOL,
        config=cel.NewEnvConfigFromYaml("extensions:\n" + "".join(f"  - name: {name}\n" for name in extensions)),
        extensions=library.extensions(patch_types=declared.patch_types, runtime=runtime,
                                      libraries=declared.libraries),
        variables=names,
    )


@functools.lru_cache(maxsize=64)
def _typing_checker(declared: Declarations, typed: tuple[tuple[str, str], ...]) -> Any:
    """A checker that also declares each composited variable, by the identifier
    :func:`_typed_identifier` gives it, with its expression's type: the API server declares
    ``variables`` as an object whose fields have those types, so ``variables.name > 1`` on a string
    fails to compile there. Used at load only (about 1.5 ms to build; bounded, as a policy set may
    bring any number of type combinations)."""
    names = _names(declared)
    names.update((identifier, cel.Type(kind)) for identifier, kind in typed)
    return _new_env(declared, names, runtime=False)


def _typed_identifier(name: str) -> str:
    """The identifier standing for ``variables.<name>`` in the typing check. A user who writes it
    gets upstream's "undeclared reference" from the program's own compilation."""
    return f"_variable_{name}"


_DECLARABLE = {"BOOL": "bool", "INT": "int", "UINT": "uint", "DOUBLE": "double", "STRING": "string",
               "BYTES": "bytes", "DURATION": "duration", "TIMESTAMP": "timestamp", "NULL": "null_type",
               "NULL_TYPE": "null_type", "DYN": "dyn"}


def _declarable(output: str) -> str | None:
    """cel-cpp's printed type (``LIST<STRING>``) in the form ``cel.Type`` declares (``list<string>``);
    ``None`` for what has no declarable form here (optional and type values), which stays ``dyn``."""
    found = _DECLARABLE.get(output)
    if found is not None:
        return found
    if "." in output and "<" not in output:
        return output  # a message type (kubernetes.Quantity, net.IP)
    match = re.fullmatch(r"(LIST|MAP)<(.*)>", output)
    if match is None:
        return None
    arguments = [_declarable(part.strip()) for part in _type_arguments(match.group(2))]
    if None in arguments:
        return None
    return f"{match.group(1).lower()}<{', '.join(a for a in arguments if a is not None)}>"


_STRINGS = re.compile(r"'''.*?'''|\"\"\".*?\"\"\"|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"", re.DOTALL)
_VARIABLE_REFERENCE = re.compile(r"\bvariables\s*\.\s*\??\s*([_a-zA-Z][_a-zA-Z0-9]*)")


def referenced_variables(source: str) -> frozenset[str]:
    """The ``variables.<name>`` (and ``variables.?<name>``) an expression mentions outside string literals."""
    return frozenset(_VARIABLE_REFERENCE.findall(_STRINGS.sub("''", source)))


_AUTHORIZER = re.compile(r"(?<![.\w])authorizer\b")


def mentions_authorizer(source: str) -> bool:
    """Whether ``authorizer`` appears as a name outside string literals (a field called
    ``authorizer`` of some object does not count)."""
    return _AUTHORIZER.search(_STRINGS.sub("''", source)) is not None


def compile(
    source: str, *, declared: Declarations, returns: tuple[str, ...] | None = ("BOOL",),
    variable_types: Mapping[str, str] | None = None, reads: bool = True, variable: bool = False,
) -> Program:
    """Parse and type-check ``source``; ``returns`` lists the result types the context allows
    (``None``: any); ``variable_types`` are the checked types of the composited variables it may
    use (``{"allowed": "BOOL", "names": "LIST<STRING>"}``): it is type-checked with them, as the
    API server checks it, while the program itself reads ``variables`` as a map of ``dyn`` (a
    variable's value is put there at evaluation). ``variable=True`` compiles a composited
    variable's own expression: one whose value is an optional gives it in the form
    :func:`optional_reference` describes. ``reads=False`` skips working out what it reads (for a
    program whose members' reads are known already). Raises :class:`CompileError` with the API
    server's wording."""
    referenced = referenced_variables(source)
    types = variable_types or {}
    declared_as = {name: _declarable(types[name]) for name in referenced & types.keys()}
    typed = {name: kind for name, kind in declared_as.items() if kind not in (None, "dyn")}
    optional = {name: optional_reference(name) for name in referenced & types.keys()
                if types[name].startswith(_OPTIONAL_TYPE)}
    # ``variables.?x`` of an optional variable: its value, the optional, wrapped once more.
    selects = {name: f"optional.of({reference})" for name, reference in optional.items()}
    output = None
    if typed:
        checker = _typing_checker(declared, tuple(sorted((_typed_identifier(n), k) for n, k in typed.items())))
        references = rewrite.variable_references(
            source, {**{name: _typed_identifier(name) for name in typed}, **optional}, selects)
        output = str(_checked(checker.compile, references, declared.libraries).return_type())
    first = rewrite.variable_references(source, optional, selects)
    expression, checked = _checked(_environment(declared).compile, first, declared.libraries)
    output = output or str(expression.return_type())
    if returns is not None and output not in returns:
        wanted = " or ".join(go_type(name) for name in returns)
        if len(returns) == 1:
            raise CompileError(f"must evaluate to {wanted} but got {go_type(output)}")
        listed = " ".join(go_type(name) for name in returns)
        raise CompileError(f"must evaluate to one of [{listed}] but got {go_type(output)}")
    if variable and output.startswith(_OPTIONAL_TYPE):
        # The source on its own lines: a trailing ``//`` comment cannot swallow the call.
        wrapped = rewrite.unchanged(f"(\n{first.text}\n).optMap(o, [o]).orValue([])")
        expression, checked = _checked(_environment(declared).compile, wrapped, declared.libraries)
    return Program(source, expression, output, referenced, mentions_authorizer(source),
                   reads_module.of_checked(checked) if reads else dict(reads_module.EVERYTHING))


_OPTIONAL_TYPE = "optional_type<"


def optional_reference(name: str) -> str:
    """How an expression reads a composited variable whose value is an optional.

    cel-expr-python cannot hand an optional back to Python, nor take one in an activation. So such
    a variable's program gives a list instead, ``[]`` for ``optional.none()`` and ``[v]`` for
    ``optional.of(v)``, which is what ``variables.<name>`` holds; each expression that uses it reads
    ``variables.<name>`` through this text, which turns the list back into the same optional. A
    variable that failed is missing from ``variables``, so using it fails as any other does."""
    held = f"variables.{name}"
    return f"({held}.size() == 0 ? optional.none() : optional.of({held}[0]))"


def _checked(compile_text: Any, first: rewrite.Rewritten, libraries: int = NEWEST) -> Any:
    """``compile_text`` of ``first.text`` with the ``format`` calls rewritten (where the base
    environment has the format library); its issues as cel-go words them, at the positions of the
    source the user wrote."""
    found = rewrite.format_calls(first.text) if libraries >= library.FORMAT else rewrite.unchanged(first.text)
    try:
        return compile_text(found.text)
    except RuntimeError as exc:
        issues = rewrite.restore_format_names(first.restore(found.restore(_compile_issues(str(exc)))))
        raise CompileError(f"compilation failed: {issues}") from None


_UNDECLARED = re.compile(
    r"^ERROR: <input>:(?P<line>\d+):(?P<col>\d+): undeclared reference to '(?P<name>[^']+)' "
    r"\(in container '(?P<container>[^']*)'\)\n \| (?P<source>[^\n]*)\n \| [.．]*[\^＾]$"
)


def _compile_issues(text: str) -> str:
    """cel-cpp's ``INVALID_ARGUMENT: ERROR: <input>:...`` (with a trailing ``[INVALID_ARGUMENT]``)
    as cel-go's ``ERROR: <input>:...`` issue list."""
    text = re.sub(r"^[A-Z_]+: ", "", text.strip())
    text = re.sub(r"\s*\[[A-Z_]+\]$", "", text)
    issues = re.split(r"\n(?=ERROR: )", text)
    # cel-go lists its issues by position (common.Errors.ToDisplayString); cel-cpp by when it found them.
    issues.sort(key=_position)
    return "\n".join(_member_call_as_cel_go(_undeclared_as_cel_go(_SELECT.sub(_SELECT_AS_CEL_GO, issue)))
                     for issue in issues)


_POSITION = re.compile(r"^ERROR: <input>:(\d+):(\d+):")


def _position(issue: str) -> tuple[int, int]:
    found = _POSITION.match(issue)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


_SELECT = re.compile(r"expression of type '(?P<type>[^']+)' cannot be the operand of a select operation")
_SELECT_AS_CEL_GO = r"type '\g<type>' does not support field selection"
"""A field of a value that has none (``variables.name.first`` on a string): cel-cpp's words and
cel-go's, at the same position (the ``.``); the type is already written as cel-go writes it."""


_NO_MATCHING_OVERLOAD = re.compile(
    r"^(?P<head>ERROR: <input>:\d+:(?P<col>\d+): found no matching overload for '(?P<name>[^']+)' applied to )"
    r"'\((?P<args>.*)\)'(?P<tail>\n \| (?P<source>[^\n]*)\n \| [.．]*[\^＾])$"
)


def _member_call_as_cel_go(issue: str) -> str:
    """cel-cpp lists a receiver among the arguments (``'(kubernetes.Quantity, int)'``); cel-go
    writes a member call as ``'kubernetes.Quantity.(int)'``. The caret is on the call's ``(``: the
    call is receiver-style when the function name there follows a ``.``."""
    match = _NO_MATCHING_OVERLOAD.match(issue)
    if match is None or "." in match.group("name"):
        return issue
    before = match.group("source")[: int(match.group("col")) - 1].rstrip()
    if not before.endswith(match.group("name")) or not before[: -len(match.group("name"))].rstrip().endswith("."):
        return issue
    args, depth, start = [], 0, 0
    text = match.group("args")
    for index, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            args.append(text[start:index].strip())
            start = index + 1
    args.append(text[start:].strip())
    return f"{match.group('head')}'{args[0]}.({', '.join(args[1:])})'{match.group('tail')}"


def _undeclared_as_cel_go(issue: str) -> str:
    """cel-cpp reports an unknown ``params.max`` whole, at its last dot; cel-go reports the unknown
    identifier ``params`` where it starts. The column moves back by the length of what precedes
    the last dot."""
    match = _UNDECLARED.match(issue)
    if match is None or "." not in match.group("name"):
        return issue
    head, _, _ = match.group("name").rpartition(".")
    column = int(match.group("col")) - len(head)
    if column < 1:
        return issue
    first = match.group("name").split(".")[0]
    return (f"ERROR: <input>:{match.group('line')}:{column}: undeclared reference to '{first}' "
            f"(in container '{match.group('container')}')\n | {match.group('source')}\n | {'.' * (column - 1)}^")


_GO_TYPES = {"BOOL": "bool", "STRING": "string", "DYN": "dyn", "INT": "int", "UINT": "uint", "DOUBLE": "double",
             "BYTES": "bytes", "NULL": "null_type", "NULL_TYPE": "null_type", "DURATION": "google.protobuf.Duration",
             "TIMESTAMP": "google.protobuf.Timestamp"}


def go_type(name: str) -> str:
    """cel-cpp's type name as cel-go prints it, nested parameters included (``LIST<DYN>`` ->
    ``list(dyn)``, ``MAP<STRING, LIST<INT>>`` -> ``map(string, list(int))``, ``type<DYN>`` ->
    ``type(dyn)``); a message type keeps its full name (``kubernetes.Quantity``)."""
    lowered = _GO_TYPES.get(name)
    if lowered is not None:
        return lowered
    head, _, rest = name.partition("<")
    if rest.endswith(">"):
        args = ", ".join(go_type(part.strip()) for part in _type_arguments(rest[:-1]))
        return f"{head.lower()}({args})"
    if "." in name:
        return name
    return name.lower()


def _type_arguments(text: str) -> list[str]:
    """``MAP<STRING, LIST<INT>>``'s arguments, split at the commas outside nested ``<...>``."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += {"<": 1, ">": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    return [*parts, text[start:]]


def activation(values: Mapping[str, Any], *, declared: Declarations, authorizer: bool = True) -> Any:
    """The variables of one evaluation, converted once and shared by every expression of a review.

    ``values["authorizer"]`` is the review's :class:`~webhook.cel.k8s_authz.Binding`: it becomes the
    ``authorizer`` and ``authorizer.requestResource`` values and the late-bound ``check`` that asks
    for the review's user. Anything else there (``None``) is "no authorizer": every ``check`` is an
    evaluation error (:data:`~webhook.cel.k8s_authz.NO_CLUSTER`). ``authorizer=False`` binds none of
    it, for expressions known not to mention ``authorizer`` (a quarter of the activation's cost);
    ``values`` then must not hold the key."""
    runner = _runner(declared)
    if not authorizer:
        return runner.Activation(values, functions=None)
    data = dict(values)
    found = data.pop("authorizer", None)
    if not declared.authorizer:
        return runner.Activation(data, functions=None)
    binding = found if isinstance(found, k8s_authz.Binding) else k8s_authz.UNAVAILABLE
    data.update(binding.variables)
    return runner.Activation(data, functions=binding.functions)


_RUNNERS: dict[int, tuple[Declarations, Any]] = {}
""":func:`_environment`'s runtime by the identity of the declarations (kept with them): hashing
the dataclass on every activation cost half a microsecond."""


def _runner(declared: Declarations) -> Any:
    found = _RUNNERS.get(id(declared))
    if found is not None and found[0] is declared:
        return found[1]
    runner = _environment(declared).runner
    if len(_RUNNERS) >= 256:
        _RUNNERS.clear()
    _RUNNERS[id(declared)] = (declared, runner)
    return runner


@dataclasses.dataclass(frozen=True, slots=True)
class Result:
    value: Any = None
    error: str | None = None
    """cel-go's text of the runtime error (``no such key: foo``), when the expression failed."""


def evaluate(program: Program, bound: Any) -> Result:
    """Run ``program`` on an :func:`activation`; errors come back as values, never raised.

    The value is converted to plain Python (lists, dicts, str, int, ...) so it can be put into the
    next activation (a composited variable) or into a patch. An optional value cannot be converted
    by cel-expr-python 0.1: such a result is an error naming the limitation. This runs for every
    expression of every review: booleans, by far the most common results, reuse two prepared
    results instead of building one.
    """
    try:
        value = program.expression.eval(bound)
    except RuntimeError as exc:
        return _failed(str(exc))
    try:
        plain = value.plain_value()
        # An error's plain value is its text, so a boolean is never an error: no type() call.
        if plain is True:
            return TRUE
        if plain is False:
            return FALSE
        if plain is None or isinstance(plain, (list, dict)):
            _give_back_nones(plain)
        if value.type() == _ERROR_TYPE:
            return _failed(str(plain))
    except (TypeError, SystemError):
        # An optional cannot be converted: alone it is a TypeError, inside a list a SystemError.
        return Result(error=UNSUPPORTED_RESULT)
    return Result(value=plain)


_INCREF = ctypes.pythonapi.Py_IncRef
_INCREF.argtypes = [ctypes.py_object]
_INCREF.restype = None


def _give_back_nones(plain: Any) -> None:
    """Take back the references to ``None`` that cel-expr-python 0.1 drops.

    Each ``null`` a converted result holds costs ``None`` one reference that cel-expr-python
    never took (measured: a result of ``[null, null]`` loses two each time). On Python 3.11,
    where ``None`` is not immortal, its count reaches zero after some thousands of such results
    and the interpreter aborts (``Fatal Python error: none_dealloc``). So each one is given back."""
    for _ in range(_nones(plain)):
        _INCREF(None)


def _nones(plain: Any) -> int:
    """How many ``None`` ``plain`` holds (fast for the batches' lists of booleans: one C count)."""
    if plain is None:
        return 1
    if type(plain) is dict:
        plain = list(plain.values())
    if type(plain) is not list:
        return 0
    count: int = plain.count(None)
    if count + plain.count(True) + plain.count(False) == len(plain):
        return count  # only booleans and nulls (a batch's results, as a rule): nothing nested
    for item in plain:
        if type(item) is list or type(item) is dict:
            count += _nones(item)
    return count


_ERROR_TYPE = cel.Type.ERROR


@functools.lru_cache(maxsize=1024)
def _failed(text: str) -> Result:
    """The (immutable, shared) result for cel-cpp's error ``text``: see :func:`error_text`."""
    return Result(error=error_text(text))
TRUE = Result(value=True)
FALSE = Result(value=False)


UNSUPPORTED_RESULT = (
    "the result is an optional value, which this webhook's CEL runtime cannot hold; "
    "unwrap it in the expression (for example with .orValue(...))"
)


_MISSING_KEY = re.compile(r'^NOT_FOUND: Key not found in map : "(?P<key>.*)"$', re.DOTALL)
_NO_OVERLOAD = re.compile(r"^UNKNOWN: No matching overloads found : (?P<call>.*)$", re.DOTALL)
_INDEX = re.compile(r"^UNKNOWN: Index error: index=(?P<index>-?\d+) size=\d+$")
_STATUS_PREFIX = re.compile(r"^[A-Z_]+: ")


@functools.lru_cache(maxsize=1024)
def error_text(text: str) -> str:
    """cel-cpp's runtime error as cel-go words it; unknown errors lose only their status prefix.

    Memoized: a policy written without ``has()`` guards fails the same way on every review (``no
    such key: hostNetwork``), and the rewording (regular expressions) cost more than the
    evaluation itself (about 3 of 5.5 µs). Bounded, as texts may quote values from the object.
    """
    text = re.sub(r"\s*\[[A-Z_]+\]$", "", text.strip())
    if text.endswith("Iteration budget exceeded"):
        return COST_LIMIT_EXCEEDED
    match = _MISSING_KEY.match(text)
    if match:
        return f"no such key: {match.group('key')}"
    if _NO_OVERLOAD.match(text):
        return "no such overload"
    match = _INDEX.match(text)
    if match:
        return f"index out of bounds: {match.group('index')}"
    simple = {
        "INVALID_ARGUMENT: divide by zero": "division by zero",
        "INVALID_ARGUMENT: modulus by zero": "modulus by zero",
        "OUT_OF_RANGE: integer overflow": "integer overflow",
        "OUT_OF_RANGE: unsigned integer overflow": "unsigned integer overflow",
    }
    found = simple.get(text)
    if found is not None:
        return found
    return _STATUS_PREFIX.sub("", text)
