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
walked.

>>> vmas = smaps(mm)  # doctest: +SKIP
>>> print(format_smaps(vmas))  # doctest: +SKIP
55d4c8a2e000-55d4c8a30000 r--p 00000000 fe:01 1234    /usr/bin/cat
Size:                  8 kB
...

PSS-like sums are kept in the kernel's fixed point (2^-12 bytes, truncated
per page at division time) and printed with the kernel's two-step floor.

Checked equal to the kernel's text, field for field, in the test VM (both
paging modes, drgn on ``/proc/kcore`` and over QMP): see
``tests/vm/test_smaps.py``. What cannot be exact, and why:

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

from drgn import FaultError, Object, Program

from livewalk.arch.x86.pgtable import decode_swap, pmd_pfn, pte_pfn
from livewalk.backend import VMA, backend_for_mm
from livewalk.mm.page import PageInfo, PageReader, shmem_swap_usage

# Exporting smaps() makes the package attribute ``livewalk.proc.smaps`` the
# function (as ``livewalk.proc.pagemap`` and ``livewalk.tools.vtop`` are): reach this
# module with ``from livewalk.proc.smaps import ...`` or importlib.
__all__ = (
    "smaps",
    "SMAPS_FIELDS",
    "SmapsVMA",
    "format_smaps",
    "maps_line",
    "smaps_dicts",
    "smaps_json",
    "vma_header",
    "vm_flags_mnemonics",
)

PAGE_SIZE = 4096
PSS_SHIFT = 12
HPAGE_PMD_SIZE = 1 << 21

# x86 entry bits (arch/x86/include/asm/pgtable_types.h).
_PAGE_PRESENT = 1 << 0
_PAGE_ACCESSED = 1 << 5
_PAGE_PSE = 1 << 7
_PAGE_PROTNONE = 1 << 8
_PAGE_SPECIAL = 1 << 9
_PAGE_DIRTY_BITS = (1 << 6) | (1 << 58)
_KNL_ERRATUM = (1 << 5) | (1 << 6)

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

# VM flag mnemonics of show_smap_vma_flags() (Linux 7.2 fs/proc/task_mmu.c)
# by the name of their VMA_*_BIT enumerator; the bit numbers come from the
# target's debug info, these are the 7.2 defaults.
_MNEMONICS: tuple[tuple[str, int, str], ...] = (
    ("READ", 0, "rd"),
    ("WRITE", 1, "wr"),
    ("EXEC", 2, "ex"),
    ("SHARED", 3, "sh"),
    ("MAYREAD", 4, "mr"),
    ("MAYWRITE", 5, "mw"),
    ("MAYEXEC", 6, "me"),
    ("MAYSHARE", 7, "ms"),
    ("GROWSDOWN", 8, "gd"),
    ("PFNMAP", 10, "pf"),
    ("MAYBE_GUARD", 11, "gu"),
    ("LOCKED", 13, "lo"),
    ("IO", 14, "io"),
    ("SEQ_READ", 15, "sr"),
    ("RAND_READ", 16, "rr"),
    ("DONTCOPY", 17, "dc"),
    ("DONTEXPAND", 18, "de"),
    ("LOCKONFAULT", 19, "lf"),
    ("ACCOUNT", 20, "ac"),
    ("NORESERVE", 21, "nr"),
    ("HUGETLB", 22, "ht"),
    ("SYNC", 23, "sf"),
    ("ARCH_1", 24, "ar"),
    ("WIPEONFORK", 25, "wf"),
    ("DONTDUMP", 26, "dd"),
    ("SOFTDIRTY", 27, "sd"),
    ("MIXEDMAP", 28, "mm"),
    ("HUGEPAGE", 29, "hg"),
    ("NOHUGEPAGE", 30, "nh"),
    ("MERGEABLE", 31, "mg"),
    ("UFFD_MISSING", 9, "um"),
    ("UFFD_WP", 12, "uw"),
    # Protection-key bits print nothing (they come out via ProtectionKey);
    # x86 has CONFIG_ARCH_PKEY_BITS = 4.
    ("PKEY_BIT0", 32, ""),
    ("PKEY_BIT1", 33, ""),
    ("PKEY_BIT2", 34, ""),
    ("PKEY_BIT3", 35, ""),
    ("UFFD_MINOR", 41, "ui"),
    ("SHADOW_STACK", 37, "ss"),
    ("DROPPABLE", 40, "dp"),
    ("SEALED", 42, "sl"),
)


