# SPDX-License-Identifier: LGPL-2.1-or-later
"""
ptdump
------

The kernel page tables (``init_mm``) as ranges with attributes, in the
format of x86's ``/sys/kernel/debug/page_tables/kernel``
(``arch/x86/mm/dump_pagetables.c``), for kernels built without
``CONFIG_PTDUMP_DEBUGFS`` and for dumps.

It is built the way the kernel builds it: ``mm/ptdump.c``'s walker ops
(``pgd/p4d/pud/pmd/pte_entry`` and ``pte_hole``; the p?d callbacks set
``ACTION_CONTINUE`` on leaves) drive x86's ``note_page`` state machine, which
coalesces runs of entries with the same flags, effective permissions and
level, and breaks at the address markers ("Low Kernel Mapping", "vmalloc()
Area", "Vmemmap", ..., placed with the target's KASLR bases
``page_offset_base``, ``vmalloc_base`` and ``vmemmap_base``). The walk uses
:func:`~livewalk.mm.pagewalk.walk_kernel_page_table_range` over the two ranges
x86 uses: the lower half, and from the end of the guard hole to the top.

``check_wx`` counts W+X pages as ``ptdump_walk_pgd_level_checkwx()`` does.

Not reproduced: the KASAN shortcut and markers (no KASAN support), the
32-bit layout, the PCI BIOS W+X exemption (32-bit only).

>>> print(format_ptdump(ptdump(prog)))               # doctest: +SKIP
---[ User Space ]---
0x0000000000000000-0xff00000000000000   16320T                               pgd
...
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from livewalk.arch.x86.pgtable import PAGE_SIZE, X86Paging

__all__ = (
    "AddressMarker",
    "PtdumpRange",
    "PtdumpResult",
    "ptdump",
    "ptdump_markers",
    "format_ptdump",
    "format_prot",
    "ptdump_json",
)

M64 = 0xFFFF_FFFF_FFFF_FFFF

_PAGE_PRESENT = 1 << 0
_PAGE_RW = 1 << 1
_PAGE_USER = 1 << 2
_PAGE_PWT = 1 << 3
_PAGE_PCD = 1 << 4
_PAGE_PSE = 1 << 7
_PAGE_PAT = 1 << 7
_PAGE_GLOBAL = 1 << 8
_PAGE_PAT_LARGE = 1 << 12
_PAGE_NX = 1 << 63

LEVEL_NAMES = ("pgd", "p4d", "pud", "pmd", "pte")

#: ``__START_KERNEL_map``
START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000
#: ``VSYSCALL_ADDR`` (``-10UL << 20``)
VSYSCALL_ADDR = 0xFFFF_FFFF_FF60_0000


@dataclasses.dataclass(frozen=True)
class AddressMarker:
    """An ``addr_marker``: a named start address, optionally a line limit."""

    start_address: int
    name: str
    max_lines: int = 0


@dataclasses.dataclass(frozen=True)
class PtdumpRange:
    """
    One printed line: ``[start, end)`` with the same flags at one level.

    :ivar prot: the entry flags (``val & PTE_FLAGS_MASK``), 0 for a hole
    :ivar level: 0 = pgd ... 4 = pte
    :ivar marker: the name of the marker the range is under
    :ivar effective: the effective USER/RW/NX of the range, combined over
        all levels as ``effective_prot()`` does
    """

    start: int
    end: int
    prot: int
    level: int
    marker: str
    effective: int = 0

    @property
    def size(self) -> int:
        return (self.end - self.start) & M64

    @property
    def present(self) -> bool:
        return bool(self.prot & _PAGE_PRESENT)


@dataclasses.dataclass
class PtdumpResult:
    """
    :ivar ranges: the coalesced ranges, in address order
    :ivar lines: the output lines (markers, ranges and "... skipped ..."
        lines) exactly as the kernel would print them
    :ivar wx_pages: number of W+X pages found (with ``check_wx``)
    :ivar levels: 4 or 5
    """

    ranges: list[PtdumpRange]
    lines: list[str]
    wx_pages: int
    levels: int
    check_wx: bool = False
    wx_ranges: list[PtdumpRange] = dataclasses.field(default_factory=list)


def format_prot(prot: int, level: int) -> str:
    """
    The attribute columns of one range, as ``printk_prot()`` prints them.

    >>> format_prot(0x8000000000000163, 4)
    '    RW                 GLB NX pte'
    >>> format_prot(0x1e1, 3)
    '    ro         PSE     GLB x  pmd'
    """
    out = []
    if not prot & _PAGE_PRESENT:
        out.append(" " * 30)
    else:
        out.append("USR " if prot & _PAGE_USER else "    ")
        out.append("RW " if prot & _PAGE_RW else "ro ")
        out.append("PWT " if prot & _PAGE_PWT else "    ")
        out.append("PCD " if prot & _PAGE_PCD else "    ")
        # Bit 7 is PSE above the PTE level and PAT in a PTE.
        out.append("PSE " if level <= 3 and prot & _PAGE_PSE else "    ")
        pat = (level == 4 and prot & _PAGE_PAT) or (level in (2, 3) and prot & _PAGE_PAT_LARGE)
        out.append("PAT " if pat else "    ")
        out.append("GLB " if prot & _PAGE_GLOBAL else "    ")
        out.append("NX " if prot & _PAGE_NX else "x  ")
    name = LEVEL_NAMES[level] if 0 <= level < len(LEVEL_NAMES) else ""
    return "".join(out) + name


def _lookup(prog: Any, name: str) -> int | None:
    try:
        return int(prog[name].value_())
    except Exception:
        return None


def _has(prog: Any, name: str) -> bool:
    try:
        prog.symbol(name)
        return True
    except Exception:
        pass
    try:
        prog[name]
        return True
    except Exception:
        return False


def _vmcoreinfo_number(prog: Any, key: str) -> int | None:
    try:
        raw = prog["VMCOREINFO"].string_().decode(errors="replace")
    except Exception:
        return None
    m = re.search(rf"^NUMBER\({re.escape(key)}\)=(-?\d+)$", raw, re.M)
    return int(m.group(1)) if m else None


def ptdump_markers(prog: Any, paging: X86Paging) -> list[AddressMarker]:
    """
    The x86_64 ``address_markers[]`` of the target, as ``pt_dump_init()``
    sets them, with its KASLR bases read from its variables. Markers for
    options the kernel lacks are left out, as the ``#ifdef``\\ s do:
    ``CONFIG_MODIFY_LDT_SYSCALL`` ("LDT remap"), ``CONFIG_X86_ESPFIX64``
    ("ESPfix Area") and ``CONFIG_EFI`` ("EFI Runtime Services") are detected
    by their symbols.
    """
    shift = paging.pgdir_shift
    page_offset = _lookup(prog, "page_offset_base") or paging.page_offset
    vmalloc = _lookup(prog, "vmalloc_base")
    if vmalloc is None:
        vmalloc = 0xFFA0000000000000 if paging.levels == 5 else 0xFFFFC90000000000
    vmemmap = _lookup(prog, "vmemmap_base")
    if vmemmap is None:
        vmemmap = 0xFFD4000000000000 if paging.levels == 5 else 0xFFFFEA0000000000
    image_size = _vmcoreinfo_number(prog, "KERNEL_IMAGE_SIZE") or (1 << 30)
    try:
        permanent = int(prog.constant("__end_of_permanent_fixed_addresses").value_())
    except Exception:
        permanent = None
    fixaddr_top = ((VSYSCALL_ADDR + PAGE_SIZE + (1 << 21) - 1) & ~((1 << 21) - 1)) - PAGE_SIZE
    # CONFIG_DEBUG_KMAP_LOCAL_FORCE_MAP moves MODULES_END down by 16 MiB.
    modules_end = 0xFFFFFFFFFE000000 if _has(prog, "kmap_local_force_map") else 0xFFFFFFFFFF000000

    markers = [
        AddressMarker(0, "User Space"),
        AddressMarker(1 << 63, "Kernel Space"),
    ]
    if _has(prog, "write_ldt") or _has(prog, "__x64_sys_modify_ldt"):
        markers.append(AddressMarker((-240 << shift) & M64, "LDT remap"))
    markers += [
        AddressMarker(page_offset, "Low Kernel Mapping"),
        AddressMarker(vmalloc, "vmalloc() Area"),
        AddressMarker(vmemmap, "Vmemmap"),
        AddressMarker((-4 << 39) & M64, "CPU entry Area"),
    ]
    if _has(prog, "init_espfix_bsp"):
        markers.append(AddressMarker((-2 << 39) & M64, "ESPfix Area", 16))
    if _has(prog, "efi_mm") or _has(prog, "efi_enter_mm"):
        markers.append(AddressMarker((-68 << 30) & M64, "EFI Runtime Services"))
    markers += [
        AddressMarker(START_KERNEL_MAP, "High Kernel Mapping"),
        AddressMarker(START_KERNEL_MAP + image_size, "Modules"),
        AddressMarker(modules_end, "End Modules"),
    ]
    if permanent is not None:
        markers.append(AddressMarker(fixaddr_top - (permanent << 12), "Fixmap Area"))
    # END_OF_SPACE_NR: -1, never reached by a walk that ends at ~0UL.
    markers.append(AddressMarker(M64, ""))
    return markers


class _PgState:
    """x86's ``struct pg_state`` and ``note_page()``."""

    def __init__(
        self,
        markers: list[AddressMarker],
        paging: X86Paging,
        check_wx: bool,
        nx_supported: bool,
        progress: Callable[[int], None] | None,
    ) -> None:
        self.markers = markers
        self.marker_i = 0
        self.level = -1
        self.current_prot = 0
        self.effective_prot = 0
        self.prot_levels = [0, 0, 0, 0, 0]
        self.start_address = 0
        self.nlines = 0
        self.check_wx = check_wx
        self.nx_supported = nx_supported
        self.wx_pages = 0
        self.wx_ranges: list[PtdumpRange] = []
        # PTE_FLAGS_MASK = ~PTE_PFN_MASK = ~(PAGE_MASK & __PHYSICAL_MASK)
        self.flags_mask = ~(paging.physical_mask & ~0xFFF) & M64
        self.out: list[str] = []
        self.ranges: list[PtdumpRange] = []
        self.progress = progress

    @property
    def marker(self) -> AddressMarker:
        return self.markers[self.marker_i]

    def effective(self, level: int, val: int) -> None:
        prot = val & self.flags_mask
        if level > 0:
            higher = self.prot_levels[level - 1]
            eff = (higher & prot & (_PAGE_USER | _PAGE_RW)) | ((higher | prot) & _PAGE_NX)
        else:
            eff = prot
        self.prot_levels[level] = eff

    def note_page(self, addr: int, level: int, val: int) -> None:
        new_prot = val & self.flags_mask
        new_eff = 0 if not val else self.prot_levels[level]
        if self.level == -1:
            self.current_prot = new_prot
            self.effective_prot = new_eff
            self.level = level
            self.marker_i = 0
            self.nlines = 0
            self.out.append(f"---[ {self.marker.name} ]---")
            return
        nxt = self.markers[self.marker_i + 1].start_address if self.marker_i + 1 < len(self.markers) else M64 + 1
        if (
            new_prot == self.current_prot
            and new_eff == self.effective_prot
            and level == self.level
            and addr < nxt
        ):
            return
        eff = self.effective_prot
        rng = PtdumpRange(
            self.start_address, addr, self.current_prot, self.level, self.marker.name, eff
        )
        if self.check_wx and eff & _PAGE_RW and not eff & _PAGE_NX:
            npages = ((addr - self.start_address) & M64) // PAGE_SIZE
            self.wx_pages += npages
            self.wx_ranges.append(rng)
        self.ranges.append(rng)
        if not self.marker.max_lines or self.nlines < self.marker.max_lines:
            self.out.append(
                f"0x{self.start_address:016x}-0x{addr:016x}   "
                f"{_size(rng.size)} {format_prot(self.current_prot, self.level)}"
            )
        self.nlines += 1
        if addr >= nxt:
            if self.marker.max_lines and self.nlines > self.marker.max_lines:
                nskip = self.nlines - self.marker.max_lines
                self.out.append(f"... {nskip} entr{'y' if nskip == 1 else 'ies'} skipped ... ")
            self.marker_i += 1
            self.nlines = 0
            self.out.append(f"---[ {self.marker.name} ]---")
        self.start_address = addr
        self.current_prot = new_prot
        self.effective_prot = new_eff
        self.level = level
        if self.progress is not None:
            self.progress(addr)


