# SPDX-License-Identifier: LGPL-2.1-or-later
"""The test VM on the older kernel series, and on a kernel of one's own.

Each series' image (``vm/build --kernel 6.1|6.12``) is the shared sid
userspace (drgn 0.3, bcc 0.37) with Debian's newest cloud kernel of the
series unpacked into it. On 6.1 (5-level paging) and 6.12 (4-level; one mode
each keeps CI short) this checks what every other test relies on:

* ``uname -r`` is of the series and is the image's release;
* drgn in the guest opens ``/proc/kcore`` with the image's -dbg vmlinux and
  finds ``init_task``; drgn on the host does the same over QMP;
* bcc compiles against the series' headers and a kprobe on
  ``walk_page_range`` fires (crosscheck needs both);

then runs livewalk itself on the sample workload (``tests/workloads/
mappings.py``: PMD-mapped anon THPs, a THP shared with a forked child,
private and shared file mappings, shared and private hugetlb pages, swapped
pages, the zero pages...), in the guest (``verify``) and from the host
(``pagemap``/``smaps`` over QMP, compared with the guest's ``/proc``). On
both series these must agree with the kernel: on 6.1 that takes 6.1's
page and folio state (``page_mapcount()`` with ``compound_mapcount`` and
``PageDoubleMap``) and 6.1's ``fs/proc/task_mmu.c`` rules (see
``docs/kernel-differences.md``).

A kernel of one's own (``Guest(kernel_image=, vmlinux=, modules=)``, the
plugin's ``--kernel-image``/``--vmlinux``/``--kernel-modules``, ``vm/run
--kernel-image``) is tried with the 6.12 image's own files: its vmlinuz,
vmlinux and ``/lib/modules/<rel>`` (taken out of root.img with debugfs),
booted on the default image's userspace.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from livewalk.vm import Guest
from livewalk.vm.image import current_image

from livewalk.testing import GuestKey
from livewalk.testing.plugin import session_guest

pytestmark = pytest.mark.vm

ROOT = Path(__file__).resolve().parents[2]

#: (series, paging levels) booted here.
KERNELS = [("6.1", 5), ("6.12", 4)]

#: Regions of the workload that each series must build (what 6.1 got wrong
#: before: THPs, hugetlb, swap; and file mappings).
REQUIRED = ("thp", "cow_thp", "file_private", "file_shared", "hugetlb_shared",
            "hugetlb_private", "swap", "anon", "zero", "thp_zero")  # fmt: skip
READY_FILE = "/tmp/livewalk-kernels-workload.json"

BCC_KPROBE = r'''
from bcc import BPF
b = BPF(text="""
BPF_ARRAY(hits, u64, 1);
int on_walk(struct pt_regs *ctx) {
    int k = 0;
    u64 *v = hits.lookup(&k);
    if (v)
        __sync_fetch_and_add(v, 1);
    return 0;
}
""")
b.attach_kprobe(event="walk_page_range", fn_name="on_walk")
with open("/proc/self/pagemap", "rb") as f:
    f.seek((0x400000 >> 12) * 8)
    f.read(8 * 4096)
print("hits", b["hits"][0].value)
'''


@pytest.fixture(scope="module", params=KERNELS, ids=[f"{k}-l{lv}" for k, lv in KERNELS])
def kguest(request: pytest.FixtureRequest) -> Guest:
    series, levels = request.param
    return session_guest(request, GuestKey(kernel=series, levels=levels))


@pytest.fixture(scope="module")
def workload(kguest: Guest) -> Iterator[dict[str, Any]]:
    """The sample workload, running; yields its ready record."""
    kguest.run(f"rm -f {READY_FILE}", timeout=60)
    pid = kguest.spawn(f"python3 tests/workloads/mappings.py --ready-file {READY_FILE}")
    ready: dict[str, Any] = kguest.wait_ready_file(READY_FILE, pid, 600)
    try:
        yield ready
    finally:
        kguest.run(f"kill {ready['pid']}", timeout=60)


@pytest.fixture(scope="module")
def sleeper(workload: dict[str, Any]) -> int:
    """The workload's pid."""
    return int(workload["pid"])


