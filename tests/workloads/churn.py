#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A process whose address space never stands still (issue 6).

Run it as root in the test VM::

    python3 tests/workloads/churn.py --threads 3 --ready-file /tmp/churn.json &

Each thread owns a 2 MiB-aligned slot of ``--slot-mib`` MiB and loops,
at random, over the operations a live kernel must cope with while livewalk
reads its page tables:

- ``map``: ``mmap`` the slot (``MAP_FIXED_NOREPLACE``), ``MADV_HUGEPAGE`` on
  half of it (THP ``enabled=madvise`` in the VM), then write-fault it;
- ``unmap`` / ``remap``: ``munmap`` it, or ``mremap`` it to the other half of
  the slot and back (the PTE tables move);
- ``split``: ``mprotect`` one 4 KiB page inside a THP (splits the PMD) or
  ``MADV_DONTNEED`` a 4 KiB page of it (partial zap);
- ``collapse``: ``MADV_COLLAPSE`` a 2 MiB range of 4 KiB pages into a THP;
- ``swap``: ``MADV_PAGEOUT`` part of the slot (zram swap in the VM), then
  fault some of it back;
- ``protect``: ``mprotect`` a random range read-only and back;
- ``fault``: write-fault random pages.

The main thread also forks a short-lived child from time to time (copying
and then freeing page tables). Only the standard library (ctypes for the
system calls) is used. Each slot has a generation count, a seqcount shared
through a file (``--generations``, default the ready file with ``.gen``):
odd while an operation on the slot runs, and advanced by two for each, so
that a reader can tell a slot the workload left alone over an interval; a
reader can also ask a slot's thread to hold still for a while. When every thread has started, one JSON line
``{"pid": ..., "slots": [[start, end], ...], "generations": PATH}`` is
printed and written atomically to ``--ready-file``. On SIGTERM (or after ``--seconds``) the
counts of each operation are written to ``--stats-file`` (JSON) and the
process exits.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import mmap
import os
import random
import signal
import threading
import time
from collections.abc import Callable

PAGE = 4096
HPAGE = 2 << 20
PROT_READ, PROT_WRITE = 1, 2
MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE = 0x02, 0x20, 0x10, 0x100000
MREMAP_MAYMOVE, MREMAP_FIXED = 1, 2
MADV_DONTNEED, MADV_HUGEPAGE, MADV_NOHUGEPAGE, MADV_PAGEOUT, MADV_COLLAPSE = 4, 14, 15, 21, 25
MAP_FAILED = ctypes.c_void_p(-1).value
#: Slots start here (well away from the interpreter's own mappings).
BASE = 0x5A00_0000_0000

libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.mremap.restype = ctypes.c_void_p
libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
libc.memset.restype = ctypes.c_void_p

STOP = threading.Event()


class Generations:
    """
    The slots' seqcounts in a shared file: one 64-bit count per slot, odd
    while the workload changes the slot, then one hold flag per slot: while
    a reader holds a slot, its thread starts no new operation. The workload
    creates the file (*create*); a reader opens it.
    """

    def __init__(self, path: str, n: int, create: bool = False) -> None:
        with open(path, "w+b" if create else "r+b") as f:
            if create:
                f.truncate(16 * n)
            self._map = mmap.mmap(f.fileno(), 16 * n)
        words = memoryview(self._map).cast("Q")
        self._gen, self._hold = words[:n], words[n:]

    def __getitem__(self, i: int) -> int:
        return int(self._gen[i])

    # -- the workload's side

    def begin(self, i: int) -> None:
        while self._hold[i] and not STOP.is_set():
            time.sleep(0.001)
        self._gen[i] += 1

    def end(self, i: int) -> None:
        self._gen[i] += 1

    # -- a reader's side

    def hold(self, i: int, timeout: float = 5.0) -> int | None:
        """
        Ask slot *i*'s thread to start nothing new and wait for the
        operation under way to end; return the slot's generation then
        (``None`` if it did not end in *timeout* s). A caller compares it
        with ``self[i]`` after its reads, then calls :meth:`release`.
        """
        self._hold[i] = 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            g = int(self._gen[i])
            if g % 2 == 0:
                return g
            time.sleep(0.0005)
        return None

    def release(self, i: int) -> None:
        self._hold[i] = 0


