# SPDX-License-Identifier: LGPL-2.1-or-later
"""
pagemap output
--------------

:class:`~livewalk.proc.pagemap_entry.PagemapRun` runs as text lines or as
data (dicts and lists, serialized once by the caller: ``livewalk pagemap
--format json``).

>>> from livewalk.proc.pagemap_entry import PM_PRESENT, PagemapRun
>>> runs = [PagemapRun(0x400000, 0x401000, PM_PRESENT, 0x2D3F1, 0)]
>>> print(*format_pagemap_text(runs))
0x000000400000-0x000000401000        1 PRESENT pfn 0x2d3f1
>>> pagemap_dicts(runs)[0]["pfn"]
185329
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from livewalk.mm.swapfile import MAX_SWAPFILES_SHIFT
from livewalk.proc.pagemap_entry import PM_PRESENT, PM_SWAP, PagemapRun, pagemap_flag_names

__all__ = (
    "format_pagemap_text",
    "pagemap_dicts",
)

_SWP_TYPE_MASK = (1 << MAX_SWAPFILES_SHIFT) - 1


def _describe_frame(run: PagemapRun) -> str:
    last = run.frame + (run.npages - 1) * run.step
    if run.flags & PM_PRESENT:
        if run.npages == 1 or run.step == 0:
            return f"pfn {run.frame:#x}"
        return f"pfn {run.frame:#x}-{last:#x}"
    if run.flags & PM_SWAP:
        typ = run.frame & _SWP_TYPE_MASK
        off = run.frame >> MAX_SWAPFILES_SHIFT
        loff = last >> MAX_SWAPFILES_SHIFT
        rng = f"{off:#x}" if loff == off else f"{off:#x}-{loff:#x}"
        return f"swap type {typ} offset {rng}"
    return ""


def format_pagemap_text(runs: Iterable[PagemapRun], *, holes: bool = True) -> Iterator[str]:
    """
    One line per run: address range, page count, flags and frames.

    >>> print(*format_pagemap_text(runs), sep="\\n")  # doctest: +SKIP
    0x00400000-0x00401000      1 PRESENT|FILE|SOFT_DIRTY pfn 0x2d3f1
    """
    for r in runs:
        if not holes and r.flags == 0 and r.frame == 0:
            continue
        names = "|".join(pagemap_flag_names(r.flags)) or "-"
        frame = _describe_frame(r)
        line = f"{r.start:#014x}-{r.end:#014x} {r.npages:8d} {names}"
        yield f"{line} {frame}" if frame else line


def pagemap_dicts(runs: Iterable[PagemapRun]) -> list[dict[str, Any]]:
    """
    The runs as data: one dict per run with ``start``, ``end``, ``pages``,
    ``flags`` (names), ``raw_flags``, ``frame``, ``frame_step``, and ``pfn``
    or ``swap_type``/``swap_offset`` where they apply.

    :param runs: :func:`~livewalk.proc.pagemap.pagemap_runs`
    """
    out = []
    for r in runs:
        d: dict[str, Any] = {
            "start": r.start,
            "end": r.end,
            "pages": r.npages,
            "flags": pagemap_flag_names(r.flags),
            "raw_flags": r.flags,
            "frame": r.frame,
            "frame_step": r.step,
        }
        if r.flags & PM_PRESENT:
            d["pfn"] = r.frame
        elif r.flags & PM_SWAP:
            d["swap_type"] = r.frame & _SWP_TYPE_MASK
            d["swap_offset"] = r.frame >> MAX_SWAPFILES_SHIFT
        out.append(d)
    return out
