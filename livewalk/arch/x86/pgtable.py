# SPDX-License-Identifier: LGPL-2.1-or-later
"""
x86_64 paging
-------------

The x86_64 side of the arch seam (:class:`livewalk.arch.ArchPaging`):
:class:`X86Paging`, the geometry of 4- or 5-level page tables and the
predicates of Linux 7.2 ``arch/x86/include/asm/pgtable.h`` (``pmd_none()``,
``pud_leaf()``, ``pmd_pfn()``, ...). The predicates are also module functions
taking the raw 64-bit value (and, where the answer depends on the target's
configuration, its :class:`X86Paging`). The bits live in
:mod:`livewalk.arch.x86.pgtable_types`, the swap layout in
:mod:`livewalk.arch.x86.pgtable_64`, ``protection_map`` in
:mod:`livewalk.arch.x86.pgprot`.

>>> p = X86Paging(levels=4)
>>> p.pgdir_shift, p.folded(PageTableLevel.P4D)
(39, True)
>>> hex(p.pmd_pfn(0xFFFFEF2A001A0))  # PROT_NONE 2 MiB leaf at 0x10d400000
'0x10d400'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from livewalk.arch import ULONG_MAX, ArchPaging, EntryLayout, PageTableLevel
from livewalk.arch.x86.pgprot import vm_get_page_prot
from livewalk.arch.x86.pgtable_64 import (
    SWP_OFFSET_SHIFT,
    SWP_TYPE_BITS,
    __swp_offset,
    __swp_type,
    swp_entry_to_pte,
)
from livewalk.arch.x86.pgtable_types import (
    _KERNPG_TABLE,
    _PAGE_ACCESSED,
    _PAGE_DIRTY,
    _PAGE_DIRTY_BITS,
    _PAGE_GLOBAL,
    _PAGE_KNL_ERRATUM_MASK,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_PSE,
    _PAGE_RW,
    _PAGE_SAVED_DIRTY,
    _PAGE_SOFT_DIRTY,
    _PAGE_SPECIAL,
    _PAGE_SWP_EXCLUSIVE,
    _PAGE_SWP_SOFT_DIRTY,
    _PAGE_SWP_UFFD_WP,
    _PAGE_TABLE,
    _PAGE_UFFD_WP,
    _PAGE_USER,
    P4D_SHIFT,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_SHIFT,
    PTRS_PER_TABLE,
    PUD_SHIFT,
    START_KERNEL_MAP,
)
from livewalk.mm.swapops import (
    SwapEntry,
    SwapTypes,
    swap_kind,
)

__all__ = (
    "X86Paging",
    "as_x86",
    "decode_swap",
    "is_swap_pte",
    "mk_pte",
    "p4d_bad",
    "p4d_none",
    "p4d_present",
    "pgd_bad",
    "pgd_none",
    "pgd_present",
    "pmd_bad",
    "pmd_leaf",
    "pmd_none",
    "pmd_pfn",
    "pmd_present",
    "pmd_trans_huge",
    "protnone_mask",
    "pte_none",
    "pte_pfn",
    "pte_present",
    "pte_protnone",
    "pud_bad",
    "pud_leaf",
    "pud_none",
    "pud_pfn",
    "pud_present",
    "pud_trans_huge",
)

# physical address bits when the target does not say (__PHYSICAL_MASK_SHIFT)
_PHYSICAL_MASK = (1 << 52) - 1


# ---------------------------------------------------------------------------
# Predicates on raw values (arch/x86/include/asm/pgtable.h, as in Linux 7.2)
# ---------------------------------------------------------------------------


def pte_none(v: int) -> bool:
    """``pte_none()``: zero apart from the A/D bits (KNL erratum)."""
    return not (v & ~_PAGE_KNL_ERRATUM_MASK)


def pte_present(v: int) -> bool:
    """``pte_present()``: ``_PAGE_PRESENT`` or ``_PAGE_PROTNONE``."""
    return bool(v & (_PAGE_PRESENT | _PAGE_PROTNONE))


def pte_protnone(v: int) -> bool:
    """``pte_protnone()``: PROT_NONE or NUMA-hinting entry (present for the kernel)."""
    return (v & (_PAGE_PROTNONE | _PAGE_PRESENT)) == _PAGE_PROTNONE


pmd_none = pte_none
pud_none = pte_none
p4d_none = pte_none


def pmd_present(v: int) -> bool:
    """``pmd_present()``: PRESENT, PROTNONE or PSE (the split transient state)."""
    return bool(v & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE))


def pmd_leaf(v: int) -> bool:
    """``pmd_leaf()``: ``_PAGE_PSE`` set (present or not)."""
    return bool(v & _PAGE_PSE)


def pmd_trans_huge(v: int) -> bool:
    """``pmd_trans_huge()``: ``_PAGE_PSE`` set."""
    return bool(v & _PAGE_PSE)


pud_leaf = pmd_leaf
pud_trans_huge = pmd_trans_huge


def pud_present(v: int) -> bool:
    """``pud_present()``: ``_PAGE_PRESENT``."""
    return bool(v & _PAGE_PRESENT)


p4d_present = pud_present


def _pfn_mask(v: int, paging: X86Paging, leaf_shift: int = PAGE_SHIFT) -> int:
    """
    ``p?d_pfn_mask()``: ``PTE_PFN_MASK``, or for a PSE entry at PMD/PUD
    level (*leaf_shift* 21 or 30) the mask of its 2 MiB / 1 GiB page. Taken
    from the value as stored, before any L1TF inversion is undone.
    """
    mask = paging.physical_mask & PAGE_MASK
    if leaf_shift != PAGE_SHIFT and v & _PAGE_PSE:
        mask &= ~((1 << leaf_shift) - 1)
    return mask


def _flags(v: int, paging: X86Paging, leaf_shift: int = PAGE_SHIFT) -> int:
    """``p?d_flags()``: the value without its PFN field."""
    return v & ~_pfn_mask(v, paging, leaf_shift) & ULONG_MAX


def pmd_bad(v: int, paging: X86Paging) -> bool:
    """``pmd_bad()``: flags other than USER/ACCESSED differ from a kernel table's."""
    return (_flags(v, paging, PMD_SHIFT) & ~(_PAGE_USER | _PAGE_ACCESSED)) != (
        _KERNPG_TABLE & ~_PAGE_ACCESSED
    )


