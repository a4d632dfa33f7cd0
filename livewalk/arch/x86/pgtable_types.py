# SPDX-License-Identifier: LGPL-2.1-or-later
"""
x86_64 page-table bits and geometry
-----------------------------------

The one home of the x86_64 entry bits (``_PAGE_*``) and of the fixed
geometry constants, as in Linux 7.2 ``arch/x86/include/asm/pgtable_types.h``,
``pgtable_64_types.h`` and ``page_types.h``. Only :mod:`livewalk.arch.x86`
uses the ``_PAGE_*`` names: everything else tests entries through the
predicates of :class:`livewalk.arch.x86.pgtable.X86Paging`.

>>> hex(_PAGE_TABLE)
'0x67'
"""

from __future__ import annotations

from livewalk.arch import ULONG_MAX

__all__ = (
    "P4D_SHIFT",
    "P4D_SIZE",
    "PAGE_MASK",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "PMD_SHIFT",
    "PMD_SIZE",
    "PTRS_PER_TABLE",
    "PUD_SHIFT",
    "PUD_SIZE",
    "START_KERNEL_MAP",
    "_KERNPG_TABLE",
    "_PAGE_ACCESSED",
    "_PAGE_DIRTY",
    "_PAGE_DIRTY_BITS",
    "_PAGE_GLOBAL",
    "_PAGE_KNL_ERRATUM_MASK",
    "_PAGE_NX",
    "_PAGE_PAT",
    "_PAGE_PAT_LARGE",
    "_PAGE_PCD",
    "_PAGE_PRESENT",
    "_PAGE_PROTNONE",
    "_PAGE_PSE",
    "_PAGE_PWT",
    "_PAGE_RW",
    "_PAGE_SAVED_DIRTY",
    "_PAGE_SOFT_DIRTY",
    "_PAGE_SPECIAL",
    "_PAGE_SWP_EXCLUSIVE",
    "_PAGE_SWP_SOFT_DIRTY",
    "_PAGE_SWP_UFFD_WP",
    "_PAGE_TABLE",
    "_PAGE_UFFD_WP",
    "_PAGE_USER",
)

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1) & ULONG_MAX
PMD_SHIFT = 21
PUD_SHIFT = 30
P4D_SHIFT = 39
PMD_SIZE = 1 << PMD_SHIFT
PUD_SIZE = 1 << PUD_SHIFT
P4D_SIZE = 1 << P4D_SHIFT
PTRS_PER_TABLE = 512

#: ``__START_KERNEL_map``: where the kernel image is mapped
#: (``arch/x86/include/asm/page_64_types.h``).
START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000

_PAGE_PRESENT = 1 << 0
_PAGE_RW = 1 << 1
_PAGE_USER = 1 << 2
_PAGE_PWT = 1 << 3
_PAGE_PCD = 1 << 4
_PAGE_ACCESSED = 1 << 5
_PAGE_DIRTY = 1 << 6
_PAGE_PSE = 1 << 7
_PAGE_PAT = 1 << 7
_PAGE_GLOBAL = 1 << 8
_PAGE_PROTNONE = 1 << 8
_PAGE_SPECIAL = 1 << 9
_PAGE_UFFD_WP = 1 << 10
_PAGE_SOFT_DIRTY = 1 << 11
_PAGE_PAT_LARGE = 1 << 12
_PAGE_SAVED_DIRTY = 1 << 58
_PAGE_NX = 1 << 63
# bits 1-3 of a swap entry (P = 0)
_PAGE_SWP_SOFT_DIRTY = 1 << 1
_PAGE_SWP_UFFD_WP = 1 << 2
_PAGE_SWP_EXCLUSIVE = 1 << 3
_PAGE_KNL_ERRATUM_MASK = _PAGE_DIRTY | _PAGE_ACCESSED
_PAGE_DIRTY_BITS = _PAGE_DIRTY | _PAGE_SAVED_DIRTY
_KERNPG_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY
_PAGE_TABLE = _KERNPG_TABLE | _PAGE_USER
