"""Running the server for real: TLS site, signal handling, graceful drain, worker processes.

On SIGTERM the server fails ``/readyz`` at once but keeps serving for ``drain_seconds`` (Kubernetes
removes a terminating Pod from the Service's endpoints asynchronously, so the API server may still
send it reviews for a few seconds), then stops accepting, lets in-flight reviews finish, exits 0.

With ``workers > 1`` a supervising parent forks that many worker processes. Each binds the port
itself with ``SO_REUSEPORT``, so the kernel spreads new connections across them without a shared
accept queue; the parent only watches: it restarts a worker that dies, and on SIGTERM forwards it
to every worker, waits for their drains, and exits 0.

The workers still speak as one server: ``/metrics`` on any of them sums all of them (the parent
makes a directory for their metric files, see :mod:`webhook.metrics`), each log line is one write
to the shared stderr, and the start-up lines every worker would log alike come from slot 0 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from webhook import appstate, catalog, compiled, config, deadlines, errors, httpserver, logs, metrics, server, tls

if TYPE_CHECKING:  # the supervisor's modules load only with --workers N (0.65 MB a single worker spares)
    import multiprocessing.connection
    from multiprocessing.context import ForkProcess

log = logs.get("webhook.runner")

RESTART_BACKOFF_MAX = 10.0
"""Seconds; a worker crashing in a loop is restarted at most this rarely (doubling from 0.1 s)."""
STABLE_AFTER = 30.0
"""A worker that ran this long before dying is restarted at once (its crash is not a loop)."""


async def serve(
    settings: config.ServeSettings,
    *,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
    timeouts: deadlines.Timeouts | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT (or until ``stop`` is set, for tests), then drain and return.

    ``ready`` is set once the port is bound."""
    timeouts = timeouts or deadlines.Timeouts()
    context = tls.server_context(cert=settings.cert, key=settings.key, client_ca=settings.client_ca)
    certificates = tls.CertReloader(context, cert=settings.cert, key=settings.key, interval=settings.reload_interval)
    app = server.build_app(settings, timeouts=timeouts, certificates=certificates, cluster=True)
    shutdown_timeout = max(settings.default_timeout, 5.0)
    # httpserver.AppRunner: aiohttp's own errors (a malformed request) are answered in JSON too.
    runner = httpserver.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout, **timeouts.handler_args())
    await runner.setup()
    site = web.TCPSite(
        runner, settings.host, settings.port, ssl_context=context, reuse_port=settings.workers > 1
    )
    await site.start()
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _first_signal, stop, signum)
    policies = app[appstate.POLICIES].current
    log.info(
        "serving", host=settings.host, port=settings.port, pid=os.getpid(), workers=settings.workers,
        policies=[str(p) for p in settings.policies],
        groups=policies.groups("validating") + policies.groups("mutating"),
        groups_on={name: s.mode for name, s in policies.config.groups.items() if s.mode != "off"},
        groups_off=sorted(name for name, s in policies.config.groups.items() if s.mode == "off"),
        admission_policies=len(policies.cel.policies) + len(policies.cel_mutating.policies),
        mutual_tls=settings.client_ca is not None,
        compiled_modules=len(compiled.modules()),
    )
    if ready is not None:
        ready.set()
    await stop.wait()
    app[appstate.LIFECYCLE].draining = True
    log.info("draining", seconds=settings.drain_seconds, pid=os.getpid())
    await asyncio.sleep(settings.drain_seconds)
    # Stop accepting, let the reviews already started finish (while draining, each answer closes
    # its connection, so this ends quickly), then close the idle keep-alive connections. A request
    # still on the wire at that instant is lost, as with any HTTP/1.1 server; the API server then
    # applies the failurePolicy.
    log.info("drain_over", pid=os.getpid())
    await site.stop()
    if not await app[deadlines.IN_FLIGHT].settle(timeout=shutdown_timeout):
        log.warning("shutdown_timeout", in_flight=app[deadlines.IN_FLIGHT].count)
    await _cleanup(runner)
    log.info("stopped", pid=os.getpid())


def _first_signal(stop: asyncio.Event, signum: int) -> None:
    """The first SIGTERM/SIGINT starts the drain; a second one, during it, exits at once (an
    operator pressing Ctrl-C twice means it), without waiting for in-flight reviews."""
    if not stop.is_set():
        stop.set()
        return
    log.warning("shutdown_forced", signal=signal.Signals(signum).name, pid=os.getpid())
    os._exit(128 + signum)


