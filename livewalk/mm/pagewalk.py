# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Page-table walker
-----------------

A reimplementation of Linux 7.2's ``mm/pagewalk.c`` with the API of
``include/linux/pagewalk.h``: the same entry points, callbacks, argument
order, return conventions and quirks, over page tables read through a
:class:`~livewalk.backend.PageTableBackend`. It is read-only: where the kernel
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

Policies where a read-only snapshot cannot do what the kernel does
=================================================================

* **THP splits** (``split_huge_pmd``/``split_huge_pud``, called when a
  walk with a VMA descends below a huge entry, errata §1.7). The walker
  records the result the kernel's split would have produced in the walk's
  overlay and goes on as the kernel does:

  - anonymous VMA, present THP PMD: a PTE table of 512 present PTEs with
    consecutive PFNs. Flags: ``vm_page_prot`` computed from ``vm_flags``
    (x86 ``protection_map``) plus write/young/dirty/soft-dirty/uffd-wp taken
    from the PMD, as ``__split_huge_pmd_locked`` does (pkeys and memory
    encryption bits are not reproduced);
  - anonymous VMA, huge zero PMD (``is_huge_zero_pmd``; with a backend that
    does not give ``huge_zero_pfn``, a special PSE PMD): 512 special PTEs
    mapping the zero page (``backend.zero_pfn`` if known, else PFN 0),
    keeping uffd-wp;
  - anonymous VMA, PMD migration entry: 512 migration PTEs (same kind, PFN +
    i, young/dirty/soft-dirty/uffd-wp kept); device-private PMD: 512
    device-private PTEs;
  - any other VMA (file, shmem, DAX, PFN maps; :attr:`VMA.anonymous` false):
    the PMD is zapped, so ``walk_pte_range`` fails, ``ACTION_AGAIN`` retries
    the PMD, which is now none: ``pmd_entry`` once, then ``pte_hole(depth
    3)``;
  - other non-present PMDs are not converted (the kernel would then loop on
    ``ACTION_AGAIN``; see the retry cap);
  - a trans-huge (PSE) PUD is cleared: ``pud_entry`` once, then
    ``pte_hole(depth 2)``.

  Entries of an emulated table have ``kaddr=None``. The overlay lives for
  one walk (the kernel's split persists; a second walk sees the original
  snapshot again). ``walk.splits`` lists ``(level, addr, what)`` for every
  emulated split.

* **ACTION_AGAIN** retries: a retry after which the entry changed (in the
  overlay: split, zap, bad entry cleared) is free, as it is what the kernel
  does; a retry of an unchanged entry is allowed :data:`AGAIN_RETRY_LIMIT`
  times (1) per entry, after which the walker behaves as if the callback had
  set :data:`ACTION_CONTINUE` (no descent, no hole), appends an item to
  ``walk.errors`` and counts it in ``walk.again_capped``. A walk over a
  static snapshot therefore always ends.

* **Bad entries** (``pgd_bad``/``p4d_bad`` in ``p?d_none_or_clear_bad``,
  ``pmd_bad`` in ``pte_offset_map``): the kernel clears the entry and logs;
  the walker treats it as cleared (a hole at that depth, through the
  kernel's own path) in its overlay and appends ``(level, addr, value,
  reason)`` to ``walk.errors``. ``pud_bad`` is never checked by the kernel's
  walker, so not here either.

* **Unreadable tables** (:class:`~livewalk.backend.TableReadError`, or not
  512 entries): the entry pointing to it is treated as a bad entry that was
  cleared. For a PTE or PMD table this takes the kernel's ``ACTION_AGAIN``
  path: the parent's ``pmd_entry``/``pud_entry`` has been called once, then
  ``pte_hole(addr, next, 3 or 2)``. For a PUD or P4D table (children of P4D
  and PGD entries, whose loops have no retry) the walker calls
  ``pte_hole(addr, next, depth of the parent)`` after the parent's
  ``p?d_entry``. An unreadable top-level table reads as 512 none entries.
  All are recorded in ``walk.errors``; nothing raises.

* **install_pte** (only through :func:`walk_page_range_mm_unsafe` and
  :func:`walk_page_range_vma_unsafe`; the public entry points return
  ``-EINVAL`` as in the kernel): a missing table is emulated as an empty
  table (``__p?d_alloc``; the new entry reads as ``_PAGE_TABLE`` with PFN 0
  and ``kaddr=None`` below it), so all levels are walked; ``install_pte(addr,
  next, ptep, walk)`` is called for each none PTE with a :class:`PTEOut`
  whose ``value`` the callback sets, and the result is recorded in
  ``walk.installed`` (``{addr: value}``) instead of being written.

* Locks are never taken: ``walk_lock`` is only validated.

* A range that runs past the end of a top-level table (possible only with
  unusual kernel walks) wraps around its index instead of reading past the
  page as the kernel would; a PTE loop with ``end < PAGE_SIZE`` stops at the
  end of its table.
