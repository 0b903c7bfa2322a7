"""Export -> transformers load -> the same logits as lgtrain.

Trains a tiny model for a few steps (random init, extended RoPE), exports it as a HF directory, loads it with
transformers (LlamaForCausalLM), and compares logits with lgtrain's own forward on the exported weights
(tests/tools/model_check). Cases: all-full with yarn scaling (HF eager attention), and a hybrid layout whose
exported `longgen_layout` field drives the reference masks (tests/py/lg_mask.py)."""
import json, os, sys, tempfile
import numpy as np
import torch
from transformers import AttentionInterface, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
import lg_mask
from lgtest import Checks, SRC, run, tool

C = Checks("test_export_hf")
CFG = os.path.join(SRC, "configs", "tiny-test.ini")


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def case(d, name, sets, dtype="f32", tol=1e-4):
    run_dir, exp = os.path.join(d, name), os.path.join(d, name, "export")
    args = [tool("lgtrain"), "--config", CFG, "--set", f"run.out_dir={run_dir}", "--set", "run.steps=3",
            "--set", "export.hf=1", "--set", f"export.dir={exp}", "--set", f"export.dtype={dtype}"]
    for s in sets:
        args += ["--set", s]
    run(args)
    cfg = json.load(open(os.path.join(exp, "config.json")))
    lay = cfg.get("longgen_layout")
    C.check(lay is not None and len(lay["per_layer"]) == cfg["num_hidden_layers"], f"{name}: longgen_layout recorded")
    model = LlamaForCausalLM.from_pretrained(exp, torch_dtype=torch.float32)
    kv = cfg["num_key_value_heads"]
    if lay is not None and any(k != "full" for k in lay["per_layer"]):
        sp = lay["sparse"]
        params = {k: v for k, v in sp.items() if k != "kind"}
        layout = [(k, params if k != "full" else {}) for k in lay["per_layer"]]
        AttentionInterface.register("lg_" + name, lg_mask.make_attention(layout, kv))
        model.config._attn_implementation = "lg_" + name
    else:
        model.config._attn_implementation = "eager"
    S = 48
    tokens = torch.randint(0, cfg["vocab_size"], (1, S), generator=torch.Generator().manual_seed(3))
    tokens.numpy().astype(np.int32).tofile(os.path.join(d, "tok.i32"))
    ini = os.path.join(d, name + ".ini")
    open(ini, "w").write(f"[run]\ninit_from = {exp}\n[data]\ntrain = synthetic\nseq_len = {S}\nmicro_batch = 1\n"
                         f"tokens_per_step = {S}\n[layout]\nfull_layers = all\n")
    # lgtrain's layout/rope for the check come from the run's resolved config (config.ini in the run dir)
    ours_dir = os.path.join(d, name + "_check")
    run([tool("model_check"), os.path.join(run_dir, "config.ini"), os.path.join(d, "tok.i32"), 1, S, ours_dir,
         "--set", f"run.init_from={exp}", "--set", f"data.seq_len={S}", "--set", "data.micro_batch=1",
         "--set", f"data.tokens_per_step={S}"])
    ours = np.fromfile(os.path.join(ours_dir, "logits.f32"), dtype=np.float32).reshape(1, S, -1)
    with torch.no_grad():
        ref = model(tokens).logits.float().numpy()
    e = rel(ours, ref)
    C.check(e < tol, f"{name}: logits of the transformers-loaded export vs lgtrain: rel err {e:.2e} (< {tol:g})")
    return cfg


with tempfile.TemporaryDirectory() as d:
    cfg = case(d, "full_yarn", ["layout.full_layers=all", "rope.scaling=yarn", "rope.factor=4",
                                "rope.original_max_position_embeddings=16", "rope.theta=50000"])
    rs = cfg.get("rope_scaling") or {}
    C.check(cfg.get("rope_theta") == 50000 and rs.get("rope_type", rs.get("type")) == "yarn" and rs.get("factor") == 4,
            f"config.json carries rope_theta and rope_scaling: {cfg.get('rope_theta')} {rs}")
    case(d, "hybrid_sw", ["layout.full_layers=1", "layout.sparse=sink_window", "layout.sink=4", "layout.window=9"])
    case(d, "hybrid_bs", ["layout.full_layers=1", "layout.sparse=block_sparse", "layout.block=16",
                          "layout.local_blocks=1", "layout.vert_stride=2"])
    # bf16 export: weights rounded to bf16 on both sides (lgtrain reads the same bf16 file), so logits still agree
    case(d, "full_bf16", ["layout.full_layers=all"], dtype="bf16", tol=1e-4)

sys.exit(C.done())
