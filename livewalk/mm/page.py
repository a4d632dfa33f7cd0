# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Kernel state
------------

Typed drgn helpers for the page, folio, swap and shmem state that
``/proc/PID/pagemap`` and ``/proc/PID/smaps`` read, correct on Linux 7.2 and
taking every layout fact from the target's debug info: ``enum pageflags``
values, page-type numbers, ``struct page``/``struct folio`` member offsets and
VMA flag bits all come from drgn, never from constants in this file.

Two layers:

* :class:`KernelState` holds the per-program facts (offsets, flag bits,
  ``zero_page_pfn``...), read once per program and cached in
  ``prog.cache``.
* :class:`PageReader` answers per-page questions on page frame numbers. It
  reads the ``vmemmap`` in 4 KiB blocks (64 ``struct page`` at once) with one
  ``prog.read`` each and decodes fields by offset, caching the blocks for the
  length of one walk. Create one per walk of a live kernel (its cache is a
  snapshot).

The functions :func:`page_folio`, :func:`folio_test_anon`,
:func:`precise_mapcount` and friends take and return drgn ``struct page *`` /
``struct folio *`` Objects, mirroring the kernel helpers of the same names.
"""

from __future__ import annotations

import bisect
import dataclasses
import struct
from collections.abc import Iterator
from typing import Any

from drgn import FaultError, Object, Program, cast, offsetof, sizeof

__all__ = (
    "KernelState",
    "PageInfo",
    "PageReader",
    "compound_head",
    "compound_nr",
    "folio_entire_mapcount",
    "folio_large_mapcount",
    "folio_maybe_mapped_shared",
    "folio_nr_pages",
    "folio_ref_count",
    "folio_test_anon",
    "folio_test_dirty",
    "folio_test_hugetlb",
    "folio_test_ksm",
    "folio_test_large",
    "folio_test_referenced",
    "folio_test_swapbacked",
    "folio_test_young",
    "folio_is_zone_device",
    "huge_page_shift_of_vma",
    "page_folio",
    "pmd_table_shared",
    "precise_mapcount",
    "shmem_mapping",
    "shmem_partial_swap_usage",
    "shmem_swap_usage",
    "swp_swapcount",
    "vma_kernel_pagesize",
)

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_S32 = struct.Struct("<i")

#: ``PAGE_MAPPING_ANON`` and ``PAGE_MAPPING_KSM`` (``mapping`` low bits), as
#: in Linux 7.2 ``include/linux/page-flags.h``: a tag scheme, not a variable.
PAGE_MAPPING_ANON = 0x1
PAGE_MAPPING_KSM = 0x3

#: ``PGTY_mapcount_underflow << 24`` as a signed int: a ``_mapcount`` below
#: this holds a page type (``page_type_has_type``).
_PGTY_MAPCOUNT_UNDERFLOW = 0xFF

_VMEMMAP_BLOCK = 4096

# xarray internal entries (include/linux/xarray.h): value entries have bit 0
# set; internal entries end in 0b10; node pointers are internal entries above
# 4096; sibling entries are internal entries below 256.
_XA_CHUNK_SIZE = 64


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _enum_value(prog: Program, name: str, default: int | None = None) -> int | None:
    try:
        return int(prog[name].value_())
    except (KeyError, LookupError):
        return default


def _symbol_address(prog: Program, name: str) -> int | None:
    try:
        return int(prog[name].address_)
    except (KeyError, LookupError):
        return None


class KernelState:
    """
    Facts about one kernel, read from its debug info and memory once.

    >>> ks = KernelState.for_program(prog)  # doctest: +SKIP
    >>> ks.pg_head, ks.page_size  # doctest: +SKIP
    (6, 64)

    :ivar page_size: ``sizeof(struct page)``
    :ivar vmemmap_base: address of ``struct page`` for pfn 0 (``vmemmap``)
    :ivar compound_info_has_mask: tail pages store a mask (Linux 7.1+, with
        ``CONFIG_HUGETLB_PAGE_OPTIMIZE_VMEMMAP`` and a power-of-two
        ``struct page``)
    """

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        page_t = prog.type("struct page")
        folio_t = prog.type("struct folio")
        self.page_size = sizeof(page_t)
        # Since Linux 7.1 (drgn cites commit 8c846c879e22; it is what Linux
        # 7.2 has), page->compound_head is page->compound_info, and a tail
        # page may store a mask instead of head|1.
        if page_t.has_member("compound_info"):
            self.compound_member = "compound_info"
        else:
            self.compound_member = "compound_head"
        self.off_flags = offsetof(page_t, "flags")
        self.off_compound = offsetof(page_t, self.compound_member)
        self.off_mapping = offsetof(page_t, "mapping")
        self.off_mapcount = offsetof(page_t, "_mapcount")
        self.off_refcount = offsetof(page_t, "_refcount")
        # Large-folio fields live in the second struct page of the folio.
        self.off_large_mapcount = offsetof(folio_t, "_large_mapcount")
        self.off_entire_mapcount = offsetof(folio_t, "_entire_mapcount")
        self.off_nr_pages: int | None = (
            offsetof(folio_t, "_nr_pages") if folio_t.has_member("_nr_pages") else None
        )
        self.off_flags_1 = offsetof(folio_t, "_flags_1")
        self.off_mm_ids: int | None = (
            offsetof(folio_t, "_mm_ids") if folio_t.has_member("_mm_ids") else None
        )
        # FOLIO_MM_IDS_SHARED_BITNUM = 2 * MM_ID_BITS + 1, MM_ID_BITS = bits of
        # mm_id_t less one (include/linux/mm_types.h): 63 on 64-bit kernels.
        try:
            mm_id_bits = sizeof(prog.type("mm_id_t")) * 8 - 1
        except LookupError:
            mm_id_bits = 31
        self.mm_ids_shared_bit = 2 * mm_id_bits + 1
        # The head page plus the folio's second page hold everything we read.
        self.head_span = max(2 * self.page_size, 128)

        pg = prog.type("enum pageflags")
        self.pageflags = {e.name: int(e.value) for e in pg.enumerators or ()}
        self.pg_head = self.pageflags["PG_head"]
        self.pg_dirty = self.pageflags["PG_dirty"]
        self.pg_referenced = self.pageflags["PG_referenced"]
        self.pg_swapbacked = self.pageflags["PG_swapbacked"]
        # PG_young exists with CONFIG_PAGE_IDLE_FLAG on 64-bit kernels; else
        # folio_test_young() is false (page_ext flags are not read here).
        self.pg_young: int | None = self.pageflags.get("PG_young")
        self.pgty_hugetlb = _enum_value(prog, "PGTY_hugetlb")

        # compound_info_has_mask(): CONFIG_HUGETLB_PAGE_OPTIMIZE_VMEMMAP (seen
        # as zone->vmemmap_tails, or the HVO code's static variable) and a
        # power-of-two struct page.
        hvo = prog.type("struct zone").has_member("vmemmap_tails") or (
            _symbol_address(prog, "vmemmap_optimize_enabled") is not None
        )
        self.compound_info_has_mask = (
            self.compound_member == "compound_info"
            and hvo
            and self.page_size & (self.page_size - 1) == 0
        )

        # vmemmap (SPARSEMEM_VMEMMAP, always on x86_64).
        try:
            self.vmemmap_base = int(prog["vmemmap_base"].value_())
        except KeyError:
            from drgn.helpers.linux.mm import pfn_to_page

            self.vmemmap_base = int(pfn_to_page(prog, 0).value_())

        # vm_normal_page() inputs.
        self.zero_page_pfn = self._ulong("zero_page_pfn", "zero_pfn")
        self.huge_zero_pfn = self._ulong("huge_zero_pfn")
        highest = self._ulong("highest_memmap_pfn")
        self.highest_memmap_pfn: int = (1 << 64) - 1 if highest is None else highest

        # Zone bits of page->flags (include/linux/page-flags-layout.h): with
        # SPARSEMEM_VMEMMAP the top bits are NODES then ZONES.
        nr_zones = _enum_value(prog, "__MAX_NR_ZONES", 5) or 5
        zones_shift = 0 if nr_zones < 2 else (nr_zones - 1).bit_length()
        try:
            nodes = prog["node_data"].type_.length or 1
        except KeyError:
            nodes = 1
        nodes_shift = (nodes - 1).bit_length()
        self.zones_pgshift = 64 - nodes_shift - zones_shift
        self.zones_mask = (1 << zones_shift) - 1
        self.zone_device = _enum_value(prog, "ZONE_DEVICE")

        self.shmem_aops = _symbol_address(prog, "shmem_aops")
        self.page_offset = int(prog["page_offset_base"].value_())
        self.ptdesc_share_off: int | None = None
        try:
            self.ptdesc_share_off = offsetof(prog.type("struct ptdesc"), "pt_share_count")
        except (LookupError, ValueError):
            pass

    def _ulong(self, *names: str) -> int | None:
        for name in names:
            try:
                obj = self.prog[name]
            except KeyError:
                continue
            if obj.type_.kind.name == "POINTER":
                return None
            return int(obj.value_())
        return None

    @classmethod
    def for_program(cls, prog: Program) -> KernelState:
        """The (cached) :class:`KernelState` of *prog*."""
        try:
            return prog.cache["livewalk_kstate"]  # type: ignore[no-any-return]
        except KeyError:
            ks = cls(prog)
            prog.cache["livewalk_kstate"] = ks
            return ks

    def pfn_to_page_addr(self, pfn: int) -> int:
        """``pfn_to_page(pfn)`` as an address."""
        return self.vmemmap_base + pfn * self.page_size

    def page_addr_to_pfn(self, addr: int) -> int:
        """``page_to_pfn(page)`` for a ``struct page`` address."""
        return (addr - self.vmemmap_base) // self.page_size

    def is_zero_pfn(self, pfn: int) -> bool:
        """``is_zero_pfn()`` (x86 has no coloured zero pages)."""
        return self.zero_page_pfn is not None and pfn == self.zero_page_pfn

    def is_huge_zero_pfn(self, pfn: int) -> bool:
        """``is_huge_zero_pfn()``: *pfn* lies in the huge zero folio."""
        hz = self.huge_zero_pfn
        return hz is not None and hz != (1 << 64) - 1 and hz == (pfn & ~511)


@dataclasses.dataclass(slots=True)
class PageInfo:
    """
    What smaps and pagemap need about one ``struct page`` and its folio, read
    at one moment.

    :ivar pfn: the page
    :ivar head_pfn: the folio's head page (``page_folio``)
    :ivar flags: the head page's flags word
    :ivar mapping: the head page's ``mapping`` word
    :ivar refcount: the head page's ``_refcount``
    :ivar mapcount_raw: this page's ``_mapcount`` (a signed int)
    :ivar large: the folio is large (PG_head set on the head)
    :ivar nr_pages: ``folio_nr_pages``
    :ivar entire_mapcount_raw: head ``_entire_mapcount`` (large folios; else -1)
    :ivar large_mapcount_raw: head ``_large_mapcount`` (large folios; else -1)
    :ivar head_page_type: the head's ``page_type`` word
    """

    pfn: int
    head_pfn: int
    flags: int
    mapping: int
    refcount: int
    mapcount_raw: int
    large: bool
    nr_pages: int
    entire_mapcount_raw: int
    large_mapcount_raw: int
    head_page_type: int
    mm_ids: int


class PageReader:
    """
    Fast per-pfn reads of ``struct page`` state for one walk.

    >>> r = PageReader(prog)  # doctest: +SKIP
    >>> r.page_folio_pfn(tail_pfn) == head_pfn  # doctest: +SKIP
    True

    The memmap is read in 4 KiB blocks, cached until :meth:`clear`.
    """

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.ks = KernelState.for_program(prog)
        self._blocks: dict[int, bytes] = {}
        self._swap = _SwapTables(prog)
        self._shmem_cache: dict[int, list[tuple[int, int]]] = {}

    def clear(self) -> None:
        """Drop cached memory (for re-reading a live kernel)."""
        self._blocks.clear()
        self._swap = _SwapTables(self.prog)
        self._shmem_cache.clear()

    # -- raw struct page bytes -------------------------------------------
    def _read(self, addr: int, size: int) -> bytes:
        """*size* bytes of the vmemmap at *addr* (within one block)."""
        block = addr & ~(_VMEMMAP_BLOCK - 1)
        data = self._blocks.get(block)
        if data is None:
            try:
                data = self.prog.read(block, _VMEMMAP_BLOCK)
            except FaultError:
                # A partially populated vmemmap block: read just what is asked.
                return self.prog.read(addr, size)
            self._blocks[block] = data
        off = addr - block
        return data[off : off + size]

    def page_bytes(self, pfn: int, npages: int = 1) -> bytes:
        """The raw bytes of ``struct page`` *pfn* (and following pages)."""
        ks = self.ks
        addr = ks.pfn_to_page_addr(pfn)
        size = ks.page_size * npages
        if (addr & (_VMEMMAP_BLOCK - 1)) + size <= _VMEMMAP_BLOCK:
            return self._read(addr, size)
        out = b""
        while size:
            n = min(size, _VMEMMAP_BLOCK - (addr & (_VMEMMAP_BLOCK - 1)))
            out += self._read(addr, n)
            addr += n
            size -= n
        return out

    # -- folio ------------------------------------------------------------
    def page_folio_pfn(self, pfn: int) -> int:
        """
        ``page_folio()`` on a pfn: the pfn of the folio's head page.

        Since Linux 7.1, with ``compound_info_has_mask()``, a tail page
        stores a mask to apply to its own ``struct page`` address; otherwise
        it stores ``head | 1`` (as all older kernels did in
        ``compound_head``).
        """
        ks = self.ks
        info = _U64.unpack_from(self.page_bytes(pfn), ks.off_compound)[0]
        if not info & 1:
            return pfn
        if ks.compound_info_has_mask:
            head = ks.pfn_to_page_addr(pfn) & info
        else:
            head = info - 1
        return ks.page_addr_to_pfn(head)

    def info(self, pfn: int) -> PageInfo:
        """Everything about page *pfn* and its folio (see :class:`PageInfo`)."""
        ks = self.ks
        page = self.page_bytes(pfn)
        info = _U64.unpack_from(page, ks.off_compound)[0]
        if info & 1:
            head_pfn = self.page_folio_pfn(pfn)
        else:
            head_pfn = pfn
        mapcount_raw = _S32.unpack_from(page, ks.off_mapcount)[0]
        head = page if head_pfn == pfn else self.page_bytes(head_pfn)
        flags = _U64.unpack_from(head, ks.off_flags)[0]
        large = bool(flags >> ks.pg_head & 1)
        nr_pages = 1
        entire = large_mc = -1
        mm_ids = 0
        if large:
            two = self.page_bytes(head_pfn, 2)
            entire = _S32.unpack_from(two, ks.off_entire_mapcount)[0]
            large_mc = _S32.unpack_from(two, ks.off_large_mapcount)[0]
            if ks.off_nr_pages is not None:
                nr_pages = _U32.unpack_from(two, ks.off_nr_pages)[0]
            else:
                nr_pages = 1 << (_U64.unpack_from(two, ks.off_flags_1)[0] & 0xFF)
            if ks.off_mm_ids is not None:
                mm_ids = _U64.unpack_from(two, ks.off_mm_ids)[0]
        return PageInfo(
            pfn=pfn,
            head_pfn=head_pfn,
            flags=flags,
            mapping=_U64.unpack_from(head, ks.off_mapping)[0],
            refcount=_S32.unpack_from(head, ks.off_refcount)[0],
            mapcount_raw=mapcount_raw,
            large=large,
            nr_pages=nr_pages,
            entire_mapcount_raw=entire,
            large_mapcount_raw=large_mc,
            head_page_type=_U32.unpack_from(head, ks.off_mapcount)[0],
            mm_ids=mm_ids,
        )

    def mapcount_raw(self, pfn: int) -> int:
        """``page->_mapcount`` of *pfn*, signed."""
        return _S32.unpack_from(self.page_bytes(pfn), self.ks.off_mapcount)[0]

    # -- predicates on a PageInfo ----------------------------------------
    def anon(self, pi: PageInfo) -> bool:
        """``folio_test_anon()``: ``mapping & PAGE_MAPPING_ANON``."""
        return bool(pi.mapping & PAGE_MAPPING_ANON)

    def ksm(self, pi: PageInfo) -> bool:
        """``folio_test_ksm()``: ``(mapping & 3) == PAGE_MAPPING_KSM``."""
        return pi.mapping & 3 == PAGE_MAPPING_KSM

    def flag(self, pi: PageInfo, bit: int | None) -> bool:
        """Test a head-page flag bit (``None``: the flag does not exist)."""
        return bit is not None and bool(pi.flags >> bit & 1)

    def hugetlb(self, pi: PageInfo) -> bool:
        """``folio_test_hugetlb()``: the head's page type is ``PGTY_hugetlb``."""
        t = self.ks.pgty_hugetlb
        return t is not None and pi.large and (pi.head_page_type >> 24) == t

    def zone_device(self, pi: PageInfo) -> bool:
        """``folio_is_zone_device()``: the zone bits of the head's flags."""
        ks = self.ks
        if ks.zone_device is None:
            return False
        return (pi.flags >> ks.zones_pgshift) & ks.zones_mask == ks.zone_device

    def precise_mapcount(self, pi: PageInfo, pfn: int | None = None) -> int:
        """
        ``folio_precise_page_mapcount(folio, page)`` (``CONFIG_PAGE_MAPCOUNT``,
        Linux 7.2 ``fs/proc/internal.h``): ``page->_mapcount + 1`` (0 when
        the field holds a page type), plus ``folio->_entire_mapcount + 1``
        for a large folio. *pfn* defaults to the page of *pi*.
        """
        raw = pi.mapcount_raw if pfn is None or pfn == pi.pfn else self.mapcount_raw(pfn)
        mc = raw + 1
        if _s32(mc - 1) < _s32(_PGTY_MAPCOUNT_UNDERFLOW << 24):
            mc = 0
        if pi.large:
            mc += pi.entire_mapcount_raw + 1
        return mc

    def folio_mapcount(self, pi: PageInfo) -> int:
        """``folio_mapcount()``."""
        if not pi.large:
            # A small folio is its own (only) page.
            raw = pi.mapcount_raw if pi.head_pfn == pi.pfn else self.mapcount_raw(pi.head_pfn)
            return 0 if _s32(raw) < _s32(_PGTY_MAPCOUNT_UNDERFLOW << 24) else raw + 1
        return pi.large_mapcount_raw + 1

    def maybe_mapped_shared(self, pi: PageInfo) -> bool:
        """
        ``folio_maybe_mapped_shared()`` (``CONFIG_MM_ID``): for small and
        hugetlb folios ``folio_mapcount() > 1``; for other large folios the
        ``FOLIO_MM_IDS_SHARED`` bit (the top bit of ``_mm_ids``).
        """
        mc = self.folio_mapcount(pi)
        if not pi.large or self.hugetlb(pi):
            return mc > 1
        if mc <= 1:
            return False
        return bool(pi.mm_ids >> self.ks.mm_ids_shared_bit & 1)

    # -- vm_normal_page ----------------------------------------------------
    def normal_pfn(
        self, pfn: int, special: bool, vm_flags: int, vm_start: int, vm_pgoff: int, addr: int
    ) -> bool:
        """
        ``__vm_normal_page()`` on x86_64 (Linux 7.2 ``mm/memory.c``; the
        ``find_normal_page`` hook, used only by Xen, is not modelled): is
        the mapping of *pfn* "normal" (has a struct page to account)?
        """
        ks = self.ks
        if special:
            return False
        if vm_flags & (_VM_PFNMAP | _VM_MIXEDMAP):
            if vm_flags & _VM_MIXEDMAP:
                if pfn > ks.highest_memmap_pfn:  # approximates !pfn_valid
                    return False
            else:
                if pfn == vm_pgoff + ((addr - vm_start) >> 12):
                    return False
                if vm_flags & (_VM_SHARED | _VM_MAYWRITE) != _VM_MAYWRITE:  # !is_cow_mapping
                    return False
        if ks.is_zero_pfn(pfn) or ks.is_huge_zero_pfn(pfn):
            return False
        return pfn <= ks.highest_memmap_pfn

    # -- page tables -------------------------------------------------------
    def pt_share_count(self, table_kaddr: int) -> int:
        """``ptdesc->pt_share_count`` of the page-table page holding *table_kaddr*."""
        ks = self.ks
        if ks.ptdesc_share_off is None:
            return 0
        pfn = (table_kaddr - ks.page_offset) >> 12
        return _S32.unpack_from(self.page_bytes(pfn), ks.ptdesc_share_off)[0]

    # -- swap ----------------------------------------------------------------
    def swp_swapcount(self, type_: int, offset: int) -> int:
        """See :func:`swp_swapcount`."""
        return self._swap.swapcount(type_, offset)

    # -- shmem ---------------------------------------------------------------
    def shmem_value_entries(self, mapping_addr: int) -> list[tuple[int, int]]:
        """The (first index, last index) of every value entry of a mapping's ``i_pages``, sorted."""
        got = self._shmem_cache.get(mapping_addr)
        if got is None:
            mapping = Object(self.prog, "struct address_space *", mapping_addr)
            got = sorted(_xa_value_ranges(self.prog, mapping.i_pages.address_of_()))
            self._shmem_cache[mapping_addr] = got
        return got

    def shmem_partial_swap_usage(self, mapping_addr: int, start: int, end: int) -> int:
        """See :func:`shmem_partial_swap_usage`."""
        if end <= start:
            return 0
        ranges = self.shmem_value_entries(mapping_addr)
        # Entries are disjoint and sorted; find the first whose last >= start.
        i = bisect.bisect_left(ranges, (start, 0))
        if i > 0 and ranges[i - 1][1] >= start:
            i -= 1
        total = 0
        last = end - 1
        while i < len(ranges) and ranges[i][0] <= last:
            first, lst = ranges[i]
            if lst >= start:
                total += lst - first + 1
            i += 1
        return total << 12


