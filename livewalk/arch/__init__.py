# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Architectures
-------------

What the walker needs from an architecture, declared in one place: the
page-table geometry, the per-level predicates of ``asm/pgtable.h``
(``pmd_none()``, ``pud_leaf()``, ``pte_pfn()``, ...), the swap-entry layout,
and the few constructors the read-only emulation of THP splits and table
allocation uses (:mod:`livewalk.mm.overlay`). :mod:`livewalk.mm.pagewalk`,
:mod:`livewalk.mm.entry` and :mod:`livewalk.mm.folio_walk` talk to an
architecture only through :class:`ArchPaging`; an architecture is added by
writing ``livewalk/arch/<name>/`` with a class that satisfies it
(:class:`livewalk.arch.x86.pgtable.X86Paging` for x86_64,
:class:`livewalk.arch.arm64.pgtable.Arm64Paging` for arm64).

The predicates take the raw entry value (an ``int``, what ``p?dp_get()``
returns) so that loops need no objects.

>>> from livewalk.arch.x86.pgtable import X86Paging
>>> paging: ArchPaging = X86Paging(levels=4)
>>> paging.pmd_leaf(0x80000001234000E7), paging.level_shift(PageTableLevel.PUD)
(True, 30)
>>> hex(ULONG_MAX)
'0xffffffffffffffff'
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol, TypeVar

if TYPE_CHECKING:
    from livewalk.mm.swapops import SwapEntry, SwapTypes

__all__ = (
    "ArchPaging",
    "EntryLayout",
    "PageTableLevel",
    "ULONG_MAX",
    "per_paging",
)

#: ``ULONG_MAX`` of a 64-bit kernel: the mask that makes Python integers
#: behave like ``unsigned long``. Its one home.
ULONG_MAX = 2**64 - 1


class PageTableLevel(enum.IntEnum):
    """Page-table levels, numbered like the kernel's ``enum pgtable_level``."""

    PTE = 0
    PMD = 1
    PUD = 2
    P4D = 3
    PGD = 4


class EntryLayout(NamedTuple):
    """
    Where an architecture keeps what ``/proc/PID/pagemap`` and ``smaps`` read
    in a PTE, as masks and shifts, for loops that decode a whole table at
    once (integer operations, no call per entry). Each field restates one
    predicate of :class:`ArchPaging` for every 64-bit value (tested so), so
    a loop that uses them decodes exactly what the predicates would:

    - ``pte_none(v) == not v & none_mask``
    - ``pte_present(v) == bool(v & present)``
    - a present entry with ``v & pfn_check_mask == pfn_check_value`` has
      ``pte_pfn(v) == (v & pfn_mask) >> page_shift``; others need
      :meth:`ArchPaging.pte_pfn` (an x86 PROT_NONE entry's inverted PFN, an
      arm64 output address above 50 bits)
    - present: ``pte_special(v) == bool(v & special)``, and likewise
      ``soft_dirty`` and ``uffd_wp`` (0 when the configuration lacks them)
    - neither none nor present: ``pte_swp_soft_dirty()``,
      ``pte_swp_uffd_wp()``, ``pte_swp_exclusive()`` are the bits
      ``swp_soft_dirty``, ``swp_uffd_wp``, ``swp_exclusive``; the swap type
      is ``(v >> swp_type_shift) & swp_type_mask`` and the offset
      ``((v ^ swp_offset_invert) >> swp_offset_shift) & swp_offset_mask``
      (x86 stores it inverted)
    """

    page_shift: int
    none_mask: int
    present: int
    pfn_mask: int
    pfn_check_mask: int
    pfn_check_value: int
    special: int
    soft_dirty: int
    uffd_wp: int
    swp_soft_dirty: int
    swp_uffd_wp: int
    swp_exclusive: int
    swp_type_shift: int
    swp_type_mask: int
    swp_offset_shift: int
    swp_offset_mask: int
    swp_offset_invert: int


