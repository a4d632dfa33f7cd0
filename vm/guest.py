# SPDX-License-Identifier: LGPL-2.1-or-later
"""Boot the livewalk test VM under QEMU and run commands in it.

>>> from livewalk.vm import Guest
>>> with Guest(levels=4) as g:
...     r = g.run("uname -r; grep -c la57 /proc/cpuinfo")
...     prog = g.host_program()          # drgn on the host, over QMP
...     print(g.release, g.levels, g.boot_seconds, r.returncode)
>>> with Guest(arch="arm64", levels=4) as g:   # qemu-system-aarch64, -cpu max,lpa2=off
...     print(g.run("uname -m").stdout)        # aarch64

The guest boots the image's cloud kernel directly (``-kernel``, no
initramfs; or a kernel of the caller's, ``kernel_image=``) from an NVMe root
disk (opened with ``snapshot=on``, so every boot starts from the pristine
image), with a serial console logged to a file, a QMP socket and ``-device
vmcoreinfo`` for drgn on the host (a second QMP monitor serves
:meth:`Guest.dump_vmcore`, a vmcore of the running guest), and two virtio-blk
disks: ``/src``, a read-only ext4 snapshot of a host tree made at boot
(:mod:`.disks`), and ``/out``, copied back to :attr:`Guest.out_dir` when the
guest stops. Commands go through an agent (vm/agent.py) on a virtio-serial
port (:mod:`.channel`); the QEMU command line is :mod:`.qemu`'s, the
accelerator :mod:`.accel`'s; livewalk's answers about guest processes, from
the host, are :mod:`.host`'s.

A boot that panics, oopses, dies or does not reach the agent within the boot
timeout is retried (3 attempts); QEMU is killed when the guest stops, when
Python exits and (PR_SET_PDEATHSIG) when the process that started it dies.
"""

from __future__ import annotations

import atexit
import base64
import io
import json
import os
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import host
from .accel import choose_accel
from .channel import AgentChannel
from .disks import (
    extract_out_image,
    make_out_image,
    make_src_image,
    remove_stale_run_dirs,
    root_partition_table,
)
from .errors import BootError, GuestError, RunResult, log
from .image import (
    ARCHES,
    DEFAULT_SERIES,
    KERNEL_SERIES,
    Image,
    ImageError,
    arch_name,
    check_series,
    ensure_image,
    kernel_release,
    make_modules_image,
)
from .qemu import FATAL, QemuSpec, host_has_la57, pdeathsig, qemu_args
from .qmp import dump_guest_memory, qmp_quit, write_disk_and_start

if TYPE_CHECKING:
    from drgn import Object, Program

    from livewalk.mm.pagewalk import MMWalkOps
    from livewalk.proc.smaps import SmapsVMA
    from livewalk.tools.vtop import VtopResult

    from .kdump import KdumpResult

__all__ = (
    "Guest",
    "default_src",
)

VM_DIR = Path(__file__).resolve().parent

_live: weakref.WeakSet[Guest] = weakref.WeakSet()


