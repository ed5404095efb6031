"""A sweep's cluster jobs hold what each scheduler needs, and every process they start finds
its cluster the way llm/parallel/distributed.py reads it."""

import json
import os
import re
import subprocess
import sys

import jax
import pytest

from llm.parallel import distributed
from llm.research import launchers
from tests.conftest import ROOT

RUNS = [["--config=c.py", "--config.optim.lr=1e-3", "--workdir=gs://b/s/000-lr=1e-3"],
        ["--config=c.py", "--config.optim.lr=3e-3", "--workdir=gs://b/s/001-lr=3e-3"],
        ["--config=c.py", "--config.inputs=('jsonl:a b.jsonl',)", "--workdir=gs://b/s/002"]]
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")


def _joined_clusters(monkeypatch, environments):
  """What initialize_from_env passes to jax.distributed.initialize under each environment."""
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  monkeypatch.setattr(jax.config, "update", lambda *a: None)
  for env in environments:
    for key in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
                "LLM_DISTRIBUTED", "SLURM_NTASKS"):
      monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
      monkeypatch.setenv(key, value)
    assert distributed.initialize_from_env()
  return calls


def _pod_env(container: dict, completion_index: int) -> dict:
  """The environment Kubernetes gives a pod: fieldRefs to the completion index resolved."""
  env = {}
  for item in container["env"]:
    if "value" in item:
      env[item["name"]] = item["value"]
    else:
      assert item["valueFrom"]["fieldRef"]["fieldPath"] == launchers.COMPLETION_INDEX
      env[item["name"]] = str(completion_index)
  return env


@pytest.mark.parametrize("kind, resource, selector", [
    ("tpu", "google.com/tpu", "cloud.google.com/gke-tpu-accelerator"),
    ("gpu", "nvidia.com/gpu", "cloud.google.com/gke-accelerator")])
def test_gke_sweep_is_one_valid_jobset_per_point(monkeypatch, kind, resource, selector):
  accelerator = launchers.Accelerator(kind=kind, type="x", per_host=8)
  listing = launchers.jobset_list("lr-sweep", "img:1", 2, accelerator, RUNS)
  assert listing["kind"] == "List" and len(listing["items"]) == len(RUNS)
  for index, (jobset, args) in enumerate(zip(listing["items"], RUNS)):
    assert jobset["apiVersion"] == "jobset.x-k8s.io/v1alpha2" and jobset["kind"] == "JobSet"
    name = jobset["metadata"]["name"]
    assert name == f"lr-sweep-{index:03d}" and DNS_LABEL.fullmatch(name)
    assert jobset["spec"]["network"]["enableDNSHostnames"] is True
    (replicated,) = jobset["spec"]["replicatedJobs"]
    job = replicated["template"]["spec"]
    assert job["completionMode"] == "Indexed" and job["parallelism"] == job["completions"] == 2
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] in ("Never", "OnFailure") and pod["subdomain"] == name
    assert selector in pod["nodeSelector"]
    (container,) = pod["containers"]
    assert container["image"] == "img:1" and container["command"][:3] == ["python", "-m",
                                                                            "llm.main"]
    assert container["command"][3:] == args and container["resources"]["limits"][resource] == 8
    # JobSet names pod i of job 0 `<jobset>-<replicated job>-0-<i>` in the subdomain.
    hostname = f"{name}-{replicated['name']}-0-0"
    assert len(hostname) <= 63
    environments = [_pod_env(container, i) for i in range(2)]
    calls = _joined_clusters(monkeypatch, environments)
    assert calls == [{"coordinator_address": f"{hostname}.{name}:1234", "num_processes": 2,
                      "process_id": i} for i in range(2)]
  if kind == "gpu":
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert container["volumeMounts"][0]["mountPath"] == "/dev/shm"


def test_gke_names_that_kubernetes_would_refuse_are_refused():
  with pytest.raises(ValueError, match="lowercase"):
    launchers.jobset("My_Run", "img", 1, launchers.Accelerator(), [])


def test_slurm_array_runs_point_i_as_task_i(tmp_path, monkeypatch):
  script = tmp_path / "array.sh"
  script.write_text(launchers.slurm_array("sw", RUNS, nodes=2, tasks_per_node=4, parallel=2,
                                          log_dir="logs"))
  subprocess.run(["bash", "-n", str(script)], check=True)
  directives = dict(line.split()[1].lstrip("-").split("=", 1)
                    for line in script.read_text().splitlines() if line.startswith("#SBATCH"))
  assert directives["array"] == "0-2%2" and directives["nodes"] == "2"
  assert directives["ntasks-per-node"] == "4" and directives["gpus-per-task"] == "1"
  assert directives["output"] == "logs/slurm-%A_%a.out"
  for index, args in enumerate(RUNS):
    out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True,
                         env={**os.environ, "DRY_RUN": "1", "SLURM_ARRAY_TASK_ID": str(index)},
                         cwd=tmp_path).stdout
    words = subprocess.run(["bash", "-c", f"printf '%s\\n' {out}"], capture_output=True,
                           text=True, check=True).stdout.splitlines()
    assert words[0] == "srun" and words[-len(args) - 1:] == ["llm.main", *args]
  missing = subprocess.run(["bash", str(script)], capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "DRY_RUN": "1", "SLURM_ARRAY_TASK_ID": "3"})
  assert missing.returncode == 2 and "no sweep point 3" in missing.stderr
  # srun starts nodes x tasks processes; each finds the cluster from Slurm's variables.
  assert _joined_clusters(monkeypatch, [{"SLURM_NTASKS": "8"}]) == [{}]


def test_tpu_vm_sweep_runs_each_point_on_every_worker(tmp_path):
  script = tmp_path / "tpu.sh"
  script.write_text(launchers.tpu_vm_script(RUNS))
  out = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=True,
                       cwd=ROOT, env={**os.environ, "DRY_RUN": "1", "TPU_NAME": "pod",
                                      "ZONE": "z"}).stdout.splitlines()
  assert len(out) == len(RUNS)
  for line, args in zip(out, RUNS):
    assert line.startswith("gcloud compute tpus tpu-vm ssh pod") and "--worker=all" in line
    assert "LLM_DISTRIBUTED=auto" in line and args[1].split("=")[0] in line


def test_gke_launcher_script_emits_gpu_node_pools():
  out = subprocess.run([sys.executable, "launch/gke_jobset.py", "--name=run", "--image=img",
                        "--hosts=2", "--accelerator=gpu", "--dry_run", "--", "--config=c.py"],
                       capture_output=True, text=True, check=True, cwd=ROOT).stdout
  pod = json.loads(out)["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"]
  assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 8}
  assert pod["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
