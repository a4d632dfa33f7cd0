# SPDX-License-Identifier: LGPL-2.1-or-later
"""
ptdump's shared types
---------------------

What every architecture's page-table dump shares with the generic walk of
Linux 7.2 ``mm/ptdump.c`` (``include/linux/ptdump.h``): the named start
addresses that split a dump into sections (an architecture's
``addr_marker``) and the ranges its ``note_page()`` prints. x86_64's
markers and columns are :mod:`livewalk.arch.x86.dump_pagetables`, arm64's
:mod:`livewalk.arch.arm64.ptdump`; the walk is
:func:`livewalk.tools.ptdump.ptdump`.

>>> r = PtdumpRange(0x1000, 0x3000, 0x63, 4, "User Space", present=True)
>>> hex(r.size), r.present
('0x2000', True)
"""

from __future__ import annotations

import dataclasses

from livewalk.arch import ULONG_MAX

__all__ = (
    "AddressMarker",
    "PtdumpRange",
)


@dataclasses.dataclass(frozen=True)
class AddressMarker:
    """An ``addr_marker``: a named start address, optionally a line limit."""

    start_address: int
    name: str
    max_lines: int = 0


@dataclasses.dataclass(frozen=True)
class PtdumpRange:
    """
    One printed line: ``[start, end)`` with the same flags at one level.

    :ivar prot: the entry flags (the architecture's mask of the value), 0
        for a hole
    :ivar level: 0 = pgd ... 4 = pte
    :ivar marker: the name of the marker the range is under
    :ivar effective: the effective USER/RW/NX of the range, combined over
        all levels as x86's ``effective_prot()`` does (0 on arm64)
    :ivar present: the entries are present (x86 ``_PAGE_PRESENT``, arm64
        ``PTE_VALID``), as the architecture's ``note_page()`` judged them
    """

    start: int
    end: int
    prot: int
    level: int
    marker: str
    effective: int = 0
    present: bool = False

    @property
    def size(self) -> int:
        """Bytes in the range."""
        return (self.end - self.start) & ULONG_MAX
