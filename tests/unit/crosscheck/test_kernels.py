# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The crosscheck on Linux 6.1, 6.12 and 7.2 without a VM: the ``struct
mm_walk_ops`` layout probed from debug info (a drgn program holding only that
type, laid out as each kernel's include/linux/pagewalk.h has it), trace
records decoded with each layout, the triggers each kernel cannot run, and
the replay of 6.1's ``walk_page_range_novma()`` (ptdump's entry point before
6.12.105) on a synthetic 6.1 mm.
"""

from __future__ import annotations

import drgn
import pytest
from drgn import Program, TypeKind, TypeMember

from livewalk.arch import PageTableLevel
from livewalk.backend.synthetic import SyntheticMM
from livewalk.crosscheck.model import (
    ENTRY_POINTS,
    SLOT_INDEX,
    SLOTS,
    KernelStep,
    KernelWalk,
    assemble,
    decode_event,
    encode_walk_end,
    encode_walk_start,
)
from livewalk.crosscheck.replay import (
    ReplayBackend,
    ReplayMM,
    list_vmas,
    replay_walk,
    snapshot_tables,
)
from livewalk.crosscheck.run import TriggerResult
from livewalk.crosscheck.tracer import TracerError, ops_words
from livewalk.crosscheck.triggers import TRIGGERS
from livewalk.kernel import KernelFeatures
from livewalk.mm.pagewalk import MM_WALK_CALLBACKS

PMD = PageTableLevel.PMD

#: what each kernel's struct mm_walk_ops holds, in declaration order
#: (include/linux/pagewalk.h of Debian's 6.1.176, 6.12.117 and 7.2.13)
OPS_MEMBERS = {
    (6, 1): (*MM_WALK_CALLBACKS[:10],),
    (6, 12): (*MM_WALK_CALLBACKS[:10], "walk_lock"),
    (7, 2): (*MM_WALK_CALLBACKS, "walk_lock"),
}


def _program(members: tuple[str, ...]) -> Program:
    prog = Program(drgn.host_platform)
    fn = prog.function_type(prog.int_type("int", 4, True), ())
    fnp = prog.pointer_type(fn)
    lock = prog.enum_type("page_walk_lock", prog.int_type("unsigned int", 4, False), ())
    ms = tuple(TypeMember(lock if m == "walk_lock" else fnp, m, 64 * i) for i, m in enumerate(members))
    ops = prog.struct_type("mm_walk_ops", 8 * len(members), ms)

    def find_type(prog: Program, kinds: object, name: str, filename: str | None) -> object:
        return ops if name == "mm_walk_ops" else None

    prog.register_type_finder("test", find_type, enable_index=0)
    return prog


@pytest.mark.parametrize("version", list(OPS_MEMBERS), ids=lambda v: f"{v[0]}.{v[1]}")
def test_walk_ops_layout_probed_from_debug_info(version):
    prog = _program(OPS_MEMBERS[version])
    assert prog.type("struct mm_walk_ops").kind == TypeKind.STRUCT
    probed = KernelFeatures.from_program(prog)
    hint = KernelFeatures.for_version(version)
    assert probed.walk_ops_callbacks == hint.walk_ops_callbacks
    assert probed.walk_ops_walk_lock_offset == hint.walk_ops_walk_lock_offset
    names = [n for n, _ in probed.walk_ops_callbacks]
    assert ("install_pte" in names) == (version >= (6, 13))
    want_lock = {(6, 1): None, (6, 12): 80, (7, 2): 88}[version]
    assert probed.walk_ops_walk_lock_offset == want_lock
    assert ops_words(probed) == (11 if version >= (6, 13) else 10)


def test_ops_words_refuses_an_unknown_layout():
    with pytest.raises(TracerError, match="no struct mm_walk_ops"):
        ops_words(KernelFeatures())


@pytest.mark.parametrize("version", [(6, 1), (6, 12), (7, 2)], ids=lambda v: f"{v[0]}.{v[1]}")
def test_walk_start_decoded_with_the_kernels_layout(version):
    f = KernelFeatures.for_version(version)
    layout = f.walk_ops_callbacks
    cbs = [0] * len(SLOTS)
    cbs[SLOT_INDEX["pmd_entry"]] = 0xFFFFFFFF81000100
    cbs[SLOT_INDEX["post_vma"]] = 0xFFFFFFFF81000200
    # the word after the callbacks is walk_lock (6.12: 2 = PGWALK_WRLOCK_VERIFY),
    # never a callback pointer
    raw = encode_walk_start(3, 1, 10, 10, (0xFF11000000001000, 0, 0x1000), cbs, walk_lock=2, layout=layout)
    if f.walk_ops_walk_lock_offset is not None:
        words = bytearray(raw)
        first = 4 * 4 + 8 + 6 * 8 + 3 * 8
        words[first + f.walk_ops_walk_lock_offset : first + f.walk_ops_walk_lock_offset + 8] = (2).to_bytes(8, "little")
        raw = bytes(words)
    a = assemble(decode_event(r, layout) for r in (raw, encode_walk_end(3, 1, 10, 0, 0)))
    (w,) = a.walks
    assert w.slots == ("pmd_entry", "post_vma")
    assert w.callbacks[SLOT_INDEX["install_pte"]] == 0
    assert w.walk_lock == 2


def test_triggers_not_applicable_per_kernel():
    def na(version: tuple[int, int]) -> dict[str, str]:
        f = KernelFeatures.for_version(version)
        return {t.name: r for t in TRIGGERS if (r := t.not_in_kernel(f)) is not None}

    assert set(na((6, 1))) == {"pagemap_scan", "madv_guard_install", "madv_guard_remove", "ptdump"}
    assert "Linux 6.7" in na((6, 1))["pagemap_scan"]
    assert set(na((6, 12))) == {"madv_guard_install", "madv_guard_remove"}
    assert "Linux 6.13" in na((6, 12))["madv_guard_install"]
    assert na((7, 2)) == {}
    r = TriggerResult("pagemap_scan", not_applicable=na((6, 1))["pagemap_scan"])
    assert not r.ran and not r.ok
    assert r.line().startswith("pagemap_scan        not applicable on this kernel: no PAGEMAP_SCAN ioctl")


def test_entry_points_per_kernel():
    f61 = KernelFeatures.for_version((6, 1))
    f612 = KernelFeatures.for_version((6, 12))
    traced = {e.name for e in ENTRY_POINTS.values()}
    assert {n for n in traced if f61.has_entry_point(n)} == {
        "walk_page_range", "walk_page_vma", "walk_page_range_vma", "walk_page_mapping", "walk_page_range_novma"}
    assert {n for n in traced if f612.has_entry_point(n)} == {
        "walk_page_range", "walk_page_vma", "walk_page_range_vma", "walk_page_mapping",
        "walk_page_range_debug", "walk_kernel_page_table_range"}  # fmt: skip
    assert all(e.debug == (e.name in ("walk_page_range_novma", "walk_page_range_debug")) for e in ENTRY_POINTS.values())


def _novma_walk(mm: SyntheticMM, fn: str = "walk_page_range_novma") -> KernelWalk:
    # Linux 6.1 mm/pagewalk.c walk_page_range_novma(mm, 0x200000, 0x600000,
    # ops, NULL, NULL) with pmd_entry + pte_hole: no VMA, so walk_pgd_range
    # runs over the range as it is. PGD/P4D/PUD present (no callbacks at
    # those levels); walk_pmd_range: the PMD slot of 0x200000 is none ->
    # pte_hole(0x200000, 0x400000, depth 3); 0x400000 is a table ->
    # pmd_entry, and without pte_entry the loop goes on; walk->vma is NULL.
    ep = next(e for e in ENTRY_POINTS.values() if e.name == fn)
    steps = [
        KernelStep("pte_hole", 0x200000, 0x400000, arg=3),
        KernelStep("pmd_entry", 0x400000, 0x600000, ptr=mm.kaddr_of(PMD, 0x400000), value=mm.lookup(PMD, 0x400000)),
    ]
    for i, s in enumerate(steps):
        s.step = i
    cbs = [0] * len(SLOTS)
    cbs[SLOT_INDEX["pmd_entry"]], cbs[SLOT_INDEX["pte_hole"]] = 0xFFFFFFFF81000100, 0xFFFFFFFF81000200
    return KernelWalk(walk_id=1, fn=ep, tid=1, tgid=1, args=(0xFF11000000001000, 0x200000, 0x600000, 0, 0, 0),
                      callbacks=tuple(cbs), steps=steps, ret=0, end_steps=len(steps))


def _replay(mm: SyntheticMM, kw: KernelWalk):
    base = mm.backend
    rb = ReplayBackend(base, tables=snapshot_tables(base, mm.pgd), vmas=list_vmas(base, mm))
    rmm = ReplayMM(mm, rb)
    rb.mm = rmm
    return replay_walk(kw, rb, rmm)


@pytest.mark.parametrize("levels", [4, 5])
def test_novma_replay_on_6_1(levels):
    mm = SyntheticMM(levels=levels, version=(6, 1))
    mm.add_vma(0x400000, 0x600000)
    mm.map_4k(0x400000, pfn=0x1234)
    res = _replay(mm, _novma_walk(mm))
    assert res.divergence is None, res.divergence.report()
    assert [c.slot for c in res.calls] == ["pte_hole", "pmd_entry"]
    assert [c.vma_start for c in res.calls] == [0, 0]


def test_novma_replay_on_a_kernel_without_it_is_a_divergence():
    # 6.12.117 has walk_page_range_debug instead: a trace that names
    # walk_page_range_novma cannot come from it, and the replay says why
    mm = SyntheticMM(levels=4, version=(6, 12))
    mm.add_vma(0x400000, 0x600000)
    mm.map_4k(0x400000, pfn=0x1234)
    res = _replay(mm, _novma_walk(mm))
    assert res.divergence is not None
    assert "NotInKernelError" in res.divergence.fields[0] and "6.12.105" in res.divergence.fields[0]
    res = _replay(mm, _novma_walk(mm, "walk_page_range_debug"))
    assert res.divergence is None, res.divergence.report()
