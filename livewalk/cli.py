# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Command line
------------

``livewalk`` (also ``python3 -m livewalk``): pagemap, smaps, vtop and ptdump
of a live kernel, a vmcore or a QEMU guest, computed by livewalk's
reimplementation of the kernel's page-table walker.

Every error is one line on standard error, ``livewalk: error: ...``, with
exit status 2 for usage errors and 1 for others; ``--debug`` adds the
traceback. Nothing is ever written to the target.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from livewalk.backend import backend_for_mm
from livewalk.commands.args import add_consistency_arguments, parse_address, parse_range
from livewalk.crosscheck import add_crosscheck_parser, crosscheck_command
from livewalk.errors import AddressError, LivewalkError, UsageError, WalkFailedError
from livewalk.progress import Progress
from livewalk.tools.verify import verify_command

if TYPE_CHECKING:
    from drgn import Object, Program

__all__ = ("build_parser", "main", "run_command")

PROG = "livewalk"

_EPILOG = """\
target selection (any command):
  the running kernel by default (through /proc/kcore, as root), or
  -c VMCORE, or --qemu QMP_SOCKET; -s PATH points at debugging information
  (a vmlinux file, or a directory to search for one), as in drgn's CLI.

examples:
  livewalk pagemap --pid 1234 --range 7f0000000000:7f0000200000 --format raw > pm.bin
  livewalk smaps --pid 1234
  livewalk vtop --pid 1234 7ffd12345000
  livewalk vtop --kernel ffffffff81000000
  livewalk ptdump --check-wx
  livewalk --qemu /tmp/qmp.sock -s /build/linux vtop --kernel ffffffff81000000
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line (``livewalk: error: ...``)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _add_target_options(p: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    g = p.add_argument_group("target selection (default: the running kernel)")
    x = g.add_mutually_exclusive_group()
    x.add_argument("-c", "--core", metavar="VMCORE", default=default,
                   help="inspect this kernel core dump (vmcore, kdump, ELF)")
    x.add_argument("--qemu", metavar="QMP_SOCKET", default=default,
                   help="inspect a QEMU guest over QMP (Unix socket path or host:port; "
                   "QEMU needs -device vmcoreinfo and the guest qemu_fw_cfg)")
    g.add_argument("-s", "--symbols", metavar="PATH", action="append",
                   default=default,
                   help="debugging information: a vmlinux file, or a directory to search "
                   "for the kernel image (repeatable)")
    g.add_argument("--kernel-directory", "--kernel-dir", dest="kernel_directories",
                   metavar="DIR", action="append", default=default,
                   help="search DIR for the kernel image (repeatable, as drgn's option)")
    g.add_argument("--no-default-symbols", action="store_true",
                   default=argparse.SUPPRESS if suppress else False,
                   help="only use debugging information given with -s")
    g.add_argument("--debug", action="store_true",
                   default=argparse.SUPPRESS if suppress else False,
                   help="show tracebacks and drgn's log messages")


def build_parser(*, with_target: bool = True, prog: str = PROG) -> argparse.ArgumentParser:
    """
    The ``livewalk`` argument parser. *with_target* adds the target
    selection options (not wanted inside a drgn session, which has its
    program already).
    """
    parser = _Parser(
        prog=prog,
        allow_abbrev=False,
        description="The Linux kernel's page-table walker, run over a live kernel, "
        "a vmcore or a QEMU guest with drgn.",
        epilog=_EPILOG if with_target else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if with_target:
        _add_target_options(parser, suppress=False)
    version = _version()
    parser.add_argument("--version", action="version", version=f"%(prog)s {version}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, help: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=description, allow_abbrev=False,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if with_target:
            _add_target_options(p, suppress=True)
        return p

    p = add(
        "pagemap",
        "/proc/PID/pagemap entries of a process",
        "The /proc/PID/pagemap entries of a process (Linux 7.2 fs/proc/task_mmu.c\n"
        "pagemap_read), computed by walking its page tables.\n\n"
        "--format raw writes exactly the bytes that reading /proc/PID/pagemap at\n"
        "offset START/PAGE_SIZE*8 would give, 8 per page, for each --range in the order\n"
        "given (the pages that contain [START, END)). Without --range: every VMA in\n"
        "address order, so raw output is the concatenation of each VMA's entries\n"
        "(the gaps between VMAs are left out).\n"
        "--format text/json coalesce runs of similar pages (same flags, PFN\n"
        "advancing by one) for people and scripts.",
    )
    p.add_argument("--pid", type=int, required=True, help="process ID")
    p.add_argument("--range", dest="ranges", metavar="START:END", action="append",
                   type=_range_type, help="hexadecimal address range (repeatable)")
    p.add_argument("--format", choices=("raw", "text", "json"), default="text",
                   help="output format (default: text)")
    p.add_argument("--no-pfn", action="store_true",
                   help="zero the PFNs as the kernel does for readers without "
                   "CAP_SYS_ADMIN")
    _add_consistency_options(p)

    p = add("smaps", "/proc/PID/smaps of a process",
            "The /proc/PID/smaps of a process, computed by walking its page tables.")
    p.add_argument("--pid", type=int, required=True, help="process ID")
    p.add_argument("--json", action="store_true", help="JSON instead of the smaps format")
    _add_consistency_options(p)

    p = add(
        "vtop",
        "translate a virtual address, level by level",
        "Translate a virtual address: every level's entry address and value with\n"
        "decoded flags, the leaf size, the physical address or the decoded\n"
        "swap/migration entry, and the VMA. PROT_NONE pages are present (their PFN\n"
        "is stored inverted); with 4-level paging the P4D level is folded.",
    )
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--pid", type=int, help="translate in this process's address space")
    who.add_argument("--kernel", action="store_true",
                     help="translate in the kernel page tables (init_mm)")
    p.add_argument("addresses", metavar="ADDR", nargs="+", type=_addr_type,
                   help="hexadecimal virtual address")
    p.add_argument("--json", action="store_true", help="JSON output")
    _add_consistency_options(p)

    p = add(
        "ptdump",
        "the kernel page tables as ranges with attributes",
        "The kernel page tables (init_mm) as ranges with attributes, in the format of\n"
        "x86's /sys/kernel/debug/page_tables/kernel.",
    )
    p.add_argument("--check-wx", action="store_true",
                   help="only report W+X pages, like check_wx_pages "
                   "(exit status 1 if there are any)")
    p.add_argument("--json", action="store_true", help="JSON output")
    add_crosscheck_parser(sub)  # livewalk/crosscheck: BPF trace of the kernel's walks vs livewalk

    p = add(
        "verify",
        "compare livewalk's pagemap and smaps with this kernel's /proc",
        "Compute a process's pagemap and smaps with livewalk and compare them with\n"
        "what the running kernel reports in /proc/PID/pagemap and /proc/PID/smaps,\n"
        "page for page and line for line (the kernel is read before and after, so\n"
        "a value that moves while it is read is not a mismatch). Needs the running\n"
        "kernel (no -c, no --qemu). Exit status 1 on any mismatch.",
    )
    p.add_argument("--pid", type=int, required=True, help="process ID")
    p.add_argument("--show", type=int, default=20, metavar="N",
                   help="print at most N mismatches of each kind (default: 20)")

    # crash's commands and who-maps-this-page (livewalk/commands/crash.py)
    from livewalk.commands.crash import add_pfn_arguments, add_pte_arguments, add_vm_arguments

    add_vm_arguments(add("vm", "crash's vm: VMAs, and with -p every page",
                         "crash's vm in crash's layout: the mm and its VMAs; with -p every\n"
                         "page of every VMA: physical address, swap device and offset, file\n"
                         "and offset, or (not mapped). A PID is decimal, a task hexadecimal."))
    add_pte_arguments(add("pte", "crash's pte: decode raw page-table entries",
                          "crash's pte: the physical address and flags of a present entry,\n"
                          "the swap device and offset of a swap entry, or the kind of other\n"
                          "non-present entries (migration, device, hwpoison, marker)."))
    add_pfn_arguments(add("pfn", "who maps this page: its state and every mapping",
                          "The page's state (folio, order, flags, mapcounts, mapping, swap\n"
                          "cache) and every (process, virtual address, level) that maps it,\n"
                          "from one page-table walk of each mm."))
    return parser


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("livewalk")
    except Exception:
        return "0.1.0 (source tree)"


def _range_type(text: str) -> tuple[int, int]:
    try:
        return parse_range(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _addr_type(text: str) -> int:
    try:
        return parse_address(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


# ---------------------------------------------------------------------------
# Commands


def _mm(prog: Program, pid: int) -> tuple[Object, Object]:
    """``(task, mm)`` of *pid*, with the resolver's one-line errors."""
    from livewalk.task import find_mm

    return find_mm(prog, pid)


