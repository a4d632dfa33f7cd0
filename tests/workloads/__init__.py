# SPDX-License-Identifier: LGPL-2.1-or-later
"""Sample workloads run in the test VM (stdlib-only scripts).

- ``mappings.py``: a process with many kinds of mappings, then idle.
- ``procdump.py``: the kernel's own smaps/pagemap/kpageflags view of it.
"""
