# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Consistency at the kernel's grains
----------------------------------

A read of a live target judged per page table and per VMA, as the kernel's
own readers get it, with retries of only what tore: :func:`read_consistent`
and its result, :class:`RangeConsistency` (see :mod:`livewalk.consistency`
for what each level promises).

>>> from livewalk import MMWalkOps, walk_page_range
>>> from livewalk.backend.synthetic import SyntheticMM
>>> mm = SyntheticMM(levels=4)
>>> vma = mm.add_vma(0x400000, 0x402000)
>>> r = read_consistent(mm, 0x400000, 0x402000,
...                     lambda s, e, walks: walk_page_range(mm, s, e, MMWalkOps(), walks=walks))
>>> r.consistency.level
'walk'
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TextIO, TypeVar

from livewalk.arch import ULONG_MAX, ArchPaging, PageTableLevel
from livewalk.backend import PageTableBackend, TableReadError, backend_for_mm
from livewalk.errors import LivewalkError
from livewalk.mm.overlay import PAGE_UNREADABLE
from livewalk.mm.pagewalk import MMWalk
from livewalk.mm.vma import VMA

__all__ = (
    "ConsistencyTally",
    "ConsistentRead",
    "DEFAULT_RETRIES",
    "DEFAULT_WALK_RETRIES",
    "NOT_IN_DUMP",
    "READ_ERROR",
    "RangeConsistency",
    "TABLE_CHANGED",
    "TornError",
    "TornRange",
    "VMA_TREE_CHANGED",
    "read_consistent",
    "transient_errors",
)


#: Rounds of reads again after a torn first read (:func:`read_consistent`):
#: each round reads only the ranges still torn, a table or a VMA, so a
#: round costs little next to the first read.
DEFAULT_RETRIES = 5

#: Whole walks again after a torn one (:func:`walk_with_retry`).
DEFAULT_WALK_RETRIES = 3

#: :attr:`TornRange.reason`: a VMA overlapping the range changed.
VMA_TREE_CHANGED = "VMA tree changed"
#: :attr:`TornRange.reason`: a page-table entry the read used changed.
TABLE_CHANGED = "table changed"
#: :attr:`TornRange.reason`: the target refused a read.
READ_ERROR = "read error"
#: :attr:`RangeConsistency.missing` reason: a page table the read needed is
#: not in the target (a dump filtered too much, or a table outside RAM).
NOT_IN_DUMP = "not in dump"

T = TypeVar("T")



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


# -- results ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class TornRange:
    """
    An address range whose result may mix states.

    :ivar start: first address
    :ivar end: first address after it
    :ivar reason: :data:`VMA_TREE_CHANGED`, :data:`TABLE_CHANGED` or
        :data:`READ_ERROR`
    :ivar detail: what changed, for a person (``"PTE table 0x1234000: 3
        entries"``)
    """

    start: int
    end: int
    reason: str
    detail: str = ""

    def __str__(self) -> str:
        d = f": {self.detail}" if self.detail else ""
        return f"{self.start:#x}-{self.end:#x} {self.reason}{d}"

    def as_dict(self) -> dict[str, Any]:
        """The range as a JSON object."""
        return {"start": self.start, "end": self.end, "reason": self.reason, "detail": self.detail}


