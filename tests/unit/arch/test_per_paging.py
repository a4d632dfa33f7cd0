# SPDX-License-Identifier: LGPL-2.1-or-later
"""``per_paging``: what a consumer works out from a paging, kept per paging
object (by identity, with the object, so an ``id()`` is never reused while
its result is kept)."""

from __future__ import annotations

from livewalk.arch import ArchPaging, PageTableLevel, per_paging
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.x86.pgtable import X86Paging


def test_kept_per_paging_object() -> None:
    built: list[ArchPaging] = []

    @per_paging
    def pmd_shift(paging: ArchPaging) -> int:
        """PMD_SHIFT."""
        built.append(paging)
        return paging.level_shift(PageTableLevel.PMD)

    x86, a16k = X86Paging(levels=4), Arm64Paging(page_shift=14)
    assert [pmd_shift(x86), pmd_shift(a16k), pmd_shift(x86), pmd_shift(a16k)] == [21, 25, 21, 25]
    assert built == [x86, a16k]  # each built once
    other = X86Paging(levels=4)  # equal, but another object: built for itself
    assert pmd_shift(other) == 21 and built[-1] is other
    assert pmd_shift.__doc__ == "PMD_SHIFT." and pmd_shift.__name__ == "pmd_shift"


def test_at_most_64_kept() -> None:
    calls = []

    @per_paging
    def levels(paging: ArchPaging) -> int:
        calls.append(1)
        return paging.levels

    pagings = [X86Paging(levels=4) for _ in range(100)]
    assert all(levels(p) == 4 for p in pagings)
    assert len(calls) == 100
    assert levels(pagings[-1]) == 4 and len(calls) == 100  # the newest is still kept
