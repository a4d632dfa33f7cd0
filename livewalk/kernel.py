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

from drgn import FaultError, FindObjectFlags, Program, TypeKind

__all__ = (
    "DEBIAN_SUBLEVEL",
    "DEFAULT_VERSION",
    "KernelFeatures",
    "MM_WALK_CALLBACKS",
    "NotInKernelError",
    "WALK_ENTRY_POINTS",
    "banner_version",
    "parse_release",
)

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


#: The callbacks of ``struct mm_walk_ops``, in declaration order
#: (``include/linux/pagewalk.h`` of Linux 7.2; ``install_pte`` since Linux
#: 6.13).
MM_WALK_CALLBACKS = (
    "pgd_entry",
    "p4d_entry",
    "pud_entry",
    "pmd_entry",
    "pte_entry",
    "pte_hole",
    "hugetlb_entry",
    "test_walk",
    "pre_vma",
    "post_vma",
    "install_pte",
)

#: The entry points of ``mm/pagewalk.c`` whose presence differs between the
#: kernels livewalk supports (probed as symbols), with where they are found
#: (for the message of :class:`NotInKernelError`).
WALK_ENTRY_POINTS: dict[str, str] = {
    "walk_page_range_novma": "Linux 6.1 to 6.12.104; split into walk_kernel_page_table_range "
    "and walk_page_range_debug in 6.12.105",
    "walk_page_range_vma": "since 6.1.161",
    "walk_kernel_page_table_range": "since 6.12.105",
    "walk_page_range_debug": "since 6.12.105",
    "walk_kernel_page_table_range_lockless": "in 7.2, not in 6.12.117",
    "walk_page_range_mm_unsafe": "in 7.2 (mm/internal.h), not in 6.12.117",
    "walk_page_range_vma_unsafe": "in 7.2 (mm/internal.h), not in 6.12.117",
    "folio_walk_start": "since 6.12",
    "mm_walk_ops.install_pte": "in 7.2 (Linux 6.13 per the reference; not in 6.12.117)",
}

#: Debian's build of each series that livewalk was checked against: what
#: :meth:`KernelFeatures.for_version` takes a bare ``(major, minor)`` to be.
DEBIAN_SUBLEVEL: dict[tuple[int, int], int] = {(6, 1): 176, (6, 12): 117, (7, 2): 13}


class NotInKernelError(NotImplementedError):
    """
    An entry point, callback or flag that the target kernel does not have
    (the kernel could not even be built with a call to it), e.g.
    ``walk_page_range_debug: not in Linux 6.1 (since 6.12.105)``.

    :ivar name: what is missing
    """

    def __init__(self, name: str, kernel: str) -> None:
        where = WALK_ENTRY_POINTS.get(name)
        super().__init__(f"{name}: not in Linux {kernel}" + (f" ({where})" if where else ""))
        self.name = name


