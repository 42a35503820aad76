#!/usr/bin/env bash
# The FUSE benchmark: mdevsim's region files against a bare libfuse C daemon doing the same
# things with the same loop (Benchmarks/fuse/bare_region.c), timed by one C client
# (Benchmarks/fuse/client.c) against both in the same run, interleaved:
#   1. header access latency (8-byte pread at offset 8)        goal: mdevsim <= 1.05x bare
#   2. 1 MiB pread throughput from the data section             goal: mdevsim >= 0.95x bare
#   3. a pre-copy pass saved by pread, resumed by pwrite        goal: mdevsim >= 1.0x bare
#   4. save+resume of 1 MiB chunks through the mapping         goal: mdevsim >= 0.95x bare (+ ratio to memcpy)
#   5. 4, 16, 64 concurrent source/destination pairs through one mdevsim mount, mapped and by
#      pread/pwrite, aggregate GB/s, next to as many pairs     goal: 64 pairs >= 0.9x the 4-pair aggregate
#      of the bare daemon's regions
#   6. a 4 GiB in-process migration (no FUSE) against memcpy    goal: >= 0.5x memcpy (smaller, and said
#      of the same bytes                                              so, if 4 GiB does not fit MemAvailable)
#   7. a 64 GiB device through one mount                      goal: daemon RSS < 512 MiB a side
#   8. the bundled large-sparse scenario as `mdevsim run`      goal: in the default run, < 10 s
#      runs it, through FUSE and in process
# It prints figures and ratios; it is not a pass/fail test (the machine is shared and noisy).
#
#   scripts/bench-fuse.sh                  # the documented command (a few minutes after the build)
#   scripts/bench-fuse.sh --repeats 11     # extra arguments go to `mdevsim-bench fuse` (see --help)
#   scripts/bench-fuse.sh --readme         # prints only the README's performance table (markdown,
#                                          # dated) on stdout; everything else goes to stderr
#
# Needs root (or fusermount3) and /dev/fuse. Builds, with nothing installed beyond
# scripts/ensure-deps.sh: the C daemon with cc and pkg-config fuse3, and mdevsim-bench in release
# mode under .build-fusebench (override with MDEVSIM_FUSEBENCH_SCRATCH). Every mount it creates
# lives under one temporary directory and is unmounted on exit, on failure and on Ctrl-C.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scratch=${MDEVSIM_FUSEBENCH_SCRATCH:-.build-fusebench}
args=()
readme=false
for a in "$@"; do
    if [ "$a" = --readme ]; then readme=true; args+=(--markdown); else args+=("$a"); fi
done
# --readme: stdout carries the table alone (fd 3); the build and progress lines go to stderr.
if $readme; then exec 3>&1 1>&2; else exec 3>&1; fi

"$root/scripts/ensure-deps.sh"

work=$(mktemp -d /tmp/mdevsim-fusebench.XXXXXX)
bench_pid=""

cleanup() {
    local rc=${1:-$?}
    trap - EXIT INT TERM
    if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
        kill -TERM "$bench_pid" 2>/dev/null || true
        wait "$bench_pid" 2>/dev/null || true
    fi
    # Daemons the bench started and could not stop (it died): end them by their recorded ids.
    for pidfile in "$work"/mnt/*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    sleep 0.2
    # Any mount left under the work directory.
    for m in $(awk -v w="$work/" 'index($2, w) == 1 { print $2 }' /proc/mounts); do
        umount -l "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || echo "bench-fuse: could not unmount $m" >&2
    done
    for pidfile in "$work"/mnt/*.pid; do
        [ -e "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    done
    if awk -v w="$work/" 'index($2, w) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        echo "bench-fuse: mounts are still left under $work" >&2
        rc=1
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'cleanup 130' INT
trap 'cleanup 143' TERM

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r), libfuse $(pkg-config --modversion fuse3)"

echo "== building the bare C daemon and the C client (Benchmarks/fuse/bare_region.c, client.c)"
mkdir -p "$scratch"
# shellcheck disable=SC2046
cc -O2 -Wall -Wextra -Werror -o "$scratch/bare_region" Benchmarks/fuse/bare_region.c $(pkg-config --cflags --libs fuse3) -lpthread
cc -O2 -Wall -Wextra -Werror -o "$scratch/region_client" Benchmarks/fuse/client.c

echo "== building mdevsim-bench (release, --scratch-path $scratch)"
swift build -c release --scratch-path "$scratch" --product mdevsim-bench 2>&1 | grep -Ev '^\[[0-9]+/[0-9]+\]' || true
bin="$scratch/release/mdevsim-bench"
[ -x "$bin" ] || { echo "bench-fuse: $bin was not built" >&2; exit 1; }

echo "== running: $bin fuse --bare-daemon $scratch/bare_region --client $scratch/region_client ${args[*]}"
mkdir -p "$work/mnt"
"$bin" fuse --bare-daemon "$scratch/bare_region" --client "$scratch/region_client" --workdir "$work/mnt" "${args[@]}" >&3 &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=""
exit "$status"
