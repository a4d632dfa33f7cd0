# SPDX-License-Identifier: LGPL-2.1-or-later
"""
smaps
-----

``/proc/PID/smaps`` recomputed from page tables and ``struct page`` state, as
Linux 7.2 ``fs/proc/task_mmu.c`` computes it: an ordinary walker user with
the kernel's smaps ops (``pmd_entry`` = ``smaps_pte_range``,
``hugetlb_entry`` = ``smaps_hugetlb_range`` and, for private writable shmem
VMAs with swapped pages, ``pte_hole`` = ``smaps_pte_hole``), one
:func:`~livewalk.mm.pagewalk.walk_page_vma` per VMA, the gate VMA shown but not
walked. Linux 6.1's differences (no ``KSM:`` line, ``THPeligible`` as
``%d`` from ``hugepage_vma_check()``, ``page_mapcount()``, the migration
fast path, ``follow_trans_huge_pmd()``) are chosen by
:class:`~livewalk.kernel.KernelFeatures`.

>>> vmas = smaps(mm)  # doctest: +SKIP
>>> print(format_smaps(vmas))  # doctest: +SKIP
55d4c8a2e000-55d4c8a30000 r--p 00000000 fe:01 1234    /usr/bin/cat
Size:                  8 kB
...

PSS-like sums are kept in the kernel's fixed point (2^-12 bytes, truncated
per page at division time) and printed with the kernel's two-step floor.

A ``struct page`` that cannot be read (a dump without that part of
``mem_map``) leaves unknown exactly the sums its state decides: they are
marked in :attr:`SmapsVMA.not_in_dump` and printed ``(not in dump)``, the
page recorded in ``walk.errors``
(:data:`~livewalk.mm.overlay.PAGE_UNREADABLE`); what the entry alone
decides (``Rss``, ``Swap``, ``Referenced`` of a young entry...) stays exact.

The architecture comes in through the arch seam only
(:class:`~livewalk.arch.ArchPaging`: the entries' predicates, the page and
PMD sizes, ``ptep_get()`` of arm64's CONTPTE blocks); ``VmFlags`` and
``ProtectionKey`` follow the target's architecture and configuration.

Checked equal to the kernel's text, field for field, in the test VMs
(x86_64 and arm64, both paging modes each, drgn on ``/proc/kcore`` and over
QMP): see ``tests/vm/test_vm_smaps.py`` and ``tests/vm/test_vm_arm64_smaps.py``. What cannot be exact, and why:

* **The observer.** Pss and the Shared/Private split count the processes
  mapping a page *at read time*; a ``cat`` of ``/proc/PID/smaps`` maps libc
  and locale files itself, so its numbers for those VMAs differ from a
  reading taken while it does not run. Compare with a reader that exists
  during both readings (the tests do).
* **A running target.** The kernel reads under the VMA and page-table
  locks; livewalk reads a live kernel without them (a transient page
  reference, e.g. during LRU isolation or migration, can move a page
  between the ``_refcount == 1`` and mapcount paths).
* **Not modelled** (never seen in the test VM): ``vm_ops->name`` hooks of
  drivers (printed as ``[<function>?]``; special mappings such as
  ``[vdso]``/``[vvar]`` and ``[vsyscall]`` are exact); ``d_dname`` of
  pseudo files other than ``simple_dname``, anon inodes, pipes and sockets;
  paths are resolved from the initial root (a reader in another mount
  namespace or chroot sees other paths); device-DAX ``->pagesize`` and DAX
  THP rules; Xen's ``find_normal_page``; ``pfn_valid`` for VM_MIXEDMAP
  (approximated by ``highest_memmap_pfn``); the swap device's percpu
  liveness (``SWP_USED`` stands for it); kernels built with
  ``CONFIG_NO_PAGE_MAPCOUNT`` (the average-mapcount path).
* **Not exercised in the VM** (written from the 7.2 source): device-private,
  device-exclusive, migration and hwpoison entries, hugetlb PMD sharing,
  the swap-table ``extend_table`` overflow.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from drgn import Architecture, FaultError, Object, Program, sizeof

from livewalk.arch import ArchPaging, PageTableLevel
from livewalk.backend import TableReadError, backend_for_mm
from livewalk.kernel import KernelFeatures
from livewalk.mm.entry import Entry
from livewalk.mm.huge_memory import thp_eligible
from livewalk.mm.overlay import PAGE_UNREADABLE
from livewalk.mm.page import PAGE_MAPPING_ANON, PAGE_MAPPING_KSM, PageInfo, PageReader
from livewalk.mm.pagewalk import MMWalk, MMWalkOps, PageWalkAction, PageWalkLock, walk_page_vma
from livewalk.mm.shmem import ShmemSwap, shmem_mapping, shmem_swap_usage
from livewalk.mm.swapfile import SwapTables
from livewalk.mm.vma import VMA, VMFlagBits
from livewalk.proc.maps import vm_flags_mnemonics, vma_header
from livewalk.progress import Progress

__all__ = (
    "SMAPS_FIELDS",
    "SmapsVMA",
    "format_smaps",
    "format_smaps_rollup",
    "smaps",
    "smaps_dicts",
)

#: ``PSS_SHIFT``: Pss sums are kept in 2^-12 byte fixed point.
PSS_SHIFT = 12

#: ``/proc/PID/smaps`` fields in print order after ``MMUPageSize`` with the
#: attribute of :class:`SmapsVMA` that holds them and the shift applied
#: before ``>> 10`` (``PSS_SHIFT`` for fixed-point sums).
SMAPS_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("Rss", "resident", 0),
    ("Pss", "pss", PSS_SHIFT),
    ("Pss_Dirty", "pss_dirty", PSS_SHIFT),
    ("Shared_Clean", "shared_clean", 0),
    ("Shared_Dirty", "shared_dirty", 0),
    ("Private_Clean", "private_clean", 0),
    ("Private_Dirty", "private_dirty", 0),
    ("Referenced", "referenced", 0),
    ("Anonymous", "anonymous", 0),
    ("KSM", "ksm", 0),
    ("LazyFree", "lazyfree", 0),
    ("AnonHugePages", "anonymous_thp", 0),
    ("ShmemPmdMapped", "shmem_thp", 0),
    ("FilePmdMapped", "file_thp", 0),
    ("Shared_Hugetlb", "shared_hugetlb", 0),
    ("Private_Hugetlb", "private_hugetlb", 0),
    ("Swap", "swap", 0),
    ("SwapPss", "swap_pss", PSS_SHIFT),
    ("Locked", "pss_locked", PSS_SHIFT),
)

@dataclasses.dataclass
class SmapsVMA:
    """
    One VMA of ``/proc/PID/smaps``: the ``struct mem_size_stats`` sums (in
    bytes; ``pss*`` and ``swap_pss`` in 2^-12 byte fixed point) and what the
    header and trailer lines print.

    :ivar header: the maps line (without the newline)
    :ivar kernel_page_size: ``KernelPageSize`` in bytes (``PAGE_SIZE`` or
        the hugetlb size; set by :func:`smaps`)
    :ivar thp_eligible: ``THPeligible`` (see :func:`~livewalk.mm.huge_memory.thp_eligible`)
    :ivar protection_key: ``ProtectionKey``, or ``None`` when the line is
        not printed (no ``X86_FEATURE_OSPKE``)
    :ivar show_ksm: the kernel prints ``KSM:`` (not Linux 6.1)
    :ivar thp_eligible_padded: ``THPeligible`` is printed ``%8u``; Linux 6.1
        prints ``%d``
    :ivar not_in_dump: the sums (attribute names) that a ``struct page``
        not in the dump would have decided: unknown, printed ``(not in
        dump)`` (the others are exact)
    """

    vm_start: int
    vm_end: int
    vm_flags: int
    header: str
    kernel_page_size: int = 0
    mmu_page_size: int = 0
    resident: int = 0
    shared_clean: int = 0
    shared_dirty: int = 0
    private_clean: int = 0
    private_dirty: int = 0
    referenced: int = 0
    anonymous: int = 0
    lazyfree: int = 0
    anonymous_thp: int = 0
    shmem_thp: int = 0
    file_thp: int = 0
    swap: int = 0
    shared_hugetlb: int = 0
    private_hugetlb: int = 0
    ksm: int = 0
    pss: int = 0
    pss_anon: int = 0
    pss_file: int = 0
    pss_shmem: int = 0
    pss_dirty: int = 0
    pss_locked: int = 0
    swap_pss: int = 0
    thp_eligible: int = 0
    protection_key: int | None = None
    vm_flags_text: str = ""
    show_ksm: bool = True
    thp_eligible_padded: bool = True
    not_in_dump: set[str] = dataclasses.field(default_factory=set)

    @property
    def size(self) -> int:
        """``Size``: ``vm_end - vm_start``."""
        return self.vm_end - self.vm_start

    def fields_kb(self) -> dict[str, int | None]:
        """
        Every numeric line as the kernel prints it (kB, or the plain
        number); ``None`` for a field :attr:`not_in_dump`.
        """
        out: dict[str, int | None] = {
            "Size": self.size >> 10,
            "KernelPageSize": self.kernel_page_size >> 10,
            "MMUPageSize": self.mmu_page_size >> 10,
        }
        for label, attr, shift in SMAPS_FIELDS:
            if label == "KSM" and not self.show_ksm:
                continue
            out[label] = None if attr in self.not_in_dump else (getattr(self, attr) >> shift) >> 10
        out["THPeligible"] = self.thp_eligible
        if self.protection_key is not None:
            out["ProtectionKey"] = self.protection_key
        return out

    def as_dict(self) -> dict[str, Any]:
        """
        A JSON-able form: header, kB fields, VmFlags and the raw sums;
        ``fields_not_in_dump`` names the fields :attr:`not_in_dump` (their
        values are ``null``).
        """
        unknown = self.not_in_dump
        d: dict[str, Any] = {
            "start": self.vm_start,
            "end": self.vm_end,
            "header": self.header,
            "fields_kb": self.fields_kb(),
            "fields_not_in_dump": [label for label, attr, _ in SMAPS_FIELDS if attr in unknown],
            "vm_flags": self.vm_flags_text.split(),
            "raw": {
                f.name: None if f.name in unknown else getattr(self, f.name)
                for f in dataclasses.fields(self)
                if f.name
                not in ("header", "vm_flags_text", "vm_start", "vm_end", "show_ksm", "thp_eligible_padded",
                        "not_in_dump")
            },
        }
        return d

    def format(self) -> str:
        """This VMA's text in ``/proc/PID/smaps``."""
        lines = [self.header]
        lines.append(_kb("Size:           ", self.size))
        lines.append(_kb("KernelPageSize: ", self.kernel_page_size))
        lines.append(_kb("MMUPageSize:    ", self.mmu_page_size))
        for label, attr, shift in SMAPS_FIELDS:
            if label == "KSM" and not self.show_ksm:
                continue
            value = getattr(self, attr) >> shift
            if attr in self.not_in_dump:
                lines.append(_not_in_dump(label))
            elif label == "Private_Hugetlb":
                lines.append(f"Private_Hugetlb: {value >> 10:>7} kB")
            else:
                lines.append(_kb(f"{label + ':':<16}", value))
        if self.thp_eligible_padded:
            lines.append(f"THPeligible:    {self.thp_eligible:>8}")
        else:
            lines.append(f"THPeligible:    {self.thp_eligible}")
        if self.protection_key is not None:
            lines.append(f"ProtectionKey:  {self.protection_key:>8}")
        lines.append("VmFlags: " + self.vm_flags_text)
        return "\n".join(lines) + "\n"


