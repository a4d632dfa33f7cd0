# SPDX-License-Identifier: LGPL-2.1-or-later
"""Build (or reuse) the livewalk test VM image.

The image is a Debian sid root file system made with mmdebstrap, holding the
newest ``linux-image-<rel>-cloud-amd64`` kernel of the 7.x series that the
archive carries at build time, its headers, python3-drgn, python3-bpfcc and
python3-pytest, and the kernel's ``vmlinux`` (extracted from the cloud -dbg
package only). It lives outside the repository, in
``${LIVEWALK_VM_CACHE:-/var/cache/livewalk-vm}``::

    apt/                 private apt state for the guest suite (never the host's)
    images/<key>/        one built image; <key> hashes the resolved versions
        root.img         ext4 root file system (booted with snapshot=on)
        vmlinuz          the kernel QEMU boots
        vmlinux          debug vmlinux for drgn on the host
        manifest.json    resolved versions, release, build time
    current -> images/<key>
    kvm-probe.json       cached verdict of the KVM probe boot

Only the standard library is used here.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Image", "ImageError", "cache_dir", "current_image", "ensure_host_packages", "ensure_image"]

# Bump when the recipe changes in a way the package versions do not capture.
RECIPE = "livewalk-vm-1"

SUITE = os.environ.get("LIVEWALK_VM_SUITE", "sid")
MIRROR = os.environ.get("LIVEWALK_VM_MIRROR", "http://deb.debian.org/debian")
KERNEL_SERIES = "7"
FLAVOUR = "cloud-amd64"

# Guest packages besides the kernel image and headers (whose names are resolved).
GUEST_PACKAGES = (
    "python3",
    "python3-drgn",
    "python3-bpfcc",
    "python3-pytest",
    "procps",
    "kmod",
    "util-linux",
    "iproute2",
    "e2fsprogs",
)
# Packages whose versions go into the cache key (with the kernel's).
KEYED_PACKAGES = ("python3", "python3-drgn", "python3-bpfcc", "python3-pytest")

# Host commands the build and the boot need, and the Debian packages that
# provide them.
HOST_COMMANDS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "mmdebstrap": "mmdebstrap",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "dpkg-deb": "dpkg",
    "git": "git",
    "tmux": "tmux",  # tests/vm/test_crash_commands.py drives a drgn prompt
}

# The init the kernel starts (init=/usr/sbin/livewalk-init). It is baked into
# the image, so it stays tiny and stable: it mounts the pseudo file systems,
# loads qemu_fw_cfg and runs the real boot script that the host passes in
# through fw_cfg (vm/guest_init.sh, with vm/agent.py). The boot logic can then
# change without rebuilding the image.
STUB_INIT = """#!/bin/sh
# livewalk test VM: first-stage init (baked into the image by vm/image.py)
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
modprobe qemu_fw_cfg
fw=/sys/firmware/qemu_fw_cfg/by_name/opt/livewalk
mkdir -p /livewalk
for f in init.sh agent.py; do
    n=0
    until [ -r "$fw/$f/raw" ] || [ $n -ge 100 ]; do sleep 0.1; n=$((n + 1)); done
    cat "$fw/$f/raw" > "/livewalk/$f"
