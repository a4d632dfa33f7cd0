# SPDX-License-Identifier: LGPL-2.1-or-later
"""The guest's two data disks: ``/src`` (a read-only ext4 snapshot of a host
tree, made at boot) and ``/out`` (an empty ext4 disk copied back at stop);
and the clean-up of run directories left behind by killed processes.

>>> n = make_src_image(Path("."), Path("/tmp/src.img"), Path("/tmp/src-staging"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ("extract_out_image", "make_out_image", "make_src_image", "remove_stale_run_dirs")


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
