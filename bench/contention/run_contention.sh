#!/usr/bin/env bash
# Batch-1 latency of ctk (onednn backend), ONNX Runtime and LibTorch while other
# processes compete for the cores: the OpenMP spin-wait problem (README.md here).
#
#   bash bench/contention/run_contention.sh [options]
#
# For every round, for every condition (in an order that rotates by round):
# sample what the machine does without us (1 s of /proc/stat, load average,
# top processes), start the competitors, then run every model x candidate (in
# a rotating order) as its own process, stop the competitors. Each run prints
# its p50; the table at the end (summarize.py) is the median over rounds.
#
# Options (defaults in brackets):
#   --ctk PATH          ctk executable [build/src/cli/ctk]; copied into WORK/bin first
#   --fixtures DIR      folder with MODEL.pt [build/tests/torch/fixtures]
#   --models LIST       [resnet18 mobilenet_v2]
#   --input-shape S     [1,3,224,224]
#   --conditions LIST   [quiet yes1 yes2 yes3 train]
#                         quiet; yesN: N x `yes > /dev/null`; busyN: N x a shell busy loop;
#                         train: train_competitor.py (torch CNN training, 2 threads);
#                         trainyesN: the training job plus N x yes
#   --candidates LIST   [default nothrottle passive spin100 spin10000 t1 ort2 ort0 torch2]
#                         default: ctk --threads 2 as shipped; passive: OMP_WAIT_POLICY=passive;
#                         spinN: GOMP_SPINCOUNT=N; t1: ctk --threads 1; t1passive;
#                         nothrottle: COMPRESS_SPIN_THROTTLE=off (ctk before the adaptive spin throttle,
#                         Note [Spinning on a busy machine]); throttleon: COMPRESS_SPIN_THROTTLE=on;
#                         ort2 / ort0: ONNX Runtime, intraOpNumThreads 2 / 0 (its default);
#                         ort2nospin: ORT with allow_spinning=0; torch2: LibTorch, 2 threads
#   --threads N         thread count of the 2-thread candidates [2]
#   --rounds N          [3]
#   --min-time S        timed seconds per run, at least [1.5] (and at least 10 runs)
#   --warmup N          untimed runs before each timing [15]
#   --work DIR          converted models, copied binaries, logs [/tmp/contention/work]
#   --out FILE          results (TSV, appended) [WORK/results-DATE.tsv]
#   --ort-dir DIR       folder whose node_modules has onnxruntime-node [/tmp/contention]
#   --dry-run           prepare everything, run one quick round of quiet x default, print the table
#
# Needs: Debian's /usr/bin/python3 with torch (export, LibTorch, training),
# node + `npm install --ignore-scripts onnxruntime-node@1.30`
# in --ort-dir. Nothing else.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CTK_SRC="$ROOT/build/src/cli/ctk"
FIXTURES="$ROOT/build/tests/torch/fixtures"
MODELS="resnet18 mobilenet_v2"
INPUT_SHAPE="1,3,224,224"
CONDITIONS="quiet yes1 yes2 yes3 train"
CANDIDATES="default nothrottle passive spin100 spin10000 t1 ort2 ort0 torch2"
THREADS=2
ROUNDS=3
WARMUP=15
MIN_TIME=1.5
WORK=/tmp/contention/work
OUT=""
ORT_DIR=/tmp/contention
DRY=0
PY=/usr/bin/python3

die() { echo "run_contention: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --ctk) CTK_SRC="$2"; shift 2 ;;
    --fixtures) FIXTURES="$2"; shift 2 ;;
    --models) MODELS="$2"; shift 2 ;;
    --input-shape) INPUT_SHAPE="$2"; shift 2 ;;
    --conditions) CONDITIONS="$2"; shift 2 ;;
    --candidates) CANDIDATES="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --warmup) WARMUP="$2"; shift 2 ;;
    --min-time) MIN_TIME="$2"; shift 2 ;;
    --work) WORK="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --ort-dir) ORT_DIR="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "bad --rounds '$ROUNDS'"
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "bad --threads '$THREADS'"
[[ -x "$CTK_SRC" ]] || die "no ctk at $CTK_SRC (--ctk PATH)"
[[ -x "$PY" ]] || die "needs $PY (Debian python3 with torch)"
if [[ $DRY == 1 ]]; then ROUNDS=1; CONDITIONS=quiet; CANDIDATES="default ort2"; MIN_TIME=0.3; fi

