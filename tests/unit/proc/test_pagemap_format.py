# SPDX-License-Identifier: LGPL-2.1-or-later
"""pagemap entries over synthetic page tables, checked against the rules of
Linux 7.2 ``fs/proc/task_mmu.c`` and against raw values observed on the real
7.2.13 kernel (errata §3.4-3.7). Entry values are encoded here with the
kernel's own x86 macros, not with livewalk's encoders."""

from __future__ import annotations

import json
from array import array
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livewalk.backend.synthetic import SyntheticMM
from livewalk.proc.pagemap import pagemap_read, pagemap_runs
from livewalk.proc.pagemap_entry import (
    PM_FILE,
    PM_GUARD_REGION,
    PM_MMAP_EXCLUSIVE,
    PM_PRESENT,
    PM_SOFT_DIRTY,
    PM_SWAP,
    PM_UFFD_WP,
)
from livewalk.proc.pagemap_format import format_pagemap_text, pagemap_dicts
from livewalk.proc.pagemap_page import PagemapPage

PAGE = 4096
M64 = (1 << 64) - 1
VM_READ, VM_WRITE, VM_SHARED = 0x1, 0x2, 0x8
VM_SOFTDIRTY = 1 << 27  # VMA_SOFTDIRTY_BIT (include/linux/mm.h:326)
BASE = 0x7F0000000000
# x86 PTE bits (arch/x86/include/asm/pgtable_types.h)
P, RW, USER, A, D, PSE, PROTNONE, SPECIAL = 1, 2, 4, 0x20, 0x40, 0x80, 0x100, 0x200
UFFD_WP, SOFT_DIRTY, NX = 1 << 10, 1 << 11, 1 << 63
SWP_SOFT_DIRTY, SWP_UFFD_WP = 1 << 1, 1 << 2
USER_PTE = P | RW | USER | A | D | NX


def pte(pfn: int, flags: int = USER_PTE) -> int:
    """``pfn_pte()``: the PFN inverted when the entry is not present (L1TF)."""
    v = pfn << 12
    if flags and not flags & P:
        v ^= ((1 << 52) - 1) & ~0xFFF
    return v | flags


def swp_pte(type_: int, offset: int) -> int:
    """x86_64 ``__swp_entry()`` (``arch/x86/include/asm/pgtable_64.h``): type in
    bits 59-63, the offset inverted in bits 9-58."""
    return ((((~offset) << 14) & M64) >> 5) | (type_ << 59)


class Pages:
    """A stand-in for ``struct page`` state: anon pages mapped once, unless told."""

    def __init__(self, highest: int = 0xFFFFFF) -> None:
        self.highest = highest
        self.pages: dict[int, PagemapPage | None] = {}
        self.asked: list[int] = []
        self.shared_tables: set[int] = set()

    def highest_memmap_pfn(self) -> int:
        return self.highest

    def page_info(self, pfn: int) -> PagemapPage | None:
        self.asked.append(pfn)
        return self.pages.get(pfn, PagemapPage(anon=True, mapcount=1, maybe_shared=False))

    def hugetlb_pmd_shared(self, ptep: int) -> bool:
        return (ptep & ~0xFFF) in self.shared_tables


@pytest.fixture
def mm() -> Any:
    m = SyntheticMM(levels=5)
    m.task_size = (1 << 56) - PAGE  # TASK_SIZE_MAX with LA57
    return m


def read(mm: Any, start: int, end: int, pages: Pages | None = None, **kw: Any) -> list[int]:
    return list(pagemap_read(mm, start, end, page_state=pages or Pages(), **kw))


def test_holes_gap_and_vma_soft_dirty(mm: Any) -> None:
    mm.add_vma(BASE, BASE + 4 * PAGE, VM_READ | VM_WRITE | VM_SOFTDIRTY)
    mm.add_vma(BASE + 8 * PAGE, BASE + 10 * PAGE, VM_READ | VM_WRITE)
    got = read(mm, BASE - 2 * PAGE, BASE + 12 * PAGE)
    # pagemap_pte_hole: 0 outside VMAs, PM_SOFT_DIRTY inside a VM_SOFTDIRTY VMA
    assert got == [0, 0] + [PM_SOFT_DIRTY] * 4 + [0] * 4 + [0, 0] + [0, 0]


def test_present_pte_bits(mm: Any) -> None:
    mm.add_vma(BASE, BASE + 8 * PAGE, VM_READ | VM_WRITE)
    mm.set_pte(BASE, pte(0x1234))
    mm.set_pte(BASE + PAGE, pte(0x1235, USER_PTE | SOFT_DIRTY | UFFD_WP))
    mm.set_pte(BASE + 2 * PAGE, pte(0x1236) & ~(A | D) | A)  # none test ignores A/D: not none
    mm.set_pte(BASE + 3 * PAGE, A | D)  # pte_none: A and D alone (KNL erratum)
    pages = Pages()
    pages.pages[0x1236] = PagemapPage(anon=False, mapcount=2, maybe_shared=True)
    got = read(mm, BASE, BASE + 4 * PAGE, pages)
    assert got == [
        PM_PRESENT | PM_MMAP_EXCLUSIVE | 0x1234,
        PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY | PM_UFFD_WP | 0x1235,
        PM_PRESENT | PM_FILE | 0x1236,
        0,
    ]


def test_zero_page_and_special_have_no_page(mm: Any) -> None:
    mm.add_vma(BASE, BASE + 2 * PAGE, VM_READ | VM_WRITE | VM_SOFTDIRTY)
    # [VM] a 4 KiB zero page: 0x808000000001c248 (PRESENT|SOFT_DIRTY, PFN)
    mm.set_pte(BASE, pte(0x1C248, P | USER | A | SPECIAL | NX))
    pages = Pages()
    got = read(mm, BASE, BASE + PAGE, pages)
    assert got == [0x808000000001C248]
    assert pages.asked == []  # vm_normal_page() gives no page for a special PTE


def test_pfn_beyond_highest_memmap_pfn_has_no_page(mm: Any) -> None:
    mm.add_vma(BASE, BASE + PAGE, VM_READ | VM_WRITE)
    mm.set_pte(BASE, pte(0x5000))
    pages = Pages(highest=0x4FFF)
    assert read(mm, BASE, BASE + PAGE, pages) == [PM_PRESENT | 0x5000]
    assert pages.asked == []


def test_protnone_pte_is_present_with_inverted_pfn(mm: Any) -> None:
    mm.add_vma(BASE, BASE + PAGE, VM_SOFTDIRTY)
    mm.set_pte(BASE, pte(0x4321, PROTNONE | USER | A | D))
    assert read(mm, BASE, BASE + PAGE) == [PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY | 0x4321]


def test_swap_entries(mm: Any) -> None:
    mm.add_vma(BASE, BASE + 4 * PAGE, VM_READ | VM_WRITE)
    mm.set_pte(BASE, swp_pte(0, 1) | SWP_SOFT_DIRTY)
    mm.set_pte(BASE + PAGE, swp_pte(3, 0x12345) | SWP_UFFD_WP)
    got = read(mm, BASE, BASE + 2 * PAGE)
    # [VM] a swapped anon page: 0x4080000000000020 (SWAP|SOFT_DIRTY, type 0, offset 1)
    assert got[0] == 0x4080000000000020
    assert got[1] == PM_SWAP | PM_UFFD_WP | 3 | (0x12345 << 5)
    # without show_pfn the frame is 0, the flags stay
    assert read(mm, BASE, BASE + 2 * PAGE, show_pfn=False) == [
        PM_SWAP | PM_SOFT_DIRTY,
        PM_SWAP | PM_UFFD_WP,
    ]


def test_markers(mm: Any) -> None:
    mm.add_vma(BASE, BASE + 4 * PAGE, VM_READ | VM_WRITE | VM_SOFTDIRTY)
    mm.set_pte(BASE, swp_pte(31, 4))  # PTE_MARKER_GUARD
    mm.set_pte(BASE + PAGE, swp_pte(31, 1))  # PTE_MARKER_UFFD_WP
    mm.set_pte(BASE + 2 * PAGE, swp_pte(31, 2))  # PTE_MARKER_POISONED
    got = read(mm, BASE, BASE + 3 * PAGE)
    # [VM] guard marker in a soft-dirty VMA: 0x448000000000009f
    assert got[0] == 0x448000000000009F == PM_SWAP | PM_GUARD_REGION | PM_SOFT_DIRTY | 31 | (4 << 5)
    assert got[1] == PM_SWAP | PM_UFFD_WP | PM_SOFT_DIRTY | 31 | (1 << 5)
    assert got[2] == PM_SWAP | PM_SOFT_DIRTY | 31 | (2 << 5)


def test_migration_entry_of_a_file_page(mm: Any) -> None:
    mm.add_vma(BASE, BASE + PAGE, VM_READ)
    mm.set_pte(BASE, swp_pte(25, 0x777))  # SWP_MIGRATION_READ with all options
    pages = Pages()
    pages.pages[0x777] = PagemapPage(anon=False, mapcount=1, maybe_shared=False)
    # softleaf_has_pfn: FILE from the folio; never MMAP_EXCLUSIVE (not present)
    assert read(mm, BASE, BASE + PAGE, pages) == [PM_SWAP | PM_FILE | 25 | (0x777 << 5)]
    assert pages.asked == [0x777]


def test_thp_exclusivity_is_decided_on_the_first_page(mm: Any) -> None:
    mm.add_vma(BASE, BASE + (2 << 20), VM_READ | VM_WRITE | VM_SOFTDIRTY)
    mm.set_pmd(BASE, pte(0x40000, USER_PTE | PSE))
    pages = Pages()
    pages.pages[0x40000] = PagemapPage(anon=True, mapcount=1, maybe_shared=True)
    for i in range(1, 512):
        pages.pages[0x40000 + i] = PagemapPage(anon=True, mapcount=2, maybe_shared=True)
    got = read(mm, BASE + 3 * PAGE, BASE + 6 * PAGE, pages)
    # [VM] EXCLUSIVE for every page when page 0 of the PMD is mapped once
    flags = PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY
    assert got == [flags | 0x40003, flags | 0x40004, flags | 0x40005]
    assert set(pages.asked) == {0x40000}


def test_huge_zero_pmd(mm: Any) -> None:
    mm.add_vma(BASE, BASE + (2 << 20), VM_READ | VM_WRITE | VM_SOFTDIRTY)
    mm.set_pmd(BASE, pte(0x2200, P | USER | A | PSE | SPECIAL | NX))
    pages = Pages()
    pages.pages[0x2200] = PagemapPage(anon=False, mapcount=0, maybe_shared=False)
    got = read(mm, BASE, BASE + 2 * PAGE, pages)
    # [VM] 0xa080000000002200: PRESENT|FILE|SOFT_DIRTY, frame huge_zero_pfn + idx
    assert got == [0xA080000000002200, 0xA080000000002201]


def test_pfnmap_vma_reads_as_a_hole(mm: Any) -> None:
    mm.add_vma(BASE, BASE + 2 * PAGE, VM_READ | VM_WRITE | VM_SOFTDIRTY, pfnmap=True)
    mm.set_pte(BASE, pte(0x9999, USER_PTE | SPECIAL))
    assert read(mm, BASE, BASE + 2 * PAGE) == [PM_SOFT_DIRTY, PM_SOFT_DIRTY]


def test_hugetlb(mm: Any) -> None:
    h = BASE + (4 << 20)
    mm.add_vma(h, h + (4 << 20), VM_READ | VM_WRITE | VM_SOFTDIRTY | VM_SHARED, hugetlb_shift=21)
    mm.set_pmd(h, pte(0x80000, USER_PTE | PSE | SOFT_DIRTY))
    mm.set_pmd(h + (2 << 20), swp_pte(31, 1))  # a uffd-wp marker in a hugetlb slot
    pages = Pages()
    pages.pages[0x80000] = PagemapPage(anon=False, mapcount=1, maybe_shared=False)
    got = read(mm, h + (2 << 20) - 2 * PAGE, h + (2 << 20) + PAGE, pages)
    # hugetlb: soft-dirty only from the VMA, frame pfn + index; no SWAP for markers
    flags = PM_PRESENT | PM_FILE | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY
    assert got == [flags | 0x801FE, flags | 0x801FF, PM_UFFD_WP | PM_SOFT_DIRTY]
    pages.pages[0x80000] = PagemapPage(anon=False, mapcount=2, maybe_shared=True)
    assert read(mm, h, h + PAGE, pages) == [PM_PRESENT | PM_FILE | PM_SOFT_DIRTY | 0x80000]


def test_task_size_clamp(mm: Any) -> None:
    top = mm.task_size
    mm.add_vma(top - 2 * PAGE, top, VM_READ | VM_SOFTDIRTY)
    assert read(mm, top - PAGE, top + 3 * PAGE) == [PM_SOFT_DIRTY]
    assert read(mm, top, top + PAGE) == []
    assert read(mm, top + PAGE, top + 2 * PAGE) == []


def test_runs_and_formats(mm: Any) -> None:
    mm.add_vma(BASE, BASE + 8 * PAGE, VM_READ | VM_WRITE | VM_SOFTDIRTY)
    for i in range(3):
        mm.set_pte(BASE + i * PAGE, pte(0x100 + i))
    mm.set_pte(BASE + 4 * PAGE, swp_pte(1, 10))
    mm.set_pte(BASE + 5 * PAGE, swp_pte(1, 11))
    runs = pagemap_runs(mm, BASE - PAGE, BASE + 8 * PAGE, page_state=Pages())
    want = read(mm, BASE - PAGE, BASE + 8 * PAGE)
    got = [r.entry(i) for r in runs for i in range(r.npages)]
    assert got == want
    assert [(r.start, r.npages, r.step) for r in runs] == [
        (BASE - PAGE, 1, 0),
        (BASE, 3, 1),
        (BASE + 3 * PAGE, 1, 0),
        (BASE + 4 * PAGE, 2, 32),
        (BASE + 6 * PAGE, 2, 0),
    ]
    text = list(format_pagemap_text(runs))
    assert "PRESENT|MMAP_EXCLUSIVE|SOFT_DIRTY pfn 0x100-0x102" in text[1]
    assert "swap type 1 offset 0xa-0xb" in text[3]
    assert '"swap_offset": 10' in json.dumps(pagemap_dicts(runs))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["none", "p", "p+1", "swap", "swap+1", "zero", "marker"]),
                min_size=1, max_size=80))
def test_runs_expand_to_the_entries(kinds: list[str]) -> None:
    m = SyntheticMM(levels=4)
    m.task_size = (1 << 47) - PAGE
    m.add_vma(BASE, BASE + len(kinds) * PAGE, VM_READ | VM_WRITE)
    pfn, off = 0x1000, 5
    for i, k in enumerate(kinds):
        a = BASE + i * PAGE
        if k.startswith("p"):
            pfn += 1 if k == "p+1" else 7
            m.set_pte(a, pte(pfn))
        elif k.startswith("swap"):
            off += 1 if k == "swap+1" else 9
            m.set_pte(a, swp_pte(2, off))
        elif k == "zero":
            m.set_pte(a, pte(0x1C248, P | USER | A | SPECIAL))
        elif k == "marker":
            m.set_pte(a, swp_pte(31, 4))
    want = array("Q", read(m, BASE, BASE + len(kinds) * PAGE))
    runs = pagemap_runs(m, BASE, BASE + len(kinds) * PAGE, page_state=Pages())
    assert array("Q", [r.entry(i) for r in runs for i in range(r.npages)]) == want
    assert runs[0].start == BASE and runs[-1].end == BASE + len(kinds) * PAGE
