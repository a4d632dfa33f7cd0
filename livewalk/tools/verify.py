# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Verify against the running kernel
---------------------------------

``livewalk verify --pid PID`` (on the running kernel, as root): compute a
process's pagemap and smaps with livewalk and compare them with what the
kernel itself reports in ``/proc/PID/pagemap`` and ``/proc/PID/smaps``, page
for page and field for field, on x86_64 and arm64 alike (the page size is
the target's).

A live process is not frozen while it is read, and reading ``/proc`` from
this very process maps and unmaps pages that others share (libc, the python
binary). So the kernel is read before and after livewalk, and a value counts
as a mismatch only if livewalk's equals **neither** kernel read. Values that
moved between the two kernel reads are counted and reported as ``moving``.

>>> # in the guest: python3 -m livewalk verify --pid 1234
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from typing import TextIO

from drgn import Object, Program

from livewalk.backend import backend_for_mm
from livewalk.errors import LivewalkError

__all__ = ("VerifyResult", "verify_pagemap", "verify_smaps")

_SMAPS_HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


@dataclass
class VerifyResult:
    """Outcome of one comparison."""

    what: str
    vmas: int = 0
    items: int = 0
    moving: int = 0
    mismatches: list[str] = field(default_factory=list)

    def line(self) -> str:
        unit = "pages" if self.what == "pagemap" else "fields"
        return (
            f"{self.what}: {self.vmas} VMAs, {self.items} {unit}, "
            f"{len(self.mismatches)} mismatches ({self.moving} moving while read)"
        )


def _proc_maps(pid: int) -> list[tuple[int, int]]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            out = []
            for line in f:
                s, e = (int(x, 16) for x in line.split(None, 1)[0].split("-"))
                out.append((s, e))
            return out
    except OSError as e:
        raise LivewalkError(f"cannot read /proc/{pid}/maps: {e.strerror}") from None


def _kernel_pagemap(pid: int, ranges: list[tuple[int, int]], page_size: int) -> dict[tuple[int, int], bytes]:
    try:
        fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    except OSError as e:
        raise LivewalkError(f"cannot open /proc/{pid}/pagemap: {e.strerror}") from None
    try:
        return {
            (s, e): os.pread(fd, (e - s) // page_size * 8, s // page_size * 8) for s, e in ranges
        }
    finally:
        os.close(fd)


def verify_pagemap(mm: Object, pid: int) -> VerifyResult:
    """
    Compare :func:`livewalk.proc.pagemap.pagemap_read` with the kernel's
    ``/proc/PID/pagemap`` over every VMA of *pid* (*mm* is its mm).
    """
    from livewalk.proc.pagemap import pagemap_read

    res = VerifyResult("pagemap")
    page_size = backend_for_mm(mm).paging.page_size
    ranges = _proc_maps(pid)
    before = _kernel_pagemap(pid, ranges, page_size)
    ours = {r: pagemap_read(mm, r[0], r[1]).tobytes() for r in ranges}
    after = _kernel_pagemap(pid, ranges, page_size)
    for r in ranges:
        a, b, o = before[r], after[r], ours[r]
        res.vmas += 1
        res.items += len(o) // 8
        if o == a and o == b:
            continue
        for i in range(0, max(len(a), len(o)), 8):
            ka, kb, lo = a[i : i + 8], b[i : i + 8], o[i : i + 8]
            if ka != kb:
                res.moving += 1
            if lo != ka and lo != kb:
                addr = r[0] + i // 8 * page_size
                res.mismatches.append(
                    f"pagemap {addr:#x}: kernel {int.from_bytes(ka or b'', 'little'):#018x} "
                    f"livewalk {int.from_bytes(lo or b'', 'little'):#018x}"
                )
    return res


def _read_smaps(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/smaps") as f:
            return f.read()
    except OSError as e:
        raise LivewalkError(f"cannot read /proc/{pid}/smaps: {e.strerror}") from None


def _split_smaps(text: str) -> dict[str, list[str]]:
    """Map each VMA's header line's address range to its lines."""
    vmas: dict[str, list[str]] = {}
    cur: list[str] | None = None
    for line in text.splitlines():
        if _SMAPS_HEADER.match(line):
            cur = vmas.setdefault(line.split(None, 1)[0], [])
        if cur is not None:
            cur.append(line)
    return vmas


def verify_smaps(mm: Object, pid: int) -> VerifyResult:
    """
    Compare :func:`livewalk.proc.smaps.smaps` with the kernel's
    ``/proc/PID/smaps``, VMA by VMA and line by line (header, every field,
    THPeligible, ProtectionKey, VmFlags).
    """
    from livewalk.proc.smaps import format_smaps, smaps

    res = VerifyResult("smaps")
    before = _split_smaps(_read_smaps(pid))
    ours = _split_smaps(format_smaps(smaps(mm)))
    after = _split_smaps(_read_smaps(pid))
    for key in sorted(set(before) | set(ours) | set(after)):
        a, b, o = before.get(key, []), after.get(key, []), ours.get(key, [])
        res.vmas += 1
        n = max(len(a), len(b), len(o))
        res.items += n
        for i in range(n):
            ka = a[i] if i < len(a) else None
            kb = b[i] if i < len(b) else None
            lo = o[i] if i < len(o) else None
            if ka != kb:
                res.moving += 1
            if lo != ka and lo != kb:
                res.mismatches.append(f"smaps {key}: kernel {ka!r} livewalk {lo!r}")
    return res


def verify_command(prog: Program, args: argparse.Namespace, out: TextIO) -> int:
    """``livewalk verify``: run both comparisons and print a verdict."""
    import drgn

    from livewalk.task import find_mm

    local = getattr(drgn.ProgramFlags, "IS_LOCAL", drgn.ProgramFlags.IS_LIVE)
    if not prog.flags & drgn.ProgramFlags.IS_LIVE or not prog.flags & local:
        raise LivewalkError("verify compares with this machine's /proc: it needs the running kernel")
    if not os.path.exists(f"/proc/{args.pid}"):
        raise LivewalkError(f"no process with PID {args.pid} on this machine")
    _task, mm = find_mm(prog, args.pid)
    bad = 0
    for fn in (verify_pagemap, verify_smaps):
        res = fn(mm, args.pid)
        out.write(res.line() + "\n")
        for m in res.mismatches[: args.show]:
            out.write(f"  {m}\n")
        bad += len(res.mismatches)
    out.write("verify: " + ("livewalk agrees with the kernel\n" if not bad else f"{bad} MISMATCHES\n"))
    out.flush()
    return 1 if bad else 0
