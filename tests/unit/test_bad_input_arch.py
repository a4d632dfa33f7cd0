# SPDX-License-Identifier: LGPL-2.1-or-later
"""
A core of one architecture with the vmlinux of the other (host only).

An arm64 vmcore read with an x86_64 vmlinux, or an x86_64 one with an arm64
vmlinux, is the usual slip when dumps of two machines sit side by side. The
command line says so in one ``livewalk: error:`` line naming both
architectures, exits 1 and prints no traceback, whether the vmlinux is given
as a file or as a directory holding it.

The cores and vmlinux files are small fakes made here: an ELF core with a
VMCOREINFO note (what drgn needs to take it for a Linux kernel of that
architecture) and a page of memory; a vmlinux that is only an ELF header and
a GNU build-ID note of another build (drgn rejects it by build ID, as it
rejects a real vmlinux of another kernel).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: ELF ``e_machine`` of each architecture
EM = {"x86_64": 62, "arm64": 183}

#: A VMCOREINFO of each architecture, as the 7.2 kernels of the test VM write
#: it (only what drgn reads when it opens the core).
VMCOREINFO = {
    "arm64": (
        "OSRELEASE=7.2.13+deb14-cloud-arm64\nBUILD-ID=2fd286f94bd367f15622983529e421b16aa9cd20\n"
        "PAGESIZE=4096\nSYMBOL(swapper_pg_dir)=ffff800081e9c000\nNUMBER(VA_BITS)=52\n"
        "NUMBER(kimage_voffset)=0xffff7fffc0000000\nNUMBER(PHYS_OFFSET)=0x40000000\n"
        "NUMBER(TCR_EL1_T1SZ)=0x10\nKERNELOFFSET=0\n"
    ),
    "x86_64": (
        "OSRELEASE=7.2.13+deb14-cloud-amd64\nBUILD-ID=8a55a05d35a15fe072cfd7e22593672daae112af\n"
        "PAGESIZE=4096\nSYMBOL(swapper_pg_dir)=ffffffff82a0a000\nNUMBER(pgtable_l5_enabled)=1\n"
        "KERNELOFFSET=0\n"
    ),
}
#: Where the fake core's page of memory is (physical, virtual).
LOAD = {"arm64": (0x4000_0000, 0xFFFF_0000_0000_0000), "x86_64": (0x100_0000, 0xFFFF_8880_0100_0000)}


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    pad = lambda b: b + bytes(-len(b) % 4)  # noqa: E731
    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def _ident() -> bytes:
    return b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # ELF64, little-endian, version 1


def fake_core(arch: str) -> bytes:
    """An ELF64 ``ET_CORE`` of *arch*: a PT_NOTE with VMCOREINFO and one page in a PT_LOAD."""
    note = _note(b"VMCOREINFO\x00", 0, VMCOREINFO[arch].encode())
    note_off = 64 + 2 * 56
    load_off = (note_off + len(note) + 4095) // 4096 * 4096
    paddr, vaddr = LOAD[arch]
    ehdr = _ident() + struct.pack("<HHIQQQIHHHHHH", 4, EM[arch], 1, 0, 64, 0, 0, 64, 56, 2, 64, 0, 0)
    phdrs = struct.pack("<IIQQQQQQ", 4, 0, note_off, 0, 0, len(note), len(note), 4)  # PT_NOTE
    phdrs += struct.pack("<IIQQQQQQ", 1, 7, load_off, vaddr, paddr, 4096, 4096, 4096)  # PT_LOAD
    data = ehdr + phdrs + note
    return data + bytes(load_off - len(data)) + bytes(4096)


def fake_vmlinux(arch: str) -> bytes:
    """An ELF64 ``ET_EXEC`` of *arch* with only a ``.note.gnu.build-id`` (of no real build)."""
    note = _note(b"GNU\x00", 3, bytes(range(20)))  # NT_GNU_BUILD_ID
    names = b"\x00.note.gnu.build-id\x00.shstrtab\x00"
    names_off = 64 + len(note)
    shoff = (names_off + len(names) + 7) // 8 * 8
    ehdr = _ident() + struct.pack("<HHIQQQIHHHHHH", 2, EM[arch], 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 2)
    shdrs = bytes(64)
    shdrs += struct.pack("<IIQQQQIIQQ", 1, 7, 2, 0, 64, len(note), 0, 0, 4, 0)  # SHT_NOTE, SHF_ALLOC
    shdrs += struct.pack("<IIQQQQIIQQ", 20, 3, 0, 0, names_off, len(names), 0, 0, 1, 0)  # SHT_STRTAB
    data = ehdr + note + names
    return data + bytes(shoff - len(data)) + shdrs


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "livewalk", *args], capture_output=True,
                          text=True, timeout=120, cwd=str(ROOT), env=env)  # fmt: skip


@pytest.mark.parametrize("as_dir", [False, True], ids=["file", "directory"])
@pytest.mark.parametrize("core_arch,vmlinux_arch", [("arm64", "x86_64"), ("x86_64", "arm64")],
                         ids=["arm64-core-x86-vmlinux", "x86-core-arm64-vmlinux"])  # fmt: skip
@pytest.mark.parametrize("cmd", [("ptdump",), ("pagemap", "--pid", "1")], ids=["ptdump", "pagemap"])
def test_core_with_the_other_architectures_vmlinux(
    tmp_path: Path, core_arch: str, vmlinux_arch: str, as_dir: bool, cmd: tuple[str, ...]
) -> None:
    core = tmp_path / "vmcore"
    core.write_bytes(fake_core(core_arch))
    (tmp_path / "sym").mkdir()
    vmlinux = tmp_path / "sym" / "vmlinux"
    vmlinux.write_bytes(fake_vmlinux(vmlinux_arch))
    p = run("-c", str(core), "-s", str(vmlinux.parent if as_dir else vmlinux), *cmd)
    assert p.returncode == 1 and p.stdout == "", (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("livewalk: error: "), p.stderr
    assert "no matching debugging information" in lines[0], lines[0]
    assert f"{vmlinux} is an {vmlinux_arch} vmlinux, the kernel is {core_arch}" in lines[0], lines[0]


def test_the_right_architecture_is_not_blamed(tmp_path: Path) -> None:
    """A vmlinux of the core's architecture but another build: the build ID
    is the only complaint."""
    core = tmp_path / "vmcore"
    core.write_bytes(fake_core("arm64"))
    vmlinux = tmp_path / "vmlinux"
    vmlinux.write_bytes(fake_vmlinux("arm64"))
    p = run("-c", str(core), "-s", str(vmlinux), "ptdump")
    lines = p.stderr.splitlines()
    assert p.returncode == 1 and len(lines) == 1 and lines[0].startswith("livewalk: error: "), p.stderr
    assert lines[0].endswith(f"{vmlinux} does not contain a vmlinux with this build ID"), lines[0]
