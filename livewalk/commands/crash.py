# SPDX-License-Identifier: LGPL-2.1-or-later
"""
crash's commands, walked by livewalk
------------------------------------

crash's ``vtop``, ``vm -p`` and ``pte``, with crash's arguments and crash's
output layout (:mod:`livewalk.tools.crash_format`), computed by livewalk's
walker, plus ``pfn`` (who maps this page, :mod:`livewalk.tools.pfn`).

At the drgn prompt they are ``%lwvtop``, ``%lwvm``, ``%lwpte`` and
``%lwpfn``: drgn 0.3 has its own ``vtop`` and ``vm`` among its crash
commands (``%crash vtop``), so livewalk's take the ``lw`` prefix rather than
shadow them; the arguments after the name are crash's:

* ``%lwvtop [-c PID|TASK] [-u|-k] ADDRESS...``: every level as ``LEVEL:
  entry => value (flags)``, the leaf, the VMA, the ``struct page``, or the
  swap / migration / marker entry, or the file offset of a page not mapped.
* ``%lwvm [-p] [PID|TASK]...``: the VMAs; with ``-p`` every page of every
  VMA: its physical address, swap device and offset, file and offset, or
  ``(not mapped)``. One walk per process (a ``pmd_entry`` that takes each
  PTE table whole), not one translation per page.
* ``%lwpte VALUE...``: decode raw entries.
* ``%lwpfn PFN...``: the page's state and every process mapping it.

A PID is decimal, a task a hexadecimal ``struct task_struct`` address, as in
crash. Without ``-c``/PID the context is the crashed task of a dump, or drgn
itself on a live local kernel. The same are on the ``livewalk`` command
line: ``livewalk vm -p 145``, ``livewalk pte 8000000111855067``,
``livewalk pfn 0x11e5a3`` (``livewalk vtop`` keeps its own layout).

>>> run_command(prog, "lwpte 8000000111855067")     # doctest: +SKIP
       PTE         PHYSICAL   FLAGS
8000000111855067  111855000  (PRESENT|RW|USER|ACCESSED|DIRTY|NX)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn, TextIO

from drgn import FaultError, Object, Program, ProgramFlags

from livewalk.arch import PageTableLevel
from livewalk.commands.args import add_consistency_arguments
from livewalk.consistency import ConsistencyTally, RangeConsistency, read_consistent
from livewalk.errors import LivewalkError, NoSuchProcessError, UsageError
from livewalk.task import task_of
from livewalk.tools import crash_format as cf

__all__ = (
    "add_pfn_arguments",
    "add_pte_arguments",
    "add_vm_arguments",
    "add_vtop_arguments",
    "crash_pfn",
    "crash_pte",
    "crash_vm",
    "crash_vtop",
    "parse_pfn",
    "parse_pte_value",
    "register_drgn_commands",
)

PMD_SIZE = 1 << 21
PUD_SIZE = 1 << 30


# -- argument types (crash's) -----------------------------------------------------


def parse_pte_value(text: str) -> int:
    """
    A raw entry: hexadecimal, as crash's ``pte`` reads it (``0x`` optional).

    >>> hex(parse_pte_value("8000000111855067"))
    '0x8000000111855067'
    """
    s = text.strip().lower()
    s = s[2:] if s.startswith("0x") else s
    try:
        if not s or s[0] in "+-":
            raise ValueError
        value = int(s, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad entry value {text!r}: expected a hexadecimal number such as 8000000111855067"
        ) from None
    if value >> 64:
        raise argparse.ArgumentTypeError(f"bad entry value {text!r}: larger than 64 bits")
    return value


def parse_pfn(text: str) -> int:
    """
    A page frame number: decimal, or hexadecimal with ``0x`` or with hex
    digits (drgn's ``decimal_or_hexadecimal``, as its ``ptob``).

    >>> parse_pfn("0x11e5a3"), parse_pfn("4096"), parse_pfn("1e5a3")
    (1172899, 4096, 124323)
    """
    s = text.strip().lower()
    try:
        if not s or s[0] in "+-":
            raise ValueError
        return int(s, 16) if s.startswith("0x") else int(s) if s.isdigit() else int(s, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad PFN {text!r}: expected a number such as 0x11e5a3 or 1172899"
        ) from None


def _hex_addr(text: str) -> int:
    from livewalk.commands.args import parse_address

    try:
        return parse_address(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _pid_or_task(text: str) -> tuple[str, int]:
    # crash: decimal is a PID, anything else a hexadecimal task_struct address.
    s = text.strip()
    if s.isdigit():
        return "pid", int(s)
    try:
        return "task", int(s[2:] if s.lower().startswith("0x") else s, 16)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad PID or task {text!r}: expected a decimal PID or a hexadecimal task_struct address"
        ) from None


def add_vtop_arguments(p: Any) -> None:
    """crash's ``vtop [-c [pid | taskp]] [-u|-k] address ...``."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("-u", dest="user", action="store_true", help="the addresses are user addresses")
    g.add_argument("-k", dest="kernel", action="store_true", help="the addresses are kernel addresses")
    p.add_argument("-c", dest="context", type=_pid_or_task, metavar="PID|TASK",
                   help="translate in this task's address space (decimal PID or "
                   "hexadecimal task_struct address)")
    p.add_argument("addresses", metavar="ADDRESS", nargs="+", type=_hex_addr,
                   help="hexadecimal virtual address")
    add_consistency_arguments(p)


def add_vm_arguments(p: Any) -> None:
    """crash's ``vm [-p] [pid | task] ...``."""
    p.add_argument("-p", dest="pages", action="store_true",
                   help="translate every page of every VMA: physical address, swap "
                   "location, file and offset, or (not mapped)")
    p.add_argument("tasks", metavar="PID|TASK", nargs="*", type=_pid_or_task,
                   help="decimal PID or hexadecimal task_struct address (default: the context)")
    add_consistency_arguments(p)


def add_pte_arguments(p: Any) -> None:
    """crash's ``pte contents ...``."""
    p.add_argument("values", metavar="VALUE", nargs="+", type=parse_pte_value,
                   help="hexadecimal page-table entry")


def add_pfn_arguments(p: Any) -> None:
    """``pfn PFN ...``."""
    p.add_argument("pfns", metavar="PFN", nargs="+", type=parse_pfn,
                   help="page frame number (decimal, or hexadecimal with 0x)")
    add_consistency_arguments(p)


# -- context ------------------------------------------------------------------------


def _task(prog: Program, ctx: tuple[str, int] | None) -> Object:
    from drgn.helpers.linux.pid import find_task

    if ctx is None:
        if prog.flags & ProgramFlags.IS_LIVE:
            if prog.flags & ProgramFlags.IS_LOCAL:
                return find_task(prog, os.getpid())
            raise UsageError("no default task on a remote live kernel: give a PID (-c PID for vtop)")
        return prog.crashed_thread().object
    kind, value = ctx
    if kind == "pid":
        # task_of also finds it in a dump that lacks part of the PID tree
        return task_of(prog, value)
    task = Object(prog, "struct task_struct *", value)
    try:
        ok = task_of(prog, int(task.pid)) == task
    except (FaultError, NoSuchProcessError):
        ok = False
    if not ok:
        raise LivewalkError(f"invalid task_struct: {value:#x}")
    return task


def _task_header(task: Object) -> str:
    from drgn.helpers.linux.sched import task_cpu

    from livewalk.task import task_comm

    return (f"PID: {int(task.pid):<7}  TASK: {int(task.value_()):x}  CPU: {task_cpu(task)}  "
            f"COMMAND: \"{task_comm(task)}\"")


# -- shared helpers -------------------------------------------------------------------


class _Target:
    """What the crash commands need of a program, read once."""

    def __init__(self, prog: Program) -> None:
        from livewalk.backend.drgn import DrgnBackend

        self.prog = prog
        self.backend = DrgnBackend.for_program(prog)
        self.paging = self.backend.paging
        try:
            max_pfn = int(prog["max_pfn"].value_())
        except KeyError:
            max_pfn = 1 << 28
        self.paddr_prlen = len(f"{max_pfn << 12:x}")
        self._swap: dict[int, str] | None = None

    def swap_name(self, type_: int) -> str | None:
        if self._swap is None:
            self._swap = {}
            try:
                from drgn.helpers.linux.swap import for_each_swap_info, swap_file_path

                for si in for_each_swap_info(self.prog):
                    self._swap[int(si.type.value_())] = swap_file_path(si).decode(errors="replace")
            except Exception:  # no swap helpers for this kernel: show the type number
                pass
        return self._swap.get(type_)

    def entry_paddr(self, kaddr: int) -> int:
        return kaddr - self.paging.page_offset

    def page_line(self, phys: int) -> cf.CrashPageLine | None:
        from drgn.helpers.linux.mm import page_flags, pfn_to_page

        from livewalk.tools.pfn import page_flag_names

        pfn = phys >> 12
        try:
            if pfn >= int(self.prog["max_pfn"].value_()):
                return None
            page = pfn_to_page(self.prog, pfn)
            flags = int(page_flags(page))
            index = 0
            for member in ("__folio_index", "index"):
                try:
                    index = int(getattr(page, member).value_())
                    break
                except AttributeError:
                    continue
            return cf.CrashPageLine(
                page=int(page.value_()), phys=pfn << 12, mapping=int(page.mapping.value_()),
                index=index, count=int(page._refcount.counter.value_()), flags=flags,
                flag_names=",".join(page_flag_names(self.prog, flags)),
                paddr_prlen=self.paddr_prlen)
        except (FaultError, KeyError, LookupError):
            return None


def _file_path(vma_obj: Object) -> str:
    from drgn.helpers.linux.fs import d_path

    try:
        f = vma_obj.vm_file.read_()
        if not f:
            return ""
        return d_path(f.f_path.address_of_()).decode(errors="replace")
    except (FaultError, LookupError, ValueError):
        return ""


def _vma_line(vma: Any) -> str:
    obj = vma.obj
    addr = int(obj.value_()) if isinstance(obj, Object) else 0
    name = _file_path(obj) if isinstance(obj, Object) else ""
    return cf.format_vma_line(addr, vma.vm_start, vma.vm_end, vma.vm_flags, name)


def _faults(func: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        from livewalk.backend import TableReadError

        try:
            return func(*args, **kwargs)
        except TableReadError as e:
            raise LivewalkError(f"{e} (the page is missing from the dump or outside RAM)") from None
        except FaultError as e:
            raise LivewalkError(f"cannot read target memory: {e}") from None

    wrapped.__doc__ = func.__doc__
    wrapped.__name__ = func.__name__
    return wrapped


# -- vtop -------------------------------------------------------------------------------


@_faults
def crash_vtop(prog: Program, args: argparse.Namespace, tally: ConsistencyTally | None = None) -> list[str]:
    """
    crash's ``vtop`` of each address: user addresses in the context's mm
    (``-c``, or the default context), kernel addresses in ``init_mm``. Each
    translation is judged (:func:`~livewalk.tools.vtop.vtop_consistent`,
    ``args.retries``); a torn one ends with its ``# torn`` lines, and its
    verdict is counted in *tally*.
    """
    from livewalk.task import mm_of_task
    from livewalk.tools.vtop import vtop_consistent, vtop_kernel_consistent

    tally = ConsistencyTally() if tally is None else tally

    t = _Target(prog)
    out: list[str] = []
    task = mm = None
    for i, addr in enumerate(args.addresses):
        if i:
            out.append("")
        kernel = args.kernel or (not args.user and addr >> 63 == 1)
        if kernel:
            r = vtop_kernel_consistent(prog, addr, retries=args.retries)
            out += cf.format_vtop_crash(
                r, t.paging, entry_paddr=t.entry_paddr, swap_name=t.swap_name,
                kernel_pgd=r.pgd,
                page_line=t.page_line(r.phys) if r.phys is not None else None)
            out += _marks(r.consistency, tally)
            continue
        if mm is None:
            task = _task(prog, args.context)
            mm = mm_of_task(task)
        r = vtop_consistent(mm, addr, retries=args.retries)
        vma_line = file_off = None
        if r.vma is not None:
            vma_line = _vma_line(r.vma)
            path = _file_path(r.vma.obj) if isinstance(r.vma.obj, Object) else ""
            if path:
                shift = t.paging.page_shift
                off = (r.vma.vm_pgoff << shift) + (addr & ~((1 << shift) - 1)) - r.vma.vm_start
                file_off = f"{path}  OFFSET: {off:x}"
        out += cf.format_vtop_crash(
            r, t.paging, entry_paddr=t.entry_paddr, vma_line=vma_line, file_offset=file_off,
            swap_name=t.swap_name,
            page_line=t.page_line(r.phys) if r.phys is not None else None)
        out += _marks(r.consistency, tally)
    tally.check(args.strict)
    return [line.rstrip() for line in out]


def _marks(consistency: RangeConsistency | None, tally: ConsistencyTally) -> list[str]:
    """Count a verdict in *tally*; its ``# torn`` lines (a blank line first)."""
    if consistency is None:
        return []
    tally.add(consistency)
    marks = consistency.marks()
    return [""] + marks if marks else []


# -- vm -p ------------------------------------------------------------------------------


class _Tables:
    """
    The page tables of one mm as one walk collected them: the PTE tables by
    the 2 MiB-aligned address they map, and the huge and non-present leaves.
    """

    def __init__(self) -> None:
        self.pte_tables: dict[int, Sequence[int]] = {}
        self.pmd_leaves: dict[int, int] = {}
        self.pud_leaves: dict[int, int] = {}
        self.huge_leaves: dict[int, tuple[int, int]] = {}  # hugetlb: base -> (value, size)


def _collect_ops() -> Any:
    from livewalk.arch import ULONG_MAX
    from livewalk.mm.pagewalk import MMWalkOps, PageWalkAction

    def pud_entry(pud: Any, addr: int, next: int, walk: Any) -> int:
        if pud.leaf or (not pud.present and not pud.none):
            walk.private.pud_leaves[addr & ~(PUD_SIZE - 1)] = pud.value
            walk.action = PageWalkAction.ACTION_CONTINUE
        return 0

    def pmd_entry(pmd: Any, addr: int, next: int, walk: Any) -> int:
        from livewalk.backend import TableReadError

        tables: _Tables = walk.private
        base = addr & ~(PMD_SIZE - 1)
        try:
            table = pmd.pte_table()
        except TableReadError as e:
            # not in the dump: a hole, recorded in walk.errors as the walker
            # records the tables it cannot read itself
            walk.overlay.error(PageTableLevel.PMD, addr, e.paddr, "unreadable")
            walk.action = PageWalkAction.ACTION_CONTINUE
            return 0
        if table is not None:
            tables.pte_tables[base] = table
        else:
            tables.pmd_leaves[base] = pmd.value  # a THP, or a PMD migration entry
        walk.action = PageWalkAction.ACTION_CONTINUE
        return 0

    def hugetlb_entry(pte: Any, hmask: int, addr: int, next: int, walk: Any) -> int:
        size = (~hmask & ULONG_MAX) + 1
        walk.private.huge_leaves[addr & ~(size - 1)] = (pte.value, size)
        return 0

    def test_walk(addr: int, next: int, walk: Any) -> int:
        return 0  # show VM_PFNMAP VMAs' pages too, as crash does

    return MMWalkOps(pud_entry=pud_entry, pmd_entry=pmd_entry,
                     hugetlb_entry=hugetlb_entry, test_walk=test_walk)


def collect_tables(mm: Any, start: int, end: int, walks: list[Any] | None = None) -> _Tables:
    """
    One walk of [*start*, *end*) of *mm* gathering its tables (:class:`_Tables`).

    :param walks: if given, the walk is appended to it (for the consistency check)
    """
    from livewalk.mm.pagewalk import walk_page_range

    tables = _Tables()
    walk_page_range(mm, start, end, _collect_ops(), tables, walks=walks)
    return tables


def _splice_tables(value: _Tables, start: int, end: int, new: _Tables) -> _Tables:
    """*value* with what it holds of [*start*, *end*) replaced by *new* (a read again)."""
    pairs: tuple[tuple[dict[int, Any], dict[int, Any]], ...] = (
        (value.pte_tables, new.pte_tables), (value.pmd_leaves, new.pmd_leaves),
        (value.pud_leaves, new.pud_leaves), (value.huge_leaves, new.huge_leaves))
    for mine, theirs in pairs:
        for base in [b for b in mine if start <= b < end]:
            del mine[base]
        mine.update(theirs)
    return value


def collect_tables_consistent(mm: Any, start: int, end: int, retries: int) -> tuple[_Tables, RangeConsistency]:
    """
    :func:`collect_tables`, judged table by table and VMA by VMA
    (:func:`~livewalk.consistency.read_consistent`): what tore is read
    again, at most *retries* times, and spliced in.
    """
    r = read_consistent(mm, start, end, lambda s, e, walks: collect_tables(mm, s, e, walks),
                        _splice_tables, retries=retries)
    return (r.value if r.value is not None else _Tables()), r.consistency


def vm_pages(
    tables: _Tables, vma: Any, paging: Any, swap_name: Callable[[int], str | None],
    file_path: str, paddr_prlen: int, missing: Sequence[tuple[int, int]] = (),
) -> Iterator[str]:
    """
    crash's ``vm -p`` lines of one VMA, from the collected *tables*. A page
    in one of the *missing* ranges (its page table is not in the dump) is
    ``(not in dump)``: whether it is mapped is unknown.
    """
    page_shift = paging.page_shift
    for vaddr in range(vma.vm_start, vma.vm_end, 1 << page_shift):
        if any(s <= vaddr < e for s, e in missing):
            yield cf.format_vm_page(vaddr, "(not in dump)", None, paddr_prlen)
            continue
        value = 0
        offset = 0
        level = PageTableLevel.PTE
        base = vaddr & ~(PMD_SIZE - 1)
        table = tables.pte_tables.get(base)
        if table is not None:
            value = table[(vaddr >> page_shift) & 511]
        elif base in tables.pmd_leaves:
            value, level, offset = tables.pmd_leaves[base], PageTableLevel.PMD, vaddr - base
        elif (vaddr & ~(PUD_SIZE - 1)) in tables.pud_leaves:
            value, level = tables.pud_leaves[vaddr & ~(PUD_SIZE - 1)], PageTableLevel.PUD
            offset = vaddr & (PUD_SIZE - 1)
        else:
            for size in (PMD_SIZE, PUD_SIZE):
                hit = tables.huge_leaves.get(vaddr & ~(size - 1))
                if hit is not None and hit[1] == size:
                    value, offset = hit[0], vaddr & (size - 1)
                    level = PageTableLevel.PMD if size == PMD_SIZE else PageTableLevel.PUD
        yield _page_text(vaddr, value, level, offset, vma, paging, swap_name, file_path, paddr_prlen)


def _page_text(
    vaddr: int, value: int, level: PageTableLevel, offset: int, vma: Any, paging: Any,
    swap_name: Callable[[int], str | None], file_path: str, paddr_prlen: int,
) -> str:
    if level == PageTableLevel.PTE:
        present = paging.pte_present(value)
    elif level == PageTableLevel.PMD:
        present = paging.pmd_present(value)
    else:
        present = paging.pud_present(value)
    if value and present:
        if level == PageTableLevel.PTE:
            pfn = paging.pte_pfn(value)
        elif level == PageTableLevel.PMD:
            pfn = paging.pmd_pfn(value)
        else:
            pfn = paging.pud_pfn(value)
        return cf.format_vm_page(vaddr, "", (pfn << paging.page_shift) + offset, paddr_prlen)
    if value and not paging.pte_none(value):
        swap = paging.decode_swap(value)
        if swap is not None:
            label = "SWAP" if swap.kind.name == "SWAP" else swap.kind.name
            loc = cf.swap_location(swap, swap_name)
            if label != "SWAP":
                loc = loc.split("  ", 1)[1]
            return cf.format_vm_page(vaddr, f"{label}: {loc}", None, paddr_prlen)
    if file_path:
        off = (vma.vm_pgoff << paging.page_shift) + vaddr - vma.vm_start
        return cf.format_vm_page(vaddr, f"FILE: {file_path}  OFFSET: {off:x}", None, paddr_prlen)
    return cf.format_vm_page(vaddr, "(not mapped)", None, paddr_prlen)


@_faults
def crash_vm(prog: Program, args: argparse.Namespace, tally: ConsistencyTally | None = None) -> Iterator[str]:
    """
    crash's ``vm`` (``-p``: with every page) of each task, line by line.
    With ``-p`` the walk is judged (``args.retries``, counted in *tally*,
    ``args.strict`` fails before any page is shown); each VMA with a torn
    range gets its ``# torn`` lines right after the VMA line.
    """
    from drgn.helpers.linux.mm import task_rss

    from livewalk.task import mm_of_task

    t = _Target(prog)
    contexts = args.tasks or [None]
    for n, ctx in enumerate(contexts):
        task = _task(prog, ctx)
        mm = mm_of_task(task)
        tables = cons = None
        if args.pages:
            # the walk first: --strict fails before anything of this task is shown
            tables, cons = collect_tables_consistent(mm, 0, t.backend.mm_task_size(mm), args.retries)
            if tally is not None:
                tally.add(cons)
                tally.check(args.strict)
        vmas = t.backend.vmas(mm)  # as of the end of the walk, as its check read them
        if n:
            yield ""
        yield _task_header(task)
        try:
            rss = task_rss(task).total
        except Exception:  # an older kernel's counters: crash shows 0 too
            rss = 0
        yield from cf.format_vm_header(int(mm.value_()), int(mm.pgd.value_()), rss * 4,
                                       int(mm.total_vm.value_()) * 4)
        if not args.pages:
            yield cf.format_vma_header()
        for vma in vmas:
            if args.pages:
                yield cf.format_vma_header()
            yield _vma_line(vma).rstrip()
            if tables is None or cons is None:
                continue
            yield from cons.marks(vma.vm_start, vma.vm_end)
            w = max(t.paddr_prlen, 8)
            yield f"{'VIRTUAL':<{cf.UVADDR_PRLEN}}  {'PHYSICAL':<{w}}".rstrip()
            path = _file_path(vma.obj) if isinstance(vma.obj, Object) else ""
            missing = [(m.start, m.end) for m in cons.missing_in(vma.vm_start, vma.vm_end)]
            yield from vm_pages(tables, vma, t.paging, t.swap_name, path, t.paddr_prlen, missing)


# -- pte, pfn ----------------------------------------------------------------------------


@_faults
def crash_pte(prog: Program, args: argparse.Namespace, tally: ConsistencyTally | None = None) -> list[str]:
    """crash's ``pte`` of each value (decoded with the target's swap layout)."""
    t = _Target(prog)
    out: list[str] = []
    for value in args.values:
        out += cf.format_pte(value, t.paging, t.swap_name)
    return [line.rstrip() for line in out]


@_faults
def crash_pfn(prog: Program, args: argparse.Namespace, tally: ConsistencyTally | None = None) -> list[str]:
    """
    Who maps each page (:func:`livewalk.tools.pfn.who_maps`), every mm's
    walk judged (``args.retries``, counted in *tally*).
    """
    from livewalk.tools.pfn import format_pfn, who_maps

    out: list[str] = []
    for i, pfn in enumerate(args.pfns):
        if i:
            out.append("")
        report = who_maps(prog, pfn, retries=args.retries)
        if tally is not None:
            for c in report.consistency.values():
                tally.add(c)
        out += format_pfn(report).split("\n")
    if tally is not None:
        tally.check(args.strict)
    return out


# -- the livewalk command line -------------------------------------------------------------

_RUNNERS: dict[str, Callable[[Program, argparse.Namespace, ConsistencyTally], Any]] = {
    "vtop": crash_vtop,
    "vm": crash_vm,
    "pte": crash_pte,
    "pfn": crash_pfn,
}


def run(prog: Program, name: str, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """
    Run crash command *name* (``vtop``, ``vm``, ``pte``, ``pfn``) and write
    its lines; then, for the commands that walk page tables, the one-line
    consistency summary on standard error (or, with ``--strict``, the
    :class:`~livewalk.consistency.TornError`).
    """
    out = sys.stdout if out is None else out
    tally = ConsistencyTally()
    for line in _RUNNERS[name](prog, args, tally):
        out.write(line + "\n")
    out.flush()
    tally.report(bool(getattr(args, "strict", False)), sys.stderr)
    return 0


# -- drgn commands ---------------------------------------------------------------------------

_DRGN_COMMANDS = (
    ("lwvtop", "vtop", add_vtop_arguments, "virtual to physical, every level (crash's vtop, by livewalk)",
     "lwvtop [-c PID|TASK] [-u|-k] ADDRESS...",
     "crash's vtop computed by livewalk's walker: each page-table level as 'LEVEL: "
     "entry => value (flags)', the page, the VMA and the struct page, or the swap, "
     "migration or marker entry, or the file offset of a page that is not mapped."),
    ("lwvm", "vm", add_vm_arguments, "VMAs and, with -p, every page (crash's vm, by livewalk)",
     "lwvm [-p] [PID|TASK]...",
     "crash's vm: the mm and its VMAs; with -p every page of every VMA with its "
     "physical address, swap location, file offset, or (not mapped). One page-table "
     "walk per process."),
    ("lwpte", "pte", add_pte_arguments, "decode a raw page-table entry (crash's pte, by livewalk)",
     "lwpte VALUE...",
     "crash's pte: the physical address and flags of a present entry, the swap "
     "device and offset of a swap entry, or the kind of other non-present entries."),
    ("lwpfn", "pfn", add_pfn_arguments, "who maps this page: state and every mapping",
     "lwpfn PFN...",
     "The page's state (folio, order, flags, mapcounts, mapping, swap cache) and "
     "every (process, virtual address, level) mapping it, from one walk of each mm."),
)


def register_drgn_commands() -> None:
    """
    Register ``%lwvtop``, ``%lwvm``, ``%lwpte`` and ``%lwpfn`` with drgn's
    command framework (enabled for Linux kernel programs). A no-op with a
    drgn older than 0.3 (no ``drgn.commands``).
    """
    try:
        from drgn.commands import ParsedCommand, parse_shell_command
        from drgn.commands.linux import linux_kernel_custom_command
    except ImportError:  # drgn older than 0.3.0
        return

    for name, crash_name, add_args, description, usage, long_description in _DRGN_COMMANDS:
        parser = _Parser(prog=name, description=long_description, allow_abbrev=False)
        add_args(parser)

        def parse(source: str) -> ParsedCommand[Any]:
            return parse_shell_command(source)

        def func(prog: Program, _name: str, argv: Any, *, _parser: argparse.ArgumentParser = parser,
                 _crash_name: str = crash_name, **kwargs: Any) -> None:
            args = _parse(_parser, list(argv))
            if args is not None:
                run(prog, _crash_name, args)

        func.__name__ = "_cmd_" + name
        linux_kernel_custom_command(
            name=name, description=description, usage=f"**{usage}**",
            long_description=long_description, parse=parse,
        )(func)


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one-line :class:`~livewalk.errors.UsageError`\\ s."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}")


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | None:
    """argparse without exiting: ``--help`` prints and returns ``None``."""
    if "-h" in argv or "--help" in argv:
        parser.print_help()
        return None
    return parser.parse_args(argv)
