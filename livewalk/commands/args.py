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

from typing import Any

from livewalk.arch import ULONG_MAX
from livewalk.consistency import DEFAULT_RETRIES
from livewalk.errors import UsageError

__all__ = ("add_consistency_arguments", "parse_address", "parse_range", "parse_retries")


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


def parse_retries(text: str) -> int:
    """
    ``--retries N``: a count of rounds of reads again, 0 or more.

    >>> parse_retries("0"), parse_retries("5")
    (0, 5)
    """
    try:
        n = int(text.strip(), 10)
    except ValueError:
        n = -1
    if n < 0:
        raise UsageError(f"bad --retries {text!r}: expected a number, 0 or more")
    return n


def _retries_type(text: str) -> int:
    import argparse

    try:
        return parse_retries(text)
    except UsageError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_consistency_arguments(p: Any) -> None:
    """
    ``--strict`` and ``--retries N`` (:mod:`livewalk.consistency`), shared by
    every command that reads a live target's page tables.
    """
    p.add_argument("--strict", action="store_true",
                   help="fail (exit status 1) if any range changed while it was read, "
                   "instead of marking it")
    p.add_argument("--retries", type=_retries_type, default=DEFAULT_RETRIES, metavar="N",
                   help="read again what changed while read, at most N times "
                   f"(default: {DEFAULT_RETRIES})")
