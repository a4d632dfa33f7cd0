# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Progress
--------

A one-line progress counter for long walks. It writes to standard error, and
only when standard error is a terminal: piped or redirected output stays
clean. Updates are throttled (at most one redraw every
:attr:`Progress.interval` seconds) so that the counter costs nothing
measurable inside a walk's callbacks.

>>> import io
>>> p = Progress("pagemap", stream=io.StringIO())  # not a tty: quiet
>>> p.update(vmas=1, nbytes=4096)
>>> p.close()
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

__all__ = ("Progress", "format_bytes")


def format_bytes(n: int) -> str:
    """
    Format a byte count with a binary unit.

    >>> format_bytes(3 << 20)
    '3.0 MiB'
    >>> format_bytes(512)
    '512 B'
    """
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


class Progress:
    """
    A throttled one-line counter of VMAs (or ranges) and bytes walked.

    :param label: what is being walked (``"pagemap"``, ``"ptdump"``...)
    :param total_bytes: the size of the whole walk, if known (adds a
        percentage)
    :param counting: what the first counter counts (``"VMAs"``, ``"ranges"``)
    :param stream: where to draw (default: ``sys.stderr``)
    :param enabled: force drawing on or off; by default it is on exactly
        when *stream* is a terminal
    """

    interval = 0.2

    def __init__(
        self,
        label: str,
        *,
        total_bytes: int | None = None,
        counting: str = "VMAs",
        stream: TextIO | None = None,
        enabled: bool | None = None,
    ) -> None:
        self.label = label
        self.counting = counting
        self.total_bytes = total_bytes
        self.stream = sys.stderr if stream is None else stream
        if enabled is None:
            try:
                enabled = self.stream.isatty()
            except (AttributeError, ValueError):
                enabled = False
        self.enabled = enabled
        self.vmas = 0
        self.nbytes = 0
        self._last = 0.0
        self._drawn = False

    def update(self, *, vmas: int | None = None, nbytes: int | None = None,
               add_vmas: int = 0, add_bytes: int = 0, force: bool = False) -> None:
        """
        Set (*vmas*, *nbytes*) or add to (*add_vmas*, *add_bytes*) the counts
        and redraw if the last redraw is old enough (or *force*).
        """
        if vmas is not None:
            self.vmas = vmas
        if nbytes is not None:
            self.nbytes = nbytes
        self.vmas += add_vmas
        self.nbytes += add_bytes
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        text = f"{self.label}: {self.vmas} {self.counting}, {format_bytes(self.nbytes)}"
        if self.total_bytes:
            pct = min(100.0, 100.0 * self.nbytes / self.total_bytes)
            text += f" of {format_bytes(self.total_bytes)} ({pct:.0f}%)"
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """Erase the counter line (if one was drawn)."""
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
