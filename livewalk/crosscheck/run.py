# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Crosscheck run
--------------

For each trigger: snapshot the walked mm's page tables and VMAs (drgn on
``/proc/kcore``), run the trigger with the BPF tracer on, then replay every
kernel walk on the walked mm with livewalk and compare.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter
from typing import Any, TextIO

from livewalk.arch import ULONG_MAX
from livewalk.crosscheck.compare import Divergence
from livewalk.crosscheck.model import KernelWalk
from livewalk.crosscheck.replay import (
    ReplayBackend,
    ReplayMM,
    kernel_overlay,
    list_vmas,
    replay_walk,
    snapshot_tables,
)
from livewalk.crosscheck.tracer import Tracer
from livewalk.crosscheck.triggers import TRIGGERS, Helper, Trigger, TriggerContext, online_nodes
from livewalk.errors import LivewalkError, UsageError

__all__ = ("TriggerResult", "crosscheck")


@dataclasses.dataclass
class TriggerResult:
    """What one trigger gave."""

    name: str
    walks: int = 0
    callbacks: int = 0
    mismatches: int = 0
    lost: int = 0
    problems: list[str] = dataclasses.field(default_factory=list)
    changed: int = 0
    other_walks: int = 0
    entry_points: Counter[str] = dataclasses.field(default_factory=Counter)
    divergences: list[str] = dataclasses.field(default_factory=list)
    skipped: str | None = None
    not_applicable: str | None = None
    note: str = ""
    mode: str = ""

    @property
    def ran(self) -> bool:
        return self.skipped is None and self.not_applicable is None

    @property
    def ok(self) -> bool:
        return self.ran and not (self.mismatches or self.lost or self.problems) and self.walks > 0

    def line(self) -> str:
        if self.not_applicable is not None:
            return f"{self.name:<19} not applicable on this kernel: {self.not_applicable}"
        if self.skipped is not None:
            return f"{self.name:<19} skipped: {self.skipped}"
        eps = ", ".join(f"{n} x{c}" for n, c in sorted(self.entry_points.items()))
        s = (f"{self.name:<19} {'ok  ' if self.ok else 'FAIL'} {self.walks:>5} walks "
             f"{self.callbacks:>7} callbacks {self.mismatches} mismatches {self.lost} lost "
             f"[{self.mode}; {eps or 'no walks'}]")
        if self.changed:
            s += f" ({self.changed} slots changed during the trigger, served as the kernel saw them)"
        if self.other_walks:
            s += f" ({self.other_walks} walks of other mms ignored)"
        for p in self.problems:
            s += f"\n    problem: {p}"
        return s


def _mm_of(prog: Any, pid: int) -> Any:
    from livewalk.task import find_mm

    return find_mm(prog, pid)[1]


