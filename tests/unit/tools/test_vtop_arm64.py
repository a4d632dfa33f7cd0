# SPDX-License-Identifier: LGPL-2.1-or-later
"""vtop on arm64 page tables (the synthetic backend, no kernel): every level
with arm64's entry flags (:func:`livewalk.arch.arm64.entry_flags.decode_entry_flags`),
the user table (TTBR0) and the kernel's (TTBR1, ``swapper_pg_dir``), page,
contiguous, block and contiguous-hugetlb leaves, present-invalid
(PROT_NONE) and swap entries, with the 4K and the 16K granule; the level
indexes and sizes are the configuration's (``p?d_index()``), never x86's."""

from __future__ import annotations

import pytest

from livewalk.arch import PageTableLevel
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.arm64.pgtable_hwdef import PTE_CONT
from livewalk.backend.synthetic import SyntheticMM
from livewalk.errors import AddressError
from livewalk.tools.vtop import _vtop_kernel, decode_pte_flags, format_vtop, vtop, vtop_json

PTE, PMD, PUD = PageTableLevel.PTE, PageTableLevel.PMD, PageTableLevel.PUD
BASE = 0x7F0000000000

PAGINGS = {
    "4K-5level": Arm64Paging(phys_offset=0),
    "4K-4level-folded-at-boot": Arm64Paging(phys_offset=0, vabits_actual=48),
    "4K-48bit": Arm64Paging(phys_offset=0, va_bits=48, pa_bits_52=False),
    "16K": Arm64Paging(phys_offset=0, page_shift=14, va_bits=48),
}


@pytest.fixture(params=list(PAGINGS))
def mm(request: pytest.FixtureRequest) -> SyntheticMM:
    return SyntheticMM(paging=PAGINGS[request.param])


def test_vtop_page_and_levels(mm: SyntheticMM) -> None:
    p = mm.paging
    page = p.page_size
    mm.add_vma(BASE, BASE + 64 * page)
    mm.map_page(BASE + 5 * page, pfn=0x1234)
    addr = BASE + 5 * page + 0x123
    r = vtop(mm, addr)
    assert r.state == "present" and r.pfn == 0x1234 and r.phys == (0x1234 << p.page_shift) + 0x123
    assert r.leaf_level == PTE and r.leaf_size == page
    # every step is the slot p?d_offset() reads, at p?d_index() of the configuration
    for s in r.steps:
        assert s.value == mm.lookup(s.level, addr), s
        assert s.index == (addr >> p.level_shift(s.level)) & (p.ptrs_per(s.level) - 1)
    shown = [s.level for s in r.steps]
    assert shown == [lv for lv in reversed(PageTableLevel) if not p.folded(lv)]
    assert "PAGE" in decode_pte_flags(r.steps[-1].value, PTE, p)
    flags = [s["flags"][:1] for s in vtop_json(r)["steps"]]
    if p.levels < p.config_levels:
        # the PGD slot of a level folded at boot is a slot of the same page
        # as the next level's: pgd_none() is false whatever it holds
        assert r.steps[0].kaddr >> p.page_shift == r.steps[1].kaddr >> p.page_shift
        flags = flags[1:]
    assert flags == [["TABLE"]] * (len(flags) - 1) + [["PAGE"]]
    text = format_vtop(r)
    assert f"{p.levels}-level paging, {page >> 10}K pages" in text and "TTBR0 PGD table at" in text
    assert f"{page >> 10} KiB PTE leaf" in text and "AF" in text and "USER" in text
    if p.levels < p.config_levels:
        assert "(P4D is folded at boot: pgd_none() is false" in text