def _kb(label: str, value: int) -> str:
    # SEQ_PUT_DEC: value >> 10, right-aligned in 8 columns.
    return f"{label}{value >> 10:>8} kB"


def _not_in_dump(label: str) -> str:
    """The line of a field whose value a ``struct page`` not in the dump decides."""
    return f"{label + ':':<15} (not in dump)"


def format_smaps(vmas: list[SmapsVMA]) -> str:
    """The exact text of ``/proc/PID/smaps`` for :func:`smaps`' result."""
    return "".join(v.format() for v in vmas)


#: ``/proc/PID/smaps_rollup``'s Pss split, printed after ``Pss_Dirty``.
_ROLLUP_PSS = (("Pss_Anon", "pss_anon"), ("Pss_File", "pss_file"), ("Pss_Shmem", "pss_shmem"))


def format_smaps_rollup(vmas: list[SmapsVMA]) -> str:
    """
    The exact text of ``/proc/PID/smaps_rollup`` from :func:`smaps`' result:
    the sums over the mm's VMAs (not the gate VMA, which smaps_rollup does
    not visit), Pss summed in fixed point before the shift, as in Linux 7.2
    fs/proc/task_mmu.c ``show_smaps_rollup``.
    """
    mine = [v for v in vmas if v.vm_start < 1 << 63]
    if not mine:
        return ""
    total = SmapsVMA(mine[0].vm_start, mine[-1].vm_end, 0, "")
    for v in mine:
        for f in dataclasses.fields(SmapsVMA):
            if f.name.startswith(("pss", "swap_pss")) or f.name in {a for _, a, _ in SMAPS_FIELDS}:
                setattr(total, f.name, getattr(total, f.name) + getattr(v, f.name))
        total.not_in_dump |= v.not_in_dump

    def line(label: str, attr: str, shift: int) -> str:
        if attr in total.not_in_dump:
            return _not_in_dump(label)
        return _kb(f"{label + ':':<16}", getattr(total, attr) >> shift)

    # The header is padded to column 72 (25 + 6 * sizeof(void *) - 1), then a space.
    head = f"{total.vm_start:08x}-{total.vm_end:08x} ---p 00000000 00:00 0 "
    lines = [f"{head:<72} [rollup]"]
    for label, attr, shift in SMAPS_FIELDS:
        if label == "KSM" and not mine[0].show_ksm:
            continue
        lines.append(line(label, attr, shift))
        if label == "Pss_Dirty":
            lines += [line(name, a, PSS_SHIFT) for name, a in _ROLLUP_PSS]
    return "\n".join(lines) + "\n"


