# SPDX-License-Identifier: LGPL-2.1-or-later
"""livewalk on a vmcore: the crash-dump analyst's case, checked against the
guest kernel's own ``/proc`` files.

In each paging mode (5 and 4 levels) the mappings workload
(``tests/workloads/mappings.py``) runs in the test VM; one guest process
(like ``scripts/proc_snapshot.py``) reads the kernel's ``/proc/PID/pagemap`` (every
VMA) and ``/proc/PID/smaps``, the guest is dumped from the host
(:meth:`vm.Guest.dump_vmcore`, QMP ``dump-guest-memory``, ELF: QEMU 7.2's
``kdump-zlib`` is the flattened makedumpfile format with an empty
``utsname``, which drgn 0.3.0 does not open), and the same process reads the
kernel's files again. It stays alive across the dump, so the mapcounts of the
pages it shares with the workload (libc, python) are the same in the dump as
in its reads. Then, on the host, the command line is run on the core:

- ``pagemap --format raw`` over every VMA equals the kernel's bytes (a page
  is a mismatch only if livewalk's entry equals neither kernel read);
- ``smaps`` equals the kernel's text line for line (same rule per line);
- ``vtop`` of a THP and of a 4 KiB page gives the kernel's pagemap PFN;
- ``ptdump`` exits 0 and maps the kernel text (``_text``..``_etext`` from
  the guest's ``/proc/kallsyms``) read-only and executable;
- a truncated copy of the core, a non-core ELF file and a user-space core
  (dumped by the guest kernel) give one ``livewalk: error:`` line, a non-zero
  exit and no traceback.

Timings (dump, and each command: drgn attach + debug info + walk) are printed.
"""

from __future__ import annotations

import base64
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

from tests.vm.compare import PM_PRESENT, compare_pagemap, u64s
from tests.workloads.mappings import unbuildable

pytestmark = pytest.mark.vm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = 4096
PM_PFRAME_MASK = (1 << 55) - 1
READY_TIMEOUT = 300.0
CLI_TIMEOUT = 600.0
WORKLOAD_READY = "/tmp/livewalk-vmcore-workload.json"
SNAP_DIR = "/tmp/livewalk-vmcore-snap"

# Runs in the guest: the kernel's pagemap (every VMA) and smaps of PID,
# written to DIR/before.json, then (once DIR/go exists) to DIR/after.json.
# Like scripts/proc_snapshot.py, one process reads both and lives across the
# dump. Each snapshot is taken when two reads 0.3 s apart agree, so a
# short-lived process that maps libc (a shell) does not skew the mapcounts
# of the shared pages in one read; the host sends nothing that forks in the
# guest between the two snapshots (it polls with the agent's get/put).
READER = r"""
import base64, json, os, sys, time
pid, d = int(sys.argv[1]), sys.argv[2]
P = os.sysconf("SC_PAGE_SIZE")  # the guest's page size: 4K, or 16K on arm64-16k


def snapshot():
    with open(f"/proc/{pid}/maps") as f:
        maps = [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in f]
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        pm = {f"{s:x}-{e:x}": base64.b64encode(os.pread(fd, (e - s) // P * 8, s // P * 8)).decode()
              for s, e in maps}
    finally:
        os.close(fd)
    with open(f"/proc/{pid}/smaps") as f:
        return {"pagemap": pm, "smaps": f.read()}


def stable():
    a = snapshot()
    for tries in range(100):
        time.sleep(0.3)
        b = snapshot()
        if a == b:
            b["tries"] = tries + 1
            return b
        a = b
    a["tries"] = -1
    return a


def write(name, data):
    with open(f"{d}/{name}.tmp", "w") as f:
        json.dump(data, f)
    os.rename(f"{d}/{name}.tmp", f"{d}/{name}")


os.makedirs(d, exist_ok=True)
stable()  # warm up every code path
write("before.json", stable())
deadline = time.monotonic() + 1800
while not os.path.exists(f"{d}/go") and time.monotonic() < deadline:
    time.sleep(0.05)
write("after.json", stable())
"""

_PTDUMP_LINE = re.compile(r"^0x([0-9a-f]+)-0x([0-9a-f]+)\s+\S+\s+(.*)$")


