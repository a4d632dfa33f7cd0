# SPDX-License-Identifier: LGPL-2.1-or-later
"""
What livewalk needs of drgn
===========================

livewalk needs drgn 0.0.31 or later: that release brought the module API
(``Program.debug_info_options``, ``Program.main_module()``) that livewalk
loads a kernel's debugging information with. ``--qemu`` needs drgn 0.2 or
later (``Program.set_qemu_qmp()``); everything else works from 0.0.31 on,
which the test suite checks against that very release.

:func:`require_drgn` runs when this module is imported, which
:mod:`livewalk` does first. With no drgn, or
one too old, it raises :class:`DrgnVersionError` (an :class:`ImportError`)
whose message names what to install, and makes the interpreter report that
error in one line if nothing catches it (the ``livewalk`` command, a script,
the drgn prompt), instead of a traceback ending in a missing attribute.

>>> from livewalk.requirements import DRGN_MIN_VERSION, drgn_version
>>> drgn_version() >= DRGN_MIN_VERSION
True
"""

from __future__ import annotations

import re
import sys
from types import TracebackType

__all__ = (
    "DRGN_MIN_VERSION",
    "DrgnVersionError",
    "drgn_version",
    "require_drgn",
)

#: The oldest drgn livewalk supports (pyproject.toml says the same).
DRGN_MIN_VERSION = (0, 0, 31)

_MIN = ".".join(map(str, DRGN_MIN_VERSION))
_INSTALL = f"pip install 'drgn>={_MIN}' (or python3-drgn {_MIN} or later from your distribution)"


class DrgnVersionError(ImportError):
    """drgn is missing or older than :data:`DRGN_MIN_VERSION`."""


def drgn_version(version: str | None = None) -> tuple[int, ...]:
    """
    The release of drgn as a tuple of integers (``"0.3.0+12.gabc"`` gives
    ``(0, 3, 0)``); of the installed drgn without *version*.

    :raises DrgnVersionError: if drgn is not installed
    """
    if version is None:
        try:
            import drgn
        except ImportError as e:
            raise DrgnVersionError(f"livewalk needs drgn >= {_MIN}, which is not installed: {_INSTALL}") from e
        version = drgn.__version__
    m = re.match(r"(\d+(?:\.\d+)*)", version)
    return tuple(int(p) for p in m.group(1).split(".")) if m else ()


def _one_line(hook: object) -> object:
    """An excepthook that reports a :class:`DrgnVersionError` in one line and hands the rest to *hook*."""

    def excepthook(t: type[BaseException], e: BaseException, tb: TracebackType | None) -> None:
        if isinstance(e, DrgnVersionError):
            sys.stderr.write(f"livewalk: error: {e}\n")
        else:
            hook(t, e, tb)  # type: ignore[operator]

    return excepthook


def require_drgn() -> None:
    """
    Check that the installed drgn is one livewalk supports.

    :raises DrgnVersionError: naming what to install, if drgn is missing or
        older than :data:`DRGN_MIN_VERSION`
    """
    try:
        have = drgn_version()
        if have < DRGN_MIN_VERSION:
            import drgn

            raise DrgnVersionError(f"drgn {drgn.__version__} is too old: livewalk needs drgn >= {_MIN}: {_INSTALL}")
    except DrgnVersionError:
        sys.excepthook = _one_line(sys.excepthook)  # type: ignore[assignment]
        raise


require_drgn()
