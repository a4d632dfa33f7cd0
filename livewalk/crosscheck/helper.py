# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Crosscheck helper process
-------------------------

The walk triggers that act on the caller's own address space (mincore,
madvise, mlock, mbind) or that change page tables (clear_refs, MADV_*,
guard regions) are run by this small process on its own dedicated copy of
the kinds of regions a workload has, never on the crosscheck's target.

Run as ``python3 helper.py``; it builds its regions, prints one JSON line
``{"pid": ..., "regions": {name: [start, end], ...}}`` and then executes one
command per input line, answering one JSON line each::

    madvise REGION ADVICE [FIRST_PAGE NPAGES]
    mincore REGION
    mlock REGION | munlock REGION
    mbind REGION NODE
    touch REGION
    exit

Standard library only (ctypes for the system calls). Page-size generic:
regions are sized in base pages, or in PMD-sized pages for the kinds that
map whole PMDs (THP, hugetlb), with the sizes of the running kernel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import sys
import tempfile

BASE = 0x300000000000  # 48 TiB: away from the workload's 32 TiB base and from mmap_base

PROT_NONE, PROT_READ, PROT_WRITE = 0, 1, 2
MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS = 0x01, 0x02, 0x20
MAP_HUGETLB, MAP_FIXED_NOREPLACE = 0x40000, 0x100000
MADV = {
    "WILLNEED": 3, "FREE": 8, "HUGEPAGE": 14, "NOHUGEPAGE": 15, "COLD": 20, "PAGEOUT": 21,
    "GUARD_INSTALL": 102, "GUARD_REMOVE": 103,
}  # fmt: skip
MPOL_BIND = 2
MPOL_MF_MOVE = 1 << 1

#: The system calls that glibc does not wrap, by ``os.uname().machine``: the
#: x86-64 table (``arch/x86/entry/syscalls/syscall_64.tbl``) and the generic
#: one arm64 uses (``include/uapi/asm-generic/unistd.h``).
SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {"mbind": 237, "migrate_pages": 256, "bpf": 321},
    "aarch64": {"mbind": 235, "migrate_pages": 238, "bpf": 280},
}


def syscall_number(name: str) -> int:
    """
    The number of system call *name* on this machine.

    :raises OSError: ``ENOSYS`` on a machine not in :data:`SYSCALL_NUMBERS`
    """
    machine = os.uname().machine
    try:
        return SYSCALL_NUMBERS[machine][name]
    except KeyError:
        raise OSError(errno.ENOSYS, f"no number for system call {name} on {machine}") from None


