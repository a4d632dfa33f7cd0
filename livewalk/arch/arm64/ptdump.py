# SPDX-License-Identifier: LGPL-2.1-or-later
"""
arm64 page-table dump
---------------------

What Linux 7.2 ``arch/arm64/mm/ptdump.c`` adds to the generic
``mm/ptdump.c`` walk: the address markers of ``ptdump_init()``, the range
it walks (from ``_PAGE_OFFSET(vabits_actual)`` to the top), ``note_page()``
(ranges of entries with the same attribute bits at one level; a level
folded at boot printed as the PGD level), the attribute columns of
``dump_prot()`` (``pte_bits[]``, the memory type from the MAIR index) and
``ptdump_check_wx()``, which counts W+X pages (neither ``PTE_RDONLY`` nor
``PTE_PXN``) and non-UXN pages. The walk itself is
:func:`livewalk.tools.ptdump.ptdump`.

Not reproduced: the KASAN markers and shortcut (Debian's arm64 kernels are
built without KASAN).

>>> dump_prot(0x00E8000000000F01 & PTDUMP_MASK)  # a linear-map block
'       RW NX SHD AF NG     BLK UXN    MEM/NORMAL'
"""

from __future__ import annotations

from collections.abc import Callable

from drgn import Program

from livewalk.arch import ULONG_MAX
from livewalk.arch.arm64.memory import (
    MT_NORMAL,
    MT_NORMAL_NC,
    MT_NORMAL_TAGGED,
    MT_DEVICE_nGnRE,
    MT_DEVICE_nGnRnE,
)
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.arm64.pgtable_hwdef import (
    PMD_TYPE_MASK,
    PMD_TYPE_SECT,
    PTE_AF,
    PTE_ATTRINDX_MASK,
    PTE_CONT,
    PTE_GP,
    PTE_NG,
    PTE_PXN,
    PTE_RDONLY,
    PTE_SHARED,
    PTE_USER,
    PTE_UXN,
    PTE_VALID,
    pte_attrindx,
)
from livewalk.mm.ptdump import AddressMarker, PtdumpRange

__all__ = (
    "LEVEL_NAMES",
    "PTDUMP_MASK",
    "PTE_BITS",
    "Arm64PgState",
    "check_wx_markers",
    "dump_prot",
    "ptdump_markers",
    "ptdump_ranges",
    "wx_message",
)

#: ``kernel_pg_levels[].name``, pgd (0) to pte (4).
LEVEL_NAMES = ("PGD", "P4D", "PUD", "PMD", "PTE")

#: ``pte_bits[]``: (mask, value, printed when it matches, printed otherwise
#: or ``None``), in the kernel's order.
PTE_BITS: tuple[tuple[int, int, str, str | None], ...] = (
    (PTE_VALID, PTE_VALID, " ", "F"),
    (PTE_USER, PTE_USER, "USR", "   "),
    (PTE_RDONLY, PTE_RDONLY, "ro", "RW"),
    (PTE_PXN, PTE_PXN, "NX", "x "),
    (PTE_SHARED, PTE_SHARED, "SHD", "   "),
    (PTE_AF, PTE_AF, "AF", "  "),
    (PTE_NG, PTE_NG, "NG", "  "),
    (PTE_CONT, PTE_CONT, "CON", "   "),
    (PMD_TYPE_MASK, PMD_TYPE_SECT, "BLK", "   "),
    (PTE_UXN, PTE_UXN, "UXN", "   "),
    (PTE_GP, PTE_GP, "GP", "  "),
    (PTE_ATTRINDX_MASK, pte_attrindx(MT_DEVICE_nGnRnE), "DEVICE/nGnRnE", None),
    (PTE_ATTRINDX_MASK, pte_attrindx(MT_DEVICE_nGnRE), "DEVICE/nGnRE", None),
    (PTE_ATTRINDX_MASK, pte_attrindx(MT_NORMAL_NC), "MEM/NORMAL-NC", None),
    (PTE_ATTRINDX_MASK, pte_attrindx(MT_NORMAL), "MEM/NORMAL", None),
    (PTE_ATTRINDX_MASK, pte_attrindx(MT_NORMAL_TAGGED), "MEM/NORMAL-TAGGED", None),
)

