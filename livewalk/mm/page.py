# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Page and folio state
--------------------

Typed drgn helpers for the ``struct page`` / ``struct folio`` state that
``/proc/PID/pagemap`` and ``/proc/PID/smaps`` read, correct on Linux 7.2, 6.12 and 6.1 and
taking every layout fact from the target's debug info: ``enum pageflags``
values, page-type numbers and ``struct page``/``struct folio`` member
offsets all come from drgn, never from constants in this file. Where the
kernels count differently (6.1 has no ``_large_mapcount``: its
``page_mapcount()`` adds ``compound_mapcount`` and honours
``PageDoubleMap``), :class:`~livewalk.kernel.KernelFeatures` chooses.

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
:func:`folio_precise_page_mapcount` and friends take and return drgn
``struct page *`` / ``struct folio *`` Objects, mirroring the kernel helpers
of the same names; ``compound_head()`` and ``compound_nr()`` are drgn's
(:mod:`drgn.helpers.linux.mm`).

>>> r = PageReader(prog)  # doctest: +SKIP
>>> r.precise_mapcount(r.info(pfn))  # doctest: +SKIP
1
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

from drgn import FaultError, Object, Program, TypeKind, cast, offsetof, sizeof
from drgn.helpers.linux.mm import compound_head, virt_to_pfn

from livewalk.arch import ULONG_MAX
from livewalk.backend.drgn import DrgnBackend
from livewalk.kernel import KernelFeatures
from livewalk.mm.vma import VMFlagBits

