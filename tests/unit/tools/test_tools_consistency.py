# SPDX-License-Identifier: LGPL-2.1-or-later
"""The consistency verdict of vtop, ``vm -p`` and ``pfn`` (livewalk.consistency):
a change injected while a table is read (the synthetic backend's
``inject_after_read``) is always caught, named and marked; an idle target is
never flagged; a retry answers with the new state."""

from __future__ import annotations

import io
from typing import Any

import pytest

from livewalk.arch import PageTableLevel
from livewalk.backend.synthetic import SyntheticBackend, SyntheticMM
from livewalk.commands.args import parse_retries
from livewalk.commands.crash import (
    _Parser,
    add_pfn_arguments,
    add_vm_arguments,
    add_vtop_arguments,
    collect_tables,
    collect_tables_consistent,
    vm_pages,
)
from livewalk.consistency import TABLE_CHANGED, VMA_TREE_CHANGED, ConsistencyTally, TornError
from livewalk.errors import UsageError
from livewalk.tools.pfn import find_pfn_in_mm, find_pfn_in_mm_consistent
from livewalk.tools.vtop import _vtop_kernel_consistent, format_vtop, vtop_consistent, vtop_json

PTE = PageTableLevel.PTE
BASE = 0x7F0000000000
MB2 = 2 << 20
TASK_SIZE = 1 << 47


@pytest.fixture(params=[4, 5], ids=["l4", "l5"])
def mm(request: pytest.FixtureRequest) -> SyntheticMM:
    b = SyntheticBackend(levels=request.param, copy_tables=True)
    m = SyntheticMM(backend=b)
    m.add_vma(BASE, BASE + 2 * MB2)
    m.map_range_4k(BASE, BASE + 16 * 4096, pfn=0x1000)
    m.map_range_4k(BASE + MB2, BASE + MB2 + 16 * 4096, pfn=0x2000)
    m.add_vma(BASE + 4 * MB2, BASE + 5 * MB2)
    m.map_2m(BASE + 4 * MB2, pfn=0x40000)
    return m


def _pte_table(mm: SyntheticMM, addr: int) -> int:
    t = mm.table_paddr(PTE, addr)
    assert t is not None
    return t


# -- vtop ------------------------------------------------------------------------------


def test_vtop_idle_never_flagged(mm: SyntheticMM) -> None:
    for addr in (BASE + 0x3000, BASE + 0x100000, BASE + 4 * MB2 + 0x5000, BASE + 3 * MB2):
        r = vtop_consistent(mm, addr)
        assert r.consistency is not None
        assert r.consistency.level == "walk" and r.consistency.torn == []
        assert "# torn" not in format_vtop(r)
        assert vtop_json(r)["consistency"]["level"] == "walk"


def test_vtop_injected_change_caught_and_marked(mm: SyntheticMM) -> None:
    b = mm.backend
    addr = BASE + 0x3000
    b.inject_after_read(_pte_table(mm, addr), lambda: mm.map_4k(addr, pfn=0x9999))
    r = vtop_consistent(mm, addr, retries=0)
    c = r.consistency
    assert c is not None and c.level == "torn"
    assert [(t.start, t.end, t.reason) for t in c.torn] == [(addr, addr + 4096, TABLE_CHANGED)]
    assert r.pfn == 0x1003                      # what was read, marked torn
    text = format_vtop(r)
    assert f"# torn {addr:#x}-{addr + 4096:#x} table changed: PTE table" in text
    doc = vtop_json(r)["consistency"]
    assert doc["level"] == "torn" and doc["torn"][0]["reason"] == TABLE_CHANGED
    # with a retry: the answer of the new state, judged whole
    b.inject_after_read(_pte_table(mm, addr), lambda: mm.map_4k(addr, pfn=0x7777))
    r = vtop_consistent(mm, addr, retries=1)
    assert r.consistency is not None and r.consistency.level == "walk" and r.consistency.reads == 2
    assert r.pfn == 0x7777


def test_vtop_change_elsewhere_in_the_table_is_not_its_business(mm: SyntheticMM) -> None:
    # one PTE of the same table changed: the translation of another page is
    # still the kernel's (the grain is the address asked for)
    addr = BASE + 0x3000
    mm.backend.inject_after_read(_pte_table(mm, addr), lambda: mm.map_4k(BASE + 0x100000, pfn=5))
    r = vtop_consistent(mm, addr, retries=0)
    assert r.consistency is not None and r.consistency.level == "walk"


def test_vtop_upper_level_and_vma_changes(mm: SyntheticMM) -> None:
    b = mm.backend
    addr = BASE + MB2 + 0x2000
    pmd_table = mm.table_paddr(PageTableLevel.PMD, addr)
    assert pmd_table is not None
    # the PMD entry is zapped (the PTE table freed) after the PMD table was read
    b.inject_after_read(pmd_table, lambda: mm.set_pmd(addr, 0))
    r = vtop_consistent(mm, addr, retries=0)
    assert r.consistency is not None and r.consistency.level == "torn"
    assert "PMD table" in r.consistency.torn[0].detail
    r = vtop_consistent(mm, addr, retries=0)
    assert r.consistency is not None and r.consistency.level == "walk" and r.state == "none"
    # a VMA unmapped while the address was read
    (vma, *_) = mm.vmas
    b.inject_after_read(mm.pgd_paddr, lambda: mm.remove_vma(vma))
    r = vtop_consistent(mm, BASE + 0x1000, retries=0)
    assert r.consistency is not None and r.consistency.torn[0].reason == VMA_TREE_CHANGED