# VMA flag bits used by vm_normal_page(); stable since long before Linux 7.2
# and in 7.2 also the VMA_*_BIT enumerators.
_VM_SHARED = 1 << 3
_VM_MAYWRITE = 1 << 5
_VM_PFNMAP = 1 << 10
_VM_MIXEDMAP = 1 << 28


# ---------------------------------------------------------------------------
# xarray (i_pages) value entries
# ---------------------------------------------------------------------------
def _xa_value_ranges(prog: Program, xa: Object) -> Iterator[tuple[int, int]]:
    """
    Yield (first, last) index ranges of the value entries of an xarray,
    each multi-index entry once with its full range (what ``xas_for_each``
    plus ``xas_get_order`` see).
    """
    head = int(xa.xa_head.value_())
    if not head:
        return
    if not _xa_is_node(head):
        if head & 1:
            yield (0, 0)
        return
    node_t = prog.type("struct xa_node")
    off_shift = offsetof(node_t, "shift")
    off_slots = offsetof(node_t, "slots")
    stack = [(head & ~3, 0)]
    while stack:
        node, base = stack.pop()
        raw = prog.read(node, off_slots + 8 * _XA_CHUNK_SIZE)
        shift = raw[off_shift]
        slots = struct.unpack_from(f"<{_XA_CHUNK_SIZE}Q", raw, off_slots)
        for off, ent in enumerate(slots):
            if not ent:
                continue
            if _xa_is_sibling(ent):
                continue
            idx = base + (off << shift)
            if _xa_is_node(ent):
                if shift:
                    stack.append((ent & ~3, idx))
                continue
            if not ent & 1:
                continue
            # xas_get_order(): siblings at off+1, off+2, off+4...
            order = 0
            while off + (1 << order) < _XA_CHUNK_SIZE and _xa_is_sibling(slots[off + (1 << order)]):
                order += 1
            n = 1 << (order + shift)
            yield (idx, idx + n - 1)


