"""The HTTPS AdmissionReview server (aiohttp).

One request, as it flows: TLS -> middleware (log context, map call errors to 4xx JSON) -> parse
the envelope -> engine (mutators on one copy -> diff; or validators -> denial / warnings / audit)
-> one log line -> HTTP 200 with the response in the request's apiVersion.

App state lives on the ``Application`` under typed ``AppKey``s; the policy watcher (and the cert
reloader, namespace cache) are started and stopped in ``cleanup_ctx``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import structlog
from aiohttp import web

from webhook import config, engine, errors, faults, logs, metrics, review
from webhook.policy import files, model

log = logs.get("webhook.server")

JSON = "application/json"


@dataclasses.dataclass
class PolicyState:
    """The policy set being served, swapped whole on reload so no review sees a half-loaded set."""

    current: engine.PolicySet
    fingerprint: str
    error: str | None = None
    """The last reload failure (file, line, problem); ``None`` when the files on disk are valid."""


@dataclasses.dataclass
class Lifecycle:
    draining: bool = False
    certificate_expired: Callable[[], bool] = lambda: False


SETTINGS = web.AppKey("settings", config.ServeSettings)
POLICIES = web.AppKey("policies", PolicyState)
METRICS = web.AppKey("metrics", metrics.Metrics)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
LIMITER = web.AppKey("limiter", asyncio.Semaphore)


def load_policies(settings: config.ServeSettings) -> engine.PolicySet:
    """Load and compile the policy files named in ``settings`` (raises PolicyConfigError)."""
    from webhook import catalog  # the full catalogue; tests build apps with their own registries

    return engine.PolicySet(
        files.load(list(settings.policies), overrides=list(settings.set)), catalog=catalog.REGISTRY
    )


def fingerprint(paths: tuple[Path, ...]) -> str:
    """A hash of the policy files' names and contents: a ConfigMap update swaps a symlink, so file
    events are unreliable and mtimes may not change; contents are what matter."""
    digest = hashlib.sha256()
    try:
        for file in files.policy_files(paths):
            digest.update(str(file).encode())
            digest.update(file.read_bytes())
    except (OSError, errors.PolicyConfigError) as exc:
        digest.update(repr(exc).encode())
    return digest.hexdigest()


def _json_error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=orjson.dumps({"error": message}), content_type=JSON)


_TIMEOUT = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


def request_timeout(value: str | None, default: float) -> float:
    """Seconds from the API server's ``?timeout=`` (a Go duration such as ``10s``), else ``default``."""
    if not value:
        return default
    match = _TIMEOUT.match(value.strip())
    if match is None:
        return default
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number / 1000 if unit == "ms" else number * 60 if unit == "m" else number


async def _read_body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise errors.BodyTooLarge(
            f"body of {request.content_length} bytes exceeds the limit of {limit} bytes"
        )
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.BodyTooLarge(f"body exceeds the limit of {limit} bytes") from None