def smaps_dicts(vmas: list[SmapsVMA]) -> list[dict[str, Any]]:
    """
    :meth:`SmapsVMA.as_dict` of each VMA: the data of ``livewalk smaps
    --json``, serialized by the caller.
    """
    return [v.as_dict() for v in vmas]


# ---------------------------------------------------------------------------
# Accounting (smaps_account / smaps_page_accumulate)
# ---------------------------------------------------------------------------
class _Stats:
    """``struct mem_size_stats`` plus what the callbacks need per walk."""

    #: the walk, for :func:`_unreadable` (set by the callbacks)
    walk: MMWalk | None = None

    def __init__(
        self,
        out: SmapsVMA,
        reader: PageReader,
        swap: SwapTables,
        shmem: ShmemSwap,
        vma: VMA,
        bits: VMFlagBits,
        paging: ArchPaging,
    ) -> None:
        self.out = out
        self.r = reader
        self.swap = swap
        self.shmem = shmem
        self.vma = vma
        self.bits = bits
        self.locked = bool(vma.vm_flags & bits.VM_LOCKED)
        ks = reader.ks
        self.pg_dirty = ks.pg_dirty
        self.pg_swapbacked = ks.pg_swapbacked
        self.pg_referenced = ks.pg_referenced
        self.pg_young = ks.pg_young
        self.shmem_mapping_addr = 0
        self.paging = paging
        #: Linux 6.1's rules (page_mapcount(), the migration fast path,
        #: follow_trans_huge_pmd()): see KernelFeatures.task_mmu_page_mapcount
        self.page_mapcount_rules = False

    # The target's geometry, from its paging (4K, 16K or 64K pages).
    @property
    def page_shift(self) -> int:
        """``PAGE_SHIFT``."""
        return self.paging.page_shift

    @property
    def page_size(self) -> int:
        """``PAGE_SIZE``."""
        return self.paging.page_size

    @property
    def pmd_size(self) -> int:
        """``PMD_SIZE`` (``HPAGE_PMD_SIZE``): 2 MiB with 4K pages, 32 MiB with 16K."""
        return 1 << self.paging.level_shift(PageTableLevel.PMD)


