# SPDX-License-Identifier: LGPL-2.1-or-later
"""smaps' accounting on arm64 page tables (the synthetic backend, no kernel):
the smaps ops of Linux 7.2 ``fs/proc/task_mmu.c`` run by the walker over
arm64 entries, with the 4K and the 16K granule.

What is arm64's: young is ``PTE_AF``, dirty is software ``PTE_DIRTY`` or
writable with ``PTE_RDONLY`` cleared (DBM); with CONTPTE the values a
callback sees are ``ptep_get()``'s, the access and dirty bits gathered over
the 16-entry (4K; 128 with 16K) block; a PMD block is ``PMD_SIZE`` of
THP (2 MiB, 32 MiB with 16K pages); swap entries have arm64's layout; the
page size comes from the paging, never 4096."""

from __future__ import annotations

from typing import Any

import pytest

drgn = pytest.importorskip("drgn")

from livewalk.arch import PageTableLevel  # noqa: E402
from livewalk.arch.arm64.pgtable import Arm64Paging, swp_entry_to_pte  # noqa: E402
from livewalk.arch.arm64.pgtable_hwdef import PTE_AF, PTE_CONT, PTE_RDONLY  # noqa: E402
from livewalk.arch.arm64.pgtable_prot import PTE_DIRTY, PTE_WRITE  # noqa: E402
from livewalk.backend.synthetic import SyntheticMM  # noqa: E402
from livewalk.mm.pagewalk import walk_page_vma  # noqa: E402
from livewalk.mm.vma import VMFlagBits  # noqa: E402
from livewalk.proc import smaps as smaps_mod  # noqa: E402
from livewalk.proc.smaps import SmapsVMA  # noqa: E402
from tests.unit.proc.test_not_in_dump import (  # noqa: E402
    ANON,
    PG_DIRTY,
    PG_REFERENCED,
    PG_SWAPBACKED,
    Reader,
    _Walk,
)

VM_READ, VM_WRITE = 0x1, 0x2
BASE = 0x7F0000000000

GRANULES = {
    "4K": Arm64Paging(phys_offset=0),
    "16K": Arm64Paging(page_shift=14, va_bits=48, phys_offset=0),
}


class _Swap:
    def swapcount(self, type: int, offset: int) -> int:
        return 2 if offset == 0x77 else 1


def _setup(paging: Arm64Paging, size: int) -> tuple[SyntheticMM, Any]:
    mm = SyntheticMM(paging=paging)
    mm.add_vma(BASE, BASE + size, VM_READ | VM_WRITE)
    st = smaps_mod._Stats.__new__(smaps_mod._Stats)
    st.out = SmapsVMA(BASE, BASE + size, VM_READ | VM_WRITE, "")
    st.r = Reader()
    st.swap = _Swap()
    st.vma = mm.backend.vmas(mm)[0]
    st.bits = VMFlagBits()
    st.locked = False
    st.pg_dirty, st.pg_swapbacked, st.pg_referenced, st.pg_young = PG_DIRTY, PG_SWAPBACKED, PG_REFERENCED, None
    st.shmem_mapping_addr = 0
    st.paging = paging
    st.page_mapcount_rules = False
    st.walk = _Walk(st)
    return mm, st


def _walk(mm: SyntheticMM, st: Any) -> SmapsVMA:
    ops = smaps_mod._smaps_ops(False, True)
    assert walk_page_vma(st.vma, ops, st, backend=mm.backend) == 0
    out: SmapsVMA = st.out
    return out


#: an old, clean user page: valid, page, nG, UXN, PXN, RDONLY, USER (no
#: shareability bits: they hold PA[51:50] with LPA2)
_OLD_CLEAN = 0x00600000000008C3


@pytest.mark.parametrize("granule", GRANULES)
def test_young_and_dirty_are_arm64s(granule: str) -> None:
    """AF is young; PTE_DIRTY, or PTE_WRITE without PTE_RDONLY (DBM), is dirty."""
    p = GRANULES[granule]
    page = p.page_size
    mm, st = _setup(p, 4 * page)
    pfn = 0x1000
    for i in range(4):
        st.r.pages[pfn + i] = (pfn + i, ANON, 1, 1, 1)
    vals = [
        _OLD_CLEAN,  # old, clean
        _OLD_CLEAN | PTE_AF,  # young
        _OLD_CLEAN | PTE_DIRTY,  # software dirty
        (_OLD_CLEAN | PTE_WRITE) & ~PTE_RDONLY,  # hardware dirty (DBM)
    ]
    for i, v in enumerate(vals):
        mm.set_pte(BASE + i * page, p.pfn_pte(pfn + i, v))
    o = _walk(mm, st)
    assert o.resident == o.anonymous == 4 * page
    assert o.referenced == page
    assert (o.private_clean, o.private_dirty) == (2 * page, 2 * page)
    assert o.pss == (4 * page) << 12
    assert o.lazyfree == 2 * page  # clean anonymous pages without PG_swapbacked


