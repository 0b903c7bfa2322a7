#!/usr/bin/env bash
# device_session.sh: the GPU checks a session runs first, in one device call (not a ctest): every GPU test
# (with PyTorch's bundled cuDNN when present: the system 9.14 works too), compute-sanitizer memcheck on the
# tiny model test and on a 3-step lgtrain run with activation offload and cuDNN attention, the multi-GPU
# equalities (tests/gpu/dist_cuda_check.sh) and the 128K memory check (tests/gpu/memory_check.sh).
#   tests/gpu/device_session.sh [build dir]          (built with -DLG_CUDA=ON; logs under $OUT/session)
set -uo pipefail
B="$(cd "${1:-build-dev}" && pwd)"
D="${OUT:-/tmp}/session"
mkdir -p "$D"
export LG_SRC="$PWD" LG_BUILD="$B"
L=$(python3 -c 'import nvidia.cudnn as n; print(n.__path__[0] + "/lib")' 2>/dev/null || true)
[ -n "$L" ] && export LD_LIBRARY_PATH="$L${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader
echo "cuDNN: ${L:-system}"
fail=0
for t in "$B"/gpu_test_*; do
  n=$(basename "$t")
  (cd "$B" && timeout 300 "$t" > "$D/$n.log" 2>&1); rc=$?
  echo "$n: rc=$rc $(grep -E 'PASSED|cases failed|checks failed' "$D/$n.log" | tail -1)"
  [ $rc = 0 ] || fail=1
done
(cd "$B" && timeout 300 compute-sanitizer --tool memcheck --leak-check full ./gpu_test_model_cuda > "$D/memcheck_model.log" 2>&1)
echo "memcheck gpu_test_model_cuda: $(grep -E 'ERROR SUMMARY' "$D/memcheck_model.log" | tail -1)"
grep -q "ERROR SUMMARY: 0 errors" "$D/memcheck_model.log" || fail=1
timeout 300 compute-sanitizer --tool memcheck --leak-check full "$B/lgtrain" --config configs/tiny-test.ini --set run.device=cuda \
  --set model.dim=128 --set model.n_heads=2 --set model.n_kv_heads=1 --set model.ffn_dim=256 --set run.steps=3 \
  --set memory.offload_activations=true --set export.hf=0 --set run.out_dir="$D/memcheck_run" > "$D/memcheck_run.log" 2>&1
echo "memcheck lgtrain (offload, cuDNN auto): $(grep -E 'ERROR SUMMARY' "$D/memcheck_run.log" | tail -1)"
grep -q "ERROR SUMMARY: 0 errors" "$D/memcheck_run.log" || fail=1
OUT="$D" tests/gpu/dist_cuda_check.sh "$B" | tail -16 || fail=1
OUT="$D" tests/gpu/memory_check.sh "$B" | tail -6 || fail=1
exit $fail
