#!/usr/bin/env bash
# Quick start, step 2: install what is missing, build once with
# AddressSanitizer and UndefinedBehaviorSanitizer (clang 14: the relay, the
# unit tests and the libFuzzer targets, scripts/build-test.sh), run every
# parser under libFuzzer briefly, build the Debian package, and run every
# test: the GoogleTest unit tests and the integration tests that drive the
# real binary over loopback SMTP and HTTP (smtplib, swaks, urllib, Chromium),
# the package booted in a Debian 12 container under systemd and the OCI
# image run as a sidecar pod under podman among them.
# Exits non-zero on any failure. docs/testing.md: what it proves, how long.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh test package image
# The Debian 12 root the systemd boot test boots (tests/integration/test_systemd_boot.py):
# made once by debootstrap (~3 min, mostly download) and cached outside the
# repository, so it is made in the background while the sources build; then,
# from it, the container test's tools image (tests/integration/pod.py, kept by podman).
mkdir -p build
(./scripts/debian-root.sh && /usr/bin/python3 tests/integration/pod.py tools-image) >build/debian-root.log 2>&1 &
debian_root=$!
./scripts/build-test.sh
# The parsers under libFuzzer, briefly (./scripts/fuzz.sh 600 for a longer run).
./scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
# The Debian package that test installs and boots (build/deb/, lintian-checked).
./scripts/build-deb.sh
wait "$debian_root" || { cat build/debian-root.log >&2; exit 1; }
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd build/debug
# A private PostgreSQL for the store tests and the fleet test; stopped afterwards.
# --no-tests=error: a build that registered no test fails rather than passes.
../../scripts/test-postgres.sh ctest --output-on-failure --no-tests=error --parallel "$(nproc)" --timeout 600
