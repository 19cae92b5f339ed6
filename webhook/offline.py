"""Offline review: run the server's chains over files, as ``kyverno apply`` or ``gator test`` do.

Inputs, one or many per file (JSON, or YAML with several ``---`` documents):

* an ``AdmissionReview`` with a ``request`` (v1 or v1beta1), as the API server sends it;
* a recording written by ``serve --record`` (``kind: RecordedReview``): its request is replayed;
* a bare ``AdmissionRequest`` (what ``kwctl --request-path`` takes): wrapped into a v1 review;
* a plain manifest, or a ``kind: List`` (``kubectl get -o yaml``) of them: each is wrapped into the
  request the API server would send for ``kubectl create`` (``Shape``: operation, namespace, user).

Each input goes through the chains as the API server calls webhooks: the mutating chain first, its
patch applied as the API server applies it (:mod:`webhook.emulator.jsonpatch`), then the validating
chain on the *mutated* object; a denial stops there. ``only`` runs one chain on the object as given.
The answer is built by :func:`webhook.review.respond`, the constructor the server uses, so a
replayed recording gives back the response the server gave (for the endpoint that answered it).

Exit codes of :func:`run`: 0 all allowed, 1 any denied, 2 any input unusable (its problem is
printed with the file name; the other inputs are still reviewed).
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TextIO

import orjson
import yaml

from webhook import engine, errors, recording, review
from webhook.emulator import attributes, jsonpatch
from webhook.policy import model

Only = Literal["mutate", "validate"]
Output = Literal["text", "json"]


SUFFIXES = (".json", ".yaml", ".yml")


class InputError(errors.WebhookError):
    """An input file cannot be reviewed; the message names the file (and document) and the problem."""


@dataclasses.dataclass(frozen=True, slots=True)
class Shape:
    """How a plain manifest becomes a request (``--operation``, ``--namespace``, ``--user``, ...)."""

    operation: model.Operation = "CREATE"
    namespace: str = "default"
    """For namespaced manifests that name none (as ``kubectl create -n``); a manifest's own wins."""
    username: str = "developer"
    groups: tuple[str, ...] = ("system:authenticated",)
    """An ordinary user by default: policies exempt ``system:masters``, so an admin would see no
    denial and learn nothing about the policy being tried."""
    dry_run: bool = False
    namespace_labels: dict[str, str] | None = None
    """Labels of the request's namespace (sidecar opt-in by namespace); ``None``: unknown, as for a
    server without a cluster connection."""


@dataclasses.dataclass(frozen=True, slots=True)
class Input:
    source: str
    """``file``, ``file (document 2)`` or ``file (document 1) items[3]``."""
    document: dict[str, Any]
    """The AdmissionReview to evaluate."""
    recorded: dict[str, Any] | None = None
    """The AdmissionReview the server answered, when the input is a recording."""
    path: str | None = None
    """The endpoint that answered a recording (``/validate/pod-security``)."""


Outcome = review.Outcome  # the field named ``review`` below hides the module in the class body


@dataclasses.dataclass(slots=True)
class Result:
    source: str
    review: review.Review
    outcome: Outcome
    answer: dict[str, Any]
    """The AdmissionReview response, as the server would send it."""
    submitted: dict[str, Any] | None
    mutated: dict[str, Any] | None
    """The object after the mutating chain's patch (``None`` when that chain did not run)."""
    denied_by: model.Chain | None = None
    mutating_ran: bool = True

    @property
    def allowed(self) -> bool:
        return self.outcome.allowed


# --- reading -------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """SafeLoader without the timestamp type: ``creationTimestamp: 2024-01-01T00:00:00Z`` stays the
    string the API server would send, not a ``datetime`` that JSON cannot hold."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _files(paths: Sequence[str]) -> Iterator[tuple[str, str | None, str | None]]:
    """``(name, text, problem)`` for each file named (a directory: its visible JSON/YAML files)."""
    for given in paths:
        if given == "-":
            yield "<stdin>", sys.stdin.read(), None
            continue
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES
                           and not p.name.startswith("."))
            if not found:
                yield given, None, "directory holds no .json, .yaml or .yml file"
            targets = found
        else:
            targets = [path]
        for file in targets:
            try:
                yield str(file), file.read_text(encoding="utf-8"), None
            except FileNotFoundError:
                yield str(file), None, "no such file or directory"
            except (OSError, UnicodeDecodeError) as exc:
                yield str(file), None, f"cannot read: {getattr(exc, 'strerror', None) or exc}"


def _documents(name: str, text: str) -> list[Any]:
    if name.endswith(".json"):
        try:
            return [orjson.loads(text)]
        except orjson.JSONDecodeError as exc:
            raise InputError(f"{name}: invalid JSON: {exc}") from None
    try:
        documents = [d for d in yaml.load_all(text, Loader=_Loader) if d is not None]  # noqa: S506 - safe subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise InputError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    try:
        # Integer keys and the like become strings, as they would in JSON; sets and binary fail.
        return [orjson.loads(orjson.dumps(d, option=orjson.OPT_NON_STR_KEYS)) for d in documents]
    except TypeError as exc:
        raise InputError(f"{name}: holds a value JSON cannot represent: {exc}") from None


