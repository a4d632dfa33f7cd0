# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Architectures
-------------

The architecture seam: one subpackage per architecture (:mod:`livewalk.arch.x86`),
and the few constants every architecture shares.

>>> from livewalk.arch import ULONG_MAX
>>> hex(ULONG_MAX)
'0xffffffffffffffff'
"""

__all__ = ("ULONG_MAX",)

#: ``ULONG_MAX`` of a 64-bit kernel: the mask that keeps address arithmetic
#: modular, as C's ``unsigned long`` is.
ULONG_MAX = (1 << 64) - 1
