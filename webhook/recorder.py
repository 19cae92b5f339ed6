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
"""Pending work is bounded twice, in recordings and in their estimated cost (:func:`_cost`): an
UPDATE review can carry two 3 MiB objects, and writing one costs several times its size. One
recording costlier than this is still taken when nothing else is pending, so the recorder holds
at most this much, or one review's cost (which :class:`review.Limits` bounds)."""
_INDENT_BUDGET = 4 * 1024 * 1024
"""Recordings are indented for people to read, unless the indentation alone would take more than
this: each line of a document nested N levels deep starts with 2N spaces, so a body of a million
values nested a hundred levels would be written as 200 MB."""

# Memory per parsed item (orjson, CPython 3.11; see review.Limits): at most 192 bytes for an
# object or array, 108 for a value (a member with its key).
_CONTAINER_COST = 200
_VALUE_COST = 110


@dataclasses.dataclass(frozen=True, slots=True)
class _Names:
    """What a recording's file name and log lines say of the review."""

    uid: str
    kind: str
    namespace: str
    name: str


@dataclasses.dataclass(slots=True)
class _Job:
    when: datetime.datetime
    sequence: int
    path: str | None
    names: _Names
    review: review.Review | None
    """Only without ``raw``, to rebuild the request from; otherwise the parsed objects are let go
    with the request, and the writer parses ``raw`` again, one recording at a time."""
    answer: dict[str, Any]
    raw: bytes | None
    cost: int
    indent: bool


def _cost(parsed: review.Review, raw: bytes | None, answer: dict[str, Any]) -> tuple[int, bool]:
    """What writing this recording takes in memory at its peak, estimated in bytes, and whether
    to indent it. The writer holds the body, its parse (the strings again, plus every object,
    array and value: counted before parsing, see :func:`review.measure`) and the document it
    writes (the body again, the answer, and the indentation if any)."""
    shape = parsed.shape
    if raw is None or shape is None:
        # Parsed from a dict (offline, tests): measure the objects as JSON, once.
        dumped = orjson.dumps([parsed.object, parsed.old_object])
        shape = review.measure(dumped, limits=_UNLIMITED)
        size = len(dumped) + (len(raw) if raw is not None else 0)
    else:
        size = len(raw)
    depth = shape.depth if shape.depth is not None else shape.containers
    indentation = (shape.containers + shape.values) * 2 * (depth + 1)  # at most, a line per item
    indent = indentation <= _INDENT_BUDGET
    in_memory = size + _CONTAINER_COST * shape.containers + _VALUE_COST * shape.values
    written = size + len(orjson.dumps(answer)) + (indentation if indent else 0)
    return size + in_memory + written, indent


_UNLIMITED = review.Limits(max_depth=2**62, max_containers=2**62, max_values=2**62)
"""Limits that refuse nothing: :func:`review.measure` then stops at its first, cheapest counts
(upper bounds, all :func:`_cost` needs)."""


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
            cost, indent = _cost(parsed, raw, answer)
            with self._lock:
                full = self._queue.qsize() >= _QUEUE_ITEMS or (
                    self._pending_bytes > 0 and self._pending_bytes + cost > _QUEUE_BYTES
                )
                if self._closed or full:
                    self._dropped(parsed.uid)
                    return
                self._pending_bytes += cost
            when = datetime.datetime.now(datetime.UTC)
            ctx = parsed.context
            names = _Names(ctx.uid, ctx.kind, ctx.namespace, ctx.name)
            kept = parsed if raw is None else None
            self._queue.put_nowait(_Job(when, next(self._sequence), path, names, kept, answer, raw, cost, indent))
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
                log.exception("record_failed", uid=job.names.uid if job else None, stage="write")
            finally:
                if job is not None:
                    with self._lock:
                        self._pending_bytes -= job.cost
                self._queue.task_done()

    def _document(self, job: _Job) -> tuple[dict[str, Any], list[str]]:
        request: dict[str, Any]
        if job.raw is not None:
            request = orjson.loads(job.raw)
        else:
            assert job.review is not None  # kept whenever there is no raw body
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
        ctx = job.names
        name = recording.file_name(job.when, sequence=job.sequence, endpoint=job.path or "unknown", kind=ctx.kind,
                         namespace=ctx.namespace, name=ctx.name, uid=ctx.uid)
        document, _ = self._document(job)
        body = orjson.dumps(document, option=orjson.OPT_INDENT_2 if job.indent else 0) + b"\n"
        del document
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
