#!/usr/bin/env bash
# dist_cuda_check.sh: lgtrain end to end on GPUs (run on the device, not by ctest): the same 20 steps on
# cpu (1 rank), cuda (1 rank, with and without activation offload), cuda on 2 ranks through NCCL (ZeRO-1:
# sharded fp32 master; ZeRO-2: sharded master and gradient buckets; with offload; resume) when 2 GPUs are
# present. Deterministic attention (native kernels) so that equalities can be exact. Prints the loss
# comparison; exit 1 when a run fails, the losses leave bf16 tolerance or an exact equality breaks.
#   tests/gpu/dist_cuda_check.sh [build dir]      (logs under $OUT/dist or /tmp/dist)
set -uo pipefail
B="${1:-build-dev}"
D="${OUT:-/tmp}/dist"
mkdir -p "$D"
# head_dim 64 (the CUDA attention kernels take 64 or 128); sink+window, full and GQA as tiny-test
COMMON=(--config configs/tiny-test.ini --set model.dim=128 --set model.n_heads=2 --set model.n_kv_heads=1
        --set model.ffn_dim=256 --set run.steps=20 --set export.hf=0 --set data.micro_batch=1
        --set data.tokens_per_step=256 --set checkpoint.every=10 --set run.deterministic=true)
MPI=(mpirun -np 2 --bind-to none)
[ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
ngpu=$(nvidia-smi -L | grep -c '^GPU')
fail=0
run() { local name=$1; shift; echo "== $name"; "$@" > "$D/$name.log" 2>&1 || { echo "FAILED: $name"; tail -20 "$D/$name.log"; fail=1; }; }
run cpu1 "$B/lgtrain" "${COMMON[@]}" --set run.device=cpu --set run.out_dir="$D/cpu1"
run cuda1 "$B/lgtrain" "${COMMON[@]}" --set run.device=cuda --set run.out_dir="$D/cuda1"
run cuda1_off "$B/lgtrain" "${COMMON[@]}" --set run.device=cuda --set memory.offload_activations=true --set run.out_dir="$D/cuda1off"
if [ "$ngpu" -ge 2 ]; then
  run cuda2_zero1 "${MPI[@]}" "$B/lgtrain" "${COMMON[@]}" --set run.device=cuda --set run.out_dir="$D/cuda2z1"
  run cuda2_zero2 "${MPI[@]}" "$B/lgtrain" "${COMMON[@]}" --set run.device=cuda --set memory.zero_stage=2 --set run.out_dir="$D/cuda2z2"
  run cuda2_zero2_off "${MPI[@]}" "$B/lgtrain" "${COMMON[@]}" --set run.device=cuda --set memory.zero_stage=2 --set memory.offload_activations=true --set run.out_dir="$D/cuda2z2off"
  # ZeRO-1 without overlapping the all-reduce with the backward
  run cuda2_zero1_noov env LG_NO_OVERLAP=1 "${MPI[@]}" -x LG_NO_OVERLAP "$B/lgtrain" "${COMMON[@]}" --set run.device=cuda --set run.out_dir="$D/cuda2z1n"
  # resume on 2 GPUs from the step-10 checkpoints must give the uninterrupted losses bit for bit
  for z in z1 z2; do
    rm -rf "$D/cuda2${z}r" && mkdir -p "$D/cuda2${z}r/checkpoints" && cp -r "$D/cuda2${z}/checkpoints/step-000010" "$D/cuda2${z}r/checkpoints/" 2>/dev/null
  done
  run cuda2_resume "${MPI[@]}" "$B/lgtrain" "${COMMON[@]}" --set run.device=cuda --set run.out_dir="$D/cuda2z1r"
  run cuda2_resume_z2 "${MPI[@]}" "$B/lgtrain" "${COMMON[@]}" --set run.device=cuda --set memory.zero_stage=2 --set run.out_dir="$D/cuda2z2r"
fi
python3 - "$D" <<'PY' || fail=1
import json, os, sys
d = sys.argv[1]
def losses(name):
    p = os.path.join(d, name, "train_log.jsonl")
    if not os.path.exists(p): return None
    return {r["step"]: r["loss"] for r in map(json.loads, open(p)) if "loss" in r}
ref = losses("cpu1"); bad = 0
for name, tol in (("cuda1", 2e-2), ("cuda1off", 2e-2), ("cuda2z1", 2e-2), ("cuda2z2", 2e-2), ("cuda2z2off", 2e-2),
                  ("cuda2z1r", 2e-2), ("cuda2z2r", 2e-2)):
    l = losses(name)
    if l is None: print(f"{name:10s} (not run)"); continue
    e = max(abs(l[s] - ref[s]) / ref[s] for s in l)
    ok = e < tol and (not name.endswith("r") or min(l) == 11)
    bad |= not ok
    print(f"{'ok  ' if ok else 'FAIL'} {name:10s} steps {min(l)}..{max(l)}: max rel loss diff vs cpu {e:.2e} (< {tol}); "
          f"loss {l[min(l)]:.4f} -> {l[max(l)]:.4f}")
def same(a, b, what, strict=True):
    global bad
    la, lb = losses(a), losses(b)
    if not la or not lb: return
    e = max(abs(la[s] - lb[s]) for s in lb)
    print(f"{'ok  ' if e == 0 else ('FAIL' if strict else 'note')} {what}: max |loss diff| {e:.2e}")
    bad |= strict and e != 0
same("cuda1", "cuda1off", "1 GPU: activation offload vs none (exact)")
same("cuda2z2", "cuda2z2off", "2 GPUs ZeRO-2: activation offload vs none (exact)")
same("cuda2z1", "cuda2z1r", "2 GPUs ZeRO-1 (sharded master): resumed at step 10 vs uninterrupted (exact)")
same("cuda2z2", "cuda2z2r", "2 GPUs ZeRO-2 (sharded master + gradients): resumed at step 10 vs uninterrupted (exact)")
same("cuda2z1", "cuda2z1n", "ZeRO-1 all-reduce per unit (overlapped) vs one after the backward", strict=False)
same("cuda2z1", "cuda2z2", "ZeRO-1 vs ZeRO-2 (per-micro-batch bucket reduction)", strict=False)
sys.exit(1 if bad else 0)
PY
exit $fail
