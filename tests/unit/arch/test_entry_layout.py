# SPDX-License-Identifier: LGPL-2.1-or-later
"""
:class:`livewalk.arch.EntryLayout` restates the predicates of its
:class:`~livewalk.arch.ArchPaging` as masks and shifts: pagemap's table loops
use the masks, so for every value (random ones, and the entries the kernel
makes: user pages, PROT_NONE, zero page, swap, migration, markers, high
physical addresses) the masks must answer what the predicates answer, on
x86_64 and on every arm64 geometry.
"""

from __future__ import annotations

import random

import pytest

from livewalk.arch import ArchPaging, EntryLayout
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.x86.pgtable import X86Paging
from livewalk.mm.swapops import PTE_MARKER_GUARD, PTE_MARKER_UFFD_WP

PAGINGS: dict[str, ArchPaging] = {
    "x86-l5": X86Paging(levels=5),
    "x86-l4-no-sd-no-uffd": X86Paging(levels=4, soft_dirty=False, uffd_wp=False),
    "x86-46bit": X86Paging(levels=4, physical_mask=(1 << 46) - 1),
    "arm64-4k-lpa2": Arm64Paging(),
    "arm64-4k-folded": Arm64Paging(vabits_actual=48),
    "arm64-4k-va48": Arm64Paging(va_bits=48, pa_bits_52=False),
    "arm64-16k-lpa2": Arm64Paging(page_shift=14),
    "arm64-16k-va47": Arm64Paging(page_shift=14, va_bits=47, pa_bits_52=False),
    "arm64-64k-pa52": Arm64Paging(page_shift=16),
    "arm64-64k-va42": Arm64Paging(page_shift=16, va_bits=42, pa_bits_52=False),
    "arm64-no-uffd": Arm64Paging(uffd_wp=False),
}


def _values(p: ArchPaging, n: int = 4000) -> list[int]:
    """Random 64-bit values, sparse ones, and the entries the kernel builds."""
    rng = random.Random(p.page_shift * 1000 + p.levels)
    vals = [rng.getrandbits(64) for _ in range(n)]
    vals += [rng.getrandbits(64) & rng.getrandbits(64) & rng.getrandbits(64) for _ in range(n)]
    vals += [1 << b for b in range(64)] + [0]
    st = p.swap_types
    top_pfn = (1 << (p.max_physmem_bits - p.page_shift)) - 1
    for vm_flags in range(16):
        prot = p.vm_get_page_prot(vm_flags)
        for pfn in (0, 1, 0x1234, 0x40000, top_pfn, top_pfn >> 1, 1 << (50 - p.page_shift)):
            v = p.pfn_pte(pfn, prot)
            vals += [v, p.pte_mkdirty(v), p.pte_mkspecial(v), p.pte_mkuffd_wp(v), p.pte_mksoft_dirty(v)]
    for t in (0, 1, 7, st.pte_marker, st.migration_write, st.migration_read, st.hwpoison, st.device_write):
        if t is None:
            continue
        for off in (0, 1, 0x1234, top_pfn, PTE_MARKER_GUARD, PTE_MARKER_UFFD_WP, (1 << 50) - 1):
            for kw in ({}, {"soft_dirty": True}, {"uffd_wp": True}, {"exclusive": True}):
                vals.append(p.swp_entry_to_pte(t, off, **kw))
    return vals


@pytest.mark.parametrize("name", sorted(PAGINGS))
def test_layout_answers_what_the_predicates_answer(name: str) -> None:
    p = PAGINGS[name]
    lay: EntryLayout = p.entry_layout
    assert lay.page_shift == p.page_shift
    checked = {"present": 0, "in_place": 0, "swap": 0}
    for v in _values(p):
        assert (not v & lay.none_mask) == p.pte_none(v), hex(v)
        if p.pte_none(v):
            continue
        present = bool(v & lay.present)
        assert present == p.pte_present(v), hex(v)
        if present:
            checked["present"] += 1
            if (v & lay.pfn_check_mask) == lay.pfn_check_value:
                checked["in_place"] += 1
                assert (v & lay.pfn_mask) >> lay.page_shift == p.pte_pfn(v), hex(v)
            assert bool(v & lay.special) == p.pte_special(v), hex(v)
            assert bool(v & lay.soft_dirty) == p.pte_soft_dirty(v), hex(v)
            assert bool(v & lay.uffd_wp) == p.pte_uffd_wp(v), hex(v)
            continue
        checked["swap"] += 1
        assert bool(v & lay.swp_soft_dirty) == p.pte_swp_soft_dirty(v) == p.pmd_swp_soft_dirty(v), hex(v)
        assert bool(v & lay.swp_uffd_wp) == p.pte_swp_uffd_wp(v) == p.pmd_swp_uffd_wp(v), hex(v)
        assert bool(v & lay.swp_exclusive) == p.pte_swp_exclusive(v), hex(v)
        e = p.decode_swap(v)
        assert e is not None
        assert (v >> lay.swp_type_shift) & lay.swp_type_mask == e.type, hex(v)
        off = ((v ^ lay.swp_offset_invert) >> lay.swp_offset_shift) & lay.swp_offset_mask
        assert off == e.offset, hex(v)
    # every branch was exercised
    assert all(n > 100 for n in checked.values()), checked


def test_arm64_has_no_soft_dirty_and_keeps_its_uffd_wp_bits() -> None:
    lay = Arm64Paging().entry_layout
    assert lay.soft_dirty == lay.swp_soft_dirty == 0
    assert lay.uffd_wp == 1 << 58 and lay.swp_uffd_wp == 1 << 3 and lay.swp_exclusive == 1 << 2
    # present: PTE_VALID or PTE_PRESENT_INVALID (nG); swap type in [10:6], offset from 12
    assert lay.present == 0x801
    assert (lay.swp_type_shift, lay.swp_type_mask, lay.swp_offset_shift) == (6, 31, 12)
    assert Arm64Paging(uffd_wp=False).entry_layout.uffd_wp == 0


def test_high_physical_addresses_take_the_predicate() -> None:
    """LPA2 keeps PA[51:50] in bits [9:8], 64K keeps PA[51:48] in [15:12]:
    the in-place mask does not hold for those, and the layout says so."""
    lpa2 = Arm64Paging()
    v = lpa2.pfn_pte(0xC000123456, lpa2.vm_get_page_prot(0x3))
    lay = lpa2.entry_layout
    assert (v & lay.pfn_check_mask) != lay.pfn_check_value
    assert lpa2.pte_pfn(v) == 0xC000123456
    k64 = Arm64Paging(page_shift=16)
    v = k64.pfn_pte(0xF00012340, k64.vm_get_page_prot(0x3))
    lay = k64.entry_layout
    assert (v & lay.pfn_check_mask) != lay.pfn_check_value and k64.pte_pfn(v) == 0xF00012340
    # without LPA2 at run time bits [9:8] are shareability, never address
    assert Arm64Paging(vabits_actual=48).entry_layout.pfn_check_mask == 0
