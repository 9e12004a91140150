#!/usr/bin/env bash
# The one build every test uses, build/debug: clang 14 with AddressSanitizer
# and UndefinedBehaviorSanitizer, holding the relay, the unit tests and the
# libFuzzer targets (the pure sources carry coverage instrumentation, see
# CMakeLists.txt). No benchmark programs: they are measured from a Release
# build (docs/performance.md). The library is a unity build and the linker is
# lld: a fresh build takes about a third of the time of g++ file by file.
#   ./scripts/build-test.sh [NINJA TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh test   # clang-14, lld, GoogleTest: only what is missing
# A build/debug made by an earlier g++ configuration is replaced, not mixed.
if [ -f build/debug/CMakeCache.txt ] && ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++-14$' build/debug/CMakeCache.txt; then
  rm -rf build/debug
fi
cmake -S . -B build/debug -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++-14 \
  -DUNSUBRELAY_SANITIZE=ON -DUNSUBRELAY_FUZZ=ON -DUNSUBRELAY_BENCH=OFF -DUNSUBRELAY_UNITY=ON \
  -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld >/dev/null
ninja -C build/debug "$@"