mkdir -p "$WORK/bin" "$WORK/logs"
[[ -n "$OUT" ]] || OUT="$WORK/results-$(date -u +%Y%m%dT%H%M%SZ).tsv"
LOG="$WORK/logs/run-$(date -u +%Y%m%dT%H%M%SZ).log"
log() { echo "$*" | tee -a "$LOG" >&2; }

# --- preparation ----------------------------------------------------------
# A private copy of ctk: the build folder may be rebuilt while we measure.
CTK="$WORK/bin/ctk"
cp "$CTK_SRC" "$CTK.tmp" && mv "$CTK.tmp" "$CTK"
for m in $MODELS; do
  pt="$FIXTURES/$m.pt"
  [[ -f "$pt" ]] || die "no $pt (the torch tests generate it; or tests/fixtures/make_torch_fixtures.py DIR $m)"
  cp "$pt" "$WORK/$m.pt.tmp" && mv "$WORK/$m.pt.tmp" "$WORK/$m.pt"
  if [[ ! -f "$WORK/$m.cmf" || "$WORK/$m.pt" -nt "$WORK/$m.cmf" ]]; then
    "$CTK" --quiet convert "$WORK/$m.pt" "$WORK/$m.cmf" --input-shape "$INPUT_SHAPE" >>"$LOG" 2>&1 || die "ctk convert $m failed (see $LOG)"
  fi
  if [[ " $CANDIDATES " == *" ort"* ]] && [[ ! -f "$WORK/$m.onnx" || "$WORK/$m.pt" -nt "$WORK/$m.onnx" ]]; then
    "$PY" "$HERE/export_onnx.py" "$WORK/$m.pt" "$WORK/$m.onnx" --input-shape "$INPUT_SHAPE" >>"$LOG" 2>&1 || die "ONNX export of $m failed (see $LOG)"
    ORT_NODE_DIR="$ORT_DIR" node "$HERE/ort_bench.mjs" "$WORK/$m.onnx" --check --min-time 0 --min-runs 1 --warmup 0 >>"$LOG" 2>&1 \
      || die "ONNX Runtime does not reproduce PyTorch's output on $m (see $LOG)"
  fi
done

# --- machine state ----------------------------------------------------------
# Cores busy over 1 s, from /proc/stat (user nice system irq softirq steal):
# nothing of ours runs while this samples, so it is the background.
busy_cores() {
  local a b
  a=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat)
  awk -v a="$a" -v b="$b" -v n="$(nproc)" 'BEGIN{split(a,x," ");split(b,y," "); t=y[2]-x[2]; printf "%.2f", (t > 0 ? (y[1]-x[1])/t*n : 0)}'
}

# --- competitors ------------------------------------------------------------
COMP_PIDS=()
start_competitors() {
  local cond="$1" n i
  COMP_PIDS=()
  case "$cond" in
    quiet) return 0 ;;
    yes[0-9]*) n=${cond#yes}
      for ((i = 0; i < n; ++i)); do setsid yes >/dev/null & COMP_PIDS+=($!); done ;;
    busy[0-9]*) n=${cond#busy}
      for ((i = 0; i < n; ++i)); do setsid bash -c 'while :; do :; done' & COMP_PIDS+=($!); done ;;
    train|trainyes[0-9]*)
      local fifo="$WORK/train.ready"
      rm -f "$fifo"
      setsid "$PY" "$HERE/train_competitor.py" --threads "$THREADS" --quiet >"$fifo" 2>>"$LOG" & COMP_PIDS+=($!)
      for ((i = 0; i < 600; ++i)); do grep -q ready "$fifo" 2>/dev/null && break; sleep 0.1; done
      grep -q ready "$fifo" 2>/dev/null || log "warning: the training competitor did not report ready in 60 s"
      if [[ "$cond" == trainyes* ]]; then
        n=${cond#trainyes}
        for ((i = 0; i < n; ++i)); do setsid yes >/dev/null & COMP_PIDS+=($!); done
      fi ;;
    *) die "unknown condition '$cond'" ;;
  esac
  sleep 1
}
stop_competitors() {
  local p
  for p in "${COMP_PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true; done
  for p in "${COMP_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  COMP_PIDS=()
}
trap 'stop_competitors' EXIT
trap 'exit 130' INT TERM

