#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Small questions on any target, without the VM (issue [E]): per call, warm,
best of several loops, the time and the number of reads of a one-address
``vtop``, a 2 MiB ``pagemap_read`` and ``pagemap_read`` of 512-page blocks
spread over every VMA of a process (up to ``--blocks`` per VMA, evenly
spaced, as ``bench_targets.py`` samples them). A benchmark that prints
figures, not a timed test.

Usage::

    python3 bench/bench_small.py -c VMCORE -s VMLINUX --pid PID \\
        [--vtop ADDR]... [--pagemap ADDR]... [--blocks N] [--live]

The reads are counted in a second pass through memory segments laid over
the target's (each read passed on to a second program of the same target):
``phys`` are physical reads (page tables, ``mm_struct``), ``virt`` virtual
ones (the vmemmap's ``struct page`` blocks: over QMP each also costs drgn's
walk of the kernel page tables). ``--live`` makes the backend treat a
vmcore as a live target (the VMA cache checked on every call), which is
what every call over QMP or ``/proc/kcore`` pays. Set ``LIVEWALK_BENCH_FROM``
to a checkout to measure its livewalk instead of this one's.

Output: ``CALL <name> <us per call> <phys reads> <virt reads>`` lines, then
``TIME phys_read_4k <us>``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

_FROM = os.environ.get("LIVEWALK_BENCH_FROM") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _FROM not in sys.path:
    sys.path.insert(0, _FROM)

# the timer, the page size and the sample of bench_targets.py, beside this file
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_targets import PAGE, _sample_blocks, per_call  # noqa: E402

BLOCK = 512


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("-c", "--core", help="a vmcore (default: the running kernel)")
    ap.add_argument("-s", "--symbols", action="append", default=[], help="vmlinux or a directory")
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--vtop", action="append", default=[], help="hexadecimal address (repeatable)")
    ap.add_argument("--pagemap", action="append", default=[], help="hexadecimal start of 2 MiB (repeatable)")
    ap.add_argument("--blocks", type=int, default=4, help="512-page blocks per VMA (0: none)")
    ap.add_argument("--live", action="store_true", help="treat a vmcore as a live target")
    args = ap.parse_args()

    from livewalk.backend.drgn import DrgnBackend
    from livewalk.proc.pagemap import pagemap_read
    from livewalk.program import open_program
    from livewalk.task import resolve_mm
    from livewalk.tools.vtop import vtop

    def attach() -> Any:
        return open_program(core=args.core, symbols=args.symbols)

    prog = attach()
    mm = resolve_mm(prog, args.pid)
    backend = DrgnBackend.for_program(prog)
    if args.live:
        backend._live = True  # a benchmark's stand-in for a live target
    vmas = [(v.vm_start, v.vm_end) for v in backend.vmas(mm)]
    cases: list[tuple[str, Callable[[], Any], int, int]] = []
    for a in args.vtop:
        addr = int(a, 16)
        cases.append((f"vtop_{addr:x}", lambda addr=addr: vtop(mm, addr), 1000, 1))
    for a in args.pagemap:
        s = int(a, 16)
        cases.append((f"pagemap_2mib_{s:x}", lambda s=s: pagemap_read(mm, s, s + (2 << 20)), 100, 1))
    sample = [b for bl in _sample_blocks(vmas, BLOCK, args.blocks) for b in bl] if args.blocks else []
    if sample:
        cases.append(("pagemap_block", lambda: [pagemap_read(mm, s, e) for s, e in sample], 5, len(sample)))
    times = {name: per_call(fn, n, repeat=5) / per for name, fn, n, per in cases}
    table = backend.pgd_phys(backend.mm_pgd(mm))
    read_4k = per_call(lambda: prog.read(table, PAGE, True), 5000, repeat=5)

    # the counting pass: segments over the whole of both address spaces
    other = attach()
    counts = [0, 0]
    counting = [False]

    def phys(address: int, count: int, offset: int, physical: bool) -> bytes:
        counts[0] += counting[0]
        return other.read(address, count, True)  # type: ignore[no-any-return]

    def virt(address: int, count: int, offset: int, physical: bool) -> bytes:
        counts[1] += counting[0]
        return other.read(address, count, False)  # type: ignore[no-any-return]

    prog.add_memory_segment(0, 2**64 - 1, phys, True)
    prog.add_memory_segment(0, 2**64 - 1, virt, False)
    for name, fn, _, per in cases:
        fn()
        counts[:] = [0, 0]
        counting[0] = True
        fn()
        counting[0] = False
        print(f"CALL {name} {times[name] * 1e6:.1f} {counts[0] / per:.2f} {counts[1] / per:.2f}", flush=True)
    if sample:
        print(f"# pagemap_block: {len(sample)} blocks, {sum((e - s) // PAGE for s, e in sample)} pages")
    print(f"TIME phys_read_4k {read_4k * 1e6:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
