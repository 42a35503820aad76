#!/usr/bin/env bash
# Live-migrates a guest that carries an mdevsim device between two unmodified QEMU 7.2 (migration
# v1) or, with --qemu 10, QEMU 10.0 (migration v2) processes on 127.0.0.1, through
# libmdevsim-vfio.so (see README, "Real QEMU").
#   scripts/qemu-migrate.sh [--qemu 7.2|10] [--bounce] [--scenario FILE] [--type TYPE] [--max-bandwidth BYTES_PER_S]
# Needs qemu-system-x86_64 (scripts/ensure-deps.sh --with-qemu installs it as root, and QEMU 10.0
# into $MDEVSIM_QEMU10_ROOT or /opt/mdevsim-qemu10) and /dev/fuse. With --qemu 10 the default
# scenario is scenarios/qemu10.yaml (its type mdevsim-both speaks v1 and v2).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario= type= bounce=() bandwidth= qemu=7.2
while [ $# -gt 0 ]; do
    case "$1" in
        --qemu) qemu=$2; shift ;;
        --bounce) bounce=(--bounce) ;;
        --scenario) scenario=$2; shift ;;
        --type) type=$2; shift ;;
        --max-bandwidth) bandwidth=$2; shift ;; # QEMU's default is 128MiB/s
        *) echo "usage: $0 [--qemu 7.2|10] [--bounce] [--scenario FILE] [--type TYPE] [--max-bandwidth BYTES_PER_S]" >&2; exit 2 ;;
    esac
    shift
done
case "$qemu" in
    7.2|7) qemu_bin=qemu-system-x86_64 qemu=7.2
        scenario=${scenario:-scenarios/default.yaml} type=${type:-mdevsim-default} ;;
    10|10.0) qemu_bin=${MDEVSIM_QEMU10_ROOT:-/opt/mdevsim-qemu10}/usr/bin/qemu-system-x86_64 qemu=10
        scenario=${scenario:-scenarios/qemu10.yaml} type=${type:-mdevsim-both}
        if [ ! -x "$qemu_bin" ]; then
            echo "qemu-migrate: $qemu_bin is missing: run scripts/install-qemu10.sh as root" >&2
            exit 1
        fi ;;
    *) echo "qemu-migrate: --qemu takes 7.2 or 10, not $qemu" >&2; exit 2 ;;
esac
swift build -c release --product mdevsim >/dev/null
swift build -c release --product mdevsim-vfio >/dev/null
mdevsim=.build/release/mdevsim

work=$(mktemp -d /tmp/mdevsim-qemu.XXXXXX)
mnt=$work/mnt
mkdir "$mnt"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$mdevsim" unmount "$mnt" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

"$mdevsim" mount "$mnt" --scenario "$scenario"
src=$(cat /proc/sys/kernel/random/uuid) dst=$(cat /proc/sys/kernel/random/uuid)
echo "$src" > "$mnt/mdev_supported_types/$type/create"
echo "$dst" > "$mnt/mdev_supported_types/$type/create"

# One QEMU per device; its human monitor on a pair of FIFOs (NAME.in, NAME.out).
start_qemu() { # name uuid extra-args...
    local name=$1 uuid=$2
    shift 2
    mkfifo "$work/$name.in" "$work/$name.out"
    env $("$mdevsim" qemu-args "$uuid" --mount "$mnt" --env-only --qemu "$qemu" "${bounce[@]}") \
        "$qemu_bin" -machine q35 -accel tcg -m 128 -nographic -nodefaults -display none -serial none \
        -monitor "pipe:$work/$name" $("$mdevsim" qemu-args "$uuid" --mount "$mnt" --device-only --qemu "$qemu") "$@" \
        > "$work/$name.log" 2>&1 &
    pids+=($!)
    cat "$work/$name.out" > "$work/$name.monitor" &
    pids+=($!)
}
monitor() { echo "$2" > "$work/$1.in"; }

port=$((20000 + RANDOM % 20000))
start_qemu source "$src"
start_qemu destination "$dst" -S -incoming "tcp:127.0.0.1:$port"
sleep 1
[ -z "$bandwidth" ] || monitor source "migrate_set_parameter max-bandwidth $bandwidth"
monitor source "migrate -d tcp:127.0.0.1:$port"
for _ in $(seq 1 600); do
    monitor source "info migrate"
    sleep 0.2
    if grep -qE "^Migration status: (completed|failed|cancelled)" "$work/source.monitor"; then break; fi
done
status=$(grep -oE "^Migration status: [a-z]+" "$work/source.monitor" | tail -1)
echo "source: $status"
grep -E "^(total time|downtime):" "$work/source.monitor" | tail -2 | sed 's/^/source: /'
if [ "$status" = "Migration status: completed" ]; then
    monitor destination "cont"
    sleep 0.5
fi
# The device's state: v1's state_name, or under QEMU 10 every v2 state it entered.
device_state() {
    if [ "$qemu" = 10 ]; then echo "v2 states: $(cat "$mnt/devices/$1/mig_state_log")"
    else grep -o '"state_name":"[a-z-]*"' "$mnt/devices/$1/state"; fi
}
echo "source device:      $(cat "$mnt/devices/$src/digest") $(device_state "$src")"
echo "destination device: $(cat "$mnt/devices/$dst/digest") $(device_state "$dst")"
echo "violations: source $(wc -l < "$mnt/devices/$src/violations"), destination $(wc -l < "$mnt/devices/$dst/violations")"
monitor source quit
monitor destination quit 2>/dev/null || true
[ "$status" = "Migration status: completed" ] && [ "$(cat "$mnt/devices/$src/digest")" = "$(cat "$mnt/devices/$dst/digest")" ]
