"""Helpers for the data tests: paths, running lgdata, reading .lgt token streams, training tiny sentencepiece models."""
import os
import subprocess
import sys
import tempfile

import numpy as np

SRC = os.environ.get("LG_SRC", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD = os.environ.get("LG_BUILD", os.path.join(SRC, "build"))
LGDATA = os.path.join(BUILD, "lgdata")


def need_lgdata():
    if not os.path.exists(LGDATA):
        print(f"SKIP: {LGDATA} not built")
        sys.exit(77)


def lgdata(*args, check=True, input=None):
    """Run lgdata; returns CompletedProcess (text). With check, a failure raises with stderr shown."""
    p = subprocess.run([LGDATA, *map(str, args)], capture_output=True, input=input)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    if check and p.returncode != 0:
        raise AssertionError(f"lgdata {' '.join(map(str, args))} failed ({p.returncode}):\n{p.err}")
    return p


def expect_error(want, *args):
    """lgdata must fail with `want` in its message."""
    p = lgdata(*args, check=False)
    assert p.returncode != 0, f"lgdata {' '.join(map(str, args))} succeeded, expected an error with {want!r}"
    assert want in p.err, f"lgdata {' '.join(map(str, args))}: message lacks {want!r}:\n{p.err}"
    return p.err


def read_lgt(path):
    """An .lgt token stream (see data/FORMAT.md) -> (header dict, list of np arrays, one per document)."""
    b = open(path, "rb").read()
    assert b[:8] == b"LGTOKS1\0", "bad magic"
    ver, eb = np.frombuffer(b[8:16], "<u4")
    h = np.frombuffer(b[16:64], "<u8")
    head = dict(version=int(ver), elem_bytes=int(eb), tokenizer_hash=int(h[0]), vocab_size=int(h[1].astype(np.int64)),
                bos_id=int(h[2].astype(np.int64)), eos_id=int(h[3].astype(np.int64)), n_docs=int(h[4]), n_tokens=int(h[5]))
    dt = "<u2" if eb == 2 else "<u4"
    tok = np.frombuffer(b, dt, head["n_tokens"], 64)
    off = np.frombuffer(b, "<u8", head["n_docs"] + 1, 64 + head["n_tokens"] * int(eb))
    return head, [tok[off[i]:off[i + 1]].astype(np.int64) for i in range(head["n_docs"])]


def fnv1a64(data):
    h = 1469598103934665603
    for c in data:
        h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def train_spm(dirpath, name, text_lines, **kw):
    """Train a sentencepiece BPE model (Llama-2 style unless kw overrides) and return its path."""
    import sentencepiece as spm
    inp = os.path.join(dirpath, name + ".txt")
    with open(inp, "w", encoding="utf-8") as f:
        f.write("\n".join(text_lines))
    args = dict(input=inp, model_prefix=os.path.join(dirpath, name), model_type="bpe", vocab_size=600,
                character_coverage=0.9995, normalization_rule_name="identity", remove_extra_whitespaces=False,
                byte_fallback=True, num_threads=1, minloglevel=2, split_digits=True, hard_vocab_limit=False)
    args.update(kw)
    spm.SentencePieceTrainer.train(**args)
    return os.path.join(dirpath, name + ".model")


def synthetic_lines(n, seed=1):
    """English-like lines with a fixed small vocabulary of made-up words (deterministic)."""
    rng = np.random.default_rng(seed)
    syll = "ka lo mi ren tu sa vel dor an is th er qu ick br ow fo x ju mp ov la zy the of and".split()
    words = ["".join(rng.choice(syll, rng.integers(1, 4))) for _ in range(500)]
    lines = []
    for i in range(n):
        s = " ".join(rng.choice(words, rng.integers(3, 30)))
        if i % 7 == 0:
            s = s.capitalize() + "."
        if i % 5 == 0:
            s += f" {int(rng.integers(0, 100000))}, naïve café"
        lines.append(s)
    return lines


def tmpdir():
    return tempfile.mkdtemp(prefix="lgdata_test_")
