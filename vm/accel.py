# SPDX-License-Identifier: LGPL-2.1-or-later
"""Choose the accelerator: KVM when a short probe boot proves it works, else TCG.

``LIVEWALK_VM_ACCEL=tcg|kvm|auto`` (default auto) forces it; the probe's
verdict is cached in the image cache (``kvm-probe-<release>.json``), keyed by the host
kernel, the QEMU version and the guest kernel.

>>> choose_accel(current_image())  # doctest: +SKIP
'tcg'
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from .errors import log
from .image import ARCHES, Image, cache_dir
from .qemu import QEMU, pdeathsig, qemu_version

__all__ = ("choose_accel",)


def choose_accel(image: Image) -> str:
    """``"kvm"`` if KVM is asked for or a short probe boot proves it works, else ``"tcg"``."""
    if ARCHES[image.spec.arch].uname != os.uname().machine:
        return "tcg"  # another architecture's guest: emulated
    want = os.environ.get("LIVEWALK_VM_ACCEL", "auto")
    if want in ("tcg", "kvm"):
        return want
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    ident = {"host": os.uname().release, "qemu": qemu_version(), "kernel": image.release}
    # One verdict per guest kernel, so switching series does not probe again.
    verdict_file = cache_dir() / f"kvm-probe-{image.release}.json"
    try:
        cached = json.loads(verdict_file.read_text())
        if cached.get("ident") == ident:
            return "kvm" if cached["works"] else "tcg"
    except (OSError, ValueError, KeyError):
        pass
    works = _probe_kvm(image)
    try:
        verdict_file.write_text(json.dumps({"ident": ident, "works": works}) + "\n")
    except OSError:
        pass
    log(f"KVM probe boot: {'works' if works else 'does not work; using TCG'}")
    return "kvm" if works else "tcg"


def _probe_kvm(image: Image, timeout: float = 20.0) -> bool:
    """Boot the kernel under KVM with no root disk: a working KVM gets to the
    (expected) "VFS: Unable to mount root" panic within seconds."""
    with tempfile.TemporaryDirectory(prefix="lwvm-kvmprobe-") as d:
        console = Path(d) / "console.log"
        args = [
            QEMU, "-accel", "kvm", "-cpu", "host", "-m", "512M", "-smp", "1",
            "-display", "none", "-no-reboot", "-nic", "none", "-monitor", "none",
            "-serial", f"file:{console}", "-kernel", str(image.vmlinuz),
            "-append", "console=ttyS0 panic=-1",
        ]  # fmt: skip
        try:
            p = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, preexec_fn=pdeathsig,
            )  # fmt: skip
        except OSError:
            return False
        deadline = time.monotonic() + timeout
        ok = False
        try:
            while time.monotonic() < deadline:
                text = console.read_text(errors="replace") if console.exists() else ""
                if "Linux version" in text and ("VFS:" in text or "Kernel panic" in text):
                    ok = True
                    break
                if p.poll() is not None:
                    break
                time.sleep(0.2)
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
        return ok
