# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Page-table walker
-----------------

A reimplementation of Linux 7.2's ``mm/pagewalk.c`` with the API of
``include/linux/pagewalk.h``: the same entry points, callbacks, argument
order, return conventions and quirks, over page tables read through a
:class:`~livewalk.backend.PageTableBackend`. Where 6.1 and 6.12 differ, the
walker follows the target kernel, as ``walk.backend.features``
(:class:`~livewalk.kernel.KernelFeatures`, probed from the target) says. It is read-only: where the kernel
would change the page tables during a walk (THP splits, table allocation for
``install_pte``, clearing bad entries) the walker emulates the change in a
per-walk overlay and never writes to the target.

>>> from livewalk.backend.synthetic import SyntheticMM
>>> mm = SyntheticMM(levels=4)
>>> vma = mm.add_vma(0x400000, 0x402000)
>>> mm.map_4k(0x400000, pfn=0x1234)
>>> seen = []
>>> ops = MMWalkOps(pte_entry=lambda pte, addr, next, walk: seen.append((addr, pte.present)))
>>> walk_page_range(mm, 0x400000, 0x402000, ops)
0
>>> seen
[(4194304, True), (4198400, False)]

Callbacks
=========

Callbacks have the kernel's signatures (``pte_entry(pte, addr, next,
walk)``, ``pte_hole(addr, next, depth, walk)``, ...). Entries are
:class:`~livewalk.mm.entry.Entry` objects. A callback returns 0, a positive
value (stop the walk and return it) or a negative errno (``-errno.EINVAL``...)
as in the kernel; **returning** ``None`` **counts as 0**. Any other return
type raises :class:`TypeError`. ``post_vma``'s return value is ignored (it
is ``void`` in the kernel).

Every entry point also takes a keyword-only ``walks`` list: the
:class:`MMWalk` of the call is appended to it, so that ``walk.errors``,
``walk.installed``, ``walk.splits`` and ``walk.table_reads`` can be read
after the walk (``walk_page_mapping`` appends one walk for all VMAs).

``walk.action`` may be set to :data:`ACTION_CONTINUE` or
:data:`ACTION_AGAIN` by ``pud_entry``/``pmd_entry`` (and, as in the kernel,
by anything called from the PMD loop) exactly as in Linux 7.2.

Kernel versions
===============

What differs between Debian's 6.1.176, 6.12.117 and 7.2.13 (and inside
6.12.y) and how the walker follows it:

* entry points: :func:`walk_page_range_novma` (6.1 to 6.12.104),
  :func:`walk_kernel_page_table_range` and :func:`walk_page_range_debug`
  (6.12.105 on), :func:`walk_kernel_page_table_range_lockless`,
  :func:`walk_page_range_mm_unsafe` and :func:`walk_page_range_vma_unsafe`
  (7.2), :func:`walk_page_range_vma` (6.1.161 on). Calling one the target
  lacks raises :class:`~livewalk.kernel.NotInKernelError` (a
  ``NotImplementedError``: the kernel has no such function to call), as
  does an ``install_pte`` callback before 7.x (``struct mm_walk_ops`` has
  no such member); an errno would claim the kernel ran it.
* :func:`walk_page_vma` runs ``walk_page_test()`` on 6.1 only.
* ``walk_lock`` is validated where the member exists (not on 6.1);
  ``PGWALK_VMA_RDLOCK_VERIFY`` only where the enumerator exists (7.2).
* retries: 6.1 goes back to ``again:`` on ``pmd_trans_unstable()`` after
  the PMD split and on ``pud_none()`` after the PUD split, and never looks at
  ``walk->action`` after ``walk_pte_range()``/``walk_pmd_range()``; since
  6.5 a failed ``pte_offset_map()`` (or a ``pte_entry`` that sets it) makes
  ``ACTION_AGAIN`` retry the PMD; since 6.12.84 ``walk_pmd_range()`` sends a
  PUD that is no table back to the PUD loop, which retries on
  ``ACTION_AGAIN``; since 6.12.115 ``ACTION_SUBTREE`` is set at ``again:``
  (before, a hole saw the previous entry's action, and with the 6.12.84
  rule a stale ``ACTION_AGAIN`` sent the PUD loop round again).
* hugetlb walks issue the same callbacks on all three (only locking
  differs).

Where a read-only target cannot do what the kernel does (THP splits,
``__p?d_alloc()`` for ``install_pte``, clearing bad entries, ending
``ACTION_AGAIN`` loops, unreadable tables), the loops here call into
:mod:`livewalk.mm.overlay` at the point where the kernel would change the
tables; its module documentation states each policy. Locks are never taken:
``walk_lock`` is only validated. A range that runs past the end of a
top-level table (possible only with unusual kernel walks) wraps around its
index instead of reading past the page as the kernel would; a PTE loop with
``end < PAGE_SIZE`` stops at the end of its table.

The loops talk to the architecture only through
:class:`~livewalk.arch.ArchPaging` (``walk.paging``): ``pmd_none()``,
``pud_leaf()``, ... and the geometry (shifts, ``PTRS_PER_*``: 512, 2048 or
8192 entries a table); levels are :class:`~livewalk.arch.PageTableLevel`.

Folded levels
=============

