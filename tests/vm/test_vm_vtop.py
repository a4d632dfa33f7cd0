# SPDX-License-Identifier: LGPL-2.1-or-later
"""``livewalk vtop`` agrees with the kernel.

User addresses: the workload ``tests/workloads/mappings.py`` runs in the
guest; for an address in every kind of mapping it builds (each region's
first page, each named part, a page inside each THP and hugetlb page, and
the known holes), ``python3 -m livewalk vtop --pid PID --json`` (drgn on
``/proc/kcore``) is compared with the kernel's own ``/proc/PID/pagemap``
entry for the same page, read in the guest at the same time:

* present (``PM_PRESENT``) exactly when vtop finds a present or ``PROTNONE``
  leaf, with the same PFN (the page's own PFN inside a huge leaf);
* a swap-format entry (``PM_SWAP``: swap, migration, PTE markers) exactly
  when vtop decodes one, with the same swap type and offset;
* neither: vtop finds nothing mapped (a none entry, a hole, or no VMA);
* a 2 MiB leaf where the kernel's smaps says the VMA is PMD-mapped
  (``AnonHugePages`` / ``*_Hugetlb``), a 4 KiB PTE leaf elsewhere.

Kernel addresses: ``vtop --kernel`` of ``_text`` gives the start of "Kernel
code" in ``/proc/iomem``; of a kernel thread's (vmalloc'd) stack, drgn's own
``follow_phys()``; of the direct map at ``page_offset_base + X``, physical
address X. Both paging modes; the text
output says whether P4D is folded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.workloads.inguest import mappings_workload

pytestmark = pytest.mark.vm

PM_PFN = (1 << 55) - 1
PM_SWAP = 1 << 62
PM_MMAP_EXCLUSIVE = 1 << 56
PM_PRESENT = 1 << 63


@pytest.fixture(scope="module")
def wl(fidelity_guest: Any) -> Iterator[tuple[Any, dict[str, Any]]]:
    """(guest, ready JSON) of a running workload, per fidelity-core guest."""
    g = fidelity_guest
    with mappings_workload(g, f"vtop-test-{g.levels}") as ready:
        yield g, ready


def _addresses(ready: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for label, (s, e) in ready["regions"].items():
        out[label] = s
        if e - s >= 0x200000:
            out[f"{label}+1M+5p"] = s + 0x100000 + 5 * 4096
        out[f"{label}.last"] = e - 4096
    for label, parts in ready["parts"].items():
        for part, (s, _e) in parts.items():
            out[f"{label}.{part}"] = s
    for name, (s, _e) in ready["holes"].items():
        out[f"hole:{name}"] = s
    return out


_PAGEMAP_READER = """
import json, struct, sys
pid = int(sys.argv[1])
addrs = json.load(open(sys.argv[2]))
out = {}
with open(f"/proc/{pid}/pagemap", "rb") as f:
    for k, a in addrs.items():
        f.seek(a // 4096 * 8)
        out[k] = struct.unpack("<Q", f.read(8))[0]
smaps = {}
cur = None
for line in open(f"/proc/{pid}/smaps"):
    head = line.split()[0]
    if "-" in head and ":" not in head:
        s, e = (int(x, 16) for x in head.split("-"))
        cur = smaps.setdefault(f"{s}-{e}", {})
    elif line.split(":")[0] in ("AnonHugePages", "Shared_Hugetlb", "Private_Hugetlb",
                                 "FilePmdMapped", "ShmemPmdMapped"):
        cur[line.split(":")[0]] = int(line.split()[1])
print(json.dumps({"pagemap": out, "smaps": smaps}))
"""


def test_vtop_matches_pagemap(wl: tuple[Any, dict[str, Any]]) -> None:
    g, ready = wl
    pid = ready["pid"]
    addrs = _addresses(ready)
    g.put("/tmp/lw-vtop-addrs.json", json.dumps(addrs))
    g.put("/tmp/lw-vtop-reader.py", _PAGEMAP_READER)
    before = g.run(f"python3 /tmp/lw-vtop-reader.py {pid} /tmp/lw-vtop-addrs.json", timeout=120)
    assert before.returncode == 0, before.stderr
    alist = " ".join(hex(a) for a in addrs.values())
    r = g.run(f"python3 -m livewalk vtop --pid {pid} --json {alist}", timeout=900)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    after = g.run(f"python3 /tmp/lw-vtop-reader.py {pid} /tmp/lw-vtop-addrs.json", timeout=120)
    kb, ka = json.loads(before.stdout), json.loads(after.stdout)
    # A file page's PM_MMAP_EXCLUSIVE moves with every other process that
    # maps the file (libc: each shell the harness starts); vtop does not
    # report it, and it is no movement of the workload.
    def still(pm: dict[str, int]) -> dict[str, int]:
        return {k: v & ~PM_MMAP_EXCLUSIVE for k, v in pm.items()}

    assert still(kb["pagemap"]) == still(ka["pagemap"]), "the workload moved during the test"
    kernel = kb["pagemap"]
    smaps = kb["smaps"]
    results = json.loads(r.stdout)
    assert len(results) == len(addrs)
    kinds = set()
    for (name, addr), v in zip(addrs.items(), results):
        e = kernel[name]
        assert v["addr"] == addr
        assert v["levels"] == g.levels and v["p4d_folded"] == (g.levels == 4), name
        where = f"{name} {addr:#x}: pagemap {e:#018x}, vtop {v['state']} {v['swap']}"
        if e & PM_PRESENT:
            kinds.add("present")
            assert v["state"] in ("present", "protnone"), where
            assert v["pfn"] is not None and v["phys"] is not None, where
            assert v["phys"] >> 12 == e & PM_PFN, where
            if v["state"] == "protnone":
                kinds.add("protnone")
        elif e & PM_SWAP:
            assert v["swap"] is not None, where
            assert v["state"] in ("swap", "migration", "device", "hwpoison", "marker"), where
            assert v["swap"]["type"] == (e & PM_PFN) & 31, where
            assert v["swap"]["offset"] == (e & PM_PFN) >> 5, where
            kinds.add(v["state"])
        else:
            assert v["state"] in ("none", "no_vma"), where
            assert v["phys"] is None and v["swap"] is None, where
            kinds.add(v["state"])
        if name.startswith("hole:"):
            assert v["state"] == "no_vma" and v["vma"] is None, where
        # Leaf size: the kernel's smaps says whether the VMA is PMD-mapped.
        if v["vma"] is not None and v["state"] in ("present", "protnone"):
            f = smaps[f"{v['vma']['start']}-{v['vma']['end']}"]
            huge_kb = sum(f.get(k, 0) for k in ("AnonHugePages", "Shared_Hugetlb",
                                                  "Private_Hugetlb", "FilePmdMapped",
                                                  "ShmemPmdMapped"))
            size_kb = (v["vma"]["end"] - v["vma"]["start"]) // 1024
            if huge_kb == size_kb or name.startswith("thp_zero"):
                # (the huge zero page is PMD-mapped but not counted in
                # AnonHugePages; test_workload checks it is the huge zero page)
                assert v["leaf_size"] == 2 << 20 and v["leaf_level"] == "PMD", where
            elif huge_kb == 0:
                assert v["leaf_size"] == 4096 and v["leaf_level"] == "PTE", where
            hugetlb = bool(f.get("Shared_Hugetlb", 0) or f.get("Private_Hugetlb", 0))
            assert v["hugetlb"] == hugetlb, where
        # Every level down to the leaf is listed, top first.
        levels = [s["level"] for s in v["steps"]]
        full = ["PGD", "P4D", "PUD", "PMD", "PTE"] if g.levels == 5 else ["PGD", "PUD", "PMD", "PTE"]
        assert levels == full[: len(levels)], where
    # The workload gave every kind of entry a chance.
    # (PTE markers come from uffd-wp and guard regions, which need 6.4 and 6.13)
    want = {"present", "protnone", "swap", "none", "no_vma"}
    if not {"uffd_wp", "guard"} <= set(ready["skipped"]):
        want.add("marker")
    assert want <= kinds, kinds


def test_vtop_text(wl: tuple[Any, dict[str, Any]]) -> None:
    g, ready = wl
    pid = ready["pid"]
    thp = ready["regions"]["thp"][0]
    swap = ready["regions"]["swap"][0]
    r = g.run(f"python3 -m livewalk vtop --pid {pid} {thp:#x} {swap:x}", timeout=600)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    out = r.stdout
    if g.levels == 5:
        assert "5-level paging" in out and "  P4D: " in out
    else:
        assert "4-level paging, P4D folded into PGD" in out and "  P4D: " not in out
    assert "2 MiB PMD leaf" in out
    assert "SWAP: swap entry: type" in out
    assert f"{thp:x}-" in out and "VMA: " in out


def test_vtop_kernel(wl: tuple[Any, dict[str, Any]]) -> None:
    g, _ready = wl
    script = r"""
import json, re
import drgn
from drgn.helpers.linux.mm import follow_phys
from drgn.helpers.linux.pid import find_task
syms = {}
for line in open("/proc/kallsyms"):
    a, t, n = line.split()[:3]
    if n in ("_text", "_etext", "jiffies"):
        syms[n] = int(a, 16)
code = None
for line in open("/proc/iomem"):
    m = re.match(r"\s*([0-9a-f]+)-([0-9a-f]+) : Kernel code", line)
    if m:
        code = int(m.group(1), 16)
p = drgn.program_from_kernel()
stack = find_task(p, 2).stack.value_() + 0x123   # vmalloc'd (CONFIG_VMAP_STACK)
init_mm = p["init_mm"].address_of_()
print(json.dumps({"syms": syms, "code": code, "page_offset": p["page_offset_base"].value_(),
                  "vmalloc_base": p["vmalloc_base"].value_(),
                  "stack": stack, "stack_phys": follow_phys(init_mm, stack).value_()}))
"""
    g.put("/tmp/lw-ksyms.py", script)
    r = g.run("python3 /tmp/lw-ksyms.py", timeout=300)
    assert r.returncode == 0, r.stderr
    k = json.loads(r.stdout)
    assert k["code"] is not None, k
    # The stack is in the vmalloc area (ioremap/vmalloc addresses in
    # /proc/vmallocinfo are hashed); its physical address is drgn's own
    # translation (libdrgn's page-table walk, not livewalk's).
    assert k["stack"] >= k["vmalloc_base"]
    addrs = [k["syms"]["_text"], k["syms"]["jiffies"], k["stack"], k["page_offset"] + 0x1234000]
    r = g.run("python3 -m livewalk vtop --kernel --json " + " ".join(hex(a) for a in addrs), timeout=600)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    vt, vj, vs, vd = json.loads(r.stdout)
    # _text is at the start of "Kernel code" in /proc/iomem.
    assert vt["state"] == "present" and vt["phys"] == k["code"]
    # Kernel text: executable, read-only, global; data: writable, NX.
    leaf = vt["steps"][-1]["flags"]
    assert "NX" not in leaf and "RW" not in leaf and "GLOBAL" in leaf
    assert vj["state"] == "present" and "NX" in vj["steps"][-1]["flags"]
    assert "RW" in vj["steps"][-1]["flags"]
    assert vs["state"] == "present" and vs["phys"] == k["stack_phys"]
    assert vs["leaf_level"] == "PTE" and "NX" in vs["steps"][-1]["flags"]
    # The direct map: page_offset_base + X maps physical address X.
    assert vd["state"] == "present" and vd["phys"] == 0x1234000
    assert "NX" in vd["steps"][-1]["flags"]
    for v in (vt, vj, vs, vd):
        assert v["kernel"] and v["vma"] is None and v["p4d_folded"] == (g.levels == 4)


def test_vtop_address_errors(wl: tuple[Any, dict[str, Any]]) -> None:
    g, ready = wl
    pid = ready["pid"]
    r = g.run(f"python3 -m livewalk vtop --pid {pid} ffffffff81000000", timeout=300)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("livewalk: error: address 0xffffffff81000000 is outside user space")
    assert len(r.stderr.splitlines()) == 1
    r = g.run("python3 -m livewalk vtop --kernel 7f0000000000", timeout=300)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    assert "is not a kernel address" in r.stderr


def _host(g: Any, *args: str) -> Any:
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    _release_qmp(g)
    env = dict(os.environ, PYTHONPATH=root)
    return subprocess.run(
        [sys.executable, "-m", "livewalk", "--qemu", g.qmp_socket,
         "-s", os.path.dirname(g.vmlinux), *args],
        capture_output=True, text=True, cwd=root, env=env, timeout=600,
    )


def _release_qmp(g: Any) -> None:
    # QEMU serves one QMP client at a time and Guest.host_program() keeps
    # its Program (and connection) for the session: drop it so that the
    # livewalk command can attach; host_program() makes a new one if needed.
    import gc

    if getattr(g, "_prog", None) is not None:
        g._prog = None
        gc.collect()


def _vtop_differences(host: list[dict[str, Any]], guest: list[dict[str, Any]]) -> list[str]:
    """What differs between two ``vtop --json`` answers for the same addresses."""
    out = []
    for h, v in zip(host, guest, strict=True):
        for key in ("state", "phys", "pfn", "swap", "leaf_size", "leaf_level", "hugetlb", "steps"):
            if h[key] != v[key]:
                out.append(f"{h['addr']:#x} {key}: host {h[key]!r} guest {v[key]!r}")
        for key in ("start", "flags"):
            if h["vma"][key] != v["vma"][key]:
                out.append(f"{h['addr']:#x} vma {key}: host {h['vma'][key]!r} guest {v['vma'][key]!r}")
    return out


def test_vtop_from_host(wl: tuple[Any, dict[str, Any]]) -> None:
    """Same walk of the same tables, over QMP or /proc/kcore: the same answer.
    The guest's memory may move between the two (compaction, khugepaged): a
    round that differs is run again, and every round differing fails."""
    g, ready = wl
    pid = ready["pid"]
    addrs = [hex(ready["regions"][k][0]) for k in ("thp", "swap", "protnone", "hugetlb_shared", "anon")]
    rounds = []
    for _ in range(3):
        p = _host(g, "vtop", "--pid", str(pid), "--json", *addrs)
        assert p.returncode == 0, p.stderr
        r = g.run(f"python3 -m livewalk vtop --pid {pid} --json " + " ".join(addrs), timeout=600)
        assert r.returncode == 0, r.stderr
        diffs = _vtop_differences(json.loads(p.stdout), json.loads(r.stdout))
        if not diffs:
            break
        rounds.append(diffs)
    else:
        pytest.fail("host and guest vtop differ in every round:\n" + "\n".join(map(str, rounds)))
