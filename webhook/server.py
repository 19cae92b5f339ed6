"""The HTTPS AdmissionReview server (aiohttp): the handlers, and the one factory that builds the app.

One request, as it flows: TLS -> middleware (see :func:`build_app` for the order) -> parse the
envelope -> engine (mutators on one copy -> diff; or validators -> denial / warnings / audit) -> one
log line -> HTTP 200 with the response in the request's apiVersion.

App state lives on the ``Application`` under the typed keys of :mod:`webhook.appstate`; the policy
watcher, the certificate reloader, the recorder and the cluster caches are started and stopped in
``cleanup_ctx``. The runner, ``experiment`` and the tests all build the app with :func:`build_app`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import hdrs, typedefs, web

from webhook import answering, appstate, catalog, config, deadlines, engine, errors, logs, metrics, review, tls
from webhook.policy import files, model, yamlsafe

if TYPE_CHECKING:  # imported by build_app only when asked for (--record, --faults, --admin-port)
    from webhook import faults as faults_module
    from webhook import recorder as recorder_module

log = logs.get("webhook.server")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def fingerprint(paths: tuple[Path, ...]) -> str:
    """A hash of the policy files' names and contents: a ConfigMap update swaps a symlink, so file
    events are unreliable and mtimes may not change; contents are what matter."""
    digest = hashlib.sha256()
    try:
        for file in files.policy_files(paths):
            digest.update(str(file).encode())
            with file.open("rb") as handle:  # past the size limit the load refuses it anyway
                digest.update(handle.read(yamlsafe.MAX_FILE_BYTES + 1))
    except (OSError, errors.PolicyConfigError) as exc:
        digest.update(repr(exc).encode())
    return digest.hexdigest()


JSON_LIMITS = web.AppKey("json_limits", review.Limits)
"""What one review's body may hold (nesting, objects and arrays, values); see :class:`review.Limits`."""
SERVICES = web.AppKey("review_services", answering.Services)
"""What a review reads of the app, gathered in one object (:class:`webhook.answering.Services`)."""


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise errors.BodyTooLarge(
            f"body of {request.content_length} bytes exceeds the limit of {limit} bytes"
        )
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.BodyTooLarge(f"body exceeds the limit of {limit} bytes") from None
    except web.RequestPayloadError as exc:
        # aiohttp could not decode the body's framing (a broken chunked encoding, a body shorter
        # than its Content-Length): the request is malformed, not our failure.
        raise errors.BadReview(f"body could not be read: {exc}") from None


def _unsupported_encoding(request: web.Request) -> str | None:
    """The request's ``Content-Encoding`` unless it is absent or ``identity``.

    The API server never compresses what it sends to webhooks (its client sets no
    Content-Encoding), so a compressed body comes from a client we do not serve. Refused from the
    header, before reading: the body is never decompressed (the served app also has aiohttp leave
    it alone, see :class:`webhook.httpserver.AppRunner`), so no compression ratio can turn 7 MiB
    on the wire into gigabytes here, and a plain body wrongly labelled gzip, a gzip body and a
    codec aiohttp lacks all get the same answer: 415, RFC 9110's status for a content coding the
    server does not accept.
    """
    if hdrs.CONTENT_ENCODING not in request.headers:  # the API server's case: one lookup
        return None
    codings = ",".join(request.headers.getall(hdrs.CONTENT_ENCODING, ()))
    given = [c.strip().lower() for c in codings.split(",") if c.strip()]
    return codings if any(c != "identity" for c in given) else None