# -- what a struct page not in the dump leaves unknown ---------------------------
#
# A struct page that cannot be read (a dump without that part of mem_map)
# leaves unknown exactly the sums it decides: each amount below goes to one
# of a few fields, and when the page's state would choose which (or how
# much), every candidate is marked not in dump (SmapsVMA.not_in_dump)
# instead of guessing. What the entry alone decides stays exact: Rss,
# Referenced of a young entry, the dirty side of a dirty entry, the whole
# page of a non-present entry, Swap and SwapPss.


def _unreadable(st: _Stats, level: int, addr: int, pfn: int) -> None:
    """Record that the ``struct page`` of *pfn*, mapped at *addr*, is not readable."""
    if st.walk is not None:
        st.walk.overlay.error(level, addr, pfn, PAGE_UNREADABLE)


def _page_info(st: _Stats, pfn: int, level: int, addr: int) -> PageInfo | None:
    """``page_folio()`` and the folio's state, or ``None`` (recorded) if the ``struct page`` is not readable."""
    try:
        return st.r.info(pfn)
    except FaultError:
        _unreadable(st, level, addr, pfn)
        return None


def _credit(o: SmapsVMA, attrs: tuple[str | None, ...], amount: int | None) -> None:
    """
    *amount* (``None``: unknown) goes to one of *attrs* (``None`` for "to
    none of them"): added when the field and the amount are known, else
    every candidate field is marked :attr:`~SmapsVMA.not_in_dump`.
    """
    if amount is not None and len(attrs) == 1:
        a = attrs[0]
        if a is not None:
            setattr(o, a, getattr(o, a) + amount)
        return
    o.not_in_dump.update(a for a in attrs if a is not None)


def _accumulate(
    st: _Stats, pi: PageInfo | None, size: int, pss: int | None, dirty: bool, private: bool | None
) -> None:
    """
    ``smaps_page_accumulate()``. *pi* (the folio), *pss* and *private* are
    ``None`` when a ``struct page`` not in the dump would have decided them.
    """
    o = st.out
    if pi is None or pss is None or private is None:
        _accumulate_unknown(st, pi, size, pss, dirty, private)
        return
    o.pss += pss
    if pi.mapping & PAGE_MAPPING_ANON:
        o.pss_anon += pss
    elif pi.flags >> st.pg_swapbacked & 1:
        o.pss_shmem += pss
    else:
        o.pss_file += pss
    if st.locked:
        o.pss_locked += pss
    if dirty or pi.flags >> st.pg_dirty & 1:
        o.pss_dirty += pss
        if private:
            o.private_dirty += size
        else:
            o.shared_dirty += size
    else:
        if private:
            o.private_clean += size
        else:
            o.shared_clean += size


def _accumulate_unknown(
    st: _Stats, pi: PageInfo | None, size: int, pss: int | None, dirty: bool, private: bool | None
) -> None:
    """:func:`_accumulate` when something in it is unknown: the same choices, each one left open."""
    o = st.out
    _credit(o, ("pss",), pss)
    if pi is None:
        kinds: tuple[str | None, ...] = ("pss_anon", "pss_shmem", "pss_file")
    elif pi.mapping & PAGE_MAPPING_ANON:
        kinds = ("pss_anon",)
    else:
        kinds = ("pss_shmem",) if pi.flags >> st.pg_swapbacked & 1 else ("pss_file",)
    _credit(o, kinds, pss)
    if st.locked:
        _credit(o, ("pss_locked",), pss)
    # dirty || folio_test_dirty(folio): unknown only without the folio and a clean entry
    sides: tuple[bool, ...]
    if dirty or (pi is not None and pi.flags >> st.pg_dirty & 1):
        sides = (True,)
    elif pi is not None:
        sides = (False,)
    else:
        sides = (True, False)
    if True in sides:
        _credit(o, ("pss_dirty",) if len(sides) == 1 else ("pss_dirty", None), pss)
    privs = (True, False) if private is None else (private,)
    _credit(o, tuple(f"{'private' if p else 'shared'}_{'dirty' if d else 'clean'}" for d in sides for p in privs), size)