@dataclasses.dataclass
class SmapsVMA:
    """
    One VMA of ``/proc/PID/smaps``: the ``struct mem_size_stats`` sums (in
    bytes; ``pss*`` and ``swap_pss`` in 2^-12 byte fixed point) and what the
    header and trailer lines print.

    :ivar header: the maps line (without the newline)
    :ivar thp_eligible: ``THPeligible`` (see :func:`thp_eligible`)
    :ivar protection_key: ``ProtectionKey``, or ``None`` when the line is
        not printed (no ``X86_FEATURE_OSPKE``)
    """

    vm_start: int
    vm_end: int
    vm_flags: int
    header: str
    kernel_page_size: int = PAGE_SIZE
    mmu_page_size: int = PAGE_SIZE
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

    @property
    def size(self) -> int:
        """``Size``: ``vm_end - vm_start``."""
        return self.vm_end - self.vm_start

    def fields_kb(self) -> dict[str, int]:
        """Every numeric line as the kernel prints it (kB, or the plain number)."""
        out = {
            "Size": self.size >> 10,
            "KernelPageSize": self.kernel_page_size >> 10,
            "MMUPageSize": self.mmu_page_size >> 10,
        }
        for label, attr, shift in SMAPS_FIELDS:
            out[label] = (getattr(self, attr) >> shift) >> 10
        out["THPeligible"] = self.thp_eligible
        if self.protection_key is not None:
            out["ProtectionKey"] = self.protection_key
        return out

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able form: header, kB fields, VmFlags and the raw sums."""
        d: dict[str, Any] = {
            "start": self.vm_start,
            "end": self.vm_end,
            "header": self.header,
            "fields_kb": self.fields_kb(),
            "vm_flags": self.vm_flags_text.split(),
            "raw": {
                f.name: getattr(self, f.name)
                for f in dataclasses.fields(self)
                if f.name not in ("header", "vm_flags_text", "vm_start", "vm_end")
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
            value = getattr(self, attr) >> shift
            if label == "Private_Hugetlb":
                lines.append(f"Private_Hugetlb: {value >> 10:>7} kB")
            else:
                lines.append(_kb(f"{label + ':':<16}", value))
        lines.append(f"THPeligible:    {self.thp_eligible:>8}")
        if self.protection_key is not None:
            lines.append(f"ProtectionKey:  {self.protection_key:>8}")
        lines.append("VmFlags: " + self.vm_flags_text)
        return "\n".join(lines) + "\n"


def _kb(label: str, value: int) -> str:
    # SEQ_PUT_DEC: value >> 10, right-aligned in 8 columns.
    return f"{label}{value >> 10:>8} kB"


def format_smaps(vmas: list[SmapsVMA]) -> str:
    """The exact text of ``/proc/PID/smaps`` for :func:`smaps`' result."""
    return "".join(v.format() for v in vmas)


def smaps_dicts(vmas: list[SmapsVMA]) -> list[dict[str, Any]]:
    """:meth:`SmapsVMA.as_dict` of each VMA."""
    return [v.as_dict() for v in vmas]


#: The JSON form the CLI prints (``livewalk smaps --json``).
smaps_json = smaps_dicts


# ---------------------------------------------------------------------------
# Accounting (smaps_account / smaps_page_accumulate)
# ---------------------------------------------------------------------------
class _Stats:
    """``struct mem_size_stats`` plus what the callbacks need per walk."""

    def __init__(self, out: SmapsVMA, reader: PageReader, vma: VMA, locked: bool) -> None:
        self.out = out
        self.r = reader
        self.vma = vma
        self.locked = locked
        ks = reader.ks
        self.pg_dirty = ks.pg_dirty
        self.pg_swapbacked = ks.pg_swapbacked
        self.pg_referenced = ks.pg_referenced
        self.pg_young = ks.pg_young
        self.shmem_mapping_addr = 0
        self.paging: Any = None


def _accumulate(st: _Stats, pi: PageInfo, size: int, pss: int, dirty: bool, private: bool) -> None:
    o = st.out
    o.pss += pss
    if pi.mapping & 1:
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


