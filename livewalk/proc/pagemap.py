# SPDX-License-Identifier: LGPL-2.1-or-later
"""
pagemap
-------

``/proc/PID/pagemap`` computed from a kernel's page tables: an ordinary user
of the walker, like the kernel's ``pagemap_ops`` (Linux 7.2
``fs/proc/task_mmu.c``: ``pagemap_pmd_range``, ``pagemap_pte_hole`` and
``pagemap_hugetlb_range``; no ``pte_entry``, so nothing is ever split).

:func:`pagemap_read` returns exactly the 64-bit entries that reading
``/proc/PID/pagemap`` at offset ``start / 4096 * 8`` gives, one per 4 KiB
page. :func:`pagemap_runs` gives the same entries coalesced into runs of
similar pages, and :func:`format_pagemap_text` / :func:`pagemap_json` print
them.

Entry layout (Linux 7.2): bits 0-54 the PFN, or for a swap-format entry the
swap type (bits 0-4) and offset (bits 5-54); bit 55 soft-dirty, 56 exclusively
mapped, 57 uffd-wp, 58 guard region, 61 file page or shared anonymous, 62
swapped (any non-present swap-format entry), 63 present.

>>> mm = resolve_mm(prog, 1234)
>>> entries = pagemap_read(mm, 0x7F0000000000, 0x7F0000200000)
>>> hex(entries[0])
'0x818000000012a45b'
"""

from __future__ import annotations

import json
import struct
from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

from livewalk.arch.x86.pgtable import PAGE_SHIFT, PAGE_SIZE, PMD_SHIFT, PTRS_PER_TABLE, X86Paging
from livewalk.backend import backend_for_mm

__all__ = (
    "PM_PFRAME_BITS",
    "PM_PFRAME_MASK",
    "PM_SOFT_DIRTY",
    "PM_MMAP_EXCLUSIVE",
    "PM_UFFD_WP",
    "PM_GUARD_REGION",
    "PM_FILE",
    "PM_SWAP",
    "PM_PRESENT",
    "PM_FLAG_NAMES",
    "DrgnPageState",
    "PagemapPage",
    "PagemapPageState",
    "PagemapRun",
    "pagemap_read",
    "pagemap_runs",
    "pagemap_flag_names",
    "format_pagemap_text",
    "pagemap_json",
    "pagemap_walk_ops",
)

PM_PFRAME_BITS = 55
PM_PFRAME_MASK = (1 << PM_PFRAME_BITS) - 1
PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_UFFD_WP = 1 << 57
PM_GUARD_REGION = 1 << 58
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63

#: ``MAX_SWAPFILES_SHIFT``: the swap type takes the low 5 bits of a frame.
MAX_SWAPFILES_SHIFT = 5

#: Flag names, highest bit first, as printed by :func:`pagemap_flag_names`.
PM_FLAG_NAMES = (
    (PM_PRESENT, "PRESENT"),
    (PM_SWAP, "SWAP"),
    (PM_FILE, "FILE"),
    (PM_GUARD_REGION, "GUARD_REGION"),
    (PM_UFFD_WP, "UFFD_WP"),
    (PM_MMAP_EXCLUSIVE, "MMAP_EXCLUSIVE"),
    (PM_SOFT_DIRTY, "SOFT_DIRTY"),
)

_U64 = 0xFFFF_FFFF_FFFF_FFFF
_PMD_SIZE = 1 << PMD_SHIFT
# x86 PTE bits (arch/x86/include/asm/pgtable_types.h)
_P = 1 << 0
_RW = 1 << 1
_USER = 1 << 2
_ACCESSED = 1 << 5
_DIRTY = 1 << 6
_PSE = 1 << 7
_PROTNONE = 1 << 8
_SPECIAL = 1 << 9
_UFFD_WP = 1 << 10
_SOFT_DIRTY = 1 << 11
_KNL_ERRATUM = _ACCESSED | _DIRTY
# Swap-format entries: bit 1 soft-dirty, bit 2 uffd-wp; type in bits 59-63,
# offset in bits 9-58 of the inverted value (arch/x86/include/asm/pgtable_64.h).
_SWP_TYPE_SHIFT = 59
_SWP_OFFSET_FIRST_BIT = 9
_SWP_OFFSET_MASK = (1 << 50) - 1
# PTE markers (include/linux/swapops.h)
_MARKER_UFFD_WP = 1 << 0
_MARKER_GUARD = 1 << 2


class PagemapPage(NamedTuple):
    """
    What pagemap needs to know about the ``struct page`` of a PFN.

    :ivar anon: ``folio_test_anon(page_folio(page))``
    :ivar mapcount: ``folio_precise_page_mapcount(folio, page)``
        (``CONFIG_PAGE_MAPCOUNT``)
    :ivar maybe_shared: ``folio_maybe_mapped_shared(folio)``
    """

    anon: bool
    mapcount: int
    maybe_shared: bool