"""

from __future__ import annotations

import enum
import errno
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from livewalk.arch.x86.pgtable import (
    _PAGE_ACCESSED,
    _PAGE_DIRTY,
    _PAGE_NX,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_PSE,
    _PAGE_RW,
    _PAGE_SAVED_DIRTY,
    _PAGE_SOFT_DIRTY,
    _PAGE_SPECIAL,
    _PAGE_SWP_SOFT_DIRTY,
    _PAGE_SWP_UFFD_WP,
    _PAGE_TABLE,
    _PAGE_UFFD_WP,
    _PAGE_USER,
    M64,
    P4D_SHIFT,
    PAGE_MASK,
    PAGE_SHIFT,
    PAGE_SIZE,
    PMD_SHIFT,
    PUD_SHIFT,
    PageTableLevel,
    X86Paging,
    decode_swap,
    mk_pte,
    p4d_bad,
    pgd_bad,
    pgd_none,
    pgd_present,
    pmd_bad,
    pmd_pfn,
    swp_entry_to_pte,
)
from livewalk.backend import VMA, TableReadError, backend_for_mm
from livewalk.mm.entry import Entry, EntryContext, _EmulatedEntry

__all__ = (
    "MM_WALK_CALLBACKS",
    "ACTION_AGAIN",
    "ACTION_CONTINUE",
    "ACTION_SUBTREE",
    "AGAIN_RETRY_LIMIT",
    "MMWalk",
    "MMWalkOps",
    "PGWALK_RDLOCK",
    "PGWALK_VMA_RDLOCK_VERIFY",
    "PGWALK_WRLOCK",
    "PGWALK_WRLOCK_VERIFY",
    "PTEOut",
    "PageWalkAction",
    "PageWalkLock",
    "VM_PFNMAP",
    "WalkError",
    "pgd_addr_end",
    "p4d_addr_end",
    "pud_addr_end",
    "pmd_addr_end",
    "real_depth",
    "walk_kernel_page_table_range",
    "walk_kernel_page_table_range_lockless",
    "walk_page_mapping",
    "walk_page_range",
    "walk_page_range_debug",
    "walk_page_range_mm_unsafe",
    "walk_page_range_vma",
    "walk_page_range_vma_unsafe",
    "walk_page_vma",
)


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

#: Retries of an unchanged entry after ``ACTION_AGAIN`` before the walker
#: moves on (see the module documentation).
AGAIN_RETRY_LIMIT = 1
# Hard bound on retries of one entry, changed or not (never reached by the
# emulation, which changes an entry at most twice).
_AGAIN_HARD_LIMIT = 8

#: ``VM_PFNMAP`` (``include/linux/mm.h``)
VM_PFNMAP = 0x00000400
VM_READ = 0x1
VM_WRITE = 0x2
VM_EXEC = 0x4
VM_SHARED = 0x8

#: The callbacks of ``struct mm_walk_ops``, in declaration order
#: (``include/linux/pagewalk.h``).
MM_WALK_CALLBACKS = _CALLBACKS = (
    "pgd_entry",
    "p4d_entry",
    "pud_entry",
    "pmd_entry",
    "pte_entry",
    "pte_hole",
    "hugetlb_entry",
    "test_walk",
    "pre_vma",
    "post_vma",
    "install_pte",
)


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
        for name in _CALLBACKS:
            setattr(self, name, getattr(ops, name, None))
        self.walk_lock = getattr(ops, "walk_lock", PGWALK_RDLOCK)


class WalkError(NamedTuple):
    """
    Something the walker met that the kernel would have changed or that it
    could not read (see the module documentation).

    :ivar level: :class:`~livewalk.arch.x86.pgtable.PageTableLevel` of the entry (for an
        unreadable table, of the entry pointing to it)
    :ivar addr: first address the entry covers
    :ivar value: the entry's raw value, or the table's physical address
    :ivar reason: ``"bad"``, ``"unreadable"``, ``"again-limit"`` or
        ``"loop"`` (a table reached from two levels: corrupted tables)
    """

    level: int
    addr: int
    value: int
    reason: str


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
    :ivar paging: the backend's :class:`~livewalk.arch.x86.pgtable.X86Paging`
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
        "errors",
        "installed",
        "splits",
        "again_capped",
        "_o",
        "_overlay",
        "_children",
        "_kernel_pte",
        "_task_size",
        "_pfn_mask",
        "_table_level",
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
        self.errors: list[WalkError] = []
        self.installed: dict[int, int] = {}
        self.splits: list[tuple[int, int, str]] = []
        self.again_capped = 0
        self._o = _Ops(ops)
        # (level, first address of the slot) -> emulated value
        self._overlay: dict[tuple[int, int], int] = {}
        # (level, first address of the slot) -> emulated next-level table
        self._children: dict[tuple[int, int], Sequence[int]] = {}
        self._kernel_pte: bool | None = None
        self._task_size = self.paging.task_size_max
        self._pfn_mask = self.paging.physical_mask & PAGE_MASK
        # physical address of each table read -> level of the entry that
        # pointed to it (5 for the top-level table): a table reached from
        # two levels is a loop (corrupted tables; livewalk.consistency)
        self._table_level: dict[int, int] = {}

    def _set_vma(self, vma: VMA | None) -> None:
        self.vma_info = vma
        self.vma = vma.obj if vma is not None else None

    def __repr__(self) -> str:
        return f"MMWalk(mm={self.mm!r}, vma={self.vma!r}, action={int(self.action)}, no_vma={self.no_vma})"

    def _error(self, level: int, addr: int, value: int, reason: str) -> None:
        errors = self.errors
        if reason == "unreadable" and errors and errors[-1].reason == "loop" and errors[-1].value == value:
            return  # already reported as a loop by _child()
        errors.append(WalkError(PageTableLevel(level), addr, value, reason))

    def _child(self, key: tuple[int, int], value: int) -> tuple[Sequence[int], int | None]:
        """The table an entry points to, and its kernel address (None if emulated)."""
        ch = self._children.get(key) if self._children else None
        if ch is not None:
            return ch, None
        paddr = value & self._pfn_mask
        seen = self._table_level.setdefault(paddr, key[0])
        if seen != key[0]:
            # a page used as a table at two levels: only corrupted tables do
            # this; refuse to descend (the walk stays finite and honest)
            self._error(key[0], key[1], paddr, "loop")
            raise TableReadError(paddr, f"page-table loop: table {paddr:#x} reached at two levels")
        return self.read_table(paddr), (self.paging.page_offset + paddr) & M64


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
    boundary = ((addr + size) & ~(size - 1)) & M64
    return boundary if ((boundary - 1) & M64) < ((end - 1) & M64) else end


def pgd_addr_end(addr: int, end: int, paging: X86Paging) -> int:
    """``pgd_addr_end()``: unsigned 64-bit, so a boundary that wraps to 0 gives *end*."""
    return _addr_end(addr, end, 1 << paging.pgdir_shift)


def p4d_addr_end(addr: int, end: int) -> int:
    """``p4d_addr_end()``."""
    return _addr_end(addr, end, 1 << P4D_SHIFT)


def pud_addr_end(addr: int, end: int) -> int:
    """``pud_addr_end()``.

    >>> hex(pud_addr_end(0xFFFFFFFFC0000000, 0xFFFFFFFFFFFFFFFF))
    '0xffffffffffffffff'
    """
    return _addr_end(addr, end, 1 << PUD_SHIFT)


def pmd_addr_end(addr: int, end: int) -> int:
    """``pmd_addr_end()``."""
    return _addr_end(addr, end, 1 << PMD_SHIFT)


def real_depth(depth: int, paging: X86Paging) -> int:
    """
    ``real_depth()``: renumber a hole depth past folded levels. On x86_64
    only the P4D folds (4-level paging), so depth 1 becomes 0 there.
    """
    if depth == 1 and paging.ptrs_per_p4d == 1:
        depth = 0
    return depth


# -- the level loops, as in Linux 7.2 mm/pagewalk.c -------------------------


def walk_pte_range_inner(
    vals: Sequence[int], base: int | None, addr: int, end: int, walk: MMWalk
) -> int:
    """``walk_pte_range_inner()``: every slot in [addr, end), none ones included."""
    o = walk._o
    pte_entry = o.pte_entry
    install_pte = o.install_pte
    i = (addr >> PAGE_SHIFT) & 511
    last = (end - PAGE_SIZE) & M64
    # as in Linux 7.2: stop once addr >= end - PAGE_SIZE (unsigned)
    count = 1 if addr >= last else ((last - addr + PAGE_SIZE - 1) >> PAGE_SHIFT) + 1
    if count > 512 - i:
        count = 512 - i
    err: Any = 0
    E = Entry
    if install_pte is None and addr + count * PAGE_SIZE > M64:
        # the last page of the address space: next wraps to 0 (unsigned long)
        kaddr0 = None if base is None else base + 8 * i
        for n, v in enumerate(vals[i : i + count]):
            k = None if kaddr0 is None else kaddr0 + 8 * n
            if pte_entry is not None:
                err = _cbret(pte_entry(E(v, k, 0, walk), addr, (addr + PAGE_SIZE) & M64, walk), "pte_entry")
                if err:
                    return err  # type: ignore[no-any-return]
            addr += PAGE_SIZE
        return 0
    if install_pte is None:
        if pte_entry is None:
            return 0
        if base is None:
            for v in vals[i : i + count]:
                err = pte_entry(E(v, None, 0, walk), addr, addr + PAGE_SIZE, walk)
                if err is not None and (err or err.__class__ is not int):
                    err = _cbret(err, "pte_entry")
                    if err:
                        return err  # type: ignore[no-any-return]
                addr += PAGE_SIZE
            return 0
        kaddr = base + 8 * i
        for v in vals[i : i + count]:
            err = pte_entry(E(v, kaddr, 0, walk), addr, addr + PAGE_SIZE, walk)
            if err is not None and (err or err.__class__ is not int):
                err = _cbret(err, "pte_entry")
                if err:
                    return err  # type: ignore[no-any-return]
            addr += PAGE_SIZE
            kaddr += 8
        return 0
    # install_pte set: none slots go to install_pte, the others to pte_entry
    ikaddr: int | None = None if base is None else base + 8 * i
    for v in vals[i : i + count]:
        if not (v & ~(_PAGE_ACCESSED | _PAGE_DIRTY)):
            ptep = PTEOut()
            err = _cbret(install_pte(addr, addr + PAGE_SIZE, ptep, walk), "install_pte")
            if err:
                return err  # type: ignore[no-any-return]
            # set_pte_at() on a snapshot: record instead of writing
            walk.installed[addr] = int(ptep.value) & M64
        elif pte_entry is not None:
            err = _cbret(pte_entry(E(v, ikaddr, 0, walk), addr, addr + PAGE_SIZE, walk), "pte_entry")
            if err:
                return err  # type: ignore[no-any-return]
        addr += PAGE_SIZE
        if ikaddr is not None:
            ikaddr += 8
    return 0


def _pte_offset_map_ok(walk: MMWalk, key: tuple[int, int], pmdval: int, addr: int) -> bool:
    """``__pte_offset_map()``'s checks; a bad PMD is cleared (in the overlay)."""
    if not (pmdval & ~(_PAGE_ACCESSED | _PAGE_DIRTY)):
        return False
    if not pmdval & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE):
        return False
    if pmdval & _PAGE_PSE:
        return False
    if pmd_bad(pmdval, walk.paging):
        walk._error(1, addr & ~((1 << PMD_SHIFT) - 1), pmdval, "bad")
        walk._overlay[key] = 0
        return False
    return True


