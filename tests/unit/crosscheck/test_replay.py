# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Host tests of the crosscheck's trace decoding, replay and comparison, on
synthetic page tables.

The "kernel traces" here are written by hand from Linux 7.2
mm/pagewalk.c for small layouts (the comments say which kernel path makes
each step); the layouts' addresses and values come from the synthetic
builder. What is tested is that the replay reproduces a correct trace with
zero divergences and that any wrong step is reported at its index.
"""

from __future__ import annotations

import pytest

from livewalk.arch import ArchPaging, PageTableLevel
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.x86.pgtable import X86Paging
from livewalk.backend.synthetic import SyntheticMM
from livewalk.crosscheck.compare import ReplayCall, diff_step
from livewalk.crosscheck.model import (
    ENTRY_POINTS,
    SLOT_INDEX,
    KernelStep,
    KernelWalk,
    assemble,
    decode_event,
    encode_callback,
    encode_walk_end,
    encode_walk_start,
)
from livewalk.crosscheck.replay import (
    ReplayBackend,
    ReplayMM,
    kernel_overlay,
    list_vmas,
    replay_walk,
    snapshot_tables,
    table_levels,
)

PMD = PageTableLevel.PMD
PTE = PageTableLevel.PTE
PUD = PageTableLevel.PUD


def _cbs(*slots: str) -> tuple[int, ...]:
    c = [0] * 11
    for n, s in enumerate(slots):
        c[SLOT_INDEX[s]] = 0xFFFFFFFF81000000 + 0x100 * (n + 1)
    return tuple(c)


def _walk(fn: str, args: tuple[int, ...], slots: tuple[str, ...], steps: list[KernelStep], ret: int = 0,
          vma: tuple[int, int] = (0, 0)) -> KernelWalk:
    ep = next(e for e in ENTRY_POINTS.values() if e.name == fn)
    for i, s in enumerate(steps):
        s.step = i
    return KernelWalk(walk_id=1, fn=ep, tid=100, tgid=100, args=args + (0,) * (6 - len(args)),
                      vma_start=vma[0], vma_end=vma[1], callbacks=_cbs(*slots), steps=steps,
                      ret=ret, end_steps=len(steps))


def _replay(mm: SyntheticMM, kw: KernelWalk, *, overlay: bool = False, corrupt: int | None = None):
    base = mm.backend
    tables = snapshot_tables(base, mm.pgd)
    ov = kernel_overlay(kw, base.pgd_phys, base.paging) if overlay else None
    rb = ReplayBackend(base, tables=tables, overlay=ov, vmas=list_vmas(base, mm))
    rmm = ReplayMM(mm, rb)
    rb.mm = rmm
    return replay_walk(kw, rb, rmm, corrupt_step=corrupt), rb


#: The paging configurations replayed: x86-64 with 4 and 5 levels; arm64
#: with 4K pages and 52-bit VAs (5 levels with LPA2, folded to 4 at boot
#: without), 4K/48-bit, 16K/52-bit (4 levels, 3 at boot without LPA2), and
#: 64K/52-bit (3 levels).
PAGINGS: dict[str, ArchPaging] = {
    "x86-l4": X86Paging(levels=4),
    "x86-l5": X86Paging(levels=5),
    "arm64-4k-l5": Arm64Paging(phys_offset=0),
    "arm64-4k-l4-at-boot": Arm64Paging(vabits_actual=48, phys_offset=0),
    "arm64-4k-48": Arm64Paging(va_bits=48, pa_bits_52=False, phys_offset=0),
    "arm64-16k-l4": Arm64Paging(page_shift=14, phys_offset=0),
    "arm64-16k-l3-at-boot": Arm64Paging(page_shift=14, vabits_actual=47, phys_offset=0),
    "arm64-64k-l3": Arm64Paging(page_shift=16, phys_offset=0),
}


@pytest.fixture(params=list(PAGINGS))
def layout(request):
    """One VMA [0x400000, 0x600000) with one present page at 0x400000."""
    mm = SyntheticMM(paging=PAGINGS[request.param])
    mm.add_vma(0x400000, 0x600000)
    mm.map_4k(0x400000, pfn=0x1234)
    return mm


def _pagemap_like(mm: SyntheticMM) -> KernelWalk:
    # walk_page_range(mm, 0x400000 - PAGE_SIZE, 0x600000 + PAGE_SIZE) with pmd_entry + pte_hole:
    # walk_page_range_mm_unsafe: gap before the VMA -> pte_hole(-1), vma NULL;
    # the VMA: PGD/P4D/PUD present (no callbacks at those levels), the PMD is
    # a table -> pmd_entry; no pte_entry, so no descent; after the last VMA
    # -> pte_hole(-1).
    page = mm.paging.page_size
    return _walk("walk_page_range", (0xFF1100000000AA00, 0x400000 - page, 0x600000 + page),
                 ("pmd_entry", "pte_hole"), [
                     KernelStep("pte_hole", 0x400000 - page, 0x400000, arg=-1),
                     KernelStep("pmd_entry", 0x400000, 0x600000, ptr=mm.kaddr_of(PMD, 0x400000),
                                value=mm.lookup(PMD, 0x400000), vma_start=0x400000),
                     KernelStep("pte_hole", 0x600000, 0x600000 + page, arg=-1),
                 ])


def test_replay_matches_kernel_trace(layout):
    res, rb = _replay(layout, _pagemap_like(layout))
    assert res.divergence is None, res.divergence.report()
    assert [c.slot for c in res.calls] == ["pte_hole", "pmd_entry", "pte_hole"]
    assert res.ret == 0


def test_corrupted_step_is_reported_at_that_step(layout):
    res, _ = _replay(layout, _pagemap_like(layout), corrupt=1)
    d = res.divergence
    assert d is not None
    assert d.index == 1 and d.fields == ("addr",)
    assert "first divergence at step 1: addr" in d.report()


def test_wrong_kernel_depth_is_a_divergence(layout):
    kw = _pagemap_like(layout)
    kw.steps[2].arg = 3
    res, _ = _replay(layout, kw)
    assert res.divergence is not None and res.divergence.index == 2
    assert res.divergence.fields == ("depth",)


def test_entry_value_difference_is_caught(layout):
    kw = _pagemap_like(layout)
    kw.steps[1].value ^= 0x20  # the kernel saw the accessed bit differently
    res, _ = _replay(layout, kw)
    assert res.divergence is not None and res.divergence.fields == ("entry value",)


def test_kernel_return_value_drives_the_replay(layout):
    # pmd_entry returned 1 (e.g. PM_END_OF_BUFFER): walk_pmd_range breaks,
    # the error propagates, walk_page_range_mm_unsafe stops: no second hole,
    # and the walk returns 1.
    kw = _pagemap_like(layout)
    kw.steps[1].ret = 1
    del kw.steps[2]
    kw.ret = 1
    kw.end_steps = 2
    res, _ = _replay(layout, kw)
    assert res.divergence is None, res.divergence.report()
    assert res.ret == 1


def test_missing_kernel_step_is_reported(layout):
    kw = _pagemap_like(layout)
    del kw.steps[1]
    for i, s in enumerate(kw.steps):
        s.step = i
    res, _ = _replay(layout, kw)
    assert res.divergence is not None and res.divergence.index == 1
    assert res.divergence.fields == ("callback",)


def test_guard_install_overlay(layout):
    # guard install over the first two pages of the VMA through
    # walk_page_range_vma_unsafe: pud_entry, pmd_entry, then the PTE loop:
    # 0x400000 is populated -> pte_entry; the next page is none -> install_pte.
    mm = layout
    page = mm.paging.page_size
    a1, end = 0x400000 + page, 0x400000 + 2 * page
    mm.map_marker(a1)  # PTE marker, PTE_MARKER_GUARD: what the kernel installs
    marker = mm.lookup(PTE, a1)
    mm.set_pte(a1, 0)
    kw = _walk("walk_page_range_vma_unsafe", (0, 0x400000, end),
               ("pud_entry", "pmd_entry", "pte_entry", "install_pte"), [
                   KernelStep("pud_entry", 0x400000, end, ptr=mm.kaddr_of(PUD, 0x400000),
                              value=mm.lookup(PUD, 0x400000), vma_start=0x400000),
                   KernelStep("pmd_entry", 0x400000, end, ptr=mm.kaddr_of(PMD, 0x400000),
                              value=mm.lookup(PMD, 0x400000), vma_start=0x400000),
                   KernelStep("pte_entry", 0x400000, a1, ptr=mm.kaddr_of(PTE, 0x400000),
                              value=mm.lookup(PTE, 0x400000), vma_start=0x400000),
                   KernelStep("install_pte", a1, end, value=marker, vma_start=0x400000),
               ], vma=(0x400000, 0x600000))
    # after the trigger the marker is in the page table
    mm.set_pte(a1, marker)
    res, _ = _replay(mm, kw)  # the state after the trigger: pte_entry instead of install_pte
    assert res.divergence is not None and res.divergence.index == 3
    res, rb = _replay(mm, kw, overlay=True)  # served as the kernel saw it
    assert res.divergence is None, res.divergence.report()
    assert [pa for pa, _, _ in rb.changed] == [mm.backend.pgd_phys(mm.kaddr_of(PTE, a1))]


def test_records_roundtrip_and_loss_detection():
    steps = [KernelStep("pte_hole", 0x1000, 0x2000, arg=-1, action_in=0, action_out=0),
             KernelStep("pmd_entry", 0x200000, 0x400000, ptr=0xFF11000001234008, value=0x1234067,
                        ret=0, vma_start=0x200000)]
    recs = [encode_walk_start(7, 1, 100, 100, (0xFF110000DEAD0000, 0x1000, 0x400000, 0xFFFFFFFF82458700),
                              _cbs("pmd_entry", "pte_hole"))]
    recs += [encode_callback(7, 100, i, s) for i, s in enumerate(steps)]
    recs.append(encode_walk_end(7, 1, 100, 2, 0))
    a = assemble(decode_event(r) for r in recs)
    assert a.problems == []
    (w,) = a.walks
    assert w.fn.name == "walk_page_range" and (w.start, w.end) == (0x1000, 0x400000)
    assert w.slots == ("pmd_entry", "pte_hole")
    assert w.steps[0].arg == -1 and w.steps[1].value == 0x1234067 and w.ret == 0
    # one callback record lost: the BPF counter says 2, one arrived
    a = assemble(decode_event(r) for r in (recs[0], recs[2], recs[3]))
    assert a.walks == [] and a.problems
    # the start lost
    a = assemble(decode_event(r) for r in recs[1:])
    assert a.walks == [] and len(a.problems) == 3


def test_diff_step_fields():
    k = KernelStep("pmd_entry", 0x200000, 0x400000, ptr=0x10, value=0x67, action_in=0, vma_start=0x200000)
    assert diff_step(k, ReplayCall("pmd_entry", 0x200000, 0x400000, 0, 0x10, 0x67, 0, 0x200000)) == ()
    assert diff_step(k, ReplayCall("pte_entry", 0x200000, 0x400000)) == ("callback",)
    assert diff_step(k, ReplayCall("pmd_entry", 0x200000, 0x400000, 0, 0x18, 0x67, 1, 0)) == (
        "entry address", "action on entry", "walk->vma")


def test_snapshot_reads_every_user_table(layout):
    mm = layout
    base = mm.backend
    # a page near the top of the smallest user space: other tables below the top one
    far = 0x7F0000000000
    mm.map_4k(far, pfn=0x99)
    tables = snapshot_tables(base, mm.pgd)
    levels = table_levels(mm.paging)
    assert len(levels) == mm.paging.levels
    want = {mm.backend.pgd_phys(mm.pgd)}
    for addr in (0x400000, far):
        for lvl in levels[1:]:
            want.add(mm.table_paddr(lvl, addr))
    assert set(tables) == want
    assert len(want) > len(levels)  # two chains of tables
    i = (0x400000 >> mm.paging.page_shift) & (mm.paging.ptrs_per(PTE) - 1)
    assert tables[mm.table_paddr(PTE, 0x400000)][i] == mm.lookup(PTE, 0x400000)


def test_overlay_marks_reported_holes_none(layout):
    # a ptdump-like trace: pud_entry on the PUD covering 0x400000, then a
    # PMD hole (depth 3) at 0x800000 under the same PUD: that slot of the
    # PMD table is served as none, whatever the live state says.
    mm = layout
    base = mm.backend
    pud_v = mm.lookup(PUD, 0x400000)
    kw = _walk("walk_page_range_debug", (0, 0x400000, 0xA00000, 0, 0), ("pud_entry", "pmd_entry", "pte_hole"), [
        KernelStep("pud_entry", 0x400000, 0xA00000, ptr=mm.kaddr_of(PUD, 0x400000), value=pud_v),
        KernelStep("pte_hole", 0x800000, 0xA00000, arg=3),
    ])
    ov = kernel_overlay(kw, base.pgd_phys, base.paging)
    pmd_slot = mm.table_paddr(PMD, 0x800000) + 8 * (
        (0x800000 >> mm.paging.level_shift(PMD)) & (mm.paging.ptrs_per(PMD) - 1))
    assert ov[pmd_slot] == 0
    assert ov[base.pgd_phys(mm.kaddr_of(PUD, 0x400000))] == pud_v


def test_cli_parses_crosscheck():
    from livewalk.cli import build_parser

    args = build_parser().parse_args(["crosscheck", "--pid", "42", "--trigger", "mincore", "--trigger", "ptdump"])
    assert (args.command, args.pid, args.triggers, args.corrupt_step) == ("crosscheck", 42, ["mincore", "ptdump"], None)
    from livewalk.errors import UsageError

    with pytest.raises(UsageError, match="nonesuch"):
        build_parser().parse_args(["crosscheck", "--pid", "42", "--trigger", "nonesuch"])


def test_snapshot_and_replay_of_a_pgd_smaller_than_a_page():
    # arm64 with 4K pages and 52-bit VAs: the PGD is 16 slots, a pgd_cache
    # object somewhere in its page; the snapshot starts at its first slot
    mm = SyntheticMM(paging=PAGINGS["arm64-4k-l5"])
    mm.add_vma(0x400000, 0x600000)
    mm.map_4k(0x400000, pfn=0x1234)
    pte_table, kw = mm.table_paddr(PTE, 0x400000), _pagemap_like(mm)
    n = mm.paging.ptrs_per(PageTableLevel.PGD)
    t = mm.backend._mem[mm.pgd_paddr]
    t[3 * n : 4 * n] = t[0:n]
    t[0:n] = type(t)("Q", [0] * n)
    mm.pgd_paddr += 3 * n * 8
    tables = snapshot_tables(mm.backend, mm.pgd)
    assert pte_table in tables
    res, _ = _replay(mm, kw)
    assert res.divergence is None, res.divergence.report()


def test_ring_buffer_grown_to_hold_every_record():
    from livewalk.crosscheck.tracer import RECORD_BYTES, RINGBUF_MAX_BYTES, Tracer

    # arm64's ptdump of 2 GiB of linear map: 524288 pte_entry records and a few more
    n = 524288 + 300
    for page in (1 << 12, 1 << 14, 1 << 16):
        pages = Tracer.ringbuf_pages_for(n, page)
        assert pages & (pages - 1) == 0
        assert pages * page >= n * RECORD_BYTES > pages * page // 2
    assert Tracer.ringbuf_pages_for(10**9, 1 << 12) == RINGBUF_MAX_BYTES >> 12
    assert Tracer.ringbuf_pages_for(1, 1 << 12) == 1


def test_contpte_block_compares_the_raw_slot_the_probe_reads():
    # arm64 CONTPTE: the pte_entry callback reads ptep_get(), which folds
    # the block's dirty bit into every entry; the BPF probe reads the raw
    # slot. A clean entry of a block with one dirty entry matches raw.
    from livewalk.arch.arm64.pgtable_hwdef import PTE_CONT, PTE_RDONLY
    from livewalk.arch.arm64.pgtable_prot import PTE_DIRTY

    mm = SyntheticMM(paging=PAGINGS["arm64-4k-l5"])
    page, n = mm.paging.page_size, mm.paging.cont_ptes
    start, end = 0x400000, 0x400000 + n * page
    mm.add_vma(start, 0x600000)
    clean = (mm.default_flags & ~PTE_DIRTY) | PTE_RDONLY | PTE_CONT
    for k in range(n):
        mm.map_4k(start + k * page, pfn=0x1230 + k, flags=clean | (PTE_DIRTY if k == 3 else 0))
    raw = [mm.lookup(PTE, a) for a in range(start, end, page)]
    assert not raw[0] & PTE_DIRTY and mm.paging.ptes_get(raw, 0, 1)[0] & PTE_DIRTY
    kw = _walk("walk_page_range", (0, start, end), ("pte_entry",), [
        KernelStep("pte_entry", a, a + page, ptr=mm.kaddr_of(PTE, a), value=v, vma_start=start)
        for a, v in zip(range(start, end, page), raw)
    ])
    res, _ = _replay(mm, kw)
    assert res.divergence is None, res.divergence.report()
    kw.steps[5].value |= PTE_DIRTY  # not what the slot holds
    res, _ = _replay(mm, kw)
    assert res.divergence is not None and res.divergence.index == 5
    assert res.divergence.fields == ("entry value",)
