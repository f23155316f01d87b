#!/usr/bin/env bash
# build-debian-guest.sh - build Ferrite's demo guest (Debian kernel + busybox initramfs).
#
# Outputs (in ${FERRITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrite}/guests/debian/):
#   vmlinuz     the stock Debian x86-64 kernel (bzImage) that linux-image-amd64 points at
#   initrd.img  gzip-compressed newc cpio: static busybox + /init, and the i386 static
#               busybox as /bin/busybox32 (32-bit user code: compatibility mode)
#   stamp       what was built, and the sha256 of this script (the "recipe")
#
# The last two lines of stdout are always exactly:
#   kernel=/path/to/vmlinuz
#   initrd=/path/to/initrd.img
# Everything else (progress, apt output, errors) goes to stderr.
#
# If the stamp and both outputs exist and the stamp's recipe hash matches this
# script, nothing is rebuilt and no apt command is run. --force rebuilds anyway.
#
# See guests/README.md for what the guest's /init does.

set -euo pipefail

PROG=build-debian-guest
KERNEL_META=linux-image-amd64
BUSYBOX_PKG=busybox-static
# The same busybox built for i386: 32-bit programs under the 64-bit kernel.
BUSYBOX32_PKG=busybox-static:i386

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }
trap 'rc=$?; printf "%s: error: command failed (exit %d) at line %d: %s\n" "$PROG" "$rc" "$LINENO" "$BASH_COMMAND" >&2' ERR

usage() {
    cat <<EOF
Usage: $0 [--force]

Build the Ferrite demo guest (Debian kernel + busybox initramfs) into
  \${FERRITE_CACHE:-\${XDG_CACHE_HOME:-\$HOME/.cache}/ferrite}/guests/debian/

  -f, --force   rebuild even if the cached guest is up to date
  -h, --help    show this help

Environment: FERRITE_CACHE, XDG_CACHE_HOME, HOME (cache location),
SOURCE_DATE_EPOCH (mtime stored in the cpio archive, default 0), TMPDIR.
The last two lines of stdout are "kernel=PATH" and "initrd=PATH".
EOF
}

