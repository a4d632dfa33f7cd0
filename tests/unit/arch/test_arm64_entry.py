# SPDX-License-Identifier: LGPL-2.1-or-later
"""
arm64 decoding: every expected value below was worked out by hand from
Linux 7.2.13 arch/arm64/include/asm/pgtable-hwdef.h, pgtable-prot.h,
pgtable.h, pgalloc.h, memory.h, arch/arm64/mm/mmap.c and contpte.c (Debian's
linux-source-7.2 7.2.13-1), not by running the code under test.
"""

from __future__ import annotations

import doctest

import pytest

from livewalk.arch import PageTableLevel as L
from livewalk.arch.arm64 import entry_flags, pgtable, pgtable_hwdef, pgtable_prot
from livewalk.arch.arm64.pgtable import Arm64Paging, contpte_ptep_get, swp_entry_to_pte
from livewalk.arch.arm64.pgtable_hwdef import (
    PMD_TYPE_SECT,
    PTE_AF,
    PTE_CONT,
    PTE_DBM,
    PTE_NG,
    PTE_PXN,
    PTE_RDONLY,
    PTE_USER,
    PTE_UXN,
    PTE_VALID,
)
from livewalk.arch.arm64.pgtable_prot import (
    PAGE_NONE,
    PTE_DIRTY,
    PTE_PRESENT_INVALID,
    PTE_SPECIAL,
    PTE_SWP_EXCLUSIVE,
    PTE_SWP_UFFD_WP,
    PTE_UFFD_WP,
    PTE_WRITE,
    vm_get_page_prot,
)
from livewalk.arch.x86.pgtable import X86Paging
from livewalk.mm.swapops import PTE_MARKER_GUARD, SwapKind

LPA2 = Arm64Paging()  # Debian cloud-arm64 7.2 on -cpu max
NOLPA2 = Arm64Paging(vabits_actual=48)  # the same kernel on -cpu max,lpa2=off
VA48 = Arm64Paging(va_bits=48, pa_bits_52=False)  # a kernel built for 48-bit VAs
K16 = Arm64Paging(page_shift=14)  # 16K, 52-bit VA with LPA2
K64 = Arm64Paging(page_shift=16)  # 64K, 52-bit VA and PA (unit tests only: no Debian kernel)

# a user page as do_anonymous_page() leaves it (without LPA2: SH = 0b11)
ANON = 0x0703 | PTE_USER | PTE_NG | PTE_PXN | PTE_UXN | PTE_WRITE | PTE_DIRTY
# with LPA2 protection_map drops SH[1:0]: bits [9:8] hold PA[51:50]
ANON_L = ANON & ~0x300


@pytest.mark.parametrize("mod", [pgtable, pgtable_hwdef, pgtable_prot, entry_flags])
def test_doctests(mod: object) -> None:
    res = doctest.testmod(mod)  # type: ignore[arg-type]
    assert res.failed == 0 and res.attempted > 0


def test_bits_are_the_headers() -> None:
    assert (PTE_VALID, PTE_USER, PTE_RDONLY, PTE_AF, PTE_NG) == (1, 1 << 6, 1 << 7, 1 << 10, 1 << 11)
    assert (PTE_DBM, PTE_CONT, PTE_PXN, PTE_UXN) == (1 << 51, 1 << 52, 1 << 53, 1 << 54)
    assert PTE_WRITE == PTE_DBM and PTE_PRESENT_INVALID == PTE_NG
    assert (PTE_DIRTY, PTE_SPECIAL, PTE_UFFD_WP) == (1 << 55, 1 << 56, 1 << 58)
    assert (PTE_SWP_EXCLUSIVE, PTE_SWP_UFFD_WP) == (1 << 2, 1 << 3)
    # (_PAGE_DEFAULT & ~PTE_VALID) | PRESENT_INVALID | RDONLY | NG | PXN | UXN
    assert PAGE_NONE == 0x0060_0000_0000_0F82


K16_NOLPA2 = Arm64Paging(page_shift=14, vabits_actual=47)  # the 16K kernel without LPA2


