# SPDX-License-Identifier: LGPL-2.1-or-later
"""
``livewalk crosscheck`` in the arm64 test VM: the kernel's own walks
(traced with BPF kprobes, bcc compiling ``bpf/walktrace.c`` in the guest)
against livewalk's replays over the arm64 page tables, for every trigger,
with 5 levels (FEAT_LPA2, 52-bit VAs) and 4 (the same kernel folding its
P4D at boot).

The guest is this module's own (the marker's configuration, booted with two
NUMA nodes: ``migrate_pages(2)`` walks only when a page would move to another
node), with 2 GiB of RAM: arm64's ptdump walks the linear map page by page
(``rodata=full``), one ``pte_entry`` per 4 KiB of RAM, and the crosscheck
traces and replays each of them (the ring buffer is grown to hold them when
the first run of a trigger lost records). The target is the mappings workload (tests/workloads/mappings.py). A
trigger the kernel cannot run must say why, found by probing the kernel.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from livewalk.vm import Guest

from livewalk.crosscheck.triggers import trigger_names
from livewalk.testing.pool import GuestKey
from tests.vm.crosscheck_report import LINE, NOT_APPLICABLE, VERDICT, start_workload

# The paging modes of the command line: 5 in CI, every one in the full matrix.
pytestmark = [pytest.mark.vm, pytest.mark.livewalk_vm(arches=("arm64",))]



@pytest.fixture(scope="module")
def livewalk_guest(request: pytest.FixtureRequest) -> Iterator[Guest]:
    """The marker's arm64 configuration, with two NUMA nodes."""
    key: GuestKey = request.param
    g = Guest(arch=key.arch, levels=key.levels, kernel=key.series, numa_nodes=2, memory="2G")
    try:
        g.start()
        yield g
    finally:
        g.stop()


@pytest.fixture(scope="module")
def target(livewalk_guest: Guest) -> int:
    return start_workload(livewalk_guest)


def _run(g: Guest, args: str) -> Any:
    return g.run(f"python3 -m livewalk crosscheck {args}", timeout=2400)


def test_arm64_crosscheck_every_trigger(livewalk_guest: Guest, target: int) -> None:
    g = livewalk_guest
    assert g.run("uname -m", check=True).stdout.strip() == "aarch64"
    assert g.run("cat /sys/devices/system/node/online").stdout.strip() == "0-1"
    t = time.monotonic()
    r = _run(g, f"--pid {target} --verbose")
    out = r.stdout
    print(out)  # the per-trigger counts and times, for the record
    print(f"crosscheck on arm64 with {g.levels} levels: {time.monotonic() - t:.0f} s")
    assert f"{g.levels}-level paging" in out, out + r.stderr
    # every helper region (THP, hugetlb of the PMD size...) exists in this VM
    assert "helper regions not built" not in out, out
    ran = {m["name"]: m for m in (LINE.match(x) for x in out.splitlines()) if m}
    na = {m["name"]: m["why"] for m in (NOT_APPLICABLE.match(x) for x in out.splitlines()) if m}
    assert set(ran) | set(na) == set(trigger_names()), out + r.stderr
    assert not set(ran) & set(na)
    for name, why in na.items():  # the reason the kernel gave by what it lacks
        assert why.strip() and "no " in why, f"{name}: {why}"
    for name, m in ran.items():
        assert m["ok"] == "ok  ", f"{name}: {m.group(0)}\n{out}"
        assert int(m["walks"]) > 0 and int(m["cbs"]) > 0, m.group(0)
        assert m["mm"] == "0" and m["lost"] == "0", m.group(0)
    # the entry points each user is known to use (Linux 7.2 sources)
    assert "walk_page_range x" in ran["pagemap"]["eps"]
    assert "walk_page_vma x" in ran["smaps"]["eps"]
    if "ptdump" in ran:
        assert "walk_page_range_debug x" in ran["ptdump"]["eps"]
    v = VERDICT.search(out)
    assert v is not None, out
    assert int(v[1]) == sum(int(m["walks"]) for m in ran.values())
    assert int(v[2]) == sum(int(m["cbs"]) for m in ran.values())
    assert v[3] == "0", v.group(0)
    assert "lost" not in v[4] and "problems" not in v[4], v.group(0)
    assert r.returncode == 0, out + r.stderr
