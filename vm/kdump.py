# SPDX-License-Identifier: LGPL-2.1-or-later
"""A real kdump of the test VM: what a crash-dump analyst has.

The guest must have been booted with a crash kernel reservation
(``Guest(extra_cmdline=CRASHKERNEL)``, see :data:`.qemu.CRASHKERNEL`).
:func:`kdump` then

1. loads the capture kernel with ``kexec -p``: the guest's own ``vmlinuz``,
   no initramfs (the cloud kernel mounts the NVMe root by itself; the 16K
   kernel gets the image's, which loads NVMe and ext4), with
   ``livewalk.kdump=LEVEL,...`` on its command line; the boot script
   (``vm/guest_init.sh``) sees it and, instead of the normal boot, runs
   ``makedumpfile -c -d LEVEL /proc/vmcore /out/kdump/vmcore-LEVEL`` for each
   level, then powers the guest off;
2. starts the workload and waits for its ready file;
3. runs a recorder in the guest that reads the kernel's own
   ``/proc/PID/{maps,pagemap,smaps,smaps_rollup}`` of the workload until two
   reads agree, writes them to ``/out/kdump/record/``, syncs and freezes
   ``/out`` (so the crashed kernel leaves it consistent) and panics the
   kernel itself (``echo c > /proc/sysrq-trigger``): no host command runs in
   the guest between the record and the panic;
4. follows the console log stage by stage, each with its own deadline (the
   panic; the capture kernel's banner; its init; each makedumpfile; the
   power-off), so a capture kernel that does not come up fails in about a
   minute instead of hanging;
5. stops the guest and returns the host paths of the dumps and the record.

The same works in the arm64 guest (``Guest(arch="arm64", levels=4,
extra_cmdline=CRASHKERNEL)``: ``kexec -p`` loads the uncompressed ``Image``
Debian ships as ``vmlinuz``) when it does not use 52-bit VAs: the 4K kernel
at 4 levels, the 16K one (``kernel="16k"``) at 3. makedumpfile 1.7.8 knows
no 52-bit VA with 4K or 16K pages, so the capture kernel hands it a
VMCOREINFO describing the kernel, built for 52 bits, as one of the bits it
runs with (48 or 47, ``vm/guest_init.sh``); with 52 in use (LPA2: 5 levels
with 4K, 4 with 16K) it refuses the kernel ("PAGE SIZE 0x1000 and VA Bits
52 not supported") and :func:`kdump` raises :class:`KdumpError` with its
log.

>>> from livewalk.vm import Guest
>>> from livewalk.vm.qemu import CRASHKERNEL
>>> with Guest(levels=4, extra_cmdline=CRASHKERNEL) as g:      # doctest: +SKIP
...     k = g.kdump("python3 tests/workloads/mappings.py --ready-file /tmp/w.json",
...                 ready_file="/tmp/w.json")
>>> k.dumps[31], k.record / "smaps", k.timings["capture_boot"]  # doctest: +SKIP
"""

from __future__ import annotations

import json
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import GuestError, log

if TYPE_CHECKING:
    from .guest import Guest

__all__ = ("KdumpError", "KdumpResult", "capture_cmdline", "kdump")

#: Where the guest writes the dumps (``vmcore-LEVEL``, ``makedumpfile-LEVEL.log``,
#: ``capture.txt``) and, under ``record/``, the kernel's pre-panic answers.
GUEST_DIR = "/out/kdump"
#: Where the image's initramfs goes in the guest for ``kexec -p --initrd``.
CAPTURE_INITRD = "/tmp/livewalk-capture-initrd.img"

# Kernel parameters of the first kernel that the capture kernel must not get
# (its memory is the 256 MiB reservation) or that it gets its own value of.
_DROP = re.compile(r"^(crashkernel|hugepages|hugepagesz|transparent_hugepage|panic|BOOT_IMAGE)=")

