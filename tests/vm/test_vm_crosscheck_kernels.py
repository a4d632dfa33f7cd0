# SPDX-License-Identifier: LGPL-2.1-or-later
"""
``livewalk crosscheck`` on the older kernel series: Debian's 6.1.y with
5-level paging and 6.12.y with 4-level paging (7.x, in both modes, is
tests/vm/test_vm_crosscheck.py). Every trigger the kernel can run must
match walk for walk with nothing lost; the others must say "not applicable
on this kernel" with the reason, and the entry points and ``mm_walk_ops``
members the kernel lacks must be named as not present.

What each kernel lacks is written here from its sources (Debian's
linux-source-6.1 and -6.12), not taken from livewalk: 6.1 has no
PAGEMAP_SCAN (6.7), no guard regions (6.13), no ``check_wx_pages`` file and
walks kernel tables with ``walk_page_range_novma``; 6.12.118 has
PAGEMAP_SCAN and ``walk_page_range_debug`` (6.12.105) but no guard regions
and no ``install_pte``.

The guests have two NUMA nodes (``migrate_pages(2)`` walks only when a page
would move), so they are this module's own; one crosscheck run per kernel.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from livewalk.vm import Guest

from livewalk.crosscheck.triggers import trigger_names
from tests.vm.crosscheck_report import LINE, NOT_APPLICABLE, VERDICT, start_workload

#: series, paging levels, triggers that kernel cannot run (and a word of the
#: reason), entry points / members it must report as not present, entry
#: point of the ptdump trigger
KERNELS: dict[str, dict[str, Any]] = {
    "6.1": {
        "levels": 5,
        "not_applicable": {"pagemap_scan": "PAGEMAP_SCAN", "madv_guard_install": "guard regions",
                           "madv_guard_remove": "guard regions", "ptdump": "check_wx_pages"},
        "absent": ("walk_page_range_debug", "walk_kernel_page_table_range", "walk_page_range_mm_unsafe",
                   "mm_walk_ops.install_pte"),
        "traced": ("walk_page_range", "walk_page_vma", "walk_page_range_novma"),
    },
    "6.12": {
        "levels": 4,
        "not_applicable": {"madv_guard_install": "guard regions", "madv_guard_remove": "guard regions"},
        "absent": ("walk_page_range_novma", "walk_page_range_mm_unsafe", "walk_page_range_vma_unsafe",
                   "mm_walk_ops.install_pte"),
        "traced": ("walk_page_range", "walk_page_vma", "walk_page_range_debug", "walk_kernel_page_table_range"),
    },
}  # fmt: skip


@pytest.fixture(scope="module", params=list(KERNELS), ids=[f"{k}-l{v['levels']}" for k, v in KERNELS.items()])
def kernel_guest(request: pytest.FixtureRequest) -> Iterator[tuple[str, Guest]]:
    series = request.param
    g = Guest(kernel=series, levels=KERNELS[series]["levels"], numa_nodes=2)
    try:
        g.start()
        yield series, g
    finally:
        g.stop()


def test_crosscheck_on_older_kernels(kernel_guest: tuple[str, Guest]) -> None:
    series, g = kernel_guest
    want = KERNELS[series]
    assert g.release is not None and g.release.startswith(f"{series}."), g.release
    assert g.run("cat /sys/devices/system/node/online").stdout.strip() == "0-1"
    target = start_workload(g)
    r = g.run(f"python3 -m livewalk crosscheck --pid {target}", timeout=1800)
    out = r.stdout
    print(out)  # the per-trigger counts, for the record
    ran = {m["name"]: m for m in (LINE.match(x) for x in out.splitlines()) if m}
    na = {m["name"]: m["why"] for m in (NOT_APPLICABLE.match(x) for x in out.splitlines()) if m}
    # every trigger is accounted for, once: run, or not applicable
    assert set(ran) | set(na) == set(trigger_names()) and not set(ran) & set(na), out + r.stderr
    assert set(na) == set(want["not_applicable"]), out
    for name, word in want["not_applicable"].items():
        assert word in na[name], f"{name}: {na[name]}"
    for name, m in ran.items():
        assert m["ok"] == "ok  ", f"{name}: {m.group(0)}\n{out}"
        assert int(m["walks"]) > 0 and int(m["cbs"]) > 0, m.group(0)
        assert m["mm"] == "0" and m["lost"] == "0", m.group(0)
    tracing = re.search(r"^crosscheck: Linux (\S+): tracing \d+ entry points \(([^)]*)\)", out, re.M)
    assert tracing is not None and tracing[1] == g.release, out
    for ep in want["traced"]:
        assert ep in tracing[2].split(", "), tracing.group(0)
    absent = re.search(r"^crosscheck: not present in this kernel: (.*)$", out, re.M)
    assert absent is not None, out
    for name in want["absent"]:
        assert name in absent[1].split(", "), absent.group(0)
    assert "walk_page_range x" in ran["pagemap"]["eps"]
    assert "walk_page_vma x" in ran["smaps"]["eps"]
    if "ptdump" in ran:
        assert ran["ptdump"]["eps"] == "walk_page_range_debug x2"
    v = VERDICT.search(out)
    assert v is not None, out
    assert int(v[1]) == sum(int(m["walks"]) for m in ran.values())
    assert int(v[2]) == sum(int(m["cbs"]) for m in ran.values())
    assert v[3] == "0" and v[4] == f"; {len(na)} triggers not applicable on this kernel", v.group(0)
    assert r.returncode == 0, out + r.stderr