force=0
while (($#)); do
    case "$1" in
        -f|--force) force=1 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

cache_root=${FERRITE_CACHE:-${XDG_CACHE_HOME:-${HOME:?HOME is not set}/.cache}/ferrite}
out_dir=$cache_root/guests/debian
kernel_out=$out_dir/vmlinuz
initrd_out=$out_dir/initrd.img
stamp=$out_dir/stamp

script_path=${BASH_SOURCE[0]}
[[ -r $script_path ]] || die "cannot read this script ($script_path) to compute its recipe hash"
recipe=$(sha256sum <"$script_path" | cut -d' ' -f1)

print_outputs() {
    printf 'kernel=%s\n' "$kernel_out"
    printf 'initrd=%s\n' "$initrd_out"
}

# ---------------------------------------------------------------- fast path
if ((!force)) && [[ -s $kernel_out && -s $initrd_out && -f $stamp ]] \
    && grep -qx "recipe=$recipe" "$stamp"; then
    log "up to date ($stamp); use --force to rebuild"
    print_outputs
    exit 0
fi

# ---------------------------------------------------------------- helpers
for tool in apt-get apt-cache dpkg-deb tar gzip sha256sum od; do
    command -v "$tool" >/dev/null || die "required tool '$tool' not found (this script needs a Debian-based host)"
done

as_root() {
    if ((EUID == 0)); then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root to run: $* (run as root or install sudo)"
    fi
}

lists_updated=0
apt_update() {
    ((lists_updated)) && return 0
    log "running apt-get update"
    as_root apt-get update >&2 || die "apt-get update failed"
    lists_updated=1
}

# Candidate version of a package, or nothing if apt does not know it.
candidate() {
    apt-cache policy "$1" 2>/dev/null | awk '$1 == "Candidate:" && $2 != "(none)" { print $2; exit }'
}

ensure_known() {  # pkg...: make sure apt has a candidate for each, updating lists once if not
    local p
    for p in "$@"; do
        if [[ -z $(candidate "$p") ]]; then
            apt_update
            [[ -n $(candidate "$p") ]] || die "package '$p' not found in the configured apt sources (even after apt-get update)"
        fi
    done
}

apt_install() {  # pkg...
    ensure_known "$@"
    log "installing host packages: $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -y install --no-install-recommends "$@" >&2 \
        || die "apt-get install $* failed"
}

# The real kernel package (e.g. linux-image-6.1.0-48-amd64) that the candidate
# version of the linux-image-amd64 metapackage depends on.
resolve_kernel_pkg() {
    local ver deps
    ver=$(candidate "$KERNEL_META")
    [[ -n $ver ]] || return 1
    deps=$(apt-cache show "$KERNEL_META=$ver" 2>/dev/null | awk '/^Depends:/ { sub(/^Depends: */, ""); print; exit }')
    tr ',|' '\n\n' <<<"$deps" | sed -E 's/^ +//; s/[ (].*$//' | grep -E '^linux-image-[0-9]' | head -n1
}

download() {  # pkg dir: apt-get download the candidate of pkg into dir
    (cd "$2" && apt-get download "$1" >&2)
}

# ---------------------------------------------------------------- host tools
command -v python3 >/dev/null || apt_install python3-minimal
command -v python3 >/dev/null || die "python3 still not found after installing python3-minimal"

# ---------------------------------------------------------------- work dir
work=$(mktemp -d "${TMPDIR:-/tmp}/ferrite-guest.XXXXXX") || die "mktemp failed"
trap 'rm -rf -- "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
debs=$work/debs
mkdir -p "$debs"
# As root, apt-get download drops privileges to _apt; let it write the download dir
# (otherwise it falls back to an unsandboxed download with a warning).
if ((EUID == 0)) && getent passwd _apt >/dev/null; then
    chmod 755 "$work"
    chown _apt "$debs"
fi

# ---------------------------------------------------------------- resolve + download
# apt knows i386 packages only once dpkg has the architecture.
if ! dpkg --print-foreign-architectures | grep -qx i386; then
    log "adding the i386 architecture to dpkg (for $BUSYBOX32_PKG)"
    as_root dpkg --add-architecture i386 || die "dpkg --add-architecture i386 failed"
    # A mirror mid-sync can fail one index (security's i386, say) and make apt-get update
    # exit non-zero; what matters is that apt then knows the package (checked below).
    log "running apt-get update (for the i386 lists)"
    as_root apt-get update >&2 || log "apt-get update reported errors; going on if apt knows $BUSYBOX32_PKG"
    lists_updated=1
fi
ensure_known "$KERNEL_META" "$BUSYBOX_PKG" "$BUSYBOX32_PKG"
kernel_pkg=$(resolve_kernel_pkg) || true
if [[ -z $kernel_pkg ]]; then
    apt_update
    kernel_pkg=$(resolve_kernel_pkg) || true
    [[ -n $kernel_pkg ]] || die "could not resolve the kernel package that '$KERNEL_META' depends on (apt-cache show $KERNEL_META)"
fi
log "kernel package: $kernel_pkg (via $KERNEL_META $(candidate "$KERNEL_META"))"

for pkg in "$kernel_pkg" "$BUSYBOX_PKG" "$BUSYBOX32_PKG"; do
    ensure_known "$pkg"
    log "downloading $pkg $(candidate "$pkg")"
    if ! download "$pkg" "$debs"; then
        # Stale package lists make the mirror answer 404; refresh once and retry.
        ((lists_updated)) && die "apt-get download $pkg failed"
        log "apt-get download $pkg failed; refreshing package lists and retrying"
        apt_update
        if [[ $pkg == "$kernel_pkg" ]]; then
            kernel_pkg=$(resolve_kernel_pkg) || true
            [[ -n $kernel_pkg ]] || die "could not resolve the kernel package that '$KERNEL_META' depends on"
            pkg=$kernel_pkg
        fi
        download "$pkg" "$debs" || die "apt-get download $pkg failed (even after apt-get update)"
    fi
done

kernel_deb=$(find "$debs" -maxdepth 1 -name "${kernel_pkg}_*.deb" | head -n1)
busybox_deb=$(find "$debs" -maxdepth 1 -name "${BUSYBOX_PKG}_*_amd64.deb" | head -n1)
busybox32_deb=$(find "$debs" -maxdepth 1 -name "${BUSYBOX_PKG}_*_i386.deb" | head -n1)
[[ -n $kernel_deb ]] || die "downloaded .deb for $kernel_pkg not found in $debs"
[[ -n $busybox_deb ]] || die "downloaded .deb for $BUSYBOX_PKG not found in $debs"
[[ -n $busybox32_deb ]] || die "downloaded .deb for $BUSYBOX32_PKG not found in $debs"
kernel_ver=$(dpkg-deb -f "$kernel_deb" Version)
busybox_ver=$(dpkg-deb -f "$busybox_deb" Version)
busybox32_ver=$(dpkg-deb -f "$busybox32_deb" Version)

# ---------------------------------------------------------------- extract
log "extracting kernel from $(basename "$kernel_deb")"
kx=$work/kernel
mkdir -p "$kx"
# Only the bzImage is needed (the guest uses the built-in 8250 serial driver, no
# modules), so unpack just ./boot/vmlinuz-* instead of the ~400 MB of modules.
dpkg-deb --fsys-tarfile "$kernel_deb" | tar -xf - -C "$kx" --wildcards './boot/vmlinuz-*' \
    || die "failed to extract boot/vmlinuz-* from $kernel_deb"
vmlinuz=$(find "$kx/boot" -maxdepth 1 -type f -name 'vmlinuz-*' | head -n1)
[[ -n $vmlinuz ]] || die "no boot/vmlinuz-* in $kernel_deb"
[[ $(od -An -c -j 514 -N 4 "$vmlinuz" | tr -d ' \n') == HdrS ]] \
    || die "$vmlinuz is not an x86 bzImage (no HdrS boot-protocol header)"

log "extracting busybox from $(basename "$busybox_deb")"
bx=$work/busybox
dpkg-deb -x "$busybox_deb" "$bx" || die "dpkg-deb -x $busybox_deb failed"
[[ -f $bx/bin/busybox ]] || die "no bin/busybox in $busybox_deb"
log "extracting busybox (i386) from $(basename "$busybox32_deb")"
bx32=$work/busybox32
dpkg-deb -x "$busybox32_deb" "$bx32" || die "dpkg-deb -x $busybox32_deb failed"
[[ -f $bx32/bin/busybox ]] || die "no bin/busybox in $busybox32_deb"

# ---------------------------------------------------------------- initramfs tree
root=$work/root
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,run,tmp,root,etc,mnt}
chmod 755 "$root" "$root"/{bin,sbin,usr,usr/bin,usr/sbin,dev,proc,sys,run,root,etc,mnt}
chmod 1777 "$root/tmp"
install -m 755 "$bx/bin/busybox" "$root/bin/busybox"
# No applet links: `busybox32 APPLET` runs the 32-bit one.
install -m 755 "$bx32/bin/busybox" "$root/bin/busybox32"