def page_sizes() -> tuple[int, int]:
    """
    ``(PAGE_SIZE, HPAGE_PMD_SIZE)`` of the running kernel: the THP size it
    reports, else what one PTE table maps (8-byte entries).
    """
    page = os.sysconf("SC_PAGE_SIZE")
    try:
        with open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size") as f:
            return page, int(f.read())
    except (OSError, ValueError):
        return page, page * (page // 8)


PAGE, PMD_SIZE = page_sizes()

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_libc.mlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.munlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
_libc.syscall.restype = ctypes.c_long

#: Region kinds mapped by PMD-sized pages: their sizes are in PMDs.
PMD_KINDS = frozenset(("thp", "hugetlb"))

#: name -> (size, kind); size in pages (in PMDs for :data:`PMD_KINDS`); one
#: VMA each, PMD aligned, with a PMD-sized gap after.
REGIONS: tuple[tuple[str, int, str], ...] = (
    ("anon", 64, "anon"),            # 48 of 64 pages written
    ("thp", 2, "thp"),               # MADV_HUGEPAGE, written: two PMD-mapped THPs
    ("file", 32, "file"),            # MAP_PRIVATE of a file, read
    ("shmem", 32, "shmem"),          # MAP_SHARED|MAP_ANONYMOUS, written
    ("hugetlb", 1, "hugetlb"),       # MAP_HUGETLB page of the default size, written (if available)
    ("protnone", 16, "protnone"),    # written then PROT_NONE
    ("cold", 1024, "anon"),          # MADV_COLD; 3/4 written
    ("pageout", 1024, "anon"),       # MADV_PAGEOUT
    ("pageout_thp", 1, "thp"),       # a THP for MADV_PAGEOUT
    ("swapped", 64, "anon"),         # paged out at start, for MADV_WILLNEED
    ("lazy", 1024, "anon"),          # MADV_FREE
    ("guard", 1024, "guard"),        # guard install/remove; its third quarter written
    ("lock", 1024, "anon"),          # mlock/munlock
    ("policy", 1024, "anon"),        # mbind / migrate_pages
)  # fmt: skip


def _err(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


def _mmap(addr: int, length: int, prot: int, flags: int, fd: int = -1) -> int:
    r = _libc.mmap(addr, length, prot, flags | MAP_FIXED_NOREPLACE, fd, 0)
    if r is None or r == ctypes.c_void_p(-1).value or r != addr:
        raise _err(f"mmap {addr:#x}")
    return addr


def _write(addr: int, npages: int, seed: int) -> None:
    for i in range(npages):
        ctypes.memset(addr + i * PAGE, (seed + i) % 251 + 1, PAGE)


def _read(addr: int, npages: int) -> int:
    return sum(ctypes.c_ubyte.from_address(addr + i * PAGE).value for i in range(npages))


def build(tmpdir: str) -> tuple[dict[str, list[int]], dict[str, str], list[str]]:
    regions: dict[str, list[int]] = {}
    skipped: dict[str, str] = {}
    files: list[str] = []
    addr = BASE
    rw = PROT_READ | PROT_WRITE
    for seed, (name, size, kind) in enumerate(REGIONS):
        pages = size * (PMD_SIZE // PAGE) if kind in PMD_KINDS else size
        length = pages * PAGE
        addr = (addr + PMD_SIZE - 1) & ~(PMD_SIZE - 1)
        try:
            if kind in ("anon", "protnone", "guard"):
                _mmap(addr, length, rw, MAP_PRIVATE | MAP_ANONYMOUS)
                _libc.madvise(addr, length, MADV["NOHUGEPAGE"])
                if kind == "guard":
                    _write(addr + pages // 2 * PAGE, pages // 4, seed)
                else:
                    _write(addr, pages if name in ("swapped", "protnone") else pages * 3 // 4, seed)
                if kind == "protnone":
                    _libc.mprotect(addr, length, PROT_NONE)
                if name == "swapped":
                    _libc.madvise(addr, length, MADV["PAGEOUT"])
            elif kind == "thp":
                _mmap(addr, length, rw, MAP_PRIVATE | MAP_ANONYMOUS)
                _libc.madvise(addr, length, MADV["HUGEPAGE"])
                _write(addr, pages, seed)
            elif kind == "file":
                fd, path = tempfile.mkstemp(prefix="livewalk-xc-", dir=tmpdir)
                files.append(path)
                os.write(fd, bytes([seed]) * length)
                _mmap(addr, length, PROT_READ, MAP_PRIVATE, fd)
                os.close(fd)
                _read(addr, pages)
            elif kind == "shmem":
                _mmap(addr, length, rw, MAP_SHARED | MAP_ANONYMOUS)
                _write(addr, pages, seed)
            elif kind == "hugetlb":
                _mmap(addr, length, rw, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB)
                ctypes.memset(addr, seed, PAGE)
        except OSError as e:
            skipped[name] = str(e)
            addr += length + PMD_SIZE
            continue
        regions[name] = [addr, addr + length]
        addr += length + PMD_SIZE
    return regions, skipped, files


def run(cmd: list[str], regions: dict[str, list[int]]) -> dict[str, object]:
    op = cmd[0]
    start, end = regions[cmd[1]]
    if op == "madvise":
        if len(cmd) > 3:
            start += int(cmd[3]) * PAGE
            end = start + int(cmd[4]) * PAGE
        r = _libc.madvise(start, end - start, MADV[cmd[2]])
    elif op == "mincore":
        vec = ctypes.create_string_buffer((end - start) // PAGE)
        r = _libc.mincore(start, end - start, vec)
    elif op == "mlock":
        r = _libc.mlock(start, end - start)
    elif op == "munlock":
        r = _libc.munlock(start, end - start)
    elif op == "mbind":
        mask = ctypes.c_ulong(1 << int(cmd[2]))
        r = _libc.syscall(ctypes.c_long(syscall_number("mbind")), ctypes.c_ulong(start), ctypes.c_ulong(end - start),
                          ctypes.c_int(MPOL_BIND), ctypes.byref(mask), ctypes.c_ulong(64),
                          ctypes.c_uint(MPOL_MF_MOVE))
    elif op == "touch":
        _write(start, (end - start) // PAGE, 7)
        r = 0
    else:
        raise ValueError(f"unknown command {op!r}")
    return {"ret": int(r), "errno": ctypes.get_errno() if r else 0}


def main() -> int:
    tmpdir = "/var/tmp" if os.access("/var/tmp", os.W_OK) else tempfile.gettempdir()
    regions, skipped, files = build(tmpdir)
    try:
        print(json.dumps({"pid": os.getpid(), "regions": regions, "skipped": skipped}), flush=True)
        for line in sys.stdin:
            cmd = line.split()
            if not cmd:
                continue
            if cmd[0] == "exit":
                break
            try:
                out = run(cmd, regions)
            except (KeyError, ValueError, IndexError, OSError) as e:
                out = {"error": str(e)}
            print(json.dumps(out), flush=True)
    finally:
        for f in files:
            try:
                os.unlink(f)
            except OSError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
