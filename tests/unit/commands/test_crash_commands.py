# SPDX-License-Identifier: LGPL-2.1-or-later
"""crash's vtop / vm -p / pte layouts and who-maps-this-page on synthetic
page tables (no kernel), and the commands' bad input.

The layouts are crash's (``memory.c`` do_vtop, vm_area_page_dump,
``x86_64.c`` x86_64_translate_pte, ``tools.c`` mkstring); the values come
from the x86 bit definitions and swap layout of Linux 7.2."""

from __future__ import annotations

import argparse

import pytest

from livewalk.arch import PageTableLevel
from livewalk.arch.x86.pgtable import X86Paging
from livewalk.backend.synthetic import SyntheticMM
from livewalk.commands.crash import (
    _Parser,
    add_pfn_arguments,
    add_pte_arguments,
    add_vm_arguments,
    add_vtop_arguments,
    collect_tables,
    parse_pfn,
    parse_pte_value,
    vm_pages,
)
from livewalk.errors import UsageError
from livewalk.tools.crash_format import (
    crash_pte_flags,
    format_pte,
    format_vm_page,
    format_vtop_crash,
    mkstring,
)
from livewalk.tools.pfn import find_pfn_in_mm
from livewalk.tools.vtop import vtop

PTE, PMD = PageTableLevel.PTE, PageTableLevel.PMD
BASE = 0x7F0000000000


@pytest.fixture(params=[4, 5], ids=["l4", "l5"])
def mm(request: pytest.FixtureRequest) -> SyntheticMM:
    m = SyntheticMM(levels=request.param)
    m.add_vma(BASE, BASE + 0x400000)
    m.map_4k(BASE + 0x1000, pfn=0x1234)
    m.map_swap(BASE + 0x2000, type=1, offset=0x55)
    m.map_protnone(BASE + 0x3000, pfn=0x1234)
    m.map_marker(BASE + 0x5000)
    m.map_migration(BASE + 0x6000, pfn=0x999)
    m.map_2m(BASE + 0x200000, pfn=0x1200)
    return m


# --- crash's mkstring and pte ----------------------------------------------------


def test_mkstring_like_crash() -> None:
    assert mkstring("PTE", 6, "center") == " PTE  "        # odd padding: extra on the right
    assert mkstring("END", 10, "center-rjust") == "    END   "  # ... or on the left
    assert mkstring("VIRTUAL", 10) == "VIRTUAL   "
    assert mkstring("toolongtext", 4, "center") == "toolongtext"


def test_pte_present_is_crash_layout() -> None:
    # crash's help example: "pte d8e067" (the two lines, columns included).
    assert format_pte(0xD8E067, X86Paging()) == [
        " PTE    PHYSICAL  FLAGS",
        "d8e067   d8e000   (PRESENT|RW|USER|ACCESSED|DIRTY)",
    ]
    # crash's flag order, then livewalk's extra bits; PSE at PMD level, PAT in a PTE.
    p = X86Paging()
    assert crash_pte_flags(0x80000000000008E7, p, PMD) == (
        "(PRESENT|RW|USER|ACCESSED|DIRTY|PSE|NX|SOFT_DIRTY)")
    assert crash_pte_flags(0x81, p, PTE) == "(PRESENT|PAT)"


def test_pte_protnone_inverted(mm: SyntheticMM) -> None:
    p = mm.backend.paging
    value = mm.lookup(PTE, BASE + 0x3000)
    assert value is not None
    row = format_pte(value, p)[1].split()
    assert row[1] == "1234000"
    assert "PROTNONE" in row[2] and "GLOBAL" not in row[2] and "PRESENT" not in row[2]


def test_pte_swap_and_other_kinds(mm: SyntheticMM) -> None:
    p = mm.backend.paging
    swap = mm.lookup(PTE, BASE + 0x2000)
    assert swap is not None
    head, row = format_pte(swap, p, lambda t: "/dev/vdb" if t == 1 else None)
    assert head.split() == ["PTE", "SWAP", "OFFSET"]
    assert row.split() == [f"{swap:x}", "/dev/vdb", str(0x55)]  # crash prints the offset in decimal
    mig = mm.lookup(PTE, BASE + 0x6000)
    assert mig is not None
    head, row = format_pte(mig, p)
    assert head.split()[0] == "PTE" and "PFN" in head
    assert row.split()[1].startswith("(migration") and row.split()[2] == "999"
    assert format_pte(0, p)[1].endswith("(no mapping)")


# --- vtop ------------------------------------------------------------------------


def _crash_vtop(mm: SyntheticMM, addr: int) -> list[str]:
    p = mm.backend.paging
    return format_vtop_crash(vtop(mm, addr), p, entry_paddr=lambda k: k - p.page_offset,
                             vma_line="VMA-LINE", swap_name=lambda t: f"/dev/swap{t}")


