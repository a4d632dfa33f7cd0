#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""
livewalk against what users would use instead, side by side, in one VM boot
(issue [5]). A benchmark that prints figures, not a timed test.

Usage::

    python3 bench/bench_targets.py [--quick] [--levels 4|5] [--arm64-levels 0|4|5] [--json FILE]

It boots the test VM (building the image on first use), starts the
benchmark workload ``tests/workloads/mappings.py --bench`` (1 GiB of
populated anonymous memory, half 4 KiB pages and half THP, plus 8 GiB of
sparse ``MAP_NORESERVE`` memory with one page written every 16 MiB;
``--quick``: 64 MiB and 512 MiB) and measures, on that one target:

1. ``livewalk_host_all_vmas``: livewalk's pagemap of every page of every VMA
   of the target, from the host over QMP (``pagemap_read`` per VMA), and
   ``livewalk_host_whole_runs``: the whole address space ``[0, 2**64)`` as
   coalesced runs (``pagemap_runs``).
2. ``follow_phys``: drgn's ``follow_phys(mm, addr)`` per page, catching
   ``FaultError``, from the host over QMP (the way users do it today). Too
   slow for all pages, so it runs on a fixed sample: in every VMA, up to
   ``--blocks`` blocks of ``--block`` consecutive pages, evenly spaced, the
   first at ``vm_start``. livewalk reads the very same blocks
   (``pagemap_read`` per block): ``RATIO follow_phys_over_livewalk_sample``
   is apples to apples. The follow_phys time of the whole target is then
   extrapolated per VMA (VMA pages times that VMA's mean time per sampled
   page): ``RATIO follow_phys_over_livewalk_host`` compares that estimate with
   the measured livewalk time of every page. The answers are compared page
   by page (present bit and PFN).
3. ``livewalk_guest``: livewalk in the guest over ``/proc/kcore`` for the
   three benchmark regions, and
4. ``kernel_pagemap``: the kernel's own ``/proc/PID/pagemap`` read (one
   ``pread`` per region) in the same guest process; the bytes must be equal.
5. The synthetic-backend ``pte_entry`` callback rate (``bench/bench_walker.py``)
   and walks of the sparse 128 TiB range ``[0, 2**47)``: synthetic (64
   sparse VMAs, ``pte_entry`` and ``pte_hole``) and the real target over QMP
   (``pmd_entry`` and ``pte_hole``); peak memory is ``tracemalloc``'s peak
   of Python allocations during a second, untimed run of the walk.
6. ``ttfr``: time to first result in a fresh host process: start Python,
   import, attach over QMP, load the vmlinux debug info, resolve the PID,
   pagemap of the first benchmark VMA (measured before this process
   attaches: QEMU serves one QMP client at a time).
7. ``small_questions``: warm, per call, over QMP: ``vtop`` of one address
   and ``pagemap_read`` of 2 MiB, each divided by one 4 KiB physical read
   timed in the same run (``RATIO *_over_phys_read``: the call's cost in
   reads' worth).
8. ``--compare DIR``: before and after side by side on the same target:
   fresh host processes, alternately with the livewalk of checkout *DIR*
   ("before") and of this one ("after"), each measuring the small
   questions of 7., ``pagemap_read`` of the sample blocks of 2. and of
   every VMA (``RATIO compare_*_before_over_after``; run before this
   process attaches, as 6.); and in each guest, 3. and 4. with both
   (``RATIO compare_guest_over_kernel_{before,after}``).

9. ``guest_ratio``: 3. and 4. again in the arm64 guest (``--arm64-levels``,
   booted after the x86_64 guest), printed with the suffix ``_arm64``
   beside the x86_64 guest's figures; and 5.'s synthetic ``pte_entry``
   rate over the arm64 tables of the synthetic backend, beside x86_64's
   (``RATIO pte_entry_rate_over_bare_calls_arm64``).

Output lines: ``TIME <name> <seconds>``, ``RATIO <name> <value>``,
``MEM <name> <bytes>``, ``RATE <name> <per second>``, ``COUNT <name> <n>``,
``TARGET <name> met|NOT-met <detail>``, after a header naming the machine.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import re
import runpy
import subprocess
import sys
import tarfile
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# livewalk of this checkout (also in the guest's /src), or of the checkout
# named by LIVEWALK_BENCH_FROM (the --compare side processes)
_FROM = os.environ.get("LIVEWALK_BENCH_FROM") or REPO
if _FROM not in sys.path:
    sys.path.insert(0, _FROM)

PAGE = 4096
PM_PRESENT = 1 << 63
PM_PFRAME_MASK = (1 << 55) - 1
BENCH_REGIONS = ("bench_4k", "bench_thp", "bench_sparse")
SPARSE_END = 1 << 47  # 128 TiB

# Targets of issue [5].
TARGET_HOST_RATIO = 100.0
TARGET_GUEST_RATIO = 20.0
TARGET_SPARSE_S = 1.0
TARGET_SPARSE_MEM = 100 * 1000 * 1000
TARGET_TTFR_S = 2.0
# Targets of issue [E] (small questions).
TARGET_SAMPLE_RATIO = 50.0
TARGET_READS_PER_CALL = 10.0
TARGET_GUEST_RATIO_E = 3.0
TARGET_PTE_OVER_BARE = 0.5


class Results:
    """Collects and prints the figures."""

    def __init__(self, out: Callable[[str], None] | None = None) -> None:
        self.times: dict[str, float] = {}
        self.ratios: dict[str, float] = {}
        self.mem: dict[str, int] = {}
        self.rates: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.info: dict[str, Any] = {}
        self.targets: dict[str, bool] = {}
        self._out = out or (lambda s: print(s, flush=True))

    def line(self, s: str) -> None:
        self._out(s)

    def time(self, name: str, v: float, note: str = "") -> None:
        self.times[name] = v
        self.line(f"TIME {name} {v:.6f}" + (f"  # {note}" if note else ""))

    def ratio(self, name: str, v: float, note: str = "") -> None:
        self.ratios[name] = v
        self.line(f"RATIO {name} {v:.2f}" + (f"  # {note}" if note else ""))

    def memory(self, name: str, v: int, note: str = "") -> None:
        self.mem[name] = v
        self.line(f"MEM {name} {v}" + (f"  # {note}" if note else ""))

    def rate(self, name: str, v: float, note: str = "") -> None:
        self.rates[name] = v
        self.line(f"RATE {name} {v:.0f}" + (f"  # {note}" if note else ""))

    def count(self, name: str, v: int, note: str = "") -> None:
        self.counts[name] = v
        self.line(f"COUNT {name} {v}" + (f"  # {note}" if note else ""))

    def target(self, name: str, ok: bool, detail: str) -> None:
        self.targets[name] = ok
        self.line(f"TARGET {name} {'met' if ok else 'NOT-met'} {detail}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.times,
            "ratio": self.ratios,
            "mem": self.mem,
            "rate": self.rates,
            "count": self.counts,
            "info": self.info,
            "targets": self.targets,
        }


# -- the machine ------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for ln in f:
                if ln.startswith("model name"):
                    return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def machine_header(res: Results) -> None:
    import drgn

    load = os.getloadavg()
    info = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "host_kernel": platform.release(),
        "host_python": platform.python_version(),
        "drgn": drgn.__version__,
        "load_before": f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
    }
    res.info.update(info)
    for k, v in info.items():
        res.line(f"MACHINE {k} {v}")


