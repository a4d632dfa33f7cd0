# SPDX-License-Identifier: LGPL-2.1-or-later
"""
pagemap's fast paths (whole vmemmap blocks decoded at once, small and large
folios; uniform PTE tables) against its page-by-page path, on a real Linux
dump on disk: every VMA of every process, entry by entry. Skipped without
one (``LIVEWALK_TEST_VMCORE`` and ``LIVEWALK_TEST_VMLINUX`` name it; by
default where a developer's earlier kdump run left one). The VM tests run
the same check on the kdump they make (``tests/vm/test_vm_kdump.py``).
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("drgn")

from tests.unit.proc.pagemap_paths import fast_paths_equal_page_by_page  # noqa: E402

_VMCORE = os.environ.get("LIVEWALK_TEST_VMCORE", "/tmp/kdump-out4/kdump/vmcore-0")
_VMLINUX = os.environ.get("LIVEWALK_TEST_VMLINUX", "/var/cache/livewalk-vm/current-x86_64-7/vmlinux")

pytestmark = pytest.mark.skipif(
    not (os.path.isfile(_VMCORE) and os.path.isfile(_VMLINUX)), reason="no kdump at hand"
)


def test_fast_paths_equal_page_by_page() -> None:
    fast_paths_equal_page_by_page(_VMCORE, _VMLINUX)
