# SPDX-License-Identifier: LGPL-2.1-or-later
"""The test VM's kernel series per architecture, without booting anything:
arm64's 16K-page kernel (``16k``) beside the cloud one, its paging levels
(4 with FEAT_LPA2, 3 without), the initramfs it boots through, and the
one-line usage errors of a series the architecture does not have."""

from __future__ import annotations

import gzip
import lzma
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from livewalk.vm.guest import Guest
from livewalk.vm.image import KERNEL_SERIES, ImageError, ImageSpec, arch_series
from livewalk.vm.initramfs import INITRAMFS_INIT, load_order, make_initramfs
from livewalk.vm.qemu import QemuSpec, firstboot_args, machine_args, qemu_args

from livewalk.testing import PLUGIN, GuestKey, plugin_installed

ROOT = Path(__file__).resolve().parents[3]


def test_series_per_arch() -> None:
    assert arch_series("x86_64") == ("6.1", "6.12", "7")
    assert arch_series("aarch64") == ("7", "16k")
    spec = ImageSpec("arm64", "16k")
    assert (spec.name, spec.flavour, spec.kernel.release_prefix) == ("arm64-16k", "arm64-16k", "7")
    assert KERNEL_SERIES["16k"].levels == (4, 3) and KERNEL_SERIES["16k"].initramfs
    assert ImageSpec("arm64").flavour == "cloud-arm64" and not ImageSpec("arm64").kernel.initramfs


@pytest.mark.parametrize(
    ("arch", "series"), [("arm64", "6.1"), ("arm64", "6.12"), ("x86_64", "16k"), ("arm64", "8")]
)
def test_wrong_series_is_one_line(arch: str, series: str) -> None:
    with pytest.raises(ImageError) as e:
        ImageSpec(arch, series)
    msg = str(e.value)
    assert "\n" not in msg and f"no {arch} kernel series {series!r}" in msg
    assert "arm64: 7, 16k" in msg and "x86_64: 6.1, 6.12, 7" in msg
    with pytest.raises(ValueError, match=f"no {arch} kernel series"):
        Guest(arch=arch, kernel=series)


def test_guest_levels_per_kernel() -> None:
    assert Guest(arch="arm64", kernel="16k").levels == 4 and Guest().levels == 5
    Guest(arch="arm64", kernel="16k", levels=4)
    Guest(arch="arm64", kernel="16k", levels=3)
    with pytest.raises(ValueError, match="levels must be 4 or 3 with arm64 kernel 16k, not 5"):
        Guest(arch="arm64", kernel="16k", levels=5)
    with pytest.raises(ValueError, match="levels must be 5 or 4"):
        Guest(arch="x86_64", levels=3)


@pytest.mark.parametrize(("series", "levels", "cpu"), [
    ("7", 5, "max,pauth-impdef=on"), ("7", 4, "max,pauth-impdef=on,lpa2=off"),
    ("16k", 4, "max,pauth-impdef=on"), ("16k", 3, "max,pauth-impdef=on,lpa2=off"),
])  # fmt: skip
def test_arm64_lpa2_by_page_size(series: str, levels: int, cpu: str) -> None:
    args = machine_args("arm64", levels, "tcg", series)
    assert args[args.index("-cpu") + 1] == cpu


def test_initrd_on_the_command_lines() -> None:
    spec = QemuSpec(levels=4, memory="4G", smp=2, accel="tcg", kernel=Path("vmlinuz"), root=Path("root.img"),
                    run_dir=Path("/tmp/lwvm-x"), arch="arm64", series="16k", initrd=Path("initrd.img"))  # fmt: skip
    args = qemu_args(spec)
    assert (
        args[args.index("-initrd") + 1] == "initrd.img"
        and "lpa2=off" not in args[args.index("-cpu") + 1]
    )
    assert "-initrd" not in qemu_args(QemuSpec(**{**spec.__dict__, "initrd": None}))
    fb = firstboot_args(
        "arm64", Path("vmlinuz"), Path("root.img"), Path("c.log"), initrd=Path("i.img")
    )
    assert fb[fb.index("-initrd") + 1] == "i.img"
    assert "-initrd" not in firstboot_args(
        "arm64", Path("vmlinuz"), Path("root.img"), Path("c.log")
    )


