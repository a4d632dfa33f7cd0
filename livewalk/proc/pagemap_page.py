# SPDX-License-Identifier: LGPL-2.1-or-later
"""
pagemap's page state
--------------------

What ``/proc/PID/pagemap`` needs to know about the ``struct page`` of a PFN
(anonymous? mapped once? maybe shared?), and :class:`DrgnPageState`, which
reads it from a kernel through :class:`livewalk.mm.page.PageReader`, with a
fast path that decodes whole 4 KiB blocks of the vmemmap at once.

>>> pages = DrgnPageState(prog)  # doctest: +SKIP
>>> pages.page_info(0x1234)  # doctest: +SKIP
PagemapPage(anon=True, mapcount=1, maybe_shared=False)
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import NamedTuple, Protocol

from drgn import FaultError, Program

from livewalk.backend.drgn import DrgnBackend
from livewalk.mm.page import PAGE_MAPPING_ANON, KernelState, PageInfo, PageReader
from livewalk.proc.pagemap_entry import PM_FILE, PM_MMAP_EXCLUSIVE

__all__ = (
    "DrgnPageState",
    "PagemapPage",
    "PagemapPageState",
)


class PagemapPage(NamedTuple):
    """
    What pagemap needs to know about the ``struct page`` of a PFN.

    :ivar anon: ``folio_test_anon(page_folio(page))``
    :ivar mapcount: ``folio_precise_page_mapcount(folio, page)``
        (``CONFIG_PAGE_MAPCOUNT``); on Linux 6.1 ``page_mapcount(page)``
    :ivar maybe_shared: ``folio_maybe_mapped_shared(folio)`` (6.1, which
        lacks it: ``page_mapcount(page) > 1``)
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


#: Bytes of the vmemmap read and decoded at once (a read unit of this
#: module, whatever the target's page size).
_BLOCK = 4096

#: Runs of PFNs whose ``struct page`` s are at most this many bytes apart
#: are read together by :meth:`DrgnPageState.runs_anon_exclusive`: reading
#: a few KiB more costs less than one more read (over QMP, 4 KiB in about
#: 2.0 us, 32 KiB in 3.2 us, 8 bytes in 1.9 us).
_RUN_GAP = 4 * _BLOCK

_U64S = struct.Struct("<Q")
_S32S = struct.Struct("<i")


