# SPDX-License-Identifier: LGPL-2.1-or-later
"""The arm64 test VM: Debian sid's cloud-arm64 kernel under
``qemu-system-aarch64`` (TCG, ``-machine virt``), with 5 levels (``-cpu
max``: FEAT_LPA2, 52-bit VA) and 4 (``-cpu max,lpa2=off``: 48-bit VA).

The image (``vm/build --arch arm64``) is unpacked on the host and its
packages are installed by the guest itself at its first boot (the host runs
no arm64 code). This checks what every arm64 test will rely on:

* ``uname -m`` is ``aarch64`` and the release is the image's;
* drgn in the guest opens ``/proc/kcore`` with the image's -dbg vmlinux and
  finds ``init_task``; drgn on the x86-64 host does the same over QMP and
  reads the same ``init_task.comm``;
* the geometry: ``getconf PAGESIZE`` is 4096, and the kernel's
  ``vabits_actual`` (a macro reading TCR_EL1.T1SZ in 7.2, which VMCOREINFO
  exports as ``NUMBER(TCR_EL1_T1SZ)``) is 52 with LPA2 and 48 without, the
  same in the guest and on the host, and matches the levels the agent saw.

Select with ``-m livewalk_vm_arm64`` (leave out with ``-m "not livewalk_vm_arm64"``).
"""

from __future__ import annotations

import json
import re

import pytest
from livewalk.vm import Guest
from livewalk.vm.image import current_image

pytestmark = [pytest.mark.vm, pytest.mark.livewalk_vm(arches=("arm64",), paging=(5, 4))]

#: VA bits of the Debian arm64 kernel (4K pages, VA_BITS=52) by paging levels.
VA_BITS = {5: 52, 4: 48}

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
    assert release.endswith("-cloud-arm64"), release


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
    want = VA_BITS[livewalk_guest.levels]
    r = livewalk_guest.run("getconf PAGESIZE", check=True)
    assert int(r.stdout) == 4096
    assert in_guest["vabits_actual"] == want
    prog = livewalk_guest.host_program()
    assert _vabits_actual(prog["VMCOREINFO"].string_().decode()) == want
    # The kernel's own word on it at boot.
    lpa2 = "52-bit Virtual Addressing (LPA2)" in livewalk_guest.run("dmesg", check=True).stdout
    assert lpa2 == (want == 52)
