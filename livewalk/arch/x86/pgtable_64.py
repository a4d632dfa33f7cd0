# SPDX-License-Identifier: LGPL-2.1-or-later
"""
x86_64 swap-entry layout
------------------------

Where a non-present x86_64 PTE or PMD keeps its swap type and offset, as in
Linux 7.2 ``arch/x86/include/asm/pgtable_64.h``: the type in the top 5 bits,
the offset in bits 9-58 stored inverted (L1TF), soft-dirty, uffd-wp and
exclusive in bits 1-3. Bit 7 stays clear so that a PMD swap entry is never
``pmd_present()``.

>>> v = swp_entry_to_pte(25, 0x1234)
>>> __swp_type(v), hex(__swp_offset(v))
(25, '0x1234')
"""

from __future__ import annotations

from livewalk.arch import ULONG_MAX
from livewalk.arch.x86.pgtable_types import (
    _PAGE_SWP_EXCLUSIVE,
    _PAGE_SWP_SOFT_DIRTY,
    _PAGE_SWP_UFFD_WP,
)

__all__ = (
    "SWP_OFFSET_SHIFT",
    "SWP_TYPE_BITS",
    "__swp_offset",
    "__swp_type",
    "swp_entry_to_pte",
)

SWP_TYPE_BITS = 5
SWP_OFFSET_SHIFT = 9 + SWP_TYPE_BITS


def __swp_type(v: int) -> int:
    """``__swp_type()``: the top 5 bits."""
    return v >> (64 - SWP_TYPE_BITS)


def __swp_offset(v: int) -> int:
    """``__swp_offset()``: bits 9-58, inverted back."""
    return (((~v & ULONG_MAX) << SWP_TYPE_BITS) & ULONG_MAX) >> SWP_OFFSET_SHIFT


def swp_entry_to_pte(
    type: int,
    offset: int,
    *,
    soft_dirty: bool = False,
    uffd_wp: bool = False,
    exclusive: bool = False,
) -> int:
    """Encode a swap entry as x86_64 stores it (``__swp_entry()``, offset inverted)."""
    v = ((((~offset) & ULONG_MAX) << SWP_OFFSET_SHIFT) & ULONG_MAX) >> SWP_TYPE_BITS
    v |= (type & 31) << (64 - SWP_TYPE_BITS)
    if soft_dirty:
        v |= _PAGE_SWP_SOFT_DIRTY
    if uffd_wp:
        v |= _PAGE_SWP_UFFD_WP
    if exclusive:
        v |= _PAGE_SWP_EXCLUSIVE
    return v