@pytest.mark.parametrize(
    "paging, levels, shifts, ptrs, folded, at_boot",
    [
        (LPA2, 5, [12, 21, 30, 39, 48], [512, 512, 512, 512, 16], [False] * 5, None),
        # folded at boot: the build-time geometry stays, p4d_offset() indexes
        # the PGD's page (pgd_to_folded_p4d())
        (NOLPA2, 4, [12, 21, 30, 39, 48], [512, 512, 512, 512, 16], [False] * 5, L.P4D),
        (VA48, 4, [12, 21, 30, 39, 39], [512, 512, 512, 1, 512], [False, False, False, True, False], None),
        (K16, 4, [14, 25, 36, 47, 47], [2048, 2048, 2048, 1, 32], [False, False, False, True, False], None),
        # 16K without LPA2: pud_offset() indexes the PGD's page (p4d_to_folded_pud())
        (K16_NOLPA2, 3, [14, 25, 36, 47, 47], [2048, 2048, 2048, 1, 32],
         [False, False, False, True, False], L.PUD),
        (Arm64Paging(page_shift=14, va_bits=48, pa_bits_52=False), 4,
         [14, 25, 36, 47, 47], [2048, 2048, 2048, 1, 2], [False, False, False, True, False], None),
        (Arm64Paging(page_shift=14, va_bits=47, pa_bits_52=False), 3,
         [14, 25, 36, 36, 36], [2048, 2048, 1, 1, 2048], [False, False, True, True, False], None),
        (K64, 3, [16, 29, 42, 42, 42], [8192, 8192, 1, 1, 1024], [False, False, True, True, False], None),
        (Arm64Paging(page_shift=16, va_bits=42, pa_bits_52=False), 2,
         [16, 29, 29, 29, 29], [8192, 1, 1, 1, 8192], [False, True, True, True, False], None),
    ],
)
def test_geometry(
    paging: Arm64Paging, levels: int, shifts: list, ptrs: list, folded: list, at_boot: L | None
) -> None:
    assert paging.levels == levels
    assert [paging.level_shift(lvl) for lvl in L] == shifts
    assert [paging.ptrs_per(lvl) for lvl in L] == ptrs
    assert [paging.folded(lvl) for lvl in L] == folded
    assert [lvl for lvl in L if paging.folded_at_boot(lvl)] == ([] if at_boot is None else [at_boot])
    assert paging.pgdir_shift == shifts[L.PGD]
    # the none tests of the levels above the one folded at boot are constant false
    assert paging.pgd_none(0) == (levels == 5)
    assert paging.p4d_none(0) == (levels >= 4)


def test_page_offset_task_size_physmem() -> None:
    assert LPA2.page_offset == 0xFFF0_0000_0000_0000 and VA48.page_offset == 0xFFFF_0000_0000_0000
    assert (LPA2.task_size_max, NOLPA2.task_size_max) == (1 << 52, 1 << 48)
    # PHYS_MASK_SHIFT: 52 with LPA2 enabled, 48 when an LPA2 kernel runs without it
    assert (LPA2.max_physmem_bits, NOLPA2.max_physmem_bits, VA48.max_physmem_bits) == (52, 48, 48)
    assert K64.max_physmem_bits == 52 and not K64.lpa2_enabled
    assert (LPA2.cont_ptes, K16.cont_ptes, K64.cont_ptes) == (16, 128, 32)


def test_lpa2_output_address() -> None:
    pa = 3 << 50 | 0x12_3456_7000
    v = LPA2.pfn_pte(pa >> 12, 0)
    assert v == 0x12_3456_7000 | 0x300  # PA[51:50] in bits [9:8]
    assert LPA2.pte_pfn(v) == pa >> 12 and LPA2.table_paddr(v | 3) == pa
    # without LPA2 at run time bits [9:8] are SH[1:0] (PTE_MAYBE_SHARED), not address
    assert NOLPA2.pte_pfn(ANON | 0x12_3456_7000) == 0x123_4567
    # a 2 MiB block: pmd_pfn() masks to PMD_SIZE, PA[51:50] kept
    blk = LPA2.pfn_pte(pa >> 12, 0x0C41) | 0x1000  # stray low bit
    assert LPA2.pmd_pfn(blk) == (pa & ~((1 << 21) - 1)) >> 12


