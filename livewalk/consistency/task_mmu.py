# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Checked task_mmu.c readers
--------------------------

``/proc/PID/pagemap`` and ``/proc/PID/smaps`` of a live target, judged and
read again table by table or VMA by VMA (:func:`~livewalk.consistency.ranges.read_consistent`).

>>> r = pagemap_read_consistent(mm, 0x400000, 0x600000)  # doctest: +SKIP
>>> r.consistency.level, len(r.value)  # doctest: +SKIP
('walk', 512)
"""

from __future__ import annotations

from typing import Any

from livewalk.backend import backend_for_mm
from livewalk.consistency.ranges import DEFAULT_RETRIES, ConsistentRead, read_consistent
from livewalk.mm.pagewalk import MMWalk

__all__ = (
    "pagemap_read_consistent",
    "smaps_consistent",
)

# -- the task_mmu.c readers -------------------------------------------------------


def pagemap_read_consistent(
    mm: Any, start: int, end: int, *, show_pfn: bool = True, retries: int = DEFAULT_RETRIES
) -> ConsistentRead[Any]:
    """
    :func:`~livewalk.proc.pagemap.pagemap_read` of the page-aligned range
    [*start*, *end*), judged and read again table by table
    (:func:`read_consistent`). The value is the ``array('Q')`` of entries.
    """
    from livewalk.proc.pagemap import pagemap_read

    backend = backend_for_mm(mm)

    def read(s: int, e: int, walks: list[MMWalk]) -> Any:
        return pagemap_read(mm, s, e, show_pfn=show_pfn, backend=backend, walks=walks)

    def splice(value: Any, s: int, e: int, new: Any) -> Any:
        shift = backend.paging.page_shift
        value[(s - start) >> shift : (e - start) >> shift] = new
        return value

    return read_consistent(mm, start, end, read, splice, retries=retries)


def smaps_consistent(
    mm: Any, end: int, *, retries: int = DEFAULT_RETRIES, progress: Any = None
) -> ConsistentRead[Any]:
    """
    :func:`~livewalk.proc.smaps.smaps` of *mm* (its VMAs below *end*, the
    task size), judged VMA by VMA. ``smaps()`` reads every VMA, so a torn
    read is read again whole (at most *retries* times).
    """
    from livewalk.proc.smaps import smaps

    def read(s: int, e: int, walks: list[MMWalk]) -> Any:
        return smaps(mm, walks=walks, progress=progress)

    return read_consistent(mm, 0, end, read, None, retries=retries, unit="vma")


