#!/usr/bin/env bash
# Pack the embedded quickstart corpus into shards with lgdata:
#   OUT/corpus.lgt                       token stream (tokenizer.model beside this script)
#   OUT/s<LEN>/train/*.h5, OUT/s<LEN>/val/*.h5   for each sequence length (default: 256 for pre-training,
#                                        2048 for the long-context fine-tune)
# usage: launch/quickstart_data/pack.sh LGDATA OUT [SEQ_LEN...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lgdata="${1:?usage: pack.sh LGDATA OUT [SEQ_LEN...]}"
out="${2:?usage: pack.sh LGDATA OUT [SEQ_LEN...]}"
shift 2
lens=("$@")
[ ${#lens[@]} -gt 0 ] || lens=(256 2048)
mkdir -p "$out"
"$lgdata" tokenize -q -m "$here/tokenizer.model" -o "$out/corpus.lgt" "$here/corpus.jsonl"
for n in "${lens[@]}"; do
  "$lgdata" pack -q --force -o "$out/s$n" --seq-len "$n" --val-frac 0.05 --seed 1 "$out/corpus.lgt"
done
for n in "${lens[@]}"; do
  "$lgdata" verify -q "$out/s$n"/train/*.h5 "$out/s$n"/val/*.h5
done
