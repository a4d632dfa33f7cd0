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
from .consistency import *  # noqa: F403
from .consistency import __all__ as _consistency_all
from .drgn_backend import *  # noqa: F403
from .drgn_backend import __all__ as _drgn_backend_all
from .drgn_plugin import *  # noqa: F403
from .drgn_plugin import __all__ as _drgn_plugin_all
from .entry import *  # noqa: F403
from .entry import __all__ as _entry_all
from .errors import *  # noqa: F403
from .errors import __all__ as _errors_all
from .folio_walk import *  # noqa: F403
from .folio_walk import __all__ as _folio_walk_all
from .kstate import *  # noqa: F403
from .kstate import __all__ as _kstate_all
from .pagemap import *  # noqa: F403
from .pagemap import __all__ as _pagemap_all
from .pagewalk import *  # noqa: F403
from .pagewalk import __all__ as _pagewalk_all
from .ptdump import *  # noqa: F403
from .ptdump import __all__ as _ptdump_all
from .smaps import *  # noqa: F403
from .smaps import __all__ as _smaps_all
from .synthetic import *  # noqa: F403
from .synthetic import __all__ as _synthetic_all
from .target import *  # noqa: F403
from .target import __all__ as _target_all
from .vtop import *  # noqa: F403
from .vtop import __all__ as _vtop_all
from .x86 import *  # noqa: F403
from .x86 import __all__ as _x86_all

__all__ = (*_backend_all, *_x86_all, *_entry_all, *_pagewalk_all, *_synthetic_all, *_folio_walk_all, *_kstate_all, *_smaps_all, *_errors_all, *_target_all, *_vtop_all, *_ptdump_all, *_drgn_plugin_all, *_drgn_backend_all, *_pagemap_all, *_consistency_all)