def _wait_guest_file(
    g: Any, path: str, pid: int | None, timeout: float, *, check_alive: bool = False
) -> bytes:
    """The contents of a guest file once it exists (written atomically by a
    spawned process). Polls with the agent's in-process ``get`` (no process
    is started in the guest unless ``check_alive``: then fail early if
    process ``pid`` ended)."""
    deadline = time.monotonic() + timeout
    while True:
        if check_alive and pid is not None:
            alive = g.run(f"grep -q '^State:[[:space:]]*[^Z[:space:]]' /proc/{pid}/status", timeout=60)
            if alive.returncode != 0 and not g.run(f"test -s {path}", timeout=60).returncode == 0:
                pytest.fail(f"guest process {pid} ended before writing {path}: {g.spawn_log(pid)[-4000:]}")
        try:
            data = g.get(path)
            if data:
                return data  # type: ignore[no-any-return]
        except Exception:  # GuestError: not there yet
            pass
        if time.monotonic() > deadline:
            log = g.spawn_log(pid)[-4000:] if pid is not None else ""
            pytest.fail(f"no {path} from the guest after {timeout:.0f} s: {log}")
        time.sleep(0.2)


def _user_core(g: Any, dest: str) -> None:
    """A core of a user process (``sleep`` killed by SIGSEGV), dumped by the guest kernel."""
    old = g.run("cat /proc/sys/kernel/core_pattern", timeout=60, check=True).stdout.strip()
    try:
        g.run("echo /tmp/livewalk-usercore.%p > /proc/sys/kernel/core_pattern", timeout=60, check=True)
        r = g.run(
            "ulimit -c unlimited; sleep 100 & p=$!; sleep 0.5; kill -SEGV $p; wait $p; echo $p",
            timeout=120,
        )
        pid = r.stdout.strip().splitlines()[-1]
        path = f"/tmp/livewalk-usercore.{pid}"
        data = _wait_guest_file(g, path, None, 60)
        g.run(f"rm -f {path}", timeout=60)
    finally:
        g.run(f"echo '{old}' > /proc/sys/kernel/core_pattern", timeout=60)
    assert data[:4] == b"\x7fELF" and data[16] == 4, "the guest did not write an ELF core"  # ET_CORE
    with open(dest, "wb") as f:
        f.write(data)


@pytest.fixture(scope="module")
def vmcore(fidelity_guest: Any) -> Iterator[dict[str, Any]]:
    """The mappings workload, the kernel's view before and after, and an ELF
    vmcore of each fidelity-core guest taken in between (deleted afterwards)."""
    g = fidelity_guest
    tmp = tempfile.mkdtemp(prefix="livewalk-vmcore-")
    spawned: int | None = None
    ready: dict[str, Any] = {}
    try:
        g.run(f"rm -rf {WORKLOAD_READY} {SNAP_DIR}", timeout=60)
        spawned = g.spawn(f"python3 tests/workloads/mappings.py --ready-file {WORKLOAD_READY}")
        ready = json.loads(_wait_guest_file(g, WORKLOAD_READY, spawned, READY_TIMEOUT, check_alive=True))
        assert set(ready["skipped"]) <= unbuildable(g.release), ready["skipped"]
        pid = int(ready["pid"])
        syms = {}
        for line in g.run("grep -w -e _text -e _etext /proc/kallsyms", timeout=60, check=True).stdout.splitlines():
            addr, _, name = line.split()[:3]
            syms[name] = int(addr, 16)

        g.put("/tmp/livewalk-vmcore-reader.py", READER)
        snap = g.spawn(f"python3 /tmp/livewalk-vmcore-reader.py {pid} {SNAP_DIR}")
        before = json.loads(_wait_guest_file(g, f"{SNAP_DIR}/before.json", snap, 300))
        core = os.path.join(tmp, "vmcore")
        dump_s = g.dump_vmcore(core, "elf", timeout=600)
        g.put(f"{SNAP_DIR}/go", "")
        after = json.loads(_wait_guest_file(g, f"{SNAP_DIR}/after.json", snap, 300))
        assert before["tries"] > 0 and after["tries"] > 0, "the kernel's view never settled"

        truncated = os.path.join(tmp, "vmcore.truncated")
        with open(core, "rb") as src, open(truncated, "wb") as dst:
            dst.write(src.read(1 << 20))
        usercore = os.path.join(tmp, "usercore")
        _user_core(g, usercore)

        info = {
            "guest": g, "levels": g.levels, "pid": pid, "ready": ready, "syms": syms,
            "before": before, "after": after, "core": core, "core_size": os.path.getsize(core),
            "dump_s": dump_s, "truncated": truncated, "usercore": usercore,
            "symbols": os.path.dirname(g.vmlinux), "timings": {},
        }  # fmt: skip
        print(
            f"\n[vmcore levels={g.levels}] ELF dump of {g.memory} guest: "
            f"{info['core_size'] / (1 << 30):.2f} GiB in {dump_s:.1f} s"
        )
        yield info
        print(f"\n[vmcore levels={g.levels}] host command times (drgn attach + debug info + walk): "
              + ", ".join(f"{k} {v:.2f} s" for k, v in info["timings"].items()))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if ready.get("pid"):
            g.run(f"kill {ready['pid']}", timeout=60)
        elif spawned is not None:
            g.run(f"kill {spawned}", timeout=60)
        g.run(f"rm -rf {WORKLOAD_READY} {SNAP_DIR}", timeout=60)


