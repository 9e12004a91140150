#!/usr/bin/env bash
# Builds the libFuzzer targets (the test build, scripts/build-test.sh: clang-14,
# ASan/UBSan) and runs each for SECONDS (default 30), seeded with tests/data.
# Any crash, leak or timeout fails the script and leaves the reproducer in
# build/fuzz/findings/; so does a target that does not report its completed
# runs ("Done N runs"), such as one that aborts at start or cannot read its
# dictionary.
#   [FUZZ_BUILD=release] ./scripts/fuzz.sh [SECONDS [TARGET...]]     targets: smtp token mime config http feedback import api_keys tenant segment (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(smtp token mime config http feedback import api_keys tenant segment)

./scripts/install-deps.sh test
builds=(fuzz_mime fuzz_token fuzz_smtp fuzz_config fuzz_http fuzz_feedback fuzz_import fuzz_api_keys fuzz_tenant fuzz_segment make_seeds)
if [ "${FUZZ_BUILD:-test}" = release ]; then
  # FUZZ_BUILD=release: the targets optimised (RelWithDebInfo, build/fuzz-release),
  # about four times the executions a second of the test build's, for long runs.
  cmake -S . -B build/fuzz-release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
    -DUNSUBRELAY_FUZZ=ON -DUNSUBRELAY_SANITIZE=ON -DUNSUBRELAY_TESTS=OFF -DUNSUBRELAY_BENCH=OFF \
    -DUNSUBRELAY_UNITY=ON -DCMAKE_EXE_LINKER_FLAGS=-fuse-ld=lld >/dev/null
  ninja -C build/fuzz-release "${builds[@]}"
  bin=build/fuzz-release/tests/fuzz
else
  ./scripts/build-test.sh "${builds[@]}"
  bin=build/debug/tests/fuzz
fi

findings=build/fuzz/findings
rm -f build/fuzz/*.log build/fuzz/*.rc
mkdir -p "$findings" build/fuzz/corpus/{mime,token,smtp,config,http,feedback,import,api_keys,tenant,segment}
cp conf/unsubrelay.yaml build/fuzz/corpus/config/
printf 'POST\n/u/AQJrMQ2OtCR_yI3qnyWbp2saWnUJMjIyMjIyMjIyCTExMTExMTExMWsGGJMAAAAAurSha-sunkLYPlOI94TGaA\napplication/x-www-form-urlencoded\n\nList-Unsubscribe=One-Click' > build/fuzz/corpus/http/one-click
printf 'POST\n/api/v2/email/unsubscribe\napplication/json\nBearer key\n{"launch_list_id":"1","email_id":"2","uid":"x"}' > build/fuzz/corpus/http/api
cp tests/data/*.eml tests/data/golden/*.eml build/fuzz/corpus/mime/
# api_keys: a keys file (docs/unsubscribe.md's example) and a method + path
printf '# keys\nk3y-all\nk3y-read read  # dashboard\nk3y-two read,export\nk3y-bad reed\n' > build/fuzz/corpus/api_keys/file
printf 'GET\n/api/v1/contacts/a@example.org' > build/fuzz/corpus/api_keys/route
# Reports and notifications: DSNs, ARF, SNS envelopes, SES notifications.
cp tests/data/feedback/* build/fuzz/corpus/feedback/
# import: a piece-size byte, then the file (fuzz_import.cpp)
for f in tests/data/import/*; do { printf '\x05'; cat "$f"; } > "build/fuzz/corpus/import/$(basename "$f")"; done
printf 'EHLO x\r\nMAIL FROM:<a@b.c>\r\nRCPT TO:<d@e.f>\r\nDATA\r\nhi\r\n..x\r\n.\r\nQUIT\r\n' > build/fuzz/corpus/smtp/seed
printf 'AQJrMQ2OtCR_yI3qnyWbp2saWnUJMjIyMjIyMjIyCTExMTExMTExMWsGGJMAAAAAurSha-sunkLYPlOI94TGaA' > build/fuzz/corpus/token/seed
# tenant: a mode byte (0 From: domains, 1 a token, 2 a request target, 3 a message with X-Tenant:), then the text (fuzz_tenant.cpp)
printf '\x00"boss@x.example" (a@b) <news@Mail.ACME.example>, c@news.acme.example' > build/fuzz/corpus/tenant/from
printf '\x02/api/v1/contacts/a%%40b?since=1&tenant=acme&limit=2' > build/fuzz/corpus/tenant/target
printf '\x03X-Tenant: acme\r\nFrom: <n@acme.example>\r\nx-tenant:\r\n beta\r\n\r\nbody\r\n' > build/fuzz/corpus/tenant/header
# Valid tokens and every verb and route (docs/testing.md: what coverage showed missing).
"$bin/make_seeds" build/fuzz/corpus

# Every finding so far, kept as a seed (tests/data/fuzz/TARGET-*): it must stay fixed.
for t in smtp token mime config http feedback import api_keys tenant segment; do
  cp tests/data/fuzz/"$t"-* "build/fuzz/corpus/$t/" 2>/dev/null || true
done

# One target per core at a time: each libFuzzer run uses one thread.
run_target() {
  local target=$1 leaks=1 dict=()
  # mimetic 0.9.8 leaks on its own parse errors (DEPENDENCIES.md): no leak check where it runs.
  [ "$target" = mime ] && leaks=0
  [ -f "tests/fuzz/dict/$target.dict" ] && dict=(-dict="tests/fuzz/dict/$target.dict")
  local rc=0
  ASAN_OPTIONS="detect_leaks=$leaks" "$bin/fuzz_$target" "${dict[@]}" \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -print_final_stats=0 \
    -artifact_prefix="$findings/$target-" "build/fuzz/corpus/$target" >"build/fuzz/$target.log" 2>&1 || rc=$?
  echo "$rc" >"build/fuzz/$target.rc"
  echo "fuzz_$target: ${seconds}s, exit status $rc"
  grep -E "^Done|DONE|ERROR|SUMMARY" "build/fuzz/$target.log" || true
}
jobs_max=$(nproc)
for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  run_target "$target" &
done
wait
# A target passes only if it exited 0, left no artifact, and said how many
# inputs it ran ("Done 12345 runs in 20 second(s)", more than none).
failed=0
for target in "${targets[@]}"; do
  log="build/fuzz/$target.log"
  if ls "$findings/$target-"* >/dev/null 2>&1; then
    echo "fuzz_$target found a problem: $(ls "$findings/$target-"*) (log: $log)" >&2
    failed=1
  elif [ "$(cat "build/fuzz/$target.rc" 2>/dev/null)" != 0 ]; then
    echo "fuzz_$target exited with status $(cat "build/fuzz/$target.rc" 2>/dev/null || echo '(none)') (log: $log):" >&2
    tail -n 5 "$log" >&2
    failed=1
  elif ! grep -Eq '^Done [1-9][0-9]* runs in' "$log"; then
    echo "fuzz_$target never reported its completed runs (log: $log):" >&2
    tail -n 5 "$log" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 1
echo "fuzzing: every target ran; no crash, leak or timeout"
