# SPDX-License-Identifier: LGPL-2.1-or-later
"""crash's commands at a real drgn prompt: ``drgn --qemu`` on the host
against the guest, with livewalk loaded as a plugin
(``DRGN_PLUGINS=livewalk=livewalk.drgn_plugin``), typed into a terminal
(tmux) and read back from the screen; then the same against an ELF vmcore
of the guest (``drgn -c``).

The expected answers are the kernel's own: ``/proc/PID/pagemap`` read in
the guest before drgn attaches (QEMU serves one QMP client at a time)."""

from __future__ import annotations

import gc
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.workloads.inguest import mappings_workload

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = 4096
PFN_MASK = (1 << 55) - 1

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


class Prompt:
    """A drgn prompt in a detached tmux session: type a line, read the screen."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name = name
        self.n = 0
        env = (f"DRGN_PLUGINS=livewalk=livewalk.drgn_plugin PYTHONPATH={shlex.quote(ROOT)} "
               "TERM=dumb")
        cmd = f"cd {shlex.quote(ROOT)} && {env} {' '.join(shlex.quote(a) for a in argv)}"
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "200", "-y", "50", cmd],
                       check=True)
        subprocess.run(["tmux", "set-option", "-t", name, "history-limit", "100000"], check=True)
        self.wait_for(">>> ", timeout=600)

    def screen(self) -> str:
        return subprocess.run(
            ["tmux", "capture-pane", "-p", "-J", "-t", self.name, "-S", "-100000"],
            capture_output=True, text=True, check=True).stdout

    def wait_for(self, text: str, timeout: float = 300) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.screen()
            if text in s:
                return s
            time.sleep(0.3)
        raise AssertionError(f"{text!r} not on the screen after {timeout} s:\n{self.screen()[-3000:]}")

    def type(self, line: str, timeout: float = 600) -> str:
        """
        Type *line*, wait for the prompt to come back, return what it printed.

        Nothing is typed ahead of the prompt: keys that reach the terminal
        while readline hands it to the running command are echoed or not
        depending on timing (an Enter that arrives just after the switch
        shows as an empty line at the top of the output). A unique no-op
        line typed first marks where this command's screen begins.
        """
        self.n += 1
        mark = f"'@@{self.n}' and None"
        subprocess.run(["tmux", "clear-history", "-t", self.name], check=True)
        self._enter(mark)
        self._back(mark, "", 120)
        self._enter(line)
        return self._back(line, mark, timeout)

    def _enter(self, line: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", line], check=True)
        subprocess.run(["tmux", "send-keys", "-t", self.name, "Enter"], check=True)

    def _back(self, line: str, after: str, timeout: float) -> str:
        """
        Wait until *line*, typed below the line *after* (any line if empty),
        has finished: the prompt is back, alone on the last line. Return the
        lines between the two.
        """
        deadline = time.monotonic() + timeout
        while True:
            lines = self.screen().rstrip().splitlines()
            first = max((i + 1 for i, x in enumerate(lines) if after and x.endswith(after)), default=0)
            typed = [i for i, x in enumerate(lines) if i >= first and x.endswith(line)]
            if typed and typed[-1] < len(lines) - 1 and lines[-1].rstrip() == ">>>":
                return "\n".join(lines[typed[-1] + 1:-1])
            if time.monotonic() > deadline:
                raise AssertionError(f"{line!r} did not finish in {timeout} s:\n{self.screen()[-3000:]}")
            time.sleep(0.3)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


def _guest_pagemap(g: Any, pid: int, start: int, end: int) -> list[int]:
    """The kernel's own /proc/PID/pagemap entries, read in the guest."""
    code = (f"f=open('/proc/{pid}/pagemap','rb');f.seek({start // PAGE * 8});"
            f"print(f.read({(end - start) // PAGE * 8}).hex())")
    out = g.run(f"python3 -c {shlex.quote(code)}", timeout=120)
    data = bytes.fromhex(out.stdout.strip() if hasattr(out, "stdout") else str(out).strip())
    return list(struct.unpack(f"<{len(data) // 8}Q", data))


@pytest.fixture(scope="module")
def wl(guest5: Any) -> Iterator[tuple[Any, dict[str, Any], dict[str, Any]]]:
    g = guest5
    with mappings_workload(g, "crashcmd") as ready:
        pid = ready["pid"]
        anon = ready["parts"]["anon"]["written"][0]
        swap = ready["regions"]["swap"][0]
        kernel = {
            "anon": _guest_pagemap(g, pid, anon, anon + PAGE)[0],
            "swap": _guest_pagemap(g, pid, swap, swap + PAGE)[0],
        }
        yield g, ready, kernel


def _drop_host_program(g: Any) -> None:
    if getattr(g, "_prog", None) is not None:
        g._prog = None  # QEMU serves one QMP client: drgn at the prompt needs it
        gc.collect()


@pytest.fixture(scope="module")
def qmp_prompt(wl: Any) -> Iterator[Prompt]:
    g = wl[0]
    _drop_host_program(g)
    p = Prompt("lw-qmp", [sys.executable, "-m", "drgn", "-q", "--qemu", g.qmp_socket,
                          "-s", g.vmlinux])
    yield p
    p.close()


