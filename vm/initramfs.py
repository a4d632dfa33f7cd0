# SPDX-License-Identifier: LGPL-2.1-or-later
"""The initramfs of a kernel whose root disk needs modules: Debian's generic
arm64 flavours (``16k``) build the NVMe driver and ext4 as modules, where
the cloud flavours build them in.

It is made on the host, which runs none of the guest's programs: a gzipped
``newc`` cpio archive holding Debian's static busybox of the guest's
architecture, the modules that mounting the root needs (with what they
depend on, in load order, decompressed) and :data:`INITRAMFS_INIT`, which
loads them, mounts ``root=`` as the command line says and hands over to
its ``init=`` (the image's stub init, or its first-boot script). The boot
logic is the same as without it.

>>> order = load_order({"a.ko": ["b.ko", "c.ko"], "c.ko": ["b.ko"], "b.ko": []}, ["a.ko", "c.ko"])
>>> order
['b.ko', 'c.ko', 'a.ko']

Only the standard library is used here.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

__all__ = (
    "BUSYBOX_PACKAGE",
    "INITRAMFS_INIT",
    "ROOT_MODULES",
    "load_order",
    "make_initramfs",
    "modules_dep",
)

#: The Debian package whose static busybox is the initramfs's userspace.
BUSYBOX_PACKAGE = "busybox-static"

#: The modules that mounting the root needs when they are not built in: the
#: NVMe root disk's driver and its file system.
ROOT_MODULES = ("nvme", "ext4")

#: busybox applets :data:`INITRAMFS_INIT` calls (symlinks in /bin).
APPLETS = ("cat", "insmod", "mkdir", "mount", "sh", "sleep", "switch_root", "umount")

#: The initramfs's ``/init``. A failure to mount the root says so in words
#: the boot watchers know (:data:`.qemu.FATAL`), and init's exit panics the
#: kernel, which ends the boot (``panic=-1`` and ``-no-reboot``).
INITRAMFS_INIT = """#!/bin/sh
# livewalk test VM: the initramfs's init (made by vm/initramfs.py)
PATH=/bin
export PATH
say() { echo "livewalk-initramfs: $*"; }
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
for m in $(cat /lib/modules/load-order); do
    insmod "/lib/modules/$m" || say "cannot load $m"
done
root=/dev/nvme0n1 init=/sbin/init mode=ro
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        root=*) root="${arg#root=}" ;;
        init=*) init="${arg#init=}" ;;
        rw) mode=rw ;;
        ro) mode=ro ;;
    esac
done
n=0
until [ -b "$root" ] || [ $n -ge 300 ]; do sleep 0.1; n=$((n + 1)); done
if ! mount -t ext4 -o "$mode" "$root" /newroot; then
    say "Unable to mount root $root"
    exit 1
fi
umount /dev
umount /proc
exec switch_root /newroot "$init"
"""


def modules_dep(moddir: Path) -> dict[str, list[str]]:
    """``modules.dep`` of the modules in *moddir* (``lib/modules/<rel>``):
    each module's path to those it needs, in the file's order (each needs
    those after it, so they load last to first)."""
    deps: dict[str, list[str]] = {}
    for line in (moddir / "modules.dep").read_text().splitlines():
        mod, _, rest = line.partition(":")
        if mod:
            deps[mod] = rest.split()
    return deps


def _module_name(path: str) -> str:
    name = os.path.basename(path).split(".ko", 1)[0]
    return name.replace("-", "_")


def load_order(deps: Mapping[str, Sequence[str]], wanted: Iterable[str]) -> list[str]:
    """The modules of *wanted* and those they need, each once, every module
    after those it needs.

    :param deps: :func:`modules_dep`'s map
    :param wanted: paths (keys of *deps*)
    """
    order: list[str] = []
    for mod in wanted:
        for m in [*reversed(deps[mod]), mod]:
            if m not in order:
                order.append(m)
    return order


def _ko(path: Path) -> bytes:
    """A module's ELF, decompressed (busybox's insmod takes plain ``.ko``)."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]  # Python >= 3.14

        return bytes(zstd.decompress(data))
    return data


class _Cpio:
    """A ``newc`` cpio archive being written (what the kernel unpacks)."""

    def __init__(self) -> None:
        self.out = io.BytesIO()
        self.ino = 1

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
        self.ino += 1
        head = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.out.write(head + name.encode() + b"\0")
        self._pad()
        self.out.write(data)
        self._pad()

    def _pad(self) -> None:
        self.out.write(b"\0" * (-self.out.tell() % 4))

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return self.out.getvalue()


def make_initramfs(
    rootfs: Path, release: str, dest: Path, modules: Sequence[str] = ROOT_MODULES
) -> list[str]:
    """Write the initramfs of kernel *release* to *dest*.

    :param rootfs: the image's tree, holding ``lib/modules/<release>`` (with
        ``modules.dep``) and busybox (``usr/bin/busybox``, from
        :data:`BUSYBOX_PACKAGE`)
    :param modules: names of the modules the root needs; those built in are
        left out
    :return: the modules it loads, in order
    """
    moddir = rootfs / "lib/modules" / release
    deps = modules_dep(moddir)
    by_name = {_module_name(m): m for m in deps}
    order = load_order(deps, [by_name[n] for n in modules if n in by_name])
    busybox = rootfs / "usr/bin/busybox"
    cpio = _Cpio()
    for d in ("bin", "dev", "lib", "lib/modules", "newroot", "proc", "sys"):
        cpio.add(d, stat.S_IFDIR | 0o755)
    cpio.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    cpio.add("bin/busybox", stat.S_IFREG | 0o755, busybox.read_bytes())
    for applet in APPLETS:
        cpio.add(f"bin/{applet}", stat.S_IFLNK | 0o777, b"busybox")
    cpio.add("init", stat.S_IFREG | 0o755, INITRAMFS_INIT.encode())
    names = []
    for m in order:
        name = os.path.basename(m).split(".ko", 1)[0] + ".ko"
        cpio.add(f"lib/modules/{name}", stat.S_IFREG | 0o644, _ko(moddir / m))
        names.append(name)
    cpio.add(
        "lib/modules/load-order", stat.S_IFREG | 0o644, "".join(n + "\n" for n in names).encode()
    )
    dest.write_bytes(gzip.compress(cpio.finish(), mtime=0))
    return names
