# SPDX-License-Identifier: LGPL-2.1-or-later
"""``livewalk smaps`` equals the kernel's ``/proc/PID/smaps``, field for field.

The workload ``tests/workloads/mappings.py`` (anonymous, file private and
shared, shmem, memfd, THP, huge zero page, hugetlb, PROT_NONE, swapped out
to zram, zero page, CoW-shared after fork, soft-dirty, guard regions,
mremap, partial munmap, mlock, MADV_FREE) runs in the test VM, and livewalk's
smaps of its parent and its forked child are compared with the kernel's
text, VMA by VMA and line by line (the maps header line, every numeric
field, THPeligible, ProtectionKey and VmFlags):

* inside the guest, with drgn on ``/proc/kcore``;
* from the host, with drgn attached over QMP (``Guest.host_program()``);

in both paging modes (the ``guest`` fixture: 4 and 5 levels).

Observer effect. The kernel's Pss/Shared/Private split of a page depends on
how many processes map it *when it is read*: a ``cat`` that reads smaps maps
libc itself and so changes the numbers of every libc VMA. So the kernel's
text is read by a process that exists (with all its mappings made) during
livewalk's computation: in the guest by the drgn process itself, before and
after computing; from the host by a small Python reader started first in
the guest, triggered through files. Both kernel reads must agree (else the
target moved and the round is repeated) and livewalk must equal them.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from livewalk.vm import GuestError

pytestmark = pytest.mark.vm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY_TIMEOUT = 300.0
_FIELD = re.compile(r"^([A-Za-z_]+):\s+(\d+)(?: kB)?$")
_HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


# ---------------------------------------------------------------------------
# Parsing and comparing smaps text
# ---------------------------------------------------------------------------
def parse_smaps(text: str) -> list[dict[str, Any]]:
    """Split smaps text into VMAs: ``{"header", "fields": {name: int}, "vmflags"}``."""
    vmas: list[dict[str, Any]] = []
    for line in text.splitlines():
        if _HEADER.match(line):
            vmas.append({"header": line, "fields": {}, "vmflags": None, "lines": [line]})
            continue
        assert vmas, f"smaps text does not start with a maps line: {line!r}"
        cur = vmas[-1]
        cur["lines"].append(line)
        if line.startswith("VmFlags:"):
            cur["vmflags"] = line
            continue
        m = _FIELD.match(line)
        assert m, f"unparsable smaps line {line!r}"
        cur["fields"][m.group(1)] = int(m.group(2))
    return vmas


def diff_smaps(kernel: str, ours: str) -> list[str]:
    """Every difference between two smaps texts, one precise line each."""
    kv, ov = parse_smaps(kernel), parse_smaps(ours)
    diffs: list[str] = []
    kby = {v["header"].split()[0]: v for v in kv}
    oby = {v["header"].split()[0]: v for v in ov}
    for rng in kby.keys() - oby.keys():
        diffs.append(f"{rng}: VMA only in the kernel's smaps")
    for rng in oby.keys() - kby.keys():
        diffs.append(f"{rng}: VMA only in livewalk's smaps")
    if [v["header"].split()[0] for v in kv] != [v["header"].split()[0] for v in ov]:
        diffs.append("VMA order differs")
    for rng, k in kby.items():
        o = oby.get(rng)
        if o is None:
            continue
        if k["header"] != o["header"]:
            diffs.append(f"{rng}: header kernel {k['header']!r} livewalk {o['header']!r}")
        for name in k["fields"].keys() | o["fields"].keys():
            a, b = k["fields"].get(name), o["fields"].get(name)
            if a != b:
                diffs.append(f"{rng} {name}: kernel {a} livewalk {b}   [{k['header'][73:]}]")
        if k["vmflags"] != o["vmflags"]:
            diffs.append(f"{rng}: kernel {k['vmflags']!r} livewalk {o['vmflags']!r}")
        if [line.split(":")[0] for line in k["lines"][1:]] != [
            line.split(":")[0] for line in o["lines"][1:]
        ]:
            diffs.append(f"{rng}: field order or set differs")
    if not diffs and kernel != ours:
        diffs.append("texts differ in spacing or padding")
    return diffs


def count_fields(text: str) -> int:
    """How many (VMA, field) values a smaps text holds (headers and VmFlags included)."""
    return sum(len(v["fields"]) + 2 for v in parse_smaps(text))


# ---------------------------------------------------------------------------
# Guest side: drgn on /proc/kcore inside the VM
# ---------------------------------------------------------------------------
GUEST_SCRIPT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import drgn
from livewalk.program import open_program
from livewalk.task import resolve_mm
import livewalk.proc.smaps as sm
from livewalk.mm.page import PageReader
pids = [int(p) for p in sys.argv[2].split(",")]
prog = open_program()
out = {}
for pid in pids:
    # Everything this process maps exists before the first read.
    mm = resolve_mm(prog, pid)
    res = None
    for attempt in range(4):
        k1 = open(f"/proc/{pid}/smaps").read()
        t = time.monotonic()
        res = sm.format_smaps(sm.smaps(mm, reader=PageReader(prog)))
        dt = time.monotonic() - t
        k2 = open(f"/proc/{pid}/smaps").read()
        if k1 == k2:
            break
    out[pid] = {"kernel": k1, "kernel_after": k2, "ours": res, "seconds": dt}
json.dump(out, sys.stdout)
"""