As in Linux 7.2 ``mm/pagewalk.c`` over ``asm-generic/pgtable-nop4d.h``,
``-nopud.h`` and ``-nopmd.h``: a level folded at build time (the P4D with 4
levels; P4D and PUD with 3, arm64 4K/39-bit, 16K/47-bit, 64K/48-bit; and the
PMD too with 2, arm64 64K/42-bit) still has its loop and its callback, run
once with ``p?d_addr_end() == end`` on the parent's own slot (same value,
same :attr:`~livewalk.mm.entry.Entry.kaddr`); the none and bad tests of the
level above it are constant false, so the hole of a none entry is reported
by the lowest level of the slot at ``real_depth()``. arm64 kernels built for
52-bit VAs fold one more level at boot when the CPU lacks LPA2
(:meth:`~livewalk.arch.ArchPaging.folded_at_boot`): the PGD keeps its
build-time ``PGDIR_SHIFT`` and slots, and ``p4d_offset()`` (``pud_offset()``
with 16K pages) indexes the PGD's own page.
"""

from __future__ import annotations

import enum
import errno
import sys
import sysconfig
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import count as count_from
from itertools import repeat
from typing import Any, NamedTuple

from livewalk.arch import ULONG_MAX, ArchPaging, PageTableLevel, per_paging
from livewalk.backend import TableReadError, backend_for_mm
from livewalk.kernel import MM_WALK_CALLBACKS, KernelFeatures
from livewalk.mm.entry import Entry, EntryContext, _EmulatedEntry, _TablePTE
from livewalk.mm.overlay import (
    Slot,
    WalkOverlay,
    again_retry,
    clear_bad,
    p_alloc,
    pmd_trans_unstable,
    pte_offset_map,
    record_unreadable,
    set_pte_at,
    split_huge_pmd,
    split_huge_pud,
)
from livewalk.mm.vma import VM_PFNMAP, VMA

__all__ = (
    "ACTION_AGAIN",
    "ACTION_CONTINUE",
    "ACTION_SUBTREE",
    "MMWalk",
    "MMWalkOps",
    "MM_WALK_CALLBACKS",
    "PGWALK_RDLOCK",
    "PGWALK_VMA_RDLOCK_VERIFY",
    "PGWALK_WRLOCK",
    "PGWALK_WRLOCK_VERIFY",
    "PTEOut",
    "PageWalkAction",
    "PageWalkLock",
    "p4d_addr_end",
    "pgd_addr_end",
    "pmd_addr_end",
    "pud_addr_end",
    "real_depth",
    "walk_kernel_page_table_range",
    "walk_kernel_page_table_range_lockless",
    "walk_page_mapping",
    "walk_page_range",
    "walk_page_range_debug",
    "walk_page_range_mm_unsafe",
    "walk_page_range_novma",
    "walk_page_range_vma",
    "walk_page_range_vma_unsafe",
    "walk_page_vma",
)

_PTE, _PMD, _PUD, _P4D, _PGD = PageTableLevel


class PageWalkLock(enum.IntEnum):
    """``enum page_walk_lock``."""

    PGWALK_RDLOCK = 0
    PGWALK_WRLOCK = 1
    PGWALK_WRLOCK_VERIFY = 2
    PGWALK_VMA_RDLOCK_VERIFY = 3


PGWALK_RDLOCK = PageWalkLock.PGWALK_RDLOCK
PGWALK_WRLOCK = PageWalkLock.PGWALK_WRLOCK
PGWALK_WRLOCK_VERIFY = PageWalkLock.PGWALK_WRLOCK_VERIFY
PGWALK_VMA_RDLOCK_VERIFY = PageWalkLock.PGWALK_VMA_RDLOCK_VERIFY


class PageWalkAction(enum.IntEnum):
    """``enum page_walk_action``."""

    ACTION_SUBTREE = 0
    ACTION_CONTINUE = 1
    ACTION_AGAIN = 2


ACTION_SUBTREE = PageWalkAction.ACTION_SUBTREE
ACTION_CONTINUE = PageWalkAction.ACTION_CONTINUE
ACTION_AGAIN = PageWalkAction.ACTION_AGAIN

_CALLBACKS = MM_WALK_CALLBACKS


class MMWalkOps:
    """
    ``struct mm_walk_ops``: the callbacks of a walk, all optional, and
    ``walk_lock``. Pass callbacks as keywords, or subclass and define them as
    methods (``def pte_entry(self, pte, addr, next, walk)``).

    >>> ops = MMWalkOps(pte_hole=lambda addr, next, depth, walk: 0)
    >>> ops.pte_entry is None
    True
    """

    pgd_entry: Callable[..., Any] | None = None
    p4d_entry: Callable[..., Any] | None = None
    pud_entry: Callable[..., Any] | None = None
    pmd_entry: Callable[..., Any] | None = None
    pte_entry: Callable[..., Any] | None = None
    pte_hole: Callable[..., Any] | None = None
    hugetlb_entry: Callable[..., Any] | None = None
    test_walk: Callable[..., Any] | None = None
    pre_vma: Callable[..., Any] | None = None
    post_vma: Callable[..., Any] | None = None
    install_pte: Callable[..., Any] | None = None
    walk_lock: int = PGWALK_RDLOCK

    def __init__(
        self,
        *,
        pgd_entry: Callable[..., Any] | None = None,
        p4d_entry: Callable[..., Any] | None = None,
        pud_entry: Callable[..., Any] | None = None,
        pmd_entry: Callable[..., Any] | None = None,
        pte_entry: Callable[..., Any] | None = None,
        pte_hole: Callable[..., Any] | None = None,
        hugetlb_entry: Callable[..., Any] | None = None,
        test_walk: Callable[..., Any] | None = None,
        pre_vma: Callable[..., Any] | None = None,
        post_vma: Callable[..., Any] | None = None,
        install_pte: Callable[..., Any] | None = None,
        walk_lock: int = PGWALK_RDLOCK,
    ) -> None:
        args = locals()
        for name in _CALLBACKS:
            fn = args[name]
            if fn is not None:
                setattr(self, name, fn)
        self.walk_lock = walk_lock

    def __repr__(self) -> str:
        set_ = [n for n in _CALLBACKS if getattr(self, n, None) is not None]
        return f"MMWalkOps({', '.join(set_)}, walk_lock={int(self.walk_lock)})"


class _Ops:
    """The callbacks of one walk, looked up once."""

    __slots__ = (*_CALLBACKS, "walk_lock")

    pgd_entry: Callable[..., Any] | None
    p4d_entry: Callable[..., Any] | None
    pud_entry: Callable[..., Any] | None
    pmd_entry: Callable[..., Any] | None
    pte_entry: Callable[..., Any] | None
    pte_hole: Callable[..., Any] | None
    hugetlb_entry: Callable[..., Any] | None
    test_walk: Callable[..., Any] | None
    pre_vma: Callable[..., Any] | None
    post_vma: Callable[..., Any] | None
    install_pte: Callable[..., Any] | None
    walk_lock: Any

    def __init__(self, ops: Any) -> None:
        # one line per member of _CALLBACKS (spelled out: made once per walk)
        self.pgd_entry = getattr(ops, "pgd_entry", None)
        self.p4d_entry = getattr(ops, "p4d_entry", None)
        self.pud_entry = getattr(ops, "pud_entry", None)
        self.pmd_entry = getattr(ops, "pmd_entry", None)
        self.pte_entry = getattr(ops, "pte_entry", None)
        self.pte_hole = getattr(ops, "pte_hole", None)
        self.hugetlb_entry = getattr(ops, "hugetlb_entry", None)
        self.test_walk = getattr(ops, "test_walk", None)
        self.pre_vma = getattr(ops, "pre_vma", None)
        self.post_vma = getattr(ops, "post_vma", None)
        self.install_pte = getattr(ops, "install_pte", None)
        self.walk_lock = getattr(ops, "walk_lock", PGWALK_RDLOCK)


class _Geometry:
    """
    What the level loops need of a paging, by level (``int(level)``),
    worked out once per :class:`~livewalk.arch.ArchPaging` object (they are
    immutable): each call of ``level_shift()``, ``ptrs_per()`` or
    ``folded()`` is a Python call, several per level of every walk.
    """

    __slots__ = ("shift", "mask", "folded", "at_boot", "depth", "page_shift", "ptrs_pte")

    def __init__(self, paging: ArchPaging) -> None:
        levels = tuple(PageTableLevel)
        self.shift = tuple(paging.level_shift(lv) for lv in levels)
        self.mask = tuple(paging.ptrs_per(lv) - 1 for lv in levels)
        self.folded = tuple(paging.folded(lv) for lv in levels)
        self.at_boot = tuple(paging.folded_at_boot(lv) for lv in levels)
        self.depth = tuple(real_depth(d, paging) for d in range(4))
        self.page_shift = paging.page_shift
        self.ptrs_pte = paging.ptrs_per(_PTE)


@per_paging
def _geometry(paging: ArchPaging) -> _Geometry:
    """The :class:`_Geometry` of *paging*."""
    return _Geometry(paging)


class PTEOut:
    """What ``install_pte(addr, next, ptep, walk)`` fills in: set ``ptep.value``."""

    __slots__ = ("value",)

    def __init__(self, value: int = 0) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"PTEOut({self.value:#x})"


class MMWalk(EntryContext):
    """
    ``struct mm_walk``, handed to every callback.

    :ivar ops: the ops object passed in
    :ivar mm: the mm (the backend's native object)
    :ivar pgd: top-level table override (kernel virtual address) of no-VMA
        walks, else ``None``
    :ivar vma: the VMA being walked (the backend's native object,
        :attr:`VMA.obj`), or ``None`` outside VMAs
    :ivar action: :class:`PageWalkAction`
    :ivar no_vma: walk ignoring VMAs
    :ivar private: the caller's private data

    livewalk extensions:

    :ivar vma_info: the :class:`~livewalk.backend.VMA` snapshot, or ``None``
    :ivar backend: the backend
    :ivar paging: the backend's :class:`~livewalk.arch.ArchPaging`
    :ivar overlay: the walk's :class:`~livewalk.mm.overlay.WalkOverlay`
    :ivar errors: list of :class:`WalkError`
    :ivar installed: ``{addr: pte value}`` produced by ``install_pte``
    :ivar splits: ``(level, addr, what)`` for every emulated THP split
    :ivar again_capped: how many times the ``ACTION_AGAIN`` cap fired
    :ivar table_reads: page-table pages read from the backend in this walk
    """

    __slots__ = (
        "ops",
        "mm",
        "pgd",
        "vma",
        "action",
        "no_vma",
        "private",
        "vma_info",
        "overlay",
        "errors",
        "installed",
        "splits",
        "_o",
        "_f",
        "_kernel_pte",
        "_task_size",
        "_mm_pgd",
        "_g",
    )

    def __init__(
        self,
        ops: Any,
        mm: Any,
        backend: Any,
        *,
        pgd: int | None = None,
        vma: VMA | None = None,
        no_vma: bool = False,
        private: Any = None,
    ) -> None:
        super().__init__(backend.paging, backend)
        self.ops = ops
        self.mm = mm
        self.pgd = pgd
        self.vma_info = vma
        self.vma = vma.obj if vma is not None else None
        self.action = ACTION_SUBTREE
        self.no_vma = no_vma
        self.private = private
        self.overlay = overlay = WalkOverlay()
        self.errors = overlay.errors
        self.installed = overlay.installed
        self.splits = overlay.splits
        self._o = _Ops(ops)
        self._f: KernelFeatures = backend.features
        self._kernel_pte: bool | None = None
        self._task_size = self.paging.task_size_max
        self._mm_pgd: int | None = None
        self._g = _geometry(self.paging)

    @property
    def mm_pgd(self) -> int | None:
        """``mm->pgd`` as this walk read it (once, for its first VMA), or ``None`` if it read none."""
        return self._mm_pgd

    @property
    def again_capped(self) -> int:
        """How many times the ``ACTION_AGAIN`` cap fired."""
        return self.overlay.again_capped

    def _set_vma(self, vma: VMA | None) -> None:
        self.vma_info = vma
        self.vma = vma.obj if vma is not None else None

    def __repr__(self) -> str:
        return f"MMWalk(mm={self.mm!r}, vma={self.vma!r}, action={int(self.action)}, no_vma={self.no_vma})"

    def table(self, slot: Slot, value: int) -> _Table:
        """
        ``p?d_offset()``: the table the entry in *slot* points to (an
        emulated one if the overlay made it).

        :raises TableReadError: unreadable, or reached at two levels (a loop)
        """
        ch = self.overlay.children.get(slot) if self.overlay.children else None
        if ch is not None:
            return _Table(ch, None)
        paddr = self.paging.table_paddr(value)
        seen = self.overlay.table_level.setdefault(paddr, slot[0])
        if seen != slot[0]:
            # a page used as a table at two levels: only corrupted tables do
            # this; refuse to descend (the walk stays finite and honest)
            self.overlay.error(slot[0], slot[1], paddr, "loop")
            raise TableReadError(paddr, f"page-table loop: table {paddr:#x} reached at two levels")
        return _Table(self.read_table(paddr), self.paging.va(paddr))

    def entry(self, level: PageTableLevel, slot: Slot, v: int, table: _Table, i: int) -> Entry:
        """
        The :class:`Entry` a ``p?d_entry`` callback gets for the *level*
        entry in *slot*, slot *i* of *table* (a folded level's slot is its
        parent's).
        """
        kaddr = None if table.base is None else table.base + 8 * i
        children = self.overlay.children
        ch = children.get(slot) if children else None
        if ch is None:
            return Entry(v, kaddr, level, self)
        return _EmulatedEntry(v, kaddr, level, self, ch)


class _Table(NamedTuple):
    """A mapped page-table page: its raw values and kernel address (None if emulated)."""

    vals: Sequence[int]
    base: int | None

    def kaddr(self, i: int) -> int | None:
        return None if self.base is None else self.base + 8 * i


# -- helpers --------------------------------------------------------------


def _cbret(ret: Any, name: str) -> int:
    """A callback's return value: None counts as 0; anything else must be an int."""
    if ret is None:
        return 0
    if isinstance(ret, int):
        return int(ret)
    raise TypeError(
        f"{name} callback must return an int (0, positive stop value or negative errno) "
        f"or None, not {type(ret).__name__}"
    )


def _addr_end(addr: int, end: int, size: int) -> int:
    boundary = ((addr + size) & ~(size - 1)) & ULONG_MAX
    return boundary if ((boundary - 1) & ULONG_MAX) < ((end - 1) & ULONG_MAX) else end


def pgd_addr_end(addr: int, end: int, paging: ArchPaging) -> int:
    """``pgd_addr_end()``: unsigned 64-bit, so a boundary that wraps to 0 gives *end*."""
    return _addr_end(addr, end, 1 << paging.pgdir_shift)


def p4d_addr_end(addr: int, end: int, paging: ArchPaging) -> int:
    """``p4d_addr_end()``."""
    return _addr_end(addr, end, 1 << paging.level_shift(_P4D))


def pud_addr_end(addr: int, end: int, paging: ArchPaging) -> int:
    """``pud_addr_end()``.

    >>> from livewalk.arch.x86.pgtable import X86Paging
    >>> hex(pud_addr_end(0xFFFFFFFFC0000000, 0xFFFFFFFFFFFFFFFF, X86Paging()))
    '0xffffffffffffffff'
    """
    return _addr_end(addr, end, 1 << paging.level_shift(_PUD))


def pmd_addr_end(addr: int, end: int, paging: ArchPaging) -> int:
    """``pmd_addr_end()``."""
    return _addr_end(addr, end, 1 << paging.level_shift(_PMD))


def real_depth(depth: int, paging: ArchPaging) -> int:
    """
    ``real_depth()``: renumber a hole depth past folded levels (PMD into
    PUD, PUD into P4D, P4D into PGD), by ``PTRS_PER_* == 1``. On x86_64
    only the P4D folds, without LA57, so depth 1 becomes 0 there; on arm64
    with 3 levels a none PUD is depth 0, with 2 a none PMD. A level folded
    at boot keeps its ``PTRS_PER_*`` and its depth.
    """
    if depth == 3 and paging.ptrs_per(_PMD) == 1:
        depth = 2
    if depth == 2 and paging.ptrs_per(_PUD) == 1:
        depth = 1
    if depth == 1 and paging.ptrs_per(_P4D) == 1:
        depth = 0
    return depth


def _ranges(start: int, end: int, size: int) -> Iterator[tuple[int, int]]:
    """
    The ``do { next = p?d_addr_end(addr, end); ... } while (addr = next,
    addr != end);`` that frames every level loop: ``(addr, next)`` pairs,
    *size* being the level's span (:func:`_addr_end` inlined).
    """
    addr = start
    mask = ~(size - 1)
    end_1 = (end - 1) & ULONG_MAX
    while True:
        boundary = ((addr + size) & mask) & ULONG_MAX
        next_ = boundary if ((boundary - 1) & ULONG_MAX) < end_1 else end
        yield addr, next_
        addr = next_
        if addr == end:
            return


def _level_ranges(start: int, end: int, shift: int, folded: bool) -> Iterable[tuple[int, int]]:
    """
    The ``(addr, next)`` pairs of one level's loop: as in Linux 7.2
    mm/pagewalk.c, a folded level's loop runs once, its ``p?d_addr_end()``
    being *end* (``asm-generic/pgtable-nop*d.h``).
    """
    if folded or not (start ^ (end - 1)) >> shift:
        # one pass: folded, or [start, end) inside one slot (the common
        # case of a small walk), where p?d_addr_end() is end
        return ((start, end),)
    return _ranges(start, end, 1 << shift)


def _lower_table(
    walk: MMWalk, level: PageTableLevel, parent: Slot, pv: int, ptable: _Table
) -> tuple[_Table, bool]:
    """
    The table ``p?d_offset()`` indexes for *level* under the entry *pv* in
    slot *parent* of *ptable*, and whether *level* is folded. Folded at build
    time: the parent's own slot (``p4d_offset()`` of ``pgtable-nop4d.h``
    returns the ``pgd_t *``); folded at boot (arm64): the parent's own page,
    indexed by *level*; otherwise the table *pv* points to.

    :raises TableReadError: that table is unreadable (or a loop)
    """
    g = walk._g
    if g.folded[level]:
        return ptable, True
    if g.at_boot[level]:
        return ptable, False
    return walk.table(parent, pv), False


def _offset(paging: ArchPaging, level: PageTableLevel) -> tuple[int, int]:
    """
    What ``p?d_index()`` and the slot keys need for *level*: the shift and
    the index mask (``PTRS_PER_* - 1``). A slot is ``(level, addr & ~((1 <<
    shift) - 1))``.
    """
    return paging.level_shift(level), paging.ptrs_per(level) - 1


def _slot(level: PageTableLevel, addr: int, paging: ArchPaging) -> Slot:
    """The slot of *level* that covers *addr*."""
    return (level, addr & ~((1 << paging.level_shift(level)) - 1) & ULONG_MAX)


def _index(level: PageTableLevel, addr: int, paging: ArchPaging) -> int:
    """``p?d_index()``."""
    return (addr >> paging.level_shift(level)) & (paging.ptrs_per(level) - 1)


def _none_entry(
    walk: MMWalk, slot: Slot, addr: int, next_: int, depth: int
) -> tuple[int, int | None]:
    """
    The ``p?d_none()`` block every level shares: with ``install_pte``,
    ``__p?d_alloc()`` (emulated, never fails) and go on with the new table;
    otherwise ``pte_hole(addr, next, depth)``. Returns ``(err, value)``, the
    value being ``None`` when the level loop should ``continue``.
    """
    o = walk._o
    if o.install_pte is not None:
        return 0, p_alloc(walk, slot)
    if o.pte_hole is not None:
        return _cbret(o.pte_hole(addr, next_, depth, walk), "pte_hole"), None
    return 0, None


def _again(walk: MMWalk, slot: Slot, v0: int, tries: list[int]) -> bool:
    """
    Whether ``walk->action == ACTION_AGAIN`` may ``goto again``, for the PUD
    and PMD loops, with the retry cap of :mod:`livewalk.mm.overlay`: a retry
    is free when the entry changed since *v0* (split, zap, bad entry
    cleared), capped otherwise. Past the cap the entry is left as if
    ``ACTION_CONTINUE`` had been asked for.
    """
    changed = walk.overlay.get(slot, v0) != v0
    if again_retry(walk, slot[0], slot[1], changed, tries):
        return True
    walk.action = ACTION_CONTINUE
    return False


# -- the level loops, as in Linux 7.2 mm/pagewalk.c -------------------------


def walk_pte_range_inner(table: _Table, addr: int, end: int, walk: MMWalk) -> int:
    """``walk_pte_range_inner()``: every slot in [addr, end), none ones included."""
    o = walk._o
    pte_entry = o.pte_entry
    install_pte = o.install_pte
    paging = walk.paging
    g = walk._g
    shift = g.page_shift
    page_size = 1 << shift
    ptrs = g.ptrs_pte
    i = (addr >> shift) & (ptrs - 1)
    # as in Linux 7.2: stop once addr >= end - PAGE_SIZE (unsigned), and
    # (read-only) never past the end of the table
    last = (end - page_size) & ULONG_MAX
    count = 1 if addr >= last else ((last - addr + page_size - 1) >> shift) + 1
    count = min(count, ptrs - i)
    vals = paging.ptes_get(table.vals, i, count)  # what ptep_get() returns
    base = table.base
    if base is not None and install_pte is None and pte_entry is not None:
        if addr + count * page_size <= ULONG_MAX:
            return _pte_entry_fast(vals, base + 8 * i, addr, page_size, pte_entry, walk)
    kaddrs: Iterable[int | None] = repeat(None) if base is None else count_from(base + 8 * i, 8)
    pte_none = paging.pte_none
    for v, kaddr in zip(vals, kaddrs):
        next_ = (addr + page_size) & ULONG_MAX
        if install_pte is not None and pte_none(v):
            ptep = PTEOut()
            err = _cbret(install_pte(addr, next_, ptep, walk), "install_pte")
            if err:
                return err
            set_pte_at(walk, addr, int(ptep.value) & ULONG_MAX)
        elif pte_entry is not None:
            err = _cbret(pte_entry(Entry(v, kaddr, _PTE, walk), addr, next_, walk), "pte_entry")
            if err:
                return err
        addr = next_
    return 0


#: The fast PTE loop may hand the next PTE in the Entry object the callback
#: got for the previous one when nothing kept a reference to it (CPython's
#: reference count says so), as CPython's own zip() reuses its result tuple.
#: Not on free-threaded builds, where reference counts are not exact.
_REUSE_ENTRIES = sys.implementation.name == "cpython" and not sysconfig.get_config_var("Py_GIL_DISABLED")


def _pte_entry_fast(
    vals: Sequence[int],
    kaddr: int,
    addr: int,
    page_size: int,
    pte_entry: Callable[..., Any],
    walk: MMWalk,
) -> int:
    """
    The loop of :func:`walk_pte_range_inner` for the common case: a table
    read from the target, only ``pte_entry``, and no ``next`` that wraps at
    the top of the address space. :class:`Entry` construction and
    :func:`_cbret` are inlined: this loop runs once per PTE. An Entry that
    the callback did not keep (no reference left but ours) is refilled for
    the next PTE instead of being freed and allocated again: a callback sees
    the same values as with a new object, and one that keeps its entry
    (in a list, an attribute, a closure) keeps it unchanged.

    Per PTE the loop makes no integer it can do without: the raw values
    come out of the table as one list (``tolist()`` of the ``'Q'`` view, in
    C), each ``next`` is the following PTE's ``addr``, and the entry's
    ``kaddr`` is worked out from its ``addr`` when read (``_TablePTE``).
    """
    new = object.__new__
    cls = _TablePTE
    level = _PTE
    n = len(vals)
    nexts = range(addr + page_size, addr + (n + 1) * page_size, page_size)
    if isinstance(vals, (memoryview, array)):
        vals = vals.tolist()
    g = walk._g
    table = kaddr - 8 * ((addr >> g.page_shift) & (g.ptrs_pte - 1))
    pte = new(cls)
    pte.level = level
    pte._ctx = walk
    pte._table = table
    # The count of a fresh Entry that only this frame holds, taken by the
    # very check below on the first PTE (how a count reads depends on the
    # interpreter and on where it is taken: 3.14 borrows references).
    # Without reuse free stays -1, which no id() equals: a new Entry per PTE.
    free = 0 if _REUSE_ENTRIES else -1
    refs = sys.getrefcount if _REUSE_ENTRIES else id
    zero = _ZERO
    a = addr
    for v, nx in zip(vals, nexts):
        if refs(pte) != free:
            if free:
                pte = new(cls)
                pte.level = level
                pte._ctx = walk
                pte._table = table
            else:
                free = refs(pte)
        pte.value = v
        pte._addr = a
        ret = pte_entry(pte, a, nx, walk)
        # 0 (the small-int singleton) and None go on at once; anything
        # else is judged by _cbret (False goes on, a bad type raises)
        if ret is not zero and ret is not None:
            err = _cbret(ret, "pte_entry")
            if err:
                return err
        a = nx
    return 0


#: The ``0`` callbacks return (CPython keeps one object for each small
#: integer: an identity test is the cheapest way to see it).
_ZERO = 0


def walk_pte_range(pmd: Slot, pmdval: int, addr: int, end: int, walk: MMWalk) -> int:
    """
    ``walk_pte_range()``: map the PTE table, or fail and ask for
    ACTION_AGAIN (since Linux 6.5; in 6.1 the mapping cannot fail).
    """
    if not walk._f.pte_map_may_fail:
        # as in Linux 6.1 mm/pagewalk.c: pte_offset_map(_lock) has no failure
        # path (walk_pmd_range checked pmd_trans_unstable() after the split);
        # an unreadable table reads as a hole below the PMD, as the
        # ACTION_AGAIN path makes it on later kernels
        try:
            table = walk.table(pmd, pmdval)
        except TableReadError as e:
            return _unreadable_below(walk, pmd, e.paddr, addr, end, walk._g.depth[3])
        return walk_pte_range_inner(table, addr, end, walk)
    if walk.no_vma:
        if walk._kernel_pte is None:
            walk._kernel_pte = bool(walk.backend.is_init_mm(walk.mm))
        # as in Linux 7.2: pte_offset_kernel() (no checks) for init_mm or
        # addresses at or above TASK_SIZE, pte_offset_map() otherwise
        ok = walk._kernel_pte or addr >= walk._task_size or pte_offset_map(walk, pmd, pmdval)
    else:
        ok = pte_offset_map(walk, pmd, pmdval)
    if ok:
        try:
            return walk_pte_range_inner(walk.table(pmd, pmdval), addr, end, walk)
        except TableReadError as e:
            record_unreadable(walk, pmd, e.paddr)
    walk.action = ACTION_AGAIN
    return 0


def walk_pmd_range(
    pud: Slot, pudval: int, pudp: _Table, pud_i: int, start: int, end: int, walk: MMWalk
) -> int:
    """
    ``walk_pmd_range()`` below the PUD *pudval* (slot *pud_i* of *pudp*).
    The retry rules follow ``walk.backend.features``: the PUD re-check
    (6.12.84), where ``ACTION_SUBTREE`` is set (6.12.115), and retry after
    ``walk_pte_range()`` (6.5) or on ``pmd_trans_unstable()`` after the
    split (6.1). A folded PMD (2 levels) is the PUD slot itself.
    """
    paging = walk.paging
    f = walk._f
    recheck = f.walk_pud_recheck
    # as in Linux 7.2 (and 6.12.84+): a PUD that is not a table (not
    # present, or a leaf) sends the PUD loop back to again:
    if recheck and (not paging.pud_present(pudval) or paging.pud_leaf(pudval)):
        walk.action = ACTION_AGAIN
        return 0
    try:
        table, folded = _lower_table(walk, _PMD, pud, pudval, pudp)
    except TableReadError as e:
        if not recheck:
            # no ACTION_AGAIN path upwards (6.1): a hole below the PUD
            return _unreadable_below(walk, pud, e.paddr, start, end, walk._g.depth[2])
        record_unreadable(walk, pud, e.paddr)
        walk.action = ACTION_AGAIN
        return 0
    at_again = f.walk_action_at_again
    map_may_fail = f.pte_map_may_fail
    o = walk._o
    pmd_entry = o.pmd_entry
    pte_hole = o.pte_hole
    has_handler = o.pte_entry is not None
    has_install = o.install_pte is not None
    g = walk._g
    depth = g.depth[3]
    shift, index_mask = g.shift[_PMD], g.mask[_PMD]
    pmd_none = paging.pmd_none
    emulated = walk.overlay.values  # the entries this walk changed (WalkOverlay.get)
    vals = table.vals
    pmd, i = pud, pud_i
    for addr, next_ in _level_ranges(start, end, shift, folded):
        if not folded:
            pmd = (_PMD, addr >> shift << shift)
            i = (addr >> shift) & index_mask
        tries = [0, 0]
        while True:  # again:
            if at_again:
                walk.action = ACTION_SUBTREE  # as in Linux 7.2: before pmd_none()
            v = emulated.get(pmd, vals[i]) if emulated else vals[i]
            if pmd_none(v):
                if not has_install:
                    # _none_entry() without install_pte, inlined: most of a
                    # sparse range is none PMDs, each a pte_hole() call
                    if pte_hole is not None:
                        ret = pte_hole(addr, next_, depth, walk)
                        if ret is not _ZERO and ret is not None:
                            err = _cbret(ret, "pte_hole")
                            if err:
                                return err
                    break  # continue
                err, new = _none_entry(walk, pmd, addr, next_, depth)
                if err:
                    return err
                if new is None:
                    break  # continue
                v = new
            if not at_again:
                # as in Linux 6.1 and 6.12 before 6.12.115: after pmd_none(),
                # so a hole sees the previous entry's action
                walk.action = ACTION_SUBTREE
            v0 = v
            if pmd_entry is not None:
                err = _cbret(
                    pmd_entry(walk.entry(_PMD, pmd, v, table, i), addr, next_, walk), "pmd_entry"
                )
                if err:
                    return err
            if walk.action == ACTION_SUBTREE and (
                # only installing: do not split a present huge page
                has_handler
                or (has_install and not (paging.pmd_present(v) and paging.pmd_trans_huge(v)))
            ):
                if walk.vma_info is not None:
                    v = split_huge_pmd(walk, pmd, v)
                    # as in Linux 6.1: a PMD that is still not a table after
                    # the split goes back to again:
                    if not map_may_fail and pmd_trans_unstable(walk, pmd, v):
                        if _again(walk, pmd, v0, tries):
                            continue
                        break
                elif paging.pmd_leaf(v) or not paging.pmd_present(v):
                    break  # nothing to do
                err = walk_pte_range(pmd, v, addr, next_, walk)
                if err:
                    return err
                if not map_may_fail:
                    break  # as in Linux 6.1: walk->action is not looked at here
            if walk.action != ACTION_AGAIN or not _again(walk, pmd, v0, tries):
                break
    return 0


def walk_pud_range(
    p4d: Slot, p4dval: int, p4dp: _Table, p4d_i: int, start: int, end: int, walk: MMWalk
) -> int:
    """
    ``walk_pud_range()`` below the P4D *p4dval* (slot *p4d_i* of *p4dp*). A
    PUD folded at build time (3 levels) is the P4D slot itself; one folded
    at boot (arm64 16K) is the P4D's page (``p4d_to_folded_pud()``).
    """
    paging = walk.paging
    try:
        table, folded = _lower_table(walk, _PUD, p4d, p4dval, p4dp)
    except TableReadError as e:
        return _unreadable_below(walk, p4d, e.paddr, start, end, walk._g.depth[1])
    o = walk._o
    f = walk._f
    at_again = f.walk_action_at_again
    recheck = f.walk_pud_recheck
    pud_entry = o.pud_entry
    has_handler = o.pmd_entry is not None or o.pte_entry is not None
    has_install = o.install_pte is not None
    g = walk._g
    depth = g.depth[2]
    shift, index_mask = g.shift[_PUD], g.mask[_PUD]
    pud, i = p4d, p4d_i
    for addr, next_ in _level_ranges(start, end, shift, folded):
        if not folded:
            pud = (_PUD, addr >> shift << shift)
            i = (addr >> shift) & index_mask
        tries = [0, 0]
        while True:  # again:
            if at_again:
                walk.action = ACTION_SUBTREE  # as in Linux 7.2: before pud_none()
            v = walk.overlay.get(pud, table.vals[i])
            if paging.pud_none(v):
                err, new = _none_entry(walk, pud, addr, next_, depth)
                if err:
                    return err
                if new is None:
                    break  # continue
                v = new
            if not at_again:
                walk.action = ACTION_SUBTREE  # as in Linux 6.1: after pud_none()
            v0 = v
            if pud_entry is not None:
                err = _cbret(
                    pud_entry(walk.entry(_PUD, pud, v, table, i), addr, next_, walk), "pud_entry"
                )
                if err:
                    return err
            if walk.action == ACTION_SUBTREE and (
                has_handler
                or (has_install and not (paging.pud_present(v) and paging.pud_trans_huge(v)))
            ):
                if walk.vma_info is not None:
                    v = split_huge_pud(walk, pud, v)
                elif paging.pud_leaf(v) or not paging.pud_present(v):
                    break  # nothing to do
                if not recheck and paging.pud_none(v):
                    # as in Linux 6.1 (and 6.12 before 6.12.84): a PUD
                    # cleared by the split goes back to again: (also checked
                    # for no-VMA walks)
                    if _again(walk, pud, v0, tries):
                        continue
                    break
                err = walk_pmd_range(pud, v, table, i, addr, next_, walk)
                if err:
                    return err
                if not recheck:
                    break  # as in Linux 6.1: walk->action is not looked at here
            if walk.action != ACTION_AGAIN or not _again(walk, pud, v0, tries):
                break
    return 0


def _unreadable_below(walk: MMWalk, slot: Slot, paddr: int, addr: int, end: int, depth: int) -> int:
    """A PUD or P4D table could not be read: its parent reads as cleared, the range as a hole."""
    record_unreadable(walk, slot, paddr)
    if walk._o.pte_hole is not None:
        return _cbret(walk._o.pte_hole(addr, end, depth, walk), "pte_hole")
    return 0


def _p4d_none_or_clear_bad(walk: MMWalk, slot: Slot, v: int) -> bool:
    """``p4d_none_or_clear_bad()``: a bad entry is cleared (in the overlay) and counts as none."""
    if walk.paging.p4d_none(v):
        return True
    if walk.paging.p4d_bad(v):
        clear_bad(walk, slot, v)
        return True
    return False


def _pgd_none_or_clear_bad(walk: MMWalk, slot: Slot, v: int) -> bool:
    """``pgd_none_or_clear_bad()``."""
    if walk.paging.pgd_none(v):
        return True
    if walk.paging.pgd_bad(v):
        clear_bad(walk, slot, v)
        return True
    return False


def walk_p4d_range(
    pgd: Slot, pgdval: int, pgdp: _Table, pgd_i: int, start: int, end: int, walk: MMWalk
) -> int:
    """
    ``walk_p4d_range()`` below the PGD *pgdval* (slot *pgd_i* of *pgdp*). A
    P4D folded at build time (4 levels) is the PGD slot itself
    (``p4d_offset()``); one folded at boot (arm64 ``pgd_to_folded_p4d()``)
    is the PGD's page.
    """
    try:
        table, folded = _lower_table(walk, _P4D, pgd, pgdval, pgdp)
    except TableReadError as e:
        return _unreadable_below(walk, pgd, e.paddr, start, end, walk._g.depth[0])
    o = walk._o
    has_handler = o.pud_entry is not None or o.pmd_entry is not None or o.pte_entry is not None
    has_install = o.install_pte is not None
    g = walk._g
    depth = g.depth[1]
    shift, index_mask = g.shift[_P4D], g.mask[_P4D]
    p4d, i = pgd, pgd_i
    for addr, next_ in _level_ranges(start, end, shift, folded):
        if not folded:
            p4d = (_P4D, addr >> shift << shift)
            i = (addr >> shift) & index_mask
        v = walk.overlay.get(p4d, table.vals[i])
        if _p4d_none_or_clear_bad(walk, p4d, v):
            err, new = _none_entry(walk, p4d, addr, next_, depth)
            if err:
                return err
            if new is None:
                continue
            v = new
        # as in Linux 7.2: walk->action is not looked at after p4d_entry
        if o.p4d_entry is not None:
            err = _cbret(
                o.p4d_entry(Entry(v, table.kaddr(i), _P4D, walk), addr, next_, walk), "p4d_entry"
            )
            if err:
                return err
        if has_handler or has_install:
            err = walk_pud_range(p4d, v, table, i, addr, next_, walk)
            if err:
                return err
    return 0


def _top_table(walk: MMWalk) -> tuple[_Table, int]:
    """
    ``pgd_offset()``'s table: the page holding ``walk->pgd`` if set, else
    ``mm->pgd``, and the index of that pointer's slot in the page (a PGD
    smaller than a page is a ``pgd_cache`` object on arm64: 16 entries
    with 4K pages and 52-bit VAs). An unreadable page reads as none entries.
    """
    paging = walk.paging
    page_mask = ~(paging.page_size - 1)
    pgd = walk.pgd
    if pgd is None:
        # mm->pgd, read once per walk: it is set when the mm is made and
        # stays until it is freed, which no walk outlives (the kernel's
        # walker holds the mm)
        pgd = walk._mm_pgd
        if pgd is None:
            pgd = walk._mm_pgd = walk.backend.mm_pgd(walk.mm)
    pgd = int(pgd) & ULONG_MAX
    base = pgd & page_mask
    first = (pgd - base) >> 3
    try:
        paddr = walk.backend.pgd_phys(base) & page_mask
        walk.overlay.table_level.setdefault(paddr, 5)
        return _Table(walk.read_table(paddr), base), first
    except TableReadError as e:
        walk.overlay.error(_PGD, 0, e.paddr, "unreadable")
        return _Table((0,) * paging.ptrs_per(_PTE), base), first


def walk_pgd_range(start: int, end: int, walk: MMWalk) -> int:
    """``walk_pgd_range()``: from ``walk.pgd`` if set, else ``mm->pgd``."""
    o = walk._o
    has_handler = (
        o.p4d_entry is not None
        or o.pud_entry is not None
        or o.pmd_entry is not None
        or o.pte_entry is not None
    )
    has_install = o.install_pte is not None
    table, first = _top_table(walk)
    g = walk._g
    shift, index_mask = g.shift[_PGD], g.mask[_PGD]
    for addr, next_ in _level_ranges(start, end, shift, False):
        pgd = (_PGD, addr >> shift << shift)
        i = first + ((addr >> shift) & index_mask)
        v = walk.overlay.get(pgd, table.vals[i])
        if _pgd_none_or_clear_bad(walk, pgd, v):
            err, new = _none_entry(walk, pgd, addr, next_, 0)
            if err:
                return err
            if new is None:
                continue
            v = new
        # as in Linux 7.2: walk->action is not looked at after pgd_entry
        if o.pgd_entry is not None:
            err = _cbret(
                o.pgd_entry(Entry(v, table.kaddr(i), _PGD, walk), addr, next_, walk), "pgd_entry"
            )
            if err:
                return err
        if has_handler or has_install:
            err = walk_p4d_range(pgd, v, table, i, addr, next_, walk)
            if err:
                return err
    return 0


# -- hugetlb ----------------------------------------------------------------


def walk_hugetlb_range(addr: int, end: int, walk: MMWalk) -> int:
    """``walk_hugetlb_range()``: one ``hugetlb_entry`` per huge page (slot may be none)."""
    vma = walk.vma_info
    assert vma is not None
    shift = vma.hugetlb_shift
    sz = 1 << shift
    hmask = ~(sz - 1) & ULONG_MAX
    o = walk._o
    hugetlb_entry = o.hugetlb_entry
    assert hugetlb_entry is not None
    err = 0
    while True:
        next_ = min(((addr & hmask) + sz) & ULONG_MAX or end, end)
        slot = _hugetlb_walk(walk, addr & hmask, shift)
        if slot is not None:
            v, kaddr, level = slot
            err = _cbret(
                hugetlb_entry(Entry(v, kaddr, level, walk), hmask, addr, next_, walk),
                "hugetlb_entry",
            )
        elif o.pte_hole is not None:
            err = _cbret(o.pte_hole(addr, next_, -1, walk), "pte_hole")
        if err:
            break
        addr = next_
        if addr == end:
            break
    return err


def _hugetlb_walk(
    walk: MMWalk, addr: int, shift: int
) -> tuple[int, int | None, PageTableLevel] | None:
    """
    ``hugetlb_walk()``: ``huge_pte_offset()`` of the architecture (the
    generic one of ``mm/hugetlb.c``, or arm64's with its contiguous sizes),
    then ``huge_ptep_get()`` of the slot found: ``(value, kaddr, level)``,
    or None.
    """
    paging = walk.paging
    table, first = _top_table(walk)
    slot = _slot(_PGD, addr, paging)
    i = first + _index(_PGD, addr, paging)
    v = table.vals[i]
    if not paging.pgd_present(v):
        return None
    try:
        for level in (_P4D, _PUD):  # p4d_offset(), pud_offset()
            table, folded = _lower_table(walk, level, slot, v, table)
            if not folded:
                slot, i = _slot(level, addr, paging), _index(level, addr, paging)
                v = table.vals[i]
            if level == _P4D and not paging.p4d_present(v):
                return None
        if paging.general_hugetlb:
            if shift == paging.level_shift(_PUD):
                return v, table.kaddr(i), _PUD  # huge, non-present or none
            if not paging.pud_present(v):
                return None
            table, folded = _lower_table(walk, _PMD, slot, v, table)
            if not folded:
                i = _index(_PMD, addr, paging)
            return table.vals[i], table.kaddr(i), _PMD  # huge, non-present or none
        return _huge_pte_offset_arm64(walk, addr, shift, slot, v, table, i)
    except TableReadError as e:
        walk.overlay.error(_PUD, addr, e.paddr, "unreadable")
        return None


def _huge_pte_offset_arm64(
    walk: MMWalk, addr: int, shift: int, pud: Slot, v: int, table: _Table, i: int
) -> tuple[int, int | None, PageTableLevel] | None:
    """
    The PUD-down part of arm64's ``huge_pte_offset()``: a none entry ends the
    search except at the hugetlb size's own level, a leaf or non-present one
    is the answer at any level, and a contiguous-PTE size ends in the PTE
    table.
    """
    paging = walk.paging
    level, n = paging.hugetlb_level(shift)
    if shift != paging.level_shift(_PUD) and paging.pud_none(v):
        return None
    if paging.pud_leaf(v) or not paging.pud_present(v):
        return paging.huge_ptep_get(table.vals, i, _PUD), table.kaddr(i), _PUD
    table, folded = _lower_table(walk, _PMD, pud, v, table)
    pmd = pud
    if not folded:
        pmd, i = _slot(_PMD, addr, paging), _index(_PMD, addr, paging)
    v = table.vals[i]
    if level != _PMD and paging.pmd_none(v):
        return None
    if paging.pmd_leaf(v) or not paging.pmd_present(v):
        return paging.huge_ptep_get(table.vals, i, _PMD), table.kaddr(i), _PMD
    if level == _PTE and n > 1:  # pte_offset_huge() of the CONT_PTE block
        table = walk.table(pmd, v)
        i = _index(_PTE, addr, paging)
        return paging.huge_ptep_get(table.vals, i, _PTE), table.kaddr(i), _PTE
    return None


# -- VMA level --------------------------------------------------------------


def walk_page_test(start: int, end: int, walk: MMWalk) -> int:
    """``walk_page_test()``: 0 walk, >0 skip, <0 abort."""
    o = walk._o
    if o.test_walk is not None:
        return _cbret(o.test_walk(start, end, walk), "test_walk")
    vma = walk.vma_info
    assert vma is not None
    # as in Linux 7.2: VM_PFNMAP is skipped but reported through pte_hole(-1)
    # with walk.vma set; a positive pte_hole result only skips the VMA
    if vma.vm_flags & VM_PFNMAP or vma.pfnmap:
        err = 1
        if o.pte_hole is not None:
            err = _cbret(o.pte_hole(start, end, -1, walk), "pte_hole")
        return err if err else 1
    return 0


def _walk_page_range(start: int, end: int, walk: MMWalk) -> int:
    """``__walk_page_range()``: one VMA."""
    o = walk._o
    vma = walk.vma_info
    assert vma is not None
    is_hugetlb = vma.hugetlb_shift != 0
    if o.install_pte is not None and is_hugetlb:
        return -errno.EINVAL
    if o.pre_vma is not None:
        err = _cbret(o.pre_vma(start, end, walk), "pre_vma")
        if err:
            return err
    err = 0
    if is_hugetlb:
        if o.hugetlb_entry is not None:
            err = walk_hugetlb_range(start, end, walk)
    else:
        err = walk_pgd_range(start, end, walk)
    # as in Linux 7.2: post_vma runs even when the walk failed
    if o.post_vma is not None:
        o.post_vma(walk)
    return err


def process_mm_walk_lock(mm: Any, walk_lock: Any, features: KernelFeatures | None = None) -> None:
    """
    ``process_mm_walk_lock()``: we take no locks; only validate the mode.
    Kernels without ``walk_lock`` (6.1) have nothing to validate.
    """
    _check_lock(walk_lock, features)


def process_vma_walk_lock(vma: Any, walk_lock: Any, features: KernelFeatures | None = None) -> None:
    """``process_vma_walk_lock()``: we take no locks; only validate the mode."""
    _check_lock(walk_lock, features)


def _check_lock(walk_lock: Any, features: KernelFeatures | None) -> None:
    if features is not None and not features.walk_lock:
        return  # as in Linux 6.1: no enum page_walk_lock, mmap_assert_locked() only
    if walk_lock is PGWALK_RDLOCK:
        return  # the default, valid everywhere (skips the enum lookup)
    try:
        mode = PageWalkLock(walk_lock)
    except ValueError:
        raise ValueError(f"invalid walk_lock {walk_lock!r}") from None
    if (
        mode is PGWALK_VMA_RDLOCK_VERIFY
        and features is not None
        and not features.walk_lock_vma_rdlock_verify
    ):
        raise ValueError(
            f"invalid walk_lock {walk_lock!r}: no PGWALK_VMA_RDLOCK_VERIFY in Linux {features.kernel}"
        )


def check_ops_safe(ops: Any) -> bool:
    """``check_ops_safe()``: public entry points refuse ``install_pte``."""
    return getattr(ops, "install_pte", None) is None


def _check_ops(ops: Any, features: KernelFeatures) -> bool:
    """
    What the public entry points do with *ops* before anything else: an
    ``install_pte`` on a kernel without the member raises
    :class:`~livewalk.kernel.NotInKernelError`; where it exists,
    ``check_ops_safe()``. Returns False for ``-EINVAL``.
    """
    if check_ops_safe(ops):
        return True
    features.require("mm_walk_ops.install_pte")
    return False


def _features_of(obj: Any, backend: Any = None) -> KernelFeatures | None:
    """The target's features, or None when *obj* is None (no mm: ``-EINVAL`` comes first)."""
    if backend is not None:
        return backend.features  # type: ignore[no-any-return]
    if obj is None:
        return None
    return backend_for_mm(obj).features


def walk_page_range_mm_unsafe(
    mm: Any,
    start: int,
    end: int,
    ops: Any,
    private: Any = None,
    *,
    walks: list[MMWalk] | None = None,
) -> int:
    """
    ``walk_page_range_mm_unsafe()`` (``mm/internal.h``, Linux 7.2): like
    :func:`walk_page_range` but accepts ``install_pte`` (recorded in
    ``walk.installed``, never written).

    :raises NotInKernelError: on kernels without it (6.12, 6.1)
    """
    f = _features_of(mm)
    if f is not None:
        f.require("walk_page_range_mm_unsafe")
    return _walk_page_range_mm(mm, start, end, ops, private, walks)


def _walk_page_range_mm(
    mm: Any, start: int, end: int, ops: Any, private: Any, walks: list[MMWalk] | None,
    backend: Any = None,
) -> int:
    """The body of ``walk_page_range()`` (``walk_page_range_mm_unsafe()`` in 7.2)."""
    start &= ULONG_MAX
    end &= ULONG_MAX
    if start >= end:
        return -errno.EINVAL
    if mm is None:
        return -errno.EINVAL
    if backend is None:
        backend = backend_for_mm(mm)
    walk = MMWalk(ops, mm, backend, private=private)
    if walks is not None:
        walks.append(walk)
    return _walk_mm(walk, start, end)


def _walk_mm(walk: MMWalk, start: int, end: int) -> int:
    mm = walk.mm
    backend = walk.backend
    f = walk._f
    process_mm_walk_lock(mm, walk._o.walk_lock, f)
    o = walk._o
    err = 0
    vma = backend.find_vma(mm, start)
    while True:
        if vma is None:  # after the last VMA
            walk._set_vma(None)
            next_ = end
            if o.pte_hole is not None:
                err = _cbret(o.pte_hole(start, next_, -1, walk), "pte_hole")
        elif start < vma.vm_start:  # outside a VMA
            walk._set_vma(None)
            next_ = min(end, vma.vm_start)
            if o.pte_hole is not None:
                err = _cbret(o.pte_hole(start, next_, -1, walk), "pte_hole")
        else:  # inside a VMA
            process_vma_walk_lock(vma, o.walk_lock, f)
            walk._set_vma(vma)
            next_ = min(end, vma.vm_end)
            # as in Linux 7.2: the next VMA is looked up before the callbacks
            # (not when the walk ends in this one: nothing would use it)
            vma = backend.find_vma(mm, vma.vm_end) if vma.vm_end < end else None
            err = walk_page_test(start, next_, walk)
            if err > 0:
                err = 0
                start = next_
                if start < end:
                    continue
                break
            if err < 0:
                break
            err = _walk_page_range(start, next_, walk)
        if err:
            break
        start = next_
        if not start < end:
            break
    return err


def walk_page_range(
    mm: Any,
    start: int,
    end: int,
    ops: Any,
    private: Any = None,
    *,
    walks: list[MMWalk] | None = None,
) -> int:
    """
    ``walk_page_range()``: walk [*start*, *end*) of *mm*, VMAs and the holes
    between them.

    :param mm: the mm (drgn ``struct mm_struct *`` or a synthetic mm)
    :param ops: :class:`MMWalkOps` (or any object with those attributes)
    :return: 0, a callback's positive stop value, or a negative errno
        (``-EINVAL`` for an empty range, no mm, or ``install_pte``)
    :raises NotInKernelError: ``install_pte`` on a kernel without it
    """
    backend = None if mm is None else backend_for_mm(mm)
    if backend is not None:
        if not _check_ops(ops, backend.features):
            return -errno.EINVAL
    elif not check_ops_safe(ops):
        return -errno.EINVAL
    return _walk_page_range_mm(mm, start, end, ops, private, walks, backend)


def _resolve_vma(vma: Any, backend: Any = None) -> tuple[VMA, Any]:
    if isinstance(vma, VMA):
        if backend is None:
            backend = backend_for_mm(vma.obj)
        return vma, backend
    if backend is None:
        backend = backend_for_mm(vma)
    return backend.vma_snapshot(vma), backend


def walk_page_range_vma_unsafe(
    vma: Any,
    start: int,
    end: int,
    ops: Any,
    private: Any = None,
    *,
    backend: Any = None,
    walks: list[MMWalk] | None = None,
) -> int:
    """
    ``walk_page_range_vma_unsafe()`` (Linux 7.2): one VMA, ``install_pte``
    allowed.

    :raises NotInKernelError: on kernels without it (6.12, 6.1)
    """
    info, backend = _resolve_vma(vma, backend)
    backend.features.require("walk_page_range_vma_unsafe")
    return _walk_page_range_vma(info, backend, start, end, ops, private, walks)


def _walk_page_range_vma(
    info: VMA, backend: Any, start: int, end: int, ops: Any, private: Any, walks: list[MMWalk] | None
) -> int:
    start &= ULONG_MAX
    end &= ULONG_MAX
    mm = backend.vma_mm(info)
    if start >= end or mm is None:
        return -errno.EINVAL
    if start < info.vm_start or end > info.vm_end:
        return -errno.EINVAL
    walk = MMWalk(ops, mm, backend, vma=info, private=private)
    if walks is not None:
        walks.append(walk)
    process_mm_walk_lock(mm, walk._o.walk_lock, walk._f)
    process_vma_walk_lock(info, walk._o.walk_lock, walk._f)
    return _walk_page_range(start, end, walk)


def walk_page_range_vma(
    vma: Any,
    start: int,
    end: int,
    ops: Any,
    private: Any = None,
    *,
    backend: Any = None,
    walks: list[MMWalk] | None = None,
) -> int:
    """
    ``walk_page_range_vma()``: [*start*, *end*) inside one VMA. No
    ``test_walk`` and no VM_PFNMAP skip, as in the kernel.

    :raises NotInKernelError: on 6.1 before 6.1.161 (a stable backport)
    """
    info, backend = _resolve_vma(vma, backend)
    f = backend.features
    f.require("walk_page_range_vma")
    if not _check_ops(ops, f):
        return -errno.EINVAL
    return _walk_page_range_vma(info, backend, start, end, ops, private, walks)


def walk_page_vma(
    vma: Any,
    ops: Any,
    private: Any = None,
    *,
    backend: Any = None,
    walks: list[MMWalk] | None = None,
) -> int:
    """
    ``walk_page_vma()``: the whole VMA. ``test_walk`` is not called, except
    on kernels where ``walk_page_vma()`` still runs ``walk_page_test()``
    (6.1, :attr:`~livewalk.kernel.KernelFeatures.walk_page_vma_tests`):
    there ``test_walk`` decides, and a ``VM_PFNMAP`` VMA gets at most one
    ``pte_hole(vm_start, vm_end, -1)``.
    """
    info, backend = _resolve_vma(vma, backend)
    f = backend.features
    mm = backend.vma_mm(info)
    if f.walk_page_vma_tests:
        if mm is None:
            return -errno.EINVAL
        if not _check_ops(ops, f):  # raises: no install_pte before 7.x
            return -errno.EINVAL
        walk = MMWalk(ops, mm, backend, vma=info, private=private)
        if walks is not None:
            walks.append(walk)
        # as in Linux 6.1 mm/pagewalk.c walk_page_vma(): walk_page_test(),
        # a positive result skips the VMA with 0
        err = walk_page_test(info.vm_start, info.vm_end, walk)
        if err > 0:
            return 0
        if err < 0:
            return err
        return _walk_page_range(info.vm_start, info.vm_end, walk)
    if mm is None:
        return -errno.EINVAL
    if not _check_ops(ops, f):
        return -errno.EINVAL
    walk = MMWalk(ops, mm, backend, vma=info, private=private)
    if walks is not None:
        walks.append(walk)
    process_mm_walk_lock(mm, walk._o.walk_lock, f)
    process_vma_walk_lock(info, walk._o.walk_lock, f)
    return _walk_page_range(info.vm_start, info.vm_end, walk)


def walk_page_mapping(
    mapping: Any,
    first_index: int,
    nr: int,
    ops: Any,
    private: Any = None,
    *,
    backend: Any = None,
    walks: list[MMWalk] | None = None,
) -> int:
    """
    ``walk_page_mapping()``: every VMA mapping file pages [*first_index*,
    *first_index* + *nr*) of *mapping*, clipped to that range. ``test_walk``
    sees the whole VMA, and a positive result stops the walk with 0.
    """
    if backend is None:
        backend = backend_for_mm(mapping)
    if not _check_ops(ops, backend.features):
        return -errno.EINVAL
    first_index &= ULONG_MAX
    nr &= ULONG_MAX
    walk: MMWalk | None = None
    err = 0
    for vma in backend.mapping_vmas(mapping, first_index, (first_index + nr - 1) & ULONG_MAX):
        vba = vma.vm_pgoff
        shift = backend.paging.page_shift
        vea = (vba + ((vma.vm_end - vma.vm_start) >> shift)) & ULONG_MAX
        cba = max(first_index, vba)
        cea = min((first_index + nr) & ULONG_MAX, vea)
        start_addr = ((((cba - vba) & ULONG_MAX) << shift) + vma.vm_start) & ULONG_MAX
        end_addr = ((((cea - vba) & ULONG_MAX) << shift) + vma.vm_start) & ULONG_MAX
        if start_addr >= end_addr:
            continue
        mm = backend.vma_mm(vma)
        if walk is None:
            walk = MMWalk(ops, mm, backend, vma=vma, private=private)
            if walks is not None:
                walks.append(walk)
        else:
            walk._set_vma(vma)
            if mm is not walk.mm:
                walk.mm = mm
                walk._mm_pgd = None  # read again for this mm
        err = walk_page_test(vma.vm_start, vma.vm_end, walk)
        if err > 0:
            err = 0
            break
        if err < 0:
            break
        err = _walk_page_range(start_addr, end_addr, walk)
        if err:
            break
    return err


def _pgd_kaddr(pgd: Any) -> int | None:
    if pgd is None:
        return None
    if isinstance(pgd, int):
        return pgd & ULONG_MAX
    return int(pgd) & ULONG_MAX  # an address, or a backend's pointer object


def _kernel_backend(backend: Any, pgd: Any, mm: Any) -> Any:
    if backend is not None:
        return backend
    if mm is not None:
        return backend_for_mm(mm)
    if pgd is not None and not isinstance(pgd, int):
        return backend_for_mm(pgd)
    raise TypeError("a kernel walk needs backend= (or init_mm=) to know what to read")


def walk_kernel_page_table_range_lockless(
    start: int,
    end: int,
    ops: Any,
    pgd: Any = None,
    private: Any = None,
    *,
    backend: Any = None,
    init_mm: Any = None,
    walks: list[MMWalk] | None = None,
) -> int:
    """
    ``walk_kernel_page_table_range_lockless()`` (Linux 7.2): a no-VMA walk
    of ``init_mm`` (or of the top-level table *pgd*, a kernel virtual
    address or drgn pointer). Give the backend with ``backend=``, or
    ``init_mm=``.

    :raises NotInKernelError: on kernels without it (6.12, 6.1)
    """
    backend = _kernel_backend(backend, pgd, init_mm)
    backend.features.require("walk_kernel_page_table_range_lockless")
    return _walk_kernel(start, end, ops, pgd, private, backend, walks)


def _walk_kernel(
    start: int, end: int, ops: Any, pgd: Any, private: Any, backend: Any, walks: list[MMWalk] | None
) -> int:
    start &= ULONG_MAX
    end &= ULONG_MAX
    walk = MMWalk(
        ops, backend.init_mm(), backend, pgd=_pgd_kaddr(pgd), no_vma=True, private=private
    )
    if start >= end:
        return -errno.EINVAL
    if not _check_ops(ops, walk._f):
        return -errno.EINVAL
    if walks is not None:
        walks.append(walk)
    return walk_pgd_range(start, end, walk)


def walk_kernel_page_table_range(
    start: int,
    end: int,
    ops: Any,
    pgd: Any = None,
    private: Any = None,
    *,
    backend: Any = None,
    init_mm: Any = None,
    walks: list[MMWalk] | None = None,
) -> int:
    """
    ``walk_kernel_page_table_range()`` (6.12.105 and later): a no-VMA walk
    of ``init_mm`` (the lock assertion is a no-op).

    :raises NotInKernelError: on 6.1 (use :func:`walk_page_range_novma`)
    """
    backend = _kernel_backend(backend, pgd, init_mm)
    backend.features.require("walk_kernel_page_table_range")
    return _walk_kernel(start, end, ops, pgd, private, backend, walks)


def walk_page_range_debug(
    mm: Any,
    start: int,
    end: int,
    ops: Any,
    pgd: Any = None,
    private: Any = None,
    *,
    walks: list[MMWalk] | None = None,
) -> int:
    """
    ``walk_page_range_debug()`` (ptdump; 6.12.105 and later): a no-VMA walk
    of *mm*'s tables, or of *pgd* if given. There is no redirect for
    ``init_mm`` and no NULL-mm check.

    :raises NotInKernelError: on 6.1 (use :func:`walk_page_range_novma`)
    """
    backend = backend_for_mm(mm)
    f = backend.features
    f.require("walk_page_range_debug")
    start &= ULONG_MAX
    end &= ULONG_MAX
    if start >= end:
        return -errno.EINVAL
    if not _check_ops(ops, f):
        return -errno.EINVAL
    walk = MMWalk(ops, mm, backend, pgd=_pgd_kaddr(pgd), no_vma=True, private=private)
    if walks is not None:
        walks.append(walk)
    return walk_pgd_range(start, end, walk)


def walk_page_range_novma(
    mm: Any,
    start: int,
    end: int,
    ops: Any,
    pgd: Any = None,
    private: Any = None,
    *,
    walks: list[MMWalk] | None = None,
) -> int:
    """
    ``walk_page_range_novma()`` (6.1 to 6.12.104; ptdump and other kernel or
    firmware walks): a no-VMA walk of *mm*'s tables, or of *pgd* if given.

    :return: ``-EINVAL`` for an empty range or no mm
    :raises NotInKernelError: on kernels where it was split into
        :func:`walk_kernel_page_table_range` and :func:`walk_page_range_debug`
    """
    if mm is None:
        return -errno.EINVAL
    backend = backend_for_mm(mm)
    f = backend.features
    f.require("walk_page_range_novma")
    _check_ops(ops, f)  # no install_pte on these kernels: raises
    start &= ULONG_MAX
    end &= ULONG_MAX
    if start >= end:
        return -errno.EINVAL
    walk = MMWalk(ops, mm, backend, pgd=_pgd_kaddr(pgd), no_vma=True, private=private)
    if walks is not None:
        walks.append(walk)
    return walk_pgd_range(start, end, walk)
