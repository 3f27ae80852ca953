#!/usr/bin/env bash
# Builds every libFuzzer target with clang (libFuzzer + ASan + UBSan) in its
# own build folder and fuzzes each for a bounded time, seeded with the
# committed corpora; prints executions, corpus size, CPU time and crashes.
#
#   tests/fuzz/run_all.sh [--minutes N | --seconds S] [--jobs J] [--only cmf,npy,idx,recipe]
#                         [--workers W] [--save-regressions] [--no-build]
#
#   --minutes N          fuzzing time per target (default 1; decimals allowed)
#   --seconds S          the same in seconds
#   --jobs J             targets fuzzed side by side (default 1); each is one
#                        process, so J up to the core count
#   --workers W          libFuzzer processes per target (-fork=W; default 1)
#   --only LIST          a comma-separated subset of: cmf npy idx recipe
#   --save-regressions   copy each crashing input to tests/fuzz/regressions/<target>/
#   --no-build           use the build folder as it is
#
# Environment: COMPRESS_FUZZ_BUILD_DIR (default build-fuzz),
# COMPRESS_FUZZ_UB_RECOVER=1 (report each undefined-behaviour site once and
# keep fuzzing, to survey findings; use a separate build dir for it),
# COMPRESS_JOBS (build parallelism, default the core count).
# Outputs, under the build folder: fuzz-corpus/<target>/ (what the runs
# found, kept between runs), fuzz-artifacts/<target>/ (crashing, leaking or
# slow inputs), fuzz-logs/<target>.log. Rerun one finding with
#   build-fuzz/tests/fuzz/fuzz_npy_reader build-fuzz/fuzz-artifacts/npy/crash-...
# Exits 1 when any target found something, 2 on wrong usage.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${COMPRESS_FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=60
jobs=1
workers=1
only="cmf npy idx recipe"
save=0
do_build=1

usage() {
  sed -n '6,17p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) [ $# -ge 2 ] || usage; seconds=$(awk -v m="$2" 'BEGIN { if (m !~ /^[0-9]+(\.[0-9]+)?$/) exit 1; printf "%d", m * 60 }') || usage; shift 2 ;;
    --seconds) [ $# -ge 2 ] && [[ "$2" =~ ^[0-9]+$ ]] || usage; seconds=$2; shift 2 ;;
    --jobs) [ $# -ge 2 ] && [[ "$2" =~ ^[1-9][0-9]*$ ]] || usage; jobs=$2; shift 2 ;;
    --workers) [ $# -ge 2 ] && [[ "$2" =~ ^[1-9][0-9]*$ ]] || usage; workers=$2; shift 2 ;;
    --only) [ $# -ge 2 ] || usage; only=${2//,/ }; shift 2 ;;
    --save-regressions) save=1; shift ;;
    --no-build) do_build=0; shift ;;
    -h | --help) usage ;;
    *) echo "run_all.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[ "$seconds" -ge 1 ] || { echo "run_all.sh: the time per target must be at least 1 second" >&2; exit 2; }

# Target name -> executable. The short names are the corpus, dictionary,
# regression and artifact folder names.
declare -A exe=([cmf]=fuzz_cmf_reader [npy]=fuzz_npy_reader [idx]=fuzz_idx_reader [recipe]=fuzz_recipe)
# Inputs past these lengths only slow the search: recipes are short texts,
# the binary formats need room for a header plus a little data.
declare -A max_len=([cmf]=65536 [npy]=16384 [idx]=16384 [recipe]=4096)
targets=()
for t in $only; do
  [ -n "${exe[$t]:-}" ] || { echo "run_all.sh: unknown target '$t' (cmf, npy, idx, recipe)" >&2; exit 2; }
  targets+=("$t")
done

if ! command -v clang++ >/dev/null; then
  echo "run_all.sh: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 1
fi

ub_mode=-fno-sanitize-recover=undefined
if [ "${COMPRESS_FUZZ_UB_RECOVER:-0}" = 1 ]; then
  ub_mode=-fsanitize-recover=undefined
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=0:print_stacktrace=1}
else
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
fi

