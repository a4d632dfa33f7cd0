# SPDX-License-Identifier: LGPL-2.1-or-later
"""``python3 -m livewalk.crosscheck --pid PID [--trigger NAME ...]``."""
import sys

from livewalk.crosscheck import main

sys.exit(main())
