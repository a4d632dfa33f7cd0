# SPDX-License-Identifier: LGPL-2.1-or-later
"""
crash's output formats
----------------------

The text layouts of crash's ``vtop``, ``vm -p`` and ``pte`` commands on
x86_64 (crash's ``memory.c`` and ``x86_64.c``), so that an analyst's eyes and
scripts find the columns where crash puts them. Only formatting lives here:
the numbers come from livewalk's walker (:mod:`livewalk.tools.vtop`,
:mod:`livewalk.commands.crash`).

Where livewalk knows more than crash, it adds to crash's layout without
moving crash's columns: each level line of ``vtop`` ends with its decoded
flags in parentheses, a PTE's flags list the software bits after crash's
(``SPECIAL``, ``UFFD_WP``, ``SOFT_DIRTY``...), and non-present entries that
are not swap (migration, device, hwpoison, PTE markers) are named instead of
being shown as a swap location, as crash would.

>>> from livewalk.arch.x86.pgtable import X86Paging
>>> print("\\n".join(format_pte(0xd8e067, X86Paging())))
 PTE    PHYSICAL  FLAGS
d8e067   d8e000   (PRESENT|RW|USER|ACCESSED|DIRTY)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable

from livewalk.arch import ArchPaging, PageTableLevel
from livewalk.arch.arm64.entry_flags import decode_entry_flags
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.x86.pgtable_types import (
    _PAGE_ACCESSED,
    _PAGE_DIRTY,
    _PAGE_GLOBAL,
    _PAGE_NX,
    _PAGE_PCD,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_PSE,
    _PAGE_PWT,
    _PAGE_RW,
    _PAGE_SAVED_DIRTY,
    _PAGE_SOFT_DIRTY,
    _PAGE_SPECIAL,
    _PAGE_UFFD_WP,
    _PAGE_USER,
)
from livewalk.mm.swapops import SwapEntry, SwapKind

__all__ = (
    "CrashPageLine",
    "UVADDR_PRLEN",
    "VADDR_PRLEN",
    "crash_pte_flags",
    "format_pte",
    "format_vm_header",
    "format_vm_page",
    "format_vma_header",
    "format_vma_line",
    "format_vtop_crash",
    "mkstring",
    "swap_location",
)

#: Print width of a kernel virtual address (crash's ``VADDR_PRLEN`` on 64-bit).
VADDR_PRLEN = 16
#: Print width of a user virtual address (crash's ``UVADDR_PRLEN`` on x86_64).
UVADDR_PRLEN = 10

#: A swap type's device or file name, or ``None`` when unknown.
SwapNamer = Callable[[int], "str | None"]


def mkstring(text: str, width: int, how: str = "ljust") -> str:
    """
    Pad *text* to *width* the way crash's ``mkstring()`` does: ``"ljust"``,
    ``"rjust"``, or ``"center"``/``"center-rjust"`` (when the padding is odd,
    crash puts the extra space on the right, or on the left for
    ``center-rjust``). Text already as wide is returned unchanged.

    >>> mkstring("PTE", 6, "center") + "|"
    ' PTE  |'
    >>> mkstring("END", 10, "center-rjust") + "|"
    '    END   |'
    """
    extra = width - len(text)
    if extra <= 0:
        return text
    if how == "ljust":
        return text + " " * extra
    if how == "rjust":
        return " " * extra + text
    left = extra // 2
    if extra % 2 and how == "center-rjust":
        left += 1
    return " " * left + text + " " * (extra - left)


# crash's flag names in crash's order, then those crash does not print.
_CRASH_FLAGS = (
    (_PAGE_RW, "RW"),
    (_PAGE_USER, "USER"),
    (_PAGE_PWT, "PWT"),
    (_PAGE_PCD, "PCD"),
    (_PAGE_ACCESSED, "ACCESSED"),
    (_PAGE_DIRTY, "DIRTY"),
)


def crash_pte_flags(value: int, paging: ArchPaging, level: int = PageTableLevel.PTE) -> str:
    """
    The ``(PRESENT|RW|...)`` column of crash's ``pte`` for a present or
    ``PROTNONE`` entry: crash's names in crash's order, then the software
    bits livewalk decodes. Unlike crash, ``GLOBAL`` is shown only on a
    present entry (bit 8 of a non-present entry is ``PROTNONE``), and bit 7
    is ``PAT`` in a PTE (crash calls it ``PSE`` at every level).

    >>> from livewalk.arch.x86.pgtable import X86Paging
    >>> crash_pte_flags(0x8000000012345067, X86Paging())
    '(PRESENT|RW|USER|ACCESSED|DIRTY|NX)'
    >>> crash_pte_flags(0, X86Paging())
    '(no mapping)'
    """
    if value == 0:
        return "(no mapping)"
    if isinstance(paging, Arm64Paging):  # crash has no arm64 names: livewalk's (vtop's)
        return "(" + "|".join(decode_entry_flags(value, PageTableLevel(level), paging)) + ")"
    present = bool(value & _PAGE_PRESENT)
    names = ["PRESENT"] if present else []
    names += [name for bit, name in _CRASH_FLAGS if value & bit]
    if value & _PAGE_PSE and present:
        names.append("PSE" if level != PageTableLevel.PTE else "PAT")
    if value & _PAGE_PROTNONE and not present:
        names.append("PROTNONE")
    if value & _PAGE_GLOBAL and present:
        names.append("GLOBAL")
    if value & _PAGE_NX:
        names.append("NX")
    if value & _PAGE_SPECIAL:
        names.append("SPECIAL")
    if paging.uffd_wp and value & _PAGE_UFFD_WP:
        names.append("UFFD_WP")
    if paging.soft_dirty and value & _PAGE_SOFT_DIRTY:
        names.append("SOFT_DIRTY")
    if value & _PAGE_SAVED_DIRTY:
        names.append("SAVED_DIRTY")
    pkey = value >> 59 & 0xF
    if pkey:
        names.append(f"PKEY={pkey}")
    return "(" + "|".join(names) + ")"


def swap_location(swap: SwapEntry, swap_name: SwapNamer | None = None) -> str:
    """
    crash's swap location text, ``DEVICE  OFFSET: N`` (offset in decimal,
    as crash prints it for 2.6+ kernels), for a swap entry; for the other
    non-present kinds livewalk's own name, e.g. ``MIGRATION_WRITE  PFN: 1c2000``.

    >>> from livewalk.mm.swapops import SwapEntry, SwapKind
    >>> swap_location(SwapEntry(0, 22716, SwapKind.SWAP), lambda t: "/dev/sda8")
    '/dev/sda8  OFFSET: 22716'
    """
    if swap.kind == SwapKind.SWAP:
        name = swap_name(swap.type) if swap_name is not None else None
        if name is None:
            name = f"(swap type {swap.type})"
        return f"{name}  OFFSET: {swap.offset}"
    label = swap.kind.name
    if swap.pfn is not None:
        return f"{label}  PFN: {swap.pfn:x}"
    marks = [n for n, on in (("guard", swap.guard), ("uffd-wp", swap.marker_uffd_wp),
                             ("poisoned", swap.poisoned)) if on]
    return f"{label}  {','.join(marks) or 'type ' + str(swap.type)}"


def format_pte(
    value: int,
    paging: ArchPaging,
    swap_name: SwapNamer | None = None,
    level: int = PageTableLevel.PTE,
) -> list[str]:
    """
    crash's ``pte`` (``x86_64_translate_pte``): two lines, the header and the
    entry. A present or ``PROTNONE`` entry shows its physical page address
    and flags; any other non-zero entry its swap device and offset, or the
    kind of non-swap entry it is (migration, device, hwpoison, marker).

    >>> from livewalk.arch.x86.pgtable import X86Paging
    >>> print("\\n".join(format_pte(0x07fffffffffffc0a, X86Paging())))  # doctest: +NORMALIZE_WHITESPACE
          PTE            SWAP       OFFSET
    7fffffffffffc0a  (swap type 0)     1
    """
    pte = f"{value:x}"
    len1 = max(len(pte), len("PTE"))
    if value and not paging.pte_present(value):
        swap = paging.decode_swap(value)
        if swap is None:
            return [f"{mkstring('PTE', len1, 'center')}  ENTRY",
                    f"{mkstring(pte, len1, 'center-rjust')}  (unknown non-present entry)"]
        where = swap_location(swap, swap_name)
        dev, _, rest = where.partition("  ")
        label, _, num = rest.partition(": ")
        col3 = "OFFSET" if swap.kind == SwapKind.SWAP else label
        num = num if swap.kind == SwapKind.SWAP or swap.pfn is not None else rest
        dev = dev if swap.kind == SwapKind.SWAP else f"({swap.kind.name.lower()})"
        len2 = max(len(dev), len("SWAP"))
        len3 = max(len(num), len(col3))
        return [
            f"{mkstring('PTE', len1, 'center')}  {mkstring('SWAP', len2, 'center')}  "
            f"{mkstring(col3, len3, 'center')}".rstrip(),
            f"{mkstring(pte, len1, 'center-rjust')}  {mkstring(dev, len2, 'center-rjust')}  "
            f"{mkstring(num, len3, 'center-rjust')}",
        ]
    phys = f"{paging.table_paddr(value) if level == PageTableLevel.PTE else _leaf_paddr(value, level, paging):x}"
    if paging.pte_protnone(value):
        phys = f"{paging.pte_pfn(value) << paging.page_shift:x}"
    len2 = max(len(phys), len("PHYSICAL"))
    return [
        f"{mkstring('PTE', len1, 'center')}  {mkstring('PHYSICAL', len2, 'center')}  FLAGS",
        f"{mkstring(pte, len1, 'center-rjust')}  {mkstring(phys, len2, 'center-rjust')}  "
        f"{crash_pte_flags(value, paging, level)}",
    ]


def _leaf_paddr(value: int, level: int, paging: ArchPaging) -> int:
    if level == PageTableLevel.PMD:
        return paging.pmd_pfn(value) << paging.page_shift
    if level == PageTableLevel.PUD:
        return paging.pud_pfn(value) << paging.page_shift
    return paging.pte_pfn(value) << paging.page_shift


# -- vtop -----------------------------------------------------------------


@dataclasses.dataclass
class CrashPageLine:
    """
    The ``struct page`` line crash prints under a translation (``kmem -p``'s
    layout): the page's address, physical address, ``mapping``, index,
    reference count and flags.
    """

    page: int
    phys: int
    mapping: int
    index: int
    count: int
    flags: int
    flag_names: str
    paddr_prlen: int = 8

    def lines(self) -> list[str]:
        w = max(self.paddr_prlen, len("PHYSICAL"))
        header = (
            f"{mkstring('PAGE', VADDR_PRLEN, 'center')} {mkstring('PHYSICAL', w, 'rjust')} "
            f"{mkstring('MAPPING', VADDR_PRLEN, 'center-rjust')} "
            f"{mkstring('INDEX', 8, 'center-rjust')}CNT FLAGS"
        )
        row = (
            f"{self.page:<16x} {self.phys:>{w}x} {self.mapping:<16x} {self.index:8x} "
            f"{self.count:2d} {self.flags:x} {self.flag_names}"
        )
        return [header, row]


def format_vma_header() -> str:
    """crash's ``VMA START END FLAGS FILE`` header (``vm_area_dump``)."""
    return (
        f"{mkstring('VMA', VADDR_PRLEN, 'center')} {mkstring('START', UVADDR_PRLEN, 'center-rjust')} "
        f"{mkstring('END', UVADDR_PRLEN, 'center-rjust')}  FLAGS FILE"
    )


