"""The lgtrain CPU model against HF transformers (CPU, fp32): logits, loss and every parameter gradient.

Cases: GQA and MHA, tied and untied LM head, every RoPE scaling type (none, linear, dynamic, yarn, llama3),
all-FULL layout with HF's own eager attention, and hybrid layouts (sink+window, block-sparse with heads
that differ) with HF running a custom attention function that applies the LongGen masks (tests/py/lg_mask.py).
Run live: .venv/bin/python tests/py/test_model_hf.py  (env LG_BUILD = build dir, LG_SRC = source dir).
"""
import os, subprocess, sys, tempfile
import numpy as np
import torch
from transformers import AttentionInterface, LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
import lg_mask

BUILD = os.environ.get("LG_BUILD", os.path.join(os.path.dirname(__file__), "../../build"))
TOOL = os.path.join(BUILD, "model_check")
TOL = 1e-4  # fp32 both sides; differences come only from summation order (~1e-6 relative)

BASE = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
            tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, initializer_range=0.2)

CASES = [
    # name, HF config changes, INI [layout]/[rope] lines, HF attention layout (None = HF eager)
    ("gqa_untied_full", {}, ["[layout]", "full_layers = all"], None),
    ("mha_tied_full", dict(num_key_value_heads=4, tie_word_embeddings=True), ["[layout]", "full_layers = all"], None),
    ("rope_linear", dict(rope_scaling={"rope_type": "linear", "factor": 2.0}), ["[layout]", "full_layers = all"], None),
    ("rope_dynamic", dict(max_position_embeddings=16, rope_scaling={"rope_type": "dynamic", "factor": 2.0}),
     ["[layout]", "full_layers = all"], None),
    ("rope_yarn", dict(rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16}),
     ["[layout]", "full_layers = all"], None),
    ("rope_llama3", dict(rope_theta=500000.0, rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                              "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
     ["[layout]", "full_layers = all"], None),
    ("hybrid_sink_window", {}, ["[layout]", "full_layers = 1", "sparse = sink_window", "sink = 3", "window = 7"],
     [("sink_window", dict(sink=3, window=7)), ("full", {}), ("sink_window", dict(sink=3, window=7))]),
    ("hybrid_block_sparse", {}, ["[layout]", "full_layers = 1", "sparse = block_sparse", "block = 16",
                                 "local_blocks = 1", "vert_stride = 2"],
     [("block_sparse", dict(block=16, local_blocks=1, vert_stride=2)), ("full", {}),
      ("block_sparse", dict(block=16, local_blocks=1, vert_stride=2))]),
]


def rel(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def run_case(name, changes, ini_lines, layout, B=2, S=37):
    cfg = LlamaConfig(**{**BASE, **changes})
    torch.manual_seed(1234)
    attn_impl = "eager"
    if layout is not None:
        AttentionInterface.register("lg_" + name, lg_mask.make_attention(layout, cfg.num_key_value_heads))
        attn_impl = "lg_" + name
    model = LlamaForCausalLM(cfg).float()
    model.config._attn_implementation = attn_impl
    with tempfile.TemporaryDirectory() as d:
        hf = os.path.join(d, "hf")
        model.save_pretrained(hf, safe_serialization=True)
        g = torch.Generator().manual_seed(7)
        tokens = torch.randint(0, cfg.vocab_size, (B, S), generator=g)
        tokens.numpy().astype(np.int32).tofile(os.path.join(d, "tokens.i32"))
        ini = os.path.join(d, "case.ini")
        with open(ini, "w") as f:
            f.write("\n".join(["[run]", f"init_from = {hf}", "device = cpu", "steps = 1", "[optim]", "lr = 1e-3", "[data]", "train = synthetic",
                               f"seq_len = {S}", f"micro_batch = {B}", f"tokens_per_step = {B * S}"] + ini_lines) + "\n")
        out = os.path.join(d, "out")
        r = subprocess.run([TOOL, ini, os.path.join(d, "tokens.i32"), str(B), str(S), out], capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError(f"{name}: model_check failed:\n{r.stdout}\n{r.stderr}")
        # HF side
        logits = model(tokens).logits  # (B, S, V)
        tgt = tokens[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, cfg.vocab_size), tgt.reshape(-1))
        loss.backward()
        ours = np.fromfile(os.path.join(out, "logits.f32"), dtype=np.float32).reshape(B, S, cfg.vocab_size)
        errs = {"logits": rel(ours, logits.detach().numpy())}
        our_loss = float(open(os.path.join(out, "loss.txt")).read().split()[0])
        errs["loss"] = abs(our_loss - loss.item()) / abs(loss.item())
        worst = ("", 0.0)
        n = 0
        for pname, p in model.named_parameters():
            path = os.path.join(out, "grad", pname + ".f32")
            if not os.path.exists(path):
                raise AssertionError(f"{name}: no gradient dumped for {pname}")
            gr = np.fromfile(path, dtype=np.float32).reshape(p.shape)
            e = rel(gr, p.grad.numpy())
            n += 1
            if e > worst[1]:
                worst = (pname, e)
        errs["grad(worst)"] = worst[1]
        ok = all(v < TOL for v in errs.values())
        print(f"{'ok  ' if ok else 'FAIL'} {name:22s} logits {errs['logits']:.2e} loss {errs['loss']:.2e} "
              f"grads({n}) worst {worst[1]:.2e} [{worst[0]}]")
        return ok


def main():
    if not os.path.exists(TOOL):
        print(f"model_check not built at {TOOL}")
        return 1
    torch.set_num_threads(2)
    results = [run_case(*c) for c in CASES]
    print(f"test_model_hf: {sum(results)}/{len(results)} cases within {TOL:g}")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
