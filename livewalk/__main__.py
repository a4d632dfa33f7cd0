# SPDX-License-Identifier: LGPL-2.1-or-later
"""``python3 -m livewalk``: the ``livewalk`` command (see :mod:`livewalk.cli`)."""

import sys

from livewalk.cli import main

sys.exit(main())
