# SPDX-License-Identifier: LGPL-2.1-or-later
"""
``livewalk crosscheck`` in the test VM: the kernel's own walks (traced with
BPF) against livewalk's replays, for every trigger, in both paging modes.

These guests are booted with two NUMA nodes (``migrate_pages(2)`` walks only
when a page would move to another node), so they are this module's own.
The target is the workload with many kinds of mappings
(tests/workloads/mappings.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from livewalk.vm import Guest

from livewalk.crosscheck.triggers import trigger_names
from tests.vm.crosscheck_report import LINE, VERDICT, start_workload


@pytest.fixture(scope="module", params=[5, 4], ids=["l5", "l4"])
def numa_guest(request: pytest.FixtureRequest) -> Iterator[Guest]:
    g = Guest(levels=request.param, numa_nodes=2)
    try:
        g.start()
        yield g
    finally:
        g.stop()


@pytest.fixture(scope="module")
def target(numa_guest: Guest) -> int:
    return start_workload(numa_guest)


def _run(g: Guest, args: str) -> Any:
    return g.run(f"python3 -m livewalk crosscheck {args}", timeout=1800)


def test_crosscheck_every_trigger(numa_guest: Guest, target: int) -> None:
    assert numa_guest.run("cat /sys/devices/system/node/online").stdout.strip() == "0-1"
    r = _run(numa_guest, f"--pid {target}")
    out = r.stdout
    print(out)  # the per-trigger counts, for the record
    lines = {m["name"]: m for m in (LINE.match(x) for x in out.splitlines()) if m}
    assert set(lines) == set(trigger_names()), out + r.stderr
    for name, m in lines.items():
        assert m["ok"] == "ok  ", f"{name}: {m.group(0)}\n{out}"
        assert int(m["walks"]) > 0 and int(m["cbs"]) > 0, m.group(0)
        assert m["mm"] == "0" and m["lost"] == "0", m.group(0)
    # the entry points each user is known to use (Linux 7.2 sources)
    assert "walk_page_range x" in lines["pagemap"]["eps"]
    assert "walk_page_vma x" in lines["smaps"]["eps"]
    assert "walk_page_range_debug x2" == lines["ptdump"]["eps"]
    assert "walk_page_range_vma_unsafe" in lines["madv_guard_install"]["eps"] or (
        "walk_page_range_mm_unsafe" in lines["madv_guard_install"]["eps"])
    v = VERDICT.search(out)
    assert v is not None, out
    assert int(v[1]) == sum(int(m["walks"]) for m in lines.values())
    assert int(v[2]) == sum(int(m["cbs"]) for m in lines.values())
    assert v[3] == "0" and v[4] == "", v.group(0)
    assert r.returncode == 0, out + r.stderr


def test_crosscheck_reports_a_corrupted_step(numa_guest: Guest, target: int) -> None:
    # PAGEMAP_SCAN over the whole workload: one long walk; step 7 of it is
    # altered on the livewalk side, so the crosscheck must fail there.
    r = _run(numa_guest, f"--pid {target} --trigger pagemap_scan --corrupt-step 7")
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    assert re.search(r"^pagemap_scan +FAIL .* 1 mismatches 0 lost", out, re.M), out
    assert "first divergence at step 7: addr" in out, out
    kernel = re.search(r"step +7 +kernel: +(\w+)\(addr=(0x[0-9a-f]+)", out)
    livewalk = re.search(r"step +7 +livewalk:(\w+)\(addr=(0x[0-9a-f]+)", out)
    assert kernel and livewalk, out
    assert kernel[1] == livewalk[1]
    assert int(kernel[2], 16) ^ int(livewalk[2], 16) == 0x1000
    v = VERDICT.search(out)
    assert v is not None and v[3] == "1", out


def test_crosscheck_bad_input(numa_guest: Guest) -> None:
    r = _run(numa_guest, "--pid 999999 --trigger pagemap")
    assert r.returncode != 0
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
