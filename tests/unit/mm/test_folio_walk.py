# SPDX-License-Identifier: LGPL-2.1-or-later
"""folio_walk_start() as in Linux 7.2 mm/pagewalk.c (and <= 7.0 with FW_MIGRATION)."""

from __future__ import annotations

from livewalk.arch import PageTableLevel
from livewalk.backend.synthetic import SyntheticMM
from livewalk.mm.folio_walk import (
    FW_ZEROPAGE,
    FolioWalk,
    FolioWalkLevel,
    folio_walk_end,
    folio_walk_flags,
    folio_walk_start,
)

M2 = 1 << 21
G = 1 << 30


def setup() -> tuple[SyntheticMM, object]:
    mm = SyntheticMM(levels=5)
    vma = mm.add_vma(0x400000, 0x80000000)
    mm.map_4k(0x401000, pfn=0x1234)
    mm.map_zero(0x402000)
    mm.map_migration(0x403000, 0x5555, write=True)
    mm.map_swap(0x404000, 1, 0x99)
    mm.set_pte(0x405000, 0x8000000000777267)  # special (PFN map): no normal page
    mm.map_2m(0x600000, pfn=0x40000)
    mm.map_huge_zero(0x800000)
    mm.map_1g(G, pfn=0x100000)
    return mm, vma


def test_flags_by_version() -> None:
    assert FW_ZEROPAGE == 1
    assert folio_walk_flags() == (1, None)
    assert folio_walk_flags((7, 1)) == (1, None)
    assert folio_walk_flags((6, 12)) == (2, 1)


def test_pte_level() -> None:
    mm, vma = setup()
    fw = FolioWalk()
    assert folio_walk_start(fw, vma, 0x401000, 0) == 0x1234
    assert fw.level is FolioWalkLevel.FW_LEVEL_PTE and fw.page == 0x1234 and fw.pfn == 0x1234
    assert fw.pte == mm.lookup(PageTableLevel.PTE, 0x401000)
    assert fw.ptep is not None and fw.ptep.kaddr == mm.kaddr_of(PageTableLevel.PTE, 0x401000)
    folio_walk_end(fw, vma)
    for addr in (0x400000, 0x403000, 0x404000, 0x405000):
        assert folio_walk_start(FolioWalk(), vma, addr, FW_ZEROPAGE) is None
    assert folio_walk_start(FolioWalk(), vma, 0x3FF000, 0) is None  # outside the VMA


def test_zero_page_only_with_flag() -> None:
    mm, vma = setup()
    assert folio_walk_start(FolioWalk(), vma, 0x402000, 0) is None
    fw = FolioWalk()
    zero = mm.livewalk_backend.zero_pfn
    assert folio_walk_start(fw, vma, 0x402000, FW_ZEROPAGE) == zero
    assert fw.page is None and fw.pfn == zero


def test_pmd_and_pud_leaves() -> None:
    mm, vma = setup()
    fw = FolioWalk()
    assert folio_walk_start(fw, vma, 0x600000 + 5 * 0x1000 + 0x123, 0) == 0x40000
    assert fw.level is FolioWalkLevel.FW_LEVEL_PMD and fw.page == 0x40005
    assert fw.pmd == mm.lookup(PageTableLevel.PMD, 0x600000)
    hz = mm.livewalk_backend.huge_zero_pfn
    assert folio_walk_start(FolioWalk(), vma, 0x800000, 0) is None
    fw = FolioWalk()
    assert folio_walk_start(fw, vma, 0x801000, FW_ZEROPAGE) == hz
    assert fw.page is None and fw.level is FolioWalkLevel.FW_LEVEL_PMD
    fw = FolioWalk()
    assert folio_walk_start(fw, vma, G + 3 * M2, 0) == 0x100000
    assert fw.level is FolioWalkLevel.FW_LEVEL_PUD and fw.page == 0x100000 + 3 * 512


def test_migration_before_7_1() -> None:
    mm, vma = setup()
    fz, fm = folio_walk_flags((7, 0))
    assert fm is not None
    # 7.2: BIT(0) is FW_ZEROPAGE, migration entries are never found
    assert folio_walk_start(FolioWalk(), vma, 0x403000, 1) is None
    fw = FolioWalk()
    assert folio_walk_start(fw, vma, 0x403000, fm, kernel_version=(7, 0)) == 0x5555
    assert fw.page is None and fw.pfn == 0x5555
    assert folio_walk_start(FolioWalk(), vma, 0x403000, fz, kernel_version=(7, 0)) is None
    # before 7.1 FW_ZEROPAGE was BIT(1)
    assert folio_walk_start(FolioWalk(), vma, 0x402000, fz, kernel_version=(7, 0)) is not None
    assert folio_walk_start(FolioWalk(), vma, 0x402000, 1, kernel_version=(7, 0)) is None


def test_highest_memmap_pfn() -> None:
    mm, vma = setup()
    mm.livewalk_backend.highest_memmap_pfn = 0x1000  # type: ignore[attr-defined]
    assert folio_walk_start(FolioWalk(), vma, 0x401000, 0) is None
