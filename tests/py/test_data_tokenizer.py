"""The C tokenizer (lgdata tokenize / encode / decode) equals sentencepiece token for token.

Models are trained by sentencepiece inside the test (Llama-2 settings: BPE, identity normalizer, dummy prefix,
byte fallback; plus variants: remove_extra_whitespaces, no byte fallback, user-defined symbols). The corpus
mixes English-like text with unicode, whitespace runs, tabs/newlines, control bytes and characters that are
not in the vocabulary (byte fallback)."""
import json
import os
import random
import shutil
import time

import numpy as np
import sentencepiece as spm

from data_util import (expect_error, fnv1a64, lgdata, need_lgdata, read_lgt, synthetic_lines, tmpdir, train_spm)

need_lgdata()
D = tmpdir()
train = synthetic_lines(3000)
train += ["Grüße aus Köln — “quotes” ‘single’ …", "日本語のテキスト", "∑ ∫ √ ≤ ≥ π", "  two  spaces   three    four"]

models = {
    "llama": train_spm(D, "llama", train),
    "rmws": train_spm(D, "rmws", train, remove_extra_whitespaces=True),
    "nobf": train_spm(D, "nobf", train, byte_fallback=False, vocab_size=400),
    "user": train_spm(D, "user", train, user_defined_symbols=["<tab>", "kalo", "@@"]),
}

rng = random.Random(7)
alpha = list("kalomirentusavel th  ") + ["\t", "\n", " ", "  ", ".", ",", "Ä", "é", "Ω", "日", "🙂", "\u00a0", "\u2581",
                                        "\x00", "\x7f", "𝔘", "<tab>", "@@", "0", "42", "\r\n", "\ufffd", "ﬁ"]
corpus = ["", " ", "   ", "\n", "a", "hello world", "  leading and trailing  ", "tabs\tand\nnewlines\n\n",
          "naïve café", "日本語 🙂 ∑ x", "\x00\x01\x02 control", "QQQ XYZ ~~~ |||", "🙂" * 20, " " * 37,
          "the " * 300, "ＦＵＬＬＷＩＤＴＨ ﬁ ligature", "kalo<tab>kalo@@x", "\u2581already\u2581escaped"]
corpus += [l for l in train[:200]]
corpus += ["".join(rng.choice(alpha) for _ in range(rng.randint(0, 120))) for _ in range(300)]

failures = []
jl = os.path.join(D, "corpus.jsonl")
with open(jl, "w", encoding="utf-8") as f:
    for i, t in enumerate(corpus):
        f.write(json.dumps({"meta": {"i": i, "nested": [1, {"text": "not me"}]}, "text": t}) + "\n")

for name, path in models.items():
    sp = spm.SentencePieceProcessor(model_file=path)
    out = os.path.join(D, name + ".lgt")
    lgdata("tokenize", "-q", "-m", path, "-o", out, jl)
    head, docs = read_lgt(out)
    assert head["vocab_size"] == sp.get_piece_size(), head
    assert head["bos_id"] == sp.bos_id() and head["eos_id"] == sp.eos_id(), head
    assert head["tokenizer_hash"] == fnv1a64(open(path, "rb").read()), "tokenizer hash is not FNV-1a of the file"
    assert len(docs) == len(corpus), (len(docs), len(corpus))
    bad = 0
    for t, got in zip(corpus, docs):
        ref = sp.encode(t)
        if list(got) != ref:
            bad += 1
            if bad <= 3:
                failures.append(f"{name}: {t!r}: sentencepiece {ref} lgdata {list(got)}")
    if bad:
        failures.append(f"{name}: {bad} of {len(corpus)} documents differ")
    # decode: sentencepiece's DecodeIds on the same ids (with a leading BOS on some, and bytes that are not UTF-8)
    cases = [sp.encode(t) for t in corpus[:60:3]]
    cases += [[sp.bos_id()] + sp.encode(" x y"), [sp.piece_to_id("<0xE6>"), sp.piece_to_id("<0x97>")] if name != "nobf" else [0]]
    for ids in cases:
        got = lgdata("decode", "-m", path, *ids).stdout.decode("utf-8")
        if got != sp.decode(ids):
            failures.append(f"{name}: decode {ids}: sentencepiece {sp.decode(ids)!r} lgdata {got!r}")
    print(f"{name}: {len(corpus)} documents, {sum(len(d) for d in docs)} tokens, {bad} differ")

# Invalid UTF-8 in a plain-text file: sentencepiece replaces each bad byte by U+FFFD, so must we.
sp = spm.SentencePieceProcessor(model_file=models["llama"])
raw = b"ok \xff\xfe bad \xc3( end \xe2\x82"
with open(os.path.join(D, "bad.txt"), "wb") as f:
    f.write(raw)
lgdata("tokenize", "-q", "-m", models["llama"], "-o", os.path.join(D, "bad.lgt"), os.path.join(D, "bad.txt"))
_, docs = read_lgt(os.path.join(D, "bad.lgt"))
ref = sp.encode(raw)  # bytes in: sentencepiece decodes them itself (each bad byte -> U+FFFD)
if list(docs[0]) != ref:
    failures.append(f"invalid UTF-8: sentencepiece {ref} lgdata {list(docs[0])}")

