# SPDX-License-Identifier: LGPL-2.1-or-later
"""
vtop
----

Translate one virtual address, showing every page-table level on the way:
the address and raw value of each entry with its decoded flags, the leaf
size, then the physical address or the decoded swap / migration / device /
marker entry, and the VMA. This is crash's ``vtop``, but right about
``PROT_NONE`` (a ``PROTNONE`` entry is present, with its PFN stored inverted
on x86_64; present-invalid on arm64) and about non-present entries. Both
architectures: x86_64 (CR3's table) and arm64 (TTBR0's table for user
addresses, TTBR1's ``swapper_pg_dir`` for kernel ones; entry flags named by
:func:`~livewalk.arch.arm64.entry_flags.decode_entry_flags`).

It is an ordinary walker user, like the kernel's own: the user translation
is :func:`~livewalk.mm.pagewalk.walk_page_range` over ``[addr, addr + 1)`` with
``pgd/p4d/pud/pmd/pte_entry``, ``pte_hole`` and ``hugetlb_entry`` callbacks
(and a ``test_walk`` that returns 0 so that ``VM_PFNMAP`` VMAs are walked
too, as ``mprotect``'s ``prot_none_walk_ops`` does). The p?d callbacks set
``ACTION_CONTINUE`` on leaves and non-present entries, as ``mm/ptdump.c``
does, so nothing is ever split. Hugetlb VMAs never reach the p?d callbacks
(as in Linux 7.2 mm/pagewalk.c), and an address outside every VMA is only a
``pte_hole(depth=-1)``: in both cases the upper levels are collected with a
second, VMA-less walk (:func:`~livewalk.mm.pagewalk.walk_page_range_debug`),
which is what ptdump does. Kernel addresses use
:func:`~livewalk.mm.pagewalk.walk_kernel_page_table_range`.

>>> r = vtop(find_task(prog, 1), 0x7f1234567000)        # doctest: +SKIP
>>> print(format_vtop(r))                               # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

from drgn import FaultError, Object

from livewalk.arch import ULONG_MAX, ArchPaging, PageTableLevel, per_paging
from livewalk.arch.arm64.entry_flags import decode_entry_flags
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.x86.pgtable import X86Paging
from livewalk.backend import PageTableBackend, backend_for_mm
from livewalk.consistency import DEFAULT_RETRIES, RangeConsistency, read_consistent
from livewalk.errors import AddressError, WalkFailedError
from livewalk.mm.entry import Entry
from livewalk.mm.pagewalk import (
    MMWalk,
    walk_kernel_page_table_range,
    walk_page_range,
    walk_page_range_debug,
    walk_page_range_novma,
)
from livewalk.mm.swapops import SwapEntry
from livewalk.mm.vma import VMA
from livewalk.proc.maps import get_vma_name, vma_perms
from livewalk.task import to_mm

__all__ = (
    "VtopResult",
    "VtopStep",
    "decode_pte_flags",
    "format_vtop",
    "vm_flags_string",
    "vtop",
    "vtop_consistent",
    "vtop_json",
    "vtop_kernel",
    "vtop_kernel_consistent",
)

_LEVEL_NAMES = {
    PageTableLevel.PGD: "PGD",
    PageTableLevel.P4D: "P4D",
    PageTableLevel.PUD: "PUD",
    PageTableLevel.PMD: "PMD",
    PageTableLevel.PTE: "PTE",
}

# an entry's level (an int or a PageTableLevel) -> the PageTableLevel, without
# an enum call per entry
_LEVELS = {int(level): level for level in PageTableLevel}

# ``depth`` of ``pte_hole`` -> the level whose entry is none (-1: no VMA).
_DEPTH_LEVEL = {
    0: PageTableLevel.PGD,
    1: PageTableLevel.P4D,
    2: PageTableLevel.PUD,
    3: PageTableLevel.PMD,
}

#: The ``rwxp`` column of ``/proc/PID/maps`` (:func:`livewalk.proc.maps.vma_perms`).
vm_flags_string = vma_perms


def decode_pte_flags(value: int, level: int, paging: ArchPaging | None = None) -> list[str]:
    """
    Name the flag bits of a raw entry of *paging*'s architecture: an arm64
    descriptor's with :func:`~livewalk.arch.arm64.entry_flags.decode_entry_flags`,
    else (x86_64, or no *paging*) those of ``arch/x86/include/asm/
    pgtable_types.h``. Bit 7 is ``PSE`` at PMD/PUD level and ``PAT`` in a
    PTE; bit 12 is ``PAT_LARGE`` in a PMD/PUD leaf. A non-present entry with
    bit 8 set is ``PROTNONE`` (``PROT_NONE`` or a NUMA hinting fault). Swap
    entries (not present, not ``PROTNONE``) have their own layout: their soft
    flags are ``SWP_SOFT_DIRTY`` (bit 1), ``SWP_UFFD_WP`` (bit 2) and
    ``SWP_EXCLUSIVE`` (bit 3).

    >>> decode_pte_flags(0x8000000000000067, PageTableLevel.PTE)
    ['PRESENT', 'RW', 'USER', 'ACCESSED', 'DIRTY', 'NX']
    >>> decode_pte_flags(0x80000001234560a5 & ~1 | 0x100, PageTableLevel.PTE)
    ['PROTNONE', 'USER', 'ACCESSED', 'PAT', 'NX']
    """
    if isinstance(paging, Arm64Paging):
        return decode_entry_flags(value, _LEVELS[level], paging)
    uffd_wp = paging.uffd_wp if paging is not None else True
    soft_dirty = paging.soft_dirty if paging is not None else True
    present = bool(value & 1)
    protnone = not present and bool(value & 0x100)
    if value == 0:
        return []
    if not present and not protnone:
        names = ["NOT_PRESENT(swap format)"]
        if value & 0x2:
            names.append("SWP_SOFT_DIRTY")
        if value & 0x4:
            names.append("SWP_UFFD_WP")
        if value & 0x8:
            names.append("SWP_EXCLUSIVE")
        return names
    names = ["PRESENT" if present else "PROTNONE"]
    leaf_level = level in (PageTableLevel.PMD, PageTableLevel.PUD) and bool(value & 0x80)
    for bit, name in ((1, "RW"), (2, "USER"), (3, "PWT"), (4, "PCD"), (5, "ACCESSED"), (6, "DIRTY")):
        if value >> bit & 1:
            names.append(name)
    if value & 0x80:
        names.append("PAT" if level == PageTableLevel.PTE else "PSE")
    if present and value & 0x100:
        names.append("GLOBAL")
    if value & 0x200:
        names.append("SPECIAL")
    if uffd_wp and value & 0x400:
        names.append("UFFD_WP")
    if soft_dirty and value & 0x800:
        names.append("SOFT_DIRTY")
    if leaf_level and value & 0x1000:
        names.append("PAT_LARGE")
    if value >> 58 & 1:
        names.append("SAVED_DIRTY" if level != PageTableLevel.PGD else "NOPTISHADOW")
    pkey = value >> 59 & 0xF
    if pkey:
        names.append(f"PKEY={pkey}")
    if value >> 63:
        names.append("NX")
    return names


@dataclasses.dataclass
class VtopStep:
    """
    One page-table entry on the way to an address.

    :ivar level: its :class:`~livewalk.arch.x86.pgtable.PageTableLevel`
    :ivar kaddr: kernel virtual address of the entry (what a ``pte_t *``
        points at)
    :ivar value: raw 64-bit value
    :ivar index: index of the entry in its table
    :ivar none: the entry is none (``p?d_none``): the walk ended here with a
        ``pte_hole``
    """

    level: PageTableLevel
    kaddr: int
    value: int
    index: int
    none: bool = False


@dataclasses.dataclass
class VtopResult:
    """
    The translation of one address (see :func:`vtop`).

    :ivar addr: the virtual address
    :ivar kernel: it was translated in the kernel page tables (``init_mm``)
    :ivar levels: 4 or 5 (paging levels of the target)
    :ivar pgd: kernel address of the top-level table walked
    :ivar steps: the entries from the top level down to the last one read
    :ivar state: ``"present"``, ``"protnone"``, ``"none"`` (nothing mapped:
        a hole or a none leaf), ``"swap"``, ``"migration"``, ``"device"``,
        ``"hwpoison"``, ``"marker"`` (a PTE marker: guard, uffd-wp,
        poisoned), ``"no_vma"`` (the address is in no VMA) or
        ``"not_in_dump"`` (a page table on the way is not in the dump:
        what maps the address is unknown)
    :ivar leaf_level: the level of the last entry (the leaf) or ``None``
    :ivar leaf_size: bytes mapped by the leaf (4 KiB, 2 MiB, 1 GiB...), or
        for a hole the size of the hole's span at that level
    :ivar phys: the physical address (present and ``PROTNONE`` leaves)
    :ivar pfn: the leaf's PFN (also for migration and device entries)
    :ivar swap: the decoded non-present entry (``SwapEntry``) or ``None``
    :ivar hugetlb: the leaf was handed to ``hugetlb_entry``
    :ivar vma: the :class:`~livewalk.backend.VMA` snapshot, or ``None``
    :ivar vma_name: the VMA's file path or ``[heap]``/``[stack]``-style name,
        read from the target when first asked for (a path lookup costs more
        than the whole translation; most callers never print it)
    :ivar hole_depth: the ``depth`` of the ``pte_hole`` that ended the walk
    :ivar consistency: the verdict of :func:`vtop_consistent` (``None``
        from a plain :func:`vtop`): whether the entries shown changed while
        they were read
    :ivar paging: the target's paging (how the entries are decoded;
        ``None``: x86_64 with :attr:`levels` levels)
    """

    addr: int
    kernel: bool
    levels: int
    pgd: int
    steps: list[VtopStep] = dataclasses.field(default_factory=list)
    state: str = "none"
    leaf_level: PageTableLevel | None = None
    leaf_size: int = 0
    phys: int | None = None
    pfn: int | None = None
    swap: SwapEntry | None = None
    hugetlb: bool = False
    vma: VMA | None = None
    hole_depth: int | None = None
    pid: int | None = None
    comm: str = ""
    errors: list[str] = dataclasses.field(default_factory=list)
    consistency: RangeConsistency | None = None
    paging: ArchPaging | None = dataclasses.field(default=None, repr=False, compare=False)
    _vma_name: str | None = dataclasses.field(default=None, init=False, repr=False, compare=False)

    @property
    def vma_name(self) -> str:
        """:func:`~livewalk.proc.maps.get_vma_name` of :attr:`vma`, read on first use."""
        if self._vma_name is None:
            self._vma_name = _vma_name(self.vma)
        return self._vma_name

    @vma_name.setter
    def vma_name(self, name: str) -> None:
        self._vma_name = name


class _State:
    def __init__(self, result: VtopResult, backend: PageTableBackend) -> None:
        self.result = result
        self.backend = backend
        self.paging: ArchPaging = backend.paging
        self.leaf: Entry | None = None  # entry object of the leaf
        self.hole: tuple[int, int, int] | None = None  # addr, next, depth
        self.vma_seen = False
        self.vma: VMA | None = None  # the VMA the walk entered (walk.vma_info)
        self.walk: MMWalk | None = None  # the MMWalk, for its errors
        self._shifts = _level_shifts(self.paging)
        self._seen = {int(step.level) for step in result.steps}  # levels shown already

    def add(self, entry: Entry) -> None:
        lv = entry.level
        where = self._shifts[lv]
        # a folded level: p?d_offset() returns the slot of the level above,
        # nothing new to show
        if where is None or lv in self._seen:
            return
        self._seen.add(lv)
        assert entry.kaddr is not None  # the walker passes entries of real tables
        shift, mask = where
        r = self.result
        r.steps.append(VtopStep(_LEVELS[lv], entry.kaddr, entry.value, (r.addr >> shift) & mask))


@per_paging
def _level_shifts(paging: ArchPaging) -> dict[int, tuple[int, int] | None]:
    """
    By level: the shift and the index mask of :func:`_index`, or ``None``
    for a folded level; worked out once per paging.
    """
    return {
        int(lv): None if paging.folded(lv) else (paging.level_shift(lv), paging.ptrs_per(lv) - 1)
        for lv in PageTableLevel
    }


def _index(paging: ArchPaging, level: PageTableLevel, addr: int) -> int:
    """``p?d_index()``: the slot of *addr* in its *level* table."""
    return (addr >> paging.level_shift(level)) & (paging.ptrs_per(level) - 1)


def _level_size(paging: ArchPaging, level: PageTableLevel) -> int:
    return 1 << paging.level_shift(level)


@functools.cache
def _ops(collect_hugetlb: bool) -> Any:
    """The walker ops (stateless: made once, they keep their state in ``walk.private``)."""
    from livewalk.mm.pagewalk import MMWalkOps, PageWalkAction

    def pgd_entry(pgd: Any, addr: int, next: int, walk: Any) -> int:
        walk.private.walk = walk
        walk.private.add(pgd)
        return 0

    def p4d_entry(p4d: Any, addr: int, next: int, walk: Any) -> int:
        walk.private.add(p4d)
        return 0

    def upper_entry(entry: Any, addr: int, next: int, walk: Any) -> int:
        st: _State = walk.private
        st.add(entry)
        if entry.leaf or not entry.present:
            # A huge leaf, or a non-present PMD (migration or device entry):
            # look at it here and never let the walker split it.
            st.leaf = entry
            walk.action = PageWalkAction.ACTION_CONTINUE
        return 0

    def pte_entry(pte: Any, addr: int, next: int, walk: Any) -> int:
        st: _State = walk.private
        st.add(pte)
        st.leaf = pte
        return 0

    def pte_hole(addr: int, next: int, depth: int, walk: Any) -> int:
        st: _State = walk.private
        st.walk = walk
        st.hole = (addr, next, depth)
        return 0

    def hugetlb_entry(pte: Any, hmask: int, addr: int, next: int, walk: Any) -> int:
        st: _State = walk.private
        st.leaf = pte
        st.result.hugetlb = True
        st.result.leaf_size = (~hmask & ULONG_MAX) + 1
        return 0

    def test_walk(addr: int, next: int, walk: Any) -> int:
        # Walk every VMA, VM_PFNMAP ones included (the default walk_page_test
        # would report those as a hole and skip them).
        st: _State = walk.private
        st.vma_seen = True
        st.vma = walk.vma_info
        return 0

    return MMWalkOps(
        pgd_entry=pgd_entry,
        p4d_entry=p4d_entry,
        pud_entry=upper_entry,
        pmd_entry=upper_entry,
        pte_entry=pte_entry,
        pte_hole=pte_hole,
        hugetlb_entry=hugetlb_entry if collect_hugetlb else None,
        test_walk=test_walk,
    )


def _check_ret(ret: Any, what: str) -> None:
    if isinstance(ret, int) and ret < 0:
        raise WalkFailedError(f"{what} failed with error {ret}")


def _fill_hole(st: _State) -> None:
    """Add the none entry that ended the walk (the walker hands none to pte_hole)."""
    r = st.result
    if st.hole is None or st.leaf is not None:
        return
    depth = st.hole[2]
    r.hole_depth = depth
    if depth < 0:
        return
    level = _DEPTH_LEVEL[depth]
    while st.paging.folded(level):  # the none entry is the slot of the level above
        level = _LEVELS[level + 1]
    r.leaf_level = level
    r.leaf_size = _level_size(st.paging, level)
    r.state = "none"
    for step in r.steps:
        if step.level == level:
            # 4-level paging: pgd_entry saw the slot (pgd_none() is always
            # false), then the folded P4D test found it none.
            step.none = True
            return
    # Find the table that holds the none entry: below the last step shown.
    if r.steps:
        parent = r.steps[-1]
        table_phys = st.paging.table_paddr(parent.value)
    else:
        table_phys = None
    index = _index(st.paging, level, r.addr)
    if level == PageTableLevel.PGD or table_phys is None:
        table_kaddr = r.pgd
        try:
            table_phys = st.backend.pgd_phys(r.pgd)
        except Exception:
            return
    else:
        table_kaddr = st.paging.va(table_phys)
    try:
        value = int(st.backend.read_table(table_phys)[index])
    except Exception:
        value = 0
    r.steps.append(VtopStep(level, table_kaddr + 8 * index, value, index, none=True))


def _finish(st: _State) -> VtopResult:
    r = st.result
    for e in st.walk.errors if st.walk is not None else ():
        name = _LEVEL_NAMES.get(PageTableLevel(e.level), str(e.level))
        if e.reason == "unreadable":
            # crash's "page excluded": the table is not in the dump (or
            # outside RAM); the walk saw a hole there
            msg = (f"the table below the {name} entry for {e.addr:#x}, at physical address "
                   f"{e.value:#x}, is not in the dump (page excluded)")
        else:
            msg = f"{name} entry for {e.addr:#x} (value {e.value:#x}): {e.reason}"
        if msg not in r.errors:
            r.errors.append(msg)
    r.steps.sort(key=lambda s: -int(s.level))
    leaf = st.leaf
    if leaf is None:
        _fill_hole(st)
        return r
    level = _LEVELS[leaf.level]
    if r.hugetlb:
        # hugetlb_entry gets a pte_t * whatever the size: name the level by
        # it (arm64's contiguous sizes: CONT_PTES PTEs or CONT_PMDS PMDs)
        try:
            level = st.paging.hugetlb_level(r.leaf_size.bit_length() - 1)[0]
        except ValueError:
            pass
    r.leaf_level = level
    if not r.leaf_size:
        r.leaf_size = _level_size(st.paging, level)
    if r.hugetlb:
        found = False
        for step in r.steps:
            if step.level == level:
                found = True
        if not found and leaf.kaddr is not None:
            r.steps.append(VtopStep(level, leaf.kaddr, leaf.value, _index(st.paging, level, r.addr)))
    if leaf.none:
        r.state = "none"
        return r
    if leaf.present:
        r.state = "protnone" if leaf.protnone else "present"
        r.pfn = int(leaf.pfn)
        r.phys = (r.pfn << st.paging.page_shift) + (r.addr & (r.leaf_size - 1))
        return r
    swap = leaf.swap
    r.swap = swap
    kind = swap.kind.name.upper() if swap is not None else ""
    if kind.startswith("MIGRATION"):
        r.state = "migration"
    elif kind.startswith("DEVICE"):
        r.state = "device"
    elif kind.startswith("HWPOISON"):
        r.state = "hwpoison"
    elif kind.startswith("PTE_MARKER") or kind.startswith("MARKER"):
        r.state = "marker"
    else:
        r.state = "swap"
    if swap is not None and swap.pfn is not None:
        r.pfn = swap.pfn
    return r


def _vma_name(vma: VMA | None) -> str:
    """:func:`~livewalk.proc.maps.get_vma_name` of a drgn VMA ("" for others)."""
    if vma is None or not isinstance(vma.obj, Object):
        return ""
    try:
        name = get_vma_name(vma.obj)
    except FaultError:  # read late, and the VMA is gone from a live target
        return ""
    return "" if name is None else name.decode(errors="replace")


def _check_user_addr(backend: PageTableBackend, mm: Any, addr: int) -> None:
    if not 0 <= addr <= ULONG_MAX:
        raise AddressError(f"address {addr:#x} is not a 64-bit address")
    task_size = backend.paging.task_size_max + backend.paging.page_size
    try:
        task_size = backend.mm_task_size(mm)
    except Exception:
        pass
    if addr >= task_size:
        raise AddressError(
            f"address {addr:#x} is outside user space (which ends at {task_size:#x}): "
            "use --kernel for kernel addresses"
        )


def _canonical(paging: ArchPaging, addr: int) -> bool:
    """
    *addr* is a canonical kernel address: on x86_64 bits 63 down to bit
    47 (56 with LA57) are equal; on arm64 it is in the TTBR1 range, bits 63
    down to ``vabits_actual`` are ones (``task_size_max`` is ``1 <<
    vabits_actual``).
    """
    if isinstance(paging, Arm64Paging):
        bits = paging.task_size_max.bit_length() - 1
        return addr >> bits == ULONG_MAX >> bits
    bits = 57 if paging.levels == 5 else 48
    top = addr >> (bits - 1)
    return top == 0 or top == (ULONG_MAX >> (bits - 1))


def vtop(mm: Any, addr: int, *, walks: list[MMWalk] | None = None) -> VtopResult:
    """
    Translate user address *addr* in *mm* (a ``struct mm_struct *`` or
    ``struct task_struct *`` drgn Object, or a synthetic mm).

    :param walks: if given, every walk made is appended to it (for the
        consistency check, :func:`vtop_consistent`)

    :raises AddressError: if *addr* is not below the mm's ``task_size``
    :raises KernelThreadError: for a task without an mm
    """
    mm = to_mm(mm)
    backend = backend_for_mm(mm)
    with backend.call_scope():  # the mm's members read once for the call
        return _vtop(mm, backend, addr, walks)


def _vtop(mm: Any, backend: PageTableBackend, addr: int, walks: list[MMWalk] | None) -> VtopResult:
    paging: ArchPaging = backend.paging
    _check_user_addr(backend, mm, addr)
    result = VtopResult(addr=addr, kernel=False, levels=paging.levels, pgd=0, paging=paging)
    st = _State(result, backend)
    own: list[MMWalk] = []
    try:
        ret = walk_page_range(mm, addr, addr + 1, _ops(True), private=st, walks=own)
    finally:
        if walks is not None:
            walks += own
    # mm->pgd as the walk read it (a walk that entered no VMA read none)
    pgd = own[0].mm_pgd if own else None
    result.pgd = pgd = backend.mm_pgd(mm) if pgd is None else pgd
    _check_ret(ret, "walk_page_range")
    # The VMA the walk's own find_vma() found (test_walk runs for every VMA
    # entered, PFN maps included); None: the address is in no VMA.
    result.vma = st.vma
    if result.vma is None or result.vma.is_hugetlb or result.hugetlb:
        # No VMA (a pte_hole(-1)), or a hugetlb VMA (hugetlb_entry only):
        # collect the upper levels with a VMA-less walk, as ptdump does.
        leaf, hugetlb, size = st.leaf, result.hugetlb, result.leaf_size
        st2 = _State(result, backend)
        # the kernel's VMA-less walk: walk_page_range_novma() before 6.12.105
        debug = walk_page_range_debug
        if backend.features.has_entry_point("walk_page_range_novma"):
            debug = walk_page_range_novma
        ret = debug(mm, addr, addr + 1, _ops(False), pgd, st2, walks=walks)
        _check_ret(ret, debug.__name__)
        if hugetlb:
            st2.leaf, st2.hole = leaf, None
            result.hugetlb, result.leaf_size = True, size
        st = st2
    _finish(st)
    if result.vma is None and result.state == "none":
        result.state = "no_vma"
    return result


def vtop_kernel(prog: Any, addr: int) -> VtopResult:
    """
    Translate kernel address *addr* in the kernel page tables of *prog*
    (``init_mm``, ``swapper_pg_dir``) with
    :func:`~livewalk.mm.pagewalk.walk_kernel_page_table_range`, or
    :func:`~livewalk.mm.pagewalk.walk_page_range_novma` on kernels before
    6.12.105, as the kernel itself would walk them.

    :raises AddressError: if *addr* is not a canonical kernel-half address
    """
    from livewalk.backend.drgn import DrgnBackend

    backend = DrgnBackend.for_program(prog)
    return _vtop_kernel(backend, addr)


def _vtop_kernel(backend: Any, addr: int, walks: list[MMWalk] | None = None) -> VtopResult:
    paging: ArchPaging = backend.paging
    if not 0 <= addr <= ULONG_MAX or not addr >> 63:
        raise AddressError(
            f"address {addr:#x} is not a kernel address: use --pid PID for user addresses"
        )
    if not _canonical(paging, addr):
        raise AddressError(
            f"address {addr:#x} is not canonical with {paging.levels}-level paging"
        )
    init_mm = backend.init_mm()
    pgd = backend.mm_pgd(init_mm)
    result = VtopResult(addr=addr, kernel=True, levels=paging.levels, pgd=pgd, paging=paging)
    st = _State(result, backend)
    # the kernel's walk of its own tables: walk_page_range_novma(&init_mm)
    # before 6.12.105, walk_kernel_page_table_range() since
    if backend.features.has_entry_point("walk_page_range_novma"):
        ret = walk_page_range_novma(init_mm, addr, addr + 1, _ops(False), None, st, walks=walks)
        _check_ret(ret, "walk_page_range_novma")
    else:
        ret = walk_kernel_page_table_range(addr, addr + 1, _ops(False), pgd=None, private=st, backend=backend,
                                           walks=walks)
        _check_ret(ret, "walk_kernel_page_table_range")
    return _finish(st)


def _judged(mm: Any, addr: int, translate: Any, retries: int) -> VtopResult:
    """
    *translate* (``translate(walks)``) judged by
    :func:`~livewalk.consistency.read_consistent` over the page of *addr*:
    the result of the last read, with its verdict.
    """
    backend = backend_for_mm(mm)
    page = backend.paging.page_size
    start = addr & ~(page - 1) & ULONG_MAX

    def read(s: int, e: int, walks: list[MMWalk]) -> VtopResult:
        return translate(walks)  # type: ignore[no-any-return]

    r = read_consistent(mm, start, start + page, read, retries=retries)
    result = r.value
    if result is None:  # no read ever ended (read errors): say so, as a plain vtop would
        result = translate(None)
    result.consistency = r.consistency
    if r.consistency.missing and result.state == "none":
        result.state = "not_in_dump"
    return result


def vtop_consistent(mm: Any, addr: int, *, retries: int = DEFAULT_RETRIES) -> VtopResult:
    """
    :func:`vtop` of a live target, judged: every entry shown is read again
    at the end, and the VMA tree compared, as
    :func:`~livewalk.consistency.read_consistent` does for pagemap (the
    page of *addr* is the range judged); a torn translation is made again
    at most *retries* times. :attr:`VtopResult.consistency` holds the
    verdict (``"walk"`` when nothing moved, ``"torn"`` with the reason when
    something did every time).

    >>> r = vtop_consistent(find_task(prog, 1), 0x7f1234567000)  # doctest: +SKIP
    >>> r.consistency.level                                      # doctest: +SKIP
    'walk'
    """
    mm = to_mm(mm)
    return _judged(mm, addr, lambda walks: vtop(mm, addr, walks=walks), retries)


def vtop_kernel_consistent(prog: Any, addr: int, *, retries: int = DEFAULT_RETRIES) -> VtopResult:
    """:func:`vtop_kernel`, judged as :func:`vtop_consistent` (the mm is ``init_mm``)."""
    from livewalk.backend.drgn import DrgnBackend

    backend = DrgnBackend.for_program(prog)
    return _vtop_kernel_consistent(backend, addr, retries)


def _vtop_kernel_consistent(backend: Any, addr: int, retries: int) -> VtopResult:
    return _judged(backend.init_mm(), addr, lambda walks: _vtop_kernel(backend, addr, walks), retries)


def _size_str(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


def _swap_str(swap: SwapEntry | None, paging: ArchPaging) -> str:
    if swap is None:
        return "(unknown non-present entry)"
    parts = [f"{swap.kind.name.lower()} entry: type {swap.type}, offset {swap.offset:#x}"]
    if swap.pfn is not None:
        parts.append(f"pfn {swap.pfn:#x}")
    for name, on in (
        ("guard", swap.guard),
        ("marker_uffd_wp", swap.marker_uffd_wp),
        ("poisoned", swap.poisoned),
    ):
        if on:
            parts.append(name)
    return ", ".join(parts)


def _paging(r: VtopResult) -> ArchPaging:
    """The paging that decodes *r*'s entries (x86_64 for a result made without one)."""
    return r.paging if r.paging is not None else X86Paging(levels=r.levels)


