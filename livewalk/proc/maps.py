# SPDX-License-Identifier: LGPL-2.1-or-later
"""
maps
----

The ``/proc/PID/maps`` line of a VMA and the ``VmFlags`` line of smaps, as
Linux 7.2 ``fs/proc/task_mmu.c`` prints them (``show_map_vma``,
``get_vma_name``, ``show_smap_vma_flags``). Paths come from drgn's
:func:`~drgn.helpers.linux.fs.d_path`.

>>> maps_line(0x1000, 0x2000, 0x3, 0, 0, 0, b"[heap]")
'00001000-00002000 rw-p 00000000 00:00 0                                  [heap]'
>>> vma_header(vma)  # doctest: +SKIP
'55d4c8a2e000-55d4c8a30000 r--p 00000000 fe:01 1234                       /usr/bin/cat'
"""

from __future__ import annotations

from drgn import Architecture, Object, Program
from drgn.helpers.linux.fs import d_path

from livewalk.kernel import KernelFeatures
from livewalk.mm.vma import VMFlagBits

__all__ = (
    "FMODE_BACKING",
    "file_user_path",
    "get_vma_name",
    "maps_line",
    "seq_file_path",
    "vm_flags_mnemonics",
    "vma_header",
    "vma_perms",
)

#: ``FMODE_BACKING`` (Linux 7.2 ``include/linux/fs.h``; a macro, not in debug info).
FMODE_BACKING = 1 << 24

#: The 7.2 bit numbers of :data:`VMFlagBits` (for :func:`maps_line` without a target).
_DEFAULT_BITS = VMFlagBits()

# VM flag mnemonics of show_smap_vma_flags() (Linux 7.2 fs/proc/task_mmu.c)
# by the name of their VMA_*_BIT enumerator; the bit numbers come from the
# target's debug info, these are the 7.2 defaults.
_MNEMONICS: tuple[tuple[str, int, str], ...] = (
    ("READ", 0, "rd"),
    ("WRITE", 1, "wr"),
    ("EXEC", 2, "ex"),
    ("SHARED", 3, "sh"),
    ("MAYREAD", 4, "mr"),
    ("MAYWRITE", 5, "mw"),
    ("MAYEXEC", 6, "me"),
    ("MAYSHARE", 7, "ms"),
    ("GROWSDOWN", 8, "gd"),
    ("PFNMAP", 10, "pf"),
    ("MAYBE_GUARD", 11, "gu"),
    ("LOCKED", 13, "lo"),
    ("IO", 14, "io"),
    ("SEQ_READ", 15, "sr"),
    ("RAND_READ", 16, "rr"),
    ("DONTCOPY", 17, "dc"),
    ("DONTEXPAND", 18, "de"),
    ("LOCKONFAULT", 19, "lf"),
    ("ACCOUNT", 20, "ac"),
    ("NORESERVE", 21, "nr"),
    ("HUGETLB", 22, "ht"),
    ("SYNC", 23, "sf"),
    ("ARCH_1", 24, "ar"),
    ("WIPEONFORK", 25, "wf"),
    ("DONTDUMP", 26, "dd"),
    ("SOFTDIRTY", 27, "sd"),
    ("MIXEDMAP", 28, "mm"),
    ("HUGEPAGE", 29, "hg"),
    ("NOHUGEPAGE", 30, "nh"),
    ("MERGEABLE", 31, "mg"),
    ("UFFD_MISSING", 9, "um"),
    ("UFFD_WP", 12, "uw"),
    # Protection-key bits print nothing (they come out via ProtectionKey);
    # x86 has CONFIG_ARCH_PKEY_BITS = 4.
    ("PKEY_BIT0", 32, ""),
    ("PKEY_BIT1", 33, ""),
    ("PKEY_BIT2", 34, ""),
    ("PKEY_BIT3", 35, ""),
    ("UFFD_MINOR", 41, "ui"),
    ("SHADOW_STACK", 37, "ss"),
    ("DROPPABLE", 40, "dp"),
    ("SEALED", 42, "sl"),
)


