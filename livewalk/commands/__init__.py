# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Commands
--------

livewalk's commands for the drgn prompt (drgn 0.3's ``drgn.commands``
framework) and the ``livewalk`` command line: :mod:`livewalk.commands.crash`
holds crash's ``vtop``, ``vm -p`` and ``pte`` done with livewalk's walker,
and the "who maps this page" search.
"""