def test_vtop_kernel_judged(mm: SyntheticMM) -> None:
    b = mm.backend
    kmm = b.init_mm()
    addr = 0xFFFF888000200000
    kmm.map_4k(addr, pfn=0x200)
    r = _vtop_kernel_consistent(b, addr, 0)
    assert r.consistency is not None and r.consistency.level == "walk" and r.pfn == 0x200
    b.inject_after_read(_pte_table(kmm, addr), lambda: kmm.set_pte(addr, 0))
    r = _vtop_kernel_consistent(b, addr, 0)
    assert r.consistency is not None and r.consistency.level == "torn"


# -- vm -p ---------------------------------------------------------------------------------


def test_vm_pages_injected_change_marks_its_vma(mm: SyntheticMM) -> None:
    b = mm.backend
    tables, cons = collect_tables_consistent(mm, 0, TASK_SIZE, 0)
    assert cons.level == "walk" and cons.marks() == []
    target = BASE + MB2 + 0x40000
    b.inject_after_read(_pte_table(mm, target), lambda: mm.map_4k(target, pfn=0x5555))
    tables, cons = collect_tables_consistent(mm, 0, TASK_SIZE, 0)
    assert cons.level == "torn"
    assert [(t.start, t.end) for t in cons.torn] == [(BASE + MB2, BASE + 2 * MB2)]
    first, second = mm.vmas
    assert len(cons.marks(first.vm_start, first.vm_end)) == 1
    assert cons.marks(second.vm_start, second.vm_end) == []
    lines = list(vm_pages(tables, first, b.paging, lambda t: None, "", 9))
    assert lines[(target - BASE) >> 12].endswith("(not mapped)")   # as read: marked above
    # with retries the torn table alone is read again and spliced in
    b.inject_after_read(_pte_table(mm, target), lambda: mm.map_4k(target, pfn=0x6666))
    tables, cons = collect_tables_consistent(mm, 0, TASK_SIZE, 2)
    assert cons.level == "table" and cons.retried == [(BASE + MB2, BASE + 2 * MB2)]
    lines = list(vm_pages(tables, first, b.paging, lambda t: None, "", 9))
    assert lines[(target - BASE) >> 12].split()[1] == "6666000"
    assert tables.pte_tables.keys() == collect_tables(mm, 0, TASK_SIZE).pte_tables.keys()


# -- pfn ---------------------------------------------------------------------------------------


def test_pfn_injected_mapping_caught(mm: SyntheticMM) -> None:
    b = mm.backend
    hits, cons = find_pfn_in_mm_consistent(mm, 0x1003)
    assert [h.vaddr for h in hits] == [BASE + 0x3000] and cons.level == "walk"
    # the page is mapped at a second address right after its table was searched
    extra = BASE + MB2 + 0x80000
    b.inject_after_read(_pte_table(mm, extra), lambda: mm.map_4k(extra, pfn=0x1003))
    hits, cons = find_pfn_in_mm_consistent(mm, 0x1003, retries=0)
    assert [h.vaddr for h in hits] == [BASE + 0x3000]
    assert [(t.start, t.end) for t in cons.torn] == [(BASE + MB2, BASE + 2 * MB2)]
    mm.set_pte(extra, 0)
    b.inject_after_read(_pte_table(mm, extra), lambda: mm.map_4k(extra, pfn=0x1003))
    hits, cons = find_pfn_in_mm_consistent(mm, 0x1003, retries=1)
    assert [h.vaddr for h in hits] == [BASE + 0x3000, extra] and cons.level == "table"
    assert hits == find_pfn_in_mm(mm, 0x1003)


# -- the commands' options and summary -------------------------------------------------------------


@pytest.mark.parametrize("add", [add_vtop_arguments, add_vm_arguments, add_pfn_arguments])
def test_strict_and_retries_options(add: Any) -> None:
    p = _Parser(prog="lwx")
    add(p)
    tail = ["7f0000001000"] if add is add_vtop_arguments else ["12"] if add is add_pfn_arguments else []
    args = p.parse_args(["--strict", "--retries", "0", *tail])
    assert args.strict and args.retries == 0
    args = p.parse_args(tail)
    assert not args.strict and args.retries == 5
    with pytest.raises(UsageError, match="bad --retries '-1'"):
        p.parse_args(["--retries", "-1", *tail])


def test_parse_retries() -> None:
    assert parse_retries(" 3 ") == 3
    for bad in ("x", "-2", ""):
        with pytest.raises(UsageError):
            parse_retries(bad)


