# SPDX-License-Identifier: LGPL-2.1-or-later
"""
pagemap
-------

``/proc/PID/pagemap`` computed from a kernel's page tables: an ordinary user
of the walker, like the kernel's ``pagemap_ops`` (Linux 7.2
``fs/proc/task_mmu.c``: ``pagemap_pmd_range``, ``pagemap_pte_hole`` and
``pagemap_hugetlb_range``; no ``pte_entry``, so nothing is ever split).
On Linux 6.1 the exclusive bit follows 6.1's rules instead
(:attr:`~livewalk.kernel.KernelFeatures.task_mmu_page_mapcount`):
``page_mapcount() == 1`` on any entry with a page but a migration entry,
and for hugetlb without the ``hugetlb_pmd_shared()`` test.

:func:`pagemap_read` returns exactly the 64-bit entries that reading
``/proc/PID/pagemap`` at offset ``start / PAGE_SIZE * 8`` gives, one per
page (4 KiB on x86_64; 4, 16 or 64 KiB on arm64). The entries are decoded
through the arch seam (:class:`~livewalk.arch.ArchPaging` and its
:class:`~livewalk.arch.EntryLayout`), so x86_64 and arm64 tables alike. :func:`pagemap_runs` gives the same entries coalesced into runs of
similar pages (:mod:`livewalk.proc.pagemap_format` prints them). The entry
bits are in :mod:`livewalk.proc.pagemap_entry`, the ``struct page`` state in
:mod:`livewalk.proc.pagemap_page`.

>>> mm = resolve_mm(prog, 1234)  # doctest: +SKIP
>>> entries = pagemap_read(mm, 0x7F0000000000, 0x7F0000200000)  # doctest: +SKIP
>>> hex(entries[0])  # doctest: +SKIP
'0x818000000012a45b'
"""

from __future__ import annotations

import weakref
from array import array
from collections.abc import Callable, Iterable, Sequence
from itertools import compress
from typing import Any

from drgn import Object

from livewalk.arch import ULONG_MAX, ArchPaging, EntryLayout, PageTableLevel, per_paging
from livewalk.backend import PageTableBackend, TableReadError, backend_for_mm
from livewalk.mm.entry import Entry
from livewalk.mm.overlay import PAGE_UNREADABLE
from livewalk.mm.pagewalk import (
    PGWALK_RDLOCK,
    MMWalk,
    MMWalkOps,
    PageWalkAction,
    walk_page_range,
)
from livewalk.mm.swapfile import MAX_SWAPFILES_SHIFT
from livewalk.mm.swapops import PTE_MARKER_GUARD, PTE_MARKER_UFFD_WP
from livewalk.mm.vma import VMA
from livewalk.proc.pagemap_entry import (
    PM_FILE,
    PM_GUARD_REGION,
    PM_MMAP_EXCLUSIVE,
    PM_PFRAME_MASK,
    PM_PRESENT,
    PM_SOFT_DIRTY,
    PM_SWAP,
    PM_UFFD_WP,
    PagemapRun,
)
from livewalk.proc.pagemap_page import DrgnPageState, PagemapPageState

__all__ = (
    "pagemap_hugetlb_range",
    "pagemap_pmd_range",
    "pagemap_pte_hole",
    "pagemap_read",
    "pagemap_runs",
    "pagemap_walk_ops",
    "runs_from_entries",
)

# -- sinks: where the callbacks put entries ---------------------------------


class _ArraySink:
    """
    Entries into one ``array('Q')``. Given the number of entries, it is
    allocated (zeroed) at once and written in place, so that a hole of zero
    entries costs nothing and the array never grows.
    """

    __slots__ = ("out", "pos", "table")

    def __init__(self, npages: int = 0, table: int = 512) -> None:
        self.out = array("Q", (0,)) * npages if npages > 0 else array("Q")
        self.pos = 0 if npages > 0 else -1  # -1: append mode
        self.table = table  # PTRS_PER_PTE

    def _put(self, a: array) -> None:
        pos = self.pos
        if pos >= 0:
            end = pos + len(a)
            if end <= len(self.out):
                self.out[pos:end] = a
                self.pos = end
                return
            del self.out[pos:]  # more entries than expected: append from here
            self.pos = -1
        self.out.extend(a)

    def fill(self, value: int, n: int) -> None:
        if n > 0:
            pos = self.pos
            if 0 <= pos and pos + n <= len(self.out):
                if value == 0:
                    self.pos = pos + n  # already zero
                    return
                if n == self.table:  # a PMD's hole: no new array
                    self.out[pos : pos + n] = _const_entries(value, n)
                    self.pos = pos + n
                    return
            self._put(array("Q", (value,)) * n)

    def seq(self, flags: int, frame: int, n: int, step: int) -> None:
        if step == 0 or frame + n * step <= PM_PFRAME_MASK:
            base = flags | frame
            self._put(_ramp(base, n, step) if step else array("Q", (base,)) * n)
        else:
            self._put(array("Q", [flags | ((frame + i * step) & PM_PFRAME_MASK) for i in range(n)]))

    def values(self, vals: Sequence[int]) -> None:
        self._put(vals if isinstance(vals, array) else array("Q", vals))

    def finish(self) -> array:
        if 0 <= self.pos < len(self.out):
            del self.out[self.pos :]
        return self.out


_CONST: dict[int, array] = {}


def _const_entries(value: int, n: int) -> array:
    """
    A table's worth (*n*) of *value* entries (the hole entries of a VMA: 0
    or ``PM_SOFT_DIRTY``), made once; never handed out, only copied from.
    """
    c = _CONST.get(value)
    if c is None or len(c) != n:
        if len(_CONST) > 16:
            _CONST.clear()
        c = _CONST[value] = array("Q", (value,)) * n
    return c


