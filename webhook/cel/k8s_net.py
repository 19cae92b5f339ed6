"""``library.IP`` and ``library.CIDR`` (``k8s.io/apiserver/pkg/cel/library/{ip,cidr}.go``).

Addresses are parsed as Go's ``netip.ParseAddr``/``ParsePrefix`` parse them (``net/netip/netip.go``),
ported here with their error texts: users read them in denials (``IP Address "10.0.0.256" parse
error during conversion from string: ParseAddr("10.0.0.256"): IPv4 field has value >255``). Python's
``ipaddress`` accepts and words things differently (zones, leading zeros), so it is not used.

Upstream's own rules on top: zones and IPv4-mapped IPv6 addresses are refused by ``ip()``; a CIDR
keeps the address as written (``cidr('10.0.0.1/8').ip()`` is ``10.0.0.1``; ``masked()`` clears the
host bits). ``containsCIDR`` compares masked addresses, as fixed upstream in kubernetes#130450
(v1.33; older servers wrongly refuse ``cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16')``).
``containsIP`` given an unparsable string answers ``no such overload``, as upstream does (its
string overload passes the parse error where an IP is expected).

An address is its bytes: 4 for IPv4, 16 for IPv6, which is all ``netip.Addr ==`` compares once
zones are refused.
"""

from __future__ import annotations

import functools
from typing import Any

from webhook.cel import k8s_go, k8s_types

_HEX_DIGITS = {c: int(c, 16) for c in "0123456789abcdefABCDEF"}


class AddrError(ValueError):
    """``netip``'s ``parseAddrError``; the message is its ``Error()``."""

    def __init__(self, text: str, message: str, at: str = "") -> None:
        where = f" (at {k8s_go.quote(at)})" if at else ""
        super().__init__(f"ParseAddr({k8s_go.quote(text)}): {message}{where}")


def _ipv4_fields(text: str, off: int, end: int) -> bytes:
    """``parseIPv4Fields``: four octets of ``text[off:end]``."""
    fields: list[int] = []
    value, digits = 0, 0
    s = text[off:end]
    for i, char in enumerate(s):
        if "0" <= char <= "9":
            if digits == 1 and value == 0:
                raise AddrError(text, "IPv4 field has octet with leading zero")
            value = value * 10 + ord(char) - 48
            digits += 1
            if value > 255:
                raise AddrError(text, "IPv4 field has value >255")
        elif char == ".":
            if i == 0 or i == len(s) - 1 or s[i - 1] == ".":
                raise AddrError(text, "IPv4 field must have at least one digit", s[i:])
            if len(fields) == 3:
                raise AddrError(text, "IPv4 address too long")
            fields.append(value)
            value, digits = 0, 0
        else:
            raise AddrError(text, "unexpected character", s[i:])
    if len(fields) < 3:
        raise AddrError(text, "IPv4 address too short")
    fields.append(value)
    return bytes(fields)


def _ipv6(text: str) -> tuple[bytes, str]:
    """``parseIPv6``: 16 bytes and the zone."""
    s, zone = text, ""
    if "%" in s:
        s, _, zone = s.partition("%")
        if zone == "":
            raise AddrError(text, "zone must be a non-empty string")
    ip = bytearray(16)
    ellipsis = -1
    if len(s) >= 2 and s[0] == ":" and s[1] == ":":
        ellipsis = 0
        s = s[2:]
        if s == "":
            return bytes(ip), zone
    i = 0
    while i < 16:
        off, acc = 0, 0
        while off < len(s):
            digit = _HEX_DIGITS.get(s[off])
            if digit is None:
                break
            acc = (acc << 4) + digit
            if off > 3:
                raise AddrError(text, "each group must have 4 or less digits", s)
            if acc > 0xFFFF:
                raise AddrError(text, "IPv6 field has value >=2^16", s)
            off += 1
        if off == 0:
            raise AddrError(text, "each colon-separated field must have at least one digit", s)
        if off < len(s) and s[off] == ".":
            if ellipsis < 0 and i != 12:
                raise AddrError(text, "embedded IPv4 address must replace the final 2 fields of the address", s)
            if i + 4 > 16:
                raise AddrError(text, "too many hex fields to fit an embedded IPv4 at the end of the address", s)
            end = len(text) - (len(zone) + 1 if zone else 0)
            ip[i:i + 4] = _ipv4_fields(text, end - len(s), end)
            s = ""
            i += 4
            break
        ip[i], ip[i + 1] = acc >> 8, acc & 0xFF
        i += 2
        s = s[off:]
        if s == "":
            break
        if s[0] != ":":
            raise AddrError(text, "unexpected character, want colon", s)
        if len(s) == 1:
            raise AddrError(text, "colon must be followed by more characters", s)
        s = s[1:]
        if s[0] == ":":
            if ellipsis >= 0:
                raise AddrError(text, "multiple :: in address", s)
            ellipsis = i
            s = s[1:]
            if s == "":
                break
    if s != "":
        raise AddrError(text, "trailing garbage after address", s)
    if i < 16:
        if ellipsis < 0:
            raise AddrError(text, "address string too short")
        n = 16 - i
        ip[ellipsis + n:16] = ip[ellipsis:i]
        ip[ellipsis:ellipsis + n] = bytes(n)
    elif ellipsis >= 0:
        raise AddrError(text, "the :: must expand to at least one field of zeros")
    return bytes(ip), zone


