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

# The kdump capture kernel (vm/kdump.py loads it with `kexec -p` and
# livewalk.kdump=LEVEL,... on its command line): write one makedumpfile dump
# of /proc/vmcore per dump level to /out/kdump/vmcore-LEVEL, then power off.
# Nothing else of the normal boot runs (the capture kernel has 256 MiB).
#
# makedumpfile 1.7.8 predates VMCOREINFO's OFFSET(page.compound_info) (the
# kernel's new name of page.compound_head): without it, it takes the tail
# pages of compound slab pages for user pages and filters them out at dump
# level 8 and above (task_struct, signal_struct... go missing). Each dump is
# made with a VMCOREINFO (-i) that also gives the old name, unless the level
# is also listed in livewalk.kdump_raw=LEVEL,...: then a second dump,
# vmcore-LEVEL-raw, is what makedumpfile makes unaided.
kdump_levels=$(sed -n 's/.*livewalk\.kdump=\([0-9,]*\).*/\1/p' /proc/cmdline)
kdump_raw=$(sed -n 's/.*livewalk\.kdump_raw=\([0-9,]*\).*/\1/p' /proc/cmdline)
kdump_one() {  # name, makedumpfile options...
    name=$1
    shift
    t0=$(date +%s.%N)
    makedumpfile -c "$@" /proc/vmcore "/out/kdump/vmcore-$name" > "/out/kdump/makedumpfile-$name.log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    size=$(stat -c %s "/out/kdump/vmcore-$name" 2>/dev/null || echo 0)
    echo "$name $rc $t0 $t1 $size" >> /out/kdump/capture.txt
    say "kdump: level $name status $rc size $size seconds $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }")"
}
if [ -n "$kdump_levels" ]; then
    say "kdump: capture kernel up, dump levels $kdump_levels"
    modprobe virtio_blk
    n=0
    until blkid -L lwout >/dev/null 2>&1 || [ $n -ge 100 ]; do sleep 0.1; n=$((n + 1)); done
    if mount "$(blkid -L lwout)" /out && mkdir -p /out/kdump; then
        python3 - /proc/vmcore /tmp/vmcoreinfo <<'PY'
import struct, sys
with open(sys.argv[1], "rb") as f:
    eh = f.read(64)
    phoff, = struct.unpack_from("<Q", eh, 32)
    phentsize, phnum = struct.unpack_from("<HH", eh, 54)
    f.seek(phoff)
    ph = f.read(phentsize * phnum)
    info = b""
    for i in range(phnum):
        ptype, _, off, _, _, filesz = struct.unpack_from("<IIQQQQ", ph, i * phentsize)
        if ptype != 4:  # PT_NOTE
            continue
        f.seek(off)
        notes, pos = f.read(filesz), 0
        while pos + 12 <= len(notes):
            namesz, descsz, _ = struct.unpack_from("<III", notes, pos)
            name = notes[pos + 12:pos + 12 + namesz].rstrip(b"\0")
            dpos = pos + 12 + (namesz + 3) // 4 * 4
            if name == b"VMCOREINFO":
                info = notes[dpos:dpos + descsz].rstrip(b"\0")
            pos = dpos + (descsz + 3) // 4 * 4
lines = info.decode().splitlines()
# makedumpfile takes the SYMBOL()s of a -i file as link-time addresses and
# adds KERNELOFFSET (KASLR) to each itself: give them without it.
kaslr = [int(x.split("=", 1)[1], 16) for x in lines if x.startswith("KERNELOFFSET=")]
for i, x in enumerate(lines):
    if kaslr and x.startswith("SYMBOL("):
        name, addr = x.split("=", 1)
        lines[i] = f"{name}={(int(addr, 16) - kaslr[0]) % (1 << 64):x}"
if not any(x.startswith("OFFSET(page.compound_head)=") for x in lines):
    lines += [x.replace("compound_info", "compound_head") for x in lines
              if x.startswith("OFFSET(page.compound_info)=")]
# arm64: makedumpfile 1.7.8 knows no 52-bit VAs with 4K or 16K pages, only
# 39 or 48 bits with 4K and 36, 47 or 48 with 16K. A kernel built for 52
# (LPA2) that runs with fewer, vabits_actual = 64 - TCR_EL1.T1SZ (a CPU
# without LPA2: 48 with 4K, 47 with 16K), walks the tables of that many bits
# from a linear map at -2^vabits_actual; it is given as a kernel of that many
# bits, with PHYS_OFFSET less the bias the kernel's memstart_addr carries for
# its 52-bit PAGE_OFFSET (2^52 - 2^vabits_actual: arm64_memblock_init()).
# 52 bits in use (5 levels with 4K, 4 with 16K) stay unsupported.
num = dict(x.split("=", 1) for x in lines if "=" in x)
known = {"4096": (39, 48), "16384": (36, 47, 48)}
t1sz = int(num.get("NUMBER(TCR_EL1_T1SZ)", "0"), 0)
actual = 64 - t1sz if t1sz else 0
if (num.get("NUMBER(VA_BITS)") == "52" and actual in known.get(num.get("PAGESIZE", ""), ())
        and "NUMBER(PHYS_OFFSET)" in num):
    phys = (int(num["NUMBER(PHYS_OFFSET)"], 0) + (1 << 52) - (1 << actual)) % (1 << 64)
    lines = [x for x in lines if not x.startswith(("NUMBER(VA_BITS)=", "NUMBER(PHYS_OFFSET)="))]
    lines += [f"NUMBER(VA_BITS)={actual}", f"NUMBER(PHYS_OFFSET)={phys:#x}"]
text = "\n".join(lines)
with open(sys.argv[2], "w") as out:
    out.write(text.rstrip("\n") + "\n")
PY
        [ -s /tmp/vmcoreinfo ] || say "kdump: no VMCOREINFO in /proc/vmcore"
        for level in $(echo "$kdump_levels" | tr , ' '); do
            kdump_one "$level" -d "$level" -i /tmp/vmcoreinfo
            case ",$kdump_raw," in *",$level,"*) kdump_one "$level-raw" -d "$level" ;; esac
        done
        cp /tmp/vmcoreinfo /out/kdump/vmcoreinfo
        sync
        umount /out
        say "kdump: done"
    else
        say "kdump: FAILED: cannot mount /out"
    fi
    sync
    echo o > /proc/sysrq-trigger
    sleep 60
fi

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
