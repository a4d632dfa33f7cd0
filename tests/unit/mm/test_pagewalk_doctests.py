# SPDX-License-Identifier: LGPL-2.1-or-later
"""The ``>>>`` examples in the walker's and the arch seam's modules must run."""

from __future__ import annotations

import doctest

import pytest

import livewalk.arch
import livewalk.arch.x86.pgprot
import livewalk.arch.x86.pgtable
import livewalk.arch.x86.pgtable_64
import livewalk.arch.x86.pgtable_types
import livewalk.backend.synthetic
import livewalk.consistency
import livewalk.consistency.ranges
import livewalk.consistency.walk
import livewalk.mm.entry
import livewalk.mm.folio_walk
import livewalk.mm.overlay
import livewalk.mm.pagewalk
import livewalk.mm.swapops


@pytest.mark.parametrize(
    "mod",
    [
        livewalk.arch,
        livewalk.arch.x86.pgprot,
        livewalk.arch.x86.pgtable,
        livewalk.arch.x86.pgtable_64,
        livewalk.arch.x86.pgtable_types,
        livewalk.mm.entry,
        livewalk.backend.synthetic,
        livewalk.consistency,
        livewalk.consistency.ranges,
        livewalk.consistency.walk,
        livewalk.mm.folio_walk,
        livewalk.mm.overlay,
        livewalk.mm.pagewalk,
        livewalk.mm.swapops,
    ],
    ids=lambda m: m.__name__,
)
def test_doctests(mod: object) -> None:
    res = doctest.testmod(mod)  # type: ignore[arg-type]
    assert res.attempted > 0
    assert res.failed == 0
