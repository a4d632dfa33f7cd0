# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Synthetic page tables
---------------------

An in-memory :class:`~livewalk.backend.PageTableBackend` for tests and
examples: page-table pages live at synthetic physical addresses, are built
with a small builder (:class:`SyntheticMM`) and are returned whole by
:meth:`SyntheticBackend.read_table`, like a real backend would.

>>> mm = SyntheticMM(levels=4)
>>> vma = mm.add_vma(0x7F0000000000, 0x7F0000400000)
>>> mm.map_4k(0x7F0000001000, pfn=0x1234)
>>> mm.map_2m(0x7F0000200000, pfn=0x40000)
>>> hex(mm.lookup(PageTableLevel.PTE, 0x7F0000001000))
'0x8000000001234067'

The builder writes entries through the backend's architecture
(:class:`EntryBits`), so the same calls build arm64 tables:

>>> from livewalk.arch.arm64.pgtable import Arm64Paging
>>> mm = SyntheticMM(paging=Arm64Paging(phys_offset=0))
>>> mm.map_4k(0x7F0000001000, pfn=0x1234)
>>> hex(mm.lookup(PageTableLevel.PTE, 0x7F0000001000))
'0xe8000001234c43'
"""

from __future__ import annotations

import bisect
import dataclasses
from array import array
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from livewalk.arch import ULONG_MAX, ArchPaging, PageTableLevel
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.arm64.pgtable_hwdef import PMD_TYPE_MASK, PMD_TYPE_SECT, PTE_VALID
from livewalk.arch.x86.pgtable import X86Paging
from livewalk.arch.x86.pgtable_types import (
    _PAGE_ACCESSED,
    _PAGE_DIRTY,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_PSE,
    _PAGE_RW,
    _PAGE_SPECIAL,
    _PAGE_USER,
)
from livewalk.backend import TableReadError
from livewalk.kernel import DEFAULT_VERSION, KernelFeatures
from livewalk.mm.swapops import PTE_MARKER_GUARD
from livewalk.mm.vma import (
    VM_HUGETLB,
    VM_PFNMAP,
    VM_READ,
    VM_SHARED,
    VM_WRITE,
    VMA,
    VMFlagBits,
)

__all__ = (
    "DEFAULT_PTE_FLAGS",
    "EntryBits",
    "SyntheticBackend",
    "SyntheticMM",
    "SyntheticMapping",
    "SyntheticVMA",
)

#: Present, writable, user, accessed, dirty, NX: a typical anonymous 4 KiB page.
DEFAULT_PTE_FLAGS = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_NX

_PTE = PageTableLevel.PTE


@dataclasses.dataclass(frozen=True)
class EntryBits:
    """
    What the builder needs from an architecture beyond
    :class:`~livewalk.arch.ArchPaging`'s constructors: the flags of typical
    user entries and how a PMD or PUD leaf is told from a table.

    :ivar default: a present, writable, accessed, dirty, non-executable
        anonymous page
    :ivar zero: the shared zero page (special, read-only)
    :ivar protnone: a PROT_NONE page (``PAGE_NONE`` of a once-dirty page)
    :ivar huge: ``p?d_mkhuge()``: a PTE's flags made a PMD/PUD leaf
    """

    default: int
    zero: int
    protnone: int
    huge: Callable[[int], int]

    @classmethod
    def for_paging(cls, paging: ArchPaging) -> EntryBits:
        """The bits of *paging*'s architecture."""
        if isinstance(paging, Arm64Paging):
            # do_anonymous_page(): pte_mkwrite(pte_mkdirty(vm_page_prot))
            prot = paging.vm_get_page_prot(VM_READ | VM_WRITE)
            return cls(
                default=paging.pte_mkwrite(paging.pte_mkdirty(prot)),
                zero=paging.pte_mkspecial(prot),
                protnone=paging.pte_mkdirty(paging.vm_get_page_prot(0)),
                # pmd_mkhuge(): block type, VALID (or its absence) kept
                huge=lambda v: (v & ~(PMD_TYPE_MASK & ~PTE_VALID)) | (PMD_TYPE_SECT & ~PTE_VALID),
            )
        return cls(
            default=DEFAULT_PTE_FLAGS,
            zero=_PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX | _PAGE_SPECIAL,
            protnone=_PAGE_PROTNONE | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY,
            huge=lambda v: v | _PAGE_PSE,
        )