def parse_addr(text: str) -> tuple[bytes, str]:
    """``netip.ParseAddr``: the address bytes (4 or 16) and the IPv6 zone."""
    for char in text:
        if char == ".":
            return _ipv4_fields(text, 0, len(text)), ""
        if char == ":":
            return _ipv6(text)
        if char == "%":
            raise AddrError(text, "missing IPv6 address")
    raise AddrError(text, "unable to parse IP")


def _is_4in6(address: bytes) -> bool:
    return len(address) == 16 and address[:12] == b"\x00" * 10 + b"\xff\xff"


def addr_string(address: bytes) -> str:
    """``Addr.String()``: dotted quad, or RFC 5952 IPv6 (longest run of two or more zero groups
    as ``::``, the first on a tie; ``::ffff:1.2.3.4`` for a mapped IPv4)."""
    if len(address) == 4:
        return ".".join(str(b) for b in address)
    if _is_4in6(address):
        return "::ffff:" + ".".join(str(b) for b in address[12:])
    groups = [address[k] << 8 | address[k + 1] for k in range(0, 16, 2)]
    start, stop = 255, 255
    for i in range(8):
        j = i
        while j < 8 and groups[j] == 0:
            j += 1
        if j - i >= 2 and j - i > stop - start:
            start, stop = i, j
    out: list[str] = []
    i = 0
    while i < 8:
        if i == start:
            out.append("::")
            i = stop
            if i >= 8:
                break
        elif i > 0:
            out.append(":")
        out.append(f"{groups[i]:x}")
        i += 1
    return "".join(out)


def parse_ip(text: str) -> bytes:
    """``parseIPAddr`` of the IP library: no zones, no IPv4-mapped IPv6."""
    try:
        address, zone = parse_addr(text)
    except AddrError as exc:
        raise ValueError(f"IP Address {k8s_go.quote(text)} parse error during conversion from string: {exc}") from None
    if zone:
        raise ValueError(f"IP address {k8s_go.quote(text)} with zone value is not allowed")
    if _is_4in6(address):
        raise ValueError(f"IPv4-mapped IPv6 address {k8s_go.quote(text)} is not allowed")
    return address


def parse_prefix(text: str) -> tuple[bytes, int]:
    """``parseCIDR`` of the CIDR library over ``netip.ParsePrefix``."""
    try:
        address, bits = _parse_prefix(text)
    except ValueError as exc:
        raise ValueError(f"network address parse error during conversion from string: {exc}") from None
    if _is_4in6(address):
        raise ValueError(f"IPv4-mapped IPv6 address {k8s_go.quote(text)} is not allowed")
    return address, bits


def _parse_prefix(text: str) -> tuple[bytes, int]:
    def error(message: str) -> ValueError:
        return ValueError(f"netip.ParsePrefix({k8s_go.quote(text)}): {message}")

    i = text.rfind("/")
    if i < 0:
        raise error("no '/'")
    try:
        address, zone = parse_addr(text[:i])
    except AddrError as exc:
        raise error(str(exc)) from None
    if zone:
        raise error("IPv6 zones cannot be present in a prefix")
    bits_text = text[i + 1:]
    # strconv.Atoi accepts a sign and leading zeros; ParsePrefix does not.
    if len(bits_text) > 1 and not "1" <= bits_text[0] <= "9":
        raise error(f"bad bits after slash: {k8s_go.quote(bits_text)}")
    try:
        bits = k8s_go.parse_int(bits_text)
    except k8s_go.NumError:
        raise error(f"bad bits after slash: {k8s_go.quote(bits_text)}") from None
    if not 0 <= bits <= len(address) * 8:
        raise error("prefix length out of range")
    return address, bits


def _masked(address: bytes, bits: int) -> bytes:
    size = len(address) * 8
    value = int.from_bytes(address, "big") & (((1 << bits) - 1) << (size - bits))
    return value.to_bytes(len(address), "big")


def _contains(prefix: bytes, bits: int, address: bytes) -> bool:
    """``Prefix.Contains``: same family, same first ``bits`` bits."""
    return len(prefix) == len(address) and _masked(prefix, bits) == _masked(address, bits)


