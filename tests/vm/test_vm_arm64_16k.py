# SPDX-License-Identifier: LGPL-2.1-or-later
"""The arm64 test VM with 16K pages: Debian sid's generic arm64 kernel
built with ``CONFIG_ARM64_16K_PAGES`` (``vm/build --arch arm64 --kernel
16k``), with 4 levels (``-cpu max``: FEAT_LPA2, 52-bit VA) and 3
(``-cpu max,lpa2=off``: 47-bit VA, the kernel folds a level at boot).

What is particular to 16K, beside tests/vm/test_vm_arm64.py (which runs on
this kernel too, in the full matrix):

* ``getconf PAGESIZE`` is 16384, and livewalk's paging object, read from
  the kernel over QMP, has the kernel's geometry: ``PAGE_SHIFT`` 14, 2048
  entries a table, a 32 MiB PMD, and the levels and VA bits the CPU gave
  (the kernel says "52-bit Virtual Addressing (LPA2)" at boot only with 4);
* livewalk's walk over a workload of 16K pages, 32 MiB PMD-mapped THPs and
  2 MiB mTHPs (128 contiguous PTEs) sees the kernel's pagemap, PFN for PFN;
* ``livewalk pagemap --range`` rounds to the target's 16K pages: its raw
  output is what a read of the kernel's pagemap file at ``START / 16384 *
  8`` gives.

These run only when the session runs the 16k kernel (``bash scripts/test
--matrix``, or ``--livewalk-kernel 16k``); otherwise they are deselected.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from livewalk.vm import Guest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.vm,
    pytest.mark.livewalk_vm(arches=("arm64",), paging=(4, 3), only_kernels=("16k",)),
]

#: VA bits of the Debian 16K kernel (VA_BITS=52) by paging levels.
VA_BITS = {4: 52, 3: 47}

#: PTE_CONT (arch/arm64/include/asm/pgtable-hwdef.h)
PTE_CONT = 1 << 52

#: A process with every 16K leaf kind: sparse 16 KiB PTEs (shmem), PMD-mapped THPs
#: (32 MiB, MADV_HUGEPAGE), 2 MiB mTHPs (contiguous-PTE blocks of 128
#: entries) and a read-only mapping never touched (no entries). Prints the
#: regions' addresses.
WORKLOAD = r"""
import ctypes, json, mmap, time
libc = ctypes.CDLL(None, use_errno=True)
MADV_HUGEPAGE = 14
P = mmap.PAGESIZE
def addr(m):
    return ctypes.addressof(ctypes.c_char.from_buffer(m))
sparse = mmap.mmap(-1, 16 << 20)
for i in range(0, 16 << 20, P * 3):
    sparse[i] = 1
untouched = mmap.mmap(-1, 8 << 20, prot=mmap.PROT_READ)
ANON = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS  # mmap.mmap(-1, n) alone is shared memory (shmem)
thp = mmap.mmap(-1, 128 << 20, flags=ANON)
a = addr(thp)
start = (a + (32 << 20) - 1) & ~((32 << 20) - 1)
assert libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(64 << 20), MADV_HUGEPAGE) == 0
for i in range(start - a, start - a + (64 << 20), P):
    thp[i] = 2
cont = mmap.mmap(-1, 8 << 20, flags=ANON)
cont.write(b"y" * (8 << 20))
# 1 MiB of MADV_HUGEPAGE memory that ends below the 32 MiB PMD size (where
# a low [heap] can be): too small for the 2 MiB mTHPs enabled here, but the
# kernel's unsigned arithmetic finds the PMD order suitable
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
MAP_FIXED_NOREPLACE = 0x100000
low = None
for base in range(28 << 20, 0, -(2 << 20)):
    p = libc.mmap(base, 1 << 20, 3, ANON | MAP_FIXED_NOREPLACE, -1, 0)
    if p == base:
        low = base
        assert libc.madvise(ctypes.c_void_p(low), ctypes.c_size_t(1 << 20), MADV_HUGEPAGE) == 0
        ctypes.memset(low, 3, 1 << 20)
        break
    if p not in (None, ctypes.c_void_p(-1).value):
        libc.munmap(ctypes.c_void_p(p), ctypes.c_size_t(1 << 20))
