# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Read-only emulation of the walker's page-table changes
------------------------------------------------------

Where Linux 7.2's ``mm/pagewalk.c`` changes the page tables during a walk
(THP splits, table allocation for ``install_pte``, clearing bad entries) or
relies on a concurrent change to end an ``ACTION_AGAIN`` loop, a walk over a
read-only target cannot do the same. :mod:`livewalk.mm.pagewalk` mirrors the
kernel's loops and calls into this module at exactly those points; the
changes are recorded in a per-walk :class:`WalkOverlay` and never written to
the target.

>>> from livewalk.arch import PageTableLevel
>>> o = WalkOverlay()
>>> o.get((PageTableLevel.PMD, 0x200000), 0x1234067)
19087463
>>> o.values[(PageTableLevel.PMD, 0x200000)] = 0
>>> o.get((PageTableLevel.PMD, 0x200000), 0x1234067)
0

Policies where a read-only snapshot cannot do what the kernel does
=================================================================

* **THP splits** (``split_huge_pmd``/``split_huge_pud``, called when a
  walk with a VMA descends below a huge entry, errata §1.7). The overlay
  records the result the kernel's split would have produced and the walk
  goes on as the kernel does:

  - anonymous VMA, present THP PMD: a PTE table of ``PTRS_PER_PTE`` (512
    with 4K pages, 2048 with 16K, 8192 with 64K) present PTEs with
    consecutive PFNs. Flags: ``vm_get_page_prot(vm_flags)`` plus
    write/young/dirty/soft-dirty/uffd-wp taken from the PMD, as
    ``__split_huge_pmd_locked`` does (pkeys and memory encryption bits are
    not reproduced);
  - anonymous VMA, huge zero PMD (``is_huge_zero_pmd``; with a backend that
    does not give ``huge_zero_pfn``, a special leaf PMD): special PTEs
    mapping the zero page (``backend.zero_pfn`` if known, else PFN 0),
    keeping uffd-wp;
  - anonymous VMA, PMD migration entry: migration PTEs (same kind, PFN +
    i, young/dirty/soft-dirty/uffd-wp kept); device-private PMD:
    device-private PTEs;
  - any other VMA (file, shmem, DAX, PFN maps; :attr:`VMA.anonymous` false):
    the PMD is zapped, so ``walk_pte_range`` fails, ``ACTION_AGAIN`` retries
    the PMD, which is now none: ``pmd_entry`` once, then ``pte_hole(depth
    3)``;
  - other non-present PMDs are not converted (the kernel would then loop on
    ``ACTION_AGAIN``; see the retry cap);
  - a trans-huge PUD is cleared: ``pud_entry`` once, then ``pte_hole(depth
    2)``.

  Entries of an emulated table have ``kaddr=None``. The overlay lives for
  one walk (the kernel's split persists; a second walk sees the original
  snapshot again). ``walk.splits`` lists ``(level, addr, what)`` for every
  emulated split.

* **ACTION_AGAIN** retries: a retry after which the entry changed (in the
  overlay: split, zap, bad entry cleared) is free, as it is what the kernel
  does; a retry of an unchanged entry is allowed :data:`AGAIN_RETRY_LIMIT`
  times (1) per entry, after which the walker behaves as if the callback had
  set ``ACTION_CONTINUE`` (no descent, no hole), appends an item to
  ``walk.errors`` and counts it in ``walk.again_capped``. A walk over a
  static snapshot therefore always ends.

* **Bad entries** (``pgd_bad``/``p4d_bad`` in ``p?d_none_or_clear_bad``,
  ``pmd_bad`` in ``pte_offset_map``): the kernel clears the entry and logs;
  the overlay clears it (a hole at that depth, through the kernel's own
  path) and ``(level, addr, value, reason)`` is appended to ``walk.errors``.
  ``pud_bad`` is never checked by the kernel's walker, so not here either.

* **Linux 6.1** (no ``ACTION_AGAIN`` from ``walk_pte_range()``): the
  same outcomes by 6.1's own paths. After the split, ``pmd_trans_unstable()``
  (:func:`pmd_trans_unstable`: none, trans-huge, non-present, or bad and
  cleared) goes back to ``again:`` under the same retry cap; a PUD cleared by
  the split goes back to ``again:`` on ``pud_none()``. An unreadable PTE or
  PMD table reads as ``pte_hole(addr, next, 3 or 2)`` right after the
  parent's ``p?d_entry``, the result the retry path gives on later kernels.