def test_vtop_present_levels_and_page(mm: SyntheticMM) -> None:
    out = _crash_vtop(mm, BASE + 0x1234)
    assert out[0].split() == ["VIRTUAL", "PHYSICAL"]
    assert out[1].split() == ["7f0000001234", "1234234"]
    levels = [line.split(":")[0].strip() for line in out if " => " in line]
    assert levels == (["PGD", "P4D", "PUD", "PMD", "PTE"] if mm.backend.paging.levels == 5 else ["PGD", "PUD", "PMD", "PTE"])
    pte_line = next(line for line in out if line.strip().startswith("PTE:"))
    assert pte_line.endswith("(PRESENT|RW|USER|ACCESSED|DIRTY|NX)")
    # each entry's address is physical: the synthetic tables' physical address
    slot = mm.kaddr_of(PTE, BASE + 0x1000)
    assert slot is not None
    assert f"PTE: {slot - mm.backend.paging.page_offset:x} => 8000000001234067" in pte_line
    assert "  PAGE: 1234000" in out
    assert "VMA-LINE" in out


def test_vtop_thp_swap_marker(mm: SyntheticMM) -> None:
    thp = _crash_vtop(mm, BASE + 0x201000)
    assert "  PAGE: 1200000  (2MB)" in thp and thp[1].split()[1] == "1201000"
    sw = _crash_vtop(mm, BASE + 0x2000)
    assert sw[1].endswith("  (not mapped)")
    assert sw[-1] == f"SWAP: /dev/swap1  OFFSET: {0x55}"
    mk = _crash_vtop(mm, BASE + 0x5000)
    assert mk[-1].startswith("PTE_MARKER: guard")
    mig = _crash_vtop(mm, BASE + 0x6000)
    assert mig[-1].startswith("MIGRATION") and mig[-1].endswith("PFN: 999")
    none = _crash_vtop(mm, BASE + 0x100000)
    assert none[1].endswith("  (not mapped)")


def test_vtop_outside_vma_not_accessible(mm: SyntheticMM) -> None:
    out = _crash_vtop(mm, BASE + 0x800000)
    assert out[1].split()[1:] == ["(not", "accessible)"]


# --- vm -p -------------------------------------------------------------------------


def test_vm_pages_one_walk(mm: SyntheticMM) -> None:
    p = mm.backend.paging
    tables = collect_tables(mm, 0, 1 << 47)
    (vma,) = mm.vmas
    lines = list(vm_pages(tables, vma, p, lambda t: "/dev/vdb", "", 9))
    assert len(lines) == 0x400000 // 4096
    by_addr = {int(line.split()[0], 16): line.split(None, 1)[1] for line in lines}
    assert by_addr[BASE + 0x1000] == "1234000"
    assert by_addr[BASE + 0x2000] == f"SWAP: /dev/vdb  OFFSET: {0x55}"
    assert by_addr[BASE + 0x3000] == "1234000"         # PROT_NONE is mapped, as crash shows it
    assert by_addr[BASE + 0x4000] == "(not mapped)"
    assert by_addr[BASE + 0x5000].startswith("PTE_MARKER: guard")
    assert by_addr[BASE + 0x6000].startswith("MIGRATION")
    assert by_addr[BASE + 0x201000] == "1201000"       # inside the THP
    # only the two PTE tables and the PMD leaf were gathered: no per-page work
    assert len(tables.pte_tables) == 1 and len(tables.pmd_leaves) == 1
    # a file VMA's unmapped pages: the file and offset (vm_pgoff + distance)
    file_lines = list(vm_pages(tables, vma, p, lambda t: None, "/usr/lib/x.so", 9))
    assert file_lines[4].split(None, 1)[1] == f"FILE: /usr/lib/x.so  OFFSET: {(vma.vm_pgoff << 12) + 0x4000:x}"


def test_vm_page_columns() -> None:
    # x86_64: the address left-justified in 10 (UVADDR_PRLEN), two spaces,
    # the physical address right-justified in max(PADDR_PRLEN, 8)
    assert format_vm_page(0x8048000, "", 0x20E1000, 7) == "8048000      20e1000"
    assert format_vm_page(0x804F000, "SWAP: /dev/sda8  OFFSET: 24225", None, 7) == (
        "804f000     SWAP: /dev/sda8  OFFSET: 24225")


# --- who maps this page ----------------------------------------------------------------


def test_find_pfn_every_level(mm: SyntheticMM) -> None:
    hits = find_pfn_in_mm(mm, 0x1234)
    assert [(h.vaddr - BASE, h.level, h.kind) for h in hits] == [
        (0x1000, PTE, "present"), (0x3000, PTE, "present"),   # PTE, PROT_NONE (inverted)
        (0x234000, PMD, "present")]                          # in a THP
    # a migration entry does not map the page, but holds it: reported with its kind
    mig = mm.lookup(PTE, BASE + 0x6000)
    assert find_pfn_in_mm(mm, 0x999) == [(BASE + 0x6000, PTE, mig, False, "migration_read")]
    assert find_pfn_in_mm(mm, 0x1244)[0][0] == BASE + 0x244000


