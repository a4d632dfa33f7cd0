# SPDX-License-Identifier: LGPL-2.1-or-later
"""Use a checkout's ``vm/`` as ``livewalk.vm`` without installing livewalk.

An install (``pip install .`` or ``-e .``) maps ``vm/`` to ``livewalk.vm``;
a checkout that is not the installed one (a fresh clone, a second work tree)
runs ``vm/build``, ``vm/run``, the benchmark and its tests through this.
It needs only the standard library and runs by path as well as imported:

>>> import runpy
>>> vm = runpy.run_path("vm/checkout.py")["load_checkout_vm"]()  # doctest: +SKIP
>>> vm.Guest  # doctest: +SKIP
<class 'livewalk.vm.guest.Guest'>
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ("load_checkout_vm",)


def load_checkout_vm() -> ModuleType:
    """Import ``livewalk`` and ``livewalk.vm`` from the checkout holding this
    file (its root goes first on ``sys.path``) and return ``livewalk.vm``."""
    vm_dir = Path(__file__).resolve().parent
    root = str(vm_dir.parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    init = vm_dir / "__init__.py"
    loaded = sys.modules.get("livewalk.vm")
    if loaded is not None:
        if Path(str(loaded.__file__)).resolve() == init:
            return loaded
        raise ImportError(f"livewalk.vm is already imported from {loaded.__file__}, not {vm_dir}")
    spec = importlib.util.find_spec("livewalk.vm")
    if spec is not None and spec.origin is not None and Path(spec.origin).resolve() == init:
        return importlib.import_module("livewalk.vm")  # installed from this checkout
    spec = importlib.util.spec_from_file_location(
        "livewalk.vm", init, submodule_search_locations=[str(vm_dir)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["livewalk.vm"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["livewalk.vm"]
        raise
    return module
