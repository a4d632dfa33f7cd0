# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Trace model
-----------

What the BPF tracer (``bpf/walktrace.c``) records, decoded: one
:class:`KernelWalk` per outermost call of a walker entry point, holding the
ordered :class:`KernelStep` list of its callback calls.

The binary layouts here mirror the C structs of ``bpf/walktrace.c``
(``walk_start_ev``, ``walk_end_ev``, ``callback_ev``): little-endian, 64-bit
(x86-64 and arm64).

>>> SLOTS[3], SLOT_INDEX["pte_hole"]
('pmd_entry', 5)
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterable, Sequence
from typing import cast

from livewalk.arch import ULONG_MAX
from livewalk.kernel import MM_WALK_CALLBACKS, KernelFeatures

__all__ = (
    "DEFAULT_OPS_LAYOUT",
    "ENTRY_POINTS",
    "EntryPoint",
    "MAX_OPS_WORDS",
    "OpsLayout",
    "KernelStep",
    "KernelWalk",
    "POINTER_SLOTS",
    "SLOTS",
    "SLOT_INDEX",
    "TraceAssembly",
    "assemble",
    "decode_event",
    "encode_callback",
    "encode_walk_end",
    "encode_walk_start",
)

#: ``struct mm_walk_ops`` callback slots, in declaration order
#: (``include/linux/pagewalk.h``); the BPF side numbers them the same way.
SLOTS = MM_WALK_CALLBACKS
SLOT_INDEX = {name: i for i, name in enumerate(SLOTS)}

#: The callback members of a kernel's ``struct mm_walk_ops`` as ``(slot,
#: byte offset)``: :attr:`~livewalk.kernel.KernelFeatures.walk_ops_callbacks`.
OpsLayout = tuple[tuple[str, int], ...]

#: Linux 7.2's layout (11 callbacks, ``install_pte`` last), for records
#: decoded without a kernel at hand (tests).
DEFAULT_OPS_LAYOUT: OpsLayout = KernelFeatures.for_version().walk_ops_callbacks

#: Words of the ops struct a ``walk_start_ev`` has room for
#: (``MAX_OPS_WORDS`` of ``bpf/walktrace.c``).
MAX_OPS_WORDS = 12

#: Slots whose first argument is a pointer to a page-table slot.
POINTER_SLOTS = frozenset(("pgd_entry", "p4d_entry", "pud_entry", "pmd_entry", "pte_entry", "hugetlb_entry"))


@dataclasses.dataclass(frozen=True)
class EntryPoint:
    """
    A walker entry point: its BPF function id, kernel name, and where its
    arguments are (indexes into the raw argument registers).
    """

    fn: int
    name: str
    ops_arg: int
    mm_arg: int | None = None
    vma_arg: int | None = None
    start_arg: int | None = None
    end_arg: int | None = None
    pgd_arg: int | None = None

    @property
    def kernel(self) -> bool:
        """A no-VMA walk of kernel page tables (init_mm)."""
        return self.name.startswith("walk_kernel_page_table_range")

    @property
    def debug(self) -> bool:
        """A no-VMA walk of any mm's tables, or of a given PGD: ptdump's
        ``walk_page_range_debug()``, and ``walk_page_range_novma()``, which it
        replaced (Linux 6.1 to 6.12.104)."""
        return self.name in ("walk_page_range_debug", "walk_page_range_novma")


