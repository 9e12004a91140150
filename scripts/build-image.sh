#!/usr/bin/env bash
# Builds the relay's OCI image, localhost/unsubrelay:VERSION and :latest
# (docs/container.md), from Debian 12 and this project's package, with no
# registry and no base image:
#  1. the Debian 12 root of scripts/debian-root.sh (debootstrap, cached);
#  2. in an overlay of it, apt installs the .deb; the relay's shared libraries
#     (ldd), dash (the entrypoint's shell), the CA bundle, and the dpkg records
#     and copyright files of the packages they come from are copied into a
#     runtime tree, cached beside the root and keyed by what decides it (the
#     root, the package's Depends, the binary's NEEDED libraries, this script);
#  3. podman build of deploy/image/Containerfile: a layer from that tree and
#     a layer with the relay from the .deb, the entrypoint and the state directory.
#   ./scripts/build-image.sh [DEB]     # default build/deb/unsubrelay_*_amd64.deb (built if absent)
# Prints the image's name. Needs root. UNSUBRELAY_IMAGE overrides the name
# (default localhost/unsubrelay); UNSUBRELAY_CACHE the cache (scripts/debian-root.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "build-image: run it as root (chroot, overlay mounts, podman)" >&2; exit 2; }
./scripts/install-deps.sh image >&2

