#!/usr/bin/env bash
# quickstart.sh: the whole lgtrain job in miniature, on the CPU, in a few minutes:
#   1. pack the embedded corpus (launch/quickstart_data: long documents whose end asks for a word and a number
#      stated at their start) into HDF5 shards with lgdata, at 256 and 2048 tokens per sequence;
#   2. pretrain a ~1M-parameter Llama-2-architecture model at a 256-token context (configs/tiny-pretrain.ini);
#   3. measure it at 2048 tokens (8x its context), as it is and converted to the LongGen hybrid layout;
#   4. fine-tune the hybrid model (middle layers full attention, the others sink 16 + window 256, RoPE base
#      10K -> 500K) at 2048 tokens on 2 MPI ranks (configs/tiny-longgen.ini), stopping at step 50 and
#      resuming from that checkpoint with the same command;
#   5. export it as a HF directory (transformers loads it) and a GGUF file (llama.cpp), and summarize.
# Everything lands in runs/quickstart (LG_QUICKSTART_DIR), which is replaced on each run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${LG_QUICKSTART_DIR:-runs/quickstart}"
BIN="${LG_BUILD_DIR:-$ROOT/build}"
bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bold "0/5 setup: dependencies and build"
"$ROOT/launch/setup.sh" --no-python
if [ -e "$OUT" ]; then
  [ -f "$OUT/.lgtrain-quickstart" ] || { echo "quickstart: $OUT exists and was not made by the quickstart; move it away or set LG_QUICKSTART_DIR" >&2; exit 1; }
  rm -rf "$OUT"
fi
mkdir -p "$OUT" && touch "$OUT/.lgtrain-quickstart"
T0=$(date +%s)
NCORES=$(nproc)

bold "1/5 data: tokenize the embedded corpus and pack shards (lgdata)"
launch/quickstart_data/pack.sh "$BIN/lgdata" "$OUT/data" 256 2048
"$BIN/lgdata" info "$OUT/data/s2048/train/"*.h5 | sed 's/^/  /'

TOK="export.tokenizer_dir=launch/quickstart_data"
bold "2/5 pretrain a tiny Llama at 256 tokens of context (full attention, RoPE base 10000)"
OMP_NUM_THREADS=$NCORES "$BIN/lgtrain" --config configs/tiny-pretrain.ini --set run.log_every=25 \
  --set run.out_dir="$OUT/pretrain" --set data.train="$OUT/data/s256/train" --set data.val="$OUT/data/s256/val" \
  --set export.dir="$OUT/pretrain/export" --set "$TOK"

bold "3/5 the pretrained model at 2048 tokens (8x its context): as it is, and converted to the hybrid layout"
VAL2K=(--set run.init_from="$OUT/pretrain/export" --set data.train="$OUT/data/s2048/train" --set data.val="$OUT/data/s2048/val" --set run.eval_seqs=0)
"$BIN/lgtrain" --config configs/tiny-longgen.ini "${VAL2K[@]}" --eval --set layout.full_layers=all --set rope.theta=10000 \
  | tee "$OUT/eval-pretrained-full.txt"
"$BIN/lgtrain" --config configs/tiny-longgen.ini "${VAL2K[@]}" --eval | tee "$OUT/eval-converted-hybrid.txt"

bold "4/5 LongGen fine-tune at 2048 tokens: hybrid layout + extended RoPE, 2 MPI ranks (CPU), checkpointed"
LG_RUN=("$BIN/lgtrain" --config configs/tiny-longgen.ini "${VAL2K[@]}"
  --set run.out_dir="$OUT/longgen" --set export.dir="$OUT/longgen/export" --set "$TOK")
finetune() {
  if command -v mpirun >/dev/null; then
    OMP_NUM_THREADS=$(( NCORES / 2 > 0 ? NCORES / 2 : 1 )) LGTRAIN="$BIN/lgtrain" MPIRUN_ARGS="--oversubscribe" \
      launch/mpirun.sh -n 2 "${LG_RUN[@]:1}" "$@"
  else
    echo "(mpirun not found: one rank)"
    OMP_NUM_THREADS=$NCORES "${LG_RUN[@]}" "$@"
  fi
}
# The first half stops at step 50 (as a job stopped by its time limit would, after saving a checkpoint);
# the same command then resumes from that checkpoint and finishes. The LR is constant, so the losses are
# those of one uninterrupted run (tests/py/test_ckpt_resume.py checks that bit for bit).
finetune --set run.steps=50 --set export.hf=false --set export.gguf=false
printf '\n  -- stopped after step 50; running the same command again resumes from its checkpoint --\n\n'
finetune 2>&1 | tee "$OUT/longgen.log"
"$BIN/lgtrain" --config "$OUT/longgen/config.ini" --plan | grep -E "KV cache" | tee "$OUT/kv.txt"

bold "5/5 summary"
val() { grep -o '"val_loss": [0-9.e+-]*' "$1" | tail -1 | awk '{printf "%.4f", $2}'; }
first_val() { grep -o '"val_loss": [0-9.e+-]*' "$1" | head -1 | awk '{printf "%.4f", $2}'; }
ev() { grep -o 'loss [0-9.]*' "$1" | tail -1 | awk '{print $2}'; }
printf '  validation loss (nats/token) on held-out 2048-token sequences:\n'
printf '    pretrained model, full attention, RoPE 10K (trained at 256):    %s\n' "$(ev "$OUT/eval-pretrained-full.txt")"
printf '    converted: hybrid layout + RoPE 500K, before fine-tuning:       %s\n' "$(ev "$OUT/eval-converted-hybrid.txt")"
printf '    after the LongGen fine-tune (%s steps):                         %s\n' \
  "$(grep -c '"loss"' "$OUT/longgen/train_log.jsonl")" "$(val "$OUT/longgen/train_log.jsonl")"
printf '  fine-tune resumed from: %s\n' "$(grep -o 'resuming from [^:]*' "$OUT/longgen.log" 2>/dev/null | head -1 | cut -c15-)"
printf '  pretraining val loss at 256 tokens: %s -> %s\n' "$(first_val "$OUT/pretrain/train_log.jsonl")" "$(val "$OUT/pretrain/train_log.jsonl")"
printf '  %s\n' "$(cat "$OUT/kv.txt")"
printf '  files:\n'
printf '    %-48s HF directory: transformers.LlamaForCausalLM.from_pretrained(...)\n' "$OUT/longgen/export/"
printf '    %-48s GGUF for llama.cpp\n' "$OUT/longgen/export.gguf"
printf '    %-48s checkpoints (run the same command to resume; lgexport exports any of them)\n' "$OUT/longgen/checkpoints/"
printf '    %-48s per-step log (JSONL), resolved config in config.ini\n' "$OUT/longgen/train_log.jsonl"
printf '  took %ss\n' "$(( $(date +%s) - T0 ))"