def _account(st: _Stats, pfn: int, compound: bool, young: bool, dirty: bool, present: bool) -> None:
    """``smaps_account()`` (Linux 7.2 ``fs/proc/task_mmu.c``), CONFIG_PAGE_MAPCOUNT."""
    r = st.r
    pi = r.info(pfn)
    o = st.out
    # compound_nr(page): 1 unless *this page* carries PG_head.
    nr = pi.nr_pages if (compound and pi.large and pi.head_pfn == pfn) else 1
    size = nr * PAGE_SIZE
    flags = pi.flags
    if pi.mapping & 1:
        o.anonymous += size
        if not (flags >> st.pg_swapbacked & 1) and not dirty and not (flags >> st.pg_dirty & 1):
            o.lazyfree += size
    if pi.mapping & 3 == 3:
        o.ksm += size
    o.resident += size
    if (
        young
        or (st.pg_young is not None and flags >> st.pg_young & 1)
        or flags >> st.pg_referenced & 1
    ):
        o.referenced += size
    if pi.refcount == 1 or not present:
        _accumulate(st, pi, size, size << PSS_SHIFT, dirty, present)
        return
    for i in range(nr):
        mc = r.precise_mapcount(pi, pfn + i)
        pss = PAGE_SIZE << PSS_SHIFT
        if mc >= 2:
            pss //= mc
        _accumulate(st, pi, PAGE_SIZE, pss, dirty, mc < 2)


# ---------------------------------------------------------------------------
# Walk callbacks
# ---------------------------------------------------------------------------
def _linear_page_index(vma: VMA, addr: int) -> int:
    return ((addr - vma.vm_start) >> 12) + vma.vm_pgoff


def _shmem_hole(st: _Stats, addr: int, end: int) -> None:
    vma = st.vma
    st.out.swap += st.r.shmem_partial_swap_usage(
        st.shmem_mapping_addr, _linear_page_index(vma, addr), _linear_page_index(vma, end)
    )


def _smaps_pte_hole(addr: int, end: int, depth: int, walk: Any) -> int:
    """``smaps_pte_hole()``: shmem swap of the hole's file range (depth unused)."""
    _shmem_hole(walk.private, addr, end)
    return 0


def _smaps_pte_entry(st: _Stats, v: int, addr: int, has_hole_op: bool) -> None:
    """``smaps_pte_entry()`` on a raw PTE value."""
    vma = st.vma
    r = st.r
    paging = st.paging
    if v & (_PAGE_PRESENT | _PAGE_PROTNONE):
        pfn = pte_pfn(v, paging)
        if not r.normal_pfn(
            pfn, bool(v & _PAGE_SPECIAL), vma.vm_flags, vma.vm_start, vma.vm_pgoff, addr
        ):
            return
        _account(st, pfn, False, bool(v & _PAGE_ACCESSED), bool(v & _PAGE_DIRTY_BITS), True)
        return
    if not v & ~_KNL_ERRATUM:
        # pte_none(): the shmem per-page lookup (smaps_pte_hole_lookup).
        if has_hole_op:
            _shmem_hole(st, addr, addr + PAGE_SIZE)
        return
    ent = decode_swap(v, paging)
    if ent is None:
        return
    kind = ent.kind
    if kind.name == "SWAP":
        o = st.out
        o.swap += PAGE_SIZE
        mc = r.swp_swapcount(ent.type, ent.offset)
        if mc >= 2:
            o.swap_pss += (PAGE_SIZE << PSS_SHIFT) // mc
        else:
            o.swap_pss += PAGE_SIZE << PSS_SHIFT
    elif kind.has_pfn:
        epfn = ent.pfn
        assert epfn is not None
        _account(st, epfn, False, False, False, kind.is_device_private)


def _smaps_pmd_entry(st: _Stats, v: int, addr: int) -> None:
    """``smaps_pmd_entry()`` on a raw PMD value that ``pmd_is_huge``."""
    r = st.r
    vma = st.vma
    paging = st.paging
    present = False
    if v & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE):
        pfn: int | None = pmd_pfn(v, paging)
        assert pfn is not None
        # vm_normal_page_pmd(): x86 has pmd_special (ARCH_SUPPORTS_PMD_PFNMAP).
        if not r.normal_pfn(
            pfn, bool(v & _PAGE_SPECIAL), vma.vm_flags, vma.vm_start, vma.vm_pgoff, addr
        ):
            return
        present = True
    else:
        ent = decode_swap(v, paging)
        pfn = ent.pfn if ent is not None and ent.kind.has_pfn else None
        if pfn is None:
            return
    pi = r.info(pfn)
    o = st.out
    if pi.mapping & 1:
        o.anonymous_thp += HPAGE_PMD_SIZE
    elif pi.flags >> st.pg_swapbacked & 1:
        o.shmem_thp += HPAGE_PMD_SIZE
    elif r.zone_device(pi):
        pass
    else:
        o.file_thp += HPAGE_PMD_SIZE
    _account(st, pfn, True, bool(v & _PAGE_ACCESSED), bool(v & _PAGE_DIRTY_BITS), present)


