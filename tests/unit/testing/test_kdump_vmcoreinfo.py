# SPDX-License-Identifier: LGPL-2.1-or-later
"""The VMCOREINFO the kdump capture kernel hands makedumpfile
(``vm/guest_init.sh``), without booting anything: the script's own Python,
run on an ELF core whose only note is a VMCOREINFO.

makedumpfile 1.7.8 walks arm64 tables of 39 or 48 VA bits with 4K pages
and 36, 47 or 48 with 16K, never 52. A Debian arm64 kernel is built for 52
bits; on a CPU without LPA2 it runs with fewer (``vabits_actual``, 64 less
``TCR_EL1_T1SZ``) and its ``memstart_addr`` (``PHYS_OFFSET``) is lowered by
``_PAGE_OFFSET(vabits_actual) - _PAGE_OFFSET(52)`` (Linux 7.2
``arm64_memblock_init()``). The capture kernel describes such a kernel as
one of ``vabits_actual`` bits, with the unbiased ``PHYS_OFFSET``.
"""

from __future__ import annotations

import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

GUEST_INIT = Path(__file__).resolve().parents[3] / "vm" / "guest_init.sh"


def _fixup_script() -> str:
    """The Python of guest_init.sh that writes the capture kernel's VMCOREINFO."""
    m = re.search(r"python3 - /proc/vmcore /tmp/vmcoreinfo <<'PY'\n(.*?)\nPY\n", GUEST_INIT.read_text(), re.S)
    assert m, "the VMCOREINFO fix-up is gone from vm/guest_init.sh"
    return m.group(1)


def _core(info: str) -> bytes:
    """An ELF64 core with one PT_NOTE holding a VMCOREINFO note."""
    name = b"VMCOREINFO\0"
    desc = info.encode()
    note = struct.pack("<III", len(name), len(desc), 0)
    note += name.ljust((len(name) + 3) // 4 * 4, b"\0") + desc.ljust((len(desc) + 3) // 4 * 4, b"\0")
    phoff = 64
    header = b"\x7fELF\x02\x01\x01" + bytes(9)
    header += struct.pack("<HHIQQQIHHHHHH", 4, 183, 1, 0, phoff, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 4, 0, phoff + 56, 0, 0, len(note), len(note), 0)
    return header + phdr + note


def _fixed(tmp_path: Path, info: dict[str, str]) -> dict[str, str]:
    core = tmp_path / "vmcore"
    core.write_bytes(_core("".join(f"{k}={v}\n" for k, v in info.items())))
    out = tmp_path / "vmcoreinfo"
    subprocess.run([sys.executable, "-", str(core), str(out)], input=_fixup_script().encode(), check=True)
    return dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)


#: Where RAM starts (the virt machine's 1 GiB).
PHYS = 0x4000_0000


@pytest.mark.parametrize(
    ("page", "t1sz", "va_bits"),
    [
        (4096, 16, "48"),  # 4K pages, 4 levels (a CPU without LPA2)
        (16384, 17, "47"),  # 16K pages, 3 levels (the kernel folds one at boot)
        (4096, 12, "52"),  # 52 bits in use (LPA2): makedumpfile has no walk
        (16384, 12, "52"),  # for it, the note is left as it is
    ],
)
def test_arm64_52_bit_kernel_as_makedumpfile_knows_it(tmp_path: Path, page: int, t1sz: int, va_bits: str) -> None:
    # memstart_addr as the kernel lowered it for its 52-bit PAGE_OFFSET
    bias = (1 << 52) - (1 << (64 - t1sz))
    got = _fixed(tmp_path, {
        "OSRELEASE": "7.2.13+deb14-arm64", "PAGESIZE": str(page), "NUMBER(VA_BITS)": "52",
        "NUMBER(TCR_EL1_T1SZ)": str(t1sz), "NUMBER(PHYS_OFFSET)": hex((PHYS - bias) % (1 << 64)),
    })  # fmt: skip
    assert got["NUMBER(VA_BITS)"] == va_bits
    assert int(got["NUMBER(PHYS_OFFSET)"], 16) == PHYS
    assert got["PAGESIZE"] == str(page)


def test_x86_64_vmcoreinfo_only_gains_the_old_compound_head_name(tmp_path: Path) -> None:
    info = {
        "OSRELEASE": "7.2.13+deb14-cloud-amd64", "PAGESIZE": "4096", "KERNELOFFSET": "1e000000",
        "SYMBOL(init_uts_ns)": "ffffffff9f813ca0", "OFFSET(page.compound_info)": "8",
    }  # fmt: skip
    got = _fixed(tmp_path, info)
    # makedumpfile adds KERNELOFFSET to a -i file's symbols itself
    assert got["SYMBOL(init_uts_ns)"] == "ffffffff81813ca0"
    assert got["OFFSET(page.compound_head)"] == got["OFFSET(page.compound_info)"] == "8"
    assert "NUMBER(VA_BITS)" not in got
