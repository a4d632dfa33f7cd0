# SPDX-License-Identifier: LGPL-2.1-or-later
"""
What the fast paths of issue [E] cache or reuse never shows through: the
walker's reused PTE entries, the drgn backend's physical reads of ``mm``
members and its VMA cache on a target that changes between two calls, and
vtop's VMA (from the walk) and its name (read when asked for).
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from drgn import Object, Program, TypeMember
from fakekernel import DIRECT_MAP, MM_ADDR, X86_64, LiveBackend, fake_kernel

from livewalk.arch.x86.pgtable import mk_pte
from livewalk.backend.synthetic import DEFAULT_PTE_FLAGS, SyntheticMM
from livewalk.mm import pagewalk
from livewalk.mm.entry import Entry
from livewalk.mm.pagewalk import MMWalkOps, walk_page_range
from livewalk.mm.vma import VMA
from livewalk.tools.vtop import VtopResult, vtop

_BASE = 0x7F00_0000_0000


def _mm() -> SyntheticMM:
    mm = SyntheticMM()
    mm.add_vma(_BASE, _BASE + (4 << 20))
    mm.fill_pte_table(_BASE, [mk_pte(0x1000 + i, DEFAULT_PTE_FLAGS) for i in range(512)])
    mm.fill_pte_table(_BASE + (1 << 21), [mk_pte(0x3000 + i, DEFAULT_PTE_FLAGS) for i in range(512)])
    return mm


# -- the walker's PTE fast path ---------------------------------------------------


@pytest.mark.parametrize("reuse", [True, False])
def test_kept_pte_entries_are_never_refilled(reuse: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pagewalk, "_REUSE_ENTRIES", reuse and pagewalk._REUSE_ENTRIES)
    mm = _mm()
    kept: list[tuple[Entry, int, int]] = []
    seen: list[tuple[int, int]] = []

    def pte_entry(pte: Entry, addr: int, next: int, walk: Any) -> int:  # noqa: A002
        seen.append((pte.value, pte.kaddr))
        if addr % 3 == 0:  # keep some, drop the others
            kept.append((pte, pte.value, pte.kaddr))
        return 0

    assert walk_page_range(mm, _BASE, _BASE + (4 << 20), MMWalkOps(pte_entry=pte_entry)) == 0
    assert len(seen) == 1024
    assert len({k for _, k in seen}) == 1024  # every slot its own address
    assert [v for v, _ in seen[:512]] == [mk_pte(0x1000 + i, DEFAULT_PTE_FLAGS) for i in range(512)]
    # what a callback kept still says what it said during its call
    for pte, value, kaddr in kept:
        assert (pte.value, pte.kaddr) == (value, kaddr)
    assert len({id(p) for p, _, _ in kept}) == len(kept)


def test_without_reuse_every_pte_is_a_new_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pagewalk, "_REUSE_ENTRIES", False)
    mm = _mm()
    ids: list[Entry] = []

    def pte_entry(pte: Entry, addr: int, next: int, walk: Any) -> int:  # noqa: A002
        ids.append(pte)  # kept: all distinct either way
        return 0

    walk_page_range(mm, _BASE, _BASE + (1 << 21), MMWalkOps(pte_entry=pte_entry))
    assert len({id(p) for p in ids}) == 512


def test_kept_in_attribute_or_closure() -> None:
    mm = _mm()

    class Private:
        last: Entry | None = None

    firsts: list[Entry] = []
    priv = Private()

    def pte_entry(pte: Entry, addr: int, next: int, walk: Any) -> int:  # noqa: A002
        if priv.last is not None:
            # the previous entry, kept in an attribute, is unchanged
            assert priv.last.kaddr == pte.kaddr - 8
            assert priv.last is not pte
        priv.last = pte if (addr >> 12) % 512 != 511 else None
        if not firsts:
            firsts.append(pte)
        return 0

    walk_page_range(mm, _BASE, _BASE + (2 << 20), MMWalkOps(pte_entry=pte_entry), private=priv)
    assert firsts[0].value == mk_pte(0x1000, DEFAULT_PTE_FLAGS)


def test_pte_entry_stop_value() -> None:
    mm = _mm()
    calls = [0]

    def pte_entry(pte: Entry, addr: int, next: int, walk: Any) -> int:  # noqa: A002
        calls[0] += 1
        return 7 if calls[0] == 5 else 0

    assert walk_page_range(mm, _BASE, _BASE + (2 << 20), MMWalkOps(pte_entry=pte_entry)) == 7
    assert calls[0] == 5


# -- the drgn backend on a changing target -------------------------------------

def test_mm_members_read_fresh_and_physically() -> None:
    prog, mem = fake_kernel()
    reads = prog.cache["test_reads"]
    mm = Object(prog, "struct mm_struct *", MM_ADDR)
    backend = LiveBackend(prog, [])
    struct.pack_into("<Q", mem, 0, 0xFFFF_8880_0200_0000)
    struct.pack_into("<Q", mem, 24, 0x7FFF_FFFF_F000)
    assert backend.mm_pgd(mm) == 0xFFFF_8880_0200_0000
    assert backend.mm_task_size(mm) == 0x7FFF_FFFF_F000
    assert reads["virtual"] == 0  # no page-table walk of the kernel's
    # the mm_struct is freed and reused for another process between two calls
    struct.pack_into("<Q", mem, 0, 0xFFFF_8880_0300_0000)
    struct.pack_into("<Q", mem, 24, 0xFFFF_F000)
    assert backend.mm_pgd(mm) == 0xFFFF_8880_0300_0000
    assert backend.mm_task_size(mm) == 0xFFFF_F000
    # a struct mm_struct (not a pointer) reads the same
    assert backend.mm_pgd(mm[0]) == 0xFFFF_8880_0300_0000


def test_vma_cache_follows_the_target() -> None:
    prog, mem = fake_kernel()
    mm = Object(prog, "struct mm_struct *", MM_ADDR)
    backend = LiveBackend(prog, [VMA(0x400000, 0x401000, 0x3)])
    struct.pack_into("<QI", mem, 8, 0xFFFF_0000_1000, 1)
    struct.pack_into("<I", mem, 32, 2)
    assert backend.find_vma(mm, 0).vm_start == 0x400000
    assert backend.find_vma(mm, 0x400000).vm_start == 0x400000
    assert backend.full_reads == 1
    # mprotect splits the VMA: map_count grows, mm_lock_seq moves on
    backend.target_vmas = [VMA(0x400000, 0x400800, 0x3), VMA(0x400800, 0x401000, 0x1)]
    struct.pack_into("<QI", mem, 8, 0xFFFF_0000_1000, 2)
    struct.pack_into("<I", mem, 32, 4)
    assert backend.find_vma(mm, 0x400900).vm_flags == 0x1
    assert backend.full_reads == 2
    # a writer holds the mmap lock (odd sequence) then drops it: fresh again
    backend.target_vmas = [VMA(0x500000, 0x501000, 0x3)]
    struct.pack_into("<I", mem, 32, 5)
    assert backend.find_vma(mm, 0).vm_start == 0x500000
    struct.pack_into("<I", mem, 32, 6)
    assert backend.find_vma(mm, 0).vm_start == 0x500000
    assert backend.full_reads == 4


# -- vtop ---------------------------------------------------------------------------


def test_vtop_vma_from_the_walk() -> None:
    mm = _mm()
    backend = mm.livewalk_backend
    r = vtop(mm, _BASE + 0x5123)
    assert r.state == "present" and r.pfn == 0x1005
    assert r.vma == backend.find_vma(mm, _BASE)
    assert r.vma_name == ""  # a synthetic VMA has no name
    r = vtop(mm, _BASE + (8 << 20))
    assert r.vma is None and r.state == "no_vma"


def test_vtop_vma_name_lazy_and_settable() -> None:
    r = VtopResult(addr=0, kernel=False, levels=4, pgd=0)
    assert r.vma_name == ""
    r.vma_name = "[heap]"
    assert r.vma_name == "[heap]"
    assert "vma_name" not in repr(r)


def test_vma_snapshot_reads_physically_and_fresh() -> None:
    prog = Program(X86_64)
    u64 = prog.int_type("unsigned long", 8, False)
    voidp = prog.pointer_type(prog.void_type())
    vma_t = prog.struct_type(
        "vm_area_struct",
        48,
        (
            TypeMember(u64, "vm_start", 0),
            TypeMember(u64, "vm_end", 64),  # bit offsets
            TypeMember(u64, "vm_flags", 128),
            TypeMember(u64, "vm_pgoff", 192),
            TypeMember(voidp, "vm_ops", 256),
            TypeMember(voidp, "vm_file", 320),
        ),
    )

    def find_type(prog: Program, kinds: Any, name: str, filename: str | None) -> Any:
        return vma_t if name == "vm_area_struct" else None

    prog.register_type_finder("test", find_type, enable_index=0)
    mem = bytearray(48)
    reads = {"virtual": 0, "physical": 0}

    def read(address: int, count: int, offset: int, physical: bool) -> bytes:
        reads["physical" if physical else "virtual"] += 1
        return bytes(mem[offset : offset + count])

    prog.add_memory_segment(MM_ADDR, len(mem), read)
    prog.add_memory_segment(MM_ADDR - DIRECT_MAP, len(mem), read, True)
    backend = LiveBackend(prog, [])
    vma = Object(prog, "struct vm_area_struct *", MM_ADDR)
    struct.pack_into("<QQQQQQ", mem, 0, 0x400000, 0x401000, 0x73, 0x10, 0, 0)
    snap = backend.vma_snapshot(vma)
    assert (snap.vm_start, snap.vm_end, snap.vm_flags, snap.vm_pgoff) == (0x400000, 0x401000, 0x73, 0x10)
    assert snap.anonymous and snap.obj is vma
    assert reads == {"virtual": 0, "physical": 1}  # the whole struct, one physical read
    struct.pack_into("<QQQQQQ", mem, 0, 0x400000, 0x402000, 0x71, 0x10, 0xFFFF_FFFF_8100_0000, 0)
    snap = backend.vma_snapshot(vma)
    assert (snap.vm_end, snap.vm_flags, snap.anonymous) == (0x402000, 0x71, False)


# -- what a walk reads once, and what it reads again on the next call ------------


def _pfns(mm: SyntheticMM, start: int, end: int) -> list[int]:
    out: list[int] = []

    def pte_entry(pte: Entry, addr: int, next: int, walk: Any) -> int:  # noqa: A002
        out.append(pte.pfn if pte.present else -1)
        return 0

    assert walk_page_range(mm, start, end, MMWalkOps(pte_entry=pte_entry)) == 0
    return out


def test_mm_pgd_once_per_walk_and_fresh_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    mm = _mm()
    mm.add_vma(_BASE + (4 << 20), _BASE + (6 << 20))
    other = mm.livewalk_backend.new_mm()
    other.add_vma(_BASE, _BASE + (4 << 20))
    other.map_4k(_BASE, pfn=0x7777)
    backend = mm.livewalk_backend
    reads: list[int] = []
    mm_pgd = backend.mm_pgd
    monkeypatch.setattr(backend, "mm_pgd", lambda m: reads.append(1) or mm_pgd(m))
    walks: list[Any] = []
    ops = MMWalkOps(pte_entry=lambda pte, addr, next, walk: 0)
    assert walk_page_range(mm, _BASE, _BASE + (6 << 20), ops, walks=walks) == 0
    assert len(reads) == 1  # two VMAs, one read of mm->pgd
    assert walks[0].mm_pgd == mm.pgd
    assert _pfns(mm, _BASE, _BASE + 0x2000) == [0x1000, 0x1001]
    r = vtop(mm, _BASE + 0x1000)
    assert (r.pfn, r.pgd) == (0x1001, mm.pgd)
    # between two calls the mm's page tables are replaced (the mm_struct
    # freed and made again at the same address, or the test's stand-in)
    mm.pgd_paddr = other.pgd_paddr
    assert _pfns(mm, _BASE, _BASE + 0x2000) == [0x7777, -1]
    r = vtop(mm, _BASE)
    assert (r.pfn, r.pgd) == (0x7777, other.pgd)
    # an address in no VMA: vtop reads mm->pgd itself for its VMA-less walk
    r = vtop(mm, _BASE + (8 << 20))
    assert r.state == "no_vma" and r.pgd == other.pgd


def test_struct_tags_kept_per_object_never_per_address() -> None:
    prog, mem = fake_kernel()
    mm = Object(prog, "struct mm_struct *", MM_ADDR)
    backend = LiveBackend(prog, [])
    struct.pack_into("<Q", mem, 0, 0xFFFF_8880_0200_0000)
    assert backend.mm_pgd(mm) == 0xFFFF_8880_0200_0000
    # the same address as another type is refused, every time
    for _ in range(2):
        with pytest.raises(TypeError):
            backend.mm_pgd(Object(prog, "unsigned long", MM_ADDR))
    # many Objects come and go: the kept ones are released, answers stay right
    for i in range(300):
        assert backend.mm_pgd(Object(prog, "struct mm_struct *", MM_ADDR)) == 0xFFFF_8880_0200_0000
        if i % 50 == 0:
            with pytest.raises(TypeError):
                backend.mm_pgd(Object(prog, "unsigned int", 7))
    assert len(backend._tags) <= 64


@pytest.mark.parametrize(
    ("kconfig", "pti"),
    [
        ({"CONFIG_MITIGATION_PAGE_TABLE_ISOLATION": "y"}, True),  # Linux 6.9 on
        ({"CONFIG_PAGE_TABLE_ISOLATION": "y"}, True),  # before 6.9
        ({"CONFIG_X86_64": "y"}, False),  # configured without it
    ],
)
def test_pti_config_either_name(kconfig: dict[str, str], pti: bool) -> None:
    prog, _ = fake_kernel()
    backend = LiveBackend(prog, [])
    backend._kconfig = kconfig
    assert backend._pti_config() is pti
    assert backend._read_x86_paging().pti is pti


def test_pti_without_config_from_the_symbol() -> None:
    prog, _ = fake_kernel()
    backend = LiveBackend(prog, [])
    backend._kconfig = {}
    assert backend._pti_config() is None
    assert backend._read_x86_paging().pti is False  # no pti_init in the fake kernel
