# SPDX-License-Identifier: LGPL-2.1-or-later
"""
pagemap's fast paths (whole vmemmap blocks decoded at once, small and large
folios; uniform PTE tables, their runs of frames) against its page-by-page
path, on a real Linux dump: every VMA of every process, entry by entry.
Used by ``tests/vm/test_vm_kdump.py``, on the kdump it makes and on one on
disk.
"""

from __future__ import annotations

from livewalk.proc.pagemap import pagemap_read
from livewalk.proc.pagemap_page import DrgnPageState, PagemapPage


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


def fast_paths_equal_page_by_page(core: str, vmlinux: str) -> tuple[int, int]:
    """
    Assert that pagemap of every VMA of every task of the dump *core*
    (debugging information *vmlinux*), with and without PFNs, is the same
    through the fast paths and page by page. Returns the entries compared
    and how many of them were present.
    """
    from drgn.helpers.linux.pid import for_each_task

    from livewalk.backend.drgn import DrgnBackend
    from livewalk.program import open_program

    prog = open_program(core=core, symbols=[vmlinux], default_symbols=False)
    backend = DrgnBackend.for_program(prog)
    checked = present = 0
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
                present += sum(1 for e in fast if e >> 63)
    assert checked and present
    return checked, present
