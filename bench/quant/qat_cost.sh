#!/bin/bash
# The cost of a QAT epoch against a plain fine-tuning epoch of the same model through the same Trainer:
# distill.finetune (f32, cross-entropy) and quant.qat (LSQ W8A8, cross-entropy), alternated ROUNDS times
# on the first SAMPLES training images, batch 32, Adam lr 1e-4, 2 threads, and PyTorch's FX QAT epoch on the same
# images (bench/quant/fx_qat_compare.py's loop, fashion_cnn only). Prints samples/s of each run.
#   bench/quant/qat_cost.sh build/src/cli/ctk [MODEL] [SAMPLES] [ROUNDS]
set -euo pipefail
ctk=$1
model=${2:-tests/fixtures/models/fashion_cnn.cmf}
samples=${3:-9600}
rounds=${4:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/ft.yaml" <<YAML
model: $(realpath "$model")
output: $tmp/ft.cmf
seed: 0
threads: 2
data:
  training: {spec: "fashion-mnist:train", mean: 0.2860, std: 0.3530, samples: $samples}
stages:
  - distill.finetune: {epochs: 1, lr: 0.0001, alpha: 0}
YAML
rate() { grep -o '[0-9.]* samples/s' | tail -1 | cut -d' ' -f1; }
for r in $(seq "$rounds"); do
  ft=$("$ctk" run "$tmp/ft.yaml" 2>&1 | rate)
  qat=$(OMP_NUM_THREADS=2 "$ctk" qat "$model" "$tmp/q.cmf" --data fashion-mnist:train --mean 0.286 --std 0.353 \
        --limit "$samples" --epochs 1 --no-kd --calib-samples 256 2>&1 | rate)
  fx=$(/usr/bin/python3 -c "
import sys; sys.path[:0] = ['bench/quant', 'tests/fixtures']
import torch; torch.set_num_threads(2)
import fx_qat_compare as f, fashion_models as m
x, y = m.load_split('train')
mod = f.torch_module('$ctk', '$(realpath "$model")', m.FashionCnn, '$tmp')
_, s = f.fx_qat(mod, x[:$samples], y[:$samples], 8, 8, 1, 1e-4)
print(f'{$samples / s:.0f}')")
  echo "round $r: finetune $ft, qat $qat, FX qat $fx samples/s; qat epoch / finetune epoch = $(echo "$ft / $qat" | bc -l | cut -c1-4), / FX qat epoch = $(echo "$fx / $qat" | bc -l | cut -c1-4)"
done
