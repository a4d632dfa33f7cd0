# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Walker sequences that only arm64 has, on the synthetic backend; expected
values worked out by hand from Linux 7.2.13 mm/pagewalk.c and
arch/arm64/include/asm/pgtable.h, arch/arm64/mm/pgd.c and contpte.c.
"""

from __future__ import annotations

from walkrec import Rec, ptes  # noqa: E402

from livewalk.arch import PageTableLevel  # noqa: E402
from livewalk.arch.arm64.pgtable import Arm64Paging  # noqa: E402
from livewalk.arch.arm64.pgtable_hwdef import PTE_AF, PTE_CONT, PTE_RDONLY, PTE_VALID  # noqa: E402
from livewalk.arch.arm64.pgtable_prot import PTE_DIRTY  # noqa: E402
from livewalk.backend.synthetic import SyntheticMM  # noqa: E402
from livewalk.mm.pagewalk import (  # noqa: E402
    walk_kernel_page_table_range,
    walk_page_range,
    walk_page_range_debug,
)

P4D = 1 << 39


def test_boot_folded_p4d_hole_is_depth_1() -> None:
    # 52-bit kernel on a CPU without LPA2: PGDIR_SHIFT stays 48 and
    # pgd_none() is constant false, so one pgd_entry covers 256 TiB (with the
    # value of slot pgd_index() == 0 of the page); p4d_offset() indexes that
    # same page (pgd_to_folded_p4d()) and PTRS_PER_P4D stays 512, so a none
    # P4D is a hole of real_depth(1) == 1
    mm = SyntheticMM(paging=Arm64Paging(vabits_actual=48, phys_offset=0))
    mm.map_4k(P4D, pfn=5)
    top = mm.livewalk_backend._mem[mm.pgd_paddr]
    assert top[1] == mm.lookup(PageTableLevel.P4D, P4D) != 0  # level 0 is the top page
    r = Rec(("pgd_entry", "p4d_entry", "pte_hole"))
    assert walk_page_range_debug(mm, 0, 2 * P4D, r.ops, None) == 0
    assert r.log == [
        ("pgd_entry", 0, 2 * P4D),
        ("pte_hole", 0, P4D, 1),
        ("p4d_entry", P4D, 2 * P4D),
    ]
    assert r.entries[0].value == 0 and r.entries[0].kaddr == mm.pgd
    assert r.entries[-1].value == top[1] and r.entries[-1].kaddr == mm.pgd + 8
    # a kernel built for 48 bits: PTRS_PER_P4D == 1, PGDIR_SHIFT 39, and
    # the none P4D (the PGD slot itself) is a hole of depth 0
    mm = SyntheticMM(paging=Arm64Paging(va_bits=48, pa_bits_52=False, phys_offset=0))
    mm.map_4k(P4D, pfn=5)
    r = Rec(("pgd_entry", "p4d_entry", "pte_hole"))
    assert walk_page_range_debug(mm, 0, 2 * P4D, r.ops, None) == 0
    assert r.log == [
        ("pgd_entry", 0, P4D),
        ("pte_hole", 0, P4D, 0),
        ("pgd_entry", P4D, 2 * P4D),
        ("p4d_entry", P4D, 2 * P4D),
    ]


def test_pgd_smaller_than_a_page() -> None:
    # 5 levels with LPA2: PTRS_PER_PGD == 16, a 128-byte pgd_cache object;
    # pgd_offset() indexes from mm->pgd, not from its page
    mm = SyntheticMM(paging=Arm64Paging(phys_offset=0))
    mm.map_4k(0x400000, pfn=7)
    mm.map_4k(1 << 48, pfn=8)  # PGD slot 1
    be = mm.livewalk_backend
    r0 = Rec(("pgd_entry", "pte_entry"))
    assert walk_kernel_page_table_range(0, 2 << 48, r0.ops, pgd=mm.pgd, backend=be) == 0
    page = be._mem[mm.pgd_paddr]
    page[16:32] = page[0:16]
    page[0:16] = type(page)("Q", bytes(128))
    r1 = Rec(("pgd_entry", "pte_entry"))
    assert walk_kernel_page_table_range(0, 2 << 48, r1.ops, pgd=mm.pgd + 128, backend=be) == 0
    assert r1.log == r0.log and len(r0.log) == 2 + 2 * 512
    assert r1.entries[0].kaddr == mm.pgd + 128 and r1.entries[1 + 512].kaddr == mm.pgd + 136


def test_contpte_block_seen_folded_by_pte_entry() -> None:
    mm = SyntheticMM(paging=Arm64Paging(phys_offset=0))
    mm.add_vma(0x400000, 0x600000)
    clean_old = (mm.default_flags & ~(PTE_DIRTY | PTE_AF)) | PTE_RDONLY | PTE_CONT
    for n in range(16):
        mm.map_4k(0x400000 + (n << 12), 0x40000 + n, clean_old)
    dirty = mm.lookup(PageTableLevel.PTE, 0x405000)
    assert dirty is not None
    mm.set_pte(0x405000, dirty & ~PTE_RDONLY)  # DBM: written through entry 5
    young = mm.lookup(PageTableLevel.PTE, 0x409000)
    assert young is not None
    mm.set_pte(0x409000, young | PTE_AF)  # accessed through entry 9
    r = Rec(("pte_entry",))
    assert walk_page_range(mm, 0x400000, 0x412000, r.ops) == 0
    assert r.log == ptes(0x400000, 0x412000)
    assert all(e.dirty and e.accessed for e in r.entries[:16])
    assert [e.pfn for e in r.entries[:16]] == list(range(0x40000, 0x40010))
    assert all(e.none for e in r.entries[16:])
    # the table itself is unchanged: only what ptep_get() returns is folded
    assert mm.lookup(PageTableLevel.PTE, 0x400000) == 0x40000 << 12 | clean_old


def test_block_p4d_is_bad_hole() -> None:
    mm = SyntheticMM(paging=Arm64Paging(phys_offset=0))
    mm.add_vma(0, 4 * P4D)
    mm.map_4k(P4D, pfn=1)
    p4d = mm.lookup(PageTableLevel.P4D, P4D)
    assert p4d is not None
    mm.set_p4d(P4D, p4d & ~2)  # a block type at level 0: p4d_bad()
    errors: list = []
    r = Rec(("p4d_entry", "pud_entry", "pte_hole"))
    r.ops.post_vma = lambda w: errors.extend(w.errors)
    assert walk_page_range(mm, P4D, 2 * P4D, r.ops) == 0
    assert r.log == [("pte_hole", P4D, 2 * P4D, 1)]
    assert [(e.level, e.addr, e.reason) for e in errors] == [(PageTableLevel.P4D, P4D, "bad")]


def test_16k_granule_walk() -> None:
    # 16K, 48-bit VA: 4 levels, PGD of 2 entries (shift 47), P4D folded;
    # a PTE table spans 32 MiB in 2048 slots
    mm = SyntheticMM(paging=Arm64Paging(page_shift=14, va_bits=48, pa_bits_52=False, phys_offset=0))
    mm.add_vma(1 << 25, 3 << 25)
    mm.map_4k((1 << 25) + (5 << 14), pfn=0x99)
    r = Rec(("pmd_entry", "pte_entry", "pte_hole"))
    assert walk_page_range(mm, 1 << 25, 3 << 25, r.ops) == 0
    assert r.log == [
        ("pmd_entry", 1 << 25, 2 << 25),
        *[("pte_entry", a, a + (1 << 14)) for a in range(1 << 25, 2 << 25, 1 << 14)],
        ("pte_hole", 2 << 25, 3 << 25, 3),
    ]
    assert r.entries[1 + 5].pfn == 0x99 and r.entries[1 + 5].present


def test_prot_none_thp_split_to_present_invalid_contpte_ptes() -> None:
    # a PROT_NONE (or NUMA-hint) THP is present-invalid at the PMD:
    # pmd_trans_huge() forces PTE_VALID for the table test, so the walk
    # splits it; __split_huge_pmd_locked() builds mk_pte(vm_page_prot) =
    # PAGE_NONE entries and set_ptes() (contpte_set_ptes()) marks every
    # aligned block of 16 contiguous
    mm = SyntheticMM(paging=Arm64Paging(phys_offset=0))
    mm.add_vma(0x200000, 0x400000, flags=0)
    mm.map_protnone(0x200000, pfn=0x40000, level=PageTableLevel.PMD)
    pmd = mm.lookup(PageTableLevel.PMD, 0x200000)
    assert pmd is not None and not pmd & PTE_VALID
    r = Rec(("pmd_entry", "pte_entry"))
    walks: list = []
    assert walk_page_range(mm, 0x200000, 0x400000, r.ops, walks=walks) == 0
    assert r.log == [("pmd_entry", 0x200000, 0x400000), *ptes(0x200000, 0x400000)]
    assert r.entries[0].present and r.entries[0].protnone and r.entries[0].leaf
    split = r.entries[1:]
    assert [e.pfn for e in split] == list(range(0x40000, 0x40200))
    assert all(e.present and e.protnone and not e.value & PTE_VALID for e in split)
    assert all(e.value & PTE_CONT for e in split)
    assert walks[0].splits == [(PageTableLevel.PMD, 0x200000, "anon")]


def test_contpte_fold_covers_the_block_beyond_the_walked_range_16k() -> None:
    # 16K: CONT_PTES is 128. ptep_get() of any entry of a valid contiguous
    # block folds access and dirty over all 128 (contpte_ptep_get()), also
    # over entries outside [start, end) of the walk; an entry without
    # PTE_CONT next to the block is read as it is
    page = 1 << 14
    mm = SyntheticMM(paging=Arm64Paging(page_shift=14, phys_offset=0))
    base = 1 << 25  # PMD slot 1, PTE slot 0
    mm.add_vma(base, base + (1 << 25))
    clean_old = (mm.default_flags & ~(PTE_DIRTY | PTE_AF)) | PTE_RDONLY
    for n in range(129):
        mm.map_4k(base + n * page, 0x80000 + n, clean_old | (PTE_CONT if n < 128 else 0))
    v = mm.lookup(PageTableLevel.PTE, base + 100 * page)
    assert v is not None
    mm.set_pte(base + 100 * page, v | PTE_DIRTY | PTE_AF)  # entry 100 of the block
    v = mm.lookup(PageTableLevel.PTE, base + 128 * page)
    assert v is not None
    mm.set_pte(base + 128 * page, v | PTE_AF)  # outside the block
    r = Rec(("pte_entry",))
    assert walk_page_range(mm, base + 64 * page, base + 80 * page, r.ops) == 0
    assert [a for _, a, _ in r.log] == [base + n * page for n in range(64, 80)]
    assert all(e.dirty and e.accessed for e in r.entries)
    r = Rec(("pte_entry",))
    assert walk_page_range(mm, base + 127 * page, base + 130 * page, r.ops) == 0
    first, after, none = r.entries
    assert first.dirty and first.accessed
    assert after.accessed and not after.dirty and not after.value & PTE_CONT
    assert none.none