# Runs in the guest: records the workload's /proc files (two equal reads in a
# row), syncs and freezes /out, then panics the kernel.
RECORDER = r"""
import fcntl, json, os, sys, time
pid, d = int(sys.argv[1]), sys.argv[2]
FIFREEZE = 0xC0045877
PAGE = os.sysconf("SC_PAGE_SIZE")  # 4K, 16K or 64K on arm64


def read(name):
    with open(f"/proc/{pid}/{name}", "rb") as f:
        return f.read()


def snapshot():
    maps = read("maps")
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        pm = b""
        for line in maps.decode().splitlines():
            s, e = (int(x, 16) for x in line.split()[0].split("-"))
            pm += os.pread(fd, (e - s) // PAGE * 8, s // PAGE * 8)
    finally:
        os.close(fd)
    return {"maps": maps, "pagemap": pm, "smaps": read("smaps"), "smaps_rollup": read("smaps_rollup")}


def stable():
    a = snapshot()
    for _ in range(100):
        time.sleep(0.3)
        b = snapshot()
        if a == b:
            return b
        a = b
    return a


def write(where, snap, note):
    os.makedirs(where, exist_ok=True)
    for name, data in snap.items():
        with open(f"{where}/{name}", "wb") as f:
            f.write(data)
    with open(f"{where}/record.json", "w") as f:
        json.dump(note, f)
    os.sync()


def freeze_and_panic(where, trigger):
    fd = os.open(where, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FIFREEZE, 0)  # the crashed kernel leaves /out clean
    except OSError:
        pass  # the rehearsal, on tmpfs
    with open(trigger, "w") as f:
        f.write("c")


# Rehearse everything done after the record (writing, syncing, freezing,
# the trigger) so no code path of this process faults in a page it shares
# with the workload (python's text: its mapcount) after the record.
write("/tmp/livewalk-kdump-rehearsal", snapshot(), {"pid": pid})
print("rehearsed", flush=True)
freeze_and_panic("/tmp", "/dev/null")
for attempt in range(1, 6):
    snap = stable()
    write(d, snap, {"pid": pid, "attempt": attempt, "time": time.time(), "verified": False})
    if snapshot() == snap:  # nothing moved while the record was written
        write(d, snap, {"pid": pid, "attempt": attempt, "time": time.time(), "verified": True})
        break
print("recorded; panicking", flush=True)
freeze_and_panic("/out", "/proc/sysrq-trigger")
"""

_PANIC = re.compile(r"Kernel panic - not syncing[^\n]*")
_BANNER = re.compile(r"Linux version \S+")
_FATAL = re.compile(
    r"Kernel panic - not syncing[^\n]*|Oops:|BUG: unable to handle|general protection fault|"
    r"kernel BUG at|Unable to mount root|VFS: Cannot open root|kdump: FAILED[^\n]*"
)
_LEVEL = re.compile(r"kdump: level (\d+(?:-raw)?) status (\d+) size (\d+) seconds ([\d.]+)")


class KdumpError(GuestError):
    """The kdump did not complete (the capture kernel did not come up, a
    makedumpfile failed, a stage passed its deadline)."""


@dataclass
class KdumpResult:
    """What :func:`kdump` brought back.

    :ivar dumps: dump level -> host path of the makedumpfile dump (made with
        the VMCOREINFO fix-up of ``vm/guest_init.sh``)
    :ivar raw_dumps: dump level -> host path of the dump makedumpfile made
        unaided (the levels of ``raw_levels``)
    :ivar record: host directory of the kernel's pre-panic answers: ``maps``,
        ``pagemap`` (the raw entries of every VMA of ``maps``, in order),
        ``smaps``, ``smaps_rollup``, ``dmesg``, ``record.json``
    :ivar pid: the recorded guest process
    :ivar ready: the workload's ready JSON (None without a ready file)
    :ivar timings: seconds: ``record`` (recorder start to panic),
        ``panic_to_capture`` (panic to the capture kernel's banner),
        ``capture_boot`` (banner to its init), ``makedumpfile-LEVEL`` (in the
        guest), ``poweroff`` (last dump to QEMU's exit), ``total``
    :ivar sizes: dump name (``"31"``, ``"31-raw"``) -> dump size in bytes
    """

    dumps: dict[int, Path]
    raw_dumps: dict[int, Path]
    record: Path
    pid: int
    ready: Any
    timings: dict[str, float] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    console: str = ""