@pytest.mark.parametrize("levels", [4, 5])
def test_find_pfn_once_with_many_vmas_in_one_pte_table(levels: int) -> None:
    """pmd_entry runs once per VMA of a PMD's range (shared libraries put
    dozens in one): each call searches its VMA's slots, so a page mapped once
    is found once."""
    m = SyntheticMM(levels=levels)
    for i in range(8):
        m.add_vma(BASE + i * 0x2000, BASE + (i + 1) * 0x2000)
    m.map_4k(BASE + 0x5000, pfn=0x1234)
    m.map_4k(BASE + 0xF000, pfn=0x1234)
    hits = find_pfn_in_mm(m, 0x1234)
    assert [h.vaddr - BASE for h in hits] == [0x5000, 0xF000]


@pytest.mark.parametrize("levels", [4, 5])
def test_find_pfn_migration_and_device_entries(levels: int) -> None:
    m = SyntheticMM(levels=levels)
    m.add_vma(BASE, BASE + 0x800000)
    pfn = 0x12345
    m.map_4k(BASE, pfn=pfn)
    m.map_migration(BASE + 0x1000, pfn=pfn, write=True)
    m.map_migration(BASE + 0x2000, pfn=pfn, exclusive=True)
    m.map_device(BASE + 0x3000, pfn=pfn)
    m.map_device(BASE + 0x4000, pfn=pfn, kind="device_read")
    m.map_device(BASE + 0x5000, pfn=pfn, kind="device_exclusive")
    m.map_hwpoison(BASE + 0x6000, pfn=pfn)
    m.map_swap(BASE + 0x7000, type=1, offset=pfn)          # a swap offset equal to the PFN: not it
    m.map_migration(BASE + 0x8000, pfn=pfn + 1)            # another page's migration entry
    m.map_migration(BASE + 0x8000 + (16 << 12), pfn=pfn ^ 0x10)  # same low bytes but one
    # PMD entries of a 2 MiB folio that holds the page (head PFN 0x12200: page 0x145 of it)
    m.map_migration(BASE + 0x200000, pfn=0x12200, level=PMD)
    m.map_device(BASE + 0x400000, pfn=pfn & ~0x1FF, level=PMD)
    hits = find_pfn_in_mm(m, pfn)
    got = [(h.vaddr - BASE, h.level, h.kind) for h in hits]
    assert got == [
        (0x0, PTE, "present"),
        (0x1000, PTE, "migration_write"),
        (0x2000, PTE, "migration_read_exclusive"),
        (0x3000, PTE, "device_write"),
        (0x4000, PTE, "device_read"),
        (0x5000, PTE, "device_exclusive"),
        (0x6000, PTE, "hwpoison"),
        (0x200000 + (0x145 << 12), PMD, "migration_read"),
        (0x400000 + (0x145 << 12), PMD, "device_write"),
    ]
    for h in hits:
        assert h.value == m.lookup(h.level, h.vaddr & ~((1 << (12 if h.level == PTE else 21)) - 1))


def test_find_pfn_near_misses() -> None:
    # PFNs that share the searched bytes (pfn >> 4) must not match.
    m = SyntheticMM(levels=4)
    m.add_vma(BASE, BASE + 0x200000)
    for i in range(16):
        m.map_4k(BASE + i * 0x1000, pfn=0x5670 + i)
    assert [a for a, *_ in find_pfn_in_mm(m, 0x5675)] == [BASE + 0x5000]
    # and migration entries of those PFNs neither
    m.add_vma(BASE + 0x200000, BASE + 0x400000)
    for i in range(16):
        m.map_migration(BASE + 0x200000 + i * 0x1000, pfn=0x5670 + i)
    assert [a - BASE for a, *_ in find_pfn_in_mm(m, 0x5675)] == [0x5000, 0x205000]


# --- bad input ---------------------------------------------------------------------------


def _parser(add: object) -> argparse.ArgumentParser:
    p = _Parser(prog="lwtest")
    add(p)  # type: ignore[operator]
    return p


@pytest.mark.parametrize("add,argv,needle", [
    (add_pte_arguments, ["zz"], "bad entry value 'zz'"),
    (add_pte_arguments, ["-5"], "bad entry value"),
    (add_pte_arguments, ["1" * 17], "larger than 64 bits"),
    (add_pfn_arguments, ["nope"], "bad PFN 'nope'"),
    (add_vm_arguments, ["-p", "xyz!"], "bad PID or task"),
    (add_vtop_arguments, ["-c", "12", "notanaddress"], "bad address"),
    (add_vtop_arguments, ["-u", "-k", "1000"], "not allowed with"),
])
def test_bad_input_one_line(add: object, argv: list[str], needle: str) -> None:
    with pytest.raises(UsageError) as e:
        _parser(add).parse_args(argv)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg
    assert e.value.exit_code == 2


def test_number_parsers() -> None:
    assert parse_pte_value("0x8000000111855067") == 0x8000000111855067
    assert parse_pfn("0x10") == 16 and parse_pfn("16") == 16 and parse_pfn("1f") == 31
