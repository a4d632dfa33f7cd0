# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Crosscheck
----------

``livewalk crosscheck --pid PID [--trigger NAME ...]`` (root, on the
running kernel): trace the kernel's own page-table walks with BPF
(``bpf/walktrace.c``, loaded with bcc), replay each traced walk with
livewalk's walker over the same mm and range with callbacks that return
what the kernel's callbacks returned, and compare the two ordered sequences
of callback calls. It prints one line per trigger and the verdict
``crosscheck: W walks, C callbacks, M mismatches``, and exits non-zero on
any mismatch, lost event or problem.

>>> import argparse
>>> sub = argparse.ArgumentParser().add_subparsers()
>>> p = add_crosscheck_parser(sub)
>>> p.parse_args(["--pid", "1", "--trigger", "pagemap"]).triggers
['pagemap']
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from livewalk.crosscheck.triggers import TRIGGERS, trigger_names
from livewalk.errors import LivewalkError, UsageError

__all__ = ("add_crosscheck_parser", "crosscheck_command", "crosscheck_main", "run_crosscheck")

_DESCRIPTION = """\
Prove livewalk's fidelity on the running kernel: trace the kernel's own
walk_page_range family with BPF (bcc) while triggering walks from user space,
replay every traced walk with livewalk (drgn on /proc/kcore) with callbacks
that return what the kernel's callbacks returned, and compare the two
sequences of callback calls step by step. Run as root in the test VM.

Read-only triggers act on PID; triggers that change page tables or act on
the caller's own address space run in a helper process the crosscheck starts,
on its own regions. Triggers:
""" + "\n".join(f"  {t.name:<19} {t.user}" for t in TRIGGERS)


def add_crosscheck_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``crosscheck`` sub-command to an ``add_subparsers()`` object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "crosscheck",
        help="trace the kernel's walker with BPF and check livewalk walks the same",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--pid", type=int, required=True, help="process whose walks are checked")
    p.add_argument("--trigger", dest="triggers", metavar="NAME", action="append",
                   choices=trigger_names(), help="run only this trigger (repeatable; default: all available)")
    p.add_argument("--verbose", "-v", action="store_true", help="one line per traced walk")
    p.add_argument("--corrupt-step", type=int, metavar="N", default=None,
                   help="testing: alter livewalk's call at step N of the first walk long enough, "
                   "to show the divergence is reported there (the run then fails)")
    return p


def run_crosscheck(args: argparse.Namespace, prog: Any = None, out: TextIO | None = None) -> int:
    """Run the crosscheck for parsed *args*; opens the running kernel unless *prog* is given."""
    import os

    from livewalk.crosscheck.run import crosscheck
    from livewalk.errors import NoSuchProcessError

    if args.pid is None or args.pid <= 0:
        raise UsageError(f"bad --pid {args.pid!r}")
    if not os.path.exists(f"/proc/{args.pid}"):
        raise NoSuchProcessError(args.pid)
    if prog is None and os.geteuid() != 0:
        raise LivewalkError("crosscheck needs root (BPF, /proc/kcore, other processes' /proc files)")
    if prog is None:
        import time

        from livewalk.program import open_program

        t0 = time.monotonic()
        prog = open_program(
            symbols=getattr(args, "symbols", None) or (),
            kernel_directories=getattr(args, "kernel_directories", None) or (),
            default_symbols=not getattr(args, "no_default_symbols", False),
        )
        if args.verbose:
            (out or sys.stdout).write(f"crosscheck: drgn opened the running kernel in {time.monotonic() - t0:.1f} s\n")
    return crosscheck(prog, args.pid, args.triggers, out=out, corrupt_step=args.corrupt_step,
                      verbose=args.verbose)


def crosscheck_command(prog: Any, args: argparse.Namespace, out: TextIO) -> int:
    """The ``livewalk crosscheck`` command in the form of livewalk.cli's ``_COMMANDS``."""
    if getattr(args, "core", None) or getattr(args, "qemu", None):
        raise UsageError("crosscheck traces the running kernel: -c/--core and --qemu do not apply")
    return run_crosscheck(args, prog, out)


def crosscheck_main(args: argparse.Namespace) -> int:
    """Run the crosscheck; errors become one line on stderr and a non-zero status."""
    try:
        return run_crosscheck(args)
    except LivewalkError as e:
        sys.stderr.write(f"livewalk crosscheck: error: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        return 130


def main(argv: list[str] | None = None) -> int:
    """``python3 -m livewalk.crosscheck --pid PID ...``"""
    parser = argparse.ArgumentParser(prog="livewalk crosscheck")
    sub = parser.add_subparsers(dest="command", required=True)
    add_crosscheck_parser(sub)
    args = parser.parse_args(["crosscheck", *(sys.argv[1:] if argv is None else argv)])
    return crosscheck_main(args)
