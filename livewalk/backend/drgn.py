# SPDX-License-Identifier: LGPL-2.1-or-later
"""
drgn backend
------------

The :class:`DrgnBackend` reads page tables, VMAs and paging parameters of a
Linux x86_64 kernel through any :class:`drgn.Program`: the running kernel
(``/proc/kcore``), a vmcore, or a QEMU guest attached over QMP.

Everything the backend needs is read from the target and its debug info:
the paging mode (``__pgtable_l5_enabled``), ``page_offset_base``,
``physical_mask``, the swap-type numbering and the configuration options
that change entry decoding. Nothing is written to the target.

>>> backend = DrgnBackend.for_program(prog)
>>> mm = resolve_mm(prog, 1)
>>> backend.find_vma(mm, 0)
VMA(vm_start=94066870149120, ...)
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import drgn
from drgn import FaultError, Object, Program

from livewalk.arch.x86.pgtable import PAGE_SHIFT, PAGE_SIZE, PageTableLevel, SwapTypes, X86Paging
from livewalk.backend import VMA, TableReadError

__all__ = (
    "DrgnBackend",
    "DrgnVMA",
    "VMFlagBits",
    "resolve_mm",
)

#: ``__START_KERNEL_map``: where the kernel image is mapped on x86_64
#: (``arch/x86/include/asm/page_64_types.h``).
START_KERNEL_MAP = 0xFFFF_FFFF_8000_0000

_CACHE_KEY = "livewalk.backend.drgn"

_ENTRY_TYPES = {
    PageTableLevel.PTE: "pte_t *",
    PageTableLevel.PMD: "pmd_t *",
    PageTableLevel.PUD: "pud_t *",
    PageTableLevel.P4D: "p4d_t *",
    PageTableLevel.PGD: "pgd_t *",
}


@dataclasses.dataclass(frozen=True, slots=True)
class VMFlagBits:
    """
    Bit numbers of the ``vm_flags`` bits livewalk uses. Since Linux 6.19 they
    are the enumerators ``VMA_*_BIT`` of ``include/linux/mm.h`` and are read
    from the target's debug info; the defaults are the Linux 7.2 values.

    :ivar soft_dirty: ``VMA_SOFTDIRTY_BIT``, or ``None`` when the kernel has
        no ``CONFIG_MEM_SOFT_DIRTY`` (``VM_SOFTDIRTY`` is then 0)
    """

    shared: int = 3
    pfnmap: int = 10
    locked: int = 13
    hugetlb: int = 22
    soft_dirty: int | None = 27
    mixedmap: int = 28

    @property
    def VM_SHARED(self) -> int:
        return 1 << self.shared

    @property
    def VM_PFNMAP(self) -> int:
        return 1 << self.pfnmap

    @property
    def VM_LOCKED(self) -> int:
        return 1 << self.locked

    @property
    def VM_HUGETLB(self) -> int:
        return 1 << self.hugetlb

    @property
    def VM_SOFTDIRTY(self) -> int:
        return 0 if self.soft_dirty is None else 1 << self.soft_dirty

    @property
    def VM_MIXEDMAP(self) -> int:
        return 1 << self.mixedmap


@dataclasses.dataclass(frozen=True, slots=True)
class DrgnVMA(VMA):
    """
    A :class:`~livewalk.backend.VMA` snapshot read by the drgn backend, with
    what else the walker may want to know.

    :ivar anonymous: ``vma_is_anonymous(vma)`` (``vma->vm_ops == NULL``)
    """

    anonymous: bool = False


def resolve_mm(prog: Program, target: Any) -> Object:
    """
    Turn *target* into a ``struct mm_struct *`` of *prog*.

    *target* may be a PID (``int``), a ``struct task_struct`` or a
    ``struct mm_struct`` (pointer or object).

    >>> resolve_mm(prog, 1)
    (struct mm_struct *)0xff1100000349c000

    :raises ~livewalk.errors.NoSuchProcessError: if there is no task with
        that PID
    :raises ~livewalk.errors.KernelThreadError: if the task is a kernel
        thread (``mm == NULL``); a task that is exiting raises
        :class:`~livewalk.errors.LivewalkError`
    :raises TypeError: if *target* is none of the above
    """
    from livewalk.target import find_mm, to_mm

    if isinstance(target, bool):
        raise TypeError("expected a PID, a task or an mm, not bool")
    if isinstance(target, int):
        return find_mm(prog, target)[1]  # type: ignore[no-any-return]
    if not isinstance(target, Object):
        raise TypeError(
            f"expected a PID, a struct task_struct or a struct mm_struct, "
            f"not {type(target).__name__}"
        )
    mm = to_mm(target)
    if not mm.value_():
        raise ValueError("NULL mm_struct pointer")
    return mm  # type: ignore[no-any-return]


def _expect_struct(obj: Any, tag: str) -> None:
    """Raise TypeError unless *obj* is a ``struct tag *`` (or a ``struct tag``)."""
    t = getattr(obj, "type_", None)
    if t is None:
        raise TypeError(f"expected a struct {tag} *, not {type(obj).__name__}")
    t = t.unaliased()
    if t.kind == drgn.TypeKind.POINTER:
        t = t.type.unaliased()
    if getattr(t, "tag", None) != tag:
        raise TypeError(f"expected a struct {tag} *, not {obj.type_}")


def _lookup_int(prog: Program, name: str) -> int | None:
    try:
        return prog[name].value_()  # type: ignore[no-any-return]
    except (KeyError, LookupError, FaultError):
        return None


def _read_phys_base(prog: Program) -> int:
    # phys_base is defined in assembly (head_64.S): a symbol without DWARF
    # type, so prog["phys_base"] fails; read the symbol, else VMCOREINFO.
    v = _lookup_int(prog, "phys_base")
    if v is not None:
        return v
    try:
        return prog.read_u64(prog.symbol("phys_base").address)
    except (LookupError, FaultError, ValueError):
        pass
    try:
        info = prog["VMCOREINFO"].string_().decode(errors="replace")
        for line in info.splitlines():
            if line.startswith("NUMBER(phys_base)="):
                return int(line.split("=", 1)[1]) & 0xFFFF_FFFF_FFFF_FFFF
    except (LookupError, FaultError, ValueError):
        pass
    return 0


def _has_symbol(prog: Program, name: str) -> bool:
    try:
        prog.symbol(name)
    except LookupError:
        try:
            prog[name]
        except (KeyError, LookupError):
            return False
    return True


def _kconfig(prog: Program) -> dict[str, str]:
    try:
        from drgn.helpers.linux.kconfig import get_kconfig
    except ImportError:  # pragma: no cover - very old drgn
        return {}
    try:
        return dict(get_kconfig(prog))
    except (LookupError, FaultError, OSError, ValueError):
        # Not built with CONFIG_IKCONFIG (Debian kernels are not).
        return {}


def _vmaflag_names(prog: Program) -> dict[str, int]:
    """
    ``vmaflag_names`` from ``mm/debug.c``: the kernel's own list of the VMA
    flags it was built with (name to mask), ended by a NULL name.
    """
    try:
        arr = prog["vmaflag_names"]
    except KeyError:
        return {}
    out: dict[str, int] = {}
    try:
        i = 0
        while i < 128:
            ent = arr[i].read_()
            if not ent.name.value_():
                break
            out[ent.name.string_().decode()] = ent.mask.value_()
            i += 1
    except FaultError:
        pass
    return out


class DrgnBackend:
    """
    A :class:`~livewalk.backend.PageTableBackend` for a
    :class:`drgn.Program` of a Linux x86_64 kernel.

    Use :meth:`for_program` to get the one backend of a program.

    :ivar prog: the program
    :ivar paging: the target's :class:`~livewalk.arch.x86.pgtable.X86Paging`
    :ivar vm_flag_bits: the target's :class:`VMFlagBits`
    """

    paging: X86Paging

    def __init__(self, prog: Program) -> None:
        self.prog = prog
        self._live = bool(prog.flags & drgn.ProgramFlags.IS_LIVE)
        self._kconfig = _kconfig(prog)
        self._vmaflags = _vmaflag_names(prog)
        self.vm_flag_bits = self._read_vm_flag_bits()
        self.paging = self._read_paging()
        self.phys_base = _read_phys_base(prog)
        self._init_mm_addr: int | None = None
        self._vma_cache: dict[int, tuple[tuple[int, ...], list[int], list[VMA]]] = {}
        self._hstate_shift: dict[int, int] = {}
        self._stamp_offsets: list[tuple[int, int]] | None = None

    @classmethod
    def for_program(cls, prog: Program) -> DrgnBackend:
        """
        Return the backend of *prog*, creating it on first use (it is kept in
        ``prog.cache``).
        """
        backend = prog.cache.get(_CACHE_KEY)
        if backend is None:
            backend = cls(prog)
            prog.cache[_CACHE_KEY] = backend
        return backend  # type: ignore[no-any-return]

    # -- configuration ---------------------------------------------------

    def config(self, name: str) -> bool | None:
        """
        ``IS_ENABLED(CONFIG_<name>)`` if the kernel embeds its configuration
        (``CONFIG_IKCONFIG``), else ``None``.
        """
        if not self._kconfig:
            return None
        return self._kconfig.get("CONFIG_" + name) in ("y", "m")

    def _read_vm_flag_bits(self) -> VMFlagBits:
        prog = self.prog
        default = VMFlagBits()

        def bit(name: str, fallback: int) -> int:
            # Since Linux 6.19 the VM flag bit numbers are enumerators.
            v = _lookup_int(prog, f"VMA_{name}_BIT")
            if v is not None:
                return v
            mask = self._vmaflags.get(name.lower())
            if mask:
                return mask.bit_length() - 1
            return fallback

        sd_enabled = self.config("MEM_SOFT_DIRTY")
        if sd_enabled is None:
            # mm/debug.c lists "softdirty" only with CONFIG_MEM_SOFT_DIRTY.
            sd_enabled = "softdirty" in self._vmaflags if self._vmaflags else True
        return VMFlagBits(
            shared=bit("SHARED", default.shared),
            pfnmap=bit("PFNMAP", default.pfnmap),
            locked=bit("LOCKED", default.locked),
            hugetlb=bit("HUGETLB", default.hugetlb),
            soft_dirty=bit("SOFTDIRTY", 27) if sd_enabled else None,
            mixedmap=bit("MIXEDMAP", default.mixedmap),
        )

    def _read_swap_types(self) -> SwapTypes:
        prog = self.prog
        migration = self.config("MIGRATION")
        memory_failure = self.config("MEMORY_FAILURE")
        device_private = self.config("DEVICE_PRIVATE")
        if migration is None:
            migration = _has_symbol(prog, "migration_entry_wait")
        if memory_failure is None:
            memory_failure = _has_symbol(prog, "memory_failure")
        if device_private is None:
            # swap_info[] has MAX_SWAPFILES slots; what is left of the 31
            # special types after hwpoison and migration is DEVICE_PRIVATE.
            max_swapfiles = None
            try:
                max_swapfiles = len(prog["swap_info"])
            except (KeyError, TypeError, ValueError):
                pass
            if max_swapfiles is not None:
                rest = 31 - max_swapfiles - int(memory_failure) - 3 * int(migration)
                device_private = rest == 3
            else:
                device_private = _has_symbol(prog, "memremap_pages")
        return SwapTypes.from_config(
            device_private=device_private, migration=migration, memory_failure=memory_failure
        )

    def _read_paging(self) -> X86Paging:
        prog = self.prog
        l5 = _lookup_int(prog, "__pgtable_l5_enabled")
        if l5 is None:
            shift = _lookup_int(prog, "pgdir_shift")
            levels = 5 if shift == 48 else 4
        else:
            levels = 5 if l5 else 4
        page_offset = _lookup_int(prog, "page_offset_base")
        if page_offset is None:
            page_offset = 0xFF11000000000000 if levels == 5 else 0xFFFF888000000000
        physical_mask = _lookup_int(prog, "physical_mask")
        if physical_mask is None:
            physical_mask = (1 << 52) - 1
        uffd = self.config("USERFAULTFD")
        if uffd is None:
            # HAVE_ARCH_USERFAULTFD_WP is selected by X86_64 && USERFAULTFD.
            uffd = _has_symbol(prog, "handle_userfault")
        pti = self.config("MITIGATION_PAGE_TABLE_ISOLATION")
        if pti is None:
            pti = _has_symbol(prog, "pti_init")
        return X86Paging(
            levels=levels,
            page_offset=page_offset,
            physical_mask=physical_mask,
            swap_types=self._read_swap_types(),
            uffd_wp=uffd,
            soft_dirty=self.vm_flag_bits.soft_dirty is not None,
            pti=pti,
        )

    # -- tables ------------------------------------------------------------

    def read_table(self, paddr: int) -> Sequence[int]:
        """
        Read the page-table page at *paddr* whole (one read) and return its
        512 entries as a ``memoryview`` of ``'Q'``.

        :raises TableReadError: if drgn cannot read it
        """
        try:
            data = self.prog.read(paddr, PAGE_SIZE, True)
        except FaultError as e:
            raise TableReadError(paddr, f"cannot read page table at physical address {paddr:#x}: {e}") from None
        return memoryview(data).cast("Q")

    def mm_pgd(self, mm: Any) -> int:
        """``mm->pgd`` as an integer."""
        _expect_struct(mm, "mm_struct")
        return mm.pgd.value_()  # type: ignore[no-any-return]

    def pgd_phys(self, pgd: int) -> int:
        """
        ``__pa()`` of a top-level table: kernel-image addresses (such as
        ``swapper_pg_dir``) through ``phys_base``, others through the direct
        map (as ``__phys_addr`` in ``arch/x86/include/asm/page_64.h``).
        """
        pgd &= 0xFFFF_FFFF_FFFF_FFFF
        if pgd >= START_KERNEL_MAP:
            # phys_base is unsigned and wraps when the kernel is loaded below
            # CONFIG_PHYSICAL_START (KASLR): modular arithmetic, as in __pa()
            return (pgd - START_KERNEL_MAP + self.phys_base) & 0xFFFF_FFFF_FFFF_FFFF
        return (pgd - self.paging.page_offset) & 0xFFFF_FFFF_FFFF_FFFF

    def entry_object(self, level: int, kaddr: int) -> Any:
        """The ``pte_t *`` ... ``pgd_t *`` Object at *kaddr*."""
        return Object(self.prog, _ENTRY_TYPES[PageTableLevel(level)], kaddr)

    @property
    def zero_pfn(self) -> int | None:
        """``zero_page_pfn`` (``zero_pfn`` before Linux 7.1), the shared zero page."""
        for name in ("zero_page_pfn", "zero_pfn"):
            v = _lookup_int(self.prog, name)
            if v is not None:
                return v
        return None

    @property
    def huge_zero_pfn(self) -> int | None:
        """``huge_zero_pfn``: the huge zero folio, or ``None`` while it is not allocated."""
        v = _lookup_int(self.prog, "huge_zero_pfn")
        if v is None or v == 0xFFFF_FFFF_FFFF_FFFF:
            return None
        return v

    # -- mm and VMAs ---------------------------------------------------------

    def init_mm(self) -> Any:
        """``&init_mm``."""
        return self.prog["init_mm"].address_of_()

    def is_init_mm(self, mm: Any) -> bool:
        """``mm == &init_mm``."""
        if self._init_mm_addr is None:
            self._init_mm_addr = self.prog["init_mm"].address_
        return int(mm.value_() if isinstance(mm, Object) else mm) == self._init_mm_addr

    def vma_mm(self, vma: VMA) -> Any:
        """``vma->vm_mm``."""
        if vma.obj is None:
            return None
        mm = vma.obj.vm_mm.read_()
        return mm if mm.value_() else None

    def hugetlb_shift(self, vma_obj: Object, vm_flags: int | None = None) -> int:
        """
        ``huge_page_shift(hstate_vma(vma))`` for a VM_HUGETLB VMA (the hstate
        of the hugetlbfs superblock of ``vma->vm_file``); 0 for other VMAs.
        """
        if vm_flags is None:
            vm_flags = vma_obj.vm_flags.value_()
        if not vm_flags & self.vm_flag_bits.VM_HUGETLB:
            return 0
        sb = vma_obj.vm_file.f_inode.i_sb
        key = sb.value_()
        shift = self._hstate_shift.get(key)
        if shift is None:
            info = Object(self.prog, "struct hugetlbfs_sb_info *", sb.s_fs_info.value_())
            shift = info.hstate.order.value_() + PAGE_SHIFT
            self._hstate_shift[key] = shift
        return shift

    def vma_snapshot(self, vma_obj: Object) -> VMA:
        """Snapshot a ``struct vm_area_struct *`` into a :class:`VMA`."""
        _expect_struct(vma_obj, "vm_area_struct")
        v = vma_obj[0].read_()
        flags = v.vm_flags.value_()
        return DrgnVMA(
            vm_start=v.vm_start.value_(),
            vm_end=v.vm_end.value_(),
            vm_flags=flags,
            vm_pgoff=v.vm_pgoff.value_(),
            hugetlb_shift=self.hugetlb_shift(vma_obj, flags),
            pfnmap=bool(flags & self.vm_flag_bits.VM_PFNMAP),
            obj=vma_obj,
            anonymous=not v.vm_ops.value_(),
        )

    def mm_stamp(self, mm: Object) -> tuple[int, ...]:
        """
        Cheap state of an mm that changes whenever its VMA tree can have
        changed: ``(mm_lock_seq, map_count, mm_mt.ma_root)``, read fresh.
        ``mm_lock_seq`` (``include/linux/mmap_lock.h``, CONFIG_PER_VMA_LOCK)
        is odd while a writer holds the mmap lock; a kernel without it
        reads as 0 there.
        """
        if self._stamp_offsets is None:
            mm_type = self.prog.type("struct mm_struct")
            offs: list[tuple[int, int]] = []
            for member, size in (
                ("mm_lock_seq.sequence", 4),
                ("map_count", 4),
                ("mm_mt.ma_root", 8),
            ):
                try:
                    offs.append((drgn.offsetof(mm_type, member), size))
                except LookupError:
                    offs.append((-1, size))
            self._stamp_offsets = offs
        base = mm.value_()
        out = []
        for off, size in self._stamp_offsets:
            out.append(0 if off < 0 else int.from_bytes(self.prog.read(base + off, size), "little"))
        return tuple(out)

    def vmas(self, mm: Any) -> list[VMA]:
        """
        All VMAs of *mm* in address order (``for_each_vma``), as
        :class:`VMA` snapshots. The list is cached and read again only when
        the mm's VMA tree may have changed (on a live kernel).
        """
        key = mm.value_()
        cached = self._vma_cache.get(key)
        if cached is None:
            _expect_struct(mm, "mm_struct")
        stamp = self.mm_stamp(mm) if (self._live or cached is None) else cached[0]
        if cached is not None and cached[0] == stamp:
            return cached[2]
        from drgn.helpers.linux.mm import for_each_vma

        vmas = [self.vma_snapshot(v) for v in for_each_vma(mm)]
        vmas.sort(key=lambda v: v.vm_start)
        ends = [v.vm_end for v in vmas]
        self._vma_cache[key] = (stamp, ends, vmas)
        return vmas

    def find_vma(self, mm: Any, addr: int) -> VMA | None:
        """``find_vma(mm, addr)``: the first VMA with ``vm_end > addr``."""
        vmas = self.vmas(mm)
        ends = self._vma_cache[mm.value_()][1]
        i = bisect.bisect_right(ends, addr)
        return vmas[i] if i < len(vmas) else None

    def mapping_vmas(self, mapping: Any, first_index: int, last_index: int) -> Iterable[VMA]:
        """
        The VMAs of ``mapping->i_mmap`` overlapping file pages
        [*first_index*, *last_index*] in ``vma_interval_tree_foreach`` order
        (ascending ``vm_pgoff``; the subtree maximum prunes the search).
        """
        prog = self.prog
        vma_type = prog.type("struct vm_area_struct *")
        rb_off = drgn.offsetof(prog.type("struct vm_area_struct"), "shared.rb")

        def vma_of(node: Object) -> Object:
            return Object(prog, vma_type, node.value_() - rb_off)

        def last_of(v: Object) -> int:
            pages = (v.vm_end.value_() - v.vm_start.value_()) >> PAGE_SHIFT
            return v.vm_pgoff.value_() + pages - 1  # type: ignore[no-any-return]

        def visit(node: Object) -> Iterator[VMA]:
            while node.value_():
                v = vma_of(node)
                if v.shared.rb_subtree_last.value_() < first_index:
                    return
                left = node.rb_left.read_()
                if left.value_():
                    yield from visit(left)
                start = v.vm_pgoff.value_()
                if start > last_index:
                    return
                if last_of(v) >= first_index:
                    yield self.vma_snapshot(v)
                node = node.rb_right.read_()

        root = mapping.i_mmap.rb_root.rb_node.read_()
        yield from visit(root)
