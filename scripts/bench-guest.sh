#!/usr/bin/env bash
# CPU-bound work inside the Debian demo guest, in one run: natively on the host (the guest's
# own static busybox), on Ferrite's software CPU with the translator ("jit") and with the
# interpreter alone ("interp"), and under QEMU TCG, with the ratios. Each emulator boots the
# same kernel and initramfs, the host measures the time to the guest's FERRITE-READY marker,
# and the guest times each command itself (from /proc/uptime, so the numbers are guest time,
# as a user inside the guest would see them). The commands run twice over: by the 64-bit
# busybox (their sum is the CPU-bound total) and by the guest's i386 busybox (busybox32:
# 32-bit code in compatibility mode, rows ending in -i386, summed as total-i386).
#
# Usage: scripts/bench-guest.sh [--scale N] [--rounds N] [--only native|jit|interp|qemu]...
#                               [-- EXTRA FERRITE FLAGS]
#   --scale N   multiply every workload by N (default 1: about a minute of interpreted work)
#   --rounds N  run the engines N times, interleaved (round 1: every engine, then round 2…),
#               and compare each command's median (default 1). On a shared machine whose
#               speed drifts by tens of percent within minutes, interleaved rounds keep the
#               drift from landing on one engine.
#   --only E    run engine E (repeatable; default: all four)
# Output: one line per engine and command (per round), then "ratio" lines (A / B: how many
# times longer A took than B; below 1, A was faster) from the medians.
set -euo pipefail
cd "$(dirname "$0")/.."

scale=1
rounds=1
only=()
while (($#)); do
    case $1 in
        --scale) scale=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --only)
            [[ $2 =~ ^(native|jit|interp|qemu)$ ]] || { echo "bench-guest: --only takes native, jit, interp or qemu" >&2; exit 2; }
            only+=("$2"); shift 2 ;;
        --) shift; break ;;
        *) echo "bench-guest: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
