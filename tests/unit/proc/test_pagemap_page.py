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


def test_large_folio_bits_equal_page_info() -> None:
    """The pages of large folios decoded with their block give what page_info() gives each."""
    from types import SimpleNamespace

    from livewalk.mm.page import PageReader
    from livewalk.proc.pagemap_page import DrgnPageState

    ks = SimpleNamespace(
        page_size=64, off_flags=0, off_compound=8, off_mapping=24, off_mapcount=48, pg_head=6,
        mapcount_type_limit=-(1 << 24), compound_mapcount=False, compound_info_has_mask=False,
        vmemmap_base=0xFFFF_EA00_0000_0000,
    )
    ks.pfn_to_page_addr = lambda pfn: ks.vmemmap_base + pfn * 64
    ks.page_addr_to_pfn = lambda addr: (addr - ks.vmemmap_base) // 64
    rnd = random.Random(18)
    block = 5
    first = block * 64
    raw = bytearray(4096)
    folios = {}
    # four folios of 16 pages (head flag on the first, head | 1 in the others'
    # compound_info), anonymous or not, their pages mapped 0, 1 or 2 times
    for f in range(4):
        head = first + 16 * f
        folios[head] = (SimpleNamespace(large=True, entire_mapcount_raw=rnd.choice([-1, 0])), f % 2 == 0, False)
        for i in range(16):
            o = (16 * f + i) * 64
            if i == 0:
                struct.pack_into("<Q", raw, o, 1 << ks.pg_head)
            else:
                struct.pack_into("<Q", raw, o + 8, ks.pfn_to_page_addr(head) | 1)
            struct.pack_into("<i", raw, o + 48, rnd.choice([-1, 0, 1]))
    data = bytes(raw)
    state = DrgnPageState.__new__(DrgnPageState)
    reader = PageReader.__new__(PageReader)
    reader.ks = ks  # type: ignore[assignment]
    reader._blocks = {ks.vmemmap_base + block * 4096: data}
    state.prog = None  # type: ignore[assignment]
    state.ks = ks  # type: ignore[assignment]
    state._reader = reader
    state._cache = {}
    state._folios = dict(folios)  # type: ignore[arg-type]
    state.bits_blocks = {block: _small_folio_bits(data, ks)}  # type: ignore[arg-type]
    state._large_blocks = {block: data}
    state.bits_shift = 6
    assert state.bits_blocks[block] == [-1] * 64
    bits = state.pfn_bits_large(block)
    for i in range(64):
        info = state.page_info(first + i)
        assert info is not None
        want = (0 if info.anon else PM_FILE) | (PM_MMAP_EXCLUSIVE if info.mapcount == 1 else 0)
        assert bits[i] == want, i
    assert {b & PM_MMAP_EXCLUSIVE for b in bits} == {0, PM_MMAP_EXCLUSIVE}
    assert {b & PM_FILE for b in bits} == {0, PM_FILE}
