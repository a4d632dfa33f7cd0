#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The README's main job: livewalk proven on the built-in VM (see scripts/demo)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import runpy
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# This checkout's harness (livewalk.vm is vm/), installed or not.
Guest = runpy.run_path(os.path.join(ROOT, "vm", "checkout.py"))["load_checkout_vm"]().Guest

READY = "/tmp/livewalk-demo-workload.json"


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def stream(fd: int, data: bytes) -> None:
    (sys.stdout if fd == 1 else sys.stderr).buffer.write(data)
    (sys.stdout if fd == 1 else sys.stderr).flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--levels", type=int, choices=(4, 5), default=5)
    args = ap.parse_args()
    # drgn warns about modules without debug info (only vmlinux is needed).
    logging.getLogger("drgn").setLevel(logging.ERROR)
    verdicts: list[tuple[str, bool]] = []
    # Two NUMA nodes, so that migrate_pages(2) has somewhere to move pages.
    with Guest(levels=args.levels, numa_nodes=2) as g:
        print(f"guest: Linux {g.release}, {g.levels}-level paging, booted in {g.boot_seconds:.1f} s")

        banner("workload: a process with many kinds of mappings")
        g.spawn(f"exec python3 tests/workloads/mappings.py --ready-file {READY}")
        deadline = time.monotonic() + 300
        while g.run(f"test -s {READY}", 30).returncode != 0:
            if time.monotonic() > deadline:
                print("workload did not become ready", file=sys.stderr)
                return 1
            time.sleep(1)
        info = json.loads(g.get(READY))
        pid = int(info["pid"])
        print(f"pid {pid}: {len(info['regions'])} regions: {', '.join(sorted(info['regions']))}")
        if info.get("skipped"):
            print(f"skipped: {info['skipped']}")

        banner(f"livewalk vtop --pid {pid} (THP region, in the guest)")
        thp = info["regions"].get("thp")
        if thp:
            g.run(f"python3 -m livewalk vtop --pid {pid} {thp[0] + 0x1234:#x}", 600, stream=stream)

        banner("crosscheck: the kernel's own walker traced with BPF, replayed by livewalk")
        r = g.run(f"python3 -m livewalk crosscheck --pid {pid}", 3000, stream=stream)
        verdicts.append(("BPF crosscheck (guest)", r.returncode == 0))

        banner("pagemap and smaps vs /proc, with drgn on /proc/kcore in the guest")
        r = g.run(f"python3 -m livewalk verify --pid {pid}", 1800, stream=stream)
        verdicts.append(("pagemap + smaps vs /proc (guest)", r.returncode == 0))

        banner("pagemap and smaps from the host, over QMP, vs /proc in the guest")
        ok = host_compare(g, pid)
        verdicts.append(("pagemap + smaps vs /proc (host over QMP)", ok))

    banner("verdict")
    for name, ok in verdicts:
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    good = all(ok for _, ok in verdicts)
    print("livewalk " + ("walks exactly like the running kernel" if good else "DIVERGED from the kernel"))
    return 0 if good else 1


def _wait_file(g: Guest, path: str, timeout: float = 1800) -> bytes:
    deadline = time.monotonic() + timeout
    while g.run(f"test -s {path}", 30).returncode != 0:
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: {path} did not appear in the guest")
        time.sleep(0.5)
    return g.get(path)


def host_compare(g: Guest, pid: int) -> bool:
    """
    livewalk on the host (drgn over QMP) against the guest kernel's own
    /proc/PID/pagemap and smaps, read before and after by one guest process
    (scripts/proc_snapshot.py) that stays alive throughout, so that its own
    mappings are there for all three reads. A page or smaps line counts as a
    mismatch only if livewalk's differs from both kernel reads.
    """
    import base64

    from livewalk.proc.pagemap import pagemap_read
    from livewalk.proc.smaps import format_smaps, smaps
    from livewalk.task import find_mm

    d = "/tmp/livewalk-demo-snap"
    g.spawn(f"exec python3 scripts/proc_snapshot.py {pid} {d}")
    before = json.loads(_wait_file(g, f"{d}/before.json"))
    t0 = time.monotonic()
    prog = g.host_program()
    _task, mm = find_mm(prog, pid)
    ranges = [tuple(int(x, 16) for x in k.split("-")) for k in before["pagemap"]]
    ours_pm = {r: pagemap_read(mm, r[0], r[1]).tobytes() for r in ranges}
    ours_sm = format_smaps(smaps(mm)).splitlines()
    t1 = time.monotonic()
    g.put(f"{d}/go", "")
    after = json.loads(_wait_file(g, f"{d}/after.json"))

    pages = bad_pages = 0
    for (s, e), ours in ours_pm.items():
        key = f"{s:x}-{e:x}"
        a = base64.b64decode(before["pagemap"][key])
        b = base64.b64decode(after["pagemap"].get(key, ""))
        pages += len(ours) // 8
        for i in range(0, len(ours), 8):
            o = ours[i : i + 8]
            if o != a[i : i + 8] and o != b[i : i + 8]:
                bad_pages += 1
    a_lines, b_lines = before["smaps"].splitlines(), after["smaps"].splitlines()
    n = max(len(ours_sm), len(a_lines), len(b_lines))
    bad_lines = 0
    for i in range(n):
        o = ours_sm[i] if i < len(ours_sm) else None
        ka = a_lines[i] if i < len(a_lines) else None
        kb = b_lines[i] if i < len(b_lines) else None
        if o != ka and o != kb:
            bad_lines += 1
    print(f"host: attach over QMP, load debug info, pagemap and smaps of {len(ranges)} VMAs: {t1 - t0:.1f} s")
    print(f"pagemap: {len(ranges)} VMAs, {pages} pages, {bad_pages} mismatches")
    print(f"smaps:   {len(ours_sm)} lines, {bad_lines} mismatches")
    return bad_pages == 0 and bad_lines == 0


if __name__ == "__main__":
    sys.exit(main())
