"""Checkpoints and resume on CPU ranks: a resumed run repeats the uninterrupted run's losses bit for bit (same
number of ranks) or within fp32 tolerance (another number of ranks, another ZeRO stage); SIGKILL at each
point of a save leaves the previous checkpoint in use; SIGTERM (one rank, a single process, or the mpirun.sh
launcher) saves and exits 0; a corrupt or truncated file is detected by its checksum and named, and the
previous checkpoint is used; an incompatible config is refused with the differences listed."""
import json, os, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from lgtest import Checks, SRC, tool
import lg_mpi
from lg_mpi import train, train_args, log, maxdiff

C = Checks("test_ckpt_resume")
if not lg_mpi.have_mpi():
    print("mpirun not found: skipped")
    sys.exit(77)
STEPS = 12
RUN = [f"run.steps={STEPS}", "checkpoint.every=3", "checkpoint.keep=4"]


def steps_in(out):
    return sorted(int(n[5:]) for n in os.listdir(os.path.join(out, "checkpoints")) if n[5:].isdigit())


def resumed_from(r):
    for line in r.stdout.splitlines():
        if line.startswith("resuming from "):
            return int(line.split("step-")[1][:6])
    return None


def flip_byte(path, at):
    with open(path, "r+b") as f:
        f.seek(at)
        b = f.read(1)
        f.seek(at)
        f.write(bytes([b[0] ^ 0x10]))


