# SPDX-License-Identifier: LGPL-2.1-or-later
"""pagemap's decoding of whole vmemmap blocks (``proc/pagemap_page.py``): the
byte-slice decoders give, page by page, what reading each ``struct page``'s
fields one at a time gives."""

from __future__ import annotations

import random
import struct

import pytest

pytest.importorskip("drgn")

from livewalk.proc.pagemap_entry import PM_FILE, PM_MMAP_EXCLUSIVE  # noqa: E402
from livewalk.proc.pagemap_page import _all_small_anon_exclusive, _small_folio_bits  # noqa: E402


class _Layout:
    """The fields of a 64-byte ``struct page`` (x86_64 7.2's offsets)."""

    page_size = 64
    off_flags = 0
    off_compound = 8
    off_mapping = 24
    off_mapcount = 48
    pg_head = 6


def _one_by_one(raw: bytes, ks: _Layout) -> list[int]:
    out = []
    for o in range(0, len(raw), ks.page_size):
        flags, compound, mapping = (struct.unpack_from("<Q", raw, o + f)[0]
                                    for f in (ks.off_flags, ks.off_compound, ks.off_mapping))
        mapcount = struct.unpack_from("<i", raw, o + ks.off_mapcount)[0]
        if compound & 1 or flags >> ks.pg_head & 1:
            out.append(-1)  # a page of a large folio
            continue
        bits = 0 if mapping & 1 else PM_FILE
        if mapcount == 0:  # _mapcount 0: mapped once
            bits |= PM_MMAP_EXCLUSIVE
        out.append(bits)
    return out


def _block(rnd: random.Random, ks: _Layout, kinds: str) -> bytes:
    b = bytearray(4096)
    for o in range(0, 4096, ks.page_size):
        k = rnd.choice(kinds)
        anon_once = k == "a"
        struct.pack_into("<Q", b, o + ks.off_flags,
                         rnd.getrandbits(64) & ~(1 << ks.pg_head) if anon_once else rnd.getrandbits(64))
        struct.pack_into("<Q", b, o + ks.off_compound,
                         0 if anon_once else rnd.choice([0, 1, rnd.getrandbits(64)]))
        struct.pack_into("<Q", b, o + ks.off_mapping, (rnd.getrandbits(64) | 1) if anon_once else
                         rnd.choice([0, 1, rnd.getrandbits(64)]))
        struct.pack_into("<i", b, o + ks.off_mapcount, 0 if anon_once else
                         rnd.choice([0, -1, 1, 256, 1 << 16, 1 << 24, -(1 << 31), rnd.getrandbits(31)]))
    return bytes(b)


def test_small_folio_bits_equal_the_fields_read_one_by_one() -> None:
    ks = _Layout()
    rnd = random.Random(16)
    for _ in range(500):
        raw = _block(rnd, ks, "ar")
        assert _small_folio_bits(raw, ks) == _one_by_one(raw, ks)  # type: ignore[arg-type]


def test_all_small_anon_exclusive_only_when_every_page_is() -> None:
    ks = _Layout()
    rnd = random.Random(17)
    raw = _block(rnd, ks, "a")
    assert _all_small_anon_exclusive(raw, ks) == [PM_MMAP_EXCLUSIVE] * 64  # type: ignore[arg-type]
    assert _one_by_one(raw, ks) == [PM_MMAP_EXCLUSIVE] * 64
    for _ in range(200):
        raw = _block(rnd, ks, "aaaaaaaar")
        got = _all_small_anon_exclusive(raw, ks)  # type: ignore[arg-type]
        each = _one_by_one(raw, ks)
        assert got == (each if each == [PM_MMAP_EXCLUSIVE] * 64 else None)
