"""Redaction of recordings: what ``serve --record`` blanks before a review touches disk.

Table tests give the exact recorded output of each rule (JSON annotations, Secrets known by the
review, credentials inside env values and args, ``userInfo.extra``, the same in an answer's
patch); property tests plant marked secrets in generated reviews and check that none reaches
the bytes a recording is written as, while planted plain values do.
"""

from __future__ import annotations

import base64
import copy
import itertools
import time
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import conftest
from webhook import recording, review

R = recording.REDACTED
LA = recording.LAST_APPLIED
OBJ = "request.request.object"
OLD = "request.request.oldObject"
PATCH = "response.response.patch"


def recorded(body: dict[str, Any], answer: dict[str, Any] | None = None) -> dict[str, Any]:
    """A RecordedReview document as :meth:`webhook.recorder.Recorder._document` builds it."""
    return {
        "apiVersion": recording.API_VERSION, "kind": recording.KIND, "recordedAt": "2025-01-31T12:00:00.000000Z",
        "path": "/validate", "redacted": [], "request": orjson.loads(orjson.dumps(body)),
        "response": orjson.loads(orjson.dumps(answer or review.allowed(body["request"]["uid"]))),
    }


def container(*, env: list[dict[str, Any]] | None = None, args: list[str] | None = None) -> dict[str, Any]:
    made: dict[str, Any] = {"name": "app", "image": "nginx:1.27"}
    if env is not None:
        made["env"] = env
    if args is not None:
        made["args"] = args
    return made


# --- annotations holding JSON ---------------------------------------------------------------

# As kubectl writes it: Go's json.Encoder, keys sorted, no blanks, a trailing newline.
POD_APPLIED = (
    '{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{},"name":"api","namespace":"default"},'
    '"spec":{"containers":[{"env":[{"name":"PASSWORD","value":"hunter2"},{"name":"LOG_LEVEL","value":"debug"}],'
    '"image":"nginx:1.27","name":"app"}]}}\n'
)
POD_APPLIED_REDACTED = (
    '{"apiVersion":"v1","kind":"Pod","metadata":{"annotations":{},"name":"api","namespace":"default"},'
    '"spec":{"containers":[{"env":[{"name":"PASSWORD","value":"REDACTED"},{"name":"LOG_LEVEL","value":"debug"}],'
    '"image":"nginx:1.27","name":"app"}]}}\n'
)


def test_the_last_applied_configuration_of_a_pod_is_redacted_inside_and_rewritten_as_kubectl_writes_it() -> None:
    env = [{"name": "PASSWORD", "value": "hunter2"}, {"name": "LOG_LEVEL", "value": "debug"}]
    obj = conftest.pod("api", containers=[container(env=env)], annotations={LA: POD_APPLIED, "team": "shop"})
    document = recorded(conftest.admission_review(obj, uid="u"))
    found = recording.redact(document)
    recorded_obj = document["request"]["request"]["object"]
    assert recorded_obj["metadata"]["annotations"] == {LA: POD_APPLIED_REDACTED, "team": "shop"}
    assert recorded_obj["spec"]["containers"][0]["env"] == [
        {"name": "PASSWORD", "value": R}, {"name": "LOG_LEVEL", "value": "debug"}]
    assert found == [f"{OBJ}.metadata.annotations.{LA}.spec.containers[0].env[0].value",
                     f"{OBJ}.spec.containers[0].env[0].value"]


def test_the_last_applied_configuration_of_a_workload_covers_its_pod_template_env_and_args() -> None:
    applied = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"template": {
        "spec": {"containers": [{"name": "app", "args": ["--api-token=t0k", "--port=80"],
                                 "env": [{"name": "JDBC_URL", "value": "jdbc:postgresql://db/x?user=a&password=pw"},
                                         {"name": "DB_PASSWORD", "value": "hunter2"}]}]}}}}
    obj = conftest.deployment(conftest.pod())
    obj["metadata"]["annotations"] = {LA: orjson.dumps(applied).decode() + "\n"}
    document = recorded(conftest.admission_review(obj, uid="u"))
    found = recording.redact(document)
    expected = copy.deepcopy(applied)
    template = expected["spec"]["template"]["spec"]
    template["containers"][0]["args"] = ["--api-token=REDACTED", "--port=80"]
    template["containers"][0]["env"][0]["value"] = "jdbc:postgresql://db/x?user=a&password=REDACTED"
    template["containers"][0]["env"][1]["value"] = R
    annotation = document["request"]["request"]["object"]["metadata"]["annotations"][LA]
    assert annotation == orjson.dumps(expected).decode() + "\n"
    where = f"{OBJ}.metadata.annotations.{LA}.spec.template.spec"
    assert found == [f"{where}.containers[0].args[0]", f"{where}.containers[0].env[0].value",
                     f"{where}.containers[0].env[1].value"]


