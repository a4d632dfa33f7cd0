# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Walker unit tests on the synthetic backend. Every expected sequence of
callbacks was worked out by hand from Linux 7.2.13 mm/pagewalk.c (and
include/linux/pgtable.h, arch/x86/include/asm/pgtable.h for the predicates),
not by running the walker.

Every test runs for x86_64 and for arm64 with the 4K granule (the same
level geometry): 5 levels is arm64 with LPA2 (52-bit VAs), 4 levels a
kernel built for 48-bit VAs (P4D folded at build time, as x86's without
LA57). Tests written with x86 entry bits, or on what arm64 lacks
(soft-dirty, PUD-level THP), are listed in ``_X86_ONLY``; their arm64
counterparts are in test_arm64_pagewalk.py.
"""

from __future__ import annotations

import errno

import pytest
from walkrec import ALL, Rec, ptes  # noqa: E402

from livewalk.arch import ULONG_MAX as M64  # noqa: E402
from livewalk.arch import ArchPaging, PageTableLevel  # noqa: E402
from livewalk.arch.arm64.pgtable import Arm64Paging  # noqa: E402
from livewalk.arch.x86.pgtable import X86Paging  # noqa: E402
from livewalk.backend.synthetic import SyntheticBackend, SyntheticMM  # noqa: E402
from livewalk.mm.pagewalk import (  # noqa: E402
    ACTION_AGAIN,
    ACTION_CONTINUE,
    ACTION_SUBTREE,
    MMWalkOps,
    pgd_addr_end,
    pmd_addr_end,
    pud_addr_end,
    walk_kernel_page_table_range,
    walk_kernel_page_table_range_lockless,
    walk_page_mapping,
    walk_page_range,
    walk_page_range_debug,
    walk_page_range_mm_unsafe,
    walk_page_range_vma,
    walk_page_range_vma_unsafe,
    walk_page_vma,
)
from livewalk.mm.vma import VM_READ, VM_SHARED, VM_WRITE  # noqa: E402

G = 1 << 30
M2 = 1 << 21
P4D = 1 << 39  # 512 GiB
PGD5 = 1 << 48
EINVAL = -errno.EINVAL


_ARCH = ["x86"]

_X86_ONLY = {
    "test_anon_thp_split_pte_flags",  # x86 PTE bits
    "test_bad_p4d_and_pgd_are_holes_and_recorded",  # PCD makes p4d_bad
    "test_bad_pmd_user_walk_vs_kernel_walk",  # PCD makes pmd_bad
    "test_migration_and_device_pmd_split",  # soft-dirty
    "test_prot_none_thp_split_keeps_the_2m_pfns",  # an x86 PROT_NONE PMD value
    "test_pud_leaf_cleared_then_hole_depth2",  # PUD THP split (no PUD THP on arm64)
    "test_walks_keyword_exposes_the_walk",  # PCD makes p4d_bad
}


def paging_for(arch: str, levels: int) -> ArchPaging:
    """The paging of *arch* with *levels* levels and the 4K granule."""
    if arch == "arm64":
        if levels == 5:
            return Arm64Paging(phys_offset=0)
        return Arm64Paging(va_bits=48, pa_bits_52=False, phys_offset=0)
    return X86Paging(levels=levels)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test runs for both architectures, but those written with x86
    entry bits or x86-only features (soft-dirty, PUD THPs) for x86 alone."""
    if "arch" in metafunc.fixturenames:
        x86_only = metafunc.function.__name__ in _X86_ONLY
        metafunc.parametrize("arch", ["x86"] if x86_only else ["x86", "arm64"], indirect=True)


@pytest.fixture(autouse=True)
def arch(request: pytest.FixtureRequest) -> str:
    """The architecture of this run; ``mk()`` builds for it."""
    _ARCH[0] = request.param
    return str(request.param)


def mk(levels: int = 5) -> SyntheticMM:
    return SyntheticMM(paging=paging_for(_ARCH[0], levels))


# --------------------------------------------------------------------------
# Basic sequence through all levels
# --------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [4, 5])
def test_single_vma_all_callbacks(levels: int) -> None:
    mm = mk(levels)
    vma = mm.add_vma(0x400000, 0x403000)
    mm.map_4k(0x401000, pfn=0x1234)
    r = Rec(ALL)
    assert walk_page_range(mm, 0x3FF000, 0x404000, r.ops) == 0
    # gap before the VMA, then test_walk, pre_vma, every level once, three
    # PTE slots (none ones included), post_vma, then the hole after the last VMA
    assert r.log == [
        ("pte_hole", 0x3FF000, 0x400000, -1),
        ("test_walk", 0x400000, 0x403000),
        ("pre_vma", 0x400000, 0x403000),
        ("pgd_entry", 0x400000, 0x403000),
        ("p4d_entry", 0x400000, 0x403000),
        ("pud_entry", 0x400000, 0x403000),
        ("pmd_entry", 0x400000, 0x403000),
        *ptes(0x400000, 0x403000),
        ("post_vma",),
        ("pte_hole", 0x403000, 0x404000, -1),
    ]
    assert r.vmas[0] is None and r.vmas[-1] is None
    assert all(v is vma.obj for v in r.vmas[1:-1])
    pgd, p4d, pud, pmd = r.entries[3:7]
    assert pgd.kaddr == mm.pgd  # pgd_index(0x400000) == 0
    assert pgd.level == PageTableLevel.PGD and p4d.level == PageTableLevel.P4D
    if levels == 4:
        # p4d_offset() returns the PGD slot itself when the P4D is folded
        assert p4d.kaddr == pgd.kaddr and p4d.value == pgd.value
    else:
        assert p4d.kaddr != pgd.kaddr
    assert pud.kaddr == mm.kaddr_of(PageTableLevel.PUD, 0x400000)
    assert pmd.kaddr == mm.kaddr_of(PageTableLevel.PMD, 0x400000)
    assert pmd.pte_table() is not None
    e0, e1, e2 = r.entries[7:10]
    assert e0.none and not e0.present
    assert e1.present and e1.pfn == 0x1234 and e1.kaddr == mm.kaddr_of(PageTableLevel.PTE, 0x401000)
    assert e1.kaddr == e0.kaddr + 8 and e2.kaddr == e1.kaddr + 8