# Applet symlinks at build time when the host can run the (static x86-64) busybox;
# otherwise /init falls back to `busybox --install -s` at boot.
if applets=$("$root/bin/busybox" --list-full 2>/dev/null) && [[ -n $applets ]]; then
    while IFS= read -r a; do
        [[ -n $a && $a != */busybox && ! -e $root/$a && ! -L $root/$a ]] || continue
        mkdir -p "$root/$(dirname "$a")"
        ln -s /bin/busybox "$root/$a"
    done <<<"$applets"
    log "created $(wc -l <<<"$applets") applet symlinks"
else
    log "cannot run busybox on this host; applet symlinks will be created at boot"
fi

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
EOF
echo ferrite >"$root/etc/hostname"
chmod 644 "$root"/etc/{passwd,group,hostname}

cat >"$root/init" <<'EOF'
#!/bin/busybox sh
# Ferrite demo guest /init (PID 1). It must never exit: that panics the kernel.
#   no arguments:  interactive shell on the console, power off when it exits
#   arguments:     (kernel command line after " -- ") run as `sh -c "$*"`,
#                  print "FERRITE-EXIT <status>", power off
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=${TERM:-linux}

/bin/busybox mount -t proc proc /proc
[ -x /bin/mount ] || /bin/busybox --install -s
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
hostname -F /etc/hostname 2>/dev/null
exec </dev/console >/dev/console 2>&1

