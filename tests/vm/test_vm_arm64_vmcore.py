# SPDX-License-Identifier: LGPL-2.1-or-later
"""livewalk on an ELF vmcore of the arm64 guest, checked against the arm64
kernel's own ``/proc`` files (the x86 vmcore test's method:
``tests/vm/test_vm_vmcore.py``).

In each arm64 configuration (4K pages, 5 levels with LPA2 and 4 levels
without) the mappings workload (``tests/workloads/mappings.py``) runs in the
guest; one guest process reads the kernel's ``/proc/PID/pagemap`` (every
VMA) and ``/proc/PID/smaps``, the guest is dumped from the host
(:meth:`vm.Guest.dump_vmcore`: QMP ``dump-guest-memory``, ELF, an aarch64
core with the VMCOREINFO note that the guest's ``qemu_fw_cfg`` driver hands
to QEMU's ``-device vmcoreinfo``), and the same process reads the kernel's
files again. Then, on the x86-64 host:

- drgn opens the core as an aarch64 Linux kernel, and livewalk's geometry
  from it is the guest's: ``vabits_actual`` (VMCOREINFO's ``TCR_EL1_T1SZ``)
  52 or 48, the levels the guest runs with, and ``kimage_voffset`` equal to
  the guest's ``_text`` minus the physical address of its "Kernel code"
  (``/proc/iomem``): the kernel image's KASLR offset is right;
- ``pagemap --format raw`` over every VMA equals the kernel's entries in all
  64 bits (a page is a mismatch only if livewalk's entry equals neither
  kernel read);
- ``smaps`` equals the kernel's text line for line;
- ``ptdump`` exits 0 with arm64's markers and maps the kernel text
  (``_stext``..``_etext`` from the guest's ``/proc/kallsyms``) read-only and
  executable, and ``ptdump --check-wx`` says what the kernel's own W+X check
  said at boot;
- a truncated copy of the core, and the core with the x86-64 vmlinux, give
  one ``livewalk: error:`` line, a non-zero exit and no traceback.

A real kdump of the arm64 guest (:meth:`vm.Guest.kdump`: ``crashkernel=``,
``kexec -p``, a panic, makedumpfile in the capture kernel), with 4K pages at
4 levels (48-bit VA) and, in the full matrix, 16K pages at 3 (47-bit VA):

- ``pagemap`` from the makedumpfile dumps (levels 31, and 0 in the full
  matrix) equals the kernel's pre-panic record in all 64 bits, ``ptdump
  --check-wx`` agrees with the boot check, ``smaps`` equals the record, and
  livewalk reads the geometry the kernel ran with from the dump;
- with 52-bit VAs in use (LPA2: 5 levels with 4K pages, 4 with 16K)
  makedumpfile 1.7.8 refuses the kernel ("PAGE SIZE 0x1000 and VA Bits 52
  not supported": its arm64 code has no LPA2 descriptors); the test says so
  and fails if that changes. Otherwise the capture kernel hands makedumpfile
  a VMCOREINFO that describes the kernel as one of the bits it runs with
  (see ``vm/guest_init.sh``); the dump keeps the kernel's own.

(``livewalk verify`` compares with the running kernel only: it has no
vmcore mode.) The dump's size and time and each command's time (drgn attach
+ debug info + walk) are printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
from livewalk.vm import Guest
from livewalk.vm.image import KERNEL_SERIES, current_image
from livewalk.vm.kdump import KdumpError, KdumpResult
from livewalk.vm.qemu import CRASHKERNEL

from tests.vm.compare import compare_pagemap, u64s
from tests.vm.test_vm_vmcore import READER, _kernel_pagemap, _vmas, _wait_guest_file
from tests.workloads.mappings import unbuildable

# The paging modes of the command line: 5 in CI, every one in the full matrix.
pytestmark = [pytest.mark.vm, pytest.mark.livewalk_vm(arches=("arm64",))]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
READY_TIMEOUT = 600.0
SNAP_TIMEOUT = 600.0
CLI_TIMEOUT = 900.0
WORKLOAD_READY = "/tmp/livewalk-arm64-vmcore-workload.json"
SNAP_DIR = "/tmp/livewalk-arm64-vmcore-snap"

#: ``vabits_actual`` of the Debian arm64 kernels (VA_BITS=52) by (page size,
#: paging levels): without LPA2 the 4K kernel runs 48 bits, the 16K one 47.
VABITS_ACTUAL = {(4096, 5): 52, (4096, 4): 48, (16384, 4): 52, (16384, 3): 47}

_PTDUMP_ROW = re.compile(r"^0x([0-9a-f]{16})-0x([0-9a-f]{16})\s+\S+ (PGD|P4D|PUD|PMD|PTE)(.*)$")


def _iomem_kernel_code(iomem: str) -> int:
    """The physical start of the kernel image ("Kernel code" in /proc/iomem)."""
    m = re.search(r"^\s*([0-9a-f]+)-[0-9a-f]+ : Kernel code$", iomem, re.M)
    assert m, iomem
    return int(m.group(1), 16)


@pytest.fixture(scope="module")
def arm64_vmcore(livewalk_guest: Guest) -> Iterator[dict[str, Any]]:
    """The mappings workload, the kernel's view before and after, and an ELF
    vmcore of the arm64 guest taken in between (deleted afterwards)."""
    g = livewalk_guest
    g._prog = None  # a QMP program of another module is not needed here
    t_module = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="livewalk-arm64-vmcore-")
    spawned: int | None = None
    ready: dict[str, Any] = {}
    try:
        g.run(f"rm -rf {WORKLOAD_READY} {SNAP_DIR}", timeout=60)
        spawned = g.spawn(f"python3 tests/workloads/mappings.py --ready-file {WORKLOAD_READY}")
        ready = g.wait_ready_file(WORKLOAD_READY, spawned, READY_TIMEOUT)
        assert set(ready["skipped"]) <= unbuildable(g.release), ready["skipped"]
        pid = int(ready["pid"])
        page = int(g.run("getconf PAGESIZE", timeout=60, check=True).stdout)
        syms = {}
        kallsyms = g.run("grep -w -e _text -e _stext -e _etext /proc/kallsyms", timeout=60, check=True)
        for line in kallsyms.stdout.splitlines():
            addr, _, name = line.split()[:3]
            syms[name] = int(addr, 16)
        kernel_code = _iomem_kernel_code(g.run("cat /proc/iomem", timeout=60, check=True).stdout)
        dmesg = g.run("dmesg", timeout=60, check=True).stdout
        wx = [m.group(1).rstrip() for m in re.finditer(r"\] (Checked W\+X mappings: .*)$", dmesg, re.M)]

        g.put("/tmp/livewalk-arm64-vmcore-reader.py", READER)
        snap = g.spawn(f"python3 /tmp/livewalk-arm64-vmcore-reader.py {pid} {SNAP_DIR}")
        # Polled with the agent's get: nothing forks in the guest between the
        # kernel's two reads and the dump (the x86 test's reason).
        before = json.loads(_wait_guest_file(g, f"{SNAP_DIR}/before.json", snap, SNAP_TIMEOUT))
        core = os.path.join(tmp, "vmcore")
        dump_s = g.dump_vmcore(core, "elf", timeout=900)
        g.put(f"{SNAP_DIR}/go", "")
        after = json.loads(_wait_guest_file(g, f"{SNAP_DIR}/after.json", snap, SNAP_TIMEOUT))
        assert before["tries"] > 0 and after["tries"] > 0, "the kernel's view never settled"

        truncated = os.path.join(tmp, "vmcore.truncated")
        with open(core, "rb") as src, open(truncated, "wb") as dst:
            dst.write(src.read(1 << 20))

        info = {
            "guest": g, "levels": g.levels, "page": page, "pid": pid, "ready": ready, "syms": syms,
            "kernel_code": kernel_code, "wx": wx, "before": before, "after": after,
            "core": core, "core_size": os.path.getsize(core), "dump_s": dump_s,
            "truncated": truncated, "symbols": os.path.dirname(g.vmlinux), "timings": {},
        }  # fmt: skip
        print(
            f"\n[arm64 vmcore levels={g.levels}] ELF dump of the {g.memory} guest: "
            f"{info['core_size'] / (1 << 30):.2f} GiB in {dump_s:.1f} s"
        )
        yield info
        print(f"\n[arm64 vmcore levels={g.levels}] host command times (drgn attach + debug info + walk): "
              + ", ".join(f"{k} {v:.2f} s" for k, v in info["timings"].items())
              + f"; module {time.monotonic() - t_module:.0f} s")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if ready.get("pid"):
            g.run(f"kill {ready['pid']}", timeout=60)
        elif spawned is not None:
            g.run(f"kill {spawned}", timeout=60)
        g.run(f"rm -rf {WORKLOAD_READY} {SNAP_DIR}", timeout=60)


def livewalk(
    v: dict[str, Any], core: str, *args: str, symbols: str | None = None, name: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``python3 -m livewalk -c CORE -s SYMBOLS ARGS...`` on the host, timed."""
    cmd = [sys.executable, "-m", "livewalk", "-c", core, "-s", symbols or v["symbols"], *args]
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, cwd=ROOT, timeout=CLI_TIMEOUT,
                       env=dict(os.environ, PYTHONPATH=ROOT))  # fmt: skip
    if name is not None:
        v["timings"][name] = time.monotonic() - t
    return p


