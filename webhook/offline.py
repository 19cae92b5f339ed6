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

from webhook import apiserver_prep, engine, errors, recording, review, shapes
from webhook.emulator import attributes, jsonpatch
from webhook.policy import model, workloads

Only = Literal["mutate", "validate"]
Output = Literal["text", "json", "manifests"]


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
    kubernetes_version: int = apiserver_prep.DEFAULT_VERSION
    """Minor version (1.N) of the API server whose defaulting and field resets a manifest gets
    before the chains see it (:mod:`webhook.apiserver_prep`)."""
    as_written: bool = False
    """Take a manifest as written, without that preparation: an expected result (a test suite's
    ``patchedResource``) is compared with what the chains produced, not sent to an API server."""


@dataclasses.dataclass(frozen=True, slots=True)
class Origin:
    """Where an input was written, for machine-readable output."""

    file: str
    document: int | None = None
    """1-based index of the YAML document, when the file holds several."""
    item: int | None = None
    """0-based index in a ``kind: List``."""

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "document": self.document, "item": self.item}


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
    origin: Origin | None = None


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
    pods_denied: str | None = None
    """For a workload: the denial a Pod created from its (mutated) pod template would get, which
    the workload's own answer only warns about (Pod Security admission enforces on Pods)."""

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


def _reviewable(path: Path) -> bool:
    """A visible file whose extension is .json, .yaml or .yml, in any case (``POD.YAML`` too)."""
    return path.is_file() and path.suffix.lower() in SUFFIXES and not path.name.startswith(".")


def _files(paths: Sequence[str], *, recursive: bool = False) -> Iterator[tuple[str, str | None, str | None]]:
    """``(name, text, problem)`` for each file named (a directory: its visible JSON/YAML files,
    and with ``recursive`` those of its visible subdirectories too, in name order)."""
    for given in paths:
        if given == "-":
            yield "<stdin>", sys.stdin.read(), None
            continue
        path = Path(given)
        if path.is_dir():
            candidates = path.rglob("*") if recursive else path.iterdir()
            found = sorted(p for p in candidates if _reviewable(p)
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
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
    if name.lower().endswith(".json"):
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


def read(
    paths: Sequence[str], *, shape: Shape = Shape(), recursive: bool = False
) -> tuple[list[Input], list[str]]:
    """The inputs in ``paths`` and the problems found (one line each, naming the file)."""
    inputs: list[Input] = []
    problems: list[str] = []
    for name, text, problem in _files(paths, recursive=recursive):
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
            origin = Origin(name, None if len(documents) == 1 else index + 1)
            try:
                inputs.extend(classify(document, source=source, shape=shape, origin=origin))
            except errors.WebhookError as exc:
                problems.append(str(exc))
    return inputs, problems


def classify(document: Any, *, source: str, shape: Shape = Shape(), origin: Origin | None = None) -> list[Input]:
    """The inputs one document stands for (a List stands for its items)."""
    origin = origin or Origin(source)
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
                      path if isinstance(path, str) else None, origin)]
    if kind == "AdmissionReview":
        if document.get("request") is None and isinstance(document.get("response"), dict):
            raise InputError(f"{source}: an AdmissionReview response, not a request: nothing to review")
        return [Input(source, document, origin=origin)]
    if api_version is None and "operation" in document and (kind is None or isinstance(kind, dict)):
        # A bare AdmissionRequest, as kwctl and several test corpora store them.
        return [Input(source, {"apiVersion": review.V1, "kind": "AdmissionReview", "request": document},
                      origin=origin)]
    if isinstance(kind, str) and kind.endswith("List") and isinstance(document.get("items"), list):
        found: list[Input] = []
        for index, item in enumerate(document["items"]):
            found.extend(classify(item, source=f"{source} items[{index}]", shape=shape,
                                  origin=dataclasses.replace(origin, item=index)))
        return found
    shapes.check(document, source=source)
    # The API server defaults the object and resets disabled fields before admission; a recorded
    # AdmissionReview (above) already went through that, a plain manifest has not.
    prepared = document if shape.as_written else apiserver_prep.prepare(
        document, source=source, operation=shape.operation, kubernetes_version=shape.kubernetes_version)
    return [Input(source, wrap(prepared, source=source, shape=shape), origin=origin)]


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
    old_object: dict[str, Any] | None = None,
    namespace_object: dict[str, Any] | None = None,
) -> Result:
    """Review one input; raises :class:`InputError` when it is not a usable AdmissionReview.

    ``old_object`` replaces the request's oldObject (``review --old-object`` for UPDATE/DELETE of
    a manifest; a recorded AdmissionReview keeps its own)."""
    document = item.document
    if old_object is not None and item.recorded is None:
        request = dict(document.get("request") or {})
        if request.get("operation") in ("UPDATE", "DELETE"):
            request["oldObject"] = old_object
            document = {**document, "request": request}
    try:
        parsed = review.parse(document)
    except errors.BadReview as exc:
        raise InputError(f"{item.source}: {exc}") from None
    ctx = parsed.context
    if namespace_labels is not None:
        ctx.namespace_labels = namespace_labels
    if namespace_object is not None:
        ctx.namespace_object = namespace_object
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
        lines.append(f"  policies: {', '.join(outcome.decided_by)} (admission policy/binding)")
    if result.pods_denied is not None:
        lines.append(f"  pods:     Pods created from it will be denied: {result.pods_denied}")
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


