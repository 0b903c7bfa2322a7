"""lgtrain --plan: memory per rank and FLOPs per step.

Checks the arithmetic against an independent count written here (Llama-2-7B shape: 6.738e9 parameters;
matmul FLOPs 6 x matmul params x tokens; causal attention 12 x head_dim x heads x T(T+1)/2 per full layer),
the fit/refuse decision and its advice, and that the activation figure equals what lgtrain allocates."""
import json, os, re, sys, tempfile
sys.path.insert(0, os.path.dirname(__file__))
from lgtest import Checks, SRC, run, tool

C = Checks("test_plan")
GIB = 2 ** 30


def gib(text, label):
    m = re.search(re.escape(label) + r"\s+([\d.]+) (GiB|MiB|KiB)", text)
    return float(m.group(1)) * {"GiB": 1, "MiB": 1 / 1024, "KiB": 1 / 2 ** 20}[m.group(2)]


with tempfile.TemporaryDirectory() as d:
    hf = os.path.join(d, "llama7b")
    os.makedirs(hf)
    json.dump({"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
               "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000, "rms_norm_eps": 1e-5,
               "max_position_embeddings": 4096, "bos_token_id": 1, "eos_token_id": 2}, open(os.path.join(hf, "config.json"), "w"))
    cfg = os.path.join(SRC, "configs", "7b-128k.ini")
    r = run([tool("lgtrain"), "--config", cfg, "--set", f"run.init_from={hf}", "--plan", "--world", "8"], check=False)
    out = r.stdout
    print(out)
    # ZeRO-2 on 8 GPUs: the fp32 master, gradients and AdamW moments are sharded, the layer inputs offloaded
    P, L, T, Cd, F, V, H, D = 6738415616, 32, 131072, 4096, 11008, 32000, 32, 128
    shard = P - 7 * (P // 8 - (P // 8) % 64)  # the last rank's shard (lg_dist_shard: the others are 64-aligned)
    layer = 4 * Cd * Cd + 3 * Cd * F + 2 * Cd  # q, k, v, o, gate, up, down + 2 norms
    C.check(r.returncode == 0 and "fits:" in out and gib(out, "total") * GIB < 75e9,
            f"7B hybrid at 128K on 8 ranks fits under 75 GB: {gib(out, 'total'):.1f} GiB per rank")
    C.check(abs(gib(out, "master weights (fp32)") - 4 * shard / GIB) < 0.06,
            f"fp32 master: this rank's shard, 4 x {shard} bytes")
    C.check(abs(gib(out, "gradients (fp32)") - 4 * (shard + 2 * layer + V * Cd) / GIB) < 0.06,
            "fp32 gradients: shard + 2 buckets of one layer + the embedding's bucket")
    C.check(abs(gib(out, "kept layer inputs (recompute)") - 2 * T * Cd * 2 / GIB) < 0.06 and
            re.search(r"\+ 32\.0 GiB page-locked layer inputs", out) is not None,
            "offloaded layer inputs: 2 device slots of T x C bf16, L x T x C bf16 = 32 GiB in host memory")
    r2 = run([tool("lgtrain"), "--config", cfg, "--set", f"run.init_from={hf}", "--set", "memory.offload_activations=false",
              "--plan", "--world", "8"], check=False)
    C.check(abs(gib(r2.stdout, "kept layer inputs (recompute)") - (L + 1) * T * Cd * 2 / GIB) < 0.06 and
            "0 of 12 full layers" in r2.stdout and gib(r2.stdout, "total") * GIB > 75e9,
            "without offload the (L+1) x T x C kept inputs (33 GiB) leave no room for kept attention (auto keeps 0 "
            f"of 12) and the total {gib(r2.stdout, 'total'):.1f} GiB misses 75 GB: the shipped config offloads")
    r3 = run([tool("lgtrain"), "--config", cfg, "--set", f"run.init_from={hf}", "--set", "memory.offload_activations=false",
              "--set", "memory.device_gib=70", "--plan", "--world", "8"], check=False)
    C.check(r3.returncode == 1 and "DOES NOT FIT" in r3.stdout and "memory.offload_activations = true" in r3.stdout,
            "the same on 70 GiB cards is refused, and the advice says offload")
    C.check("6.738B parameters" in out, "parameter count 6.738B (Llama-2-7B)")
    # KV cache: 12 full layers keep 131072 tokens, 20 sink+window layers keep 64+2048 (the paper: -62%)
    kv_ratio = (12 * 131072 + 20 * 2112) / (32 * 131072)
    m = re.search(r"\(([\d.]+)% less\)", out)
    C.check(m and abs(float(m.group(1)) - 100 * (1 - kv_ratio)) < 0.05, f"KV cache saving {m and m.group(1)}% = {100 * (1 - kv_ratio):.1f}%")
    C.check(abs(gib(out, "weights") - 2 * P / GIB) < 0.06, "bf16 weights = 2 bytes x P")
    C.check(abs(gib(out, "AdamW m, v (fp32)") - 8 * P / 8 / GIB) < 0.06, "m, v sharded over 8 ranks = 8P/8 bytes")
    # memory.keep_full_attention = auto: the all-full baseline keeps as many full layers' attention outputs as fit
    # 4 GiB under memory.device_gib (each costs T x C x 2 + H x T x 4 bytes); true keeps all 32, false none
    full = os.path.join(SRC, "configs", "7b-128k-full.ini")
    per = (T * Cd * 2 + H * T * 4) / GIB
    def plan_full(*sets):
        a = [tool("lgtrain"), "--config", full, "--set", f"run.init_from={hf}", "--plan", "--world", "8"]
        for x in sets: a += ["--set", x]
        rr = run(a, check=False)
        m = re.search(r"kept full-layer attention outputs\s+[\d.]+ GiB\s+(\d+) of (\d+)", rr.stdout)
        return rr, (int(m.group(1)), int(m.group(2))) if m else None, gib(rr.stdout, "total")
    ra, ka, ta = plan_full()
    rt, kt, tt = plan_full("memory.keep_full_attention=true")
    rf, kf, tf = plan_full("memory.keep_full_attention=false")
    C.check(ra.returncode == 0 and ka and ka[1] == 32 and ka[0] < 32 and ta <= 79 - 4 and ta + per > 79 - 4,
            f"all-full 7B, auto: keeps {ka and ka[0]} of 32 attention outputs, total {ta:.1f} GiB <= 75 (one more would not fit)")
    C.check(kt == (32, 32) and abs(tt - ta - (32 - ka[0]) * per) < 0.1 and kf is None and abs(tt - tf - 32 * per) < 0.1,
            f"true keeps 32 ({tt:.1f} GiB), false none ({tf:.1f} GiB): {per:.3f} GiB per kept layer")
    # 70B: the replicated bf16 weights alone exceed a GPU: the advice says what is missing instead of knobs
    hf70 = os.path.join(d, "llama70b")
    os.makedirs(hf70)
    json.dump({"model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
               "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 32000, "rms_norm_eps": 1e-5,
               "max_position_embeddings": 4096, "bos_token_id": 1, "eos_token_id": 2}, open(os.path.join(hf70, "config.json"), "w"))
    r70 = run([tool("lgtrain"), "--config", os.path.join(SRC, "configs", "70b-128k.ini"), "--set", f"run.init_from={hf70}",
               "--plan", "--world", "8"], check=False)
    C.check(r70.returncode == 1 and "The replicated weights alone are\n128.5 GiB per GPU" in r70.stdout
            and "ZeRO-3 or tensor parallelism" in r70.stdout and "offload" not in r70.stdout.split("DOES NOT FIT")[1],
            "70B on 8 GPUs: refused, the advice names the missing weight sharding (no useless knobs)")
    # FLOPs, counted independently for the all-full baseline: one step = 32 sequences of 128K
    r = run([tool("lgtrain"), "--config", os.path.join(SRC, "configs", "7b-128k-full.ini"), "--set",
             f"run.init_from={hf}", "--plan", "--world", "8"], check=False)
    m = re.search(r"FLOPs per step: ([\d.e+]+) model", r.stdout)
    seqs = 4194304 // T
    matmul = L * (4 * Cd * Cd + 3 * Cd * F) + Cd * V
    attn = L * H * 12 * D * T * (T + 1) / 2
    ref = seqs * (6 * matmul * T + attn)
    C.check(m and abs(float(m.group(1)) / ref - 1) < 1e-3, f"all-full model FLOPs {m and m.group(1)} vs independent {ref:.4e}")
    # refuse: one rank cannot hold it; the message says what to change
    r = run([tool("lgtrain"), "--config", cfg, "--set", f"run.init_from={hf}", "--set", "memory.zero_stage=0",
             "--plan", "--world", "1"], check=False)
    C.check(r.returncode == 1 and "DOES NOT FIT" in r.stdout and "memory.zero_stage = 1" in r.stdout and "more ranks" in r.stdout,
            "1 rank ZeRO-0 is refused with advice")
    # the trainer itself refuses before allocating anything (no GPU needed to reach the check)
    r = run([tool("lgtrain"), "--config", cfg, "--set", f"run.init_from={hf}", "--set", f"run.out_dir={d}/r7b"], check=False)
    C.check(r.returncode != 0 and "more than memory.device_gib" in r.stderr and "DOES NOT FIT" in r.stderr,
            "lgtrain refuses the 7B run before allocating: " + r.stderr.strip().splitlines()[-1][:150])
    # the 8-layer benchmark shape, counted independently: bf16 weights, fp32 master + gradients (one rank), the
    # 9 kept layer inputs, 3 full layers' kept attention output + LSE, and the working set with its shared
    # buffers (11 T x C bf16 buffers, 3 MLP chunk buffers and one region for the MLP chunk gradients / logits
    # chunk, lse, 3 rstd, tokens + targets, RoPE tables). bench/results/gpu-e2e.md compares it with nvidia-smi.
    r = run([tool("lgtrain"), "--config", os.path.join(SRC, "configs", "bench-7b-8layer.ini"), "--plan"], check=False)
    Pb, Lb, mc, lc = 1880506368, 8, 16384, 8192
    work = 11 * T * Cd * 2 + 3 * mc * F * 2 + max(3 * mc * F * 2, lc * V * 4) + H * T * 4 + 3 * T * 4 + 2 * T * 4 + 2 * T * 64 * 4
    ref = 2 * Pb + 4 * Pb + 4 * Pb + (Lb + 1) * T * Cd * 2 + 3 * (T * Cd * 2 + H * T * 4) + work
    no_opt = sum(gib(r.stdout, k) for k in ("weights", "master weights (fp32)", "gradients (fp32)",
                                             "kept layer inputs (recompute)", "kept full-layer attention outputs",
                                             "largest working set"))
    C.check(r.returncode == 0 and "1.881B parameters" in r.stdout and abs(no_opt - ref / GIB) < 0.2,
            f"bench-7b-8layer plan without optimizer {no_opt:.1f} GiB vs independent count {ref / GIB:.1f} GiB")
    # plan == allocation: the tiny run prints what it allocated; --plan must say the same
    tiny = os.path.join(SRC, "configs", "tiny-test.ini")
    r = run([tool("lgtrain"), "--config", tiny, "--plan"])
    plan_act = int(re.search(r"activations: (\d+) bytes", r.stdout).group(1))
    r2 = run([tool("lgtrain"), "--config", tiny, "--set", f"run.out_dir={d}/t", "--set", "run.steps=1", "--set", "export.hf=0"])
    m = re.search(r"activations allocated: (\d+) bytes", r2.stdout)
    C.check(m is not None and int(m.group(1)) == plan_act,
            f"run allocates the planned activations: {m and m.group(1)} bytes vs plan {plan_act}")

sys.exit(C.done())
