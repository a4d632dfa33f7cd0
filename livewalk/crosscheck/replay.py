# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Replay
------

Run livewalk's walker over what a traced kernel walk walked, with an ops
struct that has the same callbacks. Each Python callback records its call
(slot, ``addr``, ``next``, depth or hmask, the entry's kernel address and
raw value, ``walk.action`` on entry, ``walk.vma``'s start), compares it at
once with the kernel's call at the same step, and then returns the value the
kernel's callback returned there and sets ``walk.action`` to what the kernel
callback left. So livewalk's walker is driven by the kernel's callbacks'
decisions, and every decision of the *walker* (which callback, which slot,
which range, which depth, descend or not) is checked against the kernel's.

What state the replay walks
===========================

:class:`ReplayBackend` wraps the real backend (drgn on ``/proc/kcore``) and
serves page tables from one of:

* a **snapshot** taken just before the trigger (:func:`snapshot_tables`):
  every page-table page of the user half of the target mm, read with drgn
  while the target is idle. Triggers that only read (pagemap, smaps,
  numa_maps, mincore, PAGEMAP_SCAN) are compared exactly against it: the
  raw entry values the BPF probes read at each callback must equal what
  drgn read before the trigger.
* an **overlay** of the values the kernel saw (:func:`kernel_overlay`), on
  top of the snapshot, for triggers that change page tables while or before
  they walk: guard install (tables allocated, markers installed, a populated
  range zapped between two walks), and for the kernel's own tables (ptdump
  of init_mm, which the kernel changes all the time). Every slot a callback
  reported is served with the value the kernel read there (a slot where
  ``install_pte`` was called is served as none, since the kernel installs
  only into none slots; a hole reported by ``pte_hole`` under a known table
  is served as none). The control flow is then compared exactly; entry
  values are independently checked wherever the snapshot (or live) value
  equals the kernel's, and every slot where they differ is counted in
  :attr:`ReplayBackend.changed` and reported ("changed during the trigger,
  served as the kernel saw them").

Other mutating triggers (clear_refs, MADV_COLD/PAGEOUT/FREE/WILLNEED,
mlock, mbind, migrate_pages) change entries only after their callback has
read them (clearing young/dirty bits, zapping, swapping, splitting a THP
inside the callback); their ops have no ``pte_entry``, so the walker never
looks at a slot again after the callback, and the pre-trigger snapshot is
what the kernel walked, except where an earlier walk of the same trigger
changed a slot a later walk reads: ``echo 1..4 > clear_refs`` is four walks,
and the first clears the accessed bit of PMD-mapped THPs that the next three
see. The overlay serves those slots as the kernel saw them, and each one is
reported (in ``--verbose`` mode with the bits that changed).

"""

from __future__ import annotations

import bisect
import dataclasses
import errno
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import livewalk.mm.pagewalk as pw
from livewalk.arch import ULONG_MAX, ArchPaging, PageTableLevel
from livewalk.backend import TableReadError
from livewalk.crosscheck.compare import Divergence, ReplayCall, diff_step
from livewalk.crosscheck.model import POINTER_SLOTS, KernelWalk
from livewalk.mm.vma import VMA

__all__ = (
    "ABORT",
    "ReplayBackend",
    "ReplayMM",
    "ReplayResult",
    "kernel_overlay",
    "list_vmas",
    "replay_walk",
    "snapshot_tables",
    "table_levels",
)

#: What a replay callback returns once the replay has diverged: stops the
#: walk (the kernel's later decisions no longer apply).
ABORT = -errno.ECANCELED

_PGD, _P4D, _PUD, _PMD, _PTE = (PageTableLevel.PGD, PageTableLevel.P4D, PageTableLevel.PUD,
                                PageTableLevel.PMD, PageTableLevel.PTE)

_LEVEL_OF_SLOT = {"pgd_entry": _PGD, "p4d_entry": _P4D, "pud_entry": _PUD, "pmd_entry": _PMD, "pte_entry": _PTE}

#: ``pte_hole``'s depth -> the level of the slot it reports
_LEVEL_OF_DEPTH = {0: _PGD, 1: _P4D, 2: _PUD, 3: _PMD}


class ReplayMM:
    """
    The mm handed to livewalk's entry points during a replay: it names the
    :class:`ReplayBackend` (``livewalk_backend``) and wraps the real mm
    (:attr:`inner`, a drgn ``struct mm_struct *``).
    """

    def __init__(self, inner: Any, backend: ReplayBackend, *, is_init: bool = False) -> None:
        self.inner = inner
        self.livewalk_backend = backend
        self.is_init = is_init

    def __repr__(self) -> str:
        return f"ReplayMM({self.inner!r})"


def list_vmas(base: Any, mm: Any) -> list[VMA]:
    """All VMAs of *mm* in address order, through ``find_vma``."""
    return list(base.vmas(mm))


def _table_below(paging: ArchPaging, level: PageTableLevel, v: int) -> bool:
    """An entry of a *level* table points to a table of the level below."""
    if level == _PMD:
        return paging.pmd_present(v) and not paging.pmd_leaf(v)
    if level == _PUD:
        return paging.pud_present(v) and not paging.pud_leaf(v)
    if level == _P4D:
        return paging.p4d_present(v)
    # with the P4D folded at build time the PGD's value is the P4D entry
    # (and pgd_present() is constant true)
    return paging.pgd_present(v) and paging.p4d_present(v)


def table_levels(paging: ArchPaging) -> list[PageTableLevel]:
    """
    The levels that have tables of their own at run time, top down: those
    not folded at build time, less the PGD when a level below it is folded
    into the PGD's page at boot (arm64 without LPA2: that level's table *is*
    the top page).
    """
    out = [lv for lv in (_PGD, _P4D, _PUD, _PMD, _PTE) if lv == _PGD or not paging.folded(lv)]
    if any(paging.folded_at_boot(lv) for lv in out):
        out.remove(_PGD)
    return out


def snapshot_tables(base: Any, pgd_kaddr: int, *, user_only: bool = True) -> dict[int, tuple[int, ...]]:
    """
    Read every page-table page reachable from the top-level table at
    *pgd_kaddr* (for a user mm only its user address space, below
    ``TASK_SIZE_MAX``) and return them by physical address. A top-level
    table smaller than a page (arm64's ``pgd_cache`` objects) is read in
    its page, from its own first slot.
    """
    paging = base.paging
    tables: dict[int, tuple[int, ...]] = {}
    levels = table_levels(paging)
    below = dict(zip(levels, levels[1:]))
    pgd_paddr = int(base.pgd_phys(pgd_kaddr))
    top = pgd_paddr & ~(paging.page_size - 1)
    top_level = levels[0]
    top_slots = paging.ptrs_per(top_level)
    if user_only:
        top_slots = min(top_slots, ((paging.task_size_max - 1) >> paging.level_shift(top_level)) + 1)
    # the folded-at-boot level indexes the page from its start (pgd_to_folded_p4d())
    first = (pgd_paddr - top) >> 3 if top_level == _PGD else 0
    stack = [(top, top_level, first, top_slots)]
    while stack:
        paddr, level, lo, n = stack.pop()
        if paddr not in tables:
            try:
                tables[paddr] = tuple(base.read_table(paddr))
            except TableReadError:
                continue
        nxt = below.get(level)
        if nxt is None:
            continue
        t = tables[paddr]
        for i in range(lo, lo + n):
            if _table_below(paging, level, t[i]):
                child = paging.table_paddr(t[i])
                if child not in tables:
                    stack.append((child, nxt, 0, paging.ptrs_per(nxt)))
    return tables


def kernel_overlay(walk: KernelWalk, pgd_phys: Callable[[int], int], paging: Any) -> dict[int, int]:
    """
    The page-table values *walk*'s callbacks saw, by physical address of the
    slot: the value read at every pointer callback; none (0) for every slot
    where ``install_pte`` was called and for every hole ``pte_hole`` reported
    at depth 0-3 under a table the trace identifies (the parent's value, or
    a sibling slot's address).
    """
    ov: dict[int, int] = {}
    # the latest pointer step per level: (addr, next, kaddr, value)
    last: dict[PageTableLevel, tuple[int, int, int, int]] = {}
    page_mask = ~(paging.page_size - 1)
    levels = table_levels(paging)
    above = dict(zip(levels[1:], levels))

    def slot_in(table_paddr: int, level: PageTableLevel, addr: int) -> int:
        return table_paddr + 8 * ((addr >> paging.level_shift(level)) & (paging.ptrs_per(level) - 1))

    top = pgd_phys(walk.pgd) if walk.pgd else None
    for s in walk.steps:
        if s.slot in POINTER_SLOTS and s.ptr:
            ov[pgd_phys(s.ptr)] = s.value
            lvl = _LEVEL_OF_SLOT.get(s.slot)
            if lvl is not None:
                last[lvl] = (s.addr, s.next, s.ptr, s.value)
        elif s.slot == "install_pte":
            pmd = last.get(_PMD)
            if pmd is not None and pmd[0] <= s.addr < pmd[1]:
                v = pmd[3]
                if _table_below(paging, _PMD, v):
                    ov[slot_in(paging.table_paddr(v), _PTE, s.addr)] = 0
        elif s.slot == "pte_hole" and 0 <= s.arg <= 3:
            # the table level that holds the reported slot: a level folded at
            # build time has its slot in the table of the level above
            level = _LEVEL_OF_DEPTH[s.arg]
            if level not in levels:
                level = min((lv for lv in levels if lv > level), default=levels[0])
            table: int | None = None
            if level == levels[0]:
                if top is not None:
                    table = top if level == _PGD else top & page_mask
            else:
                parent = above[level]
                # the parent's entry: its own callback's, or that of a level
                # folded between the two (which is handed the parent's slot)
                p = last.get(parent)
                if p is None:
                    p = next((last[lv] for lv in last if level < lv < parent), None)
                if p is not None and p[0] <= s.addr < p[1]:
                    v = p[3]
                    if _table_below(paging, parent, v):
                        table = paging.table_paddr(v)
                if table is None:
                    sib = last.get(level)
                    up = paging.level_shift(parent)
                    if sib is not None and (sib[0] >> up) == (s.addr >> up):
                        table = pgd_phys(sib[2]) & page_mask
            if table is not None:
                ov.setdefault(slot_in(table, level, s.addr), 0)
    return ov


class ReplayBackend:
    """
    A :class:`~livewalk.backend.PageTableBackend` for replays: the real
    backend *base*, with page tables from *tables* (a snapshot by physical
    address; missing pages are read from *base*), patched with *overlay*
    (slot physical address -> value), and VMAs from *vmas* (or *base*).

    :ivar changed: ``(slot paddr, base value, kernel value)`` for every
        overlaid slot whose snapshot/live value differed from the kernel's
    :ivar reads: tables served
    """

    def __init__(
        self,
        base: Any,
        *,
        tables: dict[int, tuple[int, ...]] | None = None,
        overlay: dict[int, int] | None = None,
        vmas: list[VMA] | None = None,
    ) -> None:
        self.base = base
        self.paging = base.paging
        self.tables = tables or {}
        self.vmas_snapshot = vmas
        self._ends = [v.vm_end for v in vmas] if vmas is not None else []
        self.changed: list[tuple[int, int, int]] = []
        self.reads = 0
        self._patches: dict[int, dict[int, int]] = {}
        self.mm: ReplayMM | None = None
        self._init: ReplayMM | None = None
        self.set_overlay(overlay or {})

    def set_overlay(self, overlay: dict[int, int]) -> None:
        self._patches = {}
        for pa, v in overlay.items():
            page = pa & ~(self.paging.page_size - 1)
            self._patches.setdefault(page, {})[(pa - page) >> 3] = v

    # What the trace does not change comes from the real backend.

    @property
    def prog(self) -> Any:
        return self.base.prog

    @property
    def features(self) -> Any:
        return self.base.features

    @property
    def vm_flag_bits(self) -> Any:
        return self.base.vm_flag_bits

    @property
    def zero_pfn(self) -> int | None:
        return self.base.zero_pfn  # type: ignore[no-any-return]

    @property
    def huge_zero_pfn(self) -> int | None:
        return self.base.huge_zero_pfn  # type: ignore[no-any-return]

    @property
    def highest_memmap_pfn(self) -> int | None:
        return self.base.highest_memmap_pfn  # type: ignore[no-any-return]

    @property
    def pfn_to_page(self) -> Any:
        return self.base.pfn_to_page

    @property
    def page_folio(self) -> Any:
        return self.base.page_folio

    def vmas(self, mm: Any) -> list[VMA]:
        if self.vmas_snapshot is not None:
            return list(self.vmas_snapshot)
        return list_vmas(self.base, mm.inner if isinstance(mm, ReplayMM) else mm)

    def vma_snapshot(self, vma: Any) -> VMA:
        return self.base.vma_snapshot(vma)  # type: ignore[no-any-return]

    def mm_stamp(self, mm: Any) -> tuple[int, ...] | None:
        return self.base.mm_stamp(mm.inner if isinstance(mm, ReplayMM) else mm)  # type: ignore[no-any-return]

    def call_scope(self) -> AbstractContextManager[None]:
        """The scope of the backend replayed over."""
        return self.base.call_scope()  # type: ignore[no-any-return]

    def read_table(self, paddr: int) -> Sequence[int]:
        self.reads += 1
        vals: Sequence[int] | None = self.tables.get(paddr)
        if vals is None:
            vals = self.base.read_table(paddr)
        patch = self._patches.get(paddr)
        if patch:
            out = list(vals)
            for i, v in patch.items():
                if out[i] != v:
                    self.changed.append((paddr + 8 * i, out[i], v))
                    out[i] = v
            return out
        return vals

    def mm_pgd(self, mm: Any) -> int:
        return int(self.base.mm_pgd(mm.inner if isinstance(mm, ReplayMM) else mm))

    def pgd_phys(self, pgd: int) -> int:
        return int(self.base.pgd_phys(pgd)) & ULONG_MAX

    def find_vma(self, mm: Any, addr: int) -> VMA | None:
        if self.vmas_snapshot is not None:
            i = bisect.bisect_right(self._ends, addr)
            return self.vmas_snapshot[i] if i < len(self.vmas_snapshot) else None
        return self.base.find_vma(mm.inner if isinstance(mm, ReplayMM) else mm, addr)  # type: ignore[no-any-return]

    def mapping_vmas(self, mapping: Any, first_index: int, last_index: int) -> Any:
        return self.base.mapping_vmas(mapping, first_index, last_index)

    def vma_mm(self, vma: VMA) -> Any:
        return self.mm

    def is_init_mm(self, mm: Any) -> bool:
        if isinstance(mm, ReplayMM):
            return mm.is_init
        return bool(self.base.is_init_mm(mm))

    def init_mm(self) -> Any:
        if self._init is None:
            self._init = ReplayMM(self.base.init_mm(), self, is_init=True)
        return self._init

    def entry_object(self, level: int, kaddr: int) -> Any:
        return self.base.entry_object(level, kaddr)

    def vma_covering(self, start: int, end: int) -> VMA | None:
        """A VMA with bounds [*start*, *end*) and the flags of the VMA that holds *start*."""
        v = self.find_vma(self.mm, start)
        if v is None or v.vm_start > start:
            return None
        if (v.vm_start, v.vm_end) == (start, end):
            return v
        return dataclasses.replace(v, vm_start=start, vm_end=end)


def _probed_value(walk: Any, entry: Any) -> int:
    """
    The value a probe on a ``pte_entry`` callback reads through its
    ``pte_t *``: the slot's raw value. The callback itself reads it with
    ``ptep_get()``, as livewalk's entry carries it: on arm64 with CONTPTE
    the access and dirty bits of the entry's contiguous block are folded
    into it. Where the two differ by that fold alone, the raw value is
    compared (the fold is :meth:`~livewalk.arch.ArchPaging.ptes_get`'s).
    """
    v: int = entry.value
    if entry.kaddr is None:
        return v
    paging = walk.paging
    pa = paging.pa(entry.kaddr)
    page = pa & ~(paging.page_size - 1)
    try:
        t = walk.read_table(page)
    except TableReadError:
        return v
    i = (pa - page) >> 3
    raw = int(t[i])
    if raw != v and paging.ptes_get(t, i, 1)[0] == v:
        return raw
    return v


@dataclasses.dataclass
class ReplayResult:
    """
    The outcome of replaying one kernel walk.

    :ivar calls: livewalk's callback calls, in order
    :ivar ret: livewalk's return value
    :ivar divergence: the first difference, or ``None``
    """

    calls: list[ReplayCall]
    ret: int | None
    divergence: Divergence | None


class _Replayer:
    def __init__(self, kwalk: KernelWalk, corrupt_step: int | None = None) -> None:
        self.k = kwalk.steps
        self.i = 0
        self.calls: list[ReplayCall] = []
        self.div: Divergence | None = None
        self.corrupt_step = corrupt_step

    def step(self, slot: str, walk: Any, addr: int, next_: int, arg: int = 0, entry: Any = None) -> Any:
        vi = walk.vma_info
        call = ReplayCall(
            slot=slot,
            addr=addr,
            next=next_,
            arg=arg,
            ptr=(entry.kaddr or 0) if entry is not None else 0,
            value=0 if entry is None else _probed_value(walk, entry) if slot == "pte_entry" else entry.value,
            action_in=int(walk.action),
            vma_start=vi.vm_start if vi is not None else 0,
        )
        n = len(self.calls)
        if self.corrupt_step is not None and n == self.corrupt_step:
            # deliberately wrong (tests that the crosscheck can fail)
            call = dataclasses.replace(call, addr=call.addr ^ walk.paging.page_size)
        self.calls.append(call)
        if self.div is not None:
            return ABORT
        if self.i >= len(self.k):
            self.div = Divergence(n, None, call, ("extra call",), self.k[max(0, n - 3) : n])
            return ABORT
        ks = self.k[self.i]
        fields = diff_step(ks, call)
        if fields:
            self.div = Divergence(n, ks, call, fields, self.k[max(0, n - 3) : n])
            return ABORT
        self.i += 1
        walk.action = pw.PageWalkAction(ks.action_out) if ks.action_out in (0, 1, 2) else ks.action_out
        if slot == "post_vma":
            return None
        return ks.ret

    def ops(self, kwalk: KernelWalk) -> pw.MMWalkOps:
        cbs: dict[str, Callable[..., Any]] = {}
        st = self.step
        for slot in kwalk.slots:
            if slot in ("pgd_entry", "p4d_entry", "pud_entry", "pmd_entry", "pte_entry"):
                cbs[slot] = (lambda s: lambda e, a, n, w: st(s, w, a, n, 0, e))(slot)
            elif slot == "pte_hole":
                cbs[slot] = lambda a, n, d, w: st("pte_hole", w, a, n, d)
            elif slot == "hugetlb_entry":
                cbs[slot] = lambda e, h, a, n, w: st("hugetlb_entry", w, a, n, h, e)
            elif slot in ("test_walk", "pre_vma"):
                cbs[slot] = (lambda s: lambda a, n, w: st(s, w, a, n))(slot)
            elif slot == "post_vma":
                cbs[slot] = lambda w: st("post_vma", w, 0, 0)
            elif slot == "install_pte":
                cbs[slot] = self._install
        lock = kwalk.walk_lock if kwalk.walk_lock in (0, 1, 2, 3) else 0
        return pw.MMWalkOps(**cbs, walk_lock=lock)

    def _install(self, addr: int, next_: int, ptep: Any, walk: Any) -> Any:
        i = self.i
        ret = self.step("install_pte", walk, addr, next_)
        if self.div is None and i < len(self.k):
            ptep.value = self.k[i].value
        return ret


def replay_walk(
    kwalk: KernelWalk,
    backend: ReplayBackend,
    mm: ReplayMM | None,
    *,
    corrupt_step: int | None = None,
) -> ReplayResult:
    """
    Replay *kwalk* with livewalk over *backend* (whose ``mm`` is *mm*) and
    compare it, step by step, with the kernel's walk.

    *corrupt_step* deliberately alters livewalk's call at that index (its
    ``addr``), to show that a divergence is caught and reported there.
    """
    r = _Replayer(kwalk, corrupt_step)
    try:
        return _replay(kwalk, backend, mm, r)
    except Exception as e:  # a replay that cannot run is a failure, never a crash
        n = len(r.calls)
        return ReplayResult(r.calls, None, r.div or Divergence(
            n, kwalk.steps[n] if n < len(kwalk.steps) else None, None,
            (f"livewalk raised {type(e).__name__}: {' '.join(str(e).split())}",),
            kwalk.steps[max(0, n - 3) : n]))


def _replay(kwalk: KernelWalk, backend: ReplayBackend, mm: ReplayMM | None, r: _Replayer) -> ReplayResult:
    ops = r.ops(kwalk)
    name = kwalk.fn.name
    ret: int | None
    if name in ("walk_page_range", "walk_page_range_mm_unsafe"):
        fn = pw.walk_page_range if name == "walk_page_range" else pw.walk_page_range_mm_unsafe
        ret = fn(mm, kwalk.start, kwalk.end, ops)
    elif name in ("walk_page_vma", "walk_page_range_vma", "walk_page_range_vma_unsafe"):
        vma = backend.vma_covering(kwalk.vma_start, kwalk.vma_end)
        if vma is None:
            return ReplayResult([], None, Divergence(0, kwalk.steps[0] if kwalk.steps else None, None,
                                                     (f"no VMA at {kwalk.vma_start:#x} to replay on",), []))
        if name == "walk_page_vma":
            ret = pw.walk_page_vma(vma, ops, backend=backend)
        elif name == "walk_page_range_vma":
            ret = pw.walk_page_range_vma(vma, kwalk.start, kwalk.end, ops, backend=backend)
        else:
            ret = pw.walk_page_range_vma_unsafe(vma, kwalk.start, kwalk.end, ops, backend=backend)
    elif name == "walk_page_range_debug":
        ret = pw.walk_page_range_debug(mm, kwalk.start, kwalk.end, ops, kwalk.pgd or None)
    elif name == "walk_page_range_novma":
        ret = pw.walk_page_range_novma(mm, kwalk.start, kwalk.end, ops, kwalk.pgd or None)
    elif name in ("walk_kernel_page_table_range", "walk_kernel_page_table_range_lockless"):
        ret = pw.walk_kernel_page_table_range(kwalk.start, kwalk.end, ops, kwalk.pgd or None, backend=backend)
    else:
        return ReplayResult([], None, Divergence(0, None, None, (f"{name} is not replayed",), []))
    div = r.div
    if div is None and r.i < len(kwalk.steps):
        n = len(r.calls)
        div = Divergence(n, kwalk.steps[r.i], None, ("missing call",), kwalk.steps[max(0, n - 3) : n])
    if div is None and ret != kwalk.ret:
        n = len(r.calls)
        div = Divergence(n, None, None, (f"return value: kernel {kwalk.ret}, livewalk {ret}",),
                         kwalk.steps[max(0, n - 3) : n])
    return ReplayResult(r.calls, ret, div)
