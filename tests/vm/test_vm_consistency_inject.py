# SPDX-License-Identifier: LGPL-2.1-or-later
"""
A real change injected into a live walk is always caught (issue [G]).

livewalk reads a guest process from the host over QMP. A test hook
(:func:`livewalk.backend.drgn.pause_after_table_read`) pauses it right after
it has read the PTE table that maps the process's target range; the test
then makes the guest process change exactly that table through the guest
agent -- fault a page in, ``mprotect`` or ``munmap`` pages -- waits until the
process says it has, and lets livewalk go on with the copy it read before.

- With ``retries=0`` the answer must name that range torn, every time
  (pagemap, vtop, ``vm -p`` through the crash command with its ``# torn``
  mark and stderr summary).
- With retries, the answer must be consistent and equal to the guest
  kernel's own ``/proc/PID/pagemap`` read after the change.
- The same pause with no change never flags anything.
"""

from __future__ import annotations

import contextlib
import io
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from livewalk.vm import Guest

PAGE = 4096
MB2 = 2 << 20
READY = "/tmp/inject-ready.json"
CMD = "/tmp/inject-cmd"
ACK = "/tmp/inject-ack"

# The guest workload: 16 pages written in a 2 MiB-aligned anonymous range
# (no THP there), then it waits for commands: "SEQ OP PAGE N end" in CMD
# (a command read before it is whole is not "end"ed), answered by "SEQ" in
# ACK once done.
WORKLOAD = r'''
import ctypes, json, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MB2, PAGE = 2 << 20, 4096
raw = libc.mmap(None, 3 * MB2, 3, 0x22, -1, 0)
base = (raw + MB2 - 1) & ~(MB2 - 1)
assert libc.madvise(base, MB2, 15) == 0          # MADV_NOHUGEPAGE
def touch(i):
    ctypes.memset(base + i * PAGE, 0x5A, 1)
for i in range(16):
    touch(i)
ready, cmd, ack = sys.argv[1:4]
with open(ready + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "base": base}, f)
os.rename(ready + ".tmp", ready)
done = None
while True:
    try:
        with open(cmd) as f:
            line = f.read().split()
    except FileNotFoundError:
        line = []
    if len(line) == 5 and line[4] == "end" and line[0] != done:
        seq, op, page, n = line[0], line[1], int(line[2]), int(line[3])
        a = base + page * PAGE
        if op == "touch":
            for i in range(n):
                touch(page + i)
        elif op == "mprotect":
            assert libc.mprotect(a, n * PAGE, 1) == 0        # PROT_READ
        elif op == "munmap":
            assert libc.munmap(a, n * PAGE) == 0
        with open(ack + ".tmp", "w") as f:
            f.write(seq)
        os.rename(ack + ".tmp", ack)
        done = seq
    time.sleep(0.02)
'''


class Workload:
    """The guest process and the commands that change its target range."""

    def __init__(self, g: Guest) -> None:
        self.g = g
        g.run(f"rm -f {READY} {CMD} {ACK}", timeout=60)
        g.put("/tmp/inject_wl.py", WORKLOAD)
        self.pid = g.spawn(f"python3 /tmp/inject_wl.py {READY} {CMD} {ACK}")
        note = g.wait_ready_file(READY, self.pid)
        assert note["pid"] == self.pid
        self.base: int = note["base"]
        self.seq = 0

    def do(self, op: str, page: int, n: int = 1) -> None:
        """Make the process run *op* on its pages [page, page + n) and wait until it has."""
        self.seq += 1
        seq = str(self.seq)
        self.g.put(CMD, f"{seq} {op} {page} {n} end\n")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            r = self.g.run(f"cat {ACK} 2>/dev/null", timeout=60)
            if r.stdout.strip() == seq:
                return
            time.sleep(0.2)
        pytest.fail(f"workload did not {op}: {self.g.spawn_log(self.pid)[-3000:]}")

    def kernel_pagemap(self, start: int, end: int) -> list[int]:
        """The guest kernel's own /proc/PID/pagemap of [start, end)."""
        code = (f"import os,sys; f=os.open('/proc/{self.pid}/pagemap',0); "
                f"sys.stdout.write(os.pread(f,{(end - start) // PAGE * 8},{start // PAGE * 8}).hex())")
        r = self.g.run(f'python3 -c "{code}"', timeout=120, check=True)
        data = bytes.fromhex(r.stdout.strip())
        return [int.from_bytes(data[i:i + 8], "little") for i in range(0, len(data), 8)]

    def stop(self) -> None:
        self.g.run(f"kill {self.pid}", timeout=60)


