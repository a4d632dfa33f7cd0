#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Guest side of the demo's host comparison: the kernel's own pagemap and smaps.

``proc_snapshot.py PID DIR``: write DIR/before.json, wait for DIR/go, write
DIR/after.json. The same process stays alive between the two reads (and
while the host reads the guest over QMP), so the reader's own mappings
(libc, python) are the same in both reads and in livewalk's.
"""

import base64
import json
import os
import sys
import time


def snapshot(pid: int) -> dict[str, object]:
    with open(f"/proc/{pid}/maps") as f:
        maps = [tuple(int(x, 16) for x in line.split()[0].split("-")) for line in f]
    fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
    try:
        pm = {
            f"{s:x}-{e:x}": base64.b64encode(os.pread(fd, (e - s) // 4096 * 8, s // 4096 * 8)).decode()
            for s, e in maps
        }
    finally:
        os.close(fd)
    with open(f"/proc/{pid}/smaps") as f:
        return {"pagemap": pm, "smaps": f.read()}


def write(path: str, data: object) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.rename(path + ".tmp", path)


def main() -> None:
    pid, d = int(sys.argv[1]), sys.argv[2]
    os.makedirs(d, exist_ok=True)
    write(os.path.join(d, "before.json"), snapshot(pid))
    deadline = time.monotonic() + 1800
    while not os.path.exists(os.path.join(d, "go")) and time.monotonic() < deadline:
        time.sleep(0.2)
    write(os.path.join(d, "after.json"), snapshot(pid))


if __name__ == "__main__":
    main()
