# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Backends
--------

The walker (:mod:`livewalk.mm.pagewalk`) never reads memory itself: it asks
a *backend*, and :class:`PageTableBackend` declares everything a backend
offers, in full. Optional parts are declared too, and are ``None`` where a
backend does not have them: users test ``is None``, nothing is probed.

Two backends ship with livewalk: :mod:`livewalk.backend.drgn` (any
``drgn.Program`` for a Linux kernel: live, vmcore or QEMU over QMP) and
:mod:`livewalk.backend.synthetic` (in-memory page tables for tests and
examples). This module does not know them: an object of a backend either
names its backend (a :class:`BackendOwner`, like the synthetic mm) or is of
a class its backend registered (:func:`register_backend`; the drgn backend
registers ``drgn.Object``), and :func:`backend_for_mm` finds it.

An ``mm`` handed to an entry point is whatever the backend uses for an mm: a
drgn ``struct mm_struct *`` Object for the drgn backend, a
:class:`~livewalk.backend.synthetic.SyntheticMM` for the synthetic one.

>>> from livewalk.backend.synthetic import SyntheticMM
>>> mm = SyntheticMM(levels=4)
>>> backend = backend_for_mm(mm)
>>> backend.paging.levels, backend.prog is None
(4, True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from livewalk.mm.vma import VMA

if TYPE_CHECKING:
    from drgn import Object, Program

    from livewalk.arch import ArchPaging
    from livewalk.kernel import KernelFeatures
    from livewalk.mm.vma import VMFlagBits

__all__ = (
    "BackendOwner",
    "CONTRACT_METHODS",
    "CONTRACT_PROPERTIES",
    "PageTableBackend",
    "TableReadError",
    "VMA",
    "backend_for_mm",
    "register_backend",
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


@runtime_checkable
class PageTableBackend(Protocol):
    """
    Where page tables, VMAs and page state come from. Implementations must
    be read-only: nothing here may ever write to the target.

    Properties (read-only; the optional ones are ``None`` when the backend
    does not have them):
    """

    @property
    def paging(self) -> ArchPaging:
        """Paging geometry and decoding parameters of the target (the arch object)."""
        ...

    @property
    def prog(self) -> Program | None:
        """The drgn program read, or ``None`` for a backend without one."""
        ...

    @property
    def features(self) -> KernelFeatures:
        """What the target kernel has (:mod:`livewalk.kernel`)."""
        ...

    @property
    def vm_flag_bits(self) -> VMFlagBits:
        """The target's ``vm_flags`` bit numbers (:class:`~livewalk.mm.vma.VMFlagBits`)."""
        ...

    @property
    def zero_pfn(self) -> int | None:
        """PFN of the shared zero page; ``None`` if unknown."""
        ...

    @property
    def huge_zero_pfn(self) -> int | None:
        """PFN of the huge zero folio; ``None`` while it is not allocated or unknown."""
        ...

    @property
    def highest_memmap_pfn(self) -> int | None:
        """``highest_memmap_pfn``: no normal page lies above; ``None`` if unknown."""
        ...

    @property
    def pfn_to_page(self) -> Callable[[int], Any] | None:
        """
        ``pfn_to_page(pfn)`` (a ``struct page *`` Object for drgn), or
        ``None`` if the backend has no ``struct page``.
        """
        ...

    @property
    def page_folio(self) -> Callable[[int], Any] | None:
        """
        ``page_folio(pfn_to_page(pfn))`` (a ``struct folio *`` Object for
        drgn), or ``None`` if the backend has no folios.
        """
        ...

    def read_table(self, paddr: int) -> Sequence[int]:
        """
        Read the 4 KiB page-table page at physical address *paddr* and
        return its 512 raw 64-bit entries (an ``array('Q')`` or a
        ``memoryview`` cast to ``'Q'``). The walker caches the result for
        the length of one walk, so a backend need not cache.

        :raises TableReadError: if the page cannot be read
        """
        ...

    def mm_pgd(self, mm: Any) -> int:
        """
        ``mm->pgd``: the kernel virtual address of the mm's top-level table
        (for ``init_mm`` that is ``swapper_pg_dir`` in the kernel image).
        """
        ...

    def pgd_phys(self, pgd: int) -> int:
        """
        ``__pa()`` of a top-level table (``mm->pgd``, or the *pgd* argument of
        the kernel walks). Lower tables are reached through the direct map.
        """
        ...

    def find_vma(self, mm: Any, addr: int) -> VMA | None:
        """``find_vma(mm, addr)``: the first VMA of *mm* with ``vm_end > addr``, or ``None``."""
        ...

    def vmas(self, mm: Any) -> Sequence[VMA]:
        """All VMAs of *mm* in address order (``for_each_vma``)."""
        ...

    def vma_snapshot(self, vma: Any) -> VMA:
        """
        The :class:`VMA` snapshot of a backend VMA object (a drgn
        ``struct vm_area_struct *``, a synthetic VMA).

        :raises TypeError: if *vma* is not one of this backend's VMAs
        """
        ...

    def mapping_vmas(self, mapping: Any, first_index: int, last_index: int) -> Iterable[VMA]:
        """
        The VMAs in ``mapping->i_mmap`` that overlap the file page range
        [*first_index*, *last_index*], in ``vma_interval_tree_foreach`` order.
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

    def entry_object(self, level: int, kaddr: int) -> Object | None:
        """
        The backend's native view of the entry at kernel address *kaddr*
        (for drgn: a ``pte_t *`` ... ``pgd_t *`` Object; *level* is a
        :class:`~livewalk.arch.x86.pgtable.PageTableLevel`), ``None`` if the
        backend has none.
        """
        ...

    def mm_task_size(self, mm: Any) -> int:
        """
        ``mm->task_size``: the end of the user address space of *mm*
        (``TASK_SIZE_MAX`` of the architecture for an mm without one).
        """
        ...

    def mm_stamp(self, mm: Any) -> tuple[int, ...] | None:
        """
        A cheap fresh reading of *mm* that changes whenever its VMAs can
        have changed. The first element is a sequence count, odd while a
        writer holds the mmap lock (``mm_lock_seq``), when the kernel has
        one. ``None`` if the backend cannot tell.
        """
        ...

    def call_scope(self) -> AbstractContextManager[None]:
        """
        The scope of one user call (one vtop, one pagemap read), entered
        around it: inside, a backend whose reads cost may read the members
        of an mm that every call asks for (``pgd``, ``task_size``, the VMA
        cache's stamp) once, and forget them when the scope ends. Scopes
        nest; :meth:`mm_stamp` is always read fresh, so consistency checks
        keep their guarantees. A backend with nothing to share returns a
        scope that does nothing.
        """
        ...


#: The contract's read-only properties, in declaration order.
CONTRACT_PROPERTIES = (
    "paging",
    "prog",
    "features",
    "vm_flag_bits",
    "zero_pfn",
    "huge_zero_pfn",
    "highest_memmap_pfn",
    "pfn_to_page",
    "page_folio",
)

#: The contract's methods, in declaration order.
CONTRACT_METHODS = (
    "read_table",
    "mm_pgd",
    "pgd_phys",
    "find_vma",
    "vmas",
    "vma_snapshot",
    "mapping_vmas",
    "vma_mm",
    "is_init_mm",
    "init_mm",
    "entry_object",
    "mm_task_size",
    "mm_stamp",
    "call_scope",
)

@runtime_checkable
class BackendOwner(Protocol):
    """
    An object (an mm, a VMA object, a mapping) that names its own backend,
    like :class:`~livewalk.backend.synthetic.SyntheticMM`.
    """

    @property
    def livewalk_backend(self) -> PageTableBackend:
        """The backend that serves this object."""
        ...


_BACKEND_OF: dict[type, Callable[[Any], PageTableBackend]] = {}


def register_backend(cls: type, backend_of: Callable[[Any], PageTableBackend]) -> None:
    """
    Declare that objects of class *cls* (and its subclasses) are served by
    ``backend_of(obj)``. A backend module calls this for the classes of its
    mms, VMA objects and mappings when it is imported.
    """
    _BACKEND_OF[cls] = backend_of


def backend_for_mm(mm: Any) -> PageTableBackend:
    """
    Return the backend that serves *mm* (or a VMA object, a mapping, a
    kernel *pgd* Object): the one it names (a :class:`BackendOwner`), else
    the one registered for its class.

    :raises TypeError: if no backend serves it
    """
    for cls in type(mm).__mro__:
        backend_of = _BACKEND_OF.get(cls)
        if backend_of is not None:
            return backend_of(mm)
    if isinstance(mm, BackendOwner):
        return mm.livewalk_backend
    raise TypeError(f"cannot walk {type(mm).__name__!r}: not a drgn Object or a livewalk mm")