class _RunSink:
    __slots__ = ("runs", "_start", "_flags", "_frame", "_step", "_n", "_shift")

    def __init__(self, start: int, page_shift: int = 12) -> None:
        self.runs: list[PagemapRun] = []
        self._shift = page_shift
        self._start = start
        self._n = 0
        self._flags = self._frame = self._step = 0

    def _close(self) -> None:
        if self._n:
            end = self._start + (self._n << self._shift)
            self.runs.append(PagemapRun(self._start, end, self._flags, self._frame, self._step, self._shift))
            self._start = end
            self._n = 0

    def seq(self, flags: int, frame: int, n: int, step: int) -> None:
        if n <= 0:
            return
        if step and frame + (n - 1) * step > PM_PFRAME_MASK:
            for i in range(n):
                self.seq(flags, (frame + i * step) & PM_PFRAME_MASK, 1, 0)
            return
        if n == 1:
            step = 0
        if self._n and flags == self._flags:
            if self._n == 1:
                d = frame - self._frame
                if d in (0, 1, 32) and (n == 1 or step == d):
                    self._step = d
                    self._n += n
                    return
            elif frame == self._frame + self._n * self._step and (n == 1 or step == self._step):
                self._n += n
                return
        self._close()
        self._flags, self._frame, self._step, self._n = flags, frame, step, n

    def fill(self, value: int, n: int) -> None:
        self.seq(value & ~PM_PFRAME_MASK, value & PM_PFRAME_MASK, n, 0)

    def values(self, vals: Sequence[int]) -> None:
        seq = self.seq
        for v in vals:
            seq(v & ~PM_PFRAME_MASK, v & PM_PFRAME_MASK, 1, 0)

    def finish(self) -> list[PagemapRun]:
        self._close()
        return self.runs


# -- the walk -------------------------------------------------------------------


class _Pagemap:
    """``struct pagemapread`` plus what the raw decoders need."""

    # the target's, from _backend_constants()
    paging: ArchPaging
    lay: EntryLayout
    page_shift: int
    ptrs_per_pte: int
    pte_pfn_mask: int
    swp_pfn_mask: int
    sd_bit: int
    swp_sd_bit: int
    uffd_bit: int
    swp_uffd_bit: int
    pfn_types: frozenset[int]
    marker_type: int | None
    vm_softdirty: int
    page_mapcount_rules: bool
    excl_swap_types: frozenset[int]

    def __init__(
        self,
        mm: Object,
        backend: PageTableBackend,
        sink: _ArraySink | _RunSink,
        show_pfn: bool,
        page_state: PagemapPageState,
    ) -> None:
        self.mm = mm
        self.backend = backend
        self.sink = sink
        self.show_pfn = show_pfn
        self.pages = page_state
        # paging, lay, page_shift, the bit masks, the swap types... (see
        # _backend_constants): the same for every read of a target
        self.__dict__.update(_backend_constants(backend))
        self.highest_memmap_pfn = page_state.highest_memmap_pfn()
        self._present_flags: dict[int, dict[int, int]] = {}  # see present_flags()
        # Batch decoding of struct pages, a vmemmap block at a time
        # (DrgnPageState.pfn_bits_block); other page states answer per page.
        self.bits_shift: int | None = None
        self.bits_blocks: dict[int, list[int]] = {}
        self.bits_block: Callable[[int], list[int]] | None = None
        self.bits_blocks_read: Callable[[int, int], None] | None = None
        self.bits_large: Callable[[int], list[int]] | None = None
        self.runs_anon_exclusive: Callable[[list[tuple[int, int]]], bool] | None = None
        if isinstance(page_state, DrgnPageState):
            self.bits_shift = page_state.bits_shift
            self.bits_blocks = page_state.bits_blocks
            self.bits_block = page_state.pfn_bits_block
            self.bits_blocks_read = page_state.pfn_bits_blocks
            self.bits_large = page_state.pfn_bits_large
            self.runs_anon_exclusive = page_state.runs_anon_exclusive
        # the walk, for page_unreadable() (set by the callbacks)
        self.walk: MMWalk | None = None
        # find_vma memo: find_vma(mm, a) is _memo_vma for _memo_lo <= a < its vm_end
        self._memo_lo = 1
        self._memo_hi = 0
        self._memo_vma: VMA | None = None

    def find_vma(self, addr: int) -> VMA | None:
        if self._memo_lo <= addr < self._memo_hi:
            return self._memo_vma
        vma = self.backend.find_vma(self.mm, addr)
        self._memo_lo = addr
        self._memo_hi = vma.vm_end if vma is not None else ULONG_MAX + 1
        self._memo_vma = vma
        return vma

    def page_unreadable(self, level: int, addr: int, pfn: int) -> None:
        """
        The ``struct page`` of *pfn*, mapped by the *level* entry at *addr*,
        is not readable: the bits it decides (``PM_FILE``,
        ``PM_MMAP_EXCLUSIVE``) read 0 and are unknown, recorded in
        ``walk.errors`` (:data:`~livewalk.mm.overlay.PAGE_UNREADABLE`).
        """
        if self.walk is not None:
            self.walk.overlay.error(level, addr, pfn, PAGE_UNREADABLE)

    def vma_sd(self, vma: VMA) -> int:
        return PM_SOFT_DIRTY if vma.vm_flags & self.vm_softdirty else 0

    def present_flags(self, vma_sd: int) -> dict[int, int]:
        """
        A present entry's flags by its soft-dirty and uffd-wp bits (the
        entry ``&`` ``sd_bit | uffd_bit``), in a VMA whose :meth:`vma_sd`
        is *vma_sd*; worked out once per read.
        """
        flags = self._present_flags.get(vma_sd)
        if flags is None:
            sd_bit, uffd_bit = self.sd_bit, self.uffd_bit
            base = PM_PRESENT | vma_sd
            flags = self._present_flags[vma_sd] = {
                sd: base | (PM_SOFT_DIRTY if sd & sd_bit else 0) | (PM_UFFD_WP if sd & uffd_bit else 0)
                for sd in {0, sd_bit, uffd_bit, sd_bit | uffd_bit}
            }
        return flags

    def swp_type_offset(self, v: int) -> tuple[int, int]:
        """``swp_type()`` and ``swp_offset()`` of a swap-format entry (``softleaf_from_pte()``)."""
        lay = self.lay
        typ = (v >> lay.swp_type_shift) & lay.swp_type_mask
        off = ((v ^ lay.swp_offset_invert) >> lay.swp_offset_shift) & lay.swp_offset_mask
        return typ, off


