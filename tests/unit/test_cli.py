# SPDX-License-Identifier: LGPL-2.1-or-later
"""The ``livewalk`` command line on the host: argument parsing and the error
paths that need no kernel. Each runs ``python3 -m livewalk`` in a subprocess
and checks the exit status (2 for usage errors, 1 for others) and that
standard error is exactly one ``livewalk: error: ...`` line, with no
traceback."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import drgn
import pytest

from livewalk.cli import build_parser
from livewalk.commands.args import parse_address, parse_range
from livewalk.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: float = 60, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    return subprocess.run(
        [sys.executable, "-m", "livewalk", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(ROOT),
        env=e,
    )


def assert_one_line_error(p: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert p.returncode == code, (p.returncode, p.stderr)
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("livewalk: error: "), p.stderr
    assert "Traceback" not in p.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# --- parsing helpers ------------------------------------------------------


@pytest.mark.parametrize(
    "text,value",
    [
        ("7f0000001000", 0x7F0000001000),
        ("0x7f0000001000", 0x7F0000001000),
        ("0X10", 0x10),
        ("ffff_ffff_8100_0000", 0xFFFFFFFF81000000),
        ("ffffffffffffffff", 2**64 - 1),
    ],
)
def test_parse_address(text: str, value: int) -> None:
    assert parse_address(text) == value


@pytest.mark.parametrize("text", ["", "zz", "-1", "+5", "0x", "1" * 17, "12 34"])
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_address(text)


def test_parse_range() -> None:
    assert parse_range("7f0000000000:7f0000200000") == (0x7F0000000000, 0x7F0000200000)
    assert parse_range("0x1000:0x2001") == (0x1000, 0x2001)
    for bad in ("", ":", "1000", "1000:", ":2000", "2000:1000", "1000:1000", "x:2000", "1:2:3"):
        with pytest.raises(UsageError):
            parse_range(bad)


def test_parser_subcommands() -> None:
    p = build_parser()
    a = p.parse_args(["pagemap", "--pid", "12", "--range", "1000:3000", "--range", "5000:6000",
                      "--format", "raw"])
    assert (a.command, a.pid, a.ranges, a.format) == ("pagemap", 12, [(0x1000, 0x3000), (0x5000, 0x6000)], "raw")
    a = p.parse_args(["vtop", "--kernel", "ffffffff81000000", "0x1000"])
    assert a.kernel and a.pid is None and a.addresses == [0xFFFFFFFF81000000, 0x1000]
    a = p.parse_args(["smaps", "--pid", "1", "--json"])
    assert a.json and a.pid == 1
    a = p.parse_args(["ptdump", "--check-wx"])
    assert a.check_wx
    # Target options before or after the command name.
    a = p.parse_args(["-c", "/x", "-s", "/a", "vtop", "--pid", "3", "1000"])
    assert a.core == "/x" and a.symbols == ["/a"] and a.qemu is None
    a = p.parse_args(["vtop", "--qemu", "/q.sock", "-s", "/a", "-s", "/b", "--kernel-dir", "/k",
                      "--pid", "3", "1000"])
    assert a.qemu == "/q.sock" and a.symbols == ["/a", "/b"] and a.kernel_directories == ["/k"]
    # Defaults when nothing is given.
    a = p.parse_args(["ptdump"])
    assert a.core is None and a.qemu is None and a.symbols is None and not a.debug


# --- usage errors: exit 2, one line ---------------------------------------


@pytest.mark.parametrize(
    "args,needle",
    [
        ((), "COMMAND"),
        (("frobnicate",), "invalid choice"),
        (("vtop", "--pid", "1"), "ADDR"),
        (("vtop", "1000"), "--pid --kernel"),
        (("vtop", "--pid", "1", "--kernel", "1000"), "not allowed"),
        (("vtop", "--pid", "1", "zz"), "bad address 'zz'"),
        (("vtop", "--pid", "one", "1000"), "invalid int value"),
        (("pagemap",), "--pid"),
        (("pagemap", "--pid", "1", "--range", "2000:1000"), "START must be below END"),
        (("pagemap", "--pid", "1", "--range", "1000"), "expected START:END"),
        (("pagemap", "--pid", "1", "--range", "1000:zz"), "bad --range end"),
        (("pagemap", "--pid", "1", "--format", "xml"), "invalid choice"),
        (("smaps", "--pid"), "expected one argument"),
        (("ptdump", "--bogus"), "unrecognized arguments"),
        (("-c", "a", "--qemu", "b", "ptdump"), "not allowed"),
        # No abbreviations: --kernel must not be taken for --kernel-dir.
        (("vtop", "--kern", "1000"), ""),
    ],
)
def test_usage_errors(args: tuple[str, ...], needle: str) -> None:
    assert_one_line_error(run(*args), 2, needle)


def test_help_and_version() -> None:
    p = run("--help")
    assert p.returncode == 0 and p.stderr == ""
    for cmd in ("pagemap", "smaps", "vtop", "ptdump", "--qemu", "--core", "--symbols"):
        assert cmd in p.stdout
    for cmd in ("pagemap", "smaps", "vtop", "ptdump"):
        p = run(cmd, "--help")
        assert p.returncode == 0 and p.stdout.startswith(f"usage: livewalk {cmd}")
    p = run("pagemap", "--help")
    assert "--format raw writes exactly the bytes" in p.stdout
    assert "every VMA" in p.stdout
    p = run("--version")
    assert p.returncode == 0 and p.stdout.startswith("livewalk ")


# --- target errors without a kernel: exit 1, one line ----------------------


def test_missing_core(tmp_path: Path) -> None:
    missing = tmp_path / "vmcore"
    assert_one_line_error(
        run("-c", str(missing), "vtop", "--kernel", "ffffffff81000000"), 1,
        "cannot open core file", "No such file or directory",
    )
    # The same with the option after the command name, for every command.
    for cmd in (("pagemap", "--pid", "1"), ("smaps", "--pid", "1"), ("ptdump",)):
        assert_one_line_error(run(*cmd, "-c", str(missing)), 1, "cannot open core file")


def test_core_is_a_directory(tmp_path: Path) -> None:
    assert_one_line_error(run("-c", str(tmp_path), "ptdump"), 1, "is a directory")


def test_non_elf_core(tmp_path: Path) -> None:
    f = tmp_path / "notacore"
    f.write_text("this is not an ELF file\n")
    assert_one_line_error(run("-c", str(f), "ptdump"), 1, "not a kernel core dump", "ELF")


def test_elf_that_is_not_a_core() -> None:
    # The Python interpreter: an ELF executable, not a core file.
    assert_one_line_error(
        run("-c", os.path.realpath(sys.executable), "vtop", "--kernel", "ffffffff81000000"), 1,
        "not a kernel core dump",
    )


def _user_core(path: Path) -> None:
    # A minimal ELF64 x86-64 ET_CORE file with no notes: a user-space core
    # (no VMCOREINFO), as far as drgn can tell.
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    hdr = ident + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 0, 0, 0, 64, 56, 0, 64, 0, 0)
    path.write_bytes(hdr)


def test_user_space_core(tmp_path: Path) -> None:
    core = tmp_path / "core"
    _user_core(core)
    assert_one_line_error(run("-c", str(core), "smaps", "--pid", "1"), 1,
                          "not a Linux kernel core dump")


def test_missing_symbols_path(tmp_path: Path) -> None:
    core = tmp_path / "core"
    _user_core(core)
    assert_one_line_error(
        run("-c", str(core), "-s", str(tmp_path / "nope"), "ptdump"), 1,
        "does not exist",
    )


#: drgn's QEMU target (``Program.set_qemu_qmp``) came with drgn 0.2.
HAVE_QEMU = hasattr(drgn.Program, "set_qemu_qmp")
needs_qemu = pytest.mark.skipif(not HAVE_QEMU, reason="this drgn has no QEMU support")


def test_qemu_without_support_names_what_to_install(tmp_path: Path) -> None:
    from livewalk.errors import TargetError
    from livewalk.program import _set_qemu

    # a Program without set_qemu_qmp, as drgn before 0.2 has
    with pytest.raises(TargetError, match=r"no QEMU support: --qemu needs drgn>=0\.2 \(pip install"):
        _set_qemu(object(), str(tmp_path / "qmp.sock"))  # type: ignore[arg-type]


@needs_qemu
def test_qemu_socket_missing(tmp_path: Path) -> None:
    assert_one_line_error(run("--qemu", str(tmp_path / "qmp.sock"), "ptdump"), 1,
                          "cannot connect to QEMU QMP socket")


@needs_qemu
def test_qemu_socket_refused(tmp_path: Path) -> None:
    # A socket file nobody listens on.
    path = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    assert_one_line_error(run("--qemu", str(path), "ptdump"), 1, "Connection refused")


@needs_qemu
def test_qemu_socket_busy_does_not_hang(tmp_path: Path) -> None:
    # A QMP server that accepts but never greets (as QEMU does while another
    # client holds its QMP socket): a clear error after the timeout, no hang.
    path = tmp_path / "busy.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(4)
    conns = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(srv.accept()[0])
            except OSError:
                pass

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        t0 = time.monotonic()
        p = run("--qemu", str(path), "vtop", "--kernel", "ffffffff81000000",
                env={"LIVEWALK_QMP_TIMEOUT": "2"}, timeout=60)
        assert time.monotonic() - t0 < 30
        assert_one_line_error(p, 1, "sent no greeting", "another QMP client")
    finally:
        stop.set()
        t.join()
        for c in conns:
            c.close()
        srv.close()


@needs_qemu
def test_qemu_socket_not_qmp(tmp_path: Path) -> None:
    path = tmp_path / "chatty.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)

    def serve() -> None:
        c, _ = srv.accept()
        c.sendall(b"hello, I am not QEMU\n")
        c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        assert_one_line_error(run("--qemu", str(path), "ptdump"), 1, "not a QEMU QMP socket")
    finally:
        t.join(10)
        srv.close()


@pytest.mark.skipif(os.path.exists("/proc/kcore"), reason="this host has /proc/kcore")
def test_no_kcore() -> None:
    # The default target is the running kernel: without /proc/kcore, one line.
    assert_one_line_error(run("vtop", "--kernel", "ffffffff81000000"), 1, "/proc/kcore")


def test_debug_shows_traceback(tmp_path: Path) -> None:
    p = run("--debug", "-c", str(tmp_path / "missing"), "ptdump")
    assert p.returncode == 1
    assert "Traceback" in p.stderr
    assert p.stderr.rstrip().splitlines()[-1].startswith("livewalk: error: cannot open core file")
