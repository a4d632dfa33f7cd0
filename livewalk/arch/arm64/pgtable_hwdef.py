# SPDX-License-Identifier: LGPL-2.1-or-later
"""
arm64 descriptor bits and geometry
----------------------------------

The one home of the arm64 hardware descriptor bits and of the level
geometry, as in Linux 7.2 ``arch/arm64/include/asm/pgtable-hwdef.h``: a
translation level resolves ``PAGE_SHIFT - 3`` bits (512, 2048 or 8192
entries for the 4K, 16K and 64K granules), levels are numbered -1 to 3 by
the architecture (3 being the PTE level), and a VA of *n* bits needs
``(n - 4) // (PAGE_SHIFT - 3)`` levels.

>>> arm64_hw_pgtable_levels(48, 12), arm64_hw_pgtable_levels(52, 12), arm64_hw_pgtable_levels(47, 14)
(4, 5, 3)
>>> arm64_hw_pgtable_level_shift(-1, 12), arm64_hw_pgtable_level_shift(2, 16)
(48, 29)
"""

from __future__ import annotations

__all__ = (
    "CONT_PMD_SHIFT_CONFIG",
    "CONT_PTE_SHIFT_CONFIG",
    "PMD_SECT_AF",
    "PMD_SECT_CONT",
    "PMD_TABLE_AF",
    "PMD_TABLE_PXN",
    "PMD_TABLE_UXN",
    "PMD_TYPE_MASK",
    "PMD_TYPE_SECT",
    "PMD_TYPE_TABLE",
    "PTDESC_ORDER",
    "PTE_AF",
    "PTE_ATTRINDX_MASK",
    "PTE_CONT",
    "PTE_DBM",
    "PTE_GP",
    "PTE_NG",
    "PTE_PXN",
    "PTE_RDONLY",
    "PTE_SHARED",
    "PTE_TYPE_MASK",
    "PTE_TYPE_PAGE",
    "PTE_USER",
    "PTE_UXN",
    "PTE_VALID",
    "VA_BITS_CHOICES",
    "arm64_hw_pgtable_level_shift",
    "arm64_hw_pgtable_levels",
    "pte_addr_low",
    "pte_attrindx",
)

#: log2 of the size of a descriptor (8 bytes).
PTDESC_ORDER = 3

# -- level 3 (PTE) descriptor; block descriptors share the attribute bits --
PTE_VALID = 1 << 0
PTE_TYPE_MASK = 3 << 0
PTE_TYPE_PAGE = 3 << 0
PTE_USER = 1 << 6  # AP[1]
PTE_RDONLY = 1 << 7  # AP[2]
PTE_SHARED = 3 << 8  # SH[1:0]; PA[51:50] with LPA2
PTE_AF = 1 << 10
PTE_NG = 1 << 11
PTE_GP = 1 << 50  # BTI guarded
PTE_DBM = 1 << 51
PTE_CONT = 1 << 52
PTE_PXN = 1 << 53
PTE_UXN = 1 << 54
PTE_ATTRINDX_MASK = 7 << 2

# -- table and block (section) descriptors at levels -1..2 ------------------
PMD_TYPE_MASK = 3 << 0
PMD_TYPE_TABLE = 3 << 0
PMD_TYPE_SECT = 1 << 0
PMD_TABLE_AF = 1 << 10  # ignored without FEAT_HAFT
PMD_SECT_AF = 1 << 10
PMD_SECT_CONT = 1 << 52
PMD_TABLE_PXN = 1 << 59
PMD_TABLE_UXN = 1 << 60

#: ``CONFIG_ARM64_CONT_PTE_SHIFT`` and ``CONFIG_ARM64_CONT_PMD_SHIFT`` by
#: ``PAGE_SHIFT`` (``arch/arm64/Kconfig``): 16, 128 and 32 contiguous PTEs;
#: 16, 32 and 32 contiguous PMDs.
CONT_PTE_SHIFT_CONFIG = {12: 4, 14: 7, 16: 5}
CONT_PMD_SHIFT_CONFIG = {12: 4, 14: 5, 16: 5}

#: The ``CONFIG_ARM64_VA_BITS`` choices by ``PAGE_SHIFT`` (``arch/arm64/Kconfig``).
VA_BITS_CHOICES = {12: (39, 48, 52), 14: (36, 47, 48, 52), 16: (42, 48, 52)}


def pte_attrindx(t: int) -> int:
    """``PTE_ATTRINDX()``: the MAIR index *t* in AttrIndx[2:0]."""
    return t << 2


def arm64_hw_pgtable_levels(va_bits: int, page_shift: int) -> int:
    """``ARM64_HW_PGTABLE_LEVELS()``: levels needed to translate *va_bits*."""
    return (va_bits - PTDESC_ORDER - 1) // (page_shift - PTDESC_ORDER)


def arm64_hw_pgtable_level_shift(n: int, page_shift: int) -> int:
    """``ARM64_HW_PGTABLE_LEVEL_SHIFT()``: log2 of what an entry at level *n* (-1..3) maps."""
    return (page_shift - PTDESC_ORDER) * (4 - n) + PTDESC_ORDER


def pte_addr_low(page_shift: int) -> int:
    """``PTE_ADDR_LOW``: output-address bits [49:PAGE_SHIFT]."""
    return ((1 << (50 - page_shift)) - 1) << page_shift
