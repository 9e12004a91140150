#!/usr/bin/env bash
# Source-based line coverage of what the fuzzers have explored: rebuilds the
# libFuzzer targets with clang's coverage instrumentation, replays each
# target's corpus (build/fuzz/corpus/, grown by ./scripts/fuzz.sh) once, and
# prints llvm-cov's per-file report for src/. Run after a long fuzz run:
#   ./scripts/fuzz.sh 600 && ./scripts/fuzz-coverage.sh
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh test
[ -d build/fuzz/corpus ] || { echo "no corpus yet: run ./scripts/fuzz.sh first" >&2; exit 1; }
out=build/fuzzcov
cmake -S . -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++-14 \
  -DUNSUBRELAY_FUZZ=ON -DUNSUBRELAY_SANITIZE=OFF -DUNSUBRELAY_TESTS=OFF -DUNSUBRELAY_BENCH=OFF \
  -DCMAKE_CXX_FLAGS="-fprofile-instr-generate -fcoverage-mapping" \
  -DCMAKE_EXE_LINKER_FLAGS="-fprofile-instr-generate" >/dev/null
targets=(smtp token mime config http feedback)
ninja -C "$out" "${targets[@]/#/fuzz_}"
rm -f "$out"/*.profraw
objects=()
for t in "${targets[@]}"; do
  echo "replaying $(ls "build/fuzz/corpus/$t" | wc -l) inputs of fuzz_$t"
  LLVM_PROFILE_FILE="$out/$t.profraw" ASAN_OPTIONS=detect_leaks=0 \
    "$out/tests/fuzz/fuzz_$t" -runs=0 "build/fuzz/corpus/$t" >/dev/null 2>&1
  objects+=(-object "$out/tests/fuzz/fuzz_$t")
done
llvm-profdata-14 merge -sparse "$out"/*.profraw -o "$out/fuzz.profdata"
llvm-cov-14 report -instr-profile "$out/fuzz.profdata" "${objects[@]:1}" \
  -ignore-filename-regex='^/usr/|/tests/|/build/' | sed "s|$(pwd)/||"
