"""Fault injection for failurePolicy experiments: make the server slow, broken or wrong on purpose.

Per request path (exact, else the first matching glob such as ``/validate/*`` or ``*``): a delay
(fixed, or uniformly random in a range) applied to every request, then with probability
``errorRate`` one failure:

* ``http500`` — HTTP 500 with a text body (client-go: ``an error on the server ("...") ...``);
* ``reset`` — the connection is reset (TCP RST) after the request is read;
* ``hang`` — no answer until one second past the caller's ``?timeout=`` (``--default-timeout`` when absent),
  deadline middleware or not;
* ``malformed`` — the real answer cut in half (``unexpected end of JSON input``);
* ``wrong_uid`` — the real answer with another ``response.uid``;
* ``invalid_patch`` — the real answer with a JSON patch that cannot apply.

Off by default and hard to turn on by accident: the middleware does nothing unless the app holds a
:class:`State` under :data:`FAULTS` (the server stores one only when ``--faults`` or
``--admin-port`` is given), and the admin API that changes faults at run time (``GET/PUT/DELETE
/faults``) listens on a separate port only when ``--admin-port`` is given.

The admin API has no authentication and no TLS: anyone who reaches it can make every review fail.
So it binds to a loopback address only (127.0.0.1 by default, or ::1) and :func:`admin_context`
refuses any other, which leaves it to processes in the Pod's own network namespace (``kubectl
exec``, ``kubectl port-forward``). Do not expose it through a Service.

The file format (YAML), also the body of ``PUT /faults`` (JSON or YAML)::

    apiVersion: admission.dev/v1alpha1
    kind: FaultInjection
    seed: 7                 # optional: reproducible random delays and error rates
    paths:
      /validate/pod-security: {delay: {min: 0.1, max: 0.4}, errorRate: 0.5, failure: http500}
      "*": {delay: {fixed: 2.5}}
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fnmatch
import ipaddress
import json
import random
import socket
import struct
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from aiohttp import web

from webhook import appstate, config, errors, logs

log = logs.get("webhook.faults")

FailureType = Literal["http500", "reset", "hang", "malformed", "wrong_uid", "invalid_patch"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
INVALID_PATCH = [{"op": "add", "path": "/faultInjection/missing", "value": True}]
"""Its parent does not exist, so the API server fails with ``add operation does not apply``."""


class FaultConfigError(errors.WebhookError):
    """A fault-injection file or admin request is invalid; the message names the file and field."""


class Delay(config.StrictModel):
    """``{fixed: S}`` or ``{min: A, max: B}`` seconds."""

    fixed: float | None = pydantic.Field(None, ge=0, le=300)
    min: float | None = pydantic.Field(None, ge=0, le=300)
    max: float | None = pydantic.Field(None, ge=0, le=300)

    @pydantic.model_validator(mode="after")
    def _one_form(self) -> Delay:
        ranged = self.min is not None or self.max is not None
        if (self.fixed is not None) == ranged:
            raise ValueError("give either fixed, or min and max")
        if ranged and (self.min is None or self.max is None or self.min > self.max):
            raise ValueError("min and max are both required, with min <= max")
        return self

    def sample(self, rng: random.Random) -> float:
        if self.fixed is not None:
            return self.fixed
        assert self.min is not None and self.max is not None
        return rng.uniform(self.min, self.max)


class FaultConfig(config.StrictModel):
    """The faults of one path."""

    delay: Delay | None = None
    """Applied to every request on the path, before the failure (or the real answer)."""
    error_rate: float = pydantic.Field(1.0, ge=0, le=1)
    """Probability that a request gets ``failure``."""
    failure: FailureType | None = None


class FaultFile(config.StrictModel):
    api_version: Literal["admission.dev/v1alpha1"] = "admission.dev/v1alpha1"
    kind: Literal["FaultInjection"] = "FaultInjection"
    seed: int | None = None
    paths: dict[str, FaultConfig] = {}

    def for_path(self, path: str) -> FaultConfig | None:
        if path in self.paths:
            return self.paths[path]
        for pattern, fault in self.paths.items():
            if fnmatch.fnmatchcase(path, pattern):
                return fault
        return None


class State:
    """The faults in force; shared by the server app and the admin app, replaced at run time."""

    def __init__(self, faults: FaultFile | None = None) -> None:
        self.faults = faults or FaultFile()
        self.random = random.Random(self.faults.seed)

    def replace(self, faults: FaultFile) -> None:
        self.faults = faults
        self.random = random.Random(faults.seed)


FAULTS = web.AppKey("faults", State)


def _describe(exc: pydantic.ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg'].removeprefix('Value error, ')}"
        for e in exc.errors(include_url=False)
    )


def parse(data: Any, *, source: str) -> FaultFile:
    if not isinstance(data, dict):
        raise FaultConfigError(f"{source}: expected a mapping with apiVersion, kind and paths")
    try:
        return FaultFile.model_validate(data)
    except pydantic.ValidationError as exc:
        raise FaultConfigError(f"{source}: {_describe(exc)}") from None


def load(path: Path) -> FaultFile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FaultConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise FaultConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse(data, source=str(path))


async def _http500(request: web.Request, handler: Handler) -> web.StreamResponse:
    await request.read()
    return web.Response(status=500, text="fault injected: HTTP 500", headers={"X-Fault-Injected": "http500"})


async def _reset(request: web.Request, handler: Handler) -> web.StreamResponse:
    await request.read()
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER 0: close() sends RST, so the client sees "connection reset by peer", not EOF.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    raise web.HTTPInternalServerError(text="fault injected: connection reset")


async def _hang(request: web.Request, handler: Handler) -> web.StreamResponse:
    await request.read()
    # A hung server does not honour deadlines: lift the one the deadline middleware set.
    window = request.get(appstate.DEADLINE)
    if window is not None:
        window.reschedule(None)
    await asyncio.sleep(appstate.caller_timeout(request) + 1.0)
    return web.Response(status=504, text="fault injected: answered after the caller's deadline")


async def _rewrite(
    request: web.Request, handler: Handler, change: Callable[[dict[str, Any]], None], name: str
) -> web.StreamResponse:
    """Call the real handler, then alter its JSON answer with ``change``."""
    real = await handler(request)
    if not isinstance(real, web.Response) or real.body is None or real.status != 200:
        return real
    try:
        review = json.loads(bytes(real.body))  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return real
    response = review.get("response") if isinstance(review, dict) else None
    if not isinstance(response, dict):
        return real
    change(response)
    return web.json_response(review, headers={"X-Fault-Injected": name})


async def _malformed(request: web.Request, handler: Handler) -> web.StreamResponse:
    real = await handler(request)
    body = bytes(real.body) if isinstance(real, web.Response) and real.body is not None else b"{}"  # type: ignore[arg-type]
    return web.Response(
        body=body[: max(1, len(body) // 2)],
        content_type="application/json",
        headers={"X-Fault-Injected": "malformed"},
    )


async def _wrong_uid(request: web.Request, handler: Handler) -> web.StreamResponse:
    def change(response: dict[str, Any]) -> None:
        response["uid"] = str(uuid.uuid4())

    return await _rewrite(request, handler, change, "wrong_uid")


async def _invalid_patch(request: web.Request, handler: Handler) -> web.StreamResponse:
    def change(response: dict[str, Any]) -> None:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(INVALID_PATCH).encode()).decode()

    return await _rewrite(request, handler, change, "invalid_patch")


_FAILURES: dict[str, Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]] = {
    "http500": _http500,
    "reset": _reset,
    "hang": _hang,
    "malformed": _malformed,
    "wrong_uid": _wrong_uid,
    "invalid_patch": _invalid_patch,
}


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Apply the faults configured for ``request.path``; a no-op when the app holds no :data:`FAULTS`."""
    state = request.app.get(FAULTS)
    fault = state.faults.for_path(request.path) if state is not None else None
    if state is None or fault is None:
        return await handler(request)
    if fault.delay is not None:
        await asyncio.sleep(fault.delay.sample(state.random))
    if fault.failure is None or state.random.random() >= fault.error_rate:
        return await handler(request)
    log.debug("fault_injected", path=request.path, failure=fault.failure)
    return await _FAILURES[fault.failure](request, handler)