class SyntheticVMA:
    """
    The synthetic ``struct vm_area_struct`` (what ``walk.vma`` is).

    :ivar mm: its :class:`SyntheticMM`
    :ivar snapshot: its :class:`~livewalk.mm.vma.VMA`
    """

    def __init__(self, mm: SyntheticMM) -> None:
        self.mm = mm
        self.livewalk_backend = mm.livewalk_backend
        self.snapshot: VMA

    def __repr__(self) -> str:
        s = self.snapshot
        return f"SyntheticVMA({s.vm_start:#x}-{s.vm_end:#x}, flags={s.vm_flags:#x})"


class SyntheticMapping:
    """A synthetic ``struct address_space``: the VMAs that map it, in i_mmap order."""

    def __init__(self, backend: SyntheticBackend) -> None:
        self.livewalk_backend = backend
        self.vmas: list[VMA] = []


class SyntheticBackend:
    """
    In-memory page tables at synthetic physical addresses: a
    :class:`~livewalk.backend.PageTableBackend` with no drgn program
    (``prog``, ``pfn_to_page`` and ``page_folio`` are ``None``).

    :param paging: the paging parameters, any architecture's (default:
        x86_64 with *levels*-level paging)
    :param levels: 4 or 5
    :param zero_pfn: PFN of the shared zero page
    :param huge_zero_pfn: PFN of the huge zero folio (``None``: not allocated)
    :param version: the kernel version whose features
        (:class:`~livewalk.kernel.KernelFeatures.for_version`) the backend
        reports: ``(6, 1)``, ``(6, 12)``, ``(7, 2)`` (Debian's builds) or
        ``(major, minor, sublevel)`` for a stable release
    :ivar reads: number of :meth:`read_table` calls
    :ivar unreadable: physical addresses whose read raises ``TableReadError``
    :ivar highest_memmap_pfn: no normal page lies above (``None``: no limit)
    :ivar zero_pfn: PFN of the shared zero page
    :ivar huge_zero_pfn: PFN of the huge zero folio (``None``: not allocated)
    :ivar copy_tables: :meth:`read_table` returns a copy, as a real backend
        does, instead of the live table (needed to see changes made while a
        walk runs, see :meth:`inject_after_read`)
    """

    TABLE_BASE = 0x1000000

    #: No drgn program: no ``struct page`` and no folios either.
    prog = None
    pfn_to_page: Callable[[int], Any] | None = None
    page_folio: Callable[[int], Any] | None = None

    def __init__(
        self,
        paging: ArchPaging | None = None,
        *,
        levels: int = 5,
        zero_pfn: int = 0x2A00,
        huge_zero_pfn: int | None = 0x2C00,
        version: tuple[int, ...] = DEFAULT_VERSION,
        copy_tables: bool = False,
    ) -> None:
        self.paging: ArchPaging = paging if paging is not None else X86Paging(levels=levels)
        self.bits = EntryBits.for_paging(self.paging)
        self.features = KernelFeatures.for_version(version)
        self.vm_flag_bits = VMFlagBits()
        self._mem: dict[int, array[int]] = {}
        self._next = self.TABLE_BASE
        self.reads = 0
        self.copy_tables = copy_tables
        self.unreadable: set[int] = set()
        self.zero_pfn: int = zero_pfn
        self.huge_zero_pfn: int | None = huge_zero_pfn
        self.highest_memmap_pfn: int | None = None
        self._after_read: dict[int, list[Callable[[], None]]] = {}
        self._init_mm = SyntheticMM(backend=self, kernel=True)

    def alloc_table(self) -> int:
        """A new zeroed page-table page; returns its physical address."""
        size = self.paging.page_size
        paddr = self._next
        self._next += size
        self._mem[paddr] = array("Q", bytes(size))
        return paddr

    # -- PageTableBackend ----------------------------------------------------

    def read_table(self, paddr: int) -> Sequence[int]:
        self.reads += 1
        t = self._mem.get(paddr)
        if t is None or paddr in self.unreadable:
            raise TableReadError(paddr)
        if not self.copy_tables:
            return t
        copy = array("Q", t)
        for change in self._after_read.pop(paddr, ()):
            change()
        return copy

    def inject_after_read(self, paddr: int, change: Callable[[], None]) -> None:
        """
        Test hook: run *change* once, right after the next read of the
        table at *paddr* (the reader already holds its copy): a change
        "the kernel" makes while a walk runs. Needs :attr:`copy_tables`.
        """
        if not self.copy_tables:
            raise ValueError("inject_after_read needs a backend made with copy_tables=True")
        self._after_read.setdefault(paddr, []).append(change)

    def mm_pgd(self, mm: SyntheticMM) -> int:
        return self.paging.va(mm.pgd_paddr)

    def pgd_phys(self, pgd: int) -> int:
        return self.paging.pa(pgd)

    def find_vma(self, mm: SyntheticMM, addr: int) -> VMA | None:
        i = bisect.bisect_right(mm._ends, addr)
        return mm._vmas[i] if i < len(mm._vmas) else None

    def vmas(self, mm: SyntheticMM) -> list[VMA]:
        return list(mm._vmas)

    def vma_snapshot(self, vma: SyntheticVMA) -> VMA:
        if not isinstance(vma, SyntheticVMA):
            raise TypeError(f"cannot use {type(vma).__name__!r} as a synthetic VMA")
        return vma.snapshot

    def mapping_vmas(self, mapping: SyntheticMapping, first_index: int, last_index: int) -> Iterable[VMA]:
        for vma in mapping.vmas:
            last = vma.vm_pgoff + ((vma.vm_end - vma.vm_start) >> self.paging.page_shift) - 1
            if vma.vm_pgoff <= last_index and last >= first_index:
                yield vma

    def vma_mm(self, vma: VMA) -> SyntheticMM | None:
        obj = vma.obj
        return obj.mm if isinstance(obj, SyntheticVMA) else None

    def is_init_mm(self, mm: Any) -> bool:
        return mm is self._init_mm

    def init_mm(self) -> SyntheticMM:
        return self._init_mm

    def entry_object(self, level: int, kaddr: int) -> None:
        return None

    def mm_task_size(self, mm: SyntheticMM) -> int:
        return int(self.paging.task_size_max)

    def mm_stamp(self, mm: SyntheticMM) -> tuple[int, ...]:
        """``(mm_lock_seq, map_count)``: the builder bumps the count by 2 per VMA change."""
        return (mm.mm_lock_seq, len(mm._vmas))

    def call_scope(self) -> AbstractContextManager[None]:
        """Nothing to share between a call's reads: a scope that does nothing."""
        return nullcontext()

    # -- helpers ----------------------------------------------------------------

    def new_mm(self) -> SyntheticMM:
        """A new, empty user mm on this backend."""
        return SyntheticMM(backend=self)

    def new_mapping(self) -> SyntheticMapping:
        """A new synthetic ``address_space``."""
        return SyntheticMapping(self)