#: The entry points of ``mm/pagewalk.c`` (Linux 7.2, and 6.1's
#: ``walk_page_range_novma``), keyed by the function ids of
#: ``bpf/walktrace.c``. Which ones a kernel has is
#: :attr:`~livewalk.kernel.KernelFeatures.walk_entry_points`.
ENTRY_POINTS: dict[int, EntryPoint] = {
    e.fn: e
    for e in (
        EntryPoint(1, "walk_page_range", 3, mm_arg=0, start_arg=1, end_arg=2),
        EntryPoint(2, "walk_page_range_mm_unsafe", 3, mm_arg=0, start_arg=1, end_arg=2),
        EntryPoint(3, "walk_page_vma", 1, vma_arg=0),
        EntryPoint(4, "walk_page_range_vma", 3, vma_arg=0, start_arg=1, end_arg=2),
        EntryPoint(5, "walk_page_range_vma_unsafe", 3, vma_arg=0, start_arg=1, end_arg=2),
        EntryPoint(6, "walk_page_mapping", 3),
        EntryPoint(7, "walk_page_range_debug", 3, mm_arg=0, start_arg=1, end_arg=2, pgd_arg=4),
        EntryPoint(8, "walk_kernel_page_table_range", 2, start_arg=0, end_arg=1, pgd_arg=3),
        EntryPoint(9, "walk_kernel_page_table_range_lockless", 2, start_arg=0, end_arg=1, pgd_arg=3),
        EntryPoint(10, "walk_page_range_novma", 3, mm_arg=0, start_arg=1, end_arg=2, pgd_arg=4),
    )
}

EV_WALK_START = 1
EV_WALK_END = 2
EV_CALLBACK = 3

# struct walk_start_ev: 4 u32, walk_id, args[6], vma_start/end/mm, ops[12], walk_lock
_START = struct.Struct(f"<4IQ6Q3Q{MAX_OPS_WORDS}QQ")
# struct walk_end_ev: 4 u32, walk_id, s64 ret
_END = struct.Struct("<4IQq")
# struct callback_ev: 4 u32, walk_id ip ptr addr next arg val, s64 ret, 2 u32, vma_start
_CB = struct.Struct("<4I7Qq2IQ")



def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


@dataclasses.dataclass(slots=True)
class KernelStep:
    """
    One callback call the kernel made during a walk.

    :ivar slot: the ``mm_walk_ops`` slot name (``"pmd_entry"``...)
    :ivar addr: ``addr`` argument (``start`` for ``pre_vma``; 0 for ``post_vma``)
    :ivar next: ``next``/``end`` argument
    :ivar arg: ``depth`` of ``pte_hole`` (signed), ``hmask`` of
        ``hugetlb_entry``, else 0
    :ivar ptr: the ``p?d_t *``/``pte_t *`` argument (kernel virtual
        address), or 0
    :ivar value: the raw u64 at *ptr* when the callback was entered; for
        ``install_pte`` the value it wrote through its ``pte_t *``
    :ivar ret: the callback's return value (int)
    :ivar action_in: ``walk->action`` on entry
    :ivar action_out: ``walk->action`` after the callback returned
    :ivar vma_start: ``walk->vma->vm_start`` (0 when ``walk->vma`` is NULL)
    :ivar ip: the probed instruction address (identifies the function)
    :ivar step: index in the walk (from the BPF counter)
    """

    slot: str
    addr: int
    next: int
    arg: int = 0
    ptr: int = 0
    value: int = 0
    ret: int = 0
    action_in: int = 0
    action_out: int = 0
    vma_start: int = 0
    ip: int = 0
    step: int = 0


