# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Command-line arguments
----------------------

The argument types the livewalk CLI and its drgn commands share: addresses
and address ranges in hexadecimal, refused in one line
(:class:`~livewalk.errors.UsageError`) when they are not.

>>> parse_range("7f0000000000:7f0000200000") == (0x7F0000000000, 0x7F0000200000)
True
"""

from __future__ import annotations

from livewalk.arch import ULONG_MAX
from livewalk.errors import UsageError

__all__ = ("parse_address", "parse_range")


def parse_address(text: str, what: str = "address") -> int:
    """
    Parse a hexadecimal address (``0x`` prefix optional, ``_`` and ``'``
    allowed as separators).

    >>> hex(parse_address("7f00_0000_0000"))
    '0x7f0000000000'
    >>> parse_address("zz")
    Traceback (most recent call last):
      ...
    livewalk.errors.UsageError: bad address 'zz': expected a hexadecimal number such as 7f0000001000
    """
    s = text.strip().replace("_", "").replace("'", "")
    if s.lower().startswith("0x"):
        s = s[2:]
    try:
        if not s or s.startswith(("-", "+")):
            raise ValueError
        value = int(s, 16)
    except ValueError:
        raise UsageError(
            f"bad {what} {text!r}: expected a hexadecimal number such as 7f0000001000"
        ) from None
    if value > ULONG_MAX:
        raise UsageError(f"bad {what} {text!r}: larger than 64 bits")
    return value


def parse_range(text: str) -> tuple[int, int]:
    """
    Parse ``START:END`` (hexadecimal, END exclusive) for ``--range``.

    >>> [hex(x) for x in parse_range("7f0000000000:7f0000200000")]
    ['0x7f0000000000', '0x7f0000200000']
    """
    start_s, sep, end_s = text.partition(":")
    if not sep or not start_s.strip() or not end_s.strip():
        raise UsageError(
            f"bad --range {text!r}: expected START:END in hexadecimal, "
            "e.g. 7f0000000000:7f0000200000"
        )
    start = parse_address(start_s, "--range start")
    end = parse_address(end_s, "--range end")
    if start >= end:
        raise UsageError(f"bad --range {text!r}: START must be below END")
    return start, end
