"""``library.URLs`` (``k8s.io/apiserver/pkg/cel/library/urls.go``): ``url()``, ``isURL()`` and
the getters ``getScheme``, ``getHost``, ``getHostname``, ``getPort``, ``getEscapedPath``,
``getQuery``.

Upstream checks a string with Go's ``url.ParseRequestURI`` (an absolute URI or an absolute path:
``url('../relative')`` is an error) and then keeps ``url.Parse``'s result. Both are ported here from
``net/url/url.go``, byte for byte, because users see their error texts
(``URL parse error during conversion from string: parse "../x": invalid URI for request``) and
their escaping (``getEscapedPath()`` of ``/path with spaces/`` is ``/path%20with%20spaces/``).
Go works on bytes, so does this module; a non-UTF-8 byte that percent-decoding produces comes back
to CEL as U+FFFD.

Equality: upstream compares ``URL.String()``; the message keeps that string, and the getters'
results derived from the same parse.
"""

from __future__ import annotations

import functools
from typing import Any

from webhook.cel import k8s_go, k8s_net, k8s_types

_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HEX = frozenset(b"0123456789abcdefABCDEF")
_UPPERHEX = b"0123456789ABCDEF"

_PATH, _PATH_SEGMENT, _HOST, _ZONE, _USER_PASSWORD, _QUERY_COMPONENT, _FRAGMENT = range(1, 8)
_HOST_ALLOWED = frozenset(b"!$&'()*+,;=:[]<>\"")
_RESERVED = frozenset(b"$&+,/:;=?@")
_USERINFO_EXTRA = frozenset("-._:~!$&'()*+,;=%@")
_SUB_DELIMS = frozenset(b"!$&'()*+,;=:@[]%")


class URLError(ValueError):
    """A ``url.Parse`` error; the message is Go's ``err.Error()``."""


def _should_escape(c: int, mode: int) -> bool:
    """``shouldEscape`` (RFC 3986 with Go's compatibility choices)."""
    if c in _ALNUM:
        return False
    if mode in (_HOST, _ZONE) and c in _HOST_ALLOWED:
        return False
    if c in b"-_.~":
        return False
    if c in _RESERVED:
        if mode == _PATH:
            return c == ord("?")
        if mode == _PATH_SEGMENT:
            return c in b"/;,?"
        if mode == _USER_PASSWORD:
            return c in b"@/?:"
        if mode == _QUERY_COMPONENT:
            return True
        if mode == _FRAGMENT:
            return False
    # The fragment keeps the sub-delims RFC 3986 allows but RFC 2396 reserved (issue 19917).
    return not (mode == _FRAGMENT and c in b"!()*")


def _unescape(s: bytes, mode: int) -> bytes:
    """``unescape``: percent-decoding with Go's per-component rules and errors."""
    count, has_plus, i = 0, False, 0
    while i < len(s):
        c = s[i]
        if c == ord("%"):
            count += 1
            if i + 2 >= len(s) or s[i + 1] not in _HEX or s[i + 2] not in _HEX:
                raise URLError(f"invalid URL escape {k8s_go.quote(s[i:i + 3])}")
            if mode == _HOST and int(s[i + 1:i + 2], 16) < 8 and s[i:i + 3] != b"%25":
                raise URLError(f"invalid URL escape {k8s_go.quote(s[i:i + 3])}")
            if mode == _ZONE:
                v = int(s[i + 1:i + 3], 16)
                if s[i:i + 3] != b"%25" and v != ord(" ") and _should_escape(v, _HOST):
                    raise URLError(f"invalid URL escape {k8s_go.quote(s[i:i + 3])}")
            i += 3
        elif c == ord("+"):
            has_plus = mode == _QUERY_COMPONENT
            i += 1
        else:
            if mode in (_HOST, _ZONE) and c < 0x80 and _should_escape(c, mode):
                raise URLError(f"invalid character {k8s_go.quote(s[i:i + 1])} in host name")
            i += 1
    if count == 0 and not has_plus:
        return s
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i]
        if c == ord("%"):
            out.append(int(s[i + 1:i + 3], 16))
            i += 3
            continue
        out.append(ord(" ") if c == ord("+") and mode == _QUERY_COMPONENT else c)
        i += 1
    return bytes(out)


def _escape(s: bytes, mode: int) -> bytes:
    out = bytearray()
    for c in s:
        if c == ord(" ") and mode == _QUERY_COMPONENT:
            out.append(ord("+"))
        elif _should_escape(c, mode):
            out += b"%" + _UPPERHEX[c >> 4:(c >> 4) + 1] + _UPPERHEX[c & 15:(c & 15) + 1]
        else:
            out.append(c)
    return bytes(out)


def _valid_encoded(s: bytes, mode: int) -> bool:
    return all(c in _SUB_DELIMS or not _should_escape(c, mode) for c in s)


def _valid_optional_port(port: bytes) -> bool:
    if port == b"":
        return True
    return port[:1] == b":" and all(0x30 <= c <= 0x39 for c in port[1:])


