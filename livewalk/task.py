# SPDX-License-Identifier: LGPL-2.1-or-later
"""
Tasks and mms
-------------

The one place that turns what a user has at hand (a PID, a ``struct
task_struct``, a ``struct mm_struct``) into the ``mm`` a walk needs, with
one error for each way that can fail.

>>> mm = resolve_mm(prog, 1)                           # doctest: +SKIP
>>> task, mm = find_mm(prog, 1)                        # doctest: +SKIP
>>> resolve_mm(prog, find_task(prog, 2))               # doctest: +SKIP
Traceback (most recent call last):
  ...
livewalk.errors.KernelThreadError: PID 2 (kthreadd) is a kernel thread: it has no user address space
"""

from __future__ import annotations

from typing import Any

from drgn import FaultError, IntegerLike, Object, Program, ProgramFlags, Type, TypeKind

from livewalk.backend import backend_for_mm
from livewalk.errors import KernelThreadError, LivewalkError, NoSuchProcessError

__all__ = (
    "PF_KTHREAD",
    "check_mm_in_dump",
    "find_mm",
    "mm_of_task",
    "resolve_mm",
    "struct_tag",
    "task_comm",
    "task_of",
    "to_mm",
    "type_unaliased",
)

#: ``PF_KTHREAD`` (``include/linux/sched.h``)
PF_KTHREAD = 0x00200000


def task_of(prog: Program, pid: IntegerLike) -> Object:
    """
    ``find_task(prog, pid)``: the ``struct task_struct *`` of *pid*.

    :raises ~livewalk.errors.NoSuchProcessError: if there is no such task
    """
    from drgn.helpers.linux.pid import find_task

    pid = int(pid)
    if pid < 0:
        raise NoSuchProcessError(pid)
    try:
        task = find_task(prog, pid)
    except (LookupError, OverflowError) as e:
        raise NoSuchProcessError(pid) from e
    except FaultError:
        # A filtered dump (makedumpfile) may lack a page of the PID radix
        # tree while the task list is intact: look the task up there.
        try:
            task = _task_from_list(prog, pid)
        except FaultError as e:
            raise LivewalkError(
                f"PID {pid}: neither the PID tree nor the task list lead to it in the dump ({e})"
            ) from None
    if not task:
        raise NoSuchProcessError(pid)
    return task


def _task_from_list(prog: Program, pid: int) -> Object:
    """*pid*'s task, found on the task list (``init_task.tasks``, then each
    process's threads) instead of the PID radix tree."""
    from drgn.helpers.linux.list import list_for_each_entry
    from drgn.helpers.linux.pid import for_each_task_in_group

    head = prog["init_task"].tasks.address_of_()
    for leader in list_for_each_entry("struct task_struct", head, "tasks"):
        for task in for_each_task_in_group(leader, include_self=True):
            if int(task.pid) == pid:
                return task
    raise NoSuchProcessError(pid)


def task_comm(task: Object) -> str:
    """``task->comm`` as text; ``""`` if it cannot be read."""
    try:
        return task.comm.string_().decode(errors="replace")
    except Exception:  # a torn or unreadable task: the name is only decoration
        return ""


def mm_of_task(task: Object) -> Object:
    """
    ``task->mm`` of a ``struct task_struct *``. In a crash dump, the task,
    its mm and its VMA tree must be in the dump (see :func:`check_mm_in_dump`).

    :raises ~livewalk.errors.KernelThreadError: for a kernel thread
    :raises ~livewalk.errors.LivewalkError: for a task that is exiting (its
        ``mm`` is already ``NULL``), or whose ``task_struct``, mm or VMAs
        are not in the dump
    """
    try:
        mm = task.mm.read_()
    except FaultError as e:
        raise LivewalkError(
            f"the task_struct at {int(task.value_()):#x} cannot be read: not in the dump, or not a task ({e})"
        ) from None
    if mm:
        check_mm_in_dump(task, mm)
        return mm
    pid = int(task.pid)
    if int(task.flags) & PF_KTHREAD or pid == 0:
        raise KernelThreadError(pid, task_comm(task))
    raise LivewalkError(f"PID {pid} ({task_comm(task)}) has no mm: it is exiting or a zombie")