def test_64k_52bit_output_address() -> None:
    pa = 0xF_0001_2345_0000  # PA[51:48] = 0xf
    v = K64.pfn_pte(pa >> 16, 0)
    # PA[51:48] in bits [15:12]; PTE_ADDR_LOW is PA[49:16] in 7.2, so
    # __phys_to_pte_val() also leaves PA[49:48] in place (bits 48-49)
    assert v == 0x3_0001_2345_F000
    assert K64.pte_pfn(v) == pa >> 16 and K64.table_paddr(v | 3) == pa


def test_48bit_output_address() -> None:
    assert VA48.pfn_pte(0x12345, 0) == 0x1234_5000
    # bits [9:8] are SH, bits 50+ attributes: PTE_ADDR_LOW is PA[49:12]
    assert VA48.pte_pfn(ANON | 0x3_FFFF_FFFF_F000) == 0x3_FFFF_FFFF_F


def test_present_protnone_and_invalid() -> None:
    p = LPA2
    assert p.pte_present(PAGE_NONE) and p.pte_protnone(PAGE_NONE) and not p.pte_none(PAGE_NONE)
    # NUMA hint: pte_modify(pte, PAGE_NONE) keeps the PFN and PTE_DIRTY
    hint = (ANON_L & ~(PTE_VALID | PTE_USER | PTE_WRITE)) | PTE_RDONLY | PTE_PRESENT_INVALID | 0x4_2000
    assert p.pte_present(hint) and p.pte_protnone(hint) and p.pte_pfn(hint) == 0x42
    # pmd_mkinvalid() of a user block: present, not PROT_NONE (PTE_USER set)
    inval = ((ANON_L & ~2) | 0x4020_0000) & ~PTE_VALID
    assert p.pmd_present(inval) and not p.pmd_protnone(inval)
    assert p.pmd_leaf(inval) and p.pmd_trans_huge(inval)
    # a swap entry has neither VALID nor PTE_PRESENT_INVALID
    assert not p.pte_present(swp_entry_to_pte(3, 0x12345)) and p.pte_none(0)


def test_block_table_and_bad() -> None:
    p = LPA2
    table = p.mk_table_entry(L.PMD) | 0x4000_0000
    block = (ANON & ~2) | 0x4000_0000
    assert p.mk_table_entry(L.PMD) == 0x0800_0000_0000_0403  # TABLE | TABLE_AF | TABLE_PXN
    assert not p.pmd_leaf(table) and not p.pmd_bad(table)
    assert p.pmd_leaf(block) and p.pmd_trans_huge(block) and p.pmd_bad(block)
    assert block & 3 == PMD_TYPE_SECT
    assert p.pud_leaf(block) and not p.pud_trans_huge(block)  # no PUD THP on arm64
    assert not K64.pud_leaf(block)  # pud_table() is constant true with 64K pages
    assert p.p4d_bad(block) and p.pgd_bad(block) and not p.p4d_bad(table)
    # folded at boot: pgd_none() and pgd_bad() are constant false, p4d_*() real
    assert not NOLPA2.pgd_none(0) and not NOLPA2.pgd_bad(block)
    assert NOLPA2.p4d_none(0) and NOLPA2.p4d_bad(block)
    # built for 4 levels (pgtable-nop4d.h): the same
    assert not VA48.pgd_none(0) and VA48.p4d_none(0)


def test_dirty_write_young_user_global() -> None:
    p = LPA2
    clean_writable = ANON & ~PTE_DIRTY | PTE_RDONLY
    hw_dirty = ANON & ~PTE_DIRTY  # DBM cleared RDONLY
    assert not p.pte_dirty(clean_writable) and p.pte_write(clean_writable)
    assert p.pte_dirty(hw_dirty) and p.pmd_dirty(hw_dirty)
    assert p.pte_dirty(PTE_DIRTY | PTE_RDONLY | 3)
    assert p.pte_young(ANON) and not p.pte_young(ANON & ~PTE_AF)
    assert p.pte_user(ANON) and not p.pte_exec(ANON) and p.pte_exec(ANON & ~PTE_UXN)
    assert not p.pte_global(ANON) and p.pte_global(ANON & ~PTE_NG)
    assert not p.pte_global(PAGE_NONE)  # nG is PTE_PRESENT_INVALID there
    assert not p.pte_soft_dirty(~0) and not p.soft_dirty  # pagemap bit 55 stays 0
    assert p.pte_uffd_wp(PTE_UFFD_WP | 3) and not Arm64Paging(uffd_wp=False).pte_uffd_wp(PTE_UFFD_WP)