def test_tally_report(mm: SyntheticMM) -> None:
    addr = BASE + 0x3000
    tally = ConsistencyTally()
    tally.add(vtop_consistent(mm, addr).consistency)  # type: ignore[arg-type]
    err = io.StringIO()
    tally.report(True, err)
    assert err.getvalue() == ""
    mm.backend.inject_after_read(_pte_table(mm, addr), lambda: mm.set_pte(addr, 0))
    tally.add(vtop_consistent(mm, addr, retries=0).consistency)  # type: ignore[arg-type]
    tally.report(False, err)
    assert err.getvalue().startswith("livewalk: 1 of 2 VMAs changed while read (1 of ")
    assert err.getvalue().count("\n") == 1
    with pytest.raises(TornError, match="changed while read"):
        tally.report(True, io.StringIO())


# -- a page table not in the dump ----------------------------------------------------------


def test_table_not_in_dump_is_reported_per_range(mm: SyntheticMM) -> None:
    from livewalk.consistency import NOT_IN_DUMP
    from livewalk.tools.crash_format import format_vtop_crash

    b = mm.backend
    table = mm.make_unreadable(PTE, BASE + MB2)
    addr = BASE + MB2 + 0x3000
    r = vtop_consistent(mm, addr)
    c = r.consistency
    assert c is not None and c.level == "walk" and c.torn == []     # not torn: it will not change
    assert [(t.start, t.end, t.reason) for t in c.missing] == [(addr, addr + 4096, NOT_IN_DUMP)]
    assert r.state == "not_in_dump" and r.pfn is None
    text = format_vtop(r)
    assert "(not in dump)" in text.splitlines()[1]
    assert f"physical address {table:#x}, is not in the dump (page excluded)" in text
    assert f"# not in dump {addr:#x}-{addr + 4096:#x}" in text
    assert vtop_json(r)["consistency"]["missing"][0]["reason"] == NOT_IN_DUMP
    crash = format_vtop_crash(r, b.paging, entry_paddr=lambda k: k - b.paging.page_offset, vma_line="V")
    assert crash[1].split()[1:] == ["(not", "in", "dump)"]
    # the pages around it are answered as usual
    ok = vtop_consistent(mm, BASE + 0x3000)
    assert ok.state == "present" and ok.consistency is not None and ok.consistency.missing == []
    # vm -p: that table's pages are "(not in dump)", one by one; the rest as usual
    tables, cons = collect_tables_consistent(mm, 0, TASK_SIZE, 0)
    assert [(t.start, t.end) for t in cons.missing] == [(BASE + MB2, BASE + 2 * MB2)]
    first = mm.vmas[0]
    missing = [(t.start, t.end) for t in cons.missing_in(first.vm_start, first.vm_end)]
    lines = list(vm_pages(tables, first, b.paging, lambda t: None, "", 9, missing))
    by_addr = {int(line.split()[0], 16): line.split(None, 1)[1] for line in lines}
    assert by_addr[BASE + 0x3000] == "1003000"
    assert by_addr[BASE + 0x4000 * 100] == "(not mapped)"
    assert all(by_addr[a] == "(not in dump)" for a in range(BASE + MB2, BASE + 2 * MB2, 4096))
    assert cons.marks(first.vm_start, first.vm_end) == [
        f"# not in dump {BASE + MB2:#x}-{BASE + 2 * MB2:#x}: PMD entry's table {table:#x} not readable"]
    tally = ConsistencyTally()
    tally.add(cons)
    err = io.StringIO()
    tally.report(True, err)  # not torn: --strict does not fail on what the dump lacks
    assert err.getvalue().startswith("livewalk: 1 range (2048 KiB of address space) not in dump: ")
    # pfn: a mapping under that table cannot be seen; the search says where it did not look
    hits, cons = find_pfn_in_mm_consistent(mm, 0x2003)
    assert hits == [] and [(t.start, t.end) for t in cons.missing] == [(BASE + MB2, BASE + 2 * MB2)]


def test_pagemap_table_not_in_dump(mm: SyntheticMM) -> None:
    from livewalk.consistency import read_consistent
    from livewalk.proc.pagemap import pagemap_read
    from tests.unit.proc.test_pagemap_format import Pages

    mm.make_unreadable(PTE, BASE + MB2)

    def read(s: int, e: int, walks: list[Any]) -> Any:
        return pagemap_read(mm, s, e, page_state=Pages(), walks=walks)

    r = read_consistent(mm, BASE, BASE + 2 * MB2, read)
    assert r.consistency.level == "walk" and r.consistency.torn == []
    assert [(t.start, t.end) for t in r.consistency.missing] == [(BASE + MB2, BASE + 2 * MB2)]
    assert r.value is not None and len(r.value) == 1024
    assert all(v == 0 for v in r.value[512:])                   # holes, marked as not in dump
    assert list(r.value[:512]) == list(pagemap_read(mm, BASE, BASE + MB2, page_state=Pages()))
    assert r.value[3] >> 63 == 1                                # the readable table is answered
