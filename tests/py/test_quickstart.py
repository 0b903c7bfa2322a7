"""The quickstart end to end (launch/quickstart.sh, ~2-3 minutes on 2 cores): it must finish, fine-tuning must
lower the 2048-token validation loss below the converted model's, and its outputs must load in the real readers:
transformers reproduces lgtrain's last validation loss on the exported HF directory, and the gguf reader opens
the GGUF. Skipped with LG_SKIP_QUICKSTART=1."""
import json, os, re, subprocess, sys, tempfile
import numpy as np
import torch
from transformers import AttentionInterface, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
import lg_mask
from lgtest import BUILD, Checks, SRC

if os.environ.get("LG_SKIP_QUICKSTART") == "1":
    print("LG_SKIP_QUICKSTART=1: skipped")
    sys.exit(77)
C = Checks("test_quickstart")
with tempfile.TemporaryDirectory() as d:
    out = os.path.join(d, "qs")
    env = dict(os.environ, LG_QUICKSTART_DIR=out, LG_BUILD_DIR=BUILD)
    r = subprocess.run(["bash", os.path.join(SRC, "launch", "quickstart.sh")], cwd=SRC, env=env, capture_output=True,
                       text=True, timeout=1500)
    print(r.stdout[-2500:])
    C.check(r.returncode == 0, f"quickstart.sh exits 0 ({r.returncode}) {r.stderr[-500:]}")
    m = {k: float(v) for k, v in re.findall(r"(pretrained model|converted|fine-tune)[^\n]*?\s([\d.]+)\n", r.stdout)}
    C.check(len(m) == 3, f"summary has the three 2048-token validation losses: {m}")
    if len(m) == 3:
        C.check(m["fine-tune"] < m["converted"] - 0.05,
                f"the LongGen fine-tune lowers the 2048-token val loss: {m['converted']:.4f} -> {m['fine-tune']:.4f}")
    C.check("fine-tune resumed from: " in r.stdout and "step-000050" in r.stdout,
            "the fine-tune stops at step 50 and the same command resumes from that checkpoint")
    exp = os.path.join(out, "longgen", "export")
    cfg = json.load(open(os.path.join(exp, "config.json")))
    C.check(cfg["rope_theta"] == 500000 and cfg["max_position_embeddings"] >= 2048, "export carries the extended RoPE")
    # transformers with the recorded layout reproduces the run's final validation loss on the val shards
    import h5py, hdf5plugin  # noqa: F401  (registers the zstd filter for h5py)
    val = os.path.join(out, "data", "s2048", "val")
    seqs = np.concatenate([h5py.File(os.path.join(val, f))["tokens"][:] for f in sorted(os.listdir(val))]).astype(np.int64)
    lay = cfg["longgen_layout"]
    params = {k: v for k, v in lay["sparse"].items() if k != "kind"}
    AttentionInterface.register("lg_quickstart", lg_mask.make_attention(
        [(k, params if k != "full" else {}) for k in lay["per_layer"]], cfg["num_key_value_heads"]))
    model = LlamaForCausalLM.from_pretrained(exp, torch_dtype=torch.float32)
    model.config._attn_implementation = "lg_quickstart"
    tot, n = 0.0, 0
    with torch.no_grad():
        for s in seqs:
            t = torch.tensor(s)[None]
            logits = model(t).logits[0, :-1]
            tot += torch.nn.functional.cross_entropy(logits, t[0, 1:], reduction="sum").item()
            n += len(s) - 1
    rows = [json.loads(l) for l in open(os.path.join(out, "longgen", "train_log.jsonl"))]
    logged = [x["val_loss"] for x in rows if "val_loss" in x][-1]
    C.check(abs(tot / n - logged) < 1e-4, f"transformers on the export: val loss {tot / n:.6f} vs lgtrain's {logged:.6f}")
    from gguf import GGUFReader
    g = GGUFReader(os.path.join(out, "longgen", "export.gguf"))
    C.check(len(g.tensors) == cfg["num_hidden_layers"] * 9 + 3, f"GGUF opens: {len(g.tensors)} tensors")
sys.exit(C.done())
