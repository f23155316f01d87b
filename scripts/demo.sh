#!/usr/bin/env bash
# Boots Ferrite's demo guest: a stock Debian kernel with a busybox initramfs, built from
# Debian packages into a cache outside the repository (guests/build-debian-guest.sh).
# The accelerator is chosen by Ferrite (--accel auto): KVM where it is backed by VT-x/AMD-V,
# the software CPU elsewhere. Extra arguments go to ferrite (e.g. --accel kvm, -smp 2).
# Without a command after "--" the guest starts an interactive shell (Ctrl-A x quits).
#
# Usage: scripts/demo.sh [FERRITE FLAGS...] [-- GUEST COMMAND]
set -euo pipefail
cd "$(dirname "$0")/.."

flags=()
while (($#)) && [[ $1 != -- ]]; do
    flags+=("$1")
    shift
done
[[ ${1:-} == -- ]] && shift
guest_cmd="$*"

guest=$(bash guests/build-debian-guest.sh)
kernel=$(sed -n 's/^kernel=//p' <<<"$guest")
initrd=$(sed -n 's/^initrd=//p' <<<"$guest")
cargo build --release -q -p frontend --bin ferrite

echo "demo: where --accel auto picks the software CPU (no VT-x/AMD-V, or a PVM /dev/kvm), the" \
    "guest takes about half a minute to reach its shell (the translator; --translator off," \
    "the interpreter alone, about seven). Ctrl-A x quits." >&2
append="console=ttyS0 panic=-1 quiet"
[[ -n $guest_cmd ]] && append+=" -- $guest_cmd"
# -no-reboot: a guest that resets or triple-faults ends the demo instead of looping.
exec target/release/ferrite run --accel auto --memory 512M -no-reboot \
    --kernel "$kernel" --initrd "$initrd" --append "$append" "${flags[@]}"
