"""Policy test suites: the answers the policies must give, written down and checked in CI.

A suite is a YAML file (``kind: PolicyTest``, by convention named ``*-test.yaml``) naming policy
files, resources, and per resource the answer expected (docs/testing-policies.md has the format)::

    apiVersion: admission.dev/v1alpha1
    kind: PolicyTest
    policies: [..]                   # like --policies, relative to this file (default: the installed ones)
    resources: [resources/*.yaml]    # manifests, AdmissionReviews or recordings
    results:
      - kind: Pod
        name: debug
        verdict: denied              # allowed | denied | warned
        policy: [pod-security.privileged]
        message: 'violates PodSecurity "baseline:latest"'

Every resource is reviewed as ``review`` reviews it (:func:`webhook.offline.evaluate`: the mutating
chain, its patch applied as the API server applies it, then the validating chain on the mutated
object; a recording on the endpoint that answered it), so a suite checks what the server answers.

**Which policies fired.** Messages are made for people: Pod Security speaks upstream's words
(``violates PodSecurity "baseline:latest": privileged (...)``) with no policy id, and a detail may
contain ``; `` or another id. So the rule does not read messages: a built-in policy (or group)
*fired* when switching it off (``--set 'group.policies[id].mode=off'``) changes the answer -- its
verdict, status message, warnings, audit annotations or patch. It is decided by reviewing the
resource again with a policy set compiled without it (once per suite and id). An admission policy
(ValidatingAdmissionPolicy, MutatingAdmissionPolicy) fired when the engine names it in
``Outcome.decided_by`` (``policy/binding``: it denied, warned, audited or changed the object).

**Exit codes** of :func:`main`: 0 every expectation holds, 1 one does not, 2 a suite cannot be used
(its problem is printed as ``file:line: ...``; the other suites still run).

``update=True`` fills in the expectations of resources no result selects and refreshes those that
no longer hold, rewriting only the changed entries of ``results:`` (so comments elsewhere in the
file survive; comments inside a rewritten entry do not), after printing the diff.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import glob
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

import orjson
import pydantic
import yaml

from webhook import catalog, config, engine, errors, offline, review
from webhook.policy import model, yamlsafe

API_VERSION = "admission.dev/v1alpha1"
KIND = "PolicyTest"
SUFFIXES = ("-test.yaml", "-test.yml")
"""Files named like this are suites (and an error when they are not); other YAML files are suites
when their top-level ``kind`` is ``PolicyTest``."""

Verdict = Literal["allowed", "denied", "warned"]
Output = Literal["text", "json"]


class SuiteError(errors.WebhookError):
    """A suite file cannot be used: unreadable, not valid YAML, not a valid ``PolicyTest``, or it
    names policy files, resources or policy ids that do not exist. The message starts with
    ``file:line:`` and says what to fix; ``python -m webhook test`` exits 2."""


# --- the format ----------------------------------------------------------------------------------


def _pattern(text: str) -> Callable[[str], bool]:
    """``/regex/`` searches, anything else is a substring (compiled once, at load)."""
    if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
        compiled = re.compile(text[1:-1])
        return lambda value: compiled.search(value) is not None
    return lambda value: text in value


def _check_pattern(text: str) -> str:
    try:
        _pattern(text)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {text}: {exc}") from None
    return text


Pattern = Annotated[str, pydantic.AfterValidator(_check_pattern)]


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


def _warnings(value: Any) -> Any:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("expected a count (0, 2) or a non-empty list of substrings or /regexes/ "
                     "(write 0 for no warnings)")


_OPS = ("add", "remove", "replace", "move", "copy", "test")


def _patch(value: Any) -> Any:
    if not isinstance(value, list):
        raise ValueError("expected a list of JSON-patch operations ({op: add, path: /..., value: ...}); [] for none")
    for index, op in enumerate(value):
        if not isinstance(op, dict) or op.get("op") not in _OPS or not isinstance(op.get("path"), str):
            raise ValueError(f"[{index}]: expected an operation with op ({', '.join(_OPS)}) and path")
        if set(op) - {"op", "path", "value", "from"}:
            raise ValueError(f"[{index}]: unknown keys {sorted(set(op) - {'op', 'path', 'value', 'from'})}")
    return tuple(value)


class Expectation(config.StrictModel):
    """One entry of ``results``: which resources it selects, the request context if it differs
    from the suite's, and what the answer must be."""

    kind: str | None = None
    """Selects by the request's kind (``Pod``, ``ClusterRole``)."""
    namespace: str | None = None
    """Selects by the request's namespace (a glob); cluster-scoped objects have none."""
    name: str | None = None
    """Selects by the object's name (a glob)."""
    file: str | None = None
    """Selects the resources of one file (a path or glob relative to the suite file)."""

    user: str | None = None
    groups: tuple[str, ...] | None = None
    operation: model.Operation | None = None
    old_object: str | None = None
    namespace_labels: dict[str, str] | None = None

    verdict: Verdict | None = None
    """``allowed`` (admitted, no warnings), ``warned`` (admitted with warnings) or ``denied``."""
    policy: Annotated[tuple[str, ...], pydantic.BeforeValidator(_one_or_many)] | None = None
    """Policy ids, group names or admission policies (``name`` or ``name/binding``) that must have
    fired; others may fire too."""
    not_policy: Annotated[tuple[str, ...], pydantic.BeforeValidator(_one_or_many)] | None = None
    """Policy ids or groups that must not have fired (no sidecar without an opt-in)."""
    message: Pattern | None = None
    """A substring of the denial message, or ``/regex/``."""
    warnings: Annotated[int | tuple[Pattern, ...], pydantic.BeforeValidator(_warnings)] | None = None
    """The number of warnings, or patterns that each match one of them."""
    patched_resource: str | None = None
    """A file holding the object as the mutating chain leaves it (what the validating chain judged)."""
    patch: Annotated[tuple[dict[str, Any], ...], pydantic.BeforeValidator(_patch)] | None = None
    """The JSON patch of the answer, decoded (``[]``: not mutated)."""

    @pydantic.model_validator(mode="after")
    def _selects(self) -> Expectation:
        if self.kind is None and self.namespace is None and self.name is None and self.file is None:
            raise ValueError("select the resources this entry is about with kind, namespace, name or file")
        return self

    def checks(self) -> bool:
        return any(v is not None for v in (self.verdict, self.policy, self.not_policy, self.message, self.warnings,
                                           self.patched_resource, self.patch))