def walk_pte_range(key: tuple[int, int], pmdval: int, addr: int, end: int, walk: MMWalk) -> int:
    """``walk_pte_range()``: map the PTE table (or fail and ask for ACTION_AGAIN)."""
    if walk.no_vma:
        if walk._kernel_pte is None:
            walk._kernel_pte = bool(walk.backend.is_init_mm(walk.mm))
        # as in Linux 7.2: pte_offset_kernel() (no checks) for init_mm or
        # addresses at or above TASK_SIZE, pte_offset_map() otherwise
        ok = walk._kernel_pte or addr >= walk._task_size or _pte_offset_map_ok(walk, key, pmdval, addr)
    else:
        ok = _pte_offset_map_ok(walk, key, pmdval, addr)
    err = 0
    if ok:
        try:
            vals, base = walk._child(key, pmdval)
        except TableReadError as e:
            walk._error(1, addr & ~((1 << PMD_SHIFT) - 1), getattr(e, "paddr", pmdval), "unreadable")
            walk._overlay[key] = 0
            ok = False
        else:
            err = walk_pte_range_inner(vals, base, addr, end, walk)
    if not ok:
        walk.action = ACTION_AGAIN
    return err


def _again_ok(walk: MMWalk, level: int, addr: int, changed: bool, tries: list[int]) -> bool:
    """Decide whether an ACTION_AGAIN retry may happen (see the module docs)."""
    tries[1] += 1
    if not changed:
        tries[0] += 1
    if tries[0] > AGAIN_RETRY_LIMIT or tries[1] > _AGAIN_HARD_LIMIT:
        walk.again_capped += 1
        walk._error(level, addr, 0, "again-limit")
        # behave as if ACTION_CONTINUE had been asked for (so no stale
        # ACTION_AGAIN reaches the level above)
        walk.action = ACTION_CONTINUE
        return False
    return True


