# SPDX-License-Identifier: LGPL-2.1-or-later
"""The ``>>>`` examples in the walker's modules must run."""

from __future__ import annotations

import doctest

import pytest

import livewalk.arch.x86.pgtable
import livewalk.backend.synthetic
import livewalk.mm.entry
import livewalk.mm.folio_walk
import livewalk.mm.pagewalk


@pytest.mark.parametrize(
    "mod", [livewalk.arch.x86.pgtable, livewalk.mm.entry, livewalk.backend.synthetic, livewalk.mm.pagewalk, livewalk.mm.folio_walk]
)
def test_doctests(mod: object) -> None:
    res = doctest.testmod(mod)  # type: ignore[arg-type]
    assert res.attempted > 0
    assert res.failed == 0