@dataclasses.dataclass(slots=True)
class RangeConsistency:
    """
    What a caller may trust of one :func:`read_consistent` result (see the
    module documentation for the levels).

    :ivar start: first address read
    :ivar end: first address after the range
    :ivar whole: the result comes from one read that held still
        (the ``"walk"`` level)
    :ivar torn: the ranges still torn, in address order
    :ivar vmas: VMAs in the result
    :ivar vmas_torn: of them, those overlapping a torn range
    :ivar tables: page tables the result came from (by level and address)
    :ivar tables_torn: of them, those that changed while read
    :ivar reads: checked reads made (1 + the ranges read again)
    :ivar rounds: rounds of reads (1 + retry rounds used)
    :ivar retried: the ranges read again, in order
    :ivar table_reads: page-table pages read from the backend, re-reads
        for the checks included
    :ivar seconds: wall time
    :ivar missing: the ranges whose page tables could not be read at all
        (:data:`NOT_IN_DUMP`: excluded from a dump, or outside RAM): the
        walk saw them as holes, so what the result says there is unknown;
        and the pages whose ``struct page`` could not be read (detail
        ``"struct page of PFN ... not readable: page state unknown"``):
        their entries are read, what the page state decides is unknown.
        Neither makes the read torn (reading again gives the same).
    """

    start: int
    end: int
    whole: bool = True
    torn: list[TornRange] = dataclasses.field(default_factory=list)
    vmas: int = 0
    vmas_torn: int = 0
    tables: int = 0
    tables_torn: int = 0
    reads: int = 0
    rounds: int = 0
    retried: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    table_reads: int = 0
    seconds: float = 0.0
    missing: list[TornRange] = dataclasses.field(default_factory=list)

    @property
    def level(self) -> str:
        """``"walk"``, ``"table"`` or ``"torn"``."""
        if self.torn:
            return "torn"
        return "walk" if self.whole else "table"

    def torn_in(self, start: int, end: int) -> list[TornRange]:
        """The torn ranges that overlap [*start*, *end*)."""
        return [t for t in self.torn if t.start < end and start < t.end]

    def marks(self, start: int = 0, end: int = ULONG_MAX + 1) -> list[str]:
        """
        The text mark of the torn ranges that overlap [*start*, *end*): one
        ``# torn RANGE REASON: DETAIL`` line each (the form of ``livewalk
        pagemap``'s text output), none when nothing there tore.

        >>> RangeConsistency(0, 8192, torn=[TornRange(0, 4096, TABLE_CHANGED)]).marks()
        ['# torn 0x0-0x1000 table changed']

        A range whose page table is not in the target is marked ``# not
        in dump RANGE: DETAIL``.
        """
        out = [f"# torn {t}" for t in self.torn_in(start, end)]
        out += [f"# {t.reason} {t.start:#x}-{t.end:#x}: {t.detail}"
                for t in self.missing if t.start < end and start < t.end]
        return out

    def missing_in(self, start: int, end: int) -> list[TornRange]:
        """The :attr:`missing` ranges that overlap [*start*, *end*)."""
        return [t for t in self.missing if t.start < end and start < t.end]

    def consistent(self, start: int, end: int) -> bool:
        """[*start*, *end*) holds at least at the ``"table"`` level."""
        return not self.torn_in(start, end)

    def summary(self) -> str:
        """
        One line for a person: ``"2 of 412 VMAs changed while read: ..."``
        (empty when nothing is torn), and ``"... not in dump: ..."`` for
        the :attr:`missing` ranges.
        """
        parts = []
        if self.torn:
            shown = "; ".join(str(t) for t in self.torn[:3])
            more = f"; and {len(self.torn) - 3} more" if len(self.torn) > 3 else ""
            parts.append(
                f"{self.vmas_torn} of {self.vmas} VMAs changed while read "
                f"({self.tables_torn} of {self.tables} page tables): {shown}{more}"
            )
        if self.missing:
            size = sum(t.end - t.start for t in self.missing)
            shown = "; ".join(f"{t.start:#x}-{t.end:#x} ({t.detail})" for t in self.missing[:3])
            more = f"; and {len(self.missing) - 3} more" if len(self.missing) > 3 else ""
            n = len(self.missing)
            parts.append(f"{n} range{'' if n == 1 else 's'} ({size >> 10} KiB of address space) "
                         f"{NOT_IN_DUMP}: {shown}{more}")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """The verdict as a JSON object."""
        return {
            "level": self.level,
            "torn": [t.as_dict() for t in self.torn],
            "vmas": self.vmas,
            "vmas_torn": self.vmas_torn,
            "tables": self.tables,
            "tables_torn": self.tables_torn,
            "reads": self.reads,
            "retried": [list(r) for r in self.retried],
            "missing": [t.as_dict() for t in self.missing],
        }


@dataclasses.dataclass(slots=True)
class ConsistentRead(Generic[T]):
    """
    The result of :func:`read_consistent`.

    :ivar value: what the read function returned, with the ranges read
        again spliced in (``None`` if no read of the whole range ever ended)
    :ivar consistency: the :class:`RangeConsistency`
    """

    value: T | None
    consistency: RangeConsistency


class TornError(LivewalkError):
    """
    A read was asked to be all-or-nothing (``--strict``) and some ranges
    were still torn after the retries.

    :ivar consistency: the :class:`RangeConsistency`
    """

    def __init__(self, consistency: RangeConsistency) -> None:
        super().__init__(consistency.summary() or "the target changed while it was read")
        self.consistency = consistency