def walk_pmd_range(pud_key: tuple[int, int], pud_raw: int, addr: int, end: int, walk: MMWalk) -> int:
    """``walk_pmd_range()``."""
    overlay = walk._overlay
    pudval = overlay.get(pud_key, pud_raw) if overlay else pud_raw
    # as in Linux 7.2: a PUD that is not a table (not present, or a leaf)
    # sends the PUD loop back to ACTION_AGAIN
    if not pudval & _PAGE_PRESENT or pudval & _PAGE_PSE:
        walk.action = ACTION_AGAIN
        return 0
    try:
        vals, base = walk._child(pud_key, pudval)
    except TableReadError as e:
        walk._error(2, pud_key[1], getattr(e, "paddr", pudval), "unreadable")
        overlay[pud_key] = 0
        walk.action = ACTION_AGAIN
        return 0
    o = walk._o
    pmd_entry = o.pmd_entry
    pte_hole = o.pte_hole
    has_handler = o.pte_entry is not None
    has_install = o.install_pte is not None
    has_vma = walk.vma_info is not None
    depth = 3
    children = walk._children
    E = Entry
    err: Any = 0
    i = (addr >> PMD_SHIFT) & 511
    while True:
        tries = [0, 0]
        while True:  # again:
            walk.action = ACTION_SUBTREE
            next_ = pmd_addr_end(addr, end)
            key = (1, addr & ~((1 << PMD_SHIFT) - 1))
            raw = vals[i]
            v = overlay.get(key, raw) if overlay else raw
            if not (v & ~(_PAGE_ACCESSED | _PAGE_DIRTY)):  # pmd_none
                if has_install:
                    v = _alloc(walk, key, 1)  # __pte_alloc()
                elif pte_hole is not None:
                    err = _cbret(pte_hole(addr, next_, depth, walk), "pte_hole")
                if err:
                    return err  # type: ignore[no-any-return]
                if not has_install:
                    break  # continue
            v0 = v
            kaddr = None if base is None else base + 8 * i
            if pmd_entry is not None:
                ch = children.get(key) if children else None
                ent = E(v, kaddr, 1, walk) if ch is None else _EmulatedEntry(v, kaddr, 1, walk, ch)
                err = pmd_entry(ent, addr, next_, walk)
                if err is not None and (err or err.__class__ is not int):
                    err = _cbret(err, "pmd_entry")
                    if err:
                        return err  # type: ignore[no-any-return]
            act = walk.action
            if act == ACTION_AGAIN:
                if _again_ok(walk, 1, addr, False, tries):
                    continue
                break
            if act == ACTION_CONTINUE:
                break
            if not has_handler:  # no handlers for lower page tables
                if not has_install:
                    break
                # only installing: do not split a present huge page
                if v & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE) and v & _PAGE_PSE:
                    break
            if has_vma:
                v = _split_huge_pmd(walk, key, v, addr)
            elif v & _PAGE_PSE or not v & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE):
                break  # nothing to do
            err = walk_pte_range(key, v, addr, next_, walk)
            if err:
                return err  # type: ignore[no-any-return]
            if walk.action == ACTION_AGAIN:
                now = overlay.get(key, raw) if overlay else raw
                if _again_ok(walk, 1, addr, now != v0, tries):
                    continue
            break
        i += 1
        addr = next_
        if addr == end:
            break
    return 0


def walk_pud_range(p4d_key: tuple[int, int], p4dval: int, addr: int, end: int, walk: MMWalk) -> int:
    """``walk_pud_range()``."""
    try:
        vals, base = walk._child(p4d_key, p4dval)
    except TableReadError as e:
        return _unreadable_below(walk, p4d_key, p4dval, e, addr, end, real_depth(1, walk.paging))
    o = walk._o
    pud_entry = o.pud_entry
    pte_hole = o.pte_hole
    has_handler = o.pmd_entry is not None or o.pte_entry is not None
    has_install = o.install_pte is not None
    has_vma = walk.vma_info is not None
    overlay = walk._overlay
    children = walk._children
    depth = 2
    err: Any = 0
    i = (addr >> PUD_SHIFT) & 511
    while True:
        tries = [0, 0]
        while True:  # again:
            walk.action = ACTION_SUBTREE
            next_ = pud_addr_end(addr, end)
            key = (2, addr & ~((1 << PUD_SHIFT) - 1))
            raw = vals[i]
            v = overlay.get(key, raw) if overlay else raw
            if not (v & ~(_PAGE_ACCESSED | _PAGE_DIRTY)):  # pud_none
                if has_install:
                    v = _alloc(walk, key, 2)  # __pmd_alloc()
                elif pte_hole is not None:
                    err = _cbret(pte_hole(addr, next_, depth, walk), "pte_hole")
                if err:
                    return err  # type: ignore[no-any-return]
                if not has_install:
                    break
            v0 = v
            kaddr = None if base is None else base + 8 * i
            if pud_entry is not None:
                ch = children.get(key) if children else None
                ent = Entry(v, kaddr, 2, walk) if ch is None else _EmulatedEntry(v, kaddr, 2, walk, ch)
                err = _cbret(pud_entry(ent, addr, next_, walk), "pud_entry")
                if err:
                    return err  # type: ignore[no-any-return]
            act = walk.action
            if act == ACTION_AGAIN:
                if _again_ok(walk, 2, addr, False, tries):
                    continue
                break
            if act == ACTION_CONTINUE:
                break
            if not has_handler:
                if not has_install:
                    break
                if v & _PAGE_PRESENT and v & _PAGE_PSE:
                    break
            if has_vma:
                # split_huge_pud(): a trans-huge PUD is cleared
                if v & _PAGE_PSE:
                    overlay[key] = 0
                    walk.splits.append((PageTableLevel.PUD, key[1], "cleared"))
                    v = 0
            elif v & _PAGE_PSE or not v & _PAGE_PRESENT:
                break
            err = walk_pmd_range(key, v, addr, next_, walk)
            if err:
                return err  # type: ignore[no-any-return]
            if walk.action == ACTION_AGAIN:
                now = overlay.get(key, raw) if overlay else raw
                if _again_ok(walk, 2, addr, now != v0, tries):
                    continue
            break
        i += 1
        addr = next_
        if addr == end:
            break
    return 0


