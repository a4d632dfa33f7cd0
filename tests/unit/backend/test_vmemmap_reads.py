# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The drgn backend's reads of the vmemmap (issue [E]): where drgn walks the
page tables for every virtual read (a program with no core dump: QEMU over
QMP), ``read_vmemmap`` reads by physical address through the PMD leaf that
maps the ``struct page`` s, found once; on a live target the leaf entry is
read again once per call, so a vmemmap remapped between two calls (HVO,
memory hotplug) is read where it now is, and one no longer mapped by a PMD
leaf is read as drgn reads it.

The fake kernel's memory: x86_64 4-level tables (PGD, PUD, PMD) in
physical memory, a PMD leaf mapping 2 MiB of vmemmap, and drgn's own view of
the vmemmap (a virtual segment) to compare with.
"""

from __future__ import annotations

import struct

import drgn
import pytest
from drgn import FaultError, Program

from livewalk.backend.drgn import DrgnBackend

_VMEMMAP = 0xFFFF_EA00_0000_0000
_PGD, _PUD, _PMD = 0x10_0000, 0x10_1000, 0x10_2000
_LEAF_A, _LEAF_B = 0x20_0000, 0x40_0000  # 2 MiB-aligned pages of struct pages
_PTE_TABLE = 0x10_3000
_TABLE = 0x63  # present, rw, accessed, dirty: a kernel table entry
_LEAF = 0x1E3  # the same, PSE and global: a 2 MiB kernel leaf
_X86_64 = drgn.Platform(
    drgn.Architecture.X86_64, drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN
)


class _Kernel:
    """The fake target: physical memory by 4 KiB page, drgn's view of the vmemmap, reads counted."""

    def __init__(self, live: bool) -> None:
        self.phys: dict[int, bytearray] = {}
        self.view = bytearray(4 << 20)  # drgn's translation of the vmemmap's first 4 MiB
        self.reads: list[tuple[str, int, int]] = []
        self.prog = Program(_X86_64)
        self.prog.add_memory_segment(0, 1 << 30, self._read_phys, True)
        self.prog.add_memory_segment(_VMEMMAP, len(self.view), self._read_view)
        self.backend = DrgnBackend(self.prog)
        self.backend._live = live
        # a program with no core dump behind it, as over QMP (drgn 0.2 and
        # later say so: core_dump_path; older ones have no QMP)
        assert self.backend._vmemmap_by_phys == hasattr(self.prog, "core_dump_path")
        self.backend._vmemmap_by_phys = True
        self.backend._init_pgd_pa = _PGD  # init_mm.pgd, which the fake has no symbol for
        shift = 39, 30, 21
        for table, nxt, sh in zip((_PGD, _PUD), (_PUD, _PMD), shift):
            self.entry(table, (_VMEMMAP >> sh) & 511, nxt | _TABLE)
        self.pmd_slot = (_VMEMMAP >> 21) & 511
        self.entry(_PMD, self.pmd_slot, _LEAF_A | _LEAF)
        self.fill(_LEAF_A, b"A")
        self.fill(_LEAF_B, b"B")
        self.view[:] = b"V" * len(self.view)

    def _page(self, paddr: int) -> bytearray:
        return self.phys.setdefault(paddr & ~0xFFF, bytearray(4096))

    def entry(self, table: int, slot: int, value: int) -> None:
        struct.pack_into("<Q", self._page(table), 8 * slot, value)

    def fill(self, paddr: int, byte: bytes) -> None:
        for p in range(paddr, paddr + (2 << 20), 4096):
            self._page(p)[:] = byte * 4096

    def _read_phys(self, address: int, count: int, offset: int, physical: bool) -> bytes:
        self.reads.append(("phys", address, count))
        out = b""
        while count:
            n = min(count, 4096 - (address & 0xFFF))
            page = self.phys.get(address & ~0xFFF, bytes(4096))
            out += bytes(page[address & 0xFFF : (address & 0xFFF) + n])
            address += n
            count -= n
        return out

    def _read_view(self, address: int, count: int, offset: int, physical: bool) -> bytes:
        self.reads.append(("virt", address, count))
        return bytes(self.view[offset : offset + count])

    def read(self, addr: int, size: int) -> bytes:
        self.reads.clear()
        return self.backend.read_vmemmap(addr, size)