def test_load_order() -> None:
    deps = {"n.ko.xz": ["c.ko.xz", "k.ko.xz"], "c.ko.xz": ["k.ko.xz"], "k.ko.xz": [], "e.ko.xz": ["j.ko.xz"],
            "j.ko.xz": []}  # fmt: skip
    assert load_order(deps, ["n.ko.xz", "e.ko.xz"]) == [
        "k.ko.xz",
        "c.ko.xz",
        "n.ko.xz",
        "j.ko.xz",
        "e.ko.xz",
    ]


def _cpio(data: bytes) -> dict[str, tuple[int, bytes, int, int]]:
    """name -> (mode, data, rdevmajor, rdevminor) of a newc archive."""
    out = {}
    off = 0
    while True:
        assert data[off : off + 6] == b"070701"
        f = [int(data[off + 6 + 8 * i : off + 14 + 8 * i], 16) for i in range(13)]
        namesize, filesize = f[11], f[6]
        name_at = off + 110
        name = data[name_at : name_at + namesize - 1].decode()
        body = (name_at + namesize + 3) & ~3
        if name == "TRAILER!!!":
            return out
        out[name] = (f[1], data[body : body + filesize], f[9], f[10])
        off = (body + filesize + 3) & ~3


def test_make_initramfs(tmp_path: Path) -> None:
    rel = "7.2.13+deb14-arm64-16k"
    moddir = tmp_path / "lib/modules" / rel
    for m in ("kernel/drivers/nvme/host/nvme.ko.xz", "kernel/drivers/nvme/host/nvme-core.ko.xz",
              "kernel/fs/ext4/ext4.ko.xz", "kernel/fs/jbd2/jbd2.ko.xz", "kernel/fs/fat/vfat.ko.xz"):  # fmt: skip
        (moddir / m).parent.mkdir(parents=True, exist_ok=True)
        (moddir / m).write_bytes(lzma.compress(b"\x7fELF " + m.encode()))
    (moddir / "modules.dep").write_text(
        "kernel/drivers/nvme/host/nvme.ko.xz: kernel/drivers/nvme/host/nvme-core.ko.xz\n"
        "kernel/drivers/nvme/host/nvme-core.ko.xz:\n"
        "kernel/fs/ext4/ext4.ko.xz: kernel/fs/jbd2/jbd2.ko.xz\nkernel/fs/jbd2/jbd2.ko.xz:\nkernel/fs/fat/vfat.ko.xz:\n"
    )
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/busybox").write_bytes(b"\x7fELF busybox")
    dest = tmp_path / "initrd.img"
    assert make_initramfs(tmp_path, rel, dest) == ["nvme-core.ko", "nvme.ko", "jbd2.ko", "ext4.ko"]
    files = _cpio(gzip.decompress(dest.read_bytes()))
    assert files["init"][1].decode() == INITRAMFS_INIT and files["init"][0] == stat.S_IFREG | 0o755
    assert files["bin/sh"] == (stat.S_IFLNK | 0o777, b"busybox", 0, 0)
    assert files["dev/console"][0] == stat.S_IFCHR | 0o600 and files["dev/console"][2:] == (5, 1)
    assert files["lib/modules/ext4.ko"][1] == b"\x7fELF kernel/fs/ext4/ext4.ko.xz"  # decompressed
    assert files["lib/modules/load-order"][1] == b"nvme-core.ko\nnvme.ko\njbd2.ko\next4.ko\n"
    assert "lib/modules/vfat.ko" not in files
    # what the init calls is all in the archive
    assert all(
        f"bin/{a}" in files for a in ("mount", "insmod", "switch_root", "sleep", "cat", "umount")
    )


@pytest.mark.parametrize(("cmd", "args", "msg"), [
    ("build", ["--arch", "arm64", "--kernel", "6.1"], "no arm64 kernel series '6.1'"),
    ("build", ["--kernel", "16k"], "no x86_64 kernel series '16k'"),
    ("run", ["--kernel", "16k", "--", "true"], "no x86_64 kernel series '16k'"),
    ("run", ["--arch", "arm64", "--kernel", "16k", "--levels", "5", "--", "true"],
     "arm64 kernel 16k runs with 4 or 3 levels, not 5"),
])  # fmt: skip
def test_vm_commands_usage_errors(cmd: str, args: list[str], msg: str) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "vm" / cmd), *args], capture_output=True, text=True,
                       timeout=60, env=dict(os.environ, LIVEWALK_VM_CACHE="/nonexistent"))  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.splitlines()[-1] == f"vm/{cmd}: error: {msg}" + (
        " (arm64: 7, 16k; x86_64: 6.1, 6.12, 7)" if cmd == "build" and "arm64" in msg
        else " (x86_64: 6.1, 6.12, 7; arm64: 7, 16k)" if "x86_64" in msg else "")  # fmt: skip


