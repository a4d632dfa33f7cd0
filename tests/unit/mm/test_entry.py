# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Entry decoding. Raw values are built by hand from the x86_64 layouts in
arch/x86/include/asm/pgtable_types.h, pgtable_64.h (swap entries: type in
bits 59-63, inverted offset in bits 9-58, flags in bits 1-3) and
include/linux/swap.h / swapops.h (type numbering, marker bits).
"""

from __future__ import annotations

import pytest

from livewalk.arch import PageTableLevel
from livewalk.arch.x86.pgtable import (
    X86Paging,
    decode_swap,
    mk_pte,
    p4d_bad,
    pgd_bad,
    pgd_none,
    pmd_bad,
    pmd_present,
    pte_none,
    pte_pfn,
    pte_present,
)
from livewalk.arch.x86.pgtable_64 import swp_entry_to_pte
from livewalk.mm.entry import Entry, EntryContext
from livewalk.mm.swapops import SwapKind, SwapTypes

P5 = X86Paging(levels=5)
P4 = X86Paging(levels=4)
CTX = EntryContext(P5)
PTE, PMD, PUD, P4D, PGD = (PageTableLevel.PTE, PageTableLevel.PMD, PageTableLevel.PUD,
                           PageTableLevel.P4D, PageTableLevel.PGD)
ONES_9_58 = (1 << 59) - (1 << 9)  # bits 9..58 set: an inverted offset of 0


def swp(type_: int, offset: int, flags: int = 0) -> int:
    """Swap PTE by hand: offset bit k is stored inverted at bit 9 + k."""
    return (ONES_9_58 ^ (offset << 9)) | (type_ << 59) | flags


def e(v: int, level: int = PTE, ctx: EntryContext = CTX) -> Entry:
    return Entry(v, 0xFFFF888000001000, level, ctx)


def test_present_pte_bits() -> None:
    x = e(0x8000000012345067)  # P RW U A D, NX, pfn 0x12345
    assert (x.present, x.none, x.protnone, x.leaf) == (True, False, False, True)
    assert x.pfn == 0x12345 and x.phys_addr == 0x12345000
    assert (x.rw, x.user, x.accessed, x.dirty, x.nx) == (True, True, True, True, True)
    assert (x.global_, x.special, x.soft_dirty, x.uffd_wp, x.exclusive) == (False, False, False, False, False)
    assert x.swap is None
    g = e(0x0000000000001163)  # P RW A D G, pfn 1
    assert g.global_ and not g.nx and not g.user and g.pfn == 1
    sd = e(0x0000000000001E25)  # P A SPECIAL UFFD_WP SOFT_DIRTY
    assert sd.special and sd.uffd_wp and sd.soft_dirty and not sd.dirty and not sd.rw
    assert e(0x0400000000001025).dirty  # _PAGE_SAVED_DIRTY (bit 58)


def test_none_ignores_knl_erratum_bits() -> None:
    assert e(0).none and e(0x60).none and not e(0x60).present
    assert pte_none(0x40) and not pte_none(0x200)
    assert e(0x60).swap is None


def test_protnone_pfn_inverted() -> None:
    # pfn_pte(0x1234, PAGE_NONE): PAGE_NONE = PROTNONE | ACCESSED; L1TF inverts the PFN field
    raw = ((~(0x1234 << 12)) & 0x000F_FFFF_FFFF_F000) | 0x120
    x = e(raw)
    assert x.present and x.protnone and x.pfn == 0x1234 and x.swap is None
    assert not x.global_  # bit 8 is PROTNONE here
    assert mk_pte(0x1234, 0x120) == raw
    assert pte_pfn(raw, P5) == 0x1234


def test_mk_pte_without_flags_is_not_inverted() -> None:
    assert mk_pte(5, 0) == 0x5000
    assert mk_pte(5, 0x67) == 0x5067


def test_swap_entry() -> None:
    raw = swp(2, 0x1000, flags=0b1110)  # soft-dirty, uffd-wp, exclusive
    assert raw == ((1 << 59) - (1 << 9)) - (1 << 21) + (1 << 60) + 0b1110
    x = e(raw)
    assert not x.present and not x.none
    s = x.swap
    assert s is not None
    assert (s.type, s.offset, s.kind) == (2, 0x1000, SwapKind.SWAP)
    assert s.soft_dirty and s.uffd_wp and s.exclusive and s.pfn is None
    assert x.soft_dirty and x.uffd_wp and x.exclusive and not x.dirty and not x.rw
    assert swp_entry_to_pte(2, 0x1000, soft_dirty=True, uffd_wp=True, exclusive=True) == raw


@pytest.mark.parametrize(
    "type_,kind",
    [
        (24, SwapKind.HWPOISON),
        (25, SwapKind.MIGRATION_READ),
        (26, SwapKind.MIGRATION_READ_EXCLUSIVE),
        (27, SwapKind.MIGRATION_WRITE),
        (28, SwapKind.DEVICE_WRITE),
        (29, SwapKind.DEVICE_READ),
        (30, SwapKind.DEVICE_EXCLUSIVE),
        (31, SwapKind.PTE_MARKER),
        (0, SwapKind.SWAP),
        (23, SwapKind.SWAP),
    ],
)
def test_swap_kinds_default_numbering(type_: int, kind: SwapKind) -> None:
    s = decode_swap(swp(type_, 0x5678), P5)
    assert s is not None and s.kind is kind and s.type == type_
    if kind in (SwapKind.HWPOISON, SwapKind.MIGRATION_READ, SwapKind.MIGRATION_READ_EXCLUSIVE,
                SwapKind.MIGRATION_WRITE, SwapKind.DEVICE_WRITE, SwapKind.DEVICE_READ,
                SwapKind.DEVICE_EXCLUSIVE):
        assert s.pfn == 0x5678
    else:
        assert s.pfn is None


def test_migration_young_dirty_bits() -> None:
    # SWP_PFN_BITS = MAX_PHYSMEM_BITS - PAGE_SHIFT = 40 (5-level), 34 (4-level)
    s = decode_swap(swp(27, 0x5678 | (1 << 40) | (1 << 41)), P5)
    assert s is not None and s.pfn == 0x5678 and s.migration_young and s.migration_dirty
    s4 = decode_swap(swp(27, 0x5678 | (1 << 34)), P4)
    assert s4 is not None and s4.pfn == 0x5678 and s4.migration_young and not s4.migration_dirty


def test_pte_markers() -> None:
    g = e(swp(31, 4)).swap
    assert g is not None and g.guard and not g.marker_uffd_wp and not g.poisoned
    u = e(swp(31, 1 | 2)).swap
    assert u is not None and u.marker_uffd_wp and u.poisoned and not u.guard


def test_swap_numbering_depends_on_config() -> None:
    st = SwapTypes.from_config(device_private=False, migration=True, memory_failure=True)
    p = X86Paging(swap_types=st)
    assert decode_swap(swp(28, 1), p).kind is SwapKind.MIGRATION_READ  # type: ignore[union-attr]
    assert decode_swap(swp(27, 1), p).kind is SwapKind.HWPOISON  # type: ignore[union-attr]
    assert decode_swap(swp(26, 1), p).kind is SwapKind.SWAP  # type: ignore[union-attr]


def test_pmd_and_pud_leaves() -> None:
    x = e(0x80000000004000E7, PMD)  # PSE 2 MiB at 4 MiB
    assert x.leaf and x.present and x.pfn == 0x400 and not x.is_table
    assert e(0x00000000004010E7, PMD).pfn == 0x400  # bit 12 is PAT_LARGE, not PFN
    assert e(0x00000000400000E7, PUD).pfn == 0x40000
    assert e(0x80, PMD).present and pmd_present(0x80)  # PSE alone: split transient
    assert not pte_present(0x80)  # at PTE level bit 7 is PAT
    t = e(0x0000000001234067, PMD)
    assert t.is_table and not t.leaf and t.pfn == 0x1234
    mig = e(swp(25, 0x200), PMD)
    assert not mig.present and mig.swap is not None and mig.swap.pfn == 0x200
    assert e(0x67, PUD).swap is None  # no software leaves above PMD


def test_pgd_level_depends_on_paging() -> None:
    c4 = EntryContext(P4)
    assert not e(0, PGD, c4).none and e(0, PGD, c4).present
    assert e(0, PGD).none and not e(0, PGD).present
    assert not pgd_none(0, P4) and pgd_none(0, P5)


def test_bad_predicates() -> None:
    assert not pmd_bad(0x1234067, P5) and not pmd_bad(0x1234063, P5)
    assert pmd_bad(0x1234077, P5)  # PCD
    assert pmd_bad(0x1234065, P5)  # no RW
    assert not p4d_bad(0x8000000001234067, P5)  # NX ignored with PTI
    assert p4d_bad(0x8000000001234067, X86Paging(pti=False))
    assert not pgd_bad(0x1234067, P5) and pgd_bad(0x1234065, P5)
    assert not pgd_bad(0x1234065, P4)
    assert e(0x1234077, PMD).bad and not e(0x1234067, PMD).bad


def test_object_and_tables_without_backend() -> None:
    x = e(0x1234067, PMD)
    assert x.object is None
    assert e(0x1234067, PTE).pte_table() is None
    assert e(0x80000000004000E7, PMD).pte_table() is None
    assert int(x) == 0x1234067 and x == e(0x1234067, PMD) and "PMD" in repr(x)


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@given(st.integers(0, 31), st.integers(0, (1 << 50) - 1), st.integers(0, 7))
def test_swap_roundtrip(type_: int, offset: int, fl: int) -> None:
    raw = swp(type_, offset, fl << 1)
    s = decode_swap(raw, P5)
    if raw == 0:  # offset 2^50 - 1, type 0, no flags: a none entry
        assert s is None
        return
    assert s is not None
    assert (s.type, s.offset) == (type_, offset)
    assert (s.soft_dirty, s.uffd_wp, s.exclusive) == (bool(fl & 1), bool(fl & 2), bool(fl & 4))
    assert swp_entry_to_pte(type_, offset, soft_dirty=bool(fl & 1), uffd_wp=bool(fl & 2),
                            exclusive=bool(fl & 4)) == raw


@given(st.integers(1, (1 << 40) - 1), st.sampled_from([0x120, 0x100, 0x167 & ~1]))
def test_protnone_roundtrip(pfn: int, flags: int) -> None:
    raw = mk_pte(pfn, flags)
    x = e(raw)
    assert x.present and x.protnone and x.pfn == pfn and x.swap is None


# -- p?d_pfn() of inverted (L1TF) entries, against the kernel's formulas ----
# arch/x86/include/asm/pgtable.h: pfn_pmd()/pfn_pud() invert the PFN of a
# non-present protection and then mask with PHYSICAL_PMD_PAGE_MASK /
# PHYSICAL_PUD_PAGE_MASK, so a PROT_NONE leaf stores its low PFN bits as 0;
# pmd_pfn()/pud_pfn() undo the inversion and mask with p?d_pfn_mask() of the
# entry as stored (the level's page mask when _PAGE_PSE is set).

_PHYS = (1 << 52) - 1
_PSE = 1 << 7
_PROT_NONE = (1 << 8) | (1 << 5)  # _PAGE_PROTNONE | _PAGE_ACCESSED (PAGE_NONE)
_PRESENT_RW = 0x67 | (1 << 63)  # P, RW, USER, A, D, NX


def _pfn_leaf(pfn: int, prot: int, shift: int) -> int:
    """The kernel's pfn_pmd() (shift 21) / pfn_pud() (shift 30) on x86_64."""
    v = pfn << 12
    if prot and not prot & 1:  # protnone_mask(prot)
        v ^= (1 << 64) - 1
    v &= _PHYS & ~((1 << shift) - 1)
    return v | prot


