# SPDX-License-Identifier: LGPL-2.1-or-later
"""smaps, smaps_rollup and vtop on arm64: livewalk's equal the arm64 kernel's.

The x86 smaps test's workloads (tests/workloads/mappings.py: anonymous,
file, shmem, memfd, THP, hugetlb 2 MiB, PROT_NONE, swap, CoW after fork,
guard regions, mlock, MADV_FREE; and its swap/shmem-swap workload) run in the
arm64 guest with 64 KiB mTHPs on (CONTPTE blocks, whose young and dirty bits
the kernel's ``ptep_get()`` gathers), plus a small one for arm64's
contiguous hugetlb sizes (64 KiB: ``CONT_PTES`` PTEs; 32 MiB: ``CONT_PMDS``
PMDs). livewalk's smaps and smaps_rollup of each process equal the kernel's
text line for line (header, every field, ``VmFlags`` with arm64's ``bt``,
and no ``sd``):

* from the host, drgn over QMP (the library, and ``livewalk smaps`` on the
  command line);
* in the guest, drgn on /proc/kcore, and ``livewalk verify`` there.

The kernel's text is read by a process that exists during livewalk's
computation (see tests/vm/test_vm_smaps.py: the observer effect).

vtop: for pages of every VMA of the workload, livewalk's physical address
equals the PFN of the kernel's /proc/PID/pagemap; for kernel addresses
(image, linear map, vmalloc), it equals drgn's ``follow_phys`` through
``swapper_pg_dir``.

Select with ``-m livewalk_vm_arm64``.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from livewalk.vm import Guest

from tests.vm.test_vm_smaps import (
    SWAP_WORKLOAD,
    HostReader,
    _copy_livewalk,
    count_fields,
    diff_smaps,
    parse_smaps,
)

ROOT = Path(__file__).resolve().parents[2]

# The paging modes of the command line: 5 in CI, every one in the full matrix.
pytestmark = [pytest.mark.vm, pytest.mark.livewalk_vm(arches=("arm64",))]

READY_TIMEOUT = 600.0

#: log2 of arm64's contiguous hugetlb sizes by page size: ``CONT_PTE_SHIFT``
#: and ``CONT_PMD_SHIFT`` (arch/arm64/include/asm/pgtable-hwdef.h). 4K: 64 KiB
#: (16 PTEs) and 32 MiB (16 PMDs); 16K: 2 MiB (128 PTEs) and 1 GiB (32 PMDs).
CONT_SHIFTS = {4096: (16, 25), 16384: (21, 30)}

#: Private and shared hugetlb pages of the contiguous-PTE size, and one of the
#: contiguous-PMD size (argv: ready file, CONT_PTE_SHIFT, CONT_PMD_SHIFT).
CONT_HUGETLB = r"""
import ctypes, json, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
MAP_PRIVATE, MAP_SHARED, MAP_ANON, MAP_HUGETLB = 2, 1, 0x20, 0x40000
out = {"pid": os.getpid(), "regions": {}, "skipped": {}}
cont_pte, cont_pmd = int(sys.argv[2]), int(sys.argv[3])
for name, shift, n, flags in (("cont_pte", cont_pte, 4, MAP_PRIVATE), ("cont_pte_shared", cont_pte, 2, MAP_SHARED),
                              ("cont_pmd", cont_pmd, 1, MAP_PRIVATE)):
    size = 1 << shift
    p = libc.mmap(None, n * size, 3, flags | MAP_ANON | MAP_HUGETLB | (shift << 26), -1, 0)
    if p in (None, ctypes.c_void_p(-1).value):
        out["skipped"][name] = os.strerror(ctypes.get_errno())
        continue
    for i in range(n):
        ctypes.memset(p + i * size, 0x5A, 64)  # the first bytes of each: the whole huge page faults in
    out["regions"][name] = [p, n * size]
with open(sys.argv[1] + ".tmp", "w") as f:
    json.dump(out, f)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
while True:
    signal.pause()
