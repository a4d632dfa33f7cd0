# SPDX-License-Identifier: LGPL-2.1-or-later
"""
VMAs
----

The one home of what livewalk knows about a ``struct vm_area_struct``: the
``VM_*`` flag bits (``include/linux/mm.h``) and :class:`VMA`, the snapshot of
one VMA that backends hand to the walker.

The module constants are the Linux 7.2 x86_64 values. The bit numbers are
stable on every kernel livewalk supports, but since Linux 6.19 they are also
the enumerators ``VMA_*_BIT`` in the debug info, and a few depend on the
configuration (``VM_SOFTDIRTY`` is 0 without ``CONFIG_MEM_SOFT_DIRTY``): a
backend reads the target's own as a :class:`VMFlagBits`
(``backend.vm_flag_bits``), and code that must be exact on any kernel uses
that.

>>> vma = VMA(vm_start=0x400000, vm_end=0x401000, vm_flags=VM_READ | VM_EXEC)
>>> vma.is_hugetlb, bool(vma.vm_flags & VM_WRITE)
(False, False)
>>> VMFlagBits().VM_HUGETLB == VM_HUGETLB
True
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = (
    "VMA",
    "VMFlagBits",
    "VM_EXEC",
    "VM_GROWSDOWN",
    "VM_HUGEPAGE",
    "VM_HUGETLB",
    "VM_LOCKED",
    "VM_MAYSHARE",
    "VM_MAYWRITE",
    "VM_MIXEDMAP",
    "VM_NOHUGEPAGE",
    "VM_PFNMAP",
    "VM_RAND_READ",
    "VM_READ",
    "VM_SEQ_READ",
    "VM_SHARED",
    "VM_SOFTDIRTY",
    "VM_WRITE",
)


@dataclasses.dataclass(frozen=True, slots=True)
class VMFlagBits:
    """
    Bit numbers of the ``vm_flags`` bits livewalk uses, as the target has
    them. The defaults are Linux 7.2's; a backend reads the target's from
    its debug info (the ``VMA_*_BIT`` enumerators since Linux 6.19, else
    ``vmaflag_names`` of ``mm/debug.c``).

    >>> hex(VMFlagBits(soft_dirty=None).VM_SOFTDIRTY)
    '0x0'

    :ivar soft_dirty: ``VMA_SOFTDIRTY_BIT``, or ``None`` when the kernel has
        no ``CONFIG_MEM_SOFT_DIRTY`` (``VM_SOFTDIRTY`` is then 0)
    """

    read: int = 0
    write: int = 1
    exec: int = 2
    shared: int = 3
    maywrite: int = 5
    mayshare: int = 7
    growsdown: int = 8
    pfnmap: int = 10
    locked: int = 13
    io: int = 14
    seq_read: int = 15
    rand_read: int = 16
    dontexpand: int = 18
    hugetlb: int = 22
    soft_dirty: int | None = 27
    mixedmap: int = 28
    hugepage: int = 29
    nohugepage: int = 30

    @property
    def VM_READ(self) -> int:
        return 1 << self.read

    @property
    def VM_WRITE(self) -> int:
        return 1 << self.write

    @property
    def VM_EXEC(self) -> int:
        return 1 << self.exec

    @property
    def VM_SHARED(self) -> int:
        return 1 << self.shared

    @property
    def VM_MAYWRITE(self) -> int:
        return 1 << self.maywrite

    @property
    def VM_MAYSHARE(self) -> int:
        return 1 << self.mayshare

    @property
    def VM_GROWSDOWN(self) -> int:
        return 1 << self.growsdown

    @property
    def VM_PFNMAP(self) -> int:
        return 1 << self.pfnmap

    @property
    def VM_LOCKED(self) -> int:
        return 1 << self.locked

    @property
    def VM_IO(self) -> int:
        return 1 << self.io

    @property
    def VM_DONTEXPAND(self) -> int:
        return 1 << self.dontexpand

    @property
    def VM_SEQ_READ(self) -> int:
        return 1 << self.seq_read

    @property
    def VM_RAND_READ(self) -> int:
        return 1 << self.rand_read

    @property
    def VM_HUGETLB(self) -> int:
        return 1 << self.hugetlb

    @property
    def VM_SOFTDIRTY(self) -> int:
        return 0 if self.soft_dirty is None else 1 << self.soft_dirty

    @property
    def VM_MIXEDMAP(self) -> int:
        return 1 << self.mixedmap

    @property
    def VM_HUGEPAGE(self) -> int:
        return 1 << self.hugepage

    @property
    def VM_NOHUGEPAGE(self) -> int:
        return 1 << self.nohugepage


_DEFAULT = VMFlagBits()

#: ``VM_READ`` ... ``VM_NOHUGEPAGE`` with the Linux 7.2 bit numbers.
VM_READ = _DEFAULT.VM_READ
VM_WRITE = _DEFAULT.VM_WRITE
VM_EXEC = _DEFAULT.VM_EXEC
VM_SHARED = _DEFAULT.VM_SHARED
VM_MAYWRITE = _DEFAULT.VM_MAYWRITE
VM_MAYSHARE = _DEFAULT.VM_MAYSHARE
VM_GROWSDOWN = _DEFAULT.VM_GROWSDOWN
VM_PFNMAP = _DEFAULT.VM_PFNMAP
VM_LOCKED = _DEFAULT.VM_LOCKED
VM_SEQ_READ = _DEFAULT.VM_SEQ_READ
VM_RAND_READ = _DEFAULT.VM_RAND_READ
VM_HUGETLB = _DEFAULT.VM_HUGETLB
VM_SOFTDIRTY = _DEFAULT.VM_SOFTDIRTY
VM_MIXEDMAP = _DEFAULT.VM_MIXEDMAP
VM_HUGEPAGE = _DEFAULT.VM_HUGEPAGE
VM_NOHUGEPAGE = _DEFAULT.VM_NOHUGEPAGE


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
    :ivar anonymous: ``vma_is_anonymous(vma)`` (``vma->vm_ops == NULL``)
    """

    vm_start: int
    vm_end: int
    vm_flags: int
    vm_pgoff: int = 0
    hugetlb_shift: int = 0
    pfnmap: bool = False
    # A drgn Object or a backend's own VMA object (see the class docstring).
    obj: Any = None
    anonymous: bool = False

    @property
    def is_hugetlb(self) -> bool:
        """``is_vm_hugetlb_page(vma)``."""
        return self.hugetlb_shift != 0