def _unreadable_below(
    walk: MMWalk, key: tuple[int, int], value: int, e: Exception, addr: int, end: int, depth: int
) -> int:
    level = 4 if key[0] == 4 else 3
    walk._error(level, key[1], getattr(e, "paddr", value), "unreadable")
    walk._overlay[key] = 0
    if walk._o.pte_hole is not None:
        return _cbret(walk._o.pte_hole(addr, end, depth, walk), "pte_hole")
    return 0


def walk_p4d_range(
    pgd_key: tuple[int, int], pgdval: int, pgd_kaddr: int | None, addr: int, end: int, walk: MMWalk
) -> int:
    """``walk_p4d_range()``. With 4-level paging the P4D slot is the PGD slot."""
    paging = walk.paging
    folded = paging.levels != 5
    vals: Sequence[int] = ()
    base: int | None = None
    if not folded:
        try:
            vals, base = walk._child(pgd_key, pgdval)
        except TableReadError as e:
            return _unreadable_below(walk, pgd_key, pgdval, e, addr, end, 0)
    o = walk._o
    p4d_entry = o.p4d_entry
    pte_hole = o.pte_hole
    has_handler = o.pud_entry is not None or o.pmd_entry is not None or o.pte_entry is not None
    has_install = o.install_pte is not None
    overlay = walk._overlay
    depth = real_depth(1, paging)
    err: Any = 0
    i = (addr >> P4D_SHIFT) & 511
    while True:
        next_ = p4d_addr_end(addr, end)
        if folded:
            key = pgd_key
            v = overlay.get(key, pgdval) if overlay else pgdval
            kaddr = pgd_kaddr
        else:
            key = (3, addr & ~((1 << P4D_SHIFT) - 1))
            raw = vals[i]
            v = overlay.get(key, raw) if overlay else raw
            kaddr = None if base is None else base + 8 * i
        none = not (v & ~(_PAGE_ACCESSED | _PAGE_DIRTY))
        if not none and p4d_bad(v, paging):  # p4d_none_or_clear_bad()
            walk._error(3, key[1], v, "bad")
            overlay[key] = 0
            v = 0
            none = True
        if none:
            if has_install:
                v = _alloc(walk, key, 3)  # __pud_alloc()
            elif pte_hole is not None:
                err = _cbret(pte_hole(addr, next_, depth, walk), "pte_hole")
            if err:
                return err  # type: ignore[no-any-return]
            if not has_install:
                i += 1
                addr = next_
                if addr == end:
                    break
                continue
        if p4d_entry is not None:
            err = _cbret(p4d_entry(Entry(v, kaddr, 3, walk), addr, next_, walk), "p4d_entry")
            if err:
                return err  # type: ignore[no-any-return]
        if has_handler or has_install:
            err = walk_pud_range(key, v, addr, next_, walk)
            if err:
                return err  # type: ignore[no-any-return]
        i += 1
        addr = next_
        if addr == end:
            break
    return 0


def _top_table(walk: MMWalk) -> tuple[Sequence[int], int]:
    base = walk.pgd if walk.pgd is not None else walk.backend.mm_pgd(walk.mm)
    base = int(base) & M64
    try:
        paddr = walk.backend.pgd_phys(base)
        walk._table_level.setdefault(paddr & ~(PAGE_SIZE - 1), 5)
        return walk.read_table(paddr & ~(PAGE_SIZE - 1)), base & ~(PAGE_SIZE - 1)
    except TableReadError as e:
        walk._error(4, 0, getattr(e, "paddr", base), "unreadable")
        return (0,) * 512, base & ~(PAGE_SIZE - 1)