# --- one measurement: prints "p50 min runs" (ms) ----------------------------
json_field() { "$PY" -c 'import json,sys
text=sys.stdin.read().strip()
# ctk bench prints indented JSON; the node and python timers print one line.
d=json.loads(text if text.startswith("{") else text.splitlines()[-1])
l=d.get("latency_ms", d)
print("%.4f %.4f %d" % (l["p50"], l["min"], d["runs"]))'; }

measure() {
  local cand="$1" m="$2" t="$THREADS" envs=() pre=()
  local ctk_args=(bench "$WORK/$m.cmf" --backend onednn --json --min-time "$MIN_TIME" --min-runs 10 --warmup "$WARMUP")
  case "$cand" in
    default) ;;
    passive) envs=(OMP_WAIT_POLICY=passive) ;;
    active) envs=(OMP_WAIT_POLICY=active) ;;
    spin[0-9]*) envs=("GOMP_SPINCOUNT=${cand#spin}") ;;
    t1) t=1 ;;
    t1passive) t=1; envs=(OMP_WAIT_POLICY=passive) ;;
    nothrottle) envs=(COMPRESS_SPIN_THROTTLE=off) ;;
    throttleon) envs=(COMPRESS_SPIN_THROTTLE=on) ;;
    ort2|ort0|ort2nospin)
      local ot=2 extra=()
      [[ "$cand" == ort0 ]] && ot=0
      [[ "$cand" == ort2 || "$cand" == ort2nospin ]] && ot="$THREADS"
      [[ "$cand" == ort2nospin ]] && extra=(--no-spin)
      ORT_NODE_DIR="$ORT_DIR" timeout 300 node "$HERE/ort_bench.mjs" "$WORK/$m.onnx" --threads "$ot" \
        --min-time "$MIN_TIME" --min-runs 10 --warmup "$WARMUP" "${extra[@]}" 2>>"$LOG" | json_field
      return ;;
    torch2)
      timeout 300 "$PY" "$HERE/torch_bench.py" "$WORK/$m.pt" --threads "$THREADS" --input-shape "$INPUT_SHAPE" \
        --min-time "$MIN_TIME" --min-runs 10 --warmup "$WARMUP" 2>>"$LOG" | json_field
      return ;;
    *) die "unknown candidate '$cand'" ;;
  esac
  env "${envs[@]}" timeout 300 "$CTK" --threads "$t" "${ctk_args[@]}" 2>>"$LOG" | json_field
}

rotate() {  # rotate LIST by K: "a b c" 1 -> "b c a"
  local k="$1"; shift
  local arr=($@) n=$# i out=()
  for ((i = 0; i < n; ++i)); do out+=("${arr[$(((i + k) % n))]}"); done
  echo "${out[@]}"
}

[[ -s "$OUT" ]] || printf 'time\tround\tcondition\tmodel\tcandidate\tp50_ms\tmin_ms\truns\tbackground_cores\tloadavg1\n' >"$OUT"
log "results: $OUT"
log "log: $LOG"
log "ctk: $CTK_SRC ($(stat -c %y "$CTK_SRC"))"
log "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, kernel $(uname -r)"

for ((r = 1; r <= ROUNDS; ++r)); do
  for cond in $(rotate $((r - 1)) $CONDITIONS); do
    bg=$(busy_cores)
    la=$(cut -d' ' -f1 /proc/loadavg)
    log "--- round $r, $cond: background ${bg} cores busy, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
    { ps -eo pcpu,etime,comm --sort=-pcpu | head -6 | sed 's/^/    /' >>"$LOG"; } || true
    start_competitors "$cond"
    i=0
    for m in $MODELS; do
      for cand in $(rotate $((r - 1 + i)) $CANDIDATES); do
        if res=$(measure "$cand" "$m") && [[ -n "$res" ]]; then
          read -r p50 mn runs <<<"$res"
        else
          p50=nan; mn=nan; runs=0
          log "    $m $cand: failed (see $LOG)"
        fi
        printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u +%H:%M:%S)" "$r" "$cond" "$m" "$cand" \
          "$p50" "$mn" "$runs" "$bg" "$la" >>"$OUT"
        log "    $m $cand: p50 $p50 ms (min $mn, $runs runs)"
      done
      i=$((i + 1))
    done
    stop_competitors
  done
done

"$PY" "$HERE/summarize.py" "$OUT"
