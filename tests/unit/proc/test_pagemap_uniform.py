# SPDX-License-Identifier: LGPL-2.1-or-later
"""
pagemap's uniform-table fast path (``_uniform_ptes``) with the ``struct
page`` s of a synthetic vmemmap read through :class:`DrgnPageState`: a PTE
table of consecutive frames that starts or ends inside a vmemmap block
(what the kernel's allocator usually gives an anonymous region) is decided
by its own pages only, in one read of them, whatever its neighbours in the
blocks are; the entries equal those of the page-by-page path.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("drgn")

from drgn import FaultError  # noqa: E402

from livewalk.backend.synthetic import SyntheticMM  # noqa: E402
from livewalk.proc.pagemap import pagemap_read  # noqa: E402
from livewalk.proc.pagemap_entry import PM_FILE, PM_MMAP_EXCLUSIVE, PM_PRESENT  # noqa: E402
from livewalk.proc.pagemap_page import DrgnPageState, PagemapPage  # noqa: E402

VM_READ, VM_WRITE = 0x1, 0x2
_PMD = 2 << 20
_BASE = 64 * _PMD  # a PMD-aligned VMA start
_VMEMMAP = 0xFFFF_EA00_0000_0000
# x86_64 7.2's struct page: flags, compound_info, mapping, _mapcount
_KS = SimpleNamespace(page_size=64, off_flags=0, off_compound=8, off_mapping=24, off_mapcount=48,
                      pg_head=6, vmemmap_base=_VMEMMAP, highest_memmap_pfn=1 << 20)


class _Vmemmap:
    """The program of the page state: reads of the synthetic vmemmap, counted."""

    def __init__(self, pages: int) -> None:
        self.data = bytearray(64 * pages)
        self.reads = 0

    def set(self, pfn: int, *, anon: bool, mapcount: int) -> None:
        o = 64 * pfn
        struct.pack_into("<Q", self.data, o + _KS.off_mapping, 0xFFFF_8880_0000_0000 | anon)
        struct.pack_into("<i", self.data, o + _KS.off_mapcount, mapcount - 1)

    def info(self, pfn: int) -> PagemapPage:
        o = 64 * pfn
        anon = bool(struct.unpack_from("<Q", self.data, o + _KS.off_mapping)[0] & 1)
        mapcount = struct.unpack_from("<i", self.data, o + _KS.off_mapcount)[0] + 1
        return PagemapPage(anon, mapcount, mapcount > 1)

    def read(self, addr: int, size: int, physical: bool = False) -> bytes:
        self.reads += 1
        off = addr - _VMEMMAP
        if physical or off < 0 or off + size > len(self.data):
            raise FaultError("outside the synthetic vmemmap", addr)
        return bytes(self.data[off : off + size])


def _page_state(prog: _Vmemmap) -> DrgnPageState:
    """A :class:`DrgnPageState` of *prog*, as made for a kernel with that struct page."""
    state = DrgnPageState.__new__(DrgnPageState)
    state.prog = prog  # type: ignore[assignment]
    state._read_vmemmap = prog.read  # the backend's read_vmemmap, as on a vmcore
    state.ks = _KS  # type: ignore[assignment]
    state.table_size = 4096
    state._reader = None
    state._cache = {}
    state._folios = {}
    state.bits_blocks = {}
    state._large_blocks = {}
    state.bits_shift = 6  # 64 struct pages per 4 KiB block
    return state


class _PagePerPage:
    """The same pages, asked one by one through the protocol (the slow path)."""

    def __init__(self, prog: _Vmemmap) -> None:
        self.prog = prog

    def highest_memmap_pfn(self) -> int:
        return int(_KS.highest_memmap_pfn)

    def page_info(self, pfn: int) -> PagemapPage | None:
        return self.prog.info(pfn)

    def hugetlb_pmd_shared(self, ptep: int) -> bool:
        return False


def _table(first_pfn: int, *, neighbours_exclusive: bool = False, frames: list[int] | None = None,
           anonymous: bool = True, pages: int = 8192) -> tuple[Any, _Vmemmap]:
    """One full PTE table of consecutive frames from *first_pfn* (or of
    *frames*), anonymous and mapped once; the other pages of their blocks
    file pages mapped twice."""
    mm = SyntheticMM()
    mm.add_vma(_BASE, _BASE + _PMD, VM_READ | VM_WRITE, anonymous=anonymous)
    prog = _Vmemmap(pages)
    for pfn in range(pages):
        prog.set(pfn, anon=neighbours_exclusive, mapcount=1 if neighbours_exclusive else 2)
    for i, pfn in enumerate(frames or range(first_pfn, first_pfn + 512)):
        mm.map_page(_BASE + 4096 * i, pfn)
        prog.set(pfn, anon=True, mapcount=1)
    return mm, prog


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What each ``_uniform_ptes`` call answers (None: not uniform, the slow path)."""
    from livewalk.proc import pagemap

    uniform = pagemap._uniform_ptes
    answers: list[Any] = []

    def spy(*args: Any) -> Any:
        answers.append(uniform(*args))
        return answers[-1]

    monkeypatch.setattr(pagemap, "_uniform_ptes", spy)
    return answers


