"""Time limits on a connection and on a review, so a slow or stuck client cannot hold the server.

Three limits, each closing a different hole:

* **Header timeout** (aiohttp's ``keepalive_timeout``). aiohttp arms one timer per connection at
  accept and re-arms it after every response; it closes the connection if no complete request
  head has arrived when it fires. So it bounds both an idle keep-alive connection and a client
  that trickles its request line and headers (slow loris). Go's HTTP client, which the API server
  uses, opens a new connection when its idle one is closed.
* **Body timeout**. Once the head has arrived aiohttp runs the handler, which waits for the
  body *inside* the concurrency bound; a client that sends ``Content-Length: 5000`` and then 10
  bytes would hold a review slot forever. The review (in practice: its body) must be done within
  this many seconds; then it is answered 408 and the connection closed.
* **Review deadline**. The API server sends ``?timeout=<n>s`` (``timeoutSeconds`` of the
  webhook configuration, 1-30 s, default 10 s) and gives up after it, applying the webhook's
  ``failurePolicy`` with only "context deadline exceeded" in its log. We answer a little before
  that (:func:`budget`) so the failure is ours, logged and counted, and the connection is freed.

Policy evaluation itself is synchronous and takes microseconds; the deadline bounds every wait
around it. Today the only wait is the body (and an injected fault's delay), so a review whose body
has already arrived runs without a timer, which no await could ever fire. Whoever makes the review
handler await anything else (a lookup, a lock) must arm the timer for it: install with
``always_timed=True``, or drop that shortcut.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from webhook import appstate, logs

log = logs.get("webhook.deadlines")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass(frozen=True, slots=True)
class Timeouts:
    header: float = 30.0
    """Seconds a connection may stay without a complete request head (idle keep-alive included).
    The API server's client keeps idle connections for 90 s; closing them earlier only costs it a
    new TLS handshake on its next call."""
    body: float = 10.0
    """Seconds for the body to arrive once the head has (also capped by the review deadline)."""
    lingering: float = 1.0
    """Seconds aiohttp keeps reading (and discarding) an unread body after answering, before
    closing; short, because a client whose body timed out is not worth waiting for."""

    def handler_args(self) -> dict[str, Any]:
        """Keyword arguments for ``web.AppRunner`` (passed down to aiohttp's ``RequestHandler``)."""
        return {"keepalive_timeout": self.header, "lingering_time": self.lingering}


class InFlight:
    """Requests whose handler has started and not finished (their bodies may still be arriving).

    Shutdown closes the listener first and waits for this to reach zero before aiohttp closes the
    connections: aiohttp stops reading a connection once it is closing, so a review whose head had
    arrived but whose body had not would otherwise hang until the shutdown timeout and be lost.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def settle(self, *, timeout: float) -> bool:
        """Wait until no request is in flight; ``False`` if ``timeout`` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


TIMEOUTS = web.AppKey("timeouts", Timeouts)
IN_FLIGHT = web.AppKey("in_flight", InFlight)


def budget(timeout: float) -> float:
    """Seconds we allow ourselves for a review whose caller waits ``timeout`` seconds.

    A tenth of the caller's timeout, at most one second, is kept back for the answer to travel
    and for the caller's own clock: 10 s -> 9 s, 30 s -> 29 s, 1 s -> 0.9 s.
    """
    return timeout - min(1.0, timeout / 10)


ALWAYS_TIMED = web.AppKey("always_timed", bool)
"""Arm the review's timer even when its body has arrived (fault injection: a delay is awaited)."""


def install(app: web.Application, timeouts: Timeouts, *, always_timed: bool = False) -> None:
    """The state :func:`middleware` reads; :func:`webhook.server.build_app` calls this, with
    ``always_timed`` when something inside the handler may wait (fault injection)."""
    app[TIMEOUTS] = timeouts
    app[IN_FLIGHT] = InFlight()
    app[ALWAYS_TIMED] = always_timed


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    in_flight = request.app[IN_FLIGHT]
    in_flight.enter()
    try:
        return await _limited(request, handler)
    finally:
        in_flight.leave()


async def _limited(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not appstate.is_review(request):
        return _close_if_draining(request, await handler(request))
    if request.content.is_eof() and not request.app[ALWAYS_TIMED]:
        # The whole body is here (a review of a few KiB comes with its head), and nothing after it
        # waits: reading it returns at once and evaluation is synchronous, so the handler cannot
        # suspend and no timer could fire. Arming one anyway cost about a tenth of the request path.
        return _close_if_draining(request, await handler(request))
    timeouts = request.app[TIMEOUTS]
    caller = appstate.caller_timeout(request)
    allowed = budget(caller)
    # One timer for the whole review. Evaluation is synchronous and takes microseconds, so the
    # time is spent waiting for the body: a slow sender holds its review slot (the server's
    # ``max_concurrent`` bound, which then answers 429 to the next caller) for ``body`` seconds at
    # most, and no review outlives the caller's deadline.
    window = asyncio.timeout(min(allowed, timeouts.body))
    request[appstate.DEADLINE] = window
    try:
        async with window:
            response = await handler(request)
    except TimeoutError:
        if not window.expired():
            raise
        return _timed_out(request, caller=caller, allowed=allowed, timeouts=timeouts)
    except ConnectionResetError:
        # The client went away mid-body (the API server cancelled the call, or a slow client gave
        # up): nobody is left to answer, and it is not our error. Counted, logged briefly.
        request.app[appstate.METRICS].errors.labels(appstate.route_label(request), "client_disconnected").inc()
        log.info("client_disconnected", path=request.path)
        return appstate.json_error(400, "the client closed the connection before sending the whole body")
    return _close_if_draining(request, response)


def _timed_out(request: web.Request, *, caller: float, allowed: float, timeouts: Timeouts) -> web.Response:
    limit = min(allowed, timeouts.body)
    if request.content.is_eof():
        status, reason, message = 504, "deadline", (
            f"review not answered within {limit:g}s (the API server waits {caller:g}s); "
            "it applies the webhook's failurePolicy"
        )
    else:
        status, reason, message = 408, "body_timeout", (
            f"request body not received within {limit:g}s (the API server waits {caller:g}s); "
            "closing the connection"
        )
    request.app[appstate.METRICS].errors.labels(appstate.route_label(request), reason).inc()
    log.warning("review_timed_out", path=request.path, status=status, reason=reason, caller_timeout=caller)
    response = appstate.json_error(status, message)
    # The connection may still have body bytes in flight: do not reuse it.
    response.force_close()
    return response


def _close_if_draining(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """While draining, answer with ``Connection: close`` so keep-alive clients reconnect (through
    the Service) to a Pod that is not going away, as Go's ``Server.Shutdown`` does for idle ones."""
    if request.app[appstate.LIFECYCLE].draining:
        response.force_close()
    return response
