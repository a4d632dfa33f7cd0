# SPDX-License-Identifier: LGPL-2.1-or-later
"""The livewalk pytest plugin from an outside project's point of view: a
throwaway project that installs nothing but livewalk (its wheel, in a fresh
venv) boots the VM through the plugin, runs its own program there and
asserts with livewalk on that program's memory. The right assertions pass;
a deliberately wrong one fails with a readable message."""

from __future__ import annotations

import re

import pytest

from tests.wheelvenv import installed_python

pytestmark = pytest.mark.vm

# The outside project's program: maps 16 pages, writes to the first 8.
PROGRAM = '''
import ctypes, mmap, time
m = mmap.mmap(-1, 16 * 4096)
for off in range(0, 8 * 4096, 4096):
    m[off] = 1
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
print(f"READY {addr:#x}", flush=True)
time.sleep(3600)
'''

# The outside project's tests (as its README example has them).
PROJECT_TESTS = '''
from pathlib import Path

import pytest

from livewalk import MMWalkOps
from livewalk.arch.x86.pgtable import pte_present

PAGE = 4096
PM_PRESENT = 1 << 63


@pytest.fixture(scope="module")
def program(livewalk_guest):
    g = livewalk_guest
    g.copy_in(Path(__file__).parent / "program.py", "/tmp/program.py")
    pid = g.spawn("exec python3 /tmp/program.py", ready="READY")
    addr = int(g.spawn_log(pid).split()[1], 16)
    yield g, pid, addr
    g.run(f"kill {pid}")


def test_written_pages_are_present(program):
    g, pid, addr = program
    present = [bool(e & PM_PRESENT) for e in g.pagemap(pid, addr, addr + 16 * PAGE)]
    assert present == [True] * 8 + [False] * 8


def test_smaps_rss(program):
    g, pid, addr = program
    (vma,) = [v for v in g.smaps(pid) if v.vm_start <= addr < v.vm_end]
    assert vma.resident == 8 * PAGE


def test_own_walk_ops(program):
    g, pid, addr = program
    seen = []

    def pte_entry(pte, start, end, walk):
        if pte_present(int(pte.value)):
            seen.append(start)
        return 0

    assert g.walk_page_range(pid, addr, addr + 16 * PAGE, MMWalkOps(pte_entry=pte_entry)) == 0
    assert seen == [addr + i * PAGE for i in range(8)]
    assert g.vtop(pid, addr).pfn == g.pagemap(pid, addr, addr + PAGE)[0] & ((1 << 55) - 1)


def test_deliberately_wrong(program):
    g, pid, addr = program
    present = [bool(e & PM_PRESENT) for e in g.pagemap(pid, addr, addr + 16 * PAGE)]
    assert present == [True] * 16, "all 16 pages should be resident"
'''


def test_outside_project_on_the_vm(pytester: pytest.Pytester) -> None:
    py = installed_python(pytester.path.parent / "wheel")
    pytester.makepyfile(test_memory=PROJECT_TESTS)
    (pytester.path / "program.py").write_text(PROGRAM)
    # Its own python, in a fresh process: nothing of this checkout on sys.path.
    result = pytester.run(str(py), "-m", "pytest", "-p", "no:cacheprovider", "-v",
                          "--livewalk-paging", "4", timeout=1500)  # fmt: skip
    out = result.stdout.str()
    assert re.search(r"plugins: .*livewalk", out), out[-3000:]
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines([
        "*test_memory.py::test_written_pages_are_present[[]l4[]] PASSED*",
        "*test_memory.py::test_deliberately_wrong[[]l4[]] FAILED*",
        "E*AssertionError: all 16 pages should be resident",
        "E*assert [[]True, True, *] == [[]True, True, *]",
        "E*At index 8 diff: False != True*",
    ])  # fmt: skip