__all__ = (
    "KernelState",
    "MAPCOUNT_TYPE_LIMIT",
    "PAGE_MAPPING_ANON",
    "PAGE_MAPPING_KSM",
    "PageInfo",
    "PageReader",
    "folio_entire_mapcount",
    "folio_is_zone_device",
    "folio_large_mapcount",
    "folio_mapcount",
    "folio_maybe_mapped_shared",
    "folio_nr_pages",
    "folio_precise_page_mapcount",
    "folio_ref_count",
    "folio_test_anon",
    "folio_test_dirty",
    "folio_test_hugetlb",
    "folio_test_ksm",
    "folio_test_large",
    "folio_test_referenced",
    "folio_test_swapbacked",
    "folio_test_young",
    "page_anon_exclusive",
    "page_folio",
    "page_mapcount",
    "page_mapped",
    "total_mapcount",
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

#: ``page_mapcount_is_type()``: a ``_mapcount`` (signed) below this holds a
#: page type, not a count.
MAPCOUNT_TYPE_LIMIT = -((0x100 - _PGTY_MAPCOUNT_UNDERFLOW) << 24)

_VMEMMAP_BLOCK = 4096


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _enum_value(prog: Program, name: str, default: int | None = None) -> int | None:
    try:
        return int(prog[name].value_())
    except (KeyError, LookupError):
        return default


def _vmemmap_from_sections(prog: Program) -> int | None:
    """
    ``vmemmap`` (the ``struct page`` of PFN 0) as the kernel itself recorded
    it: ``sparse_init()`` stores in each present ``mem_section`` its memory
    map minus the section's first PFN, which with ``SPARSEMEM_VMEMMAP`` is
    ``vmemmap`` whatever the architecture's layout (arm64 computes it from
    ``VA_BITS_MIN`` and ``memstart_addr``, x86_64 has ``vmemmap_base``).
    ``None`` if no present section with a memory map can be read.
    """
    try:
        last_bit = int(prog["SECTION_MAP_LAST_BIT"])
        has_mem_map = 1 << int(prog["SECTION_HAS_MEM_MAP_BIT"])
        sections = prog["mem_section"]
        # SPARSEMEM_EXTREME: roots of one page each, allocated as needed
        per_root = int(prog["PAGE_SIZE"]) // sizeof(prog.type("struct mem_section"))
    except (KeyError, LookupError, ValueError):
        return None
    mask = ULONG_MAX & ~((1 << last_bit) - 1)
    try:
        for r in range(64):
            root = sections[r]
            if root.type_.kind == TypeKind.ARRAY:
                per_root = root.type_.length or 0
            elif not root:
                continue
            for i in range(per_root):
                v = int(root[i].section_mem_map)
                if v & has_mem_map:
                    return v & mask
    except FaultError:
        return None
    return None


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

    def __init__(self, prog: Program, features: KernelFeatures | None = None) -> None:
        self.prog = prog
        if features is None:
            features = DrgnBackend.for_program(prog).features
        self.features = features
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
        # Linux 6.1 has no _large_mapcount (the total is summed over the
        # pages, folio_mapcount() in 6.1 mm/util.c) and keeps the entire
        # mapcount in page[1].compound_mapcount, which struct folio calls
        # _total_mapcount.
        self.compound_mapcount = features.page_compound_mapcount
        self.off_large_mapcount: int | None = (
            offsetof(folio_t, "_large_mapcount") if features.folio_large_mapcount else None
        )
        self.off_entire_mapcount = offsetof(
            folio_t, "_total_mapcount" if self.compound_mapcount else "_entire_mapcount"
        )
        self.off_nr_pages: int | None = None
        for member in ("_nr_pages", "_folio_nr_pages"):
            if folio_t.has_member(member):
                self.off_nr_pages = offsetof(folio_t, member)
                break
        self.off_flags_1: int | None = (
            offsetof(folio_t, "_flags_1") if folio_t.has_member("_flags_1") else None
        )
        # 6.1: the second page's flags (PG_double_map) and compound_dtor
        # (HUGETLB_PAGE_DTOR marks a hugetlb folio).
        self.off_flags_second = self.page_size + self.off_flags
        self.off_compound_dtor: int | None = None
        self.hugetlb_dtor: int | None = None
        if features.hugetlb_compound_dtor and folio_t.has_member("_folio_dtor"):
            self.off_compound_dtor = offsetof(folio_t, "_folio_dtor")
            self.hugetlb_dtor = _enum_value(prog, "HUGETLB_PAGE_DTOR")
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
        self.pg_double_map: int | None = (
            self.pageflags.get("PG_double_map") if features.page_double_map else None
        )
        self.pg_anon_exclusive: int | None = self.pageflags.get("PG_anon_exclusive")
        self.pgty_hugetlb = _enum_value(prog, "PGTY_hugetlb")
        # A _mapcount below this holds a page type (page_mapcount_is_type());
        # 6.1's page_mapcount() never tests for one.
        self.mapcount_type_limit = -(1 << 32) if features.page_type_bits else MAPCOUNT_TYPE_LIMIT

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

        # vmemmap (SPARSEMEM_VMEMMAP: x86_64 and arm64 always have it), as
        # the kernel recorded it in its memory sections; else x86_64's
        # vmemmap_base, else drgn's
        vmemmap = _vmemmap_from_sections(prog)
        if vmemmap is None:
            try:
                vmemmap = int(prog["vmemmap_base"].value_())
            except KeyError:
                from drgn.helpers.linux.mm import pfn_to_page

                vmemmap = int(pfn_to_page(prog, 0).value_())
        self.vmemmap_base: int = vmemmap

        # vm_normal_page() inputs.
        self.zero_page_pfn = self._ulong("zero_page_pfn", "zero_pfn")
        self.huge_zero_pfn = self._ulong("huge_zero_pfn")
        highest = self._ulong("highest_memmap_pfn")
        self.highest_memmap_pfn: int = ULONG_MAX if highest is None else highest

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
        self.ptdesc_share_off: int | None = None
        # struct ptdesc (6.6+), else struct page itself (6.1 stable)
        for table_type in ("struct ptdesc", "struct page"):
            try:
                self.ptdesc_share_off = offsetof(prog.type(table_type), "pt_share_count")
                break
            except (LookupError, ValueError):
                continue

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
        return hz is not None and hz != ULONG_MAX and hz == (pfn & ~511)


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
    :ivar mm_ids: the folio's ``_mm_ids`` (Linux 7.x; else 0)
    :ivar second_flags: the flags of the folio's second page (large folios;
        6.1's ``PG_double_map`` is there)
    :ivar compound_dtor: ``page[1].compound_dtor`` (6.1; else -1)
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
    second_flags: int = 0
    compound_dtor: int = -1


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
        # prog.read of the vmemmap, by physical address where that is cheaper
        self._read_vmemmap = DrgnBackend.for_program(prog).vmemmap_reader

    def clear(self) -> None:
        """Drop cached memory (for re-reading a live kernel)."""
        self._blocks.clear()

    def add_block(self, addr: int, data: bytes) -> None:
        """Keep *data*, the vmemmap block at *addr* that the caller read, as if read here."""
        if len(data) == _VMEMMAP_BLOCK and not addr & (_VMEMMAP_BLOCK - 1):
            self._blocks.setdefault(addr, data)

    # -- raw struct page bytes -------------------------------------------
    def _read(self, addr: int, size: int) -> bytes:
        """*size* bytes of the vmemmap at *addr* (within one block)."""
        block = addr & ~(_VMEMMAP_BLOCK - 1)
        data = self._blocks.get(block)
        if data is None:
            try:
                data = self._read_vmemmap(block, _VMEMMAP_BLOCK)
            except FaultError:
                # A partially populated vmemmap block: read just what is asked.
                return self._read_vmemmap(addr, size)
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
        return self.folio_pfn_of(pfn, _U64.unpack_from(self.page_bytes(pfn), self.ks.off_compound)[0])

    def folio_pfn_of(self, pfn: int, info: int) -> int:
        """:meth:`page_folio_pfn` of page *pfn* whose ``compound_info`` is *info* (for a caller that has read it)."""
        ks = self.ks
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
        mm_ids = second_flags = 0
        dtor = -1
        if large:
            two = self.page_bytes(head_pfn, 2)
            entire = _S32.unpack_from(two, ks.off_entire_mapcount)[0]
            if ks.off_large_mapcount is not None:
                large_mc = _S32.unpack_from(two, ks.off_large_mapcount)[0]
            if ks.off_nr_pages is not None:
                nr_pages = _U32.unpack_from(two, ks.off_nr_pages)[0]
            elif ks.off_flags_1 is not None:
                nr_pages = 1 << (_U64.unpack_from(two, ks.off_flags_1)[0] & 0xFF)
            if ks.off_mm_ids is not None:
                mm_ids = _U64.unpack_from(two, ks.off_mm_ids)[0]
            second_flags = _U64.unpack_from(two, ks.off_flags_second)[0]
            if ks.off_compound_dtor is not None:
                dtor = two[ks.off_compound_dtor]
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
            second_flags=second_flags,
            compound_dtor=dtor,
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
        """
        ``folio_test_hugetlb()``: the head's page type is ``PGTY_hugetlb``;
        on 6.1 (``PageHuge()``, ``mm/hugetlb.c``) the second page's
        ``compound_dtor`` is ``HUGETLB_PAGE_DTOR``.
        """
        ks = self.ks
        if ks.hugetlb_dtor is not None:
            return pi.large and pi.compound_dtor == ks.hugetlb_dtor
        t = ks.pgty_hugetlb
        return t is not None and pi.large and (pi.head_page_type >> 24) == t

    def double_map(self, pi: PageInfo) -> bool:
        """``PageDoubleMap(head)`` (6.1): ``PG_double_map`` on the second page."""
        bit = self.ks.pg_double_map
        return bit is not None and pi.large and bool(pi.second_flags >> bit & 1)

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
        return self.precise_mapcount_of(pi, raw)

    def precise_mapcount_of(self, pi: PageInfo, raw: int) -> int:
        """
        :meth:`precise_mapcount` of the page of *pi*'s folio whose
        ``_mapcount`` (signed) is *raw*: for a caller that has read it.
        """
        if self.ks.compound_mapcount:
            return self.page_mapcount_6_1(pi, raw)
        mc = raw + 1
        if _s32(mc - 1) < _s32(_PGTY_MAPCOUNT_UNDERFLOW << 24):
            mc = 0
        if pi.large:
            mc += pi.entire_mapcount_raw + 1
        return mc

    def page_mapcount_6_1(self, pi: PageInfo, raw: int) -> int:
        """
        ``page_mapcount(page)`` of Linux 6.1 (``include/linux/mm.h``,
        ``__page_mapcount()`` in ``mm/util.c``) for a page of *pi*'s folio
        whose ``_mapcount`` is *raw*: ``_mapcount + 1``; for a page of a
        large anon or hugetlb folio plus the entire mapcount, less one when
        the folio is ``PageDoubleMap`` (a file THP's ``_mapcount`` already
        counts its PMD mappings). No page-type test: 6.1 leaves the result
        undefined for typed pages.
        """
        mc = raw + 1
        if not pi.large or not (self.anon(pi) or self.hugetlb(pi)):
            return mc
        mc += pi.entire_mapcount_raw + 1
        if self.double_map(pi):
            mc -= 1
        return mc

    def folio_mapcount(self, pi: PageInfo) -> int:
        """
        ``folio_mapcount()``: ``_large_mapcount + 1``; on 6.1 (no such
        field, ``mm/util.c``) the entire mapcount (hugetlb), else the entire
        mapcount plus each page's ``_mapcount + 1``, less the entire
        mapcount per page for a file folio and less one per page when
        ``PageDoubleMap``.
        """
        ks = self.ks
        if not pi.large:
            # A small folio is its own (only) page.
            raw = pi.mapcount_raw if pi.head_pfn == pi.pfn else self.mapcount_raw(pi.head_pfn)
            if ks.compound_mapcount:
                return raw + 1
            return 0 if _s32(raw) < _s32(_PGTY_MAPCOUNT_UNDERFLOW << 24) else raw + 1
        if not ks.compound_mapcount:
            return pi.large_mapcount_raw + 1
        entire = pi.entire_mapcount_raw + 1
        if self.hugetlb(pi):
            return entire
        nr = pi.nr_pages
        raw_pages = self.page_bytes(pi.head_pfn, nr)
        total = entire + sum(
            _S32.unpack_from(raw_pages, i * ks.page_size + ks.off_mapcount)[0] + 1 for i in range(nr)
        )
        if not self.anon(pi):
            return total - entire * nr
        if self.double_map(pi):
            total -= nr
        return total

    def maybe_mapped_shared(self, pi: PageInfo) -> bool:
        """
        ``folio_maybe_mapped_shared()`` (``CONFIG_MM_ID``): for small and
        hugetlb folios ``folio_mapcount() > 1``; for other large folios the
        ``FOLIO_MM_IDS_SHARED`` bit (the top bit of ``_mm_ids``).
        """
        mc = self.folio_mapcount(pi)
        if not pi.large or self.hugetlb(pi) or self.ks.compound_mapcount:
            # 6.1 has no such helper: the mapcount test it would be
            return mc > 1
        if mc <= 1:
            return False
        return bool(pi.mm_ids >> self.ks.mm_ids_shared_bit & 1)

    # -- vm_normal_page ----------------------------------------------------
    def normal_pfn(
        self,
        pfn: int,
        special: bool,
        vm_flags: int,
        vm_start: int,
        vm_pgoff: int,
        addr: int,
        bits: VMFlagBits,
    ) -> bool:
        """
        ``__vm_normal_page()`` on x86_64 and arm64 (Linux 7.2 ``mm/memory.c``; the
        ``find_normal_page`` hook, used only by Xen, is not modelled): is
        the mapping of *pfn* "normal" (has a struct page to account)?

        :param special: ``pte_special()`` of the entry
        :param bits: the target's VM flag bits
        """
        ks = self.ks
        if special:
            return False
        if vm_flags & (bits.VM_PFNMAP | bits.VM_MIXEDMAP):
            if vm_flags & bits.VM_MIXEDMAP:
                if pfn > ks.highest_memmap_pfn:  # approximates !pfn_valid
                    return False
            else:
                if pfn == vm_pgoff + ((addr - vm_start) >> int(ks.prog["PAGE_SHIFT"].value_())):
                    return False
                cow = bits.VM_SHARED | bits.VM_MAYWRITE
                if vm_flags & cow != bits.VM_MAYWRITE:  # !is_cow_mapping
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
        pfn = int(virt_to_pfn(self.prog, table_kaddr).value_())
        return _S32.unpack_from(self.page_bytes(pfn), ks.ptdesc_share_off)[0]


# ---------------------------------------------------------------------------
# Object-level helpers (mirror the kernel's names)
# ---------------------------------------------------------------------------
def _reader(prog: Program) -> PageReader:
    """A PageReader without block caching, for one-off Object queries."""
    r = PageReader(prog)
    r._blocks = _NoCache()
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


def folio_ref_count(folio: Object) -> int:
    """``folio_ref_count()``: the head page's ``_refcount``."""
    return int(folio._refcount.counter.value_())


def folio_entire_mapcount(folio: Object) -> int:
    """
    ``folio_entire_mapcount()``: ``_entire_mapcount + 1`` (large folios
    only); on 6.1 the same count is ``_total_mapcount`` (``page[1]
    .compound_mapcount``).
    """
    try:
        count = folio._entire_mapcount
    except AttributeError:
        count = folio._total_mapcount
    return int(count.counter.value_()) + 1


def folio_mapcount(folio: Object) -> int:
    """``folio_mapcount()`` (see :meth:`PageReader.folio_mapcount`); 6.1's ``total_mapcount(&folio->page)``."""
    r, pi = _folio_info(folio)
    return r.folio_mapcount(pi)


def page_mapcount(page: Object) -> int:
    """
    ``page_mapcount(page)`` of Linux 6.1 (:meth:`PageReader.page_mapcount_6_1`);
    on later kernels, which dropped it, ``folio_precise_page_mapcount()``.

    >>> page_mapcount(pfn_to_page(prog, pfn))  # doctest: +SKIP
    1
    """
    r = _reader(page.prog_)
    pfn = _pfn_of(page)
    return r.precise_mapcount(r.info(pfn), pfn)


def total_mapcount(page: Object) -> int:
    """``total_mapcount(page)`` (6.1): ``folio_mapcount(page_folio(page))``."""
    return folio_mapcount(page_folio(page))


def page_mapped(page: Object) -> bool:
    """``page_mapped(page)`` (6.1 ``folio_mapped(page_folio(page))``): some page of the folio is mapped."""
    r = _reader(page.prog_)
    pi = r.info(_pfn_of(page))
    if not pi.large:
        return pi.mapcount_raw >= 0
    if pi.entire_mapcount_raw >= 0:
        return True
    if r.ks.compound_mapcount:
        # 6.1 folio_mapped() (mm/util.c): the entire mapcount, then (not
        # for hugetlb) any page's own
        if r.hugetlb(pi):
            return False
        return any(r.mapcount_raw(pi.head_pfn + i) >= 0 for i in range(pi.nr_pages))
    return pi.large_mapcount_raw >= 0


def page_anon_exclusive(page: Object) -> bool:
    """
    ``PageAnonExclusive(page)``: ``PG_anon_exclusive`` (= ``PG_mappedtodisk``)
    on the page itself (a hugetlb folio keeps it on its head page).
    """
    ks = KernelState.for_program(page.prog_)
    bit = ks.pg_anon_exclusive
    if bit is None:
        bit = ks.pageflags.get("PG_mappedtodisk")
    return _flag(page, bit)


def folio_large_mapcount(folio: Object) -> int:
    """``folio_large_mapcount()``: ``_large_mapcount + 1`` (large folios only)."""
    return int(folio._large_mapcount.counter.value_()) + 1


def folio_maybe_mapped_shared(folio: Object) -> bool:
    """``folio_maybe_mapped_shared()`` (see :meth:`PageReader.maybe_mapped_shared`)."""
    r, pi = _folio_info(folio)
    return r.maybe_mapped_shared(pi)


def folio_precise_page_mapcount(folio: Object, page: Object) -> int:
    """
    ``folio_precise_page_mapcount(folio, page)`` with ``CONFIG_PAGE_MAPCOUNT``
    (Linux 7.2 ``fs/proc/internal.h``): ``page->_mapcount + 1``, or 0 when
    ``_mapcount`` holds a page type; plus ``_entire_mapcount + 1`` if the
    folio is large.

    >>> folio_precise_page_mapcount(page_folio(page), page)  # doctest: +SKIP
    1
    """
    r = _reader(folio.prog_)
    pi = r.info(_pfn_of(folio))
    return r.precise_mapcount(pi, _pfn_of(page))
