# SPDX-License-Identifier: LGPL-2.1-or-later
"""
shmem
-----

The ``mm/shmem.c`` state smaps reads (Linux 7.2): is a mapping shmem, how
much of a file range is swapped out, and which huge orders a shmem VMA
allows.

>>> shmem_mapping(vma.vm_file.f_mapping)  # doctest: +SKIP
True
>>> shmem_swap_usage(vma)  # doctest: +SKIP
8192
"""

from __future__ import annotations

import bisect
import struct
from collections.abc import Iterator

from drgn import Object, Program, container_of, offsetof

from livewalk.mm.huge_mm import hpage_pmd_order, page_shift
from livewalk.mm.page import KernelState

__all__ = (
    "ShmemSwap",
    "shmem_allowable_huge_orders",
    "shmem_mapping",
    "shmem_partial_swap_usage",
    "shmem_swap_usage",
)

#: ``SHMEM_HUGE_*`` (macros in Linux 7.2 ``mm/shmem.c``, not in debug info).
SHMEM_HUGE_NEVER = 0
SHMEM_HUGE_ALWAYS = 1
SHMEM_HUGE_WITHIN_SIZE = 2
SHMEM_HUGE_ADVISE = 3
SHMEM_HUGE_DENY = -1
SHMEM_HUGE_FORCE = -2


_S_IFMT = 0o170000
_S_IFREG = 0o100000

# XA_CHUNK_SHIFT 6 (include/linux/xarray.h, CONFIG_BASE_SMALL=n)
_XA_CHUNK_SIZE = 64


def shmem_mapping(mapping: Object) -> bool:
    """
    ``shmem_mapping()``: ``mapping->a_ops == &shmem_aops``.

    :param mapping: ``struct address_space *``
    """
    ks = KernelState.for_program(mapping.prog_)
    return ks.shmem_aops is not None and int(mapping.a_ops.value_()) == ks.shmem_aops


class ShmemSwap:
    """
    The swap value entries of shmem mappings' ``i_pages``, read once per
    mapping for the length of one walk.

    :param prog: the kernel
    """

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self._page_shift = page_shift(prog)
        self._ranges: dict[int, list[tuple[int, int]]] = {}

    def value_entries(self, mapping_addr: int) -> list[tuple[int, int]]:
        """
        The (first index, last index) of every value entry of a mapping's
        ``i_pages``, sorted.

        :param mapping_addr: address of the ``struct address_space``
        """
        got = self._ranges.get(mapping_addr)
        if got is None:
            mapping = Object(self.prog, "struct address_space *", mapping_addr)
            got = sorted(_xa_value_ranges(self.prog, mapping.i_pages.address_of_()))
            self._ranges[mapping_addr] = got
        return got

    def partial_swap_usage(self, mapping_addr: int, start: int, end: int) -> int:
        """:func:`shmem_partial_swap_usage` on a mapping's address."""
        if end <= start:
            return 0
        ranges = self.value_entries(mapping_addr)
        # Entries are disjoint and sorted; find the first whose last >= start.
        i = bisect.bisect_left(ranges, (start, 0))
        if i > 0 and ranges[i - 1][1] >= start:
            i -= 1
        total = 0
        last = end - 1
        while i < len(ranges) and ranges[i][0] <= last:
            first, lst = ranges[i]
            if lst >= start:
                total += lst - first + 1
            i += 1
        return total << self._page_shift


def shmem_partial_swap_usage(mapping: Object, start: int, end: int) -> int:
    """
    ``shmem_partial_swap_usage(mapping, start, end)``: bytes of swap held by
    value entries of ``mapping->i_pages`` at indices [start, end), a
    multi-index entry counting whole when it overlaps the range.

    :param mapping: ``struct address_space *``
    :param start: first page index
    :param end: page index after the range
    :return: bytes
    """
    return ShmemSwap(mapping.prog_).partial_swap_usage(int(mapping.value_()), start, end)


def shmem_swap_usage(vma: Object, cache: ShmemSwap | None = None) -> int:
    """
    ``shmem_swap_usage(vma)`` (Linux 7.2 ``mm/shmem.c``): 0 if the inode's
    ``info->swapped`` is 0; ``swapped << PAGE_SHIFT`` if the VMA maps the
    file whole from offset 0; otherwise the partial count over the VMA's
    file range.

    :param vma: ``struct vm_area_struct *`` of a shmem file
    :param cache: the walk's :class:`ShmemSwap`
    :return: bytes
    """
    prog = vma.prog_
    inode = vma.vm_file.f_inode
    info = container_of(inode, "struct shmem_inode_info", "vfs_inode")
    swapped = int(info.swapped.value_())
    if not swapped:
        return 0
    start, end = int(vma.vm_start.value_()), int(vma.vm_end.value_())
    pgoff = int(vma.vm_pgoff.value_())
    if not pgoff and end - start >= int(inode.i_size.value_()):
        return swapped << page_shift(prog)
    c = cache or ShmemSwap(prog)
    return c.partial_swap_usage(
        int(inode.i_mapping.value_()), pgoff, pgoff + ((end - start) >> page_shift(prog))
    )


