# SPDX-License-Identifier: LGPL-2.1-or-later
"""
What livewalk keeps between two calls never answers for a live target that
changed in between (issue [E]).

A guest process (the workload of ``test_vm_consistency_inject.py``) is asked
small questions from the host over QMP, warm: ``pagemap_read`` of its range,
``vtop`` of one address, ``find_vma``. Between two rounds of questions it
changes the range (a page written, a VMA split by ``mprotect``, pages
unmapped); the next answers must be the new ones: equal to the guest
kernel's own ``/proc/PID/pagemap`` and to its VMA boundaries.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from livewalk.vm import Guest
from test_vm_consistency_inject import MB2, PAGE, Workload

pytestmark = pytest.mark.vm

PM_PRESENT = 1 << 63


@pytest.fixture(scope="module")
def wl(guest5: Guest) -> Iterator[Workload]:
    w = Workload(guest5)
    yield w
    w.stop()


def _answers(mm: Any, base: int) -> tuple[list[int], Any, Any, Any]:
    from livewalk.backend.drgn import DrgnBackend
    from livewalk.proc.pagemap import pagemap_read
    from livewalk.tools.vtop import vtop

    backend = DrgnBackend.for_program(mm.prog_)
    return (
        list(pagemap_read(mm, base, base + MB2)),
        vtop(mm, base + 4 * PAGE + 0x123),
        backend.find_vma(mm, base),
        backend.find_vma(mm, base + 4 * PAGE),
    )


def test_answers_follow_the_target_between_calls(guest5: Guest, wl: Workload) -> None:
    from livewalk.task import find_mm

    mm = find_mm(guest5.host_program(), wl.pid)[1]
    base = wl.base
    for _ in range(2):  # warm: every cache filled
        pm, v, first, at4 = _answers(mm, base)
    assert pm == wl.kernel_pagemap(base, base + MB2)
    assert v.state == "present" and pm[4] & PM_PRESENT
    assert (first.vm_start, first.vm_end) == (at4.vm_start, at4.vm_end)
    assert first.vm_start <= base < base + MB2 <= first.vm_end

    wl.do("touch", 300)  # a page written: a PTE of a table already read
    pm, v, first, at4 = _answers(mm, base)
    assert pm == wl.kernel_pagemap(base, base + MB2) and pm[300] & PM_PRESENT

    wl.do("mprotect", 0, 2)  # the VMA split in three: the VMA tree changed
    pm, v, first, at4 = _answers(mm, base)
    assert pm == wl.kernel_pagemap(base, base + MB2)
    assert (first.vm_start, first.vm_end) == (base, base + 2 * PAGE)
    assert at4.vm_start == base + 2 * PAGE
    assert v.vma is not None and v.vma.vm_start == base + 2 * PAGE

    wl.do("munmap", 4, 2)  # pages 4 and 5 gone: no VMA there any more
    pm, v, first, at4 = _answers(mm, base)
    assert pm == wl.kernel_pagemap(base, base + MB2)
    assert pm[4] == pm[5] == 0
    assert v.state == "no_vma" and v.vma is None
    assert at4.vm_start == base + 6 * PAGE


def test_vmemmap_reads_by_physical_address_equal_drgns(guest5: Guest) -> None:
    """
    Over QMP the backend reads ``struct page`` s by physical address through
    the PMD leaf that maps them (x86_64's vmemmap: 2 MiB leaves): the bytes
    are drgn's, whose own walk translates each virtual read.
    """
    from tests.vm.vmemmap_reads import compare_vmemmap_reads

    r = compare_vmemmap_reads(guest5.host_program())
    print(f"vmemmap: {r.compared} struct pages compared, {r.physical} by physical address, {r.absent} absent")
    assert not r.differ, r.differ
    assert r.compared >= 512 and r.physical == r.compared