def walk_pgd_range(addr: int, end: int, walk: MMWalk) -> int:
    """``walk_pgd_range()``: from ``walk.pgd`` if set, else ``mm->pgd``."""
    paging = walk.paging
    o = walk._o
    pgd_entry = o.pgd_entry
    pte_hole = o.pte_hole
    has_handler = (
        o.p4d_entry is not None
        or o.pud_entry is not None
        or o.pmd_entry is not None
        or o.pte_entry is not None
    )
    has_install = o.install_pte is not None
    vals, base = _top_table(walk)
    overlay = walk._overlay
    shift = paging.pgdir_shift
    size = 1 << shift
    err: Any = 0
    while True:
        i = (addr >> shift) & 511
        next_ = _addr_end(addr, end, size)
        key = (4, addr & ~(size - 1) & M64)
        raw = vals[i]
        v = overlay.get(key, raw) if overlay else raw
        kaddr = base + 8 * i
        none = pgd_none(v, paging)
        if not none and pgd_bad(v, paging):  # pgd_none_or_clear_bad()
            walk._error(4, key[1], v, "bad")
            overlay[key] = 0
            v = 0
            none = True
        if none:
            if has_install:
                v = _alloc(walk, key, 4)  # __p4d_alloc()
            elif pte_hole is not None:
                err = _cbret(pte_hole(addr, next_, 0, walk), "pte_hole")
            if err:
                return err  # type: ignore[no-any-return]
            if not has_install:
                addr = next_
                if addr == end:
                    break
                continue
        if pgd_entry is not None:
            err = _cbret(pgd_entry(Entry(v, kaddr, 4, walk), addr, next_, walk), "pgd_entry")
            if err:
                return err  # type: ignore[no-any-return]
        if has_handler or has_install:
            err = walk_p4d_range(key, v, kaddr, addr, next_, walk)
            if err:
                return err  # type: ignore[no-any-return]
        addr = next_
        if addr == end:
            break
    return 0


_ZERO_TABLE: tuple[int, ...] = (0,) * 512


def _alloc(walk: MMWalk, key: tuple[int, int], level: int) -> int:
    """Emulate ``__p?d_alloc()``/``__pte_alloc()``: a new, empty table."""
    v = _PAGE_TABLE
    walk._overlay[key] = v
    walk._children[key] = _ZERO_TABLE
    return v


# -- THP split emulation (errata §1.7) --------------------------------------

# x86 protection_map (arch/x86/mm/pgprot.c), indexed by VM_READ|WRITE|EXEC|SHARED
_P = _PAGE_PRESENT
_U = _PAGE_USER
_A = _PAGE_ACCESSED
_PAGE_NONE = _PAGE_PROTNONE | _A
_PAGE_READONLY = _P | _U | _A | _PAGE_NX
_PAGE_COPY = _PAGE_READONLY
_PAGE_READONLY_EXEC = _P | _U | _A
_PAGE_COPY_EXEC = _PAGE_READONLY_EXEC
_PAGE_SHARED = _P | _PAGE_RW | _U | _A | _PAGE_NX
_PAGE_SHARED_EXEC = _P | _PAGE_RW | _U | _A
_PROTECTION_MAP = (
    _PAGE_NONE,
    _PAGE_READONLY,
    _PAGE_COPY,
    _PAGE_COPY,
    _PAGE_READONLY_EXEC,
    _PAGE_READONLY_EXEC,
    _PAGE_COPY_EXEC,
    _PAGE_COPY_EXEC,
    _PAGE_NONE,
    _PAGE_READONLY,
    _PAGE_SHARED,
    _PAGE_SHARED,
    _PAGE_READONLY_EXEC,
    _PAGE_READONLY_EXEC,
    _PAGE_SHARED_EXEC,
    _PAGE_SHARED_EXEC,
)


def vm_get_page_prot(vm_flags: int) -> int:
    """``vm_get_page_prot()`` on x86_64 (without pkeys and memory encryption)."""
    return _PROTECTION_MAP[vm_flags & (VM_READ | VM_WRITE | VM_EXEC | VM_SHARED)]


def _vma_is_anonymous(vma: VMA) -> bool:
    anon = getattr(vma, "anonymous", None)
    if anon is not None:
        return bool(anon)
    # unknown: private mappings are taken as anonymous
    return not vma.vm_flags & VM_SHARED and not vma.pfnmap and not vma.vm_flags & VM_PFNMAP


def _is_huge_zero_pmd(walk: MMWalk, v: int) -> bool:
    if not v & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE):
        return False
    hz = getattr(walk.backend, "huge_zero_pfn", None)
    if hz is not None:
        return (pmd_pfn(v, walk.paging) & ~511) == hz
    return bool(v & _PAGE_SPECIAL)


def _split_huge_pmd(walk: MMWalk, key: tuple[int, int], v: int, addr: int) -> int:
    """
    Emulate ``split_huge_pmd()`` and return the PMD's new value. Acts when
    ``pmd_is_huge()`` and (locked step) the PMD is trans-huge or a migration
    or device-private entry.
    """
    if v & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE):
        if not v & _PAGE_PSE:
            return v
        swap = None
    else:
        if not (v & ~(_PAGE_ACCESSED | _PAGE_DIRTY)):
            return v
        swap = decode_swap(v, walk.paging)
        if swap is None or not (swap.kind.is_migration or swap.kind.is_device_private):
            return v  # left alone: walk_pte_range fails, ACTION_AGAIN (capped)
    vma = walk.vma_info
    assert vma is not None
    haddr = addr & ~((1 << PMD_SHIFT) - 1)
    paging = walk.paging
    if not _vma_is_anonymous(vma):
        walk._overlay[key] = 0
        walk.splits.append((PageTableLevel.PMD, haddr, "zapped"))
        return 0
    ptes: list[int]
    if swap is None and _is_huge_zero_pmd(walk, v):
        zero = getattr(walk.backend, "zero_pfn", None) or 0
        flags = vm_get_page_prot(vma.vm_flags) | _PAGE_SPECIAL
        if v & _PAGE_UFFD_WP and paging.uffd_wp:
            flags |= _PAGE_UFFD_WP
        ptes = [mk_pte(zero, flags)] * 512
        what = "huge-zero"
    elif swap is not None:
        pfn = swap.pfn or 0
        extra = 0
        if swap.soft_dirty:
            extra |= _PAGE_SWP_SOFT_DIRTY
        if swap.uffd_wp:
            extra |= _PAGE_SWP_UFFD_WP
        if swap.kind.is_migration:
            pfn_bits = paging.max_physmem_bits - PAGE_SHIFT
            ad = swap.offset & (3 << pfn_bits)
            t = swap.type
            ptes = [swp_entry_to_pte(t, (pfn + n) | ad) | extra for n in range(512)]
            what = "migration"
        else:
            t = swap.type
            ptes = [swp_entry_to_pte(t, pfn + n) | extra for n in range(512)]
            what = "device-private"
    else:
        pfn = pmd_pfn(v, paging)
        flags = vm_get_page_prot(vma.vm_flags)
        if v & _PAGE_RW:
            flags |= _PAGE_RW
        if not v & _PAGE_ACCESSED:
            flags &= ~_PAGE_ACCESSED
        if v & (_PAGE_DIRTY | _PAGE_SAVED_DIRTY):
            # pte_mkdirty(): DIRTY and SOFT_DIRTY, and on a read-only PTE
            # DIRTY moves to SAVED_DIRTY (mksaveddirty_shift)
            flags |= _PAGE_DIRTY | (_PAGE_SOFT_DIRTY if paging.soft_dirty else 0)
            if not flags & _PAGE_RW:
                flags = (flags & ~_PAGE_DIRTY) | _PAGE_SAVED_DIRTY
        if v & _PAGE_SOFT_DIRTY and paging.soft_dirty:
            flags |= _PAGE_SOFT_DIRTY
        if v & _PAGE_UFFD_WP and paging.uffd_wp:
            flags |= _PAGE_UFFD_WP
        ptes = [mk_pte(pfn + n, flags) for n in range(512)]
        what = "anon"
    new = _PAGE_TABLE
    walk._overlay[key] = new
    walk._children[key] = ptes
    walk.splits.append((PageTableLevel.PMD, haddr, what))
    return new