def test_constructors() -> None:
    p = LPA2
    ro = p.vm_get_page_prot(0x3)  # private RW: read-only until written (LPA2: no SH)
    assert ro == 0x0060_0000_0000_0CC3
    assert p.pte_mkwrite(p.pte_mkdirty(ro)) == 0x00E8_0000_0000_0C43
    assert p.pte_mkwrite(ro) == ro | PTE_WRITE  # clean: RDONLY stays
    # pte_mkuffd_wp() write-protects, keeping hardware dirt as PTE_DIRTY
    assert p.pte_mkuffd_wp(ANON & ~PTE_DIRTY) == (ANON & ~PTE_WRITE) | PTE_RDONLY | PTE_UFFD_WP
    assert p.pte_mkold(ANON) == ANON & ~PTE_AF and p.pte_mksoft_dirty(ANON) == ANON
    assert vm_get_page_prot(0x4) == 0x0020_0000_0000_0FC3  # PAGE_READONLY_EXEC
    assert vm_get_page_prot(0x4, epan=True) == 0x0020_0000_0000_0F83  # PAGE_EXECONLY
    assert vm_get_page_prot(0xE) == 0x0028_0000_0000_0FC3  # PAGE_SHARED_EXEC


def test_swap_layout() -> None:
    p = LPA2
    v = p.swp_entry_to_pte(3, 0x12345, uffd_wp=True, exclusive=True, soft_dirty=True)
    assert v == 3 << 6 | 0x12345 << 12 | 1 << 2 | 1 << 3  # no soft-dirty bit
    e = p.decode_swap(v)
    assert e is not None
    assert (e.type, e.offset, e.kind, e.exclusive, e.uffd_wp, e.soft_dirty) == (
        3, 0x12345, SwapKind.SWAP, True, True, False
    )
    assert p.pte_swp_exclusive(v) and p.pte_swp_uffd_wp(v) and not p.pte_swp_soft_dirty(v)
    marker = p.swp_entry_to_pte(31, PTE_MARKER_GUARD)
    assert marker == 0x47C0
    m = p.decode_swap(marker)
    assert m is not None and m.kind == SwapKind.PTE_MARKER and m.offset == PTE_MARKER_GUARD
    # the offset spans bits 12-61; bit 11 stays clear, so never present
    big = p.swp_entry_to_pte(25, (1 << 50) - 1)
    assert not big & PTE_NG and p.decode_swap(big).offset == (1 << 50) - 1  # type: ignore[union-attr]
    assert p.decode_swap(ANON) is None and p.decode_swap(PAGE_NONE) is None and p.decode_swap(0) is None


def test_contpte_fold() -> None:
    base = ANON_L & ~PTE_DIRTY | PTE_RDONLY | PTE_CONT  # clean, old below
    blk = [(base & ~PTE_AF) | (0x40000 + n) << 12 for n in range(16)]
    blk[5] &= ~PTE_RDONLY  # hardware-dirtied through entry 5
    blk[9] |= PTE_AF  # accessed through entry 9
    table = blk + [0] * (512 - 16)
    got = LPA2.ptes_get(table, 0, 20)
    assert len(got) == 20 and list(got[16:]) == [0] * 4
    for n, v in enumerate(got[:16]):
        # pte_mkdirty(): PTE_DIRTY, RDONLY cleared (writable); pte_mkyoung()
        assert v == (blk[n] | PTE_DIRTY | PTE_AF) & ~PTE_RDONLY
        assert LPA2.pte_pfn(v) == 0x40000 + n
    assert list(Arm64Paging(contpte=False).ptes_get(table, 0, 16)) == blk
    # an invalid entry with PTE_CONT is returned as stored
    assert contpte_ptep_get([blk[0] & ~PTE_VALID] + blk[1:], 0, 16) == blk[0] & ~PTE_VALID
    # the 16K granule folds blocks of 128
    assert K16.ptes_get([base] * 127 + [base | PTE_AF], 3, 1)[0] == base | PTE_AF


