#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Walker benchmark (not a test): pte_entry callbacks per second with a no-op
callback over a fully populated 1 GiB range of the synthetic backend, and
the time of a pmd_entry-only walk of the same range. Prints the number of
page-table pages read per walk (each is read once, cached by physical
address), and the pte_entry rate against the rate of bare Python calls of the
same no-op function in the same run (issue [E]) as a RATIO line.

Usage: python3 bench/bench_walker.py [--levels 4|5] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from livewalk.arch.x86.pgtable import mk_pte
from livewalk.arch.x86.pgtable_types import PMD_SIZE, PUD_SIZE
from livewalk.backend.synthetic import DEFAULT_PTE_FLAGS, SyntheticMM  # noqa: E402
from livewalk.mm.pagewalk import MMWalkOps, walk_page_range  # noqa: E402

START = 0x7F0000000000 & ~(PUD_SIZE - 1)


def build(levels: int) -> SyntheticMM:
    mm = SyntheticMM(levels=levels)
    mm.add_vma(START, START + PUD_SIZE)
    pfn = 0x100000
    for pmd in range(START, START + PUD_SIZE, PMD_SIZE):
        mm.fill_pte_table(pmd, [mk_pte(pfn + i, DEFAULT_PTE_FLAGS) for i in range(512)])
        pfn += 512
    return mm


def bare_call_rate(fn, n: int, repeat: int) -> float:
    """
    Calls per second of *fn* called directly from a Python loop with the
    arguments a pte_entry gets (an object, two addresses, the walk), the
    ceiling a walker that calls it *n* times cannot beat.
    """
    entry, walk = object(), object()
    best = float("inf")
    for _ in range(repeat):
        addr = START
        t0 = time.perf_counter()
        for _ in range(n):
            fn(entry, addr, addr + 4096, walk)
            addr += 4096
        best = min(best, time.perf_counter() - t0)
    return n / best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--levels", type=int, default=5, choices=(4, 5))
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    mm = build(args.levels)
    backend = mm.livewalk_backend
    n_ptes = PUD_SIZE // 4096

    def pte_entry(pte, addr, next, walk):  # noqa: A002
        return 0

    def pmd_entry(pmd, addr, next, walk):  # noqa: A002
        return 0

    best_pte = float("inf")
    bare = 0.0
    reads_pte = reads_pmd = 0
    # The walks and the bare-call loops alternate, each the best of its runs:
    # on a shared machine both see the same load.
    for _ in range(max(5, args.repeat)):
        before = backend.reads
        t0 = time.perf_counter()
        walk_page_range(mm, START, START + PUD_SIZE, MMWalkOps(pte_entry=pte_entry))
        dt = time.perf_counter() - t0
        reads_pte = backend.reads - before
        best_pte = min(best_pte, dt)
        bare = max(bare, bare_call_rate(pte_entry, n_ptes, 1))
    # check the count once with a counting callback (not timed)
    calls = [0]
    walk_page_range(
        mm, START, START + PUD_SIZE,
        MMWalkOps(pte_entry=lambda p, a, n, w: calls.__setitem__(0, calls[0] + 1)),
    )
    assert calls[0] == n_ptes, calls[0]
    best_pmd = float("inf")
    for _ in range(args.repeat * 5):
        before = backend.reads
        t0 = time.perf_counter()
        walk_page_range(mm, START, START + PUD_SIZE, MMWalkOps(pmd_entry=pmd_entry))
        dt = time.perf_counter() - t0
        reads_pmd = backend.reads - before
        best_pmd = min(best_pmd, dt)
    rate = n_ptes / best_pte
    print(f"levels={args.levels} range=1 GiB fully populated ({n_ptes} PTEs, 512 PTE tables)")
    print(f"pte_entry no-op walk: {best_pte * 1e3:.1f} ms, {rate:,.0f} pte_entry calls/s, "
          f"{reads_pte} table reads/walk")
    print(f"pmd_entry-only walk:  {best_pmd * 1e3:.2f} ms, {best_pte / best_pmd:.0f}x faster, "
          f"{reads_pmd} table reads/walk")
    print(f"bare calls of the same no-op: {bare:,.0f} calls/s")
    print(f"RATIO pte_entry_rate_over_bare_calls {rate / bare:.2f}")
    ok = rate >= 1_000_000 and best_pte / best_pmd >= 50
    print("targets (>= 1,000,000 pte_entry/s, pmd-only >= 50x):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
