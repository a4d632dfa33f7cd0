# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Whole-walk consistency
----------------------

The strongest verdict, for any walk: :func:`checked_walk` runs a walk and
tells whether anything it used moved (:attr:`WalkConsistency.torn`);
:func:`walk_with_retry` runs it again, whole, until it did not.

>>> from livewalk import MMWalkOps, walk_page_range
>>> from livewalk.backend.synthetic import SyntheticMM
>>> mm = SyntheticMM(levels=4)
>>> vma = mm.add_vma(0x400000, 0x402000)
>>> r = walk_with_retry(walk_page_range, mm, 0x400000, 0x402000, MMWalkOps())
>>> r.ret, r.consistency.torn
(0, False)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

from livewalk.backend import TableReadError, backend_for_mm
from livewalk.consistency.ranges import DEFAULT_WALK_RETRIES, _is_target_error, transient_errors
from livewalk.mm.pagewalk import MMWalk, _resolve_vma

__all__ = (
    "CheckedWalk",
    "TableChange",
    "WalkConsistency",
    "checked_walk",
    "verify_tables",
    "walk_with_retry",
)

# keep at most this many TableChange records per walk (the count is exact)
_MAX_CHANGES = 64


# -- the whole-walk API ------------------------------------------------------------


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
    What :func:`checked_walk` found out about one walk, judged whole.

    :ivar torn: the walk is not consistent at the ``"walk"`` level
    :ivar reasons: why (``"mm_lock_seq odd"``, ``"mm changed"``,
        ``"tables changed"``, ``"read error"``)
    :ivar stamp_before: the backend's ``mm_stamp(mm)`` before the walk
        (``None`` without an mm)
    :ivar stamp_after: the same after the walk
    :ivar tables_checked: page-table pages read again after the walk
    :ivar changed_entries: entries that differed (A/D bits aside)
    :ivar changes: the first differing entries (at most 64)
    :ivar ad_changes: entries whose only difference was the A/D bits
    :ivar unverifiable: tables the backend returned as the same live object
        (cannot be compared; the synthetic backend without ``copy_tables``)
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


def verify_tables(walk: MMWalk, result: WalkConsistency) -> None:
    """Read every table *walk* used again and record differences in *result*."""
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
        if bytes(new) == bytes(old):
            continue
        for i in range(min(len(old), len(new))):
            o = old[i]
            n = new[i]
            if o == n:
                continue
            if backend.paging.same_but_hw_bits(o, n):
                result.ad_changes += 1
                continue
            result.changed_entries += 1
            if len(result.changes) < _MAX_CHANGES:
                result.changes.append(TableChange(paddr, i, o, n))
        if result.changed_entries:
            result.mark("tables changed")


def _guess_mm(entry: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """The mm a walk entry point is about, before the walk (or ``None``)."""
    if not args:
        return None
    first = args[0]
    name = entry.__name__
    if name in ("walk_page_range", "walk_page_range_mm_unsafe", "walk_page_range_debug"):
        return first
    if name.startswith("walk_page_range_vma") or name == "walk_page_vma":
        vma, backend = _resolve_vma(first, kwargs.get("backend"))
        return backend.vma_mm(vma)
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
    :mod:`livewalk.mm.pagewalk`: it must accept ``walks=``), and judge it
    whole: did anything it used change while it ran?

    :param mm: the mm to watch (found from the arguments of the usual entry
        points when not given)
    :param verify_tables_after: re-read the tables the walk used
    :return: a :class:`CheckedWalk`; a transient read error is caught and
        reported (``ret is None``, ``torn``), other exceptions propagate
    """
    t0 = time.monotonic()
    if mm is None:
        mm = _guess_mm(entry, args, kwargs)
    backend = backend_for_mm(mm) if mm is not None else None
    result = WalkConsistency()
    transient = transient_errors()
    try:
        result.stamp_before = backend.mm_stamp(mm) if backend is not None else None
    except transient as e:
        result.exception = e
        result.mark("read error")
        return CheckedWalk(None, None, result, seconds=time.monotonic() - t0)
    if result.stamp_before and result.stamp_before[0] & 1:
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
    if backend is not None:
        try:
            result.stamp_after = backend.mm_stamp(mm)
        except transient as e:
            result.exception = result.exception or e
            result.mark("read error")
        else:
            if result.stamp_after != result.stamp_before:
                result.mark("mm changed")
    return CheckedWalk(ret, walk, result, seconds=time.monotonic() - t0)


def walk_with_retry(
    entry: Callable[..., int],
    *args: Any,
    retries: int = DEFAULT_WALK_RETRIES,
    pre_attempt: Callable[[int], Any] | None = None,
    mm: Any = None,
    verify_tables_after: bool = True,
    **kwargs: Any,
) -> CheckedWalk:
    """
    :func:`checked_walk`, repeated whole while the walk is torn, at most
    *retries* more times. Returns the first untorn attempt, or the last one.
    (:func:`read_consistent` reads again only what tore.)

    :param pre_attempt: called with the attempt number (0, 1, ...) before
        each attempt, to reset what the callbacks collect
    """
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


# named in the doctest above