_CONSTANTS: weakref.WeakKeyDictionary[PageTableBackend, dict[str, Any]] = weakref.WeakKeyDictionary()


def _backend_constants(backend: PageTableBackend) -> dict[str, Any]:
    """
    The attributes of a :class:`_Pagemap` that depend on the target only
    (its paging, entry layout, swap types and VM flags), worked out once
    per backend: a small read pays for its set-up on every call. The
    backend is held weakly: a program let go of (its QMP connection, its
    core dump) is not kept alive here.
    """
    consts = _CONSTANTS.get(backend)
    if consts is not None:
        return consts
    paging: ArchPaging = backend.paging
    # The table loops decode a table at a time with the architecture's
    # masks (EntryLayout restates its predicates).
    lay = _entry_layout(paging)
    st = paging.swap_types
    pfn_types = _pfn_types(paging)
    # Linux 6.1 pte_to_pagemap_entry(): the exclusive bit on any entry with
    # a page but a migration entry, present or not (device and hwpoison
    # entries too); hugetlb ignores PMD sharing.
    page_mapcount_rules = backend.features.task_mmu_page_mapcount
    excl_swap_types: frozenset[int] = frozenset()
    if page_mapcount_rules:
        excl_swap_types = pfn_types - {st.migration_read, st.migration_read_exclusive, st.migration_write}
    consts = {
        "paging": paging,
        "lay": lay,
        "page_shift": lay.page_shift,
        "ptrs_per_pte": paging.ptrs_per(PageTableLevel.PTE),
        "pte_pfn_mask": lay.pfn_mask,
        # SWP_PFN_MASK: softleaf_to_pfn() of migration, device, hwpoison entries
        "swp_pfn_mask": (1 << (paging.max_physmem_bits - lay.page_shift)) - 1,
        "sd_bit": lay.soft_dirty,
        "swp_sd_bit": lay.swp_soft_dirty,
        "uffd_bit": lay.uffd_wp,
        "swp_uffd_bit": lay.swp_uffd_wp,
        "pfn_types": pfn_types,
        "marker_type": st.pte_marker,
        # VM_SOFTDIRTY is VM_NONE without CONFIG_MEM_SOFT_DIRTY, which needs
        # the architecture's soft-dirty bit (none on arm64)
        "vm_softdirty": backend.vm_flag_bits.VM_SOFTDIRTY if paging.soft_dirty else 0,
        "page_mapcount_rules": page_mapcount_rules,
        "excl_swap_types": excl_swap_types,
    }
    _CONSTANTS[backend] = consts
    return consts


@per_paging
def _entry_layout(paging: ArchPaging) -> EntryLayout:
    """``paging.entry_layout`` (made anew by each ask), worked out once per paging."""
    return paging.entry_layout


@per_paging
def _pfn_types(paging: ArchPaging) -> frozenset[int]:
    """The swap types whose entries hold a PFN (migration, device, hwpoison), worked out once per paging."""
    st = paging.swap_types
    return frozenset(
        t
        for t in (
            st.hwpoison,
            st.migration_read,
            st.migration_read_exclusive,
            st.migration_write,
            st.device_write,
            st.device_read,
            st.device_exclusive,
        )
        if t is not None
    )


def pagemap_pte_hole(addr: int, end: int, depth: int, walk: MMWalk) -> int:
    """
    ``pagemap_pte_hole``: every page of [*addr*, *end*) is 0, or
    ``PM_SOFT_DIRTY`` inside a VMA with ``VM_SOFTDIRTY`` (looked up per
    page with ``find_vma``, whatever *depth* and ``walk.vma`` say).
    """
    pm: _Pagemap = walk.private
    sink = pm.sink
    shift = pm.page_shift
    vma = walk.vma_info
    if vma is not None and vma.vm_start <= addr and end <= vma.vm_end:
        # a hole below a PMD or PUD of the VMA being walked: find_vma()
        # would find it for every page
        sink.fill(pm.vma_sd(vma), (end - addr) >> shift)
        return 0
    while addr < end:
        vma = pm.find_vma(addr)
        hole_end = min(end, vma.vm_start) if vma is not None else end
        if addr < hole_end:
            sink.fill(0, (hole_end - addr) >> shift)
            addr = hole_end
        if vma is None:
            break
        stop = min(end, vma.vm_end)
        if addr < stop:
            sink.fill(pm.vma_sd(vma), (stop - addr) >> shift)
            addr = stop
    return 0


