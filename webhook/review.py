"""The AdmissionReview envelope: parse a call, answer it.

The envelope is a pydantic model (:mod:`webhook.envelope`: precise 400 messages naming the field)
for anything not in the API server's exact shape; that shape is checked directly. The embedded ``object``
and ``oldObject`` stay plain dicts (validated only as "a JSON object or null"), because round-
tripping a Kubernetes object through a model loses unknown fields and costs time on every review.

Every answer is built by :func:`respond` from an :class:`Outcome` (or by
:func:`allowed` / :func:`denied`), which always echoes the request ``uid`` and answers in the
``apiVersion`` the API server asked in (v1 or v1beta1).
"""

from __future__ import annotations

import base64
import dataclasses
import itertools
import operator
import re
from typing import Any, NamedTuple

import orjson
import pybase64
import pydantic

from webhook import errors, patch
from webhook.envelope import AdmissionRequest, AdmissionReview
from webhook.policy import model

PatchOp = patch.Op
"""For :class:`Outcome`'s ``__init__``, whose parameter ``patch`` hides the module."""

V1 = "admission.k8s.io/v1"
V1BETA1 = "admission.k8s.io/v1beta1"

# The API server joins webhook warnings into ``Warning`` headers; past 4096 runes in total it cuts
# each warning to 256 runes and drops the rest (k8s.io/apiserver/pkg/endpoints/filters/warning.go).
# We apply the same limits ourselves so what we drop is predictable and said.
WARNINGS_TOTAL_LIMIT = 4096
WARNING_ITEM_LIMIT = 256

# Audit annotation keys become ``<webhook name>/<key>``; the API server drops keys whose result is
# not a valid qualified name, so the key must be a valid name part (63 chars, alnum at the ends).
_QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


@dataclasses.dataclass(slots=True, init=False)
class Review:
    """A parsed call: the envelope's facts, the request context for policies, the objects as dicts.

    The per-review classes here and in :mod:`webhook.policy.model` write their ``__init__`` out:
    mypyc compiles it, where the one ``dataclasses`` generates stays interpreted (0.5 us a call)."""

    api_version: str
    raw_request: dict[str, Any]
    """The ``request`` member as received (a valid :class:`AdmissionRequest`)."""
    context: model.ReviewContext
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    shape: JsonShape | None = None
    """What the body held, measured before parsing; ``None`` when parsed from a dict."""
    _request: AdmissionRequest | None = None

    def __init__(
        self,
        api_version: str,
        raw_request: dict[str, Any],
        context: model.ReviewContext,
        object: dict[str, Any] | None,  # noqa: A002 (the field's name)
        old_object: dict[str, Any] | None,
        shape: JsonShape | None = None,
        _request: AdmissionRequest | None = None,
    ) -> None:
        self.api_version = api_version
        self.raw_request = raw_request
        self.context = context
        self.object = object
        self.old_object = old_object
        self.shape = shape
        self._request = _request

    @property
    def request(self) -> AdmissionRequest:
        """The request as the pydantic model, built on first use (the recorder without the raw
        body); answering a review never needs it."""
        if self._request is None:
            self._request = AdmissionRequest.model_validate(self.raw_request)
        return self._request

    @property
    def uid(self) -> str:
        return self.context.uid


@dataclasses.dataclass(slots=True, init=False)
class Outcome:
    """What the chains decided; :func:`respond` turns it into an ``AdmissionResponse``."""

    allowed: bool = True
    message: str = ""
    code: int = 200
    reason: str = ""
    warnings: list[str] = dataclasses.field(default_factory=list)
    audit: dict[str, str] = dataclasses.field(default_factory=dict)
    patch: list[patch.Op] = dataclasses.field(default_factory=list)
    failed_policies: list[str] = dataclasses.field(default_factory=list)
    """Ids of policies that raised; counted in metrics and logged."""
    decided_by: list[str] = dataclasses.field(default_factory=list)
    """Admission policies (``policy/binding``) that denied, warned or audited; logged and counted."""

    def __init__(
        self,
        allowed: bool = True,
        message: str = "",
        code: int = 200,
        reason: str = "",
        warnings: list[str] | None = None,
        audit: dict[str, str] | None = None,
        patch: list[PatchOp] | None = None,
        failed_policies: list[str] | None = None,
        decided_by: list[str] | None = None,
    ) -> None:
        self.allowed = allowed
        self.message = message
        self.code = code
        self.reason = reason
        self.warnings = [] if warnings is None else warnings
        self.audit = {} if audit is None else audit
        self.patch = [] if patch is None else patch
        self.failed_policies = [] if failed_policies is None else failed_policies
        self.decided_by = [] if decided_by is None else decided_by