def test_arm64_vmcore_geometry(arm64_vmcore: dict[str, Any]) -> None:
    """drgn opens QEMU's aarch64 ELF core as a Linux kernel with the image's
    vmlinux, and livewalk reads the guest's geometry and KASLR from it."""
    from livewalk.arch.arm64.pgtable import Arm64Paging
    from livewalk.backend.drgn import DrgnBackend
    from livewalk.program import open_program

    v = arm64_vmcore
    g = v["guest"]
    t = time.monotonic()
    prog = open_program(core=v["core"], symbols=[g.vmlinux], default_symbols=False)
    open_s = time.monotonic() - t
    assert prog.platform is not None and prog.platform.arch.name == "AARCH64"
    assert prog["UTS_RELEASE"].string_().decode() == g.release
    assert prog["init_task"].comm.string_() == b"swapper/0"
    p = DrgnBackend.for_program(prog).paging
    assert isinstance(p, Arm64Paging)
    voffset = v["syms"]["_text"] - v["kernel_code"]
    print(
        f"\n[arm64 vmcore levels={v['levels']}] drgn open + debug info {open_s:.1f} s; "
        f"va_bits {p.va_bits}, vabits_actual {p.vabits_actual}, levels {p.levels}, "
        f"kimage_voffset {p.kimage_voffset:#x} (guest _text - Kernel code: {voffset:#x}), "
        f"phys_offset {p.phys_offset:#x}"
    )
    want = (v["page"].bit_length() - 1, VABITS_ACTUAL[v["page"], v["levels"]], v["levels"])
    assert (p.page_shift, p.vabits_actual, p.levels) == want
    assert p.kimage_voffset == voffset
    assert prog.symbol("_stext").address == v["syms"]["_stext"]


