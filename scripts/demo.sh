#!/usr/bin/env bash
# The main job: installs missing packages, builds ctk (Release), compresses the
# trained Fashion-MNIST CNN with the shipped recipes and prints the comparison
# report (accuracy on the 10,000 test images, latency, size, bits).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bash "$ROOT/scripts/install-deps.sh"
BUILD_TARGETS=(ctk)
configure_and_build "$ROOT/build" -DCMAKE_BUILD_TYPE=Release
CTK="$ROOT/build/src/cli/ctk"
OUT="$ROOT/build/demo-out"
mkdir -p "$OUT"
MODEL="$ROOT/tests/fixtures/models/fashion_cnn.cmf"
DATA=(--data fashion-mnist:test --mean 0.2860 --std 0.3530)

# Each recipe writes its compressed model; the variants the recipes of this
# build produce are then measured side by side against the original.
variants=()
names=()
for recipe in "$ROOT"/examples/recipes/fashion_*.yaml; do
  name="$(basename "$recipe" .yaml)"
  name="${name#fashion_}"
  echo
  echo "== ctk run $(realpath --relative-to="$ROOT" "$recipe")"
  "$CTK" --quiet run "$recipe" --out "$OUT/$name.cmf" --report-dir "$OUT/report_$name"
  variants+=("$OUT/$name.cmf")
  names+=("$name")
done

echo
echo "== ctk report: the original and every variant, onednn backend, same threads"
"$CTK" --quiet report "$MODEL" "${variants[@]}" "${DATA[@]}" \
  --names "fp32,$(IFS=,; echo "${names[*]}")" --out "$OUT/report" --min-time 1
echo
echo "open $OUT/report/report.html for the charts; try: $CTK inspect $OUT/${names[0]}.cmf"
