# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Who maps this page
------------------

The state of one physical page (its folio, order, flags, mapcounts,
``mapping``: anonymous, KSM or file, swap cache) and every user mapping of
it: each (process, virtual address, level) whose page table points at it.

The kernel answers "who maps this folio" with the reverse map (``rmap_walk``
over the ``anon_vma`` or the ``address_space`` tree). A dump may be torn
mid-update and the rmap may be incomplete or stale, so this tool asks the
page tables themselves instead: one :func:`~livewalk.mm.pagewalk.walk_page_range`
per mm with a ``pmd_entry`` that reads each PTE table whole (512 entries in
one read) and searches its bytes for the PFN, a ``pud_entry`` for 1 GiB
leaves and a ``hugetlb_entry`` for hugetlb pages. Nothing is translated page
by page, so every process of a VM is covered in seconds.

Present and ``PROT_NONE`` entries count as mappings (a ``PROT_NONE`` PTE
stores its PFN inverted, Linux 7.2 ``arch/x86/include/asm/pgtable-invert.h``).
Non-present entries that carry the PFN are reported too, with their kind
(:attr:`PfnMapping.kind`): a migration entry (the page is being migrated:
the process maps it again when the migration ends or fails), a
device-private or device-exclusive entry (the page, or its device copy, is
owned by a device driver) and a hwpoison entry. A page under migration
shows up in no PTE as present: without these, "who maps this page" would
answer "nobody" for a page every process still uses.

On a live target each mm's walk is judged
(:func:`~livewalk.consistency.read_consistent`): a table that changed while
it was searched is searched again, and what still tore is reported
(:attr:`PfnReport.consistency`), since a mapping there may have been missed.

>>> report = who_maps(prog, 0x11e5a3)          # doctest: +SKIP
>>> print(format_pfn(report))                  # doctest: +SKIP
PFN 11e5a3 (phys 11e5a3000)  PAGE ffffea000479 68c0
...
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from drgn import FaultError, Object, Program

from livewalk.arch import ArchPaging, PageTableLevel
from livewalk.backend import backend_for_mm
from livewalk.consistency import DEFAULT_RETRIES, RangeConsistency, read_consistent
from livewalk.errors import LivewalkError

__all__ = (
    "PfnMapping",
    "page_flag_names",
    "PfnReport",
    "PfnState",
    "PfnHit",
    "find_pfn_in_mm",
    "find_pfn_in_mm_consistent",
    "format_pfn",
    "page_state",
    "who_maps",
)

# swp_entry_t in folio->swap (Linux 7.2 include/linux/swapops.h): the type
# above BITS_PER_XA_VALUE - MAX_SWAPFILES_SHIFT = 63 - 5 bits.
_SWP_TYPE_SHIFT = 58


@dataclasses.dataclass
class PfnMapping:
    """
    One page-table entry that maps the page.

    :ivar pid: the first task (lowest PID) using the mm
    :ivar comm: its command name
    :ivar pids: every task using the mm (threads and ``CLONE_VM`` children)
    :ivar vaddr: the virtual address of the page itself (inside a huge leaf,
        the address of this 4 KiB page)
    :ivar level: the level of the entry (PTE, PMD or PUD)
    :ivar value: the entry's raw value
    :ivar protnone: the entry is ``PROT_NONE`` (or a NUMA hinting fault)
    :ivar hugetlb: reached through ``hugetlb_entry``
    :ivar kind: ``"present"`` for an entry that maps the page, else the
        kind of non-present entry that holds its PFN
        (:class:`~livewalk.mm.swapops.SwapKind` value: ``"migration_read"``,
        ``"migration_read_exclusive"``, ``"migration_write"``,
        ``"device_write"``, ``"device_read"``, ``"device_exclusive"``,
        ``"hwpoison"``)
    :ivar torn: the entry lies in a range that changed while it was read
    """

    pid: int
    comm: str
    pids: list[int]
    vaddr: int
    level: PageTableLevel
    value: int
    protnone: bool = False
    hugetlb: bool = False
    kind: str = "present"
    torn: bool = False