def test_guest_ids() -> None:
    assert GuestKey(kernel="16k", levels=4, arch="arm64").id == "arm64-16k-l4"
    assert GuestKey(kernel="16k", levels=3, arch="arm64").id == "arm64-16k-l3"


PROJECT = """
import pytest

def test_on_vm(livewalk_guest):
    pass

@pytest.mark.livewalk_vm(arches=("arm64",), paging=(5, 4, 3))
def test_on_arm64(livewalk_guest):
    pass
"""


def _collect(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_project=PROJECT)
    plugin = [] if plugin_installed() else ["-p", PLUGIN]
    return pytester.runpytest(*plugin, "--collect-only", "-q", *args)


def _ids(result: pytest.RunResult) -> set[str]:
    return {ln for ln in result.outlines if ln.startswith("test_project.py::")}


def test_plugin_default_keeps_4k(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIVEWALK_KERNEL_MATRIX", raising=False)
    assert _ids(_collect(pytester)) == {"test_project.py::test_on_vm[l5]", "test_project.py::test_on_arm64[arm64-l5]",
                                        "test_project.py::test_on_arm64[arm64-l4]"}  # fmt: skip


def test_plugin_full_matrix_adds_16k(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVEWALK_KERNEL_MATRIX", "full")
    ids = _ids(_collect(pytester))
    assert {
        f"test_project.py::test_on_arm64[arm64-{i}]" for i in ("l5", "l4", "16k-l4", "16k-l3")
    } <= ids
    assert "test_project.py::test_on_vm[l5]" in ids and not any(
        "16k" in i for i in ids if "test_on_vm" in i
    )


def test_plugin_16k_on_the_command_line(pytester: pytest.Pytester) -> None:
    ids = _ids(
        _collect(
            pytester,
            "--livewalk-arch",
            "arm64",
            "--livewalk-kernel",
            "16k",
            "--livewalk-paging",
            "4,3",
        )
    )
    assert ids == {"test_project.py::test_on_vm[arm64-16k-l4]", "test_project.py::test_on_vm[arm64-16k-l3]",
                   "test_project.py::test_on_arm64[arm64-16k-l4]", "test_project.py::test_on_arm64[arm64-16k-l3]"}  # fmt: skip


@pytest.mark.parametrize(("args", "msg"), [
    (["--livewalk-kernel", "16k"], "livewalk: --livewalk-kernel 16k names no x86_64 kernel"),
    (["--livewalk-arch", "arm64", "--livewalk-kernel", "6.1"], "livewalk: --livewalk-kernel 6.1 names no arm64 kernel"),
    (["--livewalk-paging", "3"], "livewalk: no kernel of x86_64 runs with paging levels 3"),
])  # fmt: skip
def test_plugin_wrong_combination_is_a_usage_error(
    pytester: pytest.Pytester, args: list[str], msg: str
) -> None:
    result = _collect(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [ln for ln in result.errlines if ln.startswith("ERROR: livewalk:")]
    assert len(errors) == 1 and errors[0].startswith(f"ERROR: {msg}"), result.errlines


ONLY_16K = """
import pytest

@pytest.mark.livewalk_vm(arches=("arm64",), paging=(4, 3), only_kernels=("16k",))
def test_16k_only(livewalk_guest):
    pass
"""


@pytest.mark.parametrize(("env", "args", "ids"), [
    ("", [], set()),
    ("full", [], {"test_only.py::test_16k_only[arm64-16k-l4]", "test_only.py::test_16k_only[arm64-16k-l3]"}),
    ("", ["--livewalk-kernel", "16k"], {"test_only.py::test_16k_only[arm64-16k-l4]",
                                        "test_only.py::test_16k_only[arm64-16k-l3]"}),
])  # fmt: skip
def test_plugin_only_kernels(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, env: str,
                             args: list[str], ids: set[str]) -> None:  # fmt: skip
    monkeypatch.setenv("LIVEWALK_KERNEL_MATRIX", env)
    pytester.makepyfile(test_only=ONLY_16K)
    plugin = [] if plugin_installed() else ["-p", PLUGIN]
    result = pytester.runpytest(*plugin, "--collect-only", "-q", *args)
    assert {ln for ln in result.outlines if ln.startswith("test_only.py::")} == ids
    if not env and not args:
        result = pytester.runpytest(*plugin, "-q")
        result.assert_outcomes(deselected=1)  # not skipped: the session runs no 16k kernel
