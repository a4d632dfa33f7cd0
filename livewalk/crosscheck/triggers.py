# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Triggers
--------

User-space actions that make the kernel walk page tables, each a known
in-kernel user of the walker (Linux 7.2; the file and ops are named in each
:class:`Trigger`). Read-only triggers act on the target process; the others
act on the crosscheck's own helper process (:mod:`.helper`), on its
dedicated regions, so the target is never changed; ptdump walks the
kernel's own page tables (``init_mm``).

Comparison modes (see :mod:`.replay`):

* ``static``: the replay walks the pre-trigger snapshot; everything is
  compared exactly, entry values included;
* ``overlay``: the replay walks the pre-trigger snapshot (or, for the
  kernel's tables, the live tables) with the values the kernel's callbacks
  saw laid over it; control flow is compared exactly, and slots where the
  kernel saw another value than the snapshot are counted and reported.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from livewalk.crosscheck.helper import syscall_number
from livewalk.errors import LivewalkError
from livewalk.kernel import KernelFeatures

__all__ = (
    "Helper",
    "TRIGGERS",
    "Trigger",
    "TriggerContext",
    "trigger_names",
)

PAGEMAP_SCAN = 0xC0606610  # _IOWR('f', 16, struct pm_scan_arg), 96 bytes
#: Room for ``struct page_region`` results of one PAGEMAP_SCAN call
PM_SCAN_VEC_LEN = 1 << 12
#: ``PAGE_IS_*`` categories up to ``PAGE_IS_SOFT_DIRTY`` (Linux 6.7), and
#: ``PAGE_IS_GUARD`` (Linux 6.14): a ``#define``, so the kernel is asked (it
#: refuses unknown categories with ``EINVAL`` before it walks)
PM_SCAN_CATEGORIES = 0xFF
PAGE_IS_GUARD = 1 << 8

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long


class Helper:
    """The helper process: its PID, regions, and a command channel."""

    def __init__(self) -> None:
        path = Path(__file__).with_name("helper.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise LivewalkError("the crosscheck helper process did not start")
        info = json.loads(line)
        self.pid: int = info["pid"]
        self.regions: dict[str, tuple[int, int]] = {k: (v[0], v[1]) for k, v in info["regions"].items()}
        self.skipped: dict[str, str] = info.get("skipped", {})

    def cmd(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.readline()
        if not out:
            raise LivewalkError(f"the crosscheck helper died during {line!r}")
        return json.loads(out)  # type: ignore[no-any-return]

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                assert self.proc.stdin is not None
                self.proc.stdin.write("exit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


@dataclasses.dataclass
class TriggerContext:
    """What a trigger acts on."""

    target_pid: int
    helper: Helper | None
    task_size: int
    numa_nodes: list[int]
    page_size: int
    features: KernelFeatures = dataclasses.field(default_factory=KernelFeatures.for_version)
    crosscheck_pid: int = dataclasses.field(default_factory=os.getpid)


@dataclasses.dataclass(frozen=True)
class Trigger:
    """
    One walk trigger.

    :ivar name: CLI name
    :ivar on: ``"target"``, ``"helper"`` or ``"kernel"`` (whose mm is walked)
    :ivar mode: ``"static"`` or ``"overlay"`` (see the module docs)
    :ivar user: the in-kernel user it exercises (file: function, ops)
    :ivar ops: static ``mm_walk_ops`` symbols to attach before running
    :ivar callbacks: ``(function, slot)`` of ops built on the stack
    :ivar vmas_after: the syscall changes VMAs before it walks (mlock): replay
        with the VMAs as they are after it
    :ivar run: performs the action
    :ivar unavailable: returns why the trigger cannot run here (this
        machine or VM lacks something), or None
    :ivar not_in_kernel: returns why the target kernel cannot run it at all
        (it lacks the system call, ioctl or walk user), or None: the trigger
        is then "not applicable on this kernel"
    """

    name: str
    on: str
    mode: str
    user: str
    run: Callable[[TriggerContext], str]
    ops: tuple[str, ...] = ()
    callbacks: tuple[tuple[str, str], ...] = ()
    vmas_after: bool = False
    unavailable: Callable[[TriggerContext], str | None] = lambda ctx: None
    not_in_kernel: Callable[[KernelFeatures], str | None] = lambda features: None


# -- actions ---------------------------------------------------------------


def target_ranges(pid: int, task_size: int) -> list[tuple[int, int]]:
    """The target's VMAs below TASK_SIZE, from /proc/PID/maps."""
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            a, b = line.split()[0].split("-")
            s, e = int(a, 16), int(b, 16)
            if e <= task_size:
                out.append((s, e))
    return out


def _pagemap(ctx: TriggerContext) -> str:
    page = ctx.page_size
    ranges = target_ranges(ctx.target_pid, ctx.task_size)
    reads = []
    for s, e in ranges:  # each VMA with two pages either side: gap holes too
        reads.append((max(0, s - 2 * page), min(ctx.task_size, e + 2 * page)))
    if ranges:  # and 16 MiB of address space below the first VMA
        lo = ranges[0][0]
        reads.append((max(0, lo - (16 << 20)) & ~(page - 1), lo))
    fd = os.open(f"/proc/{ctx.target_pid}/pagemap", os.O_RDONLY)
    try:
        for s, e in reads:
            n = (e - s) // page
            if n:
                os.pread(fd, n * 8, (s // page) * 8)
    finally:
        os.close(fd)
    return f"{len(reads)} reads"


def _read_file(path: str) -> str:
    with open(path, "rb") as f:
        n = len(f.read())
    return f"{n} bytes"


def _pagemap_scan(ctx: TriggerContext) -> str:
    ranges = target_ranges(ctx.target_pid, ctx.task_size)
    if not ranges:
        return "no VMAs"
    nvec = PM_SCAN_VEC_LEN
    vec = (ctypes.c_uint64 * (3 * nvec))()
    fd = os.open(f"/proc/{ctx.target_pid}/pagemap", os.O_RDONLY)
    try:
        for categories in (PM_SCAN_CATEGORIES | PAGE_IS_GUARD, PM_SCAN_CATEGORIES):
            arg = (ctypes.c_uint64 * 12)(
                96, 0, ranges[0][0], ranges[-1][1], 0, ctypes.addressof(vec), nvec, 0,
                0, 0, categories, categories,
            )  # fmt: skip
            r = _libc.ioctl(fd, ctypes.c_ulong(PAGEMAP_SCAN), ctypes.byref(arg))
            if r >= 0 or ctypes.get_errno() != errno.EINVAL:
                break
        if r < 0:
            e = ctypes.get_errno()
            raise LivewalkError(f"PAGEMAP_SCAN failed: {os.strerror(e)}")
    finally:
        os.close(fd)
    return f"{r} regions (categories {categories:#x})"


def _helper_cmds(*cmds: str) -> Callable[[TriggerContext], str]:
    def run(ctx: TriggerContext) -> str:
        assert ctx.helper is not None
        notes = []
        for c in cmds:
            region = c.split()[1]
            if region not in ctx.helper.regions:
                continue
            r = ctx.helper.cmd(c)
            if "error" in r:
                raise LivewalkError(f"helper: {c}: {r['error']}")
            notes.append(f"{c.split()[0]} {region}={r['ret']}" + (f"/{os.strerror(r['errno'])}" if r["ret"] else ""))
        return ", ".join(notes)

    return run


def _mincore(ctx: TriggerContext) -> str:
    assert ctx.helper is not None
    return _helper_cmds(*(f"mincore {r}" for r in ctx.helper.regions))(ctx)


def _clear_refs(ctx: TriggerContext) -> str:
    assert ctx.helper is not None
    for n in ("1", "2", "3", "4"):
        with open(f"/proc/{ctx.helper.pid}/clear_refs", "w") as f:
            f.write(n)
    return "1, 2, 3, 4"


def _migrate_pages(ctx: TriggerContext) -> str:
    assert ctx.helper is not None
    a, b = ctx.numa_nodes[0], ctx.numa_nodes[1]
    old = ctypes.c_ulong(1 << a)
    new = ctypes.c_ulong(1 << b)
    try:
        nr = syscall_number("migrate_pages")
    except OSError as e:
        raise LivewalkError(str(e)) from e
    r = _libc.syscall(ctypes.c_long(nr), ctypes.c_int(ctx.helper.pid), ctypes.c_ulong(64),
                      ctypes.byref(old), ctypes.byref(new))
    if r < 0:
        raise LivewalkError(f"migrate_pages failed: {os.strerror(ctypes.get_errno())}")
    return f"node {a} -> {b}: {r} not moved"


def _needs_numa(ctx: TriggerContext) -> str | None:
    return None if len(ctx.numa_nodes) >= 2 else "needs two NUMA nodes (do_migrate_pages walks only when a page would move)"


def _needs_file(path: str) -> Callable[[TriggerContext], str | None]:
    return lambda ctx: None if os.path.exists(path) else f"{path} is missing"


def _needs_target_file(name: str) -> Callable[[TriggerContext], str | None]:
    return lambda ctx: None if os.path.exists(f"/proc/{ctx.target_pid}/{name}") else f"/proc/PID/{name} is missing"


def _no_pagemap_scan(f: KernelFeatures) -> str | None:
    return None if f.pagemap_scan else "no PAGEMAP_SCAN ioctl (no pagemap_scan_ops; Linux 6.7)"


def _no_guard_regions(f: KernelFeatures) -> str | None:
    if f.madvise_guard:
        return None
    return "no guard regions (no MADV_GUARD_INSTALL/REMOVE, no guard_install_pte_entry; Linux 6.13)"


def _no_check_wx(f: KernelFeatures) -> str | None:
    if f.ptdump_check_wx:
        return None
    return ("no check_wx_pages debugfs file (no check_wx_open in mm/ptdump.c; in 6.12, not in 6.1): "
            "ptdump walks the kernel's tables only at boot")


CHECK_WX = "/sys/kernel/debug/check_wx_pages"

TRIGGERS: tuple[Trigger, ...] = (
    Trigger("pagemap", "target", "static", "fs/proc/task_mmu.c pagemap_read: walk_page_range per PMD, pagemap_ops",
            _pagemap, ops=("pagemap_ops",)),
    Trigger("smaps", "target", "static", "task_mmu.c smap_gather_stats: walk_page_vma, smaps_*walk*ops",
            lambda ctx: _read_file(f"/proc/{ctx.target_pid}/smaps"),
            ops=("smaps_walk_ops", "smaps_shmem_walk_ops", "smaps_walk_vma_lock_ops",
                 "smaps_shmem_walk_vma_lock_ops")),
    Trigger("smaps_rollup", "target", "static", "task_mmu.c show_smaps_rollup: walk_page_vma, smaps_walk_ops",
            lambda ctx: _read_file(f"/proc/{ctx.target_pid}/smaps_rollup"),
            ops=("smaps_walk_ops", "smaps_shmem_walk_ops")),
    Trigger("numa_maps", "target", "static", "task_mmu.c show_numa_map: walk_page_vma, show_numa_*ops",
            lambda ctx: _read_file(f"/proc/{ctx.target_pid}/numa_maps"),
            ops=("show_numa_ops", "show_numa_vma_lock_ops"), unavailable=_needs_target_file("numa_maps")),
    Trigger("pagemap_scan", "target", "static", "task_mmu.c do_pagemap_scan (no WP): walk_page_range, pagemap_scan_ops",
            _pagemap_scan, ops=("pagemap_scan_ops",), not_in_kernel=_no_pagemap_scan),
    Trigger("mincore", "helper", "static", "mm/mincore.c do_mincore: walk_page_range, mincore_walk_ops",
            _mincore, ops=("mincore_walk_ops",)),
    Trigger("clear_refs", "helper", "overlay", "task_mmu.c clear_refs_write (1-4): walk_page_range(0, -1), clear_refs_walk_ops",
            _clear_refs, ops=("clear_refs_walk_ops",)),
    Trigger("madv_cold", "helper", "overlay", "mm/madvise.c madvise_cold: walk_page_range_vma, cold_walk_ops",
            _helper_cmds("madvise cold COLD", "madvise thp COLD 0 256"), ops=("cold_walk_ops",)),
    Trigger("madv_pageout", "helper", "overlay", "madvise.c madvise_pageout: walk_page_range_vma, cold_walk_ops",
            _helper_cmds("madvise pageout PAGEOUT", "madvise pageout_thp PAGEOUT"), ops=("cold_walk_ops",)),
    Trigger("madv_willneed", "helper", "overlay", "madvise.c madvise_willneed (anon): walk_page_range_vma, swapin_walk_ops",
            _helper_cmds("madvise swapped WILLNEED", "madvise anon WILLNEED"), ops=("swapin_walk_ops",)),
    Trigger("madv_free", "helper", "overlay", "madvise.c madvise_free_single_vma: walk_page_range_vma, local ops",
            _helper_cmds("madvise lazy FREE"), callbacks=(("madvise_free_pte_range", "pmd_entry"),)),
    Trigger("madv_guard_install", "helper", "overlay",
            "madvise.c madvise_guard_install: walk_page_range_vma_unsafe / _mm_unsafe with install_pte",
            _helper_cmds("madvise guard GUARD_INSTALL 256 768"),
            callbacks=(("guard_install_pud_entry", "pud_entry"), ("guard_install_pmd_entry", "pmd_entry"),
                       ("guard_install_pte_entry", "pte_entry"), ("guard_install_set_pte", "install_pte")),
            not_in_kernel=_no_guard_regions),
    Trigger("madv_guard_remove", "helper", "overlay", "madvise.c madvise_guard_remove: walk_page_range_vma",
            _helper_cmds("madvise guard GUARD_REMOVE"),
            callbacks=(("guard_remove_pud_entry", "pud_entry"), ("guard_remove_pmd_entry", "pmd_entry"),
                       ("guard_remove_pte_entry", "pte_entry")),
            not_in_kernel=_no_guard_regions),
    Trigger("mlock", "helper", "overlay", "mm/mlock.c mlock_vma_pages_range: walk_page_range, mlock_walk_ops",
            _helper_cmds("mlock lock"), callbacks=(("mlock_pte_range", "pmd_entry"),), vmas_after=True),
    Trigger("munlock", "helper", "overlay", "mlock.c mlock_vma_pages_range: walk_page_range, mlock_walk_ops",
            _helper_cmds("munlock lock"), callbacks=(("mlock_pte_range", "pmd_entry"),), vmas_after=True),
    Trigger("mbind", "helper", "overlay",
            "mm/mempolicy.c do_mbind: queue_pages_range, queue_pages_lock_vma_walk_ops (queue_pages_walk_ops in 6.1)",
            _helper_cmds("mbind policy 0"), ops=("queue_pages_lock_vma_walk_ops", "queue_pages_walk_ops")),
    Trigger("migrate_pages", "helper", "overlay", "mempolicy.c migrate_to_node: queue_pages_range, queue_pages_walk_ops",
            _migrate_pages, ops=("queue_pages_walk_ops",), unavailable=_needs_numa),
    Trigger("ptdump", "kernel", "overlay",
            "mm/ptdump.c via check_wx_pages: walk_page_range_debug (walk_page_range_novma before 6.12.105) "
            "on init_mm, ptdump_ops",
            lambda ctx: _read_file(CHECK_WX).replace("bytes", "bytes of check_wx_pages"),
            ops=("ptdump_ops",), unavailable=_needs_file(CHECK_WX), not_in_kernel=_no_check_wx),
)


def trigger_names() -> list[str]:
    return [t.name for t in TRIGGERS]


def online_nodes() -> list[int]:
    """Online NUMA nodes (from sysfs)."""
    try:
        text = Path("/sys/devices/system/node/online").read_text().strip()
    except OSError:
        return [0]
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out
