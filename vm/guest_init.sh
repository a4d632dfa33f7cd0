#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# livewalk test VM: boot script. The host passes it in through fw_cfg
# (opt/livewalk/init.sh) and the image's /usr/sbin/livewalk-init runs it as
# PID 1, after mounting /proc, /sys and /dev and loading qemu_fw_cfg.
#
# It mounts the rest, sets up what the tests need (hugetlb pages are reserved
# on the kernel command line; a zram swap device; THP in madvise mode, so only
# MADV_HUGEPAGE regions get huge pages and other mappings stay predictable),
# mounts /src (read-only) and /out, and runs the agent (vm/agent.py), which
# talks to the host over the virtio-serial port "livewalk.agent".
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
say() { echo "livewalk-init: $*"; }

mkdir -p /dev/pts /dev/shm /dev/hugepages
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mount -t hugetlbfs hugetlbfs /dev/hugepages
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
hostname livewalk-vm

# The virtio PCI transport and the console (the agent's port) are built into
# the 7.x and 6.12 cloud kernels but modules in 6.1's: load them before any
# virtio device is used (a no-op where they are built in).
modprobe -a virtio_pci virtio_console 2>/dev/null || say "WARNING: cannot load virtio_pci/virtio_console"
ip link set lo up 2>/dev/null

# zram swap (512 MiB), so tests can swap pages out with MADV_PAGEOUT.
if modprobe zram num_devices=1 && echo 512M > /sys/block/zram0/disksize \
    && mkswap /dev/zram0 >/dev/null && swapon /dev/zram0; then
    say "zram swap on"
else
    say "WARNING: zram swap setup failed"
fi

# THP: madvise (only MADV_HUGEPAGE regions); defrag so such faults compact.
echo madvise > /sys/kernel/mm/transparent_hugepage/enabled
echo madvise > /sys/kernel/mm/transparent_hugepage/defrag

# /src (read-only snapshot of the working tree) and /out on virtio-blk disks,
# found by their labels.
modprobe virtio_blk
n=0
until blkid -L lwsrc >/dev/null 2>&1 && blkid -L lwout >/dev/null 2>&1 || [ $n -ge 100 ]; do
    sleep 0.1
    n=$((n + 1))
done
mount -o ro,noload "$(blkid -L lwsrc)" /src || say "WARNING: cannot mount /src"
mount "$(blkid -L lwout)" /out || say "WARNING: cannot mount /out"

say "hugepages=$(cat /proc/sys/vm/nr_hugepages) thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled)"
say "starting agent"
# The loop also reaps orphans (the shell waits for any child).
while :; do
    python3 /livewalk/agent.py
    say "agent exited with status $?; restarting"
    sleep 1
done
