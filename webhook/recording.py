"""The recording format: what one recorded review holds, how its file is named, what is redacted.

Recorded files are what users replay with ``python -m webhook review`` and what golden tests are
built from (see docs/recorded-reviews.md); :mod:`webhook.recorder` writes them. File layout
(``apiVersion: admission.dev/v1alpha1``, ``kind: RecordedReview``)::

    {"apiVersion": "admission.dev/v1alpha1", "kind": "RecordedReview",
     "recordedAt": "2025-01-31T12:00:00.123456Z",   # when the answer was sent (UTC)
     "path": "/validate/pod-security",                # the endpoint that answered (null if unknown)
     "redacted": ["request.request.object.data.password"],  # what was blanked (see below)
     "request": {<the AdmissionReview as received>},
     "response": {<the AdmissionReview answered>}}

File name: ``<UTC time>-<pid>-<sequence>_<endpoint>_<kind>_<namespace>_<name>_<uid>.json``, each part
reduced to ``[A-Za-z0-9.-]`` (``_`` when empty, e.g. the namespace of a ClusterRole), so names sort
by time and rotation removes the oldest first.

Redaction (:func:`redact`, which lists everything blanked) runs before a recording touches disk:
Secret data, credentials in env values, container ``args``/``command``, ``token`` fields, JSON
kept in annotations (``kubectl.kubernetes.io/last-applied-configuration`` repeats the whole applied
manifest), ``userInfo.extra`` and the same things in the answer's patch. ``redacted`` names each
blanked value by a dotted path from the top of the recording, ``[N]`` for list items. A path does
not stop where the wire format nests a document in a string: it goes on into the decoded patch
(``response.response.patch[0].value.env[0].value``) and into the JSON of an annotation, after the
annotation's key (``request.request.object.metadata.annotations.kubectl.kubernetes.io/``
``last-applied-configuration.spec.containers[0].env[0].value``, one string); an annotation blanked
whole ends at its key.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

API_VERSION = "admission.dev/v1alpha1"
KIND = "RecordedReview"
REDACTED = "REDACTED"
"""What a redacted value becomes (also valid base64, so a replayed Secret's ``data`` still decodes)."""

DEFAULT_ENV_PATTERNS: tuple[str, ...] = (
    "PASS", "PWD", "SECRET", "TOKEN", "KEY", "CRED", "AUTH", "PRIVATE", "DSN", r"(?:^|[_.-])PW(?:$|[_.-])",
)
"""Env var names containing one of these (case-insensitive regular expressions) have ``value`` blanked:
``PASS`` (PASSWORD, PASSWD, PASSPHRASE), ``PWD`` (DB_PWD), ``SECRET``, ``TOKEN``, ``KEY`` (API_KEY,
PRIVATE_KEY), ``CRED`` (CREDENTIALS, AWS_CREDS), ``AUTH`` (AUTHORIZATION, OAUTH_...), ``PRIVATE``,
``DSN`` (SENTRY_DSN and database DSNs, which embed passwords), and ``PW`` as a word of the name
(``PW``, ``MYSQL_ROOT_PW``, ``PW_FILE``; not ``PWA_MODE``). Broad on purpose (``KEY`` also blanks
``MONKEY_COUNT``, ``PASS`` blanks ``BYPASS_CACHE``): losing a harmless value in a recording costs little,
writing a credential to disk costs a lot. ``CERT`` is left out: certificates are public, and the keys
that go with them are caught by ``KEY`` and ``PRIVATE``. Credentials inside a value (URLs, query
strings, connection strings, flags) are redacted whatever the name (see :func:`redact`)."""

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
        name is unknown (a patch that sets ``.../env/N/value`` of an entry we cannot see): blanked.
        Otherwise the whole value when the name matches, else only the credentials found in it."""
        if not value or value == REDACTED:
            return None
        if name is None or self.env_name_matches(name):
            return REDACTED
        return scrub(value)

    @property
    def _env(self) -> re.Pattern[str]:
        return _compiled(self.env_patterns)


DEFAULT_REDACTION = Redaction()

_URL_CREDENTIALS = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*://(?P<cred>[^\s/?#@:]*:[^\s/?#]*)@")
"""``scheme://user:password@`` anywhere in a value (``DATABASE_URL``, ``REDIS_URL``, a JDBC URL in
``JAVA_OPTS``). The user part ends at the first ``:`` (RFC 3986 forbids a raw ``:`` in it) and the
password runs to the last ``@`` before the path, as Go's ``url.Parse`` and Python's ``urlsplit``
split the authority, so an unencoded ``@`` in the password is covered too. The user goes with the
password: some services take the token as the user (``https://TOKEN:x-oauth-basic@github.com``).
A scheme is tried only where a run of scheme characters begins (``\b`` would retry it after every
``.`` of ``a.a.a...``, quadratic on a long value)."""

_WORD = re.compile(r"[^\s/]+")
_BARE_USER = re.compile(r"(?:^|(?<=[=,;]))[^:@=,;]*:")
_BARE_HOST = re.compile(r"[A-Za-z0-9.-]+(?::[0-9]+)?(?=[,;?#]|$)")


def _bare_credentials(text: str) -> Iterator[tuple[int, int]]:
    """``user:password@host[:port]`` without a scheme (``DB=admin:hunter2@db.internal:5432/app``, the
    form MySQL shells, Redis clients and many ``*_ADDR`` settings take): a user (no ``:@=,;``) that
    starts a word or follows ``=``, ``,`` or ``;``, then the password up to the last ``@`` whose host
    ends the word or is followed by a port or ``,;?#`` (a word ends at a blank or ``/``). That host
    rule keeps image references out: in ``nginx:1.27@sha256:<digest>`` the ``sha256`` is followed
    by a hex digest, not a port. Written as a scan rather than one regular expression, which would
    retry every ``@`` from every start: quadratic on a long value of ``,a:b@``."""
    for word in _WORD.finditer(text):
        value, offset = word.group(), word.start()
        starts_word = offset == 0 or text[offset - 1].isspace()
        user = next((m for m in _BARE_USER.finditer(value) if m.start() > 0 or starts_word), None)
        if user is None:
            continue
        at = value.rfind("@")
        while at >= user.end() and not _BARE_HOST.match(value, at + 1):
            at = value.rfind("@", user.end(), at)
        if at >= user.end():
            yield offset + user.start(), offset + at


_ORACLE_CREDENTIALS = re.compile(r"(?i:jdbc:oracle:[a-z0-9]+:)(?P<cred>[^\s@/]+/[^\s@/]+)@")
"""Oracle's thin-driver URL puts ``user/password@`` after the driver name:
``jdbc:oracle:thin:scott/tiger@//db:1521/orcl``."""

_QUERY_PAIR = re.compile(r"[?&](?P<key>[^=&#\s?]+)=(?P<value>[^&#\s]*)")
"""One ``key=value`` of a URL query (``jdbc:postgresql://db/x?user=a&password=X``); the value runs
to the next ``&``, fragment or blank, so an unencoded ``;`` in a password goes with it."""

_CONNECTION_PAIR = re.compile(
    r"(?:^|(?<=;))[ \t]*(?P<key>[\w.-]+(?:[ \t]+[\w.-]+)*)[ \t]*=[ \t]*"
    r"(?P<value>(?:\"(?:[^\"]|\"\")*(?:\"|$)|'(?:[^']|'')*(?:'|$)|\{(?:[^}]|\}\})*(?:\}|$))?[^;]*)"
)
"""One ``key=value`` of a ``;``-separated connection string (ADO.NET and ODBC
``Server=db;User Id=a;Password=X;``, a SQL Server JDBC URL's ``;password=X``). Keys may hold spaces;
a value runs to the next ``;`` unless quoted the way those drivers quote it (``"..."`` or ``'...'``
with the quote doubled inside, ODBC ``{...}`` with ``}}``)."""

_WORD_PAIR = re.compile(
    r"(?:^|(?<=\s))(?P<key>[\w.-]+)=(?P<value>\"(?:[^\"\\]|\\[\s\S]?)*+\"?|'[^']*+'?|\S*[^\s;])"
)
"""A blank-separated ``key=value`` word: libpq's ``host=db password=X``, a JVM ``-Ddb.password=X``,
a flag ``--api-token=X`` (in ``args`` or inside a ``sh -c`` script). The value runs to the next
blank unless quoted; a ``;`` ending it is left to :data:`_CONNECTION_PAIR`, so ``; Password=X;`` in
a connection string keeps its separator."""

_FLAG_VALUE = re.compile(
    r"(?:^|(?<=\s))(?P<key>--?[\w.-]+)[ \t]+(?P<value>\"(?:[^\"\\]|\\[\s\S]?)*+\"?|'[^']*+'?|[^\s-]\S*)"
)
"""A flag and its value as two words of one string (``app --password X`` in a shell script). A next
word starting with ``-`` is another flag; in an ``args`` list the item after such a flag is
blanked whatever it is (see :func:`_redact_args`)."""

_SENSITIVE_KEY = re.compile(
    r"pass|pwd|secret|token|key|credential|dsn|signature|(?:^|[\W_])(?:pw|sig)$", re.IGNORECASE
)
"""Names of query parameters, connection-string keys and flags whose value is a credential:
password, passwd, passphrase, pwd, secret, token, key, credential, dsn (as in
:data:`DEFAULT_ENV_PATTERNS`) anywhere in the name, ``pw`` as its last word; and signatures, which
grant access until they expire (``X-Amz-Signature`` of an S3 presigned URL, ``sig`` of an Azure
SAS). Broad like :data:`DEFAULT_ENV_PATTERNS` (``--keyfile`` and ``monkey=`` go too); not ``auth``,
which would take MongoDB's ``authSource=admin``."""


def _sensitive(key: str) -> bool:
    return _SENSITIVE_KEY.search(key.strip().lstrip("-")) is not None


def _credential_spans(text: str) -> Iterator[tuple[int, int]]:
    """Where credentials sit in ``text``, as ``(start, end)`` of each value; spans may overlap."""
    for pattern in (_URL_CREDENTIALS, _ORACLE_CREDENTIALS):
        for match in pattern.finditer(text):
            yield match.span("cred")
    yield from _bare_credentials(text)
    pairs = [_QUERY_PAIR, _WORD_PAIR, _FLAG_VALUE]
    if ";" in text:
        pairs.append(_CONNECTION_PAIR)
    for pattern in pairs:
        for match in pattern.finditer(text):
            if _sensitive(match["key"]):
                yield match.span("value")


def scrub(text: str) -> str | None:
    """``text`` with every credential found in it (see :func:`redact`) replaced by ``REDACTED``, or
    None when it holds none. Overlapping findings become one ``REDACTED``: two rules may both read
    a value (``Password=X`` starts a connection string and is also a ``key=value`` word), and the
    longer reading wins, so nothing of the secret is left over."""
    spans = sorted((start, end) for start, end in _credential_spans(text) if end > start)
    if not spans:
        return None
    pieces: list[str] = []
    done = 0
    merged_end = -1
    for start, end in spans:
        if start < merged_end:  # overlaps the span just replaced: extend it
            merged_end = max(merged_end, end)
            done = merged_end
            continue
        pieces += [text[done:start], REDACTED]
        done = merged_end = end
    pieces.append(text[done:])
    result = "".join(pieces)
    return result if result != text else None


_PATTERN_CACHE: dict[tuple[str, ...], re.Pattern[str]] = {}


def _compiled(patterns: tuple[str, ...]) -> re.Pattern[str]:
    found = _PATTERN_CACHE.get(patterns)
    if found is None:
        # A pattern that matches nothing when no patterns are configured.
        found = re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!)", re.IGNORECASE)
        _PATTERN_CACHE[patterns] = found
    return found