def capture_cmdline(first: str, dump_levels: tuple[int, ...], raw_levels: tuple[int, ...] = ()) -> str:
    """The capture kernel's command line, from the first kernel's.

    >>> capture_cmdline("console=ttyS0 root=/dev/nvme0n1 rw panic=-1 hugepages=64 crashkernel=256M", (31, 0))
    'console=ttyS0 root=/dev/nvme0n1 rw nr_cpus=1 reset_devices irqpoll panic=-1 livewalk.kdump=31,0'
    """
    keep = [p for p in first.split() if not _DROP.match(p)]
    keep += ["nr_cpus=1", "reset_devices", "irqpoll", "panic=-1"]
    keep.append("livewalk.kdump=" + ",".join(str(int(x)) for x in dump_levels))
    if raw_levels:
        keep.append("livewalk.kdump_raw=" + ",".join(str(int(x)) for x in raw_levels))
    return " ".join(keep)


def _load_capture_kernel(g: Guest, dump_levels: tuple[int, ...], raw_levels: tuple[int, ...]) -> None:
    size = g.run("cat /sys/kernel/kexec_crash_size", timeout=60).stdout.strip()
    if not size.isdigit() or int(size) == 0:
        raise KdumpError(
            "the guest has no crash kernel reservation: boot it with "
            "Guest(extra_cmdline=livewalk.vm.qemu.CRASHKERNEL)"
        )
    first = g.run("cat /proc/cmdline", timeout=60, check=True).stdout.strip()
    append = shlex.quote(capture_cmdline(first, dump_levels, raw_levels))
    # A kernel that mounts its root through an initramfs (16K's NVMe and
    # ext4 are modules) needs it in the capture kernel too.
    initrd = g.image.initrd if g.image is not None and g.kernel_image is None else None
    initrd_opt = ""
    if initrd is not None:
        g.copy_in(initrd, CAPTURE_INITRD)
        initrd_opt = f" --initrd={CAPTURE_INITRD}"
    r = g.run(f'kexec -p "/boot/vmlinuz-$(uname -r)"{initrd_opt} --append={append}', timeout=300)
    loaded = g.run("cat /sys/kernel/kexec_crash_loaded", timeout=60).stdout.strip()
    if r.returncode != 0 or loaded != "1":
        raise KdumpError(f"kexec -p failed (status {r.returncode}, loaded {loaded!r}): {r.stderr.strip()[-2000:]}")