def read(paths: Sequence[str], *, shape: Shape = Shape()) -> tuple[list[Input], list[str]]:
    """The inputs in ``paths`` and the problems found (one line each, naming the file)."""
    inputs: list[Input] = []
    problems: list[str] = []
    for name, text, problem in _files(paths):
        if problem is not None or text is None:
            problems.append(f"{name}: {problem}")
            continue
        try:
            documents = _documents(name, text)
        except InputError as exc:
            problems.append(str(exc))
            continue
        if not documents:
            problems.append(f"{name}: no documents (the file is empty)")
        for index, document in enumerate(documents):
            source = name if len(documents) == 1 else f"{name} (document {index + 1})"
            try:
                inputs.extend(classify(document, source=source, shape=shape))
            except errors.WebhookError as exc:
                problems.append(str(exc))
    return inputs, problems


def classify(document: Any, *, source: str, shape: Shape = Shape()) -> list[Input]:
    """The inputs one document stands for (a List stands for its items)."""
    if not isinstance(document, dict):
        raise InputError(f"{source}: expected a mapping (an AdmissionReview, a recording or a manifest), "
                         f"got {type(document).__name__}")
    kind, api_version = document.get("kind"), document.get("apiVersion")
    if kind == recording.KIND and api_version == recording.API_VERSION:
        request = document.get("request")
        if not isinstance(request, dict):
            raise InputError(f"{source}: request: missing; a recording holds the AdmissionReview received")
        response = document.get("response")
        path = document.get("path")
        return [Input(source, request, response if isinstance(response, dict) else None,
                      path if isinstance(path, str) else None)]
    if kind == "AdmissionReview":
        if document.get("request") is None and isinstance(document.get("response"), dict):
            raise InputError(f"{source}: an AdmissionReview response, not a request: nothing to review")
        return [Input(source, document)]
    if api_version is None and "operation" in document and (kind is None or isinstance(kind, dict)):
        # A bare AdmissionRequest, as kwctl and several test corpora store them.
        return [Input(source, {"apiVersion": review.V1, "kind": "AdmissionReview", "request": document})]
    if isinstance(kind, str) and kind.endswith("List") and isinstance(document.get("items"), list):
        found: list[Input] = []
        for index, item in enumerate(document["items"]):
            found.extend(classify(item, source=f"{source} items[{index}]", shape=shape))
        return found
    return [Input(source, wrap(document, source=source, shape=shape))]


def wrap(manifest: dict[str, Any], *, source: str, shape: Shape = Shape()) -> dict[str, Any]:
    """The v1 AdmissionReview the API server sends for ``shape.operation`` on ``manifest``.

    The uid is derived from ``source`` so output is the same on every run. For a namespaced object
    without ``metadata.namespace`` the namespace is filled in, as the API server does before calling
    admission (``rest.EnsureObjectNamespaceMatchesRequestNamespace`` in the create handler).
    """
    obj: dict[str, Any] = orjson.loads(orjson.dumps(manifest))
    user = attributes.UserInfo(username=shape.username, groups=shape.groups)
    attrs = attributes.from_object(obj, source=source, operation=shape.operation, namespace=shape.namespace,
                                   user=user, dry_run=shape.dry_run)
    metadata = obj.get("metadata")
    if attrs.namespace and attrs.kind != "Namespace":
        if metadata is None:
            metadata = obj["metadata"] = {}
        if isinstance(metadata, dict) and not metadata.get("namespace"):
            metadata["namespace"] = attrs.namespace
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"admission-webhook-review:{source}"))
    return {"apiVersion": review.V1, "kind": "AdmissionReview", "request": attrs.request(uid)}


# --- evaluating ----------------------------------------------------------------------------------


def endpoint(path: str | None) -> tuple[Only | None, str | None]:
    """``/validate/pod-security`` -> ``("validate", "pod-security")``; unknown paths: both chains."""
    parts = [p for p in (path or "").split("/") if p]
    if not parts or parts[0] not in ("mutate", "validate"):
        return None, None
    only: Only = "mutate" if parts[0] == "mutate" else "validate"
    return only, (parts[1] if len(parts) > 1 else None)


