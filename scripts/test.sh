#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every test, and fails if the
# tests that need /dev/fuse did not really run (they must never be skipped in CI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh --with-qemu --with-browser --with-mdevctl --with-test-tools

if [ ! -e /dev/fuse ]; then
    echo "test: /dev/fuse is missing: the mount tests cannot run. Load the module (modprobe fuse) or run in a machine/container with /dev/fuse." >&2
    exit 1
fi

log=$(mktemp /tmp/mdevsim-test.XXXXXX)
trap 'rm -f "$log"' EXIT
export MDEVSIM_REQUIRE_FUSE=1
status=0
swift build --build-tests
# The QEMU tests LD_PRELOAD the shim: build it next to the test bundle.
swift build --product mdevsim-vfio
swift test --skip-build 2>&1 | tee "$log" || status=$?

# Suites that mount for real (listed in Tests/mount-suites.txt, as Swift Testing prints their
# names): each must have run and passed. A skipped or missing one fails the run.
while IFS= read -r suite; do
    [ -n "$suite" ] || continue
    if ! grep -qF "Suite $suite passed" "$log"; then
        echo "test: mount suite $suite did not run and pass (skipped or missing): failing" >&2
        status=1
    fi
done < Tests/mount-suites.txt
if grep -E "(Test|Suite) .* skipped" "$log" | grep -qiE "fuse|mount"; then
    echo "test: a mount test was skipped: failing" >&2
    status=1
fi
# A test process that crashed leaves its mounts stale (ENOTCONN): clear those of mdevsim under
# /tmp so the next run and the machine start clean. Healthy mounts are someone's: left alone.
while read -r mountpoint fstype source; do
    case "$fstype" in fuse.mdevsim*) ;; *) continue ;; esac
    case "$mountpoint" in /tmp/*) ;; *) continue ;; esac
    if ! stat "$mountpoint" >/dev/null 2>&1; then
        echo "test: clearing the stale mount $mountpoint ($source) left by a test" >&2
        umount -l "$mountpoint" 2>/dev/null || fusermount3 -u -z "$mountpoint" 2>/dev/null || true
    fi
done < <(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { print $5, $(i + 1), $(i + 2); break } }' /proc/self/mountinfo)
exit $status
