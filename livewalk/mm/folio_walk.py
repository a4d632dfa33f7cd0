# SPDX-License-Identifier: LGPL-2.1-or-later
"""
folio_walk
----------

``folio_walk_start()`` / ``folio_walk_end()`` of Linux 7.2
(``mm/pagewalk.c``, ``include/linux/pagewalk.h``): walk the page tables of
one address of a VMA to the folio mapped there, read-only.

What the kernel returns as ``struct folio *`` and ``struct page *`` depends on
the backend: if it has ``page_folio(pfn)`` / ``pfn_to_page(pfn)`` methods
their results are used, otherwise the PFNs themselves (``int``). The exact
PFN is always in :attr:`FolioWalk.pfn`. ``vm_normal_page*()`` is emulated as
on x86_64 (``_PAGE_SPECIAL`` entries have no normal page; a PFN above
``backend.highest_memmap_pfn``, when the backend knows it, neither);
``vm_ops->find_normal_page`` hooks are not known here.

Flags: since Linux 7.1 only :data:`FW_ZEROPAGE` = ``BIT(0)`` exists. Before
Linux 7.1 (6.12 to 7.0) there were ``FW_MIGRATION`` = ``BIT(0)`` and
``FW_ZEROPAGE`` = ``BIT(1)``; pass ``kernel_version=(7, 0)`` (and the flag
values from :func:`folio_walk_flags`) to get that behaviour: with
``FW_MIGRATION`` a PTE or PMD migration entry is found too, with
``fw.page = None``.

>>> from livewalk.backend.synthetic import SyntheticMM
>>> mm = SyntheticMM()
>>> vma = mm.add_vma(0x400000, 0x600000)
>>> mm.map_4k(0x401000, pfn=0x1234)
>>> fw = FolioWalk()
>>> hex(folio_walk_start(fw, vma, 0x401000, 0))
'0x1234'
>>> fw.level is FolioWalkLevel.FW_LEVEL_PTE
True
>>> folio_walk_end(fw, vma)
"""

from __future__ import annotations

import enum
from typing import Any

from livewalk.arch.x86.pgtable import (
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_PSE,
    _PAGE_SPECIAL,
    P4D_SHIFT,
    PAGE_MASK,
    PAGE_SHIFT,
    PMD_SHIFT,
    PUD_SHIFT,
    PageTableLevel,
    decode_swap,
    p4d_bad,
    pgd_bad,
    pgd_none,
    pmd_bad,
    pmd_pfn,
    pte_none,
    pte_pfn,
    pud_pfn,
)
from livewalk.backend import VMA, TableReadError
from livewalk.mm.entry import Entry, EntryContext
from livewalk.mm.pagewalk import _resolve_vma

__all__ = (
    "FW_ZEROPAGE",
    "FolioWalk",
    "FolioWalkLevel",
    "folio_walk_end",
    "folio_walk_flags",
    "folio_walk_start",
)

#: ``FW_ZEROPAGE`` in Linux 7.1 and later (``BIT(0)``).
FW_ZEROPAGE = 1 << 0


def folio_walk_flags(kernel_version: tuple[int, int] = (7, 2)) -> tuple[int, int | None]:
    """
    ``(FW_ZEROPAGE, FW_MIGRATION)`` for a kernel version: ``(BIT(0), None)``
    since Linux 7.1, ``(BIT(1), BIT(0))`` before.

    >>> folio_walk_flags((7, 0))
    (2, 1)
    """
    if tuple(kernel_version) >= (7, 1):
        return 1 << 0, None
    return 1 << 1, 1 << 0


class FolioWalkLevel(enum.IntEnum):
    """``enum folio_walk_level``."""

    FW_LEVEL_PTE = 0
    FW_LEVEL_PMD = 1
    FW_LEVEL_PUD = 2


