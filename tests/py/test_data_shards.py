"""Shards round-trip between lgdata and h5py + hdf5plugin, both ways.

lgdata -> h5py: `lgdata pack` output read by h5py equals a packing computed here in numpy (documents with BOS
between them, cut into sequences, tail dropped), with the documented attributes, /seq_crc32 = zlib.crc32 of each
row, /doc_starts, and filter 32015 with cd_values[0] = level. Shuffled packs keep every document intact, val and
train are disjoint, the same seed gives the same shards. h5py -> lgdata: shards written by h5py with
hdf5plugin.Zstd (odd chunk shapes, uint16 and uint32, with and without /seq_crc32) pass `lgdata verify`, and the
loader (`lgdata sample`) returns exactly their rows: disjoint and complete over 1, 2, 3 ranks, and a cursor
taken with 2 ranks resumes with 3 ranks without a repeat or a gap."""
import os
import re
import shutil
import zlib

import h5py
import hdf5plugin
import numpy as np

from data_util import expect_error, lgdata, need_lgdata, tmpdir

need_lgdata()
D = tmpdir()
rng = np.random.default_rng(3)
V, BOS, EOS, S = 1000, 1, 2, 64


def make_docs(n, lo=1, hi=300):
    return [rng.integers(3, V, rng.integers(lo, hi)).astype(np.int64) for _ in range(n)]


def write_npy_stream(path, docs, dtype):
    # documents separated by BOS (the default --doc-sep), with one leading BOS
    flat = np.concatenate([np.concatenate([[BOS], d]) for d in docs]).astype(dtype)
    if path.endswith(".npy"):
        np.save(path, flat)
    else:
        flat.astype("<" + np.dtype(dtype).str[1:]).tofile(path)


def read_split(d):
    files = sorted(f for f in os.listdir(d) if f.endswith(".h5"))
    out = []
    for f in files:
        with h5py.File(os.path.join(d, f), "r") as h:
            t = h["tokens"]
            out.append((dict(h.attrs), t[:], h["seq_crc32"][:], h["doc_starts"][:], (t._filters, t.chunks)))
    return files, out


# ---- lgdata -> h5py, unshuffled: exact equality with a numpy packing ----
docs_a, docs_b = make_docs(40), make_docs(25, 100, 400)
write_npy_stream(os.path.join(D, "a.npy"), docs_a, np.int32)
write_npy_stream(os.path.join(D, "b.bin"), docs_b, np.uint16)
out = os.path.join(D, "plain")
lgdata("pack", "-q", "-o", out, "--seq-len", S, "--no-shuffle", "--vocab", V, "--bos", BOS, "--eos-id", EOS,
       "--dtype", "u16", "--shard-seqs", 10, "--level", 5, os.path.join(D, "a.npy"), os.path.join(D, "b.bin"))
stream, starts = [], []
for d in docs_a + docs_b:
    starts.append(len(stream))
    stream += [BOS] + list(d)
