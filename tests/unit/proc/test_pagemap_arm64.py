# SPDX-License-Identifier: LGPL-2.1-or-later
"""pagemap of arm64 page tables (synthetic, 4K with LPA2 and 16K): every
expected entry is written from Linux 7.2 ``fs/proc/task_mmu.c``
(``pte_to_pagemap_entry``, ``pagemap_pmd_range_thp``,
``pagemap_hugetlb_range``) and ``arch/arm64/include/asm/pgtable.h`` by hand:
one entry per ``PAGE_SIZE`` page; present is ``PTE_VALID`` or
``PTE_PRESENT_INVALID`` (PROT_NONE); the PFN with PA[51:50] from bits [9:8]
(LPA2); no soft-dirty ever (bit 55 stays 0, even where x86 would set it);
uffd-wp from bit 58 (present) or bit 3 (swap); the swap type in bits [10:6]
and the offset from bit 12; a migration entry's frame is its PFN."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("drgn")

from livewalk.arch.arm64.pgtable import Arm64Paging  # noqa: E402
from livewalk.arch.arm64.pgtable_hwdef import PTE_CONT  # noqa: E402
from livewalk.arch.arm64.pgtable_prot import PTE_SWP_UFFD_WP, PTE_UFFD_WP  # noqa: E402
from livewalk.backend.synthetic import SyntheticMM  # noqa: E402
from livewalk.mm.swapops import PTE_MARKER_GUARD, PTE_MARKER_UFFD_WP  # noqa: E402
from livewalk.proc.pagemap import pagemap_read, pagemap_runs  # noqa: E402
from livewalk.proc.pagemap_entry import (  # noqa: E402
    PM_FILE,
    PM_GUARD_REGION,
    PM_MMAP_EXCLUSIVE,
    PM_PRESENT,
    PM_SOFT_DIRTY,
    PM_SWAP,
    PM_UFFD_WP,
)
from livewalk.proc.pagemap_page import PagemapPage  # noqa: E402

VM_READ, VM_WRITE, VM_SHARED = 0x1, 0x2, 0x8
VM_SOFTDIRTY_X86 = 0x08000000  # what x86 would report as PM_SOFT_DIRTY: not on arm64

GEOMETRIES = {
    "4k-lpa2": Arm64Paging(phys_offset=0),
    "16k": Arm64Paging(page_shift=14, phys_offset=0),
}


class Pages:
    """``struct page`` state: anonymous and mapped once unless told."""

    def __init__(self) -> None:
        self.pages: dict[int, PagemapPage] = {}

    def highest_memmap_pfn(self) -> int:
        return 1 << 45

    def page_info(self, pfn: int) -> PagemapPage | None:
        return self.pages.get(pfn, PagemapPage(anon=True, mapcount=1, maybe_shared=False))

    def hugetlb_pmd_shared(self, ptep: int) -> bool:
        return False


def _setup(name: str) -> tuple[Any, Arm64Paging, int, int]:
    p = GEOMETRIES[name]
    mm = SyntheticMM(paging=p)
    pmd_size = 1 << p.level_shift(1)
    base = 16 * pmd_size  # PMD aligned
    return mm, p, base, p.page_size


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_pte_level_entries(name: str) -> None:
    mm, p, base, page = _setup(name)
    st = p.swap_types
    pmd_size = 1 << p.level_shift(1)
    mm.add_vma(base, base + pmd_size, VM_READ | VM_WRITE)
    pages = Pages()
    anon = p.pte_mkwrite(p.pte_mkdirty(p.vm_get_page_prot(VM_READ | VM_WRITE)))
    mm.set_pte(base, p.pfn_pte(0x1234, anon))
    pages.pages[0x1235] = PagemapPage(anon=False, mapcount=2, maybe_shared=True)
    mm.set_pte(base + page, p.pfn_pte(0x1235, p.vm_get_page_prot(VM_READ)))
    mm.map_zero(base + 2 * page)  # special: no page, so neither FILE nor EXCLUSIVE
    mm.map_protnone(base + 3 * page, 0x2000)  # present-invalid: present
    mm.map_swap(base + 4 * page, 1, 0x777, exclusive=True)
    mm.map_swap(base + 5 * page, 2, 0x778, uffd_wp=True)
    mm.map_migration(base + 6 * page, 0x3000, write=True)
    pages.pages[0x3001] = PagemapPage(anon=False, mapcount=1, maybe_shared=False)
    mm.map_migration(base + 7 * page, 0x3001)
    mm.map_marker(base + 8 * page, PTE_MARKER_GUARD)
    mm.map_marker(base + 9 * page, PTE_MARKER_UFFD_WP)
    mm.set_pte(base + 10 * page, p.pte_mkuffd_wp(p.pfn_pte(0x1240, anon)))
    # slot 11 none; slot 12 a hardware-dirty, access-flagged page
    mm.set_pte(base + 12 * page, p.pfn_pte(0x1241, anon) & ~(1 << 7))
    got = list(pagemap_read(mm, base, base + 13 * page, page_state=pages))
    # the raw bits the kernel would have stored, checked independently
    assert mm.lookup(0, base + 10 * page) & PTE_UFFD_WP
    assert mm.lookup(0, base + 5 * page) & PTE_SWP_UFFD_WP
    assert mm.lookup(0, base + 4 * page) == 1 << 6 | 0x777 << 12 | 1 << 2
    assert got == [
        PM_PRESENT | PM_MMAP_EXCLUSIVE | 0x1234,
        PM_PRESENT | PM_FILE | 0x1235,
        PM_PRESENT | mm.backend.zero_pfn,
        PM_PRESENT | PM_MMAP_EXCLUSIVE | 0x2000,
        PM_SWAP | 1 | 0x777 << 5,  # 7.2: never exclusive when not present
        PM_SWAP | PM_UFFD_WP | 2 | 0x778 << 5,
        PM_SWAP | st.migration_write | 0x3000 << 5,
        PM_SWAP | PM_FILE | st.migration_read | 0x3001 << 5,
        PM_SWAP | PM_GUARD_REGION | st.pte_marker | PTE_MARKER_GUARD << 5,
        PM_SWAP | PM_UFFD_WP | st.pte_marker | PTE_MARKER_UFFD_WP << 5,
        PM_PRESENT | PM_UFFD_WP | PM_MMAP_EXCLUSIVE | 0x1240,
        0,
        PM_PRESENT | PM_MMAP_EXCLUSIVE | 0x1241,
    ]
    nopfn = list(pagemap_read(mm, base, base + 13 * page, page_state=pages, show_pfn=False))
    assert nopfn == [v & ~((1 << 55) - 1) for v in got]
    # runs agree with the entries, one PAGE_SIZE page each
    runs = pagemap_runs(mm, base, base + 13 * page, page_state=pages)
    assert sum(r.npages for r in runs) == 13
    assert [r.entry(i) for r in runs for i in range(r.npages)] == got


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_no_soft_dirty_on_arm64(name: str) -> None:
    """A VMA flag that is VM_SOFTDIRTY on x86 means nothing on arm64
    (no CONFIG_MEM_SOFT_DIRTY): holes and entries keep bit 55 clear."""
    mm, p, base, page = _setup(name)
    mm.add_vma(base, base + 4 * page, VM_READ | VM_WRITE | VM_SOFTDIRTY_X86)
    mm.map_page(base, 0x1234)
    got = list(pagemap_read(mm, base, base + 4 * page, page_state=Pages()))
    assert got == [PM_PRESENT | PM_MMAP_EXCLUSIVE | 0x1234, 0, 0, 0]
    assert not any(v & PM_SOFT_DIRTY for v in got)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_full_tables_and_contiguous_blocks(name: str) -> None:
    """A whole PTE table of contiguous blocks (the uniform fast path) and a
    sparse one: entries per PAGE_SIZE page, PFNs in order."""
    mm, p, base, page = _setup(name)
    ptrs = p.ptrs_per(0)
    pmd_size = 1 << p.level_shift(1)
    mm.add_vma(base, base + 2 * pmd_size, VM_READ | VM_WRITE)
    prot = p.pte_mkwrite(p.pte_mkdirty(p.vm_get_page_prot(VM_READ | VM_WRITE)))
    pfn0 = 0x100000
    vals = p.set_ptes(base, pfn0, prot, ptrs)
    assert all(v & PTE_CONT for v in vals)
    mm.fill_pte_table(base, vals)
    sparse = [0] * ptrs
    for i in range(0, ptrs, 7):
        sparse[i] = p.pfn_pte(0x200000 + i, prot)
    mm.fill_pte_table(base + pmd_size, sparse)
    got = list(pagemap_read(mm, base, base + 2 * pmd_size, page_state=Pages()))
    assert len(got) == 2 * ptrs
    flags = PM_PRESENT | PM_MMAP_EXCLUSIVE
    assert got[:ptrs] == [flags | (pfn0 + i) for i in range(ptrs)]
    assert got[ptrs:] == [flags | (0x200000 + i) if i % 7 == 0 else 0 for i in range(ptrs)]


def test_lpa2_physical_address_bits_51_50() -> None:
    """PA[51:50] in descriptor bits [9:8]: the PFN the kernel reports has them."""
    mm, p, base, page = _setup("4k-lpa2")
    mm.add_vma(base, base + 64 * page, VM_READ | VM_WRITE)
    prot = p.pte_mkwrite(p.pte_mkdirty(p.vm_get_page_prot(VM_READ | VM_WRITE)))
    high = 0xC000123456  # PA 0xC000123456000: bits 51 and 50 set
    vals = [p.pfn_pte(high + i, prot) for i in range(64)]
    assert all(v & 0x300 == 0x300 for v in vals)
    mm.fill_pte_table(base, vals + [0] * (p.ptrs_per(0) - 64))
    got = list(pagemap_read(mm, base, base + 64 * page, page_state=Pages()))
    assert got == [PM_PRESENT | PM_MMAP_EXCLUSIVE | (high + i) for i in range(64)]


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_pmd_blocks_and_pmd_migration(name: str) -> None:
    mm, p, base, page = _setup(name)
    st = p.swap_types
    ptrs = p.ptrs_per(0)
    pmd_size = 1 << p.level_shift(1)
    mm.add_vma(base, base + 3 * pmd_size, VM_READ | VM_WRITE)
    pages = Pages()
    thp = 0x40000  # PMD aligned in both geometries
    mm.map_pmd(base, thp)
    mm.map_migration(base + pmd_size, 0x80000, write=True, level=1)
    mm.map_protnone(base + 2 * pmd_size, 0xC0000, level=1)
    got = list(pagemap_read(mm, base + 3 * page, base + 3 * pmd_size, page_state=pages))
    first = [PM_PRESENT | PM_MMAP_EXCLUSIVE | (thp + i) for i in range(3, ptrs)]
    mig = [PM_SWAP | st.migration_write | (0x80000 + i) << 5 for i in range(ptrs)]
    pnone = [PM_PRESENT | PM_MMAP_EXCLUSIVE | (0xC0000 + i) for i in range(ptrs)]
    assert got == first + mig + pnone


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_hugetlb_pmd_and_contiguous_ptes(name: str) -> None:
    mm, p, base, page = _setup(name)
    pmd_shift = p.level_shift(1)
    cont_shift = p.page_shift + (p.cont_ptes.bit_length() - 1)
    pages = Pages()
    # a PMD-sized hugetlb page, file-backed (shared) and uffd-wp
    mm.add_vma(base, base + (1 << pmd_shift), VM_READ | VM_WRITE | VM_SHARED, hugetlb_shift=pmd_shift)
    pages.pages[0x40000] = PagemapPage(anon=False, mapcount=1, maybe_shared=False)
    mm.map_pmd(base, 0x40000, p.pte_mkuffd_wp(mm.backend.bits.default))
    # a CONT_PTE_SIZE hugetlb page (64K with 4K pages, 2M with 16K)
    h2 = base + (4 << pmd_shift)
    mm.add_vma(h2, h2 + (1 << cont_shift), VM_READ | VM_WRITE, hugetlb_shift=cont_shift)
    n = p.cont_ptes
    prot = p.pte_mkwrite(p.pte_mkdirty(p.vm_get_page_prot(VM_READ | VM_WRITE)))
    mm.fill_pte_table(h2, [p.pfn_pte(0x9000 + i, prot) | PTE_CONT for i in range(n)] + [0] * (p.ptrs_per(0) - n))
    got = list(pagemap_read(mm, base, base + 4 * page, page_state=pages))
    assert got == [PM_PRESENT | PM_FILE | PM_MMAP_EXCLUSIVE | PM_UFFD_WP | (0x40000 + i) for i in range(4)]
    got = list(pagemap_read(mm, h2, h2 + n * page, page_state=pages))
    assert got == [PM_PRESENT | PM_MMAP_EXCLUSIVE | (0x9000 + i) for i in range(n)]


class _ShareCounts:
    """A PageReader's ``pt_share_count``: the table pages it was asked about."""

    def __init__(self, shared: int) -> None:
        self.shared = shared
        self.asked: list[int] = []

    def pt_share_count(self, table_kaddr: int) -> int:
        self.asked.append(table_kaddr)
        return 1 if table_kaddr == self.shared else 0


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_hugetlb_pmd_shared_masks_with_the_targets_page_size(name: str) -> None:
    """
    ``hugetlb_pmd_shared(ptep)`` looks at the ptdesc of the page-table page
    holding *ptep*: with 16K pages a PMD table is 16 KiB, so a slot in its
    last 4 KiB still belongs to the table that starts 16 KiB-aligned (a 4K
    mask would name a page inside it). Exercised through pagemap with a
    PMD-sized hugetlb page in the PMD table's last slot.
    """
    from livewalk.proc.pagemap_page import DrgnPageState

    mm, p, _, page = _setup(name)
    pmd_shift = p.level_shift(1)
    last = p.ptrs_per(1) - 1
    addr = (64 << p.level_shift(2)) + (last << pmd_shift)  # the last slot of its PMD table
    mm.add_vma(addr, addr + (1 << pmd_shift), VM_READ | VM_WRITE | VM_SHARED, hugetlb_shift=pmd_shift)
    mm.map_pmd(addr, 0x40000, mm.backend.bits.default)
    table_paddr = mm.table_paddr(1, addr)
    assert table_paddr is not None and table_paddr % page == 0
    table = p.va(table_paddr)
    assert 8 * last >= 4096 or page == 4096

    state = DrgnPageState.__new__(DrgnPageState)
    state.table_size = page
    counts = _ShareCounts(shared=table)
    state._reader = counts  # type: ignore[assignment]
    assert state.hugetlb_pmd_shared(table + 8 * last)
    assert counts.asked == [table]

    class Pages16(Pages):
        def hugetlb_pmd_shared(self, ptep: int) -> bool:
            return state.hugetlb_pmd_shared(ptep)

    pages = Pages16()
    pages.pages[0x40000] = PagemapPage(anon=False, mapcount=1, maybe_shared=False)
    got = list(pagemap_read(mm, addr, addr + 2 * page, page_state=pages))
    # the table is shared: not exclusive, though the page is mapped once
    assert got == [PM_PRESENT | PM_FILE | (0x40000 + i) for i in range(2)]
    assert counts.asked[-1] == table
