#!/usr/bin/env bash
# Run one command inside a throwaway Linux VM whose kernel has kernel TLS (the `tls` module).
#
# Why: this machine's kernel is built without CONFIG_TLS, so setsockopt(TCP_ULP, "tls") fails
# with ENOENT and the kTLS code paths cannot be tested on the host. This script boots Debian's
# cloud kernel (which ships net/tls/tls.ko) under qemu with a busybox initramfs, loads the tls
# module, runs COMMAND as the child of PID 1 and exits with COMMAND's exit status. The guest has
# no network device: only loopback (127.0.0.1 and ::1) is up.
#
# Usage:
#   tests/ktls/vm.sh [--include PATH]... [--env NAME=VALUE]... [--timeout SECONDS] -- COMMAND [ARGS...]
#
#   --include PATH     copy a host file or directory into the guest at the same absolute path
#                      (relative paths are taken from the current directory). For every ELF
#                      file included, and for COMMAND when it is a path, the shared libraries
#                      `ldd` lists and the dynamic loader are copied too, so glibc binaries run.
#   --env NAME=VALUE   set NAME in COMMAND's environment. COMMAND starts from an empty
#                      environment plus PATH=/bin:/sbin:/usr/bin HOME=/root TMPDIR=/tmp (which
#                      --env may override) and these --env values.
#   --timeout SECONDS  stop the VM after this long, boot included (default 600).
#
# COMMAND runs as root in the guest with the host's current directory path (created if needed) as
# its working directory and /dev/null as stdin; its stdout and stderr go to the guest's serial
# console, which is this script's stdout. A bare COMMAND name is looked up on the guest's PATH
# (busybox applets, or files you --include); a COMMAND with a slash is included automatically.
#
# Exit status: COMMAND's own, or 124 when the VM timed out, or 125 when the harness failed
# (download, boot, module load, or the guest never reported an exit status).
#
# Example: a test binary (its shared libraries come along by themselves), the server binary it
# starts, and the certificates it reads, from the repository root:
#   tests/ktls/vm.sh --include target/debug/framecast --include tests/fixtures \
#       --env RUST_BACKTRACE=1 -- target/debug/deps/tls-0123abcd --test-threads 2
#
# What it needs on the host: apt-get/apt-cache/dpkg-deb (Debian), ldd, gzip, xz, coreutils,
# flock, and qemu-system-x86_64, which it installs from Debian's qemu-system-x86 when missing.
# Kernel and busybox are Debian packages fetched with `apt-get download` (nothing is installed on
# the host) and cached under target/ktls-vm/ in the repository; delete that folder to refetch. Set
# FRAMECAST_VM_KERNEL to a package name to pin a kernel instead of taking the newest 6.12 one.
# KVM is used when /dev/kvm is readable and writable (and is not PVM, see below), otherwise TCG,
# which is much slower; FRAMECAST_VM_ACCEL=kvm|tcg forces one.
#
# The guest has 2 GiB of memory and its root file system is the initramfs itself, in RAM: the
# compressed archive and its unpacked files (everything --include'd) must fit together, so keep
# the included files to a few hundred MB.
set -euo pipefail

readonly HARNESS_FAILED=125
readonly TIMED_OUT=124

die() {
    echo "vm.sh: error: $*" >&2
    exit "$HARNESS_FAILED"
}
note() { echo "vm.sh: $*" >&2; }

