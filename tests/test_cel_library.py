"""The Kubernetes CEL libraries with value types: quantity, URL, IP, CIDR and semver.

Each table mirrors an upstream test, case for case, with upstream's expressions and expectations:
a result, an exact runtime error text (``Error``), an upstream regular expression for it
(``ErrorLike``), a compile error pattern (``CompileErrorLike``), or a value of one of the new types,
given as another expression it must equal (``Same``). Where upstream compares a Go value we compare
in CEL, with the type's own equality. Cases of ours, on behaviour the upstream tests leave out, are
in separate tables below them.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from webhook.cel import runtime

DECLARED = runtime.Declarations()


@dataclasses.dataclass(frozen=True)
class Error:
    text: str


@dataclasses.dataclass(frozen=True)
class ErrorLike:
    pattern: str


@dataclasses.dataclass(frozen=True)
class CompileErrorLike:
    pattern: str


@dataclasses.dataclass(frozen=True)
class Same:
    expression: str


def _result(source: str, values: dict[str, Any] | None = None) -> runtime.Result:
    program = runtime.compile(source, declared=DECLARED, returns=None)
    return runtime.evaluate(program, runtime.activation(values or {"object": {}}, declared=DECLARED))


def check(source: str, expected: Any, values: dict[str, Any] | None = None) -> None:
    if isinstance(expected, CompileErrorLike):
        with pytest.raises(runtime.CompileError) as raised:
            runtime.compile(source, declared=DECLARED, returns=None)
        assert re.search(expected.pattern, str(raised.value)), str(raised.value)
        return
    result = _result(source, values)
    if isinstance(expected, Error):
        assert result.error == expected.text
    elif isinstance(expected, ErrorLike):
        assert result.error is not None and re.search(expected.pattern, result.error), result.error
    elif isinstance(expected, Same):
        assert result.error is None, result.error
        assert result.value == _result(expected.expression, values).value
    else:
        assert result.error is None, result.error
        assert result.value == expected
        assert type(result.value) is type(expected)


# staging/src/k8s.io/apiserver/pkg/cel/library/quantity_test.go, TestQuantity (the cases of the
# v1.34/v1.35 library: a newer stored version adds mul/div/divInt, which no release has yet).
QUANTITY_UPSTREAM = [
    ("parse", 'quantity("12Mi")', Same('quantity("12582912")')),
    ("parseInvalidSuffix", 'quantity("10Mo")', ErrorLike("quantities must match the regular expression.*")),
    ("parseInvalidSuffixPassesRegex", 'quantity("10Mm")', ErrorLike("unable to parse quantity's suffix")),
    ("isQuantity", 'isQuantity("20")', True),
    ("isQuantity_megabytes", 'isQuantity("20M")', True),
    ("isQuantity_mebibytes", 'isQuantity("20Mi")', True),
    ("isQuantity_invalidSuffix", 'isQuantity("20Mo")', False),
    ("isQuantity_passingRegex", 'isQuantity("10Mm")', False),
    ("isQuantity_noOverload", "isQuantity([1, 2, 3])",
     CompileErrorLike("found no matching overload for 'isQuantity' applied to.*")),
    ("equality_reflexivity", 'quantity("200M") == quantity("200M")', True),
    ("equality_symmetry", 'quantity("200M") == quantity("0.2G") && quantity("0.2G") == quantity("200M")', True),
    ("equality_transitivity", 'quantity("2M") == quantity("0.002G") && quantity("2000k") == quantity("2M") '
                              '&& quantity("0.002G") == quantity("2000k")', True),
    ("inequality", 'quantity("200M") == quantity("0.3G")', False),
    ("quantity_less", 'quantity("50M").isLessThan(quantity("50Mi"))', True),
    ("quantity_less_obvious", 'quantity("50M").isLessThan(quantity("100M"))', True),
    ("quantity_less_false", 'quantity("100M").isLessThan(quantity("50M"))', False),
    ("quantity_greater", 'quantity("50Mi").isGreaterThan(quantity("50M"))', True),
    ("quantity_greater_obvious", 'quantity("150Mi").isGreaterThan(quantity("100Mi"))', True),
    ("quantity_greater_false", 'quantity("50M").isGreaterThan(quantity("100M"))', False),
    ("compare_equal", 'quantity("200M").compareTo(quantity("0.2G"))', 0),
    ("compare_less", 'quantity("50M").compareTo(quantity("50Mi"))', -1),
    ("compare_greater", 'quantity("50Mi").compareTo(quantity("50M"))', 1),
    ("add_quantity", 'quantity("50k").add(quantity("20")) == quantity("50.02k")', True),
    ("add_int", 'quantity("50k").add(20).isLessThan(quantity("50020"))', False),
    ("sub_quantity", 'quantity("50k").sub(quantity("20")) == quantity("49.98k")', True),
    ("sub_int", 'quantity("50k").sub(20) == quantity("49980")', True),
    ("arith_chain_1", 'quantity("50k").add(20).sub(quantity("100k")).asInteger()', -49980),
    ("arith_chain", 'quantity("50k").add(20).sub(quantity("100k")).sub(-50000).asInteger()', 20),
    ("as_integer", 'quantity("50k").asInteger()', 50000),
    ("as_integer_error", 'quantity("9999999999999999999999999999999999999G").asInteger()',
     ErrorLike("cannot convert value to integer")),
    ("is_integer", 'quantity("9999999999999999999999999999999999999G").isInteger()', False),
    ("is_integer", 'quantity("50").isInteger()', True),
    ("as_float", 'quantity("50.703k").asApproximateFloat()', 50703.0),
]

# staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/validation_test.go,
# TestValidationExpressions "quantity" (self.val1 = "20", self.val2 = "200M"; self is object here).
QUANTITY_CRD_UPSTREAM = [
    "isQuantity(object.val1)",
    "isQuantity(object.val2)",
    'isQuantity("20Mi")',
    'quantity(object.val2) == quantity("0.2G") && quantity("0.2G") == quantity("200M")',
    'quantity("2M") == quantity("0.002G") && quantity("2000k") == quantity("2M") && quantity("0.002G") == quantity("2000k")',
    'quantity(object.val1).isLessThan(quantity("100M"))',
    'quantity(object.val2).isGreaterThan(quantity("50M"))',
    'quantity(object.val2).compareTo(quantity("0.2G")) == 0',
    'quantity("50k").add(quantity(object.val1)) == quantity("50.02k")',
    'quantity("50k").sub(quantity(object.val1)) == quantity("49980")',
    "quantity(object.val1).isInteger()",
]

# Ours: resource.ParseQuantity's corners (apimachinery/pkg/api/resource/quantity.go), sign, types.
QUANTITY_OURS = [
    ("sign is a global function upstream", 'sign(quantity("-5m")) == -1 && sign(quantity("0")) == 0', True),
    ("type() compares", 'type(quantity("1")) == kubernetes.Quantity', True),
    ("an empty string", 'quantity("")', ErrorLike("^quantities must match the regular expression")),
    ("a space", 'quantity(" 1")', ErrorLike("^quantities must match the regular expression")),
    ("a lone sign is zero, as in Go", 'quantity("-") == quantity("0") && quantity(".") == quantity("0")', True),
    ("a lone binary suffix is zero, as in Go", 'quantity("Mi") == quantity("0")', True),
    ("e alone is no suffix", 'quantity("1e")', Error("unable to parse quantity's suffix")),
    ("E alone is exa", 'quantity("1E") == quantity("1000P")', True),
    ("a lower-case binary suffix", 'isQuantity("1ki")', False),
    ("below 1n rounds up to 1n", 'quantity("1e-12") == quantity("1n") && quantity("-0.1n") == quantity("-1n")', True),
    ("binary values cap at 2^63-1", 'quantity("8Ei").asInteger()', 2**63 - 1),
    ("the exponent is truncated to int32", 'quantity("1e4294967296") == quantity("1")', True),
    ("a huge exponent compares without expanding", 'quantity("1e999999999").isGreaterThan(quantity("8Ei"))', True),
    ("fractions subtract exactly", 'quantity("0.1").add(quantity("0.2")) == quantity("300m")', True),
    ("an int is added exactly", 'quantity("1.5").add(1).asApproximateFloat()', 2.5),
    ("out of the float range", 'quantity("1e400").asApproximateFloat() > 1e308', True),
    ("binary and decimal forms of one value", 'quantity("1536Mi") == quantity("1.5Gi")', True),
    ("milli and whole forms of one value", 'quantity("1000m") == quantity("1")', True),
    ("asInteger of a fraction", 'quantity("1500m").asInteger()', Error("cannot convert value to integer")),
    ("a member call's wrong argument, as cel-go words it", 'quantity("1").isGreaterThan(1)',
     CompileErrorLike(r"found no matching overload for 'isGreaterThan' applied to 'kubernetes\.Quantity\.\(int\)'")),
    ("the wrong type through dyn", 'dyn(semver("1.0.0")).asInteger()', Error("no such overload")),
]

# staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/validation_test.go,
# TestValidationExpressions "URL parsing" (self.url below is object.url).
URL_UPSTREAM = [
    "url('/path').getScheme() == ''",
    "url('https://example.com/').getScheme() == 'https'",
    "url('https://example.com:80/').getHost() == 'example.com:80'",
    "url('https://example.com/').getHost() == 'example.com'",
    "url('https://[::1]:80/').getHost() == '[::1]:80'",
    "url('https://[::1]/').getHost() == '[::1]'",
    "url('/path').getHost() == ''",
    "url('https://example.com:80/').getHostname() == 'example.com'",
    "url('https://127.0.0.1/').getHostname() == '127.0.0.1'",
    "url('https://[::1]/').getHostname() == '::1'",
    "url('/path').getHostname() == ''",
    "url('https://example.com:80/').getPort() == '80'",
    "url('https://example.com/').getPort() == ''",
    "url('/path').getPort() == ''",
    "url('https://example.com/path').getEscapedPath() == '/path'",
    "url('https://example.com/with space/').getEscapedPath() == '/with%20space/'",
    "url('https://example.com').getEscapedPath() == ''",
    "url('https://example.com/path?k1=a&k2=b&k2=c').getQuery() == { 'k1': ['a'], 'k2': ['b', 'c']}",
    "url('https://example.com/path?key with spaces=value with spaces').getQuery() == "
    "{ 'key with spaces': ['value with spaces']}",
    "url('https://example.com/path?').getQuery() == {}",
    "url('https://example.com/path').getQuery() == {}",
    "url(object.url).getScheme() == 'https'",
    "url(object.url).getHost() == 'kubernetes.io:80'",
    "url(object.url).getHostname() == 'kubernetes.io'",
    "url(object.url).getPort() == '80'",
    "url(object.url).getEscapedPath() == '/docs/home'",
    "url(object.url).getQuery() == {'k1': ['a'], 'k2': ['b', 'c']}",
    "isURL('https://user:pass@example.com:80/path?query=val#fragment')",
    "isURL('/path') == true",
    "isURL('https://a:b:c/') == false",
    "isURL('../relative-path') == false",
]
URL_OBJECT = {"object": {"url": "https://user:pass@kubernetes.io:80/docs/home?k1=a&k2=b&k2=c#anchor"}}

# Ours: url.ParseRequestURI's error texts (net/url/url.go) and the examples of urls.go's comment.
URL_OURS = [
    ("a relative path", "url('../relative-path')",
     Error('URL parse error during conversion from string: parse "../relative-path": invalid URI for request')),
    ("two ports", "url('https://a:b:c/')",
     Error('URL parse error during conversion from string: parse "https://a:b:c/": invalid port ":c" after host')),
    ("an empty string", "url('')", Error('URL parse error during conversion from string: parse "": empty url')),
    ("a bad escape", "url('/a%zz')",
     Error('URL parse error during conversion from string: parse "/a%zz": invalid URL escape "%zz"')),
    ("a control character", "url('/a\\tb')", Error(
        'URL parse error during conversion from string: parse "/a\\tb": net/url: invalid control character in URL')),
    ("no scheme before the colon", "url(':x')",
     Error('URL parse error during conversion from string: parse ":x": missing protocol scheme')),
    ("a fragment is not part of the path", "url('https://example.com/a#frag').getEscapedPath()", "/a"),
    ("the scheme is lowered", "url('HTTPS://example.com/').getScheme()", "https"),
    ("URLs equal as strings", "url('HTTPS://example.com/a%2fb') == url('https://example.com/a%2fb')", True),
    ("and differ as strings", "url('https://example.com/a%2fb') == url('https://example.com/a/b')", False),
    ("an encoded path kept as written", "url('https://example.com/a%2fb').getEscapedPath()", "/a%2fb"),
    ("a query without value", "url('/p?a&b=&c=1').getQuery()", {"a": [""], "b": [""], "c": ["1"]}),
    ("a semicolon drops the pair", "url('/p?a=1;b=2&c=3').getQuery()", {"c": ["3"]}),
    ("plus is a space in the query", "url('/p?q=a+b%2B').getQuery()", {"q": ["a b+"]}),
    ("non-ASCII is escaped in the path", "url('/ü').getEscapedPath()", "/%C3%BC"),
    ("the type", "type(url('/a')) == kubernetes.URL", True),
]

# staging/src/k8s.io/apiserver/pkg/cel/library/ip_test.go, TestIP (errors compared exactly, as there).
IP_UPSTREAM = [
    ("parse ipv4", 'ip("192.168.0.1")', Same('cidr("192.168.0.1/32").ip()')),
    ("parse invalid ipv4", 'ip("192.168.0.1.0")', Error(
        'IP Address "192.168.0.1.0" parse error during conversion from string: '
        'ParseAddr("192.168.0.1.0"): IPv4 address too long')),
    ("isIP valid ipv4", 'isIP("192.168.0.1")', True),
    ("isIP invalid ipv4", 'isIP("192.168.0.1.0")', False),
    ("ip.isCanonical valid ipv4", 'ip.isCanonical("127.0.0.1")', True),
    ("ip.isCanonical invalid ipv4", 'ip.isCanonical("127.0.0.1.0")', Error(
        'IP Address "127.0.0.1.0" parse error during conversion from string: '
        'ParseAddr("127.0.0.1.0"): IPv4 address too long')),
    ("ipv4 family", 'ip("192.168.0.1").family()', 4),
    ("ipv4 isUnspecified true", 'ip("0.0.0.0").isUnspecified()', True),
    ("ipv4 isUnspecified false", 'ip("127.0.0.1").isUnspecified()', False),
    ("ipv4 isLoopback true", 'ip("127.0.0.1").isLoopback()', True),
    ("ipv4 isLoopback false", 'ip("1.2.3.4").isLoopback()', False),
    ("ipv4 isLinkLocalMulticast true", 'ip("224.0.0.1").isLinkLocalMulticast()', True),
    ("ipv4 isLinkLocalMulticast false", 'ip("224.0.1.1").isLinkLocalMulticast()', False),
    ("ipv4 isLinkLocalUnicast true", 'ip("169.254.169.254").isLinkLocalUnicast()', True),
    ("ipv4 isLinkLocalUnicast false", 'ip("192.168.0.1").isLinkLocalUnicast()', False),
    ("ipv4 isGlobalUnicast true", 'ip("192.168.0.1").isGlobalUnicast()', True),
    ("ipv4 isGlobalUnicast false", 'ip("255.255.255.255").isGlobalUnicast()', False),
    ("parse ipv6", 'ip("2001:db8::68")', Same('cidr("2001:db8::68/128").ip()')),
    ("parse invalid ipv6", 'ip("2001:db8:::68")', Error(
        'IP Address "2001:db8:::68" parse error during conversion from string: ParseAddr("2001:db8:::68"): '
        'each colon-separated field must have at least one digit (at ":68")')),
    ("isIP valid ipv6", 'isIP("2001:db8::68")', True),
    ("isIP invalid ipv4", 'isIP("2001:db8:::68")', False),
    ("ip.isCanonical valid ipv6", 'ip.isCanonical("2001:db8::68")', True),
    ("ip.isCanonical non-canonical ipv6", 'ip.isCanonical("2001:DB8::68")', False),
    ("ip.isCanonical invalid ipv6", 'ip.isCanonical("2001:db8:::68")', Error(
        'IP Address "2001:db8:::68" parse error during conversion from string: ParseAddr("2001:db8:::68"): '
        'each colon-separated field must have at least one digit (at ":68")')),
    ("ipv6 family", 'ip("2001:db8::68").family()', 6),
    ("ipv6 isUnspecified true", 'ip("::").isUnspecified()', True),
    ("ipv6 isUnspecified false", 'ip("::1").isUnspecified()', False),
    ("ipv6 isLoopback true", 'ip("::1").isLoopback()', True),
    ("ipv6 isLoopback false", 'ip("2001:db8::abcd").isLoopback()', False),
    ("ipv6 isLinkLocalMulticast true", 'ip("ff02::1").isLinkLocalMulticast()', True),
    ("ipv6 isLinkLocalMulticast false", 'ip("fd00::1").isLinkLocalMulticast()', False),
    ("ipv6 isLinkLocalUnicast true", 'ip("fe80::1").isLinkLocalUnicast()', True),
    ("ipv6 isLinkLocalUnicast false", 'ip("fd80::1").isLinkLocalUnicast()', False),
    ("ipv6 isGlobalUnicast true", 'ip("2001:db8::abcd").isGlobalUnicast()', True),
    ("ipv6 isGlobalUnicast false", 'ip("ff00::1").isGlobalUnicast()', False),
    ("passing cidr into isIP returns compile error", 'isIP(cidr("192.168.0.0/24"))',
     CompileErrorLike("found no matching overload for 'isIP' applied to '\\(net.CIDR\\)'")),
    ("converting an IP address to a string", 'string(ip("192.168.0.1"))', "192.168.0.1"),
    ("type of IP is net.IP", 'type(ip("192.168.0.1")) == net.IP', True),
]

# staging/src/k8s.io/apiserver/pkg/cel/library/cidr_test.go, TestCIDR.
_PARSE_PREFIX = "network address parse error during conversion from string: " * 2
CIDR_UPSTREAM = [
    ("compilation error for cidr(int)", "cidr(192168)",
     CompileErrorLike("found no matching overload for 'cidr' applied to '\\(int\\)'")),
    ("parse ipv4", 'cidr(dyn("192.168.0.0/24"))', Same('cidr("192.168.0.0/24").masked()')),
    ("parse invalid ipv4", 'cidr("192.168.0.0/")',
     Error(_PARSE_PREFIX + 'netip.ParsePrefix("192.168.0.0/"): bad bits after slash: ""')),
    ("contains IP ipv4 (IP)", 'cidr("192.168.0.0/24").containsIP(ip("192.168.0.1"))', True),
    ("does not contain IP ipv4 (IP)", 'cidr("192.168.0.0/24").containsIP(ip("192.168.1.1"))', False),
    ("contains IP ipv4 (string)", 'cidr("192.168.0.0/24").containsIP("192.168.0.1")', True),
    ("does not contain IP ipv4 (string)", 'cidr("192.168.0.0/24").containsIP("192.168.1.1")', False),
    ("contains CIDR ipv4 (CIDR)", 'cidr("192.168.0.0/24").containsCIDR(cidr("192.168.0.0/25"))', True),
    ("does not contain IP ipv4 (CIDR)", 'cidr("192.168.0.0/24").containsCIDR(cidr("192.168.0.0/23"))', False),
    ("contains CIDR ipv4 (string)", 'cidr("192.168.0.0/24").containsCIDR("192.168.0.0/25")', True),
    ("does not contain CIDR ipv4 (string)", 'cidr("192.168.0.0/24").containsCIDR("192.168.0.0/23")', False),
    ("returns IP ipv4", 'cidr("192.168.0.0/24").ip()', Same('ip("192.168.0.0")')),
    ("masks masked ipv4", 'cidr("192.168.0.0/24").masked()', Same('cidr("192.168.0.0/24")')),
    ("masks unmasked ipv4", 'cidr("192.168.0.1/24").masked()', Same('cidr("192.168.0.0/24")')),
    ("returns prefix length ipv4", 'cidr("192.168.0.0/24").prefixLength()', 24),
    ("parse ipv6", 'cidr("2001:db8::/32")', Same('cidr("2001:db8:0::/32")')),
    ("parse invalid ipv6", 'cidr("2001:db8::/")',
     Error(_PARSE_PREFIX + 'netip.ParsePrefix("2001:db8::/"): bad bits after slash: ""')),
    ("contains IP ipv6 (IP)", 'cidr("2001:db8::/32").containsIP(ip("2001:db8::1"))', True),
    ("does not contain IP ipv6 (IP)", 'cidr("2001:db8::/32").containsIP(ip("2001:dc8::1"))', False),
    ("contains IP ipv6 (string)", 'cidr("2001:db8::/32").containsIP("2001:db8::1")', True),
    ("does not contain IP ipv6 (string)", 'cidr("2001:db8::/32").containsIP("2001:dc8::1")', False),
    ("contains CIDR ipv6 (CIDR)", 'cidr("2001:db8::/32").containsCIDR(cidr("2001:db8::/33"))', True),
    ("does not contain IP ipv6 (CIDR)", 'cidr("2001:db8::/32").containsCIDR(cidr("2001:db8::/31"))', False),
    ("contains CIDR ipv6 (string)", 'cidr("2001:db8::/32").containsCIDR("2001:db8::/33")', True),
    ("does not contain CIDR ipv6 (string)", 'cidr("2001:db8::/32").containsCIDR("2001:db8::/31")', False),
    ("returns IP ipv6", 'cidr("2001:db8::/32").ip()', Same('ip("2001:db8::")')),
    ("masks masked ipv6", 'cidr("2001:db8::/32").masked()', Same('cidr("2001:db8::/32")')),
    ("masks unmasked ipv6", 'cidr("2001:db8:1::/32").masked()', Same('cidr("2001:db8::/32")')),
    ("returns prefix length ipv6", 'cidr("2001:db8::/32").prefixLength()', 32),
    ("converting a CIDR to a string", 'string(cidr("192.168.0.0/24"))', "192.168.0.0/24"),
    ("type of CIDR is net.CIDR", 'type(cidr("192.168.0.0/24")) == net.CIDR', True),
]

# staging/src/k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel/validation_test.go,
# TestValidationExpressions "IP and CIDR".
NET_CRD_UPSTREAM = [
    'isIP("192.168.0.1")',
    'ip.isCanonical("127.0.0.1")',
    'ip("192.168.0.1").family() > 0',
    'ip("0.0.0.0").isUnspecified()',
    'ip("127.0.0.1").isLoopback()',
    'ip("224.0.0.1").isLinkLocalMulticast()',
    'ip("192.168.0.1").isGlobalUnicast()',
    'type(ip("192.168.0.1")) == net.IP',
    'cidr("192.168.0.0/24").containsIP(ip("192.168.0.1"))',
    'cidr("192.168.0.0/24").containsCIDR("192.168.0.0/25")',
    'cidr("2001:db8::/32").containsCIDR(cidr("2001:db8::/33"))',
    'type(cidr("2001:db8::/32").ip()) == net.IP',
    "cidr('192.168.0.0/24') == cidr('192.168.0.0/24').masked()",
    "cidr('192.168.0.0/16').prefixLength() == 16",
    "cidr('::1/128').ip().family() == 6",
]

# Ours: netip's other error texts (net/netip/netip.go), the library's own refusals, the examples of
# ip.go/cidr.go's comments, and containsCIDR as fixed in kubernetes/kubernetes#130450.
NET_OURS = [
    ("a leading zero", 'ip("010.0.0.1")', Error('IP Address "010.0.0.1" parse error during conversion from string: '
                                                'ParseAddr("010.0.0.1"): IPv4 field has octet with leading zero')),
    ("an octet too large", 'ip("127.0.0.256")', Error('IP Address "127.0.0.256" parse error during conversion from '
                                                      'string: ParseAddr("127.0.0.256"): IPv4 field has value >255')),
    ("three colons", 'isIP(":::1")', False),
    ("no address at all", 'ip("foo")', Error(
        'IP Address "foo" parse error during conversion from string: ParseAddr("foo"): unable to parse IP')),
    ("a zone", 'ip("fe80::1%eth0")', Error('IP address "fe80::1%eth0" with zone value is not allowed')),
    ("a mapped IPv4", 'ip("::ffff:1.2.3.4")', Error('IPv4-mapped IPv6 address "::ffff:1.2.3.4" is not allowed')),
    ("a mapped IPv4 CIDR", 'cidr("::ffff:1.2.3.4/120")', Error(
        'network address parse error during conversion from string: '
        'IPv4-mapped IPv6 address "::ffff:1.2.3.4/120" is not allowed')),
    ("a prefix too long", 'cidr("192.168.0.0/33")',
     Error(_PARSE_PREFIX + 'netip.ParsePrefix("192.168.0.0/33"): prefix length out of range')),
    ("a prefix with a leading zero", 'isCIDR("10.0.0.0/08")', False),
    ("no slash", 'cidr("10.0.0.0")', Error(_PARSE_PREFIX + 'netip.ParsePrefix("10.0.0.0"): no \'/\'')),
    ("a bad address in a prefix", 'cidr("10.0.0/8")', Error(
        _PARSE_PREFIX + 'netip.ParsePrefix("10.0.0/8"): ParseAddr("10.0.0"): IPv4 address too short')),
    ("canonical IPv6 is lower case, zeros compressed", 'string(ip("2001:DB8:0:0:0:0:0:ABCD"))', "2001:db8::abcd"),
    ("the longest zero run is compressed", 'string(ip("1:0:0:2:0:0:0:3"))', "1:0:0:2::3"),
    ("a single zero group is not compressed", 'ip.isCanonical("2001:db8:0:1:1:1:1:1")', True),
    ("upper case is not canonical", 'ip.isCanonical("2001:DB8::ABCD")', False),
    ("IPs are equal by value", 'ip("::1") == ip("0:0:0:0:0:0:0:1")', True),
    ("the address is kept as written", 'string(cidr("192.168.0.1/24").ip())', "192.168.0.1"),
    ("so an unmasked CIDR differs from its masked form", "cidr('192.168.0.1/24') == cidr('192.168.0.1/24').masked()",
     False),
    ("contains a subnet at another address (kubernetes#130450)",
     "cidr('192.168.0.0/16').containsCIDR(cidr('192.168.10.0/24'))", True),
    ("contains a host route", "cidr('192.168.0.0/16').containsCIDR('192.168.0.1/32')", True),
    ("not across families", "cidr('0.0.0.0/0').containsIP(ip('::1'))", False),
    ("containsIP with a bad string", "cidr('10.0.0.0/8').containsIP('10.0.0.256')", Error("no such overload")),
    ("containsCIDR with a bad string", "cidr('10.0.0.0/8').containsCIDR('10.0.0.0/40')",
     Error(_PARSE_PREFIX + 'netip.ParsePrefix("10.0.0.0/40"): prefix length out of range')),
    ("string() of an IPv6 CIDR", 'string(cidr("2001:DB8::1/64"))', "2001:db8::1/64"),
    ("a member call's wrong argument", 'cidr("10.0.0.0/8").containsIP(1)',
     CompileErrorLike(r"applied to 'net\.CIDR\.\(int\)'")),
]

# staging/src/k8s.io/apiserver/pkg/cel/library/semver_test.go, TestSemver (library version 1, the
# API server's since v1.33).
SEMVER_UPSTREAM = [
    ("parse", 'semver("1.2.3")', Same('semver("1.2.3+build")')),
    ("parseInvalidVersion", 'semver("v1.0")', ErrorLike("No Major.Minor.Patch elements found")),
    ("isSemver", 'isSemver("1.2.3-beta.1+build.1")', True),
    ("isSemver_empty_false", 'isSemver("")', False),
    ("isSemver_v_prefix_false", 'isSemver("v1.0.0")', False),
    ("isSemver_v_leading_whitespace_false", 'isSemver(" 1.0.0")', False),
    ("isSemver_v_contains_whitespace_false", 'isSemver("1. 0.0")', False),
    ("isSemver_v_trailing_whitespace_false", 'isSemver("1.0.0 ")', False),
    ("isSemver_leading_zeros_false", 'isSemver("01.01.01")', False),
    ("isSemver_major_only_false", 'isSemver("1")', False),
    ("isSemver_major_minor_only_false", 'isSemver("1.1")', False),
    ("isSemver_empty_normalize_false", 'isSemver("", true)', False),
    ("isSemver_v_leading_whitespace_normalize_false", 'isSemver(" 1.0.0", true)', False),
    ("isSemver_v_contains_whitespace_normalize_false", 'isSemver("1. 0.0", true)', False),
    ("isSemver_v_trailing_whitespace_normalize_false", 'isSemver("1.0.0 ", true)', False),
    ("isSemver_v_prefix_normalize_true", 'isSemver("v1.0.0", true)', True),
    ("isSemver_leading_zeros_normalize_true", 'isSemver("01.01.01", true)', True),
    ("isSemver_major_only_normalize_true", 'isSemver("1", true)', True),
    ("isSemver_major_minor_only_normalize_true", 'isSemver("1.1", true)', True),
    ("isSemver_noOverload", "isSemver([1, 2, 3])",
     CompileErrorLike("found no matching overload for 'isSemver' applied to.*")),
    ("equality_normalize", 'semver("v01.01", true) == semver("1.1.0")', True),
    ("equality_reflexivity", 'semver("1.2.3") == semver("1.2.3")', True),
    ("inequality", 'semver("1.2.3") == semver("1.0.0")', False),
    ("semver_less", 'semver("1.0.0").isLessThan(semver("1.2.3"))', True),
    ("semver_less_false", 'semver("1.0.0").isLessThan(semver("1.0.0"))', False),
    ("semver_greater", 'semver("1.2.3").isGreaterThan(semver("1.0.0"))', True),
    ("semver_greater_false", 'semver("1.0.0").isGreaterThan(semver("1.0.0"))', False),
    ("compare_equal", 'semver("1.2.3").compareTo(semver("1.2.3"))', 0),
    ("compare_less", 'semver("1.0.0").compareTo(semver("1.2.3"))', -1),
    ("compare_greater", 'semver("1.2.3").compareTo(semver("1.0.0"))', 1),
    ("major", 'semver("1.2.3").major()', 1),
    ("minor", 'semver("1.2.3").minor()', 2),
    ("patch", 'semver("1.2.3").patch()', 3),
]

# Ours: blang/semver v4's precedence and error texts, and semverlib.go's comment examples.
SEMVER_OURS = [
    ("a pre-release sorts before its release", 'semver("1.0.0-alpha").isLessThan(semver("1.0.0"))', True),
    ("numeric identifiers compare as numbers", 'semver("1.0.0-alpha.2").isLessThan(semver("1.0.0-alpha.10"))', True),
    ("numeric identifiers sort before names", 'semver("1.0.0-1").isLessThan(semver("1.0.0-alpha"))', True),
    ("a longer pre-release sorts after", 'semver("1.0.0-alpha").isLessThan(semver("1.0.0-alpha.1"))', True),
    ("build metadata is ignored", 'semver("1.0.0+a") == semver("1.0.0+b")', True),
    ("leading zeros", 'semver("01.1.1")', Error('Major number must not contain leading zeroes "01"')),
    ("a letter", 'semver("1.x.1")', Error('Invalid character(s) found in minor number "x"')),
    ("an empty pre-release", 'semver("1.0.0-")', Error("Prerelease is empty")),
    ("a short version with metadata", 'semver("1.0-rc", true)',
     Error("short version cannot contain PreRelease/Build meta data")),
    ("a number too large", 'semver("1.0.99999999999999999999")', Error(
        'strconv.ParseUint: parsing "99999999999999999999": value out of range')),
    ("semver and quantity do not mix", 'semver("1.0.0").isLessThan(quantity("1"))',
     CompileErrorLike(r"applied to 'kubernetes\.Semver\.\(kubernetes\.Quantity\)'")),
    ("the type", 'type(semver("1.0.0")) == kubernetes.Semver', True),
]


def _ids(table: list[tuple[str, str, Any]]) -> list[str]:
    return [name for name, _, _ in table]


@pytest.mark.parametrize(("name", "source", "expected"), QUANTITY_UPSTREAM, ids=_ids(QUANTITY_UPSTREAM))
def test_quantity_as_upstream(name: str, source: str, expected: Any) -> None:
    check(source, expected)


@pytest.mark.parametrize("source", QUANTITY_CRD_UPSTREAM)
def test_quantity_rules_of_the_crd_tests_hold(source: str) -> None:
    check(source, True, {"object": {"val1": "20", "val2": "200M"}})


@pytest.mark.parametrize(("name", "source", "expected"), QUANTITY_OURS, ids=_ids(QUANTITY_OURS))
def test_quantity_corners(name: str, source: str, expected: Any) -> None:
    check(source, expected)


@pytest.mark.parametrize("source", URL_UPSTREAM)
def test_url_rules_of_the_crd_tests_hold(source: str) -> None:
    check(source, True, URL_OBJECT)


@pytest.mark.parametrize(("name", "source", "expected"), URL_OURS, ids=_ids(URL_OURS))
def test_url_corners(name: str, source: str, expected: Any) -> None:
    check(source, expected)


@pytest.mark.parametrize(("name", "source", "expected"), IP_UPSTREAM, ids=_ids(IP_UPSTREAM))
def test_ip_as_upstream(name: str, source: str, expected: Any) -> None:
    check(source, expected)


@pytest.mark.parametrize(("name", "source", "expected"), CIDR_UPSTREAM, ids=_ids(CIDR_UPSTREAM))
def test_cidr_as_upstream(name: str, source: str, expected: Any) -> None:
    check(source, expected)


@pytest.mark.parametrize("source", NET_CRD_UPSTREAM)
def test_ip_and_cidr_rules_of_the_crd_tests_hold(source: str) -> None:
    check(source, True)


@pytest.mark.parametrize(("name", "source", "expected"), NET_OURS, ids=_ids(NET_OURS))
def test_ip_and_cidr_corners(name: str, source: str, expected: Any) -> None:
    check(source, expected)


@pytest.mark.parametrize(("name", "source", "expected"), SEMVER_UPSTREAM, ids=_ids(SEMVER_UPSTREAM))
def test_semver_as_upstream(name: str, source: str, expected: Any) -> None:
    check(source, expected)


@pytest.mark.parametrize(("name", "source", "expected"), SEMVER_OURS, ids=_ids(SEMVER_OURS))
def test_semver_corners(name: str, source: str, expected: Any) -> None:
    check(source, expected)


def test_a_composited_variable_keeps_its_quantity() -> None:
    """A variable's value leaves one evaluation as a message and enters the next activation as one."""
    limit = _result("quantity(object.limit)", {"object": {"limit": "1.5Gi"}})
    assert limit.error is None
    later = runtime.compile("variables.limit.isLessThan(quantity('2Gi')) && variables.limit == quantity('1536Mi')",
                            declared=DECLARED)
    bound = runtime.activation({"object": {}, "variables": {"limit": limit.value}}, declared=DECLARED)
    assert runtime.evaluate(later, bound) == runtime.Result(value=True)