"""

GUEST_SCRIPT = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from livewalk.program import open_program
from livewalk.task import resolve_mm
import livewalk.proc.smaps as sm
from livewalk.mm.page import PageReader
prog = open_program()
out = {}
for pid in [int(p) for p in sys.argv[2].split(",")]:
    mm = resolve_mm(prog, pid)
    for attempt in range(4):
        k1 = open(f"/proc/{pid}/smaps").read()
        r1 = open(f"/proc/{pid}/smaps_rollup").read()
        t = time.monotonic()
        vmas = sm.smaps(mm, reader=PageReader(prog))
        dt = time.monotonic() - t
        k2 = open(f"/proc/{pid}/smaps").read()
        r2 = open(f"/proc/{pid}/smaps_rollup").read()
        if k1 == k2 and r1 == r2:
            break
    out[pid] = {"kernel": k1, "kernel_after": k2, "ours": sm.format_smaps(vmas),
                "rollup": r1, "rollup_after": r2, "ours_rollup": sm.format_smaps_rollup(vmas),
                "seconds": dt}
json.dump(out, sys.stdout)
"""


def _spawn_ready(g: Guest, cmd: str, path: str) -> dict[str, Any]:
    g.run(f"rm -f {path}", timeout=60)
    pid = g.spawn(cmd)
    ready: dict[str, Any] = g.wait_ready_file(path, pid, READY_TIMEOUT)
    return ready


@pytest.fixture(scope="module")
def workloads(livewalk_guest: Guest) -> Iterator[tuple[Guest, list[int], dict[str, Any]]]:
    """
    The mappings workload (parent and forked child), the swap workload and
    the contiguous-hugetlb one, with 64 KiB mTHPs on: (guest, pids, the
    mappings workload's ready JSON with the others' under "swap" and "cont").
    """
    g = livewalk_guest
    g._prog = None  # a fresh QMP attach for this module
    page = int(g.run("getconf PAGESIZE", timeout=60, check=True).stdout)
    cont_pte, cont_pmd = CONT_SHIFTS[page]
    # mTHPs as large as a contiguous-PTE block: 64 KiB with 4K pages, 2 MiB with 16K
    mthp = f"/sys/kernel/mm/transparent_hugepage/hugepages-{1 << cont_pte >> 10}kB/enabled"
    before = g.run(f"cat {mthp}", timeout=60).stdout
    old = before.split("[", 1)[1].split("]", 1)[0] if "[" in before else "never"
    g.run(f"echo always > {mthp}", check=True)
    # Pools grown, never shrunk: with 16K pages the contiguous-PTE size is
    # 2 MiB, the pool of the mappings workload's hugetlb pages too.
    for shift, want in ((cont_pte, 16), (cont_pmd, 1)):
        pool = f"/sys/kernel/mm/hugepages/hugepages-{1 << shift >> 10}kB/nr_hugepages"
        g.run(f"[ $(cat {pool}) -ge {want} ] || echo {want} > {pool}", timeout=120)
    ready = _spawn_ready(
        g, "python3 tests/workloads/mappings.py --ready-file /tmp/lwa64-map.json", "/tmp/lwa64-map.json"
    )
    g.put("/tmp/lwa64_swap.py", SWAP_WORKLOAD)
    g.put("/tmp/lwa64_cont.py", CONT_HUGETLB)
    kill = [ready["pid"]]
    try:
        ready["swap"] = _spawn_ready(g, "python3 /tmp/lwa64_swap.py /tmp/lwa64-swap.json", "/tmp/lwa64-swap.json")
        kill.append(ready["swap"]["pid"])
        ready["cont"] = _spawn_ready(
            g, f"python3 /tmp/lwa64_cont.py /tmp/lwa64-cont.json {cont_pte} {cont_pmd}", "/tmp/lwa64-cont.json"
        )
        ready["cont"]["page"] = page
        kill.append(ready["cont"]["pid"])
        pids = [int(ready["pid"])]
        if ready.get("child_pid"):
            pids.append(int(ready["child_pid"]))
        pids += [int(ready["swap"]["pid"]), int(ready["cont"]["pid"])]
        yield g, pids, ready
    finally:
        g.run("kill " + " ".join(str(p) for p in kill), timeout=60)
        g.run(f"echo {old} > {mthp}", timeout=60)


