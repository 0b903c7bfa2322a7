#!/usr/bin/env bash
# mpirun.sh: data-parallel training on one node: one rank per GPU (or N CPU ranks), every rank running the
# same lgtrain command (trainer/dist.h). Extra arguments go to lgtrain.
#   launch/mpirun.sh [-n NRANKS] --config configs/7b-128k.ini [--set k=v ...] [--resume DIR]
# NRANKS defaults to the number of GPUs (nvidia-smi -L), else 1. LGTRAIN overrides the binary
# (default build/lgtrain); MPIRUN_ARGS adds mpirun options (e.g. "--oversubscribe" for CPU ranks > cores).
#
# Stopping: SIGTERM or Ctrl-C to this script is passed to mpirun as SIGUSR1, which mpirun forwards to every
# rank; each finishes its step, saves a checkpoint and exits 0. (A SIGTERM sent to mpirun itself reaches the
# ranks too, but mpirun follows it with SIGKILL after one second: too soon for a 7B save.)
# Running the same command again resumes from the newest usable checkpoint in <out_dir>/checkpoints.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LGTRAIN="${LGTRAIN:-$ROOT/build/lgtrain}"
NP=""
if [ "${1:-}" = "-n" ]; then NP="$2"; shift 2; fi
if [ -z "$NP" ]; then
  NP=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU' || true)
  [ "$NP" -ge 1 ] 2>/dev/null || NP=1
fi
[ -x "$LGTRAIN" ] || { echo "mpirun.sh: $LGTRAIN not found; build first (launch/setup.sh)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "mpirun.sh: mpirun not found (apt-get install openmpi-bin libopenmpi-dev)" >&2; exit 1; }

# Each rank runs OpenMP threads for its host work: share the cores, and do not pin a rank to one core.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( $(nproc) / NP > 0 ? $(nproc) / NP : 1 ))}"
EXTRA=(--bind-to none -x OMP_NUM_THREADS -x PATH)
for v in LD_LIBRARY_PATH NCCL_DEBUG NCCL_SOCKET_IFNAME NCCL_IB_HCA LG_NCCL_TIMEOUT_S CUDA_VISIBLE_DEVICES HDF5_USE_FILE_LOCKING; do
  [ -n "${!v:-}" ] && EXTRA+=(-x "$v")
done
[ "$(id -u)" = 0 ] && EXTRA+=(--allow-run-as-root)
# shellcheck disable=SC2086
mpirun -np "$NP" "${EXTRA[@]}" ${MPIRUN_ARGS:-} "$LGTRAIN" "$@" &
PID=$!
trap 'echo "mpirun.sh: stop requested: every rank saves a checkpoint after its current step" >&2; kill -USR1 $PID 2>/dev/null || true' TERM INT
# `wait` returns early when a trapped signal arrives: keep waiting until mpirun has exited.
while true; do
  set +e
  wait "$PID"
  rc=$?
  set -e
  kill -0 "$PID" 2>/dev/null || exit "$rc"
done