def test_values_of_the_new_types_travel_in_lists_and_maps() -> None:
    check("[quantity('1'), quantity('2')].exists(q, q.isGreaterThan(quantity('1500m')))", True)
    check("{'a': ip('10.0.0.1')}.a.family()", 4)
    check("quantity('1') in [quantity('1000m')]", True)
    check("optional.of(url('/a')).value().getEscapedPath()", "/a")


def test_a_validation_must_still_be_a_bool() -> None:
    with pytest.raises(runtime.CompileError, match="^must evaluate to bool but got kubernetes.Quantity$"):
        runtime.compile("quantity('1')", declared=DECLARED)


def test_literal_messages_are_refused_at_evaluation() -> None:
    """cel-go has no literal syntax for these opaque types; here one compiles but is no value."""
    check("kubernetes.Quantity{mantissa: 'x'}.isInteger()", Error("no such overload"))


# Go 1.24.8/1.25.2's stricter IP-literal hosts (CVE-2025-47912), in the API servers' builds.
URL_IP_LITERALS = [
    ("an IPv6 literal with a port", "url('https://[2001:db8::1]:8443/').getHostname()", "2001:db8::1"),
    ("an IPv6 literal with a zone", "url('https://[fe80::1%25eth0]/').getHostname()", "fe80::1%eth0"),
    ("an IPv4 literal in brackets", "url('https://[10.0.0.1]/')",
     Error('URL parse error during conversion from string: parse "https://[10.0.0.1]/": invalid IP-literal')),
    ("not an address in brackets", "url('https://[example.com]/')", Error(
        'URL parse error during conversion from string: parse "https://[example.com]/": invalid host: '
        'ParseAddr("example.com"): unexpected character (at "example.com")')),
    ("a bracket inside the host", "isURL('https://a[::1]/')", False),
]


