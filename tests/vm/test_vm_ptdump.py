# SPDX-License-Identifier: LGPL-2.1-or-later
"""``livewalk ptdump`` of the test VM's kernel page tables.

The cloud kernel has no ``CONFIG_PTDUMP_DEBUGFS``, so there is no
``/sys/kernel/debug/page_tables/kernel`` to compare with line by line; the
dump is checked against what the kernel says elsewhere:

* the format of ``arch/x86/mm/dump_pagetables.c`` (markers ``---[ NAME ]---``
  in the order of ``address_markers[]``, lines ``0x%016lx-0x%016lx   %9lu%c
  attrs level``), and ranges that tile the two ranges x86 walks;
* marker addresses: "Low Kernel Mapping" at ``page_offset_base``,
  "vmalloc() Area" at ``vmalloc_base``, "Vmemmap" at ``vmemmap_base`` (read
  with drgn in the guest), "High Kernel Mapping" at ``__START_KERNEL_map``;
* kernel text (``_text``..``_etext`` from ``/proc/kallsyms``) is mapped
  executable and read-only; a kernel data variable (``jiffies``) is RW and
  NX; the direct map's present ranges are all NX but the real-mode
  trampoline's text (below 1 MiB, read-only); the vmalloc area has
  present RW NX ranges (module-less kernels still vmalloc stacks);
* ``--check-wx`` agrees with the kernel's own boot-time W+X check
  (``CONFIG_DEBUG_WX``: "x86/mm: Checked W+X mappings: passed" in the kernel
  log).

In both paging modes, in the guest (drgn on /proc/kcore) and from the host
(drgn over QMP), which must print the same dump.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

pytestmark = pytest.mark.vm

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
M64 = (1 << 64) - 1
LINE = re.compile(
    r"^0x([0-9a-f]{16})-0x([0-9a-f]{16})   ([ \d]{9})([BKMGTPE]) (.{30})(pgd|p4d|pud|pmd|pte)$"
)
MARKER = re.compile(r"^---\[ (.*) \]---$")
ORDER = ["User Space", "Kernel Space", "LDT remap", "Low Kernel Mapping", "vmalloc() Area",
         "Vmemmap", "CPU entry Area", "ESPfix Area", "EFI Runtime Services",
         "High Kernel Mapping", "Modules", "End Modules", "Fixmap Area"]


def parse(text: str) -> tuple[list[str], list[dict[str, Any]]]:
    markers: list[str] = []
    ranges: list[dict[str, Any]] = []
    for line in text.splitlines():
        m = MARKER.match(line)
        if m:
            markers.append(m.group(1))
            continue
        if line.startswith("... "):
            continue
        m = LINE.match(line)
        assert m, f"not a ptdump line: {line!r}"
        s, e = int(m.group(1), 16), int(m.group(2), 16)
        delta = (e - s) & M64
        unit = "BKMGTPE".index(m.group(4))
        assert int(m.group(3)) << (10 * unit) == delta, line
        attrs = m.group(5).split()
        ranges.append({"start": s, "end": e, "attrs": attrs, "level": m.group(6),
                       "marker": markers[-1], "line": line})
    return markers, ranges


@pytest.fixture(scope="module", params=[5, 4], ids=["l5", "l4"])
def dump(request: pytest.FixtureRequest) -> dict[str, Any]:
    g = request.getfixturevalue(f"guest{request.param}")
    r = g.run("python3 -m livewalk ptdump", timeout=900)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    info = g.run(
        "python3 -c \"import drgn, json; p = drgn.program_from_kernel(); "
        "print(json.dumps({n: p[n].value_() for n in "
        "('page_offset_base', 'vmalloc_base', 'vmemmap_base')}))\"",
        timeout=300,
    )
    assert info.returncode == 0, info.stderr
    syms: dict[str, int] = {}
    for line in g.get("/proc/kallsyms").decode().splitlines():
        a, _t, n = line.split()[:3]
        if n in ("_text", "_etext", "jiffies", "__end_rodata"):
            syms[n] = int(a, 16)
    markers, ranges = parse(r.stdout)
    return {"g": g, "text": r.stdout, "markers": markers, "ranges": ranges,
            "bases": json.loads(info.stdout), "syms": syms}


def covering(ranges: list[dict[str, Any]], addr: int) -> dict[str, Any]:
    for r in ranges:
        end = r["end"] or (M64 + 1)
        if r["start"] <= addr < end:
            return r
    raise AssertionError(f"no range covers {addr:#x}")


def test_format_and_tiling(dump: dict[str, Any]) -> None:
    g = dump["g"]
    markers, ranges = dump["markers"], dump["ranges"]
    # Markers in address_markers[] order, the fixed ones all there.
    assert markers == [m for m in ORDER if m in markers]
    for m in ("User Space", "Kernel Space", "Low Kernel Mapping", "vmalloc() Area", "Vmemmap",
              "CPU entry Area", "High Kernel Mapping", "Modules", "End Modules", "Fixmap Area"):
        assert m in markers, m
    # The ranges tile [0, end of the lower half) then [GUARD_HOLE_END, 2^64):
    # each starts where the previous ended, except at the jump over the
    # guard hole and the non-canonical gap, which x86 ptdump does not walk.
    shift = 48 if g.levels == 5 else 39
    low_end = 1 << (56 if g.levels == 5 else 47)
    guard_end = ((-256 << shift) + (16 << shift)) & M64
    assert ranges[0]["start"] == 0
    assert ranges[-1]["end"] == 0  # the last range ends at 2^64, printed as 0
    jumps = [(a["end"], b["start"]) for a, b in zip(ranges, ranges[1:]) if a["end"] != b["start"]]
    assert jumps == [] or jumps == [(low_end, guard_end)], [(hex(a), hex(b)) for a, b in jumps]
    # With nothing mapped in init_mm's lower half, the first range is a hole
    # that runs into the kernel half (note_page breaks only at a marker).
    assert ranges[0]["end"] in (low_end, guard_end)


def test_marker_addresses(dump: dict[str, Any]) -> None:
    ranges, bases = dump["ranges"], dump["bases"]
    first = {}
    for r in ranges:
        first.setdefault(r["marker"], r["start"])
    assert first["Low Kernel Mapping"] == bases["page_offset_base"]
    assert first["vmalloc() Area"] == bases["vmalloc_base"]
    assert first["Vmemmap"] == bases["vmemmap_base"]
    assert first["High Kernel Mapping"] == 0xFFFFFFFF80000000
    assert first["CPU entry Area"] == 0xFFFFFE0000000000


def test_kernel_text_data_and_direct_map(dump: dict[str, Any]) -> None:
    ranges, syms = dump["ranges"], dump["syms"]
    text_ranges = [r for r in ranges if r["start"] < syms["_etext"] and r["end"] > syms["_text"]
                   and r["end"] != 0]
    assert text_ranges
    for r in text_ranges:
        # Kernel text: present, read-only, executable (mark_rodata_ro()).
        assert r["attrs"] and "ro" in r["attrs"] and "x" in r["attrs"], r["line"]
        assert "NX" not in r["attrs"] and "USR" not in r["attrs"], r["line"]
        assert r["marker"] == "High Kernel Mapping"
    data = covering(ranges, syms["jiffies"])
    assert "RW" in data["attrs"] and "NX" in data["attrs"], data["line"]
    low = [r for r in ranges if r["marker"] == "Low Kernel Mapping" and r["attrs"]]
    assert low, "no present range in the direct map"
    base = dump["bases"]["page_offset_base"]
    for r in low:
        # The direct map is NX, except the real-mode trampoline's text, which
        # the kernel makes executable below 1 MiB (arch/x86/realmode/init.c,
        # set_real_mode_permissions()).
        if "NX" not in r["attrs"]:
            assert r["end"] <= base + (1 << 20) and "ro" in r["attrs"], r["line"]
    assert sum((r["end"] - r["start"]) for r in low) >= 512 << 20  # the guest's RAM is mapped
    vmalloc = [r for r in ranges if r["marker"] == "vmalloc() Area" and r["attrs"]]
    assert any("RW" in r["attrs"] and "NX" in r["attrs"] for r in vmalloc)
    # Coalescing: no two neighbours with the same attributes and level
    # under the same marker (note_page merges those).
    for a, b in zip(ranges, ranges[1:]):
        if a["end"] == b["start"] and a["marker"] == b["marker"]:
            assert (a["attrs"], a["level"]) != (b["attrs"], b["level"]) or a["attrs"] == [], (
                a["line"], b["line"])


def test_check_wx_agrees_with_kernel(dump: dict[str, Any]) -> None:
    g = dump["g"]
    klog = g.run("dmesg | grep 'Checked W+X mappings'", timeout=60).stdout
    assert "Checked W+X mappings" in klog, "the kernel (CONFIG_DEBUG_WX) logged no W+X check"
    r = g.run("python3 -m livewalk ptdump --check-wx", timeout=900)
    assert r.stderr == ""
    if "passed, no W+X pages found" in klog:
        assert r.returncode == 0
        assert r.stdout == "x86/mm: Checked W+X mappings: passed, no W+X pages found.\n"
    else:
        n = re.search(r"FAILED, (\d+) W\+X pages", klog)
        assert n and r.returncode == 1
        assert f"FAILED, {n.group(1)} W+X pages found" in r.stdout


def test_ptdump_from_host_is_the_same(dump: dict[str, Any]) -> None:
    import gc

    g = dump["g"]
    if getattr(g, "_prog", None) is not None:  # QEMU serves one QMP client at a time
        g._prog = None
        gc.collect()
    p = subprocess.run(
        [sys.executable, "-m", "livewalk", "--qemu", g.qmp_socket, "-s",
         os.path.dirname(g.vmlinux), "ptdump"],
        capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    # Between the two runs the guest may map and unmap vmalloc, fixmap and
    # module pages; the kernel image, the direct map and the fixed areas
    # stay as they are: compare those.
    def stable(text: str) -> list[str]:
        _m, rs = parse(text)
        keep = ("User Space", "Kernel Space", "LDT remap", "Low Kernel Mapping",
                "CPU entry Area", "High Kernel Mapping")
        return [r["line"] for r in rs if r["marker"] in keep]

    assert stable(p.stdout) == stable(dump["text"])
