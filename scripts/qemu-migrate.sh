#!/usr/bin/env bash
# Live-migrates a guest that carries an mdevsim device between two unmodified QEMU 7.2 (migration
# v1) or, with --qemu 10, QEMU 10.0 (migration v2) processes on 127.0.0.1, through
# libmdevsim-vfio.so (see README, "Real QEMU").
#   scripts/qemu-migrate.sh [--qemu 7.2|10] [--bounce] [--scenario FILE] [--type TYPE] [--max-bandwidth BYTES_PER_S]
#                           [--timeout SECONDS]
# --max-bandwidth is in bytes per second; it reaches the human monitor with a "B" suffix (HMP's
# migrate_set_parameter reads a bare number as MiB/s). Every wait is bounded: a QEMU that fails to
# start or exits ends the script with its log; a migration not finished within --timeout (default
# 120 s) is reported and ended. The script prints QEMU's own total time and its own wall-clock
# time from `migrate` to the completed status.
# Needs qemu-system-x86_64 (scripts/ensure-deps.sh --with-qemu installs it as root, and QEMU 10.0
# into $MDEVSIM_QEMU10_ROOT or /opt/mdevsim-qemu10) and /dev/fuse. With --qemu 10 the default
# scenario is scenarios/qemu10.yaml (its type mdevsim-both speaks v1 and v2).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario= type= bounce=() bandwidth= qemu=7.2 timeout=120
while [ $# -gt 0 ]; do
    case "$1" in
        --qemu) qemu=$2; shift ;;
        --bounce) bounce=(--bounce) ;;
        --scenario) scenario=$2; shift ;;
        --type) type=$2; shift ;;
        --max-bandwidth) bandwidth=$2; shift ;; # bytes/s; QEMU's default is 128 MiB/s
        --timeout) timeout=$2; shift ;;
        *) echo "usage: $0 [--qemu 7.2|10] [--bounce] [--scenario FILE] [--type TYPE] [--max-bandwidth BYTES_PER_S] [--timeout SECONDS]" >&2; exit 2 ;;
    esac
    shift
done
case "$bandwidth" in
    ''|*[!0-9]*) [ -z "$bandwidth" ] || { echo "qemu-migrate: --max-bandwidth takes bytes per second (digits only), not $bandwidth" >&2; exit 2; } ;;
esac
case "$timeout" in ''|*[!0-9]*) echo "qemu-migrate: --timeout takes whole seconds, not $timeout" >&2; exit 2 ;; esac
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
# MDEVSIM_SCRATCH: the build directory (default .build; scripts/bench-fuse.sh uses .build-fusebench).
scratch=${MDEVSIM_SCRATCH:-.build}
swift build -c release --scratch-path "$scratch" --product mdevsim >/dev/null
swift build -c release --scratch-path "$scratch" --product mdevsim-vfio >/dev/null
mdevsim=$scratch/release/mdevsim

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

# One QEMU per device; its human monitor on a pair of FIFOs (NAME.in, NAME.out), and a QMP
# monitor on another (NAME.qmp.in, NAME.qmp.out) for its MIGRATION events only: the script waits
# for the event instead of polling `info migrate`. Polling cost the migration itself: with
# `info migrate` every 200 ms (the former loop) QEMU's total time for 256 MiB of device state was
# 2.7 s, every 20 ms 3.9-4.6 s, every 500 ms 0.85 s, against 1.4-1.6 s for a QMP driver in the
# same minute (each poll also forks on a 2-CPU machine the migration needs).
declare -A qemu_pid
start_qemu() { # name uuid extra-args...
    local name=$1 uuid=$2
    shift 2
    mkfifo "$work/$name.in" "$work/$name.out" "$work/$name.qmp.in" "$work/$name.qmp.out"
    env $("$mdevsim" qemu-args "$uuid" --mount "$mnt" --env-only --qemu "$qemu" "${bounce[@]}") \
        "$qemu_bin" -machine q35 -accel tcg -m 128 -nographic -nodefaults -display none -serial none \
        -monitor "pipe:$work/$name" -chardev "pipe,id=qmp,path=$work/$name.qmp" -mon chardev=qmp,mode=control \
        $("$mdevsim" qemu-args "$uuid" --mount "$mnt" --device-only --qemu "$qemu") "$@" \
        > "$work/$name.log" 2>&1 &
    qemu_pid[$name]=$!
    pids+=($!)
    cat "$work/$name.out" > "$work/$name.monitor" &
    pids+=($!)
    cat "$work/$name.qmp.out" > "$work/$name.events" &
    pids+=($!)
}
# A command to NAME's monitor. The FIFO's reader is QEMU: if it is gone, opening the FIFO would
# block forever, so the write is bounded.
monitor() {
    timeout 5 bash -c 'echo "$2" > "$1"' _ "$work/$1.in" "$2" || fail "$1: the monitor did not take \"$2\""
}
fail() {
    echo "qemu-migrate: $*" >&2
    for name in source destination; do
        [ -s "$work/$name.log" ] && { echo "--- $name QEMU log (last lines):" >&2; tail -n 15 "$work/$name.log" >&2; }
    done
    exit 1
}
alive() { kill -0 "${qemu_pid[$1]}" 2>/dev/null; }
# Waits (bounded) until NAME's monitors are up: QEMU started, the device realized. QMP sends
# events once its capabilities are negotiated.
wait_ready() {
    local name=$1 deadline=$((SECONDS + 30))
    until grep -q '(qemu)' "$work/$name.monitor" 2>/dev/null && grep -q '"QMP"' "$work/$name.events" 2>/dev/null; do
        alive "$name" || fail "$name QEMU exited during start-up"
        [ $SECONDS -lt $deadline ] || fail "$name QEMU's monitors did not answer within 30 s"
        sleep 0.02
    done
    timeout 5 bash -c 'echo "{\"execute\": \"qmp_capabilities\"}" > "$1"' _ "$work/$name.qmp.in" || fail "$name: QMP did not take qmp_capabilities"
}