def _smaps_pte_range(pmd: Any, addr: int, end: int, walk: Any) -> int:
    """``smaps_pte_range()``: the smaps ``pmd_entry``."""
    st: _Stats = walk.private
    v = int(pmd.value)
    # pmd_trans_huge_lock(): pmd_is_huge() = present and PSE, or non-present
    # and not none.
    if v & (_PAGE_PRESENT | _PAGE_PROTNONE | _PAGE_PSE):
        huge = bool(v & _PAGE_PSE)
    else:
        huge = bool(v & ~_KNL_ERRATUM)
    if huge:
        _smaps_pmd_entry(st, v, addr)
        return 0
    try:
        table = pmd.pte_table()
    except Exception:  # TableReadError: the kernel's map would fail too
        table = None
    if table is None:
        from livewalk.mm.pagewalk import PageWalkAction

        walk.action = PageWalkAction.ACTION_AGAIN
        return 0
    has_hole_op = st.shmem_mapping_addr != 0
    i = (addr >> 12) & 511
    a = addr
    while a != end:
        val = table[i]
        if val or has_hole_op:
            _smaps_pte_entry(st, val, a, has_hole_op)
        i += 1
        a += PAGE_SIZE
    return 0


def _smaps_hugetlb_range(pte: Any, hmask: int, addr: int, end: int, walk: Any) -> int:
    """``smaps_hugetlb_range()``: one call per huge page."""
    st: _Stats = walk.private
    r = st.r
    paging = st.paging
    v = int(pte.value)
    pfn: int | None = None
    present = False
    if v & (_PAGE_PRESENT | _PAGE_PROTNONE):
        pfn = pte_pfn(v, paging)
        present = True
    else:
        ent = decode_swap(v, paging)
        if ent is not None and ent.kind.has_pfn:
            pfn = ent.pfn
    if pfn is None:
        return 0
    pi = r.info(pfn)
    size = 1 << st.vma.hugetlb_shift
    shared = (
        not present
        or r.maybe_mapped_shared(pi)
        or (pte.kaddr is not None and r.pt_share_count(pte.kaddr) != 0)
    )
    if shared:
        st.out.shared_hugetlb += size
    else:
        st.out.private_hugetlb += size
    return 0


# ---------------------------------------------------------------------------
# Header line (show_map_vma / get_vma_name)
# ---------------------------------------------------------------------------
def _sym_name(prog: Program, addr: int) -> str | None:
    if not addr:
        return None
    try:
        return prog.symbol(addr).name
    except LookupError:
        return None


def _mangle(path: bytes) -> bytes:
    # seq_path(m, path, "\n"): '\n' is escaped as \012 (mangle_path).
    return path.replace(b"\n", b"\\012")


def _d_path(prog: Program, file: Object) -> bytes:
    """
    ``d_path(file_user_path(file))`` as the reader of ``/proc/PID/maps``
    sees it, assuming the reader's root is the initial mount namespace's
    root: the dentry's ``d_dname`` for pseudo files, else the path up to
    the global root (or to the top of a detached mount such as the
    internal shmem mount), with `` (deleted)`` for unlinked dentries.
    """
    path = _file_user_path(prog, file)
    dentry = path.dentry.read_()
    mnt = path.mnt.read_()
    d_op = dentry.d_op.read_()
    mnt_root = int(mnt.mnt_root.value_())
    is_root = int(dentry.d_parent.value_()) == int(dentry.value_())
    if d_op and int(d_op.d_dname.value_()) and (not is_root or int(dentry.value_()) != mnt_root):
        name = dentry.d_name.name.string_()
        fn = _sym_name(prog, int(d_op.d_dname.value_()))
        if fn == "simple_dname":
            return b"/" + name + b" (deleted)"
        if fn == "anon_inodefs_dname":
            return b"anon_inode:" + name
        ino = int(dentry.d_inode.i_ino.value_())
        if fn == "pipefs_dname":
            return b"pipe:[%d]" % ino
        if fn == "sockfs_dname":
            return b"socket:[%d]" % ino
        return name
    from drgn.helpers.linux.fs import d_path as drgn_d_path  # noqa: F401

    mount_t = prog.type("struct mount")
    from drgn import container_of

    parts: list[bytes] = []
    mnt_obj = container_of(mnt, mount_t, "mnt")
    d = dentry
    for _ in range(4096):
        d_addr = int(d.value_())
        root_addr = int(mnt_obj.mnt.mnt_root.value_())
        if d_addr == root_addr:
            parent = mnt_obj.mnt_parent.read_()
            if int(parent.value_()) != int(mnt_obj.value_()):
                d = mnt_obj.mnt_mountpoint.read_()
                mnt_obj = parent
                continue
            break
        parent_d = d.d_parent.read_()
        if int(parent_d.value_()) == d_addr:
            break
        parts.append(d.d_name.name.string_())
        d = parent_d
    out = b"/" + b"/".join(reversed(parts)) if parts else b"/"
    # d_unlinked(): unhashed and not a root.
    unhashed = not int(dentry.d_hash.pprev.value_())
    if unhashed and not is_root:
        out += b" (deleted)"
    return out


