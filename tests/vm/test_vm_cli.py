# SPDX-License-Identifier: LGPL-2.1-or-later
"""The ``livewalk`` command in the test VM and from the host.

* Every command runs as ``python3 -m livewalk`` from the repository in the
  guest (``/src``, Debian's python3-drgn only) and from the host over QMP
  (``--qemu SOCKET -s DIR_OF_VMLINUX``).
* ``pagemap --format raw`` writes exactly the bytes of the kernel's
  ``/proc/PID/pagemap`` for each ``--range`` (read in the guest with
  ``dd``), and without ``--range`` the concatenation of every VMA's entries
  (read from ``/proc/PID/pagemap`` at each VMA of ``/proc/PID/maps``);
  ``--format json`` runs expand to the same entries.
* ``smaps`` prints one block per VMA of ``/proc/PID/maps``, with the same
  header lines; ``--json`` is valid JSON with the same VMAs.
* Errors in the guest: a PID that does not exist, a kernel thread (PID 2), a
  range past the end of user space, a missing core file, no permission for
  ``/proc/kcore`` (not root), debug info that does not match: one line on
  stderr, exit 1 (2 for usage errors), no traceback.
* drgn's plugin mechanism: ``DRGN_PLUGINS=livewalk=livewalk.drgn_plugin``
  registers the ``livewalk`` command in drgn 0.3.0's command namespace, and
  ``from livewalk import *`` gives the tools as functions.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.workloads.inguest import mappings_workload

pytestmark = pytest.mark.vm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module", params=[5, 4], ids=["l5", "l4"])
def wl(request: pytest.FixtureRequest) -> Iterator[tuple[Any, dict[str, Any]]]:
    """(guest, ready JSON) of a running workload, per paging mode."""
    g = request.getfixturevalue(f"guest{request.param}")
    with mappings_workload(g, f"cli-test-{request.param}") as ready:
        yield g, ready


def host(g: Any, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``python3 -m livewalk --qemu SOCKET -s DIR ARGS`` on the host."""
    if getattr(g, "_prog", None) is not None:
        # QEMU serves one QMP client at a time and Guest.host_program() keeps
        # its connection: drop it (host_program() makes a new one if asked).
        g._prog = None
        gc.collect()
    return subprocess.run(
        [sys.executable, "-m", "livewalk", "--qemu", g.qmp_socket,
         "-s", os.path.dirname(g.vmlinux), *args],
        capture_output=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), timeout=900,
    )


def one_error_line(stderr: str, *needles: str) -> None:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("livewalk: error: "), stderr
    assert "Traceback" not in stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


# --- pagemap ------------------------------------------------------------------


def _ranges(ready: dict[str, Any]) -> list[tuple[int, int]]:
    reg = ready["regions"]
    out = [
        (reg["thp"][0], reg["thp"][0] + 0x3000),               # inside a THP
        (reg["swap"][0], reg["swap"][1]),                      # swapped out
        (reg["protnone"][0] + 0x10, reg["protnone"][0] + 0x2001),  # unaligned ends
        (reg["guard"][0], reg["guard"][1]),                    # guard markers
        (reg["hugetlb_private"][0] + 0x1ff000, reg["hugetlb_private"][0] + 0x201000),
        tuple(ready["holes"]["partial_unmap.hole"]),           # no VMA
        (reg["anon"][0] - 0x2000, reg["anon"][0] + 0x2000),    # across a VMA start
    ]
    return [(int(s), int(e)) for s, e in out]


def _kernel_pagemap_script(pid: int, ranges: list[tuple[int, int]]) -> str:
    # The pages containing [s, e): offset s/4096*8, ((e-1)/4096 - s/4096 + 1) * 8 bytes.
    parts = []
    for s, e in ranges:
        first, last = s // 4096, (e - 1) // 4096
        parts.append(f"dd if=/proc/{pid}/pagemap bs=8 skip={first} count={last - first + 1} status=none")
    return "{ " + "; ".join(parts) + "; }"


