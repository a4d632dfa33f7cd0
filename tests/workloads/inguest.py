# SPDX-License-Identifier: LGPL-2.1-or-later
"""Start ``mappings.py`` in a test guest and wait for it (shared by the VM tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from livewalk.vm import Guest

READY_TIMEOUT = 300.0


@contextmanager
def mappings_workload(g: Guest, tag: str, timeout: float = READY_TIMEOUT) -> Iterator[dict[str, Any]]:
    """Run ``tests/workloads/mappings.py`` in guest *g*; yield its ready JSON, kill it after."""
    path = f"/tmp/livewalk-{tag}.json"
    g.run(f"rm -f {path}", timeout=60)
    pid = g.spawn(f"python3 tests/workloads/mappings.py --ready-file {path}")
    ready = g.wait_ready_file(path, pid, timeout)
    try:
        yield ready
    finally:
        g.run(f"kill {ready['pid']}; rm -f {path}", timeout=60)
