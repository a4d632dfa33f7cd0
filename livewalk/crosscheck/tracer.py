# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Tracer
------

Loads ``bpf/walktrace.c`` with bcc (compiled once per run), attaches a
kprobe and a kretprobe to every walker entry point the running kernel has,
and to the callback functions of the ops structs the triggers use, and
collects the ring buffer's records while a trigger runs.

Callback functions are resolved from the ops structs: statically allocated
ops (``pagemap_ops``, ``smaps_walk_ops``...) are read with drgn before the
trigger; every traced walk's ops struct is also read by BPF at the entry
point, so a walk whose ops has a callback that is not attached is detected
(the trigger is then run again with it attached). Function addresses are
mapped to names through drgn's symbol table (kallsyms); a name must be
unique to be attached (bcc attaches by name).
"""

from __future__ import annotations

import ctypes
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from livewalk.crosscheck.helper import syscall_number
from livewalk.crosscheck.model import (
    ENTRY_POINTS,
    MAX_OPS_WORDS,
    SLOTS,
    TraceAssembly,
    assemble,
    decode_event,
)
from livewalk.errors import LivewalkError
from livewalk.kernel import KernelFeatures

__all__ = ("Tracer", "TracerError", "bpf_source_path")

#: Ring buffer size in pages (32 MiB with 4K pages); records are drained
#: while a trigger runs.
RINGBUF_PAGES = 8192

#: The most the ring buffer is grown to (:meth:`Tracer.ringbuf_pages_for`), in bytes.
RINGBUF_MAX_BYTES = 1 << 30

#: Bytes a record takes in the ring buffer, at most: a ``callback_ev`` and
#: the ring buffer's 8-byte header.
RECORD_BYTES = 104


class TracerError(LivewalkError):
    """The BPF tracer could not be set up."""


def bpf_source_path() -> Path:
    """
    Where ``walktrace.c`` is: in ``$LIVEWALK_BPF_DIR`` if set, else the copy
    installed with the package (``livewalk/bpf/``, package data mapped from
    the repository's ``bpf/``), else ``bpf/`` of the source tree this module
    runs from (a checkout, an editable install, or the guest's ``/src``).
    """
    import importlib.resources

    d = os.environ.get("LIVEWALK_BPF_DIR")
    if d:
        return Path(d) / "walktrace.c"
    installed = importlib.resources.files("livewalk") / "bpf" / "walktrace.c"
    if installed.is_file():
        return Path(str(installed))
    return Path(__file__).resolve().parents[2] / "bpf" / "walktrace.c"


def struct_offsets(prog: Any, features: KernelFeatures) -> dict[str, int]:
    """
    The structure offsets ``bpf/walktrace.c`` needs, from the kernel's debug
    info (so the BPF program needs no kernel headers); the ``struct
    mm_walk_ops`` layout is the one *features* probed.
    """
    import drgn

    lock = features.walk_ops_walk_lock_offset

    def off(type_name: str, member: str) -> int:
        try:
            return int(drgn.offsetof(prog.type(type_name), member))
        except LookupError as e:
            raise TracerError(f"no {type_name}.{member} in the kernel's debug info") from e

    return {
        "OFF_VMA_START": off("struct vm_area_struct", "vm_start"),
        "OFF_VMA_END": off("struct vm_area_struct", "vm_end"),
        "OFF_VMA_MM": off("struct vm_area_struct", "vm_mm"),
        "OFF_WALK_VMA": off("struct mm_walk", "vma"),
        "OFF_WALK_ACTION": off("struct mm_walk", "action"),
        "OFF_OPS_WALK_LOCK": -1 if lock is None else lock,
        "OPS_WORDS": ops_words(features),
    }


def ops_words(features: KernelFeatures) -> int:
    """
    How many u64 words of ``struct mm_walk_ops`` hold its callbacks (what
    the BPF program copies at each walk's start).

    :raises TracerError: when the layout is unknown or does not fit the record
    """
    layout = features.walk_ops_callbacks
    if not layout:
        raise TracerError("no struct mm_walk_ops callbacks in the kernel's debug info")
    n = max(off for _, off in layout) // 8 + 1
    if n > MAX_OPS_WORDS or any(off % 8 for _, off in layout):
        raise TracerError(f"struct mm_walk_ops has an unexpected layout: {layout}")
    return n


class Tracer:
    """
    The BPF side of the crosscheck.

    :param prog: the drgn program of the running kernel (for symbols)
    :param features: what that kernel has (the ops layout, the entry points)
    :ivar missing_entry_points: entry points not in this kernel (not traced)
    :ivar missing_callbacks: ``mm_walk_ops`` members not in this kernel
    :ivar attached: callback function address -> (name, slot)
    """

    def __init__(self, prog: Any, features: KernelFeatures, *, ringbuf_pages: int = RINGBUF_PAGES) -> None:
        try:
            from bcc import BPF
        except ImportError as e:
            raise TracerError(f"cannot import bcc ({e}): install python3-bpfcc") from e
        src = bpf_source_path()
        try:
            text = src.read_text()
        except OSError as e:
            raise TracerError(f"cannot read the BPF program {src}: {e.strerror}") from e
        self.prog = prog
        self.features = features
        self.ringbuf_pages = ringbuf_pages
        #: records received by the last :meth:`trace`
        self.received = 0
        self.layout = features.walk_ops_callbacks
        self.slots = frozenset(name for name, _ in self.layout)
        self.missing_callbacks = [s for s in SLOTS if s not in self.slots]
        offsets = struct_offsets(prog, features)
        cflags = [f"-DRINGBUF_PAGES={ringbuf_pages}", *(f"-D{k}={v}" for k, v in offsets.items())]
        try:
            self.bpf = BPF(text=text, cflags=cflags)
        except Exception as e:  # bcc raises plain Exception on compile/load errors
            raise TracerError(f"cannot load {src.name}: {e}") from e
        self.missing_entry_points: list[str] = []
        self.entry_points: list[str] = []
        self.unattachable_entry_points: dict[str, str] = {}
        for ep in ENTRY_POINTS.values():
            if not features.has_entry_point(ep.name):
                self.missing_entry_points.append(ep.name)
                continue
            if self._unique_symbol(ep.name) is None:
                self.unattachable_entry_points[ep.name] = "not a unique symbol"
                continue
            try:
                self.bpf.attach_kprobe(event=ep.name, fn_name=f"kp_{ep.name}")
                self.bpf.attach_kretprobe(event=ep.name, fn_name=f"kr_{ep.name}", maxactive=64)
            except Exception as e:
                self.unattachable_entry_points[ep.name] = " ".join(str(e).split())
                continue
            self.entry_points.append(ep.name)
        self.attached: dict[int, tuple[str, str]] = {}
        self.unattachable: dict[int, str] = {}
        self._records: list[bytes] = []
        self.bpf["events"].open_ring_buffer(self._on_event)
        self._info_layout: tuple[int, int] | None = None

    def close(self) -> None:
        """Detach every probe and free the BPF program and its maps."""
        self.bpf.cleanup()

    @staticmethod
    def ringbuf_pages_for(records: int, page_size: int) -> int:
        """
        Ring-buffer pages (a power of two) that hold *records* records
        without draining, up to :data:`RINGBUF_MAX_BYTES`: what a trigger
        that lost records needs to run again without loss (arm64's ptdump
        walks the linear map page by page with ``rodata=full``: a million
        ``pte_entry`` calls with 4 GiB of RAM).
        """
        need = -(-records * RECORD_BYTES // page_size)
        pages = 1 << max(0, need - 1).bit_length()
        return min(pages, RINGBUF_MAX_BYTES // page_size)

    # -- symbols --------------------------------------------------------------

    def _unique_symbol(self, name: str) -> int | None:
        try:
            syms = self.prog.symbols(name)
        except (LookupError, AttributeError):
            syms = []
        if not syms:
            try:
                return int(self.prog.symbol(name).address)
            except LookupError:
                return None
        addrs = {int(s.address) for s in syms}
        return addrs.pop() if len(addrs) == 1 else None

    def symbol_name(self, addr: int) -> str:
        """The name of the function containing *addr* (``"0x..."`` if unknown)."""
        try:
            return str(self.prog.symbol(addr).name)
        except LookupError:
            return f"{addr:#x}"

    def ops_callbacks(self, ops_symbol: str) -> dict[str, int]:
        """The callback pointers (slot -> address) of a static ``mm_walk_ops``."""
        try:
            ops = self.prog[ops_symbol]
        except KeyError:
            return {}
        out = {}
        for slot, _ in self.layout:
            v = int(ops.member_(slot).value_())
            if v:
                out[slot] = v
        return out

    # -- attaching callbacks ------------------------------------------------------

    def attach_callback(self, addr: int, slot: str) -> bool:
        """Attach the kprobe for *slot* and the shared kretprobe to the function at *addr*."""
        if addr in self.attached:
            return self.attached[addr][1] == slot
        if addr in self.unattachable:
            return False
        name = self.symbol_name(addr)
        if slot not in self.slots:
            self.unattachable[addr] = f"{name}: struct mm_walk_ops has no {slot} in this kernel"
            return False
        if self._unique_symbol(name) != addr:
            self.unattachable[addr] = f"{name}: not a unique symbol"
            return False
        try:
            self.bpf.attach_kprobe(event=name, fn_name=f"kp_cb_{slot}")
            self.bpf.attach_kretprobe(event=name, fn_name="kr_callback", maxactive=64)
        except Exception as e:
            self.unattachable[addr] = f"{name}: {e}"
            return False
        self.attached[addr] = (name, slot)
        return True

    def attach_names(self, pairs: Iterable[tuple[str, str]]) -> list[str]:
        """Attach callback functions given as ``(function name, slot)``; returns failures."""
        bad = []
        for name, slot in pairs:
            addr = self._unique_symbol(name)
            if addr is None or not self.attach_callback(addr, slot):
                bad.append(name)
        return bad

    def attach_ops(self, ops_symbols: Iterable[str]) -> list[str]:
        """Attach every callback of these static ops structs; returns failures."""
        bad = []
        for sym in ops_symbols:
            for slot, addr in self.ops_callbacks(sym).items():
                if not self.attach_callback(addr, slot):
                    bad.append(f"{sym}.{slot}")
        return bad

    def untraced_callbacks(self, walks: Iterable[Any]) -> list[tuple[int, str]]:
        """Callbacks of traced walks' ops that have no probe: ``(address, slot)``."""
        out = []
        for w in walks:
            for slot, addr in zip(SLOTS, w.callbacks):
                if addr and addr not in self.attached:
                    out.append((addr, slot))
        return out

    # -- running -----------------------------------------------------------------

    def _on_event(self, ctx: Any, data: Any, size: int) -> None:
        self._records.append(ctypes.string_at(data, size))

    def _set(self, table: str, key: int, value: int, ktype: Any = ctypes.c_int, vtype: Any = ctypes.c_ulonglong) -> None:
        self.bpf[table][ktype(key)] = vtype(value)

    def lost(self) -> int:
        """
        Events lost so far: ring-buffer reservation failures (all CPUs) plus
        runs of our BPF programs the kernel skipped (``recursion_misses`` of
        each program: a probe that fired while another BPF program ran on
        that CPU).
        """
        t = self.bpf["lost"]
        return int(sum(t[ctypes.c_int(0)])) + self.recursion_misses()

    def recursion_misses(self) -> int:
        """Sum of ``bpf_prog_info.recursion_misses`` over the loaded programs (0 if unknown)."""
        import drgn

        if self._info_layout is None:
            try:
                t = self.prog.type("struct bpf_prog_info")
                self._info_layout = (int(drgn.offsetof(t, "recursion_misses")), int(drgn.sizeof(t)))
            except LookupError:
                self._info_layout = (-1, 0)
        off, size = self._info_layout
        if off < 0:
            return 0
        total = 0
        try:
            nr_bpf = syscall_number("bpf")
        except OSError:
            return 0
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        for fn in list(self.bpf.funcs.values()):
            buf = ctypes.create_string_buffer(size)
            # union bpf_attr, BPF_OBJ_GET_INFO_BY_FD: bpf_fd, info_len, info
            attr = ctypes.create_string_buffer(struct.pack("<IIQ", fn.fd, size, ctypes.addressof(buf)), 16)
            if libc.syscall(ctypes.c_long(nr_bpf), 15, attr, 16) == 0:  # BPF_OBJ_GET_INFO_BY_FD
                total += int.from_bytes(buf.raw[off : off + 8], "little")
        return total

    def trace(self, pids: Iterable[int], action: Callable[[], Any]) -> tuple[TraceAssembly, int, Any]:
        """
        Run *action* with tracing enabled for the processes *pids*; return
        the assembled walks, the number of records lost meanwhile, and what
        *action* returned. Records are drained while *action* runs (in a
        thread).
        """
        pid_tab = self.bpf["pids"]
        pid_tab.clear()
        for p in pids:
            pid_tab[ctypes.c_uint(p)] = ctypes.c_ubyte(1)
        self._records = []
        lost0 = self.lost()
        result: list[Any] = []
        error: list[BaseException] = []

        def run() -> None:
            try:
                result.append(action())
            except BaseException as e:  # re-raised in the caller's thread
                error.append(e)

        self._set("cfg", 0, 1)
        t = threading.Thread(target=run, name="livewalk-trigger")
        t.start()
        try:
            while t.is_alive():
                self.bpf.ring_buffer_poll(50)
            t.join()
        finally:
            self._set("cfg", 0, 0)
        # let walks that already started finish, then drain
        time.sleep(0.05)
        self.bpf.ring_buffer_consume()
        lost = self.lost() - lost0
        if error:
            raise error[0]
        self.received = len(self._records)
        asm = assemble(decode_event(r, self.layout) for r in self._records)
        self._records = []
        return asm, lost, (result[0] if result else None)
