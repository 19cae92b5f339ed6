"""``library.Format`` (``k8s.io/apiserver/pkg/cel/library/format.go``, Kubernetes 1.31+): named
string formats and their validation, ``format.dns1123Label().validate(name)``.

Upstream, ``format.named(name)`` returns ``optional<kubernetes.NamedFormat>`` and
``<format>.validate(s)`` returns ``optional<list<string>>``: none when ``s`` is valid, else the
validation errors. A Python function cannot hand an optional to cel-expr-python 0.1, so
:func:`webhook.cel.rewrite.format_calls` rewrites those two calls, before compiling, to the list
forms implemented here followed by an optional index: ``format.named(n)`` becomes
``format.webhookNamed(n)[?0]`` and ``f.validate(s)`` becomes ``f.webhookValidate(s)[?0]``. An empty
list then gives ``optional.none()`` and a one-item list ``optional.of(item)``: the same types and
values as upstream, for the checker and at evaluation.

The validation texts are apimachinery's (``pkg/api/validate/content`` for label keys, label values
and RFC 1123 names, ``pkg/util/validation`` for RFC 1035 labels, ``pkg/api/validation``'s
``maskTrailingDash`` for the ``...Prefix`` formats), and kube-openapi's ``strfmt`` checks for
``uuid``, ``byte``, ``date`` and ``datetime``; ``uri`` is Go's ``url.ParseRequestURI`` error
(:mod:`webhook.cel.k8s_url`). Length limits say "bytes" where apimachinery's ``content`` package
does (from Kubernetes 1.34) and "characters" where ``util/validation`` still does.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

from webhook.cel import k8s_types, k8s_url

_DNS1123_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = _DNS1123_LABEL + "(\\." + _DNS1123_LABEL + ")*"
_DNS1035_LABEL = "[a-z]([-a-z0-9]*[a-z0-9])?"
_LABEL_KEY = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(" + _LABEL_KEY + ")?"

_MATCH: dict[str, Callable[[str], Any]] = {
    name: re.compile(f"^(?:{pattern})$", re.ASCII).fullmatch
    for name, pattern in (("label", _DNS1123_LABEL), ("subdomain", _DNS1123_SUBDOMAIN), ("dns1035", _DNS1035_LABEL),
                          ("key", _LABEL_KEY), ("value", _LABEL_VALUE))
}


def _regex_error(message: str, pattern: str, *examples: str) -> str:
    """apimachinery's ``RegexError``: the message, examples and the pattern used."""
    quoted = " or ".join(f"'{example}', " for example in examples)
    return f"{message} (e.g. {quoted}regex used for validation is '{pattern}')"


def _too_long(limit: int, unit: str = "bytes") -> str:
    return f"must be no more than {limit} {unit}"


def _length(value: str) -> int:
    """Go's ``len``: bytes of the UTF-8 text."""
    return len(value.encode("utf-8")) if not value.isascii() else len(value)


def dns1123_subdomain(value: str) -> list[str]:
    errors = [_too_long(253)] if _length(value) > 253 else []
    if not _MATCH["subdomain"](value):
        errors.append(_regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
            "and must start and end with an alphanumeric character", _DNS1123_SUBDOMAIN, "example.com"))
    return errors


def dns1123_label(value: str) -> list[str]:
    errors = [_too_long(63)] if _length(value) > 63 else []
    if not _MATCH["label"](value):
        if _MATCH["subdomain"](value):
            errors.append("must not contain dots")  # a valid subdomain within the length: its dots
        else:
            errors.append(_regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                "start and end with an alphanumeric character", _DNS1123_LABEL, "my-name", "123-abc"))
    return errors


def dns1035_label(value: str) -> list[str]:
    errors = [_too_long(63, "characters")] if _length(value) > 63 else []
    if not _MATCH["dns1035"](value):
        errors.append(_regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
            "character, and end with an alphanumeric character", _DNS1035_LABEL, "my-name", "abc-123"))
    return errors


_LABEL_KEY_MESSAGE = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                      "alphanumeric character")