class Suite(config.StrictModel):
    api_version: Literal["admission.dev/v1alpha1"]
    kind: Literal["PolicyTest"]
    name: str | None = None
    """Shown in reports (JUnit's testsuite name); default: the file name without ``-test.yaml``."""
    description: str | None = None
    policies: tuple[str, ...] | None = None
    """Policy files or directories relative to the suite file; default: the installed policies."""
    overrides: tuple[str, ...] = pydantic.Field((), alias="set")
    """``dotted.path=value`` overrides, as ``--set``."""
    resources: tuple[str, ...] = pydantic.Field(min_length=1)
    """Files, directories or globs relative to the suite file."""
    namespace: str = offline.Shape().namespace
    namespace_labels: dict[str, str] | None = None
    user: str = offline.Shape().username
    groups: tuple[str, ...] = offline.Shape().groups
    operation: model.Operation = "CREATE"
    old_object: str | None = None
    results: tuple[Expectation, ...] = ()


# --- loading -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Loaded:
    """A suite as read: the model, and the text and YAML tree it came from (for lines and --update)."""

    path: Path
    text: str
    suite: Suite
    node: yaml.Node

    @property
    def name(self) -> str:
        if self.suite.name:
            return self.suite.name
        stem = self.path.name
        for suffix in (*SUFFIXES, ".yaml", ".yml"):
            if stem.endswith(suffix):
                return stem[: -len(suffix)]
        return stem

    def line(self, *path: str | int) -> int:
        return _line(self.node, path)

    def where(self, *path: str | int) -> str:
        return f"{self.path}:{self.line(*path)}"

    def resolve(self, relative: str) -> Path:
        return self.path.parent / relative


def _line(node: yaml.Node | None, path: Sequence[str | int]) -> int:
    """1-based line of the deepest key or item along ``path`` that exists."""
    best = node.start_mark.line + 1 if node is not None else 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in reversed(node.value) if getattr(k, "value", None) == str(part)), None)
            if pair is None:
                break
            best, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
            best = node.start_mark.line + 1
        else:
            break
    return best