def test_vtop_contiguous_and_block_leaves(mm: SyntheticMM) -> None:
    p = mm.paging
    page, n = p.page_size, p.cont_ptes
    pmd_size = 1 << p.level_shift(PMD)
    mm.add_vma(BASE, BASE + 2 * pmd_size)
    pfn = 0x10000
    for i, v in enumerate(p.set_ptes(BASE, pfn, mm.default_flags, n)):
        mm.set_pte(BASE + i * page, v)
    r = vtop(mm, BASE + 3 * page + 8)
    assert r.state == "present" and r.leaf_size == page and r.phys == ((pfn + 3) << p.page_shift) + 8
    assert "CONT" in decode_pte_flags(r.steps[-1].value, PTE, p)
    mm.map_pmd(BASE + pmd_size, pfn=0x40000 // (pmd_size // page) * (pmd_size // page))
    r = vtop(mm, BASE + pmd_size + 0x1234)
    assert (r.state, r.leaf_level, r.leaf_size) == ("present", PMD, pmd_size)
    assert r.phys == (r.pfn << p.page_shift) + 0x1234
    assert decode_pte_flags(r.steps[-1].value, PMD, p)[0] == "BLOCK"
    assert f"{pmd_size >> 20} MiB PMD leaf" in format_vtop(r)


def test_vtop_contiguous_hugetlb() -> None:
    """A 64 KiB hugetlb page (CONT_PTES PTEs): one leaf of 64 KiB at the PTE level."""
    m = SyntheticMM(paging=PAGINGS["4K-5level"])
    p = m.paging
    m.add_vma(BASE, BASE + (2 << 20), hugetlb_shift=16)
    vals = [v | PTE_CONT for v in p.set_ptes(BASE + 0x10000, 0x5010, m.default_flags, 16)]
    for i, v in enumerate(vals):
        m.set_pte(BASE + 0x10000 + i * 4096, v)
    r = vtop(m, BASE + 0x10000 + 0x5123)
    assert r.hugetlb and r.state == "present" and r.leaf_size == 64 << 10 and r.leaf_level == PTE
    assert r.phys == (0x5010 << 12) + 0x5123
    assert "64 KiB hugetlb PTE leaf" in format_vtop(r)


def test_vtop_not_present(mm: SyntheticMM) -> None:
    p = mm.paging
    page = p.page_size
    mm.add_vma(BASE, BASE + 16 * page)
    mm.map_swap(BASE, type=2, offset=0x55, exclusive=True)
    mm.map_protnone(BASE + page, pfn=0x777)
    r = vtop(mm, BASE)
    assert r.state == "swap" and r.phys is None and (r.swap.type, r.swap.offset) == (2, 0x55)
    assert decode_pte_flags(r.steps[-1].value, PTE, p)[:2] == ["NOT_PRESENT(swap format)", "SWP_EXCLUSIVE"]
    r = vtop(mm, BASE + page + 4)
    assert r.state == "protnone" and r.pfn == 0x777 and r.phys == (0x777 << p.page_shift) + 4
    assert decode_pte_flags(r.steps[-1].value, PTE, p)[0] == "PRESENT_INVALID"
    assert "PRESENT_INVALID (PROT_NONE or NUMA hinting)" in format_vtop(r)
    r = vtop(mm, BASE + 2 * page)
    assert r.state == "none" and r.steps[-1].level == PTE and r.steps[-1].value == 0


def test_vtop_kernel_ttbr1(mm: SyntheticMM) -> None:
    p = mm.paging
    k = mm.backend.init_mm()
    top = 1 << p.level_shift(PMD)
    addr = -(1 << (p.task_size_max.bit_length() - 1)) & ((1 << 64) - 1)  # the start of the TTBR1 range
    addr += 64 * top
    k.map_pmd(addr, pfn=0x8000 // (top // p.page_size) * (top // p.page_size))
    r = _vtop_kernel(mm.backend, addr + 0x4321)
    assert r.kernel and r.state == "present" and r.leaf_size == top
    assert r.phys == (r.pfn << p.page_shift) + 0x4321
    assert "TTBR1 (swapper_pg_dir)" in format_vtop(r)
    with pytest.raises(AddressError):
        _vtop_kernel(mm.backend, BASE)
    with pytest.raises(AddressError):  # below the TTBR1 range of vabits_actual
        _vtop_kernel(mm.backend, (addr - 2 * p.task_size_max) & ((1 << 64) - 1))


def test_crash_vtop_layout_on_arm64(mm: SyntheticMM) -> None:
    """crash's vtop layout (commands/crash.py) of an arm64 translation: arm64 flag names, the page."""
    from livewalk.tools.crash_format import format_vtop_crash

    p = mm.paging
    mm.add_vma(BASE, BASE + 4 * p.page_size)
    mm.map_page(BASE, pfn=0x4321)
    r = vtop(mm, BASE + 0x10)
    lines = format_vtop_crash(r, p, entry_paddr=p.pa)
    text = "\n".join(lines)
    assert f"PAGE: {0x4321 << p.page_shift:x}" in text
    assert "(PAGE|USER|" in text and "|MT_NORMAL)" in text and "(TABLE" in text
