# SPDX-License-Identifier: LGPL-2.1-or-later
"""Start ``mappings.py`` in a test guest and wait for it (shared by the VM tests)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

READY_TIMEOUT = 300.0


@contextmanager
def mappings_workload(g: Any, tag: str, timeout: float = READY_TIMEOUT) -> Iterator[dict[str, Any]]:
    """Run ``tests/workloads/mappings.py`` in guest *g*; yield its ready JSON, kill it after."""
    path = f"/tmp/livewalk-{tag}.json"
    g.run(f"rm -f {path}", timeout=60)
    pid = g.spawn(f"python3 tests/workloads/mappings.py --ready-file {path}")
    deadline = time.monotonic() + timeout
    ready = None
    while time.monotonic() < deadline:
        r = g.run(f"cat {path} 2>/dev/null", timeout=60)
        if r.returncode == 0 and r.stdout.strip():
            ready = json.loads(r.stdout)
            break
        if g.run(f"kill -0 {pid}", timeout=60).returncode != 0:
            pytest.fail(f"workload exited: {g.spawn_log(pid)[-3000:]}")
        time.sleep(1)
    if ready is None:
        pytest.fail("workload not ready")
    try:
        yield ready
    finally:
        g.run(f"kill {ready['pid']}; rm -f {path}", timeout=60)