@pytest.mark.parametrize(
    ("value", "expected", "expected_paths"),
    [
        pytest.param('{"token":"t","mode":"fast"}', '{"token":"REDACTED","mode":"fast"}', [".token"],
                     id="any-annotation-holding-a-json-object"),
        pytest.param('  {"token": "t"}\n\n', '  {"token":"REDACTED"}\n\n', [".token"],
                     id="blanks-around-are-kept-inside-is-compacted"),
        pytest.param('[{"name":"net","token":"t"}]', '[{"name":"net","token":"REDACTED"}]', ["[0].token"],
                     id="a-json-list"),
        pytest.param('{"kind":"Secret","apiVersion":"v1","data":{"password":"aHVudGVyMg=="},"type":"Opaque"}',
                     '{"kind":"Secret","apiVersion":"v1","data":{"password":"REDACTED"},"type":"Opaque"}',
                     [".data.password"], id="a-secret-inside-is-redacted-as-a-secret"),
        pytest.param('{"a": {"env": [{"name": "DB_PW", "value": "p"}]}}',
                     '{"a":{"env":[{"name":"DB_PW","value":"REDACTED"}]}}', [".a.env[0].value"], id="env-at-depth"),
        pytest.param('{"metadata":{"annotations":{"inner":"{\\"token\\":\\"t\\"}"}}}',
                     '{"metadata":{"annotations":{"inner":"{\\"token\\":\\"REDACTED\\"}"}}}',
                     [".metadata.annotations.inner.token"], id="json-in-an-annotation-of-the-json"),
        pytest.param('{"spec": {"password": "hunter2"', R, [""], id="unparseable-object-is-blanked-whole"),
        pytest.param("{not json at all}", R, [""], id="brace-but-not-json-is-blanked-whole"),
        pytest.param('{"mode": "fast", "replicas": 3}', '{"mode": "fast", "replicas": 3}', [],
                     id="nothing-sensitive-kept-byte-for-byte"),
        pytest.param("[beta] rolled out by hand", "[beta] rolled out by hand", [], id="bracket-prose-kept"),
        pytest.param("owned by team shop", "owned by team shop", [], id="plain-text-kept"),
        pytest.param('"{\\"token\\":\\"t\\"}"', '"{\\"token\\":\\"t\\"}"', [], id="a-json-string-is-not-parsed"),
    ],
)
def test_annotations_holding_json_are_redacted_by_the_same_rules(
    value: str, expected: str, expected_paths: list[str]
) -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": {"example.com/x": value}}}
    document = recorded(conftest.admission_review(obj, uid="u"))
    found = recording.redact(document)
    assert document["request"]["request"]["object"]["metadata"]["annotations"] == {"example.com/x": expected}
    assert found == [f"{OBJ}.metadata.annotations.example.com/x{suffix}" for suffix in expected_paths]


@pytest.mark.parametrize(
    "deep",
    [
        pytest.param('{"a":' * 990 + '{"token":"t"}' + "}" * 990, id="object-deeper-than-the-walk"),
        pytest.param("[" * 990 + '{"token":"t"}' + "]" * 990, id="list-deeper-than-the-walk"),
        pytest.param('{"a":' * 1100 + '{"token":"t"}' + "}" * 1100, id="deeper-than-the-parser"),
    ],
)
def test_an_annotation_nested_too_deep_to_check_is_blanked_whole(deep: str) -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "annotations": {"deep": deep}}}
    document = recorded(conftest.admission_review(obj, uid="u"))
    assert recording.redact(document) == [f"{OBJ}.metadata.annotations.deep"]
    assert document["request"]["request"]["object"]["metadata"]["annotations"] == {"deep": R}


def test_pod_template_annotations_holding_json_are_redacted_too() -> None:
    template = conftest.pod(annotations={"example.com/config": '{"token":"t"}'})
    document = recorded(conftest.admission_review(conftest.deployment(template), uid="u"))
    assert recording.redact(document) == [
        f"{OBJ}.spec.template.metadata.annotations.example.com/config.token"]
    spec = document["request"]["request"]["object"]["spec"]
    assert spec["template"]["metadata"]["annotations"] == {"example.com/config": '{"token":"REDACTED"}'}


