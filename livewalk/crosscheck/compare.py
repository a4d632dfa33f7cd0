# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Comparison
----------

Step-by-step comparison of a kernel walk (:class:`~.model.KernelStep`) and
livewalk's replay of it (:class:`ReplayCall`), and the report of the first
divergence.

What is compared at each step, per callback slot:

* always: the slot, ``addr``, ``next``, ``walk->action`` on entry and
  ``walk->vma->vm_start`` (0 without a VMA);
* ``pte_hole``: the depth; ``hugetlb_entry``: the hmask;
* the pointer callbacks (``p?d_entry``, ``pte_entry``, ``hugetlb_entry``):
  the slot's kernel virtual address and its raw value.

The kernel's return value and ``walk->action`` after the call are inputs
of the replay (livewalk's callback returns them), so they are not compared;
livewalk's own return value at the end of the walk is.

>>> from .model import KernelStep
>>> k = KernelStep("pte_hole", 0x1000, 0x200000, arg=3)
>>> diff_step(k, ReplayCall("pte_hole", 0x1000, 0x200000, 2))
('depth',)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from livewalk.crosscheck.model import POINTER_SLOTS, KernelStep

__all__ = ("Divergence", "ReplayCall", "diff_step", "format_step")


@dataclasses.dataclass(frozen=True)
class ReplayCall:
    """One callback call livewalk made during a replay."""

    slot: str
    addr: int
    next: int
    arg: int = 0
    ptr: int = 0
    value: int = 0
    action_in: int = 0
    vma_start: int = 0


def diff_step(k: KernelStep, r: ReplayCall) -> tuple[str, ...]:
    """The names of the fields in which the kernel's and livewalk's call differ."""
    if k.slot != r.slot:
        return ("callback",)
    out: list[str] = []
    if k.addr != r.addr:
        out.append("addr")
    if k.next != r.next:
        out.append("next")
    if k.slot == "pte_hole" and k.arg != r.arg:
        out.append("depth")
    if k.slot == "hugetlb_entry" and k.arg != r.arg:
        out.append("hmask")
    if k.slot in POINTER_SLOTS:
        if k.ptr != r.ptr:
            out.append("entry address")
        if k.value != r.value:
            out.append("entry value")
    if k.action_in != r.action_in:
        out.append("action on entry")
    if k.vma_start != r.vma_start:
        out.append("walk->vma")
    return tuple(out)


def format_step(s: KernelStep | ReplayCall | None, *, kernel: bool) -> str:
    """One line describing a call."""
    if s is None:
        return "(no call)"
    parts = [f"{s.slot}(addr={s.addr:#x}, next={s.next:#x}"]
    if s.slot == "pte_hole":
        parts.append(f", depth={s.arg}")
    elif s.slot == "hugetlb_entry":
        parts.append(f", hmask={s.arg:#x}")
    if s.slot in POINTER_SLOTS:
        parts.append(f", entry@{s.ptr:#x}={s.value:#018x}")
    parts.append(f") action_in={s.action_in} vma={s.vma_start:#x}")
    if kernel and isinstance(s, KernelStep):
        parts.append(f" -> ret={s.ret} action={s.action_out}")
    return "".join(parts)


@dataclasses.dataclass(frozen=True)
class Divergence:
    """
    The first difference between a kernel walk and its replay.

    :ivar index: step index (0-based) in the walk
    :ivar kernel: the kernel's call at that step (None: the kernel made none)
    :ivar replay: livewalk's call at that step (None: livewalk made none)
    :ivar fields: what differs
    :ivar context: the kernel's (matching) calls just before
    """

    index: int
    kernel: KernelStep | None
    replay: ReplayCall | None
    fields: tuple[str, ...]
    context: Sequence[KernelStep] = ()

    def report(self, header: str = "") -> str:
        """A few lines: what differs, the matching steps before, both calls."""
        lines = [f"{header}first divergence at step {self.index}: {', '.join(self.fields)}"]
        first = self.index - len(self.context)
        for i, s in enumerate(self.context):
            lines.append(f"    step {first + i:>6}  both:    {format_step(s, kernel=True)}")
        lines.append(f"    step {self.index:>6}  kernel:  {format_step(self.kernel, kernel=True)}")
        lines.append(f"    step {self.index:>6}  livewalk:{format_step(self.replay, kernel=False)}")
        return "\n".join(lines)
