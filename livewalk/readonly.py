# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Read-only guard
---------------

livewalk never writes to the kernel it inspects. :class:`ReadOnlyGuard`
makes that checkable: while it is active, every attempt from Python to

* open a file for writing (``open``/``os.open`` with a write mode or
  ``O_WRONLY``/``O_RDWR``/``O_CREAT``/``O_TRUNC``/``O_APPEND``) under
  ``/proc``, ``/dev``, ``/sys`` (debugfs, ``/dev/mem``, ``/proc/kcore``...)
  or on a core file being inspected,
* map memory writably from a file (``mmap`` with write access),
* run a program (``subprocess``, ``os.system``, ``os.exec*``, ``os.spawn*``),
* call foreign code through ``ctypes``,

raises :class:`ReadOnlyViolation` in the code that tried and records it in
:attr:`ReadOnlyGuard.violations` (so that a ``except Exception`` in the code
under test cannot hide it). It is built on :func:`sys.addaudithook`, so it
sees every layer written in Python. drgn itself is read-only by design (its
``Program`` has no write method; :func:`program_write_methods` checks that),
and :func:`open_fds_for_writing` catches files that C code (libdrgn) opened
for writing, by looking at ``/proc/self/fdinfo``.

>>> with ReadOnlyGuard() as guard:
...     try:
...         open("/proc/self/comm", "w")
...     except ReadOnlyViolation:
...         pass
>>> guard.violations
['open for writing: /proc/self/comm (mode w)']
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable
from typing import Any

__all__ = (
    "ReadOnlyGuard",
    "ReadOnlyViolation",
    "open_fds_for_writing",
    "program_write_methods",
)

#: Paths under which nothing may be opened for writing while guarded.
PROTECTED_PREFIXES = ("/proc/", "/dev/", "/sys/")
#: Device files that are not the target (stdout redirections, ttys).
_HARMLESS = {"/dev/null", "/dev/zero", "/dev/full", "/dev/tty", "/dev/stdout", "/dev/stderr"}
_HARMLESS_PREFIXES = ("/dev/pts/", "/dev/shm/")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_FORBIDDEN_EVENTS = {
    "subprocess.Popen": "run a program",
    "os.system": "run a program",
    "os.exec": "run a program",
    "os.posix_spawn": "run a program",
    "os.spawn": "run a program",
    "os.fork": "fork",
    "ctypes.dlopen": "load foreign code",
    "ctypes.call_function": "call foreign code",
    "ctypes.addressof": "take a raw address",
    "ctypes.cdata": "make raw memory",
    "os.truncate": "truncate a file",
    "os.remove": "remove a file",
    "os.rename": "rename a file",
    "os.chmod": "chmod a file",
}


class ReadOnlyViolation(RuntimeError):
    """Something tried to write (or could write) while a :class:`ReadOnlyGuard` was active."""


class _State:
    lock = threading.Lock()
    active: list[ReadOnlyGuard] = []
    installed = False


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if not _State.active:
        return
    guard = _State.active[-1]
    if guard._inside:
        return
    msg = guard._check(event, args)
    if msg is not None:
        guard.violations.append(msg)
        raise ReadOnlyViolation(msg)


class ReadOnlyGuard:
    """
    A context manager that turns any write attempt into
    :class:`ReadOnlyViolation` (see the module documentation).

    :param protected: more paths (files, e.g. a vmcore) that must not be
        opened for writing
    :param allow_write_under: directories where writing stays allowed (test
        output, temporary files); never under the protected prefixes
    """

    def __init__(self, protected: Iterable[str] = (), allow_write_under: Iterable[str] = ()) -> None:
        self.protected = {os.path.realpath(p) for p in protected}
        self.allowed = tuple(
            os.path.realpath(p).rstrip("/") + "/"
            for p in allow_write_under
            if not os.path.realpath(p).startswith(PROTECTED_PREFIXES)
        )
        self.violations: list[str] = []
        self.opens_checked = 0
        self._inside = False

    def __enter__(self) -> ReadOnlyGuard:
        with _State.lock:
            if not _State.installed:
                sys.addaudithook(_hook)
                _State.installed = True
            _State.active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with _State.lock:
            _State.active.remove(self)

    def _protected_path(self, path: str) -> bool:
        self._inside = True
        try:
            real = os.path.realpath(path)
        finally:
            self._inside = False
        if real in _HARMLESS or real.startswith(_HARMLESS_PREFIXES):
            return False
        if any(real.startswith(a) for a in self.allowed):
            return False
        return real.startswith(PROTECTED_PREFIXES) or real in self.protected

    def _check(self, event: str, args: tuple[Any, ...]) -> str | None:
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            if isinstance(path, int) or path is None:
                return None  # os.fdopen of an fd opened before
            self.opens_checked += 1
            writing = False
            if isinstance(mode, str):
                writing = any(c in mode for c in "wax+")
            if isinstance(flags, int) and flags & _WRITE_FLAGS:
                writing = True
            if writing:
                p = os.fsdecode(path) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
                if self._protected_path(p):
                    return f"open for writing: {p} (mode {mode if mode is not None else oct(flags or 0)})"
            return None
        if event == "mmap.__new__":
            # (fileno, length, access, offset): ACCESS_READ is 1; -1 is anonymous
            fileno, _length, access, _offset = args
            import mmap

            if fileno != -1 and access not in (mmap.ACCESS_READ, mmap.ACCESS_COPY):
                return f"writable mmap of fd {fileno}"
            return None
        for prefix, what in _FORBIDDEN_EVENTS.items():
            if event == prefix or event.startswith(prefix + "."):
                if event.startswith("os.") and event in ("os.remove", "os.rename", "os.truncate", "os.chmod"):
                    p = args[0]
                    if isinstance(p, int):
                        return f"{what}: fd {p}"
                    if not self._protected_path(os.fsdecode(p)):
                        return None
                return f"{what}: {event} {_short(args)}"
        return None


def _short(args: tuple[Any, ...]) -> str:
    s = repr(args)
    return s if len(s) < 120 else s[:117] + "..."


def program_write_methods(prog_type: type | None = None) -> list[str]:
    """
    The methods of ``drgn.Program`` that could write to the target (any name
    with ``write`` or ``poke``). Empty for every drgn release so far.
    """
    if prog_type is None:
        import drgn

        prog_type = drgn.Program
    return [m for m in dir(prog_type) if "write" in m.lower() or "poke" in m.lower()]


def open_fds_for_writing(prefixes: tuple[str, ...] = PROTECTED_PREFIXES,
                         extra: Iterable[str] = ()) -> list[str]:
    """
    Files of this process, opened by any code (Python or C), that are open
    for writing and lie under *prefixes* or are one of *extra*
    (``/proc/self/fdinfo`` ``flags``). Pipes, sockets and ttys are ignored.
    """
    extra_set = {os.path.realpath(p) for p in extra}
    out: list[str] = []
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return out
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            with open(f"/proc/self/fdinfo/{fd}") as f:
                info = f.read()
        except OSError:
            continue
        if not target.startswith("/") or target.startswith(("/dev/pts/", "/dev/null", "/dev/tty")):
            continue
        if not (target.startswith(prefixes) or target in extra_set):
            continue
        flags = 0
        for line in info.splitlines():
            if line.startswith("flags:"):
                flags = int(line.split()[1], 8)
        if flags & (os.O_WRONLY | os.O_RDWR):
            out.append(f"fd {fd} -> {target} open for writing (flags {oct(flags)})")
    return out