# -- hugetlb ----------------------------------------------------------------


def walk_hugetlb_range(addr: int, end: int, walk: MMWalk) -> int:
    """``walk_hugetlb_range()``: one ``hugetlb_entry`` per huge page (slot may be none)."""
    vma = walk.vma_info
    assert vma is not None
    shift = vma.hugetlb_shift
    sz = 1 << shift
    hmask = ~(sz - 1) & M64
    o = walk._o
    hugetlb_entry = o.hugetlb_entry
    assert hugetlb_entry is not None
    err = 0
    while True:
        next_ = min(((addr & hmask) + sz) & M64 or end, end)
        slot = _hugetlb_walk(walk, addr & hmask, shift)
        if slot is not None:
            v, kaddr, level = slot
            err = _cbret(hugetlb_entry(Entry(v, kaddr, level, walk), hmask, addr, next_, walk), "hugetlb_entry")
        elif o.pte_hole is not None:
            err = _cbret(o.pte_hole(addr, next_, -1, walk), "pte_hole")
        if err:
            break
        addr = next_
        if addr == end:
            break
    return err


def _hugetlb_walk(walk: MMWalk, addr: int, shift: int) -> tuple[int, int | None, int] | None:
    """Generic ``huge_pte_offset()``: the PUD or PMD slot, or None."""
    paging = walk.paging
    vals, base = _top_table(walk)
    pshift = paging.pgdir_shift
    i = (addr >> pshift) & 511
    v = vals[i]
    kaddr: int | None = base + 8 * i
    if not pgd_present(v, paging):
        return None
    try:
        if paging.levels == 5:
            t, b = walk._child((4, addr & ~((1 << pshift) - 1)), v)
            i = (addr >> P4D_SHIFT) & 511
            v = t[i]
            kaddr = None if b is None else b + 8 * i
        if not v & _PAGE_PRESENT:
            return None
        t, b = walk._child((3 if paging.levels == 5 else 4, addr & ~((1 << P4D_SHIFT) - 1)), v)
        i = (addr >> PUD_SHIFT) & 511
        v = t[i]
        kaddr = None if b is None else b + 8 * i
        if shift == PUD_SHIFT:
            return v, kaddr, 2
        if not v & _PAGE_PRESENT:
            return None
        t, b = walk._child((2, addr & ~((1 << PUD_SHIFT) - 1)), v)
        i = (addr >> PMD_SHIFT) & 511
        return t[i], (None if b is None else b + 8 * i), 1
    except TableReadError as e:
        walk._error(2, addr, getattr(e, "paddr", v), "unreadable")
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


def process_mm_walk_lock(mm: Any, walk_lock: Any) -> None:
    """``process_mm_walk_lock()``: we take no locks; only validate the mode."""
    _check_lock(walk_lock)


def process_vma_walk_lock(vma: Any, walk_lock: Any) -> None:
    """``process_vma_walk_lock()``: we take no locks; only validate the mode."""
    _check_lock(walk_lock)


def _check_lock(walk_lock: Any) -> None:
    try:
        PageWalkLock(walk_lock)
    except ValueError:
        raise ValueError(f"invalid walk_lock {walk_lock!r}") from None


def check_ops_safe(ops: Any) -> bool:
    """``check_ops_safe()``: public entry points refuse ``install_pte``."""
    return getattr(ops, "install_pte", None) is None


def walk_page_range_mm_unsafe(
    mm: Any, start: int, end: int, ops: Any, private: Any = None, *, walks: list[MMWalk] | None = None
) -> int:
    """
    ``walk_page_range_mm_unsafe()`` (``mm/internal.h``): like
    :func:`walk_page_range` but accepts ``install_pte`` (recorded in
    ``walk.installed``, never written).
    """
    start &= M64
    end &= M64
    if start >= end:
        return -errno.EINVAL
    if mm is None:
        return -errno.EINVAL
    backend = backend_for_mm(mm)
    walk = MMWalk(ops, mm, backend, private=private)
    if walks is not None:
        walks.append(walk)
    return _walk_mm(walk, start, end)


