# SPDX-License-Identifier: LGPL-2.1-or-later
"""
THP eligibility
---------------

``thp_vma_allowable_orders()`` as smaps asks it (``TVA_SMAPS``), from Linux
7.2 ``include/linux/huge_mm.h`` and ``mm/huge_memory.c``: the
``THPeligible`` line of ``/proc/PID/smaps``; on Linux 6.1 (no mTHP) its
``hugepage_vma_check(vma, vm_flags, smaps=true, in_pf=false,
enforce_sysfs=true)`` of ``mm/huge_memory.c``, chosen by
:attr:`~livewalk.kernel.KernelFeatures.thp_hugepage_vma_check`.

>>> thp_eligible(vma.obj, vma, backend.vm_flag_bits)  # doctest: +SKIP
1
"""

from __future__ import annotations

from drgn import Object, Program, cast

from livewalk.arch import ULONG_MAX
from livewalk.arch.x86.pgtable import pmd_none, pmd_present, pmd_trans_huge
from livewalk.kernel import KernelFeatures
from livewalk.mm.huge_mm import hpage_pmd_nr, hpage_pmd_order, page_shift
from livewalk.mm.shmem import (
    SHMEM_HUGE_ADVISE,
    SHMEM_HUGE_ALWAYS,
    SHMEM_HUGE_DENY,
    SHMEM_HUGE_FORCE,
    SHMEM_HUGE_WITHIN_SIZE,
    shmem_allowable_huge_orders,
    shmem_mapping,
)
from livewalk.mm.vma import VMA, VMFlagBits

__all__ = (
    "MMF_DISABLE_THP",
    "S_DAX",
    "file_thp_enabled",
    "hugepage_vma_check",
    "pmd_is_huge",
    "thp_eligible",
    "thp_vma_suitable_order",
    "vma_thp_disabled",
)


def _thp_orders(pmd_order: int) -> tuple[int, int, int]:
    """
    ``THP_ORDERS_ALL_ANON`` (orders 2 to ``PMD_ORDER``),
    ``THP_ORDERS_ALL_FILE_DEFAULT`` (1 to ``PMD_ORDER``) and ``PUD_ORDER``.
    ``PUD_ORDER`` is in ``THP_ORDERS_ALL_SPECIAL`` only with
    ``CONFIG_HAVE_ARCH_TRANSPARENT_HUGEPAGE_PUD`` (x86_64, not arm64); it
    never decides smaps' ``THPeligible``: a VMA that fits a PUD-sized page
    fits a PMD-sized one.
    """
    upto = (1 << (pmd_order + 1)) - 1
    return upto & ~0b11, upto & ~0b1, 2 * pmd_order

#: ``MMF_DISABLE_THP_EXCEPT_ADVISED`` and ``MMF_DISABLE_THP_COMPLETELY``:
#: macros in Linux 7.2 ``include/linux/mm_types.h``, absent from debug info.
MMF_DISABLE_THP_EXCEPT_ADVISED = 23
MMF_DISABLE_THP_COMPLETELY = 24

#: ``S_ANON_INODE`` (``include/linux/fs.h``, a macro).
S_ANON_INODE = 1 << 19
#: ``S_DAX`` (``include/linux/fs.h``, a macro; with ``CONFIG_FS_DAX``).
S_DAX = 1 << 13
#: ``MMF_DISABLE_THP`` (Linux 6.1 ``include/linux/sched/coredump.h``).
MMF_DISABLE_THP = 24
_S_IFMT = 0o170000
_S_IFREG = 0o100000


def pmd_is_huge(v: int) -> bool:
    """
    ``pmd_is_huge()`` (``include/linux/huge_mm.h``): a leaf, or a non-none,
    non-present (migration or device-private) entry.

    :param v: the PMD's value
    """
    return not pmd_none(v) and (not pmd_present(v) or pmd_trans_huge(v))


def _enum(prog: Program, name: str, default: int) -> int:
    try:
        return int(prog[name].value_())
    except KeyError:
        return default