def _xa_is_node(ent: int) -> bool:
    return ent & 3 == 2 and ent > 4096


def _xa_is_sibling(ent: int) -> bool:
    return ent & 3 == 2 and ent < (((_XA_CHUNK_SIZE - 1) << 2) | 2)


# ---------------------------------------------------------------------------
# Swap counts: the swap table (Linux 7.2 mm/swap_table.h)
# ---------------------------------------------------------------------------
#: ``MAX_POSSIBLE_PHYSMEM_BITS`` on x86_64 (arch/x86/include/asm/
#: pgtable_64_types.h): a compile-time constant absent from debug info.
X86_64_MAX_POSSIBLE_PHYSMEM_BITS = 52


def swap_table_layout(
    max_possible_physmem_bits: int = X86_64_MAX_POSSIBLE_PHYSMEM_BITS,
) -> tuple[int, int, int]:
    """
    The swap-table count field as Linux 7.2 ``mm/swap.h`` and
    ``mm/swap_table.h`` derive it: returns ``(SWP_TB_COUNT_SHIFT,
    SWP_TB_COUNT_BITS, SWP_TB_COUNT_MAX)``.

    >>> swap_table_layout(52)
    (60, 4, 15)
    """
    pfn_bits = max_possible_physmem_bits - 12  # SWAP_CACHE_PFN_BITS
    mark_bits = 2  # SWAP_CACHE_PFN_MARK_BITS
    has_zero = 1 if 64 - mark_bits - pfn_bits > 2 else 0  # SWAP_TABLE_HAS_ZEROFLAG
    flags_bits = min(5, 64 - (pfn_bits + mark_bits))  # SWP_TB_FLAGS_BITS
    count_bits = flags_bits - has_zero
    return 64 - count_bits, count_bits, (1 << count_bits) - 1


