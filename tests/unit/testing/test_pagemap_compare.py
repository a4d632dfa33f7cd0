# SPDX-License-Identifier: LGPL-2.1-or-later
"""tests/vm/compare.py, the pagemap comparison of the VM tests of dumps: a
page is wrong only when livewalk's entry equals none of the kernel's reads,
and each wrong page is named by its address."""

from __future__ import annotations

import pytest

from tests.vm.compare import PM_PRESENT, compare_pagemap, u64s

P = PM_PRESENT


def test_a_page_that_moved_may_equal_either_read() -> None:
    vmas = [(0x10000, 0x12000), (0x40000, 0x41000)]
    before = [P | 1, 0, P | 3]
    after = [P | 1, P | 2, P | 3]
    d = compare_pagemap(vmas, 0x1000, [P | 1, P | 2, P | 3], before, after)
    assert (d.pages, d.present, d.moved, d.bad) == (3, 2, 1, [])
    d = compare_pagemap(vmas, 0x1000, [P | 1, 0, P | 9], before, after)
    assert d.bad == [f"0x40000: kernel {P | 3:#018x}/{P | 3:#018x} ours {P | 9:#018x}"]


def test_page_size_places_the_wrong_page() -> None:
    d = compare_pagemap([(0x100000, 0x10C000)], 0x4000, [0, 0, 5], [0, 0, 0])
    assert d.bad == [f"0x108000: kernel {0:#018x} ours {5:#018x}"]


def test_counts_must_agree() -> None:
    with pytest.raises(AssertionError, match="2 entries, kernel 3"):
        compare_pagemap([(0, 0x3000)], 0x1000, [0, 0], [0, 0, 0])
    with pytest.raises(AssertionError):
        u64s(b"\0" * 12)
    assert u64s((P | 7).to_bytes(8, "little")) == [P | 7]
