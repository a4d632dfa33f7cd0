# SPDX-License-Identifier: LGPL-2.1-or-later
"""
x86_64 protection_map
---------------------

``vm_get_page_prot()`` of Linux 7.2 ``arch/x86/mm/pgprot.c``: the page
protection bits a new PTE of a VMA gets, chosen by the VMA's read, write,
exec and shared flags (pkeys and memory-encryption bits are not reproduced).

>>> hex(vm_get_page_prot(0x3))  # VM_READ | VM_WRITE, private
'0x8000000000000025'
"""

from __future__ import annotations

from livewalk.arch.x86.pgtable_types import (
    _PAGE_ACCESSED,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_RW,
    _PAGE_USER,
)

__all__ = ("PAGE_NONE", "protection_map", "vm_get_page_prot")

PAGE_NONE = _PAGE_PROTNONE | _PAGE_ACCESSED
_READONLY = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED | _PAGE_NX
_READONLY_EXEC = _PAGE_PRESENT | _PAGE_USER | _PAGE_ACCESSED
_SHARED = _READONLY | _PAGE_RW
_SHARED_EXEC = _READONLY_EXEC | _PAGE_RW

#: ``protection_map[]``, indexed by the low four ``vm_flags`` bits
#: (``VM_READ | VM_WRITE | VM_EXEC | VM_SHARED``, see ``include/linux/mm.h``);
#: private writable mappings get the read-only "copy" protections.
protection_map = (
    PAGE_NONE,
    _READONLY,
    _READONLY,  # PAGE_COPY
    _READONLY,
    _READONLY_EXEC,
    _READONLY_EXEC,
    _READONLY_EXEC,  # PAGE_COPY_EXEC
    _READONLY_EXEC,
    PAGE_NONE,
    _READONLY,
    _SHARED,
    _SHARED,
    _READONLY_EXEC,
    _READONLY_EXEC,
    _SHARED_EXEC,
    _SHARED_EXEC,
)

# VM_READ | VM_WRITE | VM_EXEC | VM_SHARED: the index bits of protection_map
_PROT_INDEX_BITS = len(protection_map) - 1


def vm_get_page_prot(vm_flags: int) -> int:
    """``vm_get_page_prot()``: ``protection_map[vm_flags & (VM_READ|VM_WRITE|VM_EXEC|VM_SHARED)]``."""
    return protection_map[vm_flags & _PROT_INDEX_BITS]