class SyntheticMM:
    """
    A synthetic ``mm_struct`` with a builder for its page tables and VMAs.

    :param levels: 4 or 5 (ignored when *backend* or *paging* is given)
    :param backend: share an existing :class:`SyntheticBackend`
    :param paging: a new backend's paging (any architecture)
    :param version: the kernel version of a new backend (see
        :class:`SyntheticBackend`; ignored when *backend* is given)

    >>> SyntheticMM(version=(6, 1)).backend.features.walk_page_vma_tests
    True
    """

    def __init__(
        self,
        levels: int = 5,
        *,
        backend: SyntheticBackend | None = None,
        kernel: bool = False,
        paging: ArchPaging | None = None,
        version: tuple[int, ...] = DEFAULT_VERSION,
    ) -> None:
        if backend is None:
            backend = SyntheticBackend(paging, levels=levels, version=version)
        self.livewalk_backend = backend
        self.paging = backend.paging
        self.kernel = kernel
        self.pgd_paddr = backend.alloc_table()
        self._vmas: list[VMA] = []
        self._ends: list[int] = []
        #: ``mm->mm_lock_seq``: +2 for every VMA change (a write lock taken
        #: and released); set it odd to play a writer holding the lock
        self.mm_lock_seq = 0

    def __repr__(self) -> str:
        return f"SyntheticMM(pgd={self.pgd_paddr:#x}{', kernel' if self.kernel else ''})"

    @property
    def backend(self) -> SyntheticBackend:
        return self.livewalk_backend

    @property
    def pgd(self) -> int:
        """``mm->pgd``: kernel virtual address of the top-level table."""
        return self.paging.va(self.pgd_paddr)

    # -- VMAs -------------------------------------------------------------------

    def add_vma(
        self,
        start: int,
        end: int,
        flags: int = VM_READ | VM_WRITE,
        *,
        pgoff: int | None = None,
        hugetlb_shift: int = 0,
        pfnmap: bool = False,
        anonymous: bool | None = None,
        mapping: SyntheticMapping | None = None,
    ) -> VMA:
        """
        Add a VMA [*start*, *end*) (page aligned, not overlapping others).
        ``pfnmap`` sets ``VM_PFNMAP``, ``hugetlb_shift`` (the huge page's:
        21 or 30 on x86; arm64 has contiguous sizes too) makes a hugetlb VMA.
        ``anonymous`` defaults to true for private VMAs that are neither
        hugetlb, PFN maps nor part of a *mapping*.
        """
        page_size = self.paging.page_size
        if start >= end or start % page_size or end % page_size:
            raise ValueError(f"bad VMA range {start:#x}-{end:#x}")
        for v in self._vmas:
            if start < v.vm_end and v.vm_start < end:
                raise ValueError(f"VMA {start:#x}-{end:#x} overlaps {v.vm_start:#x}-{v.vm_end:#x}")
        if pfnmap:
            flags |= VM_PFNMAP
        if hugetlb_shift:
            flags |= VM_HUGETLB
        if anonymous is None:
            anonymous = not (flags & VM_SHARED or pfnmap or hugetlb_shift or mapping is not None)
        obj = SyntheticVMA(self)
        info = VMA(
            vm_start=start,
            vm_end=end,
            vm_flags=flags,
            vm_pgoff=start >> self.paging.page_shift if pgoff is None else pgoff,
            hugetlb_shift=hugetlb_shift,
            pfnmap=bool(flags & VM_PFNMAP),
            obj=obj,
            anonymous=anonymous,
        )
        obj.snapshot = info
        self._vmas.append(info)
        self._vmas.sort(key=lambda v: v.vm_start)
        self._ends = [v.vm_end for v in self._vmas]
        self.mm_lock_seq += 2
        if mapping is not None:
            mapping.vmas.append(info)
        return info

    def remove_vma(self, vma: VMA) -> None:
        """Remove *vma* from the VMA tree (its page tables stay as they are)."""
        self._vmas.remove(vma)
        self._ends = [v.vm_end for v in self._vmas]
        self.mm_lock_seq += 2

    @property
    def vmas(self) -> list[VMA]:
        return list(self._vmas)

    # -- page tables --------------------------------------------------------------

    def _index(self, level: int, addr: int) -> int:
        lvl = PageTableLevel(level)
        return (addr >> self.paging.level_shift(lvl)) & (self.paging.ptrs_per(lvl) - 1)

    def _levels(self) -> list[PageTableLevel]:
        """
        The levels that have tables of their own, top down: not the folded
        ones, and not the PGD when a level below was folded at boot into its
        page (arm64 ``pgd_to_folded_p4d()``): that level's table is the top page.
        """
        p = self.paging
        levels = [lvl for lvl in reversed(PageTableLevel) if not p.folded(lvl)]
        if any(p.folded_at_boot(lvl) for lvl in levels):
            levels.remove(PageTableLevel.PGD)
        return levels

    def _real(self, level: int) -> int:
        """A folded level's slot is its parent's (P4D into PGD, as ``p4d_offset()``)."""
        while level != PageTableLevel.PGD and self.paging.folded(PageTableLevel(level)):
            level += 1
        return level

    def _table_below(self, lvl: PageTableLevel, v: int) -> bool:
        """
        The *lvl* entry *v* points to a table (present and not a leaf). A
        slot that folded levels share is judged by the lowest of them, as the
        walker does (a PGD slot of a 3-level kernel is a PUD entry).
        """
        p = self.paging
        while lvl > PageTableLevel.PMD and p.folded(PageTableLevel(lvl - 1)):
            lvl = PageTableLevel(lvl - 1)
        if lvl == PageTableLevel.PMD:
            return p.pmd_present(v) and not p.pmd_leaf(v)
        if lvl == PageTableLevel.PUD:
            return p.pud_present(v) and not p.pud_leaf(v)
        if not v:
            return False
        # PGD and P4D entries are never leaves
        if lvl == PageTableLevel.P4D:
            return p.p4d_present(v) and not p.p4d_bad(v)
        return p.pgd_present(v) and not p.pgd_bad(v)

    def _mk_table(self, lvl: PageTableLevel, child: int) -> int:
        """What ``p?d_populate()`` stores in a *lvl* slot for the table at *child*."""
        p = self.paging
        return p.mk_table_entry(lvl) | p.pfn_pte(child >> p.page_shift, 0)

    def table_paddr(self, level: int, addr: int, *, create: bool = False) -> int | None:
        """
        Physical address of the table that holds the *level* entry for
        *addr* (with 4-level paging, P4D means the PGD table); creates the
        missing tables on the way when *create*.
        """
        b = self.livewalk_backend
        level = self._real(level)
        paddr = self.pgd_paddr
        if level == PageTableLevel.PGD:
            return paddr
        for lvl in self._levels():
            if lvl == level:
                return paddr
            t = b._mem[paddr]
            i = self._index(lvl, addr)
            v = t[i]
            if not self._table_below(lvl, v):
                if not create:
                    return None
                if v:
                    raise ValueError(f"{lvl.name} entry for {addr:#x} is {v:#x}, not a table")
                child = b.alloc_table()
                t[i] = self._mk_table(lvl, child)
                paddr = child
            else:
                paddr = self.paging.table_paddr(v)
        raise AssertionError(level)

    def kaddr_of(self, level: int, addr: int) -> int | None:
        """Kernel virtual address of the *level* slot for *addr* (None if no table)."""
        p = self.table_paddr(level, addr)
        if p is None:
            return None
        return self.paging.va(p) + 8 * self._index(level, addr)

    def set_entry(self, level: int, addr: int, value: int) -> None:
        """Write a raw entry at *level* for *addr*, creating tables above it."""
        level = self._real(level)
        p = self.table_paddr(level, addr, create=True)
        assert p is not None
        self.livewalk_backend._mem[p][self._index(level, addr)] = value & ULONG_MAX

    def lookup(self, level: int, addr: int) -> int | None:
        """The raw *level* entry for *addr*, or None if its table does not exist."""
        level = self._real(level)
        p = self.table_paddr(level, addr)
        if p is None:
            return None
        return self.livewalk_backend._mem[p][self._index(level, addr)]

    def set_pte(self, addr: int, value: int) -> None:
        self.set_entry(PageTableLevel.PTE, addr, value)

    def set_pmd(self, addr: int, value: int) -> None:
        self.set_entry(PageTableLevel.PMD, addr, value)

    def set_pud(self, addr: int, value: int) -> None:
        self.set_entry(PageTableLevel.PUD, addr, value)

    def set_p4d(self, addr: int, value: int) -> None:
        self.set_entry(PageTableLevel.P4D, addr, value)

    def set_pgd(self, addr: int, value: int) -> None:
        self.set_entry(PageTableLevel.PGD, addr, value)

    @property
    def default_flags(self) -> int:
        """:attr:`EntryBits.default` of this mm's architecture."""
        return self.livewalk_backend.bits.default

    def map_page(self, addr: int, pfn: int, flags: int | None = None) -> None:
        """Map one base page (``PAGE_SIZE``) with *flags* (default: :attr:`default_flags`)."""
        self.set_pte(addr, self.paging.pfn_pte(pfn, self.default_flags if flags is None else flags))

    #: :meth:`map_page` by its name from the 4K granule.
    map_4k = map_page

    def map_range_4k(self, start: int, end: int, pfn: int, flags: int | None = None) -> None:
        """Map [start, end) with base pages, consecutive PFNs from *pfn*."""
        for n, addr in enumerate(range(start, end, self.paging.page_size)):
            self.map_page(addr, pfn + n, flags)

    def fill_pte_table(self, addr: int, values: Sequence[int]) -> None:
        """Set all the PTEs of the PTE table covering *addr* at once."""
        pmd_mask = (1 << self.paging.level_shift(PageTableLevel.PMD)) - 1
        self.set_entry(PageTableLevel.PTE, addr & ~pmd_mask, 0)
        p = self.table_paddr(PageTableLevel.PTE, addr)
        assert p is not None
        self.livewalk_backend._mem[p] = array("Q", values)

    def map_pmd(self, addr: int, pfn: int, flags: int | None = None) -> None:
        """
        Map a PMD leaf (``PMD_SIZE``: 2 MiB with 4K pages, 32 MiB with 16K,
        512 MiB with 64K; a PSE PMD or a block descriptor): THP or hugetlb.
        """
        bits = self.livewalk_backend.bits
        self.set_pmd(addr, self.paging.pfn_pte(pfn, bits.huge(bits.default if flags is None else flags)))

    def map_pud(self, addr: int, pfn: int, flags: int | None = None) -> None:
        """Map a PUD leaf (``PUD_SIZE``: 1 GiB with 4K pages)."""
        bits = self.livewalk_backend.bits
        self.set_pud(addr, self.paging.pfn_pte(pfn, bits.huge(bits.default if flags is None else flags)))

    #: :meth:`map_pmd` and :meth:`map_pud` by their names from the 4K granule.
    map_2m = map_pmd
    map_1g = map_pud

    def map_huge_zero(self, addr: int, *, uffd_wp: bool = False) -> None:
        """Map the huge zero page at *addr* (special, read-only PMD leaf)."""
        hz = self.livewalk_backend.huge_zero_pfn
        flags = self.livewalk_backend.bits.zero
        if uffd_wp:
            flags = self.paging.pte_mkuffd_wp(flags)
        self.map_pmd(addr, hz if hz is not None else 0, flags)

    def map_zero(self, addr: int) -> None:
        """Map the shared zero page at *addr* (special, read-only)."""
        self.map_page(addr, self.livewalk_backend.zero_pfn, self.livewalk_backend.bits.zero)

    def map_protnone(self, addr: int, pfn: int, level: int = PageTableLevel.PTE) -> None:
        """A PROT_NONE / NUMA-hint entry (x86: PFN stored inverted; arm64: present-invalid)."""
        bits = self.livewalk_backend.bits
        flags = bits.protnone
        if level == PageTableLevel.PMD:
            flags = bits.huge(flags)
        self.set_entry(level, addr, self.paging.pfn_pte(pfn, flags))

    def _swap_type(self, name: str) -> int:
        t = dataclasses.asdict(self.paging.swap_types).get(name)
        if t is None:
            raise ValueError(f"no {name} swap type in this configuration")
        return int(t)

    def map_swap(self, addr: int, type: int, offset: int, level: int = PageTableLevel.PTE, **kw: bool) -> None:
        """A swap entry (keywords: ``soft_dirty``, ``uffd_wp``, ``exclusive``)."""
        self.set_entry(level, addr, self.paging.swp_entry_to_pte(type, offset, **kw))

    def map_migration(
        self,
        addr: int,
        pfn: int,
        *,
        write: bool = False,
        exclusive: bool = False,
        level: int = PageTableLevel.PTE,
        **kw: bool,
    ) -> None:
        """A migration entry (read, read-exclusive or write) for *pfn*."""
        name = "migration_write" if write else "migration_read_exclusive" if exclusive else "migration_read"
        self.set_entry(level, addr, self.paging.swp_entry_to_pte(self._swap_type(name), pfn, **kw))

    def map_device(self, addr: int, pfn: int, *, kind: str = "device_write", level: int = PageTableLevel.PTE) -> None:
        """A device-private (``device_write``/``device_read``) or ``device_exclusive`` entry."""
        self.set_entry(level, addr, self.paging.swp_entry_to_pte(self._swap_type(kind), pfn))

    def map_hwpoison(self, addr: int, pfn: int) -> None:
        """A hwpoison entry for *pfn*."""
        self.set_pte(addr, self.paging.swp_entry_to_pte(self._swap_type("hwpoison"), pfn))

    def map_marker(self, addr: int, bits: int = PTE_MARKER_GUARD) -> None:
        """A PTE marker (guard, uffd-wp, poisoned bits)."""
        self.set_pte(addr, self.paging.swp_entry_to_pte(self._swap_type("pte_marker"), bits))

    def make_unreadable(self, level: int, addr: int) -> int:
        """Make the table holding the *level* entry for *addr* unreadable; returns its paddr."""
        p = self.table_paddr(level, addr)
        if p is None:
            raise ValueError(f"no {PageTableLevel(level).name} table for {addr:#x}")
        self.livewalk_backend.unreadable.add(p)
        return p