def _report(side: str, g: Guest, pid: int, res: dict[str, Any]) -> list[str]:
    assert res["kernel"] == res["kernel_after"], f"{side} pid {pid}: the kernel's smaps moved (4 rounds)"
    diffs = diff_smaps(res["kernel"], res["ours"])
    if "rollup" in res:
        assert res["rollup"] == res["rollup_after"], f"{side} pid {pid}: smaps_rollup moved"
        if res["rollup"] != res["ours_rollup"]:
            diffs.append(f"smaps_rollup: kernel {res['rollup']!r} livewalk {res['ours_rollup']!r}")
    print(
        f"\n[arm64 levels={g.levels}] {side} pid {pid}: {len(parse_smaps(res['kernel']))} VMAs, "
        f"{count_fields(res['kernel'])} values + rollup, {len(diffs)} differences, "
        f"livewalk {res.get('seconds', 0):.2f} s"
    )
    return [f"pid {pid}: {d}" for d in diffs]


def test_smaps_host_qmp(workloads: tuple[Guest, list[int], dict[str, Any]]) -> None:
    """From the host over QMP: smaps and smaps_rollup of every workload process."""
    import livewalk.proc.smaps as sm
    from livewalk.backend.drgn import DrgnBackend
    from livewalk.mm.page import PageReader
    from livewalk.task import resolve_mm

    g, pids, _ = workloads
    prog = g.host_program()
    diffs: list[str] = []
    for pid in pids:
        reader = HostReader(g, pid)
        try:
            for _ in range(4):
                DrgnBackend.for_program(prog)._vma_cache.clear()  # a live target
                mm = resolve_mm(prog, pid)
                k1, r1 = reader.read("smaps"), reader.read("smaps_rollup")
                t = time.monotonic()
                vmas = sm.smaps(mm, reader=PageReader(prog))
                dt = time.monotonic() - t
                k2, r2 = reader.read("smaps"), reader.read("smaps_rollup")
                if k1 == k2 and r1 == r2:
                    break
        finally:
            reader.close()
        res = {"kernel": k1, "kernel_after": k2, "ours": sm.format_smaps(vmas), "rollup": r1,
               "rollup_after": r2, "ours_rollup": sm.format_smaps_rollup(vmas), "seconds": dt}  # fmt: skip
        diffs += _report("host/QMP", g, pid, res)
    assert not diffs, "\n".join(diffs)


def test_smaps_guest_kcore(workloads: tuple[Guest, list[int], dict[str, Any]]) -> None:
    """In the guest, drgn on /proc/kcore: smaps and smaps_rollup of every workload process."""
    g, pids, _ = workloads
    _copy_livewalk(g, "/tmp/lwa64")
    g.put("/tmp/lwa64/guest_smaps.py", GUEST_SCRIPT)
    r = g.run(f"python3 /tmp/lwa64/guest_smaps.py /tmp/lwa64 {','.join(map(str, pids))}", timeout=1800)
    assert r.returncode == 0, r.stderr[-4000:]
    diffs: list[str] = []
    for pid, res in json.loads(r.stdout).items():
        diffs += _report("guest/kcore", g, int(pid), res)
    assert not diffs, "\n".join(diffs)


def test_verify_in_the_guest(workloads: tuple[Guest, list[int], dict[str, Any]]) -> None:
    """``livewalk verify`` in the guest compares pagemap and smaps: 0 mismatches."""
    g, pids, _ = workloads
    _copy_livewalk(g, "/tmp/lwa64")
    for pid in pids:
        r = g.run(f"cd /tmp/lwa64 && python3 -m livewalk verify --pid {pid}", timeout=1800)
        print(f"\n[arm64 levels={g.levels}] livewalk verify --pid {pid}:\n{r.stdout}")
        assert r.returncode == 0, (r.stdout, r.stderr[-2000:])
        assert "smaps:" in r.stdout and "livewalk agrees with the kernel" in r.stdout, r.stdout