def _account(
    st: _Stats,
    pi: PageInfo | None,
    pfn: int,
    addr: int,
    compound: bool,
    young: bool,
    dirty: bool,
    present: bool,
    migration: bool = False,
) -> None:
    """
    ``smaps_account()`` (Linux 7.2 ``fs/proc/task_mmu.c``), CONFIG_PAGE_MAPCOUNT,
    for page *pfn* mapped at *addr* whose folio is *pi* (``None``: its
    ``struct page`` is not in the dump; what it decides is marked unknown).
    On Linux 6.1 the whole size is private when ``page_count() == 1`` or
    the entry is a migration entry (*migration*; *present* is not looked
    at), and the per-page count is 6.1's ``page_mapcount()``.
    """
    r = st.r
    o = st.out
    if pi is None:
        # compound_nr(page) of a PMD mapping: a PMD maps only a PMD-order
        # folio (no THP is larger: HPAGE_PMD_ORDER bounds anonymous and page
        # cache folios), at its head
        size = st.pmd_size if compound else st.page_size
        _credit(o, ("anonymous", None), size)
        if not dirty:
            _credit(o, ("lazyfree", None), size)
        _credit(o, ("ksm", None), size)
        o.resident += size
        _credit(o, ("referenced",) if young else ("referenced", None), size)
    else:
        # compound_nr(page): 1 unless *this page* carries PG_head.
        nr = pi.nr_pages if (compound and pi.large and pi.head_pfn == pfn) else 1
        size = nr * st.page_size
        flags = pi.flags
        if pi.mapping & PAGE_MAPPING_ANON:
            o.anonymous += size
            if not (flags >> st.pg_swapbacked & 1) and not dirty and not (flags >> st.pg_dirty & 1):
                o.lazyfree += size
        if pi.mapping & PAGE_MAPPING_KSM == PAGE_MAPPING_KSM:
            o.ksm += size
        o.resident += size
        if (
            young
            or (st.pg_young is not None and flags >> st.pg_young & 1)
            or flags >> st.pg_referenced & 1
        ):
            o.referenced += size
    if st.page_mapcount_rules:
        if migration or (pi is not None and pi.refcount == 1):
            _accumulate(st, pi, size, size << PSS_SHIFT, dirty, True)
            return
    elif not present or (pi is not None and pi.refcount == 1):
        _accumulate(st, pi, size, size << PSS_SHIFT, dirty, present)
        return
    if pi is None:  # the refcount and the mapcounts are unknown
        _accumulate(st, None, size, None, dirty, None)
        return
    page_size = st.page_size
    for i in range(nr):
        try:
            mc = r.precise_mapcount(pi, pfn + i)
        except FaultError:  # this page's struct page (of a large folio) is not in the dump
            _unreadable(st, PageTableLevel.PTE, addr + i * page_size, pfn + i)
            _accumulate(st, pi, page_size, None, dirty, None)
            continue
        pss = page_size << PSS_SHIFT
        if mc >= 2:
            pss //= mc
        _accumulate(st, pi, page_size, pss, dirty, mc < 2)


# ---------------------------------------------------------------------------
# Walk callbacks
# ---------------------------------------------------------------------------
def _linear_page_index(vma: VMA, addr: int, page_shift: int) -> int:
    return ((addr - vma.vm_start) >> page_shift) + vma.vm_pgoff


def _shmem_hole(st: _Stats, addr: int, end: int) -> None:
    vma = st.vma
    shift = st.page_shift
    st.out.swap += st.shmem.partial_swap_usage(
        st.shmem_mapping_addr, _linear_page_index(vma, addr, shift), _linear_page_index(vma, end, shift)
    )


def _smaps_pte_hole(addr: int, end: int, depth: int, walk: MMWalk) -> int:
    """``smaps_pte_hole()``: shmem swap of the hole's file range (depth unused)."""
    _shmem_hole(walk.private, addr, end)
    return 0


def _normal_pfn(st: _Stats, pfn: int, special: bool, addr: int) -> bool:
    """``vm_normal_page()`` of an entry whose ``pte_special()``/``pmd_special()`` is *special*."""
    vma = st.vma
    return st.r.normal_pfn(pfn, special, vma.vm_flags, vma.vm_start, vma.vm_pgoff, addr, st.bits)


def _smaps_pte_entry(st: _Stats, v: int, addr: int, has_hole_op: bool) -> None:
    """
    ``smaps_pte_entry()`` on the value ``ptep_get()`` returns (on arm64 with
    CONTPTE, young and dirty gathered over the entry's contiguous block).
    """
    paging = st.paging
    if paging.pte_present(v):
        pfn = paging.pte_pfn(v)
        if _normal_pfn(st, pfn, paging.pte_special(v), addr):
            pi = _page_info(st, pfn, PageTableLevel.PTE, addr)
            _account(st, pi, pfn, addr, False, paging.pte_young(v), paging.pte_dirty(v), True)
        return
    page_size = st.page_size
    if paging.pte_none(v):
        # smaps_pte_hole_lookup(): the shmem per-page lookup.
        if has_hole_op:
            _shmem_hole(st, addr, addr + page_size)
        return
    ent = paging.decode_swap(v)
    if ent is None:
        return
    kind = ent.kind
    if kind.name == "SWAP":
        o = st.out
        o.swap += page_size
        mc = st.swap.swapcount(ent.type, ent.offset)
        if mc >= 2:
            o.swap_pss += (page_size << PSS_SHIFT) // mc
        else:
            o.swap_pss += page_size << PSS_SHIFT
    elif kind.has_pfn:
        epfn = ent.pfn
        assert epfn is not None
        pi = _page_info(st, epfn, PageTableLevel.PTE, addr)
        _account(st, pi, epfn, addr, False, False, False, kind.is_device_private, kind.is_migration)