def test_4level_pgd_entry_on_empty_slots_and_depth_renumbering() -> None:
    # 4-level: pgd_none() is 0, so pgd_entry sees every slot; the P4D test
    # on the same value finds it none: pte_hole at real_depth(1) == 0.
    mm = mk(4)
    mm.map_4k(P4D, pfn=5)  # populate PGD slot 1 only
    r = Rec(("pgd_entry", "p4d_entry", "pte_hole"))
    assert walk_page_range_debug(mm, 0, 2 * P4D, r.ops, None) == 0
    assert r.log == [
        ("pgd_entry", 0, P4D),
        ("pte_hole", 0, P4D, 0),
        ("pgd_entry", P4D, 2 * P4D),
        ("p4d_entry", P4D, 2 * P4D),
    ]
    assert r.entries[0].value == 0 and not r.entries[0].none  # pgd_none() is 0


def test_5level_same_layout() -> None:
    mm = mk(5)
    mm.map_4k(P4D, pfn=5)
    r = Rec(("pgd_entry", "p4d_entry", "pte_hole"))
    assert walk_page_range_debug(mm, 0, 2 * P4D, r.ops, None) == 0
    # PGD slot 0 covers 256 TiB; P4D slot 0 is none (depth 1), slot 1 present
    assert r.log == [
        ("pgd_entry", 0, 2 * P4D),
        ("pte_hole", 0, P4D, 1),
        ("p4d_entry", P4D, 2 * P4D),
    ]


def test_5level_empty_pgd_slot_is_one_hole_without_pgd_entry() -> None:
    mm = mk(5)
    r = Rec(("pgd_entry", "p4d_entry", "pte_hole"))
    assert walk_page_range_debug(mm, 0, 2 * P4D, r.ops, None) == 0
    assert r.log == [("pte_hole", 0, 2 * P4D, 0)]


def test_4level_only_pte_hole_reports_nothing_above_the_pgd() -> None:
    # walk_pgd_range: has_handler is false and pgd_none() is 0 on 4-level,
    # so nothing is called at all.
    mm = mk(4)
    r = Rec(("pte_hole",))
    assert walk_page_range_debug(mm, 0, 2 * P4D, r.ops, None) == 0
    assert r.log == []
    mm5 = mk(5)
    r5 = Rec(("pte_hole",))
    assert walk_page_range_debug(mm5, 0, 2 * P4D, r5.ops, None) == 0
    assert r5.log == [("pte_hole", 0, 2 * P4D, 0)]