def thp_eligible(
    vma_obj: Object, vma: VMA, bits: VMFlagBits, features: KernelFeatures | None = None
) -> int:
    """
    ``!!thp_vma_allowable_orders(vma, vma->vm_flags, TVA_SMAPS,
    THP_ORDERS_ALL)`` (Linux 7.2); with *features* of Linux 6.1,
    :func:`hugepage_vma_check`.

    Exact for anonymous VMAs, special mappings and VMAs without an mm;
    for file VMAs the ``->huge_fault`` and tuneables rules are followed and
    ``file_thp_enabled()`` reads the mapping's folio orders; for shmem the
    per-mount ``huge=`` option and the shmem sysfs orders are followed.

    :param vma_obj: ``struct vm_area_struct *``
    :param vma: the same VMA as the backend read it
    :param bits: the target's VM flag bits
    :param features: the target's features (default: Linux 7.2's rules)
    :return: 1 if some THP order is allowed, else 0
    """
    if features is not None and features.thp_hugepage_vma_check:
        return int(hugepage_vma_check(vma_obj, vma, bits))
    prog = vma_obj.prog_
    flags = vma.vm_flags
    vm_hugepage = bool(flags & bits.VM_HUGEPAGE)
    ops = int(vma_obj.vm_ops.value_())
    anonymous = ops == 0
    orders_anon, orders_file, pud_order = _thp_orders(hpage_pmd_order(prog))
    orders = orders_anon | orders_file | (1 << pud_order)
    try:
        thp_flags = int(prog["transparent_hugepage_flags"].value_())
    except KeyError:
        return 0
    # enum transparent_hugepage_flag
    f_unsupported = _enum(prog, "TRANSPARENT_HUGEPAGE_UNSUPPORTED", 0)
    f_always = _enum(prog, "TRANSPARENT_HUGEPAGE_FLAG", 1)
    f_madv = _enum(prog, "TRANSPARENT_HUGEPAGE_REQ_MADV_FLAG", 2)
    global_always = bool(thp_flags >> f_always & 1)
    global_enabled = bool(thp_flags & ((1 << f_always) | (1 << f_madv)))
    if anonymous:
        mask = int(prog["huge_anon_orders_always"].value_())
        if vm_hugepage:
            mask |= int(prog["huge_anon_orders_madvise"].value_())
        if global_always or (vm_hugepage and global_enabled):
            mask |= int(prog["huge_anon_orders_inherit"].value_())
        orders &= mask
        if not orders:
            return 0
        orders &= orders_anon
    else:
        vm_file = int(vma_obj.vm_file.value_())
        special = bool(vm_file) and bool(flags & (bits.VM_PFNMAP | bits.VM_MIXEDMAP))
        orders &= (1 << hpage_pmd_order(prog)) | (1 << pud_order) if special else orders_file
    if not orders:
        return 0
    mm = vma_obj.vm_mm.read_()
    if not int(mm.value_()):
        return 0
    if thp_flags >> f_unsupported & 1:
        return 0
    if vma_thp_disabled(mm, flags, bits):
        return 0
    orders = _suitable_orders(vma, orders, anonymous, page_shift(prog))
    if not orders:
        return 0
    if not anonymous:
        vm_file_obj = vma_obj.vm_file.read_()
        if int(vm_file_obj.value_()) and shmem_mapping(vm_file_obj.f_mapping):
            allowed = shmem_allowable_huge_orders(vma_obj, flags, bits.hugepage)
            return 1 if orders & allowed else 0
        # vma_can_map_huge_file(vma, vm_flags, TVA_SMAPS)
        huge_fault = int(vma_obj.vm_ops.huge_fault.value_()) if ops else 0
        bypass = bool(flags & bits.VM_PFNMAP) and bool(huge_fault)
        if not (bypass or global_always or (global_enabled and vm_hugepage)):
            return 0
        if huge_fault:
            return 1
        return 1 if file_thp_enabled(vma_obj) else 0
    # vma_is_temporary_stack(): VM_GROWSDOWN with VM_STACK_INCOMPLETE_SETUP
    # (VM_RAND_READ | VM_SEQ_READ; VM_STACK_EARLY is 0 without GROWSUP).
    incomplete = bits.VM_RAND_READ | bits.VM_SEQ_READ
    if flags & bits.VM_GROWSDOWN and flags & incomplete == incomplete:
        return 0
    # No anon_vma yet still counts for smaps.
    return 1