def _kernel_pfn(v: int, shift: int) -> int:
    """The kernel's p?d_pfn(): invert back, then mask by p?d_pfn_mask(stored value)."""
    mask = _PHYS & ~((1 << (shift if v & _PSE else 12)) - 1)
    if v and not v & 1:
        v ^= (1 << 64) - 1
    return (v & mask) >> 12


@pytest.mark.parametrize("pfn", [0x10D400, 0x200, 0x7FFFFE00])
def test_pmd_pfn_prot_none_thp_masks_to_2m(pfn: int) -> None:
    # vtop showed pfn 0x10d5ff for a PROT_NONE 2 MiB leaf at 0x10d400
    v = _pfn_leaf(pfn, _PROT_NONE | _PSE, 21)
    from livewalk.arch.x86.pgtable import pmd_pfn

    assert pmd_pfn(v, P5) == pfn == _kernel_pfn(v, 21)
    assert P5.pmd_pfn(v) == pfn
    e = Entry(v, None, PMD, CTX)
    assert e.pfn == pfn and e.leaf and e.present and e.protnone
    assert e.phys_addr == pfn << 12


@pytest.mark.parametrize("pfn", [0x40000, 0xC0000])
def test_pud_pfn_prot_none_leaf_masks_to_1g(pfn: int) -> None:
    v = _pfn_leaf(pfn, _PROT_NONE | _PSE, 30)
    from livewalk.arch.x86.pgtable import pud_pfn

    assert pud_pfn(v, P5) == pfn == _kernel_pfn(v, 30)
    assert Entry(v, None, PUD, CTX).pfn == pfn