def _pagemap_pmd_range_thp(pm: _Pagemap, v: int, addr: int, end: int, vma: VMA) -> None:
    paging = pm.paging
    idx = (addr >> pm.page_shift) & (paging.ptrs_per(PageTableLevel.PMD) - 1)
    flags = pm.vma_sd(vma)
    frame = 0
    step = 0
    pfn: int | None = None
    n = (end - addr) >> pm.page_shift
    if paging.pmd_present(v):
        pfn = paging.pmd_pfn(v)
        flags |= PM_PRESENT
        if paging.pmd_soft_dirty(v):
            flags |= PM_SOFT_DIRTY
        if paging.pmd_uffd_wp(v):
            flags |= PM_UFFD_WP
        if pm.show_pfn:
            frame = pfn + idx
            step = 1
    elif not paging.pmd_none(v):  # a migration or device-private PMD
        typ, off = pm.swp_type_offset(v)
        if pm.show_pfn:
            o = off & pm.swp_pfn_mask if typ in pm.pfn_types else off
            frame = typ | ((o + idx) << MAX_SWAPFILES_SHIFT)
            step = 1 << MAX_SWAPFILES_SHIFT
        flags |= PM_SWAP
        if paging.pmd_swp_soft_dirty(v):
            flags |= PM_SOFT_DIRTY
        if paging.pmd_swp_uffd_wp(v):
            flags |= PM_UFFD_WP
        # as in Linux 7.2: softleaf_to_page() without a softleaf_has_pfn() check
        pfn = off & pm.swp_pfn_mask
    if pfn is not None:
        info = pm.pages.page_info(pfn)
        if info is not None:
            if not info.anon:
                flags |= PM_FILE
            # Exclusivity is decided once, on the PMD's first page, for all
            # of its entries, as in Linux 7.2 pagemap_pmd_range_thp().
            if flags & PM_PRESENT and info.mapcount == 1:
                flags |= PM_MMAP_EXCLUSIVE
        else:
            pm.page_unreadable(PageTableLevel.PMD, addr, pfn)
    pm.sink.seq(flags, frame, n, step)


def pagemap_pmd_range(pmd: Entry, addr: int, end: int, walk: MMWalk) -> int:
    """
    ``pagemap_pmd_range``: a huge (THP, migration or device) PMD gives one
    run; a PMD pointing to a PTE table gives one entry per PTE, decoded from
    the table's raw values.
    """
    pm: _Pagemap = walk.private
    pm.walk = walk
    vma = walk.vma_info
    assert vma is not None  # pmd_entry and hugetlb_entry run inside a VMA
    v = pmd.value
    paging = pm.paging
    # pmd_trans_huge_lock(): pmd_is_huge(), a leaf or a migration or
    # device-private entry (include/linux/huge_mm.h)
    if not paging.pmd_none(v) and (not paging.pmd_present(v) or paging.pmd_trans_huge(v)):
        _pagemap_pmd_range_thp(pm, v, addr, end, vma)
        return 0
    if paging.pmd_bad(v):
        # The kernel clears a bad PMD in pte_offset_map_lock() and retries
        # (ACTION_AGAIN), then sees a none PMD: a hole. Read-only, we report
        # that hole without clearing anything.
        return pagemap_pte_hole(addr, end, 3, walk)
    try:
        table = pmd.pte_table()
    except TableReadError as e:
        # not in the target (a dump filtered too much): a hole, recorded in
        # walk.errors as the walker records the tables it cannot read
        walk.overlay.error(PageTableLevel.PMD, addr, e.paddr, "unreadable")
        return pagemap_pte_hole(addr, end, 3, walk)
    if table is None:
        # pte_offset_map_lock() failed: retry, as in Linux 7.2.
        walk.action = PageWalkAction.ACTION_AGAIN
        return 0
    shift = pm.page_shift
    i0 = (addr >> shift) & (pm.ptrs_per_pte - 1)
    n = (end - addr) >> shift
    pm.sink.values(_pte_entries(pm, table, i0, n, addr, vma))
    return 0


