# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Walk consistency
----------------

A live kernel does not stand still while Python reads it. livewalk takes no
locks (it cannot: it only reads), so a walk of a running kernel may *race*
with the kernel changing the page tables or the VMA tree: a page is faulted
in or zapped, a THP is split or collapsed, a PTE table is freed and reused, a
VMA is unmapped. This module detects such races after the fact and offers a
bounded retry.

>>> from livewalk.backend.synthetic import SyntheticMM
>>> mm = SyntheticMM(levels=4)
>>> vma = mm.add_vma(0x400000, 0x402000)
>>> mm.map_4k(0x400000, pfn=0x1234)
>>> r = walk_with_retry(walk_page_range, mm, 0x400000, 0x402000, MMWalkOps())
>>> r.ret, r.torn, r.attempts
(0, False, 1)

How a race is detected
======================

:func:`checked_walk` runs one walk and then checks two things the kernel
offers:

1. **The VMA tree**: ``mm->mm_lock_seq`` (``include/linux/mmap_lock.h``,
   ``CONFIG_PER_VMA_LOCK``) is a sequence count made odd by every
   ``mmap_write_lock()`` and even again by ``mmap_write_unlock()`` (or a
   downgrade). Every change of the VMA tree happens under the mmap write
   lock, so if the count is odd before the walk, or differs after it, the
   VMAs the walk saw may be stale. ``map_count`` and the maple tree root are
   compared too (they also catch kernels without ``mm_lock_seq``).
2. **The page tables**: after the walk every page-table page the walk read
   is read again and compared with what the walk saw. Page-table changes
   below the VMA level (faults, zaps, THP splits under the PMD lock, swap
   out through the rmap) do not take the mmap lock; they show up here. The
   parent entry of a table lives in the parent table, which is also
   re-read, so a table that was freed and replaced is noticed through its
   parent. Only the hardware Accessed and Dirty bits of an entry that is
   present before and after are ignored (the MMU sets them without any
   lock); they are counted in :attr:`WalkConsistency.ad_changes`.

A walk that raised a read error of the target (a page-table page or a VMA
freed under it: :class:`~livewalk.backend.TableReadError`,
``drgn.FaultError``, or a torn drgn structure read giving ``ValueError``) is
also *torn*, with the exception kept in :attr:`WalkConsistency.exception`.

What a caller can trust
=======================

* ``torn == False`` means: the mmap sequence count was even and unchanged
  across the walk, and every page-table page the walk used read the same
  (but for A/D bits) at the end of the walk as when it was used. Every entry
  the callbacks saw was therefore in the page tables at the end of the walk,
  and the VMAs were those of one stable VMA tree. It is *not* an atomic
  snapshot: a change made and undone between the two reads (an ABA change)
  cannot be seen, and A/D bits are as of each read.
* ``torn == True`` means the result *may* mix states; the callbacks may have
  seen entries that were never all present at once. It does not mean any
  single entry was wrong when it was read.
* ``walk.errors`` (holes and unreadable or bad tables) are facts about what
  was read, torn or not; on a torn walk they may be artefacts of the race.
* :func:`walk_with_retry` retries a torn walk up to ``retries`` times
  (a bounded number, default :data:`DEFAULT_RETRIES`) and returns the last
  attempt, torn or not: it never loops forever. Callbacks run once per
  attempt, so a caller must reset what it collects in ``pre_attempt``.
* Exceptions raised by the caller's own callbacks are not races: they
  propagate unchanged, as they would from the plain entry points.

