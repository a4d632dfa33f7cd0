# SPDX-License-Identifier: LGPL-2.1-or-later
"""A ``struct page`` not in the dump (a dump without part of ``mem_map``):
pagemap and smaps say so per page and per field, and keep exact what the
page-table entry alone decides (Linux 7.2 and 6.1 ``fs/proc/task_mmu.c``:
``pte_to_pagemap_entry``, ``pagemap_pmd_range_thp``,
``pagemap_hugetlb_range``, ``smaps_account``, ``smaps_page_accumulate``,
``smaps_pmd_entry``, ``smaps_hugetlb_range``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

drgn = pytest.importorskip("drgn")

from livewalk.arch import PageTableLevel  # noqa: E402
from livewalk.backend.synthetic import SyntheticMM  # noqa: E402
from livewalk.consistency import NOT_IN_DUMP, read_consistent  # noqa: E402
from livewalk.consistency.ranges import TornRange, _merge  # noqa: E402
from livewalk.mm.entry import Entry  # noqa: E402
from livewalk.mm.overlay import PAGE_UNREADABLE, WalkOverlay  # noqa: E402
from livewalk.mm.page import PageInfo  # noqa: E402
from livewalk.mm.vma import VMA, VMFlagBits  # noqa: E402
from livewalk.proc import smaps as smaps_mod  # noqa: E402
from livewalk.proc.pagemap import pagemap_read  # noqa: E402
from livewalk.proc.pagemap_entry import (  # noqa: E402
    PM_MMAP_EXCLUSIVE,
    PM_PRESENT,
    PM_SOFT_DIRTY,
    PM_SWAP,
)
from livewalk.proc.pagemap_page import PagemapPage  # noqa: E402
from livewalk.proc.smaps import SmapsVMA, format_smaps, format_smaps_rollup  # noqa: E402

PAGE = 4096
MB2 = 2 << 20
M64 = (1 << 64) - 1
VM_READ, VM_WRITE, VM_SHARED, VM_LOCKED = 0x1, 0x2, 0x8, 0x2000
BASE = 0x7F0000000000
P, RW, USER, A, D, PSE = 1, 2, 4, 0x20, 0x40, 0x80
NX = 1 << 63
USER_PTE = P | RW | USER | A | D | NX
ANON = 0xFFFF888000123001
FILE_MAPPING = 0xFFFF888000456000


def pte(pfn: int, flags: int = USER_PTE) -> int:
    return (pfn << 12) | flags


def swp_pte(type_: int, offset: int) -> int:
    """x86_64 ``__swp_entry()``: type in bits 59-63, the offset inverted below."""
    return ((((~offset) << 14) & M64) >> 5) | (type_ << 59)


# -- pagemap ------------------------------------------------------------------------


class Pages:
    """``struct page`` state for pagemap: anonymous, mapped once; the PFNs in *missing* cannot be read."""

    def __init__(self, missing: set[int]) -> None:
        self.missing = missing

    def highest_memmap_pfn(self) -> int:
        return 0xFFFFFF

    def page_info(self, pfn: int) -> PagemapPage | None:
        if pfn in self.missing:
            return None
        return PagemapPage(anon=True, mapcount=1, maybe_shared=False)

    def hugetlb_pmd_shared(self, ptep: int) -> bool:
        return False


def _mm(version: tuple[int, int] = (7, 2)) -> Any:
    m = SyntheticMM(levels=4, version=version)
    m.task_size = (1 << 47) - PAGE
    return m


def _pagemap(mm: Any, start: int, end: int, missing: set[int]) -> Any:
    pages = Pages(missing)
    return read_consistent(
        mm, start, end, lambda s, e, walks: pagemap_read(mm, s, e, page_state=pages, walks=walks)
    )


@pytest.mark.parametrize("version", [(6, 1), (7, 2)])
def test_pagemap_page_bits_unknown_per_page(version: tuple[int, int]) -> None:
    mm = _mm(version)
    mm.add_vma(BASE, BASE + 16 * PAGE, VM_READ | VM_WRITE)
    for i in range(16):
        mm.set_pte(BASE + i * PAGE, pte(0x1000 + i, USER_PTE | (1 << 11)))  # soft-dirty
    # pages 2-4 (consecutive PFNs), and page 9, have no readable struct page
    r = _pagemap(mm, BASE, BASE + 16 * PAGE, {0x1002, 0x1003, 0x1004, 0x1009})
    unknown = {2, 3, 4, 9}
    for i, v in enumerate(r.value):
        # PRESENT, SOFT_DIRTY and the PFN come from the entry: exact; FILE and
        # MMAP_EXCLUSIVE come from the page: 0 where it is not in the dump
        excl = 0 if i in unknown else PM_MMAP_EXCLUSIVE
        assert v == PM_PRESENT | PM_SOFT_DIRTY | excl | (0x1000 + i), (i, hex(v))
    c = r.consistency
    assert [(t.start, t.end, t.reason) for t in c.missing] == [
        (BASE + 2 * PAGE, BASE + 5 * PAGE, NOT_IN_DUMP),
        (BASE + 9 * PAGE, BASE + 10 * PAGE, NOT_IN_DUMP),
    ]
    assert c.missing[0].detail == "struct pages of PFNs 0x1002-0x1004 not readable: page state unknown"
    assert c.missing[1].detail == "struct page of PFN 0x1009 not readable: page state unknown"
    assert c.level == "walk" and not c.torn  # not a race: the same every time
    assert c.marks() == [
        f"# not in dump {BASE + 2 * PAGE:#x}-{BASE + 5 * PAGE:#x}: {c.missing[0].detail}",
        f"# not in dump {BASE + 9 * PAGE:#x}-{BASE + 10 * PAGE:#x}: {c.missing[1].detail}",
    ]
    assert "2 ranges (16 KiB of address space) not in dump" in c.summary()
    assert json.loads(json.dumps(c.as_dict()))["missing"][1]["start"] == BASE + 9 * PAGE


def test_pagemap_no_page_no_mark() -> None:
    """Entries that have no page (none, swap, zero page) never ask for one, so are never marked."""
    mm = _mm()
    st = mm.backend.paging.swap_types
    mm.add_vma(BASE, BASE + 4 * PAGE, VM_READ | VM_WRITE)
    mm.set_pte(BASE + PAGE, swp_pte(0, 0x1001))  # a swap entry
    mm.set_pte(BASE + 2 * PAGE, swp_pte(st.migration_read, 0x1002))  # a migration entry: has a page
    r = _pagemap(mm, BASE, BASE + 4 * PAGE, {0x1001, 0x1002})
    assert list(r.value)[:2] == [0, PM_SWAP | (0x1001 << 5)]
    # Linux 7.2: a migration entry's page decides PM_FILE only (exclusive needs PM_PRESENT)
    assert r.value[2] == PM_SWAP | st.migration_read | (0x1002 << 5)
    assert [(t.start, t.end) for t in r.consistency.missing] == [(BASE + 2 * PAGE, BASE + 3 * PAGE)]


def test_pagemap_thp_head_not_in_dump() -> None:
    mm = _mm()
    mm.add_vma(BASE, BASE + 2 * MB2, VM_READ | VM_WRITE)
    mm.set_pmd(BASE, pte(0x40000, USER_PTE | PSE))
    mm.set_pmd(BASE + MB2, pte(0x40200, USER_PTE | PSE))
    r = _pagemap(mm, BASE + MB2 - 2 * PAGE, BASE + 2 * MB2, {0x40000})
    v = list(r.value)
    # the first PMD decides from its head page, not in the dump: its 2 MiB are marked
    assert v[:2] == [PM_PRESENT | (0x40000 + 510), PM_PRESENT | (0x40000 + 511)]
    assert v[2:] == [PM_PRESENT | PM_MMAP_EXCLUSIVE | (0x40200 + i) for i in range(512)]
    (t,) = r.consistency.missing
    assert (t.start, t.end) == (BASE + MB2 - 2 * PAGE, BASE + MB2)
    assert "PFNs 0x401fe-0x401ff" in t.detail


@pytest.mark.parametrize("version", [(6, 1), (7, 2)])
def test_pagemap_hugetlb_page_not_in_dump(version: tuple[int, int]) -> None:
    mm = _mm(version)
    mm.add_vma(BASE, BASE + MB2, VM_READ | VM_WRITE | VM_SHARED, hugetlb_shift=21)
    mm.set_pmd(BASE, pte(0x80000, USER_PTE | PSE))
    r = _pagemap(mm, BASE, BASE + 2 * PAGE, {0x80000})
    assert list(r.value) == [PM_PRESENT | 0x80000, PM_PRESENT | 0x80001]
    assert [(t.start, t.end) for t in r.consistency.missing] == [(BASE, BASE + 2 * PAGE)]


def test_merge_keeps_ranges_apart() -> None:
    """Ranges that lie apart are all kept (the second and later were once dropped)."""
    a, b, c = TornRange(0, 10, "x"), TornRange(20, 30, "x", "d"), TornRange(30, 40, "x", "e")
    assert _merge([c, a, b]) == [a, TornRange(20, 40, "x", "d; e")]


# -- smaps --------------------------------------------------------------------------

PG_HEAD, PG_DIRTY, PG_REFERENCED, PG_SWAPBACKED = 16, 4, 2, 19


class _KS:
    pg_dirty = PG_DIRTY
    pg_swapbacked = PG_SWAPBACKED
    pg_referenced = PG_REFERENCED
    pg_young = None

    def is_huge_zero_pfn(self, pfn: int) -> bool:
        return False


class Reader:
    """
    ``struct page`` state by PFN: ``(head, mapping, refcount, mapcount,
    nr_pages)``; a PFN that is not there raises drgn's ``FaultError``, as
    reading a ``struct page`` not in a dump does.
    """

    def __init__(self) -> None:
        self.ks = _KS()
        self.pages: dict[int, tuple[int, int, int, int, int]] = {}
        self.shared_tables: bool | None = False

    def _get(self, pfn: int) -> tuple[int, int, int, int, int]:
        try:
            return self.pages[pfn]
        except KeyError:
            raise drgn.FaultError("could not read memory from kdump: Excluded page", 0xFFFFEA0000000000) from None

    def info(self, pfn: int) -> PageInfo:
        head, mapping, ref, _, nr = self._get(pfn)
        h = self._get(head)
        return PageInfo(pfn, head, 1 << PG_HEAD if nr > 1 else 0, h[1], h[2], 0, nr > 1, nr, -1, -1, 0, 0)

    def precise_mapcount(self, pi: PageInfo, pfn: int | None = None) -> int:
        return self._get(pi.pfn if pfn is None else pfn)[3]

    def zone_device(self, pi: PageInfo) -> bool:
        return False

    def normal_pfn(self, pfn: int, special: bool, *args: Any) -> bool:
        return not special

    def pt_share_count(self, kaddr: int) -> int:
        if self.shared_tables is None:
            raise drgn.FaultError("could not read memory from kdump: Excluded page", kaddr)
        return 1 if self.shared_tables else 0

    def maybe_mapped_shared(self, pi: PageInfo) -> bool:
        return self._get(pi.pfn)[3] > 1


class _Walk:
    def __init__(self, st: Any) -> None:
        self.private = st
        self.overlay = WalkOverlay()
        self.errors = self.overlay.errors


def _stats(version: tuple[int, int] = (7, 2), vma: VMA | None = None) -> Any:
    st = smaps_mod._Stats.__new__(smaps_mod._Stats)
    st.out = SmapsVMA(BASE, BASE + MB2, 0, "7f0000000000-7f0000200000 rw-p 00000000 00:00 0 ")
    st.r = Reader()
    st.vma = vma or VMA(vm_start=BASE, vm_end=BASE + MB2, vm_flags=VM_READ | VM_WRITE)
    st.bits = VMFlagBits()
    st.locked = bool(st.vma.vm_flags & VM_LOCKED)
    st.pg_dirty, st.pg_swapbacked, st.pg_referenced, st.pg_young = PG_DIRTY, PG_SWAPBACKED, PG_REFERENCED, None
    st.shmem_mapping_addr = 0
    st.paging = _mm(version).backend.paging
    st.page_mapcount_rules = version == (6, 1)
    st.walk = _Walk(st)
    return st


PSS_PAGE = PAGE << 12
PAGE_STATE_PSS = {"pss", "pss_anon", "pss_shmem", "pss_file", "pss_dirty"}


def test_smaps_present_page_not_in_dump() -> None:
    st = _stats()
    st.r.pages[0x1001] = (0x1001, ANON, 1, 1, 1)  # a readable neighbour, for contrast
    smaps_mod._smaps_pte_entry(st, pte(0x1000), BASE, False)  # young and dirty
    smaps_mod._smaps_pte_entry(st, pte(0x1001), BASE + PAGE, False)
    o = st.out
    # Rss from the entry; Referenced from the young entry; the clean side
    # gets nothing from a dirty entry: exact. Which dirty side, the Pss, and
    # anonymous or not are the page's: unknown.
    assert o.resident == 2 * PAGE and o.referenced == 2 * PAGE
    assert o.not_in_dump == PAGE_STATE_PSS | {"anonymous", "ksm", "private_dirty", "shared_dirty"}
    assert (o.private_clean, o.shared_clean, o.lazyfree) == (0, 0, 0)
    assert st.walk.errors == [(PageTableLevel.PTE, BASE, 0x1000, PAGE_UNREADABLE)]
    # a clean, old entry leaves Referenced, LazyFree and the clean side unknown too
    st = _stats()
    smaps_mod._smaps_pte_entry(st, pte(0x1000, P | RW | USER | NX), BASE, False)
    assert st.out.not_in_dump == PAGE_STATE_PSS | {
        "anonymous", "ksm", "lazyfree", "referenced",
        "private_dirty", "shared_dirty", "private_clean", "shared_clean",
    }  # fmt: skip
    assert st.out.resident == PAGE


def test_smaps_locked_vma() -> None:
    vma = VMA(vm_start=BASE, vm_end=BASE + MB2, vm_flags=VM_READ | VM_WRITE | VM_LOCKED)
    st = _stats(vma=vma)
    smaps_mod._smaps_pte_entry(st, pte(0x1000), BASE, False)
    assert "pss_locked" in st.out.not_in_dump
    st = _stats()
    smaps_mod._smaps_pte_entry(st, pte(0x1000), BASE, False)
    assert "pss_locked" not in st.out.not_in_dump and st.out.pss_locked == 0  # not VM_LOCKED: Locked is 0


@pytest.mark.parametrize("version", [(6, 1), (7, 2)])
def test_smaps_migration_entry_not_in_dump(version: tuple[int, int]) -> None:
    st = _stats(version)
    smaps_mod._smaps_pte_entry(st, swp_pte(st.paging.swap_types.migration_write, 0x1000), BASE, False)
    o = st.out
    # the whole page, without looking at the page: Pss exact; private on 6.1
    # ("|| migration"), shared on 7.2 ("|| !present"): the other side exact;
    # clean or dirty is the folio's
    assert o.resident == PAGE and o.pss == PSS_PAGE
    side = "private" if version == (6, 1) else "shared"
    other = "shared" if version == (6, 1) else "private"
    assert {f"{side}_clean", f"{side}_dirty", "pss_dirty"} <= o.not_in_dump
    assert not {f"{other}_clean", f"{other}_dirty", "pss", "resident"} & o.not_in_dump


@pytest.mark.parametrize("version", [(6, 1), (7, 2)])
def test_smaps_thp_head_not_in_dump(version: tuple[int, int]) -> None:
    st = _stats(version)
    smaps_mod._smaps_pmd_entry(st, pte(0x40000, USER_PTE | PSE), BASE)
    o = st.out
    assert o.resident == MB2 and o.referenced == MB2
    assert {"anonymous_thp", "shmem_thp", "file_thp", "pss", "anonymous"} <= o.not_in_dump
    assert (o.anonymous_thp, o.shmem_thp, o.file_thp) == (0, 0, 0)
    assert st.walk.errors == [(PageTableLevel.PMD, BASE, 0x40000, PAGE_UNREADABLE)]


def test_smaps_thp_tail_not_in_dump() -> None:
    """The head is there (a shared THP: refcount 2), the struct pages of tails 64-127 are not."""
    st = _stats()
    for i in range(512):
        if not 64 <= i < 128:
            st.r.pages[0x40000 + i] = (0x40000, ANON, 2, 1, 512 if i == 0 else 1)
    smaps_mod._smaps_pmd_entry(st, pte(0x40000, USER_PTE | PSE), BASE)
    o = st.out
    assert (o.resident, o.anonymous, o.anonymous_thp) == (MB2, MB2, MB2)  # from the head: exact
    # each page's mapcount decides its Pss and side: the 64 unknown ones leave those unknown
    assert o.not_in_dump == {"pss", "pss_anon", "pss_dirty", "private_dirty", "shared_dirty"}
    assert [(e.level, e.addr, e.value) for e in st.walk.errors] == [
        (PageTableLevel.PTE, BASE + i * PAGE, 0x40000 + i) for i in range(64, 128)
    ]
    w = _Walk(st)
    w.errors.extend(st.walk.errors)
    from livewalk.consistency.ranges import _Check, _missing

    w.paging = st.paging
    chk: _Check[Any] = _Check()
    _missing(w, BASE, BASE + MB2, chk)  # type: ignore[arg-type]
    assert [(t.start, t.end, t.detail) for t in chk.missing] == [
        (BASE + 64 * PAGE, BASE + 128 * PAGE, "struct pages of PFNs 0x40040-0x4007f not readable: page state unknown")
    ]


@pytest.mark.parametrize("version", [(6, 1), (7, 2)])
def test_smaps_hugetlb_not_in_dump(version: tuple[int, int]) -> None:
    vma = VMA(vm_start=BASE, vm_end=BASE + MB2, vm_flags=VM_READ | VM_WRITE | VM_SHARED, hugetlb_shift=21)

    def account(value: int, shared_table: bool | None = False) -> Any:
        st = _stats(version, vma)
        st.r.shared_tables = shared_table
        e = Entry(value, 0xFFFF888001234000, PageTableLevel.PMD, None)
        smaps_mod._smaps_hugetlb_range(e, ~(MB2 - 1), BASE, BASE + MB2, st.walk)
        return st.out

    present = pte(0x80000, USER_PTE | PSE)
    o = account(present)
    assert o.not_in_dump == {"shared_hugetlb", "private_hugetlb"}
    assert (o.shared_hugetlb, o.private_hugetlb) == (0, 0)
    o = account(present, shared_table=True)  # a shared table makes it shared whatever the page
    assert not o.not_in_dump and o.shared_hugetlb == MB2
    migrating = swp_pte(_mm(version).backend.paging.swap_types.migration_read, 0x80000)
    o = account(migrating)
    if version == (7, 2):  # non-present: shared without looking at the page
        assert not o.not_in_dump and o.shared_hugetlb == MB2
    else:  # 6.1 reads page_mapcount() of a migration entry's page too
        assert o.not_in_dump == {"shared_hugetlb", "private_hugetlb"}
    # the page is there, the page table's ptdesc is not: shared or not is unknown
    st = _stats(version, vma)
    st.r.pages[0x80000] = (0x80000, FILE_MAPPING, 2, 1, 512)
    st.r.shared_tables = None
    smaps_mod._smaps_hugetlb_range(Entry(present, 0xFFFF888001234000, PageTableLevel.PMD, None), ~(MB2 - 1), BASE, BASE + MB2,
                                   st.walk)  # fmt: skip
    assert st.out.not_in_dump == {"shared_hugetlb", "private_hugetlb"}


def test_smaps_text_json_and_rollup() -> None:
    st = _stats()
    smaps_mod._smaps_pte_entry(st, pte(0x1000), BASE, False)
    v = st.out
    text = format_smaps([v]).splitlines()
    assert "Rss:                   4 kB" in text and "Referenced:            4 kB" in text
    assert "Pss:            (not in dump)" in text and "Anonymous:      (not in dump)" in text
    assert "Private_Clean:         0 kB" in text  # a dirty entry: nothing clean, exact
    assert len(text) == len(format_smaps([SmapsVMA(BASE, BASE + MB2, 0, v.header)]).splitlines())
    d = json.loads(json.dumps(v.as_dict()))
    assert d["fields_kb"]["Pss"] is None and d["fields_kb"]["Rss"] == 4
    assert d["fields_not_in_dump"] == ["Pss", "Pss_Dirty", "Shared_Dirty", "Private_Dirty", "Anonymous", "KSM"]
    assert d["raw"]["pss"] is None and d["raw"]["resident"] == PAGE and "not_in_dump" not in d["raw"]
    other = SmapsVMA(BASE + MB2, BASE + 2 * MB2, 0, "", resident=PAGE, pss=PSS_PAGE, private_clean=PAGE)
    roll = format_smaps_rollup([v, other]).splitlines()
    assert "Rss:                   8 kB" in roll and "Private_Clean:         4 kB" in roll
    assert "Pss:            (not in dump)" in roll and "Pss_Anon:       (not in dump)" in roll
    assert "Pss_File:       (not in dump)" in roll
    # the other VMA, alone, has nothing unknown
    assert "(not in dump)" not in format_smaps([other])
    # the label of the widest field keeps one space before the mark
    v.not_in_dump.add("private_hugetlb")
    assert "Private_Hugetlb: (not in dump)" in format_smaps([v])
