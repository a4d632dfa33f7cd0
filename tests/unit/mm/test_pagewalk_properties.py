# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Property tests over random page tables: every address of the walked range is
reported exactly once, in increasing order, by the deepest callback that
reports it (a hole, a PTE, a hugetlb entry, or an upper-level entry the
walker did not descend into), for any non-empty combination of the
p?d/pte_entry callbacks (with pte_hole and hugetlb_entry, without which
holes and hugetlb pages are not reported at all, by the kernel's design).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livewalk.arch import PageTableLevel
from livewalk.backend.synthetic import SyntheticMM
from livewalk.mm.pagewalk import MMWalkOps, walk_page_range, walk_page_range_debug
from livewalk.mm.vma import VM_READ, VM_SHARED, VM_WRITE

PAGE = 0x1000
M2 = 1 << 21
G = 1 << 30
ENTRY_CBS = ("pgd_entry", "p4d_entry", "pud_entry", "pmd_entry", "pte_entry")
RANK = {"pgd_entry": 0, "p4d_entry": 1, "pud_entry": 2, "pmd_entry": 3}

# windows where VMAs go: around a PUD boundary, below a P4D (512 GiB)
# boundary, and (5-level only) below the 256 TiB PGD boundary
WINDOWS = (G - 4 * M2, (1 << 39) - 4 * M2, (1 << 48) - 4 * M2)


@st.composite
def layouts(draw: Any) -> tuple[SyntheticMM, int, int]:
    levels = draw(st.sampled_from([4, 5]))
    mm = SyntheticMM(levels=levels)
    windows = WINDOWS if levels == 5 else WINDOWS[:2]
    lo, hi = None, None
    for w in windows:
        if not draw(st.booleans()):
            continue
        cursor = w
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["anon", "anon", "file", "pfnmap", "hugetlb"]))
            gap = draw(st.integers(0, 600)) * PAGE
            pages = draw(st.integers(1, 1536))
            start = cursor + gap
            if kind == "hugetlb":
                start = (start + M2 - 1) & ~(M2 - 1)
                end = start + draw(st.integers(1, 3)) * M2
            else:
                end = start + pages * PAGE
            flags = VM_READ | VM_WRITE
            if kind == "file":
                flags |= VM_SHARED
            mm.add_vma(start, end, flags, pfnmap=kind == "pfnmap",
                       hugetlb_shift=21 if kind == "hugetlb" else 0)
            lo = start if lo is None else min(lo, start)
            hi = end if hi is None else max(hi, end)
            cursor = end
            _populate(draw, mm, start, end, kind)
    if draw(st.booleans()):
        # a 1 GiB VMA with a PUD leaf (split -> cleared when descending)
        mm.add_vma(4 * G, 5 * G)
        mm.map_1g(4 * G, pfn=0x100000)
        lo = 4 * G if lo is None else min(lo, 4 * G)
        hi = 5 * G if hi is None else max(hi, 5 * G)
    if lo is None:
        mm.add_vma(0x400000, 0x401000)
        lo, hi = 0x400000, 0x401000
    assert hi is not None
    start = draw(st.sampled_from([lo, max(0, lo - draw(st.integers(0, 2048)) * PAGE)]))
    end = draw(st.sampled_from([hi, hi + draw(st.integers(1, 2048)) * PAGE]))
    return mm, start, end