# --- Secrets known by the review --------------------------------------------------------------

def kindless_secret() -> dict[str, Any]:
    return {"metadata": {"name": "db", "annotations": {LA: '{"stringData":{"password":"hunter2"}}'}},
            "data": {"password": "aHVudGVyMg=="}, "stringData": {"token": "t"}}


def blanked_secret() -> dict[str, Any]:
    return {"metadata": {"name": "db", "annotations": {LA: R}}, "data": {"password": R}, "stringData": {"token": R}}


def secret_paths(where: str) -> list[str]:
    return [f"{where}.data.password", f"{where}.stringData.token", f"{where}.metadata.annotations.{LA}"]


def with_request(body: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``body`` with request fields set (a value of None removes the field)."""
    for key, value in fields.items():
        if value is None:
            body["request"].pop(key, None)
        else:
            body["request"][key] = value
    return body


CORE_SECRET_KIND = {"group": "", "version": "v1", "kind": "Secret"}
SECRETS = {"group": "", "version": "v1", "resource": "secrets"}
WIDGETS = {"group": "example.com", "version": "v1", "resource": "widgets"}


@pytest.mark.parametrize(
    ("body", "expected_object", "expected_old", "expected_paths"),
    [
        pytest.param(conftest.admission_review(kindless_secret(), kind="Secret", uid="u"),
                     blanked_secret(), None, secret_paths(OBJ), id="request-kind-secret"),
        pytest.param(with_request(conftest.admission_review(kindless_secret(), kind="Widget", uid="u"),
                                  resource=SECRETS),
                     blanked_secret(), None, secret_paths(OBJ), id="request-resource-secrets"),
        pytest.param(with_request(conftest.admission_review(kindless_secret(), kind="Widget", uid="u"),
                                  requestKind=CORE_SECRET_KIND),
                     blanked_secret(), None, secret_paths(OBJ), id="request-kind-before-conversion"),
        pytest.param(with_request(conftest.admission_review(kindless_secret(), kind="Widget", uid="u"),
                                  resource=WIDGETS, requestResource=SECRETS),
                     blanked_secret(), None, secret_paths(OBJ), id="request-resource-before-conversion"),
        pytest.param(conftest.admission_review(None, old=kindless_secret(), operation="DELETE", kind="Secret", uid="u"),
                     None, blanked_secret(), secret_paths(OLD), id="delete-carries-old-object"),
        pytest.param(conftest.admission_review(kindless_secret(), old=kindless_secret(), operation="UPDATE",
                                               kind="Secret", uid="u"),
                     blanked_secret(), blanked_secret(), [*secret_paths(OBJ), *secret_paths(OLD)], id="update"),
        pytest.param(with_request(conftest.admission_review(kindless_secret(), kind="Secret", uid="u"),
                                  kind={"group": "example.com", "version": "v1", "kind": "Secret"}, resource=WIDGETS),
                     {**kindless_secret(), "stringData": {"token": R}}, None, [f"{OBJ}.stringData.token"],
                     id="kind-secret-of-another-group-is-not-a-secret"),  # only the generic token rule applies
    ],
)
def test_a_secret_is_known_by_the_review_when_its_object_has_no_kind(
    body: dict[str, Any], expected_object: dict[str, Any] | None, expected_old: dict[str, Any] | None,
    expected_paths: list[str],
) -> None:
    document = recorded(body)
    found = recording.redact(document)
    assert document["request"]["request"]["object"] == expected_object
    assert document["request"]["request"]["oldObject"] == expected_old
    assert found == expected_paths


# --- credentials inside env values --------------------------------------------------------------

@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("JDBC_URL", "jdbc:postgresql://db/x?user=a&password=X", "jdbc:postgresql://db/x?user=a&password=REDACTED"),
        ("JDBC_URL", "jdbc:mysql://db/x?useSSL=true&PWD=X&serverTimezone=UTC",
         "jdbc:mysql://db/x?useSSL=true&PWD=REDACTED&serverTimezone=UTC"),
        ("HOOK", "https://api.example.com/x?access_token=X&v=2", "https://api.example.com/x?access_token=REDACTED&v=2"),
        ("BLOB_URL", "https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=X",
         "https://acct.blob.core.windows.net/c?sv=2022-11-02&sig=REDACTED"),
        ("BUCKET_URL", "https://s3/o?X-Amz-Credential=X&X-Amz-Signature=Y",
         "https://s3/o?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"),
        ("CONN_STR", "Server=db;Database=x;User Id=a;Password=X;", "Server=db;Database=x;User Id=a;Password=REDACTED;"),
        ("CONN_STR", "Server=db; Pwd=two words; Database=x", "Server=db; Pwd=REDACTED; Database=x"),
        ("CONN_STR", 'Server=db;Password="a;""b";Database=x', "Server=db;Password=REDACTED;Database=x"),
        ("CONN_STR", "Driver={ODBC};Server=db;PWD={a;}}b};", "Driver={ODBC};Server=db;PWD=REDACTED;"),
        ("STORAGE", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=X;EndpointSuffix=core.windows.net",
         "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=REDACTED;EndpointSuffix=core.windows.net"),
        ("JDBC_URL", "jdbc:sqlserver://db:1433;databaseName=x;password=X;user=a",
         "jdbc:sqlserver://db:1433;databaseName=x;password=REDACTED;user=a"),
        ("JDBC_URL", "jdbc:oracle:thin:scott/X@//db:1521/orcl", "jdbc:oracle:thin:REDACTED@//db:1521/orcl"),
        ("DB", "admin:hunter2@db.internal:5432/app", "REDACTED@db.internal:5432/app"),
        ("REDIS", ":hunter2@cache:6379", "REDACTED@cache:6379"),
        ("UPSTREAMS", "a:p1@h1:1,b:p2@h2:2", "REDACTED@h2:2"),  # the password runs to the last @
        ("PG_CONNINFO", "host=db user=a password=X dbname=shop", "host=db user=a password=REDACTED dbname=shop"),
        ("PG_CONNINFO", "host=db password='two words' dbname=shop", "host=db password=REDACTED dbname=shop"),
        ("JAVA_OPTS", "-Xmx1g -Ddb.password=X -Dfile.encoding=UTF-8",
         "-Xmx1g -Ddb.password=REDACTED -Dfile.encoding=UTF-8"),
        ("EXTRA_ARGS", "--port 80 --password X --verbose", "--port 80 --password REDACTED --verbose"),
        ("EXTRA_ARGS", "--client-secret=X --verbose", "--client-secret=REDACTED --verbose"),
        ("MYSQL_ROOT_PW", "X", R), ("PW", "X", R), ("db_pw", "X", R), ("PW_FILE", "/run/pw", R),
        # Plain values are kept.
        ("PWA_MODE", "standalone", None),
        ("SIDECAR_IMAGE", "nginx:1.27@sha256:0123456789abcdef", None),
        ("DB_ADDR", "db.internal:5432", None),
        ("MAILTO", "ops@example.com", None),
        ("MONGO_URL", "mongodb://db/shop?authSource=admin&replicaSet=rs0", None),
        ("NOTIFY", "https://hooks.example.com:8443/notify?to=ops@example.com", None),
        ("GIT_REPO", "git@github.com:org/repo.git", None),
        ("JAVA_OPTS", "-Xmx1g -Dfile.encoding=UTF-8", None),
        ("CONN_STR", "Server=db;Database=x;", None),
        ("QUERY", "?password=", None),
    ],
)
def test_credentials_inside_env_values_are_blanked_whatever_the_name(
    name: str, value: str, expected: str | None
) -> None:
    obj = conftest.pod(containers=[container(env=[{"name": name, "value": value}])])
    document = recorded(conftest.admission_review(obj, uid="u"))
    found = recording.redact(document)
    assert document["request"]["request"]["object"]["spec"]["containers"][0]["env"] == [
        {"name": name, "value": expected or value}]
    assert found == ([f"{OBJ}.spec.containers[0].env[0].value"] if expected else [])


@pytest.mark.parametrize(
    ("name", "redacted"),
    [("MYSQL_ROOT_PW", True), ("PW", True), ("db_pw", True), ("PW_FILE", True), ("app.pw", True),
     ("PWA_MODE", False), ("NPW", False), ("UPWARD", False)],
)
def test_pw_as_a_word_of_an_env_name_is_a_password(name: str, redacted: bool) -> None:
    assert recording.Redaction().env_name_matches(name) is redacted


# --- args and command -----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("args", "expected", "blanked"),
    [
        pytest.param(["--db-password=X", "--api-token=Y", "--client-secret=Z", "--log-level=debug"],
                     ["--db-password=REDACTED", "--api-token=REDACTED", "--client-secret=REDACTED",
                      "--log-level=debug"], [0, 1, 2], id="flag-equals-value"),
        pytest.param(["--password", "X", "--verbose"], ["--password", R, "--verbose"], [1], id="flag-then-value"),
        pytest.param(["-token", "X"], ["-token", R], [1], id="single-dash-flag"),
        pytest.param(["--secret", "-starts-with-a-dash"], ["--secret", R], [1], id="value-looking-like-a-flag"),
        pytest.param(["--password", "--token", "X"], ["--password", R, R], [1, 2], id="flag-after-flag"),
        pytest.param(["--pw", "X", "--api-key", "Y", "--sentry-dsn", "Z"], ["--pw", R, "--api-key", R, "--sentry-dsn", R],
                     [1, 3, 5], id="pw-key-dsn"),
        pytest.param(["--db-url=postgres://app:X@db/shop"], ["--db-url=postgres://REDACTED@db/shop"], [0],
                     id="url-with-a-password"),
        pytest.param(["--password=", "--token"], ["--password=", "--token"], [], id="no-value-to-blank"),
        pytest.param(["serve", "--port", "8080", "--keep-alive", "30s"],
                     ["serve", "--port", "8080", "--keep-alive", "30s"], [], id="plain-args-kept"),
    ],
)
def test_credentials_in_container_args_are_blanked(args: list[str], expected: list[str], blanked: list[int]) -> None:
    obj = conftest.pod(containers=[container(args=args)])
    document = recorded(conftest.admission_review(obj, uid="u"))
    found = recording.redact(document)
    assert document["request"]["request"]["object"]["spec"]["containers"][0]["args"] == expected
    assert found == [f"{OBJ}.spec.containers[0].args[{index}]" for index in blanked]


def test_credentials_in_a_shell_command_and_in_init_containers_are_blanked() -> None:
    obj = conftest.pod(containers=[{"name": "app", "image": "x",
                                    "command": ["sh", "-c", "exec app --password X --port 8080"]}])
    obj["spec"]["initContainers"] = [{"name": "init", "image": "x", "command": ["migrate"],
                                      "args": ["--database-url", "postgres://app:X@db/shop"]}]
    document = recorded(conftest.admission_review(obj, uid="u"))
    found = recording.redact(document)
    spec = document["request"]["request"]["object"]["spec"]
    assert spec["containers"][0]["command"] == ["sh", "-c", "exec app --password REDACTED --port 8080"]
    assert spec["initContainers"][0]["args"] == ["--database-url", "postgres://REDACTED@db/shop"]
    assert found == [f"{OBJ}.spec.containers[0].command[2]", f"{OBJ}.spec.initContainers[0].args[1]"]


# --- userInfo.extra ---------------------------------------------------------------------------------

def test_every_value_of_user_info_extra_is_blanked_and_the_keys_kept() -> None:
    body = conftest.admission_review(conftest.pod(), uid="u", username="system:serviceaccount:shop:api")
    body["request"]["userInfo"]["extra"] = {
        "authentication.kubernetes.io/credential-id": ["JTI=7f1c"],
        "authentication.kubernetes.io/pod-name": ["api-0"],
        "scopes.example.com": ["read", "write"],
        "empty": [],
    }
    document = recorded(body)
    found = recording.redact(document)
    assert document["request"]["request"]["userInfo"] == {
        "username": "system:serviceaccount:shop:api", "groups": ["system:authenticated"],
        "extra": {"authentication.kubernetes.io/credential-id": [R], "authentication.kubernetes.io/pod-name": [R],
                  "scopes.example.com": [R, R], "empty": []},
    }
    where = "request.request.userInfo.extra"
    assert found == [f"{where}.authentication.kubernetes.io/credential-id",
                     f"{where}.authentication.kubernetes.io/pod-name", f"{where}.scopes.example.com"]


# --- the answer's patch -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("op", "expected_value", "expected_paths"),
    [
        pytest.param({"op": "replace", "path": "/spec/containers/0/args", "value": ["--password", "X"]},
                     ["--password", R], [f"{PATCH}[0].value[1]"], id="whole-args-list"),
        pytest.param({"op": "add", "path": "/spec/containers/0/command/-", "value": "--api-token=X"},
                     "--api-token=REDACTED", [f"{PATCH}[0].value"], id="one-command-item"),
        pytest.param({"op": "add", "path": "/spec/containers/0/args/1", "value": "--port=80"},
                     "--port=80", [], id="plain-arg-kept"),
        pytest.param({"op": "add", "path": "/spec/containers/-", "value": {"name": "side", "args": ["--token", "X"]}},
                     {"name": "side", "args": ["--token", R]}, [f"{PATCH}[0].value.args[1]"], id="added-container"),
        pytest.param({"op": "add", "path": "/metadata/annotations", "value": {LA: '{"spec":{"token":"t"}}\n'}},
                     {LA: '{"spec":{"token":"REDACTED"}}\n'}, [f"{PATCH}[0].value.{LA}.spec.token"],
                     id="annotations-map"),
        pytest.param({"op": "add", "path": "/metadata/annotations/example.com~1config", "value": '{"token":"t"}'},
                     '{"token":"REDACTED"}', [f"{PATCH}[0].value.token"], id="one-annotation"),
        pytest.param({"op": "add", "path": "/metadata/annotations/example.com~1config", "value": "{broken"},
                     R, [f"{PATCH}[0].value"], id="one-unparseable-annotation"),
    ],
)
def test_args_and_annotations_in_an_answer_patch_are_redacted(
    op: dict[str, Any], expected_value: Any, expected_paths: list[str]
) -> None:
    answer = review.allowed("u", ops=[copy.deepcopy(op)])
    document = recorded(conftest.admission_review(conftest.pod(), uid="u"), answer)
    assert recording.redact(document) == expected_paths
    assert review.decode_patch(document["response"]) == [{**op, "value": expected_value}]
    if not expected_paths:
        assert document["response"] == answer  # an untouched patch is not re-encoded


# --- cost -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value",
    [
        pytest.param(",a:b@" * 40_000 + "!", id="many-at-signs"),
        pytest.param(",a:b" * 50_000, id="many-users-no-host"),
        pytest.param("a." * 100_000, id="scheme-characters"),
        pytest.param("jdbc:oracle:thin:a/" * 10_000, id="oracle-prefixes"),
        pytest.param('k="' + ' k="' * 50_000 + "\\", id="open-quotes"),
        pytest.param(";a b c d e f" * 20_000, id="connection-string-words"),
    ],
)
def test_a_long_hostile_value_is_scrubbed_in_linear_time(value: str) -> None:
    # Quadratic patterns took from 10 seconds to minutes on these; the linear ones take at most
    # a quarter of a second, so the bound leaves room for a slow machine.
    started = time.perf_counter()
    recording.scrub(value)
    assert time.perf_counter() - started < 2.0


# --- properties: no planted secret reaches the bytes written ---------------------------------------------

SECRET_ENV_NAMES = ("DB_PASSWORD", "API_TOKEN", "MYSQL_ROOT_PW", "PW", "SESSION_SECRET", "aws_creds", "SENTRY_DSN",
                    "api_key", "OAUTH_CLIENT", "PRIVATE_SIGNING", "REDIS_PASSWD", "db_pwd")
PLAIN_ENV_NAMES = ("DATABASE_URL", "JDBC_URL", "CONN_STR", "DB", "JAVA_OPTS", "EXTRA", "UPSTREAM")
CONTROL_ENV_NAMES = ("LOG_LEVEL", "PORT", "MODE", "TZ", "REGION")
VALUE_TEMPLATES = (
    "postgres://app:{}@db:5432/shop", "redis://:{}@cache:6379/0", "https://{}:x-oauth-basic@github.com/o/r.git",
    "amqp://mq:p@{}@rabbit/vhost", "jdbc:postgresql://db/x?user=a&password={}", "jdbc:mysql://db/x?useSSL=true&PWD={}",
    "https://api/x?access_token={}&v=2", "https://acct.blob/c?sv=1&sig={}", "Server=db;Database=x;User Id=a;Password={};",
    "Server=db; Pwd={}; Database=x", "Password={};Server=db", 'Server=db;Password="{};x"',
    "jdbc:sqlserver://db:1433;databaseName=x;password={}", "admin:{}@db.internal:5432/app", ":{}@cache:6379",
    "host=db user=a password={} dbname=x", "host=db password='{} x'", "-Xmx1g -Ddb.password={} -Dx=y",
    "--api-token={}", "app --password {} --port 80", "jdbc:oracle:thin:scott/{}@//db:1521/orcl",
)
ARG_FORMS = (
    ("--db-password={}",), ("--api-token={}",), ("--client-secret={}",), ("--password", "{}"), ("--token", "{}"),
    ("--api-key", "{}"), ("--db-url=postgres://u:{}@db/x",), ("--dsn", "host=db password={}"),
)
SA_TOKEN = "kubernetes.io/service-account-token"
NOISE_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789:@/?=;&-_. ", max_size=12)
NOISE = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | NOISE_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.from_regex(r"x[a-z]{0,6}", fullmatch=True),
                                                                inner, max_size=3),
    max_leaves=8,
)


class Plant:
    """Numbered markers: secrets that must not reach the recording, controls that must."""

    def __init__(self) -> None:
        self._numbers = itertools.count()
        self.secrets: list[str] = []
        self.controls: list[str] = []

    def secret(self) -> str:
        marker = f"S3CR3T-{next(self._numbers)}"
        self.secrets.append(marker)
        return marker

    def control(self) -> str:
        marker = f"PUBLIC-{next(self._numbers)}"
        self.controls.append(marker)
        return marker


@st.composite
def env_lists(draw: st.DrawFn, plant: Plant) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    for shape in draw(st.lists(st.sampled_from(["name", "value", "control", "from", "noise"]), max_size=6)):
        if shape == "name":
            env.append({"name": draw(st.sampled_from(SECRET_ENV_NAMES)), "value": plant.secret()})
        elif shape == "value":
            template = draw(st.sampled_from(VALUE_TEMPLATES))
            env.append({"name": draw(st.sampled_from(PLAIN_ENV_NAMES)), "value": template.format(plant.secret())})
        elif shape == "control":
            env.append({"name": draw(st.sampled_from(CONTROL_ENV_NAMES)), "value": plant.control()})
        elif shape == "from":
            env.append({"name": "FROM_SECRET", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}})
        else:
            env.append({"name": draw(st.sampled_from(PLAIN_ENV_NAMES)), "value": draw(NOISE_TEXT)})
    return env


@st.composite
def containers(draw: st.DrawFn, plant: Plant) -> list[dict[str, Any]]:
    made = []
    for index in range(draw(st.integers(1, 3))):
        args: list[str] = []
        for form in draw(st.lists(st.sampled_from([*ARG_FORMS, None]), max_size=4)):
            args += [f"--log-level={plant.control()}"] if form is None else [
                part.format(plant.secret()) if "{}" in part else part for part in form]
        item: dict[str, Any] = {"name": f"c{index}", "image": "nginx:1.27", "env": draw(env_lists(plant))}
        if args:
            item[draw(st.sampled_from(["args", "command"]))] = args
        if draw(st.booleans()):
            item["xnoise"] = draw(NOISE)
        made.append(item)
    return made


@st.composite
def pod_specs(draw: st.DrawFn, plant: Plant) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": draw(containers(plant))}
    if draw(st.booleans()):
        spec["initContainers"] = draw(containers(plant))
    return spec


def metadata(plant: Plant) -> dict[str, Any]:
    return {"name": "obj", "namespace": "shop", "labels": {"app": plant.control()}}


SHAPES = ("Pod", "Deployment", "CronJob", "Widget", "Secret", "KindlessSecret", "TokenRequest", "TokenReview")


@st.composite
def objects(draw: st.DrawFn, plant: Plant, shape: str) -> dict[str, Any]:
    """A Kubernetes-like object of ``shape`` (a ``KindlessSecret`` is a Secret without ``kind``)."""
    meta = metadata(plant)
    if shape == "Pod":
        obj = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": draw(pod_specs(plant))}
    elif shape == "Deployment":
        template = {"metadata": {"labels": {"app": plant.control()}}, "spec": draw(pod_specs(plant))}
        obj = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": {"template": template}}
    elif shape == "CronJob":
        job = {"spec": {"template": {"spec": draw(pod_specs(plant))}}}
        obj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
               "spec": {"schedule": "* * * * *", "jobTemplate": job}}
    elif shape == "Widget":  # env at any depth of a custom resource
        nested: Any = {"env": draw(env_lists(plant))}
        for key in draw(st.lists(st.from_regex(r"x[a-z]{0,4}", fullmatch=True), max_size=3)):
            nested = {key: [nested]} if draw(st.booleans()) else {key: nested}
        obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta, "spec": nested}
    elif shape in ("Secret", "KindlessSecret"):
        data = {f"k{i}": base64.b64encode(plant.secret().encode()).decode() for i in range(draw(st.integers(0, 3)))}
        string_data = {f"s{i}": plant.secret() for i in range(draw(st.integers(0, 2)))}
        obj = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": draw(st.sampled_from(["Opaque", SA_TOKEN])),
               "data": data, "stringData": string_data}
        if shape == "KindlessSecret":
            del obj["kind"]
    elif shape == "TokenRequest":
        obj = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": meta,
               "spec": {"audiences": [plant.control()]}, "status": {"token": plant.secret()}}
    else:
        obj = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": meta,
               "spec": {"token": plant.secret()}}
    if draw(st.booleans()):
        obj["xnoise"] = draw(NOISE)
    if draw(st.booleans()):  # kubectl apply: the manifest again, in an annotation
        applied = copy.deepcopy(obj)
        meta["annotations"] = {LA: orjson.dumps(applied).decode() + "\n", "team": plant.control()}
    return obj


@st.composite
def recordings(draw: st.DrawFn) -> tuple[dict[str, Any], Plant]:
    """A RecordedReview document holding planted secrets and controls, before redaction."""
    plant = Plant()
    operation = draw(st.sampled_from(["CREATE", "UPDATE", "DELETE"]))
    shape = draw(st.sampled_from(SHAPES))  # one resource per review: object and oldObject alike
    obj = draw(objects(plant, shape)) if operation != "DELETE" else None
    old = draw(objects(plant, shape)) if operation != "CREATE" else None
    kind = "Secret" if shape == "KindlessSecret" else shape
    body = conftest.admission_review(obj, old=old, operation=operation, kind=kind, uid="u")
    if shape == "KindlessSecret" and draw(st.booleans()):  # named by its resource only
        body["request"]["kind"] = {"group": "", "version": "v1", "kind": "Unknown"}
    if draw(st.booleans()):
        body["request"]["userInfo"]["extra"] = {
            "authentication.kubernetes.io/credential-id": [f"JTI={plant.secret()}"],
            "scopes.example.com": [plant.secret(), plant.secret()]}
    ops: list[dict[str, Any]] = []
    if draw(st.booleans()):
        side = {"name": "side", "image": "x", "env": draw(env_lists(plant)),
                "args": ["--token", plant.secret(), f"--log-level={plant.control()}"]}
        ops.append({"op": "add", "path": "/spec/containers/-", "value": side})
    if draw(st.booleans()):
        ops.append({"op": "replace", "path": "/spec/containers/0/args", "value": ["--password", plant.secret()]})
    if draw(st.booleans()):
        applied = {"spec": {"containers": [{"name": "c", "env": draw(env_lists(plant))}]}}
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {LA: orjson.dumps(applied).decode()}})
    return recorded(body, review.allowed("u", ops=ops)), plant


def written(document: dict[str, Any]) -> bytes:
    """The bytes a recording is written as (as :meth:`webhook.recorder.Recorder._write` writes
    them), plus the decoded patch, which the file holds in base64."""
    body = orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    return body + orjson.dumps(review.decode_patch(document["response"]))


# Every marker starts "S3CR3T-": its base64 (what a Secret's ``data`` holds) starts "UzNDUjNU".
SECRET_NEEDLES = (b"S3CR3T", b"UzNDUjNU")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(recordings())
def test_no_planted_secret_reaches_the_recording_and_every_control_does(case: tuple[dict[str, Any], Plant]) -> None:
    document, plant = case
    before = written(document)
    assert [m for m in plant.secrets if m.encode() not in before and base64.b64encode(m.encode()) not in before] == []
    document["redacted"] = recording.redact(document)
    after = written(document)
    assert [needle for needle in SECRET_NEEDLES if needle in after] == []
    assert [control for control in plant.controls if control.encode() not in after] == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(recordings())
def test_an_object_and_its_last_applied_configuration_are_redacted_alike(case: tuple[dict[str, Any], Plant]) -> None:
    document, _ = case
    recording.redact(document)
    for key in ("object", "oldObject"):
        obj = document["request"]["request"][key]
        annotations = (obj or {}).get("metadata", {}).get("annotations") or {}
        if LA not in annotations or annotations[LA] == R:  # a Secret's is blanked whole
            continue
        applied = orjson.loads(annotations[LA])
        without = copy.deepcopy(obj)
        del without["metadata"]["annotations"]
        assert applied == without
