# SPDX-License-Identifier: LGPL-2.1-or-later
"""Host-only tests. Their shared recorder (``walkrec``) lives here."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