def test_arm64_vmcore_pagemap(arm64_vmcore: dict[str, Any]) -> None:
    """``livewalk -c VMCORE pagemap --format raw``: the kernel's entries, all 64 bits."""
    v = arm64_vmcore
    vmas = _vmas(v)
    k1, k2 = _kernel_pagemap(v, "before"), _kernel_pagemap(v, "after")
    args = ["pagemap", "--pid", str(v["pid"]), "--format", "raw"]
    for s, e in vmas:
        args += ["--range", f"{s:x}:{e:x}"]
    p = livewalk(v, v["core"], *args, name="pagemap")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    ours = u64s(p.stdout)
    d = compare_pagemap(vmas, v["page"], ours, k1, k2)
    print(
        f"\n[arm64 vmcore pagemap levels={v['levels']}] {d.pages} pages in {len(vmas)} VMAs compared "
        f"({d.present} present), {len(d.bad)} mismatches, {d.moved} pages moved between kernel reads; "
        f"host {v['timings']['pagemap']:.2f} s"
    )
    assert d.present > 1000
    assert not d.bad, d.bad[:8]
    # no CONFIG_MEM_SOFT_DIRTY on arm64: bit 55 stays 0
    assert not any(x >> 55 & 1 for x in ours)
    # Without --range: every VMA in address order, the same bytes.
    p2 = livewalk(v, v["core"], "pagemap", "--pid", str(v["pid"]), "--format", "raw")
    assert p2.returncode == 0, p2.stderr.decode(errors="replace")[-4000:]
    assert p2.stdout == p.stdout