def pud_bad(v: int, paging: X86Paging) -> bool:
    """``pud_bad()`` (never called by the walker itself)."""
    return bool(_flags(v, paging, PUD_SHIFT) & ~(_KERNPG_TABLE | _PAGE_USER))


def p4d_bad(v: int, paging: X86Paging) -> bool:
    """``p4d_bad()``; NX is ignored with page-table isolation."""
    ignore = _KERNPG_TABLE | _PAGE_USER
    if paging.pti:
        ignore |= _PAGE_NX
    return bool(_flags(v, paging) & ~ignore)


def pgd_none(v: int, paging: X86Paging) -> bool:
    """``pgd_none()``: always false with 4-level paging (folded P4D)."""
    if paging.levels != 5:
        return False
    return not v


def pgd_present(v: int, paging: X86Paging) -> bool:
    """``pgd_present()``: always true with 4-level paging."""
    if paging.levels != 5:
        return True
    return bool(v & _PAGE_PRESENT)


def pgd_bad(v: int, paging: X86Paging) -> bool:
    """``pgd_bad()``: never with 4-level paging; else flags must be exactly a table's."""
    if paging.levels != 5:
        return False
    ignore = _PAGE_USER
    if paging.pti:
        ignore |= _PAGE_NX
    return (_flags(v, paging) & ~ignore) != _KERNPG_TABLE