def test_lwvtop_at_the_prompt(wl: Any, qmp_prompt: Prompt) -> None:
    g, ready, kernel = wl
    pid = ready["pid"]
    anon = ready["parts"]["anon"]["written"][0]
    out = qmp_prompt.type(f"%lwvtop -c {pid} {anon:x}")
    lines = out.splitlines()
    assert lines[0].split() == ["VIRTUAL", "PHYSICAL"]
    assert int(lines[1].split()[1], 16) == (kernel["anon"] & PFN_MASK) * PAGE
    levels = [x.split(":")[0].strip() for x in lines if " => " in x]
    assert levels == ["PGD", "P4D", "PUD", "PMD", "PTE"]
    pte = next(x for x in lines if x.strip().startswith("PTE:"))
    assert "(PRESENT|RW|USER" in pte
    assert any(x.split()[:2] == ["PAGE", "PHYSICAL"] for x in lines)  # the struct page line
    # a swapped-out page: crash's SWAP line with the kernel's type and offset
    swap = ready["regions"]["swap"][0]
    out = qmp_prompt.type(f"%lwvtop -c {pid} {swap:x}")
    assert out.splitlines()[1].endswith("(not mapped)")
    offset = (kernel["swap"] & PFN_MASK) >> 5
    assert re.search(rf"^SWAP: .*  OFFSET: {offset}$", out, re.M), out


def test_lwpte_at_the_prompt(wl: Any, qmp_prompt: Prompt) -> None:
    g, ready, kernel = wl
    value = (1 << 63) | ((kernel["anon"] & PFN_MASK) << 12) | 0x67
    out = qmp_prompt.type(f"%lwpte {value:x}").splitlines()
    assert out[0].split() == ["PTE", "PHYSICAL", "FLAGS"]
    assert out[1].split() == [f"{value:x}", f"{(kernel['anon'] & PFN_MASK) << 12:x}",
                              "(PRESENT|RW|USER|ACCESSED|DIRTY|NX)"]


def test_lwvm_p_at_the_prompt(wl: Any, qmp_prompt: Prompt, tmp_path: Any) -> None:
    g, ready, kernel = wl
    pid = ready["pid"]
    anon = ready["parts"]["anon"]["written"][0]
    swap = ready["regions"]["swap"][0]
    path = tmp_path / "vm-p.txt"
    screen = qmp_prompt.type(f"%lwvm -p {pid} | head -8")
    assert screen.splitlines()[0].startswith(f"PID: {pid} ")
    t0 = time.monotonic()
    qmp_prompt.type(f"%lwvm -p {pid} > {path}")
    seconds = time.monotonic() - t0
    pages = {}
    for line in path.read_text().splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and re.fullmatch(r"[0-9a-f]+", parts[0]) and len(parts[0]) <= 12:
            pages[int(parts[0], 16)] = parts[1]
    assert pages[anon].strip() == f"{(kernel['anon'] & PFN_MASK) << 12:x}"
    assert pages[swap].startswith("SWAP: ")
    g0, g1 = ready["regions"]["guard"]
    assert any(v.startswith("PTE_MARKER: guard") for a, v in pages.items() if g0 <= a < g1)
    fp = ready["regions"]["file_private"]
    assert any(v.startswith("FILE: ") or re.fullmatch(r"[0-9a-f]+", v.strip())
               for a, v in pages.items() if fp[0] <= a < fp[1])
    print(f"vm -p of PID {pid}: {len(pages)} pages in {seconds:.1f} s at the prompt")


def test_lwpfn_at_the_prompt(wl: Any, qmp_prompt: Prompt) -> None:
    g, ready, kernel = wl
    pid = ready["pid"]
    anon = ready["parts"]["anon"]["written"][0]
    pfn = kernel["anon"] & PFN_MASK
    out = qmp_prompt.type(f"%lwpfn {pfn:#x}")
    assert out.splitlines()[0].startswith(f"PFN {pfn:x} ")
    assert "MAPPING: anon" in out
    assert re.search(rf"^\s*{pid}\s+\S+\s+{anon:x}\s+PTE\s", out, re.M), out
    m = re.search(r"in (\d+) address spaces \((\d+) tasks\), searched in ([0-9.]+) s", out)
    assert m, out
    print(f"pfn: {m.group(1)} mms, {m.group(2)} tasks searched in {m.group(3)} s")


@pytest.mark.parametrize("line,needle", [
    ("%lwpfn 0xfffffffff", "outside memory"),
    ("%lwpte zz", "bad entry value 'zz'"),
    ("%lwvm -p 999999", "999999"),
])
def test_bad_input_one_line(qmp_prompt: Prompt, line: str, needle: str) -> None:
    out = qmp_prompt.type(line).strip().splitlines()
    assert len(out) == 1, out
    assert out[0].startswith("drgn: error: ") and needle in out[0], out
    assert "Traceback" not in "\n".join(out)


def test_commands_on_an_elf_vmcore(wl: Any, qmp_prompt: Prompt, tmp_path: Any) -> None:
    g, ready, kernel = wl
    qmp_prompt.close()  # free the QMP socket for the dump
    _drop_host_program(g)
    core = tmp_path / "vmcore"
    g.dump_vmcore(core)
    _drop_host_program(g)
    p = Prompt("lw-core", [sys.executable, "-m", "drgn", "-q", "-c", str(core), "-s", g.vmlinux])
    try:
        pid = ready["pid"]
        anon = ready["parts"]["anon"]["written"][0]
        out = p.type(f"%lwvtop -c {pid} {anon:x}").splitlines()
        assert int(out[1].split()[1], 16) == (kernel["anon"] & PFN_MASK) * PAGE
        out2 = p.type(f"%lwpfn {kernel['anon'] & PFN_MASK:#x}")
        assert re.search(rf"^\s*{pid}\s+\S+\s+{anon:x}\s+PTE\s", out2, re.M), out2
        out3 = p.type(f"%lwvm -p {pid} | grep -c SWAP:").strip()
        assert int(out3.splitlines()[-1]) >= 1
    finally:
        p.close()
