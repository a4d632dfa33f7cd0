# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Bad input across the walker API and the command line (issue 6), host only.

API: every entry point gives the kernel's return code (``mm/pagewalk.c`` of
Linux 7.2: ``-EINVAL`` for ``start >= end``, a NULL mm, a range outside the
VMA, ``install_pte`` through a public entry point or on hugetlb), walks
unaligned and out-of-address-space ranges as the kernel does (no checks
there: C has none), and treats callback misbehaviour as documented (an
exception propagates unchanged, a non-integer return is a ``TypeError``, any
integer, however large, is returned as the walk's result).

CLI: malformed or truncated core files, nonsense ranges, raw entries and
PFNs that are not numbers give one ``livewalk: error:`` line and a non-zero
status (a truncated makedumpfile dump, the wrong vmlinux and a PFN outside
memory need a dump: ``tests/vm/test_vm_kdump.py``, host only with ``-k
on-disk``). Bad input that needs a
kernel (a missing or exited PID, a kernel thread, a mismatching vmlinux, a
truncated kernel core, the wrong struct type) is in
``tests/vm/test_vm_reliability.py``.
"""

from __future__ import annotations

import errno
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from livewalk import (
    MMWalkOps,
    walk_kernel_page_table_range,
    walk_page_mapping,
    walk_page_range,
    walk_page_range_debug,
    walk_page_range_mm_unsafe,
    walk_page_range_vma,
    walk_page_range_vma_unsafe,
    walk_page_vma,
)
from livewalk.backend.synthetic import SyntheticMM

ROOT = Path(__file__).resolve().parents[2]
BASE = 0x7F00_0000_0000
EINVAL = -errno.EINVAL
M64 = (1 << 64) - 1


def _mm(levels: int = 5) -> tuple[SyntheticMM, Any]:
    mm = SyntheticMM(levels=levels)
    vma = mm.add_vma(BASE, BASE + 0x400000)
    mm.map_4k(BASE, pfn=0x1234)
    mm.map_4k(BASE + 0x1000, pfn=0x1235)
    return mm, vma


class Log(MMWalkOps):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, int, int]] = []

    def pte_entry(self, pte: Any, addr: int, next: int, walk: Any) -> int:
        self.seen.append(("pte", addr, next))
        return 0

    def pte_hole(self, addr: int, next: int, depth: int, walk: Any) -> int:
        self.seen.append((f"hole{depth}", addr, next))
        return 0


# -- start >= end: -EINVAL from every entry point that takes a range ----------------


@pytest.mark.parametrize("start,end", [(BASE, BASE), (BASE + 0x2000, BASE + 0x1000), (M64, 0)])
def test_empty_or_reversed_range_is_einval(start: int, end: int) -> None:
    mm, vma = _mm()
    ops = Log()
    assert walk_page_range(mm, start, end, ops) == EINVAL
    assert walk_page_range_mm_unsafe(mm, start, end, ops) == EINVAL
    assert walk_page_range_debug(mm, start, end, ops, None) == EINVAL
    assert walk_kernel_page_table_range(start, end, ops, backend=mm.livewalk_backend) == EINVAL
    assert walk_page_range_vma(vma.obj, start, end, ops) == EINVAL
    assert walk_page_range_vma_unsafe(vma.obj, start, end, ops) == EINVAL
    assert ops.seen == []  # the kernel checks before calling anything


def test_range_outside_the_vma_is_einval() -> None:
    mm, vma = _mm()
    ops = Log()
    assert walk_page_range_vma(vma.obj, BASE - 0x1000, BASE + 0x1000, ops) == EINVAL
    assert walk_page_range_vma(vma.obj, BASE, BASE + 0x401000, ops) == EINVAL
    assert ops.seen == []


def test_null_mm_is_einval() -> None:
    assert walk_page_range(None, BASE, BASE + 0x1000, Log()) == EINVAL


def test_unaligned_range_walks_like_the_kernel() -> None:
    # mm/pagewalk.c has no alignment check: the PTE loop starts at the
    # unaligned address and steps by PAGE_SIZE, so every address keeps the
    # offset; the last step ends at *end* (walk_pte_range_inner stops once
    # addr >= end - PAGE_SIZE).
    mm, _ = _mm()
    ops = Log()
    assert walk_page_range(mm, BASE + 0x123, BASE + 0x2123, ops) == 0
    assert ops.seen == [("pte", BASE + 0x123, BASE + 0x1123), ("pte", BASE + 0x1123, BASE + 0x2123)]


def test_range_beyond_the_address_space() -> None:
    # past TASK_SIZE there is no VMA: one pte_hole(depth -1) for the range
    for levels, top in ((4, 1 << 47), (5, 1 << 56)):
        mm, _ = _mm(levels)
        ops = Log()
        assert walk_page_range(mm, top, top + 0x10000, ops) == 0
        assert ops.seen == [("hole-1", top, top + 0x10000)]
        # the whole 64-bit space: holes around the one VMA, its PTEs inside
        ops = Log()
        assert walk_page_range(mm, 0, M64, ops) == 0
        assert ops.seen[0] == ("hole-1", 0, BASE)
        assert ops.seen[-1] == ("hole-1", BASE + 0x400000, M64)
    # Python ints wider than unsigned long are cut to 64 bits, as C would
    mm, _ = _mm()
    ops = Log()
    assert walk_page_range(mm, (1 << 64) + BASE, (1 << 64) + BASE + 0x1000, ops) == 0
    assert ops.seen == [("pte", BASE, BASE + 0x1000)]


def test_not_an_mm_or_a_vma_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="cannot walk"):
        walk_page_range(object(), BASE, BASE + 0x1000, Log())
    with pytest.raises(TypeError):
        walk_page_vma("not a vma", Log())
    with pytest.raises(TypeError):
        walk_page_mapping(42, 0, 1, Log())


# -- callbacks -------------------------------------------------------------------


class Boom(Exception):
    pass


@pytest.mark.parametrize("cb", ["pte_entry", "pte_hole", "pmd_entry", "pud_entry", "pgd_entry",
                                "test_walk", "pre_vma", "post_vma"])
def test_callback_that_raises_propagates_unchanged(cb: str) -> None:
    mm, _ = _mm()

    def boom(*a: Any) -> int:
        raise Boom(cb)

    with pytest.raises(Boom) as info:
        walk_page_range(mm, BASE - 0x1000, BASE + 0x2000, MMWalkOps(**{cb: boom}))
    assert info.value.args == (cb,)
    # nothing is left half-done: the same mm walks fine afterwards
    ops = Log()
    assert walk_page_range(mm, BASE, BASE + 0x2000, ops) == 0
    assert [s[0] for s in ops.seen] == ["pte", "pte"]


@pytest.mark.parametrize("bad", ["0", 1.0, [], object(), b"\x00"])
@pytest.mark.parametrize("cb", ["pte_entry", "pte_hole", "pmd_entry", "test_walk", "pre_vma"])
def test_callback_returning_a_non_integer_is_a_type_error(cb: str, bad: Any) -> None:
    mm, _ = _mm()
    with pytest.raises(TypeError, match=f"{cb} callback must return an int"):
        walk_page_range(mm, BASE - 0x1000, BASE + 0x2000, MMWalkOps(**{cb: lambda *a: bad}))


@pytest.mark.parametrize("value", [2**31, 2**63, 2**200, -(2**200), -errno.EFAULT, True])
def test_callback_returning_huge_values_stops_the_walk_with_it(value: int) -> None:
    # positive: stop and return it; negative: an errno, returned as is
    mm, _ = _mm()
    calls: list[int] = []

    def cb(pte: Any, addr: int, next: int, walk: Any) -> int:
        calls.append(addr)
        return value

    assert walk_page_range(mm, BASE, BASE + 0x4000, MMWalkOps(pte_entry=cb)) == int(value)
    assert calls == [BASE]


@pytest.mark.parametrize("ret", [None, 0, False, 3, -errno.EIO, "0"])
def test_pte_hole_of_a_none_pmd_returns_as_any_callback(ret: Any) -> None:
    """The none PMDs of a VMA (the PMD loop calls pte_hole itself, without
    _none_entry): 0, None and False go on, a positive value stops the walk
    with it, an errno is returned, anything else is a TypeError."""
    mm = SyntheticMM(levels=5)
    end = BASE + 0x800000
    mm.add_vma(BASE, end)
    mm.map_4k(BASE, pfn=0x1234)  # PMDs 1 to 3 of the VMA are none
    holes: list[tuple[int, int, int]] = []

    def hole(addr: int, next: int, depth: int, walk: Any) -> Any:  # noqa: A002
        holes.append((addr, next, depth))
        return ret

    ops = MMWalkOps(pte_hole=hole, pmd_entry=lambda *a: 0)
    if isinstance(ret, str):
        with pytest.raises(TypeError, match="pte_hole callback must return an int"):
            walk_page_range(mm, BASE, end, ops)
        return
    got = walk_page_range(mm, BASE, end, ops)
    assert got == (int(ret) if ret else 0)
    pmds = [(BASE + k * 0x200000, BASE + (k + 1) * 0x200000, 3) for k in (1, 2, 3)]
    assert holes == (pmds[:1] if ret else pmds)


def test_none_return_counts_as_zero() -> None:
    mm, _ = _mm()
    calls: list[int] = []
    assert walk_page_range(mm, BASE, BASE + 0x3000, MMWalkOps(pte_entry=lambda p, a, n, w: calls.append(a))) == 0
    assert calls == [BASE, BASE + 0x1000, BASE + 0x2000]


def test_bad_walk_lock_is_a_value_error() -> None:
    mm, _ = _mm()
    with pytest.raises(ValueError, match="walk_lock"):
        walk_page_range(mm, BASE, BASE + 0x1000, MMWalkOps(walk_lock=99))


# -- install_pte -------------------------------------------------------------------


def test_install_pte_on_hugetlb_is_einval() -> None:
    # __walk_page_range(): "We do not support hugetlb PTE installation."
    mm = SyntheticMM(levels=5)
    huge = mm.add_vma(BASE, BASE + 0x400000, hugetlb_shift=21)
    calls: list[str] = []
    ops = MMWalkOps(install_pte=lambda *a: calls.append("install") or 0,
                    pre_vma=lambda *a: calls.append("pre_vma") or 0,
                    hugetlb_entry=lambda *a: calls.append("hugetlb") or 0)
    assert walk_page_range_vma_unsafe(huge.obj, BASE, BASE + 0x200000, ops) == EINVAL
    assert walk_page_range_mm_unsafe(mm, BASE, BASE + 0x400000, ops) == EINVAL
    assert calls == []  # refused before pre_vma, as in the kernel


def test_install_pte_through_public_entry_points_is_einval() -> None:
    mm, vma = _mm()
    ops = MMWalkOps(install_pte=lambda *a: 0)
    assert walk_page_range(mm, BASE, BASE + 0x1000, ops) == EINVAL
    assert walk_page_range_vma(vma.obj, BASE, BASE + 0x1000, ops) == EINVAL
    assert walk_page_vma(vma.obj, ops) == EINVAL
    assert walk_page_range_debug(mm, BASE, BASE + 0x1000, ops, None) == EINVAL
    assert walk_kernel_page_table_range(BASE, BASE + 0x1000, ops, backend=mm.livewalk_backend) == EINVAL
    mapping = mm.livewalk_backend.new_mapping()
    assert walk_page_mapping(mapping, 0, 1, ops) == EINVAL


# -- the command line: bad core files and ranges ---------------------------------------


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "livewalk", *args], capture_output=True,
                          text=True, timeout=120, cwd=str(ROOT), env=env)


def one_line(p: subprocess.CompletedProcess[str], code: int | None = None) -> str:
    assert p.returncode != 0 and (code is None or p.returncode == code), (p.returncode, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("livewalk: error: "), p.stderr
    assert "Traceback" not in p.stderr
    return lines[0]


def _elf_core(phdrs: list[tuple[int, int, int, int]], notes: bytes = b"", cut: int | None = None) -> bytes:
    """ELF64 ET_CORE with PT_NOTE + PT_LOAD headers (type, offset, vaddr, filesz)."""
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    n = len(phdrs)
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0, 64, 56, n, 64, 0, 0)
    ph = b""
    for ptype, off, vaddr, size in phdrs:
        ph += struct.pack("<IIQQQQQQ", ptype, 7, off, vaddr, vaddr & 0xFFFFFFFF, size, size, 4096)
    data = hdr + ph + notes
    return data if cut is None else data[:cut]


def _vmcoreinfo_note() -> bytes:
    desc = (b"OSRELEASE=7.2.13-cloud-amd64\nPAGESIZE=4096\nKERNELOFFSET=0\n"
            b"SYMBOL(swapper_pg_dir)=ffffffff82a0a000\nNUMBER(pgtable_l5_enabled)=1\n")
    name = b"VMCOREINFO\x00"
    pad = lambda b: b + bytes(-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name), len(desc), 0) + pad(name) + pad(desc)


@pytest.mark.parametrize("what", ["header-cut", "phdrs-cut", "load-past-eof", "empty"])
def test_truncated_core_files(tmp_path: Path, what: str) -> None:
    note = _vmcoreinfo_note()
    full = _elf_core([(4, 64 + 2 * 56, 0, len(note)), (1, 4096, 0xFFFF888000000000, 1 << 30)], note)
    data = {
        "header-cut": full[:40],
        "phdrs-cut": full[:64 + 30],
        "load-past-eof": full,  # the PT_LOAD segment lies past the end of the file
        "empty": b"",
    }[what]
    core = tmp_path / "vmcore"
    core.write_bytes(data)
    for cmd in (("ptdump",), ("vtop", "--kernel", "ffffffff81000000"), ("pagemap", "--pid", "1"),
                ("smaps", "--pid", "1")):
        line = one_line(run("-c", str(core), *cmd))
        assert "core" in line or "debug" in line or "vmlinux" in line or "kernel" in line, line


@pytest.mark.parametrize("args,needle", [
    (("pagemap", "--pid", "1", "--range", "2000:1000"), "START must be below END"),
    (("pagemap", "--pid", "1", "--range", "1000:1000"), "START must be below END"),
    (("pagemap", "--pid", "1", "--range", "1000"), "START:END"),
    (("pagemap", "--pid", "1", "--range", "1:10000000000000000000"), "larger than 64 bits"),
    (("pagemap", "--pid", "x"), "invalid int"),
    (("vtop", "--kernel", "-5"), ""),
    (("vtop", "--pid", "1", "--kernel", "1000"), "not allowed"),
    (("smaps",), "--pid"),
    (("nonsense",), "invalid choice"),
    # a raw entry or a PFN that is not a number (crash's pte and who-maps-this-page)
    (("pte", "xyz"), "bad entry value 'xyz'"),
    (("pte", "0x12g"), "bad entry value '0x12g'"),
    (("pfn", "12z"), "bad PFN '12z'"),
])
def test_cli_usage_errors(args: tuple[str, ...], needle: str) -> None:
    assert needle in one_line(run(*args), 2)


# -- the read-only guard (the VM test runs every command under it) ---------------------


def test_read_only_guard_fails_loudly_on_writes(tmp_path: Path) -> None:
    import mmap

    from livewalk.readonly import ReadOnlyGuard, ReadOnlyViolation, open_fds_for_writing

    attempts = {
        "open /dev/mem": lambda: open("/dev/mem", "r+b"),
        "os.open /proc/kcore": lambda: os.open("/proc/kcore", os.O_RDWR),
        "debugfs": lambda: open("/sys/kernel/debug/x", "w"),
        "core file": lambda: open(tmp_path / "vmcore", "ab"),
        "subprocess": lambda: subprocess.run(["true"]),
        "os.system": lambda: os.system("true"),
        "ctypes": lambda: __import__("ctypes").CDLL(None),
    }
    (tmp_path / "vmcore").write_bytes(b"\0" * 4096)
    with ReadOnlyGuard(protected=[str(tmp_path / "vmcore")]) as guard:
        for _name, fn in attempts.items():
            with pytest.raises(ReadOnlyViolation):
                fn()
        with open(tmp_path / "vmcore", "rb") as f:
            with pytest.raises(ReadOnlyViolation):
                mmap.mmap(f.fileno(), 4096, access=mmap.ACCESS_WRITE)
            mmap.mmap(f.fileno(), 4096, access=mmap.ACCESS_READ).close()  # reading is fine
        with open("/proc/self/status") as f:  # reading is fine
            f.read()
        with open(tmp_path / "out.txt", "w") as f:  # not a target: allowed
            f.write("x")
    assert len(guard.violations) == len(attempts) + 1, guard.violations
    # outside the guard nothing is checked
    with open(tmp_path / "vmcore", "ab"):
        pass
    assert open_fds_for_writing(extra=[str(tmp_path / "vmcore")]) == []
    with open(tmp_path / "vmcore", "ab"):
        assert len(open_fds_for_writing(extra=[str(tmp_path / "vmcore")])) == 1


def test_every_api_entry_point_is_read_only_on_synthetic_tables() -> None:
    from livewalk import folio_walk_start, walk_kernel_page_table_range_lockless
    from livewalk.consistency import walk_with_retry
    from livewalk.mm.folio_walk import FolioWalk
    from livewalk.readonly import ReadOnlyGuard

    mm, vma = _mm()
    mapping = mm.livewalk_backend.new_mapping()
    fvma = mm.add_vma(BASE + 0x800000, BASE + 0xA00000, mapping=mapping, pgoff=0)
    mm.map_4k(BASE + 0x800000, pfn=0x99)
    ops = Log()
    with ReadOnlyGuard() as guard:
        assert walk_page_range(mm, 0, 1 << 56, ops) == 0
        assert walk_page_range_mm_unsafe(mm, BASE, BASE + 0x1000, MMWalkOps(install_pte=lambda *a: 0)) == 0
        assert walk_page_vma(vma.obj, ops) == 0
        assert walk_page_range_vma(vma.obj, BASE, BASE + 0x2000, ops) == 0
        assert walk_page_range_vma_unsafe(vma.obj, BASE, BASE + 0x2000, ops) == 0
        assert walk_page_mapping(mapping, 0, 16, ops) == 0
        assert walk_page_range_debug(mm, 0, 1 << 56, ops, None) == 0
        be = mm.livewalk_backend
        assert walk_kernel_page_table_range(0, 1 << 56, ops, backend=be) == 0
        assert walk_kernel_page_table_range_lockless(0, 1 << 56, ops, backend=be) == 0
        assert folio_walk_start(FolioWalk(), vma.obj, BASE, 0) is not None
        assert folio_walk_start(FolioWalk(), fvma.obj, BASE + 0x800000, 0) is not None
        assert walk_with_retry(walk_page_range, mm, 0, 1 << 56, ops).ret == 0
    assert guard.violations == []
    assert guard.opens_checked == 0  # the synthetic backend opens nothing