#: ``FMODE_BACKING`` (Linux 7.2 ``include/linux/fs.h``; a macro, not in debug info).
FMODE_BACKING = 1 << 24


def _file_user_path(prog: Program, file: Object) -> Object:
    """``file_user_path()``: a stacking filesystem's backing file shows the user's path."""
    if int(file.f_mode.value_()) & FMODE_BACKING:
        try:
            return Object(prog, "struct backing_file", address=int(file.value_())).user_path
        except (LookupError, AttributeError):
            pass
    return file.f_path


def _vma_name(prog: Program, vma_obj: Object, mm: Object) -> bytes | None:
    """``get_vma_name()`` (Linux 7.2 ``fs/proc/task_mmu.c``)."""
    anon_name = None
    has_mm = bool(int(vma_obj.vm_mm.value_()))
    if has_mm:
        try:
            an = vma_obj.anon_name.read_()
            if int(an.value_()):
                anon_name = an.name.string_()
        except AttributeError:
            pass
    vm_file = vma_obj.vm_file.read_()
    if int(vm_file.value_()):
        if anon_name is not None:
            return b"[anon_shmem:" + anon_name + b"]"
        return _mangle(_d_path(prog, vm_file))
    ops = vma_obj.vm_ops.read_()
    if int(ops.value_()):
        fn_addr = int(ops.name.value_())
        if fn_addr:
            fn = _sym_name(prog, fn_addr)
            if fn == "special_mapping_name":
                sm = Object(prog, "struct vm_special_mapping *", vma_obj.vm_private_data.value_())
                return sm.name.string_()
            if fn == "gate_vma_name":
                return b"[vsyscall]"
            # Another ->name() hook (a driver's): not reproducible from memory.
            return b"[" + (fn or "?").encode() + b"?]"
    if not has_mm:
        return b"[vdso]"
    start, end = int(vma_obj.vm_start.value_()), int(vma_obj.vm_end.value_())
    if start < int(mm.brk.value_()) and end > int(mm.start_brk.value_()):
        return b"[heap]"
    ss = int(mm.start_stack.value_())
    if start <= ss and end >= ss:
        return b"[stack]"
    if anon_name is not None:
        return b"[anon:" + anon_name + b"]"
    return None


def vma_header(prog: Program, vma_obj: Object, mm: Object) -> str:
    """
    The ``/proc/PID/maps`` line of a VMA (``show_map_vma``): ``start-end perms
    offset major:minor inode``, padded to 73 columns before a name.
    """
    v = vma_obj[0].read_()
    flags = int(v.vm_flags.value_())
    start, end = int(v.vm_start.value_()), int(v.vm_end.value_())
    dev = ino = pgoff = 0
    vm_file = v.vm_file.read_()
    if int(vm_file.value_()):
        # file_user_inode()
        inode = _file_user_path(prog, vm_file).dentry.d_inode
        dev = int(inode.i_sb.s_dev.value_())
        ino = int(inode.i_ino.value_())
        pgoff = int(v.vm_pgoff.value_()) << 12
    return maps_line(start, end, flags, pgoff, dev, ino, _vma_name(prog, vma_obj, mm))


def maps_line(
    start: int, end: int, vm_flags: int, pgoff: int, dev: int, ino: int, name: bytes | None
) -> str:
    """
    ``show_vma_header_prefix()`` plus the name: hex fields zero-padded to 8
    (2 for the device numbers, ``MAJOR`` = ``dev >> 20``), then, if there
    is a name, spaces up to column 72 (``seq_setwidth(m, 25 + 6 *
    sizeof(void *) - 1)``) and one more before it.

    >>> maps_line(0x1000, 0x2000, 0x3, 0, 0, 0, b"[heap]")
    '00001000-00002000 rw-p 00000000 00:00 0                                  [heap]'
    """
    perms = (
        ("r" if vm_flags & 1 else "-")
        + ("w" if vm_flags & 2 else "-")
        + ("x" if vm_flags & 4 else "-")
        + ("s" if vm_flags & (1 << 7) else "p")
    )
    line = f"{start:08x}-{end:08x} {perms} {pgoff:08x} {dev >> 20:02x}:{dev & 0xFFFFF:02x} {ino} "
    if name is None:
        return line
    return f"{line:<72} " + name.decode("utf-8", "surrogateescape")