* **Unreadable tables** (:class:`~livewalk.backend.TableReadError`, or not
  a page of entries): the entry pointing to it is treated as a bad entry that was
  cleared. For a PTE or PMD table this takes the kernel's ``ACTION_AGAIN``
  path: the parent's ``pmd_entry``/``pud_entry`` has been called once, then
  ``pte_hole(addr, next, 3 or 2)``. For a PUD or P4D table (children of P4D
  and PGD entries, whose loops have no retry) the walker calls
  ``pte_hole(addr, next, depth of the parent)`` after the parent's
  ``p?d_entry``. An unreadable top-level table reads as a page of none entries.
  All are recorded in ``walk.errors``; nothing raises.

* **install_pte** (only through ``walk_page_range_mm_unsafe`` and
  ``walk_page_range_vma_unsafe``; the public entry points return
  ``-EINVAL`` as in the kernel): a missing table is emulated as an empty
  table (``__p?d_alloc``; the new entry reads as the architecture's table
  entry with PFN 0 and ``kaddr=None`` below it), so all levels are walked;
  ``install_pte(addr, next, ptep, walk)`` is called for each none PTE with a
  ``PTEOut`` whose ``value`` the callback sets, and the result is recorded
  in ``walk.installed`` (``{addr: value}``) instead of being written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from livewalk.arch import ArchPaging, PageTableLevel
from livewalk.mm.vma import VMA

__all__ = (
    "AGAIN_RETRY_LIMIT",
    "PAGE_UNREADABLE",
    "Slot",
    "WalkError",
    "WalkOverlay",
    "again_retry",
    "clear_bad",
    "p_alloc",
    "pmd_trans_unstable",
    "pte_offset_map",
    "record_unreadable",
    "set_pte_at",
    "split_huge_pmd",
    "split_huge_pud",
)

class _Walk(Protocol):
    """What the helpers here use of a walk (a :class:`~livewalk.mm.pagewalk.MMWalk`)."""

    @property
    def overlay(self) -> WalkOverlay: ...

    @property
    def paging(self) -> ArchPaging: ...

    @property
    def backend(self) -> Any: ...

    @property
    def vma_info(self) -> VMA | None: ...


#: Retries of an unchanged entry after ``ACTION_AGAIN`` before the walker
#: moves on (see the module documentation).
AGAIN_RETRY_LIMIT = 1
# Hard bound on retries of one entry, changed or not (never reached by the
# emulation, which changes an entry at most twice).
_AGAIN_HARD_LIMIT = 8

_PTE = PageTableLevel.PTE
_PMD = PageTableLevel.PMD
_PUD = PageTableLevel.PUD

#: :attr:`WalkError.reason` recorded by a walk's callbacks (pagemap, smaps):
#: the ``struct page`` of a page mapped there could not be read (a dump
#: without that part of ``mem_map``), so what the page's state decides is
#: unknown. ``level`` and ``addr`` are the mapping entry's, ``value`` the PFN.
PAGE_UNREADABLE = "page unreadable"

#: A page-table slot: its level and the first address it covers.
Slot = tuple[PageTableLevel, int]

class WalkError(NamedTuple):
    """
    Something the walker met that the kernel would have changed or that it
    could not read (see the module documentation).

    :ivar level: :class:`~livewalk.arch.PageTableLevel` of the entry (for an
        unreadable table, of the entry pointing to it)
    :ivar addr: first address the entry covers
    :ivar value: the entry's raw value, or the table's physical address
    :ivar reason: ``"bad"``, ``"unreadable"``, ``"again-limit"`` or
        ``"loop"`` (a table reached from two levels: corrupted tables);
        :data:`PAGE_UNREADABLE` from callbacks (*value* is then the PFN)
    """

    level: int
    addr: int
    value: int
    reason: str


