#!/usr/bin/env python3
"""gemm_ceiling: the bf16 tensor-core rate this card sustains in cuBLAS under its power cap.

Attention at 128K is arithmetic-bound, so its floor is its executed FLOPs over the rate the card can sustain.
This runs large bf16 GEMMs back to back (through PyTorch, i.e. cuBLAS) for long enough that the power cap
engages, as it does in a training step, and reports TF/s per window with the SM clock and power sampled by
nvidia-smi meanwhile.
  python3 bench/gemm_ceiling.py [seconds=20] [n=8192]
"""
import statistics
import subprocess
import sys
import time

import torch


def main():
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 8192
    dev = torch.device("cuda")
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    c = torch.empty(n, n, device=dev, dtype=torch.bfloat16)
    flop = 2.0 * n * n * n
    for _ in range(10):
        torch.matmul(a, b, out=c)
    torch.cuda.synchronize()
    smi = subprocess.Popen(["nvidia-smi", "--query-gpu=clocks.sm,power.draw,power.limit",
                            "--format=csv,noheader,nounits", "-lms", "250"],
                           stdout=subprocess.PIPE, text=True)
    per = 50  # GEMMs per timed window (~70 ms at ~600 TF/s for n=8192)
    rates = []
    t_end = time.time() + secs
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    while time.time() < t_end:
        e0.record()
        for _ in range(per):
            torch.matmul(a, b, out=c)
        e1.record()
        e1.synchronize()
        rates.append(per * flop / (e0.elapsed_time(e1) * 1e-3) / 1e12)
    smi.terminate()
    samples = [l.split(",") for l in smi.communicate()[0].strip().splitlines() if l.count(",") == 2]
    clocks = [float(s[0]) for s in samples]
    power = [float(s[1]) for s in samples]
    name = torch.cuda.get_device_name()
    print(f"card: {name}; torch {torch.__version__}; bf16 GEMM {n}x{n}x{n}, {len(rates)} windows of {per} over "
          f"{secs:.0f} s")
    print(f"TF/s: first window {rates[0]:.1f}, median {statistics.median(rates):.1f}, "
          f"last quarter median {statistics.median(rates[3 * len(rates) // 4:]):.1f}, max {max(rates):.1f}")
    if clocks:
        print(f"SM clock MHz: median {statistics.median(clocks):.0f} (min {min(clocks):.0f}, max {max(clocks):.0f}); "
              f"power W: median {statistics.median(power):.0f} (limit {samples[0][2].strip()})")
        med_clk = statistics.median(clocks) * 1e6
        sms = torch.cuda.get_device_properties(0).multi_processor_count
        peak = sms * 4096 * med_clk / 1e12  # dense bf16: 4096 FLOP per clock per SM (sm_90)
        print(f"dense bf16 peak at the median clock: {peak:.0f} TF/s ({sms} SMs x 4096 FLOP/clk); "
              f"cuBLAS reaches {100 * statistics.median(rates) / peak:.0f}% of it")


if __name__ == "__main__":
    main()
