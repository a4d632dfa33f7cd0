# SPDX-License-Identifier: LGPL-2.1-or-later
"""The arm64 test VM: Debian sid's cloud-arm64 kernel under
``qemu-system-aarch64`` (TCG, ``-machine virt``), with 5 levels (``-cpu
max``: FEAT_LPA2, 52-bit VA) and 4 (``-cpu max,lpa2=off``: 48-bit VA); in
the full matrix (or ``--livewalk-kernel 16k``) also the 16K-page kernel
with 4 levels (LPA2, 52-bit VA) and 3 (47-bit VA).

The image (``vm/build --arch arm64``) is unpacked on the host and its
packages are installed by the guest itself at its first boot (the host runs
no arm64 code). This checks what every arm64 test will rely on:

* ``uname -m`` is ``aarch64`` and the release is the image's;
* drgn in the guest opens ``/proc/kcore`` with the image's -dbg vmlinux and
  finds ``init_task``; drgn on the x86-64 host does the same over QMP and
  reads the same ``init_task.comm``;
* the geometry: ``getconf PAGESIZE`` is 4096 (16384), and the kernel's
  ``vabits_actual`` (a macro reading TCR_EL1.T1SZ in 7.2, which VMCOREINFO
  exports as ``NUMBER(TCR_EL1_T1SZ)``) is 52 with LPA2 and 48 without, the
  same in the guest and on the host, and matches the levels the agent saw;
* livewalk's walk sees the kernel's pagemap PFNs, kernel addresses agree
  with drgn's ``follow_phys``;
* pagemap: the x86 test's mappings workload (tests/workloads/mappings.py)
  runs in the arm64 guest, and livewalk's pagemap of every VMA equals the
  kernel's /proc/PID/pagemap in all 64 bits: from the host over QMP (the
  library and ``livewalk pagemap --format raw``) and in the guest (drgn on
  /proc/kcore), no soft-dirty bit anywhere;
* ptdump: arm64's format and attributes, and ``--check-wx`` agreeing with
  the kernel's own W+X check at boot.

Select with ``-m livewalk_vm_arm64`` (leave out with ``-m "not livewalk_vm_arm64"``).
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
from typing import Any

import pytest
from livewalk.vm import Guest
from livewalk.vm.image import current_image

ROOT = Path(__file__).resolve().parents[2]

# 3 levels: the 16k kernel without LPA2 (the 4K kernels have 5 and 4 only)
pytestmark = [pytest.mark.vm, pytest.mark.livewalk_vm(arches=("arm64",), paging=(5, 4, 3))]

#: VA bits of the Debian arm64 kernels (VA_BITS=52) by (page size, paging
#: levels): 4K pages (cloud-arm64) and 16K (arm64-16k, ``--kernel 16k``).
VA_BITS = {(4096, 5): 52, (4096, 4): 48, (16384, 4): 52, (16384, 3): 47}
#: The page size of each arm64 kernel series.
PAGE_SIZE = {"7": 4096, "16k": 16384}

GUEST_DRGN = r"""
import json, re, time
t = time.monotonic()
import drgn
t_import = time.monotonic() - t
t = time.monotonic()
prog = drgn.program_from_kernel()
comm = prog["init_task"].comm.string_().decode()
t_open = time.monotonic() - t
info = prog["VMCOREINFO"].string_().decode()
t1sz = int(re.search(r"^NUMBER\(TCR_EL1_T1SZ\)=(\S+)$", info, re.M).group(1), 0)
print(json.dumps({
    "version": drgn.__version__, "arch": prog.platform.arch.name, "comm": comm,
    "release": prog["UTS_RELEASE"].string_().decode(), "vabits_actual": 64 - t1sz,
    "import_s": round(t_import, 1), "open_s": round(t_open, 1),
}))
"""


def _vabits_actual(vmcoreinfo: str) -> int:
    """The kernel's ``vabits_actual``, from VMCOREINFO's ``TCR_EL1_T1SZ``."""
    m = re.search(r"^NUMBER\(TCR_EL1_T1SZ\)=(\S+)$", vmcoreinfo, re.M)
    assert m, "no NUMBER(TCR_EL1_T1SZ) in VMCOREINFO"
    return 64 - int(m.group(1), 0)


@pytest.fixture(scope="module")
def in_guest(livewalk_guest: Guest) -> dict[str, object]:
    """drgn in the guest, on /proc/kcore: what it found, and how long it took."""
    r = livewalk_guest.run("python3 -", input=GUEST_DRGN, timeout=900)
    assert r.returncode == 0, r.stderr
    found: dict[str, object] = json.loads(r.stdout.splitlines()[-1])
    return found


def test_uname_is_aarch64_and_the_images_release(livewalk_guest: Guest) -> None:
    img = current_image(livewalk_guest.kernel, arch="arm64")
    assert img is not None and img.spec.arch == "arm64"
    r = livewalk_guest.run("uname -m; uname -r", check=True)
    machine, release = r.stdout.split()
    assert machine == "aarch64"
    assert release == img.release == livewalk_guest.release
    assert release.endswith(f"-{img.spec.flavour}"), release


def test_drgn_in_guest_finds_init_task(livewalk_guest: Guest, in_guest: dict[str, object]) -> None:
    assert in_guest["arch"] == "AARCH64"
    assert in_guest["comm"] == "swapper/0"
    assert in_guest["release"] == livewalk_guest.release


def test_drgn_on_host_reads_the_same_init_task(livewalk_guest: Guest, in_guest: dict[str, object]) -> None:
    drgn = pytest.importorskip("drgn")
    prog = livewalk_guest.host_program()
    assert prog.platform is not None and prog.platform.arch == drgn.Architecture.AARCH64
    assert prog["UTS_RELEASE"].string_().decode() == livewalk_guest.release
    assert prog["init_task"].comm.string_().decode() == in_guest["comm"]


def test_page_size_and_va_bits(livewalk_guest: Guest, in_guest: dict[str, object]) -> None:
    pytest.importorskip("drgn")
    page_size = PAGE_SIZE[livewalk_guest.kernel]
    want = VA_BITS[page_size, livewalk_guest.levels]
    r = livewalk_guest.run("getconf PAGESIZE", check=True)
    assert int(r.stdout) == page_size
    assert in_guest["vabits_actual"] == want
    prog = livewalk_guest.host_program()
    assert _vabits_actual(prog["VMCOREINFO"].string_().decode()) == want
    # The kernel's own word on it at boot.
    lpa2 = "52-bit Virtual Addressing (LPA2)" in livewalk_guest.run("dmesg", check=True).stdout
    assert lpa2 == (want == 52)


# --- livewalk's walker on the arm64 kernel's own page tables -----------------

#: A process with every arm64 leaf the walker decodes: sparse PTEs,
#: PMD-mapped THPs (2 MiB with 4K pages, 32 MiB with 16K) and mTHPs of a
#: contiguous-PTE block (64 KiB, 2 MiB), plus a read-only mapping never
#: touched (no entries).
WALK_WORKLOAD = r"""
import mmap, time
P = mmap.PAGESIZE
PMD = P * P // 8
m = mmap.mmap(-1, 64 << 20)
for i in range(0, 64 << 20, P * 3):
    m[i] = 1