def _smaps_thp(st: _Stats, pfn: int, v: int, addr: int, present: bool, migration: bool = False) -> None:
    """
    The end of ``smaps_pmd_entry()`` (Linux 7.2 and 6.1): the PMD's 2 MiB
    counted as an anonymous, shmem or file THP by its folio (nothing for
    ``ZONE_DEVICE``), then ``smaps_account()`` of page *pfn*.
    """
    pi = _page_info(st, pfn, PageTableLevel.PMD, addr)
    o = st.out
    pmd_size = st.pmd_size
    if pi is None:
        _credit(o, ("anonymous_thp", "shmem_thp", "file_thp", None), pmd_size)
    elif pi.mapping & PAGE_MAPPING_ANON:
        o.anonymous_thp += pmd_size
    elif pi.flags >> st.pg_swapbacked & 1:
        o.shmem_thp += pmd_size
    elif not st.r.zone_device(pi):
        o.file_thp += pmd_size
    paging = st.paging
    _account(st, pi, pfn, addr, True, paging.pmd_young(v), paging.pmd_dirty(v), present, migration)


def _smaps_pmd_entry(st: _Stats, v: int, addr: int) -> None:
    """``smaps_pmd_entry()`` on a raw PMD value that ``pmd_is_huge``."""
    if st.page_mapcount_rules:
        _smaps_pmd_entry_6_1(st, v, addr)
        return
    present = False
    paging = st.paging
    if paging.pmd_present(v):
        pfn: int | None = paging.pmd_pfn(v)
        assert pfn is not None
        # vm_normal_page_pmd(): x86_64 and arm64 have pmd_special
        # (ARCH_SUPPORTS_PMD_PFNMAP).
        if not _normal_pfn(st, pfn, paging.pmd_special(v), addr):
            return
        present = True
    else:
        ent = st.paging.decode_swap(v)
        pfn = ent.pfn if ent is not None and ent.kind.has_pfn else None
        if pfn is None:
            return
    _smaps_thp(st, pfn, v, addr, present)


def _smaps_pmd_entry_6_1(st: _Stats, v: int, addr: int) -> None:
    """
    ``smaps_pmd_entry()`` of Linux 6.1: the page of a present PMD is
    ``follow_trans_huge_pmd(vma, addr, pmd, FOLL_DUMP)`` -- the page at
    *addr*, none for the huge zero page (``-EFAULT``) or a PROT_NONE PMD
    (``gup_can_follow_protnone()`` wants ``FOLL_FORCE``) -- and a
    non-present one counts only as a migration entry (``migration``).
    """
    paging = st.paging
    migration = False
    if paging.pmd_present(v):
        head = paging.pmd_pfn(v)
        assert head is not None
        if st.r.ks.is_huge_zero_pfn(head) or paging.pmd_protnone(v):
            return
        pfn = head + ((addr & (st.pmd_size - 1)) >> st.page_shift)
    else:
        ent = paging.decode_swap(v)
        if ent is None or not ent.kind.is_migration or ent.pfn is None:
            return
        migration = True
        pfn = ent.pfn
    _smaps_thp(st, pfn, v, addr, True, migration)


def _smaps_pte_range(pmd: Entry, addr: int, end: int, walk: MMWalk) -> int:
    """``smaps_pte_range()``: the smaps ``pmd_entry``."""
    st: _Stats = walk.private
    st.walk = walk
    paging = st.paging
    v = int(pmd.value)
    # pmd_trans_huge_lock(): pmd_is_huge() (include/linux/huge_mm.h), a leaf
    # or a non-none, non-present (migration or device-private) entry
    if not paging.pmd_none(v) and (not paging.pmd_present(v) or paging.pmd_trans_huge(v)):
        _smaps_pmd_entry(st, v, addr)
        return 0
    try:
        table = pmd.pte_table()
    except TableReadError as e:
        # not in the target (a dump filtered too much): nothing counted there,
        # recorded in walk.errors as the walker records the tables it cannot read
        walk.overlay.error(PageTableLevel.PMD, addr, e.paddr, "unreadable")
        return 0
    if table is None:
        walk.action = PageWalkAction.ACTION_AGAIN
        return 0
    has_hole_op = st.shmem_mapping_addr != 0
    shift = st.page_shift
    page_size = 1 << shift
    i = (addr >> shift) & (paging.ptrs_per(PageTableLevel.PTE) - 1)
    # ptep_get() of each entry: on arm64 with CONTPTE, a contiguous block's
    # young and dirty bits are gathered into each of its entries
    a = addr
    for val in paging.ptes_get(table, i, (end - addr) >> shift):
        if val or has_hole_op:
            _smaps_pte_entry(st, val, a, has_hole_op)
        a += page_size
    return 0