def vm_flags_mnemonics(prog: Program, vm_flags: int) -> str:
    """``show_smap_vma_flags()``: two-letter names of the set bits, each followed by a space."""
    table = _mnemonic_table(prog)
    out = []
    for bit in range(64):
        if vm_flags >> bit & 1:
            m = table.get(bit, "??")
            if m:
                out.append(m + " ")
    return "".join(out)


def _mnemonic_table(prog: Program) -> dict[int, str]:
    try:
        return prog.cache["livewalk_smaps_mnemonics"]  # type: ignore[no-any-return]
    except KeyError:
        pass
    table: dict[int, str] = {}
    for name, default, mn in _MNEMONICS:
        try:
            bit = int(prog[f"VMA_{name}_BIT"].value_())
        except KeyError:
            if name == "SHADOW_STACK":
                continue  # no CONFIG_X86_USER_SHADOW_STACK
            bit = default
        table[bit] = mn
    prog.cache["livewalk_smaps_mnemonics"] = table
    return table


# ---------------------------------------------------------------------------
# THPeligible, ProtectionKey, page sizes
# ---------------------------------------------------------------------------
def _pkeys_enabled(prog: Program) -> bool:
    """``arch_pkeys_enabled()``: ``boot_cpu_has(X86_FEATURE_OSPKE)`` (word 16, bit 4)."""
    try:
        caps = prog["boot_cpu_data"].x86_capability
        return bool(int(caps[16].value_()) >> 4 & 1)
    except (KeyError, LookupError, FaultError):
        return False


def thp_eligible(prog: Program, vma_obj: Object, vma: VMA) -> int:
    """
    ``!!thp_vma_allowable_orders(vma, vma->vm_flags, TVA_SMAPS,
    THP_ORDERS_ALL)`` (Linux 7.2 ``include/linux/huge_mm.h``,
    ``mm/huge_memory.c``).

    Exact for anonymous VMAs, special mappings and VMAs without an mm;
    for file VMAs the ``->huge_fault`` and tuneables rules are followed and
    ``file_thp_enabled()`` is taken as false (no
    ``CONFIG_READ_ONLY_THP_FOR_FS`` in the test kernel); for shmem the
    per-mount ``huge=`` option and the shmem sysfs orders are followed.
    """
    flags = vma.vm_flags
    vm_hugepage = flags >> 29 & 1
    ops = int(vma_obj.vm_ops.value_())
    anonymous = ops == 0
    pmd_order = 9
    orders_anon = ((1 << (pmd_order + 1)) - 1) & ~0b11
    orders_file = ((1 << (pmd_order + 1)) - 1) & ~0b1
    orders = orders_anon | orders_file | (1 << 18)
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
        special = bool(vm_file) and bool(flags & ((1 << 10) | (1 << 28)))
        orders &= (1 << pmd_order) | (1 << 18) if special else orders_file
    if not orders:
        return 0
    mm = vma_obj.vm_mm.read_()
    if not int(mm.value_()):
        return 0
    if thp_flags >> f_unsupported & 1:
        return 0
    if _vma_thp_disabled(prog, mm, flags):
        return 0
    # Suitability of the VMA's end for each order.
    ok = 0
    o = orders
    while o:
        order = o.bit_length() - 1
        hsize = PAGE_SIZE << order
        addr = vma.vm_end - hsize
        good = True
        if not anonymous and ((vma.vm_start >> 12) - vma.vm_pgoff) % (hsize >> 12):
            good = False
        haddr = addr & ~(hsize - 1)
        if haddr < vma.vm_start or haddr + hsize > vma.vm_end:
            good = False
        if good:
            ok = o
            break
        o &= ~(1 << order)
    orders = ok
    if not orders:
        return 0
    if not anonymous:
        vm_file_obj = vma_obj.vm_file.read_()
        if int(vm_file_obj.value_()):
            from livewalk.mm.page import shmem_mapping

            if shmem_mapping(vm_file_obj.f_mapping):
                return 1 if orders & _shmem_allowable_huge_orders(prog, vma_obj, vma) else 0
        # vma_can_map_huge_file(vma, vm_flags, TVA_SMAPS)
        huge_fault = int(vma_obj.vm_ops.huge_fault.value_()) if ops else 0
        bypass = bool(flags >> 10 & 1) and bool(huge_fault)
        if not (bypass or global_always or (global_enabled and vm_hugepage)):
            return 0
        if huge_fault:
            return 1
        return 1 if _file_thp_enabled(prog, vma_obj) else 0
    # vma_is_temporary_stack(): VM_GROWSDOWN with VM_STACK_INCOMPLETE_SETUP
    # (VM_RAND_READ | VM_SEQ_READ; VM_STACK_EARLY is 0 without GROWSUP).
    incomplete = (1 << 16) | (1 << 15)
    if flags & (1 << 8) and flags & incomplete == incomplete:
        return 0
    # No anon_vma yet still counts for smaps.
    return 1