class Slot:
    """One thread's region: [start, start + size), mapped at ``addr`` (or not)."""

    def __init__(self, index: int, size: int) -> None:
        self.start = BASE + index * 2 * size
        self.size = size
        self.half = size // 2
        self.addr: int | None = None  # where the mapping is now
        self.len = 0
        self.counts: dict[str, int] = {}
        self.failures: dict[str, int] = {}

    def count(self, op: str, ok: bool = True) -> None:
        d = self.counts if ok else self.failures
        d[op] = d.get(op, 0) + 1

    # -- operations ----------------------------------------------------------

    def map(self, rng: random.Random) -> None:
        if self.addr is not None:
            self.unmap(rng)
        length = self.half
        a = libc.mmap(self.start, length, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0)
        if a in (None, MAP_FAILED) or a != self.start:
            self.count("map", False)
            return
        self.addr, self.len = a, length
        libc.madvise(a, length // 2, MADV_HUGEPAGE)
        libc.madvise(a + length // 2, length // 2, MADV_NOHUGEPAGE)
        libc.memset(a, 0x5A, length)
        self.count("map")

    def unmap(self, rng: random.Random) -> None:
        if self.addr is None:
            return
        libc.munmap(self.addr, self.len)
        self.addr = None
        self.count("unmap")

    def remap(self, rng: random.Random) -> None:
        if self.addr is None:
            return
        other = self.start + self.half if self.addr == self.start else self.start
        a = libc.mremap(self.addr, self.len, self.len, MREMAP_MAYMOVE | MREMAP_FIXED, other)
        if a in (None, MAP_FAILED):
            self.count("remap", False)
            return
        self.addr = a
        self.count("remap")

    def split(self, rng: random.Random) -> None:
        if self.addr is None:
            return
        thp = self.addr + rng.randrange(0, max(1, (self.len // 2) // HPAGE)) * HPAGE
        page = thp + rng.randrange(0, HPAGE // PAGE) * PAGE
        if rng.random() < 0.5:
            libc.mprotect(page, PAGE, PROT_READ)
            libc.mprotect(page, PAGE, PROT_READ | PROT_WRITE)
        else:
            libc.madvise(page, PAGE, MADV_DONTNEED)
        self.count("split")

    def collapse(self, rng: random.Random) -> None:
        if self.addr is None:
            return
        thp = self.addr + rng.randrange(0, max(1, (self.len // 2) // HPAGE)) * HPAGE
        r = libc.madvise(thp, HPAGE, MADV_COLLAPSE)
        self.count("collapse", r == 0)

    def swap(self, rng: random.Random) -> None:
        if self.addr is None:
            return
        off = rng.randrange(0, self.len // PAGE) * PAGE
        n = min(self.len - off, rng.randrange(1, 256) * PAGE)
        r = libc.madvise(self.addr + off, n, MADV_PAGEOUT)
        self.count("swap", r == 0)
        if rng.random() < 0.5:
            libc.memset(self.addr + off, 0x11, min(n, 16 * PAGE))

    def protect(self, rng: random.Random) -> None:
        if self.addr is None:
            return
        off = rng.randrange(0, self.len // PAGE) * PAGE
        n = min(self.len - off, rng.randrange(1, 64) * PAGE)
        libc.mprotect(self.addr + off, n, PROT_READ)
        libc.mprotect(self.addr + off, n, PROT_READ | PROT_WRITE)
        self.count("protect")

    def fault(self, rng: random.Random) -> None:
        if self.addr is None:
            return
        for _ in range(16):
            off = rng.randrange(0, self.len // PAGE) * PAGE
            libc.memset(self.addr + off, rng.randrange(256), 64)
        self.count("fault")


OPS = ("map", "unmap", "remap", "split", "collapse", "swap", "protect", "fault", "fault")


def worker(slot: Slot, index: int, gens: Generations, seed: int, nap: float) -> None:
    rng = random.Random(seed)
    gens.begin(index)
    slot.map(rng)
    gens.end(index)
    while not STOP.is_set():
        op = rng.choice(OPS)
        if slot.addr is None and op != "unmap":
            op = "map"
        gens.begin(index)
        getattr(slot, op)(rng)
        gens.end(index)
        if nap:
            time.sleep(rng.random() * 2 * nap)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=3)
    ap.add_argument("--slot-mib", type=int, default=16, help="size of each thread's slot")
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: until SIGTERM)")
    ap.add_argument("--ready-file")
    ap.add_argument("--stats-file")
    ap.add_argument("--generations", help="the slots' generation counts (default: READY_FILE.gen)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--nap-ms", type=float, default=0,
                    help="mean pause between two operations of a thread (leave CPU to the walker)")
    args = ap.parse_args()

    slots = [Slot(i, args.slot_mib << 20) for i in range(args.threads)]
    gen_path = args.generations or (args.ready_file + ".gen" if args.ready_file else f"/tmp/churn-{os.getpid()}.gen")
    gens = Generations(gen_path, len(slots), create=True)
    threads = [threading.Thread(target=worker, args=(s, i, gens, args.seed * 1000 + i, args.nap_ms / 1000),
                                daemon=True)
               for i, s in enumerate(slots)]
    signal.signal(signal.SIGTERM, lambda *a: STOP.set())
    signal.signal(signal.SIGINT, lambda *a: STOP.set())
    for t in threads:
        t.start()
    ready = {"pid": os.getpid(), "slots": [[s.start, s.start + s.size] for s in slots], "generations": gen_path}
    line = json.dumps(ready)
    print(line, flush=True)
    if args.ready_file:
        tmp = args.ready_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(line + "\n")
        os.rename(tmp, args.ready_file)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    forks = 0
    while not STOP.is_set():
        if deadline is not None and time.monotonic() > deadline:
            break
        STOP.wait(0.5)
        # a short-lived child: fork copies the page tables, exit frees them
        # (no generation: the slots keep their frames; only pagemap's
        # exclusive bit changes meanwhile, which the proof counts apart)
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        forks += 1
    STOP.set()
    for t in threads:
        t.join(10)
    stats: dict[str, object] = {"forks": forks, "ops": {}, "failed": {}}
    for s in slots:
        for k, v in s.counts.items():
            stats["ops"][k] = stats["ops"].get(k, 0) + v  # type: ignore[index,union-attr]
        for k, v in s.failures.items():
            stats["failed"][k] = stats["failed"].get(k, 0) + v  # type: ignore[index,union-attr]
    if args.stats_file:
        with open(args.stats_file, "w") as f:
            json.dump(stats, f)
    print(json.dumps(stats), flush=True)


# -- the other side: walking the churning process with livewalk ---------------------


class WalkHang(Exception):
    """A walk did not end within its bound."""


def local_pagemap(pid: int) -> Callable[[int, int], bytes]:
    """The kernel's own ``/proc/PID/pagemap`` of [start, end), read here."""

    def read(start: int, end: int) -> bytes:
        with open(f"/proc/{pid}/pagemap", "rb") as f:
            return os.pread(f.fileno(), (end - start) // PAGE * 8, start // PAGE * 8)

    return read


#: PM_MMAP_EXCLUSIVE: from the page's mapcount (struct page), not the page tables
PM_MMAP_EXCLUSIVE = 1 << 56
#: PM_PRESENT | PM_SWAP: the entry names a frame (a PFN or a swap slot)
PM_FRAME = 3 << 62


def walk_loop(prog: object, pid: int, seconds: float, bound: float = 120.0,
              slots: list[list[int]] | None = None,
              kernel_pagemap: Callable[[int, int], bytes] | None = None,
              generations: Generations | None = None) -> dict[str, object]:
    """
    Walk process *pid* of *prog* again and again for *seconds*, cycling over
    these kinds of walk: the whole address space judged whole
    (``walk_with_retry`` of ``walk_page_range``: the "before" figures) and
    judged per table and VMA (``read_consistent``: the "after" figures),
    the churn slots only (``checked_walk``), the ``pagemap`` and ``smaps``
    commands (``livewalk.cli.run_command``) and, with *kernel_pagemap*, the
    proof: livewalk's pagemap of a churn slot against the kernel's own read
    before and after it (only pages equal in both kernel reads count; a
    difference in a range livewalk marks consistent is a ``proof_mismatch``
    when both kernel reads name the same frame, ``proof_mismatch_no_frame``
    when they name none: two reads a second apart cannot tell a page that
    stayed away from a slot unmapped and mapped afresh between them). With
    the workload's *generations*, the proof holds the slot it reads (its
    thread starts nothing new; the other slots, which share its PMD table,
    keep churning) and a page counts as ``proof_pages_held`` when the
    slot's seqcount did not move from before the first kernel read to after
    the second: only there can the two reads vouch for what livewalk read in
    between (a slot unmapped and faulted afresh twice can come back to the
    frames it had, and the two kernel reads then agree with each other and
    not with a correct read in between); a difference there is a
    ``proof_mismatch``, one elsewhere ``proof_mismatch_slot_changed``
    (reported, not a failure).
    Each walk must end within *bound* seconds (SIGALRM; a hang is recorded
    and ends the loop). Exceptions other than livewalk's documented
    :class:`~livewalk.errors.LivewalkError` are recorded as ``escaped``.
    Returns the figures as a dict.
    """
    import io
    import traceback

    from livewalk import MMWalkOps, walk_page_range
    from livewalk.backend import backend_for_mm
    from livewalk.cli import build_parser, run_command
    from livewalk.consistency import (
        DEFAULT_RETRIES,
        DEFAULT_WALK_RETRIES,
        checked_walk,
        pagemap_read_consistent,
        read_consistent,
        walk_with_retry,
    )
    from livewalk.errors import LivewalkError
    from livewalk.task import find_mm

    st: dict[str, object] = {}
    counts: dict[str, int] = {k: 0 for k in (
        "walks", "attempts", "torn_attempts", "torn_final", "retried", "incomplete",
        "not_complete_nor_torn", "cli_runs", "cli_ok", "cli_livewalk_errors", "escaped",
        "hangs", "pmds", "ptes_present", "walk_errors",
        # before: the whole-walk verdict (walk_with_retry, DEFAULT_WALK_RETRIES)
        "before_vmas", "before_vmas_ok", "before_tables", "before_tables_ok",
        # after: per table and per VMA (read_consistent, DEFAULT_RETRIES rounds:
        # the final answer the CLI gives)
        "after_walks", "after_whole", "after_vmas", "after_vmas_ok", "after_tables", "after_tables_ok",
        "after_torn_ranges", "after_torn_unnamed", "after_reads", "after_table_reads",
        # the proof against the kernel's own pagemap
        "proof_runs", "proof_pages_compared", "proof_pages_moving", "proof_pages_torn",
        "proof_mismatch", "proof_mismatch_exclusive_only", "proof_mismatch_no_frame",
        "proof_pages_held", "proof_mismatch_slot_changed")}
    reasons: dict[str, int] = {}
    escaped: list[str] = []
    slowest = 0.0

    def on_alarm(*a: object) -> None:
        raise WalkHang(f"a walk took more than {bound} s")

    old = signal.signal(signal.SIGALRM, on_alarm)

    class Ops(MMWalkOps):
        def pmd_entry(self, pmd: object, addr: int, next: int, walk: object) -> int:
            counts["pmds"] += 1
            table = getattr(pmd, "pte_table", None)
            if table is not None and getattr(pmd, "present", False) and not getattr(pmd, "leaf", True):
                try:
                    vals = table()
                except Exception:
                    return 0
                counts["ptes_present"] += sum(1 for v in vals if v & 1)
            walk.action = 1  # ACTION_CONTINUE: the table was handled here  # type: ignore[attr-defined]
            return 0

        def pte_hole(self, addr: int, next: int, depth: int, walk: object) -> int:
            return 0

    parser = build_parser(with_target=False)
    t_end = time.monotonic() + seconds
    i = 0
    try:
        while time.monotonic() < t_end:
            kinds = ("range", "crange", "proof", "slots", "pagemap", "crange", "proof", "smaps")
            kind = kinds[i % len(kinds)]
            i += 1
            if kind == "proof" and (kernel_pagemap is None or not slots):
                kind = "crange"
            t0 = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, bound)
            try:
                if kind in ("pagemap", "smaps"):
                    counts["cli_runs"] += 1
                    argv = [kind, "--pid", str(pid)]
                    if kind == "pagemap" and slots:
                        s0, s1 = slots[i % len(slots)]
                        argv += ["--range", f"{s0:x}:{s1:x}", "--format", "raw"]
                    args = parser.parse_args(argv)
                    out = io.StringIO()
                    try:
                        if run_command(prog, args, out) == 0:
                            counts["cli_ok"] += 1
                    except LivewalkError as e:
                        counts["cli_livewalk_errors"] += 1
                        reasons["cli: " + type(e).__name__] = reasons.get("cli: " + type(e).__name__, 0) + 1
                    continue
                _task, mm = find_mm(prog, pid)
                if kind == "crange":
                    end = int(mm.task_size)

                    def read(s: int, e: int, walks: list, mm: object = mm) -> int:  # type: ignore[type-arg]
                        return walk_page_range(mm, s, e, Ops(), walks=walks)

                    c = read_consistent(mm, 0, end, read, lambda v, s, e, n: v, retries=DEFAULT_RETRIES).consistency
                    counts["after_walks"] += 1
                    counts["after_whole"] += int(c.whole)
                    counts["after_vmas"] += c.vmas
                    counts["after_vmas_ok"] += c.vmas - c.vmas_torn
                    counts["after_tables"] += c.tables
                    counts["after_tables_ok"] += c.tables - c.tables_torn
                    counts["after_torn_ranges"] += len(c.torn)
                    counts["after_torn_unnamed"] += sum(1 for t in c.torn if not t.reason)
                    counts["after_reads"] += c.reads
                    counts["after_table_reads"] += c.table_reads
                    for t in c.torn:
                        reasons["torn: " + t.reason] = reasons.get("torn: " + t.reason, 0) + 1
                    continue
                if kind == "proof":
                    assert kernel_pagemap is not None and slots
                    si = (i // len(kinds)) % len(slots)
                    s0, s1 = slots[si]
                    g0 = generations.hold(si) if generations is not None else None
                    try:
                        ka = kernel_pagemap(s0, s1)
                        pm = pagemap_read_consistent(mm, s0, s1, retries=DEFAULT_RETRIES)
                        kb = kernel_pagemap(s0, s1)
                        g1 = generations[si] if generations is not None else None
                    finally:
                        if generations is not None:
                            generations.release(si)
                    held = generations is None or (g0 is not None and g1 == g0)
                    counts["proof_runs"] += 1
                    if pm.value is None:
                        continue
                    ours = pm.value
                    for n in range(min(len(ours), len(ka) // 8, len(kb) // 8)):
                        a = int.from_bytes(ka[n * 8:n * 8 + 8], "little")
                        b = int.from_bytes(kb[n * 8:n * 8 + 8], "little")
                        addr = s0 + n * PAGE
                        if a != b:
                            counts["proof_pages_moving"] += 1
                            continue
                        if not pm.consistency.consistent(addr, addr + PAGE):
                            counts["proof_pages_torn"] += 1
                            continue
                        counts["proof_pages_compared"] += 1
                        counts["proof_pages_held"] += int(held and generations is not None)
                        if ours[n] != a:
                            if (ours[n] ^ a) == PM_MMAP_EXCLUSIVE:
                                counts["proof_mismatch_exclusive_only"] += 1
                            elif not a & PM_FRAME:
                                # no frame in either kernel read: the slot may
                                # have been unmapped and mapped afresh between
                                # them (ABA of the kernel's own reads)
                                counts["proof_mismatch_no_frame"] += 1
                            elif not held:
                                counts["proof_mismatch_slot_changed"] += 1
                            else:
                                counts["proof_mismatch"] += 1
                                if len(escaped) < 5:
                                    escaped.append(f"proof mismatch {addr:#x}: kernel {a:#x} livewalk {ours[n]:#x}")
                    continue
                if kind == "range":
                    end = int(mm.task_size)
                    r = walk_with_retry(walk_page_range, mm, 0, end, Ops(), retries=DEFAULT_WALK_RETRIES)
                    nv = 0
                    v = backend_for_mm(mm).find_vma(mm, 0)
                    while v is not None:
                        nv += 1
                        v = backend_for_mm(mm).find_vma(mm, v.vm_end)
                    counts["before_vmas"] += nv
                    counts["before_vmas_ok"] += 0 if r.torn else nv
                    counts["before_tables"] += r.consistency.tables_checked
                    counts["before_tables_ok"] += 0 if r.torn else r.consistency.tables_checked
                else:
                    ss = slots or [[0, int(mm.task_size)]]
                    s0, s1 = ss[i % len(ss)]
                    r = checked_walk(walk_page_range, mm, s0, s1, Ops())
                counts["walks"] += 1
                counts["attempts"] += r.attempts
                counts["torn_attempts"] += r.torn_attempts if kind == "range" else int(r.torn)
                counts["torn_final"] += int(r.torn)
                counts["retried"] += int(r.attempts > 1)
                counts["incomplete"] += int(not r.complete)
                counts["not_complete_nor_torn"] += int(not r.complete and not r.torn)
                if r.walk is not None:
                    counts["walk_errors"] += len(r.walk.errors)
                for why in r.consistency.reasons:
                    reasons[why] = reasons.get(why, 0) + 1
            except LivewalkError as e:
                # the process is gone, or a documented error: allowed
                reasons["walk: " + type(e).__name__] = reasons.get("walk: " + type(e).__name__, 0) + 1
            except WalkHang:
                counts["hangs"] += 1
                escaped.append(traceback.format_exc(limit=8))
                break
            except Exception:
                counts["escaped"] += 1
                escaped.append(traceback.format_exc(limit=12))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                slowest = max(slowest, time.monotonic() - t0)
    finally:
        signal.signal(signal.SIGALRM, old)
    st.update(counts)

    def pct(ok: str, total: str) -> float | None:
        return round(100 * counts[ok] / counts[total], 2) if counts[total] else None

    st["before_pct_vmas_consistent"] = pct("before_vmas_ok", "before_vmas")
    st["before_pct_tables_consistent"] = pct("before_tables_ok", "before_tables")
    st["after_pct_vmas_consistent"] = pct("after_vmas_ok", "after_vmas")
    st["after_pct_tables_consistent"] = pct("after_tables_ok", "after_tables")
    st["reasons"] = reasons
    st["escaped_tracebacks"] = escaped[:5]
    st["slowest_s"] = round(slowest, 2)
    st["seconds"] = seconds
    return st


def walk_main() -> None:
    """``churn.py --walk PID --seconds S``: walk a churning process in this (live) kernel."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--walk", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--bound", type=float, default=120)
    ap.add_argument("--ready-file", help="the workload's ready file (for the slots)")
    ap.add_argument("--control", type=int, help="also walk this quiet process: it must not be torn")
    args = ap.parse_args()
    from livewalk.program import open_program

    prog = open_program()
    slots = None
    generations = None
    if args.ready_file:
        with open(args.ready_file) as f:
            ready = json.load(f)
        slots = ready["slots"]
        generations = Generations(ready["generations"], len(slots))
    st = walk_loop(prog, args.walk, args.seconds, args.bound, slots, local_pagemap(args.walk), generations)
    if args.control:
        st["control"] = control_walk(prog, args.control)
    print(json.dumps(st), flush=True)


def control_walk(prog: object, pid: int) -> dict[str, object]:
    """Walk a process that does not change: the detector must not flag it."""
    from livewalk import MMWalkOps, walk_page_range
    from livewalk.consistency import walk_with_retry
    from livewalk.task import find_mm

    _task, mm = find_mm(prog, pid)
    n = [0]
    ops = MMWalkOps(pte_entry=lambda *a: n.__setitem__(0, n[0] + 1))
    r = walk_with_retry(walk_page_range, mm, 0, int(mm.task_size), ops, retries=0,
                        pre_attempt=lambda i: n.__setitem__(0, 0))
    from livewalk.consistency import read_consistent

    def read(s: int, e: int, walks: list) -> int:  # type: ignore[type-arg]
        return walk_page_range(mm, s, e, MMWalkOps(pte_entry=lambda *a: 0), walks=walks)

    c = read_consistent(mm, 0, int(mm.task_size), read, retries=0).consistency
    return {"torn": r.torn, "reasons": r.consistency.reasons, "ptes": n[0],
            "tables_checked": r.consistency.tables_checked, "ret": r.ret,
            "level": c.level, "vmas": c.vmas, "tables": c.tables}


if __name__ == "__main__":
    import sys

    if "--walk" in sys.argv:
        walk_main()
    else:
        main()