@pytest.fixture(scope="module")
def wl(guest5: Guest) -> Iterator[Workload]:
    w = Workload(guest5)
    yield w
    w.stop()


def _mm(g: Guest, pid: int) -> Any:
    from livewalk.task import find_mm

    return find_mm(g.host_program(), pid)[1]


def _pte_table(mm: Any, addr: int) -> int:
    """The physical address of the PTE table that maps *addr* (from livewalk's vtop)."""
    from livewalk.arch import PageTableLevel
    from livewalk.backend import backend_for_mm
    from livewalk.tools.vtop import vtop

    r = vtop(mm, addr)
    steps = [s for s in r.steps if s.level == PageTableLevel.PTE]
    assert steps, f"{addr:#x} is not mapped by a PTE table: {r.state}, {r.leaf_level}"
    step = steps[0]
    paging = backend_for_mm(mm).paging
    return (step.kaddr - paging.page_offset) & ~(PAGE - 1)


@contextlib.contextmanager
def _paused(mm: Any, addr: int, change: Callable[[], None]) -> Iterator[list[int]]:
    """livewalk paused after reading the PTE table of *addr* while *change* runs."""
    from livewalk.backend.drgn import DrgnBackend, pause_after_table_read

    backend = DrgnBackend.for_program(mm.prog_)
    with pause_after_table_read(backend, _pte_table(mm, addr), change) as fired:
        yield fired
    assert fired, "livewalk never read the PTE table of the target range"


def _torn_here(cons: Any, start: int, end: int) -> None:
    assert cons.level == "torn", cons.as_dict()
    assert cons.torn_in(start, end), cons.as_dict()


def test_idle_process_never_flagged(guest5: Guest, wl: Workload) -> None:
    from livewalk.consistency import pagemap_read_consistent
    from livewalk.tools.vtop import vtop_consistent

    mm = _mm(guest5, wl.pid)
    start, end = wl.base, wl.base + MB2
    for _ in range(3):
        with _paused(mm, start, lambda: time.sleep(1.0)):
            r = pagemap_read_consistent(mm, start, end, retries=0)
        assert r.consistency.torn == [], r.consistency.as_dict()
        with _paused(mm, start, lambda: time.sleep(1.0)):
            v = vtop_consistent(mm, start + PAGE, retries=0)
        assert v.consistency is not None and v.consistency.torn == [], v.consistency.as_dict()
    assert r.value is not None and list(r.value) == wl.kernel_pagemap(start, end)


@pytest.mark.parametrize("op,page,n", [("touch", 100, 1), ("touch", 200, 3), ("mprotect", 4, 2),
                                       ("munmap", 8, 1), ("touch", 300, 1)])
def test_pagemap_injected_change_always_caught(guest5: Guest, wl: Workload, op: str, page: int, n: int) -> None:
    from livewalk.consistency import TABLE_CHANGED, pagemap_read_consistent

    mm = _mm(guest5, wl.pid)
    start, end = wl.base, wl.base + MB2
    with _paused(mm, start, lambda: wl.do(op, page, n)):
        r = pagemap_read_consistent(mm, start, end, retries=0)
    _torn_here(r.consistency, start + page * PAGE, start + (page + n) * PAGE)
    assert any(t.reason == TABLE_CHANGED for t in r.consistency.torn), r.consistency.as_dict()
    # with retries: consistent with the new state (the kernel's own answer now)
    with _paused(mm, start, lambda: wl.do("touch", page + n + 50)):  # a page not yet touched
        r = pagemap_read_consistent(mm, start, end, retries=3)
    assert r.consistency.torn == [] and r.consistency.reads >= 2, r.consistency.as_dict()
    assert r.value is not None and list(r.value) == wl.kernel_pagemap(start, end)


