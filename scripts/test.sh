#!/usr/bin/env bash
# Quick start, step 2: install what is missing, build with AddressSanitizer and
# UndefinedBehaviorSanitizer, and run every test: the GoogleTest unit tests and
# the integration tests that drive the real binary over loopback SMTP with
# Python's smtplib and swaks, after a short libFuzzer run of every parser.
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh test
# The parsers under libFuzzer first, briefly (./scripts/fuzz.sh 600 for a longer run).
./scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
cmake -S . -B build/debug -G Ninja -DCMAKE_BUILD_TYPE=Debug -DUNSUBRELAY_SANITIZE=ON >/dev/null
ninja -C build/debug
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
cd build/debug
# A private PostgreSQL for the store tests and the fleet test; stopped afterwards.
../../scripts/test-postgres.sh ctest --output-on-failure --parallel "$(nproc)" --timeout 600