def _xa_value_ranges(prog: Program, xa: Object) -> Iterator[tuple[int, int]]:
    """
    The (first, last) index ranges of the value entries of an xarray, each
    multi-index entry once with its full range (what ``xas_for_each`` plus
    ``xas_get_order`` see).

    drgn's ``xa_for_each`` yields the same entries but skips sibling slots,
    so the order of a multi-index entry (a swapped-out large shmem folio) is
    lost; this walk reads each node's slots whole and counts the siblings.
    """
    head = int(xa.xa_head.value_())
    if not head:
        return
    if not _xa_is_node(head):
        if head & 1:
            yield (0, 0)
        return
    node_t = prog.type("struct xa_node")
    off_shift = offsetof(node_t, "shift")
    off_slots = offsetof(node_t, "slots")
    stack = [(head & ~3, 0)]
    while stack:
        node, base = stack.pop()
        raw = prog.read(node, off_slots + 8 * _XA_CHUNK_SIZE)
        shift = raw[off_shift]
        slots = struct.unpack_from(f"<{_XA_CHUNK_SIZE}Q", raw, off_slots)
        for off, ent in enumerate(slots):
            if not ent or _xa_is_sibling(ent):
                continue
            idx = base + (off << shift)
            if _xa_is_node(ent):
                if shift:
                    stack.append((ent & ~3, idx))
                continue
            if not ent & 1:  # !xa_is_value(): a folio
                continue
            # xas_get_order(): siblings at off+1, off+2, off+4...
            order = 0
            while off + (1 << order) < _XA_CHUNK_SIZE and _xa_is_sibling(slots[off + (1 << order)]):
                order += 1
            yield (idx, idx + (1 << (order + shift)) - 1)


def _xa_is_node(ent: int) -> bool:
    # xa_is_node(): an internal entry (0b10) above 4096
    return ent & 3 == 2 and ent > 4096


def _xa_is_sibling(ent: int) -> bool:
    # xa_is_sibling(): an internal entry below xa_mk_internal(XA_CHUNK_SIZE - 1)
    return ent & 3 == 2 and ent < (((_XA_CHUNK_SIZE - 1) << 2) | 2)


def _orders_within_size(inode: Object, orders: int, index: int) -> int:
    """``shmem_get_orders_within_size(inode, orders, index, 0)``."""
    # round_up(i_size, PAGE_SIZE) >> PAGE_SHIFT
    pages = -(-max(0, int(inode.i_size.value_())) >> page_shift(inode.prog_))
    while orders:
        order = orders.bit_length() - 1
        aligned = -(-(index + 1) // (1 << order)) * (1 << order)
        if pages >= aligned:
            return orders
        orders &= ~(1 << order)
    return 0


def shmem_allowable_huge_orders(vma: Object, vm_flags: int, hugepage_bit: int) -> int:
    """
    ``shmem_allowable_huge_orders(inode, vma, vma->vm_pgoff, 0, false)``
    with ``shmem_huge_global_enabled()`` (Linux 7.2 ``mm/shmem.c``).

    :param vma: ``struct vm_area_struct *`` of a shmem file
    :param vm_flags: the VMA's flags
    :param hugepage_bit: the bit number of ``VM_HUGEPAGE``
    :return: a mask of orders
    """
    prog = vma.prog_
    pmd_order = hpage_pmd_order(prog)
    # THP_ORDERS_ALL_FILE_DEFAULT: orders 1 to PMD_ORDER
    file_orders = ((1 << (pmd_order + 1)) - 1) & ~1
    inode = vma.vm_file.f_inode
    index = int(vma.vm_pgoff.value_())
    hugepage = bool(vm_flags >> hugepage_bit & 1)
    shmem_huge = int(prog["shmem_huge"].value_())
    # shmem_huge_global_enabled()
    if int(inode.i_mode.value_()) & _S_IFMT != _S_IFREG or shmem_huge == SHMEM_HUGE_DENY:
        global_orders = 0
    elif shmem_huge == SHMEM_HUGE_FORCE:
        global_orders = 1 << pmd_order
    else:
        sbinfo = Object(prog, "struct shmem_sb_info *", inode.i_sb.s_fs_info.value_())
        huge = int(sbinfo.huge.value_())
        global_orders = 0
        if huge == SHMEM_HUGE_ALWAYS:
            global_orders = file_orders
        if huge == SHMEM_HUGE_WITHIN_SIZE:
            global_orders = _orders_within_size(inode, file_orders, index)
        if huge in (SHMEM_HUGE_WITHIN_SIZE, SHMEM_HUGE_ADVISE) and not global_orders and hugepage:
            global_orders = file_orders
    try:
        anon_ops: int | None = prog.symbol("shmem_anon_vm_ops").address
    except LookupError:
        anon_ops = None
    if int(vma.vm_ops.value_()) != anon_ops:  # !vma_is_anon_shmem(vma)
        return global_orders
    if shmem_huge == SHMEM_HUGE_DENY:
        return 0
    if shmem_huge == SHMEM_HUGE_FORCE:
        return int(prog["huge_shmem_orders_inherit"].value_())
    mask = int(prog["huge_shmem_orders_always"].value_())
    mask |= _orders_within_size(
        inode, int(prog["huge_shmem_orders_within_size"].value_()), index
    )
    if hugepage:
        mask |= int(prog["huge_shmem_orders_madvise"].value_())
    if global_orders:
        mask |= int(prog["huge_shmem_orders_inherit"].value_())
    return file_orders & mask
