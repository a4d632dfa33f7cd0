# SPDX-License-Identifier: LGPL-2.1-or-later
"""livewalk/task.py: ``struct_tag()`` answers, and keeps no program alive."""

from __future__ import annotations

import gc
import weakref

from drgn import Object, Program, host_platform

from livewalk.task import struct_tag


class _Reader:
    """A memory segment's read callback: the Program holds it while it lives."""

    def __call__(self, address: int, count: int, offset: int, physical: bool) -> bytes:
        return bytes(count)


def test_struct_tag_answers_and_keeps_no_program_alive() -> None:
    """A program dropped by its user is freed, and with it what it holds (a
    QEMU guest's QMP connection, a vmcore's file): no cache of answers keeps
    its Objects (a module-level memo of tags once kept the last 64 alive,
    and a test's QMP socket with them). drgn 0.0.31, the oldest livewalk
    supports, never frees a program that its own ``cache`` refers back to,
    so no such memo belongs there either."""
    reader = _Reader()
    alive = weakref.ref(reader)
    prog = Program(host_platform)
    prog.add_memory_segment(0, 1 << 20, reader)
    mm = prog.struct_type("mm_struct", 8, ())
    ptr = Object(prog, prog.pointer_type(mm), 0x1000)
    assert struct_tag(ptr) == ("mm_struct", True)
    assert struct_tag(Object(prog, mm, address=0x2000)) == ("mm_struct", False)
    assert struct_tag(Object(prog, prog.int_type("int", 4, True), 1)) == (None, False)
    del ptr, prog, reader, mm
    gc.collect()
    assert alive() is None, "a Program outlived its last user"