def livewalk(
    v: dict[str, Any], core: str, *args: str, name: str | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``python3 -m livewalk -c CORE -s DIR ARGS...`` on the host, timed."""
    cmd = [sys.executable, "-m", "livewalk", "-c", core, "-s", v["symbols"], *args]
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, cwd=ROOT, timeout=CLI_TIMEOUT)
    if name is not None:
        v["timings"][name] = time.monotonic() - t
    return p


def _vmas(v: dict[str, Any]) -> list[tuple[int, int]]:
    keys = list(v["before"]["pagemap"])
    assert keys == list(v["after"]["pagemap"]), "the workload's VMAs changed across the dump"
    return [tuple(int(x, 16) for x in k.split("-")) for k in keys]  # type: ignore[misc]


def _kernel_pagemap(v: dict[str, Any], when: str) -> list[int]:
    pm = v[when]["pagemap"]
    return u64s(b"".join(base64.b64decode(pm[f"{s:x}-{e:x}"]) for s, e in _vmas(v)))


def _kernel_entry(v: dict[str, Any], addr: int) -> int:
    for s, e in _vmas(v):
        if s <= addr < e:
            k1 = u64s(base64.b64decode(v["before"]["pagemap"][f"{s:x}-{e:x}"]))
            k2 = u64s(base64.b64decode(v["after"]["pagemap"][f"{s:x}-{e:x}"]))
            i = (addr - s) // PAGE
            assert k1[i] == k2[i], f"the kernel's entry for {addr:#x} moved across the dump"
            return k1[i]
    raise AssertionError(f"{addr:#x} is in no VMA of the workload")


def test_vmcore_pagemap(vmcore: dict[str, Any]) -> None:
    v = vmcore
    vmas = _vmas(v)
    k1, k2 = _kernel_pagemap(v, "before"), _kernel_pagemap(v, "after")
    args = ["pagemap", "--pid", str(v["pid"]), "--format", "raw"]
    for s, e in vmas:
        args += ["--range", f"{s:x}:{e:x}"]
    p = livewalk(v, v["core"], *args, name="pagemap")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    d = compare_pagemap(vmas, PAGE, u64s(p.stdout), k1, k2)
    print(
        f"\n[vmcore pagemap levels={v['levels']}] {d.pages} pages in {len(vmas)} VMAs compared "
        f"({d.present} present), {len(d.bad)} mismatches, {d.moved} pages moved between kernel reads; "
        f"host {v['timings']['pagemap']:.2f} s"
    )
    assert not d.bad, d.bad[:8]
    # Without --range: every VMA in address order, the same bytes.
    p2 = livewalk(v, v["core"], "pagemap", "--pid", str(v["pid"]), "--format", "raw")
    assert p2.returncode == 0, p2.stderr.decode(errors="replace")[-4000:]
    assert p2.stdout == p.stdout


def test_vmcore_smaps(vmcore: dict[str, Any]) -> None:
    v = vmcore
    k1 = v["before"]["smaps"].splitlines()
    k2 = v["after"]["smaps"].splitlines()
    assert len(k1) == len(k2), "the kernel's smaps changed shape across the dump"
    p = livewalk(v, v["core"], "smaps", "--pid", str(v["pid"]), name="smaps")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    ours = p.stdout.decode("utf-8", "surrogateescape").splitlines()
    moved = sum(a != b for a, b in zip(k1, k2))
    bad = [
        f"line {i + 1}: kernel {a!r} / {b!r}, ours {o!r}"
        for i, (a, b, o) in enumerate(zip(k1, k2, ours))
        if o != a and o != b
    ]
    print(
        f"\n[vmcore smaps levels={v['levels']}] {len(k1)} lines compared "
        f"({sum(1 for x in k1 if re.match(r'^[0-9a-f]+-', x))} VMAs), {len(bad)} mismatches, "
        f"{moved} lines moved between kernel reads; host {v['timings']['smaps']:.2f} s"
    )
    assert len(ours) == len(k1), f"{len(ours)} lines, kernel {len(k1)}"
    assert not bad, bad[:8]


def test_vmcore_vtop(vmcore: dict[str, Any]) -> None:
    v = vmcore
    ready = v["ready"]
    thp = ready["regions"]["thp"][0] + 3 * PAGE
    small = ready["parts"]["anon"]["written"][0] + PAGE
    p = livewalk(v, v["core"], "vtop", "--pid", str(v["pid"]), f"{thp:x}", f"{small:x}", name="vtop")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    text = p.stdout.decode()
    for addr, leaf in ((thp, "2 MiB PMD leaf"), (small, "4 KiB PTE leaf")):
        entry = _kernel_entry(v, addr)
        assert entry & PM_PRESENT and entry & PM_PFRAME_MASK, f"kernel: {addr:#x} -> {entry:#x}"
        m = re.search(rf"^{addr:x}\s+([0-9a-f]+)\s*$", text, re.M)
        assert m, f"no translation of {addr:x} in:\n{text}"
        assert int(m.group(1), 16) >> 12 == entry & PM_PFRAME_MASK, (
            f"{addr:#x}: vtop {m.group(1)}, kernel PFN {entry & PM_PFRAME_MASK:#x}"
        )
        block = text[m.end():].split("\nVIRTUAL")[0]
        assert leaf in block, block
        print(f"\n[vmcore vtop levels={v['levels']}] {addr:#x} -> {m.group(1)} "
              f"(kernel PFN {entry & PM_PFRAME_MASK:#x}), {leaf}")


def test_vmcore_ptdump(vmcore: dict[str, Any]) -> None:
    v = vmcore
    p = livewalk(v, v["core"], "ptdump", name="ptdump")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    text = p.stdout.decode()
    assert "---[ High Kernel Mapping ]---" in text
    start, end = v["syms"]["_text"], v["syms"]["_etext"]
    covering = []
    for line in text.splitlines():
        m = _PTDUMP_LINE.match(line)
        if m:
            s, e = int(m.group(1), 16), int(m.group(2), 16)
            if s < end and e > start:
                covering.append((s, e, m.group(3).split()))
    assert covering, f"no ptdump range covers the kernel text [{start:#x}, {end:#x})"
    assert covering[0][0] <= start and covering[-1][1] >= end
    assert all(a[1] == b[0] for a, b in zip(covering, covering[1:])), covering
    for s, e, attrs in covering:
        assert "x" in attrs and "NX" not in attrs and "ro" in attrs, (hex(s), hex(e), attrs)
    print(f"\n[vmcore ptdump levels={v['levels']}] kernel text [{start:#x}, {end:#x}) in "
          f"{len(covering)} ro+x ranges; {len(text.splitlines())} lines; host {v['timings']['ptdump']:.2f} s")


@pytest.mark.parametrize("which", ["truncated", "not_a_core", "user_core"])
def test_vmcore_bad_core(vmcore: dict[str, Any], which: str) -> None:
    v = vmcore
    path = {"truncated": v["truncated"], "not_a_core": "/bin/true", "user_core": v["usercore"]}[which]
    for args in (("smaps", "--pid", str(v["pid"])), ("ptdump",)):
        p = livewalk(v, path, *args)
        err = p.stderr.decode(errors="replace")
        lines = [x for x in err.splitlines() if x.strip()]
        assert p.returncode != 0, (which, args, err)
        assert "Traceback" not in err, err
        assert len(lines) == 1 and lines[0].startswith("livewalk: error: "), err
        assert p.stdout == b""
        print(f"\n[vmcore bad core levels={v['levels']}] {which} {args[0]}: exit {p.returncode}: {lines[0]}")