def _task_size(mm: Object) -> int:
    return backend_for_mm(mm).mm_task_size(mm)


def _comm(task: Object) -> str:
    from livewalk.task import task_comm

    return task_comm(task)


def _entries_bytes(entries: Sequence[int]) -> bytes:
    from array import array

    arr = entries if isinstance(entries, array) else array("Q", entries)
    if sys.byteorder != "little":
        arr = array("Q", arr)
        arr.byteswap()
    return arr.tobytes()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _vma_ranges(mm: Any) -> list[tuple[int, int]]:
    from livewalk.backend import backend_for_mm

    return [(v.vm_start, v.vm_end) for v in backend_for_mm(mm).vmas(mm)]


# -- consistency hooks (livewalk.consistency; issue [G]) ----------------------


def _add_consistency_options(p: argparse.ArgumentParser) -> None:
    add_consistency_arguments(p)


def _pagemap_checked(mm: Any, start: int, end: int, args: argparse.Namespace, tally: Any) -> tuple[Any, Any]:
    """The entries of [start, end) and their RangeConsistency, counted in *tally*."""
    from livewalk.consistency import pagemap_read_consistent

    r = pagemap_read_consistent(mm, start, end, show_pfn=not args.no_pfn, retries=max(0, args.retries))
    tally.add(r.consistency)
    tally.check(args.strict)
    return r.value, r.consistency


