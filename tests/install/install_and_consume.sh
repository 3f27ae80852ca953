#!/usr/bin/env bash
# Installs a compress build into a temporary prefix, builds the consumer
# project (tests/install/consumer) against it from outside the source tree,
# and runs it on a model. A CTest test of the release build (tests/install).
#
#   tests/install/install_and_consume.sh BUILD_DIR MODEL.cmf
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR MODEL.cmf" >&2; exit 2; }
build=$1
model=$2
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/compress-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

cmake --install "$build" --prefix "$work/prefix" >"$work/install.log" || { cat "$work/install.log"; exit 1; }
# Only what was installed: the consumer sees the prefix, not this tree.
for f in include/compress/pipeline/recipe_runner.h lib/cmake/compress/compressConfig.cmake bin/ctk; do
  [ -e "$work/prefix/$f" ] || { echo "install: $f is missing from the prefix" >&2; exit 1; }
done
cp -r "$here/consumer" "$work/consumer"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$work/consumer" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log" || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/build" >"$work/build.log" || { cat "$work/build.log"; exit 1; }
"$work/build/consumer" "$model" "$work/pruned.cmf"
"$work/prefix/bin/ctk" inspect "$work/pruned.cmf" >/dev/null
echo "install_and_consume: ok (prefix $work/prefix)"