def maps_line(
    start: int,
    end: int,
    vm_flags: int,
    pgoff: int,
    dev: int,
    ino: int,
    name: bytes | None,
    bits: VMFlagBits = _DEFAULT_BITS,
) -> str:
    """
    ``show_vma_header_prefix()`` plus the name: hex fields zero-padded to 8
    (2 for the device numbers, ``MAJOR`` = ``dev >> 20``), then, if there
    is a name, spaces up to column 72 (``seq_setwidth(m, 25 + 6 *
    sizeof(void *) - 1)``) and one more before it.

    :param pgoff: file offset in bytes
    :param dev: ``s_dev`` of the file's superblock (``MKDEV`` encoding)
    :param name: :func:`get_vma_name`
    :param bits: the target's VM flag bits
    """
    perms = vma_perms(vm_flags, bits)
    line = f"{start:08x}-{end:08x} {perms} {pgoff:08x} {dev >> 20:02x}:{dev & 0xFFFFF:02x} {ino} "
    if name is None:
        return line
    return f"{line:<72} " + name.decode("utf-8", "surrogateescape")


def vma_perms(vm_flags: int, bits: VMFlagBits = _DEFAULT_BITS) -> str:
    """
    The ``rwxs``/``rwxp`` column of ``show_vma_header_prefix()``: shared is
    ``VM_MAYSHARE``.

    >>> vma_perms(0x3), vma_perms(0x85)
    ('rw-p', 'r-xs')

    :param vm_flags: ``vma->vm_flags``
    :param bits: the target's VM flag bits
    """
    return (
        ("r" if vm_flags & bits.VM_READ else "-")
        + ("w" if vm_flags & bits.VM_WRITE else "-")
        + ("x" if vm_flags & bits.VM_EXEC else "-")
        + ("s" if vm_flags & bits.VM_MAYSHARE else "p")
    )


def vm_flags_mnemonics(prog: Program, vm_flags: int, features: KernelFeatures | None = None) -> str:
    """
    ``show_smap_vma_flags()``: two-letter names of the set bits, each
    followed by a space (``??`` for a bit without one).

    :param vm_flags: ``vma->vm_flags``
    :param features: the target's features (default: Linux 7.2's table)
    """
    table = _mnemonic_table(prog, features is not None and not features.vm_lockonfault_mnemonic)
    out = []
    for bit in range(64):
        if vm_flags >> bit & 1:
            m = table.get(bit, "??")
            if m:
                out.append(m + " ")
    return "".join(out)


#: Linux 6.1's show_smap_vma_flags() lacks these (VM_LOCKONFAULT prints
#: ``??`` there; the others do not exist).
_NOT_IN_6_1 = frozenset(("MAYBE_GUARD", "LOCKONFAULT", "SHADOW_STACK", "DROPPABLE", "SEALED"))
#: ``VM_UFFD_MINOR_BIT`` of Linux 6.1 (``include/linux/mm.h``; a macro).
_UFFD_MINOR_BIT_6_1 = 37


#: arm64's entries of Linux 7.2 show_smap_vma_flags(), by VMA_*_BIT name
#: (with the 7.2 bit number) and the configuration option that brings
#: them, recognised by a function only that option builds: ``bt`` on
#: ``VM_ARCH_1`` (it replaces ``ar``), ``mt`` and a silent ``VM_MTE_ALLOWED``,
#: and three silent protection-key bits (``CONFIG_ARCH_PKEY_BITS`` is 3).
_ARM64_MNEMONICS: tuple[tuple[str, int, str, str], ...] = (
    ("ARM64_BTI", 24, "bt", "bti_enable"),  # CONFIG_ARM64_BTI
    ("MTE", 36, "mt", "mte_sync_tags"),  # CONFIG_ARM64_MTE
    ("MTE_ALLOWED", 37, "", "mte_sync_tags"),
    ("PKEY_BIT0", 32, "", "cpu_enable_poe"),  # CONFIG_ARM64_POE (ARCH_HAS_PKEYS)
    ("PKEY_BIT1", 33, "", "cpu_enable_poe"),
    ("PKEY_BIT2", 34, "", "cpu_enable_poe"),
)
#: Entries of _MNEMONICS that an arm64 kernel's table lacks: soft-dirty
#: (no CONFIG_MEM_SOFT_DIRTY on arm64) and x86's protection-key bits.
_NOT_ON_ARM64 = frozenset(("SOFTDIRTY", "PKEY_BIT0", "PKEY_BIT1", "PKEY_BIT2", "PKEY_BIT3"))