def review_handler(chain: model.Chain, group: str | None) -> Handler:
    """The handler for ``/mutate[/<group>]`` or ``/validate[/<group>]``: what needs the request
    (the concurrency bound, the headers, reading the body, the HTTP response) is here, the rest in
    :func:`webhook.answering.answer` (compiled)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        services = request.app[SERVICES]
        stats = services.stats
        path = request.path
        started = time.perf_counter()
        slots = services.slots
        if slots.full():
            stats.errors.labels(path, "overloaded").inc()
            log.warning("review_refused", path=path, reason="too many concurrent reviews")
            return appstate.json_error(
                429, f"too many concurrent reviews (limit {services.settings.max_concurrent}); retry"
            )
        slots.taken += 1
        stats.review_started()
        try:
            return await _answer(request, services, chain, group, path, started)
        finally:
            slots.taken -= 1
            stats.review_ended()

    return handle


async def _answer(
    request: web.Request, services: answering.Services, chain: model.Chain, group: str | None, path: str,
    started: float,
) -> web.Response:
    encoding = _unsupported_encoding(request)
    if encoding is not None:
        refusal = _refused(request, path, 415, "unsupported_encoding",
                           f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
        refusal.headers[hdrs.ACCEPT_ENCODING] = "identity"  # RFC 9110 15.5.16: say what is accepted
        return refusal
    try:
        if request.content_type != appstate.JSON:
            raise errors.BadReview(
                f"Content-Type must be {appstate.JSON}, got {request.content_type or 'none'!r}"
            )
        # The only await of a review: deadlines.middleware skips its timer when the body is already
        # here, so any other await added to this handler needs that timer (see webhook.deadlines).
        body = await _read_body(request, services.settings.max_body_bytes)
    except errors.BadReview as exc:
        answered: bytes | answering.Refusal = answering.Refusal.of(exc)
    else:
        answered = answering.answer(services, body, path=path, chain=chain, group=group, started=started,
                                    caller_timeout=appstate.caller_timeout(request))
    if isinstance(answered, answering.Refusal):
        return _refused(request, path, answered.status, answered.reason, answered.message)
    return web.Response(body=answered, content_type=appstate.JSON)


def _refused(request: web.Request, path: str, status: int, reason: str, message: str) -> web.Response:
    """A call error: counted, logged (the message cut short) and answered as JSON. A body left
    unread (refused by its headers or size) closes the connection rather than being drained."""
    request.app[appstate.METRICS].errors.labels(path, reason).inc()
    log.warning("bad_review", path=path, status=status, error=answering.short(message, 1024))
    response = appstate.json_error(status, message)
    if not request.content.is_eof():
        response.force_close()
    return response


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Never depends on policies or certificates (a restart would
    not fix those, and a failing liveness probe would only add restarts to an outage)."""
    return web.Response(body=b'{"status":"ok"}', content_type=appstate.JSON)


async def readyz(request: web.Request) -> web.Response:
    """Readiness: policies loaded, certificate valid, not draining. Reports the last reload errors
    (policies, certificate) as detail without failing: what is being served is still correct."""
    app = request.app
    state, lifecycle = app[appstate.POLICIES], app[appstate.LIFECYCLE]
    problems = []
    if lifecycle.draining:
        problems.append("draining: shutting down")
    if lifecycle.certificate_expired():
        problems.append("serving certificate has expired")
    body: dict[str, Any] = {
        "status": "ready" if not problems else "not ready",
        "problems": problems,
        "policies": {"sources": list(state.current.config.sources), "reloadError": state.error},
        "certificate": {"reloadError": lifecycle.certificate_problem()},
    }
    return web.Response(status=503 if problems else 200, body=orjson.dumps(body), content_type=appstate.JSON)


async def metrics_handler(request: web.Request) -> web.Response:
    import prometheus_client

    return web.Response(
        body=request.app[appstate.METRICS].render(), headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST}
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bind the log context per request, and never let an error become a bare HTML 404/405/500."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(path=request.path)
    stats = request.app[appstate.METRICS]
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        stats.errors.labels(appstate.route_label(request), f"http_{exc.status}").inc()
        message = exc.reason if exc.status != 404 else f"no such endpoint: {request.method} {request.path}"
        return appstate.json_error(exc.status, message)
    except ConnectionResetError:
        # The client went away mid-request (the API server gave up at its timeout): nobody to answer.
        stats.errors.labels(appstate.route_label(request), "client_gone").inc()
        log.info("client_gone", path=request.path)
        return appstate.json_error(499, "client closed the connection before the answer")
    except Exception:
        stats.errors.labels(appstate.route_label(request), "internal").inc()
        log.exception("unhandled_error", path=request.path)
        return appstate.json_error(500, "internal error while answering; see the webhook's logs")


@web.middleware
async def require_client_certificate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """With ``--client-ca``: admission paths need a client certificate the TLS layer verified.

    Probes and metrics stay reachable without one (the kubelet presents none); a certificate from
    another CA never gets this far, the handshake refuses it.
    """
    if request.path.startswith(appstate.ADMISSION_PREFIXES):
        transport = request.transport
        if transport is None or not transport.get_extra_info("peercert"):
            request.app[appstate.METRICS].errors.labels(appstate.route_label(request), "no_client_certificate").inc()
            return appstate.json_error(401, "a client certificate signed by the configured client CA is required")
    return await handler(request)


# --- background tasks -------------------------------------------------------------------------