with tempfile.TemporaryDirectory() as d:
    ref = os.path.join(d, "ref")
    train(2, ref, *RUN)
    A = log(ref)
    C.check(len(A) == STEPS and steps_in(ref) == [3, 6, 9, 12], f"reference: {STEPS} steps, checkpoints {steps_in(ref)}")

    # stop signal on rank 1 after step 5: every rank stops after step 5, saves, exits 0; the rerun continues
    out = os.path.join(d, "sig")
    r = train(2, out, *RUN, env={"LG_TEST_SIGNAL_AT": "5:1"}, check=False)
    C.check(r.returncode == 0 and steps_in(out) == [3, 5] and "stopped after step 5" in r.stdout,
            f"SIGTERM on rank 1 at step 5: exit {r.returncode}, checkpoints {steps_in(out)}")
    r = train(2, out, *RUN)
    C.check(resumed_from(r) == 5 and log(out) == A,
            f"rerun resumes from step {resumed_from(r)}; steps 6..{STEPS} equal the uninterrupted run bit for bit")

    # SIGKILL at each point of the save of step 6 (rank 1 for its own file), then a plain restart
    for phase, rank, expect in [("begin", 0, 3), ("model", 0, 3), ("optim_partial", 1, 3), ("optim", 1, 3),
                                ("state", 0, 3), ("rename", 0, 6)]:
        out = os.path.join(d, "kill_" + phase)
        r = train(2, out, *RUN, env={"LG_TEST_CRASH_AT": phase, "LG_TEST_CRASH_STEP": 6, "LG_TEST_CRASH_RANK": rank},
                  check=False)
        killed = r.returncode != 0 and f"LG_TEST_CRASH_AT={phase}: SIGKILL" in r.stderr
        r2 = train(2, out, *RUN)
        C.check(killed and resumed_from(r2) == expect and log(out) == A and not any(".tmp-" in n for n in os.listdir(os.path.join(out, "checkpoints"))),
                f"SIGKILL at '{phase}' (rank {rank}): restart resumes from step {resumed_from(r2)} (expected {expect}), "
                f"losses equal the reference bit for bit, the temporary directory is removed")

    # another number of ranks / ZeRO stage: optimizer shards re-split
    for np_, stage in [(3, 2), (1, 0)]:
        out = os.path.join(d, f"np{np_}z{stage}")
        r = train(np_, out, *RUN, f"memory.zero_stage={stage}", extra=["--resume", os.path.join(ref, "checkpoints", "step-000006")])
        e = maxdiff(log(out), A[6:])
        C.check(resumed_from(r) == 6 and "optimizer state re-split" in r.stdout,
                f"np={np_} ZeRO-{stage} resumes step 6 of the np=2 run, re-splitting the optimizer state")
        C.check(e < 1e-6, f"np={np_} ZeRO-{stage}: steps 7..{STEPS} vs the np=2 run: max |loss diff| {e:.2e} (< 1e-6)")

    # corrupt one byte of rank 1's optimizer shard in the newest checkpoint
    out = os.path.join(d, "corrupt")
    shutil.copytree(ref, out)
    bad = os.path.join(out, "checkpoints", "step-000012", "optim-rank00001-of-00002.safetensors")
    flip_byte(bad, os.path.getsize(bad) - 100)
    r = train(2, out, *RUN)
    C.check(resumed_from(r) == 9 and bad in r.stderr and "CRC-32" in r.stderr and log(out) == A,
            f"flipped byte: warning names {os.path.basename(bad)}, resumed from step {resumed_from(r)}, same losses")
    # truncated model file, and a damaged state.json one further back
    model = os.path.join(out, "checkpoints", "step-000012", "model.safetensors")
    with open(model, "r+b") as f:
        f.truncate(1000)
    with open(os.path.join(out, "checkpoints", "step-000009", "state.json"), "w") as f:
        f.write('{"format": "lgtrain-checkpoint", ')
    r = train(2, out, *RUN)
    C.check(resumed_from(r) == 6 and model in r.stderr and "truncated" in r.stderr and "step-000009/state.json: not valid JSON" in r.stderr,
            f"truncated model + broken state.json: both named, resumed from step {resumed_from(r)}")

    # config compatibility: the model shape must match, an lr change only warns
    r = train(2, os.path.join(d, "x"), *RUN, "model.ffn_dim=96", "optim.lr=1e-3",
              extra=["--resume", os.path.join(ref, "checkpoints", "step-000006")], check=False)
    C.check(r.returncode != 0 and "model.ffn_dim = 64 in the checkpoint, 96 now" in r.stderr,
            "a different model.ffn_dim is refused and named")
    r = train(2, os.path.join(d, "y"), *RUN, "optim.lr=1e-3", extra=["--resume", os.path.join(ref, "checkpoints", "step-000006")])
    C.check("warning: resuming with a changed setting: optim.lr = 0.003 in the checkpoint, 0.001 now" in r.stderr,
            "a different optim.lr resumes with a warning naming it")

    # real signals: SIGTERM to a single process, and SIGTERM to launch/mpirun.sh (forwarded as SIGUSR1)
    def run_until_signalled(cmd, out, env, sig_target):
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=True)
        logf = os.path.join(out, "train_log.jsonl")
        t0 = time.time()
        while time.time() - t0 < 60 and not (os.path.exists(logf) and len(open(logf).readlines()) >= 3):
            time.sleep(0.05)
        sig_target(p)
        try:
            so, se = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            so, se = p.communicate()
        return p.returncode, so, se

    out = os.path.join(d, "term1")
    cmd = train_args(out, "run.steps=1000000", "run.log_every=100000")
    rc, so, se = run_until_signalled(cmd, out, dict(os.environ), lambda p: p.send_signal(signal.SIGTERM))
    k = len(log(out))
    C.check(rc == 0 and steps_in(out) == [k] and f"stopped after step {k} on SIGTERM" in so,
            f"single process, SIGTERM: exit {rc}, checkpoint at the last logged step {k}")
    out = os.path.join(d, "term2")
    env = dict(os.environ, LGTRAIN=tool("lgtrain"), MPIRUN_ARGS="--oversubscribe")
    cmd = [os.path.join(SRC, "launch", "mpirun.sh"), "-n", "2"] + train_args(out, "run.steps=1000000", "run.log_every=100000")[1:]
    rc, so, se = run_until_signalled(cmd, out, env, lambda p: p.send_signal(signal.SIGTERM))
    k = len(log(out))
    C.check(rc == 0 and steps_in(out) == [k] and f"stopped after step {k} on SIGUSR1" in so,
            f"launch/mpirun.sh -n 2, SIGTERM: exit {rc}, both ranks saved step {k}")
    r = train(2, out, f"run.steps={k + 2}")
    C.check(resumed_from(r) == k and len(log(out)) == k + 2, f"and it resumes from step {k} (warning: run.steps changed)")

    # HDF5 shards (data/loader): the cursor (epoch, position) restores the data order, across an epoch end
    if os.path.exists(tool("lgdata")):
        import numpy as np
        rng = np.random.default_rng(5)
        docs = [rng.integers(3, 128, rng.integers(20, 200)) for _ in range(25)]  # ~44 sequences of 64: 7 steps
        np.save(os.path.join(d, "docs.npy"), np.concatenate([np.concatenate([[1], x]) for x in docs]).astype(np.int32))
        subprocess.run([tool("lgdata"), "pack", "-q", "-o", os.path.join(d, "shards"), "--seq-len", "64", "--vocab", "128",
                        "--bos", "1", "--eos-id", "2", "--dtype", "u16", "--shard-seqs", "20", os.path.join(d, "docs.npy")],
                       check=True)
        H = RUN + [f"data.train={os.path.join(d, 'shards', 'train')}"]
        href = os.path.join(d, "h5ref")
        train(2, href, *H)
        st = json.load(open(os.path.join(href, "checkpoints", "step-000009", "state.json")))["data"]
        out = os.path.join(d, "h5sig")
        train(2, out, *H, env={"LG_TEST_SIGNAL_AT": "8:1"})
        r = train(2, out, *H)
        C.check(st["epoch"] == 1 and resumed_from(r) == 8 and "(epoch 1)" in r.stdout and log(out) == log(href),
                f"HDF5 shards: stopped at step 8 (epoch 1, cursor {st}), resumed: identical losses bit for bit")
        out = os.path.join(d, "h5np3")
        r = train(3, out, *H, extra=["--resume", os.path.join(href, "checkpoints", "step-000009")])
        e = maxdiff(log(out), log(href)[9:])
        C.check(resumed_from(r) == 9 and e < 1e-6, f"HDF5 shards, np=2 checkpoint of step 9 resumed on 3 ranks: max |loss diff| {e:.2e}")

sys.exit(C.done())