def _pte_entries(
    pm: _Pagemap, table: Sequence[int], i0: int, n: int, addr: int, vma: VMA
) -> Sequence[int]:
    """
    ``pte_to_pagemap_entry`` over ``table[i0:i0+n]`` (raw values), decoded
    with the architecture's :class:`~livewalk.arch.EntryLayout`. The A/D
    bits ``ptep_get()`` folds over an arm64 contiguous block are not read.
    """
    vma_sd = pm.vma_sd(vma)
    if pm.bits_shift is not None and n >= _CHUNK:
        got = _uniform_ptes(pm, table, i0, n, vma_sd, vma.anonymous)
        if got is not None:
            return got
    show_pfn = pm.show_pfn
    lay = pm.lay
    shift = lay.page_shift
    none_mask = lay.none_mask
    present_bits = lay.present
    special = lay.special
    ck_mask, ck_val = lay.pfn_check_mask, lay.pfn_check_value
    pte_pfn = pm.paging.pte_pfn
    swp_ts, swp_tm = lay.swp_type_shift, lay.swp_type_mask
    swp_os, swp_om, swp_inv = lay.swp_offset_shift, lay.swp_offset_mask, lay.swp_offset_invert
    pfn_mask = pm.pte_pfn_mask
    sd_bit, uffd_bit = pm.sd_bit, pm.uffd_bit
    swp_sd_bit, swp_uffd_bit = pm.swp_sd_bit, pm.swp_uffd_bit
    highest = pm.highest_memmap_pfn
    page_info = pm.pages.page_info
    pfn_types = pm.pfn_types
    excl_swap_types = pm.excl_swap_types
    swp_pfn_mask = pm.swp_pfn_mask
    marker = pm.marker_type
    # struct page state of small folios, decoded a vmemmap block at a time
    bits_shift = pm.bits_shift
    bits_mask = (1 << bits_shift) - 1 if bits_shift is not None else 0
    bits_get = pm.bits_blocks.get
    bits_block = pm.bits_block
    bits_large = pm.bits_large
    cur_bi = -1
    blk: list[int] = []
    present_sd = PM_PRESENT | vma_sd
    sd_uffd = sd_bit | uffd_bit
    present_flags = pm.present_flags(vma_sd)
    # the bits that make a present entry normal and keep its PFN in place
    # (accessed, dirty, rw... do not count; soft-dirty and uffd-wp are read
    # per entry)
    rel_kind = present_bits | special | ck_mask
    out = array("Q", (vma_sd,)) * n
    vals: list[int] = []
    k0 = 0
    stop = i0 + n
    i = i0
    try:
        raw: bytes | None = memoryview(table).tobytes()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raw = None
    if raw is not None and not (table[i0] and table[stop - 1]):
        # The all-zero slots before the first and after the last that is
        # not (most of a sparse table) keep their none entries: found on
        # the slots as one integer, its lowest and highest set bits (not
        # for a table whose first and last slots are set: nothing to skip).
        x = int.from_bytes(raw[8 * i0 : 8 * stop], "little")
        if not x:
            return out
        i = i0 + (((x & -x).bit_length() - 1) >> 6)
        stop = i0 + ((x.bit_length() - 1) >> 6) + 1
    while i < stop:
        # Slots go in aligned chunks: an all-zero chunk (most of a sparse
        # table) keeps its none entries, the others are decoded.
        j = (i + _CHUNK) & ~(_CHUNK - 1)
        if j > stop:
            j = stop
        if raw is not None and j - i == _CHUNK and raw[8 * i : 8 * j] == _ZERO_CHUNK:
            i = j  # compared as bytes: no int per slot
            continue
        chunk = table[i:j]
        k = i - i0
        i = j
        if not any(chunk):
            continue
        if vals:
            out[k0 : k0 + len(vals)] = array("Q", vals)
        k0 = k
        vals = []
        append = vals.append
        if bits_shift is not None:
            # A chunk of present, normal PTEs (the common case), soft-dirty
            # and uffd-wp as each says: decoded with comprehensions.
            v0 = chunk[0]
            if (
                v0 & present_bits
                and (v0 & ck_mask) == ck_val
                and not v0 & special
                and len({v & rel_kind for v in chunk}) == 1
            ):
                pfns = [(v & pfn_mask) >> shift for v in chunk]
                if max(pfns) <= highest:
                    # the vmemmap blocks of the chunk's pages, each decoded
                    # once per read however scattered the pages are
                    for bi in {p >> bits_shift for p in pfns}:
                        if bits_get(bi) is None:
                            bits_block(bi)  # type: ignore[misc]
                    bs = [bits_get(p >> bits_shift)[p & bits_mask] for p in pfns]  # type: ignore[index]
                    if -1 in bs and bits_large is not None:
                        # pages of large folios: their blocks decoded whole
                        for bi in {p >> bits_shift for p, b in zip(pfns, bs) if b == -1}:
                            bits_large(bi)
                        bs = [bits_get(p >> bits_shift)[p & bits_mask] for p in pfns]  # type: ignore[index]
                    if -1 not in bs:
                        if show_pfn:
                            vals = [p | present_flags[v & sd_uffd] | b for p, v, b in zip(pfns, chunk, bs)]
                        else:
                            vals = [present_flags[v & sd_uffd] | b for v, b in zip(chunk, bs)]
                        continue
        for v in chunk:
            if not v & none_mask:  # pte_none()
                append(vma_sd)
                continue
            pfn: int | None = None
            frame = 0
            swap_excl = False
            if v & present_bits:  # pte_present()
                if (v & ck_mask) == ck_val:
                    p = (v & pfn_mask) >> shift
                else:  # x86 PROT_NONE (inverted), arm64 PA bits above 49
                    p = pte_pfn(v)
                if show_pfn:
                    frame = p
                flags = present_sd
                if v & sd_uffd:
                    if v & sd_bit:
                        flags |= PM_SOFT_DIRTY
                    if v & uffd_bit:
                        flags |= PM_UFFD_WP
                # vm_normal_page(): x86 and arm64 have pte_special, so a
                # special PTE (zero page, PFNMAP, special mixedmap) has no
                # page, and neither has a PFN beyond highest_memmap_pfn.
                if not v & special and p <= highest:
                    if bits_shift is not None:
                        bi = p >> bits_shift
                        if bi != cur_bi:
                            blk = bits_get(bi) or bits_block(bi)  # type: ignore[misc]
                            cur_bi = bi
                        b = blk[p & bits_mask]
                        if b >= 0:  # a small folio: what page_info() would say
                            append(frame | flags | b)
                            continue
                    pfn = p
            else:
                flags = PM_SWAP | vma_sd
                if v & swp_sd_bit:
                    flags |= PM_SOFT_DIRTY
                if v & swp_uffd_bit:
                    flags |= PM_UFFD_WP
                typ = (v >> swp_ts) & swp_tm
                off = ((v ^ swp_inv) >> swp_os) & swp_om
                if typ in pfn_types:
                    pfn = off & swp_pfn_mask
                    swap_excl = typ in excl_swap_types
                    if show_pfn:
                        frame = typ | (pfn << MAX_SWAPFILES_SHIFT)
                else:
                    if show_pfn:
                        frame = typ | (off << MAX_SWAPFILES_SHIFT)
                    if typ == marker:
                        if off & PTE_MARKER_UFFD_WP:
                            flags |= PM_UFFD_WP
                        if off & PTE_MARKER_GUARD:
                            flags |= PM_GUARD_REGION
            if pfn is not None:
                info = page_info(pfn)
                if info is not None:
                    if not info.anon:
                        flags |= PM_FILE
                    if (flags & PM_PRESENT or swap_excl) and info.mapcount == 1:
                        flags |= PM_MMAP_EXCLUSIVE
                else:
                    pm.page_unreadable(PageTableLevel.PTE, addr + ((k0 + len(vals)) << shift), pfn)
            append((frame & PM_PFRAME_MASK) | flags)
    if vals:
        out[k0 : k0 + len(vals)] = array("Q", vals)
    return out


