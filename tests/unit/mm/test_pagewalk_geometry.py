# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The walker over every page-table geometry the kernel builds: x86_64 with 4
and 5 levels, arm64 with the 4K granule (3, 4 and 5 levels, and a 5-level
kernel folded to 4 at boot), 16K (3 and 4 levels, and a 52-bit kernel
folded to 3 at boot) and 64K (2 and 3 levels; unit tests only, Debian has
no 64K kernel).

The geometry of each case is written out by hand from Linux 7.2.13
arch/arm64/include/asm/pgtable-hwdef.h (``ARM64_HW_PGTABLE_LEVEL_SHIFT``,
``PTRS_PER_PGD``), arch/arm64/include/asm/pgtable.h (``pgtable_l4_enabled()``,
``pgtable_l5_enabled()``, ``pgd_to_folded_p4d()``, ``p4d_to_folded_pud()``),
asm-generic/pgtable-nop4d.h, -nopud.h, -nopmd.h and arch/x86; the expected
callbacks follow mm/pagewalk.c (``real_depth()``, folded ``p?d_addr_end()``
returning ``end``), not the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from walkrec import Rec

from livewalk.arch import ULONG_MAX, ArchPaging
from livewalk.arch import PageTableLevel as L
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.arm64.pgtable_hwdef import PMD_SECT_CONT, PTE_AF, PTE_CONT, PTE_RDONLY
from livewalk.arch.arm64.pgtable_prot import PTE_DIRTY
from livewalk.arch.x86.pgtable import X86Paging
from livewalk.backend.synthetic import SyntheticMM
from livewalk.mm.folio_walk import FolioWalk, folio_walk_start
from livewalk.mm.pagewalk import (
    MMWalkOps,
    walk_page_range,
    walk_page_range_debug,
    walk_page_range_mm_unsafe,
)

T = 1 << 40


@dataclass(frozen=True)
class Geometry:
    """
    One configuration. *holes* lists, for every level whose none test is
    real, the span of one of its entries and the depth ``real_depth()``
    gives its hole, from the PMD up. *kaddr_levels*: which callbacks'
    entries are the PGD slot itself (folded at build time).
    """

    name: str
    paging: ArchPaging
    page: int
    holes: tuple[tuple[int, int], ...]
    folded_into_pgd: tuple[L, ...]  # these levels' entries are the PGD slot (build-time fold)
    boot_folded: L | None = None


def _a64(**kw: int | bool) -> Arm64Paging:
    return Arm64Paging(phys_offset=0, **kw)  # type: ignore[arg-type]


