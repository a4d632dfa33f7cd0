# SPDX-License-Identifier: LGPL-2.1-or-later
"""The host end of the guest agent's channel (vm/agent.py): JSON lines over
the virtio-serial port, one request at a time, each answered by its ``id``.

>>> ch = AgentChannel(lambda: True, lambda: "")
>>> ch.connect("/tmp/lwvm-x/agent.sock")  # doctest: +SKIP
>>> ch.request({"op": "ping"}, 30)["op"]  # doctest: +SKIP
'pong'
"""

from __future__ import annotations

import itertools
import json
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import GuestError

__all__ = ("AgentChannel",)

Message = dict[str, Any]


class AgentChannel:
    """Requests to the guest agent and their answers.

    :param alive: whether QEMU still runs (checked while waiting)
    :param tail: the end of the console and QEMU logs, for error messages
    """

    def __init__(self, alive: Callable[[], bool], tail: Callable[[], str]) -> None:
        self._alive = alive
        self._tail = tail
        self._sock: socket.socket | None = None
        self._buf = b""
        self.ids = itertools.count(1)
        #: Held for each request (and by :meth:`Guest.dump_vmcore`).
        self.lock = threading.RLock()

    def connect(self, path: str) -> bool:
        """Connect to the agent's socket; False if QEMU has not made it yet."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
        except OSError:
            s.close()
            return False
        self._sock = s
        self._buf = b""
        return True

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def send(self, msg: Message) -> None:
        if self._sock is None:
            raise GuestError("guest not running")
        try:
            self._sock.sendall((json.dumps(msg) + "\n").encode())
        except OSError as e:
            raise GuestError(f"lost the guest agent: {e}") from e

    def recv(self, timeout: float) -> Message | None:
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

    def request(
        self, msg: Message, timeout: float, on_msg: Callable[[Message], bool] | None = None
    ) -> Message:
        """Send a request and return its final answer; ``on_msg`` sees
        intermediate messages and returns True for the final one."""
        with self.lock:
            rid = next(self.ids)
            self.send({**msg, "id": rid})
            end = time.monotonic() + timeout
            try:
                while True:
                    left = end - time.monotonic()
                    if left <= 0:
                        raise GuestError(
                            f"the guest agent did not answer {msg.get('op')} in {timeout:.0f} s"
                        )
                    m = self.recv(min(left, 2.0))
                    if m is None:
                        if not self._alive():
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
                if msg.get("op") == "run" and self._alive():
                    try:
                        self.send({"op": "cancel", "id": next(self.ids)})
                    except GuestError:
                        pass
                raise