class WalkOverlay:
    """
    What one walk changed in its view of the tables.

    :ivar values: slot -> emulated value
    :ivar children: slot -> emulated next-level table
    :ivar errors: list of :class:`WalkError`
    :ivar installed: ``{addr: pte value}`` produced by ``install_pte``
    :ivar splits: ``(level, addr, what)`` for every emulated split
    :ivar again_capped: how many times the ``ACTION_AGAIN`` cap fired
    :ivar table_level: physical address of each table read -> level of the
        entry that pointed to it (5 for the top-level table)
    """

    __slots__ = (
        "values",
        "children",
        "errors",
        "installed",
        "splits",
        "again_capped",
        "table_level",
    )

    def __init__(self) -> None:
        self.values: dict[Slot, int] = {}
        self.children: dict[Slot, Sequence[int]] = {}
        self.errors: list[WalkError] = []
        self.installed: dict[int, int] = {}
        self.splits: list[tuple[int, int, str]] = []
        self.again_capped = 0
        self.table_level: dict[int, int] = {}

    def get(self, slot: Slot, raw: int) -> int:
        """The slot's value as this walk sees it: emulated if changed, else *raw*."""
        values = self.values
        return values.get(slot, raw) if values else raw

    def error(self, level: int, addr: int, value: int, reason: str) -> None:
        """Record a :class:`WalkError` (an unreadable table already reported as a loop is not repeated)."""
        errors = self.errors
        if (
            reason == "unreadable"
            and errors
            and errors[-1].reason == "loop"
            and errors[-1].value == value
        ):
            return
        errors.append(WalkError(PageTableLevel(level), addr, value, reason))


def clear_bad(walk: _Walk, slot: Slot, v: int) -> None:
    """``p?d_clear_bad()``: log the bad entry and clear it, in the overlay."""
    walk.overlay.error(slot[0], slot[1], v, "bad")
    walk.overlay.values[slot] = 0


def record_unreadable(walk: _Walk, slot: Slot, paddr: int) -> None:
    """A table could not be read: the slot pointing to it reads as cleared from now on."""
    walk.overlay.error(slot[0], slot[1], paddr, "unreadable")
    walk.overlay.values[slot] = 0


def p_alloc(walk: _Walk, slot: Slot) -> int:
    """``__p4d_alloc()`` ... ``__pte_alloc()``: a new, empty table below *slot*."""
    paging = walk.paging
    v = paging.mk_table_entry(slot[0])
    walk.overlay.values[slot] = v
    walk.overlay.children[slot] = (0,) * paging.ptrs_per(_PTE)
    return v


def set_pte_at(walk: _Walk, addr: int, value: int) -> None:
    """``set_pte_at()`` of ``install_pte``'s result: recorded, never written."""
    walk.overlay.installed[addr] = value


def again_retry(
    walk: _Walk, level: PageTableLevel, addr: int, changed: bool, tries: list[int]
) -> bool:
    """
    Whether an ``ACTION_AGAIN`` may go back to ``again:``. *tries* counts
    this entry's retries (unchanged, all). When the cap fires the caller
    goes on as if ``ACTION_CONTINUE`` had been asked for, so no stale
    ``ACTION_AGAIN`` reaches the level above.
    """
    tries[1] += 1
    if not changed:
        tries[0] += 1
    if tries[0] > AGAIN_RETRY_LIMIT or tries[1] > _AGAIN_HARD_LIMIT:
        walk.overlay.again_capped += 1
        walk.overlay.error(level, addr, 0, "again-limit")
        return False
    return True


def pte_offset_map(walk: _Walk, slot: Slot, pmdval: int) -> bool:
    """
    ``__pte_offset_map()``'s checks: False (the kernel's NULL) for a none,
    non-present or leaf PMD; a bad PMD is also cleared (``pmd_clear_bad()``).
    """
    paging = walk.paging
    if paging.pmd_none(pmdval) or not paging.pmd_present(pmdval) or paging.pmd_trans_huge(pmdval):
        return False
    if paging.pmd_bad(pmdval):
        clear_bad(walk, slot, pmdval)
        return False
    return True


def pmd_trans_unstable(walk: _Walk, slot: Slot, pmdval: int) -> bool:
    """
    ``pmd_trans_unstable()`` of Linux 6.1 (``pmd_none_or_trans_huge_or_clear_bad``
    with THP migration): True for a none, trans-huge or non-present PMD; a
    bad PMD is also cleared (``pmd_clear_bad()``). Only walkers of kernels
    whose ``pte_offset_map()`` cannot fail use it.
    """
    paging = walk.paging
    if paging.pmd_none(pmdval) or paging.pmd_trans_huge(pmdval) or not paging.pmd_present(pmdval):
        return True
    if paging.pmd_bad(pmdval):
        clear_bad(walk, slot, pmdval)
        return True
    return False


