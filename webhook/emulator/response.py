"""Decoding and checking a webhook's answer, as client-go and ``VerifyAdmissionResponse`` do.

Everything that goes wrong here is a *call failure* in the API server (``ErrCallingWebhook``), so
``failurePolicy`` decides what happens to the request: a body that is not JSON, the wrong
apiVersion/kind, a ``response.uid`` that is not the request's, a field of the wrong JSON type, a
patch without patchType (or the reverse), a patch from a validating webhook. The raised
:class:`InvalidResponse` carries the Go error text that follows ``failed calling webhook "NAME": ``.

Sources: client-go rest ``Result.Into``/``transformResponse``, apimachinery's JSON serializer and
``SimpleMetaFactory.Interpret``, and webhook/request/admissionreview.go ``VerifyAdmissionResponse``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from typing import Any

from webhook import gotext
from webhook.emulator import texts

ADMISSION_V1 = "admission.k8s.io/v1"
_FIND_KIND = (
    'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
)
_BASE64 = re.compile(r"[A-Za-z0-9+/=]")


class InvalidResponse(Exception):
    """The answer is unusable; ``str()`` is the reason after ``failed calling webhook "NAME": ``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Verified:
    """``webhookrequest.AdmissionResponse``: the parts of a valid answer the dispatcher uses."""

    allowed: bool
    patch: bytes | None
    patch_type: str
    result: dict[str, Any] | None
    warnings: tuple[str, ...]
    audit_annotations: dict[str, str]


def _type_error(value: Any, field: str, go_type: str) -> InvalidResponse:
    return InvalidResponse(
        f"failed to call webhook: json: cannot unmarshal {texts.go_json_kind(value)} into Go struct field "
        f"AdmissionResponse.response.{field} of type {go_type}"
    )


def _base64(text: str) -> bytes:
    """Go's ``base64.StdEncoding`` (padding required) with its ``illegal base64 data at input byte N``."""
    for index, char in enumerate(text):
        if not _BASE64.match(char) and char not in "\r\n":
            raise InvalidResponse(f"failed to call webhook: illegal base64 data at input byte {index}")
    try:
        return base64.b64decode(text, validate=False)
    except binascii.Error:
        raise InvalidResponse(
            f"failed to call webhook: illegal base64 data at input byte {len(text) - len(text) % 4}"
        ) from None


def _check_types(response: dict[str, Any]) -> None:
    expected: dict[str, tuple[type | tuple[type, ...], str]] = {
        "uid": (str, "types.UID"),
        "allowed": (bool, "bool"),
        "status": (dict, "v1.Status"),
        "patch": (str, "[]uint8"),
        "patchType": (str, "v1.PatchType"),
        "auditAnnotations": (dict, "map[string]string"),
        "warnings": (list, "[]string"),
    }
    for field, (kind, go_type) in expected.items():
        value = response.get(field)
        if value is not None and not isinstance(value, kind):
            raise _type_error(value, field, go_type)
    for value in (response.get("auditAnnotations") or {}).values():
        if not isinstance(value, str):
            raise _type_error(value, "auditAnnotations", "string")
    for value in response.get("warnings") or []:
        if not isinstance(value, str):
            raise _type_error(value, "warnings", "string")
    if isinstance(response.get("patch"), str):
        _base64(response["patch"])