class ConsistencyTally:
    """
    The verdicts of several reads of one command (one per pagemap range),
    summed for the one-line summary.

    >>> tally = ConsistencyTally()
    >>> tally.add(RangeConsistency(0, 4096, vmas=1, tables=3))
    >>> tally.summary(), tally.vmas
    ('', 1)
    """

    def __init__(self) -> None:
        self.vmas = self.vmas_torn = self.tables = self.tables_torn = 0
        self.torn: list[TornRange] = []
        self.missing: list[TornRange] = []
        self.whole = True

    def add(self, c: RangeConsistency) -> None:
        """Count the verdict *c* of one read."""
        self.vmas += c.vmas
        self.vmas_torn += c.vmas_torn
        self.tables += c.tables
        self.tables_torn += c.tables_torn
        self.torn += c.torn
        self.missing += c.missing
        self.whole = self.whole and c.whole

    def summary(self) -> str:
        """``"3 of 412 VMAs changed while read (...): ..."``; empty when nothing tore."""
        total = RangeConsistency(0, 0, self.whole, self.torn, self.vmas, self.vmas_torn,
                                 self.tables, self.tables_torn, missing=self.missing)
        return total.summary()

    def check(self, strict: bool) -> None:
        """
        With *strict*, raise :class:`TornError` if anything tore; otherwise
        nothing (the caller prints :meth:`summary`).
        """
        if strict and self.torn:
            raise TornError(RangeConsistency(0, 0, self.whole, self.torn, self.vmas, self.vmas_torn,
                                             self.tables, self.tables_torn))

    def report(self, strict: bool, stream: TextIO, who: str = "livewalk") -> None:
        """
        End a command: with *strict* raise :class:`TornError` if anything
        tore, otherwise write the one-line :meth:`summary` to *stream*
        (``"livewalk: 3 of 412 VMAs changed while read ..."``; nothing when
        nothing tore).
        """
        self.check(strict)
        line = self.summary()
        if line:
            stream.write(f"{who}: {line}\n")
            stream.flush()


# -- the check of one read -------------------------------------------------------



def _shifts(paging: ArchPaging) -> list[tuple[PageTableLevel, int]]:
    """(level, shift of one entry) of the tables in use, from the top down."""
    return [
        (level, paging.level_shift(level))
        for level in sorted(PageTableLevel, reverse=True)
        if level == PageTableLevel.PGD or not paging.folded(level)
    ]


def _geometry(walk: MMWalk) -> dict[int, tuple[int, int]]:
    """
    Where each table *walk* read sits: ``{paddr: (depth, base address)}``,
    found by descending from the top table through the entries as the walk
    read them (depth 0 is the top table).
    """
    tables: dict[int, Sequence[int]] = walk._tables
    paging = walk.paging
    try:
        base = walk.pgd if walk.pgd is not None else walk.backend.mm_pgd(walk.mm)
        top = walk.backend.pgd_phys(int(base) & ULONG_MAX) & ~(paging.page_size - 1)
    except Exception:  # the mm itself is gone: no geometry
        return {}
    shifts = _shifts(paging)
    last = len(shifts) - 1
    top_bits = paging.pgdir_shift + (paging.ptrs_per(PageTableLevel.PGD) - 1).bit_length()
    out: dict[int, tuple[int, int]] = {}
    stack = [(top, 0, 0)]
    while stack:
        paddr, depth, addr0 = stack.pop()
        if paddr in out or paddr not in tables:
            continue
        out[paddr] = (depth, addr0)
        if depth == last:
            continue
        level, shift = shifts[depth]
        for i, v in enumerate(tables[paddr]):
            if not _points_to_table(paging, level, v):
                continue
            child = paging.table_paddr(v)
            if child in tables and child not in out:
                addr = addr0 + (i << shift)
                if depth == 0 and addr >> (top_bits - 1):
                    addr |= ULONG_MAX & ~((1 << top_bits) - 1)  # canonical upper half
                stack.append((child, depth + 1, addr))
    return out


def _points_to_table(paging: ArchPaging, level: PageTableLevel, v: int) -> bool:
    """Whether entry *v* of a *level* table points to a lower table."""
    if level == PageTableLevel.PGD:
        return paging.pgd_present(v)
    if level == PageTableLevel.P4D:
        return paging.p4d_present(v)
    if level == PageTableLevel.PUD:
        return paging.pud_present(v) and not paging.pud_leaf(v)
    return paging.pmd_present(v) and not paging.pmd_leaf(v)