def hugepage_vma_check(vma_obj: Object, vma: VMA, bits: VMFlagBits) -> bool:
    """
    ``hugepage_vma_check(vma, vma->vm_flags, smaps=true, in_pf=false,
    enforce_sysfs=true)`` of Linux 6.1 ``mm/huge_memory.c``: PMD-sized THPs
    only. ``file_thp_enabled()`` needs ``CONFIG_READ_ONLY_THP_FOR_FS``,
    taken as set when the kernel does not embed its configuration (Debian
    sets it).

    :param vma_obj: ``struct vm_area_struct *``
    :param vma: the same VMA as the backend read it
    :param bits: the target's VM flag bits
    """
    prog = vma_obj.prog_
    flags = vma.vm_flags
    mm = vma_obj.vm_mm.read_()
    if not int(mm.value_()):
        return False
    if flags & bits.VM_NOHUGEPAGE or _mm_flags(mm) >> MMF_DISABLE_THP & 1:
        return False
    try:
        thp_flags = int(prog["transparent_hugepage_flags"].value_())
    except KeyError:
        return False
    if thp_flags >> _enum(prog, "TRANSPARENT_HUGEPAGE_NEVER_DAX", 0) & 1:
        return False
    vm_file = vma_obj.vm_file.read_()
    inode = vm_file.f_inode.read_() if int(vm_file.value_()) else None
    if inode is not None and int(inode.i_flags.value_()) & S_DAX:
        return False  # vma_is_dax(): only a fault may map it huge
    # VM_NO_KHUGEPAGED (Linux 6.1 include/linux/mm.h) and VM_HUGETLB
    if flags & (bits.VM_IO | bits.VM_DONTEXPAND | bits.VM_PFNMAP | bits.VM_MIXEDMAP | bits.VM_HUGETLB):
        return False  # VM_NO_KHUGEPAGED
    anonymous = not int(vma_obj.vm_ops.value_())
    # transhuge_vma_suitable(vma, vm_end - HPAGE_PMD_SIZE)
    shift = page_shift(prog)
    pmd_size = 1 << (shift + hpage_pmd_order(prog))
    if not thp_vma_suitable_order(vma, vma.vm_end - pmd_size, pmd_size, anonymous, shift):
        return False
    if inode is not None and shmem_mapping(vm_file.f_mapping):
        return _shmem_is_huge_6_1(vma_obj, inode, flags, bits)
    always = bool(thp_flags >> _enum(prog, "TRANSPARENT_HUGEPAGE_FLAG", 1) & 1)
    madvise = bool(thp_flags >> _enum(prog, "TRANSPARENT_HUGEPAGE_REQ_MADV_FLAG", 2) & 1)
    if not (always or madvise) or (not flags & bits.VM_HUGEPAGE and not always):
        return False
    if inode is not None and flags & bits.VM_EXEC and _read_only_thp_for_fs(prog):
        # file_thp_enabled() of 6.1: not open for writing, a regular file
        if int(inode.i_writecount.counter.value_()) <= 0:
            if int(inode.i_mode.value_()) & _S_IFMT == _S_IFREG:
                return True
    if not anonymous:
        return False
    incomplete = bits.VM_RAND_READ | bits.VM_SEQ_READ
    if flags & bits.VM_GROWSDOWN and flags & incomplete == incomplete:
        return False  # vma_is_temporary_stack()
    # without an anon_vma smaps still says 1
    return True


def _read_only_thp_for_fs(prog: Program) -> bool:
    from livewalk.backend.drgn import DrgnBackend

    return DrgnBackend.for_program(prog).config("READ_ONLY_THP_FOR_FS") is not False


def _shmem_is_huge_6_1(vma_obj: Object, inode: Object, vm_flags: int, bits: VMFlagBits) -> bool:
    """``shmem_huge_enabled(vma, false)`` = ``shmem_is_huge(vma, inode, vma->vm_pgoff, false)`` (6.1 ``mm/shmem.c``)."""
    prog = vma_obj.prog_
    if int(inode.i_mode.value_()) & _S_IFMT != _S_IFREG:
        return False
    if vm_flags & bits.VM_NOHUGEPAGE or _mm_flags(vma_obj.vm_mm) >> MMF_DISABLE_THP & 1:
        return False
    try:
        shmem_huge = int(prog["shmem_huge"].value_())
    except KeyError:
        return False
    if shmem_huge == SHMEM_HUGE_DENY:
        return False
    if shmem_huge == SHMEM_HUGE_FORCE:
        return True
    huge = int(cast("struct shmem_sb_info *", inode.i_sb.s_fs_info).huge.value_())
    if huge == SHMEM_HUGE_ALWAYS:
        return True
    if huge == SHMEM_HUGE_WITHIN_SIZE:
        shift = page_shift(prog)
        nr = hpage_pmd_nr(prog)
        index = (int(vma_obj.vm_pgoff.value_()) + 1 + nr - 1) // nr * nr
        if -(-int(inode.i_size.value_()) >> shift) >= index:  # round_up(i_size, PAGE_SIZE) >> PAGE_SHIFT
            return True
        huge = SHMEM_HUGE_ADVISE
    return huge == SHMEM_HUGE_ADVISE and bool(vm_flags & bits.VM_HUGEPAGE)


