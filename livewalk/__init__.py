# SPDX-License-Identifier: LGPL-2.1-or-later
"""
livewalk
========

The Linux kernel's page-table walker (``mm/pagewalk.c``), reimplemented in
Python, run over the page tables of real kernels read with drgn.

``from livewalk import *`` gives the walker API (mirroring
``include/linux/pagewalk.h``) and the tools built on it.
"""

from .backend import *  # noqa: F403
from .backend import __all__ as _backend_all
from .x86 import *  # noqa: F403
from .x86 import __all__ as _x86_all

__all__ = (*_backend_all, *_x86_all)