def _run_trigger(
    prog: Any,
    base: Any,
    tracer: Tracer,
    trig: Trigger,
    ctx: TriggerContext,
    corrupt: list[int | None],
    verbose: TextIO | None,
) -> TriggerResult:
    res = TriggerResult(trig.name, mode=trig.mode)
    res.not_applicable = trig.not_in_kernel(ctx.features)
    if res.not_applicable is not None:
        return res
    reason = trig.unavailable(ctx)
    if reason is not None:
        res.skipped = reason
        return res
    bad = tracer.attach_ops(trig.ops) + tracer.attach_names(trig.callbacks)
    if trig.on == "kernel":
        mm_obj = base.init_mm()
        tables = None
        vmas: list[Any] | None = None
        pids = [ctx.crosscheck_pid]
    else:
        pid = ctx.target_pid if trig.on == "target" else (ctx.helper.pid if ctx.helper else -1)
        mm_obj = _mm_of(prog, pid)
        tables = snapshot_tables(base, int(base.mm_pgd(mm_obj)))
        vmas = list_vmas(base, mm_obj)
        pids = [ctx.crosscheck_pid] + ([ctx.helper.pid] if ctx.helper and trig.on == "helper" else [])
    mm_addr = int(mm_obj.value_())
    for attempt in range(2):
        asm, lost, note = tracer.trace(pids, lambda: trig.run(ctx))
        missing = tracer.untraced_callbacks(asm.walks)
        if not missing or attempt == 1 or trig.mode != "static":
            break
        # a callback of an ops we did not know: attach it and run again
        for addr, slot in missing:
            tracer.attach_callback(addr, slot)
        tables = snapshot_tables(base, int(base.mm_pgd(mm_obj))) if tables is not None else None
    res.note = str(note or "")
    res.lost = lost
    res.problems.extend(asm.problems)
    for addr, slot in tracer.untraced_callbacks(asm.walks):
        res.problems.append(f"{slot} {tracer.symbol_name(addr)} could not be traced "
                            f"({tracer.unattachable.get(addr, 'not attached')})")
    if bad:
        res.problems.append(f"could not attach: {', '.join(bad)}")
    if trig.vmas_after and vmas is not None:
        vmas = list_vmas(base, mm_obj)
    walks: list[KernelWalk] = []
    for w in asm.walks:
        if trig.on == "kernel":
            mine = w.fn.debug and w.mm == mm_addr or w.fn.kernel
        else:
            mine = w.mm == mm_addr
        if mine:
            walks.append(w)
        else:
            res.other_walks += 1
    paging = base.paging

    def pgd_phys(kaddr: int) -> int:
        return int(base.pgd_phys(kaddr)) & ULONG_MAX

    for w in walks:
        res.walks += 1
        res.callbacks += len(w.steps)
        res.entry_points[w.fn.name] += 1
        overlay = kernel_overlay(w, pgd_phys, paging) if trig.mode == "overlay" else None
        rb = ReplayBackend(base, tables=tables, overlay=overlay, vmas=vmas)
        rmm = ReplayMM(mm_obj, rb, is_init=trig.on == "kernel")
        rb.mm = rmm
        cs = corrupt[0]
        if cs is not None and cs < len(w.steps):
            corrupt[0] = None
        else:
            cs = None
        r = replay_walk(w, rb, rmm, corrupt_step=cs)
        res.changed += len(rb.changed)
        if verbose is not None:
            for pa, before, saw in rb.changed[:4]:
                verbose.write(f"    slot at phys {pa:#x}: kernel saw {saw:#018x}, snapshot (or live, for a "
                              f"table the trigger created) has {before:#018x} (bits {before ^ saw:#x})\n")
        if r.divergence is not None:
            res.mismatches += 1
            if len(res.divergences) < 3:
                res.divergences.append(_report(r.divergence, w, res.walks - 1, cs))
        if verbose is not None:
            verbose.write(f"  {trig.name} walk {res.walks - 1}: {w.describe()} slots={','.join(w.slots)} "
                          f"steps={len(w.steps)} ret={w.ret} -> "
                          f"{'ok' if r.divergence is None else 'DIVERGES'}\n")
    if not walks and not res.problems:
        res.problems.append("no walk of the walked mm was traced")
    return res


def _run_guarded(
    prog: Any,
    base: Any,
    tracer: Tracer,
    trig: Trigger,
    ctx: TriggerContext,
    corrupt: list[int | None],
    verbose: TextIO | None,
) -> TriggerResult:
    """:func:`_run_trigger`, with any error reported as the trigger's problem."""
    try:
        return _run_trigger(prog, base, tracer, trig, ctx, corrupt, verbose)
    except LivewalkError as e:
        r = TriggerResult(trig.name, mode=trig.mode)
        r.problems.append(str(e))
    except Exception as e:  # report, and go on with the other triggers
        r = TriggerResult(trig.name, mode=trig.mode)
        r.problems.append(f"internal error: {type(e).__name__}: {' '.join(str(e).split())}")
    return r


def _report(d: Divergence, w: KernelWalk, index: int, corrupted: int | None) -> str:
    head = f"walk {index} {w.describe()}: "
    text = d.report(head)
    if corrupted is not None:
        text += f"\n    (step {corrupted} of this walk was corrupted on purpose by --corrupt-step)"
    return text