n = mmap.mmap(-1, 8 << 20, prot=mmap.PROT_READ)
ANON = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS  # mmap.mmap(-1, n) alone is shared memory (shmem)
t = mmap.mmap(-1, max(16 << 20, 4 * PMD), flags=ANON)
t.madvise(mmap.MADV_HUGEPAGE)
t.write(b"x" * len(t))
c = mmap.mmap(-1, 4 << 20 if P == 4096 else 8 << 20, flags=ANON)
c.write(b"y" * len(c))
print("READY", flush=True)
time.sleep(3600)
"""

#: The kernel's /proc/PID/pagemap: {address: pfn} of every present page.
KERNEL_PFNS = r"""
import json, mmap, struct, sys
pid = int(sys.argv[1])
shift = mmap.PAGESIZE.bit_length() - 1
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

#: PTE_CONT (arch/arm64/include/asm/pgtable-hwdef.h)
PTE_CONT = 1 << 52


def test_walker_matches_the_kernels_pagemap(livewalk_guest: Guest) -> None:
    """
    livewalk's walk_page_range over the whole user address space, from the
    host over QMP, sees exactly the pages the kernel's pagemap reports
    present, each with the kernel's PFN (4 KiB, contiguous and PMD leaves
    alike, in both the LPA2 5-level and the 4-level geometry).
    """
    from livewalk.backend.drgn import DrgnBackend
    from livewalk.mm.pagewalk import MMWalkOps

    g = livewalk_guest
    # mTHPs of a contpte block (16 PTEs with 4K pages, 128 with 16K) for the
    # workload's last anonymous region
    cont_kb = {4096: 64, 16384: 2048}[PAGE_SIZE[g.kernel]]
    g.run(f"echo always > /sys/kernel/mm/transparent_hugepage/hugepages-{cont_kb}kB/enabled", check=True)
    pid = g.spawn("exec python3 -c " + shlex.quote(WALK_WORKLOAD), ready="READY", timeout=600)
    try:
        r = g.run(f"python3 - {pid}", input=KERNEL_PFNS, timeout=600, check=True)
        kernel = {int(k): v for k, v in json.loads(r.stdout.splitlines()[-1]).items()}
        prog = g.host_program()
        paging = DrgnBackend.for_program(prog).paging
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

        ret = g.walk_page_range(pid, 0, paging.task_size_max, MMWalkOps(pte_entry=pte_entry, pmd_entry=pmd_entry))
    finally:
        g.run(f"kill {pid}")
    assert ret == 0
    assert kinds["cont"] > 0 and kinds["pmd_leaf"] > 0, kinds  # the workload is not vacuous
    assert len(kernel) > 10_000
    assert sorted(kernel.keys() - seen.keys()) == [], "present in the kernel's pagemap only"
    assert sorted(seen.keys() - kernel.keys()) == [], "present in livewalk's walk only"
    differ = {hex(a): (hex(kernel[a]), hex(seen[a])) for a in kernel if kernel[a] != seen[a]}
    assert not differ, list(differ.items())[:10]