@dataclasses.dataclass(slots=True)
class _Check(Generic[T]):
    """What one checked read of [start, end) found."""

    value: T | None = None
    whole: bool = True
    torn: list[TornRange] = dataclasses.field(default_factory=list)
    # (level, base address) -> (start, end, torn)
    tables: dict[tuple[int, int], tuple[int, int, bool]] = dataclasses.field(default_factory=dict)
    vmas: list[VMA] = dataclasses.field(default_factory=list)
    table_reads: int = 0
    missing: list[TornRange] = dataclasses.field(default_factory=list)


def _vma_list(backend: PageTableBackend, mm: Any, start: int, end: int) -> list[VMA]:
    out = []
    v = backend.find_vma(mm, start)
    while v is not None and v.vm_start < end:
        out.append(v)
        v = backend.find_vma(mm, v.vm_end)
    return out


def _vma_key(v: VMA) -> tuple[int, ...]:
    return (v.vm_start, v.vm_end, v.vm_flags, v.vm_pgoff, v.hugetlb_shift, int(v.pfnmap))


def _clip(s: int, e: int, start: int, end: int) -> tuple[int, int] | None:
    s, e = max(s, start), min(e, end)
    return (s, e) if s < e else None


def _static(backend: PageTableBackend) -> bool:
    """
    The target cannot change while it is read: a drgn program of a vmcore
    (:attr:`DrgnBackend.live <livewalk.backend.drgn.DrgnBackend.live>`
    false). Its tables are not read again: they would read the same.
    """
    from livewalk.backend.drgn import DrgnBackend

    return isinstance(backend, DrgnBackend) and not backend.live


def _check_tables(
    walk: MMWalk, start: int, end: int, chk: _Check[Any], backend: PageTableBackend, static: bool = False
) -> None:
    """
    Read again every table *walk* used (not for a *static* target, which
    keeps what was read); record verdicts and torn ranges.
    """
    geometry = _geometry(walk)
    paging = walk.paging
    shifts = _shifts(paging)
    tables: dict[int, Sequence[int]] = walk._tables
    for paddr, old in list(tables.items()):
        where = geometry.get(paddr)
        if where is None:  # not reachable from the top as read: judge it whole
            level, shift, base = PageTableLevel.PTE, -1, start
            span = (start, end)
        else:
            depth, base = where
            level, shift = shifts[depth]
            span = _clip(base, base + (paging.ptrs_per(level) << shift), start, end) or (start, start)
        key = (int(level), base if shift >= 0 else -paddr)
        name = f"{level.name} table {paddr:#x}"
        try:
            if static:
                new = old
            else:
                new = backend.read_table(paddr)
                chk.table_reads += 1
        except TableReadError:
            chk.tables[key] = (span[0], span[1], True)
            chk.torn.append(TornRange(span[0], span[1], TABLE_CHANGED, f"{name} freed"))
            continue
        if new is old or bytes(new) == bytes(old):
            chk.tables[key] = (span[0], span[1], False)
            continue
        changed = []
        for i in range(min(len(old), len(new))):
            if not paging.same_but_hw_bits(old[i], new[i]):
                changed.append(i)
        torn: list[tuple[int, int]] = []
        if shift < 0:
            if changed:
                torn.append(span)
        elif level == PageTableLevel.PTE:
            # one PTL covers the whole table: any entry the read looked at
            # that changed tears all of it that was read
            lo, hi = (span[0] - base) >> shift, (span[1] - 1 - base) >> shift
            if any(lo <= i <= hi for i in changed):
                torn.append(span)
        else:
            for i in changed:
                r = _clip(base + (i << shift), base + ((i + 1) << shift), start, end)
                if r is not None:
                    torn.append(r)
        chk.tables[key] = (span[0], span[1], bool(torn))
        n = len(changed)
        for s, e in torn:
            chk.torn.append(TornRange(s, e, TABLE_CHANGED, f"{name}: {n} {'entry' if n == 1 else 'entries'}"))