def protnone_mask(v: int) -> int:
    """
    ``protnone_mask()`` (``asm/pgtable-invert.h``): all ones for a non-zero
    non-present entry, whose PFN field is stored inverted (L1TF), else 0.
    """
    return ULONG_MAX if (v and not v & _PAGE_PRESENT) else 0


def pte_pfn(v: int, paging: X86Paging) -> int:
    """``pte_pfn()``: the L1TF inversion undone, masked with ``PTE_PFN_MASK``."""
    return ((v ^ protnone_mask(v)) & paging.physical_mask & PAGE_MASK) >> PAGE_SHIFT


def pmd_pfn(v: int, paging: X86Paging) -> int:
    """
    ``pmd_pfn()``: the inversion undone, then ``pmd_pfn_mask()`` of the
    entry *as stored*, so a PSE leaf (PROT_NONE ones included) masks to its
    2 MiB page.

    >>> hex(pmd_pfn(0xFFFFEF2A001A0, X86Paging()))  # PROT_NONE leaf at 0x10d400000
    '0x10d400'
    """
    return ((v ^ protnone_mask(v)) & _pfn_mask(v, paging, PMD_SHIFT)) >> PAGE_SHIFT


def pud_pfn(v: int, paging: X86Paging) -> int:
    """``pud_pfn()``: as :func:`pmd_pfn`, a PSE leaf masks to its 1 GiB page."""
    return ((v ^ protnone_mask(v)) & _pfn_mask(v, paging, PUD_SHIFT)) >> PAGE_SHIFT


def is_swap_pte(v: int) -> bool:
    """``is_swap_pte()``: neither none nor present (any software leaf)."""
    return not pte_none(v) and not pte_present(v)


def decode_swap(v: int, paging: X86Paging) -> SwapEntry | None:
    """
    Decode a non-present, non-none PTE or PMD (``pte_to_swp_entry()`` and
    ``softleaf_type()``); ``None`` for a none or present entry.

    >>> p = X86Paging()
    >>> decode_swap(swp_entry_to_pte(25, 0x1234), p).kind.name
    'MIGRATION_READ'
    """
    if pte_none(v) or v & (_PAGE_PRESENT | _PAGE_PROTNONE):
        return None
    t = __swp_type(v)
    return SwapEntry(
        t,
        __swp_offset(v),
        swap_kind(t, paging.swap_types),
        bool(v & _PAGE_SWP_SOFT_DIRTY),
        bool(v & _PAGE_SWP_UFFD_WP),
        bool(v & _PAGE_SWP_EXCLUSIVE),
        paging.max_physmem_bits - PAGE_SHIFT,
    )


def mk_pte(pfn: int, flags: int) -> int:
    """``pfn_pte()``: PFN and flag bits; inverted (L1TF) if the result is not present."""
    pfn_field = (pfn << PAGE_SHIFT) & _PHYSICAL_MASK
    if flags and not flags & _PAGE_PRESENT:
        pfn_field ^= _PHYSICAL_MASK & PAGE_MASK  # protnone_mask(prot): invert the PFN
    return (pfn_field | flags) & ULONG_MAX


_LEVEL_SHIFT = (PAGE_SHIFT, PMD_SHIFT, PUD_SHIFT, P4D_SHIFT)


