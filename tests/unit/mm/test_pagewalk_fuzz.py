# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Fuzzing the walker and the race detector over random and corrupted synthetic
page tables (issue 6).

* ``test_seeded_corruption_fuzz``: a seeded loop of ``LIVEWALK_FUZZ_CASES``
  (default 20,000) corrupted page-table sets, each walked by a random entry
  point with random callbacks over a random range. Every walk must end
  within a time bound, raise nothing, return what its callbacks asked for,
  and report each unreadable/bad/looping table as a ``WalkError`` with a
  valid level, address and reason. The number of cases, errors by reason
  and the slowest walk are printed.
* ``test_hypothesis_corruption``: the same property driven by hypothesis.
* ``test_race_detector_fuzz``: a backend that changes entries *while* the
  walk reads; a walk is flagged torn exactly when a table it had already
  read was changed (beyond A/D bits), as the ground truth of the mutations
  says.
"""

from __future__ import annotations

import errno
import os
import random
import time
from array import array
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livewalk import (
    MMWalkOps,
    walk_kernel_page_table_range,
    walk_page_range,
    walk_page_range_debug,
    walk_page_vma,
)
from livewalk.arch import PageTableLevel
from livewalk.backend.synthetic import SyntheticBackend, SyntheticMM
from livewalk.consistency import checked_walk, walk_with_retry

CASES = int(os.environ.get("LIVEWALK_FUZZ_CASES", "20000"))
#: A walk of the small ranges used here takes milliseconds; anything near
#: this bound is a hang (an endless ACTION_AGAIN, a loop in the tables).
WALK_BOUND_S = 5.0
REASONS = {"bad", "unreadable", "again-limit", "loop"}
M64 = (1 << 64) - 1
BASE = 0x7F00_0000_0000
CBS = ("pgd_entry", "p4d_entry", "pud_entry", "pmd_entry", "pte_entry", "pte_hole",
       "hugetlb_entry", "test_walk", "pre_vma", "post_vma")


def _build(rng: random.Random, levels: int) -> SyntheticMM:
    """A small random address space: 4 KiB pages, THPs, swap, a 1 GiB page, a hugetlb VMA."""
    mm = SyntheticMM(levels=levels)
    mm.add_vma(BASE, BASE + 0x800000)
    for _ in range(rng.randrange(1, 24)):
        a = BASE + rng.randrange(0, 0x400000 // 4096) * 4096
        kind = rng.random()
        pmd = mm.lookup(PageTableLevel.PMD, a)
        if pmd and (pmd & 0x80 or not pmd & 1):
            continue
        if kind < 0.6:
            mm.map_4k(a, pfn=rng.randrange(1, 1 << 30))
        elif kind < 0.8:
            mm.map_swap(a, rng.randrange(0, 4), rng.randrange(1, 1 << 20))
        else:
            mm.map_protnone(a, rng.randrange(1, 1 << 30))
    if rng.random() < 0.5:
        mm.map_2m(BASE + 0x600000, pfn=0x40000)
    if rng.random() < 0.2:
        mm.add_vma(BASE + 0x4000_0000, BASE + 0x8000_0000)
        mm.map_1g(BASE + 0x4000_0000, pfn=0x100000)
    return mm


def _corrupt(rng: random.Random, mm: SyntheticMM) -> list[tuple[int, int, int]]:
    """Overwrite 1-6 random slots of random tables; returns (paddr, index, value)."""
    mem = mm.livewalk_backend._mem
    tables = sorted(mem)
    done = []
    for _ in range(rng.randrange(1, 7)):
        paddr = rng.choice(tables)
        idx = rng.randrange(512) if rng.random() < 0.3 else _hot_index(rng, mm, paddr)
        r = rng.random()
        other = rng.choice(tables)
        if r < 0.25:
            value = rng.getrandbits(64)
        elif r < 0.5:  # a pointer to an existing table (may be a loop or fan-in)
            value = other | rng.choice((0x67, 0x63, 0x27, 0x25))
        elif r < 0.6:  # a pointer outside RAM / to nowhere
            value = (rng.getrandbits(40) << 12) | 0x67
        elif r < 0.7:  # a huge leaf
            value = (rng.getrandbits(30) << 21) | 0xE7
        elif r < 0.8:  # p?d_bad: present, not a table (no _PAGE_USER/RW/ACCESSED/DIRTY)
            value = other | 0x1
        elif r < 0.9:
            value = rng.choice((0x60, 0x80, 0x100, 0x2, 0x8000000000000000, M64))
        else:
            value = 0
        mem[paddr][idx] = value
        done.append((paddr, idx, value))
    if rng.random() < 0.05:
        mm.livewalk_backend.unreadable.add(rng.choice(tables))
    return done


def _hot_index(rng: random.Random, mm: SyntheticMM, paddr: int) -> int:
    """An index the walk of BASE.. will actually visit, for most levels."""
    shifts = {mm.paging.pgdir_shift, 39, 30, 21, 12}
    shift = rng.choice(sorted(shifts))
    return ((BASE + rng.randrange(0, 0x800000)) >> shift) & 511


class _Ops(MMWalkOps):
    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.calls = 0
        self.stop_at = rng.choice((None, None, None, rng.randrange(1, 50)))
        self.stop_value = rng.choice((1, 7, -errno.EFAULT, -errno.ENOMEM, 2**40))
        for name in rng.sample(CBS, rng.randrange(1, len(CBS) + 1)):
            setattr(self, name, self._cb(name))

    def _cb(self, name: str) -> Any:
        def cb(*args: Any) -> int:
            self.calls += 1
            if self.stop_at is not None and self.calls >= self.stop_at and name not in ("post_vma",):
                return self.stop_value
            return 0

        return cb


def _one_case(rng: random.Random, stats: dict[str, int]) -> float:
    levels = rng.choice((4, 5))
    mm = _build(rng, levels)
    _corrupt(rng, mm)
    ops = _Ops(rng)
    walks: list[Any] = []
    start = BASE + rng.randrange(0, 0x400) * 4096
    end = start + rng.randrange(1, 0x800) * 4096
    how = rng.random()
    t0 = time.monotonic()
    if how < 0.55:
        ret = walk_page_range(mm, start, end, ops, walks=walks)
    elif how < 0.7:
        ret = walk_page_vma(mm.vmas[0].obj, ops, walks=walks)
    elif how < 0.85:
        ret = walk_page_range_debug(mm, start, end, ops, None, walks=walks)
    elif how < 0.95:
        # a whole-user-space no-VMA walk: only the upper levels (cheap)
        for name in ("pte_entry", "pte_hole"):
            setattr(ops, name, None)
        ret = walk_page_range_debug(mm, 0, 1 << (47 if levels == 4 else 56), ops, None, walks=walks)
    else:
        ret = walk_kernel_page_table_range(start, end, ops, backend=mm.livewalk_backend, walks=walks)
    dt = time.monotonic() - t0
    assert dt < WALK_BOUND_S, f"walk took {dt:.1f} s"
    assert isinstance(ret, int)
    if ops.stop_at is None:
        assert ret == 0, ret
    else:
        assert ret in (0, ops.stop_value), ret
    assert walks, "the walk was not recorded"
    for err in walks[-1].errors:
        assert err.reason in REASONS, err
        assert 0 <= err.level <= 4, err
        assert 0 <= err.addr <= M64 and 0 <= err.value <= M64, err
        stats[err.reason] = stats.get(err.reason, 0) + 1
    stats["cases"] = stats.get("cases", 0) + 1
    stats["callbacks"] = stats.get("callbacks", 0) + ops.calls
    return dt


def test_seeded_corruption_fuzz() -> None:
    rng = random.Random(0x11FE_3A1C)
    stats: dict[str, int] = {}
    slowest = 0.0
    t0 = time.monotonic()
    for _ in range(CASES):
        slowest = max(slowest, _one_case(rng, stats))
    took = time.monotonic() - t0
    print(f"\nfuzz: {stats['cases']} corrupted page-table sets walked in {took:.1f} s, "
          f"slowest walk {slowest * 1000:.1f} ms, {stats['callbacks']} callbacks, errors: "
          + ", ".join(f"{k}={stats.get(k, 0)}" for k in sorted(REASONS)))
    assert stats["cases"] == CASES
    # the corruptions really reached the walker: every kind of error was met
    for reason in ("bad", "unreadable", "loop"):
        assert stats.get(reason, 0) > 0, (reason, stats)


@settings(max_examples=int(os.environ.get("LIVEWALK_FUZZ_HYPOTHESIS", "2000")), deadline=None,
          derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2**32 - 1))
def test_hypothesis_corruption(seed: int) -> None:
    _one_case(random.Random(seed), {})


# -- loops, precisely ----------------------------------------------------------


def test_loop_to_an_ancestor_is_reported_with_level_and_address() -> None:
    mm = SyntheticMM(levels=4)
    mm.add_vma(BASE, BASE + 0x400000)
    mm.map_4k(BASE, pfn=0x1234)
    mm.map_4k(BASE + 0x200000, pfn=0x1235)
    pud_table = mm.table_paddr(PageTableLevel.PUD, BASE)
    assert pud_table is not None
    # the second PMD entry points back at the PUD table: a loop
    mm.set_pmd(BASE + 0x200000, pud_table | 0x67)
    seen: list[int] = []
    ops = MMWalkOps(pte_entry=lambda pte, addr, next, walk: seen.append(addr))
    walks: list[Any] = []
    assert walk_page_range(mm, BASE, BASE + 0x400000, ops, walks=walks) == 0
    errs = walks[0].errors
    assert [(e.level, e.addr, e.value, e.reason) for e in errs] == [
        (PageTableLevel.PMD, BASE + 0x200000, pud_table, "loop")
    ]
    # the first PTE table was walked (512 PTEs), the looping one was not
    assert seen == [BASE + i * 4096 for i in range(512)]


def test_top_table_reached_again_is_a_loop() -> None:
    mm = SyntheticMM(levels=5)
    mm.add_vma(BASE, BASE + 0x200000)
    mm.map_4k(BASE, pfn=0x1234)
    # the P4D entry points back to the PGD table
    mm.set_p4d(BASE, mm.pgd_paddr | 0x67)
    walks: list[Any] = []
    ops = MMWalkOps(pte_entry=lambda *a: 0, pte_hole=lambda *a: 0)
    assert walk_page_range(mm, BASE, BASE + 0x200000, ops, walks=walks) == 0
    assert [(e.level, e.value, e.reason) for e in walks[0].errors] == [
        (PageTableLevel.P4D, mm.pgd_paddr, "loop")
    ]


# -- the race detector under random concurrent change --------------------------


class RacingBackend(SyntheticBackend):
    """
    Returns a copy of each table (as a real backend does) and, after the
    ``mutate_after``-th read, writes ``mutation`` into the real tables: a
    change made by "the kernel" while the walk runs. ``seq`` is an
    mmap-lock-like sequence count (bumped by ``vma_change``).
    """

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.mutate_after: int | None = None
        self.mutation: tuple[int, int, int] | None = None
        self.read_log: list[int] = []
        self.mutated_at: int | None = None
        self.seq = 0
        self.vma_change_at: int | None = None

    def read_table(self, paddr: int) -> Any:
        t = super().read_table(paddr)
        self.read_log.append(paddr)
        n = len(self.read_log)
        if self.mutation is not None and n == self.mutate_after:
            p, i, v = self.mutation
            self._mem[p][i] = v
            self.mutated_at = n
        if self.vma_change_at == n:
            self.seq += 2
        return array("Q", t)

    def mm_stamp(self, mm: Any) -> tuple[int, ...]:
        return (self.seq,)


def test_race_detector_fuzz() -> None:
    rng = random.Random(0x7042)
    n = int(os.environ.get("LIVEWALK_FUZZ_RACES", "3000"))
    flagged = expected_flagged = 0
    for _ in range(n):
        levels = rng.choice((4, 5))
        b = RacingBackend(levels=levels)
        mm = SyntheticMM(backend=b)
        mm.add_vma(BASE, BASE + 0x800000)
        for _ in range(rng.randrange(1, 16)):
            mm.map_4k(BASE + rng.randrange(0, 0x800) * 4096, pfn=rng.randrange(1, 1 << 30))
        tables = sorted(b._mem)
        p = rng.choice(tables)
        i = _hot_index(rng, mm, p)
        old = b._mem[p][i]
        kind = rng.random()
        if kind < 0.5:
            new = rng.getrandbits(64)
        elif kind < 0.7 and old & 1:
            new = old ^ 0x60  # only the hardware A/D bits: not a race
        else:
            new = 0
        b.mutation = (p, i, new)
        b.mutate_after = rng.randrange(1, 8)
        if rng.random() < 0.2:
            b.vma_change_at = rng.randrange(1, 6)
        r = checked_walk(walk_page_range, mm, BASE, BASE + 0x800000,
                         MMWalkOps(pte_entry=lambda *a: 0, pte_hole=lambda *a: 0))
        # ground truth: the walk used table p before it was changed (read
        # number mutated_at already returns the new value), the check read
        # it again after the change, and the change is more than A/D bits;
        # or the "mmap lock" moved
        assert r.walk is not None
        nwalk = r.walk.table_reads
        used_before = seen_new = False
        if b.mutated_at is not None:
            used_before = p in b.read_log[: min(b.mutated_at - 1, nwalk)]
            rereads = [k for k in range(nwalk, len(b.read_log)) if b.read_log[k] == p]
            seen_new = bool(rereads) and rereads[0] >= b.mutated_at - 1
        used_before = used_before and seen_new
        real_change = new != old and not (old & new & 1 and (old ^ new) & ~0x60 == 0)
        vma_moved = b.vma_change_at is not None and b.vma_change_at <= len(b.read_log)
        expect = (used_before and real_change) or vma_moved
        assert r.torn == expect, (r.consistency, used_before, real_change, vma_moved)
        assert r.complete
        flagged += r.torn
        expected_flagged += expect
    print(f"\nrace fuzz: {n} racing walks, {flagged} flagged torn (ground truth {expected_flagged})")
    assert 0 < flagged < n


def test_walk_with_retry_is_bounded_and_recovers() -> None:
    b = RacingBackend(levels=4)
    mm = SyntheticMM(backend=b)
    mm.add_vma(BASE, BASE + 0x200000)
    mm.map_4k(BASE, pfn=0x1234)
    pte_table = mm.table_paddr(PageTableLevel.PTE, BASE)
    assert pte_table is not None
    # first attempt: the PTE is zapped after the walk read its table (the
    # walk reads 4 tables; the 5th read is the check's first re-read)
    b.mutation = (pte_table, 0, 0)
    b.mutate_after = 5
    attempts: list[int] = []
    seen: list[int] = []

    def reset(n: int) -> None:
        attempts.append(n)
        seen.clear()

    ops = MMWalkOps(pte_entry=lambda pte, addr, next, walk: seen.append(pte.value) and 0)
    r = walk_with_retry(walk_page_range, mm, BASE, BASE + 0x200000, ops, pre_attempt=reset)
    assert r.attempts == 2 and r.torn_attempts == 1 and not r.torn
    assert attempts == [0, 1]
    assert seen[0] == 0  # the retry saw the zapped PTE
    # a target that keeps changing: retries stop after the bound, last attempt torn
    b.vma_change_at = None

    class Always(RacingBackend):
        def mm_stamp(self, mm: Any) -> tuple[int, ...]:
            self.seq += 2
            return (self.seq,)

    b2 = Always(levels=4)
    mm2 = SyntheticMM(backend=b2)
    mm2.add_vma(BASE, BASE + 0x200000)
    r = walk_with_retry(walk_page_range, mm2, BASE, BASE + 0x200000, MMWalkOps(), retries=3)
    assert r.torn and r.attempts == 4 and r.torn_attempts == 4
    assert r.consistency.reasons == ["mm changed"]


def test_odd_sequence_means_a_writer_holds_the_lock() -> None:
    b = RacingBackend(levels=4)
    b.seq = 7
    mm = SyntheticMM(backend=b)
    mm.add_vma(BASE, BASE + 0x200000)
    r = checked_walk(walk_page_range, mm, BASE, BASE + 0x200000, MMWalkOps())
    assert r.torn and r.consistency.reasons == ["mm_lock_seq odd"]


def test_unreadable_table_after_walk_marks_torn() -> None:
    b = RacingBackend(levels=4)
    mm = SyntheticMM(backend=b)
    mm.add_vma(BASE, BASE + 0x200000)
    mm.map_4k(BASE, pfn=0x1234)
    pte_table = mm.table_paddr(PageTableLevel.PTE, BASE)
    assert pte_table is not None

    def gone(*a: Any) -> int:
        b.unreadable.add(pte_table)  # the table is freed while we look at it
        return 0

    r = checked_walk(walk_page_range, mm, BASE, BASE + 0x200000, MMWalkOps(pte_entry=gone))
    assert r.ret == 0 and r.torn and "tables changed" in r.consistency.reasons


def test_callback_exception_is_not_a_race() -> None:
    mm = SyntheticMM(levels=4)
    mm.add_vma(BASE, BASE + 0x200000)
    mm.map_4k(BASE, pfn=1)

    def boom(*a: Any) -> int:
        raise ValueError("caller's bug")

    try:
        walk_with_retry(walk_page_range, mm, BASE, BASE + 0x200000, MMWalkOps(pte_entry=boom))
    except ValueError as e:
        assert str(e) == "caller's bug"
    else:
        raise AssertionError("the callback's exception was swallowed")