def split_huge_pud(walk: _Walk, slot: Slot, v: int) -> int:
    """``split_huge_pud()``: a trans-huge PUD is cleared; return the new value."""
    if not walk.paging.pud_trans_huge(v):
        return v
    walk.overlay.values[slot] = 0
    walk.overlay.splits.append((_PUD, slot[1], "cleared"))
    return 0


def _is_huge_zero_pmd(walk: _Walk, v: int) -> bool:
    paging = walk.paging
    if not paging.pmd_present(v):
        return False
    hz = walk.backend.huge_zero_pfn
    if hz is not None:
        return (paging.pmd_pfn(v) & ~(paging.ptrs_per(_PTE) - 1)) == hz
    return paging.pmd_special(v)


def split_huge_pmd(walk: _Walk, slot: Slot, v: int) -> int:
    """
    ``split_huge_pmd()``: act when ``pmd_is_huge()`` and (the locked step)
    the PMD is trans-huge or a migration or device-private entry; record
    the PTE table the kernel would have made (or the zap) and return the
    PMD's new value.
    """
    paging = walk.paging
    if paging.pmd_present(v):
        if not paging.pmd_trans_huge(v):
            return v
        swap = None
    else:
        if paging.pmd_none(v):
            return v
        swap = paging.decode_swap(v)
        if swap is None or not (swap.kind.is_migration or swap.kind.is_device_private):
            return v  # left alone: walk_pte_range fails, ACTION_AGAIN (capped)
    vma = walk.vma_info
    assert vma is not None
    haddr = slot[1]
    overlay = walk.overlay
    nr = paging.ptrs_per(_PTE)  # HPAGE_PMD_NR
    if not vma.anonymous:
        overlay.values[slot] = 0
        overlay.splits.append((_PMD, haddr, "zapped"))
        return 0
    ptes: list[int]
    if swap is None and _is_huge_zero_pmd(walk, v):
        zero = walk.backend.zero_pfn or 0
        prot = paging.pte_mkspecial(paging.vm_get_page_prot(vma.vm_flags))
        if paging.pmd_uffd_wp(v):
            prot = paging.pte_mkuffd_wp(prot)
        ptes = [paging.pfn_pte(zero, prot)] * nr
        what = "huge-zero"
    elif swap is not None:
        pfn = swap.pfn or 0
        # migration entries keep their young/dirty bits above the PFN
        ad = 0
        if swap.kind.is_migration:
            pfn_bits = paging.max_physmem_bits - paging.page_shift
            ad = swap.offset & (3 << pfn_bits)
        mk = paging.swp_entry_to_pte
        t = swap.type
        sd, wp = swap.soft_dirty, swap.uffd_wp
        ptes = [mk(t, (pfn + n) | ad, soft_dirty=sd, uffd_wp=wp) for n in range(nr)]
        what = "migration" if swap.kind.is_migration else "device-private"
    else:
        # the pte_mk*() helpers work on the protection bits; pfn_pte() adds
        # each PFN (and the L1TF inversion of a PROT_NONE result)
        prot = paging.vm_get_page_prot(vma.vm_flags)
        if paging.pmd_write(v):
            prot = paging.pte_mkwrite(prot)
        if not paging.pmd_young(v):
            prot = paging.pte_mkold(prot)
        if paging.pmd_dirty(v):
            prot = paging.pte_mkdirty(prot)
        if paging.pmd_soft_dirty(v):
            prot = paging.pte_mksoft_dirty(prot)
        if paging.pmd_uffd_wp(v):
            prot = paging.pte_mkuffd_wp(prot)
        ptes = paging.set_ptes(haddr, paging.pmd_pfn(v), prot, nr)
        what = "anon"
    new = paging.mk_table_entry(_PMD)
    overlay.values[slot] = new
    overlay.children[slot] = ptes
    overlay.splits.append((_PMD, haddr, what))
    return new
