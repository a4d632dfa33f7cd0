# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Software leaf entries
---------------------

The architecture-independent side of swap, migration, device, hwpoison and
PTE-marker entries, as in Linux 7.2 ``include/linux/swap.h``,
``include/linux/swapops.h`` and ``include/linux/leafops.h``: the numbering of
the swap types, their kinds, and the decoded entry. Where the type and offset
sit in a page-table entry is the architecture's business
(:mod:`livewalk.arch.x86.pgtable_64` for x86_64).

>>> SwapTypes().pte_marker
31
>>> e = SwapEntry(25, 0x1234, SwapKind.MIGRATION_READ)
>>> hex(e.pfn)
'0x1234'
"""

from __future__ import annotations

import dataclasses
import enum

__all__ = (
    "PTE_MARKER_GUARD",
    "PTE_MARKER_POISONED",
    "PTE_MARKER_UFFD_WP",
    "SwapEntry",
    "SwapKind",
    "SwapTypes",
    "swap_kind",
)

#: PTE marker bits in the offset of a ``SWP_PTE_MARKER`` entry (``swapops.h``).
PTE_MARKER_UFFD_WP = 1 << 0
PTE_MARKER_POISONED = 1 << 1
PTE_MARKER_GUARD = 1 << 2


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
        dev: tuple[int | None, int | None, int | None] = (None, None, None)
        if device_private:
            dev = (top - 3, top - 2, top - 1)  # write, read, exclusive
            top -= 3
        mig: tuple[int | None, int | None, int | None] = (None, None, None)
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


class SwapKind(enum.Enum):
    """What a non-present entry holds (``softleaf_type()`` in Linux 7.2)."""

    SWAP = "swap"
    HWPOISON = "hwpoison"
    MIGRATION_READ = "migration_read"
    MIGRATION_READ_EXCLUSIVE = "migration_read_exclusive"
    MIGRATION_WRITE = "migration_write"
    DEVICE_WRITE = "device_write"
    DEVICE_READ = "device_read"
    DEVICE_EXCLUSIVE = "device_exclusive"
    PTE_MARKER = "pte_marker"
    #: a type number the configuration does not define
    INVALID = "invalid"

    @property
    def is_migration(self) -> bool:
        return self in _MIGRATION_KINDS

    @property
    def is_device_private(self) -> bool:
        return self in (SwapKind.DEVICE_WRITE, SwapKind.DEVICE_READ)

    @property
    def has_pfn(self) -> bool:
        """Migration, device and hwpoison entries carry a PFN in their offset."""
        return self in _PFN_KINDS


_MIGRATION_KINDS = frozenset(
    (SwapKind.MIGRATION_READ, SwapKind.MIGRATION_READ_EXCLUSIVE, SwapKind.MIGRATION_WRITE)
)
_PFN_KINDS = _MIGRATION_KINDS | frozenset(
    (SwapKind.DEVICE_WRITE, SwapKind.DEVICE_READ, SwapKind.DEVICE_EXCLUSIVE, SwapKind.HWPOISON)
)


class SwapEntry:
    """
    A decoded non-present (software leaf) entry.

    :ivar type: swap type (top 5 bits)
    :ivar offset: swap offset (bits 9-58, inverted in the entry)
    :ivar kind: :class:`SwapKind`
    :ivar soft_dirty: ``_PAGE_SWP_SOFT_DIRTY`` (bit 1)
    :ivar uffd_wp: ``_PAGE_SWP_UFFD_WP`` (bit 2)
    :ivar exclusive: ``_PAGE_SWP_EXCLUSIVE`` (bit 3)
    """

    __slots__ = ("type", "offset", "kind", "soft_dirty", "uffd_wp", "exclusive", "_pfn_bits")

    def __init__(
        self,
        type: int,
        offset: int,
        kind: SwapKind,
        soft_dirty: bool = False,
        uffd_wp: bool = False,
        exclusive: bool = False,
        pfn_bits: int = 40,
    ) -> None:
        self.type = type
        self.offset = offset
        self.kind = kind
        self.soft_dirty = soft_dirty
        self.uffd_wp = uffd_wp
        self.exclusive = exclusive
        self._pfn_bits = pfn_bits

    @property
    def pfn(self) -> int | None:
        """The PFN of migration, device and hwpoison entries (``swp_offset_pfn``)."""
        if not self.kind.has_pfn:
            return None
        return self.offset & ((1 << self._pfn_bits) - 1)

    @property
    def migration_young(self) -> bool:
        """``SWP_MIG_YOUNG`` (only set when the kernel supports migration A/D bits)."""
        return self.kind.is_migration and bool(self.offset >> self._pfn_bits & 1)

    @property
    def migration_dirty(self) -> bool:
        """``SWP_MIG_DIRTY``."""
        return self.kind.is_migration and bool(self.offset >> (self._pfn_bits + 1) & 1)

    @property
    def guard(self) -> bool:
        """PTE marker ``PTE_MARKER_GUARD`` (MADV_GUARD_INSTALL)."""
        return self.kind is SwapKind.PTE_MARKER and bool(self.offset & PTE_MARKER_GUARD)

    @property
    def marker_uffd_wp(self) -> bool:
        """PTE marker ``PTE_MARKER_UFFD_WP``."""
        return self.kind is SwapKind.PTE_MARKER and bool(self.offset & PTE_MARKER_UFFD_WP)

    @property
    def poisoned(self) -> bool:
        """PTE marker ``PTE_MARKER_POISONED``."""
        return self.kind is SwapKind.PTE_MARKER and bool(self.offset & PTE_MARKER_POISONED)

    def __repr__(self) -> str:
        return (
            f"SwapEntry(type={self.type}, offset={self.offset:#x}, kind={self.kind.name}"
            + (f", pfn={self.pfn:#x}" if self.kind.has_pfn else "")
            + ")"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SwapEntry):
            return NotImplemented
        return (
            self.type,
            self.offset,
            self.kind,
            self.soft_dirty,
            self.uffd_wp,
            self.exclusive,
        ) == (
            other.type,
            other.offset,
            other.kind,
            other.soft_dirty,
            other.uffd_wp,
            other.exclusive,
        )

    def __hash__(self) -> int:
        return hash((self.type, self.offset, self.kind))


def swap_kind(t: int, st: SwapTypes) -> SwapKind:
    """The :class:`SwapKind` of swap type *t* under the numbering *st*."""
    if t < st.max_swapfiles:
        return SwapKind.SWAP
    if t == st.pte_marker:
        return SwapKind.PTE_MARKER
    if t == st.migration_read:
        return SwapKind.MIGRATION_READ
    if t == st.migration_read_exclusive:
        return SwapKind.MIGRATION_READ_EXCLUSIVE
    if t == st.migration_write:
        return SwapKind.MIGRATION_WRITE
    if t == st.device_write:
        return SwapKind.DEVICE_WRITE
    if t == st.device_read:
        return SwapKind.DEVICE_READ
    if t == st.device_exclusive:
        return SwapKind.DEVICE_EXCLUSIVE
    if t == st.hwpoison:
        return SwapKind.HWPOISON
    return SwapKind.INVALID
