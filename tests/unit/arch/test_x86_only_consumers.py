# SPDX-License-Identifier: LGPL-2.1-or-later
"""``as_x86()``, for a consumer that decodes x86_64 entries itself, refuses
another architecture's tables with one clear error, not a wrong answer
(smaps and vtop are arch-generic now: tests/unit/proc/test_smaps_arm64.py,
tests/unit/tools/test_vtop_arm64.py)."""

from __future__ import annotations

import pytest

from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.x86.pgtable import X86Paging, as_x86
from livewalk.errors import LivewalkError, UnsupportedArchError

ARM64 = Arm64Paging(phys_offset=0)


def test_as_x86_passes_x86_through() -> None:
    p = X86Paging(levels=4)
    assert as_x86(p, "pagemap") is p


def test_as_x86_names_the_tool_and_the_arch() -> None:
    with pytest.raises(UnsupportedArchError, match=r"^pagemap decodes x86_64 page tables only, not arm64 yet"):
        as_x86(ARM64, "pagemap")
    assert issubclass(UnsupportedArchError, LivewalkError)  # one CLI error line
