"""aiohttp's server, with its own error answers in JSON like every other answer of the webhook.

A request aiohttp's HTTP parser rejects (a malformed request line, a header over 8 KiB, a bad
``Content-Length``, both ``Content-Length`` and ``Transfer-Encoding``) never reaches the app or
its middleware: ``RequestHandler.handle_error`` answers it, in ``text/plain``, and closes the
connection. So do its 500 (an error escaping the middleware) and 504 answers. Its
``handle_error`` is the one place all of them go through; :class:`RequestHandler` overrides it to
answer ``{"error": ...}`` with the same status, and :class:`AppRunner` serves an app with it.
"""

from __future__ import annotations

import http
from typing import Any

from aiohttp import web

from webhook import appstate, logs

log = logs.get("webhook.httpserver")

_MESSAGE_LIMIT = 512


class RequestHandler(web.RequestHandler):
    """aiohttp's connection handler, answering its own errors in JSON."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        # As aiohttp does: part of an answer already sent leaves nothing to answer with.
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        phrase = http.HTTPStatus(status).phrase
        if status >= 500:
            # Not the client's fault: aiohttp's own error, or the handler timed out. The text of an
            # unexpected exception stays in the log, not in the answer.
            log.error("http_error", status=status, remote=request.remote, exc_info=exc)
            text = phrase
        else:
            # What the parser says is wrong ("Invalid character in Content-Length", "Transfer-Encoding
            # can't be present with Content-Length"): the client needs it. It quotes the offending
            # bytes, which the client chose: an 8 KiB header line is not a message.
            text = f"{phrase}: {message}" if message else phrase
            if len(text) > _MESSAGE_LIMIT:
                text = f"{text[:_MESSAGE_LIMIT]}...(+{len(text) - _MESSAGE_LIMIT} chars)"
            log.warning("bad_http_request", status=status, remote=request.remote, error=text)
        response = appstate.json_error(status, text)
        response.force_close()  # the parser's state is unknown after an error: never reuse it
        return response


class Server(web.Server):
    """aiohttp's low-level server, making a :class:`RequestHandler` per connection."""

    def __call__(self) -> web.RequestHandler:
        return RequestHandler(self, loop=self._loop, **self._kwargs)


class AppRunner(web.AppRunner):
    """``web.AppRunner`` serving the app with :class:`Server`: the same app, startup and cleanup,
    handler settings (timeouts, access log), only the connection handler differs.

    It also turns off aiohttp's decompression of request bodies: the server refuses any
    ``Content-Encoding`` from the header (415, see ``webhook.server``), and aiohttp must not inflate
    a body first (a few KiB of gzip can inflate to the body limit) or fail to (a 400 from its parser
    for a codec it lacks, before the app could say which codings it takes)."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("auto_decompress", False)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )
