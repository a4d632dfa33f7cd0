# SPDX-License-Identifier: LGPL-2.1-or-later
"""pagemap and smaps by the rules of Linux 6.1 ``fs/proc/task_mmu.c``,
where they differ from 7.2, on synthetic page tables: the expected entries
and lines are written from 6.1's ``pte_to_pagemap_entry``,
``pagemap_hugetlb_range``, ``smaps_account``, ``smaps_pmd_entry``,
``smaps_hugetlb_range`` and ``__show_smap``/``show_smap``."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("drgn")

from livewalk.backend.synthetic import SyntheticMM  # noqa: E402
from livewalk.proc.pagemap import pagemap_read  # noqa: E402
from livewalk.proc.pagemap_entry import (  # noqa: E402
    PM_FILE,
    PM_MMAP_EXCLUSIVE,
    PM_PRESENT,
    PM_SOFT_DIRTY,
    PM_SWAP,
)
from livewalk.proc.pagemap_page import PagemapPage  # noqa: E402
from livewalk.proc.smaps import SmapsVMA  # noqa: E402

PAGE = 4096
M64 = (1 << 64) - 1
VM_READ, VM_WRITE, VM_SHARED = 0x1, 0x2, 0x8
BASE = 0x7F0000000000
P, RW, USER, A, D, PSE = 1, 2, 4, 0x20, 0x40, 0x80
NX = 1 << 63
USER_PTE = P | RW | USER | A | D | NX


def pte(pfn: int, flags: int = USER_PTE) -> int:
    return (pfn << 12) | flags


def swp_pte(type_: int, offset: int) -> int:
    """x86_64 ``__swp_entry()``: type in bits 59-63, the offset inverted below."""
    return ((((~offset) << 14) & M64) >> 5) | (type_ << 59)


class Pages:
    """``struct page`` state: each PFN's ``page_mapcount()`` is given."""

    def __init__(self, shared_tables: bool = False) -> None:
        self.pages: dict[int, PagemapPage] = {}
        self.shared_tables = shared_tables

    def highest_memmap_pfn(self) -> int:
        return 0xFFFFFF

    def page_info(self, pfn: int) -> PagemapPage | None:
        return self.pages.get(pfn, PagemapPage(anon=True, mapcount=1, maybe_shared=False))

    def hugetlb_pmd_shared(self, ptep: int) -> bool:
        return self.shared_tables


def _mm(version: tuple[int, int]) -> Any:
    m = SyntheticMM(levels=4, version=version)
    m.task_size = (1 << 47) - PAGE
    return m


@pytest.mark.parametrize("version", [(6, 1), (7, 2)])
def test_exclusive_bit_on_non_present_entries(version: tuple[int, int]) -> None:
    mm = _mm(version)
    st = mm.backend.paging.swap_types
    mm.add_vma(BASE, BASE + 4 * PAGE, VM_READ | VM_WRITE)
    mm.set_pte(BASE, swp_pte(st.hwpoison, 0x1000))
    mm.set_pte(BASE + PAGE, swp_pte(st.device_write, 0x1001))
    mm.set_pte(BASE + 2 * PAGE, swp_pte(st.migration_write, 0x1002))
    mm.set_pte(BASE + 3 * PAGE, pte(0x1003))
    got = list(pagemap_read(mm, BASE, BASE + 4 * PAGE, page_state=Pages()))
    # 6.1: page && !migration && page_mapcount(page) == 1, present or not;
    # 7.2: only a present entry is exclusive.
    six_one = version == (6, 1)
    excl = PM_MMAP_EXCLUSIVE if six_one else 0
    assert got == [
        PM_SWAP | excl | st.hwpoison | (0x1000 << 5),
        PM_SWAP | excl | st.device_write | (0x1001 << 5),
        PM_SWAP | st.migration_write | (0x1002 << 5),
        PM_PRESENT | PM_MMAP_EXCLUSIVE | 0x1003,
    ]


@pytest.mark.parametrize("version", [(6, 1), (7, 2)])
def test_hugetlb_in_a_shared_pmd_table(version: tuple[int, int]) -> None:
    mm = _mm(version)
    h = BASE + (4 << 20)
    mm.add_vma(h, h + (2 << 20), VM_READ | VM_WRITE | VM_SHARED, hugetlb_shift=21)
    mm.set_pmd(h, pte(0x80000, USER_PTE | PSE))
    pages = Pages(shared_tables=True)
    pages.pages[0x80000] = PagemapPage(anon=False, mapcount=1, maybe_shared=False)
    got = pagemap_read(mm, h, h + 2 * PAGE, page_state=pages)
    # 6.1 pagemap_hugetlb_range(): page_mapcount(page) == 1, no
    # hugetlb_pmd_shared() test; 7.2 also wants the table unshared.
    excl = PM_MMAP_EXCLUSIVE if version == (6, 1) else 0
    flags = PM_PRESENT | PM_FILE | excl
    assert list(got) == [flags | 0x80000, flags | 0x80001]
    pages.pages[0x80000] = PagemapPage(anon=False, mapcount=2, maybe_shared=True)
    assert list(pagemap_read(mm, h, h + PAGE, page_state=pages)) == [PM_PRESENT | PM_FILE | 0x80000]


def test_thp_pmd_one_value_for_all_entries_6_1() -> None:
    mm = _mm((6, 1))
    mm.add_vma(BASE, BASE + (2 << 20), VM_READ | VM_WRITE)
    mm.set_pmd(BASE, pte(0x40000, USER_PTE | PSE))
    pages = Pages()
    # page_mapcount(pmd_page(pmd)) == 1 decides for all 512 entries
    pages.pages[0x40000] = PagemapPage(anon=True, mapcount=1, maybe_shared=False)
    for i in range(1, 512):
        pages.pages[0x40000 + i] = PagemapPage(anon=True, mapcount=2, maybe_shared=True)
    got = list(pagemap_read(mm, BASE + 510 * PAGE, BASE + (2 << 20), page_state=pages))
    assert got == [PM_PRESENT | PM_MMAP_EXCLUSIVE | (0x40000 + i) for i in (510, 511)]
    assert PM_SOFT_DIRTY not in got


def test_smaps_text_6_1() -> None:
    v = SmapsVMA(
        vm_start=0x7F0000000000,
        vm_end=0x7F0000200000,
        vm_flags=0x8100073,
        header="7f0000000000-7f0000200000 rw-p 00000000 00:00 0 ",
        resident=2 << 20,
        anonymous_thp=2 << 20,
        thp_eligible=1,
        show_ksm=False,
        thp_eligible_padded=False,
        vm_flags_text="rd wr mr mw me ac hg ",
    )
    lines = v.format().splitlines()
    # show_smap() / __show_smap() of 6.1: no KSM line between Anonymous and
    # LazyFree; "THPeligible:    %d" unpadded
    labels = [ln.split(":")[0] for ln in lines[1:]]
    assert labels[labels.index("Anonymous") + 1] == "LazyFree"
    assert "KSM" not in labels and "KSM" not in v.fields_kb()
    assert "THPeligible:    1" in lines
    assert lines[labels.index("AnonHugePages") + 1] == "AnonHugePages:      2048 kB"
    assert lines[-1] == "VmFlags: rd wr mr mw me ac hg "
