#!/usr/bin/env bash
# Builds the .cmf reader fuzzer with clang (libFuzzer + ASan + UBSan) in its
# own build folder and fuzzes for a bounded time, seeded with valid files.
#
#   tests/fuzz/run_cmf_fuzzer.sh [SECONDS]      (default 60)
#
# Environment: COMPRESS_FUZZ_BUILD_DIR (default build-fuzz), COMPRESS_FUZZ_JOBS
# (parallel fuzzing processes, default 1), COMPRESS_FUZZ_UB_RECOVER=1 (report
# each undefined-behaviour site once and keep fuzzing, to survey findings;
# use a separate build dir for it). Crashing inputs are written to
# build-fuzz/fuzz-artifacts/; rerun one with
#   build-fuzz/tests/fuzz/fuzz_cmf_reader build-fuzz/fuzz-artifacts/crash-...
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${COMPRESS_FUZZ_BUILD_DIR:-$root/build-fuzz}
jobs=${COMPRESS_FUZZ_JOBS:-1}

if ! command -v clang++ >/dev/null; then
  echo "run_cmf_fuzzer.sh: clang++ not found (apt-get install clang)" >&2
  exit 1
fi
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi

ub_mode=-fno-sanitize-recover=undefined
if [ "${COMPRESS_FUZZ_UB_RECOVER:-0}" = 1 ]; then
  ub_mode=-fsanitize-recover=undefined
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=0:print_stacktrace=1}
fi

# fuzzer-no-link instruments the libraries for coverage without adding
# libFuzzer's main() to every executable.
cmake -S "$root" -B "$build" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCOMPRESS_BUILD_FUZZERS=ON -DCOMPRESS_BUILD_TESTS=OFF -DCOMPRESS_CUDA=OFF \
  "-DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link,address,undefined $ub_mode -fno-omit-frame-pointer" \
  "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=address,undefined" >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_cmf_reader cmf_make_seeds

corpus=$build/fuzz-corpus/cmf
artifacts=$build/fuzz-artifacts
mkdir -p "$corpus" "$artifacts"
"$build/tests/fuzz/cmf_make_seeds" "$corpus"

parallel=()
# -jobs sends each worker's output to fuzz-N.log; only use it when asked.
if [ "$jobs" -gt 1 ]; then parallel=(-jobs="$jobs" -workers="$jobs"); fi

echo "fuzzing the .cmf reader for ${seconds}s (corpus: $corpus)"
"$build/tests/fuzz/fuzz_cmf_reader" \
  -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  "${parallel[@]}" -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$corpus"
