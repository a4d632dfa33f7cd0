# SPDX-License-Identifier: LGPL-2.1-or-later
"""
ptdump
------

The kernel page tables (``init_mm``) as ranges with attributes, in the
format of the target's architecture: x86's
``/sys/kernel/debug/page_tables/kernel`` (``arch/x86/mm/dump_pagetables.c``)
or arm64's ``/sys/kernel/debug/kernel_page_tables``
(``arch/arm64/mm/ptdump.c``: :mod:`livewalk.arch.arm64.ptdump`), for
kernels built without ``CONFIG_PTDUMP_DEBUGFS`` and for dumps.

It is built the way the kernel builds it: ``mm/ptdump.c``'s walker ops
(``pgd/p4d/pud/pmd/pte_entry`` and ``pte_hole``; the p?d callbacks set
``ACTION_CONTINUE`` on leaves, here) drive x86's ``note_page`` state machine
(:mod:`livewalk.arch.x86.dump_pagetables`), which
coalesces runs of entries with the same flags, effective permissions and
level, and breaks at the address markers ("Low Kernel Mapping", "vmalloc()
Area", "Vmemmap", ..., placed with the target's KASLR bases
``page_offset_base``, ``vmalloc_base`` and ``vmemmap_base``). The walk uses
:func:`~livewalk.mm.pagewalk.walk_kernel_page_table_range` over the two ranges
x86 uses: the lower half, and from the end of the guard hole to the top.

``check_wx`` counts W+X pages as ``ptdump_walk_pgd_level_checkwx()`` (x86)
or ``ptdump_check_wx()`` (arm64: W+X and non-UXN pages) does, and gives the
verdict line the kernel prints at boot.

Not reproduced: the KASAN shortcut and markers (no KASAN support), the
32-bit layout, the PCI BIOS W+X exemption (32-bit only).

>>> print(format_ptdump(ptdump(prog)))               # doctest: +SKIP
---[ User Space ]---
0x0000000000000000-0xff00000000000000   16320T                               pgd
...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from drgn import FaultError, Program

from livewalk.arch import ULONG_MAX, ArchPaging
from livewalk.arch.arm64 import ptdump as arm64_ptdump
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.x86.dump_pagetables import (
    LEVEL_NAMES,
    PgState,
    format_prot,
    ptdump_markers,
    ptdump_ranges,
)
from livewalk.arch.x86.pgtable import as_x86
from livewalk.arch.x86.pgtable_types import _PAGE_NX
from livewalk.backend import PageTableBackend
from livewalk.backend.drgn import DrgnBackend
from livewalk.errors import WalkFailedError
from livewalk.mm.entry import Entry
from livewalk.mm.pagewalk import (
    MMWalk,
    MMWalkOps,
    PageWalkAction,
    walk_kernel_page_table_range,
    walk_page_range_novma,
)
from livewalk.mm.ptdump import AddressMarker, PtdumpRange

__all__ = (
    "PtdumpResult",
    "format_ptdump",
    "ptdump",
    "ptdump_json",
)


@dataclasses.dataclass
class PtdumpResult:
    """
    :ivar ranges: the coalesced ranges, in address order
    :ivar lines: the output lines (markers, ranges and "... skipped ..."
        lines) exactly as the kernel would print them
    :ivar wx_pages: number of W+X pages found (with ``check_wx``)
    :ivar levels: 4 or 5 (2 to 5 on arm64)
    :ivar arch: ``"x86_64"`` or ``"arm64"``
    :ivar uxn_pages: arm64: kernel pages without ``PTE_UXN`` (with ``check_wx``)
    :ivar wx_verdict: the line the kernel's W+X check prints (with ``check_wx``)
    """

    ranges: list[PtdumpRange]
    lines: list[str]
    wx_pages: int
    levels: int
    check_wx: bool = False
    wx_ranges: list[PtdumpRange] = dataclasses.field(default_factory=list)
    arch: str = "x86_64"
    uxn_pages: int = 0
    wx_verdict: str = ""

    @property
    def wx_failed(self) -> bool:
        """The kernel's W+X check would fail."""
        return bool(self.wx_pages or self.uxn_pages)

    def format_range(self, r: PtdumpRange) -> str:
        """The level and attribute columns of range *r*, in the target's format."""
        if self.arch == "arm64":
            name = arm64_ptdump.LEVEL_NAMES[r.level] if 0 <= r.level < 5 else ""
            return name + (arm64_ptdump.dump_prot(r.prot) if r.prot else "")
        return format_prot(r.prot, r.level)