n_seq = len(stream) // S
want = np.array(stream[:n_seq * S], np.uint16).reshape(n_seq, S)
files, shards = read_split(os.path.join(out, "train"))
assert files == [f"shard-{i:05d}.h5" for i in range((n_seq + 9) // 10)], files
assert not os.path.exists(os.path.join(out, "val")), "no val split was asked for"
got = np.concatenate([s[1] for s in shards])
assert got.dtype == np.uint16 and np.array_equal(got, want), "packed tokens differ from the numpy packing"
for i, (attrs, tok, crc, ds, dset) in enumerate(shards):
    rows = tok.shape[0]
    assert attrs["format"] in (b"lgtrain-shard", "lgtrain-shard") and attrs["format_version"] == 1, attrs
    assert (attrs["vocab_size"], attrs["bos_id"], attrs["eos_id"], attrs["seq_len"]) == (V, BOS, EOS, S), attrs
    assert attrs["n_sequences"] == rows and attrs["n_tokens"] == rows * S and attrs["tokenizer_hash"] == 0, attrs
    assert rows == (10 if i < len(shards) - 1 else n_seq - 10 * i)
    assert [zlib.crc32(r.tobytes()) for r in tok] == list(crc), "seq_crc32 is not zlib.crc32 of the rows"
    lo, hi = i * 10 * S, (i * 10 + rows) * S
    assert list(ds) == [s - lo for s in starts if lo <= s < hi], f"doc_starts of shard {i}"
    assert attrs["n_docs"] == len(ds)
    assert dset[0] == {"32015": (5,)}, dset[0]
    assert dset[1] == (256 * 1024 // (S * 2), S), dset[1]
v = lgdata("verify", *[os.path.join(out, "train", f) for f in files]).out
assert v.count("OK ") == len(files) and "CRC-32 checked" in v, v
info = lgdata("info", "--docs", os.path.join(out, "train", files[0])).out
assert "vocab_size 1000  bos_id 1  eos_id 2" in info and "filter 32015 (zstd level 5)" in info and "n_sequences 10" in info, info

# ---- shuffled, with val split, EOS, and length upsampling ----
def pack_shuffled(name, seed, *extra):
    o = os.path.join(D, name)
    lgdata("pack", "-q", "-o", o, "--seq-len", S, "--seed", seed, "--val-frac", 0.2, "--vocab", V, "--bos", BOS,
           "--eos-id", EOS, "--eos", "--dtype", "u16", *extra, os.path.join(D, "a.npy"), os.path.join(D, "b.bin"))
    res = {}
    for split in ("train", "val"):
        _, sh = read_split(os.path.join(o, split))
        flat = np.concatenate([s[1].reshape(-1) for s in sh]).astype(np.int64)
        # documents that start and end inside one shard: BOS doc EOS
        found = []
        for attrs, tok, crc, ds, _ in sh:
            f = tok.reshape(-1).astype(np.int64)
            bounds = list(ds) + [len(f)]
            for a, b in zip(bounds[:-1], bounds[1:]):
                if b < len(f) or (b == len(f) and f[-1] == EOS):
                    seg = f[a:b]
                    assert seg[0] == BOS and seg[-1] == EOS, "a document does not run BOS ... EOS"
                    found.append(tuple(seg[1:-1]))
        res[split] = (flat, found)
    return res

originals = {tuple(d) for d in docs_a + docs_b}
r1 = pack_shuffled("shuf1", 11)
for split in ("train", "val"):
    assert r1[split][1] and all(d in originals for d in r1[split][1]), f"{split}: a document changed while packing"
assert not set(r1["train"][1]) & set(r1["val"][1]), "a document is in both train and val"
r2 = pack_shuffled("shuf2", 11)
assert np.array_equal(r1["train"][0], r2["train"][0]) and np.array_equal(r1["val"][0], r2["val"][0]), "same seed, other shards"
r3 = pack_shuffled("shuf3", 12)
assert not np.array_equal(r1["train"][0][:512], r3["train"][0][:512]), "another seed gave the same order"
r4 = pack_shuffled("long", 11, "--long-min", 150, "--short-keep", 0)
kept = r4["train"][1] + r4["val"][1]
assert kept and all(len(d) >= 150 for d in kept), "short documents were kept with --short-keep 0"
expect_error("already holds shards", "pack", "-q", "-o", os.path.join(D, "long"), "--seq-len", S, "--vocab", V,
             "--bos", BOS, os.path.join(D, "a.npy"))

# vocab > 65536 -> uint32 ids
big = [rng.integers(3, 70000, 200) for _ in range(5)]
write_npy_stream(os.path.join(D, "c.bin"), big, np.uint32)
lgdata("pack", "-q", "-o", os.path.join(D, "u32"), "--seq-len", 128, "--no-shuffle", "--vocab", 70000, "--bos", BOS,
       "--dtype", "u32", os.path.join(D, "c.bin"))
_, sh = read_split(os.path.join(D, "u32", "train"))
flat = np.concatenate([np.concatenate([[BOS], d]) for d in big])
assert sh[0][1].dtype == np.uint32 and np.array_equal(sh[0][1].reshape(-1), flat[:len(flat) // 128 * 128])

# ---- h5py + hdf5plugin -> lgdata ----
H = os.path.join(D, "h5py")
os.makedirs(H)
S2 = 32
rows_a = rng.integers(0, V, (45, S2)).astype(np.uint16)
rows_b = rng.integers(0, V, (23, S2)).astype(np.uint32)


def h5py_shard(path, rows, chunks, crc, level):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "lgtrain-shard"  # variable-length UTF-8, as h5py writes str
        for k, v in dict(format_version=1, vocab_size=V, bos_id=BOS, eos_id=EOS, seq_len=S2).items():
            f.attrs[k] = np.int64(v)
        f.attrs["n_sequences"] = np.uint64(len(rows))
        f.attrs["n_tokens"] = np.uint64(rows.size)
        f.attrs["n_docs"] = np.uint64(3)
        f.attrs["tokenizer_hash"] = np.uint64(0xABCDEF)
        f.create_dataset("tokens", data=rows, chunks=chunks, **hdf5plugin.Zstd(clevel=level))
        if crc:
            f.create_dataset("seq_crc32", data=np.array([zlib.crc32(r.tobytes()) for r in rows], np.uint32))
        f.create_dataset("doc_starts", data=np.array([0, 40, 100], np.uint64))
        rows[0, 0] = BOS; rows[1, 8] = BOS; rows[3, 4] = BOS
        f["tokens"][:4] = rows[:4]
        if crc:
            f["seq_crc32"][:4] = [zlib.crc32(r.tobytes()) for r in rows[:4]]


h5py_shard(os.path.join(H, "x-0.h5"), rows_a, (4, S2), True, 7)
h5py_shard(os.path.join(H, "x-1.h5"), rows_b, (5, 16), False, 1)
v = lgdata("verify", os.path.join(H, "x-0.h5"), os.path.join(H, "x-1.h5")).out
assert "x-0.h5: 45 sequences x 32 tokens, 3 documents, CRC-32 checked" in v, v
assert "x-1.h5: 23 sequences x 32 tokens, 3 documents, no /seq_crc32" in v, v
all_rows = {tuple(r) for r in np.concatenate([rows_a.astype(np.int64), rows_b.astype(np.int64)])}
N = 68
assert len(all_rows) == N


def sample(world, rank, n, cursor=None, seed=5):
    o = os.path.join(D, f"s{world}{rank}.npy")
    args = ["sample", H, "--seq-len", S2, "--world", world, "--rank", rank, "--seed", seed, "-n", n, "-o", o,
            "--tokenizer-hash", 0xABCDEF]
    if cursor:
        args += ["--cursor", cursor]
    p = lgdata(*args)
    cur = re.search(r"cursor (\d+):(\d+) of (\d+) sequences", p.out)
    assert cur and int(cur.group(3)) == N, p.out
    return np.load(o).astype(np.int64), (int(cur.group(1)), int(cur.group(2)))


g, c = sample(1, 0, N)
assert c == (1, 0) and {tuple(r) for r in g} == all_rows and len({tuple(r) for r in g}) == N, "world 1 epoch"
for world in (2, 3):
    per = N // world
    got = []
    for r in range(world):
        x, c = sample(world, r, per)
        assert c == divmod(per * world, N), c
        for k in range(per):
            assert np.array_equal(x[k], g[k * world + r]), f"world {world} rank {r} item {k} is not global item {k * world + r}"
        got += [tuple(t) for t in x]
    assert len(set(got)) == len(got) == per * world, f"world {world}: ranks overlap"
first = [tuple(t) for r in range(2) for t in sample(2, r, 10)[0]]
rest = []
for r in range(3):
    x, c = sample(3, r, 16, cursor="0:20")
    assert c == (1, 0), c
    rest += [tuple(t) for t in x]
assert set(first) | set(rest) == all_rows and len(first) + len(rest) == N, "resume 2 -> 3 ranks repeated or skipped"
x, _ = sample(1, 0, N, seed=6)
assert not np.array_equal(x, g), "another seed, same order"

shutil.rmtree(D)
print("test_data_shards: all checks passed")