def test_vtop_injected_change_always_caught(guest5: Guest, wl: Workload) -> None:
    from livewalk.tools.vtop import format_vtop, vtop_consistent, vtop_json

    mm = _mm(guest5, wl.pid)
    for page in (400, 401, 402):
        addr = wl.base + page * PAGE
        with _paused(mm, addr, lambda p=page: wl.do("touch", p)):
            r = vtop_consistent(mm, addr, retries=0)
        assert r.consistency is not None
        _torn_here(r.consistency, addr, addr + PAGE)
        assert r.state == "none"                     # what was read: marked torn
        assert f"# torn {addr:#x}-{addr + PAGE:#x} table changed" in format_vtop(r)
        assert vtop_json(r)["consistency"]["level"] == "torn"
    addr = wl.base + 403 * PAGE
    with _paused(mm, addr, lambda: wl.do("touch", 403)):
        r = vtop_consistent(mm, addr, retries=2)
    assert r.consistency is not None and r.consistency.torn == [], r.consistency.as_dict()
    (kernel,) = wl.kernel_pagemap(addr, addr + PAGE)
    assert r.state == "present" and r.pfn == kernel & ((1 << 55) - 1), (r.pfn, hex(kernel))


def test_vm_p_command_marks_and_summary(guest5: Guest, wl: Workload, capsys: pytest.CaptureFixture[str]) -> None:
    from livewalk.commands.crash import _Parser, add_vm_arguments, run
    from livewalk.errors import LivewalkError

    mm = _mm(guest5, wl.pid)
    prog = guest5.host_program()
    p = _Parser(prog="lwvm")
    add_vm_arguments(p)
    args = p.parse_args(["-p", "--retries", "0", str(wl.pid)])
    out = io.StringIO()
    with _paused(mm, wl.base, lambda: wl.do("touch", 500)):
        run(prog, "vm", args, out)
    lines = out.getvalue().splitlines()
    marks = [i for i, line in enumerate(lines) if line.startswith("# torn ")]
    assert marks, out.getvalue()[-2000:]
    head = lines[marks[0] - 1].split()
    assert int(head[1], 16) <= wl.base < int(head[2], 16), lines[marks[0] - 1]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "VMAs changed while read" in err, err
    # --strict: fail instead of marking
    args = p.parse_args(["-p", "--retries", "0", "--strict", str(wl.pid)])
    with _paused(mm, wl.base, lambda: wl.do("touch", 501)):
        with pytest.raises(LivewalkError, match="changed while read"):
            run(prog, "vm", args, io.StringIO())


# -- "not in dump": an ELF core filtered by hand ------------------------------------------------


def _exclude_pages(path: str, paddrs: list[int]) -> None:
    """
    Filter the ELF core at *path* by hand, as a dump tool that drops pages
    would: each page of *paddrs* is cut out of the PT_LOAD segment holding it
    (split in two around it). The new program headers go at the end of the
    file and the ELF header points there.
    """
    import struct

    ph_fmt = "<IIQQQQQQ"  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
    with open(path, "r+b") as f:
        ehdr = f.read(64)
        assert ehdr[:4] == b"\x7fELF" and ehdr[4] == 2, "not an ELF64 core"
        (phoff,) = struct.unpack_from("<Q", ehdr, 32)
        phentsize, phnum = struct.unpack_from("<HH", ehdr, 54)
        f.seek(phoff)
        raw = f.read(phentsize * phnum)
        phdrs = [list(struct.unpack_from(ph_fmt, raw, i * phentsize)) for i in range(phnum)]
        for pa in paddrs:
            out, found = [], False
            for ph in phdrs:
                ptype, flags, off, va, pa0, filesz, memsz, align = ph
                if ptype != 1 or not pa0 <= pa < pa0 + max(filesz, memsz):
                    out.append(ph)
                    continue
                assert filesz == memsz and pa + PAGE <= pa0 + filesz, ph
                found = True
                cut = pa - pa0
                rest = filesz - cut - PAGE
                if cut:
                    out.append([ptype, flags, off, va, pa0, cut, cut, align])
                if rest:
                    out.append([ptype, flags, off + cut + PAGE, va + cut + PAGE if va else 0,
                                pa + PAGE, rest, rest, align])
            assert found, f"{pa:#x} is in no PT_LOAD segment"
            phdrs = out
        f.seek(0, 2)
        end = f.tell()
        f.write(b"\0" * (-end % 8))
        new_off = end + (-end % 8)
        f.write(b"".join(struct.pack(ph_fmt, *ph) for ph in phdrs))
        f.seek(32)
        f.write(struct.pack("<Q", new_off))
        f.seek(54)
        f.write(struct.pack("<HH", struct.calcsize(ph_fmt), len(phdrs)))