now_ms() { date +%s%3N; }

port=$((20000 + RANDOM % 20000))
start_qemu source "$src"
start_qemu destination "$dst" -S -incoming "tcp:127.0.0.1:$port"
wait_ready source
wait_ready destination
if [ -n "$bandwidth" ]; then
    monitor source "migrate_set_parameter max-bandwidth ${bandwidth}B"
    monitor source "info migrate_parameters"
fi
# QEMU 7.2 and 10.0 send MIGRATION events only with this capability on.
monitor source "migrate_set_capability events on"
started=$(now_ms)
monitor source "migrate -d tcp:127.0.0.1:$port"
# Blocks on the event stream (bash's read, no process per check): ends at the final MIGRATION
# event, when the source QEMU exits (tail --pid), or at the deadline.
exec {events}< <(tail -n +1 -f --pid="${qemu_pid[source]}" "$work/source.events")
pids+=($!)
deadline=$((SECONDS + timeout))
final=
while [ -z "$final" ] && [ $SECONDS -lt $deadline ]; do
    rc=0
    IFS= read -r -t "$((deadline - SECONDS + 1))" line <&"$events" || rc=$?
    [ $rc -le 128 ] || continue # timed out (or interrupted): the loop checks the deadline
    [ $rc -eq 0 ] || break      # end of the stream: the source QEMU exited
    case "$line" in
        *'"event": "MIGRATION"'*'"status": "completed"'*) final=completed ;;
        *'"event": "MIGRATION"'*'"status": "failed"'*) final=failed ;;
        *'"event": "MIGRATION"'*'"status": "cancelled"'*) final=cancelled ;;
    esac
done
finished=$(now_ms)
if [ -z "$final" ]; then
    alive source || fail "the source QEMU exited during the migration"
    monitor source "migrate_cancel"
    fail "the migration did not finish within $timeout s (--timeout)"
fi
alive destination || fail "the destination QEMU exited during the migration"
# QEMU's own figures of the migration, from the human monitor.
monitor source "info migrate"
for _ in $(seq 1 250); do grep -qE "^Migration status: (completed|failed|cancelled)" "$work/source.monitor" && break; sleep 0.02; done
if [ -n "$bandwidth" ]; then
    echo "source: max-bandwidth $(grep -oE '^max-bandwidth: [0-9]+ bytes/second' "$work/source.monitor" | tail -1 | cut -d' ' -f2-)"
fi
status=$(grep -oE "^Migration status: [a-z]+" "$work/source.monitor" | tail -1)
echo "source: $status"
grep -E "^(total time|downtime):" "$work/source.monitor" | tail -2 | sed 's/^/source: /'
echo "script: $((finished - started)) ms from migrate to QMP's MIGRATION event ($final)"
if [ "$status" = "Migration status: completed" ]; then
    monitor destination "cont"
    # Until the destination runs (its device is then set running), bounded.
    deadline=$((SECONDS + 10))
    until grep -q '^VM status: running' "$work/destination.monitor"; do
        [ $SECONDS -lt $deadline ] || fail "the destination did not run within 10 s of cont"
        alive destination || fail "the destination QEMU exited after cont"
        monitor destination "info status"
        sleep 0.02
    done
fi
# The device's state: v1's state_name, or under QEMU 10 every v2 state it entered.
device_state() {
    if [ "$qemu" = 10 ]; then echo "v2 states: $(cat "$mnt/devices/$1/mig_state_log")"
    else grep -o '"state_name":"[a-z-]*"' "$mnt/devices/$1/state"; fi
}
echo "source device:      $(cat "$mnt/devices/$src/digest") $(device_state "$src")"
echo "destination device: $(cat "$mnt/devices/$dst/digest") $(device_state "$dst")"
echo "violations: source $(wc -l < "$mnt/devices/$src/violations"), destination $(wc -l < "$mnt/devices/$dst/violations")"
for name in source destination; do
    timeout 5 bash -c 'echo quit > "$1"' _ "$work/$name.in" 2>/dev/null || true
done
[ "$status" = "Migration status: completed" ] && [ "$(cat "$mnt/devices/$src/digest")" = "$(cat "$mnt/devices/$dst/digest")" ]