usage() {
    sed -n '/^# Usage:/,/^# Exit status/{/^# Exit status/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}
short_usage() { usage | sed -n 2p >&2; echo "(tests/ktls/vm.sh --help says more)" >&2; }

# ---------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------
includes=()
envs=()
timeout_s=600
while (($#)); do
    case $1 in
        --include) (($# >= 2)) || die "--include needs a PATH"; includes+=("$2"); shift 2 ;;
        --include=*) includes+=("${1#--include=}"); shift ;;
        --env) (($# >= 2)) || die "--env needs NAME=VALUE"; envs+=("$2"); shift 2 ;;
        --env=*) envs+=("${1#--env=}"); shift ;;
        --timeout) (($# >= 2)) || die "--timeout needs SECONDS"; timeout_s=$2; shift 2 ;;
        --timeout=*) timeout_s=${1#--timeout=}; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; break ;;
        *) short_usage; die "unknown option '$1' (COMMAND goes after --)" ;;
    esac
done
(($#)) || { short_usage; die "no COMMAND given (it goes after --)"; }
[[ $timeout_s =~ ^[1-9][0-9]*$ ]] || die "--timeout wants a positive whole number of seconds, not '$timeout_s'"
for e in "${envs[@]}"; do
    [[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env wants NAME=VALUE, not '$e'"
done
cmd=("$@")
host_cwd=$PWD

# The repository root is two levels above this script (tests/ktls/vm.sh).
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=$repo_root/target/ktls-vm
mkdir -p "$cache/debs"

as_root=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null; then as_root=(sudo); fi

# ---------------------------------------------------------------------------------------------
# qemu: Debian's qemu-system-x86, installed when missing.
# ---------------------------------------------------------------------------------------------
if ! command -v qemu-system-x86_64 >/dev/null; then
    note "installing qemu-system-x86 (qemu-system-x86_64 is missing)"
    apt_install=(env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends qemu-system-x86)
    "${as_root[@]}" "${apt_install[@]}" \
        || { "${as_root[@]}" apt-get update && "${as_root[@]}" "${apt_install[@]}"; } \
        || die "could not install qemu-system-x86"
fi

# ---------------------------------------------------------------------------------------------
# Kernel and busybox: Debian packages fetched with `apt-get download`, unpacked with dpkg-deb -x
# and kept in $cache. One lock serialises concurrent runs while they fill the cache.
# ---------------------------------------------------------------------------------------------
exec 9>"$cache/lock"
flock 9

apt_updated=0
apt_update_once() {
    ((apt_updated)) && return 1
    apt_updated=1
    note "running apt-get update"
    "${as_root[@]}" apt-get update >&2 || true
}

# fetch_deb PACKAGE: print the path of PACKAGE's .deb in $cache/debs, downloading it if no
# version of it is there yet.
fetch_deb() {
    local pkg=$1 deb
    deb=$(find "$cache/debs" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n 1)
    if [[ -z $deb ]]; then
        note "downloading $pkg"
        (cd "$cache/debs" && apt-get download "$pkg" >&2) \
            || { apt_update_once && (cd "$cache/debs" && apt-get download "$pkg" >&2); } \
            || die "apt-get download $pkg failed"
        deb=$(find "$cache/debs" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n 1)
        [[ -n $deb ]] || die "apt-get download $pkg left no ${pkg}_*.deb in $cache/debs"
    fi
    echo "$deb"
}

# unpack_deb DEB: print a folder holding DEB's files (dpkg-deb -x, once per .deb).
unpack_deb() {
    local deb=$1 dir
    dir=$cache/unpacked/$(basename "$deb" .deb)
    if [[ ! -e $dir/.done ]]; then
        rm -rf "$dir"
        mkdir -p "$dir"
        dpkg-deb -x "$deb" "$dir" || die "dpkg-deb -x $deb failed"
        touch "$dir/.done"
    fi
    echo "$dir"
}

# The newest linux-image-6.12*-cloud-amd64-unsigned the package lists know, or failing that the
# newest one already cached (so a machine with empty apt lists still runs).
kernel_pattern='^linux-image-6\.12[^ ]*-cloud-amd64-unsigned$'
newest_kernel_pkg() {
    apt-cache search --names-only 'linux-image-6\.12.*-cloud-amd64-unsigned' 2>/dev/null \
        | awk '{print $1}' | grep -E "$kernel_pattern" | sort -V | tail -n 1
}
kernel_pkg=${FRAMECAST_VM_KERNEL:-}
if [[ -z $kernel_pkg ]]; then
    kernel_pkg=$(newest_kernel_pkg || true)
    if [[ -z $kernel_pkg ]]; then
        kernel_pkg=$(find "$cache/debs" -maxdepth 1 -name 'linux-image-6.12*-cloud-amd64-unsigned_*.deb' \
            -printf '%f\n' | sed 's/_.*//' | sort -V | tail -n 1)
    fi
    if [[ -z $kernel_pkg ]]; then
        apt_update_once || true
        kernel_pkg=$(newest_kernel_pkg || true)
    fi
    [[ -n $kernel_pkg ]] || die "no linux-image-6.12*-cloud-amd64-unsigned package found (apt-cache search)"
fi
kernel_deb=$(fetch_deb "$kernel_pkg")
kernel_dir=$(unpack_deb "$kernel_deb")
busybox_deb=$(fetch_deb busybox-static)
busybox_dir=$(unpack_deb "$busybox_deb")
busybox=$busybox_dir/bin/busybox
[[ -x $busybox ]] || die "no bin/busybox in the busybox-static package ($busybox_dir)"

vmlinuz=$(find "$kernel_dir/boot" -maxdepth 1 -name 'vmlinuz-*' | head -n 1)
[[ -n $vmlinuz ]] || die "no boot/vmlinuz-* in $kernel_pkg"
kver=${vmlinuz##*/vmlinuz-}
moddir=$kernel_dir/lib/modules/$kver
[[ -f $moddir/kernel/net/tls/tls.ko.xz ]] || die "$kernel_pkg has no kernel/net/tls/tls.ko.xz"

# The guest's module tree, cached: the package's modules under these folders, decompressed (the
# whole tree would be 116 MB decompressed), with the modules.dep and modules.alias the package
# lacks (its postinst runs depmod) made by busybox's depmod. The guest's /sbin/modprobe (busybox)
# then serves the kernel's own module requests: the tls module asks the crypto API for, say,
# gcm(aes), which loads aesni-intel or gcm.ko; a test may set TCP_CONGESTION to bbr, and so on.
guest_module_dirs=(kernel/crypto kernel/arch/x86/crypto kernel/lib kernel/net)
guest_modules=$cache/guest-modules/$kver # holds lib/modules/$kver
if [[ ! -e $guest_modules/.done ]]; then
    note "decompressing the crypto, lib and net modules of $kver"
    rm -rf "$guest_modules"
    gm=$guest_modules/lib/modules/$kver
    mkdir -p "$gm"
    cp "$moddir"/modules.builtin* "$moddir/modules.order" "$gm/"
    (cd "$moddir" && find "${guest_module_dirs[@]}" -name '*.ko.xz' -print0) |
        while IFS= read -r -d '' m; do
            mkdir -p "$gm/$(dirname "$m")"
            xz -dc "$moddir/$m" >"$gm/${m%.xz}" || die "xz -dc $moddir/$m failed"
        done
    "$busybox" depmod -b "$guest_modules" "$kver" || die "busybox depmod failed for $kver"
    unset gm
fi
gm=$guest_modules/lib/modules/$kver

# module_depends FILE.ko: the modules FILE needs (the "depends" field of its .modinfo).
module_depends() {
    if command -v modinfo >/dev/null; then
        modinfo -F depends "$1"
    else
        # Without kmod's modinfo: the same field, read from the .modinfo strings.
        tr '\0' '\n' <"$1" | sed -n 's/^depends=//p' | head -n 1
    fi | tr ',' '\n' | sed '/^$/d'
}
# module_file NAME: the .ko of module NAME ('-' and '_' are the same in module names).
module_file() {
    local pattern=${1//[-_]/[-_]}
    find "$gm/kernel" -name "$pattern.ko" | head -n 1
}
# tls.ko and what it depends on, in load order (dependencies first), for the guest's insmod.
if [[ ! -e $guest_modules/.done ]]; then
    declare -A seen=()
    add_module() {
        local file=$1 name dep dep_file
        name=$(basename "$file" .ko)
        [[ -z ${seen[$name]:-} ]] || return 0
        seen[$name]=1
        for dep in $(module_depends "$file"); do
            dep_file=$(module_file "$dep")
            [[ -n $dep_file ]] || die "module $name depends on $dep, which is not in the guest's modules"
            add_module "$dep_file"
        done
        echo "/lib/modules/$kver/${file#"$gm/"}" >>"$guest_modules/tls-load-order"
    }
    add_module "$gm/kernel/net/tls/tls.ko"
    touch "$guest_modules/.done"
fi
flock -u 9

# ---------------------------------------------------------------------------------------------
# initramfs, built fresh in a temporary folder
# ---------------------------------------------------------------------------------------------
work=$(mktemp -d "${TMPDIR:-/tmp}/ktls-vm.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,run,root,mnt,lib/modules,ktls}
chmod 1777 "$root/tmp"

# busybox with its applets as symlinks; /sbin/modprobe is where the kernel runs modprobe from.
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [[ $applet == busybox ]] || ln -s busybox "$root/bin/$applet"
done
ln -s ../bin/busybox "$root/sbin/modprobe"
ln -s ../../bin/busybox "$root/usr/bin/env"

cp -a "$gm" "$root/lib/modules/$kver"
cp "$guest_modules/tls-load-order" "$root/ktls/load-order"

# Enough of /etc for glibc: localhost resolves, uid 0 has a name.
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
printf 'passwd: files\ngroup: files\nhosts: files\n' >"$root/etc/nsswitch.conf"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
echo framecast-vm >"$root/etc/hostname"

# copy_in PATH: copy host PATH (file, directory, or a symlink to one) to the same absolute path
# in the guest, replacing whatever is there (a busybox applet link, say).
copy_in() {
    local src=$1 dest
    dest=$root$src
    mkdir -p "$(dirname "$dest")"
    rm -rf "$dest"
    cp -a -H -- "$src" "$dest" || die "could not copy $src into the guest"
}

# copy_libs FILE: when FILE is an ELF file that ldd understands, copy the libraries it lists and
# the dynamic loader (statically linked files have none).
is_elf() { [[ -f $1 && $(od -An -tx1 -N4 "$1" | tr -d ' \n') == 7f454c46 ]]; }
declare -A libs_copied=()
copy_libs() {
    local file=$1 out line lib
    out=$(ldd "$file" 2>&1) || {
        [[ $out == *"not a dynamic executable"* || $out == *"statically linked"* ]] && return 0
        die "ldd $file failed: $out"
    }
    while IFS= read -r line; do
        [[ $line == *"not found"* ]] && die "ldd $file: ${line#"${line%%[![:space:]]*}"}"
        if [[ $line =~ \=\>\ (/[^ ]+) ]]; then
            lib=${BASH_REMATCH[1]}
        elif [[ $line =~ ^[[:space:]]*(/[^ ]+) ]]; then
            lib=${BASH_REMATCH[1]}
        else
            continue # linux-vdso.so.1 and the like
        fi
        [[ -z ${libs_copied[$lib]:-} ]] || continue
        libs_copied[$lib]=1
        mkdir -p "$root$(dirname "$lib")"
        cp -L --remove-destination -- "$lib" "$root$lib" || die "could not copy $lib (needed by $file)"
    done <<<"$out"
}

# The --include'd paths, then COMMAND when it is a path.
absolute() { realpath -s -m -- "$1"; } # made absolute from $PWD, symlinks left alone
to_include=()
for p in "${includes[@]}"; do
    [[ -e $p ]] || die "--include $p: no such file or directory"
    to_include+=("$(absolute "$p")")
done
if [[ ${cmd[0]} == */* ]]; then
    [[ -e ${cmd[0]} ]] || die "COMMAND ${cmd[0]}: no such file"
    to_include+=("$(absolute "${cmd[0]}")")
fi
for p in "${to_include[@]}"; do
    case $p in
        / | /proc | /proc/* | /sys | /sys/* | /dev | /dev/*) die "cannot include $p" ;;
    esac
    copy_in "$p"
done
# Libraries last, so an included file can never overwrite a library copied for another.
for p in "${to_include[@]}"; do
    if [[ -d $p ]]; then
        while IFS= read -r -d '' f; do
            is_elf "$f" && copy_libs "$f"
        done < <(find -L "$p" -type f -print0)
    elif is_elf "$p"; then
        copy_libs "$p"
    fi
done

# sh_quote WORD: WORD as a single-quoted sh word.
sh_quote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }

# A per-run nonce in the exit marker, so that nothing COMMAND prints can be taken for it.
nonce=$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')
marker="FRAMECAST-VM-EXIT"

{
    cat <<'EOF'
#!/bin/sh
# PID 1 of the VM, written by tests/ktls/vm.sh.
export PATH=/bin:/sbin:/usr/bin
EOF
    echo "echo 'FRAMECAST-VM-BOOTED (run $nonce)'"
    echo "fatal() { echo \"FRAMECAST-VM-ERROR (run $nonce): \$*\"; sleep 0.2; poweroff -f; }"
    cat <<'EOF'
mount -t proc proc /proc || fatal "mount /proc failed"
mount -t sysfs sysfs /sys || fatal "mount /sys failed"
mount -t devtmpfs devtmpfs /dev || fatal "mount /dev failed"
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts || fatal "mount /dev/pts failed"
mount -t tmpfs -o mode=1777 tmpfs /dev/shm || fatal "mount /dev/shm failed"
# tmpfs on DIR, keeping whatever the initramfs put there (--include'd files under /tmp).
mount_tmpfs_keeping() {
    mount -t tmpfs -o "mode=$2" tmpfs /mnt || fatal "mount tmpfs on $1 failed"
    cp -a "$1/." /mnt/ && find "$1" -mindepth 1 -maxdepth 1 -exec rm -rf {} + \
        || fatal "copying $1 into its tmpfs failed"
    mount --move /mnt "$1" || fatal "mount --move /mnt $1 failed"
}
mount_tmpfs_keeping /tmp 1777
mount_tmpfs_keeping /run 755
# The console ends lines with \n only, so the host sees no \r.
stty -F /dev/console -onlcr 2>/dev/null
hostname -F /etc/hostname
ip link set lo up || fatal "ip link set lo up failed"
ulimit -n 65536 || fatal "ulimit -n 65536 failed"
while read -r module; do
    insmod "$module" || fatal "insmod $module failed"
done </ktls/load-order
grep -q '^tls ' /proc/modules || fatal "the tls module is not loaded"
EOF
    echo "mkdir -p $(sh_quote "$host_cwd") && cd $(sh_quote "$host_cwd") || fatal 'cannot cd to $host_cwd'"
    printf 'env -i PATH=/bin:/sbin:/usr/bin HOME=/root TMPDIR=/tmp'
    for e in "${envs[@]}"; do printf ' %s' "$(sh_quote "$e")"; done
    for a in "${cmd[@]}"; do printf ' %s' "$(sh_quote "$a")"; done
    printf ' </dev/null\n'
    cat <<EOF
rc=\$?
echo "$marker=\$rc (run $nonce)"
# Let the serial line drain before the power goes.
sleep 0.2
poweroff -f
EOF
} >"$root/init"
chmod 755 "$root/init"

initrd=$work/initrd.cpio.gz
note "building the initramfs ($(du -sh "$root" | cut -f1))"
(cd "$root" && find . -mindepth 1 -print0 | "$busybox" cpio -o -H newc -0 -R 0:0 2>/dev/null) \
    | gzip -1 >"$initrd" || die "building the initramfs failed"

# ---------------------------------------------------------------------------------------------
# Boot
# ---------------------------------------------------------------------------------------------
# KVM when /dev/kvm is usable, otherwise TCG. Not on a host whose KVM is PVM (kvm_pvm, as on some
# cloud sandboxes): PVM only runs guest kernels built for it, and a stock kernel dies there in
# PVM's instruction emulator ("KVM internal error", or "failed to set MSR 0x10a" with -cpu host).
# FRAMECAST_VM_ACCEL=kvm or =tcg overrides the choice.
accel_kind=${FRAMECAST_VM_ACCEL:-}
why=""
if [[ -z $accel_kind ]]; then
    if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
        accel_kind=tcg why="no readable and writable /dev/kvm"
    elif [[ -d /sys/module/kvm_pvm ]]; then
        accel_kind=tcg why="this host's KVM is PVM (kvm_pvm), which cannot boot a stock kernel"
    else
        accel_kind=kvm
    fi
fi
[[ $accel_kind == kvm || $accel_kind == tcg ]] || die "FRAMECAST_VM_ACCEL must be kvm or tcg, not '$accel_kind'"

# qboot, a minimal firmware that goes straight to the kernel, saves a little time and keeps
# SeaBIOS's banner and terminal escapes off the console; SeaBIOS (qemu's default) otherwise.
firmware=()
for f in /usr/share/qemu/qboot.rom /usr/share/qboot/bios.bin; do
    if [[ -f $f ]]; then firmware=(-bios "$f"); break; fi
done

console_log=$work/console.log
# run_vm kvm|tcg: boot the VM once; qemu's exit status in $qemu_rc, the console in $console_log.
# The serial console goes to our stdout and, through the chardev's logfile, to $console_log,
# where the markers are looked for. stdin is /dev/null so qemu leaves the terminal alone.
# No network device: the guest has loopback only.
run_vm() {
    local accel
    if [[ $1 == kvm ]]; then
        accel=(-enable-kvm -cpu host)
        note "booting $kver with KVM"
    else
        accel=(-accel tcg -cpu max)
        note "booting $kver with TCG (software emulation, slow: ${why:-FRAMECAST_VM_ACCEL=tcg})"
    fi
    rm -f "$console_log"
    qemu_rc=0
    timeout --foreground -k 10 "$timeout_s" \
        qemu-system-x86_64 "${accel[@]}" "${firmware[@]}" -m 2048 -smp 2 -nographic -no-reboot \
        -monitor none -nic none \
        -chardev "stdio,id=console,logfile=$console_log" -serial chardev:console \
        -kernel "$vmlinuz" -initrd "$initrd" \
        -append "console=ttyS0 panic=-1 quiet" </dev/null || qemu_rc=$?
    touch "$console_log"
}
# console_match SED-REGEX: the first group of the last console line that matches SED-REGEX.
console_match() { tr -d '\r' <"$console_log" | sed -n "s/$1/\1/p" | tail -n 1; }

SECONDS=0
run_vm "$accel_kind"
if [[ $accel_kind == kvm && $qemu_rc -ne 0 && $qemu_rc -ne 124 && $qemu_rc -ne 137 &&
      -z $(console_match "^\(FRAMECAST-VM-BOOTED\) (run $nonce)\$") ]]; then
    # A KVM that is there but cannot run this guest (an odd nested setup, say) fails at once.
    why="KVM failed before the guest's init started (qemu exit status $qemu_rc)"
    run_vm tcg
fi

if ((qemu_rc == 124 || qemu_rc == 137)); then
    echo "vm.sh: error: the VM did not finish within $timeout_s s (--timeout); it was stopped" >&2
    exit "$TIMED_OUT"
fi
guest_error=$(console_match "^FRAMECAST-VM-ERROR (run $nonce): \\(.*\\)\$")
[[ -z $guest_error ]] || die "guest setup failed: $guest_error"
rc=$(console_match "^$marker=\([0-9]*\) (run $nonce)\$")
[[ -n $rc ]] || die "the VM stopped (qemu exit status $qemu_rc) without reporting COMMAND's exit status: boot failure? See the console output above"
note "the VM ran for $SECONDS s; COMMAND exited with status $rc"
exit "$rc"