def test_arm64_vmcore_smaps(arm64_vmcore: dict[str, Any]) -> None:
    """``livewalk -c VMCORE smaps``: the kernel's smaps, line for line."""
    v = arm64_vmcore
    k1 = v["before"]["smaps"].splitlines()
    k2 = v["after"]["smaps"].splitlines()
    assert len(k1) == len(k2), "the kernel's smaps changed shape across the dump"
    p = livewalk(v, v["core"], "smaps", "--pid", str(v["pid"]), name="smaps")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    ours = p.stdout.decode("utf-8", "surrogateescape").splitlines()
    moved = sum(a != b for a, b in zip(k1, k2))
    headers = [i for i, x in enumerate(k1) if re.match(r"^[0-9a-f]+-", x)]
    bad = [
        f"line {i + 1}: kernel {a!r} / {b!r}, ours {o!r} in {k1[max(h for h in headers if h <= i)]!r}"
        for i, (a, b, o) in enumerate(zip(k1, k2, ours))
        if o != a and o != b
    ]
    print(
        f"\n[arm64 vmcore smaps levels={v['levels']}] {len(k1)} lines compared "
        f"({sum(1 for x in k1 if re.match(r'^[0-9a-f]+-', x))} VMAs), {len(bad)} mismatches, "
        f"{moved} lines moved between kernel reads; host {v['timings']['smaps']:.2f} s"
    )
    assert len(ours) == len(k1), f"{len(ours)} lines, kernel {len(k1)}"
    assert not bad, bad[:8]


def test_arm64_vmcore_ptdump(arm64_vmcore: dict[str, Any]) -> None:
    """``livewalk -c VMCORE ptdump``: arm64's format, the kernel text read-only
    and executable; ``--check-wx`` agrees with the kernel's check at boot."""
    v = arm64_vmcore
    p = livewalk(v, v["core"], "ptdump", name="ptdump")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    lines = p.stdout.decode().splitlines()
    markers = [ln for ln in lines if ln.startswith("---[")]
    assert markers[:2] == ["---[ Linear Mapping start ]---", "---[ Linear Mapping end ]---"], markers
    assert "---[ Modules start ]---" in markers and "---[ vmemmap start ]---" in markers, markers
    start, end = v["syms"]["_stext"], v["syms"]["_etext"]
    covering = []
    for ln in lines:
        if ln.startswith("---["):
            continue
        m = _PTDUMP_ROW.match(ln)
        assert m, ln
        s, e = int(m.group(1), 16), int(m.group(2), 16) or 1 << 64
        if s < end and e > start:
            covering.append((s, e, m.group(4)))
    assert covering, f"no ptdump range covers the kernel text [{start:#x}, {end:#x})"
    assert covering[0][0] <= start and covering[-1][1] >= end
    assert all(a[1] == b[0] for a, b in zip(covering, covering[1:])), covering
    for s, e, attrs in covering:
        assert " ro x " in attrs and "MEM/NORMAL" in attrs, (hex(s), hex(e), attrs)
    verdict = ""
    if v["wx"]:
        w = livewalk(v, v["core"], "ptdump", "--check-wx", name="ptdump --check-wx")
        assert w.returncode in (0, 1), w.stderr.decode(errors="replace")[-4000:]
        verdict = w.stdout.decode().splitlines()[-1]
        assert verdict == v["wx"][-1]
        assert w.returncode == (0 if "passed" in verdict else 1)
    print(f"\n[arm64 vmcore ptdump levels={v['levels']}] kernel text [{start:#x}, {end:#x}) in "
          f"{len(covering)} ro+x ranges; {len(lines)} lines; host {v['timings']['ptdump']:.2f} s; "
          f"W+X: kernel at boot {v['wx'][-1:]}, livewalk {verdict!r}")  # fmt: skip