print("READY " + json.dumps({"sparse": addr(sparse), "thp": start, "cont": addr(cont), "low": low}), flush=True)
time.sleep(3600)
"""

#: The kernel's /proc/PID/pagemap: {address: pfn} of every present page.
KERNEL_PFNS = r"""
import json, mmap, struct, sys
pid, P = int(sys.argv[1]), mmap.PAGESIZE
shift = P.bit_length() - 1
out = {}
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb") as pm:
    for line in maps:
        a, b = (int(x, 16) for x in line.split()[0].split("-"))
        pm.seek((a >> shift) * 8)
        data = pm.read(((b - a) >> shift) * 8)
        for i, (e,) in enumerate(struct.iter_unpack("<Q", data)):
            if e >> 63:
                out[a + (i << shift)] = e & ((1 << 55) - 1)
print(json.dumps(out))
"""


def test_page_size_is_16k(livewalk_guest: Guest) -> None:
    g = livewalk_guest
    assert int(g.run("getconf PAGESIZE", check=True).stdout) == 16384
    assert g.release.endswith("-arm64-16k"), g.release
    config = g.run(
        f"grep -E '^CONFIG_ARM64_(16K_PAGES|VA_BITS)=' /boot/config-{g.release}", check=True
    ).stdout
    assert set(config.split()) == {"CONFIG_ARM64_16K_PAGES=y", "CONFIG_ARM64_VA_BITS=52"}


def test_paging_geometry_as_livewalk_reads_it(livewalk_guest: Guest) -> None:
    """livewalk's paging object of the running kernel: 16K pages, 11 bits a
    level, and the levels and VA bits the CPU gave (LPA2 or not)."""
    from livewalk.arch import PageTableLevel
    from livewalk.backend.drgn import DrgnBackend

    g = livewalk_guest
    p = DrgnBackend.for_program(g.host_program()).paging
    assert (p.page_shift, p.page_size) == (14, 16384)
    assert p.levels == g.levels
    assert p.task_size_max == 1 << VA_BITS[g.levels]
    assert p.ptrs_per(PageTableLevel.PTE) == p.ptrs_per(PageTableLevel.PMD) == 2048
    assert (p.level_shift(PageTableLevel.PMD), p.level_shift(PageTableLevel.PUD)) == (25, 36)
    lpa2 = "52-bit Virtual Addressing (LPA2)" in g.run("dmesg", check=True).stdout
    assert lpa2 == (g.levels == 4)


@pytest.fixture(scope="module")
def workload(livewalk_guest: Guest) -> Iterator[tuple[Guest, int, dict[str, int]]]:
    """WORKLOAD running in the guest: (guest, pid, its regions)."""
    g = livewalk_guest
    g._prog = None  # a fresh QMP attach for this module's host-side reads
    # 2 MiB mTHPs: with 16K pages, a folio as large as a contiguous-PTE block
    g.run("echo always > /sys/kernel/mm/transparent_hugepage/hugepages-2048kB/enabled", check=True)
    pid = g.spawn("exec python3 -c " + shlex.quote(WORKLOAD), ready="READY", timeout=600)
    try:
        m = re.search(r"READY (\{.*\})", g.spawn_log(pid))
        assert m is not None, g.spawn_log(pid)
        yield g, pid, json.loads(m.group(1))
    finally:
        g.run(f"kill {pid}")


def test_walk_equals_the_kernels_pagemap(workload: tuple[Guest, int, dict[str, int]]) -> None:
    """livewalk's walk_page_range over the whole user address space sees
    exactly the pages the kernel's pagemap reports present, each with its
    PFN: 16K PTEs, contiguous blocks and 32 MiB PMD leaves alike."""
    from livewalk.backend.drgn import DrgnBackend
    from livewalk.mm.pagewalk import MMWalkOps

    g, pid, regions = workload
    r = g.run(f"python3 - {pid}", input=KERNEL_PFNS, timeout=600, check=True)
    kernel = {int(k): v for k, v in json.loads(r.stdout.splitlines()[-1]).items()}
    paging = DrgnBackend.for_program(g.host_program()).paging
    seen: dict[int, int] = {}
    kinds = {"cont": 0, "pmd_leaf": 0}

    def pte_entry(pte, addr, next, walk):  # type: ignore[no-untyped-def]
        if pte.present:
            seen[addr] = pte.pfn
            kinds["cont"] += bool(pte.value & PTE_CONT)
        return 0

    def pmd_entry(pmd, addr, next, walk):  # type: ignore[no-untyped-def]
        kinds["pmd_leaf"] += bool(pmd.leaf)
        return 0

    ret = g.walk_page_range(
        pid, 0, paging.task_size_max, MMWalkOps(pte_entry=pte_entry, pmd_entry=pmd_entry)
    )
    assert ret == 0
    assert kinds["pmd_leaf"] >= 2 and kinds["cont"] >= 128, kinds  # the workload is not vacuous
    thp = regions["thp"]
    assert all(thp + i * 16384 in kernel for i in range(0, 4096, 512)), "THP region not mapped"
    assert sorted(kernel.keys() - seen.keys()) == [], "present in the kernel's pagemap only"
    assert sorted(seen.keys() - kernel.keys()) == [], "present in livewalk's walk only"
    differ = {hex(a): (hex(kernel[a]), hex(seen[a])) for a in kernel if kernel[a] != seen[a]}
    assert not differ, list(differ.items())[:10]


#: The kernel's pagemap bytes of the pages containing [START, END).
KERNEL_RANGE = r"""
import mmap, sys
pid, start, end = int(sys.argv[1]), int(sys.argv[2], 16), int(sys.argv[3], 16)
P = mmap.PAGESIZE
first, last = start // P, (end - 1) // P
with open(f"/proc/{pid}/pagemap", "rb") as pm:
    pm.seek(first * 8)
    sys.stdout.write(pm.read((last - first + 1) * 8).hex())