@pytest.mark.parametrize(("name", "source", "expected"), URL_IP_LITERALS, ids=_ids(URL_IP_LITERALS))
def test_url_ip_literals(name: str, source: str, expected: Any) -> None:
    check(source, expected)


def test_jsonpatch_escape_key_in_the_mutation_environment() -> None:
    # pkg/cel/library/jsonpatch.go: "~" first, then "/", in one pass.
    declared = runtime.Declarations(patch_types=True)
    program = runtime.compile("jsonpatch.escapeKey('k8s.io/my~label')", declared=declared, returns=None)
    bound = runtime.activation({"object": {}, "variables": {}, "request": {}}, declared=declared)
    assert runtime.evaluate(program, bound).value == "k8s.io~1my~0label"


def test_find_uses_re2_so_no_pattern_runs_away() -> None:
    # Kubernetes' find/findAll use Go's regexp (RE2): linear time, no backreferences.
    declared = runtime.Declarations()
    bound = runtime.activation({"object": {"s": "a" * 20000 + "b"}, "variables": {}, "request": {}}, declared=declared)
    hostile = runtime.compile("object.s.find('(a+)+$') == ''", declared=declared)
    assert runtime.evaluate(hostile, bound).value is True  # no match found, in linear time
    backreference = runtime.compile(r"object.s.find('(a)\\1') == ''", declared=declared)
    error = runtime.evaluate(backreference, bound).error
    assert error is not None and error.startswith("error parsing regexp: invalid escape sequence")