GEOMETRIES = [
    Geometry("x86-4", X86Paging(levels=4), 1 << 12, ((1 << 21, 3), (1 << 30, 2), (1 << 39, 0)), (L.P4D,)),
    Geometry("x86-5", X86Paging(levels=5), 1 << 12, ((1 << 21, 3), (1 << 30, 2), (1 << 39, 1), (1 << 48, 0)), ()),
    # 4K, 39-bit: 3 levels, PUD and P4D folded into the PGD (PGDIR_SHIFT 30)
    Geometry("arm64-4k-39", _a64(va_bits=39, pa_bits_52=False), 1 << 12,
             ((1 << 21, 3), (1 << 30, 0)), (L.P4D, L.PUD)),
    Geometry("arm64-4k-48", _a64(va_bits=48, pa_bits_52=False), 1 << 12,
             ((1 << 21, 3), (1 << 30, 2), (1 << 39, 0)), (L.P4D,)),
    Geometry("arm64-4k-52", _a64(), 1 << 12, ((1 << 21, 3), (1 << 30, 2), (1 << 39, 1), (1 << 48, 0)), ()),
    # the same kernel without LPA2: pgd_none() is constant false, no PGD holes
    Geometry("arm64-4k-52-nolpa2", _a64(vabits_actual=48), 1 << 12,
             ((1 << 21, 3), (1 << 30, 2), (1 << 39, 1)), (), L.P4D),
    Geometry("arm64-16k-47", _a64(page_shift=14, va_bits=47, pa_bits_52=False), 1 << 14,
             ((1 << 25, 3), (1 << 36, 0)), (L.P4D, L.PUD)),
    Geometry("arm64-16k-48", _a64(page_shift=14, va_bits=48, pa_bits_52=False), 1 << 14,
             ((1 << 25, 3), (1 << 36, 2), (1 << 47, 0)), (L.P4D,)),
    Geometry("arm64-16k-52", _a64(page_shift=14), 1 << 14,
             ((1 << 25, 3), (1 << 36, 2), (1 << 47, 0)), (L.P4D,)),
    # 16K LPA2 kernel without LPA2: PTRS_PER_PUD stays 2048 (depth 2) and
    # p4d_none() is constant false
    Geometry("arm64-16k-52-nolpa2", _a64(page_shift=14, vabits_actual=47), 1 << 14,
             ((1 << 25, 3), (1 << 36, 2)), (L.P4D,), L.PUD),
    # 64K, 42-bit: 2 levels, PMD, PUD, P4D all folded into the PGD
    Geometry("arm64-64k-42", _a64(page_shift=16, va_bits=42, pa_bits_52=False), 1 << 16,
             ((1 << 29, 0),), (L.P4D, L.PUD, L.PMD)),
    Geometry("arm64-64k-48", _a64(page_shift=16, va_bits=48, pa_bits_52=False), 1 << 16,
             ((1 << 29, 3), (1 << 42, 0)), (L.P4D, L.PUD)),
    Geometry("arm64-64k-52", _a64(page_shift=16), 1 << 16, ((1 << 29, 3), (1 << 42, 0)), (L.P4D, L.PUD)),
]


@pytest.fixture(params=GEOMETRIES, ids=[g.name for g in GEOMETRIES])
def geo(request: pytest.FixtureRequest) -> Geometry:
    return request.param  # type: ignore[no-any-return]


def _ptes(start: int, end: int, page: int) -> list[tuple[str, int, int]]:
    return [("pte_entry", a, a + page) for a in range(start, end, page)]


def test_geometry_is_the_kernels(geo: Geometry) -> None:
    p = geo.paging
    assert p.page_size == geo.page
    assert p.ptrs_per(L.PTE) == geo.page // 8  # a table is one page of 8-byte entries
    assert [lvl for lvl in L if p.folded(lvl)] == sorted(geo.folded_into_pgd)
    assert [lvl for lvl in L if p.folded_at_boot(lvl)] == ([geo.boot_folded] if geo.boot_folded else [])
    assert p.level_shift(L.PMD) == p.page_shift + p.page_shift - 3 or L.PMD in geo.folded_into_pgd


