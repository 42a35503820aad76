#!/usr/bin/env bash
# scripts/qemu-migrate.sh against the direct QMP driver (Benchmarks/qemu/qmp-migrate.py), in the
# same run, interleaved (the order alternates per round), on Benchmarks/qemu/256mib.yaml: 256 MiB
# of device state, 1 MiB chunks, max-bandwidth 64 GiB/s, the same release binaries and QEMU.
#   Benchmarks/qemu/compare.sh [--qemu 7.2|10] [--runs N] [--bounce]
# Prints each run's wall time from `migrate` to the final MIGRATION event next to QEMU's own
# total-time, and whole-run times, then the medians and the median of the per-round ratios
# script / direct. A failed run
# (not completed, or digests that differ) ends the comparison with its output.
set -euo pipefail
cd "$(dirname "$0")/../.."
qemu=7.2 runs=5 bounce=()
while [ $# -gt 0 ]; do
    case "$1" in
        --qemu) qemu=$2; shift ;;
        --runs) runs=$2; shift ;;
        --bounce) bounce=(--bounce) ;;
        *) echo "usage: $0 [--qemu 7.2|10] [--runs N] [--bounce]" >&2; exit 2 ;;
    esac
    shift
done
case "$runs" in ''|*[!0-9]*|0) echo "compare: --runs takes a positive number, not $runs" >&2; exit 2 ;; esac
scratch=${MDEVSIM_SCRATCH:-.build}
swift build -c release --scratch-path "$scratch" --product mdevsim >/dev/null
swift build -c release --scratch-path "$scratch" --product mdevsim-vfio >/dev/null
case=(--qemu "$qemu" --scenario Benchmarks/qemu/256mib.yaml --type mdevsim-256mib --max-bandwidth 68719476736 "${bounce[@]}")
out=$(mktemp /tmp/mdevsim-qemu-compare.XXXXXX)
trap 'rm -f "$out"' EXIT

now_ms() { date +%s%3N; }
# One run of DRIVER (script or direct): its three figures into the arrays.
declare -a script_wall script_total script_run direct_wall direct_total direct_run
run() {
    local driver=$1 t0 t1 wall total
    t0=$(now_ms)
    if [ "$driver" = script ]; then
        scripts/qemu-migrate.sh "${case[@]}" > "$out" 2>&1 || { cat "$out" >&2; echo "compare: the script failed" >&2; exit 1; }
    else
        python3 Benchmarks/qemu/qmp-migrate.py --mdevsim "$scratch/release/mdevsim" "${case[@]}" > "$out" 2>&1 \
            || { cat "$out" >&2; echo "compare: the direct driver failed" >&2; exit 1; }
    fi
    t1=$(now_ms)
    wall=$(grep -oE '^[a-z]+: [0-9]+ ms from migrate' "$out" | grep -oE '[0-9]+' | head -1)
    total=$(grep -oE 'total time: [0-9]+ ms' "$out" | grep -oE '[0-9]+' | head -1)
    [ -n "$wall" ] && [ -n "$total" ] || { cat "$out" >&2; echo "compare: no figures in the $driver's output" >&2; exit 1; }
    eval "${driver}_wall+=($wall) ${driver}_total+=($total) ${driver}_run+=($((t1 - t0)))"
    printf '%-6s run %d: %5d ms migrate -> completed, QEMU total-time %5d ms, whole run %6d ms\n' \
        "$driver" "$round" "$wall" "$total" "$((t1 - t0))"
}
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
range() { printf '%s\n' "$@" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo ".." hi }'; }

echo "QEMU $qemu, 256 MiB of device state, $runs rounds, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$runs"); do
    if [ $((round % 2)) -eq 1 ]; then run script; run direct; else run direct; run script; fi
done
# A ratio per round (both drivers within a minute of each other), then their median and range:
# the machine's load moves between rounds far more than within one.
for figure in wall total run; do
    s="script_$figure[@]" d="direct_$figure[@]"
    sv=("${!s}") dv=("${!d}") ratios=()
    for i in "${!sv[@]}"; do ratios+=("$(awk -v a="${sv[$i]}" -v b="${dv[$i]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"); done
    case $figure in
        wall) label="migrate -> completed (wall)" ;;
        total) label="QEMU's total-time          " ;;
        run) label="whole run                  " ;;
    esac
    printf '%s  script %5d ms (%s)  direct %5d ms (%s)  script / direct %sx (%s)\n' "$label" \
        "$(median "${sv[@]}")" "$(range "${sv[@]}")" "$(median "${dv[@]}")" "$(range "${dv[@]}")" \
        "$(printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')" \
        "$(range "${ratios[@]}")"
done