# --split line, text files; encode with BOS/EOS.
with open(os.path.join(D, "lines.txt"), "w") as f:
    f.write("first line\n\nsecond  line\r\nthird")
lgdata("tokenize", "-q", "--split", "line", "-m", models["llama"], "-o", os.path.join(D, "lines.lgt"), os.path.join(D, "lines.txt"))
_, docs = read_lgt(os.path.join(D, "lines.lgt"))
assert [list(d) for d in docs] == [sp.encode(t) for t in ["first line", "second  line", "third"]], docs
ids = [int(x) for x in lgdata("encode", "--bos", "--eos", "-m", models["llama"], "hi there").out.split()]
assert ids == [sp.bos_id()] + sp.encode("hi there") + [sp.eos_id()], ids

# A 1 MB document: identical to sentencepiece, and fast (the priority queue; a quadratic merge loop takes minutes).
big = " ".join(train) * 1
big = (big * (1 + 1_000_000 // len(big)))[:1_000_000]
with open(os.path.join(D, "big.txt"), "w") as f:
    f.write(big)
t0 = time.time()
lgdata("tokenize", "-q", "-m", models["llama"], "-o", os.path.join(D, "big.lgt"), os.path.join(D, "big.txt"))
dt = time.time() - t0
_, docs = read_lgt(os.path.join(D, "big.lgt"))
t0 = time.time()
ref = sp.encode(big)
dt_sp = time.time() - t0
print(f"1 MB document: lgdata {dt:.2f} s (process start included), sentencepiece {dt_sp:.2f} s, {len(ref)} tokens")
if list(docs[0]) != ref:
    failures.append("1 MB document differs from sentencepiece")
assert dt < max(3.0, 2 * dt_sp), f"1 MB document took {dt:.2f} s (sentencepiece {dt_sp:.2f} s): quadratic merging?"

# The quickstart corpus and its committed tokenizer (launch/quickstart_data): token for token.
qs = os.path.join(os.environ.get("LG_SRC", "."), "launch", "quickstart_data")
if os.path.exists(os.path.join(qs, "tokenizer.model")):
    sp = spm.SentencePieceProcessor(model_file=os.path.join(qs, "tokenizer.model"))
    lgdata("tokenize", "-q", "-m", os.path.join(qs, "tokenizer.model"), "-o", os.path.join(D, "qs.lgt"), os.path.join(qs, "corpus.jsonl"))
    lgdata("tokenize", "-q", "-j", 3, "-m", os.path.join(qs, "tokenizer.model"), "-o", os.path.join(D, "qs3.lgt"), os.path.join(qs, "corpus.jsonl"))
    assert open(os.path.join(D, "qs.lgt"), "rb").read() == open(os.path.join(D, "qs3.lgt"), "rb").read(), "-j 3 output differs"
    _, docs = read_lgt(os.path.join(D, "qs.lgt"))
    texts = [json.loads(l)["text"] for l in open(os.path.join(qs, "corpus.jsonl"), encoding="utf-8")]
    bad = sum(list(d) != sp.encode(t) for d, t in zip(docs, texts))
    assert len(docs) == len(texts) and bad == 0, f"quickstart corpus: {bad} of {len(texts)} documents differ"
    print(f"quickstart corpus: {len(texts)} documents, {sum(len(d) for d in docs)} tokens, identical")

# Unsupported models fail with the reason.
uni = train_spm(D, "uni", train, model_type="unigram", vocab_size=500)
expect_error("model_type is 1 (UNIGRAM), expected 2 (BPE", "encode", "-m", uni, "x")
nfkc = train_spm(D, "nfkc", train, normalization_rule_name="nmt_nfkc")
expect_error("precompiled_charsmap", "encode", "-m", nfkc, "x")
cut = os.path.join(D, "cut.model")
with open(cut, "wb") as f:
    f.write(open(models["llama"], "rb").read()[:5000])
expect_error("truncated protobuf", "encode", "-m", cut, "x")
with open(os.path.join(D, "broken.jsonl"), "w") as f:
    f.write('{"text": "fine"}\n{"text": "unterminated}\n')
expect_error("broken.jsonl:2: bad JSON: unterminated string", "tokenize", "-m", models["llama"], "-o", os.path.join(D, "x.lgt"), os.path.join(D, "broken.jsonl"))
with open(os.path.join(D, "nofield.jsonl"), "w") as f:
    f.write('{"content": "fine"}\n')
expect_error('nofield.jsonl:1: the record has no "text" field', "tokenize", "-m", models["llama"], "-o", os.path.join(D, "x.lgt"), os.path.join(D, "nofield.jsonl"))

shutil.rmtree(D)
if failures:
    print("\n".join(failures))
    raise SystemExit(1)
print("test_data_tokenizer: all checks passed")
