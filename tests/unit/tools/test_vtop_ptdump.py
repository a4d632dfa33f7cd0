# SPDX-License-Identifier: LGPL-2.1-or-later
"""vtop, ptdump and the progress line on synthetic page tables (no kernel).

Expected values come from the kernel's rules: the x86 bit definitions
(``arch/x86/include/asm/pgtable_types.h``), ``printk_prot()`` and
``note_page()`` of ``arch/x86/mm/dump_pagetables.c``, the swap-entry layout
of ``pgtable_64.h`` and the folding of P4D with 4-level paging."""

from __future__ import annotations

import io

import pytest

from livewalk.arch import PageTableLevel
from livewalk.arch.x86.dump_pagetables import format_prot, ptdump_ranges
from livewalk.arch.x86.pgtable import X86Paging
from livewalk.backend.synthetic import SyntheticMM
from livewalk.mm.ptdump import AddressMarker
from livewalk.progress import Progress, format_bytes
from livewalk.tools.ptdump import ptdump
from livewalk.tools.vtop import _vtop_kernel, decode_pte_flags, format_vtop, vtop, vtop_json

M64 = (1 << 64) - 1
PTE, PMD, PUD = PageTableLevel.PTE, PageTableLevel.PMD, PageTableLevel.PUD


# --- flag decoding -------------------------------------------------------------


def test_decode_pte_flags() -> None:
    # P RW USER A D + NX: a writable user page.
    assert decode_pte_flags(0x8000000012345067, PTE) == [
        "PRESENT", "RW", "USER", "ACCESSED", "DIRTY", "NX"]
    # Bit 7 is PAT in a PTE, PSE in a PMD; bit 12 is PAT_LARGE only in a leaf PMD.
    assert "PAT" in decode_pte_flags(0x81, PTE) and "PSE" not in decode_pte_flags(0x81, PTE)
    assert decode_pte_flags(0x1081, PMD) == ["PRESENT", "PSE", "PAT_LARGE"]
    assert "PAT_LARGE" not in decode_pte_flags(0x1001, PMD)
    # Not present with bit 8: PROTNONE (bit 8 is GLOBAL only when present).
    assert decode_pte_flags(0x100 | 0x20, PTE) == ["PROTNONE", "ACCESSED"]
    assert decode_pte_flags(0x101, PTE) == ["PRESENT", "GLOBAL"]
    # Swap format: bits 1-3 are SWP_SOFT_DIRTY, SWP_UFFD_WP, SWP_EXCLUSIVE.
    assert decode_pte_flags(0x7FFFFFFFFFFFFC0A, PTE) == [
        "NOT_PRESENT(swap format)", "SWP_SOFT_DIRTY", "SWP_EXCLUSIVE"]
    assert decode_pte_flags(0, PTE) == []
    # Software bits and protection keys.
    assert decode_pte_flags(0x201 | 0x400 | 0x800 | (3 << 59), PTE) == [
        "PRESENT", "SPECIAL", "UFFD_WP", "SOFT_DIRTY", "PKEY=3"]


# --- vtop -------------------------------------------------------------------------


@pytest.fixture(params=[4, 5], ids=["l4", "l5"])
def mm(request: pytest.FixtureRequest) -> SyntheticMM:
    m = SyntheticMM(levels=request.param)
    m.add_vma(0x7F0000000000, 0x7F0040400000)
    m.map_4k(0x7F0000001000, pfn=0x1234)
    m.map_2m(0x7F0000200000, pfn=0x40000)
    m.map_swap(0x7F0000002000, type=3, offset=0x55)
    m.map_protnone(0x7F0000003000, pfn=0x777)
    m.map_marker(0x7F0000005000)
    m.add_vma(0x7F0080000000, 0x7F00C0000000)
    m.map_1g(0x7F0080000000, pfn=0x200000)
    m.add_vma(0x7F0100000000, 0x7F0100400000, hugetlb_shift=21)
    m.map_2m(0x7F0100200000, pfn=0x80000)
    return m


def levels_of(r: object) -> list[str]:
    return [s["level"] for s in vtop_json(r)["steps"]]  # type: ignore[arg-type]


def test_vtop_4k(mm: SyntheticMM) -> None:
    r = vtop(mm, 0x7F0000001123)
    assert r.state == "present" and r.phys == 0x1234123 and r.pfn == 0x1234
    assert r.leaf_level == PTE and r.leaf_size == 4096 and not r.hugetlb
    full = ["PGD", "P4D", "PUD", "PMD", "PTE"] if mm.paging.levels == 5 else ["PGD", "PUD", "PMD", "PTE"]
    assert levels_of(r) == full
    # Each step is the slot the kernel's p?d_offset() would read.
    for s in r.steps:
        assert s.value == mm.lookup(s.level, 0x7F0000001123), s
    assert r.steps[-1].kaddr == mm.kaddr_of(PTE, 0x7F0000001000)
    assert r.steps[-1].index == 1
    assert r.vma is not None and r.vma.vm_start == 0x7F0000000000
    text = format_vtop(r)
    assert "1234123" in text and "4 KiB PTE leaf" in text
    if mm.paging.levels == 4:
        assert "P4D folded into PGD" in text and "  P4D:" not in text
    else:
        assert "5-level paging" in text and "  P4D:" in text


