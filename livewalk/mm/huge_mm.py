# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Huge page sizes of the target
-----------------------------

The per-target constants of ``include/linux/huge_mm.h`` that smaps, shmem and
swap accounting size things by, and the ``PAGE_SHIFT`` they build on. They
are compile-time constants of the kernel, so they are taken from the target
(drgn's ``PAGE_SHIFT``, from VMCOREINFO's ``PAGESIZE``), never assumed to be
x86's: a 16K arm64 kernel has 2048-entry tables and 32 MiB PMD THPs.

>>> page_shift(prog), hpage_pmd_order(prog), hpage_pmd_nr(prog)  # doctest: +SKIP
(14, 11, 2048)
"""

from __future__ import annotations

from drgn import Program

__all__ = (
    "hpage_pmd_nr",
    "hpage_pmd_order",
    "page_shift",
)


def page_shift(prog: Program) -> int:
    """
    The target's ``PAGE_SHIFT``: 12 on x86_64; 12, 14 or 16 on arm64.

    >>> page_shift(prog)  # doctest: +SKIP
    14
    """
    return int(prog["PAGE_SHIFT"].value_())


def hpage_pmd_order(prog: Program) -> int:
    """
    ``HPAGE_PMD_ORDER`` (``PMD_SHIFT - PAGE_SHIFT``): a page table of 8-byte
    entries fills one page, so 9 with 4K pages, 11 with 16K and 13 with 64K.

    >>> hpage_pmd_order(prog)  # doctest: +SKIP
    9
    """
    return page_shift(prog) - 3


def hpage_pmd_nr(prog: Program) -> int:
    """
    ``HPAGE_PMD_NR``: the base pages of a PMD-mapped THP (512 with 4K
    pages, 2048 with 16K).

    >>> hpage_pmd_nr(prog)  # doctest: +SKIP
    512
    """
    return 1 << hpage_pmd_order(prog)
