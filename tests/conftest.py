# SPDX-License-Identifier: LGPL-2.1-or-later
"""The test suite runs this checkout's livewalk, ``livewalk.vm`` (from vm/)
and pytest plugin, installed or not.

``scripts/setup-host`` installs the checkout in editable mode (``livewalk.vm``
then resolves to vm/ and the plugin comes in by its ``pytest11`` entry
point). A checkout run without that (a fresh clone, a second work tree) maps
vm/ by path and loads the plugin here.
"""

import os
import runpy
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # tests.workloads, bench

runpy.run_path(os.path.join(ROOT, "vm", "checkout.py"))["load_checkout_vm"]()

from livewalk.testing import PLUGIN, plugin_installed  # noqa: E402

pytest_plugins = ["pytester"]
if not plugin_installed() or os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
    pytest_plugins.append(PLUGIN)
