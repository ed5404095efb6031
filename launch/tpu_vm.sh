#!/usr/bin/env bash
# TPU VM pods: the same `python -m llm.main` on every worker of the slice, over gcloud ssh.
#
#   TPU_NAME=my-v5p-64 ZONE=us-east5-a bash launch/tpu_vm.sh --config=experiments/configs/llama3_8b.py \
#       --workdir=gs://bucket/runs/llama3_8b
#   DRY_RUN=1 TPU_NAME=... ZONE=... bash launch/tpu_vm.sh --config=...   # print, do not run
#
# Assumes the repository is checked out at ~/llm on every worker, installed with
# `bash install.sh '.[tpu]'`. LLM_DISTRIBUTED=auto makes every worker call
# jax.distributed.initialize() with no arguments: on TPU, JAX finds the other workers itself.
set -euo pipefail
: "${TPU_NAME:?set TPU_NAME to the TPU VM name}"
: "${ZONE:?set ZONE to its zone}"
REPO_DIR=${REPO_DIR:-'~/llm'}
ARGS=$(printf '%q ' "$@")
REMOTE="cd $REPO_DIR && LLM_DISTRIBUTED=auto .venv/bin/python -m llm.main $ARGS"
COMMAND=(gcloud compute tpus tpu-vm ssh "$TPU_NAME" --zone="$ZONE" --worker=all --command="$REMOTE")
if [[ "${DRY_RUN:-0}" == "1" ]]; then
  printf '%q ' "${COMMAND[@]}"; echo
  exit 0
fi
exec "${COMMAND[@]}"