@pytest.mark.parametrize("levels", [4, 5])
def test_holes_at_every_depth(levels: int) -> None:
    mm = mk(levels)
    mm.add_vma(G, 2 * G + 4 * M2 // 2)  # [1 GiB, 2 GiB + 4 MiB)
    mm.add_vma(P4D, P4D + 0x1000)
    mm.map_4k(2 * G + M2 + 0x1000, pfn=7)
    if levels == 5:
        mm.add_vma(PGD5, PGD5 + 0x1000)
        end = PGD5 + 0x2000
    else:
        end = P4D + 0x2000
    r = Rec(("pte_entry", "pte_hole"))
    assert walk_page_range(mm, G, end, r.ops) == 0
    expected = [
        ("pte_hole", G, 2 * G, 2),  # PUD slot 1 none
        ("pte_hole", 2 * G, 2 * G + M2, 3),  # PMD slot 0 none
        *ptes(2 * G + M2, 2 * G + 2 * M2),  # the PTE table, every slot
        ("pte_hole", 2 * G + 2 * M2, P4D, -1),  # gap between VMAs
        ("pte_hole", P4D, P4D + 0x1000, real1 := (1 if levels == 5 else 0)),
    ]
    if levels == 5:
        expected += [
            ("pte_hole", P4D + 0x1000, PGD5, -1),
            ("pte_hole", PGD5, PGD5 + 0x1000, 0),  # PGD slot 1 none
            ("pte_hole", PGD5 + 0x1000, end, -1),  # after the last VMA
        ]
    else:
        expected += [("pte_hole", P4D + 0x1000, end, -1)]
    assert r.log == expected
    assert real1 in (0, 1)
    # holes outside VMAs have walk.vma unset, inside they have it set
    assert r.vmas[0] is not None and r.vmas[3 + 512 - 1] is None


# --------------------------------------------------------------------------
# VMA level: PFNMAP, test_walk, pre/post_vma, return values
# --------------------------------------------------------------------------


def _three_vmas() -> tuple[SyntheticMM, object, object, object]:
    mm = mk(5)
    a = mm.add_vma(0x400000, 0x401000)
    p = mm.add_vma(0x500000, 0x502000, pfnmap=True)
    b = mm.add_vma(0x600000, 0x601000)
    mm.map_4k(0x400000, pfn=1)
    mm.map_4k(0x500000, pfn=2)
    mm.map_4k(0x600000, pfn=3)
    return mm, a, p, b


def test_pfnmap_skipped_through_pte_hole_with_vma_set() -> None:
    mm, a, p, b = _three_vmas()
    r = Rec(("pte_entry", "pte_hole", "pre_vma", "post_vma"))
    assert walk_page_range(mm, 0x400000, 0x601000, r.ops) == 0
    assert r.log == [
        ("pre_vma", 0x400000, 0x401000),
        ("pte_entry", 0x400000, 0x401000),
        ("post_vma",),
        ("pte_hole", 0x401000, 0x500000, -1),
        ("pte_hole", 0x500000, 0x502000, -1),  # walk_page_test: VM_PFNMAP
        ("pte_hole", 0x502000, 0x600000, -1),
        ("pre_vma", 0x600000, 0x601000),
        ("pte_entry", 0x600000, 0x601000),
        ("post_vma",),
    ]
    assert r.vmas[3] is None
    assert r.vmas[4] is p.obj  # type: ignore[attr-defined]
    assert r.vmas[5] is None


def test_pfnmap_without_pte_hole_is_silently_skipped() -> None:
    mm, a, p, b = _three_vmas()
    r = Rec(("pte_entry",))
    assert walk_page_range(mm, 0x400000, 0x601000, r.ops) == 0
    assert r.log == [("pte_entry", 0x400000, 0x401000), ("pte_entry", 0x600000, 0x601000)]


def test_pfnmap_positive_pte_hole_only_skips() -> None:
    mm, a, p, b = _three_vmas()
    r = Rec(("pte_entry", "pte_hole"), ret={"pte_hole": lambda a, n, d, w: 5 if w.vma is not None else 0})
    # the positive value from the PFNMAP pte_hole means "skip", not "stop"
    assert walk_page_range(mm, 0x400000, 0x601000, r.ops) == 0
    assert r.log[-1] == ("pte_entry", 0x600000, 0x601000)


def test_pfnmap_negative_pte_hole_aborts() -> None:
    mm, a, p, b = _three_vmas()
    r = Rec(("pte_entry", "pte_hole"), ret={"pte_hole": lambda a, n, d, w: -errno.EIO if w.vma is not None else 0})
    assert walk_page_range(mm, 0x400000, 0x601000, r.ops) == -errno.EIO
    assert r.log[-1] == ("pte_hole", 0x500000, 0x502000, -1)


def test_test_walk_zero_walks_pfnmap_and_one_skips() -> None:
    mm, a, p, b = _three_vmas()
    r = Rec(("pte_entry", "test_walk"), ret={"test_walk": lambda s, e, w: 1 if s == 0x600000 else 0})
    assert walk_page_range(mm, 0x400000, 0x601000, r.ops) == 0
    assert r.log == [
        ("test_walk", 0x400000, 0x401000),
        ("pte_entry", 0x400000, 0x401000),
        ("test_walk", 0x500000, 0x502000),
        *ptes(0x500000, 0x502000),
        ("test_walk", 0x600000, 0x601000),
    ]


def test_test_walk_negative_aborts() -> None:
    mm, a, p, b = _three_vmas()
    r = Rec(("pte_entry", "test_walk", "pre_vma", "post_vma"), ret={"test_walk": -errno.EPERM})
    assert walk_page_range(mm, 0x400000, 0x601000, r.ops) == -errno.EPERM
    assert r.log == [("test_walk", 0x400000, 0x401000)]


def test_post_vma_after_failed_walk_and_stop() -> None:
    mm, a, p, b = _three_vmas()
    mm.map_4k(0x401000 - 0x1000, pfn=1)
    for val in (-errno.EFAULT, 7):
        r = Rec(("pte_entry", "pre_vma", "post_vma"), ret={"pte_entry": val})
        assert walk_page_range(mm, 0x400000, 0x601000, r.ops) == val
        # post_vma runs although the walk failed; no later VMA is walked
        assert r.log == [("pre_vma", 0x400000, 0x401000), ("pte_entry", 0x400000, 0x401000), ("post_vma",)]


def test_pre_vma_failure_skips_post_vma() -> None:
    mm, a, p, b = _three_vmas()
    r = Rec(("pte_entry", "pre_vma", "post_vma"), ret={"pre_vma": -errno.ENOMEM})
    assert walk_page_range(mm, 0x400000, 0x601000, r.ops) == -errno.ENOMEM
    assert r.log == [("pre_vma", 0x400000, 0x401000)]


def test_walk_page_vma_no_test_walk_no_pfnmap_skip() -> None:
    mm, a, p, b = _three_vmas()
    r = Rec(("pte_entry", "pte_hole", "test_walk", "pre_vma", "post_vma"), ret={"test_walk": 1})
    assert walk_page_vma(p, r.ops) == 0
    assert r.log == [("pre_vma", 0x500000, 0x502000), *ptes(0x500000, 0x502000), ("post_vma",)]
    r = Rec(("pte_entry", "test_walk"), ret={"test_walk": 1})
    assert walk_page_range_vma(p, 0x501000, 0x502000, r.ops) == 0
    assert r.log == ptes(0x501000, 0x502000)


def test_return_conventions() -> None:
    mm, a, p, b = _three_vmas()
    assert walk_page_range(mm, 0x400000, 0x601000, MMWalkOps(pte_entry=lambda *a: None)) == 0
    assert walk_page_range(mm, 0x400000, 0x601000, MMWalkOps(pte_entry=lambda *a: True)) == 1
    with pytest.raises(TypeError, match="pte_entry"):
        walk_page_range(mm, 0x400000, 0x601000, MMWalkOps(pte_entry=lambda *a: "x"))
    with pytest.raises(TypeError, match="pte_hole"):
        walk_page_range(mm, 0, 0x601000, MMWalkOps(pte_hole=lambda *a: 1.5))
    with pytest.raises(TypeError):
        walk_page_range(mm, 0x400000, 0x601000, MMWalkOps(pmd_entry=lambda *a: 0.0))


def test_einval_cases() -> None:
    mm, a, p, b = _three_vmas()
    r = Rec(("pte_entry", "pte_hole"))
    assert walk_page_range(mm, 0x500000, 0x500000, r.ops) == EINVAL
    assert walk_page_range(mm, 0x500000, 0x400000, r.ops) == EINVAL
    assert walk_page_range(None, 0, 0x1000, r.ops) == EINVAL
    assert walk_page_range_vma(p, 0x4FF000, 0x501000, r.ops) == EINVAL
    assert walk_page_range_vma(p, 0x500000, 0x503000, r.ops) == EINVAL
    assert walk_page_range_vma(p, 0x501000, 0x501000, r.ops) == EINVAL
    be = mm.livewalk_backend
    assert walk_kernel_page_table_range(0x2000, 0x1000, r.ops, backend=be) == EINVAL
    assert walk_page_range_debug(mm, 0x2000, 0x2000, r.ops, None) == EINVAL
    inst = Rec(("pte_entry", "pre_vma"), install_pte=lambda *a: 0)
    assert walk_page_range(mm, 0x400000, 0x601000, inst.ops) == EINVAL
    assert walk_page_vma(a, inst.ops) == EINVAL
    assert walk_page_range_vma(a, 0x400000, 0x401000, inst.ops) == EINVAL
    assert walk_page_mapping(be.new_mapping(), 0, 1, inst.ops) == EINVAL
    assert walk_kernel_page_table_range(0, 0x1000, inst.ops, backend=be) == EINVAL
    assert walk_kernel_page_table_range_lockless(0, 0x1000, inst.ops, backend=be) == EINVAL
    assert walk_page_range_debug(mm, 0, 0x1000, inst.ops, None) == EINVAL
    # the unsafe variants refuse install_pte only on hugetlb, before pre_vma
    h = mm.add_vma(0x40000000, 0x40200000, hugetlb_shift=21)
    assert walk_page_range_vma_unsafe(h, 0x40000000, 0x40200000, inst.ops) == EINVAL
    assert walk_page_range_mm_unsafe(mm, 0x40000000, 0x40200000, inst.ops) == EINVAL
    assert r.log == [] and inst.log == []


def test_addr_end_helpers_wrap_unsigned() -> None:
    p5 = X86Paging(levels=5)
    assert pud_addr_end(0xFFFFFFFFC0000000, M64, p5) == M64
    assert pud_addr_end(0xFFFFFFFFC0000000, 0, p5) == 0  # end 0: (end - 1) is ULONG_MAX
    assert pmd_addr_end(0x1000, 0x1800, p5) == 0x1800
    assert pmd_addr_end(0x1000, 0x400000, p5) == 0x200000
    assert pmd_addr_end(0x1000, 0, p5) == 0x200000
    assert pgd_addr_end(0xFFFF000000000000, M64, p5) == M64
    assert pgd_addr_end(0, M64, X86Paging(levels=4)) == P4D


def test_walk_to_ulong_max() -> None:
    mm = mk(5)
    mm.add_vma(0x400000, 0x401000)
    mm.map_4k(0x400000, pfn=1)
    r = Rec(("pte_entry", "pte_hole"))
    assert walk_page_range(mm, 0x400000, -1, r.ops) == 0
    assert r.log == [("pte_entry", 0x400000, 0x401000), ("pte_hole", 0x401000, M64, -1)]


def test_kernel_walk_last_page_of_address_space() -> None:
    be = SyntheticBackend(paging_for(_ARCH[0], 5))
    kmm = be.init_mm()
    kmm.map_4k(0xFFFFFFFFFFFFF000, pfn=9)
    r = Rec(("pte_entry", "pte_hole"))
    assert walk_kernel_page_table_range(0xFFFFFFFFFFFFC000, M64, r.ops, backend=be) == 0
    # last = end - PAGE_SIZE = 0x...efff: four slots; the last next wraps to 0
    assert r.log == [
        ("pte_entry", 0xFFFFFFFFFFFFC000, 0xFFFFFFFFFFFFD000),
        ("pte_entry", 0xFFFFFFFFFFFFD000, 0xFFFFFFFFFFFFE000),
        ("pte_entry", 0xFFFFFFFFFFFFE000, 0xFFFFFFFFFFFFF000),
        ("pte_entry", 0xFFFFFFFFFFFFF000, 0),
    ]
    assert r.entries[-1].pfn == 9


# --------------------------------------------------------------------------
# walk_page_mapping
# --------------------------------------------------------------------------


def test_walk_page_mapping_clips_and_positive_test_walk_stops() -> None:
    be = SyntheticBackend(paging_for(_ARCH[0], 4))
    mapping = be.new_mapping()
    mm1, mm2 = be.new_mm(), be.new_mm()
    v0 = mm1.add_vma(0x900000, 0x901000, VM_READ | VM_SHARED, pgoff=100, mapping=mapping)
    v1 = mm1.add_vma(0x400000, 0x404000, VM_READ | VM_SHARED, pgoff=10, mapping=mapping)
    v2 = mm2.add_vma(0x800000, 0x802000, VM_READ | VM_SHARED, pgoff=12, mapping=mapping)
    assert v0.vm_pgoff == 100
    mm1.map_4k(0x400000, pfn=1)
    mm2.map_4k(0x800000, pfn=2)
    mms = []
    r = Rec(("pte_entry", "test_walk", "pre_vma", "post_vma"))
    r.ops.pre_vma = lambda s, e, w: (mms.append(w.mm), r.log.append(("pre_vma", s, e)))[0] and 0
    # pages [11, 13): v1 maps 10-13 -> [0x401000, 0x403000); v2 maps 12-13 -> [0x800000, 0x801000)
    assert walk_page_mapping(mapping, 11, 2, r.ops) == 0
    assert r.log == [
        ("test_walk", 0x400000, 0x404000),  # walk_page_test sees the whole VMA
        ("pre_vma", 0x401000, 0x403000),
        *ptes(0x401000, 0x403000),
        ("post_vma",),
        ("test_walk", 0x800000, 0x802000),
        ("pre_vma", 0x800000, 0x801000),
        *ptes(0x800000, 0x801000),
        ("post_vma",),
    ]
    assert mms == [mm1, mm2]
    r = Rec(("pte_entry", "test_walk"), ret={"test_walk": 1})
    assert walk_page_mapping(mapping, 11, 2, r.ops) == 0
    assert r.log == [("test_walk", 0x400000, 0x404000)]  # break, not skip
    r = Rec(("pte_entry", "test_walk"), ret={"test_walk": -errno.EAGAIN})
    assert walk_page_mapping(mapping, 11, 2, r.ops) == -errno.EAGAIN
    assert v1.obj is not v2.obj


# --------------------------------------------------------------------------
# THP, PUD leaves and the split emulation (errata §1.7)
# --------------------------------------------------------------------------


def _thp_mm(flags: int = VM_READ | VM_WRITE) -> SyntheticMM:
    mm = mk(5)
    mm.add_vma(0x400000, 0x800000, flags)
    return mm


def test_anon_thp_split_to_512_ptes() -> None:
    mm = _thp_mm()
    mm.map_2m(0x400000, pfn=0x40000)
    r = Rec(("pmd_entry", "pte_entry", "pte_hole"))
    assert walk_page_range(mm, 0x400000, 0x800000, r.ops) == 0
    assert r.log == [("pmd_entry", 0x400000, 0x600000), *ptes(0x400000, 0x600000), ("pte_hole", 0x600000, 0x800000, 3)]
    assert r.entries[0].leaf and r.entries[0].pfn == 0x40000
    pte = r.entries[1:513]
    assert [e.pfn for e in pte] == list(range(0x40000, 0x40200))
    assert all(e.present and e.rw and e.dirty and e.user and e.kaddr is None for e in pte)
    walk_splits = []
    ops = MMWalkOps(pte_entry=lambda p, a, n, w: walk_splits.append(list(w.splits)) and 0)
    walk_page_range(mm, 0x400000, 0x401000, ops)
    assert walk_splits[0] == [(PageTableLevel.PMD, 0x400000, "anon")]


def test_thp_no_split_without_pte_entry_or_with_continue() -> None:
    mm = _thp_mm()
    mm.map_2m(0x400000, pfn=0x40000)
    r = Rec(("pmd_entry", "pte_hole"))
    assert walk_page_range(mm, 0x400000, 0x600000, r.ops) == 0
    assert r.log == [("pmd_entry", 0x400000, 0x600000)]
    r = Rec(("pmd_entry", "pte_entry"), ret={"pmd_entry": lambda e, a, n, w: setattr(w, "action", ACTION_CONTINUE)})
    assert walk_page_range(mm, 0x400000, 0x600000, r.ops) == 0
    assert r.log == [("pmd_entry", 0x400000, 0x600000)]


def test_file_thp_is_zapped_then_hole() -> None:
    mm = _thp_mm(VM_READ | VM_SHARED)
    mm.map_2m(0x400000, pfn=0x40000)
    r = Rec(("pmd_entry", "pte_entry", "pte_hole"))
    assert walk_page_range(mm, 0x400000, 0x600000, r.ops) == 0
    # pmd_entry once; split zaps; pte_offset_map fails -> ACTION_AGAIN ->
    # the PMD is none now -> pte_hole(depth 3), which sees ACTION_SUBTREE
    assert r.log == [("pmd_entry", 0x400000, 0x600000), ("pte_hole", 0x400000, 0x600000, 3)]
    assert r.actions == [ACTION_SUBTREE, ACTION_SUBTREE]


def test_huge_zero_pmd_splits_to_zero_ptes() -> None:
    mm = _thp_mm()
    mm.map_huge_zero(0x400000, uffd_wp=True)
    r = Rec(("pte_entry",))
    assert walk_page_range(mm, 0x400000, 0x600000, r.ops) == 0
    assert len(r.log) == 512
    zero = mm.livewalk_backend.zero_pfn
    assert all(e.present and e.special and e.pfn == zero and not e.rw and e.uffd_wp for e in r.entries)


def test_migration_and_device_pmd_split() -> None:
    mm = _thp_mm()
    mm.map_migration(0x400000, 0x80000, write=True, level=PageTableLevel.PMD, soft_dirty=True)
    mm.map_device(0x600000, 0x90000, kind="device_read", level=PageTableLevel.PMD)
    r = Rec(("pmd_entry", "pte_entry"))
    assert walk_page_range(mm, 0x400000, 0x800000, r.ops) == 0
    assert r.log == [
        ("pmd_entry", 0x400000, 0x600000),
        *ptes(0x400000, 0x600000),
        ("pmd_entry", 0x600000, 0x800000),
        *ptes(0x600000, 0x800000),
    ]
    mig = r.entries[1:513]
    assert all(e.swap.kind.name == "MIGRATION_WRITE" and e.soft_dirty for e in mig)
    assert [e.swap.pfn for e in mig] == list(range(0x80000, 0x80200))
    dev = r.entries[514:]
    assert all(e.swap.kind.name == "DEVICE_READ" for e in dev)
    assert dev[5].swap.pfn == 0x90005


def test_other_nonpresent_pmd_again_is_capped() -> None:
    mm = _thp_mm()
    mm.map_swap(0x400000, 3, 0x777, level=PageTableLevel.PMD)  # not convertible
    r = Rec(("pmd_entry", "pte_entry", "pte_hole"))
    assert walk_page_range(mm, 0x400000, 0x600000, r.ops) == 0
    # the kernel would loop on ACTION_AGAIN; we retry once, then move on
    assert r.log == [("pmd_entry", 0x400000, 0x600000)] * 2


def test_pud_leaf_cleared_then_hole_depth2() -> None:
    mm = mk(5)
    mm.add_vma(G, 2 * G)
    mm.map_1g(G, pfn=0x100000)
    r = Rec(("pud_entry", "pmd_entry", "pte_hole"))
    assert walk_page_range(mm, G, 2 * G, r.ops) == 0
    assert r.log == [("pud_entry", G, 2 * G), ("pte_hole", G, 2 * G, 2)]
    assert r.entries[0].leaf and r.entries[0].pfn == 0x100000
    r = Rec(("pud_entry", "pte_hole"))
    assert walk_page_range(mm, G, 2 * G, r.ops) == 0
    assert r.log == [("pud_entry", G, 2 * G)]


def test_no_vma_walk_never_descends_into_leaves() -> None:
    mm = mk(5)
    mm.map_1g(G, pfn=0x100000)
    mm.map_2m(2 * G, pfn=0x40000)
    mm.map_swap(2 * G + M2, 1, 5, level=PageTableLevel.PMD)
    r = Rec(("pud_entry", "pmd_entry", "pte_entry", "pte_hole"))
    assert walk_page_range_debug(mm, G, 2 * G + 3 * M2, r.ops, None) == 0
    assert r.log == [
        ("pud_entry", G, 2 * G),
        ("pud_entry", 2 * G, 2 * G + 3 * M2),
        ("pmd_entry", 2 * G, 2 * G + M2),
        ("pmd_entry", 2 * G + M2, 2 * G + 2 * M2),
        ("pte_hole", 2 * G + 2 * M2, 2 * G + 3 * M2, 3),
    ]


# --------------------------------------------------------------------------
# walk->action
# --------------------------------------------------------------------------


def test_action_again_from_pmd_entry() -> None:
    mm = _thp_mm()
    mm.map_4k(0x400000, pfn=1)
    calls = []

    def once(e, a, n, w):  # type: ignore[no-untyped-def]
        calls.append(a)
        if len(calls) == 1:
            w.action = ACTION_AGAIN
        return 0

    r = Rec(("pmd_entry", "pte_entry"), ret={"pmd_entry": once})
    assert walk_page_range(mm, 0x400000, 0x402000, r.ops) == 0
    assert r.log == [("pmd_entry", 0x400000, 0x402000)] * 2 + ptes(0x400000, 0x402000)
    r = Rec(("pmd_entry", "pte_entry"), ret={"pmd_entry": lambda e, a, n, w: setattr(w, "action", ACTION_AGAIN)})
    out = []
    r.ops.post_vma = lambda w: out.append((w.again_capped, [x.reason for x in w.errors]))
    assert walk_page_range(mm, 0x400000, 0x402000, r.ops) == 0
    assert r.log == [("pmd_entry", 0x400000, 0x402000)] * 2
    assert out == [(1, ["again-limit"])]


def test_action_seen_by_callbacks() -> None:
    # errata §1.3: pmd_entry always sees SUBTREE (reset per iteration); the
    # p4d level never resets, so a CONTINUE left by the last PMD leaks there
    mm = mk(5)
    mm.add_vma(P4D - M2, P4D + M2)
    mm.map_4k(P4D - M2, pfn=1)
    mm.map_4k(P4D, pfn=2)
    r = Rec(("p4d_entry", "pmd_entry"), ret={"pmd_entry": lambda e, a, n, w: setattr(w, "action", ACTION_CONTINUE)})
    assert walk_page_range(mm, P4D - M2, P4D + M2, r.ops) == 0
    assert r.log == [
        ("p4d_entry", P4D - M2, P4D),
        ("pmd_entry", P4D - M2, P4D),
        ("p4d_entry", P4D, P4D + M2),
        ("pmd_entry", P4D, P4D + M2),
    ]
    assert r.actions == [ACTION_SUBTREE, ACTION_SUBTREE, ACTION_CONTINUE, ACTION_SUBTREE]


def test_pud_entry_again_capped() -> None:
    mm = _thp_mm()
    mm.map_4k(0x400000, pfn=1)
    r = Rec(("pud_entry", "pmd_entry"), ret={"pud_entry": lambda e, a, n, w: setattr(w, "action", ACTION_AGAIN)})
    assert walk_page_range(mm, 0x400000, 0x401000, r.ops) == 0
    assert r.log == [("pud_entry", 0x400000, 0x401000)] * 2


# --------------------------------------------------------------------------
# hugetlb
# --------------------------------------------------------------------------


def test_hugetlb_2m() -> None:
    mm = mk(5)
    mm.add_vma(G, G + 3 * M2, hugetlb_shift=21)
    mm.add_vma(2 * G, 2 * G + 2 * M2, hugetlb_shift=21)
    mm.map_2m(G, pfn=0x40000)
    mm.map_2m(G + 2 * M2, pfn=0x40200)
    hmask = M64 & ~(M2 - 1)
    r = Rec(("hugetlb_entry", "pte_hole", "pmd_entry", "pte_entry", "pre_vma", "post_vma"))
    assert walk_page_range(mm, G, 2 * G + 2 * M2, r.ops) == 0
    assert r.log == [
        ("pre_vma", G, G + 3 * M2),
        ("hugetlb_entry", G, G + M2, hmask),
        ("hugetlb_entry", G + M2, G + 2 * M2, hmask),  # none slot reaches hugetlb_entry
        ("hugetlb_entry", G + 2 * M2, G + 3 * M2, hmask),
        ("post_vma",),
        ("pte_hole", G + 3 * M2, 2 * G, -1),
        ("pre_vma", 2 * G, 2 * G + 2 * M2),
        ("pte_hole", 2 * G, 2 * G + M2, -1),  # PUD not present: hugetlb_walk NULL
        ("pte_hole", 2 * G + M2, 2 * G + 2 * M2, -1),
        ("post_vma",),
    ]
    assert r.entries[1].pfn == 0x40000 and r.entries[2].none and r.entries[3].pfn == 0x40200
    # addr is not aligned down
    r = Rec(("hugetlb_entry",))
    assert walk_page_range(mm, G + 0x100000, G + 0x300000, r.ops) == 0
    assert r.log == [("hugetlb_entry", G + 0x100000, G + M2, hmask), ("hugetlb_entry", G + M2, G + 0x300000, hmask)]
    # without hugetlb_entry nothing at all is walked (no pte_hole either)
    r = Rec(("pte_hole", "pte_entry", "pmd_entry", "pre_vma", "post_vma"))
    assert walk_page_range(mm, G, G + 3 * M2, r.ops) == 0
    assert r.log == [("pre_vma", G, G + 3 * M2), ("post_vma",)]


def test_hugetlb_1g_none_slot() -> None:
    mm = mk(4)
    mm.add_vma(3 * G, 4 * G, hugetlb_shift=30)
    mm.map_4k(0x400000, pfn=1)  # makes PGD slot 0 point to a PUD table
    r = Rec(("hugetlb_entry", "pte_hole"))
    assert walk_page_range(mm, 3 * G, 4 * G, r.ops) == 0
    assert r.log == [("hugetlb_entry", 3 * G, 4 * G, M64 & ~(G - 1))]
    assert r.entries[0].none and r.entries[0].level == PageTableLevel.PUD


# --------------------------------------------------------------------------
# Bad entries and unreadable tables
# --------------------------------------------------------------------------


def test_bad_p4d_and_pgd_are_holes_and_recorded() -> None:
    mm = mk(5)
    mm.add_vma(0, 4 * P4D)
    mm.map_4k(P4D, pfn=1)
    p4d = mm.lookup(PageTableLevel.P4D, P4D)
    assert p4d is not None
    mm.set_p4d(P4D, p4d | 0x10)  # PCD: p4d_bad
    errors = []
    r = Rec(("p4d_entry", "pud_entry", "pte_hole"))
    r.ops.post_vma = lambda w: errors.extend(w.errors)
    assert walk_page_range(mm, P4D, 2 * P4D, r.ops) == 0
    assert r.log == [("pte_hole", P4D, 2 * P4D, 1)]
    assert [(e.level, e.addr, e.reason) for e in errors] == [(PageTableLevel.P4D, P4D, "bad")]
    mm.set_pgd(0, (mm.lookup(PageTableLevel.PGD, 0) or 0) & ~0x2)  # no RW: pgd_bad
    r = Rec(("pgd_entry", "pte_hole"))
    assert walk_page_range(mm, 0, P4D, r.ops) == 0
    assert r.log == [("pte_hole", 0, P4D, 0)]


def test_bad_pmd_user_walk_vs_kernel_walk() -> None:
    mm = mk(5)
    mm.add_vma(0x400000, 0x600000)
    mm.map_4k(0x400000, pfn=1)
    pmd = mm.lookup(PageTableLevel.PMD, 0x400000)
    assert pmd is not None
    mm.set_pmd(0x400000, pmd | 0x10)  # pmd_bad
    r = Rec(("pmd_entry", "pte_entry", "pte_hole"))
    assert walk_page_range(mm, 0x400000, 0x402000, r.ops) == 0
    assert r.log == [("pmd_entry", 0x400000, 0x402000), ("pte_hole", 0x400000, 0x402000, 3)]
    # no_vma walk of a user mm below TASK_SIZE: pte_offset_map() checks too
    r = Rec(("pmd_entry", "pte_entry", "pte_hole"))
    assert walk_page_range_debug(mm, 0x400000, 0x402000, r.ops, None) == 0
    assert r.log == [("pmd_entry", 0x400000, 0x402000), ("pte_hole", 0x400000, 0x402000, 3)]
    # init_mm: pte_offset_kernel() does not check pmd_bad
    be = mm.livewalk_backend
    r = Rec(("pmd_entry", "pte_entry", "pte_hole"))
    assert walk_kernel_page_table_range(0x400000, 0x402000, r.ops, pgd=mm.pgd, backend=be) == 0
    assert r.log == [("pmd_entry", 0x400000, 0x402000), *ptes(0x400000, 0x402000)]


def test_unreadable_tables() -> None:
    mm = mk(5)
    mm.add_vma(0, 4 * P4D)
    mm.map_4k(0x400000, pfn=1)
    mm.map_4k(G, pfn=2)
    mm.map_4k(P4D, pfn=3)
    mm.make_unreadable(PageTableLevel.PTE, 0x400000)
    mm.make_unreadable(PageTableLevel.PMD, G)
    mm.make_unreadable(PageTableLevel.PUD, P4D)
    r = Rec(("p4d_entry", "pud_entry", "pmd_entry", "pte_entry", "pte_hole"))
    errs = []
    r.ops.post_vma = lambda w: errs.extend((e.level, e.addr, e.reason) for e in w.errors)
    assert walk_page_range(mm, 0x400000, 0x402000, r.ops) == 0
    assert r.log[-2:] == [("pmd_entry", 0x400000, 0x402000), ("pte_hole", 0x400000, 0x402000, 3)]
    r.log.clear()
    assert walk_page_range(mm, G, G + 0x1000, r.ops) == 0
    assert r.log == [("p4d_entry", G, G + 0x1000), ("pud_entry", G, G + 0x1000), ("pte_hole", G, G + 0x1000, 2)]
    r.log.clear()
    assert walk_page_range(mm, P4D, P4D + 0x1000, r.ops) == 0
    assert r.log == [("p4d_entry", P4D, P4D + 0x1000), ("pte_hole", P4D, P4D + 0x1000, 1)]
    assert [e[2] for e in errs] == ["unreadable"] * 3
    assert [e[0] for e in errs] == [PageTableLevel.PMD, PageTableLevel.PUD, PageTableLevel.P4D]


def test_unreadable_top_level_table() -> None:
    mm = mk(5)
    mm.map_4k(0x400000, pfn=1)
    mm.livewalk_backend.unreadable.add(mm.pgd_paddr)
    r = Rec(("pgd_entry", "pte_entry", "pte_hole"))
    assert walk_page_range_debug(mm, 0, 0x1000, r.ops, None) == 0
    assert r.log == [("pte_hole", 0, 0x1000, 0)]


# --------------------------------------------------------------------------
# install_pte (unsafe entry points)
# --------------------------------------------------------------------------


def test_install_pte_overlay() -> None:
    mm = mk(5)
    mm.add_vma(0x400000, 0x403000)
    mm.add_vma(P4D, P4D + 0x2000)  # no tables at all below the PGD
    mm.map_4k(0x401000, pfn=1)
    before = dict(mm.livewalk_backend._mem)
    r = Rec(("pmd_entry", "pte_entry", "pte_hole"), install_pte=None)
    calls = []

    def install(addr, next, ptep, walk):  # type: ignore[no-untyped-def]
        calls.append((addr, next))
        ptep.value = 0x8000000099999067
        return 0

    r.ops.install_pte = install
    out = {}
    r.ops.post_vma = lambda w: out.update(w.installed)
    r.ops.pre_vma = None
    assert walk_page_range_mm_unsafe(mm, 0x400000, P4D + 0x2000, r.ops) == 0
    assert r.log == [
        ("pmd_entry", 0x400000, 0x403000),
        ("pte_entry", 0x401000, 0x402000),  # only existing PTEs reach pte_entry
        # the gap between VMAs goes to pte_hole(-1) as usual
        ("pte_hole", 0x403000, P4D, -1),
        ("pmd_entry", P4D, P4D + 0x2000),  # emulated __pud/__pmd/__pte_alloc
    ]
    assert calls == [(0x400000, 0x401000), (0x402000, 0x403000), (P4D, P4D + 0x1000), (P4D + 0x1000, P4D + 0x2000)]
    assert out == {a: 0x8000000099999067 for a, _ in calls}
    assert r.entries[3].kaddr is None and r.entries[3].is_table
    assert mm.livewalk_backend._mem.keys() == before.keys()  # nothing written
    assert mm.lookup(PageTableLevel.PTE, 0x400000) == 0
    # walk_page_range_vma_unsafe, and an error from install_pte stops
    vma = mm.vmas[0]
    r2 = Rec(("pte_entry",), install_pte=lambda a, n, p, w: -errno.ENOMEM)
    assert walk_page_range_vma_unsafe(vma, 0x400000, 0x403000, r2.ops) == -errno.ENOMEM
    assert r2.log == []


# --------------------------------------------------------------------------
# Kernel walks, pgd override, read counting
# --------------------------------------------------------------------------


def test_kernel_walk_pgd_override_and_walk_fields() -> None:
    be = SyntheticBackend(paging_for(_ARCH[0], 4))
    user = be.new_mm()
    user.map_4k(0x400000, pfn=0x42)
    seen = []

    def pte(e, a, n, w):  # type: ignore[no-untyped-def]
        seen.append((a, e.pfn, w.mm is be.init_mm(), w.no_vma, w.pgd, w.vma))
        return 0

    assert walk_kernel_page_table_range(0x400000, 0x401000, MMWalkOps(pte_entry=pte), pgd=user.pgd, backend=be) == 0
    assert seen == [(0x400000, 0x42, True, True, user.pgd, None)]
    seen.clear()
    # without the override the (empty) init_mm tables are walked
    assert walk_kernel_page_table_range(0x400000, 0x401000, MMWalkOps(pte_entry=pte), backend=be) == 0
    assert seen == []


def test_each_table_read_once_and_pte_table() -> None:
    mm = mk(5)
    mm.add_vma(0x400000, 0x800000)
    mm.map_4k(0x400000, pfn=1)
    mm.map_4k(0x600000, pfn=2)
    be = mm.livewalk_backend
    tables = []

    def pmd(e, a, n, w):  # type: ignore[no-untyped-def]
        t = e.pte_table()
        assert e.pte_table() is t
        tables.append((a, t[(a >> 12) & 511], len(t)))
        return 0

    n0 = be.reads
    assert walk_page_range(mm, 0x400000, 0x800000, MMWalkOps(pmd_entry=pmd)) == 0
    # PGD, P4D, PUD, PMD tables and the two PTE tables, once each
    assert be.reads - n0 == 6
    assert tables == [(0x400000, mm.lookup(PageTableLevel.PTE, 0x400000), 512),
                      (0x600000, mm.lookup(PageTableLevel.PTE, 0x600000), 512)]
    n0 = be.reads
    assert walk_page_range(mm, 0x400000, 0x800000, MMWalkOps(pte_entry=lambda *a: 0)) == 0
    assert be.reads - n0 == 6


def test_walk_lock_validated() -> None:
    mm = mk(5)
    mm.add_vma(0x400000, 0x401000)
    assert walk_page_range(mm, 0x400000, 0x401000, MMWalkOps(pte_entry=lambda *a: 0, walk_lock=3)) == 0
    with pytest.raises(ValueError):
        walk_page_range(mm, 0x400000, 0x401000, MMWalkOps(pte_entry=lambda *a: 0, walk_lock=9))


def test_ops_subclass_methods() -> None:
    mm = mk(4)
    mm.add_vma(0x400000, 0x402000)
    mm.map_4k(0x400000, pfn=1)

    class Count(MMWalkOps):
        def __init__(self) -> None:
            super().__init__()
            self.n = 0

        def pte_entry(self, pte, addr, next, walk):  # type: ignore[no-untyped-def,override]
            self.n += 1
            return 0

    ops = Count()
    assert walk_page_range(mm, 0x400000, 0x402000, ops) == 0
    assert ops.n == 2


def test_unaligned_one_byte_range() -> None:
    # DAMON-style walk_page_range(mm, addr, addr + 1): nothing is aligned;
    # walk_pte_range_inner makes one call with next = addr + PAGE_SIZE
    mm = mk(4)
    vma = mm.add_vma(0x400000, 0x403000)
    mm.map_4k(0x401000, pfn=0x77)
    r = Rec(ALL)
    infos = []
    r.ops.post_vma = lambda w: infos.append((w.vma, w.vma_info, w.backend, w.private))
    assert walk_page_range(mm, 0x401234, 0x401235, r.ops, private="p") == 0
    assert r.log == [
        ("test_walk", 0x401234, 0x401235),
        ("pre_vma", 0x401234, 0x401235),
        ("pgd_entry", 0x401234, 0x401235),
        ("p4d_entry", 0x401234, 0x401235),
        ("pud_entry", 0x401234, 0x401235),
        ("pmd_entry", 0x401234, 0x401235),
        ("pte_entry", 0x401234, 0x402234),
    ]
    assert r.entries[-1].pfn == 0x77
    assert infos == [(vma.obj, vma, mm.livewalk_backend, "p")]


def test_emulated_split_lives_for_one_walk_only() -> None:
    mm = _thp_mm(VM_READ | VM_SHARED)
    mm.map_2m(0x400000, pfn=0x40000)
    for _ in range(2):
        r = Rec(("pmd_entry", "pte_entry", "pte_hole"))
        assert walk_page_range(mm, 0x400000, 0x600000, r.ops) == 0
        assert r.log == [("pmd_entry", 0x400000, 0x600000), ("pte_hole", 0x400000, 0x600000, 3)]
        assert r.entries[0].leaf  # the snapshot itself never changes


def test_anon_thp_split_pte_flags() -> None:
    # __split_huge_pmd_locked: mk_pte(page, vm_page_prot) (PAGE_COPY =
    # P|U|A|NX for a private RW VMA), +RW if the PMD was writable, -A if old,
    # pte_mkdirty (D|SOFT_DIRTY, D moved to SAVED_DIRTY when not writable),
    # +SOFT_DIRTY/UFFD_WP from the PMD
    mm = _thp_mm()
    mm.set_pmd(0x400000, 0x40000000 | 0xC5)  # P U D PSE: read-only, dirty, old
    mm.set_pmd(0x600000, 0x80000000 | 0x8A7)  # P RW U A PSE SOFT_DIRTY
    r = Rec(("pte_entry",))
    assert walk_page_range(mm, 0x400000, 0x800000, r.ops) == 0
    assert [e.value for e in r.entries[:2]] == [0x8400000000000805 | (0x40000 << 12), 0x8400000000000805 | (0x40001 << 12)]
    assert r.entries[0].dirty and not r.entries[0].accessed and not r.entries[0].rw
    assert r.entries[512].value == 0x8000000000000827 | (0x80000 << 12)
    assert r.entries[1023].value == 0x8000000000000827 | (0x801FF << 12)
    mm2 = mk(5)
    mm2.add_vma(0x400000, 0x600000, VM_READ | 0x4)  # VM_EXEC: PAGE_READONLY_EXEC, no NX
    mm2.set_pmd(0x400000, 0x40000000 | 0xA5)  # P U A PSE
    r = Rec(("pte_entry",))
    assert walk_page_range(mm2, 0x400000, 0x401000, r.ops) == 0
    assert r.entries[0].value == 0x25 | (0x40000 << 12)


def test_walks_keyword_exposes_the_walk() -> None:
    mm = mk(5)
    mm.add_vma(0x400000, 0x600000, VM_READ | VM_SHARED)
    mm.add_vma(P4D, P4D + 0x1000)
    mm.map_2m(0x400000, pfn=0x40000)
    mm.map_4k(P4D, pfn=1)
    p4d = mm.lookup(PageTableLevel.P4D, P4D)
    assert p4d is not None
    mm.set_p4d(P4D, p4d | 0x10)
    walks: list = []
    r = Rec(("pte_entry", "pte_hole"))
    assert walk_page_range(mm, 0x400000, 2 * P4D, r.ops, walks=walks) == 0
    (w,) = walks
    assert w.splits == [(PageTableLevel.PMD, 0x400000, "zapped")]
    assert [(e.level, e.addr, e.reason) for e in w.errors] == [(PageTableLevel.P4D, P4D, "bad")]
    assert w.table_reads == 4  # PGD, P4D, PUD, PMD tables; the bad P4D is not followed
    assert walk_page_range(mm, 1, 0, r.ops, walks=walks) == EINVAL and len(walks) == 1


def test_prot_none_thp_split_keeps_the_2m_pfns() -> None:
    # A PROT_NONE PMD-mapped THP as the kernel stores it (pfn_pmd(): the PFN
    # inverted, then masked to 2 MiB, so the low 9 PFN bits read as ones
    # once the inversion is undone): pmd_pfn() masks them off again, and the
    # emulated split maps pfn .. pfn + 511 (it used to start at 0x10d5ff).
    mm = _thp_mm(0)
    pfn = 0x10D400
    prot_none_pse = (1 << 8) | (1 << 5) | (1 << 7)
    stored = ((~(pfn << 12)) & ((1 << 52) - 1) & ~((1 << 21) - 1)) | prot_none_pse
    mm.set_pmd(0x400000, stored)
    r = Rec(("pmd_entry", "pte_entry"))
    assert walk_page_range(mm, 0x400000, 0x600000, r.ops) == 0
    assert r.entries[0].leaf and r.entries[0].protnone and r.entries[0].pfn == pfn
    pte = r.entries[1:]
    assert len(pte) == 512
    assert [e.pfn for e in pte] == list(range(pfn, pfn + 512))
    assert all(e.present and e.protnone and not e.rw for e in pte)
