"""The Kubernetes CEL libraries (``k8s.io/apiserver/pkg/cel/library``) on top of cel-cpp's own.

cel-cpp brings the cel-go extension libraries the API server enables (strings, lists, sets,
optional types, two-variable comprehensions, ...). This module adds the Kubernetes ones of the
API server's base environment (v1.34/v1.35, ``pkg/cel/environment/base.go``):

* lists (``library.Lists``): ``isSorted()``, ``sum()``, ``min()``, ``max()``, ``indexOf(x)``,
  ``lastIndexOf(x)``;
* regex (``library.Regex``): ``find(re)``, ``findAll(re)``, ``findAll(re, n)``;
* quantity (``library.Quantity``, :mod:`~webhook.cel.k8s_quantity`): ``quantity(s)``,
  ``isQuantity(s)``, ``q.isGreaterThan(q)``, ``q.isLessThan(q)``, ``q.compareTo(q)``, ``==``,
  ``q.add(q|int)``, ``q.sub(q|int)``, ``sign(q)`` (a global function upstream, not ``q.sign()``),
  ``q.isInteger()``, ``q.asInteger()``, ``q.asApproximateFloat()``;
* URLs (``library.URLs``, :mod:`~webhook.cel.k8s_url`): ``url(s)``, ``isURL(s)``, ``getScheme()``,
  ``getHost()``, ``getHostname()``, ``getPort()``, ``getEscapedPath()``, ``getQuery()``;
* IP and CIDR (``library.IP``, ``library.CIDR``, :mod:`~webhook.cel.k8s_net`): ``ip(s)``,
  ``isIP(s)``, ``ip.isCanonical(s)``, ``family()``, ``isUnspecified()``, ``isLoopback()``,
  ``isLinkLocalMulticast()``, ``isLinkLocalUnicast()``, ``isGlobalUnicast()``, ``string(ip)``;
  ``cidr(s)``, ``isCIDR(s)``, ``containsIP(ip|s)``, ``containsCIDR(cidr|s)``, ``ip()``,
  ``masked()``, ``prefixLength()``, ``string(cidr)``;
* semver (``library.SemverLib`` version 1, :mod:`~webhook.cel.k8s_semver`): ``semver(s[, normalize])``,
  ``isSemver(s[, normalize])``, ``major()``, ``minor()``, ``patch()``, ``isGreaterThan``,
  ``isLessThan``, ``compareTo``, ``==``;
* JSON patch (mutations only, ``library.JSONPatch``): ``jsonpatch.escapeKey(s)``;
* the authorizer (``library.Authz`` and ``library.AuthzSelectors``, :mod:`~webhook.cel.k8s_authz`):
  the ``authorizer`` and ``authorizer.requestResource`` variables (declared everywhere but in
  ``messageExpression``), ``path(s)``, ``group(s)``, ``serviceAccount(ns, name)``, ``resource(s)``,
  ``subresource(s)``, ``namespace(s)``, ``name(s)``, ``fieldSelector(s)``, ``labelSelector(s)``,
  ``check(verb)``, and on the decision ``allowed()``, ``reason()``, ``errored()``, ``error()``.
  ``check`` asks the review's authorizer (cached SubjectAccessReviews): no cluster, or an answer
  not cached yet, is an evaluation error, so the binding's ``failurePolicy`` decides; the module
  says what each kind of authorizer can be asked.

* format (``library.Format``, v1.31, :mod:`~webhook.cel.k8s_format`): ``format.named(s)``,
  ``format.dns1123Label()`` and the other twelve named formats, ``<format>.validate(s)``. Both
  upstream functions return optional values, which a Python function cannot hand to
  cel-expr-python 0.1; :func:`webhook.cel.rewrite.format_calls` rewrites the two calls into list
  forms followed by ``[?0]``, which gives the same optional types and values.

Value types. The quantity, URL, IP, CIDR, semver and authorizer values are protobuf messages named
as the API server names its types (``kubernetes.Quantity``, ``net.IP``,
``kubernetes.authorization.ResourceCheck``, ...; :mod:`~webhook.cel.k8s_types` says why and what
each holds). cel-cpp's runtime dispatches on argument *kinds*, and every message is one
kind, so ``isGreaterThan`` on quantities and on versions, or ``string()`` of an IP and of a CIDR,
cannot be two implementations. The library therefore comes in two forms (:func:`extensions`): the
checker gets every typed overload with upstream's ids (so ``isIP(cidr(...))`` fails to compile as
in cel-go), the runtime one implementation per shape that picks the upstream overload by the
arguments' message types (a value of another type, through ``dyn``, is ``no such overload``).
:mod:`webhook.cel.runtime` checks with the first and evaluates with the second. ``check`` has no
implementation in the environment: it needs the review's user and authorizer, so each activation
brings its own (cel-cpp's late binding, :class:`webhook.cel.k8s_authz.Binding`).

Cost (2 cores, no other load; evaluation with the review's activation already built):
``quantity(object.spec.x).isLessThan(quantity('1Gi'))`` about 13 µs against 4 µs for a plain
comparison; ``url(...).getHostname()``, ``ip(...).isLoopback()``, ``cidr(...).containsIP(s)`` and
``semver(...).isLessThan(...)`` 9-20 µs; each authorizer builder call about 10 µs (a message each
way), so ``authorizer.group('apps').resource('deployments').namespace(n).check('update').allowed()``
about 50 µs with the answer cached (plus the authorizer's own time). Constructors cache their last
4096 strings (literals repeat on every review). Compiling takes 35-60 µs, as before plus the
checked expression's round trip.

An implementation raises :class:`ValueError` with cel-go's text; cel-cpp turns the exception into
an error value, which :func:`webhook.cel.runtime.error_text` passes on without its status prefix.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any

import re2  # type: ignore[import-untyped]
from cel_expr_python import cel

from webhook.cel import k8s_authz, k8s_format, k8s_net, k8s_quantity, k8s_semver, k8s_types, k8s_url


def _comparable(items: list[Any], function: str) -> None:
    kinds = {type(item) for item in items}
    if len(kinds) > 1 and not kinds <= {int, float}:
        raise ValueError(f"no such overload: {function}")


def _is_sorted(items: list[Any]) -> bool:
    _comparable(items, "isSorted")
    return all(items[i] <= items[i + 1] for i in range(len(items) - 1))


def _sum(items: list[Any]) -> Any:
    _comparable(items, "sum")
    if not items:
        return 0
    total = items[0]
    for item in items[1:]:
        total = total + item
    if isinstance(total, int) and not -(2**63) <= total < 2**63:
        raise ValueError("integer overflow")
    return total


def _extreme(items: list[Any], *, pick: Any, name: str) -> Any:
    if not items:
        raise ValueError(f"{name} called on empty list")
    _comparable(items, name)
    return pick(items)


def _index_of(items: list[Any], value: Any) -> int:
    for index, item in enumerate(items):
        if type(item) is type(value) and item == value:
            return index
    return -1


def _last_index_of(items: list[Any], value: Any) -> int:
    for index in range(len(items) - 1, -1, -1):
        if type(items[index]) is type(value) and items[index] == value:
            return index
    return -1


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is the policy's error, not a line on our stderr


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> Any:
    """RE2, as Go's ``regexp`` (what the API server's ``find``/``findAll`` use): the same syntax
    (no backreferences) and linear time, so no pattern can make an evaluation run away."""
    try:
        return re2.compile(pattern, options=_RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ValueError(f"error parsing regexp: {detail}") from None


def _find(text: str, pattern: str) -> str:
    match = _regex(pattern).search(text)
    return match.group(0) if match else ""


def _find_all(text: str, pattern: str, limit: int = -1) -> list[str]:
    if limit == 0:
        return []
    found = [m.group(0) for m in _regex(pattern).finditer(text)]
    return found if limit < 0 else found[:limit]


def _escape_key(key: str) -> str:
    """RFC 6901: ``~`` first, then ``/``, in one pass (``k8s.io/my~label`` -> ``k8s.io~1my~0label``)."""
    return key.replace("~", "~0").replace("/", "~1")


def _map_insert(target: dict[Any, Any], key: Any, value: Any) -> dict[Any, Any]:
    """``cel.@mapInsert(m, k, v)``, which ``transformMap`` and ``transformMapEntry`` expand to:
    cel-expr-python's runtime lacks it. A new map with the entry; a key already there is cel-go's
    ``mutableMap.Insert`` error."""
    if key in target:
        shown = ("true" if key else "false") if isinstance(key, bool) else key  # Go's %v of a map key
        raise ValueError(f"insert failed: key {shown} already exists")
    return {**target, key: value}


def _map_merge(target: dict[Any, Any], entries: dict[Any, Any]) -> dict[Any, Any]:
    """``cel.@mapInsert(m, {k: v, ...})``: each entry inserted as :func:`_map_insert` does."""
    for key, value in entries.items():
        target = _map_insert(target, key, value)
    return target


def _runtime_only() -> list[Any]:
    """Functions the checker's extensions declare but cel-expr-python's runtime does not implement."""
    any_map = cel.Type("map<dyn, dyn>")
    return [cel.FunctionDecl("cel.@mapInsert", [
        cel.Overload("k8s_runtime_map_insert_key_value", any_map, [any_map, cel.Type.DYN, cel.Type.DYN],
                     is_member=False, impl=_map_insert),
        cel.Overload("k8s_runtime_map_insert_map", any_map, [any_map, any_map], is_member=False, impl=_map_merge),
    ])]


def _overload(signature: str, returns: Any, impl: Any) -> Any:
    return cel.Overload(signature=signature, return_type=returns, impl=impl)


def _untyped(*, patch_types: bool) -> list[Any]:
    """The functions on plain CEL values: declared once, implemented in the same overload."""
    declarations = [
        cel.FunctionDecl("isSorted", [_overload("list<dyn>.isSorted()", cel.Type.BOOL, _is_sorted)]),
        cel.FunctionDecl("sum", [_overload("list<dyn>.sum()", cel.Type.DYN, _sum)]),
        cel.FunctionDecl("min", [_overload("list<dyn>.min()", cel.Type.DYN,
                                           functools.partial(_extreme, pick=min, name="min"))]),
        cel.FunctionDecl("max", [_overload("list<dyn>.max()", cel.Type.DYN,
                                           functools.partial(_extreme, pick=max, name="max"))]),
        cel.FunctionDecl("indexOf", [_overload("list<dyn>.indexOf(dyn)", cel.Type.INT, _index_of)]),
        cel.FunctionDecl("lastIndexOf", [_overload("list<dyn>.lastIndexOf(dyn)", cel.Type.INT, _last_index_of)]),
        cel.FunctionDecl("find", [_overload("string.find(string)", cel.Type.STRING, _find)]),
        cel.FunctionDecl("findAll", [
            _overload("string.findAll(string)", cel.Type("list<string>"), _find_all),
            _overload("string.findAll(string, int)", cel.Type("list<string>"), _find_all),
        ]),
    ]
    if patch_types:
        declarations.append(
            # A global function with a dotted name: a signature string would read ``jsonpatch`` as
            # the receiver's type, so the overload is spelt out.
            cel.FunctionDecl("jsonpatch.escapeKey", [cel.Overload(
                "string_jsonpatch_escapeKey_string", cel.Type.STRING, [cel.Type.STRING], is_member=False,
                impl=_escape_key)])
        )
    return declarations


# -- The libraries with value types ---------------------------------------------------------------

_Q, _U, _V = k8s_types.QUANTITY, k8s_types.URL, k8s_types.SEMVER
_IP, _CIDR = k8s_types.IP, k8s_types.CIDR
_AUTHZ, _PATH, _GROUP = k8s_types.AUTHORIZER, k8s_types.PATH_CHECK, k8s_types.GROUP_CHECK
_RESOURCE, _DECISION = k8s_types.RESOURCE_CHECK, k8s_types.DECISION
_F = k8s_types.FORMAT


@dataclasses.dataclass(frozen=True, slots=True)
class _Typed:
    """One upstream overload: its function, its id (as in the Go source), receiver style,
    parameter and result types (a message name or a cel-cpp type signature) and implementation
    (``None``: bound per review, by the activation: ``check`` of :mod:`~webhook.cel.k8s_authz`)."""

    function: str
    id: str
    member: bool
    params: tuple[str, ...]
    returns: str
    impl: Callable[..., Any] | None


def _is_greater(compare: Callable[[Any, Any], int]) -> Callable[[Any, Any], bool]:
    return lambda left, right: compare(left, right) == 1


def _is_less(compare: Callable[[Any, Any], int]) -> Callable[[Any, Any], bool]:
    return lambda left, right: compare(left, right) == -1


_TYPED: tuple[_Typed, ...] = (
    # library.Quantity (quantity.go); "sign" is a global overload upstream: sign(q), not q.sign().
    _Typed("quantity", "string_to_quantity", False, ("string",), _Q, k8s_quantity.quantity),
    _Typed("isQuantity", "is_quantity_string", False, ("string",), "bool", k8s_quantity.is_quantity),
    _Typed("sign", "quantity_sign", False, (_Q,), "int", k8s_quantity.get_sign),
    _Typed("isGreaterThan", "quantity_is_greater_than", True, (_Q, _Q), "bool",
           _is_greater(k8s_quantity.compare_messages)),
    _Typed("isLessThan", "quantity_is_less_than", True, (_Q, _Q), "bool", _is_less(k8s_quantity.compare_messages)),
    _Typed("compareTo", "quantity_compare_to", True, (_Q, _Q), "int", k8s_quantity.compare_messages),
    _Typed("asApproximateFloat", "quantity_get_float", True, (_Q,), "double", k8s_quantity.approximate_float),
    _Typed("asInteger", "quantity_get_int", True, (_Q,), "int", k8s_quantity.get_integer),
    _Typed("isInteger", "quantity_is_integer", True, (_Q,), "bool", k8s_quantity.is_integer),
    _Typed("add", "quantity_add", True, (_Q, _Q), _Q, k8s_quantity.add_quantity),
    _Typed("add", "quantity_add_int", True, (_Q, "int"), _Q, k8s_quantity.add_int),
    _Typed("sub", "quantity_sub", True, (_Q, _Q), _Q, k8s_quantity.sub_quantity),
    _Typed("sub", "quantity_sub_int", True, (_Q, "int"), _Q, k8s_quantity.sub_int),
    # library.URLs (urls.go)
    _Typed("url", "string_to_url", False, ("string",), _U, k8s_url.url),
    _Typed("isURL", "is_url_string", False, ("string",), "bool", k8s_url.is_url),
    _Typed("getScheme", "url_get_scheme", True, (_U,), "string", k8s_url.get_scheme),
    _Typed("getHost", "url_get_host", True, (_U,), "string", k8s_url.get_host),
    _Typed("getHostname", "url_get_hostname", True, (_U,), "string", k8s_url.get_hostname),
    _Typed("getPort", "url_get_port", True, (_U,), "string", k8s_url.get_port),
    _Typed("getEscapedPath", "url_get_escaped_path", True, (_U,), "string", k8s_url.get_escaped_path),
    _Typed("getQuery", "url_get_query", True, (_U,), "map<string, list<string>>", k8s_url.get_query),
    # library.IP (ip.go)
    _Typed("ip", "string_to_ip", False, ("string",), _IP, k8s_net.ip),
    _Typed("isIP", "is_ip", False, ("string",), "bool", k8s_net.is_ip),
    _Typed("ip.isCanonical", "ip_is_canonical", False, ("string",), "bool", k8s_net.ip_is_canonical),
    _Typed("family", "ip_family", True, (_IP,), "int", k8s_net.family),
    _Typed("isUnspecified", "ip_is_unspecified", True, (_IP,), "bool", k8s_net.is_unspecified),
    _Typed("isLoopback", "ip_is_loopback", True, (_IP,), "bool", k8s_net.is_loopback),
    _Typed("isLinkLocalMulticast", "ip_is_link_local_multicast", True, (_IP,), "bool",
           k8s_net.is_link_local_multicast),
    _Typed("isLinkLocalUnicast", "ip_is_link_local_unicast", True, (_IP,), "bool", k8s_net.is_link_local_unicast),
    _Typed("isGlobalUnicast", "ip_is_global_unicast", True, (_IP,), "bool", k8s_net.is_global_unicast),
    _Typed("string", "ip_to_string", False, (_IP,), "string", k8s_net.ip_string),
    # library.CIDR (cidr.go)
    _Typed("cidr", "string_to_cidr", False, ("string",), _CIDR, k8s_net.cidr),
    _Typed("isCIDR", "is_cidr", False, ("string",), "bool", k8s_net.is_cidr),
    _Typed("containsIP", "cidr_contains_ip_string", True, (_CIDR, "string"), "bool", k8s_net.contains_ip_string),
    _Typed("containsIP", "cidr_contains_ip_ip", True, (_CIDR, _IP), "bool", k8s_net.contains_ip),
    _Typed("containsCIDR", "cidr_contains_cidr_string", True, (_CIDR, "string"), "bool",
           k8s_net.contains_cidr_string),
    _Typed("containsCIDR", "cidr_contains_cidr", True, (_CIDR, _CIDR), "bool", k8s_net.contains_cidr),
    _Typed("ip", "cidr_ip", True, (_CIDR,), _IP, k8s_net.cidr_ip),
    _Typed("masked", "cidr_masked", True, (_CIDR,), _CIDR, k8s_net.masked),
    _Typed("prefixLength", "cidr_prefix_length", True, (_CIDR,), "int", k8s_net.prefix_length),
    _Typed("string", "cidr_to_string", False, (_CIDR,), "string", k8s_net.cidr_string),
    # library.SemverLib, version 1 (semverlib.go)
    _Typed("semver", "string_to_semver", False, ("string",), _V, k8s_semver.semver),
    _Typed("semver", "string_bool_to_semver", False, ("string", "bool"), _V, k8s_semver.semver),
    _Typed("isSemver", "is_semver_string", False, ("string",), "bool", k8s_semver.is_semver),
    _Typed("isSemver", "is_semver_string_bool", False, ("string", "bool"), "bool", k8s_semver.is_semver),
    _Typed("isGreaterThan", "semver_is_greater_than", True, (_V, _V), "bool", _is_greater(k8s_semver.compare_messages)),
    _Typed("isLessThan", "semver_is_less_than", True, (_V, _V), "bool", _is_less(k8s_semver.compare_messages)),
    _Typed("compareTo", "semver_compare_to", True, (_V, _V), "int", k8s_semver.compare_messages),
    _Typed("major", "semver_major", True, (_V,), "int", k8s_semver.major),
    _Typed("minor", "semver_minor", True, (_V,), "int", k8s_semver.minor),
    _Typed("patch", "semver_patch", True, (_V,), "int", k8s_semver.patch),
    # library.Format (format.go): named and validate in their list forms, see webhook.cel.k8s_format.
    *(_Typed(f"format.{key}", f"format.{key}", False, (), _F, k8s_format.constant(key)) for key in k8s_format.FORMATS),
    _Typed("format.webhookNamed", "format-named", False, ("string",), f"list<{_F}>", k8s_format.named),
    _Typed("webhookValidate", "format-validate", True, (_F, "string"), "list<list<string>>", k8s_format.validate),
    # library.Authz (authz.go); check is late-bound: it needs the review's user and authorizer.
    _Typed("path", "authorizer_path", True, (_AUTHZ, "string"), _PATH, k8s_authz.path),
    _Typed("group", "authorizer_group", True, (_AUTHZ, "string"), _GROUP, k8s_authz.group),
    _Typed("serviceAccount", "authorizer_serviceaccount", True, (_AUTHZ, "string", "string"), _AUTHZ,
           k8s_authz.service_account),
    _Typed("resource", "groupcheck_resource", True, (_GROUP, "string"), _RESOURCE, k8s_authz.resource),
    _Typed("subresource", "resourcecheck_subresource", True, (_RESOURCE, "string"), _RESOURCE,
           k8s_authz.subresource),
    _Typed("namespace", "resourcecheck_namespace", True, (_RESOURCE, "string"), _RESOURCE, k8s_authz.namespace),
    _Typed("name", "resourcecheck_name", True, (_RESOURCE, "string"), _RESOURCE, k8s_authz.name),
    _Typed("check", "pathcheck_check", True, (_PATH, "string"), _DECISION, None),
    _Typed("check", "resourcecheck_check", True, (_RESOURCE, "string"), _DECISION, None),
    _Typed("errored", "decision_errored", True, (_DECISION,), "bool", k8s_authz.errored),
    _Typed("error", "decision_error", True, (_DECISION,), "string", k8s_authz.error),
    _Typed("allowed", "decision_allowed", True, (_DECISION,), "bool", k8s_authz.allowed),
    _Typed("reason", "decision_reason", True, (_DECISION,), "string", k8s_authz.reason),
    # library.AuthzSelectors (authz.go; the AuthorizeWithSelectors feature, on by default since 1.32)
    _Typed("fieldSelector", "authorizer_fieldselector", True, (_RESOURCE, "string"), _RESOURCE,
           k8s_authz.field_selector),
    _Typed("labelSelector", "authorizer_labelselector", True, (_RESOURCE, "string"), _RESOURCE,
           k8s_authz.label_selector),
)


def _type(name: str) -> Any:
    return k8s_types.TYPES[name] if name in k8s_types.TYPES else cel.Type(name)


def _grouped(overloads: Sequence[_Typed], key: Callable[[_Typed], Any]) -> dict[Any, list[_Typed]]:
    groups: dict[Any, list[_Typed]] = {}
    for overload in overloads:
        groups.setdefault(key(overload), []).append(overload)
    return groups


def _typed_declarations(libraries: int) -> list[Any]:
    """For the checker: every upstream overload of the base environment of version ``libraries``
    with its types (and no implementation)."""
    present = [o for o in _TYPED if since(o) <= libraries]
    return [
        cel.FunctionDecl(function, [cel.Overload(o.id, _type(o.returns), [_type(p) for p in o.params],
                                                 is_member=o.member) for o in overloads])
        for function, overloads in _grouped(present, lambda o: o.function).items()
    ]


_NUMBERS = {"int": ("int64", cel.Type.INT), "uint": ("uint64", cel.Type.UINT), "double": ("double", cel.Type.DOUBLE)}


def _cross_numeric_comparisons() -> list[Any]:
    """For the checker: cel-go's ``CrossTypeNumericComparisons``, in the API server's base
    environment since 1.28: ``<``, ``<=``, ``>``, ``>=`` between int, uint and double
    (``variables.ratio > 1`` on a double), with cel-go's overload ids. cel-cpp's runtime already
    compares mixed numbers; only its checker lacks the declarations. Equality stays between equal
    types, as in cel-go."""
    pairs = [(a, b) for a in _NUMBERS for b in _NUMBERS if a != b]
    return [
        cel.FunctionDecl(function, [
            cel.Overload(f"{name}_{_NUMBERS[a][0]}_{_NUMBERS[b][0]}", cel.Type.BOOL, [_NUMBERS[a][1], _NUMBERS[b][1]],
                         is_member=False)
            for a, b in pairs
        ])
        for function, name in (("_<_", "less"), ("_<=_", "less_equals"), ("_>_", "greater"),
                               ("_>=_", "greater_equals"))
    ]


def _shape(overload: _Typed) -> tuple[str, bool, tuple[str, ...]]:
    """What cel-cpp's runtime dispatches on: name, receiver style and argument *kinds*; all message
    types are one kind (``struct``)."""
    return overload.function, overload.member, tuple("struct" if p in k8s_types.TYPES else p for p in overload.params)


def _dispatch(overloads: Sequence[_Typed]) -> Callable[..., Any]:
    """One implementation for overloads of the same shape, choosing by the arguments' message types;
    a value of another type (through ``dyn``) is cel-go's ``no such overload``."""
    table = {tuple(p if p in k8s_types.TYPES else None for p in o.params): o.impl for o in overloads}

    def call(*args: Any) -> Any:
        impl = table.get(tuple(k8s_types.kind(arg) for arg in args))
        if impl is None:  # another message type, or a late-bound overload (never dispatched here)
            raise ValueError("no such overload")
        return impl(*args)

    return call


