#!/bin/bash
# The distillation figures of bench/RESULTS.md ("distill.kd"), each against its labels-only baseline with the same
# schedule, on Fashion-MNIST (train: 60,000 images, test: 10,000), 2 threads:
#   student  the half-width fashion_resnet student (random init, committed), 2 epochs, seeds 0 1 2:
#            KD from fashion_resnet (logits, alpha 0.5, T 4) against labels alone (alpha 0);
#            TEACHER=tests/fixtures/models/fashion_resnet_teacher.cmf for the longer-trained teacher
#   recovery fashion_resnet pruned to 30% of its FLOPs (prune.structured), 1 epoch: no teacher, logits KD,
#            (TEACHER= as above for the teacher)
#            logits + block-output feature KD
#   transformer  the 2-layer transformer student from the 4-layer teacher, 2 epochs: labels alone, logits KD,
#            logits + attention-map KL + hidden-state MSE (--pair auto); SEED=N for another seed (default 0)
#   cost     samples/s of one epoch on SAMPLES images: labels alone, KD from the teacher cache, KD from the live
#            teacher on onednn (half-width student; ROUNDS alternated rounds; PAIR=S=T adds a feature pair)
#   bench/distill/kd_compare.sh build/src/cli/ctk student|recovery|transformer|cost [SAMPLES] [ROUNDS]
set -euo pipefail
ctk=$1
what=$2
samples=${3:-9600}
rounds=${4:-3}
models=tests/fixtures/models
data=(--data fashion-mnist:train --mean 0.286 --std 0.353)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=2
top1() { "$ctk" eval "$1" --data fashion-mnist:test --mean 0.286 --std 0.353 2>&1 | grep -o 'top-1[^%]*%' | grep -o '[0-9.]*%' | tr -d '%'; }
rate() { grep -o '[0-9.]* samples/s' | tail -1 | cut -d' ' -f1; }
distill() { "$ctk" distill --threads 2 -q "${data[@]}" "$@"; }

case "$what" in
student)
  teacher=${TEACHER:-$models/fashion_resnet.cmf}
  for seed in 0 1 2; do
    distill --teacher "$teacher" --student $models/fashion_resnet_half.pt "$tmp/kd.cmf" --epochs 2 \
      --seed "$seed" --teacher-cache "$tmp/teacher.cache" > /dev/null
    distill --teacher "$teacher" --student $models/fashion_resnet_half.pt "$tmp/ce.cmf" --epochs 2 \
      --seed "$seed" --alpha 0 > /dev/null
    echo "seed $seed: labels only $(top1 "$tmp/ce.cmf")%, KD $(top1 "$tmp/kd.cmf")%"
  done
  ;;
recovery)
  "$ctk" prune $models/fashion_resnet.cmf "$tmp/p30.cmf" --method structured --target-flops 0.7 -q > "$tmp/prune.txt"
  head -1 "$tmp/prune.txt"
  echo "teacher $(top1 $models/fashion_resnet.cmf)%, pruned before training $(top1 "$tmp/p30.cmf")%"
  pairs=(--pair 'block1.relu2=block1.relu2' --pair 'block2.relu2=block2.relu2' --pair 'block3.relu2=block3.relu2')
  lr=(--lr "${LR:-5e-4}")
  teacher=${TEACHER:-$models/fashion_resnet.cmf}
  distill --teacher "$teacher" --student "$tmp/p30.cmf" "$tmp/none.cmf" --alpha 0 "${lr[@]}" > /dev/null
  distill --teacher "$teacher" --student "$tmp/p30.cmf" "$tmp/logits.cmf" "${lr[@]}" > /dev/null
  distill --teacher "$teacher" --student "$tmp/p30.cmf" "$tmp/features.cmf" "${pairs[@]}" "${lr[@]}" \
    ${BALANCE:+--balance "$BALANCE"} > /dev/null
  echo "no teacher $(top1 "$tmp/none.cmf")%, logits KD $(top1 "$tmp/logits.cmf")%, logits + features KD" \
    "$(top1 "$tmp/features.cmf")%"
  ;;
transformer)
  t=$models/fashion_transformer.cmf
  s=$models/fashion_transformer_student.pt
  echo "teacher $(top1 $t)%"
  distill --teacher $t --student $s "$tmp/ce.cmf" --epochs 2 --alpha 0 --lr "${LR:-1e-3}" --seed "${SEED:-0}" > /dev/null
  distill --teacher $t --student $s "$tmp/logits.cmf" --epochs 2 --lr "${LR:-1e-3}" --seed "${SEED:-0}" --teacher-cache "$tmp/t.cache" \
    > /dev/null
  distill --teacher $t --student $s "$tmp/auto.cmf" --epochs 2 --lr "${LR:-1e-3}" --seed "${SEED:-0}" --pair auto \
    ${BALANCE:+--balance "$BALANCE"} --teacher-cache "$tmp/auto.cache" > /dev/null
  echo "labels only $(top1 "$tmp/ce.cmf")%, logits KD $(top1 "$tmp/logits.cmf")%, logits + attention + hidden KD" \
    "$(top1 "$tmp/auto.cmf")%"
  ;;
cost)
  args=(--teacher $models/fashion_resnet.cmf --student $models/fashion_resnet_half.pt --limit "$samples"
        ${PAIR:+--pair "$PAIR"})
  distill "${args[@]}" "$tmp/warm.cmf" --teacher-cache "$tmp/c.cache" --steps 1 > /dev/null  # builds the cache
  args+=(--epochs 1)
  for r in $(seq "$rounds"); do
    plain=$(distill "${args[@]}" "$tmp/p.cmf" --alpha 0 | rate)
    cached=$(distill "${args[@]}" "$tmp/c.cmf" --teacher-cache "$tmp/c.cache" | rate)
    live=$(distill "${args[@]}" "$tmp/l.cmf" | rate)
    echo "round $r: labels only $plain, KD cached $cached, KD live (onednn) $live samples/s;" \
      "cached epoch / plain = $(echo "$plain / $cached" | bc -l | cut -c1-4), live / plain =" \
      "$(echo "$plain / $live" | bc -l | cut -c1-4)"
  done
  ;;
*)
  echo "unknown experiment '$what' (student, recovery, transformer, cost)" >&2
  exit 2
  ;;
esac