def test_hand_filtered_core_not_in_dump(guest5: Guest, wl: Workload, tmp_path: Any) -> None:
    """A core without the workload's PTE table and without a struct page:
    every command answers, and says per page or per field what the dump lacks."""
    import os
    import subprocess
    import sys

    from drgn.helpers.linux.mm import pfn_to_page

    from livewalk.tools.vtop import vtop_kernel

    g = guest5
    prog = g.host_program()
    mm = _mm(g, wl.pid)
    start, end = wl.base, wl.base + MB2
    table = _pte_table(mm, start)
    (entry,) = wl.kernel_pagemap(start, start + PAGE)
    pfn = entry & ((1 << 55) - 1)
    page = int(pfn_to_page(prog, pfn).value_())
    struct_page = vtop_kernel(prog, page).phys
    assert struct_page is not None
    core = str(tmp_path / "vmcore")
    g.dump_vmcore(core)
    _exclude_pages(core, [table, struct_page & ~(PAGE - 1)])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

    def livewalk(*args: str) -> str:
        p = subprocess.run([sys.executable, "-m", "livewalk", "-c", core, "-s", os.path.dirname(g.vmlinux), *args],
                           capture_output=True, cwd=root, timeout=900)
        err = p.stderr.decode(errors="replace")
        assert "Traceback" not in err and p.returncode == 0, (args, err[-3000:])
        print(f"\n[hand-filtered core] {' '.join(args)}: stderr {err.strip()!r}")
        return p.stdout.decode(errors="replace")

    # vm -p: the table's 512 pages are "(not in dump)", one line each; the other pages answered
    out = livewalk("vm", "-p", str(wl.pid))
    pages = {int(x.split()[0], 16): x.split(None, 1)[1] for x in out.splitlines()
             if len(x.split()) >= 2 and re.fullmatch(r"[0-9a-f]+", x.split()[0]) and int(x.split()[0], 16) < 1 << 47}
    assert all(pages[a] == "(not in dump)" for a in range(start, end, PAGE) if a in pages)
    assert sum(1 for a in range(start, end, PAGE) if a in pages) > 0
    assert sum(1 for v in pages.values() if v == "(not in dump)") == sum(1 for a in range(start, end, PAGE) if a in pages)
    assert sum(1 for v in pages.values() if re.fullmatch(r"[0-9a-f]+", v)) > 100
    assert f"# not in dump {start:#x}-" in out
    # vtop: the translation says (not in dump) and why
    out = livewalk("vtop", "--pid", str(wl.pid), f"{start:x}")
    assert "(not in dump)" in out and "is not in the dump (page excluded)" in out, out
    # pagemap: the range is marked; its entries read as holes
    out = livewalk("pagemap", "--pid", str(wl.pid), "--range", f"{start:x}:{end:x}")
    assert f"# not in dump {start:#x}-{end:#x}" in out, out
    # smaps --json answers: the missing table's range and the fields that
    # the missing struct pages (64 to a page, other mapped pages' too) would
    # decide are "not in dump"; nothing is a "read error"
    import json

    sm = livewalk("smaps", "--pid", str(wl.pid), "--json")
    json.loads(sm)
    assert "read error" not in sm, sm[-3000:]
    # pfn: the page's state is not in the dump, per field; the search goes on and
    # says where it could not look
    out = livewalk("pfn", f"{pfn:#x}")
    assert "(not in dump: its struct page is not in the dump" in out, out
    assert f"# not in dump {start:#x}-{end:#x}" in out and f"(PID {wl.pid} " in out, out
