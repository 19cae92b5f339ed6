"""structlog set-up: JSON lines in production, a readable console on a terminal.

``merge_contextvars`` comes first so what the request middleware binds (uid, path) is on every
line; each review produces exactly one ``review`` event with its facts as keys, never an f-string.

With ``serve --workers N`` several processes share one stderr. Each line is therefore written
whole, newline included, by one ``write()`` (see :class:`_LineLogger`), and the start-up lines
every worker would log alike are left to the worker in slot 0 (see :func:`drop_startup_events`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import datetime
import json
import logging
import os
import select
import sys
import threading
import time
from typing import Any, Literal

import orjson
import structlog

LogFormat = Literal["json", "console"]

STARTUP_EVENTS = frozenset({"serving", "no_cluster", "namespace_cache_started"})
"""Start-up lines that say the same in every worker process (the served groups, whether a cluster is
reachable): with ``--workers N`` only the worker in slot 0 logs them."""


class _LineLogger:
    """Writes each line, newline included, with one ``write()`` to stderr.

    ``print`` writes the text and the newline separately, and with ``PYTHONUNBUFFERED=1`` (as in
    the image) each becomes its own ``write(2)``: two workers sharing stderr then splice their lines
    together. One ``write(2)`` of a whole line does not interleave with another process's: on a
    pipe (a container's stderr is one, read by the container runtime) when the line is at most
    ``PIPE_BUF``, 4096 bytes on Linux; a longer line may be split among other writers' lines. Lines
    are a few hundred bytes; a review line whose caller-controlled fields (each cut to 256 or 2048
    characters) are all near their limits, or a traceback, can exceed it.

    Writes go to whatever ``sys.stderr`` is at the time: the real one through its file descriptor,
    a replacement (test capture swaps it) as one ``write`` of the whole line.

    Review lines written from the event loop are gathered and written together when the loop has
    finished what is ready (:class:`_Gathered`): under load several reviews end in one turn of the
    loop, and one ``write(2)`` of a few lines cost far less than one each (the ``write`` was half
    of the review line's cost, about 6% of a review's CPU). Each ``write`` still holds whole lines
    and at most ``PIPE_BUF`` bytes, unless one line alone is longer. Any other line first writes
    what is gathered, so this process's lines keep their order.
    """

    _lock = threading.Lock()  # one line at a time from this process's threads

    def msg(self, message: str) -> None:
        stream = sys.stderr
        if stream is None:  # no stderr at all (pythonw)
            return
        real = sys.__stderr__
        if real is None or stream is not real:
            self._through(stream, message + "\n")
            return
        self._to_descriptor(real, (message + "\n").encode(real.encoding or "utf-8", "backslashreplace"))

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg

    def write_line(self, line: bytes) -> None:
        """Write ``line``, UTF-8 text ending in a newline, as :meth:`msg` writes a message: the
        review line comes here as orjson made it, without a round trip through ``str``; from a
        running event loop it is gathered with the others of the loop's turn."""
        stream = sys.stderr
        if stream is None:
            return
        real = sys.__stderr__
        if real is None or stream is not real:
            self._through(stream, line.decode())
            return
        if real.encoding != "utf-8":  # a stderr in another encoding gets the line as msg would write it
            line = line.decode().encode(real.encoding or "utf-8", "backslashreplace")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._to_descriptor(real, line)
            return
        with self._lock:
            _GATHERED.add(line, loop)

    def _through(self, stream: Any, text: str) -> None:
        """A replaced ``sys.stderr`` (test capture): one ``write`` of the whole line."""
        with self._lock:
            stream.write(text)
            stream.flush()

    def _to_descriptor(self, real: Any, data: bytes) -> None:
        with self._lock:
            _GATHERED.write_out()
            _write_line(real, data)


def _write_line(real: Any, data: bytes) -> None:
    """Lines to the real stderr's descriptor (the caller holds the lock)."""
    # A log call never raises, not even on a closed stderr.
    try:
        # What was written through the stream before (a traceback, a warning) goes first.
        real.flush()
        _write_all(real.fileno(), data)
    except (OSError, ValueError):
        pass


class _Gathered:
    """Review lines of the event loop's current turn, written by one callback at its end."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.size = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        """The loop whose next turn writes them (a test's next loop schedules its own)."""

    def add(self, line: bytes, loop: asyncio.AbstractEventLoop) -> None:
        """Gather ``line`` (the caller holds the lock); a group that would pass ``PIPE_BUF`` is
        written first."""
        if self.size + len(line) > PIPE_BUF:
            self.write_out()
        self.lines.append(line)
        self.size += len(line)
        if self.loop is not loop:
            self.loop = loop
            loop.call_soon(flush)

    def write_out(self) -> None:
        """Write what is gathered, now (the caller holds the lock)."""
        if self.lines:
            lines, self.lines, self.size = self.lines, [], 0
            real = sys.__stderr__
            if real is not None:
                _write_line(real, b"".join(lines))


PIPE_BUF = 4096
"""What one ``write(2)`` to a pipe keeps whole among other writers' (Linux)."""

_GATHERED = _Gathered()


def flush() -> None:
    """Write the review lines gathered so far. Called at the end of the loop's turn, at exit, and
    before a fork (a child must not inherit lines its parent writes too)."""
    with _LineLogger._lock:
        _GATHERED.loop = None
        _GATHERED.write_out()


atexit.register(flush)
os.register_at_fork(before=flush)


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is out (a pipe may take part of a long line, or refuse it
    while full if the descriptor is non-blocking). One call in the usual case."""
    try:
        written = os.write(fd, data)
    except BlockingIOError:
        written = 0
    if written == len(data):
        return
    view = memoryview(data)[written:]
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])


def _line_logger(*_: Any) -> _LineLogger:
    return _LineLogger()


def _fallback(value: Any) -> Any:
    """For values JSON has no type for, as structlog's own renderer: ``__structlog__`` if the object
    defines it, else ``repr``."""
    hook = getattr(value, "__structlog__", None)
    return hook() if callable(hook) else repr(value)


def _dumps(event: Any, **_: Any) -> str:
    """orjson instead of the stdlib encoder: a third of the cost of the one line per review.

    orjson refuses integers beyond 64 bits, lone surrogates (file names decoded with
    ``surrogateescape``) and nesting deeper than 254; those lines go through the stdlib encoder,
    and a line even that cannot encode is still written, saying so. A log call never raises.
    """
    try:
        return orjson.dumps(event, default=_fallback, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        pass
    try:
        return json.dumps(event, default=_fallback)
    except (TypeError, ValueError, RecursionError) as exc:
        return json.dumps({"event": repr(event.get("event")), "log_error": f"unencodable line: {exc!r}"})


_direct: tuple[Any, ...] | None = None
"""The structlog configuration :func:`configure` made in JSON mode at info level or below (what
:func:`get_config` returns, as a tuple); while it is in force, :func:`review` writes its line
itself. ``None``: every line goes through structlog."""


def _config_key() -> tuple[Any, ...]:
    config = structlog.get_config()
    return (config["processors"], config["wrapper_class"], config["logger_factory"])


def configure(*, log_format: LogFormat = "json", level: str = "info") -> None:
    global _direct
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if log_format == "json":
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer(serializer=_dumps)]
    else:
        processors += [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_line_logger,
        cache_logger_on_first_use=False,
    )
    _direct = _config_key() if log_format == "json" and numeric <= logging.INFO else None


_PREFIX = "structlog_"
_UTC = datetime.UTC


def review(fields: dict[str, Any], *, logger: Any) -> None:
    """The one ``review`` line per answered review, at info level; ``fields`` in their order.

    With the JSON set-up of :func:`configure` in force, the line is written here as structlog
    would write it (the fields, ``event``, context variables not among them, ``level``, an ISO
    ``timestamp``; encoded by :func:`_dumps`; one write), without its per-call logger, copies of
    the event and processor chain: a fifth of the cost. Any other set-up (the console, a test
    capturing events, a stricter level) gets the line through ``logger`` as usual.
    """
    if _direct is None or _config_key() != _direct:
        logger.info("review", **fields)
        return
    fields["event"] = "review"
    context = contextvars.copy_context()
    for var in context:
        if var.name.startswith(_PREFIX) and context[var] is not Ellipsis:
            fields.setdefault(var.name[len(_PREFIX) :], context[var])
    fields["level"] = "info"
    fields["timestamp"] = _timestamp()
    try:
        line = orjson.dumps(fields, default=_fallback, option=_LINE_OPTIONS)
    except TypeError:  # what orjson refuses, as _dumps handles it
        line = (_dumps(fields) + "\n").encode()
    _LineLogger().write_line(line)


_LINE_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


_second: list[Any] = [None, ""]
"""The last whole second :func:`_timestamp` formatted, and its text."""


def _timestamp() -> str:
    """Now as structlog's ``TimeStamper(fmt="iso", utc=True)`` writes it
    (``2026-12-01T14:30:05.123456Z``; no fraction at a whole second, as ``isoformat``), with the
    date and time formatted once per second: a fifth of what the review line cost."""
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    if _second[0] != seconds:
        text = datetime.datetime.fromtimestamp(seconds, tz=_UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second[0], _second[1] = seconds, text
    micro = nanoseconds // 1000
    return f"{_second[1]}.{micro:06d}Z" if micro else f"{_second[1]}Z"


def _drop_startup_event(logger: Any, method_name: str, event_dict: Any) -> Any:
    if event_dict.get("event") in STARTUP_EVENTS:
        raise structlog.DropEvent
    return event_dict


def drop_startup_events() -> None:
    """From now on, drop the :data:`STARTUP_EVENTS` lines in this process: called by the workers in
    slots other than 0, so a Pod with N workers says once, not N times, that it has no cluster.
    (A replaced worker in slot 0 logs them again, which is worth a line: a new process started.)"""
    global _direct
    processors = structlog.get_config()["processors"]
    if _drop_startup_event not in processors:
        direct = _direct is not None and _config_key() == _direct
        structlog.configure(processors=[_drop_startup_event, *processors])
        if direct:  # the review line is not a start-up line: still written directly
            _direct = _config_key()


def get(name: str = "webhook") -> Any:
    return structlog.get_logger(name)