def _paging_note(r: VtopResult, paging: ArchPaging) -> str:
    """
    The paging mode and the top table: x86_64's CR3 table, or on arm64 the
    table of TTBR0 (user, ``mm->pgd``) or TTBR1 (kernel, ``swapper_pg_dir``).
    """
    if not isinstance(paging, Arm64Paging):
        if r.levels == 5:
            return f"5-level paging, PGD table at {r.pgd:x}"
        return f"4-level paging, P4D folded into PGD, PGD table at {r.pgd:x}"
    note = f"{paging.levels}-level paging, {paging.page_size >> 10}K pages"
    if paging.levels < paging.config_levels:
        note += f" ({paging.config_levels} levels built, folded at boot)"
    table = "TTBR1 (swapper_pg_dir)" if r.kernel else "TTBR0"
    return f"{note}, {table} PGD table at {r.pgd:x}"


def format_vtop(r: VtopResult) -> str:
    """
    Format a :class:`VtopResult` for people, in the spirit of crash's
    ``vtop``: the translation, then one line per level (``LEVEL: entry
    address => value  flags``), then the page and the VMA.
    """
    paging = _paging(r)
    lines = []
    if r.phys is not None:
        phys = f"{r.phys:x}"
    else:
        phys = {
            "none": "(not mapped)",
            "no_vma": "(not mapped: no VMA)",
            "swap": "(swapped out)",
            "migration": "(under migration)",
            "device": "(device-private memory)",
            "hwpoison": "(hardware-poisoned)",
            "marker": "(PTE marker)",
            "not_in_dump": "(not in dump)",
        }.get(r.state, f"({r.state})")
    lines.append(f"{'VIRTUAL':<18} PHYSICAL")
    lines.append(f"{r.addr:<18x} {phys}")
    lines.append("")
    who = "kernel (init_mm)" if r.kernel else (
        f"PID {r.pid}" + (f" ({r.comm})" if r.comm else "") if r.pid is not None else "user mm"
    )
    lines.append(f"{who}, {_paging_note(r, paging)}")
    for step in r.steps:
        name = _LEVEL_NAMES[step.level]
        if step.none:
            flags = "(none)"
        else:
            flags = " ".join(decode_pte_flags(step.value, step.level, paging)) or "(none)"
        lines.append(f"  {name}: {step.kaddr:x} [{step.index:3d}] => {step.value:016x}  {flags}")
    for level in (PageTableLevel.P4D, PageTableLevel.PUD, PageTableLevel.PMD):
        above = _LEVEL_NAMES[_LEVELS[level + 1]]
        name = _LEVEL_NAMES[level]
        if paging.folded(level):
            lines.append(f"  ({name} is folded: {name.lower()}_offset() returns the {above} entry)")
        elif paging.folded_at_boot(level):
            lines.append(
                f"  ({name} is folded at boot: {above.lower()}_none() is false and "
                f"{name.lower()}_offset() indexes the {above} entry's own page)"
            )
    if r.leaf_level is not None:
        kind = "hugetlb " if r.hugetlb else ""
        lvl = _LEVEL_NAMES[r.leaf_level]
        if r.state in ("present", "protnone") and r.phys is not None:
            extra = ""
            if r.state == "protnone":
                extra = (
                    " PRESENT_INVALID (PROT_NONE or NUMA hinting)"
                    if isinstance(paging, Arm64Paging)
                    else " PROTNONE (PROT_NONE or NUMA hinting; PFN stored inverted)"
                )
            lines.append(f"  PAGE: {r.phys - (r.addr & (r.leaf_size - 1)):x}  pfn {r.pfn:#x}  {_size_str(r.leaf_size)} {kind}{lvl} leaf{extra}")
        elif r.state in ("none", "no_vma"):
            span = f"{_size_str(r.leaf_size)} span" if r.leaf_size else ""
            where = f"{lvl} none" + (f" ({span})" if span else "")
            lines.append(f"  NOT MAPPED: {where}")
        elif r.state == "not_in_dump":
            lines.append(f"  NOT IN DUMP: the table below the {lvl} level is not in the dump")
        else:
            lines.append(f"  {r.state.upper()}: {_swap_str(r.swap, paging)} ({_size_str(r.leaf_size)} {kind}{lvl} entry)")
    elif r.state == "no_vma":
        lines.append("  NOT MAPPED: no VMA and no page table for this address")
    for err in r.errors:
        lines.append(f"  WARNING: {err}")
    if r.consistency is not None:
        lines += r.consistency.marks()
    if not r.kernel:
        if r.vma is not None:
            v = r.vma
            obj = f"{int(v.obj.value_()):x} " if v.obj is not None and hasattr(v.obj, "value_") else ""
            name = f"  {r.vma_name}" if r.vma_name else ""
            lines.append(
                f"  VMA: {obj}{v.vm_start:x}-{v.vm_end:x} {vm_flags_string(v.vm_flags)} "
                f"flags {v.vm_flags:#x} pgoff {v.vm_pgoff:#x}{name}"
            )
        else:
            lines.append("  VMA: none (the address is in no VMA)")
    return "\n".join(lines)