class _SwapTables:
    """Cached reads of ``swap_info[]`` and cluster swap tables."""

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self._si: dict[int, tuple[int, int, int] | None] = {}
        self._tables: dict[tuple[int, int], tuple[tuple[int, ...], int]] = {}
        self.cluster = 512
        self.count_shift, _, self.count_max = swap_table_layout()
        try:
            ci_t = prog.type("struct swap_cluster_info")
            self.ci_size = sizeof(ci_t)
            self.has_table = ci_t.has_member("table")
            self.off_table = offsetof(ci_t, "table") if self.has_table else 0
            self.off_extend = (
                offsetof(ci_t, "extend_table") if ci_t.has_member("extend_table") else None
            )
        except LookupError:
            self.has_table = False
            self.ci_size = 0
            self.off_table = 0
            self.off_extend = None

    def _info(self, type_: int) -> tuple[int, int, int] | None:
        if type_ in self._si:
            return self._si[type_]
        res: tuple[int, int, int] | None = None
        try:
            nr = int(self.prog["nr_swapfiles"].value_())
            if type_ < nr:
                si = self.prog["swap_info"][type_].read_()
                # get_swap_device(): a used slot (percpu_ref liveness cannot
                # be read from an image; SWP_USED stands for it).
                if si and int(si.flags.value_()) & 1:
                    try:
                        swap_map = int(si.swap_map.value_())
                    except AttributeError:
                        swap_map = 0
                    res = (int(si.max.value_()), int(si.cluster_info.value_()), swap_map)
        except (KeyError, LookupError, FaultError):
            res = None
        self._si[type_] = res
        return res

    def swapcount(self, type_: int, offset: int) -> int:
        info = self._info(type_)
        if info is None:
            return 0
        max_, cluster_info, swap_map = info
        if offset >= max_:
            return 0
        if not self.has_table:
            # Before Linux 7.2: one byte per slot in si->swap_map, with
            # SWAP_HAS_CACHE (0x40) masked off. Counts continued in extra
            # pages (COUNT_CONTINUED, 0x80) are not followed.
            if not swap_map:
                return 0
            return self.prog.read(swap_map + offset, 1)[0] & 0x3F
        if not cluster_info:
            return 0
        ci_idx = offset // self.cluster
        key = (type_, ci_idx)
        got = self._tables.get(key)
        if got is None:
            ci = cluster_info + ci_idx * self.ci_size
            table_ptr = _U64.unpack(self.prog.read(ci + self.off_table, 8))[0]
            if not table_ptr:
                return 0
            table = struct.unpack(f"<{self.cluster}Q", self.prog.read(table_ptr, 8 * self.cluster))
            got = (table, ci)
            self._tables[key] = got
        table, ci = got
        tb = table[offset % self.cluster]
        # swp_tb_is_countable(): null, shadow (bit 0) or cached folio (0b10).
        if not (tb == 0 or tb & 1 or tb & 3 == 2):
            return 0
        count = tb >> self.count_shift
        if count == self.count_max and self.off_extend is not None:
            ext = _U64.unpack(self.prog.read(ci + self.off_extend, 8))[0]
            if ext:
                count = _S32.unpack(self.prog.read(ext + 4 * (offset % self.cluster), 4))[0]
        return max(count, 0)