def _dump(state: State) -> web.Response:
    return web.json_response(state.faults.model_dump(mode="json", by_alias=True, exclude_none=True))


async def _get(request: web.Request) -> web.Response:
    return _dump(request.app[FAULTS])


async def _put(request: web.Request) -> web.Response:
    text = await request.text()
    try:
        data = yaml.safe_load(text) if text.strip() else {}
        faults = parse(data, source="PUT /faults")
    except (yaml.YAMLError, FaultConfigError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    request.app[FAULTS].replace(faults)
    log.info("faults_replaced", paths=sorted(faults.paths))
    return _dump(request.app[FAULTS])


async def _delete(request: web.Request) -> web.Response:
    request.app[FAULTS].replace(FaultFile())
    log.info("faults_cleared")
    return _dump(request.app[FAULTS])


def admin_app(state: State) -> web.Application:
    """``GET /faults`` (current), ``PUT /faults`` (replace; 400 with ``{"error"}`` if invalid),
    ``DELETE /faults`` (clear). Serve it only on loopback: see :func:`admin_context`."""
    app = web.Application(client_max_size=1024 * 1024)
    app[FAULTS] = state
    app.router.add_get("/faults", _get)
    app.router.add_put("/faults", _put)
    app.router.add_delete("/faults", _delete)
    return app


def admin_context(
    state: State, *, port: int, host: str = "127.0.0.1"
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry that serves :func:`admin_app` on ``host:port`` while the main app runs.

    Raises :class:`FaultConfigError` unless ``host`` is a loopback IP address: the admin API is
    plain HTTP without authentication (see the module docstring)."""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False  # a host name: what it resolves to may change, so it is refused too
    if not loopback:
        raise FaultConfigError(
            f"the fault admin API binds to loopback only, not {host}: it is plain HTTP without "
            "authentication; use 127.0.0.1 or ::1 and reach it with kubectl exec or port-forward"
        )

    async def serve(_: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(admin_app(state), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.warning("fault_admin_listening", host=host, port=port)
        try:
            yield
        finally:
            await runner.cleanup()

    return serve
