#!/usr/bin/env bash
# Prints the path of a Debian 12 root file system for booting the package
# under a real systemd (tests/integration/test_systemd_boot.py), made once
# with debootstrap (~3 min) and cached outside the repository, keyed by what
# it holds: the suite, variant, package list and mirror below. Reruns print
# the cached path at once. Needs root and Debian's archive.
#   ./scripts/debian-root.sh            # the path, e.g. /var/cache/unsubrelay/debian12-1a2b3c4d5e6f
# UNSUBRELAY_CACHE overrides the cache directory (default /var/cache/unsubrelay).
set -euo pipefail

suite=bookworm
variant=minbase
include=systemd,systemd-sysv,dbus
mirror=http://deb.debian.org/debian
cache="${UNSUBRELAY_CACHE:-/var/cache/unsubrelay}"

key=$(printf '%s\n' "$suite" "$variant" "$include" "$mirror" | sha256sum | cut -c1-12)
root="$cache/debian12-$key"
if [ -f "$root/.unsubrelay-complete" ]; then
  echo "$root"
  exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9  # one build at a time; a second caller waits and then finds it made
if [ ! -f "$root/.unsubrelay-complete" ]; then
  rm -rf "$root.tmp"
  echo "debian-root: debootstrap $suite into $root (once, ~3 min)" >&2
  debootstrap --variant="$variant" --include="$include" "$suite" "$root.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
    tail -n 20 "$cache/debootstrap.log" >&2
    exit 1
  }
  # Package lists, so that `apt install ./unsubrelay_*.deb` can resolve its
  # dependencies (fetched into the root's apt cache by the test, before boot).
  chroot "$root.tmp" apt-get update -qq >&2
  touch "$root.tmp/.unsubrelay-complete"
  rm -rf "$root"
  mv "$root.tmp" "$root"
fi
echo "$root"
