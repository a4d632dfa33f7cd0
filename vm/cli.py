# SPDX-License-Identifier: LGPL-2.1-or-later
"""The ``vm/build`` and ``vm/run`` commands."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from .errors import BootError, GuestError
from .guest import Guest, default_src
from .image import (
    ARCHES,
    DEFAULT_SERIES,
    KERNEL_SERIES,
    ImageError,
    arch_name,
    arch_series,
    check_series,
    ensure_image,
)

__all__ = ["build_main", "run_main"]


def build_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="vm/build",
        description="Build the livewalk test VM image, or reuse the cached one "
        "(cache: ${LIVEWALK_VM_CACHE:-/var/cache/livewalk-vm}).",
    )
    ap.add_argument("--quiet", action="store_true", help="hide mmdebstrap's output")
    ap.add_argument(
        "--kernel", metavar="SERIES[,SERIES]", default=DEFAULT_SERIES,
        help=f"kernel series of the --arch, several comma-separated, or 'all' (default {DEFAULT_SERIES}): "
        f"{_series_help()}; the images of an architecture share one sid userspace",
    )  # fmt: skip
    ap.add_argument(
        "--arch", default="x86_64", type=arch_name, choices=tuple(ARCHES),
        help="guest architecture (default x86_64; arm64 images are configured by their first boot)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    try:
        series = _series(args.kernel, args.arch, allow_all=True)
    except ImageError as e:
        ap.error(str(e))
    for s in series:
        t = time.monotonic()
        try:
            img = ensure_image(resolve_versions=True, quiet=args.quiet, series=s, arch=args.arch)
        except (ImageError, OSError) as e:
            print(f"vm/build: error: {e}", file=sys.stderr)
            return 1
        except Exception as e:  # a failed build step (CalledProcessError...)
            print(f"vm/build: error: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"vm/build: kernel {img.release} (series {s}, {args.arch})")
        for k, v in img.manifest["versions"].items():
            if k != "release":
                print(f"vm/build:   {k} {v}")
        print(f"vm/build: image {img.path} (built {img.manifest.get('built')})")
        print(f"vm/build: done in {time.monotonic() - t:.1f} s")
    return 0


def _series_help() -> str:
    return "; ".join(f"{a}: {', '.join(arch_series(a))}" for a in ARCHES)


def _series(value: str, arch: str, allow_all: bool = False) -> list[str]:
    """The kernel series *value* names for *arch* (raise :class:`ImageError`
    if one is not *arch*'s)."""
    if allow_all and value == "all":
        return list(arch_series(arch))
    names = [v.strip() for v in value.split(",") if v.strip()]
    for n in names:
        check_series(arch, n)
    return names


def run_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="vm/run",
        usage="vm/run [--arch x86_64|arm64] [--kernel SERIES | --kernel-image BZIMAGE --vmlinux VMLINUX "
        "[--modules DIR]] [--levels 3|4|5] [--keep] [--out DIR] [--timeout S] -- COMMAND [ARGS...]",
        description="Boot the livewalk test VM (building the image on first use), run "
        "COMMAND as root in /src (this working tree, read-only), stream its output, "
        "copy the guest's /out back, shut down and exit with COMMAND's status.",
    )
    ap.add_argument(
        "--kernel", metavar="SERIES", default=DEFAULT_SERIES,
        help=f"kernel series of the --arch (default {DEFAULT_SERIES}: the newest 7.x): {_series_help()}; "
        "its image is built on first use",
    )  # fmt: skip
    ap.add_argument("--kernel-image", metavar="BZIMAGE", help="boot this kernel of your own (with --vmlinux)")
    ap.add_argument("--vmlinux", metavar="VMLINUX", help="the debug vmlinux of --kernel-image")
    ap.add_argument(
        "--modules", metavar="DIR",
        help="the modules of --kernel-image: lib/modules/<rel>, or the INSTALL_MOD_PATH of modules_install",
    )  # fmt: skip
    ap.add_argument(
        "--arch", default="x86_64", type=arch_name, choices=tuple(ARCHES),
        help="guest architecture (default x86_64; arm64 runs under TCG, its image is built on first use)",
    )  # fmt: skip
    ap.add_argument(
        "--levels", type=int, choices=(3, 4, 5), default=None,
        help="paging levels (default: the kernel's most, 5, or 4 for arm64's 16k; arm64: fewer is "
        "-cpu max,lpa2=off: 4 levels with 4K pages, 3 with 16K)",
    )  # fmt: skip
    ap.add_argument("--keep", action="store_true", help="keep the run directory (console log, disks)")
    ap.add_argument("--out", metavar="DIR", help="host directory for /out (default: out/run-<time>)")
    ap.add_argument("--timeout", type=float, default=3600, help="command timeout in seconds")
    ap.add_argument("--memory", default="4G", help="guest memory (default 4G)")
    ap.add_argument("--smp", type=int, default=2, help="vCPUs (default 2)")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.print_usage(sys.stderr)
        print("vm/run: error: no command given", file=sys.stderr)
        return 2
    try:
        check_series(args.arch, args.kernel)
    except ImageError as e:
        ap.error(str(e))
    levels = KERNEL_SERIES[args.kernel].levels
    if args.levels is None:
        args.levels = levels[0]
    elif args.levels not in levels:
        ap.error(f"{args.arch} kernel {args.kernel} runs with {' or '.join(map(str, levels))} levels, "
                 f"not {args.levels}")  # fmt: skip
    if (args.kernel_image is None) != (args.vmlinux is None):
        ap.error("--kernel-image and --vmlinux go together")
    if args.modules is not None and args.kernel_image is None:
        ap.error("--modules goes with --kernel-image")
    for f in (args.kernel_image, args.vmlinux):
        if f is not None and not os.path.isfile(f):
            ap.error(f"no such file: {f}")
    out = Path(args.out) if args.out else default_src() / "out" / time.strftime("run-%Y%m%d-%H%M%S")
    # SIGTERM/SIGHUP: unwind through the with-block so QEMU is stopped.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))

    def stream(fd: int, data: bytes) -> None:
        f = sys.stdout.buffer if fd == 1 else sys.stderr.buffer
        try:
            f.write(data)
            f.flush()
        except BrokenPipeError:
            # The reader went away (e.g. `vm/run ... | head`): drop the rest.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, f.fileno())
            os.close(devnull)

    g = Guest(
        levels=args.levels, memory=args.memory, smp=args.smp, out_dir=out, keep=args.keep,
        kernel=args.kernel, kernel_image=args.kernel_image, vmlinux=args.vmlinux, modules=args.modules,
        arch=args.arch,
    )  # fmt: skip
    status = 1
    try:
        with g:
            r = g.run(shlex.join(cmd), timeout=args.timeout, stream=stream)
            if r.timed_out:
                print(f"vm/run: command timed out after {args.timeout:.0f} s", file=sys.stderr)
                status = 124
            elif r.returncode < 0:
                status = 128 - r.returncode
            else:
                status = r.returncode
    except (BootError, GuestError, ImageError, ValueError) as e:
        print(f"vm/run: error: {e}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        print("vm/run: interrupted", file=sys.stderr)
        status = 130
    finally:
        _report(g, named_out=bool(args.out), keep=args.keep)
    return status


def _report(g: Guest, named_out: bool, keep: bool) -> None:
    if g.out_dir is not None and g.out_dir.is_dir():
        if any(g.out_dir.iterdir()):
            print(f"vm/run: guest /out copied to {g.out_dir}", file=sys.stderr)
        elif not named_out:
            try:
                os.rmdir(g.out_dir)
            except OSError:
                pass
    if keep and g.run_dir is not None:
        print(f"vm/run: run directory kept: {g.run_dir}", file=sys.stderr)
