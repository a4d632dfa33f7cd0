# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Kernel features
---------------

The one place where livewalk chooses between kernel versions. A
:class:`KernelFeatures` says what the target kernel has, probed from its
debug info the way drgn's helpers do (a member exists, a symbol exists, an
enumerator exists); the release string is only a hint, used for what debug
info cannot show (a ``#define``). Code that depends on the kernel version
asks ``backend.features``, never the release.

>>> f = KernelFeatures.for_version((7, 2))
>>> f.page_compound_info, f.fw_zeropage, f.fw_migration
(True, 1, None)
>>> KernelFeatures.for_version((6, 12)).fw_zeropage
2
"""

from __future__ import annotations

import dataclasses
import re

from drgn import FaultError, FindObjectFlags, Program

__all__ = ("DEFAULT_VERSION", "KernelFeatures", "parse_release")

#: The kernel livewalk is proven on, and what a target that cannot be
#: probed is taken to be.
DEFAULT_VERSION = (7, 2)


def parse_release(release: str) -> tuple[int, int] | None:
    """
    ``(major, minor)`` of a kernel release string, or ``None``.

    >>> parse_release("7.2.13+deb14-cloud-amd64")
    (7, 2)
    """
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else None


@dataclasses.dataclass(frozen=True, slots=True)
class KernelFeatures:
    """
    What the target kernel has, where kernels livewalk supports differ.

    :ivar release: ``UTS_RELEASE`` (``None`` if unknown): a hint only
    :ivar version: ``(major, minor)`` from *release*, else
        :data:`DEFAULT_VERSION`
    :ivar page_compound_info: ``struct page`` has ``compound_info`` (was
        ``compound_head``; Linux 7.1)
    :ivar folio_large_mapcount: ``struct folio`` has ``_large_mapcount``
        (Linux 6.9)
    :ivar folio_mm_ids: ``struct folio`` has ``_mm_ids`` (Linux 6.15)
    :ivar vma_flag_bit_enums: the ``VMA_*_BIT`` enumerators exist (Linux 6.19)
    :ivar zero_page_pfn: the zero page's PFN is ``zero_page_pfn`` (was
        ``zero_pfn``; Linux 7.1)
    :ivar mm_lock_seq: ``struct mm_struct`` has ``mm_lock_seq``
        (``CONFIG_PER_VMA_LOCK``)
    :ivar walk_ops_install_pte: ``struct mm_walk_ops`` has ``install_pte``
        (Linux 6.13)
    :ivar folio_walk: ``folio_walk_start()`` exists (Linux 6.12)
    :ivar fw_zeropage: ``FW_ZEROPAGE``: ``BIT(0)`` since Linux 7.1, ``BIT(1)``
        before (a ``#define``: chosen by the release hint)
    :ivar fw_migration: ``FW_MIGRATION`` (``BIT(0)``), ``None`` since Linux 7.1
    """

    release: str | None = None
    version: tuple[int, int] = DEFAULT_VERSION
    page_compound_info: bool = True
    folio_large_mapcount: bool = True
    folio_mm_ids: bool = True
    vma_flag_bit_enums: bool = True
    zero_page_pfn: bool = True
    mm_lock_seq: bool = True
    walk_ops_install_pte: bool = True
    folio_walk: bool = True
    fw_zeropage: int = 1 << 0
    fw_migration: int | None = None

    @classmethod
    def for_version(cls, version: tuple[int, int] = DEFAULT_VERSION) -> KernelFeatures:
        """
        The features of a Debian x86_64 kernel of *version*, by release
        alone (for the synthetic backend and for tests; a real target is
        probed with :meth:`from_program`).
        """
        v = tuple(version)
        new_fw = v >= (7, 1)
        return cls(
            release=None,
            version=(v[0], v[1]),
            page_compound_info=v >= (7, 1),
            folio_large_mapcount=v >= (6, 9),
            folio_mm_ids=v >= (6, 15),
            vma_flag_bit_enums=v >= (6, 19),
            zero_page_pfn=v >= (7, 1),
            mm_lock_seq=True,
            walk_ops_install_pte=v >= (6, 13),
            folio_walk=v >= (6, 12),
            fw_zeropage=1 << 0 if new_fw else 1 << 1,
            fw_migration=None if new_fw else 1 << 0,
        )

    @classmethod
    def from_program(cls, prog: Program) -> KernelFeatures:
        """
        Probe *prog*'s debug info. What cannot be probed (a ``#define``)
        comes from the release; a kernel whose release cannot be read is
        taken to be :data:`DEFAULT_VERSION` there.
        """
        release = _release(prog)
        version = parse_release(release) if release else None
        hint = cls.for_version(version or DEFAULT_VERSION)
        return dataclasses.replace(
            hint,
            release=release,
            page_compound_info=_has_member(prog, "struct page", "compound_info"),
            folio_large_mapcount=_has_member(prog, "struct folio", "_large_mapcount"),
            folio_mm_ids=_has_member(prog, "struct folio", "_mm_ids"),
            vma_flag_bit_enums=_has_constant(prog, "VMA_READ_BIT"),
            zero_page_pfn=_has_variable(prog, "zero_page_pfn"),
            mm_lock_seq=_has_member(prog, "struct mm_struct", "mm_lock_seq"),
            walk_ops_install_pte=_has_member(prog, "struct mm_walk_ops", "install_pte"),
            folio_walk=_has_function(prog, "folio_walk_start"),
        )


def _release(prog: Program) -> str | None:
    try:
        return prog["UTS_RELEASE"].string_().decode()
    except (LookupError, ValueError, FaultError):
        return None


def _has_member(prog: Program, type_name: str, member: str) -> bool:
    try:
        return prog.type(type_name).has_member(member)
    except LookupError:
        return False


def _has_object(prog: Program, name: str, flags: FindObjectFlags) -> bool:
    try:
        prog.object(name, flags)
    except LookupError:
        return False
    return True


def _has_constant(prog: Program, name: str) -> bool:
    return _has_object(prog, name, FindObjectFlags.CONSTANT)


def _has_variable(prog: Program, name: str) -> bool:
    return _has_object(prog, name, FindObjectFlags.VARIABLE)


def _has_function(prog: Program, name: str) -> bool:
    if _has_object(prog, name, FindObjectFlags.FUNCTION):
        return True
    try:
        prog.symbol(name)
    except LookupError:
        return False
    return True
