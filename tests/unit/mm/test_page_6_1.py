# SPDX-License-Identifier: LGPL-2.1-or-later
"""Page and folio mapcounts as Linux 6.1 computes them, on a fake memmap.

The states are those 6.1's rmap code leaves (``mm/rmap.c``,
``mm/huge_memory.c``), step by step; the expected counts come from 6.1's
``page_mapcount()``/``__page_mapcount()`` and ``folio_mapcount()``
(``include/linux/mm.h``, ``mm/util.c``) applied by hand, with the mappings
they stand for named in each step.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

import pytest

pytest.importorskip("drgn")

from livewalk.kernel import KernelFeatures  # noqa: E402
from livewalk.mm.page import PageInfo, PageReader  # noqa: E402

PAGE_SIZE_STRUCT = 64
OFF_FLAGS = 0
OFF_MAPCOUNT = 48
PG_HEAD = 16
PG_DOUBLE_MAP = 17  # PG_workingset's slot, as 6.1 aliases it
HUGETLB_PAGE_DTOR = 2
ANON = 0xFFFF888000123001  # an anon_vma pointer | PAGE_MAPPING_ANON
FILE = 0xFFFF888000456000  # an address_space
NR = 512
HEAD = 512  # the THP's head PFN


class _KS:
    page_size = PAGE_SIZE_STRUCT
    vmemmap_base = 0
    off_mapcount = OFF_MAPCOUNT
    pg_head = PG_HEAD
    pg_double_map = PG_DOUBLE_MAP
    hugetlb_dtor = HUGETLB_PAGE_DTOR
    pgty_hugetlb = None
    compound_mapcount = True
    mm_ids_shared_bit = 63

    def pfn_to_page_addr(self, pfn: int) -> int:
        return pfn * PAGE_SIZE_STRUCT


class Memmap:
    """``struct page`` of PFNs 0-2047: only ``_mapcount`` is read by 6.1's sums."""

    def __init__(self) -> None:
        self.raw = bytearray(2048 * PAGE_SIZE_STRUCT)
        for pfn in range(2048):
            self.set(pfn, -1)

    def set(self, pfn: int, mapcount_raw: int) -> None:
        struct.pack_into("<i", self.raw, pfn * PAGE_SIZE_STRUCT + OFF_MAPCOUNT, mapcount_raw)

    def add(self, pfns: range, delta: int) -> None:
        for p in pfns:
            old = struct.unpack_from("<i", self.raw, p * PAGE_SIZE_STRUCT + OFF_MAPCOUNT)[0]
            self.set(p, old + delta)

    def reader(self) -> PageReader:
        r = PageReader.__new__(PageReader)
        r.ks = _KS()  # type: ignore[assignment]
        r._blocks = {b: bytes(self.raw[b : b + 4096]) for b in range(0, len(self.raw), 4096)}
        return r


def folio(mem: Memmap, mapping: int, entire_raw: int, double_map: bool = False, dtor: int = 1, **kw: Any) -> PageInfo:
    """The PageInfo of the head of a 512-page folio at HEAD."""
    base: dict[str, Any] = dict(
        pfn=HEAD,
        head_pfn=HEAD,
        flags=1 << PG_HEAD,
        mapping=mapping,
        refcount=3,
        mapcount_raw=struct.unpack_from("<i", mem.raw, HEAD * PAGE_SIZE_STRUCT + OFF_MAPCOUNT)[0],
        large=True,
        nr_pages=NR,
        entire_mapcount_raw=entire_raw,
        large_mapcount_raw=-1,
        head_page_type=0xFFFFFFFF,
        mm_ids=0,
        second_flags=(1 << PG_DOUBLE_MAP) if double_map else 0,
        compound_dtor=dtor,
    )
    base.update(kw)
    return PageInfo(**base)


def test_features_choose_the_6_1_model() -> None:
    f = KernelFeatures.for_version((6, 1))
    assert f.page_compound_mapcount and f.page_double_map and f.task_mmu_page_mapcount
    assert not f.smaps_ksm and f.thp_hugepage_vma_check and not f.folio_large_mapcount
    g = KernelFeatures.for_version((6, 12))
    assert not (g.page_compound_mapcount or g.page_double_map or g.task_mmu_page_mapcount)
    assert g.smaps_ksm and not g.thp_hugepage_vma_check


