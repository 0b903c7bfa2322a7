#!/usr/bin/env bash
# run_multi.sh: issue 7 on one multi-GPU machine, every GPU it has (or the first N): the numbers of
# bench/results/multi-gpu.md. Phases (select with PHASES="plan data scale main full kill", default all):
#   plan   lgtrain --plan --world N for the 7B config
#   data   real shards made by lgdata: the quickstart corpus (tokenizer.model, vocab 1024 < 32000) tokenized
#          once and packed 64 times over into 131072-token sequences
#   scale  the 7B-wide 8-layer shape (configs/bench-7b-8layer.ini) on 1, 2, 4, 8 GPUs (<= N), one 128K
#          sequence per GPU per step, 3 steps: tokens/s and efficiency vs linear
#   main   configs/7b-128k.ini (7B shape, random init: no checkpoint on the machine) on N GPUs, 20 steps of
#          N x 131072 tokens (one sequence per GPU per step), checkpoint every 10
#   full   the same with every layer full attention (configs/7b-128k-full.ini), 5 steps: the hybrid speedup
#   kill   deterministic 8-step runs: one uninterrupted, one stopped by SIGTERM through launch/mpirun.sh after
#          step 4 and resumed with the same command on N GPUs, and on N/2 GPUs from that checkpoint
# usage: [LAYERS=n] [PHASES=...] [MAIN_STEPS=n] bench/run_multi.sh [build dir] [N]   (logs under $OUT/multi, or /tmp/multi)
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="$(cd "${1:-$ROOT/build-dev}" && pwd)"
N="${2:-$(nvidia-smi -L | grep -c '^GPU')}"
D="${OUT:-/tmp}/multi"
PHASES="${PHASES:-plan data scale main full kill}"
mkdir -p "$D"
cd "$ROOT"
has() { [[ " $PHASES " == *" $1 "* ]]; }
MPI=(mpirun --bind-to none -x OMP_NUM_THREADS=4)
[ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
# the machine's NVLink-multicast switches (KINDS.md: must stay off) reach every rank explicitly
for v in NCCL_NVLS_ENABLE TORCH_SYMM_MEM_DISABLE_MULTICAST NVSHMEM_DISABLE_NVLS; do [ -n "${!v:-}" ] && MPI+=(-x "$v"); done
MAIN_STEPS="${MAIN_STEPS:-20}"   # fewer for a short device budget (each 7B step at 128K is tens of seconds)
nvidia-smi --query-gpu=index,name,driver_version,memory.total --format=csv,noheader | tee "$D/gpus.txt"
# the 7B shape without a checkpoint on the machine
# LAYERS < 32 (and layout.full_layers=auto, the middle third) for machines with fewer than 4 GPUs, where the
# 32-layer 7B does not fit (lgtrain --plan says so)
LAYERS="${LAYERS:-32}"
FULL_SET=(); [ "$LAYERS" != 32 ] && FULL_SET=(--set layout.full_layers=auto)
SHAPE=(--set run.init_from=random --set model.vocab_size=32000 --set model.dim=4096 --set model.n_layers=$LAYERS
       --set model.n_heads=32 --set model.n_kv_heads=32 --set model.ffn_dim=11008 --set model.norm_eps=1e-5
       --set export.hf=false --set export.gguf=false --set data.train="$D/data/train" --set data.val=
       --set checkpoint.every=10 --set checkpoint.keep=2 "${FULL_SET[@]}")
DATA="$D/data/train"

if has plan; then
  for cfg in 7b-128k 7b-128k-full; do
    extra=(); [ $cfg = 7b-128k-full ] && extra=(--set layout.full_layers=all)
    "$B/lgtrain" --config configs/$cfg.ini "${SHAPE[@]}" "${extra[@]}" --set data.train=synthetic --plan --world "$N" > "$D/plan-$cfg.txt"
    grep -E "total|fits|DOES NOT" "$D/plan-$cfg.txt"
  done
fi
if has data; then
  t0=$(date +%s)
  "$B/lgdata" tokenize -q -m launch/quickstart_data/tokenizer.model -o "$D/corpus.lgt" launch/quickstart_data/corpus.jsonl
  "$B/lgdata" pack -q --force -o "$D/data" --seq-len 131072 --val-frac 0 --seed 1 $(for i in $(seq 64); do echo "$D/corpus.lgt"; done)
  "$B/lgdata" verify -q "$D"/data/train/*.h5 && echo "data: $(ls "$D"/data/train | wc -l) shard(s) in $(( $(date +%s) - t0 )) s"
fi
steps_line() { grep -E "step +[0-9]+/" "$1" | tail -n +2 | sed -E 's/.*\| ([0-9]+) tok\/s.*/\1/' | sort -n | awk '{a[NR]=$1} END {print (NR ? a[int((NR+1)/2)] : 0)}'; }
if has scale; then
  for n in 1 2 4 8; do
    [ "$n" -le "$N" ] || continue
    log="$D/scale-$n.log"
    "${MPI[@]}" -np "$n" "$B/lgtrain" --config configs/bench-7b-8layer.ini --set run.steps=3 \
      --set data.tokens_per_step=$((131072 * n)) --set memory.zero_stage=2 --set memory.offload_activations=true \
      --set data.train="$DATA" --set run.out_dir="$D/scale-$n" > "$log" 2>&1 || echo "scale $n: FAILED (see $log)"
    echo "scale n=$n: median tok/s over steps 2-3: $(steps_line "$log"); $(grep -o 'GPU memory in use.*' "$log")"
  done
fi
if has main; then
  "${MPI[@]}" -np "$N" "$B/lgtrain" --config configs/7b-128k.ini "${SHAPE[@]}" --set run.steps=$MAIN_STEPS \
    --set data.tokens_per_step=$((131072 * N)) --set run.out_dir="$D/main" > "$D/main.log" 2>&1 || echo "main: FAILED"
  grep -E "GPU memory|step +[0-9]+/|NCCL" "$D/main.log" | tail -12
fi
if has full; then
  "${MPI[@]}" -np "$N" "$B/lgtrain" --config configs/7b-128k-full.ini "${SHAPE[@]}" --set layout.full_layers=all --set run.steps=5 \
    --set data.tokens_per_step=$((131072 * N)) --set run.out_dir="$D/full" > "$D/full.log" 2>&1 || echo "full: FAILED"
  echo "hybrid median tok/s $(steps_line "$D/main.log"), all-full $(steps_line "$D/full.log")"
fi
if has kill; then
  # deterministic attention (native kernels) so that the resumed losses can be compared bit for bit
  K="$D/kill"; rm -rf "$K" "$K-ref" "$K-half"
  args() { echo --config configs/7b-128k.ini "${SHAPE[@]}" --set run.steps=8 --set run.deterministic=true \
      --set data.tokens_per_step=$((131072 * N)) --set run.out_dir="$1"; }
  LGTRAIN="$B/lgtrain" launch/mpirun.sh -n "$N" $(args "$K-ref") > "$K-ref.log" 2>&1; echo "kill: reference run exit $?"
  LGTRAIN="$B/lgtrain" launch/mpirun.sh -n "$N" $(args "$K") > "$K.1.log" 2>&1 &
  pid=$!
  while ! grep -qE "step +4/" "$K.1.log" 2>/dev/null; do sleep 2; kill -0 $pid 2>/dev/null || break; done
  kill -TERM $pid; wait $pid; echo "kill: first run exit $? ($(grep -o 'stopped after step [0-9]*' "$K.1.log"))"
  cp -r "$K" "$K-half"
  LGTRAIN="$B/lgtrain" launch/mpirun.sh -n "$N" $(args "$K") > "$K.2.log" 2>&1; echo "kill: resumed on $N GPUs exit $?"
  LGTRAIN="$B/lgtrain" launch/mpirun.sh -n $((N / 2)) $(args "$K-half") > "$K.3.log" 2>&1
  echo "kill: resumed on $((N / 2)) GPUs exit $?"
  python3 - "$D" <<'PY'
import json, sys
d = sys.argv[1]
def L(p): return {r["step"]: r["loss"] for r in map(json.loads, open(p + "/train_log.jsonl")) if "loss" in r}
ref, a, b = L(d + "/kill-ref"), L(d + "/kill"), L(d + "/kill-half")
ea = max(abs(a[s] - ref[s]) for s in a); eb = max(abs(b[s] - ref[s]) / ref[s] for s in b)
print(f"kill+resume on the same GPUs vs uninterrupted: max |loss diff| {ea:.2e} over steps {min(a)}..{max(a)}")
print(f"kill+resume on half the GPUs vs uninterrupted: max rel loss diff {eb:.2e}")
PY
fi
