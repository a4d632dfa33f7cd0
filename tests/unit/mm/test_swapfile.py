# SPDX-License-Identifier: LGPL-2.1-or-later
"""``SWAPFILE_CLUSTER`` of the target: ``HPAGE_PMD_NR`` with
``CONFIG_THP_SWAP``, 256 without, probed from ``struct swap_info_struct``
as Linux 7.2 declares it (``nonfull_clusters[SWAP_NR_ORDERS]``)."""

from __future__ import annotations

import drgn
import pytest
from drgn import Object, Program, TypeMember

from livewalk.mm.swapfile import SWAPFILE_CLUSTER_NO_THP_SWAP, swapfile_cluster


def _program(page_shift: int, nr_orders: int | None) -> Program:
    """A kernel with *page_shift* and, unless *nr_orders* is None (before
    Linux 6.10), ``nonfull_clusters`` of that many lists."""
    prog = Program(drgn.host_platform)
    ulong = prog.int_type("unsigned long", 8, False)
    members = [TypeMember(ulong, "flags", 0)]
    if nr_orders is not None:
        head = prog.struct_type("list_head", 16, (TypeMember(prog.pointer_type(ulong), "next", 0),))
        members.append(TypeMember(prog.array_type(head, nr_orders), "nonfull_clusters", 64))
    si = prog.struct_type("swap_info_struct", 8 + 16 * (nr_orders or 0), members)

    def find_type(prog: Program, kinds: object, name: str, filename: str | None) -> object:
        return si if name == "swap_info_struct" else None

    def find_object(prog: Program, name: str, flags: object, filename: str | None) -> object:
        return Object(prog, prog.int_type("int", 4, True), page_shift) if name == "PAGE_SHIFT" else None

    prog.register_type_finder("test", find_type, enable_index=0)
    prog.register_object_finder("test", find_object, enable_index=0)
    return prog


@pytest.mark.parametrize(
    ("page_shift", "nr_orders", "cluster"),
    [
        (12, 10, 512),  # x86_64, 4K arm64: THP swap, PMD_ORDER 9
        (14, 1, SWAPFILE_CLUSTER_NO_THP_SWAP),  # 16K arm64: no ARCH_WANTS_THP_SWAP
        (16, 1, SWAPFILE_CLUSTER_NO_THP_SWAP),  # 64K arm64
        (12, None, 512),  # before Linux 6.10: HPAGE_PMD_NR (no swap tables to size)
    ],
)
def test_swapfile_cluster(page_shift: int, nr_orders: int | None, cluster: int) -> None:
    assert swapfile_cluster(_program(page_shift, nr_orders)) == cluster