@dataclasses.dataclass
class KernelWalk:
    """
    One traced walk: the outermost entry-point call of a task and its
    callback calls, in order.

    :ivar walk_id: the tracer's id
    :ivar fn: :class:`EntryPoint`
    :ivar tid: task that walked; *tgid* its process
    :ivar args: the six raw argument registers at entry
    :ivar vma_start: for VMA entry points, ``vma->vm_start`` (and
        *vma_end*, *vma_mm*) at entry
    :ivar callbacks: the ops struct's callback pointers in :data:`SLOTS`
        order (0 = unset, or not a member in this kernel)
    :ivar walk_lock: ``ops->walk_lock``
    :ivar steps: the callback calls, in order
    :ivar ret: the entry point's return value (None if its end was not seen)
    :ivar end_steps: number of callback calls the BPF side counted
    """

    walk_id: int
    fn: EntryPoint
    tid: int
    tgid: int
    args: tuple[int, ...]
    vma_start: int = 0
    vma_end: int = 0
    vma_mm: int = 0
    callbacks: tuple[int, ...] = (0,) * len(SLOTS)
    walk_lock: int = 0
    steps: list[KernelStep] = dataclasses.field(default_factory=list)
    ret: int | None = None
    end_steps: int | None = None

    def arg(self, index: int | None) -> int | None:
        return None if index is None else self.args[index]

    @property
    def mm(self) -> int:
        """The ``struct mm_struct *`` walked (0 for kernel and mapping walks)."""
        if self.fn.mm_arg is not None:
            return self.args[self.fn.mm_arg]
        if self.fn.vma_arg is not None:
            return self.vma_mm
        return 0

    @property
    def start(self) -> int:
        if self.fn.start_arg is not None:
            return self.args[self.fn.start_arg]
        return self.vma_start

    @property
    def end(self) -> int:
        if self.fn.end_arg is not None:
            return self.args[self.fn.end_arg]
        return self.vma_end

    @property
    def pgd(self) -> int:
        return self.args[self.fn.pgd_arg] if self.fn.pgd_arg is not None else 0

    @property
    def slots(self) -> tuple[str, ...]:
        """Names of the callbacks the ops struct sets."""
        return tuple(SLOTS[i] for i, p in enumerate(self.callbacks) if p)

    def describe(self) -> str:
        return f"{self.fn.name}({self.start:#x}, {self.end:#x}) by tid {self.tid}"


