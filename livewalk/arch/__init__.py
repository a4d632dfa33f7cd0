# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Architectures
-------------

What every architecture shares; the page-table bits and predicates live in
``livewalk.arch.<arch>``.

>>> hex(ULONG_MAX)
'0xffffffffffffffff'
"""

__all__ = ("ULONG_MAX",)

#: ``ULONG_MAX`` of a 64-bit kernel: the mask of one page-table entry.
ULONG_MAX = (1 << 64) - 1
