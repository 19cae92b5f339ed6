"""The AdmissionReview envelope: parse a call, answer it.

The envelope is a pydantic model (precise 400 messages naming the field); the embedded ``object``
and ``oldObject`` stay plain dicts (validated only as "a JSON object or null"), because round-
tripping a Kubernetes object through a model loses unknown fields and costs time on every review.

Every answer is built by :func:`respond` from an :class:`Outcome` (or by
:func:`allowed` / :func:`denied`), which always echoes the request ``uid`` and answers in the
``apiVersion`` the API server asked in (v1 or v1beta1).
"""

from __future__ import annotations

import base64
import dataclasses
import re
from typing import Any, Literal

import orjson
import pydantic

from webhook import errors, patch
from webhook.policy import model

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


class _Envelope(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)


class GroupVersionKind(_Envelope):
    group: str = ""
    version: str = ""
    kind: str = pydantic.Field(min_length=1)


class GroupVersionResource(_Envelope):
    group: str = ""
    version: str = ""
    resource: str = ""


class UserInfo(_Envelope):
    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] | None = None
    # ``extra`` may carry credentials-adjacent data; it is never logged.
    extra: dict[str, Any] | None = None


class AdmissionRequest(_Envelope):
    uid: str = pydantic.Field(min_length=1)
    kind: GroupVersionKind
    resource: GroupVersionResource = GroupVersionResource()
    subResource: str = ""
    requestKind: GroupVersionKind | None = None
    name: str = ""
    namespace: str = ""
    operation: model.Operation
    userInfo: UserInfo = UserInfo()
    object: dict[str, Any] | None = None
    oldObject: dict[str, Any] | None = None
    dryRun: bool | None = None
    options: dict[str, Any] | None = None


class AdmissionReview(_Envelope):
    apiVersion: Literal["admission.k8s.io/v1", "admission.k8s.io/v1beta1"]
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


@dataclasses.dataclass(slots=True)
class Review:
    """A parsed call: the envelope's facts, the request context for policies, the objects as dicts."""

    api_version: str
    request: AdmissionRequest
    context: model.ReviewContext
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None

    @property
    def uid(self) -> str:
        return self.request.uid


@dataclasses.dataclass(slots=True)
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


def parse(body: bytes | str | dict[str, Any]) -> Review:
    """Parse an AdmissionReview; raise :class:`~webhook.errors.BadReview` naming what is wrong."""
    if isinstance(body, dict):
        data: Any = body
    else:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise errors.BadReview(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise errors.BadReview(f"body must be a JSON object (an AdmissionReview), got {type(data).__name__}")
    if "request" not in data or data.get("request") is None:
        raise errors.BadReview("request: missing; an AdmissionReview sent to a webhook must carry a request")
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
    return Review(envelope.apiVersion, req, context, req.object, req.oldObject)


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
        response["patch"] = base64.b64encode(orjson.dumps(ops)).decode("ascii")
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
