# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The backend contract (:class:`livewalk.backend.PageTableBackend`): both
shipped backends have every declared member, of the declared kind; the mm
resolver's errors; the drgn backend's VMA cache stays fresh on a live target
that changes between two calls.
"""

from __future__ import annotations

import inspect
import struct
from typing import Any

import pytest
from drgn import Object, Program
from fakekernel import MM_ADDR, X86_64, LiveBackend, fake_kernel

from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.x86.pgtable import X86Paging
from livewalk.backend import CONTRACT_METHODS, CONTRACT_PROPERTIES, PageTableBackend, backend_for_mm
from livewalk.backend.drgn import DrgnBackend
from livewalk.backend.synthetic import SyntheticBackend, SyntheticMM
from livewalk.kernel import KernelFeatures
from livewalk.mm.vma import VMA, VMFlagBits
from livewalk.task import resolve_mm


def _declared_members() -> tuple[set[str], set[str]]:
    """(properties, methods) that PageTableBackend declares, read from the class."""
    props = set()
    methods = set()
    for name, value in vars(PageTableBackend).items():
        if name.startswith("_"):
            continue
        if isinstance(value, property):
            props.add(name)
        elif inspect.isfunction(value):
            methods.add(name)
    return props, methods


def test_contract_lists_match_the_protocol() -> None:
    props, methods = _declared_members()
    assert props == set(CONTRACT_PROPERTIES)
    assert methods == set(CONTRACT_METHODS)


def _backends() -> list[Any]:
    return [SyntheticBackend(), DrgnBackend(Program(X86_64))]


_KINDS: dict[str, tuple[type, ...]] = {
    "paging": (X86Paging, Arm64Paging),
    "prog": (Program, type(None)),
    "features": (KernelFeatures,),
    "vm_flag_bits": (VMFlagBits,),
    "zero_pfn": (int, type(None)),
    "huge_zero_pfn": (int, type(None)),
    "highest_memmap_pfn": (int, type(None)),
}


@pytest.mark.parametrize("backend", _backends(), ids=lambda b: type(b).__name__)
def test_backend_satisfies_contract(backend: Any) -> None:
    assert isinstance(backend, PageTableBackend)
    for name in CONTRACT_PROPERTIES:
        value = getattr(backend, name)  # a missing member fails here, loudly
        if name in _KINDS:
            assert isinstance(value, _KINDS[name]), (name, value)
        else:  # optional callables: pfn_to_page, page_folio
            assert value is None or callable(value), (name, value)
    for name in CONTRACT_METHODS:
        member = getattr(type(backend), name)
        assert inspect.isfunction(member), f"{type(backend).__name__}.{name} is not a method"
        declared = inspect.signature(getattr(PageTableBackend, name))
        actual = inspect.signature(member)
        assert len(actual.parameters) == len(declared.parameters), (name, actual, declared)


def test_synthetic_backend_for_another_kernel() -> None:
    b = SyntheticBackend(version=(6, 12))
    assert b.features.version == (6, 12)
    assert (b.features.fw_zeropage, b.features.fw_migration) == (2, 1)
    assert not b.features.page_compound_info
    assert SyntheticBackend().features == KernelFeatures.for_version((7, 2))


def test_backend_for_mm() -> None:
    mm = SyntheticMM()
    vma = mm.add_vma(0x400000, 0x401000)
    assert backend_for_mm(mm) is mm.livewalk_backend
    assert backend_for_mm(vma.obj) is mm.livewalk_backend
    prog = Program(X86_64)
    obj = Object(prog, "unsigned long", 0)
    assert backend_for_mm(obj) is DrgnBackend.for_program(prog)
    with pytest.raises(TypeError):
        backend_for_mm("1")


def test_synthetic_mm_stamp_changes_with_vmas() -> None:
    mm = SyntheticMM()
    b = mm.livewalk_backend
    before = b.mm_stamp(mm)
    assert before[0] % 2 == 0
    mm.add_vma(0x400000, 0x401000)
    after = b.mm_stamp(mm)
    assert after != before and after[0] % 2 == 0


def test_resolve_mm_errors() -> None:
    mm = SyntheticMM()
    assert resolve_mm(None, mm) is mm
    for bad in ("1", True, 1.5, None):
        with pytest.raises(TypeError):
            resolve_mm(None, bad)
    prog = Program(X86_64)
    with pytest.raises(TypeError):
        resolve_mm(prog, Object(prog, "int", 0))


# -- the drgn backend's VMA cache on a changing live target ----------------------

def test_drgn_vma_cache_is_fresh_when_target_changes() -> None:
    prog, mem = fake_kernel()
    mm = Object(prog, "struct mm_struct *", MM_ADDR)
    backend = LiveBackend(prog, [VMA(0x400000, 0x401000, 0x3)])
    struct.pack_into("<QI12xI", mem, 8, 0xFFFF_0000_1000, 1, 4)  # ma_root, map_count, seq

    assert backend._kernel_pa(MM_ADDR) is not None  # the stamp is read physically
    assert backend.mm_stamp(mm) == (4, 1, 0xFFFF_0000_1000)
    assert backend.find_vma(mm, 0).vm_start == 0x400000
    assert backend.find_vma(mm, 0x400800).vm_start == 0x400000
    assert backend.full_reads == 1  # the stamp did not change: served from the cache

    # The target changes between two calls: an mmap adds a VMA (the write
    # lock bumps mm_lock_seq twice, map_count grows).
    backend.target_vmas = [VMA(0x400000, 0x401000, 0x3), VMA(0x7F00_0000_0000, 0x7F00_0000_1000, 0x3)]
    struct.pack_into("<QI12xI", mem, 8, 0xFFFF_0000_1000, 2, 6)
    found = backend.find_vma(mm, 0x401000)
    assert found is not None and found.vm_start == 0x7F00_0000_0000
    assert backend.full_reads == 2

    # An munmap that keeps map_count and the root still bumps mm_lock_seq.
    backend.target_vmas = [VMA(0x7F00_0000_0000, 0x7F00_0000_1000, 0x3)]
    struct.pack_into("<QI12xI", mem, 8, 0xFFFF_0000_1000, 2, 8)
    assert backend.find_vma(mm, 0).vm_start == 0x7F00_0000_0000
    assert [v.vm_start for v in backend.vmas(mm)] == [0x7F00_0000_0000]