def _has_symbol(prog: Program, name: str) -> bool:
    try:
        prog.symbol(name)
    except LookupError:
        return False
    return True


def _mnemonic_table(prog: Program, six_one: bool = False) -> dict[int, str]:
    key = "livewalk_smaps_mnemonics_6_1" if six_one else "livewalk_smaps_mnemonics"
    try:
        return prog.cache[key]  # type: ignore[no-any-return]
    except KeyError:
        pass
    arm64 = prog.platform is not None and prog.platform.arch == Architecture.AARCH64
    table: dict[int, str] = {}
    for name, default, mn in _MNEMONICS:
        if six_one:
            if name not in _NOT_IN_6_1:
                table[_UFFD_MINOR_BIT_6_1 if name == "UFFD_MINOR" else default] = mn
            continue
        if arm64 and name in _NOT_ON_ARM64:
            continue
        try:
            bit = int(prog[f"VMA_{name}_BIT"].value_())
        except KeyError:
            if name == "SHADOW_STACK":
                continue  # no CONFIG_X86_USER_SHADOW_STACK (or CONFIG_ARM64_GCS)
            bit = default
        table[bit] = mn
    if arm64:
        # the arm64 entries come later in the kernel's initializer: they win
        for name, default, mn, config_symbol in _ARM64_MNEMONICS:
            if _has_symbol(prog, config_symbol):
                try:
                    bit = int(prog[f"VMA_{name}_BIT"].value_())
                except KeyError:
                    bit = default
                table[bit] = mn
    prog.cache[key] = table
    return table


def _sym_name(prog: Program, addr: int) -> str | None:
    if not addr:
        return None
    try:
        return prog.symbol(addr).name
    except LookupError:
        return None


def file_user_path(file: Object) -> Object:
    """
    ``file_user_path()``: for a stacking filesystem's backing file, the path
    the user opened; else ``file->f_path``.

    :param file: ``struct file *``
    :return: ``struct path``
    """
    if int(file.f_mode.value_()) & FMODE_BACKING:
        try:
            return Object(file.prog_, "struct backing_file", address=int(file.value_())).user_path
        except (LookupError, AttributeError):
            pass
    return file.f_path


def seq_file_path(file: Object) -> bytes:
    """
    ``seq_file_path(m, file, "\\n")`` as the reader of ``/proc/PID/maps``
    sees it, assuming the reader's root is the initial mount namespace's
    root: the dentry's ``d_dname`` for pseudo files (drgn's ``d_path``
    prints only the filesystem type there), else drgn's ``d_path`` up to
    the global root (or the top of a detached mount such as the internal
    shmem mount) with `` (deleted)`` for unlinked dentries; ``\\n`` escaped
    as ``\\012``.

    :param file: ``struct file *``
    """
    path = file_user_path(file)
    dentry = path.dentry.read_()
    d_op = dentry.d_op.read_()
    is_root = int(dentry.d_parent.value_()) == int(dentry.value_())
    mnt_root = int(path.mnt.mnt_root.value_())
    if d_op and int(d_op.d_dname.value_()) and (not is_root or int(dentry.value_()) != mnt_root):
        out = _d_dname(file.prog_, dentry, int(d_op.d_dname.value_()))
    else:
        out = d_path(path.mnt, dentry)
        # d_unlinked(): unhashed and not a root.
        if not int(dentry.d_hash.pprev.value_()) and not is_root:
            out += b" (deleted)"
    return out.replace(b"\n", b"\\012")


def _d_dname(prog: Program, dentry: Object, fn_addr: int) -> bytes:
    """The ``->d_dname()`` of the pseudo filesystems whose names a map can show."""
    name = dentry.d_name.name.string_()
    fn = _sym_name(prog, fn_addr)
    if fn == "simple_dname":
        return b"/" + name + b" (deleted)"
    if fn == "anon_inodefs_dname":
        return b"anon_inode:" + name
    ino = int(dentry.d_inode.i_ino.value_())
    if fn == "pipefs_dname":
        return b"pipe:[%d]" % ino
    if fn == "sockfs_dname":
        return b"socket:[%d]" % ino
    return name


