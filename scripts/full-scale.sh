# Sourced by faults.sh, powerloss.sh and failover.sh: the Release build and the
# environment the integration tests read to run at full size.
#   full_scale_setup NAME   # builds, exports FAULT_SCALE=full, FAULT_REPORT=build/NAME-report.txt,
#                           # UNSUBRELAY_BIN, and leaves the shell in tests/integration
#   full_scale_report NAME  # prints that report
full_scale_setup() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  ./scripts/install-deps.sh test
  cmake -S . -B build/release -G Ninja -DCMAKE_BUILD_TYPE=Release -DUNSUBRELAY_TESTS=OFF >/dev/null
  ninja -C build/release unsubrelay
  FULL_SCALE_REPORT="$(pwd)/build/$1-report.txt"
  : >"$FULL_SCALE_REPORT"
  export FAULT_SCALE=full FAULT_REPORT="$FULL_SCALE_REPORT" UNSUBRELAY_BUILD=release
  export UNSUBRELAY_BIN="$(pwd)/build/release/unsubrelay"
  cd tests/integration
}

full_scale_report() {
  echo
  echo "== $1 report (also in $FULL_SCALE_REPORT) =="
  cat "$FULL_SCALE_REPORT"
}