_REP: dict[int, int] = {}
_RAMP: dict[int, int] = {}


def _rep(n: int) -> int:
    """The integer whose *n* 64-bit slots (little endian) are all 1."""
    rep = _REP.get(n)
    if rep is None:
        rep = _REP[n] = int.from_bytes(b"\x01\0\0\0\0\0\0\0" * n, "little")
    return rep


_SPLAT: dict[tuple[int, int], int] = {}


def _splat(value: int, n: int) -> int:
    """
    ``value * _rep(n)``: *value* in each of *n* 64-bit slots, made once per
    value (the masks and flag sets of a walk are a handful; multiplying a
    table-wide integer costs as much as the rest of a uniform table's
    decoding together).
    """
    got = _SPLAT.get((value, n))
    if got is None:
        if len(_SPLAT) >= 64:
            _SPLAT.clear()
        got = _SPLAT[(value, n)] = value * _rep(n)
    return got


def _ramp_int(n: int) -> int:
    """The integer whose *n* 64-bit slots (little endian) are 0, 1, ..., n - 1."""
    r = _RAMP.get(n)
    if r is None:
        r = _RAMP[n] = int.from_bytes(array("Q", range(n)).tobytes(), "little")
    return r


def _ramp(base: int, n: int, step: int) -> array:
    """``array('Q', range(base, base + n * step, step))`` (no slot may pass 2**64), built at once."""
    return array("Q", (base * _rep(n) + _ramp_int(n) * step).to_bytes(8 * n, "little"))


# uniform tables may span this many vmemmap blocks, or be this many runs of
# consecutive frames (each costs a slice of a read; the runs close together
# in memory share one read)
_UNIFORM_MAX_BLOCKS = 16
_UNIFORM_MAX_RUNS = 128


def _uniform_ptes(
    pm: _Pagemap, table: Sequence[int], i0: int, n: int, vma_sd: int, anonymous: bool
) -> array | None:
    """
    The entries of ``table[i0:i0+n]`` if all are present, normal PTEs with
    the same flags whose pages are anonymous and mapped once (see
    :func:`_pages_exclusive`), else ``None``. Decoded without a
    Python object per entry: the slots are one big integer, masked, shifted
    and or-ed at once (no bits cross between slots: the flag bits above the
    PFN are masked off before the shift).
    """
    lay = pm.lay
    present, special = lay.present, lay.special
    ck_mask, ck_val = lay.pfn_check_mask, lay.pfn_check_value
    v0 = table[i0]
    v1 = table[i0 + n - 1]
    # the first and the last slot: a sparse or mixed table fails here, cheaply
    if (
        not v0 & present
        or v0 & special
        or (v0 & ck_mask) != ck_val
        or not v1 & present
        or v1 & special
    ):
        return None
    try:
        raw = memoryview(table).cast("B")[i0 * 8 : (i0 + n) * 8]  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if len(raw) != 8 * n:
        return None
    rep = _rep(n)
    x = int.from_bytes(raw, "little")
    pfn_mask = pm.pte_pfn_mask
    # the bits pagemap reads besides the PFN (accessed, dirty, rw... do not
    # count), and those that keep the PFN in place
    rel = present | special | pm.sd_bit | pm.uffd_bit | ck_mask
    if x & _splat(rel, n) != _splat(v0 & rel, n):
        return None  # not all with the same flags
    pfns = (x & _splat(pfn_mask, n)) >> lay.page_shift
    lo = (v0 & pfn_mask) >> lay.page_shift
    consecutive = pfns == lo * rep + _ramp_int(n)  # the common case: no int per slot
    if consecutive:
        hi = lo + n - 1
    else:
        pa = array("Q", pfns.to_bytes(8 * n, "little"))
        lo, hi = min(pa), max(pa)
    if hi > pm.highest_memmap_pfn:
        return None
    # the runs of consecutive frames, tested first where pages are
    # anonymous (in a file VMA, the page cache's folios would pay a read
    # for nothing)
    runs: list[tuple[int, int]] | None = None
    if anonymous:
        runs = [(lo, hi)] if consecutive else _frame_runs(pfns, pa)
    if not _pages_exclusive(pm, runs, lo, hi):
        return None
    flags = PM_PRESENT | vma_sd | PM_MMAP_EXCLUSIVE
    if v0 & pm.sd_bit:
        flags |= PM_SOFT_DIRTY
    if v0 & pm.uffd_bit:
        flags |= PM_UFFD_WP
    res = _splat(flags, n)
    if pm.show_pfn:
        res |= pfns
    return array("Q", res.to_bytes(8 * n, "little"))


