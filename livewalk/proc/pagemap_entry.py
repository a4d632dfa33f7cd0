# SPDX-License-Identifier: LGPL-2.1-or-later
"""
pagemap entries
---------------

The 64-bit entry of ``/proc/PID/pagemap`` (the ``PM_*`` bits of Linux 7.2
``fs/proc/task_mmu.c``) and :class:`PagemapRun`, a run of pages whose
entries differ only by a steadily advancing frame.

One entry per ``PAGE_SIZE`` page (4 KiB on x86_64; 4, 16 or 64 KiB on
arm64). Entry layout (Linux 7.2): bits 0-54 the PFN, or for a swap-format entry the
swap type (bits 0-4) and offset (bits 5-54); bit 55 soft-dirty, 56 exclusively
mapped, 57 uffd-wp, 58 guard region, 61 file page or shared anonymous, 62
swapped (any non-present swap-format entry), 63 present.

>>> pagemap_flag_names(PM_PRESENT | PM_SOFT_DIRTY)
['PRESENT', 'SOFT_DIRTY']
>>> PagemapRun(0x1000, 0x3000, PM_PRESENT, 0x100, 1).entry(1) == PM_PRESENT | 0x101
True
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = (
    "PM_FILE",
    "PM_FLAG_NAMES",
    "PM_GUARD_REGION",
    "PM_MMAP_EXCLUSIVE",
    "PM_PFRAME_BITS",
    "PM_PFRAME_MASK",
    "PM_PRESENT",
    "PM_SOFT_DIRTY",
    "PM_SWAP",
    "PM_UFFD_WP",
    "PagemapRun",
    "pagemap_flag_names",
)

PM_PFRAME_BITS = 55
PM_PFRAME_MASK = (1 << PM_PFRAME_BITS) - 1
PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_UFFD_WP = 1 << 57
PM_GUARD_REGION = 1 << 58
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63

#: Flag names, highest bit first, as printed by :func:`pagemap_flag_names`.
PM_FLAG_NAMES = (
    (PM_PRESENT, "PRESENT"),
    (PM_SWAP, "SWAP"),
    (PM_FILE, "FILE"),
    (PM_GUARD_REGION, "GUARD_REGION"),
    (PM_UFFD_WP, "UFFD_WP"),
    (PM_MMAP_EXCLUSIVE, "MMAP_EXCLUSIVE"),
    (PM_SOFT_DIRTY, "SOFT_DIRTY"),
)


def pagemap_flag_names(flags: int) -> list[str]:
    """
    Names of the flag bits set in *flags*, highest bit first.

    :param flags: an entry or its flag bits
    """
    return [name for bit, name in PM_FLAG_NAMES if flags & bit]


class PagemapRun(NamedTuple):
    """
    A run of pages whose entries differ only by a steadily advancing frame:
    page ``i`` of the run (address ``start + (i << page_shift)``) has the
    entry ``flags | ((frame + i * step) & PM_PFRAME_MASK)``.

    :ivar start: first address
    :ivar end: first address after the run
    :ivar flags: the flag bits (55-63)
    :ivar frame: frame field (bits 0-54) of the first page
    :ivar step: frame increment per page (0; 1 for PFNs; 32 for swap offsets)
    :ivar page_shift: the target's ``PAGE_SHIFT``
    """

    start: int
    end: int
    flags: int
    frame: int
    step: int
    page_shift: int = 12

    @property
    def npages(self) -> int:
        """Pages in the run."""
        return (self.end - self.start) >> self.page_shift

    def entry(self, i: int) -> int:
        """The raw entry of page *i* of the run."""
        return self.flags | ((self.frame + i * self.step) & PM_PFRAME_MASK)