def _dotted(loc: Sequence[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load(path: Path) -> Loaded:
    """Read and validate one suite file; raises :class:`SuiteError` naming the file and line."""
    try:
        text = yamlsafe.read(path)
        documents = yamlsafe.load_all(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise SuiteError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    documents = [(d, n) for d, n in documents if d is not None]
    if len(documents) != 1:
        raise SuiteError(f"{path}:1: a suite file holds exactly one document, found {len(documents)}")
    (document, node), = documents
    if not isinstance(document, dict):
        raise SuiteError(f"{path}:1: expected a mapping with apiVersion: {API_VERSION} and kind: {KIND}")
    try:
        suite = Suite.model_validate(document)
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = tuple(p for p in error["loc"] if isinstance(p, int) or not p.startswith(("function-", "tuple[")))
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field (check the spelling; docs/testing-policies.md lists the fields)"
            problems.append(f"{path}:{_line(node, loc)}: {_dotted(loc) or 'suite'}: {message}")
        raise SuiteError("\n".join(problems)) from None
    return Loaded(path, text, suite, node)


# --- finding suites ------------------------------------------------------------------------------

_KIND_LINE = re.compile(rb"^kind:[ \t]*[\"']?PolicyTest[\"']?[ \t]*(#.*)?$", re.MULTILINE)
_OUR_API = re.compile(rb"^apiVersion:[ \t]*[\"']?admission\.dev/", re.MULTILINE)


def _is_suite(path: Path) -> bool:
    """A top-level ``kind: PolicyTest``; or a ``*-test.yaml`` file of ours (an ``admission.dev``
    apiVersion) with another kind, so a misspelt kind is an error, not a suite silently skipped.
    Other tools' ``*-test.yaml`` files (``kyverno-test.yaml``) are left alone."""
    if path.suffix.lower() not in (".yaml", ".yml"):
        return False
    try:
        with path.open("rb") as stream:
            head = stream.read(yamlsafe.MAX_FILE_BYTES)
    except OSError:
        return False
    return _KIND_LINE.search(head) is not None or (
        path.name.endswith(SUFFIXES) and _OUR_API.search(head) is not None)


def discover(paths: Sequence[str]) -> tuple[list[Path], list[str]]:
    """The suite files in ``paths`` (a file as given; a directory searched recursively, hidden
    entries and symlinked directories skipped) in name order, and the problems found."""
    found: list[Path] = []
    problems: list[str] = []
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(path)

    for given in paths:
        path = Path(given)
        if path.is_file():
            add(path)
        elif path.is_dir():
            before = len(found)
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    candidate = Path(root) / name
                    if not name.startswith(".") and _is_suite(candidate):
                        add(candidate)
            found[before:] = sorted(found[before:], key=lambda p: p.parts)
            if len(found) == before:
                problems.append(f"{given}: no suites found (files named *-test.yaml or holding kind: {KIND})")
        else:
            problems.append(f"{given}: no such file or directory")
    return found, problems


# --- running -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Resource:
    kind: str
    namespace: str
    name: str
    source: str
    """``file``, ``file (document 2)`` or ``file (document 1) items[3]``."""
    file: str

    def label(self) -> str:
        if not self.name:
            return f"{self.kind} in {self.source}"
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "namespace": self.namespace, "name": self.name, "source": self.source}


@dataclasses.dataclass(slots=True)
class Actual:
    """The answer, as the expectations read it."""

    verdict: Verdict
    code: int
    message: str
    warnings: list[str]
    audit: dict[str, str]
    patch: list[dict[str, Any]]
    mutated: Any
    decided_by: list[str]

    def summary(self) -> str:
        if self.verdict == "denied":
            return f"denied ({self.code})"
        if self.verdict == "warned":
            return f"warned ({len(self.warnings)} warning(s))"
        return "allowed"

    def fingerprint(self) -> tuple[Any, ...]:
        return (self.verdict, self.code, self.message, self.warnings, self.audit, self.patch)


@dataclasses.dataclass(slots=True)
class CaseResult:
    """One expectation checked against one resource it selects."""

    index: int
    """The entry's index in ``results``."""
    line: int
    resource: Resource
    expectation: Expectation
    actual: Actual
    differences: list[str]
    seconds: float
    fired: list[str] | None = None
    """The policies that decided the verdict (computed for failures and --update)."""
    missing: list[str] = dataclasses.field(default_factory=list)
    """Of ``policy``, those that did not fire."""
    unwanted: list[str] = dataclasses.field(default_factory=list)
    """Of ``notPolicy``, those that fired."""

    @property
    def passed(self) -> bool:
        return not self.differences

    def failed_fields(self) -> set[str]:
        """``verdict``, ``message``, ``warnings``, ``policy``, ... (each difference starts with its field)."""
        return {difference.split(":", 1)[0] for difference in self.differences}


@dataclasses.dataclass(slots=True)
class Report:
    path: Path
    name: str
    cases: list[CaseResult] = dataclasses.field(default_factory=list)
    unchecked: list[Resource] = dataclasses.field(default_factory=list)
    """Resources no entry of ``results`` selects."""
    problems: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    loaded: Loaded | None = None
    fills: list[tuple[Resource, Actual, list[str]]] = dataclasses.field(default_factory=list)
    """--update: expectations for the unchecked resources."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Context:
    """The request context of a review: the suite's, with an entry's overrides."""

    operation: model.Operation
    user: str
    groups: tuple[str, ...]
    labels: tuple[tuple[str, str], ...] | None
    old_object: str | None


class _Runner:
    """Runs one loaded suite; policy sets (and those without a policy) are compiled once."""

    def __init__(self, loaded: Loaded, report: Report) -> None:
        self.loaded = loaded
        self.suite = loaded.suite
        self.report = report
        self.paths = ([loaded.resolve(p) for p in self.suite.policies] if self.suite.policies is not None
                      else [config.DEFAULT_POLICIES])
        self.policy_set = catalog.load(self.paths, overrides=self.suite.overrides)
        self._without: dict[str, engine.PolicySet | None] = {}
        self._inputs: dict[_Context, list[offline.Input]] = {}
        self._old: dict[str, dict[str, Any]] = {}
        self.files = self._resource_files()

    def problem(self, path: tuple[str | int, ...], text: str) -> None:
        self.report.problems.append(f"{self.loaded.where(*path)}: {text}")

    # inputs

    def _resource_files(self) -> list[str]:
        """The files ``resources`` names, without those holding expected objects (``patchedResource``),
        which a glob such as ``resources/*.yaml`` would otherwise review too."""
        expected = {self.loaded.resolve(e.patched_resource).resolve() for e in self.suite.results
                    if e.patched_resource is not None}
        files: list[str] = []
        for index, entry in enumerate(self.suite.resources):
            if any(c in entry for c in "*?["):
                # ``**`` matches directories at any depth; an absolute pattern is used as written.
                matched = sorted(p for p in glob.glob(str(self.loaded.resolve(entry)), recursive=True)
                                 if Path(p).is_file() and Path(p).suffix.lower() in offline.SUFFIXES)
                if not matched:
                    self.problem(("resources", index), f"{entry}: the pattern matches no .yaml, .yml or .json file")
                files.extend(matched)
            else:
                target = self.loaded.resolve(entry)
                if not target.exists():
                    self.problem(("resources", index), f"{entry}: no such file or directory ({target})")
                    continue
                files.append(str(target))
        return [f for f in dict.fromkeys(files) if Path(f).resolve() not in expected]

    def context(self, entry: Expectation | None) -> _Context:
        suite = self.suite
        labels = entry.namespace_labels if entry and entry.namespace_labels is not None else suite.namespace_labels
        return _Context(
            operation=(entry.operation if entry else None) or suite.operation,
            user=(entry.user if entry else None) or suite.user,
            groups=(entry.groups if entry else None) or suite.groups,
            labels=tuple(sorted(labels.items())) if labels is not None else None,
            old_object=(entry.old_object if entry else None) or suite.old_object,
        )

    def inputs(self, ctx: _Context) -> list[offline.Input]:
        found = self._inputs.get(ctx)
        if found is None:
            shape = offline.Shape(operation=ctx.operation, namespace=self.suite.namespace, username=ctx.user,
                                  groups=ctx.groups, namespace_labels=dict(ctx.labels) if ctx.labels else None)
            found, problems = offline.read(self.files, shape=shape)
            if ctx == self.context(None):  # report unusable files once
                self.report.problems.extend(problems)
            self._inputs[ctx] = found
        return found

    def old_object(self, relative: str, where: tuple[str | int, ...], operation: str) -> dict[str, Any] | None:
        if operation not in ("UPDATE", "DELETE"):
            self.problem(where, f"oldObject is only meaningful with operation UPDATE or DELETE, not {operation}")
            return None
        if relative not in self._old:
            inputs, problems = offline.read([str(self.loaded.resolve(relative))])
            objects = [i.document["request"].get("object") or i.document["request"].get("oldObject")
                       for i in inputs]
            if problems or len(objects) != 1 or not isinstance(objects[0], dict):
                detail = "; ".join(problems) or f"expected exactly one manifest, found {len(objects)}"
                self.problem(where, f"oldObject {relative}: {detail}")
                return None
            self._old[relative] = objects[0]
        return self._old[relative]

    # answers

    def answer(self, item: offline.Input, policy_set: engine.PolicySet, ctx: _Context,
               old: dict[str, Any] | None) -> Actual:
        only, group = offline.endpoint(item.path) if item.path is not None else (None, None)
        result = offline.evaluate(item, policy_set, only=only, group=group,
                                  namespace_labels=dict(ctx.labels) if ctx.labels is not None else None,
                                  old_object=old)
        response = result.answer["response"]
        warnings = list(response.get("warnings", []))
        allowed = bool(response["allowed"])
        verdict: Verdict = "denied" if not allowed else ("warned" if warnings else "allowed")
        return Actual(
            verdict=verdict,
            code=int(response.get("status", {}).get("code", 200)) if not allowed else 200,
            message=str(response.get("status", {}).get("message", "")) if not allowed else "",
            warnings=warnings,
            audit=dict(response.get("auditAnnotations", {})),
            patch=review.decode_patch(result.answer),
            mutated=result.mutated if result.mutated is not None else result.submitted,
            decided_by=list(result.outcome.decided_by),
        )

    def without(self, key: str) -> engine.PolicySet | None:
        """The suite's policy set with policy (or group) ``key`` switched off; ``None`` when it has
        nothing to switch off (the policy runs in no mode), so it cannot have fired."""
        if key not in self._without:
            running = {i.policy.id for i in self.policy_set.instances}
            ids = ([key] if key in catalog.REGISTRY.policies
                   else [p.id for p in catalog.REGISTRY.in_group(key)])
            ids = [i for i in ids if i in running]
            offs = [f"{catalog.REGISTRY.groups[catalog.REGISTRY.policies[i].group].key}.policies[{i}].mode=off"
                    for i in ids]
            self._without[key] = catalog.load(self.paths, overrides=[*self.suite.overrides, *offs]) if ids else None
        return self._without[key]

    def fired(self, key: str, item: offline.Input, ctx: _Context, old: dict[str, Any] | None,
              actual: Actual) -> bool:
        if key == engine.CEL_GROUP:
            return bool(actual.decided_by)
        if key not in catalog.REGISTRY.policies and key not in catalog.REGISTRY.groups:
            return any(entry == key or entry.partition("/")[0] == key for entry in actual.decided_by)
        policy_set = self.without(key)
        if policy_set is None:
            return False
        return self.answer(item, policy_set, ctx, old).fingerprint() != actual.fingerprint()

    def deciding(self, item: offline.Input, ctx: _Context, old: dict[str, Any] | None, actual: Actual) -> list[str]:
        """The policies behind the verdict: those whose absence changes the denial (for a denied
        request), or the warnings or the patch (for an admitted one); admission policies as the
        engine names them. Audit-only effects are left out: they are not what the verdict says."""
        found = list(dict.fromkeys(actual.decided_by))
        kind = item.document.get("request", {}).get("kind", {})
        kind = kind.get("kind") if isinstance(kind, dict) else None
        for instance_id in dict.fromkeys(i.policy.id for i in self.policy_set.instances):
            if kind not in catalog.REGISTRY.policies[instance_id].kinds:
                continue
            policy_set = self.without(instance_id)
            if policy_set is None:
                continue
            other = self.answer(item, policy_set, ctx, old)
            if actual.verdict == "denied":
                changed = (other.verdict, other.message) != (actual.verdict, actual.message)
            else:
                changed = (other.verdict, other.warnings, other.patch) != (actual.verdict, actual.warnings,
                                                                          actual.patch)
            if changed:
                found.append(instance_id)
        return found

    def known(self, key: str) -> bool:
        if key in catalog.REGISTRY.policies or key in catalog.REGISTRY.groups or key == engine.CEL_GROUP:
            return True
        return key in self.admission_policies()

    def admission_policies(self) -> set[str]:
        """Names of the set's admission policies, and ``policy/binding`` of each binding."""
        found = {f"{p.name}/{b.name}" for p, b in self.policy_set.cel.pairs}
        found |= {f"{p.name}/{b.name}" for p, b in self.policy_set.cel_mutating.pairs}
        return found | {name.partition("/")[0] for name in found}

    def suggest(self, key: str) -> str:
        known = [*catalog.REGISTRY.policies, *catalog.REGISTRY.groups, *self.admission_policies()]
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        return f"did you mean {', '.join(repr(c) for c in close)}?" if close else "see python -m webhook policies"


def _selects(entry: Expectation, item: offline.Input, resource: Resource, base: Path) -> bool:
    if entry.kind is not None and entry.kind != resource.kind:
        return False
    if entry.namespace is not None and not fnmatch.fnmatchcase(resource.namespace, entry.namespace):
        return False
    if entry.name is not None and not fnmatch.fnmatchcase(resource.name, entry.name):
        return False
    if entry.file is not None:
        wanted = base / entry.file
        if Path(resource.file).resolve() != wanted.resolve() and not fnmatch.fnmatchcase(
            Path(resource.file).as_posix(), wanted.as_posix()
        ):
            return False
    return True


def _resource(item: offline.Input) -> Resource:
    request = item.document.get("request") or {}
    kind = request.get("kind")
    obj = request.get("object") if isinstance(request.get("object"), dict) else request.get("oldObject")
    name = request.get("name") or ((obj or {}).get("metadata") or {}).get("name") or ""
    return Resource(
        kind=str(kind.get("kind", "")) if isinstance(kind, dict) else "",
        namespace=str(request.get("namespace") or ""),
        name=str(name),
        source=item.source,
        file=(item.origin or offline.Origin(item.source)).file,
    )


def _compare(entry: Expectation, actual: Actual, loaded: Loaded, namespace: str) -> list[str]:
    """What differs between ``entry``'s expectations and ``actual`` (empty: it holds); the policy
    expectation is checked by the caller."""
    differences: list[str] = []
    listed = "".join(f"\n  - {w}" for w in actual.warnings)
    message_differs = entry.message is not None and not _pattern(entry.message)(actual.message)
    warnings_differ = (isinstance(entry.warnings, int) and entry.warnings != len(actual.warnings)) or (
        isinstance(entry.warnings, tuple) and not all(any(_pattern(p)(w) for w in actual.warnings)
                                                      for p in entry.warnings))
    if entry.verdict is not None and entry.verdict != actual.verdict:
        line = f"verdict: expected {entry.verdict}, got {actual.summary()}"
        # What the answer said, unless a difference below shows it anyway.
        if actual.verdict == "denied" and not message_differs:
            line += f"\n  message: {actual.message}"
        elif actual.verdict == "warned" and not warnings_differ:
            line += listed
        differences.append(line)
    if entry.message is not None and message_differs:
        how = "to match" if entry.message.startswith("/") and entry.message.endswith("/") else "to contain"
        got = actual.message or "no message (the request is admitted)"
        differences.append(f"message: expected {how} '{entry.message}', got:\n  {got}")
    if isinstance(entry.warnings, int) and warnings_differ:
        differences.append(f"warnings: expected {entry.warnings}, got {len(actual.warnings)}{listed}")
    elif isinstance(entry.warnings, tuple):
        for wanted in entry.warnings:
            if not any(_pattern(wanted)(w) for w in actual.warnings):
                differences.append(f"warnings: none matches '{wanted}'; got {len(actual.warnings)}{listed}")
    if entry.patch is not None and list(entry.patch) != actual.patch:
        differences.append("patch: differs (- expected, + actual):\n"
                           + _diff(list(entry.patch), actual.patch, "expected", "actual"))
    if entry.patched_resource is not None:
        expected = _expected_object(loaded.resolve(entry.patched_resource), namespace)
        if expected != actual.mutated:
            differences.append(f"patchedResource: the mutated object differs from {entry.patched_resource} "
                               "(- expected, + actual):\n" + _diff(expected, actual.mutated, "expected", "actual"))
    return differences


def _expected_object(path: Path, namespace: str) -> Any:
    """The object in ``path``, read as a resource is (its namespace filled in as the API server
    fills it in), so it compares with the mutated object; ``None`` when unreadable."""
    inputs, problems = offline.read([str(path)], shape=offline.Shape(namespace=namespace, as_written=True))
    if problems or len(inputs) != 1:
        return None
    return inputs[0].document["request"].get("object")


def _diff(expected: Any, actual: Any, before: str, after: str) -> str:
    lines = difflib.unified_diff(_yaml(expected).splitlines(), _yaml(actual).splitlines(), before, after,
                                 lineterm="", n=2)
    return "\n".join(f"  {line}" for line in list(lines)[2:])


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True)


def run(loaded: Loaded, *, update: bool = False) -> Report:
    """Check every expectation of ``loaded`` (and with ``update``, work out the missing ones)."""
    started = time.perf_counter()
    report = Report(loaded.path, loaded.name, loaded=loaded)
    suite = loaded.suite
    try:
        runner = _Runner(loaded, report)
    except errors.PolicyConfigError as exc:
        at = loaded.where("policies") if suite.policies is not None else loaded.where("set")
        report.problems.append(f"{at}: the policy files cannot be loaded:\n  " + str(exc).replace("\n", "\n  "))
        return report
    base = runner.context(None)
    base_inputs = runner.inputs(base)
    selected: set[int] = set()
    for index, entry in enumerate(suite.results):
        where: tuple[str | int, ...] = ("results", index)
        usable = entry.checks() or update
        if not usable:
            runner.problem(where, "nothing to check: add verdict, policy, message, warnings, patch or "
                           "patchedResource (or run with --update)")
        unknown = [(field, key) for field, keys in (("policy", entry.policy), ("notPolicy", entry.not_policy))
                   for key in keys or () if not runner.known(key)]
        for field, key in unknown:
            runner.problem((*where, field), f"unknown policy {key!r} ({runner.suggest(key)})")
        usable = usable and not unknown
        if entry.patched_resource is not None and not loaded.resolve(entry.patched_resource).is_file() and not update:
            runner.problem((*where, "patchedResource"), f"{entry.patched_resource}: no such file")
            usable = False
        ctx = runner.context(entry)
        old = None
        if ctx.old_object is not None:
            old_where = (*where, "oldObject") if entry.old_object else ("oldObject",)
            old = runner.old_object(ctx.old_object, old_where, ctx.operation)
            usable = usable and old is not None
        matched = 0
        for position, item in enumerate(runner.inputs(ctx)):
            resource = _resource(item)
            if not _selects(entry, item, resource, loaded.path.parent):
                continue
            matched += 1
            selected.add(position)  # the same files in the same order, whatever the context
            if not usable:
                continue  # its problem is reported; the resource is not left without an expectation
            case_started = time.perf_counter()
            try:
                actual = runner.answer(item, runner.policy_set, ctx, old)
                differences = _compare(entry, actual, loaded, suite.namespace)
                missing = [p for p in entry.policy or () if not runner.fired(p, item, ctx, old, actual)]
                unwanted = [p for p in entry.not_policy or () if runner.fired(p, item, ctx, old, actual)]
            except offline.InputError as exc:
                report.problems.append(str(exc))
                continue
            case = CaseResult(index, loaded.line(*where), resource, entry, actual, differences,
                              time.perf_counter() - case_started, missing=missing, unwanted=unwanted)
            if missing or (update and (differences or not entry.checks())):
                case.fired = runner.deciding(item, ctx, old, actual)
            if missing:
                fired = ", ".join(case.fired or []) or "none"
                case.differences.append(f"policy: expected {', '.join(missing)} to fire; fired: {fired}")
            if unwanted:
                case.differences.append(f"notPolicy: expected {', '.join(unwanted)} not to fire, "
                                        f"but {'they' if len(unwanted) > 1 else 'it'} did")
            report.cases.append(case)
        if not matched:
            runner.problem(where, "selects no resource of this suite (" + ", ".join(
                f"{k}={v}" for k, v in (("kind", entry.kind), ("namespace", entry.namespace), ("name", entry.name),
                                        ("file", entry.file)) if v is not None) + ")")
    for position, item in enumerate(base_inputs):
        if position in selected:
            continue
        resource = _resource(item)
        report.unchecked.append(resource)
        if update and not report.problems:
            try:
                actual = runner.answer(item, runner.policy_set, base, None)
            except offline.InputError as exc:
                report.problems.append(str(exc))
                continue
            report.fills.append((resource, actual, runner.deciding(item, base, None, actual)))
    report.problems = list(dict.fromkeys(report.problems))  # a suite-level mistake is reported once
    report.seconds = time.perf_counter() - started
    return report


def run_path(path: Path, *, update: bool = False) -> Report:
    try:
        loaded = load(path)
    except SuiteError as exc:
        return Report(path, path.stem, problems=str(exc).splitlines())
    return run(loaded, update=update)


# --- --update ------------------------------------------------------------------------------------


def _fresh(entry: dict[str, Any], actual: Actual, fired: list[str]) -> dict[str, Any]:
    """``entry`` (a selector) with every expectation filled in from ``actual``."""
    filled = {**entry, "verdict": actual.verdict}
    if fired:
        filled["policy"] = fired
    if actual.message:
        filled["message"] = _literal(actual.message)
    if actual.warnings:
        filled["warnings"] = len(actual.warnings)
    if actual.patch:
        filled["patch"] = actual.patch
    return filled


def _refreshed(entry: dict[str, Any], case: CaseResult) -> dict[str, Any]:
    """``entry`` with the expectations that failed set to what ``case`` got; the rest as written."""
    updated, actual, failed = dict(entry), case.actual, case.failed_fields()
    if "verdict" in failed:
        updated["verdict"] = actual.verdict
    if "message" in failed:
        if actual.message:
            updated["message"] = _literal(actual.message)
        else:
            updated.pop("message")
    if "warnings" in failed:
        keep_count = isinstance(updated.get("warnings"), int) or not actual.warnings
        updated["warnings"] = len(actual.warnings) if keep_count else [_literal(w) for w in actual.warnings]
    if "patch" in failed:
        updated["patch"] = actual.patch
    if "policy" in failed:
        listed = list(case.expectation.policy or ())
        still = [p for p in listed if p not in case.missing] or case.fired or []
        if still:
            updated["policy"] = still
        else:
            updated.pop("policy")
    if "notPolicy" in failed:
        remaining = [p for p in case.expectation.not_policy or () if p not in case.unwanted]
        if remaining:
            updated["notPolicy"] = remaining
        else:
            updated.pop("notPolicy")
    return updated


def _literal(message: str) -> str:
    """A message as an expectation: a substring, unless it looks like a /regex/."""
    return f"/{re.escape(message)}/" if message.startswith("/") and message.endswith("/") else message


def _refresh(loaded: Loaded, report: Report, out: TextIO) -> str:
    """The suite's new text: failing entries refreshed, unchecked resources filled in. Patched
    resource files are rewritten here too (their diff printed)."""
    raw: list[dict[str, Any]] = list(yamlsafe.load(loaded.text).get("results") or [])
    replacements: dict[int, list[dict[str, Any]]] = {}
    by_index: dict[int, list[CaseResult]] = {}
    for case in report.cases:
        by_index.setdefault(case.index, []).append(case)
    for index, cases in by_index.items():
        fresh = not cases[0].expectation.checks()
        if all(c.passed for c in cases) and not fresh:
            continue
        for case in cases:
            relative = case.expectation.patched_resource
            if relative is not None and (not loaded.resolve(relative).is_file()
                                         or any(d.startswith("patchedResource") for d in case.differences)):
                _write(loaded.resolve(relative), _yaml(case.actual.mutated), out)
        entries = [_fresh(raw[index], c.actual, c.fired or []) if fresh else _refreshed(raw[index], c) for c in cases]
        if all(e == entries[0] for e in entries):
            replacements[index] = entries[:1]
        else:  # one entry for resources that now answer differently: one entry each
            replacements[index] = [{**_selector(c.resource, report), **{k: v for k, v in e.items()
                                    if k not in ("kind", "namespace", "name", "file")}}
                                   for c, e in zip(cases, entries, strict=True)]
    additions = [_fresh(_selector(resource, report), actual, fired) for resource, actual, fired in report.fills]
    if not replacements and not additions:
        return loaded.text
    return _splice(loaded, replacements, additions)


def _selector(resource: Resource, report: Report) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": resource.kind}
    if resource.namespace:
        entry["namespace"] = resource.namespace
    if resource.name:
        entry["name"] = resource.name
    same = [r for r in (*report.unchecked, *(c.resource for c in report.cases))
            if (r.kind, r.namespace, r.name) == (resource.kind, resource.namespace, resource.name)]
    if not resource.name or len({r.source for r in same}) > 1:
        entry["file"] = Path(os.path.relpath(resource.file, report.path.parent)).as_posix()
    return entry


class _Flow(dict[str, Any]):
    """A mapping written on one line (a patch operation)."""


class _Dumper(yaml.SafeDumper):
    """Entries as blocks; lists of plain values, and short patch operations, on one line each."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # lists indented under their key, as the suites are written


_Dumper.add_representer(_Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v.items(), flow_style=True))
_Dumper.add_representer(list, lambda d, v: d.represent_sequence(
    "tag:yaml.org,2002:seq", v, flow_style=all(not isinstance(i, (dict, list)) for i in v)))


def _dump_entries(entries: Sequence[dict[str, Any]], indent: int) -> list[str]:
    shaped = [{k: [_Flow(op) if len(orjson.dumps(op)) <= 120 else op for op in v] if k == "patch" else v
               for k, v in e.items()} for e in entries]
    text = yaml.dump(shaped, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000,
                     allow_unicode=True)
    return [" " * indent + line for line in text.splitlines()]


def _splice(loaded: Loaded, replacements: Mapping[int, list[dict[str, Any]]],
            additions: list[dict[str, Any]]) -> str:
    """The suite's text with entries of ``results`` replaced and ``additions`` appended; every
    other line is kept as written."""
    lines = loaded.text.splitlines()
    pair = next(((k, v) for k, v in reversed(loaded.node.value) if getattr(k, "value", None) == "results"), None)
    if pair is None:
        return loaded.text.rstrip("\n") + "\n" + "\n".join(["results:", *_dump_entries(additions, 2)]) + "\n"
    key, value = pair
    spans = _item_spans(lines, value)
    if spans is None:
        # Empty, in flow style, or items not written one "- key: value" block each: the section is written whole.
        raw = list(yamlsafe.load(loaded.text).get("results") or [])
        merged = [e for i, entry in enumerate(raw) for e in replacements.get(i, [entry])] + additions
        section = ["results:", *_dump_entries(merged, 2)]
        return "\n".join([*lines[: key.start_mark.line], *section, *lines[_end(lines, value):]]) + "\n"
    out = list(lines)
    if additions:
        _, last_end, column = spans[-1]
        out[last_end:last_end] = _dump_entries(additions, column)
    for index in sorted(replacements, reverse=True):
        first, end, column = spans[index]
        out[first:end] = _dump_entries(replacements[index], column)
    return "\n".join(out) + "\n"


def _item_spans(lines: list[str], value: yaml.Node) -> list[tuple[int, int, int]] | None:
    """``(first line, end line, dash column)`` of each item of a block sequence whose items are
    mappings starting on their dash's line (``- key: value`` or ``- {key: value}``); ``None`` for
    anything else."""
    if not isinstance(value, yaml.SequenceNode) or value.flow_style or not value.value:
        return None
    items = value.value
    spans = []
    for index, item in enumerate(items):
        first = item.start_mark.line
        dash = lines[first][: item.start_mark.column].rstrip()
        if not isinstance(item, yaml.MappingNode) or not dash.endswith("-") or dash[:-1].strip():
            return None
        last = index + 1 == len(items)
        end = _end(lines, item) if last else _trim(lines, first + 1, items[index + 1].start_mark.line)
        spans.append((first, end, len(dash) - 1))
    return spans


def _end(lines: list[str], node: yaml.Node) -> int:
    """The line after ``node`` ends, not counting the blank and comment lines that follow it
    (they belong to what comes next)."""
    mark = node.end_mark
    end = mark.line + (1 if mark.column > 0 else 0)
    return _trim(lines, node.start_mark.line + 1, min(end, len(lines)))


def _trim(lines: list[str], floor: int, end: int) -> int:
    while end > floor and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    return end


def _write(path: Path, text: str, out: TextIO) -> None:
    before = path.read_text(encoding="utf-8") if path.is_file() else ""
    if before == text:
        return
    out.write("\n".join(difflib.unified_diff(before.splitlines(), text.splitlines(), str(path), str(path),
                                             lineterm="")) + "\n")
    path.write_text(text, encoding="utf-8")


# --- reporting -----------------------------------------------------------------------------------


def _checked(entry: Expectation) -> str:
    """What an entry checks, from its expectations alone (so a JUnit test's name is the same on every
    run): ``denied [pod-security.privileged]``, ``allowed, patched (3 ops)``."""
    parts: list[str] = [entry.verdict] if entry.verdict else []
    if entry.patch is not None:
        parts.append(f"patched ({len(entry.patch)} op{'s' if len(entry.patch) != 1 else ''})" if entry.patch
                     else "not patched")
    if entry.patched_resource is not None:
        parts.append(f"patched as {entry.patched_resource}")
    policies = [*(entry.policy or ()), *(f"not {p}" for p in entry.not_policy or ())]
    if not parts and not policies:
        parts = [name for name, value in (("message", entry.message), ("warnings", entry.warnings))
                 if value is not None]
    text = ", ".join(parts)
    return f"{text} [{', '.join(policies)}]".lstrip() if policies else text


def _case_name(case: CaseResult) -> str:
    return f"{case.resource.label()}: {_checked(case.expectation)}"


_TEXT_LINES = 40
"""Lines of one difference shown in the text output (a patch diff can be long)."""


def text(reports: Sequence[Report], problems: Sequence[str]) -> Iterator[str]:
    for report in reports:
        for case in report.cases:
            where = f"{report.path}:{case.line}"
            if case.passed:
                yield f"PASS  {where}  {_case_name(case)}"
                continue
            yield f"FAIL  {where}  {case.resource.label()} from {case.resource.source}"
            for difference in case.differences:
                lines = difference.splitlines()
                if len(lines) > _TEXT_LINES:
                    lines = [*lines[:_TEXT_LINES], f"  ... {len(lines) - _TEXT_LINES} more line(s) (--output json "
                             "or --junit shows them all)"]
                yield from ("        " + line for line in lines)
    cases = [c for r in reports for c in r.cases]
    failed = sum(not c.passed for c in cases)
    unusable = sum(bool(r.problems) for r in reports) + len(problems)
    unchecked = sum(len(r.unchecked) for r in reports)
    summary = f"{len(cases)} checked in {len(reports)} suite(s): {len(cases) - failed} passed, {failed} failed"
    if unchecked:
        summary += f", {unchecked} resource(s) without expectations"
    if unusable:
        summary += f", {unusable} unusable suite(s)"
    yield summary


def as_json(reports: Sequence[Report], problems: Sequence[str]) -> dict[str, Any]:
    cases = [c for r in reports for c in r.cases]
    return {
        "suites": [{
            "file": str(r.path),
            "name": r.name,
            "passed": not r.problems and all(c.passed for c in r.cases),
            "problems": r.problems,
            "cases": [{
                "line": c.line,
                "result": c.index,
                "resource": c.resource.to_dict(),
                "passed": c.passed,
                "expected": c.expectation.model_dump(by_alias=True, exclude_none=True, mode="json"),
                "actual": {"verdict": c.actual.verdict, "code": c.actual.code, "message": c.actual.message,
                           "warnings": c.actual.warnings, "patch": c.actual.patch,
                           **({"policies": c.fired} if c.fired is not None else {})},
                "differences": c.differences,
                "seconds": round(c.seconds, 6),
            } for c in r.cases],
            "unchecked": [u.to_dict() for u in r.unchecked],
        } for r in reports],
        "problems": list(problems),
        "summary": {"suites": len(reports), "cases": len(cases), "passed": sum(c.passed for c in cases),
                    "failed": sum(not c.passed for c in cases),
                    "unusable": sum(bool(r.problems) for r in reports) + len(problems)},
    }


def junit(reports: Sequence[Report], problems: Sequence[str]) -> bytes:
    """JUnit XML: one ``testsuite`` per suite file, one ``testcase`` per expectation and resource;
    a suite that cannot be used is one ``error``."""
    root = ET.Element("testsuites", name="policy tests")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for report in reports:
        failures = sum(not c.passed for c in report.cases)
        errors_ = 1 if report.problems else 0
        suite = ET.SubElement(root, "testsuite", name=report.name, file=str(report.path),
                              tests=str(len(report.cases) + errors_), failures=str(failures), errors=str(errors_),
                              skipped="0", time=f"{report.seconds:.3f}")
        for case in report.cases:
            element = ET.SubElement(suite, "testcase", classname=report.name, name=_case_name(case),
                                    file=str(report.path), line=str(case.line), time=f"{case.seconds:.3f}")
            if not case.passed:
                failure = ET.SubElement(element, "failure", type="PolicyTestFailure",
                                        message=case.differences[0].splitlines()[0])
                failure.text = f"{report.path}:{case.line}: {case.resource.label()} from {case.resource.source}\n" \
                    + "\n".join(case.differences)
        if report.problems:
            element = ET.SubElement(suite, "testcase", classname=report.name, name="suite can be used",
                                    file=str(report.path))
            error = ET.SubElement(element, "error", type="SuiteError", message=report.problems[0].splitlines()[0])
            error.text = "\n".join(report.problems)
        totals["tests"] += len(report.cases) + errors_
        totals["failures"] += failures
        totals["errors"] += errors_
    if problems:
        suite = ET.SubElement(root, "testsuite", name="discovery", tests="1", failures="0", errors="1", skipped="0",
                              time="0.000")
        element = ET.SubElement(suite, "testcase", classname="discovery", name="suites found")
        error = ET.SubElement(element, "error", type="SuiteError", message=problems[0])
        error.text = "\n".join(problems)
        totals["tests"] += 1
        totals["errors"] += 1
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{sum(r.seconds for r in reports):.3f}")
    ET.indent(root)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


def main(
    paths: Sequence[str],
    *,
    output: Output = "text",
    junit_path: Path | None = None,
    update: bool = False,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the suites in ``paths`` and report; returns the exit code (0 pass, 1 fail, 2 unusable)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    files, problems = discover(paths)
    reports = [run_path(path, update=update) for path in files]
    unusable = sum(bool(r.problems) for r in reports) + len(problems)
    if update:
        changed = 0
        for report in reports:
            if report.problems or report.loaded is None:
                continue  # left alone: its problems are printed below
            new = _refresh(report.loaded, report, out)
            if new != report.loaded.text:
                _write(report.path, new, out)
                changed += 1
        out.write(f"{changed} suite file(s) updated, {len(reports) - changed - unusable + len(problems)} unchanged"
                  + (f", {unusable} unusable" if unusable else "") + "\n")
    elif output == "json":
        out.write(orjson.dumps(as_json(reports, problems), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write("\n".join(text(reports, problems)) + "\n")
    if junit_path is not None:
        junit_path.write_bytes(junit(reports, problems))
    for problem in [*problems, *(p for r in reports for p in r.problems)]:
        err.write(f"error: {problem}\n")
    if unusable:
        return 2
    return 0 if update or all(c.passed for r in reports for c in r.cases) else 1
