# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Programs
--------

Opening the kernel to inspect as a ``drgn.Program``, the way drgn's own
command line does (``drgn -k``, ``drgn -c VMCORE``, ``drgn --qemu SOCKET``,
``drgn -s PATH``). Every failure is a one-line
:class:`~livewalk.errors.LivewalkError`. Finding a process's ``mm`` in the
program is :mod:`livewalk.task`'s job.

Nothing here writes to the target.

>>> prog = open_program()                              # doctest: +SKIP
>>> prog = open_program(core="/var/crash/vmcore")      # doctest: +SKIP
>>> prog = open_program(qemu="/tmp/qmp.sock", symbols=["/build/linux"])  # doctest: +SKIP
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from livewalk.errors import DebugInfoError, TargetError

if TYPE_CHECKING:
    from drgn import Program

__all__ = ("QMP_TIMEOUT", "open_program")


def _strerror(e: OSError) -> str:
    if e.errno is not None:
        return os.strerror(e.errno)
    return str(e)


def _split_symbols(paths: Iterable[str]) -> tuple[list[str], list[str]]:
    """Split ``-s`` arguments into (directories, files), checking they exist."""
    dirs: list[str] = []
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            dirs.append(os.path.abspath(path))
        elif os.path.exists(path):
            files.append(os.path.abspath(path))
        else:
            raise DebugInfoError(f"debugging information path {path!r} does not exist")
    return dirs, files


def open_program(
    *,
    core: str | None = None,
    qemu: str | None = None,
    symbols: Iterable[str] = (),
    kernel_directories: Iterable[str] = (),
    default_symbols: bool = True,
) -> Program:
    """
    Open a Linux kernel as a ``drgn.Program`` and load the kernel image's
    debugging information (``vmlinux`` only: livewalk needs no module
    symbols).

    :param core: a vmcore (``/proc/vmcore``, kdump, makedumpfile or ELF) to
        open instead of the running kernel
    :param qemu: the QMP address of a QEMU guest (a Unix socket path or
        ``host:port``) to open instead of the running kernel
    :param symbols: like drgn's ``-s``: files with debugging information
        (a ``vmlinux``), or directories to search for the kernel image (as
        drgn's ``--kernel-directory``)
    :param kernel_directories: more directories to search for the kernel image
    :param default_symbols: also search drgn's standard places
        (``/usr/lib/debug``, ``/boot``...)
    :raises TargetError: if the target cannot be opened or is not a Linux
        kernel
    :raises DebugInfoError: if no matching ``vmlinux`` debugging
        information is found
    """
    try:
        import drgn
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise TargetError(
            f"cannot import drgn ({e}): install python3-drgn or `pip install drgn`"
        ) from e

    if core is not None and qemu is not None:
        raise TargetError("give at most one of -c/--core and --qemu")

    dirs, files = _split_symbols(symbols)
    dirs.extend(os.path.abspath(d) for d in kernel_directories)

    prog = drgn.Program()
    if core is not None:
        _set_core(prog, core)
    elif qemu is not None:
        _set_qemu(prog, qemu)
    else:
        _set_kernel(prog)

    if not prog.flags & drgn.ProgramFlags.IS_LINUX_KERNEL:
        what = core if core is not None else (qemu or "the target")
        raise TargetError(f"{what} is not a Linux kernel core dump (it is a user-space core)")

    _load_vmlinux(prog, dirs, files, default_symbols)
    return prog


def _set_core(prog: Program, path: str) -> None:
    if not os.path.exists(path):
        raise TargetError(f"cannot open core file {path!r}: No such file or directory")
    if os.path.isdir(path):
        raise TargetError(f"cannot open core file {path!r}: it is a directory")
    _check_elf_core_size(path)
    _check_kdump_size(path)
    try:
        prog.set_core_dump(path)
    except OSError as e:
        raise TargetError(f"cannot open core file {path!r}: {_strerror(e)}") from e
    except ValueError as e:
        # drgn: "not an ELF core file", "invalid ELF magic"...
        raise TargetError(f"{path!r} is not a kernel core dump: {e}") from e
    except Exception as e:
        raise TargetError(f"cannot use core file {path!r}: {e}") from e


