# SPDX-License-Identifier: LGPL-2.1-or-later
"""
The livewalk pytest plugin: the test VM as a fixture, for any project that
installs livewalk (entry point ``pytest11``: ``livewalk``).

>>> def test_heap_is_mapped(livewalk_guest):  # doctest: +SKIP
...     pid = livewalk_guest.spawn("exec /tmp/prog", ready="READY")
...     assert any(v.rss for v in livewalk_guest.smaps(pid))

Fixtures:

- ``livewalk_guest``: a booted :class:`~livewalk.vm.Guest`, one per
  architecture, kernel and paging mode for the whole session (booted on first
  use). A test that asks for it runs once per paging mode of
  ``--livewalk-paging``, kernel of ``--livewalk-kernel`` and architecture of
  ``--livewalk-arch``, or of its ``livewalk_vm`` marker:
  ``@pytest.mark.livewalk_vm(paging=(5, 4), kernels=("default",), arches=("arm64",))``.
  Each kernel runs in the paging modes of those it has (arm64's ``16k``
  kernel: 4 or 3 levels); a kernel series is taken for the architectures
  that have it, and with none of them it is a usage error. Unnamed, the
  kernel is the default one; with ``LIVEWALK_KERNEL_MATRIX=full`` (``bash
  scripts/test --matrix``) arm64 tests also run on the ``16k`` kernel. A
  test of some kernels only (``only_kernels=("16k",)``) runs on those the
  session runs, and is deselected when it runs none.
- ``livewalk_vm_pool``: the session's :class:`~livewalk.testing.GuestPool`
  (for fixtures of one's own, e.g. a guest per paging mode).

When the VM cannot be had (no QEMU, no image, a kernel or architecture not
available), the tests that need it are skipped with the reason, or fail with
it under ``--livewalk-require-vm`` (ini ``livewalk_require_vm = true``).
Nothing here imports drgn or boots anything until a test asks for a guest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from livewalk.testing.pool import ARCHES, DEFAULT_KERNEL, GuestKey, GuestPool, VMUnavailable

if TYPE_CHECKING:
    from livewalk.vm import Guest

__all__ = (
    "livewalk_guest",
    "livewalk_vm_pool",
    "pytest_addoption",
    "pytest_configure",
    "pytest_generate_tests",
)

MARKER = "livewalk_vm"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("livewalk", "livewalk test VM")
    group.addoption(
        "--livewalk-kernel", metavar="SERIES[,SERIES]", default=None,
        help="kernel series to boot, comma-separated: x86_64: 6.1, 6.12, 7; arm64: 7, 16k (16K pages); "
        "default: 'default', the newest 7.x; each series' image is built on first use",
    )  # fmt: skip
    group.addoption(
        "--kernel-image", metavar="BZIMAGE", default=None,
        help="boot this kernel of your own instead (needs --vmlinux)",
    )  # fmt: skip
    group.addoption(
        "--vmlinux", metavar="VMLINUX", default=None,
        help="the debug vmlinux of --kernel-image, for livewalk on the host",
    )  # fmt: skip
    group.addoption(
        "--kernel-modules", metavar="DIR", default=None,
        help="the modules of --kernel-image: lib/modules/<rel> or the INSTALL_MOD_PATH of modules_install",
    )  # fmt: skip
    group.addoption(
        "--livewalk-arch", metavar="ARCH[,ARCH]", default=None,
        help=f"guest architectures, comma-separated: {', '.join(ARCHES)} (default x86_64); "
        "an arm64 image is built (and configured by its first boot) on first use",
    )  # fmt: skip
    group.addoption(
        "--livewalk-paging", metavar="LEVELS[,LEVELS]", default=None,
        help="paging levels of the guests, e.g. 5 or 5,4 (default 5); each kernel runs in those it has "
        "(arm64's 16k: 4 with LPA2, 3 without)",
    )  # fmt: skip
    group.addoption(
        "--livewalk-require-vm", action="store_true", default=None,
        help="fail, not skip, the tests that need the VM when it cannot be had",
    )  # fmt: skip
    parser.addini("livewalk_require_vm", "fail, not skip, when the VM cannot be had", type="bool", default=False)
    parser.addini("livewalk_paging", "default paging levels (e.g. '5,4')", default="5")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(paging=(5, 4), kernels=('default',), arches=('x86_64',), only_kernels=None): run the "
        "test on the livewalk test VM, once per paging mode, kernel series and architecture (only_kernels: "
        "of the session's kernels, only these; skipped when it runs none of them)",
    )
    for arch in ARCHES:
        config.addinivalue_line("markers", f"{MARKER}_{arch}: a test on the {arch} test VM (set by the plugin)")
    config.addinivalue_line("markers", f"{MARKER}_not_selected: of kernels the session runs none of (deselected)")


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


#: Kernels of an architecture that the full matrix (``LIVEWALK_KERNEL_MATRIX=full``)
#: adds to the default one, for the tests that name none. x86-64's older
#: series are the fidelity core's business (tests/vm/conftest.py).
MATRIX_KERNELS = {"arm64": ("16k",)}


def _full_matrix() -> bool:
    return os.environ.get("LIVEWALK_KERNEL_MATRIX", "") == "full"


def _arch_kernels(arch: str, named: list[str] | None) -> list[str]:
    """The kernels of *arch* among those *named* on the command line (a
    usage error if there are none), or the default ones."""
    from livewalk.vm.image import KERNEL_SERIES, arch_series

    if named is None:
        return [DEFAULT_KERNEL, *(MATRIX_KERNELS.get(arch, ()) if _full_matrix() else ())]
    known = "; ".join(f"{a}: {', '.join(arch_series(a))}" for a in ARCHES)
    # A series livewalk does not know is kept: its tests skip, saying so.
    mine = [k for k in named if k == DEFAULT_KERNEL or k not in KERNEL_SERIES or k in arch_series(arch)]
    if not mine:
        raise pytest.UsageError(
            f"livewalk: --livewalk-kernel {','.join(named)} names no {arch} kernel, and {arch} tests are "
            f"selected ({known})"
        )
    return mine


def _keys(config: pytest.Config, marker: pytest.Mark | None) -> list[GuestKey]:
    """The guests a test runs on: its marker's, else the command line's."""
    from livewalk.vm.image import KERNEL_SERIES, ImageError, check_series

    paging = marker.kwargs.get("paging") if marker is not None else None
    kernels = marker.kwargs.get("kernels") if marker is not None else None
    only = marker.kwargs.get("only_kernels") if marker is not None else None
    arches = marker.kwargs.get("arches") if marker is not None else None
    if paging is None:
        paging = [int(v) for v in _split(config.getoption("livewalk_paging") or config.getini("livewalk_paging"))]
    if arches is None:
        arches = _split(config.getoption("livewalk_arch") or "x86_64")
    for lv in paging:
        if lv not in (3, 4, 5):
            raise pytest.UsageError(f"livewalk: paging levels must be 3, 4 or 5, not {lv!r}")
    arches = [{"aarch64": "arm64", "amd64": "x86_64"}.get(a, a) for a in arches]
    for a in arches:
        if a not in ARCHES:
            raise pytest.UsageError(f"livewalk: architecture must be one of {', '.join(ARCHES)}, not {a!r}")
    image = config.getoption("kernel_image")
    vmlinux = config.getoption("vmlinux")
    modules = config.getoption("kernel_modules")
    keys = []
    for arch in arches:
        if kernels is not None:  # the marker's: a test's own choice, checked as such
            mine = list(kernels)
        else:
            opt = config.getoption("livewalk_kernel")
            mine = _arch_kernels(arch, _split(opt) if opt else None)
        if only is not None:  # a test of those kernels, when the session runs them
            mine = [k for k in mine if k in only]
        for k in mine:
            key = GuestKey(kernel=k, arch=arch, kernel_image=image, vmlinux=vmlinux, modules=modules)
            if image is None and key.series in KERNEL_SERIES:
                try:
                    check_series(arch, key.series)
                except ImageError as e:
                    raise pytest.UsageError(f"livewalk: {e}") from None
            # A kernel runs in the paging modes it has (arm64 16k: 4 or 3).
            has = KERNEL_SERIES[key.series].levels if key.series in KERNEL_SERIES else (5, 4)
            keys += [GuestKey(kernel=k, levels=int(lv), arch=arch, kernel_image=image, vmlinux=vmlinux,
                              modules=modules) for lv in paging if int(lv) in has]  # fmt: skip
    if not keys and only is not None:
        return []
    if not keys:
        raise pytest.UsageError(f"livewalk: no kernel of {', '.join(arches)} runs with paging levels "
                                f"{', '.join(map(str, paging))}")  # fmt: skip
    return keys


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "livewalk_guest" not in metafunc.fixturenames:
        return
    try:
        keys = _keys(metafunc.config, metafunc.definition.get_closest_marker(MARKER))
    except pytest.UsageError as e:
        # Said once, as a usage error, when collection ends (raised here, it
        # would be a collection error of each module, with a traceback).
        metafunc.config.stash.setdefault(_USAGE_ERROR, str(e))
        keys = []
    marker = metafunc.definition.get_closest_marker(MARKER)
    only = marker.kwargs.get("only_kernels") if marker is not None else None
    if not keys and only is not None:
        # Deselected when collection ends (a kernel the session does not run
        # is a choice of the command line, not a skipped result).
        param = pytest.param(None, marks=pytest.mark.livewalk_vm_not_selected, id=f"{'-'.join(only)}-not-selected")
        metafunc.parametrize("livewalk_guest", [param], indirect=True)
        return
    metafunc.parametrize("livewalk_guest", keys, ids=[k.id for k in keys], indirect=True)


#: The mark of a test of ``only_kernels`` the session runs none of: deselected.
_NOT_SELECTED = f"{MARKER}_not_selected"

#: The first usage error met while parametrizing the tests.
_USAGE_ERROR = pytest.StashKey[str]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _USAGE_ERROR in config.stash:
        raise pytest.UsageError(config.stash[_USAGE_ERROR])
    left_out = [i for i in items if i.get_closest_marker(_NOT_SELECTED) is not None]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [i for i in items if i.get_closest_marker(_NOT_SELECTED) is None]
    # Tests on the VM can be selected or left out with -m livewalk_vm, and
    # those of one architecture with -m livewalk_vm_<arch>.
    for item in items:
        if "livewalk_guest" in getattr(item, "fixturenames", ()) and item.get_closest_marker(MARKER) is None:
            item.add_marker(MARKER)
        callspec = getattr(item, "callspec", None)
        key = callspec.params.get("livewalk_guest") if callspec is not None else None
        if isinstance(key, GuestKey):
            item.add_marker(f"{MARKER}_{key.arch}")


def _require(config: pytest.Config) -> bool:
    opt = config.getoption("livewalk_require_vm")
    return bool(opt) if opt is not None else bool(config.getini("livewalk_require_vm"))


@pytest.fixture(scope="session")
def livewalk_vm_pool(request: pytest.FixtureRequest) -> Iterator[GuestPool]:
    """The session's guests (see :class:`~livewalk.testing.GuestPool`);
    ``pool.guest(key)`` boots one. Prefer :func:`livewalk_guest`, or
    :func:`session_guest` in fixtures of one's own."""
    pool = GuestPool(src=Path(request.config.rootpath))
    try:
        yield pool
    finally:
        pool.close()


def session_guest(request: pytest.FixtureRequest, key: GuestKey) -> Guest:
    """*key*'s guest of this session, or skip (fail, under
    ``--livewalk-require-vm``) with the one-line reason it cannot be had."""
    pool: GuestPool = request.getfixturevalue("livewalk_vm_pool")
    try:
        return pool.guest(key)
    except VMUnavailable as e:
        reason = f"livewalk VM unavailable: {e}"
    if _require(request.config):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def livewalk_guest(request: pytest.FixtureRequest) -> Guest:
    """The running test VM for this test's kernel and paging mode (booted
    once per session, so fixtures of any scope may use it): run programs in
    it (``run``, ``spawn``, ``copy_in``) and ask livewalk about their memory
    (``pagemap``, ``smaps``, ``vtop``, ``walk_page_range``)."""
    key = getattr(request, "param", None)
    if key is None:  # not parametrized (asked for by getfixturevalue)
        key = _keys(request.config, None)[0]
    return session_guest(request, key)