@pytest.mark.parametrize("granule", GRANULES)
def test_contpte_block_gathers_young_and_dirty(granule: str) -> None:
    """
    One entry of a CONTPTE block young and dirty: ptep_get() of every entry
    of the block says so (contpte_ptep_get()), so all of it is Referenced and
    dirty; the same entries without PTE_CONT count one page.
    """
    p = GRANULES[granule]
    page, n = p.page_size, p.cont_ptes
    for cont in (True, False):
        mm, st = _setup(p, n * page)
        pfn = 0x4000 // n * n
        for i in range(n):
            st.r.pages[pfn + i] = (pfn, ANON, 1, 1, n)
        vals = p.set_ptes(BASE, pfn, _OLD_CLEAN, n)
        assert all(v & PTE_CONT for v in vals)
        if not cont:
            vals = [v & ~PTE_CONT for v in vals]
        vals[3] |= PTE_AF | PTE_DIRTY
        for i, v in enumerate(vals):
            mm.set_pte(BASE + i * page, v)
        o = _walk(mm, st)
        assert o.resident == n * page
        touched = n * page if cont else page
        assert o.referenced == touched and o.private_dirty == touched, (cont, o)
        assert o.private_clean == n * page - touched


@pytest.mark.parametrize("granule", GRANULES)
def test_pmd_block_is_pmd_size_of_thp(granule: str) -> None:
    """A PMD block: AnonHugePages of PMD_SIZE (2 MiB; 32 MiB with 16K pages)."""
    p = GRANULES[granule]
    pmd_size = 1 << p.level_shift(PageTableLevel.PMD)
    nr = pmd_size // p.page_size
    mm, st = _setup(p, pmd_size)
    pfn = 0x40000 // nr * nr
    st.r.pages[pfn] = (pfn, ANON, 1, 1, nr)
    mm.map_pmd(BASE, pfn)
    o = _walk(mm, st)
    assert o.anonymous_thp == o.resident == o.anonymous == pmd_size
    assert o.referenced == pmd_size  # map_pmd's default flags carry AF


@pytest.mark.parametrize("granule", GRANULES)
def test_swap_entries_in_arm64s_layout(granule: str) -> None:
    """Swap and SwapPss of arm64 swap entries (type in bits 6-10, offset from bit 12)."""
    p = GRANULES[granule]
    page = p.page_size
    mm, st = _setup(p, 2 * page)
    mm.set_pte(BASE, swp_entry_to_pte(1, 0x77, exclusive=True))  # swap count 2
    mm.set_pte(BASE + page, swp_entry_to_pte(1, 0x78))
    o = _walk(mm, st)
    assert o.swap == 2 * page
    assert o.swap_pss == (page << 12) // 2 + (page << 12)
    assert o.resident == 0


def test_vm_flags_mnemonics_of_arm64() -> None:
    """
    Linux 7.2 show_smap_vma_flags() on arm64 (CONFIG_ARM64_BTI, _MTE,
    _POE, _GCS): bit 24 is ``bt``, 36 ``mt``, 37 and the pkey bits 32-34
    print nothing, 35 has no name; no soft-dirty bit (27 is ``??``).
    """
    from livewalk.proc.maps import vm_flags_mnemonics

    class Prog:
        platform = drgn.Platform(drgn.Architecture.AARCH64)
        cache: dict[str, Any] = {}

        def __getitem__(self, name: str) -> Any:
            if name == "VMA_SHADOW_STACK_BIT":
                return drgn.Object(drgn.Program(drgn.host_platform), "int", 38)
            raise KeyError(name)

        def symbol(self, name: str) -> Any:
            if name in ("bti_enable", "mte_sync_tags", "cpu_enable_poe"):
                return name
            raise LookupError(name)

    flags = 0x3 | 1 << 24 | 1 << 27 | 7 << 32 | 1 << 35 | 1 << 36 | 1 << 37 | 1 << 38
    assert vm_flags_mnemonics(Prog(), flags) == "rd wr bt ?? ?? mt ss "  # type: ignore[arg-type]
