#!/usr/bin/env bash
# Makes sure what mdevsim needs beyond Swift is on this machine: libfuse3's headers and
# pkg-config file (to build), fusermount3 (to mount) and pkg-config.
# As root it installs what is missing with apt-get; otherwise it prints the exact command.
set -euo pipefail

missing=()
pkg-config --exists fuse3 2>/dev/null || missing+=(libfuse3-dev)
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

packages="fuse3 libfuse3-dev pkg-config"
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-deps: installing ${missing[*]} (apt-get install -y $packages)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq $packages >/dev/null
else
    echo "ensure-deps: missing ${missing[*]}. Run, as root:" >&2
    echo "    apt-get update && apt-get install -y $packages" >&2
    exit 1
fi
