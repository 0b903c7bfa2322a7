#!/usr/bin/env bash
# profile_attention.sh: Nsight Compute on the native attention kernels (one launch each, after the warm-up),
# at 128K block_sparse by default, with the per-opcode / per-stall summary of bench/ncu_sass_summary.py.
#   bench/profile_attention.sh <build dir> [bench_attention args...]     (reports under $OUT/ncu, or /tmp/ncu)
# KERNELS="attn_bwd_dq_wg_kernel ..." limits the kernels profiled; NCU_DIR overrides the report folder.
# LG_ATTN_PIPE selects the variant as for bench_attention. --clock-control none: the clocks stay as the machine
# runs them (METHOD.md); the SM clock ncu reads (1.79-1.81 GHz in session 4) is in each details file.
# Put together after session 4 from the commands that ran there (.dev scripts); this file itself has not run yet.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
B="$(cd "${1:?usage: bench/profile_attention.sh <build dir> [bench args]}" && pwd)"; shift
ARGS=("$@"); [ ${#ARGS[@]} -eq 0 ] && ARGS=(native bs gqa=none 131072)
D="${NCU_DIR:-${OUT:-/tmp}/ncu}"; mkdir -p "$D"
KERNELS=${KERNELS:-attn_fwd_tma_kernel attn_fwd_wg_kernel attn_bwd_dkdv_wg_kernel attn_bwd_dq_wg_kernel}
for k in $KERNELS; do
  # --launch-skip 2: past the small correctness check and the first (untimed) call of the size
  timeout 300 ncu --clock-control none --set full -k "regex:$k" --launch-skip 2 --launch-count 1 -o "$D/$k" -f \
    "$B/bench_attention" "${ARGS[@]}" > "$D/$k.run.log" 2>&1
  [ -f "$D/$k.ncu-rep" ] || { echo "$k: not launched with these flags"; continue; }
  ncu -i "$D/$k.ncu-rep" --page details > "$D/$k.details.txt" 2>&1
  ncu -i "$D/$k.ncu-rep" --page source --csv --print-source sass > "$D/$k.sass.csv" 2>&1
  echo "== $k: $(grep -E ' Duration ' "$D/$k.details.txt" | awk '{print $NF}') ms"
  grep -E "Issue Slots Busy|Registers Per Thread|highest-utilized|Throughput|Pipe|Shared Memory|Achieved Occupancy|Block Limit" \
    "$D/$k.details.txt" | head -40
  python3 "$ROOT/bench/ncu_sass_summary.py" "$D/$k.sass.csv" 12
done
