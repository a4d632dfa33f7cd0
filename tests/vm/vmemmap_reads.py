# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The drgn backend's reads of ``struct page`` s by physical address, through
the kernel's PMD leaf that maps that stretch of the vmemmap (issue [E]),
against drgn's own virtual reads of the same bytes, on a guest over QMP.
drgn translates each virtual read with its own walk of the kernel page
tables, so the two agree only if livewalk found the leaf the kernel's
tables really hold (levels folded at build time or at boot included).

>>> r = compare_vmemmap_reads(guest.host_program())  # doctest: +SKIP
>>> r.differ, r.physical > 0                         # doctest: +SKIP
([], True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ("VmemmapReads", "compare_vmemmap_reads")


@dataclass
class VmemmapReads:
    """What :func:`compare_vmemmap_reads` saw."""

    #: struct pages compared (both reads gave bytes)
    compared: int = 0
    #: of those, read by physical address (a PMD leaf maps them)
    physical: int = 0
    #: struct pages neither could read (no memmap there)
    absent: int = 0
    #: (pfn, what differed), at most a few
    differ: list[tuple[int, str]] = field(default_factory=list)


def compare_vmemmap_reads(prog: Any, samples: int = 1024) -> VmemmapReads:
    """
    Read the ``struct page`` of *samples* PFNs spread evenly over
    ``[min_low_pfn, max_pfn)`` with ``DrgnBackend.read_vmemmap`` and with
    ``prog.read``. A live target's struct pages change (refcounts, LRU
    links): the backend reads before and after drgn, and drgn's bytes must
    equal one of its two.
    """
    from drgn import FaultError
    from drgn.helpers.linux.mm import pfn_to_page

    from livewalk.backend.drgn import DrgnBackend

    backend = DrgnBackend.for_program(prog)
    size = prog.type("struct page").size
    lo, hi = int(prog["min_low_pfn"]), int(prog["max_pfn"])
    out = VmemmapReads()

    def read(how: Any, addr: int) -> bytes | None:
        try:
            return bytes(how(addr, size))
        except FaultError:
            return None

    for pfn in range(lo, hi, max(1, (hi - lo) // samples)):
        addr = pfn_to_page(prog, pfn).value_()
        before = read(backend.read_vmemmap, addr)
        theirs = read(prog.read, addr)
        after = read(backend.read_vmemmap, addr)
        if before is None and theirs is None and after is None:
            out.absent += 1
            continue
        if theirs is None or theirs not in (before, after):
            if len(out.differ) < 5:
                out.differ.append((pfn, f"drgn {theirs!r}, livewalk {before!r} then {after!r}"))
            continue
        out.compared += 1
        out.physical += backend._vmemmap_pa(addr, size) is not None
    return out
