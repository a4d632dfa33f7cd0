# SPDX-License-Identifier: LGPL-2.1-or-later
"""The guest's two data disks: ``/src`` (a read-only ext4 snapshot of a host
tree, made at boot) and ``/out`` (an empty ext4 disk copied back at stop);
the partition table a kernel of one's own finds its root disk by; and the
clean-up of run directories left behind by killed processes.

>>> n = make_src_image(Path("."), Path("/tmp/src.img"), Path("/tmp/src-staging"))  # doctest: +SKIP
>>> len(root_partition_table(3 << 30)), ROOT_PARTUUID
(512, '6c77726f-01')
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = (
    "ROOT_DISK_SIGNATURE",
    "ROOT_PARTUUID",
    "extract_out_image",
    "make_out_image",
    "make_src_image",
    "remove_stale_run_dirs",
    "root_partition_table",
)

#: The disk signature of :func:`root_partition_table` ("lwro").
ROOT_DISK_SIGNATURE = 0x6C77726F

#: What the kernel calls the root partition of :func:`root_partition_table`
#: (``root=PARTUUID=``): the disk signature and the partition's number.
ROOT_PARTUUID = f"{ROOT_DISK_SIGNATURE:08x}-01"


def _tree_files(src: Path) -> list[str]:
    """The working tree's files: tracked and untracked, not ignored."""
    try:
        out = subprocess.run(
            ["git", "-C", str(src), "ls-files", "-z", "-c", "-o", "--exclude-standard"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            check=True,
        ).stdout
        return sorted({f for f in out.decode(errors="surrogateescape").split("\0") if f})
    except (OSError, subprocess.CalledProcessError):
        pass
    skip = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", "out"}
    files = []
    for root, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
        for n in names:
            files.append(os.path.relpath(os.path.join(root, n), src))
    return sorted(files)


def make_src_image(src: Path, img: Path, staging: Path) -> int:
    """Make an ext4 image of the working tree; returns the number of files."""
    n = 0
    staging.mkdir()
    for rel in _tree_files(src):
        s = src / rel
        d = staging / rel
        if not (s.is_file() or s.is_symlink()):
            continue  # deleted but still tracked, or a submodule
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_symlink():
            d.symlink_to(os.readlink(s))
        else:
            shutil.copy2(s, d)
        n += 1
    used = int(
        subprocess.run(
            ["du", "-s", "-B1", "--apparent-size", str(staging)], stdout=subprocess.PIPE, check=True
        ).stdout.split()[0]
    )
    size_mib = used * 3 // 2 // (1 << 20) + 64
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-L", "lwsrc", "-E", "root_owner=0:0",
         "-d", str(staging), str(img), f"{size_mib}M"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    shutil.rmtree(staging, ignore_errors=True)
    return n


def make_out_image(img: Path, size: str = "1G") -> None:
    """Make the empty ext4 image of /out (*size*, a mkfs size such as "1G")."""
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-L", "lwout", "-E", "root_owner=0:0",
         str(img), size],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def extract_out_image(img: Path, dest: Path) -> list[str]:
    """Copy the files of the /out disk into ``dest``; returns their top-level names."""
    dest.mkdir(parents=True, exist_ok=True)
    ls = subprocess.run(
        ["debugfs", "-R", "ls -p /", str(img)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True,
    ).stdout  # fmt: skip
    names = []
    for line in ls.splitlines():
        # /inode/mode/uid/gid/name/size/
        parts = line.strip().split("/")
        if len(parts) >= 7 and parts[5] not in ("", ".", "..", "lost+found"):
            names.append("/".join(parts[5:-2]))
    for name in names:
        subprocess.run(
            ["debugfs", "-R", f'rdump "/{name}" "{dest}"', str(img)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
        )  # fmt: skip
    return names


def root_partition_table(size: int) -> bytes:
    """The first sector of the root disk, of *size* bytes, for a kernel of
    one's own that also gets its modules disk: a DOS partition table whose
    one partition (Linux, number 1) covers the whole disk from sector 0, so
    that it is the root's ext4 itself, under :data:`ROOT_DISK_SIGNATURE`.

    The kernel then finds the root as ``root=PARTUUID=``:data:`ROOT_PARTUUID`
    whatever the disk is named. ``root=/dev/nvme0n1`` is not enough beside a
    second NVMe namespace: since Linux 6.9 the kernel scans a controller's
    namespaces asynchronously, and names them in the order the scans end
    (and controllers probe asynchronously too). ext4 never uses the sector
    (its superblock is at byte 1024); the table goes into QEMU's snapshot of
    the root at boot (:func:`.qmp.write_disk_and_start`), never into the
    image.

    :raises ValueError: if the disk is too large for a DOS table (2 TiB)
    """
    sectors = size // 512
    if not 0 < sectors <= 0xFFFFFFFF:
        raise ValueError(f"a root disk of {size} bytes has no DOS partition table")
    sector = bytearray(512)
    struct.pack_into("<I", sector, 440, ROOT_DISK_SIGNATURE)
    # Not bootable, CHS fields unused (the kernel reads the LBA ones), type 0x83.
    struct.pack_into("<B3sB3sII", sector, 446, 0, b"\xfe\xff\xff", 0x83, b"\xfe\xff\xff", 0, sectors)
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def remove_stale_run_dirs(min_age: float = 3600) -> None:
    """Remove run directories left by a killed process (QEMU gone, not kept)."""
    now = time.time()
    for d in Path(tempfile.gettempdir()).glob("lwvm-*"):
        try:
            if (d / "KEEP").exists() or now - d.stat().st_mtime < min_age:
                continue
            pid = int((d / "qemu.pid").read_text())
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if str(d).encode() in f.read():
                        continue  # its QEMU still runs
            except OSError:
                pass
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            continue