def review_handler(chain: model.Chain, group: str | None) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The handler for ``/mutate[/<group>]`` or ``/validate[/<group>]``."""

    async def handle(request: web.Request) -> web.Response:
        app = request.app
        settings, stats = app[SETTINGS], app[METRICS]
        path = request.path
        started = time.perf_counter()
        # Read (not obeyed as a route parameter): the deadline our answer must beat.
        timeout = request_timeout(request.query.get("timeout"), settings.default_timeout)
        limiter = app[LIMITER]
        if limiter.locked():
            stats.errors.labels(path, "overloaded").inc()
            log.warning("review_refused", path=path, reason="too many concurrent reviews")
            return _json_error(429, f"too many concurrent reviews (limit {settings.max_concurrent}); retry")
        async with limiter:
            stats.in_flight.inc()
            try:
                return await _answer(request, chain, group, path, started, timeout)
            finally:
                stats.in_flight.dec()

    return handle


async def _answer(
    request: web.Request, chain: model.Chain, group: str | None, path: str, started: float, timeout: float
) -> web.Response:
    app = request.app
    settings, stats = app[SETTINGS], app[METRICS]
    try:
        if request.content_type != JSON:
            raise errors.BadReview(f"Content-Type must be {JSON}, got {request.content_type or 'none'!r}")
        body = await _read_body(request, settings.max_body_bytes)
        parsed = review.parse(body)
    except errors.BadReview as exc:
        stats.errors.labels(path, "bad_request" if exc.status == 400 else "too_large").inc()
        log.warning("bad_review", path=path, status=exc.status, error=_short(str(exc), 1024))
        return _json_error(exc.status, str(exc))

    ctx = parsed.context
    cluster_view = app[NAMESPACES]
    if ctx.namespace:
        ctx.namespace_labels = cluster_view.labels(ctx.namespace)
    ctx.authorizer = cluster_view.authorizer
    outcome = engine.evaluate(app[POLICIES].current, parsed.object, ctx, chain=chain, group=group)
    answer = review.respond(parsed, outcome)
    latency = time.perf_counter() - started
    decision = "allowed" if outcome.allowed else "denied"
    if outcome.allowed and outcome.patch:
        decision = "patched"
    for policy_id in outcome.failed_policies:
        stats.policy_errors.labels(policy_id).inc()
    # Label values must stay few: the kind comes from the caller, so unknown kinds share one label.
    kind_label = ctx.kind if ctx.kind in app[POLICIES].current.kinds or ctx.kind in KNOWN_KINDS else "other"
    stats.requests.labels(path, kind_label, ctx.operation, decision).inc()
    stats.latency.labels(path).observe(latency)
    log.info(
        "review",
        path=path,
        uid=_short(ctx.uid),
        kind=_short(ctx.kind),
        namespace=_short(ctx.namespace),
        name=_short(ctx.name),
        operation=ctx.operation,
        user=_short(ctx.username),
        dry_run=ctx.dry_run,
        decision=decision,
        message=_short(outcome.message, 2048) or None,
        warnings=len(outcome.warnings),
        patch_ops=len(outcome.patch),
        failed_policies=outcome.failed_policies or None,
        latency_ms=round(latency * 1000, 3),
        over_deadline=latency > timeout or None,
    )
    recorder = app.get(RECORDER)
    if recorder is not None:
        recorder.submit(parsed, answer, path=path, raw=body)
    return web.Response(body=orjson.dumps(answer), content_type=JSON)


# Kinds worth their own metrics label even when no policy reads them (the API server may send them
# to /validate if a cluster registers broad rules).
KNOWN_KINDS = frozenset({"Namespace", "Service", "ConfigMap", "Secret", "Ingress", "ServiceAccount"})


def route_label(request: web.Request) -> str:
    """The route's path for metrics labels; ``unmatched`` for paths no route serves (404s), so a
    scan of random URLs cannot create unbounded label values."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else "unmatched"


