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

__all__: tuple[str, ...] = (
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


# ---------------------------------------------------------------------------
# Raw-integer predicates and decoding (arch/x86/include/asm/pgtable*.h,
# include/linux/swapops.h, as in Linux 7.2). They take the raw 64-bit entry
# value so that hot loops need no objects; those that depend on the target's
# configuration also take its X86Paging.
# ---------------------------------------------------------------------------

M64 = 0xFFFF_FFFF_FFFF_FFFF

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
_PAGE_SWP_SOFT_DIRTY = 1 << 1
_PAGE_SWP_UFFD_WP = 1 << 2
_PAGE_SWP_EXCLUSIVE = 1 << 3
_PAGE_KNL_ERRATUM_MASK = _PAGE_DIRTY | _PAGE_ACCESSED
_PAGE_DIRTY_BITS = _PAGE_DIRTY | _PAGE_SAVED_DIRTY
_KERNPG_TABLE = _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED | _PAGE_DIRTY
_PAGE_TABLE = _KERNPG_TABLE | _PAGE_USER
PAGE_MASK = ~(PAGE_SIZE - 1) & M64
PMD_SIZE = 1 << PMD_SHIFT
PUD_SIZE = 1 << PUD_SHIFT
P4D_SIZE = 1 << P4D_SHIFT

SWP_TYPE_BITS = 5
SWP_OFFSET_SHIFT = 9 + SWP_TYPE_BITS
PTE_MARKER_UFFD_WP = 1 << 0
PTE_MARKER_POISONED = 1 << 1
PTE_MARKER_GUARD = 1 << 2

__all__ += (
    "M64",
    "PMD_SIZE",
    "PUD_SIZE",
    "P4D_SIZE",
    "PTE_MARKER_UFFD_WP",
    "PTE_MARKER_POISONED",
    "PTE_MARKER_GUARD",
    "SwapKind",
    "SwapEntry",
    "pte_none",
    "pte_present",
    "pte_protnone",
    "pmd_none",
    "pmd_present",
    "pmd_leaf",
    "pmd_trans_huge",
    "pmd_bad",
    "pud_none",
    "pud_present",
    "pud_leaf",
    "pud_trans_huge",
    "pud_bad",
    "p4d_none",
    "p4d_present",
    "p4d_bad",
    "pgd_none",
    "pgd_present",
    "pgd_bad",
    "protnone_mask",
    "pte_pfn",
    "pmd_pfn",
    "pud_pfn",
    "is_swap_pte",
    "decode_swap",
    "swp_entry_to_pte",
    "mk_pte",
)


def pte_none(v: int) -> bool:
    """``pte_none()``: zero apart from the A/D bits (KNL erratum)."""
    return not (v & ~_PAGE_KNL_ERRATUM_MASK)


def pte_present(v: int) -> bool:
    """``pte_present()``: ``_PAGE_PRESENT`` or ``_PAGE_PROTNONE``."""
    return bool(v & (_PAGE_PRESENT | _PAGE_PROTNONE))


def pte_protnone(v: int) -> bool:
    """``pte_protnone()``: PROT_NONE or NUMA-hinting entry (present for the kernel)."""
    return (v & (_PAGE_PROTNONE | _PAGE_PRESENT)) == _PAGE_PROTNONE


pmd_none = pte_none
pud_none = pte_none
p4d_none = pte_none


def pmd_present(v: int) -> bool:
    """``pmd_present()``: PRESENT, PROTNONE or PSE (the split transient state)."""
    return bool(v & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE))


def pmd_leaf(v: int) -> bool:
    """``pmd_leaf()``: ``_PAGE_PSE`` set (present or not)."""
    return bool(v & _PAGE_PSE)


def pmd_trans_huge(v: int) -> bool:
    """``pmd_trans_huge()``: ``_PAGE_PSE`` set."""
    return bool(v & _PAGE_PSE)


pud_leaf = pmd_leaf
pud_trans_huge = pmd_trans_huge


def _pte_pfn_mask(paging: X86Paging) -> int:
    return paging.physical_mask & PAGE_MASK


def _flags(v: int, paging: X86Paging, huge_shift: int = 0) -> int:
    mask = paging.physical_mask & PAGE_MASK
    if huge_shift and v & _PAGE_PSE:
        mask &= ~((1 << huge_shift) - 1)
    return v & ~mask & M64


def pmd_bad(v: int, paging: X86Paging) -> bool:
    """``pmd_bad()``: flags other than USER/ACCESSED differ from a kernel table's."""
    return (_flags(v, paging, PMD_SHIFT) & ~(_PAGE_USER | _PAGE_ACCESSED)) != (
        _KERNPG_TABLE & ~_PAGE_ACCESSED
    )


def pud_present(v: int) -> bool:
    """``pud_present()``: ``_PAGE_PRESENT``."""
    return bool(v & _PAGE_PRESENT)


def pud_bad(v: int, paging: X86Paging) -> bool:
    """``pud_bad()`` (never called by the walker itself)."""
    return bool(_flags(v, paging, PUD_SHIFT) & ~(_KERNPG_TABLE | _PAGE_USER))


p4d_present = pud_present


