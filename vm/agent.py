# SPDX-License-Identifier: LGPL-2.1-or-later
"""livewalk test VM: the guest agent (runs inside the guest, as root).

The host passes this file in through fw_cfg and vm/guest_init.sh runs it. It
speaks JSON lines over the virtio-serial port named ``livewalk.agent``; each
request has an ``id`` and an ``op``:

- ``ping`` -> ``pong`` with ``release`` (uname -r), ``machine`` (uname -m),
  ``levels`` (the page-table levels the kernel runs with: 4 or 5 on x86-64
  and on arm64 with 4K pages) and ``uptime``.
- ``run`` (``cmd``, optional ``timeout``, ``cwd``, ``env``, ``input`` base64)
  runs ``/bin/sh -c cmd`` in its own session and streams ``out`` messages
  (``fd`` 1 or 2, ``data`` base64), then ``exit`` (``status``: the exit code,
  or minus the signal number; ``timed_out``).
- ``spawn`` (``cmd``) starts a background process (``/bin/bash -c cmd``,
  setsid, output to a log file) and answers ``spawned`` with its ``pid`` and ``log``.
- ``get`` (``path``) / ``put`` (``path``, ``data`` base64, ``mode``) copy a
  file out of / into the guest.
- ``shutdown`` syncs, unmounts /out, answers ``ok`` and powers the guest off.
- ``cancel`` answers ``ok``. Sent while a ``run`` is going, ``cancel`` or
  ``shutdown`` kills that command first (its ``exit`` has ``cancelled``).

Errors answer ``error`` with a message. Only the standard library is used (it
runs on the guest's Python).
"""

import base64
import ctypes
import glob
import json
import os
import selectors
import signal
import subprocess
import sys
import time

PORT_NAME = "livewalk.agent"


def user_va_bits():
    """The bits of the user address space, from the highest address a
    mapping can be placed at (MAP_FIXED_NOREPLACE; arm64 hands out addresses
    above 48 bits only when asked for them)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    page = os.sysconf("SC_PAGE_SIZE")
    prot_none, map_private_anonymous, map_fixed_noreplace = 0, 0x22, 0x100000
    for bits in (56, 52, 48, 47, 42, 39, 36):
        addr = 1 << (bits - 1)
        got = libc.mmap(addr, page, prot_none, map_private_anonymous | map_fixed_noreplace, -1, 0)
        if got is not None and got != ctypes.c_void_p(-1).value:
            libc.munmap(got, page)
            if got == addr:
                return bits
    return 0


def paging_levels():
    """The page-table levels the kernel runs with: x86-64 has 5 with LA57;
    arm64's follow from the page size and the VA bits (each level resolves
    PAGE_SHIFT - 3 bits), as the kernel's ARM64_HW_PGTABLE_LEVELS."""
    if os.uname().machine == "x86_64":
        with open("/proc/cpuinfo") as f:
            la57 = any(ln.startswith("flags") and " la57" in ln for ln in f)
        return 5 if la57 else 4
    shift = os.sysconf("SC_PAGE_SIZE").bit_length() - 1
    return -(-(user_va_bits() - shift) // (shift - 3))
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "TMPDIR": "/tmp",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONPATH": "/src",
    "PYTHONUNBUFFERED": "1",
}
CHUNK = 32768


def find_port():
    while True:
        for d in glob.glob("/sys/class/virtio-ports/*"):
            try:
                with open(os.path.join(d, "name")) as f:
                    if f.read().strip() == PORT_NAME:
                        return "/dev/" + os.path.basename(d)
            except OSError:
                pass
        time.sleep(0.1)