def test_present_leaf_pfn_ignores_pat_large_bit() -> None:
    # bit 12 is _PAGE_PAT_LARGE on a 2 MiB / 1 GiB leaf, not a PFN bit
    pmd = _pfn_leaf(0x10D400, _PRESENT_RW | _PSE | (1 << 12), 21)
    pud = _pfn_leaf(0x40000, _PRESENT_RW | _PSE | (1 << 12), 30)
    assert P5.pmd_pfn(pmd) == 0x10D400 == _kernel_pfn(pmd, 21)
    assert P5.pud_pfn(pud) == 0x40000 == _kernel_pfn(pud, 30)


def test_pte_pfn_prot_none_and_table_pointers() -> None:
    v = mk_pte(0x12345, _PROT_NONE)
    assert pte_pfn(v, P5) == 0x12345 == _kernel_pfn(v, 12)
    # a table pointer at PMD/PUD level (no PSE) keeps all PFN bits
    table = (0x1234567 << 12) | 0x67
    assert P5.pmd_pfn(table) == P5.pud_pfn(table) == 0x1234567


@pytest.mark.parametrize("type_", [0, 25, 27, 28])
@pytest.mark.parametrize("pfn", [0x10D400, 0x10D5FF, 0x1, 0xFF_FFFF_FFFF])
def test_pmd_swap_and_migration_entries(type_: int, pfn: int) -> None:
    # a PMD swap/migration entry keeps bit 7 clear (so it is not
    # pmd_present); pmd_pfn() must then use PTE_PFN_MASK even though the
    # inverted value has bit 7 set
    v = swp_entry_to_pte(type_, pfn)
    assert not v & _PSE and not P5.pmd_present(v)
    assert P5.pmd_pfn(v) == _kernel_pfn(v, 21) == P5.pte_pfn(v)
    sw = P5.decode_swap(v)
    assert sw is not None and sw.offset == pfn
    if sw.kind.has_pfn:
        assert sw.pfn == pfn
    e = Entry(v, None, PMD, CTX)
    assert e.pfn == _kernel_pfn(v, 21) and e.swap == sw
