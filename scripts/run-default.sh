#!/usr/bin/env bash
# The main job on the built-in default scenario: installs what is missing, builds, and migrates
# one device of the default scenario from a source to a destination through a private FUSE
# mount, printing the report.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-deps.sh
swift build -c release --product mdevsim
exec .build/release/mdevsim migrate "$@"