class Agent:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR)
        self.buf = b""
        self.spawned = []
        self.nspawn = 0

    # -- channel --
    def send(self, msg):
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def lines(self):
        sel = selectors.DefaultSelector()
        sel.register(self.fd, selectors.EVENT_READ)
        while True:
            self.reap()
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                if line.strip():
                    yield line
            if not sel.select(1.0):
                continue
            data = os.read(self.fd, 65536)
            if not data:
                # No host connected: the port reads as end of file.
                time.sleep(0.2)
                continue
            self.buf += data

    def reap(self):
        self.spawned = [p for p in self.spawned if p.poll() is None]

    # -- requests --
    def serve(self):
        for line in self.lines():
            try:
                req = json.loads(line)
            except ValueError:
                self.send({"op": "error", "id": None, "error": "bad json"})
                continue
            rid = req.get("id")
            try:
                getattr(self, "op_" + str(req.get("op")))(rid, req)
            except Exception as e:  # answer, never die
                self.send({"op": "error", "id": rid, "error": f"{type(e).__name__}: {e}"})

    def op_ping(self, rid, req):
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        self.send(
            {
                "op": "pong",
                "id": rid,
                "release": os.uname().release,
                "machine": os.uname().machine,
                "levels": paging_levels(),
                "uptime": uptime,
            }
        )

    def _env(self, req):
        env = dict(BASE_ENV)
        env.update(req.get("env") or {})
        return env

    def op_run(self, rid, req):
        stdin = subprocess.DEVNULL
        if req.get("input") is not None:
            path = f"/tmp/.livewalk-stdin-{rid}"
            with open(path, "wb") as f:
                f.write(base64.b64decode(req["input"]))
            stdin = open(path, "rb")
            os.unlink(path)
        t0 = time.monotonic()
        try:
            p = subprocess.Popen(
                ["/bin/sh", "-c", req["cmd"]],
                cwd=req.get("cwd") or "/src",
                env=self._env(req),
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        finally:
            if stdin is not subprocess.DEVNULL:
                stdin.close()
        timeout = req.get("timeout")
        deadline = None if timeout is None else t0 + float(timeout)
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ, 1)
        sel.register(p.stderr, selectors.EVENT_READ, 2)
        # Also watch the channel: a "cancel" or "shutdown" request kills the
        # command (the request itself is served once the command is gone).
        sel.register(self.fd, selectors.EVENT_READ, 0)
        timed_out = False
        cancelled = False
        exited_at = None
        pipes = 2
        while pipes:
            for key, _ in sel.select(0.5):
                if key.data == 0:
                    data = os.read(self.fd, 65536)
                    if not data:
                        sel.unregister(self.fd)  # no host connected
                        continue
                    self.buf += data
                    if not cancelled and self._cancel_requested():
                        cancelled = True
                        try:
                            os.killpg(p.pid, signal.SIGKILL)
                        except OSError:
                            pass
                    continue
                data = os.read(key.fd, CHUNK)
                if data:
                    self.send(
                        {"op": "out", "id": rid, "fd": key.data, "data": base64.b64encode(data).decode()}
                    )
                else:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
                    pipes -= 1
            now = time.monotonic()
            if deadline is not None and now > deadline and not timed_out:
                timed_out = True
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
            if exited_at is None and p.poll() is not None:
                exited_at = now
            # Background children may keep the pipes open: stop reading soon
            # after the command itself is gone.
            if exited_at is not None and now - exited_at > 2.0:
                for key in list(sel.get_map().values()):
                    if key.data in (1, 2):
                        sel.unregister(key.fileobj)
                        key.fileobj.close()
                        pipes -= 1
        sel.close()
        status = p.wait()
        os.sync()
        self.send(
            {
                "op": "exit",
                "id": rid,
                "status": status,
                "timed_out": timed_out,
                "cancelled": cancelled,
                "seconds": time.monotonic() - t0,
            }
        )

    def _cancel_requested(self):
        for line in self.buf.split(b"\n")[:-1]:
            try:
                if json.loads(line).get("op") in ("cancel", "shutdown"):
                    return True
            except (ValueError, AttributeError):
                pass
        return False

    def op_cancel(self, rid, req):
        self.send({"op": "ok", "id": rid})

    def op_spawn(self, rid, req):
        self.nspawn += 1
        log = f"/tmp/livewalk-spawn-{self.nspawn}.log"
        with open(log, "wb") as out:
            # bash runs a lone simple command in place (dash forks), so the
            # PID is the program's.
            p = subprocess.Popen(
                ["/bin/bash", "-c", req["cmd"]],
                cwd=req.get("cwd") or "/src",
                env=self._env(req),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.spawned.append(p)
        self.send({"op": "spawned", "id": rid, "pid": p.pid, "log": log})

    def op_get(self, rid, req):
        with open(req["path"], "rb") as f:
            data = f.read()
        self.send({"op": "file", "id": rid, "data": base64.b64encode(data).decode()})

    def op_put(self, rid, req):
        # Whole or not at all: a guest process polling for the file (a
        # test's request file) never sees it created but not yet written.
        path = req["path"]
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.lwput-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(base64.b64decode(req["data"]))
        os.chmod(tmp, int(req.get("mode", 0o644)))
        os.replace(tmp, path)
        self.send({"op": "ok", "id": rid})

    def op_shutdown(self, rid, req):
        for p in self.spawned:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
        os.sync()
        if subprocess.run(["umount", "/out"], stderr=subprocess.DEVNULL).returncode != 0:
            subprocess.run(["mount", "-o", "remount,ro", "/out"], stderr=subprocess.DEVNULL)
        os.sync()
        self.send({"op": "ok", "id": rid})
        time.sleep(0.2)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.reboot(0x4321FEDC)  # LINUX_REBOOT_CMD_POWER_OFF
        with open("/proc/sysrq-trigger", "w") as f:
            f.write("o")


def main():
    path = find_port()
    print(f"livewalk-agent: listening on {path}", file=sys.stderr, flush=True)
    Agent(path).serve()


if __name__ == "__main__":
    main()