@pytest.mark.parametrize("first_pfn", [1024, 1024 + 10, 2048 - 1])
def test_table_inside_blocks_is_decided_by_its_own_pages(
    first_pfn: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    mm, prog = _table(first_pfn)
    answers = _spy(monkeypatch)
    got = pagemap_read(mm, _BASE, _BASE + _PMD, page_state=_page_state(prog))
    assert len(answers) == 1 and answers[0] is not None  # the uniform path answered
    slow = pagemap_read(mm, _BASE, _BASE + _PMD, page_state=_PagePerPage(prog))
    assert got == slow
    assert {v & (PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_FILE) for v in got} == {PM_PRESENT | PM_MMAP_EXCLUSIVE}
    assert [v & ((1 << 55) - 1) for v in got] == list(range(first_pfn, first_pfn + 512))
    # the fast path: one read of the table's own 512 struct pages
    assert prog.reads == 1


@pytest.mark.parametrize("which", [0, 200, 511])
def test_one_shared_page_in_the_table_is_seen(which: int) -> None:
    mm, prog = _table(1024 + 10, neighbours_exclusive=True)
    prog.set(1024 + 10 + which, anon=False, mapcount=3)
    got = pagemap_read(mm, _BASE, _BASE + _PMD, page_state=_page_state(prog))
    slow = pagemap_read(mm, _BASE, _BASE + _PMD, page_state=_PagePerPage(prog))
    assert got == slow
    assert got[which] & (PM_MMAP_EXCLUSIVE | PM_FILE) == PM_FILE
    assert sum(1 for v in got if v & PM_MMAP_EXCLUSIVE) == 511


def test_block_path_looks_only_at_the_tables_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the one-read test (the page state cannot tell), whole blocks
    are read, but only the table's own pages of its first and last block
    count: the table still takes the uniform path."""
    mm, prog = _table(1024 + 10)
    state = _page_state(prog)
    state.runs_anon_exclusive = lambda runs: False  # type: ignore[method-assign]
    answers = _spy(monkeypatch)
    got = pagemap_read(mm, _BASE, _BASE + _PMD, page_state=state)
    assert got == pagemap_read(mm, _BASE, _BASE + _PMD, page_state=_PagePerPage(prog))
    assert len(answers) == 1 and answers[0] is not None
    assert prog.reads == 1  # the 9 blocks the frames span, in one read


def _runs(sizes: list[int], gap: int, first: int = 100) -> list[int]:
    """Frames in runs of *sizes* pages, each *gap* frames after the last one."""
    frames: list[int] = []
    pfn = first
    for size in sizes:
        frames += range(pfn, pfn + size)
        pfn += size + gap
    return frames


def _stretches(frames: list[int], gap_pages: int) -> int:
    """How many reads a run test makes: runs whose struct pages are less
    than *gap_pages* pages apart share one."""
    runs: list[list[int]] = []
    for pfn in frames:
        if runs and pfn == runs[-1][1] + 1:
            runs[-1][1] = pfn
        else:
            runs.append([pfn, pfn])
    reads, last = 0, None
    for a, b in sorted(runs):
        if last is None or a - last > gap_pages:
            reads += 1
            last = b
        else:
            last = max(last, b)
    return reads


# 4 vmemmap blocks of 64-byte struct pages between two runs still share a read
_GAP_PAGES = 4 * 64

_LAYOUTS = {
    # what arm64's allocator gave a 4K region in the benchmark: 68 runs in
    # a few stretches of memory
    "68 runs, close": _runs([7] * 67 + [512 - 7 * 67], 3),
    "2 runs, far": _runs([256, 256], 2000),
    "16 runs, far": _runs([32] * 16, 300),
    "17 runs, close and far": _runs([30] * 16 + [32], 100),
    "128 runs": _runs([4] * 128, 1),
    "129 runs": _runs([4] * 126 + [4, 2, 2], 1),
    "descending": list(range(5000 + 511, 5000 - 1, -1)),
    "one frame twice": _runs([256], 0) + _runs([256], 0, first=300),
}


@pytest.mark.parametrize("layout", list(_LAYOUTS))
def test_scattered_runs_of_frames(layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A table whose frames come in runs (more vmemmap blocks than a block
    test reads): the runs' own struct pages tested, a read for each stretch
    of memory they are in, the table on the uniform path; past 128 runs (a
    table mapped in descending frame order is 512 runs), the page-by-page
    path; the entries the same either way."""
    frames = _LAYOUTS[layout]
    assert len(frames) == 512
    n_runs = 1 + sum(1 for a, b in zip(frames, frames[1:]) if b != a + 1)
    mm, prog = _table(0, frames=frames, pages=16384)
    answers = _spy(monkeypatch)
    got = pagemap_read(mm, _BASE, _BASE + _PMD, page_state=_page_state(prog))
    assert got == pagemap_read(mm, _BASE, _BASE + _PMD, page_state=_PagePerPage(prog))
    assert all(v & PM_MMAP_EXCLUSIVE for v in got)
    if n_runs <= 128:
        assert answers[0] is not None and prog.reads == _stretches(frames, _GAP_PAGES)
    else:
        assert answers[0] is None


@pytest.mark.parametrize("which", [0, 300, 511])
def test_shared_page_between_runs_of_one_read(which: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs read together are tested on their own pages only: a shared page
    in one of them is seen (the page-by-page path decides the table), and a
    shared page in a gap between them is not looked at."""
    frames = _LAYOUTS["68 runs, close"]
    mm, prog = _table(0, frames=frames, pages=16384, neighbours_exclusive=True)
    prog.set(frames[0] + 7, anon=False, mapcount=2)  # in the gap after the first run
    answers = _spy(monkeypatch)
    state = _page_state(prog)
    assert pagemap_read(mm, _BASE, _BASE + _PMD, page_state=state) == pagemap_read(
        mm, _BASE, _BASE + _PMD, page_state=_PagePerPage(prog))
    assert answers[0] is not None  # the gap's page did not count
    prog.set(frames[which], anon=True, mapcount=2)
    answers.clear()
    got = pagemap_read(mm, _BASE, _BASE + _PMD, page_state=_page_state(prog))
    assert got == pagemap_read(mm, _BASE, _BASE + _PMD, page_state=_PagePerPage(prog))
    assert answers[0] is None
    assert [i for i, v in enumerate(got) if not v & PM_MMAP_EXCLUSIVE] == [which]


@pytest.mark.parametrize("frames", ["consecutive", "runs"])
def test_anonymous_pages_of_a_file_vma(frames: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Private file mappings hold anonymous (copied-on-write) pages too: in a
    file VMA the run reads are skipped, the blocks decide, and the entries
    are the page-by-page path's."""
    picked = list(range(1024 + 10, 1024 + 10 + 512)) if frames == "consecutive" else [
        r * 200 + i for r in range(4) for i in range(128)]
    mm, prog = _table(0, frames=picked, anonymous=False, neighbours_exclusive=True)
    answers = _spy(monkeypatch)
    got = pagemap_read(mm, _BASE, _BASE + _PMD, page_state=_page_state(prog))
    assert got == pagemap_read(mm, _BASE, _BASE + _PMD, page_state=_PagePerPage(prog))
    assert all(v & PM_MMAP_EXCLUSIVE and not v & PM_FILE for v in got)
    assert answers[0] is not None  # the blocks (all exclusive here) answered
    assert prog.reads == 1  # one read of the blocks the frames span, no run read


def test_a_read_keeps_no_target_alive() -> None:
    """What a read keeps of its target between calls (the constants of its
    paging) does not keep the target itself: a program let go of is freed,
    and with it its QMP connection (QEMU serves one client)."""
    import gc
    import weakref

    from livewalk.backend import backend_for_mm

    mm, prog = _table(1024 + 10)
    backend = backend_for_mm(mm)
    first = pagemap_read(mm, _BASE, _BASE + _PMD, page_state=_page_state(prog))
    assert pagemap_read(mm, _BASE, _BASE + _PMD, page_state=_page_state(prog)) == first
    gone = weakref.ref(backend)
    del mm, backend
    gc.collect()
    assert gone() is None
