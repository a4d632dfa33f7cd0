# SPDX-License-Identifier: LGPL-2.1-or-later
"""The consumers that decode x86_64 entries themselves (smaps, vtop) refuse
another architecture's tables with one clear error, not a wrong answer: the
walker and pagemap run on arm64, they do not yet."""

from __future__ import annotations

import pytest

from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.x86.pgtable import X86Paging, as_x86
from livewalk.backend.synthetic import SyntheticMM
from livewalk.errors import LivewalkError, UnsupportedArchError
from livewalk.tools.vtop import vtop

ARM64 = Arm64Paging(phys_offset=0)


def test_as_x86_passes_x86_through() -> None:
    p = X86Paging(levels=4)
    assert as_x86(p, "pagemap") is p


def test_as_x86_names_the_tool_and_the_arch() -> None:
    with pytest.raises(UnsupportedArchError, match=r"^pagemap decodes x86_64 page tables only, not arm64 yet"):
        as_x86(ARM64, "pagemap")
    assert issubclass(UnsupportedArchError, LivewalkError)  # one CLI error line


def test_vtop_refuses_arm64_tables() -> None:
    mm = SyntheticMM(paging=ARM64)
    mm.add_vma(0x400000, 0x600000)
    mm.map_page(0x400000, pfn=5)
    with pytest.raises(UnsupportedArchError, match="vtop"):
        vtop(mm, 0x400000)
