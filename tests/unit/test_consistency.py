# SPDX-License-Identifier: LGPL-2.1-or-later
"""livewalk.consistency: per-table and per-VMA verdicts, retries of what tore."""

from __future__ import annotations

import random
from typing import Any

import pytest

from livewalk.arch import PageTableLevel
from livewalk.arch.x86.pgtable import mk_pte
from livewalk.arch.x86.pgtable_types import _PAGE_ACCESSED, _PAGE_DIRTY
from livewalk.backend import TableReadError
from livewalk.backend.synthetic import DEFAULT_PTE_FLAGS, SyntheticBackend, SyntheticMM
from livewalk.consistency import (
    READ_ERROR,
    TABLE_CHANGED,
    VMA_TREE_CHANGED,
    TornError,
    read_consistent,
)
from livewalk.mm.pagewalk import MMWalk, MMWalkOps, walk_page_range

BASE = 0x7F00_0000_0000
MB2 = 2 << 20


def _mm(levels: int = 4) -> tuple[SyntheticBackend, SyntheticMM]:
    """Three VMAs: 8 MiB of 4 KiB pages, a 2 MiB THP VMA, 4 MiB sparse."""
    b = SyntheticBackend(levels=levels, copy_tables=True)
    mm = SyntheticMM(backend=b)
    mm.add_vma(BASE, BASE + 4 * MB2)
    for i in range(4):
        mm.map_range_4k(BASE + i * MB2, BASE + i * MB2 + 64 * 4096, pfn=0x10000 + i * 512)
    mm.add_vma(BASE + 8 * MB2, BASE + 9 * MB2)
    mm.map_2m(BASE + 8 * MB2, pfn=0x40000)
    mm.add_vma(BASE + 16 * MB2, BASE + 18 * MB2)
    mm.map_4k(BASE + 16 * MB2, pfn=0x777)
    mm.map_4k(BASE + 17 * MB2 + 4096, pfn=0x778)
    return b, mm


def _reader(mm: SyntheticMM) -> Any:
    """A read that collects {addr: pte value} (THPs as their PMD value)."""

    def read(s: int, e: int, walks: list[MMWalk]) -> dict[int, int]:
        out: dict[int, int] = {}

        def pte(p: Any, addr: int, next: int, walk: Any) -> int:
            out[addr] = p.value
            return 0

        def pmd(p: Any, addr: int, next: int, walk: Any) -> int:
            if p.leaf:
                out[addr] = p.value
            return 0

        assert walk_page_range(mm, s, e, MMWalkOps(pte_entry=pte, pmd_entry=pmd), walks=walks) == 0
        return out

    return read


def _splice(value: dict[int, int], s: int, e: int, new: dict[int, int]) -> dict[int, int]:
    kept = {a: v for a, v in value.items() if not s <= a < e}
    kept.update(new)
    return kept


def _truth(mm: SyntheticMM) -> dict[int, int]:
    b = mm.backend
    b.copy_tables = True
    return _reader(mm)(BASE, BASE + 18 * MB2, [])


def test_idle_target_is_never_flagged() -> None:
    for levels in (4, 5):
        b, mm = _mm(levels)
        for _ in range(3):
            r = read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice)
            c = r.consistency
            assert c.level == "walk" and c.torn == [] and c.whole
            assert c.vmas == 3 and c.vmas_torn == 0
            assert c.tables > 0 and c.tables_torn == 0
            assert c.reads == 1 and c.retried == []
            assert c.summary() == ""


def test_injected_pte_change_names_exactly_its_table() -> None:
    b, mm = _mm()
    table = mm.table_paddr(PageTableLevel.PTE, BASE + MB2)
    assert table is not None
    b.inject_after_read(table, lambda: mm.map_4k(BASE + MB2 + 100 * 4096, pfn=0x999))
    r = read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice, retries=0)
    c = r.consistency
    assert c.level == "torn"
    assert [(t.start, t.end, t.reason) for t in c.torn] == [(BASE + MB2, BASE + 2 * MB2, TABLE_CHANGED)]
    assert f"{table:#x}" in c.torn[0].detail
    assert c.tables_torn == 1 and c.vmas_torn == 1 and c.vmas == 3
    assert c.consistent(BASE, BASE + MB2) and not c.consistent(BASE + MB2, BASE + MB2 + 1)
    assert "1 of 3 VMAs changed while read" in c.summary()
    with pytest.raises(TornError, match="1 of 3 VMAs"):
        raise TornError(c)


