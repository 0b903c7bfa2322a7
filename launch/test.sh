#!/usr/bin/env bash
# test.sh: the README's test command. Installs what is missing, builds, runs every test (ctest):
# C unit tests, Python oracle tests (HF transformers, sentencepiece, h5py, gguf), MPI tests on CPU ranks.
# GPU tests are built when nvcc is present and skip (exit 77) without a GPU.
#   launch/test.sh [ctest args, e.g. -L unit | -R model]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${LG_BUILD_DIR:-$ROOT/build}"
"$ROOT/launch/setup.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
cd "$BUILD"
ctest --output-on-failure --timeout 1800 "$@"