class _URL:
    """The fields of Go's ``url.URL`` that ``String()`` and the getters read."""

    __slots__ = ("scheme", "opaque", "user", "host", "path", "raw_path", "omit_host", "force_query",
                 "raw_query", "fragment", "raw_fragment")

    def __init__(self) -> None:
        self.scheme = self.opaque = self.host = self.path = self.raw_path = b""
        self.raw_query = self.fragment = self.raw_fragment = b""
        self.user: tuple[bytes, bytes | None] | None = None
        self.omit_host = self.force_query = False

    def set_path(self, p: bytes) -> None:
        self.path = _unescape(p, _PATH)
        self.raw_path = b"" if _escape(self.path, _PATH) == p else p

    def set_fragment(self, f: bytes) -> None:
        self.fragment = _unescape(f, _FRAGMENT)
        self.raw_fragment = b"" if _escape(self.fragment, _FRAGMENT) == f else f

    def escaped_path(self) -> bytes:
        if self.raw_path and _valid_encoded(self.raw_path, _PATH):
            try:
                if _unescape(self.raw_path, _PATH) == self.path:
                    return self.raw_path
            except URLError:
                pass
        if self.path == b"*":
            return b"*"
        return _escape(self.path, _PATH)

    def escaped_fragment(self) -> bytes:
        if self.raw_fragment and _valid_encoded(self.raw_fragment, _FRAGMENT):
            try:
                if _unescape(self.raw_fragment, _FRAGMENT) == self.fragment:
                    return self.raw_fragment
            except URLError:
                pass
        return _escape(self.fragment, _FRAGMENT)

    def string(self) -> bytes:
        """``URL.String()``."""
        out = bytearray()
        if self.scheme:
            out += self.scheme + b":"
        if self.opaque:
            out += self.opaque
        else:
            if (self.scheme or self.host or self.user is not None) and not (
                    self.omit_host and not self.host and self.user is None):
                if self.host or self.path or self.user is not None:
                    out += b"//"
                if self.user is not None:
                    name, password = self.user
                    out += _escape(name, _USER_PASSWORD)
                    if password is not None:
                        out += b":" + _escape(password, _USER_PASSWORD)
                    out += b"@"
                if self.host:
                    out += _escape(self.host, _HOST)
            path = self.escaped_path()
            if path and path[:1] != b"/" and self.host:
                out += b"/"
            if not out and b":" in path.split(b"/", 1)[0]:
                out += b"./"
            out += path
        if self.force_query or self.raw_query:
            out += b"?" + self.raw_query
        if self.fragment:
            out += b"#" + self.escaped_fragment()
        return bytes(out)


def _get_scheme(raw: bytes) -> tuple[bytes, bytes]:
    for i, c in enumerate(raw):
        if 0x61 <= c <= 0x7A or 0x41 <= c <= 0x5A:
            continue
        if 0x30 <= c <= 0x39 or c in b"+-.":
            if i == 0:
                return b"", raw
            continue
        if c == ord(":"):
            if i == 0:
                raise URLError("missing protocol scheme")
            return raw[:i], raw[i + 1:]
        return b"", raw
    return b"", raw


def _parse_host(host: bytes) -> bytes:
    """``parseHost``, with the IP-literal checks of Go 1.24.8/1.25.2 (CVE-2025-47912), which the
    API servers of v1.34 and v1.35 are built with: brackets only around an IPv6 address."""
    bracket = host.rfind(b"[")
    if bracket > 0:
        raise URLError("invalid IP-literal")
    if bracket == 0:
        i = host.rfind(b"]")
        if i < 0:
            raise URLError("missing ']' in host")
        colon_port = host[i + 1:]
        if not _valid_optional_port(colon_port):
            raise URLError(f"invalid port {k8s_go.quote(colon_port)} after host")
        colon_port = _unescape(colon_port, _HOST)
        hostname = host[1:i]
        zone = hostname.find(b"%25")
        if zone >= 0:
            hostname = _unescape(hostname[:zone], _HOST) + _unescape(hostname[zone:], _ZONE)
        else:
            hostname = _unescape(hostname, _HOST)
        try:
            address, _ = k8s_net.parse_addr(hostname.decode("utf-8", errors="surrogateescape"))
        except k8s_net.AddrError as exc:
            raise URLError(f"invalid host: {exc}") from None
        if len(address) == 4:
            raise URLError("invalid IP-literal")
        return b"[" + hostname + b"]" + colon_port
    else:
        i = host.rfind(b":")
        if i != -1 and not _valid_optional_port(host[i:]):
            raise URLError(f"invalid port {k8s_go.quote(host[i:])} after host")
    return _unescape(host, _HOST)


def _valid_userinfo(s: bytes) -> bool:
    text = s.decode("utf-8", errors="surrogateescape")
    return all(char.isascii() and (char.isalnum() or char in _USERINFO_EXTRA) for char in text)