class FolioWalk:
    """
    ``struct folio_walk``.

    :ivar page: the exact page for the address (``None`` for zero pages and,
        before Linux 7.1, migration entries)
    :ivar level: :class:`FolioWalkLevel`
    :ivar ptep: the :class:`~livewalk.mm.entry.Entry` (also as ``pmdp``/``pudp``)
    :ivar pte: its raw value (also as ``pmd``/``pud``)
    :ivar vma: never set by ``folio_walk_start``, as in the kernel
    :ivar ptl: always ``None`` (no locks are taken)
    :ivar pfn: livewalk extension: PFN of the exact page
    :ivar folio: livewalk extension: what ``folio_walk_start`` returned
    """

    def __init__(self) -> None:
        self.page: Any = None
        self.level: FolioWalkLevel = FolioWalkLevel.FW_LEVEL_PTE
        self.ptep: Entry | None = None
        self.pte: int = 0
        self.vma: Any = None
        self.ptl: Any = None
        self.pfn: int | None = None
        self.folio: Any = None

    @property
    def pmdp(self) -> Entry | None:
        return self.ptep

    @property
    def pudp(self) -> Entry | None:
        return self.ptep

    @property
    def pmd(self) -> int:
        return self.pte

    @property
    def pud(self) -> int:
        return self.pte

    def _set(self, level: FolioWalkLevel, entry: Entry) -> None:
        self.level = level
        self.ptep = entry
        self.pte = entry.value

    def __repr__(self) -> str:
        pfn = "None" if self.pfn is None else f"{self.pfn:#x}"
        return f"FolioWalk(level={self.level.name}, pte={self.pte:#x}, pfn={pfn})"


def _normal(backend: Any, v: int, pfn: int) -> bool:
    """``vm_normal_page*()`` on x86_64: special entries and PFNs past memmap have none."""
    if v & _PAGE_SPECIAL:
        return False
    hi = getattr(backend, "highest_memmap_pfn", None)
    return not (hi is not None and pfn > hi)


def _page(backend: Any, pfn: int) -> Any:
    fn = getattr(backend, "pfn_to_page", None)
    return fn(pfn) if fn is not None else pfn


def _folio(backend: Any, pfn: int) -> Any:
    fn = getattr(backend, "page_folio", None)
    return fn(pfn) if fn is not None else pfn