def test_va_pa() -> None:
    # the image linked at KIMAGE_VADDR (_PAGE_END(48) + 2 GiB) and loaded at 1 GiB
    p = Arm64Paging(phys_offset=0x4000_0000, kimage_voffset=0xFFFF_8000_4000_0000)
    assert p.va(0x4000_1000) == 0xFFF0_0000_0000_1000
    assert p.pa(0xFFF0_0000_0000_1000) == 0x4000_1000
    # swapper_pg_dir is in the kernel image: __pa_symbol() through kimage_voffset
    assert p.pa(0xFFFF_8000_8220_0000) == 0x4220_0000
    # a 52-bit kernel on 48 bits: memstart_addr moved down so PAGE_OFFSET arithmetic lands at 0xffff...
    q = Arm64Paging(vabits_actual=48, phys_offset=0x4000_0000 - ((1 << 52) - (1 << 48)))
    assert q.va(0x4000_0000) == 0xFFFF_0000_0000_0000 and q.pa(0xFFFF_0000_0000_0000) == 0x4000_0000
    # x86: the kernel image through phys_base, the rest through the direct map
    x = X86Paging(levels=4, page_offset=0xFFFF_8880_0000_0000, phys_base=0x100_0000)
    assert x.pa(0xFFFF_FFFF_8200_1000) == 0x300_1000 and x.pa(0xFFFF_8880_0000_5000) == 0x5000


def test_ptes_get_is_contpte_ptep_get_of_each_entry() -> None:
    # the batched fold of ptes_get() against contpte_ptep_get() one entry at
    # a time, over random tables of valid, invalid, contiguous, young, dirty
    # (software or DBM) entries and random windows
    import random

    rng = random.Random(7)
    for paging in (LPA2, K16, K64):
        n = paging.cont_ptes
        ptrs = paging.ptrs_per(L.PTE)
        for _ in range(200):
            vals = []
            for _ in range(ptrs):
                v = rng.choice((0, 0x40000000000F03, 0x40000000000B03 | PTE_RDONLY, 0x0060_0000_0000_0F82))
                if rng.random() < 0.7:
                    v |= PTE_CONT
                if rng.random() < 0.05:
                    v |= PTE_DIRTY
                if rng.random() < 0.05:
                    v &= ~PTE_AF
                vals.append(v)
            start = rng.randrange(ptrs)
            count = rng.randrange(1, ptrs - start + 1)
            want = [contpte_ptep_get(vals, i, n) for i in range(start, start + count)]
            assert list(paging.ptes_get(vals, start, count)) == want


def test_entry_flag_names_for_vtop() -> None:
    from livewalk.arch.arm64.entry_flags import decode_entry_flags

    # without LPA2 bits [9:8] are shareability; a 4K PMD block; device memory
    blk = 0x0060000040000F01 | 3 << 2
    assert decode_entry_flags(blk, L.PMD, NOLPA2) == ["BLOCK", "SHD", "AF", "NG", "PXN", "UXN", "MT_DEVICE_nGnRnE"]
    assert "PA[51:50]" in decode_entry_flags(blk, L.PMD, LPA2)
    # a clean writable page (DBM: RDONLY still set) is not dirty; the hardware clearing RDONLY makes it so
    clean = ANON_L & ~PTE_DIRTY | PTE_RDONLY
    assert "DIRTY" not in decode_entry_flags(clean, L.PTE, LPA2)
    assert "DIRTY" in decode_entry_flags(clean & ~PTE_RDONLY, L.PTE, LPA2)
    assert decode_entry_flags(swp_entry_to_pte(2, 7, uffd_wp=True), L.PTE, LPA2) == [
        "NOT_PRESENT(swap format)", "SWP_UFFD_WP", "type=2", "offset=0x7"]