def check_mm_in_dump(task: Object, mm: Object) -> None:
    """
    In a crash dump (not a live kernel, whose reads are judged by
    :mod:`livewalk.consistency`), check that what every walk of *mm* needs
    first is there: the ``mm_struct`` and its VMA tree (maple tree nodes,
    each ``vm_area_struct``). A dump filtered too much would otherwise give
    an empty answer.

    :param task: the ``struct task_struct *`` owning *mm* (for the message)
    :raises ~livewalk.errors.LivewalkError: one line naming what is missing
    """
    prog = mm.prog_
    if prog.flags & ProgramFlags.IS_LIVE:
        return
    who = f"PID {int(task.pid)} ({task_comm(task)})"
    backend = backend_for_mm(mm)
    try:
        backend.mm_pgd(mm)
        backend.mm_task_size(mm)
    except FaultError as e:
        raise LivewalkError(f"{who}: its mm_struct at {int(mm.value_()):#x} is not in the dump ({e})") from None
    try:
        backend.vmas(mm)  # cached for the walk that follows
    except (FaultError, ValueError) as e:
        raise LivewalkError(f"{who}: its VMA tree (maple tree nodes or VMAs) is not in the dump ({e})") from None


def find_mm(prog: Program, pid: IntegerLike) -> tuple[Object, Object]:
    """
    ``(task, mm)`` of process *pid* of *prog*.

    :raises ~livewalk.errors.NoSuchProcessError: if there is no such task
    :raises ~livewalk.errors.KernelThreadError: if it is a kernel thread
    """
    task = task_of(prog, pid)
    return task, mm_of_task(task)


def type_unaliased(t: Type) -> Type:
    """
    *t* with its typedefs peeled off (``Type.unaliased()``, which drgn
    before 0.0.31 lacks).
    """
    while t.kind == TypeKind.TYPEDEF:
        t = t.type
    return t


def struct_tag(obj: Object) -> tuple[str | None, bool]:
    """``(tag, is_pointer)`` of a ``struct tag`` or ``struct tag *`` Object."""
    t = type_unaliased(obj.type_)
    if t.kind == TypeKind.POINTER:
        t = type_unaliased(t.type)
        return (t.tag if t.kind == TypeKind.STRUCT else None), True
    return (t.tag if t.kind == TypeKind.STRUCT else None), False


def resolve_mm(prog: Program | None, target: Any) -> Any:
    """
    Turn *target* into the mm a walk takes.

    *target* may be a PID (an ``int``, looked up in *prog*, or in drgn's
    default program when *prog* is ``None``), a ``struct task_struct`` or a
    ``struct mm_struct`` (pointer or object), or an mm of another backend
    (returned as it is).

    >>> resolve_mm(prog, 1)                            # doctest: +SKIP
    (struct mm_struct *)0xff1100000349c000

    :param prog: the program a PID is looked up in (``None``: drgn's default)
    :return: a ``struct mm_struct *`` Object, or the other backend's mm
    :raises ~livewalk.errors.NoSuchProcessError: if there is no task with
        that PID
    :raises ~livewalk.errors.KernelThreadError: if the task is a kernel
        thread; a task that is exiting raises
        :class:`~livewalk.errors.LivewalkError`
    :raises ValueError: for a ``NULL`` mm pointer
    :raises TypeError: if *target* is none of the above
    """
    if isinstance(target, bool):
        raise TypeError("expected a PID, a task or an mm, not bool")
    if isinstance(target, int):
        if prog is None:
            import drgn

            prog = drgn.get_default_prog()
        return find_mm(prog, target)[1]
    if isinstance(target, Object):
        tag, is_pointer = struct_tag(target)
        if tag not in ("mm_struct", "task_struct"):
            raise TypeError(
                f"expected a struct mm_struct or struct task_struct, not {target.type_}"
            )
        obj = target if is_pointer else target.address_of_()
        if tag == "task_struct":
            return mm_of_task(obj)
        if not obj.value_():
            raise ValueError("NULL mm_struct pointer")
        return obj
    try:
        backend_for_mm(target)
    except TypeError:
        raise TypeError(
            f"expected a PID, a struct task_struct or a struct mm_struct, "
            f"not {type(target).__name__}"
        ) from None
    return target


def to_mm(obj: Any) -> Any:
    """``resolve_mm(None, obj)``: a PID is looked up in drgn's default program."""
    return resolve_mm(None, obj)
