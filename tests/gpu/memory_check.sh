#!/usr/bin/env bash
# memory_check.sh: what lgtrain --plan predicts vs what a 128K run uses, on the device (not a ctest).
# The 7B-wide 8-layer shape (configs/bench-7b-8layer.ini) for 2 steps on every GPU of the machine
# (ZeRO-2, activation offload on), nvidia-smi sampled every 0.2 s for each GPU's peak memory.used.
#   tests/gpu/memory_check.sh [build dir] [extra --set args...]     (logs under $OUT/mem or /tmp/mem)
set -uo pipefail
B="${1:-build-dev}"; shift || true
D="${OUT:-/tmp}/mem"
mkdir -p "$D"
n=$(nvidia-smi -L | grep -c '^GPU')
ARGS=(--config configs/bench-7b-8layer.ini --set run.steps=2 --set data.tokens_per_step=$((131072 * n))
      --set memory.zero_stage=2 --set memory.offload_activations=true --set run.out_dir="$D/run" "$@")
"$B/lgtrain" "${ARGS[@]}" --plan --world "$n" | tee "$D/plan.txt"
MPI=()
if [ "$n" -gt 1 ]; then MPI=(mpirun -np "$n" --bind-to none); [ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root); fi
( while :; do nvidia-smi --query-gpu=index,memory.used --format=csv,noheader,nounits >> "$D/smi.csv"; sleep 0.2; done ) &
poll=$!
t0=$(date +%s)
"${MPI[@]}" "$B/lgtrain" "${ARGS[@]}" > "$D/train.log" 2>&1; rc=$?
kill $poll 2>/dev/null
echo "lgtrain exit $rc after $(( $(date +%s) - t0 )) s"; grep -E "step |memory|NCCL|error|warning" "$D/train.log" | tail -12
python3 - "$D" <<'PY'
import re, sys, collections
d = sys.argv[1]
peak = collections.defaultdict(int)
for line in open(f"{d}/smi.csv"):
    i, m = [x.strip() for x in line.split(",")]
    peak[int(i)] = max(peak[int(i)], int(m))
plan = open(f"{d}/plan.txt").read()
tot = re.search(r"  total\s+([\d.]+) GiB", plan).group(1)
for i in sorted(peak):
    print(f"GPU {i}: peak memory.used {peak[i] / 1024:.1f} GiB (nvidia-smi, incl. CUDA context) vs plan total {tot} GiB")
PY
exit $rc