def qualified_name(value: str) -> list[str]:
    """``IsQualifiedName`` (a label key): an optional DNS subdomain prefix and ``/``, then a name."""
    parts = value.split("/")
    errors: list[str] = []
    if len(parts) > 2:
        return ["a valid label key " + _regex_error(_LABEL_KEY_MESSAGE, _LABEL_KEY, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors.extend("prefix part " + message for message in dns1123_subdomain(prefix))
    if not name:
        errors.append("name part must be non-empty")
    elif _length(name) > 63:
        errors.append("name part " + _too_long(63))
    if not _MATCH["key"](name):
        errors.append("name part " + _regex_error(_LABEL_KEY_MESSAGE, _LABEL_KEY, "MyName", "my.name", "123-abc"))
    return errors


def label_value(value: str) -> list[str]:
    errors = [_too_long(63)] if _length(value) > 63 else []
    if not _MATCH["value"](value):
        errors.append(_regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must "
            "start and end with an alphanumeric character", _LABEL_VALUE, "MyValue", "my_value", "12345"))
    return errors


def _mask_trailing_dash(name: str) -> str:
    """apimachinery's ``maskTrailingDash`` for names that get a suffix appended (``generateName``):
    a trailing dash is allowed. Upstream drops the last *two* characters and appends ``a``; kept."""
    return name[:-2] + "a" if len(name) > 1 and name.endswith("-") else name


def _prefixed(check: Callable[[str], list[str]]) -> Callable[[str], list[str]]:
    return lambda value: check(_mask_trailing_dash(value))


def uri(value: str) -> list[str]:
    try:
        k8s_url.parse_request_uri(value.encode("utf-8"))
    except k8s_url.URLError as exc:
        return [str(exc)]
    return []


_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.IGNORECASE)
_BASE64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{4})$")
_FULL_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$", re.ASCII)
_TIME = re.compile(r"^([0-9]{2}):([0-9]{2}):([0-9]{2})(.[0-9]+)?(z|([+-][0-9]{2}:[0-9]{2}))$", re.ASCII)


def _is_date(value: str) -> bool:
    """Go's ``time.Parse("2006-01-02", s)``: four-digit year, two-digit month and day, a real date."""
    match = _FULL_DATE.fullmatch(value)
    if match is None:
        return False
    try:
        datetime.date(*(int(part) for part in match.groups()))
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    """strfmt's ``IsDateTime``: a date, ``t`` (either case), then a time the pattern matches with
    hours, minutes and seconds in range."""
    if len(value) < 4:
        return False
    parts = value.lower().split("t")
    if len(parts) < 2 or not _is_date(parts[0]):
        return False
    match = _TIME.fullmatch(parts[1])
    return match is not None and match.group(1) <= "23" and match.group(2) <= "59" and match.group(3) <= "59"


def _check(accepts: Callable[[str], bool], message: str) -> Callable[[str], list[str]]:
    return lambda value: [] if accepts(value) else [message]


FORMATS: dict[str, tuple[str, Callable[[str], list[str]]]] = {
    "dns1123Label": ("DNS1123Label", dns1123_label),
    "dns1123Subdomain": ("DNS1123Subdomain", dns1123_subdomain),
    "dns1035Label": ("DNS1035Label", dns1035_label),
    "qualifiedName": ("QualifiedName", qualified_name),
    "dns1123LabelPrefix": ("DNS1123LabelPrefix", _prefixed(dns1123_label)),
    "dns1123SubdomainPrefix": ("DNS1123SubdomainPrefix", _prefixed(dns1123_subdomain)),
    "dns1035LabelPrefix": ("DNS1035LabelPrefix", _prefixed(dns1035_label)),
    "labelValue": ("LabelValue", label_value),
    "uri": ("URI", uri),
    "uuid": ("uuid", _check(lambda s: _UUID.fullmatch(s) is not None, "does not match the UUID format")),
    "byte": ("byte", _check(lambda s: _BASE64.fullmatch(s) is not None, "invalid base64")),
    "date": ("date", _check(_is_date, "invalid date")),
    "datetime": ("datetime", _check(_is_datetime, "invalid datetime")),
}
"""``format.<key>()`` -> (upstream's ``Format.Name``, what ``validate`` runs)."""

_BY_NAME = {name: key for key, (name, _) in FORMATS.items()}
_VALUES = {key: k8s_types.new(k8s_types.FORMAT, name=name) for key, (name, _) in FORMATS.items()}


def constant(key: str) -> Callable[[], Any]:
    """The zero-argument ``format.<key>()``."""
    value = _VALUES[key]
    return lambda: value


def named(name: str) -> list[Any]:
    """``format.named(name)`` as a list of none or one format (see the module docstring)."""
    found = _VALUES.get(name)
    return [] if found is None else [found]


def validate(message: Any, value: str) -> list[list[str]]:
    """``<format>.validate(value)`` as a list of none (valid) or one list of errors."""
    key = _BY_NAME.get(getattr(message, "name", ""))
    if key is None:
        raise ValueError("no such overload")
    errors = FORMATS[key][1](value)
    return [errors] if errors else []
