# SPDX-License-Identifier: LGPL-2.1-or-later
"""The QEMU command line of the test VM, and how its process is started.

>>> spec = QemuSpec(levels=4, memory="4G", smp=2, accel="tcg", kernel=Path("vmlinuz"),
...                 root=Path("root.img"), run_dir=Path("/tmp/lwvm-x"))
>>> args = qemu_args(spec)
>>> args[0], "no5lvl" in args[args.index("-append") + 1]
('qemu-system-x86_64', True)

An arm64 guest runs on ``-machine virt``; ``-cpu max`` has FEAT_LPA2, so the
Debian kernel (4K pages, 52-bit VA) uses 5 levels, and ``lpa2=off`` takes it
to 4 (48-bit VA), as on a CPU without it:

>>> args = qemu_args(QemuSpec(levels=4, memory="4G", smp=2, accel="tcg", kernel=Path("vmlinuz"),
...                           root=Path("root.img"), run_dir=Path("/tmp/lwvm-x"), arch="arm64"))
>>> args[0], args[args.index("-cpu") + 1]
('qemu-system-aarch64', 'max,pauth-impdef=on,lpa2=off')
"""

from __future__ import annotations

import ctypes
import re
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .disks import ROOT_PARTUUID

__all__ = (
    "CRASHKERNEL",
    "FATAL",
    "QEMU",
    "QemuSpec",
    "firstboot_args",
    "host_has_la57",
    "kernel_cmdline",
    "machine_args",
    "numa_args",
    "pdeathsig",
    "qemu_args",
    "qemu_version",
)

VM_DIR = Path(__file__).resolve().parent

#: The emulator of x86-64 guests (:attr:`.image.Arch.qemu` names each
#: architecture's).
QEMU = "qemu-system-x86_64"

#: The crash kernel reservation :meth:`Guest.kdump <livewalk.vm.Guest.kdump>`
#: needs: ``Guest(extra_cmdline=CRASHKERNEL)``. Opt-in: it takes 256 MiB of
#: the guest's RAM (the capture kernel and makedumpfile live in it).
CRASHKERNEL = "crashkernel=256M"

#: Messages in the console log that mean the boot failed.
FATAL = re.compile(
    r"Kernel panic - not syncing|Oops:|BUG: kernel NULL pointer|BUG: unable to handle|"
    r"general protection fault|kernel BUG at|Unable to mount root|VFS: Cannot open root"
)

_PR_SET_PDEATHSIG = 1


