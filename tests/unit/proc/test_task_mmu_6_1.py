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


# --- smaps accounting (smaps_account, smaps_pmd_entry, smaps_hugetlb_range) --

from livewalk.mm.page import PageInfo  # noqa: E402
from livewalk.mm.vma import VMA, VMFlagBits  # noqa: E402
from livewalk.proc import smaps as smaps_mod  # noqa: E402

MB2 = 2 << 20
PG_HEAD, PG_DIRTY, PG_REFERENCED, PG_SWAPBACKED = 16, 4, 2, 19
HUGE_ZERO = 0x3000


class _KS:
    pg_dirty = PG_DIRTY
    pg_swapbacked = PG_SWAPBACKED
    pg_referenced = PG_REFERENCED
    pg_young = None

    def is_huge_zero_pfn(self, pfn: int) -> bool:
        return pfn & ~511 == HUGE_ZERO


class FakeReader:
    """``struct page`` state by PFN: (head, mapping, refcount, page_mapcount, nr_pages)."""

    def __init__(self) -> None:
        self.ks = _KS()
        self.pages: dict[int, tuple[int, int, int, int, int]] = {}
        self.shared_tables = False

    def info(self, pfn: int) -> PageInfo:
        head, mapping, ref, _, nr = self.pages[pfn]
        return PageInfo(pfn, head, 1 << PG_HEAD if nr > 1 else 0, mapping, ref, 0, nr > 1, nr, -1, -1, 0, 0)

    def precise_mapcount(self, pi: PageInfo, pfn: int | None = None) -> int:
        return self.pages[pi.pfn if pfn is None else pfn][3]

    def zone_device(self, pi: PageInfo) -> bool:
        return False

    def normal_pfn(self, pfn: int, special: bool, *args: Any) -> bool:
        return not special

    def pt_share_count(self, kaddr: int) -> int:
        return 1 if self.shared_tables else 0

    def maybe_mapped_shared(self, pi: PageInfo) -> bool:
        return self.pages[pi.pfn][3] > 1


def _stats(version: tuple[int, int], vma: VMA | None = None) -> Any:
    st = smaps_mod._Stats.__new__(smaps_mod._Stats)
    st.out = SmapsVMA(BASE, BASE + MB2, 0, "")
    st.r = FakeReader()
    st.vma = vma or VMA(vm_start=BASE, vm_end=BASE + MB2, vm_flags=VM_READ | VM_WRITE)
    st.bits = VMFlagBits()
    st.locked = False
    st.pg_dirty, st.pg_swapbacked, st.pg_referenced, st.pg_young = PG_DIRTY, PG_SWAPBACKED, PG_REFERENCED, None
    st.shmem_mapping_addr = 0
    st.paging = _mm(version).backend.paging
    st.page_mapcount_rules = version == (6, 1)
    return st


def test_smaps_migration_entry_fast_path() -> None:
    for version in ((6, 1), (7, 2)):
        st = _stats(version)
        types = st.paging.swap_types
        # a page mapped by two processes, under migration (refcount raised)
        st.r.pages[0x1000] = (0x1000, ANON_MAPPING, 3, 2, 1)
        smaps_mod._smaps_pte_entry(st, swp_pte(types.migration_write, 0x1000), BASE, False)
        o = st.out
        assert o.resident == PAGE and o.anonymous == PAGE
        # 6.1: "page_count(page) == 1 || migration": all private, Pss the whole page
        # 7.2: "folio_ref_count == 1 || !present": whole page, private only if present
        if version == (6, 1):
            assert (o.private_clean, o.shared_clean) == (PAGE, 0)
        else:
            assert (o.private_clean, o.shared_clean) == (0, PAGE)
        assert o.pss == PAGE << 12


ANON_MAPPING = 0xFFFF888000123001


def test_smaps_pmd_6_1_follow_trans_huge_pmd() -> None:
    st = _stats((6, 1))
    for i in range(512):
        st.r.pages[0x40000 + i] = (0x40000, ANON_MAPPING, 1, 1, 512 if i == 0 else 1)
    smaps_mod._smaps_pmd_entry(st, pte(0x40000, USER_PTE | PSE), BASE)
    assert (st.out.resident, st.out.anonymous_thp, st.out.private_dirty) == (MB2, MB2, MB2)
    # the huge zero page: FOLL_DUMP gives -EFAULT, nothing is counted
    st = _stats((6, 1))
    smaps_mod._smaps_pmd_entry(st, pte(HUGE_ZERO, P | USER | A | PSE), BASE)
    # a PROT_NONE PMD: follow_trans_huge_pmd() returns NULL without FOLL_FORCE
    for i in range(512):
        st.r.pages[0x40000 + i] = (0x40000, ANON_MAPPING, 1, 1, 512 if i == 0 else 1)
    protnone = (((0x40000 << 12) ^ (((1 << 52) - 1) & ~0xFFF)) | 0x100 | USER | A | D | PSE) & ~P
    smaps_mod._smaps_pmd_entry(st, protnone, BASE)
    assert st.out.resident == 0 and st.out.anonymous_thp == 0


@pytest.mark.parametrize("version", [(6, 1), (7, 2)])
def test_smaps_hugetlb_shared_or_private(version: tuple[int, int]) -> None:
    from livewalk.mm.entry import Entry

    vma = VMA(vm_start=BASE, vm_end=BASE + MB2, vm_flags=VM_READ | VM_WRITE | VM_SHARED, hugetlb_shift=21)

    def account(mapcount: int, value: int, shared_table: bool = False) -> tuple[int, int]:
        st = _stats(version, vma)
        st.r.pages[0x80000] = (0x80000, 0xFFFF888000456000, 2, mapcount, 512)
        st.r.shared_tables = shared_table
        e = Entry.__new__(Entry)
        e.value, e.kaddr = value, 0xFFFF888001234000
        smaps_mod._smaps_hugetlb_range(e, ~(MB2 - 1), BASE, BASE + MB2, type("W", (), {"private": st})())
        return st.out.shared_hugetlb, st.out.private_hugetlb

    present = pte(0x80000, USER_PTE | PSE)
    assert account(1, present) == (0, MB2)
    assert account(2, present) == (MB2, 0)
    assert account(1, present, shared_table=True) == (MB2, 0)
    migrating = swp_pte(_mm(version).backend.paging.swap_types.migration_read, 0x80000)
    # 6.1: page_mapcount(page) >= 2 || hugetlb_pmd_shared(); 7.2: !present is shared
    assert account(1, migrating) == ((0, MB2) if version == (6, 1) else (MB2, 0))
