#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Dump what the kernel itself says about a running ``mappings.py`` workload.

Run in the guest, as root (so pagemap shows PFNs and /proc/kpageflags is
readable)::

    python3 tests/workloads/procdump.py /tmp/w.json > /tmp/dump.json

Input: the workload's ready JSON. Output (one JSON object on stdout):

- ``ready``: the ready JSON itself;
- ``pagemap``: ``{name: [raw u64, ...]}`` from ``/proc/PID/pagemap`` for
  every region and hole (``name`` is the label), plus ``child:LABEL`` for
  the CoW regions read from the child's pagemap;
- ``smaps``: a list of VMAs from ``/proc/PID/smaps``
  (``start, end, perms, name, fields {Name: kB}, vmflags [..]``), only
  those overlapping a region, plus ``child_smaps`` for the child;
- ``kpageflags``: ``{pfn: flags}`` from ``/proc/kpageflags`` for every PFN
  seen in a present pagemap entry (empty when not readable);
- ``meminfo``: the HugePages_* lines and ``swaps`` (lines of /proc/swaps).

Standard library only; the reading is done here, the judging by the test.
"""

from __future__ import annotations

import json
import os
import struct
import sys

PAGE = 4096
PM_PRESENT = 1 << 63
PM_PFN_MASK = (1 << 55) - 1


def read_pagemap(pid: int, start: int, end: int) -> list[int]:
    n = (end - start) // PAGE
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        data = os.pread(fd, 8 * n, (start // PAGE) * 8)
    finally:
        os.close(fd)
    return list(struct.unpack(f"<{len(data) // 8}Q", data))


def read_smaps(pid: int) -> list[dict[str, object]]:
    vmas: list[dict[str, object]] = []
    cur: dict[str, object] | None = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            key = line.split(" ", 1)[0]
            if not key.endswith(":"):
                parts = line.split(None, 5)
                s, e = (int(x, 16) for x in parts[0].split("-"))
                cur = {
                    "start": s,
                    "end": e,
                    "perms": parts[1],
                    "name": parts[5].strip() if len(parts) > 5 else "",
                    "fields": {},
                    "vmflags": [],
                }
                vmas.append(cur)
            elif cur is not None:
                if key == "VmFlags:":
                    cur["vmflags"] = line.split()[1:]
                else:
                    fields = cur["fields"]
                    assert isinstance(fields, dict)
                    fields[key[:-1]] = int(line.split()[1])
    return vmas


def read_kpageflags(pfns: set[int]) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        fd = os.open("/proc/kpageflags", os.O_RDONLY)
    except OSError:
        return out
    try:
        for pfn in sorted(pfns):
            data = os.pread(fd, 8, pfn * 8)
            if len(data) == 8:
                out[str(pfn)] = struct.unpack("<Q", data)[0]
    finally:
        os.close(fd)
    return out


def dump(ready: dict[str, object]) -> dict[str, object]:
    pid = int(str(ready["pid"]))
    child = ready.get("child_pid")
    regions = ready["regions"]
    holes = ready.get("holes") or {}
    assert isinstance(regions, dict) and isinstance(holes, dict)
    pm: dict[str, list[int]] = {}
    for name, (s, e) in list(regions.items()) + list(holes.items()):
        pm[name] = read_pagemap(pid, s, e)
    if child:
        for name in ("cow", "cow_thp", "hugetlb_shared"):
            if name in regions:
                s, e = regions[name]
                pm[f"child:{name}"] = read_pagemap(int(str(child)), s, e)

    ranges = [tuple(v) for v in list(regions.values()) + list(holes.values())]

    def overlaps(v: dict[str, object]) -> bool:
        vs, ve = int(str(v["start"])), int(str(v["end"]))
        return any(vs < e and s < ve for s, e in ranges)

    smaps = [v for v in read_smaps(pid) if overlaps(v)]
    child_smaps = [v for v in read_smaps(int(str(child))) if overlaps(v)] if child else []
    pfns = {x & PM_PFN_MASK for ents in pm.values() for x in ents if x & PM_PRESENT}
    pfns.discard(0)
    meminfo = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            if k.startswith("HugePages_") or k in ("Hugepagesize", "SwapTotal", "SwapFree"):
                meminfo[k] = v.split()[0]
    with open("/proc/swaps") as f:
        swaps = f.read().splitlines()[1:]
    return {
        "ready": ready,
        "pagemap": pm,
        "smaps": smaps,
        "child_smaps": child_smaps,
        "kpageflags": read_kpageflags(pfns),
        "meminfo": meminfo,
        "swaps": swaps,
    }


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: procdump.py READY_JSON", file=sys.stderr)
        return 2
    try:
        with open(argv[1]) as f:
            ready = json.load(f)
        out = dump(ready)
    except (OSError, ValueError, KeyError) as e:
        print(f"procdump.py: {e}", file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