def _ptdump_ops(paging: ArchPaging) -> MMWalkOps:
    # mm/ptdump.c's ptdump_ops. Neither x86 nor arm64 has pgd or p4d leaves
    # (pgd_leaf() and p4d_leaf() are false), so those two only track
    # effective permissions (x86; arm64 has no effective_prot callbacks).
    pud_leaf = paging.pud_leaf
    pmd_leaf = paging.pmd_leaf

    def pgd_entry(pgd: Entry, addr: int, next: int, walk: MMWalk) -> int:
        walk.private.effective(0, int(pgd.value))
        return 0

    def p4d_entry(p4d: Entry, addr: int, next: int, walk: MMWalk) -> int:
        walk.private.effective(1, int(p4d.value))
        return 0

    def pud_entry(pud: Entry, addr: int, next: int, walk: MMWalk) -> int:
        st: PgState = walk.private
        val = int(pud.value)
        st.effective(2, val)
        if pud_leaf(val):
            st.note_page(addr, 2, val)
            walk.action = PageWalkAction.ACTION_CONTINUE
        return 0

    def pmd_entry(pmd: Entry, addr: int, next: int, walk: MMWalk) -> int:
        st: PgState = walk.private
        val = int(pmd.value)
        st.effective(3, val)
        if pmd_leaf(val):
            st.note_page(addr, 3, val)
            walk.action = PageWalkAction.ACTION_CONTINUE
        return 0

    def pte_entry(pte: Entry, addr: int, next: int, walk: MMWalk) -> int:
        st: PgState = walk.private
        val = int(pte.value)
        st.effective(4, val)
        st.note_page(addr, 4, val)
        return 0

    def pte_hole(addr: int, next: int, depth: int, walk: MMWalk) -> int:
        # ptdump_hole(): a none entry at its depth (never -1 in a VMA-less walk).
        if 0 <= depth <= 4:
            walk.private.note_page(addr, depth, 0)
        return 0

    return MMWalkOps(
        pgd_entry=pgd_entry,
        p4d_entry=p4d_entry,
        pud_entry=pud_entry,
        pmd_entry=pmd_entry,
        pte_entry=pte_entry,
        pte_hole=pte_hole,
    )


def ptdump(
    prog: Program | PageTableBackend,
    *,
    check_wx: bool = False,
    pgd: int | None = None,
    progress: Callable[[int], None] | None = None,
    markers: list[AddressMarker] | None = None,
) -> PtdumpResult:
    """
    Dump the kernel page tables of *prog* (``init_mm``, or the top-level
    table at kernel address *pgd*, e.g. a PTI user copy).

    :param prog: a ``drgn.Program``, or a
        :class:`~livewalk.backend.PageTableBackend` (then give *markers*,
        or only "User Space" and "Kernel Space" are used)
    :param check_wx: count W+X pages, as ``check_wx_pages`` does
    :param progress: called now and then with the address reached
    :param markers: the address markers (default: :func:`ptdump_markers`)
    """
    backend: PageTableBackend
    if isinstance(prog, Program):
        backend = DrgnBackend.for_program(prog)
        target: Program | None = prog
    else:
        backend = prog
        target = None
    if isinstance(backend.paging, Arm64Paging):
        return _ptdump_arm64(backend, target, backend.paging, check_wx, pgd, progress, markers)
    # The note_page() side is x86's (arch/x86/mm/dump_pagetables.c).
    paging = as_x86(backend.paging, "ptdump")
    if markers is None:
        if target is not None:
            markers = ptdump_markers(target, paging)
        else:
            markers = [
                AddressMarker(0, "User Space"),
                AddressMarker(1 << 63, "Kernel Space"),
                AddressMarker(ULONG_MAX, ""),
            ]
    nx_supported = True
    if target is not None:
        try:
            nx_supported = bool(int(target["__supported_pte_mask"].value_()) & _PAGE_NX)
        except (KeyError, FaultError):
            pass
    st = PgState(markers, paging, check_wx, nx_supported, progress)
    ops = _ptdump_ops(paging)
    # ptdump_walk_pgd(): walk_page_range_novma() before 6.12.105
    novma = backend.features.has_entry_point("walk_page_range_novma")
    for start, end in ptdump_ranges(paging):
        if novma:
            ret = walk_page_range_novma(backend.init_mm(), start, end, ops, pgd, st)
        else:
            ret = walk_kernel_page_table_range(start, end, ops, pgd=pgd, private=st, backend=backend)
        if isinstance(ret, int) and ret < 0:
            raise WalkFailedError(f"ptdump walk of {start:#x}-{end:#x} failed: {ret}")
    # note_page_flush(): level -1 ends the last range, at address 0.
    st.note_page(0, -1, 0)
    if st.wx_pages:
        verdict = f"x86/mm: Checked W+X mappings: FAILED, {st.wx_pages} W+X pages found."
    else:
        verdict = "x86/mm: Checked W+X mappings: passed, no W+X pages found."
    return PtdumpResult(
        ranges=st.ranges,
        lines=st.out,
        wx_pages=st.wx_pages,
        levels=paging.levels,
        check_wx=check_wx,
        wx_ranges=st.wx_ranges,
        wx_verdict=verdict if check_wx else "",
    )