@pytest.mark.parametrize("which", ["truncated", "x86_64_vmlinux"])
def test_arm64_vmcore_bad_input(arm64_vmcore: dict[str, Any], which: str) -> None:
    """A truncated arm64 core, and the arm64 core with the x86-64 guest's
    vmlinux: one ``livewalk: error:`` line, non-zero exit, no traceback."""
    v = arm64_vmcore
    core, symbols = v["core"], None
    if which == "truncated":
        core = v["truncated"]
    else:
        img = current_image(arch="x86_64")
        if img is None:
            pytest.skip("no x86_64 image built (vm/build) for its vmlinux")
        symbols = str(img.vmlinux)
    for args in (("pagemap", "--pid", str(v["pid"])), ("ptdump",)):
        p = livewalk(v, core, *args, symbols=symbols)
        err = p.stderr.decode(errors="replace")
        lines = [x for x in err.splitlines() if x.strip()]
        assert p.returncode != 0, (which, args, err)
        assert "Traceback" not in err, err
        assert len(lines) == 1 and lines[0].startswith("livewalk: error: "), err
        assert p.stdout == b""
        if which == "x86_64_vmlinux":
            assert "is an x86_64 vmlinux, the kernel is arm64" in lines[0], lines[0]
        print(f"\n[arm64 vmcore bad input levels={v['levels']}] {which} {args[0]}: exit {p.returncode}: {lines[0]}")


# --- a real kdump of the arm64 guest (makedumpfile in the capture kernel) -----

KDUMP_READY = "/tmp/livewalk-arm64-kdump-workload.json"
#: makedumpfile's dump levels: 31 (what analysts keep) in CI, and 0 (every
#: page, about a minute under TCG) too in the full matrix.
_FULL = os.environ.get("LIVEWALK_KERNEL_MATRIX", "") == "full"
KDUMP_LEVELS = ("31", "0") if _FULL else ("31",)
#: (kernel series, paging levels) of the kdumps: 4K pages at 4 levels in CI,
#: and 16K pages at 3 (47-bit VA) too in the full matrix. makedumpfile walks
#: neither with the 52 bits the kernels are built for: the capture kernel
#: describes each as a kernel of the bits it runs with (vm/guest_init.sh).
KDUMP_KERNELS = [("7", 4), *([("16k", 3)] if _FULL else [])]
#: (kernel series, paging levels, PAGESIZE as makedumpfile prints it) of the
#: kernels that run 52-bit VAs (LPA2), which makedumpfile refuses.
KDUMP_REFUSED = [("7", 5, "0x1000"), *([("16k", 4, "0x4000")] if _FULL else [])]


def _kdump_guest(tmp: str, levels: int, kernel: str = "7") -> Guest:
    g = Guest(arch="arm64", kernel=kernel, levels=levels, extra_cmdline=CRASHKERNEL,
              out_dir=os.path.join(tmp, "out"))  # fmt: skip
    g.start()
    return g