# ---------------------------------------------------------------------------
# Object-level helpers (mirror the kernel's names)
# ---------------------------------------------------------------------------
def _reader(prog: Program) -> PageReader:
    """A PageReader without block caching, for one-off Object queries."""
    r = PageReader.__new__(PageReader)
    r.prog = prog
    r.ks = KernelState.for_program(prog)
    r._blocks = _NoCache()
    r._swap = _SwapTables(prog)
    r._shmem_cache = {}
    return r


class _NoCache(dict):  # type: ignore[type-arg]
    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def _pfn_of(obj: Object) -> int:
    ks = KernelState.for_program(obj.prog_)
    return ks.page_addr_to_pfn(int(obj.value_()))


def _folio_info(folio: Object) -> tuple[PageReader, PageInfo]:
    r = _reader(folio.prog_)
    return r, r.info(_pfn_of(folio))


def compound_head(page: Object) -> Object:
    """
    ``compound_head(page)``: the head ``struct page *`` of a compound page.

    Since Linux 7.1 the tail pages' ``compound_info`` may be a mask (see
    :meth:`PageReader.page_folio_pfn`).

    >>> compound_head(pfn_to_page(prog, tail_pfn))  # doctest: +SKIP
    """
    prog = page.prog_
    ks = KernelState.for_program(prog)
    head = _reader(prog).page_folio_pfn(_pfn_of(page))
    return Object(prog, "struct page *", ks.pfn_to_page_addr(head))


