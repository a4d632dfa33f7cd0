# SPDX-License-Identifier: LGPL-2.1-or-later
"""The ``>>>`` examples in the walker's modules must run."""

from __future__ import annotations

import doctest

import pytest

import livewalk.entry
import livewalk.folio_walk
import livewalk.pagewalk
import livewalk.synthetic
import livewalk.x86


@pytest.mark.parametrize(
    "mod", [livewalk.x86, livewalk.entry, livewalk.synthetic, livewalk.pagewalk, livewalk.folio_walk]
)
def test_doctests(mod: object) -> None:
    res = doctest.testmod(mod)  # type: ignore[arg-type]
    assert res.attempted > 0
    assert res.failed == 0