def redact(document: dict[str, Any], *, redaction: Redaction = Redaction()) -> list[str]:
    """Blank sensitive values in a recorded review, in place; returns the paths blanked.

    ``document`` is a ``RecordedReview`` body; ``request.request.object``/``oldObject``, the
    requester's ``userInfo.extra`` and the answer's patch are covered. Each blanked value becomes
    ``REDACTED`` (inside a longer string, only the credential does). What is blanked:

    * a Secret's ``data`` and ``stringData`` values (keys are kept: policies may look at them) and
      its ``kubectl.kubernetes.io/last-applied-configuration`` annotation, whole. An object is a
      Secret when its own ``kind`` says so, or when the review does: ``request.kind`` (or
      ``requestKind``) ``Secret`` in the core group, or ``request.resource`` (or
      ``requestResource``) ``secrets`` in any group (a custom resource by that name likely holds
      secrets too). The review decides even when the object's ``kind`` is missing;
    * any annotation whose value is JSON (``last-applied-configuration`` of every other kind, which
      repeats the manifest): parsed and redacted by these same rules, as an object of its own kind
      (a Secret in it is redacted as a Secret), then written back compactly as kubectl writes it
      (Go's ``json.Encoder``: no blanks, the original trailing newline kept); left byte for byte as
      it was when nothing in it is sensitive. A value starting with ``{`` that does not parse is
      blanked whole;
    * ``value`` of any env var (``{name, value}`` in an ``env`` list, at any depth, so pod templates
      of workloads and custom resources are covered) whose name matches ``redaction.env_patterns``;
    * whatever the env var's name, the credentials inside its value: ``user:password`` of a
      ``scheme://user:password@host`` URL, of a scheme-less ``user:password@host:port`` and of an
      Oracle ``jdbc:oracle:thin:user/password@``; the value of a query parameter
      (``?user=a&password=X``), of a ``;``-separated connection-string key
      (``Server=db;Password=X;``), of a ``key=value`` word (``host=db password=X``,
      ``-Ddb.password=X``) and of a flag followed by its value (``--password X``) whose key is
      sensitive (see :data:`_SENSITIVE_KEY`);
    * in container ``args`` and ``command`` (any list of strings under those keys, at any depth),
      the same credentials inside each item (``--db-password=X``, ``--db-url=postgres://u:X@db``)
      and the whole item following a flag with a sensitive name (``["--password", "X"]``);
    * any string under a key named ``token``: TokenRequest ``status.token`` (a service-account token
      the API server issues), TokenReview ``spec.token``, bootstrap-token style objects;
    * every value of ``request.userInfo.extra`` (the keys are kept): authenticators put credential
      ids and session data there (``authentication.kubernetes.io/credential-id``), and replay
      does not need them;
    * in the answer's JSON patch, the same things however the patch carries them: env values in a
      whole ``env`` list or a container holding one, a single ``{name, value}`` entry
      (``add .../env/-``), or a bare string at ``.../env/N/value`` (what a name-aware diff emits for
      a changed value), judged by the name of that entry in ``request.object``, and blanked when
      that name cannot be known for sure; an ``args``/``command`` list or one item of it; an
      ``annotations`` map or one annotation.

    Paths are dotted, ``[N]`` for list items, and go on into the decoded patch and into the JSON of
    an annotation (see the module docstring).
    """
    found: list[str] = []
    request = document.get("request")
    inner = request.get("request") if isinstance(request, dict) else None
    if isinstance(inner, dict):
        secret = _reviews_a_secret(inner)
        for key in ("object", "oldObject"):
            obj = inner.get(key)
            if isinstance(obj, dict):
                _redact_object(obj, f"request.request.{key}", redaction, found, secret=secret)
        user = inner.get("userInfo")
        extra = user.get("extra") if isinstance(user, dict) else None
        if isinstance(extra, dict):
            _redact_extra(extra, "request.request.userInfo.extra", found)
    response = document.get("response")
    answer = response.get("response") if isinstance(response, dict) else None
    if isinstance(answer, dict) and isinstance(answer.get("patch"), str):
        patched = inner.get("object") if isinstance(inner, dict) else None
        _redact_patch(answer, patched if isinstance(patched, dict) else None, redaction, found)
    return found


