# attention_peers.py: the peers of bench_attention, timed on the same device in the same run:
# PyTorch SDPA (flash = FlashAttention-2, cuDNN) for causal attention and FlexAttention with the LongGen
# masks (FULL causal, SINK_WINDOW 64/2048, BLOCK_SPARSE 64/16/64 per KV head), bf16, B=1, D=128.
# Method as ../shared/bench/anchors.py: CUDA events, 2 warm-ups, median of 5. TFLOP/s use the same count
# as bench_attention: kept (query, key) pairs, fwd 4*D*pairs, fwd+bwd 14*D*pairs.
# Usage: [PEERS_ONLY=flex_sink_window,...] [PEERS_GQA=all] [PEERS_DYNAMIC=1] python3 bench/attention_peers.py [S ...]
#   (default 8192 32768 131072; 64 query / 8 KV heads at 32768 only, or at every S with PEERS_GQA=all)
# One JSON line per measurement.
import os, sys, json
import torch
import torch.nn.functional as F

dev = "cuda"
# one compiled flex kernel per mask and shape: past the default limit of 8, dynamo falls back to eager flex,
# which materializes the S x S scores (out of memory at 128K)
for name in ("recompile_limit", "cache_size_limit"):
    if hasattr(torch._dynamo.config, name):
        setattr(torch._dynamo.config, name, 256)
if hasattr(torch._dynamo.config, "accumulated_recompile_limit"):
    torch._dynamo.config.accumulated_recompile_limit = 4096
SINK, WINDOW, BLK, LOCAL, STRIDE = 64, 2048, 64, 16, 64


def bench(fn, warm=2, rep=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(rep):
        a = torch.cuda.Event(enable_timing=True); b = torch.cuda.Event(enable_timing=True)
        a.record(); fn(); b.record(); torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def pairs(kind, S, H, KVH):
    """Kept (query, key) pairs summed over query heads; the same numbers as lg_attn_pairs."""
    import numpy as np
    G = H // KVH
    if kind == "full":
        return H * S * (S + 1) // 2
    if kind == "sink_window":
        q = np.arange(S, dtype=np.int64)
        win = np.minimum(q + 1, WINDOW)
        lo = q - win + 1
        return H * int((win + np.clip(np.minimum(SINK, lo), 0, None)).sum())
    nb = (S + BLK - 1) // BLK
    qb = np.arange(nb, dtype=np.int64)[:, None]; kb = np.arange(nb, dtype=np.int64)[None, :]
    qlen = np.minimum(BLK, S - np.arange(nb) * BLK)
    step = max(1, STRIDE // KVH)
    tot = 0
    for h in range(KVH):
        keep = (kb < qb) & (((qb - kb) < LOCAL) | (((kb + h * step) % STRIDE) == 0))
        tot += int((keep.sum(1) * qlen * BLK).sum() + (qlen * (qlen + 1) // 2).sum())
    return G * tot


ONLY = [x for x in os.environ.get("PEERS_ONLY", "").split(",") if x]  # e.g. flex_sink_window,flex_block_sparse


def run(S, H, KVH, D=128):
    from torch.nn.attention import sdpa_kernel, SDPBackend
    from torch.nn.attention.flex_attention import flex_attention, create_block_mask
    q = torch.randn(1, H, S, D, device=dev, dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(1, KVH, S, D, device=dev, dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn_like(k, requires_grad=True)
    do = torch.randn_like(q)
    gqa = H != KVH
    G = H // KVH

    def report(name, kind, fwd, fb):
        fl = 4 * D * pairs(kind, S, H, KVH)
        print(json.dumps({"peer": name, "S": S, "H": H, "KVH": KVH, "fwd_ms": round(fwd, 2), "fwdbwd_ms": round(fb, 2),
                          "fwd_tflops": round(fl / fwd / 1e9, 1), "fwdbwd_tflops": round(3.5 * fl / fb / 1e9, 1)}),
              flush=True)

    for name, be in [("sdpa_flash", SDPBackend.FLASH_ATTENTION), ("sdpa_cudnn", SDPBackend.CUDNN_ATTENTION)]:
        if ONLY and name not in ONLY:
            continue
        try:
            def f():
                with sdpa_kernel([be]):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
            fwd = bench(f)
            def fb():
                f().backward(do)
            report(name, "full", fwd, bench(fb))
        except Exception as e:
            print(json.dumps({"peer": name, "S": S, "H": H, "KVH": KVH, "error": str(e)[:200]}), flush=True)
    # dynamic=False: a shape-specialized kernel per S. By default dynamo recompiles a second shape with symbolic
    # sizes ("automatic dynamic shapes"); sessions 4-5 timed 128K after 8K and 32K that way (PEERS_DYNAMIC=1
    # reproduces it), which the session-6 check found slower than the static compile
    flex = torch.compile(flex_attention, dynamic=None if os.environ.get("PEERS_DYNAMIC") == "1" else False)

    def causal(b, h, qi, ki):
        return qi >= ki

    def sink_window(b, h, qi, ki):
        return (qi >= ki) & ((ki < SINK) | (qi - ki < WINDOW))

    step = max(1, STRIDE // KVH)

    def strided(b, h, qi, ki):  # layout.h BLOCK_SPARSE, h the query head -> KV head h // G
        qb = qi // BLK; kb = ki // BLK
        return (qi >= ki) & (((qb - kb) < LOCAL) | (((kb + (h // G) * step) % STRIDE) == 0))

    for name, kind, mf in [("flex_causal", "full", causal), ("flex_sink_window", "sink_window", sink_window),
                           ("flex_block_sparse", "block_sparse", strided)]:
        if ONLY and name not in ONLY:
            continue
        try:
            bm = create_block_mask(mf, 1, H if kind == "block_sparse" else None, S, S, device=dev, BLOCK_SIZE=128,
                                   _compile=True)
            fwd = bench(lambda: flex(q, k, v, block_mask=bm, enable_gqa=gqa))
            def fb():
                flex(q, k, v, block_mask=bm, enable_gqa=gqa).backward(do)
            report(name, kind, fwd, bench(fb))
        except Exception as e:
            print(json.dumps({"peer": name, "S": S, "H": H, "KVH": KVH, "error": str(e)[:300]}), flush=True)
    del q, k, v, do
    torch.cuda.empty_cache()


if __name__ == "__main__":
    sizes = [int(s) for s in sys.argv[1:]] or [8192, 32768, 131072]
    try:  # FlexAttention's kernels are Triton's: its version moved the flex numbers by 16-29% (session 6)
        import triton
        tv = triton.__version__
    except Exception:
        tv = None
    print(json.dumps({"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "triton": tv,
                      "cudnn": torch.backends.cudnn.version()}), flush=True)
    for S in sizes:
        run(S, 32, 32)
        if S == 32768 or os.environ.get("PEERS_GQA") == "all":
            run(S, 64, 8)