class PfnHit(NamedTuple):
    """One entry :func:`find_pfn_in_mm` found."""

    #: the virtual address of the page (inside a huge leaf, of this 4 KiB page)
    vaddr: int
    #: the level of the entry
    level: PageTableLevel
    #: its raw value
    value: int
    #: reached through ``hugetlb_entry``
    hugetlb: bool = False
    #: as :attr:`PfnMapping.kind`
    kind: str = "present"


@dataclasses.dataclass
class PfnState:
    """The page's state, read from its ``struct page`` and folio."""

    pfn: int
    page: int
    head_pfn: int
    order: int
    flags: int
    flag_names: str
    refcount: int
    mapcount: int
    folio_mapcount: int
    mapping: int
    kind: str
    index: int
    swapcache: tuple[int, int] | None
    file: str = ""
    #: why the state is unknown (its ``struct page`` is not in the dump), or ""
    not_in_dump: str = ""


@dataclasses.dataclass
class PfnReport:
    """:func:`who_maps`: the page, its mappings, and what the search cost."""

    state: PfnState
    mappings: list[PfnMapping]
    mms: int
    tasks: int
    seconds: float
    table_reads: int
    errors: list[str] = dataclasses.field(default_factory=list)
    #: the verdict of each mm's search, by the first PID using it
    consistency: dict[int, RangeConsistency] = dataclasses.field(default_factory=dict)
    #: (pid, comm) of each mm by that PID
    users: dict[int, str] = dataclasses.field(default_factory=dict)
    #: the target's ``PAGE_SHIFT`` (12; 14 or 16 on arm64)
    page_shift: int = 12


def page_flag_names(prog: Program, flags: int) -> list[str]:
    """
    The names of the page flags set in *flags* (``enum pageflags``), one per
    bit below ``__NR_PAGEFLAGS``: the first name the enum gives a bit (its
    own name, not a later alias such as ``PG_swapcache`` for
    ``PG_owner_priv_1``); the zone, node and section bits above are left out.
    """
    from livewalk.mm.page import KernelState

    ks = KernelState.for_program(prog)
    by_bit: dict[int, str] = {}
    for name, bit in ks.pageflags.items():
        if name.startswith("__"):
            continue
        by_bit.setdefault(bit, name[3:] if name.startswith("PG_") else name)
    nr = ks.pageflags.get("__NR_PAGEFLAGS", max(by_bit, default=0) + 1)
    return [by_bit[b] for b in sorted(by_bit) if b < nr and flags >> b & 1]


def _check_pfn(prog: Program, pfn: int) -> None:
    try:
        max_pfn = int(prog["max_pfn"].value_())
    except KeyError:
        return
    if not 0 <= pfn < max_pfn:
        raise LivewalkError(
            f"PFN {pfn:#x} is outside memory (the highest PFN is {max_pfn - 1:#x})"
        )


def page_state(prog: Program, pfn: int) -> PfnState:
    """
    The state of page *pfn*: its folio (head PFN, order), the head's flags,
    ``_refcount``, the page's precise mapcount and the folio's mapcount, and
    what ``mapping`` holds (anonymous: the ``anon_vma``; KSM; file: the
    ``address_space`` and the file's path), with the swap entry of a folio
    in the swap cache.

    A ``struct page`` (or folio) that is not in the dump gives a state with
    :attr:`PfnState.not_in_dump` set and the fields read so far.

    :raises LivewalkError: if *pfn* lies outside memory
    """
    from livewalk.mm.page import KernelState

    _check_pfn(prog, pfn)
    ks = KernelState.for_program(prog)
    try:
        return _page_state(prog, pfn)
    except FaultError as e:
        return PfnState(pfn=pfn, page=ks.pfn_to_page_addr(pfn), head_pfn=pfn, order=0, flags=0,
                        flag_names="", refcount=0, mapcount=0, folio_mapcount=0, mapping=0,
                        kind="none", index=0, swapcache=None,
                        not_in_dump=f"its struct page is not in the dump ({e})")


