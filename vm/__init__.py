# SPDX-License-Identifier: LGPL-2.1-or-later
"""The livewalk test VM: a Debian sid guest with the 7.x cloud kernel under QEMU
(x86-64, or arm64 with ``Guest(arch="arm64")``).

Installed as ``livewalk.vm`` (the source lives in the repository's ``vm/``).

>>> from livewalk.vm import Guest
>>> with Guest(levels=5) as g:
...     print(g.run("uname -r").stdout)

Only the standard library is needed to import this package (drgn and the rest
of livewalk only for :meth:`Guest.host_program` and the methods that answer
about guest processes).
"""

from .errors import BootError, GuestError, RunResult
from .guest import Guest
from .image import Image, ImageError, ensure_image

__all__ = ("BootError", "Guest", "GuestError", "Image", "ImageError", "RunResult", "ensure_image")
