"""Call errors outside the review itself answer in JSON too: compressed bodies, bodies aiohttp
cannot read, requests its HTTP parser rejects (over raw sockets, against the served app); and the
fault admin API refuses to listen anywhere but on loopback."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests import conftest, serve_support
from webhook import catalog, cli, config, faults, server

ClientFactory = Any
REVIEW = json.dumps(conftest.admission_review(conftest.pod())).encode()


@pytest.fixture
async def client(aiohttp_client: ClientFactory) -> TestClient:  # type: ignore[type-arg]
    settings = config.ServeSettings(policies=(conftest.REPO / "policies",))
    app = server.build_app(settings, policy_set=catalog.load(settings.policies))
    return await aiohttp_client(app)


# --- compressed bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        pytest.param("gzip", REVIEW, id="gzip-header-plain-body"),
        pytest.param("gzip", gzip.compress(REVIEW), id="gzip-body"),
        pytest.param("identity, gzip", gzip.compress(REVIEW), id="a-list"),
    ],
)
async def test_a_compressed_body_is_refused_with_415_before_it_is_read(
    client: TestClient, encoding: str, body: bytes  # type: ignore[type-arg]
) -> None:
    """The API server never compresses what it sends to a webhook. Any Content-Encoding but
    identity is refused from its header alone, decompressed or not: 415 (RFC 9110: a content coding
    the server does not accept), saying which codings are (``Accept-Encoding: identity``)."""
    headers = {"Content-Type": "application/json", "Content-Encoding": encoding}
    resp = await client.post("/validate", data=body, headers=headers)
    assert resp.status == 415 and resp.content_type == "application/json"
    assert resp.headers["Accept-Encoding"] == "identity"
    error = (await resp.json())["error"]
    assert error == f"Content-Encoding {encoding!r} is not supported; send the body uncompressed"
    assert "unsupported_encoding" in await (await client.get("/metrics")).text()


async def test_identity_is_no_encoding(client: TestClient) -> None:  # type: ignore[type-arg]
    headers = {"Content-Type": "application/json", "Content-Encoding": "identity"}
    resp = await client.post("/validate", data=REVIEW, headers=headers)
    assert resp.status == 200 and (await resp.json())["response"]["allowed"] is True


async def test_a_body_aiohttp_cannot_read_is_a_400(
    client: TestClient, monkeypatch: pytest.MonkeyPatch  # type: ignore[type-arg]
) -> None:
    async def broken(self: web.Request) -> bytes:
        raise web.RequestPayloadError("Not enough data to satisfy transfer length header.")

    monkeypatch.setattr(web.Request, "read", broken)
    resp = await client.post("/validate", data=REVIEW, headers={"Content-Type": "application/json"})
    assert resp.status == 400 and resp.content_type == "application/json"
    assert (await resp.json()) == {
        "error": "body could not be read: Not enough data to satisfy transfer length header."
    }


# --- what aiohttp's HTTP parser refuses, over raw sockets ------------------------------------


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serve_support.make_certs(tmp_path_factory.mktemp("http-errors-certs"))


@pytest.fixture
async def served(cert_dir: Path) -> AsyncIterator[int]:
    settings = serve_support.settings(cert_dir)
    async with serve_support.serving(settings):
        yield settings.port


async def exchange(port: int, cert_dir: Path, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``raw`` over TLS; the status, headers and body of the answer (read to the close)."""
    context: ssl.SSLContext = serve_support.client_context(cert_dir)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        pytest.param(b"GARBAGE\r\n\r\n", "Bad Request: Invalid method encountered", id="not-http"),
        pytest.param(b"G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "Bad Request: Invalid method encountered",
                     id="bad-method"),
        pytest.param(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n",
                     "Bad Request: Got more than 8190 bytes when reading", id="header-over-8-kib"),
        pytest.param(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
                     "Bad Request: Invalid character in Content-Length", id="bad-content-length"),
        pytest.param(b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"0\r\n\r\n", "Bad Request: Transfer-Encoding can't be present with Content-Length",
                     id="content-length-and-transfer-encoding"),
        pytest.param(b"POST /validate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                     "Bad Request: Invalid character in chunk size", id="bad-chunk-size"),
    ],
)
async def test_what_the_http_parser_refuses_is_answered_in_json(
    served: int, cert_dir: Path, raw: bytes, error: str
) -> None:
    status, headers, body = await exchange(served, cert_dir, raw)
    assert status == 400 and headers["content-type"] == "application/json"  # and closed: read() got EOF
    message = json.loads(body)["error"]
    assert message.startswith(error)
    assert len(message) < 600  # the offending bytes are quoted, cut short


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        pytest.param(b"gzip", REVIEW, id="gzip-header-plain-body"),
        pytest.param(b"gzip", gzip.compress(REVIEW), id="gzip-body"),
        pytest.param(b"br", REVIEW, id="brotli-which-aiohttp-cannot-decode"),
        pytest.param(b"deflate", REVIEW, id="deflate"),
    ],
)
async def test_the_served_app_refuses_every_content_encoding_the_same_way(
    served: int, cert_dir: Path, encoding: bytes, body: bytes
) -> None:
    """Head and body in one write: aiohttp decompressing as it parsed would fail first (400 from
    its parser, "Can not decode content-encoding"), or inflate the body; the served app has it
    leave bodies alone, so the answer is always the app's 415."""
    head = (b"POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"
            b"Content-Encoding: " + encoding + b"\r\nContent-Length: %d\r\n\r\n" % len(body))
    status, headers, answer = await exchange(served, cert_dir, head + body)
    assert (status, headers["content-type"], headers["accept-encoding"]) == (415, "application/json", "identity")
    assert json.loads(answer)["error"].startswith(f"Content-Encoding {encoding.decode()!r} is not supported")


async def test_the_server_answers_on_after_a_malformed_request(served: int, cert_dir: Path) -> None:
    await exchange(served, cert_dir, b"GARBAGE\r\n\r\n")
    status, headers, body = await exchange(served, cert_dir, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert (status, json.loads(body)) == (200, {"status": "ok"})


# --- the fault admin API stays on loopback ----------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7", "webhook.example.com", "localhost"])
def test_the_admin_api_refuses_any_address_but_loopback(host: str) -> None:
    with pytest.raises(faults.FaultConfigError) as refused:
        faults.admin_context(faults.State(), port=9999, host=host)
    assert str(refused.value) == (
        f"the fault admin API binds to loopback only, not {host}: it is plain HTTP without authentication; "
        "use 127.0.0.1 or ::1 and reach it with kubectl exec or port-forward"
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1"])
def test_the_admin_api_binds_loopback_addresses(host: str) -> None:
    assert callable(faults.admin_context(faults.State(), port=9999, host=host))


def test_the_admin_port_flag_says_the_api_is_unauthenticated_and_loopback_only() -> None:
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    text = " ".join(out.getvalue().split())
    assert "plain HTTP without authentication, so it binds to loopback only" in text
    assert "authentication" in (faults.__doc__ or "") and "loopback" in (faults.__doc__ or "")
