# Shared by demo.sh and test.sh: configure and build one build directory.
# Sourced, not run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JOBS="${COMPRESS_JOBS:-$(nproc)}"

# ccache (used by CMakeLists.txt when installed) hits across checkouts in
# different folders, e.g. CI's fresh clone after a developer's build: paths
# under ROOT are hashed relative to it.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$ROOT}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"

# configure_and_build BUILD_DIR [cmake args...]
# Builds everything, or only the targets in the BUILD_TARGETS array when set.
configure_and_build() {
  local build_dir="$1"
  shift
  local generator=()
  # Ninja when present; an existing build dir keeps the generator it was made with.
  if command -v ninja >/dev/null 2>&1 && [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
    generator=(-G Ninja)
  fi
  # &&, not two lines: callers test the result inside `if`, where set -e is off.
  cmake -S "$ROOT" -B "$build_dir" "${generator[@]}" "$@" &&
    cmake --build "$build_dir" -j "$JOBS" ${BUILD_TARGETS:+--target "${BUILD_TARGETS[@]}"}
}
