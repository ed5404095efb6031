"""Jobs for the cluster schedulers, as text or objects: a GKE JobSet (TPU slices or GPU node
pools), a Slurm job array and a TPU VM script. Every process runs `python -m llm.main` and
joins its run's cluster through `llm/parallel/distributed.py`."""

import dataclasses
import re
import shlex

COORDINATOR_PORT = 1234
COMPLETION_INDEX = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


@dataclasses.dataclass(frozen=True)
class Accelerator:
  """Where the pods go: a TPU slice (`kind="tpu"`) or a GPU node pool (`kind="gpu"`)."""
  kind: str = "tpu"
  type: str = "tpu-v5p-slice"   # GKE accelerator label value, e.g. nvidia-h100-80gb
  topology: str = "2x2x1"       # TPU slices only
  per_host: int = 4             # chips (TPU) or GPUs per pod

  def __post_init__(self):
    if self.kind not in ("tpu", "gpu"):
      raise ValueError(f"accelerator kind must be tpu or gpu, got {self.kind!r}")
    if self.per_host < 1:
      raise ValueError(f"accelerators per host must be >= 1, got {self.per_host}")


def dns_label(text: str, limit: int = 63) -> str:
  """A Kubernetes DNS-1035 label: lowercase letters, digits and '-', starting with a letter."""
  label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
  if not label or not label[0].isalpha():
    label = "r-" + label
  return label[:limit].rstrip("-")


def _pod_spec(name: str, image: str, hosts: int, accelerator: Accelerator,
              args: list[str]) -> dict:
  coordinator = f"{name}-workers-0-0.{name}:{COORDINATOR_PORT}"
  env = [{"name": "JAX_COORDINATOR_ADDRESS", "value": coordinator},
         {"name": "JAX_NUM_PROCESSES", "value": str(hosts)},
         {"name": "JAX_PROCESS_ID", "valueFrom": {"fieldRef": {"fieldPath": COMPLETION_INDEX}}}]
  container = {"name": "llm", "image": image, "command": ["python", "-m", "llm.main", *args],
               "ports": [{"containerPort": COORDINATOR_PORT}], "env": env}
  spec = {"subdomain": name, "restartPolicy": "Never", "containers": [container]}
  if accelerator.kind == "tpu":
    container["resources"] = {"limits": {"google.com/tpu": accelerator.per_host}}
    spec["nodeSelector"] = {"cloud.google.com/gke-tpu-accelerator": accelerator.type,
                            "cloud.google.com/gke-tpu-topology": accelerator.topology}
  else:
    container["resources"] = {"limits": {"nvidia.com/gpu": accelerator.per_host}}
    # NCCL exchanges through shared memory; a container's default /dev/shm is 64 MiB.
    container["volumeMounts"] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    spec["volumes"] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    spec["nodeSelector"] = {"cloud.google.com/gke-accelerator": accelerator.type}
    spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists",
                            "effect": "NoSchedule"}]
  return spec


def jobset(name: str, image: str, hosts: int, accelerator: Accelerator, args: list[str],
           max_restarts: int = 3) -> dict:
  """One run as a JobSet: an indexed Job of `hosts` pods; pod i is JAX process i and the
  coordinator is pod 0 through the JobSet's headless service (JSON is valid YAML)."""
  if dns_label(name) != name or len(name) > 40:
    raise ValueError(f"JobSet name {name!r}: use <= 40 lowercase letters, digits and '-' "
                     f"(pod host names add ~15 characters), e.g. {dns_label(name)[:40]!r}")
  job = {"parallelism": hosts, "completions": hosts, "backoffLimit": 0,
         "completionMode": "Indexed",
         "template": {"spec": _pod_spec(name, image, hosts, accelerator, args)}}
  return {"apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
          "metadata": {"name": name, "labels": {"app": "llm"}},
          "spec": {"failurePolicy": {"maxRestarts": max_restarts},
                   "network": {"enableDNSHostnames": True},
                   "replicatedJobs": [{"name": "workers", "replicas": 1,
                                       "template": {"spec": job}}]}}


def jobset_list(name: str, image: str, hosts: int, accelerator: Accelerator,
                runs: list[list[str]]) -> dict:
  """A sweep for kubectl: one JobSet per point (`NAME-000`, ...), so a failing point restarts
  alone. Resubmitting resumes: each point's workdir holds its checkpoints."""
  items = [jobset(f"{name}-{i:03d}", image, hosts, accelerator, args)
           for i, args in enumerate(runs)]
  return {"apiVersion": "v1", "kind": "List", "items": items}


def slurm_array(name: str, runs: list[list[str]], nodes: int = 1, tasks_per_node: int = 8,
                parallel: int = 0, log_dir: str = ".", python: str = ".venv/bin/python") -> str:
  """An sbatch script whose array task i runs point i over `nodes` x `tasks_per_node` GPUs
  (one process per GPU; JAX reads the cluster from Slurm). DRY_RUN=1 prints the srun line."""
  limit = f"%{parallel}" if parallel else ""
  cases = "\n".join(f"  {i}) ARGS=({shlex.join(args)}) ;;" for i, args in enumerate(runs))
  return f"""#!/usr/bin/env bash
# A sweep of {len(runs)} points as a Slurm job array: sbatch THIS_FILE (from the repository root).
#SBATCH --job-name={name}
#SBATCH --array=0-{len(runs) - 1}{limit}
#SBATCH --nodes={nodes}
#SBATCH --ntasks-per-node={tasks_per_node}
#SBATCH --gpus-per-task=1
#SBATCH --cpus-per-task=8
#SBATCH --output={log_dir}/slurm-%A_%a.out
set -euo pipefail
cd "${{SLURM_SUBMIT_DIR:-.}}"
: "${{SLURM_ARRAY_TASK_ID:?submit with sbatch (or set SLURM_ARRAY_TASK_ID to try one point)}}"
case "$SLURM_ARRAY_TASK_ID" in
{cases}
  *) echo "no sweep point $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;
esac
COMMAND=(srun --kill-on-bad-exit=1 "${{PYTHON:-{python}}}" -m llm.main "${{ARGS[@]}}")
if [[ "${{DRY_RUN:-0}}" == "1" ]]; then
  printf '%q ' "${{COMMAND[@]}}"; echo
  exit 0
fi
exec "${{COMMAND[@]}}"
"""


def tpu_vm_script(runs: list[list[str]]) -> str:
  """A script that runs the points one after another on one TPU VM pod (launch/tpu_vm.sh:
  TPU_NAME and ZONE from the environment, every worker of the slice per point)."""
  lines = [f"bash launch/tpu_vm.sh {shlex.join(args)}" for args in runs]
  return ("#!/usr/bin/env bash\n"
          f"# A sweep of {len(runs)} points, one after another on the pod $TPU_NAME.\n"
          "set -euo pipefail\n"
          ': "${TPU_NAME:?set TPU_NAME}" "${ZONE:?set ZONE}"\n' + "\n".join(lines) + "\n")