def _runtime_declarations() -> list[Any]:
    """For the runtime: one implemented overload per shape (cel-cpp refuses two with the same one:
    ``ALREADY_EXISTS``)."""
    declarations = []
    for function, shapes in _grouped(_TYPED, lambda o: o.function).items():
        overloads: list[Any] = []
        for same in _grouped(shapes, _shape).values():
            first = same[0]
            # Without an implementation, cel-cpp looks the function up in each activation (late binding).
            implemented = {"impl": _dispatch(same)} if all(o.impl is not None for o in same) else {}
            overloads.append(cel.Overload(f"k8s_runtime_{function}_{len(overloads)}", _type(first.returns),
                                          [_type(p) for p in first.params], is_member=first.member,
                                          **implemented))
        declarations.append(cel.FunctionDecl(function, overloads))
    return declarations


NEWEST = 34
"""The newest base environment whose libraries are all here (1.34 brought cel-go's lists v3, the last)."""
IP_CIDR, FORMAT, AUTHZ_SELECTORS, SEMVER = 30, 31, 31, 33
"""The base environment versions that brought these libraries (``environment/base.go``; the authz
selectors behind the AuthorizeWithSelectors feature, on by default since 1.32)."""


def since(overload: _Typed) -> int:
    """The base environment version that brought ``overload``'s library (0: always there)."""
    if overload.id.startswith(("string_to_semver", "string_bool_to_semver", "is_semver", "semver_")):
        return SEMVER
    if overload.id.startswith("format"):
        return FORMAT
    if overload.id in ("authorizer_fieldselector", "authorizer_labelselector"):
        return AUTHZ_SELECTORS
    if overload.id.startswith(("string_to_ip", "is_ip", "ip_", "string_to_cidr", "is_cidr", "cidr_")):
        return IP_CIDR
    return 0


def extensions(*, patch_types: bool = False, runtime: bool = False, libraries: int = NEWEST) -> list[Any]:
    """The Kubernetes functions as one cel-cpp extension: with the typed overloads of the base
    environment of version ``libraries`` for the checker (``runtime=False``), or with one
    implementation per runtime shape of all of them (``runtime=True``); see the module docstring
    for why the two differ."""
    typed = (_runtime_declarations() + _runtime_only() if runtime
             else _typed_declarations(libraries) + _cross_numeric_comparisons())
    return [cel.CelExtension("kubernetes", _untyped(patch_types=patch_types) + typed)]
