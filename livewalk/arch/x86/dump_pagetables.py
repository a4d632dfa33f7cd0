# SPDX-License-Identifier: LGPL-2.1-or-later
"""
x86 page-table dump
-------------------

What ``arch/x86/mm/dump_pagetables.c`` adds to the generic ``mm/ptdump.c``
walk (Linux 7.2): the address markers, the two ranges x86_64 walks, the
``note_page()`` state machine that coalesces entries into ranges, effective
permissions and W+X counting, and ``printk_prot()``'s columns. The walk
itself is :func:`livewalk.tools.ptdump.ptdump`.

>>> format_prot(0x8000000000000163, 4)
'    RW                 GLB NX pte'
"""

from __future__ import annotations

from collections.abc import Callable

from drgn import Program

from livewalk.arch import ULONG_MAX
from livewalk.arch.x86.pgtable import X86Paging
from livewalk.arch.x86.pgtable_types import (
    _PAGE_GLOBAL,
    _PAGE_NX,
    _PAGE_PAT,
    _PAGE_PAT_LARGE,
    _PAGE_PCD,
    _PAGE_PRESENT,
    _PAGE_PSE,
    _PAGE_PWT,
    _PAGE_RW,
    _PAGE_USER,
    PAGE_SIZE,
    START_KERNEL_MAP,
)
from livewalk.backend.drgn import vmcoreinfo_number
from livewalk.mm.ptdump import AddressMarker, PtdumpRange

__all__ = (
    "LEVEL_NAMES",
    "PgState",
    "format_prot",
    "ptdump_markers",
    "ptdump_ranges",
)

#: Level names, pgd (0) to pte (4).
LEVEL_NAMES = ("pgd", "p4d", "pud", "pmd", "pte")

#: ``VSYSCALL_ADDR`` (``-10UL << 20``)
VSYSCALL_ADDR = 0xFFFF_FFFF_FF60_0000


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


def _lookup(prog: Program, name: str) -> int | None:
    try:
        return int(prog[name].value_())
    except Exception:
        return None


def _has(prog: Program, name: str) -> bool:
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


def ptdump_markers(prog: Program, paging: X86Paging) -> list[AddressMarker]:
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
    image_size = vmcoreinfo_number(prog, "KERNEL_IMAGE_SIZE") or (1 << 30)
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
        markers.append(AddressMarker((-240 << shift) & ULONG_MAX, "LDT remap"))
    markers += [
        AddressMarker(page_offset, "Low Kernel Mapping"),
        AddressMarker(vmalloc, "vmalloc() Area"),
        AddressMarker(vmemmap, "Vmemmap"),
        AddressMarker((-4 << 39) & ULONG_MAX, "CPU entry Area"),
    ]
    if _has(prog, "init_espfix_bsp"):
        markers.append(AddressMarker((-2 << 39) & ULONG_MAX, "ESPfix Area", 16))
    if _has(prog, "efi_mm") or _has(prog, "efi_enter_mm"):
        markers.append(AddressMarker((-68 << 30) & ULONG_MAX, "EFI Runtime Services"))
    markers += [
        AddressMarker(START_KERNEL_MAP, "High Kernel Mapping"),
        AddressMarker(START_KERNEL_MAP + image_size, "Modules"),
        AddressMarker(modules_end, "End Modules"),
    ]
    if permanent is not None:
        markers.append(AddressMarker(fixaddr_top - (permanent << 12), "Fixmap Area"))
    # END_OF_SPACE_NR: -1, never reached by a walk that ends at ~0UL.
    markers.append(AddressMarker(ULONG_MAX, ""))
    return markers


class PgState:
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
        self.flags_mask = ~(paging.physical_mask & ~0xFFF) & ULONG_MAX
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
        nxt = self.markers[self.marker_i + 1].start_address if self.marker_i + 1 < len(self.markers) else ULONG_MAX + 1
        if (
            new_prot == self.current_prot
            and new_eff == self.effective_prot
            and level == self.level
            and addr < nxt
        ):
            return
        eff = self.effective_prot
        rng = PtdumpRange(
            self.start_address,
            addr,
            self.current_prot,
            self.level,
            self.marker.name,
            eff,
            present=bool(self.current_prot & _PAGE_PRESENT),
        )
        if self.check_wx and eff & _PAGE_RW and not eff & _PAGE_NX:
            npages = ((addr - self.start_address) & ULONG_MAX) // PAGE_SIZE
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


def ptdump_ranges(paging: X86Paging) -> list[tuple[int, int]]:
    """
    The two ranges x86_64 ptdump walks: ``[0, PTRS_PER_PGD * PGD_LEVEL_MULT
    / 2)`` and ``[GUARD_HOLE_END_ADDR, ~0UL)``.

    >>> [(hex(a), hex(b)) for a, b in ptdump_ranges(X86Paging(levels=4))]
    [('0x0', '0x800000000000'), ('0xffff880000000000', '0xffffffffffffffff')]
    """
    pgd_level_mult = paging.ptrs_per_p4d << 39
    shift = paging.pgdir_shift
    guard_end = ((-256 << shift) + (16 << shift)) & ULONG_MAX
    return [(0, 512 * pgd_level_mult // 2), (guard_end, ULONG_MAX)]