def _page_state(prog: Program, pfn: int) -> PfnState:
    from drgn.helpers.linux.mm import pfn_to_page

    from livewalk.mm.page import KernelState, PageReader

    reader = PageReader(prog)
    pi = reader.info(pfn)
    ks = KernelState.for_program(prog)
    nr = pi.nr_pages if pi.large else 1
    order = nr.bit_length() - 1
    names = ",".join(page_flag_names(prog, pi.flags))
    kind = "none"
    mapping = pi.mapping
    file = ""
    if reader.ksm(pi):
        kind = "ksm"
    elif reader.anon(pi):
        kind = "anon"
    elif mapping:
        kind = "file"
        file = _mapping_path(prog, mapping)
    swapcache = None
    pg = ks.pageflags
    if (
        "PG_owner_priv_1" in pg
        and pi.flags >> pg["PG_owner_priv_1"] & 1
        and pi.flags >> ks.pg_swapbacked & 1
    ):
        # folio_test_swapcache(): PG_swapcache (= PG_owner_priv_1) on a
        # swap-backed folio; the entry is in folio->swap.
        folio = Object(prog, "struct folio *", int(pfn_to_page(prog, pi.head_pfn).value_()))
        val = int(folio.swap.val.value_())
        swapcache = (val >> _SWP_TYPE_SHIFT, val & ((1 << _SWP_TYPE_SHIFT) - 1))
    head = pfn_to_page(prog, pi.head_pfn)
    index = 0
    for member in ("__folio_index", "index"):
        try:
            index = int(getattr(head, member).value_())
            break
        except AttributeError:
            continue
    return PfnState(
        pfn=pfn,
        page=ks.pfn_to_page_addr(pfn),
        head_pfn=pi.head_pfn,
        order=order,
        flags=pi.flags,
        flag_names=names,
        refcount=pi.refcount,
        mapcount=reader.precise_mapcount(pi),
        folio_mapcount=reader.folio_mapcount(pi),
        mapping=mapping,
        kind=kind,
        index=index,
        swapcache=swapcache,
        file=file,
    )


def _mapping_path(prog: Program, mapping: int) -> str:
    try:
        from drgn.helpers.linux.fs import inode_path

        inode = Object(prog, "struct address_space *", mapping).host
        path = inode_path(inode)
        ino = int(inode.i_ino.value_())
        return (path.decode(errors="replace") if path else "(no path)") + f" (inode {ino})"
    except Exception:  # a half-torn mapping in a dump: keep the address only
        return ""


# -- the search ----------------------------------------------------------------


class _Search:
    """Private state of one mm's walk: the PFN, its byte patterns, the hits."""

    def __init__(self, paging: ArchPaging, pfn: int) -> None:
        self.paging = paging
        self.pfn = pfn
        # Bits 16-47 of an entry are PFN bits 4-35: four bytes at offset 2 of
        # each 8-byte entry. PROT_NONE entries hold the PFN bits inverted.
        # A migration, device or hwpoison entry holds the PFN as its swap
        # offset: its bits 16-47 are those of any swap entry of that offset
        # (the type bits lie outside them on x86-64 and arm64).
        swp = paging.swp_entry_to_pte(0, pfn)
        self.patterns = (
            ((pfn >> 4) & 0xFFFFFFFF).to_bytes(4, "little"),
            ((~pfn >> 4) & 0xFFFFFFFF).to_bytes(4, "little"),
            ((swp >> 16) & 0xFFFFFFFF).to_bytes(4, "little"),
        )
        self.hits: list[PfnHit] = []

    def scan_table(self, table: Sequence[int], base: int, addr: int, next: int) -> None:
        """
        The slots of PTE table *table* (mapping from *base*) that map
        [*addr*, *next*): ``pmd_entry`` runs once per VMA in a PMD's range,
        and each call owns its VMA's slots only.
        """
        # array('Q') and memoryview('Q') are both buffers: search their bytes.
        raw = memoryview(table).cast("B").tobytes()  # type: ignore[arg-type]
        p = self.paging
        lo, hi = (addr - base) >> p.page_shift, (next - base) >> p.page_shift
        seen: set[int] = set()
        for pat in self.patterns:
            pos = raw.find(pat, 8 * lo)
            while 0 <= pos < 8 * hi:
                if pos % 8 == 2 and pos // 8 not in seen:
                    i = pos // 8
                    seen.add(i)
                    v = table[i]
                    vaddr = base + (i << p.page_shift)
                    if p.pte_present(v):
                        if p.pte_pfn(v) == self.pfn:
                            self.hits.append(PfnHit(vaddr, PageTableLevel.PTE, v))
                    else:
                        kind = self._pfn_entry(v)
                        if kind:
                            self.hits.append(PfnHit(vaddr, PageTableLevel.PTE, v, kind=kind))
                pos = raw.find(pat, pos + 1)

    def _pfn_entry(self, v: int) -> str:
        """The kind of non-present entry *v* if it holds this PFN, else ``""``."""
        if not v or self.paging.pte_none(v):
            return ""
        swap = self.paging.decode_swap(v)
        if swap is None or swap.pfn != self.pfn:
            return ""
        return swap.kind.value

    def leaf(self, entry: Any, addr: int, size: int, hugetlb: bool = False) -> None:
        """A huge entry mapping *size* bytes at *addr*: present, or holding a PFN."""
        kind = "present"
        if entry.present:
            first = entry.pfn
        else:
            swap = entry.swap
            if swap is None or swap.pfn is None:
                return
            first, kind = swap.pfn, swap.kind.value
        n = size >> self.paging.page_shift
        if first <= self.pfn < first + n:
            base = addr & ~(size - 1)
            vaddr = base + ((self.pfn - first) << self.paging.page_shift)
            self.hits.append(PfnHit(vaddr, PageTableLevel(int(entry.level)), entry.value, hugetlb, kind))