@dataclasses.dataclass(frozen=True, slots=True)
class KernelFeatures:
    """
    What the target kernel has, where kernels livewalk supports differ.
    "6.1", "6.12" and "7.2" below are Debian's 6.1.176, 6.12.117 and 7.2.13,
    whose sources were compared; a release named for a mainline change is
    the one the reference gives (not checked against mainline here).

    :ivar release: ``UTS_RELEASE`` (``None`` if unknown): a hint only
    :ivar version: ``(major, minor)`` from *release*, else
        :data:`DEFAULT_VERSION`
    :ivar sublevel: the stable release number from *release*, or from the
        banner where *release* carries a distribution's ABI number instead
        (:func:`banner_version`); ``None`` if unknown: then the newest shape
        of the series is assumed
    :ivar page_compound_info: ``struct page`` has ``compound_info`` (was
        ``compound_head``; Linux 7.1)
    :ivar folio_large_mapcount: ``struct folio`` has ``_large_mapcount``
        (Linux 6.9)
    :ivar folio_mm_ids: ``struct folio`` has ``_mm_ids`` (Linux 6.15)
    :ivar vma_flag_bit_enums: the ``VMA_*_BIT`` enumerators exist (Linux 6.19)
    :ivar zero_page_pfn: the zero page's PFN is ``zero_page_pfn`` (was
        ``zero_pfn``; Linux 7.1)
    :ivar mm_lock_seq: ``struct mm_struct`` has ``mm_lock_seq``
        (``CONFIG_PER_VMA_LOCK``: in 6.12, not in 6.1)
    :ivar walk_ops_install_pte: ``struct mm_walk_ops`` has ``install_pte``
        (in 7.2, not in 6.12): all levels are populated, ``check_ops_safe()``
        refuses it on the public entry points
    :ivar walk_lock: ``struct mm_walk_ops`` has ``walk_lock`` (in 6.12, not
        in 6.1): ``process_mm_walk_lock()``/``process_vma_walk_lock()``;
        without it nothing is validated
    :ivar walk_lock_vma_rdlock_verify: the enumerator
        ``PGWALK_VMA_RDLOCK_VERIFY`` exists (in 7.2, not in 6.12)
    :ivar walk_page_vma_tests: ``walk_page_vma()`` calls ``walk_page_test()``
        (6.1: ``test_walk`` honoured, ``VM_PFNMAP`` skipped; not in 6.12).
        No type shows it: probed as "``mm_walk_ops`` has no ``walk_lock``",
        which is exact for 6.1 against 6.12 and 7.2
    :ivar pte_map_may_fail: ``__pte_offset_map()`` exists (in 6.12, not in
        6.1): ``pte_offset_map(_lock)`` may fail, ``walk_pte_range()`` then
        sets ``ACTION_AGAIN`` and ``walk_pmd_range()`` retries the PMD (also
        after a ``pte_entry`` set ``ACTION_AGAIN``); without it (6.1) the PMD
        loop retries on ``pmd_trans_unstable()`` after the split and never
        looks at ``walk->action`` after ``walk_pte_range()``
    :ivar walk_pud_recheck: ``walk_pmd_range()`` sends a PUD that is not a
        table back to the PUD loop (``ACTION_AGAIN``), and the PUD loop
        retries after ``walk_pmd_range()`` returned ``ACTION_AGAIN``; without
        it the PUD loop retries on ``pud_none()`` after the split (6.1).
        Since 6.12.84 ("fix race between concurrent split and refault"):
        invisible to types, chosen by the release hint
    :ivar walk_action_at_again: ``walk_pud_range()``/``walk_pmd_range()``
        reset ``walk->action`` at ``again:``, before the none test; without
        it a hole sees the previous entry's action, which (with
        *walk_pud_recheck*) can send the PUD loop round again. Since
        6.12.115 ("fix stale walk->action escaping walk_pmd_range()"):
        chosen by the release hint
    :ivar walk_entry_points: the names of :data:`WALK_ENTRY_POINTS` (and
        ``walk_page_range``, ``walk_page_vma``, ``walk_page_mapping``) that
        exist as functions
    :ivar folio_walk: ``folio_walk_start()`` exists (Linux 6.12)
    :ivar fw_zeropage: ``FW_ZEROPAGE``: ``BIT(0)`` in 7.2, ``BIT(1)`` in 6.12
        (a ``#define``: chosen by the release hint; Linux 7.1 per the
        reference)
    :ivar fw_migration: ``FW_MIGRATION``: ``BIT(0)`` in 6.12, ``None`` in 7.2
    :ivar page_compound_mapcount: ``struct page`` has ``compound_mapcount``
        (6.1; gone in 6.2): a large folio's entire (PMD) mapcount lives in
        its second page (``folio->_total_mapcount``, despite the name), a
        page's mapcount is ``page_mapcount()`` of 6.1 ``mm/util.c`` (the
        entire mapcount added for anon and hugetlb pages, less one if
        ``PageDoubleMap``) and a folio's total is summed over its pages
    :ivar page_double_map: the ``PG_double_map`` enumerator exists (6.1;
        tested on the folio's second page)
    :ivar page_type_bits: page types are cleared bits below
        ``PAGE_TYPE_BASE`` (6.1) rather than ``enum pagetype``'s top byte
        (probed: no ``PGTY_buddy``); 6.1's ``page_mapcount()`` never tests
        for a page type
    :ivar hugetlb_compound_dtor: a hugetlb folio is known by
        ``page[1].compound_dtor == HUGETLB_PAGE_DTOR`` (6.1: the enumerator
        exists), not by a page type
    :ivar task_mmu_page_mapcount: ``fs/proc/task_mmu.c`` decides sharing
        with 6.1's ``page_mapcount()``: pagemap's exclusive bit on any
        non-migration entry with a page, one head-page value for a PMD, no
        ``hugetlb_pmd_shared()`` test for hugetlb; smaps' fast path for
        migration entries (counted private), the PMD page from
        ``follow_trans_huge_pmd(FOLL_DUMP)`` (a PROT_NONE PMD is not
        counted), hugetlb shared by ``page_mapcount() >= 2``. Probed as
        *page_compound_mapcount* (the same 6.1/6.2 boundary is not claimed:
        only 6.1 is modelled)
    :ivar smaps_ksm: smaps prints ``KSM:`` (``struct mem_size_stats`` has
        ``ksm``; not in 6.1)
    :ivar thp_hugepage_vma_check: ``THPeligible`` is
        ``hugepage_vma_check(vma, flags, smaps, !in_pf, enforce_sysfs)``
        printed with ``%d`` (6.1: the function exists), not
        ``thp_vma_allowable_orders()`` printed ``%8u``
    :ivar vm_lockonfault_mnemonic: ``VM_LOCKONFAULT`` prints ``lf`` (not in
        6.1, where it prints ``??``); chosen with *smaps_ksm*, which moved
        in the same range of releases on Debian's kernels
    :ivar vma_names_6_1: ``vma->anon_name`` shares a union with
        ``vma->shared`` (6.1: probed by their offsets), so only an
        anonymous VMA has a name (no ``[anon_shmem:...]``); 6.1's
        ``show_map_vma()`` also takes a VMA that touches ``[start_brk,
        brk]`` for the heap (later ``vma_is_initial_heap()`` wants an
        overlap)
    :ivar walk_ops_callbacks: the callback members of ``struct mm_walk_ops``
        as ``(name, byte offset)``, in declaration order (the BPF tracer reads
        the ops struct with them): 10 in 6.1 and 6.12, 11 with
        ``install_pte`` in 7.2; empty when not known (features built by hand)
    :ivar walk_ops_walk_lock_offset: byte offset of ``mm_walk_ops.walk_lock``
        (80 in 6.12, 88 in 7.2), ``None`` without it (6.1)
    :ivar pagemap_scan: ``pagemap_scan_ops`` exists: the ``PAGEMAP_SCAN``
        ioctl of ``/proc/PID/pagemap`` (Linux 6.7; not in 6.1)
    :ivar madvise_guard: ``guard_install_pte_entry()`` exists: the
        ``MADV_GUARD_INSTALL``/``MADV_GUARD_REMOVE`` guard regions (Linux
        6.13; not in 6.12)
    :ivar ptdump_check_wx: ``check_wx_open()`` exists: mm/ptdump.c's
        debugfs file ``check_wx_pages``, the one way user space makes the
        kernel walk its own tables without ``CONFIG_PTDUMP_DEBUGFS`` (in 6.12,
        not in 6.1, where ptdump walks only at boot)
    """

    release: str | None = None
    version: tuple[int, int] = DEFAULT_VERSION
    sublevel: int | None = None
    page_compound_info: bool = True
    folio_large_mapcount: bool = True
    folio_mm_ids: bool = True
    vma_flag_bit_enums: bool = True
    zero_page_pfn: bool = True
    mm_lock_seq: bool = True
    walk_ops_install_pte: bool = True
    walk_lock: bool = True
    walk_lock_vma_rdlock_verify: bool = True
    walk_page_vma_tests: bool = False
    pte_map_may_fail: bool = True
    walk_pud_recheck: bool = True
    walk_action_at_again: bool = True
    walk_entry_points: frozenset[str] = frozenset()
    folio_walk: bool = True
    fw_zeropage: int = 1 << 0
    fw_migration: int | None = None
    # page/folio and task_mmu (6.1)
    page_compound_mapcount: bool = False
    page_double_map: bool = False
    page_type_bits: bool = False
    hugetlb_compound_dtor: bool = False
    task_mmu_page_mapcount: bool = False
    smaps_ksm: bool = True
    thp_hugepage_vma_check: bool = False
    vm_lockonfault_mnemonic: bool = True
    vma_names_6_1: bool = False
    # BPF tracer / crosscheck
    walk_ops_callbacks: tuple[tuple[str, int], ...] = ()
    walk_ops_walk_lock_offset: int | None = None
    pagemap_scan: bool = True
    madvise_guard: bool = True
    ptdump_check_wx: bool = True

    @property
    def kernel(self) -> str:
        """The kernel, for messages: the release if known, else ``major.minor``."""
        if self.release:
            return self.release
        v = f"{self.version[0]}.{self.version[1]}"
        return v if self.sublevel is None else f"{v}.{self.sublevel}"

    def has_entry_point(self, name: str) -> bool:
        """Whether the function *name* of ``mm/pagewalk.c`` exists in the target."""
        return name in self.walk_entry_points

    def require(self, name: str) -> None:
        """
        :raises NotInKernelError: if *name* (an entry point, or
            ``mm_walk_ops.install_pte``) is not in the target kernel
        """
        if name == "mm_walk_ops.install_pte":
            if not self.walk_ops_install_pte:
                raise NotInKernelError(name, self.kernel)
        elif name == "folio_walk_start":
            if not self.folio_walk:
                raise NotInKernelError(name, self.kernel)
        elif name in WALK_ENTRY_POINTS and name not in self.walk_entry_points:
            raise NotInKernelError(name, self.kernel)

    @classmethod
    def for_version(cls, version: tuple[int, ...] = DEFAULT_VERSION) -> KernelFeatures:
        """
        The features of a Debian x86_64 kernel of *version* by release alone
        (for the synthetic backend and for tests; a real target is probed
        with :meth:`from_program`). *version* is ``(major, minor)`` (taken as
        Debian's build, :data:`DEBIAN_SUBLEVEL`, else the newest shape of the
        series) or ``(major, minor, sublevel)`` for a stable release.

        >>> f = KernelFeatures.for_version((6, 12, 104))
        >>> f.walk_pud_recheck, f.walk_action_at_again, f.has_entry_point("walk_page_range_debug")
        (True, False, False)
        """
        v = (version[0], version[1])
        sub = version[2] if len(version) > 2 else DEBIAN_SUBLEVEL.get(v)
        new_fw = v >= (7, 1)
        split_api = _stable(v, sub, (6, 12), 105, (6, 13))
        seven = v >= (7, 0)
        ops_layout = _walk_ops_layout_of(v >= (6, 13), v >= (6, 5))  # BPF tracer / crosscheck
        entry = {"walk_page_range", "walk_page_vma", "walk_page_mapping"}
        if _stable(v, sub, (6, 1), 161, (6, 2)):
            entry.add("walk_page_range_vma")
        if split_api:
            entry |= {"walk_kernel_page_table_range", "walk_page_range_debug"}
        else:
            entry.add("walk_page_range_novma")
        if seven:
            entry |= {
                "walk_kernel_page_table_range_lockless",
                "walk_page_range_mm_unsafe",
                "walk_page_range_vma_unsafe",
            }
        return cls(
            release=None,
            version=v,
            sublevel=sub,
            page_compound_info=v >= (7, 1),
            folio_large_mapcount=v >= (6, 9),
            folio_mm_ids=v >= (6, 15),
            vma_flag_bit_enums=v >= (6, 19),
            zero_page_pfn=v >= (7, 1),
            mm_lock_seq=v >= (6, 4),
            walk_ops_install_pte=v >= (6, 13),
            walk_lock=v >= (6, 5),
            walk_lock_vma_rdlock_verify=seven,
            walk_page_vma_tests=v < (6, 5),
            pte_map_may_fail=v >= (6, 5),
            walk_pud_recheck=_stable(v, sub, (6, 12), 84, (6, 13)),
            walk_action_at_again=_stable(v, sub, (6, 12), 115, (6, 13)),
            walk_entry_points=frozenset(entry),
            folio_walk=v >= (6, 12),
            fw_zeropage=1 << 0 if new_fw else 1 << 1,
            fw_migration=None if new_fw else 1 << 0,
            # page/folio and task_mmu (6.1)
            page_compound_mapcount=v < (6, 2),
            page_double_map=v < (6, 2),
            page_type_bits=v < (6, 9),
            hugetlb_compound_dtor=v < (6, 6),
            task_mmu_page_mapcount=v < (6, 2),
            smaps_ksm=v >= (6, 2),
            thp_hugepage_vma_check=v < (6, 8),
            vm_lockonfault_mnemonic=v >= (6, 2),
            vma_names_6_1=v < (6, 2),
            # BPF tracer / crosscheck
            walk_ops_callbacks=ops_layout[0],
            walk_ops_walk_lock_offset=ops_layout[1],
            pagemap_scan=v >= (6, 7),
            madvise_guard=v >= (6, 13),
            ptdump_check_wx=v >= (6, 12),
        )

    @classmethod
    def from_program(cls, prog: Program) -> KernelFeatures:
        """
        Probe *prog*'s debug info. What cannot be probed (a ``#define``, a
        change of control flow inside a function) comes from the release; a
        kernel whose release cannot be read is taken to be
        :data:`DEFAULT_VERSION` there.
        """
        release = _release(prog)
        full = _parse_full(release) if release else None
        if full is not None and len(full) == 3 and full[2] == 0:
            # Debian names a stable kernel by its ABI ("6.1.0-56"): the
            # sublevel is in the banner
            upstream = _banner_version(prog)
            if upstream is not None and upstream[:2] == full[:2]:
                full = upstream
        hint = cls.for_version(full or DEFAULT_VERSION)
        walk_lock = _has_member(prog, "struct mm_walk_ops", "walk_lock")
        pte_map_may_fail = _has_function(prog, "__pte_offset_map")
        ops_layout = _walk_ops_layout(prog)  # BPF tracer / crosscheck
        entry = frozenset(
            name
            for name in (*WALK_ENTRY_POINTS, "walk_page_range", "walk_page_vma", "walk_page_mapping")
            if "." not in name and name != "folio_walk_start" and _has_function(prog, name)
        )
        probed = dataclasses.replace(
            hint,
            release=release,
            page_compound_info=_has_member(prog, "struct page", "compound_info"),
            folio_large_mapcount=_has_member(prog, "struct folio", "_large_mapcount"),
            folio_mm_ids=_has_member(prog, "struct folio", "_mm_ids"),
            vma_flag_bit_enums=_has_constant(prog, "VMA_READ_BIT"),
            zero_page_pfn=_has_variable(prog, "zero_page_pfn"),
            mm_lock_seq=_has_member(prog, "struct mm_struct", "mm_lock_seq"),
            walk_ops_install_pte=_has_member(prog, "struct mm_walk_ops", "install_pte"),
            walk_lock=walk_lock,
            walk_lock_vma_rdlock_verify=_has_constant(prog, "PGWALK_VMA_RDLOCK_VERIFY"),
            walk_page_vma_tests=not walk_lock,
            pte_map_may_fail=pte_map_may_fail,
            # only the release can tell these two; the probes bound them: the
            # PUD re-check (6.12.84) came long after pte_offset_map() could
            # fail (6.5), and the stale-action fix (6.12.115) after the split
            # API (6.12.105)
            walk_pud_recheck=hint.walk_pud_recheck and pte_map_may_fail,
            walk_action_at_again=hint.walk_action_at_again
            and pte_map_may_fail
            and "walk_page_range_novma" not in entry,
            walk_entry_points=entry,
            folio_walk=_has_function(prog, "folio_walk_start"),
            # BPF tracer / crosscheck
            walk_ops_callbacks=ops_layout[0],
            walk_ops_walk_lock_offset=ops_layout[1],
            pagemap_scan=_has_variable(prog, "pagemap_scan_ops"),
            madvise_guard=_has_function(prog, "guard_install_pte_entry"),
            ptdump_check_wx=_has_function(prog, "check_wx_open"),
        )
        return _probe_page_features(prog, probed)