def test_kernel_addresses_match_drgn(livewalk_guest: Guest) -> None:
    """
    walk_kernel_page_table_range through swapper_pg_dir translates a kernel
    image address (``init_mm``) and a linear-map one (a task's mm) to the
    physical address drgn's own ``follow_phys`` gives.
    """
    from drgn.helpers.linux.mm import follow_phys

    from livewalk.backend.drgn import DrgnBackend
    from livewalk.mm.pagewalk import MMWalkOps, walk_kernel_page_table_range

    g = livewalk_guest
    prog = g.host_program()
    be = DrgnBackend.for_program(prog)
    p = be.paging
    init_mm = prog["init_mm"].address_of_()
    for addr in (init_mm.value_(), prog["init_task"].address_of_().value_()):
        leaf: dict[str, int] = {}

        def found(e, a, n, w, leaf=leaf, addr=addr):  # type: ignore[no-untyped-def]
            if e.leaf:
                mask = (1 << p.level_shift(e.level)) - 1
                leaf["pa"] = (e.pfn << p.page_shift) + (addr & mask)
            return 0

        base = addr & ~(p.page_size - 1)
        ops = MMWalkOps(pte_entry=found, pmd_entry=found, pud_entry=found)
        assert walk_kernel_page_table_range(base, base + p.page_size, ops, backend=be) == 0
        assert leaf.get("pa") == int(follow_phys(init_mm, addr)), hex(addr)


