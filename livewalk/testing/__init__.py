# SPDX-License-Identifier: LGPL-2.1-or-later
"""
livewalk for VM-based integration tests: a pytest plugin (:mod:`.plugin`,
registered through the ``pytest11`` entry point) that boots the livewalk test
VM (:mod:`livewalk.vm`) and hands the guest to the tests, which run programs
there and assert, in the test process, on what livewalk reads of their memory
from the host.

>>> def test_arena_is_thp(livewalk_guest):  # doctest: +SKIP
...     pid = livewalk_guest.spawn("exec /tmp/arena", ready="READY")
...     assert all(v.anonymous_thp for v in livewalk_guest.smaps(pid) if "[heap]" in v.header)
"""

from __future__ import annotations

from importlib.metadata import entry_points

from livewalk.testing.pool import GuestKey, GuestPool, VMUnavailable

__all__ = ("PLUGIN", "GuestKey", "GuestPool", "VMUnavailable", "plugin_installed")

#: The plugin's module, for ``pytest -p`` when livewalk is not installed.
PLUGIN = "livewalk.testing.plugin"


def plugin_installed() -> bool:
    """Whether pytest finds the plugin by itself (livewalk installed with its
    ``pytest11`` entry point), so ``-p livewalk.testing.plugin`` must not be given."""
    return any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))
