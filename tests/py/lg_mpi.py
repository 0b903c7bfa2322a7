"""Helpers for the distributed tests: lgtrain under `mpirun --oversubscribe` on CPU ranks."""
import json, os, shutil, subprocess, sys

sys.path.insert(0, os.path.dirname(__file__))
from lgtest import SRC, tool

CFG = os.path.join(SRC, "configs", "tiny-test.ini")
# seq 64 x micro-batch 1 x 6 sequences = 384 tokens per step: divisible by 1, 2 and 3 ranks
BASE = ["export.hf=0", "data.micro_batch=1", "data.tokens_per_step=384"]


def have_mpi():
    return shutil.which("mpirun") is not None


def mpirun(np_, args, env=None, timeout=120, check=True):
    """Run lgtrain-like args on np_ CPU ranks; env entries are exported to every rank (-x)."""
    cmd = ["mpirun", "--oversubscribe", "-np", str(np_)]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    full_env = dict(os.environ)
    for k, v in (env or {}).items():
        full_env[k] = str(v)
        cmd += ["-x", k]
    cmd += [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def train_args(out, *sets, base=BASE):
    args = [tool("lgtrain"), "--config", CFG, "--set", f"run.out_dir={out}"]
    for s in list(base) + list(sets):
        args += ["--set", s]
    return args


def train(np_, out, *sets, env=None, check=True, extra=()):
    return mpirun(np_, train_args(out, *sets) + list(extra), env=env, check=check)


def log(out, key="loss"):
    with open(os.path.join(out, "train_log.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [r[key] for r in rows if key in r]  # step lines carry "loss", validation lines "val_loss"


def maxdiff(a, b):
    assert len(a) == len(b), (len(a), len(b))
    return max(abs(x - y) for x, y in zip(a, b))