A vmcore does not change: walks of it are never torn (the check is cheap
there, but can be turned off with ``verify_tables=False``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from livewalk.arch.x86.pgtable import (
    _PAGE_ACCESSED,
    _PAGE_DIRTY,
    _PAGE_PRESENT,
    _PAGE_PROTNONE,
    _PAGE_PSE,
)
from livewalk.backend import TableReadError, backend_for_mm
from livewalk.mm.pagewalk import (
    MMWalk,
    MMWalkOps,
    walk_page_range,
)

__all__ = (
    "DEFAULT_RETRIES",
    "CheckedWalk",
    "TableChange",
    "WalkConsistency",
    "checked_walk",
    "mm_stamp",
    "transient_errors",
    "walk_with_retry",
)

#: Retries of :func:`walk_with_retry` after a torn first attempt.
DEFAULT_RETRIES = 3

_AD = _PAGE_ACCESSED | _PAGE_DIRTY
_PRESENTISH = _PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE
# keep at most this many TableChange records per walk (the count is exact)
_MAX_CHANGES = 64


def transient_errors() -> tuple[type[BaseException], ...]:
    """
    The exception types that mean "the target changed under the reader"
    rather than a bug: :class:`~livewalk.backend.TableReadError`, and with
    drgn ``drgn.FaultError`` and ``ValueError`` (drgn raises it for a torn
    maple tree node).
    """
    errs: list[type[BaseException]] = [TableReadError]
    try:
        import drgn

        errs.append(drgn.FaultError)
    except ImportError:  # pragma: no cover - synthetic-only installs
        pass
    errs.append(ValueError)
    return tuple(errs)


@dataclasses.dataclass(frozen=True, slots=True)
class TableChange:
    """
    One page-table entry that read differently after the walk.

    :ivar paddr: physical address of the table page
    :ivar index: slot index (0-511)
    :ivar old: the value the walk used
    :ivar new: the value read after the walk
    """

    paddr: int
    index: int
    old: int
    new: int


@dataclasses.dataclass(slots=True)
class WalkConsistency:
    """
    What :func:`checked_walk` found out about one walk.

    :ivar torn: the walk may have raced with a change (see the module
        documentation for what ``False`` guarantees)
    :ivar reasons: why it is torn (``"mm_lock_seq odd"``, ``"mm changed"``,
        ``"tables changed"``, ``"read error"``)
    :ivar stamp_before: ``(mm_lock_seq, map_count, maple root)`` before the
        walk (``None``: the backend has no such state, e.g. synthetic)
    :ivar stamp_after: the same after the walk
    :ivar tables_checked: page-table pages read again after the walk
    :ivar changed_entries: entries that differed (A/D bits aside)
    :ivar changes: the first differing entries (at most 64)
    :ivar ad_changes: entries whose only difference was the A/D bits
    :ivar unverifiable: tables the backend returned as the same live object
        (cannot be compared; the synthetic backend does this)
    :ivar exception: a transient read error that ended the walk, or ``None``
    """

    torn: bool = False
    reasons: list[str] = dataclasses.field(default_factory=list)
    stamp_before: tuple[int, ...] | None = None
    stamp_after: tuple[int, ...] | None = None
    tables_checked: int = 0
    changed_entries: int = 0
    changes: list[TableChange] = dataclasses.field(default_factory=list)
    ad_changes: int = 0
    unverifiable: int = 0
    exception: BaseException | None = None

    def mark(self, reason: str) -> None:
        self.torn = True
        if reason not in self.reasons:
            self.reasons.append(reason)


@dataclasses.dataclass(slots=True)
class CheckedWalk:
    """
    The result of :func:`checked_walk` / :func:`walk_with_retry`.

    :ivar ret: the entry point's return value (``None`` if it raised a
        transient read error)
    :ivar walk: the :class:`~livewalk.mm.pagewalk.MMWalk` of the last attempt
        (``None`` if the entry point failed before making one)
    :ivar consistency: the :class:`WalkConsistency` of the last attempt
    :ivar attempts: walks run (1 + retries used)
    :ivar torn_attempts: how many of them were torn
    :ivar seconds: wall time of all attempts
    """

    ret: int | None
    walk: MMWalk | None
    consistency: WalkConsistency
    attempts: int = 1
    torn_attempts: int = 0
    seconds: float = 0.0

    @property
    def torn(self) -> bool:
        """The last attempt may have raced (see :class:`WalkConsistency`)."""
        return self.consistency.torn

    @property
    def complete(self) -> bool:
        """The last attempt ran to its end (it did not die on a read error)."""
        return self.consistency.exception is None


def mm_stamp(mm: Any, backend: Any = None) -> tuple[int, ...] | None:
    """
    ``(mm_lock_seq, map_count, mm_mt.ma_root)`` of a drgn ``struct
    mm_struct *``, read fresh; members the kernel lacks are left out (no
    ``mm_lock_seq`` without ``CONFIG_PER_VMA_LOCK``: then the first element
    is ``map_count``). A backend or mm may supply its own with a
    ``mm_stamp(mm)`` method (the first element must then be a sequence count
    that is odd while a writer holds it). ``None`` if there is none.
    """
    for owner in (backend, mm):
        fn = getattr(owner, "mm_stamp", None)
        if fn is not None and callable(fn):
            st = fn(mm) if owner is backend else fn()
            return None if st is None else tuple(int(x) for x in st)
    if getattr(mm, "prog_", None) is None:
        return None
    out: list[int] = []
    for path in ("mm_lock_seq.sequence", "map_count", "mm_mt.ma_root"):
        obj = mm
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
            out.append(int(obj.value_()) & 0xFFFF_FFFF_FFFF_FFFF)
        except AttributeError:
            continue
    return tuple(out)


def _has_seq(mm: Any, backend: Any) -> bool:
    if getattr(backend, "mm_stamp", None) is not None or getattr(mm, "mm_stamp", None) is not None:
        return True
    try:
        mm.mm_lock_seq  # noqa: B018
        return True
    except (AttributeError, LookupError):
        return False


def _same_entry(old: int, new: int) -> bool:
    """Equal, or equal but for the A/D bits of an entry present in both."""
    if old == new:
        return True
    return bool(old & new & _PRESENTISH) and (old ^ new) & ~_AD == 0


def verify_tables(walk: MMWalk, result: WalkConsistency) -> None:
    """
    Read every table *walk* used again and record differences in *result*.
    """
    backend = walk.backend
    tables: dict[int, Sequence[int]] = walk._tables
    for paddr, old in list(tables.items()):
        try:
            new = backend.read_table(paddr)
        except TableReadError as e:
            result.mark("tables changed")
            result.changed_entries += 1
            if result.exception is None:
                result.exception = e
            continue
        result.tables_checked += 1
        if new is old:
            result.unverifiable += 1
            continue
        try:
            if bytes(new) == bytes(old):  # fast path (memoryview/array)
                continue
        except TypeError:
            pass
        for i in range(min(len(old), len(new))):
            o = old[i]
            n = new[i]
            if o == n:
                continue
            if _same_entry(o, n):
                result.ad_changes += 1
                continue
            result.changed_entries += 1
            if len(result.changes) < _MAX_CHANGES:
                result.changes.append(TableChange(paddr, i, o, n))
        if result.changed_entries:
            result.mark("tables changed")


def _guess_mm(entry: Callable[..., Any], args: Sequence[Any]) -> Any:
    """The mm a walk entry point is about, before the walk (or ``None``)."""
    if not args:
        return None
    first = args[0]
    name = getattr(entry, "__name__", "")
    if name in ("walk_page_range", "walk_page_range_mm_unsafe", "walk_page_range_debug"):
        return first
    if name.startswith("walk_page_range_vma") or name == "walk_page_vma":
        obj = getattr(first, "obj", first)
        for attr in ("vm_mm", "mm"):
            mm = getattr(obj, attr, None)
            if mm is not None:
                return mm
    return None


def checked_walk(
    entry: Callable[..., int],
    *args: Any,
    mm: Any = None,
    verify_tables_after: bool = True,
    **kwargs: Any,
) -> CheckedWalk:
    """
    Run one walk, ``entry(*args, **kwargs)`` (any walk entry point of
    :mod:`livewalk.mm.pagewalk`: it must accept ``walks=``), and check whether
    it raced with a change of the target.

    :param mm: the mm to watch (found from the arguments of the usual entry
        points when not given)
    :param verify_tables_after: re-read the tables the walk used
    :return: a :class:`CheckedWalk`; a transient read error is caught and
        reported (``ret is None``, ``torn``), other exceptions propagate
    """
    import time

    t0 = time.monotonic()
    if mm is None:
        mm = _guess_mm(entry, args)
    backend: Any = None
    if mm is not None:
        try:
            backend = backend_for_mm(mm)
        except TypeError:
            backend = None
    result = WalkConsistency()
    transient = transient_errors()
    try:
        result.stamp_before = mm_stamp(mm, backend) if mm is not None else None
    except transient as e:
        result.exception = e
        result.mark("read error")
        return CheckedWalk(None, None, result, seconds=time.monotonic() - t0)
    seq_checked = mm is not None and result.stamp_before is not None and _has_seq(mm, backend)
    if seq_checked and result.stamp_before and result.stamp_before[0] & 1:
        result.mark("mm_lock_seq odd")
    walks: list[MMWalk] = []
    ret: int | None = None
    try:
        ret = entry(*args, walks=walks, **kwargs)
    except transient as e:
        if not _is_target_error(e):
            raise
        result.exception = e
        result.mark("read error")
    walk = walks[-1] if walks else None
    if walk is not None and verify_tables_after:
        try:
            verify_tables(walk, result)
        except transient as e:
            if not _is_target_error(e):
                raise
            result.exception = result.exception or e
            result.mark("read error")
    if result.stamp_before is not None:
        try:
            result.stamp_after = mm_stamp(mm, backend)
        except transient as e:
            result.exception = result.exception or e
            result.mark("read error")
        else:
            if result.stamp_after != result.stamp_before:
                result.mark("mm changed")
    return CheckedWalk(ret, walk, result, seconds=time.monotonic() - t0)


def _is_target_error(e: BaseException) -> bool:
    """A ValueError counts only when drgn raised it (not the caller's code)."""
    if not isinstance(e, ValueError) or isinstance(e, TableReadError):
        return True
    tb = e.__traceback__
    last = None
    while tb is not None:
        last = tb
        tb = tb.tb_next
    if last is None:
        return False
    mod = last.tb_frame.f_globals.get("__name__", "")
    return mod.startswith("drgn") or mod.startswith("livewalk.backend.drgn")


def walk_with_retry(
    entry: Callable[..., int],
    *args: Any,
    retries: int = DEFAULT_RETRIES,
    pre_attempt: Callable[[int], Any] | None = None,
    mm: Any = None,
    verify_tables_after: bool = True,
    **kwargs: Any,
) -> CheckedWalk:
    """
    :func:`checked_walk`, repeated while the walk is torn, at most
    *retries* more times. Returns the first untorn attempt, or the last one.

    :param pre_attempt: called with the attempt number (0, 1, ...) before
        each attempt, to reset what the callbacks collect
    """
    import time

    if retries < 0:
        raise ValueError("retries must be >= 0")
    t0 = time.monotonic()
    torn = 0
    attempt = 0
    while True:
        if pre_attempt is not None:
            pre_attempt(attempt)
        r = checked_walk(entry, *args, mm=mm, verify_tables_after=verify_tables_after, **kwargs)
        attempt += 1
        if r.torn:
            torn += 1
        if not r.torn or attempt > retries:
            r.attempts = attempt
            r.torn_attempts = torn
            r.seconds = time.monotonic() - t0
            return r


# re-exported for the doctest above
_ = (MMWalkOps, walk_page_range)