def _frame_runs(pfns: int, pa: array) -> list[tuple[int, int]] | None:
    """
    The frames of a table (*pa*, and *pfns*: the same as one integer of
    64-bit slots) as runs of consecutive frames, ``(first, last)`` each, in
    table order; ``None`` past :data:`_UNIFORM_MAX_RUNS` runs, found without
    an int per slot (a table of scattered pages is given up at once): slot
    *i* of ``pfns ^ (pfns << 64) + 1...1`` is 0 where frame *i* follows
    frame *i - 1*.
    """
    n = len(pa)
    steps = array("Q", ((pfns ^ ((pfns << 64) + _rep(n))) & ((1 << (64 * n)) - 1)).to_bytes(8 * n, "little"))
    steps[0] = 1  # the first frame starts a run, whatever it is
    if n - steps.count(0) > _UNIFORM_MAX_RUNS:
        return None
    starts = list(compress(range(n), steps))  # the slots that start a run
    return [(pa[a], pa[b - 1]) for a, b in zip(starts, starts[1:] + [n])]


def _pages_exclusive(pm: _Pagemap, runs: list[tuple[int, int]] | None, lo: int, hi: int) -> bool:
    """
    :func:`_uniform_ptes`'s page test: the pages of a table are all
    anonymous and mapped once. First the runs of consecutive frames in
    *runs* (if given), by their own struct pages only, whatever else
    shares their vmemmap blocks (a read for each stretch of memory the
    runs are in: :meth:`DrgnPageState.runs_anon_exclusive
    <livewalk.proc.pagemap_page.DrgnPageState.runs_anon_exclusive>`); then (pages of large
    folios, or a page state that cannot tell) the vmemmap blocks from *lo*
    to *hi*, up to :data:`_UNIFORM_MAX_BLOCKS` of them: the table's pages
    only when it is one run, every page of the blocks otherwise.
    """
    test = pm.runs_anon_exclusive
    if runs is not None and test is not None and test(runs):
        return True  # the usual anonymous memory, whatever its neighbours are
    shift = pm.bits_shift or 0
    lob = lo >> shift
    hib = hi >> shift
    if hib - lob >= _UNIFORM_MAX_BLOCKS:
        return False
    if pm.bits_blocks_read is not None:
        pm.bits_blocks_read(lob, hib)  # one read for the whole span
    get = pm.bits_blocks.get
    mask = (1 << shift) - 1
    one_run = runs is not None and len(runs) == 1
    for bi in range(lob, hib + 1):
        blk = get(bi) or pm.bits_block(bi)  # type: ignore[misc]
        a, b = 0, mask + 1
        if one_run:  # the table may start or end inside a block
            if bi == lob:
                a = lo & mask
            if bi == hib:
                b = (hi & mask) + 1
        if -1 in blk[a:b] and pm.bits_large is not None:
            blk = pm.bits_large(bi)  # pages of large folios (the table's own)
        if blk[a:b].count(PM_MMAP_EXCLUSIVE) != b - a:
            return False
    return True


#: slots per chunk in :func:`_pte_entries` (a power of two dividing 512)
_CHUNK = 32
_ZERO_CHUNK = bytes(8 * _CHUNK)


def pagemap_hugetlb_range(pte: Entry, hmask: int, addr: int, end: int, walk: MMWalk) -> int:
    """``pagemap_hugetlb_range``: one call per huge page (the slot may be none)."""
    pm: _Pagemap = walk.private
    pm.walk = walk
    vma = walk.vma_info
    assert vma is not None  # pmd_entry and hugetlb_entry run inside a VMA
    paging = pm.paging
    flags = pm.vma_sd(vma)
    frame = 0
    step = 0
    v = pte.value
    shift = pm.page_shift
    n = (end - addr) >> shift
    if paging.pte_present(v):
        pfn = paging.pte_pfn(v)
        info = pm.pages.page_info(pfn)
        if info is not None:
            if not info.anon:
                flags |= PM_FILE
            if pm.page_mapcount_rules:
                # Linux 6.1: page_mapcount(head) == 1, PMD sharing not looked at
                if info.mapcount == 1:
                    flags |= PM_MMAP_EXCLUSIVE
            else:
                kaddr = pte.kaddr
                shared_table = kaddr is not None and pm.pages.hugetlb_pmd_shared(kaddr)
                if not info.maybe_shared and not shared_table:
                    flags |= PM_MMAP_EXCLUSIVE
        else:
            pm.page_unreadable(pte.level, addr, pfn)
        if paging.pte_uffd_wp(v):  # huge_pte_uffd_wp()
            flags |= PM_UFFD_WP
        flags |= PM_PRESENT
        if pm.show_pfn:
            frame = pfn + ((addr & (~hmask & ULONG_MAX)) >> shift)
            step = 1
    elif not paging.pte_none(v) and paging.uffd_wp:  # pte_swp_uffd_wp_any()
        if paging.pte_swp_uffd_wp(v):
            flags |= PM_UFFD_WP
        else:
            typ, off = pm.swp_type_offset(v)
            if typ == pm.marker_type and off & PTE_MARKER_UFFD_WP:
                flags |= PM_UFFD_WP
    pm.sink.seq(flags, frame, n, step)
    return 0


