"""A GKE JobSet that runs `python -m llm.main` on every host of a TPU slice (or GPU nodes):
prints the manifest (--dry_run) or applies it with kubectl.

  python launch/gke_jobset.py --name=llm-1b --image=REGISTRY/llm:TAG --hosts=4 \\
      --tpu_type=tpu-v5p-slice --tpu_topology=2x2x4 --dry_run -- \\
      --config=experiments/configs/base_1b.py --workdir=gs://bucket/runs/base_1b

JobSet gives each pod JOB_COMPLETION_INDEX; the coordinator is pod 0 through the JobSet's
headless service. The entry point reads JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID (llm/parallel/distributed.py).
"""

import argparse
import json
import subprocess
import sys


def manifest(name: str, image: str, hosts: int, chips_per_host: int, tpu_type: str,
             tpu_topology: str, args: list[str]) -> dict:
  """The JobSet object (JSON is valid YAML for kubectl)."""
  coordinator = f"{name}-workers-0-0.{name}:1234"
  container = {
      "name": "llm", "image": image,
      "command": ["python", "-m", "llm.main", *args],
      "ports": [{"containerPort": 1234}],
      "env": [{"name": "JAX_COORDINATOR_ADDRESS", "value": coordinator},
              {"name": "JAX_NUM_PROCESSES", "value": str(hosts)},
              {"name": "JAX_PROCESS_ID", "valueFrom": {"fieldRef": {
                  "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}}],
      "resources": {"limits": {"google.com/tpu": chips_per_host}},
  }
  pod = {"spec": {"subdomain": name, "restartPolicy": "Never",
                  "nodeSelector": {"cloud.google.com/gke-tpu-accelerator": tpu_type,
                                   "cloud.google.com/gke-tpu-topology": tpu_topology},
                  "containers": [container]}}
  job = {"parallelism": hosts, "completions": hosts, "backoffLimit": 0,
         "completionMode": "Indexed", "template": pod}
  return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
          "metadata": {"name": name},
          "spec": {"failurePolicy": {"maxRestarts": 3},
                   "network": {"enableDNSHostnames": True},
                   "replicatedJobs": [{"name": "workers", "replicas": 1,
                                       "template": {"spec": job}}]}}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--name", required=True)
  parser.add_argument("--image", required=True)
  parser.add_argument("--hosts", type=int, default=1)
  parser.add_argument("--chips_per_host", type=int, default=4)
  parser.add_argument("--tpu_type", default="tpu-v5p-slice")
  parser.add_argument("--tpu_topology", default="2x2x1")
  parser.add_argument("--dry_run", action="store_true", help="print the manifest only")
  parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then llm.main flags")
  options = parser.parse_args(argv)
  args = options.args[1:] if options.args[:1] == ["--"] else options.args
  text = json.dumps(manifest(options.name, options.image, options.hosts, options.chips_per_host,
                             options.tpu_type, options.tpu_topology, args), indent=2)
  if options.dry_run:
    print(text)
    return 0
  return subprocess.run(["kubectl", "apply", "-f", "-"], input=text, text=True).returncode


if __name__ == "__main__":
  sys.exit(main())