def _ptdump_arm64(
    backend: PageTableBackend,
    target: Program | None,
    paging: Arm64Paging,
    check_wx: bool,
    pgd: int | None,
    progress: Callable[[int], None] | None,
    markers: list[AddressMarker] | None,
) -> PtdumpResult:
    """
    arm64: ``ptdump_walk()`` of ``kernel_ptdump_info`` (the markers of
    ``ptdump_init()``, ``st->mm`` set, so levels folded at boot print as
    PGD), or with *check_wx* ``ptdump_check_wx()`` (two unnamed markers,
    no mm), as in Linux 7.2 ``arch/arm64/mm/ptdump.c``.
    """
    folded: frozenset[int] = frozenset()
    if check_wx:
        if markers is None:
            markers = arm64_ptdump.check_wx_markers()
    else:
        if markers is None:
            if target is not None:
                markers = arm64_ptdump.ptdump_markers(target, paging)
            else:
                markers = [AddressMarker(paging.page_offset, "Linear Mapping start"), AddressMarker(ULONG_MAX, "")]
        # mm_p4d_folded(), mm_pud_folded() of init_mm
        folded = frozenset(lvl for lvl, need in ((1, 5), (2, 4)) if paging.levels < need)
    st = arm64_ptdump.Arm64PgState(markers, paging.page_shift, folded, check_wx, progress)
    ops = _ptdump_ops(paging)
    novma = backend.features.has_entry_point("walk_page_range_novma")
    for start, end in arm64_ptdump.ptdump_ranges(paging):
        if novma:
            ret = walk_page_range_novma(backend.init_mm(), start, end, ops, pgd, st)
        else:
            ret = walk_kernel_page_table_range(start, end, ops, pgd=pgd, private=st, backend=backend)
        if isinstance(ret, int) and ret < 0:
            raise WalkFailedError(f"ptdump walk of {start:#x}-{end:#x} failed: {ret}")
    st.note_page(0, -1, 0)  # note_page_flush(): the end ~0UL wraps to 0
    return PtdumpResult(
        ranges=st.ranges,
        lines=st.out,
        wx_pages=st.wx_pages,
        levels=paging.levels,
        check_wx=check_wx,
        wx_ranges=st.wx_ranges,
        arch="arm64",
        uxn_pages=st.uxn_pages,
        wx_verdict=arm64_ptdump.wx_message(st.wx_pages, st.uxn_pages) if check_wx else "",
    )


def format_ptdump(result: PtdumpResult) -> str:
    """The dump as ``/sys/kernel/debug/page_tables/kernel`` prints it."""
    return "\n".join(result.lines)


def ptdump_json(result: PtdumpResult) -> dict[str, Any]:
    """A JSON-ready ``dict`` of a :class:`PtdumpResult`."""

    def attrs(r: PtdumpRange) -> list[str]:
        if result.arch == "arm64":
            return arm64_ptdump.dump_prot(r.prot).split()
        return format_prot(r.prot, r.level).split()[:-1]

    names = arm64_ptdump.LEVEL_NAMES if result.arch == "arm64" else LEVEL_NAMES
    return {
        "arch": result.arch,
        "levels": result.levels,
        "ranges": [
            {
                "start": r.start,
                "end": r.end,
                "size": r.size,
                "level": names[r.level] if 0 <= r.level < 5 else None,
                "present": r.present,
                "prot": r.prot,
                "attrs": attrs(r) if r.present else [],
                "marker": r.marker,
            }
            for r in result.ranges
        ],
        "wx_pages": result.wx_pages if result.check_wx else None,
        "uxn_pages": result.uxn_pages if result.check_wx and result.arch == "arm64" else None,
    }
