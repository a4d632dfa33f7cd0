# SPDX-License-Identifier: LGPL-2.1-or-later
"""Build livewalk's wheel and install it (not editable) into a fresh venv.

No network: ``--no-build-isolation --no-deps`` (setuptools and drgn come from
the host, the venv has ``--system-site-packages``). The venv is made once per
process and reused by the tests that need it.

>>> py = installed_python(tmp)  # doctest: +SKIP
>>> subprocess.run([py, "-m", "livewalk", "--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_made: dict[str, Path] = {}


def clean_env() -> dict[str, str]:
    """The environment without anything that points Python at this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST", "VIRTUAL_ENV"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    return env


def build_wheel(dest: Path) -> Path:
    """``pip wheel .`` of this checkout into *dest*; returns the wheel."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(dest), str(ROOT)],
        check=True, env=clean_env(), timeout=300, capture_output=True,
    )  # fmt: skip
    (wheel,) = dest.glob("livewalk-*.whl")
    return wheel


def installed_python(workdir: Path) -> Path:
    """The python of a fresh venv (under *workdir*) with livewalk's wheel
    installed in it; made once per process."""
    if "py" in _made:
        return _made["py"]
    wheel = build_wheel(workdir / "dist")
    env_dir = workdir / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
         str(wheel)],
        check=True, env=clean_env(), timeout=300, capture_output=True,
    )  # fmt: skip
    _made["py"] = py
    return py