def pagemap_walk_ops() -> MMWalkOps:
    """
    The walker ops of pagemap (``pagemap_ops`` in Linux 7.2
    ``fs/proc/task_mmu.c``): ``pmd_entry``, ``pte_hole`` and
    ``hugetlb_entry``, with ``PGWALK_RDLOCK``.
    """
    return MMWalkOps(
        pmd_entry=pagemap_pmd_range,
        pte_hole=pagemap_pte_hole,
        hugetlb_entry=pagemap_hugetlb_range,
        walk_lock=PGWALK_RDLOCK,
    )


#: The ops of :func:`_run_walk`, made once.
_OPS: MMWalkOps | None = None


def _clamp(mm: Object, backend: PageTableBackend, start: int, end: int) -> tuple[int, int]:
    """
    The [start, end) that ``pagemap_read()`` walks for a read of the pages
    of [*start*, *end*), as Linux 7.2 computes it: start rounded down to a
    page, the end clamped to ``mm->task_size`` (a start beyond it reads
    nothing). The LAM untagging of the start is the identity for tasks that
    do not use LAM.
    """
    task_size = backend.mm_task_size(mm)
    shift = backend.paging.page_shift
    start_vaddr = (start >> shift) << shift
    end_vaddr = ((end + (1 << shift) - 1) >> shift) << shift
    if end_vaddr > task_size:
        end_vaddr = task_size
    if start_vaddr > task_size:
        start_vaddr = end_vaddr
    return start_vaddr, max(start_vaddr, end_vaddr)


def _run_walk(
    mm: Object,
    start: int,
    end: int,
    sink: _ArraySink | _RunSink,
    show_pfn: bool,
    backend: PageTableBackend,
    page_state: PagemapPageState | None,
    walks: list[MMWalk] | None = None,
) -> None:
    if page_state is None:
        prog = backend.prog
        if prog is None:
            raise TypeError(f"pagemap of a {type(backend).__name__} mm needs a page_state")
        page_state = DrgnPageState(prog)
    pm = _Pagemap(mm, backend, sink, show_pfn, page_state)
    global _OPS
    if _OPS is None:
        _OPS = pagemap_walk_ops()  # stateless: the state is in pm
    ret = walk_page_range(mm, start, end, _OPS, pm, walks=walks)
    if ret < 0:
        raise OSError(-ret, f"pagemap walk of [{start:#x}, {end:#x}) failed")


def pagemap_read(
    mm: Object,
    start: int,
    end: int,
    *,
    show_pfn: bool = True,
    backend: PageTableBackend | None = None,
    page_state: PagemapPageState | None = None,
    walks: list[MMWalk] | None = None,
) -> array:
    """
    The ``/proc/PID/pagemap`` entries of the pages of [*start*, *end*): what
    reading ``(end - start) / PAGE_SIZE * 8`` bytes at offset ``start / PAGE_SIZE * 8``
    returns in Linux 7.2 (``pagemap_read``), including the clamp at
    ``mm->task_size`` (fewer entries, or none, past the top of user space)
    and zeros for addresses outside any VMA.

    The whole range is walked at once (the kernel walks 2 MiB at a time; the
    entries are the same).

    >>> pagemap_read(mm, 0x400000, 0x401000)  # doctest: +SKIP
    array('Q', [11565767237059379232])

    :param mm: ``struct mm_struct *`` (or an mm of another backend)
    :param start: first address (rounded down to a page)
    :param end: end address (rounded up to a page)
    :param show_pfn: report PFNs and swap locations, as for a reader with
        ``CAP_SYS_ADMIN``; when false the frame bits are 0
    :param backend: the :class:`~livewalk.backend.PageTableBackend`
        (default: the mm's)
    :param page_state: where ``struct page`` state comes from (default:
        :class:`DrgnPageState` of the backend's program)
    :param walks: the walk's :class:`~livewalk.mm.pagewalk.MMWalk` is
        appended to it (for :mod:`livewalk.consistency`)
    :return: one ``u64`` per page
    """
    if backend is None:
        backend = backend_for_mm(mm)
    with backend.call_scope():  # the mm's members read once for the call
        s, e = _clamp(mm, backend, start, end)
        paging = backend.paging
        sink = _ArraySink((e - s) >> paging.page_shift if s < e else 0, paging.ptrs_per(PageTableLevel.PTE))
        if s < e:
            _run_walk(mm, s, e, sink, show_pfn, backend, page_state, walks)
    return sink.finish()


def pagemap_runs(
    mm: Object,
    start: int,
    end: int,
    *,
    show_pfn: bool = True,
    backend: PageTableBackend | None = None,
    page_state: PagemapPageState | None = None,
) -> list[PagemapRun]:
    """
    The entries of :func:`pagemap_read`, coalesced into :class:`PagemapRun`
    runs of similar pages: same flags, and a frame that stays the same,
    advances by 1 (PFNs) or by 32 (swap offsets) from page to page.

    >>> for r in pagemap_runs(mm, 0x400000, 0x600000):  # doctest: +SKIP
    ...     print(hex(r.start), hex(r.end), pagemap_flag_names(r.flags), hex(r.frame))
    """
    if backend is None:
        backend = backend_for_mm(mm)
    with backend.call_scope():  # the mm's members read once for the call
        s, e = _clamp(mm, backend, start, end)
        sink = _RunSink(s, backend.paging.page_shift)
        if s < e:
            _run_walk(mm, s, e, sink, show_pfn, backend, page_state)
    return sink.finish()

def runs_from_entries(start: int, entries: Iterable[int], page_shift: int = 12) -> list[PagemapRun]:
    """Coalesce raw entries (page *i* at ``start + (i << page_shift)``) into runs."""
    sink = _RunSink(start, page_shift)
    sink.values(list(entries))
    return sink.finish()

