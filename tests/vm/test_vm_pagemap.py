# SPDX-License-Identifier: LGPL-2.1-or-later
"""livewalk's pagemap equals the kernel's ``/proc/PID/pagemap``, byte for byte.

The workload ``tests/workloads/mappings.py`` (anonymous, zero-page, file,
shmem, memfd, THP, huge zero page, hugetlb, PROT_NONE, swapped, guard
regions, mremap, partial munmap, mlock, lazyfree, CoW with a child...) runs
in the test VM. For every VMA of it, the kernel's ``/proc/PID/pagemap`` is
read in the guest and compared with :func:`livewalk.proc.pagemap.pagemap_read`:

- in the guest, with drgn on ``/proc/kcore`` (same process, same moment);
- from the host, with drgn attached to the guest over QMP;
- through the command line (``python3 -m livewalk pagemap --format raw``);

in both paging modes (4 and 5 levels). The expected values are the real
kernel's; nothing of livewalk's is used to compute them.

The only thing that moves while the workload sleeps is the mapcount of
pages it shares with the reading process itself (the python binary, libc):
the kernel is read before and after livewalk, a VMA whose two kernel reads
differ is read again, and a page counts as a mismatch only if livewalk's
entry equals neither kernel read. Such pages are counted and reported.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.workloads.mappings import unbuildable

pytestmark = pytest.mark.vm

PAGE = 4096
PM_PFRAME_MASK = (1 << 55) - 1
PM_MMAP_EXCLUSIVE = 1 << 56
PM_NAMES = (
    (1 << 63, "PRESENT"),
    (1 << 62, "SWAP"),
    (1 << 61, "FILE"),
    (1 << 58, "GUARD_REGION"),
    (1 << 57, "UFFD_WP"),
    (1 << 56, "MMAP_EXCLUSIVE"),
    (1 << 55, "SOFT_DIRTY"),
)
READY_TIMEOUT = 300.0

# Runs in the guest: the kernel's pagemap of every VMA, livewalk's (drgn on
# /proc/kcore, in the same process), the kernel's again; VMAs whose kernel
# view moved are redone. Prints one JSON object.
GUEST_CHECK = r'''
import base64, json, os, sys, time
import drgn
PAGE = os.sysconf("SC_PAGE_SIZE")
from livewalk.task import resolve_mm
from livewalk.proc.pagemap import pagemap_read, pagemap_runs


def maps_of(pid):
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            s, e = (int(x, 16) for x in parts[0].split("-"))
            out.append((s, e, parts[5] if len(parts) > 5 else ""))
    return out


def kernel(pid, maps):
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        return {(s, e): os.pread(fd, (e - s) // PAGE * 8, s // PAGE * 8) for s, e, _ in maps}
    finally:
        os.close(fd)


def main():
    pid = int(sys.argv[1])
    t = time.monotonic()
    prog = drgn.program_from_kernel()
    prog_s = time.monotonic() - t
    mm = resolve_mm(prog, pid)
    maps = maps_of(pid)
    k1 = kernel(pid, maps)
    t = time.monotonic()
    ours = {(s, e): pagemap_read(mm, s, e).tobytes() for s, e, _ in maps}
    ours_s = time.monotonic() - t
    k2 = kernel(pid, maps)
    redone = 0
    for _ in range(3):
        moved = [m for m in maps if k1[m[:2]] != k2[m[:2]]]
        if not moved:
            break
        redone += len(moved)
        k1.update(kernel(pid, moved))
        ours.update({(s, e): pagemap_read(mm, s, e).tobytes() for s, e, _ in moved})
        k2.update(kernel(pid, moved))
    nopfn = {(s, e): pagemap_read(mm, s, e, show_pfn=False).tobytes() for s, e, _ in maps}
    t = time.monotonic()
    runs = pagemap_runs(mm, 0, 1 << 64)
    runs_s = time.monotonic() - t
    b = lambda d: {f"{s:x}-{e:x}": base64.b64encode(d[(s, e)]).decode() for s, e, _ in maps}
    print(json.dumps({
        "maps": maps, "k1": b(k1), "k2": b(k2), "ours": b(ours), "nopfn": b(nopfn),
        "prog_s": prog_s, "ours_s": ours_s, "runs_s": runs_s, "nruns": len(runs),
        "redone": redone,
    }))


main()
'''

# Runs in the guest for the host-side check: warms up, writes the kernel's
# pagemap of every VMA to TAG.k1, waits for TAG.go, writes TAG.k2, waits
# for TAG.end. The process stays alive in between, so the mapcounts of
# pages it shares with the workload are the same while the host reads.
DUMP_SERVER = r'''
import base64, json, os, sys, time
pid, tag = int(sys.argv[1]), sys.argv[2]
PAGE = os.sysconf("SC_PAGE_SIZE")


def dump(path):
    maps = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split()
            s, e = (int(x, 16) for x in parts[0].split("-"))
            maps.append((s, e, parts[5] if len(parts) > 5 else ""))
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    k = {f"{s:x}-{e:x}": base64.b64encode(os.pread(fd, (e - s) // PAGE * 8, s // PAGE * 8)).decode()
         for s, e, _ in maps}
    os.close(fd)
    with open(path + ".tmp", "w") as f:
        json.dump({"maps": maps, "k": k}, f)
    os.rename(path + ".tmp", path)


def wait(path):
    while not os.path.exists(path):
        time.sleep(0.05)


dump(f"/tmp/{tag}.k0")  # warm up every code path used below
for _ in range(3):
    os.path.exists(f"/tmp/{tag}.go")
    time.sleep(0.05)
dump(f"/tmp/{tag}.k0")
dump(f"/tmp/{tag}.k1")
wait(f"/tmp/{tag}.go")
dump(f"/tmp/{tag}.k2")
wait(f"/tmp/{tag}.end")
'''

# Runs in the guest: the kernel's pagemap of the workload's regions, then
# `python3 -m livewalk pagemap --format raw` over the same ranges, then the
# kernel's again.
CLI_CHECK = r'''
import base64, json, os, subprocess, sys
pid = int(sys.argv[1])
ranges = json.loads(sys.argv[2])
PAGE = os.sysconf("SC_PAGE_SIZE")


def kernel():
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        return b"".join(os.pread(fd, (e - s) // PAGE * 8, s // PAGE * 8) for s, e in ranges)
    finally:
        os.close(fd)


k1 = kernel()
args = [sys.executable, "-m", "livewalk", "pagemap", "--pid", str(pid), "--format", "raw"]
for s, e in ranges:
    args += ["--range", f"{s:x}:{e:x}"]
p = subprocess.run(args, capture_output=True)
k2 = kernel()
print(json.dumps({"rc": p.returncode, "stderr": p.stderr.decode(errors="replace")[-2000:],
                  "k1": base64.b64encode(k1).decode(), "k2": base64.b64encode(k2).decode(),
                  "ours": base64.b64encode(p.stdout).decode()}))
'''


# A second workload for what mappings.py does not build: a hugetlb page
# mapped through a PMD table shared with a child (hugetlb_pmd_shared), memory
# above 47 bits (5-level paging), a THP mapped by
# PTEs, KSM-merged pages, userfaultfd write-protection (present, swapped,
# unpopulated markers, shmem, hugetlb), UFFDIO_POISON markers and a
# hardware-poisoned page (MADV_HWPOISON).
EXTRA_WORKLOAD = r'''
import ctypes, fcntl, json, os, signal, struct, sys, time

PAGE = 4096
HPAGE = 2 << 20
BASE = 0x300000000000
PROT_RW = 3
MAP_SHARED, MAP_PRIVATE, MAP_ANON = 0x01, 0x02, 0x20
MAP_HUGETLB, MAP_FIXED_NOREPLACE = 0x40000, 0x100000
MADV_PAGEOUT, MADV_HWPOISON = 21, 100
UFFDIO_API, UFFDIO_REGISTER = 0xC018AA3F, 0xC020AA00
UFFDIO_WRITEPROTECT, UFFDIO_POISON = 0xC018AA06, 0xC020AA08
MODE_MISSING, MODE_WP = 1, 2
F_WP_HUGETLBFS_SHMEM, F_WP_UNPOPULATED, F_POISON = 1 << 12, 1 << 13, 1 << 14

libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.syscall.restype = ctypes.c_long
regions, skipped = {}, {}
slot = [0]


def mapping(name, size, flags):
    addr = BASE + slot[0] * 2 * HPAGE * 2
    slot[0] += 1
    r = libc.mmap(addr, size, PROT_RW, flags | MAP_FIXED_NOREPLACE, -1, 0)
    if r != addr:
        raise OSError(ctypes.get_errno(), f"mmap {name}")
    regions[name] = [addr, addr + size]
    return addr


def pagemap_of(addr):
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(addr // PAGE * 8)
        return struct.unpack("<Q", f.read(8))[0]


uffd = libc.syscall(323, os.O_CLOEXEC | os.O_NONBLOCK)
if uffd < 0:
    print(json.dumps({"pid": os.getpid(), "regions": {}, "skipped": {"all": "no userfaultfd"}}), flush=True)
    sys.exit(0)
features = 0
for want in (F_WP_HUGETLBFS_SHMEM | F_WP_UNPOPULATED | F_POISON, F_WP_UNPOPULATED, 0):
    try:
        buf = bytearray(struct.pack("QQQ", 0xAA, want, 0))
        fcntl.ioctl(uffd, UFFDIO_API, buf)
        features = struct.unpack("QQQ", buf)[1]
        break
    except OSError:
        os.close(uffd)
        uffd = libc.syscall(323, os.O_CLOEXEC | os.O_NONBLOCK)


def register(addr, size, mode):
    fcntl.ioctl(uffd, UFFDIO_REGISTER, bytearray(struct.pack("QQQQ", addr, size, mode, 0)))


def wp(addr, size):
    fcntl.ioctl(uffd, UFFDIO_WRITEPROTECT, bytearray(struct.pack("QQQ", addr, size, 1)))


def build(name, fn):
    try:
        fn(name)
    except OSError as e:
        skipped[name] = str(e)
        regions.pop(name, None)


def wp_present(name):
    a = mapping(name, 16 * PAGE, MAP_PRIVATE | MAP_ANON)
    ctypes.memset(a, 0x5A, 16 * PAGE)
    register(a, 16 * PAGE, MODE_WP)
    wp(a, 8 * PAGE)


def wp_swap(name):
    a = mapping(name, 16 * PAGE, MAP_PRIVATE | MAP_ANON)
    ctypes.memset(a, 0x5B, 16 * PAGE)
    register(a, 16 * PAGE, MODE_WP)
    wp(a, 16 * PAGE)
    for _ in range(20):
        libc.madvise(a, 16 * PAGE, MADV_PAGEOUT)
        if all(pagemap_of(a + i * PAGE) >> 62 & 1 for i in range(16)):
            return
        time.sleep(0.2)
    raise OSError(0, "pages did not swap out")


def wp_unpopulated(name):
    if not features & F_WP_UNPOPULATED:
        raise OSError(0, "no UFFD_FEATURE_WP_UNPOPULATED")
    a = mapping(name, 16 * PAGE, MAP_PRIVATE | MAP_ANON)
    ctypes.memset(a, 0x5C, 4 * PAGE)
    register(a, 16 * PAGE, MODE_WP)
    wp(a, 16 * PAGE)


def poison(name):
    if not features & F_POISON:
        raise OSError(0, "no UFFD_FEATURE_POISON")
    a = mapping(name, 16 * PAGE, MAP_PRIVATE | MAP_ANON)
    ctypes.memset(a, 0x5D, 4 * PAGE)
    register(a, 16 * PAGE, MODE_MISSING)
    fcntl.ioctl(uffd, UFFDIO_POISON, bytearray(struct.pack("QQQq", a + 8 * PAGE, 8 * PAGE, 0, 0)))


def shmem_wp(name):
    if not features & F_WP_HUGETLBFS_SHMEM:
        raise OSError(0, "no UFFD_FEATURE_WP_HUGETLBFS_SHMEM")
    a = mapping(name, 16 * PAGE, MAP_SHARED | MAP_ANON)
    ctypes.memset(a, 0x5E, 4 * PAGE)
    register(a, 16 * PAGE, MODE_WP)
    wp(a, 16 * PAGE)


def hugetlb_wp(name):
    if not features & F_WP_HUGETLBFS_SHMEM:
        raise OSError(0, "no UFFD_FEATURE_WP_HUGETLBFS_SHMEM")
    a = mapping(name, 2 * HPAGE, MAP_PRIVATE | MAP_ANON | MAP_HUGETLB)
    ctypes.memset(a, 0x5F, HPAGE)
    register(a, 2 * HPAGE, MODE_WP)
    wp(a, 2 * HPAGE)


def hwpoison(name):
    # MADV_HWPOISON also sends this process SIGBUS (kill_procs); survive it.
    signal.signal(signal.SIGBUS, lambda signum, frame: None)
    a = mapping(name, 16 * PAGE, MAP_PRIVATE | MAP_ANON)
    ctypes.memset(a, 0x60, 16 * PAGE)
    if libc.madvise(a + 4 * PAGE, PAGE, MADV_HWPOISON) != 0:
        raise OSError(ctypes.get_errno(), "MADV_HWPOISON")


def thp_pte_mapped(name):
    # A THP whose PMD mapping is split by mprotect on part of it: a large
    # folio mapped by PTEs (entire mapcount 0, per-page mapcounts).
    a = mapping(name, 2 * HPAGE, MAP_PRIVATE | MAP_ANON)
    t = (a + HPAGE - 1) & ~(HPAGE - 1)
    libc.madvise(t, HPAGE, 14)  # MADV_HUGEPAGE
    ctypes.memset(t, 0x61, HPAGE)
    if libc.mprotect(ctypes.c_void_p(t + 64 * PAGE), ctypes.c_size_t(8 * PAGE), 1) != 0:
        raise OSError(ctypes.get_errno(), "mprotect")


def ksm(name):
    # Identical pages merged by KSM: anonymous (KSM) folios mapped many times.
    a = mapping(name, 16 * PAGE, MAP_PRIVATE | MAP_ANON)
    ctypes.memset(a, 0x62, 16 * PAGE)
    if libc.madvise(a, 16 * PAGE, 12) != 0:  # MADV_MERGEABLE
        raise OSError(ctypes.get_errno(), "MADV_MERGEABLE")
    with open("/sys/kernel/mm/ksm/run", "w") as f:
        f.write("1")
    try:
        for _ in range(300):
            if not pagemap_of(a) >> 56 & 1 and pagemap_of(a + PAGE) & ((1 << 55) - 1) == pagemap_of(a) & ((1 << 55) - 1):
                return
            time.sleep(0.1)
        raise OSError(0, "KSM did not merge")
    finally:
        with open("/sys/kernel/mm/ksm/run", "w") as f:
            f.write("0")


def hugetlb_pmd_shared(name):
    # A PUD-aligned 1 GiB shared hugetlb mapping whose PMD table a forked
    # child shares (huge_pmd_share on the child's fault): the parent's page
    # is mapped once by rmap but through a shared table.
    with open("/proc/sys/vm/nr_hugepages") as f:
        have = int(f.read())
    with open("/proc/sys/vm/nr_hugepages", "w") as f:
        f.write(str(have + 4))
    a = 0x340000000000
    size = 1 << 30
    r = libc.mmap(a, size, PROT_RW, MAP_SHARED | MAP_ANON | MAP_HUGETLB | 0x4000 | MAP_FIXED_NOREPLACE, -1, 0)
    if r != a:
        raise OSError(ctypes.get_errno(), "mmap 1 GiB hugetlb")
    regions[name] = [a, a + size]
    ctypes.memset(a, 0x64, 2 * HPAGE)
    rd, wr = os.pipe()
    child = os.fork()
    if child == 0:
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        ctypes.string_at(a, 1)
        ctypes.string_at(a + HPAGE, 1)
        os.write(wr, b"x")
        while True:
            libc.pause()
    os.read(rd, 1)
    children.append(child)


children = []


def high(name):
    # Above 47 bits (LA57 only): a PGD index past 255 and a real P4D level.
    a = 1 << 52
    r = libc.mmap(a, 16 * PAGE, PROT_RW, MAP_PRIVATE | MAP_ANON | MAP_FIXED_NOREPLACE, -1, 0)
    if r != a:
        raise OSError(ctypes.get_errno(), "no address space above 47 bits")
    regions[name] = [a, a + 16 * PAGE]
    ctypes.memset(a + 4 * PAGE, 0x63, 8 * PAGE)


for name, fn in (("hugetlb_pmd_shared", hugetlb_pmd_shared), ("high", high), ("thp_pte_mapped", thp_pte_mapped), ("ksm", ksm), ("wp_present", wp_present), ("wp_swap", wp_swap), ("wp_unpopulated", wp_unpopulated),
                 ("poison", poison), ("shmem_wp", shmem_wp), ("hugetlb_wp", hugetlb_wp),
                 ("hwpoison", hwpoison)):
    build(name, fn)
print(json.dumps({"pid": os.getpid(), "children": children, "features": features, "regions": regions, "skipped": skipped}), flush=True)
while True:
    libc.pause()
'''


def _u64s(b64: str) -> list[int]:
    raw = base64.b64decode(b64)
    assert len(raw) % 8 == 0
    return list(memoryview(raw).cast("Q"))


def flag_names(bits: int) -> str:
    names = [n for b, n in PM_NAMES if bits & b]
    if bits & PM_PFRAME_MASK:
        names.append("frame")
    return "|".join(names) or "-"


def label_of(ready: dict[str, Any], start: int, name: str) -> str:
    for label, (s, e) in ready["regions"].items():
        if s <= start < e:
            return label
    return name or "[anon]"


def compare(
    ready: dict[str, Any],
    maps: list[tuple[int, int, str]],
    k1: dict[str, list[int]],
    k2: dict[str, list[int]],
    ours: dict[str, list[int]],
) -> tuple[list[str], int, int]:
    """
    Compare per page. Returns (mismatch descriptions per VMA, pages whose
    two kernel reads differed, pages compared).

    Outside the workload's own regions, a file page's ``PM_MMAP_EXCLUSIVE``
    moves with every other process that maps the same file (each shell the
    harness starts maps libc, and may be alive at one read and not at the
    next): it is compared without that bit there; every other bit, and
    everything of the workload's own regions, must be the kernel's.
    """
    problems: list[str] = []
    moved = 0
    pages = 0
    own = list(ready["regions"].values())
    for s, e, name in maps:
        key = f"{s:x}-{e:x}"
        a, b, o = k1[key], k2[key], ours[key]
        pages += len(a)
        where = f"{label_of(ready, s, name)} [{s:#x}, {e:#x})"
        if len(o) != len(a):
            problems.append(f"{where}: {len(o)} entries, kernel {len(a)}")
            continue
        shared_file = name.startswith("/") and not any(rs <= s < re_ for rs, re_ in own)
        mask = ~PM_MMAP_EXCLUSIVE if shared_file else ~0
        bad = []
        for i, (x, y, z) in enumerate(zip(a, b, o)):
            if x != y:
                moved += 1
            if z & mask != x & mask and z & mask != y & mask:
                bad.append(i)
        if bad:
            first = ", ".join(
                f"{s + i * ready.get('page_size', PAGE):#x}: kernel {a[i]:#018x} ours {o[i]:#018x} "
                f"(differ: {flag_names(a[i] ^ o[i])})"
                for i in bad[:4]
            )
            problems.append(f"{where}: {len(bad)} of {len(a)} pages differ; {first}")
    return problems, moved, pages


def coverage(ready: dict[str, Any], maps: list[Any], k: dict[str, list[int]]) -> dict[str, int]:
    """How many kernel entries of each flag combination the workload has."""
    out: dict[str, int] = {}
    for s, e, _ in maps:
        for v in k[f"{s:x}-{e:x}"]:
            n = flag_names(v & ~PM_PFRAME_MASK)
            out[n] = out.get(n, 0) + 1
    return out



@pytest.fixture(scope="module")
def pm_workload(fidelity_guest: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The full mappings workload in each fidelity-core guest: (guest, ready JSON)."""
    g = fidelity_guest
    path = "/tmp/livewalk-pagemap-workload.json"
    g.run(f"rm -f {path}", timeout=60)
    spawned = g.spawn(f"python3 tests/workloads/mappings.py --ready-file {path}")
    ready = g.wait_ready_file(path, spawned, READY_TIMEOUT)
    try:
        yield g, ready
    finally:
        g.run(f"kill {ready['pid']}", timeout=60)
        g.run(f"rm -f {path}", timeout=60)