# cel-go ext/comprehensions.go (TwoVarComprehensions, in the base environment since 1.32): transformMap
# and transformMapEntry build their result with cel.@mapInsert, which cel-expr-python's runtime lacks;
# a duplicate key is types.mutableMap.Insert's "insert failed: key %v already exists".
TWO_VARIABLE_MAPS = [
    ("transformMap", "{'a': 1, 'b': 2}.transformMap(k, v, v * 10)", {"a": 10, "b": 20}),
    ("transformMap filtered", "{'a': 1, 'b': 3}.transformMap(k, v, v > 1, v + 1)", {"b": 4}),
    ("transformMap of a list", "['x', 'y'].transformMap(i, v, v + string(i)) == {0: 'x0', 1: 'y1'}", True),
    ("transformMapEntry", "{'a': 1}.transformMapEntry(k, v, {k + 'x': v})", {"ax": 1}),
    ("transformMapEntry duplicate", "{'a': 1, 'b': 2}.transformMapEntry(k, v, {'same': v})",
     Error("insert failed: key same already exists")),
    ("transformMapEntry duplicate bool", "{'a': 1, 'b': 2}.transformMapEntry(k, v, {true: v})",
     Error("insert failed: key true already exists")),
    ("transformList", "[1, 2].transformList(i, v, i + v)", [1, 3]),
]


@pytest.mark.parametrize(("name", "source", "expected"), TWO_VARIABLE_MAPS, ids=_ids(TWO_VARIABLE_MAPS))
def test_two_variable_comprehensions_build_maps(name: str, source: str, expected: Any) -> None:
    check(source, expected)
