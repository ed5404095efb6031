"""A GKE JobSet that runs `python -m llm.main` on every host of a TPU slice or of a GPU node
pool: prints the manifest (--dry_run) or applies it with kubectl.

  python launch/gke_jobset.py --name=llm-1b --image=REGISTRY/llm:TAG --hosts=4 \\
      --tpu_type=tpu-v5p-slice --tpu_topology=2x2x4 --dry_run -- \\
      --config=experiments/configs/base_1b.py --workdir=gs://bucket/runs/base_1b
  python launch/gke_jobset.py --name=llm-1b --image=REGISTRY/llm:TAG --hosts=2 \\
      --accelerator=gpu --gpu_type=nvidia-h100-80gb --per_host=8 -- --config=...

JobSet gives each pod JOB_COMPLETION_INDEX; the coordinator is pod 0 through the JobSet's
headless service. The entry point reads JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID (llm/parallel/distributed.py). The manifest is built by
llm/research/launchers.py, which sweeps (`python -m llm.sweep --launcher=gke`) share.
"""

import argparse
import json
import subprocess
import sys

from llm.research.launchers import Accelerator, jobset


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--name", required=True, help="JobSet name (<= 40 of a-z, 0-9, '-')")
  parser.add_argument("--image", required=True)
  parser.add_argument("--hosts", type=int, default=1, help="pods, one JAX process each")
  parser.add_argument("--accelerator", choices=("tpu", "gpu"), default="tpu")
  parser.add_argument("--per_host", "--chips_per_host", type=int, default=0,
                      help="TPU chips or GPUs per pod (default: 4 TPU chips, 8 GPUs)")
  parser.add_argument("--tpu_type", default="tpu-v5p-slice")
  parser.add_argument("--tpu_topology", default="2x2x1")
  parser.add_argument("--gpu_type", default="nvidia-h100-80gb",
                      help="the node pool's cloud.google.com/gke-accelerator label")
  parser.add_argument("--dry_run", action="store_true", help="print the manifest only")
  parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then llm.main flags")
  options = parser.parse_args(argv)
  args = options.args[1:] if options.args[:1] == ["--"] else options.args
  gpu = options.accelerator == "gpu"
  accelerator = Accelerator(
      kind=options.accelerator, type=options.gpu_type if gpu else options.tpu_type,
      topology=options.tpu_topology, per_host=options.per_host or (8 if gpu else 4))
  try:
    manifest = jobset(options.name, options.image, options.hosts, accelerator, args)
  except ValueError as e:
    parser.error(str(e))
  text = json.dumps(manifest, indent=2)
  if options.dry_run:
    print(text)
    return 0
  return subprocess.run(["kubectl", "apply", "-f", "-"], input=text, text=True).returncode


if __name__ == "__main__":
  sys.exit(main())