class DrgnPageState:
    """
    :class:`PagemapPageState` of a drgn program, through
    :class:`livewalk.mm.page.PageReader` (the vmemmap read in 4 KiB blocks,
    ``page_folio`` with the Linux 7.1+ ``compound_info`` mask, precise
    mapcount). One object per pagemap read: it caches what it reads.
    """

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.ks = ks = KernelState.for_program(prog)
        # PAGE_SIZE of the target (4, 16 or 64 KiB on arm64): a page-table
        # page is one page
        backend = DrgnBackend.for_program(prog)
        self.table_size = backend.paging.page_size
        self._read_vmemmap = backend.vmemmap_reader  # prog.read, cheaper where it can be
        self._reader: PageReader | None = None  # made on first use (see reader)
        self._cache: dict[int, PagemapPage | None] = {}
        # head PFN -> (its PageInfo, folio_test_anon, folio_maybe_mapped_shared
        # or None on 6.1), for the pages of large folios
        self._folios: dict[int, tuple[PageInfo, bool, bool | None]] = {}
        # Fast path for small folios (see pfn_bits_block): whole 4 KiB
        # blocks of the vmemmap decoded at once, when struct page tiles them.
        self.bits_blocks: dict[int, list[int]] = {}
        # the raw blocks whose pages of large folios are still -1
        self._large_blocks: dict[int, bytes] = {}
        self.bits_shift: int | None = None
        size = ks.page_size
        if (
            size % 8 == 0
            and _BLOCK % size == 0
            and (_BLOCK // size) & (_BLOCK // size - 1) == 0
            and ks.vmemmap_base % _BLOCK == 0
            and ks.off_flags % 8 == 0
            and ks.off_compound % 8 == 0
            and ks.off_mapping % 8 == 0
            and ks.off_mapcount % 4 == 0
        ):
            self.bits_shift = (_BLOCK // size).bit_length() - 1

    @property
    def reader(self) -> PageReader:
        """The :class:`livewalk.mm.page.PageReader`, made on first use."""
        if self._reader is None:
            self._reader = PageReader(self.prog)
        return self._reader

    def highest_memmap_pfn(self) -> int:
        return self.ks.highest_memmap_pfn

    def page_info(self, pfn: int) -> PagemapPage | None:
        try:
            return self._cache[pfn]
        except KeyError:
            pass
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
                mapcount = 0 if mc < ks.mapcount_type_limit else mc + 1
                info = PagemapPage(bool(mapping & PAGE_MAPPING_ANON), mapcount, mapcount > 1)
            else:
                # A page of a large folio: the folio's state is worked out
                # once per read, each page adds its own _mapcount.
                pi, anon, folio_shared = self._folio(r.folio_pfn_of(pfn, compound))
                mapcount = r.precise_mapcount_of(pi, _S32S.unpack_from(raw, ks.off_mapcount)[0])
                shared = mapcount > 1 if folio_shared is None else folio_shared
                info = PagemapPage(anon, mapcount, shared)
        except FaultError:
            info = None
        self._cache[pfn] = info
        return info

    def _folio(self, head_pfn: int) -> tuple[PageInfo, bool, bool | None]:
        """
        The state of the large folio whose head is *head_pfn*, worked out
        once per read: its :class:`~livewalk.mm.page.PageInfo`,
        ``folio_test_anon()`` and ``folio_maybe_mapped_shared()`` (``None``
        on 6.1, which lacks it: the page's own mapcount stands in).

        :raises FaultError: its ``struct page`` cannot be read
        """
        folio = self._folios.get(head_pfn)
        if folio is None:
            r = self.reader
            pi = r.info(head_pfn)
            folio_shared = None if self.ks.compound_mapcount else r.maybe_mapped_shared(pi)
            folio = self._folios[head_pfn] = (pi, r.anon(pi), folio_shared)
        return folio

    def pfn_bits_block(self, block: int) -> list[int]:
        """
        The pagemap bits (``PM_FILE``, ``PM_MMAP_EXCLUSIVE``) that the
        ``struct page`` of each PFN of vmemmap block *block* (PFNs
        ``block << bits_shift`` onwards, one 4 KiB read) gives a present
        PTE, as :meth:`page_info` would for a small folio; -1 for a page of
        a large folio or an unreadable block (use :meth:`page_info`).
        """
        ks = self.ks
        try:
            raw = self._read_vmemmap(ks.vmemmap_base + block * _BLOCK, _BLOCK)
        except FaultError:
            bits = [-1] * (1 << (self.bits_shift or 0))
        else:
            bits = self._decode_block(raw, block)
        self.bits_blocks[block] = bits
        return bits

    def pfn_bits_blocks(self, first: int, last: int) -> None:
        """
        Decode the vmemmap blocks *first* to *last* (inclusive) not decoded
        yet, with one read of the span from the first missing to the last
        missing block (see :meth:`pfn_bits_block`).
        """
        have = self.bits_blocks
        missing = [b for b in range(first, last + 1) if b not in have]
        if not missing:
            return
        a, z = missing[0], missing[-1]
        ks = self.ks
        try:
            raw = self._read_vmemmap(ks.vmemmap_base + a * _BLOCK, (z - a + 1) * _BLOCK)
        except FaultError:
            return  # pfn_bits_block() reads them one by one
        if _all_small_anon_exclusive(raw, ks) is not None:
            # every page of the span at once (the usual anonymous memory)
            per_block = [PM_MMAP_EXCLUSIVE] * (1 << (self.bits_shift or 0))
            for bl in missing:
                have[bl] = per_block
            return
        for bl in missing:
            off = (bl - a) * _BLOCK
            have[bl] = self._decode_block(raw[off : off + _BLOCK], bl)

    def runs_anon_exclusive(self, runs: Iterable[tuple[int, int]]) -> bool:
        """
        Whether the ``struct page`` of every PFN of *runs* (``(first,
        last)`` runs of consecutive PFNs, inclusive) is a small, anonymous
        folio mapped once (what :meth:`page_info` says as
        ``PagemapPage(True, 1, False)``), whatever vmemmap blocks they
        share with their neighbours. Runs whose struct pages lie close
        together (at most :data:`_RUN_GAP` bytes apart) are read in one
        read and only their own pages tested, so that a table of many short
        runs in a few stretches of memory costs a read per stretch. False
        if any is not, or if they cannot be read (ask :meth:`page_info`
        then). Only when :attr:`bits_shift` is set (the layout the
        byte-slice test needs).

        >>> state.runs_anon_exclusive([(0x1000, 0x10ff), (0x1180, 0x11ff)])  # doctest: +SKIP
        True
        """
        ks = self.ks
        size = ks.page_size
        gap = _RUN_GAP // size
        todo = sorted(runs)
        i = 0
        while i < len(todo):
            # one stretch: the runs from todo[i] on that start within gap
            # pages of the last page read so far
            first, last = todo[i]
            j = i + 1
            while j < len(todo) and todo[j][0] - last <= gap:
                last = max(last, todo[j][1])
                j += 1
            try:
                raw = self._read_vmemmap(ks.vmemmap_base + first * size, (last - first + 1) * size)
            except FaultError:
                return False
            if j - i > 1:
                # the runs' own pages only (a run may repeat or overlap
                # another: the same pages tested twice)
                raw = b"".join(raw[(a - first) * size : (b - first + 1) * size] for a, b in todo[i:j])
            if _all_small_anon_exclusive(raw, ks) is None:
                return False
            i = j
        return True

    def _decode_block(self, raw: bytes, block: int) -> list[int]:
        ks = self.ks
        bits = _all_small_anon_exclusive(raw, ks)
        if bits is None:
            bits = _small_folio_bits(raw, ks)
            if -1 in bits:
                self._large_blocks[block] = raw  # for pfn_bits_large(), if asked
        return bits

    def pfn_bits_large(self, block: int) -> list[int]:
        """
        The bits of vmemmap block *block* (decoded by
        :meth:`pfn_bits_block` first) with those of its pages of large
        folios filled in too, as :meth:`page_info` gives them (see
        :meth:`_large_folio_bits`): asked for when a PTE table maps such
        pages, so that a block of some other process's large folios costs
        nothing.
        """
        bits = self.bits_blocks.get(block)
        if bits is None:
            bits = self.pfn_bits_block(block)
        raw = self._large_blocks.pop(block, None)
        if raw is not None:
            self._large_folio_bits(raw, block, bits)
        return bits

    def _large_folio_bits(self, raw: bytes, block: int, bits: list[int]) -> None:
        """
        Fill in the pagemap bits of the pages of large folios in vmemmap
        block *block* (read as *raw*), left -1 by :func:`_small_folio_bits`:
        what :meth:`page_info` gives them, from the folio's state (worked
        out once per folio) and each page's own ``_mapcount``. A page whose
        folio cannot be read stays -1.
        """
        ks = self.ks
        r = self.reader
        # the block is the reader's too: the head is often in it
        r.add_block(ks.vmemmap_base + block * _BLOCK, raw)
        size = ks.page_size
        off_compound, off_mapcount = ks.off_compound, ks.off_mapcount
        first = block << (self.bits_shift or 0)
        folio_pfn_of = r.folio_pfn_of
        precise_mapcount_of = r.precise_mapcount_of
        last_head = -1
        pi = None
        file_bit = 0
        for i, b in enumerate(bits):
            if b != -1:
                continue
            off = i * size
            head = folio_pfn_of(first + i, _U64S.unpack_from(raw, off + off_compound)[0])
            if head != last_head:  # the pages of a folio come one after the other
                try:
                    pi, anon, _ = self._folio(head)
                except FaultError:
                    continue
                last_head = head
                file_bit = 0 if anon else PM_FILE
            assert pi is not None
            mapcount = precise_mapcount_of(pi, _S32S.unpack_from(raw, off + off_mapcount)[0])
            bits[i] = file_bit | (PM_MMAP_EXCLUSIVE if mapcount == 1 else 0)

    def hugetlb_pmd_shared(self, ptep: int) -> bool:
        try:
            # the ptdesc of the PMD table page holding ptep
            return self.reader.pt_share_count(ptep & ~(self.table_size - 1)) != 0
        except FaultError:
            return False


# byte -> bit k of it, for testing one bit of many bytes at once
_BIT_TABLES = [bytes((i >> k) & 1 for i in range(256)) for k in range(8)]


# byte -> 1 if it is not 0
_NONZERO = bytes([0]) + bytes([1]) * 255
# byte 0..4 (how many of a _mapcount's 4 bytes are not 0) -> 1 if none is
_NONE_SET = bytes([1]) + bytes(255)
# what _small_folio_bits() gives for code (tail + head) * 4 + anon * 2 + mapped once
_CODE_BITS = tuple(
    -1 if code >= 4 else (0 if code & 2 else PM_FILE) | (PM_MMAP_EXCLUSIVE if code & 1 else 0)
    for code in range(12)
)


def _small_folio_bits(raw: bytes, ks: KernelState) -> list[int]:
    """
    For each ``struct page`` in *raw* (a whole vmemmap block): -1 for a page
    of a large folio (``compound_info`` bit 0 or ``PG_head``), else
    ``PM_FILE`` unless ``mapping`` has ``PAGE_MAPPING_ANON``, or-ed with
    ``PM_MMAP_EXCLUSIVE`` if ``_mapcount`` is 0 (mapped once). Each field
    is cut out of every page at once as a byte slice, reduced to one 0/1
    byte per page, and the bytes are summed into a code per page as big
    integers (no carry: a byte never passes 11), so that only the final
    lookup runs per page.
    """
    size = ks.page_size
    b0 = _BIT_TABLES[0]
    head = ks.pg_head
    tail = raw[ks.off_compound :: size].translate(b0)
    n = len(tail)
    large = int.from_bytes(tail, "little") + int.from_bytes(
        raw[ks.off_flags + head // 8 :: size].translate(_BIT_TABLES[head % 8]), "little"
    )
    anon = int.from_bytes(raw[ks.off_mapping :: size].translate(b0), "little")
    off = ks.off_mapcount
    set_bytes = (
        int.from_bytes(raw[off :: size].translate(_NONZERO), "little")
        + int.from_bytes(raw[off + 1 :: size].translate(_NONZERO), "little")
        + int.from_bytes(raw[off + 2 :: size].translate(_NONZERO), "little")
        + int.from_bytes(raw[off + 3 :: size].translate(_NONZERO), "little")
    )
    once = int.from_bytes(set_bytes.to_bytes(n, "little").translate(_NONE_SET), "little")
    codes = (large * 4 + anon * 2 + once).to_bytes(n, "little")
    return list(map(_CODE_BITS.__getitem__, codes))


def _all_small_anon_exclusive(raw: bytes, ks: KernelState) -> list[int] | None:
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
