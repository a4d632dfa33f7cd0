# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boot the livewalk test VM under QEMU and run commands in it.

>>> from vm import Guest
>>> with Guest(levels=4) as g:
...     r = g.run("uname -r; grep -c la57 /proc/cpuinfo")
...     prog = g.host_program()          # drgn on the host, over QMP
...     print(g.release, g.levels, g.boot_seconds, r.returncode)

The guest boots the image's cloud kernel directly (``-kernel``, no
initramfs) from an NVMe root disk (opened with ``snapshot=on``, so every boot
starts from the pristine image), with a serial console logged to a file, a
QMP socket and ``-device vmcoreinfo`` for drgn on the host (a second QMP
monitor serves :meth:`Guest.dump_vmcore`, a vmcore of the running guest), and two
virtio-blk disks: ``/src``, a read-only ext4 snapshot of the repository's
working tree made at boot (tracked and untracked files, not ignored ones),
and ``/out``, an empty ext4 disk whose contents are copied back to
:attr:`Guest.out_dir` when the guest stops. Commands go through an agent
(vm/agent.py) on a virtio-serial port.

TCG is used unless a short KVM probe boot proves KVM works
(``LIVEWALK_VM_ACCEL=tcg|kvm|auto``, default auto; the verdict is cached).
A boot that panics, oopses, dies or does not reach the agent within the boot
timeout is retried (3 attempts); QEMU is killed when the guest stops, when
Python exits and (PR_SET_PDEATHSIG) when the process that started it dies.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import itertools
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .image import Image, cache_dir, ensure_image

__all__ = ["BootError", "Guest", "GuestError", "RunResult"]

VM_DIR = Path(__file__).resolve().parent
REPO = VM_DIR.parent

# Messages in the console log that mean the boot failed.
FATAL = re.compile(
    r"Kernel panic - not syncing|Oops:|BUG: kernel NULL pointer|BUG: unable to handle|"
    r"general protection fault|kernel BUG at|Unable to mount root|VFS: Cannot open root"
)

_live: weakref.WeakSet[Guest] = weakref.WeakSet()


class GuestError(RuntimeError):
    """The guest failed (died, did not answer, or a command failed with check=True)."""


class BootError(GuestError):
    """The guest did not boot (after all retries)."""


@dataclass
class RunResult:
    """The result of :meth:`Guest.run`."""

    cmd: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    def check(self) -> RunResult:
        """Raise :class:`GuestError` unless the command exited with status 0."""
        if self.returncode != 0:
            raise GuestError(
                f"guest command {self.cmd!r} exited with {self.returncode}"
                + (" (timed out)" if self.timed_out else "")
                + f"\n--- stdout:\n{self.stdout[-4000:]}\n--- stderr:\n{self.stderr[-4000:]}"
            )
        return self


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def _pdeathsig() -> None:
    # Runs in the child before exec: die with the parent.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _host_has_la57() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(ln.startswith("flags") and " la57" in ln for ln in f)
    except OSError:
        return False


def _log(msg: str) -> None:
    print(f"vm: {msg}", file=sys.stderr, flush=True)


# --- accelerator ---------------------------------------------------------------


def _qemu_version() -> str:
    try:
        return subprocess.run(
            ["qemu-system-x86_64", "--version"], stdout=subprocess.PIPE, text=True, timeout=30
        ).stdout.split("\n")[0]
    except (OSError, subprocess.SubprocessError):
        return "?"


def choose_accel(image: Image) -> str:
    """``"kvm"`` if KVM is asked for or a short probe boot proves it works, else ``"tcg"``."""
    want = os.environ.get("LIVEWALK_VM_ACCEL", "auto")
    if want in ("tcg", "kvm"):
        return want
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    ident = {"host": os.uname().release, "qemu": _qemu_version(), "kernel": image.release}
    verdict_file = cache_dir() / "kvm-probe.json"
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
    _log(f"KVM probe boot: {'works' if works else 'does not work; using TCG'}")
    return "kvm" if works else "tcg"