def decode(body: bytes, *, status: int, content_type: str) -> dict[str, Any]:
    """The AdmissionReview in a 2xx ``body``, or the client-go error for it."""
    if not body:
        ct = content_type or "application/json"
        raise InvalidResponse(
            f"failed to call webhook: 0-length response with status code: {status} and content type: {ct}"
        )
    try:
        review = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidResponse(
            "failed to call webhook: couldn't get version/kind; json parse error: "
            f"{texts.go_json_syntax_error(exc)}"
        ) from None
    except UnicodeDecodeError:
        raise InvalidResponse(
            "failed to call webhook: couldn't get version/kind; json parse error: invalid UTF-8 in JSON input"
        ) from None
    if not isinstance(review, dict):
        raise InvalidResponse(
            "failed to call webhook: couldn't get version/kind; json parse error: "
            f"json: cannot unmarshal {texts.go_json_kind(review)} into Go value of type {_FIND_KIND}"
        )
    for field in ("apiVersion", "kind"):
        if review.get(field) is not None and not isinstance(review[field], str):
            raise InvalidResponse(
                "failed to call webhook: couldn't get version/kind; json parse error: "
                f"json: cannot unmarshal {texts.go_json_kind(review[field])} into Go struct field "
                f".{field} of type string"
            )
    if str(review.get("apiVersion") or "").count("/") > 1:
        raise InvalidResponse(
            f"failed to call webhook: unexpected GroupVersion string: {review['apiVersion']}"
        )
    response = review.get("response")
    if response is not None and not isinstance(response, dict):
        raise InvalidResponse(
            f"failed to call webhook: json: cannot unmarshal {texts.go_json_kind(response)} into Go "
            "struct field "
            "AdmissionReview.response of type v1.AdmissionResponse"
        )
    if isinstance(response, dict):
        _check_types(response)
    return review


def verify(review: dict[str, Any], *, uid: str, mutating: bool, api_version: str = ADMISSION_V1) -> Verified:
    """``VerifyAdmissionResponse`` for the review version that was sent."""

    def invalid(why: str) -> InvalidResponse:
        return InvalidResponse(f"received invalid webhook response: {why}")

    response = review.get("response")
    if not isinstance(response, dict):
        raise invalid("webhook response was absent")
    raw_patch = response.get("patch")
    patch = _base64(raw_patch) if isinstance(raw_patch, str) and raw_patch else None
    patch_type_given = response.get("patchType")
    if api_version == ADMISSION_V1:
        if str(response.get("uid") or "") != uid:
            raise invalid(
                f"expected response.uid={gotext.quote(uid)}, got "
                f"{gotext.quote(str(response.get('uid') or ''))}"
            )
        got = (str(review.get("apiVersion") or ""), str(review.get("kind") or ""))
        if got != (ADMISSION_V1, "AdmissionReview"):
            raise invalid(
                f"expected webhook response of {texts.gvk_string(ADMISSION_V1, 'AdmissionReview')}, "
                f"got {texts.gvk_string(*got)}"
            )
        patch_type = ""
        if mutating:
            if patch and patch_type_given is None:
                raise invalid("webhook returned response.patch but not response.patchType")
            if not patch and patch_type_given is not None:
                raise invalid("webhook returned response.patchType but not response.patch")
            if patch_type_given is not None:
                patch_type = str(patch_type_given)
                if not patch_type:
                    raise invalid(
                        f"webhook returned invalid response.patchType of {gotext.quote(patch_type)}"
                    )
        else:
            if patch:
                raise invalid("validating webhook may not return response.patch")
            if patch_type_given is not None:
                raise invalid("validating webhook may not return response.patchType")
            patch = None
    else:
        # v1beta1 never checked uid, kind or patchType; a patch is taken as a JSON patch.
        patch = patch if mutating else None
        patch_type = "JSONPatch" if patch else ""
    return Verified(
        allowed=response.get("allowed") is True,
        patch=patch,
        patch_type=patch_type,
        result=response.get("status"),
        warnings=tuple(response.get("warnings") or ()),
        audit_annotations=dict(response.get("auditAnnotations") or {}),
    )


def error_status(body: bytes, *, status: int, content_type: str) -> str:
    """client-go's error for a non-2xx answer: a returned ``Status`` speaks for itself; otherwise
    ``NewGenericServerResponse`` with the body (text responses only, first 2 KiB) as server message."""
    media = content_type.split(";")[0].strip().lower()
    if media in ("application/json", ""):
        try:
            parsed = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            parsed = None
        if isinstance(parsed, dict) and parsed.get("kind") == "Status" and parsed.get("status") == "Failure":
            return str(parsed.get("message") or "")
    message = "unknown"
    if not media or media.startswith("text/"):
        message = body[:2048].decode("utf-8", errors="replace").strip()
    return texts.generic_server_response(status, message)
