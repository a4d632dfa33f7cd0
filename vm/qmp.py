# SPDX-License-Identifier: LGPL-2.1-or-later
"""A minimal QMP client for the harness's own monitors: writing a disk
before the guest starts, quitting QEMU and dumping the guest's memory (drgn
holds the main QMP socket).

>>> with QMPClient("/tmp/lwvm-x/qmp-dump.sock", deadline=time.monotonic() + 60) as q:  # doctest: +SKIP
...     q.command("query-status")["status"]
'running'
"""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import GuestError

__all__ = ("QMPClient", "dump_guest_memory", "qmp_quit", "write_disk_and_start")

_ids = itertools.count(1)


class QMPClient:
    """One connection to a QMP monitor, past the greeting and capabilities.

    :param deadline: ``time.monotonic()`` after which waiting for an answer
        raises :class:`GuestError`
    :param alive: whether QEMU still runs (checked while waiting)
    """

    def __init__(self, path: str, deadline: float, alive: Callable[[], bool] = lambda: True) -> None:
        self.path = path
        self.deadline = deadline
        self._alive = alive
        self._buf = b""
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def __enter__(self) -> QMPClient:
        try:
            self._sock.settimeout(10)
            self._sock.connect(self.path)
            self._recv()  # greeting
            self.command("qmp_capabilities")
        except BaseException:
            self._sock.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._sock.close()

    def _recv(self) -> dict[str, Any]:
        while b"\n" not in self._buf:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise GuestError(f"QMP monitor {self.path}: no answer in time")
            self._sock.settimeout(min(left, 5.0))
            try:
                data = self._sock.recv(1 << 16)
            except TimeoutError:
                if not self._alive():
                    raise GuestError("QEMU exited") from None
                continue
            if not data:
                raise GuestError(f"QMP monitor {self.path} closed the connection")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        msg = json.loads(line)
        return msg if isinstance(msg, dict) else {}

    def command(self, name: str, **arguments: Any) -> Any:
        """Run a QMP command and return its ``return`` value (events are skipped)."""
        cid = f"lw{next(_ids)}"
        req: dict[str, Any] = {"execute": name, "id": cid}
        if arguments:
            req["arguments"] = arguments
        self._sock.sendall((json.dumps(req) + "\n").encode())
        while True:
            m = self._recv()
            if m.get("id") != cid:
                continue  # an event (STOP, RESUME, DUMP_COMPLETED...)
            if "error" in m:
                raise GuestError(f"QMP {name}: {m['error'].get('desc', m['error'])}")
            return m.get("return")


def write_disk_and_start(
    path: str, drive: str, offset: int, src: Path, deadline: float, alive: Callable[[], bool] = lambda: True
) -> None:
    """Write the file *src* into the disk *drive* (a ``-drive`` id) at
    *offset*, then start the guest's CPUs, which ``-S`` held, over the
    monitor at *path*.

    The write goes through the monitor's ``qemu-io``, so with
    ``snapshot=on`` it lands in QEMU's temporary overlay of the disk and
    never in its file. ``qemu-io`` reports a success on QEMU's standard
    output, not to the monitor: whatever the monitor answers is an error.

    :raises ValueError: if *src* is not an absolute path without quotes
    :raises GuestError: if the monitor does not answer, or the write fails
    """
    if '"' in str(src) or not src.is_absolute():
        raise ValueError(f"{src}: not a path the monitor's qemu-io takes")
    size = src.stat().st_size
    try:
        with QMPClient(path, deadline, alive) as q:
            line = f'qemu-io {drive} "write -s {src} {offset} {size}"'
            out = str(q.command("human-monitor-command", **{"command-line": line}) or "").strip()
            if out:
                raise GuestError(f"writing {src} to disk {drive}: {out}")
            q.command("cont")
    except OSError as e:
        raise GuestError(f"QMP monitor {path}: {e}") from e


def qmp_quit(path: str) -> None:
    """Ask QEMU to quit over the monitor at *path* (best effort, 3 s)."""
    try:
        with QMPClient(path, deadline=time.monotonic() + 3) as q:
            q.command("quit")
    except (OSError, ValueError, GuestError):
        pass


def dump_guest_memory(
    path: str, dest: Path, fmt: str, deadline: float, alive: Callable[[], bool] = lambda: True
) -> None:
    """Have QEMU write a crash dump of the guest to the host file *dest*
    (``dump-guest-memory``, ``paging=false``, detached) over the monitor at
    *path*, and wait for it until ``time.monotonic()`` passes *deadline*.

    :raises GuestError: if QEMU refuses (*fmt* not built in), the dump
        fails, or the deadline passes
    """
    try:
        with QMPClient(path, deadline, alive) as q:
            formats = q.command("query-dump-guest-memory-capability").get("formats", [])
            if fmt not in formats:
                raise GuestError(f"this QEMU cannot dump in format {fmt!r} (it has {formats})")
            q.command("dump-guest-memory", paging=False, protocol=f"file:{dest}", detach=True, format=fmt)
            while True:
                st = q.command("query-dump")
                if st.get("status") == "completed":
                    return
                if st.get("status") == "failed":
                    raise GuestError(f"QEMU failed to dump the guest to {dest}")
                if time.monotonic() > deadline:
                    raise GuestError(
                        f"the dump to {dest} did not complete in time "
                        f"({st.get('completed')} of {st.get('total')} bytes)"
                    )
                time.sleep(0.2)
    except (OSError, ValueError) as e:
        raise GuestError(f"QMP dump monitor: {e}") from e
