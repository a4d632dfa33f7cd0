# SPDX-License-Identifier: LGPL-2.1-or-later
"""
livewalk's pagemap entries against the kernel's, as the VM tests of dumps
compare them (the ELF vmcores and the makedumpfile kdumps, x86-64 and
arm64 alike).

>>> d = compare_pagemap([(0x1000, 0x3000)], 4096, [1 << 63, 0], [1 << 63, 0])
>>> (d.pages, d.present, d.moved, d.bad)
(2, 1, 0, [])
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ("PagemapDiff", "compare_pagemap", "u64s")

#: ``PM_PRESENT`` (fs/proc/task_mmu.c)
PM_PRESENT = 1 << 63


def u64s(raw: bytes) -> list[int]:
    """*raw* as native 64-bit entries (what a read of a pagemap file gives)."""
    assert len(raw) % 8 == 0, f"{len(raw)} bytes is not a whole number of entries"
    return list(memoryview(raw).cast("Q"))


@dataclass
class PagemapDiff:
    """
    :ivar pages: entries compared
    :ivar present: of them, present in the kernel's first read
    :ivar moved: entries that differ between the kernel's reads
    :ivar bad: where livewalk's entry equals none of the kernel's reads, one
        line a page (address, the kernel's entries, livewalk's)
    """

    pages: int
    present: int
    moved: int
    bad: list[str] = field(default_factory=list)


def compare_pagemap(vmas: list[tuple[int, int]], page: int, ours: list[int], *kernel: list[int]) -> PagemapDiff:
    """
    Compare livewalk's entries *ours* over *vmas* (in that order, *page*
    bytes an entry) with one or more reads of the kernel's pagemap of the
    same VMAs: a page is a mismatch only if livewalk's entry equals none of
    them (the kernel's reads before and after a dump bracket it).

    :raises AssertionError: if the entry counts differ
    """
    assert kernel, "no kernel read to compare with"
    for k in kernel:
        assert len(ours) == len(k), f"{len(ours)} entries, kernel {len(k)}"
    first = kernel[0]
    moved = sum(1 for i, a in enumerate(first) if any(k[i] != a for k in kernel[1:]))
    bad = [i for i, o in enumerate(ours) if all(k[i] != o for k in kernel)]
    starts, n = [], 0
    for s, e in vmas:
        starts.append((n, s))
        n += (e - s) // page

    def where(i: int) -> str:
        at, s = max(x for x in starts if x[0] <= i)
        seen = "/".join(f"{k[i]:#018x}" for k in kernel)
        return f"{s + (i - at) * page:#x}: kernel {seen} ours {ours[i]:#018x}"

    present = sum(1 for x in first if x & PM_PRESENT)
    return PagemapDiff(len(first), present, moved, [where(i) for i in bad])
