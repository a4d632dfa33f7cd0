# SPDX-License-Identifier: LGPL-2.1-or-later
"""
arm64
-----

The arm64 side of the arch seam (:class:`livewalk.arch.ArchPaging`), one
module per kernel header it mirrors: :mod:`.pgtable_hwdef`
(``asm/pgtable-hwdef.h``: descriptor bits and the geometry of each granule),
:mod:`.pgtable_prot` (``asm/pgtable-prot.h`` and ``arch/arm64/mm/mmap.c``:
software bits and ``protection_map``) and :mod:`.pgtable`
(``asm/pgtable.h``, ``arch/arm64/mm/contpte.c`` and ``hugetlbpage.c``:
:class:`.pgtable.Arm64Paging`, the geometry of every granule and level count
including the levels folded at boot, the predicates, the swap layout, the
contiguous-PTE fold of ``ptep_get()`` and ``huge_ptep_get()``, and the
contiguous blocks ``set_ptes()`` makes).
"""
