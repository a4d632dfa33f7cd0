# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The walker's kernel-version differences on the synthetic backend. Each
expected sequence was worked out by hand from the named kernel's own
mm/pagewalk.c (Debian's 6.1.176, 6.12.117 and 7.2.13; the extracted files are
in the project's research notes), not by running the walker. Stable shapes
inside 6.12.y are built with ``(6, 12, sublevel)``: 6.12.80 (before the
PUD re-check of 6.12.84), 6.12.100 (before the split API of 6.12.105 and the
stale-action fix of 6.12.115). Each test fails if the walker applied
another version's rule.
"""

from __future__ import annotations

import errno
from typing import Any

import pytest
from walkrec import Rec, ptes  # noqa: E402

from livewalk.arch import PageTableLevel
from livewalk.arch.x86.pgtable_types import _PAGE_RW
from livewalk.backend.synthetic import SyntheticMM
from livewalk.kernel import KernelFeatures, NotInKernelError
from livewalk.mm.folio_walk import FolioWalk, FolioWalkLevel, folio_walk_start
from livewalk.mm.pagewalk import (
    ACTION_AGAIN,
    ACTION_SUBTREE,
    MM_WALK_CALLBACKS,
    PGWALK_VMA_RDLOCK_VERIFY,
    PGWALK_WRLOCK,
    MMWalkOps,
    walk_kernel_page_table_range,
    walk_kernel_page_table_range_lockless,
    walk_page_range,
    walk_page_range_debug,
    walk_page_range_mm_unsafe,
    walk_page_range_novma,
    walk_page_range_vma,
    walk_page_range_vma_unsafe,
    walk_page_vma,
)
from livewalk.mm.vma import VM_READ, VM_SHARED, VM_WRITE

G = 1 << 30
M2 = 1 << 21
EINVAL = -errno.EINVAL
KERNEL_ADDR = 0xFFFFC90000000000

V61, V612, V72 = (6, 1), (6, 12), (7, 2)
V612_80, V612_100 = (6, 12, 80), (6, 12, 100)
ALL_VERSIONS = (V61, V612_80, V612_100, V612, V72)


def mk(version: tuple[int, ...], levels: int = 4) -> SyntheticMM:
    return SyntheticMM(levels=levels, version=version)


# --------------------------------------------------------------------------
# Entry points per version
# --------------------------------------------------------------------------


def _kernel_mm(version: tuple[int, ...]) -> SyntheticMM:
    mm = mk(version)
    kmm = mm.backend.init_mm()
    kmm.map_4k(KERNEL_ADDR, pfn=0x77)
    return mm


def _calls(mm: SyntheticMM) -> dict[str, Any]:
    """One call of each entry point over something valid, by name."""
    vma = mm.add_vma(0x400000, 0x402000)
    mm.map_4k(0x400000, pfn=1)
    b = mm.backend
    ops = MMWalkOps(pte_entry=lambda *a: 0)
    return {
        "walk_page_range_novma": lambda: walk_page_range_novma(mm, 0x400000, 0x402000, ops),
        "walk_page_range_vma": lambda: walk_page_range_vma(vma, 0x400000, 0x402000, ops),
        "walk_kernel_page_table_range": lambda: walk_kernel_page_table_range(
            KERNEL_ADDR, KERNEL_ADDR + 0x1000, ops, backend=b
        ),
        "walk_page_range_debug": lambda: walk_page_range_debug(mm, 0x400000, 0x402000, ops),
        "walk_kernel_page_table_range_lockless": lambda: walk_kernel_page_table_range_lockless(
            KERNEL_ADDR, KERNEL_ADDR + 0x1000, ops, backend=b
        ),
        "walk_page_range_mm_unsafe": lambda: walk_page_range_mm_unsafe(mm, 0x400000, 0x402000, ops),
        "walk_page_range_vma_unsafe": lambda: walk_page_range_vma_unsafe(vma, 0x400000, 0x402000, ops),
    }


# 6.1 mm/pagewalk.c: walk_page_range_novma, walk_page_range_vma (6.1.161
# backport); 6.12 mm/pagewalk.c: walk_kernel_page_table_range,
# walk_page_range_debug (novma gone); 7.2 mm/pagewalk.c: + the _lockless and
# _unsafe variants.
PRESENT = {
    V61: {"walk_page_range_novma", "walk_page_range_vma"},
    V612_100: {"walk_page_range_novma", "walk_page_range_vma"},
    V612: {"walk_page_range_vma", "walk_kernel_page_table_range", "walk_page_range_debug"},
    V72: {
        "walk_page_range_vma",
        "walk_kernel_page_table_range",
        "walk_page_range_debug",
        "walk_kernel_page_table_range_lockless",
        "walk_page_range_mm_unsafe",
        "walk_page_range_vma_unsafe",
    },
}


@pytest.mark.parametrize("version", list(PRESENT))
def test_entry_points_present_per_version(version: tuple[int, ...]) -> None:
    calls = _calls(mk(version))
    for name, call in calls.items():
        if name in PRESENT[version]:
            assert call() == 0, name
        else:
            with pytest.raises(NotInKernelError, match=f"^{name}: not in Linux {version[0]}.{version[1]}"):
                call()


def test_not_in_kernel_message_names_the_kernel_and_the_release() -> None:
    calls = _calls(mk(V61))
    with pytest.raises(NotImplementedError) as e:
        calls["walk_page_range_debug"]()
    assert str(e.value) == "walk_page_range_debug: not in Linux 6.1.176 (since 6.12.105)"
    with pytest.raises(NotInKernelError, match=r"not in Linux 6\.1\.150 \(since 6\.1\.161\)"):
        _calls(mk((6, 1, 150)))["walk_page_range_vma"]()


@pytest.mark.parametrize("version", [V61, V612_100])
def test_walk_page_range_novma(version: tuple[int, ...]) -> None:
    # 6.1 mm/pagewalk.c walk_page_range_novma: -EINVAL for an empty range or
    # no mm; no_vma walk of mm (not forced to init_mm), of pgd if given
    mm = mk(version)
    mm.map_4k(0x400000, pfn=1)
    r = Rec(("pmd_entry", "pte_entry", "pte_hole"))
    assert walk_page_range_novma(None, 0, 1, r.ops) == EINVAL
    assert walk_page_range_novma(mm, 0x2000, 0x1000, r.ops) == EINVAL
    assert walk_page_range_novma(mm, 0x400000, 0x402000, r.ops) == 0
    assert r.log == [("pmd_entry", 0x400000, 0x402000), *ptes(0x400000, 0x402000)]
    assert all(v is None for v in r.vmas)
    other = SyntheticMM(backend=mm.backend)
    r = Rec(("pte_entry", "pte_hole"))
    assert walk_page_range_novma(other, 0x400000, 0x402000, r.ops, mm.pgd) == 0
    assert r.log == ptes(0x400000, 0x402000)


# --------------------------------------------------------------------------
# install_pte: 7.2 only (struct mm_walk_ops has no such member before)
# --------------------------------------------------------------------------


def _install_ops() -> MMWalkOps:
    def install(addr: int, next: int, ptep: Any, walk: Any) -> int:
        ptep.value = 0x8000000000001025 | (addr >> 12 << 12)
        return 0

    return MMWalkOps(pte_entry=lambda *a: 0, install_pte=install)


@pytest.mark.parametrize("version", [V61, V612])
def test_install_pte_not_in_6x(version: tuple[int, ...]) -> None:
    mm = mk(version)
    vma = mm.add_vma(0x400000, 0x402000)
    ops = _install_ops()
    msg = r"^mm_walk_ops\.install_pte: not in Linux 6\.1"
    with pytest.raises(NotInKernelError, match=msg):
        walk_page_range(mm, 0x400000, 0x402000, ops)
    with pytest.raises(NotInKernelError, match=msg):
        walk_page_vma(vma, ops)
    with pytest.raises(NotInKernelError, match=msg):
        walk_page_range_vma(vma, 0x400000, 0x402000, ops)


def test_install_pte_7_2_check_ops_safe_and_unsafe() -> None:
    # 7.2 mm/pagewalk.c: check_ops_safe() -> -EINVAL on the public entry
    # points; walk_page_range_mm_unsafe() installs
    mm = mk(V72)
    vma = mm.add_vma(0x400000, 0x402000)
    ops = _install_ops()
    assert walk_page_range(mm, 0x400000, 0x402000, ops) == EINVAL
    assert walk_page_vma(vma, ops) == EINVAL
    walks: list[Any] = []
    assert walk_page_range_mm_unsafe(mm, 0x400000, 0x402000, ops, walks=walks) == 0
    assert sorted(walks[0].installed) == [0x400000, 0x401000]


# --------------------------------------------------------------------------
# walk_page_vma: 6.1 runs walk_page_test
# --------------------------------------------------------------------------


def _pfnmap_vma(version: tuple[int, ...]) -> tuple[SyntheticMM, Any]:
    mm = mk(version)
    p = mm.add_vma(0x500000, 0x502000, pfnmap=True)
    mm.map_4k(0x500000, pfn=2)
    return mm, p


def test_walk_page_vma_6_1_calls_walk_page_test() -> None:
    # 6.1 mm/pagewalk.c walk_page_vma -> walk_page_test(vm_start, vm_end):
    # VM_PFNMAP with pte_hole: one pte_hole(-1), nothing else, 0 returned
    mm, p = _pfnmap_vma(V61)
    r = Rec(("pte_entry", "pte_hole", "pre_vma", "post_vma"))
    assert walk_page_vma(p, r.ops) == 0
    assert r.log == [("pte_hole", 0x500000, 0x502000, -1)]
    assert r.vmas == [p.obj]
    # without pte_hole: skipped silently
    r = Rec(("pte_entry", "pre_vma", "post_vma"))
    assert walk_page_vma(p, r.ops) == 0
    assert r.log == []
    # a negative pte_hole is returned
    r = Rec(("pte_entry", "pte_hole"), ret={"pte_hole": -errno.EIO})
    assert walk_page_vma(p, r.ops) == -errno.EIO
    # test_walk decides: 1 skips (0 returned), 0 walks even a PFN map, <0 returned
    r = Rec(("pte_entry", "test_walk"), ret={"test_walk": 1})
    assert walk_page_vma(p, r.ops) == 0
    assert r.log == [("test_walk", 0x500000, 0x502000)]
    r = Rec(("pte_entry", "test_walk"), ret={"test_walk": 0})
    assert walk_page_vma(p, r.ops) == 0
    assert r.log == [("test_walk", 0x500000, 0x502000), *ptes(0x500000, 0x502000)]
    r = Rec(("pte_entry", "test_walk"), ret={"test_walk": -errno.EPERM})
    assert walk_page_vma(p, r.ops) == -errno.EPERM


@pytest.mark.parametrize("version", [V612, V72])
def test_walk_page_vma_6_12_and_7_2_do_not(version: tuple[int, ...]) -> None:
    # 6.12/7.2 mm/pagewalk.c walk_page_vma: straight to __walk_page_range
    mm, p = _pfnmap_vma(version)
    r = Rec(("pte_entry", "pte_hole", "test_walk", "pre_vma", "post_vma"), ret={"test_walk": 1})
    assert walk_page_vma(p, r.ops) == 0
    assert r.log == [("pre_vma", 0x500000, 0x502000), *ptes(0x500000, 0x502000), ("post_vma",)]


# --------------------------------------------------------------------------
# walk_lock
# --------------------------------------------------------------------------


def test_walk_lock_per_version() -> None:
    for version, ok, bad in (
        (V61, (0, 1, 2, 3, 99), ()),  # 6.1: no walk_lock, nothing validated
        (V612, (0, 1, 2), (PGWALK_VMA_RDLOCK_VERIFY, 99)),  # 6.12 enum has 3 values
        (V72, (0, 1, 2, PGWALK_VMA_RDLOCK_VERIFY), (99,)),
    ):
        mm = mk(version)
        vma = mm.add_vma(0x400000, 0x401000)
        for lock in ok:
            assert walk_page_range(mm, 0x400000, 0x401000, MMWalkOps(walk_lock=lock)) == 0
            assert walk_page_vma(vma, MMWalkOps(walk_lock=lock)) == 0
        for lock in bad:
            with pytest.raises(ValueError, match="walk_lock"):
                walk_page_range(mm, 0x400000, 0x401000, MMWalkOps(walk_lock=lock))
            with pytest.raises(ValueError, match="walk_lock"):
                walk_page_vma(vma, MMWalkOps(walk_lock=lock))
    assert PGWALK_WRLOCK == 1


# --------------------------------------------------------------------------
# ACTION_AGAIN after walk_pte_range(), and ACTION_SUBTREE placement
# --------------------------------------------------------------------------


def _again_once_from_pte() -> Rec:
    seen: list[int] = []

    def pte(e: Any, a: int, n: int, w: Any) -> int:
        seen.append(a)
        if len(seen) == 1:
            w.action = ACTION_AGAIN
        return 0

    return Rec(("pmd_entry", "pte_entry", "pte_hole"), ret={"pte_entry": pte})


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_pte_entry_again(version: tuple[int, ...]) -> None:
    # PMD 0x400000 has a PTE table, PMD 0x600000 is none.
    mm = mk(version)
    mm.add_vma(0x400000, 0x800000)
    mm.map_4k(0x400000, pfn=1)
    r = _again_once_from_pte()
    assert walk_page_range(mm, 0x400000, 0x402000, r.ops) == 0
    if version == V61:
        # 6.1 walk_pmd_range: walk->action is not looked at after
        # walk_pte_range(): no retry
        assert r.log == [("pmd_entry", 0x400000, 0x402000), *ptes(0x400000, 0x402000)]
    else:
        # 6.12/7.2 walk_pmd_range: "if (walk->action == ACTION_AGAIN) goto
        # again" after walk_pte_range(): pmd_entry and the PTEs again
        assert r.log == [("pmd_entry", 0x400000, 0x402000), *ptes(0x400000, 0x402000)] * 2
    # over two PMDs, the second none: the hole sees the stale AGAIN on 6.1
    # (ACTION_SUBTREE is set after pmd_none() and never reset after the
    # PTEs); elsewhere the retry's pmd_entry left ACTION_SUBTREE
    r = _again_once_from_pte()
    assert walk_page_range(mm, 0x401000, 0x600000 + 0x1000, r.ops) == 0
    assert r.log[-1] == ("pte_hole", 0x600000, 0x601000, 3)
    assert r.actions[-1] == (ACTION_AGAIN if version == V61 else ACTION_SUBTREE)


def _file_thp(version: tuple[int, ...]) -> SyntheticMM:
    mm = mk(version)
    mm.add_vma(0x400000, 0x600000, VM_READ | VM_SHARED)
    mm.map_2m(0x400000, pfn=0x40000)
    return mm


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_file_thp_zap_and_stale_action(version: tuple[int, ...]) -> None:
    # The split zaps a file THP (last PMD of the range) under a pte_entry.
    mm = _file_thp(version)
    r = Rec(("pud_entry", "pmd_entry", "pte_entry", "pte_hole"))
    assert walk_page_range(mm, 0x400000, 0x600000, r.ops) == 0
    pud, pmd = ("pud_entry", 0x400000, 0x600000), ("pmd_entry", 0x400000, 0x600000)
    hole = ("pte_hole", 0x400000, 0x600000, 3)
    S, A = ACTION_SUBTREE, ACTION_AGAIN
    if version == V61:
        # 6.1 walk_pmd_range: split_huge_pmd; pmd_trans_unstable() (none)
        # -> goto again -> pmd_none -> pte_hole; action still SUBTREE
        assert (r.log, r.actions) == ([pud, pmd, hole], [S, S, S])
    elif version == V612_80:
        # 6.12 before .84: walk_pte_range fails -> ACTION_AGAIN -> again:
        # pmd_none -> pte_hole sees AGAIN (SUBTREE set after the none test);
        # the PUD loop does not look at walk->action after walk_pmd_range
        assert (r.log, r.actions) == ([pud, pmd, hole], [S, S, A])
    elif version == V612_100:
        # 6.12.84..114: the stale AGAIN escapes walk_pmd_range and the PUD
        # loop goes round again: pud_entry, then the PMD is a hole
        assert (r.log, r.actions) == ([pud, pmd, hole, pud, hole], [S, S, A, S, S])
    else:
        # 6.12.115+ and 7.2: ACTION_SUBTREE at again:, nothing escapes
        assert (r.log, r.actions) == ([pud, pmd, hole], [S, S, S])


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_pmd_continue_then_hole_sees_continue_before_6_12_115(version: tuple[int, ...]) -> None:
    # 6.1 walk_pmd_range sets ACTION_SUBTREE after the pmd_none() test, so
    # the hole after a PMD whose pmd_entry asked for CONTINUE sees CONTINUE;
    # 6.12.117/7.2 reset it at again: first
    mm = mk(version)
    mm.add_vma(0x400000, 0x800000)
    mm.map_4k(0x400000, pfn=1)
    r = Rec(("pmd_entry", "pte_hole"), ret={"pmd_entry": lambda e, a, n, w: setattr(w, "action", 1)})
    assert walk_page_range(mm, 0x400000, 0x800000, r.ops) == 0
    assert r.log == [("pmd_entry", 0x400000, 0x600000), ("pte_hole", 0x600000, 0x800000, 3)]
    stale = version in (V61, V612_80, V612_100)
    assert r.actions == [ACTION_SUBTREE, 1 if stale else ACTION_SUBTREE]


# --------------------------------------------------------------------------
# PUD level: re-check in walk_pmd_range (6.12.84+), pud_none after split (6.1)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_non_table_pud_in_vma(version: tuple[int, ...]) -> None:
    # A non-present, non-none PUD in an ordinary VMA; split_huge_pud leaves
    # it alone (not trans-huge).
    mm = mk(version)
    mm.add_vma(G, 2 * G)
    mm.map_swap(G, 1, 0x1234, level=PageTableLevel.PUD)
    r = Rec(("pud_entry", "pmd_entry", "pte_hole"))
    walks: list[Any] = []
    r.ops.post_vma = lambda w: walks.append(w)
    assert walk_page_range(mm, G, 2 * G, r.ops) == 0
    if version in (V61, V612_80):
        # 6.1 walk_pud_range: pud_none() is false after the split, so
        # walk_pmd_range() reads the entry as a table: unreadable here, a
        # hole below the PUD (overlay policy)
        assert r.log == [("pud_entry", G, 2 * G), ("pte_hole", G, 2 * G, 2)]
        assert [e.reason for e in walks[0].errors] == ["unreadable"]
    else:
        # 6.12.84+/7.2 walk_pmd_range: !pud_present -> ACTION_AGAIN, the PUD
        # loop retries pud_entry (the kernel forever; capped here)
        assert r.log == [("pud_entry", G, 2 * G)] * 2
        assert walks[0].again_capped == 1


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_pud_leaf_split_then_hole(version: tuple[int, ...]) -> None:
    # Every version ends in a depth-2 hole, by its own path: 6.1 "if
    # (pud_none(*pud)) goto again" after split_huge_pud; 6.12.84+/7.2 the
    # PUD re-check in walk_pmd_range -> ACTION_AGAIN -> again
    mm = mk(version)
    mm.add_vma(G, 2 * G)
    mm.map_1g(G, pfn=0x100000)
    r = Rec(("pud_entry", "pmd_entry", "pte_hole"))
    assert walk_page_range(mm, G, 2 * G, r.ops) == 0
    assert r.log == [("pud_entry", G, 2 * G), ("pte_hole", G, 2 * G, 2)]


# --------------------------------------------------------------------------
# No-VMA walks: pte_offset_map() may fail since 6.5
# --------------------------------------------------------------------------


def _bad_user_pmd(version: tuple[int, ...]) -> SyntheticMM:
    mm = mk(version)
    mm.map_4k(0x400000, pfn=1)
    v = mm.lookup(PageTableLevel.PMD, 0x400000)
    assert v is not None
    mm.set_pmd(0x400000, v & ~_PAGE_RW)  # present table, but pmd_bad()
    assert mm.paging.pmd_bad(mm.lookup(PageTableLevel.PMD, 0x400000))
    return mm


@pytest.mark.parametrize("version", [V61, V612_100, V612, V72])
def test_no_vma_walk_of_a_bad_user_pmd(version: tuple[int, ...]) -> None:
    mm = _bad_user_pmd(version)
    r = Rec(("pmd_entry", "pte_entry", "pte_hole"))
    walk = walk_page_range_novma if version in (V61, V612_100) else walk_page_range_debug
    assert walk(mm, 0x400000, 0x402000, r.ops) == 0
    hole = ("pte_hole", 0x400000, 0x402000, 3)
    if version == V61:
        # 6.1 walk_pte_range: pte_offset_map() has no checks
        assert r.log == [("pmd_entry", 0x400000, 0x402000), *ptes(0x400000, 0x402000)]
    elif version == V612_100:
        # as below, but the hole leaves the stale ACTION_AGAIN (set after the
        # none test before 6.12.115), and walk_pud_range goes round again
        assert r.log == [("pmd_entry", 0x400000, 0x402000), hole, hole]
    else:
        # 6.12/7.2 walk_pte_range: user mm below TASK_SIZE -> pte_offset_map()
        # -> pmd_bad: cleared, NULL -> ACTION_AGAIN -> the PMD is none now
        assert r.log == [("pmd_entry", 0x400000, 0x402000), hole]


@pytest.mark.parametrize("version", [V61, V612, V72])
def test_bad_pmd_in_vma_walk(version: tuple[int, ...]) -> None:
    # 6.1: pmd_trans_unstable() after the split clears the bad PMD -> again;
    # 6.12/7.2: pte_offset_map_lock() fails, clears it -> ACTION_AGAIN.
    # Same callbacks, each by its own rule.
    mm = _bad_user_pmd(version)
    mm.add_vma(0x400000, 0x600000)
    r = Rec(("pmd_entry", "pte_entry", "pte_hole"))
    walks: list[Any] = []
    r.ops.post_vma = lambda w: walks.append(w)
    assert walk_page_range(mm, 0x400000, 0x402000, r.ops) == 0
    assert r.log == [("pmd_entry", 0x400000, 0x402000), ("pte_hole", 0x400000, 0x402000, 3)]
    assert [e.reason for e in walks[0].errors] == ["bad"]


# --------------------------------------------------------------------------
# hugetlb: the same callbacks on every version (only the locking differs:
# 6.1 huge_pte_offset without the hugetlb VMA lock, 6.12/7.2 hugetlb_walk
# under hugetlb_vma_lock_read)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("version", [V61, V612, V72])
def test_hugetlb_same_everywhere(version: tuple[int, ...]) -> None:
    mm = mk(version)
    mm.add_vma(G, G + 2 * M2, VM_READ | VM_WRITE, hugetlb_shift=21)
    mm.map_2m(G, pfn=0x40000)
    r = Rec(("hugetlb_entry", "pte_hole", "pre_vma", "post_vma"))
    assert walk_page_range(mm, G, G + 2 * M2, r.ops) == 0
    hmask = (1 << 64) - M2
    assert r.log == [
        ("pre_vma", G, G + 2 * M2),
        ("hugetlb_entry", G, G + M2, hmask),
        ("hugetlb_entry", G + M2, G + 2 * M2, hmask),
        ("post_vma",),
    ]
    if version == V72:
        # 7.2 __walk_page_range: no install_pte on hugetlb VMAs
        assert walk_page_range_mm_unsafe(mm, G, G + 2 * M2, _install_ops()) == EINVAL


# --------------------------------------------------------------------------
# The features themselves
# --------------------------------------------------------------------------


def test_features_for_version() -> None:
    f61, f612, f72 = (KernelFeatures.for_version(v) for v in (V61, V612, V72))
    assert (f61.walk_lock, f612.walk_lock, f72.walk_lock) == (False, True, True)
    assert (f61.walk_page_vma_tests, f612.walk_page_vma_tests) == (True, False)
    assert (f61.pte_map_may_fail, f612.pte_map_may_fail) == (False, True)
    assert (f612.walk_ops_install_pte, f72.walk_ops_install_pte) == (False, True)
    assert (f612.walk_lock_vma_rdlock_verify, f72.walk_lock_vma_rdlock_verify) == (False, True)
    assert not f61.folio_walk and f612.folio_walk
    s80, s100 = KernelFeatures.for_version(V612_80), KernelFeatures.for_version(V612_100)
    assert (s80.walk_pud_recheck, s100.walk_pud_recheck, f612.walk_pud_recheck) == (False, True, True)
    assert (s100.walk_action_at_again, f612.walk_action_at_again) == (False, True)
    assert s100.has_entry_point("walk_page_range_novma")
    assert not f612.has_entry_point("walk_page_range_novma")
    assert f612.kernel == "6.12.117"


# --------------------------------------------------------------------------
# folio_walk (absent in 6.1; 6.12 and 7.2 mm/pagewalk.c folio_walk_start)
# --------------------------------------------------------------------------


def _fw_mm(version: tuple[int, ...]) -> tuple[SyntheticMM, Any]:
    mm = mk(version, levels=5)
    vma = mm.add_vma(0x400000, 0x80000000)
    mm.map_zero(0x402000)
    mm.map_migration(0x403000, 0x5555, write=True)
    mm.map_migration(0x600000, 0x80000, write=True, level=PageTableLevel.PMD)
    mm.map_1g(G, pfn=0x100000)
    return mm, vma


def test_folio_walk_not_in_6_1() -> None:
    mm, vma = _fw_mm(V61)
    with pytest.raises(NotInKernelError, match=r"^folio_walk_start: not in Linux 6\.1\.176 \(since 6\.12\)"):
        folio_walk_start(FolioWalk(), vma, 0x402000, 0)


def test_folio_walk_6_12_flags_and_migration() -> None:
    # 6.12: FW_MIGRATION = BIT(0), FW_ZEROPAGE = BIT(1); migration entries
    # (PTE and PMD) are found with fw->page = NULL
    mm, vma = _fw_mm(V612)
    FW_MIGRATION, FW_ZEROPAGE = 1, 2
    zero = mm.backend.zero_pfn
    assert folio_walk_start(FolioWalk(), vma, 0x402000, FW_MIGRATION) is None
    fw = FolioWalk()
    assert folio_walk_start(fw, vma, 0x402000, FW_ZEROPAGE) == zero and fw.page is None
    fw = FolioWalk()
    assert folio_walk_start(fw, vma, 0x403000, FW_MIGRATION) == 0x5555
    assert fw.page is None and fw.level is FolioWalkLevel.FW_LEVEL_PTE
    fw = FolioWalk()
    assert folio_walk_start(fw, vma, 0x601000, FW_MIGRATION) == 0x80000
    assert fw.page is None and fw.level is FolioWalkLevel.FW_LEVEL_PMD and fw.pfn == 0x80001
    assert folio_walk_start(FolioWalk(), vma, 0x403000, FW_ZEROPAGE) is None


def test_folio_walk_7_2_flags() -> None:
    # 7.2: FW_ZEROPAGE = BIT(0), no FW_MIGRATION: migration entries are
    # never found
    mm, vma = _fw_mm(V72)
    zero = mm.backend.zero_pfn
    assert folio_walk_start(FolioWalk(), vma, 0x402000, 1) == zero
    assert folio_walk_start(FolioWalk(), vma, 0x402000, 2) is None
    for flags in (0, 1, 2, 3):
        assert folio_walk_start(FolioWalk(), vma, 0x403000, flags) is None
        assert folio_walk_start(FolioWalk(), vma, 0x601000, flags) is None


@pytest.mark.parametrize("version", [V612, V72])
def test_folio_walk_pud_leaf(version: tuple[int, ...]) -> None:
    # 6.12: a present, non-special PUD leaf is pud_page(pud), whatever its
    # PFN; 7.2: vm_normal_page_pud() refuses a PFN past highest_memmap_pfn
    mm, vma = _fw_mm(version)
    fw = FolioWalk()
    assert folio_walk_start(fw, vma, G + 3 * M2, 0) == 0x100000
    assert fw.level is FolioWalkLevel.FW_LEVEL_PUD and fw.pfn == 0x100000 + 3 * 512
    mm.backend.highest_memmap_pfn = 0xFFFFF
    found = folio_walk_start(FolioWalk(), vma, G, 0)
    assert found == (0x100000 if version == V612 else None)


# --------------------------------------------------------------------------
# Probing a program (KernelFeatures.from_program), as drgn's helpers do
# --------------------------------------------------------------------------


class _Type:
    def __init__(self, members: set[str]) -> None:
        self.members = members

    def has_member(self, name: str) -> bool:
        return name in self.members


class _Release:
    def __init__(self, release: str) -> None:
        self.release = release

    def string_(self) -> bytes:
        return self.release.encode()


def _walk_ops_type(members: set[str]) -> Any:
    """A ``struct mm_walk_ops`` with *members*, in the kernel's order."""
    import drgn

    prog = drgn.Program(drgn.host_platform)
    fnp = prog.pointer_type(prog.function_type(prog.int_type("int", 4, True), ()))
    lock = prog.int_type("unsigned int", 4, False)
    names = [n for n in (*MM_WALK_CALLBACKS, "walk_lock") if n in members]
    return prog.struct_type("mm_walk_ops", 8 * len(names), tuple(
        drgn.TypeMember(lock if n == "walk_lock" else fnp, n, 64 * i) for i, n in enumerate(names)))


class _FakeProgram:
    """Just the lookups KernelFeatures.from_program makes."""

    def __init__(self, release: str | None, types: dict[str, set[str]], names: set[str]) -> None:
        self.release = release
        self.types = types
        self.names = names

    def __getitem__(self, name: str) -> Any:
        if name == "UTS_RELEASE" and self.release is not None:
            return _Release(self.release)
        raise KeyError(name)

    def type(self, name: str) -> Any:
        if name not in self.types:
            raise LookupError(name)
        if name == "struct mm_walk_ops":  # a real type: its layout is probed too
            return _walk_ops_type(self.types[name])
        return _Type(self.types[name])

    def object(self, name: str, flags: Any = None) -> Any:
        if name not in self.names:
            raise LookupError(name)
        return name

    def symbol(self, name: str) -> Any:
        return self.object(name)


OPS10 = {"pgd_entry", "pmd_entry", "pte_entry", "pte_hole", "test_walk"}
COMMON = {"walk_page_range", "walk_page_vma", "walk_page_mapping", "walk_page_range_vma"}
PROGRAMS = {
    # what Debian's builds have (research: probe cheat-sheet)
    "6.1.176-1-cloud-amd64": ({"struct mm_walk_ops": OPS10}, COMMON | {"walk_page_range_novma"}),
    "6.12.117+deb13-cloud-amd64": (
        {"struct mm_walk_ops": OPS10 | {"walk_lock"}},
        COMMON
        | {"walk_kernel_page_table_range", "walk_page_range_debug", "__pte_offset_map", "folio_walk_start"},
    ),
    "7.2.13+deb14-cloud-amd64": (
        {"struct mm_walk_ops": OPS10 | {"walk_lock", "install_pte"}},
        COMMON
        | {
            "walk_kernel_page_table_range",
            "walk_kernel_page_table_range_lockless",
            "walk_page_range_debug",
            "walk_page_range_mm_unsafe",
            "walk_page_range_vma_unsafe",
            "__pte_offset_map",
            "folio_walk_start",
            "PGWALK_VMA_RDLOCK_VERIFY",
        },
    ),
}


@pytest.mark.parametrize("release", list(PROGRAMS))
def test_from_program_matches_for_version(release: str) -> None:
    types, names = PROGRAMS[release]
    probed = KernelFeatures.from_program(_FakeProgram(release, types, names))  # type: ignore[arg-type]
    by_version = KernelFeatures.for_version(tuple(int(x) for x in release.split("-")[0].split("+")[0].split(".")))
    for field in (
        "walk_ops_install_pte",
        "walk_lock",
        "walk_lock_vma_rdlock_verify",
        "walk_page_vma_tests",
        "pte_map_may_fail",
        "walk_pud_recheck",
        "walk_action_at_again",
        "walk_entry_points",
        "folio_walk",
        "fw_zeropage",
        "fw_migration",
    ):
        assert getattr(probed, field) == getattr(by_version, field), field


def test_from_program_probes_win_over_the_release() -> None:
    # a 6.12 build whose release string says 6.12.117 but whose symbols are
    # those before the split (a vendor kernel): the symbols decide the entry
    # points, and a kernel without the split cannot have the 6.12.115 fix
    types, names = PROGRAMS["6.12.117+deb13-cloud-amd64"]
    names = (names - {"walk_kernel_page_table_range", "walk_page_range_debug"}) | {"walk_page_range_novma"}
    f = KernelFeatures.from_program(_FakeProgram("6.12.117", types, names))  # type: ignore[arg-type]
    assert f.has_entry_point("walk_page_range_novma") and not f.has_entry_point("walk_page_range_debug")
    assert f.walk_pud_recheck and not f.walk_action_at_again
    # no release at all: probes, and the newest shape where only the release could tell
    f = KernelFeatures.from_program(_FakeProgram(None, *PROGRAMS["6.1.176-1-cloud-amd64"]))  # type: ignore[arg-type]
    assert not f.walk_lock and f.walk_page_vma_tests and not f.pte_map_may_fail
    assert not f.walk_pud_recheck and not f.walk_action_at_again
    assert f.has_entry_point("walk_page_range_novma") and not f.folio_walk
