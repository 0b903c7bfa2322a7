"""HF import/export (checkpoints/hf_import.c, hf_export.c, safetensors.c, params.c) against transformers.

tests/tools/hf_copy imports a HF Llama directory and exports it again. transformers writes the sources
(sharded or single, f32 or bf16, tied or not) and loads every export as LlamaForCausalLM; the official
safetensors library reads the exported files. Checks: weights exact for f32, equal to torch's own
round-to-nearest-even casts for bf16/f16; every source config.json field kept in order; RoPE fields as
transformers reads them; longgen_layout; sharding + index; tokenizer files; random init statistics and
determinism; refusal to overwrite foreign directories; and each malformed HF directory's error message."""
import glob, json, os, shutil, sys, tempfile, time

import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
from lgtest import Checks, run, tool

C = Checks("test_hf_io")
HF_COPY = tool("hf_copy")


def make_src(d, tie=False, dtype=torch.float32, shard="40KB", extra_cfg=True):
    """A tiny random Llama saved by transformers (sharded unless shard is None) plus tokenizer files."""
    cfg = LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=128, max_position_embeddings=256, rms_norm_eps=1e-5,
                      tie_word_embeddings=tie)
    torch.manual_seed(1)
    m = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for n, p in m.named_parameters():
            p.normal_(0.0, 0.5 if p.dim() == 1 else 0.05)  # norms too, so a swapped tensor would show
    m = m.to(dtype)
    m.save_pretrained(d, max_shard_size=shard or "10GB")
    if extra_cfg:
        # fields transformers does not write, with texts that a careless writer would change
        c = json.load(open(os.path.join(d, "config.json")))
        c["custom_note"] = "h\u00e9llo \u2713 \"quoted\""
        c["custom_nested"] = {"b": [1, 2.50, None, True], "a": 1e-07}
        c["original_context"] = 4096
        open(os.path.join(d, "config.json"), "w").write(json.dumps(c, indent=2, ensure_ascii=False))
        open(os.path.join(d, "tokenizer.model"), "wb").write(bytes(range(256)) * 3)
        json.dump({"model_max_length": 256, "add_bos_token": True}, open(os.path.join(d, "tokenizer_config.json"), "w"))
        json.dump({"bos_token": "<s>", "eos_token": "</s>"}, open(os.path.join(d, "special_tokens_map.json"), "w"))
        g = json.load(open(os.path.join(d, "generation_config.json")))
        g["max_length"] = 256
        g["temperature"] = 0.6
        json.dump(g, open(os.path.join(d, "generation_config.json"), "w"))
    return m


def hf_copy(src, out, *opts, ok=True):
    r = run([HF_COPY, src, out, *opts], check=False)
    if ok and r.returncode != 0:
        raise AssertionError(f"hf_copy {src} {out} {opts} failed:\n{r.stderr}")
    return r


def load(d, dtype=torch.float32):
    m, info = LlamaForCausalLM.from_pretrained(d, dtype=dtype, output_loading_info=True)
    missing = info["missing_keys"] or info["unexpected_keys"] or info["mismatched_keys"]
    return m, not missing


def file_tensors(d):
    """All tensors of an export via the safetensors library (independent of our reader)."""
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.safetensors"))):
        out.update(load_file(f))
    return out


def cfg_of(d):
    return json.load(open(os.path.join(d, "config.json")))


def same_state(ref_model, tensors, cast=None):
    sd = {k: v for k, v in ref_model.state_dict().items() if "rotary_emb" not in k}
    if ref_model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    if set(sd) != set(tensors):
        return False, f"names differ: {sorted(set(sd) ^ set(tensors))}"
    for k, v in sd.items():
        want = v.to(cast) if cast is not None else v
        got = tensors[k]
        if got.dtype != want.dtype or got.shape != want.shape or not torch.equal(got, want):
            return False, f"{k}: {got.dtype} {tuple(got.shape)} vs {want.dtype} {tuple(want.shape)}"
    return True, ""


