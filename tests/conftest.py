# SPDX-License-Identifier: LGPL-2.1-or-later
import os
import sys

# Make the repository root importable (for the vm package) when pytest runs
# from a checkout.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
