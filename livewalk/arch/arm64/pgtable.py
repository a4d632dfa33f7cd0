# SPDX-License-Identifier: LGPL-2.1-or-later
"""
arm64 paging
------------

The arm64 side of the arch seam (:class:`livewalk.arch.ArchPaging`):
:class:`Arm64Paging`, the geometry of the 4K, 16K and 64K granules and the
predicates of Linux 7.2 ``arch/arm64/include/asm/pgtable.h``, the swap-entry
layout, and the contiguous-PTE fold of ``ptep_get()``
(``arch/arm64/mm/contpte.c``).

How a configuration maps onto the walker's levels. The kernel names levels
from the top down by ``CONFIG_PGTABLE_LEVELS``: with 5, PGD is hardware
level -1 and P4D level 0; with 4 the P4D is folded (``pgtable-nop4d.h``) and
PGD is level 0; with 3 (4K/39-bit, 16K/47-bit, 64K/48- or 52-bit) PGD is
level 1 and the PUD folds too; with 2 (64K/42-bit) the PMD as well. The
shifts and ``PTRS_PER_*`` are build-time constants. A kernel built for
52-bit VAs with LPA2 (Debian's 4K ``cloud-arm64``: 5 levels; 16K: 4 levels)
folds one more level at boot when the CPU lacks FEAT_LPA2
(``pgtable_l5_enabled()``, ``pgtable_l4_enabled()``): the PGD keeps its
``PGDIR_SHIFT`` and its 16 (or 32) slots, its ``pgd_none()`` becomes constant
false, and ``p4d_offset()`` (``pud_offset()`` on 16K) indexes the page that
holds the PGD entry with ``p4d_index()`` (:meth:`Arm64Paging.folded_at_boot`).
The walker does the same: one ``pgd_entry`` for the whole 256 TiB
``PGDIR_SIZE`` (holding the hardware level-0 entry of slot
``pgd_index(addr)``), then the P4D loop over that page.

Output addresses: PA[49:PAGE_SHIFT] in place; with 52-bit PAs, PA[51:50] in
descriptor bits [9:8] (LPA2, 4K and 16K; without LPA2 at run time those bits
are the shareability field and are dropped) or PA[51:48] in bits [15:12]
(64K).

>>> p = Arm64Paging()  # Debian cloud-arm64 on a CPU with LPA2
>>> p.levels, p.pgdir_shift, p.ptrs_per(PageTableLevel.PGD)
(5, 48, 16)
>>> hex(p.pte_pfn(0x68000123456FC3 | 3 << 8))  # PA[51:50] from bits [9:8]
'0xc000123456'
>>> p.pte_present(0x60000000000F82), p.pte_protnone(0x60000000000F82)  # PAGE_NONE
(True, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from functools import reduce
from operator import or_
from typing import TYPE_CHECKING

from livewalk.arch import ULONG_MAX, ArchPaging, EntryLayout, PageTableLevel
from livewalk.arch.arm64.pgtable_hwdef import (
    CONT_PMD_SHIFT_CONFIG,
    CONT_PTE_SHIFT_CONFIG,
    PMD_TABLE_AF,
    PMD_TABLE_PXN,
    PMD_TYPE_MASK,
    PMD_TYPE_TABLE,
    PTE_AF,
    PTE_CONT,
    PTE_NG,
    PTE_RDONLY,
    PTE_SHARED,
    PTE_USER,
    PTE_UXN,
    PTE_VALID,
    arm64_hw_pgtable_level_shift,
    arm64_hw_pgtable_levels,
    pte_addr_low,
)
from livewalk.arch.arm64.pgtable_prot import (
    PTE_DIRTY,
    PTE_PRESENT_INVALID,
    PTE_SPECIAL,
    PTE_SWP_EXCLUSIVE,
    PTE_SWP_UFFD_WP,
    PTE_UFFD_WP,
    PTE_WRITE,
    vm_get_page_prot,
)
from livewalk.mm.swapops import SwapEntry, SwapTypes, swap_kind

__all__ = (
    "SWP_OFFSET_BITS",
    "SWP_OFFSET_SHIFT",
    "SWP_TYPE_BITS",
    "SWP_TYPE_SHIFT",
    "Arm64Paging",
    "contpte_ptep_get",
    "pte_dirty",
    "pte_present",
    "pte_protnone",
    "swp_entry_to_pte",
)

# -- swap entries (asm/pgtable.h): bits 0-1 zero, 2 exclusive, 3 uffd-wp,
# 6-10 type, 11 zero (PTE_PRESENT_INVALID), 12-61 offset -------------------
SWP_TYPE_SHIFT = 6
SWP_TYPE_BITS = 5
SWP_OFFSET_SHIFT = 12
SWP_OFFSET_BITS = 50

# PA[51:50] in bits [9:8] (LPA2) or PA[51:48] in bits [15:12] (64K)
_LPA2_ADDR_HIGH = 3 << 8
_LPA2_ADDR_HIGH_SHIFT = 42
_LPA2_PHYS_TO_PTE_MASK = ((1 << 50) - 1) & ~((1 << 8) - 1)  # GENMASK_ULL(49, 8)
_64K_ADDR_HIGH = 0xF << 12
_64K_ADDR_HIGH_SHIFT = 36

_L = PageTableLevel


# ---------------------------------------------------------------------------
# Predicates that need no configuration
# ---------------------------------------------------------------------------


def pte_present(v: int) -> bool:
    """``pte_present()``: ``PTE_VALID``, or ``PTE_PRESENT_INVALID`` (nG) without it."""
    return bool(v & PTE_VALID) or (v & (PTE_VALID | PTE_PRESENT_INVALID)) == PTE_PRESENT_INVALID


def pte_protnone(v: int) -> bool:
    """
    ``pte_protnone()``: present-invalid, not user-accessible and not user
    executable; the last two tell PROT_NONE and NUMA hints from an entry
    ``pmd_mkinvalid()`` made invalid for a split.
    """
    return (v & (PTE_VALID | PTE_PRESENT_INVALID)) == PTE_PRESENT_INVALID and (
        v & (PTE_USER | PTE_UXN)
    ) == PTE_UXN


def pte_dirty(v: int) -> bool:
    """``pte_dirty()``: software ``PTE_DIRTY``, or writable with ``PTE_RDONLY`` cleared by DBM."""
    return bool(v & PTE_DIRTY) or (v & (PTE_WRITE | PTE_RDONLY)) == PTE_WRITE


def _pte_mkdirty(v: int) -> int:
    """``pte_mkdirty()``: ``PTE_DIRTY``, and a writable entry becomes hardware-dirty."""
    v |= PTE_DIRTY
    if v & PTE_WRITE:
        v &= ~PTE_RDONLY
    return v


def contpte_ptep_get(vals: Sequence[int], i: int, cont_ptes: int) -> int:
    """
    ``ptep_get()`` of slot *i* of a PTE table *vals*: a valid entry with
    ``PTE_CONT`` gets the access and dirty bits of every entry of its
    aligned block of *cont_ptes* (``contpte_ptep_get()``), since hardware
    may set them in any one of them.

    >>> blk = [0x40000000000F43 | PTE_CONT | n << 12 for n in range(16)]
    >>> blk[5] |= PTE_DIRTY
    >>> hex(contpte_ptep_get(blk, 0, 16) & (PTE_DIRTY | PTE_AF))
    '0x80000000000400'
    """
    v = vals[i]
    if (v & (PTE_VALID | PTE_CONT)) != (PTE_VALID | PTE_CONT):
        return v
    first = i & ~(cont_ptes - 1)
    block = vals[first : first + cont_ptes]
    if any(pte_dirty(x) for x in block):
        v = _pte_mkdirty(v)
    if any(x & PTE_AF for x in block):
        v |= PTE_AF
    return v


def swp_entry_to_pte(
    type: int, offset: int, *, uffd_wp: bool = False, exclusive: bool = False
) -> int:
    """``__swp_entry_to_pte(__swp_entry())`` with the ``pte_swp_mk*()`` flags."""
    v = (type & ((1 << SWP_TYPE_BITS) - 1)) << SWP_TYPE_SHIFT
    v |= (offset & ((1 << SWP_OFFSET_BITS) - 1)) << SWP_OFFSET_SHIFT
    if uffd_wp:
        v |= PTE_SWP_UFFD_WP
    if exclusive:
        v |= PTE_SWP_EXCLUSIVE
    return v


# ---------------------------------------------------------------------------
# The paging of one arm64 kernel
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arm64Paging:
    """
    Paging geometry and decoding parameters of one arm64 kernel; satisfies
    :class:`livewalk.arch.ArchPaging`.

    :ivar page_shift: 12, 14 or 16 (the 4K, 16K or 64K granule)
    :ivar va_bits: ``CONFIG_ARM64_VA_BITS`` (``VA_BITS``)
    :ivar vabits_actual: ``vabits_actual``, what the CPU gave (52 only with
        LPA2 on 4K/16K, or FEAT_LVA on 64K); ``None``: *va_bits*
    :ivar pa_bits_52: ``CONFIG_ARM64_PA_BITS_52`` (``CONFIG_ARM64_LPA2`` on
        4K and 16K)
    :ivar lpa2: ``lpa2_is_enabled()`` (TCR_EL1.DS); ``None``: the kernel
        enables it on 4K and 16K exactly when it runs with 52-bit VAs
    :ivar phys_offset: ``memstart_addr`` (``PHYS_OFFSET``; may be negative)
    :ivar kimage_voffset: ``kimage_voffset`` (virtual minus physical address
        of the kernel image, where ``swapper_pg_dir`` lives)
    :ivar contpte: ``CONFIG_ARM64_CONTPTE`` (``ptep_get()`` folds blocks)
    :ivar uffd_wp: ``CONFIG_HAVE_ARCH_USERFAULTFD_WP``
    :ivar epan: the CPU has Enhanced PAN (execute-only user pages)
    :ivar swap_types: numbering of swap-entry types

    >>> p = Arm64Paging(vabits_actual=48)  # 52-bit kernel folded at boot
    >>> p.pgdir_shift, p.folded(PageTableLevel.P4D), p.folded_at_boot(PageTableLevel.P4D)
    (48, False, True)
    """

    page_shift: int = 12
    va_bits: int = 52
    vabits_actual: int | None = None
    pa_bits_52: bool = True
    lpa2: bool | None = None
    phys_offset: int = 0x4000_0000  # QEMU virt: RAM at 1 GiB
    kimage_voffset: int = 0xFFFF_8000_4000_0000  # linked at KIMAGE_VADDR, loaded at 1 GiB
    contpte: bool = True
    uffd_wp: bool = True
    epan: bool = False
    swap_types: SwapTypes = dataclasses.field(default_factory=SwapTypes)

    # derived in __post_init__
    config_levels: int = dataclasses.field(init=False, repr=False)
    _levels: int = dataclasses.field(init=False, repr=False)
    _lpa2: bool = dataclasses.field(init=False, repr=False)
    _shift: tuple[int, ...] = dataclasses.field(init=False, repr=False)
    _ptrs: tuple[int, ...] = dataclasses.field(init=False, repr=False)
    _exists: tuple[bool, ...] = dataclasses.field(init=False, repr=False)
    _addr_low: int = dataclasses.field(init=False, repr=False)
    _cont_ptes: int = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        ps = self.page_shift
        if ps not in (12, 14, 16):
            raise ValueError(f"arm64 pages are 4K, 16K or 64K, not PAGE_SHIFT {ps}")
        actual = self.va_bits if self.vabits_actual is None else self.vabits_actual
        if actual > self.va_bits:
            raise ValueError(f"vabits_actual {actual} above VA_BITS {self.va_bits}")
        config = arm64_hw_pgtable_levels(self.va_bits, ps)
        levels = arm64_hw_pgtable_levels(actual, ps)
        lpa2 = self.lpa2
        if lpa2 is None:
            lpa2 = self.pa_bits_52 and ps != 16 and actual > 48
        table = 1 << (ps - 3)

        def ls(n: int) -> int:
            return arm64_hw_pgtable_level_shift(n, ps)

        # kernel-named shifts: a folded level takes the shift of the one above
        # (pgtable-nop4d.h, -nopud.h, -nopmd.h)
        pgdir = ls(4 - config)
        p4d = ls(0) if config > 4 else pgdir
        pud = ls(1) if config > 3 else p4d
        pmd = ls(2) if config > 2 else pud
        ptrs_pgd = 1 << (self.va_bits - pgdir)
        s = object.__setattr__
        s(self, "config_levels", config)
        s(self, "_levels", levels)
        s(self, "_lpa2", lpa2)
        s(self, "_shift", (ps, pmd, pud, p4d, pgdir))
        s(
            self,
            "_ptrs",
            (table, table if config > 2 else 1, table if config > 3 else 1, table if config > 4 else 1, ptrs_pgd),
        )
        # the level has its own descriptors at run time (its p?d_none() is not
        # constant): PMD with 2 levels, ..., PGD with 5
        s(self, "_exists", (True, levels >= 2, levels >= 3, levels >= 4, levels >= 5))
        s(self, "_addr_low", pte_addr_low(ps))
        s(self, "_cont_ptes", 1 << CONT_PTE_SHIFT_CONFIG[ps])

    # -- geometry (pgtable-hwdef.h, memory.h, processor.h) ---------------------

    @property
    def levels(self) -> int:
        """Levels in use at run time (``ARM64_HW_PGTABLE_LEVELS(vabits_actual)``)."""
        return self._levels

    @property
    def page_size(self) -> int:
        """``PAGE_SIZE``."""
        return 1 << self.page_shift

    @property
    def pgdir_shift(self) -> int:
        """``PGDIR_SHIFT``, fixed at build time (a level folded at boot leaves it as it is)."""
        return self._shift[_L.PGD]

    @property
    def page_offset(self) -> int:
        """``PAGE_OFFSET``: ``-(1 << VA_BITS)``, the start of the linear map."""
        return -(1 << self.va_bits) & ULONG_MAX

    @property
    def page_end(self) -> int:
        """``PAGE_END`` without KASAN: the end of the linear map, ``_PAGE_END(VA_BITS_MIN)``."""
        va_min = self.va_bits if self.va_bits <= 48 else (47 if self.page_shift == 14 else 48)
        return -(1 << (va_min - 1)) & ULONG_MAX

    @property
    def soft_dirty(self) -> bool:
        """arm64 has no soft-dirty bit (pagemap bit 55 stays 0)."""
        return False

    @property
    def lpa2_enabled(self) -> bool:
        """``lpa2_is_enabled()``."""
        return self._lpa2

    @property
    def cont_ptes(self) -> int:
        """``CONT_PTES``: 16, 128 or 32 PTEs in a contiguous block."""
        return self._cont_ptes

    @property
    def max_physmem_bits(self) -> int:
        """``MAX_PHYSMEM_BITS`` (``PHYS_MASK_SHIFT``): 48 unless 52-bit PAs are in use."""
        if self.pa_bits_52 and (self.page_shift == 16 or self._lpa2):
            return 52
        return 48

    @property
    def task_size_max(self) -> int:
        """
        ``TASK_SIZE`` of a 64-bit task, ``1 << vabits_actual``: the walker's
        user/kernel boundary (``TASK_SIZE_MAX`` is ``1 << VA_BITS``).
        """
        actual = self.va_bits if self.vabits_actual is None else self.vabits_actual
        return 1 << actual

    def level_shift(self, level: PageTableLevel) -> int:
        """``PAGE_SHIFT``, ``PMD_SHIFT``, ``PUD_SHIFT``, ``P4D_SHIFT``, ``PGDIR_SHIFT``."""
        return self._shift[level]

    def ptrs_per(self, level: PageTableLevel) -> int:
        """``PTRS_PER_*``; ``PTRS_PER_PGD`` is ``1 << (VA_BITS - PGDIR_SHIFT)`` (16 with 4K/52-bit)."""
        return self._ptrs[level]

    def folded(self, level: PageTableLevel) -> bool:
        """Folded at build time (``CONFIG_PGTABLE_LEVELS``; ``PTRS_PER_* == 1``)."""
        return level != _L.PGD and self._ptrs[level] == 1

    def folded_at_boot(self, level: PageTableLevel) -> bool:
        """
        Folded at boot into the page of the PGD (``!pgtable_l5_enabled()``:
        the P4D; ``!pgtable_l4_enabled()`` on 16K: the PUD): the top level
        in use at run time when it is below the top one of the build.
        """
        return self._levels < self.config_levels and level == self._levels - 1

    def va(self, paddr: int) -> int:
        """``__va()``: ``(pa - PHYS_OFFSET) | PAGE_OFFSET``."""
        return ((paddr - self.phys_offset) | self.page_offset) & ULONG_MAX

    def is_direct_map(self, vaddr: int) -> bool:
        """``__is_lm_address()``: in [``PAGE_OFFSET``, ``PAGE_END``)."""
        off = self.page_offset
        return ((vaddr - off) & ULONG_MAX) < ((self.page_end - off) & ULONG_MAX)

    def pa(self, vaddr: int) -> int:
        """``__pa()``: through the linear map, else the kernel image (``kimage_voffset``)."""
        if self.is_direct_map(vaddr):
            return (vaddr - self.page_offset + self.phys_offset) & ULONG_MAX
        return (vaddr - self.kimage_voffset) & ULONG_MAX

    def pte_to_phys(self, v: int) -> int:
        """``__pte_to_phys()``: the output address of a descriptor."""
        if not self.pa_bits_52:
            return v & self._addr_low
        if self.page_shift == 16:
            return (v & self._addr_low) | ((v & _64K_ADDR_HIGH) << _64K_ADDR_HIGH_SHIFT)
        if not self._lpa2:
            v &= ~PTE_SHARED  # PTE_MAYBE_SHARED: bits [9:8] are SH[1:0]
        return (v & self._addr_low) | ((v & _LPA2_ADDR_HIGH) << _LPA2_ADDR_HIGH_SHIFT)

    def phys_to_pte_val(self, paddr: int) -> int:
        """``__phys_to_pte_val()``."""
        if not self.pa_bits_52:
            return paddr
        if self.page_shift == 16:
            return (paddr | paddr >> _64K_ADDR_HIGH_SHIFT) & (self._addr_low | _64K_ADDR_HIGH)
        return (paddr | paddr >> _LPA2_ADDR_HIGH_SHIFT) & _LPA2_PHYS_TO_PTE_MASK

    def table_paddr(self, v: int) -> int:
        """``p?d_page_paddr()``."""
        return self.pte_to_phys(v)

    def same_but_hw_bits(self, old: int, new: int) -> bool:
        # The MMU sets AF and, with DBM, clears AP[2] (PTE_RDONLY) on its own.
        if old == new:
            return True
        return bool(old & new & PTE_VALID) and not (old ^ new) & ~(PTE_AF | PTE_RDONLY)

    # -- the read path ----------------------------------------------------------

    def ptes_get(self, vals: Sequence[int], start: int, count: int) -> Sequence[int]:
        """
        ``ptep_get()`` of *count* PTEs from slot *start*: with CONTPTE a
        valid contiguous entry carries its block's access and dirty bits.
        """
        run = vals[start : start + count]
        if not self.contpte:
            return run
        if not reduce(or_, run, 0) & PTE_CONT:  # a C loop: most tables have no block
            return run
        mask = PTE_VALID | PTE_CONT
        # contpte_ptep_get() of each entry, the bits of a block gathered once
        out: list[int] = []
        n = self._cont_ptes
        end = start + len(run)
        for b in range(start & ~(n - 1), end, n):
            block = vals[b : b + n]
            part = block[max(b, start) - b : min(b + n, end) - b]
            young = PTE_AF if any(x & PTE_AF for x in block) else 0
            if any(pte_dirty(x) for x in block):
                out += [_pte_mkdirty(v) | young if (v & mask) == mask else v for v in part]
            elif young:
                out += [v | young if (v & mask) == mask else v for v in part]
            else:
                out += part
        return out

    # -- hugetlb (arch/arm64/mm/hugetlbpage.c) ---------------------------------

    @property
    def general_hugetlb(self) -> bool:
        """arm64 has its own ``huge_pte_offset()`` (contiguous sizes)."""
        return False

    @property
    def cont_pmds(self) -> int:
        """``CONT_PMDS``: 16, 32 or 32 PMDs in a contiguous block."""
        return 1 << CONT_PMD_SHIFT_CONFIG[self.page_shift]

    def hugetlb_level(self, shift: int) -> tuple[PageTableLevel, int]:
        """
        ``num_contig_ptes()``: PUD (4K only, ``pud_sect_supported()``),
        PMD, contiguous PMDs or contiguous PTEs.

        >>> Arm64Paging(page_shift=14).hugetlb_level(30)  # CONT_PMD_SIZE with 16K
        (<PageTableLevel.PMD: 1>, 32)
        """
        pmd = self._shift[_L.PMD]
        if shift == self._shift[_L.PUD] and self.page_shift == 12 and self.config_levels > 2:
            return _L.PUD, 1
        if shift == pmd:
            return _L.PMD, 1
        if shift == pmd + CONT_PMD_SHIFT_CONFIG[self.page_shift]:
            return _L.PMD, self.cont_pmds
        if shift == self.page_shift + CONT_PTE_SHIFT_CONFIG[self.page_shift]:
            return _L.PTE, self._cont_ptes
        raise ValueError(f"no {1 << shift:#x}-byte hugetlb pages with {self.page_size >> 10}K pages")

    def huge_ptep_get(self, vals: Sequence[int], i: int, level: PageTableLevel) -> int:
        """
        ``huge_ptep_get()``: a present entry with the contiguous bit gets
        the dirty and young bits of the ``CONT_PMDS`` (PMD level) or
        ``CONT_PTES`` entries from slot *i* (``find_num_contig()``).
        """
        v = vals[i]
        if not (pte_present(v) and v & PTE_CONT):
            return v
        n = self.cont_pmds if level == _L.PMD else self._cont_ptes
        for x in vals[i : i + n]:
            if pte_dirty(x):
                v = _pte_mkdirty(v)
            if x & PTE_AF:
                v |= PTE_AF
        return v

    # -- predicates ---------------------------------------------------------

    def pgd_none(self, v: int) -> bool:
        """``pgd_none()``: constant false unless 5 levels are in use."""
        return self._exists[_L.PGD] and not v

    def pgd_present(self, v: int) -> bool:
        return not self.pgd_none(v)

    def pgd_bad(self, v: int) -> bool:
        """``pgd_bad()``: with 5 levels, anything but a table descriptor."""
        return self._exists[_L.PGD] and (v & PMD_TYPE_MASK) != PMD_TYPE_TABLE

    def p4d_none(self, v: int) -> bool:
        """``p4d_none()``: constant false unless 4 or more levels are in use."""
        return self._exists[_L.P4D] and not v

    def p4d_present(self, v: int) -> bool:
        return not self.p4d_none(v)

    def p4d_bad(self, v: int) -> bool:
        return self._exists[_L.P4D] and (v & PMD_TYPE_MASK) != PMD_TYPE_TABLE

    def pud_none(self, v: int) -> bool:
        return self._exists[_L.PUD] and not v

    def pud_present(self, v: int) -> bool:
        return not self._exists[_L.PUD] or pte_present(v)

    def _pud_table(self, v: int) -> bool:
        # pud_table() is constant true with 64K pages or fewer than 3 levels
        if self.page_shift == 16 or self.config_levels < 3:
            return True
        return (v & PMD_TYPE_MASK) == PMD_TYPE_TABLE

    def pud_leaf(self, v: int) -> bool:
        """``pud_leaf()``: a present block; never with 64K pages (no PUD blocks there)."""
        return self.config_levels > 2 and pte_present(v) and not self._pud_table(v)

    def pud_trans_huge(self, v: int) -> bool:
        """No ``HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD`` on arm64."""
        return False

    def pud_bad(self, v: int) -> bool:
        return self._exists[_L.PUD] and (v & PMD_TYPE_MASK) != PMD_TYPE_TABLE

    def pud_pfn(self, v: int) -> int:
        """``pud_pfn()``: the output address masked to ``PUD_SIZE``."""
        mask = ~((1 << self._shift[_L.PUD]) - 1)
        return (self.pte_to_phys(v) & mask) >> self.page_shift

    def pmd_none(self, v: int) -> bool:
        return not v

    def pmd_present(self, v: int) -> bool:
        return pte_present(v)

    def pmd_leaf(self, v: int) -> bool:
        """``pmd_leaf()``: present and not a table descriptor."""
        return pte_present(v) and (v & PMD_TYPE_MASK) != PMD_TYPE_TABLE

    def pmd_trans_huge(self, v: int) -> bool:
        """``pmd_trans_huge()``: present, and no table even with ``PTE_VALID`` forced."""
        return pte_present(v) and ((v | PTE_VALID) & PMD_TYPE_MASK) != PMD_TYPE_TABLE

    def pmd_bad(self, v: int) -> bool:
        """``pmd_bad()``: not a table descriptor (blocks included)."""
        return (v & PMD_TYPE_MASK) != PMD_TYPE_TABLE

    def pmd_pfn(self, v: int) -> int:
        """``pmd_pfn()``: the output address masked to ``PMD_SIZE``."""
        mask = ~((1 << self._shift[_L.PMD]) - 1)
        return (self.pte_to_phys(v) & mask) >> self.page_shift

    def pmd_protnone(self, v: int) -> bool:
        return pte_protnone(v)

    def pmd_special(self, v: int) -> bool:
        return bool(v & PTE_SPECIAL)

    def pmd_write(self, v: int) -> bool:
        return bool(v & PTE_WRITE)

    def pmd_young(self, v: int) -> bool:
        return bool(v & PTE_AF)

    def pmd_dirty(self, v: int) -> bool:
        return pte_dirty(v)

    def pmd_soft_dirty(self, v: int) -> bool:
        return False

    def pmd_uffd_wp(self, v: int) -> bool:
        return self.uffd_wp and bool(v & PTE_UFFD_WP)

    def pte_none(self, v: int) -> bool:
        return not v

    def pte_present(self, v: int) -> bool:
        return pte_present(v)

    def pte_protnone(self, v: int) -> bool:
        return pte_protnone(v)

    def pte_pfn(self, v: int) -> int:
        return self.pte_to_phys(v) >> self.page_shift

    def pte_write(self, v: int) -> bool:
        """``pte_write()``: ``PTE_WRITE`` (the DBM bit)."""
        return bool(v & PTE_WRITE)

    def pte_young(self, v: int) -> bool:
        return bool(v & PTE_AF)

    def pte_dirty(self, v: int) -> bool:
        return pte_dirty(v)

    def pte_special(self, v: int) -> bool:
        return bool(v & PTE_SPECIAL)

    def pte_soft_dirty(self, v: int) -> bool:
        return False

    def pte_uffd_wp(self, v: int) -> bool:
        return self.uffd_wp and bool(v & PTE_UFFD_WP)

    def pte_user(self, v: int) -> bool:
        return bool(v & PTE_USER)

    def pte_exec(self, v: int) -> bool:
        """``pte_user_exec()``: ``PTE_UXN`` clear."""
        return not v & PTE_UXN

    def pte_global(self, v: int) -> bool:
        """Valid and not ``PTE_NG`` (nG is ``PTE_PRESENT_INVALID`` on an invalid entry)."""
        return bool(v & PTE_VALID) and not v & PTE_NG

    @property
    def entry_layout(self) -> EntryLayout:
        """
        The arm64 PTE as masks. Present is ``PTE_VALID`` or
        ``PTE_PRESENT_INVALID`` (a swap entry keeps both clear); the output
        address is read in place unless high PA bits sit elsewhere (bits
        [9:8] with LPA2, [15:12] with 64K and 52-bit PAs); no soft-dirty.

        >>> lay = Arm64Paging().entry_layout
        >>> hex(lay.present), hex(lay.pfn_check_mask), lay.soft_dirty
        ('0x801', '0x300', 0)
        """
        check = 0
        if self.pa_bits_52:
            if self.page_shift == 16:
                check = _64K_ADDR_HIGH
            elif self._lpa2:
                check = _LPA2_ADDR_HIGH
        uffd = self.uffd_wp
        return EntryLayout(
            page_shift=self.page_shift,
            none_mask=ULONG_MAX,
            present=PTE_VALID | PTE_PRESENT_INVALID,
            pfn_mask=self._addr_low,
            pfn_check_mask=check,
            pfn_check_value=0,
            special=PTE_SPECIAL,
            soft_dirty=0,
            uffd_wp=PTE_UFFD_WP if uffd else 0,
            swp_soft_dirty=0,
            swp_uffd_wp=PTE_SWP_UFFD_WP if uffd else 0,
            swp_exclusive=PTE_SWP_EXCLUSIVE,
            swp_type_shift=SWP_TYPE_SHIFT,
            swp_type_mask=(1 << SWP_TYPE_BITS) - 1,
            swp_offset_shift=SWP_OFFSET_SHIFT,
            swp_offset_mask=(1 << SWP_OFFSET_BITS) - 1,
            swp_offset_invert=0,
        )

    # -- swap entries ---------------------------------------------------------

    def decode_swap(self, v: int) -> SwapEntry | None:
        """
        ``pte_to_swp_entry()`` and ``softleaf_type()`` of a non-present,
        non-none PTE or PMD; ``None`` for a none or present one.

        >>> Arm64Paging().decode_swap(swp_entry_to_pte(25, 0x1234)).kind.name
        'MIGRATION_READ'
        """
        if not v or pte_present(v):
            return None
        t = (v >> SWP_TYPE_SHIFT) & ((1 << SWP_TYPE_BITS) - 1)
        return SwapEntry(
            t,
            (v >> SWP_OFFSET_SHIFT) & ((1 << SWP_OFFSET_BITS) - 1),
            swap_kind(t, self.swap_types),
            False,
            self.uffd_wp and bool(v & PTE_SWP_UFFD_WP),
            bool(v & PTE_SWP_EXCLUSIVE),
            self.max_physmem_bits - self.page_shift,
        )

    def pte_swp_soft_dirty(self, v: int) -> bool:
        return False

    def pte_swp_uffd_wp(self, v: int) -> bool:
        return self.uffd_wp and bool(v & PTE_SWP_UFFD_WP)

    def pte_swp_exclusive(self, v: int) -> bool:
        return bool(v & PTE_SWP_EXCLUSIVE)

    def pmd_swp_soft_dirty(self, v: int) -> bool:
        """No soft-dirty on arm64 (the generic stub)."""
        return False

    def pmd_swp_uffd_wp(self, v: int) -> bool:
        """``pmd_swp_uffd_wp()``: ``pte_swp_uffd_wp(pmd_pte(pmd))``."""
        return self.uffd_wp and bool(v & PTE_SWP_UFFD_WP)

    def swp_entry_to_pte(
        self,
        type: int,
        offset: int,
        *,
        soft_dirty: bool = False,
        uffd_wp: bool = False,
        exclusive: bool = False,
    ) -> int:
        """``swp_entry_to_pte()``; *soft_dirty* is ignored (no such bit on arm64)."""
        return swp_entry_to_pte(type, offset, uffd_wp=uffd_wp and self.uffd_wp, exclusive=exclusive)

    # -- constructors (the read-only emulation of splits and allocation) ------

    def pfn_pte(self, pfn: int, prot: int) -> int:
        """``pfn_pte()``."""
        return (self.phys_to_pte_val(pfn << self.page_shift) | prot) & ULONG_MAX

    def vm_get_page_prot(self, vm_flags: int) -> int:
        return vm_get_page_prot(vm_flags, lpa2=self._lpa2, epan=self.epan)

    def pte_mkwrite(self, v: int) -> int:
        """``pte_mkwrite_novma()``: ``PTE_WRITE``; a software-dirty entry becomes hardware-dirty."""
        v |= PTE_WRITE
        if v & PTE_DIRTY:
            v &= ~PTE_RDONLY
        return v

    def pte_mkold(self, v: int) -> int:
        return v & ~PTE_AF

    def pte_mkdirty(self, v: int) -> int:
        return _pte_mkdirty(v)

    def pte_mkspecial(self, v: int) -> int:
        return v | PTE_SPECIAL

    def pte_mksoft_dirty(self, v: int) -> int:
        return v

    def pte_mkuffd_wp(self, v: int) -> int:
        """``pte_mkuffd_wp()``: the bit, and ``pte_wrprotect()`` (hardware dirt kept as ``PTE_DIRTY``)."""
        if not self.uffd_wp:
            return v
        if (v & (PTE_WRITE | PTE_RDONLY)) == PTE_WRITE:
            v |= PTE_DIRTY
        return (v | PTE_UFFD_WP | PTE_RDONLY) & ~PTE_WRITE

    def set_ptes(self, addr: int, pfn: int, prot: int, nr: int) -> list[int]:
        """
        ``set_ptes()`` of a user mapping: with CONTPTE and more than one
        entry, ``contpte_set_ptes()`` marks every block whose addresses and
        PFNs are ``CONT_PTE_SIZE`` aligned contiguous.

        >>> [v >> 52 & 1 for v in Arm64Paging().set_ptes(0x10000, 0x40010, 0x703, 18)][14:]
        [1, 1, 0, 0]
        """
        prot &= ~PTE_CONT
        vals = [self.pfn_pte(pfn + n, prot) for n in range(nr)]
        if not self.contpte or nr == 1:
            return vals
        n = self._cont_ptes
        shift = self.page_shift
        for k in range(nr):
            first = k - ((addr >> shift) + k) % n
            if first >= 0 and first + n <= nr and (pfn + first) % n == 0:
                vals[k] |= PTE_CONT
        return vals

    def mk_table_entry(self, level: PageTableLevel) -> int:
        """What ``p?d_populate()`` stores for a user table at PFN 0: table, AF, PXN."""
        return PMD_TYPE_TABLE | PMD_TABLE_AF | PMD_TABLE_PXN


if TYPE_CHECKING:
    # Arm64Paging satisfies the arch seam (checked by mypy)
    _ARCH: ArchPaging = Arm64Paging()
