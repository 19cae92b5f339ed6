"""Running the server for real: TLS site, signal handling, graceful drain.

On SIGTERM the server fails ``/readyz`` at once but keeps serving for ``drain_seconds`` (Kubernetes
removes a terminating Pod from the Service's endpoints asynchronously, so the API server may still
send it reviews for a few seconds), then stops accepting, lets in-flight reviews finish, exits 0.
"""

from __future__ import annotations

import asyncio
import signal

from aiohttp import web

from webhook import config, logs, server, tls

log = logs.get("webhook.runner")


async def serve(settings: config.ServeSettings, *, ready: asyncio.Event | None = None) -> None:
    context = tls.server_context(cert=settings.cert, key=settings.key, client_ca=settings.client_ca)
    app = server.build_app(settings)
    reloader = tls.CertReloader(context, cert=settings.cert, key=settings.key, interval=settings.reload_interval)
    server.attach_cert_reloader(app, reloader)
    server.attach_namespace_cache(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=max(settings.default_timeout, 5.0))
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, ssl_context=context, reuse_port=settings.workers > 1)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "serving", host=settings.host, port=settings.port, policies=[str(p) for p in settings.policies],
        groups=app[server.POLICIES].current.groups("validating") + app[server.POLICIES].current.groups("mutating"),
        mutual_tls=settings.client_ca is not None,
    )
    if ready is not None:
        ready.set()
    await stop.wait()
    app[server.LIFECYCLE].draining = True
    log.info("draining", seconds=settings.drain_seconds)
    await asyncio.sleep(settings.drain_seconds)
    await runner.cleanup()
    log.info("stopped")


def run(settings: config.ServeSettings) -> int:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    asyncio.run(serve(settings))
    return 0
