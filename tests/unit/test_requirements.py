# SPDX-License-Identifier: LGPL-2.1-or-later
"""The oldest drgn livewalk supports, and what an older one gets.

The venv tests install real drgn releases from PyPI into fresh venvs:
``DRGN_MIN_VERSION`` itself must pass the unit tests that use drgn (the
drgn backend on a fake kernel, task resolution, the CLI's error paths), and
the release before it, or no drgn at all, must get one ``livewalk: error:``
line naming what to install, from ``import livewalk`` and from the command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from livewalk.requirements import DRGN_MIN_VERSION, DrgnVersionError, drgn_version
from tests.wheelvenv import ROOT, clean_env

MIN = ".".join(map(str, DRGN_MIN_VERSION))
#: The release before DRGN_MIN_VERSION: the newest one livewalk refuses.
TOO_OLD = "0.0.30"
#: Set in the nested run, so that it does not start venvs of its own.
NESTED = "LIVEWALK_REQUIREMENTS_NESTED"

pytestmark = pytest.mark.skipif(bool(os.environ.get(NESTED)), reason="run by test_oldest_drgn_passes_the_unit_tests")


@pytest.mark.parametrize(
    "text,value",
    [("0.3.0", (0, 3, 0)), ("0.0.31", (0, 0, 31)), ("0.3.0+12.gabcdef", (0, 3, 0)), ("0.1", (0, 1)), ("dev", ())],
)
def test_drgn_version_parses_releases(text: str, value: tuple[int, ...]) -> None:
    assert drgn_version(text) == value


def test_running_drgn_is_supported() -> None:
    assert drgn_version() >= DRGN_MIN_VERSION
    assert (0, 0, 30) < DRGN_MIN_VERSION <= (0, 0, 31)


def test_pyproject_states_the_same_minimum() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert f'"drgn>={MIN}"' in text


def test_error_is_an_import_error() -> None:
    assert issubclass(DrgnVersionError, ImportError)


def _venv(path: Path, *packages: str) -> Path:
    venv.EnvBuilder(with_pip=True).create(path)
    py = path / "bin" / "python"
    if packages:
        p = subprocess.run([str(py), "-m", "pip", "install", "-q", *packages],
                           capture_output=True, text=True, timeout=600)  # fmt: skip
        assert p.returncode == 0, p.stderr[-3000:]
    return py


def _livewalk(py: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env()
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([str(py), *args], cwd="/", env=env, capture_output=True, text=True, timeout=120)


def _assert_one_line(p: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert p.returncode == 1, (p.returncode, p.stderr)
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("livewalk: error: "), p.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize("drgn", [TOO_OLD, None], ids=["too-old", "missing"])
def test_old_or_missing_drgn_gets_one_line(tmp_path: Path, drgn: str | None) -> None:
    py = _venv(tmp_path / "venv", *([f"drgn=={drgn}"] if drgn else []))
    want = [f"drgn>={MIN}", "pip install"] + ([f"drgn {drgn} is too old"] if drgn else ["not installed"])
    _assert_one_line(_livewalk(py, "-m", "livewalk", "ptdump"), *want)
    _assert_one_line(_livewalk(py, "-c", "import livewalk"), *want)
    # a caller can still catch it like any ImportError
    p = _livewalk(py, "-c", "try:\n import livewalk\nexcept ImportError as e:\n print(type(e).__name__)")
    assert p.returncode == 0 and p.stdout.strip() == "DrgnVersionError", p.stderr


def test_oldest_drgn_passes_the_unit_tests(tmp_path: Path) -> None:
    py = _venv(tmp_path / "venv", f"drgn=={MIN}", "pytest", "hypothesis")
    env = clean_env()
    env[NESTED] = "1"
    p = subprocess.run(
        [str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not vm", "-x",
         "--ignore", str(ROOT / "tests" / "unit" / "testing" / "test_packaging.py"),
         str(ROOT / "tests" / "unit")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout[-4000:]
    assert " passed" in p.stdout.splitlines()[-1], p.stdout[-500:]
    assert sys.version_info >= (3, 11)
