#!/usr/bin/env bash
# Quick start, step 2: install what is missing, build with AddressSanitizer and
# UndefinedBehaviorSanitizer, and run every test: the GoogleTest unit tests and
# the integration tests that drive the real binary over loopback SMTP with
# Python's smtplib and swaks, after a short libFuzzer run of every parser; the
# Debian package is built and booted in a Debian 12 container under systemd.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh test package
# The Debian 12 root the systemd boot test boots (tests/integration/test_systemd_boot.py):
# made once by debootstrap (~3 min, mostly download) and cached outside the
# repository, so it is made in the background while the fuzzers build and run.
mkdir -p build
./scripts/debian-root.sh >build/debian-root.log 2>&1 &
debian_root=$!
# The parsers under libFuzzer first, briefly (./scripts/fuzz.sh 600 for a longer run).
./scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
cmake -S . -B build/debug -G Ninja -DCMAKE_BUILD_TYPE=Debug -DUNSUBRELAY_SANITIZE=ON >/dev/null
ninja -C build/debug
# The Debian package that test installs and boots (build/deb/, lintian-checked).
./scripts/build-deb.sh
wait "$debian_root" || { cat build/debian-root.log >&2; exit 1; }
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd build/debug
# A private PostgreSQL for the store tests and the fleet test; stopped afterwards.
../../scripts/test-postgres.sh ctest --output-on-failure --parallel "$(nproc)" --timeout 600