def default_src() -> Path:
    """The tree shown at ``/src`` by default: the livewalk checkout this
    harness runs from, or (installed from a wheel) the current directory."""
    checkout = VM_DIR.parent
    if (checkout / "livewalk").is_dir() and (checkout / "vm").is_dir():
        return checkout
    return Path.cwd()


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class Guest:
    """A booted test VM.

    :param levels: the page-table levels, by default the kernel's most: 5
        (x86-64: LA57 under ``-cpu max``; arm64: 52-bit VA with FEAT_LPA2)
        or 4 (x86-64: ``no5lvl``; arm64: ``-cpu max,lpa2=off``, 48-bit VA);
        the arm64 ``"16k"`` kernel has 4 (52-bit VA with FEAT_LPA2) or 3
        (``lpa2=off``, 47-bit VA).
    :param memory: guest RAM, a QEMU size ("4G").
    :param smp: number of vCPUs.
    :param src: the tree shown read-only at /src (default: :func:`default_src`).
    :param out_dir: host directory that receives /out when the guest stops
        (default: a new temporary directory, see :attr:`out_dir`).
    :param keep: keep the run directory (console log, disks) after stopping.
    :param boot_timeout: seconds from QEMU start to the agent's answer
        (default ``$LIVEWALK_VM_BOOT_TIMEOUT`` or 180).
    :param attempts: boot attempts before giving up with :class:`BootError`.
    :param extra_cmdline: appended to the kernel command line.
    :param numa_nodes: more than 1 splits RAM and vCPUs over that many NUMA nodes.
    :param kernel: the kernel series to boot (``"7"``, the default; x86-64:
        ``"6.12"``, ``"6.1"``; arm64: ``"16k"``, 16K pages): the image of
        that series (built on first use, see :mod:`.image`).
    :param kernel_image: boot this bzImage instead of the image's kernel, on
        the image's userspace. It needs NVMe and ext4 built in (the root
        disk), and ``qemu_fw_cfg``, virtio-pci, virtio-blk and virtio-console
        built in or among ``modules``.
    :param vmlinux: the debug vmlinux of ``kernel_image``, for drgn on the host.
    :param modules: the modules of ``kernel_image``: ``lib/modules/<rel>``,
        or the ``INSTALL_MOD_PATH`` of ``make modules_install``; the guest
        sees them in ``/lib/modules`` (read-only).
    :param arch: the guest architecture, ``"x86_64"`` (the default) or
        ``"arm64"`` (``-machine virt``, always TCG; ``"aarch64"`` too).

    The guest boots on :meth:`start` (or entering the ``with`` block); the
    image is built first if there is none.
    """

    def __init__(
        self,
        levels: int | None = None,
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
        kernel: str = DEFAULT_SERIES,
        kernel_image: str | os.PathLike[str] | None = None,
        vmlinux: str | os.PathLike[str] | None = None,
        modules: str | os.PathLike[str] | None = None,
        arch: str = "x86_64",
    ) -> None:
        arch = arch_name(arch)
        if arch not in ARCHES:
            raise ValueError(f"arch must be one of {', '.join(ARCHES)}, not {arch!r}")
        try:
            check_series(arch, kernel)
        except ImageError as e:
            raise ValueError(str(e)) from None
        if levels is None:  # the kernel's most: 5, or 4 for arm64's 16k
            levels = KERNEL_SERIES[kernel].levels[0]
        if levels not in KERNEL_SERIES[kernel].levels:
            known = " or ".join(map(str, KERNEL_SERIES[kernel].levels))
            raise ValueError(f"levels must be {known} with {arch} kernel {kernel}, not {levels!r}")
        if (kernel_image is None) != (vmlinux is None):
            raise ValueError("kernel_image and vmlinux go together")
        if modules is not None and kernel_image is None:
            raise ValueError("modules go with kernel_image")
        self.arch = arch
        self.kernel = kernel
        self.levels = levels
        self.memory = memory
        self.smp = smp
        self.src = Path(src) if src is not None else default_src()
        self.out_dir: Path | None = Path(out_dir) if out_dir is not None else None
        self.keep = keep
        self.boot_timeout = (
            boot_timeout if boot_timeout is not None else _env_float("LIVEWALK_VM_BOOT_TIMEOUT", 180)
        )
        self.attempts = attempts
        self.extra_cmdline = extra_cmdline
        self.quiet = quiet
        self.numa_nodes = numa_nodes  # >1: split RAM and vCPUs over that many NUMA nodes
        self.kernel_image = Path(kernel_image) if kernel_image is not None else None
        self._vmlinux = Path(vmlinux) if vmlinux is not None else None
        self.modules = Path(modules) if modules is not None else None
        self.image: Image | None = None
        self.accel = ""
        self.release = ""
        self.boot_seconds = 0.0
        self.boot_attempts = 0
        self.run_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._agent = AgentChannel(lambda: self.running, self._tail)
        self._prog: Program | None = None
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
        if self._vmlinux is not None:
            return str(self._vmlinux)
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
        return f"<Guest arch={self.arch} kernel={self.kernel} levels={self.levels} {self.release or '?'} {self.accel or '?'} {state}>"

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
        self.image = ensure_image(resolve_versions=False, series=self.kernel, arch=self.arch)
        self.accel = choose_accel(self.image)
        if self.accel == "kvm" and self.levels == 5 and not host_has_la57():
            self.accel = "tcg"
        remove_stale_run_dirs()
        self.run_dir = Path(tempfile.mkdtemp(prefix="lwvm-"))
        if self.keep:
            (self.run_dir / "KEEP").touch()
        _live.add(self)
        t = time.monotonic()
        nfiles = make_src_image(self.src, self.run_dir / "src.img", self.run_dir / "src-staging")
        make_out_image(self.run_dir / "out.img", os.environ.get("LIVEWALK_VM_OUT_SIZE", "1G"))
        if not self.quiet:
            log(f"/src: {nfiles} files of {self.src} ({time.monotonic() - t:.1f} s)")
        if self.modules is not None:
            self._make_modules_disk()
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
                self.image = ensure_image(resolve_versions=False, series=self.kernel, arch=self.arch)
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
                log(f"boot attempt {attempt} failed: {e}")
                self._kill()
                # Keep the failed console log for the report.
                console = self.run_dir / "console.log"
                if console.exists():
                    console.replace(self.run_dir / f"console.attempt{attempt}.log")
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

    def _spec(self) -> QemuSpec:
        assert self.image is not None and self.run_dir is not None
        return QemuSpec(
            levels=self.levels,
            memory=self.memory,
            smp=self.smp,
            accel=self.accel,
            kernel=self.kernel_image or self.image.vmlinuz,
            root=self.image.root,
            run_dir=self.run_dir,
            numa_nodes=self.numa_nodes,
            extra_cmdline=self.extra_cmdline,
            modules=self.run_dir / "mods.img" if self.modules is not None else None,
            arch=self.arch,
            series=self.kernel,
            initrd=None if self.kernel_image else self.image.initrd,
        )

    def _make_modules_disk(self) -> None:
        """The ``modules`` of the user's kernel, as a disk (see :func:`.image.make_modules_image`)."""
        assert self.run_dir is not None and self.kernel_image is not None and self.modules is not None
        release = kernel_release(self.kernel_image)
        if release is None:
            raise ValueError(f"{self.kernel_image}: not a bzImage with a version string")
        t = time.monotonic()
        make_modules_image(self.modules, release, self.run_dir / "mods.img", self.run_dir / "mods-staging")
        if not self.quiet:
            log(f"modules of {release} from {self.modules} ({time.monotonic() - t:.1f} s)")

    def _boot(self) -> None:
        assert self.run_dir is not None
        d = self.run_dir
        for name in ("qmp.sock", "qmp-ctl.sock", "qmp-dump.sock", "agent.sock", "console.log"):
            (d / name).unlink(missing_ok=True)
        t0 = time.monotonic()
        deadline = t0 + self.boot_timeout
        with open(d / "qemu.log", "ab") as qlog:
            self._proc = subprocess.Popen(
                qemu_args(self._spec()),
                stdin=subprocess.DEVNULL,
                stdout=qlog,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # PR_SET_PDEATHSIG fires when the creating *thread* exits: use
                # it from the main thread only (atexit covers the rest).
                preexec_fn=pdeathsig if threading.current_thread() is threading.main_thread() else None,
            )
        (d / "qemu.pid").write_text(f"{self._proc.pid}\n")
        if self.modules is not None:
            self._partition_root(deadline)
        # Connect to the agent's socket (QEMU creates it at start-up).
        while True:
            self._check_boot(deadline)
            if self._agent.connect(str(d / "agent.sock")):
                break
            time.sleep(0.05)
        msg = self._wait_pong(deadline)
        self.boot_seconds = time.monotonic() - t0
        self.release = str(msg["release"])
        machine = str(msg.get("machine", ARCHES[self.arch].uname))
        if machine != ARCHES[self.arch].uname:
            raise BootError(f"asked for an {self.arch} guest, it runs {machine}")
        got = int(msg["levels"])
        if got != self.levels:
            raise BootError(f"asked for {self.levels}-level paging, guest runs {got}-level")
        if self.kernel_image is None and self.image is not None and self.release != self.image.release:
            raise BootError(f"guest runs {self.release}, image has {self.image.release}")
        if not self.quiet:
            log(
                f"booted {self.release} ({self.arch}) with {self.levels}-level paging ({self.accel}) "
                f"in {self.boot_seconds:.1f} s"
            )

    def _partition_root(self, deadline: float) -> None:
        """Give the root disk the partition table a kernel of one's own finds
        it by (:func:`.disks.root_partition_table`), in QEMU's snapshot of
        it, and start the guest, which QEMU holds (``-S``) until then."""
        assert self.run_dir is not None and self.image is not None and self._proc is not None
        table = self.run_dir / "root-table.bin"
        table.write_bytes(root_partition_table(self.image.root.stat().st_size))
        sock = self.run_dir / "qmp-ctl.sock"
        while not sock.exists():
            self._check_boot(deadline)
            time.sleep(0.05)
        proc = self._proc
        try:
            write_disk_and_start(str(sock), "root", 0, table, deadline, lambda: proc.poll() is None)
        except GuestError as e:
            raise BootError(f"cannot give the root disk its partition table: {e}") from e

    def _wait_pong(self, deadline: float) -> dict[str, Any]:
        """Ping the agent (every 15 s: the port may drop early ones) until it answers."""
        last_ping = 0.0
        while True:
            now = time.monotonic()
            if now - last_ping > 15:
                self._agent.send({"op": "ping", "id": next(self._agent.ids)})
                last_ping = now
            self._check_boot(deadline)
            msg = self._agent.recv(1.0)
            if msg is not None and msg.get("op") == "pong":
                return msg

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
        if self.run_dir is None:
            return ""
        text = self._console()
        try:
            qlog = (self.run_dir / "qemu.log").read_text(errors="replace").strip()
        except OSError:
            qlog = ""
        out = "\n... console: " + "\n".join(text.splitlines()[-n:])
        if qlog:
            out += "\n... qemu: " + qlog[-2000:]
        return out

    def _request(
        self,
        msg: dict[str, Any],
        timeout: float,
        on_msg: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        if not self.running:
            raise GuestError("guest not running" + (f": {self._tail()}" if self.run_dir else ""))
        return self._agent.request(msg, timeout, on_msg)

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
            text_so_far = self.spawn_log(pid)
            if text in text_so_far:
                return
            if not self.alive(pid):
                text_so_far = self.spawn_log(pid)
                if text in text_so_far:
                    return
                raise GuestError(f"spawned process {pid} ended before printing {text!r}:\n{text_so_far[-4000:]}")
            if time.monotonic() > end:
                raise GuestError(f"spawned process {pid} did not print {text!r} in {timeout:.0f} s:\n{text_so_far[-4000:]}")
            time.sleep(0.5)

    def get(self, path: str) -> bytes:
        """The contents of a guest file."""
        m = self._request({"op": "get", "path": path}, 300)
        return base64.b64decode(m["data"])

    def put(self, path: str, data: bytes | str, mode: int = 0o644) -> None:
        """Write a guest file (e.g. a test program made after boot; /src is a
        snapshot taken at boot). It appears whole: it is written beside and
        renamed into place."""
        raw = data.encode() if isinstance(data, str) else data
        self._request(
            {"op": "put", "path": path, "data": base64.b64encode(raw).decode(), "mode": mode}, 300
        )

    def wait_ready_file(self, path: str, pid: int, timeout: float = 300) -> Any:
        """Wait until the guest file *path* holds JSON (a workload's "ready"
        note) and return it, decoded.

        :param pid: the guest PID that writes it (a spawned process): its end
            before the file is written raises at once, with its output
        :raises GuestError: if *pid* ends first or ``timeout`` seconds pass
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.run(f"cat {shlex.quote(path)} 2>/dev/null", timeout=60)
            if r.returncode == 0 and r.stdout.strip():
                return json.loads(r.stdout)
            if not self.alive(pid):
                log_text = self.spawn_log(pid) if pid in self._spawn_logs else ""
                raise GuestError(f"guest process {pid} exited before writing {path}:\n{log_text[-4000:]}")
            time.sleep(1)
        raise GuestError(f"{path} not written in {timeout:.0f} s")

    def alive(self, pid: int) -> bool:
        """Whether guest process *pid* exists and is not a zombie. Read by
        the agent itself: a command would start processes, which map the
        same libraries as the workloads being measured and move their Pss."""
        try:
            stat = self.get(f"/proc/{int(pid)}/stat").decode(errors="replace")
        except GuestError:
            return False
        # the state follows the command name, which may hold ") "
        return stat.rpartition(")")[2].split()[0] != "Z"

    def copy_in(self, host_path: str | os.PathLike[str], guest_path: str) -> None:
        """Copy a host file (mode kept, e.g. a built binary) or directory
        tree into the guest at *guest_path* (use ``/tmp`` or ``/out``: ``/src``
        is read-only)."""
        p = Path(host_path)
        if p.is_file():
            self.put(guest_path, p.read_bytes(), mode=p.stat().st_mode & 0o7777)
            return
        if not p.is_dir():
            raise FileNotFoundError(host_path)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(p, arcname=".")
        tmp = f"/tmp/livewalk-copy-in-{next(self._agent.ids)}.tar.gz"
        self.put(tmp, buf.getvalue())
        q = shlex.quote(guest_path)
        self.run(f"mkdir -p {q} && tar -xzf {tmp} -C {q} && rm -f {tmp}", timeout=300, check=True)

    # -- livewalk on a guest process, from the host (over QMP) --
    def mm(self, pid: int) -> Object:
        """The ``struct mm_struct *`` of guest process *pid*, in :meth:`host_program`."""
        return host.mm(self.host_program(), pid)

    def pagemap(self, pid: int, start: int, end: int) -> list[int]:
        """livewalk's ``/proc/PID/pagemap`` entries for [*start*, *end*) of guest process *pid*."""
        return host.pagemap(self.host_program(), pid, start, end)

    def smaps(self, pid: int) -> list[SmapsVMA]:
        """livewalk's ``/proc/PID/smaps`` of guest process *pid*, one record per VMA."""
        return host.smaps(self.host_program(), pid)

    def vtop(self, pid: int, addr: int) -> VtopResult:
        """livewalk's translation of *addr* in guest process *pid*."""
        return host.vtop(self.host_program(), pid, addr)

    def walk_page_range(self, pid: int, start: int, end: int, ops: MMWalkOps, private: Any = None) -> int:
        """Run livewalk's ``walk_page_range`` with the caller's *ops* (and
        *private*, as ``walk.private``) over [*start*, *end*) of guest process
        *pid*; returns its result (0, a callback's stop value, a -errno)."""
        return host.walk_page_range(self.host_program(), pid, start, end, ops, private)

    def host_program(self) -> Program:
        """A ``drgn.Program`` on the host attached to this guest over QMP, with
        the kernel's debug info loaded (missing module debug info is ignored).

        The Program is made once per guest and then reused: QEMU serves one
        QMP client at a time. Needs drgn on the host (``pip install drgn``).
        """
        if self._prog is None:
            if not self.running:
                raise GuestError("guest not running")
            self._prog = host.attach(self.qmp_socket, self.vmlinux)
        return self._prog

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
        with self._agent.lock:
            dump_guest_memory(str(self.run_dir / "qmp-dump.sock"), dest, fmt, deadline,
                              alive=lambda: self.running)  # fmt: skip
        return time.monotonic() - t0

    def kdump(self, workload: str | None = None, **kw: Any) -> KdumpResult:
        """Crash the guest with kdump armed and bring back makedumpfile dumps
        of it and the kernel's pre-panic ``/proc`` answers about the workload
        (:func:`.kdump.kdump`, which takes the same arguments). The guest
        must have been booted with ``extra_cmdline=``:data:`.qemu.CRASHKERNEL`;
        it is stopped afterwards."""
        from .kdump import kdump

        return kdump(self, workload, **kw)

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
                log(f"cannot copy /out back: {e}")
            if auto_out and not any(self.out_dir.iterdir()):
                # Nothing was written to /out: leave no empty directory behind.
                self.out_dir.rmdir()
                self.out_dir = None
        self._cleanup()

    def _kill(self) -> None:
        self._agent.close()
        p = self._proc
        if p is None:
            return
        if p.poll() is None:
            assert self.run_dir is not None
            qmp_quit(str(self.run_dir / "qmp-ctl.sock"))
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