def test_vtop_huge_leaves(mm: SyntheticMM) -> None:
    r = vtop(mm, 0x7F0000234567)
    assert (r.state, r.leaf_level, r.leaf_size) == ("present", PMD, 2 << 20)
    assert r.phys == (0x40000 << 12) + 0x34567
    assert levels_of(r)[-1] == "PMD"
    r = vtop(mm, 0x7F0080012345)
    assert (r.state, r.leaf_level, r.leaf_size) == ("present", PUD, 1 << 30)
    assert r.phys == (0x200000 << 12) + 0x12345
    r = vtop(mm, 0x7F0100200010)
    assert r.hugetlb and r.state == "present" and r.leaf_size == 2 << 20
    assert r.phys == (0x80000 << 12) + 0x10
    # The upper levels of a hugetlb mapping are listed too.
    assert levels_of(r)[0] == "PGD" and levels_of(r)[-1] == "PMD"


def test_vtop_not_present(mm: SyntheticMM) -> None:
    r = vtop(mm, 0x7F0000002000)
    assert r.state == "swap" and r.phys is None
    assert (r.swap.type, r.swap.offset) == (3, 0x55)
    r = vtop(mm, 0x7F0000003000)
    # PROT_NONE: present for the kernel, PFN stored inverted (L1TF).
    assert r.state == "protnone" and r.pfn == 0x777 and r.phys == 0x777000
    r = vtop(mm, 0x7F0000005000)
    assert r.state == "marker" and r.swap.guard
    r = vtop(mm, 0x7F0000004000)
    assert r.state == "none" and r.steps[-1].level == PTE and r.steps[-1].value == 0
    r = vtop(mm, 0x7F0000600000)  # no PMD table there: a pte_hole at depth 3
    assert r.state == "none" and r.hole_depth == 3 and r.steps[-1].none
    assert r.leaf_level == PMD and r.leaf_size == 2 << 20
    r = vtop(mm, 0x1000)  # in no VMA
    assert r.state == "no_vma" and r.vma is None and r.hole_depth is not None
    r = vtop(mm, 0x7F0100000000)  # hugetlb VMA, nothing mapped
    assert r.state in ("none",) and r.phys is None


@pytest.mark.parametrize("version", [(7, 2), (6, 1, 176)])
def test_vtop_hugetlb_upper_levels_by_version(version: tuple[int, ...]) -> None:
    # The VMA-less second walk: walk_page_range_debug(), or before 6.12.105
    # walk_page_range_novma(); the levels shown are the same.
    m = SyntheticMM(levels=4, version=version)
    m.add_vma(0x7F0100000000, 0x7F0100400000, hugetlb_shift=21)
    m.map_2m(0x7F0100200000, pfn=0x80000)
    r = vtop(m, 0x7F0100200010)
    assert r.hugetlb and r.phys == (0x80000 << 12) + 0x10
    assert levels_of(r) == ["PGD", "PUD", "PMD"]


def test_vtop_kernel(mm: SyntheticMM) -> None:
    k = mm.backend.init_mm()
    k.map_2m(0xFFFFFFFF81000000, pfn=0x1000, flags=0x163)
    k.map_4k(0xFFFFFFFF81200000, pfn=0x1200, flags=0x8000000000000163)
    r = _vtop_kernel(mm.backend, 0xFFFFFFFF81001234)
    assert r.kernel and r.state == "present" and r.phys == 0x1001234 and r.leaf_size == 2 << 20
    r = _vtop_kernel(mm.backend, 0xFFFFFFFF81200008)
    assert r.phys == 0x1200008 and "NX" in decode_pte_flags(r.steps[-1].value, PTE)
    from livewalk.errors import AddressError

    with pytest.raises(AddressError):
        _vtop_kernel(mm.backend, 0x7F0000000000)
    with pytest.raises(AddressError):
        vtop(mm, 0xFFFFFFFF81000000)


# --- ptdump -----------------------------------------------------------------------


def test_format_prot() -> None:
    # printk_prot(): fixed-width columns, then the level name.
    assert format_prot(0, 4) == " " * 30 + "pte"
    assert format_prot(0x8000000000000163, 4) == "    RW                 GLB NX pte"
    assert format_prot(0x1E1, 3) == "    ro         PSE     GLB x  pmd"
    assert format_prot(0x1E1 | 0x1000, 3) == "    ro         PSE PAT GLB x  pmd"
    assert format_prot(0x87, 4) == "USR RW             PAT     x  pte"
    assert format_prot(0x1F, 2) == "USR RW PWT PCD             x  pud"