def format_vma_line(vma_addr: int, start: int, end: int, flags: int, name: str) -> str:
    """One VMA in crash's layout (``PRINT_VMA_DATA``)."""
    return (
        f"{mkstring(f'{vma_addr:x}', VADDR_PRLEN, 'center')} {start:>{UVADDR_PRLEN}x} "
        f"{end:>{UVADDR_PRLEN}x} {flags:6x} {name}"
    )


def format_vm_header(mm: int, pgd: int, rss_kb: int, total_vm_kb: int) -> list[str]:
    """crash's ``MM PGD RSS TOTAL_VM`` lines of ``vm``."""
    return [
        f"{mkstring('MM', VADDR_PRLEN, 'center')}  {mkstring('PGD', VADDR_PRLEN, 'center')}  "
        f"{mkstring('RSS', 6, 'center')}  {mkstring('TOTAL_VM', 8, 'center')}",
        f"{mkstring(f'{mm:x}', VADDR_PRLEN, 'center')}  {mkstring(f'{pgd:x}', VADDR_PRLEN, 'center')}  "
        f"{mkstring(f'{rss_kb}k', 6, 'center')}  {mkstring(f'{total_vm_kb}k', 8, 'center')}",
    ]


def format_vm_page(vaddr: int, what: str, phys: int | None, paddr_prlen: int) -> str:
    """
    One page of ``vm -p``: the physical address, or *what* (``SWAP: ...``,
    ``FILE: ...``, ``(not mapped)``...) when *phys* is ``None``.
    """
    if phys is not None:
        return f"{vaddr:<{UVADDR_PRLEN}x}  {phys:>{max(paddr_prlen, 8)}x}"
    return f"{vaddr:<{UVADDR_PRLEN}x}  {what}"