def _torn_lines(cons: Any) -> list[str]:
    """The text marks of a pagemap range: one comment line per torn or not-in-dump range."""
    return list(cons.marks())


def _report_consistency(tally: Any, args: argparse.Namespace) -> None:
    """The one-line stderr summary (nothing when nothing tore)."""
    tally.check(args.strict)
    line = tally.summary()
    if line:
        sys.stderr.write(f"{PROG}: {line}\n")
        sys.stderr.flush()


def cmd_pagemap(prog: Any, args: argparse.Namespace, out: TextIO) -> int:
    from livewalk.consistency import ConsistencyTally
    from livewalk.proc.pagemap import runs_from_entries
    from livewalk.proc.pagemap_format import format_pagemap_text, pagemap_dicts

    if args.format == "raw" and _isatty(out):
        raise UsageError("--format raw writes binary data: redirect standard output to a file or pipe")
    task, mm = _mm(prog, args.pid)
    task_size = _task_size(mm)
    page_shift = backend_for_mm(mm).paging.page_shift  # the target's, 12 to 16
    if args.ranges:
        ranges = []
        for start, end in args.ranges:
            if end > task_size:
                raise AddressError(
                    f"range {start:#x}:{end:#x} goes past the end of user space "
                    f"({task_size:#x}) of PID {args.pid}"
                )
            # The pages that contain [start, end), as a read at
            # start / PAGE_SIZE * 8 of (pages * 8) bytes would return.
            first = start >> page_shift
            last = (end - 1) >> page_shift
            ranges.append((first << page_shift, (last + 1) << page_shift))
    else:
        ranges = _vma_ranges(mm)
    total = sum(e - s for s, e in ranges)
    raw = args.format == "raw"
    docs: list[dict[str, Any]] = []
    tally = ConsistencyTally()
    with Progress("pagemap", total_bytes=total, counting="ranges") as progress:
        for start, end in ranges:
            entries, cons = _pagemap_checked(mm, start, end, args, tally)
            if raw:
                data = _entries_bytes(entries)
                out.flush()
                buf = getattr(out, "buffer", None)
                if buf is not None:
                    buf.write(data)
                    buf.flush()
                else:  # a text-only stream (e.g. inside a drgn session)
                    out.write(data.hex())
            else:
                runs = runs_from_entries(start, entries)
                if args.format == "json":
                    docs.append({"start": start, "end": end, "runs": pagemap_dicts(runs),
                                 "consistency": cons.as_dict()})
                else:
                    out.write(f"# {start:#014x}-{end:#014x}{' torn' if cons.torn else ''}\n")
                    for line in _torn_lines(cons):
                        out.write(line + "\n")
                    for line in format_pagemap_text(runs):
                        out.write(line + "\n")
            progress.update(add_vmas=1, add_bytes=end - start)
    if args.format == "json":
        json.dump({"pid": args.pid, "comm": _comm(task), "ranges": docs}, out, indent=1)
        out.write("\n")
    _report_consistency(tally, args)
    return 0


def cmd_smaps(prog: Any, args: argparse.Namespace, out: TextIO) -> int:
    from livewalk.consistency import ConsistencyTally, smaps_consistent
    from livewalk.proc.smaps import format_smaps, smaps_dicts

    task, mm = _mm(prog, args.pid)
    tally = ConsistencyTally()
    with Progress("smaps", counting="VMAs") as progress:
        r = smaps_consistent(mm, _task_size(mm), retries=max(0, args.retries), progress=progress)
    tally.add(r.consistency)
    tally.check(args.strict)
    entries = r.value or []
    if args.json:
        doc = smaps_dicts(entries)
        for d, e in zip(doc, entries):  # the per-VMA mark
            d["torn"] = [t.as_dict() for t in r.consistency.torn_in(e.vm_start, e.vm_end)]
            d["not_in_dump"] = [t.as_dict() for t in r.consistency.missing_in(e.vm_start, e.vm_end)]
        json.dump(doc, out, indent=1)
        out.write("\n")
    else:
        out.write(format_smaps(entries))
    _report_consistency(tally, args)
    return 0