def _probe_kvm(image: Image, timeout: float = 20.0) -> bool:
    """Boot the kernel under KVM with no root disk: a working KVM gets to the
    (expected) "VFS: Unable to mount root" panic within seconds."""
    with tempfile.TemporaryDirectory(prefix="lwvm-kvmprobe-") as d:
        log = Path(d) / "console.log"
        args = [
            "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-m", "512M", "-smp", "1",
            "-display", "none", "-no-reboot", "-nic", "none", "-monitor", "none",
            "-serial", f"file:{log}", "-kernel", str(image.vmlinuz),
            "-append", "console=ttyS0 panic=-1",
        ]  # fmt: skip
        try:
            p = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, preexec_fn=_pdeathsig,
            )  # fmt: skip
        except OSError:
            return False
        deadline = time.monotonic() + timeout
        ok = False
        try:
            while time.monotonic() < deadline:
                text = log.read_text(errors="replace") if log.exists() else ""
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


# --- disks -----------------------------------------------------------------------


def _tree_files(src: Path) -> list[str]:
    """The working tree's files: tracked and untracked, not ignored."""
    try:
        out = subprocess.run(
            ["git", "-C", str(src), "ls-files", "-z", "-c", "-o", "--exclude-standard"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            check=True,
        ).stdout
        return sorted({f for f in out.decode(errors="surrogateescape").split("\0") if f})
    except (OSError, subprocess.CalledProcessError):
        pass
    skip = {".git", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis", "out"}
    files = []
    for root, dirs, names in os.walk(src):
        dirs[:] = [d for d in dirs if d not in skip and not d.endswith(".egg-info")]
        for n in names:
            files.append(os.path.relpath(os.path.join(root, n), src))
    return sorted(files)


def make_src_image(src: Path, img: Path, staging: Path) -> int:
    """Make an ext4 image of the working tree; returns the number of files."""
    n = 0
    staging.mkdir()
    for rel in _tree_files(src):
        s = src / rel
        d = staging / rel
        if not (s.is_file() or s.is_symlink()):
            continue  # deleted but still tracked, or a submodule
        d.parent.mkdir(parents=True, exist_ok=True)
        if s.is_symlink():
            d.symlink_to(os.readlink(s))
        else:
            shutil.copy2(s, d)
        n += 1
    used = int(
        subprocess.run(
            ["du", "-s", "-B1", "--apparent-size", str(staging)], stdout=subprocess.PIPE, check=True
        ).stdout.split()[0]
    )
    size_mib = used * 3 // 2 // (1 << 20) + 64
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-L", "lwsrc", "-E", "root_owner=0:0",
         "-d", str(staging), str(img), f"{size_mib}M"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    shutil.rmtree(staging, ignore_errors=True)
    return n


def make_out_image(img: Path, size: str = "1G") -> None:
    subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-O", "^has_journal", "-L", "lwout", "-E", "root_owner=0:0",
         str(img), size],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def extract_out_image(img: Path, dest: Path) -> list[str]:
    """Copy the files of the /out disk into ``dest``; returns their top-level names."""
    dest.mkdir(parents=True, exist_ok=True)
    ls = subprocess.run(
        ["debugfs", "-R", "ls -p /", str(img)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True,
    ).stdout  # fmt: skip
    names = []
    for line in ls.splitlines():
        # /inode/mode/uid/gid/name/size/
        parts = line.strip().split("/")
        if len(parts) >= 7 and parts[5] not in ("", ".", "..", "lost+found"):
            names.append("/".join(parts[5:-2]))
    for name in names:
        subprocess.run(
            ["debugfs", "-R", f'rdump "/{name}" "{dest}"', str(img)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
        )  # fmt: skip
    return names


def _remove_stale_run_dirs(min_age: float = 3600) -> None:
    """Remove run directories left by a killed process (QEMU gone, not kept)."""
    now = time.time()
    for d in Path(tempfile.gettempdir()).glob("lwvm-*"):
        try:
            if (d / "KEEP").exists() or now - d.stat().st_mtime < min_age:
                continue
            pid = int((d / "qemu.pid").read_text())
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if str(d).encode() in f.read():
                        continue  # its QEMU still runs
            except OSError:
                pass
            shutil.rmtree(d, ignore_errors=True)
        except (OSError, ValueError):
            continue


# --- the guest -------------------------------------------------------------------


def _numa_args(memory: str, smp: int, nodes: int) -> list[str]:
    """QEMU options for *nodes* NUMA nodes sharing *memory* (e.g. "4G") and the vCPUs."""
    if nodes <= 1:
        return []
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    total = int(memory[:-1]) * units[memory[-1].upper()] if memory[-1].upper() in units else int(memory)
    args: list[str] = []
    for n in range(nodes):
        cpus = [c for c in range(smp) if c % nodes == n]
        args += ["-object", f"memory-backend-ram,id=numa{n},size={total // nodes // (1 << 20)}M"]
        node = f"node,nodeid={n},memdev=numa{n}" + "".join(f",cpus={c}" for c in cpus)
        args += ["-numa", node]
    return args


class Guest:
    """A booted test VM.

    :param levels: 5 (LA57, the default under ``-cpu max``) or 4 (``no5lvl``).
    :param memory: guest RAM, a QEMU size ("4G").
    :param smp: number of vCPUs.
    :param src: the tree shown read-only at /src (default: this repository).
    :param out_dir: host directory that receives /out when the guest stops
        (default: a new temporary directory, see :attr:`out_dir`).
    :param keep: keep the run directory (console log, disks) after stopping.
    :param boot_timeout: seconds from QEMU start to the agent's answer
        (default ``$LIVEWALK_VM_BOOT_TIMEOUT`` or 180).
    :param attempts: boot attempts before giving up with :class:`BootError`.
    :param extra_cmdline: appended to the kernel command line.
    :param numa_nodes: more than 1 splits RAM and vCPUs over that many NUMA nodes.

    The guest boots on :meth:`start` (or entering the ``with`` block); the
    image is built first if there is none.
    """

    def __init__(
        self,
        levels: int = 5,
        memory: str = "4G",
        smp: int = 2,
        *,
        src: str | os.PathLike[str] | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        keep: bool = False,
        boot_timeout: float | None = None,
        attempts: int = 3,
        extra_cmdline: str = "",
        quiet: bool = False,
        numa_nodes: int = 1,
    ) -> None:
        if levels not in (4, 5):
            raise ValueError(f"levels must be 4 or 5, not {levels!r}")
        self.levels = levels
        self.memory = memory
        self.smp = smp
        self.src = Path(src) if src is not None else REPO
        self.out_dir: Path | None = Path(out_dir) if out_dir is not None else None
        self.keep = keep
        self.boot_timeout = (
            boot_timeout if boot_timeout is not None else _env_float("LIVEWALK_VM_BOOT_TIMEOUT", 180)
        )
        self.attempts = attempts
        self.extra_cmdline = extra_cmdline
        self.quiet = quiet
        self.numa_nodes = numa_nodes  # >1: split RAM and vCPUs over that many NUMA nodes
        self.image: Image | None = None
        self.accel = ""
        self.release = ""
        self.boot_seconds = 0.0
        self.boot_attempts = 0
        self.run_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._buf = b""
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._prog: Any = None
        self._stopped = False
        self._spawn_logs: dict[int, str] = {}

    # -- paths --
    @property
    def qmp_socket(self) -> str:
        """Host path of the QMP socket (for drgn's ``set_qemu_qmp``).

        QEMU serves one QMP client at a time: prefer :meth:`host_program`,
        which keeps one drgn Program per guest."""
        assert self.run_dir is not None, "guest not started"
        return str(self.run_dir / "qmp.sock")

    @property
    def vmlinux(self) -> str:
        """Host path of the guest kernel's debug vmlinux."""
        assert self.image is not None, "guest not started"
        return str(self.image.vmlinux)

    @property
    def console_log(self) -> str:
        assert self.run_dir is not None, "guest not started"
        return str(self.run_dir / "console.log")

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Guest levels={self.levels} {self.release or '?'} {self.accel or '?'} {state}>"

    # -- lifecycle --
    def __enter__(self) -> Guest:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Guest:
        """Boot the guest (build the image first if needed); retry failed boots."""
        if self.running:
            return self
        self._stopped = False
        self._prog = None
        self.image = ensure_image(resolve_versions=False)
        self.accel = choose_accel(self.image)
        if self.accel == "kvm" and self.levels == 5 and not _host_has_la57():
            self.accel = "tcg"
        _remove_stale_run_dirs()
        self.run_dir = Path(tempfile.mkdtemp(prefix="lwvm-"))
        if self.keep:
            (self.run_dir / "KEEP").touch()
        _live.add(self)
        t = time.monotonic()
        nfiles = make_src_image(self.src, self.run_dir / "src.img", self.run_dir / "src-staging")
        make_out_image(self.run_dir / "out.img", os.environ.get("LIVEWALK_VM_OUT_SIZE", "1G"))
        if not self.quiet:
            _log(f"/src: {nfiles} files of {self.src} ({time.monotonic() - t:.1f} s)")
        try:
            self._boot_with_retries()
        except BaseException as e:
            if not isinstance(e, BootError):  # interrupted: leave nothing behind
                self._kill()
                self._cleanup()
            raise
        return self

    def _boot_with_retries(self) -> None:
        assert self.image is not None and self.run_dir is not None
        errors = []
        for attempt in range(1, self.attempts + 1):
            self.boot_attempts = attempt
            if not self.image.valid():  # replaced by a concurrent vm/build
                self.image = ensure_image(resolve_versions=False)
            try:
                try:
                    self._boot()
                except (GuestError, OSError) as e:
                    if isinstance(e, BootError):
                        raise
                    # Say why QEMU went away if the console tells.
                    time.sleep(0.2)
                    m = FATAL.search(self._console())
                    if m:
                        raise BootError(f"kernel reported {m.group(0)!r}: {self._tail()}") from e
                    raise BootError(str(e)) from e
                return
            except BootError as e:
                errors.append(f"attempt {attempt}: {e}")
                _log(f"boot attempt {attempt} failed: {e}")
                self._kill()
                # Keep the failed console log for the report.
                log = self.run_dir / "console.log"
                if log.exists():
                    log.replace(self.run_dir / f"console.attempt{attempt}.log")
                # The out disk may have been touched: start clean.
                make_out_image(self.run_dir / "out.img", os.environ.get("LIVEWALK_VM_OUT_SIZE", "1G"))
        # Keep the logs of the failed boots, not the disks.
        for img in ("src.img", "out.img"):
            (self.run_dir / img).unlink(missing_ok=True)
        self.keep = True
        (self.run_dir / "KEEP").touch()
        self._cleanup()
        raise BootError(
            f"guest did not boot after {self.attempts} attempts (logs in {self.run_dir}):\n"
            + "\n".join(errors)
        )

    def _qemu_args(self) -> list[str]:
        assert self.image is not None and self.run_dir is not None
        d = self.run_dir
        cmdline = [
            "console=ttyS0", "root=/dev/nvme0n1", "rw", "init=/usr/sbin/livewalk-init",
            "panic=-1", "hugepagesz=2M", "hugepages=64", "transparent_hugepage=madvise",
        ]  # fmt: skip
        if self.levels == 4:
            cmdline.append("no5lvl")
        if self.extra_cmdline:
            cmdline.append(self.extra_cmdline)
        if self.accel == "kvm":
            accel = ["-accel", "kvm", "-cpu", "host"]
        else:
            accel = ["-accel", "tcg,thread=single", "-cpu", "max"]
        return [
            "qemu-system-x86_64",
            "-name", f"livewalk-vm-{self.levels}",
            "-machine", "q35",
            *accel,
            "-smp", str(self.smp),
            "-m", self.memory,
            *_numa_args(self.memory, self.smp, self.numa_nodes),
            "-display", "none", "-vga", "none", "-nic", "none", "-monitor", "none",
            "-no-reboot",
            "-serial", f"file:{d / 'console.log'}",
            "-qmp", f"unix:{d / 'qmp.sock'},server=on,wait=off",
            "-chardev", f"socket,id=qmpctl,path={d / 'qmp-ctl.sock'},server=on,wait=off",
            "-mon", "chardev=qmpctl,mode=control",
            # A second client-facing QMP monitor, for dump_vmcore only (QEMU
            # serves one client per monitor and host_program() keeps qmp.sock).
            "-qmp", f"unix:{d / 'qmp-dump.sock'},server=on,wait=off",
            "-device", "vmcoreinfo",
            "-kernel", str(self.image.vmlinuz),
            "-append", " ".join(cmdline),
            "-drive", f"file={self.image.root},if=none,id=root,format=raw,snapshot=on",
            "-device", "nvme,drive=root,serial=lwroot",
            "-drive", f"file={d / 'src.img'},if=none,id=src,format=raw,readonly=on",
            "-device", "virtio-blk-pci,drive=src,serial=lwsrc",
            "-drive", f"file={d / 'out.img'},if=none,id=out,format=raw",
            "-device", "virtio-blk-pci,drive=out,serial=lwout",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", f"socket,id=agent,path={d / 'agent.sock'},server=on,wait=off",
            "-device", "virtserialport,bus=vser0.0,chardev=agent,name=livewalk.agent",
            "-fw_cfg", f"name=opt/livewalk/init.sh,file={VM_DIR / 'guest_init.sh'}",
            "-fw_cfg", f"name=opt/livewalk/agent.py,file={VM_DIR / 'agent.py'}",
        ]  # fmt: skip

    def _boot(self) -> None:
        assert self.run_dir is not None
        d = self.run_dir
        for name in ("qmp.sock", "qmp-ctl.sock", "qmp-dump.sock", "agent.sock", "console.log"):
            (d / name).unlink(missing_ok=True)
        t0 = time.monotonic()
        deadline = t0 + self.boot_timeout
        with open(d / "qemu.log", "ab") as qlog:
            self._proc = subprocess.Popen(
                self._qemu_args(),
                stdin=subprocess.DEVNULL,
                stdout=qlog,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # PR_SET_PDEATHSIG fires when the creating *thread* exits: use
                # it from the main thread only (atexit covers the rest).
                preexec_fn=_pdeathsig if threading.current_thread() is threading.main_thread() else None,
            )
        (d / "qemu.pid").write_text(f"{self._proc.pid}\n")
        # Connect to the agent's socket (QEMU creates it at start-up).
        while True:
            self._check_boot(deadline)
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(str(d / "agent.sock"))
                self._sock = s
                self._buf = b""
                break
            except OSError:
                s.close()
                time.sleep(0.05)
        last_ping = 0.0
        rid = 0
        while True:
            now = time.monotonic()
            if now - last_ping > 15:
                rid = next(self._ids)
                self._send({"op": "ping", "id": rid})
                last_ping = now
            self._check_boot(deadline)
            msg = self._recv(1.0)
            if msg is not None and msg.get("op") == "pong":
                break
        self.boot_seconds = time.monotonic() - t0
        self.release = str(msg["release"])
        got = int(msg["levels"])
        if got != self.levels:
            raise BootError(f"asked for {self.levels}-level paging, guest runs {got}-level")
        if self.image is not None and self.release != self.image.release:
            raise BootError(f"guest runs {self.release}, image has {self.image.release}")
        if not self.quiet:
            _log(
                f"booted {self.release} with {self.levels}-level paging ({self.accel}) "
                f"in {self.boot_seconds:.1f} s"
            )

    def _console(self) -> str:
        try:
            return (Path(self.console_log)).read_text(errors="replace")
        except OSError:
            return ""

    def _check_boot(self, deadline: float) -> None:
        if self._proc is None or self._proc.poll() is not None:
            rc = None if self._proc is None else self._proc.returncode
            raise BootError(f"QEMU exited with status {rc}: {self._tail()}")
        m = FATAL.search(self._console())
        if m:
            raise BootError(f"kernel reported {m.group(0)!r}: {self._tail()}")
        if time.monotonic() > deadline:
            raise BootError(f"no answer from the guest agent in {self.boot_timeout:.0f} s: {self._tail()}")

    def _tail(self, n: int = 15) -> str:
        text = self._console()
        try:
            assert self.run_dir is not None
            qlog = (self.run_dir / "qemu.log").read_text(errors="replace").strip()
        except (OSError, AssertionError):
            qlog = ""
        out = "\n... console: " + "\n".join(text.splitlines()[-n:])
        if qlog:
            out += "\n... qemu: " + qlog[-2000:]
        return out

    # -- channel --
    def _send(self, msg: dict[str, Any]) -> None:
        if self._sock is None:
            raise GuestError("guest not running")
        try:
            self._sock.sendall((json.dumps(msg) + "\n").encode())
        except OSError as e:
            raise GuestError(f"lost the guest agent: {e}") from e

    def _recv(self, timeout: float) -> dict[str, Any] | None:
        """One message, or None after ``timeout`` seconds without one."""
        assert self._sock is not None
        end = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self._sock], [], [], left)
            if not r:
                return None
            try:
                data = self._sock.recv(1 << 20)
            except OSError as e:
                raise GuestError(f"lost the guest agent: {e}: {self._tail()}") from e
            if not data:
                raise GuestError(f"the guest agent's channel closed: {self._tail()}")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            msg = json.loads(line)
        except ValueError:
            return {"op": "garbage", "id": None}
        return msg if isinstance(msg, dict) else {"op": "garbage", "id": None}

    def _request(
        self,
        msg: dict[str, Any],
        timeout: float,
        on_msg: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Send a request and return its final answer; ``on_msg`` sees
        intermediate messages and returns True for the final one."""
        if not self.running:
            raise GuestError("guest not running" + (f": {self._tail()}" if self.run_dir else ""))
        with self._lock:
            rid = next(self._ids)
            self._send({**msg, "id": rid})
            end = time.monotonic() + timeout
            try:
                while True:
                    left = end - time.monotonic()
                    if left <= 0:
                        raise GuestError(
                            f"the guest agent did not answer {msg.get('op')} in {timeout:.0f} s"
                        )
                    m = self._recv(min(left, 2.0))
                    if m is None:
                        if not self.running:
                            raise GuestError(f"QEMU exited: {self._tail()}")
                        continue
                    if m.get("id") != rid:
                        continue  # a late answer to an earlier request
                    if m.get("op") == "error":
                        raise GuestError(f"guest agent: {m.get('error')}")
                    if on_msg is None or on_msg(m):
                        return m
            except BaseException:
                # Interrupted or given up: have the agent kill what it runs.
                if msg.get("op") == "run" and self.running:
                    try:
                        self._send({"op": "cancel", "id": next(self._ids)})
                    except GuestError:
                        pass
                raise

    # -- commands --
    def run(
        self,
        cmd: str,
        timeout: float = 600,
        *,
        check: bool = False,
        input: bytes | str | None = None,
        env: dict[str, str] | None = None,
        cwd: str = "/src",
        stream: Callable[[int, bytes], None] | None = None,
    ) -> RunResult:
        """Run ``cmd`` with ``/bin/sh -c`` as root in the guest (cwd /src).

        The environment has ``PYTHONPATH=/src`` and ``PYTHONDONTWRITEBYTECODE=1``
        (/src is read-only). After ``timeout`` seconds the command's session is
        killed and the result has ``timed_out`` set and ``returncode`` -9.
        ``returncode`` is minus the signal number if a signal ended it.
        ``stream(fd, data)`` sees output as it comes (fd 1 or 2).
        """
        out: dict[int, list[bytes]] = {1: [], 2: []}

        def on_msg(m: dict[str, Any]) -> bool:
            if m.get("op") == "out":
                data = base64.b64decode(m["data"])
                fd = int(m["fd"])
                out[fd].append(data)
                if stream is not None:
                    stream(fd, data)
                return False
            return m.get("op") == "exit"

        req: dict[str, Any] = {"op": "run", "cmd": cmd, "timeout": timeout, "cwd": cwd}
        if env:
            req["env"] = env
        if input is not None:
            raw = input.encode() if isinstance(input, str) else input
            req["input"] = base64.b64encode(raw).decode()
        m = self._request(req, timeout + 60, on_msg)
        res = RunResult(
            cmd=cmd,
            returncode=int(m["status"]),
            stdout=b"".join(out[1]).decode(errors="replace"),
            stderr=b"".join(out[2]).decode(errors="replace"),
            seconds=float(m.get("seconds", 0.0)),
            timed_out=bool(m.get("timed_out")),
        )
        return res.check() if check else res

    def spawn(self, cmd: str, *, ready: str | None = None, timeout: float = 300) -> int:
        """Start ``cmd`` (``/bin/bash -c``, cwd /src) in the background in its
        own session and return its guest PID. Output goes to a guest log file
        (``/tmp/livewalk-spawn-N.log``, see :meth:`spawn_log`).

        bash runs a lone simple command in place, so for
        ``spawn("python3 x.py")`` the PID is the Python process's (use
        ``exec`` for the last command of a compound one). With ``ready``, wait until that
        string appears in the output (raise if the process ends first).
        """
        m = self._request({"op": "spawn", "cmd": cmd}, 60)
        pid = int(m["pid"])
        self._spawn_logs[pid] = str(m["log"])
        if ready is not None:
            self.wait_output(pid, ready, timeout=timeout)
        return pid

    def spawn_log(self, pid: int) -> str:
        """The output so far of a process started with :meth:`spawn`."""
        return self.get(self._spawn_logs[pid]).decode(errors="replace")

    def wait_output(self, pid: int, text: str, timeout: float = 300) -> None:
        """Wait until ``text`` appears in a spawned process's output."""
        end = time.monotonic() + timeout
        while True:
            log = self.spawn_log(pid)
            if text in log:
                return
            alive = self.run(f"kill -0 {pid} 2>/dev/null && ! grep -q '^State:.*Z' /proc/{pid}/status", 30)
            if alive.returncode != 0:
                log = self.spawn_log(pid)
                if text in log:
                    return
                raise GuestError(f"spawned process {pid} ended before printing {text!r}:\n{log[-4000:]}")
            if time.monotonic() > end:
                raise GuestError(f"spawned process {pid} did not print {text!r} in {timeout:.0f} s:\n{log[-4000:]}")
            time.sleep(0.5)

    def get(self, path: str) -> bytes:
        """The contents of a guest file."""
        m = self._request({"op": "get", "path": path}, 300)
        return base64.b64decode(m["data"])

    def put(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write a guest file (e.g. a test program made after boot; /src is a
        snapshot taken at boot)."""
        raw = data.encode() if isinstance(data, str) else data
        self._request(
            {"op": "put", "path": path, "data": base64.b64encode(raw).decode(), "mode": mode}, 300
        )

    def host_program(self) -> Any:
        """A ``drgn.Program`` on the host attached to this guest over QMP, with
        the kernel's debug info loaded (missing module debug info is ignored).

        The Program is made once per guest and then reused: QEMU serves one
        QMP client at a time. Needs drgn on the host (``pip install drgn``).
        """
        if self._prog is not None:
            return self._prog
        import drgn  # only here: the vm package itself needs only the stdlib

        prog = drgn.Program()
        prog.set_qemu_qmp(self.qmp_socket)
        prog.debug_info_options.kernel_directories = (str(Path(self.vmlinux).parent),)
        try:
            prog.load_default_debug_info()
        except drgn.MissingDebugInfoError:
            pass  # module debug info: only vmlinux matters here
        try:
            prog["init_task"]
        except LookupError as e:
            raise GuestError(f"drgn found no kernel debug info in {self.vmlinux}: {e}") from e
        self._prog = prog
        return prog

    def dump_vmcore(self, path: str | os.PathLike[str], fmt: str = "elf", timeout: float = 600) -> float:
        """Write a crash dump of the running guest to the host file ``path``
        (QMP ``dump-guest-memory``, ``paging=false``: physical memory plus the
        guest's VMCOREINFO note from ``-device vmcoreinfo``, so
        ``drgn -c path`` opens it as a Linux kernel).

        :param fmt: ``"elf"`` (all of RAM, uncompressed) or a kdump
            (diskdump/makedumpfile) format: ``"kdump-zlib"``,
            ``"kdump-lzo"``, ``"kdump-snappy"`` (those this QEMU was built with,
            see ``query-dump-guest-memory-capability``).
        :param timeout: seconds to wait for the dump to complete.
        :returns: the seconds the dump took. The guest is paused while it
            is written and resumes afterwards.
        :raises GuestError: if QEMU refuses, the dump fails, or it does not
            complete within ``timeout`` (QEMU may still be writing then).

        Uses its own QMP monitor (``qmp-dump.sock``), so it works while
        :meth:`host_program` is attached to :attr:`qmp_socket`.
        """
        if not self.running:
            raise GuestError("guest not running")
        assert self.run_dir is not None
        dest = Path(path).resolve()
        t0 = time.monotonic()
        deadline = t0 + timeout
        buf = b""
        with self._lock, socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:

            def recv_msg() -> dict[str, Any]:
                nonlocal buf
                while b"\n" not in buf:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise GuestError(f"QMP dump monitor: no answer in {timeout:.0f} s")
                    s.settimeout(min(left, 5.0))
                    try:
                        data = s.recv(1 << 16)
                    except TimeoutError:
                        if not self.running:
                            raise GuestError(f"QEMU exited during the dump: {self._tail()}") from None
                        continue
                    if not data:
                        raise GuestError("QMP dump monitor closed the connection")
                    buf += data
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                return msg if isinstance(msg, dict) else {}

            def command(name: str, **arguments: Any) -> Any:
                cid = f"lw{next(self._ids)}"
                req: dict[str, Any] = {"execute": name, "id": cid}
                if arguments:
                    req["arguments"] = arguments
                s.sendall((json.dumps(req) + "\n").encode())
                while True:
                    m = recv_msg()
                    if m.get("id") != cid:
                        continue  # an event (STOP, RESUME, DUMP_COMPLETED...)
                    if "error" in m:
                        raise GuestError(f"QMP {name}: {m['error'].get('desc', m['error'])}")
                    return m.get("return")

            try:
                s.settimeout(10)
                s.connect(str(self.run_dir / "qmp-dump.sock"))
                recv_msg()  # greeting
                command("qmp_capabilities")
                formats = command("query-dump-guest-memory-capability").get("formats", [])
                if fmt not in formats:
                    raise GuestError(f"this QEMU cannot dump in format {fmt!r} (it has {formats})")
                command("dump-guest-memory", paging=False, protocol=f"file:{dest}",
                        detach=True, format=fmt)  # fmt: skip
                while True:
                    st = command("query-dump")
                    if st.get("status") == "completed":
                        break
                    if st.get("status") == "failed":
                        raise GuestError(f"QEMU failed to dump the guest to {dest}")
                    if time.monotonic() > deadline:
                        raise GuestError(
                            f"the dump to {dest} did not complete in {timeout:.0f} s "
                            f"({st.get('completed')} of {st.get('total')} bytes)"
                        )
                    time.sleep(0.2)
            except (OSError, ValueError) as e:
                raise GuestError(f"QMP dump monitor: {e}") from e
        return time.monotonic() - t0

    # -- stopping --
    def stop(self) -> None:
        """Shut the guest down (cleanly if it answers), copy /out to
        :attr:`out_dir` and remove the run directory (unless ``keep``)."""
        if self._stopped or self.run_dir is None:
            return
        self._stopped = True
        self._prog = None
        if self.running:
            try:
                self._request({"op": "shutdown"}, 30)
                assert self._proc is not None
                self._proc.wait(timeout=30)
            except (GuestError, subprocess.TimeoutExpired, OSError):
                pass
        self._kill()
        out_img = self.run_dir / "out.img"
        if out_img.exists():
            auto_out = self.out_dir is None
            if self.out_dir is None:
                self.out_dir = Path(tempfile.mkdtemp(prefix="livewalk-vm-out-"))
            try:
                extract_out_image(out_img, self.out_dir)
            except (OSError, subprocess.CalledProcessError) as e:
                _log(f"cannot copy /out back: {e}")
            if auto_out and not any(self.out_dir.iterdir()):
                # Nothing was written to /out: leave no empty directory behind.
                self.out_dir.rmdir()
                self.out_dir = None
        self._cleanup()

    def _quit_qmp(self) -> None:
        """Ask QEMU to quit over the private QMP socket."""
        assert self.run_dir is not None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(3)
                s.connect(str(self.run_dir / "qmp-ctl.sock"))
                s.recv(4096)
                s.sendall(b'{"execute":"qmp_capabilities"}\n')
                s.recv(4096)
                s.sendall(b'{"execute":"quit"}\n')
                s.recv(4096)
        except OSError:
            pass

    def _kill(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None
        p = self._proc
        if p is None:
            return
        if p.poll() is None:
            self._quit_qmp()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._proc = None

    def _cleanup(self) -> None:
        _live.discard(self)
        if self.run_dir is not None and not self.keep:
            shutil.rmtree(self.run_dir, ignore_errors=True)


@atexit.register
def _kill_all() -> None:
    for g in list(_live):
        try:
            g._kill()
            g._cleanup()
        except Exception:
            pass