def get_vma_name(vma: Object, features: KernelFeatures | None = None) -> bytes | None:
    """
    ``get_vma_name()`` (Linux 7.2 ``fs/proc/task_mmu.c``): the file path,
    ``[anon_shmem:NAME]``, a special mapping's name, ``[heap]``,
    ``[stack]``, ``[anon:NAME]``, or ``None`` for unnamed anonymous memory.

    drgn's :func:`~drgn.helpers.linux.mm.vma_name` answers the same question
    but differs from this kernel on the heap bounds (it counts a VMA that
    only touches ``[start_brk, brk]``), on ``[vsyscall]`` and on pseudo-file
    names, so smaps could not be exact with it.

    On Linux 6.1 (:attr:`~livewalk.kernel.KernelFeatures.vma_names_6_1`,
    ``show_map_vma()``) a file VMA is always its path (``anon_name`` is then
    the i_mmap tree node it shares a union with) and the heap is a VMA that
    touches ``[start_brk, brk]``.

    :param vma: ``struct vm_area_struct *``
    :param features: the target's features (default: Linux 7.2's rules)
    """
    prog = vma.prog_
    mm = vma.vm_mm.read_()
    six_one = features is not None and features.vma_names_6_1
    anon_name = None
    if mm and not (six_one and vma.vm_file.value_()):
        try:
            an = vma.anon_name.read_()
            if an:
                anon_name = an.name.string_()
        except AttributeError:
            pass
    vm_file = vma.vm_file.read_()
    if vm_file:
        if anon_name is not None:
            return b"[anon_shmem:" + anon_name + b"]"
        return seq_file_path(vm_file)
    ops = vma.vm_ops.read_()
    if ops:
        fn_addr = int(ops.name.value_())
        if fn_addr:
            fn = _sym_name(prog, fn_addr)
            if fn == "special_mapping_name":
                sm = Object(prog, "struct vm_special_mapping *", vma.vm_private_data.value_())
                return sm.name.string_()
            if fn == "gate_vma_name":
                return b"[vsyscall]"
            # Another ->name() hook (a driver's): not reproducible from memory.
            return b"[" + (fn or "?").encode() + b"?]"
    if not mm:
        return b"[vdso]"
    start, end = int(vma.vm_start.value_()), int(vma.vm_end.value_())
    brk, start_brk = int(mm.brk.value_()), int(mm.start_brk.value_())
    if (start <= brk and end >= start_brk) if six_one else (start < brk and end > start_brk):
        return b"[heap]"
    ss = int(mm.start_stack.value_())
    if start <= ss and end >= ss:
        return b"[stack]"
    if anon_name is not None:
        return b"[anon:" + anon_name + b"]"
    return None


def vma_header(
    vma: Object, bits: VMFlagBits = _DEFAULT_BITS, features: KernelFeatures | None = None
) -> str:
    """
    The ``/proc/PID/maps`` line of a VMA (``show_map_vma``): ``start-end
    perms offset major:minor inode``, padded to 73 columns before a name.

    :param vma: ``struct vm_area_struct *``
    :param bits: the target's VM flag bits
    :param features: the target's features (see :func:`get_vma_name`)
    """
    v = vma[0].read_()
    flags = int(v.vm_flags.value_())
    start, end = int(v.vm_start.value_()), int(v.vm_end.value_())
    dev = ino = pgoff = 0
    vm_file = v.vm_file.read_()
    if vm_file:
        inode = file_user_path(vm_file).dentry.d_inode  # file_user_inode()
        dev = int(inode.i_sb.s_dev.value_())
        ino = int(inode.i_ino.value_())
        pgoff = int(v.vm_pgoff.value_()) << int(v.prog_["PAGE_SHIFT"].value_())
    return maps_line(start, end, flags, pgoff, dev, ino, get_vma_name(vma, features), bits)
