# SPDX-License-Identifier: LGPL-2.1-or-later
"""
drgn backend
------------

The :class:`DrgnBackend` is the :class:`~livewalk.backend.PageTableBackend`
of a Linux x86_64 or arm64 kernel read through any :class:`drgn.Program`:
the running kernel (``/proc/kcore``), a vmcore, or a QEMU guest attached
over QMP. The architecture is the program's (``prog.platform.arch``).

Everything the backend needs is read from the target and its debug info:
the paging geometry (x86_64: ``__pgtable_l5_enabled``,
``page_offset_base``, ``physical_mask``; arm64: ``PAGE_SHIFT``,
``VA_BITS`` and ``vabits_actual``, ``memstart_addr``, ``kimage_voffset``,
as drgn's own arm64 translation reads them), the swap-type numbering, the
``vm_flags`` bits, the kernel's features (:mod:`livewalk.kernel`) and the
configuration options that change entry decoding. Nothing is written to the target. Importing
this module registers the backend for drgn Objects
(:func:`~livewalk.backend.backend_for_mm`).

>>> backend = DrgnBackend.for_program(prog)            # doctest: +SKIP
>>> mm = resolve_mm(prog, 1)                           # doctest: +SKIP
>>> backend.find_vma(mm, 0)                            # doctest: +SKIP
VMA(vm_start=94066870149120, ...)
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import dataclasses
import operator
import struct
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, NamedTuple

import drgn
from drgn import FaultError, IntegerLike, Object, Program
from drgn.helpers.linux.mm import compound_head, pfn_to_page

from livewalk.arch import ULONG_MAX, ArchPaging, PageTableLevel
from livewalk.arch.arm64.pgtable import Arm64Paging
from livewalk.arch.arm64.pgtable_hwdef import VA_BITS_CHOICES, arm64_hw_pgtable_levels
from livewalk.arch.x86.pgtable import X86Paging
from livewalk.backend import TableReadError, register_backend
from livewalk.kernel import KernelFeatures
from livewalk.mm.swapops import SwapTypes
from livewalk.mm.vma import VMA, VMFlagBits
from livewalk.task import struct_tag, type_unaliased

__all__ = (
    "DrgnBackend",
    "pause_after_table_read",
    "vmcoreinfo_number",
)

_CACHE_KEY = "livewalk.backend.drgn"

#: How many Objects' struct tags :meth:`DrgnBackend._struct_tag` keeps.
_TAGS_KEPT = 64

_ENTRY_TYPES = {
    PageTableLevel.PTE: "pte_t *",
    PageTableLevel.PMD: "pmd_t *",
    PageTableLevel.PUD: "pud_t *",
    PageTableLevel.P4D: "p4d_t *",
    PageTableLevel.PGD: "pgd_t *",
}

#: The members of ``struct mm_struct`` read for :meth:`DrgnBackend.mm_stamp`,
#: in order, with their sizes: ``mm_lock_seq`` (a seqcount bumped by every
#: mmap write lock and unlock, with ``CONFIG_PER_VMA_LOCK``), ``map_count``
#: and the maple tree root.
_STAMP_MEMBERS = (("mm_lock_seq.sequence", 4), ("map_count", 4), ("mm_mt.ma_root", 8))

#: How many mms' :data:`_HEAD_MEMBERS` a vmcore's backend keeps.
_HEADS_KEPT = 64

#: The members of ``struct mm_struct`` every call asks for at its start:
#: the stamp's, then ``pgd`` and ``task_size``. They lie close together
#: (within 512 bytes on Linux 7.2), and are read in one read (see
#: :meth:`DrgnBackend.call_scope`).
_HEAD_MEMBERS = (*_STAMP_MEMBERS, ("pgd", 8), ("task_size", 8))

#: The longest span of ``struct mm_struct`` read at once for
#: :data:`_HEAD_MEMBERS`; a kernel laid out wider reads the stamp, ``pgd``
#: and ``task_size`` in three reads.
_HEAD_SPAN_MAX = 1024

_U64 = struct.Struct("<Q")


class _VmemmapLeaf:
    """
    The PMD leaf that maps a stretch of the vmemmap (see
    :meth:`DrgnBackend.read_vmemmap`): where the entry is, what it held,
    the physical address it maps, and the call scope it was last checked in.
    """

    __slots__ = ("entry_pa", "value", "phys", "checked")

    def __init__(self, entry_pa: int, value: int, phys: int, checked: int) -> None:
        self.entry_pa = entry_pa
        self.value = value
        self.phys = phys
        self.checked = checked


class _MMHead(NamedTuple):
    """:data:`_HEAD_MEMBERS` of one mm, as read in one read."""

    stamp: tuple[int, ...]
    pgd: int
    task_size: int


class _Layout(NamedTuple):
    """
    How to read some members of ``struct mm_struct`` in one read: the
    first one's offset, the span's length, the unpacker (the members in
    address order) and, in the order asked, where each one is in what
    it unpacks (-1: the kernel lacks it).
    """

    offset: int
    length: int
    unpack: struct.Struct
    order: tuple[int, ...]
    #: the unpacked values in the order asked, when the kernel has them all
    pick: Callable[[tuple[int, ...]], tuple[int, ...]] | None


class _CallScope:
    """
    One :meth:`DrgnBackend.call_scope`: re-entrant; the outermost scope's
    thread owns it (another thread's calls meanwhile read their own).
    """

    __slots__ = ("_backend", "_counted")

    def __init__(self, backend: DrgnBackend) -> None:
        self._backend = backend
        self._counted = False

    def __enter__(self) -> None:
        b = self._backend
        me = threading.get_ident()
        if not b._scope_depth:
            b._scope_owner = me
            b._scope_serial += 1
        elif b._scope_owner != me:
            return  # another thread's scope: this one reads fresh
        b._scope_depth += 1
        self._counted = True

    def __exit__(self, *exc: object) -> None:
        if self._counted:
            b = self._backend
            b._scope_depth -= 1
            if not b._scope_depth:
                b._scope_heads.clear()


#: The scope of a backend whose reads need none.
_NO_SCOPE: AbstractContextManager[None] = nullcontext()


def _expect_struct(obj: Any, tag: str) -> None:
    """Raise TypeError unless *obj* is a ``struct tag *`` (or a ``struct tag``)."""
    if not isinstance(obj, Object):
        raise TypeError(f"expected a struct {tag} *, not {type(obj).__name__}")
    if struct_tag(obj)[0] != tag:
        raise TypeError(f"expected a struct {tag} *, not {obj.type_}")


def _lookup_int(prog: Program, name: str) -> int | None:
    try:
        return prog[name].value_()  # type: ignore[no-any-return]
    except (KeyError, LookupError, FaultError):
        return None


def vmcoreinfo_number(prog: Program, name: str) -> int | None:
    """``NUMBER(name)=`` of the kernel's VMCOREINFO note (decimal or ``0x`` hex)."""
    try:
        info = prog["VMCOREINFO"].string_().decode(errors="replace")
    except (LookupError, FaultError, ValueError):
        return None
    key = f"NUMBER({name})="
    for line in info.splitlines():
        if line.startswith(key):
            try:
                return int(line[len(key) :], 0) & ULONG_MAX
            except ValueError:
                return None
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
    v = vmcoreinfo_number(prog, "phys_base")
    return 0 if v is None else v


def _drgn_walks_each_read(prog: Program) -> bool:
    """
    Whether drgn translates each virtual read of *prog* by walking the
    kernel page tables with reads of its own: a program with no core dump
    behind it (QEMU over QMP; ``/proc/kcore`` and vmcores have the
    kernel's virtual addresses, or a translation of their own). drgn before
    0.2 has no ``core_dump_path``, and no QMP either.
    """
    try:
        return prog.core_dump_path is None
    except AttributeError:
        return False


def _pgtable_levels(prog: Program) -> int | None:
    """
    ``CONFIG_PGTABLE_LEVELS`` from the entry types: a level folded by
    ``asm-generic/pgtable-nop*d.h`` wraps the level above (``typedef struct
    { pud_t pud; } pmd_t;``) instead of holding a value of its own.
    """
    levels = 2
    for name, member in (("pmd_t", "pmd"), ("pud_t", "pud"), ("p4d_t", "p4d")):
        try:
            t = type_unaliased(prog.type(name))
        except LookupError:
            return None
        if not t.has_member(member):
            break
        levels += 1
    return levels


def _arm64_va_bits_of_levels(page_shift: int, levels: int | None) -> int:
    """
    The ``CONFIG_ARM64_VA_BITS`` choice that gives *levels* with
    *page_shift*, where VMCOREINFO does not say: the largest up to 48 (16K
    with 4 levels and 64K with 3 are also built for 52 bits, which only
    VMCOREINFO tells apart; 4K with 5 levels is 52 alone); 48 if unknown.
    """
    fits = [v for v in VA_BITS_CHOICES.get(page_shift, ()) if arm64_hw_pgtable_levels(v, page_shift) == levels]
    return max((v for v in fits if v <= 48), default=max(fits, default=48))


def _symbol_range(prog: Program, start: str, end: str) -> tuple[int, int]:
    """The addresses of two symbols (the kernel image: ``_text``, ``_end``), or an empty range."""
    try:
        return prog.symbol(start).address, prog.symbol(end).address
    except LookupError:
        return 0, 0


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


_MAPLE_NODE_MASK = 255
_MAPLE_NODE_TYPE_SHIFT = 3
_MAPLE_NODE_TYPE_MASK = 0xF


def _xa_is_node(entry: int) -> bool:
    """``xa_is_node()``: an internal entry above 4096 (a tree node)."""
    return entry & 3 == 2 and entry > 4096


class _MapleKind:
    """One node kind of ``struct maple_node`` (``mr64`` or ``ma64``): where its pivots, slots and end are."""

    __slots__ = ("pivots", "slots", "n_pivots", "meta_end", "arange")

    def __init__(self, node_type: drgn.Type, member: str, arange: bool) -> None:
        kind = node_type.member(member).type
        self.n_pivots = kind.member("pivot").type.length or 0
        n_slots = kind.member("slot").type.length or 0
        base = drgn.offsetof(node_type, member)
        self.pivots = struct.Struct(f"<{drgn.offsetof(kind, 'pivot') + base}x{self.n_pivots}Q")
        self.slots = struct.Struct(f"<{drgn.offsetof(kind, 'slot') + base}x{n_slots}Q")
        self.meta_end = base + drgn.offsetof(kind, "meta.end")
        self.arange = arange

    def decode(self, data: bytes, hi: int) -> tuple[tuple[int, ...], tuple[int, ...], int]:
        """(pivots, slots, end) of a node whose range ends at *hi*, as drgn's ``_mte_to_node``."""
        pivots = self.pivots.unpack_from(data)
        slots = self.slots.unpack_from(data)
        n = self.n_pivots
        if self.arange:
            end = data[self.meta_end]
        else:
            last = pivots[n - 1]
            if not last:
                end = data[self.meta_end]
            elif last == hi:
                end = n - 1
            else:
                end = n
        return pivots, slots, min(end, len(slots) - 1)


class _MapleLayout:
    """``struct maple_node`` of a kernel: its size and the kinds by ``enum maple_type``."""

    __slots__ = ("size", "kinds", "leaf_type")

    def __init__(self, size: int, kinds: dict[int, _MapleKind], leaf_type: int) -> None:
        self.size = size
        self.kinds = kinds
        self.leaf_type = leaf_type

    @classmethod
    def of(cls, prog: Program) -> _MapleLayout:
        node = prog.type("struct maple_node")
        leaf = prog["maple_leaf_64"].value_()
        range64 = _MapleKind(node, "mr64", False)
        kinds = {
            leaf: range64,
            prog["maple_range_64"].value_(): range64,
            prog["maple_arange_64"].value_(): _MapleKind(node, "ma64", True),
        }
        return cls(drgn.sizeof(node), kinds, leaf)


class _MMVMAs:
    """The VMAs of one mm, as read under one :meth:`DrgnBackend.mm_stamp`."""

    __slots__ = ("ends", "stamp", "vmas")

    def __init__(self, stamp: tuple[int, ...], vmas: list[VMA]) -> None:
        self.stamp = stamp
        self.vmas = vmas
        self.ends = [v.vm_end for v in vmas]


class DrgnBackend:
    """
    The :class:`~livewalk.backend.PageTableBackend` of a
    :class:`drgn.Program` of a Linux x86_64 or arm64 kernel.

    Use :meth:`for_program` to get the one backend of a program.

    :ivar prog: the program
    :ivar paging: the target's :class:`~livewalk.arch.ArchPaging`
        (:class:`~livewalk.arch.x86.pgtable.X86Paging` or
        :class:`~livewalk.arch.arm64.pgtable.Arm64Paging`)
    :ivar features: the target's :class:`~livewalk.kernel.KernelFeatures`
    :ivar vm_flag_bits: the target's :class:`~livewalk.mm.vma.VMFlagBits`
    :raises ValueError: a program of another architecture
    """

    def __init__(self, prog: Program) -> None:
        self.prog: Program = prog
        self._live = bool(prog.flags & drgn.ProgramFlags.IS_LIVE)
        self._kconfig = _kconfig(prog)
        self._vmaflags = _vmaflag_names(prog)
        self.features = KernelFeatures.from_program(prog)
        self.vm_flag_bits = self._read_vm_flag_bits()
        self.paging: ArchPaging = self._read_paging()
        self._image = _symbol_range(prog, "_text", "_end")
        self._init_mm_addr: int | None = None
        self._zero_pfn: int | None = None
        self._vma_cache: dict[int, _MMVMAs] = {}
        self._hstate_shift: dict[int, int] = {}
        self._layouts: dict[int, _Layout] = {}
        # the call scope (see call_scope): how deep, its thread, and the mm
        # heads read in it (a vmcore's: kept, see _mm_head)
        self._scope_depth = 0
        self._scope_owner = 0
        self._scope_heads: dict[int, _MMHead] = {}
        self._scope_serial = 0  # counts the outermost scopes
        # vmemmap reads by physical address (see read_vmemmap): the PMD
        # leaves met, by vmemmap address >> PMD_SHIFT (None: read it as drgn
        # does); only where drgn pays a page-table walk for a virtual read
        # (no core dump: QEMU over QMP)
        self._vmemmap_leaves: dict[int, _VmemmapLeaf | None] = {}
        self._vmemmap_by_phys = _drgn_walks_each_read(prog)
        self._pmd_shift = self.paging.level_shift(PageTableLevel.PMD)
        self._init_pgd_pa: int | None = None
        self._mm_offsets: dict[str, int] = {}
        self._maple: _MapleLayout | bool | None = None
        self._vma_ptr_type: drgn.Type | None = None
        # (tag, is_pointer) of the last Objects passed in, by id(), each
        # kept with its answer (so that its id() is not reused meanwhile;
        # an Object's type never changes). drgn's Type objects hash and
        # compare by identity, a new one per .type_: no key.
        self._tags: dict[int, tuple[Object, tuple[str | None, bool]]] = {}

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

    @property
    def live(self) -> bool:
        """
        The target can change while it is read (drgn's ``IS_LIVE``: the
        running kernel, a QEMU guest over QMP); false for a vmcore. A
        guest that is stopped still counts as live: drgn cannot tell.
        """
        return self._live

    def _struct_tag(self, obj: Object) -> tuple[str | None, bool]:
        """:func:`~livewalk.task.struct_tag` of *obj*, worked out once per Object."""
        hit = self._tags.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        tag = struct_tag(obj)
        if len(self._tags) >= _TAGS_KEPT:
            self._tags.clear()
        self._tags[id(obj)] = (obj, tag)
        return tag

    def _expect(self, obj: Any, tag: str) -> None:
        """:func:`_expect_struct`, with the type's tag looked up once per type."""
        if not isinstance(obj, Object) or self._struct_tag(obj)[0] != tag:
            _expect_struct(obj, tag)

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
            if self.features.vma_flag_bit_enums:
                v = _lookup_int(prog, f"VMA_{name}_BIT")
                if v is not None:
                    return v
            mask = self._vmaflags.get(name.lower().replace("_", ""))
            if mask:
                return mask.bit_length() - 1
            return fallback

        sd_enabled = self.config("MEM_SOFT_DIRTY")
        if sd_enabled is None:
            # mm/debug.c lists "softdirty" only with CONFIG_MEM_SOFT_DIRTY.
            sd_enabled = "softdirty" in self._vmaflags if self._vmaflags else True
        fields = {
            name: bit(name.upper(), fallback)
            for name, fallback in dataclasses.asdict(default).items()
            if name != "soft_dirty"
        }
        return VMFlagBits(soft_dirty=bit("SOFTDIRTY", 27) if sd_enabled else None, **fields)

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

    def _read_paging(self) -> ArchPaging:
        """The paging of the program's architecture."""
        arch = self.prog.platform.arch if self.prog.platform is not None else None
        if arch == drgn.Architecture.X86_64:
            return self._read_x86_paging()
        if arch == drgn.Architecture.AARCH64:
            return self._read_arm64_paging()
        raise ValueError(f"livewalk reads x86_64 and arm64 kernels, not {arch}")

    def _uffd_wp(self) -> bool:
        """
        ``CONFIG_HAVE_ARCH_USERFAULTFD_WP``: mm/debug.c names the ``uffd_wp``
        VMA flag only with it; else USERFAULTFD (x86_64 and, since Linux
        6.14, arm64 select it with USERFAULTFD).
        """
        if self._vmaflags:
            return "uffd_wp" in self._vmaflags
        uffd = self.config("USERFAULTFD")
        if uffd is None:
            uffd = _has_symbol(self.prog, "handle_userfault")
        return uffd

    def _read_arm64_paging(self) -> Arm64Paging:
        """
        arm64: ``PAGE_SHIFT``; ``VA_BITS`` from VMCOREINFO (else the
        configuration, else from ``CONFIG_PGTABLE_LEVELS`` as the entry
        types show it); ``vabits_actual`` (a variable in older kernels, a
        read of TCR_EL1 in 7.2: then ``64 - TCR_EL1_T1SZ`` from VMCOREINFO,
        as drgn's arm64 translation reads it), which says whether a 52-bit
        kernel folded a level at boot; ``memstart_addr`` (``PHYS_OFFSET``,
        lowered by a 52-bit kernel running with 48 bits) and
        ``kimage_voffset``.
        """
        prog = self.prog
        page_shift = _lookup_int(prog, "PAGE_SHIFT")
        if page_shift is None:
            size = vmcoreinfo_number(prog, "PAGESIZE") or 4096
            page_shift = size.bit_length() - 1
        va_bits = vmcoreinfo_number(prog, "VA_BITS")
        if va_bits is None and "CONFIG_ARM64_VA_BITS" in self._kconfig:
            va_bits = int(self._kconfig["CONFIG_ARM64_VA_BITS"])
        if va_bits is None:
            va_bits = _arm64_va_bits_of_levels(page_shift, _pgtable_levels(prog))
        actual = _lookup_int(prog, "vabits_actual")
        if actual is None:
            t1sz = vmcoreinfo_number(prog, "TCR_EL1_T1SZ")
            actual = 64 - t1sz if t1sz else va_bits
        pa52 = self.config("ARM64_PA_BITS_52")
        if pa52 is None:
            # 52-bit VAs imply 52-bit PAs on 4K and 16K (Linux 6.9 on); 64K
            # descriptors hold PA[51:48] in bits [15:12] or zeros
            pa52 = page_shift == 16 or va_bits == 52
        phys_offset = _lookup_int(prog, "memstart_addr")
        if phys_offset is None:
            phys_offset = vmcoreinfo_number(prog, "PHYS_OFFSET") or 0
        kimage_voffset = _lookup_int(prog, "kimage_voffset")
        if kimage_voffset is None:
            kimage_voffset = vmcoreinfo_number(prog, "kimage_voffset") or 0
        contpte = self.config("ARM64_CONTPTE")
        if contpte is None:
            contpte = _has_symbol(prog, "contpte_ptep_get")
        return Arm64Paging(
            page_shift=page_shift,
            va_bits=va_bits,
            vabits_actual=min(actual, va_bits),
            pa_bits_52=pa52,
            phys_offset=phys_offset,
            kimage_voffset=kimage_voffset & ULONG_MAX,
            contpte=contpte,
            uffd_wp=self._uffd_wp(),
            swap_types=self._read_swap_types(),
        )

    def _pti_config(self) -> bool | None:
        """
        ``CONFIG_MITIGATION_PAGE_TABLE_ISOLATION``, named
        ``CONFIG_PAGE_TABLE_ISOLATION`` before Linux 6.9: either set in the
        embedded configuration; ``None`` without one.
        """
        return self.config("MITIGATION_PAGE_TABLE_ISOLATION") or self.config("PAGE_TABLE_ISOLATION")

    def _read_x86_paging(self) -> X86Paging:
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
        uffd = self._uffd_wp()
        pti = self._pti_config()
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
            phys_base=_read_phys_base(prog),
        )

    # -- tables ------------------------------------------------------------

    def read_table(self, paddr: int) -> Sequence[int]:
        """
        Read the page-table page at *paddr* whole (one read) and return its
        entries (``PTRS_PER_PTE``) as a ``memoryview`` of ``'Q'``.

        :raises TableReadError: if drgn cannot read it
        """
        try:
            data = self.prog.read(paddr, self.paging.page_size, True)
        except FaultError as e:
            raise TableReadError(paddr, f"cannot read page table at physical address {paddr:#x}: {e}") from None
        return memoryview(data).cast("Q")

    @property
    def vmemmap_reader(self) -> Callable[[int, int], bytes]:
        """
        The function to read the vmemmap with, ``(addr, size) -> bytes``:
        :meth:`read_vmemmap` where it reads by physical address, else
        ``prog.read`` itself (no call in between on ``/proc/kcore`` or a
        vmcore).
        """
        return self.read_vmemmap if self._vmemmap_by_phys else self.prog.read

    def read_vmemmap(self, addr: int, size: int) -> bytes:
        """
        *size* bytes of the vmemmap (``struct page`` s) at *addr*, as
        ``prog.read(addr, size)`` gives them; by physical address where
        drgn's own translation costs more than the read: over QMP, drgn
        walks the page tables for every virtual read, four reads more (a
        4 KiB read takes 8.4 us virtual, 2.0 us physical). The translation
        is kept per PMD leaf of the vmemmap and, on a live target, checked
        once per :meth:`call_scope` (every time outside one) by reading the
        leaf entry again: HVO and memory hotplug remap the vmemmap. A
        vmemmap not mapped by PMD leaves is read as drgn reads it.

        >>> backend.read_vmemmap(vmemmap_base + 64 * pfn, 64)  # doctest: +SKIP
        b'...'

        :raises FaultError: as ``prog.read``
        """
        if self._vmemmap_by_phys:
            pa = self._vmemmap_pa(addr, size)
            if pa is not None:
                return self.prog.read(pa, size, True)
        return self.prog.read(addr, size)

    def _vmemmap_pa(self, addr: int, size: int) -> int | None:
        """The physical address of ``[addr, addr + size)`` of the vmemmap if one PMD leaf maps it all."""
        shift = self._pmd_shift
        key = addr >> shift
        if (addr + size - 1) >> shift != key:
            return None
        serial = self._scope_serial if self._scope_depth and self._scope_owner == threading.get_ident() else -1
        leaves = self._vmemmap_leaves
        if key not in leaves:
            leaf = leaves[key] = self._vmemmap_leaf(addr, serial)
        else:
            leaf = leaves[key]
            if leaf is not None and self._live and (serial < 0 or leaf.checked != serial):
                try:
                    value = _U64.unpack(self.prog.read(leaf.entry_pa, 8, True))[0]
                except FaultError:
                    value = None
                if value == leaf.value:
                    leaf.checked = serial
                else:
                    leaf = leaves[key] = self._vmemmap_leaf(addr, serial)
        if leaf is None:
            return None
        return leaf.phys + (addr & ((1 << shift) - 1))

    def _vmemmap_leaf(self, addr: int, serial: int) -> _VmemmapLeaf | None:
        """
        The PMD leaf of the kernel page tables (``init_mm``) that maps
        *addr*, found as the walker's ``p?d_offset()`` finds it (a level
        folded at build time is its parent's entry; one folded at boot, on
        arm64, is indexed in its parent's page), or ``None`` if something
        else maps it (a PTE table, a PUD leaf) or nothing does.
        """
        p = self.paging
        read = self.prog.read
        if self._init_pgd_pa is None:
            self._init_pgd_pa = self.pgd_phys(self.mm_pgd(self.init_mm()))
        table = self._init_pgd_pa
        value = 0
        entry_pa = 0
        levels = (
            (PageTableLevel.PGD, p.pgd_none, p.pgd_bad),
            (PageTableLevel.P4D, p.p4d_none, p.p4d_bad),
            (PageTableLevel.PUD, p.pud_none, p.pud_bad),
            (PageTableLevel.PMD, p.pmd_none, None),
        )
        try:
            for level, none, bad in levels:
                if level == PageTableLevel.PGD or not p.folded(level):
                    if level != PageTableLevel.PGD and not p.folded_at_boot(level):
                        table = p.table_paddr(value)
                    entry_pa = table + 8 * ((addr >> p.level_shift(level)) & (p.ptrs_per(level) - 1))
                    value = _U64.unpack(read(entry_pa, 8, True))[0]
                if none(value):
                    return None
                if bad is None:
                    break
                if (level == PageTableLevel.PUD and p.pud_leaf(value)) or bad(value):
                    return None
        except FaultError:
            return None
        if not (p.pmd_present(value) and p.pmd_leaf(value)):
            return None
        phys = p.pmd_pfn(value) << p.page_shift
        return _VmemmapLeaf(entry_pa, value, phys, serial)

    def mm_pgd(self, mm: Object) -> int:
        """
        ``mm->pgd`` as an integer, read fresh on a live target (one physical
        read, shared by the call's other mm members inside a
        :meth:`call_scope`).
        """
        self._expect(mm, "mm_struct")
        return self._mm_head(mm).pgd

    def pgd_phys(self, pgd: IntegerLike) -> int:
        """
        ``__pa()`` of a top-level table (the architecture's: kernel-image
        addresses such as ``init_top_pgt`` or ``swapper_pg_dir`` through
        ``phys_base`` or ``kimage_voffset``, others through the direct map).
        """
        return self.paging.pa(int(pgd) & ULONG_MAX)

    def entry_object(self, level: int, kaddr: int) -> Object:
        """The ``pte_t *`` ... ``pgd_t *`` Object at *kaddr*."""
        return Object(self.prog, _ENTRY_TYPES[PageTableLevel(level)], kaddr)

    # -- pages -------------------------------------------------------------

    @property
    def zero_pfn(self) -> int | None:
        """``zero_page_pfn`` (``zero_pfn`` before Linux 7.1): set at boot, read once."""
        if self._zero_pfn is None:
            name = "zero_page_pfn" if self.features.zero_page_pfn else "zero_pfn"
            self._zero_pfn = _lookup_int(self.prog, name)
        return self._zero_pfn

    @property
    def huge_zero_pfn(self) -> int | None:
        """``huge_zero_pfn``, read fresh: ``None`` while the huge zero folio is not allocated."""
        v = _lookup_int(self.prog, "huge_zero_pfn")
        if v is None or v == ULONG_MAX:
            return None
        return v

    @property
    def highest_memmap_pfn(self) -> int | None:
        """``highest_memmap_pfn``, read fresh (memory hotplug raises it)."""
        return _lookup_int(self.prog, "highest_memmap_pfn")

    def pfn_to_page(self, pfn: IntegerLike) -> Object:
        """``pfn_to_page(pfn)``: the ``struct page *``."""
        return pfn_to_page(self.prog, pfn)

    def page_folio(self, pfn: IntegerLike) -> Object:
        """
        ``page_folio(pfn_to_page(pfn))``: the ``struct folio *``, the head
        page by drgn's ``compound_head()`` (which knows each kernel's
        encoding of tail pages), as :func:`livewalk.mm.page.page_folio`.
        """
        return drgn.cast("struct folio *", compound_head(self.pfn_to_page(pfn)))

    # -- mm and VMAs ---------------------------------------------------------

    def init_mm(self) -> Object:
        """``&init_mm``."""
        return self.prog["init_mm"].address_of_()

    def is_init_mm(self, mm: Object | IntegerLike) -> bool:
        """``mm == &init_mm``."""
        if self._init_mm_addr is None:
            self._init_mm_addr = self.prog["init_mm"].address_
        return int(mm.value_() if isinstance(mm, Object) else mm) == self._init_mm_addr

    def vma_mm(self, vma: VMA) -> Object | None:
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
            shift = info.hstate.order.value_() + self.paging.page_shift
            self._hstate_shift[key] = shift
        return shift

    def vma_snapshot(self, vma: Object) -> VMA:
        """
        Snapshot a ``struct vm_area_struct *`` into a :class:`VMA`.

        :raises TypeError: if *vma* is not a ``struct vm_area_struct *``
        """
        self._expect(vma, "vm_area_struct")
        v = self._read_struct(vma)
        flags = v.vm_flags.value_()
        return VMA(
            vm_start=v.vm_start.value_(),
            vm_end=v.vm_end.value_(),
            vm_flags=flags,
            vm_pgoff=v.vm_pgoff.value_(),
            hugetlb_shift=self.hugetlb_shift(vma, flags),
            pfnmap=bool(flags & self.vm_flag_bits.VM_PFNMAP),
            obj=vma,
            anonymous=not v.vm_ops.value_(),
        )

    def _read_struct(self, ptr: Object) -> Object:
        """
        ``*ptr``, read whole in one read: a physical one for slab memory in
        the direct map (VMAs, mms), which skips drgn's walk of the kernel
        page tables.
        """
        target = type_unaliased(ptr.type_)
        if target.kind != drgn.TypeKind.POINTER:
            return ptr.read_()
        kaddr = ptr.value_()
        paddr = self._kernel_pa(kaddr)
        if paddr is None:
            return ptr[0].read_()
        t = target.type
        data = self.prog.read(paddr, drgn.sizeof(t), True)
        return Object.from_bytes_(self.prog, t, data)

    def _layout(self, members: tuple[tuple[str, int], ...]) -> _Layout:
        """
        How to read *members* of ``struct mm_struct`` in one read (see
        :class:`_Layout`), worked out once. A member this kernel lacks
        (``mm_lock_seq`` without ``CONFIG_PER_VMA_LOCK``) reads 0.
        """
        try:
            return self._layouts[id(members)]  # module constants: their id() stays theirs
        except KeyError:
            pass
        mm_type = self.prog.type("struct mm_struct")
        found: list[tuple[int, int, int]] = []
        for i, (member, size) in enumerate(members):
            try:
                found.append((drgn.offsetof(mm_type, member), size, i))
            except LookupError:  # no CONFIG_PER_VMA_LOCK: no mm_lock_seq
                pass
        by_offset = sorted(found)
        lo = by_offset[0][0]
        fmt = "<"
        pos = lo
        for off, size, _ in by_offset:
            fmt += f"{off - pos}x" + ("I" if size == 4 else "Q")  # Nx: skip N bytes
            pos = off + size
        where = {i: k for k, (_, _, i) in enumerate(by_offset)}
        order = tuple(where.get(i, -1) for i in range(len(members)))
        pick = operator.itemgetter(*order) if len(order) > 1 and -1 not in order else None
        layout = _Layout(lo, pos - lo, struct.Struct(fmt), order, pick)
        self._layouts[id(members)] = layout
        return layout

    def _mm_kaddr(self, mm: Object) -> int:
        """The address of ``*mm`` (a ``struct mm_struct *`` or a ``struct mm_struct``)."""
        if self._struct_tag(mm)[1]:
            return int(mm.value_())
        return int(mm.address_)

    def _read_members(self, kaddr: int, layout: _Layout) -> tuple[int, ...]:
        """
        The members of *layout* of the ``struct mm_struct`` at *kaddr*, read
        fresh in one read, in the layout's order (0 for those it lacks).
        An mm_struct is slab memory in the direct map (init_mm is in the
        kernel image): a physical read skips drgn's page-table walk, the
        larger part of a small read's cost over QMP.
        """
        kaddr += layout.offset
        paddr = self._kernel_pa(kaddr)
        if paddr is None:
            data = self.prog.read(kaddr, layout.length)
        else:
            data = self.prog.read(paddr, layout.length, True)
        values = layout.unpack.unpack(data)
        if layout.pick is not None:
            return layout.pick(values)
        return tuple(values[k] if k >= 0 else 0 for k in layout.order)

    def _read_head(self, mm: Object, kaddr: int | None = None) -> _MMHead:
        """:data:`_HEAD_MEMBERS` of *mm* (at *kaddr* if known), read fresh (one read)."""
        layout = self._layout(_HEAD_MEMBERS)
        if layout.length > _HEAD_SPAN_MAX:
            return _MMHead(self.mm_stamp(mm), self._read_mm_ulong(mm, "pgd"), self._read_mm_ulong(mm, "task_size"))
        v = self._read_members(self._mm_kaddr(mm) if kaddr is None else kaddr, layout)
        n = len(_STAMP_MEMBERS)
        return _MMHead(v[:n], v[n], v[n + 1])

    def _mm_head(self, mm: Object) -> _MMHead:
        """
        :data:`_HEAD_MEMBERS` of *mm*: inside a :meth:`call_scope` read
        once per mm and kept until the scope ends; outside, read fresh. A
        vmcore does not change: read once per mm.
        """
        if self._live and (not self._scope_depth or self._scope_owner != threading.get_ident()):
            return self._read_head(mm)
        key = self._mm_kaddr(mm)
        head = self._scope_heads.get(key)
        if head is None:
            head = self._scope_heads[key] = self._read_head(mm, key)
            if not self._live and len(self._scope_heads) > _HEADS_KEPT:
                self._scope_heads.clear()
                self._scope_heads[key] = head
        return head

    def call_scope(self) -> AbstractContextManager[None]:
        """
        The scope of one call (one vtop, one pagemap read): inside it,
        ``mm_lock_seq``, ``map_count`` and the maple tree's root (checked
        by the VMA cache), ``mm->pgd`` and ``mm->task_size`` are read once
        per mm, in one read, when first asked for, and every later ask of
        the call is served that copy. Nothing read in a call is kept past
        its scope: an answer is never older than the call that gave it.
        :meth:`mm_stamp` always reads fresh (it is how a caller sees a
        change). A vmcore, which does not change, needs no scope: its mm
        members are read once. Re-entrant; the thread that opens the
        outermost scope owns it (another thread's calls meanwhile read
        fresh).

        >>> with backend.call_scope():              # doctest: +SKIP
        ...     backend.mm_task_size(mm), backend.mm_pgd(mm)   # one read
        """
        if not self._live:
            return _NO_SCOPE  # a vmcore's are read once (see _mm_head)
        return _CallScope(self)

    def mm_task_size(self, mm: Object) -> int:
        """
        ``mm->task_size``, read fresh on a live target (one physical read,
        shared by the call's other mm members inside a :meth:`call_scope`).
        """
        return self._mm_head(mm).task_size

    def _read_mm_ulong(self, mm: Object, member: str) -> int:
        """
        An ``unsigned long`` member of ``*mm``, read through its physical
        address when it has one (see :meth:`_read_members`): drgn's
        virtual read would walk the kernel page tables first, several reads
        over QMP.
        """
        off = self._mm_offsets.get(member)
        if off is None:
            off = self._mm_offsets[member] = drgn.offsetof(self.prog.type("struct mm_struct"), member)
        kaddr = self._mm_kaddr(mm) + off
        paddr = self._kernel_pa(kaddr)
        if paddr is None:
            return self.prog.read_u64(kaddr)  # type: ignore[no-any-return]
        return self.prog.read_u64(paddr, True)  # type: ignore[no-any-return]

    def mm_stamp(self, mm: Object) -> tuple[int, ...]:
        """
        ``(mm_lock_seq, map_count, mm_mt.ma_root)`` of *mm*, read fresh in
        one read (also inside a :meth:`call_scope`); ``mm_lock_seq`` reads 0
        on a kernel without ``CONFIG_PER_VMA_LOCK`` (see
        :attr:`KernelFeatures.mm_lock_seq <livewalk.kernel.KernelFeatures>`).
        It changes whenever the VMA tree can have changed: every mmap write
        lock and unlock bumps ``mm_lock_seq``, odd while the lock is held.
        """
        return self._read_members(self._mm_kaddr(mm), self._layout(_STAMP_MEMBERS))

    def _kernel_pa(self, kaddr: int) -> int | None:
        """``__pa(kaddr)`` for the direct map and the kernel image (``_text`` to ``_end``), else ``None``."""
        paging = self.paging
        if paging.is_direct_map(kaddr) or self._image[0] <= kaddr < self._image[1]:
            return paging.pa(kaddr)
        return None

    def _mm_vmas(self, mm: Object) -> _MMVMAs:
        """
        The VMAs of *mm*, cached under its :meth:`mm_stamp`. On a live
        target the stamp is read again on every call (one small read) and a
        changed stamp reads the VMAs again, so an answer is never older than
        the call; a vmcore does not change and is read once. A list read
        while the stamp moved (a writer came in) is read again, up to three
        times; one that never held still, or was read under a writer, is not
        kept.
        """
        key = mm.value_()
        cached = self._vma_cache.get(key)
        if cached is None:
            self._expect(mm, "mm_struct")
        elif not self._live:
            return cached
        # the call's copy inside a call_scope (read at most once per call)
        stamp = self._mm_head(mm).stamp
        if cached is not None and cached.stamp == stamp:
            return cached
        fresh: tuple[int, ...] | None = stamp
        for _ in range(3):
            vmas = self._read_vmas(mm)
            if not self._live:
                break
            after = self.mm_stamp(mm)
            if after == stamp:
                break
            stamp = after
        else:
            fresh = None
        # A list read while the stamp moved, or under a writer (odd
        # mm_lock_seq: the tree may be half changed), is used once and read
        # again by the next call.
        if fresh is not None and not stamp[0] & 1:
            fresh = stamp
        else:
            fresh = None
        entry = _MMVMAs(fresh if fresh is not None else (-1,), vmas)
        self._vma_cache[key] = entry
        return entry

    def _read_vmas(self, mm: Object) -> list[VMA]:
        """
        Read every VMA of *mm* in address order: the maple tree's nodes and
        each ``vm_area_struct`` in one physical read each (drgn's
        ``for_each_vma`` reads every pivot and slot on its own, through the
        kernel page tables); ``for_each_vma`` where that is not possible.
        """
        ptrs = self._maple_vma_pointers(mm)
        if ptrs is None:
            from drgn.helpers.linux.mm import for_each_vma

            vmas = [self.vma_snapshot(v) for v in for_each_vma(mm)]
        else:
            ptr_type = self._vma_ptr_type
            if ptr_type is None:
                ptr_type = self._vma_ptr_type = self.prog.type("struct vm_area_struct *")
            vmas = [self.vma_snapshot(Object(self.prog, ptr_type, p)) for p in ptrs]
        vmas.sort(key=lambda v: v.vm_start)
        return vmas

    def _maple_layout(self) -> _MapleLayout | None:
        """How ``struct maple_node`` lays out its two node kinds (``None``: no maple tree)."""
        if self._maple is None:
            try:
                self._maple = _MapleLayout.of(self.prog)
            except (LookupError, ValueError, TypeError):
                self._maple = False
        return self._maple if isinstance(self._maple, _MapleLayout) else None

    def _maple_vma_pointers(self, mm: Object) -> list[int] | None:
        """
        The entries of ``mm->mm_mt`` (the ``vm_area_struct`` addresses), as
        drgn's ``mt_for_each`` finds them, each node one read; ``None`` if
        this kernel's tree cannot be read that way.
        """
        layout = self._maple_layout()
        if layout is None:
            return None
        root = self._read_mm_ulong(mm, "mm_mt.ma_root")
        if not _xa_is_node(root):
            # a lone entry at index 0 (never a VMA, which is above 0), or empty
            return [root] if root and root & 3 != 2 else []
        out: list[int] = []
        queue = collections.deque(((root, ULONG_MAX),))
        prog = self.prog
        while queue:
            enode, hi = queue.popleft()
            kaddr = enode & ~_MAPLE_NODE_MASK
            paddr = self._kernel_pa(kaddr)
            try:
                if paddr is None:
                    data = prog.read(kaddr, layout.size)
                else:
                    data = prog.read(paddr, layout.size, True)
            except FaultError:
                return None  # freed under us: let drgn's helper say what it finds
            ntype = (enode >> _MAPLE_NODE_TYPE_SHIFT) & _MAPLE_NODE_TYPE_MASK
            kind = layout.kinds.get(ntype)
            if kind is None:
                return None
            pivots, slots, end = kind.decode(data, hi)
            if ntype == layout.leaf_type:
                out.extend(e for e in slots[: end + 1] if e and e & 3 != 2)
            else:
                for i in range(end + 1):
                    queue.append((slots[i], pivots[i] if i < end else hi))
        return out

    def vmas(self, mm: Object) -> list[VMA]:
        """All VMAs of *mm* in address order (``for_each_vma``), as :class:`VMA` snapshots."""
        return self._mm_vmas(mm).vmas

    def find_vma(self, mm: Object, addr: int) -> VMA | None:
        """``find_vma(mm, addr)``: the first VMA with ``vm_end > addr``."""
        entry = self._mm_vmas(mm)
        i = bisect.bisect_right(entry.ends, addr)
        return entry.vmas[i] if i < len(entry.vmas) else None

    def mapping_vmas(self, mapping: Object, first_index: int, last_index: int) -> Iterable[VMA]:
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
            pages = (v.vm_end.value_() - v.vm_start.value_()) >> self.paging.page_shift
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


