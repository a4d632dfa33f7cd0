# SPDX-License-Identifier: LGPL-2.1-or-later
"""
hugetlb
-------

The ``mm/hugetlb.c`` facts about a hugetlb VMA (Linux 7.2): its huge page
size and whether a page-table page is shared between processes.

>>> vma_kernel_pagesize(vma)  # doctest: +SKIP
2097152
"""

from __future__ import annotations

from drgn import Object, Program, cast

from livewalk.mm.page import PageReader

__all__ = (
    "huge_page_shift_of_vma",
    "hugetlb_pmd_shared",
    "vma_kernel_pagesize",
)


def huge_page_shift_of_vma(vma: Object) -> int:
    """
    ``huge_page_shift(hstate_vma(vma))``: the hstate is the one of the
    hugetlbfs superblock of ``vma->vm_file``; its size is ``PAGE_SIZE <<
    order``.

    :param vma: ``struct vm_area_struct *`` of a hugetlb mapping
    """
    sb = vma.vm_file.f_inode.i_sb
    sbinfo = cast("struct hugetlbfs_sb_info *", sb.s_fs_info)
    return int(vma.prog_["PAGE_SHIFT"].value_()) + int(sbinfo.hstate.order.value_())


def vma_kernel_pagesize(vma: Object) -> int:
    """
    ``vma_kernel_pagesize(vma)``: ``vm_ops->pagesize(vma)`` if set (hugetlbfs:
    the hstate's size), else ``PAGE_SIZE``. On x86 and arm64 ``vma_mmu_pagesize`` is
    the same. Other ``->pagesize`` hooks (device DAX) are not modelled.

    :param vma: ``struct vm_area_struct *``
    """
    prog = vma.prog_
    ops = vma.vm_ops.read_()
    if ops:
        fn = int(ops.pagesize.value_())
        if fn:
            try:
                hugetlb_fn = prog.symbol("hugetlb_vm_op_pagesize").address
            except LookupError:
                hugetlb_fn = None
            if fn == hugetlb_fn:
                return 1 << huge_page_shift_of_vma(vma)
    return int(prog["PAGE_SIZE"].value_())


def hugetlb_pmd_shared(ptep: int | Object, prog: Program | None = None) -> bool:
    """
    ``hugetlb_pmd_shared(ptep)`` / ``ptdesc_pmd_is_shared()``: the
    ``pt_share_count`` of the page-table page holding the entry at kernel
    address *ptep* is non-zero (``CONFIG_HUGETLB_PMD_PAGE_TABLE_SHARING``).

    :param ptep: ``pte_t *``, or its address with *prog*
    :param prog: the kernel, when *ptep* is an integer
    """
    if isinstance(ptep, Object):
        prog = ptep.prog_
        ptep = int(ptep.value_())
    if prog is None:
        raise TypeError("hugetlb_pmd_shared() needs a program for an integer address")
    return PageReader(prog).pt_share_count(ptep) != 0
