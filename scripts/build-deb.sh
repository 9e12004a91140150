#!/usr/bin/env bash
# Builds the Debian package build/deb/unsubrelay_VERSION_amd64.deb from this
# checkout (debian/ with debhelper; the layout is cmake/install.cmake), then
# runs lintian on it: any lintian error fails the script.
#   ./scripts/build-deb.sh
#   apt install ./build/deb/unsubrelay_*_amd64.deb
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh package

version=$(dpkg-parsechangelog -S Version)
out=build/deb
src="$out/unsubrelay-$version"
objects="$src/obj-$(dpkg-architecture -qDEB_HOST_GNU_TYPE)"
# A fresh copy of the working tree as it is (uncommitted edits included),
# keeping the previous run's object directory so a rebuild is incremental.
mkdir -p "$out"
[ -d "$objects" ] && mv "$objects" "$out/objects.keep"
find "$out" -mindepth 1 -maxdepth 1 ! -name objects.keep -exec rm -rf {} +
mkdir -p "$src"
tar --exclude=./build --exclude=./.git --exclude=./var -cf - . | tar -xf - -C "$src"
[ -d "$out/objects.keep" ] && mv "$out/objects.keep" "$objects"

export DEB_BUILD_OPTIONS="parallel=$(nproc) nocheck ${DEB_BUILD_OPTIONS:-}"
# -nc: no `debian/rules clean` first, which would delete those objects.
(cd "$src" && dpkg-buildpackage -us -uc -b -nc) >"$out/build.log" 2>&1 || {
  tail -n 40 "$out/build.log" >&2
  echo "build-deb: dpkg-buildpackage failed; the whole log is $out/build.log" >&2
  exit 1
}
deb="$out/unsubrelay_${version}_$(dpkg-architecture -qDEB_HOST_ARCH).deb"
lintian --fail-on error --display-info --no-tag-display-limit "$deb" | tee "$out/lintian.txt"
echo "build-deb: $deb"
