# SPDX-License-Identifier: LGPL-2.1-or-later
"""A recorder of walk callbacks for the walker's unit tests."""

from __future__ import annotations

from typing import Any

from livewalk.kernel import MM_WALK_CALLBACKS
from livewalk.mm.pagewalk import MMWalkOps

#: The callbacks recorded: every one of struct mm_walk_ops but install_pte.
ALL = tuple(name for name in MM_WALK_CALLBACKS if name != "install_pte")


class Rec:
    """
    Build MMWalkOps whose callbacks append tuples to ``self.log``:
    ``(name, addr, next)`` for p?d/pte entries, ``("pte_hole", addr, next,
    depth)``, ``("hugetlb_entry", addr, next, hmask)``, ``("test_walk",
    addr, next)``, ``("pre_vma", start, end)``, ``("post_vma",)``.
    *ret* maps a callback name to a return value or a function
    ``(args) -> value``; *entries* keeps the entry objects.
    """

    def __init__(self, names: tuple[str, ...] = ALL, ret: dict[str, Any] | None = None, **extra: Any) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.entries: list[Any] = []
        self.vmas: list[Any] = []
        self.actions: list[int] = []
        self.ret = ret or {}
        kw: dict[str, Any] = {}
        for n in names:
            kw[n] = getattr(self, "_" + n)
        kw.update(extra)
        self.ops = MMWalkOps(**kw)

    def _r(self, name: str, *args: Any) -> Any:
        r = self.ret.get(name, 0)
        return r(*args) if callable(r) else r

    def _entry(self, name: str, e: Any, addr: int, next: int, walk: Any) -> Any:
        self.log.append((name, addr, next))
        self.entries.append(e)
        self.vmas.append(walk.vma)
        self.actions.append(int(walk.action))
        return self._r(name, e, addr, next, walk)

    def _pgd_entry(self, e: Any, addr: int, next: int, walk: Any) -> Any:
        return self._entry("pgd_entry", e, addr, next, walk)

    def _p4d_entry(self, e: Any, addr: int, next: int, walk: Any) -> Any:
        return self._entry("p4d_entry", e, addr, next, walk)

    def _pud_entry(self, e: Any, addr: int, next: int, walk: Any) -> Any:
        return self._entry("pud_entry", e, addr, next, walk)

    def _pmd_entry(self, e: Any, addr: int, next: int, walk: Any) -> Any:
        return self._entry("pmd_entry", e, addr, next, walk)

    def _pte_entry(self, e: Any, addr: int, next: int, walk: Any) -> Any:
        return self._entry("pte_entry", e, addr, next, walk)

    def _pte_hole(self, addr: int, next: int, depth: int, walk: Any) -> Any:
        self.log.append(("pte_hole", addr, next, depth))
        self.entries.append(None)
        self.vmas.append(walk.vma)
        self.actions.append(int(walk.action))
        return self._r("pte_hole", addr, next, depth, walk)

    def _hugetlb_entry(self, e: Any, hmask: int, addr: int, next: int, walk: Any) -> Any:
        self.log.append(("hugetlb_entry", addr, next, hmask))
        self.entries.append(e)
        self.vmas.append(walk.vma)
        self.actions.append(int(walk.action))
        return self._r("hugetlb_entry", e, hmask, addr, next, walk)

    def _test_walk(self, addr: int, next: int, walk: Any) -> Any:
        self.log.append(("test_walk", addr, next))
        self.entries.append(None)
        self.vmas.append(walk.vma)
        self.actions.append(int(walk.action))
        return self._r("test_walk", addr, next, walk)

    def _pre_vma(self, start: int, end: int, walk: Any) -> Any:
        self.log.append(("pre_vma", start, end))
        self.entries.append(None)
        self.vmas.append(walk.vma)
        self.actions.append(int(walk.action))
        return self._r("pre_vma", start, end, walk)

    def _post_vma(self, walk: Any) -> None:
        self.log.append(("post_vma",))
        self.entries.append(None)
        self.vmas.append(walk.vma)
        self.actions.append(int(walk.action))

    def names(self) -> list[str]:
        return [t[0] for t in self.log]


def ptes(start: int, end: int) -> list[tuple[str, int, int]]:
    """The pte_entry records for every page of [start, end)."""
    return [("pte_entry", a, a + 4096) for a in range(start, end, 4096)]