def _explanation(result: Result, policy_set: engine.PolicySet, only: Only | None) -> list[str]:
    from webhook import explain

    ctx = result.review.context
    lines = []
    chains: list[tuple[model.Chain, Any]] = []
    if only != "validate" and result.mutating_ran:
        chains.append(("mutating", result.submitted))
    if only != "mutate" and result.denied_by != "mutating":
        chains.append(("validating", result.mutated if result.mutated is not None else result.submitted))
    for chain, obj in chains:
        lines.append(f"  explain ({chain} chain):")
        lines.extend(explain.render(explain.explain(policy_set, obj, ctx, chain=chain)))
    return lines


def pods_denied(
    result: Result, policy_set: engine.PolicySet, *, shape: Shape, labels: dict[str, str] | None,
    namespace_object: dict[str, Any] | None,
) -> str | None:
    """The denial a Pod made from an allowed workload's pod template would get, by both chains, as
    the controller's CREATE of that Pod would be reviewed; ``None`` when it would be admitted (or
    the object is not a workload)."""
    ctx = result.review.context
    obj = result.mutated if result.mutated is not None else result.submitted
    if ctx.kind == "Pod" or ctx.kind not in workloads.POD_KINDS or not isinstance(obj, dict):
        return None
    target = workloads.pod_target(obj, ctx.kind)
    if target is None:
        return None
    metadata = dict(target.metadata or {})
    metadata.setdefault("name", f"{ctx.name or 'pod'}-x")
    if ctx.namespace:
        metadata["namespace"] = ctx.namespace
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": target.spec}
    request = wrap(pod, source=f"{result.source} pod template", shape=dataclasses.replace(shape, operation="CREATE"))
    item = Input(f"{result.source} pod template", request)
    made = evaluate(item, policy_set, namespace_labels=labels, namespace_object=namespace_object)
    return None if made.allowed else made.outcome.message


def _request_namespace(item: Input) -> str:
    request = item.document.get("request")
    namespace = request.get("namespace") if isinstance(request, dict) else None
    return namespace if isinstance(namespace, str) else ""


def _namespaces(inputs: Sequence[Input]) -> dict[str, dict[str, Any]]:
    """Namespace manifests among the inputs, by name: a review of the objects in such a namespace
    sees its labels (scopes, namespaceSelectors) and, for CEL, ``namespaceObject``, as in a cluster
    where the namespace exists (``--namespace-label`` given on the command line wins)."""
    found: dict[str, dict[str, Any]] = {}
    for item in inputs:
        request = item.document.get("request")
        obj = request.get("object") if isinstance(request, dict) else None
        if isinstance(obj, dict) and obj.get("kind") == "Namespace" and obj.get("apiVersion") == "v1":
            metadata = obj.get("metadata")
            name = metadata.get("name") if isinstance(metadata, dict) else None
            if isinstance(name, str) and name:
                found[name] = obj
    return found


