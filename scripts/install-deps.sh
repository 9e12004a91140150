#!/usr/bin/env bash
# Installs the Debian 12 packages unsubrelay needs; only what is missing, so
# re-running it is cheap. The lists live in scripts/deps/, one package a line:
#   ./scripts/install-deps.sh            build and run (scripts/deps/run.txt): the quick start
#   ./scripts/install-deps.sh test       run.txt + scripts/deps/test.txt: the test command
#   ./scripts/install-deps.sh LIST...    run.txt + each scripts/deps/LIST.txt
set -euo pipefail
deps="$(cd "$(dirname "$0")" && pwd)/deps"

packages=()
for list in run "$@"; do
  [ -f "$deps/$list.txt" ] || { echo "install-deps: no list $deps/$list.txt" >&2; exit 2; }
  while read -r p _ || [ -n "${p:-}" ]; do
    [ -n "$p" ] && [ "${p:0:1}" != "#" ] && packages+=("$p")
  done <"$deps/$list.txt"
done

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0

echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Several apt runs may overlap on a shared machine: wait for dpkg's lock rather than fail.
lock=(-o DPkg::Lock::Timeout=600)
$SUDO apt-get "${lock[@]}" update -qq
$SUDO apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}"
