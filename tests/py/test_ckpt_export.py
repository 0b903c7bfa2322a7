"""lgexport from a checkpoint: the HF directory it writes loads in transformers, and transformers' loss on the
sequences of step k+1 (regenerated here from batch.c's synthetic formula) equals the loss lgtrain logged at
step k+1, computed with the weights of checkpoint k. The f32 export holds exactly the checkpoint's weights;
the bf16 one holds them rounded by torch's own bf16 conversion."""
import json, math, os, sys, tempfile
import numpy as np
import torch
from safetensors.numpy import load_file
from transformers import LlamaForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
from lgtest import Checks, run, tool
import lg_mpi
from lg_mpi import train, log

C = Checks("test_ckpt_export")
if not lg_mpi.have_mpi():
    print("mpirun not found: skipped")
    sys.exit(77)
M64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def synthetic(seed, idx, S, V, bos):
    """trainer/batch.c lg_synthetic_sequence: Zipf-like ids, second half repeats the first."""
    seq, half, lv = [bos], S // 2, math.log(V - 3)
    for i in range(1, S):
        if i > half:
            seq.append(seq[i - half]); continue
        r = splitmix64(((seed * 0x100000001B3) & M64) ^ splitmix64((idx * 1315423911 + i) & M64))
        u = (r >> 11) * (1.0 / 9007199254740992.0)
        t = 3 + int(math.floor(math.exp(u * lv))) - 1
        seq.append(min(max(t, 3), V - 1))
    return seq


with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "run")
    # all-full layout: transformers' eager attention is then the exact reference
    train(2, out, "run.steps=4", "checkpoint.every=2", "checkpoint.keep=3", "layout.full_layers=all",
          "export.hf=1", "export.dtype=f32")
    ck = os.path.join(out, "checkpoints", "step-000002")
    st = json.load(open(os.path.join(ck, "state.json")))
    exp = os.path.join(d, "exp2")
    r = run([tool("lgexport"), ck, "--format", "hf", "--out", exp, "--dtype", "f32"])
    w = load_file(os.path.join(ck, "model.safetensors"))
    e = load_file(os.path.join(exp, "model.safetensors"))
    C.check(set(w) == set(e) and all(np.array_equal(w[k], e[k]) for k in w), "f32 export == checkpoint weights, exactly")
    # default --out next to checkpoints/, bf16 by default
    r = run([tool("lgexport"), out, "--format", "hf", "--dtype", "bf16"])
    newest = os.path.join(out, "export-step-000004")
    wb = load_file(os.path.join(out, "checkpoints", "step-000004", "model.safetensors"))
    from safetensors.torch import load_file as tload
    eb = tload(os.path.join(newest, "model.safetensors"))
    C.check(all(torch.equal(eb[k], torch.from_numpy(wb[k]).to(torch.bfloat16)) for k in wb),
            "run dir -> newest checkpoint (step 4) -> export-step-000004 in bf16 == torch's bf16 rounding")
    fin = load_file(os.path.join(out, "export", "model.safetensors"))
    C.check(all(np.array_equal(fin[k], wb[k]) for k in wb), "the end-of-run export equals checkpoint step 4's weights")

    cfg = json.load(open(os.path.join(exp, "config.json")))
    model = LlamaForCausalLM.from_pretrained(exp, torch_dtype=torch.float32)
    model.config._attn_implementation = "eager"
    S, V, n = 64, cfg["vocab_size"], 6  # step 3 = the 6 global sequences after the cursor saved at step 2
    pos = st["data"]["position"]
    toks = torch.tensor([synthetic(7, pos + i, S, V, 1) for i in range(n)])
    with torch.no_grad():
        logits = model(toks).logits.double()
    lp = torch.log_softmax(logits[:, :-1], dim=-1)
    loss = float(-lp.gather(-1, toks[:, 1:, None]).mean())
    logged = log(out)[2]
    C.check(pos == 12 and abs(loss - logged) < 1e-5,
            f"transformers on lgexport(step 2), step-3 batch: loss {loss:.7f} vs lgtrain's logged {logged:.7f}: |d| {abs(loss - logged):.1e} (< 1e-5)")

    r = run([tool("lgexport"), ck, "--format", "onnx"], check=False)
    C.check(r.returncode != 0 and "--format onnx: expected hf or gguf" in r.stderr, "unsupported --format is refused")
    r = run([tool("lgexport"), ck, "--format", "gguf"], check=False)
    C.check(r.returncode != 0 and "tokenizer.model" in r.stderr, "gguf without a tokenizer.model: " + r.stderr.strip()[-120:])
    r = run([tool("lgexport"), os.path.join(d, "nope"), "--format", "hf"], check=False)
    C.check(r.returncode != 0 and "nope: not a directory" in r.stderr, "a missing checkpoint dir is named")

sys.exit(C.done())
