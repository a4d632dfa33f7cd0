# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The test session's guests: booted on first use, one per kernel and paging
mode, stopped at the end; and whether a guest can be had at all.

>>> pool = GuestPool(src=Path("."))
>>> g = pool.guest(GuestKey(levels=4))  # doctest: +SKIP
>>> pool.close()
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from livewalk.vm import Guest

__all__ = ("ARCHES", "DEFAULT_KERNEL", "GuestKey", "GuestPool", "VMUnavailable")

#: The kernel series name meaning "the kernel of the built image".
DEFAULT_KERNEL = "default"
#: Guest architectures the harness boots (names of :data:`livewalk.vm.image.ARCHES`).
ARCHES = ("x86_64", "arm64")
#: The emulator each architecture needs, and its Debian package.
_QEMU = {"x86_64": ("qemu-system-x86_64", "qemu-system-x86"), "arm64": ("qemu-system-aarch64", "qemu-system-arm")}


class VMUnavailable(Exception):
    """The test VM cannot be had here (no QEMU, no image, an unsupported
    kernel or architecture); the message is the one-line reason."""


@dataclass(frozen=True)
class GuestKey:
    """Which guest a test runs on.

    :ivar kernel: a kernel series of :data:`livewalk.vm.image.KERNEL_SERIES`
        (x86-64: ``"6.1"``, ``"6.12"``, ``"7"``; arm64: ``"7"``, ``"16k"``) or
        ``"default"`` (the newest 7.x)
    :ivar levels: the page-table levels: 5 or 4 (x86-64 with or without LA57,
        arm64 with or without FEAT_LPA2), arm64's ``16k`` kernel 4 or 3 (with
        or without FEAT_LPA2)
    :ivar arch: ``"x86_64"`` or ``"arm64"``
    :ivar kernel_image: a bzImage of the user's own (with ``vmlinux``, and
        ``modules``, its ``lib/modules/<rel>`` or ``INSTALL_MOD_PATH``),
        booted on the series' userspace
    """

    kernel: str = DEFAULT_KERNEL
    levels: int = 5
    arch: str = "x86_64"
    kernel_image: str | None = None
    vmlinux: str | None = None
    modules: str | None = None

    @property
    def series(self) -> str:
        """The kernel series of the image booted (``"default"`` resolved)."""
        from livewalk.vm.image import DEFAULT_SERIES

        return DEFAULT_SERIES if self.kernel == DEFAULT_KERNEL else self.kernel

    @property
    def id(self) -> str:
        """The test id part: ``l5``, ``6.12-l4`` for a named series, ``own-l5``
        for a kernel of the user's; ``arm64-`` first for an arm64 guest
        (``arm64-16k-l4``)."""
        lv = f"l{self.levels}"
        if self.kernel_image is not None:
            lv = f"own-{lv}"
        elif self.kernel != DEFAULT_KERNEL:
            lv = f"{self.kernel}-{lv}"
        return lv if self.arch == "x86_64" else f"{self.arch}-{lv}"


class GuestPool:
    """Guests booted on demand and kept for the session.

    A guest that fails to boot (after :class:`~livewalk.vm.Guest`'s own
    retries) is not booted again: later requests raise the same error.

    :param src: the host tree shown read-only at ``/src``
    """

    def __init__(self, src: Path, memory: str = "4G", smp: int = 2) -> None:
        self.src = src
        self.memory = memory
        self.smp = smp
        self._guests: dict[GuestKey, Guest] = {}
        self._failed: dict[GuestKey, BaseException] = {}

    def check(self, key: GuestKey) -> None:
        """Raise :class:`VMUnavailable` with the reason if *key*'s guest cannot be had."""
        if key.arch not in ARCHES:
            raise VMUnavailable(f"architecture {key.arch} is not supported yet (only {', '.join(ARCHES)})")
        qemu, package = _QEMU[key.arch]
        if shutil.which(qemu) is None:
            raise VMUnavailable(f"{qemu} not found on PATH (install QEMU, e.g. apt-get install {package})")
        if (key.kernel_image is None) != (key.vmlinux is None):
            raise VMUnavailable("--kernel-image and --vmlinux go together")
        if key.modules is not None and key.kernel_image is None:
            raise VMUnavailable("--kernel-modules goes with --kernel-image")
        for p in (key.kernel_image, key.vmlinux):
            if p is not None and not os.path.isfile(p):
                raise VMUnavailable(f"no such file: {p}")
        if key.modules is not None and not os.path.isdir(key.modules):
            raise VMUnavailable(f"no such directory: {key.modules}")
        from livewalk.vm.image import KERNEL_SERIES, ImageError, arch_series, check_series

        if key.series not in KERNEL_SERIES:
            raise VMUnavailable(f"kernel series {key.kernel} is not known (known: {', '.join(arch_series(key.arch))})")
        try:
            check_series(key.arch, key.series)
        except ImageError as e:
            raise VMUnavailable(str(e)) from None

    def guest(self, key: GuestKey) -> Guest:
        """The running guest for *key*, booting it on first use.

        :raises VMUnavailable: if it cannot be had (see :meth:`check`)
        :raises ~livewalk.vm.BootError: if it did not boot
        """
        if key in self._failed:
            raise self._failed[key]
        g = self._guests.get(key)
        if g is not None and g.running:
            return g
        self.check(key)
        from livewalk.vm import Guest, ImageError, ensure_image

        try:
            ensure_image(resolve_versions=False, series=key.series, arch=key.arch)
        except (ImageError, OSError) as e:
            self._failed[key] = VMUnavailable(
                f"no test VM image of kernel {key.series}{'' if key.arch == 'x86_64' else f' ({key.arch})'} "
                f"and it cannot be built here: {e}"
            )
            raise self._failed[key] from e
        g = Guest(
            levels=key.levels,
            memory=self.memory,
            smp=self.smp,
            src=self.src,
            kernel=key.series,
            kernel_image=key.kernel_image,
            vmlinux=key.vmlinux,
            modules=key.modules,
            arch=key.arch,
        )
        try:
            g.start()
        except BaseException as e:
            self._failed[key] = e
            raise
        self._guests[key] = g
        return g

    def close(self) -> None:
        """Stop every guest."""
        for g in self._guests.values():
            g.stop()
        self._guests.clear()
