#!/usr/bin/env bash
# Evaluate a checkpoint on the config's test datasets, sharded over NPROC processes
# (one per GPU when there are GPUs, else CPU processes). Each test image is embedded
# once, by one process; rank 0 scores everything and writes results.json.
#   bash inference.sh [NPROC] CONFIG CHECKPOINT [KEY VALUE ...]      (NPROC default 1)
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
NPROC=1
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
  NPROC=$1
  shift
fi
if [ $# -lt 2 ] || [ "$NPROC" -lt 1 ]; then
  echo "error: usage: bash inference.sh [NPROC] CONFIG CHECKPOINT [KEY VALUE ...] (NPROC at least 1)" >&2
  exit 2
fi
CONFIG=$1
CKPT=$2
shift 2
if [ "$NPROC" -eq 1 ]; then
  exec "$PY" tools/test_net.py --config-file "$CONFIG" --ckpt "$CKPT" "$@"
fi
# torchrun (fec.engine.launch: a user error is its one line and exit code 2, as with one
# process); --standalone: a rendezvous on a free local port, so jobs can share a machine
exec "$PY" -m fec.engine.launch --standalone --nproc_per_node="$NPROC" \
  tools/test_net.py --config-file "$CONFIG" --ckpt "$CKPT" "$@"
