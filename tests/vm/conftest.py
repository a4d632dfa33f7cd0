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
- ``fidelity_guest`` (module scope): the guests of the fidelity core, whose
  modules (pagemap, smaps, vtop, vmcore) compare livewalk with the kernel:
  the default kernel in both paging modes and each older series in one
  (:data:`FIDELITY_KEYS`); with ``LIVEWALK_KERNEL_MATRIX=full`` (``bash
  scripts/test --matrix``) every series in both.

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


def fidelity_keys(matrix: str = os.environ.get("LIVEWALK_KERNEL_MATRIX", "")) -> list[GuestKey]:
    """The default kernel in both paging modes, then each older series: in
    5-level paging for 6.1, 4-level for 6.12 (one mode each keeps CI short),
    both with *matrix* ``"full"``."""
    keys = [GuestKey(levels=5), GuestKey(levels=4)]
    for series, levels in (("6.1", 5), ("6.12", 4)):
        modes = (5, 4) if matrix == "full" else (levels,)
        keys += [GuestKey(kernel=series, levels=lv) for lv in modes]
    return keys


#: The guests the fidelity core runs on (see :func:`fidelity_keys`).
FIDELITY_KEYS = fidelity_keys()


@pytest.fixture(scope="module", params=FIDELITY_KEYS, ids=[k.id for k in FIDELITY_KEYS])
def fidelity_guest(request: pytest.FixtureRequest) -> Guest:
    """Each fidelity-core guest in turn, for a module's whole run."""
    return session_guest(request, request.param)


@pytest.fixture(params=[5, 4], ids=["l5", "l4"])
def guest(request: pytest.FixtureRequest) -> Guest:
    """Each paging mode's session guest in turn."""
    g: Guest = request.getfixturevalue(f"guest{request.param}")
    return g
