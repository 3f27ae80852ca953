#!/usr/bin/env bash
# Installs missing packages, then builds and runs the whole test suite twice:
# the normal Release build, and an ASan+UBSan build. Fails on any failure.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bash "$ROOT/scripts/install-deps.sh"

LOG_DIR="$ROOT/build/test-logs"
mkdir -p "$LOG_DIR"
status=0
# Wall time per phase, printed in the summary: the suite has to stay well
# under 30 minutes on 2 cores (DEVELOPERS.md), and this says where it goes.
timings=()
phase_start=0
# phase_done NAME: records the seconds since the previous phase ended.
phase_done() {
  timings+=("$(printf '%-22s %5d s' "$1" $((SECONDS - phase_start)))")
  phase_start=$SECONDS
}
phase_done "install-deps"

# free_disk PATH: the space left on PATH's file system, as df prints it (2.1G)
free_disk() {
  df -h --output=avail "$1" 2>/dev/null | tail -n 1 | tr -d ' ' || echo "unknown"
}

# The release build needs ~0.9 GB, the sanitizer build ~2 GB, ccache up to
# its own limit.
# run_suite NAME BUILD_DIR [cmake args...]
run_suite() {
  local name="$1" build_dir="$2"
  shift 2
  echo "=== $name: configure and build ($build_dir; $(free_disk "$ROOT") free)"
  if ! configure_and_build "$build_dir" "$@"; then
    # A full disk shows up as a link or compile error; say how much was left.
    echo "$name: the build failed; no tests run ($(free_disk "$ROOT") free on the build's disk)" |
      tee "$LOG_DIR/$name.log"
    status=1
    phase_done "$name build"
    return
  fi
  phase_done "$name build"
  echo "=== $name: ctest"
  # A failing suite does not stop the other one; the script fails at the end.
  if ! ctest --test-dir "$build_dir" --output-on-failure --no-tests=error -j "$JOBS" 2>&1 |
      tee "$LOG_DIR/$name.log"; then
    status=1
  fi
  phase_done "$name ctest"
}

run_suite release "$ROOT/build" -DCMAKE_BUILD_TYPE=Release
# -O1 -g1: about half the compile time of -O2 -g on 2 cores, still fast under
# ASan, and line tables for the reports. Without NDEBUG, so asserts stay on.
# No benchmarks (no test runs them; the release build compiles them), and the
# release build's TorchScript fixtures instead of a second copy: ~1.1 GB less.
run_suite sanitize "$ROOT/build-sanitize" -DCOMPRESS_SANITIZE=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" \
  -DCOMPRESS_BUILD_BENCH=OFF "-DCOMPRESS_TORCH_FIXTURE_DIR=$ROOT/build/tests/torch/fixtures"

# Fuzzing: every reader of outside data (.cmf, .npy, IDX, recipes) under
# libFuzzer + ASan + UBSan, COMPRESS_FUZZ_SECONDS (default 20) per target,
# JOBS targets at a time, starting
# from the committed corpora and regressions (tests/fuzz/README.md). Its own
# clang tree (build-fuzz/, ~0.3 GB) builds only the libraries the fuzzers
# link: about 4 minutes of 2 cores from nothing, seconds with ccache. Any
# crash, sanitizer report, leak or slow input fails the script.
fuzz_seconds="${COMPRESS_FUZZ_SECONDS:-20}"
if command -v clang++ >/dev/null 2>&1; then
  echo "=== fuzz: build and run the fuzz targets, ${fuzz_seconds} s each (build-fuzz; $(free_disk "$ROOT") free)"
  if ! COMPRESS_JOBS="$JOBS" bash "$ROOT/tests/fuzz/run_all.sh" --seconds "$fuzz_seconds" --jobs "$JOBS" 2>&1 |
      tee "$LOG_DIR/fuzz.log"; then
    echo "fuzz: failed, see above and $LOG_DIR/fuzz.log ($(free_disk "$ROOT") free)"
    status=1
  fi
else
  echo "=== fuzz: skipped (no clang++; scripts/install-deps.sh installs it)"
fi
phase_done "fuzz"

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
echo "wall time per phase:"
printf '  %s\n' "${timings[@]}"
echo "  total                  $(printf '%5d' "$SECONDS") s"
exit "$status"
