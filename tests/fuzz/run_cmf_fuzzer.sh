#!/usr/bin/env bash
# Fuzzes the .cmf reader alone; kept for habit and old notes, it is
# tests/fuzz/run_all.sh restricted to that target (same build folder, corpus
# and environment variables).
#
#   tests/fuzz/run_cmf_fuzzer.sh [SECONDS]      (default 60)
#
# COMPRESS_FUZZ_JOBS=N runs N libFuzzer processes (-fork=N). Crashing inputs
# go to build-fuzz/fuzz-artifacts/cmf/; rerun one with
#   build-fuzz/tests/fuzz/fuzz_cmf_reader build-fuzz/fuzz-artifacts/cmf/crash-...
set -euo pipefail
exec "$(dirname "$0")/run_all.sh" --only cmf --seconds "${1:-60}" --workers "${COMPRESS_FUZZ_JOBS:-1}"
