#!/usr/bin/env bash
# Installs missing packages, builds compress (Release) and runs the demo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bash "$ROOT/scripts/install-deps.sh"
# Only what the demo needs (and ctk, to try on the demo's model afterwards).
BUILD_TARGETS=(compress_demo ctk)
configure_and_build "$ROOT/build" -DCMAKE_BUILD_TYPE=Release
"$ROOT/build/examples/compress_demo" "$ROOT/build/demo-out"
echo
echo "next: $ROOT/build/src/cli/ctk inspect $ROOT/build/demo-out/demo_cnn.cmf --ir"