def folio_walk_start(
    fw: FolioWalk,
    vma: Any,
    addr: int,
    flags: int,
    *,
    kernel_version: tuple[int, int] = (7, 2),
    backend: Any = None,
) -> Any:
    """
    ``folio_walk_start()``: the folio mapped at *addr* in *vma* (a
    :class:`~livewalk.backend.VMA` or drgn ``struct vm_area_struct *``), or
    ``None``; fills *fw*.
    """
    info, backend = _resolve_vma(vma, backend)
    zeropage_flag, migration_flag = folio_walk_flags(kernel_version)
    want_zero = bool(flags & zeropage_flag)
    want_migration = migration_flag is not None and bool(flags & migration_flag)
    if not info.vm_start <= addr < info.vm_end:
        return None
    mm = backend.vma_mm(info)
    ctx = EntryContext(backend.paging, backend)
    paging = backend.paging
    try:
        base = backend.mm_pgd(mm) & ~0xFFF
        t = ctx.read_table(backend.pgd_phys(base))
        i = (addr >> paging.pgdir_shift) & 511
        v = t[i]
        kaddr: int | None = base + 8 * i
        if pgd_none(v, paging) or pgd_bad(v, paging):
            return None
        if paging.levels == 5:
            t, kaddr = _next(ctx, v, addr, P4D_SHIFT)
            v = t[(addr >> P4D_SHIFT) & 511]
        if pte_none(v) or p4d_bad(v, paging):
            return None
        t, kaddr = _next(ctx, v, addr, PUD_SHIFT)
        pud = t[(addr >> PUD_SHIFT) & 511]
        if pte_none(pud):
            return None
        if not pud & _PAGE_PRESENT or pud & _PAGE_PSE:
            fw._set(FolioWalkLevel.FW_LEVEL_PUD, Entry(pud, kaddr, PageTableLevel.PUD, ctx))
            if pud & _PAGE_PRESENT:
                pfn = pud_pfn(pud, paging)
                if _normal(backend, pud, pfn):
                    return _found(fw, backend, pfn, addr, 1 << PUD_SHIFT, False)
            return None
        t, kaddr = _next(ctx, pud, addr, PMD_SHIFT)
        pmd = t[(addr >> PMD_SHIFT) & 511]
        if pte_none(pmd):
            return None
        present = bool(pmd & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE))
        if not present or pmd & _PAGE_PSE:
            fw._set(FolioWalkLevel.FW_LEVEL_PMD, Entry(pmd, kaddr, PageTableLevel.PMD, ctx))
            if present:
                pfn = pmd_pfn(pmd, paging)
                if _normal(backend, pmd, pfn):
                    return _found(fw, backend, pfn, addr, 1 << PMD_SHIFT, False)
                if want_zero and _is_huge_zero(backend, pmd, pfn):
                    return _found(fw, backend, pfn, addr, 1 << PMD_SHIFT, True)
            elif want_migration:
                sw = decode_swap(pmd, paging)
                if sw is not None and sw.kind.is_migration and sw.pfn is not None:
                    # before Linux 7.1: found, but fw->page stays NULL
                    return _found(fw, backend, sw.pfn, addr, 1 << PMD_SHIFT, True)
            return None
        # pte_offset_map_lock(): fails on a bad PMD (the kernel clears it)
        if pmd_bad(pmd, paging):
            return None
        t, kaddr = _next(ctx, pmd, addr, PAGE_SHIFT)
        pte = t[(addr >> PAGE_SHIFT) & 511]
        fw._set(FolioWalkLevel.FW_LEVEL_PTE, Entry(pte, kaddr, PageTableLevel.PTE, ctx))
        if pte & (_PAGE_PRESENT | _PAGE_PROTNONE):
            pfn = pte_pfn(pte, paging)
            if _normal(backend, pte, pfn):
                return _found(fw, backend, pfn, addr, 1 << PAGE_SHIFT, False)
            zero = getattr(backend, "zero_pfn", None)
            if want_zero and zero is not None and pfn == zero:
                return _found(fw, backend, pfn, addr, 1 << PAGE_SHIFT, True)
        elif want_migration and not pte_none(pte):
            sw = decode_swap(pte, paging)
            if sw is not None and sw.kind.is_migration and sw.pfn is not None:
                return _found(fw, backend, sw.pfn, addr, 1 << PAGE_SHIFT, True)
        return None
    except TableReadError:
        return None


def _next(ctx: EntryContext, v: int, addr: int, shift: int) -> tuple[Any, int]:
    paddr = v & ctx.paging.physical_mask & PAGE_MASK
    t = ctx.read_table(paddr)
    return t, ctx.paging.va(paddr) + 8 * ((addr >> shift) & 511)


def _is_huge_zero(backend: Any, v: int, pfn: int) -> bool:
    hz = getattr(backend, "huge_zero_pfn", None)
    if hz is not None:
        return (pfn & ~511) == hz
    return bool(v & _PAGE_SPECIAL)


def _found(fw: FolioWalk, backend: Any, pfn: int, addr: int, size: int, no_page: bool) -> Any:
    sub = pfn + ((addr & (size - 1)) >> PAGE_SHIFT)
    fw.pfn = sub
    fw.page = None if no_page else _page(backend, sub)
    fw.folio = _folio(backend, pfn)
    return fw.folio


def folio_walk_end(fw: FolioWalk, vma: VMA | Any) -> None:
    """``folio_walk_end()``: nothing to unlock; kept for symmetry."""
    fw.ptl = None
