#!/usr/bin/env bash
# The engine suites (DeviceSimulatorTests) under ThreadSanitizer, and the engine and FUSE suites
# (DeviceSimulatorTests, FUSEKitTests, MdevFSTests) under AddressSanitizer, each in its own
# scratch directory (.build-tsan, .build-asan: git-ignored, apart from the normal .build).
# Not part of scripts/test.sh (CI time): each sanitizer builds everything again. On the 2-core
# CI machine kind, shared with other builds, a run took about 45 minutes: TSan 16 min to build
# and 8.5 min of tests, ASan 19 min to build and 2.5 min of tests (README, "Soak and sanitizers").
#
#   scripts/sanitize.sh              # both
#   scripts/sanitize.sh thread       # one: thread | address
#
# Prints each sanitizer's reports (from the test logs, also left in .build-{tsan,asan}/sanitize.log)
# and exits non-zero if a sanitizer reported anything or a test failed.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh >/dev/null

# ThreadSanitizer runs the engine suites only: it defers signals to points of its own, so the
# wake signal that ends libfuse's loop (FUSEKit's `exit`) never interrupts a worker blocked in
# read(/dev/fuse), libfuse's worker threads end "with ignores enabled", and an in-process mount
# can be left with a thread of its own process waiting on it forever (state D). AddressSanitizer
# runs the FUSE suites too.
suites_thread='^DeviceSimulatorTests\.'
suites_address='^(DeviceSimulatorTests|FUSEKitTests|MdevFSTests)\.'
# MemoryLimitTests runs daemons under `ulimit -v`, which cannot hold a sanitizer's shadow memory.
skip='MemoryLimitTests'
export MDEVSIM_REQUIRE_FUSE=1
# Reports are collected, not fatal, so that one run shows them all; leak reports of the Swift
# runtime's process-lifetime caches are noise.
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="halt_on_error=0 detect_leaks=0 ${ASAN_OPTIONS:-}"

status=0
for sanitizer in "${@:-thread address}"; do
    for s in $sanitizer; do
        case "$s" in
            thread) scratch=.build-tsan; suites=$suites_thread ;;
            address) scratch=.build-asan; suites=$suites_address ;;
            *) echo "sanitize: unknown sanitizer '$s' (thread or address)" >&2; exit 2 ;;
        esac
        mkdir -p "$scratch"
        log="$scratch/sanitize.log"
        start=$(date +%s)
        if ! swift build --build-tests --sanitize="$s" --scratch-path "$scratch" >"$scratch/build.log" 2>&1; then
            echo "sanitize: the $s build failed (tail of $scratch/build.log):" >&2
            tail -20 "$scratch/build.log" >&2
            status=1
            continue
        fi
        built=$(date +%s)
        swift test --skip-build --sanitize="$s" --scratch-path "$scratch" --filter "$suites" --skip "$skip" >"$log" 2>&1
        rc=$?
        done_at=$(date +%s)
        reports=$(grep -cE "^(WARNING: ThreadSanitizer|==[0-9]+==ERROR: AddressSanitizer|SUMMARY: (Thread|Address)Sanitizer)" "$log" || true)
        echo "sanitize: $s: build $((built - start)) s, tests $((done_at - built)) s, test exit $rc, $reports sanitizer report line(s)"
        grep -E "Test run with|SUMMARY: (Thread|Address)Sanitizer" "$log" | sort | uniq -c
        if [ "$rc" -ne 0 ] || [ "$reports" -ne 0 ]; then status=1; fi
    done
done
exit $status
