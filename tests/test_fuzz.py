"""Fuzzing the real app (default policy set, deadlines installed) with hypothesis.

Strategies build AdmissionReviews and Kubernetes objects of random shapes: right shapes with wrong
types, missing fields, huge strings, deep nesting, unicode, huge integers, and bodies that are not
JSON at all. Whatever arrives, the server must answer in time, with JSON; a 5xx is a failure; a
200 echoes the uid; every patch it emits applies to the object with ``jsonpatch``; and it keeps
serving afterwards.

``make test`` runs ``FUZZ_EXAMPLES`` examples (default 200); ``make fuzz`` runs the slow variant
with ``FUZZ_EXAMPLES=5000``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
from collections.abc import Iterator
from typing import Any

import jsonpatch
import orjson
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import conftest
from webhook import catalog, config, server

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
ClientFactory = Any

# --- strategies -----------------------------------------------------------------------------------

TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
"""Any unicode except lone surrogates (not encodable as UTF-8, so never in a real body)."""
NAMES = st.sampled_from(["app", "web", "sidecar", "log-shipper", "", "ÿ", "a" * 300, "x/y", "~0"])
HUGE_TEXT = st.integers(10_000, 300_000).map(lambda n: "é" * n)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False),
    TEXT, NAMES,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = [value] if level % 2 else {"x": value}
    return value


DEEP = st.integers(20, 120).map(nested)
"""Deep but parseable; deeper than orjson's limit (255) is sent as raw bytes (see ``BODIES``)."""
ANY = st.one_of(JSON, DEEP, HUGE_TEXT)


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right shape, one time in ten anything at all (a wrong type, a huge or deep value)."""
    return st.one_of(*[valid] * 9, ANY)


QUANTITY = st.one_of(st.sampled_from(["100m", "1", "0.5", "64Mi", "1Gi", "2e3", "1.5Ki", "-1", "abc", ""]), SCALARS)
SECURITY_CONTEXT = st.fixed_dictionaries({}, optional={
    "privileged": maybe(st.booleans()),
    "allowPrivilegeEscalation": maybe(st.booleans()),
    "runAsNonRoot": maybe(st.booleans()),
    "runAsUser": maybe(st.integers(-1, 2**32)),
    "readOnlyRootFilesystem": maybe(st.booleans()),
    "capabilities": maybe(st.fixed_dictionaries({}, optional={
        "add": maybe(st.lists(maybe(st.sampled_from(["NET_ADMIN", "SYS_ADMIN", "ALL", "NET_BIND_SERVICE"])))),
        "drop": maybe(st.lists(maybe(st.sampled_from(["ALL", "NET_RAW"])))),
    })),
    "seccompProfile": maybe(st.fixed_dictionaries({"type": maybe(st.sampled_from(
        ["RuntimeDefault", "Unconfined", "Localhost"]))}, optional={"localhostProfile": maybe(TEXT)})),
    "seLinuxOptions": maybe(st.dictionaries(st.sampled_from(["type", "user", "role", "level"]), maybe(TEXT))),
    "procMount": maybe(st.sampled_from(["Default", "Unmasked"])),
    "appArmorProfile": maybe(st.fixed_dictionaries({"type": maybe(st.sampled_from(["RuntimeDefault", "Unconfined"]))})),
    "windowsOptions": maybe(st.fixed_dictionaries({}, optional={"hostProcess": maybe(st.booleans())})),
    "sysctls": maybe(st.lists(maybe(st.fixed_dictionaries({"name": maybe(TEXT), "value": maybe(TEXT)})))),
})
CONTAINER = st.fixed_dictionaries({"name": maybe(NAMES)}, optional={
    "image": maybe(st.sampled_from(["nginx", "nginx:latest", "registry.example.com/a/b@sha256:" + "a" * 64, ""])),
    "securityContext": maybe(SECURITY_CONTEXT),
    "resources": maybe(st.fixed_dictionaries({}, optional={
        "requests": maybe(st.dictionaries(st.sampled_from(["cpu", "memory", "nvidia.com/gpu"]), QUANTITY)),
        "limits": maybe(st.dictionaries(st.sampled_from(["cpu", "memory"]), QUANTITY)),
    })),
    "ports": maybe(st.lists(maybe(st.fixed_dictionaries({"containerPort": maybe(st.integers(0, 70000))},
                                                          optional={"hostPort": maybe(st.integers(0, 70000))})))),
    "env": maybe(st.lists(maybe(st.fixed_dictionaries({"name": maybe(TEXT)}, optional={"value": maybe(TEXT)})))),
    "envFrom": maybe(st.lists(JSON, max_size=2)),
    "volumeMounts": maybe(st.lists(maybe(st.fixed_dictionaries({"name": maybe(NAMES), "mountPath": maybe(TEXT)})))),
    "restartPolicy": maybe(st.just("Always")),
    "livenessProbe": maybe(st.fixed_dictionaries({}, optional={"httpGet": maybe(st.fixed_dictionaries(
        {"port": maybe(st.integers(0, 70000))}, optional={"host": maybe(TEXT)}))})),
})
POD_SPEC = st.fixed_dictionaries({"containers": maybe(st.lists(maybe(CONTAINER), min_size=1, max_size=3))}, optional={
    "initContainers": maybe(st.lists(maybe(CONTAINER), max_size=2)),
    "ephemeralContainers": maybe(st.lists(maybe(CONTAINER), max_size=1)),
    "securityContext": maybe(SECURITY_CONTEXT),
    "hostNetwork": maybe(st.booleans()), "hostPID": maybe(st.booleans()), "hostIPC": maybe(st.booleans()),
    "volumes": maybe(st.lists(maybe(st.dictionaries(
        st.sampled_from(["name", "hostPath", "emptyDir", "configMap", "projected", "csi", "nfs"]), JSON)),
        max_size=3)),
    "os": maybe(st.fixed_dictionaries({"name": maybe(st.sampled_from(["linux", "windows"]))})),
    "runtimeClassName": maybe(TEXT),
    "serviceAccountName": maybe(TEXT),
    "automountServiceAccountToken": maybe(st.booleans()),
})
METADATA = st.fixed_dictionaries({}, optional={
    "name": maybe(NAMES), "generateName": maybe(TEXT), "namespace": maybe(TEXT),
    "labels": maybe(st.dictionaries(TEXT, maybe(TEXT), max_size=4)),
    "annotations": maybe(st.dictionaries(
        st.one_of(TEXT, st.sampled_from(["sidecar.admission.dev/inject", "defaults.admission.dev/mutate",
                                         "sidecar.admission.dev/sidecars"])),
        maybe(st.sampled_from(["true", "false", "log-shipper", "nope"])), max_size=4)),
})


def workload(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    template = st.fixed_dictionaries({"spec": maybe(POD_SPEC)}, optional={"metadata": maybe(METADATA)})
    if kind == "Pod":
        spec = POD_SPEC
    elif kind == "CronJob":
        spec = st.fixed_dictionaries({"jobTemplate": maybe(st.fixed_dictionaries(
            {"spec": maybe(st.fixed_dictionaries({"template": maybe(template)}))}))})
    else:
        spec = st.fixed_dictionaries({"template": maybe(template)}, optional={"replicas": maybe(st.integers())})
    api = "v1" if kind == "Pod" else "batch/v1" if kind == "CronJob" else "apps/v1"
    return st.fixed_dictionaries({"apiVersion": maybe(st.just(api)), "kind": maybe(st.just(kind)),
                                  "spec": maybe(spec)}, optional={"metadata": maybe(METADATA)})


KINDS = ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"]
OTHER_OBJECTS = st.one_of(
    st.fixed_dictionaries({"kind": st.sampled_from(["ClusterRole", "Role"]), "rules": maybe(st.lists(
        maybe(st.dictionaries(st.sampled_from(["verbs", "resources", "apiGroups", "nonResourceURLs"]),
                              maybe(st.lists(maybe(st.sampled_from(["*", "get", "pods", "secrets", ""])))))),
        max_size=3))}),
    st.fixed_dictionaries({"kind": st.sampled_from(["PersistentVolumeClaim", "StorageClass", "PersistentVolume"]),
                           "spec": JSON}),
    JSON,
)


@st.composite
def admission_reviews(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from([*KINDS, "ClusterRole", "PersistentVolumeClaim", "StorageClass", "Widget"]))
    obj = draw(workload(kind) if kind in KINDS else OTHER_OBJECTS)
    group, version, resource = conftest.GROUPS.get(kind, ("example.com", "v1", kind.lower() + "s"))
    request: dict[str, Any] = {
        "uid": str(draw(st.uuids())), "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "name": draw(NAMES), "namespace": "default", "userInfo": {"username": "alice"}, "object": obj,
        "oldObject": None, "dryRun": False,
    }
    review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    request["operation"] = draw(st.sampled_from(["CREATE", "CREATE", "UPDATE", "DELETE", "CONNECT"]))
    if request["operation"] in ("UPDATE", "DELETE"):
        request["oldObject"] = draw(maybe(workload(kind) if kind in KINDS else OTHER_OBJECTS))
    # Mostly a well-formed envelope (so the policies see the random objects); sometimes broken.
    if draw(st.sampled_from([False, False, False, True])):
        for field, strategy in (
            ("uid", ANY), ("operation", ANY), ("kind", ANY), ("namespace", ANY), ("userInfo", ANY),
            ("dryRun", ANY), ("object", ANY),
        ):
            if draw(st.sampled_from([False, False, False, False, True])):
                request[field] = draw(strategy)
        for field in draw(st.lists(st.sampled_from(sorted(request)), max_size=2, unique=True)):
            del request[field]
    if isinstance(request.get("namespace"), str):
        request["namespace"] = draw(st.sampled_from(["default", "default", "default", "kube-system", "", "ns"]))
    if draw(st.sampled_from([False, False, False, False, True])):
        request["subResource"] = draw(st.sampled_from(["status", "ephemeralcontainers", "exec"]))
    if draw(st.booleans()):
        request["userInfo"] = {"username": draw(TEXT), "groups": draw(st.lists(TEXT, max_size=3))}
    if draw(st.sampled_from([False] * 9 + [True])):
        review["apiVersion"] = draw(st.sampled_from(["admission.k8s.io/v1beta1", "v1", ""]))
    return review


def dumps(value: Any) -> bytes:
    """The stdlib encoder: unlike orjson it writes integers beyond 64 bits, as a client could."""
    return json.dumps(value, ensure_ascii=False).encode()


BODIES = st.one_of(
    *[admission_reviews().map(dumps)] * 8,
    JSON.map(dumps),
    DEEP.map(dumps),
    st.integers(256, 5000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.binary(max_size=200),
)


# --- the property ---------------------------------------------------------------------------------


def _app() -> web.Application:
    serve_settings = config.ServeSettings(policies=(conftest.REPO / "policies",), max_body_bytes=2 * 1024 * 1024)
    return server.build_app(serve_settings)


def _paths() -> list[str]:
    policy_set = catalog.load([conftest.REPO / "policies"])
    return ["/mutate", "/validate"] + [f"/mutate/{g}" for g in policy_set.groups("mutating")] + [
        f"/validate/{g}" for g in policy_set.groups("validating")]


PATHS = _paths()


async def check_one(client: TestClient, path: str, body: bytes) -> None:  # type: ignore[type-arg]
    async with asyncio.timeout(10):  # "never hangs"
        # aiohttp's client warns about sending large raw bytes in one go; stream those.
        data = io.BytesIO(body) if len(body) > 512 * 1024 else body
        response = await client.post(path, data=data, headers={"Content-Type": "application/json"})
        raw = await response.read()
    assert response.content_type == "application/json", (response.status, raw[:200])
    answer = orjson.loads(raw)
    assert response.status < 500, answer
    if response.status != 200:
        assert response.status in (400, 413) and isinstance(answer["error"], str) and answer["error"]
        return
    sent = json.loads(body)
    request = sent["request"]
    result = answer["response"]
    assert answer["apiVersion"] == sent["apiVersion"]
    assert result["uid"] == request["uid"]
    assert isinstance(result["allowed"], bool)
    if "patch" in result:
        assert result["allowed"] is True and result["patchType"] == "JSONPatch"
        ops = orjson.loads(base64.b64decode(result["patch"]))
        patched = jsonpatch.apply_patch(request["object"], ops)  # raises if any op does not apply
        assert patched != request["object"]
    if not result["allowed"]:
        assert result["status"]["code"] == 403 and result["status"]["message"]


async def run_fuzz(client: TestClient, examples: int) -> None:  # type: ignore[type-arg]
    @settings(max_examples=examples, deadline=None, database=None, derandomize=examples <= 200,
              suppress_health_check=list(HealthCheck))
    @given(path=st.sampled_from(PATHS), body=BODIES)
    def example(path: str, body: bytes) -> None:
        future = asyncio.run_coroutine_threadsafe(check_one(client, path, body), loop)
        future.result(timeout=30)

    loop = asyncio.get_running_loop()
    # Hypothesis drives synchronously; the examples run on this loop, which the thread leaves free.
    await asyncio.to_thread(example)
    health = await client.get("/healthz")
    assert health.status == 200  # "never crashes": still serving after everything


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    """Send the server's log lines to /dev/null: reviews carrying 300 KB names would otherwise pile
    up in pytest's output capture over thousands of examples (the lines are still rendered)."""
    saved = structlog.get_config()
    with open(os.devnull, "w") as sink:  # noqa: PTH123
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sink))
        try:
            yield
        finally:
            structlog.configure(**saved)


# Hypothesis warns when it renders a huge example for its statistics; huge examples are the point.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


async def test_fuzzed_reviews_get_json_answers_and_applicable_patches(
    aiohttp_client: ClientFactory, quiet_logs: None
) -> None:
    await run_fuzz(await aiohttp_client(_app()), EXAMPLES)


@pytest.mark.slow
async def test_fuzzed_reviews_long_run(aiohttp_client: ClientFactory, quiet_logs: None) -> None:
    await run_fuzz(await aiohttp_client(_app()), int(os.environ.get("FUZZ_EXAMPLES", "2000")))
