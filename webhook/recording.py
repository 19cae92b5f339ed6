"""The recording format: what one recorded review holds, how its file is named, what is redacted.

Recorded files are what users replay with ``python -m webhook review`` and what golden tests are
built from (see docs/recorded-reviews.md); :mod:`webhook.recorder` writes them. File layout
(``apiVersion: admission.dev/v1alpha1``, ``kind: RecordedReview``)::

    {"apiVersion": "admission.dev/v1alpha1", "kind": "RecordedReview",
     "recordedAt": "2025-01-31T12:00:00.123456Z",   # when the answer was sent (UTC)
     "path": "/validate/pod-security",                # the endpoint that answered (null if unknown)
     "redacted": ["request.object.data.password"],   # what was blanked, as dotted paths
     "request": {<the AdmissionReview as received>},
     "response": {<the AdmissionReview answered>}}

File name: ``<UTC time>-<pid>-<sequence>_<endpoint>_<kind>_<namespace>_<name>_<uid>.json``, each part
reduced to ``[A-Za-z0-9.-]`` (``_`` when empty, e.g. the namespace of a ClusterRole), so names sort
by time and rotation removes the oldest first.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

API_VERSION = "admission.dev/v1alpha1"
KIND = "RecordedReview"
REDACTED = "REDACTED"
"""What a redacted value becomes (also valid base64, so a replayed Secret's ``data`` still decodes)."""

DEFAULT_ENV_PATTERNS: tuple[str, ...] = (
    "PASS", "PWD", "SECRET", "TOKEN", "KEY", "CRED", "AUTH", "PRIVATE", "DSN",
)
"""Env var names containing one of these (case-insensitive regular expressions) have ``value`` blanked:
``PASS`` (PASSWORD, PASSWD, PASSPHRASE), ``PWD`` (DB_PWD), ``SECRET``, ``TOKEN``, ``KEY`` (API_KEY,
PRIVATE_KEY), ``CRED`` (CREDENTIALS, AWS_CREDS), ``AUTH`` (AUTHORIZATION, OAUTH_...), ``PRIVATE``,
``DSN`` (SENTRY_DSN and database DSNs, which embed passwords). Broad on purpose (``KEY`` also blanks
``MONKEY_COUNT``, ``PASS`` blanks ``BYPASS_CACHE``): losing a harmless value in a recording costs little,
writing a credential to disk costs a lot. ``CERT`` is left out: certificates are public, and the keys
that go with them are caught by ``KEY`` and ``PRIVATE``. Values holding a URL with a password are
redacted whatever the name (see :func:`redact`)."""

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
"""``kubectl apply`` keeps the whole applied manifest here, so on a Secret it repeats the data."""

_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
SUFFIX = ".json"


@dataclasses.dataclass(frozen=True, slots=True)
class Redaction:
    """What is blanked before a review touches disk."""

    env_patterns: tuple[str, ...] = DEFAULT_ENV_PATTERNS

    def env_name_matches(self, name: str) -> bool:
        return self._env.search(name) is not None

    def env_value(self, value: str, *, name: str | None) -> str | None:
        """What an env var's ``value`` is recorded as, or None to keep it. ``name=None`` means the
        name is unknown (a patch that sets ``.../env/N/value`` of an entry we cannot see): blanked."""
        if not value or value == REDACTED:
            return None
        if name is None or self.env_name_matches(name):
            return REDACTED
        blanked = _URL_CREDENTIALS.sub(rf"\g<scheme>{REDACTED}@", value)
        return blanked if blanked != value else None

    @property
    def _env(self) -> re.Pattern[str]:
        return _compiled(self.env_patterns)


DEFAULT_REDACTION = Redaction()

_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@:]*:[^\s/?#]*@")
"""``scheme://user:password@`` anywhere in a value (``DATABASE_URL``, ``REDIS_URL``, a JDBC URL in
``JAVA_OPTS``). The user part ends at the first ``:`` (RFC 3986 forbids a raw ``:`` in it) and the
password runs to the last ``@`` before the path, as Go's ``url.Parse`` and Python's ``urlsplit``
split the authority, so an unencoded ``@`` in the password is covered too. The user goes with the
password: some services take the token as the user (``https://TOKEN:x-oauth-basic@github.com``)."""


_PATTERN_CACHE: dict[tuple[str, ...], re.Pattern[str]] = {}


def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:
    found = _PATTERN_CACHE.get(patterns)
    if found is None:
        # A pattern that matches nothing when no patterns are configured.
        found = re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!)", re.IGNORECASE)
        _PATTERN_CACHE[patterns] = found
    return found