def _size(delta: int) -> str:
    units = "BKMGTPE"
    u = 0
    while not delta & 1023 and u + 1 < len(units):
        delta >>= 10
        u += 1
    return f"{delta:9d}{units[u]}"


def _ptdump_ops() -> Any:
    # mm/ptdump.c's ptdump_ops. x86 has no pgd or p4d leaves (pgd_leaf() and
    # p4d_leaf() are false), so those two only track effective permissions.
    from livewalk.mm.pagewalk import MMWalkOps, PageWalkAction

    def pgd_entry(pgd: Any, addr: int, next: int, walk: Any) -> int:
        walk.private.effective(0, int(pgd.value))
        return 0

    def p4d_entry(p4d: Any, addr: int, next: int, walk: Any) -> int:
        walk.private.effective(1, int(p4d.value))
        return 0

    def pud_entry(pud: Any, addr: int, next: int, walk: Any) -> int:
        st: _PgState = walk.private
        val = int(pud.value)
        st.effective(2, val)
        if val & _PAGE_PSE:  # pud_leaf()
            st.note_page(addr, 2, val)
            walk.action = PageWalkAction.ACTION_CONTINUE
        return 0

    def pmd_entry(pmd: Any, addr: int, next: int, walk: Any) -> int:
        st: _PgState = walk.private
        val = int(pmd.value)
        st.effective(3, val)
        if val & _PAGE_PSE:  # pmd_leaf()
            st.note_page(addr, 3, val)
            walk.action = PageWalkAction.ACTION_CONTINUE
        return 0

    def pte_entry(pte: Any, addr: int, next: int, walk: Any) -> int:
        st: _PgState = walk.private
        val = int(pte.value)
        st.effective(4, val)
        st.note_page(addr, 4, val)
        return 0

    def pte_hole(addr: int, next: int, depth: int, walk: Any) -> int:
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