class PagemapPageState(Protocol):
    """
    Where pagemap gets the ``struct page`` state it needs. The drgn
    implementation is :class:`DrgnPageState`; tests may supply their own.
    """

    def highest_memmap_pfn(self) -> int:
        """``highest_memmap_pfn``."""
        ...

    def page_info(self, pfn: int) -> PagemapPage | None:
        """The :class:`PagemapPage` of *pfn*, or ``None`` if it has no readable ``struct page``."""
        ...

    def hugetlb_pmd_shared(self, ptep: int) -> bool:
        """``hugetlb_pmd_shared(ptep)``: the table page holding *ptep* is shared."""
        ...


_U64S = struct.Struct("<Q")
_S32S = struct.Struct("<i")
# page_mapcount_is_type(): a _mapcount below PGTY_mapcount_underflow << 24
# (as a signed int) holds a page type (include/linux/page-flags.h)
_PAGE_TYPE_LIMIT = -(1 << 24)


class DrgnPageState:
    """
    :class:`PagemapPageState` of a drgn program, through
    :class:`livewalk.mm.page.PageReader` (the vmemmap read in 4 KiB blocks,
    ``page_folio`` with the Linux 7.1+ ``compound_info`` mask, precise
    mapcount). One object per pagemap read: it caches what it reads.
    """

    def __init__(self, prog: Any) -> None:
        from livewalk.mm.page import KernelState

        self.prog = prog
        self.ks = ks = KernelState.for_program(prog)
        self._reader: Any = None  # made on first use (see reader)
        self._cache: dict[int, PagemapPage | None] = {}
        # Fast path for small folios (see pfn_bits_block): whole 4 KiB
        # blocks of the vmemmap decoded at once, when struct page tiles them.
        self.bits_blocks: dict[int, list[int]] = {}
        self.bits_shift: int | None = None
        size = ks.page_size
        if (
            size % 8 == 0
            and PAGE_SIZE % size == 0
            and (PAGE_SIZE // size) & (PAGE_SIZE // size - 1) == 0
            and ks.vmemmap_base % PAGE_SIZE == 0
            and ks.off_flags % 8 == 0
            and ks.off_compound % 8 == 0
            and ks.off_mapping % 8 == 0
            and ks.off_mapcount % 4 == 0
        ):
            self.bits_shift = (PAGE_SIZE // size).bit_length() - 1

    @property
    def reader(self) -> Any:
        """The :class:`livewalk.mm.page.PageReader`, made on first use."""
        if self._reader is None:
            from livewalk.mm.page import PageReader

            self._reader = PageReader(self.prog)
        return self._reader

    def highest_memmap_pfn(self) -> int:
        return self.ks.highest_memmap_pfn  # type: ignore[no-any-return]

    def page_info(self, pfn: int) -> PagemapPage | None:
        try:
            return self._cache[pfn]
        except KeyError:
            pass
        from drgn import FaultError

        r = self.reader
        ks = r.ks
        info: PagemapPage | None
        try:
            raw = r.page_bytes(pfn)
            compound = _U64S.unpack_from(raw, ks.off_compound)[0]
            flags = _U64S.unpack_from(raw, ks.off_flags)[0]
            if not compound & 1 and not flags >> ks.pg_head & 1:
                # A small folio (neither tail nor head): the page is the
                # folio, and its own fields answer everything.
                mapping = _U64S.unpack_from(raw, ks.off_mapping)[0]
                mc = _S32S.unpack_from(raw, ks.off_mapcount)[0]
                mapcount = 0 if mc < _PAGE_TYPE_LIMIT else mc + 1
                info = PagemapPage(bool(mapping & 1), mapcount, mapcount > 1)
            else:
                pi = r.info(pfn)
                info = PagemapPage(r.anon(pi), r.precise_mapcount(pi), r.maybe_mapped_shared(pi))
        except FaultError:
            info = None
        self._cache[pfn] = info
        return info

    def pfn_bits_block(self, block: int) -> list[int]:
        """
        The pagemap bits (``PM_FILE``, ``PM_MMAP_EXCLUSIVE``) that the
        ``struct page`` of each PFN of vmemmap block *block* (PFNs
        ``block << bits_shift`` onwards, one 4 KiB read) gives a present
        PTE, as :meth:`page_info` would for a small folio; -1 for a page of
        a large folio or an unreadable block (use :meth:`page_info`).
        """
        from drgn import FaultError

        ks = self.ks
        try:
            raw = self.prog.read(ks.vmemmap_base + block * PAGE_SIZE, PAGE_SIZE)
        except FaultError:
            bits = [-1] * (1 << (self.bits_shift or 0))
        else:
            bits = self._decode_block(raw)
        self.bits_blocks[block] = bits
        return bits

    def pfn_bits_blocks(self, first: int, last: int) -> None:
        """
        Decode the vmemmap blocks *first* to *last* (inclusive) not decoded
        yet, with one read of the span from the first missing to the last
        missing block (see :meth:`pfn_bits_block`).
        """
        from drgn import FaultError

        have = self.bits_blocks
        missing = [b for b in range(first, last + 1) if b not in have]
        if not missing:
            return
        a, z = missing[0], missing[-1]
        ks = self.ks
        try:
            raw = self.prog.read(ks.vmemmap_base + a * PAGE_SIZE, (z - a + 1) * PAGE_SIZE)
        except FaultError:
            return  # pfn_bits_block() reads them one by one
        for bl in missing:
            off = (bl - a) * PAGE_SIZE
            have[bl] = self._decode_block(raw[off : off + PAGE_SIZE])

    def _decode_block(self, raw: bytes) -> list[int]:
        ks = self.ks
        bits = _all_small_anon_exclusive(raw, ks)
        if bits is None:
            q = memoryview(raw).cast("Q")
            w = ks.page_size // 8
            head = ks.pg_head
            bits = [
                -1
                if c & 1 or f >> head & 1
                else (PM_FILE if not m & 1 else 0) | (PM_MMAP_EXCLUSIVE if mc == 0 else 0)
                for f, c, m, mc in zip(
                    q[ks.off_flags // 8 :: w],
                    q[ks.off_compound // 8 :: w],
                    q[ks.off_mapping // 8 :: w],
                    memoryview(raw).cast("i")[ks.off_mapcount // 4 :: ks.page_size // 4],
                )
            ]
        return bits

    def hugetlb_pmd_shared(self, ptep: int) -> bool:
        from drgn import FaultError

        try:
            return self.reader.pt_share_count(ptep & ~(PAGE_SIZE - 1)) != 0
        except FaultError:
            return False


# byte -> bit k of it, for testing one bit of many bytes at once
_BIT_TABLES = [bytes((i >> k) & 1 for i in range(256)) for k in range(8)]


def _all_small_anon_exclusive(raw: bytes, ks: Any) -> list[int] | None:
    """
    ``[PM_MMAP_EXCLUSIVE] * n`` if every ``struct page`` in *raw* (a whole
    vmemmap block) is a small folio (no ``compound_info`` bit 0, no
    ``PG_head``), anonymous (``mapping`` bit 0) and mapped once
    (``_mapcount`` 0), tested on byte slices at C speed (x86 is little
    endian); else ``None``.
    """
    size = ks.page_size
    b0 = _BIT_TABLES[0]
    compound = raw[ks.off_compound :: size].translate(b0)
    n = len(compound)
    zeros = bytes(n)
    if compound != zeros:
        return None
    head = ks.pg_head
    if raw[ks.off_flags + head // 8 :: size].translate(_BIT_TABLES[head % 8]) != zeros:
        return None
    if raw[ks.off_mapping :: size].translate(b0) != b"\x01" * n:
        return None
    off = ks.off_mapcount
    for k in range(4):
        if raw[off + k :: size] != zeros:
            return None
    return [PM_MMAP_EXCLUSIVE] * n


def _page_state_for(backend: Any) -> PagemapPageState:
    state = getattr(backend, "page_state", None)
    if state is not None:
        return state() if callable(state) else state  # type: ignore[no-any-return]
    prog = getattr(backend, "prog", None)
    if prog is None:
        raise TypeError(f"{type(backend).__name__} provides no page state for pagemap")
    return DrgnPageState(prog)


class PagemapRun(NamedTuple):
    """
    A run of pages whose entries differ only by a steadily advancing frame:
    page ``i`` of the run (address ``start + i * 4096``) has the entry
    ``flags | ((frame + i * step) & PM_PFRAME_MASK)``.

    :ivar start: first address
    :ivar end: first address after the run
    :ivar flags: the flag bits (55-63)
    :ivar frame: frame field (bits 0-54) of the first page
    :ivar step: frame increment per page (0; 1 for PFNs; 32 for swap offsets)
    """

    start: int
    end: int
    flags: int
    frame: int
    step: int

    @property
    def npages(self) -> int:
        return (self.end - self.start) >> PAGE_SHIFT

    def entry(self, i: int) -> int:
        """The raw entry of page *i* of the run."""
        return self.flags | ((self.frame + i * self.step) & PM_PFRAME_MASK)


# -- sinks: where the callbacks put entries ---------------------------------


class _ArraySink:
    """
    Entries into one ``array('Q')``. Given the number of entries, it is
    allocated (zeroed) at once and written in place, so that a hole of zero
    entries costs nothing and the array never grows.
    """

    __slots__ = ("out", "pos")

    def __init__(self, npages: int = 0) -> None:
        self.out = array("Q", (0,)) * npages if npages > 0 else array("Q")
        self.pos = 0 if npages > 0 else -1  # -1: append mode

    def _put(self, a: Any) -> None:
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
            if value == 0 and 0 <= self.pos and self.pos + n <= len(self.out):
                self.pos += n  # already zero
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


class _RunSink:
    __slots__ = ("runs", "_start", "_flags", "_frame", "_step", "_n")

    def __init__(self, start: int) -> None:
        self.runs: list[PagemapRun] = []
        self._start = start
        self._n = 0
        self._flags = self._frame = self._step = 0

    def _close(self) -> None:
        if self._n:
            end = self._start + (self._n << PAGE_SHIFT)
            self.runs.append(PagemapRun(self._start, end, self._flags, self._frame, self._step))
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

    def __init__(
        self, mm: Any, backend: Any, sink: Any, show_pfn: bool, page_state: PagemapPageState
    ) -> None:
        self.mm = mm
        self.backend = backend
        self.sink = sink
        self.show_pfn = show_pfn
        self.pages = page_state
        paging: X86Paging = backend.paging
        self.paging = paging
        self.pte_pfn_mask = paging.physical_mask & ~(PAGE_SIZE - 1) & _U64
        self.pmd_pfn_mask = paging.physical_mask & ~(_PMD_SIZE - 1) & _U64
        self.swp_pfn_mask = (1 << (paging.max_physmem_bits - PAGE_SHIFT)) - 1
        self.sd_bit = _SOFT_DIRTY if paging.soft_dirty else 0
        self.swp_sd_bit = _RW if paging.soft_dirty else 0
        self.uffd_bit = _UFFD_WP if paging.uffd_wp else 0
        self.swp_uffd_bit = _USER if paging.uffd_wp else 0
        st = paging.swap_types
        self.pfn_types = frozenset(
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
        self.marker_type = st.pte_marker
        bits = getattr(backend, "vm_flag_bits", None)
        self.vm_softdirty = bits.VM_SOFTDIRTY if bits is not None else (
            (1 << 27) if paging.soft_dirty else 0
        )
        self.highest_memmap_pfn = page_state.highest_memmap_pfn()
        # optional batch decoding of struct pages (DrgnPageState.pfn_bits_block)
        self.bits_block = getattr(page_state, "pfn_bits_block", None)
        self.bits_shift: int | None = (
            getattr(page_state, "bits_shift", None) if self.bits_block is not None else None
        )
        self.bits_blocks: dict[int, list[int]] = getattr(page_state, "bits_blocks", {})
        self.bits_blocks_read = getattr(page_state, "pfn_bits_blocks", None)
        # find_vma memo: find_vma(mm, a) is _memo_vma for _memo_lo <= a < its vm_end
        self._memo_lo = 1
        self._memo_hi = 0
        self._memo_vma: Any = None

    def find_vma(self, addr: int) -> Any:
        if self._memo_lo <= addr < self._memo_hi:
            return self._memo_vma
        vma = self.backend.find_vma(self.mm, addr)
        self._memo_lo = addr
        self._memo_hi = vma.vm_end if vma is not None else _U64 + 1
        self._memo_vma = vma
        return vma

    def vma_sd(self, vma: Any) -> int:
        return PM_SOFT_DIRTY if vma.vm_flags & self.vm_softdirty else 0

    def swp_frame_page(self, v: int) -> tuple[int, int, int | None]:
        """(type, frame without flags, pfn of the page or None) of a swap-format entry."""
        typ = v >> _SWP_TYPE_SHIFT
        off = ((~v) >> _SWP_OFFSET_FIRST_BIT) & _SWP_OFFSET_MASK
        if typ in self.pfn_types:
            pfn = off & self.swp_pfn_mask
            return typ, off, pfn
        return typ, off, None


def _pte_pfn(v: int, mask: int) -> int:
    if v and not v & _P:
        v ^= _U64  # L1TF: non-present entries hold the inverted PFN
    return (v & mask) >> PAGE_SHIFT


def pagemap_pte_hole(addr: int, end: int, depth: int, walk: Any) -> int:
    """
    ``pagemap_pte_hole``: every page of [*addr*, *end*) is 0, or
    ``PM_SOFT_DIRTY`` inside a VMA with ``VM_SOFTDIRTY`` (looked up per
    page with ``find_vma``, whatever *depth* and ``walk.vma`` say).
    """
    pm: _Pagemap = walk.private
    sink = pm.sink
    while addr < end:
        vma = pm.find_vma(addr)
        hole_end = min(end, vma.vm_start) if vma is not None else end
        if addr < hole_end:
            sink.fill(0, (hole_end - addr) >> PAGE_SHIFT)
            addr = hole_end
        if vma is None:
            break
        stop = min(end, vma.vm_end)
        if addr < stop:
            sink.fill(pm.vma_sd(vma), (stop - addr) >> PAGE_SHIFT)
            addr = stop
    return 0


def _pmd_is_huge(v: int) -> bool:
    if v & (_P | _PROTNONE | _PSE):
        return bool(v & _PSE)
    return bool(v & ~_KNL_ERRATUM)


def _pagemap_pmd_range_thp(pm: _Pagemap, v: int, addr: int, end: int, vma: Any) -> None:
    idx = (addr >> PAGE_SHIFT) & (PTRS_PER_TABLE - 1)
    flags = pm.vma_sd(vma)
    frame = 0
    step = 0
    pfn: int | None = None
    n = (end - addr) >> PAGE_SHIFT
    if v & (_P | _PROTNONE | _PSE):  # pmd_present
        mask = pm.pmd_pfn_mask if v & _PSE else pm.pte_pfn_mask
        pfn = _pte_pfn(v, mask)
        flags |= PM_PRESENT
        if v & pm.sd_bit:
            flags |= PM_SOFT_DIRTY
        if v & pm.uffd_bit:
            flags |= PM_UFFD_WP
        if pm.show_pfn:
            frame = pfn + idx
            step = 1
    elif v & ~_KNL_ERRATUM:  # a migration or device-private PMD
        typ, off, _ = pm.swp_frame_page(v)
        if pm.show_pfn:
            o = off & pm.swp_pfn_mask if typ in pm.pfn_types else off
            frame = typ | ((o + idx) << MAX_SWAPFILES_SHIFT)
            step = 1 << MAX_SWAPFILES_SHIFT
        flags |= PM_SWAP
        if v & pm.swp_sd_bit:
            flags |= PM_SOFT_DIRTY
        if v & pm.swp_uffd_bit:
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
    pm.sink.seq(flags, frame, n, step)


def _pmd_bad(v: int, pm: _Pagemap) -> bool:
    flags = v & ~pm.pte_pfn_mask & _U64
    return (flags & ~(_USER | _ACCESSED)) != (_P | _RW | _DIRTY)


def pagemap_pmd_range(pmd: Any, addr: int, end: int, walk: Any) -> int:
    """
    ``pagemap_pmd_range``: a huge (THP, migration or device) PMD gives one
    run; a PMD pointing to a PTE table gives one entry per PTE, decoded from
    the table's raw values.
    """
    pm: _Pagemap = walk.private
    vma = walk.vma_info
    v = pmd.value
    if _pmd_is_huge(v):
        _pagemap_pmd_range_thp(pm, v, addr, end, vma)
        return 0
    if _pmd_bad(v, pm):
        # The kernel clears a bad PMD in pte_offset_map_lock() and retries
        # (ACTION_AGAIN), then sees a none PMD: a hole. Read-only, we report
        # that hole without clearing anything.
        return pagemap_pte_hole(addr, end, 3, walk)
    table = pmd.pte_table()
    i0 = (addr >> PAGE_SHIFT) & (PTRS_PER_TABLE - 1)
    n = (end - addr) >> PAGE_SHIFT
    pm.sink.values(_pte_entries(pm, table, i0, n, addr, vma))
    return 0


def _pte_entries(
    pm: _Pagemap, table: Sequence[int], i0: int, n: int, addr: int, vma: Any
) -> Sequence[int]:
    """``pte_to_pagemap_entry`` over ``table[i0:i0+n]`` (raw values)."""
    vma_sd = pm.vma_sd(vma)
    if pm.bits_shift is not None and n >= _CHUNK:
        got = _uniform_ptes(pm, table, i0, n, vma_sd)
        if got is not None:
            return got
    show_pfn = pm.show_pfn
    pfn_mask = pm.pte_pfn_mask
    sd_bit, uffd_bit = pm.sd_bit, pm.uffd_bit
    swp_sd_bit, swp_uffd_bit = pm.swp_sd_bit, pm.swp_uffd_bit
    highest = pm.highest_memmap_pfn
    page_info = pm.pages.page_info
    pfn_types = pm.pfn_types
    swp_pfn_mask = pm.swp_pfn_mask
    marker = pm.marker_type
    # struct page state of small folios, decoded a vmemmap block at a time
    bits_shift = pm.bits_shift
    bits_mask = (1 << bits_shift) - 1 if bits_shift is not None else 0
    bits_get = pm.bits_blocks.get
    bits_block = pm.bits_block
    cur_bi = -1
    blk: list[int] = []
    present_sd = PM_PRESENT | vma_sd
    sd_uffd = sd_bit | uffd_bit
    # the bits pagemap reads besides the PFN (accessed, dirty, rw... do not count)
    rel = _P | _PROTNONE | _SPECIAL | sd_uffd
    out = array("Q", (vma_sd,)) * n
    vals: list[int] = []
    k0 = 0
    stop = i0 + n
    i = i0
    while i < stop:
        # Slots go in aligned chunks: an all-zero chunk (most of a sparse
        # table) keeps its none entries, the others are decoded.
        j = (i + _CHUNK) & ~(_CHUNK - 1)
        if j > stop:
            j = stop
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
            # A chunk of present, normal PTEs with the same flags and PFNs
            # within a few vmemmap blocks of small folios (the common case):
            # decoded with comprehensions.
            v0 = chunk[0]
            if v0 & _P and not v0 & _SPECIAL and len({v & rel for v in chunk}) == 1:
                pfns = [(v & pfn_mask) >> PAGE_SHIFT for v in chunk]
                lob = min(pfns) >> bits_shift
                hib = max(pfns) >> bits_shift
                if hib - lob <= 3 and max(pfns) <= highest:
                    bl: list[int] = []
                    for bi in range(lob, hib + 1):
                        bl += bits_get(bi) or bits_block(bi)  # type: ignore[misc]
                    base = lob << bits_shift
                    bs = [bl[p - base] for p in pfns]
                    if -1 not in bs:
                        f0 = present_sd
                        if v0 & sd_bit:
                            f0 |= PM_SOFT_DIRTY
                        if v0 & uffd_bit:
                            f0 |= PM_UFFD_WP
                        if show_pfn:
                            vals = [p | f0 | b for p, b in zip(pfns, bs)]
                        else:
                            vals = [f0 | b for b in bs]
                        continue
        for v in chunk:
            if not v & ~_KNL_ERRATUM:  # pte_none
                append(vma_sd)
                continue
            pfn: int | None = None
            frame = 0
            if v & (_P | _PROTNONE):  # pte_present
                if v & _P:
                    p = (v & pfn_mask) >> PAGE_SHIFT
                else:
                    p = ((v ^ _U64) & pfn_mask) >> PAGE_SHIFT
                if show_pfn:
                    frame = p
                flags = present_sd
                if v & sd_uffd:
                    if v & sd_bit:
                        flags |= PM_SOFT_DIRTY
                    if v & uffd_bit:
                        flags |= PM_UFFD_WP
                # vm_normal_page(): x86 has pte_special, so a special PTE (zero
                # page, PFNMAP, special mixedmap) has no page, and neither has a
                # PFN beyond highest_memmap_pfn.
                if not v & _SPECIAL and p <= highest:
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
                typ = v >> _SWP_TYPE_SHIFT
                off = ((~v) >> _SWP_OFFSET_FIRST_BIT) & _SWP_OFFSET_MASK
                if typ in pfn_types:
                    pfn = off & swp_pfn_mask
                    if show_pfn:
                        frame = typ | (pfn << MAX_SWAPFILES_SHIFT)
                else:
                    if show_pfn:
                        frame = typ | (off << MAX_SWAPFILES_SHIFT)
                    if typ == marker:
                        if off & _MARKER_UFFD_WP:
                            flags |= PM_UFFD_WP
                        if off & _MARKER_GUARD:
                            flags |= PM_GUARD_REGION
            if pfn is not None:
                info = page_info(pfn)
                if info is not None:
                    if not info.anon:
                        flags |= PM_FILE
                    if flags & PM_PRESENT and info.mapcount == 1:
                        flags |= PM_MMAP_EXCLUSIVE
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


def _ramp(base: int, n: int, step: int) -> array:
    """``array('Q', range(base, base + n * step, step))`` (no slot may pass 2**64), built at once."""
    r = _RAMP.get(n)
    if r is None:
        r = _RAMP[n] = int.from_bytes(array("Q", range(n)).tobytes(), "little")
    return array("Q", (base * _rep(n) + r * step).to_bytes(8 * n, "little"))
# uniform tables may span this many vmemmap blocks
_UNIFORM_MAX_BLOCKS = 16


def _uniform_ptes(
    pm: _Pagemap, table: Sequence[int], i0: int, n: int, vma_sd: int
) -> array | None:
    """
    The entries of ``table[i0:i0+n]`` if all are present, normal PTEs with
    the same flags whose pages are small, anonymous folios mapped once
    (every ``struct page`` of the vmemmap blocks their PFNs span is one: see
    :meth:`DrgnPageState.pfn_bits_block`), else ``None``. Decoded without a
    Python object per entry: the slots are one big integer, masked, shifted
    and or-ed at once (no bits cross between slots: the flag bits above the
    PFN are masked off before the shift).
    """
    v0 = table[i0]
    if not v0 & _P or v0 & _SPECIAL:
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
    # the bits pagemap reads besides the PFN (accessed, dirty, rw... do not count)
    rel = _P | _PROTNONE | _SPECIAL | pm.sd_bit | pm.uffd_bit
    if x & (rel * rep) != (v0 & rel) * rep:
        return None  # not all with the same flags
    pfns = (x & (pfn_mask * rep)) >> PAGE_SHIFT
    pa = array("Q", pfns.to_bytes(8 * n, "little"))
    hi = max(pa)
    if hi > pm.highest_memmap_pfn:
        return None
    shift = pm.bits_shift or 0
    lob = min(pa) >> shift
    hib = hi >> shift
    if hib - lob >= _UNIFORM_MAX_BLOCKS:
        return None
    if pm.bits_blocks_read is not None:
        pm.bits_blocks_read(lob, hib)  # one read for the whole span
    get = pm.bits_blocks.get
    for bi in range(lob, hib + 1):
        blk = get(bi) or pm.bits_block(bi)  # type: ignore[misc]
        if blk.count(PM_MMAP_EXCLUSIVE) != len(blk):
            return None
    flags = PM_PRESENT | vma_sd | PM_MMAP_EXCLUSIVE
    if v0 & pm.sd_bit:
        flags |= PM_SOFT_DIRTY
    if v0 & pm.uffd_bit:
        flags |= PM_UFFD_WP
    res = flags * rep
    if pm.show_pfn:
        res |= pfns
    return array("Q", res.to_bytes(8 * n, "little"))


#: slots per chunk in :func:`_pte_entries` (a power of two dividing 512)
_CHUNK = 32


def pagemap_hugetlb_range(pte: Any, hmask: int, addr: int, end: int, walk: Any) -> int:
    """``pagemap_hugetlb_range``: one call per huge page (the slot may be none)."""
    pm: _Pagemap = walk.private
    vma = walk.vma_info
    flags = pm.vma_sd(vma)
    frame = 0
    step = 0
    v = pte.value
    n = (end - addr) >> PAGE_SHIFT
    if v & (_P | _PROTNONE):  # pte_present
        pfn = _pte_pfn(v, pm.pte_pfn_mask)
        info = pm.pages.page_info(pfn)
        if info is not None:
            if not info.anon:
                flags |= PM_FILE
            kaddr = pte.kaddr
            shared_table = kaddr is not None and pm.pages.hugetlb_pmd_shared(kaddr)
            if not info.maybe_shared and not shared_table:
                flags |= PM_MMAP_EXCLUSIVE
        if v & pm.uffd_bit:
            flags |= PM_UFFD_WP
        flags |= PM_PRESENT
        if pm.show_pfn:
            frame = pfn + ((addr & (~hmask & _U64)) >> PAGE_SHIFT)
            step = 1
    elif v & ~_KNL_ERRATUM and pm.paging.uffd_wp:  # pte_swp_uffd_wp_any()
        if v & _USER:
            flags |= PM_UFFD_WP
        else:
            typ = v >> _SWP_TYPE_SHIFT
            off = ((~v) >> _SWP_OFFSET_FIRST_BIT) & _SWP_OFFSET_MASK
            if typ == pm.marker_type and off & _MARKER_UFFD_WP:
                flags |= PM_UFFD_WP
    pm.sink.seq(flags, frame, n, step)
    return 0


def pagemap_walk_ops() -> Any:
    """
    The walker ops of pagemap (``pagemap_ops`` in Linux 7.2
    ``fs/proc/task_mmu.c``): ``pmd_entry``, ``pte_hole`` and
    ``hugetlb_entry``, with ``PGWALK_RDLOCK``.
    """
    from livewalk.mm.pagewalk import PGWALK_RDLOCK, MMWalkOps

    return MMWalkOps(
        pmd_entry=pagemap_pmd_range,
        pte_hole=pagemap_pte_hole,
        hugetlb_entry=pagemap_hugetlb_range,
        walk_lock=PGWALK_RDLOCK,
    )


def _task_size(mm: Any, backend: Any) -> int:
    """``mm->task_size``; for an mm without one, ``TASK_SIZE_MAX``."""
    ts = getattr(mm, "task_size", None)
    if ts is None:
        return int(backend.paging.task_size_max)
    return int(ts.value_() if hasattr(ts, "value_") else ts)


def _clamp(mm: Any, backend: Any, start: int, end: int) -> tuple[int, int]:
    """
    The [start, end) that ``pagemap_read()`` walks for a read of the pages
    of [*start*, *end*), as Linux 7.2 computes it: start rounded down to a
    page, the end clamped to ``mm->task_size`` (a start beyond it reads
    nothing). The LAM untagging of the start is the identity for tasks that
    do not use LAM.
    """
    task_size = _task_size(mm, backend)
    start_vaddr = (start >> PAGE_SHIFT) << PAGE_SHIFT
    end_vaddr = ((end + PAGE_SIZE - 1) >> PAGE_SHIFT) << PAGE_SHIFT
    if end_vaddr > task_size:
        end_vaddr = task_size
    if start_vaddr > task_size:
        start_vaddr = end_vaddr
    return start_vaddr, max(start_vaddr, end_vaddr)


def _run_walk(
    mm: Any,
    start: int,
    end: int,
    sink: Any,
    show_pfn: bool,
    backend: Any,
    page_state: PagemapPageState | None,
    walks: list[Any] | None = None,
) -> None:
    from livewalk.mm.pagewalk import walk_page_range

    if page_state is None:
        page_state = _page_state_for(backend)
    pm = _Pagemap(mm, backend, sink, show_pfn, page_state)
    ret = walk_page_range(mm, start, end, pagemap_walk_ops(), pm, walks=walks)
    if ret < 0:
        raise OSError(-ret, f"pagemap walk of [{start:#x}, {end:#x}) failed")


def pagemap_read(
    mm: Any,
    start: int,
    end: int,
    *,
    show_pfn: bool = True,
    backend: Any = None,
    page_state: PagemapPageState | None = None,
    walks: list[Any] | None = None,
) -> array:
    """
    The ``/proc/PID/pagemap`` entries of the pages of [*start*, *end*): what
    reading ``(end - start) / 4096 * 8`` bytes at offset ``start / 4096 * 8``
    returns in Linux 7.2 (``pagemap_read``), including the clamp at
    ``mm->task_size`` (fewer entries, or none, past the top of user space)
    and zeros for addresses outside any VMA.

    The whole range is walked at once (the kernel walks 2 MiB at a time; the
    entries are the same).

    >>> pagemap_read(mm, 0x400000, 0x401000)
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
    s, e = _clamp(mm, backend, start, end)
    sink = _ArraySink((e - s) >> PAGE_SHIFT if s < e else 0)
    if s < e:
        _run_walk(mm, s, e, sink, show_pfn, backend, page_state, walks)
    return sink.finish()


def pagemap_runs(
    mm: Any,
    start: int,
    end: int,
    *,
    show_pfn: bool = True,
    backend: Any = None,
    page_state: PagemapPageState | None = None,
) -> list[PagemapRun]:
    """
    The entries of :func:`pagemap_read`, coalesced into :class:`PagemapRun`
    runs of similar pages: same flags, and a frame that stays the same,
    advances by 1 (PFNs) or by 32 (swap offsets) from page to page.

    >>> for r in pagemap_runs(mm, 0x400000, 0x600000):
    ...     print(hex(r.start), hex(r.end), pagemap_flag_names(r.flags), hex(r.frame))
    """
    if backend is None:
        backend = backend_for_mm(mm)
    s, e = _clamp(mm, backend, start, end)
    sink = _RunSink(s)
    if s < e:
        _run_walk(mm, s, e, sink, show_pfn, backend, page_state)
    return sink.finish()


def runs_from_entries(start: int, entries: Iterable[int]) -> list[PagemapRun]:
    """Coalesce raw entries (page *i* at ``start + i * 4096``) into runs."""
    sink = _RunSink(start)
    sink.values(list(entries))
    return sink.finish()


def pagemap_flag_names(flags: int) -> list[str]:
    """
    Names of the flag bits set in *flags*.

    >>> pagemap_flag_names(PM_PRESENT | PM_SOFT_DIRTY)
    ['PRESENT', 'SOFT_DIRTY']
    """
    return [name for bit, name in PM_FLAG_NAMES if flags & bit]


def _describe_frame(run: PagemapRun) -> str:
    last = run.frame + (run.npages - 1) * run.step
    if run.flags & PM_PRESENT:
        if run.npages == 1 or run.step == 0:
            return f"pfn {run.frame:#x}"
        return f"pfn {run.frame:#x}-{last:#x}"
    if run.flags & PM_SWAP:
        typ = run.frame & ((1 << MAX_SWAPFILES_SHIFT) - 1)
        off = run.frame >> MAX_SWAPFILES_SHIFT
        loff = last >> MAX_SWAPFILES_SHIFT
        rng = f"{off:#x}" if loff == off else f"{off:#x}-{loff:#x}"
        return f"swap type {typ} offset {rng}"
    return ""


def format_pagemap_text(runs: Iterable[PagemapRun], *, holes: bool = True) -> Iterator[str]:
    """
    One line per run: address range, page count, flags and frames.

    >>> print(*format_pagemap_text(runs), sep="\\n")
    0x00400000-0x00401000      1 PRESENT|FILE|SOFT_DIRTY pfn 0x2d3f1
    """
    for r in runs:
        if not holes and r.flags == 0 and r.frame == 0:
            continue
        names = "|".join(pagemap_flag_names(r.flags)) or "-"
        frame = _describe_frame(r)
        line = f"{r.start:#014x}-{r.end:#014x} {r.npages:8d} {names}"
        yield f"{line} {frame}" if frame else line


def pagemap_json(runs: Iterable[PagemapRun]) -> str:
    """
    The runs as a JSON array of objects (``start``, ``end``, ``pages``,
    ``flags`` (names), ``raw_flags``, ``frame``, ``frame_step``, and
    ``pfn`` or ``swap_type``/``swap_offset`` where they apply).
    """
    out = []
    for r in runs:
        d: dict[str, Any] = {
            "start": r.start,
            "end": r.end,
            "pages": r.npages,
            "flags": pagemap_flag_names(r.flags),
            "raw_flags": r.flags,
            "frame": r.frame,
            "frame_step": r.step,
        }
        if r.flags & PM_PRESENT:
            d["pfn"] = r.frame
        elif r.flags & PM_SWAP:
            d["swap_type"] = r.frame & ((1 << MAX_SWAPFILES_SHIFT) - 1)
            d["swap_offset"] = r.frame >> MAX_SWAPFILES_SHIFT
        out.append(d)
    return json.dumps(out)