def _ops() -> Any:
    from livewalk.mm.pagewalk import MMWalkOps, PageWalkAction

    def pud_entry(pud: Any, addr: int, next: int, walk: Any) -> int:
        if pud.leaf or (not pud.present and not pud.none):
            walk.private.leaf(pud, addr, 1 << walk.private.paging.level_shift(PageTableLevel.PUD))
            walk.action = PageWalkAction.ACTION_CONTINUE
        return 0

    def pmd_entry(pmd: Any, addr: int, next: int, walk: Any) -> int:
        from livewalk.backend import TableReadError

        s: _Search = walk.private
        try:
            table = None if pmd.none else pmd.pte_table()
        except TableReadError as e:
            # not in the dump: a hole, recorded in walk.errors as the walker
            # records the tables it cannot read itself
            walk.overlay.error(PageTableLevel.PMD, addr, e.paddr, "unreadable")
            walk.action = PageWalkAction.ACTION_CONTINUE
            return 0
        if table is not None:
            pmd_size = 1 << s.paging.level_shift(PageTableLevel.PMD)
            s.scan_table(table, addr & ~(pmd_size - 1), addr, next)
        elif pmd.leaf or not (pmd.present or pmd.none):
            # a THP, or a PMD migration or device entry
            s.leaf(pmd, addr, 1 << s.paging.level_shift(PageTableLevel.PMD))
        # Never split or descend: the PTE table was read whole above.
        walk.action = PageWalkAction.ACTION_CONTINUE
        return 0

    def hugetlb_entry(pte: Any, hmask: int, addr: int, next: int, walk: Any) -> int:
        from livewalk.arch import ULONG_MAX

        if not pte.none:
            walk.private.leaf(pte, addr, (~hmask & ULONG_MAX) + 1, hugetlb=True)
        return 0

    def test_walk(addr: int, next: int, walk: Any) -> int:
        return 0  # VM_PFNMAP VMAs too: their PTEs may point at the page

    return MMWalkOps(pud_entry=pud_entry, pmd_entry=pmd_entry,
                     hugetlb_entry=hugetlb_entry, test_walk=test_walk)


