#!/bin/bash
# attention_cudnn.sh BUILD_DIR: the cuDNN attention checks and timings of bench/results/attention-cudnn.md in one
# device call: gpu_test_attention_cudnn on the system cuDNN and on PyTorch's bundled one, then bench_attention
# (native and cuDNN, FULL and SINK_WINDOW, 32/32 and 64/8 heads) with the library whose test passed (bundled
# first), then the peers (PyTorch SDPA cuDNN, FlexAttention sink_window) in the same call. Logs under $OUT.
#   cmake -S . -B build-dev-cudnn -DLG_CUDA=ON && cmake --build build-dev-cudnn -j16 --target gpu_test_attention_cudnn bench_attention
#   bash bench/attention_cudnn.sh build-dev-cudnn          (SIZES="8192 32768" to shorten)
set -u
B=${1:-build}
OUT=${OUT:-/tmp/attention_cudnn}
SIZES=${SIZES:-8192 32768 131072}
mkdir -p "$OUT"
L=$(python3 -c 'import nvidia.cudnn as n; print(n.__path__[0] + "/lib")' 2>/dev/null)
echo "system cuDNN: $(ldconfig -p | grep 'libcudnn.so.9 ' | head -1)"
echo "bundled cuDNN dir: ${L:-none}"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,memory.used --format=csv,noheader
timeout 240 "$B/gpu_test_attention_cudnn" > "$OUT/test_system.log" 2>&1
rs=$?
echo "=== test, system cuDNN: rc=$rs"; grep -v '^  ok' "$OUT/test_system.log" | tail -25
rb=1
if [ -n "$L" ]; then
  LD_LIBRARY_PATH=$L timeout 240 "$B/gpu_test_attention_cudnn" > "$OUT/test_bundled.log" 2>&1
  rb=$?
  echo "=== test, bundled cuDNN: rc=$rb"; grep -v '^  ok' "$OUT/test_bundled.log" | tail -25
fi
if [ $rb = 0 ]; then LIB=$L; elif [ $rs = 0 ]; then LIB=; else echo "no cuDNN passed its test: not timing"; exit 1; fi
echo "=== bench (LD_LIBRARY_PATH=${LIB:-system})"
LD_LIBRARY_PATH=$LIB timeout 360 "$B/bench_attention" full sw gqa=all maxnativefull=32768 $SIZES 2>&1 | tee "$OUT/bench.log"
echo "=== peers, same call"
PYTHONUNBUFFERED=1 PEERS_ONLY=sdpa_cudnn,flex_sink_window PEERS_GQA=all timeout 360 python3 bench/attention_peers.py $SIZES \
  2>&1 | grep -v -i warn | tee "$OUT/peers.log"
