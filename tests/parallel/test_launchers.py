"""Launchers in dry-run mode print the command each process would run."""

import json
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def _run(command, env=None):
  return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True,
                        env={**os.environ, **(env or {})}).stdout


def test_local_dry_run_gives_each_process_its_id_and_devices():
  out = _run([sys.executable, "launch/local.py", "--processes=3", "--devices_per_process=2",
              "--dry_run", "--", "python", "-m", "llm.main", "--workdir=w"]).splitlines()
  assert len(out) == 3
  for i, line in enumerate(out):
    assert f"JAX_PROCESS_ID={i}" in line and "JAX_NUM_PROCESSES=3" in line
    assert "device_count=2" in line and line.endswith("python -m llm.main --workdir=w")


def test_slurm_and_tpu_dry_runs_run_the_same_entry_point():
  slurm = _run(["bash", "launch/slurm.sh", "--config=c.py"], {"DRY_RUN": "1"})
  assert slurm.startswith("srun") and "-m llm.main --config=c.py" in slurm
  tpu = _run(["bash", "launch/tpu_vm.sh", "--config=c.py"],
             {"DRY_RUN": "1", "TPU_NAME": "pod", "ZONE": "z"})
  assert "--worker=all" in tpu and "LLM_DISTRIBUTED=auto" in tpu and "llm.main" in tpu


def test_gke_jobset_manifest_has_one_indexed_pod_per_host():
  out = _run([sys.executable, "launch/gke_jobset.py", "--name=run", "--image=img", "--hosts=4",
              "--dry_run", "--", "--config=c.py"])
  jobset = json.loads(out)
  job = jobset["spec"]["replicatedJobs"][0]["template"]["spec"]
  assert job["parallelism"] == job["completions"] == 4 and job["completionMode"] == "Indexed"
  container = job["template"]["spec"]["containers"][0]
  assert container["command"] == ["python", "-m", "llm.main", "--config=c.py"]
  env = {e["name"]: e for e in container["env"]}
  assert env["JAX_NUM_PROCESSES"]["value"] == "4" and "valueFrom" in env["JAX_PROCESS_ID"]