def _check_elf_core_size(path: str) -> None:
    """
    A 64-bit little-endian ELF core (``/proc/vmcore``, QEMU's
    ``dump-guest-memory``) must hold every ``PT_LOAD`` segment its program
    headers describe; drgn opens a truncated one (a copy cut short, a full
    disk) and only fails later, on some read. Other files are left to drgn.
    """
    import struct

    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            ehdr = f.read(64)
            if len(ehdr) < 64 or ehdr[:6] != b"\x7fELF\x02\x01":
                return
            e_type, = struct.unpack_from("<H", ehdr, 16)
            e_phoff, = struct.unpack_from("<Q", ehdr, 32)
            e_phentsize, e_phnum = struct.unpack_from("<HH", ehdr, 54)
            if e_type != 4 or e_phentsize < 56 or e_phnum in (0, 0xFFFF):  # ET_CORE
                return
            f.seek(e_phoff)
            phdrs = f.read(e_phentsize * e_phnum)
    except OSError:
        return  # set_core_dump reports it
    need = 0
    for i in range(len(phdrs) // e_phentsize):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", phdrs, i * e_phentsize)
        if p_type == 1:  # PT_LOAD
            need = max(need, p_offset + p_filesz)
    if len(phdrs) < e_phentsize * e_phnum or need > size:
        raise TargetError(
            f"core file {path!r} is truncated: it has {size} bytes, its ELF headers "
            f"describe {max(need, e_phoff + e_phentsize * e_phnum)}"
        )


def _check_kdump_size(path: str) -> None:
    """
    A makedumpfile (diskdump, ``KDUMP   ``) dump must hold its header, its
    bitmaps, one page descriptor per dumped page and the data the last one
    points to; libkdumpfile opens a truncated one and fails later, on some
    page ("Decompression failed"). Other files are left to drgn.
    """
    import struct

    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            head = f.read(464)
            if len(head) < 464 or head[:8] != b"KDUMP   ":
                return
            block_size, sub_hdr_size, bitmap_blocks = struct.unpack_from("<iiI", head, 428)
            if block_size <= 0 or sub_hdr_size < 0:
                return
            bitmaps = (1 + sub_hdr_size) * block_size
            descs = bitmaps + bitmap_blocks * block_size
            if descs > size:
                raise TargetError(
                    f"kdump file {path!r} is truncated: it has {size} bytes, its header "
                    f"describes bitmaps up to byte {descs}"
                )
            half = bitmap_blocks * block_size // 2
            f.seek(bitmaps + half)  # the second bitmap: the pages in the dump
            dumped = int.from_bytes(f.read(half), "little").bit_count()
            last = descs + 24 * (dumped - 1)  # struct page_desc: 24 bytes
            need = descs + 24 * dumped
            if dumped and need <= size:
                f.seek(last)
                offset, length = struct.unpack("<qI", f.read(12))
                need = max(need, offset + length)
    except OSError:
        return  # set_core_dump reports it
    if need > size:
        raise TargetError(
            f"kdump file {path!r} is truncated: it has {size} bytes, its page table "
            f"describes {need}"
        )


def _set_qemu(prog: Program, address: str) -> None:
    if not hasattr(prog, "set_qemu_qmp"):  # pragma: no cover - drgn < 0.2
        import drgn

        raise TargetError(
            f"drgn {drgn.__version__} has no QEMU support: --qemu needs drgn>=0.2 (pip install 'drgn>=0.2')"
        )
    if "/" in address and not os.path.exists(address):
        raise TargetError(f"cannot connect to QEMU QMP socket {address!r}: No such file")
    _probe_qmp(address)
    try:
        prog.set_qemu_qmp(address)
    except OSError as e:
        raise TargetError(f"cannot connect to QEMU QMP socket {address!r}: {_strerror(e)}") from e
    except Exception as e:
        raise TargetError(f"cannot debug the QEMU guest at {address!r}: {e}") from e


#: Seconds to wait for a QMP server's greeting (``$LIVEWALK_QMP_TIMEOUT``).
QMP_TIMEOUT = 10.0


def _probe_qmp(address: str) -> None:
    """
    Connect once and wait for the QMP greeting, with a timeout. QEMU serves
    one QMP client at a time: while another client (another drgn) holds the
    socket, a new client is queued and would wait forever for the greeting.
    """
    import socket
    import time

    try:
        timeout = float(os.environ.get("LIVEWALK_QMP_TIMEOUT", QMP_TIMEOUT))
    except ValueError:
        timeout = QMP_TIMEOUT
    try:
        if "/" in address or ":" not in address:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target: Any = address
        else:
            host, _, port = address.rpartition(":")
            sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            target = (host.strip("[]"), int(port))
    except (OSError, ValueError) as e:
        raise TargetError(f"bad QMP address {address!r}: {e}") from e
    deadline = time.monotonic() + timeout
    data = b""
    try:
        sock.settimeout(timeout)
        sock.connect(target)
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            sock.settimeout(left)
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except TimeoutError as e:
        raise TargetError(
            f"QEMU QMP socket {address!r} sent no greeting in {timeout:g} s: another QMP "
            "client is probably attached (QEMU serves one at a time)"
        ) from e
    except OSError as e:
        raise TargetError(f"cannot connect to QEMU QMP socket {address!r}: {_strerror(e)}") from e
    finally:
        sock.close()
    if b'"QMP"' not in data:
        raise TargetError(f"{address!r} is not a QEMU QMP socket (no QMP greeting)")


def _set_kernel(prog: Program) -> None:
    try:
        prog.set_kernel()
    except PermissionError as e:
        raise TargetError(
            "cannot open /proc/kcore: Permission denied "
            "(reading the running kernel needs root, or CAP_SYS_RAWIO)"
        ) from e
    except FileNotFoundError as e:
        raise TargetError(
            "cannot open /proc/kcore: No such file or directory "
            "(not a live Linux kernel with CONFIG_PROC_KCORE; use -c VMCORE or --qemu SOCKET)"
        ) from e
    except OSError as e:
        if e.errno in (errno.EACCES, errno.EPERM):
            raise TargetError(f"cannot open the running kernel: {_strerror(e)} (run as root)") from e
        raise TargetError(f"cannot open the running kernel: {_strerror(e)}") from e
    except Exception as e:
        raise TargetError(f"cannot open the running kernel: {e}") from e


def _release(prog: Program) -> str:
    try:
        return prog["UTS_RELEASE"].string_().decode()
    except Exception:
        return "(unknown release)"


#: ELF ``e_machine`` -> the kernel's name of the architecture (``uname -m``
#: of arm64 is aarch64; the kernel tree calls it arm64).
_ELF_MACHINES = {3: "i386", 21: "ppc64", 22: "s390x", 40: "arm", 62: "x86_64", 183: "arm64", 243: "riscv64"}


def _elf_machine(path: str) -> str | None:
    """The architecture of ELF file *path* (None if it is not ELF or unknown)."""
    import struct

    try:
        with open(path, "rb") as f:
            ehdr = f.read(20)
    except OSError:
        return None
    if len(ehdr) < 20 or ehdr[:4] != b"\x7fELF" or ehdr[5] not in (1, 2):
        return None
    machine, = struct.unpack_from("<H" if ehdr[5] == 1 else ">H", ehdr, 18)
    return _ELF_MACHINES.get(machine)


def _other_arch(prog: Program, files: list[str], dirs: list[str]) -> str:
    """
    `` (PATH is an x86_64 vmlinux, the kernel is arm64)`` when a given
    vmlinux (a file, or a directory's ``vmlinux``) is of another
    architecture than the core or guest; else ``""``. A vmlinux of the
    wrong architecture is the usual mistake when dumps of two machines sit
    side by side.
    """
    if prog.platform is None:
        return ""
    kernel = {"X86_64": "x86_64", "AARCH64": "arm64"}.get(prog.platform.arch.name)
    if kernel is None:
        return ""
    for path in files + [os.path.join(d, "vmlinux") for d in dirs]:
        machine = _elf_machine(path)
        if machine is not None and machine != kernel:
            return f" ({path} is an {machine} vmlinux, the kernel is {kernel})"
    return ""


def _load_vmlinux(prog: Program, dirs: list[str], files: list[str], default: bool) -> None:
    import drgn

    # drgn logs its own warnings (missing module symbols...): keep them out of
    # a livewalk user's way unless the caller turned logging up.
    logger = logging.getLogger("drgn")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
    opts = prog.debug_info_options
    if dirs:
        opts.kernel_directories = tuple(dirs) + (
            tuple(opts.kernel_directories) if default else ()
        )
    elif not default:
        opts.kernel_directories = ()
    if not default:
        opts.directories = ()
    try:
        prog.load_debug_info(files, main=True)
    except drgn.MissingDebugInfoError:
        pass
    except OSError as e:
        raise DebugInfoError(f"cannot read debugging information: {_strerror(e)}") from e
    except Exception as e:
        raise DebugInfoError(f"cannot load debugging information: {e}") from e

    try:
        main = prog.main_module()
        missing = main.wants_debug_file()
    except LookupError:
        missing = True
        main = None
    if not missing:
        return
    release = _release(prog)
    build_id = ""
    if main is not None and main.build_id:
        build_id = f" (build ID {main.build_id.hex()})"
    if files or dirs:
        given = ", ".join(files + dirs)
        raise DebugInfoError(
            f"no matching debugging information for kernel {release}{build_id}: "
            f"{given} does not contain a vmlinux with this build ID{_other_arch(prog, files, dirs)}"
        )
    raise DebugInfoError(
        f"no debugging information for kernel {release}{build_id}: install its vmlinux "
        f"(e.g. Debian's linux-image-{release}-dbg) or pass -s PATH_TO_VMLINUX_OR_DIR"
    )