def _parse_authority(authority: bytes) -> tuple[tuple[bytes, bytes | None] | None, bytes]:
    i = authority.rfind(b"@")
    host = _parse_host(authority if i < 0 else authority[i + 1:])
    if i < 0:
        return None, host
    userinfo = authority[:i]
    if not _valid_userinfo(userinfo):
        raise URLError("net/url: invalid userinfo")
    if b":" not in userinfo:
        return (_unescape(userinfo, _USER_PASSWORD), None), host
    name, _, password = userinfo.partition(b":")
    return (_unescape(name, _USER_PASSWORD), _unescape(password, _USER_PASSWORD)), host


def _parse(raw: bytes, *, via_request: bool) -> _URL:
    """``url.parse``."""
    if any(c < 0x20 or c == 0x7F for c in raw):
        raise URLError("net/url: invalid control character in URL")
    if raw == b"" and via_request:
        raise URLError("empty url")
    url = _URL()
    if raw == b"*":
        url.path = b"*"
        return url
    scheme, rest = _get_scheme(raw)
    url.scheme = scheme.lower()
    if rest.endswith(b"?") and rest.count(b"?") == 1:
        url.force_query = True
        rest = rest[:-1]
    else:
        rest, _, url.raw_query = rest.partition(b"?")
    if not rest.startswith(b"/"):
        if url.scheme:
            url.opaque = rest  # a rootless path after a scheme (RFC 3986) is opaque
            return url
        if via_request:
            raise URLError("invalid URI for request")
        if b":" in rest.split(b"/", 1)[0]:
            raise URLError("first path segment in URL cannot contain colon")
    if (url.scheme or not via_request and not rest.startswith(b"///")) and rest.startswith(b"//"):
        authority, rest = rest[2:], b""
        i = authority.find(b"/")
        if i >= 0:
            authority, rest = authority[:i], authority[i:]
        url.user, url.host = _parse_authority(authority)
    elif url.scheme and rest.startswith(b"/"):
        url.omit_host = True
    url.set_path(rest)
    return url


def _error(raw: bytes, err: URLError) -> URLError:
    """``*url.Error``: ``parse "<url>": <err>``."""
    return URLError(f"parse {k8s_go.quote(raw)}: {err}")


def parse_request_uri(raw: bytes) -> _URL:
    try:
        return _parse(raw, via_request=True)
    except URLError as exc:
        raise _error(raw, exc) from None


def parse(raw: bytes) -> _URL:
    """``url.Parse``: the fragment is cut off first."""
    u, _, fragment = raw.partition(b"#")
    try:
        url = _parse(u, via_request=False)
    except URLError as exc:
        raise _error(u, exc) from None
    if fragment:
        try:
            url.set_fragment(fragment)
        except URLError as exc:
            raise _error(raw, exc) from None
    return url


def _split_host_port(host_port: bytes) -> tuple[bytes, bytes]:
    host, port = host_port, b""
    colon = host.rfind(b":")
    if colon != -1 and _valid_optional_port(host[colon:]):
        host, port = host[:colon], host[colon + 1:]
    if host.startswith(b"[") and host.endswith(b"]"):
        host = host[1:-1]
    return host, port


def _query(raw_query: bytes) -> dict[str, list[str]]:
    """``URL.Query()``: ``ParseQuery`` that silently drops malformed pairs."""
    found: dict[str, list[str]] = {}
    for pair in raw_query.split(b"&"):
        if b";" in pair or not pair:
            continue
        key, _, value = pair.partition(b"=")
        try:
            key, value = _unescape(key, _QUERY_COMPONENT), _unescape(value, _QUERY_COMPONENT)
        except URLError:
            continue
        found.setdefault(_text(key), []).append(_text(value))
    return found


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


# -- CEL functions ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def url(text: str) -> Any:
    """``url(string)``, cached as :func:`webhook.cel.k8s_quantity.quantity` is."""
    raw = text.encode("utf-8")
    try:
        parse_request_uri(raw)  # the check: an absolute URI or an absolute path
        parsed = parse(raw)  # what is kept (ParseRequestURI mistakes a fragment for path or query)
    except URLError as exc:
        raise ValueError(f"URL parse error during conversion from string: {exc}") from None
    return k8s_types.new(k8s_types.URL, url=parsed.string(), scheme=parsed.scheme, host=parsed.host,
                         escaped_path=parsed.escaped_path(), raw_query=parsed.raw_query)


def is_url(text: str) -> bool:
    try:
        parse_request_uri(text.encode("utf-8"))
    except URLError:
        return False
    return True


def get_scheme(message: Any) -> str:
    return _text(message.scheme)


def get_host(message: Any) -> str:
    return _text(message.host)


def get_hostname(message: Any) -> str:
    return _text(_split_host_port(message.host)[0])


def get_port(message: Any) -> str:
    return _text(_split_host_port(message.host)[1])


def get_escaped_path(message: Any) -> str:
    return _text(message.escaped_path)


def get_query(message: Any) -> dict[str, list[str]]:
    return _query(message.raw_query)