def test_pagemap_raw_ranges(wl: tuple[Any, dict[str, Any]]) -> None:
    g, ready = wl
    pid = ready["pid"]
    ranges = _ranges(ready)
    args = " ".join(f"--range {s:x}:{e:x}" for s, e in ranges)
    r = g.run(
        f"python3 -m livewalk pagemap --pid {pid} {args} --format raw > /tmp/lw-pm.bin && "
        f"{_kernel_pagemap_script(pid, ranges)} > /tmp/lw-pm-kernel.bin && "
        f"{_kernel_pagemap_script(pid, ranges)} > /tmp/lw-pm-kernel2.bin",
        timeout=900,
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    ours = g.get("/tmp/lw-pm.bin")
    kernel = g.get("/tmp/lw-pm-kernel.bin")
    assert kernel == g.get("/tmp/lw-pm-kernel2.bin")
    npages = sum((e - 1) // 4096 - s // 4096 + 1 for s, e in ranges)
    assert len(kernel) == 8 * npages
    assert ours == kernel
    # From the host over QMP: the same bytes.
    p = host(g, "pagemap", "--pid", str(pid), *args.split(), "--format", "raw")
    assert p.returncode == 0, p.stderr.decode()
    assert p.stdout == kernel


def test_pagemap_raw_every_vma(wl: tuple[Any, dict[str, Any]]) -> None:
    g, ready = wl
    pid = ready["pid"]
    reader = f"""
import struct, sys
out = sys.stdout.buffer
with open("/proc/{pid}/pagemap", "rb") as f:
    for line in open("/proc/{pid}/maps"):
        s, e = (int(x, 16) for x in line.split()[0].split("-"))
        if s >= 1 << 56 or line.rstrip().endswith("[vsyscall]"):
            continue
        f.seek(s // 4096 * 8)
        out.write(f.read((e - s) // 4096 * 8))
"""
    g.put("/tmp/lw-pm-all.py", reader)
    r = g.run(
        f"python3 /tmp/lw-pm-all.py > /tmp/lw-all-k.bin && "
        f"python3 -m livewalk pagemap --pid {pid} --format raw > /tmp/lw-all.bin && "
        f"python3 /tmp/lw-pm-all.py > /tmp/lw-all-k2.bin",
        timeout=900,
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    # Observer effect: whether a page-cache page is mapped only by the
    # workload (PM_MMAP_EXCLUSIVE) changes while other processes (the
    # readers, livewalk itself) map the same libraries. Ignore that bit on
    # file pages (PM_FILE); everything else must be equal.
    kernel = _mask_file_exclusive(g.get("/tmp/lw-all-k.bin"))
    assert kernel == _mask_file_exclusive(g.get("/tmp/lw-all-k2.bin")), "the workload moved"
    ours = _mask_file_exclusive(g.get("/tmp/lw-all.bin"))
    assert len(ours) == len(kernel)
    assert ours == kernel


def _mask_file_exclusive(data: bytes) -> list[int]:
    pm_file, pm_excl = 1 << 61, 1 << 56
    out = []
    for i in range(0, len(data), 8):
        e = int.from_bytes(data[i : i + 8], "little")
        out.append(e & ~pm_excl if e & pm_file else e)
    return out


def test_pagemap_json_and_text(wl: tuple[Any, dict[str, Any]]) -> None:
    g, ready = wl
    pid = ready["pid"]
    ranges = _ranges(ready)
    args = " ".join(f"--range {s:x}:{e:x}" for s, e in ranges)
    r = g.run(f"python3 -m livewalk pagemap --pid {pid} {args} --format json", timeout=900)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    doc = json.loads(r.stdout)
    assert doc["pid"] == pid and len(doc["ranges"]) == len(ranges)
    g.run(f"{_kernel_pagemap_script(pid, ranges)} > /tmp/lw-pm-kernel.bin", timeout=300)
    kernel = g.get("/tmp/lw-pm-kernel.bin")
    entries = [int.from_bytes(kernel[i : i + 8], "little") for i in range(0, len(kernel), 8)]
    expanded = []
    for rng in doc["ranges"]:
        addr = rng["start"]
        for run in rng["runs"]:
            assert run["start"] == addr
            for i in range(run["pages"]):
                expanded.append(run["raw_flags"] | (run["frame"] + i * run["frame_step"]))
            addr = run["end"]
        assert addr == rng["end"]
    assert expanded == entries
    r = g.run(f"python3 -m livewalk pagemap --pid {pid} {args}", timeout=900)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.count("\n# ") + r.stdout.startswith("# ") == len(ranges)
    assert "SWAP" in r.stdout and "PRESENT" in r.stdout and "GUARD" in r.stdout


# --- smaps ------------------------------------------------------------------


def test_smaps_cli(wl: tuple[Any, dict[str, Any]]) -> None:
    g, ready = wl
    pid = ready["pid"]
    r = g.run(f"python3 -m livewalk smaps --pid {pid} > /tmp/lw-smaps.txt && "
              f"python3 -m livewalk smaps --pid {pid} --json > /tmp/lw-smaps.json && "
              f"cat /proc/{pid}/maps", timeout=900)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    maps = [line for line in r.stdout.splitlines() if line]
    text = g.get("/tmp/lw-smaps.txt").decode()
    headers = [line for line in text.splitlines() if not line.split()[0].endswith(":")]
    # The header of every smaps block is the /proc/PID/maps line.
    assert [h.split() for h in headers] == [m.split() for m in maps]
    doc = json.loads(g.get("/tmp/lw-smaps.json"))
    assert isinstance(doc, list) and len(doc) == len(maps)
    p = host(g, "smaps", "--pid", str(pid))
    assert p.returncode == 0, p.stderr.decode()
    host_headers = [line for line in p.stdout.decode().splitlines()
                    if not line.split()[0].endswith(":")]
    assert [h.split() for h in host_headers] == [m.split() for m in maps]


# --- errors -------------------------------------------------------------------


def test_errors_in_guest(wl: tuple[Any, dict[str, Any]]) -> None:
    g, ready = wl
    pid = ready["pid"]
    top = (1 << (56 if g.levels == 5 else 47)) - 4096
    cases = [
        ("python3 -m livewalk vtop --pid 999999 1000", 1, ["no process with PID 999999"]),
        ("python3 -m livewalk smaps --pid 999999", 1, ["no process with PID 999999"]),
        ("python3 -m livewalk vtop --pid 2 1000", 1, ["PID 2 (kthreadd) is a kernel thread"]),
        ("python3 -m livewalk pagemap --pid 2", 1, ["kernel thread"]),
        (f"python3 -m livewalk pagemap --pid {pid} --range {top - 0x1000:x}:{top + 0x2000:x}", 2,
         ["past the end of user space"]),
        ("python3 -m livewalk -c /tmp/no-such-vmcore ptdump", 1, ["cannot open core file"]),
        ("python3 -m livewalk -c /etc/hostname ptdump", 1, ["not a kernel core dump"]),
        ("setpriv --reuid=65534 --regid=65534 --clear-groups python3 -m livewalk ptdump", 1,
         ["/proc/kcore", "Permission denied"]),
        ("python3 -m livewalk --no-default-symbols -s /usr/bin/python3 ptdump", 1,
         ["no matching debugging information", "build ID"]),
        ("python3 -m livewalk --no-default-symbols ptdump", 1,
         ["no debugging information for kernel", g.release]),
    ]
    for cmd, code, needles in cases:
        t0 = time.monotonic()
        r = g.run(cmd, timeout=300)
        assert not r.timed_out and time.monotonic() - t0 < 300, cmd
        assert r.returncode == code, (cmd, r.returncode, r.stderr)
        assert r.stdout == "", (cmd, r.stdout)
        one_error_line(r.stderr, *needles)


def test_errors_from_host(wl: tuple[Any, dict[str, Any]]) -> None:
    g, _ready = wl
    p = host(g, "vtop", "--pid", "999999", "1000")
    assert p.returncode == 1
    one_error_line(p.stderr.decode(), "no process with PID 999999")
    p = host(g, "vtop", "--pid", "2", "1000")
    assert p.returncode == 1
    one_error_line(p.stderr.decode(), "kernel thread")


# --- drgn plugin and REPL -----------------------------------------------------


def test_drgn_plugin_and_repl(wl: tuple[Any, dict[str, Any]]) -> None:
    g, ready = wl
    pid = ready["pid"]
    thp = ready["regions"]["thp"][0]
    code = (
        "from drgn.commands import run_command\n"
        f"run_command(prog, 'livewalk vtop --pid {pid} {thp:#x}')\n"
        "from livewalk import *\n"
        f"mm = find_task(prog, {pid}).mm\n"
        f"pm = pagemap(find_task(prog, {pid}), {thp:#x}, {thp + 0x2000:#x})\n"
        f"print('PAGEMAP', [hex(e) for e in pm])\n"
        f"r = vtop(mm, {thp:#x})\n"
        "print('VTOP', r.state, hex(r.phys), r.leaf_size)\n"
        "print('PTDUMP', len(ptdump(prog).ranges) > 10)\n"
        f"print('KERNEL', pagemap_read(mm, {thp:#x}, {thp + 0x1000:#x})[0] == pm[0])\n"
    )
    g.put("/tmp/lw-plugin.py", code)
    r = g.run("DRGN_PLUGINS=livewalk=livewalk.drgn_plugin drgn -q -e "
              "\"exec(open('/tmp/lw-plugin.py').read())\"", timeout=600)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert f"{thp:x}" in out and "2 MiB PMD leaf" in out  # the %livewalk command ran
    kernel = g.run(f"dd if=/proc/{pid}/pagemap bs=8 skip={thp // 4096} count=2 status=none | "
                   "od -An -tx8", timeout=60).stdout.split()
    assert f"PAGEMAP {[hex(int(k, 16)) for k in kernel]}" in out
    assert f"VTOP present {hex((int(kernel[0], 16) & ((1 << 55) - 1)) << 12)} 2097152" in out
    assert "PTDUMP True" in out and "KERNEL True" in out


# --- -c VMCORE --------------------------------------------------------------------


def _qmp_ctl(g: Any, command: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """Run one command on the guest's private QMP control socket."""
    import socket

    path = os.path.join(os.path.dirname(g.qmp_socket), "qmp-ctl.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        f = s.makefile("rwb")

        def reply() -> dict[str, Any]:
            while True:
                line = f.readline()
                assert line, "QMP closed"
                msg = json.loads(line)
                if "return" in msg or "error" in msg:
                    return msg  # type: ignore[no-any-return]

        f.readline()  # greeting
        f.write(b'{"execute": "qmp_capabilities"}\n')
        f.flush()
        reply()
        f.write(json.dumps(command).encode() + b"\n")
        f.flush()
        return reply()


def test_vmcore(wl: tuple[Any, dict[str, Any]], tmp_path: Any) -> None:
    """``-c VMCORE`` on a dump of the guest made by QEMU (dump-guest-memory,
    ELF, with the guest's VMCOREINFO): the same vtop, pagemap and ptdump as
    the live guest."""
    g, ready = wl
    core = tmp_path / "vmcore"
    res = _qmp_ctl(g, {"execute": "dump-guest-memory",
                       "arguments": {"paging": False, "protocol": f"file:{core}",
                                     "format": "elf"}})
    assert "return" in res, res
    try:
        _check_vmcore(g, ready, str(core))
    finally:
        core.unlink(missing_ok=True)


def _check_vmcore(g: Any, ready: dict[str, Any], core: str) -> None:
    pid = ready["pid"]
    vdir = os.path.dirname(g.vmlinux)

    def offline(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "livewalk", "-c", core, "-s", vdir, *args],
            capture_output=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT), timeout=900,
        )

    addrs = [ready["regions"][k][0] for k in ("thp", "swap", "protnone", "hugetlb_private")]
    p = offline("vtop", "--pid", str(pid), "--json", *(hex(a) for a in addrs))
    assert p.returncode == 0, p.stderr.decode()
    dumped = json.loads(p.stdout)
    r = g.run(f"python3 -m livewalk vtop --pid {pid} --json " + " ".join(hex(a) for a in addrs),
              timeout=600)
    assert r.returncode == 0, r.stderr
    for d, v in zip(dumped, json.loads(r.stdout)):
        for key in ("state", "phys", "swap", "leaf_size", "steps"):
            assert d[key] == v[key], (key, d, v)
    ranges = _ranges(ready)
    args = [a for s, e in ranges for a in ("--range", f"{s:x}:{e:x}")]
    p = offline("pagemap", "--pid", str(pid), *args, "--format", "raw")
    assert p.returncode == 0, p.stderr.decode()
    g.run(f"{_kernel_pagemap_script(pid, ranges)} > /tmp/lw-pm-kernel.bin", timeout=300)
    assert p.stdout == g.get("/tmp/lw-pm-kernel.bin")
    p = offline("ptdump", "--check-wx")
    assert p.returncode == 0 and p.stdout.endswith(b"passed, no W+X pages found.\n"), p
