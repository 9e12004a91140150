#!/usr/bin/env bash
# Installs every Debian 12 package unsubrelay needs to build, run and test.
# Idempotent: installs only what is missing, so re-running it is cheap.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config make
  libboost-dev libboost-system-dev libboost-program-options-dev
  libssl-dev openssl libmimetic-dev libyaml-cpp-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libsqlite3-dev libpqxx-dev postgresql libcrypt-dev libsystemd-dev
  clang-14 libclang-rt-14-dev
  python3 python3-aiosmtpd python3-dkim swaks systemd chromium chromium-driver fonts-dejavu-core llvm-14
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
