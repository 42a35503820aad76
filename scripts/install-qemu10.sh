#!/usr/bin/env bash
# Installs QEMU 10.0 (Debian bookworm-backports' qemu-system-x86, the VFIO migration v2 client)
# into a private folder next to the system's QEMU 7.2, which the v1 tests need and which an
# ordinary install of the backport would replace. Nothing of the system's apt state changes:
# apt gets a private sources list, lists and cache folder, and the packages are unpacked with
# dpkg-deb -x, never installed.
#
#   scripts/install-qemu10.sh [ROOT]     ROOT defaults to $MDEVSIM_QEMU10_ROOT or /opt/mdevsim-qemu10
#
# Afterwards ROOT/usr/bin/qemu-system-x86_64 runs with -L ROOT/usr/share/qemu
# -L ROOT/usr/share/seabios (scripts/qemu10 wraps that). The archive's address is read from the
# machine's own apt sources; this script names no archive host.
set -euo pipefail

root=${1:-${MDEVSIM_QEMU10_ROOT:-/opt/mdevsim-qemu10}}
want_major=10.0
binary="$root/usr/bin/qemu-system-x86_64"

if [ -x "$binary" ] && "$binary" --version 2>/dev/null | grep -q "version $want_major"; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-qemu10: QEMU $want_major is missing at $root; run as root: scripts/install-qemu10.sh $root" >&2
    exit 1
fi

# The Debian archive the machine already uses (deb822 .sources first, then one-line sources).
archive=""
for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    archive=$(awk '
        /^URIs:/ { uris = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") found = 1 }
        /^$/ { if (found && uris != "") { print uris; exit } uris = ""; found = 0 }
        END { if (found && uris != "") print uris }' "$f" | head -n 1)
    [ -z "$archive" ] || break
done
if [ -z "$archive" ] && [ -e /etc/apt/sources.list ]; then
    archive=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i+1) == "bookworm") { print $i; exit } } }' /etc/apt/sources.list)
fi
if [ -z "$archive" ]; then
    echo "install-qemu10: no bookworm source in /etc/apt/sources.list{,.d}: cannot find the archive for bookworm-backports" >&2
    exit 1
fi

work="$root/.apt"
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$keyring] $archive bookworm-backports main" > "$work/sources.list"
apt_opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o Debug::NoLocking=1
          -o APT::Sandbox::User=root)  # the private folders belong to root, not _apt

echo "install-qemu10: fetching the bookworm-backports index into $work (system apt state untouched)" >&2
apt-get "${apt_opts[@]}" update -qq
version=$(apt-cache "${apt_opts[@]}" madison qemu-system-x86 | awk -F'|' '{gsub(/ /, "", $2); print $2}' \
    | grep -E "^1:$want_major\." | grep bpo | head -n 1)
if [ -z "$version" ]; then
    echo "install-qemu10: bookworm-backports has no qemu-system-x86 $want_major.x" >&2
    exit 1
fi
echo "install-qemu10: unpacking qemu-system-x86 $version into $root" >&2
rm -f "$work/debs"/*.deb
(cd "$work/debs" && apt-get "${apt_opts[@]}" download -qq \
    "qemu-system-x86=$version" "qemu-system-common=$version" "qemu-system-data=$version")
for deb in "$work/debs"/*.deb; do dpkg-deb -x "$deb" "$root"; done

missing=$(ldd "$binary" | awk '/not found/ { print $1 }')
if [ -n "$missing" ]; then
    echo "install-qemu10: $binary needs libraries this machine lacks: $missing" >&2
    exit 1
fi
"$binary" --version | head -n 1 >&2