[[ $scale =~ ^[1-9][0-9]*$ ]] || { echo "bench-guest: --scale needs a positive integer" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench-guest: --rounds needs a positive integer" >&2; exit 2; }
extra=("$@")
wanted() { ((${#only[@]} == 0)) || [[ " ${only[*]} " == *" $1 "* ]]; }

guest=$(bash guests/build-debian-guest.sh)
kernel=$(sed -n 's/^kernel=//p' <<<"$guest")
initrd=$(sed -n 's/^initrd=//p' <<<"$guest")
cargo build --release -q -p frontend --bin ferrite

# The workloads, run by the guest's busybox. Generated data: seq's output, so nothing is read
# from a disk; each command's output goes to /dev/null after the first check.
n_loop=$((20000 * scale))
n_awk=$((100000 * scale))
n_seq=$((300000 * scale))
# The kernel takes at most 32 words after "--" and strips double quotes, so the workload
# travels base64-encoded as one word and the guest's shell decodes it.
read -r -d '' workload <<EOF || true
D=\${D:-/tmp}
t() { read a x < /proc/uptime; \$2 >/dev/null; read b x < /proc/uptime; echo BENCH \$1 \$a \$b; }
shloop() { i=0; while [ \$i -lt $n_loop ]; do i=\$((i+1)); done; }
awkloop() { awk 'BEGIN { s = 0; for (i = 0; i < $n_awk; i++) s += i % 7; print s }'; }
md5() { md5sum \$D/data; }
sha() { sha256sum \$D/data; }
gz() { gzip -c \$D/data | gunzip | md5sum; }
awk32() { busybox32 awk 'BEGIN { s = 0; for (i = 0; i < $n_awk; i++) s += i % 7; print s }'; }
md532() { busybox32 md5sum \$D/data; }
sha32() { busybox32 sha256sum \$D/data; }
gz32() { busybox32 gzip -c \$D/data | busybox32 gunzip | busybox32 md5sum; }
seq 1 $n_seq > \$D/data
t shell-loop shloop
t awk-loop awkloop
t md5sum md5
t sha256sum sha
t gzip-roundtrip gz
t awk-loop-i386 awk32
t md5sum-i386 md532
t sha256sum-i386 sha32
t gzip-i386 gz32
md5sum \$D/data
busybox32 md5sum \$D/data
EOF
append="console=ttyS0 panic=-1 quiet -- echo $(base64 -w0 <<<"$workload") | base64 -d | sh"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Runs one engine for round $round; its serial log goes to $out/NAME.ROUND.log with host
# seconds before each line, its times to $out/NAME.ROUND.sum.
run_engine() {
    local name=$1
    shift
    local start log=$out/$name.$round.log
    start=$(date +%s.%N)
    "$@" </dev/null 2>&1 | while IFS= read -r line; do
        printf '%s %s\n' "$(date +%s.%N)" "$line"
    done >"$log" || true
    awk -v s="$start" -v n="$name" '
        /FERRITE-READY/ && !r { r = $1 - s }
        / BENCH / { t[$3] = $5 - $4; order[++k] = $3 }
        /FERRITE-EXIT/ { e = $3 }
        END {
            printf "%-8s boot-to-ready %8.2f s\n", n, r
            # The 64-bit commands make the CPU-bound total; the i386 busybox'"'"'s (32-bit code in
            # compatibility mode) a total of their own.
            for (i = 1; i <= k; i++) {
                printf "%-8s %-14s %8.2f s\n", n, order[i], t[order[i]]
                if (order[i] ~ /-i386$/) tot32 += t[order[i]]; else tot += t[order[i]]
            }
            printf "%-8s %-14s %8.2f s   (guest exit status %s)\n", n, "total", tot, e
            printf "%-8s %-14s %8.2f s\n", n, "total-i386", tot32
        }' "$log" | tee "$out/$name.$round.sum"
    grep -q "FERRITE-EXIT 0" "$log" || {
        echo "bench-guest: $name did not finish its commands; log tail:" >&2
        tail -20 "$log" >&2
        return 1
    }
}

if wanted native; then
    # The guest's static busybox, taken out of the initramfs (gzip'd newc cpio), with its
    # applets linked into a directory of their own.
    python3 - "$initrd" "$out/busybox" <<'PY'
import gzip, sys
data = gzip.open(sys.argv[1]).read()
at = 0
while data[at:at + 6] == b"070701":
    field = lambda k: int(data[at + 6 + 8 * k: at + 14 + 8 * k], 16)
    size, namesize = field(6), field(11)
    name_at = at + 110
    name = data[name_at:name_at + namesize - 1].decode()
    body = (name_at + namesize + 3) & ~3
    if name in ("bin/busybox", "bin/busybox32"):
        open(sys.argv[2] + name[len("bin/busybox"):], "wb").write(data[body:body + size])
    at = (body + size + 3) & ~3
PY
    [[ -f $out/busybox && -f $out/busybox32 ]] || { echo "bench-guest: no bin/busybox and bin/busybox32 in the initramfs" >&2; exit 1; }
    chmod +x "$out/busybox" "$out/busybox32"
    mkdir -p "$out/bin" "$out/native"
    "$out/busybox" --install -s "$out/bin"
    cp "$out/busybox32" "$out/bin/busybox32"
fi
if wanted qemu && ! command -v qemu-system-x86_64 >/dev/null; then
    echo "bench-guest: qemu-system-x86_64 is not installed; no QEMU column" >&2
fi
for ((round = 1; round <= rounds; round++)); do
    ((rounds == 1)) || echo "round $round of $rounds"
    if wanted native; then
        # Natively there is no boot: the marker comes at once.
        run_engine native env PATH="$out/bin" D="$out/native" "$out/busybox" sh -c \
            "$(printf 'echo FERRITE-READY\n%s\necho FERRITE-EXIT $?\n' "$workload")"
    fi
    if wanted jit; then
        run_engine jit target/release/ferrite run --accel dbt --translator on --memory 512M \
            -no-reboot --kernel "$kernel" --initrd "$initrd" --append "$append" "${extra[@]}"
    fi
    if wanted interp; then
        run_engine interp target/release/ferrite run --accel dbt --translator off --memory 512M \
            -no-reboot --kernel "$kernel" --initrd "$initrd" --append "$append" "${extra[@]}"
    fi
    if wanted qemu && command -v qemu-system-x86_64 >/dev/null; then
        run_engine qemu qemu-system-x86_64 -accel tcg -cpu max -m 512M -nographic -no-reboot \
            -kernel "$kernel" -initrd "$initrd" -append "$append"
    fi
done
# Each engine's median per command over the rounds, to $out/NAME.sum.
for name in native jit interp qemu; do
    compgen -G "$out/$name.*.sum" >/dev/null || continue
    cat "$out/$name".*.sum | awk -v n="$name" -v r="$rounds" '
        { v[$2] = v[$2] " " $3; if (!($2 in seen)) { seen[$2] = 1; order[++k] = $2 } }
        END {
            for (i = 1; i <= k; i++) {
                c = split(substr(v[order[i]], 2), x, " ")
                for (a = 1; a <= c; a++) for (b = a + 1; b <= c; b++) if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
                m = (c % 2) ? x[(c + 1) / 2] : (x[c / 2] + x[c / 2 + 1]) / 2
                printf "%-8s %-14s %8.2f s\n", n, order[i], m
            }
        }' >"$out/$name.sum"
    if ((rounds > 1)); then
        echo "median of $rounds rounds:"
        cat "$out/$name.sum"
    fi
done
# Ratio lines: how many times longer A took than B (below 1: A was faster).
ratio() {
    local a=$1 b=$2
    [[ -s $out/$a.sum && -s $out/$b.sum ]] || return 0
    join -j 2 <(awk '{print $1, $2, $3}' "$out/$a.sum" | sort -k2,2) \
        <(awk '{print $1, $2, $3}' "$out/$b.sum" | sort -k2,2) |
        awk -v a="$a" -v b="$b" '{ r = ($5 > 0) ? $3 / $5 : 0
               printf "ratio %-6s/ %-6s %-14s %8.2f x  (%s s, %s s)\n", a, b, $1, r, $3, $5 }'
}
ratio jit qemu
ratio interp qemu
ratio interp jit
ratio qemu native
ratio jit native