def test_vmemmap_reads_by_physical_address_equal_drgns(livewalk_guest: Guest) -> None:
    """
    Over QMP the backend reads ``struct page`` s by physical address through
    the PMD leaf that maps them, found in swapper_pg_dir as the walker finds
    entries (with 4 levels of a 5-level build, the P4D is folded at boot into
    the PGD's page): the bytes are drgn's, whose own walk translates each
    virtual read. With 4K pages the vmemmap is mapped by PMD sections, so
    every struct page goes the physical way.
    """
    from tests.vm.vmemmap_reads import compare_vmemmap_reads

    r = compare_vmemmap_reads(livewalk_guest.host_program())
    print(f"vmemmap: {r.compared} struct pages compared, {r.physical} by physical address, {r.absent} absent")
    assert not r.differ, r.differ
    assert r.compared >= 512
    if PAGE_SIZE[livewalk_guest.kernel] == 4096:
        assert r.physical == r.compared


# --- pagemap: livewalk's equals the arm64 kernel's, all 64 bits -------------

#: The mappings workload's regions (tests/workloads/mappings.py) that this
#: arm64 kernel builds; "softdirty" builds too (clear_refs 4 is accepted and
#: does nothing without CONFIG_MEM_SOFT_DIRTY).
READY_TIMEOUT = 600.0


@pytest.fixture(scope="module")
def arm64_workload(livewalk_guest: Guest) -> Iterator[tuple[Guest, dict[str, Any]]]:
    """The x86 pagemap test's workload, run in the arm64 guest: (guest, ready JSON)."""
    g = livewalk_guest
    g._prog = None  # a fresh QMP attach for this module's host-side reads
    path = "/tmp/livewalk-arm64-pagemap-workload.json"
    g.run(f"rm -f {path}", timeout=60)
    spawned = g.spawn(f"python3 tests/workloads/mappings.py --ready-file {path}")
    ready = g.wait_ready_file(path, spawned, READY_TIMEOUT)
    try:
        yield g, ready
    finally:
        g.run(f"kill {ready['pid']}", timeout=60)
        g.run(f"rm -f {path}", timeout=60)


def _kinds_of(k: dict[str, list[int]]) -> dict[str, int]:
    from tests.vm.test_vm_pagemap import flag_names

    out: dict[str, int] = {}
    for vals in k.values():
        for v in vals:
            n = flag_names(v & ~((1 << 55) - 1))
            out[n] = out.get(n, 0) + 1
    return out


def test_pagemap_host_qmp_equals_the_kernels(arm64_workload: tuple[Guest, dict[str, Any]]) -> None:
    """
    livewalk's pagemap_read from the x86-64 host over QMP, every VMA of the
    mappings workload (anonymous, zero page, file, shmem, THP, hugetlb,
    PROT_NONE, swap, guard regions, uffd-wp, ...), equals the arm64 kernel's
    /proc/PID/pagemap in all 64 bits (the x86 test's comparison, reused).
    """
    from tests.vm.test_vm_pagemap import _host_check

    g, ready = arm64_workload
    print(f"\n[arm64 levels={g.levels}] workload built {sorted(ready['regions'])}, skipped {ready['skipped']}")
    _host_check(g, ready, "host QMP arm64")


#: The kernel's pagemap of the given ranges, base64 (read in the guest).
KERNEL_RANGES = r"""
import base64, json, mmap, os, sys
pid, ranges, P = int(sys.argv[1]), json.loads(sys.argv[2]), mmap.PAGESIZE
fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
print(base64.b64encode(b"".join(os.pread(fd, (e - s) // P * 8, s // P * 8) for s, e in ranges)).decode())
"""