def _probe_page_features(prog: Program, hint: KernelFeatures) -> KernelFeatures:
    """*hint* with the fields of the ``# page/folio and task_mmu (6.1)`` block probed."""
    compound_mapcount = _has_member(prog, "struct page", "compound_mapcount")
    try:
        # local to fs/proc/task_mmu.c but named, so in its debug info
        ksm = prog.type("struct mem_size_stats").has_member("ksm")
    except LookupError:
        ksm = hint.smaps_ksm
    return dataclasses.replace(
        hint,
        page_compound_mapcount=compound_mapcount,
        page_double_map=_has_constant(prog, "PG_double_map"),
        page_type_bits=not _has_constant(prog, "PGTY_buddy"),
        hugetlb_compound_dtor=_has_constant(prog, "HUGETLB_PAGE_DTOR"),
        task_mmu_page_mapcount=compound_mapcount,
        smaps_ksm=ksm,
        thp_hugepage_vma_check=_has_function(prog, "hugepage_vma_check"),
        vm_lockonfault_mnemonic=ksm,
        vma_names_6_1=_same_offset(prog, "struct vm_area_struct", "anon_name", "shared"),
    )


def _same_offset(prog: Program, type_name: str, a: str, b: str) -> bool:
    try:
        t = prog.type(type_name)
        return t.member(a).offset == t.member(b).offset
    except LookupError:
        return False