# -- the guest side (runs inside the VM) --------------------------------------


def guest_side(pid: int, ranges: list[tuple[int, int]], repeat: int) -> dict[str, Any]:
    """
    In the guest: the kernel's pagemap of *ranges* and livewalk's (drgn on
    /proc/kcore), timed in the same process. Returns a JSON-able dict.
    """
    import drgn

    from livewalk.proc.pagemap import pagemap_read
    from livewalk.task import resolve_mm

    page = os.sysconf("SC_PAGE_SIZE")  # 4, 16 or 64 KiB on arm64

    def kernel() -> list[bytes]:
        fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
        try:
            return [os.pread(fd, (e - s) // page * 8, s // page * 8) for s, e in ranges]
        finally:
            os.close(fd)

    t = time.perf_counter()
    prog = drgn.program_from_kernel()
    prog_s = time.perf_counter() - t
    mm = resolve_mm(prog, pid)
    kernel()  # warm up
    k_times = []
    k_data: list[bytes] = []
    for _ in range(max(3, repeat)):
        t = time.perf_counter()
        k_data = kernel()
        k_times.append(time.perf_counter() - t)
    t = time.perf_counter()
    [pagemap_read(mm, s, e) for s, e in ranges]
    lw_cold = time.perf_counter() - t
    lw_times = []
    lw_data: list[bytes] = []
    for _ in range(repeat):
        t = time.perf_counter()
        lw_data = [pagemap_read(mm, s, e).tobytes() for s, e in ranges]
        lw_times.append(time.perf_counter() - t)
    k_after = kernel()
    equal = [a == b for a, b in zip(lw_data, k_data)]
    stable = [a == b for a, b in zip(k_data, k_after)]
    present = []
    for d in k_data:
        mv = memoryview(d).cast("Q")
        present.append(sum(1 for v in mv if v & PM_PRESENT))
    return {
        "prog_s": prog_s,
        "kernel_s": k_times,
        "livewalk_s": lw_times,
        "livewalk_cold_s": lw_cold,
        "equal": equal,
        "kernel_stable": stable,
        "pages": [(e - s) // page for s, e in ranges],
        "present": present,
        "python": platform.python_version(),
        "release": platform.release(),
        "mismatch_pages": [
            sum(1 for x, y in zip(memoryview(a).cast("Q"), memoryview(b).cast("Q")) if x != y)
            for a, b in zip(lw_data, k_data)
        ],
    }


# -- time to first result (a fresh host process) ------------------------------


def ttfr_side(qmp: str, vmlinux_dir: str, pid: int, start: int, end: int, t0: float) -> dict[str, Any]:
    """In a fresh host process: attach, load debug info, first pagemap walk."""
    marks: dict[str, float] = {"process_start_to_main": time.time() - t0}
    t = time.perf_counter()
    import drgn

    from livewalk.proc.pagemap import pagemap_read
    from livewalk.task import resolve_mm

    marks["import"] = time.perf_counter() - t
    t = time.perf_counter()
    prog = drgn.Program()
    prog.set_qemu_qmp(qmp)
    marks["attach_qmp"] = time.perf_counter() - t
    t = time.perf_counter()
    prog.debug_info_options.kernel_directories = (vmlinux_dir,)
    try:
        prog.load_default_debug_info()
    except drgn.MissingDebugInfoError:
        pass
    marks["load_debug_info"] = time.perf_counter() - t
    t = time.perf_counter()
    mm = resolve_mm(prog, pid)
    marks["resolve_pid"] = time.perf_counter() - t
    t = time.perf_counter()
    entries = pagemap_read(mm, start, end)
    marks["first_walk"] = time.perf_counter() - t
    marks["total_since_exec"] = time.time() - t0
    marks["cpu_total"] = time.process_time()  # all threads, since the process started
    return {
        "marks": marks,
        "entries": len(entries),
        "present": sum(1 for v in entries if v & PM_PRESENT),
    }


# -- before and after, side by side (--compare) ---------------------------------


def compare_side(qmp: str, vmlinux_dir: str, pid: int, s4k: int, e4k: int, block: int, blocks: int,
                 quick: bool) -> dict[str, Any]:
    """
    In a fresh host process, with the livewalk ``sys.path`` gives: per call,
    a physical read, vtop of one address, pagemap of 2 MiB; then the sample
    blocks (as in 2.) and every VMA, each pagemap_read per range.
    """
    import drgn

    prog = drgn.Program()
    prog.set_qemu_qmp(qmp)
    prog.debug_info_options.kernel_directories = (vmlinux_dir,)
    try:
        prog.load_default_debug_info()
    except drgn.MissingDebugInfoError:
        pass
    return compare_figures(prog, pid, s4k, e4k, block, blocks, quick)


def compare_figures(prog: Any, pid: int, s4k: int, e4k: int, block: int, blocks: int,
                    quick: bool) -> dict[str, Any]:
    """The figures of :func:`compare_side` on an attached *prog*."""
    import livewalk
    from livewalk.backend.drgn import DrgnBackend
    from livewalk.proc.pagemap import pagemap_read
    from livewalk.task import resolve_mm
    from livewalk.tools.vtop import vtop

    mm = resolve_mm(prog, pid)
    backend = DrgnBackend.for_program(prog)
    table = backend.pgd_phys(backend.mm_pgd(mm))
    n = 200 if quick else 1000

    addr = s4k + 0x123000 + 0x456
    pm_start = s4k + (2 << 20) if e4k - s4k >= (4 << 20) else s4k
    vmas = [(v.vm_start, v.vm_end) for v in backend.vmas(mm)]
    sample = [b for bl in _sample_blocks(vmas, block, blocks) for b in bl]
    out: dict[str, Any] = {
        "livewalk": os.path.dirname(os.path.dirname(os.path.abspath(livewalk.__file__))),
        "phys_read_4k": per_call(lambda: prog.read(table, PAGE, True), 5 * n),
        "vtop_one_address": per_call(lambda: vtop(mm, addr), n),
        "pagemap_2mib": per_call(lambda: pagemap_read(mm, pm_start, pm_start + (2 << 20)), n),
    }
    out["sample_blocks"] = _best(lambda: [pagemap_read(mm, s, e) for s, e in sample], 3)[0]
    out["all_vmas"] = _best(lambda: [pagemap_read(mm, s, e) for s, e in vmas], 3)[0]
    out["sample_pages"] = sum((e - s) // PAGE for s, e in sample)
    return out


def compare_checkouts(g: Any, res: Results, pid: int, regions: list[tuple[int, int]], other: str,
                      block: int, blocks: int, quick: bool, rounds: int = 2) -> None:
    """8. The figures of :func:`compare_side`, "before" (*other*) and "after"
    (this checkout) alternately, best of *rounds* each."""
    s4k, e4k = regions[0]
    best: dict[str, dict[str, float]] = {"before": {}, "after": {}}
    for _ in range(rounds):
        for which, path in (("before", other), ("after", REPO)):
            env = dict(os.environ, LIVEWALK_BENCH_FROM=path)
            p = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--compare-side", g.qmp_socket,
                 os.path.dirname(g.vmlinux), str(pid), str(s4k), str(e4k), str(block), str(blocks),
                 "1" if quick else "0"],
                capture_output=True, text=True, timeout=1800, env=env,
            )
            if p.returncode != 0:
                raise RuntimeError(f"compare side ({which}, {path}) failed: {p.stderr[-3000:]}")
            got = json.loads(p.stdout.strip().splitlines()[-1])
            res.line(f"# compare {which}: livewalk from {got.pop('livewalk')}")
            for k, v in got.items():
                best[which][k] = min(best[which].get(k, math.inf), v)
    for k in ("phys_read_4k", "vtop_one_address", "pagemap_2mib", "sample_blocks", "all_vmas"):
        b, a = best["before"][k], best["after"][k]
        res.time(f"compare_{k}_before", b)
        res.time(f"compare_{k}_after", a)
        res.ratio(f"compare_{k}_before_over_after", b / a, "same target, same run")
    for which in ("before", "after"):
        r = best[which]
        for k in ("vtop_one_address", "pagemap_2mib"):
            res.ratio(f"compare_{k}_over_phys_read_{which}", r[k] / r["phys_read_4k"],
                      "per call, in 4 KiB physical reads' worth")


# -- host side -------------------------------------------------------------------


def _sample_blocks(vmas: list[tuple[int, int]], block: int, blocks: int) -> list[list[tuple[int, int]]]:
    """Per VMA: up to *blocks* blocks of *block* pages, evenly spaced, the first at vm_start."""
    out = []
    for s, e in vmas:
        npages = (e - s) // PAGE
        if npages <= block * blocks:
            out.append([(s, e)])
            continue
        step = npages // blocks
        out.append([(s + i * step * PAGE, s + (i * step + block) * PAGE) for i in range(blocks)])
    return out


def follow_phys_pages(mm: Any, start: int, end: int) -> list[int]:
    """The follow_phys loop users write: PFN per page, -1 where it faults."""
    from drgn import FaultError
    from drgn.helpers.linux.mm import follow_phys

    out = []
    for addr in range(start, end, PAGE):
        try:
            out.append(follow_phys(mm, addr).value_() >> 12)
        except FaultError:
            out.append(-1)
    return out


def per_call(fn: Callable[[], Any], calls: int, repeat: int = 3) -> float:
    """
    Warm per-call wall time of *fn*: one untimed call, then the best of
    *repeat* loops of *calls* calls each, divided by *calls*.
    """
    fn()  # warm
    best = math.inf
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - t) / calls)
    return best


