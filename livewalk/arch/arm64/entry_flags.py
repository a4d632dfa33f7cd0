# SPDX-License-Identifier: LGPL-2.1-or-later
"""
arm64 entry flags by name
-------------------------

The names of the bits of a raw arm64 descriptor, for tools that show one
entry (vtop's per-level lines): what :func:`decode_entry_flags` says is
read with the predicates of :class:`~livewalk.arch.arm64.pgtable.Arm64Paging`
and the bits of Linux 7.2 ``asm/pgtable-hwdef.h`` and ``pgtable-prot.h``.
A valid entry is a table (``TABLE``, with its hierarchical ``PXNTable``,
``UXNTable``, ``APTable`` limits), a block (``BLOCK``) or a page (``PAGE``);
an invalid one with ``PTE_PRESENT_INVALID`` is ``PRESENT_INVALID``
(PROT_NONE or a NUMA hint, present for the kernel); any other non-zero
entry is a swap-format entry (exclusive and uffd-wp bits, type, offset).
``SHD`` is the shareability field, which holds PA[51:50] when LPA2 is on
(then shown as ``PA[51:50]``). ``DIRTY`` is ``pte_dirty()``: software
dirty, or writable with ``PTE_RDONLY`` cleared by the hardware (DBM).

>>> p = Arm64Paging()
>>> decode_entry_flags(0x00E8000040000C43, PageTableLevel.PTE, p)
['PAGE', 'USER', 'AF', 'NG', 'WRITE', 'DIRTY', 'PXN', 'UXN', 'MT_NORMAL']
>>> from livewalk.arch.arm64.pgtable import swp_entry_to_pte
>>> decode_entry_flags(swp_entry_to_pte(3, 0x1234, exclusive=True), PageTableLevel.PTE, p)
['NOT_PRESENT(swap format)', 'SWP_EXCLUSIVE', 'type=3', 'offset=0x1234']
"""

from __future__ import annotations

from livewalk.arch import PageTableLevel
from livewalk.arch.arm64.memory import MEMORY_TYPE_NAMES
from livewalk.arch.arm64.pgtable import (
    SWP_OFFSET_BITS,
    SWP_OFFSET_SHIFT,
    SWP_TYPE_BITS,
    SWP_TYPE_SHIFT,
    Arm64Paging,
    pte_dirty,
)
from livewalk.arch.arm64.pgtable_hwdef import (
    PMD_TABLE_PXN,
    PMD_TABLE_UXN,
    PMD_TYPE_MASK,
    PMD_TYPE_TABLE,
    PTE_AF,
    PTE_ATTRINDX_MASK,
    PTE_CONT,
    PTE_GP,
    PTE_NG,
    PTE_PXN,
    PTE_RDONLY,
    PTE_SHARED,
    PTE_USER,
    PTE_UXN,
    PTE_VALID,
)
from livewalk.arch.arm64.pgtable_prot import (
    PTE_DIRTY,
    PTE_PRESENT_INVALID,
    PTE_SPECIAL,
    PTE_SWP_EXCLUSIVE,
    PTE_SWP_UFFD_WP,
    PTE_UFFD_WP,
    PTE_WRITE,
)

__all__ = ("decode_entry_flags",)

# table descriptors: APTable[1:0] in bits 62:61 (hwdef's PMD_TABLE_AP)
_PMD_TABLE_AP_SHIFT = 61


def decode_entry_flags(value: int, level: PageTableLevel, paging: Arm64Paging) -> list[str]:
    """
    Name the bits of the raw *level* descriptor *value* of *paging*'s kernel.

    >>> decode_entry_flags(0x0800000040001003 | 1 << 59, PageTableLevel.PMD, Arm64Paging())
    ['TABLE', 'PXNTable']
    >>> decode_entry_flags(0x0060000040000C82 | 1 << 55, PageTableLevel.PTE, Arm64Paging())
    ['PRESENT_INVALID', 'RDONLY', 'AF', 'DIRTY', 'PXN', 'UXN', 'MT_NORMAL']
    """
    if value == 0:
        return []
    if not value & PTE_VALID and not value & PTE_PRESENT_INVALID:
        names = ["NOT_PRESENT(swap format)"]
        if value & PTE_SWP_EXCLUSIVE:
            names.append("SWP_EXCLUSIVE")
        if paging.uffd_wp and value & PTE_SWP_UFFD_WP:
            names.append("SWP_UFFD_WP")
        names.append(f"type={(value >> SWP_TYPE_SHIFT) & ((1 << SWP_TYPE_BITS) - 1)}")
        names.append(f"offset={(value >> SWP_OFFSET_SHIFT) & ((1 << SWP_OFFSET_BITS) - 1):#x}")
        return names
    table_level = level != PageTableLevel.PTE and not paging.folded(level)
    if value & PTE_VALID and table_level and (value & PMD_TYPE_MASK) == PMD_TYPE_TABLE:
        names = ["TABLE"]
        if value & PMD_TABLE_PXN:
            names.append("PXNTable")
        if value & PMD_TABLE_UXN:
            names.append("UXNTable")
        ap = value >> _PMD_TABLE_AP_SHIFT & 3
        if ap:
            names.append(f"APTable={ap}")
        return names
    if value & PTE_VALID:
        names = ["PAGE" if level == PageTableLevel.PTE else "BLOCK"]
    else:
        # PTE_PRESENT_INVALID is the nG bit, meaningful only while invalid
        names = ["PRESENT_INVALID"]
    if value & PTE_USER:
        names.append("USER")
    if value & PTE_RDONLY:
        names.append("RDONLY")
    if value & PTE_SHARED:
        names.append("PA[51:50]" if paging.lpa2_enabled else "SHD")
    if value & PTE_AF:
        names.append("AF")
    if value & PTE_VALID and value & PTE_NG:
        names.append("NG")
    if value & PTE_WRITE:
        names.append("WRITE")
    if pte_dirty(value) or value & PTE_DIRTY:
        names.append("DIRTY")
    if value & PTE_SPECIAL:
        names.append("SPECIAL")
    if paging.uffd_wp and value & PTE_UFFD_WP:
        names.append("UFFD_WP")
    if value & PTE_CONT:
        names.append("CONT")
    if value & PTE_PXN:
        names.append("PXN")
    if value & PTE_UXN:
        names.append("UXN")
    if value & PTE_GP:
        names.append("GP")
    idx = (value & PTE_ATTRINDX_MASK) >> 2
    names.append(MEMORY_TYPE_NAMES.get(idx, f"MAIR[{idx}]"))
    return names