def _livewalk_host(g: Guest, *args: str) -> subprocess.CompletedProcess[str]:
    """``python3 -m livewalk --qemu ... ARGS`` on the host (QEMU serves one QMP client)."""
    g._prog = None
    gc.collect()
    return subprocess.run(
        [sys.executable, "-m", "livewalk", "--qemu", g.qmp_socket, "-s", os.path.dirname(g.vmlinux), *args],
        capture_output=True, text=True, timeout=1800, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip


def test_smaps_cli_from_the_host(workloads: tuple[Guest, list[int], dict[str, Any]]) -> None:
    """``livewalk smaps --pid`` over QMP prints the kernel's text."""
    g, pids, ready = workloads
    for pid in (pids[0], int(ready["cont"]["pid"])):
        reader = HostReader(g, pid)
        try:
            for _ in range(4):
                k1 = reader.read("smaps")
                r = _livewalk_host(g, "smaps", "--pid", str(pid))
                k2 = reader.read("smaps")
                if k1 == k2:
                    break
        finally:
            reader.close()
        assert r.returncode == 0, r.stderr[-3000:]
        diffs = diff_smaps(k1, r.stdout)
        print(f"\n[arm64 levels={g.levels}] CLI smaps pid {pid}: {count_fields(k1)} values, {len(diffs)} differences")
        assert not diffs, "\n".join(diffs)


def test_smaps_covers_arm64(workloads: tuple[Guest, list[int], dict[str, Any]]) -> None:
    """Not vacuous: THP, swap, hugetlb of the contiguous sizes, BTI's ``bt``; no ``sd``."""
    g, pids, ready = workloads
    texts = {pid: g.run(f"cat /proc/{pid}/smaps", timeout=60).stdout for pid in pids}
    totals: dict[str, int] = {}
    sizes: set[int] = set()
    flags: set[str] = set()
    for text in texts.values():
        for v in parse_smaps(text):
            for k, val in v["fields"].items():
                totals[k] = totals.get(k, 0) + val
            if v["fields"].get("Private_Hugetlb") or v["fields"].get("Shared_Hugetlb"):
                sizes.add(v["fields"]["KernelPageSize"])
            flags |= set(v["vmflags"].split()[1:])
    print(f"\n[arm64 levels={g.levels}] hugetlb sizes {sorted(sizes)} kB, VmFlags {sorted(flags)}, "
          f"skipped {ready['skipped']} {ready['cont']['skipped']}")  # fmt: skip
    for field in ("Rss", "Anonymous", "AnonHugePages", "Swap", "SwapPss", "Locked", "LazyFree", "Private_Hugetlb"):
        assert totals.get(field, 0) > 0, f"workload has no {field}"
    cont_pte_kb = 1 << CONT_SHIFTS[ready["cont"]["page"]][0] >> 10
    assert cont_pte_kb in sizes, sizes  # CONT_PTES hugetlb
    assert "sd" not in flags  # no CONFIG_MEM_SOFT_DIRTY on arm64


# --- vtop ----------------------------------------------------------------------

KERNEL_PFNS = r"""
import json, sys
import mmap
PAGE = mmap.PAGESIZE
pid, addrs = int(sys.argv[1]), json.loads(sys.stdin.read())
out = {}
with open(f"/proc/{pid}/pagemap", "rb") as f:
    for a in addrs:
        f.seek(a // PAGE * 8)
        e = int.from_bytes(f.read(8), "little")
        out[a] = e & ((1 << 55) - 1) if e >> 63 else None
print(json.dumps(out))
"""


def test_vtop_user_equals_the_kernels_pagemap(workloads: tuple[Guest, list[int], dict[str, Any]]) -> None:
    """
    vtop from the host over QMP: for up to 64 pages of every VMA of the
    mappings and contiguous-hugetlb workloads, the physical address is the
    kernel's pagemap PFN (present pages), and a page the kernel shows not
    present is not ``present`` in vtop (PROT_NONE pages are present for both).
    """
    from livewalk.backend.drgn import DrgnBackend
    from livewalk.task import resolve_mm
    from livewalk.tools.vtop import format_vtop, vtop

    g, pids, ready = workloads
    prog = g.host_program()
    paging = DrgnBackend.for_program(prog).paging
    checked = present = 0
    states: dict[str, int] = {}
    for pid in (pids[0], int(ready["cont"]["pid"])):
        DrgnBackend.for_program(prog)._vma_cache.clear()
        maps = g.run(f"cat /proc/{pid}/maps", timeout=60).stdout.splitlines()
        addrs: list[int] = []
        for line in maps:
            s, e = (int(x, 16) for x in line.split()[0].split("-"))
            if s >= paging.task_size_max:
                continue
            n = (e - s) // paging.page_size
            step = max(1, n // 64)
            addrs += [s + i * paging.page_size + 0x123 for i in range(0, n, step)]
        r = g.run(f"python3 - {pid}", input=KERNEL_PFNS.replace("sys.stdin.read()", json.dumps(json.dumps(addrs))),
                  timeout=600, check=True)  # fmt: skip
        kernel = {int(k): v for k, v in json.loads(r.stdout.splitlines()[-1]).items()}
        mm = resolve_mm(prog, pid)
        bad = []
        for a in addrs:
            res = vtop(mm, a)
            states[res.state] = states.get(res.state, 0) + 1
            checked += 1
            k = kernel[a]
            if k is not None:
                present += 1
                if res.phys != (k << paging.page_shift) + (a & (paging.page_size - 1)):
                    bad.append(format_vtop(res) + f"\n  kernel pagemap PFN {k:#x}")
            elif res.state == "present":
                bad.append(format_vtop(res) + "\n  kernel: not present")
        assert not bad, "\n\n".join(bad[:5])
    print(f"\n[arm64 levels={g.levels}] vtop: {checked} user addresses, {present} present "
          f"(physical address = pagemap PFN), states {states}")  # fmt: skip
    assert present > 500


def test_vtop_kernel_equals_drgn(workloads: tuple[Guest, list[int], dict[str, Any]]) -> None:
    """
    vtop of kernel addresses through swapper_pg_dir (TTBR1): the image,
    the linear map (task structs, page tables), vmalloc (kernel stacks)
    equal drgn's ``follow_phys``; the text names TTBR1 and arm64 flags.
    """
    from drgn.helpers.linux.mm import follow_phys
    from drgn.helpers.linux.pid import find_task

    from livewalk.tools.vtop import format_vtop, vtop_kernel

    g, pids, _ = workloads
    prog = g.host_program()
    init_mm = prog["init_mm"].address_of_()
    addrs = [prog["init_mm"].address_of_().value_(), prog.symbol("schedule").address,
             prog.symbol("swapper_pg_dir").address]  # fmt: skip
    for pid in pids:
        task = find_task(prog, pid)
        addrs += [task.value_(), task.stack.value_() + 0x10, task.mm.pgd.value_(), task.mm.value_()]
    bad = []
    for a in addrs:
        r = vtop_kernel(prog, a)
        want = int(follow_phys(init_mm, a))
        if r.phys != want:
            bad.append(format_vtop(r) + f"\n  drgn follow_phys {want:#x}")
    assert not bad, "\n\n".join(bad)
    text = format_vtop(vtop_kernel(prog, addrs[0]))
    print(f"\n[arm64 levels={g.levels}] vtop: {len(addrs)} kernel addresses equal follow_phys\n{text}")
    assert "TTBR1 (swapper_pg_dir)" in text and "AF" in text


def test_vtop_cli_from_the_host(workloads: tuple[Guest, list[int], dict[str, Any]]) -> None:
    """``livewalk vtop`` over QMP: arm64 flags, TTBR0, the contiguous-PTE hugetlb leaf."""
    g, pids, ready = workloads
    size = 1 << CONT_SHIFTS[ready["cont"]["page"]][0]
    assert "cont_pte" in ready["cont"]["regions"], ready["cont"]["skipped"]
    addr = ready["cont"]["regions"]["cont_pte"][0] + size + 0x10010  # in the second huge page
    leaf = {1 << 16: "64 KiB", 1 << 21: "2 MiB"}[size] + " hugetlb PTE leaf"
    r = _livewalk_host(g, "vtop", "--pid", str(ready["cont"]["pid"]), hex(addr))
    print(f"\n[arm64 levels={g.levels}] livewalk vtop:\n{r.stdout}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "TTBR0" in r.stdout and "CONT" in r.stdout and leaf in r.stdout, r.stdout
