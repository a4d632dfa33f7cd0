# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Architectures
-------------

The architecture seam: what every architecture shares, and one subpackage
per architecture (:mod:`livewalk.arch.x86`).

>>> hex(ULONG_MAX)
'0xffffffffffffffff'
"""

__all__ = ("ULONG_MAX",)

#: ``ULONG_MAX`` of a 64-bit kernel: the mask of a 64-bit value.
ULONG_MAX = 0xFFFF_FFFF_FFFF_FFFF