def test_workload_built(kguest: Guest, workload: dict[str, Any]) -> None:
    missing = {lab: workload["skipped"].get(lab, "not built") for lab in REQUIRED if lab not in workload["regions"]}
    assert not missing, missing


def test_release_is_the_series(kguest: Guest) -> None:
    img = current_image(kguest.kernel)
    assert img is not None
    r = kguest.run("uname -r; cat /proc/version", check=True)
    release, version = r.stdout.splitlines()[:2]
    assert release == img.release == kguest.release
    assert re.fullmatch(rf"{re.escape(kguest.kernel)}[.+-]\S*-cloud-amd64", release), release
    assert f"Debian {img.manifest['versions'][f'linux-image-{release}']}" in version
    # The modules of the series, not of the userspace's suite.
    r = kguest.run("cat /proc/modules | cut -d' ' -f1 | sort | tr '\\n' ' '; "
                   "modinfo -F vermagic virtio_blk", check=True)  # fmt: skip
    assert "virtio_blk" in r.stdout and release in r.stdout


def test_features_know_the_stable_sublevel(kguest: Guest) -> None:
    """
    The stable release livewalk reads from the target is the package's,
    also where the release string carries Debian's ABI number instead
    (``6.1.0-56`` is 6.1.192): stable backports are placed by it.
    """
    from livewalk.kernel import KernelFeatures

    img = current_image(kguest.kernel)
    assert img is not None
    package = img.manifest["versions"][f"linux-image-{kguest.release}"]
    m = re.match(r"(\d+)\.(\d+)\.(\d+)", package)
    assert m, package
    major, minor, sub = (int(x) for x in m.groups())
    f = KernelFeatures.from_program(kguest.host_program())
    assert (f.version, f.sublevel) == ((major, minor), sub), (package, f.version, f.sublevel)


def test_drgn_in_guest_finds_init_task(kguest: Guest) -> None:
    code = (
        "import drgn\n"
        "prog = drgn.program_from_kernel()\n"
        "print(drgn.__version__, prog['init_task'].comm.string_().decode(), prog['UTS_RELEASE'].string_().decode())\n"
    )
    r = kguest.run("python3 -", input=code, timeout=900)
    assert r.returncode == 0, r.stderr
    version, comm, release = r.stdout.split()
    assert comm == "swapper/0"
    assert release == kguest.release


def test_drgn_on_host_finds_init_task(kguest: Guest) -> None:
    pytest.importorskip("drgn")
    prog = kguest.host_program()
    assert prog["init_task"].comm.string_() == b"swapper/0"
    assert prog["UTS_RELEASE"].string_().decode() == kguest.release