def _short(value: str, limit: int = 256) -> str:
    """Fields of a review are caller-controlled: a 300 KB name must not become a 300 KB log line."""
    return value if len(value) <= limit else f"{value[:limit]}...(+{len(value) - limit} chars)"


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Never depends on policies or certificates (a restart would
    not fix those, and a failing liveness probe would only add restarts to an outage)."""
    return web.Response(body=b'{"status":"ok"}', content_type=JSON)


async def readyz(request: web.Request) -> web.Response:
    """Readiness: policies loaded, certificate valid, not draining. Reports the last reload error
    as detail without failing: the previous policy set is still being served correctly."""
    app = request.app
    state, lifecycle = app[POLICIES], app[LIFECYCLE]
    problems = []
    if lifecycle.draining:
        problems.append("draining: shutting down")
    if lifecycle.certificate_expired():
        problems.append("serving certificate has expired")
    body: dict[str, Any] = {
        "status": "ready" if not problems else "not ready",
        "problems": problems,
        "policies": {"sources": list(state.current.config.sources), "reloadError": state.error},
    }
    return web.Response(status=503 if problems else 200, body=orjson.dumps(body), content_type=JSON)


async def metrics_handler(request: web.Request) -> web.Response:
    import prometheus_client

    return web.Response(
        body=request.app[METRICS].render(), headers={"Content-Type": prometheus_client.CONTENT_TYPE_LATEST}
    )


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Bind the log context per request, and never let an error become a bare HTML 404/405/500."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(path=request.path)
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        request.app[METRICS].errors.labels(route_label(request), f"http_{exc.status}").inc()
        message = exc.reason if exc.status != 404 else f"no such endpoint: {request.method} {request.path}"
        return _json_error(exc.status, message)
    except ConnectionResetError:
        # The client went away mid-request (the API server gave up at its timeout): nobody to answer.
        request.app[METRICS].errors.labels(route_label(request), "client_gone").inc()
        log.info("client_gone", path=request.path)
        return _json_error(499, "client closed the connection before the answer")
    except Exception:
        request.app[METRICS].errors.labels(route_label(request), "internal").inc()
        log.exception("unhandled_error", path=request.path)
        return _json_error(500, "internal error while answering; see the webhook's logs")


ADMISSION_PREFIXES = ("/mutate", "/validate")


@web.middleware
async def require_client_certificate(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """With ``--client-ca``: admission paths need a client certificate the TLS layer verified.

    Probes and metrics stay reachable without one (the kubelet presents none); a certificate from
    another CA never gets this far, the handshake refuses it.
    """
    if request.path.startswith(ADMISSION_PREFIXES):
        transport = request.transport
        if transport is None or not transport.get_extra_info("peercert"):
            request.app[METRICS].errors.labels(route_label(request), "no_client_certificate").inc()
            return _json_error(401, "a client certificate signed by the configured client CA is required")
    return await handler(request)


async def _watch_policies(app: web.Application) -> AsyncIterator[None]:
    """Poll the policy files and reload on change; a broken file keeps the previous set serving."""
    settings = app[SETTINGS]

    async def loop() -> None:
        while True:
            await asyncio.sleep(settings.reload_interval)
            reload_policies(app)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def reload_policies(app: web.Application) -> bool:
    """Reload if the files changed. Returns ``True`` when a new set was swapped in."""
    settings, state, stats = app[SETTINGS], app[POLICIES], app[METRICS]
    current = fingerprint(settings.policies)
    if current == state.fingerprint:
        return False
    state.fingerprint = current
    try:
        policy_set = load_policies(settings)
    except errors.PolicyConfigError as exc:
        state.error = str(exc)
        stats.policy_reloads.labels("error").inc()
        stats.policy_config_valid.set(0)
        log.error("policy_reload_failed", error=str(exc), keeping=list(state.current.config.sources))
        return False
    state.current, state.error = policy_set, None
    stats.policy_reloads.labels("success").inc()
    stats.policy_config_valid.set(1)
    log.info("policy_reloaded", sources=list(policy_set.config.sources))
    return True


@dataclasses.dataclass
class Namespaces:
    """Where reviews look up namespace labels; ``cache`` is set once the watch starts (if ever)."""

    cache: Any = None
    authorizer: Any = None

    def labels(self, name: str) -> Any:
        return self.cache.labels(name) if self.cache is not None else None


NAMESPACES = web.AppKey("namespaces", Namespaces)
# Optional collaborator, set when ``--record`` is given.
RECORDER: web.AppKey[Any] = web.AppKey("recorder", object)


def build_app(
    settings: config.ServeSettings, *, policy_set: engine.PolicySet | None = None
) -> web.Application:
    """The aiohttp application. ``policy_set`` (tests) skips loading files from ``settings.policies``."""
    middlewares = [error_middleware] + ([require_client_certificate] if settings.client_ca is not None else [])
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    app[SETTINGS] = settings
    app[METRICS] = metrics.Metrics()
    app[LIFECYCLE] = Lifecycle()
    app[LIMITER] = asyncio.Semaphore(settings.max_concurrent)
    app[NAMESPACES] = Namespaces()
    if policy_set is None:
        policy_set = load_policies(settings)
        app.cleanup_ctx.append(_watch_policies)
    app[POLICIES] = PolicyState(current=policy_set, fingerprint=fingerprint(settings.policies))
    app[METRICS].policy_config_valid.set(1)

    chains: tuple[tuple[model.Chain, str], ...] = (("mutating", "/mutate"), ("validating", "/validate"))
    for chain, prefix in chains:
        app.router.add_post(prefix, review_handler(chain, None))
        for group in policy_set.groups(chain):
            app.router.add_post(f"{prefix}/{group}", review_handler(chain, group))
    if settings.faults is not None or settings.admin_port is not None:
        # Fault injection for failurePolicy experiments: off unless asked for; the admin API binds
        # 127.0.0.1 only, and only with --admin-port.
        state = faults.State(faults.load(settings.faults) if settings.faults is not None else None)
        app[faults.FAULTS] = state
        app.middlewares.append(faults.middleware)  # innermost, so metrics and logs see the delay
        if settings.admin_port is not None:
            app.cleanup_ctx.append(faults.admin_context(state, port=settings.admin_port))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    return app


def attach_cert_reloader(app: web.Application, reloader: Any) -> None:
    """Poll the certificate files (see :class:`webhook.tls.CertReloader`) while the app runs; export
    seconds-to-expiry and make ``/readyz`` fail once the certificate has expired."""
    app[LIFECYCLE].certificate_expired = lambda: bool(reloader.expired)
    stats = app[METRICS]

    async def poll(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                # check_once never raises for file problems: it keeps the old certificate, logs,
                # and counts the bad version in ``failures``.
                before = reloader.failures
                if reloader.check_once():
                    stats.cert_reloads.labels("success").inc()
                if reloader.failures > before:
                    stats.cert_reloads.labels("error").inc(reloader.failures - before)
                stats.cert_expiry.set(reloader.seconds_until_expiry())
                await asyncio.sleep(app[SETTINGS].reload_interval)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(poll)


def attach_namespace_cache(app: web.Application) -> None:
    """Start the watch-fed namespace label cache and the SubjectAccessReview cache with the app."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        from webhook import cluster

        started = await asyncio.get_running_loop().run_in_executor(None, cluster.start_namespace_cache)
        if started is not None:
            app[NAMESPACES].cache, app[NAMESPACES].authorizer = started
        yield
        if started is not None:
            started[0].stop()
            started[1].close()

    app.cleanup_ctx.append(run)
