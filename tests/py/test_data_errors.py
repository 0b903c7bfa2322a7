"""Every bad input gives an error that names the file and what is wrong (never silent garbage).

Shards are damaged with h5py or by editing bytes: missing, truncated, corrupted chunk (bad zstd frame; valid frame
with other content -> CRC), wrong format version, ids >= vocab, another tokenizer, another sequence length,
shards that disagree, files that are not shards. Both the loader (`lgdata sample`, the code lgtrain runs) and
`lgdata verify` are checked; then bad inputs of `lgdata pack`."""
import os
import shutil

import h5py
import hdf5plugin
import numpy as np

from data_util import expect_error, lgdata, need_lgdata, tmpdir

need_lgdata()
D = tmpdir()
rng = np.random.default_rng(9)
V, S = 1000, 64
docs = np.concatenate([np.concatenate([[1], rng.integers(3, V, rng.integers(50, 400))]) for _ in range(60)]).astype(np.uint16)
docs.tofile(os.path.join(D, "t.bin"))
lgdata("pack", "-q", "-o", os.path.join(D, "good"), "--seq-len", S, "--vocab", V, "--bos", 1, "--dtype", "u16",
       "--tokenizer-hash", 77, "--shard-seqs", 100, os.path.join(D, "t.bin"))
good = os.path.join(D, "good", "train", "shard-00000.h5")


def variant(name, fn=None):
    """A copy of the good shard in its own directory, edited by fn(path)."""
    d = os.path.join(D, name)
    os.makedirs(d)
    p = os.path.join(d, "shard-00000.h5")
    shutil.copy(good, p)
    if fn:
        fn(p)
    return d, p


def sample(spec, *extra):
    return ("sample", spec, "--seq-len", S, "-n", 200, "--prefetch", 2, *extra)


def both(want, d, p, *extra):
    """The loader and verify both fail with `want`, and the message names the file."""
    for args in (sample(d, *extra), ("verify", p)):
        err = expect_error(want, *args)
        assert p in err, f"message does not name {p}:\n{err}"


# sanity: the good shard loads and verifies
lgdata(*sample(os.path.join(D, "good", "train"), "--tokenizer-hash", 77))
lgdata("verify", good)

# missing files and empty specs
expect_error("nope.h5: no such shard file", *sample(good + "," + os.path.join(D, "nope.h5")))
os.makedirs(os.path.join(D, "empty"))
expect_error("directory has no *.h5 shards", *sample(os.path.join(D, "empty")))
expect_error("matches no file", *sample(os.path.join(D, "good", "train", "zz-*.h5")))