if [ "$do_build" = 1 ]; then
  generator=()
  if command -v ninja >/dev/null && [ ! -f "$build/CMakeCache.txt" ]; then generator=(-G Ninja); fi
  # fuzzer-no-link instruments the libraries for coverage without adding
  # libFuzzer's main() to every executable. -O1 -g1 as in the sanitizer
  # build: about half the compile time of -O2 -g, and line tables for the
  # reports. Only what the fuzzers link is built: no tests, no benchmarks, no
  # CUDA, no oneDNN backend (no fuzzer reaches it, and it is the slowest
  # part of the runtime to compile) and no LibTorch layer (no reader here
  # uses it; TorchScript files are LibTorch's own format).
  cmake -S "$root" -B "$build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" \
    -DCMAKE_CXX_COMPILER=clang++ \
    -DCOMPRESS_BUILD_FUZZERS=ON -DCOMPRESS_BUILD_TESTS=OFF -DCOMPRESS_BUILD_BENCH=OFF \
    -DCOMPRESS_CUDA=OFF -DCOMPRESS_ONEDNN=OFF -DCMAKE_DISABLE_FIND_PACKAGE_Torch=ON \
    "-DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link,address,undefined $ub_mode -fno-omit-frame-pointer" \
    "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" >/dev/null
  build_targets=()
  for t in "${targets[@]}"; do build_targets+=("${exe[$t]}"); done
  cmake --build "$build" -j"${COMPRESS_JOBS:-$(nproc)}" --target "${build_targets[@]}"
fi

src=$root/tests/fuzz
mkdir -p "$build/fuzz-logs"

# fuzz_one TARGET: one target's run; writes its log and a stats line.
fuzz_one() {
  local t=$1
  local work=$build/fuzz-corpus/$t artifacts=$build/fuzz-artifacts/$t log=$build/fuzz-logs/$t.log
  mkdir -p "$work" "$artifacts"
  local dirs=("$src/corpus/$t")
  [ -d "$src/regressions/$t" ] && dirs+=("$src/regressions/$t")
  local extra=()
  [ -f "$src/dict/$t.dict" ] && extra+=(-dict="$src/dict/$t.dict")
  [ "$workers" -gt 1 ] && extra+=(-fork="$workers")
  # An artifact from an earlier run is not this run's finding: count only
  # files newer than this marker.
  touch "$build/fuzz-logs/$t.start"
  local rc=0 TIMEFORMAT='%U %S'
  # timeout: a hang that libFuzzer's own -timeout cannot interrupt still
  # ends the run (and is reported as one).
  { time timeout -k 10 $((seconds + 300)) "$build/tests/fuzz/${exe[$t]}" \
      -max_total_time="$seconds" -max_len="${max_len[$t]}" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" "${extra[@]}" \
      "$work" "${dirs[@]}" >"$log" 2>&1 || rc=$?; } 2>"$build/fuzz-logs/$t.time"
  local user sys
  read -r user sys <"$build/fuzz-logs/$t.time"
  # Executions: the final stats (single process) or the last status line
  # ("#12345: cov: ..." in fork mode, "#12345 DONE ..." otherwise).
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)
  [ -n "$execs" ] || execs=$(sed -n 's/^#\([0-9][0-9]*\)[: ].*/\1/p' "$log" | tail -n 1)
  local found
  found=$(find "$artifacts" -type f -newer "$build/fuzz-logs/$t.start" | wc -l)
  echo "$t ${execs:-0} $(find "$work" -type f | wc -l) $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.0f", u + s }') $rc $found" \
    >"$build/fuzz-logs/$t.stats"
}

echo "fuzzing ${targets[*]} for ${seconds}s each, $jobs at a time (logs: $build/fuzz-logs/)"
running=0
for t in "${targets[@]}"; do
  fuzz_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done
wait

status=0
printf '\n%-8s %14s %8s %8s  %s\n' target executions corpus cpu_s result
for t in "${targets[@]}"; do
  read -r name execs corpus cpu rc found <"$build/fuzz-logs/$t.stats"
  result=ok
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
    status=1
    # libFuzzer's one-line verdict, e.g. "SUMMARY: AddressSanitizer: heap-buffer-overflow ..."
    why=$(grep -m1 -E '^SUMMARY: |ERROR: libFuzzer: |^==[0-9]+== ?ERROR: ' "$build/fuzz-logs/$t.log" || true)
    result="FAILED (exit $rc): ${why:-see $build/fuzz-logs/$t.log}"
  fi
  printf '%-8s %14s %8s %8s  %s\n' "$name" "$execs" "$corpus" "$cpu" "$result"
  if [ "$result" != ok ]; then
    while IFS= read -r -d '' artifact; do
      echo "  input: $artifact"
      if [ "$save" = 1 ]; then
        mkdir -p "$src/regressions/$t"
        cp "$artifact" "$src/regressions/$t/"
        echo "  kept as tests/fuzz/regressions/$t/$(basename "$artifact")"
      else
        echo "  keep it: cp '$artifact' tests/fuzz/regressions/$t/"
      fi
    done < <(find "$build/fuzz-artifacts/$t" -type f -newer "$build/fuzz-logs/$t.start" -print0)
  fi
done
exit "$status"