def _report(side: str, g: Any, problems: list[str], moved: int, pages: int, extra: str) -> None:
    print(f"\n[pagemap {side} levels={g.levels}] {pages} pages compared, "
          f"{len(problems)} VMAs with mismatches, {moved} pages moved between kernel reads; {extra}")
    for p in problems:
        print("  MISMATCH", p)


def test_pagemap_guest_kcore(pm_workload: tuple[Any, dict[str, Any]]) -> None:
    g, ready = pm_workload
    pid = ready["pid"]
    g.put("/tmp/livewalk-pagemap-check.py", GUEST_CHECK)
    r = g.run(f"python3 /tmp/livewalk-pagemap-check.py {pid}", timeout=1200)
    assert r.returncode == 0, r.stderr[-4000:]
    d = json.loads(r.stdout)
    maps = [tuple(m) for m in d["maps"]]
    k1 = {k: _u64s(v) for k, v in d["k1"].items()}
    k2 = {k: _u64s(v) for k, v in d["k2"].items()}
    ours = {k: _u64s(v) for k, v in d["ours"].items()}
    problems, moved, pages = compare(ready, maps, k1, k2, ours)
    _report(
        "guest /proc/kcore", g, problems, moved, pages,
        f"drgn program {d['prog_s']:.1f} s, pagemap of all {len(maps)} VMAs {d['ours_s']:.2f} s, "
        f"whole address space as runs {d['runs_s']:.2f} s ({d['nruns']} runs), "
        f"VMAs redone {d['redone']}; kinds {coverage(ready, maps, k1)}",
    )
    assert not problems
    # Without CAP_SYS_ADMIN the kernel zeroes the frame bits and computes
    # every flag the same way (fs/proc/task_mmu.c pagemap_read, show_pfn).
    nopfn = {k: _u64s(v) for k, v in d["nopfn"].items()}
    masked = {k: [v & ~PM_PFRAME_MASK for v in vals] for k, vals in k1.items()}
    masked2 = {k: [v & ~PM_PFRAME_MASK for v in vals] for k, vals in k2.items()}
    problems, _, _ = compare(ready, maps, masked, masked2, nopfn)
    assert not problems, problems
    # The workload really has the kinds of entries this test is about.
    kinds = set(coverage(ready, maps, k1))
    assert any(k.startswith("SWAP") for k in kinds), kinds
    assert any("GUARD_REGION" in k for k in kinds) or "guard" in unbuildable(g.release), kinds
    assert any(k.startswith("PRESENT|FILE") for k in kinds), kinds
    assert any(k.startswith("PRESENT|MMAP_EXCLUSIVE") for k in kinds), kinds
    assert any(k == "SOFT_DIRTY" for k in kinds), kinds


