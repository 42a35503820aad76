#!/usr/bin/env bash
# Live-migrates a guest that carries an mdevsim device between two unmodified QEMU 7.2 (migration
# v1) or, with --qemu 10, QEMU 10.0 (migration v2) processes on 127.0.0.1, through
# libmdevsim-vfio.so (see README, "Real QEMU").
#   scripts/qemu-migrate.sh [--qemu 7.2|10] [--bounce] [--scenario FILE] [--type TYPE] [--max-bandwidth BYTES_PER_S]
#                           [--timeout SECONDS]
# The script drives both QEMUs through QMP (QEMU's machine monitor), whose max-bandwidth is in
# bytes per second, as --max-bandwidth is. Every wait is bounded: a QEMU that fails to start or
# exits ends the script with its log; a migration not finished within --timeout (default 120 s)
# is reported and ended. At the end it prints its own wall-clock time from `migrate` to the
# completed event next to QEMU's own total-time.
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
mdevsim=$scratch/release/mdevsim
# Builds only when a source is newer than the two products: a no-op `swift build` per product
# costs 1.5-2.5 s here, and 20-40 s when it re-plans (each --product, or another scratch path's
# flags, invalidates the last plan), which was most of a run's wall time.
if [ ! -x "$mdevsim" ] || [ ! -e "$scratch/release/libmdevsim-vfio.so" ] \
    || [ -n "$(find Package.swift Sources Plugins -newer "$mdevsim" -print -quit 2>/dev/null)" ] \
    || [ -n "$(find Sources/CMdevsimVFIO -newer "$scratch/release/libmdevsim-vfio.so" -print -quit 2>/dev/null)" ]; then
    swift build -c release --scratch-path "$scratch" --product mdevsim >/dev/null
    swift build -c release --scratch-path "$scratch" --product mdevsim-vfio >/dev/null
fi