deb=${1:-}
if [ -z "$deb" ]; then
  shopt -s nullglob
  debs=(build/deb/unsubrelay_*_amd64.deb)
  [ ${#debs[@]} -gt 0 ] || { ./scripts/build-deb.sh >&2; debs=(build/deb/unsubrelay_*_amd64.deb); }
  [ ${#debs[@]} -eq 1 ] || { echo "build-image: expected one build/deb/unsubrelay_*_amd64.deb: ${debs[*]}" >&2; exit 1; }
  deb=${debs[0]}
fi
deb=$(realpath "$deb")
version=$(dpkg-deb -f "$deb" Version)
image=${UNSUBRELAY_IMAGE:-localhost/unsubrelay}
user=10001  # the image's user and group: numeric, so that runAsNonRoot can check it
root=$(./scripts/debian-root.sh)
cache=$(dirname "$root")

work=$(mktemp -d /var/tmp/unsubrelay-image.XXXXXX)
mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}" || return 1; done
  rm -rf "$work"  # never while a mount is left: the cached root is below it
}
trap cleanup EXIT

echo "build-image: $deb on $root" >&2
dpkg-deb -x "$deb" "$work/deb"
needed=$(readelf -d "$work/deb/usr/bin/unsubrelay" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort)
key=$({ basename "$root"; dpkg-deb -f "$deb" Depends; echo "$needed"; cat "$0"; } | sha256sum | cut -c1-12)
runtime="$cache/image-runtime-$key"

# A command in the overlay root (where /lib is a symlink to /usr/lib: ask it for real paths).
in_root() { chroot "$work/root" "$@"; }

# Copies a file of the root into the tree under its canonical directory, as
# the name it was found by (often a symlink) and as what that name resolves to.
copy_in() {
  local tree=$1 path=$2 dir real
  dir=$(in_root realpath "$(dirname "$path")")
  real=$(in_root realpath "$path")
  mkdir -p "$tree$dir" "$tree$(dirname "$real")"
  cp -a "$work/root$dir/$(basename "$path")" "$tree$dir/"
  [ -e "$tree$real" ] || cp -a "$work/root$real" "$tree$real"
  echo "$real"
}

# The Debian package that installed a file (dpkg names the path as the package
# ships it: under /usr or not, merged /usr hides which).
owner() {
  local p=$1
  in_root dpkg-query -S "$p" 2>/dev/null || in_root dpkg-query -S "${p#/usr}" 2>/dev/null ||
    { echo "build-image: no package owns $p" >&2; return 1; }
}

make_runtime() {
  local tree="$runtime.tmp" files=() packages p
  mkdir -p "$work/upper" "$work/ovl" "$work/root" "$cache/apt-archives"
  mount -t overlay overlay -o "lowerdir=$root,upperdir=$work/upper,workdir=$work/ovl" "$work/root"
  mounts+=("$work/root")
  # Downloaded packages are kept beside the root for the next build (as the boot test does).
  mount --bind "$cache/apt-archives" "$work/root/var/cache/apt/archives"
  mounts+=("$work/root/var/cache/apt/archives")
  cp "$deb" "$work/root/tmp/unsubrelay.deb"
  DEBIAN_FRONTEND=noninteractive in_root apt-get install -y -q --no-install-recommends \
    /tmp/unsubrelay.deb ca-certificates >"$work/apt.log" 2>&1 ||
    { tail -n 30 "$work/apt.log" >&2; echo "build-image: apt-get install in the root failed" >&2; exit 1; }

  rm -rf "$tree"
  mkdir -p "$tree/usr/bin" "$tree/usr/lib" "$tree/usr/lib64" "$tree/usr/sbin" "$tree/etc/unsubrelay" \
    "$tree/var/lib/dpkg/status.d" "$tree/usr/share/doc"
  for d in bin lib lib64 sbin; do ln -s "usr/$d" "$tree/$d"; done  # Debian 12's merged /usr
  install -d -m 1777 "$tree/tmp"
  ln -s dash "$tree/usr/bin/sh"
  files+=("$(copy_in "$tree" /usr/bin/dash)")
  while read -r lib; do
    files+=("$(copy_in "$tree" "$lib")")
  done < <(in_root ldd /usr/bin/unsubrelay /usr/bin/dash | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && NF == 2 { print $1 }' | sort -u)
  # TLS to the upstream verifies against Debian's CA bundle: OpenSSL's default file names it.
  # (No openssl.cnf: OpenSSL's built-in defaults, and the relay sets its own TLS profile.)
  mkdir -p "$tree/etc/ssl/certs" "$tree/usr/lib/ssl"
  cp "$work/root/etc/ssl/certs/ca-certificates.crt" "$tree/etc/ssl/certs/"
  ln -s /etc/ssl/certs/ca-certificates.crt "$tree/usr/lib/ssl/cert.pem"
  ln -s /etc/ssl/certs "$tree/usr/lib/ssl/certs"
  files+=(/usr/share/ca-certificates)
  cp "$work/root/usr/lib/os-release" "$tree/usr/lib/os-release"
  ln -s ../usr/lib/os-release "$tree/etc/os-release"
  files+=(/usr/lib/os-release)
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nunsubrelay:x:%s:%s:unsubrelay:/var/lib/unsubrelay:/usr/sbin/nologin\n' \
    "$user" "$user" >"$tree/etc/passwd"
  printf 'root:x:0:\nunsubrelay:x:%s:\n' "$user" >"$tree/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$tree/etc/nsswitch.conf"
  # What a scanner needs to know which Debian packages (and versions) are in the
  # image, as distroless images record it; and their licences.
  packages=$(for f in "${files[@]}"; do owner "$f"; done | cut -d: -f1 | tr ',' '\n' | tr -d ' ' | sort -u)
  for p in $packages; do
    in_root dpkg-query -s "$p" >"$tree/var/lib/dpkg/status.d/${p%%:*}"
    mkdir -p "$tree/usr/share/doc/${p%%:*}"
    cp "$work/root/usr/share/doc/${p%%:*}/copyright" "$tree/usr/share/doc/${p%%:*}/"
  done
  touch "$tree/.unsubrelay-complete"
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[$i]}"; done
  mounts=()
  rm -rf "$runtime"
  mv "$tree" "$runtime"
  # Trees no build has used for a week (an older package or script) go; a
  # younger one may belong to another checkout building now.
  find "$cache" -maxdepth 2 -path '*/image-runtime-*/.unsubrelay-complete' -mtime +7 -printf '%h\n' |
    xargs -r rm -rf
}

mkdir -p "$cache"
if [ ! -f "$runtime/.unsubrelay-complete" ]; then
  exec 9>"$cache/.image-lock"
  flock 9  # one build of the tree at a time; a second caller waits and then finds it made
  if [ ! -f "$runtime/.unsubrelay-complete" ]; then
    echo "build-image: the runtime tree $runtime (once per set of libraries)" >&2
    make_runtime
  fi
  exec 9>&-
fi
touch "$runtime/.unsubrelay-complete"  # in use: see make_runtime's clean-up

# The two layers as archives with fixed owners, modes and times: the same
# tree gives the same archive, and podman build reuses the cached layer.
context="$work/context"
relay="$work/relay"
mkdir -p "$context" "$relay/usr/bin" "$relay/usr/lib/unsubrelay" "$relay/usr/share/doc/unsubrelay" \
  "$relay/var/lib/dpkg/status.d"
install -m 0755 "$work/deb/usr/bin/unsubrelay" "$relay/usr/bin/unsubrelay"
install -m 0755 deploy/image/entrypoint.sh "$relay/usr/lib/unsubrelay/entrypoint"
install -m 0644 "$work/deb/usr/share/doc/unsubrelay/copyright" "$relay/usr/share/doc/unsubrelay/copyright"
dpkg-deb -f "$deb" >"$relay/var/lib/dpkg/status.d/unsubrelay"
install -d -m 0700 "$relay/var/lib/unsubrelay"
archive() {  # TREE OUT [tar options]
  local tree=$1 out=$2
  shift 2
  tar --sort=name --mtime=@0 --numeric-owner --owner=0 --group=0 --exclude=./.unsubrelay-complete \
    -C "$tree" -cf "$out" "$@" .
}
archive "$runtime" "$context/runtime.tar"
# The state directory belongs to the user; everything else to root, read-only to it.
archive "$relay" "$context/relay.tar" --exclude=./var/lib/unsubrelay
tar --mtime=@0 --numeric-owner --owner="$user" --group="$user" -C "$relay" -rf "$context/relay.tar" \
  --no-recursion ./var/lib/unsubrelay
cp deploy/image/Containerfile "$context/"

previous=$(podman image inspect --format '{{.Id}}' "$image:$version" 2>/dev/null || true)
podman build --quiet --layers -f "$context/Containerfile" -t "$image:$version" -t "$image:latest" \
  --label org.opencontainers.image.title=unsubrelay --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.description="SMTP relay that gives each recipient a signed unsubscribe link" \
  "$context" >&2
# The image this one replaces, unless a container or another tag still uses it.
if [ -n "$previous" ] && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$image:$version")" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
echo "$image:$version"