def test_anon_thp_pmd_fork_split_unmap() -> None:
    mem = Memmap()
    tail = HEAD + 7
    # do_huge_pmd_anonymous_page(): page_add_new_anon_rmap(compound) sets
    # compound_mapcount to 0; the pages' own _mapcount stay -1.
    r = mem.reader()
    st = folio(mem, ANON, 0)
    assert r.precise_mapcount(st, tail) == 1  # one PMD mapping
    assert r.folio_mapcount(st) == 1
    # fork(): copy_huge_pmd() dups the compound mapping: compound_mapcount 1.
    st = folio(mem, ANON, 1)
    assert r.precise_mapcount(st, tail) == 2 == r.precise_mapcount(st, HEAD)
    assert r.folio_mapcount(st) == 2
    # The child splits its PMD (__split_huge_pmd_locked): each PTE set
    # increments its page's _mapcount; compound_mapcount(page) == 2 > 1, so
    # PG_double_map is set and every _mapcount goes up once more; then the
    # compound_mapcount drops to 0 (not negative: the parent's PMD stays).
    mem.add(range(HEAD, HEAD + NR), 1)
    mem.add(range(HEAD, HEAD + NR), 1)
    r = mem.reader()
    st = folio(mem, ANON, 0, double_map=True)
    # page_mapcount: (1 + 1) + (0 + 1) - 1 = 2: the parent's PMD, the child's PTE
    assert r.precise_mapcount(st, tail) == 2
    # folio_mapcount: 1 + 512 * 2 - 512 = 513: one PMD and 512 PTE mappings
    assert r.folio_mapcount(st) == 513
    # The parent unmaps its PMD (page_remove_rmap(compound)): compound_mapcount
    # goes negative, PG_double_map is cleared with one _mapcount less each.
    mem.add(range(HEAD, HEAD + NR), -1)
    r = mem.reader()
    st = folio(mem, ANON, -1)
    assert r.precise_mapcount(st, tail) == 1
    assert r.folio_mapcount(st) == NR


def test_file_thp_counts_pmd_mappings_in_each_page() -> None:
    mem = Memmap()
    # page_add_file_rmap(compound): every page's _mapcount and the
    # compound_mapcount are incremented; two processes map the PMD.
    mem.add(range(HEAD, HEAD + NR), 2)
    r = mem.reader()
    st = folio(mem, FILE, 1)
    # a file THP's page_mapcount is its own _mapcount + 1 (no compound part)
    assert r.precise_mapcount(st, HEAD + 3) == 2
    # folio_mapcount: 2 + 512 * 2 - 2 * 512 = 2
    assert r.folio_mapcount(st) == 2
    # a third process maps one page with a PTE (page_add_file_rmap(page))
    mem.add(range(HEAD + 3, HEAD + 4), 1)
    r = mem.reader()
    st = folio(mem, FILE, 1)
    assert r.precise_mapcount(st, HEAD + 3) == 3
    assert r.precise_mapcount(st, HEAD + 4) == 2
    assert r.folio_mapcount(st) == 3


def test_hugetlb_folio_counts_its_entire_mapcount() -> None:
    mem = Memmap()
    r = mem.reader()
    # PageHuge(): page[1].compound_dtor == HUGETLB_PAGE_DTOR; a MAP_SHARED
    # hugetlb page mapped by two processes (page_dup_file_rmap(compound)).
    st = folio(mem, FILE, 1, dtor=HUGETLB_PAGE_DTOR)
    assert r.hugetlb(st)
    assert not r.hugetlb(folio(mem, FILE, 1, dtor=3))  # TRANSHUGE_PAGE_DTOR
    # __page_mapcount(head): head _mapcount + 1 (0) + compound_mapcount + 1
    assert r.precise_mapcount(st) == 2
    assert r.folio_mapcount(st) == 2
    assert r.maybe_mapped_shared(st)
    assert not r.maybe_mapped_shared(folio(mem, FILE, 0, dtor=HUGETLB_PAGE_DTOR))


def test_small_page_has_no_page_type_test() -> None:
    mem = Memmap()
    r = mem.reader()
    small = folio(mem, ANON, -1, large=False, nr_pages=1, flags=0, pfn=5, head_pfn=5, mapcount_raw=0)
    assert r.precise_mapcount(small) == 1
    assert r.folio_mapcount(small) == 1
    # 6.1's page_mapcount() does not look for a page type (undefined there):
    # a PG_buddy page_type 0xffffff7f reads as _mapcount -129.
    assert r.precise_mapcount(dataclasses.replace(small, mapcount_raw=-129)) == -128