_last_cpu = [0.0]


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of *repeat* runs (and the CPU time of that run in ``_last_cpu``)."""
    best = math.inf
    val = None
    for _ in range(repeat):
        c = time.process_time()
        t = time.perf_counter()
        val = fn()
        dt = time.perf_counter() - t
        if dt < best:
            best = dt
            _last_cpu[0] = time.process_time() - c
    return best, val


def _traced_peak(fn: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return max(0, peak - base)


def synthetic_sparse(levels: int, res: Results, repeat: int) -> None:
    """A sparse synthetic mm over 128 TiB: 64 VMAs, 2 TiB apart, 4 pages each."""
    from livewalk.backend.synthetic import SyntheticMM
    from livewalk.mm.pagewalk import MMWalkOps, walk_page_range

    mm = SyntheticMM(levels=levels)
    npages = 0
    for i in range(64):
        base = (i << 41) + (1 << 30)
        mm.add_vma(base, base + (2 << 20))
        for j in range(4):
            mm.map_4k(base + j * 0x81000, pfn=0x1000 + i * 8 + j)
            npages += 1
    calls = [0, 0]

    def pte_entry(pte: Any, addr: int, next: int, walk: Any) -> int:  # noqa: A002
        calls[0] += 1
        return 0

    def pte_hole(addr: int, next: int, depth: int, walk: Any) -> int:  # noqa: A002
        calls[1] += 1
        return 0

    ops = MMWalkOps(pte_entry=pte_entry, pte_hole=pte_hole)
    dt, _ = _best(lambda: walk_page_range(mm, 0, SPARSE_END, ops), repeat)
    res.time("sparse128t_synthetic", dt, f"64 VMAs, {npages} mapped pages, pte_entry+pte_hole")
    res.count("sparse128t_synthetic_pte_entry_calls", calls[0] // repeat)
    res.count("sparse128t_synthetic_pte_hole_calls", calls[1] // repeat)
    res.memory("sparse128t_synthetic_peak", _traced_peak(lambda: walk_page_range(mm, 0, SPARSE_END, ops)),
               "tracemalloc peak during the walk")


def run_bench_walker(res: Results, levels: int, quick: bool) -> None:
    """bench/bench_walker.py (the walker helper's): synthetic callback rate."""
    cmd = [sys.executable, os.path.join(REPO, "bench", "bench_walker.py"), "--levels", str(levels),
           "--repeat", "1" if quick else "3"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    for ln in p.stdout.splitlines():
        res.line(f"# bench_walker: {ln}")
    m = re.search(r"^pte_entry no-op walk: ([\d.]+) ms, ([\d,]+) pte_entry calls/s", p.stdout, re.M)
    if p.returncode != 0 or not m:
        res.line(f"# bench_walker failed ({p.returncode}): {p.stderr[-2000:]}")
        return
    res.time("synthetic_1gib_pte_entry_walk", float(m.group(1)) / 1000, "262144 no-op pte_entry calls")
    res.rate("synthetic_pte_entry_calls_per_s", float(m.group(2).replace(",", "")))
    m2 = re.search(r"^pmd_entry-only walk:\s+([\d.]+) ms", p.stdout, re.M)
    if m2:
        res.time("synthetic_1gib_pmd_entry_walk", float(m2.group(1)) / 1000)
    m3 = re.search(r"^RATIO pte_entry_rate_over_bare_calls ([\d.]+)", p.stdout, re.M)
    if m3:
        r = float(m3.group(1))
        res.ratio("pte_entry_rate_over_bare_calls", r, "same no-op function, same run (bench_walker)")
        res.target("pte_entry_half_of_bare_calls", r >= TARGET_PTE_OVER_BARE,
                   f"{r:.2f} (goal >= {TARGET_PTE_OVER_BARE})")
    # the synthetic arm64 tables (4 KiB, same levels), beside x86_64's
    m4 = re.search(r"^arm64 pte_entry no-op walk: ([\d.]+) ms, ([\d,]+) pte_entry calls/s", p.stdout, re.M)
    if m4:
        res.rate("synthetic_pte_entry_calls_per_s_arm64", float(m4.group(2).replace(",", "")))
    m5 = re.search(r"^RATIO pte_entry_rate_over_bare_calls_arm64 ([\d.]+)", p.stdout, re.M)
    if m5:
        r = float(m5.group(1))
        res.ratio("pte_entry_rate_over_bare_calls_arm64", r, "arm64 tables, same run (bench_walker)")
        res.target("pte_entry_half_of_bare_calls_arm64", r >= TARGET_PTE_OVER_BARE,
                   f"{r:.2f} (goal >= {TARGET_PTE_OVER_BARE})")


def run(g: Any, *, quick: bool = False, size_mb: int | None = None, sparse_mb: int | None = None,
        block: int | None = None, blocks: int | None = None, repeat: int | None = None,
        res: Results | None = None, compare: str | None = None) -> Results:
    """
    The whole benchmark on a booted :class:`vm.Guest` *g*. Returns the
    :class:`Results` (also printed as it goes).
    """
    res = res or Results()
    size_mb = size_mb or (64 if quick else 1024)
    sparse_mb = sparse_mb or (512 if quick else 8192)
    block = block or (64 if quick else 512)
    blocks = blocks or (4 if quick else 8)
    repeat = repeat or (2 if quick else 3)
    res.info.update(quick=quick, size_mb=size_mb, sparse_mb=sparse_mb, block=block, blocks=blocks)
    res.line(f"MACHINE guest_kernel {g.release}")
    res.line(f"MACHINE guest_paging_levels {g.levels}")
    res.line(f"MACHINE guest_accel {g.accel} smp={g.smp} memory={g.memory}")
    res.info.update(guest_kernel=g.release, levels=g.levels, accel=g.accel)
    res.line(f"# workload: --bench --size-mb {size_mb} --sparse-mb {sparse_mb} (one page per 16 MiB)")

    pid, regions = start_workload(g, res, size_mb, sparse_mb)
    try:
        _run_on_target(g, res, pid, regions, quick, block, blocks, repeat, size_mb, sparse_mb, compare)
    finally:
        stop_workload(g, pid)
    load = os.getloadavg()
    res.info["load_after"] = f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    res.line(f"MACHINE load_after {res.info['load_after']}")
    return res


_READY = "/tmp/livewalk-bench-ready.json"


def start_workload(g: Any, res: Results, size_mb: int, sparse_mb: int) -> tuple[int, list[tuple[int, int]]]:
    """The benchmark process in guest *g*: its PID and its three regions."""
    g.run(f"rm -f {_READY}", timeout=60)
    t = time.monotonic()
    spawned = g.spawn(
        f"exec python3 tests/workloads/mappings.py --bench --size-mb {size_mb} "
        f"--sparse-mb {sparse_mb} --ready-file {_READY}"
    )
    ready = g.wait_ready_file(_READY, spawned, 900)
    res.line(f"# workload ready in {time.monotonic() - t:.1f} s: pid {ready['pid']}, "
             f"skipped {ready.get('skipped')}, notes {ready.get('notes')}")
    if ready.get("skipped"):
        raise RuntimeError(f"benchmark workload incomplete: {ready['skipped']}")
    return int(ready["pid"]), [tuple(ready["regions"][k]) for k in BENCH_REGIONS]


def stop_workload(g: Any, pid: int) -> None:
    g.run(f"kill {pid}", timeout=60)
    g.run(f"rm -f {_READY}", timeout=60)


def guest_ratio(g: Any, res: Results, *, quick: bool = False, size_mb: int | None = None,
                sparse_mb: int | None = None, repeat: int | None = None,
                compare: str | None = None) -> float:
    """
    Only 3. and 4. (livewalk in the guest over ``/proc/kcore`` against the
    kernel's own pagemap) on guest *g*, any architecture: for the arm64
    guest, whose figures are printed beside the x86_64 guest's with the
    suffix ``_<arch>`` (``RATIO livewalk_guest_over_kernel_pagemap_arm64``).
    Returns that ratio.
    """
    size_mb = size_mb or (64 if quick else 1024)
    sparse_mb = sparse_mb or (512 if quick else 8192)
    repeat = repeat or (2 if quick else 3)
    sfx = f"_{g.arch}"
    res.line(f"MACHINE guest_kernel{sfx} {g.release}")
    res.line(f"MACHINE guest_paging_levels{sfx} {g.levels}")
    res.line(f"MACHINE guest_accel{sfx} {g.accel} smp={g.smp} memory={g.memory}")
    res.line(f"# {g.arch} workload: --bench --size-mb {size_mb} --sparse-mb {sparse_mb}")
    pid, regions = start_workload(g, res, size_mb, sparse_mb)
    try:
        gd = _guest_side_on(g, pid, regions, repeat)
        if compare:
            compare_guest(g, res, pid, regions, compare, repeat)  # 8., in this guest
    finally:
        stop_workload(g, pid)
    k_s, lw_g = min(gd["kernel_s"]), min(gd["livewalk_s"])
    res.time(f"kernel_pagemap{sfx}", k_s, f"pread of /proc/PID/pagemap, {sum(gd['pages'])} pages")
    res.time(f"livewalk_guest{sfx}", lw_g, "pagemap_read over /proc/kcore, same ranges")
    res.count(f"guest_pages{sfx}", sum(gd["pages"]))
    res.count(f"guest_present_pages{sfx}", sum(gd["present"]))
    res.count(f"guest_regions_equal{sfx}", sum(gd["equal"]), f"of {len(gd['equal'])} (bytes equal)")
    res.count(f"guest_mismatch_pages{sfx}", sum(gd["mismatch_pages"]))
    ratio = lw_g / k_s
    res.ratio(f"livewalk_guest_over_kernel_pagemap{sfx}", ratio, f"{g.arch} guest ({g.accel})")
    res.target(f"guest_within_3x_kernel{sfx}", ratio <= TARGET_GUEST_RATIO_E,
               f"{ratio:.1f}x (goal {TARGET_GUEST_RATIO_E:.0f}x)")
    return ratio


def _guest_side_on(g: Any, pid: int, regions: list[tuple[int, int]], repeat: int,
                   livewalk_from: str | None = None) -> dict[str, Any]:
    """:func:`guest_side` run in guest *g* (the checkout's /src, with the
    livewalk of guest directory *livewalk_from* if given), its JSON decoded."""
    arg = ",".join(f"{s}:{e}" for s, e in regions)
    env = f"LIVEWALK_BENCH_FROM={livewalk_from} " if livewalk_from else ""
    r = g.run(f"{env}python3 bench/bench_targets.py --guest-side {pid} {arg} --repeat {repeat}",
              timeout=3600)
    if r.returncode != 0:
        raise RuntimeError(f"guest side failed: {r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


_GUEST_BEFORE = "/tmp/livewalk-bench-before"


def compare_guest(g: Any, res: Results, pid: int, regions: list[tuple[int, int]], other: str,
                  repeat: int, rounds: int = 2) -> None:
    """
    8. in the guest: 3. and 4. with the livewalk of checkout *other*
    ("before", its package copied into the guest) and of this one
    ("after"), alternately in the same guest, best of *rounds* each
    (``RATIO compare_guest_over_kernel_{before,after}<sfx>``: the layout
    of a guest's memory moves these ratios from boot to boot, so before and
    after are only comparable in one guest).
    """
    sfx = "" if g.arch == "x86_64" else f"_{g.arch}"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(os.path.join(other, "livewalk"), arcname="livewalk",
                filter=lambda ti: None if "__pycache__" in ti.name else ti)
    g.put(f"{_GUEST_BEFORE}.tgz", buf.getvalue())
    r = g.run(f"rm -rf {_GUEST_BEFORE} && mkdir -p {_GUEST_BEFORE} && tar -xzf {_GUEST_BEFORE}.tgz "
              f"-C {_GUEST_BEFORE}", timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"cannot unpack the before checkout in the guest: {r.stderr[-2000:]}")
    best: dict[str, list[float]] = {}
    for _ in range(rounds):
        for which, where in (("before", _GUEST_BEFORE), ("after", None)):
            gd = _guest_side_on(g, pid, regions, repeat, where)
            if not all(gd["equal"]):
                raise RuntimeError(f"guest pagemap ({which}) differs from the kernel's: {gd['mismatch_pages']}")
            k, lw = best.get(which, [math.inf, math.inf])
            best[which] = [min(k, min(gd["kernel_s"])), min(lw, min(gd["livewalk_s"]))]
    for which, (k, lw) in best.items():
        res.time(f"compare_guest_livewalk_{which}{sfx}", lw)
        res.time(f"compare_guest_kernel_{which}{sfx}", k)
        res.ratio(f"compare_guest_over_kernel_{which}{sfx}", lw / k, f"{g.arch} guest, same boot")
    res.ratio(f"compare_guest_before_over_after{sfx}", best["before"][1] / best["after"][1],
              "livewalk in the guest, same boot")


def _run_on_target(g: Any, res: Results, pid: int, regions: list[tuple[int, int]], quick: bool,
                   block: int, blocks: int, repeat: int, size_mb: int, sparse_mb: int,
                   compare: str | None = None) -> None:
    """Every figure of the module docstring on the benchmark process *pid*,
    in an order that lets each step attach when it needs to."""
    res.count("bench_populated_pages_expected", (size_mb << 20) // PAGE)
    res.count("bench_sparse_pages_expected", (sparse_mb << 20) // (16 << 20))
    time_to_first_result(g, res, pid, regions, quick)  # 6., before this process attaches
    if compare:
        compare_checkouts(g, res, pid, regions, compare, block, blocks, quick)  # 8., same
    mm, vmas = attach_target(g, res, pid)
    host = livewalk_host(res, mm, vmas, regions, repeat)  # 1.
    follow_phys_vs_livewalk(res, mm, vmas, host, block, blocks, repeat)  # 2.
    small_questions(res, mm, regions, quick)  # 7.
    sparse_walks(g, res, mm, repeat, quick)  # 5.
    guest_vs_kernel(g, res, pid, regions, repeat, host)  # 3. and 4.
    if compare:
        compare_guest(g, res, pid, regions, compare, repeat)  # 8., in the guest


def time_to_first_result(g: Any, res: Results, pid: int, regions: list[tuple[int, int]],
                         quick: bool) -> None:
    """6. A fresh host process: start, import, attach, first pagemap walk.
    Run before this process attaches: QEMU serves one QMP client at a time."""
    s4k, e4k = regions[0]
    first_end = min(e4k, s4k + (2 << 20)) if quick else e4k
    t0 = time.time()
    p = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--ttfr-side", g.qmp_socket,
         os.path.dirname(g.vmlinux), str(pid), str(s4k), str(first_end), repr(t0)],
        capture_output=True, text=True, timeout=300,
    )
    wall = time.time() - t0
    if p.returncode != 0:
        raise RuntimeError(f"time-to-first-result process failed: {p.stderr[-3000:]}")
    tt = json.loads(p.stdout.strip().splitlines()[-1])
    for k, v in tt["marks"].items():
        res.time(f"ttfr_{k}", v)
    res.time("ttfr_wall", wall, f"fresh host process to exit; first walk = pagemap of "
             f"{(first_end - s4k) >> 20} MiB of bench_4k")
    res.count("ttfr_present_pages", tt["present"])
    ttfr = tt["marks"]["total_since_exec"]
    res.target("ttfr_under_2s", ttfr < TARGET_TTFR_S,
               f"{ttfr:.2f} s wall, {tt['marks']['cpu_total']:.2f} s CPU (goal {TARGET_TTFR_S} s)")


def attach_target(g: Any, res: Results, pid: int) -> tuple[Any, list[tuple[int, int]]]:
    """Attach in this process; the target's mm and its VMAs."""
    from livewalk.backend.drgn import DrgnBackend
    from livewalk.task import resolve_mm

    t = time.perf_counter()
    prog = g.host_program()
    res.time("host_attach_and_debug_info", time.perf_counter() - t)
    mm = resolve_mm(prog, pid)
    backend = DrgnBackend.for_program(prog)
    vmas = [(v.vm_start, v.vm_end) for v in backend.vmas(mm)]
    total_pages = sum((e - s) // PAGE for s, e in vmas)
    res.count("target_vmas", len(vmas))
    res.count("target_vma_pages", total_pages, f"{total_pages * PAGE / 2**30:.2f} GiB of VMAs")
    return mm, vmas


@dataclass
class HostFigures:
    """What the later steps compare with livewalk's host figures."""

    all_vmas_s: float
    all_vmas_cpu: float
    whole_runs_s: float
    regions_s: float
    regions_present: int


def livewalk_host(res: Results, mm: Any, vmas: list[tuple[int, int]], regions: list[tuple[int, int]],
                  repeat: int) -> HostFigures:
    """1. livewalk from the host: every page of every VMA, the whole space as runs."""
    from livewalk.proc.pagemap import pagemap_read, pagemap_runs

    total_pages = sum((e - s) // PAGE for s, e in vmas)

    def lw_all() -> dict[tuple[int, int], Any]:
        return {(s, e): pagemap_read(mm, s, e) for s, e in vmas}

    t = time.perf_counter()
    lw_all()  # the first, cold run (type lookups, VMA list)
    res.time("livewalk_host_all_vmas_cold", time.perf_counter() - t, "first run, in the attached process")
    t_all, ours = _best(lw_all, repeat)
    cpu_all = _last_cpu[0]
    res.time("livewalk_host_all_vmas", t_all, f"pagemap_read of all {total_pages} VMA pages over QMP")
    res.time("livewalk_host_all_vmas_cpu", cpu_all, "CPU time of the host process for that run")
    t_runs, runs = _best(lambda: pagemap_runs(mm, 0, 1 << 64), repeat)
    res.time("livewalk_host_whole_runs", t_runs, f"pagemap_runs over [0, 2**64): {len(runs)} runs")
    t_reg, _ = _best(lambda: [pagemap_read(mm, s, e) for s, e in regions], repeat)
    res.time("livewalk_host_bench_regions", t_reg, "pagemap_read of the 3 benchmark regions")
    present_host = sum(1 for s, e in regions for v in ours[(s, e)] if v & PM_PRESENT)
    res.count("livewalk_host_bench_present", present_host)
    return HostFigures(t_all, cpu_all, t_runs, t_reg, present_host)


def follow_phys_vs_livewalk(res: Results, mm: Any, vmas: list[tuple[int, int]], host: HostFigures,
                            block: int, blocks: int, repeat: int) -> None:
    """2. follow_phys on the sample, livewalk on the same blocks, the answers
    compared; the whole-target follow_phys time extrapolated."""
    from livewalk.proc.pagemap import pagemap_read

    sample = _sample_blocks(vmas, block, blocks)
    n_sample = sum((e - s) // PAGE for bl in sample for s, e in bl)
    fp_res: dict[tuple[int, int], list[int]] = {}
    fp_vma_time = []
    t_fp_total = 0.0
    c_fp = time.process_time()
    for (s, e), bl in zip(vmas, sample):
        t = time.perf_counter()
        for bs, be in bl:
            fp_res[(bs, be)] = follow_phys_pages(mm, bs, be)
        dt = time.perf_counter() - t
        t_fp_total += dt
        npg = sum((be - bs) // PAGE for bs, be in bl)
        fp_vma_time.append(dt / npg * ((e - s) // PAGE))
    res.time("follow_phys_sample", t_fp_total, f"{n_sample} pages: up to {blocks} blocks of {block} "
             f"pages per VMA, evenly spaced ({t_fp_total / n_sample * 1e6:.1f} us/page)")
    cpu_fp = time.process_time() - c_fp
    res.time("follow_phys_sample_cpu", cpu_fp)

    def lw_sample() -> dict[tuple[int, int], Any]:
        return {(bs, be): pagemap_read(mm, bs, be) for bl in sample for bs, be in bl}

    t_lws, lw_s = _best(lw_sample, repeat)
    cpu_lws = _last_cpu[0]
    res.time("livewalk_host_sample", t_lws, f"same {n_sample} pages, pagemap_read per block")
    res.time("livewalk_host_sample_cpu", cpu_lws)
    mism = 0
    present_fp = 0
    for key, fp in fp_res.items():
        for pfn, v in zip(fp, lw_s[key]):
            lw_pfn = (v & PM_PFRAME_MASK) if v & PM_PRESENT else -1
            present_fp += pfn >= 0
            if lw_pfn != pfn:
                mism += 1
    res.count("sample_pages", n_sample)
    res.count("sample_present_follow_phys", present_fp)
    res.count("sample_mismatches", mism, "pages where follow_phys and livewalk disagree (present/PFN)")
    fp_est = sum(fp_vma_time)
    res.time("follow_phys_all_vmas_estimate", fp_est,
             "EXTRAPOLATED from the sample: per VMA, mean time per sampled page x VMA pages")
    res.ratio("follow_phys_over_livewalk_sample", t_fp_total / t_lws, "same pages, both measured")
    res.ratio("follow_phys_over_livewalk_sample_cpu", cpu_fp / max(cpu_lws, 1e-9), "same, CPU time")
    host_ratio = fp_est / host.all_vmas_s
    res.ratio("follow_phys_over_livewalk_host", host_ratio,
              "follow_phys estimate for all VMA pages / livewalk measured on all VMA pages")
    res.ratio("follow_phys_over_livewalk_host_runs", fp_est / host.whole_runs_s,
              "same estimate / livewalk pagemap_runs over the whole address space")
    res.ratio("follow_phys_over_livewalk_host_cpu",
              fp_est * (cpu_fp / t_fp_total) / max(host.all_vmas_cpu, 1e-9),
              "same, CPU time (estimate scaled by the sample's CPU/wall)")
    res.target("host_100x_follow_phys", host_ratio >= TARGET_HOST_RATIO,
               f"whole target {host_ratio:.0f}x (same-sample blocks: {t_fp_total / t_lws:.0f}x; "
               f"goal {TARGET_HOST_RATIO:.0f}x)")
    res.target("sample_50x_follow_phys", t_fp_total / t_lws >= TARGET_SAMPLE_RATIO,
               f"same-sample blocks {t_fp_total / t_lws:.1f}x (goal {TARGET_SAMPLE_RATIO:.0f}x)")


def small_questions(res: Results, mm: Any, regions: list[tuple[int, int]], quick: bool) -> None:
    """
    7. Warm per-call cost over QMP of one-address vtop and of one 2 MiB
    pagemap_read, against one 4 KiB physical read measured in the same run
    (issue [E]: the per-call fixed cost in "reads' worth"), and vtop
    against drgn's own ``follow_phys()`` of the same address (libdrgn's
    page-table walk, in C: the yardstick of a compiled translation).
    """
    from drgn.helpers.linux.mm import follow_phys

    from livewalk.backend.drgn import DrgnBackend
    from livewalk.proc.pagemap import pagemap_read
    from livewalk.tools.vtop import vtop

    backend = DrgnBackend.for_program(mm.prog_)
    prog = backend.prog
    table = backend.pgd_phys(backend.mm_pgd(mm))  # a page that exists: the PGD table
    n = 200 if quick else 1000

    read_s = per_call(lambda: prog.read(table, PAGE, True), 5 * n)
    s4k, e4k = regions[0]
    addr = s4k + 0x123000 + 0x456
    vtop_s = per_call(lambda: vtop(mm, addr), n)
    fp_s = per_call(lambda: follow_phys(mm, addr), n)
    if vtop(mm, addr).phys != follow_phys(mm, addr).value_():
        raise RuntimeError(f"vtop and follow_phys disagree on {addr:#x}")
    pm_start = s4k + (2 << 20) if e4k - s4k >= (4 << 20) else s4k
    pm_s = per_call(lambda: pagemap_read(mm, pm_start, pm_start + (2 << 20)), n)
    res.time("phys_read_4k", read_s, "one 4 KiB physical read over QMP, warm, per call")
    res.time("vtop_one_address", vtop_s, "vtop of one address of bench_4k, warm, per call")
    res.time("pagemap_2mib", pm_s, "pagemap_read of 2 MiB of bench_4k, warm, per call")
    res.time("follow_phys_one_address", fp_s, "drgn's follow_phys() of the same address, warm, per call")
    res.ratio("follow_phys_one_address_over_phys_read", fp_s / read_s, "per call, in 4 KiB physical reads' worth")
    res.ratio("vtop_one_address_over_follow_phys", vtop_s / fp_s, "livewalk's vtop / drgn's C walk, same address")
    for name, t in (("vtop_one_address", vtop_s), ("pagemap_2mib", pm_s)):
        r = t / read_s
        res.ratio(f"{name}_over_phys_read", r, "per call, in 4 KiB physical reads' worth")
        res.target(f"{name}_within_10_reads", r <= TARGET_READS_PER_CALL,
                   f"{t * 1e6:.0f} us = {r:.1f} reads of {read_s * 1e6:.1f} us "
                   f"(goal <= {TARGET_READS_PER_CALL:.0f})")


def sparse_walks(g: Any, res: Results, mm: Any, repeat: int, quick: bool) -> None:
    """5. Walks of the sparse 128 TiB range, real and synthetic, their peak
    memory; then bench_walker's pte_entry rate."""
    from livewalk.mm.pagewalk import MMWalkOps, walk_page_range
    from livewalk.proc.pagemap import pagemap_runs

    calls = [0, 0]

    def pmd_entry(pmd: Any, addr: int, next: int, walk: Any) -> int:  # noqa: A002
        calls[0] += 1
        return 0

    def pte_hole(addr: int, next: int, depth: int, walk: Any) -> int:  # noqa: A002
        calls[1] += 1
        return 0

    ops = MMWalkOps(pmd_entry=pmd_entry, pte_hole=pte_hole)
    walks: list[Any] = []
    t_sp, _ = _best(lambda: walk_page_range(mm, 0, SPARSE_END, ops, walks=walks), repeat)
    res.time("sparse128t_real_qmp", t_sp, "walk_page_range [0, 2**47) of the target, pmd_entry+pte_hole")
    res.count("sparse128t_real_pmd_entry_calls", calls[0] // repeat)
    res.count("sparse128t_real_table_reads", int(getattr(walks[-1], "table_reads", -1)))
    peak = _traced_peak(lambda: walk_page_range(mm, 0, SPARSE_END, ops))
    res.memory("sparse128t_real_qmp_peak", peak, "tracemalloc peak during the walk")
    peak_runs = _traced_peak(lambda: pagemap_runs(mm, 0, SPARSE_END))
    res.memory("pagemap_runs_128t_peak", peak_runs, "tracemalloc peak, pagemap_runs over [0, 2**47)")
    synthetic_sparse(g.levels, res, repeat)
    sp_ok = (t_sp < TARGET_SPARSE_S and res.times["sparse128t_synthetic"] < TARGET_SPARSE_S
             and peak < TARGET_SPARSE_MEM and res.mem["sparse128t_synthetic_peak"] < TARGET_SPARSE_MEM)
    res.target("sparse128t_under_1s_100mb", sp_ok,
               f"real {t_sp:.3f} s / {peak} B, synthetic {res.times['sparse128t_synthetic']:.3f} s / "
               f"{res.mem['sparse128t_synthetic_peak']} B")
    run_bench_walker(res, g.levels, quick)


def guest_vs_kernel(g: Any, res: Results, pid: int, regions: list[tuple[int, int]], repeat: int,
                    host: HostFigures) -> None:
    """3. and 4. In the guest: livewalk over /proc/kcore against the kernel's
    own pagemap; and the host's figures against the guest kernel's."""
    gd = _guest_side_on(g, pid, regions, repeat)
    res.line(f"MACHINE guest_python {gd['python']}")
    res.time("guest_drgn_program_from_kernel", gd["prog_s"])
    k_s = min(gd["kernel_s"])
    lw_g = min(gd["livewalk_s"])
    res.time("kernel_pagemap", k_s, f"pread of /proc/PID/pagemap, {sum(gd['pages'])} pages, best of "
             f"{len(gd['kernel_s'])}")
    res.time("livewalk_guest_cold", gd["livewalk_cold_s"], "first run after program_from_kernel "
             "(one-time debug-info lookups)")
    res.time("livewalk_guest", lw_g, f"pagemap_read over /proc/kcore, same ranges, best of "
             f"{len(gd['livewalk_s'])} after the cold run")
    res.count("guest_pages", sum(gd["pages"]))
    res.count("guest_present_pages", sum(gd["present"]))
    res.count("guest_regions_equal", sum(gd["equal"]), f"of {len(gd['equal'])} (bytes equal)")
    res.count("guest_mismatch_pages", sum(gd["mismatch_pages"]))
    res.info["guest_equal"] = gd["equal"]
    res.info["guest_kernel_stable"] = gd["kernel_stable"]
    g_ratio = lw_g / k_s
    res.ratio("livewalk_guest_over_kernel_pagemap", g_ratio)
    res.ratio("livewalk_guest_cold_over_kernel_pagemap", gd["livewalk_cold_s"] / k_s)
    res.target("guest_within_20x_kernel", g_ratio <= TARGET_GUEST_RATIO,
               f"{g_ratio:.1f}x (goal {TARGET_GUEST_RATIO:.0f}x)")
    res.target("guest_within_3x_kernel", g_ratio <= TARGET_GUEST_RATIO_E,
               f"{g_ratio:.1f}x (goal {TARGET_GUEST_RATIO_E:.0f}x)")
    # livewalk from the host on the same ranges, vs the kernel inside the guest
    res.ratio("livewalk_host_regions_over_kernel_pagemap", host.regions_s / k_s,
              "host Python over QMP vs the guest kernel (TCG)")
    # the host answer equals the guest's kernel answer too
    res.count("host_present_equals_guest_present", int(host.regions_present == sum(gd["present"])))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small workload (64 MiB + 512 MiB), one repeat")
    ap.add_argument("--levels", type=int, default=5, choices=(4, 5))
    ap.add_argument("--size-mb", type=int)
    ap.add_argument("--sparse-mb", type=int)
    ap.add_argument("--block", type=int, help="follow_phys sample: pages per block")
    ap.add_argument("--blocks", type=int, help="follow_phys sample: blocks per VMA")
    ap.add_argument("--repeat", type=int)
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--guest-side", nargs=2, metavar=("PID", "RANGES"), help=argparse.SUPPRESS)
    ap.add_argument("--compare", metavar="DIR",
                    help="also measure the small questions with the livewalk of checkout DIR (before)")
    ap.add_argument("--arm64-levels", type=int, default=5, choices=(0, 4, 5),
                    help="also the guest/kernel pagemap ratio in the arm64 guest with these paging "
                         "levels (its image is built on first use); 0: no arm64 guest")
    ap.add_argument("--ttfr-side", nargs=6, help=argparse.SUPPRESS)
    ap.add_argument("--compare-side", nargs=8, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.guest_side:
        pid = int(args.guest_side[0])
        ranges = [tuple(int(x) for x in r.split(":")) for r in args.guest_side[1].split(",")]
        print(json.dumps(guest_side(pid, ranges, args.repeat or 2)))  # type: ignore[arg-type]
        return 0
    if args.compare_side:
        qmp, vdir, *nums = args.compare_side
        pid_, s_, e_, bl_, bls_, q_ = (int(x) for x in nums)
        print(json.dumps(compare_side(qmp, vdir, pid_, s_, e_, bl_, bls_, bool(q_))))
        return 0
    if args.ttfr_side:
        qmp, vdir, pid_s, s, e, t0 = args.ttfr_side
        print(json.dumps(ttfr_side(qmp, vdir, int(pid_s), int(s), int(e), float(t0))))
        return 0

    # This checkout's harness, installed or not (livewalk.vm is vm/).
    vm = runpy.run_path(os.path.join(REPO, "vm", "checkout.py"))["load_checkout_vm"]()
    Guest = vm.Guest

    res = Results()
    machine_header(res)
    t = time.monotonic()
    with Guest(levels=args.levels) as g:
        res.time("vm_boot", time.monotonic() - t)
        run(g, quick=args.quick, size_mb=args.size_mb, sparse_mb=args.sparse_mb, block=args.block,
            blocks=args.blocks, repeat=args.repeat, res=res,
            compare=os.path.abspath(args.compare) if args.compare else None)
    if args.arm64_levels:
        t = time.monotonic()
        with Guest(arch="arm64", levels=args.arm64_levels) as g:
            res.time("vm_boot_arm64", time.monotonic() - t)
            guest_ratio(g, res, quick=args.quick, size_mb=args.size_mb, sparse_mb=args.sparse_mb,
                        repeat=args.repeat, compare=os.path.abspath(args.compare) if args.compare else None)
        res.line("# side by side, livewalk_guest_over_kernel_pagemap: x86_64 "
                 f"{res.ratios['livewalk_guest_over_kernel_pagemap']:.2f}, arm64 "
                 f"{res.ratios['livewalk_guest_over_kernel_pagemap_arm64']:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res.as_dict(), f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
