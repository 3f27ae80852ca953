#!/usr/bin/env bash
# Installs missing packages, builds compress (Release) and runs the demo.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bash "$ROOT/scripts/install-deps.sh"
configure_and_build "$ROOT/build" -DCMAKE_BUILD_TYPE=Release
"$ROOT/build/examples/compress_demo" "$ROOT/build/demo-out"
