"""The API server's wording: the exact error texts a client sees, and the Go formatting they use.

Clients match on these strings (and people search for them), so they are reproduced character for
character from the sources cited on each function: ``%q`` quoting, Go durations, group/version
strings, ``encoding/json`` error messages, and the ``StatusError`` messages of
``k8s.io/apimachinery/pkg/api/errors``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from webhook.gotext import quote as go_quote


@dataclasses.dataclass(frozen=True, slots=True)
class Status:
    """What the API server answers a client with when admission fails (a ``metav1.Status``)."""

    message: str
    code: int
    reason: str


def go_duration(seconds: int) -> str:
    """``time.Duration.String()`` for whole seconds: ``10s``, ``1m0s``, ``1h0m0s``.

    The API server sends ``?timeout=`` as the remaining deadline rounded up to a whole second,
    formatted this way (mutating/dispatcher.go: ``r.Timeout(timeout)``).
    """
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def gvk_string(api_version: str, kind: str) -> str:
    """``schema.GroupVersionKind.String()`` for an ``apiVersion``: ``admission.k8s.io/v1, Kind=X``;
    ``/, Kind=`` when both are empty (the text people see when a webhook omits them)."""
    group, _, version = api_version.rpartition("/")
    return f"{group}/{version}, Kind={kind}"


def group_resource(group: str, resource: str) -> str:
    """``schema.GroupResource.String()``: ``pods`` for the core group, else ``deployments.apps``."""
    return f"{resource}.{group}" if group else resource


def internal_error(message: str) -> Status:
    """``apierrors.NewInternalError(err)``: how a failed-closed call or a bad patch reaches the client."""
    return Status(message=f"Internal error occurred: {message}", code=500, reason="InternalError")


def forbidden(*, group: str, resource: str, name: str, message: str) -> Status:
    """``apierrors.NewForbidden(gr, name, err)``, used when a matchCondition fails to evaluate under
    ``failurePolicy: Fail`` (generic/webhook.go ``ShouldCallHook``)."""
    qualified = group_resource(group, resource)
    if not resource:
        text = f"forbidden: {message}"
    elif not name:
        text = f"{qualified} is forbidden: {message}"
    else:
        text = f"{qualified} {go_quote(name)} is forbidden: {message}"
    return Status(message=text, code=403, reason="Forbidden")


def calling_error(webhook: str, reason: str) -> str:
    """``webhookutil.ErrCallingWebhook.Error()`` (k8s.io/apiserver/pkg/util/webhook/error.go)."""
    return f"failed calling webhook {go_quote(webhook)}: {reason}"


def denied(webhook: str, result: dict[str, Any] | None) -> Status:
    """``webhookerrors.ToStatusErr``: a webhook's ``allowed: false`` answer as the client sees it.

    The webhook's ``status.message`` (else ``status.reason``) follows ``admission webhook "NAME"
    denied the request``; its code is kept but raised to 400 when lower or absent, so a rejection
    is never reported as a success.
    """
    result = result or {}
    by = f"admission webhook {go_quote(webhook)} denied the request"
    message = str(result.get("message") or "")
    reason = str(result.get("reason") or "")
    if message:
        text = f"{by}: {message}"
    elif reason:
        text = f"{by}: {reason}"
    else:
        text = f"{by} without explanation"
    code = result.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) and code >= 400 else 400
    return Status(message=text, code=code, reason=reason)


def generic_server_response(code: int, server_message: str) -> str:
    """``apierrors.NewGenericServerResponse``: client-go's error for a non-2xx answer that is not a
    ``Status`` object (the webhook's REST client names no resource, so no suffix is added)."""
    messages = {
        409: "the server reported a conflict",
        404: "the server could not find the requested resource",
        400: "the server rejected our request for an unknown reason",
        401: "the server has asked for the client to provide credentials",
        405: "the server does not allow this method on the requested resource",
        422: "the server rejected our request due to an error in our request",
        503: "the server is currently unable to handle the request",
        504: "the server was unable to return a response in the time allotted, "
        "but may still be processing the request",
        429: "the server has received too many requests and has asked us to try again later",
    }
    if code in messages:
        return messages[code]
    if code in (403, 415):
        return server_message
    if code == 406:
        if server_message in ("", "unknown"):
            return "the server was unable to respond with a content type that the client supports"
        return server_message
    if code >= 500:
        return (
            f"an error on the server ({go_quote(server_message)}) has prevented the request from succeeding"
        )
    return f"the server responded with the status code {code} but did not return more information"


def _go_char(char: str) -> str:
    """``encoding/json.quoteChar``."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    return "'" + (json.dumps(char)[1:-1] if not char.isprintable() else char) + "'"


def go_json_syntax_error(exc: json.JSONDecodeError) -> str:
    """The ``encoding/json`` text for the syntax error Python reports as ``exc``.

    Covers what broken webhooks produce: truncated bodies (``unexpected end of JSON input``), text
    where JSON should be, and trailing garbage.
    """
    doc, pos = exc.doc, exc.pos
    if pos >= len(doc.rstrip()) or exc.msg.startswith("Unterminated string"):
        return "unexpected end of JSON input"
    char = _go_char(doc[pos])
    literal = {"t": "true", "f": "false", "n": "null"}.get(doc[pos])
    if exc.msg.startswith("Expecting value") and literal:
        # Go's scanner reads a literal letter by letter and names the first wrong one.
        for offset, expected in enumerate(literal):
            if pos + offset >= len(doc):
                return "unexpected end of JSON input"
            if doc[pos + offset] != expected:
                got = _go_char(doc[pos + offset])
                return f"invalid character {got} in literal {literal} (expecting {_go_char(expected)})"
    if exc.msg.startswith("Expecting value"):
        return f"invalid character {char} looking for beginning of value"
    if exc.msg.startswith("Expecting property name"):
        return f"invalid character {char} looking for beginning of object key string"
    if exc.msg.startswith("Expecting ':'"):
        return f"invalid character {char} after object key"
    if exc.msg.startswith("Expecting ','"):
        inside = _innermost_container(doc[:pos])
        after = "object key:value pair" if inside == "{" else "array element"
        return f"invalid character {char} after {after}"
    if exc.msg.startswith("Extra data"):
        return f"invalid character {char} after top-level value"
    if exc.msg.startswith("Invalid control character"):
        return f"invalid character {char} in string literal"
    return f"invalid character {char} in string escape code"


def _innermost_container(prefix: str) -> str:
    stack: list[str] = []
    in_string = escaped = False
    for char in prefix:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def go_json_kind(value: Any) -> str:
    """The JSON type name ``encoding/json`` uses in ``cannot unmarshal X into ...``."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def go_json_marshal(value: Any) -> str:
    """``json.Marshal`` output: compact, map keys sorted, ``<``, ``>`` and ``&`` escaped as Go does."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
