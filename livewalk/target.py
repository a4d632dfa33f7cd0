# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Targets (old import path)
-------------------------

Kept so that ``from livewalk.target import open_program, find_mm`` goes on
working: opening a program is :mod:`livewalk.program`, finding a task's mm
is :mod:`livewalk.task`.

>>> from livewalk.target import find_mm, open_program
"""

from livewalk.program import open_program
from livewalk.task import PF_KTHREAD, find_mm, resolve_mm, task_of, to_mm

__all__ = ("PF_KTHREAD", "find_mm", "open_program", "resolve_mm", "task_of", "to_mm")