def test_every_callback_once_per_level(geo: Geometry) -> None:
    # walk_pgd_range() calls pgd_entry, and every level below calls its
    # callback once for its slot, folded or not (a folded level's loop runs
    # once with p?d_addr_end() == end and the parent's entry)
    page = geo.page
    base = 4 * geo.holes[0][0]  # PMD slot 4 (PGD slot 4 with 2 levels)
    mm = SyntheticMM(paging=geo.paging)
    vma = mm.add_vma(base, base + 3 * page)
    mm.map_page(base + page, pfn=0x1234)
    r = Rec(("pgd_entry", "p4d_entry", "pud_entry", "pmd_entry", "pte_entry", "pte_hole"))
    assert walk_page_range(mm, vma.vm_start, vma.vm_end, r.ops) == 0
    assert r.log == [
        ("pgd_entry", base, base + 3 * page),
        ("p4d_entry", base, base + 3 * page),
        ("pud_entry", base, base + 3 * page),
        ("pmd_entry", base, base + 3 * page),
        *_ptes(base, base + 3 * page, page),
    ]
    pgd, p4d, pud, pmd = r.entries[:4]
    assert [e.level for e in r.entries[:4]] == [L.PGD, L.P4D, L.PUD, L.PMD]
    p = geo.paging
    # the PGD entry: slot pgd_index() of mm->pgd (with a boot fold its value
    # is the hardware entry of that slot)
    pgd_index = (base >> p.pgdir_shift) & (p.ptrs_per(L.PGD) - 1)
    assert pgd.kaddr == mm.pgd + 8 * pgd_index
    for e, lvl in ((p4d, L.P4D), (pud, L.PUD), (pmd, L.PMD)):
        if lvl in geo.folded_into_pgd:
            # p?d_offset() returned the PGD slot itself
            assert (e.kaddr, e.value) == (pgd.kaddr, pgd.value)
        elif lvl == geo.boot_folded:
            # the PGD's page, slot p?d_index(base) == 0 == pgd_index(base)
            assert e.kaddr == mm.kaddr_of(lvl, base) == pgd.kaddr
        else:
            assert e.kaddr == mm.kaddr_of(lvl, base) and e.kaddr != pgd.kaddr
    if geo.boot_folded is not None:
        # p4d_offset()/pud_offset() indexed the PGD's own page
        folded = p4d if geo.boot_folded == L.P4D else pud
        assert folded.kaddr & ~(geo.page - 1) == mm.pgd
    assert pmd.pte_table() is not None
    e0, e1, e2 = r.entries[4:7]
    assert e0.none and e1.present and e1.pfn == 0x1234 and e2.none
    assert e1.kaddr == mm.kaddr_of(L.PTE, base + page) == e0.kaddr + 8


def test_holes_at_every_real_level(geo: Geometry) -> None:
    # a none entry at each level whose none test is real: one pte_hole of
    # the entry's span, at real_depth() of that level; then the next slot's
    # PTE table, every one of its slots
    page = geo.page
    ptes_per_table = page // 8
    for span, depth in geo.holes:
        mm = SyntheticMM(paging=geo.paging)
        mm.map_page(span, pfn=7)
        r = Rec(("pte_entry", "pte_hole"))
        pmd_span = geo.holes[0][0]
        assert walk_page_range_debug(mm, 0, span + pmd_span, r.ops, None) == 0
        assert r.log[0] == ("pte_hole", 0, span, depth), span
        assert r.log[1:] == _ptes(span, span + pmd_span, page)
        assert len(r.log) == 1 + ptes_per_table
        assert r.entries[1].pfn == 7 and all(e.none for e in r.entries[2:])


#: Where pgd_none() is constant false: every configuration but 5 levels at run time.
FOLDED_TOP = [g for g in GEOMETRIES if not g.paging.pgd_none(0)]


@pytest.mark.parametrize("geo", FOLDED_TOP, ids=[g.name for g in FOLDED_TOP])
def test_folded_top_levels_see_every_slot(geo: Geometry) -> None:
    # pgd_entry is called for a slot with nothing under it; its P4D (or the
    # level whose none test is real) then reports the hole
    assert len(FOLDED_TOP) < len(GEOMETRIES)
    mm = SyntheticMM(paging=geo.paging)
    span = geo.holes[-1][0]  # the top level with a real none test
    r = Rec(("pgd_entry", "pmd_entry", "pte_hole"))  # a lower callback: walk_pgd_range descends
    assert walk_page_range_debug(mm, 0, span, r.ops, None) == 0
    assert r.log == [("pgd_entry", 0, min(span, 1 << geo.paging.pgdir_shift)), ("pte_hole", 0, span, geo.holes[-1][1])]
    assert r.entries[0].value == 0 and not r.entries[0].none  # pgd_none() is constant false


