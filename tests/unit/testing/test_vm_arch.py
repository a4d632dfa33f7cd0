# SPDX-License-Identifier: LGPL-2.1-or-later
"""The test VM's architecture choice, without booting anything: the QEMU
command line of x86-64 and arm64 guests, the image names, the plugin's
``--livewalk-arch`` and the guests' test ids."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from livewalk.vm.disks import ROOT_PARTUUID, root_partition_table
from livewalk.vm.image import FIRSTBOOT_INIT, ImageSpec, arch_name
from livewalk.vm.qemu import QemuSpec, firstboot_args, kernel_cmdline, qemu_args

from livewalk.testing import PLUGIN, GuestKey, plugin_installed


def _spec(arch: str, levels: int) -> QemuSpec:
    return QemuSpec(levels=levels, memory="4G", smp=2, accel="tcg", kernel=Path("vmlinuz"),
                    root=Path("root.img"), run_dir=Path("/tmp/lwvm-x"), arch=arch)  # fmt: skip


def _opt(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


@pytest.mark.parametrize("levels", [5, 4])
def test_x86_64_command_line(levels: int) -> None:
    args = qemu_args(_spec("x86_64", levels))
    assert args[0] == "qemu-system-x86_64"
    assert (_opt(args, "-machine"), _opt(args, "-accel"), _opt(args, "-cpu")) == ("q35", "tcg,thread=single", "max")
    cmdline = _opt(args, "-append")
    assert cmdline.startswith("console=ttyS0 ") and ("no5lvl" in cmdline.split()) == (levels == 4)


@pytest.mark.parametrize(("levels", "cpu"), [(5, "max,pauth-impdef=on"), (4, "max,pauth-impdef=on,lpa2=off")])
def test_arm64_command_line(levels: int, cpu: str) -> None:
    args = qemu_args(_spec("arm64", levels))
    assert args[0] == "qemu-system-aarch64"
    assert (_opt(args, "-machine"), _opt(args, "-cpu")) == ("virt", cpu)
    cmdline = kernel_cmdline(_spec("arm64", levels))
    assert cmdline.startswith("console=ttyAMA0 ") and "no5lvl" not in cmdline
    # The devices the harness relies on are the same as on x86-64.
    for dev in ("vmcoreinfo", "nvme,drive=root,serial=lwroot", "virtio-serial-pci,id=vser0"):
        assert dev in args


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_modules_disk_beside_the_root(arch: str) -> None:
    """With a kernel of one's own, its modules disk is the second namespace
    of the root's NVMe controller. The kernel may name either ``nvme0n1``
    (it scans namespaces asynchronously), so the root is found by the
    partition table the harness gives it while QEMU holds the CPUs (``-S``);
    without a modules disk nothing of that is there."""
    from dataclasses import replace

    spec = replace(_spec(arch, 4), modules=Path("mods.img"))
    args = qemu_args(spec)
    devices = [args[i + 1] for i, a in enumerate(args) if a == "-device"]
    nvme = [d for d in devices if d.split(",")[0] in ("nvme", "nvme-ns")]
    assert nvme == ["nvme,id=nvme0,serial=lwroot", "nvme-ns,drive=root,bus=nvme0,nsid=1",
                    "nvme-ns,drive=mods,bus=nvme0,nsid=2"]  # fmt: skip
    assert "-S" in args
    words = kernel_cmdline(spec).split()
    assert f"root=PARTUUID={ROOT_PARTUUID}" in words
    assert not any(w.startswith("root=/dev/") for w in words)
    plain = _spec(arch, 4)
    assert "-S" not in qemu_args(plain) and "root=/dev/nvme0n1" in kernel_cmdline(plain).split()


@pytest.mark.parametrize("size", [16 << 20, 3 << 30, 2**41 - 512])
def test_root_partition_table_read_by_util_linux(tmp_path: Path, size: int) -> None:
    """The root's partition table, read back by util-linux (``partx``): one
    partition, number 1, of the whole disk from sector 0, named
    :data:`ROOT_PARTUUID`; an ext4 file system under it is still whole."""
    if shutil.which("partx") is None:
        pytest.skip("no partx (util-linux)")
    disk = tmp_path / "root.img"
    with open(disk, "wb") as f:
        f.truncate(size)
    if size == 16 << 20:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "lwroot", str(disk)], check=True)
    with open(disk, "r+b") as f:
        f.write(root_partition_table(size))
    out = subprocess.run(["partx", "--show", "--bytes", "--noheadings", "-o", "NR,START,SECTORS,UUID", str(disk)],
                         check=True, stdout=subprocess.PIPE, text=True).stdout.split()  # fmt: skip
    assert out == ["1", "0", str(size // 512), ROOT_PARTUUID]
    if size == 16 << 20:
        fsck = subprocess.run(["e2fsck", "-fn", str(disk)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert fsck.returncode == 0, fsck.stdout
    with pytest.raises(ValueError):
        root_partition_table(2**41)


@pytest.mark.parametrize(("series", "pools"), [("7", ["2M:64"]), ("16k", ["2M:64", "32M:4"])])
def test_hugetlb_pools_of_the_pmd_size(series: str, pools: list[str]) -> None:
    """2 MiB hugetlb pages always, and pages of the PMD size (the default
    hugetlb size, what ``MAP_HUGETLB`` alone asks for) where that differs."""
    from dataclasses import replace

    words = kernel_cmdline(replace(_spec("arm64", 4), series=series)).split()
    sizes = [w.split("=")[1] for w in words if w.startswith("hugepagesz=")]
    counts = [w.split("=")[1] for w in words if w.startswith("hugepages=")]
    assert [f"{s}:{n}" for s, n in zip(sizes, counts, strict=True)] == pools


def test_arm64_first_boot() -> None:
    args = firstboot_args("arm64", Path("vmlinuz"), Path("root.img"), Path("console.log"))
    assert args[0] == "qemu-system-aarch64"
    assert "init=/usr/sbin/livewalk-firstboot" in _opt(args, "-append")
    assert "snapshot=on" not in _opt(args, "-drive")  # its changes are the point
    assert "dpkg --install" in FIRSTBOOT_INIT and "dpkg --configure -a" in FIRSTBOOT_INIT


def test_image_names() -> None:
    assert arch_name("aarch64") == "arm64" and arch_name("x86_64") == "x86_64"
    spec = ImageSpec("aarch64")
    assert (spec.arch, spec.name, spec.deb_arch, spec.flavour) == ("arm64", "arm64-7", "arm64", "cloud-arm64")
    assert not spec.is_default and ImageSpec().is_default


def test_guest_ids() -> None:
    assert GuestKey(levels=4).id == "l4"
    assert GuestKey(levels=4, arch="arm64").id == "arm64-l4"
    assert GuestKey(kernel="6.12", levels=5, arch="arm64").id == "arm64-6.12-l5"


def test_plugin_arch_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_project="""
        import pytest

        def test_on_vm(livewalk_guest):
            pass

        @pytest.mark.livewalk_vm(arches=("arm64",), paging=(4,))
        def test_on_arm64(livewalk_guest):
            pass
        """
    )
    plugin = [] if plugin_installed() else ["-p", PLUGIN]
    ids = pytester.runpytest(*plugin, "--collect-only", "-q", "--livewalk-arch", "x86_64,aarch64").outlines
    assert {"test_project.py::test_on_vm[l5]", "test_project.py::test_on_vm[arm64-l5]",
            "test_project.py::test_on_arm64[arm64-l4]"} <= set(ids)  # fmt: skip
    ids = pytester.runpytest(*plugin, "--collect-only", "-q", "-m", "not livewalk_vm_arm64").outlines
    assert "test_project.py::test_on_vm[l5]" in ids and not any("arm64" in i for i in ids)