def pdeathsig() -> None:
    """In a child before exec: have the kernel kill it when its parent dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except Exception:
        pass


def host_has_la57() -> bool:
    """Whether the host CPU has 5-level paging (needed for LA57 under KVM)."""
    try:
        with open("/proc/cpuinfo") as f:
            return any(ln.startswith("flags") and " la57" in ln for ln in f)
    except OSError:
        return False


def qemu_version(qemu: str = QEMU) -> str:
    """The first line of ``qemu-system-x86_64 --version`` (or of *qemu*'s), or ``"?"``."""
    try:
        return subprocess.run(
            [qemu, "--version"], stdout=subprocess.PIPE, text=True, timeout=30
        ).stdout.split("\n")[0]
    except (OSError, subprocess.SubprocessError):
        return "?"


def numa_args(memory: str, smp: int, nodes: int) -> list[str]:
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


@dataclass(frozen=True)
class QemuSpec:
    """What one boot of the guest is made of.

    :ivar run_dir: the host directory holding the sockets, logs and the
        ``src.img``/``out.img`` disks of this guest
    """

    levels: int
    memory: str
    smp: int
    accel: str
    kernel: Path
    root: Path
    run_dir: Path
    numa_nodes: int = 1
    extra_cmdline: str = ""
    #: an ext4 disk of the kernel's own modules (a kernel of the user's),
    #: mounted on the guest's /lib/modules by the image's stub init
    modules: Path | None = None
    #: the guest architecture (a name of :data:`.image.ARCHES`)
    arch: str = "x86_64"
    #: the kernel series (a name of :data:`.image.KERNEL_SERIES`): arm64's
    #: ``levels`` mean LPA2 or not by its page size
    series: str = "7"
    #: the initramfs to boot with (a kernel whose root disk needs modules)
    initrd: Path | None = None


def machine_args(arch: str, levels: int, accel: str, series: str = "7") -> list[str]:
    """The emulator, machine, accelerator and CPU of a guest of *arch* with
    *levels*-level paging, running kernel *series*.

    arm64: ``-cpu max`` has FEAT_LPA2 (the kernel picks 52-bit VA: 5 levels
    with 4K pages, 4 with 16K) unless ``lpa2=off`` (48-bit VA and 4 levels
    with 4K pages, 47-bit and 3 with 16K), so *levels* below the series'
    most mean ``lpa2=off``; ``pauth-impdef`` swaps the architected
    pointer-authentication hash, which TCG computes slowly, for QEMU's own
    (the guest sees no difference).
    """
    from .image import ARCHES, KERNEL_SERIES

    a = ARCHES[arch]
    if arch == "arm64":
        lpa2 = levels >= max(KERNEL_SERIES[series].levels)
        cpu = "max,pauth-impdef=on" + ("" if lpa2 else ",lpa2=off")
        return [a.qemu, "-machine", "virt", "-accel", "tcg,thread=single", "-cpu", cpu]
    if accel == "kvm":
        return [a.qemu, "-machine", "q35", "-accel", "kvm", "-cpu", "host"]
    return [a.qemu, "-machine", "q35", "-accel", "tcg,thread=single", "-cpu", "max"]


def firstboot_args(arch: str, kernel: Path, root: Path, console: Path, initrd: Path | None = None) -> list[str]:
    """The QEMU command line of an image's first boot (see
    :func:`.image._configure_in_guest`): its root disk writable, the image's
    first-boot script as init (through *initrd* if the kernel needs one),
    and nothing else."""
    from .image import ARCHES

    cmdline = f"console={ARCHES[arch].console} root=/dev/nvme0n1 rw init=/usr/sbin/livewalk-firstboot panic=-1"
    return [
        *machine_args(arch, 5, "tcg"),
        "-smp", "1", "-m", "2G",
        "-display", "none", "-nic", "none", "-monitor", "none", "-no-reboot",
        "-serial", f"file:{console}",
        "-kernel", str(kernel), *(["-initrd", str(initrd)] if initrd is not None else []), "-append", cmdline,
        "-drive", f"file={root},if=none,id=root,format=raw",
        "-device", "nvme,drive=root,serial=lwroot",
    ]  # fmt: skip


def kernel_cmdline(spec: QemuSpec) -> str:
    """The guest kernel's command line."""
    from .image import ARCHES, KERNEL_SERIES

    # Beside a second NVMe namespace (a kernel of one's own and its modules)
    # the root's name is a race: it is found by its partition table (see
    # .disks.root_partition_table). No rootwait: without the table, the
    # kernel says at once that it cannot open the root.
    root = "root=/dev/nvme0n1" if spec.modules is None else f"root=PARTUUID={ROOT_PARTUUID}"
    cmdline = [
        f"console={ARCHES[spec.arch].console}", root, "rw", "init=/usr/sbin/livewalk-init",
        "panic=-1", "hugepagesz=2M", "hugepages=64", "transparent_hugepage=madvise",
    ]  # fmt: skip
    # 2 MiB hugetlb pages (the workloads' MAP_HUGE_2MB), and some of the PMD
    # size where that differs: MAP_HUGETLB alone asks for it (32 MiB with 16K)
    pmd = KERNEL_SERIES[spec.series].pmd_size if spec.series in KERNEL_SERIES else 2 << 20
    if pmd != 2 << 20:
        cmdline += [f"hugepagesz={pmd >> 20}M", f"hugepages={max(1, (128 << 20) // pmd)}"]
    if spec.levels == 4 and spec.arch == "x86_64":  # arm64: the CPU's (machine_args)
        cmdline.append("no5lvl")
    if spec.modules is not None:
        cmdline.append("livewalk.modules=1")
    if spec.extra_cmdline:
        cmdline.append(spec.extra_cmdline)
    return " ".join(cmdline)


def qemu_args(spec: QemuSpec) -> list[str]:
    """The whole QEMU command line for *spec*."""
    d = spec.run_dir
    qemu, *machine = machine_args(spec.arch, spec.levels, spec.accel, spec.series)
    return [
        qemu,
        "-name", f"livewalk-vm-{spec.levels}",
        *machine,
        "-smp", str(spec.smp),
        "-m", spec.memory,
        *numa_args(spec.memory, spec.smp, spec.numa_nodes),
        "-display", "none", "-vga", "none", "-nic", "none", "-monitor", "none",
        "-no-reboot",
        # held until the root disk has its partition table (Guest._boot)
        *(["-S"] if spec.modules is not None else []),
        "-serial", f"file:{d / 'console.log'}",
        "-qmp", f"unix:{d / 'qmp.sock'},server=on,wait=off",
        "-chardev", f"socket,id=qmpctl,path={d / 'qmp-ctl.sock'},server=on,wait=off",
        "-mon", "chardev=qmpctl,mode=control",
        # A second client-facing QMP monitor, for dump_vmcore only (QEMU
        # serves one client per monitor and host_program() keeps qmp.sock).
        "-qmp", f"unix:{d / 'qmp-dump.sock'},server=on,wait=off",
        "-device", "vmcoreinfo",
        "-kernel", str(spec.kernel),
        *(["-initrd", str(spec.initrd)] if spec.initrd is not None else []),
        "-append", kernel_cmdline(spec),
        "-drive", f"file={spec.root},if=none,id=root,format=raw,snapshot=on",
        *_nvme_args(spec),
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


def _nvme_args(spec: QemuSpec) -> list[str]:
    """The NVMe disks: the root and, with a kernel of one's own, its
    modules, which must be readable before any module is loaded (NVMe is
    built in). Both are namespaces of one controller; which of them the
    kernel names ``nvme0n1`` is a race (see
    :func:`.disks.root_partition_table`)."""
    if spec.modules is None:
        return ["-device", "nvme,drive=root,serial=lwroot"]
    return [
        "-drive", f"file={spec.modules},if=none,id=mods,format=raw,readonly=on",
        "-device", "nvme,id=nvme0,serial=lwroot",
        "-device", "nvme-ns,drive=root,bus=nvme0,nsid=1",
        "-device", "nvme-ns,drive=mods,bus=nvme0,nsid=2",
    ]  # fmt: skip