class _Console:
    """The guest's console log, from an offset on, waited on stage by stage."""

    def __init__(self, g: Guest) -> None:
        self.g = g
        self.path = Path(g.console_log)
        self.start = self.path.stat().st_size if self.path.exists() else 0

    def text(self) -> str:
        with open(self.path, "rb") as f:
            f.seek(self.start)
            return f.read().decode(errors="replace")

    def wait(self, pattern: re.Pattern[str], pos: int, timeout: float, what: str) -> re.Match[str]:
        """Wait for *pattern* after *pos*; fail on a fatal message after *pos*,
        on QEMU's exit or after *timeout* seconds."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            m = pattern.search(text, pos)
            if m:
                return m
            bad = _FATAL.search(text, pos)
            if bad:
                raise KdumpError(f"{what}: the console says {bad.group(0)!r}{self.tail(text)}")
            if not self.g.running:
                raise KdumpError(f"{what}: QEMU exited first{self.tail(text)}")
            if time.monotonic() > deadline:
                raise KdumpError(f"{what}: not seen in {timeout:.0f} s{self.tail(text)}")
            time.sleep(0.2)

    @staticmethod
    def tail(text: str, n: int = 25) -> str:
        return "\n... console:\n" + "\n".join(text.splitlines()[-n:])


def kdump(
    g: Guest,
    workload: str | None = None,
    *,
    ready_file: str | None = None,
    pid: int | None = None,
    dump_levels: tuple[int, ...] = (31, 0),
    raw_levels: tuple[int, ...] = (),
    ready_timeout: float = 300,
    capture_timeout: float = 120,
    dump_timeout: float = 900,
) -> KdumpResult:
    """Crash guest *g* with kdump armed and bring its dumps back (see the
    module's docstring). The guest is stopped afterwards.

    :param workload: a command to :meth:`~livewalk.vm.Guest.spawn` first
    :param ready_file: the workload's ready file (JSON); its ``"pid"``, if
        any, is the process recorded
    :param pid: the guest process to record (default: the workload's)
    :param dump_levels: makedumpfile ``-d`` levels, one dump each, all from the
        same ``/proc/vmcore``
    :param raw_levels: levels (of *dump_levels*) to dump a second time with
        makedumpfile unaided (see ``vm/guest_init.sh``: makedumpfile 1.7.8
        misreads Linux 7.2's compound pages)
    :param capture_timeout: seconds for each of: the panic after the
        recorder starts, the capture kernel's banner after the panic, its
        init after the banner
    :param dump_timeout: seconds for all the makedumpfile runs
    :raises KdumpError: when a stage fails or passes its deadline (the guest
        is stopped; its run directory is kept for the console log)
    """
    if not dump_levels:
        raise ValueError("no dump level")
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    _load_capture_kernel(g, dump_levels, raw_levels)
    ready: Any = None
    spawned = g.spawn(workload) if workload is not None else None
    if ready_file is not None:
        if spawned is None:
            raise ValueError("ready_file needs a workload")
        ready = g.wait_ready_file(ready_file, spawned, ready_timeout)
    if pid is None:
        pid = int(ready["pid"]) if isinstance(ready, dict) and "pid" in ready else spawned
    if pid is None:
        raise ValueError("nothing to record: give a workload or a pid")
    g.run(f"mkdir -p {GUEST_DIR}/record && dmesg > {GUEST_DIR}/record/dmesg", timeout=60, check=True)
    g.put("/tmp/livewalk-kdump-record.py", RECORDER)
    console = _Console(g)
    t = time.monotonic()
    g.spawn(f"exec python3 /tmp/livewalk-kdump-record.py {int(pid)} {GUEST_DIR}/record")
    try:
        panic = console.wait(_PANIC, 0, capture_timeout, "the panic")
        timings["record"] = time.monotonic() - t
        t = time.monotonic()
        banner = console.wait(_BANNER, panic.end(), capture_timeout, "the capture kernel's banner")
        timings["panic_to_capture"] = time.monotonic() - t
        t = time.monotonic()
        up = console.wait(re.compile(r"kdump: capture kernel up"), banner.end(), capture_timeout,
                          "the capture kernel's init")  # fmt: skip
        timings["capture_boot"] = time.monotonic() - t
        t = time.monotonic()
        done = console.wait(re.compile(r"kdump: done"), up.end(), dump_timeout, "makedumpfile")
        timings["makedumpfile"] = time.monotonic() - t
        t = time.monotonic()
        deadline = t + 60
        while g.running and time.monotonic() < deadline:
            time.sleep(0.2)
        timings["poweroff"] = time.monotonic() - t
        text = console.text()
    except KdumpError:
        g.keep = True
        g.stop()
        raise
    g.stop()
    timings["total"] = time.monotonic() - t0
    if g.out_dir is None:
        raise KdumpError("the guest's /out came back empty")
    out = g.out_dir / "kdump"
    sizes: dict[str, int] = {}
    for m in _LEVEL.finditer(text, up.end(), done.end()):
        name, status, size, secs = m.group(1), int(m.group(2)), int(m.group(3)), float(m.group(4))
        if status != 0:
            log_text = (out / f"makedumpfile-{name}.log").read_text(errors="replace")[-2000:]
            raise KdumpError(f"makedumpfile for dump {name} failed with status {status}:\n{log_text}")
        sizes[name] = size
        timings[f"makedumpfile-{name}"] = secs
    dumps = {lvl: out / f"vmcore-{lvl}" for lvl in dump_levels}
    raw_dumps = {lvl: out / f"vmcore-{lvl}-raw" for lvl in raw_levels}
    missing = [str(p) for p in (*dumps.values(), *raw_dumps.values()) if not p.is_file()]
    if missing or not (out / "record" / "pagemap").is_file():
        raise KdumpError(f"missing after the kdump: {missing or 'the record'} (in {out})")
    log("kdump: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        + "; " + ", ".join(f"level {k}: {v / (1 << 20):.1f} MiB" for k, v in sizes.items()))  # fmt: skip
    record = json.loads((out / "record" / "record.json").read_text())
    return KdumpResult(dumps=dumps, raw_dumps=raw_dumps, record=out / "record", pid=int(record["pid"]), ready=ready,
                       timings=timings, sizes=sizes, console=text)  # fmt: skip