#: A reader of /proc/PID/* that lives through livewalk's computation: request
#: file n names the file to read, its answer is out.n.
READER_SCRIPT = r"""
import os, sys, time
pid, d = sys.argv[1], sys.argv[2]
n = 0
while True:
    req = f"{d}/req.{n}"
    if os.path.exists(req):
        with open(req) as f:
            name = f.read()
        with open(f"/proc/{pid}/{name}") as f:
            text = f.read()
        with open(f"{d}/out.{n}.tmp", "w") as f:
            f.write(text)
        os.rename(f"{d}/out.{n}.tmp", f"{d}/out.{n}")
        n += 1
        continue
    if os.path.exists(f"{d}/stop"):
        break
    time.sleep(0.05)
"""


def _copy_livewalk(g: Any, dest: str) -> None:
    """Put the host's current livewalk package in the guest (``/src`` is a boot snapshot)."""
    for top, dirs, files in os.walk(os.path.join(ROOT, "livewalk")):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        rel = os.path.relpath(top, ROOT)
        for name in sorted(files):
            if name.endswith(".py"):
                with open(os.path.join(top, name), "rb") as f:
                    g.put(f"{dest}/{rel}/{name}", f.read())


def guest_side(g: Any, pids: list[int]) -> dict[int, dict[str, Any]]:
    """Run livewalk smaps inside the guest for each pid, with the kernel's reads around it."""
    _copy_livewalk(g, "/tmp/lwsmaps")
    g.put("/tmp/lwsmaps/guest_smaps.py", GUEST_SCRIPT)
    r = g.run(
        f"python3 /tmp/lwsmaps/guest_smaps.py /tmp/lwsmaps {','.join(map(str, pids))}",
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    return {int(k): v for k, v in json.loads(r.stdout).items()}


class HostReader:
    """A Python process in the guest that reads /proc/PID/smaps (or another
    file of the process) when asked via files: the kernel's text comes from a
    process that exists during livewalk's computation."""

    def __init__(self, g: Any, pid: int) -> None:
        self.g = g
        self.dir = f"/tmp/lwsmaps-reader-{pid}"
        g.run(f"rm -rf {self.dir}; mkdir -p {self.dir}", timeout=60)
        g.put(f"{self.dir}/reader.py", READER_SCRIPT)
        self.rpid = g.spawn(f"python3 {self.dir}/reader.py {pid} {self.dir}")
        self.n = 0
        self.read()  # the reader is up and has mapped all it will map

    def read(self, name: str = "smaps") -> str:
        n = self.n
        self.n += 1
        self.g.put(f"{self.dir}/req.{n}", name)
        deadline = time.monotonic() + 120
        while True:
            try:
                return self.g.get(f"{self.dir}/out.{n}").decode("utf-8", "surrogateescape")
            except GuestError:
                if not self.g.alive(self.rpid):
                    raise GuestError(
                        f"the smaps reader ended:\n{self.g.spawn_log(self.rpid)[-2000:]}"
                    ) from None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        self.g.put(f"{self.dir}/stop", "")


def host_side(g: Any, pid: int) -> dict[str, Any]:
    """Run livewalk smaps on the host over QMP, with the kernel's reads around it."""
    import livewalk.proc.smaps as sm
    from livewalk.backend.drgn import DrgnBackend
    from livewalk.mm.page import PageReader
    from livewalk.task import resolve_mm

    prog = g.host_program()
    reader = HostReader(g, pid)
    try:
        for _ in range(4):
            # A live target: drop the backend's VMA cache between rounds.
            DrgnBackend.for_program(prog)._vma_cache.clear()
            mm = resolve_mm(prog, pid)
            k1 = reader.read()
            t = time.monotonic()
            ours = sm.format_smaps(sm.smaps(mm, reader=PageReader(prog)))
            dt = time.monotonic() - t
            k2 = reader.read()
            if k1 == k2:
                break
    finally:
        reader.close()
    return {"kernel": k1, "kernel_after": k2, "ours": ours, "seconds": dt}


# ---------------------------------------------------------------------------
# A second, small workload for what mappings.py does not build: anonymous
# pages swapped out before fork() (swap count 2 in the 7.2 swap table, some
# swapped in again by the parent only), and a memfd whose pages were swapped
# out, mapped private writable (whole: the per-hole smaps_pte_hole path;
# from pgoff 16: shmem_partial_swap_usage), shared from pgoff 40 and
# private read-only (the whole-VMA sums of shmem_swap_usage).
# ---------------------------------------------------------------------------
SWAP_WORKLOAD = r"""
import ctypes, os, sys, time, json, signal
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
PAGE = 4096
PROT_RW = 3
MAP_SHARED, MAP_PRIVATE, MAP_ANON = 1, 2, 0x20
MADV_PAGEOUT = 21

def mmap(n, prot, flags, fd=-1, off=0):
    p = libc.mmap(None, n * PAGE, prot, flags, fd, off)
    if p in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap")
    return p

def pagemap(addr, n):
    with open("/proc/self/pagemap", "rb") as f:
        f.seek(addr // PAGE * 8)
        data = f.read(8 * n)
    return [int.from_bytes(data[i:i+8], "little") for i in range(0, 8 * n, 8)]

def pageout_anon(addr, n):
    for _ in range(50):
        libc.madvise(addr, n * PAGE, MADV_PAGEOUT)
        if all(e >> 62 & 1 for e in pagemap(addr, n)):
            return True
        time.sleep(0.1)
    return False

out = {}
# 1. anonymous pages swapped out before fork: swap count 2 while the child lives
n = 8
a = mmap(n, PROT_RW, MAP_PRIVATE | MAP_ANON)
ctypes.memset(a, 0x5A, n * PAGE)
out["swap_before_fork"] = [a, a + n * PAGE, pageout_anon(a, n)]
# half of them swapped in again in the parent only (after fork): count stays 2
# 2. shmem (memfd) with swapped pages, then private writable mappings of it
fd = os.memfd_create("lw-shswap")
os.ftruncate(fd, 64 * PAGE)
s = mmap(64, PROT_RW, MAP_SHARED, fd)
ctypes.memset(s, 0x33, 64 * PAGE)
for _ in range(50):
    libc.madvise(s, 64 * PAGE, MADV_PAGEOUT)
    time.sleep(0.05)
libc.munmap(s, 64 * PAGE)
# whole file, private writable: per-hole lookups (smaps_shmem_walk_ops)
p1 = mmap(64, PROT_RW, MAP_PRIVATE, fd)
ctypes.memset(p1 + 3 * PAGE, 0x44, PAGE)          # one CoW page
ctypes.string_at(p1 + 10 * PAGE, 1)               # one read fault (swapin or cache)
# part of the file from pgoff 16, private writable
p2 = mmap(16, PROT_RW, MAP_PRIVATE, fd, 16 * PAGE)
# part of the file, shared: shmem_partial_swap_usage without a walk
p3 = mmap(8, PROT_RW, MAP_SHARED, fd, 40 * PAGE)
# read-only private: whole-VMA sum
p4 = mmap(64, 1, MAP_PRIVATE, fd)
out.update(shmem_private=[p1, p1 + 64 * PAGE], shmem_private_part=[p2, p2 + 16 * PAGE],
           shmem_shared_part=[p3, p3 + 8 * PAGE], shmem_private_ro=[p4, p4 + 64 * PAGE])
# THPeligible of file, shmem and memfd VMAs with MADV_HUGEPAGE (THP is in
# madvise mode in the test VM)
MADV_HUGEPAGE, MADV_MERGEABLE = 14, 12
path = "/var/tmp/livewalk-smaps-thp.data"  # on the root filesystem (ext4), not tmpfs
with open(path, "wb") as f:
    f.write(b"\x11" * (1024 * PAGE))
ffd = os.open(path, os.O_RDONLY)
f1 = mmap(1024, 1, MAP_PRIVATE, ffd)
libc.madvise(f1, 1024 * PAGE, MADV_HUGEPAGE)
ctypes.string_at(f1, 1)
os.unlink(path)  # stays mapped, shown " (deleted)"
h1 = mmap(1024, PROT_RW, MAP_SHARED | MAP_ANON)
libc.madvise(h1, 1024 * PAGE, MADV_HUGEPAGE)
ctypes.memset(h1, 1, PAGE)
h2 = mmap(64, PROT_RW, MAP_SHARED, fd)
libc.madvise(h2, 64 * PAGE, MADV_HUGEPAGE)
out.update(thp_file=[f1, f1 + 1024 * PAGE], thp_shmem_anon=[h1, h1 + 1024 * PAGE],
           thp_memfd=[h2, h2 + 64 * PAGE])
# KSM: identical pages merged by ksmd
k = mmap(32, PROT_RW, MAP_PRIVATE | MAP_ANON)
ctypes.memset(k, 0x77, 32 * PAGE)
libc.madvise(k, 32 * PAGE, MADV_MERGEABLE)
# ksmd at full speed: under TCG on a busy host its default pace (100
# pages every 20 ms) can take more than a minute to merge these
for knob, value in (("pages_to_scan", "5000"), ("sleep_millisecs", "1"), ("run", "1")):
    with open(f"/sys/kernel/mm/ksm/{knob}", "w") as f:
        f.write(value)
merged = False
for _ in range(1200):
    with open("/sys/kernel/mm/ksm/pages_sharing") as f:
        if int(f.read()) >= 31:
            merged = True
            break
    time.sleep(0.1)
with open("/sys/kernel/mm/ksm/run", "w") as f:
    f.write("0")
out["ksm"] = [k, k + 32 * PAGE, merged]
r, w = os.pipe()
child = os.fork()
if child == 0:
    libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    os.write(w, b"x")
    while True:
        signal.pause()
os.read(r, 1)
# parent swaps in two of the shared-swap pages (read): they become swapcache-backed
ctypes.string_at(a, 1)
ctypes.string_at(a + PAGE, 1)
out["pid"] = os.getpid()
out["child_pid"] = child
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump(out, f)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    signal.pause()
"""


@pytest.fixture(scope="module")
def smaps_guest(fidelity_guest: Any) -> Any:
    """Each fidelity-core guest (module scope, unlike ``guest``)."""
    return fidelity_guest


@pytest.fixture(scope="module")
def swap_workload(smaps_guest: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
    g = smaps_guest
    path = "/tmp/livewalk-smaps-swap.json"
    g.put("/tmp/livewalk_smaps_swap.py", SWAP_WORKLOAD)
    g.run(f"rm -f {path}", timeout=60)
    pid = g.spawn(f"python3 /tmp/livewalk_smaps_swap.py {path}")
    ready = g.wait_ready_file(path, pid, READY_TIMEOUT)
    try:
        yield g, ready
    finally:
        g.run(f"kill {ready['pid']}", timeout=60)
        g.run(f"rm -f {path}", timeout=60)


# ---------------------------------------------------------------------------
# The workload
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smaps_workload(smaps_guest: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
    g = smaps_guest
    path = "/tmp/livewalk-smaps-workload.json"
    g.run(f"rm -f {path}", timeout=60)
    pid = g.spawn(
        f"python3 tests/workloads/mappings.py --ready-file {path} 2>/tmp/livewalk-smaps-workload.log"
    )
    ready = g.wait_ready_file(path, pid, READY_TIMEOUT)
    try:
        yield g, ready
    finally:
        g.run(f"kill {ready['pid']}", timeout=60)
        g.run(f"rm -f {path}", timeout=60)


def _targets(ready: dict[str, Any]) -> list[int]:
    pids = [int(ready["pid"])]
    if ready.get("child_pid"):
        pids.append(int(ready["child_pid"]))
    return pids


def _report(side: str, g: Any, pid: int, res: dict[str, Any]) -> list[str]:
    assert res["kernel"] == res["kernel_after"], (
        f"{side} pid {pid}: the kernel's smaps changed while livewalk ran (4 rounds)"
    )
    diffs = diff_smaps(res["kernel"], res["ours"])
    n = count_fields(res["kernel"])
    print(
        f"{side} levels={g.levels} pid={pid}: {len(parse_smaps(res['kernel']))} VMAs, "
        f"{n} values, {len(diffs)} differences, livewalk {res['seconds']:.2f} s"
    )
    return diffs


def test_smaps_guest_kcore(smaps_workload: tuple[Any, dict[str, Any]]) -> None:
    """Inside the guest (drgn on /proc/kcore), parent and child."""
    g, ready = smaps_workload
    pids = _targets(ready)
    results = guest_side(g, pids)
    all_diffs = []
    for pid in pids:
        all_diffs += [f"pid {pid}: {d}" for d in _report("guest", g, pid, results[pid])]
    assert not all_diffs, "\n".join(all_diffs)


def test_smaps_host_qmp(smaps_workload: tuple[Any, dict[str, Any]]) -> None:
    """From the host over QMP, parent and child."""
    g, ready = smaps_workload
    all_diffs = []
    for pid in _targets(ready):
        res = host_side(g, pid)
        all_diffs += [f"pid {pid}: {d}" for d in _report("host", g, pid, res)]
    assert not all_diffs, "\n".join(all_diffs)


def test_a_reader_that_ends_is_reported(smaps_workload: tuple[Any, dict[str, Any]]) -> None:
    """The kernel-side reader of the host tests: if it dies (here: its target
    does not exist), the test says so at once, with its output."""
    g, _ = smaps_workload
    pid = int(g.run("sleep 0 & echo $!", check=True).stdout)  # a PID that has ended
    t = time.monotonic()
    with pytest.raises(GuestError, match="the smaps reader ended") as e:
        HostReader(g, pid)
    assert "FileNotFoundError" in str(e.value) and time.monotonic() - t < 60


def test_smaps_covers_the_workload(smaps_workload: tuple[Any, dict[str, Any]]) -> None:
    """The comparison is not vacuous: the kernel's smaps has the kinds of memory we claim."""
    g, ready = smaps_workload
    text = g.run(f"cat /proc/{ready['pid']}/smaps", timeout=60).stdout
    vmas = parse_smaps(text)
    totals: dict[str, int] = {}
    for v in vmas:
        for k, val in v["fields"].items():
            totals[k] = totals.get(k, 0) + val
    for field in ("Rss", "Pss", "Anonymous", "Swap", "SwapPss", "Locked", "Shared_Clean"):
        assert totals.get(field, 0) > 0, f"workload has no {field}"
    for field in ("AnonHugePages", "LazyFree"):
        assert totals.get(field, 0) > 0, f"workload has no {field}"
    names = " ".join(v["header"][73:] for v in vmas)
    # ([vsyscall] is absent: the test kernel boots with vsyscall=none.)
    for name in ("[heap]", "[stack]", "[vdso]", "[vvar]", "memfd:", "(deleted)", "/dev/zero"):
        assert name in names, f"no {name} mapping in the workload"


def _vma_at(text: str, addr: int) -> dict[str, Any]:
    """The VMA of a smaps text that contains *addr*."""
    for v in parse_smaps(text):
        s, e = (int(x, 16) for x in v["header"].split()[0].split("-"))
        if s <= addr < e:
            return v
    raise AssertionError(f"no VMA contains {addr:#x}")


def test_smaps_swap_and_shmem_guest_kcore(swap_workload: tuple[Any, dict[str, Any]]) -> None:
    """Swap counts and shmem swap paths, inside the guest."""
    g, ready = swap_workload
    pids = _targets(ready)
    results = guest_side(g, pids)
    all_diffs = []
    for pid in pids:
        all_diffs += [f"pid {pid}: {d}" for d in _report("guest", g, pid, results[pid])]
    assert not all_diffs, "\n".join(all_diffs)


def test_smaps_swap_and_shmem_host_qmp(swap_workload: tuple[Any, dict[str, Any]]) -> None:
    """Swap counts and shmem swap paths, from the host; and the workload is not vacuous."""
    g, ready = swap_workload
    all_diffs = []
    for pid in _targets(ready):
        res = host_side(g, pid)
        all_diffs += [f"pid {pid}: {d}" for d in _report("host", g, pid, res)]
        text = res["kernel"]
        # The kernel itself shows what this workload is for.
        sw = _vma_at(text, ready["swap_before_fork"][0])["fields"]
        assert sw["Swap"] > 0 and sw["SwapPss"] < sw["Swap"], sw  # swap count 2
        ksm = _vma_at(text, ready["ksm"][0])["fields"]
        # smaps has had a KSM line since 6.7
        major, minor = (int(x) for x in g.release.split(".")[:2])
        if (major, minor) >= (6, 7):
            assert ksm["KSM"] > 0, ksm
        else:
            assert "KSM" not in ksm, ksm
        for label in ("thp_file", "thp_shmem_anon", "thp_memfd"):
            f = _vma_at(text, ready[label][0])["fields"]
            print(f"  {label}: THPeligible {f['THPeligible']}")
        # A regular ext4 file with MADV_HUGEPAGE is eligible on 7.x; on 6.1
        # and 6.12 only with CONFIG_READ_ONLY_THP_FOR_FS (file_thp_enabled()),
        # which Debian's cloud kernels do not set.
        if int(g.release.split(".")[0]) >= 7:
            assert _vma_at(text, ready["thp_file"][0])["fields"]["THPeligible"] == 1
        for label in (
            "shmem_private",
            "shmem_private_part",
            "shmem_shared_part",
            "shmem_private_ro",
        ):
            f = _vma_at(text, ready[label][0])["fields"]
            assert f["Swap"] > 0, (label, f)
    assert not all_diffs, "\n".join(all_diffs)


def test_swap_table_count_bits(swap_workload: tuple[Any, dict[str, Any]]) -> None:
    """
    Swap counts read on real entries: in the child, the pages swapped out
    before fork() and never swapped in are referenced by parent and child
    (count 2), the two the parent swapped in again only by the child
    (count 1), as the kernel's own SwapPss says. On a kernel with swap tables
    (Linux 7.x: mm/swap.h and mm/swap_table.h, count in bits 60-63 on x86_64)
    the words themselves are checked; older kernels keep the counts in
    ``swap_map`` bytes and have no table words.
    """
    from livewalk.arch.x86.pgtable import decode_swap
    from livewalk.backend.drgn import DrgnBackend
    from livewalk.mm.swapfile import SwapTables, swap_table_layout
    from livewalk.task import resolve_mm

    assert swap_table_layout(52) == (60, 4, 15)
    g, ready = swap_workload
    prog = g.host_program()
    backend = DrgnBackend.for_program(prog)
    backend._vma_cache.clear()
    mm = resolve_mm(prog, int(ready["child_pid"]))
    start, end = ready["swap_before_fork"][:2]
    from livewalk.mm.pagewalk import MMWalkOps, walk_page_range

    values: list[int] = []

    def pte_entry(pte: Any, addr: int, next: int, walk: Any) -> int:
        values.append(int(pte.value))
        return 0

    assert walk_page_range(mm, start, end, MMWalkOps(pte_entry=pte_entry)) == 0
    assert len(values) == (end - start) // 4096
    swap = SwapTables(prog)
    counts = []
    words = []
    for v in values:
        ent = decode_swap(v, backend.paging)
        assert ent is not None and ent.kind.name == "SWAP", hex(v)
        counts.append(swap.swapcount(ent.type, ent.offset))
        word = swap.table_word(ent.type, ent.offset)
        assert (word is not None) == swap.has_table, (hex(v), word)
        if word is not None:
            words.append(word)
    assert sorted(counts) == [1, 1] + [2] * (len(counts) - 2), (counts, [hex(w) for w in words])
    # Every word is countable (shadow: bit 0, or cached folio: 0b10) with the
    # count in the top 4 bits and nothing else above bit 59 but the zero flag.
    for w, c in zip(words, counts):
        assert w & 1 or w & 3 == 2, hex(w)
        assert w >> 60 == c, hex(w)


def test_kstate_folio_helpers(smaps_workload: tuple[Any, dict[str, Any]]) -> None:
    """
    mm.page's page_folio/folio_precise_page_mapcount/zone decoding on a real
    PMD-mapped THP (Linux 7.2 tail pages store a compound_info mask, older
    kernels ``head | 1`` in compound_head), checked against drgn's own
    helpers and the kernel's zone spans.
    """
    from drgn.helpers.linux.mm import compound_head, compound_nr, pfn_to_page

    import livewalk.mm.page as kstate
    from livewalk.arch.x86.pgtable import pmd_pfn
    from livewalk.backend.drgn import DrgnBackend
    from livewalk.mm.pagewalk import MMWalkOps, walk_page_range
    from livewalk.task import resolve_mm

    g, ready = smaps_workload
    prog = g.host_program()
    backend = DrgnBackend.for_program(prog)
    backend._vma_cache.clear()
    mm = resolve_mm(prog, int(ready["pid"]))
    start, end = ready["regions"]["thp"]
    pmds: list[int] = []

    def pmd_entry(pmd: Any, addr: int, next: int, walk: Any) -> int:
        pmds.append(int(pmd.value))
        return 0

    walk_page_range(mm, start, end, MMWalkOps(pmd_entry=pmd_entry))
    huge = [v for v in pmds if v & 0x81 == 0x81]  # present PSE
    assert huge, [hex(v) for v in pmds]
    ks = kstate.KernelState.for_program(prog)
    # 64-byte struct page and HVO configured on every image: the mask form
    # wherever the kernel has compound_info (7.1+)
    assert ks.compound_info_has_mask == prog.type("struct page").has_member("compound_info")
    r = kstate.PageReader(prog)
    for v in huge:
        head = pmd_pfn(v, backend.paging)
        head_page = pfn_to_page(prog, head)
        folio = kstate.page_folio(head_page)
        assert folio.value_() == head_page.value_()
        assert kstate.folio_test_large(folio) and kstate.folio_test_anon(folio)
        assert compound_nr(head_page).value_() == 512 == kstate.folio_nr_pages(folio)
        for k in (1, 2, 255, 511):
            tail = pfn_to_page(prog, head + k)
            assert compound_head(tail).value_() == head_page.value_()
            assert kstate.page_folio(tail).value_() == head_page.value_()
            assert compound_nr(tail).value_() == 1
            assert r.page_folio_pfn(head + k) == head
            # Only the parent maps it, by one PMD: _mapcount -1, entire 0.
            assert kstate.folio_precise_page_mapcount(folio, tail) == 1
        # Zone bits of page->flags agree with the zone spans.
        zone = (r.info(head).flags >> ks.zones_pgshift) & ks.zones_mask
        pgdat = prog["node_data"][0]
        z = pgdat.node_zones[zone]
        zs = int(z.zone_start_pfn.value_())
        assert zs <= head < zs + int(z.spanned_pages.value_()), (zone, head)
        assert not kstate.folio_is_zone_device(folio)
