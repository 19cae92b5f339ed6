"""Record mode: every answered review, request and response together, as one redacted JSON file.

The server hands each answered review to :meth:`Recorder.submit`, which only puts it on a bounded
queue: serialising, redacting and writing happen on one background thread, so recording never
delays an answer, and a full disk or a full queue costs a recording (logged, counted in
``admission_record_errors_total``), never a review. The format is :mod:`webhook.recording`.

A file appears whole or not at all: it is written to a hidden temporary file in the same directory
and renamed with :func:`os.replace` (atomic on POSIX); temporary files left by a crash are removed
at start. Files are not fsync'ed: a power loss may lose the newest recordings, which are
best-effort by design.

Limits (``--record-max-files``, ``--record-max-bytes``) are kept per process: with ``--workers N``
the directory may hold up to N times as much.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import itertools
import os
import queue
import threading
from pathlib import Path
from typing import Any

import orjson
import structlog

from webhook import config, errors, logs, metrics, recording, review

log = logs.get("webhook.recorder")

_TEMP_PREFIX = ".tmp-"
_QUEUE_ITEMS = 256
_QUEUE_BYTES = 64 * 1024 * 1024
"""Pending work is bounded twice: an UPDATE review can carry two 3 MiB objects."""


@dataclasses.dataclass(slots=True)
class _Job:
    when: datetime.datetime
    sequence: int
    path: str | None
    review: review.Review
    answer: dict[str, Any]
    raw: bytes | None


class Recorder:
    """Writes recordings to ``directory`` from one background thread.

    Create it, :func:`attach` it to the app (or call :meth:`close` yourself). ``written``,
    ``failed`` and ``dropped`` count outcomes, for tests and operators reading the logs.
    """

    def __init__(
        self,
        directory: Path,
        *,
        max_files: int = 1000,
        max_bytes: int = 100 * 1024 * 1024,
        redaction: recording.Redaction = recording.DEFAULT_REDACTION,
        stats: metrics.Metrics | None = None,
    ) -> None:
        self.directory = directory
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.redaction = redaction
        self.stats = stats
        self.written = self.failed = self.dropped = 0
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self._files = self._scan()
        except OSError as exc:
            raise errors.WebhookError(
                f"--record {directory}: cannot use the directory: {exc.strerror or exc}; "
                "create it or pick a writable path"
            ) from None
        self._total = sum(size for _, size in self._files)
        self._sequence = itertools.count(1)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._pending_bytes = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="review-recorder", daemon=True)
        self._thread.start()
        self._closed = False

    @classmethod
    def from_settings(cls, settings: config.ServeSettings, *, redaction: recording.Redaction | None = None) -> Recorder:
        if settings.record is None:
            raise errors.WebhookError("record mode needs a directory (--record DIR)")
        if redaction is None:
            patterns = settings.record_redact_env
            redaction = recording.Redaction(env_patterns=patterns) if patterns is not None else recording.Redaction()
        return cls(settings.record, max_files=settings.record_max_files, max_bytes=settings.record_max_bytes,
                   redaction=redaction)

    def _scan(self) -> collections.deque[tuple[str, int]]:
        """Recordings already in the directory (they count towards the limits), oldest first;
        temporary files a crash left behind are removed."""
        files = []
        for entry in os.scandir(self.directory):
            if not entry.is_file():
                continue
            if entry.name.startswith(_TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            elif entry.name.endswith(recording.SUFFIX) and not entry.name.startswith("."):
                files.append((entry.name, entry.stat().st_size))
        return collections.deque(sorted(files))

    # --- the request path: cheap, never raises ---------------------------------------------

    def submit(
        self,
        parsed: review.Review,
        answer: dict[str, Any],
        *,
        path: str | None = None,
        raw: bytes | None = None,
    ) -> None:
        """Queue one answered review. ``raw`` is the request body as received (recorded verbatim;
        without it the request is rebuilt from ``parsed``, which keeps every field the webhook
        reads); ``path`` is the endpoint (default: the ``path`` the request middleware bound)."""
        try:
            if path is None:
                bound = structlog.contextvars.get_contextvars().get("path")
                path = bound if isinstance(bound, str) else None
            size = len(raw) if raw is not None else 0
            with self._lock:
                full = self._queue.qsize() >= _QUEUE_ITEMS or self._pending_bytes + size > _QUEUE_BYTES
                if self._closed or full:
                    self._dropped(parsed.uid)
                    return
                self._pending_bytes += size
            when = datetime.datetime.now(datetime.UTC)
            self._queue.put_nowait(_Job(when, next(self._sequence), path, parsed, answer, raw))
        except Exception:  # noqa: BLE001 - recording must never fail a review
            self._count_error()
            log.exception("record_failed", uid=parsed.uid, stage="submit")

    def _dropped(self, uid: str) -> None:
        self.dropped += 1
        self._count_error()
        log.warning("record_dropped", uid=uid, reason="recorder queue full or closed")

    def _count_error(self) -> None:
        if self.stats is not None:
            self.stats.record_errors.inc()

    # --- the background thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._write(job)
            except Exception:  # noqa: BLE001 - keep the thread alive for the next recording
                self.failed += 1
                self._count_error()
                log.exception("record_failed", uid=job.review.uid if job else None, stage="write")
            finally:
                if job is not None and job.raw is not None:
                    with self._lock:
                        self._pending_bytes -= len(job.raw)
                self._queue.task_done()

    def _document(self, job: _Job) -> tuple[dict[str, Any], list[str]]:
        request: dict[str, Any]
        if job.raw is not None:
            request = orjson.loads(job.raw)
        else:
            request = {
                "apiVersion": job.review.api_version,
                "kind": "AdmissionReview",
                "request": job.review.request.model_dump(mode="json", exclude_unset=True),
            }
        document: dict[str, Any] = {
            "apiVersion": recording.API_VERSION,
            "kind": recording.KIND,
            "recordedAt": job.when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "path": job.path,
            "redacted": [],
            "request": request,
            # A copy: redaction of the patch must not touch the dict the server sent.
            "response": orjson.loads(orjson.dumps(job.answer)),
        }
        found = recording.redact(document, redaction=self.redaction)
        document["redacted"] = found
        return document, found

    def _write(self, job: _Job) -> None:
        ctx = job.review.context
        name = recording.file_name(job.when, sequence=job.sequence, endpoint=job.path or "unknown", kind=ctx.kind,
                         namespace=ctx.namespace, name=ctx.name, uid=ctx.uid)
        document, _ = self._document(job)
        body = orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
        if len(body) > self.max_bytes:
            self.failed += 1
            self._count_error()
            log.warning("record_skipped", uid=ctx.uid, bytes=len(body), max_bytes=self.max_bytes,
                        reason="one recording is larger than --record-max-bytes")
            return
        target = self.directory / name
        temp = self.directory / f"{_TEMP_PREFIX}{name}"
        try:
            with open(temp, "wb") as handle:
                handle.write(body)
            os.replace(temp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            self.failed += 1
            self._count_error()
            log.error("record_failed", uid=ctx.uid, file=str(target), error=exc.strerror or str(exc))
            return
        self.written += 1
        self._files.append((name, len(body)))
        self._total += len(body)
        self._rotate()

    def _rotate(self) -> None:
        """Remove the oldest recordings until both limits hold (the newest is never over them:
        a recording larger than ``max_bytes`` is not written at all)."""
        while self._files and (len(self._files) > self.max_files or self._total > self.max_bytes):
            name, size = self._files.popleft()
            self._total -= size
            try:
                os.unlink(self.directory / name)
            except FileNotFoundError:
                pass  # removed by hand or by another worker process
            except OSError as exc:
                log.warning("record_rotate_failed", file=name, error=exc.strerror or str(exc))

    # --- lifecycle -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Block until every queued recording is written (or has failed)."""
        self._queue.join()

    def close(self) -> None:
        """Write what is queued, then stop the thread; later submissions are dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(None)
        self._thread.join()

    def files(self) -> list[Path]:
        """The recordings this recorder keeps, oldest first."""
        return [self.directory / name for name, _ in self._files]
