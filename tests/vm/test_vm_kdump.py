# SPDX-License-Identifier: LGPL-2.1-or-later
"""livewalk on a real kdump: what the crash-dump analyst has.

One guest (4-level paging, ``crashkernel=256M``) runs the mappings workload
(``tests/workloads/mappings.py``) and is crashed by :meth:`Guest.kdump
<livewalk.vm.Guest.kdump>`: just before the panic the guest records the
kernel's own ``/proc/PID/{maps,pagemap,smaps,smaps_rollup}`` of the workload
(verified unchanged after writing it) and its ``dmesg``; the capture kernel
writes makedumpfile dumps of ``/proc/vmcore`` at dump levels 31 and 0, and
level 31 a second time as makedumpfile 1.7.8 makes it unaided (it misreads
Linux 7.2's compound pages, see ``vm/guest_init.sh``). Then, on the host:

- ``livewalk pagemap --format raw`` over every recorded VMA equals the
  kernel's bytes; ``livewalk smaps`` equals its text, line for line;
  :func:`~livewalk.proc.smaps.format_smaps_rollup` equals ``smaps_rollup``;
- ``livewalk vtop`` of a THP and a 4 KiB page gives the kernel's PFN;
- ``livewalk ptdump --check-wx`` agrees with the boot-time W+X check in
  ``dmesg``;
- crash's commands on the makedumpfile dumps themselves: ``vm -p`` of the
  workload agrees with the recorded pagemap page for page (frame, swap, not
  mapped), ``vtop`` (crash's layout) and ``pte`` of its leaf entry give the
  kernel's frame, and ``pfn`` of that frame finds the workload's mapping;
- on the unaided level-31 dump (slab pages missing), a truncated dump and a
  dump opened with the wrong vmlinux: an answer or one ``livewalk: error:``
  line, never a traceback; what the dump lacks is said per page or per field
  (``not in dump``).

Times and sizes are printed.
"""

from __future__ import annotations

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
from livewalk.vm.kdump import KdumpResult
from livewalk.vm.qemu import CRASHKERNEL

pytestmark = pytest.mark.vm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = 4096
PM_PRESENT = 1 << 63
PM_PFRAME_MASK = (1 << 55) - 1
CLI_TIMEOUT = 600.0
READY = "/tmp/livewalk-kdump-workload.json"
LEVELS = ("31", "0")


