# SPDX-License-Identifier: LGPL-2.1-or-later
"""The sample workload really builds what its labels say.

``tests/workloads/mappings.py`` is started in the test VM, then
``tests/workloads/procdump.py`` reads the kernel's own view of it in the
guest (``/proc/PID/smaps``, ``/proc/PID/pagemap`` with PFNs, as root, and
``/proc/kpageflags``), and each region is checked against the pagemap and
smaps rules of Linux 7.2 (``fs/proc/task_mmu.c``, ``fs/proc/page.c``; see
``shared/reference/kernel-walker-7.2-errata.md`` §3-4). Other tests compare
livewalk with the kernel on this workload; these assertions make sure the
workload gives them something real to compare.

Nothing here runs livewalk: every expected value is a kernel rule.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    "livewalk_workload_mappings", os.path.join(ROOT, "tests", "workloads", "mappings.py")
)
assert _spec and _spec.loader
mappings = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = mappings
_spec.loader.exec_module(mappings)

pytestmark = pytest.mark.vm

PAGE = 4096
KB = 1024
PM_SOFT_DIRTY = 1 << 55
PM_MMAP_EXCLUSIVE = 1 << 56
PM_UFFD_WP = 1 << 57
PM_GUARD_REGION = 1 << 58
PM_FILE = 1 << 61
PM_SWAP = 1 << 62
PM_PRESENT = 1 << 63
PM_PFN = (1 << 55) - 1

# /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h)
KPF_COMPOUND_HEAD = 15
KPF_ANON = 12
KPF_MMAP = 11
KPF_SWAPBACKED = 14
KPF_HUGE = 17
KPF_THP = 22
KPF_ZERO_PAGE = 24

READY_TIMEOUT = 300.0


class Dump:
    """The procdump output with lookup helpers."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.d = d
        self.ready: dict[str, Any] = d["ready"]
        self.regions: dict[str, list[int]] = self.ready["regions"]

    def pm(self, name: str) -> list[int]:
        return self.d["pagemap"][name]

    def part(self, label: str, part: str) -> list[int]:
        s, e = self.ready["parts"][label][part]
        rs = self.regions[label][0]
        return self.pm(label)[(s - rs) // PAGE : (e - rs) // PAGE]

    def vma(self, label: str, child: bool = False) -> dict[str, Any]:
        s, e = self.regions[label]
        vmas = self.d["child_smaps" if child else "smaps"]
        found = [v for v in vmas if v["start"] == s and v["end"] == e]
        assert len(found) == 1, f"{label}: no VMA [{s:#x}, {e:#x}) in smaps"
        return found[0]

    def smaps(self, label: str, child: bool = False) -> dict[str, int]:
        return self.vma(label, child)["fields"]

    def kpf(self, pfn: int) -> int:
        return self.d["kpageflags"][str(pfn)]


def pfn(e: int) -> int:
    return e & PM_PFN


def flags(e: int) -> int:
    return e & ~PM_PFN


def has(e: int, bit: int) -> bool:
    return bool(e & bit)


def _dump(g: Any, path: str) -> Dump:
    r = g.run(f"python3 tests/workloads/procdump.py {path}", timeout=300)
    assert r.returncode == 0, r.stderr
    return Dump(json.loads(r.stdout))


def _start(g: Any, args: str, path: str) -> tuple[int, dict[str, Any]]:
    g.run(f"rm -f {path}", timeout=60)
    pid = g.spawn(f"python3 tests/workloads/mappings.py {args} --ready-file {path}")
    return pid, g.wait_ready_file(path, pid, READY_TIMEOUT)


@pytest.fixture(scope="module", params=[5, 4], ids=["l5", "l4"])
def workload(request: pytest.FixtureRequest) -> Iterator[tuple[Any, str, Dump]]:
    """The full workload running in each paging mode's session guest;
    yields (guest, ready-file path, dump) and kills it afterwards."""
    g = request.getfixturevalue(f"guest{request.param}")
    path = "/tmp/livewalk-workload-test.json"
    _, ready = _start(g, "", path)
    try:
        yield g, path, _dump(g, path)
    finally:
        g.run(f"kill {ready['pid']}", timeout=60)
        g.run(f"rm -f {path}", timeout=60)


@pytest.fixture(scope="module")
def dump(workload: tuple[Any, str, Dump]) -> Dump:
    return workload[2]


# --- the workload as a whole ---------------------------------------------


def test_everything_built(dump: Dump) -> None:
    """The VM provides every feature: THP (madvise), the huge zero page,
    reserved 2 MiB hugetlb pages, zram swap, guard regions (7.2 > 6.13)."""
    assert dump.ready["skipped"] == {}
    assert set(dump.regions) == set(mappings.LABELS)
    assert dump.ready["thp_enabled"] == "madvise"
    assert dump.ready["thp_use_zero_page"] == "1"
    assert int(dump.d["meminfo"]["HugePages_Total"]) >= 2
    assert dump.d["swaps"] and dump.d["swaps"][0].startswith("/dev/zram")
    assert dump.ready["child_pid"]


def test_layout_is_fixed(dump: Dump) -> None:
    """Regions sit at the fixed layout's addresses, whatever the machine."""
    lay = mappings.layout()
    for label, (s, e) in dump.regions.items():
        if label == "lib":
            continue
        assert (s, e - s) == lay[label], label
    assert dump.ready["holes"]["mremap.old"] == [
        lay["mremap.old"][0],
        sum(lay["mremap.old"]),
    ]


def test_one_vma_per_region(dump: Dump) -> None:
    """No region merged with another: each is exactly one VMA (two for the
    partially unmapped one), and holes have no VMA at all."""
    split = {"partial_unmap": ("low", "high"), "thp_pte": ("ro", "rw")}
    for label in dump.regions:
        if label not in split:
            dump.vma(label)
    r = dump.ready
    spans = [(v["start"], v["end"]) for v in dump.d["smaps"]]
    for label, parts in split.items():
        for part in parts:
            assert tuple(r["parts"][label][part]) in spans, (label, part)
    for name, (s, e) in r["holes"].items():
        assert not [v for v in spans if v[0] < e and s < v[1]], name
        # pagemap of an address outside any VMA is 0 (pagemap_pte_hole)
        assert set(dump.pm(name)) == {0}, name


def test_pagemap_still(workload: tuple[Any, str, Dump]) -> None:
    """The workload is idle: a second read of pagemap is identical (for
    libc's text, up to the EXCLUSIVE bit, which other processes change)."""
    g, path, first = workload
    time.sleep(2)
    second = _dump(g, path)
    a, b = dict(first.d["pagemap"]), dict(second.d["pagemap"])
    # libc's page-cache pages are mapped by every Python process that comes
    # and goes, so their EXCLUSIVE bit follows the guest, not the workload.
    la, lb = a.pop("lib"), b.pop("lib")
    assert a == b
    assert [x & ~PM_MMAP_EXCLUSIVE for x in la] == [x & ~PM_MMAP_EXCLUSIVE for x in lb]


# --- per kind -------------------------------------------------------------


def _zero_pfn(dump: Dump) -> int:
    pfns = {pfn(e) for e in dump.pm("zero")}
    assert len(pfns) == 1, "zero-page entries do not share one PFN"
    return pfns.pop()


def test_zero_page(dump: Dump) -> None:
    """Read faults on private anon map the one zero page: PRESENT, same PFN
    for all, never FILE or EXCLUSIVE (vm_normal_page is NULL), and the
    kernel's kpageflags call that PFN ZERO_PAGE; smaps counts nothing."""
    z = _zero_pfn(dump)
    assert z != 0
    for e in dump.pm("zero") + dump.part("anon", "read"):
        assert flags(e) == PM_PRESENT | PM_SOFT_DIRTY, hex(e)
        assert pfn(e) == z
    kf = dump.kpf(z)
    assert kf & (1 << KPF_ZERO_PAGE) and not kf & (1 << KPF_THP)
    assert dump.smaps("zero")["Rss"] == 0


def test_anon(dump: Dump) -> None:
    written = dump.part("anon", "written")
    assert all(flags(e) == PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY for e in written), [
        hex(e) for e in written
    ]
    pfns = [pfn(e) for e in written]
    assert len(set(pfns)) == len(pfns)
    for p in pfns:
        kf = dump.kpf(p)
        assert kf & (1 << KPF_ANON) and kf & (1 << KPF_MMAP)
        assert not kf & ((1 << KPF_THP) | (1 << KPF_ZERO_PAGE))
    # never touched: only the VMA's soft-dirty flag
    assert set(dump.part("anon", "untouched")) == {PM_SOFT_DIRTY}
    sm = dump.smaps("anon")
    assert sm["Rss"] == 16 * 4 and sm["Anonymous"] == 16 * 4
    assert sm["Private_Dirty"] == 16 * 4 and sm["AnonHugePages"] == 0
    assert "nh" in dump.vma("anon")["vmflags"]


def test_file_private(dump: Dump) -> None:
    for e in dump.part("file_private", "read"):
        assert has(e, PM_PRESENT) and has(e, PM_FILE) and not has(e, PM_SWAP), hex(e)
        assert has(e, PM_MMAP_EXCLUSIVE)  # mapped once
        # a disk file's page cache: neither anonymous nor shmem
        assert not dump.kpf(pfn(e)) & ((1 << KPF_ANON) | (1 << KPF_SWAPBACKED))
    for e in dump.part("file_private", "written"):  # CoW copies are anonymous
        assert flags(e) == PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY, hex(e)
        assert dump.kpf(pfn(e)) & (1 << KPF_ANON)
    v = dump.vma("file_private")
    assert v["name"] == dump.ready["files"]["file_private"]
    assert v["perms"] == "rw-p"
    assert v["fields"]["Rss"] == 16 * 4 and v["fields"]["Anonymous"] == 4 * 4


@pytest.mark.parametrize("label", ["file_shared", "memfd"])
def test_file_shared(dump: Dump, label: str) -> None:
    for e in dump.pm(label):
        assert flags(e) == PM_PRESENT | PM_FILE | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY, hex(e)
        kf = dump.kpf(pfn(e))
        assert not kf & (1 << KPF_ANON)
        # memfd is shmem (swap-backed); the file is on a disk file system
        assert bool(kf & (1 << KPF_SWAPBACKED)) == (label == "memfd")
    v = dump.vma(label)
    assert v["perms"] == "rw-s"
    assert v["fields"]["Rss"] == 16 * 4 and v["fields"]["Anonymous"] == 0
    if label == "memfd":  # shmem pages stay dirty
        assert v["name"].startswith("/memfd:livewalk-memfd")
        assert v["fields"]["Private_Dirty"] == 16 * 4
    else:  # written back by msync before ready
        assert v["name"] == dump.ready["files"][label]
        assert v["fields"]["Private_Clean"] == 16 * 4 and v["fields"]["Private_Dirty"] == 0


def test_shmem(dump: Dump) -> None:
    for e in dump.part("shmem", "written"):
        assert flags(e) == PM_PRESENT | PM_FILE | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY, hex(e)
        kf = dump.kpf(pfn(e))
        assert kf & (1 << KPF_SWAPBACKED) and not kf & (1 << KPF_ANON)
    assert set(dump.part("shmem", "untouched")) == {PM_SOFT_DIRTY}
    v = dump.vma("shmem")
    assert v["perms"] == "rw-s" and v["name"].startswith("/dev/zero")
    assert v["fields"]["Rss"] == 8 * 4


@pytest.mark.parametrize("label", ["thp", "cow_thp"])
def test_thp(dump: Dump, label: str) -> None:
    """Fully written MADV_HUGEPAGE memory is PMD-mapped THPs: AnonHugePages
    is the whole size; each 2 MiB has 512 consecutive PFNs from a 2 MiB
    aligned head that kpageflags calls THP."""
    s, e = dump.regions[label]
    sm = dump.smaps(label)
    assert sm["AnonHugePages"] * KB == e - s == sm["Rss"] * KB
    ents = dump.pm(label)
    for i in range(0, len(ents), 512):
        head = pfn(ents[i])
        assert head % 512 == 0
        assert [pfn(x) for x in ents[i : i + 512]] == list(range(head, head + 512))
        kf = dump.kpf(head)
        assert kf & (1 << KPF_THP) and kf & (1 << KPF_COMPOUND_HEAD) and kf & (1 << KPF_ANON)
    want = PM_PRESENT | PM_SOFT_DIRTY | (0 if label == "cow_thp" else PM_MMAP_EXCLUSIVE)
    assert {flags(x) for x in ents} == {want}
    assert "hg" in dump.vma(label)["vmflags"]


def test_thp_zero(dump: Dump) -> None:
    """Read faults on a MADV_HUGEPAGE region map the huge zero page: the
    PMD entries are PRESENT|FILE (the huge zero folio is not anonymous),
    never EXCLUSIVE, frames huge_zero_pfn + idx; smaps counts nothing."""
    ents = dump.pm("thp_zero")
    assert {flags(x) for x in ents} == {PM_PRESENT | PM_FILE | PM_SOFT_DIRTY}
    head = pfn(ents[0])
    assert head % 512 == 0 and [pfn(x) for x in ents] == list(range(head, head + 512))
    assert head != _zero_pfn(dump)
    kf = dump.kpf(head)
    assert kf & (1 << KPF_ZERO_PAGE) and kf & (1 << KPF_THP)
    sm = dump.smaps("thp_zero")
    assert sm["Rss"] == 0 and sm["AnonHugePages"] == 0


@pytest.mark.parametrize("label", ["hugetlb_private", "hugetlb_shared"])
def test_hugetlb(dump: Dump, label: str) -> None:
    """MAP_HUGETLB 2 MiB pages: smaps Private_Hugetlb (mapped once) or
    Shared_Hugetlb (the shared one is also mapped by the forked child), not
    Rss; pagemap PRESENT with consecutive frames of a HUGE page, FILE only
    for the shared (hugetlbfs-backed) one."""
    sm = dump.smaps(label)
    v = dump.vma(label)
    assert "ht" in v["vmflags"]
    assert sm["KernelPageSize"] == 2048 and sm["Rss"] == 0
    shared = label == "hugetlb_shared"
    assert sm["Shared_Hugetlb" if shared else "Private_Hugetlb"] == 2048
    assert sm["Private_Hugetlb" if shared else "Shared_Hugetlb"] == 0
    ents = dump.pm(label)
    head = pfn(ents[0])
    assert head % 512 == 0 and [pfn(x) for x in ents] == list(range(head, head + 512))
    want = PM_PRESENT | PM_SOFT_DIRTY | (PM_FILE if shared else PM_MMAP_EXCLUSIVE)
    assert {flags(x) for x in ents} == {want}
    assert dump.kpf(head) & (1 << KPF_HUGE)
    if shared:  # the child read-faulted the same page
        child = dump.smaps(label, child=True)
        assert child["Shared_Hugetlb"] == 2048 and child["Private_Hugetlb"] == 0
        assert [pfn(x) for x in dump.pm(f"child:{label}")] == [pfn(x) for x in ents]


def test_protnone(dump: Dump) -> None:
    """PROT_NONE PTEs (present bit clear, PROTNONE set) count as present."""
    v = dump.vma("protnone")
    assert v["perms"] == "---p" and v["fields"]["Rss"] == 16 * 4
    for e in dump.pm("protnone"):
        assert flags(e) == PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY, hex(e)
        assert dump.kpf(pfn(e)) & (1 << KPF_ANON)
    v = dump.vma("protnone_empty")
    assert v["perms"] == "---p" and v["fields"]["Rss"] == 0
    assert set(dump.pm("protnone_empty")) == {PM_SOFT_DIRTY}


def test_swap(dump: Dump) -> None:
    """MADV_PAGEOUT to zram: swap PTEs (PM_SWAP, frame = type | offset << 5),
    one swap type, distinct offsets; smaps Swap is the whole region."""
    ents = dump.pm("swap")
    assert {flags(x) for x in ents} == {PM_SWAP | PM_SOFT_DIRTY}
    types = {pfn(x) & 0x1F for x in ents}
    offsets = [pfn(x) >> 5 for x in ents]
    assert len(types) == 1 and types.pop() < 24  # a real swap file, not a marker
    assert len(set(offsets)) == len(offsets)
    sm = dump.smaps("swap")
    assert sm["Swap"] == 32 * 4 and sm["Rss"] == 0


def test_guard(dump: Dump) -> None:
    """MADV_GUARD_INSTALL leaves guard markers: PM_SWAP|PM_GUARD_REGION with
    frame 31 | (4 << 5) (raw 0x448000000000009f in a soft-dirty VMA)."""
    for e in dump.part("guard", "guard"):
        assert e == PM_SWAP | PM_GUARD_REGION | PM_SOFT_DIRTY | 0x9F, hex(e)
    for part in ("before", "after"):
        for e in dump.part("guard", part):
            assert flags(e) == PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY, hex(e)
    assert dump.smaps("guard")["Rss"] == 12 * 4


@pytest.mark.parametrize("label", ["mremap", "partial_unmap", "mlock"])
def test_written_anon(dump: Dump, label: str) -> None:
    """Plain written anon pages, after mremap / around an munmap'd hole /
    mlock'ed: all PRESENT|EXCLUSIVE anonymous."""
    s, e = dump.regions[label]
    holes = dump.ready["holes"]
    hole = holes.get("partial_unmap.hole") if label == "partial_unmap" else None
    ents = dump.pm(label)
    for i, x in enumerate(ents):
        a = s + i * PAGE
        if hole and hole[0] <= a < hole[1]:
            assert x == 0
        else:
            assert flags(x) == PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY, hex(x)
    if label == "mlock":
        v = dump.vma("mlock")
        assert "lo" in v["vmflags"]
        assert v["fields"]["Locked"] == 16 * 4 == v["fields"]["Rss"]
    elif label == "mremap":
        assert dump.smaps("mremap")["Rss"] == 16 * 4


def test_thp_pte(dump: Dump) -> None:
    """mprotect of one page of a PMD-mapped THP splits the PMD, not the
    folio: 512 PTEs map consecutive pages of one large folio (kpageflags
    THP on each, COMPOUND_HEAD on the first), each page mapped once, so
    EXCLUSIVE; no AnonHugePages any more, in two VMAs."""
    ents = dump.pm("thp_pte")
    assert {flags(x) for x in ents} == {PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY}
    head = pfn(ents[0])
    assert head % 512 == 0 and [pfn(x) for x in ents] == list(range(head, head + 512))
    assert dump.kpf(head) & (1 << KPF_COMPOUND_HEAD)
    for x in ents:
        assert dump.kpf(pfn(x)) & (1 << KPF_THP)
    spans = {(v["start"], v["end"]): v for v in dump.d["smaps"]}
    ro = spans[tuple(dump.ready["parts"]["thp_pte"]["ro"])]
    rw = spans[tuple(dump.ready["parts"]["thp_pte"]["rw"])]
    assert ro["perms"] == "r--p" and rw["perms"] == "rw-p"
    assert ro["fields"]["AnonHugePages"] == rw["fields"]["AnonHugePages"] == 0
    assert ro["fields"]["Rss"] + rw["fields"]["Rss"] == 2048


def test_uffd_wp(dump: Dump) -> None:
    """userfaultfd write-protect: written pages keep PRESENT and gain
    PM_UFFD_WP (PTE bit 10); unpopulated ones (WP_UNPOPULATED) get uffd-wp
    PTE markers: PM_SWAP|PM_UFFD_WP with frame 31 | (1 << 5)."""
    for x in dump.part("uffd_wp", "written"):
        assert flags(x) == PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_UFFD_WP | PM_SOFT_DIRTY, hex(x)
    for x in dump.part("uffd_wp", "unpopulated"):
        assert x == PM_SWAP | PM_UFFD_WP | PM_SOFT_DIRTY | 0x3F, hex(x)
    v = dump.vma("uffd_wp")
    assert "uw" in v["vmflags"] and v["fields"]["Rss"] == 8 * 4


def test_lazyfree(dump: Dump) -> None:
    """MADV_FREE'd pages stay mapped, clean and !swapbacked: smaps LazyFree."""
    for x in dump.pm("lazyfree"):
        assert flags(x) == PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY, hex(x)
    sm = dump.smaps("lazyfree")
    assert sm["LazyFree"] == 16 * 4 == sm["Rss"]
    assert sm["Private_Dirty"] == 0 and sm["Private_Clean"] == 16 * 4


def test_soft_dirty(dump: Dump) -> None:
    """clear_refs 4 cleared the soft-dirty bits and VM_SOFTDIRTY of the
    region; the re-dirtied half has them again. VMAs created afterwards
    are soft-dirty (VmFlags sd)."""
    for x in dump.part("softdirty", "clean"):
        assert flags(x) == PM_PRESENT | PM_MMAP_EXCLUSIVE, hex(x)
    for x in dump.part("softdirty", "redirtied"):
        assert flags(x) == PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY, hex(x)
    assert "sd" not in dump.vma("softdirty")["vmflags"]
    assert "sd" in dump.vma("anon")["vmflags"]


def test_cow(dump: Dump) -> None:
    """Written before fork and still shared with the sleeping child: same
    PFNs in both, never EXCLUSIVE; smaps sees each page mapped twice."""
    for label in ("cow", "cow_thp"):
        parent, child = dump.pm(label), dump.pm(f"child:{label}")
        assert [pfn(x) for x in parent] == [pfn(x) for x in child]
        for x in parent + child:
            assert has(x, PM_PRESENT) and not has(x, PM_MMAP_EXCLUSIVE), hex(x)
        size_kb = (dump.regions[label][1] - dump.regions[label][0]) // KB
        for who in (False, True):
            sm = dump.smaps(label, child=who)
            assert sm["Shared_Dirty"] == size_kb and sm["Private_Dirty"] == 0
            assert sm["Pss"] == size_kb // 2


def test_lib(dump: Dump) -> None:
    """libc's text is a read-only private file mapping with page-cache pages."""
    v = dump.vma("lib")
    assert v["perms"] == "r-xp" and v["name"] == dump.ready["files"]["lib"]
    present = [x for x in dump.pm("lib") if has(x, PM_PRESENT)]
    assert present and all(has(x, PM_FILE) for x in present)


# --- the workload's lifecycle ---------------------------------------------


def test_child_dies_with_parent(workload: tuple[Any, str, Dump]) -> None:
    """Killing the workload (even with SIGKILL) takes its child along."""
    g = workload[0]
    path = "/tmp/livewalk-workload-kill.json"
    _, ready = _start(g, "--only cow", path)
    child = ready["child_pid"]
    assert child and g.run(f"kill -0 {child}", timeout=60).returncode == 0
    g.run(f"kill -9 {ready['pid']}", timeout=60)
    for _ in range(50):
        st = g.run(f"awk '/^State:/ {{print $2}}' /proc/{child}/status 2>/dev/null", timeout=60)
        if st.stdout.strip() in ("", "Z"):  # gone, or a zombie not yet reaped
            break
        time.sleep(0.2)
    else:
        pytest.fail("child outlived the killed workload")
    g.run(f"rm -f {path}", timeout=60)


def test_bench_mode(guest5: Any) -> None:
    """--bench (scaled down): populated 4 KiB and THP halves, and a sparse
    NORESERVE mapping with exactly one page per stride."""
    g = guest5
    path = "/tmp/livewalk-workload-bench.json"
    args = "--bench --size-mb 64 --sparse-mb 1024 --sparse-stride-kb 16384"
    _, ready = _start(g, args, path)
    try:
        assert ready["skipped"] == {}
        assert set(ready["regions"]) == set(mappings.BENCH_LABELS)
        d = _dump(g, path)
    finally:
        g.run(f"kill {ready['pid']}", timeout=60)
        g.run(f"rm -f {path}", timeout=60)
    sm4k, smthp = d.smaps("bench_4k"), d.smaps("bench_thp")
    assert sm4k["Rss"] == 32 * KB and sm4k["AnonHugePages"] == 0
    assert smthp["Rss"] == smthp["AnonHugePages"] == 32 * KB
    s, e = d.regions["bench_sparse"]
    assert e - s == 1 << 30 and s % (1 << 30) == 0
    present = [i for i, x in enumerate(d.pm("bench_sparse")) if has(x, PM_PRESENT)]
    assert present == list(range(0, (1 << 30) // PAGE, (16 << 20) // PAGE))
    assert d.smaps("bench_sparse")["Rss"] == len(present) * 4
