# SPDX-License-Identifier: LGPL-2.1-or-later
"""What the test VM harness raises and returns for a guest command.

>>> RunResult("true", 0, "", "", 0.1).check().returncode
0
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

__all__ = ("BootError", "GuestError", "RunResult", "log")


class GuestError(RuntimeError):
    """The guest failed (died, did not answer, or a command failed with check=True)."""


class BootError(GuestError):
    """The guest did not boot (after all retries)."""


@dataclass
class RunResult:
    """The result of :meth:`~livewalk.vm.Guest.run`."""

    cmd: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    def check(self) -> RunResult:
        """Raise :class:`GuestError` unless the command exited with status 0."""
        if self.returncode != 0:
            raise GuestError(
                f"guest command {self.cmd!r} exited with {self.returncode}"
                + (" (timed out)" if self.timed_out else "")
                + f"\n--- stdout:\n{self.stdout[-4000:]}\n--- stderr:\n{self.stderr[-4000:]}"
            )
        return self


def log(msg: str) -> None:
    """Tell the user what the harness does (stderr, ``vm:`` prefix)."""
    print(f"vm: {msg}", file=sys.stderr, flush=True)