@dataclasses.dataclass(frozen=True, slots=True)
class X86Paging:
    """
    Paging geometry and decoding parameters of one x86_64 kernel; satisfies
    :class:`livewalk.arch.ArchPaging`.

    :ivar levels: 5 with LA57 (``__pgtable_l5_enabled``), otherwise 4
    :ivar page_offset: ``page_offset_base``, the start of the direct map
        (``__va(pa) == pa + page_offset``)
    :ivar physical_mask: ``physical_mask`` (``__PHYSICAL_MASK``)
    :ivar swap_types: numbering of swap-entry types
    :ivar uffd_wp: ``CONFIG_HAVE_ARCH_USERFAULTFD_WP`` (bit 10 is ``_PAGE_UFFD_WP``)
    :ivar soft_dirty: ``CONFIG_MEM_SOFT_DIRTY`` (bit 11 is ``_PAGE_SOFT_DIRTY``)
    :ivar pti: ``CONFIG_MITIGATION_PAGE_TABLE_ISOLATION`` (NX is ignored by
        ``pgd_bad``/``p4d_bad``)
    :ivar phys_base: ``phys_base``, where the kernel image was loaded

    >>> X86Paging(levels=4).pgdir_shift
    39
    """

    levels: int = 5
    page_offset: int = 0xFF11000000000000
    physical_mask: int = _PHYSICAL_MASK
    swap_types: SwapTypes = dataclasses.field(default_factory=SwapTypes)
    uffd_wp: bool = True
    soft_dirty: bool = True
    pti: bool = True
    phys_base: int = 0

    def __post_init__(self) -> None:
        if self.levels not in (4, 5):
            raise ValueError(f"x86_64 has 4 or 5 paging levels, not {self.levels}")

    # -- geometry (pgtable_64_types.h, head64.c) ------------------------------

    @property
    def page_shift(self) -> int:
        """``PAGE_SHIFT``."""
        return PAGE_SHIFT

    @property
    def page_size(self) -> int:
        """``PAGE_SIZE``."""
        return PAGE_SIZE

    @property
    def pgdir_shift(self) -> int:
        """``PGDIR_SHIFT``: 48 with 5-level paging, 39 with 4-level."""
        return 48 if self.levels == 5 else 39

    @property
    def ptrs_per_p4d(self) -> int:
        """``PTRS_PER_P4D``: 512 with 5-level paging, 1 (folded) with 4-level."""
        return 512 if self.levels == 5 else 1

    @property
    def max_physmem_bits(self) -> int:
        """``MAX_PHYSMEM_BITS``: 52 with 5-level paging, 46 with 4-level."""
        return 52 if self.levels == 5 else 46

    @property
    def task_size_max(self) -> int:
        """``TASK_SIZE_MAX``: the top of user space less one guard page."""
        return (1 << (56 if self.levels == 5 else 47)) - PAGE_SIZE

    def level_shift(self, level: PageTableLevel) -> int:
        """The shift of one *level* entry's span (``PMD_SHIFT``, ...)."""
        if level == PageTableLevel.PGD:
            return self.pgdir_shift
        return _LEVEL_SHIFT[level]

    def ptrs_per(self, level: PageTableLevel) -> int:
        """``PTRS_PER_*``: 512 everywhere but a folded P4D."""
        if level == PageTableLevel.P4D:
            return self.ptrs_per_p4d
        return PTRS_PER_TABLE

    def folded(self, level: PageTableLevel) -> bool:
        """Only the P4D folds on x86_64, without LA57 (``pgtable_l5_enabled()``)."""
        return level == PageTableLevel.P4D and self.levels != 5

    def folded_at_boot(self, level: PageTableLevel) -> bool:
        """Never: x86 folds at boot through ``PTRS_PER_P4D`` (:meth:`folded`)."""
        return False

    @property
    def general_hugetlb(self) -> bool:
        """x86 selects ``ARCH_WANT_GENERAL_HUGETLB``."""
        return True

    def hugetlb_level(self, shift: int) -> tuple[PageTableLevel, int]:
        """2 MiB pages are PMD leaves, 1 GiB pages PUD leaves."""
        for level in (PageTableLevel.PMD, PageTableLevel.PUD):
            if shift == self.level_shift(level):
                return level, 1
        raise ValueError(f"no {1 << shift:#x}-byte hugetlb pages on x86_64")

    def huge_ptep_get(self, vals: Sequence[int], i: int, level: PageTableLevel) -> int:
        """A plain read."""
        return vals[i]

    def va(self, paddr: int) -> int:
        """``__va()``: the direct-map address of physical address *paddr*."""
        return (self.page_offset + paddr) & ULONG_MAX

    def is_direct_map(self, vaddr: int) -> bool:
        """Between ``page_offset_base`` and ``MAX_PHYSMEM_BITS`` above it."""
        return 0 <= vaddr - self.page_offset < 1 << self.max_physmem_bits

    def pa(self, vaddr: int) -> int:
        """
        ``__pa()``: the kernel image (``init_top_pgt``) through ``phys_base``,
        which wraps when the kernel is loaded below its link address;
        anything else through the direct map.
        """
        if vaddr >= START_KERNEL_MAP:
            return (vaddr - START_KERNEL_MAP + self.phys_base) & ULONG_MAX
        return (vaddr - self.page_offset) & ULONG_MAX

    def table_paddr(self, v: int) -> int:
        """The physical address of the table a (non-leaf) entry points to."""
        return v & self.physical_mask & PAGE_MASK

    def same_but_hw_bits(self, old: int, new: int) -> bool:
        if old == new:
            return True
        present = _PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE
        return bool(old & new & present) and not (old ^ new) & ~(_PAGE_ACCESSED | _PAGE_DIRTY)
    def ptes_get(self, vals: Sequence[int], start: int, count: int) -> Sequence[int]:
        """``ptep_get()`` is a plain read on x86: the raw values."""
        return vals[start : start + count]

    # -- predicates ---------------------------------------------------------

    def pgd_none(self, v: int) -> bool:
        return pgd_none(v, self)

    def pgd_present(self, v: int) -> bool:
        return pgd_present(v, self)

    def pgd_bad(self, v: int) -> bool:
        return pgd_bad(v, self)

    def p4d_none(self, v: int) -> bool:
        return pte_none(v)

    def p4d_present(self, v: int) -> bool:
        return bool(v & _PAGE_PRESENT)

    def p4d_bad(self, v: int) -> bool:
        return p4d_bad(v, self)

    def pud_none(self, v: int) -> bool:
        return not (v & ~_PAGE_KNL_ERRATUM_MASK)

    def pud_present(self, v: int) -> bool:
        return bool(v & _PAGE_PRESENT)

    def pud_leaf(self, v: int) -> bool:
        return bool(v & _PAGE_PSE)

    def pud_trans_huge(self, v: int) -> bool:
        return bool(v & _PAGE_PSE)

    def pud_bad(self, v: int) -> bool:
        return pud_bad(v, self)

    def pud_pfn(self, v: int) -> int:
        return pud_pfn(v, self)

    def pmd_none(self, v: int) -> bool:
        return not (v & ~_PAGE_KNL_ERRATUM_MASK)

    def pmd_present(self, v: int) -> bool:
        return bool(v & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE))

    def pmd_leaf(self, v: int) -> bool:
        return bool(v & _PAGE_PSE)

    def pmd_trans_huge(self, v: int) -> bool:
        return bool(v & _PAGE_PSE)

    def pmd_bad(self, v: int) -> bool:
        return pmd_bad(v, self)

    def pmd_pfn(self, v: int) -> int:
        return pmd_pfn(v, self)

    def pmd_protnone(self, v: int) -> bool:
        return (v & (_PAGE_PROTNONE | _PAGE_PRESENT)) == _PAGE_PROTNONE

    def pmd_special(self, v: int) -> bool:
        return bool(v & _PAGE_SPECIAL)

    def pmd_write(self, v: int) -> bool:
        return bool(v & _PAGE_RW)

    def pmd_young(self, v: int) -> bool:
        return bool(v & _PAGE_ACCESSED)

    def pmd_dirty(self, v: int) -> bool:
        return bool(v & _PAGE_DIRTY_BITS)

    def pmd_soft_dirty(self, v: int) -> bool:
        return self.soft_dirty and bool(v & _PAGE_SOFT_DIRTY)

    def pmd_uffd_wp(self, v: int) -> bool:
        return self.uffd_wp and bool(v & _PAGE_UFFD_WP)

    def pte_none(self, v: int) -> bool:
        return not (v & ~_PAGE_KNL_ERRATUM_MASK)

    def pte_present(self, v: int) -> bool:
        return bool(v & (_PAGE_PRESENT | _PAGE_PROTNONE))

    def pte_protnone(self, v: int) -> bool:
        return (v & (_PAGE_PROTNONE | _PAGE_PRESENT)) == _PAGE_PROTNONE

    def pte_pfn(self, v: int) -> int:
        return pte_pfn(v, self)

    def pte_write(self, v: int) -> bool:
        return bool(v & _PAGE_RW)

    def pte_young(self, v: int) -> bool:
        return bool(v & _PAGE_ACCESSED)

    def pte_dirty(self, v: int) -> bool:
        return bool(v & _PAGE_DIRTY_BITS)

    def pte_special(self, v: int) -> bool:
        return bool(v & _PAGE_SPECIAL)

    def pte_soft_dirty(self, v: int) -> bool:
        return self.soft_dirty and bool(v & _PAGE_SOFT_DIRTY)

    def pte_uffd_wp(self, v: int) -> bool:
        return self.uffd_wp and bool(v & _PAGE_UFFD_WP)

    def pte_user(self, v: int) -> bool:
        return bool(v & _PAGE_USER)

    def pte_exec(self, v: int) -> bool:
        return not v & _PAGE_NX

    def pte_global(self, v: int) -> bool:
        """``_PAGE_GLOBAL`` (bit 8, which is PROTNONE when PRESENT is clear)."""
        return bool(v & _PAGE_GLOBAL) and bool(v & _PAGE_PRESENT)

    @property
    def entry_layout(self) -> EntryLayout:
        """
        The x86_64 PTE as masks: present is ``_PAGE_PRESENT`` or
        ``_PAGE_PROTNONE``, the PFN is read in place only with
        ``_PAGE_PRESENT`` (a PROT_NONE entry's is inverted, L1TF), the swap
        offset is stored inverted below the type in the top 5 bits.

        >>> hex(X86Paging().entry_layout.swp_offset_shift)
        '0x9'
        """
        return EntryLayout(
            page_shift=PAGE_SHIFT,
            none_mask=~_PAGE_KNL_ERRATUM_MASK & ULONG_MAX,
            present=_PAGE_PRESENT | _PAGE_PROTNONE,
            pfn_mask=self.physical_mask & PAGE_MASK & ULONG_MAX,
            pfn_check_mask=_PAGE_PRESENT,
            pfn_check_value=_PAGE_PRESENT,
            special=_PAGE_SPECIAL,
            soft_dirty=_PAGE_SOFT_DIRTY if self.soft_dirty else 0,
            uffd_wp=_PAGE_UFFD_WP if self.uffd_wp else 0,
            swp_soft_dirty=_PAGE_SWP_SOFT_DIRTY if self.soft_dirty else 0,
            swp_uffd_wp=_PAGE_SWP_UFFD_WP if self.uffd_wp else 0,
            swp_exclusive=_PAGE_SWP_EXCLUSIVE,
            swp_type_shift=64 - SWP_TYPE_BITS,
            swp_type_mask=(1 << SWP_TYPE_BITS) - 1,
            swp_offset_shift=SWP_OFFSET_SHIFT - SWP_TYPE_BITS,
            swp_offset_mask=(1 << (64 - SWP_OFFSET_SHIFT)) - 1,
            swp_offset_invert=ULONG_MAX,
        )

    # -- swap entries (pgtable_64.h) -------------------------------------------

    def decode_swap(self, v: int) -> SwapEntry | None:
        return decode_swap(v, self)

    def pte_swp_soft_dirty(self, v: int) -> bool:
        return self.soft_dirty and bool(v & _PAGE_SWP_SOFT_DIRTY)

    def pte_swp_uffd_wp(self, v: int) -> bool:
        return self.uffd_wp and bool(v & _PAGE_SWP_UFFD_WP)

    def pte_swp_exclusive(self, v: int) -> bool:
        return bool(v & _PAGE_SWP_EXCLUSIVE)

    def pmd_swp_soft_dirty(self, v: int) -> bool:
        """``pmd_swp_soft_dirty()``: the PTE's bit (``_PAGE_SWP_SOFT_DIRTY``)."""
        return self.soft_dirty and bool(v & _PAGE_SWP_SOFT_DIRTY)

    def pmd_swp_uffd_wp(self, v: int) -> bool:
        """``pmd_swp_uffd_wp()``: the PTE's bit (``_PAGE_SWP_UFFD_WP``)."""
        return self.uffd_wp and bool(v & _PAGE_SWP_UFFD_WP)

    def swp_entry_to_pte(
        self,
        type: int,
        offset: int,
        *,
        soft_dirty: bool = False,
        uffd_wp: bool = False,
        exclusive: bool = False,
    ) -> int:
        return swp_entry_to_pte(
            type, offset, soft_dirty=soft_dirty, uffd_wp=uffd_wp, exclusive=exclusive
        )

    # -- constructors (the read-only emulation of splits and allocation) ------

    def pfn_pte(self, pfn: int, prot: int) -> int:
        return mk_pte(pfn, prot)

    def vm_get_page_prot(self, vm_flags: int) -> int:
        return vm_get_page_prot(vm_flags)

    def pte_mkwrite(self, v: int) -> int:
        return v | _PAGE_RW

    def pte_mkold(self, v: int) -> int:
        return v & ~_PAGE_ACCESSED

    def pte_mkdirty(self, v: int) -> int:
        """``pte_mkdirty()``: DIRTY and SOFT_DIRTY; on a read-only PTE DIRTY becomes SAVED_DIRTY."""
        v |= _PAGE_DIRTY | (_PAGE_SOFT_DIRTY if self.soft_dirty else 0)
        if not v & _PAGE_RW:
            v = (v & ~_PAGE_DIRTY) | _PAGE_SAVED_DIRTY
        return v

    def pte_mkspecial(self, v: int) -> int:
        return v | _PAGE_SPECIAL

    def pte_mksoft_dirty(self, v: int) -> int:
        return v | _PAGE_SOFT_DIRTY if self.soft_dirty else v

    def pte_mkuffd_wp(self, v: int) -> int:
        # as the walker's split emulation always did: the bit only (the
        # kernel's pte_mkuffd_wp() also write-protects the entry)
        return v | _PAGE_UFFD_WP if self.uffd_wp else v

    def set_ptes(self, addr: int, pfn: int, prot: int, nr: int) -> list[int]:
        """``set_ptes()``: ``pte_next_pfn()`` from the first entry, L1TF inversion kept."""
        pfn_pte = self.pfn_pte
        return [pfn_pte(pfn + n, prot) for n in range(nr)]

    def mk_table_entry(self, level: PageTableLevel) -> int:
        """``_PAGE_TABLE`` with PFN 0, what ``__p?d_alloc()`` would have stored."""
        return _PAGE_TABLE


if TYPE_CHECKING:
    # X86Paging satisfies the arch seam (checked by mypy)
    _ARCH: ArchPaging = X86Paging()


def as_x86(paging: ArchPaging, what: str) -> X86Paging:
    """
    *paging* for a consumer that decodes x86_64 entries itself (pagemap,
    smaps, vtop, ptdump, so far); the walker and its callbacks run on any
    architecture.

    :raises ~livewalk.errors.UnsupportedArchError: for another architecture
    """
    if isinstance(paging, X86Paging):
        return paging
    from livewalk.errors import UnsupportedArchError

    arch = type(paging).__name__.removesuffix("Paging").lower()
    raise UnsupportedArchError(
        f"{what} decodes x86_64 page tables only, not {arch} yet "
        "(the walker API, walk_page_range() and its family, runs on it)"
    )