def format_vtop_crash(
    r: object,
    paging: ArchPaging,
    *,
    entry_paddr: Callable[[int], int],
    vma_line: str | None = None,
    file_offset: str | None = None,
    page_line: CrashPageLine | None = None,
    swap_name: SwapNamer | None = None,
    kernel_pgd: int | None = None,
) -> list[str]:
    """
    A :class:`~livewalk.tools.vtop.VtopResult` in crash's ``vtop`` layout:
    the ``VIRTUAL PHYSICAL`` pair, each level as ``LEVEL: entry => value``
    (the entry's physical address, as crash prints it; livewalk adds the
    decoded flags), ``PAGE:`` with the leaf size, crash's ``pte`` table of
    the leaf, the VMA, then the ``struct page`` line or the swap / file
    location of a page that is not mapped.

    :param entry_paddr: kernel virtual address of an entry -> its physical address
    :param vma_line: the VMA in crash's layout (user addresses)
    :param file_offset: ``PATH  OFFSET: hex`` of a file page that is not mapped
    :param kernel_pgd: for kernel addresses, crash's ``PGD DIRECTORY``
    """
    from livewalk.tools.vtop import VtopResult

    assert isinstance(r, VtopResult)
    w = VADDR_PRLEN if r.kernel else UVADDR_PRLEN
    out = [f"{mkstring('VIRTUAL', w)}  {mkstring('PHYSICAL', VADDR_PRLEN)}"]
    mapped = r.state in ("present", "protnone") and r.phys is not None
    if not r.kernel and r.vma is None:
        out.append(f"{r.addr:<{w}x}  (not accessible)")
        out.append("")
        return out
    unmapped = "(not in dump)" if r.state == "not_in_dump" else "(not mapped)"
    out.append(f"{r.addr:<{w}x}  " + (f"{r.phys:<{VADDR_PRLEN}x}" if mapped else unmapped))
    out.append("")
    steps = list(r.steps)
    if r.kernel and steps and steps[0].level == PageTableLevel.PGD:
        top = steps.pop(0)
        out.append(f"PGD DIRECTORY: {kernel_pgd if kernel_pgd is not None else r.pgd:x}")
        out.append(f"PAGE DIRECTORY: {top.value:x}")
    for step in steps:
        name = PageTableLevel(step.level).name
        flags = "" if step.none else "  " + _level_flags(step.value, step.level, paging)
        out.append(f"{name:>6}: {entry_paddr(step.kaddr):x} => {step.value:x}{flags}")
    leaf = steps[-1] if steps else None
    size = {1 << 21: "  (2MB)", 1 << 30: "  (1GB)"}.get(r.leaf_size, "")
    if mapped and r.phys is not None:
        out.append(f"  PAGE: {r.phys - (r.addr & (r.leaf_size - 1)):x}{size}")
        out.append("")
        assert leaf is not None
        out += format_pte(leaf.value, paging, swap_name, leaf.level)
    elif leaf is not None and leaf.value and not leaf.none and r.swap is not None:
        out.append("")
        out += format_pte(leaf.value, paging, swap_name, leaf.level)
    out.append("")
    if vma_line is not None:
        out.append(format_vma_header())
        out.append(vma_line)
    for err in r.errors:
        out.append(f"WARNING: {err}")
    if not mapped:
        if r.swap is not None:
            label = "SWAP" if r.swap.kind == SwapKind.SWAP else r.swap.kind.name
            loc = swap_location(r.swap, swap_name)
            if r.swap.kind != SwapKind.SWAP:
                loc = loc.split("  ", 1)[1]
            out += ["", f"{label}: {loc}"]
        elif file_offset is not None and r.state != "not_in_dump":
            out += ["", f"FILE: {file_offset}"]
    elif page_line is not None:
        out.append("")
        out += page_line.lines()
    return out


def _level_flags(value: int, level: int, paging: ArchPaging) -> str:
    from livewalk.tools.vtop import decode_pte_flags

    names = decode_pte_flags(value, level, paging)
    return "(" + "|".join(names) + ")" if names else "(none)"


def join_lines(lines: Iterable[str]) -> str:
    """The lines as one text, each ending in a newline."""
    return "".join(line + "\n" for line in lines)
