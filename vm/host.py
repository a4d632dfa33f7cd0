# SPDX-License-Identifier: LGPL-2.1-or-later
"""livewalk's answers about a guest process, computed on the host over QMP,
so a test asserts in its own process (what :class:`~livewalk.vm.Guest`'s
``pagemap``/``smaps``/``vtop``/``walk_page_range`` methods call).

>>> prog = attach(g.qmp_socket, g.vmlinux)  # doctest: +SKIP
>>> pagemap(prog, pid, addr, addr + 4096)[0] >> 63  # doctest: +SKIP
1

livewalk and drgn are imported here only, when first used: the rest of the
harness needs only the standard library.
"""

from __future__ import annotations

import gc
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import GuestError

if TYPE_CHECKING:
    from drgn import Object, Program

    from livewalk.mm.pagewalk import MMWalkOps
    from livewalk.proc.smaps import SmapsVMA
    from livewalk.tools.vtop import VtopResult

__all__ = ("QMP_FREE_TIMEOUT", "attach", "mm", "pagemap", "smaps", "vtop", "walk_page_range")

#: Seconds :func:`attach` waits for the guest's QMP socket to be free.
QMP_FREE_TIMEOUT = 20.0


def _wait_qmp_free(qmp_socket: str, timeout: float) -> None:
    """
    Wait until QEMU greets a new client on *qmp_socket*. QEMU serves one QMP
    client at a time and queues the others without a word, and drgn waits
    for the greeting with no timeout: a Program its owner dropped but that
    is still alive holds the socket (its livewalk backend, kept in
    ``prog.cache``, refers back to it: a cycle only the collector frees).
    So collect, probe with a timeout, and say so if the socket stays held.
    """
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            try:
                s.connect(qmp_socket)
                if b"QMP" in s.recv(4096):
                    return
            except TimeoutError:
                pass
            except OSError as e:
                raise GuestError(f"cannot connect to the guest's QMP socket {qmp_socket}: {e}") from e
        if time.monotonic() >= deadline:
            raise GuestError(
                f"the guest's QMP socket {qmp_socket} is held by another client for {timeout:.0f} s "
                "(a drgn Program still attached?)"
            )


def attach(qmp_socket: str, vmlinux: str) -> Program:
    """A ``drgn.Program`` attached to a guest over QMP, with the debug info
    of its kernel (*vmlinux*) loaded; missing module debug info is ignored.

    drgn takes the guest's platform from QEMU (an arm64 guest on an x86-64
    host is AArch64 with no option).
    """
    import drgn

    _wait_qmp_free(qmp_socket, QMP_FREE_TIMEOUT)
    prog = drgn.Program()
    prog.set_qemu_qmp(qmp_socket)
    prog.debug_info_options.kernel_directories = (str(Path(vmlinux).parent),)
    try:
        prog.load_default_debug_info()
    except drgn.MissingDebugInfoError:
        pass  # module debug info: only vmlinux matters here
    try:
        prog["init_task"]
    except LookupError as e:
        raise GuestError(f"drgn found no kernel debug info in {vmlinux}: {e}") from e
    return prog


def mm(prog: Program, pid: int) -> Object:
    """The ``struct mm_struct *`` of guest process *pid*."""
    from livewalk.task import resolve_mm

    return resolve_mm(prog, pid)


def pagemap(prog: Program, pid: int, start: int, end: int) -> list[int]:
    """The ``/proc/PID/pagemap`` entries of [*start*, *end*), one per page."""
    from livewalk.proc.pagemap import pagemap_read

    return list(pagemap_read(mm(prog, pid), start, end))


def smaps(prog: Program, pid: int) -> list[SmapsVMA]:
    """``/proc/PID/smaps``, one record per VMA."""
    from livewalk.proc.smaps import smaps as smaps_of

    return smaps_of(mm(prog, pid))


def vtop(prog: Program, pid: int, addr: int) -> VtopResult:
    """The translation of user address *addr*, level by level."""
    from livewalk.tools.vtop import vtop as vtop_of

    return vtop_of(mm(prog, pid), addr)


def walk_page_range(
    prog: Program, pid: int, start: int, end: int, ops: MMWalkOps, private: Any = None
) -> int:
    """``walk_page_range()`` with the caller's *ops*; returns what it returns
    (0, a callback's stop value, or a negative errno)."""
    from livewalk.mm.pagewalk import walk_page_range as walk

    return walk(mm(prog, pid), start, end, ops, private)