def logits(m, seed=0):
    ids = torch.randint(0, m.config.vocab_size, (1, 24), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return m(ids).logits


def expect_fail(src, out, wants, what, *opts):
    r = hf_copy(src, out, *opts, ok=False)
    msg = r.stderr
    good = r.returncode != 0 and all(w in msg for w in wants)
    C.check(good, f"bad dir: {what}" + ("" if good else f"\n   rc={r.returncode} stderr: {msg.strip()}\n   want: {wants}"))


def main():
    t0 = time.time()
    if not os.path.exists(HF_COPY):
        print(f"{HF_COPY} not built")
        return 1
    tmp = tempfile.mkdtemp(prefix="lg_hf_io_")
    try:
        rc = cases(tmp)
        print(f"test_hf_io: {time.time() - t0:.1f} s after imports")
        return rc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cases(tmp):
    P = lambda *a: os.path.join(tmp, *a)
    src = P("src")
    ref = make_src(src)
    src_cfg_text = open(os.path.join(src, "config.json")).read()
    src_cfg = json.loads(src_cfg_text)
    C.check(len(glob.glob(os.path.join(src, "model-*-of-*.safetensors"))) > 3, "source is sharded by transformers")

    # --- f32: exact weights, same logits, config kept ---
    hf_copy(src, P("f32"), "--dtype", "f32")
    m, ok = load(P("f32"))
    C.check(ok, "f32 export loads as LlamaForCausalLM with no missing/unexpected keys")
    C.check(os.path.exists(P("f32", "model.safetensors")) and not os.path.exists(P("f32", "model.safetensors.index.json")),
            "under the shard limit: one model.safetensors, no index")
    good, why = same_state(ref, file_tensors(P("f32")))
    C.check(good, "f32 export: every tensor bit-identical to the source " + why)
    C.check(torch.equal(logits(m), logits(ref)), "f32 export: transformers logits identical to the source model")
    out_cfg = cfg_of(P("f32"))
    keys = list(out_cfg)
    order = [keys.index(k) for k in src_cfg if k in out_cfg]
    C.check(all(k in out_cfg for k in src_cfg) and order == sorted(order), "every source config field kept, in order")
    changed = {"architectures", "model_type", "hidden_size", "intermediate_size", "num_hidden_layers",
               "num_attention_heads", "num_key_value_heads", "head_dim", "vocab_size", "rms_norm_eps",
               "tie_word_embeddings", "bos_token_id", "eos_token_id", "torch_dtype", "dtype", "rope_theta",
               "max_position_embeddings", "rope_scaling", "rope_parameters"}
    same = all(out_cfg[k] == v for k, v in src_cfg.items() if k not in changed)
    C.check(same, "unrelated source fields keep their values (custom_note, custom_nested, pad_token_id, ...)")
    text = open(P("f32", "config.json")).read()
    C.check('"rms_norm_eps": 1e-05' in text and '"a": 1e-07' in text and '"b": [' in text and "2.5" in text
            and "h\u00e9llo \u2713 \\\"quoted\\\"" in text, "number and string texts survive (1e-05, 1e-07, UTF-8)")
    C.check(out_cfg["torch_dtype"] == "float32" and out_cfg["dtype"] == "float32", "torch_dtype/dtype = float32")
    lay = out_cfg.get("longgen_layout")
    C.check(lay == {"full_layers": [1], "sparse": {"kind": "sink_window", "sink": 4, "window": 16},
                    "per_layer": ["sink_window", "full", "sink_window"]}, f"longgen_layout recorded: {lay}")
    C.check(getattr(m.config, "longgen_layout", None) == lay, "transformers keeps longgen_layout on the loaded config")
    C.check(out_cfg.get("lgtrain_export", {}).get("context_length") == 256, "lgtrain_export marker with context_length")
    C.check(open(P("f32", "tokenizer.model"), "rb").read() == open(P("src", "tokenizer.model"), "rb").read()
            and json.load(open(P("f32", "special_tokens_map.json"))) == {"bos_token": "<s>", "eos_token": "</s>"},
            "tokenizer files copied byte for byte")

    # --- bf16, sharded by a tiny limit: equal to torch's RNE cast; index + shards load in transformers ---
    hf_copy(src, P("bf16"), "--dtype", "bf16", "--shard-bytes", "30000")
    shards = sorted(glob.glob(P("bf16", "model-*-of-*.safetensors")))
    idx = json.load(open(P("bf16", "model.safetensors.index.json")))
    n = len(shards)
    names_ok = n > 1 and all(os.path.basename(s) == f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i, s in enumerate(shards))
    C.check(names_ok and not os.path.exists(P("bf16", "model.safetensors")), f"sharded export: {n} shards named model-0000k-of-{n:05d}")
    tensors = file_tensors(P("bf16"))
    C.check(idx["metadata"]["total_size"] == sum(t.numel() * 2 for t in tensors.values())
            and set(idx["weight_map"]) == set(tensors)
            and all(k in load_file(P("bf16", f)) for k, f in idx["weight_map"].items()),
            "index: total_size and weight_map match the shards")
    C.check(all(os.path.getsize(s) <= 30000 + 4096 or len(load_file(s)) == 1 for s in shards), "shards respect the limit")
    good, why = same_state(ref, tensors, cast=torch.bfloat16)
    C.check(good, "bf16 export == torch .to(bfloat16) of every source tensor (round to nearest even) " + why)
    m16, ok = load(P("bf16"), dtype=torch.bfloat16)
    C.check(ok and next(m16.parameters()).dtype == torch.bfloat16 and torch.isfinite(logits(m16).float()).all(),
            "sharded bf16 export loads in transformers")
    C.check(cfg_of(P("bf16"))["torch_dtype"] == "bfloat16", "torch_dtype = bfloat16")

    # --- f16 ---
    hf_copy(src, P("f16"), "--dtype", "f16")
    good, why = same_state(ref, file_tensors(P("f16")), cast=torch.float16)
    C.check(good, "f16 export == torch .to(float16) " + why)

    # --- bf16 source (single file) -> f32 export: the widening is exact ---
    src_bf = P("src_bf16")
    ref_bf = make_src(src_bf, dtype=torch.bfloat16, shard=None, extra_cfg=False)
    C.check(os.path.exists(os.path.join(src_bf, "model.safetensors")), "bf16 source saved as one file")
    hf_copy(src_bf, P("bf_to_f32"), "--dtype", "f32")
    good, why = same_state(ref_bf, file_tensors(P("bf_to_f32")), cast=None)
    C.check(not good, "(sanity: dtypes differ, f32 vs bf16)")
    t = file_tensors(P("bf_to_f32"))
    exact = all(torch.equal(t[k], v.float()) for k, v in ref_bf.state_dict().items() if k in t)
    C.check(exact and len(t) == 30, "bf16 source -> f32 export: values exact")

    # --- tied embeddings ---
    src_t = P("src_tied")
    ref_t = make_src(src_t, tie=True, shard=None, extra_cfg=False)
    hf_copy(src_t, P("tied"), "--dtype", "f32")
    t = file_tensors(P("tied"))
    mt, ok = load(P("tied"))
    C.check("lm_head.weight" not in t and cfg_of(P("tied"))["tie_word_embeddings"] is True and ok
            and torch.equal(logits(mt), logits(ref_t)), "tied: no lm_head tensor, tie kept, same logits")
    # a tied source that still stores lm_head.weight: skipped with a warning
    sd = load_file(os.path.join(src_t, "model.safetensors"))
    sd["lm_head.weight"] = sd["model.embed_tokens.weight"].clone()
    save_file(sd, os.path.join(src_t, "model.safetensors"), metadata={"format": "pt"})
    r = hf_copy(src_t, P("tied2"), "--dtype", "f32")
    C.check("lm_head.weight ignored" in r.stderr and "tie_word_embeddings=true" in r.stderr, "tied source with lm_head.weight: warning")

    # --- RoPE fields as transformers reads them ---
    def rope_case(name, opts, want_mpe, want_scaling):
        hf_copy(src, P(name), "--dtype", "f32", *opts)
        c = cfg_of(P(name))
        mc, ok = load(P(name))
        rp = mc.config.rope_parameters
        theta = 500000.0
        good = (ok and c["rope_theta"] == theta and c["max_position_embeddings"] == want_mpe
                and c["rope_scaling"] == want_scaling and rp["rope_theta"] == theta
                and rp["rope_type"] == (want_scaling or {"rope_type": "default"})["rope_type"]
                and all(rp.get(k) == v for k, v in (want_scaling or {}).items()))
        # the rotary embedding transformers builds uses the new base (a stale rope_parameters would undo it)
        inv = mc.model.rotary_emb.inv_freq
        if want_scaling is None:
            D = 16
            want = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
            good = good and torch.allclose(inv, want, rtol=1e-6)
        C.check(good, f"rope {name}: config {c['rope_scaling']}, mpe {c['max_position_embeddings']}; transformers {rp}")

    rope_case("rope_none", ["--theta", "500000", "--max-pos", "1024"], 1024, None)
    # linear: vLLM multiplies max_position_embeddings by the factor, so the file holds max_pos / factor
    rope_case("rope_linear", ["--rope", "linear", "--theta", "500000", "--factor", "4", "--max-pos", "1024"], 256,
              {"rope_type": "linear", "factor": 4.0})
    rope_case("rope_dynamic", ["--rope", "dynamic", "--theta", "500000", "--factor", "2", "--max-pos", "1024"], 1024,
              {"rope_type": "dynamic", "factor": 2.0})
    rope_case("rope_yarn", ["--rope", "yarn", "--theta", "500000", "--factor", "4", "--orig-max-pos", "256",
                            "--max-pos", "1024", "--beta-fast", "16", "--beta-slow", "2", "--attn-factor", "1.25"], 1024,
              {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256, "beta_fast": 16.0,
               "beta_slow": 2.0, "attention_factor": 1.25})
    rope_case("rope_llama3", ["--rope", "llama3", "--theta", "500000", "--factor", "8", "--orig-max-pos", "256",
                              "--max-pos", "2048", "--low-freq", "1", "--high-freq", "4"], 2048,
              {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 256, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0})
    c = cfg_of(P("rope_none"))
    C.check(json.load(open(P("rope_none", "generation_config.json")))["max_length"] == 1024
            and json.load(open(P("rope_none", "generation_config.json")))["temperature"] == 0.6
            and json.load(open(P("rope_none", "tokenizer_config.json")))["model_max_length"] == 1024,
            "generation max_length and tokenizer model_max_length raised to the new context, other fields kept")
    hf_copy(src, P("bs"), "--full-layers", "0,2", "--sparse", "block_sparse")
    C.check(cfg_of(P("bs"))["longgen_layout"] == {"full_layers": [0, 2], "sparse": {"kind": "block_sparse", "block": 16,
            "local_blocks": 2, "vert_stride": 4}, "per_layer": ["full", "block_sparse", "full"]}, "block_sparse layout recorded")

    # --- random init (params.c): statistics, norms, determinism; export without a source config ---
    hf_copy(src, P("rand1"), "--random", "7", "--no-src", "--dtype", "f32")
    hf_copy(src, P("rand1b"), "--random", "7", "--no-src", "--dtype", "f32")
    hf_copy(src, P("rand2"), "--random", "8", "--no-src", "--dtype", "f32")
    a, b, c2 = file_tensors(P("rand1")), file_tensors(P("rand1b")), file_tensors(P("rand2"))
    mats = torch.cat([v.flatten() for v in a.values() if v.dim() == 2])
    norms_one = all(torch.all(v == 1) for v in a.values() if v.dim() == 1)
    C.check(abs(mats.mean().item()) < 2e-3 and abs(mats.std().item() / 0.02 - 1) < 0.02 and norms_one,
            f"random init: mean {mats.mean().item():.2e}, std {mats.std().item():.5f} (want 0.02), norms ones")
    k4 = ((mats / 0.02) ** 4).mean().item()
    C.check(abs(k4 - 3) < 0.1, f"random init is normal: 4th moment {k4:.3f} (want 3)")
    C.check(all(torch.equal(a[k], b[k]) for k in a) and not torch.equal(a["model.embed_tokens.weight"], c2["model.embed_tokens.weight"]),
            "random init: same seed identical, other seed differs")
    C.check(not torch.equal(a["model.layers.0.self_attn.q_proj.weight"], a["model.layers.1.self_attn.q_proj.weight"]),
            "random init: tensors get distinct streams")
    mr, ok = load(P("rand1"))
    cr = cfg_of(P("rand1"))
    C.check(ok and cr["hidden_act"] == "silu" and "custom_note" not in cr and os.path.exists(P("rand1", "generation_config.json")),
            "export without source: fresh config.json that transformers loads, generation_config written")

    # --- overwrite rules ---
    r = hf_copy(src, P("f32"), "--dtype", "bf16")
    C.check(r.returncode == 0 and cfg_of(P("f32"))["torch_dtype"] == "bfloat16" and not os.path.exists(P("f32.tmp")),
            "an earlier export is replaced")
    os.makedirs(P("user"))
    open(P("user", "config.json"), "w").write("{}")
    open(P("user", "precious.txt"), "w").write("x")
    expect_fail(src, P("user"), ["user exists and was not written by lgtrain", "refusing to overwrite"], "foreign out_dir refused")
    C.check(open(P("user", "precious.txt")).read() == "x", "foreign out_dir untouched")
    open(P("f32", "notes.md"), "w").write("mine")
    expect_fail(src, P("f32"), ["also holds \"notes.md\"", "refusing to replace"], "export dir with a user file refused")
    os.makedirs(P("x.tmp"))
    open(P("x.tmp", "model-00001-of-00002.safetensors"), "w").write("partial")
    hf_copy(src, P("x"))
    C.check(os.path.exists(P("x", "config.json")) and not os.path.exists(P("x.tmp")), "stale <out>.tmp of export files is cleared")
    os.makedirs(P("y.tmp"))
    open(P("y.tmp", "thesis.tex"), "w").write("mine")
    expect_fail(src, P("y"), ["y.tmp exists and holds \"thesis.tex\""], "stale <out>.tmp with a foreign file refused")

    # --- (b) bad HF directories: each names the file and the problem ---
    def variant(name, base=src):
        d = P(name)
        shutil.copytree(base, d)
        return d

    d = variant("no_config")
    os.remove(os.path.join(d, "config.json"))
    expect_fail(d, P("o1"), [f"{d}: config.json is missing"], "missing config.json")

    d = variant("bad_json")
    open(os.path.join(d, "config.json"), "w").write('{"hidden_size": 64,\n "x": }')
    expect_fail(d, P("o1"), [f"{d}/config.json: invalid JSON: line 2 col 7: expected a value"], "config.json not JSON")

    src1 = P("src_single")
    make_src(src1, shard=None, extra_cfg=False)
    st1 = lambda d: os.path.join(d, "model.safetensors")

    d = variant("missing_tensor", src1)
    sd = load_file(st1(d))
    del sd["model.layers.1.mlp.up_proj.weight"]
    save_file(sd, st1(d), metadata={"format": "pt"})
    expect_fail(d, P("o1"), [f"{d}: tensor model.layers.1.mlp.up_proj.weight is missing (searched model.safetensors)"],
                "missing tensor")

    d = variant("missing_sharded")
    idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    f = idx["weight_map"]["model.layers.2.self_attn.o_proj.weight"]
    sd = load_file(os.path.join(d, f))
    del sd["model.layers.2.self_attn.o_proj.weight"]
    save_file(sd, os.path.join(d, f), metadata={"format": "pt"})
    expect_fail(d, P("o1"), [f"tensor model.layers.2.self_attn.o_proj.weight is missing: model.safetensors.index.json maps it to {f}"],
                "missing tensor in a sharded dir")

    d = variant("wrong_shape", src1)
    sd = load_file(st1(d))
    sd["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(64, 64)
    save_file(sd, st1(d), metadata={"format": "pt"})
    expect_fail(d, P("o1"), [f"{d}/model.safetensors: tensor model.layers.0.self_attn.k_proj.weight: shape [64,64], "
                             "expected [32,64] (config.json says num_key_value_heads*head_dim=32, hidden_size=64)"], "wrong shape")

    d = variant("int8", src1)
    sd = load_file(st1(d))
    sd["model.norm.weight"] = torch.zeros(64, dtype=torch.int8)
    save_file(sd, st1(d), metadata={"format": "pt"})
    expect_fail(d, P("o1"), [f"{d}/model.safetensors: tensor model.norm.weight: dtype I8 is not supported (expected F32, F16 or BF16)"],
                "unknown dtype I8")

    d = variant("unknown_tensor", src1)
    sd = load_file(st1(d))
    sd["model.layers.0.self_attn.q_proj.bias"] = torch.zeros(64)
    save_file(sd, st1(d), metadata={"format": "pt"})
    expect_fail(d, P("o1"), [f"{d}/model.safetensors: tensor model.layers.0.self_attn.q_proj.bias: unknown tensor"], "unknown tensor")

    d = variant("extra_layer", src1)
    sd = load_file(st1(d))
    sd["model.layers.3.input_layernorm.weight"] = torch.ones(64)
    save_file(sd, st1(d), metadata={"format": "pt"})
    expect_fail(d, P("o1"), ["tensor model.layers.3.input_layernorm.weight: layer 3, but config.json says num_hidden_layers=3"],
                "more layers than config.json")

    d = variant("inv_freq", src1)
    sd = load_file(st1(d))
    sd["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)
    save_file(sd, st1(d), metadata={"format": "pt"})
    r = hf_copy(d, P("o_inv"), "--dtype", "f32")
    C.check(r.returncode == 0 and r.stderr.strip() == "", "rotary_emb.inv_freq silently skipped")

    d = variant("truncated")
    f = sorted(glob.glob(os.path.join(d, "model-*.safetensors")))[2]
    size = os.path.getsize(f)
    with open(f, "r+b") as fh:
        fh.truncate(size - 100)
    expect_fail(d, P("o1"), [f"{f}: file is truncated: tensor"], "truncated shard")

    d = variant("garbage_len")
    f = sorted(glob.glob(os.path.join(d, "model-*.safetensors")))[1]
    with open(f, "r+b") as fh:
        fh.write(b"\xde\xad\xbe\xef\xde\xad\xbe\xef")
    expect_fail(d, P("o1"), [f"{f}: header length", "larger than the 100 MB limit"], "garbage header length")

    d = variant("bad_header", src1)
    with open(st1(d), "r+b") as fh:
        fh.seek(8 + 1)  # just after the opening '{'
        fh.write(b"@@@")
    expect_fail(d, P("o1"), [f"{st1(d)}: safetensors header is not valid JSON: line 1 col 2: expected a member name"],
                "corrupt header JSON")

    d = variant("missing_shard")
    os.remove(sorted(glob.glob(os.path.join(d, "model-*.safetensors")))[0])
    expect_fail(d, P("o1"), ["is listed in model.safetensors.index.json but does not exist"], "shard listed in the index is missing")

    d = variant("no_weights", src1)
    os.remove(st1(d))
    open(os.path.join(d, "pytorch_model.bin"), "wb").write(b"x")
    expect_fail(d, P("o1"), [f"{d}: no model.safetensors or model.safetensors.index.json (found pytorch_model.bin"], "only pytorch_model.bin")

    return C.done()


if __name__ == "__main__":
    sys.exit(main())
