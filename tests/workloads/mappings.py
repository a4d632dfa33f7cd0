#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""A process with many kinds of mappings whose page tables then stay still.

Run it (as root in the test VM) and wait for readiness::

    python3 tests/workloads/mappings.py --ready-file /tmp/w.json &

When every region is built, one JSON line is printed on stdout and written
(atomically) to ``--ready-file``::

    {"pid": 1234, "child_pid": 1235,
     "regions": {"thp": [start, end], ...},      # every built region
     "parts":   {"anon": {"written": [s, e], ...}, ...},  # sub-ranges
     "holes":   {"partial_unmap.hole": [s, e], ...},      # known unmapped
     "skipped": {"hugetlb_private": "reason", ...},       # not built
     "files":   {"file_private": "/var/tmp/...", ...}, ...}

``--only LABEL,...`` builds a subset (same addresses as a full run: see
:func:`layout`); ``--no-wait`` exits after reporting. A feature the
machine lacks (no hugetlb pages, no swap, THP off, an old kernel) is
reported under ``skipped`` with the reason instead of failing; the VM test
requires ``skipped`` to be empty. ``tests/workloads/procdump.py`` dumps
the kernel's own view (smaps, pagemap, kpageflags) of a running workload.

After that the process (and its forked child, if any) sleeps in
``pause()`` until killed: no page faults, no allocation, so its page
tables stay still (the kernel may still age accessed bits, and the
EXCLUSIVE state of libc's shared pages follows other processes). The child is
killed with the parent (``PR_SET_PDEATHSIG``); SIGTERM/SIGINT also remove
the files this workload created.

The layout is reproducible: regions are placed with ``MAP_FIXED_NOREPLACE``
from a fixed base address, in a fixed order, each 2 MiB aligned and
separated from the next by an unmapped gap so that no two regions merge
into one VMA. Page contents are deterministic.

Only the standard library is used (ctypes for what :mod:`mmap` lacks); it
runs on Python 3.11 and newer.

Labels (see ``LABELS``) and what each region holds:

- ``softdirty``: written, then ``clear_refs`` 4 for the whole process, then
  the ``redirtied`` part written again (``clean`` part: soft-dirty off).
  Built first, so ``clear_refs`` precedes every other region (the other
  regions' VMAs are newer and thus soft-dirty); ``MADV_DONTFORK``.
- ``cow`` / ``cow_thp``: written before ``fork()``; the child keeps them
  shared (no ``PM_MMAP_EXCLUSIVE`` while it lives). ``hugetlb_shared`` is
  also built before the fork and read by the child, so its page is mapped
  twice (``Shared_Hugetlb``). Everything else is built after the fork and exists
  only in the parent.
- ``anon``: private anonymous 4 KiB pages (``MADV_NOHUGEPAGE``): parts
  ``written``, ``read`` (read faults: zero page) and ``untouched``.
- ``zero``: every page read-faulted only: all map the shared zero page.
- ``file_private``: ``MAP_PRIVATE`` of a file in ``--dir`` (default
  ``/var/tmp``: on a disk file system, unlike the guest's tmpfs ``/tmp``,
  so these are not shmem pages): part ``read``
  (page cache pages) and part ``written`` (CoW: anonymous copies).
- ``file_shared``: ``MAP_SHARED`` of a file, all written, then written
  back (``msync``), so its PTEs are already clean and read-only.
- ``shmem``: ``MAP_SHARED|MAP_ANONYMOUS``: parts ``written``, ``untouched``.
- ``memfd``: ``MAP_SHARED`` of ``memfd_create("livewalk-memfd")``, written.
- ``thp``: ``MADV_HUGEPAGE``, fully written: PMD-mapped THPs (checked in
  the process's own smaps, retried).
- ``thp_zero``: ``MADV_HUGEPAGE``, read faults only: the huge zero page
  (only if ``transparent_hugepage/use_zero_page`` is 1; checked in pagemap).
- ``hugetlb_private`` / ``hugetlb_shared``: ``MAP_PRIVATE`` /
  ``MAP_SHARED`` ``MAP_HUGETLB`` 2 MiB pages, written.
- ``protnone``: written, then ``mprotect(PROT_NONE)`` (protnone PTEs).
- ``protnone_empty``: ``PROT_NONE`` from the start, never touched.
- ``swap``: written, then ``MADV_PAGEOUT`` until every page reads as
  ``PM_SWAP`` in ``/proc/self/pagemap``.
- ``guard``: written, then ``MADV_GUARD_INSTALL`` on part ``guard``
  (Linux 6.13+); parts ``before``/``after`` stay written.
- ``mremap``: written, then moved with ``mremap``; ``holes["mremap.old"]``
  is where it was.
- ``partial_unmap``: written, then the middle ``munmap``-ed: two VMAs,
  parts ``low``/``high``; ``holes["partial_unmap.hole"]``.
- ``mlock``: ``mlock``-ed (populated, ``VM_LOCKED``).
- ``lazyfree``: written, then ``MADV_FREE`` (checked: smaps ``LazyFree``).
- ``thp_pte``: a verified PMD-mapped THP whose first page was then
  ``mprotect``-ed read-only: the PMD is split, the large folio stays, mapped
  by 512 PTEs in two VMAs (parts ``ro`` and ``rw``).
- ``uffd_wp``: userfaultfd write-protect (``UFFD_FEATURE_WP_UNPOPULATED``)
  over the region whose part ``written`` was written first: uffd-wp PTEs
  there, uffd-wp PTE markers on the ``unpopulated`` part. The userfaultfd
  stays open and nobody reads it (the workload never writes there again).
- ``lib``: not built: the first executable file mapping of libc.

``--bench`` builds instead ``bench_4k`` and ``bench_thp`` (``--size-mb``
of populated anonymous memory in total, half 4 KiB pages, half THP) and
``bench_sparse`` (``--sparse-mb`` of ``MAP_NORESERVE`` anonymous memory
with one page written every ``--sparse-stride-kb``).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import signal
import struct
import sys
import time
from collections.abc import Callable, Sequence

# The running kernel's page size (4 KiB, or 16 KiB on arm64's 16k kernel)
# and what one PMD entry maps with it (2 MiB, 32 MiB).
PAGE = os.sysconf("SC_PAGE_SIZE")
PMD_SIZE = PAGE * (PAGE // 8)
BASE = 0x200000000000  # 32 TiB: below the 47-bit limit, far from mmap_base
GAP = PMD_SIZE

PROT_NONE = 0
PROT_READ = 1
PROT_WRITE = 2
PROT_RW = PROT_READ | PROT_WRITE
MAP_SHARED = 0x01
MAP_PRIVATE = 0x02
MAP_FIXED = 0x10
MAP_ANONYMOUS = 0x20
MAP_NORESERVE = 0x4000
MAP_HUGETLB = 0x40000
MAP_FIXED_NOREPLACE = 0x100000
MAP_HUGE_2MB = 21 << 26
MREMAP_MAYMOVE = 1
MREMAP_FIXED = 2
MADV_FREE = 8
MADV_DONTFORK = 10
MADV_HUGEPAGE = 14
MADV_NOHUGEPAGE = 15
MADV_PAGEOUT = 21
MADV_GUARD_INSTALL = 102
PR_SET_PDEATHSIG = 1
SYS_userfaultfd = 282 if os.uname().machine == "aarch64" else 323  # arm64, x86_64
UFFD_USER_MODE_ONLY = 1
UFFD_API = 0xAA
UFFD_FEATURE_WP_UNPOPULATED = 1 << 13
UFFDIO_API = 0xC018AA3F  # _IOWR(0xAA, 0x3F, struct uffdio_api)
UFFDIO_REGISTER = 0xC020AA00  # _IOWR(0xAA, 0x00, struct uffdio_register)
UFFDIO_WRITEPROTECT = 0xC018AA06  # _IOWR(0xAA, 0x06, struct uffdio_writeprotect)
UFFDIO_REGISTER_MODE_WP = 1 << 1
UFFDIO_WRITEPROTECT_MODE_WP = 1 << 0

PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_UFFD_WP = 1 << 57
PM_GUARD_REGION = 1 << 58
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63
PM_PFN_MASK = (1 << 55) - 1

LABELS = (
    "softdirty",
    "cow",
    "cow_thp",
    "anon",
    "zero",
    "file_private",
    "file_shared",
    "shmem",
    "memfd",
    "thp",
    "thp_zero",
    "hugetlb_private",
    "hugetlb_shared",
    "protnone",
    "protnone_empty",
    "swap",
    "guard",
    "mremap",
    "partial_unmap",
    "mlock",
    "lazyfree",
    "thp_pte",
    "uffd_wp",
    "lib",
)
BENCH_LABELS = ("bench_4k", "bench_thp", "bench_sparse")
ALL_LABELS = LABELS + BENCH_LABELS
FORK_LABELS = ("cow", "cow_thp", "hugetlb_shared")

THP_DIR = "/sys/kernel/mm/transparent_hugepage"

# The size of every slot of the layout, in layout order. A slot is reserved
# whether or not its region is built, so every run (any --only subset, any
# machine) puts a region at the same address.
SLOTS: tuple[tuple[str, int], ...] = (
    ("softdirty", 16 * PAGE),
    ("cow", 16 * PAGE),
    ("cow_thp", PMD_SIZE),
    ("anon", 32 * PAGE),
    ("zero", 16 * PAGE),
    ("file_private", 16 * PAGE),
    ("file_shared", 16 * PAGE),
    ("shmem", 16 * PAGE),
    ("memfd", 16 * PAGE),
    ("thp", 2 * PMD_SIZE),
    ("thp_zero", PMD_SIZE),
    ("hugetlb_private", PMD_SIZE),
    ("hugetlb_shared", PMD_SIZE),
    ("protnone", 16 * PAGE),
    ("protnone_empty", 16 * PAGE),
    ("swap", 32 * PAGE),
    ("guard", 16 * PAGE),
    ("mremap.old", 16 * PAGE),
    ("mremap", 16 * PAGE),
    ("partial_unmap", 24 * PAGE),
    ("mlock", 16 * PAGE),
    ("lazyfree", 16 * PAGE),
    ("thp_pte", PMD_SIZE),
    ("uffd_wp", 16 * PAGE),
)


#: Regions that need a newer kernel than the oldest series tested:
#: label -> (major, minor) of the first release that can build it.
SINCE = {
    "guard": (6, 13),  # MADV_GUARD_INSTALL
    "uffd_wp": (6, 4),  # UFFD_FEATURE_WP_UNPOPULATED
}


def unbuildable(release: str) -> set[str]:
    """The labels that kernel *release* (``uname -r``) cannot build."""
    have = tuple(int(x) for x in release.split("-")[0].split(".")[:2])
    return {label for label, since in SINCE.items() if have < since}


def layout(bench_bytes: int = 1 << 30, sparse_bytes: int = 8 << 30) -> dict[str, tuple[int, int]]:
    """The fixed ``label -> (address, length)`` layout.

    Each slot is 2 MiB aligned (``bench_sparse``: 1 GiB) and followed by at
    least a 2 MiB gap.

    >>> hex(layout()["softdirty"][0])
    '0x200000000000'
    """
    slots = list(SLOTS) + [
        ("bench_4k", bench_bytes // 2),
        ("bench_thp", bench_bytes - bench_bytes // 2),
        ("bench_sparse", sparse_bytes),
    ]
    out: dict[str, tuple[int, int]] = {}
    cursor = BASE
    for label, length in slots:
        align = 1 << 30 if label == "bench_sparse" else PMD_SIZE
        a = (cursor + align - 1) & ~(align - 1)
        out[label] = (a, length)
        cursor = a + length + GAP
    return out


class WorkloadError(Exception):
    """A region could not be built; the message is the reason."""


# --- libc ----------------------------------------------------------------

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
)
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.mremap.restype = ctypes.c_void_p
_libc.mremap.argtypes = (
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_void_p,
)
_libc.madvise.restype = ctypes.c_int
_libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_libc.mprotect.restype = ctypes.c_int
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_libc.mlock.restype = ctypes.c_int
_libc.mlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.prctl.restype = ctypes.c_int
_libc.prctl.argtypes = (
    ctypes.c_int,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_ulong,
)
_libc.pause.restype = ctypes.c_int
_libc.syscall.restype = ctypes.c_long
_libc.msync.restype = ctypes.c_int
_libc.msync.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
MS_SYNC = 4
_libc.pause.argtypes = ()

MAP_FAILED = ctypes.c_void_p(-1).value


def _oserror(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


def mmap_at(addr: int, length: int, prot: int, flags: int, fd: int = -1, off: int = 0) -> int:
    """mmap exactly at ``addr`` (``MAP_FIXED_NOREPLACE``)."""
    r = _libc.mmap(addr, length, prot, flags | MAP_FIXED_NOREPLACE, fd, off)
    if r is None or r == MAP_FAILED:
        raise _oserror(f"mmap({addr:#x}, {length:#x})")
    if r != addr:  # kernels before 4.17 treat the flag as a hint
        _libc.munmap(r, length)
        raise OSError(errno.EEXIST, f"mmap({addr:#x}) landed at {r:#x}")
    return addr


def munmap(addr: int, length: int) -> None:
    if _libc.munmap(addr, length) != 0:
        raise _oserror(f"munmap({addr:#x}, {length:#x})")


def madvise(addr: int, length: int, advice: int) -> None:
    if _libc.madvise(addr, length, advice) != 0:
        raise _oserror(f"madvise({addr:#x}, {length:#x}, {advice})")


def mprotect(addr: int, length: int, prot: int) -> None:
    if _libc.mprotect(addr, length, prot) != 0:
        raise _oserror(f"mprotect({addr:#x}, {length:#x}, {prot})")


def write_pages(addr: int, length: int, seed: int) -> None:
    """Write every page of [addr, addr+length); page i gets byte seed+i."""
    for i in range(length // PAGE):
        ctypes.memset(addr + i * PAGE, (seed + i) % 255 + 1, PAGE)


def fill(addr: int, length: int, byte: int) -> None:
    ctypes.memset(addr, byte, length)


def read_pages(addr: int, length: int, stride: int = PAGE) -> int:
    """Read one byte of every page: read faults only. Returns their sum."""
    s = 0
    for a in range(addr, addr + length, stride):
        s += ctypes.c_ubyte.from_address(a).value
    return s


def pagemap(start: int, end: int, pid: str = "self") -> list[int]:
    """The raw /proc/PID/pagemap entries of [start, end)."""
    n = (end - start) // PAGE
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        data = os.pread(fd, 8 * n, (start // PAGE) * 8)
    finally:
        os.close(fd)
    return list(struct.unpack(f"<{len(data) // 8}Q", data))


def smaps_field(start: int, field: str, pid: str = "self") -> int | None:
    """A ``kB`` field of the smaps block of the VMA starting at ``start``."""
    head = f"{start:x}-"
    found = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            key = line.split(" ", 1)[0]
            if not key.endswith(":"):  # a VMA header line
                if found:
                    return None
                found = line.startswith(head)
            elif found and key == field + ":":
                return int(line.split()[1])
    return None


def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def thp_mode() -> str | None:
    """The bracketed word of ``transparent_hugepage/enabled``, or None."""
    s = read_text(f"{THP_DIR}/enabled")
    if s is None or "[" not in s:
        return None
    return s[s.index("[") + 1 : s.index("]")]


# --- the workload --------------------------------------------------------


class Workload:
    def __init__(self, directory: str, bench_bytes: int, sparse_bytes: int) -> None:
        self.layout = layout(bench_bytes, sparse_bytes)
        self.bench_bytes = bench_bytes
        self.sparse_bytes = sparse_bytes
        self.dir = directory
        self.regions: dict[str, list[int]] = {}
        self.parts: dict[str, dict[str, list[int]]] = {}
        self.holes: dict[str, list[int]] = {}
        self.skipped: dict[str, str] = {}
        self.files: dict[str, str] = {}
        self.notes: dict[str, object] = {}
        self.child_pid: int | None = None
        self.child_reads: list[int] = []  # the child read-faults these after fork
        self.fds: list[int] = []

    # layout

    def slot(self, label: str) -> tuple[int, int]:
        """The fixed (address, length) of ``label``."""
        return self.layout[label]

    def anon(self, label: str, prot: int = PROT_RW, flags: int = 0) -> tuple[int, int]:
        a, n = self.slot(label)
        return mmap_at(a, n, prot, MAP_PRIVATE | MAP_ANONYMOUS | flags), n

    def anon4k(self, label: str, prot: int = PROT_RW) -> tuple[int, int]:
        """Anonymous memory that never gets THPs (whatever the THP mode)."""
        a, n = self.anon(label, prot)
        madvise(a, n, MADV_NOHUGEPAGE)
        return a, n

    def add(self, label: str, start: int, end: int, **parts: tuple[int, int]) -> None:
        self.regions[label] = [start, end]
        if parts:
            self.parts[label] = {k: [v[0], v[1]] for k, v in parts.items()}

    def make_file(self, label: str, npages: int) -> int:
        path = os.path.join(self.dir, f"livewalk-workload-{os.getpid()}-{label}.dat")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.files[label] = path
        self.fds.append(fd)
        os.write(fd, b"".join(bytes([i % 251 + 1]) * PAGE for i in range(npages)))
        os.fsync(fd)
        return fd

    # kinds

    def build_softdirty(self) -> None:
        a, n = self.anon4k("softdirty")
        madvise(a, n, MADV_DONTFORK)
        write_pages(a, n, 1)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("4")
        half = a + n // 2
        write_pages(half, n // 2, 100)
        self.add("softdirty", a, a + n, clean=(a, half), redirtied=(half, a + n))

    def build_cow(self) -> None:
        a, n = self.anon4k("cow")
        write_pages(a, n, 2)
        self.add("cow", a, a + n)

    def build_cow_thp(self) -> None:
        a, n = self.thp_region("cow_thp", 3)
        self.add("cow_thp", a, a + n)

    def build_anon(self) -> None:
        a, n = self.anon4k("anon")
        w, r = a + 16 * PAGE, a + 24 * PAGE
        write_pages(a, w - a, 4)
        read_pages(w, r - w)
        self.add("anon", a, a + n, written=(a, w), read=(w, r), untouched=(r, a + n))

    def build_zero(self) -> None:
        a, n = self.anon4k("zero")
        if read_pages(a, n) != 0:
            raise WorkloadError("fresh anonymous memory did not read as zeros")
        self.add("zero", a, a + n)

    def build_file_private(self) -> None:
        a, n = self.slot("file_private")
        fd = self.make_file("file_private", n // PAGE)
        mmap_at(a, n, PROT_RW, MAP_PRIVATE, fd)
        read_pages(a, n)
        w = a + 4 * PAGE
        write_pages(a, w - a, 5)
        self.add("file_private", a, a + n, written=(a, w), read=(w, a + n))

    def build_file_shared(self) -> None:
        a, n = self.slot("file_shared")
        fd = self.make_file("file_shared", n // PAGE)
        mmap_at(a, n, PROT_RW, MAP_SHARED, fd)
        write_pages(a, n, 6)
        # Write back now: writeback cleans and write-protects the PTEs, and
        # would otherwise do so ~30 s later, while tools read them.
        if _libc.msync(a, n, MS_SYNC) != 0:
            raise _oserror("msync")
        self.add("file_shared", a, a + n)

    def build_shmem(self) -> None:
        a, n = self.slot("shmem")
        mmap_at(a, n, PROT_RW, MAP_SHARED | MAP_ANONYMOUS)
        w = a + 8 * PAGE
        write_pages(a, w - a, 7)
        self.add("shmem", a, a + n, written=(a, w), untouched=(w, a + n))

    def build_memfd(self) -> None:
        a, n = self.slot("memfd")
        fd = os.memfd_create("livewalk-memfd")
        self.fds.append(fd)
        os.ftruncate(fd, n)
        mmap_at(a, n, PROT_RW, MAP_SHARED, fd)
        write_pages(a, n, 8)
        self.add("memfd", a, a + n)

    def thp_available(self) -> None:
        mode = thp_mode()
        if mode is None:
            raise WorkloadError("no transparent hugepage support (no sysfs knob)")
        if mode == "never":
            raise WorkloadError("transparent_hugepage/enabled is never")

    def thp_region(self, label: str, byte: int, tries: int = 4) -> tuple[int, int]:
        """A ``MADV_HUGEPAGE`` region, fully written, verified PMD-mapped."""
        self.thp_available()
        got = 0
        for _ in range(tries):
            a, n = self.anon(label)
            madvise(a, n, MADV_HUGEPAGE)
            fill(a, n, byte)
            got = smaps_field(a, "AnonHugePages") or 0
            if got * 1024 == n:
                return a, n
            munmap(a, n)
            time.sleep(0.2)
        raise WorkloadError(
            f"AnonHugePages {got} kB != {n >> 10} kB after {tries} tries (memory fragmented?)"
        )

    def build_thp(self) -> None:
        a, n = self.thp_region("thp", 9)
        self.add("thp", a, a + n)

    def build_thp_zero(self) -> None:
        self.thp_available()
        if read_text(f"{THP_DIR}/use_zero_page") != "1":
            raise WorkloadError("transparent_hugepage/use_zero_page is not 1")
        a, n = self.anon("thp_zero")
        madvise(a, n, MADV_HUGEPAGE)
        read_pages(a, n)
        ents = pagemap(a, a + n)
        want = PM_PRESENT | PM_FILE  # the huge zero folio is not anonymous
        if not all(e & want == want for e in ents):
            munmap(a, n)
            raise WorkloadError("read faults did not map the huge zero page")
        self.add("thp_zero", a, a + n)

    def hugetlb(self, label: str, flags: int) -> None:
        a, n = self.slot(label)
        try:
            mmap_at(a, n, PROT_RW, flags | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB)
        except OSError as e:
            free = None
            for line in (read_text("/proc/meminfo") or "").splitlines():
                if line.startswith("HugePages_Free:"):
                    free = line.split()[1]
            raise WorkloadError(f"MAP_HUGETLB failed ({e}); HugePages_Free={free}") from e
        fill(a, n, 10)
        self.add(label, a, a + n)

    def build_hugetlb_private(self) -> None:
        self.hugetlb("hugetlb_private", MAP_PRIVATE)

    def build_hugetlb_shared(self) -> None:
        self.hugetlb("hugetlb_shared", MAP_SHARED)
        self.child_reads.append(self.regions["hugetlb_shared"][0])

    def build_protnone(self) -> None:
        a, n = self.anon4k("protnone")
        write_pages(a, n, 11)
        mprotect(a, n, PROT_NONE)
        self.add("protnone", a, a + n)

    def build_protnone_empty(self) -> None:
        a, n = self.anon4k("protnone_empty", PROT_NONE)
        self.add("protnone_empty", a, a + n)

    def build_swap(self) -> None:
        swaps = (read_text("/proc/swaps") or "").splitlines()[1:]
        if not swaps:
            raise WorkloadError("no swap device (/proc/swaps is empty)")
        a, n = self.anon4k("swap")
        write_pages(a, n, 12)
        ents: list[int] = []
        for _ in range(8):
            madvise(a, n, MADV_PAGEOUT)
            ents = pagemap(a, a + n)
            if all(e & PM_SWAP for e in ents):
                self.add("swap", a, a + n)
                return
            time.sleep(0.25)
        munmap(a, n)
        nswap = sum(1 for e in ents if e & PM_SWAP)
        raise WorkloadError(f"MADV_PAGEOUT swapped {nswap}/{n // PAGE} pages after 8 tries")

    def build_guard(self) -> None:
        a, n = self.anon4k("guard")
        write_pages(a, n, 13)
        g0, g1 = a + 4 * PAGE, a + 8 * PAGE
        try:
            madvise(g0, g1 - g0, MADV_GUARD_INSTALL)
        except OSError as e:
            munmap(a, n)
            since = ".".join(map(str, SINCE["guard"]))
            raise WorkloadError(f"MADV_GUARD_INSTALL failed ({e}); needs Linux {since}+") from e
        self.add("guard", a, a + n, before=(a, g0), guard=(g0, g1), after=(g1, a + n))

    def build_mremap(self) -> None:
        old, n = self.anon4k("mremap.old")
        write_pages(old, n, 14)
        new, _ = self.slot("mremap")
        r = _libc.mremap(old, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, new)
        if r is None or r == MAP_FAILED or r != new:
            e = _oserror("mremap")
            munmap(old, n)
            raise WorkloadError(str(e))
        self.holes["mremap.old"] = [old, old + n]
        self.add("mremap", new, new + n)

    def build_partial_unmap(self) -> None:
        a, n = self.anon4k("partial_unmap")
        write_pages(a, n, 15)
        h0, h1 = a + 8 * PAGE, a + 16 * PAGE
        munmap(h0, h1 - h0)
        self.holes["partial_unmap.hole"] = [h0, h1]
        self.add("partial_unmap", a, a + n, low=(a, h0), high=(h1, a + n))

    def build_mlock(self) -> None:
        a, n = self.anon4k("mlock")
        write_pages(a, n, 16)
        if _libc.mlock(a, n) != 0:
            e = _oserror("mlock")
            munmap(a, n)
            raise WorkloadError(str(e))
        self.add("mlock", a, a + n)

    def build_lazyfree(self) -> None:
        a, n = self.anon4k("lazyfree")
        write_pages(a, n, 17)
        # MADV_FREE only marks folios that are on an LRU list (new ones wait
        # in the per-CPU lru_add batch until a drain) and queues them on the
        # per-CPU lazyfree batch, which clears PG_swapbacked when drained.
        # MADV_FREE drains the local CPU's batches first; the whole build
        # runs on one CPU (see build()), so a second call finishes the job.
        got = None
        for _ in range(4):
            madvise(a, n, MADV_FREE)
            madvise(a, n, MADV_FREE)
            got = smaps_field(a, "LazyFree")
            if got == n >> 10:
                break
            time.sleep(0.1)
        if got != n >> 10:
            munmap(a, n)
            raise WorkloadError(f"LazyFree {got} kB != {n >> 10} kB after MADV_FREE")
        self.add("lazyfree", a, a + n)

    def build_thp_pte(self) -> None:
        a, n = self.thp_region("thp_pte", 19)
        mprotect(a, PAGE, PROT_READ)  # splits the PMD, not the folio
        got = smaps_field(a + PAGE, "AnonHugePages")
        if got != 0:
            raise WorkloadError(f"THP still PMD-mapped after mprotect (AnonHugePages {got} kB)")
        self.add("thp_pte", a, a + n, ro=(a, a + PAGE), rw=(a + PAGE, a + n))

    def build_uffd_wp(self) -> None:
        a, n = self.anon4k("uffd_wp")
        w = a + n // 2
        write_pages(a, w - a, 20)
        fd = _libc.syscall(SYS_userfaultfd, os.O_CLOEXEC | os.O_NONBLOCK | UFFD_USER_MODE_ONLY)
        if fd < 0:
            e = _oserror("userfaultfd")
            munmap(a, n)
            raise WorkloadError(str(e))
        self.fds.append(fd)
        try:
            api = bytearray(struct.pack("<QQQ", UFFD_API, UFFD_FEATURE_WP_UNPOPULATED, 0))
            fcntl.ioctl(fd, UFFDIO_API, api, True)
            reg = bytearray(struct.pack("<QQQQ", a, n, UFFDIO_REGISTER_MODE_WP, 0))
            fcntl.ioctl(fd, UFFDIO_REGISTER, reg, True)
            wp = bytearray(struct.pack("<QQQ", a, n, UFFDIO_WRITEPROTECT_MODE_WP))
            fcntl.ioctl(fd, UFFDIO_WRITEPROTECT, wp, True)
        except OSError as e:
            munmap(a, n)
            raise WorkloadError(f"userfaultfd write-protect failed: {e}") from e
        self.add("uffd_wp", a, a + n, written=(a, w), unpopulated=(w, a + n))

    def build_lib(self) -> None:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split()
                if len(fields) < 6 or "x" not in fields[1]:
                    continue
                name = os.path.basename(fields[5])
                if name.startswith("libc.so") or name.startswith("libc-"):
                    s, e = (int(x, 16) for x in fields[0].split("-"))
                    self.add("lib", s, e)
                    self.files["lib"] = fields[5]
                    return
        raise WorkloadError("no executable libc mapping in /proc/self/maps")

    # bench

    def build_bench_4k(self) -> None:
        a, n = self.anon4k("bench_4k")
        fill(a, n, 0x4B)
        self.add("bench_4k", a, a + n)

    def build_bench_thp(self) -> None:
        self.thp_available()
        a, n = self.anon("bench_thp")
        madvise(a, n, MADV_HUGEPAGE)
        fill(a, n, 0x54)
        self.notes["bench_thp_anon_huge_kb"] = smaps_field(a, "AnonHugePages")
        self.add("bench_thp", a, a + n)

    def build_bench_sparse(self) -> None:
        a, n = self.anon("bench_sparse", flags=MAP_NORESERVE)
        madvise(a, n, MADV_NOHUGEPAGE)
        for off in range(0, n, self.sparse_stride):
            ctypes.memset(a + off, 0x53, 1)
        self.add("bench_sparse", a, a + n)

    sparse_stride = 16 << 20

    # fork

    def fork_child(self) -> None:
        parent = os.getpid()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: keep the memory shared, sleep
            try:
                os.close(r)
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's cleanup
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
                if os.getppid() != parent:
                    os._exit(0)
                for a in self.child_reads:  # fork copies no shared-mapping PTEs
                    read_pages(a, PAGE)
                os.write(w, b"k")
                os.close(w)
                while True:
                    _libc.pause()
            finally:
                os._exit(0)
        os.close(w)
        if os.read(r, 1) != b"k":
            raise WorkloadError("forked child died")
        os.close(r)
        self.child_pid = pid

    def report(self) -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "child_pid": self.child_pid,
            "page_size": PAGE,
            "regions": self.regions,
            "parts": self.parts,
            "holes": self.holes,
            "skipped": self.skipped,
            "files": self.files,
            "thp_enabled": thp_mode(),
            "thp_use_zero_page": read_text(f"{THP_DIR}/use_zero_page"),
            "notes": self.notes,
        }

    def cleanup(self) -> None:
        for label, path in self.files.items():
            if label != "lib":
                try:
                    os.unlink(path)
                except OSError:
                    pass


def build(wl: Workload, labels: Sequence[str], log: Callable[[str], None]) -> None:
    """Build the regions in ``labels``, in the canonical order."""
    want = set(labels)
    before_fork: list[str] = [lab for lab in ("softdirty", *FORK_LABELS) if lab in want]
    after_fork = [lab for lab in ALL_LABELS if lab in want and lab not in before_fork]
    # One CPU for the whole build: per-CPU LRU batches then drain where the
    # pages were faulted (MADV_FREE, MADV_PAGEOUT), and runs are repeatable.
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        for lab in before_fork:
            _build_one(wl, lab, log)
        if want & set(FORK_LABELS) and any(lab in wl.regions for lab in FORK_LABELS):
            try:
                wl.fork_child()
            except (WorkloadError, OSError) as e:
                for lab in FORK_LABELS:
                    if lab in wl.regions:
                        del wl.regions[lab]
                        wl.skipped[lab] = f"fork failed: {e}"
        for lab in after_fork:
            _build_one(wl, lab, log)
    finally:
        os.sched_setaffinity(0, cpus)


def _build_one(wl: Workload, label: str, log: Callable[[str], None]) -> None:
    try:
        getattr(wl, f"build_{label}")()
    except (WorkloadError, OSError) as e:
        wl.skipped[label] = str(e)
        log(f"mappings.py: {label} skipped: {e}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--ready-file", help="also write the ready JSON here (atomically)")
    p.add_argument("--only", help="comma-separated labels to build (default: all)")
    p.add_argument("--bench", action="store_true", help="build the benchmark regions instead")
    p.add_argument(
        "--size-mb", type=int, default=1024, help="--bench: populated anonymous MiB (default 1024)"
    )
    p.add_argument(
        "--sparse-mb", type=int, default=8192, help="--bench: sparse mapping MiB (default 8192)"
    )
    p.add_argument(
        "--sparse-stride-kb",
        type=int,
        default=16384,
        help="--bench: one page written every this many KiB of the sparse mapping",
    )
    p.add_argument(
        "--dir",
        default="/var/tmp",
        help="where the mapped files go; not tmpfs, so they are real page-cache "
        "files (default /var/tmp)",
    )
    p.add_argument("--no-wait", action="store_true", help="exit after reporting (for tests)")
    args = p.parse_args(argv)

    if args.only:
        labels = [s.strip() for s in args.only.split(",") if s.strip()]
        bad = [s for s in labels if s not in ALL_LABELS]
        if bad:
            print(f"mappings.py: unknown label(s): {', '.join(bad)}", file=sys.stderr)
            return 2
    else:
        labels = list(BENCH_LABELS if args.bench else LABELS)
    if min(args.size_mb, args.sparse_mb, args.sparse_stride_kb) <= 0:
        print("mappings.py: sizes must be positive", file=sys.stderr)
        return 2

    bench_bytes = max(2 * PMD_SIZE, (args.size_mb << 20) & ~(2 * PMD_SIZE - 1))
    sparse_bytes = max(PAGE, (args.sparse_mb << 20) & ~(PAGE - 1))
    wl = Workload(args.dir, bench_bytes, sparse_bytes)
    wl.sparse_stride = max(PAGE, (args.sparse_stride_kb << 10) & ~(PAGE - 1))

    def on_term(signum: int, frame: object) -> None:
        wl.cleanup()
        os._exit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    build(wl, labels, log)
    line = json.dumps(wl.report(), sort_keys=True)
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(line + "\n")
        os.rename(tmp, args.ready_file)
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if args.no_wait:
        if wl.child_pid:
            os.kill(wl.child_pid, signal.SIGKILL)
            os.waitpid(wl.child_pid, 0)
        wl.cleanup()
        return 0
    while True:  # idle: no faults, no allocation
        _libc.pause()


if __name__ == "__main__":
    sys.exit(main())
