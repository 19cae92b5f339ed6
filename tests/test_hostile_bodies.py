"""What one review may cost: bodies are measured before they are parsed, refused past the limits,
the engine survives any nesting, and the recorder charges its queue by what a recording costs.

The last tests run a real server process and read its peak memory (``VmHWM``) after 16 hostile
bodies of up to 7 MiB at once, with and without ``--record``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import io
import json
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import conftest, serve_support
from webhook import catalog, config, engine, errors, recorder, review, server

ClientFactory = Any
MiB = 1024 * 1024
LIMITS = review.Limits()


def envelope(filler: bytes, *, kind: str = "Pod") -> bytes:
    """A valid AdmissionReview for a Pod whose ``metadata.annotations`` is ``filler`` (raw JSON)."""
    pod = conftest.pod("hostile")
    pod["metadata"]["annotations"] = {"x": "FILLER"}
    return orjson.dumps(conftest.admission_review(pod, kind=kind)).replace(b'{"x":"FILLER"}', filler)


def nested(levels: int, inner: bytes = b"{}") -> bytes:
    return b'{"a":' * levels + inner + b"}" * levels


def wrapped(document: Any, text: bytes | None = None) -> bytes:
    """``document`` as JSON, or ``text`` as it is, inside a valid review (depth +5: the envelope and
    ``request.object.metadata.annotations``)."""
    return envelope(b'{"v":' + (text if text is not None else json.dumps(document).encode()) + b"}")


# --- measuring without parsing --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "containers", "values", "depth"),
    [
        pytest.param(b'"[{,}]"', 0, 1, 0, id="brackets-and-commas-in-a-string"),
        pytest.param(b'{"a":[1,2,{}],"b":"x"}', 3, 7, 3, id="object"),
        pytest.param(b'["\\"[[[", "\\\\", "]]]\\\\\\""]', 1, 4, 1, id="escaped-quotes-and-backslashes"),
        pytest.param(b'[{"k:{\\"name\\":\\"app\\"}":{".":{}}}]', 4, 5, 4, id="managed-fields-key"),
        pytest.param(b'["\\n]]]]]]]]", [[[["\\u005d"]]]]]', 5, 7, 5, id="escapes-that-are-not-quotes"),
    ],
)
def test_what_strings_hold_counts_for_nothing(text: bytes, containers: int, values: int, depth: int) -> None:
    """At exactly these limits the body is accepted, with any one lower it is refused: only the
    exact counts (strings left out) can decide that; the first counts take strings in."""
    at_the_limits = review.Limits(max_depth=depth, max_containers=containers, max_values=values)
    at_the_limits.check(review.measure(text, limits=at_the_limits))
    for lower in ({"max_depth": depth - 1}, {"max_containers": containers - 1}, {"max_values": values - 1}):
        tighter = dataclasses.replace(at_the_limits, **lower)
        if min(dataclasses.astuple(tighter)) < 0:
            continue
        with pytest.raises(errors.BadReview):
            tighter.check(review.measure(text, limits=tighter))
    # On the parsed document, an empty object or array is one value; on the bytes, two.
    parsed = review.shape_of(json.loads(text), depth_limit=99)
    assert (parsed.containers, parsed.depth) == (containers, depth) and parsed.values <= values


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text("[]{},\"\\:a\n/é", max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text("[]{},\"\\a", max_size=4), inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=JSON, limits=st.builds(review.Limits, st.integers(0, 8), st.integers(0, 30), st.integers(0, 60)))
def test_what_the_bytes_decide_holds_for_the_parsed_document(document: Any, limits: review.Limits) -> None:
    """Whatever strings hold: a body accepted is within the limits once parsed, and a body within
    them is accepted (values may count each empty object or array twice). An undecided depth is
    decided on the parsed document, as :func:`review.parse` does."""
    text = json.dumps(document).encode()
    truth = review.shape_of(document, depth_limit=10**6)
    assert truth.depth is not None
    try:
        shape = review.measure(text, limits=limits)
        limits.check(shape)
        if shape.depth is None:
            limits.check(review.shape_of(document, depth_limit=limits.max_depth))
    except errors.BadReview:
        accepted = False
    else:
        accepted = True
    within = truth.containers <= limits.max_containers and truth.depth <= limits.max_depth
    empties = text.count(b"{}") + text.count(b"[]")  # an upper bound: strings may hold "{}" too
    if accepted:
        assert within and truth.values <= limits.max_values
    elif within:
        assert truth.values + empties > limits.max_values


def test_measuring_a_pod_review_is_cheap_and_decides_on_the_first_counts() -> None:
    from bench import reviews

    shape = review.measure(reviews.bodies()["pod"], limits=LIMITS)
    assert shape.containers < LIMITS.max_depth and shape.depth == shape.containers


# --- the limits, through the real app -------------------------------------------------------------


def app_client(aiohttp_client: ClientFactory, tmp_path: Path, **limits: int) -> Any:
    settings_ = config.ServeSettings(policies=(conftest.REPO / "policies",))
    policy_set = catalog.load(settings_.policies)
    return aiohttp_client(server.build_app(settings_, policy_set=policy_set, limits=review.Limits(**limits)))


async def post(client: TestClient, path: str, body: bytes) -> tuple[int, dict[str, Any]]:  # type: ignore[type-arg]
    # A BytesIO: aiohttp warns about large raw bytes bodies (and the suite turns warnings into errors).
    resp = await client.post(path, data=io.BytesIO(body), headers={"Content-Type": "application/json"})
    assert resp.content_type == "application/json"
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        pytest.param(wrapped(None, b"[" + b",".join([b"{}"] * 2_001) + b"]"), 413,
                     "JSON objects and arrays, over the limit of 2,000 per review", id="empty-objects"),
        pytest.param(wrapped(None, b"[" + b",".join([b"1"] * 5_001) + b"]"), 413,
                     "JSON values, over the limit of 5,000 per review", id="numbers"),
        pytest.param(wrapped(None, nested(60)), 400,
                     "body is nested more than 50 levels deep, over the limit per review", id="deep"),
        pytest.param(wrapped(None, b"[" + b",".join([nested(46)] * 30) + b"]"), 400,
                     "body is nested more than 50 levels deep", id="deep-and-wide"),
        pytest.param(wrapped(None, nested(1500)), 400,
                     "body is nested more than 50 levels deep", id="deeper-than-orjson-parses"),
    ],
)
async def test_a_body_past_the_limits_is_refused_before_it_is_parsed(
    aiohttp_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: bytes, status: int,
    message: str,
) -> None:
    client = await app_client(aiohttp_client, tmp_path, max_depth=50, max_containers=2_000, max_values=5_000)
    parsed: list[int] = []
    real_loads = review.orjson.loads

    def counting_loads(data: Any) -> Any:
        parsed.append(len(data))
        return real_loads(data)

    monkeypatch.setattr(review.orjson, "loads", counting_loads)
    answer = await post(client, "/mutate", body)
    assert answer[0] == status and message in answer[1]["error"], answer
    assert parsed == []  # refused on what the bytes hold: never parsed
    assert (await client.get("/metrics")).status == 200  # and the server answers on


def nested_schema(levels: int) -> dict[str, Any]:
    """An openAPIV3Schema nesting ``levels`` fields: two levels of JSON each (properties, name)."""
    schema: dict[str, Any] = {"type": "string"}
    for level in range(levels):
        schema = {"type": "object", "properties": {f"f{level}": schema}}
    return schema


@pytest.mark.parametrize("path", ["/mutate", "/validate"])
@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"data": {f"k{i}": "v" * 3000 for i in range(1000)}}, id="configmap-3mib"),
        pytest.param({"data": {f"dash{i}.json": json.dumps({"panels": [{"targets": [{"expr": "up"}]}] * 40})
                               for i in range(1200)}}, id="configmap-of-json-documents"),
        pytest.param({"spec": {"items": [{"name": f"n{i}", "port": i, "tags": ["a", "b"]} for i in range(45_000)]}},
                     id="custom-resource-2.5mib-of-small-records"),
        pytest.param({"spec": {"schema": nested_schema(40)}}, id="crd-schema-80-levels"),
    ],
)
async def test_real_objects_of_3_mib_are_answered_with_the_default_limits(
    aiohttp_client: ClientFactory, tmp_path: Path, document: dict[str, Any], path: str
) -> None:
    client = await app_client(aiohttp_client, tmp_path)
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big", "namespace": "default"}, **document}
    body = orjson.dumps(conftest.admission_review(obj))
    assert len(body) < 3.2 * MiB
    status, answer = await post(client, path, body)
    assert status == 200 and answer["response"]["allowed"] is True, answer


# --- the engine never fails on nesting ------------------------------------------------------------


@pytest.mark.parametrize("levels", [300, 600, 900, 1015])
def test_the_engine_answers_or_refuses_any_nesting_orjson_can_parse(levels: int) -> None:
    """Offline ``review`` has no server limit: the engine must answer, or refuse with a
    ``BadReview``, never let a ``RecursionError`` out (copy.deepcopy raised one from 490 levels)."""
    policy_set = catalog.load((conftest.REPO / "policies",))
    parsed = review.parse(envelope(b'{"deep":' + nested(levels, b'"x"') + b"}"), limits=review.Limits(max_depth=2_000))
    for chain in ("mutating", "validating"):
        try:
            engine.evaluate(policy_set, parsed.object, parsed.context, chain=chain)  # type: ignore[arg-type]
        except errors.BadReview as exc:
            assert "nested too deeply" in str(exc)


async def test_a_deep_object_past_a_raised_limit_is_a_400_not_a_500(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await app_client(aiohttp_client, tmp_path, max_depth=2_000)
    for levels in (490, 700, 1015):
        status, answer = await post(client, "/mutate", envelope(b'{"deep":' + nested(levels, b'"x"') + b"}"))
        assert status in (200, 400), answer
        if status == 400:
            assert "nested too deeply" in answer["error"]


# --- the recorder charges what a recording costs --------------------------------------------------


@pytest.fixture
def blocked_writer(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    release = threading.Event()
    original = recorder.Recorder._write

    def slow_write(self: recorder.Recorder, job: Any) -> None:
        release.wait(10)
        original(self, job)

    monkeypatch.setattr(recorder.Recorder, "_write", slow_write)
    yield release
    release.set()


def test_the_queue_is_charged_by_parsed_size_not_by_bytes(tmp_path: Path, blocked_writer: threading.Event) -> None:
    rec = recorder.Recorder(tmp_path / "rec")
    small = orjson.dumps(conftest.admission_review(conftest.pod(), uid="small"))
    rec.submit(review.parse(small), review.allowed("small"), path="/validate", raw=small)  # taken by the writer
    # 0.6 MiB of one-key objects: 80,000 dicts and as many members, about 25 MB once parsed.
    dense = envelope(b"[" + b",".join([b'{"a":1}'] * 80_000) + b"]")
    parsed = review.parse(dense)
    taken = []
    for _ in range(3):
        before = rec.dropped
        rec.submit(parsed, review.allowed(parsed.uid), path="/validate", raw=dense)
        taken.append(rec.dropped == before)
    # Charged by bytes all three fit in the queue's 64 MiB; by what writing them costs, one does.
    assert taken == [True, False, False]
    blocked_writer.set()
    rec.close()
    assert rec.written == 2


class _Weakable:
    """A value in a review that a weak reference can watch (dicts and lists cannot be watched)."""


def test_a_queued_recording_keeps_the_raw_body_not_the_parsed_objects(
    tmp_path: Path, blocked_writer: threading.Event
) -> None:
    rec = recorder.Recorder(tmp_path / "rec")
    body = orjson.dumps(conftest.admission_review(conftest.pod(), uid="raw"))
    parsed = review.parse(body)
    assert parsed.object is not None
    watched = _Weakable()
    parsed.object["metadata"]["watched"] = watched
    alive = weakref.ref(watched)
    rec.submit(parsed, review.allowed("raw"), path="/validate", raw=body)
    rec.submit(parsed, review.allowed("raw"), path="/validate", raw=body)  # queued behind the blocked one
    del parsed, watched
    gc.collect()
    assert alive() is None  # the request's objects go with the request; the writer parses the body again
    blocked_writer.set()
    rec.close()
    assert rec.written == 2


def test_large_recordings_are_written_without_indentation(tmp_path: Path) -> None:
    rec = recorder.Recorder(tmp_path / "rec")
    deep = envelope(b'{"v":' + b"[" + b",".join([nested(40, b"1")] * 4000) + b"]}")
    small = orjson.dumps(conftest.admission_review(conftest.pod(), uid="small"))
    for body in (deep, small):
        parsed = review.parse(body)
        rec.submit(parsed, review.allowed(parsed.uid), path="/validate", raw=body)
    rec.close()
    big_file, small_file = rec.files()
    # Indented, each of the 160,000 nested lines would start with up to 90 spaces (about 8 MB).
    assert big_file.stat().st_size < 2 * len(deep)
    assert b'\n  "apiVersion"' in small_file.read_bytes()


# --- a real server under 16 hostile bodies at once --------------------------------------------------

BODY_LIMIT = 7 * MiB
REFUSED = {
    "empty-objects": lambda: envelope(b"[" + b",".join([b"{}"] * ((BODY_LIMIT - 2000) // 3)) + b"]"),
    "deep": lambda: envelope(b'{"deep":' + nested(5000) + b',"pad":"' + b"p" * (BODY_LIMIT - 40_000) + b'"}'),
    "deep-chains": lambda: envelope(b"[" + b",".join([nested(120)] * 1000) + b',"' + b"p" * (BODY_LIMIT - 900_000)
                                    + b'"]'),
    "wide": lambda: envelope(b"{" + b",".join(b'"k%d":0' % i for i in range(560_000)) + b"}"),
}
"""Over the limits: refused on their counts, never parsed."""
ACCEPTED = {
    "one-key-objects": lambda: envelope(b"[" + b",".join([b'{"a":1}'] * 199_000) + b"]"),
    "members": lambda: envelope(b"{" + b",".join(b'"k%d":"v"' % i for i in range(499_000)) + b"}"),
    "strings": lambda: envelope(b"[" + b",".join([b'"a"'] * 499_000) + b"]"),
    "deep-at-the-limit": lambda: envelope(b"[" + b",".join([nested(90, b"1")] * 2000) + b"]"),
}
"""Just within the limits: parsed, evaluated (on /mutate too) and, with --record, recorded."""

IN_FLIGHT = 16 * BODY_LIMIT
REFUSED_BOUND = 3 * IN_FLIGHT
"""Peak memory above idle while 16 refused bodies of 7 MiB are in flight: three copies of each
(aiohttp's read buffer, the bytes it returns, what the measuring cuts out of them), 336 MiB; the
server is measured at 195-240 MiB. Before the limits these same bodies took 406 MiB, and 16 of
``[{},{},...]`` alone 771 MiB."""
ACCEPTED_BOUND = REFUSED_BOUND + 4 * 60 * MiB
"""... then 16 bodies just within the limits: the bodies, plus one review at a time being
evaluated, whose parsed form the limits keep under about 60 MB, held up to four times on /mutate
(the object, the mutated copy, the scratch copy of an advisory mutation and the next one being
made): 576 MiB; measured 320-340 MiB."""
RECORD_BOUND = ACCEPTED_BOUND + 64 * MiB
"""... plus the recorder's queue (``recorder._QUEUE_BYTES`` of estimated cost): 640 MiB; measured
about 430 MiB."""


def memory(pid: int) -> tuple[int, int]:
    """Resident and peak resident bytes of ``pid`` (``VmRSS``, ``VmHWM``)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


async def send_at_once(base: str, cert_dir: Path, bodies: list[tuple[str, bytes]]) -> list[int]:
    connector = aiohttp.TCPConnector(ssl=serve_support.client_context(cert_dir), limit=len(bodies))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def one(path: str, body: bytes) -> int:
            async with session.post(f"{base}{path}?timeout=30s", data=io.BytesIO(body),
                                    headers={"Content-Type": "application/json"}) as response:
                await response.read()
                return response.status

        return await asyncio.gather(*(one(path, body) for path, body in bodies))


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serve_support.make_certs(tmp_path_factory.mktemp("hostile-certs"))


@pytest.fixture(scope="module")
def hostile() -> tuple[dict[str, bytes], dict[str, bytes]]:
    refused = {name: make() for name, make in REFUSED.items()}
    accepted = {name: make() for name, make in ACCEPTED.items()}
    assert all(len(body) <= BODY_LIMIT for body in [*refused.values(), *accepted.values()])
    return refused, accepted


@pytest.mark.parametrize("record", [False, True], ids=["plain", "record"])
async def test_16_hostile_bodies_at_once_stay_within_a_memory_bound(
    cert_dir: Path, tmp_path: Path, hostile: tuple[dict[str, bytes], dict[str, bytes]], record: bool
) -> None:
    refused, accepted = hostile
    port = serve_support.free_port()
    args = ["--record", str(tmp_path / "rec")] if record else []
    process = serve_support.start(cert_dir, port, *args, log=tmp_path / "server.log")
    with serve_support.reaped(process):
        base = f"https://127.0.0.1:{port}"
        await asyncio.to_thread(serve_support.wait_ready, base, cert_dir, process)
        idle, _ = memory(process.pid)

        names = list(refused)
        statuses = await send_at_once(base, cert_dir, [
            ("/mutate" if i % 2 else "/validate", refused[names[i % len(names)]]) for i in range(16)
        ])
        assert sorted(set(statuses)) == [400, 413]
        _, peak = memory(process.pid)
        assert peak - idle <= REFUSED_BOUND, f"peak {peak / MiB:.0f} MiB, idle {idle / MiB:.0f} MiB"

        names = list(accepted)
        statuses = await send_at_once(base, cert_dir, [
            ("/mutate" if i % 2 else "/validate", accepted[names[i % len(names)]]) for i in range(16)
        ])
        assert statuses == [200] * 16
        await asyncio.sleep(1.0 if record else 0)  # let the recorder write what it took
        _, peak = memory(process.pid)
        bound = RECORD_BOUND if record else ACCEPTED_BOUND
        assert peak - idle <= bound, f"peak {peak / MiB:.0f} MiB, idle {idle / MiB:.0f} MiB"
        print(f"\nidle {idle / MiB:.0f} MiB, peak {peak / MiB:.0f} MiB (record={record})")
