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

from tests.vm.compare import PM_PRESENT, compare_pagemap, u64s

pytestmark = pytest.mark.vm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = 4096
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


def test_kdump_record_verified(kd: dict[str, Any]) -> None:
    import json

    note = json.loads(_record(kd, "record.json"))
    assert note["verified"], f"the workload's /proc files moved while they were recorded: {note}"


@pytest.mark.parametrize("level", LEVELS)
def test_kdump_pagemap(kd: dict[str, Any], level: str) -> None:
    vmas = _vmas(kd)
    kernel = u64s(_record(kd, "pagemap"))
    args = ["pagemap", "--pid", str(kd["pid"]), "--format", "raw"]
    for s, e in vmas:
        if s < 1 << 47:  # not [vsyscall]: pagemap stops at the user address space
            args += ["--range", f"{s:x}:{e:x}"]
    p = livewalk(kd, kd["dumps"][level], *args, name=f"pagemap-{level}")
    assert p.returncode == 0, p.stderr.decode(errors="replace")[-4000:]
    user = [(s, e) for s, e in vmas if s < 1 << 47]
    kernel = kernel[: sum((e - s) // PAGE for s, e in user)]
    d = compare_pagemap(user, PAGE, u64s(p.stdout), kernel)
    print(f"\n[kdump pagemap level {level}] {d.pages} pages in {len(vmas)} VMAs ({d.present} present), "
          f"{len(d.bad)} mismatches; host {kd['timings'][f'pagemap-{level}']:.2f} s")
    assert not d.bad, d.bad[:8]


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
    kernel = u64s(_record(kd, "pagemap"))
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
    kernel = u64s(_record(kd, "pagemap"))
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
    kernel = u64s(_record(kd, "pagemap"))
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


# -- what a dump lacks: hand-filtered makedumpfile dumps ----------------------------------------
#
# These run on the fresh kdump above ("fresh") and, host only, on a kdump
# already on disk ("on-disk": $LIVEWALK_KDUMP_DIR, default
# /tmp/kdump-out4/kdump, with its record/ and the 7.2 image's vmlinux; not
# collected when absent): `pytest tests/vm/test_vm_kdump.py -k on-disk` boots
# nothing.

PM_FILE = 1 << 61
PM_MMAP_EXCLUSIVE = 1 << 56
PAGE_STATE_BITS = PM_FILE | PM_MMAP_EXCLUSIVE


_ON_DISK = os.environ.get("LIVEWALK_KDUMP_DIR", "/tmp/kdump-out4/kdump")
_ON_DISK_VMLINUX = os.environ.get("LIVEWALK_KDUMP_VMLINUX", "/var/cache/livewalk-vm/current-x86_64-7/vmlinux")
#: the on-disk dump's tests exist only where there is one (a developer's
#: machine): a fresh machine has only the fresh kdump's
_HAS_ON_DISK = all(os.path.exists(p) for p in (
    os.path.join(_ON_DISK, "vmcore-31"), os.path.join(_ON_DISK, "record", "record.json"), _ON_DISK_VMLINUX))


@pytest.fixture(scope="module", params=["fresh", "on-disk"] if _HAS_ON_DISK else ["fresh"])
def dump(request: Any) -> dict[str, Any]:
    """A level-31 kdump, its record of the workload and its debugging information."""
    import json
    from pathlib import Path

    if request.param == "fresh":
        kd = request.getfixturevalue("kd")
        return {"core": kd["dumps"]["31"], "symbols": kd["symbols"], "vmlinux": kd["vmlinux"],
                "pid": kd["pid"], "record": Path(kd["k"].record), "timings": {}}  # fmt: skip
    where = Path(_ON_DISK)
    vmlinux = Path(_ON_DISK_VMLINUX)
    from livewalk.errors import LivewalkError
    from livewalk.program import open_program
    from livewalk.task import find_mm

    note = json.loads((where / "record" / "record.json").read_text())
    if not note.get("verified"):
        pytest.skip(f"the record in {where} was not verified unchanged (an older recorder): {note}")
    pid = note["pid"]
    # level 31, unless it lacks the workload's task (makedumpfile 1.7.8
    # unaided, in dumps made before the test VM's workaround): then level 0
    for name in ("vmcore-31", "vmcore-0"):
        try:
            find_mm(open_program(core=str(where / name), symbols=[str(vmlinux)]), pid)
        except LivewalkError as e:
            print(f"\n[kdump on disk] {name}: {e}")
            continue
        return {"core": str(where / name), "symbols": str(vmlinux), "vmlinux": str(vmlinux), "pid": pid,
                "record": where / "record", "timings": {}}  # fmt: skip
    pytest.skip(f"no dump in {where} has PID {pid}")


def test_kdump_pagemap_fast_paths_equal_page_by_page(dump: dict[str, Any]) -> None:
    """
    pagemap's fast paths (vmemmap blocks decoded at once, uniform PTE
    tables and their runs of frames) and its page-by-page path agree on
    every VMA of every process of the dump.
    """
    from tests.vm.pagemap_paths import fast_paths_equal_page_by_page

    t = time.monotonic()
    checked, present = fast_paths_equal_page_by_page(dump["core"], dump["vmlinux"])
    print(f"\n[kdump {dump['core']}] fast paths = page by page: {checked} entries of every VMA of every "
          f"process ({present} present), in {time.monotonic() - t:.1f} s")


def _exclude_kdump_pages(src: str, dst: str, pfns: list[int]) -> None:
    """
    Copy the makedumpfile (kdump-compressed) dump *src* to *dst* without the
    pages *pfns*, as if makedumpfile had filtered them out: each page's bit
    in the dumpable-page bitmap (the second one) is cleared and its page
    descriptor removed (the descriptors follow the set bits in order).
    """
    import struct

    shutil.copyfile(src, dst)
    with open(dst, "r+b") as f:
        h = f.read(448)
        assert h[:8] == b"KDUMP   ", "not a kdump-compressed dump"
        # struct disk_dump_header: block_size, sub_hdr_size, bitmap_blocks after utsname and timestamp
        block_size, sub_hdr_size, bitmap_blocks = struct.unpack_from("<iiI", h, 428)
        bitmaps = (1 + sub_hdr_size) * block_size
        half = bitmap_blocks * block_size // 2
        f.seek(bitmaps + half)
        bm = bytearray(f.read(half))
        descs_at = bitmaps + bitmap_blocks * block_size
        ndesc = sum(bin(b).count("1") for b in bm)
        f.seek(descs_at)
        descs = bytearray(f.read(24 * ndesc))  # struct page_desc: offset, size, flags, page_flags
        for pfn in sorted(set(pfns), reverse=True):
            byte, bit = divmod(pfn, 8)
            assert bm[byte] >> bit & 1, f"PFN {pfn:#x} is not in {src}"
            i = sum(bin(b).count("1") for b in bm[:byte]) + bin(bm[byte] & ((1 << bit) - 1)).count("1")
            del descs[24 * i : 24 * i + 24]
            descs += descs[-24:]
            bm[byte] &= ~(1 << bit)
        f.seek(bitmaps + half)
        f.write(bm)
        f.seek(descs_at)
        f.write(descs)


def _lw(d: dict[str, Any], core: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "livewalk", "-c", core, "-s", d["symbols"], *args]
    return subprocess.run(cmd, capture_output=True, cwd=ROOT, timeout=CLI_TIMEOUT)


def _record_pages(d: dict[str, Any]) -> tuple[list[tuple[int, int, str]], list[tuple[int, int]]]:
    """The recorded pagemap as (address, entry, VMA name) per user page, and the user VMAs."""
    names, vmas = [], []
    for line in (d["record"] / "maps").read_text().splitlines():
        f = line.split()
        s, e = (int(x, 16) for x in f[0].split("-"))
        if s < 1 << 47:
            vmas.append((s, e))
            names.append(f[5] if len(f) > 5 else "")
    kernel = u64s((d["record"] / "pagemap").read_bytes())
    pages, i = [], 0
    for (s, e), name in zip(vmas, names):
        for a in range(s, e, PAGE):
            pages.append((a, kernel[i], name))
            i += 1
    return pages, vmas


def _one_line(p: subprocess.CompletedProcess[bytes]) -> str:
    err = p.stderr.decode(errors="replace")
    lines = [x for x in err.splitlines() if x.strip()]
    assert "Traceback" not in err and p.returncode != 0, (p.returncode, err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("livewalk: error: "), err
    return lines[0]


def test_kdump_memmap_not_in_dump(dump: dict[str, Any], tmp_path: Any) -> None:
    """
    A dump without the struct pages (mem_map) of some of the workload's
    pages: pagemap marks those pages "not in dump" and every bit of every
    entry but FILE and MMAP_EXCLUSIVE there equals the kernel's; smaps says
    "(not in dump)" for the fields the page state decides and every other
    line equals the kernel's.
    """
    import json

    from livewalk.mm.page import KernelState
    from livewalk.program import open_program
    from livewalk.tools.vtop import vtop_kernel

    d = dump
    pages, vmas = _record_pages(d)
    prog = open_program(core=d["core"], symbols=[d["symbols"]])
    ks = KernelState.for_program(prog)

    def vpage(pfn: int) -> int:  # the vmemmap page holding pfn's struct page
        return ks.pfn_to_page_addr(pfn) >> 12

    # targets: a file page, an anonymous page mapped once, and the first
    # page of a 2 MiB-aligned run of 512 pages with consecutive PFNs (a THP)
    present = [(a, v) for a, v, _ in pages if v & PM_PRESENT]
    targets = {}
    for a, v in present:
        if v & PM_FILE and "file" not in targets:
            targets["file"] = (a, v)
        if v & PM_MMAP_EXCLUSIVE and not v & PM_FILE and "anon" not in targets:
            targets["anon"] = (a, v)
    by_addr = {a: v for a, v in present}
    for a, v in present:
        pfn = v & PM_PFRAME_MASK
        if a % (2 << 20) == 0 and pfn % 512 == 0 and all(
            by_addr.get(a + i * PAGE, 0) & PM_PFRAME_MASK == pfn + i for i in range(512)
        ):
            targets["thp"] = (a, v)
            break
    assert "file" in targets and "anon" in targets, targets
    gone = {vpage(v & PM_PFRAME_MASK) for a, v in targets.values()}
    phys = []
    for vp in gone:
        pa = vtop_kernel(prog, vp << 12).phys
        assert pa is not None, hex(vp << 12)
        phys.append(pa >> 12)
    core = str(tmp_path / "vmcore-31-memmap")
    _exclude_kdump_pages(d["core"], core, phys)
    ranges = [a for s, e in vmas for a in ("--range", f"{s:x}:{e:x}")]

    # pagemap: raw entries, and the marks of the JSON
    p = _lw(d, core, "pagemap", "--pid", str(d["pid"]), "--format", "raw", *ranges)
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0 and "Traceback" not in err, err[-3000:]
    assert err.count("\n") == 1 and " not in dump: " in err and "struct page" in err, err
    ours = u64s(p.stdout)
    assert len(ours) == len(pages)
    p = _lw(d, core, "pagemap", "--pid", str(d["pid"]), "--format", "json", *ranges)
    doc = json.loads(p.stdout)
    marked: set[int] = set()
    for r in doc["ranges"]:
        for t in r["consistency"]["missing"]:
            assert t["reason"] == "not in dump" and "struct page" in t["detail"], t
            marked |= set(range(t["start"], t["end"], PAGE))
    blocks = set(gone)
    for (a, v, _name), o in zip(pages, ours):
        if a in marked:
            # only the bits the page decides may differ, and they read 0
            assert (o ^ v) & ~PAGE_STATE_BITS == 0 and not o & PAGE_STATE_BITS, (hex(a), hex(v), hex(o))
            pfn = v & PM_PFRAME_MASK
            # a page of a folio (at most 2 MiB, aligned) with a struct page gone
            assert any(vpage(q) in blocks for q in range(pfn & ~511, (pfn & ~511) + 512, 64)), hex(a)
        else:
            assert o == v, (hex(a), hex(v), hex(o))
            # a page that has a page whose struct page is gone is marked
            assert not (v & PAGE_STATE_BITS and v & PM_PRESENT and vpage(v & PM_PFRAME_MASK) in blocks), hex(a)
    for name, (a, _) in targets.items():
        assert a in marked, (name, hex(a))
    # text: the mark line of the anonymous target's range
    a = targets["anon"][0]
    s, e = next((s, e) for s, e in vmas if s <= a < e)
    text = _lw(d, core, "pagemap", "--pid", str(d["pid"]), "--range", f"{s:x}:{e:x}").stdout.decode()
    marks = re.findall(r"^# not in dump 0x([0-9a-f]+)-0x([0-9a-f]+): struct pages? of PFNs? ", text, re.M)
    assert any(int(x, 16) <= a < int(y, 16) for x, y in marks), text[:2000]

    # smaps: text line by line against the kernel's; JSON fields and ranges
    kernel = (d["record"] / "smaps").read_text("utf-8", "surrogateescape").splitlines()
    p = _lw(d, core, "smaps", "--pid", str(d["pid"]))
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0 and "Traceback" not in err and err.count("\n") == 1, err[-3000:]
    mine = p.stdout.decode("utf-8", "surrogateescape").splitlines()
    assert len(mine) == len(kernel)
    unknown_lines = 0
    for k, o in zip(kernel, mine):
        if k == o:
            continue
        m = re.fullmatch(r"(\w+):\s+\(not in dump\)", o)
        assert m and k.startswith(m.group(1) + ":"), (k, o)
        assert m.group(1) not in ("Rss", "Size", "Swap", "SwapPss"), o  # the entries alone decide these
        unknown_lines += 1
    assert unknown_lines > 0
    vm_docs = json.loads(_lw(d, core, "smaps", "--pid", str(d["pid"]), "--json").stdout)
    for v in vm_docs:
        if v["start"] >= 1 << 47:
            continue
        assert set(v["fields_not_in_dump"]) == {k for k, x in v["fields_kb"].items() if x is None}
        if v["fields_not_in_dump"]:
            assert v["not_in_dump"], v["header"]
        if any(v["start"] <= a < v["end"] for a in marked):
            assert v["fields_not_in_dump"], v["header"]
    # smaps_rollup: the same sums, marked where a VMA's are
    from livewalk.proc.smaps import format_smaps_rollup, smaps
    from livewalk.task import resolve_mm

    cut = open_program(core=core, symbols=[d["symbols"]])
    rollup = format_smaps_rollup(smaps(resolve_mm(cut, d["pid"]))).splitlines()
    kernel = (d["record"] / "smaps_rollup").read_text().splitlines()
    assert len(rollup) == len(kernel)
    for k, o in zip(kernel, rollup):
        m = re.fullmatch(r"(\w+):\s+\(not in dump\)", o)
        assert k == o or (m and k.startswith(m.group(1) + ":") and m.group(1) != "Rss"), (k, o)
    assert any("(not in dump)" in o for o in rollup)
    print(f"\n[kdump {d['core']}] struct pages of {len(gone)} vmemmap pages removed ({', '.join(targets)}): "
          f"{len(marked)} pages marked in pagemap, every other bit equal; {unknown_lines} smaps fields "
          f"'(not in dump)', every other line equal")


@pytest.mark.parametrize("what", ["task", "mm", "maple", "vma"])
def test_kdump_task_not_in_dump(dump: dict[str, Any], tmp_path: Any, what: str) -> None:
    """A dump without the workload's task_struct, mm, maple tree root or a
    VMA: every command taking its PID gives one error line naming it."""
    from drgn import sizeof

    from livewalk.backend import backend_for_mm
    from livewalk.program import open_program
    from livewalk.task import find_mm
    from livewalk.tools.vtop import vtop_kernel

    d = dump
    prog = open_program(core=d["core"], symbols=[d["symbols"]])
    task, mm = find_mm(prog, d["pid"])
    addr = {
        "task": lambda: int(task.value_()),
        "mm": lambda: int(mm.value_()),
        "maple": lambda: int(mm.mm_mt.ma_root.value_()) & ~0xFF,
        "vma": lambda: int(backend_for_mm(mm).vmas(mm)[1].obj.value_()),
    }[what]()
    # every page the object spans (a task_struct is larger than a page: left
    # in the dump, its other pages would still give the mm)
    size = {"task": "struct task_struct", "mm": "struct mm_struct", "maple": "struct maple_node",
            "vma": "struct vm_area_struct"}[what]  # fmt: skip
    last = addr + sizeof(prog.type(size)) - 1
    pfns = []
    for page in range(addr & ~0xFFF, last + 1, 0x1000):
        pa = vtop_kernel(prog, page).phys
        assert pa is not None
        pfns.append(pa >> 12)
    core = str(tmp_path / f"vmcore-31-no-{what}")
    _exclude_kdump_pages(d["core"], core, pfns)
    pid = str(d["pid"])
    first = _record_pages(d)[1][0][0]
    for args in (("pagemap", "--pid", pid), ("smaps", "--pid", pid), ("vtop", "--pid", pid, f"{first:x}"),
                 ("vm", "-p", pid)):  # fmt: skip
        line = _one_line(_lw(d, core, *args))
        assert "not in the dump" in line, (args, line)
        print(f"\n[kdump without the {what}] {args[0]}: {line}")


def test_kdump_bad_input(dump: dict[str, Any], tmp_path: Any) -> None:
    """A truncated dump, the wrong vmlinux, a PFN outside memory, a raw
    entry that is not a number: one line each, non-zero exit, no traceback."""
    d = dump
    truncated = str(tmp_path / "vmcore-truncated")
    with open(d["core"], "rb") as src, open(truncated, "wb") as dst:
        dst.write(src.read(os.path.getsize(d["core"]) // 2))
    wrong = str(tmp_path / "vmlinux")
    shutil.copyfile(d["vmlinux"], wrong)  # the same kernel with its build ID broken
    r = subprocess.run(["objcopy", "--remove-section", ".notes", wrong], capture_output=True)
    cases: list[tuple[str, str, tuple[str, ...], str]] = [
        ("truncated", truncated, ("smaps", "--pid", str(d["pid"])), "truncated"),
        ("truncated", truncated, ("ptdump",), "truncated"),
        ("PFN outside memory", d["core"], ("pfn", "0xfffffffff"), "outside memory"),
        ("entry not a number", d["core"], ("pte", "xyz"), "bad entry value"),
        ("PFN not a number", d["core"], ("pfn", "12z"), "bad PFN"),
    ]
    for name, core, args, needle in cases:
        line = _one_line(_lw(d, core, *args))
        assert needle in line, (name, line)
        print(f"\n[kdump bad input] {name}: {line}")
    if r.returncode == 0:
        p = subprocess.run([sys.executable, "-m", "livewalk", "-c", d["core"], "-s", wrong, "smaps", "--pid",
                            str(d["pid"])], capture_output=True, cwd=ROOT, timeout=CLI_TIMEOUT)  # fmt: skip
        line = _one_line(p)
        assert "debug" in line or "build ID" in line, line
        print(f"\n[kdump bad input] wrong vmlinux: {line}")