#: ``kernel_pg_levels[].mask`` as ``ptdump_initialize()`` makes it: every
#: bit ``pte_bits[]`` looks at (the same at every level).
PTDUMP_MASK = 0
for _mask, _val, _set, _clear in PTE_BITS:
    PTDUMP_MASK |= _mask


def dump_prot(prot: int) -> str:
    """
    ``dump_prot()``: one " name" per ``pte_bits[]`` entry (nothing for a
    memory type that does not match).

    >>> dump_prot(PTE_VALID | 2 | PTE_AF | PTE_UXN | PTE_PXN | PTE_RDONLY | PTE_CONT)
    '       ro NX     AF    CON     UXN    MEM/NORMAL'
    """
    out = []
    for mask, val, set_, clear in PTE_BITS:
        s = set_ if (prot & mask) == val else clear
        if s is not None:
            out.append(" " + s)
    return "".join(out)


def _size(delta: int) -> str:
    """``note_page()``'s size column: KiB, then the largest exact unit."""
    units = "KMGTPE"
    u = 0
    delta >>= 10
    while not delta & 1023 and u + 1 < len(units):
        delta >>= 10
        u += 1
    return f"{delta:9d}{units[u]}"


def wx_message(wx_pages: int, uxn_pages: int) -> str:
    """What ``ptdump_check_wx()`` prints (``pr_warn``/``pr_info``, no prefix)."""
    if wx_pages or uxn_pages:
        return (
            f"Checked W+X mappings: FAILED, {wx_pages} W+X pages found, "
            f"{uxn_pages} non-UXN pages found"
        )
    return "Checked W+X mappings: passed, no W+X pages found"


def ptdump_ranges(paging: Arm64Paging) -> list[tuple[int, int]]:
    """
    The range ``ptdump_walk()`` of the kernel's tables and
    ``ptdump_check_wx()`` walk: ``[_PAGE_OFFSET(vabits_actual), ~0UL)``.

    >>> [(hex(a), hex(b)) for a, b in ptdump_ranges(Arm64Paging(vabits_actual=48))]
    [('0xffff000000000000', '0xffffffffffffffff')]
    """
    return [((-paging.task_size_max) & ULONG_MAX, ULONG_MAX)]


def check_wx_markers() -> list[AddressMarker]:
    """``ptdump_check_wx()``'s two unnamed markers."""
    return [AddressMarker(0, ""), AddressMarker(ULONG_MAX, "")]


def ptdump_markers(prog: Program, paging: Arm64Paging) -> list[AddressMarker]:
    """
    ``address_markers[]`` as ``ptdump_init()`` fills them, from the
    configuration (``VA_BITS``, ``vabits_actual``, ``sizeof(struct page)``,
    ``__end_of_fixed_addresses``) and ``asm/memory.h``'s layout.
    """
    va_bits = paging.va_bits
    page_offset = paging.page_offset  # PAGE_OFFSET: _PAGE_OFFSET(VA_BITS)
    page_end = paging.page_end  # PAGE_END: _PAGE_END(VA_BITS_MIN)
    actual_offset = (-paging.task_size_max) & ULONG_MAX  # _PAGE_OFFSET(vabits_actual)
    shift = paging.page_shift
    sz = prog.type("struct page").size
    m = (1 << 20)
    modules_vaddr = page_end
    modules_end = modules_vaddr + (2 << 30)
    vmemmap_end = (-(1 << 30)) & ULONG_MAX
    vmemmap_size = ((page_end - page_offset) >> shift) * sz
    vmemmap_start = vmemmap_end - vmemmap_size
    va_bits_min = va_bits if va_bits <= 48 else (47 if shift == 14 else 48)
    if va_bits == va_bits_min:
        vmalloc_end = vmemmap_start - 8 * m
    else:
        vmalloc_end = vmemmap_start + ((actual_offset - page_offset) >> shift) * sz - 8 * m
    # virt_to_page(_PAGE_OFFSET(vabits_actual))
    vmemmap_first = vmemmap_start + ((actual_offset - page_offset) >> shift) * sz
    pci_io_start = vmemmap_end + 8 * m
    fixaddr_top = (-8 * m) & ULONG_MAX
    end_fixed = int(prog.constant("__end_of_fixed_addresses").value_())
    return [
        AddressMarker(page_offset, "Linear Mapping start"),
        AddressMarker(page_end, "Linear Mapping end"),
        AddressMarker(modules_vaddr, "Modules start"),
        AddressMarker(modules_end, "Modules end"),
        AddressMarker(modules_end, "vmalloc() area"),
        AddressMarker(vmalloc_end, "vmalloc() end"),
        AddressMarker(vmemmap_first, "vmemmap start"),
        AddressMarker(vmemmap_end, "vmemmap end"),
        AddressMarker(pci_io_start, "PCI I/O start"),
        AddressMarker(pci_io_start + 16 * m, "PCI I/O end"),
        AddressMarker(fixaddr_top - (end_fixed << shift), "Fixmap start"),
        AddressMarker(fixaddr_top, "Fixmap end"),
        AddressMarker(ULONG_MAX, ""),
    ]


