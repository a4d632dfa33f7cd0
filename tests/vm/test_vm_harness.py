# SPDX-License-Identifier: LGPL-2.1-or-later
"""The test VM itself (vm/): what it boots, what it offers, how it fails.

Expected values come from the image's manifest (what vm/build resolved in the
archive), from the kernel's source (arch/x86/boot/compressed/pgtable_64.c sets
pgdir_shift 48 / ptrs_per_p4d 512 with LA57, arch/x86/kernel/head64.c keeps 39
/ 1 otherwise) and from the guest's own /proc.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from livewalk.vm import BootError, Guest, GuestError
from livewalk.vm.image import current_image

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]


def test_guest_runs_the_image_kernel(guest: Guest) -> None:
    img = current_image()
    assert img is not None
    r = guest.run("uname -r; cat /proc/version", check=True)
    release, version = r.stdout.splitlines()[:2]
    assert release == img.release == guest.release
    # The newest 7.x cloud flavour, as vm/build resolved it.
    assert re.fullmatch(r"7\.\d+\.\d+\S*-cloud-amd64", release)
    assert f"linux-image-{release}" in img.manifest["versions"]
    deb_version = img.manifest["versions"][f"linux-image-{release}"]
    assert f"Debian {deb_version}" in version


def test_paging_levels_from_guest(guest: Guest) -> None:
    """la57 in the CPU flags, and whether user mmap can go above 47 bits."""
    code = (
        "import ctypes, mmap\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.mmap.restype = ctypes.c_void_p\n"
        "libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,"
        " ctypes.c_int, ctypes.c_long]\n"
        "a = libc.mmap(1 << 52, 4096, mmap.PROT_READ, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, -1, 0)\n"
        "print(hex(a))\n"
    )
    r = guest.run("grep -c -w la57 /proc/cpuinfo; python3 -", input=code)
    count, addr = r.stdout.split()
    if guest.levels == 5:
        assert int(count) == 2  # both vCPUs
        assert int(addr, 16) >= 1 << 47
    else:
        assert int(count) == 0  # no5lvl clears the feature
        assert int(addr, 16) < 1 << 47
    cmdline = guest.run("cat /proc/cmdline", check=True).stdout.split()
    assert ("no5lvl" in cmdline) == (guest.levels == 4)


def test_paging_levels_from_host_drgn(guest: Guest) -> None:
    prog = guest.host_program()
    l5 = guest.levels == 5
    assert prog["pgdir_shift"].value_() == (48 if l5 else 39)
    assert prog["ptrs_per_p4d"].value_() == (512 if l5 else 1)
    assert prog["__pgtable_l5_enabled"].value_() == (1 if l5 else 0)


def test_import_drgn_and_bcc(guest: Guest) -> None:
    r = guest.run("python3 -c 'import drgn, bcc; print(drgn.__version__)'")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", r.stdout.strip())


def test_guest_drgn_reads_kcore_with_vmlinux(guest: Guest) -> None:
    """drgn in the guest: /proc/kcore plus the vmlinux the image installs
    where drgn looks by default; it finds its own process and reads the
    kernel's banner as /proc/version shows it."""
    code = (
        "import os, drgn\n"
        "from drgn.helpers.linux.pid import find_task\n"
        "prog = drgn.program_from_kernel()\n"
        "t = find_task(prog, os.getpid())\n"
        "print(t.comm.string_().decode())\n"
        "print(prog['linux_banner'].string_().decode().rstrip())\n"
    )
    r = guest.run(
        f"test -f /usr/lib/debug/lib/modules/{guest.release}/vmlinux && python3 -",
        input=code,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    comm, banner = r.stdout.splitlines()[:2]
    assert comm == "python3"
    assert banner == guest.get("/proc/version").decode().rstrip()


def test_host_drgn_finds_guest_task(guest: Guest) -> None:
    """drgn on the host, over QMP: the same task by PID, its first VMA as the
    guest's /proc/PID/maps shows it, and user memory through its page tables."""
    from drgn.helpers.linux.mm import access_remote_vm
    from drgn.helpers.linux.pid import find_task

    marker = b"livewalk-vm-marker-" + os.urandom(8).hex().encode()
    code = (
        "import ctypes, sys, time\n"
        f"buf = ctypes.create_string_buffer({marker!r})\n"
        "print(hex(ctypes.addressof(buf)), flush=True)\n"
        "time.sleep(3600)\n"
    )
    guest.put("/tmp/test_vm_marker.py", code)
    pid = guest.spawn("python3 /tmp/test_vm_marker.py", ready="0x")
    try:
        addr = int(guest.spawn_log(pid).split()[0], 16)
        maps0 = guest.run(f"head -1 /proc/{pid}/maps", check=True).stdout.split()[0]
        comm = guest.run(f"cat /proc/{pid}/comm", check=True).stdout.strip()
        prog = guest.host_program()
        task = find_task(prog, pid)
        assert task, f"host drgn found no task {pid}"
        assert task.pid.value_() == pid
        assert task.comm.string_().decode() == comm == "python3"
        first = next(iter(_vmas(task.mm)))
        start, end = (int(x, 16) for x in maps0.split("-"))
        assert (first.vm_start.value_(), first.vm_end.value_()) == (start, end)
        assert access_remote_vm(task.mm, addr, len(marker)) == marker
    finally:
        guest.run(f"kill -9 {pid}")


def _vmas(mm):  # type: ignore[no-untyped-def]
    from drgn.helpers.linux.mm import for_each_vma

    return for_each_vma(mm)


def test_put_is_whole_or_absent(guest: Guest) -> None:
    """A guest process polling for a file :meth:`Guest.put` writes never sees
    it created but not yet written (the tests' request files rely on it), and
    the file gets its mode and leaves nothing beside it."""
    data = os.urandom(1 << 20)
    poller = (
        "import os, sys\n"
        "p = sys.argv[1]\n"
        "while not os.path.exists(p):\n"
        "    pass\n"
        "with open(p, 'rb') as f:\n"
        "    print(len(f.read()), flush=True)\n"
    )
    guest.run("rm -rf /tmp/lw-put; mkdir /tmp/lw-put", check=True)
    guest.put("/tmp/lw-put-poller.py", poller)
    for i in range(3):
        pid = guest.spawn(f"python3 /tmp/lw-put-poller.py /tmp/lw-put/f{i}")
        time.sleep(1)  # polling by now
        guest.put(f"/tmp/lw-put/f{i}", data, mode=0o600)
        guest.wait_output(pid, "\n", timeout=60)
        assert guest.spawn_log(pid).split() == [str(len(data))], f"round {i}"
    r = guest.run("ls -A /tmp/lw-put; stat -c %a /tmp/lw-put/f0; sha256sum /tmp/lw-put/f2", check=True)
    out = r.stdout.split()
    names, mode, digest = out[:3], out[3], out[4]
    assert (names, mode) == (["f0", "f1", "f2"], "600"), r.stdout
    assert digest == hashlib.sha256(data).hexdigest()


def test_alive_and_an_ended_process(guest: Guest) -> None:
    """
    ``Guest.alive`` follows a spawned process (its /proc/PID/stat, read by
    the agent: no command runs for it), and ``wait_output`` on a process
    that ended without printing the text fails at once with its output,
    not at the timeout.
    """
    running = guest.spawn("exec sleep 600")
    ended = guest.spawn("echo last words; exit 3")
    try:
        assert guest.alive(running)
        deadline = time.monotonic() + 60
        while guest.alive(ended):
            assert time.monotonic() < deadline, f"process {ended} still alive after 60 s"
            time.sleep(0.5)
        t0 = time.monotonic()
        with pytest.raises(GuestError, match=r"ended before printing 'never'[\s\S]*last words"):
            guest.wait_output(ended, "never", timeout=120)
        assert time.monotonic() - t0 < 30
        assert not guest.alive(999999)
    finally:
        guest.run(f"kill {running}")
    deadline = time.monotonic() + 60
    while guest.alive(running):
        assert time.monotonic() < deadline, f"process {running} still alive after kill"
        time.sleep(0.5)


def test_src_is_the_working_tree_read_only(guest: Guest) -> None:
    here = Path(__file__)
    rel = here.relative_to(ROOT)
    r = guest.run(f"sha256sum {rel}; touch /src/.write-test", check=False)
    assert r.stdout.split()[0] == hashlib.sha256(here.read_bytes()).hexdigest()
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    r = guest.run("pwd; echo $PYTHONDONTWRITEBYTECODE", check=True)
    assert r.stdout.split() == ["/src", "1"]


def test_hugetlb_thp_and_swap_work(guest: Guest) -> None:
    """What the walker tests need: a hugetlb mapping, a THP and swapped-out
    pages, checked with the kernel's own smaps and pagemap."""
    code = r"""
import mmap, struct, ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
MADV_HUGEPAGE, MADV_PAGEOUT, MAP_HUGETLB = 14, 21, 0x40000
M = 1 << 21

def addr(m):
    return ctypes.addressof(ctypes.c_char.from_buffer(m))

def smaps_field(start, field):
    cur = None
    for line in open('/proc/self/smaps'):
        head = line.split()[0]
        if '-' in head and not head.endswith(':'):
            cur = int(head.split('-')[0], 16)
        elif cur == start and line.startswith(field + ':'):
            return int(line.split()[1])

def pagemap(a):
    with open('/proc/self/pagemap', 'rb') as f:
        f.seek(a // 4096 * 8)
        return struct.unpack('<Q', f.read(8))[0]

h = mmap.mmap(-1, M, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_HUGETLB)
h[0] = 1
print('hugetlb_kps', smaps_field(addr(h), 'KernelPageSize'))

t = mmap.mmap(-1, 2 * M, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
a = (addr(t) + M - 1) & ~(M - 1)
assert libc.madvise(a, M, MADV_HUGEPAGE) == 0
t[a - addr(t)] = 1
print('thp_anonhuge', smaps_field(addr(t), 'AnonHugePages'))

s = mmap.mmap(-1, 16 * 4096, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
s.write(b'x' * (16 * 4096))
assert libc.madvise(addr(s), 16 * 4096, MADV_PAGEOUT) == 0
print('swapped', sum(1 for i in range(16) if pagemap(addr(s) + i * 4096) >> 62 & 1))
"""
    r = guest.run("cat /proc/swaps; python3 -", input=code, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "/dev/zram0" in r.stdout
    vals = dict(line.split() for line in r.stdout.splitlines() if line.split()[0] in
                ("hugetlb_kps", "thp_anonhuge", "swapped"))  # fmt: skip
    assert vals["hugetlb_kps"] == "2048"
    assert vals["thp_anonhuge"] == "2048"
    assert vals["swapped"] == "16"


def test_run_status_streams_and_timeout(guest: Guest) -> None:
    r = guest.run("echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    with pytest.raises(GuestError):
        guest.run("exit 3", check=True)
    chunks: list[tuple[int, bytes]] = []
    guest.run("echo a; echo b >&2", stream=lambda fd, d: chunks.append((fd, d)))
    assert b"".join(d for fd, d in chunks if fd == 1) == b"a\n"
    assert b"".join(d for fd, d in chunks if fd == 2) == b"b\n"
    t = time.monotonic()
    r = guest.run("sleep 120", timeout=3)
    assert r.timed_out and r.returncode == -9
    assert time.monotonic() - t < 60
    # The guest still answers after a timeout.
    assert guest.run("echo alive").stdout == "alive\n"


def test_vm_run_status_output_and_out(tmp_path: Path) -> None:
    """vm/run: prints the guest kernel's release (the README's demo), streams
    stdout and stderr, exits with the command's status, brings /out back."""
    img = current_image()
    assert img is not None
    out = tmp_path / "out"
    script = (
        "uname -r; echo to-err >&2; echo data > /out/a.txt; mkdir /out/sub; printf x > /out/sub/b;"
        " exit 42"
    )
    p = subprocess.run(
        [sys.executable, str(ROOT / "vm" / "run"), "--levels", "4", "--out", str(out), "--",
         "sh", "-c", script],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert p.returncode == 42, p.stderr
    assert p.stdout == img.release + "\n"
    assert "to-err" in p.stderr
    assert re.search(r"booted \S+ \(x86_64\) with 4-level paging \(\w+\) in \d+\.\d s", p.stderr), p.stderr
    assert (out / "a.txt").read_text() == "data\n"
    assert (out / "sub" / "b").read_text() == "x"
    assert str(out) in p.stderr


def test_failed_boot_is_detected_not_hung() -> None:
    """A kernel that panics at boot (no init) is reported as BootError after
    the retries, quickly, and leaves no QEMU running."""
    t = time.monotonic()
    g = Guest(levels=4, memory="1G", attempts=2, boot_timeout=120, extra_cmdline="init=/nonexistent",
              quiet=True)  # fmt: skip
    with pytest.raises(BootError, match="Kernel panic|QEMU exited"):
        g.start()
    assert not g.running
    assert g.boot_attempts == 2
    assert time.monotonic() - t < 200
    assert g.run_dir is not None
    logs = sorted(p.name for p in g.run_dir.glob("console.attempt*.log"))
    assert logs == ["console.attempt1.log", "console.attempt2.log"]
    shutil.rmtree(g.run_dir)


def test_hung_boot_times_out() -> None:
    g = Guest(levels=5, memory="1G", attempts=1, boot_timeout=2, quiet=True)
    t = time.monotonic()
    with pytest.raises(BootError, match="no answer"):
        g.start()
    assert not g.running
    assert time.monotonic() - t < 60
    assert g.run_dir is not None
    shutil.rmtree(g.run_dir)