def test_anon_thp_split(geo: Geometry) -> None:
    # split_huge_pmd() of an anonymous PMD leaf: PTRS_PER_PTE PTEs with
    # consecutive PFNs; arm64 set_ptes() marks each CONT_PTE block contiguous
    p = geo.paging
    pmd_span = geo.holes[0][0]
    npte = geo.page // 8
    mm = SyntheticMM(paging=p)
    mm.add_vma(pmd_span, 2 * pmd_span)
    mm.map_pmd(pmd_span, pfn=npte * 3)
    r = Rec(("pmd_entry", "pte_entry"))
    walks: list = []
    assert walk_page_range(mm, pmd_span, 2 * pmd_span, r.ops, walks=walks) == 0
    assert r.log[0] == ("pmd_entry", pmd_span, 2 * pmd_span) and r.entries[0].leaf
    assert r.log[1:] == _ptes(pmd_span, 2 * pmd_span, geo.page)
    assert [e.pfn for e in r.entries[1:]] == list(range(npte * 3, npte * 4))
    assert all(e.present and e.rw and e.dirty and e.accessed and e.kaddr is None for e in r.entries[1:])
    assert walks[0].splits == [(L.PMD, pmd_span, "anon")]
    if isinstance(p, Arm64Paging):
        assert all(e.value & PTE_CONT for e in r.entries[1:])


def test_folio_walk(geo: Geometry) -> None:
    page = geo.page
    base = 4 * geo.holes[0][0]
    mm = SyntheticMM(paging=geo.paging)
    vma = mm.add_vma(base, base + 4 * page)
    mm.map_page(base + 2 * page, pfn=0x777)
    fw = FolioWalk()
    assert folio_walk_start(fw, vma, base + 2 * page, 0) == 0x777
    assert fw.ptep is not None and fw.ptep.kaddr == mm.kaddr_of(L.PTE, base + 2 * page)
    assert folio_walk_start(FolioWalk(), vma, base + page, 0) is None


# -- arm64 only ----------------------------------------------------------------

ARM64_4K_16K = [g for g in GEOMETRIES if g.name in ("arm64-4k-52", "arm64-4k-52-nolpa2", "arm64-16k-52-nolpa2", "arm64-16k-48")]