def _echo(value: Any, limit: int = 100) -> str:
    """A caller's value quoted back in an error, cut short: a 7 MB apiVersion is not a message."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _describe_errors(exc: pydantic.ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False)[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "body"
        message = error["msg"]
        if error["type"] == "literal_error" and error["loc"] == ("apiVersion",):
            message = f"must be {V1} or {V1BETA1}, got {_echo(error['input'])}"
        elif error["type"] == "literal_error" and error["loc"] == ("kind",):
            message = f"must be AdmissionReview, got {_echo(error['input'])}"
        elif error["type"] == "dict_type":
            message = "must be a JSON object"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


# --- what one review may cost ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """What one review may cost, checked before the body is parsed (:func:`measure`).

    Parsing is where a body's size multiplies: orjson makes each 2-byte ``{}`` a Python dict of 72
    bytes, so 7 MiB of ``[{},{},...]`` took 370 MB, and the engine's copy and the recorder's parse
    came on top. Measured per item once parsed: a one-key object 192 bytes, an empty one 72, an
    object member with its key 108, a one-character string 58, a float 32. With these limits one
    review's parsed form stays under about 60 MB whatever the body holds (200,000 one-key objects
    and 300,000 more members), against a few KB to a few MB for real reviews.

    The API server accepts request bodies up to 3 MiB and etcd stores objects up to 1.5 MiB by
    default, so a review carries at most 3 MiB in ``object`` plus what ``oldObject`` holds on an
    UPDATE (the 7 MiB ``--max-body-bytes`` allows both at 3 MiB). The limits let real objects of
    that size through (ConfigMaps of data or of JSON documents, custom resources of small records,
    CRD schemas); what they refuse is named in each. Nothing is counted twice: the server measures
    each body once (:func:`parse`).
    """

    max_depth: int = 100
    """Levels of nesting of the whole body; the envelope takes three (``{request: {object: {``).
    Kubernetes objects are rarely deeper than 30; the deepest real ones, CRDs whose schema embeds a
    pod template, reach about 60 (each field level is two: ``properties`` and the field name).
    The API server's decoder allows 10,000 and orjson 1,024, but Python code walking the object
    (the engine's diff, redaction) takes a frame or two per level against a recursion limit of
    1,000, and orjson writes at most 255 levels. Deeper bodies: HTTP 400."""
    max_containers: int = 200_000
    """Objects and arrays in the whole body. Real objects hold one per 25-40 bytes of JSON (a Pod
    with its managedFields: one per 28; the densest real part, managedFields' ``"f:name":{}``, one
    per 11). 200,000 is one per 16 bytes of 3 MiB, the most an object and oldObject stored in etcd
    (1.5 MiB each by default) hold together, or one per 35 bytes of a 7 MiB body. More: HTTP 413."""
    max_values: int = 500_000
    """Values of any kind in the whole body (objects, arrays, strings, numbers, booleans and
    nulls; an object member counts once). Real objects hold one per 15-30 bytes (a 3 MiB ConfigMap
    a few hundred in all). 500,000 is one per 6.3 bytes of 3 MiB: only long arrays of numbers of
    up to four digits are denser. More: HTTP 413."""

    def check(self, shape: JsonShape) -> None:
        """Raise :class:`~webhook.errors.BodyTooLarge` (counts, 413) or
        :class:`~webhook.errors.BadReview` (depth, 400) naming the limit ``shape`` exceeds."""
        if shape.containers > self.max_containers:
            raise errors.BodyTooLarge(
                f"body holds {shape.containers:,} JSON objects and arrays, over the limit of "
                f"{self.max_containers:,} per review"
            )
        if shape.values > self.max_values:
            raise errors.BodyTooLarge(
                f"body holds {shape.values:,} JSON values, over the limit of {self.max_values:,} per review"
            )
        if shape.depth is not None and shape.depth > self.max_depth:
            raise errors.BadReview(
                f"body is nested more than {self.max_depth} levels deep, over the limit per review "
                "(Kubernetes objects are rarely deeper than 30)"
            )


class JsonShape(NamedTuple):
    """What a JSON document holds: counted on the bytes (:func:`measure`) or on the parsed
    document (:func:`shape_of`). A named tuple: one is made per review."""

    containers: int
    """Objects and arrays."""
    values: int
    """Values of every kind: objects, arrays, members of objects, items of arrays. Counted on
    the bytes as commas + containers + 1, which counts an empty object or array twice."""
    depth: int | None
    """Levels of nesting. ``None``: not decided from the bytes, whose counts are within the
    limits (so parsing is safe); :func:`parse` counts it on the parsed document."""


_ONE_BRACKET = bytes.maketrans(b"[]", b"{}")
"""Counts and depth do not care whether a container is an object or an array."""
_NOT_MARKS = bytes(range(256)).translate(None, b'"\\[]{},')
_NOT_ESCAPES = bytes(range(256)).translate(None, b'"\\[]{},/bfnrtu')
"""Also keep what JSON lets follow a backslash, so each backslash stays next to what it escapes."""
_SIBLINGS = (b"}{", b'}""{', b'}""""{')
"""A container closed, then the next one opened after nothing but commas, keys and string members."""
_STEPS = bytes.maketrans(b"{}", b"\x02\x00")
_CHUNK = 64 * 1024


def measure(body: bytes, *, limits: Limits) -> JsonShape:
    """Count the containers, values and nesting of a JSON text without parsing it.

    Every step is a C loop over bytes (``translate``, ``count``, ``split``, ``replace``); nothing
    is allocated per value, unlike ``orjson.loads``. The body is cut down to its quotes,
    backslashes, brackets and commas (``marks``), then, cheapest first:

    1. Counted with those inside strings, brackets and commas give upper bounds of the containers
       and values; the containers bound the depth too. Within the limits: done (a Pod review).
    2. A sharper bound of the depth: the containers less the boundaries between siblings (``}``,
       then ``{`` after only commas and pairs of quotes, that is keys and string members), each of
       which closes a container before the deepest point or opens one after it. None of those
       quotes has a backslash before it, so none is escaped: such a pattern lies wholly inside or
       outside strings, and one inside brings its own ``{``, counted among the containers.
       Within the limit: done (a Pod with managedFields).
    3. Still undecided with few containers for the body's size (strings holding JSON, such as
       dashboards in a ConfigMap): the depth is left to :func:`parse`, which walks the parsed
       document (:func:`shape_of`, about 0.2 us a container). Parsing first is safe: the counts
       are within the limits.
    4. Otherwise exact counts, at 2-7 ns a byte: escaped backslashes and quotes dropped, so every
       quote left opens or closes a string, then what strings hold; the depth by :func:`_depth`.
    """
    marks = body.translate(_ONE_BRACKET, _NOT_MARKS)
    containers = marks.count(b"{")
    values = containers + marks.count(b",") + 1
    if containers <= limits.max_containers and values <= limits.max_values:
        if containers <= limits.max_depth:
            return JsonShape(containers, values, containers)
        siblings = marks.translate(None, b",")
        bound = containers - sum(siblings.count(pattern) for pattern in _SIBLINGS)
        if bound <= limits.max_depth:
            return JsonShape(containers, values, bound)
        if containers * _BYTES_PER_WALKED_CONTAINER < len(body):
            return JsonShape(containers, values, None)
    return _measure_exactly(body, marks, limits)


def _measure_exactly(body: bytes, marks: bytes, limits: Limits) -> JsonShape:
    """Step 4 of :func:`measure`; ``marks`` is the body cut down to quotes, backslashes, brackets
    and commas."""
    if b"\\" in marks:
        # Escaped backslashes first: JSON pairs a run of them left to right, as ``replace`` does;
        # a backslash left before a quote escapes it.
        escaped = body.translate(_ONE_BRACKET, _NOT_ESCAPES).replace(b"\\\\", b"").replace(b'\\"', b"")
        marks = escaped.translate(None, b"\\/bfnrtu")
    if marks.count(b'"') != 2 * marks.count(b'""'):
        marks = _outside_strings(marks)
    containers = marks.count(b"{")
    values = containers + marks.count(b",") + 1
    if containers <= limits.max_depth or containers > limits.max_containers or values > limits.max_values:
        return JsonShape(containers, values, containers)
    return JsonShape(containers, values, _depth(marks.translate(None, b'",'), limits.max_depth))


_BYTES_PER_WALKED_CONTAINER = 40
"""Walking a parsed container costs about as much as step 4 spends on 40 bytes of body."""


def _outside_strings(marks: bytes) -> bytes:
    """``marks`` without what its strings hold (some hold brackets or commas: a string other than
    ``""`` is left). Quotes alternate open, close: dropping ``""`` (empty strings, and the close
    and open of adjacent strings) keeps that order, then every second piece between quotes is
    outside. Split a chunk at a time: a hostile body of ``"[",`` would otherwise make a list of
    millions of pieces (125 MB for 7 MiB)."""
    marks = marks.replace(b'""', b"")
    kept: list[bytes] = []
    inside = False
    for start in range(0, len(marks), _CHUNK):
        pieces = marks[start : start + _CHUNK].split(b'"')
        kept.append(b"".join(pieces[1 if inside else 0 :: 2]))
        inside ^= len(pieces) % 2 == 0  # an odd number of quotes in the chunk
    return b"".join(kept)


def _depth(nesting: bytes, limit: int) -> int:
    """Levels of nesting of ``nesting`` (only ``{`` and ``}``), exact up to ``limit + 1``.

    First the bound of :func:`measure` (containers less sibling boundaries, here ``}{``). Then
    rounds that each remove every ``{}``, the containers whose children earlier rounds removed:
    one level a round, while that shrinks the text by a quarter or more (so at most four times its
    length in all). What is left, say long chains of nesting, has its depth counted as the highest
    running sum of +1 per ``{`` and -1 per ``}``, one step per bracket.
    """
    bound = nesting.count(b"{") - nesting.count(b"}{")
    if bound <= limit:
        return bound
    rounds = 0
    while nesting and rounds <= limit:
        inner = nesting.replace(b"{}", b"")
        if len(inner) == len(nesting):
            return rounds  # the brackets do not balance: not JSON, which orjson reports next
        rounds += 1
        if len(inner) * 4 > len(nesting) * 3:
            # Running sum s_i of 2 per ``{`` and 0 per ``}``: the depth after i+1 brackets is s_i - (i+1).
            steps = itertools.accumulate(inner.translate(_STEPS))
            return rounds + max(map(operator.sub, steps, itertools.count(1)), default=0)
        nesting = inner
    return rounds


def shape_of(document: Any, *, depth_limit: int) -> JsonShape:
    """The shape of a parsed document, walked a level at a time (no recursion, and each level's
    children gathered and filtered by C loops); the walk stops below ``depth_limit + 1`` levels,
    so a deeper document reports that depth with partial counts."""
    containers, values, depth = 0, 1, 0
    level = [document] if isinstance(document, (dict, list)) else []
    while level and depth <= depth_limit:
        depth += 1
        containers += len(level)
        children = list(itertools.chain.from_iterable([n.values() if type(n) is dict else n for n in level]))
        values += len(children)
        level = list(filter(_IS_DICT, children))
        level += filter(_IS_LIST, children)
    return JsonShape(containers, values, depth)


_IS_DICT, _IS_LIST = dict.__instancecheck__, list.__instancecheck__


def parse(body: bytes | str | dict[str, Any], *, limits: Limits = Limits()) -> Review:
    """Parse an AdmissionReview; raise :class:`~webhook.errors.BadReview` naming what is wrong.

    A body (bytes or text) is measured first (:func:`measure`) and refused past ``limits`` without
    being parsed; a depth the bytes left undecided is checked on the parsed document. A dict is
    taken as it is (the offline ``review`` command; the engine copes with any nesting)."""
    shape: JsonShape | None = None
    if isinstance(body, dict):
        data: Any = body
    else:
        raw = body.encode() if isinstance(body, str) else body
        shape = measure(raw, limits=limits)
        limits.check(shape)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            if shape.depth is None:  # orjson stops at 1,024 levels: say so with our limit
                limits.check(_measure_exactly(raw, raw.translate(_ONE_BRACKET, _NOT_MARKS), limits))
            raise errors.BadReview(f"body is not valid JSON: {exc}") from None
        if shape.depth is None:
            shape = shape_of(data, depth_limit=limits.max_depth)
            limits.check(shape)
    if not isinstance(data, dict):
        raise errors.BadReview(f"body must be a JSON object (an AdmissionReview), got {type(data).__name__}")
    if "request" not in data or data.get("request") is None:
        raise errors.BadReview("request: missing; an AdmissionReview sent to a webhook must carry a request")
    found = _direct(data, keys_checked=shape is not None)
    if found is not None:
        return Review(data["apiVersion"], data["request"], found[0], found[1], found[2], shape)
    # Not in the exact shape the API server sends: pydantic decides, names what is wrong, or
    # converts what its lax mode accepts (``"dryRun": "true"``).
    try:
        envelope = AdmissionReview.model_validate(data)
    except pydantic.ValidationError as exc:
        raise errors.BadReview(f"not a valid AdmissionReview: {_describe_errors(exc)}") from None
    req = envelope.request
    user = req.userInfo
    context = model.ReviewContext(
        operation=req.operation,
        kind=req.kind.kind,
        group=req.kind.group,
        version=req.kind.version,
        resource=req.resource.resource,
        sub_resource=req.subResource,
        namespace=req.namespace,
        name=req.name or _name_of(req.object) or _name_of(req.oldObject),
        uid=req.uid,
        username=user.username,
        user_groups=tuple(user.groups or ()),
        dry_run=bool(req.dryRun),
        old_object=req.oldObject,
    )
    review = Review(envelope.apiVersion, data["request"], context, req.object, req.oldObject, shape)
    review._request = req
    return review


_API_VERSIONS = frozenset({V1, V1BETA1})
_KIND_FIELDS = ("group", "version")


def _text(container: dict[str, Any], key: str) -> str | None:
    """``container[key]`` when absent (``""``) or a string; ``None`` when present as anything else."""
    value = container.get(key, "")
    return value if type(value) is str else None


def _direct(
    data: dict[str, Any], *, keys_checked: bool
) -> tuple[model.ReviewContext, dict[str, Any] | None, dict[str, Any] | None] | None:
    """The review's context and objects read straight from ``data`` when every envelope field has
    exactly the type the API server sends, as :class:`AdmissionReview` would accept it unchanged;
    ``None`` for anything else (pydantic then decides, names the problem, or converts).

    Pydantic costs about as much as the rest of parsing together; the API server's reviews always
    take this path, and what it accepts is what the model accepts (``tests/test_plan.py``).
    ``keys_checked``: parsed from JSON, whose object keys are strings; a dict given as it is (a
    YAML manifest) may have others, which the model refuses."""
    api_version = data.get("apiVersion")
    if data.get("kind") != "AdmissionReview" or type(api_version) is not str or api_version not in _API_VERSIONS:
        return None
    req = data["request"]
    if type(req) is not dict:
        return None
    # Each field fetched and type-tested inline: this runs for every review, and a helper call per
    # field was a third of it. An absent string field reads as "" (what the model defaults).
    get = req.get
    uid, name, namespace, sub = get("uid", ""), get("name", ""), get("namespace", ""), get("subResource", "")
    operation = get("operation")
    if (type(uid) is not str or not uid or type(name) is not str or type(namespace) is not str
            or type(sub) is not str or type(operation) is not str or operation not in model.OPERATIONS):
        return None
    kind = get("kind")
    if type(kind) is not dict:
        return None
    kind_name, group, version = kind.get("kind", ""), kind.get("group", ""), kind.get("version", "")
    if type(kind_name) is not str or not kind_name or type(group) is not str or type(version) is not str:
        return None
    requested = get("requestKind")
    if requested is not None and (
        type(requested) is not dict or not _text(requested, "kind")
        or any(_text(requested, f) is None for f in _KIND_FIELDS)
    ):
        return None
    resource = get("resource", _NO_RESOURCE)
    if (type(resource) is not dict or type(resource.get("group", "")) is not str
            or type(resource.get("version", "")) is not str or type(resource.get("resource", "")) is not str):
        return None
    user = get("userInfo", _NO_USER)
    if type(user) is not dict:
        return None
    username = user.get("username", "")
    groups = user.get("groups")
    extra = user.get("extra")
    if (type(username) is not str or type(user.get("uid", "")) is not str
            or (extra is not None and type(extra) is not dict)
            or (groups is not None and (type(groups) is not list or any(type(g) is not str for g in groups)))):
        return None
    obj, old, dry_run, options = req.get("object"), req.get("oldObject"), req.get("dryRun"), req.get("options")
    if ((obj is not None and type(obj) is not dict) or (old is not None and type(old) is not dict)
            or (dry_run is not None and type(dry_run) is not bool)
            or (options is not None and type(options) is not dict)):
        return None
    if not keys_checked and not all(
        type(key) is str for member in (obj, old, options, extra) if member is not None for key in member
    ):
        return None
    context = model.ReviewContext(
        operation=operation,  # type: ignore[arg-type]  # one of model.OPERATIONS, checked above
        kind=kind_name,
        group=group,
        version=version,
        resource=resource.get("resource", ""),
        sub_resource=sub,
        namespace=namespace,
        name=name or _name_of(obj) or _name_of(old),
        uid=uid,
        username=username,
        user_groups=tuple(groups) if groups else (),
        dry_run=bool(dry_run),
        old_object=old,
    )
    return context, obj, old


_NO_RESOURCE: dict[str, Any] = {}
_NO_USER: dict[str, Any] = {}


def _name_of(obj: dict[str, Any] | None) -> str:
    # On CREATE the request's ``name`` may be empty (generateName); the object may say more.
    meta = obj.get("metadata") if obj else None
    if isinstance(meta, dict):
        name = meta.get("name") or meta.get("generateName")
        if isinstance(name, str):
            return name
    return ""


def limit_warnings(warnings: list[str]) -> list[str]:
    """Deduplicate (keeping order) and keep within the API server's warning limits."""
    unique = list(dict.fromkeys(w for w in warnings if w))
    if sum(len(w) for w in unique) <= WARNINGS_TOTAL_LIMIT:
        return unique
    kept: list[str] = []
    total = 0
    for index, warning in enumerate(unique):
        short = warning if len(warning) <= WARNING_ITEM_LIMIT else warning[: WARNING_ITEM_LIMIT - 1] + "…"
        if total + len(short) > WARNINGS_TOTAL_LIMIT - 64:
            kept.append(f"{len(unique) - index} more warning(s) omitted (over the 4096-character limit)")
            break
        kept.append(short)
        total += len(short)
    return kept


def valid_audit_key(key: str) -> bool:
    return len(key) <= 63 and _QUALIFIED_NAME_PART.match(key) is not None


def _envelope(api_version: str, response: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "AdmissionReview", "response": response}


def allowed(
    uid: str,
    *,
    api_version: str = V1,
    warnings: list[str] | None = None,
    audit: dict[str, str] | None = None,
    ops: list[patch.Op] | None = None,
) -> dict[str, Any]:
    """An allowing answer; ``patch``/``patchType`` only when there are ops."""
    response: dict[str, Any] = {"uid": uid, "allowed": True}
    if ops:
        response["patchType"] = "JSONPatch"
        # pybase64's SIMD encoder: the stdlib's took 4 us for the typical Pod's 3.3 KB patch
        # (5% of a mutating review's instructions), this 0.3; the text is the same.
        response["patch"] = pybase64.b64encode_as_string(orjson.dumps(ops))
    _add_advice(response, warnings, audit)
    return _envelope(api_version, response)


def denied(
    uid: str,
    message: str,
    *,
    api_version: str = V1,
    code: int = 403,
    reason: str = "Forbidden",
    audit: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A denying answer; the API server shows ``message`` as
    ``admission webhook "<name>" denied the request: <message>``."""
    response: dict[str, Any] = {
        "uid": uid,
        "allowed": False,
        "status": {"status": "Failure", "code": code, "reason": reason, "message": message},
    }
    _add_advice(response, None, audit)
    return _envelope(api_version, response)


def _add_advice(response: dict[str, Any], warnings: list[str] | None, audit: dict[str, str] | None) -> None:
    if warnings:
        limited = limit_warnings(warnings)
        if limited:
            response["warnings"] = limited
    if audit:
        valid = {k: v for k, v in audit.items() if valid_audit_key(k)}
        if valid:
            response["auditAnnotations"] = valid


def respond(review: Review, outcome: Outcome) -> dict[str, Any]:
    """The answer to ``review`` for what the chains decided."""
    if not outcome.allowed:
        return denied(
            review.uid,
            outcome.message,
            api_version=review.api_version,
            code=outcome.code,
            reason=outcome.reason or "Forbidden",
            audit=outcome.audit,
        )
    return allowed(
        review.uid,
        api_version=review.api_version,
        warnings=outcome.warnings,
        audit=outcome.audit,
        ops=outcome.patch,
    )


def decode_patch(response: dict[str, Any]) -> list[patch.Op]:
    """The JSON patch in an AdmissionReview answer (``[]`` when none); for tests and the CLIs."""
    encoded = response.get("response", {}).get("patch")
    return orjson.loads(base64.b64decode(encoded)) if encoded else []