def cmd_vtop(prog: Any, args: argparse.Namespace, out: TextIO) -> int:
    from livewalk.consistency import ConsistencyTally
    from livewalk.tools.vtop import format_vtop, vtop_consistent, vtop_json, vtop_kernel_consistent

    results = []
    tally = ConsistencyTally()
    if args.kernel:
        for addr in args.addresses:
            results.append(vtop_kernel_consistent(prog, addr, retries=args.retries))
    else:
        task, mm = _mm(prog, args.pid)
        for addr in args.addresses:
            r = vtop_consistent(mm, addr, retries=args.retries)
            r.pid = args.pid
            r.comm = _comm(task)
            results.append(r)
    for r in results:
        if r.consistency is not None:
            tally.add(r.consistency)
    tally.check(args.strict)
    if args.json:
        docs = [vtop_json(r) for r in results]
        json.dump(docs[0] if len(docs) == 1 else docs, out, indent=1)
        out.write("\n")
    else:
        out.write("\n\n".join(format_vtop(r) for r in results) + "\n")
    _report_consistency(tally, args)
    return 0


def cmd_ptdump(prog: Any, args: argparse.Namespace, out: TextIO) -> int:
    from livewalk.tools.ptdump import ptdump, ptdump_json

    with Progress("ptdump", counting="ranges") as progress:
        def tick(addr: int) -> None:
            progress.update(add_vmas=1)

        result = ptdump(prog, check_wx=args.check_wx, progress=tick if progress.enabled else None)
    if args.json:
        json.dump(ptdump_json(result), out, indent=1)
        out.write("\n")
        return 1 if args.check_wx and result.wx_failed else 0
    if args.check_wx:
        for r in result.wx_ranges:
            out.write(f"W+X: 0x{r.start:016x}-0x{r.end:016x} {result.format_range(r)}  [{r.marker}]\n")
        out.write(result.wx_verdict + "\n")
        return 1 if result.wx_failed else 0
    out.write("\n".join(result.lines) + "\n")
    return 0


_COMMANDS = {
    "pagemap": cmd_pagemap,
    "smaps": cmd_smaps,
    "vtop": cmd_vtop,
    "ptdump": cmd_ptdump,
    "crosscheck": crosscheck_command,
    "verify": verify_command,
    "vm": lambda prog, args, out: _crash(prog, "vm", args, out),
    "pte": lambda prog, args, out: _crash(prog, "pte", args, out),
    "pfn": lambda prog, args, out: _crash(prog, "pfn", args, out),
}


def _crash(prog: Any, name: str, args: argparse.Namespace, out: TextIO) -> int:
    from livewalk.commands.crash import run

    return run(prog, name, args, out)


def run_command(prog: Any, args: argparse.Namespace, out: TextIO | None = None) -> int:
    """
    Run the parsed command *args* against the open drgn program *prog*,
    writing to *out* (default ``sys.stdout``). Walk failures (a table that
    cannot be read, a memory fault) become :class:`~livewalk.errors.WalkFailedError`.
    """
    if out is None:
        out = sys.stdout
    from livewalk.backend import TableReadError

    try:
        import drgn

        fault_errors: tuple[type[BaseException], ...] = (drgn.FaultError,)
    except ImportError:  # pragma: no cover
        fault_errors = ()
    try:
        return _COMMANDS[args.command](prog, args, out)
    except TableReadError as e:
        raise WalkFailedError(f"{e} (the page is missing from the dump or outside RAM)") from e
    except fault_errors as e:
        raise WalkFailedError(f"cannot read target memory: {e}") from e


def _open(args: argparse.Namespace) -> Program:
    from livewalk.program import open_program

    return open_program(
        core=args.core,
        qemu=args.qemu,
        symbols=args.symbols or (),
        kernel_directories=args.kernel_directories or (),
        default_symbols=not args.no_default_symbols,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``livewalk`` command; returns the exit status."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    if debug:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    else:
        logging.getLogger("drgn").setLevel(logging.CRITICAL + 1)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        prog = _open(args)
        return run_command(prog, args)
    except LivewalkError as e:
        if debug:
            traceback.print_exc()
        _error(str(e))
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return 130
    except BrokenPipeError:
        # The reader went away (e.g. `livewalk ptdump | head`): not an error.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except Exception:
            pass
        return 0
    except Exception as e:
        if debug:
            traceback.print_exc()
        msg = " ".join(str(e).split()) or type(e).__name__
        _error(f"internal error: {type(e).__name__}: {msg} (run with --debug for a traceback)")
        return 1


def _error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