@pytest.mark.parametrize("g", ARM64_4K_16K, ids=[g.name for g in ARM64_4K_16K])
def test_hugetlb_pmd_cont_pmd_cont_pte(g: Geometry) -> None:
    # arm64 huge_pte_offset(): a PMD_SIZE page is its PMD, a CONT_PMD_SIZE
    # page the first PMD of its block, a CONT_PTE_SIZE page the first PTE of
    # its block; huge_ptep_get() folds young and dirty over the block
    p = g.paging
    assert isinstance(p, Arm64Paging)
    pmd_shift = p.level_shift(L.PMD)
    cont_pmd_shift = pmd_shift + (p.cont_pmds - 1).bit_length()
    cont_pte_shift = p.page_shift + (p.cont_ptes - 1).bit_length()
    assert (1 << cont_pte_shift, 1 << pmd_shift, 1 << cont_pmd_shift) == {
        12: (64 << 10, 2 << 20, 32 << 20),
        14: (2 << 20, 32 << 20, 1 << 30),
    }[p.page_shift]
    mm = SyntheticMM(paging=p)
    base = 1 << (cont_pmd_shift + 1)
    clean = (mm.default_flags & ~(PTE_DIRTY | PTE_AF)) | PTE_RDONLY
    # PMD_SIZE: two pages, the second slot none
    pmd_vma = mm.add_vma(base, base + (2 << pmd_shift), hugetlb_shift=pmd_shift)
    mm.map_pmd(base, pfn=0x10000)
    # CONT_PMD_SIZE: one page of CONT_PMDS block entries, one of them young
    cbase = base + (2 << cont_pmd_shift)
    mm.add_vma(cbase, cbase + (1 << cont_pmd_shift), hugetlb_shift=cont_pmd_shift)
    pfns_per_pmd = 1 << (pmd_shift - p.page_shift)
    for n in range(p.cont_pmds):
        mm.map_pmd(cbase + (n << pmd_shift), pfn=0x20000 + n * pfns_per_pmd, flags=clean | PMD_SECT_CONT)
    young = mm.lookup(L.PMD, cbase + (3 << pmd_shift))
    assert young is not None
    mm.set_pmd(cbase + (3 << pmd_shift), young | PTE_AF)
    # CONT_PTE_SIZE: one page of CONT_PTES entries, one written through (DBM)
    tbase = base + (4 << cont_pmd_shift)
    mm.add_vma(tbase, tbase + (1 << cont_pte_shift), hugetlb_shift=cont_pte_shift)
    for n in range(p.cont_ptes):
        mm.map_page(tbase + n * g.page, pfn=0x30000 + n, flags=clean | PTE_CONT)
    dirty = mm.lookup(L.PTE, tbase + 5 * g.page)
    assert dirty is not None
    mm.set_pte(tbase + 5 * g.page, dirty & ~PTE_RDONLY)
    r = Rec(("hugetlb_entry", "pte_hole"))
    assert walk_page_range(mm, base, tbase + (1 << cont_pte_shift), r.ops) == 0
    hm = lambda s: ULONG_MAX & ~((1 << s) - 1)  # noqa: E731
    assert r.log == [
        ("hugetlb_entry", base, base + (1 << pmd_shift), hm(pmd_shift)),
        ("hugetlb_entry", base + (1 << pmd_shift), base + (2 << pmd_shift), hm(pmd_shift)),
        ("pte_hole", pmd_vma.vm_end, cbase, -1),
        ("hugetlb_entry", cbase, cbase + (1 << cont_pmd_shift), hm(cont_pmd_shift)),
        ("pte_hole", cbase + (1 << cont_pmd_shift), tbase, -1),
        ("hugetlb_entry", tbase, tbase + (1 << cont_pte_shift), hm(cont_pte_shift)),
    ]
    pmd0, pmd1, cpmd, cpte = (e for e in r.entries if e is not None)
    assert pmd0.level == L.PMD and pmd0.pfn == 0x10000 and pmd1.none  # a none PMD is still found
    assert cpmd.level == L.PMD and cpmd.kaddr == mm.kaddr_of(L.PMD, cbase)
    assert cpmd.accessed and not cpmd.dirty  # young folded from PMD 3 of the block
    assert mm.lookup(L.PMD, cbase) is not None and not mm.lookup(L.PMD, cbase) & PTE_AF  # table unchanged
    assert cpte.level == L.PTE and cpte.kaddr == mm.kaddr_of(L.PTE, tbase)
    assert cpte.dirty and not cpte.accessed and cpte.pfn == 0x30000


def test_prot_none_swap_migration_marker_entries_through_pte_entry() -> None:
    # arm64 7.2: PROT_NONE is present-invalid (nG without VALID): present
    # for pte_present() and pte_entry; swap, migration and markers decoded
    # from bits [10:6] (type) and [61:12] (offset); no soft-dirty
    mm = SyntheticMM(paging=_a64(page_shift=14))
    page = 1 << 14
    base = 1 << 25
    mm.add_vma(base, base + 8 * page)
    mm.map_protnone(base, pfn=0x100)
    mm.map_swap(base + page, type=3, offset=0x4567, exclusive=True)
    mm.map_migration(base + 2 * page, pfn=0x200, write=True)
    mm.map_marker(base + 3 * page)
    mm.map_page(base + 4 * page, pfn=0x300)
    r = Rec(("pte_entry",))
    assert walk_page_range(mm, base, base + 5 * page, r.ops) == 0
    pn, sw, mig, mk, pr = r.entries
    assert pn.present and pn.protnone and pn.pfn == 0x100 and not pn.value & 1
    assert not sw.present and sw.swap is not None and (sw.swap.type, sw.swap.offset) == (3, 0x4567)
    assert sw.exclusive and not sw.soft_dirty
    assert mig.swap is not None and mig.swap.kind.is_migration and mig.swap.pfn == 0x200
    assert mk.swap is not None and mk.swap.kind.name == "PTE_MARKER"
    assert pr.present and not pr.protnone and pr.pfn == 0x300 and not pr.soft_dirty