def test_read_by_physical_address_through_the_leaf() -> None:
    k = _Kernel(live=True)
    with k.backend.call_scope():
        # the first read finds the leaf: PGD, PUD, PMD entries, then the data
        assert k.read(_VMEMMAP + 64, 64) == b"A" * 64
        assert [(kind, n) for kind, _, n in k.reads] == [("phys", 8)] * 3 + [("phys", 64)]
        assert k.reads[-1][1] == _LEAF_A + 64
        # later reads in the call: the data only
        assert k.read(_VMEMMAP + (1 << 20), 4096) == b"A" * 4096
        assert k.reads == [("phys", _LEAF_A + (1 << 20), 4096)]
    # the next call checks the leaf entry once, then reads
    with k.backend.call_scope():
        assert k.read(_VMEMMAP, 64) == b"A" * 64
        assert k.reads == [("phys", _PMD + 8 * k.pmd_slot, 8), ("phys", _LEAF_A, 64)]
        assert k.read(_VMEMMAP + 4096, 64) == b"A" * 64
        assert len(k.reads) == 1
    # outside a call: checked on every read
    for _ in range(2):
        assert k.read(_VMEMMAP, 8) == b"A" * 8
        assert [(kind, n) for kind, _, n in k.reads] == [("phys", 8), ("phys", 8)]


def test_a_remapped_vmemmap_is_read_where_it_now_is() -> None:
    k = _Kernel(live=True)
    with k.backend.call_scope():
        assert k.read(_VMEMMAP, 64) == b"A" * 64
    # memory hotplug, or HVO, moved the struct pages between two calls
    k.entry(_PMD, k.pmd_slot, _LEAF_B | _LEAF)
    with k.backend.call_scope():
        assert k.read(_VMEMMAP, 64) == b"B" * 64
        assert k.reads[-1] == ("phys", _LEAF_B, 64)
    # split into a PTE table (as HVO does before it remaps): read as drgn does
    k.entry(_PMD, k.pmd_slot, _PTE_TABLE | _TABLE)
    with k.backend.call_scope():
        assert k.read(_VMEMMAP, 64) == b"V" * 64
        assert k.reads[-1] == ("virt", _VMEMMAP, 64)
        assert k.read(_VMEMMAP + 64, 64) == b"V" * 64
        assert k.reads == [("virt", _VMEMMAP + 64, 64)]  # and stays so: no walk again


@pytest.mark.parametrize(
    ("addr", "size"),
    [
        ((2 << 20) - 64 + _VMEMMAP, 128),  # across the leaf's end
        (_VMEMMAP + (2 << 20), 64),  # the next 2 MiB: no entry in the PMD table
    ],
)
def test_what_no_one_leaf_maps_is_read_as_drgn_reads_it(addr: int, size: int) -> None:
    k = _Kernel(live=True)
    assert k.read(addr, size) == b"V" * size
    assert k.reads[-1] == ("virt", addr, size)


def test_a_vmcore_leaf_is_never_checked_again() -> None:
    k = _Kernel(live=False)
    assert k.read(_VMEMMAP, 64) == b"A" * 64
    for _ in range(3):
        assert k.read(_VMEMMAP + 128, 64) == b"A" * 64
        assert k.reads == [("phys", _LEAF_A + 128, 64)]


def test_unreadable_tables_leave_it_to_drgn() -> None:
    k = _Kernel(live=True)
    del k.phys[_PUD]  # reads as zeros: a none PUD entry
    assert k.read(_VMEMMAP, 64) == b"V" * 64
    k2 = _Kernel(live=True)
    k2.backend._init_pgd_pa = 1 << 31  # outside physical memory: drgn faults
    assert k2.read(_VMEMMAP, 64) == b"V" * 64
    with pytest.raises(FaultError):
        k2.backend.read_vmemmap(_VMEMMAP + len(k2.view), 64)


def test_reader_is_prog_read_where_drgn_reads_as_cheaply() -> None:
    k = _Kernel(live=True)
    assert k.backend.vmemmap_reader == k.backend.read_vmemmap
    k.backend._vmemmap_by_phys = False  # /proc/kcore, a vmcore
    assert k.backend.vmemmap_reader == k.prog.read
    assert k.read(_VMEMMAP, 64) == b"V" * 64