def page_folio(page: Object) -> Object:
    """
    ``page_folio(page)``: the ``struct folio *`` containing a page.

    >>> page_folio(pfn_to_page(prog, pfn))  # doctest: +SKIP
    *(struct folio *)0xff...
    """
    return cast("struct folio *", compound_head(page))


def folio_test_anon(folio: Object) -> bool:
    """``folio_test_anon()``: ``folio->mapping & PAGE_MAPPING_ANON`` (true for KSM too)."""
    return bool(int(folio.mapping.value_()) & PAGE_MAPPING_ANON)


def folio_test_ksm(folio: Object) -> bool:
    """``folio_test_ksm()``: ``(folio->mapping & 3) == PAGE_MAPPING_KSM``."""
    return int(folio.mapping.value_()) & 3 == PAGE_MAPPING_KSM


def _flag(folio: Object, bit: int | None) -> bool:
    if bit is None:
        return False
    flags = folio.flags
    if flags.type_.kind.name != "INT":
        try:
            flags = flags.f
        except AttributeError:
            pass
    return bool(int(flags.value_()) >> bit & 1)


def folio_test_large(folio: Object) -> bool:
    """``folio_test_large()``: PG_head."""
    return _flag(folio, KernelState.for_program(folio.prog_).pg_head)


def folio_test_dirty(folio: Object) -> bool:
    """``folio_test_dirty()``."""
    return _flag(folio, KernelState.for_program(folio.prog_).pg_dirty)


