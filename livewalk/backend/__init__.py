# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Backends
--------

The walker (:mod:`livewalk.mm.pagewalk`) never reads memory itself. It asks a
*backend* for four things, and nothing else:

* the paging geometry and x86_64 decoding parameters of the target
  (:class:`livewalk.arch.x86.pgtable.X86Paging`);
* a page-table page, whole, by physical address
  (:meth:`PageTableBackend.read_table`);
* the mm's top-level table (:meth:`PageTableBackend.mm_pgd`);
* the mm's VMAs in address order (:meth:`PageTableBackend.find_vma`) and, for
  :func:`~livewalk.mm.pagewalk.walk_page_mapping`, the VMAs of an
  ``address_space`` (:meth:`PageTableBackend.mapping_vmas`).

Two backends ship with livewalk: :mod:`livewalk.backend.drgn` (any
``drgn.Program`` for a Linux kernel: live, vmcore or QEMU over QMP) and
:mod:`livewalk.backend.synthetic` (in-memory page tables for tests and examples).

An ``mm`` handed to an entry point is whatever the backend uses for an mm: a
drgn ``struct mm_struct *`` Object for the drgn backend, a
:class:`~livewalk.backend.synthetic.SyntheticMM` for the synthetic one.
:func:`backend_for_mm` finds the backend of an mm.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from livewalk.arch.x86.pgtable import X86Paging

__all__ = (
    "VMA",
    "PageTableBackend",
    "TableReadError",
    "backend_for_mm",
)


class TableReadError(Exception):
    """
    A page-table page could not be read (it is not in the dump, it lies
    outside RAM, or the live target refused the read).

    :ivar paddr: physical address of the table page
    """

    def __init__(self, paddr: int, message: str = "") -> None:
        super().__init__(message or f"cannot read page table at physical address {paddr:#x}")
        self.paddr = paddr


@dataclasses.dataclass(frozen=True, slots=True)
class VMA:
    """
    A snapshot of one ``struct vm_area_struct``: the numbers the walker and
    its users need, read once.

    :ivar vm_start: first address of the VMA
    :ivar vm_end: first address after the VMA
    :ivar vm_flags: raw ``vm_flags`` value
    :ivar vm_pgoff: ``vm_pgoff`` (page offset in the file, or for anonymous
        memory the virtual page number it was created at)
    :ivar hugetlb_shift: for a hugetlb VMA the shift of its huge page size
        (21 for 2 MiB, 30 for 1 GiB); 0 for any other VMA
    :ivar pfnmap: ``VM_PFNMAP`` is set
    :ivar obj: what ``walk.vma`` is set to while this VMA is walked: the drgn
        ``struct vm_area_struct *`` Object for the drgn backend, the backend's
        own VMA object otherwise
    """

    vm_start: int
    vm_end: int
    vm_flags: int
    vm_pgoff: int = 0
    hugetlb_shift: int = 0
    pfnmap: bool = False
    obj: Any = None

    @property
    def is_hugetlb(self) -> bool:
        """``is_vm_hugetlb_page(vma)``."""
        return self.hugetlb_shift != 0


@runtime_checkable
class PageTableBackend(Protocol):
    """
    Where page tables come from. Implementations must be read-only: nothing
    here may ever write to the target.
    """

    #: Paging geometry and decoding parameters of the target.
    paging: X86Paging

    def read_table(self, paddr: int) -> Sequence[int]:
        """
        Read the 4 KiB page-table page at physical address *paddr* and
        return its 512 raw 64-bit entries (an ``array('Q')`` or a
        ``memoryview`` cast to ``'Q'``).

        The walker caches the result for the length of one walk, so a
        backend need not cache.

        :raises TableReadError: if the page cannot be read
        """
        ...

    def mm_pgd(self, mm: Any) -> int:
        """
        Return ``mm->pgd``: the kernel virtual address of the mm's top-level
        table (for ``init_mm`` that is ``swapper_pg_dir`` in the kernel
        image).
        """
        ...

    def pgd_phys(self, pgd: int) -> int:
        """
        Translate a top-level table's kernel virtual address (``mm->pgd``, or
        the *pgd* argument of the kernel walks) to its physical address.
        Lower tables are reached through the direct map and need no call.
        """
        ...

    def find_vma(self, mm: Any, addr: int) -> VMA | None:
        """
        ``find_vma(mm, addr)``: the first VMA of *mm* with ``vm_end > addr``,
        or ``None``.
        """
        ...

    def mapping_vmas(self, mapping: Any, first_index: int, last_index: int) -> Iterable[VMA]:
        """
        The VMAs in ``mapping->i_mmap`` that overlap the file page range
        [*first_index*, *last_index*], in the order
        ``vma_interval_tree_foreach`` visits them.
        """
        ...

    def mm_stamp(self, mm: Any) -> tuple[int, ...]:
        """
        A cheap stamp of *mm*'s VMA tree, read fresh: it differs whenever
        the tree may have changed between two reads. Its first element is
        a sequence count that is odd while a writer holds the mmap lock
        (``mm->mm_lock_seq``), or 0 where the kernel has none. Used by
        :mod:`livewalk.consistency`.
        """
        ...

    def vma_mm(self, vma: VMA) -> Any:
        """``vma->vm_mm`` (``None`` if the VMA has no mm)."""
        ...

    def is_init_mm(self, mm: Any) -> bool:
        """``mm == &init_mm``."""
        ...

    def init_mm(self) -> Any:
        """``&init_mm``."""
        ...

    def entry_object(self, level: int, kaddr: int) -> Any:
        """
        The backend's native view of the entry at kernel address *kaddr*
        (for drgn: a ``pte_t *`` / ``pmd_t *`` / ... Object; ``level`` is a
        :class:`livewalk.arch.x86.pgtable.PageTableLevel`). ``None`` if the backend has
        none.
        """
        ...


def backend_for_mm(mm: Any) -> PageTableBackend:
    """
    Return the backend that serves *mm*.

    An mm that carries a ``livewalk_backend`` attribute (like
    :class:`~livewalk.backend.synthetic.SyntheticMM`) names its own backend; a drgn
    ``Object`` gets the :class:`~livewalk.backend.drgn.DrgnBackend` of its
    program (one per program, created on first use).

    :raises TypeError: if *mm* is neither
    """
    backend = getattr(mm, "livewalk_backend", None)
    if backend is not None:
        return backend  # type: ignore[no-any-return]
    prog = getattr(mm, "prog_", None)
    if prog is not None:
        from livewalk.backend.drgn import DrgnBackend

        return DrgnBackend.for_program(prog)
    raise TypeError(f"cannot walk {type(mm).__name__!r}: not a drgn Object or a livewalk mm")
