#!/usr/bin/env bash
# Makes sure what mdevsim needs beyond Swift is on this machine: libfuse3's headers and
# pkg-config file (to build), fusermount3 (to mount), pkg-config; with --with-qemu also QEMU 7.2
# (the system's qemu-system-x86_64, the v1 client, which the QEMU migration tests and
# scripts/qemu-migrate.sh run with libmdevsim-vfio.so) and QEMU 10.0 (the v2 client, unpacked
# next to it by scripts/install-qemu10.sh into /opt/mdevsim-qemu10 or $MDEVSIM_QEMU10_ROOT).
# As root it installs what is missing with apt-get; otherwise it prints the exact command.
#
#   scripts/ensure-deps.sh [--with-qemu]
set -euo pipefail

with_qemu=0
for arg in "$@"; do
    case "$arg" in
        --with-qemu) with_qemu=1 ;;
        *) echo "ensure-deps: unknown argument $arg (usage: scripts/ensure-deps.sh [--with-qemu])" >&2; exit 2 ;;
    esac
done

missing=()
pkg-config --exists fuse3 2>/dev/null || missing+=(libfuse3-dev)
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
qemu_missing=0
[ $with_qemu -eq 0 ] || [ -x /usr/bin/qemu-system-x86_64 ] || qemu_missing=1

if [ ${#missing[@]} -eq 0 ] && [ $qemu_missing -eq 0 ]; then
    [ $with_qemu -eq 0 ] || exec "$(dirname "$0")/install-qemu10.sh"
    exit 0
fi

packages="fuse3 libfuse3-dev pkg-config"
# Without recommends: the tests need only the emulator (TCG), not firmware extras or a GUI.
qemu_command="apt-get install -y --no-install-recommends qemu-system-x86"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    if [ ${#missing[@]} -ne 0 ]; then
        echo "ensure-deps: installing ${missing[*]} (apt-get install -y $packages)" >&2
        apt-get install -y -qq $packages >/dev/null
    fi
    if [ $qemu_missing -ne 0 ]; then
        echo "ensure-deps: installing QEMU ($qemu_command)" >&2
        $qemu_command -qq >/dev/null
    fi
    [ $with_qemu -eq 0 ] || "$(dirname "$0")/install-qemu10.sh"
else
    [ ${#missing[@]} -eq 0 ] || echo "ensure-deps: missing ${missing[*]}. Run, as root:" >&2
    [ ${#missing[@]} -eq 0 ] || echo "    apt-get update && apt-get install -y $packages" >&2
    [ $qemu_missing -eq 0 ] || echo "ensure-deps: missing qemu-system-x86_64. Run, as root:" >&2
    [ $qemu_missing -eq 0 ] || echo "    apt-get update && $qemu_command" >&2
    exit 1
fi
