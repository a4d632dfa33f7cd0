# SPDX-License-Identifier: LGPL-2.1-or-later
"""ptdump of synthetic arm64 kernel tables, in the format of Linux 7.2
``arch/arm64/mm/ptdump.c``: ``note_page()`` lines ("0x...-0x...   SIZE
LEVEL" then ``dump_prot()``'s columns), the walk from
``_PAGE_OFFSET(vabits_actual)``, a level folded at boot printed as PGD, and
``ptdump_check_wx()``'s W+X and non-UXN counts and verdict. Expected lines
written from the kernel source by hand."""

from __future__ import annotations

import doctest

from livewalk.arch.arm64 import ptdump as arm64_ptdump
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.arm64.pgtable_hwdef import (
    PMD_TYPE_SECT,
    PTE_AF,
    PTE_CONT,
    PTE_PXN,
    PTE_RDONLY,
    PTE_SHARED,
    PTE_TYPE_PAGE,
    PTE_UXN,
)
from livewalk.arch.arm64.ptdump import dump_prot, wx_message
from livewalk.backend.synthetic import SyntheticMM
from livewalk.mm.ptdump import AddressMarker
from livewalk.tools.ptdump import ptdump, ptdump_json

M64 = (1 << 64) - 1
# PROT_NORMAL without the attribute index (MT_NORMAL = 0): valid, AF, SH,
# PXN and UXN; the kernel's text is ROX (no PXN), its data RW (no RDONLY).
KERNEL_RW = PTE_AF | PTE_SHARED | PTE_PXN | PTE_UXN
KERNEL_ROX = PTE_AF | PTE_SHARED | PTE_UXN | PTE_RDONLY


def test_doctests() -> None:
    res = doctest.testmod(arm64_ptdump)
    assert res.failed == 0 and res.attempted > 0


def test_dump_prot_columns() -> None:
    # pte_bits[] in order: F, USR, ro/RW, NX/x, SHD, AF, NG, CON, BLK, UXN, GP, memory type
    assert dump_prot(PTE_TYPE_PAGE | KERNEL_RW) == "       RW NX SHD AF            UXN    MEM/NORMAL"
    assert dump_prot(PMD_TYPE_SECT | KERNEL_ROX) == "       ro x  SHD AF        BLK UXN    MEM/NORMAL"
    assert dump_prot(PTE_TYPE_PAGE | PTE_CONT | KERNEL_RW | 3 << 2).endswith(" AF    CON     UXN    DEVICE/nGnRnE")
    assert dump_prot(2 | PTE_AF) == " F     RW x      AF                   MEM/NORMAL"
    assert wx_message(0, 0) == "Checked W+X mappings: passed, no W+X pages found"
    assert wx_message(3, 1) == "Checked W+X mappings: FAILED, 3 W+X pages found, 1 non-UXN pages found"


def row(start: int, end: int, size: str, rest: str) -> str:
    """A note_page() line: "0x%016lx-0x%016lx   ", "%9lu%c %s", dump_prot()."""
    return f"0x{start:016x}-0x{end:016x}   {size:>10} {rest}"


TEXT = "PMD       ro x  SHD AF        BLK UXN    MEM/NORMAL"
DATA = "PTE       RW NX SHD AF            UXN    MEM/NORMAL"
WX = "PTE       RW x  SHD AF                   MEM/NORMAL"


def _kernel_tables(paging: Arm64Paging) -> SyntheticMM:
    mm = SyntheticMM(paging=paging)
    k = mm.backend.init_mm()
    base = 0xFFFF800080000000  # the kernel image, at MODULES_END
    k.map_pmd(base, 0x40000, PTE_TYPE_PAGE | KERNEL_ROX)  # text: a 2M block, read-only executable
    k.map_page(base + (2 << 20), 0x40200, PTE_TYPE_PAGE | KERNEL_RW)  # data
    k.map_page(base + (2 << 20) + 4096, 0x40201, PTE_TYPE_PAGE | KERNEL_RW)  # coalesced
    k.map_page(base + (2 << 20) + 8192, 0x40202, PTE_TYPE_PAGE | PTE_AF | PTE_SHARED)  # W+X, non-UXN
    return mm


def test_ptdump_lpa2_5_levels() -> None:
    p = Arm64Paging(phys_offset=0)
    mm = _kernel_tables(p)
    markers = [AddressMarker(p.page_offset, "Linear Mapping start"),
               AddressMarker(0xFFFF800000000000, "Linear Mapping end"), AddressMarker(M64, "")]  # fmt: skip
    res = ptdump(mm.backend, markers=markers)
    assert res.arch == "arm64"
    assert res.lines == [
        "---[ Linear Mapping start ]---",
        row(0xFFF0000000000000, 0xFFFF000000000000, "3840T", "PGD"),
        row(0xFFFF000000000000, 0xFFFF800000000000, "128T", "P4D"),
        "---[ Linear Mapping end ]---",
        row(0xFFFF800000000000, 0xFFFF800080000000, "2G", "PUD"),
        row(0xFFFF800080000000, 0xFFFF800080200000, "2M", TEXT),
        row(0xFFFF800080200000, 0xFFFF800080202000, "8K", DATA),
        row(0xFFFF800080202000, 0xFFFF800080203000, "4K", WX),
        row(0xFFFF800080203000, 0xFFFF800080400000, "2036K", "PTE"),
        row(0xFFFF800080400000, 0xFFFF8000C0000000, "1020M", "PMD"),
        row(0xFFFF8000C0000000, 0xFFFF808000000000, "509G", "PUD"),
        row(0xFFFF808000000000, 0, "130560G", "P4D"),
    ]
    wx = ptdump(mm.backend, check_wx=True)
    # the RW+x page: W+X and non-UXN; the ROX block: UXN, read-only
    assert (wx.wx_pages, wx.uxn_pages) == (1, 1)
    assert wx.wx_verdict == "Checked W+X mappings: FAILED, 1 W+X pages found, 1 non-UXN pages found"
    assert [(r.start, r.end) for r in wx.wx_ranges] == [(0xFFFF800080202000, 0xFFFF800080203000)]
    j = ptdump_json(wx)
    assert j["arch"] == "arm64" and j["wx_pages"] == 1 and j["uxn_pages"] == 1


def test_ptdump_folded_at_boot_prints_pgd() -> None:
    """Without LPA2 the 5-level kernel folds its P4D at boot: note_page()
    prints those entries as PGD (mm_p4d_folded(init_mm)), and the walk
    starts at _PAGE_OFFSET(48)."""
    p = Arm64Paging(vabits_actual=48, phys_offset=0)
    mm = _kernel_tables(p)
    markers = [AddressMarker(p.page_offset, "Linear Mapping start"),
               AddressMarker(0xFFFF800000000000, "Linear Mapping end"), AddressMarker(M64, "")]  # fmt: skip
    res = ptdump(mm.backend, markers=markers)
    assert res.lines[:3] == [
        "---[ Linear Mapping start ]---",
        row(0xFFFF000000000000, 0xFFFF800000000000, "128T", "PGD"),
        "---[ Linear Mapping end ]---",
    ]
    assert res.lines[-1] == row(0xFFFF808000000000, 0, "130560G", "PGD")
    ok = _kernel_tables(p)
    ok.backend.init_mm().set_pte(0xFFFF800080202000, 0)
    wx = ptdump(ok.backend, check_wx=True)
    assert (wx.wx_pages, wx.uxn_pages, wx.wx_failed) == (0, 0, False)
    assert wx.wx_verdict == "Checked W+X mappings: passed, no W+X pages found"
