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

The kernel's version is chosen from ``backend.features``
(:class:`~livewalk.kernel.KernelFeatures`), or forced with
``kernel_version=``:

* Linux 6.1 has no ``folio_walk_start()``:
  :class:`~livewalk.kernel.NotInKernelError`.
* 6.12 (``mm/pagewalk.c`` ``folio_walk_start``): ``FW_MIGRATION`` =
  ``BIT(0)``, ``FW_ZEROPAGE`` = ``BIT(1)``; with ``FW_MIGRATION`` a PTE or
  PMD migration entry is found too, with ``fw.page = None``. A present PUD
  leaf that is not special is found by ``pud_page()`` (no
  ``highest_memmap_pfn`` check; ``pud_devmap`` is not modelled).
* 7.2: only :data:`FW_ZEROPAGE` = ``BIT(0)``; no migration entries; a PUD
  leaf goes through ``vm_normal_page_pud()`` (special or past memmap: not
  found).

:func:`folio_walk_flags` gives the flag values of a version.

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
from collections.abc import Sequence
from typing import Any

from livewalk.arch import ArchPaging, PageTableLevel
from livewalk.backend import PageTableBackend, TableReadError
from livewalk.kernel import DEFAULT_VERSION, KernelFeatures
from livewalk.mm.entry import Entry, EntryContext
from livewalk.mm.pagewalk import _resolve_vma
from livewalk.mm.vma import VMA

_PTE, _PMD, _PUD, _P4D, _PGD = PageTableLevel

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


def folio_walk_flags(kernel_version: tuple[int, ...] = DEFAULT_VERSION) -> tuple[int, int | None]:
    """
    ``(FW_ZEROPAGE, FW_MIGRATION)`` for a kernel version: ``(BIT(0), None)``
    in 7.2, ``(BIT(1), BIT(0))`` in 6.12 (see
    :attr:`KernelFeatures.fw_zeropage <livewalk.kernel.KernelFeatures>`).

    >>> folio_walk_flags((6, 12))
    (2, 1)
    """
    f = KernelFeatures.for_version(kernel_version)
    return f.fw_zeropage, f.fw_migration


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


def _normal(backend: PageTableBackend, special: bool, pfn: int) -> bool:
    """``vm_normal_page*()``: special entries and PFNs past memmap have no normal page."""
    if special:
        return False
    hi = backend.highest_memmap_pfn
    return not (hi is not None and pfn > hi)


def _page(backend: PageTableBackend, pfn: int) -> Any:
    fn = backend.pfn_to_page
    return fn(pfn) if fn is not None else pfn


def _folio(backend: PageTableBackend, pfn: int) -> Any:
    fn = backend.page_folio
    return fn(pfn) if fn is not None else pfn