done
echo "livewalk-init: running /livewalk/init.sh"
exec /bin/sh /livewalk/init.sh
"""


class ImageError(RuntimeError):
    """The image could not be built or found."""


@dataclass(frozen=True)
class Image:
    """A built image in the cache."""

    path: Path
    manifest: dict[str, Any]

    @property
    def root(self) -> Path:
        return self.path / "root.img"

    @property
    def vmlinuz(self) -> Path:
        return self.path / "vmlinuz"

    @property
    def vmlinux(self) -> Path:
        return self.path / "vmlinux"

    @property
    def release(self) -> str:
        return str(self.manifest["release"])

    @property
    def key(self) -> str:
        return str(self.manifest["key"])

    def valid(self) -> bool:
        return all(p.is_file() and p.stat().st_size > 0 for p in (self.root, self.vmlinuz, self.vmlinux))


def cache_dir() -> Path:
    return Path(os.environ.get("LIVEWALK_VM_CACHE", "/var/cache/livewalk-vm"))


def _log(msg: str) -> None:
    print(f"vm/build: {msg}", file=sys.stderr, flush=True)


def _run(cmd: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[Any]:
    return subprocess.run(list(cmd), check=True, **kw)


def _out(cmd: Sequence[str]) -> str:
    return subprocess.run(list(cmd), check=True, stdout=subprocess.PIPE, text=True).stdout


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- host packages ---------------------------------------------------------


def ensure_host_packages() -> None:
    """Install the host packages the VM needs, with apt-get, only if missing."""
    missing = sorted({pkg for cmd, pkg in HOST_COMMANDS.items() if not _which(cmd)})
    if not missing:
        return
    if os.geteuid() != 0:
        raise ImageError(f"missing host packages {' '.join(missing)} (run vm/build as root)")
    _log(f"installing host packages: {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        _run(["apt-get", "update", "-q"], env=env, stdout=subprocess.DEVNULL)
        _run(cmd, env=env, stdout=subprocess.DEVNULL)
    _log(f"installed {' '.join(missing)}")


def _which(cmd: str) -> str | None:
    path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return shutil.which(cmd, path=path)


# --- private apt state for the guest suite -----------------------------------


def _apt_dir() -> Path:
    d = cache_dir() / "apt"
    (d / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (d / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    src = f"deb {MIRROR} {SUITE} main\n"
    sl = d / "sources.list"
    if not sl.exists() or sl.read_text() != src:
        sl.write_text(src)
    status = d / "status"
    if not status.exists():
        status.write_text("")
    return d


def _apt_opts() -> list[str]:
    d = _apt_dir()
    opts = {
        "Dir::Etc::SourceList": f"{d}/sources.list",
        "Dir::Etc::SourceParts": "/dev/null",
        "Dir::Etc::Preferences": "/dev/null",
        "Dir::Etc::PreferencesParts": "/dev/null",
        "Dir::State::Lists": f"{d}/lists",
        "Dir::State::status": f"{d}/status",
        "Dir::Cache": f"{d}/cache",
        "Acquire::Check-Valid-Until": "false",
        "APT::Architecture": "amd64",
        "APT::Architectures": "amd64",
        "Debug::NoLocking": "true",
    }
    out: list[str] = []
    for k, v in opts.items():
        out += ["-o", f"{k}={v}"]
    return out


def _apt_update() -> None:
    _run(["apt-get", "update", "-q", *_apt_opts()], stdout=subprocess.DEVNULL)


def _candidate(pkg: str) -> str | None:
    r = subprocess.run(
        ["apt-cache", *_apt_opts(), "show", "--no-all-versions", pkg],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if r.returncode != 0:
        return None
    m = re.search(r"^Version: (\S+)$", r.stdout, re.M)
    return m.group(1) if m else None


def _version_cmp(a: str, b: str) -> int:
    if a == b:
        return 0
    lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
    return -1 if lt else 1


def resolve() -> dict[str, str]:
    """Resolve the guest's package versions from the archive (updates the lists).

    Returns the versions dict that keys the cache: the newest 7.x cloud kernel
    whose image, headers and -dbg packages are all present, and the versions of
    the other keyed packages.
    """
    _log(f"resolving packages in {MIRROR} {SUITE}")
    _apt_update()
    names = _out(["apt-cache", *_apt_opts(), "pkgnames", f"linux-image-{KERNEL_SERIES}."]).split()
    pat = re.compile(rf"^linux-image-({re.escape(KERNEL_SERIES)}\.\d+\.\d+\S*)-{FLAVOUR}$")
    found: list[tuple[str, str]] = []
    for n in names:
        m = pat.match(n)
        if m:
            v = _candidate(n)
            if v:
                found.append((v, m.group(1)))
    def newer_first(x: tuple[str, str], y: tuple[str, str]) -> int:
        return _version_cmp(y[0], x[0])

    found.sort(key=functools.cmp_to_key(newer_first))
    for version, abi in found:
        rel = f"{abi}-{FLAVOUR}"
        dbg = _candidate(f"linux-image-{rel}-dbg")
        hdr = _candidate(f"linux-headers-{rel}")
        if not dbg or not hdr:
            _log(f"skipping {rel}: headers or -dbg package missing")
            continue
        versions = {
            "release": rel,
            f"linux-image-{rel}": version,
            f"linux-image-{rel}-dbg": dbg,
            f"linux-headers-{rel}": hdr,
        }
        for p in KEYED_PACKAGES:
            v = _candidate(p)
            if not v:
                raise ImageError(f"package {p} not found in {SUITE}")
            versions[p] = v
        return versions
    raise ImageError(
        f"no linux-image-{KERNEL_SERIES}.*-{FLAVOUR} with headers and -dbg found in {MIRROR} {SUITE}"
    )


def _key(versions: dict[str, str]) -> str:
    blob = json.dumps(
        {"recipe": RECIPE, "suite": SUITE, "packages": GUEST_PACKAGES, "init": STUB_INIT, **versions},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --- the cache ---------------------------------------------------------------


def _load(path: Path) -> Image | None:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    img = Image(path.resolve(), manifest)
    return img if img.valid() else None


def current_image() -> Image | None:
    """The image vm/build last built or validated, if it is still there."""
    return _load(cache_dir() / "current")


def _set_current(img: Image) -> None:
    link = cache_dir() / "current"
    tmp = cache_dir() / f".current.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(img.path, cache_dir()))
    os.replace(tmp, link)


def ensure_image(resolve_versions: bool = True, quiet: bool = False) -> Image:
    """Return a usable image, building it if needed.

    With ``resolve_versions`` (what ``vm/build`` does) the archive is asked for
    the newest packages and a new image is built when they changed; without it
    (what a boot does) the current image is reused as is and a build happens
    only when there is none. Concurrent callers serialise on a lock file.
    """
    t0 = time.monotonic()
    with _locked(cache_dir() / "build.lock"):
        if not resolve_versions:
            img = current_image()
            if img is not None:
                return img
        ensure_host_packages()
        try:
            versions = resolve()
        except (subprocess.CalledProcessError, ImageError) as e:
            img = current_image()
            if img is None:
                raise ImageError(f"cannot resolve guest packages: {e}") from e
            _log(f"warning: cannot resolve packages ({e}); reusing {img.path}")
            return img
        key = _key(versions)
        _log(
            f"resolved kernel {versions['release']} "
            + " ".join(f"{k}={v}" for k, v in versions.items() if k != "release")
        )
        path = cache_dir() / "images" / key
        img = _load(path)
        if img is not None:
            _set_current(img)
            _log(f"image {key} is cached at {path} (checked in {time.monotonic() - t0:.1f} s)")
            return img
        img = _build(versions, key, quiet=quiet)
        _set_current(img)
        _prune(keep=img.path)
        _log(f"image {key} built at {img.path} in {time.monotonic() - t0:.1f} s")
        return img


def _prune(keep: Path) -> None:
    images = cache_dir() / "images"
    for p in images.iterdir():
        if p.resolve() != keep.resolve():
            _log(f"removing old image {p}")
            shutil.rmtree(p, ignore_errors=True)


def _du_bytes(path: Path) -> int:
    return int(_out(["du", "-s", "-B1", "--apparent-size", str(path)]).split()[0])


def _build(versions: dict[str, str], key: str, quiet: bool = False) -> Image:
    rel = versions["release"]
    images = cache_dir() / "images"
    images.mkdir(parents=True, exist_ok=True)
    work = images / f".build-{key}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        rootfs = work / "rootfs"
        include = [
            f"linux-image-{rel}={versions[f'linux-image-{rel}']}",
            f"linux-headers-{rel}={versions[f'linux-headers-{rel}']}",
            *GUEST_PACKAGES,
        ]
        t = time.monotonic()
        _log(f"mmdebstrap {SUITE} -> {rootfs}")
        out = subprocess.DEVNULL if quiet else None
        _run(
            [
                "mmdebstrap",
                "--variant=apt",
                "--mode=root",
                "--quiet",
                '--aptopt=Acquire::Check-Valid-Until "false"',
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                f"--include={','.join(include)}",
                SUITE,
                str(rootfs),
                MIRROR,
            ],
            stdout=out,
        )
        _log(f"mmdebstrap took {time.monotonic() - t:.1f} s")

        t = time.monotonic()
        dbg = f"linux-image-{rel}-dbg"
        debs = work / "debs"
        debs.mkdir()
        _run(
            ["apt-get", "download", "-q", *_apt_opts(), "-o", "APT::Sandbox::User=root",
             f"{dbg}={versions[dbg]}"],
            cwd=debs,
            stdout=subprocess.DEVNULL,
        )
        (deb,) = list(debs.glob("*.deb"))
        dbgx = work / "dbg"
        dbgx.mkdir()
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        _run(["tar", "-x", "-C", str(dbgx), "--wildcards", "*vmlinux*"], stdin=tar.stdout)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0:
            raise ImageError(f"dpkg-deb failed on {deb}")
        deb.unlink()
        vmlinux = dbgx / "usr/lib/debug/lib/modules" / rel / "vmlinux"
        if not vmlinux.is_file():
            found = [p for p in dbgx.rglob("vmlinux*") if p.is_file() and not p.is_symlink()]
            if not found:
                raise ImageError(f"no vmlinux in {dbg}")
            vmlinux = found[0]
        _log(f"vmlinux extracted from {dbg} in {time.monotonic() - t:.1f} s")

        # The guest gets the -dbg package's layout (drgn and bcc find it there
        # with no options); the host keeps its own copy next to the image.
        for p in dbgx.rglob("*"):
            if p.is_dir():
                continue
            dest = rootfs / p.relative_to(dbgx)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if p.is_symlink():
                dest.symlink_to(os.readlink(p))
            else:
                shutil.copyfile(p, dest)
        os.replace(vmlinux, work / "vmlinux")

        shutil.copyfile(rootfs / "boot" / f"vmlinuz-{rel}", work / "vmlinuz")
        init = rootfs / "usr/sbin/livewalk-init"
        init.write_text(STUB_INIT)
        init.chmod(0o755)
        (rootfs / "etc/hostname").write_text("livewalk-vm\n")
        (rootfs / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 livewalk-vm\n")
        (rootfs / "etc/fstab").write_text("# mounts are done by /livewalk/init.sh\n")
        for d in ("src", "out", "livewalk"):
            (rootfs / d).mkdir(exist_ok=True)
        for p in (rootfs / "var/lib/apt/lists").glob("*_*"):
            p.unlink()
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)

        t = time.monotonic()
        used = _du_bytes(rootfs)
        size_mib = used * 12 // 10 // (1 << 20) + 2048
        _run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                "lwroot",
                "-d",
                str(rootfs),
                str(work / "root.img"),
                f"{size_mib}M",
            ],
            stdout=subprocess.DEVNULL,
        )
        _log(f"root.img ({size_mib} MiB, {used >> 20} MiB used) made in {time.monotonic() - t:.1f} s")
        shutil.rmtree(rootfs)
        shutil.rmtree(dbgx)
        shutil.rmtree(debs)
        manifest = {
            "key": key,
            "recipe": RECIPE,
            "suite": SUITE,
            "mirror": MIRROR,
            "release": rel,
            "versions": versions,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        final = images / key
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    img = _load(final)
    if img is None:
        raise ImageError(f"built image at {final} is incomplete")
    return img
