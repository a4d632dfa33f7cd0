# SPDX-License-Identifier: LGPL-2.1-or-later
"""
arm64 memory types
------------------

The memory types of Linux 7.2 ``arch/arm64/include/asm/memory.h``: the
``MT_*`` indexes into ``MAIR_EL1`` that a descriptor's ``AttrIndx`` field
(bits 4:2) holds. Their one home; the names that vtop and ptdump print are
derived from them.

>>> MEMORY_TYPE_NAMES[MT_DEVICE_nGnRnE]
'MT_DEVICE_nGnRnE'
>>> from livewalk.arch.arm64.pgtable_hwdef import pte_attrindx
>>> hex(pte_attrindx(MT_NORMAL_NC))
'0x8'
"""

from __future__ import annotations

__all__ = (
    "MEMORY_TYPE_NAMES",
    "MT_DEVICE_nGnRE",
    "MT_DEVICE_nGnRnE",
    "MT_NORMAL",
    "MT_NORMAL_NC",
    "MT_NORMAL_TAGGED",
)

MT_NORMAL = 0
MT_NORMAL_TAGGED = 1
MT_NORMAL_NC = 2
MT_DEVICE_nGnRnE = 3
MT_DEVICE_nGnRE = 4

#: Each ``MT_*`` index by the name of its macro.
MEMORY_TYPE_NAMES: dict[int, str] = {
    value: name for name, value in sorted(globals().items()) if name.startswith("MT_") and isinstance(value, int)
}