def _smaps_hugetlb_range(pte: Entry, hmask: int, addr: int, end: int, walk: MMWalk) -> int:
    """``smaps_hugetlb_range()``: one call per huge page."""
    st: _Stats = walk.private
    st.walk = walk
    r = st.r
    v = int(pte.value)
    pfn: int | None = None
    present = False
    paging = st.paging
    if paging.pte_present(v):
        pfn = paging.pte_pfn(v)
        present = True
        # Linux 6.1 takes the page with vm_normal_page()
        if st.page_mapcount_rules and not _normal_pfn(st, pfn, paging.pte_special(v), addr):
            return 0
    else:
        ent = st.paging.decode_swap(v)
        if ent is not None and ent.kind.has_pfn:
            pfn = ent.pfn
    if pfn is None:
        return 0
    size = 1 << st.vma.hugetlb_shift
    table_shared: bool | None
    try:
        table_shared = pte.kaddr is not None and r.pt_share_count(pte.kaddr) != 0
    except FaultError:  # the page table's ptdesc is not in the dump
        table_shared = None
    page_shared: bool | None = True  # 7.2 treats a non-present entry as shared
    if st.page_mapcount_rules or present:
        try:
            pi = r.info(pfn)
            if st.page_mapcount_rules:
                # Linux 6.1: page_mapcount(page) >= 2 || hugetlb_pmd_shared(pte)
                page_shared = r.precise_mapcount(pi) >= 2
            else:
                page_shared = r.maybe_mapped_shared(pi)
        except FaultError:  # its struct page (or 6.1's tail pages for the folio mapcount)
            _unreadable(st, pte.level, addr, pfn)
            page_shared = None
    if page_shared or table_shared:
        st.out.shared_hugetlb += size
    elif page_shared is None or table_shared is None:
        _credit(st.out, ("shared_hugetlb", "private_hugetlb"), size)
    else:
        st.out.private_hugetlb += size
    return 0

# ---------------------------------------------------------------------------
# ProtectionKey
# ---------------------------------------------------------------------------
#: ``arm64_features[]``' description of ``ARM64_HAS_S1POE`` (Linux 7.2
#: arch/arm64/kernel/cpufeature.c): the capability's number is a generated
#: macro, not in the debug info, so it is found by its entry.
_S1POE_DESC = b"Stage-1 Permission Overlay Extension (S1POE)"
#: a bound on ``arm64_features[]`` (Linux 7.2 has about 120 entries)
_MAX_ARM64_FEATURES = 1024


def _pkeys_enabled(prog: Program) -> bool:
    """
    ``arch_pkeys_enabled()``: on x86_64 ``boot_cpu_has(X86_FEATURE_OSPKE)``
    (word 16, bit 4); on arm64 ``system_supports_poe()``, the
    ``ARM64_HAS_S1POE`` bit of ``system_cpucaps`` (``CONFIG_ARM64_POE``).
    """
    if prog.platform is not None and prog.platform.arch == Architecture.AARCH64:
        return _arm64_has_poe(prog)
    try:
        caps = prog["boot_cpu_data"].x86_capability
        return bool(int(caps[16].value_()) >> 4 & 1)
    except (KeyError, LookupError, FaultError):
        return False


