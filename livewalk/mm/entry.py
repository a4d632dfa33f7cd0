# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Page-table entries
------------------

The walker hands its callbacks :class:`Entry` objects where the kernel hands
``pte_t *``, ``pmd_t *`` and so on. An entry knows where it lives
(:attr:`Entry.kaddr`, the kernel virtual address of the slot, what the
kernel's pointer points at), its raw value (:attr:`Entry.value`) and its
level, and decodes itself lazily with the predicates of the target's
architecture (:class:`~livewalk.arch.ArchPaging`, e.g. the x86_64 rules of
Linux 7.2 ``arch/x86/include/asm/pgtable*.h``): creating one costs a few
attribute stores, decoding happens only when a property is read.

>>> from livewalk.arch import PageTableLevel
>>> from livewalk.arch.x86.pgtable import X86Paging
>>> e = Entry(0x8000000012345067, 0xFF11000001000000, PageTableLevel.PTE,
...           EntryContext(X86Paging()))
>>> e.present, e.pfn == 0x12345, e.rw, e.nx
(True, True, True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from livewalk.arch import ArchPaging, PageTableLevel
from livewalk.backend import TableReadError
from livewalk.mm.swapops import SwapEntry

__all__ = (
    "Entry",
    "EntryContext",
)

_PTE, _PMD, _PUD, _P4D, _PGD = PageTableLevel


class EntryContext:
    """
    What entries need from their surroundings: the paging parameters, the
    backend (for :attr:`Entry.object` and :meth:`Entry.pte_table`) and a
    cache of page-table pages by physical address. A walk
    (:class:`~livewalk.mm.pagewalk.MMWalk`) is one; standalone users can make
    their own.

    :ivar paging: the target's :class:`~livewalk.arch.ArchPaging`
    :ivar backend: the backend, or ``None``
    :ivar table_reads: number of page-table pages read from the backend
    """

    __slots__ = ("paging", "backend", "table_reads", "_tables", "_ptrs")

    def __init__(self, paging: ArchPaging, backend: Any = None) -> None:
        self.paging = paging
        self.backend = backend
        self.table_reads = 0
        self._tables: dict[int, Sequence[int]] = {}
        self._ptrs = paging.ptrs_per(_PTE)  # entries in a table page

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
            n = self._ptrs
            if len(t) != n:
                raise TableReadError(paddr, f"table at {paddr:#x} has {len(t)} entries, not {n}")
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
    :ivar level: :class:`~livewalk.arch.PageTableLevel`

    With 4-level paging the P4D level is folded: a P4D entry is the PGD
    entry itself (same :attr:`kaddr` and :attr:`value`).
    """

    __slots__ = ("value", "kaddr", "level", "_ctx")

    def __init__(self, value: int, kaddr: int | None, level: int, ctx: Any) -> None:
        # the walker's PTE fast path (pagewalk._pte_entry_fast) sets these
        # four slots itself: keep the two in step
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
    def paging(self) -> ArchPaging:
        """The target's :class:`~livewalk.arch.ArchPaging`."""
        return self._ctx.paging  # type: ignore[no-any-return]

    # -- kernel predicates -------------------------------------------------

    @property
    def none(self) -> bool:
        """``p?d_none()`` for this level (constant false above a folded level)."""
        p = self._ctx.paging
        lvl = self.level
        v = self.value
        if lvl == _PTE:
            return p.pte_none(v)  # type: ignore[no-any-return]
        if lvl == _PMD:
            return p.pmd_none(v)  # type: ignore[no-any-return]
        if lvl == _PUD:
            return p.pud_none(v)  # type: ignore[no-any-return]
        if lvl == _P4D:
            return p.p4d_none(v)  # type: ignore[no-any-return]
        return p.pgd_none(v)  # type: ignore[no-any-return]

    @property
    def present(self) -> bool:
        """
        ``p?d_present()`` for this level (on x86_64: PTE = PRESENT or
        PROTNONE, PMD = PRESENT, PROTNONE or PSE, PUD/P4D = PRESENT, PGD =
        PRESENT, always true with 4-level paging).
        """
        return self._present(self._ctx.paging)

    def _present(self, p: ArchPaging) -> bool:
        v = self.value
        lvl = self.level
        if lvl == _PTE:
            return p.pte_present(v)
        if lvl == _PMD:
            return p.pmd_present(v)
        if lvl == _PUD:
            return p.pud_present(v)
        if lvl == _P4D:
            return p.p4d_present(v)
        return p.pgd_present(v)

    @property
    def protnone(self) -> bool:
        """``p?d_protnone()``: PROT_NONE or NUMA-hinting (present for the kernel, not for the MMU)."""
        lvl = self.level
        if lvl == _PTE:
            return self.paging.pte_protnone(self.value)
        if lvl == _PMD:
            return self.paging.pmd_protnone(self.value)
        return False

    @property
    def leaf(self) -> bool:
        """
        The entry maps memory itself: a present PTE, or ``pmd_leaf()`` /
        ``pud_leaf()`` at PMD/PUD level. Never at P4D/PGD.
        """
        lvl = self.level
        p = self.paging
        if lvl == _PTE:
            return p.pte_present(self.value)
        if lvl == _PMD:
            return p.pmd_leaf(self.value)
        if lvl == _PUD:
            return p.pud_leaf(self.value)
        return False

    huge = leaf

    @property
    def is_table(self) -> bool:
        """A present, non-leaf entry above PTE level: it points to a table."""
        return self.level != _PTE and self.present and not self.leaf and not self.none

    @property
    def bad(self) -> bool:
        """``p?d_bad()`` as the walker applies it (PMD: ``pmd_bad``; P4D/PGD)."""
        p = self.paging
        lvl = self.level
        if lvl == _PMD:
            return p.pmd_bad(self.value)
        if lvl == _P4D:
            return p.p4d_bad(self.value)
        if lvl == _PGD:
            return p.pgd_bad(self.value)
        return False

    @property
    def pfn(self) -> int:
        """
        ``p?d_pfn()``: the page frame number, L1TF inversion undone for
        non-present entries; a PMD/PUD leaf masks to its 2 MiB / 1 GiB page.
        For a table pointer, the table's PFN.
        """
        p = self.paging
        lvl = self.level
        if lvl == _PMD:
            return p.pmd_pfn(self.value)
        if lvl == _PUD:
            return p.pud_pfn(self.value)
        return p.pte_pfn(self.value)

    @property
    def phys_addr(self) -> int:
        """``pfn << PAGE_SHIFT``: physical address of the page, huge page or table."""
        return self.pfn << self.paging.page_shift

    # The attribute bits below read the same at every level on the
    # architectures livewalk knows (pmd_young() is pte_young() of the same
    # bits), so they use the PTE predicates; each is false on a non-present entry.

    @property
    def rw(self) -> bool:
        """``pte_write()`` (present entries only)."""
        return self._is_present_bits() and self.paging.pte_write(self.value)

    @property
    def user(self) -> bool:
        """User-accessible (x86 ``_PAGE_USER``; present entries only)."""
        return self._is_present_bits() and self.paging.pte_user(self.value)

    @property
    def accessed(self) -> bool:
        """``pte_young()``."""
        return self._is_present_bits() and self.paging.pte_young(self.value)

    @property
    def dirty(self) -> bool:
        """``pte_dirty()`` (on x86: bit 6 DIRTY or bit 58 SAVED_DIRTY)."""
        return self._is_present_bits() and self.paging.pte_dirty(self.value)

    @property
    def nx(self) -> bool:
        """Not executable (x86 ``_PAGE_NX``; present entries only)."""
        return self._is_present_bits() and not self.paging.pte_exec(self.value)

    @property
    def global_(self) -> bool:
        """Global mapping (x86 ``_PAGE_GLOBAL``, bit 8 with PRESENT; without it bit 8 is PROTNONE)."""
        return self.paging.pte_global(self.value)

    @property
    def special(self) -> bool:
        """``p?d_special()`` (zero page, PFN maps, huge zero PMD)."""
        return self._is_present_bits() and self.paging.pte_special(self.value)

    @property
    def soft_dirty(self) -> bool:
        """
        ``pte_soft_dirty()`` on a present entry, ``pte_swp_soft_dirty()`` on
        a swap entry; false without ``CONFIG_MEM_SOFT_DIRTY``.
        """
        p = self.paging
        v = self.value
        if self._is_present_bits():
            return p.pte_soft_dirty(v)
        return not p.pte_none(v) and p.pte_swp_soft_dirty(v)

    @property
    def uffd_wp(self) -> bool:
        """``pte_uffd_wp()`` on a present entry, ``pte_swp_uffd_wp()`` on a swap entry."""
        p = self.paging
        v = self.value
        if self._is_present_bits():
            return p.pte_uffd_wp(v)
        return not p.pte_none(v) and p.pte_swp_uffd_wp(v)

    @property
    def exclusive(self) -> bool:
        """``pte_swp_exclusive()`` of a swap entry; false for present entries."""
        p = self.paging
        v = self.value
        if self._is_present_bits() or p.pte_none(v):
            return False
        return p.pte_swp_exclusive(v)

    @property
    def swap(self) -> SwapEntry | None:
        """
        The decoded software leaf (swap, migration, device, hwpoison, PTE
        marker) of a non-present, non-none PTE or PMD; ``None`` otherwise.
        """
        if self.level > _PMD or self._is_present_bits():
            return None
        return self.paging.decode_swap(self.value)

    def _is_present_bits(self) -> bool:
        return self._present(self._ctx.paging)

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
        return self._ctx.read_table(self._ctx.paging.table_paddr(self.value))

    def table(self) -> Sequence[int] | None:
        """The 512 raw values of the next-level table this entry points to, or ``None``."""
        if not self.is_table:
            return None
        return self._ctx.read_table(self._ctx.paging.table_paddr(self.value))


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


class _TablePTE(Entry):
    """
    A PTE the walker's PTE loop hands to ``pte_entry``: its :attr:`kaddr` is
    worked out from the address the entry maps (``_addr``) and the kernel
    address of its table (``_table``) when first read, so that the loop
    stores one existing integer per PTE instead of making a new one. To a
    callback it is an :class:`Entry` like any other.
    """

    __slots__ = ("_addr", "_table")

    _addr: int
    _table: int

    @property
    def kaddr(self) -> int:  # type: ignore[override]
        """Kernel virtual address of the slot: ``__va(table) + 8 * pte_index(addr)``."""
        p = self._ctx.paging
        return self._table + 8 * ((self._addr >> p.page_shift) & (p.ptrs_per(_PTE) - 1))