off() {
    sync
    poweroff -f
    # Without ACPI the kernel halts instead ("reboot: System halted") and we
    # never get here; if poweroff itself failed, idle forever instead of exiting.
    while :; do sleep 3600; done
}

# Leading newline: whatever the firmware/kernel printed last may lack one.
printf '\nFERRITE-READY\n'
cd /root
if [ "$#" -gt 0 ]; then
    setsid cttyhack sh -c "$*"
    echo "FERRITE-EXIT $?"
    off
fi
setsid cttyhack sh -l
off
EOF
chmod 755 "$root/init"

# ---------------------------------------------------------------- cpio (newc) + gzip
log "writing initramfs"
cpio_py=$(cat <<'PYEOF'
import os, stat, sys

root, mtime, extras = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
out = sys.stdout.buffer
ino = 1

def entry(name, mode, data=b"", nlink=1, rdev=(0, 0), inode=None):
    global ino
    nb = name.encode() + b"\0"
    fields = (ino if inode is None else inode, mode, 0, 0, nlink, mtime, len(data),
              0, 0, rdev[0], rdev[1], len(nb), 0)
    out.write(b"070701" + "".join("%08X" % f for f in fields).encode() + nb)
    out.write(b"\0" * (-(110 + len(nb)) % 4))
    out.write(data)
    out.write(b"\0" * (-len(data) % 4))
    ino += 1

def walk(rel):
    path = os.path.join(root, rel)
    st = os.lstat(path)
    m = st.st_mode
    if stat.S_ISDIR(m):
        entry(rel, m, nlink=2)
        for n in sorted(os.listdir(path)):
            walk(n if rel == "." else rel + "/" + n)
    elif stat.S_ISLNK(m):
        entry(rel, m, os.readlink(path).encode())
    elif stat.S_ISREG(m):
        with open(path, "rb") as f:
            entry(rel, m, f.read())
    else:
        sys.exit("cpio: unsupported file type: " + path)

walk(".")
for spec in extras:  # "path:c:major:minor:octal-perms" device nodes (no root needed)
    path, kind, major, minor, perm = spec.split(":")
    fmt = {"c": stat.S_IFCHR, "b": stat.S_IFBLK}[kind]
    entry(path, fmt | int(perm, 8), rdev=(int(major), int(minor)))
entry("TRAILER!!!", 0, inode=0)
PYEOF
)
# /dev/console must exist in the initramfs itself: the kernel opens it for
# PID 1's stdin/out/err before /init runs (devtmpfs is mounted over /dev later).
python3 -c "$cpio_py" "$root" "${SOURCE_DATE_EPOCH:-0}" \
        dev/console:c:5:1:600 dev/null:c:1:3:666 \
    | gzip -9 -n >"$work/initrd.img" \
    || die "failed to write the initramfs (python3 cpio writer / gzip)"
gzip -t "$work/initrd.img" || die "generated initrd.img is not valid gzip"

# ---------------------------------------------------------------- install into cache
mkdir -p "$out_dir" || die "cannot create cache directory $out_dir"
rm -f "$stamp"
cp "$vmlinuz" "$out_dir/.vmlinuz.tmp"
cp "$work/initrd.img" "$out_dir/.initrd.img.tmp"
mv -f "$out_dir/.vmlinuz.tmp" "$kernel_out"
mv -f "$out_dir/.initrd.img.tmp" "$initrd_out"
cat >"$out_dir/.stamp.tmp" <<EOF
recipe=$recipe
kernel_package=$kernel_pkg
kernel_version=$kernel_ver
kernel_file=$(basename "$vmlinuz")
busybox_package=$BUSYBOX_PKG
busybox_version=$busybox_ver
busybox32_package=$BUSYBOX32_PKG
busybox32_version=$busybox32_ver
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
mv -f "$out_dir/.stamp.tmp" "$stamp"

log "built $kernel_pkg $kernel_ver + $BUSYBOX_PKG $busybox_ver"
print_outputs