# truncated
d, p = variant("trunc", lambda p: os.truncate(p, os.path.getsize(p) // 2))
both("truncated", d, p)


# corrupted chunk: the zstd frame's bytes overwritten
def smash(p):
    with h5py.File(p, "r") as f:
        info = f["tokens"].id.get_chunk_info(0)
    with open(p, "r+b") as f:
        f.seek(info.byte_offset)
        f.write(b"\0" * 16)

d, p = variant("smashed", smash)
both("corrupted", d, p)


# a valid frame with other content: only the checksum can tell
def edit_row(p):
    with h5py.File(p, "r+") as f:
        f["tokens"][5, 3] = (int(f["tokens"][5, 3]) + 1) % V

d, p = variant("edited", edit_row)
both("row 5: CRC-32", d, p)

# wrong format version
d, p = variant("v2", lambda p: h5py.File(p, "r+").attrs.__setitem__("format_version", np.int64(2)))
both("attribute 'format_version' is 2, this build reads version 1", d, p)


# ids >= vocab (a writer that ignored its own vocab_size: the checksum is right, the ids are not)
def big_id(p):
    with h5py.File(p, "r+") as f:
        f["tokens"][7, 9] = 1500
        del f["seq_crc32"]

d, p = variant("bigid", big_id)
both("/tokens row 7 position 9: token id 1500 >= vocab_size 1000", d, p)

# another tokenizer, another sequence length, model vocab too small
d, p = variant("tok")
expect_error(f"{p}: tokenizer_hash is 0x000000000000004d, the run's tokenizer.model hashes to 0x0000000000000063", *sample(d, "--tokenizer-hash", 99))
expect_error(f"{p}: seq_len is 64, the run wants 128", "sample", d, "--seq-len", 128)
expect_error(f"{p}: vocab_size is 1000, larger than the model's 500", *sample(d, "--vocab", 500))

# shards of one spec that disagree
d, p = variant("mixed")
lgdata("pack", "-q", "-o", os.path.join(D, "other"), "--seq-len", S, "--vocab", V, "--bos", 1, "--dtype", "u16",
       "--tokenizer-hash", 78, os.path.join(D, "t.bin"))
shutil.copy(os.path.join(D, "other", "train", "shard-00000.h5"), os.path.join(d, "shard-00001.h5"))
expect_error("the shards come from different tokenizers", *sample(d))

# not a shard: other HDF5 files, other files
with h5py.File(os.path.join(D, "plain.h5"), "w") as f:
    f["x"] = np.arange(3)
expect_error("missing attribute 'format'", *sample(os.path.join(D, "plain.h5")))
d, p = variant("notokens", lambda p: h5py.File(p, "r+").__delitem__("tokens"))
both("missing dataset '/tokens'", d, p)
d, p = variant("shape", lambda p: h5py.File(p, "r+").attrs.__setitem__("n_sequences", np.uint64(3)))
both("attribute 'n_tokens' is", d, p)
with open(os.path.join(D, "text.h5"), "w") as f:
    f.write("not hdf5\n")
expect_error("not an HDF5 file", *sample(os.path.join(D, "text.h5")))

# pack: bad inputs
ok = ("pack", "-q", "--seq-len", S, "--vocab", V, "--bos", 1, "--dtype", "u16")
bad = docs.copy()
bad[123] = 4000
bad.tofile(os.path.join(D, "bad.bin"))
expect_error("bad.bin: token 123 is 4000, not below vocab_size 1000", *ok, "-o", os.path.join(D, "o1"), os.path.join(D, "bad.bin"))
with open(os.path.join(D, "odd.bin"), "wb") as f:
    f.write(b"\1\0\2")
expect_error("odd.bin: size 3 is not a multiple of 2 bytes", *ok, "-o", os.path.join(D, "o2"), os.path.join(D, "odd.bin"))
expect_error("needs --bos ID", "pack", "-q", "--seq-len", S, "--vocab", V, "--dtype", "u16", "-o", os.path.join(D, "o3"), os.path.join(D, "t.bin"))
expect_error("raw .bin token files need --dtype u16 or u32", "pack", "-q", "--seq-len", S, "--vocab", V, "--bos", 1, "-o", os.path.join(D, "o4"), os.path.join(D, "t.bin"))
np.save(os.path.join(D, "two.npy"), np.zeros((3, 4), np.int32))
expect_error("must be 1-D", *ok, "-o", os.path.join(D, "o5"), os.path.join(D, "two.npy"))
np.save(os.path.join(D, "f.npy"), np.zeros(4, np.float32))
expect_error("dtype '<f4' is not a little-endian integer type", *ok, "-o", os.path.join(D, "o6"), os.path.join(D, "f.npy"))
lgdata("tokenize", "-q", "-m", os.path.join(os.environ.get("LG_SRC", "."), "launch", "quickstart_data", "tokenizer.model"),
       "-o", os.path.join(D, "q.lgt"), os.path.join(D, "odd.bin")) if os.path.exists(os.path.join(os.environ.get("LG_SRC", "."), "launch", "quickstart_data", "tokenizer.model")) else None
if os.path.exists(os.path.join(D, "q.lgt")):
    with open(os.path.join(D, "q.lgt"), "r+b") as f:
        f.truncate(os.path.getsize(os.path.join(D, "q.lgt")) - 3)
    expect_error("truncated or not closed", "pack", "-q", "--seq-len", 4, "-o", os.path.join(D, "o7"), os.path.join(D, "q.lgt"))
expect_error("--seq-len must be at least 2", *ok[:1], "-q", "--seq-len", 1, "--vocab", V, "--bos", 1, "--dtype", "u16", "-o", os.path.join(D, "o8"), os.path.join(D, "t.bin"))

shutil.rmtree(D)
print("test_data_errors: all checks passed")
