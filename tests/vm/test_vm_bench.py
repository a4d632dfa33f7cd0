# SPDX-License-Identifier: LGPL-2.1-or-later
"""The side-by-side benchmark (``bench/bench_targets.py``, issue [5]) runs
once, in its quick mode, so that it cannot rot.

This test asserts that every measurement ran and produced sane figures and
that the answers agree: livewalk's pagemap equals the kernel's
``/proc/PID/pagemap`` bytes in the guest, livewalk's PFNs from the host equal
drgn's ``follow_phys`` on every sampled page, and the numbers of present
pages are those the workload populated (64 MiB of 4 KiB pages and THP, one
page per 16 MiB of the 512 MiB sparse mapping). It asserts no timing
thresholds: the figures are printed (run pytest with ``-s`` to see them).

The benchmark boots its own guest: its time-to-first-result measurement
attaches a fresh host process over QMP, and QEMU serves one QMP client at a
time, which the session guests' host programs may already hold.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
from livewalk.vm import Guest

pytestmark = pytest.mark.vm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = 4096
QUICK_SIZE_MB = 64
QUICK_SPARSE_MB = 512
SPARSE_STRIDE = 16 << 20  # tests/workloads/mappings.py --sparse-stride-kb default


def _bench_module() -> ModuleType:
    path = os.path.join(REPO, "bench", "bench_targets.py")
    spec = importlib.util.spec_from_file_location("livewalk_bench_targets", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def bench_run() -> Iterator[tuple[Any, list[str]]]:
    bt = _bench_module()
    lines: list[str] = []

    def out(s: str) -> None:
        lines.append(s)
        print(s, flush=True)

    res = bt.Results(out=out)
    bt.machine_header(res)
    with Guest(levels=5) as g:
        bt.run(g, quick=True, size_mb=QUICK_SIZE_MB, sparse_mb=QUICK_SPARSE_MB, res=res)
    yield res, lines


def test_bench_answers_agree(bench_run: tuple[Any, list[str]]) -> None:
    res, _ = bench_run
    c = res.counts
    populated = QUICK_SIZE_MB * (1 << 20) // PAGE
    sparse = QUICK_SPARSE_MB * (1 << 20) // SPARSE_STRIDE
    # The kernel's own pagemap (read in the guest) sees what the workload
    # populated, and livewalk in the guest produced the very same bytes.
    assert c["guest_present_pages"] == populated + sparse
    assert c["guest_pages"] == (QUICK_SIZE_MB + QUICK_SPARSE_MB) * (1 << 20) // PAGE
    assert c["guest_regions_equal"] == 3, res.info.get("guest_equal")
    assert c["guest_mismatch_pages"] == 0
    # livewalk from the host over QMP counts the same present pages.
    assert c["livewalk_host_bench_present"] == populated + sparse
    # follow_phys and livewalk agree on every sampled page, and the sample
    # has both mapped and unmapped pages.
    assert c["sample_mismatches"] == 0
    assert 0 < c["sample_present_follow_phys"] < c["sample_pages"]
    # The fresh process's first walk: the first 2 MiB of bench_4k, all present.
    assert c["ttfr_present_pages"] == 512
    # Synthetic sparse walk: 64 VMAs of one PTE table each: pte_entry for
    # every slot of a table (as walk_pte_range does), one hole before each
    # VMA and one after the last.
    assert c["sparse128t_synthetic_pte_entry_calls"] == 64 * 512
    assert c["sparse128t_synthetic_pte_hole_calls"] == 65
    assert c["sparse128t_real_pmd_entry_calls"] > 0


def test_bench_figures_sane(bench_run: tuple[Any, list[str]]) -> None:
    res, lines = bench_run
    for name in (
        "ttfr_total_since_exec",
        "livewalk_host_all_vmas",
        "livewalk_host_whole_runs",
        "follow_phys_sample",
        "livewalk_host_sample",
        "follow_phys_all_vmas_estimate",
        "sparse128t_real_qmp",
        "sparse128t_synthetic",
        "kernel_pagemap",
        "livewalk_guest",
        "synthetic_1gib_pte_entry_walk",
        "vtop_one_address",
        "follow_phys_one_address",
    ):
        v = res.times[name]
        assert math.isfinite(v) and 0 < v < 3600, (name, v)
    for name in (
        "follow_phys_over_livewalk_sample",
        "follow_phys_over_livewalk_host",
        "livewalk_guest_over_kernel_pagemap",
        "vtop_one_address_over_follow_phys",
    ):
        v = res.ratios[name]
        assert math.isfinite(v) and v > 0, (name, v)
    for name in ("sparse128t_real_qmp_peak", "sparse128t_synthetic_peak"):
        assert res.mem[name] > 0, name
    assert res.rates["synthetic_pte_entry_calls_per_s"] > 0
    assert res.ratios["pte_entry_rate_over_bare_calls_arm64"] > 0  # beside x86_64's
    # The printed report has the lines users read.
    text = "\n".join(lines)
    for prefix in (
        "RATIO follow_phys_over_livewalk_host ",
        "RATIO livewalk_guest_over_kernel_pagemap ",
        "TIME livewalk_guest ",
        "TIME kernel_pagemap ",
        "MEM sparse128t_synthetic_peak ",
        "MACHINE cpu ",
        "MACHINE guest_kernel ",
    ):
        assert prefix in text, prefix
    assert all(k in res.targets for k in (
        "host_100x_follow_phys", "guest_within_20x_kernel", "sparse128t_under_1s_100mb",
        "ttfr_under_2s",
    ))


@pytest.mark.livewalk_vm(arches=("arm64",), paging=(5,))
def test_bench_guest_ratio_arm64(livewalk_guest: Guest) -> None:
    """
    The guest/kernel pagemap ratio in the arm64 guest (the session's, 5
    levels), printed beside the x86_64 guest's: the bytes equal the
    kernel's, and the synthetic arm64 ``pte_entry`` rate is there too.
    """
    bt = _bench_module()
    lines: list[str] = []

    def out(s: str) -> None:
        lines.append(s)
        print(s, flush=True)

    res = bt.Results(out=out)
    ratio = bt.guest_ratio(livewalk_guest, res, quick=True, size_mb=QUICK_SIZE_MB,
                           sparse_mb=QUICK_SPARSE_MB)
    assert math.isfinite(ratio) and ratio > 0
    c = res.counts
    page = 4096  # the Debian cloud-arm64 kernel's granule
    populated = QUICK_SIZE_MB * (1 << 20) // page
    sparse = QUICK_SPARSE_MB * (1 << 20) // SPARSE_STRIDE
    assert c["guest_pages_arm64"] == (QUICK_SIZE_MB + QUICK_SPARSE_MB) * (1 << 20) // page
    assert c["guest_present_pages_arm64"] == populated + sparse
    assert c["guest_regions_equal_arm64"] == 3
    assert c["guest_mismatch_pages_arm64"] == 0
    assert any(s.startswith("RATIO livewalk_guest_over_kernel_pagemap_arm64 ") for s in lines)
    bt.run_bench_walker(res, 5, True)
    assert res.ratios["pte_entry_rate_over_bare_calls_arm64"] > 0
    assert res.rates["synthetic_pte_entry_calls_per_s_arm64"] > 0