def find_pfn_in_mm(mm: Any, pfn: int, *, walks: list[Any] | None = None,
                   start: int = 0, end: int | None = None) -> list[PfnHit]:
    """
    Every entry of *mm*'s page tables that maps *pfn*, or holds it as a
    migration, device or hwpoison entry: :class:`PfnHit` tuples, in address
    order. *mm* is anything :func:`~livewalk.mm.pagewalk.walk_page_range`
    takes (a drgn ``struct mm_struct *``, a synthetic mm).

    >>> from livewalk.backend.synthetic import SyntheticMM
    >>> mm = SyntheticMM(levels=4)
    >>> _ = mm.add_vma(0x7F0000000000, 0x7F0000400000)
    >>> mm.map_4k(0x7F0000001000, pfn=0x1234)
    >>> mm.map_2m(0x7F0000200000, pfn=0x1200)
    >>> mm.map_migration(0x7F0000002000, pfn=0x1234)
    >>> [(hex(h.vaddr), h.level.name, h.kind) for h in find_pfn_in_mm(mm, 0x1234)]
    [('0x7f0000001000', 'PTE', 'present'), ('0x7f0000002000', 'PTE', 'migration_read'), \
('0x7f0000234000', 'PMD', 'present')]

    :param walks: if given, the walk is appended to it (for the consistency check)
    :param start: search [*start*, *end*) only (default: all of user space)
    """
    from livewalk.mm.pagewalk import walk_page_range

    backend = backend_for_mm(mm)
    s = _Search(backend.paging, pfn)
    walk_page_range(mm, start, backend.mm_task_size(mm) if end is None else end, _ops(), s, walks=walks)
    s.hits.sort(key=lambda h: h[0])
    return s.hits


def find_pfn_in_mm_consistent(mm: Any, pfn: int, *, retries: int = DEFAULT_RETRIES) -> tuple[list[PfnHit], RangeConsistency]:
    """
    :func:`find_pfn_in_mm`, judged table by table
    (:func:`~livewalk.consistency.read_consistent`): the tables that changed
    while searched are searched again (at most *retries* rounds).
    """
    backend = backend_for_mm(mm)

    def read(s: int, e: int, walks: list[Any]) -> list[PfnHit]:
        return find_pfn_in_mm(mm, pfn, walks=walks, start=s, end=e)

    def splice(value: list[PfnHit], s: int, e: int, new: list[PfnHit]) -> list[PfnHit]:
        return sorted([h for h in value if not s <= h.vaddr < e] + new, key=lambda h: h.vaddr)

    r = read_consistent(mm, 0, backend.mm_task_size(mm), read, splice, retries=retries)
    return (r.value or []), r.consistency


def _mms(prog: Program, errors: list[str]) -> Iterable[tuple[Object, list[tuple[int, str]]]]:
    """
    Each mm once, with the (pid, comm) of every task using it. A task list
    that breaks off (a task not in the dump) ends the list there, said in
    *errors*.
    """
    from drgn.helpers.linux.pid import for_each_task

    from livewalk.task import task_comm

    by_mm: dict[int, tuple[Object, list[tuple[int, str]]]] = {}
    tasks = for_each_task(prog)
    while True:
        try:
            task = next(tasks)
            mm = task.mm.read_()
            addr = int(mm.value_())
            pid = int(task.pid.value_())
            comm = task_comm(task)
        except StopIteration:
            break
        except FaultError as e:
            errors.append(f"the task list is not in the dump past {len(by_mm)} address spaces ({e})")
            break
        if not addr:
            continue
        if addr not in by_mm:
            by_mm[addr] = (mm, [])
        by_mm[addr][1].append((pid, comm))
    for mm, users in by_mm.values():
        users.sort()
        yield mm, users


def who_maps(prog: Program, pfn: int, *, retries: int = DEFAULT_RETRIES) -> PfnReport:
    """
    The state of page *pfn* and every user mapping of it, found by walking
    the page tables of every mm of *prog* once (each walk judged, the torn
    tables searched again at most *retries* rounds).

    :raises LivewalkError: if *pfn* is outside memory or its ``struct page``
        cannot be read
    """
    from livewalk.backend import TableReadError

    state = page_state(prog, pfn)
    start = time.perf_counter()
    mappings: list[PfnMapping] = []
    errors: list[str] = []
    mms = tasks = 0
    reads = 0
    consistency: dict[int, RangeConsistency] = {}
    names: dict[int, str] = {}
    for mm, users in _mms(prog, errors):
        mms += 1
        tasks += len(users)
        pid, comm = users[0]
        try:
            hits, cons = find_pfn_in_mm_consistent(mm, pfn, retries=retries)
        except (FaultError, TableReadError) as e:
            errors.append(f"PID {pid} ({comm}): {e}")
            continue
        consistency[pid] = cons
        names[pid] = comm
        reads += cons.table_reads
        paging = backend_for_mm(mm).paging
        for h in hits:
            mappings.append(PfnMapping(
                pid=pid, comm=comm, pids=[u[0] for u in users], vaddr=h.vaddr,
                level=h.level, value=h.value, hugetlb=h.hugetlb, kind=h.kind,
                protnone=h.kind == "present" and not h.value & 1 and paging.pte_present(h.value),
                torn=not cons.consistent(h.vaddr, h.vaddr + 1)))
    return PfnReport(state, mappings, mms, tasks, time.perf_counter() - start, reads, errors,
                     consistency, names, int(prog["PAGE_SHIFT"]))