def _labels_of(obj: dict[str, Any]) -> dict[str, str]:
    metadata = obj.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def replay_changes(result: Result, recorded: dict[str, Any] | None) -> list[str]:
    """How the new answer to a recording differs from the recorded one (empty: the same).

    Compared as a reviewer would: verdict, status code, reason and message, warnings, audit
    annotations and the patch (decoded)."""
    if recorded is None:
        return []
    was = recorded.get("response") if isinstance(recorded.get("response"), dict) else {}
    now = result.answer.get("response", {})
    changes = []
    for label, get in (
        ("verdict", lambda r: "allowed" if r.get("allowed") else "denied"),
        ("status", lambda r: {k: v for k, v in (r.get("status") or {}).items() if k in ("code", "reason", "message")}
         if not r.get("allowed") else None),
        ("warnings", lambda r: r.get("warnings") or []),
        ("audit", lambda r: r.get("auditAnnotations") or {}),
        ("patch", lambda r: review.decode_patch({"response": r}) if r.get("patch") else []),
    ):
        before, after = get(was), get(now)
        if before != after:
            changes.append(f"{label}: recorded {_short_json(before)}, now {_short_json(after)}")
    return changes


def _short_json(value: Any, limit: int = 300) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"


class _Output:
    """Writes to a stream that may close under us (``review ... | head``): once the reader is gone,
    the rest is dropped quietly and the run still ends with the exit code of its verdicts."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed = False

    def write(self, text: str) -> None:
        if self.closed:
            return
        try:
            self.stream.write(text)
        except BrokenPipeError:
            self.closed = True


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """What ``review`` prints and which findings fail the run."""

    only: Only | None = None
    output: Output = "text"
    summary: bool = False
    """Text output: one verdict line per review and the totals, nothing else."""
    fail_on_warnings: bool = False
    fail_on_change: bool = False
    recursive: bool = False
    old_object: dict[str, Any] | None = None
    """``--old-object``: the object as stored, for UPDATE and DELETE reviews of manifests."""
    explain: bool = False
    """Text output: for every policy, whether it ran and why not (:mod:`webhook.explain`)."""
    color: bool = False
    """Colour the verdicts (``--color``; on a terminal by default, never with ``NO_COLOR``)."""


def _entry(result: Result, item: Input, changes: list[str] | None) -> dict[str, Any]:
    ctx = result.review.context
    return {
        "source": (item.origin or Origin(item.source)).to_dict(),
        "kind": ctx.kind,
        "namespace": ctx.namespace,
        "name": ctx.name,
        "operation": ctx.operation,
        "verdict": "allowed" if result.allowed else "denied",
        "warnings": len(result.answer["response"].get("warnings", [])),
        "changed": None if changes is None else bool(changes),
        "changes": changes or [],
        "podsDenied": result.pods_denied,
        "answer": result.answer,
    }


_GREEN, _RED, _YELLOW, _RESET = "\033[32m", "\033[31m", "\033[33m", "\033[0m"


def _colored(text: str, result: Result, color: bool) -> str:
    if not color:
        return text
    tone = _RED if not result.allowed else _YELLOW if result.answer["response"].get("warnings") else _GREEN
    return f"{tone}{text}{_RESET}"


def _verdict_line(result: Result, changes: list[str] | None) -> str:
    ctx = result.review.context
    who = f"{ctx.namespace}/{ctx.name}" if ctx.namespace else ctx.name or "(no name)"
    verdict = "allowed" if result.allowed else f"denied ({result.outcome.code})"
    warnings = len(result.answer["response"].get("warnings", []))
    extra = (f", {warnings} warning(s)" if warnings else "") + (", CHANGED" if changes else "")
    return f"{result.source}: {ctx.operation} {ctx.kind} {who}: {verdict}{extra}"


def run(
    paths: Sequence[str],
    *,
    policy_set: engine.PolicySet,
    shape: Shape = Shape(),
    only: Only | None = None,
    output: Output = "text",
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    options: Options | None = None,
) -> int:
    """Review every input in ``paths`` and print the results; returns the exit code: 2 when an
    input was unusable, else 1 when any review was denied (or, as asked, carried warnings or
    differs from its recording), else 0.

    A recording is replayed on the endpoint that answered it (``/validate/rbac`` runs that group
    alone), and its new answer is compared with the recorded one."""
    options = options or Options(only=only, output=output)
    out, err = _Output(stdout or sys.stdout), _Output(stderr or sys.stderr)
    inputs, problems = read(paths, shape=shape, recursive=options.recursive)
    namespaces = _namespaces(inputs)
    results: list[tuple[Result, Input, list[str] | None]] = []
    for item in inputs:
        chain, group = options.only, None
        if item.path is not None and options.only is None:
            chain, group = endpoint(item.path)
        namespace = _request_namespace(item)
        known = namespaces.get(namespace) if shape.namespace_labels is None else None
        labels = shape.namespace_labels if known is None else _labels_of(known)
        try:
            result = evaluate(item, policy_set, only=chain, group=group, namespace_labels=labels,
                              old_object=options.old_object, namespace_object=known)
        except InputError as exc:
            problems.append(str(exc))
            continue
        if result.allowed and result.review.context.operation in ("CREATE", "UPDATE") and options.only != "mutate":
            result.pods_denied = pods_denied(result, policy_set, shape=shape, labels=labels, namespace_object=known)
        changes = replay_changes(result, item.recorded) if item.recorded is not None else None
        results.append((result, item, changes))
    denied = sum(not r.allowed for r, _, _ in results)
    warned = sum(bool(r.answer["response"].get("warnings")) for r, _, _ in results)
    changed = sum(bool(c) for _, _, c in results)
    if options.output == "json":
        out.write(orjson.dumps([_entry(r, i, c) for r, i, c in results], option=orjson.OPT_INDENT_2).decode() + "\n")
    elif options.output == "manifests":
        # As `istioctl kube-inject` does: the objects as the API server would store them, ready
        # for `kubectl apply -f -`; a denied object is not printed (its denial goes to stderr).
        for result, _, _ in results:
            if not result.allowed:
                err.write(f"denied: {result.source}: {result.outcome.message}\n")
                continue
            obj = result.mutated if result.mutated is not None else result.submitted
            if obj is not None:
                out.write("---\n" + yaml.safe_dump(obj, sort_keys=False, default_flow_style=False, width=1000))
    else:
        for result, _, changes in results:
            if options.summary:
                out.write(_colored(_verdict_line(result, changes), result, options.color) + "\n")
                continue
            text = describe(result)
            if options.color:
                first, _, rest = text.partition("\n  verdict:  ")
                verdict, _, after = rest.partition("\n")
                text = f"{first}\n  verdict:  {_colored(verdict, result, True)}" + (f"\n{after}" if after else "")
            if options.explain:
                text += "\n" + "\n".join(_explanation(result, policy_set, options.only))
            if changes:
                text += "\n  replay:   CHANGED from the recorded answer\n" + "\n".join(f"    - {c}" for c in changes)
            elif changes is not None:
                text += "\n  replay:   same as the recorded answer"
            out.write(text + "\n\n")
        summary = (f"{len(results)} reviewed: {len(results) - denied} allowed, {denied} denied, "
                   f"{warned} with warnings")
        if any(c is not None for _, _, c in results):
            summary += f", {changed} changed from their recording"
        out.write(summary + (f", {len(problems)} unusable input(s)" if problems else "") + "\n")
    for problem in problems:
        err.write(f"error: {problem}\n")
    if problems:
        return 2
    failed = denied or (options.fail_on_warnings and warned) or (options.fail_on_change and changed)
    return 1 if failed else 0