@pytest.fixture(scope="module")
def kd() -> Iterator[dict[str, Any]]:
    """One kdump of the mappings workload (dump levels 31 and 0, and 31 unaided)."""
    tmp = tempfile.mkdtemp(prefix="livewalk-kdump-")
    try:
        g = Guest(levels=4, extra_cmdline=CRASHKERNEL, out_dir=os.path.join(tmp, "out"))
        g.start()
        boot = g.boot_seconds
        k: KdumpResult = g.kdump(
            f"python3 tests/workloads/mappings.py --ready-file {READY}",
            ready_file=READY, dump_levels=(31, 0), raw_levels=(31,),
        )  # fmt: skip
        assert not k.ready["skipped"], k.ready["skipped"]
        dumps = {str(lvl): str(p) for lvl, p in k.dumps.items()}
        dumps["31-raw"] = str(k.raw_dumps[31])
        truncated = os.path.join(tmp, "vmcore-truncated")
        with open(dumps["31"], "rb") as src, open(truncated, "wb") as dst:
            dst.write(src.read(os.path.getsize(dumps["31"]) // 2))
        print(f"\n[kdump] boot {boot:.1f} s; " + ", ".join(f"{n} {s:.1f} s" for n, s in k.timings.items())
              + "; sizes " + ", ".join(f"{n}: {b / (1 << 20):.1f} MiB" for n, b in k.sizes.items()))
        yield {"k": k, "dumps": dumps, "truncated": truncated, "symbols": os.path.dirname(g.vmlinux),
               "vmlinux": g.vmlinux, "pid": k.pid, "ready": k.ready, "timings": {}}  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def livewalk(kd: dict[str, Any], core: str, *args: str, symbols: str | None = None,
             name: str | None = None) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """``python3 -m livewalk -c CORE -s SYMBOLS ARGS...`` on the host, timed."""
    cmd = [sys.executable, "-m", "livewalk", "-c", core, "-s", symbols or kd["symbols"], *args]
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, cwd=ROOT, timeout=CLI_TIMEOUT)
    if name is not None:
        kd["timings"][name] = time.monotonic() - t
    return p


def _record(kd: dict[str, Any], name: str) -> bytes:
    return (kd["k"].record / name).read_bytes()


def _vmas(kd: dict[str, Any]) -> list[tuple[int, int]]:
    out = []
    for line in _record(kd, "maps").decode().splitlines():
        s, e = (int(x, 16) for x in line.split()[0].split("-"))
        out.append((s, e))
    return out


def _u64s(raw: bytes) -> list[int]:
    assert len(raw) % 8 == 0
    return list(memoryview(raw).cast("Q"))


def test_kdump_record_verified(kd: dict[str, Any]) -> None:
    import json

    note = json.loads(_record(kd, "record.json"))
    assert note["verified"], f"the workload's /proc files moved while they were recorded: {note}"


@pytest.mark.parametrize("level", LEVELS)
def test_kdump_pagemap(kd: dict[str, Any], level: str) -> None:
    vmas = _vmas(kd)
    kernel = _u64s(_record(kd, "pagemap"))
    args = ["pagemap", "--pid", str(kd["pid"]), "--format", "raw"]
    for s, e in vmas:
        if s < 1 << 47:  # not [vsyscall]: pagemap stops at the user address space
            args += ["--range", f"{s:x}:{e:x}"]
    p = livewalk(kd, kd["dumps"][level], *args, name=f"pagemap-{level}")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    ours = _u64s(p.stdout)
    n_user = sum((e - s) // PAGE for s, e in vmas if s < 1 << 47)
    kernel = kernel[:n_user]
    assert len(ours) == len(kernel), f"{len(ours)} entries, kernel {len(kernel)}"
    starts, n = [], 0
    for s, e in vmas:
        starts.append((n, s))
        n += (e - s) // PAGE
    bad = [i for i, (a, o) in enumerate(zip(kernel, ours)) if a != o]

    def where(i: int) -> str:
        first, s = max(x for x in starts if x[0] <= i)
        return f"{s + (i - first) * PAGE:#x}: kernel {kernel[i]:#018x} ours {ours[i]:#018x}"

    present = sum(1 for x in kernel if x & PM_PRESENT)
    print(f"\n[kdump pagemap level {level}] {len(kernel)} pages in {len(vmas)} VMAs ({present} present), "
          f"{len(bad)} mismatches; host {kd['timings'][f'pagemap-{level}']:.2f} s")
    assert not bad, [where(i) for i in bad[:8]]


@pytest.mark.parametrize("level", LEVELS)
def test_kdump_smaps(kd: dict[str, Any], level: str) -> None:
    kernel = _record(kd, "smaps").decode("utf-8", "surrogateescape").splitlines()
    p = livewalk(kd, kd["dumps"][level], "smaps", "--pid", str(kd["pid"]), name=f"smaps-{level}")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    ours = p.stdout.decode("utf-8", "surrogateescape").splitlines()
    bad = [f"line {i + 1}: kernel {a!r}, ours {o!r}" for i, (a, o) in enumerate(zip(kernel, ours)) if a != o]
    nvmas = sum(1 for x in kernel if re.match(r"^[0-9a-f]+-", x))
    print(f"\n[kdump smaps level {level}] {len(kernel)} lines ({nvmas} VMAs), {len(bad)} mismatches; "
          f"host {kd['timings'][f'smaps-{level}']:.2f} s")
    assert len(ours) == len(kernel), f"{len(ours)} lines, kernel {len(kernel)}"
    assert not bad, bad[:8]


@pytest.mark.parametrize("level", LEVELS)
def test_kdump_smaps_rollup(kd: dict[str, Any], level: str) -> None:
    from livewalk.proc.smaps import format_smaps_rollup, smaps
    from livewalk.program import open_program
    from livewalk.task import resolve_mm

    prog = open_program(core=kd["dumps"][level], symbols=[kd["symbols"]])
    ours = format_smaps_rollup(smaps(resolve_mm(prog, kd["pid"]))).splitlines()
    kernel = _record(kd, "smaps_rollup").decode().splitlines()
    bad = [f"kernel {a!r}, ours {o!r}" for a, o in zip(kernel, ours) if a != o]
    print(f"\n[kdump smaps_rollup level {level}] {len(kernel)} lines, {len(bad)} mismatches")
    assert len(ours) == len(kernel) and not bad, bad[:8] or (kernel, ours)


@pytest.mark.parametrize("level", LEVELS)
def test_kdump_vtop(kd: dict[str, Any], level: str) -> None:
    ready = kd["ready"]
    thp = ready["regions"]["thp"][0] + 3 * PAGE
    small = ready["parts"]["anon"]["written"][0] + PAGE
    p = livewalk(kd, kd["dumps"][level], "vtop", "--pid", str(kd["pid"]), f"{thp:x}", f"{small:x}")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    text = p.stdout.decode()
    kernel = _u64s(_record(kd, "pagemap"))
    for addr, leaf in ((thp, "2 MiB PMD leaf"), (small, "4 KiB PTE leaf")):
        i = 0
        for s, e in _vmas(kd):
            if s <= addr < e:
                i += (addr - s) // PAGE
                break
            i += (e - s) // PAGE
        entry = kernel[i]
        assert entry & PM_PRESENT, f"kernel: {addr:#x} -> {entry:#x}"
        m = re.search(rf"^{addr:x}\s+([0-9a-f]+)\s*$", text, re.M)
        assert m, f"no translation of {addr:x} in:\n{text}"
        assert int(m.group(1), 16) >> 12 == entry & PM_PFRAME_MASK, (m.group(1), hex(entry))
        assert leaf in text[m.end():].split("\nVIRTUAL")[0]
        print(f"\n[kdump vtop level {level}] {addr:#x} -> {m.group(1)} = kernel PFN {entry & PM_PFRAME_MASK:#x}")


@pytest.mark.parametrize("level", LEVELS)
def test_kdump_ptdump_wx(kd: dict[str, Any], level: str) -> None:
    dmesg = _record(kd, "dmesg").decode(errors="replace")
    m = re.search(r"x86/mm: Checked W\+X mappings: (passed|FAILED)[^\n]*", dmesg)
    assert m, "no W+X check in the guest's dmesg"
    p = livewalk(kd, kd["dumps"][level], "ptdump", "--check-wx", name=f"ptdump-{level}")
    err = p.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    passed = m.group(1) == "passed"
    assert (p.returncode == 0) == passed, (m.group(0), p.returncode, p.stdout.decode()[-2000:], err[-2000:])
    print(f"\n[kdump ptdump level {level}] boot: {m.group(0)!r}; livewalk --check-wx exit {p.returncode}; "
          f"host {kd['timings'][f'ptdump-{level}']:.2f} s")


def _one_line_or_answer(p: subprocess.CompletedProcess[bytes]) -> str:
    err = p.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    if p.returncode != 0:
        lines = [x for x in err.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("livewalk: error: "), err
        return lines[0]
    return f"exit 0, {len(p.stdout)} bytes"


def test_kdump_unaided_level31(kd: dict[str, Any]) -> None:
    """makedumpfile 1.7.8's own level-31 dump lacks compound slab pages:
    every command answers or gives one line, never a traceback."""
    vmas = [(s, e) for s, e in _vmas(kd) if s < 1 << 47]
    core = kd["dumps"]["31-raw"]
    runs = {
        "pagemap": livewalk(kd, core, "pagemap", "--pid", str(kd["pid"]), "--format", "raw",
                            *[a for s, e in vmas for a in ("--range", f"{s:x}:{e:x}")]),
        "smaps": livewalk(kd, core, "smaps", "--pid", str(kd["pid"])),
        "ptdump": livewalk(kd, core, "ptdump", "--check-wx"),
    }  # fmt: skip
    small = kd["ready"]["parts"]["anon"]["written"][0] + PAGE
    runs["vm -p"] = livewalk(kd, core, "vm", "-p", str(kd["pid"]))
    runs["pfn"] = livewalk(kd, core, "pfn", f"{_kernel_entry(kd, small) & PM_PFRAME_MASK:#x}")
    runs["vtop"] = livewalk(kd, core, "vtop", "--pid", str(kd["pid"]), f"{small:x}")
    for name, p in runs.items():
        print(f"\n[kdump unaided 31] {name}: {_one_line_or_answer(p)}; "
              f"{p.stdout.count(b'not in dump')} 'not in dump' marks")


def _kernel_entry(kd: dict[str, Any], addr: int) -> int:
    """The recorded (pre-panic) pagemap entry of *addr*."""
    kernel = _u64s(_record(kd, "pagemap"))
    i = 0
    for s, e in _vmas(kd):
        if s <= addr < e:
            return kernel[i + (addr - s) // PAGE]
        i += (e - s) // PAGE
    raise AssertionError(f"{addr:#x} is in no recorded VMA")


PM_SWAP = 1 << 62
PM_GUARD_REGION = 1 << 58
PM_UFFD_WP = 1 << 57


@pytest.mark.parametrize("level", LEVELS)
def test_kdump_crash_commands(kd: dict[str, Any], level: str) -> None:
    """crash's vm -p, vtop, pte and pfn on the makedumpfile dump, against the pre-panic pagemap."""
    import io

    from livewalk.commands.crash import (
        _Parser,
        add_pfn_arguments,
        add_pte_arguments,
        add_vm_arguments,
        add_vtop_arguments,
        run,
    )
    from livewalk.program import open_program

    prog = open_program(core=kd["dumps"][level], symbols=[kd["symbols"]])
    pid = kd["pid"]

    def crash(name: str, add: Any, *argv: str) -> str:
        parser = _Parser(prog=name)
        add(parser)
        out = io.StringIO()
        t = time.monotonic()
        run(prog, name, parser.parse_args(list(argv)), out)
        kd["timings"][f"{name}-{level}"] = time.monotonic() - t
        return out.getvalue()

    # vm -p: every page of every VMA, against the kernel's pagemap
    text = crash("vm", add_vm_arguments, "-p", str(pid))
    pages: dict[int, str] = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and re.fullmatch(r"[0-9a-f]+", parts[0]) and int(parts[0], 16) < 1 << 47:
            pages[int(parts[0], 16)] = parts[1].strip()
    assert "# torn" not in text, text[-2000:]
    kernel = _u64s(_record(kd, "pagemap"))
    bad, n, present, swapped, zero_table = [], 0, 0, 0, 0
    for s, e in _vmas(kd):
        for addr in range(s, e, PAGE):
            entry = kernel[n]
            n += 1
            if s >= 1 << 47:
                continue
            ours = pages.get(addr)
            if ours == "(not in dump)" and not entry & (PM_PRESENT | PM_SWAP | PM_GUARD_REGION | PM_UFFD_WP):
                # makedumpfile's dump level 1 drops zero-filled pages: a page
                # table with no entry left is not in the dump (crash needs
                # --zero_excluded to read it as zeros); nothing was mapped
                zero_table += 1
                continue
            if entry & PM_PRESENT:
                present += 1
                ok = ours is not None and re.fullmatch(r"[0-9a-f]+", ours) is not None \
                    and int(ours, 16) >> 12 == entry & PM_PFRAME_MASK
            elif entry & PM_GUARD_REGION:  # pagemap sets PM_SWAP for PTE markers too
                ok = ours is not None and ours.startswith("PTE_MARKER") and "guard" in ours
            elif entry & PM_SWAP and ours is not None and ours.startswith("PTE_MARKER"):
                ok = bool(entry & PM_UFFD_WP) and "uffd-wp" in ours
            elif entry & PM_SWAP:
                swapped += 1
                ok = ours is not None and ours.startswith("SWAP:")
            else:  # nothing mapped
                ok = ours is not None and (ours == "(not mapped)" or ours.startswith("FILE:"))
            if not ok:
                bad.append(f"{addr:#x}: kernel {entry:#018x}, vm -p {ours!r}")
    print(f"\n[kdump vm -p level {level}] {len(pages)} pages ({present} present, {swapped} swapped, "
          f"{zero_table} under zero-filled tables not in the dump), {len(bad)} mismatches; "
          f"{kd['timings'][f'vm-{level}']:.2f} s")
    assert not bad, bad[:8]

    # vtop (crash's layout) and pte of the leaf entry: the kernel's frame
    ready = kd["ready"]
    for addr in (ready["regions"]["thp"][0] + 3 * PAGE, ready["parts"]["anon"]["written"][0] + PAGE):
        pfn = _kernel_entry(kd, addr) & PM_PFRAME_MASK
        out = crash("vtop", add_vtop_arguments, "-c", str(pid), f"{addr:x}")
        lines = out.splitlines()
        assert lines[1].split() == [f"{addr:x}", f"{(pfn << 12) + (addr & (PAGE - 1)):x}"], out
        leaf = [x for x in lines if re.match(r"^\s*(PTE|PMD): [0-9a-f]+ => [0-9a-f]+", x)][-1]
        value = leaf.split("=>")[1].split()[0]
        pte = crash("pte", add_pte_arguments, value).splitlines()
        assert int(pte[1].split()[1], 16) >> 12 == pfn & ~(0x1FF if leaf.strip().startswith("PMD") else 0), pte
        # pfn: who maps it -- the workload, at this address
        who = crash("pfn", add_pfn_arguments, f"{pfn:#x}")
        assert re.search(rf"^\s*{pid}\s+\S+\s+{addr & ~(PAGE - 1):x}\s+(PTE|PMD)\s", who, re.M), who
        print(f"\n[kdump crash commands level {level}] {addr:#x}: vtop, pte, pfn -> kernel PFN {pfn:#x}")


@pytest.mark.parametrize("which", ["truncated", "wrong_vmlinux"])
def test_kdump_bad_dump(kd: dict[str, Any], which: str) -> None:
    tmp = tempfile.mkdtemp(prefix="livewalk-kdump-bad-")
    try:
        if which == "truncated":
            core, symbols = kd["truncated"], None
        else:
            # Another kernel's debug info: this test's own python3 has none,
            # so take the vmlinux and break its build ID.
            core = kd["dumps"]["31"]
            wrong = os.path.join(tmp, "vmlinux")
            shutil.copyfile(kd["vmlinux"], wrong)
            r = subprocess.run(["objcopy", "--remove-section", ".notes", wrong], capture_output=True)
            if r.returncode != 0:
                pytest.skip(f"objcopy: {r.stderr.decode()[-200:]}")
            symbols = wrong
        for args in (("smaps", "--pid", str(kd["pid"])), ("ptdump",)):
            p = livewalk(kd, core, *args, symbols=symbols)
            err = p.stderr.decode(errors="replace")
            lines = [x for x in err.splitlines() if x.strip()]
            assert p.returncode != 0, (which, args, err)
            assert "Traceback" not in err, err
            assert len(lines) == 1 and lines[0].startswith("livewalk: error: "), err
            print(f"\n[kdump bad dump] {which} {args[0]}: exit {p.returncode}: {lines[0]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