def _missing(walk: MMWalk, start: int, end: int, chk: _Check[Any]) -> None:
    """
    The ranges of [start, end) under the tables *walk* could not read, and
    of the pages whose ``struct page`` it could not read
    (:data:`~livewalk.mm.overlay.PAGE_UNREADABLE`: the entries there are
    exact but what the page state decides is unknown); consecutive pages
    with consecutive PFNs make one range.
    """
    paging = walk.paging
    run: list[int] = []  # [start, end, first pfn, next pfn] of unreadable struct pages
    for e in walk.errors:
        if e.reason not in ("unreadable", PAGE_UNREADABLE):
            continue
        level = PageTableLevel(e.level)
        size = 1 << paging.level_shift(level)
        base = e.addr & ~(size - 1) & ULONG_MAX
        span = _clip(base, base + size, start, end)
        if e.reason == PAGE_UNREADABLE:
            if span is None:
                continue
            first = e.value + ((span[0] - base) >> paging.page_shift)
            nxt = e.value + ((span[1] - base) >> paging.page_shift)
            if run and run[1] == span[0] and run[3] == first:
                run[1], run[3] = span[1], nxt
            else:
                _page_run(run, chk)
                run = [span[0], span[1], first, nxt]
            continue
        if level == PageTableLevel.PGD and e.addr == 0:
            span = (start, end)  # the top table, or its first entry's
        if span is not None:
            detail = f"{level.name} entry's table {e.value:#x} not readable"
            chk.missing.append(TornRange(span[0], span[1], NOT_IN_DUMP, detail))
    _page_run(run, chk)


def _page_run(run: list[int], chk: _Check[Any]) -> None:
    """Record a run of pages whose ``struct page`` is not readable (see :func:`_missing`)."""
    if not run:
        return
    s, e, first, nxt = run
    if nxt - first <= 1:
        what = f"struct page of PFN {first:#x}"
    else:
        what = f"struct pages of PFNs {first:#x}-{nxt - 1:#x}"
    chk.missing.append(TornRange(s, e, NOT_IN_DUMP, f"{what} not readable: page state unknown"))


def _check(
    backend: PageTableBackend,
    mm: Any,
    start: int,
    end: int,
    read: Callable[[int, int, list[MMWalk]], T],
) -> _Check[T]:
    """One read of [start, end) with its check."""
    transient = transient_errors()
    chk: _Check[T] = _Check()

    def read_error(e: BaseException) -> None:
        chk.whole = False
        chk.torn.append(TornRange(start, end, READ_ERROR, f"{type(e).__name__}: {e}"[:200]))

    try:
        stamp0 = backend.mm_stamp(mm)
        vmas0 = _vma_list(backend, mm, start, end)
    except transient as e:
        if not _is_target_error(e):
            raise
        read_error(e)
        return chk
    walks: list[MMWalk] = []
    try:
        chk.value = read(start, end, walks)
    except transient as e:
        if not _is_target_error(e):
            raise
        read_error(e)
    for w in walks:
        _missing(w, start, end, chk)
    static = _static(backend)
    try:
        for w in walks:
            chk.table_reads += w.table_reads
            _check_tables(w, start, end, chk, backend, static)
        stamp1 = backend.mm_stamp(mm)
        chk.vmas = _vma_list(backend, mm, start, end)
    except transient as e:
        if not _is_target_error(e):
            raise
        read_error(e)
        return chk
    if stamp0 is None or stamp1 != stamp0 or stamp0[0] & 1:
        chk.whole = False
        before = {_vma_key(v): v for v in vmas0}
        after = {_vma_key(v): v for v in chk.vmas}
        for what, mine, other in (("gone or changed", before, after), ("new", after, before)):
            for k, v in mine.items():
                if k not in other:
                    r = _clip(v.vm_start, v.vm_end, start, end)
                    if r is not None:
                        detail = f"VMA {v.vm_start:#x}-{v.vm_end:#x} {what}"
                        chk.torn.append(TornRange(r[0], r[1], VMA_TREE_CHANGED, detail))
    if chk.torn:
        chk.whole = False
    return chk


def _merge(torn: Iterable[TornRange]) -> list[TornRange]:
    """Sort, and merge overlapping or adjacent ranges of the same reason."""
    out: list[TornRange] = []
    for t in sorted(torn, key=lambda t: (t.start, t.end)):
        for j in range(len(out) - 1, -1, -1):
            o = out[j]
            if o.end < t.start:
                out.append(t)  # apart from every range so far
                break
            if o.reason == t.reason:
                detail = o.detail if t.detail in o.detail else f"{o.detail}; {t.detail}"
                if len(detail) > 160:
                    detail = detail[:157] + "..."
                out[j] = TornRange(o.start, max(o.end, t.end), o.reason, detail)
                break
        else:
            out.append(t)
    return sorted(out, key=lambda t: (t.start, t.end))