def vtop_json(r: VtopResult) -> dict[str, Any]:
    """A JSON-ready ``dict`` of a :class:`VtopResult` (numbers as integers)."""
    paging = _paging(r)
    swap = None
    if r.swap is not None:
        s = r.swap
        swap = {
            "kind": s.kind.name.lower(),
            "type": s.type,
            "offset": s.offset,
            "pfn": s.pfn,
        }
    vma = None
    if r.vma is not None:
        vma = {
            "start": r.vma.vm_start,
            "end": r.vma.vm_end,
            "flags": r.vma.vm_flags,
            "perms": vm_flags_string(r.vma.vm_flags),
            "pgoff": r.vma.vm_pgoff,
            "hugetlb_shift": r.vma.hugetlb_shift,
            "pfnmap": r.vma.pfnmap,
            "name": r.vma_name,
        }
    return {
        "addr": r.addr,
        "kernel": r.kernel,
        "pid": r.pid,
        "levels": r.levels,
        "p4d_folded": paging.folded(PageTableLevel.P4D),
        "pgd": r.pgd,
        "steps": [
            {
                "level": _LEVEL_NAMES[s.level],
                "entry": s.kaddr,
                "index": s.index,
                "value": s.value,
                "none": s.none,
                "flags": [] if s.none else decode_pte_flags(s.value, s.level, paging),
            }
            for s in r.steps
        ],
        "state": r.state,
        "leaf_level": None if r.leaf_level is None else _LEVEL_NAMES[r.leaf_level],
        "leaf_size": r.leaf_size,
        "hugetlb": r.hugetlb,
        "phys": r.phys,
        "pfn": r.pfn,
        "swap": swap,
        "vma": vma,
        "errors": list(r.errors),
        "consistency": None if r.consistency is None else r.consistency.as_dict(),
    }


def _dumps(r: VtopResult) -> str:
    return json.dumps(vtop_json(r), indent=2)