def evaluate(
    item: Input,
    policy_set: engine.PolicySet,
    *,
    only: Only | None = None,
    group: str | None = None,
    namespace_labels: dict[str, str] | None = None,
) -> Result:
    """Review one input; raises :class:`InputError` when it is not a usable AdmissionReview."""
    try:
        parsed = review.parse(item.document)
    except errors.BadReview as exc:
        raise InputError(f"{item.source}: {exc}") from None
    ctx = parsed.context
    if namespace_labels is not None:
        ctx.namespace_labels = namespace_labels
    submitted = parsed.object
    if only == "validate":
        outcome = engine.evaluate(policy_set, submitted, ctx, chain="validating", group=group)
        result = _result(item, parsed, outcome, submitted, None, None if outcome.allowed else "validating")
        result.mutating_ran = False
        return result

    mutating = engine.evaluate(policy_set, submitted, ctx, chain="mutating", group=group)
    mutated = submitted
    if mutating.allowed and mutating.patch and isinstance(submitted, dict):
        try:
            ops: list[dict[str, Any] | None] = list(mutating.patch)
            mutated = jsonpatch.apply(ops, submitted)
        except jsonpatch.PatchError as exc:
            # The API server fails the request when a webhook's patch does not apply.
            failed = review.Outcome(allowed=False, code=500, reason="InternalError",
                                    message=f"the mutating chain's patch does not apply: {exc}")
            return _result(item, parsed, failed, submitted, None, "mutating")
    if only == "mutate" or not mutating.allowed:
        return _result(item, parsed, mutating, submitted, mutated, None if mutating.allowed else "mutating")

    validating = engine.evaluate(policy_set, mutated, ctx, chain="validating", group=group)
    combined = review.Outcome(
        allowed=validating.allowed,
        message=validating.message,
        code=validating.code,
        reason=validating.reason,
        warnings=mutating.warnings + validating.warnings if validating.allowed else [],
        audit={**mutating.audit, **validating.audit},
        patch=mutating.patch,
        failed_policies=mutating.failed_policies + validating.failed_policies,
        decided_by=mutating.decided_by + validating.decided_by,
    )
    return _result(item, parsed, combined, submitted, mutated, None if validating.allowed else "validating")


def _result(
    item: Input,
    parsed: review.Review,
    outcome: review.Outcome,
    submitted: dict[str, Any] | None,
    mutated: dict[str, Any] | None,
    denied_by: model.Chain | None,
) -> Result:
    answer = review.respond(parsed, outcome)
    return Result(item.source, parsed, outcome, answer, submitted, mutated, denied_by)


# --- output --------------------------------------------------------------------------------------


def _yaml_lines(obj: Any) -> list[str]:
    text = yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True)
    return text.splitlines()


def object_diff(before: Any, after: Any) -> list[str]:
    """A unified diff of two objects rendered as YAML (what ``kubectl diff`` users read)."""
    return list(difflib.unified_diff(_yaml_lines(before), _yaml_lines(after), "submitted", "mutated",
                                     lineterm=""))


def describe(result: Result) -> str:
    """The text report of one review (the layout documented in docs/recorded-reviews.md)."""
    ctx = result.review.context
    who = ctx.name or "(no name)"
    if ctx.namespace:
        who = f"{ctx.namespace}/{who}"
    sub = f"/{ctx.sub_resource}" if ctx.sub_resource else ""
    lines = [f"{result.source}: {ctx.operation} {ctx.kind}{sub} {who} by {ctx.username or '(no user)'}"]
    outcome = result.outcome
    if outcome.allowed:
        lines.append("  verdict:  allowed")
    else:
        lines.append(f"  verdict:  denied ({outcome.code} {outcome.reason}, {result.denied_by} chain)")
        lines.append(f"  message:  {outcome.message}")
    if outcome.decided_by:
        lines.append(f"  policies: {', '.join(outcome.decided_by)} (ValidatingAdmissionPolicy/binding)")
    warnings = result.answer["response"].get("warnings", [])
    lines.append(f"  warnings: {len(warnings) or 'none'}")
    lines.extend(f"    - {w}" for w in warnings)
    for key, value in sorted(result.answer["response"].get("auditAnnotations", {}).items()):
        lines.append(f"  audit:    {key}: {value}")
    if result.mutating_ran:
        # Shown on a validating denial too: that chain judged the mutated object.
        ops = outcome.patch if result.denied_by != "mutating" else []
        if not ops:
            lines.append("  mutation: none")
        else:
            note = " (not applied: the request is denied)" if result.denied_by else ""
            lines.append(f"  mutation: {len(ops)} patch operation(s){note}")
            lines.extend(f"    {line}" for line in object_diff(result.submitted, result.mutated))
    return "\n".join(lines)


def run(
    paths: Sequence[str],
    *,
    policy_set: engine.PolicySet,
    shape: Shape = Shape(),
    only: Only | None = None,
    output: Output = "text",
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Review every input in ``paths`` and print the results; returns the exit code (0, 1 or 2)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    inputs, problems = read(paths, shape=shape)
    results: list[Result] = []
    for item in inputs:
        try:
            results.append(evaluate(item, policy_set, only=only, namespace_labels=shape.namespace_labels))
        except InputError as exc:
            problems.append(str(exc))
    denied = sum(not r.allowed for r in results)
    if output == "json":
        out.write(orjson.dumps([r.answer for r in results], option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for result in results:
            out.write(describe(result) + "\n\n")
        summary = f"{len(results)} reviewed: {len(results) - denied} allowed, {denied} denied"
        out.write(summary + (f", {len(problems)} unusable input(s)" if problems else "") + "\n")
    for problem in problems:
        err.write(f"error: {problem}\n")
    return 2 if problems else 1 if denied else 0