def redact(document: dict[str, Any], *, redaction: Redaction = Redaction()) -> list[str]:
    """Blank sensitive values in a recorded review, in place; returns the dotted paths blanked.

    ``document`` is a ``RecordedReview`` body; ``request.request.object``/``oldObject`` and the
    answer's patch are covered. What is blanked:

    * a Secret's ``data`` and ``stringData`` values (keys are kept: policies may look at them) and
      its ``kubectl.kubernetes.io/last-applied-configuration`` annotation;
    * ``value`` of any env var (``{name, value}`` in an ``env`` list, at any depth, so pod templates
      of workloads and custom resources are covered) whose name matches ``redaction.env_patterns``;
      whatever the name, the ``user:password`` of a ``scheme://user:password@host`` URL in the value;
    * any string under a key named ``token``: TokenRequest ``status.token`` (a service-account token
      the API server issues), TokenReview ``spec.token``, bootstrap-token style objects;
    * in the answer's JSON patch, the same env values however the patch carries them: a whole
      ``env`` list or a container holding one, a single ``{name, value}`` entry (``add .../env/-``),
      or a bare string at ``.../env/N/value`` (what a name-aware diff emits for a changed value),
      judged by the name of that entry in ``request.object``, and blanked when that name cannot be
      known for sure.
    """
    found: list[str] = []
    request = document.get("request")
    inner = request.get("request") if isinstance(request, dict) else None
    if isinstance(inner, dict):
        for key in ("object", "oldObject"):
            obj = inner.get(key)
            if isinstance(obj, dict):
                _redact_object(obj, f"request.request.{key}", redaction, found)
    response = document.get("response")
    answer = response.get("response") if isinstance(response, dict) else None
    if isinstance(answer, dict) and isinstance(answer.get("patch"), str):
        patched = inner.get("object") if isinstance(inner, dict) else None
        _redact_patch(answer, patched if isinstance(patched, dict) else None, redaction, found)
    return found


def _redact_object(obj: dict[str, Any], where: str, redaction: Redaction, found: list[str]) -> None:
    if obj.get("kind") == "Secret":
        for field in ("data", "stringData"):
            values = obj.get(field)
            if isinstance(values, dict):
                for key in values:
                    values[key] = REDACTED
                    found.append(f"{where}.{field}.{key}")
        metadata = obj.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        if isinstance(annotations, dict) and LAST_APPLIED in annotations:
            annotations[LAST_APPLIED] = REDACTED
            found.append(f"{where}.metadata.annotations.{LAST_APPLIED}")
    _walk(obj, where, redaction, found)


def _walk(node: Any, where: str, redaction: Redaction, found: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}"
            if key == "env" and isinstance(value, list):
                _redact_env(value, path, redaction, found)
            elif key.lower() == "token" and isinstance(value, str) and value and value != REDACTED:
                node[key] = REDACTED
                found.append(path)
                continue
            _walk(value, path, redaction, found)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _walk(item, f"{where}[{index}]", redaction, found)


def _redact_env(env: list[Any], where: str, redaction: Redaction, found: list[str]) -> None:
    for index, var in enumerate(env):
        _redact_var(var, f"{where}[{index}]", redaction, found)


def _redact_var(var: Any, where: str, redaction: Redaction, found: list[str]) -> None:
    """One ``{name, value}`` env entry; entries using ``valueFrom`` hold no value to blank."""
    if not isinstance(var, dict):
        return
    name, value = var.get("name"), var.get("value")
    if isinstance(name, str) and isinstance(value, str):
        blanked = redaction.env_value(value, name=name)
        if blanked is not None:
            var["value"] = blanked
            found.append(f"{where}.value")


_ENV_VALUE = re.compile(r"/env/[^/]+/value$")
"""A patch path setting one env var's value; any index (the API server's patch library also takes
negative ones, counted from the end), though only a plain one is looked up in the object."""


