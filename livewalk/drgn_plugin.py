# SPDX-License-Identifier: LGPL-2.1-or-later
"""
drgn plugin
-----------

livewalk inside a drgn session.

* As a library: ``from livewalk import *`` gives the walker and the tools as
  functions of drgn Objects: :func:`pagemap` (``pagemap(task_or_mm, start,
  end)``), :func:`~livewalk.proc.smaps.smaps`, :func:`~livewalk.tools.vtop.vtop`,
  :func:`~livewalk.tools.vtop.vtop_kernel`, :func:`~livewalk.tools.ptdump.ptdump`...
* As a drgn command (drgn 0.3.0's command mechanism, ``drgn.commands``):
  ``%livewalk vtop --pid 1 7ffd12345000``, ``%livewalk ptdump | less``,
  ``%livewalk smaps --pid 1 > /tmp/smaps``: the ``livewalk`` command line
  without the target options, run against the session's program.
* crash's commands with crash's arguments and layout, walked by livewalk
  (:mod:`livewalk.commands.crash`): ``%lwvtop [-c PID] ADDRESS``,
  ``%lwvm -p [PID]``, ``%lwpte VALUE``, and ``%lwpfn PFN`` (who maps a page).

drgn loads plugins from the ``drgn.plugins`` entry point group (an installed
livewalk declares ``livewalk = "livewalk.drgn_plugin"`` there) or from the
environment, without installing anything::

    DRGN_PLUGINS=livewalk=livewalk.drgn_plugin PYTHONPATH=/src drgn

Importing this module registers the command (a no-op with a drgn that has
no ``drgn.commands``).
"""

from __future__ import annotations

import shlex
import sys
from array import array
from typing import Any, TextIO

from drgn import IntegerLike, Object, Program

# Load the submodule livewalk.proc.pagemap now, before the package binds the name
# "pagemap" to the function below: loading it later would rebind the
# package attribute to the module.
from livewalk.proc.pagemap import pagemap_read as _pagemap_read

__all__ = ("pagemap", "run_livewalk_command")


def pagemap(
    task_or_mm: Object | IntegerLike, start: IntegerLike, end: IntegerLike, *, show_pfn: bool = True
) -> array[int]:
    """
    The ``/proc/PID/pagemap`` entries (one ``u64`` per page) of [*start*,
    *end*) of a ``struct task_struct *`` or ``struct mm_struct *`` (or a PID
    in drgn's default program), as :func:`livewalk.proc.pagemap.pagemap_read`.

    >>> pagemap(find_task(prog, 1), 0x400000, 0x402000)   # doctest: +SKIP
    array('Q', [11565767237059379232, 0])
    """
    from livewalk.task import resolve_mm

    mm = resolve_mm(None, task_or_mm)
    return _pagemap_read(mm, int(start), int(end), show_pfn=show_pfn)


def run_livewalk_command(prog: Program, argv: list[str] | str, out: TextIO | None = None) -> int:
    """
    Run a ``livewalk`` command line (without target options) against *prog*
    and return its exit status; errors are printed as one line, as the
    command-line tool does.

    >>> run_livewalk_command(prog, "vtop --kernel ffffffff81000000")  # doctest: +SKIP
    """
    from livewalk.cli import build_parser, run_command
    from livewalk.errors import LivewalkError

    if isinstance(argv, str):
        argv = shlex.split(argv)
    if out is None:
        out = sys.stdout
    try:
        args = build_parser(with_target=False, prog="%livewalk").parse_args(argv)
        return run_command(prog, args, out)
    except LivewalkError as e:
        sys.stderr.write(f"livewalk: error: {e}\n")
        return e.exit_code
    except SystemExit as e:  # --help, --version
        return int(e.code or 0) if not isinstance(e.code, str) else 2


def _register() -> None:
    try:
        from drgn.commands import ParsedCommand, custom_command, parse_shell_command
    except ImportError:  # drgn older than 0.3.0: no command mechanism
        return
    try:
        from drgn.commands.linux import linux_kernel_custom_command as decorator
    except ImportError:  # pragma: no cover
        decorator = custom_command

    def parse(source: str) -> ParsedCommand[Any]:
        return parse_shell_command(source)

    @decorator(  # type: ignore[misc]
        name="livewalk",
        description="page-table walker tools: pagemap, smaps, vtop, ptdump",
        usage="**livewalk** {pagemap,smaps,vtop,ptdump} [*options*]",
        long_description=(
            "Run a livewalk command against this program, e.g. "
            "'%livewalk vtop --pid 1 7ffd12345000' or '%livewalk ptdump'. "
            "'%livewalk --help' lists the commands and options."
        ),
        parse=parse,
    )
    def _cmd_livewalk(prog: Program, name: str, args: Any, **kwargs: Any) -> None:
        run_livewalk_command(prog, list(args))

    # crash's vtop, vm -p, pte and who-maps-this-page: %lwvtop, %lwvm, %lwpte, %lwpfn
    from livewalk.commands.crash import register_drgn_commands

    register_drgn_commands()


_register()
