# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Walk consistency
----------------

A live kernel does not stand still while Python reads it. livewalk takes no
locks (it cannot: it only reads), so a walk of a running kernel may *race*
with the kernel changing the page tables or the VMA tree. This module finds
such races after the fact, names the address ranges they touched, and reads
those ranges again (a bounded number of times).

>>> from livewalk import MMWalkOps, walk_page_range
>>> from livewalk.backend.synthetic import SyntheticMM
>>> mm = SyntheticMM(levels=4)
>>> vma = mm.add_vma(0x400000, 0x402000)
>>> mm.map_4k(0x400000, pfn=0x1234)
>>> r = read_consistent(mm, 0x400000, 0x402000,
...                     lambda s, e, walks: walk_page_range(mm, s, e, MMWalkOps(), walks=walks))
>>> r.value, r.consistency.level, r.consistency.torn
(0, 'walk', [])

What "consistent" means
=======================

The kernel itself gives its readers no snapshot of an address space:
``/proc/PID/pagemap`` reads one PTE table at a time under its page-table
lock (PTL), ``smaps`` one VMA at a time under the mmap lock. livewalk judges
a read at the same grains, and keeps the whole-walk verdict as the
strongest one. :attr:`RangeConsistency.level` is:

``"walk"``
    One read of the whole range, during which the mm's stamp
    (:meth:`~livewalk.backend.PageTableBackend.mm_stamp`: ``mm_lock_seq``,
    odd while a writer holds the mmap lock, ``map_count`` and the maple tree
    root) stayed even and unchanged, and every page-table page the read used
    held the same entries (A/D bits aside) when read again at its end. No
    single VMA or entry moved: the result is what a reader holding the mmap
    lock and every PTL at once would have seen, as of the end of the read.
``"table"``
    The kernel's readers' promise, range by range: every VMA in the result
    was the same (start, end, flags, offset) before and after the read that
    used it, and every page table the result came from held the same
    entries at the end of that read as when it was used, as a
    ``pmd_entry``/PTE loop under the PTL would see it. Parts may come from
    different reads (retries of what tore), so two tables may be from two
    moments, exactly as with ``/proc/PID/pagemap`` itself.
``"torn"``
    Some ranges are still torn after the retries: :attr:`RangeConsistency.torn`
    names each one (:class:`TornRange`) with its reason, ``"VMA tree
    changed"`` (a VMA overlapping it was mapped, unmapped or changed),
    ``"table changed"`` (an entry the read used read differently at its
    end: a fault, zap, split, collapse, swap-out or a freed table) or
    ``"read error"`` (the target refused a read: a structure freed under the
    reader). Everything outside those ranges holds at the ``"table"`` level.

The grain of a page-table change is the kernel's: a changed PTE tears the
2 MiB its PTE table maps (one PTL); a changed PMD, PUD or P4D entry tears
the range that entry maps. Entries the read did not look at (outside the
range) do not count. A table freed and reused shows as a change of its
parent's entry, which is re-read too.

What no check can see (the ABA limit)
=====================================

Every check compares two reads: the entry the walk used and the entry at
the end of the read, the VMA list before and after. A change made *and
undone* between them (a page zapped and faulted back to the same frame with
the same flags, ``mprotect`` there and back, a VMA unmapped and mapped
again identically) is invisible: the reader may have seen the intermediate
state. The hardware Accessed and Dirty bits of present entries are not
compared (the MMU sets them without any lock); they are as of each read.
A vmcore does not change, so its reads are always ``"walk"``.

What a dump lacks
=================

A page table the read needed and could not read at all (excluded from a
filtered dump, or outside RAM) is no race: the walker sees a hole there
and reading again gives the same. Such ranges are listed apart, in
:attr:`RangeConsistency.missing` (reason :data:`NOT_IN_DUMP`), marked
``# not in dump START-END: DETAIL`` by the commands, and do not make the
read torn. So are the pages whose ``struct page`` (``mem_map``) is not in
the dump (detail ``struct page of PFN ... not readable: page state
unknown``): their entries are read, but what the page's state decides
(pagemap's ``FILE`` and ``MMAP_EXCLUSIVE`` bits, smaps' Pss and
Shared/Private split...) is unknown there and said so.

Retries
=======

:func:`read_consistent` reads again only what tore: the torn ranges
(grown to whole VMAs with ``unit="vma"``) are read again, each as its own
checked read, and the new result is spliced into the old one; this is
repeated at most ``retries`` times, then the torn ranges left are reported.
Exceptions of the caller's own code are not races and propagate unchanged.

The older whole-walk API, :func:`checked_walk` and :func:`walk_with_retry`,
is kept: ``torn`` there is the negation of the ``"walk"`` level.
"""


from livewalk.consistency.ranges import (
    DEFAULT_RETRIES,
    DEFAULT_WALK_RETRIES,
    NOT_IN_DUMP,
    READ_ERROR,
    TABLE_CHANGED,
    VMA_TREE_CHANGED,
    ConsistencyTally,
    ConsistentRead,
    RangeConsistency,
    TornError,
    TornRange,
    read_consistent,
    transient_errors,
)
from livewalk.consistency.task_mmu import (
    pagemap_read_consistent,
    smaps_consistent,
)
from livewalk.consistency.walk import (
    CheckedWalk,
    TableChange,
    WalkConsistency,
    checked_walk,
    verify_tables,
    walk_with_retry,
)

__all__ = (
    "CheckedWalk",
    "ConsistencyTally",
    "ConsistentRead",
    "DEFAULT_RETRIES",
    "DEFAULT_WALK_RETRIES",
    "NOT_IN_DUMP",
    "READ_ERROR",
    "RangeConsistency",
    "TABLE_CHANGED",
    "TableChange",
    "TornError",
    "TornRange",
    "VMA_TREE_CHANGED",
    "WalkConsistency",
    "checked_walk",
    "pagemap_read_consistent",
    "read_consistent",
    "smaps_consistent",
    "transient_errors",
    "verify_tables",
    "walk_with_retry",
)