# BPF tracer / crosscheck
#: ``(callbacks as (name, offset), walk_lock offset)`` of ``struct mm_walk_ops``
_WalkOpsLayout = tuple[tuple[tuple[str, int], ...], int | None]


def _walk_ops_layout_of(install_pte: bool, walk_lock: bool) -> _WalkOpsLayout:
    """
    The ``struct mm_walk_ops`` layout of a kernel known by version only: the
    callbacks of ``MM_WALK_CALLBACKS`` it has, one pointer each, then
    ``walk_lock`` (x86_64).
    """
    names = [n for n in MM_WALK_CALLBACKS if install_pte or n != "install_pte"]
    return tuple((n, 8 * i) for i, n in enumerate(names)), (8 * len(names) if walk_lock else None)


def _walk_ops_layout(prog: Program) -> _WalkOpsLayout:
    """
    The ``struct mm_walk_ops`` layout of *prog* from its debug info: every
    member that is a pointer to a function, with its byte offset, and where
    ``walk_lock`` is.
    """
    try:
        t = prog.type("struct mm_walk_ops")
    except LookupError:
        return (), None
    callbacks = []
    lock = None
    for m in t.members or ():
        mt = m.type
        while mt.kind == TypeKind.TYPEDEF:
            mt = mt.type
        if m.name == "walk_lock":
            lock = m.bit_offset // 8
        elif mt.kind == TypeKind.POINTER and mt.type.kind == TypeKind.FUNCTION and m.name:
            callbacks.append((m.name, m.bit_offset // 8))
    return tuple(callbacks), lock


def _stable(
    v: tuple[int, int], sub: int | None, series: tuple[int, int], fixed: int, mainline: tuple[int, int]
) -> bool:
    """
    Whether a change that stable *series* took at sublevel *fixed* is in
    kernel *v*.*sub*: later series are taken to have it from *mainline* on
    (an unknown sublevel is taken to be the newest).
    """
    if v == series:
        return sub is None or sub >= fixed
    return v >= mainline


def _parse_full(release: str) -> tuple[int, int, int] | tuple[int, int] | None:
    """``(major, minor, sublevel)`` (or ``(major, minor)``) of a release string."""
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not m:
        return None
    if m.group(3) is None:
        return (int(m.group(1)), int(m.group(2)))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)))


def banner_version(banner: str) -> tuple[int, int, int] | None:
    """
    The upstream ``(major, minor, sublevel)`` that a distribution's
    ``linux_banner`` names when its release string carries an ABI number
    instead (Debian: ``6.1.0-56-cloud-amd64`` is ``Debian 6.1.192-1``).

    >>> banner_version("Linux version 6.1.0-56-cloud-amd64 (debian-kernel@lists.debian.org) "
    ...                "(gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 SMP PREEMPT_DYNAMIC "
    ...                "Debian 6.1.192-1 (2026-10-21)")
    (6, 1, 192)
    >>> banner_version("Linux version 7.2.13-custom (dev@box) #3 SMP") is None
    True
    """
    m = re.search(r"#\S+ .*\bDebian (\d+)\.(\d+)\.(\d+)", banner)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None


def _banner_version(prog: Program) -> tuple[int, int, int] | None:
    try:
        return banner_version(prog["linux_banner"].string_().decode(errors="replace"))
    except (LookupError, ValueError, FaultError):
        return None


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