@pytest.fixture(scope="module", params=KDUMP_KERNELS, ids=[f"{k}-l{lv}" for k, lv in KDUMP_KERNELS])
def arm64_kdump(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """One kdump of the mappings workload in an arm64 guest of
    :data:`KDUMP_KERNELS` (dump levels 31, and 0 in the full matrix)."""
    kernel, levels = request.param
    tmp = tempfile.mkdtemp(prefix="livewalk-arm64-kdump-")
    g: Guest | None = None
    try:
        t = time.monotonic()
        g = _kdump_guest(tmp, levels, kernel)
        boot = g.boot_seconds
        k: KdumpResult = g.kdump(
            f"python3 tests/workloads/mappings.py --ready-file {KDUMP_READY}", ready_file=KDUMP_READY,
            dump_levels=tuple(int(x) for x in KDUMP_LEVELS), ready_timeout=READY_TIMEOUT,
            capture_timeout=300, dump_timeout=1200,
        )  # fmt: skip
        assert set(k.ready["skipped"]) <= unbuildable(g.release), k.ready["skipped"]
        print(f"\n[arm64 kdump {kernel} levels={levels}] boot {boot:.1f} s; " + ", ".join(f"{n} {s:.1f} s" for n, s in k.timings.items())
              + "; sizes " + ", ".join(f"{n}: {b / (1 << 20):.1f} MiB" for n, b in k.sizes.items())
              + f"; fixture {time.monotonic() - t:.0f} s")  # fmt: skip
        yield {"k": k, "dumps": {str(lvl): str(p) for lvl, p in k.dumps.items()}, "pid": k.pid,
               "symbols": os.path.dirname(g.vmlinux), "timings": {}, "levels": levels, "kernel": kernel,
               "page": KERNEL_SERIES[g.kernel].page_size}  # fmt: skip
    finally:
        if g is not None:
            g.stop()  # kdump() stops it; not if the workload failed first
        shutil.rmtree(tmp, ignore_errors=True)


def _record(kd: dict[str, Any], name: str) -> bytes:
    return (kd["k"].record / name).read_bytes()  # type: ignore[no-any-return]


@pytest.mark.livewalk_vm_arm64
def test_arm64_kdump_record_verified(arm64_kdump: dict[str, Any]) -> None:
    note = json.loads(_record(arm64_kdump, "record.json"))
    assert note["verified"], f"the workload's /proc files moved while they were recorded: {note}"


@pytest.mark.livewalk_vm_arm64
@pytest.mark.parametrize("level", KDUMP_LEVELS)
def test_arm64_kdump_geometry(arm64_kdump: dict[str, Any], level: str) -> None:
    """The dump carries the kernel's own VMCOREINFO (VA_BITS 52, biased
    PHYS_OFFSET), not the one of fewer bits makedumpfile was handed, and
    livewalk reads from it the geometry the kernel ran with."""
    from livewalk.arch.arm64.pgtable import Arm64Paging
    from livewalk.backend.drgn import DrgnBackend
    from livewalk.program import open_program

    kd = arm64_kdump
    prog = open_program(core=kd["dumps"][level], symbols=[kd["symbols"]], default_symbols=False)
    info = prog["VMCOREINFO"].string_().decode()
    assert "\nNUMBER(VA_BITS)=52\n" in info, info
    p = DrgnBackend.for_program(prog).paging
    assert isinstance(p, Arm64Paging)
    levels = kd["levels"]
    assert (p.va_bits, p.vabits_actual, p.levels) == (52, VABITS_ACTUAL[kd["page"], levels], levels)
    assert p.page_size == kd["page"]


@pytest.mark.livewalk_vm_arm64
@pytest.mark.parametrize("level", KDUMP_LEVELS)
def test_arm64_kdump_pagemap(arm64_kdump: dict[str, Any], level: str) -> None:
    """``livewalk -c DUMP pagemap --format raw``: the pre-panic kernel's entries, all 64 bits."""
    kd = arm64_kdump
    vmas = []
    for line in _record(kd, "maps").decode().splitlines():
        s, e = (int(x, 16) for x in line.split()[0].split("-"))
        vmas.append((s, e))
    kernel = u64s(_record(kd, "pagemap"))
    args = ["pagemap", "--pid", str(kd["pid"]), "--format", "raw"]
    for s, e in vmas:
        args += ["--range", f"{s:x}:{e:x}"]
    p = livewalk(kd, kd["dumps"][level], *args, name=f"pagemap-{level}")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    d = compare_pagemap(vmas, kd["page"], u64s(p.stdout), kernel)
    print(f"\n[arm64 kdump {kd['kernel']} pagemap level {level}] {d.pages} pages in {len(vmas)} VMAs "
          f"({d.present} present), {len(d.bad)} mismatches; host {kd['timings'][f'pagemap-{level}']:.2f} s")  # fmt: skip
    assert d.present > 1000
    assert not d.bad, d.bad[:8]


@pytest.mark.livewalk_vm_arm64
@pytest.mark.parametrize("level", KDUMP_LEVELS)
def test_arm64_kdump_smaps(arm64_kdump: dict[str, Any], level: str) -> None:
    kd = arm64_kdump
    p = livewalk(kd, kd["dumps"][level], "smaps", "--pid", str(kd["pid"]))
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    kernel = _record(kd, "smaps").decode("utf-8", "surrogateescape").splitlines()
    ours = p.stdout.decode("utf-8", "surrogateescape").splitlines()
    bad = [f"line {i + 1}: kernel {a!r}, ours {o!r}" for i, (a, o) in enumerate(zip(kernel, ours)) if a != o]
    print(f"\n[arm64 kdump {kd['kernel']} smaps level {level}] {len(kernel)} lines, {len(bad)} mismatches")
    assert len(ours) == len(kernel), f"{len(ours)} lines, kernel {len(kernel)}"
    assert not bad, bad[:8]


@pytest.mark.livewalk_vm_arm64
@pytest.mark.parametrize("level", KDUMP_LEVELS)
def test_arm64_kdump_ptdump_wx(arm64_kdump: dict[str, Any], level: str) -> None:
    kd = arm64_kdump
    dmesg = _record(kd, "dmesg").decode(errors="replace")
    boot = [m.group(1).rstrip() for m in re.finditer(r"\] (Checked W\+X mappings: .*)$", dmesg, re.M)]
    if not boot:
        pytest.skip("the kernel did not run ptdump_check_wx() at boot (no CONFIG_DEBUG_WX)")
    p = livewalk(kd, kd["dumps"][level], "ptdump", "--check-wx")
    assert p.returncode in (0, 1), p.stderr.decode(errors="replace")[-4000:]
    verdict = p.stdout.decode().splitlines()[-1]
    print(f"\n[arm64 kdump {kd['kernel']} ptdump --check-wx level {level}] kernel at boot {boot[-1]!r}; livewalk {verdict!r}")
    assert verdict == boot[-1]


@pytest.mark.livewalk_vm_arm64
@pytest.mark.parametrize(("kernel", "levels", "page"), KDUMP_REFUSED,
                         ids=[f"{k}-l{lv}" for k, lv, _ in KDUMP_REFUSED])  # fmt: skip
def test_arm64_kdump_52_bit_va_makedumpfile_refuses(kernel: str, levels: int, page: str) -> None:
    """With 52-bit VAs in use (LPA2: 5 levels with 4K pages, 4 with 16K) the
    capture kernel comes up and makedumpfile refuses the kernel: the kdump
    fails fast, with its reason."""
    tmp = tempfile.mkdtemp(prefix="livewalk-arm64-kdump52-")
    g: Guest | None = None
    try:
        t = time.monotonic()
        g = _kdump_guest(tmp, levels, kernel)
        with pytest.raises(KdumpError, match=rf"PAGE SIZE {page} and VA Bits 52 not supported"):
            g.kdump("sleep 600", dump_levels=(31,), capture_timeout=300)
        print(f"\n[arm64 kdump {kernel} levels={levels}] makedumpfile refused, as expected, "
              f"in {time.monotonic() - t:.0f} s")  # fmt: skip
    finally:
        if g is not None:
            g.stop()
        shutil.rmtree(tmp, ignore_errors=True)