def crosscheck(
    prog: Any,
    pid: int,
    triggers: list[str] | None = None,
    *,
    out: TextIO | None = None,
    corrupt_step: int | None = None,
    verbose: bool = False,
) -> int:
    """
    Run the crosscheck on process *pid* (the triggers named, or all that are
    available) and print one line per trigger and the verdict to *out*.
    Returns the exit status: 0 when every walk matched and nothing was lost.
    """
    from livewalk.backend.drgn import DrgnBackend

    out = out or sys.stdout
    by_name = {t.name: t for t in TRIGGERS}
    if triggers:
        unknown = [n for n in triggers if n not in by_name]
        if unknown:
            raise UsageError(f"unknown trigger {unknown[0]!r} (choose from {', '.join(by_name)})")
        chosen = [by_name[n] for n in dict.fromkeys(triggers)]
    else:
        chosen = list(TRIGGERS)
    t0 = time.monotonic()
    base = DrgnBackend.for_program(prog)
    target_mm = _mm_of(prog, pid)
    task_size = int(target_mm.task_size.value_())
    features = base.features
    tracer = Tracer(prog, features)
    if verbose:
        out.write(f"crosscheck: BPF program loaded in {time.monotonic() - t0:.1f} s\n")
    out.write(f"crosscheck: Linux {features.kernel}: tracing {len(tracer.entry_points)} entry points "
              f"({', '.join(tracer.entry_points)}); {base.paging.levels}-level paging\n")
    absent = tracer.missing_entry_points + [f"mm_walk_ops.{s}" for s in tracer.missing_callbacks]
    if absent:
        out.write(f"crosscheck: not present in this kernel: {', '.join(absent)}\n")
    for name, why in tracer.unattachable_entry_points.items():
        out.write(f"crosscheck: problem: entry point {name} cannot be traced: {why}\n")
    helper = None
    if any(t.on == "helper" for t in chosen):
        helper = Helper()
        if helper.skipped:
            out.write(f"crosscheck: helper regions not built: "
                      f"{'; '.join(f'{k}: {v}' for k, v in helper.skipped.items())}\n")
    ctx = TriggerContext(pid, helper, task_size, online_nodes(), base.paging.page_size, features)
    results: list[TriggerResult] = []
    corrupt = [corrupt_step]
    try:
        for trig in chosen:
            t1 = time.monotonic()
            r = _run_guarded(prog, base, tracer, trig, ctx, corrupt, out if verbose else None)
            pages = Tracer.ringbuf_pages_for(tracer.received + r.lost, base.paging.page_size)
            if r.lost and pages > tracer.ringbuf_pages:
                # more records than the ring buffer holds while they are
                # drained: run the trigger again with one that holds them all
                if verbose:
                    out.write(f"  ({trig.name}: {r.lost} records lost with {tracer.ringbuf_pages} ring-buffer "
                              f"pages: again with {pages})\n")
                tracer.close()
                tracer = Tracer(prog, features, ringbuf_pages=pages)
                r = _run_guarded(prog, base, tracer, trig, ctx, corrupt, out if verbose else None)
            results.append(r)
            out.write(r.line() + "\n")
            if verbose:
                out.write(f"  ({trig.name}: {time.monotonic() - t1:.1f} s; {r.note})\n")
            for d in r.divergences:
                out.write(d + "\n")
            out.flush()
    finally:
        if helper is not None:
            helper.close()
    ran = [r for r in results if r.ran]
    # a trigger asked for by name that this machine cannot run fails the run;
    # one that this kernel cannot run is only reported
    failed_skip = bool(triggers) and any(r.skipped is not None for r in results)
    w = sum(r.walks for r in ran)
    c = sum(r.callbacks for r in ran)
    m = sum(r.mismatches for r in ran)
    lost = sum(r.lost for r in ran)
    probs = sum(len(r.problems) for r in ran) + len(tracer.unattachable_entry_points)
    verdict = f"crosscheck: {w} walks, {c} callbacks, {m} mismatches"
    if lost:
        verdict += f", {lost} lost events"
    if probs:
        verdict += f", {probs} problems"
    na = sum(r.not_applicable is not None for r in results)
    if na:
        verdict += f"; {na} triggers not applicable on this kernel"
    out.write(verdict + "\n")
    ok = all(r.ok for r in ran) and ran and not failed_skip and not tracer.unattachable_entry_points
    return 0 if ok else 1
