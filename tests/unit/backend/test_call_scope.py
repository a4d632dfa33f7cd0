# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The drgn backend's call scope (issue [E]): inside one call the members of
an mm that the call needs (the VMA cache's stamp, ``pgd``, ``task_size``)
are read once, in one read; between two calls, and for :meth:`mm_stamp`,
they are read fresh, so a target that changes between two calls is seen
by the second.
"""

from __future__ import annotations

import struct
import threading

import pytest
from drgn import Object
from fakekernel import MM_ADDR, LiveBackend, fake_kernel

from livewalk.backend import drgn as drgn_backend
from livewalk.backend.drgn import DrgnBackend
from livewalk.backend.synthetic import SyntheticMM
from livewalk.mm.vma import VMA

_PGD_A = 0xFFFF_8880_0200_0000
_PGD_B = 0xFFFF_8880_0300_0000


def _set(mem: bytearray, *, pgd: int, task_size: int, root: int, map_count: int, seq: int) -> None:
    # the fake mm_struct: pgd at 0, mm_mt.ma_root at 8, map_count at 16,
    # task_size at 24, mm_lock_seq at 32
    struct.pack_into("<QQI4xQI", mem, 0, pgd, root, map_count, task_size, seq)


def test_one_read_per_call_for_every_member() -> None:
    prog, mem = fake_kernel()
    reads = prog.cache["test_reads"]
    mm = Object(prog, "struct mm_struct *", MM_ADDR)
    backend = LiveBackend(prog, [VMA(0x400000, 0x401000, 0x3)])
    _set(mem, pgd=_PGD_A, task_size=0x7FFF_FFFF_F000, root=0xFFFF_0000_1000, map_count=1, seq=2)
    backend.find_vma(mm, 0)  # fills the VMA cache
    before = reads["physical"]
    with backend.call_scope():
        assert backend.mm_task_size(mm) == 0x7FFF_FFFF_F000
        assert backend.find_vma(mm, 0).vm_start == 0x400000
        assert backend.mm_pgd(mm) == _PGD_A
        assert backend.find_vma(mm, 0x400000).vm_start == 0x400000
    assert reads["physical"] - before == 1
    assert reads["virtual"] == 0
    assert backend.full_reads == 1
    # outside a scope each member is read on its own, fresh
    before = reads["physical"]
    backend.mm_pgd(mm)
    backend.mm_task_size(mm)
    assert reads["physical"] - before == 2


def test_target_changes_between_two_calls() -> None:
    prog, mem = fake_kernel()
    mm = Object(prog, "struct mm_struct *", MM_ADDR)
    backend = LiveBackend(prog, [VMA(0x400000, 0x401000, 0x3)])
    _set(mem, pgd=_PGD_A, task_size=0x7FFF_FFFF_F000, root=0xFFFF_0000_1000, map_count=1, seq=2)
    with backend.call_scope():
        assert (backend.mm_pgd(mm), backend.mm_task_size(mm)) == (_PGD_A, 0x7FFF_FFFF_F000)
        assert backend.find_vma(mm, 0x401000) is None
    # between the calls: the mm_struct is freed and made again for another
    # process at the same address, with a new VMA (the stamp moves on)
    backend.target_vmas = [VMA(0x400000, 0x401000, 0x3), VMA(0x7F00_0000_0000, 0x7F00_0000_1000, 0x3)]
    _set(mem, pgd=_PGD_B, task_size=0xFFFF_F000, root=0xFFFF_0000_2000, map_count=2, seq=4)
    with backend.call_scope():
        assert (backend.mm_pgd(mm), backend.mm_task_size(mm)) == (_PGD_B, 0xFFFF_F000)
        found = backend.find_vma(mm, 0x401000)
        assert found is not None and found.vm_start == 0x7F00_0000_0000
    assert backend.full_reads == 2


def test_inside_a_call_the_copy_holds_but_mm_stamp_reads_fresh() -> None:
    prog, mem = fake_kernel()
    mm = Object(prog, "struct mm_struct *", MM_ADDR)
    backend = LiveBackend(prog, [VMA(0x400000, 0x401000, 0x3)])
    _set(mem, pgd=_PGD_A, task_size=0x7FFF_FFFF_F000, root=0xFFFF_0000_1000, map_count=1, seq=2)
    with backend.call_scope():
        with backend.call_scope():  # re-entrant: the inner end keeps the copy
            assert backend.mm_pgd(mm) == _PGD_A
        _set(mem, pgd=_PGD_B, task_size=0xFFFF_F000, root=0xFFFF_0000_2000, map_count=2, seq=4)
        assert backend.mm_pgd(mm) == _PGD_A  # the call's copy
        assert backend.mm_stamp(mm) == (4, 2, 0xFFFF_0000_2000)  # how a change is seen
    assert backend.mm_pgd(mm) == _PGD_B  # nothing kept past the call


def test_another_thread_reads_its_own() -> None:
    prog, mem = fake_kernel()
    mm = Object(prog, "struct mm_struct *", MM_ADDR)
    backend = LiveBackend(prog, [])
    _set(mem, pgd=_PGD_A, task_size=0x7FFF_FFFF_F000, root=0, map_count=0, seq=2)
    got: list[int] = []
    with backend.call_scope():
        assert backend.mm_pgd(mm) == _PGD_A
        _set(mem, pgd=_PGD_B, task_size=0xFFFF_F000, root=0, map_count=0, seq=4)
        t = threading.Thread(target=lambda: got.append(backend.mm_pgd(mm)))
        t.start()
        t.join()
    assert got == [_PGD_B]


def test_other_backends_have_a_scope_that_does_nothing() -> None:
    mm = SyntheticMM()
    with mm.livewalk_backend.call_scope():
        pass


def test_a_vmcore_reads_them_once() -> None:
    prog, mem = fake_kernel()  # not live: a vmcore does not change
    reads = prog.cache["test_reads"]
    mm = Object(prog, "struct mm_struct *", MM_ADDR)
    backend = DrgnBackend(prog)
    _set(mem, pgd=_PGD_A, task_size=0x7FFF_FFFF_F000, root=0, map_count=0, seq=2)
    before = reads["physical"]
    with backend.call_scope():
        assert backend.mm_pgd(mm) == _PGD_A
    assert backend.mm_task_size(mm) == 0x7FFF_FFFF_F000
    assert backend.mm_pgd(mm[0]) == _PGD_A
    assert reads["physical"] - before == 1


def test_a_wide_layout_reads_each_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(drgn_backend, "_HEAD_SPAN_MAX", 8)
    prog, mem = fake_kernel()
    reads = prog.cache["test_reads"]
    mm = Object(prog, "struct mm_struct *", MM_ADDR)
    backend = LiveBackend(prog, [VMA(0x400000, 0x401000, 0x3)])
    _set(mem, pgd=_PGD_A, task_size=0x7FFF_FFFF_F000, root=0xFFFF_0000_1000, map_count=1, seq=2)
    before = reads["physical"]
    with backend.call_scope():
        assert (backend.mm_pgd(mm), backend.mm_task_size(mm)) == (_PGD_A, 0x7FFF_FFFF_F000)
        assert backend.find_vma(mm, 0).vm_start == 0x400000
    assert reads["physical"] - before == 3 + 1  # stamp, pgd and task_size once; the VMA list checked after
    assert backend.mm_stamp(mm) == (2, 1, 0xFFFF_0000_1000)
