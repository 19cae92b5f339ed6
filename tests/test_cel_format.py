"""The Kubernetes CEL format library (``format.named``, ``format.<name>()``, ``<format>.validate``).

``UPSTREAM`` mirrors ``k8s.io/apiserver/pkg/cel/library/format_test.go`` case for case: ``None``
where upstream expects ``optional.none()``, the list of messages where it expects
``optional.of([...])``. Our runtime cannot return an optional as an expression's result, so each
case is asked as ``X.hasValue()`` and, when it has one, ``X.value()``. The texts are apimachinery's.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from webhook.cel import k8s_format, runtime
from webhook.cel.documents import Refused, validating_policy

DECLARED = runtime.Declarations()

LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
         "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
         "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
             "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
           "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
           "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")

UPSTREAM: list[tuple[str, list[str] | None]] = [
    ('format.dns1123Label().validate("my-label-name")', None),
    ('format.dns1123Subdomain().validate("apiextensions.k8s.io")', None),
    ('format.qualifiedName().validate("apiextensions.k8s.io/v1beta1")', None),
    ('format.dns1123LabelPrefix().validate("my-label-prefix-")', None),
    ('format.dns1123SubdomainPrefix().validate("mysubdomain.prefix.-")', None),
    ('format.dns1035LabelPrefix().validate("my-label-prefix-")', None),
    ('format.uri().validate("http://example.com")', None),
    ('format.uuid().validate("123e4567-e89b-12d3-a456-426614174000")', None),
    ('format.byte().validate("aGVsbG8=")', None),
    ('format.date().validate("2021-01-01")', None),
    ('format.datetime().validate("2021-01-01T00:00:00Z")', None),
    ('format.dns1123Label().validate("contains a space")', [LABEL]),
    ('format.dns1123Subdomain().validate("contains a space")', [SUBDOMAIN]),
    ('format.dns1035Label().validate("contains a space")', [DNS1035]),
    ('format.qualifiedName().validate("contains a space")',
     ["name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
      "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
      "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]),
    ('format.dns1123LabelPrefix().validate("contains a space-")', [LABEL]),
    ('format.dns1123SubdomainPrefix().validate("contains a space-")', [SUBDOMAIN]),
    ('format.dns1035LabelPrefix().validate("contains a space-")', [DNS1035]),
    ('format.dns1123Label().validate("my-label-name")', None),
    ('format.dns1123Subdomain().validate("example.com")', None),
    ('format.dns1035Label().validate("my-label-name")', None),
    ('format.qualifiedName().validate("my.name")', None),
    ('format.byte().validate("aGVsbG8=")', None),
    ('format.byte().validate("aGVsbG8")', ["invalid base64"]),
    ('format.date().validate("2020-01-01")', None),
    ('format.date().validate("2020-01-32")', ["invalid date"]),
    ('format.datetime().validate("2020-01-01T00:00:00Z")', None),
    ('format.datetime().validate("2020-01-32T00:00:00Z")', ["invalid datetime"]),
    ('format.labelValue().validate("my-cool-label-Value")', None),
    ('format.labelValue().validate("my-cool-label-Value!!\\n\\n!!!")',
     ["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
      "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
      "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
]

OURS: list[tuple[str, list[str] | None]] = [
    # Both length and pattern, in apimachinery's order; a subdomain that is not a label has dots.
    (f'format.dns1123Label().validate("{"a" * 64}")', ["must be no more than 63 bytes"]),
    ('format.dns1123Label().validate("a.b")', ["must not contain dots"]),
    (f'format.dns1035Label().validate("{"A" * 64}")', ["must be no more than 63 characters", DNS1035]),
    ('format.qualifiedName().validate("/x")', ["prefix part must be non-empty"]),
    ('format.qualifiedName().validate("Example.com/x")', [f"prefix part {SUBDOMAIN}"]),
    ('format.uri().validate("../relative")', ['parse "../relative": invalid URI for request']),
    ('format.uuid().validate("123E4567E89B12D3A456426614174000")', None),
    ('format.uuid().validate("123e4567")', ["does not match the UUID format"]),
    ('format.date().validate("2021-02-29")', ["invalid date"]),
    ('format.date().validate("2024-02-29")', None),
    ('format.datetime().validate("2021-01-01t23:59:59.5+01:00")', None),
    ('format.datetime().validate("2021-01-01T24:00:00Z")', ["invalid datetime"]),
    ('format.byte().validate("")', ["invalid base64"]),
]


def _evaluate(source: str, object_: dict[str, Any] | None = None) -> runtime.Result:
    program = runtime.compile(source, declared=DECLARED, returns=None)
    bound = runtime.activation({"object": object_ or {}}, declared=DECLARED)
    return runtime.evaluate(program, bound)


@pytest.mark.parametrize(("source", "expected"), UPSTREAM + OURS, ids=[s for s, _ in UPSTREAM + OURS])
def test_validate_as_upstream(source: str, expected: list[str] | None) -> None:
    assert _evaluate(f"{source}.hasValue()").value is (expected is not None)
    if expected is not None:
        assert _evaluate(f"{source}.value()").value == expected


@pytest.mark.parametrize("key", sorted(k8s_format.FORMATS))
def test_every_format_is_found_by_name_and_equals_its_constant(key: str) -> None:
    assert _evaluate(f'format.named("{key}").hasValue()').value is True
    assert _evaluate(f'format.named("{key}").value() == format.{key}()').value is True


@pytest.mark.parametrize(("left", "right"), list(itertools.permutations(["dns1123Label", "uri", "labelValue"], 2)))
def test_different_formats_are_not_equal(left: str, right: str) -> None:
    assert _evaluate(f"format.{left}() == format.{right}()").value is False


def test_an_unknown_name_is_none_and_validate_of_none_is_optional_chaining() -> None:
    assert _evaluate('format.named("unknown").hasValue()').value is False
    assert _evaluate('format.named("unknown").orValue(format.uuid()) == format.uuid()').value is True


def test_a_rule_and_its_message_as_the_library_documents_them() -> None:
    rule = "!format.dns1123Label().validate(object.metadata.name).hasValue()"
    message = "format.dns1123Label().validate(object.metadata.name).value().join('\\n')"
    assert _evaluate(rule, {"metadata": {"name": "web-1"}}).value is True
    assert _evaluate(rule, {"metadata": {"name": "Web_1"}}).value is False
    assert _evaluate(message, {"metadata": {"name": "Web_1"}}).value == LABEL


def test_names_inside_strings_are_not_rewritten() -> None:
    assert _evaluate("'x.validate(1) format.named(2)' + string(format.uuid().validate('') == optional.none())"
                     ).value == "x.validate(1) format.named(2)false"


def test_compile_errors_name_what_the_user_wrote_at_their_columns() -> None:
    with pytest.raises(runtime.CompileError) as raised:
        runtime.compile("format.dns1123Label().validate(1)", declared=DECLARED)
    assert str(raised.value) == (
        "compilation failed: ERROR: <input>:1:31: found no matching overload for 'validate' applied to "
        "'kubernetes.NamedFormat.(int)'\n | format.dns1123Label().validate(1)\n | ..............................^")
    with pytest.raises(runtime.CompileError) as raised:
        runtime.compile("format.named(1).hasValue()", declared=DECLARED)
    assert "found no matching overload for 'format.named' applied to '(int)'" in str(raised.value)


def test_a_policy_using_the_library_loads() -> None:
    document = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": "names"},
        "spec": {
            "matchConstraints": {"resourceRules": [
                {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}]},
            "validations": [{
                "expression": "!format.dns1123Label().validate(object.metadata.name).hasValue()",
                "messageExpression": "format.dns1123Label().validate(object.metadata.name).value().join(', ')",
            }],
        },
    }
    policy = validating_policy(document, source="names.yaml")
    assert policy.validations[0].program.source.startswith("!format.dns1123Label()")
    document["spec"]["validations"][0]["expression"] = "format.dns1123Label().validate(object.metadata.name)"
    with pytest.raises(Refused) as raised:
        validating_policy(document, source="names.yaml")
    assert "must evaluate to bool but got optional_type(list(string))" in str(raised.value)
