# SPDX-License-Identifier: LGPL-2.1-or-later
"""
livewalk
========

The Linux kernel's page-table walker (``mm/pagewalk.c``), reimplemented in
Python, run over the page tables of real kernels read with drgn.

``from livewalk import *`` gives the walker API, mirroring
``include/linux/pagewalk.h`` (:mod:`livewalk.mm.pagewalk`), and the entry
points of the tools built on it. Nothing it exports shadows a drgn helper;
the rest lives in the subpackages, each named after the kernel directory it
mirrors:

* :mod:`livewalk.mm`: ``mm/pagewalk.c``, ``mm/folio_walk``, page and folio
  state;
* :mod:`livewalk.arch`: the architecture seam (``arch/x86``);
* :mod:`livewalk.proc`: ``fs/proc/task_mmu.c`` (pagemap, smaps);
* :mod:`livewalk.tools`: vtop, ptdump, verify;
* :mod:`livewalk.backend`: where page tables come from (drgn, synthetic).

>>> from livewalk import *
>>> walk_page_range(task.mm, 0, 1 << 47, MMWalkOps(pte_hole=print))  # doctest: +SKIP
"""

# First, for its side effect: a drgn too old or missing is reported in one
# line naming what to install, not as a missing attribute deep in an import.
import livewalk.requirements  # noqa: F401, I001

# Imported for its side effect: it registers the backend of drgn Objects.
import livewalk.backend.drgn  # noqa: F401
from livewalk.consistency import checked_walk, walk_with_retry
from livewalk.drgn_plugin import pagemap
from livewalk.errors import LivewalkError
from livewalk.mm.folio_walk import folio_walk_end, folio_walk_start
from livewalk.mm.pagewalk import (
    ACTION_AGAIN,
    ACTION_CONTINUE,
    ACTION_SUBTREE,
    MM_WALK_CALLBACKS,
    PGWALK_RDLOCK,
    PGWALK_VMA_RDLOCK_VERIFY,
    PGWALK_WRLOCK,
    PGWALK_WRLOCK_VERIFY,
    MMWalk,
    MMWalkOps,
    PageWalkAction,
    PageWalkLock,
    PTEOut,
    walk_kernel_page_table_range,
    walk_kernel_page_table_range_lockless,
    walk_page_mapping,
    walk_page_range,
    walk_page_range_debug,
    walk_page_range_mm_unsafe,
    walk_page_range_vma,
    walk_page_range_vma_unsafe,
    walk_page_vma,
)
from livewalk.proc.pagemap import pagemap_read
from livewalk.proc.smaps import format_smaps, smaps
from livewalk.tools.ptdump import format_ptdump, ptdump
from livewalk.tools.vtop import format_vtop, vtop, vtop_kernel

__all__ = (
    "ACTION_AGAIN",
    "ACTION_CONTINUE",
    "ACTION_SUBTREE",
    "LivewalkError",
    "MMWalk",
    "MMWalkOps",
    "MM_WALK_CALLBACKS",
    "PGWALK_RDLOCK",
    "PGWALK_VMA_RDLOCK_VERIFY",
    "PGWALK_WRLOCK",
    "PGWALK_WRLOCK_VERIFY",
    "PTEOut",
    "PageWalkAction",
    "PageWalkLock",
    "checked_walk",
    "folio_walk_end",
    "folio_walk_start",
    "format_ptdump",
    "format_smaps",
    "format_vtop",
    "pagemap",
    "pagemap_read",
    "ptdump",
    "smaps",
    "vtop",
    "vtop_kernel",
    "walk_kernel_page_table_range",
    "walk_kernel_page_table_range_lockless",
    "walk_page_mapping",
    "walk_page_range",
    "walk_page_range_debug",
    "walk_page_range_mm_unsafe",
    "walk_page_range_vma",
    "walk_page_range_vma_unsafe",
    "walk_page_vma",
    "walk_with_retry",
)