def folio_test_referenced(folio: Object) -> bool:
    """``folio_test_referenced()``."""
    return _flag(folio, KernelState.for_program(folio.prog_).pg_referenced)


def folio_test_swapbacked(folio: Object) -> bool:
    """``folio_test_swapbacked()``."""
    return _flag(folio, KernelState.for_program(folio.prog_).pg_swapbacked)


def folio_test_young(folio: Object) -> bool:
    """
    ``folio_test_young()``: the ``PG_young`` page flag, which exists with
    ``CONFIG_PAGE_IDLE_FLAG`` on 64-bit kernels (false otherwise: the
    page_ext variant is not read).
    """
    return _flag(folio, KernelState.for_program(folio.prog_).pg_young)


def folio_test_hugetlb(folio: Object) -> bool:
    """``folio_test_hugetlb()``: the page type byte is ``PGTY_hugetlb``."""
    r, pi = _folio_info(folio)
    return r.hugetlb(pi)


def folio_is_zone_device(folio: Object) -> bool:
    """``folio_is_zone_device()``: the zone in the head's flags is ZONE_DEVICE."""
    r, pi = _folio_info(folio)
    return r.zone_device(pi)


def folio_nr_pages(folio: Object) -> int:
    """``folio_nr_pages()``."""
    return _folio_info(folio)[1].nr_pages


def compound_nr(page: Object) -> int:
    """``compound_nr(page)``: 1 unless *page* has PG_head; then the folio's size."""
    r = _reader(page.prog_)
    pfn = _pfn_of(page)
    pi = r.info(pfn)
    return pi.nr_pages if pi.head_pfn == pfn and pi.large else 1


def folio_ref_count(folio: Object) -> int:
    """``folio_ref_count()``: the head page's ``_refcount``."""
    return int(folio._refcount.counter.value_())


def folio_entire_mapcount(folio: Object) -> int:
    """``folio_entire_mapcount()``: ``_entire_mapcount + 1`` (large folios only)."""
    return int(folio._entire_mapcount.counter.value_()) + 1


def folio_large_mapcount(folio: Object) -> int:
    """``folio_large_mapcount()``: ``_large_mapcount + 1`` (large folios only)."""
    return int(folio._large_mapcount.counter.value_()) + 1


def folio_maybe_mapped_shared(folio: Object) -> bool:
    """``folio_maybe_mapped_shared()`` (see :meth:`PageReader.maybe_mapped_shared`)."""
    r, pi = _folio_info(folio)
    return r.maybe_mapped_shared(pi)