def _spans(torn: Iterable[TornRange], vmas: Sequence[VMA], unit: str, start: int, end: int) -> list[tuple[int, int]]:
    """The ranges to read again: the torn ranges (whole VMAs for ``unit="vma"``), merged."""
    spans = []
    for t in torn:
        s, e = t.start, t.end
        if unit == "vma":
            for v in vmas:
                if v.vm_start < e and s < v.vm_end:
                    s, e = min(s, v.vm_start), max(e, v.vm_end)
        r = _clip(s, e, start, end)
        if r is not None:
            spans.append(r)
    spans.sort()
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def read_consistent(
    mm: Any,
    start: int,
    end: int,
    read: Callable[[int, int, list[MMWalk]], T],
    splice: Callable[[T, int, int, T], T] | None = None,
    *,
    retries: int = DEFAULT_RETRIES,
    unit: str = "table",
) -> ConsistentRead[T]:
    """
    Read [*start*, *end*) of *mm* with ``read(start, end, walks)`` and judge
    what it returned, range by range; read again only the torn ranges.

    *read* walks [start, end) of *mm* with the walker's entry points,
    passing ``walks=walks`` to each (so that the tables it used can be
    checked), and returns its result for that range. *splice* puts the
    result of a range read again into the result so far:
    ``splice(value, s, e, new)`` returns the value with [s, e) replaced by
    *new*. Without *splice* a torn read is retried whole.

    >>> def read(s, e, walks):
    ...     return pagemap_read(mm, s, e, walks=walks)  # doctest: +SKIP
    >>> def splice(value, s, e, new):
    ...     value[(s - start) >> 12:(e - start) >> 12] = new
    ...     return value

    :param mm: the mm (a drgn ``struct mm_struct *`` or a synthetic mm)
    :param retries: rounds of reads again after the first read (bounded)
    :param unit: ``"table"`` reads again the torn ranges; ``"vma"`` grows
        them to whole VMAs first (for readers whose result is per VMA)
    :return: a :class:`ConsistentRead`
    :raises ValueError: for a negative *retries* or an unknown *unit*
    """
    if retries < 0:
        raise ValueError("retries must be >= 0")
    if unit not in ("table", "vma"):
        raise ValueError(f"unit must be 'table' or 'vma', not {unit!r}")
    t0 = time.monotonic()
    backend = backend_for_mm(mm)
    res = RangeConsistency(start, end)
    chk = _check(backend, mm, start, end, read)
    value = chk.value
    res.whole = chk.whole
    res.reads = res.rounds = 1
    res.table_reads = chk.table_reads
    tables = dict(chk.tables)
    vmas = list(chk.vmas)
    torn = chk.torn
    missing = list(chk.missing)
    while torn and res.rounds <= retries:
        if value is None or splice is None:
            spans = [(start, end)]
        else:
            spans = _spans(torn, vmas, unit, start, end)
        res.rounds += 1
        torn = []
        now: dict[tuple[int, int], tuple[int, int, bool]] = {}
        for s, e in spans:
            sub = _check(backend, mm, s, e, read)
            res.reads += 1
            res.retried.append((s, e))
            res.table_reads += sub.table_reads
            torn += sub.torn
            if sub.value is not None:
                if value is None or splice is None or (s, e) == (start, end):
                    value = sub.value
                    res.whole = sub.whole
                else:
                    value = splice(value, s, e, sub.value)
            # the tables and VMAs of [s, e) are now those of this read
            tables = {k: t for k, t in tables.items() if not (s <= t[0] and t[1] <= e)}
            for k, t in sub.tables.items():
                old = now.get(k)
                now[k] = (t[0], t[1], t[2] or (old is not None and old[2]))
            vmas = [v for v in vmas if not (v.vm_start < e and s < v.vm_end)] + sub.vmas
            missing = [t for t in missing if not (s <= t.start and t.end <= e)] + sub.missing
        tables.update(now)
        vmas.sort(key=lambda v: v.vm_start)
        if (start, end) not in spans:
            res.whole = False
    res.torn = _merge(torn)
    res.missing = _merge(missing)
    res.tables = len(tables)
    res.tables_torn = sum(1 for t in tables.values() if t[2])
    res.vmas = len(vmas)
    res.vmas_torn = sum(1 for v in vmas if res.torn_in(v.vm_start, v.vm_end))
    res.seconds = time.monotonic() - t0
    return ConsistentRead(value, res)


