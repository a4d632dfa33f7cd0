# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Page-table entries
------------------

The walker hands its callbacks :class:`Entry` objects where the kernel hands
``pte_t *``, ``pmd_t *`` and so on. An entry knows where it lives
(:attr:`Entry.kaddr`, the kernel virtual address of the slot, what the
kernel's pointer points at), its raw value (:attr:`Entry.value`) and its
level, and decodes itself lazily with the x86_64 rules of Linux 7.2
(``arch/x86/include/asm/pgtable*.h``): creating one costs a few attribute
stores, decoding happens only when a property is read.

>>> from livewalk.arch.x86.pgtable import X86Paging, PageTableLevel
>>> e = Entry(0x8000000012345067, 0xFF11000001000000, PageTableLevel.PTE,
...           EntryContext(X86Paging()))
>>> e.present, e.pfn == 0x12345, e.rw, e.nx
(True, True, True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from livewalk.arch.x86.pgtable import (
    _PAGE_ACCESSED,
    _PAGE_DIRTY_BITS,
    _PAGE_GLOBAL,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_PSE,
    _PAGE_RW,
    _PAGE_SOFT_DIRTY,
    _PAGE_SPECIAL,
    _PAGE_SWP_EXCLUSIVE,
    _PAGE_SWP_SOFT_DIRTY,
    _PAGE_SWP_UFFD_WP,
    _PAGE_UFFD_WP,
    _PAGE_USER,
    PAGE_MASK,
    PAGE_SHIFT,
    PMD_SHIFT,
    PTRS_PER_TABLE,
    PUD_SHIFT,
    PageTableLevel,
    SwapEntry,
    X86Paging,
    decode_swap,
    p4d_bad,
    pgd_bad,
    pgd_none,
    pgd_present,
    pmd_bad,
    pmd_present,
    pte_none,
    pte_present,
    pte_protnone,
)
from livewalk.backend import TableReadError

__all__ = (
    "Entry",
    "EntryContext",
)

_PTE = PageTableLevel.PTE
_PMD = PageTableLevel.PMD
_PUD = PageTableLevel.PUD
_P4D = PageTableLevel.P4D
_PGD = PageTableLevel.PGD

_LEVEL_SHIFT = {0: PAGE_SHIFT, 1: PMD_SHIFT, 2: PUD_SHIFT, 3: 39}


class EntryContext:
    """
    What entries need from their surroundings: the paging parameters, the
    backend (for :attr:`Entry.object` and :meth:`Entry.pte_table`) and a
    cache of page-table pages by physical address. A walk
    (:class:`~livewalk.mm.pagewalk.MMWalk`) is one; standalone users can make
    their own.

    :ivar paging: :class:`~livewalk.arch.x86.pgtable.X86Paging`
    :ivar backend: the backend, or ``None``
    :ivar table_reads: number of page-table pages read from the backend
    """

    __slots__ = ("paging", "backend", "table_reads", "_tables")

    def __init__(self, paging: X86Paging, backend: Any = None) -> None:
        self.paging = paging
        self.backend = backend
        self.table_reads = 0
        self._tables: dict[int, Sequence[int]] = {}

    def read_table(self, paddr: int) -> Sequence[int]:
        """
        The 512 raw entries of the page-table page at *paddr*, read once
        through the backend and cached by physical address.

        :raises TableReadError: if the backend cannot read it (or returns
            something that is not 512 entries)
        """
        t = self._tables.get(paddr)
        if t is None:
            if self.backend is None:
                raise TableReadError(paddr, f"no backend to read table {paddr:#x}")
            t = self.backend.read_table(paddr)
            self.table_reads += 1
            if len(t) != PTRS_PER_TABLE:
                raise TableReadError(paddr, f"table at {paddr:#x} has {len(t)} entries, not 512")
            self._tables[paddr] = t
        return t


class Entry:
    """
    One page-table entry as a walk callback sees it.

    :ivar value: raw 64-bit value, as read (``p?dp_get()``)
    :ivar kaddr: kernel virtual address of the slot (``__va(table) + 8 *
        index``; for the top level ``mm->pgd + 8 * index``); ``None`` for an
        entry that exists only in the walker's emulation of a kernel mutation
        (a table the kernel would have allocated or split, see
        :mod:`livewalk.mm.pagewalk`)
    :ivar level: :class:`~livewalk.arch.x86.pgtable.PageTableLevel`

    With 4-level paging the P4D level is folded: a P4D entry is the PGD
    entry itself (same :attr:`kaddr` and :attr:`value`).
    """

    __slots__ = ("value", "kaddr", "level", "_ctx")

    def __init__(self, value: int, kaddr: int | None, level: int, ctx: Any) -> None:
        self.value = value
        self.kaddr = kaddr
        self.level = level
        self._ctx = ctx

    def __repr__(self) -> str:
        k = "None" if self.kaddr is None else f"{self.kaddr:#x}"
        return f"Entry({PageTableLevel(self.level).name}, value={self.value:#018x}, kaddr={k})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return (self.value, self.kaddr, self.level) == (other.value, other.kaddr, other.level)

    def __hash__(self) -> int:
        return hash((self.value, self.kaddr, self.level))

    def __int__(self) -> int:
        return self.value

    @property
    def paging(self) -> X86Paging:
        """The target's :class:`~livewalk.arch.x86.pgtable.X86Paging`."""
        return self._ctx.paging  # type: ignore[no-any-return]

    # -- kernel predicates -------------------------------------------------

    @property
    def none(self) -> bool:
        """``p?d_none()`` for this level (a PGD entry is never none with 4-level paging)."""
        if self.level == _PGD:
            return pgd_none(self.value, self._ctx.paging)
        return pte_none(self.value)

    @property
    def present(self) -> bool:
        """
        ``p?d_present()`` for this level: PTE = PRESENT or PROTNONE, PMD =
        PRESENT, PROTNONE or PSE, PUD/P4D = PRESENT, PGD = PRESENT (always
        true with 4-level paging).
        """
        v = self.value
        lvl = self.level
        if lvl == _PTE:
            return bool(v & (_PAGE_PRESENT | _PAGE_PROTNONE))
        if lvl == _PMD:
            return pmd_present(v)
        if lvl == _PGD:
            return pgd_present(v, self._ctx.paging)
        return bool(v & _PAGE_PRESENT)

    @property
    def protnone(self) -> bool:
        """``p?d_protnone()``: PROT_NONE or NUMA-hinting (PROTNONE without PRESENT)."""
        if self.level > _PMD:
            return False
        return pte_protnone(self.value)

    @property
    def leaf(self) -> bool:
        """
        The entry maps memory itself: a present PTE, or ``pmd_leaf()`` /
        ``pud_leaf()`` (``_PAGE_PSE``) at PMD/PUD level. Never at P4D/PGD.
        """
        lvl = self.level
        if lvl == _PTE:
            return pte_present(self.value)
        if lvl == _PMD or lvl == _PUD:
            return bool(self.value & _PAGE_PSE)
        return False

    huge = leaf

    @property
    def is_table(self) -> bool:
        """A present, non-leaf entry above PTE level: it points to a table."""
        return self.level != _PTE and self.present and not self.leaf and not self.none

    @property
    def bad(self) -> bool:
        """``p?d_bad()`` as the walker applies it (PMD: ``pmd_bad``; P4D/PGD)."""
        p = self._ctx.paging
        lvl = self.level
        if lvl == _PMD:
            return pmd_bad(self.value, p)
        if lvl == _P4D:
            return p4d_bad(self.value, p)
        if lvl == _PGD:
            return pgd_bad(self.value, p)
        return False

    @property
    def pfn(self) -> int:
        """
        ``p?d_pfn()``: the page frame number, L1TF inversion undone for
        non-present entries; a PSE PMD/PUD masks to its 2 MiB / 1 GiB page.
        For a table pointer, the table's PFN.
        """
        v = self.value
        if v and not v & _PAGE_PRESENT:
            v ^= 0xFFFF_FFFF_FFFF_FFFF
        mask = self._ctx.paging.physical_mask & PAGE_MASK
        lvl = self.level
        if (lvl == _PMD or lvl == _PUD) and v & _PAGE_PSE:
            mask &= ~((1 << _LEVEL_SHIFT[lvl]) - 1)
        return (v & mask) >> PAGE_SHIFT

    @property
    def phys_addr(self) -> int:
        """``pfn << PAGE_SHIFT``: physical address of the page, huge page or table."""
        return self.pfn << PAGE_SHIFT

    @property
    def rw(self) -> bool:
        """``_PAGE_RW`` (present entries only)."""
        return bool(self.value & _PAGE_RW) and self._is_present_bits()

    @property
    def user(self) -> bool:
        """``_PAGE_USER`` (present entries only)."""
        return bool(self.value & _PAGE_USER) and self._is_present_bits()

    @property
    def accessed(self) -> bool:
        """``_PAGE_ACCESSED`` (``pte_young``)."""
        return bool(self.value & _PAGE_ACCESSED) and self._is_present_bits()

    @property
    def dirty(self) -> bool:
        """``pte_dirty()``: bit 6 (DIRTY) or bit 58 (SAVED_DIRTY)."""
        return bool(self.value & _PAGE_DIRTY_BITS) and self._is_present_bits()

    @property
    def nx(self) -> bool:
        """``_PAGE_NX`` (bit 63)."""
        return bool(self.value & _PAGE_NX) and self._is_present_bits()

    @property
    def global_(self) -> bool:
        """``_PAGE_GLOBAL`` (bit 8 with PRESENT; without it bit 8 is PROTNONE)."""
        v = self.value
        return bool(v & _PAGE_GLOBAL) and bool(v & _PAGE_PRESENT)

    @property
    def special(self) -> bool:
        """``p?d_special()``: bit 9 (zero page, PFN maps, huge zero PMD)."""
        return bool(self.value & _PAGE_SPECIAL) and self._is_present_bits()

    @property
    def soft_dirty(self) -> bool:
        """
        Soft-dirty: bit 11 on a present entry, bit 1 (``_PAGE_SWP_SOFT_DIRTY``)
        on a swap entry; false without ``CONFIG_MEM_SOFT_DIRTY``.
        """
        p = self._ctx.paging
        if not p.soft_dirty:
            return False
        v = self.value
        if self._is_present_bits():
            return bool(v & _PAGE_SOFT_DIRTY)
        return not pte_none(v) and bool(v & _PAGE_SWP_SOFT_DIRTY)

    @property
    def uffd_wp(self) -> bool:
        """uffd-wp: bit 10 on a present entry, bit 2 on a swap entry."""
        p = self._ctx.paging
        if not p.uffd_wp:
            return False
        v = self.value
        if self._is_present_bits():
            return bool(v & _PAGE_UFFD_WP)
        return not pte_none(v) and bool(v & _PAGE_SWP_UFFD_WP)

    @property
    def exclusive(self) -> bool:
        """``_PAGE_SWP_EXCLUSIVE`` (bit 3) of a swap entry; false for present entries."""
        v = self.value
        if self._is_present_bits() or pte_none(v):
            return False
        return bool(v & _PAGE_SWP_EXCLUSIVE)

    @property
    def swap(self) -> SwapEntry | None:
        """
        The decoded software leaf (swap, migration, device, hwpoison, PTE
        marker) of a non-present, non-none PTE or PMD; ``None`` otherwise.
        """
        if self.level > _PMD or self._is_present_bits():
            return None
        return decode_swap(self.value, self._ctx.paging)

    def _is_present_bits(self) -> bool:
        v = self.value
        lvl = self.level
        if lvl == _PTE:
            return bool(v & (_PAGE_PRESENT | _PAGE_PROTNONE))
        if lvl == _PMD:
            return bool(v & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE))
        if lvl == _PGD:
            return pgd_present(v, self._ctx.paging)
        return bool(v & _PAGE_PRESENT)

    # -- backend views ----------------------------------------------------

    @property
    def object(self) -> Any:
        """
        The backend's native view of the slot (for drgn a ``pte_t *`` /
        ``pmd_t *`` ... Object), or ``None``.
        """
        backend = self._ctx.backend
        if backend is None or self.kaddr is None:
            return None
        return backend.entry_object(self.level, self.kaddr)

    def pte_table(self) -> Sequence[int] | None:
        """
        For a PMD entry that points to a PTE table, the table's 512 raw
        values (read once per walk); ``None`` for any other entry. Index it
        with ``(addr >> PAGE_SHIFT) & 511``.

        :raises TableReadError: if the table cannot be read
        """
        if self.level != _PMD or not self.is_table:
            return None
        return self._ctx.read_table(self.value & self._ctx.paging.physical_mask & PAGE_MASK)

    def table(self) -> Sequence[int] | None:
        """The 512 raw values of the next-level table this entry points to, or ``None``."""
        if not self.is_table:
            return None
        return self._ctx.read_table(self.value & self._ctx.paging.physical_mask & PAGE_MASK)


class _EmulatedEntry(Entry):
    """An entry whose next-level table exists only in the walker's emulation."""

    __slots__ = ("_child",)

    def __init__(
        self, value: int, kaddr: int | None, level: int, ctx: Any, child: Sequence[int]
    ) -> None:
        Entry.__init__(self, value, kaddr, level, ctx)
        self._child = child

    def pte_table(self) -> Sequence[int] | None:
        if self.level != _PMD:
            return None
        return self._child

    def table(self) -> Sequence[int] | None:
        return self._child
