#!/usr/bin/env bash
# Slurm on GPU clusters: one process per GPU, all running the same `python -m llm.main`.
#
#   sbatch --nodes=2 --gpus-per-node=8 launch/slurm.sh --config=experiments/configs/base_1b.py \
#       --workdir=/shared/runs/base_1b
#   DRY_RUN=1 bash launch/slurm.sh --config=...    # prints the srun line instead of running it
#
# JAX reads the coordinator (first node), the process count and this process's id from the
# Slurm environment (jax.distributed.initialize() with no arguments, see
# llm/parallel/distributed.py). The workdir must be on storage every node sees.
#SBATCH --job-name=llm
#SBATCH --ntasks-per-node=8
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --output=%x-%j.out
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
PYTHON=${PYTHON:-.venv/bin/python}
COMMAND=(srun --kill-on-bad-exit=1 "$PYTHON" -m llm.main "$@")
if [[ "${DRY_RUN:-0}" == "1" ]]; then
  printf '%q ' "${COMMAND[@]}"; echo
  exit 0
fi
exec "${COMMAND[@]}"