work=$(mktemp -d /tmp/mdevsim-qemu.XXXXXX)
mnt=$work/mnt
mkdir "$mnt"
declare -A qemu_pid qmp_in qmp_out
cleanup() {
    local name
    for name in "${!qemu_pid[@]}"; do kill "${qemu_pid[$name]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    "$mdevsim" unmount "$mnt" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

"$mdevsim" mount "$mnt" --scenario "$scenario"
src=$(cat /proc/sys/kernel/random/uuid) dst=$(cat /proc/sys/kernel/random/uuid)
echo "$src" > "$mnt/mdev_supported_types/$type/create"
echo "$dst" > "$mnt/mdev_supported_types/$type/create"

fail() {
    echo "qemu-migrate: $*" >&2
    for name in source destination; do
        [ -s "$work/$name.log" ] && { echo "--- $name QEMU log (last lines):" >&2; tail -n 15 "$work/$name.log" >&2; }
    done
    exit 1
}
alive() { kill -0 "${qemu_pid[$1]}" 2>/dev/null; }

# One QEMU per device, with a QMP monitor on QEMU's pipe chardev (NAME.qmp.in, NAME.qmp.out) that
# this shell holds open for the whole run: a command is one write and its answer read from the
# same descriptors, with no process started per command. (The former script sent each
# human-monitor command through a fresh `timeout bash -c`, kept a `cat` per FIFO and a `tail -f`
# on the event log, and waited for their output with sleep-and-grep loops.)
# NAME.qmp.in is a FIFO, which the shell opens read-write: that never blocks, nor gives SIGPIPE
# when QEMU is gone. NAME.qmp.out, where QEMU writes, is a regular file (QEMU's chardev opens
# either kind): bash reads a pipe one byte per read(2), which for QEMU 7.2's ~200 MIGRATION_PASS
# events of a 256 MiB migration cost the shell 0.14-0.15 s of CPU during the migration (on 2
# CPUs shared with both QEMUs and the daemon, QEMU's total-time was 5-15% longer than a direct
# driver's), while a regular file is read in blocks. At the file's end the shell waits 10 ms in
# a builtin read on a FIFO nobody writes (no process), then looks again.
mkfifo "$work/tick"
exec {tick}<>"$work/tick"
start_qemu() { # name uuid extra-args...
    local name=$1 uuid=$2 env_line device_line fd
    shift 2
    mkfifo "$work/$name.qmp.in"
    : > "$work/$name.qmp.out"
    exec {fd}<>"$work/$name.qmp.in"; qmp_in[$name]=$fd
    exec {fd}<"$work/$name.qmp.out"; qmp_out[$name]=$fd
    # One qemu-args call prints both lines: the environment, then the -device argument.
    { read -r env_line; read -r device_line; } < <("$mdevsim" qemu-args "$uuid" --mount "$mnt" --qemu "$qemu" "${bounce[@]}")
    [ -n "$device_line" ] || fail "mdevsim qemu-args printed no -device argument for $uuid"
    (
        # QEMU inherits none of this shell's monitor descriptors.
        for fd in "${qmp_in[@]}" "${qmp_out[@]}" "$tick"; do eval "exec $fd<&-"; done
        # shellcheck disable=SC2086 # both lines are word lists by design (as `env $(...)` would split them)
        exec env $env_line "$qemu_bin" -machine q35 -accel tcg -m 128 -nographic -nodefaults -display none \
            -serial none -monitor none -chardev "pipe,id=qmp,path=$work/$name.qmp" -mon chardev=qmp,mode=control \
            $device_line "$@"
    ) > "$work/$name.log" 2>&1 &
    qemu_pid[$name]=$!
}
# Reads one QMP message of NAME into $msg, waiting at most until the absolute deadline $2 (in
# $SECONDS); while there is none it checks every 10 ms that QEMU is still there. Returns 1 at
# the deadline, 2 when QEMU is gone (each caller says what it was waiting for). A final
# MIGRATION status is remembered in $migration_final (NAME.qmp.out is the whole record).
# (A read that meets the end of the file inside a line keeps that part for the next read.)
migration_final=
declare -A qmp_partial
qmp_read() { # name deadline
    local rc
    while :; do
        # Checked before each read: a stream of events (QEMU 7.2 sends a MIGRATION_PASS per
        # pass) must not extend a wait.
        [ $SECONDS -lt "$2" ] || return 1
        rc=0
        IFS= read -r msg <&"${qmp_out[$1]}" || rc=$?
        if [ $rc -eq 0 ]; then
            msg=${qmp_partial[$1]:-}$msg
            qmp_partial[$1]=
            case "$msg" in
                *'"event"'*)
                    case "$msg" in
                        *'"event": "MIGRATION"'*'"status": "completed"'*) migration_final=completed ;;
                        *'"event": "MIGRATION"'*'"status": "failed"'*) migration_final=failed ;;
                        *'"event": "MIGRATION"'*'"status": "cancelled"'*) migration_final=cancelled ;;
                    esac ;;
            esac
            return 0
        fi
        [ $rc -eq 1 ] || fail "$1: reading its QMP monitor failed"
        qmp_partial[$1]=${qmp_partial[$1]:-}$msg
        alive "$1" || return 2
        read -r -t 0.01 <&"$tick" || true
    done
}
# Runs one QMP command on NAME; its answer (the whole "return" or "error" line) in $reply.
qmp() { # name json [timeout-seconds]
    local deadline=$((SECONDS + ${3:-10})) rc
    alive "$1" || fail "$1 QEMU exited before $2"
    printf '%s\n' "$2" >&"${qmp_in[$1]}"
    while :; do
        rc=0
        qmp_read "$1" "$deadline" || rc=$?
        [ $rc -ne 2 ] || fail "$1 QEMU exited before it answered $2"
        [ $rc -eq 0 ] || fail "$1: no answer to $2 within ${3:-10} s"
        case "$msg" in
            *'"return"'*) reply=$msg; return 0 ;;
            *'"error"'*) fail "$1: $2 failed: $msg" ;;
        esac
    done
}
# A number field of a QMP answer: json_number KEY (from $reply).
json_number() { [[ $reply =~ \"$1\":\ *([0-9]+) ]] && echo "${BASH_REMATCH[1]}"; }
json_string() { [[ $reply =~ \"$1\":\ *\"([^\"]*)\" ]] && echo "${BASH_REMATCH[1]}"; }
# Waits (bounded) for NAME's greeting, then negotiates: once qmp_capabilities answers, QEMU's
# main loop runs and the device is realized.
wait_ready() {
    local deadline=$((SECONDS + 30)) rc
    until [[ ${msg:-} == *'"QMP"'* ]]; do
        rc=0
        qmp_read "$1" "$deadline" || rc=$?
        [ $rc -ne 2 ] || fail "$1 QEMU exited during start-up"
        [ $rc -eq 0 ] || fail "$1 QEMU's monitor did not answer within 30 s"
    done
    msg=
    qmp "$1" '{"execute": "qmp_capabilities"}'
}

port=$((20000 + RANDOM % 20000))
start_qemu source "$src"
start_qemu destination "$dst" -S -incoming "tcp:127.0.0.1:$port"
wait_ready source
wait_ready destination
if [ -n "$bandwidth" ]; then
    qmp source "{\"execute\": \"migrate-set-parameters\", \"arguments\": {\"max-bandwidth\": $bandwidth}}"
    qmp source '{"execute": "query-migrate-parameters"}'
    echo "source: max-bandwidth $(json_number max-bandwidth) bytes/second"
fi
# QEMU 7.2 and 10.0 send MIGRATION events only with this capability on.
qmp source '{"execute": "migrate-set-capabilities", "arguments": {"capabilities": [{"capability": "events", "state": true}]}}'
started=${EPOCHREALTIME/[.,]/}
qmp source "{\"execute\": \"migrate\", \"arguments\": {\"uri\": \"tcp:127.0.0.1:$port\"}}"
# Blocks on the source's QMP stream until the final MIGRATION event (qmp_read records it), the
# source QEMU's exit or the deadline.
deadline=$((SECONDS + timeout))
rc=0
while [ -z "$migration_final" ] && [ $rc -eq 0 ]; do qmp_read source "$deadline" || rc=$?; done
finished=${EPOCHREALTIME/[.,]/}
[ $rc -ne 2 ] || fail "the source QEMU exited during the migration"
if [ -z "$migration_final" ]; then
    qmp source '{"execute": "migrate_cancel"}'
    fail "the migration did not finish within $timeout s (--timeout)"
fi
alive destination || fail "the destination QEMU exited during the migration"
# QEMU's own figures. It sends the completed event before it computes total-time and downtime,
# and a query in between reads 0 for both: asked again (bounded) until they are there.
qmp source '{"execute": "query-migrate"}'
for _ in $(seq 1 100); do
    [ "$migration_final" = completed ] && [ "$(json_number total-time)" = 0 ] || break
    read -r -t 0.02 <&"$tick" || true
    qmp source '{"execute": "query-migrate"}'
done
status=$(json_string status)
total=$(json_number total-time || echo "?")
echo "source: Migration status: $status"
echo "source: total time: $total ms"
echo "source: downtime: $(json_number downtime || echo "?") ms"
if [ "$status" = completed ]; then
    qmp destination '{"execute": "cont"}'
    # Until the destination runs (its device is then set running), bounded.
    deadline=$((SECONDS + 10))
    until { alive destination || fail "the destination QEMU exited after cont"; } \
        && qmp destination '{"execute": "query-status"}' && [ "$(json_string status)" = running ]; do
        [ $SECONDS -lt $deadline ] || fail "the destination did not run within 10 s of cont"
    done
fi
# The device's state: v1's state_name, or under QEMU 10 every v2 state it entered.
device_state() {
    if [ "$qemu" = 10 ]; then echo "v2 states: $(cat "$mnt/devices/$1/mig_state_log")"
    else grep -o '"state_name":"[a-z-]*"' "$mnt/devices/$1/state"; fi
}
# Each digest once: the daemon hashes the whole device memory per read (about 0.4 s for 256 MiB here).
src_digest=$(cat "$mnt/devices/$src/digest") dst_digest=$(cat "$mnt/devices/$dst/digest")
echo "source device:      $src_digest $(device_state "$src")"
echo "destination device: $dst_digest $(device_state "$dst")"
echo "violations: source $(wc -l < "$mnt/devices/$src/violations"), destination $(wc -l < "$mnt/devices/$dst/violations")"
echo "script: $(((finished - started) / 1000)) ms from migrate to QMP's MIGRATION event ($migration_final); QEMU's total-time $total ms"
for name in source destination; do
    alive "$name" && printf '%s\n' '{"execute": "quit"}' >&"${qmp_in[$name]}"
done
[ "$status" = completed ] && [ "$src_digest" = "$dst_digest" ]