def _file_thp_enabled(prog: Program, vma_obj: Object) -> bool:
    """
    ``file_thp_enabled()`` (Linux 7.2 ``mm/huge_memory.c``): a regular file,
    not an anonymous inode (``S_ANON_INODE``, 1 << 19), whose mapping allows
    PMD-sized folios (``AS_FOLIO_ORDER_MIN`` <= 9 <= ``AS_FOLIO_ORDER_MAX``
    fields of ``mapping->flags``).
    """
    vm_file = vma_obj.vm_file.read_()
    if not int(vm_file.value_()):
        return False
    inode = vm_file.f_inode
    if int(inode.i_flags.value_()) & (1 << 19):
        return False
    try:
        mflags = int(vm_file.f_mapping.flags.value_())
    except (TypeError, ValueError):
        return False
    bits = _enum(prog, "AS_FOLIO_ORDER_BITS", 5)
    omin = _enum(prog, "AS_FOLIO_ORDER_MIN", 16)
    omax = _enum(prog, "AS_FOLIO_ORDER_MAX", omin + bits)
    fmask = (1 << bits) - 1
    if not ((mflags >> omin) & fmask <= 9 <= (mflags >> omax) & fmask):
        return False
    return int(inode.i_mode.value_()) & 0o170000 == 0o100000


def _enum(prog: Program, name: str, default: int) -> int:
    try:
        return int(prog[name].value_())
    except KeyError:
        return default


def _vma_thp_disabled(prog: Program, mm: Object, flags: int) -> bool:
    if flags >> 30 & 1:  # VM_NOHUGEPAGE
        return True
    mmf = _mm_flags(mm)
    # MMF_DISABLE_THP_COMPLETELY 24, MMF_DISABLE_THP_EXCEPT_ADVISED 23:
    # macros in Linux 7.2 include/linux/mm_types.h, absent from debug info.
    if mmf >> 24 & 1:
        return True
    if flags >> 29 & 1:  # VM_HUGEPAGE
        return False
    return bool(mmf >> 23 & 1)


def _mm_flags(mm: Object) -> int:
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
            bm = getattr(f, member)
            return int(bm[0].value_())
        except (AttributeError, LookupError, TypeError):
            continue
    return 0