def test_folio_walk_sees_ptep_get_of_a_contpte_block() -> None:
    # folio_walk_start() reads the PTE with ptep_get(): the dirty bit of
    # another entry of the contiguous block shows in fw.pte
    mm = SyntheticMM(paging=_a64())
    vma = mm.add_vma(0x400000, 0x410000)
    clean = (mm.default_flags & ~PTE_DIRTY) | PTE_RDONLY | PTE_CONT
    for n in range(16):
        mm.map_page(0x400000 + (n << 12), pfn=0x40000 + n, flags=clean)
    v = mm.lookup(L.PTE, 0x40F000)
    assert v is not None
    mm.set_pte(0x40F000, v | PTE_DIRTY)
    fw = FolioWalk()
    assert folio_walk_start(fw, vma, 0x401000, 0) == 0x40001
    assert fw.ptep is not None and fw.ptep.dirty and fw.pte & PTE_DIRTY
    raw = mm.lookup(L.PTE, 0x401000)
    assert raw is not None and not raw & PTE_DIRTY  # the table is unchanged


def test_64k_two_levels_hugetlb_cont_pte_beside_normal_pages() -> None:
    # 64K, 2 levels: CONT_PTE_SIZE is 2 MiB (32 PTEs), PMD_SIZE 512 MiB and
    # the PMD is the PGD slot; a hugetlb VMA and a normal one share a PTE
    # table, reached from the same slot by huge_pte_offset() and the walk
    g = next(g for g in GEOMETRIES if g.name == "arm64-64k-42")
    p = g.paging
    assert isinstance(p, Arm64Paging) and p.hugetlb_level(21) == (L.PTE, 32)
    mm = SyntheticMM(paging=p)
    mm.add_vma(1 << 29, (1 << 29) + (2 << 20), hugetlb_shift=21)
    mm.add_vma((1 << 29) + (2 << 20), (1 << 29) + (2 << 20) + 2 * g.page)
    for n in range(32):
        mm.map_page((1 << 29) + n * g.page, pfn=0x1000 + n, flags=mm.default_flags | PTE_CONT)
    mm.map_page((1 << 29) + (2 << 20), pfn=0x2000)
    r = Rec(("hugetlb_entry", "pte_entry"))
    walks: list = []
    assert walk_page_range(mm, 1 << 29, (1 << 29) + (2 << 20) + 2 * g.page, r.ops, walks=walks) == 0
    assert [t[0] for t in r.log] == ["hugetlb_entry", "pte_entry", "pte_entry"]
    assert r.entries[0].level == L.PTE and r.entries[0].pfn == 0x1000
    assert r.entries[1].pfn == 0x2000 and r.entries[2].none
    assert walks[0].errors == []  # one PTE table, reached from one slot


# -- every address once, in every geometry ----------------------------------------

_RANK = {"pgd_entry": 0, "p4d_entry": 1, "pud_entry": 2, "pmd_entry": 3}