def _populate(draw: Any, mm: SyntheticMM, start: int, end: int, kind: str) -> None:
    if kind == "hugetlb":
        for a in range(start, end, M2):
            if draw(st.booleans()):
                mm.map_2m(a, pfn=0x40000 + (a >> 12 & 0xFFE00))
        return
    first_pmd = (start + M2 - 1) & ~(M2 - 1)
    for _ in range(draw(st.integers(0, 6))):
        what = draw(st.sampled_from(["4k", "4k", "swap", "migration", "protnone", "thp", "zero",
                                     "pmd-migration"]))
        if what in ("thp", "zero", "pmd-migration"):
            if first_pmd + M2 > end:
                continue
            a = first_pmd + draw(st.integers(0, (end - first_pmd) // M2 - 1)) * M2
            if mm.lookup(PageTableLevel.PMD, a):
                continue
            if what == "thp":
                mm.map_2m(a, pfn=0x80000)
            elif what == "zero":
                mm.map_huge_zero(a)
            else:
                mm.map_migration(a, 0x80000, write=True, level=PageTableLevel.PMD)
            continue
        a = start + draw(st.integers(0, (end - start) // PAGE - 1)) * PAGE
        pmd = mm.lookup(PageTableLevel.PMD, a)
        if pmd and pmd & 0x80 or pmd and not pmd & 1:
            continue  # a huge or non-present PMD covers it
        if what == "4k":
            mm.map_4k(a, pfn=0x1000 + (a >> 12 & 0xFFFF))
        elif what == "swap":
            mm.map_swap(a, 1, a >> 12)
        elif what == "migration":
            mm.map_migration(a, 0x3000)
        else:
            mm.map_protnone(a, 0x2000)


class Recorder:
    def __init__(self, cbs: tuple[str, ...]) -> None:
        self.log: list[tuple[str, int, int]] = []
        kw: dict[str, Any] = {}
        for name in cbs:
            kw[name] = self._mk(name)
        kw["pte_hole"] = lambda a, n, d, w: self.log.append(("pte_hole", a, n)) and 0
        kw["hugetlb_entry"] = lambda p, h, a, n, w: self.log.append(("hugetlb_entry", a, n)) and 0
        self.ops = MMWalkOps(**kw)

    def _mk(self, name: str) -> Any:
        def cb(entry: Any, addr: int, next: int, walk: Any) -> int:
            self.log.append((name, addr, next))
            return 0

        return cb


def _coverage(log: list[tuple[str, int, int]]) -> list[tuple[int, int]]:
    """The deepest reports: an upper-level entry followed by reports inside it is replaced by them."""
    out: list[tuple[str, int, int]] = []
    for rec in log:
        name, a, n = rec
        if out and out[-1] == rec:
            continue  # ACTION_AGAIN calls the same callback again for the same entry
        while out and out[-1][0] in RANK and out[-1][1] <= a and n <= out[-1][2] and (
            name not in RANK or RANK[name] > RANK[out[-1][0]]
        ):
            out.pop()
        out.append(rec)
    return [(a, n) for _, a, n in out]


def _check_tiles(cov: list[tuple[int, int]], start: int, end: int) -> None:
    assert cov, "nothing reported"
    assert cov[0][0] == start
    for (a0, n0), (a1, _n1) in zip(cov, cov[1:]):
        assert a0 < n0, (hex(a0), hex(n0))
        assert n0 == a1, f"gap or overlap between {n0:#x} and {a1:#x}"
    assert cov[-1][1] == end


cb_sets = st.sets(st.sampled_from(ENTRY_CBS), min_size=1).map(lambda s: tuple(sorted(s)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(layouts(), cb_sets)
def test_vma_walk_reports_every_address_once(layout: tuple[SyntheticMM, int, int], cbs: tuple[str, ...]) -> None:
    mm, start, end = layout
    rec = Recorder(cbs)
    assert walk_page_range(mm, start, end, rec.ops) == 0
    _check_tiles(_coverage(rec.log), start, end)
    # callbacks come in increasing address order
    starts = [a for _, a, _ in rec.log]
    assert starts == sorted(starts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(layouts(), st.sets(st.sampled_from(("pgd_entry", "p4d_entry", "pte_entry"))))
def test_no_vma_walk_reports_every_address_once(layout: tuple[SyntheticMM, int, int], extra: set[str]) -> None:
    # no-VMA walks never descend into leaves, so pud_entry and pmd_entry are
    # needed to report them; hugetlb pages are plain PMD leaves here
    mm, start, end = layout
    rec = Recorder(tuple(sorted({"pud_entry", "pmd_entry", *extra})))
    assert walk_page_range_debug(mm, start, end, rec.ops, None) == 0
    _check_tiles(_coverage(rec.log), start, end)


ALL_CBS = ("pgd_entry", "p4d_entry", "pud_entry", "pmd_entry", "pte_entry")
garbage = st.one_of(
    st.integers(0, (1 << 64) - 1),
    st.integers(0, (1 << 40) - 1).map(lambda pfn: (pfn << 12) | 0x67),  # a table pointer to nowhere
    st.integers(0, (1 << 40) - 1).map(lambda pfn: (pfn << 12) | 0xE7),  # a huge leaf
    st.sampled_from([0x60, 0x80, 0x100, 0x1234077, 0x8000000000000000]),
)


@settings(max_examples=int(__import__('os').environ.get('LW_FUZZ_EXAMPLES', 40)), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(layouts(), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 511), garbage), min_size=1, max_size=6),
       st.booleans())
def test_corrupted_tables_terminate_and_still_cover(
    layout: tuple[SyntheticMM, int, int], corruptions: list[tuple[int, int, int]], no_vma: bool
) -> None:
    mm, start, end = layout
    mem = mm.livewalk_backend._mem
    tables = sorted(mem)
    for which, idx, value in corruptions:
        mem[tables[which % len(tables)]][idx] = value
    rec = Recorder(ALL_CBS)
    if no_vma:
        ret = walk_page_range_debug(mm, start, end, rec.ops, None)
    else:
        ret = walk_page_range(mm, start, end, rec.ops)
    assert ret == 0
    _check_tiles(_coverage(rec.log), start, end)