def _arm64_has_poe(prog: Program) -> bool:
    try:
        return bool(prog.cache["livewalk_arm64_poe"])
    except KeyError:
        pass
    found = False
    try:
        features = prog["arm64_features"]
        caps = prog["system_cpucaps"]
        # an array of unknown length, ended by an entry without a description
        for i in range(_MAX_ARM64_FEATURES):
            cap = features[i]
            desc = cap.desc.read_()
            if not desc:  # the terminating empty entry
                break
            if desc.string_() == _S1POE_DESC:
                n = int(cap.capability.value_())
                bits_per_word = 8 * sizeof(caps[0])
                found = bool(int(caps[n // bits_per_word].value_()) >> (n % bits_per_word) & 1)
                break
    except (KeyError, LookupError, FaultError):  # no CONFIG_ARM64_POE
        found = False
    prog.cache["livewalk_arm64_poe"] = found
    return found


#: ``VM_PKEY_SHIFT``: ``VMA_HIGH_ARCH_0_BIT`` (Linux 7.2 include/linux/mm.h).
_VM_PKEY_SHIFT = 32


def _vma_pkey(vm_flags: int, prog: Program) -> int:
    """
    ``vma_pkey()``: the ``VM_PKEY_BIT*`` bits from ``VM_PKEY_SHIFT``
    (``VMA_HIGH_ARCH_0_BIT``): four on x86_64, three on arm64
    (``CONFIG_ARCH_PKEY_BITS``).
    """
    nbits = 3 if prog.platform is not None and prog.platform.arch == Architecture.AARCH64 else 4
    return vm_flags >> _VM_PKEY_SHIFT & ((1 << nbits) - 1)


# ---------------------------------------------------------------------------
# The driver (show_smap / smap_gather_stats)
# ---------------------------------------------------------------------------
def _gate_vma(prog: Program, mm: Object) -> Object | None:
    """``get_gate_vma(mm)`` on x86_64 (arm64 has no gate VMA: no ``gate_vma`` symbol)."""
    try:
        gate = prog["gate_vma"]
        mode_obj = prog["vsyscall_mode"]
    except KeyError:
        return None
    # The NONE enumerator of vsyscall_mode's own (anonymous) enum type: a
    # bare prog["NONE"] may name another enum's constant.
    none = 2
    for e in mode_obj.type_.enumerators or ():
        if e.name == "NONE":
            none = int(e.value)
    if int(mode_obj.value_()) == none:
        return None
    try:
        # MM_CONTEXT_HAS_VSYSCALL (bit 1) with CONFIG_COMPAT.
        if not int(mm.context.flags.value_()) >> 1 & 1:
            return None
    except AttributeError:
        pass
    return gate.address_of_()


def _kernel_page_size(vma_obj: Object, vma: VMA, page_size: int) -> int:
    """``vma_kernel_pagesize()`` from the backend's snapshot of the VMA (*page_size*: ``PAGE_SIZE``)."""
    if int(vma_obj.vm_ops.value_()) and int(vma_obj.vm_ops.pagesize.value_()) and vma.hugetlb_shift:
        return 1 << vma.hugetlb_shift
    return page_size


def _smaps_ops(shmem: bool, vma_lock: bool) -> MMWalkOps:
    """
    ``smaps_walk_ops``, or ``smaps_shmem_walk_ops`` (private writable shmem
    VMAs with swapped pages) with ``pte_hole``; their ``walk_lock`` is
    ``PGWALK_VMA_RDLOCK_VERIFY`` where the kernel reads smaps under the
    per-VMA lock (``get_smaps_walk_ops()``, Linux 7.x), ``PGWALK_RDLOCK``
    before.
    """
    return _OPS[shmem, vma_lock]


_OPS = {
    (shmem, vma_lock): MMWalkOps(
        pmd_entry=_smaps_pte_range,
        hugetlb_entry=_smaps_hugetlb_range,
        pte_hole=_smaps_pte_hole if shmem else None,
        walk_lock=PageWalkLock.PGWALK_VMA_RDLOCK_VERIFY if vma_lock else PageWalkLock.PGWALK_RDLOCK,
    )
    for shmem in (False, True)
    for vma_lock in (False, True)
}


def smaps(
    mm: Object,
    *,
    reader: PageReader | None = None,
    progress: Progress | None = None,
    walks: list[MMWalk] | None = None,
) -> list[SmapsVMA]:
    """
    Compute ``/proc/PID/smaps`` for *mm*: one :class:`SmapsVMA` per VMA in
    address order, then the gate VMA (``[vsyscall]``) when the mm has one.

    >>> [v.header for v in smaps(mm)][:1]  # doctest: +SKIP
    ['55d4c8a2e000-55d4c8a30000 r--p 00000000 fe:01 1234  ... /usr/bin/cat']

    :param mm: ``struct mm_struct *``
    :param reader: the :class:`~livewalk.mm.page.PageReader` to read
        ``struct page`` state through (default: a new one)
    :param progress: a :class:`~livewalk.progress.Progress` to tick per VMA
    :param walks: each VMA's :class:`~livewalk.mm.pagewalk.MMWalk` is
        appended to it (for :mod:`livewalk.consistency`)
    :return: the VMAs' sums and lines
    """
    backend = backend_for_mm(mm)
    paging = backend.paging
    prog: Program = mm.prog_
    r = reader or PageReader(prog)
    swap = SwapTables(prog)
    shmem = ShmemSwap(prog)
    bits: VMFlagBits = backend.vm_flag_bits
    pkeys = _pkeys_enabled(prog)
    features = backend.features
    vma_lock = features.walk_lock_vma_rdlock_verify
    vmas: list[VMA] = list(backend.vmas(mm))
    out: list[SmapsVMA] = []
    for vma in vmas:
        vma_obj = vma.obj
        res = _new_entry(prog, vma_obj, vma, bits, pkeys, features, paging.page_size)
        st = _Stats(res, r, swap, shmem, vma, bits, paging)
        st.page_mapcount_rules = features.task_mmu_page_mapcount
        ops = _smaps_ops(False, vma_lock)
        vm_file = vma_obj.vm_file.read_()
        if vm_file:
            mapping = vm_file.f_mapping.read_()
            if shmem_mapping(mapping):
                # smap_gather_stats(): count the whole swap usage at once
                # unless the VMA is private and writable (then only what no
                # anonymous COW page hides, hole by hole).
                swapped = shmem_swap_usage(vma_obj, shmem)
                flags = vma.vm_flags
                if not swapped or flags & bits.VM_SHARED or not flags & bits.VM_WRITE:
                    res.swap += swapped
                else:
                    ops = _smaps_ops(True, vma_lock)
                    st.shmem_mapping_addr = int(mapping.value_())

        walk_page_vma(vma, ops, st, backend=backend, walks=walks)
        out.append(res)
        if progress is not None:
            progress.update(add_vmas=1, add_bytes=vma.vm_end - vma.vm_start)
    gate = _gate_vma(prog, mm)
    if gate is not None:
        g = gate[0].read_()
        gvma = VMA(
            vm_start=int(g.vm_start.value_()),
            vm_end=int(g.vm_end.value_()),
            vm_flags=int(g.vm_flags.value_()),
            obj=gate,
        )
        out.append(_new_entry(prog, gate, gvma, bits, pkeys, features, paging.page_size))
    return out


def _new_entry(
    prog: Program,
    vma_obj: Object,
    vma: VMA,
    bits: VMFlagBits,
    pkeys: bool,
    features: KernelFeatures,
    page_size: int,
) -> SmapsVMA:
    kps = _kernel_page_size(vma_obj, vma, page_size)
    return SmapsVMA(
        vm_start=vma.vm_start,
        vm_end=vma.vm_end,
        vm_flags=vma.vm_flags,
        header=vma_header(vma_obj, bits, features),
        kernel_page_size=kps,
        mmu_page_size=kps,
        thp_eligible=thp_eligible(vma_obj, vma, bits, features),
        protection_key=_vma_pkey(vma.vm_flags, prog) if pkeys else None,
        vm_flags_text=vm_flags_mnemonics(prog, vma.vm_flags, features),
        show_ksm=features.smaps_ksm,
        thp_eligible_padded=not features.thp_hugepage_vma_check,
    )