def test_pagemap_cli_from_the_host(arm64_workload: tuple[Guest, dict[str, Any]]) -> None:
    """``livewalk --qemu SOCKET pagemap --format raw`` on the x86-64 host
    prints the arm64 kernel's entries for the workload's regions."""
    from tests.vm.test_vm_pagemap import _u64s

    g, ready = arm64_workload
    pid = ready["pid"]
    ranges = sorted(tuple(v) for k, v in ready["regions"].items() if k != "lib")
    g.put("/tmp/livewalk-arm64-kernel-ranges.py", KERNEL_RANGES)

    def kernel() -> list[int]:
        r = g.run(f"python3 /tmp/livewalk-arm64-kernel-ranges.py {pid} '{json.dumps(ranges)}'", timeout=600)
        assert r.returncode == 0, r.stderr
        return _u64s(r.stdout.strip())

    k1 = kernel()
    g._prog = None  # QEMU serves one QMP client
    import gc

    gc.collect()
    args = [sys.executable, "-m", "livewalk", "--qemu", g.qmp_socket, "-s", os.path.dirname(g.vmlinux),
            "pagemap", "--pid", str(pid), "--format", "raw"]  # fmt: skip
    for s, e in ranges:
        args += ["--range", f"{s:x}:{e:x}"]
    p = subprocess.run(args, capture_output=True, timeout=1800, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-3000:]
    k2 = kernel()
    ours = list(memoryview(p.stdout).cast("Q"))
    assert len(ours) == len(k1) > 0
    bad = [i for i, (a, b, o) in enumerate(zip(k1, k2, ours)) if o != a and o != b]
    print(f"\n[pagemap CLI host arm64 levels={g.levels}] {len(ours)} pages of {len(ranges)} regions, {len(bad)} differ")
    assert not bad, [(i, hex(k1[i]), hex(ours[i])) for i in bad[:8]]


# --- ptdump: the arm64 format, and the W+X verdict of the kernel's boot ------


