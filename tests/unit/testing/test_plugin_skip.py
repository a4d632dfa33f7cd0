# SPDX-License-Identifier: LGPL-2.1-or-later
"""The livewalk pytest plugin on a machine without QEMU: an outside
project's VM tests are skipped with one line of reason (or fail with it
under --livewalk-require-vm), at once, and its other tests still run."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from livewalk.testing import PLUGIN, plugin_installed

PROJECT_TEST = '''
def test_on_vm(livewalk_guest):
    assert livewalk_guest.run("true").returncode == 0

def test_host_only():
    assert 1 + 1 == 2
'''


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, *args: str) -> pytest.RunResult:
    no_qemu = pytester.path / "empty-bin"
    no_qemu.mkdir(exist_ok=True)
    monkeypatch.setenv("PATH", str(no_qemu))  # a machine without qemu-system-x86_64
    pytester.makepyfile(test_project=PROJECT_TEST)
    plugin = [] if plugin_installed() else ["-p", PLUGIN]
    t = time.monotonic()
    result = pytester.runpytest(*plugin, "-rs", *args)
    assert time.monotonic() - t < 30
    return result


def test_skips_with_one_line_reason(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(pytester, monkeypatch)
    result.assert_outcomes(passed=1, skipped=1)
    reason = [ln for ln in result.outlines if ln.startswith("SKIPPED")]
    assert len(reason) == 1
    assert reason[0].endswith(
        "livewalk VM unavailable: qemu-system-x86_64 not found on PATH "
        "(install QEMU, e.g. apt-get install qemu-system-x86)"
    ), reason


def test_require_vm_fails_instead(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _run(pytester, monkeypatch, "--livewalk-require-vm")
    result.assert_outcomes(passed=1, errors=1)  # in the fixture's setup
    result.stdout.fnmatch_lines(["*livewalk VM unavailable: qemu-system-x86_64 not found on PATH*"])
    out = result.stdout.str()
    assert "Traceback" not in out and "During handling" not in out


def test_unsupported_kernel_series_skips(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    """A kernel series the machine has no image of and cannot build one
    of, and a series livewalk does not know: skipped per series, by id."""
    fake = tmp_path / "bin"
    fake.mkdir()
    qemu = fake / "qemu-system-x86_64"
    qemu.write_text("#!/bin/sh\nexit 1\n")
    qemu.chmod(0o755)
    monkeypatch.setenv("LIVEWALK_VM_CACHE", str(tmp_path / "no-cache"))
    pytester.makepyfile(test_project=PROJECT_TEST)
    monkeypatch.setenv("PATH", str(fake))
    plugin = [] if plugin_installed() else ["-p", PLUGIN]
    result = pytester.runpytest(*plugin, "-rs", "--livewalk-kernel", "6.1,5.4", "--livewalk-paging", "5,4")
    result.assert_outcomes(passed=1, skipped=4)
    result.stdout.fnmatch_lines(["*livewalk VM unavailable: no test VM image of kernel 6.1 and it cannot be built here*"])
    result.stdout.fnmatch_lines(["*livewalk VM unavailable: kernel series 5.4 is not known (known: 6.1, 6.12, 7)*"])
    ids = pytester.runpytest(*plugin, "--collect-only", "-q", "--livewalk-kernel", "6.1",
                             "--livewalk-paging", "5,4").outlines  # fmt: skip
    assert "test_project.py::test_on_vm[6.1-l5]" in ids and "test_project.py::test_on_vm[6.1-l4]" in ids