def test_retry_reads_only_the_torn_table_and_splices() -> None:
    b, mm = _mm()
    table = mm.table_paddr(PageTableLevel.PTE, BASE + 2 * MB2)
    assert table is not None
    b.inject_after_read(table, lambda: mm.set_pte(BASE + 2 * MB2, 0))
    before = b.reads
    whole = read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice, retries=0)
    first_read_cost = b.reads - before
    b.inject_after_read(table, lambda: mm.map_4k(BASE + 2 * MB2, pfn=0x10000 + 2 * 512))
    before = b.reads
    r = read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice)
    c = r.consistency
    assert whole.consistency.level == "torn"
    assert c.level == "table" and c.torn == [] and not c.whole
    assert c.retried == [(BASE + 2 * MB2, BASE + 3 * MB2)] and c.reads == 2
    # the retry read PGD, PUD, PMD and that PTE table, and read them again
    assert b.reads - before == first_read_cost + 2 * 4
    assert r.value == _truth(mm)
    assert c.tables_torn == 0 and c.vmas_torn == 0


def test_injected_pmd_change_tears_its_2mib() -> None:
    b, mm = _mm()
    pmd_table = mm.table_paddr(PageTableLevel.PMD, BASE + 8 * MB2)
    assert pmd_table is not None
    # the THP is split under the reader: the PMD now points to a PTE table
    def split() -> None:
        mm.set_pmd(BASE + 8 * MB2, 0)
        mm.map_range_4k(BASE + 8 * MB2, BASE + 9 * MB2, pfn=0x40000)

    b.inject_after_read(pmd_table, split)
    r = read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice, retries=0)
    assert [(t.start, t.end, t.reason) for t in r.consistency.torn] == [
        (BASE + 8 * MB2, BASE + 9 * MB2, TABLE_CHANGED)
    ]
    r = read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice)
    assert r.consistency.level == "walk" and r.value == _truth(mm)


def test_injected_vma_change_names_exactly_that_vma() -> None:
    b, mm = _mm()
    third = mm.vmas[2]
    pgd = mm.pgd_paddr
    b.inject_after_read(pgd, lambda: mm.remove_vma(third))
    r = read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice, retries=0)
    c = r.consistency
    assert [(t.start, t.end, t.reason) for t in c.torn] == [(BASE + 16 * MB2, BASE + 18 * MB2, VMA_TREE_CHANGED)]
    assert "gone" in c.torn[0].detail
    # a VMA that appears is named too, and a retry of it settles
    mm.add_vma(third.vm_start, third.vm_end)
    b.inject_after_read(pgd, lambda: mm.add_vma(BASE + 12 * MB2, BASE + 13 * MB2))
    r = read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice, retries=0)
    assert [(t.start, t.end, t.reason) for t in r.consistency.torn] == [
        (BASE + 12 * MB2, BASE + 13 * MB2, VMA_TREE_CHANGED)
    ]
    r = read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice)
    assert r.consistency.level == "walk" and r.consistency.vmas == 4


def test_unit_vma_rereads_whole_vmas() -> None:
    b, mm = _mm()
    table = mm.table_paddr(PageTableLevel.PTE, BASE + MB2)
    assert table is not None
    b.inject_after_read(table, lambda: mm.set_pte(BASE + MB2, 0))
    r = read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice, unit="vma")
    assert r.consistency.retried == [(BASE, BASE + 4 * MB2)]
    assert r.consistency.level == "table" and r.value == _truth(mm)


def test_accessed_dirty_bits_and_untouched_entries_are_not_races() -> None:
    b, mm = _mm()
    table = mm.table_paddr(PageTableLevel.PTE, BASE)
    assert table is not None
    v = mk_pte(0x10000, DEFAULT_PTE_FLAGS & ~(_PAGE_ACCESSED | _PAGE_DIRTY))
    mm.set_pte(BASE, v)
    b.inject_after_read(table, lambda: mm.set_pte(BASE, v | _PAGE_ACCESSED | _PAGE_DIRTY))
    assert read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice).consistency.level == "walk"
    # a change in the same table but outside the range read is not looked at...
    b.inject_after_read(table, lambda: mm.map_4k(BASE + 300 * 4096, pfn=5))
    r = read_consistent(mm, BASE, BASE + 64 * 4096, _reader(mm), _splice)
    assert r.consistency.level == "walk"
    # ...and inside it, the torn range is what was read of the table
    b.inject_after_read(table, lambda: mm.map_4k(BASE + 30 * 4096, pfn=5))
    r = read_consistent(mm, BASE, BASE + 64 * 4096, _reader(mm), _splice, retries=0)
    assert [(t.start, t.end) for t in r.consistency.torn] == [(BASE, BASE + 64 * 4096)]


