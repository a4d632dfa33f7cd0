# SPDX-License-Identifier: LGPL-2.1-or-later
"""What ``pip install .`` gives: the wheel carries the VM harness
(``livewalk.vm``, from vm/), the BPF program (``livewalk/bpf/``, from bpf/)
and the pytest plugin; an editable install maps ``livewalk.vm`` to vm/.

Installs go into fresh venvs (``--system-site-packages`` for drgn), built
without network (``--no-build-isolation --no-deps``), and run outside the
checkout so that nothing of it is on ``sys.path``.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

from tests.wheelvenv import ROOT, clean_env, installed_python

PROBE = """
import json, livewalk, livewalk.vm, livewalk.vm.guest
from importlib.metadata import entry_points
from livewalk.crosscheck.tracer import bpf_source_path
print(json.dumps({
    "livewalk": livewalk.__file__,
    "vm": livewalk.vm.__file__,
    "vm_files": sorted(p.name for p in __import__("pathlib").Path(livewalk.vm.__file__).parent.iterdir()),
    "bpf": str(bpf_source_path()),
    "bpf_is_file": bpf_source_path().is_file(),
    "pytest11": sorted(ep.value for ep in entry_points(group="pytest11") if ep.name == "livewalk"),
}))
"""


def _probe(py: Path, cwd: Path) -> dict[str, object]:
    import json

    p = subprocess.run([str(py), "-c", PROBE], cwd=cwd, env=clean_env(), capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert p.returncode == 0, p.stderr
    out: dict[str, object] = json.loads(p.stdout)
    return out


def test_every_package_is_listed() -> None:
    """pyproject.toml lists packages by hand (mapped ones cannot be found):
    every package directory of livewalk/ must be in it."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "livewalk").rglob("__init__.py")
    }
    listed = set(conf["packages"])
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert conf["package-dir"] == {"livewalk.bpf": "bpf", "livewalk.vm": "vm"}
    assert listed - found == {"livewalk.bpf", "livewalk.vm"}


def test_wheel_in_fresh_venv(tmp_path: Path) -> None:
    py = installed_python(tmp_path)
    site = py.parent.parent / "lib"
    info = _probe(py, tmp_path)
    # Everything from the venv, nothing from the checkout.
    for k in ("livewalk", "vm", "bpf"):
        assert str(info[k]).startswith(str(site)), (k, info[k])
    assert info["bpf_is_file"], info["bpf"]
    assert str(info["bpf"]).endswith("site-packages/livewalk/bpf/walktrace.c")
    vm_files = info["vm_files"]
    assert isinstance(vm_files, list)
    assert {"agent.py", "guest_init.sh", "guest.py", "qemu.py"} <= set(vm_files)
    assert info["pytest11"] == ["livewalk.testing.plugin"]
    # The console script and `python -m livewalk` work.
    for cmd in ([str(py.parent / "livewalk"), "--help"], [str(py), "-m", "livewalk", "--help"]):
        p = subprocess.run(cmd, cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                           timeout=120)  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert "crosscheck" in p.stdout


def test_editable_install_maps_vm(tmp_path: Path) -> None:
    """``pip install -e .`` (what scripts/setup-host does) resolves
    ``livewalk.vm`` to the checkout's vm/ and the BPF source to bpf/."""
    pytest.importorskip("wheel")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    p = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
         "--no-build-isolation", "--no-index", "-q", "-e", str(ROOT)],
        env=clean_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    info = _probe(py, tmp_path)
    assert info["livewalk"] == str(ROOT / "livewalk" / "__init__.py")
    assert info["vm"] == str(ROOT / "vm" / "__init__.py")
    assert info["bpf"] == str(ROOT / "bpf" / "walktrace.c")
    assert info["pytest11"] == ["livewalk.testing.plugin"]