def p4d_bad(v: int, paging: X86Paging) -> bool:
    """``p4d_bad()``; NX is ignored with page-table isolation."""
    ignore = _KERNPG_TABLE | _PAGE_USER
    if paging.pti:
        ignore |= _PAGE_NX
    return bool(_flags(v, paging) & ~ignore)


def pgd_none(v: int, paging: X86Paging) -> bool:
    """``pgd_none()``: always false with 4-level paging (folded P4D)."""
    if paging.levels != 5:
        return False
    return not v


def pgd_present(v: int, paging: X86Paging) -> bool:
    """``pgd_present()``: always true with 4-level paging."""
    if paging.levels != 5:
        return True
    return bool(v & _PAGE_PRESENT)


def pgd_bad(v: int, paging: X86Paging) -> bool:
    """``pgd_bad()``: never with 4-level paging; else flags must be exactly a table's."""
    if paging.levels != 5:
        return False
    ignore = _PAGE_USER
    if paging.pti:
        ignore |= _PAGE_NX
    return (_flags(v, paging) & ~ignore) != _KERNPG_TABLE


def protnone_mask(v: int) -> int:
    """L1TF: all ones for a non-zero non-present entry (stored inverted), else 0."""
    return M64 if (v and not v & _PAGE_PRESENT) else 0


def pte_pfn(v: int, paging: X86Paging) -> int:
    """``pte_pfn()`` with the L1TF inversion undone."""
    if v and not v & _PAGE_PRESENT:
        v ^= M64
    return (v & paging.physical_mask & PAGE_MASK) >> PAGE_SHIFT


def pmd_pfn(v: int, paging: X86Paging) -> int:
    """``pmd_pfn()``: a PSE entry masks to 2 MiB."""
    if v and not v & _PAGE_PRESENT:
        v ^= M64
    mask = paging.physical_mask & PAGE_MASK
    if v & _PAGE_PSE:
        mask &= ~(PMD_SIZE - 1)
    return (v & mask) >> PAGE_SHIFT


def pud_pfn(v: int, paging: X86Paging) -> int:
    """``pud_pfn()``: a PSE entry masks to 1 GiB."""
    if v and not v & _PAGE_PRESENT:
        v ^= M64
    mask = paging.physical_mask & PAGE_MASK
    if v & _PAGE_PSE:
        mask &= ~(PUD_SIZE - 1)
    return (v & mask) >> PAGE_SHIFT


def is_swap_pte(v: int) -> bool:
    """``is_swap_pte()``: neither none nor present (any software leaf)."""
    return not pte_none(v) and not pte_present(v)


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
        return (self.type, self.offset, self.kind, self.soft_dirty, self.uffd_wp, self.exclusive) == (
            other.type,
            other.offset,
            other.kind,
            other.soft_dirty,
            other.uffd_wp,
            other.exclusive,
        )

    def __hash__(self) -> int:
        return hash((self.type, self.offset, self.kind))


def _swap_kind(t: int, st: SwapTypes) -> SwapKind:
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


def decode_swap(v: int, paging: X86Paging) -> SwapEntry | None:
    """
    Decode a non-present, non-none PTE or PMD (``pte_to_swp_entry()`` and
    ``softleaf_type()``); ``None`` for a none or present entry.

    >>> p = X86Paging()
    >>> decode_swap(swp_entry_to_pte(25, 0x1234), p).kind.name
    'MIGRATION_READ'
    """
    if pte_none(v) or v & (_PAGE_PRESENT | _PAGE_PROTNONE):
        return None
    t = v >> (64 - SWP_TYPE_BITS)
    offset = (((~v & M64) << SWP_TYPE_BITS) & M64) >> SWP_OFFSET_SHIFT
    return SwapEntry(
        t,
        offset,
        _swap_kind(t, paging.swap_types),
        bool(v & _PAGE_SWP_SOFT_DIRTY),
        bool(v & _PAGE_SWP_UFFD_WP),
        bool(v & _PAGE_SWP_EXCLUSIVE),
        paging.max_physmem_bits - PAGE_SHIFT,
    )


def swp_entry_to_pte(
    type: int,
    offset: int,
    *,
    soft_dirty: bool = False,
    uffd_wp: bool = False,
    exclusive: bool = False,
) -> int:
    """Encode a swap entry as x86_64 stores it (``__swp_entry()``, offset inverted)."""
    v = ((((~offset) & M64) << SWP_OFFSET_SHIFT) & M64) >> SWP_TYPE_BITS
    v |= (type & 31) << (64 - SWP_TYPE_BITS)
    if soft_dirty:
        v |= _PAGE_SWP_SOFT_DIRTY
    if uffd_wp:
        v |= _PAGE_SWP_UFFD_WP
    if exclusive:
        v |= _PAGE_SWP_EXCLUSIVE
    return v


def mk_pte(pfn: int, flags: int) -> int:
    """``pfn_pte()``: PFN and flag bits; inverted (L1TF) if the result is not present."""
    pfn_field = (pfn << PAGE_SHIFT) & ((1 << 52) - 1)
    if flags and not flags & _PAGE_PRESENT:
        pfn_field ^= ((1 << 52) - 1) & PAGE_MASK  # protnone_mask(prot): invert the PFN
    return (pfn_field | flags) & M64