def _state_lines(s: PfnState) -> list[str]:
    lines = [
        f"  FOLIO: head pfn {s.head_pfn:x}, order {s.order} ({(1 << s.order) * 4} KiB)"
        + ("" if s.head_pfn == s.pfn else f", page {s.pfn - s.head_pfn} of the folio"),
        f"  FLAGS: {s.flags:x} {s.flag_names}".rstrip(),
        f"  REFCOUNT: {s.refcount}  MAPCOUNT: {s.mapcount} (page), {s.folio_mapcount} (folio)",
    ]
    if s.kind == "anon":
        lines.append(f"  MAPPING: anon, anon_vma {s.mapping & ~3:x}, index {s.index:x}")
    elif s.kind == "ksm":
        lines.append(f"  MAPPING: KSM, stable node {s.mapping & ~3:x}")
    elif s.kind == "file":
        lines.append(f"  MAPPING: file, address_space {s.mapping:x} {s.file}".rstrip()
                     + f", index {s.index:x}")
    else:
        lines.append("  MAPPING: none")
    if s.swapcache is not None:
        lines.append(f"  SWAPCACHE: type {s.swapcache[0]}, offset {s.swapcache[1]:#x}")
    return lines


def format_pfn(report: PfnReport) -> str:
    """
    The report as text: the page (``(not in dump: ...)`` when its ``struct
    page`` is not in the dump), then one line per entry that holds it, with
    its kind for non-present entries and ``torn`` where it changed while
    read, then the ``# torn`` and ``# not in dump`` marks of each address
    space searched.
    """
    s = report.state
    lines = [f"PFN {s.pfn:x}  PHYSICAL {s.pfn << report.page_shift:x}  PAGE {s.page:x}"]
    if s.not_in_dump:
        lines.append(f"  FOLIO, FLAGS, REFCOUNT, MAPCOUNT, MAPPING: (not in dump: {s.not_in_dump})")
    else:
        lines += _state_lines(s)
    lines.append("")
    lines.append(f"{'PID':>7}  {'COMMAND':<16} {'VIRTUAL':>16}  LEVEL  {'ENTRY':>16}")
    for m in report.mappings:
        extra = " PROTNONE" if m.protnone else ""
        extra += "" if m.kind == "present" else f" {m.kind.upper()}"
        extra += " hugetlb" if m.hugetlb else ""
        extra += " torn" if m.torn else ""
        more = f"  (+{len(m.pids) - 1} tasks)" if len(m.pids) > 1 else ""
        lines.append(
            f"{m.pid:>7}  {m.comm:<16} {m.vaddr:>16x}  {m.level.name:<5}  {m.value:>16x}{extra}{more}"
        )
    if not report.mappings:
        lines.append("(no process maps this page)")
    for pid, cons in report.consistency.items():
        for mark in cons.marks():
            lines.append(f"{mark} (PID {pid} {report.users.get(pid, '')})")
    for err in report.errors:
        lines.append(f"WARNING: {err}")
    n_present = sum(1 for m in report.mappings if m.kind == "present")
    held = len(report.mappings) - n_present
    lines.append(
        f"{n_present} mappings" + (f" and {held} non-present entries holding the PFN" if held else "")
        + f" in {report.mms} address spaces "
        f"({report.tasks} tasks), searched in {report.seconds:.2f} s"
    )
    return "\n".join(lines)
