"""Limits through the real TLS server: a slow client is cut off, the review bound answers 429 with
JSON, and a review never outlives the deadline the API server's ``?timeout=`` sets."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests import serve_support
from webhook import deadlines

FAST = deadlines.Timeouts(header=0.5, body=0.6, lingering=0.1)


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return serve_support.make_certs(tmp_path_factory.mktemp("deadline-certs"))


async def _connect(base: str, cert_dir: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = int(base.rsplit(":", 1)[1])
    context = serve_support.client_context(cert_dir)
    return await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost")


async def _read_until_closed(reader: asyncio.StreamReader, *, limit: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``limit`` seconds pass)."""
    data = b""
    async with asyncio.timeout(limit):
        while True:
            try:
                chunk = await reader.read(65536)
            except (ConnectionResetError, ssl.SSLError):
                return data
            if not chunk:
                return data
            data += chunk


def _head_and_json(raw: bytes) -> tuple[str, dict[str, str], dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return lines[0], headers, orjson.loads(body)


def test_budget_answers_before_the_api_server_gives_up() -> None:
    assert deadlines.budget(10) == 9
    assert deadlines.budget(30) == 29
    assert deadlines.budget(1) == pytest.approx(0.9)


def test_handler_args_set_aiohttps_connection_timers() -> None:
    assert FAST.handler_args() == {"keepalive_timeout": 0.5, "lingering_time": 0.1}


async def test_slow_loris_headers_are_cut_off_by_the_header_timeout(cert_dir: Path) -> None:
    async with serve_support.serving(serve_support.settings(cert_dir), timeouts=FAST) as base:
        reader, writer = await _connect(base, cert_dir)
        started = time.monotonic()
        writer.write(b"POST /validate HTTP/1.1\r\nHost: localhost\r\n")
        closed_after = None
        # One header byte every 0.1 s: the head never completes, each byte keeps the socket busy.
        for byte in b"X-Slow: " + b"a" * 40:
            if reader.at_eof():
                closed_after = time.monotonic() - started
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
                closed_after = time.monotonic() - started
                break
            try:
                data = await asyncio.wait_for(reader.read(1024), timeout=0.1)
            except TimeoutError:
                continue
            assert data == b"", "the server must close without answering a half-sent head"
            closed_after = time.monotonic() - started
            break
        writer.close()
        assert closed_after is not None, "a client trickling its headers was never disconnected"
        assert 0.4 <= closed_after <= 1.5


async def test_slow_body_is_answered_408_and_does_not_hold_a_slot_past_the_body_timeout(cert_dir: Path) -> None:
    async with serve_support.serving(serve_support.settings(cert_dir, max_concurrent=1), timeouts=FAST) as base:
        reader, writer = await _connect(base, cert_dir)
        started = time.monotonic()
        writer.write(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 5000\r\n\r\n{\"apiVersion\":")
        await writer.drain()
        status_line, headers, body = _head_and_json(await _read_until_closed(reader, limit=3))
        elapsed = time.monotonic() - started
        writer.close()
        assert status_line == "HTTP/1.1 408 Request Timeout"
        assert headers["content-type"] == "application/json"
        assert headers["connection"] == "close"
        assert body == {"error": "request body not received within 0.6s (the API server waits 10s); "
                                 "closing the connection"}
        assert 0.5 <= elapsed <= 2.0
        # The one review slot is free again: a normal review is answered.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=serve_support.client_context(cert_dir))) as s:
            status, answer = await serve_support.post(s, f"{base}/validate", serve_support.review_body(uid="after"))
        assert status == 200
        assert answer["response"]["uid"] == "after"


async def test_reviews_beyond_the_bound_get_429_with_a_json_error(cert_dir: Path) -> None:
    slow = deadlines.Timeouts(header=5, body=5, lingering=0.1)
    async with serve_support.serving(serve_support.settings(cert_dir, max_concurrent=2), timeouts=slow) as base:
        held = []
        for _ in range(2):  # two reviews whose bodies are still arriving occupy both slots
            reader, writer = await _connect(base, cert_dir)
            writer.write(b"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 5000\r\n\r\n{")
            await writer.drain()
            held.append((reader, writer))
        await asyncio.sleep(0.2)
        connector = aiohttp.TCPConnector(ssl=serve_support.client_context(cert_dir))
        async with aiohttp.ClientSession(connector=connector) as session:
            status, body = await serve_support.post(session, f"{base}/validate", serve_support.review_body())
            assert status == 429
            assert body == {"error": "too many concurrent reviews (limit 2); retry"}
            for _, writer in held:
                writer.close()
            await asyncio.sleep(0.2)  # the server notices the closed connections and frees the slots
            status, body = await serve_support.post(session, f"{base}/validate", serve_support.review_body(uid="u"))
            assert status == 200
            assert body["response"]["uid"] == "u"  # answered (the verdict is the shipped policies' business)


async def test_review_deadline_follows_the_api_servers_timeout_parameter(cert_dir: Path) -> None:
    patient = deadlines.Timeouts(header=5, body=8, lingering=0.1)
    async with serve_support.serving(serve_support.settings(cert_dir), timeouts=patient) as base:
        reader, writer = await _connect(base, cert_dir)
        started = time.monotonic()
        writer.write(b"POST /validate?timeout=1s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{")
        await writer.drain()
        status_line, _, body = _head_and_json(await _read_until_closed(reader, limit=5))
        elapsed = time.monotonic() - started
        writer.close()
    # The API server gives up after 1 s; we answer at 0.9 s, well before the 8 s body timeout.
    assert status_line == "HTTP/1.1 408 Request Timeout"
    assert body == {"error": "request body not received within 0.9s (the API server waits 1s); "
                             "closing the connection"}
    assert 0.85 <= elapsed < 1.0 + 0.5