def test_pagemap_host_qmp(pm_workload: tuple[Any, dict[str, Any]]) -> None:
    g, ready = pm_workload
    _host_check(g, ready, "host QMP")


def _host_check(g: Any, ready: dict[str, Any], side: str) -> None:
    """Compare livewalk's pagemap over QMP with the guest kernel's, every VMA."""
    from livewalk.proc.pagemap import pagemap_read, pagemap_runs
    from livewalk.task import resolve_mm

    pid = ready["pid"]
    tag = f"livewalk-pm-{int(time.time() * 1000)}"
    g.put(f"/tmp/{tag}.py", DUMP_SERVER)

    def wait_json(path: str) -> dict[str, Any]:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            r = g.run(f"cat {path} 2>/dev/null", timeout=60)
            if r.returncode == 0 and r.stdout.strip():
                return json.loads(r.stdout)  # type: ignore[no-any-return]
            time.sleep(0.2)
        pytest.fail(f"no {path} from the guest")

    t = time.monotonic()
    prog = g.host_program()
    prog_s = time.monotonic() - t
    mm = resolve_mm(prog, pid)
    g.spawn(f"python3 /tmp/{tag}.py {pid} {tag}")
    try:
        d1 = wait_json(f"/tmp/{tag}.k1")
        maps = [tuple(m) for m in d1["maps"]]
        t = time.monotonic()
        ours = {f"{s:x}-{e:x}": list(pagemap_read(mm, s, e)) for s, e, _ in maps}
        ours_s = time.monotonic() - t
        t = time.monotonic()
        runs = pagemap_runs(mm, 0, 1 << 64)
        runs_s = time.monotonic() - t
        g.run(f"touch /tmp/{tag}.go", timeout=60)
        d2 = wait_json(f"/tmp/{tag}.k2")
    finally:
        g.run(f"touch /tmp/{tag}.go /tmp/{tag}.end", timeout=60)
    assert [tuple(m) for m in d2["maps"]] == maps, "the workload's VMAs changed"
    k1 = {k: _u64s(v) for k, v in d1["k"].items()}
    k2 = {k: _u64s(v) for k, v in d2["k"].items()}
    problems, moved, pages = compare(ready, maps, k1, k2, ours)
    _report(
        side, g, problems, moved, pages,
        f"drgn program {prog_s:.2f} s, pagemap of all {len(maps)} VMAs {ours_s:.3f} s, "
        f"whole address space as runs {runs_s:.3f} s ({len(runs)} runs)",
    )
    assert not problems
    # Runs over the whole address space expand to the same entries.
    page = ready.get("page_size", PAGE)
    for s, e, _ in maps:
        want = ours[f"{s:x}-{e:x}"]
        got = [
            r.entry((a - r.start) // page)
            for r in runs
            if r.start < e and r.end > s
            for a in range(max(r.start, s), min(r.end, e), page)
        ]
        assert got == want, f"runs of [{s:#x}, {e:#x}) differ from pagemap_read"


def test_pagemap_cli_raw(pm_workload: tuple[Any, dict[str, Any]]) -> None:
    g, ready = pm_workload
    pid = ready["pid"]
    # Not "lib" (libc): the livewalk process maps it too, which changes the
    # mapcount it is reading; the other regions belong to the workload only.
    ranges = sorted(tuple(v) for k, v in ready["regions"].items() if k != "lib")
    g.put("/tmp/livewalk-pagemap-cli.py", CLI_CHECK)
    r = g.run(
        f"python3 /tmp/livewalk-pagemap-cli.py {pid} '{json.dumps(ranges)}'", timeout=1200
    )
    assert r.returncode == 0, r.stderr[-4000:]
    d = json.loads(r.stdout)
    assert d["rc"] == 0, d["stderr"]
    k1, k2, ours = _u64s(d["k1"]), _u64s(d["k2"]), _u64s(d["ours"])
    assert len(ours) == len(k1)
    bad = [i for i, (a, b, o) in enumerate(zip(k1, k2, ours)) if o != a and o != b]
    assert not bad, [(i, hex(k1[i]), hex(ours[i])) for i in bad[:8]]


def _guest_check(g: Any, pid: int) -> dict[str, Any]:
    g.put("/tmp/livewalk-pagemap-check.py", GUEST_CHECK)
    r = g.run(f"python3 /tmp/livewalk-pagemap-check.py {pid}", timeout=1200)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_pagemap_more_kinds_guest_kcore(guest: Any) -> None:
    g = guest
    g.put("/tmp/livewalk-pagemap-extra.py", EXTRA_WORKLOAD)
    spawned = g.spawn("python3 /tmp/livewalk-pagemap-extra.py", ready='"pid"', timeout=300)
    line = [x for x in g.spawn_log(spawned).splitlines() if x.startswith("{")][-1]
    ready = json.loads(line)
    try:
        d = _guest_check(g, ready["pid"])
        _host_check(g, ready, "host QMP, second workload")
    finally:
        g.run(f"kill {ready['pid']}", timeout=60)
    maps = [tuple(m) for m in d["maps"]]
    k1 = {k: _u64s(v) for k, v in d["k1"].items()}
    k2 = {k: _u64s(v) for k, v in d["k2"].items()}
    ours = {k: _u64s(v) for k, v in d["ours"].items()}
    problems, moved, pages = compare(ready, maps, k1, k2, ours)
    _report(
        "guest /proc/kcore, second workload", g, problems, moved, pages,
        f"built {sorted(ready['regions'])}, skipped {ready['skipped']}",
    )
    assert not problems
    # What the kernel shows for the regions that were built.
    built = ready["regions"]

    def entries(label: str) -> list[int]:
        s, e = built[label]
        out: list[int] = []
        for ms, me, _ in maps:
            if ms < e and me > s:
                vals = k1[f"{ms:x}-{me:x}"]
                lo, hi = max(ms, s), min(me, e)
                out += vals[(lo - ms) // PAGE : (hi - ms) // PAGE]
        return out

    uffd, swap, present = 1 << 57, 1 << 62, 1 << 63
    if "wp_present" in built:
        assert any(v & present and v & uffd for v in entries("wp_present"))
    if "wp_swap" in built:
        assert all(v & swap and v & uffd and (v & 31) < 24 for v in entries("wp_swap"))
    if "wp_unpopulated" in built:  # uffd-wp PTE markers: type 31, marker bit 0
        assert any((v & PM_PFRAME_MASK) == 31 | (1 << 5) and v & uffd for v in entries("wp_unpopulated"))
    if "poison" in built:  # poison markers: type 31, marker bit 1, no UFFD_WP
        assert any((v & PM_PFRAME_MASK) == 31 | (2 << 5) and not v & uffd for v in entries("poison"))
    if "hwpoison" in built:  # a hwpoison entry: swap type 24 with the PFN
        assert any(v & swap and (v & 31) == 24 for v in entries("hwpoison"))
    if "hugetlb_wp" in built:
        assert any(v & present and v & uffd for v in entries("hugetlb_wp"))
    if "hugetlb_pmd_shared" in built:
        # mapped once by rmap, but through a table the child shares: not
        # exclusive (pagemap_hugetlb_range checks hugetlb_pmd_shared)
        hp = entries("hugetlb_pmd_shared")
        assert all(v & present and not v & (1 << 56) for v in hp[:1024])
    if g.levels == 5:  # user space above 47 bits: PGD index 256 and up, a real P4D
        assert "high" in built, ready["skipped"]
        assert sum(1 for v in entries("high") if v & present) == 8
    if "thp_pte_mapped" in built:  # written THP: 512 present pages
        assert sum(1 for v in entries("thp_pte_mapped") if v & present) == 512
    if "ksm" in built:  # merged: one PFN mapped 16 times, never exclusive
        ks = entries("ksm")
        assert all(v & present and not v & (1 << 56) for v in ks)
        assert len({v & PM_PFRAME_MASK for v in ks}) == 1


def _smaps_vmas(text: str) -> list[tuple[int, int, set[str], int]]:
    """(start, end, VmFlags, KernelPageSize in bytes) of each VMA of an smaps file."""
    out: list[tuple[int, int, set[str], int]] = []
    start = end = kps = 0
    for line in text.splitlines():
        head = line.split()[0] if line.split() else ""
        if "-" in head and not head.endswith(":"):
            s, e = head.split("-")
            start, end = int(s, 16), int(e, 16)
        elif head == "KernelPageSize:":
            kps = int(line.split()[1]) * 1024
        elif head == "VmFlags:":
            out.append((start, end, set(line.split()[1:]), kps))
    return out


def test_drgn_backend_facts(pm_workload: tuple[Any, dict[str, Any]]) -> None:
    """What the drgn backend reads of the guest agrees with the guest's own view."""
    from drgn.helpers.linux.mm import follow_phys, virt_to_phys
    from drgn.helpers.linux.pid import find_task

    from livewalk.backend.drgn import DrgnBackend
    from livewalk.errors import KernelThreadError, NoSuchProcessError
    from livewalk.task import resolve_mm

    g, ready = pm_workload
    pid = ready["pid"]
    prog = g.host_program()
    b = DrgnBackend.for_program(prog)
    assert DrgnBackend.for_program(prog) is b
    mm = resolve_mm(prog, pid)
    assert resolve_mm(prog, find_task(prog, pid)).value_() == mm.value_()
    assert resolve_mm(prog, mm).value_() == mm.value_()
    with pytest.raises(KernelThreadError):
        resolve_mm(prog, 2)  # kthreadd
    with pytest.raises(NoSuchProcessError):
        resolve_mm(prog, 4194305)  # above PID_MAX_LIMIT
    with pytest.raises(TypeError):
        resolve_mm(prog, "1")

    # Geometry and configuration (include/linux/swap.h numbers the special
    # swap types down from 31: marker, 3 device, 3 migration, hwpoison).
    assert b.paging.levels == g.levels
    cfg = g.run("cat /boot/config-$(uname -r)", timeout=60).stdout
    assert "CONFIG_MIGRATION" in cfg

    def on(name: str) -> bool:
        return f"CONFIG_{name}=y" in cfg

    dev, mig, hw = on("DEVICE_PRIVATE"), on("MIGRATION"), on("MEMORY_FAILURE")
    max_swapfiles = 31 - 3 * dev - 3 * mig - hw
    t = b.paging.swap_types
    assert t.max_swapfiles == max_swapfiles
    assert t.pte_marker == 31
    assert t.hwpoison == (max_swapfiles if hw else None)
    assert t.migration_read == (max_swapfiles + hw if mig else None)
    assert t.device_write == (max_swapfiles + hw + 3 * mig if dev else None)
    assert b.paging.soft_dirty == on("MEM_SOFT_DIRTY")
    assert b.paging.uffd_wp == on("USERFAULTFD")
    # CONFIG_PAGE_TABLE_ISOLATION was renamed MITIGATION_PAGE_TABLE_ISOLATION in 6.9
    assert b.paging.pti == (on("MITIGATION_PAGE_TABLE_ISOLATION") or on("PAGE_TABLE_ISOLATION"))

    # Tables: the mm's pgd through the direct map, swapper_pg_dir through
    # phys_base, both as drgn translates them.
    assert b.pgd_phys(b.mm_pgd(mm)) == virt_to_phys(prog, b.mm_pgd(mm)).value_()
    init = b.init_mm()
    assert b.is_init_mm(init) and not b.is_init_mm(mm)
    kpgd = b.mm_pgd(init)
    assert b.pgd_phys(kpgd) == follow_phys(init, kpgd).value_()
    top = b.read_table(b.pgd_phys(b.mm_pgd(mm)))
    assert len(top) == 512 and any(top[:256])
    assert b.entry_object(0, 0xFFFF888000000000).type_.type_name() == "pte_t *"

    # VMAs: the same ranges as the guest's smaps, flags that agree with its
    # VmFlags, hugetlb page sizes as KernelPageSize.
    smaps = _smaps_vmas(g.run(f"cat /proc/{pid}/smaps", timeout=60).stdout)
    vmas = b.vmas(mm)
    assert [(v.vm_start, v.vm_end) for v in vmas] == [(s, e) for s, e, _, _ in smaps]
    bits = b.vm_flag_bits
    for v, (_, _, vmflags, kps) in zip(vmas, smaps):
        assert ("sd" in vmflags) == bool(v.vm_flags & bits.VM_SOFTDIRTY), hex(v.vm_start)
        assert ("pf" in vmflags) == v.pfnmap, hex(v.vm_start)
        assert ("ht" in vmflags) == v.is_hugetlb, hex(v.vm_start)
        assert ("sh" in vmflags) == bool(v.vm_flags & bits.VM_SHARED), hex(v.vm_start)
        if v.is_hugetlb:
            assert 1 << v.hugetlb_shift == kps
    assert any(v.is_hugetlb for v in vmas) or "hugetlb_private" in ready["skipped"]
    # find_vma(): the first VMA that ends above the address.
    for v in vmas:
        for addr in (v.vm_start, v.vm_end - 1, v.vm_start - 1):
            want = next((w for w in vmas if w.vm_end > addr), None)
            got = b.find_vma(mm, addr)
            assert (got and got.vm_start) == (want and want.vm_start), hex(addr)
    assert b.find_vma(mm, vmas[-1].vm_end) is None
    # mapping_vmas(): the shared file mapping is in its file's i_mmap tree,
    # for a page range that overlaps it and not for one past its end.
    s, _ = ready["regions"]["file_shared"]
    v = b.find_vma(mm, s)
    assert v is not None and v.vm_start == s
    mapping = v.obj.vm_file.f_mapping
    last = v.vm_pgoff + ((v.vm_end - v.vm_start) >> 12) - 1
    assert v.vm_start in [w.vm_start for w in b.mapping_vmas(mapping, v.vm_pgoff, last)]
    assert v.vm_start not in [w.vm_start for w in b.mapping_vmas(mapping, last + 1, last + 10)]
    assert b.vma_mm(v).value_() == mm.value_()