def encode_walk_start(
    walk_id: int,
    fn: int,
    tid: int,
    tgid: int,
    args: Sequence[int],
    callbacks: Sequence[int],
    *,
    vma: tuple[int, int, int] = (0, 0, 0),
    walk_lock: int = 0,
    layout: OpsLayout = DEFAULT_OPS_LAYOUT,
) -> bytes:
    """
    Pack a ``walk_start_ev`` (for tests and tools); *callbacks* are in
    :data:`SLOTS` order and are laid out as a kernel with *layout* has them.
    """
    a = list(args) + [0] * (6 - len(args))
    words = [0] * MAX_OPS_WORDS
    for slot, off in layout:
        i = SLOT_INDEX[slot]
        if i < len(callbacks):
            words[off // 8] = callbacks[i]
    return _START.pack(EV_WALK_START, fn, tid, tgid, walk_id, *(x & ULONG_MAX for x in a), *vma, *words, walk_lock)


def encode_walk_end(walk_id: int, fn: int, tid: int, steps: int, ret: int) -> bytes:
    """Pack a ``walk_end_ev``."""
    return _END.pack(EV_WALK_END, fn, tid, steps, walk_id, ret)


def encode_callback(walk_id: int, tid: int, step: int, s: KernelStep) -> bytes:
    """Pack a ``callback_ev``."""
    return _CB.pack(
        EV_CALLBACK, SLOT_INDEX[s.slot], tid, step, walk_id, s.ip & ULONG_MAX, s.ptr & ULONG_MAX,
        s.addr & ULONG_MAX, s.next & ULONG_MAX, s.arg & ULONG_MAX, s.value & ULONG_MAX, s.ret,
        s.action_in, s.action_out, s.vma_start & ULONG_MAX,
    )  # fmt: skip


def _callbacks(words: Sequence[int], layout: OpsLayout) -> tuple[int, ...]:
    """The ops struct's callback pointers in :data:`SLOTS` order, from its first words."""
    out = [0] * len(SLOTS)
    for slot, off in layout:
        if slot in SLOT_INDEX and off % 8 == 0 and off // 8 < len(words):
            out[SLOT_INDEX[slot]] = words[off // 8]
    return tuple(out)


def decode_event(data: bytes, layout: OpsLayout = DEFAULT_OPS_LAYOUT) -> tuple[int, object]:
    """
    Decode one ring-buffer record into ``(type, payload)``: a
    :class:`KernelWalk` (start), a ``(walk_id, steps, ret)`` tuple (end) or a
    ``(walk_id, KernelStep)`` tuple (callback). *layout* is the traced
    kernel's ``struct mm_walk_ops`` (where each callback pointer is).

    :raises ValueError: on an unknown or short record
    """
    if len(data) < 4:
        raise ValueError(f"short trace record ({len(data)} bytes)")
    (kind,) = struct.unpack_from("<I", data)
    if kind == EV_WALK_START:
        f = _START.unpack_from(data)
        fn = ENTRY_POINTS.get(f[1])
        if fn is None:
            raise ValueError(f"unknown entry point id {f[1]}")
        w = KernelWalk(
            walk_id=f[4], fn=fn, tid=f[2], tgid=f[3], args=tuple(f[5:11]),
            vma_start=f[11], vma_end=f[12], vma_mm=f[13],
            callbacks=_callbacks(f[14 : 14 + MAX_OPS_WORDS], layout), walk_lock=f[14 + MAX_OPS_WORDS],
        )  # fmt: skip
        return kind, w
    if kind == EV_WALK_END:
        f = _END.unpack_from(data)
        return kind, (f[4], f[3], f[5])
    if kind == EV_CALLBACK:
        f = _CB.unpack_from(data)
        slot = SLOTS[f[1]] if f[1] < len(SLOTS) else f"slot{f[1]}"
        arg = f[9]
        if slot == "pte_hole":
            arg = _s32(arg)
        s = KernelStep(
            slot=slot, addr=f[7], next=f[8], arg=arg, ptr=f[6], value=f[10], ret=f[11],
            action_in=f[12], action_out=f[13], vma_start=f[14], ip=f[5], step=f[3],
        )  # fmt: skip
        return kind, (f[4], s)
    raise ValueError(f"unknown trace record type {kind}")


@dataclasses.dataclass
class TraceAssembly:
    """
    Walks assembled from a stream of records, and what was wrong with the
    stream.

    :ivar walks: complete walks, in start order
    :ivar problems: one line per inconsistency (a callback of an unknown
        walk, a gap in a walk's step numbers, a walk without its end, a step
        count that disagrees with the BPF counter); each means events were
        lost
    """

    walks: list[KernelWalk]
    problems: list[str]


def assemble(records: Iterable[tuple[int, object]]) -> TraceAssembly:
    """
    Group decoded records (:func:`decode_event`) into walks and check that
    nothing is missing: every callback belongs to a started walk, step
    numbers run 0..n-1 without gaps, every walk ended, and the BPF step
    counter agrees.
    """
    walks: dict[int, KernelWalk] = {}
    order: list[int] = []
    problems: list[str] = []
    for kind, payload in records:
        if kind == EV_WALK_START:
            assert isinstance(payload, KernelWalk)
            if payload.walk_id in walks:
                problems.append(f"walk {payload.walk_id} started twice")
                continue
            walks[payload.walk_id] = payload
            order.append(payload.walk_id)
        elif kind == EV_WALK_END:
            end = cast(tuple[int, int, int], payload)
            wid, steps, ret = end
            w = walks.get(wid)
            if w is None:
                problems.append(f"end of walk {wid} whose start was lost")
                continue
            w.ret = int(ret)
            w.end_steps = int(steps)
        else:
            cb = cast(tuple[int, KernelStep], payload)
            wid, step = cb
            w = walks.get(wid)
            if w is None:
                problems.append(f"callback of walk {wid} whose start was lost")
                continue
            w.steps.append(step)
    out: list[KernelWalk] = []
    for wid in order:
        w = walks[wid]
        bad = False
        for i, s in enumerate(w.steps):
            if s.step != i:
                problems.append(f"walk {wid} ({w.fn.name}): step {i} missing (next seen is {s.step})")
                bad = True
                break
        if w.ret is None:
            problems.append(f"walk {wid} ({w.fn.name}): no end seen")
            bad = True
        elif w.end_steps != len(w.steps):
            problems.append(
                f"walk {wid} ({w.fn.name}): {len(w.steps)} callbacks received, "
                f"{w.end_steps} counted in the kernel"
            )
            bad = True
        if not bad:
            out.append(w)
    return TraceAssembly(out, problems)
