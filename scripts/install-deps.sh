#!/usr/bin/env bash
# Installs the Debian 12 packages compress needs, only those that are missing.
# The list is documented in DEVELOPERS.md; keep both in sync.
set -euo pipefail

PACKAGES=(
  cmake ninja-build g++ clang libclang-rt-14-dev llvm-14-tools ccache
  libeigen3-dev libfmt-dev libboost-program-options-dev libyaml-cpp-dev nlohmann-json3-dev catch2
  libdnnl-dev
  libtorch-dev libopenblas0-pthread libblas-dev python3-torch python3-torchvision
  dataset-fashion-mnist
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  # "install ok installed" is the only state in which a package is usable.
  if [[ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)" != "install ok installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-deps: missing packages (${missing[*]}) and not root; run as root or install them" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
"${SUDO[@]}" apt-get update
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"
