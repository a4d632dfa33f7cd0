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
"""

from __future__ import annotations

import bisect
import dataclasses
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from livewalk.arch import ULONG_MAX, PageTableLevel
from livewalk.arch.x86.pgtable import X86Paging, mk_pte
from livewalk.arch.x86.pgtable_64 import swp_entry_to_pte
from livewalk.arch.x86.pgtable_types import (
    _PAGE_ACCESSED,
    _PAGE_DIRTY,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_PSE,
    _PAGE_RW,
    _PAGE_SPECIAL,
    _PAGE_TABLE,
    _PAGE_USER,
    P4D_SHIFT,
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_SHIFT,
    PUD_SHIFT,
)
from livewalk.backend import TableReadError
from livewalk.kernel import DEFAULT_VERSION, KernelFeatures
from livewalk.mm.swapops import PTE_MARKER_GUARD

# VM_* are re-exported: tests import them from here.
from livewalk.mm.vma import (
    VM_EXEC,
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
    "SyntheticBackend",
    "SyntheticMM",
    "SyntheticMapping",
    "SyntheticVMA",
    "VM_EXEC",
    "VM_HUGETLB",
    "VM_READ",
    "VM_SHARED",
    "VM_WRITE",
)

#: Present, writable, user, accessed, dirty, NX: a typical anonymous 4 KiB page.
DEFAULT_PTE_FLAGS = _PAGE_PRESENT | _PAGE_RW | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY | _PAGE_NX

_SHIFTS = {
    PageTableLevel.PTE: PAGE_SHIFT,
    PageTableLevel.PMD: PMD_SHIFT,
    PageTableLevel.PUD: PUD_SHIFT,
    PageTableLevel.P4D: P4D_SHIFT,
}


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

    :param paging: the paging parameters (default: *levels*-level paging)
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
        paging: X86Paging | None = None,
        *,
        levels: int = 5,
        zero_pfn: int = 0x2A00,
        huge_zero_pfn: int | None = 0x2C00,
        version: tuple[int, ...] = DEFAULT_VERSION,
        copy_tables: bool = False,
    ) -> None:
        self.paging = paging if paging is not None else X86Paging(levels=levels)
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
        paddr = self._next
        self._next += PAGE_SIZE
        self._mem[paddr] = array("Q", bytes(PAGE_SIZE))
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
        return (pgd - self.paging.page_offset) & ULONG_MAX

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
            last = vma.vm_pgoff + ((vma.vm_end - vma.vm_start) >> PAGE_SHIFT) - 1
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

    :param levels: 4 or 5 (ignored when *backend* is given)
    :param backend: share an existing :class:`SyntheticBackend`
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
        version: tuple[int, ...] = DEFAULT_VERSION,
    ) -> None:
        if backend is None:
            backend = SyntheticBackend(levels=levels, version=version)
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
        ``pfnmap`` sets ``VM_PFNMAP``, ``hugetlb_shift`` (21 or 30) makes a
        hugetlb VMA. ``anonymous`` defaults to true for private VMAs that are
        neither hugetlb, PFN maps nor part of a *mapping*.
        """
        if start >= end or start % PAGE_SIZE or end % PAGE_SIZE:
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
            vm_pgoff=start >> PAGE_SHIFT if pgoff is None else pgoff,
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
        if level == PageTableLevel.PGD:
            return (addr >> self.paging.pgdir_shift) & 511
        return (addr >> _SHIFTS[PageTableLevel(level)]) & 511

    def _levels(self) -> list[PageTableLevel]:
        if self.paging.levels == 5:
            return [PageTableLevel.PGD, PageTableLevel.P4D, PageTableLevel.PUD,
                    PageTableLevel.PMD, PageTableLevel.PTE]
        return [PageTableLevel.PGD, PageTableLevel.PUD, PageTableLevel.PMD, PageTableLevel.PTE]

    def table_paddr(self, level: int, addr: int, *, create: bool = False) -> int | None:
        """
        Physical address of the table that holds the *level* entry for
        *addr* (with 4-level paging, P4D means the PGD table); creates the
        missing tables on the way when *create*.
        """
        b = self.livewalk_backend
        if level == PageTableLevel.P4D and self.paging.levels == 4:
            level = PageTableLevel.PGD
        paddr = self.pgd_paddr
        for lvl in self._levels():
            if lvl == level:
                return paddr
            t = b._mem[paddr]
            i = self._index(lvl, addr)
            v = t[i]
            if not v & _PAGE_PRESENT or (lvl in (PageTableLevel.PUD, PageTableLevel.PMD) and v & _PAGE_PSE):
                if not create:
                    return None
                if v:
                    raise ValueError(f"{lvl.name} entry for {addr:#x} is {v:#x}, not a table")
                child = b.alloc_table()
                t[i] = child | _PAGE_TABLE
                paddr = child
            else:
                paddr = v & self.paging.physical_mask & ~(PAGE_SIZE - 1)
        raise AssertionError(level)

    def kaddr_of(self, level: int, addr: int) -> int | None:
        """Kernel virtual address of the *level* slot for *addr* (None if no table)."""
        p = self.table_paddr(level, addr)
        if p is None:
            return None
        return self.paging.va(p) + 8 * self._index(level, addr)

    def set_entry(self, level: int, addr: int, value: int) -> None:
        """Write a raw entry at *level* for *addr*, creating tables above it."""
        if level == PageTableLevel.P4D and self.paging.levels == 4:
            level = PageTableLevel.PGD
        p = self.table_paddr(level, addr, create=True)
        assert p is not None
        self.livewalk_backend._mem[p][self._index(level, addr)] = value & ULONG_MAX

    def lookup(self, level: int, addr: int) -> int | None:
        """The raw *level* entry for *addr*, or None if its table does not exist."""
        if level == PageTableLevel.P4D and self.paging.levels == 4:
            level = PageTableLevel.PGD
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

    def map_4k(self, addr: int, pfn: int, flags: int = DEFAULT_PTE_FLAGS) -> None:
        """Map one 4 KiB page."""
        self.set_pte(addr, mk_pte(pfn, flags))

    def map_range_4k(self, start: int, end: int, pfn: int, flags: int = DEFAULT_PTE_FLAGS) -> None:
        """Map [start, end) with 4 KiB pages, consecutive PFNs from *pfn*."""
        for n, addr in enumerate(range(start, end, PAGE_SIZE)):
            self.map_4k(addr, pfn + n, flags)

    def fill_pte_table(self, addr: int, values: Sequence[int]) -> None:
        """Set the 512 PTEs of the PTE table covering *addr* at once."""
        self.set_entry(PageTableLevel.PTE, addr & ~((1 << PMD_SHIFT) - 1), 0)
        p = self.table_paddr(PageTableLevel.PTE, addr)
        assert p is not None
        self.livewalk_backend._mem[p] = array("Q", values)

    def map_2m(self, addr: int, pfn: int, flags: int = DEFAULT_PTE_FLAGS) -> None:
        """Map a 2 MiB page (PSE PMD): THP or hugetlb."""
        self.set_pmd(addr, mk_pte(pfn, flags | _PAGE_PSE))

    def map_1g(self, addr: int, pfn: int, flags: int = DEFAULT_PTE_FLAGS) -> None:
        """Map a 1 GiB page (PSE PUD)."""
        self.set_pud(addr, mk_pte(pfn, flags | _PAGE_PSE))

    def map_huge_zero(self, addr: int, *, uffd_wp: bool = False) -> None:
        """Map the huge zero page at *addr* (special, read-only PSE PMD)."""
        hz = self.livewalk_backend.huge_zero_pfn
        flags = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX | _PAGE_SPECIAL
        if uffd_wp:
            flags |= 1 << 10
        self.map_2m(addr, hz if hz is not None else 0, flags)

    def map_zero(self, addr: int) -> None:
        """Map the shared zero page at *addr* (special, read-only)."""
        flags = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX | _PAGE_SPECIAL
        self.map_4k(addr, self.livewalk_backend.zero_pfn, flags)

    def map_protnone(self, addr: int, pfn: int, level: int = PageTableLevel.PTE) -> None:
        """A PROT_NONE / NUMA-hint entry (PFN stored inverted)."""
        flags = _PAGE_PROTNONE | _PAGE_USER | _PAGE_ACCESSED | _PAGE_DIRTY
        if level == PageTableLevel.PMD:
            flags |= _PAGE_PSE
        self.set_entry(level, addr, mk_pte(pfn, flags))

    def _swap_type(self, name: str) -> int:
        t = dataclasses.asdict(self.paging.swap_types).get(name)
        if t is None:
            raise ValueError(f"no {name} swap type in this configuration")
        return int(t)

    def map_swap(self, addr: int, type: int, offset: int, level: int = PageTableLevel.PTE, **kw: bool) -> None:
        """A swap entry (keywords: ``soft_dirty``, ``uffd_wp``, ``exclusive``)."""
        self.set_entry(level, addr, swp_entry_to_pte(type, offset, **kw))

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
        self.set_entry(level, addr, swp_entry_to_pte(self._swap_type(name), pfn, **kw))

    def map_device(self, addr: int, pfn: int, *, kind: str = "device_write", level: int = PageTableLevel.PTE) -> None:
        """A device-private (``device_write``/``device_read``) or ``device_exclusive`` entry."""
        self.set_entry(level, addr, swp_entry_to_pte(self._swap_type(kind), pfn))

    def map_hwpoison(self, addr: int, pfn: int) -> None:
        """A hwpoison entry for *pfn*."""
        self.set_pte(addr, swp_entry_to_pte(self._swap_type("hwpoison"), pfn))

    def map_marker(self, addr: int, bits: int = PTE_MARKER_GUARD) -> None:
        """A PTE marker (guard, uffd-wp, poisoned bits)."""
        self.set_pte(addr, swp_entry_to_pte(self._swap_type("pte_marker"), bits))

    def make_unreadable(self, level: int, addr: int) -> int:
        """Make the table holding the *level* entry for *addr* unreadable; returns its paddr."""
        p = self.table_paddr(level, addr)
        if p is None:
            raise ValueError(f"no {PageTableLevel(level).name} table for {addr:#x}")
        self.livewalk_backend.unreadable.add(p)
        return p

