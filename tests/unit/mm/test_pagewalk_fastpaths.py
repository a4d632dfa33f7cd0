# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The walker's shortcuts for small questions (issue [E]) give what the long
way gives: a level loop inside one slot, the per-paging geometry, and the
PTE loop's entries whose ``kaddr`` is worked out on read.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livewalk.arch import ULONG_MAX
from livewalk.arch import PageTableLevel as L
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.x86.pgtable import X86Paging, mk_pte
from livewalk.backend.synthetic import DEFAULT_PTE_FLAGS, SyntheticMM
from livewalk.mm import pagewalk
from livewalk.mm.entry import Entry
from livewalk.mm.pagewalk import MMWalkOps, real_depth, walk_page_range

PAGINGS = [
    X86Paging(levels=4),
    X86Paging(levels=5),
    Arm64Paging(page_shift=12, va_bits=48, vabits_actual=48, phys_offset=0),
    Arm64Paging(page_shift=14, va_bits=47, vabits_actual=47, phys_offset=0),
    Arm64Paging(page_shift=16, va_bits=42, vabits_actual=42, phys_offset=0),
    Arm64Paging(page_shift=12, va_bits=52, vabits_actual=48, phys_offset=0),  # folded at boot
]
IDS = ["x86-4", "x86-5", "arm64-4k", "arm64-16k", "arm64-64k", "arm64-4k-52-folded"]


@given(
    start=st.integers(0, ULONG_MAX - 1),
    slots=st.integers(0, 4),
    part=st.integers(0, (1 << 48) - 1),
    shift=st.sampled_from([12, 21, 30, 39, 48]),
)
def test_level_ranges_is_the_do_while(start: int, slots: int, part: int, shift: int) -> None:
    end = min(start + (slots << shift) + part % (1 << shift) + 1, ULONG_MAX)
    if end <= start:
        return
    want = list(pagewalk._ranges(start, end, 1 << shift))
    assert list(pagewalk._level_ranges(start, end, shift, False)) == want
    assert list(pagewalk._level_ranges(start, end, shift, True)) == [(start, end)]


@pytest.mark.parametrize("paging", PAGINGS, ids=IDS)
def test_geometry_is_the_pagings(paging: Any) -> None:
    g = pagewalk._geometry(paging)
    assert g is pagewalk._geometry(paging)
    for lv in L:
        assert g.shift[lv] == paging.level_shift(lv)
        assert g.mask[lv] == paging.ptrs_per(lv) - 1
        assert g.folded[lv] == paging.folded(lv)
        assert g.at_boot[lv] == paging.folded_at_boot(lv)
    assert g.depth == tuple(real_depth(d, paging) for d in range(4))
    assert (g.page_shift, g.ptrs_pte) == (paging.page_shift, paging.ptrs_per(L.PTE))


@pytest.mark.parametrize("paging", PAGINGS, ids=IDS)
def test_pte_kaddr_is_the_slot(paging: Any) -> None:
    mm = SyntheticMM(paging=paging)
    page = paging.page_size
    pmd_size = page * paging.ptrs_per(L.PTE)
    base = 0x7F00_0000_0000 & ~(pmd_size - 1) if paging.task_size_max > 1 << 47 else 0x40_0000_0000
    mm.add_vma(base, base + 2 * pmd_size)
    mm.map_page(base + 7 * page, pfn=0x1234)  # a PTE table in each PMD,
    mm.map_page(base + pmd_size, pfn=0x1235)  # none PTEs around the pages
    got: list[tuple[int, int, int]] = []
    kept: list[Entry] = []

    def pte_entry(pte: Entry, addr: int, next: int, walk: Any) -> int:  # noqa: A002
        got.append((addr, next, pte.kaddr))
        if addr == base + 5 * page:
            kept.append(pte)
        return 0

    start, end = base + 2 * page, base + pmd_size + 4 * page
    assert walk_page_range(mm, start, end, MMWalkOps(pte_entry=pte_entry)) == 0
    assert [a for a, _, _ in got] == list(range(start, end, page))
    assert all(n == a + page for a, n, _ in got)
    # in each table the slots follow each other, 8 bytes apart, from the
    # slot of the table's first address
    by_table: dict[int, list[int]] = {}
    for a, _, k in got:
        by_table.setdefault(a & ~(pmd_size - 1), []).append(k)
    for t, ks in by_table.items():
        first = max(start, t)
        idx = (first >> paging.page_shift) & (paging.ptrs_per(L.PTE) - 1)
        assert ks == [ks[0] + 8 * i for i in range(len(ks))]
        assert (ks[0] - 8 * idx) % page == 0  # the table's own page
    assert kept[0].kaddr == dict((a, k) for a, _, k in got)[base + 5 * page]


def test_pte_entry_returns() -> None:
    mm = SyntheticMM()
    mm.add_vma(0x40_0000, 0x80_0000)
    mm.fill_pte_table(0x40_0000, [mk_pte(0x100 + i, DEFAULT_PTE_FLAGS) for i in range(512)])
    for ret, want, calls in ((None, 0, 512), (False, 0, 512), (0, 0, 512), (True, 1, 1), (-22, -22, 1)):
        n = [0]

        def pte_entry(pte: Entry, addr: int, next: int, walk: Any, ret: Any = ret, n: list[int] = n) -> Any:  # noqa: A002
            n[0] += 1
            return ret

        assert walk_page_range(mm, 0x40_0000, 0x60_0000, MMWalkOps(pte_entry=pte_entry)) == want
        assert n[0] == calls
    with pytest.raises(TypeError):
        walk_page_range(mm, 0x40_0000, 0x60_0000, MMWalkOps(pte_entry=lambda p, a, n, w: 0.0))