def _redact_patch(
    answer: dict[str, Any], patched: dict[str, Any] | None, redaction: Redaction, found: list[str]
) -> None:
    """Blank env values in the answer's patch (an injected sidecar's, a defaulted or rewritten
    variable), whichever op shape carries them: the API server applies them to ``patched``."""
    try:
        ops = orjson.loads(base64.b64decode(answer["patch"]))
    except (ValueError, orjson.JSONDecodeError):
        return
    if not isinstance(ops, list):
        return
    before = len(found)
    touched: list[list[str] | None] = []
    for index, op in enumerate(ops):
        where = f"response.response.patch[{index}]"
        if isinstance(op, dict):
            _redact_op(op, where, _entry_name(op, patched, touched), redaction, found)
            touched.extend(_pointer(op.get(field)) for field in ("path", "from") if field in op)
        _walk(op, where, redaction, found)
    if len(found) != before:
        answer["patch"] = base64.b64encode(orjson.dumps(ops)).decode("ascii")


def _redact_op(
    op: dict[str, Any], where: str, entry_name: str | None, redaction: Redaction, found: list[str]
) -> None:
    """The env shapes :func:`_walk` does not see: it only knows lists under a key named ``env``."""
    path, value = op.get("path"), op.get("value")
    if not isinstance(path, str):
        return
    if isinstance(value, str) and _ENV_VALUE.search(path):
        blanked = redaction.env_value(value, name=entry_name)
        if blanked is not None:
            op["value"] = blanked
            found.append(f"{where}.value")
    elif isinstance(value, list) and path.endswith("/env"):
        _redact_env(value, f"{where}.value", redaction, found)
    elif isinstance(value, dict) and isinstance(value.get("name"), str) and "value" in value:
        _redact_var(value, f"{where}.value", redaction, found)


def _entry_name(op: dict[str, Any], patched: dict[str, Any] | None, touched: list[list[str] | None]) -> str | None:
    """The name of the env entry whose ``value`` ``op`` sets, read from the object the patch applies
    to; None when unknown: no object, no such entry, or an earlier op of the same patch may have
    moved, renamed or created it (an insert shifts every later index of its list)."""
    path = _pointer(op.get("path"))
    if path is None or patched is None or not _ENV_VALUE.search(str(op.get("path"))):
        return None
    entry = path[:-1]
    if any(_may_change(earlier, entry) for earlier in touched):
        return None
    node: Any = patched
    for part in entry:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    name = node.get("name") if isinstance(node, dict) else None
    return name if isinstance(name, str) else None


def _may_change(earlier: list[str] | None, entry: list[str]) -> bool:
    """Whether an op at ``earlier`` (its ``path``, or a ``move``'s ``from``) may change what lives at
    ``entry``: an op inside or above it, or one on an index of the list holding it (an insert or a
    removal shifts the items after it)."""
    if not earlier:
        return True  # the whole document, or not a pointer at all
    key = earlier[-1]
    scope = earlier[:-1] if key == "-" or key.lstrip("+-").isdigit() else earlier
    shorter = min(len(scope), len(entry))
    return scope[:shorter] == entry[:shorter]


def _pointer(path: Any) -> list[str] | None:
    """RFC 6901 reference tokens of ``path``; None when it is not a pointer (treated as touching all)."""
    if not isinstance(path, str) or (path and not path.startswith("/")):
        return None
    return [token.replace("~1", "/").replace("~0", "~") for token in path.split("/")[1:]]


def _part(text: str, *, limit: int = 63) -> str:
    return _UNSAFE.sub("-", text).strip(".-")[:limit] or "_"


def file_name(
    when: datetime.datetime, *, sequence: int, endpoint: str, kind: str, namespace: str, name: str, uid: str
) -> str:
    """The file name of one recording (see the module docstring); at most ~330 bytes long."""
    stamp = when.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    parts = [f"{stamp}-{os.getpid()}-{sequence:06d}", _part(endpoint.strip("/").replace("/", "-")),
             _part(kind), _part(namespace), _part(name), _part(uid)]
    return "_".join(parts) + SUFFIX


def load(path: Path) -> dict[str, Any]:
    """One recording, as written."""
    data: dict[str, Any] = orjson.loads(path.read_bytes())
    return data


def recordings(directory: Path) -> Iterable[Path]:
    """The recordings in ``directory``, oldest first."""
    return sorted(p for p in directory.glob(f"*{SUFFIX}") if not p.name.startswith("."))