# -- CEL functions ---------------------------------------------------------------------------------


def _ip_message(address: bytes) -> Any:
    return k8s_types.new(k8s_types.IP, address=address)


def _cidr_message(address: bytes, bits: int) -> Any:
    return k8s_types.new(k8s_types.CIDR, address=address, bits=bits)


def _address(message: Any) -> bytes:
    address = bytes(message.address)
    if len(address) not in (4, 16):
        raise ValueError("no such overload")  # a hand-built net.IP{...}
    return address


def _prefix(message: Any) -> tuple[bytes, int]:
    address, bits = _address(message), int(message.bits)
    if bits > len(address) * 8:
        raise ValueError("no such overload")
    return address, bits


@functools.lru_cache(maxsize=4096)
def ip(text: str) -> Any:
    """``ip(string)``, cached as :func:`webhook.cel.k8s_quantity.quantity` is."""
    return _ip_message(parse_ip(text))


def is_ip(text: str) -> bool:
    try:
        parse_ip(text)
    except ValueError:
        return False
    return True


def ip_is_canonical(text: str) -> bool:
    """``ip.isCanonical``: an error for a non-address, else whether Go would print it so."""
    return addr_string(parse_ip(text)) == text


def ip_string(message: Any) -> str:
    return addr_string(_address(message))


def family(message: Any) -> int:
    return 4 if len(_address(message)) == 4 else 6


def is_unspecified(message: Any) -> bool:
    return not any(_address(message))


def is_loopback(message: Any) -> bool:
    address = _address(message)
    return address[0] == 127 if len(address) == 4 else address == bytes(15) + b"\x01"


def is_link_local_multicast(message: Any) -> bool:
    address = _address(message)
    if len(address) == 4:
        return address[:3] == b"\xe0\x00\x00"
    return address[0] == 0xFF and address[1] & 0x0F == 0x02


def is_link_local_unicast(message: Any) -> bool:
    address = _address(message)
    if len(address) == 4:
        return address[:2] == b"\xa9\xfe"
    return address[0] == 0xFE and address[1] & 0xC0 == 0x80


def is_global_unicast(message: Any) -> bool:
    """``Addr.IsGlobalUnicast``: not unspecified, broadcast, loopback, multicast or link-local
    unicast (private ranges count as global, as in package net)."""
    address = _address(message)
    if len(address) == 4:
        if address in (bytes(4), b"\xff\xff\xff\xff"):
            return False
        multicast = address[0] & 0xF0 == 0xE0
    else:
        if address == bytes(16):
            return False
        multicast = address[0] == 0xFF
    return not (is_loopback(message) or multicast or is_link_local_unicast(message))


def _string_to_cidr(text: str) -> tuple[bytes, int]:
    """``stringToCIDR`` wraps ``parseCIDR``'s error once more: upstream's texts carry the prefix
    twice (``network address parse error during conversion from string: network address parse
    error during conversion from string: netip.ParsePrefix("10.0.0.0/"): bad bits after slash: ""``)."""
    try:
        return parse_prefix(text)
    except ValueError as exc:
        raise ValueError(f"network address parse error during conversion from string: {exc}") from None


@functools.lru_cache(maxsize=4096)
def cidr(text: str) -> Any:
    """``cidr(string)``, cached as :func:`webhook.cel.k8s_quantity.quantity` is."""
    return _cidr_message(*_string_to_cidr(text))


def is_cidr(text: str) -> bool:
    try:
        parse_prefix(text)
    except ValueError:
        return False
    return True


def cidr_string(message: Any) -> str:
    address, bits = _prefix(message)
    return f"{addr_string(address)}/{bits}"


def contains_ip(message: Any, other: Any) -> bool:
    address, bits = _prefix(message)
    return _contains(address, bits, _address(other))


def contains_ip_string(message: Any, text: str) -> bool:
    try:
        other = parse_ip(text)
    except ValueError:
        raise ValueError("no such overload") from None
    address, bits = _prefix(message)
    return _contains(address, bits, other)


def contains_cidr(message: Any, other: Any) -> bool:
    address, bits = _prefix(message)
    other_address, other_bits = _prefix(other)
    return _contains(address, bits, other_address) and bits <= other_bits


def contains_cidr_string(message: Any, text: str) -> bool:
    other_address, other_bits = _string_to_cidr(text)
    address, bits = _prefix(message)
    return _contains(address, bits, other_address) and bits <= other_bits


def cidr_ip(message: Any) -> Any:
    return _ip_message(_prefix(message)[0])


def masked(message: Any) -> Any:
    address, bits = _prefix(message)
    return _cidr_message(_masked(address, bits), bits)


def prefix_length(message: Any) -> int:
    return _prefix(message)[1]