def _walk_mm(walk: MMWalk, start: int, end: int) -> int:
    mm = walk.mm
    backend = walk.backend
    process_mm_walk_lock(mm, walk._o.walk_lock)
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
            process_vma_walk_lock(vma, o.walk_lock)
            walk._set_vma(vma)
            next_ = min(end, vma.vm_end)
            # as in Linux 7.2: the next VMA is looked up before the callbacks
            vma = backend.find_vma(mm, vma.vm_end)
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
    mm: Any, start: int, end: int, ops: Any, private: Any = None, *, walks: list[MMWalk] | None = None
) -> int:
    """
    ``walk_page_range()``: walk [*start*, *end*) of *mm*, VMAs and the holes
    between them.

    :param mm: the mm (drgn ``struct mm_struct *`` or a synthetic mm)
    :param ops: :class:`MMWalkOps` (or any object with those attributes)
    :return: 0, a callback's positive stop value, or a negative errno
        (``-EINVAL`` for an empty range, no mm, or ``install_pte``)
    """
    if not check_ops_safe(ops):
        return -errno.EINVAL
    return walk_page_range_mm_unsafe(mm, start, end, ops, private, walks=walks)


def _resolve_vma(vma: Any, backend: Any = None) -> tuple[VMA, Any]:
    if isinstance(vma, VMA):
        if backend is None:
            backend = backend_for_mm(vma.obj)
        return vma, backend
    if backend is None:
        backend = backend_for_mm(vma)
    for name in ("vma_snapshot", "vma_from_object", "make_vma"):
        fn = getattr(backend, name, None)
        if fn is not None:
            return fn(vma), backend
    snap = getattr(vma, "snapshot", None)
    if isinstance(snap, VMA):
        return snap, backend
    raise TypeError(f"cannot use {type(vma).__name__!r} as a VMA")


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
    """``walk_page_range_vma_unsafe()``: one VMA, ``install_pte`` allowed."""
    info, backend = _resolve_vma(vma, backend)
    start &= M64
    end &= M64
    mm = backend.vma_mm(info)
    if start >= end or mm is None:
        return -errno.EINVAL
    if start < info.vm_start or end > info.vm_end:
        return -errno.EINVAL
    walk = MMWalk(ops, mm, backend, vma=info, private=private)
    if walks is not None:
        walks.append(walk)
    process_mm_walk_lock(mm, walk._o.walk_lock)
    process_vma_walk_lock(info, walk._o.walk_lock)
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
    """
    if not check_ops_safe(ops):
        return -errno.EINVAL
    return walk_page_range_vma_unsafe(vma, start, end, ops, private, backend=backend, walks=walks)


def walk_page_vma(
    vma: Any, ops: Any, private: Any = None, *, backend: Any = None, walks: list[MMWalk] | None = None
) -> int:
    """``walk_page_vma()``: the whole VMA; ``test_walk`` is not called."""
    info, backend = _resolve_vma(vma, backend)
    mm = backend.vma_mm(info)
    if mm is None:
        return -errno.EINVAL
    if not check_ops_safe(ops):
        return -errno.EINVAL
    walk = MMWalk(ops, mm, backend, vma=info, private=private)
    if walks is not None:
        walks.append(walk)
    process_mm_walk_lock(mm, walk._o.walk_lock)
    process_vma_walk_lock(info, walk._o.walk_lock)
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
    if not check_ops_safe(ops):
        return -errno.EINVAL
    if backend is None:
        backend = backend_for_mm(mapping)
    first_index &= M64
    nr &= M64
    walk: MMWalk | None = None
    err = 0
    for vma in backend.mapping_vmas(mapping, first_index, (first_index + nr - 1) & M64):
        vba = vma.vm_pgoff
        vea = (vba + ((vma.vm_end - vma.vm_start) >> PAGE_SHIFT)) & M64
        cba = max(first_index, vba)
        cea = min((first_index + nr) & M64, vea)
        start_addr = ((((cba - vba) & M64) << PAGE_SHIFT) + vma.vm_start) & M64
        end_addr = ((((cea - vba) & M64) << PAGE_SHIFT) + vma.vm_start) & M64
        if start_addr >= end_addr:
            continue
        mm = backend.vma_mm(vma)
        if walk is None:
            walk = MMWalk(ops, mm, backend, vma=vma, private=private)
            if walks is not None:
                walks.append(walk)
        else:
            walk._set_vma(vma)
            walk.mm = mm
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
        return pgd & M64
    value_ = getattr(pgd, "value_", None)
    if value_ is not None:
        return int(value_()) & M64
    return int(pgd) & M64


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
    ``walk_kernel_page_table_range_lockless()``: a no-VMA walk of
    ``init_mm`` (or of the top-level table *pgd*, a kernel virtual address
    or drgn pointer). Give the backend with ``backend=``, or ``init_mm=``.
    """
    backend = _kernel_backend(backend, pgd, init_mm)
    start &= M64
    end &= M64
    walk = MMWalk(ops, backend.init_mm(), backend, pgd=_pgd_kaddr(pgd), no_vma=True, private=private)
    if start >= end:
        return -errno.EINVAL
    if not check_ops_safe(ops):
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
    """``walk_kernel_page_table_range()``: same walk (the lock assertion is a no-op)."""
    return walk_kernel_page_table_range_lockless(
        start, end, ops, pgd, private, backend=backend, init_mm=init_mm, walks=walks
    )


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
    ``walk_page_range_debug()`` (ptdump): a no-VMA walk of *mm*'s tables, or
    of *pgd* if given. Since Linux 7.2 there is no redirect for ``init_mm``
    and no NULL-mm check.
    """
    backend = backend_for_mm(mm)
    start &= M64
    end &= M64
    if start >= end:
        return -errno.EINVAL
    if not check_ops_safe(ops):
        return -errno.EINVAL
    walk = MMWalk(ops, mm, backend, pgd=_pgd_kaddr(pgd), no_vma=True, private=private)
    if walks is not None:
        walks.append(walk)
    return walk_pgd_range(start, end, walk)
