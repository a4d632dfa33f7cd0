# SPDX-License-Identifier: LGPL-2.1-or-later
"""
What the crosscheck VM tests (x86-64, the older kernels, arm64) read of
``livewalk crosscheck``'s report, and the workload they check it on.

>>> LINE.match("pagemap_read  ok      4 walks    812 callbacks 0 mismatches 0 lost [mm; walk_page_range]")["cbs"]
'812'
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from livewalk.vm import Guest

__all__ = ("LINE", "NOT_APPLICABLE", "VERDICT", "start_workload")

#: One trigger's line: its walks, callbacks, mismatches, lost events, the
#: comparison mode and the entry points traced.
LINE = re.compile(
    r"^(?P<name>\w+)\s+(?P<ok>ok  |FAIL) +(?P<walks>\d+) walks +(?P<cbs>\d+) callbacks "
    r"(?P<mm>\d+) mismatches (?P<lost>\d+) lost \[(?P<mode>\w+); (?P<eps>[^\]]*)\]"
)
#: A trigger the kernel cannot run, and why.
NOT_APPLICABLE = re.compile(r"^(?P<name>\w+)\s+not applicable on this kernel: (?P<why>\S.*)$")
#: The totals line.
VERDICT = re.compile(r"^crosscheck: (\d+) walks, (\d+) callbacks, (\d+) mismatches(.*)$", re.M)

_READY = "/tmp/crosscheck-workload.json"


def start_workload(g: Guest, timeout: float = 300) -> int:
    """Start the mappings workload in *g* and return its PID once it is ready."""
    g.run(f"rm -f {_READY}", timeout=60)
    pid = g.spawn(f"python3 tests/workloads/mappings.py --ready-file {_READY}")
    return int(g.wait_ready_file(_READY, pid, timeout)["pid"])
