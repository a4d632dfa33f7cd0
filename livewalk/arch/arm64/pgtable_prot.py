# SPDX-License-Identifier: LGPL-2.1-or-later
"""
arm64 software bits and protection_map
--------------------------------------

The software-defined PTE bits of Linux 7.2
``arch/arm64/include/asm/pgtable-prot.h`` (write, dirty, special, uffd-wp,
the "present but invalid" marker, the swap-only bits), the user page
protections built from them, and ``vm_get_page_prot()`` of
``arch/arm64/mm/mmap.c``.

Two of them are hardware bits reused: ``PTE_WRITE`` *is* ``PTE_DBM`` (bit
51), so a writable page whose ``PTE_RDONLY`` the hardware cleared is dirty;
``PTE_PRESENT_INVALID`` *is* ``PTE_NG`` (bit 11), meaningful only while
``PTE_VALID`` is clear (PROT_NONE, NUMA hints, ``pmd_mkinvalid()``). arm64
has no soft-dirty bit.

>>> hex(PAGE_NONE), hex(vm_get_page_prot(0x3))  # VM_READ | VM_WRITE, private
('0x60000000000f82', '0x60000000000fc3')
>>> hex(vm_get_page_prot(0xB, lpa2=True))  # shared writable: SH[1:0] are PA bits with LPA2
'0x68000000000cc3'
"""

from __future__ import annotations

from livewalk.arch.arm64.memory import MT_NORMAL
from livewalk.arch.arm64.pgtable_hwdef import (
    PTE_AF,
    PTE_DBM,
    PTE_NG,
    PTE_PXN,
    PTE_RDONLY,
    PTE_SHARED,
    PTE_TYPE_PAGE,
    PTE_USER,
    PTE_UXN,
    PTE_VALID,
    pte_attrindx,
)

__all__ = (
    "PAGE_EXECONLY",
    "PAGE_NONE",
    "PAGE_READONLY",
    "PAGE_READONLY_EXEC",
    "PAGE_SHARED",
    "PAGE_SHARED_EXEC",
    "PTE_DIRTY",
    "PTE_PRESENT_INVALID",
    "PTE_SPECIAL",
    "PTE_SWP_EXCLUSIVE",
    "PTE_SWP_UFFD_WP",
    "PTE_UFFD_WP",
    "PTE_WRITE",
    "protection_map",
    "vm_get_page_prot",
)

PTE_WRITE = PTE_DBM
PTE_SWP_EXCLUSIVE = 1 << 2  # swap entries only
PTE_DIRTY = 1 << 55
PTE_SPECIAL = 1 << 56
PTE_PRESENT_INVALID = PTE_NG  # only while PTE_VALID is clear
# CONFIG_HAVE_ARCH_USERFAULTFD_WP (selected with USERFAULTFD)
PTE_UFFD_WP = 1 << 58
PTE_SWP_UFFD_WP = 1 << 3  # swap entries only

_PAGE_DEFAULT = PTE_TYPE_PAGE | PTE_AF | PTE_SHARED | pte_attrindx(MT_NORMAL)
_USER_RO = _PAGE_DEFAULT | PTE_USER | PTE_RDONLY | PTE_NG | PTE_PXN

PAGE_READONLY = _USER_RO | PTE_UXN
PAGE_READONLY_EXEC = _USER_RO
#: shared writable pages start clean: ``PTE_RDONLY | PTE_WRITE``
PAGE_SHARED = _USER_RO | PTE_UXN | PTE_WRITE
PAGE_SHARED_EXEC = _USER_RO | PTE_WRITE
PAGE_EXECONLY = _PAGE_DEFAULT | PTE_RDONLY | PTE_NG | PTE_PXN
PAGE_NONE = (_PAGE_DEFAULT & ~PTE_VALID) | PTE_PRESENT_INVALID | PTE_RDONLY | PTE_NG | PTE_PXN | PTE_UXN

#: ``protection_map[]`` of ``arch/arm64/mm/mmap.c``, indexed by
#: ``VM_READ | VM_WRITE | VM_EXEC | VM_SHARED``: private writable mappings
#: are read-only until the write fault copies them.
protection_map = (
    PAGE_NONE,
    PAGE_READONLY,
    PAGE_READONLY,
    PAGE_READONLY,
    PAGE_READONLY_EXEC,
    PAGE_READONLY_EXEC,
    PAGE_READONLY_EXEC,
    PAGE_READONLY_EXEC,
    PAGE_NONE,
    PAGE_READONLY,
    PAGE_SHARED,
    PAGE_SHARED,
    PAGE_READONLY_EXEC,
    PAGE_READONLY_EXEC,
    PAGE_SHARED_EXEC,
    PAGE_SHARED_EXEC,
)

_VM_EXEC = 0x4
_VM_SHARED = 0x8
_PROT_INDEX_BITS = len(protection_map) - 1


def vm_get_page_prot(vm_flags: int, *, lpa2: bool = False, epan: bool = False) -> int:
    """
    ``vm_get_page_prot()``: ``protection_map[]`` as ``adjust_protection_map()``
    left it at boot: execute-only without ``PTE_USER`` with Enhanced PAN
    (*epan*), and ``PTE_SHARED`` dropped with LPA2 (*lpa2*), where those
    bits hold PA[51:50]. The MTE, GCS and POE bits it may add are not
    reproduced.
    """
    idx = vm_flags & _PROT_INDEX_BITS
    if epan and idx & ~_VM_SHARED == _VM_EXEC:
        prot = PAGE_EXECONLY
    else:
        prot = protection_map[idx]
    if lpa2:
        prot &= ~PTE_SHARED
    return prot