def _backend_of(obj: Object) -> DrgnBackend:
    return DrgnBackend.for_program(obj.prog_)


# -- test-only seam ---------------------------------------------------------------


@contextlib.contextmanager
def pause_after_table_read(
    backend: DrgnBackend, paddr: int, change: Callable[[], None]
) -> Iterator[list[int]]:
    """
    Test-only seam (the real-kernel twin of the synthetic backend's
    ``inject_after_read``): inside the ``with`` block, the first read of
    the page-table page at physical address *paddr* returns what it read,
    but only after ``change()`` has run -- the reader is paused right after
    reading that table while the test makes the target change it (say, a
    guest process faulting a page in or unmapping one), then goes on with
    its copy. Later reads are not touched. The context value is a list
    that gets one item (the number of reads seen before) when the change
    has run.

    Nothing in the readers knows of this: it replaces :meth:`DrgnBackend.read_table`
    on this one backend object for the duration of the block and puts the
    class's method back at its end.

    >>> with pause_after_table_read(backend, pte_table, touch_page) as fired:  # doctest: +SKIP
    ...     r = pagemap_read_consistent(mm, start, end, retries=0)
    >>> fired, r.consistency.level                                            # doctest: +SKIP
    ([3], 'torn')
    """
    fired: list[int] = []
    reads = [0]
    read = backend.read_table  # the class's method, bound

    def read_then_pause(addr: int) -> Sequence[int]:
        data = read(addr)
        reads[0] += 1
        if addr == paddr and not fired:
            fired.append(reads[0] - 1)
            change()
        return data

    backend.read_table = read_then_pause  # type: ignore[method-assign,assignment]
    try:
        yield fired
    finally:
        del backend.read_table


register_backend(Object, _backend_of)