def supervised(
    name: str, step: Callable[[], Coroutine[Any, Any, None]], *, interval: Callable[[], float]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` entry running ``step`` every ``interval()`` seconds while the app runs.

    The loop cannot die: an exception from ``step`` is logged, counted in
    ``admission_background_errors_total{task=name}`` and the next round runs as planned. A watcher
    that died silently would leave stale policies or certificates serving with nobody noticing.
    """

    async def context(app: web.Application) -> AsyncIterator[None]:
        stats = app[appstate.METRICS]

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval())
                try:
                    await step()
                except Exception:  # noqa: BLE001 - the point is that nothing stops this loop
                    stats.background_errors.labels(name).inc()
                    log.exception("background_task_failed", task=name)

        task = asyncio.create_task(loop(), name=f"webhook-{name}")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def _load_if_changed(settings: config.ServeSettings, known: str) -> tuple[str, engine.PolicySet | None, str | None]:
    """Off the event loop: the files' fingerprint, and if it differs from ``known`` the new policy
    set or why it could not be loaded. Whatever goes wrong is a reload error, never an exception:
    a hostile or broken file must not stop later reloads."""
    current = fingerprint(settings.policies)
    if current == known:
        return current, None, None
    try:
        return current, catalog.load(settings.policies, overrides=settings.set,
                                     kubernetes_minor=settings.kubernetes_minor), None
    except errors.PolicyConfigError as exc:
        return current, None, str(exc)
    except Exception as exc:  # noqa: BLE001 - see the docstring
        return current, None, f"policy files: cannot load: {type(exc).__name__}: {exc}"


async def reload_policies(app: web.Application) -> bool:
    """Reload if the files changed. Returns ``True`` when a new set was swapped in.

    Reading, parsing and compiling run in a thread, so a slow or hostile file never stalls the
    reviews (or the probes) being answered meanwhile; the swap itself happens here, on the loop.
    """
    settings, state, stats = app[appstate.SETTINGS], app[appstate.POLICIES], app[appstate.METRICS]
    current, policy_set, error = await asyncio.to_thread(_load_if_changed, settings, state.fingerprint)
    if current == state.fingerprint:
        return False
    state.fingerprint = current
    if policy_set is None:
        state.error = error
        stats.policy_reloads.labels("error").inc()
        stats.policy_config_valid.set(0)
        log.error("policy_reload_failed", error=error, keeping=list(state.current.config.sources))
        return False
    state.current, state.error = policy_set, None
    watched = app[appstate.CLUSTER].params
    if watched is not None:
        watched.ensure(param_kinds(policy_set))  # a new paramKind in the reloaded files
    stats.policy_reloads.labels("success").inc()
    stats.policy_config_valid.set(1)
    log.info("policy_reloaded", sources=list(policy_set.config.sources))
    return True


def _certificate_poller(reloader: tls.CertReloader) -> Callable[[web.Application], Coroutine[Any, Any, None]]:
    async def poll(app: web.Application) -> None:
        stats = app[appstate.METRICS]
        # check_once never raises for file problems: it keeps the current certificate, logs, and
        # counts each bad version once in ``failures``.
        before = reloader.failures
        if await asyncio.to_thread(reloader.check_once):
            stats.cert_reloads.labels("success").inc()
        if reloader.failures > before:
            stats.cert_reloads.labels("error").inc(reloader.failures - before)
            stats.cert_reload_errors.inc(reloader.failures - before)
        stats.cert_expiry.set(reloader.seconds_until_expiry())

    return poll


async def _cluster_caches(app: web.Application) -> AsyncIterator[None]:
    """The watch-fed namespace label cache and the SubjectAccessReview cache, with the app."""
    from webhook import cluster  # the kubernetes client is imported only when asked for

    loop = asyncio.get_running_loop()
    started = await loop.run_in_executor(None, cluster.start_namespace_cache)
    params = await loop.run_in_executor(None, cluster.start_param_cache) if started is not None else None
    if started is not None:
        app[appstate.CLUSTER].namespaces, app[appstate.CLUSTER].authorizer = started
    if params is not None:
        app[appstate.CLUSTER].params = params
        params.ensure(param_kinds(app[appstate.POLICIES].current))
    yield
    if started is not None:
        started[0].stop()
        started[1].close()
    if params is not None:
        params.stop()


def param_kinds(policy_set: engine.PolicySet) -> set[tuple[str, str]]:
    """``(apiVersion, kind)`` of every paramKind the admission policies of ``policy_set`` use."""
    kinds = [p.param_kind for p in policy_set.cel.policies] + [p.param_kind for p in policy_set.cel_mutating.policies]
    return {(kind.api_version, kind.kind) for kind in kinds if kind is not None}


def _recorder_context(sink: recorder_module.Recorder) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(sink.close)
        log.info("recorder_stopped", written=sink.written, failed=sink.failed, dropped=sink.dropped)

    return lifecycle


# --- the factory --------------------------------------------------------------------------------


def build_app(
    settings: config.ServeSettings,
    *,
    policy_set: engine.PolicySet | None = None,
    timeouts: deadlines.Timeouts | None = None,
    recorder: recorder_module.Recorder | None = None,
    faults: faults_module.State | None = None,
    certificates: tls.CertReloader | None = None,
    cluster: bool = False,
    limits: review.Limits | None = None,
) -> web.Application:
    """The served app, with everything a real server runs beside the handlers.

    * ``policy_set``: serve this set (tests); else load ``settings.policies`` and reload on change.
    * ``timeouts``: connection and review time limits (default :class:`deadlines.Timeouts`).
    * ``recorder``: where answered reviews are recorded; else one built from ``--record`` if given.
    * ``faults``: fault injection state; else one built from ``--faults``/``--admin-port`` if given.
    * ``certificates``: poll the serving certificate files and reload them (``serve`` does).
    * ``cluster``: start the namespace label and access review caches (``serve`` does).
    * ``limits``: what one review's body may hold (default :class:`review.Limits`), checked
      before it is parsed.

    Middleware, outermost first (aiohttp runs the first in the list outermost):

    1. :func:`error_middleware` binds the log context and turns any error into a JSON answer;
    2. :func:`require_client_certificate`, with ``--client-ca`` only;
    3. :func:`webhook.deadlines.middleware` counts the request in flight, bounds the body and the
       review by the caller's ``?timeout=``, and closes connections while draining;
    4. :func:`webhook.faults.middleware`, with fault injection only: innermost, so an injected
       delay counts against the deadline and shows in metrics and logs like real slowness.
    """
    if faults is not None or settings.faults is not None or settings.admin_port is not None:
        from webhook import faults as faults_module  # noqa: PLC0415 - fault injection only

        if faults is None:  # fault injection for failurePolicy experiments: off unless asked for
            faults = faults_module.State(faults_module.load(settings.faults) if settings.faults is not None else None)
    if recorder is None and settings.record is not None:
        from webhook import recorder as recorder_module  # noqa: PLC0415 - recording only

        recorder = recorder_module.Recorder.from_settings(settings)

    middlewares: list[typedefs.Middleware] = [error_middleware]
    if settings.client_ca is not None:
        middlewares.append(require_client_certificate)
    middlewares.append(deadlines.middleware)
    if faults is not None:
        middlewares.append(faults_module.middleware)

    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    app[appstate.SETTINGS] = settings
    app[appstate.METRICS] = stats = metrics.Metrics()
    app[appstate.LIFECYCLE] = lifecycle = appstate.Lifecycle()
    app[appstate.LIMITER] = appstate.ReviewSlots(settings.max_concurrent)
    app[appstate.CLUSTER] = appstate.ClusterView()
    app[JSON_LIMITS] = limits or review.Limits(
        max_depth=settings.max_json_depth, max_containers=settings.max_json_containers,
        max_values=settings.max_json_values,
    )
    deadlines.install(app, timeouts or deadlines.Timeouts(), always_timed=faults is not None)
    if policy_set is None:
        policy_set = catalog.load(settings.policies, overrides=settings.set, kubernetes_minor=settings.kubernetes_minor)
        app.cleanup_ctx.append(
            supervised("policy-reload", lambda: _reload(app), interval=lambda: settings.reload_interval)
        )
    app[appstate.POLICIES] = appstate.PolicyState(current=policy_set, fingerprint=fingerprint(settings.policies))
    stats.policy_config_valid.set(1)

    if recorder is not None:
        recorder.stats = stats
        app[appstate.RECORDER] = recorder
        app.cleanup_ctx.append(_recorder_context(recorder))
    app[SERVICES] = answering.Services(
        settings=settings, stats=stats, slots=app[appstate.LIMITER], policies=app[appstate.POLICIES],
        cluster=app[appstate.CLUSTER], limits=app[JSON_LIMITS], recorder=recorder,
    )
    if faults is not None:
        app[faults_module.FAULTS] = faults
        if settings.admin_port is not None:
            app.cleanup_ctx.append(faults_module.admin_context(faults, port=settings.admin_port))
    if certificates is not None:
        lifecycle.certificate_expired = lambda: certificates.expired
        lifecycle.certificate_problem = lambda: certificates.last_error
        stats.cert_expiry.set(certificates.seconds_until_expiry())
        poll = _certificate_poller(certificates)
        app.cleanup_ctx.append(
            supervised("certificate-reload", lambda: poll(app), interval=lambda: settings.reload_interval)
        )
    if cluster:
        app.cleanup_ctx.append(_cluster_caches)

    chains: tuple[tuple[model.Chain, str], ...] = (("mutating", "/mutate"), ("validating", "/validate"))
    for chain, prefix in chains:
        app.router.add_post(prefix, review_handler(chain, None))
        # The cel group is served even while no admission policy is loaded: a reload may add some.
        groups = policy_set.groups(chain)
        for group in groups if engine.CEL_GROUP in groups else [engine.CEL_GROUP, *groups]:
            app.router.add_post(f"{prefix}/{group}", review_handler(chain, group))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    return app


async def _reload(app: web.Application) -> None:
    await reload_policies(app)

