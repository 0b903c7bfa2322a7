"""GGUF export read back by the gguf Python package (llama.cpp's own reader): value types llama.cpp expects,
reversed dims, Q/K rows permuted back to interleaved pairs, the sentencepiece vocabulary, RoPE scaling keys and
llama3 rope_freqs against transformers' own frequencies, and the refusals (dynamic RoPE, foreign file)."""
import os, sys, tempfile
import numpy as np
import sentencepiece as spm
import torch
from gguf import GGUFReader, GGUFValueType
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.dirname(__file__))
from lgtest import Checks, run, tool

C = Checks("test_gguf")
V = 400


def field(r, key):
    f = r.fields[key]
    return f, f.types


def value(r, key):
    f = r.fields[key]
    if f.types[0] == GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode()
    if f.types[0] == GGUFValueType.ARRAY:
        return [f.parts[i] for i in f.data]
    return f.parts[f.data[0]][0]


with tempfile.TemporaryDirectory() as d:
    # a sentencepiece BPE model with byte fallback, trained here
    text = os.path.join(d, "corpus.txt")
    with open(text, "w") as f:
        for i in range(3000):
            f.write(f"the quick brown fox {i} jumps over the lazy dog number {i * 7 % 13}; é ü 東京 {i % 5}\n")
    spm.SentencePieceTrainer.train(input=text, model_prefix=os.path.join(d, "sp"), vocab_size=V, model_type="bpe",
                                   byte_fallback=True, character_coverage=1.0, minloglevel=2,
                                   normalization_rule_name="identity")
    spmodel = os.path.join(d, "sp.model")
    sp = spm.SentencePieceProcessor(model_file=spmodel)

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    hf = os.path.join(d, "hf")
    model.save_pretrained(hf)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    ini = os.path.join(d, "c.ini")
    open(ini, "w").write(f"[run]\ninit_from = {hf}\nsteps = 1\n[data]\ntrain = synthetic\nseq_len = 256\n"
                         "[optim]\nlr = 1e-4\n[layout]\nfull_layers = 1\nsparse = sink_window\nsink = 4\nwindow = 32\n")

    out = os.path.join(d, "m.gguf")
    run([tool("export_gguf"), ini, spmodel, out, "f32", "--set", "rope.theta=500000"])
    r = GGUFReader(out)
    U32, F32 = GGUFValueType.UINT32, GGUFValueType.FLOAT32
    for k in ["llama.context_length", "llama.embedding_length", "llama.block_count", "llama.feed_forward_length",
              "llama.attention.head_count", "llama.attention.head_count_kv", "llama.rope.dimension_count"]:
        C.check(field(r, k)[1] == [U32], f"{k} is u32")
    C.check(field(r, "llama.attention.layer_norm_rms_epsilon")[1] == [F32] and
            abs(value(r, "llama.attention.layer_norm_rms_epsilon") - 1e-5) < 1e-12, "rms eps f32 = 1e-5")
    C.check(field(r, "llama.rope.freq_base")[1] == [F32] and value(r, "llama.rope.freq_base") == 500000.0,
            "rope.freq_base f32 = 500000 (the raised theta)")
    C.check(value(r, "llama.context_length") == 256, "context_length = the trained context")
    C.check(value(r, "general.architecture") == "llama" and value(r, "tokenizer.ggml.model") == "llama", "architecture/tokenizer model")
    C.check(value(r, "llama.block_count") == 2 and value(r, "llama.attention.head_count_kv") == 2, "block/kv head counts")
    C.check("sink_window" in value(r, "longgen.layout"), "layout recorded: " + value(r, "longgen.layout"))
    toks = r.fields["tokenizer.ggml.tokens"]
    pieces = [bytes(toks.parts[i]).decode() for i in toks.data]
    C.check(pieces == [sp.id_to_piece(i) for i in range(V)], "tokens = sentencepiece pieces")
    scores = np.array(value(r, "tokenizer.ggml.scores")).ravel()
    C.check(np.allclose(scores, [sp.get_score(i) for i in range(V)]), "scores = sentencepiece scores")
    types = np.array(value(r, "tokenizer.ggml.token_type")).ravel()
    exp = [6 if sp.is_byte(i) else 3 if sp.is_control(i) else 2 if sp.is_unknown(i) else 5 if sp.is_unused(i) else 1
           for i in range(V)]
    C.check(list(types) == exp, "token types (normal/unknown/control/byte) = sentencepiece's")
    C.check(value(r, "tokenizer.ggml.bos_token_id") == sp.bos_id() and value(r, "tokenizer.ggml.eos_token_id") == sp.eos_id(),
            "bos/eos ids")
    t = {x.name: x for x in r.tensors}
    C.check(len(r.tensors) == len(sd) and all(x.data_offset % 32 == 0 for x in r.tensors), "every tensor present, 32-aligned")
    emb = t["token_embd.weight"]
    C.check(list(emb.shape) == [64, V] and np.array_equal(np.asarray(emb.data).reshape(V, 64), sd["model.embed_tokens.weight"]),
            "token_embd: dims reversed [C, V], data = HF")

    def unpermute(w, heads):
        D = w.shape[0] // heads
        return w.reshape(heads, 2, D // 2, -1).transpose(0, 2, 1, 3).reshape(w.shape)

    q = np.asarray(t["blk.1.attn_q.weight"].data).reshape(64, 64)
    k = np.asarray(t["blk.1.attn_k.weight"].data).reshape(32, 64)
    C.check(np.array_equal(q, unpermute(sd["model.layers.1.self_attn.q_proj.weight"], 4)), "attn_q rows interleaved (4 heads)")
    C.check(np.array_equal(k, unpermute(sd["model.layers.1.self_attn.k_proj.weight"], 2)), "attn_k rows interleaved (2 kv heads)")
    C.check(np.array_equal(np.asarray(t["blk.0.ffn_down.weight"].data).reshape(64, 96), sd["model.layers.0.mlp.down_proj.weight"]),
            "ffn_down = HF down_proj")
    C.check(t["output_norm.weight"].tensor_type == 0 and "output.weight" in t, "norms f32, output present")

    # bf16 matrices, norms f32
    run([tool("export_gguf"), ini, spmodel, out, "bf16"])
    r = GGUFReader(out)
    t = {x.name: x for x in r.tensors}
    C.check(int(t["blk.0.attn_v.weight"].tensor_type) == 30 and int(t["blk.0.attn_norm.weight"].tensor_type) == 0,
            "bf16 export: matrices BF16 (30), norms F32")
    C.check(value(r, "general.file_type") == 32, "file_type 32 (mostly bf16)")

    # rope scaling keys
    run([tool("export_gguf"), ini, spmodel, out, "f32", "--set", "rope.scaling=yarn", "--set", "rope.factor=4",
         "--set", "rope.original_max_position_embeddings=64"])
    r = GGUFReader(out)
    C.check(value(r, "llama.rope.scaling.type") == "yarn" and field(r, "llama.rope.scaling.factor")[1] == [F32] and
            value(r, "llama.rope.scaling.factor") == 4.0 and value(r, "llama.rope.scaling.original_context_length") == 64,
            "yarn: scaling.type/factor (f32)/original_context_length (u32)")
    # llama3: rope_freqs factors reproduce transformers' inv_freq
    run([tool("export_gguf"), ini, spmodel, out, "f32", "--set", "rope.scaling=llama3", "--set", "rope.factor=8",
         "--set", "rope.original_max_position_embeddings=32", "--set", "rope.theta=500000"])
    r = GGUFReader(out)
    ff = np.asarray({x.name: x for x in r.tensors}["rope_freqs.weight"].data)
    c3 = LlamaConfig(**{**cfg.to_dict(), "rope_theta": 500000.0,
                        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                         "high_freq_factor": 4.0, "original_max_position_embeddings": 32}})
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding
    inv3 = LlamaRotaryEmbedding(c3).inv_freq.double().numpy()
    base = 1.0 / (500000.0 ** (np.arange(0, 16, 2) / 16))
    C.check(np.allclose(base / ff, inv3, rtol=1e-5), f"llama3 rope_freqs: base/factor = transformers inv_freq ({ff.round(3)})")
    # refusals
    res = run([tool("export_gguf"), ini, spmodel, out, "f32", "--set", "rope.scaling=dynamic", "--set", "rope.factor=2"], check=False)
    C.check(res.returncode != 0 and "dynamic" in res.stderr, "dynamic RoPE refused: " + res.stderr.strip()[:120])
    foreign = os.path.join(d, "user.gguf")
    open(foreign, "w").write("my notes")
    res = run([tool("export_gguf"), ini, spmodel, foreign, "f32"], check=False)
    C.check(res.returncode != 0 and "refusing to overwrite" in res.stderr and open(foreign).read() == "my notes",
            "a file lgtrain did not write is not overwritten")
    res = run([tool("export_gguf"), ini, os.path.join(d, "none.model"), out, "f32"], check=False)
    C.check(res.returncode != 0 and "tokenizer" in res.stderr, "missing tokenizer.model: clear error")

sys.exit(C.done())