def _livewalk_host(g: Guest, *args: str) -> subprocess.CompletedProcess[str]:
    """``python3 -m livewalk --qemu ... ARGS`` on the host (one QMP client)."""
    g._prog = None
    import gc

    gc.collect()
    return subprocess.run(
        [sys.executable, "-m", "livewalk", "--qemu", g.qmp_socket, "-s", os.path.dirname(g.vmlinux), *args],
        capture_output=True, text=True, timeout=1800, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip


def test_ptdump_check_wx_agrees_with_the_boot_message(livewalk_guest: Guest) -> None:
    """``livewalk ptdump --check-wx`` from the host says what the kernel's
    own ptdump_check_wx() said at boot (mark_rodata_ro(), CONFIG_DEBUG_WX)."""
    g = livewalk_guest
    dmesg = g.run("dmesg", check=True).stdout
    boot = [m.group(1) for m in re.finditer(r"\] (Checked W\+X mappings: .*)$", dmesg, re.M)]
    if not boot:
        pytest.skip("the kernel did not run ptdump_check_wx() at boot (no CONFIG_DEBUG_WX)")
    r = _livewalk_host(g, "ptdump", "--check-wx")
    assert r.returncode in (0, 1), r.stderr
    verdict = r.stdout.splitlines()[-1]
    print(f"\n[ptdump --check-wx arm64 levels={g.levels}] kernel at boot: {boot[-1]!r}; livewalk: {verdict!r}")
    assert verdict == boot[-1].rstrip()
    assert r.returncode == (0 if "passed" in verdict else 1)


def test_ptdump_arm64_format_and_attributes(livewalk_guest: Guest) -> None:
    """``livewalk ptdump`` from the host: the arm64 markers in order, one
    line per range in note_page()'s format, the kernel's text read-only and
    executable (no PXN), its data read-write and PXN, and the linear map
    (where task_structs lie) non-executable."""
    g = livewalk_guest
    prog = g.host_program()
    text = int(prog.symbol("_stext").address)
    data = prog["init_task"].address_of_().value_()
    slab = int(prog["init_task"].tasks.next.value_())  # the next task_struct: linear map
    del prog  # the CLI below needs the QMP socket (QEMU serves one client)
    r = _livewalk_host(g, "ptdump")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    markers = [ln for ln in lines if ln.startswith("---[")]
    assert markers[:2] == ["---[ Linear Mapping start ]---", "---[ Linear Mapping end ]---"], markers
    assert "---[ Modules start ]---" in markers and "---[ vmemmap start ]---" in markers, markers
    row = re.compile(r"^0x([0-9a-f]{16})-0x([0-9a-f]{16})   [ \d]{9}[KMGTPE] (PGD|P4D|PUD|PMD|PTE)(.*)$")
    ranges = []
    for ln in lines:
        if ln.startswith("---["):
            continue
        m = row.match(ln)
        assert m, ln
        ranges.append((int(m.group(1), 16), int(m.group(2), 16) or 1 << 64, m.group(3), m.group(4)))

    def attrs(addr: int) -> str:
        hit = [a for s, e, _, a in ranges if s <= addr < e]
        assert len(hit) == 1, hex(addr)
        return hit[0]

    print(f"\n[ptdump arm64 levels={g.levels}] {len(ranges)} ranges; _stext:{attrs(text)!r} init_task:{attrs(data)!r}")
    assert " ro x " in attrs(text) and "MEM/NORMAL" in attrs(text)
    assert " RW NX " in attrs(data) and " UXN " in attrs(data)
    assert " RW NX " in attrs(slab) and " F " not in attrs(slab)


# Last: drgn in the arm64 guest takes about 40 s to start under TCG.


def test_pagemap_guest_kcore_equals_the_kernels(arm64_workload: tuple[Guest, dict[str, Any]]) -> None:
    """
    The same in the guest: drgn on /proc/kcore of the arm64 kernel, the
    kernel's pagemap read before and after livewalk's in the same process;
    with and without PFNs (show_pfn). The workload has the kinds of entries
    the arm64 decoding is about, and no soft-dirty bit anywhere.
    """
    from tests.vm.test_vm_pagemap import GUEST_CHECK, _u64s, compare

    g, ready = arm64_workload
    pid = ready["pid"]
    g.put("/tmp/livewalk-pagemap-check.py", GUEST_CHECK)
    r = g.run(f"python3 /tmp/livewalk-pagemap-check.py {pid}", timeout=1800)
    assert r.returncode == 0, r.stderr[-4000:]
    d = json.loads(r.stdout)
    maps = [tuple(m) for m in d["maps"]]
    k1 = {k: _u64s(v) for k, v in d["k1"].items()}
    k2 = {k: _u64s(v) for k, v in d["k2"].items()}
    ours = {k: _u64s(v) for k, v in d["ours"].items()}
    problems, moved, pages = compare(ready, maps, k1, k2, ours)
    kinds = _kinds_of(k1)
    print(
        f"\n[pagemap guest /proc/kcore arm64 levels={g.levels}] {pages} pages compared (64 bits each), "
        f"{len(problems)} VMAs with mismatches, {moved} moved; drgn program {d['prog_s']:.1f} s, "
        f"pagemap of {len(maps)} VMAs {d['ours_s']:.2f} s; kinds {kinds}; skipped {ready['skipped']}"
    )
    for p in problems:
        print("  MISMATCH", p)
    assert not problems
    nopfn = {k: _u64s(v) for k, v in d["nopfn"].items()}
    mask = ~((1 << 55) - 1)
    problems, _, _ = compare(
        ready, maps, {k: [v & mask for v in x] for k, x in k1.items()},
        {k: [v & mask for v in x] for k, x in k2.items()}, nopfn,
    )  # fmt: skip
    assert not problems, problems
    assert any(k.startswith("PRESENT|MMAP_EXCLUSIVE") for k in kinds), kinds
    assert any(k.startswith("PRESENT|FILE") for k in kinds), kinds
    assert any(k.startswith("SWAP") for k in kinds), kinds
    assert any("GUARD_REGION" in k for k in kinds), kinds
    assert any("UFFD_WP" in k for k in kinds), kinds
    # no CONFIG_MEM_SOFT_DIRTY on arm64: bit 55 is never set, by either side
    assert not any("SOFT_DIRTY" in k for k in kinds), kinds
    assert not any(v >> 55 & 1 for x in ours.values() for v in x)
