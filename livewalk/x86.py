# SPDX-License-Identifier: LGPL-2.1-or-later
"""
x86_64 paging
-------------

Geometry of x86_64 page tables (4- or 5-level) and the parameters needed to
decode their entries, as in Linux 7.2 ``arch/x86/include/asm/pgtable*.h``.
"""

from __future__ import annotations

import dataclasses
import enum

__all__ = (
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "PMD_SHIFT",
    "PUD_SHIFT",
    "P4D_SHIFT",
    "PTRS_PER_TABLE",
    "PageTableLevel",
    "SwapTypes",
    "X86Paging",
)

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PMD_SHIFT = 21
PUD_SHIFT = 30
P4D_SHIFT = 39
PTRS_PER_TABLE = 512


class PageTableLevel(enum.IntEnum):
    """Page-table levels, numbered like the kernel's ``enum pgtable_level``."""

    PTE = 0
    PMD = 1
    PUD = 2
    P4D = 3
    PGD = 4


@dataclasses.dataclass(frozen=True, slots=True)
class SwapTypes:
    """
    The numbering of swap-entry types (``include/linux/swap.h``), which
    depends on the kernel's configuration. The default is Linux 7.x with
    ``CONFIG_DEVICE_PRIVATE``, ``CONFIG_MIGRATION`` and
    ``CONFIG_MEMORY_FAILURE`` all enabled: 24 swap files, then hwpoison 24,
    migration 25-27, device 28-30 and the PTE marker 31.

    A type that the configuration lacks is ``None``.
    """

    max_swapfiles: int = 24
    hwpoison: int | None = 24
    migration_read: int | None = 25
    migration_read_exclusive: int | None = 26
    migration_write: int | None = 27
    device_write: int | None = 28
    device_read: int | None = 29
    device_exclusive: int | None = 30
    pte_marker: int | None = 31

    @classmethod
    def from_config(
        cls, *, device_private: bool, migration: bool, memory_failure: bool
    ) -> SwapTypes:
        """
        Number the special swap types as Linux 7.x ``include/linux/swap.h``
        does: counting down from 31, the PTE marker (always present), then
        device entries (3, with ``CONFIG_DEVICE_PRIVATE``), migration entries
        (3, with ``CONFIG_MIGRATION``) and hwpoison (1, with
        ``CONFIG_MEMORY_FAILURE``).

        >>> SwapTypes.from_config(device_private=True, migration=True, memory_failure=True)
        ... # doctest: +ELLIPSIS
        SwapTypes(max_swapfiles=24, hwpoison=24, ...)
        """
        top = 32
        pte_marker = top - 1
        top -= 1
        dev = (None, None, None)
        if device_private:
            dev = (top - 3, top - 2, top - 1)  # write, read, exclusive
            top -= 3
        mig = (None, None, None)
        if migration:
            mig = (top - 3, top - 2, top - 1)  # read, read-exclusive, write
            top -= 3
        hwpoison = None
        if memory_failure:
            hwpoison = top - 1
            top -= 1
        return cls(
            max_swapfiles=top,
            hwpoison=hwpoison,
            migration_read=mig[0],
            migration_read_exclusive=mig[1],
            migration_write=mig[2],
            device_write=dev[0],
            device_read=dev[1],
            device_exclusive=dev[2],
            pte_marker=pte_marker,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class X86Paging:
    """
    Paging geometry and decoding parameters of one x86_64 kernel.

    :ivar levels: 5 with LA57 (``__pgtable_l5_enabled``), otherwise 4
    :ivar page_offset: ``page_offset_base``, the start of the direct map
        (``__va(pa) == pa + page_offset``)
    :ivar physical_mask: ``physical_mask`` (``__PHYSICAL_MASK``)
    :ivar swap_types: numbering of swap-entry types
    :ivar uffd_wp: ``CONFIG_HAVE_ARCH_USERFAULTFD_WP`` (bit 10 is ``_PAGE_UFFD_WP``)
    :ivar soft_dirty: ``CONFIG_MEM_SOFT_DIRTY`` (bit 11 is ``_PAGE_SOFT_DIRTY``)
    :ivar pti: ``CONFIG_MITIGATION_PAGE_TABLE_ISOLATION`` (NX is ignored by
        ``pgd_bad``/``p4d_bad``)

    >>> X86Paging(levels=4).pgdir_shift
    39
    """

    levels: int = 5
    page_offset: int = 0xFF11000000000000
    physical_mask: int = (1 << 52) - 1
    swap_types: SwapTypes = dataclasses.field(default_factory=SwapTypes)
    uffd_wp: bool = True
    soft_dirty: bool = True
    pti: bool = True

    def __post_init__(self) -> None:
        if self.levels not in (4, 5):
            raise ValueError(f"x86_64 has 4 or 5 paging levels, not {self.levels}")

    @property
    def pgdir_shift(self) -> int:
        """``PGDIR_SHIFT``: 48 with 5-level paging, 39 with 4-level."""
        return 48 if self.levels == 5 else 39

    @property
    def ptrs_per_p4d(self) -> int:
        """``PTRS_PER_P4D``: 512 with 5-level paging, 1 (folded) with 4-level."""
        return 512 if self.levels == 5 else 1

    @property
    def max_physmem_bits(self) -> int:
        """``MAX_PHYSMEM_BITS``: 52 with 5-level paging, 46 with 4-level."""
        return 52 if self.levels == 5 else 46

    @property
    def task_size_max(self) -> int:
        """``TASK_SIZE_MAX``: the top of user space less one guard page."""
        return (1 << (56 if self.levels == 5 else 47)) - PAGE_SIZE

    def va(self, paddr: int) -> int:
        """``__va()``: the direct-map address of physical address *paddr*."""
        return (self.page_offset + paddr) & 0xFFFF_FFFF_FFFF_FFFF
