# SPDX-License-Identifier: LGPL-2.1-or-later
"""``thp_vma_suitable_order()`` (mm/huge_memory.py) with the kernel's
``unsigned long`` arithmetic: the kernel's own answers, including the one
a low VMA gets when its end is below the huge page size (seen on the 16K
arm64 kernel: a 6 MiB ``[heap]`` ending at 26 MiB, under the 32 MiB PMD,
has ``THPeligible: 1``)."""

from __future__ import annotations

import pytest

from livewalk.mm.huge_memory import _suitable_orders, thp_vma_suitable_order
from livewalk.mm.vma import VMA

M = 1 << 20


def _vma(start: int, end: int, pgoff: int = 0) -> VMA:
    return VMA(start, end, 0, pgoff)


@pytest.mark.parametrize(
    ("start", "end", "hsize", "suitable"),
    [
        (20 * M, 26 * M, 2 * M, True),  # an aligned 2 MiB page fits
        (21 * M, 23 * M, 2 * M, False),  # 2 MiB, but no aligned 2 MiB inside
        (40 * M, 46 * M, 32 * M, False),  # too small, above the huge page size
        # ends below the huge page size: vm_end - hsize wraps, the aligned
        # address is -hsize and its end wraps to 0: the kernel says suitable
        (20 * M, 26 * M, 32 * M, True),
        (0x10000, 0x20000, 2 * M, True),
        # ends exactly at the size: no wrap of the end, the page is [0, hsize)
        (20 * M, 32 * M, 32 * M, False),
    ],
)
def test_anonymous(start: int, end: int, hsize: int, suitable: bool) -> None:
    v = _vma(start, end)
    assert thp_vma_suitable_order(v, end - hsize, hsize, True, 14) is suitable


def test_file_offset_must_be_aligned() -> None:
    # 4K pages: a 2 MiB page needs (vm_start >> 12) - vm_pgoff aligned to 512
    assert thp_vma_suitable_order(_vma(4 * M, 8 * M, 0), 6 * M, 2 * M, False, 12)
    assert not thp_vma_suitable_order(_vma(4 * M, 8 * M, 1), 6 * M, 2 * M, False, 12)
    # vm_pgoff above vm_start's page number: the difference is unsigned
    assert thp_vma_suitable_order(_vma(4 * M, 8 * M, 1024 + 512), 6 * M, 2 * M, False, 12)


def test_orders_down_to_the_first_suitable() -> None:
    # 16K pages: orders 2..11 (64 KiB..32 MiB); a 6 MiB VMA at 40 MiB fits
    # 4 MiB (order 8) at most
    orders = ((1 << 12) - 1) & ~0b11
    assert _suitable_orders(_vma(40 * M, 46 * M), orders, True, 14) == orders & ((1 << 9) - 1)
    # the same VMA below 32 MiB: the wrapped PMD order is suitable already
    assert _suitable_orders(_vma(20 * M, 26 * M), 1 << 11, True, 14) == 1 << 11
    assert _suitable_orders(_vma(40 * M, 46 * M), 1 << 11, True, 14) == 0
