# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The drgn backend on an arm64 program: the architecture comes from
``prog.platform``, the geometry from ``PAGE_SHIFT``, VMCOREINFO's
``VA_BITS`` and ``vabits_actual`` (or ``TCR_EL1_T1SZ``), the linear map from
``memstart_addr`` and the kernel image from ``kimage_voffset``. A fake arm64
program serves the page tables of a synthetic mm as physical memory; walks
through the drgn backend must make exactly the synthetic backend's calls.
"""

from __future__ import annotations

from typing import Any

import drgn
import pytest
from drgn import Object, Program, TypeMember
from walkrec import Rec

from livewalk.arch import PageTableLevel as L
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.backend.drgn import DrgnBackend
from livewalk.backend.synthetic import SyntheticMM
from livewalk.mm.pagewalk import MMWalk, walk_pgd_range

ARM64 = drgn.Platform(
    drgn.Architecture.AARCH64, drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN
)
INFO_ADDR = 0xFFFF_FFFF_0000_0000


def fake_arm64(mm: SyntheticMM, objects: dict[str, int], vmcoreinfo: str, levels: int = 0) -> Program:
    """
    An arm64 program whose physical memory is *mm*'s page-table pages; with
    *levels*, the entry types of ``CONFIG_PGTABLE_LEVELS`` = *levels*
    (``asm/pgtable-types.h`` and ``asm-generic/pgtable-nop*d.h``).
    """
    prog = Program(ARM64)
    u64 = prog.int_type("unsigned long", 8, False)
    entry_types: dict[str, drgn.Type] = {}
    above = prog.typedef_type("pgd_t", prog.struct_type(None, 8, (TypeMember(u64, "pgd"),)))
    for name in ("p4d", "pud", "pmd"):
        own = {"p4d": 5, "pud": 4, "pmd": 3}[name] <= levels
        member = TypeMember(u64, name) if own else TypeMember(above, above.name[:3])
        above = entry_types[name + "_t"] = prog.typedef_type(name + "_t", prog.struct_type(None, 8, (member,)))
    if levels:
        prog.register_type_finder(
            "test", lambda prog, kinds, name, filename: entry_types.get(name), enable_index=0
        )
    s64 = prog.int_type("long", 8, True)
    char = prog.int_type("char", 1, True)
    info = vmcoreinfo.encode() + b"\0"
    types = {"memstart_addr": s64}

    def find_object(prog: Program, name: str, flags: Any, filename: str | None) -> Any:
        if name == "VMCOREINFO":
            return Object(prog, prog.array_type(char, len(info)), address=INFO_ADDR)
        if name in objects:
            return Object(prog, types.get(name, u64), objects[name])
        return None

    prog.register_object_finder("test", find_object, enable_index=0)
    mem = mm.livewalk_backend._mem
    page = mm.paging.page_size

    def read_phys(address: int, count: int, offset: int, physical: bool) -> bytes:
        base = address & ~(page - 1)
        return mem[base].tobytes()[address - base : address - base + count]

    for paddr in mem:
        prog.add_memory_segment(paddr, page, read_phys, True)
    prog.add_memory_segment(INFO_ADDR, len(info), lambda a, c, o, p: info[o : o + c])
    return prog


def _paging(**kw: Any) -> Arm64Paging:
    """A QEMU virt kernel loaded at 1 GiB: KIMAGE_VADDR is 2 GiB of modules above PAGE_END."""
    page_end = Arm64Paging(phys_offset=0, **kw).page_end
    return Arm64Paging(phys_offset=0, kimage_voffset=page_end + (2 << 30) - (1 << 30), **kw)


CASES = [
    # Debian cloud-arm64 on -cpu max: 4K, 5 levels with LPA2
    ("4k-52", _paging(), 12, 52, 52, 5, None),
    # the same kernel on -cpu max,lpa2=off: vabits_actual 48, P4D folded at boot
    ("4k-52-nolpa2", _paging(vabits_actual=48), 12, 52, 48, 4, L.P4D),
    # 16K LPA2 kernel without LPA2: 47 bits, the PUD folded at boot
    ("16k-52-nolpa2", _paging(page_shift=14, vabits_actual=47), 14, 52, 47, 3, L.PUD),
    ("64k-48", _paging(page_shift=16, va_bits=48, pa_bits_52=False), 16, 48, 48, 3, None),
]


@pytest.mark.parametrize("name, paging, shift, va_bits, actual, levels, at_boot", CASES, ids=[c[0] for c in CASES])
def test_arm64_program_reads_like_the_synthetic_tables(
    name: str, paging: Arm64Paging, shift: int, va_bits: int, actual: int, levels: int, at_boot: L | None
) -> None:
    page = 1 << shift
    voffset = paging.kimage_voffset
    mm = SyntheticMM(paging=paging)
    base = 4 << paging.level_shift(L.PMD)
    for n in (0, 3, 7):
        mm.map_page(base + n * page, pfn=0x100 + n)
    mm.map_page(1 << 39, pfn=0x200)
    # vabits_actual is read directly; VMCOREINFO gives VA_BITS (what drgn reads)
    prog = fake_arm64(
        mm,
        {"PAGE_SHIFT": shift, "vabits_actual": actual, "memstart_addr": 0, "kimage_voffset": voffset},
        f"OSRELEASE=7.2.13\nPAGESIZE={page}\nNUMBER(VA_BITS)={va_bits}\n",
    )
    backend = DrgnBackend(prog)
    p = backend.paging
    assert isinstance(p, Arm64Paging)
    assert (p.page_shift, p.va_bits, p.levels) == (shift, va_bits, levels)
    assert [lvl for lvl in L if p.folded_at_boot(lvl)] == ([at_boot] if at_boot else [])
    assert (p.phys_offset, p.kimage_voffset) == (0, voffset)
    # mm->pgd of a user mm is in the linear map; swapper_pg_dir in the image
    assert backend.pgd_phys(mm.pgd) == mm.pgd_paddr
    assert backend.pgd_phys(mm.pgd_paddr + voffset) == mm.pgd_paddr
    assert len(backend.read_table(mm.pgd_paddr)) == page // 8

    def walk(be: Any, pgd: int) -> Rec:
        r = Rec(("pgd_entry", "p4d_entry", "pud_entry", "pmd_entry", "pte_entry", "pte_hole"))
        w = MMWalk(r.ops, 0, be, pgd=pgd, no_vma=True)
        w._kernel_pte = False
        assert walk_pgd_range(0, 2 << 39, w) == 0
        return r

    want = walk(mm.livewalk_backend, mm.pgd)
    got = walk(backend, mm.pgd_paddr + voffset)  # as swapper_pg_dir would be reached
    assert got.log == want.log and len(want.log) > 2 * (page // 8)  # two PTE tables, every slot
    assert [e.value for e in got.entries if e is not None] == [e.value for e in want.entries if e is not None]
    ptes = [e for e in got.entries if e is not None and e.level == L.PTE and e.present]
    assert [e.pfn for e in ptes] == [0x100, 0x103, 0x107, 0x200]


def test_vabits_from_tcr_el1_t1sz_without_the_variable() -> None:
    # no vabits_actual in the debug info: 64 - TCR_EL1_T1SZ, as drgn does
    mm = SyntheticMM(paging=_paging(vabits_actual=48))
    prog = fake_arm64(
        mm,
        {"PAGE_SHIFT": 12, "memstart_addr": 0, "kimage_voffset": mm.paging.kimage_voffset},
        "NUMBER(VA_BITS)=52\nNUMBER(TCR_EL1_T1SZ)=0x10\n",
    )
    p = DrgnBackend(prog).paging
    assert isinstance(p, Arm64Paging)
    assert (p.va_bits, p.levels, p.folded_at_boot(L.P4D), p.pgdir_shift) == (52, 4, True, 48)


def test_other_architectures_are_refused() -> None:
    prog = Program(drgn.Platform(drgn.Architecture.PPC64, drgn.PlatformFlags.IS_64_BIT))
    with pytest.raises(ValueError, match="x86_64 and arm64"):
        DrgnBackend(prog)


@pytest.mark.parametrize(
    "shift, levels, va_bits", [(12, 3, 39), (12, 4, 48), (12, 5, 52), (14, 3, 47), (16, 2, 42), (16, 3, 48)]
)
def test_va_bits_from_the_entry_types_without_vmcoreinfo(shift: int, levels: int, va_bits: int) -> None:
    # no VA_BITS in VMCOREINFO and no configuration: CONFIG_PGTABLE_LEVELS
    # from which entry types hold values of their own
    mm = SyntheticMM(paging=_paging(page_shift=shift, va_bits=va_bits, pa_bits_52=va_bits == 52))
    prog = fake_arm64(mm, {"PAGE_SHIFT": shift, "memstart_addr": 0, "kimage_voffset": 0}, "", levels)
    p = DrgnBackend(prog).paging
    assert isinstance(p, Arm64Paging)
    assert (p.va_bits, p.config_levels, p.levels) == (va_bits, levels, levels)