class Arm64PgState:
    """
    arm64's ``struct ptdump_pg_state`` and ``note_page()``.

    :param markers: the address markers, ending with ``-1``
    :param folded_levels: the levels ``note_page()`` prints as the PGD
        (``mm_p4d_folded()``, ``mm_pud_folded()`` of ``st->mm``; empty for
        ``ptdump_check_wx()``, whose state has no mm)
    :param check_wx: count W+X and non-UXN pages
    """

    def __init__(
        self,
        markers: list[AddressMarker],
        page_shift: int,
        folded_levels: frozenset[int],
        check_wx: bool,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        self.markers = markers
        self.marker_i = 0
        self.page_shift = page_shift
        self.folded_levels = folded_levels
        self.check_wx = check_wx
        self.level = -1
        self.current_prot = 0
        self.start_address = 0
        self.wx_pages = 0
        self.uxn_pages = 0
        self.wx_ranges: list[PtdumpRange] = []
        self.out: list[str] = []
        self.ranges: list[PtdumpRange] = []
        self.progress = progress

    def effective(self, level: int, val: int) -> None:
        """arm64 has no ``effective_prot`` callbacks."""

    def _next_marker(self) -> int:
        i = self.marker_i + 1
        return self.markers[i].start_address if i < len(self.markers) else ULONG_MAX + 1

    def _header(self) -> None:
        self.out.append(f"---[ {self.markers[self.marker_i].name} ]---")

    def note_page(self, addr: int, level: int, val: int) -> None:
        if level in self.folded_levels:
            level = 0
        prot = val & PTDUMP_MASK if level >= 0 else 0
        if self.level == -1:
            self.level = level
            self.current_prot = prot
            self.start_address = addr
            self._header()
        elif prot != self.current_prot or level != self.level or addr >= self._next_marker():
            start = self.start_address
            cur = self.current_prot
            npages = ((addr - start) & ULONG_MAX) >> self.page_shift
            rng = PtdumpRange(
                start, addr, cur, self.level, self.markers[self.marker_i].name, present=bool(cur & PTE_VALID)
            )
            if cur and self.check_wx:
                # note_prot_uxn(), note_prot_wx()
                if not cur & PTE_UXN:
                    self.uxn_pages += npages
                if not cur & PTE_RDONLY and not cur & PTE_PXN:
                    self.wx_pages += npages
                    self.wx_ranges.append(rng)
            self.ranges.append(rng)
            line = f"0x{start:016x}-0x{addr:016x}   {_size((addr - start) & ULONG_MAX)} {LEVEL_NAMES[self.level]}"
            if cur:
                line += dump_prot(cur)
            self.out.append(line)
            if addr >= self._next_marker():
                self.marker_i += 1
                self._header()
            self.start_address = addr
            self.current_prot = prot
            self.level = level
            if self.progress is not None:
                self.progress(addr)
        if addr >= self._next_marker():
            self.marker_i += 1
            self._header()
