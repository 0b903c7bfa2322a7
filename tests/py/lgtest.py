"""Shared helpers for the Python oracle tests: where the build is, running tools, reading train logs."""
import json, os, subprocess

SRC = os.path.abspath(os.environ.get("LG_SRC", os.path.join(os.path.dirname(__file__), "../..")))
BUILD = os.path.abspath(os.environ.get("LG_BUILD", os.path.join(SRC, "build")))


def tool(name):
    return os.path.join(BUILD, name)


def run(args, check=True, **kw):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def read_log(run_dir):
    with open(os.path.join(run_dir, "train_log.jsonl")) as f:
        return [r for r in (json.loads(line) for line in f if line.strip()) if "loss" in r]  # step lines only


class Checks:
    """Collects named assertions and prints one line per check; exit code 1 if any failed."""

    def __init__(self, name):
        self.name, self.failed, self.n = name, [], 0

    def check(self, ok, what):
        self.n += 1
        print(f"{'ok  ' if ok else 'FAIL'} {what}", flush=True)
        if not ok:
            self.failed.append(what)

    def done(self):
        print(f"{self.name}: {self.n - len(self.failed)}/{self.n} checks passed")
        return 1 if self.failed else 0
