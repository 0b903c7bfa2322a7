#!/usr/bin/env bash
# run_step.sh: the issue-5 step benchmark on a GPU machine, with the PyTorch peer in the same run.
#   bench/run_step.sh [build dir]      (results as JSON lines in $OUT/step.jsonl, or ./step.jsonl)
# The peer (../shared/bench/torch_step.py + anchors.py) must be copied to .dev/peers/ (git-ignored) first.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${1:-$ROOT/build-dev}"
OUTF="${OUT:-.}/step.jsonl"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUTF.log"
for layout in 2-4 all; do
  "$BUILD/bench_step" "$ROOT/configs/bench-7b-8layer.ini" --reps 3 --set layout.full_layers=$layout | tee -a "$OUTF"
done
if [ -f "$ROOT/.dev/peers/torch_step.py" ]; then
  (cd "$ROOT/.dev/peers" && OUT="${OUT:-.}" python3 torch_step.py | tail -1 | tee -a "$OUTF")
fi
