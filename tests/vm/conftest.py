# SPDX-License-Identifier: LGPL-2.1-or-later
"""Fixtures for the tests that boot the QEMU test VM: those of the livewalk
pytest plugin (livewalk/testing/plugin.py), under this suite's names.

- ``guest5``: a guest with 5-level paging, ``guest4``: with 4-level paging.
  Session-scoped: each boots once, on first use, and is stopped at the end of
  the session. A boot that fails (after vm's own retries) errors the tests
  that use it without booting again.
- ``guest``: parametrized over both (ids ``l5`` and ``l4``).
- ``livewalk_guest`` (the plugin's): ``--livewalk-paging`` (default 5) or the
  test's ``livewalk_vm`` marker.

Every test collected under tests/vm/ gets the ``vm`` marker, so
``pytest -m "not vm"`` runs the host-only tests alone.
"""

from __future__ import annotations

import os

import pytest
from livewalk.vm import Guest

from livewalk.testing import GuestKey
from livewalk.testing.plugin import session_guest

HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if str(item.path).startswith(HERE + os.sep):
            item.add_marker(pytest.mark.vm)


@pytest.fixture(scope="session")
def guest5(request: pytest.FixtureRequest) -> Guest:
    """The 5-level-paging guest (booted once per session)."""
    return session_guest(request, GuestKey(levels=5))


@pytest.fixture(scope="session")
def guest4(request: pytest.FixtureRequest) -> Guest:
    """The 4-level-paging guest (booted once per session)."""
    return session_guest(request, GuestKey(levels=4))


@pytest.fixture(params=[5, 4], ids=["l5", "l4"])
def guest(request: pytest.FixtureRequest) -> Guest:
    """Each paging mode's session guest in turn."""
    g: Guest = request.getfixturevalue(f"guest{request.param}")
    return g
