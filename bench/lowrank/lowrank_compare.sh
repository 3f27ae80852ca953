#!/usr/bin/env bash
# Low-rank factorization speed, side by side in one run (bench/RESULTS.md, "lowrank").
#
#   bench/lowrank/lowrank_compare.sh resnet18 [CTK] [OUTDIR]
#     torchvision resnet18 (random weights, seed 0, 224x224, batch norms folded),
#     lowrank.tucker2 at ratio 0.5 with the latency gate (timed at batch 1 and 32) and
#     without it; ctk bench of the three models at batch 1 and 32 on onednn,
#     2 threads, alternated over ROUNDS rounds (default 3); prints p50 ms and
#     the speedup of each factorized model over the dense one per round.
#   bench/lowrank/lowrank_compare.sh cost [CTK] [OUTDIR]
#     seconds to Tucker-2 every k x k conv of torchvision resnet50 (no gate).
set -euo pipefail
what=${1:?usage: lowrank_compare.sh resnet18|cost [CTK] [OUTDIR]}
ctk=${2:-build/src/cli/ctk}
out=${3:-/tmp/lowrank_bench}
rounds=${ROUNDS:-3}
mkdir -p "$out"
py=/usr/bin/python3

make_model() {  # NAME -> $out/NAME.cmf
  local name=$1
  [ -f "$out/$name.cmf" ] && return
  "$py" - "$name" "$out/$name.pt" <<'PY'
import sys, torch, torchvision
torch.manual_seed(0)
m = getattr(torchvision.models, sys.argv[1])(weights=None).eval()
torch.jit.save(torch.jit.trace(m, torch.randn(1, 3, 224, 224)), sys.argv[2])
PY
  "$ctk" --quiet convert "$out/$name.pt" "$out/$name.cmf" --input-shape 1,3,224,224
}

p50() {  # MODEL BATCH
  "$ctk" --threads 2 bench "$1" --backend onednn --batch "$2" --min-runs 5 --min-time 2 --json |
    "$py" -c 'import json,sys; print("%.3f" % json.load(sys.stdin)["latency_ms"]["p50"])'
}

case "$what" in
  resnet18)
    make_model resnet18
    rm -f "$out/r18_gated.cmf" "$out/r18_all.cmf"
    echo "== lowrank.tucker2 --ratio 0.5 (latency gate on onednn at batch 1 and 32)"
    /usr/bin/time -f "(%e s)" "$ctk" --threads 2 lowrank "$out/resnet18.cmf" "$out/r18_gated.cmf" --method tucker2 \
      --ratio 0.5 --gate-batch 1 --gate-batch 32 --quiet
    echo "== the same without the gate"
    "$ctk" --threads 2 lowrank "$out/resnet18.cmf" "$out/r18_all.cmf" --method tucker2 --ratio 0.5 --no-latency-gate --quiet
    for batch in 1 32; do
      for round in $(seq 1 "$rounds"); do
        dense=$(p50 "$out/resnet18.cmf" "$batch")
        gated=$(p50 "$out/r18_gated.cmf" "$batch")
        all=$(p50 "$out/r18_all.cmf" "$batch")
        "$py" -c "d,g,a=$dense,$gated,$all; print(f'batch $batch round $round: dense {d} ms, tucker2 gated {g} ms ({d/g:.2f}x), tucker2 all {a} ms ({d/a:.2f}x)')"
      done
    done
    ;;
  cost)
    make_model resnet50
    rm -f "$out/r50_t2.cmf"
    start=$(date +%s.%N)
    "$ctk" --threads 2 lowrank "$out/resnet50.cmf" "$out/r50_t2.cmf" --method tucker2 --ratio 0.5 --no-latency-gate --quiet \
      > "$out/r50_t2.txt"
    end=$(date +%s.%N)
    head -1 "$out/r50_t2.txt"
    "$py" -c "print(f'Tucker-2 of every k x k conv of resnet50: {$end - $start:.1f} s (ctk lowrank wall time, load and save included)')"
    ;;
  *) echo "unknown benchmark '$what' (resnet18 | cost)" >&2; exit 2 ;;
esac
