"""The Kubernetes CEL value types (``kubernetes.Quantity``, ``kubernetes.URL``, ``net.IP``,
``net.CIDR``, ``kubernetes.Semver`` and the ``kubernetes.authorization.*`` values of the authorizer
library) as protobuf messages cel-cpp can carry.

Why messages. cel-expr-python 0.1 refuses opaque Python objects as values, and a declared
``Type.AbstractType`` fails at evaluation (``UNIMPLEMENTED: Unimplemented type``). A message type
from a descriptor pool built here at import time works everywhere a value can go (lists, maps,
optionals, composited variables) and brings, for free, what upstream tests check:

* ``type(ip('1.2.3.4')) == net.IP`` and ``type(quantity('1'))`` print the API server's type names,
  because the messages carry exactly those full names;
* compile errors name the types as cel-go does (``found no matching overload for 'isIP' applied to
  '(net.CIDR)'``), because the checker sees real types;
* ``==`` is cel-cpp's message equality, field by field. Each message therefore holds only the
  *canonical* state of its value, the state upstream's ``Equal`` compares: a quantity's exact value
  (``quantity('200M') == quantity('0.2G')``), a URL's ``String()``, an address's bytes (a CIDR keeps
  its unmasked address, as ``netip.Prefix`` does), a version without build metadata (``EQ``).

Measured: a message crosses the Python boundary in 1-2 µs each way; ``quantity(x).isLessThan(
quantity("1Gi"))`` costs about 13 µs (more in :mod:`webhook.cel.library`).

What differs from the API server: cel-go refuses field selection on these opaque types, while here
``quantity('1').exponent`` and ``kubernetes.Quantity{}`` compile (nobody writes them by accident; a
function given a hand-built message answers with an error).

The authorizer values (``kubernetes.authorization.Authorizer``, ``PathCheck``, ``GroupCheck``,
``ResourceCheck``, ``Decision``; :mod:`webhook.cel.k8s_authz`) hold what the expression chose: the
service account of ``serviceAccount(ns, name)`` (empty: the requester) and the check's attributes;
a ``Decision`` holds the answer. Who the requester is and whom to ask stay outside the value, with
the review (:class:`webhook.cel.k8s_authz.Binding`). Upstream these values have no fields and
refuse ``==``; here they compare field by field.
"""

from __future__ import annotations

from typing import Any

from cel_expr_python import cel
from google.protobuf import (  # type: ignore[import-untyped]  # protobuf ships no type hints
    descriptor_pb2,
    descriptor_pool,
    message_factory,
)

_FIELD = descriptor_pb2.FieldDescriptorProto

QUANTITY = "kubernetes.Quantity"
URL = "kubernetes.URL"
SEMVER = "kubernetes.Semver"
IP = "net.IP"
CIDR = "net.CIDR"
AUTHORIZER = "kubernetes.authorization.Authorizer"
PATH_CHECK = "kubernetes.authorization.PathCheck"
GROUP_CHECK = "kubernetes.authorization.GroupCheck"
RESOURCE_CHECK = "kubernetes.authorization.ResourceCheck"
DECISION = "kubernetes.authorization.Decision"
FORMAT = "kubernetes.NamedFormat"

_S, _B = _FIELD.TYPE_STRING, _FIELD.TYPE_BOOL
_PRINCIPAL = [("service_account_namespace", 1, _S), ("service_account_name", 2, _S)]
"""Whose access a check asks about: a service account (``serviceAccount(ns, name)``), or, when
both are empty, the user who sent the request."""

_SCHEMA: dict[str, dict[str, list[tuple[str, int, int]]]] = {
    "kubernetes": {
        # value = int(mantissa) * 10**exponent, mantissa without trailing zeros ("0" for zero).
        "Quantity": [("mantissa", 1, _FIELD.TYPE_STRING), ("exponent", 2, _FIELD.TYPE_SINT64)],
        # Equality is on String(); the parts are what the getters return, derived from it.
        "URL": [("url", 1, _FIELD.TYPE_BYTES), ("scheme", 2, _FIELD.TYPE_BYTES), ("host", 3, _FIELD.TYPE_BYTES),
                ("escaped_path", 4, _FIELD.TYPE_BYTES), ("raw_query", 5, _FIELD.TYPE_BYTES)],
        "Semver": [("major", 1, _FIELD.TYPE_UINT64), ("minor", 2, _FIELD.TYPE_UINT64),
                   ("patch", 3, _FIELD.TYPE_UINT64), ("pre", 4, -_FIELD.TYPE_STRING)],
        # Equality is on the name, as upstream's Format.Equal.
        "NamedFormat": [("name", 1, _FIELD.TYPE_STRING)],
    },
    "net": {
        "IP": [("address", 1, _FIELD.TYPE_BYTES)],  # 4 bytes for IPv4, 16 for IPv6
        "CIDR": [("address", 1, _FIELD.TYPE_BYTES), ("bits", 2, _FIELD.TYPE_UINT32)],
    },
    "kubernetes.authorization": {
        "Authorizer": _PRINCIPAL,
        "PathCheck": [*_PRINCIPAL, ("path", 3, _S)],
        "GroupCheck": [*_PRINCIPAL, ("group", 3, _S)],
        "ResourceCheck": [*_PRINCIPAL, ("group", 3, _S), ("resource", 4, _S), ("subresource", 5, _S),
                          ("namespace", 6, _S), ("name", 7, _S), ("field_selector", 8, _S),
                          ("label_selector", 9, _S)],
        "Decision": [("allowed", 1, _B), ("reason", 2, _S), ("errored", 3, _B), ("error", 4, _S)],
    },
}
"""Package -> message -> fields (name, number, type; a negative type is a repeated field)."""


def _pool() -> Any:
    pool = descriptor_pool.DescriptorPool()
    for package, messages in _SCHEMA.items():
        file = descriptor_pb2.FileDescriptorProto(name=f"webhook/cel/{package}.proto", package=package,
                                                  syntax="proto3")
        for name, fields in messages.items():
            message = file.message_type.add(name=name)
            for field, number, kind in fields:
                label = _FIELD.LABEL_REPEATED if kind < 0 else _FIELD.LABEL_OPTIONAL
                message.field.add(name=field, number=number, type=abs(kind), label=label)
        pool.Add(file)
    return pool


POOL: Any = _pool()
"""The descriptor pool every environment is built with (``cel.NewEnv(descriptor_pool=POOL)``)."""

_CLASSES: dict[str, Any] = {
    name: message_factory.GetMessageClass(POOL.FindMessageTypeByName(name))
    for name in (QUANTITY, URL, SEMVER, IP, CIDR, FORMAT, AUTHORIZER, PATH_CHECK, GROUP_CHECK, RESOURCE_CHECK, DECISION)
}

TYPES: dict[str, Any] = {name: cel.Type(name) for name in _CLASSES}
"""The checker types, by full name."""


def new(name: str, /, **fields: Any) -> Any:
    """A message of type ``name``: what a function returns to CEL."""
    return _CLASSES[name](**fields)


def kind(value: Any) -> str | None:
    """The full type name of a message argument (``None`` for any other value)."""
    descriptor = getattr(value, "DESCRIPTOR", None)
    return None if descriptor is None else str(descriptor.full_name)
