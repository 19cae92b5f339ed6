"""A one-line progress display on standard error, only when it is a terminal.

``audit: 12,345 objects (Pod) 2,310/s`` rewritten in place at most five times a second; with a known
total (a dump, after its first pass) also the share done. Off the terminal (a CronJob's log, a pipe)
nothing is written, so logs hold results, not carriage returns.
"""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    def __init__(self, stream: TextIO | None, *, interval: float = 0.2) -> None:
        self.stream = stream
        self.interval = interval
        self.count = 0
        self.total: int | None = None
        self.label = ""
        self.phase = "objects"
        self._started = time.monotonic()
        self._shown = 0.0
        self._width = 0

    @classmethod
    def for_terminal(cls, stream: TextIO, *, enabled: bool = True) -> Progress:
        """Shown on ``stream`` when it is a terminal (and ``enabled``); otherwise silent."""
        try:
            tty = stream.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(stream if enabled and tty else None)

    def start(self, phase: str, *, total: int | None = None) -> None:
        self.phase, self.total, self.count = phase, total, 0
        self._started = time.monotonic()

    def tick(self, label: str = "") -> None:
        self.count += 1
        if self.stream is None:
            return
        now = time.monotonic()
        if now - self._shown < self.interval:
            return
        self._shown = now
        self.label = label or self.label
        rate = self.count / max(now - self._started, 1e-6)
        done = f"{self.count:,}/{self.total:,}" if self.total else f"{self.count:,}"
        share = f" {100 * self.count // self.total}%" if self.total else ""
        text = f"audit: {self.phase} {done}{share}" + (f" ({self.label})" if self.label else "") + f" {rate:,.0f}/s"
        self._write("\r" + text.ljust(self._width))
        self._width = len(text)

    def close(self) -> None:
        if self.stream is not None and self._width:
            self._write("\r" + " " * self._width + "\r")
            self._width = 0

    def _write(self, text: str) -> None:
        assert self.stream is not None
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self.stream = None
