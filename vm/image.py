# SPDX-License-Identifier: LGPL-2.1-or-later
"""Build (or reuse) the livewalk test VM images: one per (architecture,
kernel series), all sharing one Debian sid userspace.

The userspace is a Debian sid root file system made with mmdebstrap (no
kernel in it), holding python3-drgn, python3-bpfcc, python3-pytest and the
tools the guest uses; it is cached as a tarball. Each image adds one kernel
series' pieces to it, unpacked from the Debian packages with ``dpkg-deb -x``
(never installed through apt): the newest ``linux-image-<rel>-cloud-amd64``
of the series in its suite (7.x: sid, 6.12.y: trixie, 6.1.y: bookworm; on
arm64 ``-cloud-arm64`` of 7.x and ``-arm64-16k``, series ``16k``), its
``/lib/modules/<rel>`` with ``modules.dep`` from ``depmod -b``, its headers
(for bcc, with the ``-common`` headers they depend on) and its debug
``vmlinux`` (from the cloud -dbg package only). So every guest runs the same
drgn and bcc, which livewalk supports, whatever its kernel. The cache lives
outside the repository, in ``${LIVEWALK_VM_CACHE:-/var/cache/livewalk-vm}``::

    apt/<suite>/         private apt state per suite (never the host's)
    userspace/<key>.tar  the shared sid userspace; <key> hashes its versions
    images/<key>/        one built image; <key> hashes the kernel's and the
                         userspace's versions and the recipe
        root.img         ext4 root file system (booted with snapshot=on)
        vmlinuz          the kernel QEMU boots
        vmlinux          debug vmlinux for drgn on the host
        initrd.img       the initramfs, for a kernel whose root disk needs
                         modules (arm64 16k, see vm/initramfs.py)
        manifest.json    arch, series, resolved versions, release, build time
    current-<arch>-<series> -> images/<key>
    current -> images/<key>   (the default kernel, for older readers)
    kvm-probe-<rel>.json cached verdict of the KVM probe boot, per guest kernel

>>> spec = ImageSpec(series="6.12")
>>> spec.name, spec.kernel.suite, spec.flavour
('x86_64-6.12', 'trixie', 'cloud-amd64')

Only the standard library is used here.
"""

from __future__ import annotations

import contextlib
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

from .initramfs import BUSYBOX_PACKAGE, INITRAMFS_INIT, make_initramfs

__all__ = (
    "ARCHES",
    "ARCH_ALIASES",
    "DEFAULT_SERIES",
    "FIRSTBOOT_INIT",
    "KERNEL_SERIES",
    "Arch",
    "Image",
    "ImageError",
    "ImageSpec",
    "KernelSeries",
    "arch_name",
    "arch_series",
    "cache_dir",
    "check_series",
    "current_image",
    "ensure_host_packages",
    "ensure_image",
    "kernel_release",
    "make_modules_image",
)

# Bump when the recipe changes in a way the package versions do not capture.
RECIPE = "livewalk-vm-3"

#: The suite of the shared userspace (and of the default kernel series).
SUITE = os.environ.get("LIVEWALK_VM_SUITE", "sid")
MIRROR = os.environ.get("LIVEWALK_VM_MIRROR", "http://deb.debian.org/debian")
SECURITY_MIRROR = os.environ.get("LIVEWALK_VM_SECURITY_MIRROR", "http://security.debian.org/debian-security")


