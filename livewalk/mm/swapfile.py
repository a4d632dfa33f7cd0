# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Swap counts
-----------

``swp_swapcount()`` of a swap entry, read from the per-cluster swap table of
Linux 7.2 (``mm/swap_table.h``, ``mm/swapfile.c``) or, before it, from
``si->swap_map``.

>>> swap_table_layout(52)
(60, 4, 15)
>>> SwapTables(prog).swapcount(0, 1)  # doctest: +SKIP
1
"""

from __future__ import annotations

import struct

from drgn import FaultError, Program, offsetof, sizeof

from livewalk.mm.huge_mm import hpage_pmd_nr

__all__ = (
    "MAX_SWAPFILES_SHIFT",
    "SWAPFILE_CLUSTER_NO_THP_SWAP",
    "SwapTables",
    "X86_64_MAX_POSSIBLE_PHYSMEM_BITS",
    "swap_table_layout",
    "swapfile_cluster",
    "swp_swapcount",
)

#: ``MAX_SWAPFILES_SHIFT`` (``include/linux/swap.h``): the swap type takes
#: the low 5 bits of a pagemap swap frame.
MAX_SWAPFILES_SHIFT = 5


#: ``SWAPFILE_CLUSTER`` without ``CONFIG_THP_SWAP`` (``mm/swap.h``).
SWAPFILE_CLUSTER_NO_THP_SWAP = 256


def swapfile_cluster(prog: Program) -> int:
    """
    ``SWAPFILE_CLUSTER``, the slots of one swap cluster: ``HPAGE_PMD_NR``
    with ``CONFIG_THP_SWAP``, else 256. arm64 wants THP swap with 4K pages
    only, so it is 512 on x86_64 and 4K arm64, and 256 with 16K pages (not
    2048).

    The configuration is read from the target's types, as drgn's helpers
    probe: ``swap_info_struct.nonfull_clusters[]`` has ``SWAP_NR_ORDERS``
    lists, ``PMD_ORDER + 1`` with ``CONFIG_THP_SWAP`` and 1 without. Before
    Linux 6.10 (no such member) the per-cluster count tables this sizes do
    not exist, and ``HPAGE_PMD_NR`` is returned.

    >>> swapfile_cluster(prog)  # doctest: +SKIP
    512
    """
    try:
        orders = prog.type("struct swap_info_struct").member("nonfull_clusters").type.length
    except LookupError:
        return hpage_pmd_nr(prog)
    return hpage_pmd_nr(prog) if orders is not None and orders > 1 else SWAPFILE_CLUSTER_NO_THP_SWAP

#: ``MAX_POSSIBLE_PHYSMEM_BITS`` on x86_64 (arch/x86/include/asm/
#: pgtable_64_types.h): a compile-time constant absent from debug info.
X86_64_MAX_POSSIBLE_PHYSMEM_BITS = 52

_U64 = struct.Struct("<Q")
_S32 = struct.Struct("<i")


def swap_table_layout(
    max_possible_physmem_bits: int = X86_64_MAX_POSSIBLE_PHYSMEM_BITS,
) -> tuple[int, int, int]:
    """
    The swap-table count field as Linux 7.2 ``mm/swap.h`` and
    ``mm/swap_table.h`` derive it.

    :param max_possible_physmem_bits: ``MAX_POSSIBLE_PHYSMEM_BITS``
    :return: ``(SWP_TB_COUNT_SHIFT, SWP_TB_COUNT_BITS, SWP_TB_COUNT_MAX)``
    """
    pfn_bits = max_possible_physmem_bits - 12  # SWAP_CACHE_PFN_BITS
    mark_bits = 2  # SWAP_CACHE_PFN_MARK_BITS
    has_zero = 1 if 64 - mark_bits - pfn_bits > 2 else 0  # SWAP_TABLE_HAS_ZEROFLAG
    flags_bits = min(5, 64 - (pfn_bits + mark_bits))  # SWP_TB_FLAGS_BITS
    count_bits = flags_bits - has_zero
    return 64 - count_bits, count_bits, (1 << count_bits) - 1


class SwapTables:
    """
    Cached reads of ``swap_info[]`` and of the clusters' swap tables, for
    the length of one walk (a snapshot of a live kernel).

    :param prog: the kernel
    """

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self.cluster = swapfile_cluster(prog)
        self._si: dict[int, tuple[int, int, int] | None] = {}
        self._tables: dict[tuple[int, int], tuple[tuple[int, ...], int]] = {}
        self.count_shift, _, self.count_max = swap_table_layout()
        try:
            ci_t = prog.type("struct swap_cluster_info")
            self.ci_size = sizeof(ci_t)
            self.has_table = ci_t.has_member("table")
            self.off_table = offsetof(ci_t, "table") if self.has_table else 0
            self.off_extend = (
                offsetof(ci_t, "extend_table") if ci_t.has_member("extend_table") else None
            )
        except LookupError:
            self.has_table = False
            self.ci_size = 0
            self.off_table = 0
            self.off_extend = None

    def _info(self, type_: int) -> tuple[int, int, int] | None:
        if type_ in self._si:
            return self._si[type_]
        res: tuple[int, int, int] | None = None
        try:
            nr = int(self.prog["nr_swapfiles"].value_())
            if type_ < nr:
                si = self.prog["swap_info"][type_].read_()
                # get_swap_device(): a used slot (percpu_ref liveness cannot
                # be read from an image; SWP_USED stands for it).
                if si and int(si.flags.value_()) & 1:
                    try:
                        swap_map = int(si.swap_map.value_())
                    except AttributeError:
                        swap_map = 0
                    res = (int(si.max.value_()), int(si.cluster_info.value_()), swap_map)
        except (KeyError, LookupError, FaultError):
            res = None
        self._si[type_] = res
        return res

    def table_word(self, type_: int, offset: int) -> int | None:
        """
        The swap-table word of slot *offset* of swap device *type_*
        (``__swap_table_get()``), or ``None`` without one.
        """
        info = self._info(type_)
        if info is None or not self.has_table:
            return None
        max_, cluster_info, _ = info
        if offset >= max_ or not cluster_info:
            return None
        got = self._cluster(type_, cluster_info, offset // self.cluster)
        return None if got is None else got[0][offset % self.cluster]

    def _cluster(
        self, type_: int, cluster_info: int, ci_idx: int
    ) -> tuple[tuple[int, ...], int] | None:
        key = (type_, ci_idx)
        got = self._tables.get(key)
        if got is None:
            ci = cluster_info + ci_idx * self.ci_size
            table_ptr = _U64.unpack(self.prog.read(ci + self.off_table, 8))[0]
            if not table_ptr:
                return None
            raw = self.prog.read(table_ptr, 8 * self.cluster)
            got = (struct.unpack(f"<{self.cluster}Q", raw), ci)
            self._tables[key] = got
        return got

    def swapcount(self, type_: int, offset: int) -> int:
        """:func:`swp_swapcount` through this cache."""
        info = self._info(type_)
        if info is None:
            return 0
        max_, cluster_info, swap_map = info
        if offset >= max_:
            return 0
        if not self.has_table:
            # Before Linux 7.2: one byte per slot in si->swap_map, with
            # SWAP_HAS_CACHE (0x40) masked off. Counts continued in extra
            # pages (COUNT_CONTINUED, 0x80) are not followed.
            if not swap_map:
                return 0
            return self.prog.read(swap_map + offset, 1)[0] & 0x3F
        if not cluster_info:
            return 0
        got = self._cluster(type_, cluster_info, offset // self.cluster)
        if got is None:
            return 0
        table, ci = got
        tb = table[offset % self.cluster]
        # swp_tb_is_countable(): null, shadow (bit 0) or cached folio (0b10).
        if not (tb == 0 or tb & 1 or tb & 3 == 2):
            return 0
        count = tb >> self.count_shift
        if count == self.count_max and self.off_extend is not None:
            ext = _U64.unpack(self.prog.read(ci + self.off_extend, 8))[0]
            if ext:
                slot = offset % self.cluster
                count = _S32.unpack(self.prog.read(ext + 4 * slot, 4))[0]
        return max(count, 0)


def swp_swapcount(prog: Program, type_: int, offset: int) -> int:
    """
    ``swp_swapcount(entry)`` in Linux 7.2, where the per-cluster swap table
    replaced ``swap_map``: 0 for an unused or out-of-range swap device;
    otherwise the count bits at the top of the slot's swap-table word
    (``SWP_TB_COUNT_SHIFT`` 60 and 4 bits on x86_64, see
    :func:`swap_table_layout`), or ``extend_table[slot]`` when that count is
    ``SWP_TB_COUNT_MAX``; 0 for a slot that is neither null, shadow nor
    cached folio.

    :param prog: the kernel
    :param type_: swap device (``swp_type()``)
    :param offset: slot (``swp_offset()``)
    :return: the number of references to the slot
    """
    return SwapTables(prog).swapcount(type_, offset)