def thp_vma_suitable_order(vma: VMA, addr: int, hsize: int, anonymous: bool, shift: int) -> bool:
    """
    ``thp_vma_suitable_order()`` (``transhuge_vma_suitable()`` before 6.8)
    for a huge page of *hsize* bytes: aligned to it, the page holding *addr*
    lies inside the VMA, and a file VMA's offset is aligned to it.

    As in Linux 7.2 ``include/linux/huge_mm.h``, the arithmetic is that of
    ``unsigned long``: for a VMA that ends below *hsize* (a low ``[heap]``
    with 16K pages' 32 MiB PMD), ``addr`` (``vm_end - hsize``) wraps, the
    aligned address is ``-hsize`` and its end wraps to 0, so the kernel
    finds the page suitable, and smaps says ``THPeligible: 1``.

    >>> thp_vma_suitable_order(vma, vma.vm_end - (2 << 20), 2 << 20, True, 12)  # doctest: +SKIP
    True

    :param vma: the VMA
    :param addr: an address, as the kernel computes it (may be negative:
        it is taken modulo 2**64)
    :param hsize: the huge page's size in bytes
    :param anonymous: ``vma_is_anonymous()`` (no file offset to align)
    :param shift: the target's ``PAGE_SHIFT``
    """
    if not anonymous and ((vma.vm_start >> shift) - vma.vm_pgoff) & ((hsize >> shift) - 1):
        return False
    haddr = addr & ULONG_MAX & ~(hsize - 1)
    return not (haddr < vma.vm_start or (haddr + hsize) & ULONG_MAX > vma.vm_end)


def _suitable_orders(vma: VMA, orders: int, anonymous: bool, shift: int) -> int:
    """
    ``thp_vma_suitable_orders()`` on the VMA's end: the highest order whose
    huge page :func:`thp_vma_suitable_order` finds suitable there, with
    every order below it.
    """
    while orders:
        order = orders.bit_length() - 1
        hsize = 1 << (shift + order)
        if thp_vma_suitable_order(vma, vma.vm_end - hsize, hsize, anonymous, shift):
            return orders
        orders &= ~(1 << order)
    return 0


def file_thp_enabled(vma_obj: Object) -> bool:
    """
    ``file_thp_enabled()`` (Linux 7.2 ``mm/huge_memory.c``): a regular file,
    not an anonymous inode, whose mapping allows PMD-sized folios
    (``AS_FOLIO_ORDER_MIN`` <= ``HPAGE_PMD_ORDER`` <= ``AS_FOLIO_ORDER_MAX`` fields of
    ``mapping->flags``).

    :param vma_obj: ``struct vm_area_struct *``
    """
    prog = vma_obj.prog_
    vm_file = vma_obj.vm_file.read_()
    if not int(vm_file.value_()):
        return False
    inode = vm_file.f_inode
    if int(inode.i_flags.value_()) & S_ANON_INODE:
        return False
    try:
        mflags = int(vm_file.f_mapping.flags.value_())
    except (TypeError, ValueError):
        return False
    nbits = _enum(prog, "AS_FOLIO_ORDER_BITS", 5)
    omin = _enum(prog, "AS_FOLIO_ORDER_MIN", 16)
    omax = _enum(prog, "AS_FOLIO_ORDER_MAX", omin + nbits)
    fmask = (1 << nbits) - 1
    if not ((mflags >> omin) & fmask <= hpage_pmd_order(prog) <= (mflags >> omax) & fmask):
        return False
    return int(inode.i_mode.value_()) & _S_IFMT == _S_IFREG


def vma_thp_disabled(mm: Object, vm_flags: int, bits: VMFlagBits) -> bool:
    """
    ``vma_thp_disabled()``: ``VM_NOHUGEPAGE``, or the mm's prctl
    (``PR_SET_THP_DISABLE``) flags.

    :param mm: ``struct mm_struct *``
    :param vm_flags: the VMA's flags
    :param bits: the target's VM flag bits
    """
    if vm_flags & bits.VM_NOHUGEPAGE:
        return True
    mmf = _mm_flags(mm)
    if mmf >> MMF_DISABLE_THP_COMPLETELY & 1:
        return True
    if vm_flags & bits.VM_HUGEPAGE:
        return False
    return bool(mmf >> MMF_DISABLE_THP_EXCEPT_ADVISED & 1)


def _mm_flags(mm: Object) -> int:
    """The first word of ``mm->flags`` (a bitmap since Linux 6.18)."""
    try:
        f = mm.flags
    except AttributeError:
        f = mm._flags
    try:
        return int(f.value_())
    except (TypeError, ValueError):
        pass
    for member in ("__mm_flags", "mm_flags"):
        try:
            return int(f.member_(member)[0].value_())
        except (LookupError, TypeError):
            continue
    return 0
