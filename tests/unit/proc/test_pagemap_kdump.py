# SPDX-License-Identifier: LGPL-2.1-or-later
"""
pagemap's fast paths (whole vmemmap blocks decoded at once, small and large
folios; uniform PTE tables) against its page-by-page path, on a real Linux
kdump when one is at hand: every VMA of every process, entry by entry.
Skipped without one (``LIVEWALK_TEST_VMCORE`` and ``LIVEWALK_TEST_VMLINUX``
name it; by default the 7.2 x86_64 dump the VM tests leave behind).
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("drgn")

from livewalk.proc.pagemap import pagemap_read  # noqa: E402
from livewalk.proc.pagemap_page import DrgnPageState, PagemapPage  # noqa: E402

_VMCORE = os.environ.get("LIVEWALK_TEST_VMCORE", "/tmp/kdump-out4/kdump/vmcore-0")
_VMLINUX = os.environ.get("LIVEWALK_TEST_VMLINUX", "/var/cache/livewalk-vm/current-x86_64-7/vmlinux")

pytestmark = pytest.mark.skipif(
    not (os.path.isfile(_VMCORE) and os.path.isfile(_VMLINUX)), reason="no kdump at hand"
)


class _PagePerPage:
    """A :class:`DrgnPageState` seen only through the protocol: pagemap asks it page by page."""

    def __init__(self, inner: DrgnPageState) -> None:
        self.inner = inner

    def highest_memmap_pfn(self) -> int:
        return self.inner.highest_memmap_pfn()

    def page_info(self, pfn: int) -> PagemapPage | None:
        return self.inner.page_info(pfn)

    def hugetlb_pmd_shared(self, ptep: int) -> bool:
        return self.inner.hugetlb_pmd_shared(ptep)


def test_fast_paths_equal_page_by_page() -> None:
    from drgn.helpers.linux.pid import for_each_task

    from livewalk.backend.drgn import DrgnBackend
    from livewalk.program import open_program

    prog = open_program(core=_VMCORE, symbols=[_VMLINUX], default_symbols=False)
    backend = DrgnBackend.for_program(prog)
    checked = 0
    for task in for_each_task(prog):
        mm = task.mm.read_()
        if not mm:
            continue
        for v in backend.vmas(mm):
            for show_pfn in (True, False):
                fast = pagemap_read(mm, v.vm_start, v.vm_end, show_pfn=show_pfn)
                slow = pagemap_read(
                    mm, v.vm_start, v.vm_end, show_pfn=show_pfn, page_state=_PagePerPage(DrgnPageState(prog))
                )
                assert fast == slow, f"PID {int(task.pid)} VMA {v.vm_start:#x}-{v.vm_end:#x} show_pfn={show_pfn}"
                checked += len(fast)
    assert checked
