"""Fault injection: the config format, each failure type through a real app, and the admin API."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request

from webhook import appstate, config, faults

ClientFactory = Any
REVIEW = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u-1"}}


async def answer(request: web.Request) -> web.Response:
    review = await request.json()
    return web.json_response(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": {"uid": review["request"]["uid"], "allowed": True},
        }
    )


def app_with(state: faults.State | None) -> web.Application:
    app = web.Application(middlewares=[faults.middleware])
    if state is not None:
        app[faults.FAULTS] = state
    app.router.add_post("/validate", answer)
    app.router.add_post("/mutate", answer)
    return app


def state(path: str = "/validate", **fault: Any) -> faults.State:
    return faults.State(faults.FaultFile(paths={path: faults.FaultConfig(**fault)}))


async def test_without_state_the_middleware_does_nothing(aiohttp_client: ClientFactory) -> None:
    client: TestClient = await aiohttp_client(app_with(None))  # type: ignore[type-arg]
    resp = await client.post("/validate", json=REVIEW)
    assert resp.status == 200
    assert (await resp.json())["response"] == {"uid": "u-1", "allowed": True}


async def test_http500(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(app_with(state(failure="http500")))
    resp = await client.post("/validate", json=REVIEW)
    assert (resp.status, resp.content_type, await resp.text()) == (
        500,
        "text/plain",
        "fault injected: HTTP 500",
    )
    assert resp.headers["X-Fault-Injected"] == "http500"


async def test_other_paths_are_untouched(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(app_with(state(failure="http500")))
    assert (await client.post("/mutate", json=REVIEW)).status == 200


async def test_malformed_cuts_the_real_answer_in_half(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(app_with(state(failure="malformed")))
    resp = await client.post("/validate", json=REVIEW)
    body = await resp.read()
    assert resp.status == 200 and resp.content_type == "application/json"
    assert body.startswith(b'{"apiVersion": "admission.k8s.io/v1"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


async def test_wrong_uid_keeps_everything_else(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(app_with(state(failure="wrong_uid")))
    body = await (await client.post("/validate", json=REVIEW)).json()
    assert body["response"]["allowed"] is True
    assert body["response"]["uid"] != "u-1" and len(body["response"]["uid"]) == 36


async def test_invalid_patch(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(app_with(state("/mutate", failure="invalid_patch")))
    response = (await (await client.post("/mutate", json=REVIEW)).json())["response"]
    assert response["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(response["patch"])) == [
        {"op": "add", "path": "/faultInjection/missing", "value": True}
    ]


async def test_reset_closes_the_connection_without_an_answer(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(app_with(state(failure="reset")))
    with pytest.raises((aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)):
        await client.post("/validate", json=REVIEW)


async def test_fixed_delay_then_the_real_answer(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(app_with(state(delay=faults.Delay(fixed=0.2))))
    loop_time = __import__("time").perf_counter
    started = loop_time()
    resp = await client.post("/validate", json=REVIEW)
    assert resp.status == 200 and loop_time() - started >= 0.2


def test_random_delays_stay_in_range_and_repeat_with_a_seed() -> None:
    delay = faults.Delay(min=0.1, max=0.3)
    first = faults.State(faults.FaultFile(seed=7))
    second = faults.State(faults.FaultFile(seed=7))
    samples = [delay.sample(first.random) for _ in range(50)]
    assert all(0.1 <= s <= 0.3 for s in samples)
    assert samples == [delay.sample(second.random) for _ in range(50)]


async def test_error_rate_applies_the_failure_to_that_share_of_requests(
    aiohttp_client: ClientFactory,
) -> None:
    shared = faults.State(
        faults.FaultFile(seed=1, paths={"/validate": faults.FaultConfig(failure="http500", error_rate=0.5)})
    )
    client = await aiohttp_client(app_with(shared))
    statuses = [(await client.post("/validate", json=REVIEW)).status for _ in range(40)]
    assert 10 <= statuses.count(500) <= 30 and statuses.count(200) == 40 - statuses.count(500)


def test_exact_path_wins_over_a_glob() -> None:
    file = faults.FaultFile(
        paths={"*": faults.FaultConfig(failure="hang"), "/validate": faults.FaultConfig(failure="http500")}
    )
    assert file.for_path("/validate") == faults.FaultConfig(failure="http500")
    assert file.for_path("/mutate/labels") == faults.FaultConfig(failure="hang")
    assert faults.FaultFile().for_path("/validate") is None


@pytest.mark.parametrize(
    ("query", "seconds"),
    [("?timeout=1s", 1.0), ("?timeout=1m0s", 60.0), ("", 25.0), ("?timeout=bogus", 25.0), ("?timeout=0s", 25.0),
     ("?a=1&timeout=7s", 7.0), ("?timeout=%31s", 1.0)],
)
def test_the_callers_timeout_is_parsed_as_a_go_duration_else_the_default(query: str, seconds: float) -> None:
    app = web.Application()
    app[appstate.SETTINGS] = config.ServeSettings(default_timeout=25)
    request = make_mocked_request("POST", f"/validate{query}", app=app)
    assert appstate.caller_timeout(request) == seconds
    assert appstate.caller_timeout(request) == seconds  # the second time from what the first kept
    other = web.Application()  # what is kept by query string is the timeout, not one app's default
    other[appstate.SETTINGS] = config.ServeSettings(default_timeout=3)
    expected = 3.0 if seconds == 25.0 else seconds
    assert appstate.caller_timeout(make_mocked_request("POST", f"/validate{query}", app=other)) == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"kind": "FaultInjection", "paths": {"/v": {"delay": {"fixed": 1, "min": 0}}}},
            "x.yaml: paths./v.delay: give either fixed, or min and max",
        ),
        (
            {"kind": "FaultInjection", "paths": {"/v": {"delay": {"min": 2, "max": 1}}}},
            "x.yaml: paths./v.delay: min and max are both required, with min <= max",
        ),
        (
            {"kind": "FaultInjection", "paths": {"/v": {"failure": "explode"}}},
            "x.yaml: paths./v.failure: Input should be 'http500', 'reset', 'hang', 'malformed', 'wrong_uid' or "
            "'invalid_patch'",
        ),
        (
            {"kind": "FaultInjection", "paths": {"/v": {"errorRate": 2}}},
            "x.yaml: paths./v.errorRate: Input should be less than or equal to 1",
        ),
        ({"kind": "FaultInjection", "pathz": {}}, "x.yaml: pathz: Extra inputs are not permitted"),
        (["not", "a", "mapping"], "x.yaml: expected a mapping with apiVersion, kind and paths"),
    ],
)
def test_invalid_configs_name_the_field(data: Any, message: str) -> None:
    with pytest.raises(faults.FaultConfigError) as caught:
        faults.parse(data, source="x.yaml")
    assert str(caught.value) == message


def test_load_reads_yaml(tmp_path: Path) -> None:
    path = tmp_path / "faults.yaml"
    path.write_text(
        "apiVersion: admission.dev/v1alpha1\nkind: FaultInjection\nseed: 3\npaths:\n"
        "  /validate: {delay: {min: 0.1, max: 0.4}, errorRate: 0.25, failure: http500}\n"
    )
    loaded = faults.load(path)
    assert loaded.seed == 3
    assert loaded.paths["/validate"] == faults.FaultConfig(
        delay=faults.Delay(min=0.1, max=0.4), error_rate=0.25, failure="http500"
    )
    with pytest.raises(faults.FaultConfigError, match="missing.yaml: cannot read"):
        faults.load(tmp_path / "missing.yaml")


async def test_admin_api_changes_faults_at_run_time(aiohttp_client: ClientFactory) -> None:
    shared = faults.State()
    server = await aiohttp_client(app_with(shared))
    admin = await aiohttp_client(faults.admin_app(shared))
    assert await (await admin.get("/faults")).json() == {
        "apiVersion": "admission.dev/v1alpha1",
        "kind": "FaultInjection",
        "paths": {},
    }
    put = await admin.put("/faults", data="kind: FaultInjection\npaths:\n  /validate: {failure: http500}\n")
    assert put.status == 200
    assert (await put.json())["paths"] == {"/validate": {"errorRate": 1.0, "failure": "http500"}}
    assert (await server.post("/validate", json=REVIEW)).status == 500
    assert (await admin.delete("/faults")).status == 200
    assert (await server.post("/validate", json=REVIEW)).status == 200


async def test_admin_api_refuses_invalid_faults_and_keeps_the_old_ones(aiohttp_client: ClientFactory) -> None:
    shared = state(failure="http500")
    admin = await aiohttp_client(faults.admin_app(shared))
    resp = await admin.put("/faults", json={"kind": "FaultInjection", "paths": {"/v": {"failure": "nope"}}})
    assert resp.status == 400
    assert (await resp.json())["error"].startswith("PUT /faults: paths./v.failure: Input should be 'http500'")
    assert shared.faults.paths["/validate"].failure == "http500"


def test_admin_binds_loopback_only() -> None:
    with pytest.raises(faults.FaultConfigError, match="loopback only, not 0.0.0.0"):
        faults.admin_context(faults.State(), port=9999, host="0.0.0.0")


async def test_admin_context_serves_while_the_app_runs() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = app_with(faults.State())
    app.cleanup_ctx.append(faults.admin_context(app[faults.FAULTS], port=port))
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/faults") as resp:
            assert resp.status == 200
    finally:
        await runner.cleanup()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