def _shmem_orders_within_size(inode: Object, orders: int, index: int) -> int:
    """``shmem_get_orders_within_size(inode, orders, index, 0)``."""
    i_size = (max(0, int(inode.i_size.value_())) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    while orders:
        order = orders.bit_length() - 1
        aligned = -(-(index + 1) // (1 << order)) * (1 << order)
        if i_size >> 12 >= aligned:
            return orders
        orders &= ~(1 << order)
    return 0


def _shmem_allowable_huge_orders(prog: Program, vma_obj: Object, vma: VMA) -> int:
    """
    ``shmem_allowable_huge_orders(inode, vma, vma->vm_pgoff, 0, false)`` and
    ``shmem_huge_global_enabled()`` (Linux 7.2 ``mm/shmem.c``; the
    ``SHMEM_HUGE_*`` values are macros there: NEVER 0, ALWAYS 1,
    WITHIN_SIZE 2, ADVISE 3, DENY -1, FORCE -2).
    """
    file_default = ((1 << 10) - 1) & ~1
    inode = vma_obj.vm_file.f_inode
    index = vma.vm_pgoff
    hugepage = bool(vma.vm_flags >> 29 & 1)
    shmem_huge = int(prog["shmem_huge"].value_())
    # shmem_huge_global_enabled()
    if int(inode.i_mode.value_()) & 0o170000 != 0o100000 or shmem_huge == -1:
        global_orders = 0
    elif shmem_huge == -2:
        global_orders = 1 << 9
    else:
        sbinfo = Object(prog, "struct shmem_sb_info *", inode.i_sb.s_fs_info.value_())
        huge = int(sbinfo.huge.value_())
        global_orders = 0
        if huge == 1:
            global_orders = file_default
        if huge == 2:
            global_orders = _shmem_orders_within_size(inode, file_default, index)
        if huge in (2, 3) and not global_orders and hugepage:
            global_orders = file_default
    anon_shmem = _sym_name(prog, int(vma_obj.vm_ops.value_())) == "shmem_anon_vm_ops"
    if not anon_shmem:
        return global_orders
    if shmem_huge == -1:
        return 0
    if shmem_huge == -2:
        return int(prog["huge_shmem_orders_inherit"].value_())
    mask = int(prog["huge_shmem_orders_always"].value_())
    mask |= _shmem_orders_within_size(
        inode, int(prog["huge_shmem_orders_within_size"].value_()), index
    )
    if hugepage:
        mask |= int(prog["huge_shmem_orders_madvise"].value_())
    if global_orders:
        mask |= int(prog["huge_shmem_orders_inherit"].value_())
    return file_default & mask


def _vma_pkey(vm_flags: int) -> int:
    # vma_pkey(): VM_PKEY_BIT0..3 (bits 32-35) on x86.
    return vm_flags >> 32 & 0xF


# ---------------------------------------------------------------------------
# The driver (show_smap / smap_gather_stats)
# ---------------------------------------------------------------------------
def _gate_vma(prog: Program, mm: Object) -> Object | None:
    """``get_gate_vma(mm)`` on x86_64."""
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


def _kernel_page_size(prog: Program, vma_obj: Object, vma: VMA) -> int:
    ops = int(vma_obj.vm_ops.value_())
    if ops:
        fn = int(vma_obj.vm_ops.pagesize.value_())
        if fn and vma.hugetlb_shift:
            return 1 << vma.hugetlb_shift
    return PAGE_SIZE


def smaps(
    mm: Any, *, reader: PageReader | None = None, progress: Any = None, walks: list[Any] | None = None
) -> list[SmapsVMA]:
    """
    Compute ``/proc/PID/smaps`` for *mm* (a drgn ``struct mm_struct *``):
    one :class:`SmapsVMA` per VMA in address order, then the gate VMA
    (``[vsyscall]``) when the mm has one.

    >>> [v.header for v in smaps(mm)][:1]  # doctest: +SKIP
    ['55d4c8a2e000-55d4c8a30000 r--p 00000000 fe:01 1234  ... /usr/bin/cat']

    :param walks: each VMA's :class:`~livewalk.mm.pagewalk.MMWalk` is
        appended to it (for :mod:`livewalk.consistency`)
    """
    from livewalk.mm.pagewalk import MMWalkOps, PageWalkLock, walk_page_vma

    backend = backend_for_mm(mm)
    prog: Program = mm.prog_
    r = reader or PageReader(prog)
    paging = backend.paging
    pkeys = _pkeys_enabled(prog)
    plain_ops = MMWalkOps(
        pmd_entry=_smaps_pte_range,
        hugetlb_entry=_smaps_hugetlb_range,
        walk_lock=PageWalkLock.PGWALK_VMA_RDLOCK_VERIFY,
    )
    shmem_ops = MMWalkOps(
        pmd_entry=_smaps_pte_range,
        hugetlb_entry=_smaps_hugetlb_range,
        pte_hole=_smaps_pte_hole,
        walk_lock=PageWalkLock.PGWALK_VMA_RDLOCK_VERIFY,
    )
    vmas: list[VMA] = list(backend.vmas(mm))  # type: ignore[attr-defined]
    out: list[SmapsVMA] = []
    for vma in vmas:
        vma_obj = vma.obj
        res = _new_entry(prog, vma_obj, vma, mm, pkeys)
        st = _Stats(res, r, vma, bool(vma.vm_flags >> 13 & 1))
        st.paging = paging
        ops = plain_ops
        vm_file = vma_obj.vm_file.read_()
        if int(vm_file.value_()):
            from livewalk.mm.page import shmem_mapping

            mapping = vm_file.f_mapping.read_()
            if shmem_mapping(mapping):
                swapped = shmem_swap_usage(vma_obj, r)
                if not swapped or vma.vm_flags & (1 << 3) or not vma.vm_flags & (1 << 1):
                    res.swap += swapped
                else:
                    ops = shmem_ops
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
        out.append(_new_entry(prog, gate, gvma, mm, pkeys))
    return out


def _new_entry(prog: Program, vma_obj: Object, vma: VMA, mm: Object, pkeys: bool) -> SmapsVMA:
    kps = _kernel_page_size(prog, vma_obj, vma)
    return SmapsVMA(
        vm_start=vma.vm_start,
        vm_end=vma.vm_end,
        vm_flags=vma.vm_flags,
        header=vma_header(prog, vma_obj, mm),
        kernel_page_size=kps,
        mmu_page_size=kps,
        thp_eligible=thp_eligible(prog, vma_obj, vma),
        protection_key=_vma_pkey(vma.vm_flags) if pkeys else None,
        vm_flags_text=vm_flags_mnemonics(prog, vma.vm_flags),
    )