def folio_walk_start(
    fw: FolioWalk,
    vma: Any,
    addr: int,
    flags: int,
    *,
    kernel_version: tuple[int, ...] | None = None,
    backend: PageTableBackend | None = None,
) -> Any:
    """
    ``folio_walk_start()``: the folio mapped at *addr* in *vma* (a
    :class:`~livewalk.backend.VMA` or drgn ``struct vm_area_struct *``), or
    ``None``; fills *fw*.

    :param kernel_version: behave as this version instead of the target's
        (``backend.features``)
    :raises NotInKernelError: on kernels without ``folio_walk_start()`` (6.1)
    """
    info, backend = _resolve_vma(vma, backend)
    f = backend.features if kernel_version is None else KernelFeatures.for_version(kernel_version)
    f.require("folio_walk_start")
    zeropage_flag, migration_flag = f.fw_zeropage, f.fw_migration
    # 6.12 has FW_MIGRATION; it went with vm_normal_page_pud() (7.2)
    new_pud = migration_flag is None
    want_zero = bool(flags & zeropage_flag)
    want_migration = migration_flag is not None and bool(flags & migration_flag)
    if not info.vm_start <= addr < info.vm_end:
        return None
    mm = backend.vma_mm(info)
    ctx = EntryContext(backend.paging, backend)
    p: ArchPaging = backend.paging
    page_shift = p.page_shift
    pud_size = 1 << p.level_shift(_PUD)
    pmd_size = 1 << p.level_shift(_PMD)
    try:
        pgd = backend.mm_pgd(mm)
        base = pgd & ~(p.page_size - 1)
        t = ctx.read_table(backend.pgd_phys(base))
        i = ((pgd - base) >> 3) + _index(p, _PGD, addr)
        v = t[i]
        if p.pgd_none(v) or p.pgd_bad(v):
            return None
        t, base, i = _offset(ctx, _P4D, t, base, i, addr)
        v = t[i]
        if p.p4d_none(v) or p.p4d_bad(v):
            return None
        t, base, i = _offset(ctx, _PUD, t, base, i, addr)
        pud = t[i]
        kaddr = base + 8 * i
        if p.pud_none(pud):
            return None
        if not p.pud_present(pud) or p.pud_leaf(pud):
            fw._set(FolioWalkLevel.FW_LEVEL_PUD, Entry(pud, kaddr, _PUD, ctx))
            if p.pud_present(pud):
                pfn = p.pud_pfn(pud)
                if new_pud:
                    # as in Linux 7.2: vm_normal_page_pud()
                    if _normal(backend, p.pmd_special(pud), pfn):
                        return _found(fw, backend, pfn, addr, pud_size, False)
                elif not p.pmd_special(pud):
                    # as in Linux 6.12: pud_special() is not found, any other
                    # leaf is pud_page() (no highest_memmap_pfn check)
                    return _found(fw, backend, pfn, addr, pud_size, False)
            return None
        t, base, i = _offset(ctx, _PMD, t, base, i, addr)
        pmd = t[i]
        kaddr = base + 8 * i
        if p.pmd_none(pmd):
            return None
        present = p.pmd_present(pmd)
        if not present or p.pmd_leaf(pmd):
            fw._set(FolioWalkLevel.FW_LEVEL_PMD, Entry(pmd, kaddr, _PMD, ctx))
            if present:
                pfn = p.pmd_pfn(pmd)
                # 6.12's vm_normal_page_pmd() tests is_huge_zero_pmd() itself;
                # 7.2's huge zero PMD is special
                if _normal(backend, p.pmd_special(pmd), pfn) and (
                    new_pud or not _is_huge_zero(backend, p, pmd, pfn)
                ):
                    return _found(fw, backend, pfn, addr, pmd_size, False)
                if want_zero and _is_huge_zero(backend, p, pmd, pfn):
                    return _found(fw, backend, pfn, addr, pmd_size, True)
            elif want_migration:
                sw = p.decode_swap(pmd)
                if sw is not None and sw.kind.is_migration and sw.pfn is not None:
                    # before Linux 7.1: found, but fw->page stays NULL
                    return _found(fw, backend, sw.pfn, addr, pmd_size, True)
            return None
        # pte_offset_map_lock(): fails on a bad PMD (the kernel clears it)
        if p.pmd_bad(pmd):
            return None
        t, base, i = _offset(ctx, _PTE, t, base, i, addr)
        pte = p.ptes_get(t, i, 1)[0]  # ptep_get(): arm64 folds a contiguous block
        kaddr = base + 8 * i
        fw._set(FolioWalkLevel.FW_LEVEL_PTE, Entry(pte, kaddr, _PTE, ctx))
        if p.pte_present(pte):
            pfn = p.pte_pfn(pte)
            if _normal(backend, p.pte_special(pte), pfn):
                return _found(fw, backend, pfn, addr, 1 << page_shift, False)
            zero = backend.zero_pfn
            if want_zero and zero is not None and pfn == zero:
                return _found(fw, backend, pfn, addr, 1 << page_shift, True)
        elif want_migration and not p.pte_none(pte):
            sw = p.decode_swap(pte)
            if sw is not None and sw.kind.is_migration and sw.pfn is not None:
                return _found(fw, backend, sw.pfn, addr, 1 << page_shift, True)
        return None
    except TableReadError:
        return None


def _index(p: ArchPaging, level: PageTableLevel, addr: int) -> int:
    """``p?d_index()``."""
    return (addr >> p.level_shift(level)) & (p.ptrs_per(level) - 1)


def _offset(
    ctx: EntryContext, level: PageTableLevel, t: Sequence[int], base: int, i: int, addr: int
) -> tuple[Sequence[int], int, int]:
    """
    ``p?d_offset()`` below slot *i* of the table *t* at kernel address
    *base*: the *level* table, its kernel address and the slot for *addr*.
    A folded level is the parent's slot; one folded at boot (arm64) indexes
    the parent's page.
    """
    p = ctx.paging
    if p.folded(level):
        return t, base, i
    if not p.folded_at_boot(level):
        paddr = p.table_paddr(t[i])
        t = ctx.read_table(paddr)
        base = p.va(paddr)
    return t, base, _index(p, level, addr)


def _is_huge_zero(backend: PageTableBackend, p: ArchPaging, v: int, pfn: int) -> bool:
    hz = backend.huge_zero_pfn
    if hz is not None:
        return (pfn & ~(p.ptrs_per(_PTE) - 1)) == hz
    return p.pmd_special(v)


def _found(fw: FolioWalk, backend: PageTableBackend, pfn: int, addr: int, size: int, no_page: bool) -> Any:
    sub = pfn + ((addr & (size - 1)) >> backend.paging.page_shift)
    fw.pfn = sub
    fw.page = None if no_page else _page(backend, sub)
    fw.folio = _folio(backend, pfn)
    return fw.folio


def folio_walk_end(fw: FolioWalk, vma: VMA | Any) -> None:
    """``folio_walk_end()``: nothing to unlock; kept for symmetry."""
    fw.ptl = None