def ptdump_ranges(paging: X86Paging) -> list[tuple[int, int]]:
    """
    The two ranges x86_64 ptdump walks: ``[0, PTRS_PER_PGD * PGD_LEVEL_MULT
    / 2)`` and ``[GUARD_HOLE_END_ADDR, ~0UL)``.

    >>> [(hex(a), hex(b)) for a, b in ptdump_ranges(X86Paging(levels=4))]
    [('0x0', '0x800000000000'), ('0xffff880000000000', '0xffffffffffffffff')]
    """
    pgd_level_mult = paging.ptrs_per_p4d << 39
    shift = paging.pgdir_shift
    guard_end = ((-256 << shift) + (16 << shift)) & M64
    return [(0, 512 * pgd_level_mult // 2), (guard_end, M64)]


def ptdump(
    prog: Any,
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
    from livewalk.mm.pagewalk import walk_kernel_page_table_range

    if hasattr(prog, "read_table"):
        backend = prog
        prog = None
    else:
        from livewalk.backend.drgn import DrgnBackend

        backend = DrgnBackend.for_program(prog)
    paging: X86Paging = backend.paging
    if markers is None:
        if prog is not None:
            markers = ptdump_markers(prog, paging)
        else:
            markers = [
                AddressMarker(0, "User Space"),
                AddressMarker(1 << 63, "Kernel Space"),
                AddressMarker(M64, ""),
            ]
    supported = _lookup(prog, "__supported_pte_mask") if prog is not None else None
    nx_supported = supported is None or bool(supported & _PAGE_NX)
    st = _PgState(markers, paging, check_wx, nx_supported, progress)
    ops = _ptdump_ops()
    for start, end in ptdump_ranges(paging):
        ret = walk_kernel_page_table_range(start, end, ops, pgd=pgd, private=st, backend=backend)
        if isinstance(ret, int) and ret < 0:
            from livewalk.errors import WalkFailedError

            raise WalkFailedError(f"walk_kernel_page_table_range({start:#x}, {end:#x}) failed: {ret}")
    # note_page_flush(): level -1 ends the last range, at address 0.
    st.note_page(0, -1, 0)
    return PtdumpResult(
        ranges=st.ranges,
        lines=st.out,
        wx_pages=st.wx_pages,
        levels=paging.levels,
        check_wx=check_wx,
        wx_ranges=st.wx_ranges,
    )


def format_ptdump(result: PtdumpResult) -> str:
    """The dump as ``/sys/kernel/debug/page_tables/kernel`` prints it."""
    return "\n".join(result.lines)


def ptdump_json(result: PtdumpResult) -> dict[str, Any]:
    """A JSON-ready ``dict`` of a :class:`PtdumpResult`."""

    def attrs(r: PtdumpRange) -> list[str]:
        return format_prot(r.prot, r.level).split()[:-1]

    return {
        "levels": result.levels,
        "ranges": [
            {
                "start": r.start,
                "end": r.end,
                "size": r.size,
                "level": LEVEL_NAMES[r.level] if 0 <= r.level < 5 else None,
                "present": r.present,
                "prot": r.prot,
                "attrs": attrs(r) if r.present else [],
                "marker": r.marker,
            }
            for r in result.ranges
        ],
        "wx_pages": result.wx_pages if result.check_wx else None,
    }
