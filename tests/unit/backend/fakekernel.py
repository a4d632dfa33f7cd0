# SPDX-License-Identifier: LGPL-2.1-or-later
"""
A fake kernel for the drgn backend's unit tests: a :class:`drgn.Program` whose
memory is one ``struct mm_struct`` in a bytearray, reachable through its
direct-map address and physically, with the reads counted; and a
:class:`~livewalk.backend.drgn.DrgnBackend` of a live target whose VMA list
comes from the test.
"""

from __future__ import annotations

from typing import Any

import drgn
from drgn import Object, Program, TypeMember

from livewalk.backend.drgn import DrgnBackend
from livewalk.mm.vma import VMA

MM_ADDR = 0xFFFF_8880_0010_0000
DIRECT_MAP = 0xFFFF_8880_0000_0000

#: The fake kernel is an x86_64 one whatever the host runs (its direct map
#: is x86_64's).
X86_64 = drgn.Platform(
    drgn.Architecture.X86_64, drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN
)


def fake_kernel() -> tuple[Program, bytearray]:
    """A program whose memory is one ``struct mm_struct`` in a bytearray."""
    prog = Program(X86_64)
    u32 = prog.int_type("unsigned int", 4, False)
    u64 = prog.int_type("unsigned long", 8, False)
    seqcount = prog.struct_type("seqcount", 4, (TypeMember(u32, "sequence", 0),))
    maple = prog.struct_type("maple_tree", 8, (TypeMember(u64, "ma_root", 0),))
    mm_t = prog.struct_type(
        "mm_struct",
        64,
        (
            TypeMember(u64, "pgd", 0),
            TypeMember(maple, "mm_mt", 64),
            TypeMember(u32, "map_count", 128),
            TypeMember(u64, "task_size", 192),
            TypeMember(seqcount, "mm_lock_seq", 256),
        ),
    )

    def find_type(prog: Program, kinds: Any, name: str, filename: str | None) -> Any:
        return mm_t if name == "mm_struct" else None

    prog.register_type_finder("test", find_type, enable_index=0)
    mem = bytearray(64)
    reads = {"virtual": 0, "physical": 0}

    def read(address: int, count: int, offset: int, physical: bool) -> bytes:
        reads["physical" if physical else "virtual"] += 1
        return bytes(mem[offset : offset + count])

    prog.add_memory_segment(MM_ADDR, len(mem), read)
    prog.add_memory_segment(MM_ADDR - DIRECT_MAP, len(mem), read, True)
    prog.cache["test_reads"] = reads
    return prog, mem


class LiveBackend(DrgnBackend):
    """A live-target DrgnBackend whose VMA list comes from the test."""

    def __init__(self, prog: Program, vmas: list[VMA]) -> None:
        super().__init__(prog)
        self._live = True
        self.target_vmas = vmas
        self.full_reads = 0

    def _read_vmas(self, mm: Object) -> list[VMA]:
        self.full_reads += 1
        return list(self.target_vmas)
