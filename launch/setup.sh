#!/usr/bin/env bash
# setup.sh: install what lgtrain needs on a fresh Debian/Ubuntu machine, then configure and build.
#   launch/setup.sh [--no-python]     (sourced by quickstart.sh and test.sh)
# System packages via apt-get (only the missing ones; needs root or sudo), Python test tools into .venv.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${LG_BUILD_DIR:-$ROOT/build}"
want_python=1
for a in "$@"; do [ "$a" = "--no-python" ] && want_python=0; done

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

pkgs=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libhdf5-dev libzstd-dev python3-venv)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
    echo "[setup] missing packages: ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2; exit 1
  fi
  command -v apt-get >/dev/null || { echo "[setup] no apt-get: install ${missing[*]} with your package manager" >&2; exit 1; }
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

if [ $want_python -eq 1 ]; then
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    say "creating Python venv $ROOT/.venv"
    python3 -m venv "$ROOT/.venv"
  fi
  if ! "$ROOT/.venv/bin/python" -c "import torch, transformers, sentencepiece, h5py, hdf5plugin, gguf, safetensors" 2>/dev/null; then
    # PyPI's Linux torch is the CUDA build: ~5 GB installed. One pip call holds every downloaded wheel (and, by
    # default, a cached copy) until it ends, which has filled small disks; so: no cache, torch first without its
    # dependencies, then each dependency in its own call, and not triton (only torch.compile needs it; the
    # oracle tests run eager on the CPU).
    avail_mb=$(df -Pm "$ROOT" | awk 'NR==2 {print $4}')
    say "installing Python test tools (torch, transformers, sentencepiece, h5py, hdf5plugin, gguf): ~5 GB, once; ${avail_mb} MB free"
    if [ "${avail_mb:-0}" -lt 7000 ]; then
      echo "[setup] $ROOT has ${avail_mb} MB free; the Python test tools need ~7000 MB while installing (5 GB after)." >&2
      echo "[setup] free disk space, or run 'launch/setup.sh --no-python' to build without the oracle tests." >&2
      exit 1
    fi
    pip_i() {  # while torch waits for its dependencies (and for good: triton) pip complains: drop that, keep the rest
      "$ROOT/.venv/bin/pip" install -q --no-cache-dir "$@" 2>&1 |
        { grep -v -E "^torch [^ ]+ requires |dependency resolver does not currently|dependency conflicts" || true; }
      return "${PIPESTATUS[0]}"
    }
    torch_pin=$(grep -E '^torch==' "$ROOT/tests/requirements.txt")
    pip_i --no-deps "$torch_pin"
    "$ROOT/.venv/bin/python" - <<'PY' >"$ROOT/.venv/torch-deps.txt"
import importlib.metadata as m
from pip._vendor.packaging.requirements import Requirement  # a fresh venv has no packaging
for r in m.requires("torch") or []:
    q = Requirement(r)
    if q.name != "triton" and (q.marker is None or q.marker.evaluate({"extra": ""})):
        print(str(q).split(";")[0])
PY
    while read -r dep; do pip_i "$dep"; done <"$ROOT/.venv/torch-deps.txt"
    # torch is in place: installing it again through -r would pull triton back in.
    grep -v '^torch==' "$ROOT/tests/requirements.txt" >"$ROOT/.venv/requirements-rest.txt"
    pip_i -r "$ROOT/.venv/requirements-rest.txt"
    "$ROOT/.venv/bin/python" -c "import torch, transformers, sentencepiece, h5py, hdf5plugin, gguf, safetensors" \
      || { echo "[setup] the Python test tools in $ROOT/.venv do not import (see above)" >&2; exit 1; }
    say "Python test tools installed: $(du -sh "$ROOT/.venv" | cut -f1) in $ROOT/.venv"
  fi
fi

say "configuring and building in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release ${LG_CMAKE_ARGS:-} >"$BUILD.cmake.log" 2>&1 || { cat "$BUILD.cmake.log"; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" 2>&1 | grep -E "warning|error|Error" || true
cmake --build "$BUILD" -j"$(nproc)" >/dev/null   # fails loudly if the build failed
say "built: $(cd "$BUILD" && ls lgtrain lgdata lgexport 2>/dev/null | tr '\n' ' ')"