def test_bcc_kprobe_attaches(kguest: Guest) -> None:
    r = kguest.run("python3 -", input=BCC_KPROBE, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    m = re.search(r"^hits (\d+)$", r.stdout, re.M)
    assert m and int(m.group(1)) > 0, r.stdout + r.stderr[-2000:]


def _check_livewalk(ok: bool, what: str, detail: str) -> None:
    assert ok, f"{what}: {detail.strip()[-3000:]}"


def test_livewalk_verify_in_guest(kguest: Guest, sleeper: int) -> None:
    r = kguest.run(f"python3 -m livewalk verify --pid {sleeper}", timeout=1800)
    _check_livewalk(r.returncode == 0, f"livewalk verify in the guest on {kguest.release}", r.stdout + r.stderr)
    assert "0 mismatches" in r.stdout and "livewalk agrees with the kernel" in r.stdout


def _host(g: Guest, *args: str) -> subprocess.CompletedProcess[bytes]:
    """``python3 -m livewalk --qemu SOCKET -s DIR ARGS`` on the host (with
    :meth:`Guest.host_program`'s QMP connection dropped: QEMU serves one)."""
    g._prog = None
    import gc

    gc.collect()
    return subprocess.run(
        [sys.executable, "-m", "livewalk", "--qemu", g.qmp_socket, "-s", os.path.dirname(g.vmlinux), *args],
        capture_output=True, timeout=900, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip


#: Reads every VMA's /proc/PID/pagemap entries, in address order (as
#: ``livewalk pagemap --format raw`` without ``--range`` writes them), with
#: each VMA's span.
PAGEMAP_DUMP = r"""
import json, sys
pid = int(sys.argv[1])
f = open(f"/proc/{pid}/pagemap", "rb")
out = []
for ln in open(f"/proc/{pid}/maps"):
    s, e = (int(x, 16) for x in ln.split()[0].split("-"))
    f.seek((s >> 12) * 8)
    name = ln.split()[5] if len(ln.split()) > 5 else ""
    shared = name.startswith("/") or name == "[vdso]"  # pages other processes map too
    out.append([s, e, shared, f.read(((e - s) >> 12) * 8).hex()])
print(json.dumps(out))
"""

PM_MMAP_EXCLUSIVE = 1 << 56


def _regions(workload: dict[str, Any]) -> list[tuple[int, int]]:
    """The workload's own regions (not ``lib``: libc is mapped by others too)."""
    return [(s, e) for lab, (s, e) in workload["regions"].items() if lab != "lib"]


def _inside(a: int, regions: list[tuple[int, int]]) -> bool:
    return any(s <= a < e for s, e in regions)


def test_livewalk_pagemap_from_host(kguest: Guest, sleeper: int, workload: dict[str, Any]) -> None:
    pytest.importorskip("drgn")
    kguest.put("/tmp/pagemap_dump.py", PAGEMAP_DUMP)
    vmas = json.loads(kguest.run(f"python3 /tmp/pagemap_dump.py {sleeper}", check=True, timeout=600).stdout)
    r = _host(kguest, "pagemap", "--pid", str(sleeper), "--format", "raw")
    _check_livewalk(r.returncode == 0, f"livewalk pagemap from the host on {kguest.release}", r.stderr.decode())
    ours = array("Q", r.stdout)
    regions = _regions(workload)
    bad: list[str] = []
    i = 0
    for start, end, shared, hx in vmas:
        kernel = array("Q", bytes.fromhex(hx))
        mine = ours[i : i + len(kernel)]
        i += len(kernel)
        for k, (a, b) in enumerate(zip(kernel, mine)):
            addr = start + k * 4096
            if shared and not _inside(addr, regions):
                # a library's or the vDSO's page: others map it too, EXCLUSIVE moves
                a, b = a & ~PM_MMAP_EXCLUSIVE, b & ~PM_MMAP_EXCLUSIVE
            if a != b:
                bad.append(f"{addr:#x}: kernel {a:#018x} livewalk {b:#018x}")
        if len(mine) != len(kernel):
            bad.append(f"[{start:#x}, {end:#x}): {len(kernel)} entries vs livewalk's {len(mine)}")
    assert i == len(ours), f"livewalk wrote {len(ours)} entries, the kernel's VMAs have {i}"
    assert not bad, f"{len(bad)} mismatches on {kguest.release}:\n" + "\n".join(bad[:20])


def _smaps_blocks(text: str) -> list[tuple[int, list[str]]]:
    """(start, lines) of each VMA of an smaps text."""
    out: list[tuple[int, list[str]]] = []
    for ln in text.splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", ln):
            out.append((int(ln.split("-")[0], 16), []))
        out[-1][1].append(" ".join(ln.split()))
    return out


def test_livewalk_smaps_from_host(kguest: Guest, sleeper: int, workload: dict[str, Any]) -> None:
    pytest.importorskip("drgn")
    r = _host(kguest, "smaps", "--pid", str(sleeper))
    _check_livewalk(r.returncode == 0, f"livewalk smaps from the host on {kguest.release}", r.stderr.decode())
    kernel = _smaps_blocks(kguest.get(f"/proc/{sleeper}/smaps").decode())
    ours = _smaps_blocks(r.stdout.decode())
    regions = _regions(workload)
    # Outside the workload's own regions (libc, the interpreter, [heap]...)
    # Pss and the Shared/Private split move with the readers mapping the
    # same files; every other line, and everything of the workload's
    # regions, must be the kernel's.
    moving = re.compile(r"^(Pss\w*|Shared_\w+|Private_\w+):")
    diff: list[str] = []
    if [s for s, _ in kernel] != [s for s, _ in ours]:
        diff.append(f"VMAs differ: kernel {len(kernel)}, livewalk {len(ours)}")
    for (start, k), (_, o) in zip(kernel, ours):
        own = _inside(start, regions)
        kk = [ln for ln in k if own or not moving.match(ln)]
        oo = [ln for ln in o if own or not moving.match(ln)]
        if len(kk) != len(oo):
            diff.append(f"{k[0]}: {len(kk)} lines vs livewalk's {len(oo)}")
        diff += [f"{k[0][:40]}: kernel {a!r} != livewalk {b!r}" for a, b in zip(kk, oo) if a != b]
    assert not diff, f"{len(diff)} differences on {kguest.release}:\n" + "\n".join(diff[:20])


# --- a kernel of one's own ---------------------------------------------------


@pytest.fixture(scope="module")
def own_kernel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(vmlinuz, vmlinux, modules dir) of the 6.12 image, as a developer's files."""
    img = current_image("6.12")
    if img is None:
        pytest.skip("no 6.12 image (vm/build --kernel 6.12)")
    d = tmp_path_factory.mktemp("own")
    mods = d / "modules"
    mods.mkdir()
    subprocess.run(
        ["debugfs", "-R", f"rdump /usr/lib/modules/{img.release} {mods}", str(img.root)],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert (mods / img.release / "modules.dep").is_file()
    return img.vmlinuz, img.vmlinux, mods / img.release


def test_own_kernel_boots_with_its_modules(own_kernel: tuple[Path, Path, Path]) -> None:
    vmlinuz, vmlinux, modules = own_kernel
    with Guest(levels=5, kernel_image=vmlinuz, vmlinux=vmlinux, modules=modules, quiet=True) as g:
        r = g.run("uname -r; modinfo -F vermagic virtio_blk; mountpoint -q /src && echo src-mounted", check=True)
        release, vermagic, mounted = r.stdout.split("\n")[:3]
        assert release.startswith("6.12.") and release == g.release
        assert vermagic.startswith(release)
        assert mounted == "src-mounted"
        # The root and the modules disk are two namespaces of one NVMe
        # controller, named in whatever order the kernel's scan ended: the
        # root was found by its partition table, the modules by their label.
        r = g.run("for m in / /lib/modules; do d=$(findmnt -no SOURCE $m); echo $d $(blkid -s LABEL -o value $d); done",
                  check=True)  # fmt: skip
        (root, root_label), (mods, mods_label) = (ln.split() for ln in r.stdout.splitlines())
        assert (root_label, mods_label) == ("lwroot", "lwmods")
        assert re.fullmatch(r"/dev/nvme0n[12]p1", root) and re.fullmatch(r"/dev/nvme0n[12]", mods)
        assert root[:-2] != mods
        if __import__("importlib").util.find_spec("drgn") is not None:
            assert g.host_program()["UTS_RELEASE"].string_().decode() == release
    # The table went into QEMU's snapshot of the root, not into the image.
    img = current_image("6.12")
    assert img is not None
    with open(img.root, "rb") as f:
        assert f.read(512) == bytes(512)