def test_read_error_is_torn_and_retried() -> None:
    b, mm = _mm()
    inner = _reader(mm)
    calls = [0]

    def flaky(s: int, e: int, walks: list[MMWalk]) -> dict[int, int]:
        calls[0] += 1
        if calls[0] == 1:
            raise TableReadError(0x1234)
        return inner(s, e, walks)  # type: ignore[no-any-return]

    r = read_consistent(mm, BASE, BASE + 18 * MB2, flaky, _splice, retries=0)
    assert r.value is None and [t.reason for t in r.consistency.torn] == [READ_ERROR]
    assert (r.consistency.torn[0].start, r.consistency.torn[0].end) == (BASE, BASE + 18 * MB2)
    calls[0] = 0
    r = read_consistent(mm, BASE, BASE + 18 * MB2, flaky, _splice)
    assert r.value == _truth(mm) and r.consistency.level == "walk" and r.consistency.reads == 2


def test_callers_own_errors_propagate() -> None:
    b, mm = _mm()

    def buggy(s: int, e: int, walks: list[MMWalk]) -> None:
        raise ValueError("caller's bug")

    with pytest.raises(ValueError, match="caller's bug"):
        read_consistent(mm, BASE, BASE + MB2, buggy)
    with pytest.raises(ValueError):
        read_consistent(mm, BASE, BASE + MB2, _reader(mm), retries=-1)


def test_retries_are_bounded_on_a_target_that_never_holds_still() -> None:
    b, mm = _mm()
    table = mm.table_paddr(PageTableLevel.PTE, BASE + 3 * MB2)
    assert table is not None
    n = [0]

    def again() -> None:
        n[0] += 1
        mm.map_4k(BASE + 3 * MB2 + 8 * 4096, pfn=0x100 + n[0])
        b.inject_after_read(table, again)

    b.inject_after_read(table, again)
    r = read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice, retries=2)
    c = r.consistency
    assert c.rounds == 3 and c.reads == 3
    assert [(t.start, t.end, t.reason) for t in c.torn] == [(BASE + 3 * MB2, BASE + 4 * MB2, TABLE_CHANGED)]
    assert c.retried == [(BASE + 3 * MB2, BASE + 4 * MB2)] * 2


def test_odd_lock_sequence_compares_vmas_one_by_one() -> None:
    b, mm = _mm()
    mm.mm_lock_seq += 1  # a writer holds the mmap lock, changing nothing we read
    r = read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice)
    assert r.consistency.level == "table" and not r.consistency.whole


def test_injected_change_is_always_caught_fuzz() -> None:
    """A real change to a random entry the read used is always caught, with exactly its range."""
    rng = random.Random(15)
    for _ in range(300):
        b, mm = _mm(rng.choice((4, 5)))
        i = rng.randrange(4)
        addr = BASE + i * MB2 + rng.randrange(64) * 4096
        table = mm.table_paddr(PageTableLevel.PTE, addr)
        assert table is not None
        old = mm.lookup(PageTableLevel.PTE, addr)
        new = rng.choice((0, mk_pte(rng.randrange(1, 1 << 30), DEFAULT_PTE_FLAGS)))
        if new == old:
            continue
        b.inject_after_read(table, lambda m=mm, a=addr, v=new: m.set_pte(a, v))
        r = read_consistent(mm, BASE, BASE + 18 * MB2, _reader(mm), _splice, retries=0)
        assert [(t.start, t.end) for t in r.consistency.torn] == [(BASE + i * MB2, BASE + (i + 1) * MB2)]


# -- a target that cannot change: its tables are not read again ---------------


def test_static_target_tables_not_read_again() -> None:
    import sys

    from livewalk.consistency import ranges

    sys.path.insert(0, __file__.rsplit("/", 1)[0] + "/backend")
    from fakekernel import LiveBackend, fake_kernel

    prog, _ = fake_kernel()  # a program that is not IS_LIVE: a vmcore's
    from livewalk.backend.drgn import DrgnBackend

    assert ranges._static(DrgnBackend(prog)) is True
    assert ranges._static(LiveBackend(prog, [])) is False
    mm = SyntheticMM()
    mm.add_vma(0x40_0000, 0x80_0000)
    mm.fill_pte_table(0x40_0000, [mk_pte(0x100 + i, DEFAULT_PTE_FLAGS) for i in range(512)])
    assert ranges._static(mm.livewalk_backend) is False  # synthetic targets change under tests
    walks: list[MMWalk] = []
    assert walk_page_range(mm, 0x40_0000, 0x60_0000, MMWalkOps(pte_entry=lambda *a: 0), walks=walks) == 0

    class Refuses:
        def read_table(self, paddr: int) -> Any:
            raise AssertionError("a static target's table read again")

    chk: Any = ranges._Check()
    ranges._check_tables(walks[0], 0x40_0000, 0x60_0000, chk, Refuses(), static=True)  # type: ignore[arg-type]
    assert chk.tables and not any(t[2] for t in chk.tables.values()) and not chk.torn
    assert chk.table_reads == 0
    live: Any = ranges._Check()
    ranges._check_tables(walks[0], 0x40_0000, 0x60_0000, live, mm.livewalk_backend)
    assert live.tables == chk.tables and live.table_reads == len(chk.tables)
