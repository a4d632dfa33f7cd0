# SPDX-License-Identifier: LGPL-2.1-or-later
"""Host-only checks of livewalk.proc.smaps/maps and livewalk.mm pieces that need no kernel.

Expected values come from Linux 7.2 source: the format strings of
``__show_smap``/``show_smap`` and ``show_vma_header_prefix`` in
``fs/proc/task_mmu.c``, the macros of ``mm/swap.h``/``mm/swap_table.h``,
``folio_precise_page_mapcount`` in ``fs/proc/internal.h`` and the
xarray iteration of ``shmem_partial_swap_usage`` in ``mm/shmem.c``.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("drgn")

from livewalk.mm.page import PageInfo, PageReader  # noqa: E402
from livewalk.mm.shmem import ShmemSwap  # noqa: E402
from livewalk.mm.swapfile import swap_table_layout  # noqa: E402
from livewalk.proc.maps import maps_line, vm_flags_mnemonics  # noqa: E402
from livewalk.proc.smaps import SmapsVMA, format_smaps  # noqa: E402

# The kernel's literal labels, in order (fs/proc/task_mmu.c, Linux 7.2).
KERNEL_LABELS = [
    "Size:           ",
    "KernelPageSize: ",
    "MMUPageSize:    ",
    "Rss:            ",
    "Pss:            ",
    "Pss_Dirty:      ",
    "Shared_Clean:   ",
    "Shared_Dirty:   ",
    "Private_Clean:  ",
    "Private_Dirty:  ",
    "Referenced:     ",
    "Anonymous:      ",
    "KSM:            ",
    "LazyFree:       ",
    "AnonHugePages:  ",
    "ShmemPmdMapped: ",
    "FilePmdMapped:  ",
    "Shared_Hugetlb: ",
    "Private_Hugetlb: ",
    "Swap:           ",
    "SwapPss:        ",
    "Locked:         ",
]


def test_format_matches_kernel_layout() -> None:
    v = SmapsVMA(
        vm_start=0x7F0000000000,
        vm_end=0x7F0000200000,
        vm_flags=0x8100073,
        header="7f0000000000-7f0000200000 rw-p 00000000 00:00 0 ",
        resident=2 << 20,
        pss=((2 << 20) << 12) // 3,
        private_hugetlb=123456 << 10,
        swap_pss=(4096 << 12) // 3,
        pss_locked=(4096 << 12) - 1,
        thp_eligible=1,
        protection_key=0,
        vm_flags_text="rd wr mr mw me ac sd ",
    )
    lines = v.format().split("\n")
    assert lines[0] == v.header
    labels = [line[: len(lab)] for line, lab in zip(lines[1:], KERNEL_LABELS)]
    assert labels == KERNEL_LABELS
    for line, lab in zip(lines[1:], KERNEL_LABELS):
        # SEQ_PUT_DEC: width 8 (Private_Hugetlb: 7), then " kB".
        assert len(line) == (24 if lab != "Private_Hugetlb: " else 24) + 3, line
        assert line.endswith(" kB")
    assert lines[1] == "Size:               2048 kB"
    assert lines[4] == "Rss:                2048 kB"
    # Pss: (pss >> 12) >> 10 = floor(2 MiB / 3 / 1024) = 682
    assert lines[5] == "Pss:                 682 kB"
    assert lines[19] == "Private_Hugetlb:  123456 kB"
    # SwapPss: floor(floor(4096 / 3) / 1024) = 1; Locked: two-step floor of 4096 - 2^-12 = 3 kB
    assert lines[21] == "SwapPss:               1 kB"
    assert lines[22] == "Locked:                3 kB"
    assert lines[23] == "THPeligible:           1"
    assert lines[24] == "ProtectionKey:         0"
    assert lines[25] == "VmFlags: rd wr mr mw me ac sd "
    assert lines[26] == ""
    assert format_smaps([v, v]) == v.format() * 2


def test_format_without_pkeys() -> None:
    v = SmapsVMA(vm_start=0, vm_end=4096, vm_flags=0, header="h", vm_flags_text="")
    text = v.format()
    assert "ProtectionKey" not in text
    assert text.endswith("THPeligible:           0\nVmFlags: \n")


def test_maps_line_padding() -> None:
    # 25 + 6 * 8 - 1 = 72 columns, then one space before the name.
    line = maps_line(
        0x55D4C8A2E000, 0x55D4C8A30000, 0x1 | 0x4, 0x2000, (254 << 20) | 1, 1234, b"/usr/bin/cat"
    )
    assert line == (
        "55d4c8a2e000-55d4c8a30000 r-xp 00002000 fe:01 1234"
        + " " * (72 - len("55d4c8a2e000-55d4c8a30000 r-xp 00002000 fe:01 1234"))
        + " /usr/bin/cat"
    )
    # No name: the prefix ends with the space after the inode number.
    assert (
        maps_line(0x1000, 0x2000, 0x80 | 0x1, 0, 0, 0, None)
        == "00001000-00002000 r--s 00000000 00:00 0 "
    )
    # 16-digit addresses: the familiar x86_64 vsyscall line, name at column 73.
    line = maps_line(0xFFFFFFFFFF600000, 0xFFFFFFFFFF601000, 4, 0, 0, 0, b"[vsyscall]")
    assert (
        line == "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0" + " " * 18 + "[vsyscall]"
    )
    assert line.index("[") == 73


class _FakeProg:
    """A program without any VMA_*_BIT enumerators: the 7.2 defaults apply."""

    platform = None  # no architecture: x86_64's table

    def __init__(self) -> None:
        self.cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        raise KeyError(name)


def test_vm_flags_mnemonics_order_and_unknown_bits() -> None:
    prog: Any = _FakeProg()
    # VM_READ|VM_WRITE|VM_MAYREAD|VM_MAYWRITE|VM_MAYEXEC|VM_ACCOUNT|VM_SOFTDIRTY
    flags = 0x1 | 0x2 | 0x10 | 0x20 | 0x40 | (1 << 20) | (1 << 27)
    assert vm_flags_mnemonics(prog, flags) == "rd wr mr mw me ac sd "
    # Protection-key bits print nothing; an unnamed bit prints "??".
    assert vm_flags_mnemonics(prog, (1 << 32) | (1 << 35)) == ""
    assert vm_flags_mnemonics(prog, 1 << 50) == "?? "
    assert vm_flags_mnemonics(prog, (1 << 42) | (1 << 40) | (1 << 9)) == "um dp sl "


def test_swap_table_layout() -> None:
    # x86_64: MAX_POSSIBLE_PHYSMEM_BITS 52 -> SWAP_CACHE_PFN_BITS 40, flags 5
    # bits with the zero flag, so the count is the top 4 bits.
    assert swap_table_layout(52) == (60, 4, 15)
    # A 64-bit arch with 48 physical bits also has room for 5 flag bits.
    assert swap_table_layout(48) == (60, 4, 15)
    # 62 bits leave 64 - 2 - 50 = 12 > 2: still 5 flag bits.
    assert swap_table_layout(62) == (60, 4, 15)


class _KS:
    pg_head = 6
    pgty_hugetlb = 0xF4
    zone_device = 4
    zones_pgshift = 51
    zones_mask = 7
    mm_ids_shared_bit = 63
    compound_mapcount = False
    hugetlb_dtor = None
    pg_double_map = None


def _reader() -> PageReader:
    r = PageReader.__new__(PageReader)
    r.ks = _KS()  # type: ignore[assignment]
    return r


def _pi(**kw: Any) -> PageInfo:
    base: dict[str, Any] = dict(
        pfn=100,
        head_pfn=100,
        flags=0,
        mapping=0,
        refcount=1,
        mapcount_raw=-1,
        large=False,
        nr_pages=1,
        entire_mapcount_raw=-1,
        large_mapcount_raw=-1,
        head_page_type=0xFFFFFFFF,
        mm_ids=0,
    )
    base.update(kw)
    return PageInfo(**base)


def test_precise_mapcount() -> None:
    r = _reader()
    assert r.precise_mapcount(_pi(mapcount_raw=-1)) == 0
    assert r.precise_mapcount(_pi(mapcount_raw=0)) == 1
    assert r.precise_mapcount(_pi(mapcount_raw=2)) == 3
    # A page type in _mapcount (below PGTY_mapcount_underflow << 24) counts as 0.
    assert r.precise_mapcount(_pi(mapcount_raw=-0x0C000000)) == 0  # 0xf4000000: hugetlb
    # Large folio: + _entire_mapcount + 1 (a PMD mapping of the whole folio).
    assert r.precise_mapcount(_pi(mapcount_raw=-1, large=True, entire_mapcount_raw=0)) == 1
    assert r.precise_mapcount(_pi(mapcount_raw=0, large=True, entire_mapcount_raw=1)) == 3


def test_folio_predicates() -> None:
    r = _reader()
    assert r.anon(_pi(mapping=0xFFFF888000001001))
    assert not r.ksm(_pi(mapping=0xFFFF888000001001))
    assert r.ksm(_pi(mapping=0xFFFF888000001003)) and r.anon(_pi(mapping=0xFFFF888000001003))
    assert r.hugetlb(_pi(large=True, head_page_type=0xF4000000))
    assert not r.hugetlb(_pi(large=False, head_page_type=0xF4000000))
    assert r.zone_device(_pi(flags=4 << 51))
    assert not r.zone_device(_pi(flags=2 << 51))
    # folio_maybe_mapped_shared: small folio -> mapcount > 1.
    assert r.maybe_mapped_shared(_pi(mapcount_raw=1))
    assert not r.maybe_mapped_shared(_pi(mapcount_raw=0))
    # Large non-hugetlb folio mapped twice: the MM_IDS shared bit decides.
    big = dict(large=True, large_mapcount_raw=1, head_page_type=0xFFFFFFFF)
    assert not r.maybe_mapped_shared(_pi(**big, mm_ids=0))
    assert r.maybe_mapped_shared(_pi(**big, mm_ids=1 << 63))
    # hugetlb: mapcount > 1 only.
    assert r.maybe_mapped_shared(_pi(large=True, large_mapcount_raw=1, head_page_type=0xF4000000))


def test_shmem_partial_swap_usage_overlap() -> None:
    r = ShmemSwap.__new__(ShmemSwap)
    r._page_shift = 12
    # value entries: index 0; index 5; a multi-index (order 3) entry at 8..15
    r._ranges = {1: [(0, 0), (5, 5), (8, 15)]}
    assert r.partial_swap_usage(1, 0, 16) == 10 * 4096
    assert r.partial_swap_usage(1, 1, 5) == 0
    assert r.partial_swap_usage(1, 5, 6) == 4096
    # An entry overlapping the range counts whole (1 << xas_get_order()).
    assert r.partial_swap_usage(1, 9, 10) == 8 * 4096
    assert r.partial_swap_usage(1, 15, 100) == 8 * 4096
    assert r.partial_swap_usage(1, 16, 100) == 0
    assert r.partial_swap_usage(1, 7, 7) == 0