def _reviews_a_secret(inner: dict[str, Any]) -> bool:
    """Whether the review is about a Secret, whatever its objects say of themselves: the API server
    fills ``kind``/``resource`` from the URL it served, while an object may come without ``kind``
    (a client, a replayed or hand-written review). ``requestKind``/``requestResource`` are the same
    before version conversion."""
    for field in ("kind", "requestKind"):
        gvk = inner.get(field)
        if isinstance(gvk, dict) and gvk.get("kind") == "Secret" and not gvk.get("group"):
            return True
    for field in ("resource", "requestResource"):
        gvr = inner.get(field)
        if isinstance(gvr, dict) and gvr.get("resource") == "secrets":
            return True
    return False


def _redact_object(
    obj: dict[str, Any], where: str, redaction: Redaction, found: list[str], *, secret: bool = False
) -> None:
    """One Kubernetes object: a request's ``object``/``oldObject`` or the manifest kept in an
    annotation. ``secret`` says the review is about a Secret; the object's own ``kind`` counts too."""
    if secret or obj.get("kind") == "Secret":
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
    """The rules that hold at any depth, whatever the kind: env lists, args and command lists,
    annotations holding JSON, ``token`` fields."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}"
            if key == "env" and isinstance(value, list):
                _redact_env(value, path, redaction, found)
            elif key in ("args", "command") and isinstance(value, list):
                _redact_args(value, path, found)
            elif key == "annotations" and isinstance(value, dict):
                _redact_annotations(value, path, redaction, found)
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


def _takes_a_secret(item: str) -> bool:
    """Whether ``item`` is a flag whose value is the next item: ``--password`` (not ``--password=X``,
    which carries its own, nor a plain word)."""
    return item.startswith("-") and "=" not in item and _sensitive(item)


def _redact_args(items: list[Any], where: str, found: list[str]) -> None:
    """Container ``args``/``command``: each item is scrubbed like an env value, and the item after a
    flag with a sensitive name is blanked whole. The kubelet passes items as they are (no shell),
    so ``["--password", "X"]`` is the flag and its value; the item is blanked even when it looks
    like another flag, as a password may start with ``-``."""
    after_flag = False
    for index, item in enumerate(items):
        if not isinstance(item, str):
            after_flag = False
            continue
        blanked = REDACTED if after_flag and item and item != REDACTED else scrub(item)
        after_flag = _takes_a_secret(item)
        if blanked is not None:
            items[index] = blanked
            found.append(f"{where}[{index}]")


def _redact_annotations(annotations: dict[str, Any], where: str, redaction: Redaction, found: list[str]) -> None:
    for key, value in annotations.items():
        if isinstance(value, str):
            blanked = _redact_json_text(value, f"{where}.{key}", redaction, found)
            if blanked is not None:
                annotations[key] = blanked


def _redact_json_text(text: str, where: str, redaction: Redaction, found: list[str]) -> str | None:
    """What an annotation holding JSON is recorded as, or None to keep it (not JSON, or nothing in
    it to blank). ``kubectl apply`` writes the manifest with Go's ``json.Encoder`` (compact, then a
    newline); ``orjson`` writes the same compact form (Go also escapes ``<``, ``>`` and ``&``, which
    no JSON reader tells apart), and the blanks around are kept."""
    body = text.strip()
    if not body.startswith(("{", "[")):
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        if body.startswith("["):
            return None  # prose ("[beta] rolled out by hand"), not JSON
        # Looks like an object but cannot be read (truncated, not JSON, nested deeper than the
        # parser goes): it may hold anything, so none of it is kept.
        found.append(where)
        return REDACTED
    before = len(found)
    try:
        if isinstance(parsed, dict):
            _redact_object(parsed, where, redaction, found)
        elif isinstance(parsed, list):
            _walk(parsed, where, redaction, found)
    except RecursionError:
        # JSON nested deeper than the walk goes: what it holds cannot be checked, so it goes whole.
        del found[before:]
        found.append(where)
        return REDACTED
    if len(found) == before:
        return None
    lead, trail = text[: len(text) - len(text.lstrip())], text[len(text.rstrip()) :]
    return lead + orjson.dumps(parsed).decode() + trail


def _redact_extra(extra: dict[str, Any], where: str, found: list[str]) -> None:
    """``userInfo.extra``: every value blanked, the keys and the shape (a list of strings per key,
    as the API server sends it) kept."""
    for key, values in extra.items():
        if isinstance(values, list):
            if any(value != REDACTED for value in values):
                extra[key] = [REDACTED] * len(values)
                found.append(f"{where}.{key}")
        elif values not in (None, "", REDACTED):
            extra[key] = REDACTED
            found.append(f"{where}.{key}")


_ENV_VALUE = re.compile(r"/env/[^/]+/value$")
"""A patch path setting one env var's value; any index (the API server's patch library also takes
negative ones, counted from the end), though only a plain one is looked up in the object."""

_ARGS = re.compile(r"/(?:args|command)$")
_ARGS_ITEM = re.compile(r"/(?:args|command)/[^/]+$")
_ANNOTATIONS = re.compile(r"/metadata/annotations$")
_ANNOTATION = re.compile(r"/metadata/annotations/[^/]+$")


def _redact_patch(
    answer: dict[str, Any], patched: dict[str, Any] | None, redaction: Redaction, found: list[str]
) -> None:
    """Blank env values, args and annotations in the answer's patch (an injected sidecar's, a
    defaulted or rewritten variable), whichever op shape carries them: the API server applies them
    to ``patched``."""
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
    """The shapes :func:`_walk` does not see: it only knows lists and maps under their own key
    (``env``, ``args``, ``annotations``), while an op holds them under ``value``."""
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
    elif isinstance(value, list) and _ARGS.search(path):
        _redact_args(value, f"{where}.value", found)
    elif isinstance(value, str) and _ARGS_ITEM.search(path):
        # One item: the one before it is not in the op, so only credentials inside it are found.
        blanked = scrub(value)
        if blanked is not None:
            op["value"] = blanked
            found.append(f"{where}.value")
    elif isinstance(value, dict) and _ANNOTATIONS.search(path):
        _redact_annotations(value, f"{where}.value", redaction, found)
    elif isinstance(value, str) and _ANNOTATION.search(path):
        blanked = _redact_json_text(value, f"{where}.value", redaction, found)
        if blanked is not None:
            op["value"] = blanked


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