"""


def test_cli_range_rounds_to_16k_pages(workload: tuple[Guest, int, dict[str, int]]) -> None:
    """``livewalk pagemap --range START:END --format raw`` from the host
    gives the bytes a read of the kernel's pagemap at ``START / 16384 * 8``
    gives, for a range that starts and ends inside 16K pages (a THP's and
    the sparse region's)."""
    g, pid, regions = workload
    g._prog = None  # QEMU serves one QMP client
    import gc

    gc.collect()
    for base in (regions["thp"], regions["sparse"]):
        start, end = base + 0x1234, base + 5 * 16384 + 0x2345
        want = g.run(
            f"python3 - {pid} {start:x} {end:x}", input=KERNEL_RANGE, timeout=300, check=True
        ).stdout
        r = subprocess.run(
            [sys.executable, "-m", "livewalk", "--qemu", g.qmp_socket, "-s", os.path.dirname(g.vmlinux),
             "pagemap", "--pid", str(pid), "--range", f"{start:x}:{end:x}", "--format", "raw"],
            capture_output=True, timeout=900, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        assert len(r.stdout) == 6 * 8
        assert r.stdout.hex() == want.strip(), hex(base)


def test_thp_eligible_below_the_pmd_size(workload: tuple[Guest, int, dict[str, int]]) -> None:
    """A 1 MiB ``MADV_HUGEPAGE`` VMA that ends below the 32 MiB PMD size:
    no enabled size fits in it, but the kernel's ``thp_vma_suitable_order()``
    wraps around and says the PMD order does (``THPeligible: 1``), and
    livewalk's smaps says what the kernel says (a low ``[heap]`` showed it
    first)."""
    g, pid, regions = workload
    low = regions["low"]
    assert low is not None, "no free 2 MiB below 32 MiB in the workload"
    kernel = g.run(f"grep -A40 '^{low:08x}-' /proc/{pid}/smaps", check=True).stdout
    m = re.search(r"^THPeligible:\s+(\d)$", kernel, re.M)
    assert m is not None, kernel
    g._prog = None  # a fresh QMP attach (the kernel's view just read)
    ours = {v.vm_start: v for v in g.smaps(pid)}
    assert low in ours, sorted(hex(a) for a in ours)
    print(f"\n[16k THPeligible] {low:#x}-{low + (1 << 20):#x} kernel {m.group(1)}, livewalk {ours[low].thp_eligible}")
    assert m.group(1) == "1"  # the kernel's quirk this test pins
    assert ours[low].thp_eligible == 1