@dataclass(frozen=True)
class KernelSeries:
    """A kernel series the images can carry, and where Debian ships it.

    :ivar name: the series as users name it (``"6.1"``, ``"6.12"``, ``"7"``,
        ``"16k"``)
    :ivar suite: the Debian suite whose newest kernel of the series is taken
    :ivar updates: also look in ``<suite>-updates`` and ``<suite>-security``
        (a stable suite's newer kernels land there between point releases)
    :ivar arches: the guest architectures Debian builds the series for here
    :ivar version: what the release string starts with, followed by ``.``,
        ``-`` or ``+`` (the name, unless the name says something else)
    :ivar flavour: the Debian flavour, if not the architecture's own
        (:attr:`Arch.flavour`)
    :ivar levels: the page-table levels a guest can run it with, the most
        first (x86-64: LA57 or not; arm64: FEAT_LPA2 or not)
    :ivar initramfs: whether its root disk's driver and file system are
        modules, so that it boots through an initramfs that loads them (see
        :mod:`.initramfs`)
    :ivar page_size: the kernel's ``PAGE_SIZE``
    """

    name: str
    suite: str
    updates: bool = False
    arches: tuple[str, ...] = ("x86_64",)
    version: str = ""
    flavour: str = ""
    levels: tuple[int, ...] = (5, 4)
    initramfs: bool = False
    page_size: int = 4096

    @property
    def pmd_size(self) -> int:
        """What a PMD maps: the THP and default hugetlb size (2 MiB with 4K
        pages, 32 MiB with 16K; a table holds ``PAGE_SIZE / 8`` entries)."""
        return self.page_size * (self.page_size // 8)

    @property
    def release_prefix(self) -> str:
        """What the series' release strings start with (``"7"`` for ``"16k"``)."""
        return self.version or self.name

    def sources(self) -> str:
        """The ``sources.list`` of the series' private apt state."""
        lines = [f"deb {MIRROR} {self.suite} main"]
        if self.updates:
            lines += [f"deb {MIRROR} {self.suite}-updates main", f"deb {SECURITY_MIRROR} {self.suite}-security main"]
        return "".join(ln + "\n" for ln in lines)


#: The kernel series, by name. arm64 has the cloud kernel (4K pages, 52-bit
#: VA: 5 levels with LPA2, 4 without) and ``16k``, the generic arm64 kernel
#: built with 16K pages (52-bit VA: 4 levels with LPA2, 47-bit and 3 levels
#: without); Debian builds no arm64 kernel with 64K pages.
KERNEL_SERIES = {
    s.name: s
    for s in (
        KernelSeries("6.1", "bookworm", updates=True),
        KernelSeries("6.12", "trixie", updates=True),
        KernelSeries("7", SUITE, arches=("x86_64", "arm64")),
        KernelSeries("16k", SUITE, arches=("arm64",), version="7", flavour="arm64-16k", levels=(4, 3),
                     initramfs=True, page_size=16384),
    )
}
#: The series booted when none is named.
DEFAULT_SERIES = "7"


@dataclass(frozen=True)
class Arch:
    """A guest architecture: its names, its Debian names and its emulator.

    :ivar name: livewalk's name of it (``vm/build --arch``, ``Guest(arch=)``)
    :ivar uname: what ``uname -m`` says in the guest
    :ivar deb_arch: Debian's architecture
    :ivar flavour: the Debian kernel flavour the images boot
    :ivar qemu: the QEMU system emulator of the architecture
    :ivar qemu_package: the Debian package that provides it
    :ivar console: the serial console's device name in the guest
    """

    name: str
    uname: str
    deb_arch: str
    flavour: str
    qemu: str
    qemu_package: str
    console: str

    @property
    def foreign(self) -> bool:
        """Whether the host cannot run the guest's programs: then the
        userspace's packages are unpacked on the host and configured by the
        guest itself, at the image's first boot (this kind of machine has no
        binfmt_misc, so no qemu-user either)."""
        return self.deb_arch != _host_deb_arch()


#: Guest architectures, by name.
ARCHES = {
    a.name: a
    for a in (
        Arch("x86_64", "x86_64", "amd64", "cloud-amd64", "qemu-system-x86_64", "qemu-system-x86", "ttyS0"),
        Arch("arm64", "aarch64", "arm64", "cloud-arm64", "qemu-system-aarch64", "qemu-system-arm", "ttyAMA0"),
    )
}
#: Other names users give the architectures (``uname -m``, Debian's).
ARCH_ALIASES = {"aarch64": "arm64", "amd64": "x86_64"}


def arch_name(name: str) -> str:
    """livewalk's name of architecture *name* (``aarch64`` is ``arm64``).

    >>> arch_name("aarch64")
    'arm64'
    """
    return ARCH_ALIASES.get(name, name)


def arch_series(arch: str) -> tuple[str, ...]:
    """The kernel series Debian builds for *arch* (see :data:`KERNEL_SERIES`).

    >>> arch_series("arm64")
    ('7', '16k')
    """
    return tuple(n for n, s in KERNEL_SERIES.items() if arch_name(arch) in s.arches)


def check_series(arch: str, series: str) -> None:
    """Raise :class:`ImageError`, in one line, unless *series* is a kernel
    series of *arch*.

    >>> check_series("arm64", "6.1")
    Traceback (most recent call last):
    ...
    livewalk.vm.image.ImageError: no arm64 kernel series '6.1' (arm64: 7, 16k; x86_64: 6.1, 6.12, 7)
    """
    arch = arch_name(arch)
    if series not in arch_series(arch):
        known = "; ".join(f"{a}: {', '.join(arch_series(a))}" for a in sorted(ARCHES, key=lambda a: a != arch))
        raise ImageError(f"no {arch} kernel series {series!r} ({known})")


@functools.cache
def _host_deb_arch() -> str:
    try:
        return _out(["dpkg", "--print-architecture"]).strip()
    except (OSError, subprocess.CalledProcessError):
        return {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


@dataclass(frozen=True)
class ImageSpec:
    """Which image: the cache's key is (architecture, kernel series)."""

    arch: str = "x86_64"
    series: str = DEFAULT_SERIES

    def __post_init__(self) -> None:
        object.__setattr__(self, "arch", arch_name(self.arch))
        if self.arch not in ARCHES:
            raise ImageError(f"unknown architecture {self.arch!r} (known: {', '.join(ARCHES)})")
        check_series(self.arch, self.series)

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.series}"

    @property
    def kernel(self) -> KernelSeries:
        return KERNEL_SERIES[self.series]

    @property
    def arch_info(self) -> Arch:
        return ARCHES[self.arch]

    @property
    def deb_arch(self) -> str:
        return self.arch_info.deb_arch

    @property
    def flavour(self) -> str:
        return self.kernel.flavour or self.arch_info.flavour

    @property
    def is_default(self) -> bool:
        return self.arch == "x86_64" and self.series == DEFAULT_SERIES


# Guest packages of the shared userspace (the kernel pieces are unpacked apart).
# mount is named: nothing else pulls it in once the kernel is not installed
# through apt (its initramfs generator did).
GUEST_PACKAGES: tuple[str, ...] = (
    "python3",
    "python3-drgn",
    "python3-bpfcc",
    "python3-pytest",
    "procps",
    "kmod",
    "util-linux",
    "mount",
    "iproute2",
    "e2fsprogs",
)
# kdump (Guest.kdump, vm/kdump.py): kexec loads the capture kernel, whose
# init runs makedumpfile on /proc/vmcore. Kept apart from the list above.
KDUMP_PACKAGES = ("kexec-tools", "makedumpfile")
GUEST_PACKAGES += KDUMP_PACKAGES
# Packages whose versions go into the userspace's cache key.
KEYED_PACKAGES = ("python3", "python3-drgn", "python3-bpfcc", "python3-pytest")

# Host commands the build and the boot need, and the Debian packages that
# provide them.
HOST_COMMANDS = {
    "qemu-system-x86_64": "qemu-system-x86",
    "mmdebstrap": "mmdebstrap",
    "mkfs.ext4": "e2fsprogs",
    "debugfs": "e2fsprogs",
    "dpkg-deb": "dpkg",
    "depmod": "kmod",
    "git": "git",
    "tmux": "tmux",  # tests/vm/test_vm_crash_commands.py drives a drgn prompt
}

# The init the kernel starts (init=/usr/sbin/livewalk-init). It is baked into
# the image, so it stays tiny and stable: it mounts the pseudo file systems,
# mounts a kernel's own modules when the host passes them on a disk of their
# own (``livewalk.modules=1``: a kernel of the user's, see
# make_modules_image), loads qemu_fw_cfg and runs the real boot script that
# the host passes in through fw_cfg (vm/guest_init.sh, with vm/agent.py). The
# boot logic can then change without rebuilding the image.
STUB_INIT = """#!/bin/sh
# livewalk test VM: first-stage init (baked into the image by vm/image.py)
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
if grep -qw livewalk.modules=1 /proc/cmdline; then
    n=0
    until dev=$(blkid -L lwmods) || [ $n -ge 100 ]; do sleep 0.1; n=$((n + 1)); done
    mount -o ro "$dev" /lib/modules || echo "livewalk-init: cannot mount the modules disk"
fi
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


# A foreign architecture's userspace (Arch.foreign) is only unpacked on the
# host, with the packages below on top of GUEST_PACKAGES (the extract variant
# of mmdebstrap takes no Essential set by itself) and with their .debs kept
# in FIRSTBOOT_DEBS. The image's first boot runs FIRSTBOOT_INIT as PID 1,
# which installs them with the guest's own dpkg (maintainer scripts and all)
# and powers off; the image is cached configured.
FOREIGN_INCLUDE = ("?essential", "?priority(required)")
FIRSTBOOT_DEBS = "var/cache/livewalk-firstboot"
FIRSTBOOT_INIT = f"""#!/bin/sh
# livewalk test VM: first boot of an image unpacked on a host of another
# architecture (baked into the image by vm/image.py; run once, as init)
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
say() {{ echo "livewalk-firstboot: $*"; }}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true LC_ALL=C.UTF-8
debs=/{FIRSTBOOT_DEBS}
log=/var/log/livewalk-firstboot.log
say "installing $(ls $debs | wc -l) packages"
dpkg --install --force-depends $debs/*.deb > $log 2>&1 && dpkg --configure -a >> $log 2>&1
rc=$?
if [ $rc = 0 ] && [ -z "$(dpkg --audit 2>&1)" ]; then
    rm -rf $debs
    echo "livewalk-firstboot: configured" >> $log
    say "configured"
else
    tail -n 40 $log
    dpkg --audit 2>&1 | tail -n 20
    say "FAILED (dpkg status $rc)"
fi
sync
mount -o remount,ro /
echo o > /proc/sysrq-trigger
sleep 60
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
    def initrd(self) -> Path | None:
        """The initramfs the kernel boots with, if it needs one (see
        :attr:`KernelSeries.initramfs`)."""
        return self.path / "initrd.img" if self.manifest.get("initrd") else None

    @property
    def release(self) -> str:
        return str(self.manifest["release"])

    @property
    def key(self) -> str:
        return str(self.manifest["key"])

    @property
    def spec(self) -> ImageSpec:
        """The image's (architecture, kernel series); images of recipe 1 are
        the default's."""
        return ImageSpec(str(self.manifest.get("arch", "x86_64")), str(self.manifest.get("series", DEFAULT_SERIES)))

    def valid(self) -> bool:
        files = (self.root, self.vmlinuz, self.vmlinux, *((self.initrd,) if self.initrd else ()))
        return all(p.is_file() and p.stat().st_size > 0 for p in files)


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


def ensure_host_packages(arch: str = "x86_64") -> None:
    """Install the host packages the VM of *arch* needs, with apt-get, only if missing."""
    a = ARCHES[arch_name(arch)]
    commands = {**HOST_COMMANDS, a.qemu: a.qemu_package}
    missing = sorted({pkg for cmd, pkg in commands.items() if not _which(cmd)})
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


def _tool(cmd: str) -> str:
    """The path of host command *cmd* (``depmod`` lives in /usr/sbin)."""
    path = _which(cmd)
    if path is None:
        raise ImageError(f"{cmd} not found (install {HOST_COMMANDS.get(cmd, cmd)})")
    return path


# --- private apt state, one per suite ----------------------------------------

# The apt states updated by this process.
_UPDATED: set[Path] = set()


@dataclass(frozen=True)
class _Apt:
    """A private apt state (lists, cache, empty dpkg status) for one suite."""

    name: str
    sources: str
    deb_arch: str = "amd64"

    @property
    def dir(self) -> Path:
        # apt drops the lists of other architectures on update: one state each.
        d = cache_dir() / "apt" / (self.name if self.deb_arch == "amd64" else f"{self.name}-{self.deb_arch}")
        (d / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (d / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        sl = d / "sources.list"
        if not sl.exists() or sl.read_text() != self.sources:
            sl.write_text(self.sources)
        status = d / "status"
        if not status.exists():
            status.write_text("")
        return d

    def opts(self) -> list[str]:
        d = self.dir
        opts = {
            "Dir::Etc::SourceList": f"{d}/sources.list",
            "Dir::Etc::SourceParts": "/dev/null",
            "Dir::Etc::Preferences": "/dev/null",
            "Dir::Etc::PreferencesParts": "/dev/null",
            "Dir::State::Lists": f"{d}/lists",
            "Dir::State::status": f"{d}/status",
            "Dir::Cache": f"{d}/cache",
            "Acquire::Check-Valid-Until": "false",
            "APT::Architecture": self.deb_arch,
            "APT::Architectures": self.deb_arch,
            "Debug::NoLocking": "true",
        }
        out: list[str] = []
        for k, v in opts.items():
            out += ["-o", f"{k}={v}"]
        return out

    def update(self) -> None:
        """``apt-get update`` of the lists, once per process."""
        if self.dir in _UPDATED:
            return
        _run(["apt-get", "update", "-q", *self.opts()], stdout=subprocess.DEVNULL)
        _UPDATED.add(self.dir)

    def show(self, pkg: str) -> str | None:
        """``apt-cache show`` of *pkg*'s candidate, or None if there is none."""
        r = subprocess.run(
            ["apt-cache", *self.opts(), "show", "--no-all-versions", pkg],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        return r.stdout if r.returncode == 0 and r.stdout.strip() else None

    def candidate(self, pkg: str) -> str | None:
        info = self.show(pkg)
        m = re.search(r"^Version: (\S+)$", info, re.M) if info else None
        return m.group(1) if m else None

    def download(self, pkgs: Sequence[str], dest: Path) -> None:
        _run(
            ["apt-get", "download", "-q", *self.opts(), "-o", "APT::Sandbox::User=root", *pkgs],
            cwd=dest,
            stdout=subprocess.DEVNULL,
        )


def _userspace_apt(arch: str = "x86_64") -> _Apt:
    return _Apt(SUITE, f"deb {MIRROR} {SUITE} main\n", ARCHES[arch].deb_arch)


def _kernel_apt(spec: ImageSpec) -> _Apt:
    k = spec.kernel
    if k.suite == SUITE and not k.updates:
        return _userspace_apt(spec.arch)
    return _Apt(k.suite, k.sources(), spec.deb_arch)


def _version_cmp(a: str, b: str) -> int:
    if a == b:
        return 0
    lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
    return -1 if lt else 1


def _depends(info: str) -> list[str]:
    m = re.search(r"^Depends: (.*)$", info, re.M)
    if not m:
        return []
    return [alt.split()[0] for dep in m.group(1).split(",") for alt in dep.split("|")[:1]]


def resolve_userspace(arch: str = "x86_64") -> dict[str, str]:
    """The versions of the userspace's keyed packages (updates the sid lists)."""
    apt = _userspace_apt(arch)
    _log(f"resolving the userspace in {MIRROR} {SUITE}")
    apt.update()
    versions = {}
    for p in KEYED_PACKAGES:
        v = apt.candidate(p)
        if not v:
            raise ImageError(f"package {p} not found in {SUITE}")
        versions[p] = v
    return versions


def resolve_kernel(spec: ImageSpec) -> dict[str, str]:
    """Resolve *spec*'s kernel in its suite (updates the suite's lists).

    Returns the newest ``linux-image-<rel>-<flavour>`` of the series whose
    headers and -dbg packages are present too, as ``release`` and one entry
    per package to unpack (image, -dbg, headers, and the headers' own
    ``linux-headers-*`` dependencies), name to version.
    """
    apt = _kernel_apt(spec)
    series = spec.kernel.release_prefix
    _log(f"resolving kernel {spec.series} ({spec.flavour}) in {MIRROR} {spec.kernel.suite}")
    apt.update()
    names = _out(["apt-cache", *apt.opts(), "pkgnames", f"linux-image-{series}"]).split()
    # "6.1" must not take "6.12...": the series is followed by ".", "-" or "+".
    pat = re.compile(rf"^linux-image-({re.escape(series)}[.+-]\S*)-{re.escape(spec.flavour)}$")
    found: list[tuple[str, str]] = []
    for n in names:
        m = pat.match(n)
        if m:
            v = apt.candidate(n)
            if v:
                found.append((v, m.group(1)))

    def newer_first(x: tuple[str, str], y: tuple[str, str]) -> int:
        return _version_cmp(y[0], x[0])

    found.sort(key=functools.cmp_to_key(newer_first))
    for version, abi in found:
        rel = f"{abi}-{spec.flavour}"
        dbg = apt.candidate(f"linux-image-{rel}-dbg")
        hdr_info = apt.show(f"linux-headers-{rel}")
        if not dbg or not hdr_info:
            _log(f"skipping {rel}: headers or -dbg package missing")
            continue
        versions = {
            "release": rel,
            f"linux-image-{rel}": version,
            f"linux-image-{rel}-dbg": dbg,
        }
        # The image and headers packages and what of the kernel's own they
        # depend on: 7.x splits the image into linux-{base,binary,modules}-<rel>,
        # the headers need linux-headers-<abi>-common.
        own = re.compile(rf"^linux-(image|base|binary|modules|headers)-{re.escape(abi)}(-|$)")
        todo = [f"linux-image-{rel}", f"linux-headers-{rel}"]
        while todo:
            pkg = todo.pop()
            info = apt.show(pkg)
            v = apt.candidate(pkg)
            if info is None or v is None:
                raise ImageError(f"{pkg} (a part of kernel {rel}) not found")
            versions.setdefault(pkg, v)
            todo += [d for d in _depends(info) if own.match(d) and d not in versions and not d.endswith("-dbg")]
        if spec.kernel.initramfs:
            # The initramfs's shell and module loader (see vm/initramfs.py).
            v = apt.candidate(BUSYBOX_PACKAGE)
            if v is None:
                raise ImageError(f"{BUSYBOX_PACKAGE} (for the initramfs of kernel {rel}) not found")
            versions[BUSYBOX_PACKAGE] = v
        return versions
    raise ImageError(
        f"no linux-image-{series}.*-{spec.flavour} with headers and -dbg found in {MIRROR} {spec.kernel.suite}"
    )


def _hash(blob: object) -> str:
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def _userspace_key(arch: str, versions: dict[str, str]) -> str:
    blob: dict[str, Any] = {"recipe": RECIPE, "suite": SUITE, "arch": arch, "packages": GUEST_PACKAGES, **versions}
    if ARCHES[arch].foreign:
        blob["unpacked"] = FOREIGN_INCLUDE
    return _hash(blob)


def _key(spec: ImageSpec, userspace: str, kernel: dict[str, str]) -> str:
    blob = {"recipe": RECIPE, "arch": spec.arch, "series": spec.series, "userspace": userspace,
            "init": STUB_INIT, **kernel}  # fmt: skip
    if spec.arch_info.foreign:
        blob["firstboot"] = FIRSTBOOT_INIT
    if spec.kernel.initramfs:
        blob["initramfs"] = INITRAMFS_INIT
    return _hash(blob)


# --- the cache ---------------------------------------------------------------


def _load(path: Path) -> Image | None:
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    img = Image(path.resolve(), manifest)
    return img if img.valid() else None


def _current_link(spec: ImageSpec) -> Path:
    return cache_dir() / f"current-{spec.name}"


def current_image(series: str = DEFAULT_SERIES, arch: str = "x86_64") -> Image | None:
    """The image of (*arch*, *series*) that vm/build last built or validated,
    if it is still there."""
    spec = ImageSpec(arch, series)
    img = _load(_current_link(spec))
    if img is None and spec.is_default:
        img = _load(cache_dir() / "current")  # made by an older vm/build
    return img


def _symlink(link: Path, target: Path) -> None:
    tmp = link.parent / f".{link.name}.{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(target, link.parent))
    os.replace(tmp, link)


def _set_current(spec: ImageSpec, img: Image) -> None:
    _symlink(_current_link(spec), img.path)
    if spec.is_default:
        _symlink(cache_dir() / "current", img.path)


def ensure_image(
    resolve_versions: bool = True, quiet: bool = False, *, series: str = DEFAULT_SERIES, arch: str = "x86_64"
) -> Image:
    """Return a usable image of kernel *series* for *arch*, building it if needed.

    With ``resolve_versions`` (what ``vm/build`` does) the archive is asked for
    the newest packages and a new image is built when they changed; without it
    (what a boot does) the current image is reused as is and a build happens
    only when there is none. Concurrent callers serialise on a lock file.
    """
    spec = ImageSpec(arch, series)
    arch = spec.arch
    t0 = time.monotonic()
    with _locked(cache_dir() / "build.lock"):
        if not resolve_versions:
            img = current_image(series, arch)
            if img is not None:
                return img
        ensure_host_packages(spec.arch)
        try:
            uversions = resolve_userspace(arch)
            kversions = resolve_kernel(spec)
        except (subprocess.CalledProcessError, ImageError) as e:
            img = current_image(series, arch)
            if img is None:
                raise ImageError(f"cannot resolve guest packages: {e}") from e
            _log(f"warning: cannot resolve packages ({e}); reusing {img.path}")
            return img
        ukey = _userspace_key(arch, uversions)
        key = _key(spec, ukey, kversions)
        _log(
            f"resolved kernel {kversions['release']} "
            + " ".join(f"{k}={v}" for k, v in {**kversions, **uversions}.items() if k != "release")
        )
        path = cache_dir() / "images" / key
        img = _load(path)
        if img is not None:
            _set_current(spec, img)
            _log(f"image {spec.name} {key} is cached at {path} (checked in {time.monotonic() - t0:.1f} s)")
            return img
        userspace = _ensure_userspace(arch, ukey, uversions, quiet)
        img = _build(spec, key, userspace, ukey, uversions, kversions)
        _set_current(spec, img)
        _prune(spec, keep=img.path)
        _log(f"image {spec.name} {key} built at {img.path} in {time.monotonic() - t0:.1f} s")
        return img


def _prune(spec: ImageSpec, keep: Path) -> None:
    """Remove the older images of *spec*, and userspaces no image was built from."""
    images = cache_dir() / "images"
    used = set()
    for p in images.iterdir():
        if p.name.startswith("."):
            continue
        img = _load(p)
        if p.resolve() != keep.resolve() and (img is None or img.spec == spec):
            _log(f"removing old image {p}")
            shutil.rmtree(p, ignore_errors=True)
        elif img is not None:
            used.add(str(img.manifest.get("userspace")))
    for t in (cache_dir() / "userspace").glob("*.tar"):
        if t.stem not in used:
            _log(f"removing old userspace {t}")
            t.unlink()


def _du_bytes(path: Path) -> int:
    return int(_out(["du", "-s", "-B1", "--apparent-size", str(path)]).split()[0])


def _ensure_userspace(arch: str, ukey: str, versions: dict[str, str], quiet: bool) -> Path:
    """The shared userspace tarball of *ukey*, made with mmdebstrap if missing."""
    d = cache_dir() / "userspace"
    d.mkdir(parents=True, exist_ok=True)
    tar = d / f"{ukey}.tar"
    if tar.is_file():
        return tar
    tmp = d / f".{ukey}.{os.getpid()}.tar"
    t = time.monotonic()
    a = ARCHES[arch]
    include = [f"{p}={versions[p]}" if p in versions else p for p in GUEST_PACKAGES]
    if a.foreign:
        # The host cannot run the guest's maintainer scripts: only download
        # and unpack (the Essential and required set too, which the extract
        # variant leaves out), keeping the .debs for the image's first boot,
        # where the guest installs them itself (FIRSTBOOT_INIT).
        _log(f"mmdebstrap {SUITE} {a.deb_arch} userspace, unpacked only -> {tar}")
        variant = ["--variant=extract", "--skip=check/qemu", "--skip=cleanup/apt/cache"]
        variant += [f"--include={p}" for p in FOREIGN_INCLUDE]
    else:
        _log(f"mmdebstrap {SUITE} userspace -> {tar}")
        variant = ["--variant=apt"]
    try:
        _run(
            [
                "mmdebstrap",
                *variant,
                "--mode=root",
                "--quiet",
                f"--architectures={a.deb_arch}",
                '--aptopt=Acquire::Check-Valid-Until "false"',
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                f"--include={','.join(include)}",
                SUITE,
                str(tmp),
                MIRROR,
            ],
            stdout=subprocess.DEVNULL if quiet else None,
        )
        os.replace(tmp, tar)
    finally:
        tmp.unlink(missing_ok=True)
    _log(f"userspace made in {time.monotonic() - t:.1f} s")
    return tar


def _merge(src: Path, dest: Path) -> None:
    """Copy the tree *src* into *dest*, keeping *dest*'s symlinks to
    directories (``/lib -> usr/lib``: a package's ``lib/modules`` lands in
    ``usr/lib/modules``)."""
    pack = subprocess.Popen(["tar", "-c", "-C", str(src), "."], stdout=subprocess.PIPE)
    _run(["tar", "-x", "-C", str(dest), "--keep-directory-symlink"], stdin=pack.stdout)
    assert pack.stdout is not None
    pack.stdout.close()
    if pack.wait() != 0:
        raise ImageError(f"cannot copy {src}")


def _build(
    spec: ImageSpec, key: str, userspace: Path, ukey: str, uversions: dict[str, str], kversions: dict[str, str]
) -> Image:
    rel = kversions["release"]
    apt = _kernel_apt(spec)
    images = cache_dir() / "images"
    images.mkdir(parents=True, exist_ok=True)
    work = images / f".build-{key}-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        rootfs = work / "rootfs"
        rootfs.mkdir()
        t = time.monotonic()
        _run(["tar", "-x", "-C", str(rootfs), "-f", str(userspace)])
        _log(f"userspace unpacked in {time.monotonic() - t:.1f} s")

        # The kernel's packages, unpacked (not installed: the userspace's
        # dpkg never hears of them, so one userspace serves every series).
        t = time.monotonic()
        debs = work / "debs"
        debs.mkdir()
        dbg = f"linux-image-{rel}-dbg"
        pkgs = [p for p in kversions if p != "release"]
        apt.download([f"{p}={kversions[p]}" for p in pkgs], debs)
        _log(f"downloaded {' '.join(pkgs)} in {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        kernel = work / "kernel"
        kernel.mkdir()
        for deb in sorted(debs.glob("*.deb")):
            if deb.name.startswith(f"{dbg}_"):
                continue
            _run(["dpkg-deb", "-x", str(deb), str(kernel)])
        _merge(kernel, rootfs)
        shutil.rmtree(kernel)
        moddir = rootfs / "lib/modules" / rel
        # 7.x ships the kernel as lib/modules/<rel>/vmlinuz (its postinst
        # copies it to /boot), 6.x as boot/vmlinuz-<rel>.
        vmlinuz = [p for p in (rootfs / "boot" / f"vmlinuz-{rel}", moddir / "vmlinuz") if p.is_file()]
        if not (moddir / "kernel").is_dir() or not vmlinuz:
            raise ImageError(f"no vmlinuz or modules of {rel} in {' '.join(pkgs)}")
        shutil.copyfile(vmlinuz[0], work / "vmlinuz")
        # /boot as the postinst would leave it: 7.x ships vmlinuz, config
        # and System.map in lib/modules/<rel>/ (kexec -p loads the capture
        # kernel from /boot, and /boot/config-<rel> tells the configuration)
        (rootfs / "boot").mkdir(exist_ok=True)
        for name, src in (("vmlinuz", vmlinuz[0]), ("config", moddir / "config"),
                          ("System.map", moddir / "System.map")):  # fmt: skip
            dst = rootfs / "boot" / f"{name}-{rel}"
            if not dst.is_file() and src.is_file():
                shutil.copyfile(src, dst)
        _run([_tool("depmod"), "-b", str(rootfs), rel])
        if not (moddir / "modules.dep").stat().st_size:
            raise ImageError(f"depmod made no modules.dep for {rel}")
        _log(f"kernel {rel} unpacked, depmod done in {time.monotonic() - t:.1f} s")
        if spec.kernel.initramfs:
            loaded = make_initramfs(rootfs, rel, work / "initrd.img")
            _log(f"initramfs made: busybox and {' '.join(loaded) or 'no modules'}")

        t = time.monotonic()
        (deb,) = list(debs.glob(f"{dbg}_*.deb"))
        dbgx = work / "dbg"
        dbgx.mkdir()
        tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        _run(["tar", "-x", "-C", str(dbgx), "--wildcards", "*vmlinux*"], stdin=tar.stdout)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait() != 0:
            raise ImageError(f"dpkg-deb failed on {deb}")
        shutil.rmtree(debs)
        # trixie's -dbg ships lib/modules/<rel>/vmlinux as a symlink to
        # boot/vmlinux-<rel>: the host copy must be the file it names.
        vmlinux = dbgx / "usr/lib/debug/lib/modules" / rel / "vmlinux"
        if not vmlinux.is_file():
            found = [p for p in dbgx.rglob("vmlinux*") if p.is_file() and not p.is_symlink()]
            if not found:
                raise ImageError(f"no vmlinux in {dbg}")
            vmlinux = found[0]
        vmlinux = vmlinux.resolve()
        if not str(vmlinux).startswith(str(dbgx.resolve())):
            raise ImageError(f"{dbg}: vmlinux points outside the package ({vmlinux})")
        os.link(vmlinux, work / "vmlinux")
        # The guest gets the -dbg package's layout (drgn and bcc find it there
        # with no options); the host keeps its own copy next to the image.
        _merge(dbgx, rootfs)
        shutil.rmtree(dbgx)
        _log(f"vmlinux extracted from {dbg} in {time.monotonic() - t:.1f} s")

        init = rootfs / "usr/sbin/livewalk-init"
        init.write_text(STUB_INIT)
        init.chmod(0o755)
        (rootfs / "etc/hostname").write_text("livewalk-vm\n")
        (rootfs / "etc/hosts").write_text("127.0.0.1 localhost\n127.0.1.1 livewalk-vm\n")
        (rootfs / "etc/fstab").write_text("# mounts are done by /livewalk/init.sh\n")
        for d in ("src", "out", "livewalk"):
            (rootfs / d).mkdir(exist_ok=True)
        if spec.arch_info.foreign:
            _stage_firstboot(rootfs)
        for p in (rootfs / "var/lib/apt/lists").glob("*_*"):
            p.unlink()
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)

        t = time.monotonic()
        used = _du_bytes(rootfs)
        size_mib = used * 12 // 10 // (1 << 20) + 2048
        _run(
            ["mkfs.ext4", "-q", "-F", "-L", "lwroot", "-d", str(rootfs), str(work / "root.img"), f"{size_mib}M"],
            stdout=subprocess.DEVNULL,
        )
        _log(f"root.img ({size_mib} MiB, {used >> 20} MiB used) made in {time.monotonic() - t:.1f} s")
        shutil.rmtree(rootfs)
        if spec.arch_info.foreign:
            _configure_in_guest(spec, work)
        manifest = {
            "key": key,
            "recipe": RECIPE,
            "arch": spec.arch,
            "series": spec.series,
            "suite": spec.kernel.suite,
            "userspace_suite": SUITE,
            "userspace": ukey,
            "mirror": MIRROR,
            "release": rel,
            "initrd": spec.kernel.initramfs,
            "versions": {**kversions, **uversions},
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


def _stage_firstboot(rootfs: Path) -> None:
    """Set a foreign architecture's unpacked userspace up for its first boot:
    its .debs where FIRSTBOOT_INIT finds them, and FIRSTBOOT_INIT itself."""
    debs = rootfs / FIRSTBOOT_DEBS
    debs.mkdir(parents=True, exist_ok=True)
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        os.replace(deb, debs / deb.name)
    if not any(debs.iterdir()):
        raise ImageError("the unpacked userspace holds no .debs to install at first boot")
    # What the guest's dpkg is told not to install (mmdebstrap's path-exclude
    # options), though the host's unpacking put it there.
    for d in ("usr/share/man", "usr/share/locale", "usr/share/doc"):
        shutil.rmtree(rootfs / d, ignore_errors=True)
        (rootfs / d).mkdir()
    init = rootfs / "usr/sbin/livewalk-firstboot"
    init.write_text(FIRSTBOOT_INIT)
    init.chmod(0o755)


def _configure_in_guest(spec: ImageSpec, work: Path, attempts: int = 2) -> None:
    """Boot *work*'s image once (writable) with FIRSTBOOT_INIT as init, so
    that the guest installs its own packages; raise if it does not say so.

    Each attempt starts from the image as the host made it. A boot that
    panics, dies or outlasts ``$LIVEWALK_VM_FIRSTBOOT_TIMEOUT`` (default
    1800 s) fails the attempt.
    """
    timeout = float(os.environ.get("LIVEWALK_VM_FIRSTBOOT_TIMEOUT", 1800))
    root = work / "root.img"
    pristine = work / "root.unconfigured.img"
    _run(["cp", "--sparse=always", str(root), str(pristine)])
    errors = []
    # Machines shared by several users of QEMU may serialise boots on a lock file.
    boot_lock = os.environ.get("LIVEWALK_VM_BOOT_LOCK")
    for attempt in range(1, attempts + 1):
        with _locked(Path(boot_lock)) if boot_lock else contextlib.nullcontext():
            why, t = _first_boot(spec, work, attempt, timeout)
        if not why:
            pristine.unlink()
            _log(f"packages installed in the guest in {time.monotonic() - t:.1f} s")
            return
        errors.append(f"attempt {attempt}: {why}")
        _run(["cp", "--sparse=always", str(pristine), str(root)])
    raise ImageError(f"the {spec.arch} image's first boot failed: " + "; ".join(errors))


def _first_boot(spec: ImageSpec, work: Path, attempt: int, timeout: float) -> tuple[str, float]:
    """One attempt of :func:`_configure_in_guest`: why it failed ("" if it
    did not) and when it started."""
    from .qemu import FATAL, firstboot_args, pdeathsig

    root = work / "root.img"
    console = work / f"firstboot.{attempt}.log"
    t = time.monotonic()
    _log(f"first boot of the {spec.arch} image: installing its packages in the guest (attempt {attempt})")
    initrd = work / "initrd.img" if spec.kernel.initramfs else None
    args = firstboot_args(spec.arch, work / "vmlinuz", root, console, initrd=initrd)
    with open(work / "firstboot-qemu.log", "ab") as qlog:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=qlog, stderr=subprocess.STDOUT,
                                preexec_fn=pdeathsig)  # fmt: skip
    why = ""
    try:
        while True:
            text = console.read_text(errors="replace") if console.exists() else ""
            if proc.poll() is not None:
                if "livewalk-firstboot: configured" in text:
                    break
                why = f"QEMU exited with status {proc.returncode}"
                break
            m = FATAL.search(text)
            if m:
                why = f"kernel reported {m.group(0)!r}"
                break
            if "livewalk-firstboot: FAILED" in text:
                why = "dpkg failed"
                break
            if time.monotonic() - t > timeout:
                why = f"not done in {timeout:.0f} s"
                break
            time.sleep(1)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    if why:
        tail = "\n".join(console.read_text(errors="replace").splitlines()[-30:]) if console.exists() else ""
        _log(f"first boot attempt {attempt} failed: {why}\n{tail}")
    return why, t


# --- a kernel of the user's --------------------------------------------------


def kernel_release(bzimage: str | os.PathLike[str]) -> str | None:
    """The release string (``uname -r``) of an x86 bzImage, from its setup
    header's ``kernel_version`` field, or None if it has none."""
    with open(bzimage, "rb") as f:
        head = f.read(0x8000)
    if len(head) < 0x210 or head[0x202:0x206] != b"HdrS":
        return None
    ptr = int.from_bytes(head[0x20E:0x210], "little")
    if not ptr:
        return None
    with open(bzimage, "rb") as f:
        f.seek(ptr + 0x200)
        text = f.read(256)
    words = text.split(b"\0", 1)[0].split()
    return words[0].decode(errors="replace") if words else None


def make_modules_image(modules: str | os.PathLike[str], release: str, img: Path, staging: Path) -> None:
    """Make a small ext4 disk of a kernel's modules for the guest's
    ``/lib/modules`` (the stub init mounts it, before loading any module,
    when the kernel command line has ``livewalk.modules=1``).

    :param modules: ``lib/modules/<release>`` itself, a directory holding
        ``<release>/`` (``lib/modules``), or one holding ``lib/modules/<release>``
        (``make modules_install INSTALL_MOD_PATH=DIR``); ``modules.dep`` is
        made with ``depmod -b`` when missing
    """
    m = Path(modules)
    for cand in (m, m / release, m / "lib/modules" / release, m / "usr/lib/modules" / release):
        if (cand / "modules.dep").is_file() or (cand / "kernel").is_dir():
            tree = cand
            break
    else:
        raise ImageError(f"{m}: no modules of {release} (no modules.dep or kernel/ in it, "
                         f"<dir>/{release} or <dir>/lib/modules/{release})")  # fmt: skip
    dest = staging / "lib/modules" / release
    dest.parent.mkdir(parents=True)
    shutil.copytree(tree, dest, symlinks=True)
    for link in ("build", "source"):  # point into the developer's tree
        if (dest / link).is_symlink():
            (dest / link).unlink()
    if not (dest / "modules.dep").is_file():
        _run([_tool("depmod"), "-b", str(staging), release])
    size_mib = _du_bytes(staging) * 12 // 10 // (1 << 20) + 16
    _run(
        ["mkfs.ext4", "-q", "-F", "-L", "lwmods", "-d", str(staging / "lib/modules"), str(img), f"{size_mib}M"],
        stdout=subprocess.DEVNULL,
    )
    shutil.rmtree(staging)