def precise_mapcount(folio: Object, page: Object) -> int:
    """
    ``folio_precise_page_mapcount(folio, page)`` with ``CONFIG_PAGE_MAPCOUNT``
    (Linux 7.2 ``fs/proc/internal.h``): ``page->_mapcount + 1``, or 0 when
    ``_mapcount`` holds a page type; plus ``_entire_mapcount + 1`` if the
    folio is large.

    >>> precise_mapcount(page_folio(page), page)  # doctest: +SKIP
    1
    """
    r = _reader(folio.prog_)
    pi = r.info(_pfn_of(folio))
    return r.precise_mapcount(pi, _pfn_of(page))


def pmd_table_shared(ptep: int | Object, prog: Program | None = None) -> bool:
    """
    ``hugetlb_pmd_shared(ptep)`` / ``ptdesc_pmd_is_shared()``: the
    ``pt_share_count`` of the page-table page holding the entry at kernel
    address *ptep* is non-zero (``CONFIG_HUGETLB_PMD_PAGE_TABLE_SHARING``).
    """
    if isinstance(ptep, Object):
        prog = ptep.prog_
        ptep = int(ptep.value_())
    if prog is None:
        raise TypeError("pmd_table_shared() needs a program for an integer address")
    return _reader(prog).pt_share_count(ptep) != 0


def swp_swapcount(prog: Program, type_: int, offset: int) -> int:
    """
    ``swp_swapcount(entry)`` in Linux 7.2, where the per-cluster swap table
    replaced ``swap_map``: 0 for an unused or out-of-range swap device;
    otherwise the count bits at the top of the slot's swap-table word
    (``SWP_TB_COUNT_SHIFT`` 60 and 4 bits on x86_64, see
    :func:`swap_table_layout`), or ``extend_table[slot]`` when that count is
    ``SWP_TB_COUNT_MAX``; 0 for a slot that is neither null, shadow nor
    cached folio.

    >>> swp_swapcount(prog, 0, 1)  # doctest: +SKIP
    1
    """
    return _SwapTables(prog).swapcount(type_, offset)


def shmem_mapping(mapping: Object) -> bool:
    """``shmem_mapping()``: ``mapping->a_ops == &shmem_aops``."""
    ks = KernelState.for_program(mapping.prog_)
    return ks.shmem_aops is not None and int(mapping.a_ops.value_()) == ks.shmem_aops


def shmem_partial_swap_usage(mapping: Object, start: int, end: int) -> int:
    """
    ``shmem_partial_swap_usage(mapping, start, end)``: bytes of swap held by
    value entries of ``mapping->i_pages`` at indices [start, end), a
    multi-index entry counting whole when it overlaps the range.
    """
    return _reader(mapping.prog_).shmem_partial_swap_usage(int(mapping.value_()), start, end)


def shmem_swap_usage(vma: Object, reader: PageReader | None = None) -> int:
    """
    ``shmem_swap_usage(vma)`` (Linux 7.2 ``mm/shmem.c``): 0 if the inode's
    ``info->swapped`` is 0; ``swapped << PAGE_SHIFT`` if the VMA maps the
    file whole from offset 0; otherwise the partial count over the VMA's
    file range.
    """
    prog = vma.prog_
    inode = vma.vm_file.f_inode
    info = Object(prog, "struct shmem_inode_info", address=_shmem_info_addr(inode))
    swapped = int(info.swapped.value_())
    if not swapped:
        return 0
    start, end = int(vma.vm_start.value_()), int(vma.vm_end.value_())
    pgoff = int(vma.vm_pgoff.value_())
    if not pgoff and end - start >= int(inode.i_size.value_()):
        return swapped << 12
    r = reader or _reader(prog)
    return r.shmem_partial_swap_usage(
        int(inode.i_mapping.value_()), pgoff, pgoff + ((end - start) >> 12)
    )


def _shmem_info_addr(inode: Object) -> int:
    # SHMEM_I(inode) = container_of(inode, struct shmem_inode_info, vfs_inode)
    off = offsetof(inode.prog_.type("struct shmem_inode_info"), "vfs_inode")
    return int(inode.value_()) - off


def huge_page_shift_of_vma(vma: Object) -> int:
    """
    The huge page shift of a hugetlb VMA: ``hstate_vma(vma)`` is the hstate
    of the hugetlbfs superblock of ``vma->vm_file``; its size is
    ``PAGE_SIZE << order``.
    """
    sb = vma.vm_file.f_inode.i_sb
    sbinfo = cast("struct hugetlbfs_sb_info *", sb.s_fs_info)
    return 12 + int(sbinfo.hstate.order.value_())


def vma_kernel_pagesize(vma: Object) -> int:
    """
    ``vma_kernel_pagesize(vma)``: ``vm_ops->pagesize(vma)`` if set (hugetlbfs:
    the hstate's size), else ``PAGE_SIZE``. On x86 ``vma_mmu_pagesize`` is
    the same.
    """
    prog = vma.prog_
    ops = vma.vm_ops.read_()
    if ops:
        fn = int(ops.pagesize.value_())
        if fn:
            hugetlb_fn = _symbol_address(prog, "hugetlb_vm_op_pagesize")
            if fn == hugetlb_fn:
                return 1 << huge_page_shift_of_vma(vma)
            # Other pagesize hooks (device DAX) are not modelled.
    return 4096