class ArchPaging(Protocol):
    """
    The interface an architecture provides: one object per target, built
    from what the target's kernel says about itself (paging mode, physical
    mask, configuration). Every method mirrors the kernel helper of the same
    name for that architecture.

    Geometry (``asm/pgtable_types.h``, ``asm/page_types.h``):

    :ivar levels: number of page-table levels in use (runtime folding
        included: 4 on x86_64 without LA57, and for an arm64 kernel built
        for 52-bit VAs on a CPU without LPA2)
    :ivar page_offset: start of the direct map (``__va(pa) == pa +
        page_offset``)
    :ivar page_shift: ``PAGE_SHIFT``
    :ivar page_size: ``PAGE_SIZE``
    :ivar soft_dirty: ``CONFIG_MEM_SOFT_DIRTY`` (the architecture has the bit)
    :ivar uffd_wp: ``CONFIG_HAVE_ARCH_USERFAULTFD_WP``
    :ivar swap_types: the configuration's swap-type numbering
    """

    # -- geometry ---------------------------------------------------------

    @property
    def levels(self) -> int: ...

    @property
    def page_offset(self) -> int: ...

    @property
    def soft_dirty(self) -> bool: ...

    @property
    def uffd_wp(self) -> bool: ...

    @property
    def page_shift(self) -> int: ...

    @property
    def page_size(self) -> int: ...

    @property
    def pgdir_shift(self) -> int: ...

    @property
    def max_physmem_bits(self) -> int: ...

    @property
    def task_size_max(self) -> int: ...

    @property
    def swap_types(self) -> SwapTypes:
        """The numbering of swap-entry types (``include/linux/swap.h``)."""
        ...

    def level_shift(self, level: PageTableLevel) -> int:
        """``PAGE_SHIFT``, ``PMD_SHIFT``, ``PUD_SHIFT``, ``P4D_SHIFT``, ``PGDIR_SHIFT``."""
        ...

    def ptrs_per(self, level: PageTableLevel) -> int:
        """``PTRS_PER_PTE`` ... ``PTRS_PER_PGD``; 1 for a folded level."""
        ...

    def folded(self, level: PageTableLevel) -> bool:
        """
        The level is folded into the one above (``PTRS_PER_* == 1``): its
        ``*_offset()`` returns the parent's slot and its ``*_none()``,
        ``*_bad()`` are constant, as in ``asm-generic/pgtable-nop*d.h``.
        """
        ...

    def folded_at_boot(self, level: PageTableLevel) -> bool:
        """
        The level is folded at run time into the page of the level above
        (arm64 ``pgd_to_folded_p4d()``, ``p4d_to_folded_pud()``: a kernel
        built for 52-bit VAs on a CPU without LPA2): ``PTRS_PER_*`` and the
        shifts keep their build-time values, the level's ``*_offset()``
        indexes the page that holds the parent's entry, and the parent's
        ``*_none()``/``*_bad()`` are constant false. x86 folds its P4D at
        boot by changing ``PTRS_PER_P4D`` to 1 instead (:meth:`folded`).
        """
        ...

    def va(self, paddr: int) -> int:
        """``__va()``."""
        ...

    def pa(self, vaddr: int) -> int:
        """
        ``__pa()`` of a page-table address: the direct (linear) map, or the
        kernel image where the boot tables live (``swapper_pg_dir``,
        ``init_top_pgt``).
        """
        ...

    def is_direct_map(self, vaddr: int) -> bool:
        """
        *vaddr* is in the direct (linear) map, where :meth:`pa` is a
        subtraction (arm64 ``__is_lm_address()``).
        """
        ...

    def table_paddr(self, v: int) -> int:
        """
        Physical address of the next-level table a table entry points to
        (``p?d_page_vaddr()`` without the ``__va()``).
        """
        ...

    def same_but_hw_bits(self, old: int, new: int) -> bool:
        """
        Whether two readings of one entry are equal, or differ only in the
        bits the MMU sets by itself (accessed, dirty) on an entry present in
        both: a change that no lock of the kernel's keeps out.
        """
        ...

    def ptes_get(self, vals: Sequence[int], start: int, count: int) -> Sequence[int]:
        """
        ``ptep_get()`` of *count* consecutive PTEs from slot *start* of the
        PTE table *vals*: the values a callback sees. The raw values where
        ``ptep_get()`` is a plain read (x86); arm64 with CONTPTE folds the
        access and dirty bits of each contiguous block into its entries.
        """
        ...

    # -- hugetlb ------------------------------------------------------------

    @property
    def general_hugetlb(self) -> bool:
        """
        ``CONFIG_ARCH_WANT_GENERAL_HUGETLB``: ``huge_pte_offset()`` is the
        generic one of ``mm/hugetlb.c`` (x86); otherwise the architecture's
        (arm64 ``arch/arm64/mm/hugetlbpage.c``, with contiguous sizes).
        """
        ...

    def hugetlb_level(self, shift: int) -> tuple[PageTableLevel, int]:
        """
        The level of the entries that map a hugetlb page of ``1 << shift``
        bytes and how many of them (``num_contig_ptes()`` on arm64: 1, or
        ``CONT_PTES``/``CONT_PMDS`` for a contiguous size).

        :raises ValueError: not a hugetlb size of this configuration
        """
        ...

    def huge_ptep_get(self, vals: Sequence[int], i: int, level: PageTableLevel) -> int:
        """
        ``huge_ptep_get()`` of slot *i* of a *level* table: the value a
        ``hugetlb_entry`` callback reads. A plain read on x86; arm64 folds the
        access and dirty bits of a contiguous block into its first entry.
        """
        ...

    # -- predicates, per level ---------------------------------------------

    def pgd_none(self, v: int) -> bool: ...
    def pgd_present(self, v: int) -> bool: ...
    def pgd_bad(self, v: int) -> bool: ...
    def p4d_none(self, v: int) -> bool: ...
    def p4d_present(self, v: int) -> bool: ...
    def p4d_bad(self, v: int) -> bool: ...
    def pud_none(self, v: int) -> bool: ...
    def pud_present(self, v: int) -> bool: ...
    def pud_leaf(self, v: int) -> bool: ...
    def pud_trans_huge(self, v: int) -> bool: ...
    def pud_bad(self, v: int) -> bool: ...
    def pud_pfn(self, v: int) -> int: ...
    def pmd_none(self, v: int) -> bool: ...
    def pmd_present(self, v: int) -> bool: ...
    def pmd_leaf(self, v: int) -> bool: ...
    def pmd_trans_huge(self, v: int) -> bool: ...
    def pmd_bad(self, v: int) -> bool: ...
    def pmd_pfn(self, v: int) -> int: ...
    def pmd_protnone(self, v: int) -> bool: ...
    def pmd_special(self, v: int) -> bool: ...
    def pmd_write(self, v: int) -> bool: ...
    def pmd_young(self, v: int) -> bool: ...
    def pmd_dirty(self, v: int) -> bool: ...
    def pmd_soft_dirty(self, v: int) -> bool: ...
    def pmd_uffd_wp(self, v: int) -> bool: ...
    def pte_none(self, v: int) -> bool: ...
    def pte_present(self, v: int) -> bool: ...
    def pte_protnone(self, v: int) -> bool: ...
    def pte_pfn(self, v: int) -> int: ...
    def pte_write(self, v: int) -> bool: ...
    def pte_young(self, v: int) -> bool: ...
    def pte_dirty(self, v: int) -> bool: ...
    def pte_special(self, v: int) -> bool: ...
    def pte_soft_dirty(self, v: int) -> bool: ...
    def pte_uffd_wp(self, v: int) -> bool: ...
    def pte_user(self, v: int) -> bool: ...
    def pte_exec(self, v: int) -> bool: ...
    def pte_global(self, v: int) -> bool: ...

    @property
    def entry_layout(self) -> EntryLayout:
        """The predicates below as masks and shifts, for table-at-a-time loops."""
        ...

    # -- swap entries (``asm/pgtable_64.h`` on x86) --------------------------

    def decode_swap(self, v: int) -> SwapEntry | None:
        """``pte_to_swp_entry()`` and ``softleaf_type()`` of a non-present, non-none entry."""
        ...

    def pte_swp_soft_dirty(self, v: int) -> bool: ...
    def pte_swp_uffd_wp(self, v: int) -> bool: ...
    def pte_swp_exclusive(self, v: int) -> bool: ...
    def pmd_swp_soft_dirty(self, v: int) -> bool: ...
    def pmd_swp_uffd_wp(self, v: int) -> bool: ...

    def swp_entry_to_pte(
        self,
        type: int,
        offset: int,
        *,
        soft_dirty: bool = False,
        uffd_wp: bool = False,
        exclusive: bool = False,
    ) -> int:
        """``swp_entry_to_pte()`` with the ``pte_swp_mk*()`` flags."""
        ...

    # -- constructors for the emulation of table changes ---------------------

    def pfn_pte(self, pfn: int, prot: int) -> int: ...
    def vm_get_page_prot(self, vm_flags: int) -> int: ...
    def pte_mkwrite(self, v: int) -> int: ...
    def pte_mkold(self, v: int) -> int: ...
    def pte_mkdirty(self, v: int) -> int: ...
    def pte_mkspecial(self, v: int) -> int: ...
    def pte_mksoft_dirty(self, v: int) -> int: ...
    def pte_mkuffd_wp(self, v: int) -> int: ...

    def set_ptes(self, addr: int, pfn: int, prot: int, nr: int) -> list[int]:
        """
        The *nr* PTEs ``set_ptes()`` stores for a user mapping of *nr*
        pages from *pfn* at *addr* with protection bits *prot* (arm64 with
        CONTPTE marks aligned blocks contiguous).
        """
        ...

    def mk_table_entry(self, level: PageTableLevel) -> int:
        """The value ``__p?d_alloc()`` stores in a *level* slot for a new, empty table (PFN 0)."""
        ...


_T = TypeVar("_T")


def per_paging(build: Callable[[ArchPaging], _T]) -> Callable[[ArchPaging], _T]:
    """
    Decorate *build* (what a consumer works out from a paging once: shifts,
    masks, layouts) so that its result is kept per paging object. Pagings
    are immutable; they are told apart by identity, which costs less than
    hashing their fields on a hot path, and each is kept with its result
    so that its ``id()`` cannot be reused while the result is kept (at most
    64 of them).

    >>> @per_paging
    ... def pte_shift(paging):
    ...     return paging.level_shift(PageTableLevel.PTE)
    >>> pte_shift(paging)  # doctest: +SKIP
    12
    """
    kept: dict[int, tuple[ArchPaging, _T]] = {}

    def cached(paging: ArchPaging) -> _T:
        hit = kept.get(id(paging))
        if hit is not None and hit[0] is paging:
            return hit[1]
        value = build(paging)
        if len(kept) >= 64:
            kept.clear()
        kept[id(paging)] = (paging, value)
        return value

    cached.__doc__ = build.__doc__
    cached.__name__ = build.__name__
    return cached