@st.composite
def _layouts(draw: Any) -> tuple[Geometry, SyntheticMM, int, int]:
    """VMAs across the boundary of every real level's entries, with pages, THPs and swap entries."""
    g = draw(st.sampled_from(GEOMETRIES))
    p, page = g.paging, g.page
    pmd_span = g.holes[0][0]
    mm = SyntheticMM(paging=p)
    lo = hi = None
    cursor = 0
    for span, _depth in g.holes:
        if not draw(st.booleans()):
            continue
        start = max(cursor, span - draw(st.integers(1, 3 * (page // 8))) * page)
        end = start + draw(st.integers(1, 4 * (page // 8))) * page
        mm.add_vma(start, end)
        lo = start if lo is None else lo
        hi = cursor = end
        for _ in range(draw(st.integers(0, 5))):
            what = draw(st.sampled_from(["page", "page", "swap", "protnone", "thp"]))
            if what == "thp":
                a = (start + pmd_span - 1) & ~(pmd_span - 1)
                if a + pmd_span <= end and not mm.lookup(L.PMD, a):
                    mm.map_pmd(a, pfn=page // 8 * 4)
                continue
            a = start + draw(st.integers(0, (end - start) // page - 1)) * page
            pmd = mm.lookup(L.PMD, a)
            if pmd and p.pmd_leaf(pmd):
                continue  # a THP covers it
            if what == "page":
                mm.map_page(a, pfn=0x1000 + (a // page & 0xFFF))
            elif what == "swap":
                mm.map_swap(a, 1, a // page)
            else:
                mm.map_protnone(a, 0x2000)
    if lo is None or hi is None:
        lo, hi = 4 * pmd_span, 4 * pmd_span + page
        mm.add_vma(lo, hi)
    start = draw(st.sampled_from([lo, max(0, lo - draw(st.integers(0, 64)) * page)]))
    end = draw(st.sampled_from([hi, hi + draw(st.integers(1, 64)) * page]))
    return g, mm, start, end


def _tiles(log: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
    """The deepest reports: an upper-level entry with reports inside it is replaced by them."""
    out: list[tuple[str, int, int]] = []
    for rec in log:
        name, a, n = rec
        while out and out[-1][0] in _RANK and out[-1][1] <= a and n <= out[-1][2] and (
            name not in _RANK or _RANK[name] > _RANK[out[-1][0]]
        ):
            out.pop()
        out.append(rec)
    return [(a, n) for _, a, n in out]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(_layouts(), st.sets(st.sampled_from(tuple(_RANK) + ("pte_entry",)), min_size=1), st.booleans())
def test_every_address_reported_once_in_every_geometry(
    layout: tuple[Geometry, SyntheticMM, int, int], cbs: set[str], no_vma: bool
) -> None:
    g, mm, start, end = layout
    if no_vma:
        # as in Linux 7.2 mm/pagewalk.c: no-VMA walks never descend into a
        # leaf or non-present PMD, only pmd_entry (pud_entry above) reports it
        cbs = cbs | {"pud_entry", "pmd_entry"}
    log: list[tuple[str, int, int]] = []

    def mk(name: str) -> Any:
        return lambda e, a, n, w: log.append((name, a, n))

    ops = MMWalkOps(**{n: mk(n) for n in cbs}, pte_hole=lambda a, n, d, w: log.append(("pte_hole", a, n)))
    if no_vma:
        assert walk_page_range_debug(mm, start, end, ops, None) == 0
    else:
        assert walk_page_range(mm, start, end, ops) == 0
    tiles = _tiles(log)
    assert tiles and tiles[0][0] == start and tiles[-1][1] == end, g.name
    for (a0, n0), (a1, _) in zip(tiles, tiles[1:]):
        assert a0 < n0 == a1, (g.name, hex(a0), hex(n0), hex(a1))


def test_install_pte_allocates_through_folded_levels(geo: Geometry) -> None:
    # walk_page_range_mm_unsafe() with install_pte over an empty mm: every
    # real level's none entry gets a new table (__p?d_alloc(), emulated), the
    # folded ones share their parent's, and install_pte runs once per page
    page = geo.page
    base = 4 * geo.holes[0][0]
    mm = SyntheticMM(paging=geo.paging)
    mm.add_vma(base, base + 4 * page)

    def install(addr: int, next: int, ptep: Any, walk: Any) -> int:
        ptep.value = geo.paging.pfn_pte(addr // page, mm.default_flags)
        return 0

    r = Rec(("pmd_entry",), install_pte=install)
    walks: list = []
    assert walk_page_range_mm_unsafe(mm, base, base + 4 * page, r.ops, walks=walks) == 0
    assert r.log == [("pmd_entry", base, base + 4 * page)]
    assert sorted(walks[0].installed) == [base + n * page for n in range(4)]
    assert r.entries[0].is_table  # the PMD the walk allocated (or the PGD slot it is folded into)