async def _cleanup(runner: web.AppRunner) -> None:
    """``runner.cleanup()``, nudging idle connections until it is done.

    aiohttp's shutdown wakes an idle connection by cancelling the future its handler task waits
    on. A connection accepted just before the listener closed may not have started that task yet
    (Python 3.11 starts tasks lazily): it is marked closing, then starts and waits on a new future
    nobody cancels, and shutdown sits out its whole timeout. Calling the public ``close()`` again
    wakes it.
    """
    web_server = runner.server
    cleanup = asyncio.ensure_future(runner.cleanup())
    while True:
        done, _ = await asyncio.wait({cleanup}, timeout=0.05)
        if done:
            cleanup.result()
            return
        for connection in web_server.connections if web_server is not None else ():
            connection.close()


def _install_uvloop() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass


def run(settings: config.ServeSettings) -> int:
    _install_uvloop()
    if settings.workers > 1:
        return Supervisor(settings).run()
    asyncio.run(serve(settings))
    return 0


# --- workers ------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker when the supervisor dies (even by SIGKILL), so an orphan
    never keeps the port; the worker then drains like on any SIGTERM."""
    import ctypes  # noqa: PLC0415 - workers only

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _worker_main(
    settings: config.ServeSettings, notify: multiprocessing.connection.Connection, *, slot: int, metrics_dir: Path
) -> None:
    """Entry point of a forked worker: serve, telling the parent once the port is bound."""
    _die_with_parent()
    # Before the app (and its metrics) is built: from here on the metrics live in shared files.
    metrics.share(metrics_dir)
    if slot != 0:
        logs.drop_startup_events()
    # The parent's handlers (and its wakeup fd) were inherited by fork: restore the defaults
    # before asyncio installs the worker's own.
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    _install_uvloop()

    async def main() -> None:
        ready = asyncio.Event()
        serving = asyncio.create_task(serve(settings, ready=ready))
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set():
            notify.send("ready")
        elif serving.done() and serving.exception() is not None:
            # Tell the supervisor why, so its one error line names the cause (not just an exit code).
            failure = serving.exception()
            notify.send(f"{type(failure).__name__}: {failure}")
        notify.close()
        waiting.cancel()
        await serving

    asyncio.run(main())


@dataclasses.dataclass
class _Worker:
    slot: int
    process: ForkProcess
    started: float
    ready: multiprocessing.connection.Connection | None


def _metrics_directory() -> Path:
    """A fresh private directory (0700) for this run's metric files.

    Named after the supervisor's pid, and any directory left with that pid is removed first: a
    supervisor killed by SIGKILL (an OOM kill) cannot remove its own, and in a container the next
    run has the same pid (1) and the same ``/tmp`` (an emptyDir outlives container restarts). No live
    process in this pid namespace owns that pid, so such a directory is stale.
    """
    base = Path(tempfile.gettempdir())
    prefix = f"webhook-metrics-{os.getpid()}-"
    for stale in base.glob(f"{prefix}*"):
        with contextlib.suppress(OSError):
            info = stale.lstat()
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
                shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=prefix))


class Supervisor:
    """The parent of ``workers`` processes: start them, restart the dead, forward SIGTERM.

    Fork (not spawn) is used so workers start in milliseconds and share the parent's imported code
    pages. The parent itself holds no event loop, sockets or threads, which is what makes forking
    from it safe.
    """

    def __init__(self, settings: config.ServeSettings, *, startup_timeout: float = 30.0) -> None:
        if settings.port == 0:
            raise errors.WebhookError("--workers needs a fixed --port: with port 0 each worker binds its own")
        self.settings = settings
        self.startup_timeout = startup_timeout
        import multiprocessing  # noqa: PLC0415 - workers only

        self.context = multiprocessing.get_context("fork")
        self.workers: dict[int, _Worker] = {}
        self.backoff: dict[int, float] = {}
        self.stopping = False
        self.draining = False
        self.metrics_dir: Path | None = None

    def _start(self, slot: int) -> _Worker:
        assert self.metrics_dir is not None
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(
            target=_worker_main,
            args=(self.settings, send),
            kwargs={"slot": slot, "metrics_dir": self.metrics_dir},
            name=f"webhook-worker-{slot}",
            daemon=False,
        )
        process.start()
        send.close()
        worker = _Worker(slot, process, time.monotonic(), receive)
        self.workers[slot] = worker
        log.info("worker_started", slot=slot, pid=process.pid)
        return worker

    def run(self) -> int:
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)
        previous = signal.set_wakeup_fd(wake_write)
        handlers = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._preflight()
            self.metrics_dir = _metrics_directory()
            if not self._start_all():
                self._stop_all()
                return 1
            log.info("workers_ready", workers=self.settings.workers, pids=self.pids())
            self._watch(wake_read)
            return self._stop_all()
        finally:
            signal.set_wakeup_fd(previous)
            for signum, handler in handlers.items():
                signal.signal(signum, handler)
            os.close(wake_read)
            os.close(wake_write)
            # The workers have exited (after an unexpected error here, they get SIGTERM as this
            # process ends): nobody needs their files any more.
            if self.metrics_dir is not None:
                shutil.rmtree(self.metrics_dir, ignore_errors=True)
                self.metrics_dir = None

    def _preflight(self) -> None:
        """Load the certificate and the policies once here, so a mistake in them is reported like
        in single-process mode (one clear error, exit 2) instead of by every worker."""
        settings = self.settings
        tls.server_context(cert=settings.cert, key=settings.key, client_ca=settings.client_ca)
        catalog.load(settings.policies, overrides=settings.set, kubernetes_minor=settings.kubernetes_minor)
        # Bind once as the workers will (SO_REUSEPORT): a port another program holds fails here,
        # with one clear error, instead of as N workers that each fail to start.
        with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind((settings.host, settings.port))

    def pids(self) -> list[int | None]:
        return [w.process.pid for w in sorted(self.workers.values(), key=lambda w: w.slot)]

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.draining:
            # A second signal while the workers drain: stop them now (Ctrl-C twice).
            log.warning("shutdown_forced", signal=signal.Signals(signum).name, pid=os.getpid())
            for worker in self.workers.values():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.process.pid or 0, signal.SIGKILL)
        self.stopping = True

    def _start_all(self) -> bool:
        """Start every worker and wait until each has bound the port; ``False`` if one failed
        (a bad certificate or policy file fails them all alike: report it, do not crash-loop)."""
        for slot in range(self.settings.workers):
            self._start(slot)
        deadline = time.monotonic() + self.startup_timeout
        for worker in list(self.workers.values()):
            assert worker.ready is not None
            ready = worker.ready.poll(max(deadline - time.monotonic(), 0.0))
            try:
                message = worker.ready.recv() if ready else None
            except EOFError:
                message = None
            worker.ready.close()
            worker.ready = None
            if self.stopping:  # SIGTERM while starting: stop the workers like at any other time
                return True
            if message != "ready":
                worker.process.join(timeout=5)
                reason = message or ("no answer within the start-up timeout" if worker.process.is_alive()
                                     else "exited before binding the port")
                log.error("worker_failed_to_start", slot=worker.slot, pid=worker.process.pid,
                          exitcode=worker.process.exitcode, reason=reason)
                return False
        return True

    def _watch(self, wake_read: int) -> None:
        """Sleep until a worker exits or a signal arrives; restart dead workers until told to stop."""
        import multiprocessing.connection  # noqa: PLC0415 - workers only

        pending: dict[int, float] = {}  # slot -> monotonic time to restart at
        while not self.stopping:
            sentinels = {w.process.sentinel: w for w in self.workers.values()}
            timeout = max(min(pending.values()) - time.monotonic(), 0.0) if pending else None
            ready = multiprocessing.connection.wait([*sentinels, wake_read], timeout=timeout)
            if wake_read in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_read, 512)
            for worker in [sentinels[s] for s in ready if isinstance(s, int) and s in sentinels]:
                worker.process.join()
                del self.workers[worker.slot]
                if self.metrics_dir is not None and worker.process.pid is not None:
                    metrics.mark_dead(worker.process.pid, self.metrics_dir)
                if self.stopping:
                    continue
                delay = self._restart_delay(worker)
                log.error("worker_died", slot=worker.slot, pid=worker.process.pid,
                          exitcode=worker.process.exitcode, restart_in=delay)
                pending[worker.slot] = time.monotonic() + delay
            now = time.monotonic()
            for slot, at in list(pending.items()):
                if at <= now and not self.stopping:
                    del pending[slot]
                    self._start(slot)

    def _restart_delay(self, worker: _Worker) -> float:
        if time.monotonic() - worker.started >= STABLE_AFTER:
            self.backoff[worker.slot] = 0.0
            return 0.0
        delay = min(max(self.backoff.get(worker.slot, 0.0) * 2, 0.1), RESTART_BACKOFF_MAX)
        self.backoff[worker.slot] = delay
        return delay

    def _stop_all(self) -> int:
        """SIGTERM every worker and wait for their drains; 0 when all of them exited cleanly."""
        self.draining = True
        alive = [w for w in self.workers.values() if w.process.is_alive()]
        log.info("stopping_workers", pids=[w.process.pid for w in alive], drain=self.settings.drain_seconds)
        for worker in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.process.pid or 0, signal.SIGTERM)
        # Drain, then up to shutdown_timeout for in-flight reviews, then a margin.
        grace = self.settings.drain_seconds + max(self.settings.default_timeout, 5.0) + 5.0
        deadline = time.monotonic() + grace
        codes = []
        for worker in list(self.workers.values()):
            worker.process.join(max(deadline - time.monotonic(), 0.0))
            if worker.process.is_alive():
                log.error("worker_kill", pid=worker.process.pid, reason="not stopped within the grace period")
                worker.process.kill()
                worker.process.join()
            codes.append(worker.process.exitcode)
        self.workers.clear()
        log.info("stopped", exit_codes=codes)
        return 0 if all(code == 0 for code in codes) else 1