def test_ptdump_ranges() -> None:
    assert ptdump_ranges(X86Paging(levels=4)) == [(0, 1 << 47), (0xFFFF880000000000, M64)]
    assert ptdump_ranges(X86Paging(levels=5)) == [(0, 1 << 56), (0xFF10000000000000, M64)]


@pytest.mark.parametrize("version", [(7, 2), (6, 12, 117), (6, 1, 176)])
def test_ptdump_synthetic_4level(version: tuple[int, ...]) -> None:
    # 6.1 walks through walk_page_range_novma(), later kernels through
    # walk_kernel_page_table_range(): the same ranges either way.
    mm = SyntheticMM(levels=4, version=version)
    k = mm.backend.init_mm()
    k.map_2m(0xFFFFFFFF81000000, pfn=0x1000, flags=0x163)                 # RW x: W+X
    k.map_2m(0xFFFFFFFF81200000, pfn=0x1200, flags=0x161)                 # ro x
    k.map_4k(0xFFFFFFFF81400000, pfn=0x1400, flags=0x8000000000000163)    # RW NX
    k.map_4k(0xFFFFFFFF81401000, pfn=0x1401, flags=0x8000000000000163)    # same: coalesced
    markers = [AddressMarker(0, "User Space"), AddressMarker(1 << 63, "Kernel Space"),
               AddressMarker(0xFFFFFFFF80000000, "High Kernel Mapping"), AddressMarker(M64, "")]
    res = ptdump(mm.backend, markers=markers, check_wx=True)
    assert res.lines == [
        "---[ User Space ]---",
        "0x0000000000000000-0xffff880000000000    16777096T                               pgd",
        "---[ Kernel Space ]---",
        "0xffff880000000000-0xffffff8000000000      122368G                               pgd",
        "0xffffff8000000000-0xffffffff80000000         510G                               pud",
        "---[ High Kernel Mapping ]---",
        "0xffffffff80000000-0xffffffff81000000          16M                               pmd",
        "0xffffffff81000000-0xffffffff81200000           2M     RW         PSE     GLB x  pmd",
        "0xffffffff81200000-0xffffffff81400000           2M     ro         PSE     GLB x  pmd",
        "0xffffffff81400000-0xffffffff81402000           8K     RW                 GLB NX pte",
        "0xffffffff81402000-0xffffffff81600000        2040K                               pte",
        "0xffffffff81600000-0xffffffffc0000000        1002M                               pmd",
        "0xffffffffc0000000-0x0000000000000000           1G                               pud",
    ]
    # check_wx: the 2 MiB RW+X range, 512 pages (the table entries above are
    # RW and USER-less, so the effective permissions are the leaf's).
    assert res.wx_pages == 512
    assert [(r.start, r.end) for r in res.wx_ranges] == [(0xFFFFFFFF81000000, 0xFFFFFFFF81200000)]


def test_ptdump_marker_max_lines() -> None:
    # ESPfix-style marker with max_lines: extra lines become "... skipped ...".
    mm = SyntheticMM(levels=4)
    k = mm.backend.init_mm()
    base = 0xFFFFFF0000000000
    for i in range(4):
        k.map_4k(base + 2 * i * 4096, pfn=0x10 + i, flags=0x8000000000000163)
    # A mapping in the next area, so that a note_page() call crosses its
    # marker (markers are printed only then).
    k.map_2m(0xFFFFFFFF81000000, pfn=0x1000, flags=0x161)
    markers = [AddressMarker(0, "User Space"), AddressMarker(1 << 63, "Kernel Space"),
               AddressMarker(base, "ESPfix Area", 3), AddressMarker(0xFFFFFFFF80000000, "High"),
               AddressMarker(M64, "")]
    res = ptdump(mm.backend, markers=markers)
    i = res.lines.index("---[ ESPfix Area ]---")
    j = res.lines.index("---[ High ]---")
    assert len(res.lines[i + 1 : j]) == 4
    assert res.lines[j - 1].startswith("... ") and "entries skipped" in res.lines[j - 1]


# --- progress -------------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_quiet_when_not_a_tty() -> None:
    s = io.StringIO()
    with Progress("pagemap", stream=s) as p:
        p.update(add_vmas=3, add_bytes=1 << 20, force=True)
    assert s.getvalue() == ""


def test_progress_on_a_tty_is_throttled_and_erased() -> None:
    s = _Tty()
    with Progress("pagemap", stream=s, total_bytes=4 << 20) as p:
        p.update(add_vmas=1, add_bytes=1 << 20)
        for _ in range(1000):
            p.update(add_bytes=1)  # within the interval: no redraw
        first = s.getvalue()
        assert first.count("\r") == 1 and "pagemap: 1 VMAs, 1.0 MiB of 4.0 MiB (25%)" in first
        p.update(force=True)
        assert s.getvalue().count("\r") == 2
    assert s.getvalue().endswith("\r\x1b[K")
    assert "\n" not in s.getvalue()


def test_format_bytes() -> None:
    assert format_bytes(0) == "0 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(5 << 30) == "5.0 GiB"
