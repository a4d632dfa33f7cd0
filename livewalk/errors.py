# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Errors
------

Every error that livewalk's tools report to a person is a
:class:`LivewalkError`: its ``str()`` is one line that says what went wrong
and, where it helps, what to do about it. The ``livewalk`` command prints it
as ``livewalk: error: MESSAGE`` and exits with :attr:`LivewalkError.exit_code`
(2 for usage errors, 1 for everything else), never with a traceback unless
``--debug`` was given.

>>> str(NoSuchProcessError(4242))
'no process with PID 4242'
"""

from __future__ import annotations

__all__ = (
    "AddressError",
    "DebugInfoError",
    "KernelThreadError",
    "LivewalkError",
    "NoSuchProcessError",
    "TargetError",
    "UnsupportedArchError",
    "UsageError",
    "WalkFailedError",
)


def _one_line(message: str) -> str:
    # Messages may embed text from drgn or the OS; keep them on one line.
    return " ".join(str(message).split())


class LivewalkError(Exception):
    """
    Base class of the errors livewalk reports to a person.

    :ivar exit_code: the exit status of the ``livewalk`` command for this
        error (1, or 2 for usage errors)
    """

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(_one_line(message))


class UsageError(LivewalkError):
    """Bad command-line input: a malformed range, address or option."""

    exit_code = 2


class TargetError(LivewalkError):
    """
    The target cannot be opened: a missing or unreadable core file, a core
    file that is not a Linux kernel core, no permission for ``/proc/kcore``,
    an unreachable QMP socket.
    """


class DebugInfoError(LivewalkError):
    """The kernel's debugging information is missing or does not match."""


class NoSuchProcessError(LivewalkError):
    """No task with the given PID exists in the target."""

    def __init__(self, pid: int) -> None:
        super().__init__(f"no process with PID {pid}")
        self.pid = pid


class KernelThreadError(LivewalkError):
    """The task is a kernel thread: it has no ``mm`` to walk."""

    def __init__(self, pid: int, comm: str = "") -> None:
        name = f" ({comm})" if comm else ""
        super().__init__(
            f"PID {pid}{name} is a kernel thread: it has no user address space (mm is NULL)"
        )
        self.pid = pid


class UnsupportedArchError(TargetError):
    """
    The target's architecture is one this tool does not decode yet (pagemap,
    smaps, vtop and ptdump are x86_64's so far; the walker itself runs on
    arm64 too).
    """


class AddressError(UsageError):
    """
    An address is outside the range the command can look at (a kernel
    address given for a process, a user address given with ``--kernel``, a
    non-canonical address, a range past the top of user space).
    """


class WalkFailedError(LivewalkError):
    """The page tables could not be read or walked (e.g. a page missing from a dump)."""
