# SPDX-License-Identifier: LGPL-2.1-or-later
"""The livewalk test VM: a Debian sid guest with the 7.x cloud kernel under QEMU.

>>> from vm import Guest
>>> with Guest(levels=5) as g:
...     print(g.run("uname -r").stdout)

Only the standard library is needed to import this package (drgn only for
:meth:`Guest.host_program`).
"""

from .guest import BootError, Guest, GuestError, RunResult
from .image import Image, ImageError, ensure_image

__all__ = ["BootError", "Guest", "GuestError", "Image", "ImageError", "RunResult", "ensure_image"]
