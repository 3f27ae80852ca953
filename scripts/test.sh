#!/usr/bin/env bash
# Installs missing packages, then builds and runs the whole test suite twice:
# the normal Release build, and an ASan+UBSan build. Fails on any failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bash "$ROOT/scripts/install-deps.sh"

LOG_DIR="$ROOT/build/test-logs"
mkdir -p "$LOG_DIR"
status=0

# run_suite NAME BUILD_DIR [cmake args...]
run_suite() {
  local name="$1" build_dir="$2"
  shift 2
  echo "=== $name: configure and build ($build_dir)"
  if ! configure_and_build "$build_dir" "$@"; then
    echo "$name: the build failed; no tests run" | tee "$LOG_DIR/$name.log"
    status=1
    return
  fi
  echo "=== $name: ctest"
  # A failing suite does not stop the other one; the script fails at the end.
  if ! ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j "$JOBS" 2>&1 |
      tee "$LOG_DIR/$name.log"; then
    status=1
  fi
}

run_suite release "$ROOT/build" -DCMAKE_BUILD_TYPE=Release
# -O1 -g1: about half the compile time of -O2 -g on 2 cores, still fast under
# ASan, and line tables for the reports. Without NDEBUG, so asserts stay on.
run_suite sanitize "$ROOT/build-sanitize" -DCOMPRESS_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1"

echo
echo "=== summary"
passed=0
failed=0
for name in release sanitize; do
  # ctest's closing line: "97% tests passed, 1 tests failed out of 40"
  line="$(grep -E '[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$LOG_DIR/$name.log" | tail -n 1 || true)"
  if [[ -z "$line" ]]; then
    echo "$name: no ctest summary (see $LOG_DIR/$name.log)"
    status=1
    continue
  fi
  echo "$name: $line"
  n_failed="$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")"
  n_total="$(sed -E 's/.* tests failed out of ([0-9]+).*/\1/' <<<"$line")"
  passed=$((passed + n_total - n_failed))
  failed=$((failed + n_failed))
done
echo "ctest: $passed passed, $failed failed"
exit "$status"
